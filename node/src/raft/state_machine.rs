//! openraft's state machine: each normal entry is a proposal that becomes a
//! block, re-validated by the chaincode on every node.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageError};
use rocksdb::WriteBatch;

use super::{read_err, write_err, Applied, Entry, LogId, NodeId, SnapshotMeta, StoredMembership, TypeConfig};
use crate::block;
use crate::ledger::Ledger;
use crate::store::{decode, encode, CF_META, CF_RAFT_META, LEDGER_CFS};

type Dump = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;

#[derive(Clone)]
pub struct StateMachine {
    ledger: Arc<Ledger>,
}

impl StateMachine {
    pub fn new(ledger: Arc<Ledger>) -> Self {
        Self { ledger }
    }

    fn apply_entry(&self, entry: Entry) -> Result<Applied, StorageError<NodeId>> {
        let l = &self.ledger;
        match entry.payload {
            EntryPayload::Blank => l.commit_applied(&entry.log_id, None).map_err(write_err)?,
            EntryPayload::Membership(m) => {
                let stored = StoredMembership::new(Some(entry.log_id), m);
                l.commit_applied(&entry.log_id, Some(&stored)).map_err(write_err)?
            }
            EntryPayload::Normal(proposal) => {
                let head = l.head();
                let (blk, writes) = block::build(&l.store, &l.genesis, &head, &proposal).map_err(write_err)?;
                l.commit_block(&blk, &writes, &entry.log_id).map_err(write_err)?;
                return Ok(Applied { height: Some(blk.header.height) });
            }
        }
        Ok(Applied::default())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let store = &self.ledger.store;
        let snap = store.db().snapshot();
        let mut dump: Dump = Vec::new();
        for cf in LEDGER_CFS {
            let entries = store.dump(&snap, cf).map_err(read_err)?;
            dump.push((cf.to_string(), entries.into_iter().map(|(k, v)| (k.into_vec(), v.into_vec())).collect()));
        }
        let meta_of = |key: &[u8]| -> Option<Vec<u8>> {
            dump.iter().find(|(cf, _)| cf == CF_META)?.1.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        let applied: Option<LogId> =
            meta_of(b"applied").map(|v| decode(&v, "applied")).transpose().map_err(read_err)?.flatten();
        let membership: StoredMembership =
            meta_of(b"membership").map(|v| decode(&v, "membership")).transpose().map_err(read_err)?.unwrap_or_default();
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id: format!("{}-{}", applied.map(|l| l.index).unwrap_or(0), self.ledger.head().height),
        };
        let data = encode(&dump);
        store.put_sync(CF_RAFT_META, b"snapshot", &(meta.clone(), data.clone())).map_err(write_err)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError<NodeId>> {
        let store = &self.ledger.store;
        let applied: Option<LogId> = store.get::<Option<LogId>>(CF_META, b"applied").map_err(read_err)?.flatten();
        let membership = store.get(CF_META, b"membership").map_err(read_err)?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        entries.into_iter().map(|e| self.apply_entry(e)).collect()
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let dump: Dump = decode(&data, "snapshot").map_err(read_err)?;
        let store = &self.ledger.store;
        let mut batch = WriteBatch::default();
        for cf in LEDGER_CFS {
            store.stage_clear(&mut batch, cf).map_err(write_err)?;
        }
        for (cf, entries) in &dump {
            if !LEDGER_CFS.contains(&cf.as_str()) {
                return Err(read_err(format!("snapshot carries unknown column family {cf}")));
            }
            for (k, v) in entries {
                batch.put_cf(store.cf(cf), k, v);
            }
        }
        batch.put_cf(store.cf(CF_META), b"applied", encode(&meta.last_log_id));
        batch.put_cf(store.cf(CF_META), b"membership", encode(&meta.last_membership));
        batch.put_cf(store.cf(CF_RAFT_META), b"snapshot", encode(&(meta.clone(), data)));
        store.write_sync(batch).map_err(write_err)?;
        self.ledger.reload_head().map_err(read_err)?;
        tracing::info!(snapshot = %meta.snapshot_id, height = self.ledger.head().height, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let stored: Option<(SnapshotMeta, Vec<u8>)> =
            self.ledger.store.get(CF_RAFT_META, b"snapshot").map_err(read_err)?;
        Ok(stored.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}
