use thiserror::Error;

/// Every reason the chaincode can reject a transaction.
///
/// Each message is written for the person who sent the transaction: it names
/// the object, the rule and, where time matters, the moment in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChaincodeError {
    #[error("transaction is for network {got:?}, this ledger is network {expected:?}")]
    WrongNetwork { expected: String, got: String },
    #[error("organisation {0:?} is not a member of this network")]
    UnknownOrg(String),
    #[error("signature does not verify against the signing key of {org:?}")]
    BadSignature { org: String },
    #[error("transaction {0} was already committed (replay)")]
    Replay(String),
    #[error("nonce {nonce} of {org:?} is stale: nonces at or below {floor} are no longer accepted")]
    StaleNonce { org: String, nonce: u64, floor: u64 },
    #[error("transaction was created at {created_at}, outside the accepted window around block time {block_time}")]
    OutsideTimeWindow { created_at: String, block_time: String },
    #[error("field {field:?} is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("{kind} {id:?} does not exist")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id:?} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("only the owner {owner:?} may {action}; {org:?} is not the owner")]
    NotOwner { owner: String, org: String, action: &'static str },
    #[error("dataset {0:?} is retired")]
    Retired(String),
    #[error("{org:?} is not allowed by the policy of dataset {dataset:?}")]
    NotAllowedByPolicy { org: String, dataset: String },
    #[error(
        "a lease of {requested_ms} ms exceeds the maximum of {max_ms} ms allowed by the policy of dataset {dataset:?}"
    )]
    DurationExceedsPolicy { dataset: String, requested_ms: u64, max_ms: u64 },
    #[error("dataset {dataset:?} is leased exclusively by lease {lease:?} until {until}")]
    ExclusiveConflict { dataset: String, lease: String, until: String },
    #[error("lease {lease:?} is {status}; {action} needs it to be {needs}")]
    LeaseState { lease: String, status: String, action: &'static str, needs: &'static str },
    #[error("lease {lease:?} expired at {expired_at}")]
    LeaseExpired { lease: String, expired_at: String },
    #[error("lease {lease:?} is held by {lessee:?}, not by {org:?}")]
    NotLessee { lease: String, lessee: String, org: String },
    #[error("run {run:?} is {status}; {action} needs it to be {needs}")]
    RunState { run: String, status: String, action: &'static str, needs: &'static str },
    #[error("{0}")]
    Provenance(String),
    #[error("dataset {0:?} is compute-only: its files never leave its owner's node, and runs on it execute there")]
    ComputeOnly(String),
    #[error("state backend failed: {0}")]
    Storage(String),
    #[error("stored record {key:?} cannot be decoded: {reason}")]
    Corrupt { key: String, reason: String },
}

impl ChaincodeError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidField { field, reason: reason.into() }
    }

    /// Whether the error means the ledger itself is broken rather than the
    /// transaction. A node must stop, not record the tx as invalid.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Storage(_) | Self::Corrupt { .. })
    }
}
