//! `leasehold init`: a whole network on one machine, for tests and demos.
//! It runs the genesis ceremony (`ceremony`) for every org in turn: each
//! org's keys are made in its own directory, the genesis is built from
//! their cards, and every org signs it. On real machines each org runs its
//! own steps; here one operator holds every org's secrets, which is why
//! this is for a test network only.

use std::path::Path;

use crate::ceremony::{self, NewOrg};
use crate::config::NodeConfig;
use crate::error::{NodeError, Result};

pub struct InitOptions {
    pub orgs: usize,
    pub network_id: String,
    pub host: String,
    pub p2p_ports: Vec<u16>,
    pub api_ports: Vec<u16>,
    pub now_ms: i64,
}

/// Writes `out/genesis.json`, its signatures, and `out/orgN/{node.toml,keys/,data/,card.json}`.
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
    let mut cards = Vec::new();
    for i in 0..opts.orgs {
        let org = format!("org{}", i + 1);
        let new = NewOrg {
            org: &org,
            name: &format!("Organisation {}", i + 1),
            p2p_addr: &format!("/ip4/{}/tcp/{}", opts.host, opts.p2p_ports[i]),
            p2p_listen: &format!("/ip4/{}/tcp/{}", opts.host, opts.p2p_ports[i]),
            api_listen: &format!("{}:{}", opts.host, opts.api_ports[i]),
            genesis: Path::new("../genesis.json"),
            now_ms: opts.now_ms,
        };
        cards.push(ceremony::new_org(&out.join(&org), &new)?);
    }
    let genesis = ceremony::genesis_from_cards(&opts.network_id, &cards, opts.now_ms)?;
    let json = serde_json::to_vec_pretty(&genesis).expect("genesis serialises");
    leasehold_files::durable::write_atomic(&genesis_path, &json, 0o644)
        .map_err(|e| NodeError::file(&genesis_path, e))?;
    for card in &cards {
        let cfg = NodeConfig::load(&out.join(&card.org).join("node.toml"))?;
        ceremony::sign(&genesis_path, &card.org, &cfg.signing_key()?, None)?;
    }
    Ok(())
}
