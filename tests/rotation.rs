//! An org rotates its signing and p2p keys with a change a majority of the
//! orgs and the org itself approve; from then on its old key signs nothing
//! that counts. An org whose node was down meanwhile takes up its keys and
//! catches up under them.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::load::stop_and_verify_all;
use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_org_rotates_its_keys_and_its_old_key_is_refused() {
    let mut net = TestNet::start(3).await;
    let tx = net.sign(0, auto_dataset("shared"));
    let (_, r) = net.submit(0, &[tx], 5_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");

    // org2 makes its next keys at home and signs its card with them.
    let dir = net.nodes[1].dir.clone();
    let (config, card) = (dir.join("node.toml"), dir.join("card.json"));
    let request = leasehold_ok(&["org", "rotate-keys", "--config", path_str(&config), "--card", path_str(&card)]);
    for next in ["signing.key.next", "p2p.key.next"] {
        let mode = std::fs::metadata(dir.join("keys").join(next)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{next}");
    }
    let request_file = dir.join("rotate.json");
    std::fs::write(&request_file, &request).unwrap();
    let request: Value = serde_json::from_str(&request).unwrap();
    let old_key = net.nodes[1].key.clone();
    let (_, orgs) = net.get(0, "/v1/orgs").await;
    let old_peer = orgs["members"][1]["peer_id"].clone();
    assert_ne!(request["card"]["peer_id"], old_peer, "the p2p key did not change");

    // org1 proposes it; one org alone changes nothing; org3's approval does.
    let token = path_str(&net.nodes[0].dir.join("admin.token")).to_string();
    let url = net.nodes[0].url.clone();
    let args = ["--url", &url, "--token-file", &token, "--change-id", "rotate-org2", "--rotate"];
    leasehold_ok(&[&["org", "propose"][..], &args, &[path_str(&request_file)]].concat());
    let tx = net.sign(1, lease_request("before", "shared"));
    let (_, r) = net.submit(0, &[tx], 5_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "one org's proposal rotated org2's key: {r:?}");
    let start = Instant::now();
    while net.get(2, "/v1/orgs").await.1["pending"].as_array().is_none_or(|p| p.is_empty()) {
        assert!(start.elapsed() < Duration::from_secs(10), "the proposal did not reach org3");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, v) = net.call(2, "POST", "/v1/orgs/changes/rotate-org2/approve", None, None).await;
    assert!(code == 200 || code == 202, "{code} {v}"); // 202: not committed within the wait yet
                                                       // A majority without org2's own word does not take over its name.
    let orgs = wait_orgs(&net, 0, |o| o["pending"][0]["approvals"] == json!(["org1", "org3"])).await;
    assert_eq!(orgs["members"][1]["peer_id"], old_peer, "org1 and org3 rotated org2's keys: {orgs}");
    wait_orgs(&net, 1, |o| o["pending"][0]["approvals"] == json!(["org1", "org3"])).await;
    let (code, v) = net.call(1, "POST", "/v1/orgs/changes/rotate-org2/approve", None, None).await;
    assert!(code == 200 || code == 202, "{code} {v}"); // 202: not committed within the wait yet
    wait_orgs(&net, 0, |o| o["members"][1]["peer_id"] == request["card"]["peer_id"]).await;

    // org2's node stops by itself if it applied the change (its old key
    // speaks for nobody now), and takes up its keys when started again. If
    // the others cut off its old peer id before it heard of the commit, its
    // operator stops it and takes them up by hand (OPERATIONS section 8).
    let start = Instant::now();
    let exited = loop {
        if let Some(status) = net.nodes[1].child.as_mut().unwrap().try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(5) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    match exited {
        Some(status) => {
            net.nodes[1].child = None;
            assert!(!status.success());
            assert!(net.log(1).contains("start the node again to take up the new ones"), "{}", net.log(1));
        }
        None => {
            net.stop(1);
            leasehold_ok(&["org", "take-up-keys", "--config", path_str(&config)]);
        }
    }

    // A tx signed with the old key is refused, by every node (once it has the rotation).
    wait_orgs(&net, 2, |o| o["members"][1]["peer_id"] == request["card"]["peer_id"]).await;
    let stale = net.sign(1, lease_request("old-key", "shared"));
    for i in [0, 2] {
        let (_, r) = net.submit(i, std::slice::from_ref(&stale), 5_000).await.unwrap();
        assert_eq!(r[0]["status"], "rejected", "the old key still signs for org2: {r:?}");
    }

    // Started again, it takes up the new keys and signs with them.
    net.spawn(1);
    wait_up(&net, 1).await;
    let cfg = leasehold_node::config::NodeConfig::load(&config).unwrap();
    let new_key = cfg.signing_key().unwrap();
    assert_ne!(new_key.to_bytes(), old_key.to_bytes());
    assert_eq!(hex::encode(new_key.verifying_key().to_bytes()), request["card"]["signing_key"].as_str().unwrap());
    assert!(!dir.join("keys/signing.key.next").exists(), "the next key was not taken up");
    net.nodes[1].key = new_key;
    // Its ledger catches up to the rotation (it may have missed it).
    wait_orgs(&net, 1, |o| o["members"][1]["peer_id"] == request["card"]["peer_id"]).await;
    let tx = net.sign(1, lease_request("new-key", "shared"));
    let (_, r) = net.submit(1, &[tx], 15_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "the new key does not sign for org2: {r:?}");
    let height = r[0]["receipt"]["height"].as_u64().unwrap();
    // org2's node is connected again under its new peer id, and certifies.
    let start = Instant::now();
    loop {
        let peers = net.status(0).await.map(|s| s["peers"].clone());
        let (_, block) = net.get(0, &format!("/v1/blocks/{height}")).await;
        let certs = block["certificate"].as_array().cloned().unwrap_or_default();
        let signed_by_org2 = certs.iter().any(|c| c["org"] == "org2");
        if peers == Some(json!(["org2", "org3"])) && signed_by_org2 && block["certified"] == true {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "org2 did not reconnect and certify: {peers:?} {block}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    net.wait_converged(height, Duration::from_secs(30)).await;

    // org3 proposes its own rotation, and its node goes down before org1's
    // approval brings it in. It takes up its keys by hand and catches up.
    let dir3 = net.nodes[2].dir.clone();
    let (config3, card3) = (dir3.join("node.toml"), dir3.join("card.json"));
    let request3 = leasehold_ok(&["org", "rotate-keys", "--config", path_str(&config3), "--card", path_str(&card3)]);
    let request3: Value = serde_json::from_str(&request3).unwrap();
    let body = json!({"change_id": "rotate-org3", "rotate": request3});
    let (code, v) = net.call(2, "POST", "/v1/orgs/changes", None, Some(body)).await;
    assert!(code == 200 || code == 202, "{code} {v}"); // 202: not committed within the wait yet
    wait_orgs(&net, 0, |o| o["pending"][0]["change_id"] == "rotate-org3").await;
    net.stop(2);
    let (code, v) = net.call(0, "POST", "/v1/orgs/changes/rotate-org3/approve", None, None).await;
    assert!(code == 200 || code == 202, "{code} {v}"); // 202: not committed within the wait yet
    wait_orgs(&net, 1, |o| o["members"][2]["peer_id"] == request3["card"]["peer_id"]).await;
    leasehold_ok(&["org", "take-up-keys", "--config", path_str(&config3)]);
    net.spawn(2);
    net.nodes[2].key = leasehold_node::config::NodeConfig::load(&config3).unwrap().signing_key().unwrap();
    // Its ledger does not name these keys yet.
    wait_up(&net, 2).await;
    wait_orgs(&net, 2, |o| o["members"][2]["peer_id"] == request3["card"]["peer_id"]).await;
    let tx = net.sign(2, lease_request("org3-new-key", "shared"));
    let (_, r) = net.submit(2, &[tx], 15_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "org3's new key does not sign for it: {r:?}");
    let height = r[0]["receipt"]["height"].as_u64().unwrap();
    net.wait_converged(height, Duration::from_secs(30)).await;
    stop_and_verify_all(&mut net);
}

/// `/v1/orgs` on node `i` once `done` holds of it, within 10 s.
async fn wait_orgs(net: &TestNet, i: usize, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (_, orgs) = net.get(i, "/v1/orgs").await;
        if done(&orgs) {
            return orgs;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{orgs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until node `i` answers, within 30 s.
async fn wait_up(net: &TestNet, i: usize) {
    let start = Instant::now();
    while net.status(i).await.is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "node {i} did not start:\n{}", net.log(i));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
