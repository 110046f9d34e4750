//! Every operation the OpenAPI document lists, by every role. The document
//! names the least role each operation needs (its bearer scope). For each
//! operation, on the node of the org it concerns: no token, and a token of
//! another org's node, get 401; each role below the one named gets 403; the
//! role named succeeds, and what it did is checked; a read succeeds for
//! every role above it too. The lease-gated read is tried by the lessee,
//! another org, the owner, and after the lease ends. An operation the
//! document lists and this test does not call fails the test.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use leasehold_chaincode::{canonical, Payload};
use serde_json::{json, Value};

const ROLES: [&str; 3] = ["viewer", "member", "admin"];

struct Matrix<'a> {
    orgs: &'a [Org],
    doc: Value,
    called: BTreeSet<(String, String)>,
}

impl Matrix<'_> {
    fn token<'t>(o: &'t Org, role: &str) -> &'t str {
        match role {
            "viewer" => &o.viewer,
            "member" => &o.member,
            _ => &o.admin,
        }
    }

    /// The least role the document says `method template` needs, or `None`
    /// for a public operation.
    fn role(&self, method: &str, template: &str) -> Option<String> {
        let op = &self.doc["paths"][template][method.to_lowercase()];
        assert!(op.is_object(), "the OpenAPI document lacks {method} {template}");
        let scopes = op["security"][0]["bearer"].as_array()?;
        assert_eq!(scopes.len(), 1, "{method} {template} names one role: {scopes:?}");
        let role = scopes[0].as_str().unwrap().to_string();
        assert!(ROLES.contains(&role.as_str()), "{method} {template}: unknown role {role}");
        Some(role)
    }

    /// Calls `method path` (the document's `template` made concrete) on org
    /// `o`'s node: first as nobody, as another node's admin and as each role
    /// below the one needed, each refused; then as the role needed, whose
    /// status must be `want`. Returns that response's body.
    async fn op(&mut self, o: usize, method: &str, template: &str, path: &str, body: Option<&str>, want: u16) -> Value {
        self.op_bytes(o, method, template, path, body.map(|b| b.as_bytes().to_vec()), want).await
    }

    async fn op_bytes(
        &mut self,
        o: usize,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Vec<u8>>,
        want: u16,
    ) -> Value {
        self.called.insert((method.to_lowercase(), template.to_string()));
        let org = &self.orgs[o];
        let role = self.role(method, template);
        if let Some(role) = &role {
            let stranger = &self.orgs[(o + 1) % self.orgs.len()].admin;
            for (token, why) in [(None, "no token"), (Some(stranger.as_str()), "another node's admin token")] {
                let (code, p) = send(&org.app, method, path, token, body.clone()).await;
                assert_eq!(code, StatusCode::UNAUTHORIZED, "{method} {path} with {why}: {p}");
            }
            for lower in ROLES.iter().take_while(|r| *r != role) {
                let (code, p) = send(&org.app, method, path, Some(Self::token(org, lower)), body.clone()).await;
                assert_eq!(code, StatusCode::FORBIDDEN, "{method} {path} as {lower}: {p}");
                assert!(p["detail"].as_str().unwrap().contains(&format!("{role} role")), "{method} {path}: {p}");
            }
        }
        let token = role.as_deref().map(|r| Self::token(org, r));
        let (code, v) = send(&org.app, method, path, token, body).await;
        assert_eq!(code.as_u16(), want, "{method} {path} as {role:?}: {v}");
        if let (Some(role), "GET") = (&role, method) {
            for higher in ROLES.iter().skip_while(|r| *r != role).skip(1) {
                let (code, _) = send(&org.app, method, path, Some(Self::token(org, higher)), None).await;
                assert_eq!(code.as_u16(), want, "{method} {path} as {higher}");
            }
        }
        v
    }

    fn uncalled(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for (path, ops) in self.doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                all.push((method.clone(), path.clone()));
            }
        }
        all.into_iter().filter(|k| !self.called.contains(k)).collect()
    }
}

/// Waits until `o` has applied `org`'s denial of the first pending change.
async fn wait_orgs_denied(o: &Org, org: &str) {
    for _ in 0..500 {
        let (_, orgs) = call(&o.app, "GET", "/v1/orgs", Some(&o.viewer), None).await;
        if orgs["pending"][0]["denials"].as_array().is_some_and(|d| d.contains(&json!(org))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("{org}'s denial never reached {}", o.node.org());
}

async fn wait_run(o: &Org, id: &str, status: &str) -> Value {
    for _ in 0..400 {
        let (_, r) = call(&o.app, "GET", &format!("/v1/runs/{id}"), Some(&o.viewer), None).await;
        if r["status"] == status {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {id} never {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_by_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let orgs = network(dir.path()).await;
    let (_, doc) = call(&orgs[0].app, "GET", "/v1/openapi.json", None, None).await;
    let mut m = Matrix { orgs: &orgs, doc, called: BTreeSet::new() };
    let (o1, o2, o3) = (&orgs[0], &orgs[1], &orgs[2]);

    let s = m.op(0, "GET", "/v1/status", "/v1/status", None, 200).await;
    assert_eq!(s["org"], "org1");
    let (code, _) = call(&o1.app, "GET", "/v1/docs", None, None).await;
    assert_eq!(code, 200, "the docs page is public, like the document");

    // Browser sessions: signing in takes a token in the body; the session's
    // own cookie and CSRF rules are in explorer.rs.
    let signed_in =
        m.op(0, "POST", "/v1/session", "/v1/session", Some(&json!({"token": o1.admin}).to_string()), 201).await;
    assert_eq!(signed_in["role"], "admin", "{signed_in}");
    let me = m.op(0, "GET", "/v1/session", "/v1/session", None, 200).await;
    assert_eq!((me["org"].as_str(), me["csrf"].as_str()), (Some("org1"), None), "a bearer token has no CSRF token");
    m.op(0, "DELETE", "/v1/session", "/v1/session", None, 204).await;
    // A stream that never ends: its roles are checked in explorer.rs.
    m.called.insert(("get".into(), "/v1/status/events".into()));

    // Datasets: org1 stages a file, registers, updates; everyone reads.
    let f = m.op(0, "PUT", "/v1/datasets/{id}/files/{path}", "/v1/datasets/iris/files/a.csv", Some("1,2\n"), 201).await;
    assert_eq!(f["size_bytes"], 4);
    let ds = m.op(0, "POST", "/v1/datasets", "/v1/datasets", Some(&dataset_body("iris")), 201).await;
    assert_eq!(ds["resource"]["size_bytes"], 4, "the staged file is in the dataset: {ds}");
    // The registration as signed: hashes in hex, the sealed metadata by its size only.
    let tx = m.op(0, "GET", "/v1/txs/{id}", &format!("/v1/txs/{}", ds["tx_id"].as_str().unwrap()), None, 200).await;
    let spec = &tx["payload"]["RegisterDataset"]["spec"];
    assert_eq!(spec["content_hash"], ds["resource"]["content_hash"], "{tx}");
    assert!(spec["private_metadata"]["sealed_bytes"].as_u64().unwrap() > 0, "{tx}");
    assert!(!tx.to_string().contains("ciphertext") && !tx.to_string().contains("s3://x"), "{tx}");
    assert_eq!(tx["signature"].as_str().map(str::len), Some(128), "{tx}");
    let patch = json!({"title": "Iris v2"}).to_string();
    let v2 = m.op(0, "PATCH", "/v1/datasets/{id}", "/v1/datasets/iris", Some(&patch), 200).await;
    assert_eq!(v2["resource"]["version"], 2);
    wait_dataset(o2, "iris", 2).await;
    wait_dataset(o3, "iris", 2).await;
    let list = m.op(1, "GET", "/v1/datasets", "/v1/datasets?tag=flowers", None, 200).await;
    assert!(list["items"].as_array().unwrap().iter().any(|d| d["id"] == "iris"), "{list}");
    let (_, none) = call(&o2.app, "GET", "/v1/datasets?tag=trees", Some(&o2.viewer), None).await;
    assert_eq!(none["items"], json!([]), "the tag filters");
    let shown = m.op(2, "GET", "/v1/datasets/{id}", "/v1/datasets/iris", None, 200).await;
    assert_eq!(shown["title"], "Iris v2");
    assert_eq!(shown["versions"].as_array().map(Vec::len), Some(2), "{shown}");

    // A lease: org2 requests, org1 grants and extends, org2 reads and releases.
    let lease_body = json!({"duration_ms": 30_000}).to_string();
    let req = m.op(1, "POST", "/v1/datasets/{id}/leases", "/v1/datasets/iris/leases", Some(&lease_body), 201).await;
    let lease = req["resource"]["id"].as_str().unwrap().to_string();
    wait_lease(o1, &lease, "requested").await;
    let mine = m.op(0, "GET", "/v1/leases", "/v1/leases?role=owner&status=requested", None, 200).await;
    assert!(mine.as_array().unwrap().iter().any(|l| l["id"] == lease), "{mine}");
    let (_, theirs) = call(&o1.app, "GET", "/v1/leases?role=lessee", Some(&o1.viewer), None).await;
    assert_eq!(theirs, json!([]), "org1 leases nothing");
    let one = m.op(0, "GET", "/v1/leases/{id}", &format!("/v1/leases/{lease}"), None, 200).await;
    assert_eq!(one["status"], "requested");
    let g = m.op(0, "POST", "/v1/leases/{id}/grant", &format!("/v1/leases/{lease}/grant"), None, 200).await;
    assert_eq!(g["resource"]["status"], "active");
    let before = g["resource"]["expires_at_ms"].as_i64().unwrap();
    let extend = json!({"extra_ms": 1000}).to_string();
    let e = m.op(0, "POST", "/v1/leases/{id}/extend", &format!("/v1/leases/{lease}/extend"), Some(&extend), 200).await;
    assert_eq!(e["resource"]["expires_at_ms"].as_i64().unwrap(), before + 1000);
    wait_lease(o2, &lease, "active").await;

    // The lease-gated read: the lessee only, and only while the lease is active.
    let meta_path = format!("/v1/leases/{lease}/metadata");
    let meta = m.op(1, "GET", "/v1/leases/{id}/metadata", &meta_path, None, 200).await;
    assert_eq!(meta["private_metadata"], json!({"location": "s3://x/iris.csv"}));
    let ws = m.op(1, "GET", "/v1/leases/{id}/workspace", &format!("/v1/leases/{lease}/workspace"), None, 200).await;
    let yaml = ws["files"]["workflow.yaml"].as_str().unwrap_or_default();
    assert!(yaml.contains("path: '/home/jovyan/iris'"), "{ws}");
    let names: Vec<&String> = ws["files"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["README.md", "analyse.py", "requirements.txt", "workflow.yaml"], "no leased name: {ws}");
    let (code, p) = call(&o1.app, "GET", &format!("/v1/leases/{lease}/workspace"), Some(&o1.member), None).await;
    assert!(code == 403 && p["detail"].as_str().unwrap().contains("for its lessee"), "the owner's: {p}");
    wait_lease(o3, &lease, "active").await;
    for (o, who) in [(o3, "org3"), (o1, "org1")] {
        let (code, p) = call(&o.app, "GET", &meta_path, Some(&o.member), None).await;
        assert_eq!(code, 403, "{who}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(&format!("held by org2, not by {who}")), "{p}");
    }
    // The files and their sizes: to the owner, and to the lessee through
    // the owner's node; to nobody else.
    let files = m.op(0, "GET", "/v1/datasets/{id}/files", "/v1/datasets/iris/files", None, 200).await;
    assert_eq!(files["files"], json!([{"path": "a.csv", "size_bytes": 4}]), "{files}");
    let (code, leased) = call(&o2.app, "GET", "/v1/datasets/iris/files", Some(&o2.viewer), None).await;
    assert_eq!(code, 200, "{leased}");
    assert_eq!(leased["files"], files["files"], "the lessee sees the owner's list");
    let (code, p) = call(&o3.app, "GET", "/v1/datasets/iris/files", Some(&o3.admin), None).await;
    assert!(code == 403 && p["detail"].as_str().unwrap().contains("active lease"), "{p}");
    // The owner committed the record; org2's node applies it a moment later.
    let log_path = format!("/v1/leases/{lease}/access-log");
    for _ in 0..500 {
        let (_, log) = call(&o2.app, "GET", &log_path, Some(&o2.viewer), None).await;
        if log.as_array().is_some_and(|l| !l.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let log = m.op(1, "GET", "/v1/leases/{id}/access-log", &log_path, None, 200).await;
    assert_eq!(log[0]["reader"], "mia", "{log}");
    let rel = m.op(1, "POST", "/v1/leases/{id}/release", &format!("/v1/leases/{lease}/release"), None, 200).await;
    assert_eq!(rel["resource"]["status"], "released");
    let (code, p) = call(&o2.app, "GET", &meta_path, Some(&o2.member), None).await;
    assert!(code == 403 && p["detail"].as_str().unwrap().contains("was released at"), "{p}");
    let (code, p) = call(&o2.app, "GET", "/v1/datasets/iris/files", Some(&o2.viewer), None).await;
    assert_eq!(code, 403, "a released lease lists no file: {p}");

    // Deny and revoke, each on a lease of its own.
    let r2 = m.op(1, "POST", "/v1/datasets/{id}/leases", "/v1/datasets/iris/leases", Some(&lease_body), 201).await;
    let l2 = r2["resource"]["id"].as_str().unwrap().to_string();
    wait_lease(o1, &l2, "requested").await;
    let deny = json!({"reason": "no"}).to_string();
    let d = m.op(0, "POST", "/v1/leases/{id}/deny", &format!("/v1/leases/{l2}/deny"), Some(&deny), 200).await;
    assert_eq!(d["resource"]["status"], "denied");
    let r3 = m.op(1, "POST", "/v1/datasets/{id}/leases", "/v1/datasets/iris/leases", Some(&lease_body), 201).await;
    let l3 = r3["resource"]["id"].as_str().unwrap().to_string();
    wait_lease(o1, &l3, "requested").await;
    m.op(0, "POST", "/v1/leases/{id}/grant", &format!("/v1/leases/{l3}/grant"), None, 200).await;
    let revoke = json!({"reason": "audit"}).to_string();
    let r = m.op(0, "POST", "/v1/leases/{id}/revoke", &format!("/v1/leases/{l3}/revoke"), Some(&revoke), 200).await;
    assert_eq!(r["resource"]["status"], "revoked");

    // After expiry, by the node's own clock, the lessee reads nothing.
    let short = json!({"duration_ms": 1_500}).to_string();
    let r4 = m.op(1, "POST", "/v1/datasets/{id}/leases", "/v1/datasets/iris/leases", Some(&short), 201).await;
    let l4 = r4["resource"]["id"].as_str().unwrap().to_string();
    wait_lease(o1, &l4, "requested").await;
    let g4 = m.op(0, "POST", "/v1/leases/{id}/grant", &format!("/v1/leases/{l4}/grant"), None, 200).await;
    let expires = g4["resource"]["expires_at_ms"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while o2.node.ledger_now() <= expires {
        assert!(std::time::Instant::now() < deadline, "org2's node never reached the lease's expiry");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The grant, too, must have reached org2's node: "expired" says both.
    wait_lease(o2, &l4, "expired").await;
    let (code, p) = call(&o2.app, "GET", &format!("/v1/leases/{l4}/metadata"), Some(&o2.member), None).await;
    assert!(code == 403 && p["detail"].as_str().unwrap().contains("expired at"), "{p}");

    // The ledger: a raw signed tx, then reads of it and its block.
    let tx = o2.node.sign(Payload::RequestLease {
        lease_id: "raw-tx".into(),
        dataset_id: "iris".into(),
        duration_ms: 1_000,
        purpose: "raw".into(),
    });
    let out = m.op_bytes(1, "POST", "/v1/txs", "/v1/txs", Some(canonical::to_bytes(&vec![tx.clone()])), 200).await;
    assert_eq!(out[0]["status"], "committed", "{out}");
    let id = tx.id().to_hex();
    let t = m.op(1, "GET", "/v1/txs/{id}", &format!("/v1/txs/{id}"), None, 200).await;
    let height = t["height"].as_u64().unwrap();
    let b = m.op(1, "GET", "/v1/blocks/{height}", &format!("/v1/blocks/{height}"), None, 200).await;
    assert!(b["txs"].as_array().unwrap().iter().any(|t| t["tx_id"] == id), "{b}");
    let bs = m.op(1, "GET", "/v1/blocks", &format!("/v1/blocks?from={height}&limit=1"), None, 200).await;
    assert_eq!(bs[0]["hash"], b["hash"]);
    let h = m.op(0, "GET", "/v1/history/{kind}/{id}", &format!("/v1/history/lease/{lease}"), None, 200).await;
    let states: Vec<&str> = h.as_array().unwrap().iter().map(|r| r["record"]["status"].as_str().unwrap()).collect();
    assert_eq!(states.len(), 4, "requested, granted, extended, released; reads are in the access log: {h}");
    assert_eq!((states[0], states[3]), ("requested", "released"), "{h}");

    // Users and membership.
    let user = json!({"name": "new", "role": "viewer"}).to_string();
    let u = m.op(0, "POST", "/v1/users", "/v1/users", Some(&user), 201).await;
    let (code, _) = call(&o1.app, "GET", "/v1/datasets", u["token"].as_str(), None).await;
    assert_eq!(code, 200, "the new user's token works");
    let users = m.op(0, "GET", "/v1/users", "/v1/users", None, 200).await;
    assert!(users.as_array().unwrap().iter().any(|x| x["name"] == "new" && x["role"] == "viewer"), "{users}");
    assert!(!users.to_string().contains("sha256"), "no token hash leaves the node: {users}");
    let gone = m.op(0, "DELETE", "/v1/users/{name}", "/v1/users/new", None, 200).await;
    assert_eq!(gone["name"], "new");
    let (code, _) = call(&o1.app, "GET", "/v1/datasets", u["token"].as_str(), None).await;
    assert_eq!(code, 401, "a revoked token is refused at once");
    let c = m.op(0, "GET", "/v1/config", "/v1/config", None, 200).await;
    assert_eq!(c["org"], "org1", "{c}");
    assert!(c["workflow"]["limits"].is_object() && !c.to_string().contains("lh_"), "no token in the config: {c}");
    let b = m.op(0, "POST", "/v1/backups", "/v1/backups", None, 201).await;
    let backup = std::path::Path::new(b["path"].as_str().unwrap());
    assert!(backup.join("ledger/CURRENT").exists() && backup.join("backup.json").exists(), "{b}");
    assert!(b["height"].as_u64().unwrap() > 0, "{b}");
    let voters = json!(["org1", "org2", "org3"]);
    let approve = json!({"voters": voters}).to_string();
    m.op(0, "POST", "/v1/membership", "/v1/membership", Some(&approve), 200).await;
    let ms = m.op(0, "GET", "/v1/membership", "/v1/membership", None, 200).await;
    assert_eq!(ms["voters"], voters);
    assert_eq!(ms["approvals"], json!([["org1", voters]]), "org1's approval stands: {ms}");
    // Org changes: a proposal stays pending with one approval of three,
    // and an org approves a change once.
    let leave = json!({"change_id": "drop-org3", "leave": {"org": "org3", "reason": "matrix"}}).to_string();
    let p = m.op(0, "POST", "/v1/orgs/changes", "/v1/orgs/changes", Some(&leave), 200).await;
    assert_eq!(p["resource"]["pending"][0]["approvals"], json!(["org1"]), "{p}");
    let again = m.op(0, "POST", "/v1/orgs/changes/{id}/approve", "/v1/orgs/changes/drop-org3/approve", None, 422).await;
    assert!(again["detail"].as_str().unwrap().contains("already approved"), "{again}");
    let orgs = m.op(0, "GET", "/v1/orgs", "/v1/orgs", None, 200).await;
    assert_eq!(orgs["members"].as_array().unwrap().len(), 3, "{orgs}");
    assert_eq!(orgs["members"][2]["node_id"], 3, "{orgs}");
    // Another org denies it (one of three drops nothing) and cannot take it
    // back; its proposer can.
    for _ in 0..500 {
        let (_, orgs) = call(&o2.app, "GET", "/v1/orgs", Some(&o2.viewer), None).await;
        if orgs["pending"].as_array().is_some_and(|p| !p.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let d = m.op(1, "POST", "/v1/orgs/changes/{id}/deny", "/v1/orgs/changes/drop-org3/deny", None, 200).await;
    assert_eq!(d["resource"]["pending"][0]["denials"], json!(["org2"]), "{d}");
    let (code, p) = call(&o2.app, "POST", "/v1/orgs/changes/drop-org3/withdraw", Some(&o2.admin), None).await;
    assert!(code == 422 && p["detail"].as_str().unwrap().contains("only org1, which proposed it"), "{p}");
    wait_orgs_denied(o1, "org2").await;
    let w = m.op(0, "POST", "/v1/orgs/changes/{id}/withdraw", "/v1/orgs/changes/drop-org3/withdraw", None, 200).await;
    assert_eq!(w["resource"]["pending"], json!([]), "{w}");

    // Runs: one succeeds and is published, one is cancelled.
    let yaml = "jobs: [\"echo derived > $OUTPUT_DIR/out.txt; echo done\"]\ncmd_mode: shell\n".to_string();
    let run = m.op(1, "POST", "/v1/runs", "/v1/runs", Some(&yaml), 201).await;
    let rid = run["id"].as_str().unwrap().to_string();
    wait_run(o2, &rid, "succeeded").await;
    let runs = m.op(1, "GET", "/v1/runs", "/v1/runs", None, 200).await;
    assert!(runs.as_array().unwrap().iter().any(|r| r["id"] == rid), "{runs}");
    let shown = m.op(1, "GET", "/v1/runs/{id}", &format!("/v1/runs/{rid}"), None, 200).await;
    assert_eq!(shown["jobs"][0]["status"], "succeeded", "{shown}");
    let outputs = m.op(1, "GET", "/v1/runs/{id}/outputs", &format!("/v1/runs/{rid}/outputs"), None, 200).await;
    assert_eq!(outputs["files"][0]["path"], "out.txt", "{outputs}");
    assert_eq!(outputs["output_hash"], shown["output_hash"], "{outputs}");
    let file =
        m.op(1, "GET", "/v1/runs/{id}/outputs/{path}", &format!("/v1/runs/{rid}/outputs/out.txt"), None, 200).await;
    assert_eq!(file, json!("derived\n"));
    let (code, p) = call(&o2.app, "GET", &format!("/v1/runs/{rid}/outputs/../run.json"), Some(&o2.member), None).await;
    assert!(code == 404 || code == 400, "no path out of the outputs: {code} {p}");
    let logs = m.op(1, "GET", "/v1/runs/{id}/logs", &format!("/v1/runs/{rid}/logs"), None, 200).await;
    let events = logs.as_str().unwrap();
    assert!(events.contains("event: log") && events.contains("\"done\"") && events.contains("event: end"), "{events}");
    let derived = dataset_body("derived");
    let p = m.op(1, "POST", "/v1/runs/{id}/publish", &format!("/v1/runs/{rid}/publish"), Some(&derived), 201).await;
    assert_eq!(p["resource"]["derived_from_run"], rid.as_str(), "{p}");
    let shown = m.op(1, "GET", "/v1/datasets/{id}", "/v1/datasets/derived", None, 200).await;
    let node = &shown["lineage"][0];
    assert_eq!((&node["run_id"], &node["leases"], &node["approvals"]), (&json!(rid), &json!([]), &json!([])), "{node}");
    let sleeper = "jobs: [\"sleep 30\"]\ncmd_mode: shell\n".to_string();
    let run = m.op(1, "POST", "/v1/runs", "/v1/runs", Some(&sleeper), 201).await;
    let sid = run["id"].as_str().unwrap().to_string();
    wait_run(o2, &sid, "running").await;
    m.op(1, "POST", "/v1/runs/{id}/cancel", &format!("/v1/runs/{sid}/cancel"), None, 200).await;
    wait_run(o2, &sid, "cancelled").await;

    // Secrets: set, listed by name (the value never comes back), deleted.
    let value = "matrix-secret-value";
    let body = json!({"value": value}).to_string();
    let set = m.op(1, "PUT", "/v1/secrets/{name}", "/v1/secrets/MATRIX_KEY", Some(&body), 201).await;
    assert_eq!(set, json!({"name": "MATRIX_KEY"}));
    let (code, again) = call(&o2.app, "PUT", "/v1/secrets/MATRIX_KEY", Some(&o2.member), Some(body.clone())).await;
    assert_eq!((code.as_u16(), again), (200, json!({"name": "MATRIX_KEY"})), "replaced");
    let list = m.op(1, "GET", "/v1/secrets", "/v1/secrets", None, 200).await;
    assert_eq!(list, json!({"secrets": [{"name": "MATRIX_KEY"}]}));
    for (path, field) in [("/v1/secrets/lower_case", "name"), ("/v1/secrets/LD_PRELOAD", "name")] {
        let (code, p) = call(&o2.app, "PUT", path, Some(&o2.member), Some(body.clone())).await;
        assert_eq!((code.as_u16(), p["field"].as_str()), (422, Some(field)), "{path}: {p}");
    }
    let two_lines = json!({"value": "a\nb"}).to_string();
    let (code, p) = call(&o2.app, "PUT", "/v1/secrets/OTHER", Some(&o2.member), Some(two_lines)).await;
    assert_eq!((code.as_u16(), p["field"].as_str()), (422, Some("value")), "{p}");
    let gone = m.op(1, "DELETE", "/v1/secrets/{name}", "/v1/secrets/MATRIX_KEY", None, 200).await;
    assert_eq!(gone, json!({"name": "MATRIX_KEY"}));
    let (code, p) = call(&o2.app, "DELETE", "/v1/secrets/MATRIX_KEY", Some(&o2.member), None).await;
    assert_eq!(code.as_u16(), 404, "{p}");
    let (_, list) = call(&o2.app, "GET", "/v1/secrets", Some(&o2.member), None).await;
    assert_eq!(list, json!({"secrets": []}));

    // A release is for a compute run this node executed: a local run has none.
    let why = r#"{"reason":"checked"}"#;
    for verb in ["approve", "deny"] {
        let template = format!("/v1/releases/{{id}}/{verb}");
        let p = m.op(1, "POST", &template, &format!("/v1/releases/{rid}/{verb}"), Some(why), 404).await;
        assert!(p["detail"].as_str().unwrap().contains("not a compute run this node executed"), "{p}");
    }

    // Publications wait only on owner_approval inputs: none wait here.
    let pending = m.op(1, "GET", "/v1/publications", "/v1/publications", None, 200).await;
    assert_eq!(pending, json!([]));
    for verb in ["approve", "deny"] {
        let template = format!("/v1/publications/{{id}}/{verb}");
        let p = m.op(0, "POST", &template, &format!("/v1/publications/derived/{verb}"), Some(why), 404).await;
        assert!(p["detail"].as_str().unwrap().contains("no publication of \"derived\" is pending"), "{p}");
    }

    // Retiring comes last: it ends the dataset's life.
    let gone = m.op(0, "DELETE", "/v1/datasets/{id}", "/v1/datasets/iris", None, 200).await;
    assert_eq!(gone["resource"]["retired"], true, "{gone}");

    assert_eq!(m.uncalled(), Vec::<(String, String)>::new(), "operations in the document this test never called");
}
