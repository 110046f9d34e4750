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

use std::sync::Arc;
use std::time::{Duration, Instant};

use leasehold_chaincode::{SignedTx, TxId};
use tracing::{debug, info, warn};

use super::mempool::sized;
use super::Consensus;
use crate::ledger::followed::Tracked;
use crate::ledger::store::encode;
use crate::raft::NodeId;
use crate::wire::Rpc;

/// How often the overdue are looked for.
const TICK_MS: u64 = 200;
/// Txs per relay message.
const RELAY_TXS: usize = 500;

/// Looks for overdue txs every `TICK_MS`: relays them, then accuses.
pub(crate) async fn run(inner: Arc<Consensus>) {
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

async fn check(inner: &Arc<Consensus>, overdue: Vec<(TxId, Tracked)>) {
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
fn lagging(inner: &Consensus) -> bool {
    let m = inner.raft.metrics().borrow().clone();
    let applied = m.last_applied.map_or(0, |l| l.index);
    m.last_log_index.unwrap_or(0) > applied + 2
}

/// Sends `txs` to every other node, and into this node's own mempool for
/// its leader of the moment.
async fn relay_to_all(inner: &Arc<Consensus>, txs: Vec<SignedTx>) {
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
async fn accuse(inner: &Arc<Consensus>, leader: NodeId, txs: &[Tracked]) {
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
    super::gate::shun(inner, leader, shun);
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
pub(crate) fn follow_relayed(inner: &Consensus, txs: &[SignedTx]) {
    if let Some(leader) = inner.leader().filter(|l| *l != inner.node_id) {
        inner.ledger.watch.relayed(leader, txs, inner.ledger.head().height);
    }
}
