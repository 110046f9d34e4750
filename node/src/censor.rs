//! A leader that cannot censor. Raft lets a leader order what it likes: one
//! that acknowledges a forwarded tx (`Forward(Ok)`) and never orders it
//! would hold back, say, an owner's revocation for as long as it leads,
//! while it heartbeats like any other. So each node follows every tx of its
//! own org's that it handed to a leader, from the leader's acknowledgement
//! to its block:
//!
//! 1. not ordered within `raft.censorship_bound_ms`, the tx is sent to
//!    every node (`Rpc::Relay`), which hands it on to its leader and follows
//!    it in turn; a leader that lost it honestly (a leader change, a crash)
//!    orders it then;
//! 2. not ordered within as long again, under the same leader, while that
//!    leader ordered a tx this node handed it later, or no block at all, it
//!    censors (an honest leader orders what it acknowledged first in, first
//!    out, so a long queue is not mistaken for it): this node logs the
//!    proof (the tx, and whether later ones were ordered), ignores the
//!    leader for `raft.censor_shun_ms` (its appends and vote requests, see
//!    `gate`) and calls an election. Every node the tx was relayed to does
//!    the same, so a majority elects another leader, which orders it.
//!
//! A node that lags behind its log, or has not heard from the leader
//! lately (cut off from it: raft's case, not a censor's), accuses no one.
//! The bound: a tx a censoring leader drops is ordered under another within
//! about two bounds and an election (`censor_tests.rs`: 2.2 s with a 1 s
//! bound).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use leasehold_chaincode::{SignedTx, TxId};
use tracing::{debug, info, warn};

use crate::node::{sized, Inner};
use crate::raft::{NodeId, Rpc};
use crate::store::encode;

/// Txs followed at most: a node hands no more than its mempool to leaders
/// in a bound's time; what is over is not followed (and said so).
const MAX_TRACKED: usize = 200_000;
/// How often the overdue are looked for.
const TICK_MS: u64 = 200;
/// Txs per relay message.
const RELAY_TXS: usize = 500;

/// One tx handed to a leader, and what became of it so far.
#[derive(Clone)]
struct Tracked {
    tx: SignedTx,
    /// The leader that acknowledged it, or last had it relayed.
    leader: NodeId,
    /// Since when it waits: its acknowledgement, or its relay.
    since: Instant,
    /// Relayed to every node already: next time, the leader is accused.
    relayed: bool,
    /// Order of acknowledgement, among this node's txs.
    seq: u64,
    /// This node's height when it was relayed.
    relayed_at_height: u64,
}

/// The txs this node handed to leaders that are not on its ledger yet.
#[derive(Default)]
pub(crate) struct Watch {
    tracked: Mutex<HashMap<TxId, Tracked>>,
    next_seq: AtomicU64,
    /// The latest acknowledgement of each leader's that its blocks hold:
    /// a tx acknowledged before it and still missing was skipped.
    ordered_seq: Mutex<HashMap<NodeId, u64>>,
    /// The leader whose AppendEntries this node last took, and when.
    heard: Mutex<Option<(NodeId, Instant)>>,
}

impl Watch {
    /// `leader` acknowledged `txs`: those `org` signed (this node's own,
    /// which it answers for) are followed. A tx followed already keeps its
    /// time.
    pub(crate) fn acknowledged(&self, leader: NodeId, org: &str, txs: &[SignedTx]) {
        let own: Vec<SignedTx> = txs.iter().filter(|t| t.body.org == org).cloned().collect();
        if !own.is_empty() {
            self.follow(leader, &own, None);
        }
    }

    /// Another node relayed `txs` to this one, at `height`: their leader
    /// already had them once.
    fn relayed(&self, leader: NodeId, txs: &[SignedTx], height: u64) {
        self.follow(leader, txs, Some(height));
    }

    fn follow(&self, leader: NodeId, txs: &[SignedTx], relayed_at_height: Option<u64>) {
        let mut tracked = self.tracked.lock().expect("watch lock");
        if tracked.len() + txs.len() > MAX_TRACKED {
            debug!(txs = txs.len(), "not following txs: {MAX_TRACKED} are followed already");
            return;
        }
        let now = Instant::now();
        for tx in txs {
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            tracked.entry(tx.id()).or_insert_with(|| Tracked {
                tx: tx.clone(),
                leader,
                since: now,
                relayed: relayed_at_height.is_some(),
                seq,
                relayed_at_height: relayed_at_height.unwrap_or_default(),
            });
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tracked.lock().expect("watch lock").is_empty()
    }

    /// A block holding the txs `ids` was committed: they are ordered.
    pub(crate) fn committed(&self, ids: &[TxId]) {
        let mut tracked = self.tracked.lock().expect("watch lock");
        if tracked.is_empty() {
            return;
        }
        let mut latest: Option<(NodeId, u64)> = None;
        for id in ids {
            if let Some(t) = tracked.remove(id) {
                latest = latest.max(Some((t.leader, t.seq)));
            }
        }
        drop(tracked);
        if let Some((leader, seq)) = latest {
            let mut ordered = self.ordered_seq.lock().expect("watch lock");
            let at = ordered.entry(leader).or_default();
            *at = (*at).max(seq);
        }
    }

    /// The followed txs waiting longer than `bound` at `now`.
    fn overdue(&self, now: Instant, bound: Duration) -> Vec<(TxId, Tracked)> {
        let tracked = self.tracked.lock().expect("watch lock");
        tracked.iter().filter(|(_, t)| now.duration_since(t.since) > bound).map(|(id, t)| (*id, t.clone())).collect()
    }

    fn update(&self, id: &TxId, f: impl FnOnce(&mut Tracked)) {
        if let Some(t) = self.tracked.lock().expect("watch lock").get_mut(id) {
            f(t);
        }
    }

    fn forget(&self, id: &TxId) {
        self.tracked.lock().expect("watch lock").remove(id);
    }

    /// This node took an AppendEntries (a heartbeat, or entries) from `leader`.
    pub(crate) fn heard(&self, leader: NodeId) {
        *self.heard.lock().expect("watch lock") = Some((leader, Instant::now()));
    }

    /// Whether `leader` reached this node within `within`: a leader cut off
    /// from it is raft's to replace, not a censor.
    fn hears(&self, leader: NodeId, within: Duration) -> bool {
        self.heard.lock().expect("watch lock").is_some_and(|(l, at)| l == leader && at.elapsed() < within)
    }

    /// Whether `leader` ordered a tx of this node acknowledged after `seq`.
    fn skipped(&self, leader: NodeId, seq: u64) -> bool {
        self.ordered_seq.lock().expect("watch lock").get(&leader).is_some_and(|s| *s > seq)
    }
}

/// Looks for overdue txs every `TICK_MS`: relays them, then accuses.
pub(crate) async fn run(inner: Arc<Inner>) {
    let bound = Duration::from_millis(inner.cfg.raft.censorship_bound_ms.max(1));
    let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
    loop {
        tick.tick().await;
        let overdue = inner.ledger.watch.overdue(Instant::now(), bound);
        if !overdue.is_empty() {
            check(&inner, overdue).await;
        }
    }
}

async fn check(inner: &Arc<Inner>, overdue: Vec<(TxId, Tracked)>) {
    let Some(leader) = inner.leader() else { return };
    let now = Instant::now();
    let (mut relay, mut accused) = (Vec::new(), Vec::new());
    for (id, t) in overdue {
        // Ordered after all (in a snapshot, or a block this node skipped
        // past): a spent tx, valid or not, is on the ledger.
        if matches!(inner.ledger.store.is_spent(&id), Ok(true)) {
            inner.ledger.watch.forget(&id);
            continue;
        }
        if t.relayed && t.leader == leader && leader != inner.node_id {
            accused.push(t);
        } else {
            // Not yet relayed, or another leader since: every node gets it.
            let height = inner.ledger.head().height;
            inner
                .ledger
                .watch
                .update(&id, |t| (t.relayed, t.since, t.leader, t.relayed_at_height) = (true, now, leader, height));
            relay.push(t.tx);
        }
    }
    if !relay.is_empty() {
        relay_to_all(inner, relay).await;
    }
    // A censor heartbeats: one this node does not hear from is cut off,
    // and raft replaces it; one it hears, while it lags, may have ordered
    // the txs already.
    let recently = Duration::from_millis(inner.cfg.raft.election_max_ms.saturating_mul(2));
    // Proof, not just delay: an honest leader orders what it acknowledged in
    // that order (its mempool is first in, first out), so a later tx of
    // this node's ordered, or no block at all since the relay, is censorship;
    // a long queue at an overloaded leader is neither.
    let height = inner.ledger.head().height;
    let proven = accused.iter().any(|t| inner.ledger.watch.skipped(leader, t.seq) || height == t.relayed_at_height);
    if proven && inner.ledger.watch.hears(leader, recently) && !lagging(inner) {
        accuse(inner, leader, &accused).await;
    } else {
        // No proof yet: looked at again a bound from now, not every tick.
        for t in &accused {
            inner.ledger.watch.update(&t.tx.id(), |w| w.since = now);
        }
    }
}

/// Whether this node has yet to apply entries it holds: then a tx it
/// misses may be ordered already, and it accuses no one.
fn lagging(inner: &Inner) -> bool {
    let m = inner.raft.metrics().borrow().clone();
    let applied = m.last_applied.map_or(0, |l| l.index);
    m.last_log_index.unwrap_or(0) > applied + 2
}

/// Sends `txs` to every other node, and into this node's own mempool for
/// its leader of the moment.
async fn relay_to_all(inner: &Arc<Inner>, txs: Vec<SignedTx>) {
    info!(txs = txs.len(), "txs acknowledged by the leader are not ordered yet: sending them to every node");
    let peers: Vec<_> = inner.peers().org_of_peer.keys().copied().collect();
    // In parts a peer's share of its mempool can take whole.
    for part in txs.chunks(RELAY_TXS) {
        let msg = encode(&Rpc::Relay(part.to_vec()));
        for peer in &peers {
            let (net, msg, peer) = (inner.net.clone(), msg.clone(), *peer);
            tokio::spawn(async move {
                if let Err(e) = net.request(peer, msg).await {
                    debug!(%peer, "relaying txs: {e}");
                }
            });
        }
    }
    for tx in txs {
        if let Some(p) = sized(tx, None) {
            let _ = inner.mempool.try_send(p);
        }
    }
}

/// The leader left `txs` out though every node had them: it is ignored,
/// and another elected. The txs wait again, for the next leader.
async fn accuse(inner: &Arc<Inner>, leader: NodeId, txs: &[Tracked]) {
    let org = inner.ledger.roster().member(leader).map(|m| m.info.id.clone()).unwrap_or_default();
    let term = inner.raft.metrics().borrow().current_term;
    for t in txs.iter().take(8) {
        let skipped = inner.ledger.watch.skipped(leader, t.seq);
        warn!(
            leader = %org,
            term,
            tx = %t.tx.id(),
            "censorship: leader {org} (node {leader}, term {term}) has not ordered tx {} of {} though every node \
             sent it on{}",
            t.tx.id(),
            t.tx.body.org,
            if skipped {
                ", and it ordered txs this node handed it later: it skipped this one"
            } else {
                ", and it ordered no block since"
            },
        );
    }
    let shun = Duration::from_millis(inner.cfg.raft.censor_shun_ms);
    crate::gate::shun(inner, leader, shun);
    warn!(
        "censorship: ignoring {org}'s node for {} ms and calling an election; {} txs wait for the next leader",
        shun.as_millis(),
        txs.len()
    );
    let now = Instant::now();
    for t in txs {
        inner.ledger.watch.update(&t.tx.id(), |w| (w.relayed, w.since) = (false, now));
        // For the next leader: `dispatch` hands nothing to a shunned one.
        if let Some(p) = sized(t.tx.clone(), None) {
            let _ = inner.mempool.try_send(p);
        }
    }
    if let Err(e) = inner.raft.trigger().elect().await {
        debug!("calling an election: {e}");
    }
}

/// Another node relayed `txs` (admitted as forwarded ones are, see
/// `rpc`): this node follows them too, unless it leads.
pub(crate) fn follow_relayed(inner: &Inner, txs: &[SignedTx]) {
    if let Some(leader) = inner.leader().filter(|l| *l != inner.node_id) {
        inner.ledger.watch.relayed(leader, txs, inner.ledger.head().height);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx_of(org: &str, n: u64) -> SignedTx {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let payload = leasehold_chaincode::Payload::ReleaseLease { lease_id: format!("L{n}") };
        leasehold_chaincode::TxBody { network_id: "n".into(), org: org.into(), nonce: n, created_at_ms: 0, payload }
            .sign(&key)
    }

    fn tx(n: u64) -> SignedTx {
        tx_of("org1", n)
    }

    #[test]
    fn a_tx_is_followed_until_a_block_holds_it_and_a_skipped_one_is_known() {
        let w = Watch::default();
        let (a, b) = (tx(1), tx(2));
        w.acknowledged(3, "org1", &[a.clone(), b.clone(), tx_of("org2", 9)]);
        let later = Instant::now() + Duration::from_secs(10);
        assert_eq!(w.overdue(later, Duration::from_secs(3)).len(), 2);
        assert!(w.overdue(Instant::now(), Duration::from_secs(3)).is_empty());
        w.committed(&[b.id()]);
        let left: Vec<TxId> = w.overdue(later, Duration::from_secs(3)).into_iter().map(|(id, _)| id).collect();
        assert_eq!(left, [a.id()]);
        let seq = w.tracked.lock().unwrap()[&a.id()].seq;
        assert!(w.skipped(3, seq), "leader 3 ordered b, acknowledged after a");
        assert!(!w.skipped(2, seq));
        // Acknowledged again (resent), it keeps its first time.
        w.acknowledged(3, "org1", std::slice::from_ref(&a));
        assert_eq!(w.overdue(later, Duration::from_secs(3)).len(), 1);
    }
}
