//! Publishing what is derived from another org's `owner_approval` dataset:
//! the publication waits on the ledger until every such owner approves it,
//! and is dropped when one refuses. The publisher alone never puts it on
//! the ledger, and an approved dataset keeps the files and policy its
//! owners approved.

use std::collections::BTreeSet;

use crate::catalog::publish;
use crate::ctx::{Event, TxCtx};
use crate::run::{input_policies, provenance_for};
use crate::{
    keys, ChaincodeError, Dataset, DatasetRef, DatasetSpec, DerivedPolicy, Provenance, Publication,
    PublicationDecision, Result, State, StateRead,
};

const MAX_REASON_BYTES: usize = 1000;

/// The orgs, other than `publisher`, that must approve publishing what is
/// derived from `inputs`: owners of inputs whose policy (the version read
/// or the current one) is `owner_approval`.
pub(crate) fn approvers(
    state: &(impl StateRead + ?Sized),
    publisher: &str,
    inputs: &[DatasetRef],
) -> Result<Vec<String>> {
    let mut orgs = BTreeSet::new();
    for input in inputs {
        if input_policies(state, publisher, input)?.contains(&DerivedPolicy::OwnerApproval) {
            orgs.insert(crate::catalog::load_dataset(state, &input.id)?.owner);
        }
    }
    Ok(orgs.into_iter().collect())
}

/// Keeps `ds` off the ledger until `awaiting` approve it; a run's outputs
/// wait in one publication at a time.
pub(crate) fn hold(state: &mut impl State, ctx: &TxCtx, ds: Dataset, awaiting: Vec<String>) -> Result<Event> {
    let id = ds.id.clone();
    let run_id = ds.provenance.as_ref().map(|p| p.run_id.clone()).unwrap_or_default();
    if let Some(other) = keys::get::<String>(state, &keys::publication_of_run(&run_id))? {
        return Err(ChaincodeError::AlreadyExists {
            kind: "pending publication of run",
            id: format!("{run_id} (as {other})"),
        });
    }
    keys::put(state, keys::publication_of_run(&run_id), &id);
    state.put(keys::idx_publication_by(&ds.owner, &id), Vec::new());
    for org in &awaiting {
        state.put(keys::idx_publication_awaiting(org, &id), Vec::new());
    }
    let publication =
        Publication { dataset: ds, awaiting: awaiting.clone(), decisions: Vec::new(), requested_at_ms: ctx.now() };
    keys::put(state, keys::publication(&id), &publication);
    ctx.record_history(state, "publication", &id, &publication)?;
    Ok(Event::PublicationAwaiting { id, awaiting })
}

/// Removes a publication that is decided, and its keys.
fn drop_pending(state: &mut impl State, p: &Publication) {
    let id = &p.dataset.id;
    state.delete(keys::publication(id));
    if let Some(prov) = &p.dataset.provenance {
        state.delete(keys::publication_of_run(&prov.run_id));
    }
    state.delete(keys::idx_publication_by(&p.dataset.owner, id));
    for org in p.awaiting.iter().chain(p.decisions.iter().map(|d| &d.org)) {
        state.delete(keys::idx_publication_awaiting(org, id));
    }
}

/// Pending publications one org holds at most; a bound on one leave's work.
const MAX_PENDING_PER_ORG: usize = 10_000;

/// Drops every pending publication `org` made or is awaited on, when it
/// leaves: nobody could ever decide them. Each is refused with `reason`.
pub(crate) fn refuse_for_departed(state: &mut impl State, ctx: &TxCtx, org: &str, reason: &str) -> Result<()> {
    let mut ids = Vec::new();
    for prefix in [keys::idx_publication_awaiting(org, ""), keys::idx_publication_by(org, "")] {
        let found = state.scan_prefix(&prefix, MAX_PENDING_PER_ORG)?;
        ids.extend(found.iter().map(|(k, _)| keys::last_segment(k)));
    }
    ids.sort();
    ids.dedup();
    for id in ids {
        let Some(mut p) = keys::get::<Publication>(state, &keys::publication(&id))? else { continue };
        p.decisions.push(PublicationDecision { org: org.into(), approved: false, reason: reason.into() });
        p.awaiting.retain(|o| o != org);
        ctx.record_history(state, "publication", &id, &p)?;
        drop_pending(state, &p);
    }
    Ok(())
}

/// An awaited owner approves the publication of `id` or refuses it. The
/// last approval registers the dataset, after checking its provenance
/// again: an input's policy may have changed while it waited.
pub(crate) fn decide(state: &mut impl State, ctx: &TxCtx, id: &str, approve: bool, reason: &str) -> Result<Event> {
    let mut p: Publication = keys::get(state, &keys::publication(id))?
        .ok_or_else(|| ChaincodeError::NotFound { kind: "pending publication", id: id.into() })?;
    if !p.awaiting.iter().any(|o| o == ctx.org) {
        if p.decisions.iter().any(|d| d.org == ctx.org) {
            return Err(ChaincodeError::AlreadyExists { kind: "approval of publication", id: id.into() });
        }
        return Err(ChaincodeError::NotOwner {
            owner: p.awaiting.join(", "),
            org: ctx.org.into(),
            action: "decide on the publication",
        });
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(ChaincodeError::invalid("reason", format!("at most {MAX_REASON_BYTES} bytes")));
    }
    if !approve && reason.trim().is_empty() {
        return Err(ChaincodeError::invalid("reason", "a refusal says why"));
    }
    p.decisions.push(PublicationDecision { org: ctx.org.into(), approved: approve, reason: reason.into() });
    p.awaiting.retain(|o| o != ctx.org);
    state.delete(keys::idx_publication_awaiting(ctx.org, id));
    if !approve {
        ctx.record_history(state, "publication", id, &p)?;
        drop_pending(state, &p);
        return Ok(Event::PublicationDenied { id: id.into() });
    }
    let publisher = p.dataset.owner.clone();
    let Some(prov) = p.dataset.provenance.clone() else {
        return Err(ChaincodeError::invalid("dataset_id", "a pending publication is always derived"));
    };
    provenance_for(state, &publisher, &prov.run_id, &p.dataset.spec.content_hash)?;
    // An input's policy may have turned to `owner_approval` meanwhile.
    for org in approvers(state, &publisher, &prov.inputs)? {
        if !p.decisions.iter().any(|d| d.org == org) && !p.awaiting.contains(&org) {
            state.put(keys::idx_publication_awaiting(&org, id), Vec::new());
            p.awaiting.push(org);
        }
    }
    ctx.record_history(state, "publication", id, &p)?;
    if !p.awaiting.is_empty() {
        p.awaiting.sort();
        keys::put(state, keys::publication(id), &p);
        return Ok(Event::PublicationAwaiting { id: id.into(), awaiting: p.awaiting });
    }
    drop_pending(state, &p);
    let ds = Dataset { created_at_ms: ctx.now(), updated_at_ms: ctx.now(), ..p.dataset };
    publish(state, ctx, &ds)
}

/// The provenance a derived dataset keeps in a new version: new files are
/// no longer what the run produced, so they drop it; and one whose inputs'
/// owners approved it keeps the files and policy they approved.
pub(crate) fn provenance_after_update(
    state: &(impl StateRead + ?Sized),
    ctx: &TxCtx,
    old: &Dataset,
    spec: &DatasetSpec,
) -> Result<Option<Provenance>> {
    let Some(prov) = &old.provenance else { return Ok(None) };
    let new_files = spec.content_hash != old.spec.content_hash;
    if (new_files || spec.policy != old.spec.policy) && !approvers(state, ctx.org, &prov.inputs)?.is_empty() {
        return Err(ChaincodeError::invalid(
            "id",
            format!(
                "dataset {:?} was published as its inputs' owners approved it: publish a new dataset to change its \
                 files or policy",
                old.id
            ),
        ));
    }
    Ok(if new_files { None } else { Some(prov.clone()) })
}
