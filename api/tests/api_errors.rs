//! The API's own checks on one node, which commits alone: auth, input
//! validation, sizes, routing. Each error is a clear 4xx problem+json that
//! names its field, and none of them writes anything. The checks that need
//! other orgs (leases, policies, ownership) are in `router.rs`.

mod common;

use common::*;
use serde_json::json;

/// A dataset a one-org network can register: it allows no other org.
fn solo_dataset(id: &str) -> String {
    json!({"id": id, "title": "Solo", "policy": {"allowed_orgs": [], "max_lease_ms": 60_000}, "private_metadata": {}})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_on_one_node_is_a_clear_4xx_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o1 = &one_node(dir.path()).await;
    let (code, created) = call(&o1.app, "POST", "/v1/datasets", Some(&o1.admin), Some(solo_dataset("iris"))).await;
    assert_eq!(code, 201, "{created}");
    let height = o1.node.height();
    let big = format!("{{\"title\": \"{}\"}}", "x".repeat(9 * 1024 * 1024));
    let cases: Vec<Case> = vec![
        (o1, "GET", "/v1/datasets".into(), None, None, 401, None, "Bearer"),
        (o1, "GET", "/v1/datasets".into(), Some("lh_nope"), None, 401, None, "not valid"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.viewer), Some(solo_dataset("d1")), 403, None, "admin role"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.member), Some(solo_dataset("d1")), 403, None, "admin role"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.admin), Some("{\"title\": ".into()), 400, Some("body"), "malformed JSON"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.admin), Some(json!({"policy": {"allowed_orgs": [], "max_lease_ms": 1}, "private_metadata": {}}).to_string()), 422, Some("title"), "missing field"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.admin), Some(json!({"title": "t", "colour": 1, "policy": {"allowed_orgs": [], "max_lease_ms": 1}, "private_metadata": {}}).to_string()), 422, Some("colour"), "unknown field"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.admin), Some(json!({"title": "t", "policy": {"allowed_orgs": [], "max_lease_ms": "soon"}, "private_metadata": {}}).to_string()), 422, Some("policy.max_lease_ms"), "invalid type"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.admin), Some(json!({"id": "d2", "title": "t", "policy": {"allowed_orgs": [], "max_lease_ms": 0}, "private_metadata": {}}).to_string()), 422, Some("policy.max_lease_ms"), "between 1"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.admin), Some(json!({"id": "d3", "title": "t", "policy": {"allowed_orgs": ["org9"], "max_lease_ms": 5}, "private_metadata": {}}).to_string()), 422, Some("policy.allowed_orgs"), "not a member"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.admin), Some(json!({"id": "../x", "title": "t", "policy": {"allowed_orgs": [], "max_lease_ms": 5}, "private_metadata": {}}).to_string()), 422, Some("id"), "letters"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.admin), Some(solo_dataset("iris")), 409, None, "already exists"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.admin), Some(big), 413, None, "length limit"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.admin), Some(json!({"id": "d4", "title": "t", "policy": {"allowed_orgs": [], "max_lease_ms": 5}, "public_metadata": 5, "private_metadata": {}}).to_string()), 422, Some("public_metadata"), "a JSON object"),
        (o1, "POST", "/v1/datasets".into(), Some(&o1.admin), Some(json!({"id": "d5", "title": "t", "policy": {"allowed_orgs": [], "max_lease_ms": 5}, "private_metadata": "secret"}).to_string()), 422, Some("private_metadata"), "a JSON object"),
        (o1, "GET", "/v1/datasets/nope".into(), Some(&o1.viewer), None, 404, None, "does not exist"),
        (o1, "GET", "/v1/leases/nope".into(), Some(&o1.viewer), None, 404, None, "does not exist"),
        (o1, "POST", "/v1/leases/nope/grant".into(), Some(&o1.admin), None, 404, None, "does not exist"),
        (o1, "GET", "/v1/txs/zz".into(), Some(&o1.viewer), None, 400, Some("id"), "64 hex"),
        (o1, "GET", "/v1/leases?status=happy".into(), Some(&o1.viewer), None, 400, Some("status"), "not a lease status"),
        (o1, "GET", "/v1/history/planet/x".into(), Some(&o1.viewer), None, 400, Some("kind"), "not dataset"),
        (o1, "POST", "/v1/users".into(), Some(&o1.member), Some(json!({"name": "x", "role": "admin"}).to_string()), 403, None, "admin role"),
        (o1, "GET", "/v1/blocks/999999".into(), Some(&o1.viewer), None, 404, None, "no block"),
        (o1, "POST", "/v1/txs".into(), Some(&o1.member), Some("not a tx".into()), 400, Some("body"), "canonical list"),
        (o1, "POST", "/v1/txs".into(), Some(&o1.viewer), Some("x".into()), 403, None, "member role"),
        (o1, "POST", "/v1/runs".into(), Some(&o1.viewer), Some("jobs: [ls]".into()), 403, None, "member role"),
        (o1, "POST", "/v1/runs".into(), Some(&o1.member), Some("jobs: [ls".into()), 422, Some("workflow.yaml"), "line 1"),
        (o1, "POST", "/v1/runs".into(), Some(&o1.member), Some("jobs: [ls]\nretries: 3".into()), 422, Some("workflow.yaml"), "unknown field `retries`"),
        (o1, "POST", "/v1/runs".into(), Some(&o1.member), Some("jobs: [a, b]\ndags: ['1 >> 2', '2 >> 1']".into()), 422, Some("dags"), "cycle"),
        (o1, "POST", "/v1/runs".into(), Some(&o1.member), Some("jobs: [a, b]\ndags: ['1 >> 3']".into()), 422, Some("dags"), "numbered 1 to 2"),
        (o1, "POST", "/v1/runs".into(), Some(&o1.member), Some("x".repeat(300 * 1024)), 413, None, "at most"),
        (o1, "GET", "/v1/runs/nope".into(), Some(&o1.viewer), None, 404, None, "does not exist"),
        (o1, "POST", "/v1/runs/nope/cancel".into(), Some(&o1.member), None, 404, None, "does not exist"),
        (o1, "POST", "/v1/runs/nope/publish".into(), Some(&o1.admin), Some(solo_dataset("derived")), 404, None, "does not exist"),
        (o1, "GET", "/v1/runs/nope/logs".into(), Some(&o1.viewer), None, 404, None, "does not exist"),
        (o1, "POST", "/v1/runs".into(), Some(&o1.member), Some("x".repeat(9 << 20)), 413, None, "at most"),
        (o1, "GET", "/v1/datasets?limit=-1".into(), Some(&o1.viewer), None, 400, Some("limit"), "invalid digit"),
        (o1, "GET", "/v1/blocks/abc".into(), Some(&o1.viewer), None, 400, Some("path"), "Cannot parse"),
        (o1, "GET", "/v1/no-such-route".into(), Some(&o1.viewer), None, 404, None, "Not Found"),
        (o1, "DELETE", "/v1/status".into(), Some(&o1.viewer), None, 405, None, "Method Not Allowed"),
        (o1, "PUT", "/v1/datasets/iris/files/a/%2e%2e/%2e%2e/b".into(), Some(&o1.admin), Some("x".into()), 422, Some("path"), "without '.', '..'"),
        (o1, "PUT", "/v1/datasets/..x/files/a".into(), Some(&o1.admin), Some("x".into()), 422, Some("id"), "letters"),
        (o1, "PUT", "/v1/datasets/iris/files/a".into(), Some(&o1.member), Some("x".into()), 403, None, "admin role"),
    ];
    check_cases(cases).await;
    // A valid write now lands in the very next block, alone.
    let (code, probe) = call(&o1.app, "POST", "/v1/datasets", Some(&o1.admin), Some(solo_dataset("probe"))).await;
    assert_eq!(code, 201, "{probe}");
    assert_only_probe_since(o1, height, &probe);
    assert_eq!(call(&o1.app, "GET", "/v1/runs", Some(&o1.viewer), None).await.1, json!([]), "no run was created");
    assert!(!o1.node.config().data_dir.join("uploads/iris").exists(), "no file was staged");
}

/// A file and a directory cannot share a staged path, in either order: the
/// second upload is a 422 naming the path, and the first stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_path_that_clashes_with_another_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o1 = &one_node(dir.path()).await;
    for (path, body) in [("a", "one"), ("c/d", "two")] {
        let path = format!("/v1/datasets/fresh/files/{path}");
        assert_eq!(call(&o1.app, "PUT", &path, Some(&o1.admin), Some(body.into())).await.0, 201);
    }
    let cases: Vec<Case> = vec![
        (
            o1,
            "PUT",
            "/v1/datasets/fresh/files/a/b".into(),
            Some(&o1.admin),
            Some("x".into()),
            422,
            Some("path"),
            "a is a staged file",
        ),
        (
            o1,
            "PUT",
            "/v1/datasets/fresh/files/c".into(),
            Some(&o1.admin),
            Some("x".into()),
            422,
            Some("path"),
            "c is a directory",
        ),
    ];
    check_cases(cases).await;
    let staged = o1.node.config().data_dir.join("uploads/fresh");
    assert_eq!(std::fs::read_to_string(staged.join("a")).unwrap(), "one");
    assert_eq!(std::fs::read_to_string(staged.join("c/d")).unwrap(), "two");
    let mut names: Vec<String> = files_under(&staged);
    names.sort();
    assert_eq!(names, ["a", "c/d"], "nothing else was written");
}

fn files_under(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                out.push(e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}
