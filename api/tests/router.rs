//! Router tests: `oneshot` requests, no HTTP socket, against three real
//! in-process nodes (RocksDB, raft over libp2p on loopback).

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_works_for_the_right_role() {
    let dir = tempfile::tempdir().unwrap();
    let orgs = network(dir.path()).await;
    let (o1, o2) = (&orgs[0], &orgs[1]);
    let (code, _) = call(&o1.app, "GET", "/v1/status", None, None).await;
    assert_eq!(code, 200, "status is public");
    let (code, spec) = call(&o1.app, "GET", "/v1/openapi.json", None, None).await;
    assert_eq!(code, 200);
    for path in [
        "/v1/datasets",
        "/v1/datasets/{id}",
        "/v1/leases/{id}/metadata",
        "/v1/leases/{id}/grant",
        "/v1/history/{kind}/{id}",
        "/v1/users",
        "/v1/blocks",
    ] {
        assert!(spec["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    let (code, created) = call(&o1.app, "POST", "/v1/datasets", Some(&o1.admin), Some(dataset_body("iris"))).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["status"], "committed");
    let (code, patched) =
        call(&o1.app, "PATCH", "/v1/datasets/iris", Some(&o1.admin), Some(json!({"title": "Iris v2"}).to_string()))
            .await;
    assert_eq!((code, patched["resource"]["version"].as_u64()), (StatusCode::OK, Some(2)));
    wait_dataset(o2, "iris", 2).await;
    let (code, list) = call(&o2.app, "GET", "/v1/datasets?tag=flowers", Some(&o2.viewer), None).await;
    assert!(code == 200 && list["items"].as_array().unwrap().iter().any(|d| d["id"] == "iris"), "{list}");
    let (_, detail) = call(&o2.app, "GET", "/v1/datasets/iris", Some(&o2.viewer), None).await;
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    let (code, req) = call(
        &o2.app,
        "POST",
        "/v1/datasets/iris/leases",
        Some(&o2.member),
        Some(json!({"duration_ms": 30_000}).to_string()),
    )
    .await;
    assert_eq!(code, 201, "{req}");
    let lease = req["resource"]["id"].as_str().unwrap().to_string();
    wait_lease(o1, &lease, "requested").await;
    let (code, mine) = call(&o1.app, "GET", "/v1/leases?role=owner&status=requested", Some(&o1.viewer), None).await;
    assert!(code == 200 && mine.as_array().unwrap().iter().any(|l| l["id"] == lease));
    assert_eq!(call(&o1.app, "POST", &format!("/v1/leases/{lease}/grant"), Some(&o1.admin), None).await.0, 200);
    assert_eq!(
        call(
            &o1.app,
            "POST",
            &format!("/v1/leases/{lease}/extend"),
            Some(&o1.admin),
            Some(json!({"extra_ms": 1000}).to_string())
        )
        .await
        .0,
        200
    );
    wait_lease(o2, &lease, "active").await;
    let (code, m) = call(&o2.app, "GET", &format!("/v1/leases/{lease}/metadata"), Some(&o2.member), None).await;
    assert_eq!((code, &m["private_metadata"]), (StatusCode::OK, &json!({"location": "s3://x/iris.csv"})));
    let (_, log) = call(&o2.app, "GET", &format!("/v1/leases/{lease}/access-log"), Some(&o2.viewer), None).await;
    assert_eq!(log[0]["reader"], "mia");
    assert_eq!(call(&o2.app, "POST", &format!("/v1/leases/{lease}/release"), Some(&o2.member), None).await.0, 200);
    let (_, req) = call(
        &o2.app,
        "POST",
        "/v1/datasets/iris/leases",
        Some(&o2.member),
        Some(json!({"duration_ms": 1000}).to_string()),
    )
    .await;
    let l2 = req["resource"]["id"].as_str().unwrap().to_string();
    wait_lease(o1, &l2, "requested").await;
    let (code, d) = call(
        &o1.app,
        "POST",
        &format!("/v1/leases/{l2}/deny"),
        Some(&o1.admin),
        Some(json!({"reason": "no"}).to_string()),
    )
    .await;
    assert_eq!((code, d["resource"]["status"].as_str()), (StatusCode::OK, Some("denied")));
    let (_, hist) = call(&o1.app, "GET", &format!("/v1/history/lease/{lease}"), Some(&o1.viewer), None).await;
    let states: Vec<&str> = hist.as_array().unwrap().iter().map(|h| h["record"]["status"].as_str().unwrap()).collect();
    assert_eq!(states.len(), 4, "requested, granted, extended, released (reads are in the access log): {hist}");
    assert_eq!((states[0], states[3]), ("requested", "released"));
    let (_, blocks) = call(&o1.app, "GET", "/v1/blocks?from=1&limit=2", Some(&o1.viewer), None).await;
    let tx = blocks[0]["txs"][0]["tx_id"].as_str().unwrap().to_string();
    assert_eq!(call(&o1.app, "GET", &format!("/v1/txs/{tx}"), Some(&o1.viewer), None).await.0, 200);
    assert_eq!(call(&o1.app, "GET", "/v1/blocks/1", Some(&o1.viewer), None).await.0, 200);
    let (code, u) =
        call(&o1.app, "POST", "/v1/users", Some(&o1.admin), Some(json!({"name": "new", "role": "viewer"}).to_string()))
            .await;
    assert_eq!(code, 201);
    assert_eq!(call(&o1.app, "GET", "/v1/datasets", Some(u["token"].as_str().unwrap()), None).await.0, 200);
    assert_eq!(call(&o1.app, "DELETE", "/v1/datasets/iris", Some(&o1.admin), None).await.0, 200);
    assert_eq!(call(&o1.app, "GET", "/v1/docs", None, None).await.0, 200);
}

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
    wait_lease(o1, &lease, "requested").await;
    let height = o1.node.height();
    type Case<'a> = (&'a Org, &'a str, String, Option<&'a str>, Option<String>, u16, Option<&'a str>, &'a str);
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
    for (org, method, path, token, body, want, field, detail) in cases {
        let (code, p) = call(&org.app, method, &path, token, body).await;
        assert_eq!(code.as_u16(), want, "{method} {path}: {p}");
        assert_eq!(p["status"].as_u64(), Some(want as u64));
        assert!(p["detail"].as_str().unwrap_or_default().contains(detail), "{method} {path}: {p}");
        if let Some(f) = field {
            assert_eq!(p["field"].as_str(), Some(f), "{method} {path}: {p}");
        }
    }
    // A valid write now: every block from the start of the cases up to the
    // one holding it holds nothing else, on every node.
    let (code, probe) = call(&o1.app, "POST", "/v1/datasets", Some(&o1.admin), Some(dataset_body("probe"))).await;
    assert_eq!(code, 201, "{probe}");
    let probe_height = probe["height"].as_u64().unwrap();
    for o in [o1, o2, o3] {
        wait_dataset(o, "probe", 1).await;
        let txs: Vec<String> = (height + 1..=probe_height)
            .flat_map(|h| o.node.block(h).unwrap().unwrap().txs)
            .map(|t| t.id().to_hex())
            .collect();
        assert_eq!(
            txs,
            [probe["tx_id"].as_str().unwrap()],
            "a rejected request wrote to the ledger of {}",
            o.node.org()
        );
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
