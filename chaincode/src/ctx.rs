//! What every rule sees of its transaction and block, and what it returns:
//! the block's context (the only clock), the transaction's context, and the
//! event a valid transaction yields. The rule modules (`dataset`, `lease`,
//! `run`, ...) depend on this; `apply` dispatches to them.

use serde::{Deserialize, Serialize};

use crate::{keys, Genesis, HistoryEntry, OrgId, Result, State, TxId};

/// What the chaincode knows of the block a transaction is in.
#[derive(Debug, Clone)]
pub struct BlockCtx<'a> {
    pub genesis: &'a Genesis,
    pub height: u64,
    /// The block's timestamp; the only clock the chaincode sees.
    pub time_ms: i64,
    pub proposer: OrgId,
}

/// What a valid transaction did, for subscribers such as the lease monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    DatasetRegistered {
        id: String,
        version: u32,
    },
    DatasetUpdated {
        id: String,
        version: u32,
    },
    DatasetRetired {
        id: String,
    },
    LeaseRequested {
        lease_id: String,
    },
    LeaseGranted {
        lease_id: String,
        expires_at_ms: i64,
    },
    LeaseDenied {
        lease_id: String,
    },
    LeaseReleased {
        lease_id: String,
    },
    LeaseRevoked {
        lease_id: String,
    },
    LeaseExtended {
        lease_id: String,
        expires_at_ms: i64,
    },
    RunStarted {
        run_id: String,
    },
    RunFinished {
        run_id: String,
    },
    AccessRecorded {
        lease_id: String,
    },
    /// `in_effect` once a majority of the orgs approved this voter set.
    MembershipApproved {
        voters: Vec<String>,
        in_effect: bool,
    },
    ReleaseDecided {
        run_id: String,
        approved: bool,
    },
    ComputeRunRequested {
        run_id: String,
    },
    /// A derived dataset waits for the approval of `awaiting`.
    PublicationAwaiting {
        id: String,
        awaiting: Vec<String>,
    },
    /// A change to the orgs gathered `approvals`; `in_effect` once a
    /// majority of the active orgs approved it.
    OrgChange {
        change_id: String,
        approvals: Vec<String>,
        in_effect: bool,
    },
    /// An owner refused a pending publication; it is dropped.
    PublicationDenied {
        id: String,
    },
    /// A pending org change gathered `denials`; `dropped` once it was
    /// withdrawn, or a majority of the active orgs denied it.
    OrgChangeDenied {
        change_id: String,
        denials: Vec<String>,
        dropped: bool,
    },
}

/// Context of one transaction inside a block.
pub(crate) struct TxCtx<'a> {
    pub block: &'a BlockCtx<'a>,
    pub org: &'a str,
    pub tx_id: TxId,
}

impl TxCtx<'_> {
    pub fn now(&self) -> i64 {
        self.block.time_ms
    }

    /// Appends `record` to the history of `kind/id`.
    pub fn record_history<T: Serialize>(&self, state: &mut impl State, kind: &str, id: &str, record: &T) -> Result<()> {
        let count_key = keys::history_count(kind, id);
        let seq: u32 = keys::get(state, &count_key)?.unwrap_or(0);
        let entry = HistoryEntry {
            tx_id: self.tx_id,
            height: self.block.height,
            time_ms: self.now(),
            record: crate::canonical::to_bytes(record),
        };
        keys::put(state, keys::history_entry(kind, id, seq), &entry);
        keys::put(state, count_key, &seq.saturating_add(1));
        Ok(())
    }
}
