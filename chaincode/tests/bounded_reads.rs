//! Every read the API makes is bounded in what it reads from the state,
//! however large the ledger: a listing reads its page (or at most
//! `query::MAX_SCAN` entries when a filter skips most), and a lease check
//! reads the dataset's live leases, never its ended ones.

mod common;
use std::cell::Cell;

use common::*;
use leasehold_chaincode::*;

/// A state that counts the bytes each read hands out: what a listing holds
/// in memory is at most what it read.
struct Counting<'a> {
    inner: &'a MemState,
    bytes: Cell<usize>,
}

impl StateRead for Counting<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let v = self.inner.get(key)?;
        self.bytes.set(self.bytes.get() + key.len() + v.as_ref().map_or(0, Vec::len));
        Ok(v)
    }

    fn scan_after(&self, prefix: &[u8], after: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let found = self.inner.scan_after(prefix, after, limit)?;
        self.bytes.set(self.bytes.get() + found.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
        Ok(found)
    }
}

const DATASETS: usize = 20_000;

/// `DATASETS` datasets of org1, each with 4 KiB of public metadata (80 MiB).
fn many_datasets() -> Net {
    let mut net = Net::new();
    let mut s = spec("Large", &["big"], policy(&[1], HOUR, Approval::Owner, false));
    s.public_metadata = format!("{{\"notes\":\"{}\"}}", "n".repeat(4096));
    net.run(0, T0, register("d00000", s)).unwrap();
    let mut ds = net.dataset("d00000");
    for i in 1..DATASETS {
        ds.id = format!("d{i:05}");
        keys::put(&mut net.state, keys::dataset(&ds.id), &ds);
        net.state.put(keys::idx_owner("org1", &ds.id), Vec::new());
    }
    net
}

#[test]
fn a_page_of_one_dataset_reads_one_step_of_the_state_however_many_there_are() {
    let net = many_datasets();
    let count = |f: &query::DatasetFilter| {
        let state = Counting { inner: &net.state, bytes: Cell::new(0) };
        let page = query::datasets(&state, f).unwrap();
        (page, state.bytes.get())
    };
    let (page, bytes) = count(&query::DatasetFilter { limit: 1, ..Default::default() });
    assert_eq!((page.items.len(), page.next.as_deref()), (1, Some("d00000")));
    assert!(bytes < 256 << 10, "listing one dataset read {bytes} bytes");
    // By owner, through its index: the same.
    let (page, bytes) = count(&query::DatasetFilter { owner: Some("org1".into()), limit: 1, ..Default::default() });
    assert_eq!(page.items.len(), 1);
    assert!(bytes < 256 << 10, "listing one of org1's datasets read {bytes} bytes");
    // A filter that matches none stops after MAX_SCAN entries, and says
    // where the next request goes on.
    let f = query::DatasetFilter { text: Some("nowhere".into()), limit: 10, ..Default::default() };
    let (page, bytes) = count(&f);
    assert!(page.items.is_empty());
    assert_eq!(page.next, Some(format!("d{:05}", query::MAX_SCAN - 1)));
    assert!(bytes < (query::MAX_SCAN * 5) << 10, "a filtered listing read {bytes} bytes");
    let f = query::DatasetFilter { after: page.next, ..f };
    let (page, _) = count(&f);
    assert_eq!((page.items.len(), page.next.as_deref()), (0, Some("d19999")), "the rest");
    let (page, _) = count(&query::DatasetFilter { after: page.next, ..f });
    assert_eq!((page.items.len(), page.next), (0, None), "then the end");
}

/// Requests on an exclusive dataset, each released after its grant: the
/// check that no other lease is active reads the live ones, not all the
/// dataset has ever had (it was quadratic under request/release cycling).
#[test]
fn an_exclusive_check_reads_the_live_leases_only() {
    let mut net = Net::new();
    let exclusive = policy(&[1, 2], HOUR, Approval::Owner, true);
    net.run(0, T0, register("solo", spec("Solo", &[], exclusive))).unwrap();
    let mut at = T0;
    for i in 0..300 {
        at += 10;
        net.run(1, at, request(&format!("L{i}"), "solo", 60_000)).unwrap();
        net.run(0, at, grant(&format!("L{i}"), 60_000)).unwrap();
        net.run(1, at, Payload::ReleaseLease { lease_id: format!("L{i}") }).unwrap();
    }
    net.run(2, at + 10, request("last", "solo", 60_000)).unwrap();
    net.run(1, at + 10, request("other", "solo", 60_000)).unwrap();
    net.run(0, at + 20, grant("other", 60_000)).unwrap();
    let tx = net.tx(0, at + 30, grant("last", 60_000));
    let state = Counting { inner: &net.state, bytes: Cell::new(0) };
    let ctx = BlockCtx { genesis: &net.genesis, height: 1_000, time_ms: at + 30, proposer: "org1".into() };
    let err = apply(&mut Overlay::new(&state), &tx, &ctx).unwrap_err();
    assert!(matches!(err, ChaincodeError::ExclusiveConflict { ref lease, .. } if lease == "other"), "{err}");
    assert!(state.bytes.get() < 16 << 10, "the check read {} bytes", state.bytes.get());
}
