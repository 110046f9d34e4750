//! `leasehold verify`: re-checks a stopped node's chain offline.

use std::path::Path;

use leasehold_chaincode::roster::Roster;
use leasehold_chaincode::{Commitment, Genesis, Hash32, MemState};

use crate::block::{self, Block, Head};
use crate::error::{NodeError, Result};
use crate::ledger::store::{Store, CF_META};

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub height: u64,
    pub head_hash: String,
    pub state_root: String,
    /// Blocks a majority of the orgs signed (see `certify`).
    pub certified_blocks: u64,
    /// Signatures by a minority on blocks this chain does not hold: evidence
    /// against them, or that this node diverged.
    pub conflicts: Vec<String>,
}

/// Blocks checked at every start by [`check_recent`].
pub const START_CHECK_BLOCKS: u64 = 64;

pub(crate) fn stored_genesis(store: &Store) -> Result<(Vec<u8>, Genesis)> {
    let bytes: Vec<u8> =
        store.get(CF_META, b"genesis")?.ok_or_else(|| NodeError::Config("no genesis in this data dir".into()))?;
    let genesis = serde_json::from_slice(&bytes).map_err(|e| NodeError::decode("genesis", e))?;
    Ok((bytes, genesis))
}

/// The check a node makes at every start: the last `depth` blocks exist,
/// decode, link to each other and to the stored head, and carry their
/// proposer's signature over their transactions. Cheap; [`verify`] replays
/// everything.
pub fn check_recent(store: &Store, depth: u64) -> Result<()> {
    let Some(stored_head) = store.head()? else { return Ok(()) };
    let (genesis_bytes, genesis) = stored_genesis(store)?;
    // Every org that ever joined, with every key it had: these blocks may
    // predate a departure or a rotation.
    let roster = Roster::load(store, &genesis)?;
    let first = stored_head.height.saturating_sub(depth).max(1);
    let mut head = match first {
        1 => Head::genesis(&genesis_bytes, &genesis),
        h => match store.block(h - 1) {
            Ok(Some(b)) => block::head_after(&b),
            Ok(None) => return Err(NodeError::Verify { height: h - 1, reason: "block is missing".into() }),
            Err(e) => return Err(NodeError::Verify { height: h - 1, reason: e.to_string() }),
        },
    };
    for height in first..=stored_head.height {
        let bad = |reason: String| NodeError::Verify { height, reason };
        let b = store.block(height).map_err(|e| bad(e.to_string()))?.ok_or_else(|| bad("block is missing".into()))?;
        check_block_any_key(&b, &head, &roster).map_err(|e| bad(e.to_string()))?;
        head = block::head_after(&b);
    }
    if head != stored_head {
        let reason = "the stored head does not match its block".into();
        return Err(NodeError::Verify { height: stored_head.height, reason });
    }
    if store.commitment()?.root() != stored_head.state_root {
        let reason = "the stored state commitment does not match the head's state root".into();
        return Err(NodeError::Verify { height: stored_head.height, reason });
    }
    Ok(())
}

/// Replays every block from genesis into a fresh in-memory state and checks
/// the hash chain, each proposer signature, each verdict and each state root.
/// The error names the first height that does not check out.
pub fn verify(data_dir: &Path) -> Result<Verified> {
    let store = Store::open_read_only(&data_dir.join("ledger"))?;
    let (genesis_bytes, genesis) = stored_genesis(&store)?;
    let stored_head = store.head()?;
    let mut head = Head::genesis(&genesis_bytes, &genesis);
    let mut state = MemState::default();
    let mut commitment = Commitment::empty();
    let last = stored_head.map(|h| h.height).unwrap_or(0);
    let mut valid_txs = 0u64;
    // The roster each block was built with, from the height it began.
    let mut rosters: Vec<(u64, Roster)> = Vec::new();
    for height in 1..=last {
        let bad = |reason: String| NodeError::Verify { height, reason };
        let stored = match store.block(height) {
            Ok(Some(b)) => b,
            Ok(None) => return Err(bad("block is missing".into())),
            Err(e) => return Err(bad(e.to_string())),
        };
        // The roster after the previous block, as the nodes built this one.
        let roster = Roster::load(&state, &genesis).map_err(|e| bad(e.to_string()))?;
        // A leader whose key was rotated away may have proposed a block
        // under its old key; rebuilding it below checks its verdicts.
        check_block_any_key(&stored, &head, &roster).map_err(|e| bad(e.to_string()))?;
        if rosters.last().is_none_or(|(_, r)| *r != roster) {
            rosters.push((height, roster.clone()));
        }
        let proposal = block::proposal_of(&stored);
        let (rebuilt, writes, next) = block::build(&state, &roster.orgs, &head, &commitment, &proposal, &|_| false)
            .map_err(|e| bad(e.to_string()))?;
        if rebuilt != stored {
            return Err(bad(describe_mismatch(&stored, &rebuilt)));
        }
        valid_txs += check_tx_index(&store, &stored).map_err(|e| bad(e.to_string()))?;
        state.apply_writes(writes);
        commitment = next;
        head = block::head_after(&stored);
    }
    if let Some(h) = stored_head {
        if h != head {
            return Err(NodeError::Verify { height: last, reason: "stored head does not match the chain".into() });
        }
    }
    // The state and index column families must hold exactly the state the
    // chain commits to.
    if store.compute_commitment()?.root() != head.state_root {
        let reason = "the stored state and indexes differ from the state the chain commits to".into();
        return Err(NodeError::Verify { height: last, reason });
    }
    // The tx index holds exactly the chain's valid txs (each checked above).
    let indexed = store.count_indexed_txs()?;
    if indexed != valid_txs {
        let reason = format!("the tx index holds {indexed} txs; the chain has {valid_txs} valid ones");
        return Err(NodeError::Verify { height: last, reason });
    }
    let now = Roster::load(&state, &genesis)?;
    if rosters.is_empty() {
        rosters.push((1, now.clone()));
    }
    let (certified_blocks, conflicts) = check_certificates(&store, &rosters, &now.generations())?;
    Ok(Verified {
        height: head.height,
        head_hash: hex::encode(head.hash),
        state_root: head.state_root.to_hex(),
        certified_blocks,
        conflicts,
    })
}

/// Every certificate kept must be its org's valid signature; it counts
/// toward the majority of the orgs active at its height. A majority
/// signing a different block than this chain holds fails the check; a
/// minority doing so is reported (one org must not be able to make an
/// honest node's store look corrupt). Returns the count of blocks a
/// majority signed, and the conflicts.
fn check_certificates(store: &Store, rosters: &[(u64, Roster)], keys: &[Genesis]) -> Result<(u64, Vec<String>)> {
    use rocksdb::{Direction, IteratorMode};
    let at = |height: u64| {
        let i = rosters.partition_point(|(from, _)| *from <= height).max(1) - 1;
        &rosters[i].1
    };
    let majority = |height: u64| at(height).orgs.orgs.len() / 2 + 1;
    let mut matching: std::collections::BTreeMap<u64, usize> = Default::default();
    let mut other: std::collections::BTreeMap<(u64, Hash32), Vec<String>> = Default::default();
    let prefix = b"cert/";
    for item in store.db().iterator_cf(store.cf(CF_META), IteratorMode::From(prefix, Direction::Forward)) {
        let (k, v) = item?;
        if !k.starts_with(prefix) {
            break;
        }
        let c: crate::ledger::certs::Cert = crate::ledger::store::decode(&v, "block certificate")?;
        if !keys.iter().any(|g| c.verify(g)) {
            let reason = format!("the certificate from {} is not its valid signature", c.org);
            return Err(NodeError::Verify { height: c.height, reason });
        }
        // A signature on a height its org was not active at, or by a key it
        // no longer held then, counts for nothing (nodes refuse to keep
        // one; a store restored from a snapshot may hold one of its own).
        if !c.verify(&at(c.height).orgs) {
            continue;
        }
        let Some(b) = store.block(c.height)? else { continue };
        let mine = block::head_after(&b);
        if mine.hash == c.hash && mine.state_root.0 == c.state_root {
            *matching.entry(c.height).or_default() += 1;
        } else {
            other.entry((c.height, c.hash)).or_default().push(c.org);
        }
    }
    let mut conflicts = Vec::new();
    for ((height, hash), orgs) in other {
        if orgs.len() >= majority(height) {
            let reason = format!("a majority ({}) signed a different block ({})", orgs.join(", "), hex::encode(hash));
            return Err(NodeError::Verify { height, reason });
        }
        conflicts.push(format!(
            "{} signed a different block ({}) at height {height}",
            orgs.join(", "),
            hex::encode(hash)
        ));
    }
    Ok((matching.iter().filter(|(h, n)| **n >= majority(**h)).count() as u64, conflicts))
}

/// [`check_block`] against the keys of `roster`, then, only if that fails,
/// against its members' earlier keys: a block may be signed by a key
/// rotated away since.
fn check_block_any_key(b: &Block, prev: &Head, roster: &Roster) -> Result<(), BlockFault> {
    check_block(b, prev, &roster.ever).or_else(|e| {
        let older = roster.generations();
        older[1..].iter().any(|g| check_block(b, prev, g).is_ok()).then_some(()).ok_or(e)
    })
}

/// What is wrong with a stored block, found by `verify`.
#[derive(Debug, thiserror::Error)]
enum BlockFault {
    #[error("height field says {0}")]
    Height(u64),
    #[error("previous-hash link is broken")]
    BrokenLink,
    #[error("verdict count differs from tx count")]
    VerdictCount,
    #[error(transparent)]
    Proposal(#[from] block::ProposalError),
    #[error("the tx index puts tx {tx} at {at:?}, not at index {index}")]
    TxIndex { tx: String, at: Option<(u64, u32)>, index: usize },
    #[error(transparent)]
    Store(#[from] NodeError),
}

fn check_block(b: &Block, prev: &Head, genesis: &Genesis) -> Result<(), BlockFault> {
    if b.header.height != prev.height + 1 {
        return Err(BlockFault::Height(b.header.height));
    }
    if b.header.prev_hash != prev.hash {
        return Err(BlockFault::BrokenLink);
    }
    if b.verdicts.len() != b.txs.len() {
        return Err(BlockFault::VerdictCount);
    }
    Ok(block::proposal_of(b).verify(genesis)?)
}

fn describe_mismatch(stored: &Block, rebuilt: &Block) -> String {
    if stored.header.state_root != rebuilt.header.state_root {
        "state root differs from re-execution".into()
    } else if stored.verdicts != rebuilt.verdicts {
        "tx verdicts differ from re-execution".into()
    } else {
        "block differs from its re-execution".into()
    }
}

/// Each valid tx of `block` is indexed at its place; returns how many.
fn check_tx_index(store: &Store, block: &Block) -> Result<u64, BlockFault> {
    let mut valid = 0;
    for (i, (tx, verdict)) in block.txs.iter().zip(&block.verdicts).enumerate() {
        if *verdict != leasehold_chaincode::Verdict::Valid {
            continue;
        }
        let at = store.tx_location(&tx.id())?;
        if at != Some((block.header.height, i as u32)) {
            return Err(BlockFault::TxIndex { tx: tx.id().to_hex(), at, index: i });
        }
        valid += 1;
    }
    Ok(valid)
}
