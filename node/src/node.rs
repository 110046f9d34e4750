//! A running node: raft, network, block cutting, and the handle the API uses.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use leasehold_chaincode::{verify_signatures, Payload, SignedTx, TxBody, TxId};
use leasehold_network::PeerId;
use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::block::Proposal;
use crate::config::NodeConfig;
use crate::error::{NodeError, Result};
use crate::ledger::{Ledger, Receipt};
use crate::raft::{LogStore, Network, NodeId, Raft, Rpc, RpcReply, StateMachine};
use crate::store::{decode, encode, Store};

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// What became of one submitted transaction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Submission {
    /// Committed on this node; the verdict says whether it was valid.
    Committed { tx_id: String, receipt: Receipt },
    /// Accepted for ordering, but not committed within the wait.
    Pending { tx_id: String },
    /// Refused before ordering (bad signature, wrong network, duplicate, busy).
    Rejected { tx_id: String, reason: String },
}

pub(crate) struct Inner {
    pub cfg: NodeConfig,
    pub ledger: Arc<Ledger>,
    pub raft: Raft,
    pub net: leasehold_network::Client,
    pub node_id: NodeId,
    pub key: SigningKey,
    pub mempool: mpsc::Sender<Pending>,
    /// Forwarded txs still in the mempool, per forwarding peer: each peer
    /// gets a share of the mempool, so one cannot crowd out the others.
    pub(crate) forwarded: std::sync::Mutex<HashMap<PeerId, usize>>,
    /// Leaders refused for their clock, ignored until then (see `gate`).
    pub(crate) shunned: std::sync::Mutex<HashMap<NodeId, std::time::Instant>>,
    /// Manifests of this node's datasets, for serving chunks.
    pub(crate) manifests: crate::data::plane::Manifests,
    /// The snapshot being received from a peer, checked before install.
    pub(crate) incoming: tokio::sync::Mutex<Option<crate::receive_snapshot::Incoming>>,
    /// The (term, leader) whose election this node has seen proven.
    pub(crate) elected: std::sync::Mutex<Option<(u64, NodeId)>>,
    /// Up on a node restored from a backup until it has caught up.
    pub(crate) fence: crate::fence::Fence,
    /// Held while a backup is taken: one at a time.
    pub(crate) backing_up: Arc<tokio::sync::Mutex<()>>,
    /// Read while a write that names new files commits and the files are
    /// adopted; written while a backup is taken, so it holds them all.
    pub(crate) adopting: Arc<tokio::sync::RwLock<()>>,
    /// The active orgs' nodes and peers, following the ledger (`peers`).
    pub(crate) peers: crate::peers::SharedPeers,
    /// The org's X25519 secret: data keys are derived from it, here only.
    pub x25519_secret: [u8; 32],
    /// What other orgs may ask of this node at once, and how often.
    pub(crate) limits: crate::limits::PeerLimits,
    /// Tests only: the org whose forwarded txs this node, as a dishonest
    /// leader, acknowledges and drops (see `censor_tests`).
    #[cfg(test)]
    pub(crate) censors: std::sync::Mutex<Option<String>>,
    /// Set once at start; the runner holds a handle to the node in turn.
    pub(crate) runner: std::sync::OnceLock<Arc<crate::runner::Runner>>,
    nonce: AtomicU64,
}

/// The cloneable handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) inner: Arc<Inner>,
}

/// Background tasks of a node; abort them to stop it.
pub struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    pub fn abort(self) {
        for t in self.0 {
            t.abort();
        }
    }
}

fn raft_config(cfg: &NodeConfig) -> Result<Arc<openraft::Config>> {
    let c = openraft::Config {
        cluster_name: "leasehold".into(),
        heartbeat_interval: cfg.raft.heartbeat_ms,
        election_timeout_min: cfg.raft.election_min_ms,
        election_timeout_max: cfg.raft.election_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.raft.snapshot_every),
        max_in_snapshot_log_to_keep: cfg.raft.keep_logs,
        // Each entry is a whole block; keep one append message bounded.
        max_payload_entries: 16,
        // The last chunk of a snapshot is answered after the whole file is
        // checked and installed, which takes longer than a chunk's transfer.
        install_snapshot_timeout: 30_000,
        ..Default::default()
    };
    Ok(Arc::new(c.validate().map_err(|e| NodeError::Config(e.to_string()))?))
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
    crate::receive_snapshot::remove_partial(&cfg.data_dir);
    let store = Store::open(&cfg.data_dir.join("ledger"))?;
    let checked = crate::snapshot::check_not_interrupted(&store)
        .and_then(|()| crate::verify::check_recent(&store, crate::verify::START_CHECK_BLOCKS));
    if let Err(e) = checked {
        return Err(corrupt(&cfg, e));
    }
    let ledger = Arc::new(Ledger::open(store.clone(), genesis_bytes)?);
    if crate::orgs::promote_next_keys(&cfg, &ledger.roster())? {
        info!(org = %cfg.org, "the ledger names this org's new keys: they replace the old ones");
    }
    let key = cfg.signing_key()?;
    let x25519_secret = cfg.x25519_secret()?;
    let keypair = cfg.p2p_keypair()?;
    let node_id = crate::peers::identify(&cfg, &ledger.roster(), &key, &keypair.public().to_peer_id())?;
    // Raft is not up yet: its voters join the map once `peers::follow` runs.
    let peers = crate::peers::shared(crate::peers::PeerMap::new(&cfg, &ledger.roster(), &Default::default()));
    let map = peers.read().expect("peers lock").clone();
    let parse_addr = |s: &str| s.parse().map_err(|e| NodeError::Config(format!("address {s}: {e}")));
    let (net, event_loop, inbound) = leasehold_network::new(leasehold_network::Config {
        keypair,
        listen: parse_addr(&cfg.p2p_listen)?,
        peers: map.addrs.clone(),
        allowed: map.allowed(),
        request_timeout_ms: 10_000,
        redial_interval_ms: 500,
    })?;
    let mut tasks = vec![tokio::spawn(event_loop.run())];

    let me = crate::raft::Me { node: node_id, org: cfg.org.clone(), key: key.clone(), ledger: ledger.clone() };
    let network = Network {
        client: net.clone(),
        peers: peers.clone(),
        me: Arc::new(me),
        ballots: Arc::new(crate::election::Ballots::load(store.clone())?),
    };
    let raft = Raft::new(
        node_id,
        raft_config(&cfg)?,
        network,
        LogStore::new(store.clone()),
        StateMachine::new(ledger.clone(), cfg.data_dir.join("snapshots")),
    )
    .await
    .map_err(|e| NodeError::Raft(e.to_string()))?;
    let fence = crate::fence::Fence::load(&store)?;
    if fence.is_up() {
        raft.runtime_config().elect(false);
    }
    // Every genesis node proposes the same initial membership, the genesis
    // orgs; on a node already initialised this is refused, which is what
    // we want. A node that joined later waits to be added as a learner.
    if node_id as usize <= ledger.genesis.orgs.len() {
        let members: BTreeMap<NodeId, BasicNode> = (1..=ledger.genesis.orgs.len() as NodeId)
            .filter_map(|id| map.peer_of_node.get(&id).map(|p| (id, BasicNode { addr: p.to_string() })))
            .collect();
        if let Err(e) = raft.initialize(members).await {
            debug!("raft initialise: {e}");
        }
    }
    let (mempool, pending) = mpsc::channel(cfg.block.mempool_capacity);
    let first_nonce = (now_ms() as u64).saturating_mul(1000);
    let inner = Arc::new(Inner {
        cfg,
        ledger,
        raft,
        net,
        node_id,
        key,
        mempool,
        peers,
        x25519_secret,
        runner: std::sync::OnceLock::new(),
        forwarded: std::sync::Mutex::new(HashMap::new()),
        shunned: std::sync::Mutex::new(HashMap::new()),
        limits: Default::default(),
        #[cfg(test)]
        censors: Default::default(),
        manifests: Default::default(),
        incoming: tokio::sync::Mutex::new(None),
        elected: std::sync::Mutex::new(None),
        fence,
        backing_up: Default::default(),
        adopting: Default::default(),
        nonce: AtomicU64::new(first_nonce),
    });
    tasks.push(tokio::spawn(crate::rpc::serve_inbound(inner.clone(), inbound)));
    tasks.push(tokio::spawn(cut_blocks(inner.clone(), pending)));
    tasks.push(tokio::spawn(prune_waiters(inner.clone())));
    tasks.push(tokio::spawn(crate::certify::run(inner.clone())));
    tasks.push(tokio::spawn(crate::membership::run(inner.clone())));
    tasks.push(tokio::spawn(crate::fence::watch(inner.clone())));
    tasks.push(tokio::spawn(crate::peers::follow(inner.clone())));
    tasks.push(tokio::spawn(crate::censor::run(inner.clone())));
    let node = NodeHandle { inner };
    // The node runs workflows, watches their leases and deletes ended
    // leases' caches whether or not an API is serving.
    let (runner, janitor) = crate::runner::Runner::start(node.clone())?;
    tasks.push(janitor);
    let _ = node.inner.runner.set(runner);
    info!(org = %node.inner.cfg.org, node_id, "node started");
    Ok((node, Tasks(tasks)))
}

async fn prune_waiters(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        inner.ledger.prune_waiters();
    }
}

/// One transaction in the mempool, and the peer that forwarded it, if any.
pub(crate) struct Pending {
    pub tx: SignedTx,
    pub from: Option<PeerId>,
    /// Canonical size, measured once at admission.
    pub bytes: usize,
}

/// The largest transaction accepted, in canonical bytes. With
/// `block.max_bytes` it bounds what one raft entry carries.
pub const MAX_TX_BYTES: usize = 256 * 1024;

fn tx_bytes(tx: &SignedTx) -> usize {
    leasehold_chaincode::canonical::to_bytes(tx).len()
}

/// The tx with its size, or `None` if it is over [`MAX_TX_BYTES`].
pub(crate) fn sized(tx: SignedTx, from: Option<PeerId>) -> Option<Pending> {
    let bytes = tx_bytes(&tx);
    (bytes <= MAX_TX_BYTES).then_some(Pending { tx, from, bytes })
}

/// Gathers pending txs into batches: a batch closes at `max_txs` or
/// `timeout_ms` after its first tx, whichever comes first.
async fn cut_blocks(inner: Arc<Inner>, mut pending: mpsc::Receiver<Pending>) {
    let inflight = Arc::new(Semaphore::new(inner.cfg.block.max_inflight));
    let max = inner.cfg.block.max_txs;
    let wait = Duration::from_millis(inner.cfg.block.timeout_ms);
    let max_bytes = inner.cfg.block.max_bytes;
    let mut carry: Option<Pending> = None;
    while let Some(first) = match carry.take() {
        Some(p) => Some(p),
        None => pending.recv().await,
    } {
        inner.release_forwarded(&first.from);
        let mut bytes = first.bytes;
        let mut batch = vec![first.tx];
        let deadline = tokio::time::Instant::now() + wait;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, pending.recv()).await {
                Ok(Some(p)) => {
                    let size = p.bytes;
                    if bytes + size > max_bytes {
                        // Starts the next block instead.
                        carry = Some(p);
                        break;
                    }
                    inner.release_forwarded(&p.from);
                    bytes += size;
                    batch.push(p.tx);
                }
                _ => break,
            }
        }
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            dispatch(&inner, batch).await;
            drop(permit);
        });
    }
}

/// Gets a batch ordered: proposed if this node leads, else forwarded to the
/// leader. Retries across leader changes for a bounded time; submitters whose
/// txs are dropped see "pending" and may resubmit (a tx id commits once).
async fn dispatch(inner: &Inner, batch: Vec<SignedTx>) {
    const GIVE_UP_AFTER: Duration = Duration::from_secs(10);
    let start = tokio::time::Instant::now();
    while start.elapsed() < GIVE_UP_AFTER {
        match inner.leader() {
            Some(leader) if leader == inner.node_id => {
                // A proposal under a key its org no longer has is refused
                // by every node: wait for a leader whose key counts.
                let mine = inner.key.verifying_key().to_bytes();
                if !inner.ledger.roster().is_key_of(&inner.cfg.org, &mine) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let p = Proposal::new(&inner.ledger.genesis, &inner.cfg.org, &inner.key, now_ms(), batch.clone());
                match inner.raft.client_write(p).await {
                    Ok(_) => return,
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {}
                    Err(e) => warn!("proposal failed: {e}"),
                }
            }
            // A leader found censoring is not handed this batch: the next is.
            Some(leader) if crate::gate::is_shunned(inner, leader) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Some(leader) => {
                let Some(peer) = inner.peers().peer_of_node.get(&leader).copied() else {
                    // A leader this node's ledger no longer lists: wait for the next.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                // A leader cut off from us may take the whole request timeout
                // to fail, while the rest elect another within a second: the
                // batch goes to the new leader as soon as one is known.
                let mut metrics = inner.raft.metrics();
                let replaced = metrics.wait_for(|m| m.current_leader.is_some_and(|l| l != leader));
                let sent = inner.net.request(peer, encode(&Rpc::Forward(batch.clone())));
                tokio::select! {
                    reply = sent => match reply {
                        Ok(bytes) => match decode::<RpcReply>(&bytes, "forward reply") {
                            Ok(RpcReply::Forward(Ok(()))) => {
                                // Acknowledged is not ordered: this org's own txs
                                // are followed until they are (see `censor`).
                                inner.ledger.watch.acknowledged(leader, &inner.cfg.org, &batch);
                                return;
                            }
                            Ok(RpcReply::Forward(Err(e))) => debug!("leader refused batch: {e}"),
                            _ => warn!("unexpected reply to forward"),
                        },
                        Err(e) => debug!("forward failed: {e}"),
                    },
                    _ = replaced => debug!("the leader changed while a batch was forwarded to it"),
                }
            }
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    warn!(txs = batch.len(), "dropping a batch: no leader accepted it in time");
}

impl Inner {
    pub(crate) fn release_forwarded(&self, from: &Option<PeerId>) {
        if let Some(p) = from {
            if let Some(n) = self.forwarded.lock().expect("forwarded lock").get_mut(p) {
                *n = n.saturating_sub(1);
            }
        }
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// The time a lease is judged at: the later of this node's clock and the
    /// last block's time, so a lease ends at its expiry even when no block
    /// has been cut since.
    pub fn ledger_now(&self) -> i64 {
        now_ms().max(self.ledger.head().time_ms)
    }
}

impl NodeHandle {
    pub fn config(&self) -> &NodeConfig {
        &self.inner.cfg
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.inner.ledger
    }

    pub fn org(&self) -> &str {
        &self.inner.cfg.org
    }

    /// See [`Inner::ledger_now`].
    pub fn ledger_now(&self) -> i64 {
        self.inner.ledger_now()
    }

    /// Microseconds since the epoch, strictly increasing across calls: the
    /// convention every signer for an org follows, so that nonces from the
    /// node, the bench and other tools stay within the chaincode's window.
    fn next_nonce(&self) -> u64 {
        let now_us = now_ms() as u64 * 1000;
        let prev = self.inner.nonce.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| Some((p + 1).max(now_us)));
        let prev = prev.unwrap_or_else(|p| p);
        (prev + 1).max(now_us)
    }

    /// Signs `payload` as this node's org with a fresh nonce.
    pub fn sign(&self, payload: Payload) -> SignedTx {
        let body = TxBody {
            network_id: self.inner.ledger.genesis.network_id.clone(),
            org: self.inner.cfg.org.clone(),
            nonce: self.next_nonce(),
            created_at_ms: now_ms(),
            payload,
        };
        body.sign(&self.inner.key)
    }

    /// Submits signed transactions and waits up to `wait` for each to commit
    /// on this node. Signatures and network are checked before ordering, so
    /// a forged tx costs the network nothing; the chaincode checks them again
    /// when every node applies the block.
    pub async fn submit(&self, txs: Vec<SignedTx>, wait: Duration) -> Vec<Submission> {
        let ledger = &self.inner.ledger;
        if let Err(e) = self.check_disk() {
            let reason = e.to_string();
            return txs
                .iter()
                .map(|t| Submission::Rejected { tx_id: t.id().to_hex(), reason: reason.clone() })
                .collect();
        }
        let sigs = verify_signatures(&ledger.roster().orgs, &txs);
        let mut waiting = Vec::with_capacity(txs.len());
        let mut out: Vec<Option<Submission>> = vec![None; txs.len()];
        for (i, (tx, sig)) in txs.into_iter().zip(sigs).enumerate() {
            let id = tx.id();
            let reject = |reason: String| Some(Submission::Rejected { tx_id: id.to_hex(), reason });
            if tx.body.network_id != ledger.genesis.network_id {
                out[i] = reject(format!("transaction is for network {:?}", tx.body.network_id));
            } else if let Err(e) = sig {
                out[i] = reject(e.to_string());
            } else if let Ok(Some((h, _))) = ledger.store.tx_location(&id) {
                out[i] = reject(format!("transaction {id} was already committed at height {h}"));
            } else {
                let Some(pending) = sized(tx, None) else {
                    out[i] = reject(format!("transaction is larger than {MAX_TX_BYTES} bytes"));
                    continue;
                };
                let rx = ledger.wait_for(id);
                match self.inner.mempool.try_send(pending) {
                    Ok(()) => waiting.push((i, id, rx)),
                    Err(_) => out[i] = reject("the node is overloaded; retry later".into()),
                }
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        for (i, id, rx) in waiting {
            out[i] = Some(match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(receipt)) => Submission::Committed { tx_id: id.to_hex(), receipt },
                _ => Submission::Pending { tx_id: id.to_hex() },
            });
        }
        out.into_iter().map(|s| s.expect("every tx has an outcome")).collect()
    }

    pub fn leader_org(&self) -> Option<String> {
        let leader = self.inner.leader()?;
        self.inner.ledger.roster().member(leader).map(|m| m.info.id.clone())
    }

    /// Orgs whose nodes this node is connected to.
    pub async fn connected_orgs(&self) -> Vec<String> {
        let peers = self.inner.net.connected_peers().await.unwrap_or_default();
        let mut orgs: Vec<String> =
            peers.iter().filter_map(|p| self.inner.peers().org_of_peer.get(p).cloned()).collect();
        orgs.sort();
        orgs
    }

    pub fn lookup_tx(&self, id: &TxId) -> Result<Option<(u64, u32)>> {
        self.inner.ledger.store.tx_location(id)
    }

    /// Resolves once the ledger no longer names this node's signing key as
    /// its org's (a rotation took effect): the node must stop, and start
    /// again with the new keys, for nothing it signs now counts.
    pub async fn keys_rotated(&self) {
        let mut rosters = self.inner.ledger.watch_roster();
        let mine = self.inner.key.verifying_key().to_bytes();
        loop {
            // Only this node's key among its org's earlier ones is a
            // rotation: a ledger behind a joining or rotated node names an
            // older key, or none.
            let rotated = {
                let roster = rosters.borrow_and_update();
                let org = roster.members.iter().find(|m| m.info.id == self.inner.cfg.org);
                org.is_some_and(|m| m.previous.iter().any(|p| p.signing_key == mine))
            };
            if rotated {
                return;
            }
            if rosters.changed().await.is_err() {
                // The ledger is gone: the node is stopping anyway.
                std::future::pending::<()>().await;
            }
        }
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            warn!("raft shutdown: {e}");
        }
    }
}
