//! A lessee's node asks the owner's to run a workflow on compute data.

use leasehold_chaincode::SignedTx;
use leasehold_files::Manifest;
use serde::{Deserialize, Serialize};

use super::RunError;
use crate::live::{JobRecord, LogLine};
use crate::WorkflowError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ComputeRequest {
    /// Run this workflow, with its directory as a tar if it has one, on the
    /// owner's compute data, under the asking org's leases.
    Submit {
        run_id: String,
        yaml: String,
        bundle: Option<Vec<u8>>,
        submitted_by: String,
        /// The lessee's signed `RequestComputeRun` for this workflow. The
        /// owner commits it only once it has accepted the workflow, so a
        /// refused submission leaves nothing on the ledger.
        /// Boxed: a signed tx is large, and every RPC is sized by its largest.
        request: Box<SignedTx>,
    },
    /// The run's state, and its log from `from_seq` as far as the dataset's
    /// policy lets the asking org see it.
    Status {
        run_id: String,
        from_seq: u64,
    },
    Cancel {
        run_id: String,
        by: String,
    },
    /// The released outputs: their manifest, then their bytes.
    OutputManifest {
        run_id: String,
    },
    OutputChunk {
        run_id: String,
        path: String,
        offset: u64,
        len: u64,
    },
}

/// What the owner's node tells the lessee's about a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteStatus {
    pub status: crate::live::Status,
    pub reason: Option<String>,
    pub jobs: Vec<JobRecord>,
    pub output_hash: Option<String>,
    /// `None` while undecided; the owner's reason either way.
    pub release: Option<(bool, String)>,
    pub lines: Vec<LogLine>,
}

/// Why the owner's node did not do what the lessee's asked, in a form the
/// lessee's API can answer with: the workflow's field at fault, or a kind.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Workflow(WorkflowError),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<RunError> for Refusal {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Workflow(w) => Self::Workflow(w),
            RunError::Forbidden(d) => Self::Forbidden(d),
            RunError::NotFound(d) => Self::NotFound(d),
            RunError::Conflict(d) => Self::Conflict(d),
            RunError::Ledger(e) => Self::Conflict(e.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl Refusal {
    /// The refusal as this node's error, saying whose it is.
    pub fn into_run_error(self, owner: &str) -> RunError {
        let by = |d: String| format!("{owner} refused: {d}");
        match self {
            Self::Workflow(w) => RunError::Workflow(WorkflowError { reason: by(w.reason), ..w }),
            Self::Forbidden(d) => RunError::Forbidden(by(d)),
            Self::NotFound(d) => RunError::NotFound(by(d)),
            Self::Conflict(d) => RunError::Conflict(by(d)),
            Self::Unavailable(d) => RunError::Unavailable(by(d)),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ComputeReply {
    Started,
    Status(RemoteStatus),
    Cancelled,
    Manifest(Manifest),
    Chunk(Vec<u8>),
}
