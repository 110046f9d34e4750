//! Starting a node: its storage checked and opened, consensus joined, the
//! handle wired to its subsystems, and the tasks that serve peers and run
//! workflows. Stopping is `Tasks::abort` after `NodeHandle::shutdown`.

use std::sync::Arc;
use std::time::Duration;

use leasehold_workflow::runner::Runner;
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::NodeConfig;
use crate::error::{NodeError, Result};
use crate::handle::NodeHandle;
use crate::handle::{Inner, Parts};
use crate::ledger::store::Store;
use crate::ledger::Ledger;
use crate::write::Writer;

/// Background tasks of a node; abort them to stop it.
pub struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    pub fn abort(self) {
        for t in self.0 {
            t.abort();
        }
    }
}

/// A store that failed a check, and how to recover: the node will not serve it.
pub fn corrupt(cfg: &NodeConfig, e: NodeError) -> NodeError {
    NodeError::Corrupt(format!(
        "the store in {} is corrupt ({e}); this node will not serve it. Recover by re-syncing from \
         the other organisations' nodes (stop this node, move {} aside, start it again: it catches \
         up from them), or by restoring a backup",
        cfg.data_dir.display(),
        cfg.data_dir.join("ledger").display()
    ))
}

/// Starts a node from its config: checks and opens storage, joins the
/// network, starts raft.
pub async fn start(cfg: NodeConfig) -> Result<(NodeHandle, Tasks)> {
    let genesis_bytes = std::fs::read(&cfg.genesis).map_err(|e| NodeError::file(&cfg.genesis, e))?;
    let genesis: leasehold_chaincode::Genesis =
        serde_json::from_slice(&genesis_bytes).map_err(|e| NodeError::file(&cfg.genesis, e))?;
    crate::ceremony::check_signed(&cfg.genesis, &genesis_bytes, &genesis)?;
    crate::backup::check_not_interrupted(&cfg)?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| NodeError::file(&cfg.data_dir, e))?;
    crate::consensus::receive_snapshot::remove_partial(&cfg.data_dir);
    let store = Store::open(&cfg.data_dir.join("ledger"))?;
    let checked = crate::ledger::snapshot::check_not_interrupted(&store)
        .and_then(|()| crate::ledger::verify::check_recent(&store, crate::ledger::verify::START_CHECK_BLOCKS));
    if let Err(e) = checked {
        return Err(corrupt(&cfg, e));
    }
    let ledger = Arc::new(Ledger::open(store.clone(), genesis_bytes)?);
    if crate::orgs::promote_next_keys(&cfg, &ledger.roster())? {
        info!(org = %cfg.org, "the ledger names this org's new keys: they replace the old ones");
    }
    let (key, x25519_secret) = (cfg.signing_key()?, cfg.x25519_secret()?);
    let objects = Arc::new(crate::data::objects::ObjectStores::new(cfg.s3_with_secret()?));
    let crate::consensus::Started { consensus, inbound, mut tasks } =
        crate::consensus::Consensus::start(&cfg, ledger.clone(), &store).await?;
    let node_id = consensus.node_id();
    let writer = Arc::new(Writer::new(&cfg.org, key, cfg.commit_wait_ms, ledger.clone(), consensus.clone()));
    // The node runs workflows, watches their leases and deletes ended
    // leases' caches whether or not an API is serving.
    let dirs = crate::data::DataDirs::new(&cfg.data_dir);
    crate::data::cache::delete_from_before(&dirs);
    let secrets = Arc::new(crate::secrets::SecretStore::open(&cfg.data_dir, &x25519_secret)?);
    let port = crate::runs::RunnerPort::new(
        cfg.clone(),
        ledger.clone(),
        consensus.clone(),
        writer.clone(),
        objects.clone(),
        secrets.clone(),
    );
    let runner = Runner::start(Arc::new(port), cfg.workflow.clone(), &cfg.executor, &cfg.data_dir)?;
    tasks.push(tokio::spawn(crate::data::cache::janitor(dirs, ledger.clone())));
    let parts = Parts { cfg, ledger: ledger.clone(), consensus, writer, x25519_secret, objects, runner, secrets };
    let inner = Inner::new(parts);
    let node = NodeHandle { inner: Arc::new(inner) };
    tasks.push(tokio::spawn(crate::rpc::serve_inbound(node.clone(), inbound)));
    tasks.push(tokio::spawn(prune_waiters(ledger)));
    info!(org = %node.org(), node_id, "node started");
    Ok((node, Tasks(tasks)))
}

async fn prune_waiters(ledger: Arc<Ledger>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        ledger.prune_waiters();
    }
}
