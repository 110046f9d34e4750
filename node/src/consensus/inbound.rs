//! A peer's consensus messages: raft's own (let through the `gate` first),
//! forwarded and relayed txs, block certificates and a restored node's
//! question for the term. Every one is a hostile peer's until checked.

use std::time::Duration;

use leasehold_chaincode::{verify_signatures, SignedTx};
use leasehold_network::PeerId;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotResponse};
use tracing::warn;

use super::mempool::{sized, Pending};
use super::{gate, Consensus};
use crate::raft::TypeConfig;
use crate::wire::{Grant, Rpc, RpcReply, TxRefusal};

impl Consensus {
    /// The answer to `rpc` from `peer`, or `None` to refuse it unanswered.
    /// Only consensus's own messages come here (see the node's `rpc`).
    pub(crate) async fn answer(&self, peer: PeerId, rpc: Rpc) -> Option<RpcReply> {
        let inner = self;
        Some(match rpc {
            Rpc::Append(r, grants) => return self.answer_append(peer, r, &grants).await,
            Rpc::Vote(r) if gate::admit_vote(inner, &peer, &r.vote) => {
                let vote = r.vote;
                let resp = inner.raft.vote(r).await;
                let granted = resp.as_ref().is_ok_and(|v| v.vote_granted);
                RpcReply::Vote(resp, granted.then(|| super::election::grant_for(inner, &vote)).flatten())
            }
            Rpc::Snapshot(r, grants) if gate::admit_snapshot(inner, &peer, &r, &grants) => {
                RpcReply::Snapshot(super::receive_snapshot::receive(inner, &peer, r).await?)
            }
            // Refused: as for an AppendEntries (see `answer_append`).
            Rpc::Snapshot(r, _) => {
                let mine = inner.raft.metrics().borrow().vote;
                (mine > r.vote).then_some(RpcReply::Snapshot(Ok(InstallSnapshotResponse { vote: mine })))?
            }
            Rpc::Vote(_) => return None,
            Rpc::Forward(txs) => RpcReply::Forward(accept_forwarded(inner, peer, txs)),
            Rpc::Relay(txs) => RpcReply::Relay(accept_relayed(inner, peer, txs)),
            Rpc::Certify(certs) => RpcReply::Certify(super::certify::accept(inner, peer, certs)),
            Rpc::Term => RpcReply::Term(super::fence::term_reply(inner)?),
            Rpc::Data(_) | Rpc::Metadata(_) | Rpc::Compute(_) => return None,
        })
    }
}

impl Consensus {
    /// An AppendEntries, as far as the `gate` lets it through. Refused, a
    /// sender in a lower term than this node's is told so, as openraft
    /// would, so a stale leader steps down; others get nothing.
    async fn answer_append(
        &self,
        peer: PeerId,
        mut r: AppendEntriesRequest<TypeConfig>,
        grants: &[Grant],
    ) -> Option<RpcReply> {
        let sent = r.entries.len();
        if !gate::admit_append(self, &peer, &mut r, grants) {
            let mine = self.raft.metrics().borrow().vote;
            return (mine > r.vote).then_some(RpcReply::Append(Ok(AppendEntriesResponse::HigherVote(mine))));
        }
        let (term, commit) = (r.vote.leader_id().term, r.leader_commit.map(|c| (c.leader_id.term, c.index)));
        let leader = r.vote.leader_id().voted_for();
        // Cut by the gate: the last entry taken.
        let cut = (r.entries.len() < sent).then(|| r.entries.last().map(|e| e.log_id)).flatten();
        let resp = self.raft.append_entries(r).await;
        if !matches!(resp, Ok(AppendEntriesResponse::Success)) {
            return Some(RpcReply::Append(resp));
        }
        self.fence.leader_heard(term, commit);
        if let Some(leader) = leader {
            self.ledger.watch.heard(leader);
        }
        let Some(taken) = cut else { return Some(RpcReply::Append(resp)) };
        // What of it the leader says is committed, which this node applies.
        // A follower that took only the entries before a membership change
        // waits a little for them to apply: the change, sent again at once,
        // is then usually allowed rather than refused into the leader's
        // half-second backoff. Half a heartbeat, as the leader waits one
        // for this answer (openraft's replication timeout).
        let applies = commit.map_or(0, |(_, index)| index).min(taken.index);
        let wait = Duration::from_millis(self.cfg.raft.heartbeat_ms / 2);
        let _ = self.raft.wait(Some(wait)).applied_index_at_least(Some(applies), "cut append").await;
        Some(RpcReply::Append(Ok(AppendEntriesResponse::PartialSuccess(Some(taken)))))
    }
}

/// A forwarded tx is held to what a client's is: the right network, a
/// valid signature, not yet committed, a bounded size, and within the
/// forwarding peer's share of the mempool.
fn accept_forwarded(inner: &Consensus, peer: PeerId, txs: Vec<SignedTx>) -> Result<(), TxRefusal> {
    if inner.leader() != Some(inner.node_id) {
        return Err(TxRefusal::NotLeader);
    }
    let admitted = admit(inner, peer, txs)?;
    enqueue(inner, peer, admitted)
}

/// Txs another node's leader acknowledged and did not order: held to what
/// a forwarded tx is, then proposed if this node leads, else handed to its
/// leader and followed (see `censor`).
fn accept_relayed(inner: &Consensus, peer: PeerId, txs: Vec<SignedTx>) -> Result<(), TxRefusal> {
    let admitted = admit(inner, peer, txs)?;
    let followed: Vec<SignedTx> = admitted.iter().map(|p| p.tx.clone()).collect();
    enqueue(inner, peer, admitted)?;
    super::censor::follow_relayed(inner, &followed);
    Ok(())
}

/// The txs of `txs` from `peer` that pass the checks, counted against the
/// peer's share of the mempool: all or nothing.
fn admit(inner: &Consensus, peer: PeerId, txs: Vec<SignedTx>) -> Result<Vec<Pending>, TxRefusal> {
    inner.check_disk().map_err(|e| TxRefusal::RefusesWrites(e.to_string()))?;
    let roster = inner.ledger.roster();
    let genesis = &roster.orgs;
    let share = (inner.cfg.block.mempool_capacity / genesis.orgs.len().max(1)).max(1);
    let sigs = verify_signatures(genesis, &txs);
    let total = txs.len();
    let admitted: Vec<Pending> = txs
        .into_iter()
        .zip(sigs)
        .filter(|(tx, sig)| {
            let committed = matches!(inner.ledger.store.tx_location(&tx.id()), Ok(Some(_)));
            tx.body.network_id == genesis.network_id && sig.is_ok() && !committed
        })
        .filter_map(|(tx, _)| sized(tx, Some(peer)))
        .collect();
    let refused = total - admitted.len();
    // A test's dishonest leader drops, silently, what it censors.
    #[cfg(test)]
    let admitted = super::censor_tests::censored(inner, admitted);
    {
        // All or nothing: a batch half admitted would be resent whole.
        let mut counts = inner.forwarded.lock().expect("forwarded lock");
        let n = counts.entry(peer).or_default();
        if *n + admitted.len() > share {
            return Err(TxRefusal::ShareFull { share });
        }
        *n += admitted.len();
    }
    inner.ledger.checked.remember(genesis, admitted.iter().map(|p| &p.tx));
    if refused > 0 {
        let org = inner.peers().org_name(&peer);
        warn!(%peer, "dropped {refused} forwarded txs from {org}: forged, for another network, committed or too large");
    }
    Ok(admitted)
}

/// Puts what `admit` counted into the mempool; what does not fit is
/// released from the peer's share, and the whole refused.
fn enqueue(inner: &Consensus, peer: PeerId, admitted: Vec<Pending>) -> Result<(), TxRefusal> {
    let mut admitted = admitted.into_iter();
    while let Some(p) = admitted.next() {
        if inner.mempool.try_send(p).is_err() {
            for _ in 0..=admitted.len() {
                inner.release_forwarded(&Some(peer));
            }
            return Err(TxRefusal::MempoolFull);
        }
    }
    Ok(())
}
