//! Publishing what is derived from an `owner_approval` dataset: it waits on
//! the ledger for the owner's word, and only that owner's word moves it.

mod common;
use common::*;
use leasehold_chaincode::*;

/// org1's `iris` (leased to org2 as `L1`) and `records` (leased as `L2`),
/// whose policy asks org1's approval before anything derived is published;
/// org2's run `r` read both and succeeded with output `[5; 32]`.
fn with_finished_run() -> Net {
    let mut net = with_active_lease();
    let ask = AccessPolicy { derived: DerivedPolicy::OwnerApproval, ..policy(&[1], HOUR, Approval::Owner, false) };
    net.run(0, T0 + 2000, register("records", spec("Records", &[], ask))).unwrap();
    net.run(1, T0 + 2500, request("L2", "records", HOUR / 2)).unwrap();
    net.run(0, T0 + 2600, grant("L2", 600_000)).unwrap();
    let inputs = vec![DatasetRef { id: "iris".into(), version: 1 }, DatasetRef { id: "records".into(), version: 1 }];
    let start = Payload::StartRun {
        run_id: "r".into(),
        workflow_hash: [3; 32],
        lease_ids: vec!["L1".into(), "L2".into()],
        inputs,
    };
    net.run(1, T0 + 3000, start).unwrap();
    net.run(
        1,
        T0 + 4000,
        Payload::FinishRun { run_id: "r".into(), status: RunStatus::Succeeded, output_hash: Some([5; 32]) },
    )
    .unwrap();
    net
}

fn publish(id: &str) -> Payload {
    let s = DatasetSpec { content_hash: [5; 32], ..spec("Counts", &[], policy(&[2], HOUR, Approval::Owner, false)) };
    Payload::RegisterDataset { id: id.into(), spec: s, derived_from_run: Some("r".into()) }
}

fn decide(id: &str, approve: bool, reason: &str) -> Payload {
    Payload::DecidePublication { dataset_id: id.into(), approve, reason: reason.into() }
}

#[test]
fn a_publication_waits_for_the_owners_approval_and_only_the_owner_gives_it() {
    let mut net = with_finished_run();
    let events = net.run(1, T0 + 5000, publish("counts")).unwrap();
    assert_eq!(events, [Event::PublicationAwaiting { id: "counts".into(), awaiting: vec!["org1".into()] }]);
    assert!(query::dataset(&net.state, "counts").unwrap().is_none(), "it waits off the ledger");
    assert_eq!(query::publications(&net.state, "org1").unwrap().len(), 1);
    assert!(query::publications(&net.state, "org3").unwrap().is_empty());
    // The id is taken while it waits, by the publisher and by anyone else.
    assert!(matches!(net.reject(1, T0 + 5100, publish("counts")), ChaincodeError::AlreadyExists { .. }));
    let other = register("counts", spec("Squat", &[], policy(&[], HOUR, Approval::Owner, false)));
    assert!(matches!(net.reject(2, T0 + 5100, other), ChaincodeError::AlreadyExists { .. }));
    // Neither the publisher nor a third org approves it.
    for org_ix in [1, 2] {
        let err = net.reject(org_ix, T0 + 5200, decide("counts", true, ""));
        assert!(matches!(err, ChaincodeError::NotOwner { .. }), "{err}");
    }
    let err = net.reject(0, T0 + 5200, decide("counts", false, " "));
    assert!(matches!(err, ChaincodeError::InvalidField { field: "reason", .. }), "a refusal says why: {err}");
    net.run(0, T0 + 6000, decide("counts", true, "aggregates only")).unwrap();
    let ds = net.dataset("counts");
    assert_eq!((ds.owner.as_str(), ds.created_at_ms), ("org2", T0 + 6000));
    assert_eq!(ds.provenance.unwrap().run_id, "r");
    assert!(query::publication(&net.state, "counts").unwrap().is_none());
    assert!(matches!(net.reject(0, T0 + 6100, decide("counts", true, "")), ChaincodeError::NotFound { .. }));
}

#[test]
fn a_refused_publication_is_dropped_with_its_reason() {
    let mut net = with_finished_run();
    net.run(1, T0 + 5000, publish("counts")).unwrap();
    let events = net.run(0, T0 + 6000, decide("counts", false, "small cells")).unwrap();
    assert_eq!(events, [Event::PublicationDenied { id: "counts".into() }]);
    assert!(query::dataset(&net.state, "counts").unwrap().is_none());
    assert!(query::publication(&net.state, "counts").unwrap().is_none());
    let history = query::history(&net.state, "publication", "counts").unwrap();
    let last: Publication = canonical::from_bytes(&history.last().unwrap().record, "publication").unwrap();
    let d = &last.decisions[0];
    assert_eq!((d.org.as_str(), d.approved, d.reason.as_str()), ("org1", false, "small cells"));
}

#[test]
fn a_policy_that_turns_to_deny_while_waiting_stops_the_approval() {
    let mut net = with_finished_run();
    net.run(1, T0 + 5000, publish("counts")).unwrap();
    let deny = AccessPolicy { derived: DerivedPolicy::Deny, ..policy(&[1], HOUR, Approval::Owner, false) };
    net.run(0, T0 + 5500, Payload::UpdateDataset { id: "records".into(), spec: spec("Records", &[], deny) }).unwrap();
    let err = net.reject(0, T0 + 6000, decide("counts", true, ""));
    assert!(matches!(err, ChaincodeError::Provenance(_)), "{err}");
    assert!(query::dataset(&net.state, "counts").unwrap().is_none());
}

#[test]
fn a_run_waits_in_one_publication_and_an_approved_one_keeps_what_was_approved() {
    let mut net = with_finished_run();
    net.run(1, T0 + 5000, publish("counts")).unwrap();
    let err = net.reject(1, T0 + 5100, publish("counts-again"));
    assert!(matches!(err, ChaincodeError::AlreadyExists { .. }), "{err}");
    assert_eq!(query::publications(&net.state, "org2").unwrap().len(), 1, "the publisher sees its own");
    net.run(0, T0 + 6000, decide("counts", true, "")).unwrap();
    assert!(query::publications(&net.state, "org1").unwrap().is_empty());
    assert!(query::publications(&net.state, "org2").unwrap().is_empty());
    // What the owner approved stays: neither other files nor a wider policy.
    let old = net.dataset("counts").spec;
    let other_files = DatasetSpec { content_hash: [6; 32], ..old.clone() };
    let wider = DatasetSpec { policy: policy(&[0, 2], HOUR, Approval::Automatic, false), ..old.clone() };
    for spec in [other_files, wider] {
        let err = net.reject(1, T0 + 7000, Payload::UpdateDataset { id: "counts".into(), spec });
        assert!(err.to_string().contains("was published as its inputs' owners approved it"), "{err}");
    }
    let retitled = DatasetSpec { title: "Row counts".into(), ..old };
    net.run(1, T0 + 7000, Payload::UpdateDataset { id: "counts".into(), spec: retitled }).unwrap();
    assert!(net.dataset("counts").provenance.is_some());
}

#[test]
fn new_files_drop_a_derived_datasets_provenance_and_an_owner_is_never_held() {
    let mut net = with_active_lease();
    let start = Payload::StartRun {
        run_id: "r".into(),
        workflow_hash: [3; 32],
        lease_ids: vec!["L1".into()],
        inputs: vec![DatasetRef { id: "iris".into(), version: 1 }],
    };
    net.run(1, T0 + 3000, start).unwrap();
    net.run(
        1,
        T0 + 4000,
        Payload::FinishRun { run_id: "r".into(), status: RunStatus::Succeeded, output_hash: Some([5; 32]) },
    )
    .unwrap();
    net.run(1, T0 + 5000, publish("counts")).unwrap();
    let spec = DatasetSpec { content_hash: [6; 32], ..net.dataset("counts").spec };
    net.run(1, T0 + 6000, Payload::UpdateDataset { id: "counts".into(), spec }).unwrap();
    assert_eq!(net.dataset("counts").provenance, None, "other files are not what the run produced");
    // The owner publishes what it derives from its own owner_approval data at once.
    let ask = AccessPolicy { derived: DerivedPolicy::OwnerApproval, ..policy(&[1], HOUR, Approval::Owner, false) };
    net.run(0, T0 + 6000, register("records", spec_with("Records", ask))).unwrap();
    let own = Payload::StartRun {
        run_id: "own".into(),
        workflow_hash: [3; 32],
        lease_ids: vec![],
        inputs: vec![DatasetRef { id: "records".into(), version: 1 }],
    };
    net.run(0, T0 + 6100, own).unwrap();
    net.run(
        0,
        T0 + 6200,
        Payload::FinishRun { run_id: "own".into(), status: RunStatus::Succeeded, output_hash: Some([5; 32]) },
    )
    .unwrap();
    let s = DatasetSpec { content_hash: [5; 32], ..spec_with("Own counts", policy(&[], HOUR, Approval::Owner, false)) };
    let events = net
        .run(
            0,
            T0 + 6300,
            Payload::RegisterDataset { id: "own-counts".into(), spec: s, derived_from_run: Some("own".into()) },
        )
        .unwrap();
    assert!(matches!(events[0], Event::DatasetRegistered { .. }), "{events:?}");
}

fn spec_with(title: &str, p: AccessPolicy) -> DatasetSpec {
    spec(title, &[], p)
}

#[test]
fn a_publication_awaiting_an_org_that_leaves_is_refused_with_the_reason() {
    use leasehold_chaincode::roster::OrgChange;
    let mut net = with_finished_run();
    net.run(1, T0 + 5000, publish("counts")).unwrap();
    let leave = OrgChange::Leave { org: "org1".into(), reason: "contract ended".into() };
    net.run(1, T0 + 6000, Payload::ProposeOrgChange { change_id: "bye".into(), change: leave }).unwrap();
    assert_eq!(query::publications(&net.state, "org2").unwrap().len(), 1, "one org's proposal dropped it");
    net.run(2, T0 + 6000, Payload::ApproveOrgChange { change_id: "bye".into() }).unwrap();
    assert!(query::publications(&net.state, "org1").unwrap().is_empty(), "it still waits on a departed org");
    assert!(query::publications(&net.state, "org2").unwrap().is_empty());
    assert!(query::dataset(&net.state, "counts").unwrap().is_none(), "a departed org's silence published it");
    let history = query::history(&net.state, "publication", "counts").unwrap();
    let last: Publication = canonical::from_bytes(&history.last().unwrap().record, "publication").unwrap();
    assert_eq!(last.decisions.last().unwrap().reason, "org org1 left the network: contract ended");
}

/// The steps a lineage shows of an approval: what, on what, by whom, at
/// which height.
fn steps(node: &query::LineageNode) -> Vec<(query::ApprovalKind, &str, &str, bool, u64)> {
    node.approvals.iter().map(|a| (a.kind, a.subject.as_str(), a.org.as_str(), a.approved, a.height)).collect()
}

#[test]
fn the_lineage_names_the_leases_and_each_approval_with_its_transaction() {
    use query::ApprovalKind::{LeaseGrant, Publication};
    let mut net = with_finished_run();
    // A first round refused, a second approved: only the second is why it exists.
    net.run(1, T0 + 5000, publish("counts")).unwrap();
    net.run(0, T0 + 6000, decide("counts", false, "small cells")).unwrap();
    net.run(1, T0 + 7000, publish("counts")).unwrap();
    let approve = net.tx(0, T0 + 8000, decide("counts", true, "aggregates only"));
    net.submit(&approve, T0 + 8000).unwrap();
    let lineage = query::lineage(&net.state, "counts").unwrap();
    let ids: Vec<_> = lineage.iter().map(|n| n.dataset.id.as_str()).collect();
    assert_eq!(ids, ["counts", "iris", "records"]);
    let leases: Vec<_> = lineage[0]
        .leases
        .iter()
        .map(|l| (l.id.as_str(), l.dataset.id.as_str(), l.owner.as_str(), l.lessee.as_str()))
        .collect();
    assert_eq!(leases, [("L1", "iris", "org1", "org2"), ("L2", "records", "org1", "org2")]);
    // Blocks: iris 1, L1 asked 2, granted 3; records 4, L2 asked 5, granted 6;
    // run 7 and 8; publication 9, refused 10, again 11, approved 12.
    assert_eq!(
        steps(&lineage[0]),
        [
            (LeaseGrant, "L1", "org1", true, 3),
            (LeaseGrant, "L2", "org1", true, 6),
            (Publication, "counts", "org1", true, 12)
        ]
    );
    let last = &lineage[0].approvals[2];
    assert_eq!((last.tx_id, last.reason.as_str(), last.time_ms), (approve.id(), "aggregates only", T0 + 8000));
    assert!(lineage[1].approvals.is_empty() && lineage[1].leases.is_empty(), "a root has none");
}
