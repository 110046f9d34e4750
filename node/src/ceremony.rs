//! The genesis ceremony: every organisation makes its keys on its own
//! machine (`leasehold org new`) and publishes only a card of public keys
//! and an address; the cards make a genesis (`leasehold genesis new`), and
//! each org signs that genesis with its own key (`leasehold genesis sign`).
//! A node starts only on a genesis signed by every org it lists, so no
//! org, and no one holding the file, can put another org in a network, or
//! make up a network for it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use leasehold_chaincode::{keys::valid_id, Genesis, NetworkPolicy, OrgInfo};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{
    write_secret, BlockConfig, NodeConfig, RaftConfig, P2P_KEY_FILE, SIGNING_KEY_FILE, X25519_KEY_FILE,
};
use crate::error::{NodeError, Result};

/// What an org tells the others about itself: public keys and an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgCard {
    pub org: String,
    pub name: String,
    /// ed25519 verifying key for transactions, hex.
    pub signing_key: String,
    /// X25519 public key, hex.
    pub x25519_key: String,
    pub peer_id: String,
    /// Where the other nodes dial it, as a libp2p multiaddr.
    pub p2p_addr: String,
}

pub struct NewOrg<'a> {
    pub org: &'a str,
    pub name: &'a str,
    /// Where the others dial it, as a multiaddr (on its card).
    pub p2p_addr: &'a str,
    /// Where it listens, as a multiaddr: often `/ip4/0.0.0.0/tcp/PORT`
    /// behind a public or NAT address.
    pub p2p_listen: &'a str,
    pub api_listen: &'a str,
    /// The genesis the node will start from, relative to `dir`.
    pub genesis: &'a Path,
    pub now_ms: i64,
}

/// `HOST:PORT` as a libp2p multiaddr (an IP, or a DNS name); a multiaddr as is.
pub fn multiaddr_of(addr: &str) -> Result<String> {
    if addr.starts_with('/') {
        let m: libp2p::Multiaddr = addr.parse().map_err(|e| bad(format!("p2p address {addr}: {e}")))?;
        return Ok(m.to_string());
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad(format!("p2p address {addr}: not HOST:PORT")))?;
    let port: u16 = port.parse().map_err(|e| bad(format!("p2p address {addr}: port: {e}")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => format!("/ip4/{ip}/tcp/{port}"),
        Ok(std::net::IpAddr::V6(ip)) => format!("/ip6/{ip}/tcp/{port}"),
        Err(_) => format!("/dns/{host}/tcp/{port}"),
    })
}

pub(crate) fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b
}

fn bad(why: impl Into<String>) -> NodeError {
    NodeError::Config(why.into())
}

/// Makes an org's keys (0600), node config and first admin in `dir`, on
/// the org's own machine, and returns its card (also written to `card.json`).
pub fn new_org(dir: &Path, o: &NewOrg) -> Result<OrgCard> {
    valid_id("org", o.org)?;
    let addr: libp2p::Multiaddr = o.p2p_addr.parse().map_err(|e| bad(format!("p2p address {}: {e}", o.p2p_addr)))?;
    let listen: libp2p::Multiaddr =
        o.p2p_listen.parse().map_err(|e| bad(format!("p2p listen address {}: {e}", o.p2p_listen)))?;
    let keys_dir = dir.join("keys");
    if keys_dir.exists() {
        return Err(bad(format!("{} exists: refusing to overwrite an org's keys", keys_dir.display())));
    }
    leasehold_files::durable::create_dirs(&keys_dir).map_err(|e| NodeError::file(&keys_dir, e))?;
    let (signing, x25519, p2p) = (random32(), random32(), random32());
    write_secret(&keys_dir.join(SIGNING_KEY_FILE), &signing)?;
    write_secret(&keys_dir.join(X25519_KEY_FILE), &x25519)?;
    write_secret(&keys_dir.join(P2P_KEY_FILE), &p2p)?;
    let p2p_key = libp2p::identity::Keypair::ed25519_from_bytes(p2p).map_err(|e| bad(e.to_string()))?;
    let card = OrgCard {
        org: o.org.into(),
        name: o.name.into(),
        signing_key: hex::encode(SigningKey::from_bytes(&signing).verifying_key().to_bytes()),
        x25519_key: hex::encode(x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(x25519)).to_bytes()),
        peer_id: p2p_key.public().to_peer_id().to_string(),
        p2p_addr: addr.to_string(),
    };
    let cfg = NodeConfig {
        org: o.org.into(),
        data_dir: "data".into(),
        genesis: o.genesis.into(),
        keys_dir: "keys".into(),
        p2p_listen: listen.to_string(),
        api_listen: o.api_listen.into(),
        // The others' addresses come from the genesis, as their keys do.
        peers: Vec::new(),
        block: BlockConfig::default(),
        raft: RaftConfig::default(),
        executor: Default::default(),
        s3: None,
        commit_wait_ms: 5_000,
        min_free_disk_mib: 256,
        workflow: Default::default(),
        backup_dir: None,
        node_id: None,
    };
    write_public(&dir.join("node.toml"), toml::to_string_pretty(&cfg).expect("config serialises").as_bytes())?;
    write_public(&dir.join("card.json"), &serde_json::to_vec_pretty(&card).expect("card serialises"))?;
    let data_dir = dir.join("data");
    leasehold_files::durable::create_dirs(&data_dir).map_err(|e| NodeError::file(&data_dir, e))?;
    let token = crate::users::UserStore::new(&data_dir).add("admin", crate::users::Role::Admin, o.now_ms)?;
    let token_path = dir.join("admin.token");
    leasehold_files::durable::write_atomic(&token_path, token.as_bytes(), 0o600)
        .map_err(|e| NodeError::file(&token_path, e))?;
    Ok(card)
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<()> {
    leasehold_files::durable::write_atomic(path, bytes, 0o644).map_err(|e| NodeError::file(path, e))
}

fn hex32(field: &str, org: &str, s: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|e| bad(format!("card of {org}: {field}: {e}")))?;
    Ok(out)
}

/// The org a card describes, as the ledger lists it.
pub fn org_info(c: &OrgCard) -> Result<OrgInfo> {
    Ok(OrgInfo {
        id: c.org.clone(),
        name: c.name.clone(),
        signing_key: hex32("signing_key", &c.org, &c.signing_key)?,
        x25519_key: hex32("x25519_key", &c.org, &c.x25519_key)?,
        peer_id: c.peer_id.clone(),
        p2p_addr: c.p2p_addr.clone(),
    })
}

/// A genesis listing `cards`, in order; each card is checked, and no org,
/// key or peer may appear twice.
pub fn genesis_from_cards(network_id: &str, cards: &[OrgCard], now_ms: i64) -> Result<Genesis> {
    let orgs = cards.iter().map(org_info).collect::<Result<Vec<_>>>()?;
    let genesis =
        Genesis { network_id: network_id.into(), created_at_ms: now_ms, orgs, policy: NetworkPolicy::default() };
    validate(&genesis)?;
    Ok(genesis)
}

/// What every genesis must be, however it was made: 1 to 64 orgs with
/// valid ids, keys, peers and addresses, none of them listed twice (an
/// org listed twice under one key would hold two votes for one signature).
pub fn validate(g: &Genesis) -> Result<()> {
    valid_id("network_id", &g.network_id)?;
    if g.orgs.is_empty() || g.orgs.len() > 64 {
        return Err(bad("a genesis lists 1 to 64 orgs"));
    }
    let mut seen = BTreeSet::new();
    for o in &g.orgs {
        valid_id("org", &o.id)?;
        let key =
            VerifyingKey::from_bytes(&o.signing_key).map_err(|e| bad(format!("org {}: signing_key: {e}", o.id)))?;
        if key.is_weak() {
            return Err(bad(format!(
                "org {}: signing_key is of small order: one signature would stand for any tx",
                o.id
            )));
        }
        o.peer_id.parse::<libp2p::PeerId>().map_err(|e| bad(format!("org {}: peer_id: {e}", o.id)))?;
        if !o.p2p_addr.is_empty() {
            o.p2p_addr.parse::<libp2p::Multiaddr>().map_err(|e| bad(format!("org {}: p2p_addr: {e}", o.id)))?;
        }
        let keys = [o.id.clone(), hex::encode(o.signing_key), hex::encode(o.x25519_key), o.peer_id.clone()];
        for key in keys {
            if !seen.insert(key.clone()) {
                return Err(bad(format!("org {}: {key} is listed twice in the genesis", o.id)));
            }
        }
    }
    Ok(())
}

/// What an operator checks before signing: the network, the file's hash,
/// and each org's key fingerprint, peer and address, to compare out of
/// band with what each org says it sent.
pub fn describe(genesis_bytes: &[u8], g: &Genesis) -> String {
    let mut out = format!("network {}\nsha256 {}\n", g.network_id, hex::encode(Sha256::digest(genesis_bytes)));
    for o in &g.orgs {
        let key = hex::encode(&o.signing_key[..8]);
        out.push_str(&format!("{}\t{}\tkey {key}…\tpeer {}\t{}\n", o.id, o.name, o.peer_id, o.p2p_addr));
    }
    out
}

/// Where the orgs' signatures of `genesis` are kept: `genesis.sigs.json` beside it.
pub fn signatures_path(genesis: &Path) -> PathBuf {
    let stem = genesis.file_stem().and_then(|s| s.to_str()).unwrap_or("genesis");
    genesis.with_file_name(format!("{stem}.sigs.json"))
}

/// What an org signs: the exact bytes of the genesis file.
fn signed_message(genesis_bytes: &[u8]) -> Vec<u8> {
    let mut m = b"leasehold-genesis-v1\n".to_vec();
    m.extend_from_slice(&Sha256::digest(genesis_bytes));
    m
}

type Signatures = BTreeMap<String, String>;

fn read_signatures(path: &Path) -> Result<Signatures> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| NodeError::file(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Signatures::new()),
        Err(e) => Err(NodeError::file(path, e)),
    }
}

/// `org` signs the genesis at `path` with `key`, adding its signature to
/// the signatures file beside it. The key must be the one its card listed.
pub fn sign(path: &Path, org: &str, key: &SigningKey, expected_sha256: Option<&str>) -> Result<String> {
    let bytes = fs::read(path).map_err(|e| NodeError::file(path, e))?;
    let genesis: Genesis = serde_json::from_slice(&bytes).map_err(|e| NodeError::file(path, e))?;
    validate(&genesis)?;
    let sha = hex::encode(Sha256::digest(&bytes));
    if expected_sha256.is_some_and(|want| !want.eq_ignore_ascii_case(&sha)) {
        return Err(bad(format!("{} has sha256 {sha}, not the one expected", path.display())));
    }
    let listed = genesis.org(org).ok_or_else(|| bad(format!("{org} is not in the genesis {}", path.display())))?;
    if listed.signing_key != key.verifying_key().to_bytes() {
        return Err(bad(format!("the genesis lists another signing key for {org}")));
    }
    let sigs_path = signatures_path(path);
    let mut sigs = read_signatures(&sigs_path)?;
    sigs.insert(org.into(), hex::encode(key.sign(&signed_message(&bytes)).to_bytes()));
    let json = serde_json::to_vec_pretty(&sigs).expect("signatures serialise");
    leasehold_files::durable::write_atomic(&sigs_path, &json, 0o644).map_err(|e| NodeError::file(&sigs_path, e))?;
    Ok(describe(&bytes, &genesis))
}

/// Every org the genesis lists signed these exact bytes; names those that did not.
pub fn check_signed(path: &Path, genesis_bytes: &[u8], genesis: &Genesis) -> Result<()> {
    validate(genesis)?;
    let sigs_path = signatures_path(path);
    let sigs = read_signatures(&sigs_path)?;
    let message = signed_message(genesis_bytes);
    let valid = |o: &OrgInfo| -> bool {
        let Some(sig) = sigs.get(&o.id) else { return false };
        let mut bytes = [0u8; 64];
        let (Ok(()), Ok(key)) = (hex::decode_to_slice(sig, &mut bytes), VerifyingKey::from_bytes(&o.signing_key))
        else {
            return false;
        };
        key.verify(&message, &Signature::from_bytes(&bytes)).is_ok()
    };
    let missing: Vec<&str> = genesis.orgs.iter().filter(|o| !valid(o)).map(|o| o.id.as_str()).collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "the genesis {} lacks a valid signature of {} in {}: every org it lists signs it with \
             `leasehold genesis sign` before any node starts",
            path.display(),
            missing.join(", "),
            sigs_path.display()
        )));
    }
    Ok(())
}
