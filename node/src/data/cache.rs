//! The lessee's cache of leased files: deleted once its lease has ended,
//! every second whether or not a run was using it, and all of it at start.

use std::time::Duration;

use leasehold_chaincode::LeaseStatus;
use tracing::{info, warn};

use super::DataDirs;
use crate::ledger::Ledger;

/// Deletes the whole cache. No run survives a restart, so no run uses a
/// cache made before it; and a cache cut short by a crash (before caches
/// were synced to disk whole) must not be mounted as verified. A run
/// fetches and verifies the files again.
pub(crate) fn delete_from_before(dirs: &DataDirs) {
    match std::fs::remove_dir_all(dirs.cache_root()) {
        Ok(()) => info!("deleted the leased-data cache left from before this start"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!("cannot delete the leased-data cache left from before this start: {e}"),
    }
    // A copy from a bucket cut short by the stop: never renamed into the store.
    let _ = std::fs::remove_dir_all(dirs.materializing_root());
}

/// Deletes the cached data of every lease that is no longer active.
pub(crate) fn delete_ended(dirs: &DataDirs, ledger: &Ledger) {
    let Ok(entries) = std::fs::read_dir(dirs.cache_root()) else { return };
    for entry in entries.flatten() {
        let lease_id = entry.file_name().to_string_lossy().into_owned();
        let active = matches!(ledger.lease_status_now(&lease_id), Ok(Some((_, LeaseStatus::Active))));
        if !active {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => info!(lease = %lease_id, "deleted the cached data of a lease that has ended"),
                Err(e) => warn!(lease = %lease_id, "cannot delete cached data: {e}"),
            }
        }
    }
}

/// Every second, deletes cached data whose lease has ended.
pub(crate) async fn janitor(dirs: DataDirs, ledger: std::sync::Arc<Ledger>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        // Deleting a large cache is slow file I/O: off the runtime's threads,
        // which also carry raft's heartbeats.
        let (dirs, ledger) = (dirs.clone(), ledger.clone());
        let _ = tokio::task::spawn_blocking(move || delete_ended(&dirs, &ledger)).await;
    }
}
