//! Compute-to-data on the ledger: a compute dataset's files are never
//! served, its lessee cannot start a run on it, its owner runs the lessee's
//! workflow as the lessee's run, and only a release the owner decided, within
//! the policy's cap, lets the outputs be published.

mod common;
use common::*;
use leasehold_chaincode::*;

const TRUSTED: [u8; 32] = [9; 32];

/// org1 owns `records`, compute-only (releases of at most 1000 bytes, each
/// approved by org1), and `iris` read as files; org2 holds lease `L1` on
/// `records` for 10 minutes from T0 + 2 s.
fn with_compute_lease() -> Net {
    let mut net = Net::new();
    let release =
        ReleasePolicy { max_output_bytes: 1000, trusted_workflows: vec![TRUSTED], ..ReleasePolicy::default() };
    let compute =
        AccessPolicy { access: AccessMode::Compute, release, ..policy(&[1, 2], HOUR, Approval::Owner, false) };
    net.run(0, T0, register("records", spec("Records", &[], compute))).unwrap();
    net.run(0, T0, register("iris", spec("Iris", &[], policy(&[1], HOUR, Approval::Owner, false)))).unwrap();
    net.run(1, T0 + 1000, request("L1", "records", HOUR / 2)).unwrap();
    net.run(0, T0 + 2000, grant("L1", 600_000)).unwrap();
    net
}

/// org1 starts run `run` on `lease`, as org2 asked with `ask`.
fn compute(run: &str, hash: [u8; 32], lease: &str) -> Payload {
    Payload::StartComputeRun { run_id: run.into(), workflow_hash: hash, lease_id: lease.into(), submission_hash: hash }
}

/// org2 asks org1 to run workflow `hash` as `run` on `lease`.
fn ask(run: &str, hash: [u8; 32], lease: &str) -> Payload {
    Payload::RequestComputeRun { run_id: run.into(), lease_id: lease.into(), submission_hash: hash }
}

fn finish(run: &str) -> Payload {
    Payload::FinishRun { run_id: run.into(), status: RunStatus::Succeeded, output_hash: None }
}

fn decide(run: &str, approve: bool, bytes: u64) -> Payload {
    let output_hash = approve.then_some([5; 32]);
    Payload::DecideRelease {
        run_id: run.into(),
        approve,
        output_bytes: bytes,
        output_hash,
        reason: "checked by org1".into(),
    }
}

fn publish(id: &str, run: &str) -> Payload {
    let s = DatasetSpec { content_hash: [5; 32], ..spec("Result", &[], policy(&[0], HOUR, Approval::Owner, false)) };
    Payload::RegisterDataset { id: id.into(), spec: s, derived_from_run: Some(run.into()) }
}

#[test]
fn a_compute_datasets_files_are_never_served_and_its_lessee_cannot_run_on_it() {
    let mut net = with_compute_lease();
    let err = query::files_served(&net.state, "records", Some(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "dataset \"records\" is compute-only: its files never leave its owner's node, and runs on it execute there"
    );
    query::files_served(&net.state, "iris", Some(1)).unwrap();
    // A later version read as files opens no compute-only one.
    let files = policy(&[1, 2], HOUR, Approval::Owner, false);
    net.run(0, T0 + 2500, Payload::UpdateDataset { id: "records".into(), spec: spec("Records", &[], files) }).unwrap();
    query::files_served(&net.state, "records", None).unwrap();
    assert!(matches!(query::files_served(&net.state, "records", Some(1)), Err(ChaincodeError::ComputeOnly(_))));
    let start = Payload::StartRun {
        run_id: "r".into(),
        workflow_hash: [3; 32],
        lease_ids: vec!["L1".into()],
        inputs: vec![DatasetRef { id: "records".into(), version: 1 }],
    };
    assert!(matches!(net.reject(1, T0 + 3000, start), ChaincodeError::ComputeOnly(_)));
}

#[test]
fn the_owner_runs_it_as_the_lessees_and_releases_within_the_cap_once() {
    let mut net = with_compute_lease();
    // Only what the lessee signed: no request, no run.
    let err = net.reject(0, T0 + 3000, compute("r", [3; 32], "L1"));
    assert_eq!(err.to_string(), "compute run request \"r\" does not exist");
    assert!(matches!(net.reject(0, T0 + 2900, ask("r", [3; 32], "L1")), ChaincodeError::NotLessee { .. }));
    assert!(matches!(net.reject(2, T0 + 2900, ask("r", [3; 32], "L1")), ChaincodeError::NotLessee { .. }));
    net.run(1, T0 + 2900, ask("r", [3; 32], "L1")).unwrap();
    assert!(matches!(net.reject(1, T0 + 2950, ask("r", [3; 32], "L1")), ChaincodeError::AlreadyExists { .. }));
    let other = Payload::StartComputeRun {
        run_id: "r".into(),
        workflow_hash: [4; 32],
        lease_id: "L1".into(),
        submission_hash: [4; 32],
    };
    let err = net.reject(0, T0 + 3000, other).to_string();
    assert_eq!(
        err,
        "field \"submission_hash\" is invalid: the workflow differs from the one org2 asked to run as \"r\""
    );
    assert!(matches!(net.reject(1, T0 + 3000, compute("r", [3; 32], "L1")), ChaincodeError::NotOwner { .. }));
    net.run(0, T0 + 3000, compute("r", [3; 32], "L1")).unwrap();
    let run = query::run(&net.state, "r").unwrap().unwrap();
    assert_eq!((run.org.as_str(), run.executor.as_deref()), ("org2", Some("org1")));
    assert_eq!(run.inputs, vec![DatasetRef { id: "records".into(), version: 1 }]);
    assert!(matches!(net.reject(1, T0 + 4000, finish("r")), ChaincodeError::NotOwner { .. }));
    assert!(matches!(net.reject(0, T0 + 4000, decide("r", true, 10)), ChaincodeError::RunState { .. }));
    let leaky = Payload::FinishRun { run_id: "r".into(), status: RunStatus::Succeeded, output_hash: Some([5; 32]) };
    assert!(net.reject(0, T0 + 4000, leaky).to_string().contains("recorded when it is released"));
    net.run(0, T0 + 4000, finish("r")).unwrap();
    assert_eq!(query::run(&net.state, "r").unwrap().unwrap().output_hash, None, "no hash before the release");
    let err = net.reject(1, T0 + 4500, publish("out", "r")).to_string();
    assert_eq!(err, "run \"r\" ran at \"org1\", which has not released its outputs");
    assert!(matches!(net.reject(1, T0 + 5000, decide("r", true, 10)), ChaincodeError::NotOwner { .. }));
    let err = net.reject(0, T0 + 5000, decide("r", true, 1001)).to_string();
    assert!(err.contains("1001 bytes of outputs exceed the 1000 bytes dataset \"records\" releases"), "{err}");
    // A later version with a larger cap does not raise the one the run read.
    let release = ReleasePolicy { max_output_bytes: 1 << 20, ..ReleasePolicy::default() };
    let looser = AccessPolicy { access: AccessMode::Compute, release, ..policy(&[1, 2], HOUR, Approval::Owner, false) };
    net.run(0, T0 + 4800, Payload::UpdateDataset { id: "records".into(), spec: spec("Records", &[], looser) }).unwrap();
    assert!(net.reject(0, T0 + 5000, decide("r", true, 1001)).to_string().contains("exceed the 1000 bytes"));
    net.run(0, T0 + 5000, decide("r", true, 1000)).unwrap();
    assert!(matches!(net.reject(0, T0 + 5500, decide("r", false, 0)), ChaincodeError::AlreadyExists { .. }));
    net.run(1, T0 + 6000, publish("out", "r")).unwrap();
    let prov = net.dataset("out").provenance.unwrap();
    assert_eq!(prov.inputs, vec![DatasetRef { id: "records".into(), version: 1 }]);
    // Its lineage names the lease and both of org1's words: the grant, the release.
    let out = &query::lineage(&net.state, "out").unwrap()[0];
    assert_eq!(out.leases.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["L1"]);
    let words: Vec<_> = out.approvals.iter().map(|a| (a.kind, a.subject.as_str(), a.org.as_str(), a.time_ms)).collect();
    assert_eq!(
        words,
        [
            (query::ApprovalKind::LeaseGrant, "L1", "org1", T0 + 2000),
            (query::ApprovalKind::Release, "r", "org1", T0 + 5000)
        ]
    );
}

#[test]
fn a_denied_release_is_never_published_and_an_ended_lease_starts_nothing() {
    let mut net = with_compute_lease();
    net.run(1, T0 + 2900, ask("r", TRUSTED, "L1")).unwrap();
    net.run(0, T0 + 3000, compute("r", TRUSTED, "L1")).unwrap();
    net.run(0, T0 + 4000, finish("r")).unwrap();
    net.run(0, T0 + 5000, decide("r", false, 0)).unwrap();
    let run = query::run(&net.state, "r").unwrap().unwrap();
    assert_eq!(run.release.map(|r| (r.approved, r.reason)), Some((false, "checked by org1".into())));
    assert!(matches!(net.reject(1, T0 + 6000, publish("out", "r")), ChaincodeError::Provenance(_)));
    // Not on a dataset read as files, and not once the lease has ended.
    net.run(1, T0 + 6000, request("L2", "iris", HOUR / 2)).unwrap();
    net.run(0, T0 + 6500, grant("L2", 600_000)).unwrap();
    assert!(net.reject(1, T0 + 7000, ask("r2", [3; 32], "L2")).to_string().contains("is read as files"));
    net.run(1, T0 + 7000, ask("r3", [3; 32], "L1")).unwrap();
    let err = net.reject(0, T0 + 7100, compute("r3", [3; 32], "L2")).to_string();
    assert_eq!(err, "field \"lease_id\" is invalid: org2 asked for run \"r3\" under lease \"L1\"");
    // A request the owner leaves for over a minute lapses.
    let err = net.reject(0, T0 + 67_001, compute("r3", [3; 32], "L1")).to_string();
    assert!(err.contains("lapsed 60000 ms after it was made"), "{err}");
    net.run(1, T0 + 560_000, ask("r5", [3; 32], "L1")).unwrap();
    let late = T0 + 603_000;
    assert!(matches!(net.reject(0, late, compute("r5", [3; 32], "L1")), ChaincodeError::LeaseExpired { .. }));
    assert!(matches!(net.reject(1, late, ask("r4", [3; 32], "L1")), ChaincodeError::LeaseExpired { .. }));
}

/// Another org cannot take the id of a committed compute request with a
/// run of its own, with inputs or without, so the owner's start is never
/// blocked by a squatter.
#[test]
fn a_requested_run_id_is_bound_to_its_requester() {
    let mut net = with_compute_lease();
    net.run(1, T0 + 2900, ask("r", [3; 32], "L1")).unwrap();
    let empty = |id: &str| Payload::StartRun {
        run_id: id.into(),
        workflow_hash: [7; 32],
        lease_ids: Vec::new(),
        inputs: Vec::new(),
    };
    let err = net.reject(2, T0 + 2950, empty("r")).to_string();
    assert!(err.contains("org2 asked for run \"r\""), "{err}");
    net.run(2, T0 + 2950, empty("other")).unwrap();
    // Nor with inputs of its own: the id is org2's.
    net.run(2, T0 + 2950, register("own3", spec("Own", &[], policy(&[0], HOUR, Approval::Owner, false)))).unwrap();
    let own = Payload::StartRun {
        run_id: "r".into(),
        workflow_hash: [7; 32],
        lease_ids: Vec::new(),
        inputs: vec![DatasetRef { id: "own3".into(), version: 1 }],
    };
    let err = net.reject(2, T0 + 2960, own).to_string();
    assert!(err.contains("org2 asked for run \"r\""), "{err}");
    net.run(0, T0 + 3000, compute("r", [3; 32], "L1")).unwrap();
    assert_eq!(query::run(&net.state, "r").unwrap().unwrap().org, "org2");
}

/// A refusal puts no size on the ledger: with a cap, the size of what was
/// refused would carry the data out a few bits a run.
#[test]
fn a_refused_release_records_no_size() {
    let mut net = with_compute_lease();
    net.run(1, T0 + 2900, ask("r", [3; 32], "L1")).unwrap();
    net.run(0, T0 + 3000, compute("r", [3; 32], "L1")).unwrap();
    net.run(0, T0 + 4000, finish("r")).unwrap();
    let err = net.reject(0, T0 + 5000, decide("r", false, 1_237)).to_string();
    assert!(err.contains("a refusal records no size"), "{err}");
    net.run(0, T0 + 5000, decide("r", false, 0)).unwrap();
    let release = query::run(&net.state, "r").unwrap().unwrap().release.unwrap();
    assert_eq!((release.approved, release.output_bytes), (false, 0));
}
