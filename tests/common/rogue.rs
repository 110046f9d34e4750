//! A rogue peer for tests: it holds org3's genesis-listed keys, speaks the
//! wire protocol, answers nothing, and says whatever a test makes it say.

use std::time::{Duration, Instant};

use leasehold_chaincode::{Genesis, OrgInfo};
use leasehold_network::{Multiaddr, PeerId};
use leasehold_node::config::NodeConfig;
use leasehold_node::ledger::store::{decode, encode};
use leasehold_node::wire::Grant;
use leasehold_node::wire::{Rpc, RpcReply};

use super::TestNet;

pub struct Rogue {
    pub client: leasehold_network::Client,
    pub peers: Vec<(String, PeerId)>,
    pub key: ed25519_dalek::SigningKey,
    pub genesis: leasehold_chaincode::Genesis,
}

impl Rogue {
    /// org3's node is stopped; the rogue takes its keys and connects.
    pub async fn as_org3(net: &mut TestNet) -> Self {
        Self::as_org3_answering(net, None).await
    }

    /// As [`Rogue::as_org3`], answering every request with `answer`'s bytes
    /// (nothing when `None`).
    pub async fn as_org3_answering(net: &mut TestNet, answer: Option<Vec<u8>>) -> Self {
        net.stop(2);
        let cfg = NodeConfig::load(&net.nodes[2].dir.join("node.toml")).unwrap();
        // Its peers are the genesis's other orgs, at the addresses it lists.
        let genesis: Genesis = serde_json::from_slice(&std::fs::read(&cfg.genesis).unwrap()).unwrap();
        let others: Vec<&OrgInfo> = genesis.orgs.iter().filter(|o| o.id != cfg.org).collect();
        let peers: Vec<(PeerId, Multiaddr)> =
            others.iter().map(|o| (o.peer_id.parse().unwrap(), o.p2p_addr.parse().unwrap())).collect();
        let (client, event_loop, mut inbound) = leasehold_network::new(leasehold_network::Config {
            keypair: cfg.p2p_keypair().unwrap(),
            listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            peers: peers.clone(),
            allowed: peers.iter().map(|(p, _)| *p).collect(),
            request_timeout_ms: 8_000,
            redial_interval_ms: 200,
        })
        .unwrap();
        tokio::spawn(event_loop.run());
        // It answers nothing that is asked of it, or always the same.
        let responder = client.clone();
        tokio::spawn(async move {
            while let Some(req) = inbound.recv().await {
                if let Some(bytes) = &answer {
                    let _ = responder.respond(req.reply, bytes.clone()).await;
                }
            }
        });
        let named = others.iter().map(|o| (o.id.clone(), o.peer_id.parse().unwrap())).collect();
        let rogue = Rogue { client, peers: named, key: net.nodes[2].key.clone(), genesis };
        let deadline = Instant::now() + Duration::from_secs(10);
        while rogue.client.connected_peers().await.unwrap_or_default().len() < 2 {
            assert!(Instant::now() < deadline, "the rogue never connected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rogue
    }

    /// A tx signed with org3's key, as org3's node would sign it.
    pub fn sign(&self, payload: leasehold_chaincode::Payload) -> leasehold_chaincode::SignedTx {
        self.sign_as("org3", payload)
    }

    /// A tx that claims to be `org`'s, signed with org3's key.
    pub fn sign_as(&self, org: &str, payload: leasehold_chaincode::Payload) -> leasehold_chaincode::SignedTx {
        let now = leasehold_node::now_ms();
        let body = leasehold_chaincode::TxBody {
            network_id: self.genesis.network_id.clone(),
            org: org.into(),
            nonce: now as u64 * 1000,
            created_at_ms: now,
            payload,
        };
        body.sign(&self.key)
    }

    pub fn peer(&self, org: &str) -> PeerId {
        self.peers.iter().find(|(o, _)| o == org).unwrap().1
    }

    pub async fn send(&self, org: &str, rpc: &Rpc) -> Option<RpcReply> {
        let bytes = self.client.request(self.peer(org), encode(rpc)).await.ok()?;
        Some(decode(&bytes, "reply").unwrap())
    }

    /// Wins a real election in a high term by claiming a longer log than
    /// anyone's (raft believes a candidate's `last_log_id`): asks `org`
    /// for its vote until that node's leader lease has lapsed and it
    /// grants it. Returns the term and the signed votes: `org`'s and its own.
    pub async fn win_election(&self, org: &str, after_term: u64) -> (u64, Vec<Grant>) {
        use openraft::raft::VoteRequest;
        use openraft::{CommittedLeaderId, LogId, Vote};
        let term = after_term + 100;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let last = LogId::new(CommittedLeaderId::new(term, 3), 1 << 40);
            let req = VoteRequest { vote: Vote::new(term, 3), last_log_id: Some(last) };
            if let Some(RpcReply::Vote(Ok(resp), Some(grant))) = self.send(org, &Rpc::Vote(req)).await {
                if resp.vote_granted {
                    return (term, vec![Grant::sign(&self.genesis, "org3", &self.key, term, 3), grant]);
                }
            }
            assert!(Instant::now() < deadline, "{org} never granted the rogue its vote");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
