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

/// The ledger change a rotation request asks for.
pub fn rotate_change(req: &JoinRequest) -> Result<OrgChange> {
    let proof = hex::decode(&req.proof).map_err(|e| NodeError::Config(format!("proof: {e}")))?;
    Ok(OrgChange::Rotate { card: org_info(&req.card)?, proof })
}

/// Where a rotation's new secret waits until the ledger names its key.
pub fn next_key_path(cfg: &NodeConfig, file: &str) -> std::path::PathBuf {
    cfg.keys_dir.join(format!("{file}.next"))
}

/// Makes this org's next signing and p2p keys (0600, beside the current
/// ones) and signs its card with them for a member to propose (`org
/// propose --rotate`). `card_path` is the org's current card. Refused while
/// a rotation is pending: its keys are not replaced.
pub fn rotate_keys(cfg: &NodeConfig, card_path: &Path) -> Result<JoinRequest> {
    use crate::config::{write_secret, P2P_KEY_FILE, SIGNING_KEY_FILE};
    let bytes = std::fs::read(card_path).map_err(|e| NodeError::file(card_path, e))?;
    let mut card: OrgCard = serde_json::from_slice(&bytes).map_err(|e| NodeError::file(card_path, e))?;
    let genesis_bytes = std::fs::read(&cfg.genesis).map_err(|e| NodeError::file(&cfg.genesis, e))?;
    let genesis: Genesis = serde_json::from_slice(&genesis_bytes).map_err(|e| NodeError::file(&cfg.genesis, e))?;
    let current = cfg.signing_key()?;
    if card.org != cfg.org || card.signing_key != hex::encode(current.verifying_key().to_bytes()) {
        return Err(NodeError::Config(format!("{} is not this node's org's current card", card_path.display())));
    }
    let (signing, p2p) = (crate::ceremony::random32(), crate::ceremony::random32());
    write_secret(&next_key_path(cfg, SIGNING_KEY_FILE), &signing)?;
    write_secret(&next_key_path(cfg, P2P_KEY_FILE), &p2p)?;
    let key = ed25519_dalek::SigningKey::from_bytes(&signing);
    let p2p = libp2p::identity::Keypair::ed25519_from_bytes(p2p).map_err(|e| NodeError::Config(e.to_string()))?;
    card.signing_key = hex::encode(key.verifying_key().to_bytes());
    card.peer_id = p2p.public().to_peer_id().to_string();
    let proof = key.sign(&card_proof_bytes(&genesis.network_id, &org_info(&card)?)).to_bytes();
    Ok(JoinRequest { card, proof: hex::encode(proof) })
}

/// At start: once the ledger names this org's next keys, they replace the
/// current ones (each renamed over its old file, durably). Before that, or
/// with no rotation pending, nothing changes.
pub fn promote_next_keys(cfg: &NodeConfig, roster: &leasehold_chaincode::roster::Roster) -> Result<bool> {
    use crate::config::{read_secret, P2P_KEY_FILE, SIGNING_KEY_FILE};
    let next = next_key_path(cfg, SIGNING_KEY_FILE);
    if !next.exists() {
        return Ok(false);
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&read_secret(&next)?);
    let named = roster.orgs.org(&cfg.org).is_some_and(|o| o.signing_key == key.verifying_key().to_bytes());
    if !named {
        return Ok(false);
    }
    for file in [P2P_KEY_FILE, SIGNING_KEY_FILE] {
        let (from, to) = (next_key_path(cfg, file), cfg.keys_dir.join(file));
        crate::durable::rename(&from, &to).map_err(|e| NodeError::file(&to, e))?;
    }
    Ok(true)
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
    /// `join`, `leave` or `rotate`.
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
                    OrgChange::Rotate { card, .. } => ("rotate", card.id),
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
