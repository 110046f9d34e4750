//! The messages nodes send each other, in one place: every request a peer
//! may send and every answer it may get. Each is decoded from a hostile
//! peer's bytes; the subsystems that answer them check what they mean.

pub use leasehold_workflow::runner::wire as compute;
pub mod data;
pub mod disclose;

use ed25519_dalek::{Signer, SigningKey, Verifier};
use leasehold_chaincode::{Genesis, SignedTx};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::ledger::certs::Cert;
use crate::ledger::store::encode;
use crate::raft::{NodeId, TypeConfig};

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
    Data(data::DataRequest),
    /// A lessee asks the owner to disclose a lease's private metadata.
    Metadata(disclose::MetadataRequest),
    /// A node's signatures on blocks it applied.
    Certify(Vec<Cert>),
    /// A lessee's node asks the owner's to run a workflow on compute data.
    Compute(compute::ComputeRequest),
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
    Data(Result<data::DataReply, data::DataRefusal>),
    Metadata(Result<disclose::Disclosure, disclose::Refusal>),
    Certify(Result<(), CertRefusal>),
    Compute(Result<compute::ComputeReply, compute::Refusal>),
    Term(TermReply),
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

/// Why a node refused another's block certificates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum CertRefusal {
    #[error("unknown peer")]
    UnknownPeer,
    #[error("{0}")]
    NotStored(String),
}

/// What a voter tells a restored node: its raft term and the newest voter
/// set it holds, by the log index of that membership.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TermReply {
    pub term: u64,
    pub membership_index: u64,
    pub voters: Vec<NodeId>,
}

/// One org's signed vote for a candidate in a term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub org: String,
    pub term: u64,
    pub candidate: NodeId,
    pub signature: Vec<u8>,
}

fn signed_bytes(network_id: &str, term: u64, candidate: NodeId) -> Vec<u8> {
    encode(&("leasehold/vote-grant/v1", network_id, term, candidate))
}

impl Grant {
    pub fn sign(genesis: &Genesis, org: &str, key: &SigningKey, term: u64, candidate: NodeId) -> Self {
        let signature = key.sign(&signed_bytes(&genesis.network_id, term, candidate)).to_bytes().to_vec();
        Self { org: org.into(), term, candidate, signature }
    }

    pub fn verify(&self, genesis: &Genesis) -> bool {
        let Some(org) = genesis.org(&self.org) else { return false };
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&org.signing_key) else { return false };
        let Ok(sig) = <[u8; 64]>::try_from(self.signature.as_slice()) else { return false };
        let bytes = signed_bytes(&genesis.network_id, self.term, self.candidate);
        key.verify(&bytes, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
    }
}
