//! The data plane: an owner node serves a leased dataset's files to the
//! lessee's node over the permissioned p2p network, checking the lease on
//! the ledger at every request; the lessee verifies everything it receives
//! against the content hash on the ledger before anything may use it.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;

use leasehold_chaincode::{query, Hash32, Lease, StateRead};
use leasehold_network::PeerId;
use sha2::{Digest, Sha256};

use leasehold_files::Manifest;

use super::objects::{BucketChunk, ObjectSource};
use super::DataDirs;
use crate::consensus::Consensus;
use crate::error::{NodeError, Result};
use crate::ledger::Ledger;
use crate::wire::data::{DataRefusal, DataReply, DataRequest};
use crate::wire::{Rpc, RpcReply};

pub use leasehold_files::{read_chunk, CHUNK_BYTES};

/// Chunk requests a lessee's node has in flight per file: within the
/// owner's per-org limit (`limits::DATA_IN_FLIGHT`), 4 MiB each.
const PIPELINE: usize = 4;

/// A lessee's node fetching leased files from their owner's.
pub(crate) struct Fetcher<'a> {
    pub consensus: &'a Consensus,
    pub ledger: &'a Ledger,
    pub dirs: &'a DataDirs,
}

impl Fetcher<'_> {
    async fn data_request(&self, owner: &str, req: DataRequest) -> Result<DataReply> {
        // Over the owner's per-org limits (this org's other fetches, each
        // with chunks in flight): wait and ask again, a few times.
        let mut answer = self.consensus.ask_org(owner, Rpc::Data(req.clone())).await?;
        for backoff_ms in [50, 100, 200, 400, 800, 1_600, 3_200] {
            if !matches!(answer, RpcReply::Data(Err(DataRefusal::Busy { .. } | DataRefusal::InFlight { .. }))) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(backoff_ms)).await;
            answer = self.consensus.ask_org(owner, Rpc::Data(req.clone())).await?;
        }
        match answer {
            RpcReply::Data(Ok(reply)) => {
                if let DataReply::Chunk(b) = &reply {
                    self.ledger.metrics.data_plane("fetched", b.len() as u64);
                }
                Ok(reply)
            }
            RpcReply::Data(Err(reason)) => Err(NodeError::Data(format!("{owner} refused: {reason}"))),
            _ => Err(NodeError::Peer(format!("{owner}'s node answered a different request"))),
        }
    }

    /// One chunk of a leased file, of the length asked for, or an error.
    async fn chunk(&self, lease: &Lease, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        // A dataset may be larger than the disk's reserve.
        self.consensus.check_disk()?;
        let req = DataRequest::Chunk { lease_id: lease.id.clone(), path: path.into(), offset, len: CHUNK_BYTES };
        let DataReply::Chunk(bytes) = self.data_request(&lease.owner, req).await? else {
            return Err(NodeError::Data("expected a chunk".into()));
        };
        if bytes.len() as u64 != len {
            return Err(NodeError::Data(format!(
                "{path}: {} sent {} bytes at {offset}, not {len}",
                lease.owner,
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// The leased version's manifest, from its owner, who checks the lease
    /// as it answers; checked against the ledger's content hash.
    pub(crate) async fn manifest(&self, lease: &Lease) -> Result<Manifest> {
        let version = lease.dataset_version.ok_or_else(|| NodeError::Data("lease has no dataset version".into()))?;
        let store = &self.ledger.store;
        let ds = query::dataset_version(store, &lease.dataset_id, version)?
            .ok_or_else(|| NodeError::Data(format!("dataset {}@{version} is not on the ledger", lease.dataset_id)))?;
        let req = DataRequest::Manifest { lease_id: lease.id.clone() };
        let DataReply::Manifest(manifest) = self.data_request(&lease.owner, req).await? else {
            return Err(NodeError::Data("expected a manifest".into()));
        };
        if manifest.hash() != ds.spec.content_hash {
            return Err(NodeError::Data(format!(
                "the manifest from {} does not match the content hash of {}@{version} on the ledger",
                lease.owner, ds.id
            )));
        }
        manifest.check().map_err(|e| NodeError::Data(format!("the manifest from {} is refused: {e}", lease.owner)))?;
        Ok(manifest)
    }

    /// Brings a lease's files into this node's cache and returns their
    /// directory. Each file is checked against its manifest entry and the
    /// manifest against the ledger's content hash; nothing unverified is
    /// left where a job could mount it. `progress(done, total)` is called
    /// after each chunk.
    pub(crate) async fn fetch(&self, lease: &Lease, mut progress: impl FnMut(u64, u64)) -> Result<PathBuf> {
        let dirs = &self.dirs;
        let cache = dirs.cache(&lease.id);
        let files = cache.join("files");
        if files.exists() {
            return Ok(files);
        }
        let manifest = self.manifest(lease).await?;
        let partial = cache.join("partial");
        let _ = fs::remove_dir_all(&partial);
        let total = manifest.total_bytes();
        let mut done = 0;
        progress(done, total);
        for entry in &manifest.files {
            let path = partial.join(&entry.path);
            fs::create_dir_all(path.parent().expect("has parent")).map_err(|e| NodeError::file(&path, e))?;
            let mut writer = FileWriter::create(&path)?;
            // Up to `PIPELINE` chunks asked for at once, taken in order:
            // the round trips (and the owner's reads, from a bucket too)
            // overlap, and at most that many chunks are held, besides the
            // writer's queue.
            let mut chunks = futures::stream::iter((0..entry.size_bytes).step_by(CHUNK_BYTES as usize))
                .map(|at| self.chunk(lease, &entry.path, at, CHUNK_BYTES.min(entry.size_bytes - at)))
                .buffered(PIPELINE);
            while let Some(bytes) = chunks.next().await {
                let bytes = bytes?;
                done += bytes.len() as u64;
                writer.append(bytes).await?;
                progress(done, total);
            }
            let (size_bytes, digest) = writer.finish().await?;
            if size_bytes != entry.size_bytes || digest != entry.sha256 {
                let _ = fs::remove_dir_all(&partial);
                return Err(NodeError::Data(format!("{} does not match its hash in the manifest", entry.path)));
            }
        }
        fs::create_dir_all(&partial).map_err(|e| NodeError::file(&partial, e))?;
        leasehold_files::durable::readable_by_all(&partial).map_err(|e| NodeError::file(&partial, e))?;
        // Every file is on disk before the cache counts as verified: after a
        // power loss it is whole under `files/`, or not there. Syncing
        // gigabytes is slow: off the async threads, which carry raft too.
        let (from, to) = (partial.clone(), files.clone());
        tokio::task::spawn_blocking(move || {
            leasehold_files::durable::sync_tree(&from).and_then(|()| leasehold_files::durable::rename(&from, &to))
        })
        .await
        .map_err(|e| NodeError::Data(format!("syncing the cache: {e}")))?
        .map_err(|e| NodeError::file(&files, e))?;
        Ok(files)
    }
}

/// Manifests the owner has read, by dataset and content hash, with where
/// the files are if they are in an object store. A transfer asks for a
/// chunk every 4 MiB; each would otherwise read and parse the manifest
/// again. A content hash names one manifest forever, so an entry never
/// goes stale; the map is emptied when it reaches `MAX_MANIFESTS`.
#[derive(Default)]
pub(crate) struct Manifests(std::sync::Mutex<HashMap<(String, Hash32), Arc<Held>>>);

/// A version's files as the owner holds them: on its disk, or in a bucket.
pub(crate) struct Held {
    pub manifest: Manifest,
    pub source: Option<Arc<ObjectSource>>,
}

const MAX_MANIFESTS: usize = 256;

impl Manifests {
    fn get(&self, dirs: &DataDirs, dataset: &str, hash: &Hash32) -> Result<Option<Arc<Held>>> {
        let key = (dataset.to_string(), *hash);
        if let Some(m) = self.0.lock().expect("manifests lock").get(&key) {
            return Ok(Some(m.clone()));
        }
        let Some(manifest) = dirs.dataset_manifest(dataset, hash)? else { return Ok(None) };
        let source = dirs.dataset_source(dataset, hash)?.map(Arc::new);
        let m = Arc::new(Held { manifest, source });
        let mut map = self.0.lock().expect("manifests lock");
        if map.len() >= MAX_MANIFESTS {
            map.clear();
        }
        map.insert(key, m.clone());
        Ok(Some(m))
    }

    /// Drops what is cached of a version whose files moved (registered
    /// again from another prefix).
    pub(crate) fn forget(&self, dataset: &str, hash: &Hash32) {
        self.0.lock().expect("manifests lock").remove(&(dataset.to_string(), *hash));
    }
}

/// What the owner's node checks a request against: its own org, its ledger
/// state, its dataset files, and which org each peer identity belongs to.
pub(crate) struct Owner<'a, S> {
    pub org: &'a str,
    pub state: &'a S,
    pub data_dir: &'a Path,
    pub org_of_peer: &'a HashMap<PeerId, String>,
    pub manifests: &'a Manifests,
}

/// What the owner's node answers a data request with: a reply it has, or a
/// chunk still to read from the bucket and check (`ObjectStores::read_chunk`).
#[derive(Debug)]
pub(crate) enum Served {
    Reply(DataReply),
    FromBucket(BucketChunk),
}

impl<S: StateRead> Owner<'_, S> {
    /// Every request, the manifest and each chunk alike, is checked against
    /// the lease as the ledger has it at `now_ms`: a transfer stops at the
    /// first chunk asked for after the lease ends.
    pub fn serve(&self, now_ms: i64, from: PeerId, req: DataRequest) -> std::result::Result<Served, DataRefusal> {
        let requester = self.org_of_peer.get(&from).ok_or(DataRefusal::UnknownPeer)?;
        let lease_id = req.lease_id();
        let lease = query::lease(self.state, lease_id)?.ok_or(DataRefusal::NoSuchLease)?;
        if lease.owner != self.org || &lease.lessee != requester {
            let (owner, lessee) = (self.org.to_string(), requester.clone());
            return Err(DataRefusal::NotBetween { lease: lease_id.into(), owner, lessee });
        }
        if let Some(reason) = lease.inactive_reason(now_ms) {
            return Err(DataRefusal::Inactive(reason));
        }
        query::files_served(self.state, &lease.dataset_id, lease.dataset_version)?;
        let version = lease.dataset_version.ok_or(DataRefusal::NoVersion)?;
        let ds = query::dataset_version(self.state, &lease.dataset_id, version)?.ok_or(DataRefusal::NoSuchVersion)?;
        let dirs = DataDirs::new(self.data_dir);
        let held = self
            .manifests
            .get(&dirs, &ds.id, &ds.spec.content_hash)
            .map_err(|e| DataRefusal::Failed(e.to_string()))?
            .ok_or_else(|| DataRefusal::NoFiles { owner: self.org.into(), dataset: ds.id.clone(), version })?;
        match req {
            DataRequest::Manifest { .. } => Ok(Served::Reply(DataReply::Manifest(held.manifest.clone()))),
            DataRequest::Chunk { path, offset, len, .. } => {
                let entry = held.manifest.files.iter().find(|f| f.path == path).ok_or(DataRefusal::NoSuchFile)?;
                let len = len.min(CHUNK_BYTES).min(entry.size_bytes.saturating_sub(offset));
                let dir = dirs.dataset(&ds.id, &ds.spec.content_hash);
                // Files in a bucket, unless the same content is on this
                // node's disk (uploaded, or copied in for its own runs,
                // checked as it came): then from the disk.
                if let Some(source) = held.source.as_ref().filter(|_| !dir.exists()) {
                    let (source, size_bytes) = (source.clone(), entry.size_bytes);
                    let registered = format!("version {version} of {}", ds.id);
                    let chunk = BucketChunk { source, path, offset, len, size_bytes, registered };
                    return Ok(Served::FromBucket(chunk));
                }
                let file = dir.join(&entry.path);
                read_chunk(&file, offset, len)
                    .map(|b| Served::Reply(DataReply::Chunk(b)))
                    .map_err(|e| DataRefusal::Failed(format!("{}: {e}", entry.path)))
            }
        }
    }
}

/// Chunks a writer holds before the transfer waits for it.
const WRITER_QUEUE: usize = 4;
/// Bytes a writer appends between syncs: the disk writes while the network
/// brings the next, rather than all of a dataset at the end (the kernel
/// would otherwise hold gigabytes dirty until the final fsync).
const SYNC_EVERY_BYTES: u64 = 64 << 20;

/// One file of a transfer, hashed, appended and synced as it comes on a
/// blocking thread of its own: 4 MiB of SHA-256 and a write take
/// milliseconds that raft's heartbeats share on a small host, and a sync
/// takes longer.
struct FileWriter {
    path: PathBuf,
    chunks: tokio::sync::mpsc::Sender<Vec<u8>>,
    done: tokio::task::JoinHandle<std::io::Result<(u64, [u8; 32])>>,
}

impl FileWriter {
    fn create(path: &Path) -> Result<Self> {
        // A new file, never one that is there already (or a link to one).
        let mut out =
            fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| NodeError::file(path, e))?;
        let (chunks, mut queued) = tokio::sync::mpsc::channel::<Vec<u8>>(WRITER_QUEUE);
        let done = tokio::task::spawn_blocking(move || {
            let (mut hasher, mut size_bytes, mut unsynced_bytes) = (Sha256::new(), 0u64, 0u64);
            while let Some(bytes) = queued.blocking_recv() {
                hasher.update(&bytes);
                out.write_all(&bytes)?;
                size_bytes += bytes.len() as u64;
                unsynced_bytes += bytes.len() as u64;
                if unsynced_bytes >= SYNC_EVERY_BYTES {
                    out.sync_data()?;
                    unsynced_bytes = 0;
                }
            }
            out.sync_all()?;
            Ok((size_bytes, hasher.finalize().into()))
        });
        Ok(Self { path: path.to_path_buf(), chunks, done })
    }

    /// Queues a chunk; waits while the writer's queue is full.
    async fn append(&mut self, bytes: Vec<u8>) -> Result<()> {
        if self.chunks.send(bytes).await.is_ok() {
            return Ok(());
        }
        // The writer stopped on an error: the error is its result.
        let stopped = (&mut self.done).await;
        let reason = match stopped {
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(_)) => "the writer stopped".into(),
            Err(e) => e.to_string(),
        };
        Err(NodeError::file(&self.path, reason))
    }

    /// The file's size and SHA-256 once all of it is written and synced.
    async fn finish(self) -> Result<(u64, [u8; 32])> {
        drop(self.chunks);
        self.done
            .await
            .map_err(|e| NodeError::Data(format!("writing {}: {e}", self.path.display())))?
            .map_err(|e| NodeError::file(&self.path, e))
    }
}

#[cfg(test)]
#[path = "plane_tests.rs"]
mod tests;
