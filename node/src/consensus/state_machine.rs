//! openraft's state machine: each normal entry is a proposal that becomes a
//! block, re-validated by the chaincode on every node.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageError};
use tokio::fs::File;

use crate::block::{self, Head};
use crate::ledger::snapshot;
use crate::ledger::store::{CF_META, CF_RAFT_META};
use crate::ledger::Ledger;
use crate::raft::{read_err, write_err, Applied, Entry, LogId, NodeId, SnapshotMeta, StoredMembership, TypeConfig};

/// How long a snapshot's builder waits for a majority to sign its last
/// block, so that the snapshot carries its own proof. Signatures usually
/// arrive within milliseconds of a block.
const CERT_WAIT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct StateMachine {
    ledger: Arc<Ledger>,
    /// Where snapshot files live.
    dir: PathBuf,
}

fn unique_name(kind: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{kind}-{nanos}.snap")
}

/// Removes snapshot files other than `keep`: only the current one is served.
fn remove_others(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".snap") && name != keep {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl StateMachine {
    pub fn new(ledger: Arc<Ledger>, dir: PathBuf) -> Self {
        Self { ledger, dir }
    }

    fn genesis_head(&self) -> Head {
        Head::genesis(&self.ledger.genesis_bytes, &self.ledger.genesis)
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
                let (head, commitment) = (l.head(), l.commitment());
                let (blk, writes, commitment) =
                    block::build(&l.store, &l.roster().orgs, &head, &commitment, &proposal, &|d| l.checked.take(d))
                        .map_err(write_err)?;
                l.commit_block(&blk, &writes, commitment, &entry.log_id).map_err(write_err)?;
                return Ok(Applied { height: Some(blk.header.height) });
            }
        }
        Ok(Applied::default())
    }

    async fn open(&self, name: &str) -> Result<Box<File>, StorageError<NodeId>> {
        Ok(Box::new(File::open(self.dir.join(name)).await.map_err(read_err)?))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (ledger, dir, genesis) = (self.ledger.clone(), self.dir.clone(), self.genesis_head());
        let name = unique_name("built");
        let file = name.clone();
        let written = tokio::task::spawn_blocking(move || {
            let majority = ledger.roster().orgs.orgs.len() / 2 + 1;
            snapshot::write(&ledger.store, &dir, &file, genesis, majority, CERT_WAIT)
        })
        .await
        .map_err(write_err)?
        .map_err(write_err)?;
        let meta = SnapshotMeta {
            last_log_id: written.applied,
            last_membership: written.membership,
            snapshot_id: format!("{}-{}", written.applied.map(|l| l.index).unwrap_or(0), written.head.height),
        };
        self.ledger.store.put_sync(CF_RAFT_META, b"snapshot", &(meta.clone(), name.clone())).map_err(write_err)?;
        remove_others(&self.dir, &name);
        Ok(Snapshot { meta, snapshot: self.open(&name).await? })
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<File>, StorageError<NodeId>> {
        tokio::fs::create_dir_all(&self.dir).await.map_err(write_err)?;
        let path = self.dir.join("incoming-raft.part");
        let mut open = tokio::fs::OpenOptions::new();
        let file = open.read(true).write(true).create(true).truncate(true).open(path).await;
        Ok(Box::new(file.map_err(write_err)?))
    }

    /// Checks the snapshot again (the receiver checked it before handing it
    /// to raft; this guards against the file changing under it), then
    /// installs it in bounded batches.
    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<File>) -> Result<(), StorageError<NodeId>> {
        let (ledger, dir, meta2) = (self.ledger.clone(), self.dir.clone(), meta.clone());
        let mut file = snapshot.into_std().await;
        let name = unique_name("installed");
        let keep = name.clone();
        let head = tokio::task::spawn_blocking(move || -> Result<Head, StorageError<NodeId>> {
            use std::io::{Seek, SeekFrom};
            let l = &ledger;
            file.seek(SeekFrom::Start(0)).map_err(read_err)?;
            let input = std::io::BufReader::new(&mut file);
            let head =
                snapshot::check(input, &l.genesis_bytes, &l.genesis, &l.roster().orgs, &l.store).map_err(read_err)?;
            file.seek(SeekFrom::Start(0)).map_err(read_err)?;
            let input = std::io::BufReader::new(&mut file);
            snapshot::install(&l.store, input, &meta2, &dir.join(&keep), &head).map_err(write_err)?;
            Ok(head)
        })
        .await
        .map_err(write_err)??;
        self.ledger.reload_head().map_err(read_err)?;
        remove_others(&self.dir, &name);
        tracing::info!(snapshot = %meta.snapshot_id, height = head.height, "installed a checked snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let stored: Option<(SnapshotMeta, String)> =
            self.ledger.store.get(CF_RAFT_META, b"snapshot").map_err(read_err)?;
        match stored {
            Some((meta, name)) => Ok(Some(Snapshot { meta, snapshot: self.open(&name).await? })),
            None => Ok(None),
        }
    }
}
