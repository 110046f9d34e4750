//! `leasehold init`: keys, genesis and a node config for each organisation
//! (Fabric's cryptogen and configtxgen in one step).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ed25519_dalek::SigningKey;
use leasehold_chaincode::{Genesis, NetworkPolicy, OrgInfo};
use rand::rngs::OsRng;
use rand::RngCore;

use crate::config::{
    write_secret, BlockConfig, NodeConfig, PeerConfig, RaftConfig, P2P_KEY_FILE, SIGNING_KEY_FILE, X25519_KEY_FILE,
};
use crate::error::{NodeError, Result};

pub struct InitOptions {
    pub orgs: usize,
    pub network_id: String,
    pub host: String,
    pub p2p_ports: Vec<u16>,
    pub api_ports: Vec<u16>,
    pub now_ms: i64,
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b
}

struct OrgKeys {
    signing: [u8; 32],
    x25519: [u8; 32],
    p2p: [u8; 32],
}

/// Writes `out/genesis.json` and `out/orgN/{node.toml,keys/,data/}`.
pub fn init(out: &Path, opts: &InitOptions) -> Result<()> {
    if opts.orgs == 0 || opts.orgs > 64 {
        return Err(NodeError::Config("--orgs must be between 1 and 64".into()));
    }
    if opts.p2p_ports.len() != opts.orgs || opts.api_ports.len() != opts.orgs {
        return Err(NodeError::Config("need one p2p port and one api port per org".into()));
    }
    let genesis_path = out.join("genesis.json");
    if genesis_path.exists() {
        return Err(NodeError::Config(format!(
            "{} exists: refusing to overwrite a network's keys",
            genesis_path.display()
        )));
    }
    let keys: Vec<OrgKeys> =
        (0..opts.orgs).map(|_| OrgKeys { signing: random32(), x25519: random32(), p2p: random32() }).collect();
    let mut orgs = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let p2p = libp2p::identity::Keypair::ed25519_from_bytes(k.p2p).map_err(|e| NodeError::Config(e.to_string()))?;
        orgs.push(OrgInfo {
            id: format!("org{}", i + 1),
            name: format!("Organisation {}", i + 1),
            signing_key: SigningKey::from_bytes(&k.signing).verifying_key().to_bytes(),
            x25519_key: x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(k.x25519)).to_bytes(),
            peer_id: p2p.public().to_peer_id().to_string(),
        });
    }
    let genesis = Genesis {
        network_id: opts.network_id.clone(),
        created_at_ms: opts.now_ms,
        orgs,
        policy: NetworkPolicy::default(),
    };
    fs::create_dir_all(out).map_err(|e| NodeError::file(out, e))?;
    let json = serde_json::to_vec_pretty(&genesis).expect("genesis serialises");
    crate::durable::write_atomic(&genesis_path, &json, 0o644).map_err(|e| NodeError::file(&genesis_path, e))?;
    for (i, k) in keys.iter().enumerate() {
        write_org(out, i, k, &genesis, opts)?;
    }
    Ok(())
}

fn write_org(out: &Path, i: usize, k: &OrgKeys, genesis: &Genesis, opts: &InitOptions) -> Result<()> {
    let org = &genesis.orgs[i];
    let dir = out.join(&org.id);
    let keys_dir = dir.join("keys");
    fs::create_dir_all(&keys_dir).map_err(|e| NodeError::file(&keys_dir, e))?;
    write_secret(&keys_dir.join(SIGNING_KEY_FILE), &k.signing)?;
    write_secret(&keys_dir.join(X25519_KEY_FILE), &k.x25519)?;
    write_secret(&keys_dir.join(P2P_KEY_FILE), &k.p2p)?;
    let addr = |j: usize| format!("/ip4/{}/tcp/{}", opts.host, opts.p2p_ports[j]);
    let peers = genesis
        .orgs
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(j, o)| PeerConfig { org: o.id.clone(), peer_id: o.peer_id.clone(), addr: addr(j) })
        .collect();
    let cfg = NodeConfig {
        org: org.id.clone(),
        data_dir: "data".into(),
        genesis: "../genesis.json".into(),
        keys_dir: "keys".into(),
        p2p_listen: addr(i),
        api_listen: format!("{}:{}", opts.host, opts.api_ports[i]),
        peers,
        block: BlockConfig::default(),
        raft: RaftConfig::default(),
        commit_wait_ms: 5_000,
        min_free_disk_mib: 256,
        workflow: Default::default(),
    };
    let path = dir.join("node.toml");
    let toml = toml::to_string_pretty(&cfg).expect("config serialises");
    crate::durable::write_atomic(&path, toml.as_bytes(), 0o644).map_err(|e| NodeError::file(&path, e))?;
    // One admin per org; its token goes where scripts/testnet-up.sh shows it.
    let data_dir = dir.join("data");
    fs::create_dir_all(&data_dir).map_err(|e| NodeError::file(&data_dir, e))?;
    let token = crate::users::UserStore::new(&data_dir).add("admin", crate::users::Role::Admin, opts.now_ms)?;
    let token_path = dir.join("admin.token");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&token_path)
        .map_err(|e| NodeError::file(&token_path, e))?;
    f.write_all(token.as_bytes()).map_err(|e| NodeError::file(&token_path, e))
}
