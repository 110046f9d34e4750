//! A lessee's node asks the owner's for a leased dataset's files.

use leasehold_files::Manifest;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DataRequest {
    Manifest { lease_id: String },
    Chunk { lease_id: String, path: String, offset: u64, len: u64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DataReply {
    Manifest(Manifest),
    /// As bytes, not a sequence of u8s: bincode writes both alike (a
    /// length, then the bytes), but a sequence is encoded and decoded a
    /// byte at a time: a sixth of both nodes' CPU in a transfer.
    Chunk(#[serde(with = "serde_bytes")] Vec<u8>),
}

impl DataRequest {
    pub fn lease_id(&self) -> &str {
        match self {
            Self::Manifest { lease_id } | Self::Chunk { lease_id, .. } => lease_id,
        }
    }
}

/// Why an owner's node refused a data request, as the lessee hears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DataRefusal {
    #[error(
        "busy: {org} asks at most {} requests at once and {} a second per lease",
        crate::limits::DATA_BURST,
        crate::limits::DATA_PER_S
    )]
    Busy { org: String },
    #[error("busy: at most {max} of {org}'s data requests at once")]
    InFlight { max: usize, org: String },
    #[error("unknown peer")]
    UnknownPeer,
    #[error("no such lease")]
    NoSuchLease,
    #[error("lease {lease} is not between {owner} and {lessee}")]
    NotBetween { lease: String, owner: String, lessee: String },
    /// The lease's own words: pending, expired at, revoked at…
    #[error("{0}")]
    Inactive(String),
    /// The ledger's refusal, e.g. a dataset that is run on, not read.
    #[error("{0}")]
    Ledger(String),
    #[error("lease has no dataset version")]
    NoVersion,
    #[error("dataset version not found")]
    NoSuchVersion,
    #[error("{owner} holds no files for dataset {dataset} version {version}")]
    NoFiles { owner: String, dataset: String, version: u32 },
    #[error("no such file in the dataset")]
    NoSuchFile,
    /// The owner's node could not read what it holds.
    #[error("{0}")]
    Failed(String),
}

impl From<leasehold_chaincode::ChaincodeError> for DataRefusal {
    fn from(e: leasehold_chaincode::ChaincodeError) -> Self {
        Self::Ledger(e.to_string())
    }
}
