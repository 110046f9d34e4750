//! The node's TOML config and its key files.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use leasehold_workflow::exec::ExecutorConfig;
pub use leasehold_workflow::runner::WorkflowConfig;

use crate::error::{NodeError, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub org: String,
    /// Paths are relative to the config file's directory unless absolute.
    pub data_dir: PathBuf,
    pub genesis: PathBuf,
    pub keys_dir: PathBuf,
    pub p2p_listen: String,
    pub api_listen: String,
    pub peers: Vec<PeerConfig>,
    #[serde(default)]
    pub block: BlockConfig,
    #[serde(default)]
    pub raft: RaftConfig,
    /// How long a write waits for its commit before answering "pending".
    #[serde(default = "default_commit_wait_ms")]
    pub commit_wait_ms: u64,
    /// Free space kept on the data directory's disk: below it the node
    /// refuses new writes and new raft log entries (see `disk`), so that
    /// RocksDB never meets a full disk mid-write.
    #[serde(default = "default_min_free_disk_mib")]
    pub min_free_disk_mib: u64,
    #[serde(default)]
    pub workflow: WorkflowConfig,
    /// Where workflow steps run: this host (`local`, the default) or a
    /// Slurm cluster (`slurm`; see docs/OPERATIONS.md).
    #[serde(default, skip_serializing_if = "ExecutorConfig::is_local")]
    pub executor: ExecutorConfig,
    /// The object store this org's datasets may live in (`s3://` URLs;
    /// see docs/OPERATIONS.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Config>,
    /// Where `POST /v1/backups` writes backups; by default `backups`
    /// beside the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_dir: Option<PathBuf>,
    /// For an org that joined after the genesis: the raft node id the
    /// network gave it, until its ledger holds its joining.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
}

/// `[s3]`: an S3 service, or a server that speaks its protocol. The node
/// needs to list and read the buckets its datasets name, nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The server's URL; unset, AWS's for `region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default = "default_s3_region")]
    pub region: String,
    pub access_key_id: String,
    /// A file holding the secret access key, readable by the node's user
    /// alone (0600): the node refuses to start otherwise.
    pub secret_access_key_file: PathBuf,
    /// Plain HTTP to `endpoint`: for a server on loopback or a private network.
    #[serde(default)]
    pub allow_http: bool,
}

fn default_s3_region() -> String {
    "us-east-1".into()
}

fn default_commit_wait_ms() -> u64 {
    5_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub org: String,
    pub peer_id: String,
    pub addr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockConfig {
    /// A block is cut when it holds this many transactions...
    pub max_txs: usize,
    /// ...or when this long has passed since its first transaction arrived
    /// and the pipeline has room for it. 0 (the default): at once, with
    /// whatever is queued; blocks then grow by themselves under load, while
    /// every one of the `max_inflight` slots is busy.
    pub timeout_ms: u64,
    /// Proposals in flight through raft at once.
    pub max_inflight: usize,
    /// Transactions waiting to be ordered; beyond this, submissions are refused.
    pub mempool_capacity: usize,
    /// A block closes before its transactions pass this many bytes, so one
    /// raft entry stays far below the network's 256 MiB frame.
    #[serde(default = "default_block_bytes")]
    pub max_bytes: usize,
}

fn default_block_bytes() -> usize {
    8 << 20
}

impl Default for BlockConfig {
    fn default() -> Self {
        Self {
            max_txs: 2_000,
            timeout_ms: 0,
            max_inflight: 4,
            mempool_capacity: 100_000,
            max_bytes: default_block_bytes(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftConfig {
    pub heartbeat_ms: u64,
    /// A follower that hears no leader for a random time in
    /// [election_min_ms, election_max_ms] stands for election. openraft
    /// makes the others refuse its vote until election_max_ms has passed
    /// since they last heard the leader (the leader lease), so a first
    /// candidate is often refused and a second timeout follows: a lost
    /// leader is replaced in about election_min_ms + election_max_ms. See
    /// docs/RELIABILITY.md for the figures behind the defaults.
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot after this many applied entries. A snapshot is a
    /// full copy of the ledger, so this trades catch-up time for CPU.
    pub snapshot_every: u64,
    /// Raft log entries kept behind a snapshot, for followers that lag a little.
    #[serde(default = "default_keep_logs")]
    pub keep_logs: u64,
    /// A follower appends a new proposal only if its time is at most this
    /// far ahead of its own clock...
    #[serde(default = "default_max_future_ms")]
    pub max_future_ms: u64,
    /// ...and at most this far behind it (a leader holding time still).
    #[serde(default = "default_max_past_ms")]
    pub max_past_ms: u64,
    /// A tx the leader acknowledged but did not order within this long is
    /// sent to every node; not ordered within as long again, the leader is
    /// taken to censor this node: see `censor`.
    #[serde(default = "default_censorship_bound_ms")]
    pub censorship_bound_ms: u64,
    /// How long a leader found censoring is ignored (neither followed nor
    /// voted for), so another is elected and it cannot win back at once.
    #[serde(default = "default_censor_shun_ms")]
    pub censor_shun_ms: u64,
}

fn default_censorship_bound_ms() -> u64 {
    3_000
}

fn default_censor_shun_ms() -> u64 {
    60_000
}

fn default_min_free_disk_mib() -> u64 {
    256
}

fn default_max_future_ms() -> u64 {
    2_000
}

fn default_max_past_ms() -> u64 {
    30_000
}

fn default_keep_logs() -> u64 {
    1_000
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_min_ms: 400,
            election_max_ms: 600,
            snapshot_every: 20_000,
            keep_logs: 1_000,
            max_future_ms: default_max_future_ms(),
            max_past_ms: default_max_past_ms(),
            censorship_bound_ms: default_censorship_bound_ms(),
            censor_shun_ms: default_censor_shun_ms(),
        }
    }
}

impl NodeConfig {
    /// Reads a config and makes its relative paths absolute.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|e| NodeError::file(path, e))?;
        let mut cfg: NodeConfig = toml::from_str(&text).map_err(|e| NodeError::file(path, e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let slurm = match &mut cfg.executor {
            ExecutorConfig::Slurm(s) => vec![&mut s.shared_dir].into_iter().chain(s.slurm_conf.as_mut()),
            ExecutorConfig::Local => vec![].into_iter().chain(None),
        };
        let paths = [&mut cfg.data_dir, &mut cfg.genesis, &mut cfg.keys_dir].into_iter().chain(cfg.backup_dir.as_mut());
        let s3 = cfg.s3.as_mut().map(|s| &mut s.secret_access_key_file);
        for p in paths.chain(slurm).chain(s3) {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }

    pub fn backups_dir(&self) -> PathBuf {
        self.backup_dir.clone().unwrap_or_else(|| self.data_dir.with_file_name("backups"))
    }

    /// Where to dial each other org: the config's address if it names one,
    /// else the one the genesis lists for it.
    pub fn peer_addrs(
        &self,
        genesis: &leasehold_chaincode::Genesis,
    ) -> Result<Vec<(libp2p::PeerId, libp2p::Multiaddr)>> {
        let parse_addr =
            |s: &str| s.parse::<libp2p::Multiaddr>().map_err(|e| NodeError::Config(format!("address {s}: {e}")));
        let parse_peer =
            |s: &str| s.parse::<libp2p::PeerId>().map_err(|e| NodeError::Config(format!("peer id {s}: {e}")));
        let mut peers = Vec::new();
        for o in genesis.orgs.iter().filter(|o| o.id != self.org) {
            let addr = match self.peers.iter().find(|p| p.org == o.id) {
                Some(p) if p.peer_id != o.peer_id => {
                    return Err(NodeError::Config(format!(
                        "peer {} in the config is not the genesis's peer of {}",
                        p.peer_id, o.id
                    )))
                }
                Some(p) => p.addr.as_str(),
                None if o.p2p_addr.is_empty() => {
                    return Err(NodeError::Config(format!(
                        "neither the config nor the genesis gives an address for {}",
                        o.id
                    )))
                }
                None => o.p2p_addr.as_str(),
            };
            peers.push((parse_peer(&o.peer_id)?, parse_addr(addr)?));
        }
        Ok(peers)
    }

    pub fn signing_key(&self) -> Result<SigningKey> {
        Ok(SigningKey::from_bytes(&read_secret(&self.keys_dir.join(SIGNING_KEY_FILE))?))
    }

    pub fn x25519_secret(&self) -> Result<[u8; 32]> {
        read_secret(&self.keys_dir.join(X25519_KEY_FILE))
    }

    /// `[s3]` with its secret key, read from its file (which others may
    /// not read), if the config has one.
    pub fn s3_with_secret(&self) -> Result<Option<(S3Config, String)>> {
        let Some(s3) = &self.s3 else { return Ok(None) };
        let path = &s3.secret_access_key_file;
        let meta = fs::metadata(path).map_err(|e| NodeError::file(path, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(NodeError::file(path, "the secret key file is readable by group or others; chmod 600 it"));
        }
        let secret = fs::read_to_string(path).map_err(|e| NodeError::file(path, e))?.trim().to_string();
        if secret.is_empty() {
            return Err(NodeError::file(path, "the secret key file is empty"));
        }
        Ok(Some((s3.clone(), secret)))
    }

    pub fn p2p_keypair(&self) -> Result<libp2p::identity::Keypair> {
        let secret = read_secret(&self.keys_dir.join(P2P_KEY_FILE))?;
        libp2p::identity::Keypair::ed25519_from_bytes(secret).map_err(|e| NodeError::Config(e.to_string()))
    }
}

pub const SIGNING_KEY_FILE: &str = "signing.key";
pub const X25519_KEY_FILE: &str = "x25519.key";
pub const P2P_KEY_FILE: &str = "p2p.key";

/// Writes a secret as hex to a new file that only its owner can read.
pub fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| NodeError::file(path, e))?;
    f.write_all(hex::encode(secret).as_bytes()).map_err(|e| NodeError::file(path, e))?;
    // On disk before anything (a card, a genesis) names its public half.
    f.sync_all().map_err(|e| NodeError::file(path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| NodeError::file(dir, e))
}

/// Reads a hex secret, refusing a file that others can read.
pub fn read_secret(path: &Path) -> Result<[u8; 32]> {
    let meta = fs::metadata(path).map_err(|e| NodeError::file(path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(NodeError::file(path, "key file is readable by group or others; chmod 600 it"));
    }
    let text = fs::read_to_string(path).map_err(|e| NodeError::file(path, e))?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|e| NodeError::file(path, e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "org = \"org1\"\ndata_dir = \"data\"\ngenesis = \"g.json\"\nkeys_dir = \"keys\"\n\
                        p2p_listen = \"/ip4/127.0.0.1/tcp/1\"\napi_listen = \"127.0.0.1:2\"\npeers = []\n";

    #[test]
    fn the_executor_is_local_unless_node_toml_names_a_cluster() {
        let cfg: NodeConfig = toml::from_str(BASE).unwrap();
        assert!(cfg.executor.is_local());
        assert!(!toml::to_string(&cfg).unwrap().contains("[executor]"), "the default is not written out");
        let slurm = format!("{BASE}[executor]\nkind = \"slurm\"\nshared_dir = \"/shared\"\npartition = \"p\"\n");
        let cfg: NodeConfig = toml::from_str(&slurm).unwrap();
        let ExecutorConfig::Slurm(s) = &cfg.executor else { panic!("{:?}", cfg.executor) };
        assert_eq!(
            (s.shared_dir.to_str(), s.partition.as_deref(), s.poll_interval_ms),
            (Some("/shared"), Some("p"), 250)
        );
        let back: NodeConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back.executor, cfg.executor);
        let typo = format!("{BASE}[executor]\nkind = \"slurm\"\nshared_dir = \"/s\"\npartiton = \"p\"\n");
        let err = toml::from_str::<NodeConfig>(&typo).unwrap_err().to_string();
        assert!(err.contains("partiton"), "{err}");
        let none = format!("{BASE}[executor]\nkind = \"kubernetes\"\n");
        assert!(toml::from_str::<NodeConfig>(&none).is_err());
    }
}
