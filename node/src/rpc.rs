//! The node's side of the permissioned p2p network: each peer request is
//! decoded, let through the gate (see `gate`), and answered.

use std::sync::Arc;

use leasehold_chaincode::{verify_signatures, SignedTx};
use leasehold_network::{Inbound, PeerId};
use openraft::raft::{AppendEntriesResponse, InstallSnapshotResponse};
use tokio::sync::mpsc;
use tracing::warn;

use crate::data::plane::DataRefusal;
use crate::gate;
use crate::node::{sized, Inner, Pending};
use crate::raft::{Rpc, RpcReply, TxRefusal};
use crate::store::{decode, encode};
use crate::NodeHandle;

pub(crate) async fn serve_inbound(inner: Arc<Inner>, mut inbound: mpsc::Receiver<Inbound>) {
    while let Some(req) = inbound.recv().await {
        let inner = inner.clone();
        tokio::spawn(async move {
            let reply = match decode::<Rpc>(&req.bytes, "rpc") {
                Ok(rpc) => match handle_rpc(NodeHandle { inner: inner.clone() }, req.peer, rpc).await {
                    Some(reply) => reply,
                    // Refused and logged; the sender gets no answer.
                    None => return,
                },
                Err(e) => {
                    warn!(peer = %req.peer, "undecodable rpc: {e}");
                    return;
                }
            };
            let _ = inner.net.respond(req.reply, encode(&reply)).await;
        });
    }
}

async fn handle_rpc(node: NodeHandle, peer: PeerId, rpc: Rpc) -> Option<RpcReply> {
    let inner = &node.inner;
    Some(match rpc {
        Rpc::Append(r, grants) if gate::admit_append(inner, &peer, &r, &grants) => {
            let (term, commit) = (r.vote.leader_id().term, r.leader_commit.map(|c| (c.leader_id.term, c.index)));
            let leader = r.vote.leader_id().voted_for();
            let resp = inner.raft.append_entries(r).await;
            if matches!(resp, Ok(AppendEntriesResponse::Success)) {
                inner.fence.leader_heard(term, commit);
                if let Some(leader) = leader {
                    inner.ledger.watch.heard(leader);
                }
            }
            RpcReply::Append(resp)
        }
        Rpc::Vote(r) if gate::admit_vote(inner, &peer, &r.vote) => {
            let vote = r.vote;
            let resp = inner.raft.vote(r).await;
            let granted = resp.as_ref().is_ok_and(|v| v.vote_granted);
            RpcReply::Vote(resp, granted.then(|| crate::election::grant_for(inner, &vote)).flatten())
        }
        Rpc::Snapshot(r, grants) if gate::admit_snapshot(inner, &peer, &r, &grants) => {
            RpcReply::Snapshot(crate::receive_snapshot::receive(inner, &peer, r).await?)
        }
        // Refused: a sender in a lower term than this node's is told so, as
        // openraft would, so a stale leader steps down; others get nothing.
        Rpc::Append(r, _) => {
            let mine = inner.raft.metrics().borrow().vote;
            (mine > r.vote).then_some(RpcReply::Append(Ok(AppendEntriesResponse::HigherVote(mine))))?
        }
        Rpc::Snapshot(r, _) => {
            let mine = inner.raft.metrics().borrow().vote;
            (mine > r.vote).then_some(RpcReply::Snapshot(Ok(InstallSnapshotResponse { vote: mine })))?
        }
        Rpc::Vote(_) => return None,
        Rpc::Forward(txs) => RpcReply::Forward(accept_forwarded(inner, peer, txs)),
        Rpc::Relay(txs) => RpcReply::Relay(accept_relayed(inner, peer, txs)),
        // A chunk is up to 4 MiB read from disk: off the async threads,
        // which carry raft's heartbeats too.
        Rpc::Data(req) => {
            let org = inner.peers().org_name(&peer);
            let Some(_slot) = inner.limits.serving.enter(&org) else {
                let max = crate::limits::DATA_IN_FLIGHT;
                return Some(RpcReply::Data(Err(DataRefusal::InFlight { max, org })));
            };
            let owner = node.clone();
            let served = tokio::task::spawn_blocking(move || crate::data::plane::serve(&owner.inner, peer, req)).await;
            let served = served.unwrap_or_else(|e| Err(DataRefusal::Failed(e.to_string())));
            if let Ok(crate::data::plane::DataReply::Chunk(bytes)) = &served {
                inner.ledger.metrics.data_plane("served", bytes.len() as u64);
            }
            RpcReply::Data(served)
        }
        Rpc::Metadata(req) => RpcReply::Metadata(crate::disclose::serve(&node, peer, req).await),
        Rpc::Certify(certs) => RpcReply::Certify(crate::certify::accept(inner, peer, certs)),
        Rpc::Compute(req) => RpcReply::Compute(crate::compute::serve(&node, peer, req).await),
        Rpc::Term => RpcReply::Term(crate::fence::term_reply(inner)?),
    })
}

/// A forwarded tx is held to what a client's is: the right network, a
/// valid signature, not yet committed, a bounded size, and within the
/// forwarding peer's share of the mempool.
fn accept_forwarded(inner: &Inner, peer: PeerId, txs: Vec<SignedTx>) -> Result<(), TxRefusal> {
    if inner.leader() != Some(inner.node_id) {
        return Err(TxRefusal::NotLeader);
    }
    let admitted = admit(inner, peer, txs)?;
    enqueue(inner, peer, admitted)
}

/// Txs another node's leader acknowledged and did not order: held to what
/// a forwarded tx is, then proposed if this node leads, else handed to its
/// leader and followed (see `censor`).
fn accept_relayed(inner: &Inner, peer: PeerId, txs: Vec<SignedTx>) -> Result<(), TxRefusal> {
    let admitted = admit(inner, peer, txs)?;
    let followed: Vec<SignedTx> = admitted.iter().map(|p| p.tx.clone()).collect();
    enqueue(inner, peer, admitted)?;
    crate::censor::follow_relayed(inner, &followed);
    Ok(())
}

/// The txs of `txs` from `peer` that pass the checks, counted against the
/// peer's share of the mempool: all or nothing.
fn admit(inner: &Inner, peer: PeerId, txs: Vec<SignedTx>) -> Result<Vec<Pending>, TxRefusal> {
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
    let admitted = crate::censor_tests::censored(inner, admitted);
    {
        // All or nothing: a batch half admitted would be resent whole.
        let mut counts = inner.forwarded.lock().expect("forwarded lock");
        let n = counts.entry(peer).or_default();
        if *n + admitted.len() > share {
            return Err(TxRefusal::ShareFull { share });
        }
        *n += admitted.len();
    }
    if refused > 0 {
        let org = inner.peers().org_name(&peer);
        warn!(%peer, "dropped {refused} forwarded txs from {org}: forged, for another network, committed or too large");
    }
    Ok(admitted)
}

/// Puts what `admit` counted into the mempool; what does not fit is
/// released from the peer's share, and the whole refused.
fn enqueue(inner: &Inner, peer: PeerId, admitted: Vec<Pending>) -> Result<(), TxRefusal> {
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
