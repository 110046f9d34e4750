//! The node's side of the permissioned p2p network: each peer request is
//! decoded and handed to the subsystem it is for: consensus's own messages
//! to `consensus` (through its `gate`), a lessee's to the data plane,
//! disclosure or compute-to-data.

use leasehold_network::{Inbound, PeerId};
use tokio::sync::mpsc;
use tracing::warn;

use crate::data::objects::ObjectError;
use crate::data::plane::{Owner, Served};
use crate::handle::NodeHandle;
use crate::ledger::store::{decode, encode};
use crate::wire::data::{DataRefusal, DataReply, DataRequest};
use crate::wire::{Rpc, RpcReply};

pub(crate) async fn serve_inbound(node: NodeHandle, mut inbound: mpsc::Receiver<Inbound>) {
    while let Some(req) = inbound.recv().await {
        let node = node.clone();
        tokio::spawn(async move {
            let reply = match decode::<Rpc>(&req.bytes, "rpc") {
                Ok(rpc) => match answer(&node, req.peer, rpc).await {
                    Some(reply) => reply,
                    // Refused and logged; the sender gets no answer.
                    None => return,
                },
                Err(e) => {
                    warn!(peer = %req.peer, "undecodable rpc: {e}");
                    return;
                }
            };
            node.inner.consensus.respond(req.reply, encode(&reply)).await;
        });
    }
}

async fn answer(node: &NodeHandle, peer: PeerId, rpc: Rpc) -> Option<RpcReply> {
    Some(match rpc {
        // A chunk is up to 4 MiB read from disk: off the async threads,
        // which carry raft's heartbeats too.
        Rpc::Data(req) => {
            let org = node.inner.consensus.peers().org_name(&peer);
            let Some(_slot) = node.inner.limits.serving.enter(&org) else {
                let max = crate::limits::DATA_IN_FLIGHT;
                return Some(RpcReply::Data(Err(DataRefusal::InFlight { max, org })));
            };
            let owner = node.clone();
            let served = tokio::task::spawn_blocking(move || owner.serve_data(peer, req)).await;
            let served = match served.unwrap_or_else(|e| Err(DataRefusal::Failed(e.to_string()))) {
                Ok(Served::Reply(reply)) => Ok(reply),
                // The lease was checked above; the chunk is checked against
                // its hash before it goes.
                Ok(Served::FromBucket(chunk)) => match node.inner.objects.read_chunk(&chunk).await {
                    Ok(bytes) => Ok(DataReply::Chunk(bytes)),
                    Err(e) => {
                        // The lessee's own mistake is its to see, not the owner's log's.
                        if !matches!(e, ObjectError::Unaligned { .. }) {
                            warn!("refused a chunk of {}: {e}", chunk.registered);
                        }
                        Err(DataRefusal::Failed(e.for_lessee()))
                    }
                },
                Err(refusal) => Err(refusal),
            };
            if let Ok(DataReply::Chunk(bytes)) = &served {
                node.ledger().metrics.data_plane("served", bytes.len() as u64);
            }
            RpcReply::Data(served)
        }
        Rpc::Metadata(req) => RpcReply::Metadata(crate::disclose::serve(node, peer, req).await),
        Rpc::Compute(req) => RpcReply::Compute(crate::compute::serve(node, peer, req).await),
        consensus => return node.inner.consensus.answer(peer, consensus).await,
    })
}

impl NodeHandle {
    /// Answers a lessee's data request, or says why not (see `data::plane`).
    pub(crate) fn serve_data(&self, from: PeerId, req: DataRequest) -> Result<Served, DataRefusal> {
        let inner = &self.inner;
        let peers = inner.consensus.peers();
        if let Some(org) = peers.org_of_peer.get(&from) {
            if !inner.limits.data.take(org, req.lease_id(), std::time::Instant::now()) {
                return Err(DataRefusal::Busy { org: org.clone() });
            }
        }
        let owner = Owner {
            org: &inner.cfg.org,
            state: &inner.ledger.store,
            data_dir: &inner.cfg.data_dir,
            org_of_peer: &peers.org_of_peer,
            manifests: &inner.manifests,
        };
        owner.serve(self.ledger_now(), from, req)
    }
}
