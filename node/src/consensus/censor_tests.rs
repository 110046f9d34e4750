//! A leader that censors, against three real in-process nodes (RocksDB,
//! openraft, libp2p on loopback): the leader is patched, as a dishonest org
//! may patch its own node, to acknowledge an owner's forwarded txs and drop
//! them, while it leads and heartbeats as before. The owner's revocation of
//! the leader's own lease must commit all the same, under another leader,
//! and the owner's data plane must then refuse the leader's org.

use std::time::{Duration, Instant};

use leasehold_chaincode::{LeaseStatus, Payload};

use super::mempool::Pending;
use super::Consensus;
use crate::NodeHandle;

#[path = "../../../tests/common/ports.rs"]
mod ports;

/// What the patched leader keeps of `admitted`: all but the censored org's.
pub(crate) fn censored(inner: &Consensus, admitted: Vec<Pending>) -> Vec<Pending> {
    let victim = inner.censors.lock().expect("censors lock").clone();
    let Some(victim) = victim else { return admitted };
    let (dropped, kept): (Vec<Pending>, Vec<Pending>) = admitted.into_iter().partition(|p| p.tx.body.org == victim);
    if !dropped.is_empty() {
        tracing::info!(txs = dropped.len(), "test rogue: acknowledging and dropping {victim}'s txs");
    }
    kept
}

async fn three_nodes(dir: &std::path::Path, bound_ms: u64) -> Vec<NodeHandle> {
    let held = ports::reserve(6);
    let ports: Vec<u16> = held.iter().map(|p| p.number).collect();
    std::mem::forget(held);
    let opts = crate::init::InitOptions {
        orgs: 3,
        network_id: "censor-test".into(),
        host: "127.0.0.1".into(),
        p2p_ports: ports[..3].to_vec(),
        api_ports: ports[3..].to_vec(),
        now_ms: crate::clock::now_ms(),
    };
    crate::init::init(dir, &opts).unwrap();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let mut cfg = crate::config::NodeConfig::load(&dir.join(format!("org{i}/node.toml"))).unwrap();
        cfg.raft.censorship_bound_ms = bound_ms;
        let (node, tasks) = crate::start(cfg).await.unwrap();
        std::mem::forget(tasks); // the runtime ends with the test
        nodes.push(node);
    }
    nodes
}

/// The org all three nodes agree leads, once they do.
async fn agreed_leader(nodes: &[NodeHandle], within: Duration) -> String {
    let start = Instant::now();
    loop {
        let leaders: Vec<Option<String>> = nodes.iter().map(NodeHandle::leader_org).collect();
        if let Some(l) = leaders[0].clone().filter(|_| leaders.iter().all(|x| *x == leaders[0])) {
            return l;
        }
        assert!(start.elapsed() < within, "no agreed leader within {within:?}: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_drops_the_owners_revocation_is_replaced_and_the_revocation_commits() {
    let dir = tempfile::tempdir().unwrap();
    let bound = Duration::from_millis(1_000);
    let nodes = three_nodes(dir.path(), bound.as_millis() as u64).await;
    let leader = agreed_leader(&nodes, Duration::from_secs(30)).await;
    let ix = |org: &str| nodes.iter().position(|n| n.org() == org).unwrap();
    let rogue = &nodes[ix(&leader)];
    let owner = &nodes[(ix(&leader) + 1) % 3];

    // The owner's dataset, leased by the leader's org at once.
    let mut spec = super::censor_tests::dataset_spec(rogue.org());
    spec.private_metadata = owner.seal_metadata("ds", 1, b"{}");
    let register = Payload::RegisterDataset { id: "ds".into(), spec, derived_from_run: None };
    assert!(owner.write(register).await.unwrap().height.is_some());
    until("the leader sees the dataset", Duration::from_secs(15), || rogue.dataset("ds").unwrap().is_some()).await;
    let lease = Payload::RequestLease {
        lease_id: "mine".into(),
        dataset_id: "ds".into(),
        duration_ms: 3_600_000,
        purpose: "keep it".into(),
    };
    assert!(rogue.write(lease).await.unwrap().height.is_some());
    let active = |n: &NodeHandle| n.lease_status_now("mine").unwrap().map(|(_, s)| s);
    until("the owner sees the lease", Duration::from_secs(15), || active(owner) == Some(LeaseStatus::Active)).await;

    // The leader now acknowledges the owner's txs and drops them.
    *rogue.inner.consensus.censors.lock().unwrap() = Some(owner.org().to_string());
    let started = Instant::now();
    let revoke = Payload::RevokeLease { lease_id: "mine".into(), reason: "audit".into() };
    owner.write(revoke).await.unwrap();
    until("the revocation commits", Duration::from_secs(30), || active(owner) == Some(LeaseStatus::Revoked)).await;
    let took = started.elapsed();
    println!(
        "FIGURE censorship: a revocation the leader dropped committed {} ms after it was submitted",
        took.as_millis()
    );
    let new_leader = agreed_leader(&nodes, Duration::from_secs(15)).await;
    assert_ne!(new_leader, leader, "the censoring leader still leads");
    // Ordered by another: no block of the censor's holds it.
    let height = owner.height();
    let holder = (1..=height).rev().map(|h| owner.block(h).unwrap().unwrap()).find(|b| {
        b.txs.iter().any(|t| matches!(&t.body.payload, Payload::RevokeLease { lease_id, .. } if lease_id == "mine"))
    });
    assert_ne!(holder.unwrap().header.proposer, leader);
    // And the owner's data plane refuses the censor's org.
    let rogue_peer = rogue.inner.consensus.net.local_peer_id();
    let asked = crate::wire::data::DataRequest::Manifest { lease_id: "mine".into() };
    let refused = owner.serve_data(rogue_peer, asked).unwrap_err();
    assert!(refused.to_string().contains("revoked"), "{refused}");
}

pub(crate) fn dataset_spec(lessee: &str) -> leasehold_chaincode::DatasetSpec {
    use leasehold_chaincode::*;
    DatasetSpec {
        title: "Censored".into(),
        description: String::new(),
        tags: Vec::new(),
        content_hash: [1; 32],
        size_bytes: 1,
        public_metadata: "{}".into(),
        private_metadata: SealedMetadata { nonce: [0; 12], ciphertext: Vec::new() },
        policy: AccessPolicy {
            allowed_orgs: vec![lessee.into()],
            max_lease_ms: 3_600_000,
            approval: Approval::Automatic,
            exclusive: false,
            require_tests: false,
            derived: DerivedPolicy::Allow,
            access: AccessMode::Files,
            release: ReleasePolicy::default(),
        },
    }
}
