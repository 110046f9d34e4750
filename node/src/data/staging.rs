//! Files waiting to become a dataset version: an owner's uploads, staged
//! one file at a time under `uploads/{dataset}/`, or a run's outputs copied
//! out for publishing. The API hands the node bytes and gets back a
//! [`Staged`] it cannot open: only the node touches its directories.

use std::path::{Path, PathBuf};

use leasehold_files::{check_rel_path, Manifest, PathError};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::objects::ObjectSource;
use crate::error::NodeError;

/// Largest file accepted in one upload, in bytes.
pub const MAX_UPLOAD_BYTES: u64 = 4 << 30;

/// The disk is checked against the node's reserve again every this many
/// bytes of an upload: one upload may be larger than the reserve.
const DISK_CHECK_BYTES: u64 = 64 << 20;

/// Why a file was not staged. Each names what the uploader can change.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{0}")]
    Path(#[from] PathError),
    /// `a` then `a/b` (or `a/b` then `a`): a file cannot be a directory too.
    #[error("{0}")]
    Clash(String),
    #[error("a file is at most {MAX_UPLOAD_BYTES} bytes")]
    TooLarge,
    /// The node's own trouble: its disk, or a file it could not write.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// A dataset's files with their manifest, ready to be adopted into the
/// owner's store once the ledger names their content hash. A copy made for
/// publishing is deleted when dropped unless it was adopted.
#[derive(Debug)]
pub struct Staged {
    dir: PathBuf,
    manifest: Manifest,
    temporary: bool,
    /// Files left in an object store: where they are (then `dir` is empty).
    source: Option<ObjectSource>,
}

impl Staged {
    /// Lists `dir` (off the runtime's threads: it hashes every file).
    pub(crate) async fn of_dir(dir: PathBuf, temporary: bool) -> Result<Self, NodeError> {
        let d = dir.clone();
        let manifest = tokio::task::spawn_blocking(move || Manifest::of_dir(&d))
            .await
            .map_err(|e| NodeError::Data(format!("hashing staged files: {e}")))?;
        match manifest {
            Ok(manifest) => Ok(Self { dir, manifest, temporary, source: None }),
            Err(e) => {
                if temporary {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                Err(e.into())
            }
        }
    }

    /// Files a bucket holds, listed and hashed where they are.
    pub(crate) fn of_objects(manifest: Manifest, source: ObjectSource) -> Self {
        Self { dir: PathBuf::new(), manifest, temporary: false, source: Some(source) }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Where the files are in an object store, if they are there.
    pub(crate) fn source(&self) -> Option<&ObjectSource> {
        self.source.as_ref()
    }

    /// The directory, for the store to move; it is the store's from then on.
    pub(crate) fn into_dir(mut self) -> PathBuf {
        self.temporary = false;
        std::mem::take(&mut self.dir)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.temporary && self.dir.exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One file being uploaded: written to a hidden partial file, fsynced and
/// renamed into place by [`Upload::finish`]; dropped before that, it
/// leaves nothing behind.
pub struct Upload {
    file: tokio::fs::File,
    partial: PathBuf,
    target: PathBuf,
    size_bytes: u64,
    hasher: Sha256,
    disk: DiskReserve,
    finished: bool,
}

/// What an upload checks the disk against as it grows.
#[derive(Clone)]
pub(crate) struct DiskReserve {
    pub dir: PathBuf,
    pub min_free_mib: u64,
}

/// A staged file, as the uploader sees it.
#[derive(Debug, Clone)]
pub struct StagedFile {
    pub size_bytes: u64,
    pub sha256: String,
}

impl Upload {
    /// Starts `rel` under `root` (a dataset's uploads), after checking the
    /// path and that it clashes with no staged file.
    pub(crate) async fn begin(root: &Path, rel: &str, disk: DiskReserve) -> Result<Self, StageError> {
        check_rel_path(rel)?;
        clash(root, rel)?;
        crate::disk::check(&disk.dir, disk.min_free_mib)?;
        let target = root.join(rel);
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("upload");
        let partial = target.with_file_name(format!(".{name}.partial"));
        let parent = target.parent().expect("under the uploads dir");
        tokio::fs::create_dir_all(parent).await.map_err(|e| NodeError::file(parent, e))?;
        let file = tokio::fs::File::create(&partial).await.map_err(|e| NodeError::file(&partial, e))?;
        Ok(Self { file, partial, target, size_bytes: 0, hasher: Sha256::new(), disk, finished: false })
    }

    /// Appends `chunk`, within the size limit and the disk's reserve.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StageError> {
        let grown = self.size_bytes + chunk.len() as u64;
        if self.size_bytes / DISK_CHECK_BYTES != grown / DISK_CHECK_BYTES {
            crate::disk::check(&self.disk.dir, self.disk.min_free_mib)?;
        }
        if grown > MAX_UPLOAD_BYTES {
            return Err(StageError::TooLarge);
        }
        self.size_bytes = grown;
        self.hasher.update(chunk);
        self.file.write_all(chunk).await.map_err(|e| NodeError::file(&self.partial, e))?;
        Ok(())
    }

    /// Makes the file durable under its name.
    pub async fn finish(mut self) -> Result<StagedFile, StageError> {
        self.file.sync_all().await.map_err(|e| NodeError::file(&self.partial, e))?;
        let (from, to) = (self.partial.clone(), self.target.clone());
        tokio::task::spawn_blocking(move || leasehold_files::durable::rename(&from, &to))
            .await
            .map_err(|e| NodeError::Data(format!("staging a file: {e}")))?
            .map_err(|e| NodeError::file(&self.target, e))?;
        self.finished = true;
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        Ok(StagedFile { size_bytes: self.size_bytes, sha256 })
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// A staged file cannot be a directory of others too: `a` then `a/b` (or
/// `a/b` then `a`) is refused, naming the path, and nothing is changed.
fn clash(root: &Path, rel: &str) -> Result<(), StageError> {
    let parts: Vec<&str> = rel.split('/').collect();
    let mut at = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let Ok(meta) = std::fs::symlink_metadata(&at) else { return Ok(()) };
        let last = i + 1 == parts.len();
        if !last && !meta.is_dir() {
            let prefix = parts[..=i].join("/");
            return Err(StageError::Clash(format!("{prefix} is a staged file, so {rel} cannot be under it")));
        }
        if last && meta.is_dir() {
            return Err(StageError::Clash(format!("{rel} is a directory of staged files")));
        }
    }
    Ok(())
}
