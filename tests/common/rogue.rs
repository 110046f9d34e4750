//! A rogue peer for tests: it holds org3's genesis-listed keys, speaks the
//! wire protocol, answers nothing, and says whatever a test makes it say.

use std::time::{Duration, Instant};

use leasehold_network::{Multiaddr, PeerId};
use leasehold_node::config::NodeConfig;
use leasehold_node::raft::{Rpc, RpcReply};
use leasehold_node::store::{decode, encode};

use super::TestNet;

pub struct Rogue {
    pub client: leasehold_network::Client,
    pub peers: Vec<(String, PeerId)>,
}

impl Rogue {
    /// org3's node is stopped; the rogue takes its keys and connects.
    pub async fn as_org3(net: &mut TestNet) -> Self {
        net.stop(2);
        let cfg = NodeConfig::load(&net.nodes[2].dir.join("node.toml")).unwrap();
        let peers: Vec<(PeerId, Multiaddr)> =
            cfg.peers.iter().map(|p| (p.peer_id.parse().unwrap(), p.addr.parse().unwrap())).collect();
        let (client, event_loop, mut inbound) = leasehold_network::new(leasehold_network::Config {
            keypair: cfg.p2p_keypair().unwrap(),
            listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            peers: peers.clone(),
            allowed: peers.iter().map(|(p, _)| *p).collect(),
            request_timeout_ms: 3_000,
            redial_interval_ms: 200,
        })
        .unwrap();
        tokio::spawn(event_loop.run());
        // It answers nothing that is asked of it.
        tokio::spawn(async move { while inbound.recv().await.is_some() {} });
        let named = cfg.peers.iter().map(|p| (p.org.clone(), p.peer_id.parse().unwrap())).collect();
        let rogue = Rogue { client, peers: named };
        let deadline = Instant::now() + Duration::from_secs(10);
        while rogue.client.connected_peers().await.unwrap_or_default().len() < 2 {
            assert!(Instant::now() < deadline, "the rogue never connected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rogue
    }

    pub fn peer(&self, org: &str) -> PeerId {
        self.peers.iter().find(|(o, _)| o == org).unwrap().1
    }

    pub async fn send(&self, org: &str, rpc: &Rpc) -> Option<RpcReply> {
        let bytes = self.client.request(self.peer(org), encode(rpc)).await.ok()?;
        Some(decode(&bytes, "reply").unwrap())
    }
}
