//! Keys stay with the owner, against three real nodes: a lessee (or an
//! allowed org that never leased) holds nothing that opens a dataset's
//! metadata, every disclosure is decided by the owner's node before the
//! lease ends, and an owner that cannot be reached discloses nothing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use leasehold_chaincode::{query, SealedMetadata};
use leasehold_node::crypto;
use leasehold_node::ledger::store::Store;
use serde_json::{json, Value};

const SECRET: &str = "hunter2-PLAINTEXT-5e1f0b";

async fn register(net: &TestNet, id: &str, approval: &str, allowed: &[&str], private: &Value) -> (u16, Value) {
    let body = json!({
        "id": id, "title": id,
        "policy": {"allowed_orgs": allowed, "max_lease_ms": 3_600_000, "approval": approval},
        "private_metadata": private,
    });
    net.call(0, "POST", "/v1/datasets", None, Some(body)).await
}

async fn wait_dataset(net: &TestNet, i: usize, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while net.call(i, "GET", &format!("/v1/datasets/{id}"), None, None).await.0 != 200 {
        assert!(Instant::now() < deadline, "dataset {id} never reached node {i}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// org2 requests `dataset` and org1 grants it for `ms`; the lease's JSON.
async fn lease(net: &TestNet, dataset: &str, ms: u64) -> Value {
    let (code, r) =
        net.call(1, "POST", &format!("/v1/datasets/{dataset}/leases"), None, Some(json!({"duration_ms": ms}))).await;
    assert_eq!(code, 201, "{r}");
    let id = r["resource"]["id"].as_str().unwrap().to_string();
    net.wait_lease(0, &id, "requested").await;
    let (code, g) =
        net.call(0, "POST", &format!("/v1/leases/{id}/grant"), None, Some(json!({"duration_ms": ms}))).await;
    assert_eq!(code, 200, "{g}");
    net.wait_lease(1, &id, "active").await
}

/// Every 32 bytes an org holds that could be a key: its key files decoded,
/// and every 32-byte window of every file of its node up to 1 MiB (its
/// keys, config, users, logs and the smaller ledger files).
fn candidate_keys(node_dir: &Path) -> Vec<[u8; 32]> {
    let mut keys = Vec::new();
    for f in files_under(node_dir) {
        let bytes = std::fs::read(&f).unwrap();
        if let Ok(k) = hex::decode(String::from_utf8_lossy(&bytes).trim()) {
            keys.extend(<[u8; 32]>::try_from(k.as_slice()));
        }
        if bytes.len() <= 1 << 20 {
            keys.extend(bytes.windows(32).map(|w| <[u8; 32]>::try_from(w).unwrap()));
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Whether `key`, as the data key itself or as an owner secret to derive
/// it from, opens the metadata.
fn opens(key: &[u8; 32], id: &str, sealed: &SealedMetadata) -> bool {
    crypto::open(key, id, 1, sealed).is_some() || crypto::open(&crypto::data_key(key, id, 1), id, 1, sealed).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_a_former_lessee_nor_an_allowed_org_holds_anything_that_opens_the_metadata() {
    let mut net = TestNet::start(3).await;
    let private = json!({"password": SECRET});
    assert_eq!(register(&net, "sealed", "owner", &["org2"], &private).await.0, 201);
    assert_eq!(register(&net, "auto", "automatic", &["org2", "org3"], &private).await.0, 201);
    wait_dataset(&net, 1, "sealed").await;
    wait_dataset(&net, 2, "auto").await;
    // org2 leases and reads `sealed`; org3 may lease `auto` at any time but never does.
    // Long enough for the read below on a loaded machine.
    let l = lease(&net, "sealed", 6_000).await;
    let id = l["id"].as_str().unwrap();
    let (code, m) = net.call(1, "GET", &format!("/v1/leases/{id}/metadata"), None, None).await;
    assert_eq!((code, &m["private_metadata"]), (200, &private), "{m}");
    let wait = l["expires_at_ms"].as_i64().unwrap() - leasehold_node::now_ms() + 300;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    assert_eq!(net.call(1, "GET", &format!("/v1/leases/{id}/metadata"), None, None).await.0, 403);
    for i in 0..3 {
        net.stop(i);
    }

    for (org, dataset) in [(1, "sealed"), (2, "auto")] {
        let dir = net.nodes[org].dir.clone();
        // The org's own full copy of the ledger holds the sealed metadata.
        let store = Store::open_read_only(&net.data_dir(org).join("ledger")).unwrap();
        let sealed = query::dataset_version(&store, dataset, 1).unwrap().unwrap().spec.private_metadata;
        drop(store);
        let keys = candidate_keys(&dir);
        assert!(keys.len() > 1000, "the attack tried only {} candidates", keys.len());
        let opened = keys.iter().filter(|k| opens(k, dataset, &sealed)).count();
        assert_eq!(opened, 0, "{} opened {dataset} with a key it holds", net.nodes[org].org);
        for f in files_under(&dir) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "plaintext kept in {}", f.display());
        }
        // The attack is sound: with the owner's secret it opens at once.
        let owner = leasehold_node::config::read_secret(&net.nodes[0].dir.join("keys/x25519.key")).unwrap();
        assert!(opens(&owner, dataset, &sealed), "the owner's key opens {dataset}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_across_expiry_are_all_decided_before_it_and_audited_by_the_owner() {
    let net = TestNet::start(3).await;
    assert_eq!(register(&net, "tide", "owner", &["org2"], &json!({"password": SECRET})).await.0, 201);
    wait_dataset(&net, 1, "tide").await;
    let mut leases = Vec::new();
    // Staggered expiries, the first far enough off that all five are granted
    // and active before it on a loaded machine.
    for ms in [5_000, 5_500, 6_000, 6_500, 7_000] {
        leases.push(lease(&net, "tide", ms).await);
    }
    let ids: Vec<String> = leases.iter().map(|l| l["id"].as_str().unwrap().to_string()).collect();
    let last_expiry = leases.iter().map(|l| l["expires_at_ms"].as_i64().unwrap()).max().unwrap();
    let net = std::sync::Arc::new(net);
    let readers: Vec<_> = (0..8)
        .map(|r| {
            let (net, ids) = (net.clone(), ids.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                let mut n = r;
                while leasehold_node::now_ms() < last_expiry + 500 {
                    let id = &ids[n % ids.len()];
                    n += 1;
                    let (code, m) = net.call(1, "GET", &format!("/v1/leases/{id}/metadata"), None, None).await;
                    answers.push((code, m));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for r in readers {
        answers.extend(r.await.unwrap());
    }
    let disclosed: Vec<&Value> = answers.iter().filter(|(c, _)| *c == 200).map(|(_, m)| m).collect();
    let refused = answers.iter().filter(|(c, _)| *c == 403).count();
    assert!(disclosed.len() > 20 && refused > 20, "{} disclosed, {refused} refused", disclosed.len());

    // 429: the owner's per-lease disclosure limit (node/src/limits.rs) turns
    // the eight readers' excess away before deciding anything.
    let odd: Vec<u16> = answers.iter().map(|(c, _)| *c).filter(|c| ![200, 403, 429].contains(c)).collect();
    assert!(odd.is_empty(), "only answers, refusals or 'too many': {odd:?}");
    // Each answer: decided before its expiry (fixed-width UTC timestamps
    // order as text), and its audit record is on the owner's ledger, before
    // the expiry too.
    let mut logs = std::collections::HashMap::new();
    for id in &ids {
        let mut all = Vec::new();
        loop {
            let path = format!("/v1/leases/{id}/access-log?from={}&limit=100", all.len());
            let page = net.call(0, "GET", &path, None, None).await.1.as_array().cloned().unwrap();
            if page.is_empty() {
                break;
            }
            all.extend(page);
        }
        assert!(all.iter().enumerate().all(|(i, r)| r["seq"] == i), "pages join without gaps");
        logs.insert(id.clone(), Value::Array(all));
    }
    for m in disclosed {
        assert!(m["decided_at"].as_str().unwrap() < m["expires_at"].as_str().unwrap(), "{m}");
        let lease = leases.iter().find(|l| l["id"] == m["lease_id"]).unwrap();
        let log = logs[m["lease_id"].as_str().unwrap()].as_array().unwrap();
        let rec = log.iter().find(|r| r["tx_id"] == m["audit_tx_id"]).unwrap_or_else(|| panic!("no audit for {m}"));
        assert_eq!(
            (rec["org"].as_str(), rec["reader"].as_str(), rec["version"].as_u64()),
            (Some("org2"), Some("admin"), Some(1)),
            "{rec}"
        );
        assert!(rec["at"].as_str().unwrap() < lease["expires_at"].as_str().unwrap(), "{rec} {lease}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_owner_stopped_the_lessee_gets_503_and_nothing_else() {
    let mut net = TestNet::start(3).await;
    assert_eq!(register(&net, "away", "owner", &["org2"], &json!({"password": SECRET})).await.0, 201);
    wait_dataset(&net, 1, "away").await;
    let l = lease(&net, "away", 600_000).await;
    let id = l["id"].as_str().unwrap();
    assert_eq!(net.call(1, "GET", &format!("/v1/leases/{id}/metadata"), None, None).await.0, 200);
    net.stop(0);
    let (code, p) = net.call(1, "GET", &format!("/v1/leases/{id}/metadata"), None, None).await;
    assert_eq!(code, 503, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("org1's node cannot be reached"), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("nothing was disclosed"), "{p}");
    assert!(!p.to_string().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_or_retried_registrations_leave_no_key_and_change_none() {
    let net = TestNet::start(3).await;
    let first = json!({"password": SECRET});
    assert_eq!(register(&net, "once", "owner", &["org2"], &first).await.0, 201);
    // A retry with other metadata is refused, and the first stays readable as it was.
    let (code, p) = register(&net, "once", "owner", &["org2"], &json!({"password": "other"})).await;
    assert_eq!(code, 409, "{p}");
    let bad =
        |policy: Value, title: &str| json!({"id": "bad", "title": title, "policy": policy, "private_metadata": first});
    for body in [
        bad(json!({"allowed_orgs": ["org2"], "max_lease_ms": 0}), "t"),
        bad(json!({"allowed_orgs": ["org2"], "max_lease_ms": 365u64 * 24 * 3_600_000}), "t"),
        bad(json!({"allowed_orgs": ["org9"], "max_lease_ms": 1000}), "t"),
        bad(json!({"allowed_orgs": ["org2"], "max_lease_ms": 1000}), "  "),
    ] {
        let (code, p) = net.call(0, "POST", "/v1/datasets", None, Some(body)).await;
        assert_eq!(code, 422, "{p}");
    }
    wait_dataset(&net, 1, "once").await;
    let l = lease(&net, "once", 600_000).await;
    let (code, m) = net.call(1, "GET", &format!("/v1/leases/{}/metadata", l["id"].as_str().unwrap()), None, None).await;
    assert_eq!((code, &m["private_metadata"]), (200, &first), "{m}");
    // No node keeps a key store: keys are derived, so none can be orphaned.
    for i in 0..3 {
        let stores: Vec<_> =
            files_under(&net.nodes[i].dir).into_iter().filter(|f| f.to_string_lossy().contains("keystore")).collect();
        assert!(stores.is_empty(), "{stores:?}");
    }
}
