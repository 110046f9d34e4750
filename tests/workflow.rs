//! Workflows against three real nodes: the lessee's node fetches the leased
//! files from the owner's node, verifies them against the ledger, runs the
//! jobs in the sandbox, and stops them within a second of the lease ending.

mod common;

use std::time::Duration;

use common::runs::*;
use common::*;
use serde_json::{json, Value};

/// A workflow whose first job reads the volume, says so, then sleeps.
fn sleeper(volume: &str, marker: &str) -> String {
    format!(
        r#"
name: sleeper
cmd_mode: shell
jobs:
  - command: "cat /data/d/dir/data.csv; echo started; sleep {marker}"
    volumes: [{{id: {volume}, name: d, path: /data/d}}]
  - echo never
dags: ["1 >> 2"]
"#
    )
}

async fn submit(net: &TestNet, yaml: &str) -> (u16, Value) {
    net.call_raw(1, "POST", "/v1/runs", yaml.as_bytes().to_vec(), "application/yaml").await
}

async fn run_of(net: &TestNet, id: &str) -> Value {
    run_on(net, 1, id).await
}

/// Waits until job 1 of the run is running and has printed "started".
async fn wait_started(net: &TestNet, id: &str) {
    for _ in 0..200 {
        let run = run_of(net, id).await;
        assert!(!["failed", "succeeded"].contains(&run["status"].as_str().unwrap()), "{run}");
        if run["jobs"][0]["status"] == "running" && log_text(net, id).await.contains("started") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} never started: {}", run_of(net, id).await);
}

async fn log_text(net: &TestNet, id: &str) -> String {
    log_on(net, 1, id).await
}

fn processes_with(marker: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            // The sleep itself, not the bwrap and shell above it.
            if cmd == format!("sleep\0{marker}\0").as_bytes() {
                n += 1;
            }
        }
    }
    n
}

async fn wait_ended(net: &TestNet, id: &str) -> Value {
    ended_on(net, 1, id, 10).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_expiry_kills_the_running_job_within_a_second_and_deletes_the_cache() {
    let net = TestNet::start(3).await;
    let lease = leased_dataset(&net, "expiring", 5_000).await;
    let lease_id = lease["id"].as_str().unwrap();
    let marker = format!("{}.{}", 60, std::process::id());
    let (code, run) = submit(&net, &sleeper("expiring", &marker)).await;
    assert_eq!(code, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    assert!(run["sandbox"].as_str().unwrap().starts_with("bubblewrap"), "{run}");
    wait_started(&net, &id).await;

    // The job read the owner's file, fetched over the network and verified.
    let log = log_text(&net, &id).await;
    assert!(log.contains("verified against the ledger"), "{log}");
    assert!(log.contains("3,4"), "the job printed the leased file: {log}");
    let cache = net.data_dir(1).join("cache").join(lease_id).join("files/dir/data.csv");
    assert_eq!(std::fs::read_to_string(&cache).unwrap(), DATA);
    assert_eq!(processes_with(&marker), 1, "the job is running");

    let expires_ms = lease["expires_at_ms"].as_i64().unwrap();
    let run = wait_ended(&net, &id).await;
    // The node's own record says when the job was killed: within a second.
    let killed_ms = chrono::DateTime::parse_from_rfc3339(run["jobs"][0]["finished_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!((0..1_000).contains(&(killed_ms - expires_ms)), "killed {} ms after expiry", killed_ms - expires_ms);
    assert_eq!(run["status"], "expired", "{run}");
    assert!(run["reason"].as_str().unwrap().contains("expired at"), "{run}");
    assert_eq!(run["jobs"][0]["status"], "expired");
    assert_eq!(run["jobs"][1]["status"], "expired", "the queued job never ran");
    assert_eq!(processes_with(&marker), 0, "the sandboxed process is gone");
    // Waits on the lease's directory itself: its files go before it does.
    let lease_cache = net.data_dir(1).join("cache").join(lease_id);
    for _ in 0..100 {
        if !lease_cache.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!lease_cache.exists(), "the cached copy is deleted within 5 s of the run's end");

    // Start and end are on the ledger, on every node.
    for _ in 0..100 {
        let (code, h) = net.call(2, "GET", &format!("/v1/history/run/{id}"), None, None).await;
        if code == 200 && h.as_array().unwrap().len() == 2 {
            assert_eq!(h[1]["record"]["status"], "Expired", "{h}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, h) = net.call(2, "GET", &format!("/v1/history/run/{id}"), None, None).await;
    assert_eq!(h.as_array().map(Vec::len), Some(2), "{h}");

    // And no new run may use the lease.
    let (code, p) = submit(&net, &sleeper(lease_id, "1")).await;
    assert_eq!(code, 422, "{p}");
    assert_eq!(p["field"], "jobs[0].volumes[0].id");
    assert!(p["detail"].as_str().unwrap().contains("expired at"), "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_files_are_refused_and_a_revocation_stops_the_run() {
    let net = TestNet::start(3).await;
    let lease = leased_dataset(&net, "guarded", 120_000).await;
    let lease_id = lease["id"].as_str().unwrap();

    // The owner's copy changes on disk after registration: the lessee's node
    // refuses it, and no job runs on it.
    let stored =
        std::fs::read_dir(net.data_dir(0).join("datasets/guarded")).unwrap().flatten().find(|e| e.path().is_dir());
    let file = stored.unwrap().path().join("dir/data.csv");
    std::fs::write(&file, "a,b\n1,2\n3,5\n").unwrap();
    let (code, run) = submit(&net, &sleeper(lease_id, "1")).await;
    assert_eq!(code, 201, "{run}");
    let run = wait_ended(&net, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["reason"].as_str().unwrap().contains("does not match its hash"), "{run}");
    assert_eq!(run["jobs"][0]["started_at"], Value::Null, "{run}");
    assert!(!net.data_dir(1).join("cache").join(lease_id).join("files").exists());

    // A link in the owner's store to a host file with the very bytes the
    // ledger expects: no hash would catch it, but the owner never reads
    // through a link, so nothing of the host file is served.
    let outside = net.data_dir(0).join("outside.csv");
    std::fs::write(&outside, DATA).unwrap();
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&outside, &file).unwrap();
    let (_, run) = submit(&net, &sleeper(lease_id, "1")).await;
    let run = wait_ended(&net, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["reason"].as_str().unwrap().contains("a link, not a regular file"), "{run}");
    assert!(!net.data_dir(1).join("cache").join(lease_id).join("files").exists());
    std::fs::remove_file(&file).unwrap();

    // Restored, it is accepted; then the owner revokes the lease mid-run.
    std::fs::write(&file, DATA).unwrap();
    let marker = format!("{}.{}", 61, std::process::id());
    let (_, run) = submit(&net, &sleeper(lease_id, &marker)).await;
    let id = run["id"].as_str().unwrap().to_string();
    wait_started(&net, &id).await;
    let (code, r) =
        net.call(0, "POST", &format!("/v1/leases/{lease_id}/revoke"), None, Some(json!({"reason": "audit"}))).await;
    assert_eq!(code, 200, "{r}");
    let run = wait_ended(&net, &id).await;
    // The ledger says when the revocation took effect (its block's time); the
    // lessee's run record says when the job was killed: within a second.
    let (_, h) = net.call(1, "GET", &format!("/v1/history/lease/{lease_id}"), None, None).await;
    let revoked = h.as_array().unwrap().last().unwrap();
    assert_eq!(revoked["record"]["status"], "revoked", "{h}");
    let ms = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().timestamp_millis();
    let after_ms = ms(&run["jobs"][0]["finished_at"]) - ms(&revoked["at"]);
    assert!((0..1_000).contains(&after_ms), "killed {after_ms} ms after the revocation's block");
    assert_eq!(run["status"], "revoked", "{run}");
    assert!(run["reason"].as_str().unwrap().ends_with("audit"), "{run}");
    assert_eq!(processes_with(&marker), 0);
}
