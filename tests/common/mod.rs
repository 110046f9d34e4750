//! A real three-node network for integration tests: `leasehold` processes on
//! loopback ports the OS hands out, in a temporary directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use leasehold_chaincode::{
    canonical, AccessMode, AccessPolicy, Approval, DatasetSpec, DerivedPolicy, Payload, ReleasePolicy, SealedMetadata,
    SignedTx, TxBody,
};
use serde_json::Value;

pub mod disk;
pub mod hosts;
pub mod load;
pub mod ports;
mod rogue;
pub mod runs;
pub mod s3;
pub mod slurm;
#[allow(unused_imports)]
pub use rogue::Rogue;

/// A test that needs root and lacks it says so and skips (returns `Err`),
/// unless `LEASEHOLD_REQUIRE_ROOT=1` (`scripts/chaos.sh` sets it), when it
/// fails instead: a long run must not pass by skipping.
pub fn skip_unless_required<T>(why: &str) -> Result<T, String> {
    assert!(std::env::var_os("LEASEHOLD_REQUIRE_ROOT").is_none(), "{why}, and LEASEHOLD_REQUIRE_ROOT is set");
    Err(why.to_string())
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The `leasehold` binary this test was built with: the copy
/// `scripts/test.sh` made right after the build, or else a hard link, made
/// when this test process first needs it, in a directory of its own. Every
/// checkout shares one target directory, so another checkout's build may
/// replace the binary there while tests run; cargo and the linker write a
/// new file rather than rewrite the old one, so a link keeps its bytes.
/// Runs the `leasehold` binary with `args`, asserts it succeeded, and
/// returns what it printed.
pub fn leasehold_ok(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().expect("run leasehold");
    assert!(out.status.success(), "leasehold {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn bin() -> &'static Path {
    static BIN: OnceLock<(PathBuf, Option<std::fs::File>)> = OnceLock::new();
    let (path, _alive) = BIN.get_or_init(|| {
        // `scripts/test.sh` copies the binary the moment it is built and
        // names the copy here: nothing that is built later can touch it.
        if let Some(copy) = std::env::var_os("LEASEHOLD_TEST_BIN") {
            return (PathBuf::from(copy), None);
        }
        const PREFIX: &str = "leasehold-test-bin.";
        let tmp = std::env::temp_dir();
        // Each test process holds a lock on its directory's `alive` file
        // while it runs: a directory whose lock can be taken is stale.
        for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(PREFIX) {
                // No `alive` file at all: stale once it is a minute old (a
                // younger one may be a process between mkdir and lock).
                let old = || {
                    e.metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().unwrap_or_default().as_secs() > 60)
                };
                let stale = match std::fs::File::open(e.path().join("alive")) {
                    Ok(f) => f.try_lock().is_ok(),
                    Err(_) => old(),
                };
                if stale {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir); // a stale one of a reused pid
        std::fs::create_dir_all(&dir).expect("create the test binary directory");
        let alive = std::fs::File::create(dir.join("alive")).expect("create the liveness file");
        alive.try_lock().expect("lock the liveness file");
        let dst = dir.join("leasehold");
        let src = Path::new(env!("CARGO_BIN_EXE_leasehold"));
        if std::fs::hard_link(src, &dst).is_err() {
            std::fs::copy(src, &dst).expect("copy the leasehold binary");
        }
        (dst, Some(alive))
    });
    path
}

pub struct NodeProc {
    pub org: String,
    pub dir: PathBuf,
    pub url: String,
    pub child: Option<Child>,
    pub key: ed25519_dalek::SigningKey,
    /// The admin bearer token `init` wrote.
    pub token: String,
}

pub struct TestNet {
    pub dir: tempfile::TempDir,
    /// Every node's p2p then API port, held until the network is dropped, so
    /// a restarted node finds its ports still free.
    pub ports: Vec<ports::Port>,
    pub nodes: Vec<NodeProc>,
    pub network_id: String,
    pub http: reqwest::Client,
    nonce: u64,
}

impl TestNet {
    /// Initialises and starts `n` orgs, and waits until they agree on a leader.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, |_| {}).await
    }

    /// Like `start`, editing each node's TOML config before it starts.
    pub async fn start_with(n: usize, edit: impl Fn(&mut String)) -> Self {
        let mut net = Self::init_with(n, edit);
        for i in 0..n {
            net.spawn(i);
        }
        net.wait_for_leader(Duration::from_secs(30)).await;
        net
    }

    /// Initialises `n` orgs, editing each node's TOML config, and starts none.
    pub fn init_with(n: usize, edit: impl Fn(&mut String)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = ports::reserve(2 * n);
        let ports: Vec<u16> = held.iter().map(|p| p.number).collect();
        let join = |p: &[u16]| p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
        let out = Command::new(bin())
            .args(["init", "--orgs", &n.to_string(), "--out"])
            .arg(dir.path())
            .args(["--p2p-ports", &join(&ports[..n]), "--api-ports", &join(&ports[n..])])
            .output()
            .expect("run init");
        assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        let dirs = (0..n).map(|i| dir.path().join(format!("org{}", i + 1))).collect::<Vec<_>>();
        for d in &dirs {
            let mut toml = std::fs::read_to_string(d.join("node.toml")).unwrap();
            edit(&mut toml);
            std::fs::write(d.join("node.toml"), toml).unwrap();
        }
        let apis = ports[n..].to_vec();
        Self::of_orgs(dir, held, &dirs, &apis)
    }

    /// A network of the orgs in `dirs` (each with `node.toml`, `keys/` and
    /// `admin.token`), their APIs on `api_ports`; none is started.
    pub fn of_orgs(dir: tempfile::TempDir, held: Vec<ports::Port>, dirs: &[PathBuf], api_ports: &[u16]) -> Self {
        let mut nodes = Vec::new();
        let mut network_id = String::new();
        for (ndir, port) in dirs.iter().zip(api_ports) {
            let cfg = leasehold_node::config::NodeConfig::load(&ndir.join("node.toml")).unwrap();
            let genesis: Value = serde_json::from_slice(&std::fs::read(&cfg.genesis).unwrap()).unwrap();
            network_id = genesis["network_id"].as_str().unwrap().to_string();
            nodes.push(NodeProc {
                org: cfg.org.clone(),
                dir: ndir.clone(),
                url: format!("http://127.0.0.1:{port}"),
                child: None,
                key: cfg.signing_key().unwrap(),
                token: std::fs::read_to_string(ndir.join("admin.token")).unwrap(),
            });
        }
        TestNet {
            dir,
            ports: held,
            nodes,
            network_id,
            http: reqwest::Client::new(),
            nonce: leasehold_node::now_ms() as u64 * 1000,
        }
    }

    pub fn spawn(&mut self, i: usize) {
        self.spawn_under(i, &[]);
    }

    /// Starts node `i` as the last arguments of `wrapper` (`unshare ...`);
    /// plainly when `wrapper` is empty.
    pub fn spawn_under(&mut self, i: usize, wrapper: &[&str]) {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(node.dir.join("node.log")).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let child = cmd
            .args(["start", "--config"])
            .arg(node.dir.join("node.toml"))
            .env("RUST_LOG", "info,openraft=warn,libp2p=warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn node");
        node.child = Some(child);
    }

    /// SIGKILL: the node gets no chance to clean up.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
            let status = c.wait().unwrap();
            assert!(status.success(), "node {} exited with {status} on SIGTERM", self.nodes[i].org);
        }
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].dir.join("node.log")).unwrap_or_default()
    }

    pub async fn status(&self, i: usize) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/v1/status", self.nodes[i].url))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].child.is_some()).collect()
    }

    /// Waits until every running node names the same leader; returns its index.
    pub async fn wait_for_leader(&self, within: Duration) -> usize {
        let start = Instant::now();
        while start.elapsed() < within {
            let mut leaders = Vec::new();
            for i in self.running() {
                leaders.push(self.status(i).await.and_then(|s| s["leader"].as_str().map(String::from)));
            }
            if let Some(Some(l)) = leaders.first() {
                if leaders.iter().all(|x| x.as_deref() == Some(l.as_str())) {
                    if let Some(i) = self.nodes.iter().position(|n| &n.org == l) {
                        if self.nodes[i].child.is_some() {
                            return i;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no agreed leader within {within:?}; log of org1:\n{}", self.log(0));
    }

    /// Waits until every running node reports the same height, head and
    /// state root, at least `min_height`; returns that status.
    pub async fn wait_converged(&self, min_height: u64, within: Duration) -> Value {
        let start = Instant::now();
        let mut last = Vec::new();
        while start.elapsed() < within {
            last.clear();
            for i in self.running() {
                last.push(self.status(i).await);
            }
            let key = |s: &Option<Value>| {
                s.as_ref().map(|s| (s["height"].as_u64(), s["head_hash"].clone(), s["state_root"].clone()))
            };
            let first = key(&last[0]);
            if let Some((Some(h), _, _)) = &first {
                if *h >= min_height && last.iter().all(|s| key(s) == first) {
                    return last[0].clone().unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nodes did not converge within {within:?}: {last:?}");
    }

    pub fn sign(&mut self, org: usize, payload: Payload) -> SignedTx {
        self.nonce += 1;
        let body = TxBody {
            network_id: self.network_id.clone(),
            org: self.nodes[org].org.clone(),
            nonce: self.nonce,
            created_at_ms: leasehold_node::now_ms(),
            payload,
        };
        body.sign(&self.nodes[org].key)
    }

    /// Posts raw signed txs to node `i`; returns the HTTP status and the
    /// per-tx outcomes.
    pub async fn submit(&self, i: usize, txs: &[SignedTx], wait_ms: u64) -> reqwest::Result<(u16, Vec<Value>)> {
        let r = self
            .http
            .post(format!("{}/v1/txs?wait_ms={wait_ms}", self.nodes[i].url))
            .bearer_auth(&self.nodes[i].token)
            .body(canonical::to_bytes(&txs.to_vec()))
            .timeout(Duration::from_millis(wait_ms + 5_000))
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await?))
    }

    pub async fn get(&self, i: usize, path: &str) -> (u16, Value) {
        self.call(i, "GET", path, None, None).await
    }

    /// The ids of every valid tx in node `i`'s chain, in order, read block by
    /// block through the API, each page starting after the last block seen.
    pub async fn valid_tx_ids(&self, i: usize) -> Vec<String> {
        let height = self.status(i).await.expect("status")["height"].as_u64().unwrap();
        let (mut ids, mut next) = (Vec::new(), 1);
        while next <= height {
            let (code, blocks) = self.get(i, &format!("/v1/blocks?from={next}&limit=100")).await;
            assert_eq!(code, 200, "{blocks}");
            let blocks = blocks.as_array().unwrap();
            assert!(!blocks.is_empty(), "node {i} returned no block from height {next}");
            for b in blocks {
                assert_eq!(b["height"].as_u64(), Some(next), "blocks come in order, none skipped");
                next += 1;
                let valid = b["txs"].as_array().unwrap().iter().filter(|t| t["valid"] == true);
                ids.extend(valid.map(|t| t["tx_id"].as_str().unwrap().to_string()));
            }
        }
        ids
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("data")
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
        // A failed test shows each node's last words beside its panic: CI
        // keeps nothing else, and a race that shows once in fifty runs
        // cannot be diagnosed afterwards from the assertion alone.
        if std::thread::panicking() {
            for i in 0..self.nodes.len() {
                let log = self.log(i);
                let tail: Vec<&str> = log.lines().rev().take(LOG_TAIL_LINES).collect();
                eprintln!("--- last {} lines of {}'s log ---", tail.len(), self.nodes[i].org);
                tail.iter().rev().for_each(|l| eprintln!("{l}"));
            }
        }
    }
}

/// How much of each node's log a failed test prints.
const LOG_TAIL_LINES: usize = 80;

/// A dataset owned by org1 that org2 and org3 lease automatically.
pub fn auto_dataset(id: &str) -> Payload {
    let allowed = vec!["org2".to_string(), "org3".to_string()];
    Payload::RegisterDataset {
        id: id.into(),
        spec: DatasetSpec {
            title: format!("dataset {id}"),
            description: String::new(),
            tags: vec!["test".into()],
            content_hash: [1; 32],
            size_bytes: 1,
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
        },
        derived_from_run: None,
    }
}

pub fn lease_request(lease: &str, dataset: &str) -> Payload {
    Payload::RequestLease {
        lease_id: lease.into(),
        dataset_id: dataset.into(),
        duration_ms: 600_000,
        purpose: "test".into(),
    }
}

pub fn is_committed_valid(v: &Value) -> bool {
    v["status"] == "committed" && v["receipt"]["verdict"] == "Valid"
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

impl TestNet {
    /// A JSON request to node `i` as `token` (the admin's when `None`).
    pub async fn call(
        &self,
        i: usize,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.nodes[i].url);
        let mut req =
            self.http.request(method.parse().unwrap(), url).bearer_auth(token.unwrap_or(&self.nodes[i].token));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

impl TestNet {
    /// A request with a raw body (a workflow.yaml, a file) to node `i` as its admin.
    pub async fn call_raw(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.nodes[i].url);
        let req = self.http.request(method.parse().unwrap(), url).bearer_auth(&self.nodes[i].token);
        let r = req.header("content-type", content_type).body(body).send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls node `i` until the lease has `want` as its status.
    pub async fn wait_lease(&self, i: usize, lease: &str, want: &str) -> Value {
        for _ in 0..200 {
            let (code, l) = self.call(i, "GET", &format!("/v1/leases/{lease}"), None, None).await;
            if code == 200 && l["status"] == want {
                return l;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("lease {lease} never became {want} on node {i}");
    }

    /// Polls node `i` until `path` answers 200: a write made through one
    /// node reaches the others a moment later.
    pub async fn wait_found(&self, i: usize, path: &str) -> Value {
        for _ in 0..300 {
            let (code, v) = self.call(i, "GET", path, None, None).await;
            if code == 200 {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{path} was not found on node {i} within 15 s");
    }
}
