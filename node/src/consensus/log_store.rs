//! openraft's log storage on the `raft_log` and `raft_meta` column families.
//!
//! An append is written at once (raft can then read it) and synced on a
//! blocking thread, which tells raft when it is durable: openraft 0.9 waits
//! for that before it replicates, but no longer holds one of the runtime's
//! few worker threads in `fsync` while it waits.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::ledger::store::{decode, encode, Store, CF_RAFT_LOG, CF_RAFT_META};
use crate::raft::{read_err, write_err, Entry, LogId, NodeId, TypeConfig};

#[derive(Clone)]
pub struct LogStore {
    store: Store,
}

impl LogStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError<NodeId>> {
        self.store.get(CF_RAFT_META, key).map_err(read_err)
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError<NodeId>> {
        let cf = self.store.cf(CF_RAFT_LOG);
        match self.store.db().iterator_cf(cf, IteratorMode::End).next() {
            Some(item) => {
                let (_, v) = item.map_err(read_err)?;
                let e: Entry = decode(&v, "raft entry").map_err(read_err)?;
                Ok(Some(e.log_id))
            }
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => 0,
        };
        let cf = self.store.cf(CF_RAFT_LOG);
        let from = start.to_be_bytes();
        let mut out = Vec::new();
        for item in self.store.db().iterator_cf(cf, IteratorMode::From(&from, Direction::Forward)) {
            let (k, v) = item.map_err(read_err)?;
            let index = u64::from_be_bytes(k.as_ref().try_into().map_err(read_err)?);
            if !range.contains(&index) {
                break;
            }
            out.push(decode(&v, "raft entry").map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id: Option<LogId> = self.meta(b"purged")?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.store.put_sync(CF_RAFT_META, b"vote", vote).map_err(write_err)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.meta(b"vote")
    }

    /// Not synced: a committed id lost in a crash is only older than the
    /// truth, which raft corrects from the leader; and RocksDB recovers a
    /// prefix of its WAL, so a saved id never names entries that were lost.
    /// (A sync here cost each node one fsync per block, on raft's own task.)
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError<NodeId>> {
        let cf = self.store.cf(CF_RAFT_META);
        self.store.db().put_cf(cf, b"committed", encode(&committed)).map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError<NodeId>> {
        Ok(self.meta::<Option<LogId>>(b"committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.store.cf(CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        for e in entries {
            batch.put_cf(cf, e.log_id.index.to_be_bytes(), encode(&e));
        }
        // Readable once written; durable once a WAL sync that began after
        // this write has returned (RocksDB keeps WAL records in write order,
        // and a sync covers every earlier write), so the callback is true
        // whenever it fires.
        if let Err(e) = self.store.db().write(batch) {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(write_err(e));
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            callback.log_io_completed(store.db().flush_wal(true).map_err(std::io::Error::other));
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError<NodeId>> {
        let cf = self.store.cf(CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, log_id.index.to_be_bytes(), u64::MAX.to_be_bytes());
        batch.delete_cf(cf, u64::MAX.to_be_bytes());
        self.store.write_sync(batch).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError<NodeId>> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.store.cf(CF_RAFT_META), b"purged", encode(&log_id));
        batch.delete_range_cf(self.store.cf(CF_RAFT_LOG), 0u64.to_be_bytes(), (log_id.index + 1).to_be_bytes());
        self.store.write_sync(batch).map_err(write_err)
    }
}
