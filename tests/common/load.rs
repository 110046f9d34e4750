//! Steady signed load on a live network that records every tx a node
//! acknowledged, for the chaos tests: whatever was acknowledged must be on
//! every node, exactly once, whatever was killed or cut meanwhile.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use leasehold_chaincode::{canonical, SignedTx, TxBody};
use serde_json::Value;

use super::{is_committed_valid, lease_request, TestNet};

/// What the load saw besides its acknowledgements.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Requests that failed or timed out (a node was down or cut off).
    pub requests_failed: u64,
    /// Txs committed invalid (signed too long before they got through):
    /// neither acknowledged nor lost.
    pub committed_invalid: u64,
}

/// A task sending batches of lease requests, each batch resent until every
/// tx in it is acknowledged, to the nodes named by `set_targets`.
pub struct Load {
    acked: Arc<Mutex<HashSet<String>>>,
    targets: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<LoadReport>,
}

/// Signs lease requests of org2 and org3 on their own nonce counter, ahead
/// of the test's but well inside the nonce window.
struct Signer {
    network_id: String,
    keys: Vec<(String, ed25519_dalek::SigningKey)>,
    nonce: AtomicU64,
}

impl Signer {
    fn sign(&self, org: usize, lease: String, dataset: &str) -> SignedTx {
        let (id, key) = &self.keys[org % self.keys.len()];
        let body = TxBody {
            network_id: self.network_id.clone(),
            org: id.clone(),
            nonce: self.nonce.fetch_add(1, Ordering::Relaxed),
            created_at_ms: leasehold_node::now_ms(),
            payload: lease_request(&lease, dataset),
        };
        body.sign(key)
    }
}

impl Load {
    /// Starts `batch`-tx batches of lease requests on `dataset` (one org1
    /// leases automatically to org2 and org3), sent to every node.
    pub fn start(net: &TestNet, dataset: &str, batch: usize) -> Load {
        let signer = Signer {
            network_id: net.network_id.clone(),
            keys: net.nodes[1..3].iter().map(|n| (n.org.clone(), n.key.clone())).collect(),
            nonce: AtomicU64::new(leasehold_node::now_ms() as u64 * 1000 + 1_000_000),
        };
        let (acked, stop) = (Arc::<Mutex<HashSet<String>>>::default(), Arc::<AtomicBool>::default());
        let targets = Arc::new(Mutex::new(target_urls(net, &(0..net.nodes.len()).collect::<Vec<_>>())));
        let (http, dataset) = (net.http.clone(), dataset.to_string());
        let task = tokio::spawn({
            let (acked, targets, stop) = (acked.clone(), targets.clone(), stop.clone());
            async move {
                let mut report = LoadReport::default();
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let txs: Vec<SignedTx> =
                        (0..batch).map(|i| signer.sign(i, format!("load-{seq}-{i}"), &dataset)).collect();
                    seq += 1;
                    send_until_acknowledged(&http, &targets, &stop, txs, &acked, &mut report).await;
                }
                report
            }
        });
        Load { acked, targets, stop, task }
    }

    /// The nodes the load sends to from now on (those the test can reach).
    pub fn set_targets(&self, net: &TestNet, nodes: &[usize]) {
        *self.targets.lock().unwrap() = target_urls(net, nodes);
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until `more` txs beyond those acknowledged now are; returns how
    /// long that took. Panics after `within`: the network stopped committing.
    pub async fn wait_for_progress(&self, more: usize, within: Duration) -> Duration {
        let (start, goal) = (Instant::now(), self.acked_count() + more);
        while self.acked_count() < goal {
            assert!(start.elapsed() < within, "fewer than {more} txs acknowledged within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        start.elapsed()
    }

    /// Stops sending; returns every acknowledged tx id and the report.
    pub async fn stop(self) -> (HashSet<String>, LoadReport) {
        self.stop.store(true, Ordering::Relaxed);
        let report = self.task.await.expect("the load task panicked");
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        (acked, report)
    }
}

fn target_urls(net: &TestNet, nodes: &[usize]) -> Vec<(String, String)> {
    nodes.iter().map(|i| (net.nodes[*i].url.clone(), net.nodes[*i].token.clone())).collect()
}

/// Sends `txs` round the targets until each is acknowledged: committed
/// valid, or found already committed (its first acknowledgement was lost
/// with a request a kill cut off). Gives up only when the load stops.
async fn send_until_acknowledged(
    http: &reqwest::Client,
    targets: &Mutex<Vec<(String, String)>>,
    stop: &AtomicBool,
    mut txs: Vec<SignedTx>,
    acked: &Mutex<HashSet<String>>,
    report: &mut LoadReport,
) {
    let mut attempt = 0usize;
    while !txs.is_empty() && !stop.load(Ordering::Relaxed) {
        attempt += 1;
        let Some((url, token)) = ({
            let t = targets.lock().unwrap();
            t.get(attempt % t.len().max(1)).cloned()
        }) else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let req = http.post(format!("{url}/v1/txs?wait_ms=2000")).bearer_auth(token).body(canonical::to_bytes(&txs));
        let out = async { req.timeout(Duration::from_secs(4)).send().await?.json::<Vec<Value>>().await }.await;
        let Ok(out) = out else {
            report.requests_failed += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut done = HashSet::new();
        for v in out {
            let id = v["tx_id"].as_str().unwrap_or_default().to_string();
            let reason = format!("{}{}", v["reason"].as_str().unwrap_or(""), v["receipt"]["verdict"]);
            if is_committed_valid(&v) || reason.contains("already committed") {
                acked.lock().unwrap().insert(id.clone());
                done.insert(id);
            } else if v["status"] == "committed" {
                report.committed_invalid += 1;
                done.insert(id);
            }
        }
        txs.retain(|t| !done.contains(&t.id().to_hex()));
    }
}

/// The end of every chaos scenario: the running nodes converge on one head
/// and state root, and each holds every acknowledged tx exactly once.
/// Returns the agreed status.
pub async fn assert_acknowledged_everywhere(net: &TestNet, acked: &HashSet<String>) -> Value {
    let status = net.wait_converged(2, Duration::from_secs(60)).await;
    // Blocks may still come after (a resent tx's late copy, committed as a
    // replay): the nodes are compared at the height they converged on.
    let height = status["height"].as_u64().unwrap();
    let at = |b: &Value| (b["hash"].clone(), b["state_root"].clone());
    let agreed = at(&net.get(net.running()[0], &format!("/v1/blocks/{height}")).await.1);
    for i in net.running() {
        let (code, block) = net.get(i, &format!("/v1/blocks/{height}")).await;
        assert_eq!((code, at(&block)), (200, agreed.clone()), "{} at height {height}", net.nodes[i].org);
        let ids = net.valid_tx_ids(i).await;
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{} applied a tx twice", net.nodes[i].org);
        let lost = acked.iter().filter(|id| !unique.contains(id)).count();
        assert_eq!(lost, 0, "{} lacks {lost} of {} acknowledged txs", net.nodes[i].org, acked.len());
    }
    status
}

/// Stops every node cleanly and runs `leasehold verify` on each store.
pub fn stop_and_verify_all(net: &mut TestNet) {
    for i in 0..net.nodes.len() {
        net.stop(i);
        let out = std::process::Command::new(super::bin())
            .args(["verify", "--data-dir"])
            .arg(net.data_dir(i))
            .output()
            .expect("run verify");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "verify failed on {}: {said}", net.nodes[i].org);
    }
}
