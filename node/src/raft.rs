//! openraft's types for leasehold: each raft entry carries a block
//! proposal. The adapters that store and carry them are in `consensus`.

use openraft::{AnyError, BasicNode, StorageError, StorageIOError};
use serde::{Deserialize, Serialize};

use crate::block::Proposal;

/// Node ids are 1-based positions in the roster's list of every org that
/// ever joined (`chaincode::roster`): the genesis orgs first.
pub type NodeId = u64;

/// What applying one raft entry produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The block height, for entries that carried a proposal.
    pub height: Option<u64>,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;

#[allow(clippy::result_large_err)]
pub(crate) fn read_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::read(AnyError::error(e)).into()
}

#[allow(clippy::result_large_err)]
pub(crate) fn write_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write(AnyError::error(e)).into()
}
