//! What a follower lets a peer's raft messages do. openraft orders; this
//! gate decides, before openraft sees a message, whether the sender may say
//! it at all:
//!
//! - a message speaks for its sender's own node only (the leader of an
//!   AppendEntries or InstallSnapshot, the candidate of a vote request);
//! - a leader shows the signed votes of a majority that elected it
//!   (`election`);
//! - a new proposal's time must be within this node's clock, at most
//!   `raft.max_future_ms` ahead and `raft.max_past_ms` behind. Block time is
//!   the proposer's clock, so this is what stops one dishonest or skewed
//!   leader from moving lease expiry: its proposal is not appended, and
//!   without a follower's append nothing commits;
//! - a membership entry or snapshot may only name the voter set in effect
//!   on this node's ledger (the genesis orgs until a majority of the orgs
//!   approve another) or a set its raft already holds: see `membership`.
//!   So no org can drop the honest voters, or restore removed ones, alone;
//! - a leader refused for its time is then ignored (its appends and its
//!   vote requests) for `SHUN_ELECTIONS` election timeouts, so the others
//!   elect a leader whose clock agrees with theirs.
//!
//! The bound: with a majority of honest clocks, block time never runs more
//! than `max_future_ms` ahead of an honest follower's clock, whoever leads.
//! Holding time still is bounded by `max_past_ms` only for a leader that
//! does not lie about its commit index; one that does can hold block time
//! still (nodes still judge leases at the later of their clock and block
//! time when they serve data or disclose metadata).

use std::time::{Duration, Instant};

use leasehold_network::PeerId;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest};
use openraft::{BasicNode, EntryPayload, Membership, Vote};
use tracing::{debug, warn};

use super::election::proves;
use super::Consensus;
use crate::raft::{NodeId, TypeConfig};
use crate::wire::Grant;

/// How long a leader refused for its clock is ignored, in election timeouts.
const SHUN_ELECTIONS: u64 = 4;

fn org_of(inner: &Consensus, peer: &PeerId) -> String {
    inner.peers().org_name(peer)
}

fn node_of(inner: &Consensus, peer: &PeerId) -> Option<NodeId> {
    inner.peers().node_of(peer)
}

/// A raft message names the node it speaks for; it must be the sender's own.
pub(crate) fn speaks_for(inner: &Consensus, peer: &PeerId, vote: &Vote<NodeId>, what: &str) -> bool {
    let sender = node_of(inner, peer);
    let claimed = vote.leader_id().voted_for();
    if sender.is_some() && claimed == sender {
        return true;
    }
    warn!(%peer, "refused {what} from {}: sent by node {sender:?} but it speaks for node {claimed:?}", org_of(inner, peer));
    false
}

/// Ignores `node`'s appends and vote requests for `how_long`: the others
/// elect a leader without it.
pub(crate) fn shun(inner: &Consensus, node: NodeId, how_long: Duration) {
    let mut shunned = inner.shunned.lock().expect("shunned lock");
    let until = Instant::now() + how_long;
    let at = shunned.entry(node).or_insert(until);
    *at = (*at).max(until);
}

/// Whether `node` is ignored now.
pub(crate) fn is_shunned(inner: &Consensus, node: NodeId) -> bool {
    shunned(inner, node)
}

fn shunned(inner: &Consensus, node: NodeId) -> bool {
    let mut shunned = inner.shunned.lock().expect("shunned lock");
    match shunned.get(&node) {
        Some(until) if *until > Instant::now() => true,
        Some(_) => {
            shunned.remove(&node);
            false
        }
        None => false,
    }
}

fn refuse_membership(inner: &Consensus, peer: &PeerId, what: &str, m: &Membership<NodeId, BasicNode>) -> bool {
    let configs = m.get_joint_config();
    let learners: Vec<NodeId> = m.learner_ids().collect();
    warn!(
        %peer,
        "refused {what} from {}: it changes the membership to voters {configs:?} (learners {learners:?}), \
         which no voter set approved by a majority of the orgs on this node's ledger allows",
        org_of(inner, peer)
    );
    false
}

/// Whether to let openraft see this InstallSnapshot.
pub(crate) fn admit_snapshot(
    inner: &Consensus,
    peer: &PeerId,
    r: &InstallSnapshotRequest<TypeConfig>,
    grants: &[Grant],
) -> bool {
    if !speaks_for(inner, peer, &r.vote, "InstallSnapshot")
        || !fenced_in(inner, peer, &r.vote, "InstallSnapshot")
        || !proves(inner, peer, &r.vote, grants, "InstallSnapshot")
    {
        return false;
    }
    // Its membership is checked once the whole file is, against the voters
    // in effect in its own certified state (`receive_snapshot::finish`).
    has_room(inner, "InstallSnapshot")
}

/// Whether the disk has room for what a leader sends; says why not at most
/// once every 10 s, as the leader keeps resending.
fn has_room(inner: &Consensus, what: &str) -> bool {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST_WARNED_MS: AtomicI64 = AtomicI64::new(0);
    let Err(e) = inner.check_disk() else { return true };
    let now = crate::clock::now_ms();
    let last = LAST_WARNED_MS.load(Ordering::Relaxed);
    if now - last > 10_000 && LAST_WARNED_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        warn!("refusing {what} from the leader: {e}");
    }
    false
}

/// A restored node takes a leader's messages only once it knows no leader
/// was elected after it (see `fence`).
fn fenced_in(inner: &Consensus, peer: &PeerId, vote: &Vote<NodeId>, what: &str) -> bool {
    let term = vote.leader_id().term;
    let admitted = inner.fence.admits_leader_of(term);
    if !admitted {
        debug!(%peer, "refused {what} from {} of term {term}: restored from a backup, fenced", org_of(inner, peer));
    }
    admitted
}

/// Whether this node's log holds the entry `id` already, or has applied
/// past it (an applied entry is committed: raft never replaces it).
fn already_held(inner: &Consensus, id: &crate::raft::LogId) -> bool {
    let applied = inner.raft.metrics().borrow().last_applied;
    if applied.is_some_and(|a| a.index >= id.index) {
        return true;
    }
    let store = &inner.ledger.store;
    match store.db().get_cf(store.cf(crate::ledger::store::CF_RAFT_LOG), id.index.to_be_bytes()) {
        Ok(Some(v)) => {
            crate::ledger::store::decode::<crate::raft::Entry>(&v, "raft entry").is_ok_and(|e| e.log_id == *id)
        }
        _ => false,
    }
}

/// Whether to let openraft see this AppendEntries, and how much of it: a
/// membership change this node's ledger does not allow is cut off with
/// every entry after it, and the entries before it are let through. Its
/// approval may be one of them: a follower a block behind receives the
/// approving block and the change the leader proposed on applying it in
/// one message, and refusing the whole would keep it behind for good. The
/// leader hears a partial success and sends the rest again (`inbound`).
pub(crate) fn admit_append(
    inner: &Consensus,
    peer: &PeerId,
    r: &mut AppendEntriesRequest<TypeConfig>,
    grants: &[Grant],
) -> bool {
    if !speaks_for(inner, peer, &r.vote, "AppendEntries")
        || !fenced_in(inner, peer, &r.vote, "AppendEntries")
        || !proves(inner, peer, &r.vote, grants, "AppendEntries")
    {
        return false;
    }
    if let Some((cut, m)) =
        r.entries.iter().enumerate().find_map(|(i, e)| disallowed_membership(inner, e).map(|m| (i, m)))
    {
        if cut == 0 {
            return refuse_membership(inner, peer, "AppendEntries", m);
        }
        debug!(%peer, "taking the {cut} entries before a membership change this node's ledger does not allow yet");
        r.entries.truncate(cut);
    }
    // Heartbeats carry no entries and keep this node from standing for
    // election; only what would fill the disk is refused.
    if !r.entries.is_empty() && !has_room(inner, "AppendEntries") {
        return false;
    }
    let Some(node) = node_of(inner, peer) else { return false };
    if shunned(inner, node) {
        return false;
    }
    // The sender's own claim of what is committed exempts entries from the
    // past bound only (a follower catching up receives old entries); no
    // entry is ever exempt from the future bound.
    let committed = r.leader_commit.map_or(0, |c| c.index);
    let (now, raft) = (crate::clock::now_ms(), &inner.cfg.raft);
    for e in &r.entries {
        let EntryPayload::Normal(p) = &e.payload else { continue };
        let (ahead, behind) = (p.time_ms.saturating_sub(now), now.saturating_sub(p.time_ms));
        let too_old = e.log_id.index > committed && behind > raft.max_past_ms as i64;
        if ahead > raft.max_future_ms as i64 || too_old {
            let shun = Duration::from_millis(raft.election_max_ms * SHUN_ELECTIONS);
            self::shun(inner, node, shun);
            warn!(
                %peer,
                "refused AppendEntries from {}: its proposal's time is {ahead} ms from this node's clock \
                 (at most {} ahead and {} behind); ignoring its node for {} ms",
                org_of(inner, peer),
                raft.max_future_ms,
                raft.max_past_ms,
                shun.as_millis()
            );
            return false;
        }
    }
    true
}

/// The membership `e` changes to, if this node may not take it. A new
/// leader resends entries this node already took: a past change is no
/// longer a voter set in effect, and is no change.
fn disallowed_membership<'a>(
    inner: &Consensus,
    e: &'a crate::raft::Entry,
) -> Option<&'a Membership<NodeId, BasicNode>> {
    match &e.payload {
        EntryPayload::Membership(m) if !already_held(inner, &e.log_id) && !super::membership::allowed(inner, m) => {
            Some(m)
        }
        _ => None,
    }
}

/// Whether to let openraft see this vote request: from a voter in this
/// node's membership (a removed org must not collect signed votes), not
/// shunned.
pub(crate) fn admit_vote(inner: &Consensus, peer: &PeerId, vote: &Vote<NodeId>) -> bool {
    if !speaks_for(inner, peer, vote, "a vote request") {
        return false;
    }
    if inner.fence.is_up() {
        debug!(%peer, "refused a vote request from {}: restored from a backup, not caught up", org_of(inner, peer));
        return false;
    }
    let Some(node) = node_of(inner, peer) else { return false };
    let voter = inner.raft.metrics().borrow().membership_config.membership().voter_ids().any(|v| v == node);
    if !voter {
        warn!(%peer, "refused a vote request from {}: its node is not a voter", org_of(inner, peer));
    }
    voter && !shunned(inner, node)
}
