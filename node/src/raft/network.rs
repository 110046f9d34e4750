//! openraft's network over `leasehold-network`: each RPC is one bincode
//! message in one request-response exchange.

use std::collections::HashMap;

use leasehold_chaincode::SignedTx;
use leasehold_network::{Client, PeerId};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use super::{NodeId, TypeConfig};
use crate::store::{decode, encode};

/// Requests between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub enum Rpc {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A follower hands client transactions to the leader.
    Forward(Vec<SignedTx>),
    /// A lessee asks the owner for a leased dataset's files.
    Data(crate::data::plane::DataRequest),
    /// A lessee asks the owner to disclose a lease's private metadata.
    Metadata(crate::disclose::MetadataRequest),
    /// A node's signatures on blocks it applied.
    Certify(Vec<crate::certify::Cert>),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcReply {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// `Err` says why the txs were not accepted (e.g. not the leader).
    Forward(Result<(), String>),
    Data(Result<crate::data::plane::DataReply, String>),
    Metadata(Result<crate::disclose::Disclosure, crate::disclose::Refusal>),
    Certify(Result<(), String>),
}

/// Creates a connection handle per raft peer.
#[derive(Clone)]
pub struct Network {
    pub client: Client,
    /// Raft node id to libp2p peer id, from the genesis.
    pub peers: HashMap<NodeId, PeerId>,
}

pub struct PeerConnection {
    client: Client,
    target: NodeId,
    peer: Option<PeerId>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Self::Network {
        PeerConnection { client: self.client.clone(), target, peer: self.peers.get(&target).copied() }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

impl PeerConnection {
    async fn call<E: std::error::Error>(&self, rpc: &Rpc) -> Result<RpcReply, RPCError<NodeId, BasicNode, E>> {
        let peer = self.peer.ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&Failure(format!("node {} is not in the genesis", self.target))))
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
        match self.call(&Rpc::Append(rpc)).await? {
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
        match self.call(&Rpc::Snapshot(rpc)).await? {
            RpcReply::Snapshot(r) => r.map_err(|e| self.remote(e)),
            _ => Err(Self::unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call(&Rpc::Vote(rpc)).await? {
            RpcReply::Vote(r) => r.map_err(|e| self.remote(e)),
            _ => Err(Self::unexpected()),
        }
    }
}
