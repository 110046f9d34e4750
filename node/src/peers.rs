//! Who this node talks to: the active orgs of the roster in effect on its
//! own ledger, never a file. When a block changes the roster, the maps are
//! rebuilt and the network is told, so a joined org's node is admitted and
//! dialled and a departed one's connections are closed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use leasehold_chaincode::roster::Roster;
use leasehold_network::{Multiaddr, PeerId};
use tracing::{info, warn};

use crate::config::NodeConfig;
use crate::error::Result;
use crate::node::Inner;
use crate::raft::NodeId;

/// The active orgs' nodes, peers and addresses.
#[derive(Debug, Default)]
pub struct PeerMap {
    pub peer_of_node: HashMap<NodeId, PeerId>,
    pub org_of_peer: HashMap<PeerId, String>,
    /// Where to dial each peer but this node's own.
    pub addrs: Vec<(PeerId, Multiaddr)>,
}

/// Shared by the node and its raft network, swapped whole on a change.
pub type SharedPeers = Arc<RwLock<Arc<PeerMap>>>;

impl PeerMap {
    /// The maps for `roster`. A card whose peer id or address does not
    /// parse is left out, with a warning: the chaincode cannot check
    /// libp2p's formats, and one bad card must not stop every node.
    pub fn new(cfg: &NodeConfig, roster: &Roster) -> Self {
        let mut map = PeerMap::default();
        for (i, m) in roster.members.iter().enumerate().filter(|(_, m)| m.left.is_none()) {
            let Ok(peer) = m.info.peer_id.parse::<PeerId>() else {
                warn!(org = %m.info.id, "the roster's peer id for this org does not parse; it is left out");
                continue;
            };
            map.peer_of_node.insert(i as NodeId + 1, peer);
            map.org_of_peer.insert(peer, m.info.id.clone());
        }
        for o in roster.orgs.orgs.iter().filter(|o| o.id != cfg.org) {
            match cfg.peer_addrs(&single(&roster.orgs, o)) {
                Ok(mut a) => map.addrs.append(&mut a),
                Err(e) => warn!(org = %o.id, "no address to dial: {e}"),
            }
        }
        map
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

/// Follows the roster: rebuilds the maps and updates the network's allowed
/// peers and dial list whenever a block changes the orgs.
pub(crate) async fn follow(inner: Arc<Inner>) {
    let mut rosters = inner.ledger.watch_roster();
    // A change applied between start and this subscription is not missed.
    let roster = rosters.borrow_and_update().clone();
    if let Err(e) = apply(&inner, &roster).await {
        warn!("cannot set the peers: {e}");
    }
    loop {
        if rosters.changed().await.is_err() {
            return;
        }
        let roster = rosters.borrow_and_update().clone();
        if let Err(e) = apply(&inner, &roster).await {
            warn!("cannot update the peers after a roster change: {e}");
        }
    }
}

async fn apply(inner: &Inner, roster: &Roster) -> Result<()> {
    let map = PeerMap::new(&inner.cfg, roster);
    let mut allowed: Vec<PeerId> = map.org_of_peer.keys().copied().collect();
    allowed.sort();
    info!(orgs = ?roster.orgs.orgs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), "the orgs changed on the ledger");
    let addrs = map.addrs.clone();
    *inner.peers.write().expect("peers lock") = Arc::new(map);
    inner.net.set_peers(allowed, addrs).await?;
    Ok(())
}

impl Inner {
    /// The peer maps now; cheap, and stable while held.
    pub(crate) fn peers(&self) -> Arc<PeerMap> {
        self.peers.read().expect("peers lock").clone()
    }
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
    if m.info.signing_key != key.verifying_key().to_bytes() {
        return Err(config("the signing key does not match the ledger's key for this org".into()));
    }
    if m.info.peer_id != peer.to_string() {
        return Err(config("the p2p key does not match the ledger's peer id for this org".into()));
    }
    Ok(id)
}
