//! Raft voters change only through approvals a majority of the orgs signed
//! on the ledger, and then really change in raft.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn membership(net: &TestNet, i: usize) -> Value {
    let (code, m) = net.call(i, "GET", "/v1/membership", None, None).await;
    assert_eq!(code, 200, "{m}");
    m
}

async fn wait_raft_voters(net: &TestNet, i: usize, want: Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = membership(net, i).await;
        if m["raft_voters"] == want {
            return;
        }
        assert!(Instant::now() < deadline, "node {i}'s raft voters never became {want}: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_change_when_a_majority_approves_and_not_before() {
    let mut net = TestNet::start(3).await;
    net.wait_for_leader(Duration::from_secs(10)).await;
    let all = json!(["org1", "org2", "org3"]);
    let two = json!(["org1", "org2"]);

    // A bad set is refused with the field and the reason.
    let (code, p) = net.call(0, "POST", "/v1/membership", None, Some(json!({"voters": ["org1"]}))).await;
    assert_eq!(code, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("a voter set must hold a majority"), "{p}");

    // org1 alone approves dropping org3: committed, and nothing changes.
    let (code, w) = net.call(0, "POST", "/v1/membership", None, Some(json!({"voters": ["org2", "org1"]}))).await;
    assert_eq!(code, 200, "{w}");
    let height = w["height"].as_u64().unwrap();
    net.wait_converged(height, Duration::from_secs(10)).await;
    for i in 0..3 {
        let m = membership(&net, i).await;
        assert_eq!(m["voters"], all, "node {i}: {m}");
        assert_eq!(m["raft_voters"], all, "node {i}: {m}");
        assert_eq!(m["approvals"], json!([["org1", ["org1", "org2"]]]), "node {i}: {m}");
    }

    // org2 approves the same set: now a majority, and raft follows.
    let (code, w) = net.call(1, "POST", "/v1/membership", None, Some(json!({"voters": ["org1", "org2"]}))).await;
    assert_eq!(code, 200, "{w}");
    assert_eq!(w["resource"]["voters"], two, "{w}");
    wait_raft_voters(&net, 0, two.clone()).await;
    wait_raft_voters(&net, 1, two.clone()).await;

    // org3 no longer votes: with org2 down, org1 and org3 are not a quorum.
    net.stop(1);
    let tx = net.sign(0, auto_dataset("while-org2-is-down"));
    let (_, r) = net.submit(0, &[tx], 3_000).await.unwrap();
    assert!(!is_committed_valid(&r[0]), "committed without org2, so org3 still votes: {r:?}");
    // org2 back: the two voters elect a leader and commit again. (org3,
    // out of the cluster, hears from no leader, so it is not asked.)
    net.spawn(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (a, b) = (net.status(0).await, net.status(1).await);
        let leader = |s: &Option<Value>| s.as_ref().and_then(|s| s["leader"].as_str().map(String::from));
        // org3, removed, may still be named until the two hold an election.
        let voter = leader(&a).is_some_and(|l| l == "org1" || l == "org2");
        if voter && leader(&a) == leader(&b) {
            break;
        }
        assert!(Instant::now() < deadline, "org1 and org2 never agreed on a leader: {a:?} {b:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tx = net.sign(0, auto_dataset("with-org2-back"));
    let (_, r) = net.submit(0, &[tx], 15_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}\norg1:\n{}\norg2:\n{}", net.log(0), net.log(1));
}
