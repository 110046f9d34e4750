//! RocksDB: one database, a column family per concern.
//!
//! | cf | key | value |
//! | --- | --- | --- |
//! | `raft_log` | log index (u64 BE) | raft entry |
//! | `raft_meta` | `vote`, `committed`, `purged`, `snapshot` | raft metadata |
//! | `blocks` | height (u64 BE) | [`Block`] |
//! | `txs` | tx id | (height, position) |
//! | `state` | chaincode key | chaincode value |
//! | `indexes` | chaincode `idx/...` key | empty |
//! | `meta` | `head`, `commitment`, `applied`, `membership`, `genesis`, `cert/...`, `installed_at`, `installing` | node metadata |
//!
//! A block, its state changes, its tx index entries, the state commitment
//! and the applied raft log id are written in one `WriteBatch`
//! ([`crate::ledger::Ledger::commit_block`]).

use std::path::Path;
use std::sync::Arc;

use leasehold_chaincode::{ChaincodeError, Commitment, StateRead, TxId, WriteSet};
use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options,
    WriteBatch, WriteOptions, DB,
};
use serde::{de::DeserializeOwned, Serialize};

use crate::block::{Block, Head};
use crate::error::{NodeError, Result};

pub const CF_RAFT_LOG: &str = "raft_log";
pub const CF_RAFT_META: &str = "raft_meta";
pub const CF_BLOCKS: &str = "blocks";
pub const CF_TXS: &str = "txs";
pub const CF_STATE: &str = "state";
pub const CF_INDEXES: &str = "indexes";
pub const CF_META: &str = "meta";
const ALL_CFS: [&str; 7] = [CF_RAFT_LOG, CF_RAFT_META, CF_BLOCKS, CF_TXS, CF_STATE, CF_INDEXES, CF_META];

/// One column family's memtable, and all of them together.
const MEMTABLE_BYTES: usize = 16 << 20;
const ALL_MEMTABLES_BYTES: usize = 64 << 20;

/// Bloom filters: 10 bits per key is about a 1 % false-positive rate, in
/// the files and (a tenth of each memtable's size) in the memtables.
const BLOOM_BITS_PER_KEY: f64 = 10.0;
const MEMTABLE_BLOOM_RATIO: f64 = 0.1;

/// RocksDB's memory, by where it is (see `Store::memory`).
#[derive(Debug, Clone, Copy)]
pub struct StorageMemory {
    pub memtables_bytes: u64,
    /// Index and filter blocks, held outside the block cache.
    pub table_readers_bytes: u64,
    pub block_cache_bytes: u64,
}

/// A raw RocksDB entry.
pub type KeyValue = (Box<[u8]>, Box<[u8]>);

/// Where a committed tx is.
pub type TxLocation = (u64, u32);

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).expect("in-memory serialisation")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    bincode::deserialize(bytes).map_err(|e| NodeError::decode(what, e))
}

#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        // LZ4 (the codec this build of RocksDB has): blocks repeat their
        // network, org and dataset ids in every tx, and state keys share
        // long prefixes.
        opts.set_compression_type(DBCompressionType::Lz4);
        // Memtables are most of a node's memory as the ledger grows: 16 MiB
        // each, and at most 64 MiB for all seven column families together
        // (RocksDB flushes the largest when they would pass it).
        opts.set_write_buffer_size(MEMTABLE_BYTES);
        opts.set_db_write_buffer_size(ALL_MEMTABLES_BYTES);
        // Most point reads miss: every new tx id is looked up in `txs`, and
        // a grant reads keys it is about to create. Without filters each
        // miss searched every memtable and read an index and a data block
        // of every level's files (a fifth of a node's CPU at saturation);
        // with them, a miss costs a few hashes. About 1.25 bytes per key.
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
        opts.set_block_based_table_factory(&table);
        opts.set_memtable_whole_key_filtering(true);
        opts.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO);
        // Each column family takes its options from its descriptor.
        let cfs = ALL_CFS.map(|name| ColumnFamilyDescriptor::new(name, opts.clone()));
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// What RocksDB holds in memory now, as it counts it.
    pub fn memory(&self) -> StorageMemory {
        let sum = |property: &str| {
            ALL_CFS.iter().filter_map(|cf| self.db.property_int_value_cf(self.cf(cf), property).ok().flatten()).sum()
        };
        StorageMemory {
            memtables_bytes: sum("rocksdb.cur-size-all-mem-tables"),
            table_readers_bytes: sum("rocksdb.estimate-table-readers-mem"),
            // RocksDB's default cache (32 MiB), shared by every column
            // family: asked once.
            block_cache_bytes: (self.db.property_int_value_cf(self.cf(CF_STATE), "rocksdb.block-cache-usage"))
                .ok()
                .flatten()
                .unwrap_or(0),
        }
    }

    /// Opens without taking the write lock, for offline checks.
    /// (See also [`lock_stopped`].)
    pub fn open_read_only(dir: &Path) -> Result<Self> {
        let db = DB::open_cf_for_read_only(&Options::default(), dir, ALL_CFS, false)?;
        Ok(Self { db: Arc::new(db) })
    }

    pub fn cf(&self, name: &str) -> &ColumnFamily {
        self.db.cf_handle(name).expect("column family opened in Store::open")
    }

    pub fn db(&self) -> &DB {
        &self.db
    }

    pub fn get<T: DeserializeOwned>(&self, cf: &str, key: &[u8]) -> Result<Option<T>> {
        match self.db.get_pinned_cf(self.cf(cf), key)? {
            Some(v) => decode(&v, &format!("{cf}/{}", String::from_utf8_lossy(key))).map(Some),
            None => Ok(None),
        }
    }

    /// Writes durably: raft metadata must survive a crash once acknowledged.
    pub fn put_sync<T: Serialize>(&self, cf: &str, key: &[u8], value: &T) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.put_cf_opt(self.cf(cf), key, encode(value), &wo)?;
        Ok(())
    }

    pub fn write_sync(&self, batch: WriteBatch) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    pub fn head(&self) -> Result<Option<Head>> {
        self.get(CF_META, b"head")
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>> {
        match self.db.get_pinned_cf(self.cf(CF_BLOCKS), height.to_be_bytes())? {
            Some(v) => Block::from_bytes(&v).map(Some),
            None => Ok(None),
        }
    }

    /// Blocks from `from` on, at most `limit`, and no more than `max_bytes`
    /// of them encoded (one block at least, whatever its size): each is
    /// measured before it is decoded.
    pub fn blocks(&self, from: u64, limit: u64, max_bytes: usize) -> Result<Vec<Block>> {
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        for height in from..from.saturating_add(limit) {
            let Some(v) = self.db.get_pinned_cf(self.cf(CF_BLOCKS), height.to_be_bytes())? else { break };
            bytes += v.len();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(Block::from_bytes(&v)?);
        }
        Ok(out)
    }

    /// Whether tx `id` was ordered, valid or not: the chaincode spends
    /// every correctly signed tx it orders.
    pub fn is_spent(&self, id: &TxId) -> Result<bool> {
        Ok(StateRead::get(self, &leasehold_chaincode::keys::tx(id))?.is_some())
    }

    pub fn tx_location(&self, id: &TxId) -> Result<Option<TxLocation>> {
        self.get(CF_TXS, &id.0)
    }

    /// Adds a block and everything it changed to `batch`.
    pub fn stage_block(&self, batch: &mut WriteBatch, block: &Block, writes: &WriteSet, head: &Head) {
        batch.put_cf(self.cf(CF_BLOCKS), block.header.height.to_be_bytes(), block.to_bytes());
        for (i, tx) in block.txs.iter().enumerate() {
            if block.verdicts[i] == leasehold_chaincode::Verdict::Valid {
                let loc: TxLocation = (block.header.height, i as u32);
                batch.put_cf(self.cf(CF_TXS), tx.id().0, encode(&loc));
            }
        }
        for (k, v) in writes {
            let cf = self.cf(state_cf(k));
            match v {
                Some(v) => batch.put_cf(cf, k, v),
                None => batch.delete_cf(cf, k),
            }
        }
        batch.put_cf(self.cf(CF_META), b"head", encode(head));
    }

    /// The state commitment at the head, as stored beside it. Before the
    /// first block none is stored, and it is computed (the empty state).
    pub fn commitment(&self) -> Result<Commitment> {
        match self.db.get_pinned_cf(self.cf(CF_META), b"commitment")? {
            Some(bytes) => Commitment::from_bytes(&bytes)
                .ok_or_else(|| NodeError::decode("meta/commitment", format!("{} bytes", bytes.len()))),
            None => self.compute_commitment(),
        }
    }

    /// Hashes every entry of the chaincode's column families (state and
    /// indexes): O(state), for checks, never per block.
    pub fn compute_commitment(&self) -> Result<Commitment> {
        let mut c = Commitment::empty();
        for cf in [CF_STATE, CF_INDEXES] {
            for item in self.db.iterator_cf(self.cf(cf), IteratorMode::Start) {
                let (k, v) = item?;
                c.insert(&k, &v);
            }
        }
        Ok(c)
    }

    /// How many txs the tx index holds: O(txs), for checks.
    pub fn count_indexed_txs(&self) -> Result<u64> {
        let mut n = 0;
        for item in self.db.iterator_cf(self.cf(CF_TXS), IteratorMode::Start) {
            item?;
            n += 1;
        }
        Ok(n)
    }
}

/// Chaincode keys under `idx/` are secondary indexes and live in their own cf.
fn state_cf(key: &[u8]) -> &'static str {
    if key.starts_with(b"idx/") {
        CF_INDEXES
    } else {
        CF_STATE
    }
}

fn storage_err(e: rocksdb::Error) -> ChaincodeError {
    ChaincodeError::Storage(e.to_string())
}

/// The committed chaincode state, read straight from RocksDB.
impl StateRead for Store {
    fn get(&self, key: &[u8]) -> leasehold_chaincode::Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(state_cf(key)), key).map_err(storage_err)
    }

    fn scan_after(
        &self,
        prefix: &[u8],
        after: &[u8],
        limit: usize,
    ) -> leasehold_chaincode::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let start = if after > prefix { after } else { prefix };
        let iter = self.db.iterator_cf(self.cf(state_cf(prefix)), IteratorMode::From(start, Direction::Forward));
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(storage_err)?;
            if !k.starts_with(prefix) || out.len() == limit {
                break;
            }
            if *k != *after {
                out.push((k.to_vec(), v.to_vec()));
            }
        }
        Ok(out)
    }
}

/// Takes the lock RocksDB holds on the store in `dir` (a POSIX record lock
/// on `LOCK`), so the node cannot start while the caller holds the file it
/// returns. Fails, saying so, while a node has the store open. `None` when
/// there is no store. Unlike opening the store, this writes nothing.
pub fn lock_stopped(dir: &Path) -> Result<Option<std::fs::File>> {
    use nix::fcntl::{fcntl, FcntlArg};
    let path = dir.join("LOCK");
    let file = match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::error::NodeError::file(&path, e)),
    };
    let whole = nix::libc::flock {
        l_type: nix::libc::F_WRLCK as i16,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    match fcntl(&file, FcntlArg::F_SETLK(&whole)) {
        Ok(_) => Ok(Some(file)),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Err(crate::error::NodeError::Unavailable(
            format!("{} is in use by a running node: stop the node first", dir.display()),
        )),
        Err(e) => Err(crate::error::NodeError::file(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use leasehold_chaincode::{Payload, TxBody, Verdict};

    use super::*;
    use crate::block::BlockHeader;

    /// A block of `txs` transactions of about 200 KiB each.
    fn heavy_block(height: u64, txs: usize) -> Block {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let tx = |n: usize| {
            let payload = Payload::DenyLease { lease_id: format!("L{n}"), reason: "x".repeat(200 << 10) };
            TxBody { network_id: "n".into(), org: "org1".into(), nonce: n as u64, created_at_ms: 0, payload }.sign(&key)
        };
        let header = BlockHeader {
            height,
            prev_hash: [0; 32],
            time_ms: 0,
            proposer: "org1".into(),
            txs_root: [0; 32],
            verdicts_root: [0; 32],
            state_root: [0; 32],
        };
        Block {
            header,
            proposer_signature: Vec::new(),
            proposed_time_ms: 0,
            txs: (0..txs).map(tx).collect(),
            verdicts: vec![Verdict::Valid; txs],
        }
    }

    #[test]
    fn a_page_of_blocks_stops_at_its_bytes_with_one_block_at_least() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        for h in 1..=20u64 {
            batch.put_cf(store.cf(CF_BLOCKS), h.to_be_bytes(), heavy_block(h, 10).to_bytes());
        }
        store.write_sync(batch).unwrap();
        // 20 blocks of about 1.95 MiB: a page of 8 MiB holds 4 of them.
        let page = store.blocks(1, 100, 8 << 20).unwrap();
        assert_eq!(page.iter().map(|b| b.header.height).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(store.blocks(5, 100, 1).unwrap().len(), 1, "one block, whatever its size");
        assert_eq!(store.blocks(19, 100, 8 << 20).unwrap().len(), 2, "up to the head");
    }
}
