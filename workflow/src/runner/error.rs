//! Why the runner did not do what it was asked, sorted by what the asker
//! can do about it. The node's own errors reach the runner through its
//! [`Port`](super::Port) and come back out unchanged, boxed in `Node`.

use crate::WorkflowError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The workflow's field at fault, and why.
    #[error("{0}")]
    Workflow(#[from] WorkflowError),
    /// The ledger refused, or could not be read.
    #[error("chaincode: {0}")]
    Ledger(#[from] leasehold_chaincode::ChaincodeError),
    #[error("{0}")]
    NotFound(String),
    /// Who asks may not have this (a run not theirs, a request not signed by them).
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the state of a run or of the ledger.
    #[error("{0}")]
    Conflict(String),
    /// This node cannot do it now or in its configuration.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    File(#[from] leasehold_files::FileError),
    /// Data that came from elsewhere did not match what the ledger says.
    #[error("data plane: {0}")]
    Data(String),
    /// The node's own error, from a call through the port, kept whole.
    #[error("{0}")]
    Node(Box<dyn std::error::Error + Send + Sync>),
}

impl RunError {
    pub(crate) fn file(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self::File(leasehold_files::FileError::new(path, e))
    }
}

pub type Result<T, E = RunError> = std::result::Result<T, E>;
