//! Three real in-process nodes (RocksDB, raft over libp2p on loopback), each
//! with its API router driven by `oneshot`: no HTTP socket.
#![allow(dead_code)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use leasehold_api::{app, AppState};
use leasehold_node::users::Role;
use leasehold_node::NodeHandle;
use serde_json::{json, Value};
use tower::ServiceExt;

#[path = "../../../tests/common/ports.rs"]
mod ports;

pub struct Org {
    pub node: NodeHandle,
    pub app: Router,
    pub admin: String,
    pub member: String,
    pub viewer: String,
}

/// Three orgs, each with a node and its router.
pub async fn network(dir: &std::path::Path) -> Vec<Org> {
    network_of(dir, 3).await
}

/// A network of one org: its node commits alone, at once, so tests of the
/// API itself (auth, input checks, errors) need no consensus round.
pub async fn one_node(dir: &std::path::Path) -> Org {
    network_of(dir, 1).await.remove(0)
}

pub async fn network_of(dir: &std::path::Path, n: usize) -> Vec<Org> {
    let held = ports::reserve(2 * n);
    let ports: Vec<u16> = held.iter().map(|p| p.number).collect();
    // The nodes live as long as the test; so do their ports' locks.
    std::mem::forget(held);
    let opts = leasehold_node::init::InitOptions {
        orgs: n,
        network_id: "router-test".into(),
        host: "127.0.0.1".into(),
        p2p_ports: ports[..n].to_vec(),
        api_ports: ports[n..].to_vec(),
        now_ms: leasehold_node::now_ms(),
    };
    leasehold_node::init::init(dir, &opts).unwrap();
    let mut orgs = Vec::new();
    for i in 1..=n {
        let odir = dir.join(format!("org{i}"));
        let cfg = leasehold_node::config::NodeConfig::load(&odir.join("node.toml")).unwrap();
        let (node, tasks) = leasehold_node::start(cfg).await.unwrap();
        std::mem::forget(tasks); // the runtime ends with the test
        let state = AppState::new(node.clone()).unwrap();
        let now = leasehold_node::now_ms();
        orgs.push(Org {
            admin: std::fs::read_to_string(odir.join("admin.token")).unwrap(),
            member: state.users.add("mia", Role::Member, now).unwrap(),
            viewer: state.users.add("vic", Role::Viewer, now).unwrap(),
            app: app(state),
            node,
        });
    }
    for _ in 0..600 {
        let mut leaders = Vec::new();
        for o in &orgs {
            leaders.push(o.node.leader_org());
        }
        if leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0]) {
            return orgs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no agreed leader within 30 s");
}

pub async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (StatusCode, Value) {
    send(app, method, path, token, body.map(String::into_bytes)).await
}

/// One request to `app`. Every error must be problem+json.
pub async fn send(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let problem = status.is_client_error() || status.is_server_error();
    let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
    if problem {
        assert_eq!(ctype, "application/problem+json", "{method} {path}: {}", String::from_utf8_lossy(&bytes));
    }
    // A body that is not JSON (an event stream, a page) comes back as text.
    let text = || Value::String(String::from_utf8_lossy(&bytes).into_owned());
    (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or_else(|_| text()) })
}

pub async fn wait_lease(o: &Org, id: &str, status: &str) {
    for _ in 0..500 {
        let (code, l) = call(&o.app, "GET", &format!("/v1/leases/{id}"), Some(&o.viewer), None).await;
        if code == 200 && l["status"] == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("lease {id} was not {status} on {} within 15 s", o.node.org());
}

/// Writes commit on the node that made them; other nodes apply the block a
/// moment later.
pub async fn wait_dataset(o: &Org, id: &str, version: u64) {
    for _ in 0..500 {
        let (code, d) = call(&o.app, "GET", &format!("/v1/datasets/{id}"), Some(&o.viewer), None).await;
        if code == 200 && d["version"].as_u64() == Some(version) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("dataset {id} v{version} did not reach {} within 15 s", o.node.org());
}

pub fn dataset_body(id: &str) -> String {
    json!({
        "id": id, "title": "Iris", "tags": ["flowers"],
        "policy": {"allowed_orgs": ["org2"], "max_lease_ms": 60_000},
        "public_metadata": {"rows": 150},
        "private_metadata": {"location": "s3://x/iris.csv"},
    })
    .to_string()
}

/// One request that must fail: (org, method, path, token, body, status,
/// the field it names, words its detail contains).
pub type Case<'a> = (&'a Org, &'a str, String, Option<&'a str>, Option<String>, u16, Option<&'a str>, &'a str);

/// Sends each case and checks its status, problem+json body, field and detail.
pub async fn check_cases(cases: Vec<Case<'_>>) {
    for (org, method, path, token, body, want, field, detail) in cases {
        let (code, p) = call(&org.app, method, &path, token, body).await;
        assert_eq!(code.as_u16(), want, "{method} {path}: {p}");
        assert_eq!(p["status"].as_u64(), Some(want as u64));
        assert!(p["detail"].as_str().unwrap_or_default().contains(detail), "{method} {path}: {p}");
        if let Some(f) = field {
            assert_eq!(p["field"].as_str(), Some(f), "{method} {path}: {p}");
        }
    }
}

/// Asserts that node `o`'s blocks above `height`, up to the one holding the
/// committed write `probe`, hold that write and nothing else.
pub fn assert_only_probe_since(o: &Org, height: u64, probe: &Value) {
    let txs: Vec<String> = (height + 1..=probe["height"].as_u64().unwrap())
        .flat_map(|h| o.node.block(h).unwrap().unwrap().txs)
        .map(|t| t.id().to_hex())
        .collect();
    assert_eq!(txs, [probe["tx_id"].as_str().unwrap()], "a rejected request wrote to the ledger of {}", o.node.org());
}
