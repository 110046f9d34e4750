//! InstallSnapshot chunks from a peer, received into a file and checked
//! whole (see [`crate::ledger::snapshot::check`]) before raft sees any of it. This
//! replaces openraft's own chunk receiver, which would install whatever a
//! "leader" sent; openraft supports such application-defined transfer
//! through `Raft::install_full_snapshot`.

// openraft fixes the reply's error type; boxing it would only add
// conversions.
#![allow(clippy::result_large_err)]

use std::io::Write;
use std::path::PathBuf;

use leasehold_network::PeerId;
use openraft::error::{InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{InstallSnapshotRequest, InstallSnapshotResponse};
use openraft::storage::Snapshot;
use openraft::{SnapshotSegmentId, Vote};
use tracing::warn;

use super::Consensus;
use crate::ledger::snapshot::SnapshotError;
use crate::raft::{NodeId, TypeConfig};

/// Largest snapshot taken from a peer; a bigger one is refused, so a peer
/// cannot fill this node's disk.
const MAX_SNAPSHOT_BYTES: u64 = 64 << 30;

/// A snapshot being received: one at a time.
pub(crate) struct Incoming {
    id: String,
    vote: Vote<NodeId>,
    path: PathBuf,
    file: std::fs::File,
    written: u64,
}

type Reply = Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;

fn mismatch(expect: Option<&Incoming>, req: &InstallSnapshotRequest<TypeConfig>) -> Reply {
    let expect = SnapshotSegmentId {
        id: expect.map_or_else(String::new, |i| i.id.clone()),
        offset: expect.map_or(0, |i| i.written),
    };
    let got = SnapshotSegmentId { id: req.meta.snapshot_id.clone(), offset: req.offset };
    Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(SnapshotMismatch { expect, got })))
}

/// Takes one chunk. `None` means refused without an answer, as the gate
/// refuses: the snapshot failed its check, or is too big.
pub(crate) async fn receive(
    inner: &Consensus,
    peer: &PeerId,
    req: InstallSnapshotRequest<TypeConfig>,
) -> Option<Reply> {
    let org = inner.peers().org_name(peer);
    let my_vote = inner.raft.metrics().borrow().vote;
    if req.vote < my_vote {
        return Some(Ok(InstallSnapshotResponse { vote: my_vote }));
    }
    let mut slot = inner.incoming.lock().await;
    if req.offset == 0 {
        if let Some(old) = slot.take() {
            let _ = std::fs::remove_file(&old.path);
        }
        // A file of its own: a transfer that starts while the last one is
        // still being installed must not truncate the file raft reads.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let path = inner.cfg.data_dir.join("snapshots").join(format!("incoming-{nanos}.part"));
        let file = std::fs::create_dir_all(path.parent().expect("has a parent"))
            .and_then(|()| std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path));
        match file {
            Ok(file) => {
                *slot = Some(Incoming { id: req.meta.snapshot_id.clone(), vote: req.vote, path, file, written: 0 })
            }
            Err(e) => {
                warn!("cannot receive a snapshot: {e}");
                return None;
            }
        }
    }
    let Some(inc) =
        slot.as_mut().filter(|i| i.id == req.meta.snapshot_id && i.vote == req.vote && i.written == req.offset)
    else {
        return Some(mismatch(slot.as_ref(), &req));
    };
    if inc.written + req.data.len() as u64 > MAX_SNAPSHOT_BYTES {
        warn!(%peer, "refused a snapshot from {org}: over {MAX_SNAPSHOT_BYTES} bytes");
        return discard(&mut slot);
    }
    if let Err(e) = inc.file.write_all(&req.data) {
        warn!("cannot receive a snapshot: {e}");
        return discard(&mut slot);
    }
    inc.written += req.data.len() as u64;
    if !req.done {
        return Some(Ok(InstallSnapshotResponse { vote: my_vote }));
    }
    let inc = slot.take().expect("checked above");
    // Checking and installing take long; a new leader's first chunk must
    // not wait behind them.
    drop(slot);
    let reply = finish(inner, peer, &org, &inc, req).await;
    let _ = std::fs::remove_file(&inc.path);
    reply
}

fn discard(slot: &mut Option<Incoming>) -> Option<Reply> {
    if let Some(old) = slot.take() {
        let _ = std::fs::remove_file(&old.path);
    }
    None
}

/// Checks the whole file, then hands it to raft to install.
async fn finish(
    inner: &Consensus,
    peer: &PeerId,
    org: &str,
    inc: &Incoming,
    req: InstallSnapshotRequest<TypeConfig>,
) -> Option<Reply> {
    let ledger = inner.ledger.clone();
    let path = inc.path.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|e| SnapshotError::Local(e.to_string()))?;
        let input = std::io::BufReader::new(file);
        let orgs = ledger.roster().orgs.clone();
        crate::ledger::snapshot::check_with_cfg(input, &ledger.genesis_bytes, &ledger.genesis, &orgs, &ledger.store)
    })
    .await
    .unwrap_or_else(|e| Err(SnapshotError::Local(e.to_string())));
    let cfg = match checked {
        Ok((_, cfg)) => cfg,
        Err(reason) => {
            warn!(%peer, "refused a snapshot from {org}: {reason}");
            return None;
        }
    };
    // Its membership may name the voters its own certified state put in
    // effect: a node that lagged behind an org's joining learns of it here.
    let m = req.meta.last_membership.membership();
    if !super::membership::allowed_with(inner, m, Some(&cfg)) {
        warn!(%peer, "refused a snapshot from {org}: its membership {:?} is not the voters any ledger put in effect", m.get_joint_config());
        return None;
    }
    let file = match tokio::fs::File::open(&inc.path).await {
        Ok(f) => f,
        Err(e) => {
            warn!("cannot reopen a received snapshot: {e}");
            return None;
        }
    };
    let snapshot = Snapshot { meta: req.meta, snapshot: Box::new(file) };
    Some(match inner.raft.install_full_snapshot(req.vote, snapshot).await {
        Ok(r) => Ok(InstallSnapshotResponse { vote: r.vote }),
        Err(fatal) => Err(RaftError::Fatal(fatal)),
    })
}

/// Removes transfers a stopped node left half-received.
pub(crate) fn remove_partial(data_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(data_dir.join("snapshots")) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("incoming") && name.ends_with(".part") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
