//! The fence around a node restored from a backup.
//!
//! Raft's safety rests on each node remembering its vote and every entry it
//! acknowledged. A restored node forgot both: it could vote twice in a term,
//! or help elect a leader missing entries its earlier self helped commit.
//! So until it has caught up it neither stands for election nor grants a
//! vote. It catches up by taking AppendEntries (or a snapshot) from a leader
//! that proves its election with a majority's signed votes: such a leader
//! was elected without this node's forgetful vote, so it holds every
//! committed entry. Once this node has applied up to the commit index that
//! leader first showed it, it holds every entry its earlier self could have
//! acknowledged as committed, and the fence comes down, for good.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tracing::{info, warn};

use crate::error::Result;
use crate::node::Inner;
use crate::store::{Store, CF_RAFT_META};

/// In `raft_meta`: the height of the backup a node was restored from, until
/// the fence comes down.
pub(crate) const KEY: &[u8] = b"restored_from_height";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Down,
    /// Restored; no elected leader heard yet.
    Waiting,
    /// Catching up to this log index, the first commit index a proven
    /// leader showed.
    CatchingUp(u64),
}

pub(crate) struct Fence(Mutex<State>);

impl Fence {
    pub(crate) fn load(store: &Store) -> Result<Self> {
        let restored = store.get::<u64>(CF_RAFT_META, KEY)?.is_some();
        Ok(Self(Mutex::new(if restored { State::Waiting } else { State::Down })))
    }

    pub(crate) fn is_up(&self) -> bool {
        *self.0.lock().expect("fence lock") != State::Down
    }

    /// An AppendEntries from a proven leader, claiming `commit_index`.
    pub(crate) fn leader_heard(&self, commit_index: Option<u64>) {
        let mut state = self.0.lock().expect("fence lock");
        // A leader shows its commit index once its first entry commits.
        let Some(commit_index) = commit_index else { return };
        if *state == State::Waiting {
            info!(commit_index, "restored node: an elected leader is heard; catching up before voting");
            *state = State::CatchingUp(commit_index);
        }
    }
}

/// Brings the fence down once the node has applied what it must, and then
/// lets it stand for election again (`start` turned elections off). Returns
/// at once on a node not restored.
pub(crate) async fn watch(inner: Arc<Inner>) {
    if !inner.fence.is_up() {
        return;
    }
    warn!("restored from a backup: this node neither votes nor stands for election until it has caught up");
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let target = match *inner.fence.0.lock().expect("fence lock") {
            State::CatchingUp(index) => index,
            _ => continue,
        };
        let applied = inner.raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
        if applied < target {
            continue;
        }
        let store = &inner.ledger.store;
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_cf(store.cf(CF_RAFT_META), KEY);
        if let Err(e) = store.write_sync(batch) {
            warn!("cannot lift the restore fence: {e}; retrying");
            continue;
        }
        *inner.fence.0.lock().expect("fence lock") = State::Down;
        inner.raft.runtime_config().elect(true);
        info!(applied, "restored node caught up; it votes and stands for election again");
        return;
    }
}
