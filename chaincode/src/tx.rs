//! Signed transactions: an envelope, its canonical bytes, its id and its
//! signature.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{canonical, ChaincodeError, DatasetRef, DatasetSpec, Genesis, Hash32, OrgId, RunStatus};

/// sha256 of a transaction body's canonical bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxId(pub Hash32);

impl TxId {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxId({})", self.to_hex())
    }
}

/// What a transaction asks the ledger to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Register a dataset. With `derived_from_run`, it is a published result
    /// and its provenance is taken from that run.
    RegisterDataset {
        id: String,
        spec: DatasetSpec,
        derived_from_run: Option<String>,
    },
    /// A new version with a whole new spec (owner only).
    UpdateDataset {
        id: String,
        spec: DatasetSpec,
    },
    RetireDataset {
        id: String,
    },
    RequestLease {
        lease_id: String,
        dataset_id: String,
        duration_ms: u64,
        purpose: String,
    },
    GrantLease {
        lease_id: String,
        duration_ms: u64,
    },
    DenyLease {
        lease_id: String,
        reason: String,
    },
    ReleaseLease {
        lease_id: String,
    },
    RevokeLease {
        lease_id: String,
        reason: String,
    },
    ExtendLease {
        lease_id: String,
        extra_ms: u64,
    },
    StartRun {
        run_id: String,
        workflow_hash: Hash32,
        lease_ids: Vec<String>,
        inputs: Vec<DatasetRef>,
    },
    FinishRun {
        run_id: String,
        status: RunStatus,
        output_hash: Option<Hash32>,
    },
    /// Audit: the owner's node is about to disclose the lease's metadata to
    /// `reader`, a user of the lessee, once. Only the owner signs it. Nodes
    /// now write [`Payload::RecordReads`]; this stays for the chains that
    /// hold it.
    RecordAccess {
        lease_id: String,
        reader: String,
    },
    /// This org approves `voters` as the raft voters; the set takes effect
    /// once a majority of the orgs approve it (see `membership`).
    ApproveMembership {
        voters: Vec<OrgId>,
    },
    /// The lessee of `lease_id`, a compute dataset's, asks its owner to run
    /// the workflow whose yaml and bundle hash to `submission_hash` as run
    /// `run_id`: the owner alone cannot attribute a run to it.
    RequestComputeRun {
        run_id: String,
        lease_id: String,
        submission_hash: Hash32,
    },
    /// The owner of a compute dataset starts, on its own node, the run its
    /// lessee requested (`RequestComputeRun`); the run is the lessee's.
    /// `workflow_hash` adds the owner's environment to `submission_hash`.
    StartComputeRun {
        run_id: String,
        workflow_hash: Hash32,
        lease_id: String,
        submission_hash: Hash32,
    },
    /// The executor of a succeeded compute run releases its outputs to the
    /// run's org, or refuses to, saying why.
    DecideRelease {
        run_id: String,
        approve: bool,
        output_bytes: u64,
        /// The outputs' content hash, recorded only when they are released.
        output_hash: Option<Hash32>,
        reason: String,
    },
    /// Proposes a change to the orgs, with the proposer's approval; it takes
    /// effect once a majority of the active orgs approve (see `roster`).
    ProposeOrgChange {
        change_id: String,
        change: crate::roster::OrgChange,
    },
    ApproveOrgChange {
        change_id: String,
    },
    /// The owner of an input of a pending publication approves it, or
    /// refuses it saying why.
    DecidePublication {
        dataset_id: String,
        approve: bool,
        reason: String,
    },
    /// Its proposer takes back a pending org change.
    WithdrawOrgChange {
        change_id: String,
    },
    /// An active org refuses a pending org change; a majority's refusals
    /// drop it.
    DenyOrgChange {
        change_id: String,
    },
    /// Audit: the owner's node is about to disclose the lease's metadata to
    /// `reader`, a user of the lessee, `reads` times: the reads of that user
    /// that waited for this record together, 1 to
    /// [`crate::MAX_READS_PER_RECORD`]. Only the owner signs it. Last, so
    /// that the variants before keep their index in the canonical bytes.
    RecordReads {
        lease_id: String,
        reader: String,
        reads: u32,
    },
}

impl Payload {
    /// Short name for logs and the API.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RegisterDataset { .. } => "register_dataset",
            Self::UpdateDataset { .. } => "update_dataset",
            Self::RetireDataset { .. } => "retire_dataset",
            Self::RequestLease { .. } => "request_lease",
            Self::GrantLease { .. } => "grant_lease",
            Self::DenyLease { .. } => "deny_lease",
            Self::ReleaseLease { .. } => "release_lease",
            Self::RevokeLease { .. } => "revoke_lease",
            Self::ExtendLease { .. } => "extend_lease",
            Self::StartRun { .. } => "start_run",
            Self::FinishRun { .. } => "finish_run",
            Self::RecordAccess { .. } => "record_access",
            Self::ApproveMembership { .. } => "approve_membership",
            Self::RequestComputeRun { .. } => "request_compute_run",
            Self::StartComputeRun { .. } => "start_compute_run",
            Self::DecideRelease { .. } => "decide_release",
            Self::DecidePublication { .. } => "decide_publication",
            Self::ProposeOrgChange { .. } => "propose_org_change",
            Self::ApproveOrgChange { .. } => "approve_org_change",
            Self::WithdrawOrgChange { .. } => "withdraw_org_change",
            Self::DenyOrgChange { .. } => "deny_org_change",
            Self::RecordReads { .. } => "record_reads",
        }
    }
}

/// The signed part of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxBody {
    pub network_id: String,
    pub org: OrgId,
    /// Per-org; must be fresh (see [`crate::NetworkPolicy::nonce_window`]).
    pub nonce: u64,
    pub created_at_ms: i64,
    pub payload: Payload,
}

impl TxBody {
    pub fn canonical_bytes(&self) -> Vec<u8> {
        canonical::to_bytes(self)
    }

    pub fn id(&self) -> TxId {
        TxId(Sha256::digest(self.canonical_bytes()).into())
    }

    pub fn sign(self, key: &SigningKey) -> SignedTx {
        let signature = key.sign(&self.canonical_bytes()).to_bytes().to_vec();
        SignedTx { body: self, signature }
    }
}

/// A body and the ed25519 signature of its canonical bytes by `body.org`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTx {
    pub body: TxBody,
    /// 64 bytes; a `Vec` so a malformed length is a rejection, not a decode failure.
    pub signature: Vec<u8>,
}

impl SignedTx {
    pub fn id(&self) -> TxId {
        self.body.id()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        canonical::to_bytes(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ChaincodeError> {
        canonical::from_bytes(bytes, "signed transaction")
    }

    /// Checks the signature against the genesis key of `body.org`, under
    /// the rule every block's signatures are checked by.
    pub fn verify(&self, genesis: &Genesis) -> Result<(), ChaincodeError> {
        crate::signatures::verify_one(genesis, self)
    }
}
