//! `scripts/testnet-up.sh --netns`: three orgs made by the genesis ceremony,
//! each node in a network namespace of its own with its own address, so
//! addresses and peer lists are exercised as across machines. A lease's
//! life runs across it, and `testnet-down.sh` removes the namespaces.
//! Needs root; without it the test says so and skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

/// Stops the network and removes its namespaces, whatever the test did.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new(script("testnet-down.sh")).env("LEASEHOLD_NET", &self.0).output();
    }
}

struct Org {
    url: String,
    token: String,
    pid: u32,
}

async fn call(http: &reqwest::Client, org: &Org, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = http.request(method.parse().unwrap(), format!("{}{path}", org.url)).bearer_auth(&org.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn until(what: &str, secs: u64, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok().await {
        assert!(Instant::now() < deadline, "{what} did not happen within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn net_ns(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netns_testnet_comes_up_from_the_ceremony_and_runs_a_lease_life() {
    if !hosts::is_root() {
        let why = skip_unless_required::<()>("network namespaces need root").unwrap_err();
        eprintln!("SKIPPED: {why}; run the tests as root for the --netns testnet");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let _down = Down(net.clone());
    let out = Command::new(script("testnet-up.sh"))
        .args(["--netns", "--no-demo"])
        .env("LEASEHOLD_NET", &net)
        .env("LEASEHOLD_BIN", bin())
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "testnet-up.sh --netns failed:\n{said}");

    // Made by the ceremony: each org's own keys only, a genesis all signed,
    // and addresses of separate hosts, none on loopback.
    let genesis: Value = serde_json::from_slice(&std::fs::read(net.join("genesis.json")).unwrap()).unwrap();
    let addrs: Vec<&str> =
        genesis["orgs"].as_array().unwrap().iter().map(|o| o["p2p_addr"].as_str().unwrap()).collect();
    assert_eq!(addrs.len(), 3, "{genesis}");
    for o in ["org1", "org2", "org3"] {
        let keys = files_under(&net.join(o).join("keys"));
        assert_eq!(keys.len(), 3, "{o} holds its own three keys: {keys:?}");
        assert!(net.join(o).join("genesis.sigs.json").exists(), "{o} holds the signatures");
    }
    let listed: Value = serde_json::from_slice(&std::fs::read(net.join("network.json")).unwrap()).unwrap();
    let orgs: Vec<Org> = listed["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| Org {
            url: o["api_url"].as_str().unwrap().to_string(),
            token: std::fs::read_to_string(o["admin_token_file"].as_str().unwrap()).unwrap().trim().to_string(),
            pid: o["pid"].as_u64().unwrap() as u32,
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (o, addr) in orgs.iter().zip(&addrs) {
        let host = o.url.trim_start_matches("http://").split(':').next().unwrap().to_string();
        assert!(!host.starts_with("127.") && addr.contains(&format!("/ip4/{host}/")), "{} and {addr}", o.url);
        assert!(seen.insert(host), "two orgs share an address: {listed}");
        assert_ne!(net_ns(o.pid), net_ns(std::process::id()), "a node runs in the test's own namespace");
    }
    let spaces: std::collections::HashSet<_> = orgs.iter().map(|o| net_ns(o.pid)).collect();
    assert_eq!(spaces.len(), 3, "each node has a network namespace of its own");

    // A lease's life across the hosts: org1 registers, org2 leases and
    // reads the sealed metadata through org1's node, the lease ends.
    let http = reqwest::Client::new();
    let (o1, o2, o3) = (&orgs[0], &orgs[1], &orgs[2]);
    let policy = json!({"allowed_orgs": ["org2"], "max_lease_ms": 600_000});
    let body = json!({"id": "across", "title": "t", "policy": policy, "private_metadata": {"where": "org1"}});
    let (code, r) = call(&http, o1, "POST", "/v1/datasets", Some(body)).await;
    assert_eq!(code, 201, "{r}");
    until("org2 sees the dataset", 20, async || call(&http, o2, "GET", "/v1/datasets/across", None).await.0 == 200)
        .await;
    let (code, r) = call(&http, o2, "POST", "/v1/datasets/across/leases", Some(json!({"duration_ms": 4_000}))).await;
    assert_eq!(code, 201, "{r}");
    let lease = r["resource"]["id"].as_str().unwrap().to_string();
    let path = format!("/v1/leases/{lease}");
    let status = async |org: &Org| call(&http, org, "GET", &path, None).await.1["status"].as_str().map(String::from);
    until("org1 sees the request", 20, async || status(o1).await.as_deref() == Some("requested")).await;
    let (code, r) = call(&http, o1, "POST", &format!("{path}/grant"), Some(json!({}))).await;
    assert_eq!(code, 200, "{r}");
    until("org2 sees the lease active", 20, async || status(o2).await.as_deref() == Some("active")).await;
    let (code, m) = call(&http, o2, "GET", &format!("{path}/metadata"), None).await;
    assert_eq!((code, &m["private_metadata"]), (200, &json!({"where": "org1"})), "{m}");
    until("org3 sees the lease expire", 30, async || status(o3).await.as_deref() == Some("expired")).await;
    let (code, m) = call(&http, o2, "GET", &format!("{path}/metadata"), None).await;
    assert_eq!(code, 403, "read after the lease ended: {m}");

    // Down stops the nodes and removes the namespaces and the bridge.
    let tag = std::fs::read_to_string(net.join("netns")).unwrap().trim().to_string();
    let spaces = || String::from_utf8(Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).unwrap();
    for i in 0..3 {
        assert!(spaces().contains(&format!("{tag}o{i}")), "no namespace {tag}o{i} while up: {}", spaces());
    }
    let out = Command::new(script("testnet-down.sh")).env("LEASEHOLD_NET", &net).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("stopped 3 node(s)"));
    for o in &orgs {
        assert!(!Path::new(&format!("/proc/{}", o.pid)).exists(), "node {} still runs", o.pid);
    }
    assert!(!spaces().contains(&tag), "namespaces left: {}", spaces());
    let bridge = Command::new("ip").args(["link", "show", &format!("{tag}br")]).output().unwrap();
    assert!(!bridge.status.success(), "the bridge is left");
}
