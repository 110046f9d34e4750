//! Runs, provenance and lineage, audit, queries, and block application.

mod common;
use common::*;
use leasehold_chaincode::*;

fn start(run: &str, leases: &[&str], inputs: &[(&str, u32)]) -> Payload {
    Payload::StartRun {
        run_id: run.into(),
        workflow_hash: [3; 32],
        lease_ids: leases.iter().map(|s| s.to_string()).collect(),
        inputs: inputs.iter().map(|(id, v)| DatasetRef { id: id.to_string(), version: *v }).collect(),
    }
}

fn finish(run: &str, status: RunStatus, out: Option<[u8; 32]>) -> Payload {
    Payload::FinishRun { run_id: run.into(), status, output_hash: out }
}

#[test]
fn a_run_needs_an_active_lease_held_by_the_runner() {
    let mut net = with_active_lease();
    assert!(matches!(net.reject(2, T0 + 3000, start("r", &["L1"], &[])), ChaincodeError::NotLessee { .. }));
    let late = T0 + 602_000;
    assert_eq!(
        net.reject(1, late, start("r", &["L1"], &[("iris", 1)])).to_string(),
        "lease \"L1\" expired at 2026-11-23T21:40:02.000Z"
    );
    assert_eq!(net.reject(1, T0 + 3000, start("r", &["nope"], &[])).to_string(), "lease \"nope\" does not exist");
    let err = net.reject(1, T0 + 3000, start("r", &[], &[("iris", 1)]));
    assert!(matches!(err, ChaincodeError::InvalidField { field: "inputs", .. }), "{err}");
    assert!(matches!(net.reject(1, T0 + 3000, start("r", &["L1"], &[("iris", 9)])), ChaincodeError::NotFound { .. }));
    net.run(1, T0 + 3000, start("r", &["L1"], &[("iris", 1)])).unwrap();
    assert!(matches!(net.reject(1, T0 + 3000, start("r", &["L1"], &[])), ChaincodeError::AlreadyExists { .. }));
}

#[test]
fn only_the_runner_finishes_a_run_and_only_once() {
    let mut net = with_active_lease();
    net.run(1, T0 + 3000, start("r", &["L1"], &[("iris", 1)])).unwrap();
    assert!(matches!(net.reject(0, T0 + 4000, finish("r", RunStatus::Failed, None)), ChaincodeError::NotOwner { .. }));
    assert!(matches!(
        net.reject(1, T0 + 4000, finish("r", RunStatus::Running, None)),
        ChaincodeError::InvalidField { .. }
    ));
    net.run(1, T0 + 4000, finish("r", RunStatus::Succeeded, Some([5; 32]))).unwrap();
    let err = net.reject(1, T0 + 5000, finish("r", RunStatus::Failed, None));
    assert_eq!(err.to_string(), "run \"r\" is succeeded; finish needs it to be running");
    let run = query::run(&net.state, "r").unwrap().unwrap();
    assert_eq!(
        (run.status, run.output_hash, run.finished_at_ms),
        (RunStatus::Succeeded, Some([5; 32]), Some(T0 + 4000))
    );
}

fn published(net: &mut Net, id: &str, run: &str, hash: [u8; 32]) -> Payload {
    let _ = net;
    let s = DatasetSpec {
        content_hash: hash,
        ..spec("K-means of Iris", &["derived"], policy(&[2], HOUR, Approval::Owner, false))
    };
    Payload::RegisterDataset { id: id.into(), spec: s, derived_from_run: Some(run.into()) }
}

#[test]
fn publishing_records_provenance_and_lineage_walks_back_to_the_root() {
    let mut net = with_active_lease();
    net.run(1, T0 + 3000, register("own", spec("Own", &[], policy(&[], HOUR, Approval::Owner, false)))).unwrap();
    net.run(1, T0 + 3000, start("r", &["L1"], &[("iris", 1), ("own", 1)])).unwrap();
    let p = published(&mut net, "kmeans", "r", [5; 32]);
    assert!(matches!(net.reject(1, T0 + 3500, p), ChaincodeError::Provenance(_)), "a running run cannot be published");
    net.run(1, T0 + 4000, finish("r", RunStatus::Succeeded, Some([5; 32]))).unwrap();
    let p = published(&mut net, "kmeans", "r", [6; 32]);
    assert!(net.reject(1, T0 + 5000, p).to_string().contains("does not match the output hash"));
    let p = published(&mut net, "kmeans", "r", [5; 32]);
    assert!(net.reject(2, T0 + 5000, p).to_string().contains("belongs to \"org2\""));
    let p = published(&mut net, "kmeans", "r", [5; 32]);
    net.run(1, T0 + 5000, p).unwrap();
    let prov = net.dataset("kmeans").provenance.unwrap();
    assert_eq!((prov.run_id.as_str(), prov.workflow_hash), ("r", [3; 32]));
    let lineage = query::lineage(&net.state, "kmeans").unwrap();
    let ids: Vec<_> = lineage.iter().map(|n| n.dataset.id.as_str()).collect();
    assert_eq!(ids, ["kmeans", "iris", "own"]);
    assert!(lineage[1].inputs.is_empty(), "iris is a root");
    assert_eq!(lineage[0].run_id.as_deref(), Some("r"));
}

/// org1 owns `secret`, whose policy denies publishing what is derived from
/// it, and leases it to org2 as `L2`.
fn with_denied_derivation() -> Net {
    let mut net = with_active_lease();
    let deny = AccessPolicy { derived: DerivedPolicy::Deny, ..policy(&[1], HOUR, Approval::Owner, false) };
    net.run(0, T0 + 2000, register("secret", spec("Secret", &[], deny))).unwrap();
    net.run(1, T0 + 2500, request("L2", "secret", HOUR / 2)).unwrap();
    net.run(0, T0 + 2600, grant("L2", 600_000)).unwrap();
    net
}

#[test]
fn what_is_derived_from_a_denying_dataset_is_not_published_but_by_its_owner() {
    let mut net = with_denied_derivation();
    net.run(1, T0 + 3000, start("r", &["L1", "L2"], &[("iris", 1), ("secret", 1)])).unwrap();
    net.run(1, T0 + 4000, finish("r", RunStatus::Succeeded, Some([5; 32]))).unwrap();
    let p = published(&mut net, "k", "r", [5; 32]);
    let err = net.reject(1, T0 + 5000, p).to_string();
    assert_eq!(err, "dataset \"secret\"'s owner \"org1\" does not allow publishing what is derived from it");
    // A run on iris alone publishes as before.
    net.run(1, T0 + 5000, start("r2", &["L1"], &[("iris", 1)])).unwrap();
    net.run(1, T0 + 6000, finish("r2", RunStatus::Succeeded, Some([5; 32]))).unwrap();
    let p = published(&mut net, "k2", "r2", [5; 32]);
    net.run(1, T0 + 7000, p).unwrap();
    // The owner publishes what it derives from its own data.
    net.run(0, T0 + 7000, start("own", &[], &[("secret", 1)])).unwrap();
    net.run(0, T0 + 8000, finish("own", RunStatus::Succeeded, Some([6; 32]))).unwrap();
    let p = published(&mut net, "k3", "own", [6; 32]);
    net.run(0, T0 + 9000, p).unwrap();
}

#[test]
fn a_failed_run_cannot_be_published() {
    let mut net = with_active_lease();
    net.run(1, T0 + 3000, start("r", &["L1"], &[("iris", 1)])).unwrap();
    net.run(1, T0 + 4000, finish("r", RunStatus::Failed, None)).unwrap();
    let p = published(&mut net, "k", "r", [5; 32]);
    assert_eq!(net.reject(1, T0 + 5000, p).to_string(), "run \"r\" is failed; only a succeeded run can be published");
}

#[test]
fn disclosures_are_recorded_by_the_owner_only_under_an_active_lease() {
    let mut net = with_active_lease();
    let access = |r: &str| Payload::RecordAccess { lease_id: "L1".into(), reader: r.into() };
    assert!(matches!(net.reject(2, T0 + 3000, access("eve")), ChaincodeError::NotOwner { .. }));
    assert!(
        matches!(net.reject(1, T0 + 3000, access("eve")), ChaincodeError::NotOwner { .. }),
        "not the lessee either"
    );
    net.run(0, T0 + 3000, access("alice")).unwrap();
    assert!(matches!(net.reject(0, T0 + 602_000, access("alice")), ChaincodeError::LeaseExpired { .. }));
    let log = query::access_log(&net.state, "L1", 0, 10).unwrap();
    assert_eq!(log.len(), 1);
    assert!(query::access_log(&net.state, "L1", 1, 10).unwrap().is_empty(), "pages start where asked");
    let (seq, r) = &log[0];
    assert_eq!(*seq, 0);
    assert_eq!((r.reader.as_str(), r.org.as_str(), r.version, r.time_ms), ("alice", "org2", 1, T0 + 3000));
    assert_eq!(r.reads, 1);
}

#[test]
fn one_access_record_counts_the_reads_that_waited_for_it() {
    let mut net = with_active_lease();
    let access = |reads: u32| Payload::RecordReads { lease_id: "L1".into(), reader: "alice".into(), reads };
    net.run(0, T0 + 3000, Payload::RecordAccess { lease_id: "L1".into(), reader: "bob".into() }).unwrap();
    net.run(0, T0 + 3000, access(MAX_READS_PER_RECORD)).unwrap();
    net.run(0, T0 + 3000, access(1)).unwrap();
    for reads in [0, MAX_READS_PER_RECORD + 1] {
        let e = net.reject(0, T0 + 3000, access(reads));
        assert_eq!(
            e.to_string(),
            format!("field \"reads\" is invalid: must be 1 to {MAX_READS_PER_RECORD}"),
            "{reads} reads"
        );
    }
    let log = query::access_log(&net.state, "L1", 0, 10).unwrap();
    let counts: Vec<_> = log.iter().map(|(_, r)| (r.reader.as_str(), r.reads)).collect();
    assert_eq!(
        counts,
        [("bob", 1), ("alice", MAX_READS_PER_RECORD), ("alice", 1)],
        "a record without a count is one read"
    );
}

#[test]
fn datasets_are_found_by_owner_tag_and_text_with_pagination() {
    let mut net = Net::new();
    for (i, (id, owner, tags)) in
        [("a", 0, vec!["x"]), ("b", 0, vec!["y"]), ("c", 1, vec!["x"]), ("d", 2, vec![])].iter().enumerate()
    {
        let title = if *id == "c" { "Census of Cats".to_string() } else { format!("Set {i}") };
        net.run(*owner, T0, register(id, spec(&title, tags, policy(&[], HOUR, Approval::Owner, false)))).unwrap();
    }
    let q = |f: query::DatasetFilter| {
        query::datasets(&net.state, &f).unwrap().items.into_iter().map(|d| d.id).collect::<Vec<_>>()
    };
    let base = || query::DatasetFilter { limit: 10, ..Default::default() };
    assert_eq!(q(query::DatasetFilter { owner: Some("org1".into()), ..base() }), ["a", "b"]);
    assert_eq!(q(query::DatasetFilter { tag: Some("x".into()), ..base() }), ["a", "c"]);
    assert_eq!(q(query::DatasetFilter { text: Some("cats".into()), ..base() }), ["c"]);
    assert_eq!(q(query::DatasetFilter { limit: 2, ..base() }), ["a", "b"]);
    assert_eq!(q(query::DatasetFilter { limit: 2, after: Some("b".into()), ..base() }), ["c", "d"]);
}

#[test]
fn leases_are_found_by_dataset_lessee_owner_and_status() {
    let mut net = with_active_lease();
    net.run(2, T0 + 3000, request("L2", "iris", 1000)).unwrap();
    let q = |f: query::LeaseFilter, t| {
        query::leases(&net.state, &f, t).unwrap().items.into_iter().map(|l| l.id).collect::<Vec<_>>()
    };
    let base = || query::LeaseFilter { limit: 10, ..Default::default() };
    assert_eq!(q(query::LeaseFilter { dataset: Some("iris".into()), ..base() }, T0), ["L1", "L2"]);
    assert_eq!(q(query::LeaseFilter { lessee: Some("org3".into()), ..base() }, T0), ["L2"]);
    assert_eq!(q(query::LeaseFilter { owner: Some("org1".into()), ..base() }, T0), ["L1", "L2"]);
    let active = query::LeaseFilter { status: Some(LeaseStatus::Active), ..base() };
    assert_eq!(q(active.clone(), T0 + 3000), ["L1"]);
    assert!(q(active, T0 + 602_000).is_empty());
    let expired = query::LeaseFilter { status: Some(LeaseStatus::Expired), ..base() };
    assert_eq!(q(expired, T0 + 602_000), ["L1"]);
}

#[test]
fn a_block_records_invalid_txs_with_their_reason_and_applies_the_rest() {
    let mut net = Net::new();
    let good = net.tx(0, T0, register("iris", spec("Iris", &[], policy(&[1], HOUR, Approval::Owner, false))));
    let mut forged = net.tx(1, T0, request("L", "iris", 1000));
    forged.signature = net.tx(2, T0, request("L", "iris", 1000)).signature;
    let dup = good.clone();
    let later = net.tx(1, T0, request("L", "iris", 1000));
    let txs = vec![good.clone(), forged, dup, later];
    let ctx = net.ctx(T0);
    let c0 = Commitment::empty();
    let out = apply_block(&net.state, &ctx, &txs, &c0).unwrap();
    let verdicts: Vec<Verdict> = out.outcomes.iter().map(|o| o.verdict()).collect();
    assert_eq!(verdicts[0], Verdict::Valid);
    assert_eq!(verdicts[1], Verdict::Invalid("signature does not verify against the signing key of \"org2\"".into()));
    assert_eq!(verdicts[2], Verdict::Invalid(format!("transaction {} was already committed (replay)", good.id())));
    assert_eq!(verdicts[3], Verdict::Valid, "a later tx sees the earlier ones in the same block");
    assert_ne!(out.commitment.root(), c0.root());
    let again = apply_block(&net.state, &ctx, &txs, &c0).unwrap();
    assert_eq!(again.commitment, out.commitment);
    assert_eq!(again.writes, out.writes);
}

#[test]
fn a_rejected_tx_is_spent_and_cannot_be_replayed_once_it_would_be_valid() {
    let mut net = Net::new();
    net.run(0, T0, register("iris", spec("Iris", &[], policy(&[1], HOUR, Approval::Owner, false)))).unwrap();
    // org1's grant of a lease that does not exist yet is rejected...
    let early_grant = net.tx(0, T0 + 10, grant("L", 1000));
    let block = |net: &mut Net, txs: &[SignedTx], at: i64| {
        net.height += 1;
        let out = apply_block(&net.state, &net.ctx(at), txs, &Commitment::empty()).unwrap();
        for (k, v) in out.writes.clone() {
            match v {
                Some(v) => net.state.put(k, v),
                None => net.state.delete(k),
            }
        }
        out.outcomes.iter().map(|o| o.verdict()).collect::<Vec<_>>()
    };
    let v = block(&mut net, std::slice::from_ref(&early_grant), T0 + 10);
    assert!(matches!(&v[0], Verdict::Invalid(r) if r.contains("does not exist")), "{v:?}");
    // ...and once org2 has requested it, the same signed tx is refused as a
    // replay instead of granting a lease its owner never meant to grant.
    let req = net.tx(1, T0 + 20, request("L", "iris", 1000));
    assert_eq!(block(&mut net, &[req], T0 + 20), [Verdict::Valid]);
    let v = block(&mut net, std::slice::from_ref(&early_grant), T0 + 30);
    assert_eq!(v, [Verdict::Invalid(format!("transaction {} was already committed (replay)", early_grant.id()))]);
    assert_eq!(net.lease("L").state, LeaseState::Requested);
}

#[test]
fn batch_verification_finds_the_one_bad_signature_among_many() {
    let mut net = Net::new();
    let mut txs: Vec<SignedTx> =
        (0..300).map(|i| net.tx(i % 3, T0, Payload::ReleaseLease { lease_id: format!("x{i}") })).collect();
    txs[277].signature[0] ^= 1;
    let v = verify_signatures(&net.genesis, &txs);
    let bad: Vec<usize> = v.iter().enumerate().filter(|(_, r)| r.is_err()).map(|(i, _)| i).collect();
    assert_eq!(bad, [277]);
}

#[test]
fn a_lease_granted_by_policy_shows_its_request_as_the_grant() {
    let mut net = Net::new();
    net.run(0, T0, register("auto", spec("A", &[], policy(&[1], HOUR, Approval::Automatic, false)))).unwrap();
    let ask = net.tx(1, T0 + 1000, request("L9", "auto", HOUR / 2));
    net.submit(&ask, T0 + 1000).unwrap();
    net.run(1, T0 + 2000, start("r", &["L9"], &[("auto", 1)])).unwrap();
    net.run(1, T0 + 3000, finish("r", RunStatus::Succeeded, Some([5; 32]))).unwrap();
    let p = published(&mut net, "k", "r", [5; 32]);
    net.run(1, T0 + 4000, p).unwrap();
    let lineage = query::lineage(&net.state, "k").unwrap();
    let grant = &lineage[0].approvals[..];
    assert_eq!(grant.len(), 1, "{grant:?}");
    assert_eq!((grant[0].org.as_str(), grant[0].tx_id), ("org1", ask.id()), "the request's tx granted it");
    assert_eq!(grant[0].reason, "granted at the request, by the dataset's policy");
}
