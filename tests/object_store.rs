//! Datasets whose files stay in an object store: a real S3-protocol server
//! (SeaweedFS, `common/s3.rs`, which checks every request's signature) and
//! three real nodes. org1's `node.toml` names the server with read-only
//! credentials, org2's with a wrong secret, org3's not at all.
//!
//! org1 registers a prefix of three objects (one of 200 MiB) with the CLI;
//! org2 leases it and runs a workflow whose sha256 of every file matches
//! the bucket's bytes. An object changed after registration is refused by
//! org1's node, by name, and the lessee's run fails saying so. A bucket
//! that does not exist, a prefix with nothing under it, a URL that climbs
//! out, wrong credentials and no store at all are each refused at
//! registration, naming `from`, with nothing committed. A compute-to-data
//! run reads a bucket-backed dataset at its owner. The reader's secret is
//! in no node's files (logs, ledger, RocksDB) and no API answer.

mod common;

use std::process::Command;

use common::runs::*;
use common::s3::{S3Server, READER_SECRET};
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const BUCKET: &str = "lh-data";
const BIG_BYTES: u64 = 200 << 20;

fn big_byte(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// sha256 of the 200 MiB object, computed as it is written.
fn big_sha256() -> String {
    let mut h = Sha256::new();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut at = 0;
    while at < BIG_BYTES {
        let n = (BIG_BYTES - at).min(1 << 20);
        buf.clear();
        buf.extend((at..at + n).map(big_byte));
        h.update(&buf);
        at += n;
    }
    hex::encode(h.finalize())
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Every answer the test got, to scan for the secret at the end.
#[derive(Default)]
struct Seen(std::sync::Mutex<String>);

impl Seen {
    fn keep(&self, v: &Value) -> Value {
        self.0.lock().unwrap().push_str(&v.to_string());
        v.clone()
    }
}

async fn submit(net: &TestNet, node: usize, yaml: &str) -> String {
    let (code, r) = net.call_raw(node, "POST", "/v1/runs", yaml.as_bytes().to_vec(), "application/yaml").await;
    assert_eq!(code, 201, "{r}");
    r["id"].as_str().unwrap().to_string()
}

/// org2 (node 1) leases `id` from org1; granted at once by its policy.
async fn lease(net: &TestNet, id: &str) -> String {
    net.wait_found(1, &format!("/v1/datasets/{id}")).await;
    let req = json!({"duration_ms": 600_000, "purpose": "test"});
    let (code, r) = net.call(1, "POST", &format!("/v1/datasets/{id}/leases"), None, Some(req)).await;
    assert_eq!(code, 201, "{r}");
    let lease = r["resource"]["id"].as_str().unwrap().to_string();
    net.wait_lease(1, &lease, "active").await;
    lease
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_in_an_object_store_are_served_checked_and_keep_their_secret() {
    let Some(s3) = S3Server::start().await else { return };
    let (good, wrong) = (s3.node_toml(true), s3.node_toml(false));
    let net = TestNet::start_with(3, |t| match () {
        _ if t.contains("org = \"org1\"") => t.push_str(&good),
        _ if t.contains("org = \"org2\"") => t.push_str(&wrong),
        _ => {}
    })
    .await;
    let seen = Seen::default();
    a_prefix_registered_by_reference_is_read_by_a_lessee_byte_for_byte(&net, &s3, &seen).await;
    an_object_changed_after_registration_is_refused_by_name(&net, &s3, &seen).await;
    a_bucket_that_cannot_be_read_is_refused_at_registration(&net, &s3, &seen).await;
    a_compute_run_reads_a_bucket_backed_dataset_at_its_owner(&net, &s3, &seen).await;
    the_secret_is_in_no_file_of_any_node_and_no_answer(&net, &seen);
}

async fn a_prefix_registered_by_reference_is_read_by_a_lessee_byte_for_byte(net: &TestNet, s3: &S3Server, seen: &Seen) {
    let (a, b) = (b"id,amount\n1,10\n2,20\n".to_vec(), b"notes\n".to_vec());
    s3.put(BUCKET, "sales/2024/a.csv", a.clone()).await;
    s3.put(BUCKET, "sales/2024/sub/b.txt", b.clone()).await;
    s3.put_large(BUCKET, "sales/2024/big.bin", BIG_BYTES, big_byte).await;
    // Beside the prefix, not under it: not part of the dataset.
    s3.put(BUCKET, "sales/2023/old.csv", b"old".to_vec()).await;
    s3.put(BUCKET, "sales/20240/x.csv", b"sibling".to_vec()).await;
    let token = net.nodes[0].dir.join("admin.token");
    let args = [
        "dataset",
        "add",
        "--from",
        "s3://lh-data/sales/2024",
        "--title",
        "Sales 2024",
        "--id",
        "sales",
        "--allow",
        "org2",
        "--automatic",
        "--url",
        &net.nodes[0].url,
        "--token-file",
        path_str(&token),
    ];
    let out = Command::new(bin()).args(args).output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{printed}{}\n{}", String::from_utf8_lossy(&out.stderr), s3.logs());
    let ds: Value = seen.keep(&serde_json::from_str(&printed).unwrap());
    assert_eq!(ds["size_bytes"], BIG_BYTES + (a.len() + b.len()) as u64, "{ds}");
    let (big, a_hash, b_hash) = (big_sha256(), sha256(&a), sha256(&b));
    let manifest = format!(
        "leasehold-manifest-v1\n{a_hash} {} a.csv\n{big} {BIG_BYTES} big.bin\n{b_hash} {} sub/b.txt\n",
        a.len(),
        b.len()
    );
    assert_eq!(ds["content_hash"], sha256(manifest.as_bytes()), "the ledger holds the hash of the bucket's bytes");
    let lease = lease(net, "sales").await;
    let files = seen.keep(&net.wait_found(1, "/v1/datasets/sales/files").await);
    assert_eq!(files["files"].as_array().map(Vec::len), Some(3), "{files}");
    let yaml = format!(
        "cmd_mode: shell\njobs:\n- command: cd /home/jovyan/d && sha256sum a.csv big.bin sub/b.txt\n  \
         volumes: [{{id: {lease}, name: d, path: /home/jovyan/d}}]\n"
    );
    let id = submit(net, 1, &yaml).await;
    let run = seen.keep(&ended_on(net, 1, &id, 180).await);
    let log = log_on(net, 1, &id).await;
    seen.0.lock().unwrap().push_str(&log);
    assert_eq!(run["status"], "succeeded", "{run}\n{log}");
    for line in [format!("{a_hash}  a.csv"), format!("{big}  big.bin"), format!("{b_hash}  sub/b.txt")] {
        assert!(log.contains(&line), "{line:?} is not in the job's output:\n{log}");
    }
}

async fn an_object_changed_after_registration_is_refused_by_name(net: &TestNet, s3: &S3Server, seen: &Seen) {
    s3.put(BUCKET, "changing/x.csv", b"a,b\n1,2\n".to_vec()).await;
    let body = json!({"id": "changing", "title": "t", "from": "s3://lh-data/changing", "private_metadata": {},
                      "policy": {"allowed_orgs": ["org2"], "max_lease_ms": 600_000, "approval": "automatic"}});
    let (code, r) = net.call(0, "POST", "/v1/datasets", None, Some(body)).await;
    assert_eq!(code, 201, "{}", seen.keep(&r));
    let lease = lease(net, "changing").await;
    s3.put(BUCKET, "changing/x.csv", b"a,b\n1,3\n".to_vec()).await;
    let yaml = format!(
        "jobs:\n- command: cat /home/jovyan/d/x.csv\n  volumes: [{{id: {lease}, name: d, path: /home/jovyan/d}}]\n"
    );
    let id = submit(net, 1, &yaml).await;
    let run = seen.keep(&ended_on(net, 1, &id, 60).await);
    assert_eq!(run["status"], "failed", "{run}");
    let reason = run["reason"].as_str().unwrap();
    let why = "s3://lh-data/changing/x.csv changed since version 1 of changing was registered";
    assert!(reason.contains("org1 refused") && reason.contains(why), "{reason}");
    let log = log_on(net, 1, &id).await;
    assert!(!log.contains("1,3"), "no byte of the changed object reached the lessee: {log}");
    assert!(net.log(0).contains(why), "the owner's log says why it refused");
}

async fn a_bucket_that_cannot_be_read_is_refused_at_registration(net: &TestNet, s3: &S3Server, seen: &Seen) {
    let register = |node: usize, id: &str, from: &str| {
        let body = json!({"id": id, "title": "t", "from": from, "private_metadata": {},
                          "policy": {"allowed_orgs": ["org2"], "max_lease_ms": 600_000}});
        async move { net.call(node, "POST", "/v1/datasets", None, Some(body)).await }
    };
    let cases = [
        (0, "s3://no-such-bucket/x", "no such bucket"),
        (0, "s3://lh-data/nothing-here", "no objects under this prefix"),
        (0, "s3://lh-data/../sales", "'..'"),
        (0, "https://lh-data/sales", "s3://bucket/prefix"),
        (1, "s3://lh-data/sales/2024", "refused this node's credentials"),
        (2, "s3://lh-data/sales/2024", "no object store configured"),
    ];
    for (node, from, why) in cases {
        let (code, p) = register(node, "refused", from).await;
        seen.keep(&p);
        assert_eq!(code, 422, "{from} at node {node}: {p}");
        assert_eq!(p["field"], "from", "{p}");
        assert!(p["detail"].as_str().unwrap().contains(why), "{from}: {p}");
    }
    let (code, _) = net.call(0, "GET", "/v1/datasets/refused", None, None).await;
    assert_eq!(code, 404, "nothing was registered");
    let (_, history) = net.call(0, "GET", "/v1/history/dataset/refused", None, None).await;
    assert!(history.as_array().is_none_or(Vec::is_empty), "no tx names it: {history}");
    let _ = s3;
}

async fn a_compute_run_reads_a_bucket_backed_dataset_at_its_owner(net: &TestNet, s3: &S3Server, seen: &Seen) {
    s3.put(BUCKET, "compute/rows.csv", b"a\nb\nc\nd\n".to_vec()).await;
    let policy = json!({"allowed_orgs": ["org2"], "max_lease_ms": 600_000, "approval": "automatic",
                        "access": "compute", "release": {"approval": false, "logs": "live"}});
    let body =
        json!({"id": "rows", "title": "t", "from": "s3://lh-data/compute", "private_metadata": {}, "policy": policy});
    let (code, r) = net.call(0, "POST", "/v1/datasets", None, Some(body)).await;
    assert_eq!(code, 201, "{}", seen.keep(&r));
    let lease = lease(net, "rows").await;
    let yaml = format!(
        "cmd_mode: shell\njobs:\n- command: wc -l < d/rows.csv > $OUTPUT_DIR/count.txt\n  \
         volumes: [{{id: {lease}, name: d, path: /home/jovyan/d}}]\n"
    );
    let id = submit(net, 1, &yaml).await;
    let done = seen.keep(&ended_on(net, 1, &id, 90).await);
    assert_eq!(done["status"], "succeeded", "{done}\n{}", net.log(0));
    let at_owner = net.data_dir(0).join("runs").join(&id).join("output/count.txt");
    assert_eq!(std::fs::read_to_string(&at_owner).unwrap().trim(), "4", "{}", at_owner.display());
}

fn the_secret_is_in_no_file_of_any_node_and_no_answer(net: &TestNet, seen: &Seen) {
    assert!(!seen.0.lock().unwrap().contains(READER_SECRET), "an API answer carried the secret");
    for node in &net.nodes {
        for file in files_under(&node.dir) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let found = bytes.windows(READER_SECRET.len()).any(|w| w == READER_SECRET.as_bytes());
            assert!(!found, "{} holds the object store's secret", file.display());
        }
    }
}

/// Milliseconds from a run's first fetch line to its "verified" line.
async fn fetch_ms(net: &TestNet, node: usize, id: &str) -> i64 {
    let log = log_on(net, node, id).await;
    let lines: Vec<Value> =
        log.lines().filter_map(|l| serde_json::from_str(l.strip_prefix("data:")?.trim()).ok()).collect();
    let at = |what: &str| {
        lines
            .iter()
            .find(|l| l["text"].as_str().is_some_and(|t| t.contains(what)))
            .map(|l| l["time_ms"].as_i64().unwrap())
    };
    at("verified against the ledger").unwrap() - at("(0%)").unwrap()
}

/// docs/BENCHMARKS.md: the same 200 MiB file fetched by a lessee from the
/// owner's store and from the owner's bucket, alternated, three each.
/// `cargo test --release --test object_store measure -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: docs/BENCHMARKS.md"]
async fn measure_fetch_throughput_from_the_store_and_from_the_bucket() {
    let Some(s3) = S3Server::start().await else { return };
    let good = s3.node_toml(true);
    let net = TestNet::start_with(3, |t| t.push_str(&good)).await;
    s3.put_large(BUCKET, "bench/big.bin", BIG_BYTES, big_byte).await;
    let bytes: Vec<u8> = (0..BIG_BYTES).map(big_byte).collect();
    let (code, r) = net.call_raw(0, "PUT", "/v1/datasets/local/files/big.bin", bytes, "application/octet-stream").await;
    assert_eq!(code, 201, "{r}");
    let policy = json!({"allowed_orgs": ["org2"], "max_lease_ms": 600_000, "approval": "automatic"});
    for (id, from) in [("local", None), ("bucket", Some("s3://lh-data/bench"))] {
        let body = json!({"id": id, "title": "t", "from": from, "private_metadata": {}, "policy": policy});
        let (code, r) = net.call(0, "POST", "/v1/datasets", None, Some(body)).await;
        assert_eq!(code, 201, "{r}");
    }
    let mut took: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    for _ in 0..3 {
        for id in ["local", "bucket"] {
            let lease = lease(&net, id).await;
            let yaml =
                format!("jobs:\n- command: 'true'\n  volumes: [{{id: {lease}, name: d, path: /home/jovyan/d}}]\n");
            let run = submit(&net, 1, &yaml).await;
            assert_eq!(ended_on(&net, 1, &run, 300).await["status"], "succeeded");
            took.entry(id).or_default().push(fetch_ms(&net, 1, &run).await);
        }
    }
    for (id, ms) in &took {
        let mut sorted = ms.clone();
        sorted.sort();
        let mibs: Vec<String> = ms.iter().map(|t| format!("{:.0}", 200_000.0 / *t as f64)).collect();
        println!("{id}: {ms:?} ms = {mibs:?} MiB/s; median {} ms", sorted[1]);
    }
}
