//! The committed ledger as the rest of the node sees it: the store, the
//! genesis, the head, and receipts for transactions waiting to commit.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use leasehold_chaincode::roster::{Roster, MEMBERS};
use leasehold_chaincode::{Commitment, Genesis, Lease, LeaseStatus, MemState, TxId, Verdict, WriteSet};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

pub mod certs;
pub(crate) mod checked;
pub(crate) mod followed;
pub mod snapshot;
pub mod store;
pub mod verify;

use crate::block::{head_after, Block, Head};
use crate::error::{NodeError, Result};
use crate::raft::{LogId, StoredMembership};
use store::{encode, Store, CF_META};

/// Where and how a transaction was committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub height: u64,
    pub index: u32,
    pub verdict: Verdict,
}

pub struct Ledger {
    pub store: Store,
    pub genesis: Genesis,
    pub genesis_bytes: Vec<u8>,
    head: watch::Sender<Head>,
    /// The orgs in effect at the head: blocks are built and signatures
    /// checked against it (see `chaincode::roster`).
    roster: watch::Sender<Arc<Roster>>,
    /// The roster each change brought in, by the first height built with
    /// it: a block's certificate counts the orgs of its own height.
    rosters: Mutex<BTreeMap<u64, Arc<Roster>>>,
    /// The state commitment at the head; only the state machine changes it.
    commitment: Mutex<Commitment>,
    waiters: Mutex<HashMap<TxId, Vec<oneshot::Sender<Receipt>>>>,
    /// Txs this node handed to leaders, followed until they are ordered.
    pub(crate) watch: followed::Watch,
    /// Signatures verified on admission, not verified again at apply.
    pub(crate) checked: checked::Checked,
    pub metrics: crate::metrics::Metrics,
}

impl Ledger {
    /// Opens the ledger in `store`, recording the genesis on first use and
    /// refusing a store that was made for another genesis.
    pub fn open(store: Store, genesis_bytes: Vec<u8>) -> Result<Self> {
        let genesis: Genesis = serde_json::from_slice(&genesis_bytes).map_err(|e| NodeError::decode("genesis", e))?;
        match store.get::<Vec<u8>>(CF_META, b"genesis")? {
            Some(stored) if stored != genesis_bytes => {
                return Err(NodeError::Config("the data dir belongs to a different genesis".into()))
            }
            Some(_) => {}
            None => store.put_sync(CF_META, b"genesis", &genesis_bytes)?,
        }
        let head = store.head()?.unwrap_or_else(|| Head::genesis(&genesis_bytes, &genesis));
        let commitment = Mutex::new(store.commitment()?);
        let head = watch::channel(head).0;
        let roster = watch::channel(Arc::new(Roster::load(&store, &genesis)?)).0;
        let rosters = Mutex::new(load_rosters(&store, &genesis)?);
        let waiters = Mutex::new(HashMap::new());
        let metrics = Default::default();
        let watch = Default::default();
        let checked = checked::Checked::default();
        Ok(Self { store, genesis, genesis_bytes, head, roster, rosters, commitment, waiters, watch, checked, metrics })
    }

    /// The roster blocks at `height` were built with: the one after block
    /// `height - 1`. Below a snapshot this node installed, where it knows
    /// no history, the earliest roster it knows.
    pub fn roster_at(&self, height: u64) -> Arc<Roster> {
        let rosters = self.rosters.lock().expect("rosters lock");
        let at = rosters.range(..=height).next_back().or_else(|| rosters.iter().next());
        at.map(|(_, r)| r.clone()).expect("the genesis roster is always there")
    }

    /// The orgs in effect at the head.
    pub fn roster(&self) -> Arc<Roster> {
        self.roster.borrow().clone()
    }

    /// Follows the roster as blocks change it.
    pub fn watch_roster(&self) -> watch::Receiver<Arc<Roster>> {
        self.roster.subscribe()
    }

    fn reload_roster(&self) -> Result<()> {
        let roster = Roster::load(&self.store, &self.genesis)?;
        self.roster.send_if_modified(|r| {
            let changed = **r != roster;
            *r = Arc::new(roster);
            changed
        });
        Ok(())
    }

    /// The state commitment at the head.
    pub fn commitment(&self) -> Commitment {
        self.commitment.lock().expect("commitment lock").clone()
    }

    /// The ledger's notion of now: the wall clock, never behind the last
    /// block's time, so a lease that the ledger has ended stays ended even
    /// when this host's clock runs behind.
    pub fn now_ms(&self) -> i64 {
        crate::clock::now_ms().max(self.head().time_ms)
    }

    /// Whether `lease` is active now, by the ledger's records and
    /// [`Ledger::now_ms`].
    pub fn lease_status_now(&self, lease_id: &str) -> Result<Option<(Lease, LeaseStatus)>> {
        let now = self.now_ms();
        Ok(leasehold_chaincode::query::lease(&self.store, lease_id)?.map(|l| {
            let s = l.status_at(now);
            (l, s)
        }))
    }

    pub fn head(&self) -> Head {
        *self.head.borrow()
    }

    /// Follows the head as blocks commit.
    pub fn watch_head(&self) -> watch::Receiver<Head> {
        self.head.subscribe()
    }

    /// Re-reads the head after the store was replaced (snapshot install).
    pub fn reload_head(&self) -> Result<()> {
        let head = self.store.head()?.unwrap_or_else(|| Head::genesis(&self.genesis_bytes, &self.genesis));
        *self.commitment.lock().expect("commitment lock") = self.store.commitment()?;
        self.reload_roster()?;
        *self.rosters.lock().expect("rosters lock") = load_rosters(&self.store, &self.genesis)?;
        self.head.send_replace(head);
        Ok(())
    }

    /// A receiver that resolves when `id` is committed on this node.
    pub fn wait_for(&self, id: TxId) -> oneshot::Receiver<Receipt> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().expect("waiters lock").entry(id).or_default().push(tx);
        rx
    }

    /// Drops waiters whose receivers are gone (timed-out submitters).
    pub fn prune_waiters(&self) {
        self.waiters.lock().expect("waiters lock").retain(|_, v| {
            v.retain(|s| !s.is_closed());
            !v.is_empty()
        });
    }

    /// Commits a block with its writes, the state commitment after it and
    /// the raft log id it came from, in one write batch, then advances the
    /// head and resolves receipts.
    pub fn commit_block(
        &self,
        block: &Block,
        writes: &WriteSet,
        commitment: Commitment,
        applied: &LogId,
    ) -> Result<()> {
        let head = head_after(block);
        let mut batch = WriteBatch::default();
        self.store.stage_block(&mut batch, block, writes, &head);
        batch.put_cf(self.store.cf(CF_META), b"commitment", commitment.to_bytes());
        batch.put_cf(self.store.cf(CF_META), b"applied", encode(&Some(*applied)));
        let members = writes.get(MEMBERS).cloned().flatten();
        if let Some(members) = &members {
            stage_roster(&self.store, &mut batch, head.height + 1, members);
            // In effect before the block's state is visible: a reader that
            // sees an org's leave (its leases revoked) never then checks a
            // signature against the roster it left. Early is harmless: a
            // tx admitted now is ordered after this block.
            let mut state = MemState::default();
            state.map.insert(MEMBERS.to_vec(), members.clone());
            let roster = Arc::new(Roster::load(&state, &self.genesis)?);
            self.rosters.lock().expect("rosters lock").insert(head.height + 1, roster.clone());
            self.roster.send_if_modified(|r| {
                let changed = **r != *roster;
                *r = roster;
                changed
            });
        }
        self.store.db().write(batch)?;
        *self.commitment.lock().expect("commitment lock") = commitment;
        self.head.send_replace(head);
        for (tx, verdict) in block.txs.iter().zip(&block.verdicts) {
            if matches!(verdict, leasehold_chaincode::Verdict::Valid) {
                let kind = crate::metrics::KindLabels { kind: tx.body.payload.kind().into() };
                self.metrics.txs_committed.get_or_create(&kind).inc();
            }
        }
        self.notify(block);
        Ok(())
    }

    /// Records an applied raft entry that made no block.
    pub fn commit_applied(&self, applied: &LogId, membership: Option<&StoredMembership>) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.store.cf(CF_META), b"applied", encode(&Some(*applied)));
        if let Some(m) = membership {
            batch.put_cf(self.store.cf(CF_META), b"membership", encode(m));
        }
        self.store.db().write(batch)?;
        Ok(())
    }

    fn notify(&self, block: &Block) {
        let following = !self.watch.is_empty();
        let mut waiters = self.waiters.lock().expect("waiters lock");
        if waiters.is_empty() && !following {
            return;
        }
        let ids: Vec<TxId> = block.txs.iter().map(|t| t.id()).collect();
        if following {
            self.watch.committed(&ids);
        }
        for (i, (id, verdict)) in ids.iter().zip(&block.verdicts).enumerate() {
            if let Some(list) = waiters.remove(id) {
                let receipt = Receipt { height: block.header.height, index: i as u32, verdict: verdict.clone() };
                for w in list {
                    let _ = w.send(receipt.clone());
                }
            }
        }
    }
}

const ROSTER_PREFIX: &[u8] = b"roster_from/";

/// Keeps, in `meta`, the members (the state's value under `MEMBERS`) in
/// effect from block `from_height` on.
pub(crate) fn stage_roster(store: &Store, batch: &mut WriteBatch, from_height: u64, members: &[u8]) {
    let mut key = ROSTER_PREFIX.to_vec();
    key.extend(format!("{from_height:020}").into_bytes());
    batch.put_cf(store.cf(CF_META), key, members);
}

/// The genesis roster at height 1 and every roster kept since.
fn load_rosters(store: &Store, genesis: &Genesis) -> Result<BTreeMap<u64, Arc<Roster>>> {
    let mut out = BTreeMap::new();
    out.insert(1, Arc::new(Roster::load(&MemState::default(), genesis)?));
    let iter = store.db().iterator_cf(store.cf(CF_META), IteratorMode::From(ROSTER_PREFIX, Direction::Forward));
    // One entry per org change (joins, leaves and rotations: at most
    // MAX_ORGS * (2 + MAX_ROTATIONS)) and per install.
    for item in iter {
        let (k, v) = item?;
        let Some(height) = k.strip_prefix(ROSTER_PREFIX) else { break };
        let height = std::str::from_utf8(height).ok().and_then(|h| h.parse::<u64>().ok());
        let height = height.ok_or_else(|| NodeError::Corrupt("a roster key in meta does not parse".into()))?;
        let mut state = MemState::default();
        state.map.insert(MEMBERS.to_vec(), v.into_vec());
        out.insert(height, Arc::new(Roster::load(&state, genesis)?));
    }
    Ok(out)
}
