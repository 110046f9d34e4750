//! An org rotates its signing and p2p keys with a change a majority of the
//! orgs approve; from then on its old key signs nothing that counts.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::load::stop_and_verify_all;
use common::*;
use serde_json::{json, Value};

fn leasehold(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().expect("run leasehold");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "leasehold {args:?} failed: {said}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_org_rotates_its_keys_and_its_old_key_is_refused() {
    let mut net = TestNet::start(3).await;
    let tx = net.sign(0, auto_dataset("shared"));
    let (_, r) = net.submit(0, &[tx], 5_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");

    // org2 makes its next keys at home and signs its card with them.
    let dir = net.nodes[1].dir.clone();
    let (config, card) = (dir.join("node.toml"), dir.join("card.json"));
    let request = leasehold(&["org", "rotate-keys", "--config", path_str(&config), "--card", path_str(&card)]);
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
    leasehold(&[&["org", "propose"][..], &args, &[path_str(&request_file)]].concat());
    let tx = net.sign(1, lease_request("before", "shared"));
    let (_, r) = net.submit(0, &[tx], 5_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "one org's proposal rotated org2's key: {r:?}");
    let start = Instant::now();
    while net.get(2, "/v1/orgs").await.1["pending"].as_array().is_none_or(|p| p.is_empty()) {
        assert!(start.elapsed() < Duration::from_secs(10), "the proposal did not reach org3");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, v) = net.call(2, "POST", "/v1/orgs/changes/rotate-org2/approve", None, None).await;
    assert_eq!(code, 200, "{v}");
    let start = Instant::now();
    loop {
        let (_, orgs) = net.get(0, "/v1/orgs").await;
        if orgs["members"][1]["peer_id"] == request["card"]["peer_id"] {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "org1 did not take org2's new card: {orgs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // org2's node stops by itself: its old key speaks for nobody now.
    let start = Instant::now();
    let exit = loop {
        if let Some(status) = net.nodes[1].child.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "org2's node kept running on its old keys");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    net.nodes[1].child = None;
    assert!(!exit.success());
    assert!(net.log(1).contains("start the node again to take up the new ones"), "{}", net.log(1));

    // A tx signed with the old key is refused, by every node.
    let stale = net.sign(1, lease_request("old-key", "shared"));
    for i in [0, 2] {
        let (_, r) = net.submit(i, std::slice::from_ref(&stale), 5_000).await.unwrap();
        assert_eq!(r[0]["status"], "rejected", "the old key still signs for org2: {r:?}");
    }

    // Started again, it takes up the new keys and signs with them.
    net.spawn(1);
    let start = Instant::now();
    while net.status(1).await.is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "org2's node did not start again:\n{}", net.log(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cfg = leasehold_node::config::NodeConfig::load(&config).unwrap();
    let new_key = cfg.signing_key().unwrap();
    assert_ne!(new_key.to_bytes(), old_key.to_bytes());
    assert_eq!(hex::encode(new_key.verifying_key().to_bytes()), request["card"]["signing_key"].as_str().unwrap());
    assert!(!dir.join("keys/signing.key.next").exists(), "the next key was not taken up");
    net.nodes[1].key = new_key;
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
    stop_and_verify_all(&mut net);
}
