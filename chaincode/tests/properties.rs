//! Property tests over random transaction sequences.

mod common;
use common::*;
use leasehold_chaincode::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Register { ds: u8, auto: bool, exclusive: bool, max_min: u64 },
    Update { ds: u8 },
    Retire { ds: u8 },
    Request { lease: u8, ds: u8, dur_min: u64 },
    Grant { lease: u8, dur_min: u64 },
    Deny { lease: u8 },
    Release { lease: u8 },
    Revoke { lease: u8 },
    Extend { lease: u8, extra_min: u64 },
    StartRun { run: u8, lease: u8 },
    Access { lease: u8 },
}

#[derive(Debug, Clone)]
struct Step {
    signer: usize,
    /// Signed with another org's key than `signer` claims.
    forged: bool,
    advance_min: i64,
    op: Op,
}

fn op() -> impl Strategy<Value = Op> {
    let ds = 0u8..3;
    let lease = 0u8..6;
    prop_oneof![
        (ds.clone(), any::<bool>(), any::<bool>(), 1u64..120).prop_map(|(ds, auto, exclusive, max_min)| Op::Register {
            ds,
            auto,
            exclusive,
            max_min
        }),
        ds.clone().prop_map(|ds| Op::Update { ds }),
        ds.clone().prop_map(|ds| Op::Retire { ds }),
        (lease.clone(), ds, 1u64..150).prop_map(|(lease, ds, dur_min)| Op::Request { lease, ds, dur_min }),
        (lease.clone(), 1u64..150).prop_map(|(lease, dur_min)| Op::Grant { lease, dur_min }),
        lease.clone().prop_map(|lease| Op::Deny { lease }),
        lease.clone().prop_map(|lease| Op::Release { lease }),
        lease.clone().prop_map(|lease| Op::Revoke { lease }),
        (lease.clone(), 1u64..90).prop_map(|(lease, extra_min)| Op::Extend { lease, extra_min }),
        (0u8..4, lease.clone()).prop_map(|(run, lease)| Op::StartRun { run, lease }),
        lease.prop_map(|lease| Op::Access { lease }),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = (0usize..3, prop::bool::weighted(0.1), 0i64..30, op())
        .prop_map(|(signer, forged, advance_min, op)| Step { signer, forged, advance_min, op });
    prop::collection::vec(step, 1..60)
}

const MIN: u64 = 60_000;

fn payload(op: &Op) -> Payload {
    let (d, l) = (|i: u8| format!("d{i}"), |i: u8| format!("l{i}"));
    match op.clone() {
        Op::Register { ds, auto, exclusive, max_min } => {
            let approval = if auto { Approval::Automatic } else { Approval::Owner };
            register(&d(ds), spec("D", &["t"], policy(&[0, 1, 2], max_min * MIN, approval, exclusive)))
        }
        Op::Update { ds } => Payload::UpdateDataset {
            id: d(ds),
            spec: spec("D2", &["u"], policy(&[0, 1, 2], HOUR, Approval::Owner, false)),
        },
        Op::Retire { ds } => Payload::RetireDataset { id: d(ds) },
        Op::Request { lease, ds, dur_min } => request(&l(lease), &d(ds), dur_min * MIN),
        Op::Grant { lease, dur_min } => grant(&l(lease), dur_min * MIN),
        Op::Deny { lease } => Payload::DenyLease { lease_id: l(lease), reason: "no".into() },
        Op::Release { lease } => Payload::ReleaseLease { lease_id: l(lease) },
        Op::Revoke { lease } => Payload::RevokeLease { lease_id: l(lease), reason: "stop".into() },
        Op::Extend { lease, extra_min } => Payload::ExtendLease { lease_id: l(lease), extra_ms: extra_min * MIN },
        Op::StartRun { run, lease } => Payload::StartRun {
            run_id: format!("r{run}"),
            workflow_hash: [1; 32],
            lease_ids: vec![l(lease)],
            inputs: vec![],
        },
        Op::Access { lease } => Payload::RecordAccess { lease_id: l(lease), reader: "u".into() },
    }
}

/// Applies every step as a one-tx block and checks the invariants after each.
/// Returns the final state root, checked against the whole final state.
fn run_and_check(steps: &[Step]) -> (StateRoot, MemState) {
    let mut net = Net::new();
    let mut commitment = Commitment::empty();
    let mut now = T0;
    for (height, step) in steps.iter().enumerate() {
        now += step.advance_min * MIN as i64;
        let body = net.body(step.signer, now, payload(&step.op));
        let key = if step.forged { (step.signer + 1) % 3 } else { step.signer };
        let tx = body.sign(&net.keys[key]);
        let ctx = BlockCtx { genesis: &net.genesis, height: height as u64 + 1, time_ms: now, proposer: "org1".into() };
        let out = apply_block(&net.state, &ctx, std::slice::from_ref(&tx), &commitment).unwrap();
        let valid = out.outcomes[0].result.is_ok();
        if !valid {
            // A rejected tx writes one thing: its id, spent so it cannot be
            // replayed; a forged one (no valid signature) not even that.
            let spent: Vec<Vec<u8>> = if step.forged { vec![] } else { vec![keys::tx(&tx.id())] };
            let written: Vec<Vec<u8>> = out.writes.keys().cloned().collect();
            assert_eq!(written, spent, "a rejected tx wrote state: {:?}", out.outcomes[0]);
        }
        if step.forged {
            assert!(!valid, "a forged tx was accepted");
        }
        if valid {
            check_authority(&net.state, &org(step.signer), &step.op, now);
        }
        net.state.apply_writes(out.writes);
        commitment = out.commitment;
        check_expiry(&net.state, now);
    }
    let mut whole = Commitment::empty();
    for (k, v) in &net.state.map {
        whole.insert(k, v);
    }
    assert_eq!(whole, commitment, "the incremental commitment drifted from the state it commits to");
    (commitment.root(), net.state)
}

/// Only owners grant, deny, revoke, extend, update or retire; only an active
/// lease's lessee uses it. Checked against the state before the tx.
fn check_authority(pre: &MemState, signer: &str, op: &Op, now: i64) {
    let lease = |i: u8| query::lease(pre, &format!("l{i}")).unwrap().expect("valid tx on an existing lease");
    match op {
        Op::Grant { lease: i, .. } | Op::Deny { lease: i } | Op::Revoke { lease: i } | Op::Extend { lease: i, .. } => {
            let l = lease(*i);
            let owner = query::dataset(pre, &l.dataset_id).unwrap().unwrap().owner;
            assert_eq!(owner, signer, "{op:?} by a non-owner");
        }
        Op::Update { ds } | Op::Retire { ds } => {
            let owner = query::dataset(pre, &format!("d{ds}")).unwrap().unwrap().owner;
            assert_eq!(owner, signer, "{op:?} by a non-owner");
        }
        Op::StartRun { lease: i, .. } => {
            let l = lease(*i);
            assert_eq!(l.lessee, signer);
            assert_eq!(l.status_at(now), LeaseStatus::Active, "{op:?} used an inactive lease");
        }
        Op::Access { lease: i } => {
            let l = lease(*i);
            assert_eq!(l.owner, signer, "only the owner records a disclosure");
            assert_eq!(l.status_at(now), LeaseStatus::Active, "{op:?} disclosed under an inactive lease");
        }
        _ => {}
    }
}

/// No lease is active at or past its expiry, and none outlives its policy.
fn check_expiry(state: &MemState, now: i64) {
    let all = query::leases(state, &query::LeaseFilter { limit: 100, ..Default::default() }, now).unwrap();
    for l in all {
        if let (Some(granted), Some(exp)) = (l.granted_at_ms, l.expires_at_ms) {
            assert!(exp > granted);
            assert!(l.status_at(exp) != LeaseStatus::Active);
            let at_expiry = query::active_lease(state, &l.lessee, &l.dataset_id, exp).unwrap();
            assert!(at_expiry.is_none_or(|a| a.id != l.id), "lease {} active at its expiry", l.id);
            let max = 120 * MIN;
            assert!((exp - granted) as u64 <= max, "lease {} outlives every policy", l.id);
        }
        if l.status_at(now) == LeaseStatus::Active {
            assert!(now < l.expires_at_ms.unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_same_sequence_always_gives_the_same_state_root(steps in steps()) {
        let (root_a, state_a) = run_and_check(&steps);
        let (root_b, state_b) = run_and_check(&steps);
        prop_assert_eq!(root_a, root_b);
        prop_assert_eq!(state_a, state_b);
    }

    #[test]
    fn a_different_sequence_gives_a_different_root(steps in steps()) {
        let (root, state) = run_and_check(&steps);
        let mut longer = steps.clone();
        longer.push(Step { signer: 0, forged: false, advance_min: 0, op: Op::Register { ds: 9, auto: false, exclusive: false, max_min: 5 } });
        let (root2, state2) = run_and_check(&longer);
        prop_assert_ne!(state, state2);
        prop_assert_ne!(root, root2);
    }
}
