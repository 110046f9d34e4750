//! openraft's network over `leasehold-network`: each RPC is one bincode
//! message in one request-response exchange.

use std::sync::Arc;

use ed25519_dalek::SigningKey;

use leasehold_network::Client;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;

use super::election::Ballots;
use crate::ledger::store::{decode, encode};
use crate::raft::{NodeId, TypeConfig};
use crate::wire::Grant;
use crate::wire::Rpc;
use crate::wire::RpcReply;

/// Who this node is, to sign its vote for itself as a candidate.
pub struct Me {
    pub node: NodeId,
    pub org: String,
    pub key: SigningKey,
    /// For the network id, and the roster that grants are checked against.
    pub ledger: Arc<crate::ledger::Ledger>,
}

/// Creates a connection handle per raft peer.
#[derive(Clone)]
pub struct Network {
    pub client: Client,
    /// Raft node id to libp2p peer id, following the ledger's roster.
    pub peers: super::peers::SharedPeers,
    pub me: Arc<Me>,
    /// The grants this node collects as a candidate.
    pub ballots: Arc<Ballots>,
}

pub struct PeerConnection {
    client: Client,
    target: NodeId,
    /// Looked up at each call: a joined org's peer appears once its block applies.
    peers: super::peers::SharedPeers,
    me: Arc<Me>,
    ballots: Arc<Ballots>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Self::Network {
        PeerConnection {
            client: self.client.clone(),
            target,
            peers: self.peers.clone(),
            me: self.me.clone(),
            ballots: self.ballots.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

impl PeerConnection {
    async fn call<E: std::error::Error>(&self, rpc: &Rpc) -> Result<RpcReply, RPCError<NodeId, BasicNode, E>> {
        let peer = self.peers.read().expect("peers lock").peer_of_node.get(&self.target).copied();
        let peer = peer.ok_or_else(|| {
            let reason = format!("node {} is not an active org on this node's ledger", self.target);
            RPCError::Unreachable(Unreachable::new(&Failure(reason)))
        })?;
        let bytes = self
            .client
            .request(peer, encode(rpc))
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&Failure(e.to_string()))))?;
        decode(&bytes, "rpc reply").map_err(|e| RPCError::Network(NetworkError::new(&Failure(e.to_string()))))
    }

    fn unexpected<E: std::error::Error>() -> RPCError<NodeId, BasicNode, E> {
        RPCError::Network(NetworkError::new(&Failure("peer answered a different rpc".into())))
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<NodeId, BasicNode, E> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let grants = self.ballots.for_term(rpc.vote.leader_id().term);
        match self.call(&Rpc::Append(rpc, grants)).await? {
            RpcReply::Append(r) => r.map_err(|e| self.remote(e)),
            _ => Err(Self::unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        let grants = self.ballots.for_term(rpc.vote.leader_id().term);
        match self.call(&Rpc::Snapshot(rpc, grants)).await? {
            RpcReply::Snapshot(r) => r.map_err(|e| self.remote(e)),
            _ => Err(Self::unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let (term, candidate) = (rpc.vote.leader_id().term, rpc.vote.leader_id().voted_for());
        if candidate == Some(self.me.node) {
            // A candidate votes for itself before it asks the others.
            let me = &self.me;
            self.ballots.record(Grant::sign(&me.ledger.genesis, &me.org, &me.key, term, me.node));
        }
        match self.call(&Rpc::Vote(rpc)).await? {
            RpcReply::Vote(mut r, grant) => {
                if let Ok(resp) = &mut r {
                    let roster = self.me.ledger.roster();
                    let voter = roster.member(self.target).map(|m| m.info.id.as_str());
                    let ours =
                        |g: &Grant| g.term == term && Some(g.candidate) == candidate && Some(g.org.as_str()) == voter;
                    match grant {
                        Some(g) if resp.vote_granted && ours(&g) && g.verify(&roster.orgs) => self.ballots.record(g),
                        // A vote granted without its signature proves
                        // nothing to the followers: count it as refused.
                        _ => resp.vote_granted = false,
                    }
                }
                r.map_err(|e| self.remote(e))
            }
            _ => Err(Self::unexpected()),
        }
    }
}
