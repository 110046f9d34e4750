//! The txs this node handed to leaders and follows until a block holds
//! them: the ledger marks them as it commits, and `consensus::censor`
//! relays, and then accuses, what stays missing (see there).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use leasehold_chaincode::{SignedTx, TxId};
use tracing::debug;

use crate::raft::NodeId;

/// Txs followed at most: a node hands no more than its mempool to leaders
/// in a bound's time; what is over is not followed (and said so).
const MAX_TRACKED: usize = 200_000;

/// One tx handed to a leader, and what became of it so far.
#[derive(Clone)]
pub(crate) struct Tracked {
    pub(crate) tx: SignedTx,
    /// The leader that acknowledged it, or last had it relayed.
    pub(crate) leader: NodeId,
    /// Since when it waits: its acknowledgement, or its relay.
    pub(crate) since: Instant,
    /// Relayed to every node already: next time, the leader is accused.
    pub(crate) relayed: bool,
    /// Order of acknowledgement, among this node's txs.
    pub(crate) seq: u64,
    /// This node's height when it was relayed.
    pub(crate) relayed_at_height: u64,
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
    pub(crate) fn relayed(&self, leader: NodeId, txs: &[SignedTx], height: u64) {
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
    pub(crate) fn overdue(&self, now: Instant, bound: Duration) -> Vec<(TxId, Tracked)> {
        let tracked = self.tracked.lock().expect("watch lock");
        tracked.iter().filter(|(_, t)| now.duration_since(t.since) > bound).map(|(id, t)| (*id, t.clone())).collect()
    }

    pub(crate) fn update(&self, id: &TxId, f: impl FnOnce(&mut Tracked)) {
        if let Some(t) = self.tracked.lock().expect("watch lock").get_mut(id) {
            f(t);
        }
    }

    pub(crate) fn forget(&self, id: &TxId) {
        self.tracked.lock().expect("watch lock").remove(id);
    }

    /// This node took an AppendEntries (a heartbeat, or entries) from `leader`.
    pub(crate) fn heard(&self, leader: NodeId) {
        *self.heard.lock().expect("watch lock") = Some((leader, Instant::now()));
    }

    /// Whether `leader` reached this node within `within`: a leader cut off
    /// from it is raft's to replace, not a censor.
    pub(crate) fn hears(&self, leader: NodeId, within: Duration) -> bool {
        self.heard.lock().expect("watch lock").is_some_and(|(l, at)| l == leader && at.elapsed() < within)
    }

    /// Whether `leader` ordered a tx of this node acknowledged after `seq`.
    pub(crate) fn skipped(&self, leader: NodeId, seq: u64) -> bool {
        self.ordered_seq.lock().expect("watch lock").get(&leader).is_some_and(|s| *s > seq)
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
