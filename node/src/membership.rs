//! Raft membership follows the ledger: the voters are the orgs a majority
//! approved on the ledger (`chaincode::membership`), the genesis orgs until
//! then. The leader proposes the raft change once the approving block is
//! committed; every follower admits a membership entry only for a voter set
//! that its own committed state allows (see `gate`).

use std::collections::BTreeSet;
use std::sync::Arc;

use leasehold_chaincode::membership::{view, voters, MembershipView};
use openraft::{BasicNode, Membership};
use serde::Serialize;
use tracing::{info, warn};

use crate::error::Result;
use crate::node::Inner;
use crate::raft::NodeId;
use crate::NodeHandle;

fn node_ids(inner: &Inner, orgs: &[String]) -> BTreeSet<NodeId> {
    let genesis = &inner.ledger.genesis;
    orgs.iter().filter_map(|o| crate::raft::node_id_of(genesis, o)).collect()
}

/// The node ids of the voter set in effect in this node's committed state.
fn in_effect(inner: &Inner) -> Option<BTreeSet<NodeId>> {
    let orgs = voters(&inner.ledger.store, &inner.ledger.genesis).ok()?;
    Some(node_ids(inner, &orgs))
}

/// Whether a membership a peer sends may be taken: every configuration in
/// it (two while a change is in progress) is the genesis voters, the set in
/// effect on this node's ledger, or one this node's raft already holds; and
/// there are no learners, since no org joins outside the genesis.
pub(crate) fn allowed(inner: &Inner, m: &Membership<NodeId, BasicNode>) -> bool {
    let genesis: BTreeSet<NodeId> = inner.peer_of_node.keys().copied().collect();
    let effective = in_effect(inner);
    let metrics = inner.raft.metrics().borrow().membership_config.clone();
    let held = metrics.membership().get_joint_config();
    m.learner_ids().next().is_none()
        && m.get_joint_config().iter().all(|c| *c == genesis || Some(c) == effective.as_ref() || held.contains(c))
}

/// On the leader, proposes the raft change to the voter set in effect
/// whenever a block changes it.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut heads = inner.ledger.watch_head();
    loop {
        if inner.leader() == Some(inner.node_id) {
            reconcile(&inner).await;
        }
        if heads.changed().await.is_err() {
            return;
        }
    }
}

async fn reconcile(inner: &Inner) {
    let Some(want) = in_effect(inner) else { return };
    let current = inner.raft.metrics().borrow().membership_config.clone();
    let m = current.membership();
    if m.get_joint_config().len() > 1 || m.voter_ids().collect::<BTreeSet<_>>() == want {
        return;
    }
    info!(voters = ?want, "the ledger changed the voters; proposing the raft membership change");
    if let Err(e) = inner.raft.change_membership(want, false).await {
        warn!("cannot change the raft membership yet: {e}");
    }
}

/// The voters as the ledger and raft see them.
#[derive(Debug, Clone, Serialize)]
pub struct MembershipStatus {
    /// In effect on the ledger, and each org's standing approval.
    #[serde(flatten)]
    pub ledger: MembershipView,
    /// The orgs voting in raft now on this node.
    pub raft_voters: Vec<String>,
}

impl NodeHandle {
    pub fn membership(&self) -> Result<MembershipStatus> {
        let ledger = self.ledger();
        let view = view(&ledger.store, &ledger.genesis)?;
        let metrics = self.inner.raft.metrics().borrow().membership_config.clone();
        let raft_voters = metrics
            .membership()
            .voter_ids()
            .filter_map(|id| ledger.genesis.orgs.get(id as usize - 1).map(|o| o.id.clone()))
            .collect();
        Ok(MembershipStatus { ledger: view, raft_voters })
    }
}
