//! Raft membership follows the ledger: the voters are the orgs a majority
//! approved on the ledger (`chaincode::membership`), the genesis orgs until
//! then. The leader proposes the raft change once the approving block is
//! committed; every follower admits a membership entry only for a voter set
//! that its own committed state allows (see `gate`).

use std::collections::BTreeSet;
use std::sync::Arc;

use leasehold_chaincode::membership::{view, voters, MembershipView};
use leasehold_chaincode::roster::Roster;
use leasehold_chaincode::MemState;
use openraft::{BasicNode, Membership};
use serde::Serialize;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::Consensus;
use crate::error::Result;
use crate::raft::NodeId;

fn node_ids(inner: &Consensus, orgs: &[String]) -> BTreeSet<NodeId> {
    let roster = inner.ledger.roster();
    orgs.iter().filter_map(|o| roster.node_id(o)).collect()
}

/// The node ids of the voter set in effect in this node's committed state.
fn in_effect(inner: &Consensus) -> Option<BTreeSet<NodeId>> {
    let orgs = voters(&inner.ledger.store, &inner.ledger.roster().orgs).ok()?;
    Some(node_ids(inner, &orgs))
}

/// Whether a membership a peer sends may be taken: every configuration in
/// it (two while a change is in progress) is the genesis voters while no
/// org change has taken effect, the set in effect on this node's ledger,
/// one this node's raft already holds, or a held one without the orgs that
/// left (still a majority of the active orgs), so departed voters can be
/// removed while a joined node catches up.
/// Learners are not checked: they vote on nothing, and only a leader sends
/// them anything, which it could send anyone anyway.
pub(crate) fn allowed(inner: &Consensus, m: &Membership<NodeId, BasicNode>) -> bool {
    allowed_with(inner, m, None)
}

/// As [`allowed`]; a snapshot's membership may also be the voters in effect
/// in its own `cfg` state, once that state is checked as certified.
pub(crate) fn allowed_with(inner: &Consensus, m: &Membership<NodeId, BasicNode>, cfg: Option<&MemState>) -> bool {
    let roster = inner.ledger.roster();
    let genesis: BTreeSet<NodeId> = (1..=inner.ledger.genesis.orgs.len() as NodeId).collect();
    let effective = in_effect(inner);
    let theirs = cfg.and_then(|cfg| {
        let roster = Roster::load(cfg, &inner.ledger.genesis).ok()?;
        let orgs = voters(cfg, &roster.orgs).ok()?;
        Some(orgs.iter().filter_map(|o| roster.node_id(o)).collect::<BTreeSet<NodeId>>())
    });
    let metrics = inner.raft.metrics().borrow().membership_config.clone();
    let held = metrics.membership().get_joint_config();
    let trimmed = |c: &BTreeSet<NodeId>| {
        let Some(e) = effective.as_ref() else { return false };
        c.len() * 2 > roster.orgs.orgs.len() && held.iter().any(|h| h.intersection(e).eq(c.iter()))
    };
    m.get_joint_config().iter().all(|c| {
        (*c == genesis && !roster.changed)
            || Some(c) == effective.as_ref()
            || Some(c) == theirs.as_ref()
            || held.contains(c)
            || trimmed(c)
    })
}

/// On the leader, brings raft's membership to the voter set in effect
/// whenever a block changes it, and at least every second while it differs.
pub(crate) async fn run(inner: Arc<Consensus>) {
    let mut heads = inner.ledger.watch_head();
    loop {
        if inner.leader() == Some(inner.node_id) {
            reconcile(&inner).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), heads.changed()).await;
    }
}

/// How far behind the leader's log a joining node may be to become a voter.
const MAX_LAG_ENTRIES: u64 = 16;

/// One step towards the voters in effect: a new org's node is added as a
/// learner first, made a voter once it has caught up, and a departed one
/// is removed. openraft makes each change through a joint configuration.
async fn reconcile(inner: &Consensus) {
    let Some(want) = in_effect(inner) else { return };
    let metrics = inner.raft.metrics().borrow().clone();
    let m = metrics.membership_config.membership();
    if m.get_joint_config().len() > 1 {
        // A change the last leader began and did not finish (it lost
        // leadership between the joint and the final entry): openraft
        // leaves finishing it to the new leader, which moves from the
        // joint towards the voters in effect.
        info!(voters = ?want, "finishing a membership change a previous leader began");
        if let Err(e) = inner.raft.change_membership(want, false).await {
            warn!("cannot finish the membership change yet: {e}");
        }
        return;
    }
    let voters: BTreeSet<NodeId> = m.voter_ids().collect();
    let learners: BTreeSet<NodeId> = m.learner_ids().collect();
    if voters == want && learners.iter().all(|l| want.contains(l)) {
        return;
    }
    let peers = inner.peers();
    if let Some(new) = want.iter().find(|id| !voters.contains(id) && !learners.contains(id)) {
        let Some(peer) = peers.peer_of_node.get(new) else { return };
        info!(node = new, "an org joined on the ledger; adding its node as a learner");
        if let Err(e) = inner.raft.add_learner(*new, BasicNode { addr: peer.to_string() }, false).await {
            warn!("cannot add node {new} as a learner yet: {e}");
        }
        return;
    }
    // A departed voter goes first, whatever a joining node is doing: a
    // node that never catches up must not keep a departed org voting.
    // Followers take this set only while it is a majority of the orgs.
    let keep: BTreeSet<NodeId> = voters.intersection(&want).copied().collect();
    if keep != voters && keep.len() * 2 > inner.ledger.roster().orgs.orgs.len() {
        info!(voters = ?keep, "an org left on the ledger; removing its node from the raft voters");
        if let Err(e) = inner.raft.change_membership(keep, false).await {
            warn!("cannot remove the departed voter yet: {e}");
        }
        return;
    }
    let replication = metrics.replication.unwrap_or_default();
    let last = metrics.last_log_index.unwrap_or(0);
    // Nothing matched yet means the node has taken nothing: not caught up.
    let lagging = want.difference(&voters).find(|id| match replication.get(id).cloned().flatten() {
        Some(matched) => matched.index + MAX_LAG_ENTRIES < last,
        None => true,
    });
    if let Some(id) = lagging {
        debug!(node = id, "waiting for the new node to catch up before it votes");
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

impl Consensus {
    pub(crate) fn membership(&self) -> Result<MembershipStatus> {
        let ledger = &self.ledger;
        let roster = ledger.roster();
        let view = view(&ledger.store, &roster.orgs)?;
        let metrics = self.raft.metrics().borrow().membership_config.clone();
        let raft_voters =
            metrics.membership().voter_ids().filter_map(|id| roster.member(id).map(|m| m.info.id.clone())).collect();
        Ok(MembershipStatus { ledger: view, raft_voters })
    }
}
