//! Raft snapshots as files, streamed and checked.
//!
//! A snapshot is a file of records, written from a RocksDB snapshot one
//! entry at a time and read back the same way: memory stays flat however
//! large the ledger grows. It carries every block, the chaincode state and
//! indexes, and the certificates held for its last block. The tx index is
//! not carried; the installer rebuilds it from the blocks.
//!
//! A node installs a snapshot only after [`check`] finds that its blocks
//! form one chain from the genesis, each body matching its header, that the
//! chain holds this node's own head block (a snapshot may extend this
//! node's ledger, never roll it back or fork it), that its state hashes to
//! the state root of its last block, and that a majority of orgs signed
//! that block (certificates in the snapshot, each under its own key, or
//! held locally). One org alone cannot make a snapshot pass: it cannot
//! sign for the others.
//!
//! File layout: `MAGIC`, then records `[section u8][key len u32][key]
//! [value len u32][value]` in section order, keys strictly ascending within
//! a section, then a single `END` byte.
//!
//! Architecture Invariant: nothing from a peer's snapshot reaches RocksDB
//! before the whole file passed [`check`].

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use leasehold_chaincode::roster::{MAX_ORGS, MEMBERS};
use leasehold_chaincode::{Commitment, Genesis, MemState};

/// `cfg/` entries a snapshot may hold: voters, approvals, orgs, changes.
const MAX_CFG_ENTRIES: usize = 4 * MAX_ORGS;
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};

use crate::block::{head_after, Block, Head};
use crate::error::{NodeError, Result};
use crate::ledger::certs::Cert;
use crate::ledger::store::{decode, encode, Store, CF_BLOCKS, CF_INDEXES, CF_META, CF_RAFT_META, CF_STATE, CF_TXS};
use crate::raft::{LogId, SnapshotMeta, StoredMembership};

const MAGIC: &[u8; 8] = b"LHSNAP01";
const END: u8 = 0;
/// The sections, in file order.
pub const BLOCKS: u8 = 1;
pub const STATE: u8 = 2;
pub const INDEXES: u8 = 3;
pub const CERTS: u8 = 4;
/// Bounds on one record, so a hostile file cannot make a reader allocate
/// without limit. Blocks are capped far below this by `block.max_bytes`.
const MAX_KEY_BYTES: u32 = 64 * 1024;
const MAX_VALUE_BYTES: u32 = 64 * 1024 * 1024;
/// Bytes staged per write batch while installing.
const INSTALL_BATCH_BYTES: usize = 4 * 1024 * 1024;

fn cf_of(section: u8) -> &'static str {
    match section {
        BLOCKS => CF_BLOCKS,
        STATE => CF_STATE,
        INDEXES => CF_INDEXES,
        _ => CF_META,
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> NodeError + '_ {
    move |e| NodeError::file(path, e)
}

/// What [`write`] wrote: all read from one RocksDB snapshot.
pub struct Written {
    pub path: PathBuf,
    /// `genesis` when no block was committed yet.
    pub head: Head,
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// Writes the ledger as it stands into `dir/name` (temp, fsync, rename).
/// Before the certificates, it waits up to `cert_wait` for `majority`
/// orgs to have signed the last block, so that the file carries its proof.
pub fn write(
    store: &Store,
    dir: &Path,
    name: &str,
    genesis: Head,
    majority: usize,
    cert_wait: std::time::Duration,
) -> Result<Written> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let snap = store.db().snapshot();
    let read = || {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&snap);
        ro
    };
    let head: Head = match store.db().get_cf_opt(store.cf(CF_META), b"head", &read())? {
        Some(v) => decode(&v, "meta/head")?,
        None => genesis,
    };
    let meta_get = |key: &[u8]| store.db().get_cf_opt(store.cf(CF_META), key, &read());
    let applied: Option<LogId> = meta_get(b"applied")?.map(|v| decode(&v, "meta/applied")).transpose()?.flatten();
    let membership: StoredMembership =
        meta_get(b"membership")?.map(|v| decode(&v, "meta/membership")).transpose()?.unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut out = Writer::create(&tmp)?;
    for section in [BLOCKS, STATE, INDEXES] {
        for item in store.db().iterator_cf_opt(store.cf(cf_of(section)), read(), IteratorMode::Start) {
            let (k, v) = item?;
            out.record(section, &k, &v)?;
        }
    }
    let deadline = std::time::Instant::now() + cert_wait;
    let mut certs = held_certs(store, &head)?;
    while head.height > 0 && certs.len() < majority && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
        certs = held_certs(store, &head)?;
    }
    for (k, v) in certs {
        out.record(CERTS, &k, &v)?;
    }
    out.finish()?;
    let path = dir.join(name);
    leasehold_files::durable::rename(&tmp, &path).map_err(io(&path))?;
    Ok(Written { path, head, applied, membership })
}

/// Writes the file format: records in the order the caller gives them
/// (the [`Reader`] refuses any other), then the end marker and an fsync.
pub struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Writer {
    pub fn create(path: &Path) -> Result<Self> {
        let mut out = BufWriter::new(File::create(path).map_err(io(path))?);
        out.write_all(MAGIC).map_err(io(path))?;
        Ok(Self { path: path.to_path_buf(), out })
    }

    pub fn record(&mut self, section: u8, key: &[u8], value: &[u8]) -> Result<()> {
        let mut put = || -> std::io::Result<()> {
            self.out.write_all(&[section])?;
            self.out.write_all(&(key.len() as u32).to_le_bytes())?;
            self.out.write_all(key)?;
            self.out.write_all(&(value.len() as u32).to_le_bytes())?;
            self.out.write_all(value)
        };
        put().map_err(io(&self.path))
    }

    pub fn finish(mut self) -> Result<()> {
        self.out.write_all(&[END]).map_err(io(&self.path))?;
        let file = self.out.into_inner().map_err(|e| NodeError::file(&self.path, e))?;
        file.sync_all().map_err(io(&self.path))
    }
}

/// Why a snapshot is refused, for the log: each says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The file's framing: header, lengths, section order, its end.
    #[error("{0}")]
    Framing(String),
    /// Its blocks: not a chain, not this node's chain, or behind it.
    #[error("{0}")]
    Chain(String),
    /// Its state: not the state its last block commits to.
    #[error("{0}")]
    State(String),
    /// Its certificates: forged, or too few to stand for the network.
    #[error("{0}")]
    Certificates(String),
    /// This node's own store could not be read to check it against.
    #[error("{0}")]
    Local(String),
}

use SnapshotError::{Certificates, Chain, Framing, Local, State};

/// One record: its section, key and value.
pub type Record = (u8, Vec<u8>, Vec<u8>);

/// Reads records back, checking the framing, the bounds, the section order
/// and that keys ascend strictly within a section (a repeated entry would
/// count twice in the lattice hash).
pub struct Reader<R: Read> {
    input: R,
    last: Option<(u8, Vec<u8>)>,
}

impl<R: Read> Reader<R> {
    pub fn new(mut input: R) -> std::result::Result<Self, SnapshotError> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic).map_err(|e| Framing(format!("no snapshot header: {e}")))?;
        if &magic != MAGIC {
            return Err(Framing("not a leasehold snapshot (bad header)".into()));
        }
        Ok(Self { input, last: None })
    }

    fn bytes(&mut self, max: u32, what: &str) -> std::result::Result<Vec<u8>, SnapshotError> {
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len).map_err(|e| Framing(format!("truncated {what}: {e}")))?;
        let len = u32::from_le_bytes(len);
        if len > max {
            return Err(Framing(format!("a {what} of {len} bytes is over the {max}-byte limit")));
        }
        let mut buf = vec![0u8; len as usize];
        self.input.read_exact(&mut buf).map_err(|e| Framing(format!("truncated {what}: {e}")))?;
        Ok(buf)
    }

    /// The next `(section, key, value)`, or `None` at the end marker.
    pub fn next_record(&mut self) -> std::result::Result<Option<Record>, SnapshotError> {
        let mut section = [0u8; 1];
        self.input.read_exact(&mut section).map_err(|e| Framing(format!("truncated snapshot: {e}")))?;
        let section = section[0];
        if section == END {
            let mut rest = [0u8; 1];
            return match self.input.read(&mut rest) {
                Ok(0) => Ok(None),
                _ => Err(Framing("bytes after the end of the snapshot".into())),
            };
        }
        if !(BLOCKS..=CERTS).contains(&section) {
            return Err(Framing(format!("unknown section {section}")));
        }
        let key = self.bytes(MAX_KEY_BYTES, "key")?;
        if let Some((s, k)) = &self.last {
            if section < *s || (section == *s && key <= *k) {
                return Err(Framing(format!("record out of order in section {section}")));
            }
        }
        let value = self.bytes(MAX_VALUE_BYTES, "value")?;
        self.last = Some((section, key.clone()));
        Ok(Some((section, key, value)))
    }
}

const FORGED: &str = "it carries a certificate that is not a valid signature on its last block";

/// Folds one block into the chain being checked.
fn check_block(key: &[u8], value: &[u8], prev: &Head) -> std::result::Result<Head, SnapshotError> {
    let height =
        <[u8; 8]>::try_from(key).map(u64::from_be_bytes).map_err(|_| Framing("a block key is not a height".into()))?;
    let b = Block::from_bytes(value).map_err(|e| Chain(format!("block {height}: {e}")))?;
    if height != prev.height + 1 || b.header.height != height {
        return Err(Chain(format!("block {height} does not follow block {}", prev.height)));
    }
    if b.header.prev_hash != prev.hash {
        return Err(Chain(format!("block {height} does not link to block {}", prev.height)));
    }
    if !b.body_matches_header() {
        let why = "its transactions or verdicts are not the ones its header commits to";
        return Err(Chain(format!("block {height}: {why}")));
    }
    Ok(head_after(&b))
}

fn signs(c: &Cert, head: &Head) -> bool {
    c.height == head.height && c.hash == head.hash && c.state_root == head.state_root.0
}

/// The certificates this node holds on `head`, as stored: key and value.
/// Stored ones were verified when they arrived.
fn held_certs(store: &Store, head: &Head) -> Result<Vec<crate::ledger::store::KeyValue>> {
    let prefix = crate::ledger::certs::height_prefix(head.height);
    let mut held = Vec::new();
    let iter = store.db().iterator_cf(store.cf(CF_META), IteratorMode::From(&prefix, rocksdb::Direction::Forward));
    for item in iter {
        let (k, v) = item?;
        if !k.starts_with(&prefix) {
            break;
        }
        if signs(&decode::<Cert>(&v, "block certificate")?, head) {
            held.push((k, v));
        }
    }
    Ok(held)
}

/// The orgs whose valid signature on `head` this node holds.
fn local_signers(store: &Store, genesis: &Genesis, head: &Head) -> Result<BTreeSet<String>> {
    let mut signers = BTreeSet::new();
    for (_, v) in held_certs(store, head)? {
        let c: Cert = decode(&v, "block certificate")?;
        if c.verify(genesis) {
            signers.insert(c.org);
        }
    }
    Ok(signers)
}

/// Checks a snapshot file before anything of it is installed (see the
/// module docs) and returns the head it holds. The error says what is
/// wrong, for the log. Its certificates count only from `orgs`, the orgs in
/// effect on this node's own ledger: never from orgs the snapshot itself
/// says have joined, or one org could forge a network of its own.
pub fn check(
    input: impl Read,
    genesis_bytes: &[u8],
    genesis: &Genesis,
    orgs: &Genesis,
    local: &Store,
) -> std::result::Result<Head, SnapshotError> {
    check_with_cfg(input, genesis_bytes, genesis, orgs, local).map(|(head, _)| head)
}

/// As [`check`], and returns the snapshot's `cfg/` state (the orgs and the
/// voters in effect at its head), certified with the rest.
pub fn check_with_cfg(
    input: impl Read,
    genesis_bytes: &[u8],
    genesis: &Genesis,
    orgs: &Genesis,
    local: &Store,
) -> std::result::Result<(Head, MemState), SnapshotError> {
    let mut cfg = MemState::default();
    let mut reader = Reader::new(input)?;
    let genesis_head = Head::genesis(genesis_bytes, genesis);
    let mine = local.head().map_err(|e| Local(e.to_string()))?.unwrap_or(genesis_head);
    let mut head = genesis_head;
    let mut commitment = Commitment::empty();
    let mut signers = BTreeSet::new();
    // Certificates by a key or an org this node does not know (rotated or
    // joined since this node's head): checked against the snapshot's own
    // roster once the rest is certified, and never counted.
    let mut later = Vec::new();
    let mut cert_records = 0;
    while let Some((section, key, value)) = reader.next_record()? {
        match section {
            BLOCKS => {
                head = check_block(&key, &value, &head)?;
                if head.height == mine.height && head.hash != mine.hash {
                    return Err(Chain(format!(
                        "its block {} is not this node's: it would fork this node's chain",
                        head.height
                    )));
                }
            }
            STATE | INDEXES => {
                if key.starts_with(b"idx/") != (section == INDEXES) {
                    return Err(Framing("a state entry is in the wrong section".into()));
                }
                commitment.insert(&key, &value);
                if key.starts_with(b"cfg/") {
                    if cfg.map.len() >= MAX_CFG_ENTRIES {
                        return Err(State(format!("it holds more than {MAX_CFG_ENTRIES} configuration entries")));
                    }
                    cfg.map.insert(key, value);
                }
            }
            _ => {
                // Blocks come first, so `head` is final here. A certificate
                // is stored under the key it names, so the key must be its own.
                let c: Cert = decode(&value, "block certificate").map_err(|e| Certificates(e.to_string()))?;
                cert_records += 1;
                let known = orgs.org(&c.org).is_some();
                if key != c.key() || !signs(&c, &head) || cert_records > 2 * MAX_ORGS {
                    return Err(Certificates(FORGED.into()));
                }
                // An org that joined, or a key rotated, after this node's
                // head: its signature may be real, but only the snapshot's
                // own roster can say; it is checked against that below, and
                // never counted. A certificate no roster backs is refused,
                // or it would be installed, fail `verify` and be served on.
                match (known, c.verify(orgs)) {
                    (true, true) => {
                        signers.insert(c.org);
                    }
                    _ => later.push(c),
                }
            }
        }
    }
    if head.height < mine.height {
        return Err(Chain(format!(
            "it ends at height {}, below this node's head ({}): it would roll this node's ledger back",
            head.height, mine.height
        )));
    }
    if commitment.root() != head.state_root {
        return Err(State(format!(
            "its state hashes to {}, not to the state root of its last block (height {}, {})",
            commitment.root().to_hex(),
            head.height,
            head.state_root.to_hex()
        )));
    }
    signers.extend(local_signers(local, orgs, &head).map_err(|e| Local(e.to_string()))?);
    // The genesis state needs no signatures: every node starts from it.
    if head.height > 0 && signers.len() <= orgs.orgs.len() / 2 {
        return Err(Certificates(format!(
            "its last block (height {}) is not certified by a majority of the orgs (signed by {:?})",
            head.height, signers
        )));
    }
    let theirs = leasehold_chaincode::roster::Roster::load(&cfg, genesis).map_err(|e| State(e.to_string()))?;
    if later.iter().any(|c| !c.verify(&theirs.orgs)) {
        return Err(Certificates(FORGED.into()));
    }
    Ok((head, cfg))
}

/// Installs a snapshot that passed [`check`], replacing the ledger, in
/// bounded batches. A marker in `meta` is set first and cleared with the
/// last batch, so a crash part-way is found at the next start (see
/// [`check_not_interrupted`]). The file is copied, as it is read, to `keep`:
/// the snapshot this node will serve next.
pub fn install(store: &Store, input: impl Read, meta: &SnapshotMeta, keep: &Path, expect: &Head) -> Result<()> {
    store.put_sync(CF_META, b"installing", &meta.snapshot_id)?;
    let mut batch = WriteBatch::default();
    for cf in [CF_BLOCKS, CF_TXS, CF_STATE, CF_INDEXES] {
        if let Some(Ok((last, _))) = store.db().iterator_cf(store.cf(cf), IteratorMode::End).next() {
            let mut end = last.into_vec();
            end.push(0);
            batch.delete_range_cf(store.cf(cf), Vec::new(), end);
        }
    }
    let tmp = keep.with_extension("tmp");
    let copy = BufWriter::new(File::create(&tmp).map_err(io(&tmp))?);
    let mut tee = Tee { input, copy };
    let mut reader = Reader::new(&mut tee).map_err(|e| NodeError::decode("snapshot", e))?;
    let mut commitment = Commitment::empty();
    let mut head = None;
    let mut members = None;
    while let Some((section, key, value)) = reader.next_record().map_err(|e| NodeError::decode("snapshot", e))? {
        if section == STATE && key == MEMBERS {
            members = Some(value.clone());
        }
        match section {
            BLOCKS => {
                let b = Block::from_bytes(&value)?;
                for (i, (tx, verdict)) in b.txs.iter().zip(&b.verdicts).enumerate() {
                    if *verdict == leasehold_chaincode::Verdict::Valid {
                        batch.put_cf(store.cf(CF_TXS), tx.id().0, encode(&(b.header.height, i as u32)));
                    }
                }
                head = Some(head_after(&b));
            }
            STATE | INDEXES => commitment.insert(&key, &value),
            _ => {}
        }
        batch.put_cf(store.cf(cf_of(section)), &key, &value);
        if batch.size_in_bytes() > INSTALL_BATCH_BYTES {
            store.db().write(std::mem::take(&mut batch))?;
        }
    }
    let mut copy = tee.copy.into_inner().map_err(|e| NodeError::file(&tmp, e))?;
    copy.flush().and_then(|()| copy.sync_all()).map_err(io(&tmp))?;
    leasehold_files::durable::rename(&tmp, keep).map_err(io(keep))?;
    let head = head.unwrap_or(*expect);
    if head != *expect || commitment.root() != head.state_root {
        return Err(NodeError::Corrupt("the snapshot changed on disk between its check and its install".into()));
    }
    batch.put_cf(store.cf(CF_META), b"head", encode(&head));
    // Blocks below this came in the snapshot, checked through the chain but
    // not applied here: this node does not certify them (see `certify`).
    batch.put_cf(store.cf(CF_META), b"installed_at", encode(&head.height));
    if let Some(members) = &members {
        crate::ledger::stage_roster(store, &mut batch, head.height + 1, members);
    }
    batch.put_cf(store.cf(CF_META), b"commitment", commitment.to_bytes());
    batch.put_cf(store.cf(CF_META), b"applied", encode(&meta.last_log_id));
    batch.put_cf(store.cf(CF_META), b"membership", encode(&meta.last_membership));
    let name = keep.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    batch.put_cf(store.cf(CF_RAFT_META), b"snapshot", encode(&(meta, name)));
    batch.delete_cf(store.cf(CF_META), b"installing");
    store.write_sync(batch)
}

/// Refuses a store whose snapshot install was cut short: its ledger is
/// part old, part new.
pub fn check_not_interrupted(store: &Store) -> Result<()> {
    match store.get::<String>(CF_META, b"installing")? {
        None => Ok(()),
        Some(id) => Err(NodeError::Verify {
            height: store.head()?.map_or(0, |h| h.height),
            reason: format!("the install of snapshot {id} was interrupted"),
        }),
    }
}

/// Copies what is read through it.
struct Tee<R: Read> {
    input: R,
    copy: BufWriter<File>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}
