//! Workflow runs on a real network: a leased dataset to run on, and a run's
//! record and log as a node's API shows them.

use std::time::Duration;

use serde_json::{json, Value};

use super::TestNet;

pub const DATA: &str = "a,b\n1,2\n3,4\n";

/// org1 (node 0) registers `id` with one file, `dir/data.csv`, under
/// `policy` (extra fields merged in); org2 (node 1) leases it for
/// `lease_ms`. Returns the active lease as org2's node sees it.
pub async fn leased_dataset_with(net: &TestNet, id: &str, lease_ms: u64, policy: Value) -> Value {
    leased_dataset_of(net, id, lease_ms, policy, DATA.as_bytes()).await
}

/// As [`leased_dataset_with`], with `data` as the file's bytes.
pub async fn leased_dataset_of(net: &TestNet, id: &str, lease_ms: u64, policy: Value, data: &[u8]) -> Value {
    let (code, up) =
        net.call_raw(0, "PUT", &format!("/v1/datasets/{id}/files/dir/data.csv"), data.into(), "text/csv").await;
    assert_eq!(code, 201, "{up}");
    let mut p = json!({"allowed_orgs": ["org2"], "max_lease_ms": 600_000});
    p.as_object_mut().unwrap().extend(policy.as_object().cloned().unwrap_or_default());
    let body = json!({"id": id, "title": "t", "policy": p, "private_metadata": {"k": "v"}});
    let (code, reg) = net.call(0, "POST", "/v1/datasets", None, Some(body)).await;
    assert_eq!(code, 201, "{reg}");
    // Every node: a test may go on to ask any of them about it.
    for i in 1..net.nodes.len() {
        net.wait_found(i, &format!("/v1/datasets/{id}")).await;
    }
    let req = json!({"duration_ms": lease_ms, "purpose": "test"});
    let (code, r) = net.call(1, "POST", &format!("/v1/datasets/{id}/leases"), None, Some(req)).await;
    assert_eq!(code, 201, "{r}");
    let lease = r["resource"]["id"].as_str().unwrap().to_string();
    net.wait_lease(0, &lease, "requested").await;
    let (code, g) = net.call(0, "POST", &format!("/v1/leases/{lease}/grant"), None, Some(json!({}))).await;
    assert_eq!(code, 200, "{g}");
    net.wait_lease(1, &lease, "active").await
}

/// org3 (node 2) asks for a lease of 10 minutes on `id`, whose policy
/// allows it, and org1 (node 0) grants it; returns its id once both nodes
/// hold it active.
pub async fn lease_to_org3(net: &TestNet, id: &str) -> String {
    let body = json!({"duration_ms": 600_000});
    let (code, r) = net.call(2, "POST", &format!("/v1/datasets/{id}/leases"), None, Some(body)).await;
    assert_eq!(code, 201, "{r}");
    let lease = r["resource"]["id"].as_str().unwrap().to_string();
    net.wait_lease(0, &lease, "requested").await;
    assert_eq!(net.call(0, "POST", &format!("/v1/leases/{lease}/grant"), None, Some(json!({}))).await.0, 200);
    for node in [0, 2] {
        net.wait_lease(node, &lease, "active").await;
    }
    lease
}

pub async fn leased_dataset(net: &TestNet, id: &str, lease_ms: u64) -> Value {
    leased_dataset_with(net, id, lease_ms, json!({})).await
}

pub async fn run_on(net: &TestNet, node: usize, id: &str) -> Value {
    net.call(node, "GET", &format!("/v1/runs/{id}"), None, None).await.1
}

/// The run's whole log so far, read as server-sent events.
pub async fn log_on(net: &TestNet, node: usize, id: &str) -> String {
    let url = format!("{}/v1/runs/{id}/logs", net.nodes[node].url);
    let mut resp = net.http.get(url).bearer_auth(&net.nodes[node].token).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the log of run {id} on node {node}");
    let mut text = String::new();
    // The stream stays open while the run lives; read what is there now.
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_millis(300), resp.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

/// Polls until the run leaves `queued` and `running`, for up to `secs`.
pub async fn ended_on(net: &TestNet, node: usize, id: &str, secs: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        let run = run_on(net, node, id).await;
        if run["status"] != "running" && run["status"] != "queued" {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {id} did not end within {secs} s: {}", run_on(net, node, id).await);
}

/// Polls `node`'s record of run `id` until `done` holds.
pub async fn until(net: &TestNet, node: usize, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let r = run_on(net, node, id).await;
        if done(&r) {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "run {id} on node {node}: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
