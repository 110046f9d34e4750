//! Blocks: hash-chained, signed by their proposer, re-derived by every node.
//!
//! The leader signs a [`Proposal`]: its org, its clock reading and the
//! transactions. Height, previous hash, verdicts and state root are not
//! signed by anyone: every node derives them deterministically when it
//! applies the proposal, and the block hash commits to all of them, so a
//! node that derived anything differently has a different chain.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use leasehold_chaincode::{
    apply_block_except, canonical, BlockCtx, Commitment, Genesis, Hash32, SignedTx, StateRead, StateRoot, Verdict,
    WriteSet,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{NodeError, Result};

/// What the leader orders through raft: one future block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub proposer: String,
    pub time_ms: i64,
    pub txs: Vec<SignedTx>,
    pub signature: Vec<u8>,
}

#[derive(Serialize)]
struct ProposalSigned<'a> {
    domain: &'static str,
    network_id: &'a str,
    proposer: &'a str,
    time_ms: i64,
    txs_root: Hash32,
}

pub fn txs_root(txs: &[SignedTx]) -> Hash32 {
    let mut h = Sha256::new();
    for tx in txs {
        h.update(tx.id().0);
        h.update(Sha256::digest(&tx.signature));
    }
    h.finalize().into()
}

fn proposal_bytes(network_id: &str, proposer: &str, time_ms: i64, txs_root: Hash32) -> Vec<u8> {
    canonical::to_bytes(&ProposalSigned { domain: "leasehold/proposal/v1", network_id, proposer, time_ms, txs_root })
}

/// Why a proposal is not its proposer's. The text is each tx's verdict in
/// a block built from it, so it is part of the chain: never reword it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error("proposer {0:?} is not a member")]
    NotMember(String),
    #[error("{0}")]
    BadKey(String),
    #[error("signature is not 64 bytes")]
    SignatureLength,
    #[error("proposal signature does not verify against {0:?}")]
    BadSignature(String),
}

impl Proposal {
    pub fn new(genesis: &Genesis, proposer: &str, key: &SigningKey, time_ms: i64, txs: Vec<SignedTx>) -> Self {
        let bytes = proposal_bytes(&genesis.network_id, proposer, time_ms, txs_root(&txs));
        Self { proposer: proposer.into(), time_ms, txs, signature: key.sign(&bytes).to_bytes().to_vec() }
    }

    pub fn verify(&self, genesis: &Genesis) -> Result<(), ProposalError> {
        let org = genesis.org(&self.proposer).ok_or_else(|| ProposalError::NotMember(self.proposer.clone()))?;
        let key = VerifyingKey::from_bytes(&org.signing_key).map_err(|e| ProposalError::BadKey(e.to_string()))?;
        let sig: [u8; 64] = self.signature.as_slice().try_into().map_err(|_| ProposalError::SignatureLength)?;
        let bytes = proposal_bytes(&genesis.network_id, &self.proposer, self.time_ms, txs_root(&self.txs));
        key.verify(&bytes, &ed25519_dalek::Signature::from_bytes(&sig))
            .map_err(|_| ProposalError::BadSignature(self.proposer.clone()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub height: u64,
    pub prev_hash: Hash32,
    /// Never earlier than the previous block's.
    pub time_ms: i64,
    pub proposer: String,
    pub txs_root: Hash32,
    pub verdicts_root: Hash32,
    pub state_root: Hash32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub proposer_signature: Vec<u8>,
    /// The proposer's own clock reading, as signed.
    pub proposed_time_ms: i64,
    pub txs: Vec<SignedTx>,
    /// One per tx, in order: Fabric's validity bitmap, with reasons.
    pub verdicts: Vec<Verdict>,
}

/// What a node knows of the chain's tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub height: u64,
    pub hash: Hash32,
    pub time_ms: i64,
    pub state_root: StateRoot,
}

impl Head {
    pub fn genesis(genesis_bytes: &[u8], genesis: &Genesis) -> Self {
        Self {
            height: 0,
            hash: Sha256::digest(genesis_bytes).into(),
            time_ms: genesis.created_at_ms,
            // The chaincode state starts empty; the genesis is bound by the hash.
            state_root: Commitment::empty().root(),
        }
    }
}

fn verdicts_root(verdicts: &[Verdict]) -> Hash32 {
    Sha256::digest(canonical::to_bytes(&verdicts)).into()
}

impl Block {
    pub fn hash(&self) -> Hash32 {
        Sha256::new()
            .chain_update(canonical::to_bytes(&self.header))
            .chain_update(&self.proposer_signature)
            .chain_update(self.proposed_time_ms.to_le_bytes())
            .finalize()
            .into()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        canonical::to_bytes(self)
    }

    /// Whether the transactions and verdicts are the ones the header
    /// commits to: the hash covers the header only, so a body is bound to
    /// its block through these two roots.
    pub fn body_matches_header(&self) -> bool {
        self.verdicts.len() == self.txs.len()
            && txs_root(&self.txs) == self.header.txs_root
            && verdicts_root(&self.verdicts) == self.header.verdicts_root
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        canonical::from_bytes(bytes, "block").map_err(|e| NodeError::decode("block", e))
    }
}

/// What applying a proposal makes: the block, its writes, and the state
/// commitment after it.
pub type Built = (Block, WriteSet, Commitment);

/// Derives the next block from a proposal over `state`, whose commitment is
/// `commitment`. Deterministic: every node gets the same block and writes. A
/// proposal whose signature fails yields a block in which every tx is
/// invalid with that reason. `checked` names the tx signatures this node
/// verified already (`chaincode::verify_signatures_except`).
pub fn build(
    state: &impl StateRead,
    genesis: &Genesis,
    head: &Head,
    commitment: &Commitment,
    p: &Proposal,
    checked: &dyn Fn(&[u8; 32]) -> bool,
) -> Result<Built> {
    let time_ms = p.time_ms.max(head.time_ms);
    let ctx = BlockCtx { genesis, height: head.height + 1, time_ms, proposer: p.proposer.clone() };
    let (verdicts, writes, commitment) = match p.verify(genesis) {
        Ok(()) => {
            let out = apply_block_except(state, &ctx, &p.txs, commitment, checked)?;
            (out.outcomes.iter().map(|o| o.verdict()).collect(), out.writes, out.commitment)
        }
        Err(reason) => (vec![Verdict::Invalid(reason.to_string()); p.txs.len()], WriteSet::new(), commitment.clone()),
    };
    let header = BlockHeader {
        height: ctx.height,
        prev_hash: head.hash,
        time_ms,
        proposer: p.proposer.clone(),
        txs_root: txs_root(&p.txs),
        verdicts_root: verdicts_root(&verdicts),
        state_root: commitment.root().0,
    };
    let block = Block {
        header,
        proposer_signature: p.signature.clone(),
        proposed_time_ms: p.time_ms,
        txs: p.txs.clone(),
        verdicts,
    };
    Ok((block, writes, commitment))
}

/// The head after `block`.
pub fn head_after(block: &Block) -> Head {
    Head {
        height: block.header.height,
        hash: block.hash(),
        time_ms: block.header.time_ms,
        state_root: StateRoot(block.header.state_root),
    }
}

/// The proposal a stored block was built from.
pub fn proposal_of(block: &Block) -> Proposal {
    Proposal {
        proposer: block.header.proposer.clone(),
        time_ms: block.proposed_time_ms,
        txs: block.txs.clone(),
        signature: block.proposer_signature.clone(),
    }
}
