//! The status view for people and scripts.

use serde::Serialize;

use crate::node::NodeHandle;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub org: String,
    pub network_id: String,
    pub height: u64,
    pub head_hash: String,
    pub state_root: String,
    pub block_time_ms: i64,
    /// The org whose node leads raft now, if any.
    pub leader: Option<String>,
    /// Orgs whose nodes this node is connected to.
    pub peers: Vec<String>,
    pub raft_term: u64,
    pub raft_applied_index: Option<u64>,
}

impl NodeHandle {
    pub async fn status(&self) -> Status {
        let head = self.ledger().head();
        let metrics = self.inner.raft.metrics().borrow().clone();
        Status {
            org: self.org().to_string(),
            network_id: self.ledger().genesis.network_id.clone(),
            height: head.height,
            head_hash: hex::encode(head.hash),
            state_root: head.state_root.to_hex(),
            block_time_ms: head.time_ms,
            leader: self.leader_org(),
            peers: self.connected_orgs().await,
            raft_term: metrics.current_term,
            raft_applied_index: metrics.last_applied.map(|l| l.index),
        }
    }
}
