//! Who this node talks to: the active orgs of the roster in effect on its
//! own ledger, never a file, and a departed org's node for as long as raft
//! still counts it as a voter (cutting it off first could leave raft
//! without a quorum to remove it). When a block changes the roster or raft
//! changes its voters, the maps are rebuilt and the network is told, so a
//! joined org's node is admitted and dialled and a departed one's
//! connections are closed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use leasehold_chaincode::roster::Roster;
use leasehold_network::{Multiaddr, PeerId};
use tracing::{info, warn};

use super::Consensus;
use crate::config::NodeConfig;
use crate::error::Result;
use crate::raft::NodeId;

/// The active orgs' nodes, peers and addresses.
#[derive(Debug, Default)]
pub struct PeerMap {
    /// Raft's view: the active orgs' nodes and departed raft voters.
    pub peer_of_node: HashMap<NodeId, PeerId>,
    /// The active orgs only: whom the data plane and the ledger serve.
    pub org_of_peer: HashMap<PeerId, String>,
    /// Where to dial each peer but this node's own.
    pub addrs: Vec<(PeerId, Multiaddr)>,
}

/// Shared by the node and its raft network, swapped whole on a change.
pub type SharedPeers = Arc<RwLock<Arc<PeerMap>>>;

impl PeerMap {
    /// The maps for `roster`, keeping departed orgs whose nodes are among
    /// `raft_voters`. A card whose peer id or address does not parse is
    /// left out, with a warning: the chaincode cannot check libp2p's
    /// formats, and one bad card must not stop every node.
    pub fn new(cfg: &NodeConfig, roster: &Roster, raft_voters: &BTreeSet<NodeId>) -> Self {
        let mut map = PeerMap::default();
        for (i, m) in roster.members.iter().enumerate() {
            let node = i as NodeId + 1;
            let active = m.left.is_none();
            if !active && !raft_voters.contains(&node) {
                continue;
            }
            let Ok(peer) = m.info.peer_id.parse::<PeerId>() else {
                warn!(org = %m.info.id, "the roster's peer id for this org does not parse; it is left out");
                continue;
            };
            map.peer_of_node.insert(node, peer);
            if active {
                map.org_of_peer.insert(peer, m.info.id.clone());
            }
            if m.info.id == cfg.org {
                continue;
            }
            match cfg.peer_addrs(&single(&roster.ever, &m.info)) {
                Ok(mut a) => map.addrs.append(&mut a),
                Err(e) => warn!(org = %m.info.id, "no address to dial: {e}"),
            }
        }
        map
    }

    /// Every peer this node accepts a connection from.
    pub fn allowed(&self) -> Vec<PeerId> {
        let mut allowed: Vec<PeerId> = self.peer_of_node.values().copied().collect();
        allowed.sort();
        allowed.dedup();
        allowed
    }

    pub fn node_of(&self, peer: &PeerId) -> Option<NodeId> {
        self.peer_of_node.iter().find(|(_, p)| *p == peer).map(|(id, _)| *id)
    }

    /// The org of `peer`, or words for a log line.
    pub fn org_name(&self, peer: &PeerId) -> String {
        self.org_of_peer.get(peer).cloned().unwrap_or_else(|| "an unknown org".into())
    }
}

/// `orgs` with `o` alone, so one bad card costs only its own address.
fn single(orgs: &leasehold_chaincode::Genesis, o: &leasehold_chaincode::OrgInfo) -> leasehold_chaincode::Genesis {
    leasehold_chaincode::Genesis { orgs: vec![o.clone()], ..orgs.clone() }
}

pub fn shared(map: PeerMap) -> SharedPeers {
    Arc::new(RwLock::new(Arc::new(map)))
}

/// Follows the roster and raft's voters: rebuilds the maps and updates the
/// network's allowed peers and dial list whenever either changes.
pub(crate) async fn follow(inner: Arc<Consensus>) {
    let mut rosters = inner.ledger.watch_roster();
    let mut metrics = inner.raft.metrics();
    let mut applied: Option<(Arc<Roster>, BTreeSet<NodeId>)> = None;
    loop {
        // Both are read after subscribing, so no change is missed. Raft's
        // metrics change with every append: compare cheaply.
        let roster = rosters.borrow_and_update().clone();
        let voters: BTreeSet<NodeId> = metrics.borrow_and_update().membership_config.membership().voter_ids().collect();
        let same = applied.as_ref().is_some_and(|(r, v)| Arc::ptr_eq(r, &roster) && *v == voters);
        if !same {
            match apply(&inner, &roster, &voters).await {
                Ok(()) => applied = Some((roster, voters)),
                Err(e) => warn!("cannot update the peers: {e}"),
            }
        }
        tokio::select! {
            r = rosters.changed() => if r.is_err() { return },
            m = metrics.changed() => if m.is_err() { return },
        }
    }
}

async fn apply(inner: &Consensus, roster: &Roster, raft_voters: &BTreeSet<NodeId>) -> Result<()> {
    let map = PeerMap::new(&inner.cfg, roster, raft_voters);
    let allowed = map.allowed();
    info!(
        orgs = ?roster.orgs.orgs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        raft_voters = ?raft_voters,
        "the peers follow the ledger's orgs and raft's voters"
    );
    let addrs = map.addrs.clone();
    *inner.peers.write().expect("peers lock") = Arc::new(map);
    inner.net.set_peers(allowed, addrs).await?;
    Ok(())
}

/// This node's raft node id, once its keys are checked against the roster
/// in effect on its ledger. An org that joined after the genesis names its
/// id in `node_id` until its ledger has caught up to its joining.
pub fn identify(cfg: &NodeConfig, roster: &Roster, key: &ed25519_dalek::SigningKey, peer: &PeerId) -> Result<NodeId> {
    let config = |m: String| crate::error::NodeError::Config(m);
    let Some(id) = roster.node_id(&cfg.org) else {
        let id = cfg.node_id.ok_or_else(|| {
            config(format!(
                "org {} is neither in the genesis nor on this node's ledger; an org that joined later sets \
                 `node_id` in its config to the id the network gave it (`leasehold org list`)",
                cfg.org
            ))
        })?;
        if let Some(other) = roster.member(id) {
            return Err(config(format!("node id {id} is {}'s, not {}'s", other.info.id, cfg.org)));
        }
        return Ok(id);
    };
    let m = roster.member(id).expect("the roster names it");
    if let Some(left) = &m.left {
        return Err(config(format!("this node is refused: {}", left.reason)));
    }
    if cfg.node_id.is_some_and(|want| want != id) {
        return Err(config(format!("`node_id` says {:?}, the ledger gives {} node id {id}", cfg.node_id, cfg.org)));
    }
    if m.info.signing_key == key.verifying_key().to_bytes() && m.info.peer_id == peer.to_string() {
        return Ok(id);
    }
    // This node took up rotated keys that its ledger, behind the network,
    // does not name yet: it catches up under them, and signs nothing that
    // counts until then (the others check every signature).
    if crate::orgs::previous_signing_keys(cfg)?.contains(&m.info.signing_key) {
        warn!(org = %cfg.org, "this node's ledger predates the rotation of its keys; it catches up first");
        return Ok(id);
    }
    if m.info.signing_key != key.verifying_key().to_bytes() {
        return Err(config("the signing key does not match the ledger's key for this org".into()));
    }
    Err(config("the p2p key does not match the ledger's peer id for this org".into()))
}
