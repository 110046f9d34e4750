//! Crash safety of the lessee's cache: kill -9 of the lessee's node in the
//! middle of a large transfer. After the restart its cache is whole and
//! verified, or absent; never half there and mountable.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// 192 MiB, 48 chunks: a transfer long enough to be caught in the middle.
const BIG_BYTES: u64 = 192 << 20;

fn big() -> Vec<u8> {
    (0..BIG_BYTES).map(|i| (i % 251) as u8).collect()
}

async fn run_until_ended(net: &TestNet, yaml: &str) -> Value {
    let (code, run) = net.call_raw(1, "POST", "/v1/runs", yaml.as_bytes().to_vec(), "application/yaml").await;
    assert_eq!(code, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, r) = net.call(1, "GET", &format!("/v1/runs/{id}"), None, None).await;
        if !["queued", "running"].contains(&r["status"].as_str().unwrap_or("")) {
            return r;
        }
        assert!(Instant::now() < deadline, "run {id} did not end within 60 s: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lessee_killed_mid_transfer_restarts_with_no_half_cache() {
    let mut net = TestNet::start(3).await;
    let data = big();
    let (code, up) =
        net.call_raw(0, "PUT", "/v1/datasets/big/files/big.bin", data.clone(), "application/octet-stream").await;
    assert_eq!(code, 201, "{up}");
    let policy = json!({"allowed_orgs": ["org2"], "max_lease_ms": 600_000});
    let body = json!({"id": "big", "title": "big", "policy": policy, "private_metadata": {}});
    let (code, reg) = net.call(0, "POST", "/v1/datasets", None, Some(body)).await;
    assert_eq!(code, 201, "{reg}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while net.call(1, "GET", "/v1/datasets/big", None, None).await.0 != 200 {
        assert!(Instant::now() < deadline, "the dataset never reached org2's node");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, r) = net.call(1, "POST", "/v1/datasets/big/leases", None, Some(json!({"duration_ms": 600_000}))).await;
    assert_eq!(code, 201, "{r}");
    let lease = r["resource"]["id"].as_str().unwrap().to_string();
    net.wait_lease(0, &lease, "requested").await;
    assert_eq!(net.call(0, "POST", &format!("/v1/leases/{lease}/grant"), None, Some(json!({}))).await.0, 200);
    net.wait_lease(1, &lease, "active").await;

    // A run makes org2's node fetch the file; it is killed mid-transfer.
    let yaml = format!("cmd_mode: shell\njobs:\n- command: sha256sum /data/d/big.bin\n  volumes: [{{id: {lease}, name: d, path: /data/d}}]\n");
    let (code, run) = net.call_raw(1, "POST", "/v1/runs", yaml.clone().into_bytes(), "application/yaml").await;
    assert_eq!(code, 201, "{run}");
    let cache = net.data_dir(1).join("cache").join(&lease);
    let partial = cache.join("partial/big.bin");
    let deadline = Instant::now() + Duration::from_secs(30);
    let killed_at = loop {
        let got = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if got > 0 && got < BIG_BYTES / 2 {
            break got;
        }
        assert!(!cache.join("files").exists(), "the transfer ended before the test could interrupt it");
        assert!(Instant::now() < deadline, "the transfer never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    net.kill9(1);
    assert!(!cache.join("files").exists(), "a half transfer was promoted to the verified cache");

    // After the restart: no cache from before, the interrupted run failed,
    // and a new run fetches the file again, whole.
    net.spawn(1);
    net.wait_for_leader(Duration::from_secs(30)).await;
    assert!(!cache.exists(), "the cache left by the crash is still there");
    // The interrupted run is concluded as failed once its end is on the ledger.
    let old_run = format!("/v1/runs/{}", run["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, old) = net.call(1, "GET", &old_run, None, None).await;
        if old["status"] == "failed" {
            assert!(old["reason"].as_str().unwrap_or("").contains("restarted"), "{old}");
            break;
        }
        assert!(Instant::now() < deadline, "the interrupted run was not concluded within 30 s: {old}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = run_until_ended(&net, &yaml).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let cached = std::fs::read(cache.join("files/big.bin")).unwrap();
    assert!(cached == data, "the cached file is the owner's file, whole");
    println!("FIGURE crash-mid-transfer killed_at_bytes={killed_at} of={BIG_BYTES} half_caches_left=0");
}
