//! The whole life of a lease, against three real nodes: private metadata is
//! readable by the lessee's org while, and only while, its lease is active.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const SECRET: &str = "hunter2-PLAINTEXT-7d3f9a";

async fn wait_status(net: &TestNet, node: usize, lease: &str, want: &str) -> Value {
    for _ in 0..300 {
        let (code, l) = net.call(node, "GET", &format!("/v1/leases/{lease}"), None, None).await;
        if code == 200 && l["status"] == want {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("lease {lease} never became {want} on node {node}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_gates_private_metadata_from_grant_to_expiry_and_revocation() {
    let mut net = TestNet::start(3).await;
    let private =
        json!({"location": "s3://org1-secure/iris.csv", "password": SECRET, "schema": ["sepal_length", "species"]});
    // 1. org1 registers a dataset; org2 sees the catalog entry but no secret.
    let (code, created) = net
        .call(
            0,
            "POST",
            "/v1/datasets",
            None,
            Some(json!({
                "id": "iris", "title": "Iris", "tags": ["flowers"],
                "policy": {"allowed_orgs": ["org2", "org3"], "max_lease_ms": 3_600_000},
                "public_metadata": {"rows": 150}, "private_metadata": private,
            })),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    // Committed on org1's node; org2's node applies the same block shortly.
    let mut seen = Value::Null;
    for _ in 0..100 {
        let (code, body) = net.call(1, "GET", "/v1/datasets/iris", None, None).await;
        if code == 200 {
            seen = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen["owner"], "org1");
    assert!(!seen.to_string().contains(SECRET));

    // 2. org2 requests; before the grant it cannot read.
    let (code, req) = net
        .call(1, "POST", "/v1/datasets/iris/leases", None, Some(json!({"duration_ms": 60_000, "purpose": "k-means"})))
        .await;
    assert_eq!(code, 201, "{req}");
    let lease = req["resource"]["id"].as_str().unwrap().to_string();
    let (code, p) = net.call(1, "GET", &format!("/v1/leases/{lease}/metadata"), None, None).await;
    assert_eq!(
        (code, p["detail"].as_str().unwrap()),
        (403, format!("lease {lease} has not been granted yet").as_str())
    );
    // org1 grants it for 6 seconds: long enough for org2's read below on a
    // loaded machine, short enough to wait out.
    wait_status(&net, 0, &lease, "requested").await;
    let (code, g) =
        net.call(0, "POST", &format!("/v1/leases/{lease}/grant"), None, Some(json!({"duration_ms": 6000}))).await;
    assert_eq!(code, 200, "{g}");
    let granted = wait_status(&net, 1, &lease, "active").await;
    let (code, m) = net.call(1, "GET", &format!("/v1/leases/{lease}/metadata"), None, None).await;
    assert_eq!(code, 200, "{m}");
    assert_eq!(m["private_metadata"], private, "org2 reads the exact plaintext");
    // org3 still cannot, through its own node (once that node has the grant).
    wait_status(&net, 2, &lease, "active").await;
    let (code, p) = net.call(2, "GET", &format!("/v1/leases/{lease}/metadata"), None, None).await;
    assert_eq!(
        (code, p["detail"].as_str().unwrap()),
        (403, format!("lease {lease} is held by org2, not by org3").as_str())
    );
    // The read is in the audit trail on every node.
    let mut log = Value::Null;
    for _ in 0..100 {
        log = net.call(2, "GET", &format!("/v1/leases/{lease}/access-log"), None, None).await.1;
        if log.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log.as_array().map(|a| a.len()), Some(1), "{log}");
    assert_eq!(log[0]["org"], "org2");

    // 3. After expiry: 403 with the time, and no transaction was needed.
    let expires_ms = granted["expires_at_ms"].as_i64().unwrap();
    let wait = expires_ms - leasehold_node::now_ms() + 200;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    let (code, p) = net.call(1, "GET", &format!("/v1/leases/{lease}/metadata"), None, None).await;
    assert_eq!(code, 403, "{p}");
    assert_eq!(
        p["detail"].as_str().unwrap(),
        format!("lease {lease} expired at {}", granted["expires_at"].as_str().unwrap())
    );
    let (_, hist) = net.call(1, "GET", &format!("/v1/history/lease/{lease}"), None, None).await;
    assert_eq!(hist.as_array().unwrap().len(), 2, "requested and granted; expiry is not a transaction: {hist}");

    // A revoked lease is refused at once.
    let (_, req) = net.call(2, "POST", "/v1/datasets/iris/leases", None, Some(json!({"duration_ms": 600_000}))).await;
    let l2 = req["resource"]["id"].as_str().unwrap().to_string();
    wait_status(&net, 0, &l2, "requested").await;
    assert_eq!(net.call(0, "POST", &format!("/v1/leases/{l2}/grant"), None, None).await.0, 200);
    wait_status(&net, 2, &l2, "active").await;
    assert_eq!(net.call(2, "GET", &format!("/v1/leases/{l2}/metadata"), None, None).await.0, 200);
    let (code, r) =
        net.call(0, "POST", &format!("/v1/leases/{l2}/revoke"), None, Some(json!({"reason": "contract ended"}))).await;
    assert_eq!(code, 200, "{r}");
    wait_status(&net, 2, &l2, "revoked").await;
    let (code, p) = net.call(2, "GET", &format!("/v1/leases/{l2}/metadata"), None, None).await;
    assert_eq!(code, 403);
    assert!(p["detail"].as_str().unwrap().contains("was revoked at"), "{p}");
    assert!(p["detail"].as_str().unwrap().ends_with("contract ended"));

    // 4. No file any node wrote contains the plaintext: not its store, its
    // log, its keys nor its config.
    for i in 0..3 {
        net.stop(i);
    }
    let written = files_under(net.dir.path());
    for part in ["data/ledger", "node.log", "keys/signing.key", "node.toml", "genesis.json"] {
        assert!(written.iter().any(|f| f.to_string_lossy().contains(part)), "the scan covers {part}");
    }
    for f in written {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "plaintext found in {}", f.display());
    }
}

/// A notebook that reads its lease's metadata from 64 tasks at once gets 64
/// answers: reads of one lease by one user that wait together share one
/// audit record, which counts them. Every read is still on the ledger
/// before its answer (the records' `reads` add up to 64), in a few records
/// rather than 64 transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_of_a_lease_share_their_audit_records() {
    const READS: u64 = 64;
    let net = TestNet::start(3).await;
    let body = json!({
        "id": "iris", "title": "Iris",
        "policy": {"allowed_orgs": ["org2"], "max_lease_ms": 3_600_000},
        "private_metadata": {"password": SECRET},
    });
    let (code, created) = net.call(0, "POST", "/v1/datasets", None, Some(body)).await;
    assert_eq!(code, 201, "{created}");
    net.wait_found(1, "/v1/datasets/iris").await;
    let (code, req) =
        net.call(1, "POST", "/v1/datasets/iris/leases", None, Some(json!({"duration_ms": 600_000}))).await;
    assert_eq!(code, 201, "{req}");
    let lease = req["resource"]["id"].as_str().unwrap().to_string();
    wait_status(&net, 0, &lease, "requested").await;
    assert_eq!(net.call(0, "POST", &format!("/v1/leases/{lease}/grant"), None, None).await.0, 200);
    wait_status(&net, 1, &lease, "active").await;

    let path = format!("/v1/leases/{lease}/metadata");
    let reads = futures::future::join_all((0..READS).map(|_| net.call(1, "GET", &path, None, None))).await;
    for (code, m) in &reads {
        assert_eq!(*code, 200, "{m}");
        assert_eq!(m["private_metadata"]["password"], SECRET, "{m}");
    }
    // Each answer came after its record committed on the owner's node.
    let (code, log) = net.call(0, "GET", &format!("/v1/leases/{lease}/access-log"), None, None).await;
    assert_eq!(code, 200, "{log}");
    let records = log.as_array().unwrap();
    let counted: u64 = records.iter().map(|r| r["reads"].as_u64().expect("a record counts its reads")).sum();
    assert_eq!(counted, READS, "{log}");
    assert!(
        records.len() < READS as usize / 2,
        "{} records for {READS} reads that waited together: {log}",
        records.len()
    );
    let txs: std::collections::HashSet<_> = reads.iter().map(|(_, m)| m["audit_tx_id"].clone()).collect();
    assert_eq!(txs.len(), records.len(), "each answer names the tx of its record: {log}");
}
