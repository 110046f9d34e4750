//! The owner's audit records of disclosures. Every read of a lease's
//! private metadata is on the ledger before its answer; reads of one lease
//! by one user that wait at the same moment share one record, which counts
//! them (`RecordReads { reads }`), the way a database's group commit
//! shares one fsync. Such reads carry the same lease, user, block time and
//! tx, so one record says all that separate ones would.
//!
//! One writer per (lease, user) at a time: while its record commits, new
//! reads join the next one. What a lessee org can make the owner write is
//! bounded whatever it reads, and whatever user names it sends:
//! [`AUDITS_IN_FLIGHT`] records of its reads in the owner's mempool at
//! once, a rate of records per lease and one per org (`limits`), and
//! [`MAX_READS_PER_RECORD`] reads waiting for each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use leasehold_chaincode::{Payload, MAX_READS_PER_RECORD};
use tokio::sync::oneshot;

use crate::error::NodeError;
use crate::limits::{Buckets, InFlight, Slot, AUDITS_IN_FLIGHT, AUDITS_PER_S, AUDIT_BURST};
use crate::limits::{ORG_AUDITS_PER_S, ORG_AUDIT_BURST};
use crate::wire::disclose::Refusal;
use crate::write::{Writer, Written};

/// The audit tx's id, or why the reads it would have recorded are refused.
type Recorded = Result<String, Refusal>;
/// Whose reads a record is of: a lease and the lessee's user.
type Key = (String, String);
/// A read waiting for its record.
type Waiter = oneshot::Sender<Recorded>;

/// The audit records this node writes for other orgs' reads, and their
/// limits; shared with the writer tasks.
pub(crate) struct Audits {
    shared: Arc<Shared>,
}

struct Shared {
    /// Signs and commits the records as this org.
    writer: Arc<Writer>,
    /// Reads waiting for a record, by (lease, reader). An entry lives while
    /// its writer does: an empty list means a record is committing and
    /// none waits.
    waiting: Mutex<HashMap<Key, Vec<Waiter>>>,
    /// Records per (org, lease), per org (the lease is ""), and writers at
    /// once per org.
    per_lease: Buckets,
    per_org: Buckets,
    writing: InFlight,
}

impl Audits {
    pub(crate) fn new(writer: Arc<Writer>) -> Self {
        let shared = Shared {
            writer,
            waiting: Mutex::default(),
            per_lease: Buckets::new(AUDIT_BURST, AUDITS_PER_S),
            per_org: Buckets::new(ORG_AUDIT_BURST, ORG_AUDITS_PER_S),
            writing: InFlight::new(AUDITS_IN_FLIGHT),
        };
        Self { shared: Arc::new(shared) }
    }

    /// Records one read of `lease_id` by `reader`, a user of `org`, and waits
    /// until its record commits on this node.
    pub(crate) async fn record(&self, org: &str, lease_id: &str, reader: &str) -> Recorded {
        let (answer, recorded) = oneshot::channel();
        let key = (lease_id.to_string(), reader.to_string());
        let writer_slot = {
            let mut waiting = self.shared.waiting.lock().expect("audits lock");
            match waiting.get_mut(&key) {
                Some(reads) if reads.len() >= MAX_READS_PER_RECORD as usize => {
                    return Err(Refusal::Busy(format!(
                        "at most {MAX_READS_PER_RECORD} reads of lease {lease_id} by {reader} wait for one audit \
                         record; retry later"
                    )))
                }
                Some(reads) => {
                    reads.push(answer);
                    None
                }
                None => {
                    let Some(slot) = self.shared.writing.enter(org) else {
                        return Err(Refusal::Busy(format!(
                            "at most {AUDITS_IN_FLIGHT} audit records of {org}'s reads are written at once; retry \
                             later"
                        )));
                    };
                    waiting.insert(key.clone(), vec![answer]);
                    Some(slot)
                }
            }
        };
        if let Some(slot) = writer_slot {
            // Its own task: the writer serves every read that joins, so it
            // must not end with the request that started it.
            tokio::spawn(write_records(self.shared.clone(), org.to_string(), key, slot));
        }
        recorded.await.unwrap_or_else(|_| {
            Err(Refusal::Unavailable("the audit record was not written; nothing was disclosed".into()))
        })
    }
}

impl Shared {
    /// Whether no read waits for `key`'s next record; the entry goes with
    /// the answer, under the same lock, so a read that comes later starts
    /// a writer of its own.
    fn done(&self, key: &Key) -> bool {
        let mut waiting = self.waiting.lock().expect("audits lock");
        let idle = waiting.get(key).is_none_or(Vec::is_empty);
        if idle {
            waiting.remove(key);
        }
        idle
    }

    /// The reads waiting for `key`'s next record, all of them.
    fn take(&self, key: &Key) -> Vec<Waiter> {
        self.waiting.lock().expect("audits lock").get_mut(key).map(std::mem::take).unwrap_or_default()
    }
}

/// Writes records for `key` until no read waits: each takes every read that
/// joined while the one before committed.
async fn write_records(audits: Arc<Shared>, org: String, key: Key, _slot: Slot) {
    let mut entry = Entry { audits: &audits, key: &key, finished: false };
    let (lease_id, reader) = &key;
    while !audits.done(&key) {
        // Reads keep joining while the writer waits for its tokens.
        while let Err(wait) = audits.per_lease.take_or_wait(&org, lease_id, Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        while let Err(wait) = audits.per_org.take_or_wait(&org, "", Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let reads = audits.take(&key);
        let count = u32::try_from(reads.len()).expect("at most MAX_READS_PER_RECORD wait");
        let payload = Payload::RecordReads { lease_id: lease_id.clone(), reader: reader.clone(), reads: count };
        let recorded = refusal_of(audits.writer.write(payload).await);
        for read in reads {
            // A read whose request ended since was counted all the same:
            // the record errs on the side of a read.
            let _ = read.send(recorded.clone());
        }
    }
    entry.finished = true;
}

/// A writer's entry, removed if the writer ends before `done` removed it
/// (a panic, the runtime's shutdown): its waiting reads are then answered
/// that nothing was written, and the next read starts a writer of its own.
struct Entry<'a> {
    audits: &'a Shared,
    key: &'a Key,
    finished: bool,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        if !self.finished {
            if let Ok(mut waiting) = self.audits.waiting.lock() {
                waiting.remove(self.key);
            }
        }
    }
}

/// The audit tx's id once committed, or why nothing may be disclosed.
fn refusal_of(written: crate::error::Result<Written>) -> Recorded {
    match written {
        Ok(w) if w.height.is_some() => Ok(w.tx_id),
        Ok(_) => Err(Refusal::Unavailable("the audit record was not committed in time; nothing was disclosed".into())),
        // Expired or revoked between the check and the block: the chaincode's reason.
        Err(NodeError::Chaincode(e)) => Err(Refusal::Forbidden(e.to_string())),
        Err(NodeError::Conflict(reason)) => Err(Refusal::Forbidden(reason)),
        Err(e) => {
            Err(Refusal::Unavailable(format!("the audit record could not be written ({e}); nothing was disclosed")))
        }
    }
}
