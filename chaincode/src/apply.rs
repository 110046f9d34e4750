//! Applying one transaction: envelope checks, then the payload's rules.

use serde::{Deserialize, Serialize};

use crate::time::rfc3339;
use crate::{
    keys, lease, run, BlockCtx, ChaincodeError, Dataset, DatasetSpec, HistoryEntry, Overlay, Payload, Result, SignedTx,
    State, StateRead, TxId,
};

/// What a valid transaction did, for subscribers such as the lease monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    DatasetRegistered {
        id: String,
        version: u32,
    },
    DatasetUpdated {
        id: String,
        version: u32,
    },
    DatasetRetired {
        id: String,
    },
    LeaseRequested {
        lease_id: String,
    },
    LeaseGranted {
        lease_id: String,
        expires_at_ms: i64,
    },
    LeaseDenied {
        lease_id: String,
    },
    LeaseReleased {
        lease_id: String,
    },
    LeaseRevoked {
        lease_id: String,
    },
    LeaseExtended {
        lease_id: String,
        expires_at_ms: i64,
    },
    RunStarted {
        run_id: String,
    },
    RunFinished {
        run_id: String,
    },
    AccessRecorded {
        lease_id: String,
    },
    /// `in_effect` once a majority of the orgs approved this voter set.
    MembershipApproved {
        voters: Vec<String>,
        in_effect: bool,
    },
    ReleaseDecided {
        run_id: String,
        approved: bool,
    },
    ComputeRunRequested {
        run_id: String,
    },
    /// A derived dataset waits for the approval of `awaiting`.
    PublicationAwaiting {
        id: String,
        awaiting: Vec<String>,
    },
    /// A change to the orgs gathered `approvals`; `in_effect` once a
    /// majority of the active orgs approved it.
    OrgChange {
        change_id: String,
        approvals: Vec<String>,
        in_effect: bool,
    },
    /// An owner refused a pending publication; it is dropped.
    PublicationDenied {
        id: String,
    },
    /// A pending org change gathered `denials`; `dropped` once it was
    /// withdrawn, or a majority of the active orgs denied it.
    OrgChangeDenied {
        change_id: String,
        denials: Vec<String>,
        dropped: bool,
    },
}

/// Context of one transaction inside a block.
pub(crate) struct TxCtx<'a> {
    pub block: &'a BlockCtx<'a>,
    pub org: &'a str,
    pub tx_id: TxId,
}

impl TxCtx<'_> {
    pub fn now(&self) -> i64 {
        self.block.time_ms
    }

    /// Appends `record` to the history of `kind/id`.
    pub fn record_history<T: Serialize>(&self, state: &mut impl State, kind: &str, id: &str, record: &T) -> Result<()> {
        let count_key = keys::history_count(kind, id);
        let seq: u32 = keys::get(state, &count_key)?.unwrap_or(0);
        let entry = HistoryEntry {
            tx_id: self.tx_id,
            height: self.block.height,
            time_ms: self.now(),
            record: crate::canonical::to_bytes(record),
        };
        keys::put(state, keys::history_entry(kind, id, seq), &entry);
        keys::put(state, count_key, &seq.saturating_add(1));
        Ok(())
    }
}

/// Applies one signed transaction to `state`, all or nothing.
///
/// The signature is checked here; [`crate::apply_block`] batch-verifies a
/// block's signatures first and then applies with [`apply_verified`].
pub fn apply<S: State>(state: &mut S, tx: &SignedTx, ctx: &BlockCtx) -> Result<Vec<Event>> {
    tx.verify(ctx.genesis)?;
    let mut overlay = Overlay::new(&*state);
    let events = apply_verified(&mut overlay, tx, tx.id(), ctx)?;
    for (k, v) in overlay.into_writes() {
        match v {
            Some(v) => state.put(k, v),
            None => state.delete(k),
        }
    }
    Ok(events)
}

/// Applies a transaction whose signature is already known to be good. On
/// error the caller must discard `state`'s writes (it is an overlay).
pub(crate) fn apply_verified(state: &mut impl State, tx: &SignedTx, tx_id: TxId, ctx: &BlockCtx) -> Result<Vec<Event>> {
    check_envelope(state, tx, &tx_id, ctx)?;
    let tcx = TxCtx { block: ctx, org: &tx.body.org, tx_id };
    let event = match &tx.body.payload {
        Payload::RegisterDataset { id, spec, derived_from_run } => register(state, &tcx, id, spec, derived_from_run)?,
        Payload::UpdateDataset { id, spec } => update(state, &tcx, id, spec)?,
        Payload::RetireDataset { id } => retire(state, &tcx, id)?,
        Payload::RequestLease { lease_id, dataset_id, duration_ms, purpose } => {
            lease::request(state, &tcx, lease_id, dataset_id, *duration_ms, purpose)?
        }
        Payload::GrantLease { lease_id, duration_ms } => lease::grant(state, &tcx, lease_id, *duration_ms)?,
        Payload::DenyLease { lease_id, reason } => lease::deny(state, &tcx, lease_id, reason)?,
        Payload::ReleaseLease { lease_id } => lease::release(state, &tcx, lease_id)?,
        Payload::RevokeLease { lease_id, reason } => lease::revoke(state, &tcx, lease_id, reason)?,
        Payload::ExtendLease { lease_id, extra_ms } => lease::extend(state, &tcx, lease_id, *extra_ms)?,
        Payload::StartRun { run_id, workflow_hash, lease_ids, inputs } => {
            run::start(state, &tcx, run_id, workflow_hash, lease_ids, inputs)?
        }
        Payload::FinishRun { run_id, status, output_hash } => run::finish(state, &tcx, run_id, *status, output_hash)?,
        Payload::RecordAccess { lease_id, reader } => lease::record_access(state, &tcx, lease_id, reader)?,
        Payload::ApproveMembership { voters } => crate::membership::approve(state, &tcx, voters)?,
        Payload::RequestComputeRun { run_id, lease_id, submission_hash } => {
            crate::compute::request(state, &tcx, run_id, lease_id, submission_hash)?
        }
        Payload::StartComputeRun { run_id, workflow_hash, lease_id, submission_hash } => {
            crate::compute::start(state, &tcx, run_id, (workflow_hash, submission_hash), lease_id)?
        }
        Payload::DecideRelease { run_id, approve, output_bytes, output_hash, reason } => {
            let outputs = (*output_bytes, *output_hash);
            crate::compute::decide_release(state, &tcx, run_id, *approve, outputs, reason)?
        }
        Payload::DecidePublication { dataset_id, approve, reason } => {
            crate::publication::decide(state, &tcx, dataset_id, *approve, reason)?
        }
        Payload::ProposeOrgChange { change_id, change } => crate::roster::propose(state, &tcx, change_id, change)?,
        Payload::ApproveOrgChange { change_id } => crate::roster::approve(state, &tcx, change_id)?,
        Payload::WithdrawOrgChange { change_id } => crate::roster::withdraw(state, &tcx, change_id)?,
        Payload::DenyOrgChange { change_id } => crate::roster::deny(state, &tcx, change_id)?,
    };
    keys::put(state, keys::tx(&tx_id), &ctx.height);
    let nonce_key = keys::nonce(&tx.body.org);
    let max: u64 = keys::get(state, &nonce_key)?.unwrap_or(0);
    keys::put(state, nonce_key, &max.max(tx.body.nonce));
    Ok(vec![event])
}

fn check_envelope(state: &impl StateRead, tx: &SignedTx, tx_id: &TxId, ctx: &BlockCtx) -> Result<()> {
    let body = &tx.body;
    let g = ctx.genesis;
    if body.network_id != g.network_id {
        return Err(ChaincodeError::WrongNetwork { expected: g.network_id.clone(), got: body.network_id.clone() });
    }
    if g.org(&body.org).is_none() {
        return Err(ChaincodeError::UnknownOrg(body.org.clone()));
    }
    if body.created_at_ms.abs_diff(ctx.time_ms) > g.policy.tx_time_window_ms {
        return Err(ChaincodeError::OutsideTimeWindow {
            created_at: rfc3339(body.created_at_ms),
            block_time: rfc3339(ctx.time_ms),
        });
    }
    if state.get(&keys::tx(tx_id))?.is_some() {
        return Err(ChaincodeError::Replay(tx_id.to_hex()));
    }
    let max: u64 = keys::get(state, &keys::nonce(&body.org))?.unwrap_or(0);
    let floor = max.saturating_sub(g.policy.nonce_window);
    if max >= g.policy.nonce_window && body.nonce <= floor {
        return Err(ChaincodeError::StaleNonce { org: body.org.clone(), nonce: body.nonce, floor });
    }
    Ok(())
}

pub(crate) fn load_dataset(state: &impl StateRead, id: &str) -> Result<Dataset> {
    keys::get(state, &keys::dataset(id))?.ok_or_else(|| ChaincodeError::NotFound { kind: "dataset", id: id.into() })
}

fn validate_spec(ctx: &TxCtx, spec: &DatasetSpec) -> Result<()> {
    let text = |field, s: &str, max: usize, required: bool| {
        if required && s.trim().is_empty() {
            return Err(ChaincodeError::invalid(field, "must not be empty"));
        }
        if s.len() > max {
            return Err(ChaincodeError::invalid(field, format!("is {} bytes, the limit is {max}", s.len())));
        }
        Ok(())
    };
    text("title", &spec.title, 200, true)?;
    text("description", &spec.description, 10_000, false)?;
    text("public_metadata", &spec.public_metadata, 64 * 1024, false)?;
    if spec.tags.len() > 32 {
        return Err(ChaincodeError::invalid("tags", "at most 32 tags"));
    }
    for tag in &spec.tags {
        keys::valid_id("tags", tag)?;
    }
    if spec.private_metadata.ciphertext.len() > 64 * 1024 + 16 {
        return Err(ChaincodeError::invalid("private_metadata", "ciphertext exceeds 64 KiB"));
    }
    let g = ctx.block.genesis;
    let p = &spec.policy;
    if p.max_lease_ms == 0 || p.max_lease_ms > g.policy.max_lease_ms {
        return Err(ChaincodeError::invalid(
            "policy.max_lease_ms",
            format!("must be between 1 and the network maximum of {} ms", g.policy.max_lease_ms),
        ));
    }
    if p.release.end_granularity_ms > crate::MAX_END_GRANULARITY_MS {
        let why = format!("at most {} ms (a day)", crate::MAX_END_GRANULARITY_MS);
        return Err(ChaincodeError::invalid("policy.release.end_granularity_ms", why));
    }
    for org in &p.allowed_orgs {
        if g.org(org).is_none() {
            return Err(ChaincodeError::invalid(
                "policy.allowed_orgs",
                format!("{org:?} is not a member of the network"),
            ));
        }
    }
    Ok(())
}

fn index_dataset(state: &mut impl State, ds: &Dataset, present: bool) {
    let mut keys = vec![keys::idx_owner(&ds.owner, &ds.id)];
    keys.extend(ds.spec.tags.iter().map(|t| keys::idx_tag(t, &ds.id)));
    for k in keys {
        if present {
            state.put(k, Vec::new());
        } else {
            state.delete(k);
        }
    }
}

fn store_dataset(state: &mut impl State, ctx: &TxCtx, ds: &Dataset) -> Result<()> {
    keys::put(state, keys::dataset(&ds.id), ds);
    keys::put(state, keys::dataset_version(&ds.id, ds.version), ds);
    ctx.record_history(state, "dataset", &ds.id, ds)
}

fn register(
    state: &mut impl State,
    ctx: &TxCtx,
    id: &str,
    spec: &DatasetSpec,
    derived_from_run: &Option<String>,
) -> Result<Event> {
    keys::valid_id("id", id)?;
    if state.get(&keys::dataset(id))?.is_some() || state.get(&keys::publication(id))?.is_some() {
        return Err(ChaincodeError::AlreadyExists { kind: "dataset", id: id.into() });
    }
    validate_spec(ctx, spec)?;
    let provenance = match derived_from_run {
        Some(run_id) => Some(run::provenance_for(state, ctx.org, run_id, &spec.content_hash)?),
        None => None,
    };
    let ds = Dataset {
        id: id.into(),
        owner: ctx.org.into(),
        version: 1,
        spec: spec.clone(),
        provenance,
        retired: false,
        created_at_ms: ctx.now(),
        updated_at_ms: ctx.now(),
    };
    if let Some(prov) = &ds.provenance {
        let awaiting = crate::publication::approvers(state, ctx.org, &prov.inputs)?;
        if !awaiting.is_empty() {
            return crate::publication::hold(state, ctx, ds, awaiting);
        }
    }
    publish(state, ctx, &ds)
}

/// Puts a new dataset on the ledger.
pub(crate) fn publish(state: &mut impl State, ctx: &TxCtx, ds: &Dataset) -> Result<Event> {
    index_dataset(state, ds, true);
    store_dataset(state, ctx, ds)?;
    Ok(Event::DatasetRegistered { id: ds.id.clone(), version: 1 })
}

fn owned_live_dataset(state: &impl StateRead, ctx: &TxCtx, id: &str, action: &'static str) -> Result<Dataset> {
    let ds = load_dataset(state, id)?;
    if ds.owner != ctx.org {
        return Err(ChaincodeError::NotOwner { owner: ds.owner, org: ctx.org.into(), action });
    }
    if ds.retired {
        return Err(ChaincodeError::Retired(id.into()));
    }
    Ok(ds)
}

fn update(state: &mut impl State, ctx: &TxCtx, id: &str, spec: &DatasetSpec) -> Result<Event> {
    let old = owned_live_dataset(state, ctx, id, "update the dataset")?;
    validate_spec(ctx, spec)?;
    index_dataset(state, &old, false);
    let version = old.version.checked_add(1).ok_or_else(|| ChaincodeError::invalid("id", "no more versions"))?;
    let provenance = crate::publication::provenance_after_update(state, ctx, &old, spec)?;
    let ds = Dataset { version, spec: spec.clone(), provenance, updated_at_ms: ctx.now(), ..old };
    index_dataset(state, &ds, true);
    store_dataset(state, ctx, &ds)?;
    Ok(Event::DatasetUpdated { id: id.into(), version: ds.version })
}

fn retire(state: &mut impl State, ctx: &TxCtx, id: &str) -> Result<Event> {
    let ds = owned_live_dataset(state, ctx, id, "retire the dataset")?;
    let ds = Dataset { retired: true, updated_at_ms: ctx.now(), ..ds };
    keys::put(state, keys::dataset(id), &ds);
    ctx.record_history(state, "dataset", id, &ds)?;
    Ok(Event::DatasetRetired { id: id.into() })
}
