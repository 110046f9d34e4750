//! Property tests over random transaction sequences.

mod common;
use common::*;
use leasehold_chaincode::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    Register {
        ds: u8,
        auto: bool,
        exclusive: bool,
        max_min: u64,
    },
    Update {
        ds: u8,
    },
    Retire {
        ds: u8,
    },
    Request {
        lease: u8,
        ds: u8,
        dur_min: u64,
    },
    Grant {
        lease: u8,
        dur_min: u64,
    },
    Deny {
        lease: u8,
    },
    Release {
        lease: u8,
    },
    Revoke {
        lease: u8,
    },
    Extend {
        lease: u8,
        extra_min: u64,
    },
    StartRun {
        run: u8,
        lease: u8,
    },
    /// `reads` 0 is the one-read `RecordAccess` of older chains.
    Access {
        lease: u8,
        reads: u32,
    },
}

#[derive(Debug, Clone)]
struct Step {
    /// Who signs: `None` is whoever the op needs (the owner to grant, the
    /// lessee to run, anyone but the owner to request), so that sequences
    /// reach deep states; `Some` is a given org, often the wrong one.
    signer: Option<usize>,
    /// Signed with another org's key than the signer claims.
    forged: bool,
    advance_min: i64,
    op: Op,
}

/// Ops weighted towards the lease life cycle, on few ids and durations
/// mostly within policy, so most sequences reach granted, extended, used and
/// ended leases rather than being rejected early.
fn op() -> impl Strategy<Value = Op> {
    let ds = 0u8..2;
    let lease = 0u8..8;
    prop_oneof![
        4 => (ds.clone(), prop::bool::weighted(0.3), prop::bool::weighted(0.2), 60u64..120).prop_map(|(ds, auto, exclusive, max_min)| Op::Register {
            ds,
            auto,
            exclusive,
            max_min
        }),
        2 => ds.clone().prop_map(|ds| Op::Update { ds }),
        1 => ds.clone().prop_map(|ds| Op::Retire { ds }),
        8 => (lease.clone(), ds, 1u64..70).prop_map(|(lease, ds, dur_min)| Op::Request { lease, ds, dur_min }),
        8 => (lease.clone(), 1u64..70).prop_map(|(lease, dur_min)| Op::Grant { lease, dur_min }),
        2 => lease.clone().prop_map(|lease| Op::Deny { lease }),
        2 => lease.clone().prop_map(|lease| Op::Release { lease }),
        3 => lease.clone().prop_map(|lease| Op::Revoke { lease }),
        4 => (lease.clone(), 1u64..40).prop_map(|(lease, extra_min)| Op::Extend { lease, extra_min }),
        4 => (0u8..8, lease.clone()).prop_map(|(run, lease)| Op::StartRun { run, lease }),
        4 => (lease, 0u32..4).prop_map(|(lease, reads)| Op::Access { lease, reads }),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let signer = prop_oneof![3 => Just(None), 1 => (0usize..3).prop_map(Some)];
    let step = (signer, prop::bool::weighted(0.1), 0i64..4, op()).prop_map(|(signer, forged, advance_min, op)| Step {
        signer,
        forged,
        advance_min,
        op,
    });
    prop::collection::vec(step, 1..80)
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
        Op::Access { lease, reads: 0 } => Payload::RecordAccess { lease_id: l(lease), reader: "u".into() },
        Op::Access { lease, reads } => Payload::RecordReads { lease_id: l(lease), reader: "u".into(), reads },
    }
}

/// Which kind of op a step is, to count the valid ones.
fn kind(op: &Op) -> &'static str {
    match op {
        Op::Register { .. } => "register",
        Op::Update { .. } => "update",
        Op::Retire { .. } => "retire",
        Op::Request { .. } => "request",
        Op::Grant { .. } => "grant",
        Op::Deny { .. } => "deny",
        Op::Release { .. } => "release",
        Op::Revoke { .. } => "revoke",
        Op::Extend { .. } => "extend",
        Op::StartRun { .. } => "start_run",
        Op::Access { .. } => "access",
    }
}

struct Ran {
    root: StateRoot,
    state: MemState,
    /// How many txs of each kind were valid: the checks below ran on them.
    valid: BTreeMap<&'static str, usize>,
}

/// Applies every step as a one-tx block and checks the invariants after each.
/// Returns the final state root, checked against the whole final state.
fn run_and_check(steps: &[Step]) -> Ran {
    let mut valid_by_kind = BTreeMap::new();
    let mut net = Net::new();
    let mut commitment = Commitment::empty();
    let mut now = T0;
    for (height, step) in steps.iter().enumerate() {
        now += step.advance_min * MIN as i64;
        let signer = step.signer.unwrap_or_else(|| natural_signer(&net.state, &step.op));
        let body = net.body(signer, now, payload(&step.op));
        let key = if step.forged { (signer + 1) % 3 } else { signer };
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
        let pre = net.state.clone();
        if valid {
            check_authority(&pre, &org(signer), &step.op, now);
            *valid_by_kind.entry(kind(&step.op)).or_insert(0) += 1;
        }
        net.state.apply_writes(out.writes);
        if valid {
            check_policy_length(&pre, &net.state, &step.op);
        }
        commitment = out.commitment;
        check_expiry(&net.state, now);
    }
    let mut whole = Commitment::empty();
    for (k, v) in &net.state.map {
        whole.insert(k, v);
    }
    assert_eq!(whole, commitment, "the incremental commitment drifted from the state it commits to");
    Ran { root: commitment.root(), state: net.state, valid: valid_by_kind }
}

/// The org an op needs as its signer, by the state it applies to: the
/// owner for owner's ops, the lessee for the lessee's, anyone but the owner
/// to request. org1 when the state does not say.
fn natural_signer(state: &MemState, op: &Op) -> usize {
    let index = |o: &str| (0..3).find(|i| org(*i) == o).unwrap_or(0);
    let ds_owner = |ds: u8| query::dataset(state, &format!("d{ds}")).unwrap().map(|d| index(&d.owner));
    let lease = |l: u8| query::lease(state, &format!("l{l}")).unwrap();
    match op {
        Op::Register { ds, .. } => *ds as usize % 3,
        Op::Update { ds } | Op::Retire { ds } => ds_owner(*ds).unwrap_or(0),
        Op::Request { ds, lease: l, .. } => (ds_owner(*ds).unwrap_or(0) + 1 + *l as usize % 2) % 3,
        Op::Grant { lease: l, .. }
        | Op::Deny { lease: l }
        | Op::Revoke { lease: l }
        | Op::Extend { lease: l, .. }
        | Op::Access { lease: l, .. } => lease(*l).map_or(0, |l| index(&l.owner)),
        Op::Release { lease: l } | Op::StartRun { lease: l, .. } => lease(*l).map_or(0, |l| index(&l.lessee)),
    }
}

/// A lease granted or extended lasts no longer, from its grant, than the
/// dataset's policy allowed when the tx was applied.
fn check_policy_length(pre: &MemState, post: &MemState, op: &Op) {
    let id = match op {
        Op::Request { lease, .. } | Op::Grant { lease, .. } | Op::Extend { lease, .. } => format!("l{lease}"),
        _ => return,
    };
    let l = query::lease(post, &id).unwrap().unwrap();
    let (Some(granted), Some(exp)) = (l.granted_at_ms, l.expires_at_ms) else { return };
    let max = query::dataset(pre, &l.dataset_id).unwrap().unwrap().spec.policy.max_lease_ms;
    assert!((exp - granted) as u64 <= max, "{op:?}: lease {id} lasts {} ms, its policy allows {max}", exp - granted);
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
        Op::Access { lease: i, .. } => {
            let l = lease(*i);
            assert_eq!(l.owner, signer, "only the owner records a disclosure");
            assert_eq!(l.status_at(now), LeaseStatus::Active, "{op:?} disclosed under an inactive lease");
        }
        _ => {}
    }
}

/// No lease is active at or past its expiry.
fn check_expiry(state: &MemState, now: i64) {
    let all = query::leases(state, &query::LeaseFilter { limit: 100, ..Default::default() }, now).unwrap().items;
    for l in all {
        if let (Some(granted), Some(exp)) = (l.granted_at_ms, l.expires_at_ms) {
            assert!(exp > granted);
            assert!(l.status_at(exp) != LeaseStatus::Active);
            let at_expiry = query::active_lease(state, &l.lessee, &l.dataset_id, exp).unwrap();
            assert!(at_expiry.is_none_or(|a| a.id != l.id), "lease {} active at its expiry", l.id);
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
        let (a, b) = (run_and_check(&steps), run_and_check(&steps));
        prop_assert_eq!(a.root, b.root);
        prop_assert_eq!(a.state, b.state);
    }

    #[test]
    fn a_different_sequence_gives_a_different_root(steps in steps()) {
        let a = run_and_check(&steps);
        let mut longer = steps.clone();
        longer.push(Step { signer: Some(0), forged: false, advance_min: 0, op: Op::Register { ds: 9, auto: false, exclusive: false, max_min: 5 } });
        let b = run_and_check(&longer);
        prop_assert_ne!(a.state, b.state);
        prop_assert_ne!(a.root, b.root);
    }
}

/// The invariants above hold for any sequence, but that says little if the
/// random sequences are mostly rejected: count the valid txs of each kind
/// that the checks ran on, over a fixed number of cases.
#[test]
fn the_random_sequences_exercise_every_kind_of_valid_tx() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut total: BTreeMap<&'static str, usize> = BTreeMap::new();
    for _ in 0..256 {
        let steps = steps().new_tree(&mut runner).unwrap().current();
        for (k, n) in run_and_check(&steps).valid {
            *total.entry(k).or_insert(0) += n;
        }
    }
    let kinds = [
        "register",
        "update",
        "retire",
        "request",
        "grant",
        "deny",
        "release",
        "revoke",
        "extend",
        "start_run",
        "access",
    ];
    for k in kinds {
        assert!(
            total.get(k).copied().unwrap_or(0) >= 15,
            "only {:?} valid {k} txs in 256 sequences: {total:?}",
            total.get(k)
        );
    }
}
