//! Publishing what is derived from another org's data, on three real
//! nodes: the policy of what it came from decides, in both access modes.

mod common;

use std::time::Duration;

use common::runs::*;
use common::*;
use serde_json::{json, Value};

fn counting(lease: &str) -> String {
    format!(
        "cmd_mode: shell\njobs:\n- command: wc -l < d/dir/data.csv > $OUTPUT_DIR/count.txt\n  \
         volumes: [{{id: {lease}, name: d, path: /home/jovyan/d}}]\n"
    )
}

/// org2 runs `counting` on its lease and waits for the run to succeed,
/// at the owner and back if the dataset is compute-only.
async fn counted(net: &TestNet, lease: &str) -> String {
    let yaml = counting(lease);
    let (code, r) = net.call_raw(1, "POST", "/v1/runs", yaml.into_bytes(), "application/yaml").await;
    assert_eq!(code, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(ended_on(net, 1, &id, 60).await["status"], "succeeded");
    id
}

async fn publish(net: &TestNet, run: &str, id: &str) -> (u16, Value) {
    let body = json!({"id": id, "title": "counts", "policy": {"allowed_orgs": ["org3"], "max_lease_ms": 600_000}, "private_metadata": {}});
    net.call(1, "POST", &format!("/v1/runs/{run}/publish"), None, Some(body)).await
}

async fn dataset_everywhere(net: &TestNet, id: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    for node in 0..3 {
        for _ in 0..100 {
            let (code, ds) = net.get(node, &format!("/v1/datasets/{id}")).await;
            if code == 200 {
                seen.push(ds);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(seen.len(), 3, "{id} is not on every node");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_deny_dataset_yields_is_never_published_in_either_mode() {
    let net = TestNet::start(3).await;
    let lease = leased_dataset_with(&net, "secret", 600_000, json!({"derived": "deny"})).await;
    let run = counted(&net, lease["id"].as_str().unwrap()).await;
    let (code, p) = publish(&net, &run, "leak").await;
    assert!((400..500).contains(&code), "{code} {p}");
    assert!(p["detail"].as_str().unwrap().contains("does not allow publishing what is derived"), "{p}");

    let policy = json!({"derived": "deny", "access": "compute", "release": {"approval": false}});
    let lease = leased_dataset_with(&net, "vault", 600_000, policy).await;
    let run = counted(&net, lease["id"].as_str().unwrap()).await;
    let (code, p) = publish(&net, &run, "leak2").await;
    assert!((400..500).contains(&code), "{code} {p}");
    assert!(p["detail"].as_str().unwrap().contains("\"vault\"'s owner \"org1\" does not allow"), "{p}");
    for (node, id) in [(0, "leak"), (1, "leak"), (0, "leak2"), (1, "leak2")] {
        assert_eq!(net.get(node, &format!("/v1/datasets/{id}")).await.0, 404);
    }
}

/// Polls node `i`'s pending publications until `done` holds: the publisher's
/// node commits them, the others apply the block a moment later.
async fn pending_on(net: &TestNet, i: usize, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..300 {
        let (_, pending) = net.get(i, "/v1/publications").await;
        if done(&pending) {
            return pending;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node {i}'s pending publications: {}", net.get(i, "/v1/publications").await.1);
}

fn lists(id: &'static str) -> impl Fn(&Value) -> bool {
    move |p| p.as_array().is_some_and(|a| a.iter().any(|x| x["id"] == id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_approval_publication_waits_for_the_owner() {
    let net = TestNet::start(3).await;
    let policy = json!({"derived": "owner_approval", "access": "compute", "release": {"approval": false}});
    let lease = leased_dataset_with(&net, "asked", 600_000, policy).await;
    let run = counted(&net, lease["id"].as_str().unwrap()).await;
    let (code, p) = publish(&net, &run, "counts").await;
    assert_eq!(code, 202, "{p}");
    assert_eq!(p["resource"]["awaiting"], json!(["org1"]), "{p}");
    // It waits: on no node's ledger, and listed for the owner to decide.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for node in 0..3 {
        assert_eq!(net.get(node, "/v1/datasets/counts").await.0, 404, "node {node} has it before the approval");
    }
    let pending = pending_on(&net, 0, lists("counts")).await;
    assert_eq!((pending[0]["id"].as_str(), pending[0]["run_id"].as_str()), (Some("counts"), Some(run.as_str())));
    // No one else's word moves it: not the publisher's, not a third org's.
    // (Each is asked once its node has the publication.)
    let (_, h) = net.get(0, "/v1/history/publication/counts").await;
    for node in [1, 2] {
        for _ in 0..300 {
            if net.get(node, "/v1/history/publication/counts").await.1 == h {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (code, p) = net.call(node, "POST", "/v1/publications/counts/approve", None, Some(json!({}))).await;
        assert_eq!(code, 403, "node {node}: {p}");
    }
    let (code, a) =
        net.call(0, "POST", "/v1/publications/counts/approve", None, Some(json!({"reason": "aggregate"}))).await;
    assert_eq!(code, 200, "{a}");
    for ds in dataset_everywhere(&net, "counts").await {
        assert_eq!((ds["owner"].as_str(), ds["derived_from_run"].as_str()), (Some("org2"), Some(run.as_str())), "{ds}");
    }
    assert_eq!(net.get(0, "/v1/publications").await.1, json!([]));

    // A refusal drops it, with its reason on the ledger.
    let run = counted(&net, lease["id"].as_str().unwrap()).await;
    assert_eq!(publish(&net, &run, "counts2").await.0, 202);
    pending_on(&net, 0, lists("counts2")).await;
    let (code, p) = net.call(0, "POST", "/v1/publications/counts2/deny", None, Some(json!({"reason": " "}))).await;
    assert_eq!((code, p["field"].as_str()), (422, Some("reason")), "a refusal says why: {p}");
    let why = json!({"reason": "too few rows"});
    assert_eq!(net.call(0, "POST", "/v1/publications/counts2/deny", None, Some(why)).await.0, 200);
    let (_, h) = net.get(0, "/v1/history/publication/counts2").await;
    assert!(h.to_string().contains("too few rows"), "{h}");
    pending_on(&net, 1, |p| p == &json!([])).await;
    assert_eq!(net.get(1, "/v1/datasets/counts2").await.0, 404);
    // Refused, the run may be offered again.
    let (code, p) = publish(&net, &run, "counts3").await;
    assert_eq!((code, &p["resource"]["awaiting"]), (202, &json!(["org1"])), "{p}");
}
