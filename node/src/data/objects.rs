//! Dataset versions whose files live in an object store: S3, or a server
//! that speaks its protocol. The owner registers a bucket and prefix by
//! reference: its node lists the objects, streams and hashes each (a chunk
//! at a time, never whole in memory), and keeps beside the version's
//! manifest an [`ObjectSource`]: where the files are, and the hash of each
//! chunk. A chunk served is read from the bucket and checked against that
//! hash before it leaves the node, so an object that changed or vanished
//! since registration is refused, by name, and no byte that does not hash
//! to the ledger's ever goes out.
//!
//! The credentials are the node's own (`[s3]` in `node.toml`, the secret
//! in a 0600 file): never on the ledger, never in a log or an answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use leasehold_chaincode::Hash32;
use leasehold_files::{check_rel_path, FileEntry, Manifest, CHUNK_BYTES, MAX_FILES};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::S3Config;

/// Objects hashed at once while a prefix is registered: each holds one
/// chunk in memory.
const INDEX_PARALLEL: usize = 4;

/// Why a bucket could not be registered or served. Each names the object
/// store's URL and what the owner can change; none carries a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("this node has no object store configured: add [s3] to its node.toml (see docs/OPERATIONS.md)")]
    NotConfigured,
    #[error("{0}")]
    BadUrl(String),
    #[error("{url}: no such bucket, or this node's credentials may not list it")]
    NoBucket { url: String },
    #[error("{url}: the object store refused this node's credentials ({why})")]
    Denied { url: String, why: String },
    #[error("{url}: no objects under this prefix")]
    Empty { url: String },
    #[error("{url}: object {key:?} cannot be a dataset file: {why}")]
    BadKey { url: String, key: String, why: String },
    #[error("{url}: more than {MAX_FILES} objects under this prefix")]
    TooMany { url: String },
    #[error("{url} changed since {registered} was registered; register a new version")]
    Changed { url: String, registered: String },
    #[error("{url} is gone since {registered} was registered")]
    Gone { url: String, registered: String },
    /// The store could not be reached, or answered what it should not.
    #[error("{url}: {why}")]
    Store { url: String, why: String },
    /// A lessee asked for a chunk that does not start where chunks do.
    #[error("chunks are read from multiples of {CHUNK_BYTES} bytes, not from {offset}")]
    Unaligned { offset: u64 },
}

impl ObjectError {
    /// What a lessee's node is told: why its chunk is refused, when that
    /// is the data's fault or its own; not the owner's store's trouble,
    /// whose text names internal addresses (the owner's log has it).
    pub(crate) fn for_lessee(&self) -> String {
        match self {
            Self::Changed { .. } | Self::Gone { .. } | Self::Unaligned { .. } => self.to_string(),
            _ => "the owner's object store could not serve this chunk; try again later".into(),
        }
    }
}

/// `s3://bucket/prefix`, checked: a bucket name S3 accepts, and a prefix
/// of plain path segments (no `.`, `..` or empty one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

impl S3Url {
    pub fn parse(url: &str) -> Result<Self, ObjectError> {
        let bad = |why: &str| ObjectError::BadUrl(format!("{url:?}: {why}"));
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("an object store URL is s3://bucket/prefix"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(bad("a bucket name is 3 to 63 lowercase letters, digits, '-' or '.'"));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            check_rel_path(prefix).map_err(|e| bad(&format!("the prefix: {e}")))?;
        }
        Ok(Self { bucket: bucket.into(), prefix: prefix.into() })
    }

    /// The object key of a dataset file, as the store listed it: taken
    /// as it is (`Key::from` would percent-encode `~`, `%`, `#`...).
    fn key(&self, path: &str) -> Key {
        let key = match self.prefix.is_empty() {
            true => path.to_string(),
            false => format!("{}/{path}", self.prefix),
        };
        // Both halves passed `check_rel_path`: the key has no empty, `.` or `..` part.
        Key::parse(&key).unwrap_or_else(|_| Key::from(key))
    }

    /// A dataset file's path: its key below the prefix.
    fn path_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        match self.prefix.is_empty() {
            true => Some(key),
            false => key.strip_prefix(&self.prefix)?.strip_prefix('/'),
        }
    }

    fn object_url(&self, path: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(path))
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Where a version's files are, kept by the owner beside its manifest:
/// the bucket and prefix, and for each file the sha256 of each
/// [`CHUNK_BYTES`] chunk, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSource {
    pub url: String,
    pub chunks: BTreeMap<String, Vec<Hash32>>,
}

/// One chunk the data plane will send, once it is read and checked.
#[derive(Debug, Clone)]
pub(crate) struct BucketChunk {
    pub source: Arc<ObjectSource>,
    pub path: String,
    pub offset: u64,
    pub len: u64,
    pub size_bytes: u64,
    /// What was registered, for a refusal: `version 2 of sales`.
    pub registered: String,
}

/// The node's object store clients, one per bucket, from `[s3]`.
pub(crate) struct ObjectStores {
    config: Option<(S3Config, Secret)>,
    buckets: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

/// The secret key: in memory only, and never printed.
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl ObjectStores {
    pub(crate) fn new(config: Option<(S3Config, String)>) -> Self {
        // The binary links two TLS backends (libp2p's and the object
        // store's), so rustls chooses none by itself: HTTPS to the store
        // needs one named, once per process.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let config = config.map(|(c, secret)| (c, Secret(secret)));
        Self { config, buckets: Mutex::new(HashMap::new()) }
    }

    fn bucket(&self, url: &S3Url) -> Result<Arc<dyn ObjectStore>, ObjectError> {
        let (cfg, secret) = self.config.as_ref().ok_or(ObjectError::NotConfigured)?;
        let mut buckets = self.buckets.lock().expect("buckets lock");
        if let Some(b) = buckets.get(&url.bucket) {
            return Ok(b.clone());
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&url.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(&cfg.access_key_id)
            .with_secret_access_key(&secret.0)
            // Bounded: a store that does not answer fails the request.
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(Duration::from_secs(60))
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_allow_http(cfg.allow_http),
            )
            .with_retry(RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(30), ..Default::default() });
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        }
        let store: Arc<dyn ObjectStore> = Arc::new(builder.build().map_err(|e| ObjectError::Store {
            url: url.to_string(),
            why: format!("the object store's client: {e}"),
        })?);
        buckets.insert(url.bucket.clone(), store.clone());
        Ok(store)
    }

    /// Lists every object under the prefix and hashes it, up to
    /// [`INDEX_PARALLEL`] at once: the manifest a version of it commits to,
    /// and where each chunk of it is.
    pub(crate) async fn index(&self, url: &S3Url) -> Result<(Manifest, ObjectSource), ObjectError> {
        let store = self.bucket(url)?;
        let prefix = (!url.prefix.is_empty())
            .then(|| Key::parse(&url.prefix).unwrap_or_else(|_| Key::from(url.prefix.as_str())));
        let mut listing = store.list(prefix.as_ref());
        let mut objects = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| classify(url, e))?;
            if objects.len() == MAX_FILES {
                return Err(ObjectError::TooMany { url: url.to_string() });
            }
            let key = meta.location.as_ref();
            let bad = |why: String| ObjectError::BadKey { url: url.to_string(), key: key.into(), why };
            let path = url.path_of(key).ok_or_else(|| bad("it is not under the prefix".into()))?;
            // A "folder" marker (a console's empty `dir/` object) is no file.
            if meta.size == 0 && (path.is_empty() || key.ends_with('/')) {
                continue;
            }
            check_rel_path(path).map_err(|e| bad(e.to_string()))?;
            objects.push((path.to_string(), meta.size));
        }
        if objects.is_empty() {
            return Err(ObjectError::Empty { url: url.to_string() });
        }
        objects.sort();
        let hashed: Vec<(FileEntry, Vec<Hash32>)> = futures::stream::iter(objects)
            .map(|(path, size)| hash_object(store.clone(), url, path, size))
            .buffered(INDEX_PARALLEL)
            .try_collect()
            .await?;
        let mut chunks = BTreeMap::new();
        let mut manifest = Manifest::default();
        for (entry, hashes) in hashed {
            chunks.insert(entry.path.clone(), hashes);
            manifest.files.push(entry);
        }
        manifest.check().map_err(|e| ObjectError::BadKey {
            url: url.to_string(),
            key: String::new(),
            why: e.to_string(),
        })?;
        Ok((manifest, ObjectSource { url: url.to_string(), chunks }))
    }

    /// One chunk of a version's file, read from the bucket and checked
    /// against its hash. Chunks are served whole from their start, as the
    /// lessee asks for them; `len` may cut the last one short.
    pub(crate) async fn read_chunk(&self, c: &BucketChunk) -> Result<Vec<u8>, ObjectError> {
        let url = S3Url::parse(&c.source.url)?;
        let object = url.object_url(&c.path);
        let changed = || ObjectError::Changed { url: object.clone(), registered: c.registered.clone() };
        if c.offset >= c.size_bytes || c.len == 0 {
            return Ok(Vec::new());
        }
        if !c.offset.is_multiple_of(CHUNK_BYTES) {
            return Err(ObjectError::Unaligned { offset: c.offset });
        }
        let index = (c.offset / CHUNK_BYTES) as usize;
        let want = *c.source.chunks.get(&c.path).and_then(|h| h.get(index)).ok_or_else(changed)?;
        let end = (c.offset + CHUNK_BYTES).min(c.size_bytes);
        let store = self.bucket(&url)?;
        let bytes = store.get_range(&url.key(&c.path), c.offset..end).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                ObjectError::Gone { url: object.clone(), registered: c.registered.clone() }
            }
            e => classify(&url, e),
        })?;
        let got = tokio::task::spawn_blocking(move || {
            let digest: Hash32 = Sha256::digest(&bytes).into();
            (digest, bytes)
        })
        .await
        .map_err(|e| ObjectError::Store { url: object.clone(), why: e.to_string() })?;
        if got.0 != want || got.1.len() as u64 != end - c.offset {
            return Err(changed());
        }
        Ok(got.1[..(c.len.min(end - c.offset)) as usize].to_vec())
    }
}

impl ObjectStores {
    /// Copies a version's files from the bucket, each chunk checked as the
    /// data plane checks it: for the owner's own runs, which mount a
    /// directory. Written under `job.partial` (outside the store, which
    /// backups read), synced, and renamed to `job.to` whole.
    pub(crate) async fn materialize(
        &self,
        job: Materialize<'_>,
        mut room: impl FnMut() -> Result<(), crate::NodeError>,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<(), ObjectError> {
        let url = job.source.url.clone();
        let local = |why: String| ObjectError::Store { url: url.clone(), why };
        let partial = job.partial;
        let _ = std::fs::remove_dir_all(partial);
        let (total, mut done) = (job.manifest.total_bytes(), 0);
        progress(0, total);
        for entry in &job.manifest.files {
            let path = partial.join(&entry.path);
            std::fs::create_dir_all(path.parent().expect("has a parent")).map_err(|e| local(e.to_string()))?;
            let mut out = std::fs::File::create_new(&path).map_err(|e| local(format!("{}: {e}", path.display())))?;
            let mut offset = 0;
            while offset < entry.size_bytes {
                room().map_err(|e| local(e.to_string()))?;
                let chunk = BucketChunk {
                    source: job.source.clone(),
                    path: entry.path.clone(),
                    offset,
                    len: CHUNK_BYTES,
                    size_bytes: entry.size_bytes,
                    registered: job.registered.into(),
                };
                let bytes = self.read_chunk(&chunk).await?;
                let n = bytes.len() as u64;
                // 4 MiB written off the async threads, which carry raft's heartbeats.
                out = tokio::task::spawn_blocking(move || std::io::Write::write_all(&mut out, &bytes).map(|()| out))
                    .await
                    .map_err(|e| local(e.to_string()))?
                    .map_err(|e| local(e.to_string()))?;
                offset += n;
                done += n;
                progress(done, total);
            }
        }
        let (from, to) = (partial.to_path_buf(), job.to.to_path_buf());
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&from)?;
            leasehold_files::durable::readable_by_all(&from)?;
            leasehold_files::durable::sync_tree(&from)?;
            leasehold_files::durable::create_dirs(to.parent().expect("a version has a dataset directory"))?;
            leasehold_files::durable::rename(&from, &to)
        })
        .await
        .map_err(|e| local(e.to_string()))?
        .map_err(|e| local(e.to_string()))
    }
}

/// A version to copy in from its bucket (see [`ObjectStores::materialize`]).
pub(crate) struct Materialize<'a> {
    pub manifest: &'a Manifest,
    pub source: Arc<ObjectSource>,
    /// What was registered, for a refusal: `the version of sales with content 1a2b…`.
    pub registered: &'a str,
    pub partial: &'a std::path::Path,
    pub to: &'a std::path::Path,
}

/// Reads one object a chunk at a time, each a ranged GET (so no request
/// outlives the client's timeout, however large the object), into its file
/// hash and the hash of each chunk (the hashing off the async threads).
async fn hash_object(
    store: Arc<dyn ObjectStore>,
    url: &S3Url,
    path: String,
    size: u64,
) -> Result<(FileEntry, Vec<Hash32>), ObjectError> {
    let object = url.object_url(&path);
    let key = url.key(&path);
    let (mut whole, mut chunks) = (Sha256::new(), Vec::new());
    for offset in (0..size).step_by(CHUNK_BYTES as usize) {
        let end = (offset + CHUNK_BYTES).min(size);
        let bytes = store.get_range(&key, offset..end).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                ObjectError::Store { url: object.clone(), why: "it vanished while it was read".into() }
            }
            e => classify(url, e),
        })?;
        if bytes.len() as u64 != end - offset {
            let why = format!("it changed while it was read ({} bytes at {offset}, not {})", bytes.len(), end - offset);
            return Err(ObjectError::Store { url: object, why });
        }
        whole = hash_chunk(whole, bytes, &mut chunks).await;
    }
    Ok((FileEntry { path, size_bytes: size, sha256: whole.finalize().into() }, chunks))
}

async fn hash_chunk(mut whole: Sha256, chunk: impl AsRef<[u8]> + Send + 'static, chunks: &mut Vec<Hash32>) -> Sha256 {
    let (whole, digest) = tokio::task::spawn_blocking(move || {
        whole.update(chunk.as_ref());
        let digest: Hash32 = Sha256::digest(chunk.as_ref()).into();
        (whole, digest)
    })
    .await
    .expect("hashing does not panic");
    chunks.push(digest);
    whole
}

/// An error with its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        next = cause.source();
    }
    text
}

/// The store's error as the owner can act on it; its text names no
/// credential (the store's messages carry the URL and the server's code).
fn classify(url: &S3Url, e: object_store::Error) -> ObjectError {
    let url = url.to_string();
    match e {
        object_store::Error::NotFound { .. } => ObjectError::NoBucket { url },
        object_store::Error::PermissionDenied { source, .. } | object_store::Error::Unauthenticated { source, .. } => {
            ObjectError::Denied { url, why: source.to_string() }
        }
        e => {
            let why = chain(&e);
            // S3 answers an unknown bucket, and a bad signature or key,
            // with a code the client may report only in its text.
            if why.contains("NoSuchBucket") {
                ObjectError::NoBucket { url }
            } else if ["SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"].iter().any(|c| why.contains(c)) {
                ObjectError::Denied { url, why }
            } else {
                ObjectError::Store { url, why }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_url_is_a_bucket_and_a_prefix_of_plain_segments() {
        let u = S3Url::parse("s3://data-bucket/raw/2024/").unwrap();
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("data-bucket", "raw/2024"));
        assert_eq!(u.path_of("raw/2024/a/b.csv"), Some("a/b.csv"));
        assert_eq!(u.path_of("raw/20240/x"), None, "a sibling prefix is not under it");
        assert_eq!(S3Url::parse("s3://b12").unwrap().path_of("x.csv"), Some("x.csv"));
        for bad in ["http://b/x", "s3://", "s3://B/x", "s3://b/../x", "s3://bb/a//b", "s3://bb/./a", "s3://a/x"] {
            assert!(matches!(S3Url::parse(bad), Err(ObjectError::BadUrl(_))), "{bad} is refused");
        }
    }

    #[test]
    fn the_secret_is_never_printed() {
        let stores = ObjectStores::new(Some((
            S3Config {
                endpoint: None,
                region: "r".into(),
                access_key_id: "AK".into(),
                secret_access_key_file: "f".into(),
                allow_http: false,
            },
            "very-secret".into(),
        )));
        let (_, secret) = stores.config.as_ref().unwrap();
        assert!(!format!("{secret:?}").contains("very-secret"));
    }
}
