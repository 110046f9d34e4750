//! Orgs that join, leave or rotate their keys in a running network
//! (`chaincode::roster`): the joining or rotating org's signed request, its
//! next keys and their take-up, and the roster as the API shows it.

use std::path::Path;

use ed25519_dalek::Signer;
use leasehold_chaincode::roster::{card_proof_bytes, view, Departure, OrgChange};
use leasehold_chaincode::Genesis;
use serde::{Deserialize, Serialize};

use crate::ceremony::{org_info, OrgCard};
use crate::config::NodeConfig;
use crate::error::{NodeError, Result};
use crate::ledger::Ledger;

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

/// Where a rotation's new secret waits until it is taken up.
pub fn next_key_path(cfg: &NodeConfig, file: &str) -> std::path::PathBuf {
    cfg.keys_dir.join(format!("{file}.next"))
}

/// The public signing keys this org had before each rotation this node
/// took up, one hex key per line: a ledger that predates a rotation names
/// one of them.
const PREVIOUS_KEYS_FILE: &str = "previous-signing-keys";

/// Makes this org's next signing and p2p keys (0600, beside the current
/// ones) and signs its card with them, for a member to propose (`org
/// propose --rotate`). `card_path` is the org's current card, or the
/// request of its last rotation. Refused while next keys wait: remove
/// `keys/*.next` if a rotation lapsed or was refused.
pub fn rotate_keys(cfg: &NodeConfig, card_path: &Path) -> Result<JoinRequest> {
    use crate::config::{P2P_KEY_FILE, SIGNING_KEY_FILE};
    let bytes = std::fs::read(card_path).map_err(|e| NodeError::file(card_path, e))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| NodeError::file(card_path, e))?;
    let card = value.get("card").cloned().unwrap_or(value);
    let mut card: OrgCard = serde_json::from_value(card).map_err(|e| NodeError::file(card_path, e))?;
    let genesis_bytes = std::fs::read(&cfg.genesis).map_err(|e| NodeError::file(&cfg.genesis, e))?;
    let genesis: Genesis = serde_json::from_slice(&genesis_bytes).map_err(|e| NodeError::file(&cfg.genesis, e))?;
    let current = cfg.signing_key()?;
    if card.org != cfg.org || card.signing_key != hex::encode(current.verifying_key().to_bytes()) {
        return Err(NodeError::Config(format!("{} is not this node's org's current card", card_path.display())));
    }
    let (signing, p2p) = (crate::ceremony::random32(), crate::ceremony::random32());
    for (file, secret) in [(P2P_KEY_FILE, &p2p), (SIGNING_KEY_FILE, &signing)] {
        let path = next_key_path(cfg, file);
        if path.exists() {
            return Err(NodeError::Config(format!(
                "{} exists: a rotation waits; remove keys/*.next if it lapsed or was refused",
                path.display()
            )));
        }
        let hex = hex::encode(secret);
        leasehold_files::durable::write_atomic(&path, hex.as_bytes(), 0o600).map_err(|e| NodeError::file(&path, e))?;
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&signing);
    let p2p = libp2p::identity::Keypair::ed25519_from_bytes(p2p).map_err(|e| NodeError::Config(e.to_string()))?;
    card.signing_key = hex::encode(key.verifying_key().to_bytes());
    card.peer_id = p2p.public().to_peer_id().to_string();
    let proof = key.sign(&card_proof_bytes(&genesis.network_id, &org_info(&card)?)).to_bytes();
    Ok(JoinRequest { card, proof: hex::encode(proof) })
}

/// At start: once the ledger names this org's next keys, they are taken up.
/// Before that, or with no rotation waiting, nothing changes.
pub fn promote_next_keys(cfg: &NodeConfig, roster: &leasehold_chaincode::roster::Roster) -> Result<bool> {
    use crate::config::{read_secret, SIGNING_KEY_FILE};
    let next = next_key_path(cfg, SIGNING_KEY_FILE);
    if !next.exists() {
        return Ok(false);
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&read_secret(&next)?);
    if !roster.is_key_of(&cfg.org, &key.verifying_key().to_bytes()) {
        return Ok(false);
    }
    take_up_next_keys(cfg)?;
    Ok(true)
}

/// Renames the next keys over the current ones, the p2p key first and the
/// signing key last: its `.next` file marks a take-up not yet done, so a
/// crash between the two is finished at the next call. The old public
/// signing key is kept in `previous-signing-keys` (see [`identify`]).
///
/// [`identify`]: crate::consensus::peers::identify
pub fn take_up_next_keys(cfg: &NodeConfig) -> Result<()> {
    use crate::config::{P2P_KEY_FILE, SIGNING_KEY_FILE};
    let next = next_key_path(cfg, SIGNING_KEY_FILE);
    if !next.exists() {
        return Err(NodeError::Config(format!("no next keys in {}: run `org rotate-keys`", cfg.keys_dir.display())));
    }
    let old = hex::encode(cfg.signing_key()?.verifying_key().to_bytes());
    let list = cfg.keys_dir.join(PREVIOUS_KEYS_FILE);
    let mut text = std::fs::read_to_string(&list).unwrap_or_default();
    if !text.lines().any(|l| l == old) {
        text.push_str(&format!("{old}\n"));
        leasehold_files::durable::write_atomic(&list, text.as_bytes(), 0o644).map_err(|e| NodeError::file(&list, e))?;
    }
    for file in [P2P_KEY_FILE, SIGNING_KEY_FILE] {
        let (from, to) = (next_key_path(cfg, file), cfg.keys_dir.join(file));
        if from.exists() {
            leasehold_files::durable::rename(&from, &to).map_err(|e| NodeError::file(&to, e))?;
        }
    }
    Ok(())
}

/// The public signing keys this org had before the rotations this node
/// took up.
pub fn previous_signing_keys(cfg: &NodeConfig) -> Result<Vec<[u8; 32]>> {
    let list = cfg.keys_dir.join(PREVIOUS_KEYS_FILE);
    let text = match std::fs::read_to_string(&list) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NodeError::file(&list, e)),
    };
    Ok(text.lines().filter_map(|l| <[u8; 32]>::try_from(hex::decode(l.trim()).ok()?).ok()).collect())
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
    /// The orgs that refused it: a majority's refusals drop it.
    pub denials: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrgsView {
    pub members: Vec<MemberView>,
    pub pending: Vec<PendingView>,
}

/// Every org that ever joined, and the changes waiting for approval.
pub fn orgs(ledger: &Ledger) -> Result<OrgsView> {
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
                denials: c.denials,
            }
        })
        .collect();
    Ok(OrgsView { members, pending })
}
