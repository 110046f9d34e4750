//! `/metrics` on real nodes: it parses as the Prometheus (OpenMetrics)
//! text format, and its counters move as the network works.

mod common;

use std::collections::BTreeMap;

use common::runs::*;
use common::*;
use serde_json::json;

/// Parses the exposition text strictly enough to fail on anything a
/// Prometheus scraper would refuse: every sample's family is declared with
/// a known type first, names and labels are well formed, values are numbers.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
    };
    let mut types = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let mut ended = false;
    for line in text.lines() {
        assert!(!ended, "a line after # EOF: {line}");
        if line == "# EOF" {
            ended = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(valid_name(name), "{line}");
            assert!(["counter", "gauge", "histogram", "summary", "unknown", "info"].contains(&kind), "{line}");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "bad name in {line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).unwrap_or_else(|| panic!("{line}"));
            for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line}"));
                assert!(valid_name(k), "bad label name in {line}");
                assert!(!v.trim_end_matches('"').contains('\n'), "{line}");
            }
        }
        let family = ["_bucket", "_sum", "_count", "_total"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(types.contains_key(family) || types.contains_key(name), "sample of an undeclared family: {line}");
        let v: f64 = value.replace("+Inf", "inf").parse().unwrap_or_else(|_| panic!("bad value in {line}"));
        samples.insert(series.to_string(), v);
    }
    assert!(ended, "no # EOF");
    samples
}

async fn scrape(net: &TestNet, i: usize) -> BTreeMap<String, f64> {
    let resp = net.http.get(format!("{}/metrics", net.nodes[i].url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    parse(&resp.text().await.unwrap())
}

fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_under_load() {
    let net = TestNet::start(3).await;
    let before: Vec<_> = futures::future::join_all((0..3).map(|i| scrape(&net, i))).await;
    let leaders: f64 = before.iter().map(|m| value(m, "leasehold_raft_leader")).sum();
    assert_eq!(leaders, 1.0, "exactly one node leads");
    // Load: a dataset, a lease on it, a run that fetches its files, and a
    // batch of registrations.
    let lease = leased_dataset(&net, "measured", 600_000).await;
    let yaml = format!(
        "cmd_mode: shell\njobs:\n- command: wc -l < d/dir/data.csv\n  volumes: [{{id: {}, name: d, path: /home/jovyan/d}}]\n",
        lease["id"].as_str().unwrap()
    );
    let (code, r) = net.call_raw(1, "POST", "/v1/runs", yaml.into_bytes(), "application/yaml").await;
    assert_eq!(code, 201, "{r}");
    assert_eq!(ended_on(&net, 1, r["id"].as_str().unwrap(), 60).await["status"], "succeeded");
    for i in 0..10 {
        let body = json!({"id": format!("m{i}"), "title": "t", "policy": {"allowed_orgs": [], "max_lease_ms": 60_000}, "private_metadata": {}});
        assert_eq!(net.call(0, "POST", "/v1/datasets", None, Some(body)).await.0, 201);
    }
    // Any method name a client makes up is counted as `other`, not as a label of its own.
    let odd = reqwest::Method::from_bytes(b"BREW").unwrap();
    net.http.request(odd, format!("{}/v1/datasets", net.nodes[0].url)).send().await.unwrap();
    // The lease gauges are counted at most every 5 s.
    tokio::time::sleep(leasehold_node::metrics::LEASE_COUNT_INTERVAL).await;
    let (owner, lessee) = (scrape(&net, 0).await, scrape(&net, 1).await);
    let lease_id = lease["id"].as_str().unwrap();
    assert!(owner.keys().all(|k| !k.contains(lease_id) && !k.contains("BREW")), "{owner:?}");
    assert!(owner.keys().any(|k| k.contains(r#"route="/v1/leases/{id}""#)), "routes by template: {owner:?}");
    assert!(owner.keys().any(|k| k.contains(r#"method="other""#)), "{owner:?}");
    assert!(value(&owner, "leasehold_height") >= value(&before[0], "leasehold_height") + 12.0, "{owner:?}");
    let posts = r#"leasehold_api_requests_total{route="/v1/datasets",method="POST",status="201"}"#;
    assert_eq!(value(&owner, posts) - value(&before[0], posts), 11.0);
    let commits = "leasehold_commit_latency_seconds_count";
    assert!(value(&owner, commits) >= value(&before[0], commits) + 11.0, "{owner:?}");
    assert!(value(&owner, r#"leasehold_txs_committed_total{kind="grant_lease"}"#) >= 1.0);
    assert_eq!(value(&owner, r#"leasehold_leases{status="active"}"#), 1.0);
    let bytes = DATA.len() as f64;
    assert_eq!(value(&owner, r#"leasehold_data_plane_bytes_total{kind="served"}"#), bytes);
    assert_eq!(value(&lessee, r#"leasehold_data_plane_bytes_total{kind="fetched"}"#), bytes);
    assert_eq!(value(&lessee, r#"leasehold_runs{status="succeeded"}"#), 1.0);
    // RocksDB's memory as it counts it: the memtables hold the blocks just
    // written, within their budget.
    let memtables = value(&owner, r#"leasehold_storage_memory_bytes{kind="memtables"}"#);
    assert!(memtables > 0.0 && memtables <= (64 << 20) as f64, "{owner:?}");
    for kind in ["table_readers", "block_cache"] {
        assert!(owner.contains_key(&format!(r#"leasehold_storage_memory_bytes{{kind="{kind}"}}"#)), "{owner:?}");
    }
}
