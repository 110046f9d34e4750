//! Dataset files on disk: the owner's copies, uploads waiting for their
//! registration and the lessee's verified cache, each listed by a
//! [`Manifest`] (in `leasehold-files`) whose hash is a dataset version's
//! `content_hash` on the ledger.
//!
//! Layout under the node's data dir:
//! - `uploads/{dataset}/…`: files staged by the owner before registering;
//! - `datasets/{dataset}/{content_hash}/…`: the owner's files, one
//!   directory per distinct content, so versions with equal content share it;
//! - `cache/{lease}/files/…`: a lessee's copy, verified, deleted when the
//!   lease ends (see `cache`).
//!
//! Runs and environments are the workflow runner's (`RunDirs`).

pub(crate) mod cache;
pub mod objects;
pub mod plane;
pub mod staging;

use std::fs;
use std::path::{Path, PathBuf};

use leasehold_chaincode::Hash32;
use leasehold_files::Manifest;

use self::objects::ObjectSource;

use crate::error::{NodeError, Result};

/// The places a node keeps dataset files.
#[derive(Debug, Clone)]
pub struct DataDirs {
    root: PathBuf,
}

impl DataDirs {
    pub fn new(data_dir: &Path) -> Self {
        Self { root: data_dir.to_path_buf() }
    }

    pub fn uploads(&self, dataset: &str) -> PathBuf {
        self.root.join("uploads").join(dataset)
    }

    pub fn dataset(&self, dataset: &str, content_hash: &Hash32) -> PathBuf {
        self.root.join("datasets").join(dataset).join(hex::encode(content_hash))
    }

    pub fn cache_root(&self) -> PathBuf {
        self.root.join("cache")
    }

    pub fn cache(&self, lease: &str) -> PathBuf {
        self.cache_root().join(lease)
    }

    /// Where an own version's files are copied in from its bucket before
    /// they join the store; what is left here at start is deleted.
    pub fn materializing_root(&self) -> PathBuf {
        self.root.join("materializing")
    }

    pub fn materializing(&self, dataset: &str, content_hash: &Hash32) -> PathBuf {
        self.materializing_root().join(format!("{dataset}-{}", hex::encode(content_hash)))
    }

    /// The manifest of the owner's files for `content_hash`, if it holds them.
    pub fn dataset_manifest(&self, dataset: &str, content_hash: &Hash32) -> Result<Option<Manifest>> {
        read_json(&manifest_path(&self.dataset(dataset, content_hash)), "manifest")
    }

    /// Moves a verified directory of files into the owner's store under its
    /// content hash, with its manifest beside it. Equal content is kept once.
    pub fn adopt(&self, dataset: &str, from: &Path, manifest: &Manifest) -> Result<PathBuf> {
        let to = self.dataset(dataset, &manifest.hash());
        // The files are whole on disk before they are in the store, and in
        // the store before their manifest, which is what makes the node serve
        // them: a crash leaves files without a manifest ("holds no files"),
        // which adopting the same content again repairs.
        if to.exists() {
            fs::remove_dir_all(from).map_err(|e| NodeError::file(from, e))?;
        } else {
            let parent = to.parent().expect("dataset dir has a parent");
            leasehold_files::durable::create_dirs(parent).map_err(|e| NodeError::file(parent, e))?;
            leasehold_files::durable::sync_tree(from).map_err(|e| NodeError::file(from, e))?;
            leasehold_files::durable::rename(from, &to).map_err(|e| NodeError::file(&to, e))?;
        }
        let manifest_at = manifest_path(&to);
        if !manifest_at.exists() {
            let json = serde_json::to_vec(manifest).expect("manifest serialises");
            leasehold_files::durable::write_atomic(&manifest_at, &json, 0o644)
                .map_err(|e| NodeError::file(&manifest_at, e))?;
        }
        Ok(to)
    }
}

impl DataDirs {
    /// Where a version's files are in an object store, if they are there.
    pub fn dataset_source(&self, dataset: &str, content_hash: &Hash32) -> Result<Option<ObjectSource>> {
        read_json(&source_path(&self.dataset(dataset, content_hash)), "object source")
    }

    /// Files a bucket holds, adopted by reference: where they are, then
    /// their manifest, which makes the node serve them. The same content
    /// registered again from another prefix is served from there from now
    /// on; content the node holds on its own disk is served from the disk.
    pub fn adopt_objects(&self, dataset: &str, manifest: &Manifest, source: &ObjectSource) -> Result<()> {
        let dir = self.dataset(dataset, &manifest.hash());
        let parent = dir.parent().expect("dataset dir has a parent");
        leasehold_files::durable::create_dirs(parent).map_err(|e| NodeError::file(parent, e))?;
        let source_at = source_path(&dir);
        let json = serde_json::to_vec(source).expect("a source serialises");
        leasehold_files::durable::write_atomic(&source_at, &json, 0o644).map_err(|e| NodeError::file(&source_at, e))?;
        let manifest_at = manifest_path(&dir);
        if manifest_at.exists() {
            return Ok(());
        }
        let json = serde_json::to_vec(manifest).expect("manifest serialises");
        leasehold_files::durable::write_atomic(&manifest_at, &json, 0o644).map_err(|e| NodeError::file(&manifest_at, e))
    }
}

/// A JSON file the node wrote, or `None` if it is not there.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| NodeError::decode(what, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::file(path, e)),
    }
}

fn source_path(dir: &Path) -> PathBuf {
    dir.with_extension("source.json")
}

fn manifest_path(dir: &Path) -> PathBuf {
    dir.with_extension("manifest.json")
}
