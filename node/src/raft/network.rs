//! openraft's network over `leasehold-network`: each RPC is one bincode
//! message in one request-response exchange.

use std::sync::Arc;

use ed25519_dalek::SigningKey;

use leasehold_chaincode::SignedTx;
use leasehold_network::Client;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use super::{NodeId, TypeConfig};
use crate::election::{Ballots, Grant};
use crate::store::{decode, encode};

/// Requests between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub enum Rpc {
    /// With the signed votes that elected the sender (see `election`).
    Append(AppendEntriesRequest<TypeConfig>, Vec<Grant>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>, Vec<Grant>),
    /// A follower hands client transactions to the leader.
    Forward(Vec<SignedTx>),
    /// A lessee asks the owner for a leased dataset's files.
    Data(crate::data::plane::DataRequest),
    /// A lessee asks the owner to disclose a lease's private metadata.
    Metadata(crate::disclose::MetadataRequest),
    /// A node's signatures on blocks it applied.
    Certify(Vec<crate::certify::Cert>),
    /// A lessee's node asks the owner's to run a workflow on compute data.
    Compute(crate::compute::ComputeRequest),
    /// A restored node asks a voter its raft term (see `fence`).
    Term,
    /// Txs a leader acknowledged and did not order in time: every node
    /// hands them to its leader and follows them (see `censor`).
    Relay(Vec<SignedTx>),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcReply {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// With the voter's signed grant when it granted the vote.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>, Option<Grant>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// `Err` says why the txs were not accepted (e.g. not the leader).
    Forward(Result<(), TxRefusal>),
    Data(Result<crate::data::plane::DataReply, crate::data::plane::DataRefusal>),
    Metadata(Result<crate::disclose::Disclosure, crate::disclose::Refusal>),
    Certify(Result<(), crate::certify::CertRefusal>),
    Compute(Result<crate::compute::ComputeReply, crate::compute::Refusal>),
    Term(crate::fence::TermReply),
    Relay(Result<(), TxRefusal>),
}

/// Why a node refused a batch of txs forwarded or relayed to it. Each is
/// the receiver's own state; the sender retries, or relays elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TxRefusal {
    #[error("not the leader")]
    NotLeader,
    #[error("this node refuses writes: {0}")]
    RefusesWrites(String),
    #[error("this peer's share of the mempool ({share} txs) is full; retry later")]
    ShareFull { share: usize },
    #[error("the mempool is full")]
    MempoolFull,
}

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
    pub peers: crate::peers::SharedPeers,
    pub me: Arc<Me>,
    /// The grants this node collects as a candidate.
    pub ballots: Arc<Ballots>,
}

pub struct PeerConnection {
    client: Client,
    target: NodeId,
    /// Looked up at each call: a joined org's peer appears once its block applies.
    peers: crate::peers::SharedPeers,
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
