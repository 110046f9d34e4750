//! The pure, deterministic state machine of leasehold.
//!
//! Everything a ledger decides lives here: who the organisations are, what a
//! dataset and a lease are, and which transaction is allowed when. The crate
//! does no I/O, reads no clock and draws no randomness: time arrives only as
//! [`BlockCtx::time_ms`], state only through the [`State`] trait. The node
//! backs that trait with RocksDB; tests back it with a `BTreeMap`.
//!
//! The entry points are [`apply`] for one transaction and [`apply_block`] for
//! an ordered batch, which returns the write set and the new state commitment.

mod apply;
mod block;
pub mod canonical;
mod catalog;
mod commitment;
mod compute;
mod ctx;
mod dataset;
mod error;
pub mod keys;
mod lease;
mod lineage;
pub mod membership;
mod publication;
pub mod query;
pub mod roster;
mod run;
mod signatures;
mod state;
pub mod time;
mod tx;
mod types;

pub use apply::apply;
pub use block::{apply_block, apply_block_except, BlockOutcome, TxOutcome, Verdict};
pub use commitment::{Commitment, StateRoot, COMMITMENT_BYTES};
pub use ctx::{BlockCtx, Event};
pub use error::ChaincodeError;
pub use lease::{MAX_READER_BYTES, MAX_READS_PER_RECORD};
pub use signatures::{signed_digest, verify_signatures, verify_signatures_except};
pub use state::{MemState, Overlay, State, StateRead, WriteSet};
pub use tx::{Payload, SignedTx, TxBody, TxId};
pub use types::*;

/// Result alias used throughout the crate.
pub type Result<T, E = ChaincodeError> = std::result::Result<T, E>;
