//! Free space on the data directory's disk. RocksDB meeting a full disk
//! mid-write stops the store (and openraft treats a storage error as fatal),
//! so a node keeps a reserve: below `min_free_disk_mib` it takes on no new
//! work that fills the disk: its users' writes and uploads (checked again
//! every 64 MiB), forwarded batches if it leads, raft entries and snapshots
//! from the leader (it falls behind, as if cut off, and catches up once
//! space returns), and leased-file chunks. Reads, heartbeats and votes go
//! on, and so do the node's own small records (a run's end, a disclosure's
//! access record), which it must not lose. What is under way when the
//! reserve is crossed may use part of it; the reserve is sized for that.

use std::path::Path;

use crate::error::{NodeError, Result};

/// Bytes an unprivileged writer may still use on `dir`'s filesystem.
pub fn free_bytes(dir: &Path) -> Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| NodeError::file(dir, e))?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// `Ok` while `dir` has at least `min_free_mib` free; else a
/// [`NodeError::DiskFull`] a person can act on.
pub fn check(dir: &Path, min_free_mib: u64) -> Result<()> {
    let free = free_bytes(dir)?;
    if free >= min_free_mib.saturating_mul(1 << 20) {
        return Ok(());
    }
    Err(NodeError::DiskFull(format!(
        "this node's disk is nearly full: {} MiB free for its data directory, below the {min_free_mib} MiB it keeps \
         in reserve; it takes no writes until space is freed",
        free >> 20
    )))
}
