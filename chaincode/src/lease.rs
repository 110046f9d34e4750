//! Lease rules: request, grant, deny, release, revoke, extend, audit.

use crate::catalog::load_dataset;
use crate::ctx::{Event, TxCtx};
use crate::time::rfc3339;
use crate::{
    keys, AccessRecord, Approval, ChaincodeError, Dataset, Lease, LeaseState, LeaseStatus, Result, State, StateRead,
};

pub(crate) fn load(state: &(impl StateRead + ?Sized), id: &str) -> Result<Lease> {
    keys::get(state, &keys::lease(id))?.ok_or_else(|| ChaincodeError::NotFound { kind: "lease", id: id.into() })
}

/// Writes the lease, its history, and its place in the index of granted
/// leases by expiry (moved when it is extended, gone once it ends early).
pub(crate) fn store(state: &mut impl State, ctx: &TxCtx, lease: &Lease) -> Result<()> {
    let live = |l: &Lease| match (l.state, l.expires_at_ms) {
        (LeaseState::Granted, Some(exp)) => Some(keys::idx_lease_live(&l.dataset_id, exp, &l.id)),
        _ => None,
    };
    let before: Option<Lease> = keys::get(state, &keys::lease(&lease.id))?;
    let (was, is) = (before.as_ref().and_then(live), live(lease));
    if let Some(k) = was.filter(|k| Some(k) != is.as_ref()) {
        state.delete(k);
    }
    if let Some(k) = is {
        state.put(k, Vec::new());
    }
    keys::put(state, keys::lease(&lease.id), lease);
    ctx.record_history(state, "lease", &lease.id, lease)
}

/// The leases of `dataset` that may be active at `now_ms`: granted, not
/// ended early, and expiring after it, soonest first, at most `limit`.
pub(crate) fn live(state: &(impl StateRead + ?Sized), dataset: &str, now_ms: i64, limit: usize) -> Result<Vec<Lease>> {
    let (prefix, from) = (keys::idx_lease_live_prefix(dataset), keys::idx_lease_live_from(dataset, now_ms));
    let found = state.scan_after(&prefix, &from, limit)?;
    found.iter().map(|(k, _)| load(state, &keys::last_segment(k))).collect()
}

/// The lease's status error for an action that needs it `needs`.
pub(crate) fn wrong_state(lease: &Lease, now: i64, action: &'static str, needs: &'static str) -> ChaincodeError {
    match lease.status_at(now) {
        LeaseStatus::Expired => ChaincodeError::LeaseExpired {
            lease: lease.id.clone(),
            expired_at: rfc3339(lease.expires_at_ms.unwrap_or_default()),
        },
        s => ChaincodeError::LeaseState { lease: lease.id.clone(), status: s.as_str().into(), action, needs },
    }
}

pub(crate) fn require_owner(lease: &Lease, ctx: &TxCtx, action: &'static str) -> Result<()> {
    if lease.owner != ctx.org {
        return Err(ChaincodeError::NotOwner { owner: lease.owner.clone(), org: ctx.org.into(), action });
    }
    Ok(())
}

fn require_lessee(lease: &Lease, ctx: &TxCtx) -> Result<()> {
    if lease.lessee != ctx.org {
        return Err(ChaincodeError::NotLessee {
            lease: lease.id.clone(),
            lessee: lease.lessee.clone(),
            org: ctx.org.into(),
        });
    }
    Ok(())
}

fn check_duration(ds: &Dataset, duration_ms: u64) -> Result<()> {
    if duration_ms == 0 {
        return Err(ChaincodeError::invalid("duration_ms", "must be greater than zero"));
    }
    if duration_ms > ds.spec.policy.max_lease_ms {
        return Err(ChaincodeError::DurationExceedsPolicy {
            dataset: ds.id.clone(),
            requested_ms: duration_ms,
            max_ms: ds.spec.policy.max_lease_ms,
        });
    }
    Ok(())
}

/// Under an exclusive policy, no other lease of the dataset may be active.
fn check_exclusive(state: &(impl StateRead + ?Sized), ctx: &TxCtx, ds: &Dataset, lease_id: &str) -> Result<()> {
    if !ds.spec.policy.exclusive {
        return Ok(());
    }
    // Through the index of live leases: at most one other is there to find.
    for other in live(state, &ds.id, ctx.now(), 2)? {
        if other.id != lease_id && other.status_at(ctx.now()) == LeaseStatus::Active {
            return Err(ChaincodeError::ExclusiveConflict {
                dataset: ds.id.clone(),
                lease: other.id,
                until: rfc3339(other.expires_at_ms.unwrap_or_default()),
            });
        }
    }
    Ok(())
}

/// `duration_ms` is within the policy (at most 30 days), so it fits an i64.
fn activate(lease: &mut Lease, ctx: &TxCtx, ds: &Dataset, duration_ms: u64) -> i64 {
    let expires = ctx.now().saturating_add(i64::try_from(duration_ms).unwrap_or(i64::MAX));
    lease.state = LeaseState::Granted;
    lease.dataset_version = Some(ds.version);
    lease.granted_at_ms = Some(ctx.now());
    lease.expires_at_ms = Some(expires);
    lease.updated_at_ms = ctx.now();
    expires
}

pub(crate) fn request(
    state: &mut impl State,
    ctx: &TxCtx,
    lease_id: &str,
    dataset_id: &str,
    duration_ms: u64,
    purpose: &str,
) -> Result<Event> {
    keys::valid_id("lease_id", lease_id)?;
    if state.get(&keys::lease(lease_id))?.is_some() {
        return Err(ChaincodeError::AlreadyExists { kind: "lease", id: lease_id.into() });
    }
    if purpose.len() > 1000 {
        return Err(ChaincodeError::invalid("purpose", "at most 1000 bytes"));
    }
    let ds = load_dataset(state, dataset_id)?;
    if ds.retired {
        return Err(ChaincodeError::Retired(ds.id));
    }
    if ds.owner == ctx.org {
        return Err(ChaincodeError::invalid("dataset_id", "an owner does not lease its own dataset"));
    }
    if ctx.block.genesis.org(&ds.owner).is_none() {
        return Err(ChaincodeError::invalid("dataset_id", format!("its owner {:?} left the network", ds.owner)));
    }
    if !ds.spec.policy.allowed_orgs.iter().any(|o| o == ctx.org) {
        return Err(ChaincodeError::NotAllowedByPolicy { org: ctx.org.into(), dataset: ds.id });
    }
    check_duration(&ds, duration_ms)?;
    let mut lease = Lease {
        id: lease_id.into(),
        dataset_id: ds.id.clone(),
        owner: ds.owner.clone(),
        lessee: ctx.org.into(),
        purpose: purpose.into(),
        requested_ms: duration_ms,
        state: LeaseState::Requested,
        dataset_version: None,
        granted_at_ms: None,
        expires_at_ms: None,
        reason: None,
        requested_at_ms: ctx.now(),
        updated_at_ms: ctx.now(),
    };
    let event = if ds.spec.policy.approval == Approval::Automatic {
        check_exclusive(state, ctx, &ds, lease_id)?;
        let expires_at_ms = activate(&mut lease, ctx, &ds, duration_ms);
        Event::LeaseGranted { lease_id: lease_id.into(), expires_at_ms }
    } else {
        Event::LeaseRequested { lease_id: lease_id.into() }
    };
    state.put(keys::idx_lease_by_dataset(&ds.id, lease_id), Vec::new());
    state.put(keys::idx_lease_by_lessee(ctx.org, lease_id), Vec::new());
    state.put(keys::idx_lease_by_owner(&ds.owner, lease_id), Vec::new());
    store(state, ctx, &lease)?;
    Ok(event)
}

pub(crate) fn grant(state: &mut impl State, ctx: &TxCtx, lease_id: &str, duration_ms: u64) -> Result<Event> {
    let mut lease = load(state, lease_id)?;
    require_owner(&lease, ctx, "grant the lease")?;
    if lease.state != LeaseState::Requested {
        return Err(wrong_state(&lease, ctx.now(), "grant", "requested"));
    }
    let ds = load_dataset(state, &lease.dataset_id)?;
    if ds.retired {
        return Err(ChaincodeError::Retired(ds.id));
    }
    check_duration(&ds, duration_ms)?;
    check_exclusive(state, ctx, &ds, lease_id)?;
    let expires_at_ms = activate(&mut lease, ctx, &ds, duration_ms);
    store(state, ctx, &lease)?;
    Ok(Event::LeaseGranted { lease_id: lease_id.into(), expires_at_ms })
}

fn required_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() || reason.len() > 1000 {
        return Err(ChaincodeError::invalid("reason", "must be 1 to 1000 bytes"));
    }
    Ok(())
}

pub(crate) fn deny(state: &mut impl State, ctx: &TxCtx, lease_id: &str, reason: &str) -> Result<Event> {
    let mut lease = load(state, lease_id)?;
    require_owner(&lease, ctx, "deny the lease")?;
    required_reason(reason)?;
    if lease.state != LeaseState::Requested {
        return Err(wrong_state(&lease, ctx.now(), "deny", "requested"));
    }
    lease.state = LeaseState::Denied;
    lease.reason = Some(reason.into());
    lease.updated_at_ms = ctx.now();
    store(state, ctx, &lease)?;
    Ok(Event::LeaseDenied { lease_id: lease_id.into() })
}

pub(crate) fn release(state: &mut impl State, ctx: &TxCtx, lease_id: &str) -> Result<Event> {
    let mut lease = load(state, lease_id)?;
    require_lessee(&lease, ctx)?;
    if !matches!(lease.status_at(ctx.now()), LeaseStatus::Active | LeaseStatus::Requested) {
        return Err(wrong_state(&lease, ctx.now(), "release", "requested or active"));
    }
    lease.state = LeaseState::Released;
    lease.updated_at_ms = ctx.now();
    store(state, ctx, &lease)?;
    Ok(Event::LeaseReleased { lease_id: lease_id.into() })
}

pub(crate) fn revoke(state: &mut impl State, ctx: &TxCtx, lease_id: &str, reason: &str) -> Result<Event> {
    let mut lease = load(state, lease_id)?;
    require_owner(&lease, ctx, "revoke the lease")?;
    required_reason(reason)?;
    if lease.status_at(ctx.now()) != LeaseStatus::Active {
        return Err(wrong_state(&lease, ctx.now(), "revoke", "active"));
    }
    lease.state = LeaseState::Revoked;
    lease.reason = Some(reason.into());
    lease.updated_at_ms = ctx.now();
    store(state, ctx, &lease)?;
    Ok(Event::LeaseRevoked { lease_id: lease_id.into() })
}

pub(crate) fn extend(state: &mut impl State, ctx: &TxCtx, lease_id: &str, extra_ms: u64) -> Result<Event> {
    let mut lease = load(state, lease_id)?;
    require_owner(&lease, ctx, "extend the lease")?;
    if lease.status_at(ctx.now()) != LeaseStatus::Active {
        return Err(wrong_state(&lease, ctx.now(), "extend", "active"));
    }
    if extra_ms == 0 {
        return Err(ChaincodeError::invalid("extra_ms", "must be greater than zero"));
    }
    let ds = load_dataset(state, &lease.dataset_id)?;
    let (granted, expires) = (lease.granted_at_ms.unwrap_or_default(), lease.expires_at_ms.unwrap_or_default());
    // The policy bounds the whole lease, not each extension, or a chain of
    // small extensions would defeat it.
    // Checked: a huge `extra_ms` must fail, never wrap into a short lease.
    let total_ms = u64::try_from(expires.saturating_sub(granted)).unwrap_or(0).saturating_add(extra_ms);
    check_duration(&ds, total_ms)?;
    let expires_at_ms = i64::try_from(extra_ms)
        .ok()
        .and_then(|e| expires.checked_add(e))
        .ok_or_else(|| ChaincodeError::invalid("extra_ms", "the lease would end past the representable time"))?;
    lease.expires_at_ms = Some(expires_at_ms);
    lease.updated_at_ms = ctx.now();
    store(state, ctx, &lease)?;
    Ok(Event::LeaseExtended { lease_id: lease_id.into(), expires_at_ms })
}

/// Requires `lease_id` to be held by the tx's org and active now.
pub(crate) fn require_active_for(state: &(impl StateRead + ?Sized), ctx: &TxCtx, lease_id: &str) -> Result<Lease> {
    let lease = load(state, lease_id)?;
    require_lessee(&lease, ctx)?;
    if lease.status_at(ctx.now()) != LeaseStatus::Active {
        return Err(wrong_state(&lease, ctx.now(), "use", "active"));
    }
    Ok(lease)
}

/// Reads one access record may stand for: what one user of the lessee's
/// asked for while the owner's previous record of them was committing.
pub const MAX_READS_PER_RECORD: u32 = 1024;
/// The longest name of a lessee's user an access record holds.
pub const MAX_READER_BYTES: usize = 200;

/// The owner records `reads` disclosures to the lessee's `reader`; the
/// lease must be active at this block's time, so no disclosure is recorded
/// at or after expiry.
pub(crate) fn record_access(
    state: &mut impl State,
    ctx: &TxCtx,
    lease_id: &str,
    reader: &str,
    reads: u32,
) -> Result<Event> {
    let lease = load(state, lease_id)?;
    require_owner(&lease, ctx, "record a disclosure of its metadata")?;
    if lease.status_at(ctx.now()) != LeaseStatus::Active {
        return Err(wrong_state(&lease, ctx.now(), "disclose", "active"));
    }
    if reader.is_empty() || reader.len() > MAX_READER_BYTES {
        return Err(ChaincodeError::invalid("reader", format!("must be 1 to {MAX_READER_BYTES} bytes")));
    }
    if !(1..=MAX_READS_PER_RECORD).contains(&reads) {
        return Err(ChaincodeError::invalid("reads", format!("must be 1 to {MAX_READS_PER_RECORD}")));
    }
    let record = AccessRecord {
        lease_id: lease.id.clone(),
        dataset_id: lease.dataset_id,
        version: lease.dataset_version.unwrap_or(1),
        org: lease.lessee,
        reader: reader.into(),
        time_ms: ctx.now(),
        tx_id: ctx.tx_id,
        reads,
    };
    ctx.record_history(state, "access", lease_id, &record)?;
    // Beside the record, whose stored bytes are those of the records
    // written before counts were; none means one read.
    if reads > 1 {
        keys::put(state, keys::access_reads(lease_id, &ctx.tx_id), &reads);
    }
    Ok(Event::AccessRecorded { lease_id: lease_id.into() })
}
