//! The fence around a node restored from a backup.
//!
//! Raft's safety rests on each node remembering its vote and every entry it
//! acknowledged. A restored node forgot both: it could vote twice in a term,
//! help elect a leader missing entries its earlier self helped commit, or
//! help a deposed leader, whose term it no longer knows is over, commit.
//! So the fence goes through three steps before it comes down for good:
//! 1. **Learning:** it asks the other voters their raft term until enough
//!    have answered that every quorum is among them (n - q + 1 of them),
//!    and takes the highest as its floor: no leader was elected above it.
//!    Meanwhile it takes no AppendEntries or snapshot at all.
//! 2. **Waiting:** it takes them only from a leader of the floor's term or
//!    later (which proves its election with a majority's signed votes), so
//!    a deposed leader cannot commit through it.
//! 3. **Catching up:** once such a leader shows a commit index of its own
//!    term (so covering every entry committed before), it applies up to it.
//!
//! Throughout it neither stands for election nor grants a vote.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tracing::{info, warn};

use super::Consensus;
use crate::error::Result;
use crate::ledger::store::{decode, encode, Store, CF_RAFT_META};
use crate::raft::NodeId;
use crate::wire::TermReply;
use crate::wire::{Rpc, RpcReply};

/// In `raft_meta`: the height of the backup a node was restored from, until
/// the fence comes down.
pub(crate) const KEY: &[u8] = b"restored_from_height";

/// A term above this from a peer is a lie: no election ever gets there.
const MAX_CREDIBLE_TERM: u64 = 1 << 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Down,
    Learning,
    Waiting { floor: u64 },
    CatchingUp { floor: u64, index: u64 },
}

pub(crate) struct Fence(Mutex<State>);

impl Fence {
    pub(crate) fn load(store: &Store) -> Result<Self> {
        let restored = store.get::<u64>(CF_RAFT_META, KEY)?.is_some();
        Ok(Self(Mutex::new(if restored { State::Learning } else { State::Down })))
    }

    fn state(&self) -> State {
        *self.0.lock().expect("fence lock")
    }

    /// Where the fence stands, for status: `None` once it is down.
    pub(crate) fn phase(&self) -> Option<&'static str> {
        match self.state() {
            State::Down => None,
            State::Learning => Some("learning the voters' terms"),
            State::Waiting { .. } => Some("waiting for a leader elected after the backup"),
            State::CatchingUp { .. } => Some("catching up"),
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.state() != State::Down
    }

    /// Whether a leader of `term` may send AppendEntries or a snapshot.
    pub(crate) fn admits_leader_of(&self, term: u64) -> bool {
        match self.state() {
            State::Down => true,
            State::Learning => false,
            State::Waiting { floor } | State::CatchingUp { floor, .. } => term >= floor,
        }
    }

    /// This node took an AppendEntries from the leader of `term`, which
    /// showed `commit` (term, index) as committed.
    pub(crate) fn leader_heard(&self, term: u64, commit: Option<(u64, u64)>) {
        // A commit of the leader's own term covers all committed before it;
        // one of an earlier term may lag what its predecessor committed.
        let Some((_, index)) = commit.filter(|(t, _)| *t == term) else { return };
        let mut state = self.0.lock().expect("fence lock");
        if let State::Waiting { floor } = *state {
            if term >= floor {
                info!(term, index, "restored node: an elected leader is heard; catching up before voting");
                *state = State::CatchingUp { floor, index };
            }
        }
    }
}

/// Takes the fence through its steps (`start` turned elections off); returns
/// at once on a node not restored.
pub(crate) async fn watch(inner: Arc<Consensus>) {
    if !inner.fence.is_up() {
        return;
    }
    warn!("restored from a backup: this node neither votes nor stands for election until it has caught up");
    let Some(floor) = learn_floor(&inner).await else {
        // The only voter: no other node can hold what it forgot.
        while !lift(&inner, 0) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        return;
    };
    info!(floor, "restored node: no leader was elected above term {floor}; waiting for one at or above it");
    *inner.fence.0.lock().expect("fence lock") = State::Waiting { floor };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let State::CatchingUp { index, .. } = inner.fence.state() else { continue };
        let applied = inner.raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
        if applied >= index && lift(&inner, applied) {
            return;
        }
    }
}

fn lift(inner: &Consensus, applied: u64) -> bool {
    let store = &inner.ledger.store;
    let mut batch = rocksdb::WriteBatch::default();
    batch.delete_cf(store.cf(CF_RAFT_META), KEY);
    if let Err(e) = store.write_sync(batch) {
        warn!("cannot lift the restore fence: {e}; retrying");
        return false;
    }
    *inner.fence.0.lock().expect("fence lock") = State::Down;
    inner.raft.runtime_config().elect(true);
    info!(applied, "restored node caught up; it votes and stands for election again");
    true
}

/// This node's answer to `Rpc::Term`; none while it is fenced itself, since
/// it too has forgotten what came after its backup.
pub(crate) fn term_reply(inner: &Consensus) -> Option<TermReply> {
    if inner.fence.is_up() {
        return None;
    }
    let m = inner.raft.metrics().borrow().clone();
    let membership = m.membership_config;
    Some(TermReply {
        term: m.current_term,
        membership_index: membership.log_id().map_or(0, |l| l.index),
        voters: membership.membership().voter_ids().collect(),
    })
}

/// The highest raft term among enough of the other voters that every
/// quorum of the voters holds one of them; `None` if this is the only voter.
/// The voters are this node's own set, or a newer one that a majority of
/// that newer set's other members report alike ([`confirmed_voters`]): the
/// backup's may be older, and no one reply may change it.
async fn learn_floor(inner: &Consensus) -> Option<u64> {
    let own = {
        let m = inner.raft.metrics().borrow().membership_config.clone();
        (m.membership().voter_ids().collect::<Vec<NodeId>>(), m.log_id().map_or(0, |l| l.index))
    };
    let mut replies: std::collections::BTreeMap<NodeId, TermReply> = Default::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let (voters, _) = confirmed_voters(&own, inner.node_id, &replies);
        let others: Vec<NodeId> = voters.iter().copied().filter(|v| *v != inner.node_id).collect();
        if voters == [inner.node_id] {
            return None;
        }
        // A quorum may hold this node's forgetful self; what the others of
        // it know is seen in any n - q + 1 of the others.
        let needed = (voters.len() + 1 - (voters.len() / 2 + 1)).min(others.len());
        let heard: Vec<u64> = others.iter().filter_map(|n| replies.get(n).map(|r| r.term)).collect();
        if !others.is_empty() && heard.len() >= needed {
            return heard.into_iter().max();
        }
        info!("restored node: {} of the {needed} other voters needed have told their raft term", heard.len());
        tick.tick().await;
        // The members of any set reported too, so a newer one can be vouched for.
        let named = replies.values().flat_map(|r| r.voters.iter().copied()).collect::<Vec<_>>();
        let mut unheard: Vec<NodeId> = others.into_iter().chain(named).filter(|n| *n != inner.node_id).collect();
        unheard.sort_unstable();
        unheard.dedup();
        unheard.retain(|n| !replies.contains_key(n));
        for node in unheard {
            if let Some(reply) = ask_term(inner, node).await {
                replies.insert(node, reply);
            }
        }
    }
}

/// The voter set to learn from: `own` (this node's, by the log index of
/// its membership), or the newest set that more than half of its members
/// other than `me` report alike. A set only a minority vouches for, such as
/// one naming this node alone (which would lift the fence at once), is a
/// lie or not yet known: it changes nothing.
fn confirmed_voters(
    own: &(Vec<NodeId>, u64),
    me: NodeId,
    replies: &std::collections::BTreeMap<NodeId, TermReply>,
) -> (Vec<NodeId>, u64) {
    let mut best = own.clone();
    for r in replies.values() {
        if r.membership_index <= best.1 {
            continue;
        }
        let vouching = replies
            .iter()
            .filter(|(n, o)| **n != me && r.voters.contains(n) && o.membership_index == r.membership_index)
            .filter(|(_, o)| o.voters == r.voters)
            .count();
        if vouching > r.voters.len() / 2 {
            best = (r.voters.clone(), r.membership_index);
        }
    }
    best
}

async fn ask_term(inner: &Consensus, node: NodeId) -> Option<TermReply> {
    let peers = inner.peers();
    let Some(peer) = peers.peer_of_node.get(&node) else {
        warn!(node, "restored node: voter {node} is not an active org on this node's ledger");
        return None;
    };
    let asked = tokio::time::timeout(Duration::from_secs(2), inner.net.request(*peer, encode(&Rpc::Term)));
    let Ok(Ok(bytes)) = asked.await else { return None };
    let Ok(RpcReply::Term(reply)) = decode::<RpcReply>(&bytes, "term") else { return None };
    if reply.voters.len() > leasehold_chaincode::roster::MAX_ORGS {
        warn!(%peer, "restored node: {} names {} voters, more than a network holds; ignored", peers.org_name(peer), reply.voters.len());
        return None;
    }
    if reply.term > MAX_CREDIBLE_TERM {
        let org = peers.org_name(peer);
        warn!(%peer, "restored node: {org} claims raft term {}, which no election reaches; ignored", reply.term);
        return None;
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(state: State) -> Fence {
        Fence(Mutex::new(state))
    }

    fn reply(voters: &[NodeId], index: u64) -> TermReply {
        TermReply { term: 5, membership_index: index, voters: voters.to_vec() }
    }

    #[test]
    fn no_one_reply_changes_the_voters_a_restored_node_learns_from() {
        let own = (vec![1, 2, 3], 10);
        // org3 says the voters are the restored node alone: a lie that
        // would lift the fence at once. It changes nothing.
        let forged: std::collections::BTreeMap<NodeId, TermReply> = [(3, reply(&[1], 1 << 40))].into();
        assert_eq!(confirmed_voters(&own, 1, &forged), own);
        let with_honest = [(2, reply(&[1, 2, 3], 10)), (3, reply(&[1], 1 << 40))].into();
        assert_eq!(confirmed_voters(&own, 1, &with_honest), own);
        // A newer set that a majority of its other members report is taken.
        let newer = [(2, reply(&[1, 2, 4], 20)), (4, reply(&[1, 2, 4], 20)), (3, reply(&[1, 3], 30))].into();
        assert_eq!(confirmed_voters(&own, 1, &newer), (vec![1, 2, 4], 20));
        let half = [(2, reply(&[1, 2, 4], 20))].into();
        assert_eq!(confirmed_voters(&own, 1, &half), own, "one of its two other members");
    }

    #[test]
    fn while_learning_no_leader_is_admitted_and_after_only_those_at_or_above_the_floor() {
        assert!(!fence(State::Learning).admits_leader_of(u64::MAX));
        let f = fence(State::Waiting { floor: 7 });
        assert!(!f.admits_leader_of(6), "a deposed leader");
        assert!(f.admits_leader_of(7) && f.admits_leader_of(8));
        assert!(fence(State::Down).admits_leader_of(0));
    }

    #[test]
    fn only_a_commit_of_the_leaders_own_term_sets_what_to_catch_up_to() {
        let f = fence(State::Waiting { floor: 7 });
        f.leader_heard(8, Some((7, 40)));
        assert_eq!(f.state(), State::Waiting { floor: 7 }, "a commit index learned from its predecessor may lag");
        f.leader_heard(8, None);
        assert_eq!(f.state(), State::Waiting { floor: 7 });
        f.leader_heard(8, Some((8, 52)));
        assert_eq!(f.state(), State::CatchingUp { floor: 7, index: 52 });
        f.leader_heard(9, Some((9, 60)));
        assert_eq!(f.state(), State::CatchingUp { floor: 7, index: 52 }, "the first proven target stands");
        assert!(f.is_up());
    }
}
