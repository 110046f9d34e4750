//! The mempool and block cutting: txs admitted here (the node's own, or
//! forwarded and relayed by peers, see `inbound`) are gathered into batches
//! and handed to the leader; the leader proposes them as blocks.

use std::sync::Arc;
use std::time::Duration;

use leasehold_chaincode::SignedTx;
use leasehold_network::PeerId;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, warn};

use super::Consensus;
use crate::block::Proposal;
use crate::ledger::store::{decode, encode};
use crate::wire::{Rpc, RpcReply};

/// One transaction in the mempool, and the peer that forwarded it, if any.
pub(crate) struct Pending {
    pub tx: SignedTx,
    pub from: Option<PeerId>,
    /// Canonical size, measured once at admission.
    pub bytes: usize,
}

/// The largest transaction accepted, in canonical bytes. With
/// `block.max_bytes` it bounds what one raft entry carries.
pub const MAX_TX_BYTES: usize = 256 * 1024;

fn tx_bytes(tx: &SignedTx) -> usize {
    leasehold_chaincode::canonical::to_bytes(tx).len()
}

/// The tx with its size, or `None` if it is over [`MAX_TX_BYTES`].
pub(crate) fn sized(tx: SignedTx, from: Option<PeerId>) -> Option<Pending> {
    let bytes = tx_bytes(&tx);
    (bytes <= MAX_TX_BYTES).then_some(Pending { tx, from, bytes })
}

/// Gathers pending txs into batches: a batch closes at `max_txs` or
/// `timeout_ms` after its first tx (0 by default: when the queue is empty),
/// whichever comes first; one that starts with a forwarded tx closes when
/// the queue is empty; and none closes while the pipeline has no free slot
/// for it, so that under load blocks fill while they wait for one.
pub(super) async fn cut_blocks(inner: Arc<Consensus>, mut pending: mpsc::Receiver<Pending>) {
    let inflight = Arc::new(Semaphore::new(inner.cfg.block.max_inflight));
    let max = inner.cfg.block.max_txs;
    let wait = Duration::from_millis(inner.cfg.block.timeout_ms);
    let max_bytes = inner.cfg.block.max_bytes;
    let mut carry: Option<Pending> = None;
    while let Some(first) = match carry.take() {
        Some(p) => Some(p),
        None => pending.recv().await,
    } {
        inner.release_forwarded(&first.from);
        // A batch another node forwarded already waited its `timeout_ms`
        // there, if it has one: it goes out with whatever else is queued
        // now, not after a second wait.
        let deadline = tokio::time::Instant::now() + if first.from.is_some() { Duration::ZERO } else { wait };
        let mut bytes = first.bytes;
        let mut batch = vec![first.tx];
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, pending.recv()).await {
                Ok(Some(p)) => {
                    let size = p.bytes;
                    if bytes + size > max_bytes {
                        // Starts the next block instead.
                        carry = Some(p);
                        break;
                    }
                    inner.release_forwarded(&p.from);
                    bytes += size;
                    batch.push(p.tx);
                }
                _ => break,
            }
        }
        // While every slot of the pipeline is busy, a batch closed by its
        // deadline keeps gathering: waiting costs it nothing then, and a
        // fuller block carries more for the same round and fsync. (With no
        // wait for more, the default, blocks would otherwise stay small.)
        let permit = loop {
            if let Ok(permit) = inflight.clone().try_acquire_owned() {
                break permit;
            }
            if batch.len() >= max || carry.is_some() {
                match inflight.clone().acquire_owned().await {
                    Ok(permit) => break permit,
                    Err(_) => return,
                }
            }
            tokio::select! {
                permit = inflight.clone().acquire_owned() => match permit {
                    Ok(permit) => break permit,
                    Err(_) => return,
                },
                next = pending.recv() => match next {
                    Some(p) if bytes + p.bytes > max_bytes => carry = Some(p),
                    Some(p) => {
                        inner.release_forwarded(&p.from);
                        bytes += p.bytes;
                        batch.push(p.tx);
                    }
                    None => match inflight.clone().acquire_owned().await {
                        Ok(permit) => break permit,
                        Err(_) => return,
                    },
                },
            }
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            dispatch(&inner, batch).await;
            drop(permit);
        });
    }
}

/// Gets a batch ordered: proposed if this node leads, else forwarded to the
/// leader. Retries across leader changes for a bounded time; submitters whose
/// txs are dropped see "pending" and may resubmit (a tx id commits once).
async fn dispatch(inner: &Consensus, batch: Vec<SignedTx>) {
    const GIVE_UP_AFTER: Duration = Duration::from_secs(10);
    let start = tokio::time::Instant::now();
    while start.elapsed() < GIVE_UP_AFTER {
        match inner.leader() {
            Some(leader) if leader == inner.node_id => {
                // A proposal under a key its org no longer has is refused
                // by every node: wait for a leader whose key counts.
                let mine = inner.key.verifying_key().to_bytes();
                if !inner.ledger.roster().is_key_of(&inner.cfg.org, &mine) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let p = Proposal::new(
                    &inner.ledger.genesis,
                    &inner.cfg.org,
                    &inner.key,
                    crate::clock::now_ms(),
                    batch.clone(),
                );
                match inner.raft.client_write(p).await {
                    Ok(_) => return,
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {}
                    Err(e) => warn!("proposal failed: {e}"),
                }
            }
            // A leader found censoring is not handed this batch: the next is.
            Some(leader) if super::gate::is_shunned(inner, leader) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Some(leader) => {
                let Some(peer) = inner.peers().peer_of_node.get(&leader).copied() else {
                    // A leader this node's ledger no longer lists: wait for the next.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                // A leader cut off from us may take the whole request timeout
                // to fail, while the rest elect another within a second: the
                // batch goes to the new leader as soon as one is known.
                let mut metrics = inner.raft.metrics();
                let replaced = metrics.wait_for(|m| m.current_leader.is_some_and(|l| l != leader));
                let sent = inner.net.request(peer, encode(&Rpc::Forward(batch.clone())));
                tokio::select! {
                    reply = sent => match reply {
                        Ok(bytes) => match decode::<RpcReply>(&bytes, "forward reply") {
                            Ok(RpcReply::Forward(Ok(()))) => {
                                // Acknowledged is not ordered: this org's own txs
                                // are followed until they are (see `censor`).
                                inner.ledger.watch.acknowledged(leader, &inner.cfg.org, &batch);
                                return;
                            }
                            Ok(RpcReply::Forward(Err(e))) => debug!("leader refused batch: {e}"),
                            _ => warn!("unexpected reply to forward"),
                        },
                        Err(e) => debug!("forward failed: {e}"),
                    },
                    _ = replaced => debug!("the leader changed while a batch was forwarded to it"),
                }
            }
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    warn!(txs = batch.len(), "dropping a batch: no leader accepted it in time");
}

impl Consensus {
    pub(crate) fn release_forwarded(&self, from: &Option<PeerId>) {
        if let Some(p) = from {
            if let Some(n) = self.forwarded.lock().expect("forwarded lock").get_mut(p) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Puts one of this node's own txs in the mempool; `false` when it is full.
    pub(crate) fn enqueue_own(&self, pending: Pending) -> bool {
        self.mempool.try_send(pending).is_ok()
    }

    /// Txs waiting in the mempool now.
    pub(crate) fn mempool_len(&self) -> usize {
        self.mempool.max_capacity() - self.mempool.capacity()
    }
}
