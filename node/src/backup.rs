//! Backups of a running node, and restoring one.
//!
//! A backup is a directory shaped like a data directory, so `verify` reads
//! it as it reads a stopped node: `ledger/` is a RocksDB checkpoint (the
//! blocks, state, raft log and vote at one instant), `datasets/` the owner's
//! files, `users.json` the token hashes, and `backup.json` what it holds.
//! It holds no key: keys are backed up with the org's other secrets.
//! Leased files (`cache/`) are left out, since a lessee may keep nothing past
//! a lease; so are run directories and snapshots, which the node rebuilds.
//!
//! Restoring puts a node back to an older point of a log it already voted
//! and acknowledged past. Raft is safe only if a node never forgets either,
//! so a restored node is fenced (see [`crate::fence`]): it neither stands
//! for election nor grants a vote until it has caught up with an elected
//! leader.

use std::fs;
use std::path::{Path, PathBuf};

use openraft::Vote;
use rocksdb::checkpoint::Checkpoint;
use serde::{Deserialize, Serialize};

use crate::config::NodeConfig;
use crate::error::{NodeError, Result};
use crate::ledger::store::{Store, CF_RAFT_META};
use crate::raft::NodeId;
use leasehold_files::durable;
use leasehold_files::Manifest;

/// The file that describes a backup; written last.
pub const MANIFEST: &str = "backup.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub network_id: String,
    pub org: String,
    pub height: u64,
    pub head_hash: String,
    pub state_root: String,
    pub taken_at_ms: i64,
    /// Dataset files (and their manifests) in the backup.
    pub files: u64,
}

/// A backup written to `path`.
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub path: PathBuf,
    #[serde(flatten)]
    pub manifest: BackupManifest,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> NodeError + '_ {
    move |e| NodeError::file(path, e)
}

impl crate::handle::NodeHandle {
    /// Takes a backup of this running node into its backups directory.
    pub async fn backup(&self) -> Result<Backup> {
        // Owned guards go into the blocking task: a cancelled request must
        // not free the way for a second backup while the first runs.
        let one = self
            .inner
            .backing_up
            .clone()
            .try_lock_owned()
            .map_err(|_| NodeError::Conflict("a backup is being taken; try again once it is done".into()))?;
        self.inner.consensus.check_disk()?;
        let adopting = self.inner.adopting.clone().write_owned().await;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _one = one;
            let cfg = &inner.cfg;
            let until_linked = move || drop(adopting);
            take(&inner.ledger.store, &cfg.data_dir, &cfg.backups_dir(), &cfg.org, crate::clock::now_ms(), until_linked)
        })
        .await
        .map_err(|e| NodeError::Unavailable(format!("the backup task failed: {e}")))?
    }

    /// Where the fence of a node restored from a backup stands; `None` once
    /// it has caught up (it neither votes nor stands for election until then).
    pub fn restore_fence(&self) -> Option<&'static str> {
        self.inner.consensus.fence().phase()
    }
}

/// Takes a backup of `store` and the files in `data_dir` into a new
/// directory under `backups_dir`: written beside, synced, then renamed in.
/// `linked` runs once the files are in (the caller holds writes naming new
/// files off until then).
pub fn take(
    store: &Store,
    data_dir: &Path,
    backups_dir: &Path,
    org: &str,
    now_ms: i64,
    linked: impl FnOnce(),
) -> Result<Backup> {
    durable::create_dirs(backups_dir).map_err(io(backups_dir))?;
    let part = backups_dir.join(format!(".{now_ms}.part"));
    if part.exists() {
        fs::remove_dir_all(&part).map_err(io(&part))?;
    }
    let taken = write_part(store, data_dir, &part, org, now_ms, linked);
    let manifest = match taken {
        Ok(m) => m,
        Err(e) => {
            // A checkpoint's hard links would keep files compaction deleted.
            let _ = fs::remove_dir_all(&part);
            return Err(e);
        }
    };
    let path = backups_dir.join(format!("{}-{now_ms}", manifest.height));
    durable::rename(&part, &path).map_err(io(&path))?;
    Ok(Backup { path, manifest })
}

fn write_part(
    store: &Store,
    data_dir: &Path,
    part: &Path,
    org: &str,
    now_ms: i64,
    linked: impl FnOnce(),
) -> Result<BackupManifest> {
    fs::create_dir(part).map_err(io(part))?;
    set_private(part)?;
    Checkpoint::new(store.db())?.create_checkpoint(part.join("ledger"))?;
    let (head, network_id) = {
        let copy = Store::open_read_only(&part.join("ledger"))?;
        crate::ledger::snapshot::check_not_interrupted(&copy)
            .map_err(|e| NodeError::Unavailable(format!("no backup while a snapshot is installed ({e}); retry")))?;
        (copy.head()?, crate::ledger::verify::stored_genesis(&copy)?.1.network_id)
    };
    // The caller holds off writes that name new files until those are
    // adopted (`adopting`), so every file the checkpoint names is here.
    let files = link_tree(&data_dir.join("datasets"), &part.join("datasets"))?;
    let users = data_dir.join(crate::users::USERS_FILE);
    if users.exists() {
        fs::copy(&users, part.join(crate::users::USERS_FILE)).map_err(io(&users))?;
    }
    linked();
    let manifest = BackupManifest {
        network_id,
        org: org.to_string(),
        height: head.as_ref().map_or(0, |h| h.height),
        head_hash: head.as_ref().map_or_else(String::new, |h| hex::encode(h.hash)),
        state_root: head.as_ref().map_or_else(String::new, |h| h.state_root.to_hex()),
        taken_at_ms: now_ms,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    durable::write_atomic(&part.join(MANIFEST), &json, 0o600).map_err(io(part))?;
    durable::sync_tree(part).map_err(io(part))?;
    Ok(manifest)
}

fn set_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

/// Hard-links (or, across file systems, copies) every file under `from`
/// into `to`. Returns how many files.
fn link_tree(from: &Path, to: &Path) -> Result<u64> {
    if !from.exists() {
        return Ok(0);
    }
    fs::create_dir_all(to).map_err(io(to))?;
    let mut n = 0;
    for entry in fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io(&src))?;
        if kind.is_dir() {
            n += link_tree(&src, &dst)?;
        } else if kind.is_file() {
            if fs::hard_link(&src, &dst).is_err() {
                fs::copy(&src, &dst).map_err(io(&src))?;
            }
            n += 1;
        }
    }
    Ok(n)
}

/// Every dataset version directory under `root` (`datasets/<id>/<hash>`).
fn dataset_versions(root: &Path) -> Result<Vec<PathBuf>> {
    entries_of_datasets(root, |p| p.is_dir())
}

/// Every bucket-backed version's source file under `root`
/// (`datasets/<id>/<hash>.source.json`).
fn dataset_sources(root: &Path) -> Result<Vec<PathBuf>> {
    entries_of_datasets(root, |p| p.to_string_lossy().ends_with(".source.json"))
}

/// The entries `datasets/<id>/*` under `root` that `keep` keeps.
fn entries_of_datasets(root: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let Ok(datasets) = fs::read_dir(root) else { return Ok(out) };
    for dataset in datasets {
        let dataset = dataset.map_err(io(root))?.path();
        for entry in fs::read_dir(&dataset).map_err(io(&dataset))? {
            let path = entry.map_err(io(&dataset))?.path();
            if keep(&path) {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// `<hash>.source.json` -> `<hash>.manifest.json`.
fn source_name_to_manifest(source: &Path) -> String {
    let name = source.file_name().unwrap_or_default().to_string_lossy();
    format!("{}.manifest.json", name.trim_end_matches(".source.json"))
}

/// A version directory's files hash to the content hash it is filed under.
fn check_version(version: &Path) -> Result<()> {
    let named = version.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let actual = hex::encode(Manifest::of_dir(version)?.hash());
    if actual == named {
        return Ok(());
    }
    Err(NodeError::Corrupt(format!(
        "{}: its files hash to {actual}, not to the content hash it is filed under",
        version.display()
    )))
}

/// Every dataset directory under `dir/datasets` hashes to the content hash
/// it is filed under. Returns how many were checked.
pub fn check_files(dir: &Path) -> Result<u64> {
    let versions = dataset_versions(&dir.join("datasets"))?;
    versions.iter().try_for_each(|v| check_version(v))?;
    Ok(versions.len() as u64)
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub manifest: BackupManifest,
    /// Where the data directory it replaced was moved, if there was one.
    pub replaced: Option<PathBuf>,
}

/// Refuses to start a node whose restore stopped between moving its data
/// directory aside and renaming the restored one in: it would start empty,
/// having forgotten everything, and unfenced.
pub(crate) fn check_not_interrupted(cfg: &NodeConfig) -> Result<()> {
    let part = beside(&cfg.data_dir, ".restoring")?;
    if cfg.data_dir.exists() || !part.exists() {
        return Ok(());
    }
    Err(NodeError::Config(format!(
        "{} is missing and {} is there: a restore was interrupted; run `leasehold restore` again",
        cfg.data_dir.display(),
        part.display()
    )))
}

/// `data_dir` with `suffix` added to its last component.
pub fn beside(data_dir: &Path, suffix: &str) -> Result<PathBuf> {
    match (data_dir.parent(), data_dir.file_name()) {
        (Some(parent), Some(name)) => Ok(parent.join(format!("{}{suffix}", name.to_string_lossy()))),
        _ => Err(NodeError::Config(format!("{}: a data directory needs a name of its own", data_dir.display()))),
    }
}

/// Restores `backup` as `cfg`'s data directory, for a stopped node. The
/// backup is verified whole and copied beside the data directory first;
/// only then is the old one moved aside (never deleted) and the copy
/// renamed in. The restored node starts fenced unless `unfenced` (for when
/// every voter is restored, and none remembers more than its backup).
pub fn restore(backup: &Path, cfg: &NodeConfig, unfenced: bool, now_ms: i64) -> Result<Restored> {
    let manifest = check_backup(backup, cfg)?;
    let data_dir = &cfg.data_dir;
    let backup_abs = fs::canonicalize(backup).map_err(io(backup))?;
    if fs::canonicalize(data_dir).is_ok_and(|d| backup_abs.starts_with(d)) {
        return Err(NodeError::Config("the backup is inside the data directory: copy it elsewhere first".into()));
    }
    // A POSIX lock, per process: it keeps a node from starting meanwhile,
    // not this process from opening the store.
    let _lock = crate::ledger::store::lock_stopped(&data_dir.join("ledger"))?;
    let part = beside(data_dir, ".restoring")?;
    if part.exists() {
        fs::remove_dir_all(&part).map_err(io(&part))?;
    }
    if let Err(e) = ready_copy(backup, data_dir, &part, manifest.height, unfenced) {
        let _ = fs::remove_dir_all(&part);
        return Err(e);
    }
    let replaced = if data_dir.exists() {
        let aside = beside(data_dir, &format!(".replaced-{now_ms}"))?;
        durable::rename(data_dir, &aside).map_err(io(&aside))?;
        Some(aside)
    } else {
        None
    };
    durable::rename(&part, data_dir).map_err(io(data_dir))?;
    Ok(Restored { manifest, replaced })
}

/// Copies `backup` to `part` and readies it to replace `data_dir`. What
/// the data directory gained since the backup and must not lose comes
/// along: the users file (tokens revoked since stay revoked) and dataset
/// versions adopted since, whose files hash to the name they are under.
fn ready_copy(backup: &Path, data_dir: &Path, part: &Path, height: u64, unfenced: bool) -> Result<()> {
    leasehold_files::copy_tree(backup, part)?;
    set_private(part)?;
    fs::remove_file(part.join(MANIFEST)).map_err(io(part))?;
    let users = data_dir.join(crate::users::USERS_FILE);
    if users.exists() {
        fs::copy(&users, part.join(crate::users::USERS_FILE)).map_err(io(&users))?;
    }
    for version in dataset_versions(&data_dir.join("datasets"))? {
        let rel = version.strip_prefix(data_dir).expect("under the data directory");
        if part.join(rel).exists() || check_version(&version).is_err() {
            continue;
        }
        link_tree(&version, &part.join(rel))?;
        let manifest = version.with_extension("manifest.json");
        if manifest.exists() {
            fs::copy(&manifest, part.join(rel).with_extension("manifest.json")).map_err(io(&manifest))?;
        }
    }
    // Versions whose files stay in a bucket: where they are, and their
    // manifest (the source first, as when they were adopted).
    for source in dataset_sources(&data_dir.join("datasets"))? {
        let rel = source.strip_prefix(data_dir).expect("under the data directory");
        let manifest = source.with_file_name(source_name_to_manifest(&source));
        let manifest_rel = manifest.strip_prefix(data_dir).expect("under the data directory");
        if part.join(manifest_rel).exists() || !manifest.exists() {
            continue;
        }
        let to = part.join(rel);
        fs::create_dir_all(to.parent().expect("under datasets/")).map_err(io(&to))?;
        fs::copy(&source, &to).map_err(io(&source))?;
        fs::copy(&manifest, part.join(manifest_rel)).map_err(io(&manifest))?;
    }
    prepare(&Store::open(&part.join("ledger"))?, height, unfenced)?;
    durable::sync_tree(part).map_err(io(part))
}

/// The backup's manifest, once its ledger verifies whole, ends where the
/// manifest says, is of this org on this node's network, and its files
/// match their content hashes.
fn check_backup(backup: &Path, cfg: &NodeConfig) -> Result<BackupManifest> {
    let manifest_path = backup.join(MANIFEST);
    let bytes = fs::read(&manifest_path).map_err(io(&manifest_path))?;
    let manifest: BackupManifest = serde_json::from_slice(&bytes).map_err(|e| NodeError::decode("backup.json", e))?;
    if manifest.org != cfg.org {
        return Err(NodeError::Config(format!("the backup is of {}, this node is {}", manifest.org, cfg.org)));
    }
    // The node compares the bytes at start; so does this.
    let ours = fs::read(&cfg.genesis).map_err(io(&cfg.genesis))?;
    let (theirs, _) = crate::ledger::verify::stored_genesis(&Store::open_read_only(&backup.join("ledger"))?)?;
    if theirs != ours {
        return Err(NodeError::Config(format!(
            "the backup is of another genesis than this node's ({})",
            cfg.genesis.display()
        )));
    }
    let verified = crate::ledger::verify::verify(backup)?;
    if verified.height != manifest.height || verified.head_hash != manifest.head_hash {
        return Err(NodeError::Corrupt(format!(
            "the backup's ledger ends at height {} ({}), its manifest says {} ({})",
            verified.height, verified.head_hash, manifest.height, manifest.head_hash
        )));
    }
    check_files(backup)?;
    Ok(manifest)
}

/// Readies a restored store: its vote is no longer committed (a node that
/// led when the backup was taken must not resume leading an older log), the
/// snapshot it pointed at is not in the backup (openraft builds another),
/// and, unless `unfenced`, the node starts fenced.
fn prepare(store: &Store, backup_height: u64, unfenced: bool) -> Result<()> {
    if let Some(mut vote) = store.get::<Vote<NodeId>>(CF_RAFT_META, b"vote")? {
        vote.committed = false;
        store.put_sync(CF_RAFT_META, b"vote", &vote)?;
    }
    store.db().delete_cf(store.cf(CF_RAFT_META), b"snapshot")?;
    match unfenced {
        // A backup taken while its node was fenced carries the marker.
        true => store.db().delete_cf(store.cf(CF_RAFT_META), crate::consensus::fence::KEY)?,
        false => store.put_sync(CF_RAFT_META, crate::consensus::fence::KEY, &backup_height)?,
    }
    Ok(())
}
