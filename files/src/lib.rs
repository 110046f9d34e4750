//! Files on disk as every part of leasehold keeps them: written whole or not
//! at all ([`durable`]), read only when plain (never through a link), and
//! listed in a canonical [`Manifest`] whose hash names their content.
//!
//! It knows nothing of the ledger or of nodes; the node's data plane and the
//! workflow engine both stand on it.

pub mod durable;
mod manifest;

pub use manifest::{check_rel_path, copy_tree, hash_file, open_plain, FileEntry, Manifest, MAX_FILES, MAX_PATH_BYTES};

/// Bytes per chunk request between nodes: well under the network's message
/// limit, and large enough that a round trip per chunk costs little.
pub const CHUNK_BYTES: u64 = 4 << 20;

/// Up to `len` bytes of a plain file from `offset`.
pub fn read_chunk(file: &std::path::Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = open_plain(file)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A file or directory that could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FileError {
    pub path: String,
    pub reason: String,
}

impl FileError {
    pub fn new(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self { path: path.display().to_string(), reason: e.to_string() }
    }
}

/// Why a path may not name a file inside a dataset or a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("a file path has 1 to {MAX_PATH_BYTES} bytes")]
    Length,
    #[error("{0:?} holds a control character or a backslash")]
    Character(String),
    #[error("{0:?} must be relative, without '.', '..' or empty components")]
    NotRelative(String),
}

/// Why a lessee refuses a manifest before writing any file of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest lists more than {MAX_FILES} files")]
    TooManyFiles,
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{0:?} is listed twice or out of order")]
    OutOfOrder(String),
    #[error("{0:?} is both a file and a directory")]
    FileAndDirectory(String),
}

pub type Result<T, E = FileError> = std::result::Result<T, E>;
