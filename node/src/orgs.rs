//! Orgs that join or leave a running network (`chaincode::roster`): the
//! joining org's signed request, and the roster as the API shows it.

use std::path::Path;

use ed25519_dalek::Signer;
use leasehold_chaincode::roster::{card_proof_bytes, view, Departure, OrgChange};
use leasehold_chaincode::Genesis;
use serde::{Deserialize, Serialize};

use crate::ceremony::{org_info, OrgCard};
use crate::config::NodeConfig;
use crate::error::{NodeError, Result};
use crate::NodeHandle;

/// What a joining org hands a member to propose: its card, and its signing
/// key's signature over the card and the network it joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub card: OrgCard,
    /// ed25519 signature, hex.
    pub proof: String,
}

/// Signs `card` as the org of `cfg`, for the network of its genesis. The
/// card must be this org's own: its keys are checked against the key files.
pub fn join_request(cfg: &NodeConfig, card_path: &Path) -> Result<JoinRequest> {
    let bytes = std::fs::read(card_path).map_err(|e| NodeError::file(card_path, e))?;
    let card: OrgCard = serde_json::from_slice(&bytes).map_err(|e| NodeError::file(card_path, e))?;
    let genesis_bytes = std::fs::read(&cfg.genesis).map_err(|e| NodeError::file(&cfg.genesis, e))?;
    let genesis: Genesis = serde_json::from_slice(&genesis_bytes).map_err(|e| NodeError::file(&cfg.genesis, e))?;
    let info = org_info(&card)?;
    let key = cfg.signing_key()?;
    let peer = cfg.p2p_keypair()?.public().to_peer_id().to_string();
    if info.id != cfg.org || info.signing_key != key.verifying_key().to_bytes() || info.peer_id != peer {
        return Err(NodeError::Config(format!("{} is not the card of this node's org and keys", card_path.display())));
    }
    let proof = key.sign(&card_proof_bytes(&genesis.network_id, &info)).to_bytes();
    Ok(JoinRequest { card, proof: hex::encode(proof) })
}

/// The ledger change a join request asks for; the chaincode checks the proof.
pub fn join_change(req: &JoinRequest) -> Result<OrgChange> {
    let proof = hex::decode(&req.proof).map_err(|e| NodeError::Config(format!("proof: {e}")))?;
    Ok(OrgChange::Join { card: org_info(&req.card)?, proof })
}

/// A member as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub org: String,
    pub name: String,
    pub node_id: u64,
    pub peer_id: String,
    pub p2p_addr: String,
    /// When and why it left; absent while it is a member.
    pub left: Option<Departure>,
}

/// A change waiting for approval.
#[derive(Debug, Clone, Serialize)]
pub struct PendingView {
    pub change_id: String,
    /// `join` or `leave`.
    pub kind: &'static str,
    pub org: String,
    pub proposed_by: String,
    pub proposed_at_ms: i64,
    pub approvals: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrgsView {
    pub members: Vec<MemberView>,
    pub pending: Vec<PendingView>,
}

impl NodeHandle {
    /// Every org that ever joined, and the changes waiting for approval.
    pub fn orgs(&self) -> Result<OrgsView> {
        let ledger = self.ledger();
        let v = view(&ledger.store, &ledger.genesis)?;
        let members = v
            .members
            .into_iter()
            .enumerate()
            .map(|(i, m)| MemberView {
                org: m.info.id,
                name: m.info.name,
                node_id: i as u64 + 1,
                peer_id: m.info.peer_id,
                p2p_addr: m.info.p2p_addr,
                left: m.left,
            })
            .collect();
        let pending = v
            .pending
            .into_iter()
            .map(|c| {
                let (kind, org) = match c.change {
                    OrgChange::Join { card, .. } => ("join", card.id),
                    OrgChange::Leave { org, .. } => ("leave", org),
                };
                PendingView {
                    change_id: c.id,
                    kind,
                    org,
                    proposed_by: c.proposed_by,
                    proposed_at_ms: c.proposed_at_ms,
                    approvals: c.approvals,
                }
            })
            .collect();
        Ok(OrgsView { members, pending })
    }
}
