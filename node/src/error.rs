use thiserror::Error;

/// Everything that can go wrong in a node.
#[derive(Debug, Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] rocksdb::Error),
    #[error("cannot decode {what}: {reason}")]
    Decode { what: String, reason: String },
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("config: {0}")]
    Config(String),
    #[error("chaincode: {0}")]
    Chaincode(#[from] leasehold_chaincode::ChaincodeError),
    #[error("network: {0}")]
    Network(#[from] leasehold_network::NetworkError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("data plane: {0}")]
    Data(String),
    /// Another org's node answered what it was not asked, or nothing valid.
    #[error("{0}")]
    Peer(String),
    #[error("{0}")]
    Workflow(#[from] leasehold_workflow::WorkflowError),
    #[error("{0}")]
    NotFound(String),
    /// Who asks may not have this (a lease not held, or not active).
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the state of the ledger or of a run.
    #[error("{0}")]
    Conflict(String),
    /// Over a limit another org's node holds this one to: retry later.
    #[error("{0}")]
    Busy(String),
    /// The node cannot do this now or in this configuration.
    #[error("{0}")]
    Unavailable(String),
    /// The data directory's disk is below the node's reserve.
    #[error("{0}")]
    DiskFull(String),
    #[error("verification failed at height {height}: {reason}")]
    Verify { height: u64, reason: String },
    /// The store failed its check; the node will not serve it.
    #[error("{0}")]
    Corrupt(String),
}

impl NodeError {
    pub(crate) fn decode(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::Decode { what: what.into(), reason: e.to_string() }
    }

    pub(crate) fn file(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self::File { path: path.display().to_string(), reason: e.to_string() }
    }
}

impl From<leasehold_files::FileError> for NodeError {
    fn from(e: leasehold_files::FileError) -> Self {
        Self::File { path: e.path, reason: e.reason }
    }
}

pub type Result<T, E = NodeError> = std::result::Result<T, E>;
