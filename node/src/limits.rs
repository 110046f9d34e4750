//! What one org may ask of this node at once, and how often: the owner's
//! side of disclosure and of the data plane serves other orgs, and a
//! lessee that floods it must not crowd out the owner's own work (its
//! revocation of that very lease above all). Each request over a limit is
//! refused at once, saying which limit. Only reads that joined an audit
//! record wait, while its writer waits for its token (`audit`).
//!
//! Each map holds an entry per (org, lease) that passed the lease check, or
//! per org: bounded by the leases on the ledger, and pruned of idle entries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Metadata disclosures per lessee org and lease: a burst, then a steady
/// rate. Reads waiting together share an audit record (`audit`), so this
/// bounds the owner's work per read, not its ledger.
pub const DISCLOSURE_BURST: u32 = 1024;
pub const DISCLOSURES_PER_S: u32 = 4096;
/// Audit records per lessee org and lease, and per lessee org over all its
/// leases: each is a tx of the owner's and a record on every node's ledger,
/// whatever the reads it counts, so neither user names nor leases multiply
/// what one org can make the owner write. A writer waits for its tokens
/// while more reads join its record.
pub const AUDIT_BURST: u32 = 8;
pub const AUDITS_PER_S: u32 = 50;
pub const ORG_AUDIT_BURST: u32 = 16;
pub const ORG_AUDITS_PER_S: u32 = 100;
/// Audit records of one org's reads in flight at once: what a flood may
/// take of the owner's mempool, at most.
pub const AUDITS_IN_FLIGHT: usize = 4;
/// Data-plane requests (a manifest, a chunk of up to 4 MiB) per lessee org
/// and lease, and at once per org.
pub const DATA_BURST: u32 = 256;
pub const DATA_PER_S: u32 = 256;
pub const DATA_IN_FLIGHT: usize = 8;
/// Entries a map holds before idle ones are dropped.
const PRUNE_AT: usize = 10_000;

/// A token bucket per key: `burst` at once, refilled at `per_s` a second.
pub(crate) struct Buckets {
    burst: u32,
    per_s: u32,
    held: Mutex<HashMap<(String, String), (f64, Instant)>>,
}

impl Buckets {
    pub(crate) fn new(burst: u32, per_s: u32) -> Self {
        Self { burst, per_s, held: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `(org, lease)` at `now`, if it has one.
    pub(crate) fn take(&self, org: &str, lease: &str, now: Instant) -> bool {
        self.take_or_wait(org, lease, now).is_ok()
    }

    /// Takes one token for `(org, lease)` at `now`, or says how long until
    /// it will have one.
    pub(crate) fn take_or_wait(&self, org: &str, lease: &str, now: Instant) -> Result<(), Duration> {
        let (burst, per_s) = (f64::from(self.burst), f64::from(self.per_s));
        let mut held = self.held.lock().expect("buckets lock");
        if held.len() >= PRUNE_AT {
            held.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * per_s < burst);
        }
        let (tokens, at) = held.entry((org.to_string(), lease.to_string())).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_s).min(burst);
        *at = now;
        if *tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - *tokens) / per_s));
        }
        *tokens -= 1.0;
        Ok(())
    }
}

/// Requests in progress per org, at most `max` each.
pub(crate) struct InFlight {
    max: usize,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

/// One request's place; the place is freed when it is dropped.
pub(crate) struct Slot {
    org: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("in-flight lock");
        if let Some(n) = counts.get_mut(&self.org) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.org);
            }
        }
    }
}

impl InFlight {
    pub(crate) fn new(max: usize) -> Self {
        Self { max, counts: Arc::default() }
    }

    /// A place for one more of `org`'s requests, if it has fewer than `max`.
    pub(crate) fn enter(&self, org: &str) -> Option<Slot> {
        let mut counts = self.counts.lock().expect("in-flight lock");
        let n = counts.entry(org.to_string()).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot { org: org.to_string(), counts: self.counts.clone() })
    }
}

/// The limits this node holds other orgs to, but for the audit records of
/// their reads, which `audit` holds with the records.
pub(crate) struct PeerLimits {
    pub disclosures: Buckets,
    pub data: Buckets,
    pub serving: InFlight,
}

impl Default for PeerLimits {
    fn default() -> Self {
        Self {
            disclosures: Buckets::new(DISCLOSURE_BURST, DISCLOSURES_PER_S),
            data: Buckets::new(DATA_BURST, DATA_PER_S),
            serving: InFlight::new(DATA_IN_FLIGHT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate_per_org_and_lease() {
        let b = Buckets::new(3, 2);
        let t = Instant::now();
        assert_eq!((0..5).filter(|_| b.take("org3", "L", t)).count(), 3);
        assert!(b.take("org3", "M", t), "another lease has its own");
        assert!(b.take("org2", "L", t), "another org has its own");
        assert!(!b.take("org3", "L", t + Duration::from_millis(400)));
        assert!(b.take("org3", "L", t + Duration::from_millis(600)), "2 a second");
        let wait = b.take_or_wait("org3", "L", t + Duration::from_millis(700)).unwrap_err();
        assert!((wait.as_secs_f64() - 0.3).abs() < 1e-6, "the next token in 300 ms, not {wait:?}");
    }

    #[test]
    fn a_slot_is_freed_when_its_request_ends() {
        let f = InFlight::new(2);
        let (a, _b) = (f.enter("org3").unwrap(), f.enter("org3").unwrap());
        assert!(f.enter("org3").is_none());
        assert!(f.enter("org2").is_some(), "per org");
        drop(a);
        assert!(f.enter("org3").is_some());
    }
}
