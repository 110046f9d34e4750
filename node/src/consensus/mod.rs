//! Ordering: openraft over `leasehold-network`, and what keeps a dishonest
//! org from bending it. openraft is the consensus engine; the adapters only
//! store what it asks (`log_store`, `state_machine`) and carry its messages
//! (`network`). Around it:
//!
//! - `mempool`: txs in, batches out to the leader (`Rpc::Forward`);
//! - `inbound`: a peer's raft, forward, relay, certificate and term messages,
//!   through `gate` (`election` certificates, the clock, the `fence` of a
//!   restored node) before openraft sees them;
//! - `censor`: this org's txs followed until ordered, a leader that drops
//!   them found and shunned;
//! - `certify`: each applied block signed and the signatures traded;
//! - `membership` and `peers`: raft's voters and the p2p allow-list follow
//!   the ledger's roster.
//!
//! [`Consensus`] owns this state; nothing outside this module reads its fields.

pub(crate) mod censor;
#[cfg(test)]
mod censor_tests;
pub(crate) mod certify;
pub(crate) mod election;
pub(crate) mod fence;
pub(crate) mod gate;
pub(crate) mod inbound;
// openraft's trait signatures fix `StorageError` as the error type; boxing it
// in our helpers would only add conversions at every call.
#[allow(clippy::result_large_err)]
mod log_store;
pub(crate) mod membership;
pub(crate) mod mempool;
#[allow(clippy::result_large_err)]
mod network;
pub(crate) mod peers;
pub(crate) mod receive_snapshot;
#[allow(clippy::result_large_err)]
mod state_machine;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use leasehold_network::{Inbound, PeerId};
use openraft::BasicNode;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

pub use log_store::LogStore;
pub use network::{Me, Network};
pub use state_machine::StateMachine;

use crate::config::NodeConfig;
use crate::error::{NodeError, Result};
use crate::ledger::store::{decode, encode, Store};
use crate::ledger::Ledger;
use crate::raft::{NodeId, Raft};
use crate::wire::{Rpc, RpcReply};

/// The ordering half of a node: raft, the p2p client, the mempool and the
/// state of the checks around them.
pub(crate) struct Consensus {
    cfg: NodeConfig,
    ledger: Arc<Ledger>,
    raft: Raft,
    net: leasehold_network::Client,
    node_id: NodeId,
    key: SigningKey,
    mempool: mpsc::Sender<mempool::Pending>,
    /// Forwarded txs still in the mempool, per forwarding peer: each peer
    /// gets a share of the mempool, so one cannot crowd out the others.
    forwarded: std::sync::Mutex<HashMap<PeerId, usize>>,
    /// Leaders refused for their clock, ignored until then (see `gate`).
    shunned: std::sync::Mutex<HashMap<NodeId, std::time::Instant>>,
    /// The snapshot being received from a peer, checked before install.
    incoming: tokio::sync::Mutex<Option<receive_snapshot::Incoming>>,
    /// The (term, leader) whose election this node has seen proven.
    elected: std::sync::Mutex<Option<(u64, NodeId)>>,
    /// Up on a node restored from a backup until it has caught up.
    fence: fence::Fence,
    /// The active orgs' nodes and peers, following the ledger (`peers`).
    peers: peers::SharedPeers,
    /// Tests only: the org whose forwarded txs this node, as a dishonest
    /// leader, acknowledges and drops (see `censor_tests`).
    #[cfg(test)]
    censors: std::sync::Mutex<Option<String>>,
}

/// What `Consensus::start` hands the node: the requests peers send it that
/// are not consensus's own, and the tasks to abort at shutdown.
pub(crate) struct Started {
    pub consensus: Arc<Consensus>,
    pub inbound: mpsc::Receiver<Inbound>,
    pub tasks: Vec<JoinHandle<()>>,
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

impl Consensus {
    /// Joins the network and starts raft over `ledger`, with the tasks that
    /// cut blocks and keep the checks around raft.
    pub(crate) async fn start(cfg: &NodeConfig, ledger: Arc<Ledger>, store: &Store) -> Result<Started> {
        let key = cfg.signing_key()?;
        let keypair = cfg.p2p_keypair()?;
        let node_id = peers::identify(cfg, &ledger.roster(), &key, &keypair.public().to_peer_id())?;
        // Raft is not up yet: its voters join the map once `peers::follow` runs.
        let peers = peers::shared(peers::PeerMap::new(cfg, &ledger.roster(), &Default::default()));
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
        let me = Me { node: node_id, org: cfg.org.clone(), key: key.clone(), ledger: ledger.clone() };
        let network = Network {
            client: net.clone(),
            peers: peers.clone(),
            me: Arc::new(me),
            ballots: Arc::new(election::Ballots::load(store.clone())?),
        };
        let raft = Raft::new(
            node_id,
            raft_config(cfg)?,
            network,
            LogStore::new(store.clone()),
            StateMachine::new(ledger.clone(), cfg.data_dir.join("snapshots")),
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        let fence = fence::Fence::load(store)?;
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
        let c = Arc::new(Consensus {
            cfg: cfg.clone(),
            ledger,
            raft,
            net,
            node_id,
            key,
            mempool,
            forwarded: Default::default(),
            shunned: Default::default(),
            incoming: tokio::sync::Mutex::new(None),
            elected: Default::default(),
            fence,
            peers,
            #[cfg(test)]
            censors: Default::default(),
        });
        tasks.push(tokio::spawn(mempool::cut_blocks(c.clone(), pending)));
        tasks.push(tokio::spawn(certify::run(c.clone())));
        tasks.push(tokio::spawn(membership::run(c.clone())));
        tasks.push(tokio::spawn(fence::watch(c.clone())));
        tasks.push(tokio::spawn(peers::follow(c.clone())));
        tasks.push(tokio::spawn(censor::run(c.clone())));
        Ok(Started { consensus: c, inbound, tasks })
    }

    pub(crate) fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub(crate) fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub(crate) fn raft_metrics(&self) -> openraft::RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    pub(crate) fn check_disk(&self) -> Result<()> {
        crate::disk::check(&self.cfg.data_dir, self.cfg.min_free_disk_mib)
    }

    /// The peer maps now; cheap, and stable while held.
    pub(crate) fn peers(&self) -> Arc<peers::PeerMap> {
        self.peers.read().expect("peers lock").clone()
    }

    /// Whether the fence of a restored node is up (see `fence`).
    pub(crate) fn fence(&self) -> &fence::Fence {
        &self.fence
    }

    /// Orgs whose nodes this node is connected to.
    pub(crate) async fn connected_orgs(&self) -> Vec<String> {
        let peers = self.net.connected_peers().await.unwrap_or_default();
        let map = self.peers();
        let mut orgs: Vec<String> = peers.iter().filter_map(|p| map.org_of_peer.get(p).cloned()).collect();
        orgs.sort();
        orgs
    }

    /// Answers a peer's request that is not consensus's own.
    pub(crate) async fn respond(&self, reply: leasehold_network::Reply, bytes: Vec<u8>) {
        let _ = self.net.respond(reply, bytes).await;
    }

    /// Sends `rpc` to the node of `org` and returns its reply; one that
    /// does not decode is that node's fault ([`NodeError::Peer`]).
    pub(crate) async fn ask_org(&self, org: &str, rpc: Rpc) -> Result<RpcReply> {
        let peer = self
            .peers()
            .org_of_peer
            .iter()
            .find(|(_, o)| *o == org)
            .map(|(p, _)| *p)
            .ok_or_else(|| NodeError::Data(format!("org {org} is not a member of the network")))?;
        let sent = self.net.request(peer, encode(&rpc)).await;
        let bytes = sent.map_err(|e| NodeError::Unavailable(format!("{org}'s node cannot be reached: {e}")))?;
        decode::<RpcReply>(&bytes, "reply").map_err(|e| NodeError::Peer(format!("{org}'s node answered wrongly: {e}")))
    }

    pub(crate) async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            warn!("raft shutdown: {e}");
        }
    }
}
