//! `leasehold bench`: committed tx/s and commit latency of signed lease
//! transactions against a running network, at fixed offered loads and at
//! saturation.
//!
//! Transactions are signed before each level starts, so the client's signing
//! does not count against the network. Each HTTP request carries a batch and
//! waits for every tx in it to commit on the receiving node; a tx's latency
//! is its request's round trip.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use leasehold_chaincode::{
    canonical, AccessMode, AccessPolicy, Approval, DatasetSpec, DerivedPolicy, Payload, ReleasePolicy, SealedMetadata,
    SignedTx, TxBody,
};
use leasehold_node::cli::BenchArgs;
use leasehold_node::config::NodeConfig;
use leasehold_node::Submission;
use tokio::sync::Mutex;

struct Org {
    id: String,
    url: String,
    token: String,
    key: ed25519_dalek::SigningKey,
}

struct Signer {
    network_id: String,
    nonce: u64,
}

impl Signer {
    fn sign(&mut self, org: &Org, payload: Payload) -> SignedTx {
        self.nonce += 1;
        TxBody {
            network_id: self.network_id.clone(),
            org: org.id.clone(),
            nonce: self.nonce,
            created_at_ms: leasehold_node::now_ms(),
            payload,
        }
        .sign(&org.key)
    }
}

fn load_orgs(args: &BenchArgs) -> anyhow::Result<(Vec<Org>, String)> {
    let genesis: leasehold_chaincode::Genesis =
        serde_json::from_slice(&std::fs::read(args.net.join("genesis.json")).context("reading genesis.json")?)?;
    let mut orgs = Vec::new();
    for o in &genesis.orgs {
        let cfg = NodeConfig::load(&args.net.join(&o.id).join("node.toml"))?;
        let token = std::fs::read_to_string(args.net.join(&o.id).join("admin.token")).context("reading admin.token")?;
        orgs.push(Org { id: o.id.clone(), url: format!("http://{}", cfg.api_listen), token, key: cfg.signing_key()? });
    }
    Ok((orgs, genesis.network_id))
}

async fn post(http: &reqwest::Client, (url, token): (&str, &str), txs: &[SignedTx]) -> anyhow::Result<Vec<Submission>> {
    let body = canonical::to_bytes(&txs.to_vec());
    let resp = http.post(format!("{url}/v1/txs?wait_ms=30000")).bearer_auth(token).body(body).send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    anyhow::ensure!(status.is_success(), "submit failed: {status} {text}");
    Ok(serde_json::from_str::<Vec<serde_json::Value>>(&text)?
        .into_iter()
        .map(|v| match v["status"].as_str() {
            Some("committed") => Submission::Committed {
                tx_id: String::new(),
                receipt: serde_json::from_value(v["receipt"].clone()).expect("receipt"),
            },
            Some("pending") => Submission::Pending { tx_id: String::new() },
            _ => Submission::Rejected { tx_id: String::new(), reason: v["reason"].as_str().unwrap_or_default().into() },
        })
        .collect())
}

/// A dataset every org may lease automatically, so each request is a grant.
async fn setup(http: &reqwest::Client, orgs: &[Org], signer: &mut Signer, tag: &str) -> anyhow::Result<String> {
    let id = format!("bench-{tag}");
    let allowed: Vec<String> = orgs[1..].iter().map(|o| o.id.clone()).collect();
    let spec = DatasetSpec {
        title: "bench".into(),
        description: String::new(),
        tags: vec![],
        content_hash: [0; 32],
        size_bytes: 0,
        public_metadata: "{}".into(),
        private_metadata: SealedMetadata { nonce: [0; 12], ciphertext: vec![0; 32] },
        policy: AccessPolicy {
            allowed_orgs: allowed.clone(),
            max_lease_ms: 3_600_000,
            approval: Approval::Automatic,
            exclusive: false,
            require_tests: false,
            derived: DerivedPolicy::Allow,
            access: AccessMode::Files,
            release: ReleasePolicy::default(),
        },
    };
    let tx = signer.sign(&orgs[0], Payload::RegisterDataset { id: id.clone(), spec, derived_from_run: None });
    let out = post(http, (&orgs[0].url, &orgs[0].token), &[tx]).await?;
    anyhow::ensure!(
        matches!(&out[0], Submission::Committed { receipt, .. } if receipt.verdict == leasehold_chaincode::Verdict::Valid),
        "setup failed: {out:?}"
    );
    Ok(id)
}

fn lease_txs(orgs: &[Org], signer: &mut Signer, dataset: &str, level: usize, n: usize) -> Vec<SignedTx> {
    (0..n)
        .map(|i| {
            let lessee = &orgs[1 + i % (orgs.len() - 1)];
            let payload = Payload::RequestLease {
                lease_id: format!("{dataset}-{level}-{i}"),
                dataset_id: dataset.into(),
                duration_ms: 600_000,
                purpose: "bench".into(),
            };
            signer.sign(lessee, payload)
        })
        .collect()
}

struct LevelResult {
    offered: u64,
    committed: usize,
    invalid: usize,
    tps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Sends `txs` in batches: paced at `rate` tx/s, or closed-loop with
/// `workers` concurrent requests when `rate` is 0.
async fn level(
    http: &reqwest::Client,
    orgs: &[Org],
    txs: Vec<SignedTx>,
    rate: u64,
    batch: usize,
) -> anyhow::Result<LevelResult> {
    let batch = if rate > 0 { ((rate / 100) as usize).clamp(1, batch) } else { batch };
    let chunks: Vec<Vec<SignedTx>> = txs.chunks(batch).map(|c| c.to_vec()).collect();
    let queue = Arc::new(Mutex::new(chunks.into_iter().enumerate().collect::<Vec<_>>()));
    queue.lock().await.reverse();
    let lat = Arc::new(Mutex::new(Vec::new()));
    let counts = Arc::new(Mutex::new((0usize, 0usize)));
    let start = Instant::now();
    let workers = if rate > 0 { 64 } else { 8 };
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (queue, lat, counts, http) = (queue.clone(), lat.clone(), counts.clone(), http.clone());
        let urls: Vec<(String, String)> = orgs.iter().map(|o| (o.url.clone(), o.token.clone())).collect();
        handles.push(tokio::spawn(async move {
            loop {
                let Some((i, chunk)) = queue.lock().await.pop() else {
                    return Ok::<_, anyhow::Error>(());
                };
                if rate > 0 {
                    let due = start + Duration::from_secs_f64((i * chunk.len()) as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                let (url, token) = &urls[i % urls.len()];
                let out = post(&http, (url, token), &chunk).await?;
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                let mut c = counts.lock().await;
                for s in &out {
                    match s {
                        Submission::Committed { receipt, .. }
                            if receipt.verdict == leasehold_chaincode::Verdict::Valid =>
                        {
                            c.0 += 1
                        }
                        _ => c.1 += 1,
                    }
                }
                lat.lock().await.extend(std::iter::repeat_n(ms, out.len()));
            }
        }));
    }
    for h in handles {
        h.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut l = lat.lock().await.clone();
    l.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))).copied().unwrap_or(0.0);
    let (committed, invalid) = *counts.lock().await;
    Ok(LevelResult {
        offered: rate,
        committed,
        invalid,
        tps: committed as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (orgs, network_id) = load_orgs(&args)?;
    anyhow::ensure!(orgs.len() >= 2, "the bench needs at least two orgs");
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let mut signer = Signer { network_id, nonce: leasehold_node::now_ms() as u64 * 1000 };
    let tag = leasehold_node::now_ms().to_string();
    let dataset = setup(&http, &orgs, &mut signer, &tag).await?;
    println!("| offered tx/s | committed tx/s | p50 ms | p99 ms | committed | not committed |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for (n, rate) in args.rates.iter().enumerate() {
        let count = if *rate == 0 { 30_000 * args.seconds as usize } else { (*rate * args.seconds) as usize };
        let txs = lease_txs(&orgs, &mut signer, &dataset, n, count);
        let r = level(&http, &orgs, txs, *rate, args.batch).await?;
        let offered = if r.offered == 0 { "saturation".to_string() } else { r.offered.to_string() };
        println!("| {offered} | {:.0} | {:.1} | {:.1} | {} | {} |", r.tps, r.p50_ms, r.p99_ms, r.committed, r.invalid);
    }
    Ok(())
}
