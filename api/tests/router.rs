//! The API's checks that need other orgs (leases, policies, ownership):
//! `oneshot` requests, no HTTP socket, against three real in-process nodes
//! (RocksDB, raft over libp2p on loopback). What each role may do is in
//! `matrix.rs`; the checks one node can make alone are in `api_errors.rs`.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_a_clear_4xx_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let orgs = network(dir.path()).await;
    let (o1, o2, o3) = (&orgs[0], &orgs[1], &orgs[2]);
    assert_eq!(call(&o1.app, "POST", "/v1/datasets", Some(&o1.admin), Some(dataset_body("iris"))).await.0, 201);
    wait_dataset(o2, "iris", 1).await;
    wait_dataset(o3, "iris", 1).await;
    let (_, req) = call(
        &o2.app,
        "POST",
        "/v1/datasets/iris/leases",
        Some(&o2.member),
        Some(json!({"duration_ms": 30_000}).to_string()),
    )
    .await;
    let lease = req["resource"]["id"].as_str().unwrap().to_string();
    // Each case asks one node about the lease: each must have applied it.
    for o in [o1, o2, o3] {
        wait_lease(o, &lease, "requested").await;
    }
    let height = o1.node.height();
    let cases: Vec<Case> = vec![
        (o2, "POST", "/v1/datasets/nope/leases".into(), Some(&o2.member), Some(json!({"duration_ms": 5}).to_string()), 404, None, "does not exist"),
        (o2, "POST", "/v1/datasets/iris/leases".into(), Some(&o2.member), Some(json!({"duration_ms": 60_001}).to_string()), 422, Some("duration_ms"), "exceeds the maximum"),
        (o3, "POST", "/v1/datasets/iris/leases".into(), Some(&o3.member), Some(json!({"duration_ms": 5}).to_string()), 403, None, "not allowed by the policy"),
        (o2, "POST", "/v1/datasets/iris/leases".into(), Some(&o2.viewer), Some(json!({"duration_ms": 5}).to_string()), 403, None, "member role"),
        (o2, "PATCH", "/v1/datasets/iris".into(), Some(&o2.admin), Some(json!({"title": "mine"}).to_string()), 403, None, "only its owner"),
        (o2, "DELETE", "/v1/datasets/iris".into(), Some(&o2.admin), None, 403, None, "only its owner"),
        (o2, "POST", format!("/v1/leases/{lease}/grant"), Some(&o2.admin), None, 403, None, "only the owner"),
        (o1, "POST", format!("/v1/leases/{lease}/grant"), Some(&o1.admin), Some(json!({"duration_ms": 600_000}).to_string()), 422, Some("duration_ms"), "exceeds"),
        (o1, "POST", format!("/v1/leases/{lease}/deny"), Some(&o1.admin), Some(json!({"reason": ""}).to_string()), 422, Some("reason"), "1 to 1000"),
        (o1, "POST", format!("/v1/leases/{lease}/revoke"), Some(&o1.admin), Some(json!({"reason": "x"}).to_string()), 409, None, "needs it to be active"),
        (o3, "POST", format!("/v1/leases/{lease}/release"), Some(&o3.member), None, 403, None, "held by"),
        (o2, "GET", format!("/v1/leases/{lease}/metadata"), Some(&o2.member), None, 403, None, "not been granted"),
        (o3, "GET", format!("/v1/leases/{lease}/metadata"), Some(&o3.member), None, 403, None, "held by org2, not by org3"),
        // Workflows: every check names the job and field, and nothing runs.
        (o2, "POST", "/v1/runs".into(), Some(&o2.member), Some(run_yaml(&lease, "/data/../etc")), 422, Some("jobs[0].volumes[0].path"), "escapes with '..'"),
        (o2, "POST", "/v1/runs".into(), Some(&o2.member), Some(run_yaml(&lease, "data")), 422, Some("jobs[0].volumes[0].path"), "not an absolute path"),
        (o2, "POST", "/v1/runs".into(), Some(&o2.member), Some(run_yaml(&lease, "/usr/lib")), 422, Some("jobs[0].volumes[0].path"), "cover the sandbox"),
        (o2, "POST", "/v1/runs".into(), Some(&o2.member), Some(format!("jobs:\n- command: ls\n  volumes: [{{id: {lease}, name: a, path: /d}}, {{id: {lease}, name: b, path: /d/}}]")), 422, Some("jobs[0].volumes[1].path"), "two volumes"),
        (o2, "POST", "/v1/runs".into(), Some(&o2.member), Some(run_yaml(&lease, "/data")), 422, Some("jobs[0].volumes[0].id"), "not been granted"),
        (o3, "POST", "/v1/runs".into(), Some(&o3.member), Some(run_yaml(&lease, "/data")), 422, Some("jobs[0].volumes[0].id"), "held by org2, not by org3"),
        (o3, "POST", "/v1/runs".into(), Some(&o3.member), Some(run_yaml("iris", "/data")), 422, Some("jobs[0].volumes[0].id"), "org3 holds no active lease on dataset iris"),
        (o2, "POST", "/v1/runs".into(), Some(&o2.member), Some(run_yaml("nope", "/data")), 422, Some("jobs[0].volumes[0].id"), "no lease or dataset"),
        // What axum itself rejects is problem+json too (`call` checks the type).
        (o1, "POST", format!("/v1/leases/{lease}/grant"), Some(&o1.admin), Some("x".repeat(9 << 20)), 413, None, "length limit"),
        // File uploads: the owner's admin only, and only inside the dataset.
        (o2, "PUT", "/v1/datasets/iris/files/a".into(), Some(&o2.admin), Some("x".into()), 403, None, "only its owner"),
    ];
    check_cases(cases).await;
    // A valid write now: every block from the start of the cases up to the
    // one holding it holds nothing else, on every node.
    let (code, probe) = call(&o1.app, "POST", "/v1/datasets", Some(&o1.admin), Some(dataset_body("probe"))).await;
    assert_eq!(code, 201, "{probe}");
    for o in [o1, o2, o3] {
        wait_dataset(o, "probe", 1).await;
        assert_only_probe_since(o, height, &probe);
    }
    wait_lease(o1, &lease, "requested").await;
    for o in [o1, o2, o3] {
        assert_eq!(call(&o.app, "GET", "/v1/runs", Some(&o.viewer), None).await.1, json!([]), "no run was created");
        assert!(!o.node.config().data_dir.join("uploads/iris").exists(), "no file was staged");
        assert!(!o.node.config().data_dir.join("runs").read_dir().is_ok_and(|mut d| d.next().is_some()));
    }
}

fn run_yaml(volume: &str, path: &str) -> String {
    format!("jobs:\n- command: ls\n  volumes: [{{id: {volume}, name: v, path: '{path}'}}]\n")
}

/// The private metadata of a compute dataset is the way to its raw data (a
/// location, a password): a compute lessee runs its code at the owner and
/// never receives it, during the lease or after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compute_lessee_never_receives_the_private_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let orgs = network(dir.path()).await;
    let (o1, o2) = (&orgs[0], &orgs[1]);
    let body = json!({
        "id": "vault", "title": "Vault",
        "policy": {"allowed_orgs": ["org2"], "max_lease_ms": 60_000, "access": "compute"},
        "private_metadata": {"location": "s3://vault/raw.csv", "password": "hunter2"},
    });
    assert_eq!(call(&o1.app, "POST", "/v1/datasets", Some(&o1.admin), Some(body.to_string())).await.0, 201);
    wait_dataset(o2, "vault", 1).await;
    let (code, req) = call(
        &o2.app,
        "POST",
        "/v1/datasets/vault/leases",
        Some(&o2.member),
        Some(json!({"duration_ms": 30_000}).to_string()),
    )
    .await;
    assert_eq!(code, 201, "{req}");
    let lease = req["resource"]["id"].as_str().unwrap().to_string();
    wait_lease(o1, &lease, "requested").await;
    let path = format!("/v1/leases/{lease}/grant");
    assert_eq!(call(&o1.app, "POST", &path, Some(&o1.admin), None).await.0, 200);
    wait_lease(o2, &lease, "active").await;
    let height = o1.node.height();
    let (code, p) = call(&o2.app, "GET", &format!("/v1/leases/{lease}/metadata"), Some(&o2.member), None).await;
    assert_eq!(code, 403, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("compute-only"), "{p}");
    assert!(!p.to_string().contains("hunter2"), "{p}");
    // Nothing was recorded as read: the owner committed no access record.
    let (code, probe) = call(&o1.app, "POST", "/v1/datasets", Some(&o1.admin), Some(dataset_body("probe"))).await;
    assert_eq!(code, 201, "{probe}");
    assert_only_probe_since(o1, height, &probe);
}
