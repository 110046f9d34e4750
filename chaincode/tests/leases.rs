//! Lease rules: request, grant, deny, release, revoke, extend, expiry, exclusivity.

mod common;
use common::*;
use leasehold_chaincode::*;

#[test]
fn request_needs_an_allowed_org_and_a_duration_within_policy() {
    let mut net = with_requested_lease();
    net.run(0, T0, register("private", spec("P", &[], policy(&[1], HOUR, Approval::Owner, false)))).unwrap();
    let err = net.reject(2, T0, request("L2", "private", 1000));
    assert_eq!(err.to_string(), "\"org3\" is not allowed by the policy of dataset \"private\"");
    let err = net.reject(1, T0, request("L3", "iris", HOUR + 1));
    assert_eq!(
        err.to_string(),
        "a lease of 3600001 ms exceeds the maximum of 3600000 ms allowed by the policy of dataset \"iris\""
    );
    assert!(matches!(
        net.reject(1, T0, request("L4", "iris", 0)),
        ChaincodeError::InvalidField { field: "duration_ms", .. }
    ));
    assert!(matches!(
        net.reject(0, T0, request("L5", "iris", 1000)),
        ChaincodeError::InvalidField { field: "dataset_id", .. }
    ));
    assert!(matches!(net.reject(1, T0, request("L1", "iris", 1000)), ChaincodeError::AlreadyExists { .. }));
    assert_eq!(net.reject(1, T0, request("L6", "ghost", 1000)).to_string(), "dataset \"ghost\" does not exist");
}

#[test]
fn a_requested_lease_is_not_active() {
    let net = with_requested_lease();
    let l = net.lease("L1");
    assert_eq!(l.status_at(T0 + 5000), LeaseStatus::Requested);
    assert_eq!(l.inactive_reason(T0 + 5000).unwrap(), "lease L1 has not been granted yet");
}

#[test]
fn only_the_owner_grants() {
    let mut net = with_requested_lease();
    let err = net.reject(2, T0 + 2000, grant("L1", 1000));
    assert_eq!(err.to_string(), "only the owner \"org1\" may grant the lease; \"org3\" is not the owner");
    let err = net.reject(1, T0 + 2000, grant("L1", 1000));
    assert!(matches!(err, ChaincodeError::NotOwner { .. }));
}

#[test]
fn a_grant_beyond_the_policy_maximum_is_rejected() {
    let mut net = with_requested_lease();
    assert!(matches!(net.reject(0, T0 + 2000, grant("L1", HOUR + 1)), ChaincodeError::DurationExceedsPolicy { .. }));
}

#[test]
fn a_lease_is_active_only_while_block_time_is_before_expiry() {
    let net = with_active_lease();
    let l = net.lease("L1");
    let exp = T0 + 2000 + 600_000;
    assert_eq!(l.expires_at_ms, Some(exp));
    assert_eq!(l.dataset_version, Some(1));
    assert_eq!(l.status_at(exp - 1), LeaseStatus::Active);
    assert_eq!(l.status_at(exp), LeaseStatus::Expired, "expiry is exclusive and needs no transaction");
    assert_eq!(l.inactive_reason(exp).unwrap(), "lease L1 expired at 2026-11-23T21:40:02.000Z");
    assert!(query::active_lease(&net.state, "org2", "iris", exp - 1).unwrap().is_some());
    assert!(query::active_lease(&net.state, "org2", "iris", exp).unwrap().is_none());
    assert!(query::active_lease(&net.state, "org3", "iris", exp - 1).unwrap().is_none(), "another org holds no lease");
}

#[test]
fn a_granted_lease_cannot_be_granted_or_denied_again() {
    let mut net = with_active_lease();
    let err = net.reject(0, T0 + 3000, grant("L1", 1000));
    assert_eq!(err.to_string(), "lease \"L1\" is active; grant needs it to be requested");
    let deny = Payload::DenyLease { lease_id: "L1".into(), reason: "no".into() };
    assert!(matches!(net.reject(0, T0 + 3000, deny), ChaincodeError::LeaseState { .. }));
}

#[test]
fn deny_needs_the_owner_and_a_reason_and_is_final() {
    let mut net = with_requested_lease();
    let deny = |r: &str| Payload::DenyLease { lease_id: "L1".into(), reason: r.into() };
    assert!(matches!(net.reject(0, T0 + 2000, deny(" ")), ChaincodeError::InvalidField { field: "reason", .. }));
    assert!(matches!(net.reject(1, T0 + 2000, deny("no")), ChaincodeError::NotOwner { .. }));
    net.run(0, T0 + 2000, deny("purpose not acceptable")).unwrap();
    let l = net.lease("L1");
    assert_eq!(l.status_at(T0 + 3000), LeaseStatus::Denied);
    assert_eq!(
        l.inactive_reason(T0 + 3000).unwrap(),
        "lease L1 was denied at 2026-11-23T21:30:02.000Z: purpose not acceptable"
    );
    assert!(matches!(net.reject(0, T0 + 3000, grant("L1", 1000)), ChaincodeError::LeaseState { .. }));
}

#[test]
fn only_the_lessee_releases() {
    let mut net = with_active_lease();
    let release = || Payload::ReleaseLease { lease_id: "L1".into() };
    let err = net.reject(2, T0 + 3000, release());
    assert_eq!(err.to_string(), "lease \"L1\" is held by \"org2\", not by \"org3\"");
    net.run(1, T0 + 3000, release()).unwrap();
    assert_eq!(net.lease("L1").status_at(T0 + 4000), LeaseStatus::Released);
    assert!(matches!(net.reject(1, T0 + 4000, release()), ChaincodeError::LeaseState { .. }));
}

#[test]
fn only_the_owner_revokes_with_a_reason_and_revocation_is_immediate() {
    let mut net = with_active_lease();
    let revoke = |r: &str| Payload::RevokeLease { lease_id: "L1".into(), reason: r.into() };
    assert!(matches!(net.reject(1, T0 + 3000, revoke("x")), ChaincodeError::NotOwner { .. }));
    assert!(matches!(net.reject(0, T0 + 3000, revoke("")), ChaincodeError::InvalidField { .. }));
    net.run(0, T0 + 3000, revoke("contract ended")).unwrap();
    let l = net.lease("L1");
    assert_eq!(l.status_at(T0 + 3000), LeaseStatus::Revoked);
    assert_eq!(
        l.inactive_reason(T0 + 3000).unwrap(),
        "lease L1 was revoked at 2026-11-23T21:30:03.000Z: contract ended"
    );
    assert!(query::active_lease(&net.state, "org2", "iris", T0 + 3000).unwrap().is_none());
}

#[test]
fn an_expired_lease_cannot_be_revoked_released_or_extended() {
    let mut net = with_active_lease();
    let late = T0 + 2000 + 600_000;
    let expired = "lease \"L1\" expired at 2026-11-23T21:40:02.000Z";
    let revoke = Payload::RevokeLease { lease_id: "L1".into(), reason: "x".into() };
    assert_eq!(net.reject(0, late, revoke).to_string(), expired);
    assert_eq!(net.reject(1, late, Payload::ReleaseLease { lease_id: "L1".into() }).to_string(), expired);
    assert_eq!(net.reject(0, late, Payload::ExtendLease { lease_id: "L1".into(), extra_ms: 1 }).to_string(), expired);
}

#[test]
fn extend_is_owner_only_and_bounded_by_the_policy_over_the_whole_lease() {
    let mut net = with_active_lease(); // 10 minutes of a 1 hour maximum
    let extend = |ms| Payload::ExtendLease { lease_id: "L1".into(), extra_ms: ms };
    assert!(matches!(net.reject(1, T0 + 3000, extend(1000)), ChaincodeError::NotOwner { .. }));
    assert!(matches!(net.reject(0, T0 + 3000, extend(0)), ChaincodeError::InvalidField { .. }));
    let ev = net.run(0, T0 + 3000, extend(HOUR - 600_000)).unwrap();
    assert_eq!(ev, vec![Event::LeaseExtended { lease_id: "L1".into(), expires_at_ms: T0 + 2000 + HOUR as i64 }]);
    let err = net.reject(0, T0 + 4000, extend(1));
    assert_eq!(
        err,
        ChaincodeError::DurationExceedsPolicy { dataset: "iris".into(), requested_ms: HOUR + 1, max_ms: HOUR }
    );
    // A huge extension fails; it never wraps round into a short or endless lease.
    for huge in [u64::MAX, i64::MAX as u64, u64::MAX - HOUR] {
        assert!(matches!(net.reject(0, T0 + 4000, extend(huge)), ChaincodeError::DurationExceedsPolicy { .. }));
    }
    assert_eq!(net.lease("L1").expires_at_ms, Some(T0 + 2000 + HOUR as i64));
}

#[test]
fn automatic_approval_grants_on_request_and_puts_no_key_on_the_ledger() {
    let mut net = Net::new();
    net.run(0, T0, register("auto", spec("A", &[], policy(&[1, 2], HOUR, Approval::Automatic, false)))).unwrap();
    let ev = net.run(2, T0 + 10, request("LA", "auto", 5000)).unwrap();
    assert_eq!(ev, vec![Event::LeaseGranted { lease_id: "LA".into(), expires_at_ms: T0 + 5010 }]);
    let l = net.lease("LA");
    assert_eq!(l.status_at(T0 + 5009), LeaseStatus::Active);
    assert_eq!(l.dataset_version, Some(1), "the version the owner's node will disclose");
}

#[test]
fn an_exclusive_dataset_has_at_most_one_active_lease() {
    let mut net = Net::new();
    net.run(0, T0, register("ex", spec("E", &[], policy(&[1, 2], HOUR, Approval::Owner, true)))).unwrap();
    net.run(1, T0, request("A", "ex", 1000)).unwrap();
    net.run(2, T0, request("B", "ex", 1000)).unwrap();
    net.run(0, T0, grant("A", 1000)).unwrap();
    let err = net.reject(0, T0 + 500, grant("B", 1000));
    assert_eq!(err.to_string(), "dataset \"ex\" is leased exclusively by lease \"A\" until 2026-11-23T21:30:01.000Z");
    net.run(0, T0 + 1000, grant("B", 1000)).expect("A expired, so B may be granted");
}

#[test]
fn history_keeps_every_version_of_a_lease_with_its_tx() {
    let mut net = with_requested_lease();
    let tx = net.tx(0, T0 + 2000, grant("L1", 1000));
    net.submit(&tx, T0 + 2000).unwrap();
    let hist = query::history(&net.state, "lease", "L1").unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[1].tx_id, tx.id());
    let first: Lease = canonical::from_bytes(&hist[0].record, "lease").unwrap();
    assert_eq!(first.state, LeaseState::Requested);
}
