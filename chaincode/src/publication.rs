//! Publishing what is derived from another org's `owner_approval` dataset:
//! the publication waits on the ledger until every such owner approves it,
//! and is dropped when one refuses. What one org says alone never puts
//! another's derived data on the ledger, nor keeps it off.

use std::collections::BTreeSet;

use crate::apply::{publish, Event, TxCtx};
use crate::run::{input_policies, provenance_for};
use crate::{
    keys, ChaincodeError, Dataset, DatasetRef, DerivedPolicy, Publication, PublicationDecision, Result, State,
    StateRead,
};

const MAX_REASON_BYTES: usize = 1000;

/// The orgs, other than `publisher`, that must approve publishing what is
/// derived from `inputs`: owners of inputs whose policy (the version read
/// or the current one) is `owner_approval`.
pub(crate) fn approvers(state: &impl StateRead, publisher: &str, inputs: &[DatasetRef]) -> Result<Vec<String>> {
    let mut orgs = BTreeSet::new();
    for input in inputs {
        if input_policies(state, publisher, input)?.contains(&DerivedPolicy::OwnerApproval) {
            orgs.insert(crate::apply::load_dataset(state, &input.id)?.owner);
        }
    }
    Ok(orgs.into_iter().collect())
}

/// Keeps `ds` off the ledger until `awaiting` approve it.
pub(crate) fn hold(state: &mut impl State, ctx: &TxCtx, ds: Dataset, awaiting: Vec<String>) -> Result<Event> {
    let id = ds.id.clone();
    let publication =
        Publication { dataset: ds, awaiting: awaiting.clone(), decisions: Vec::new(), requested_at_ms: ctx.now() };
    keys::put(state, keys::publication(&id), &publication);
    ctx.record_history(state, "publication", &id, &publication)?;
    Ok(Event::PublicationAwaiting { id, awaiting })
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
    ctx.record_history(state, "publication", id, &p)?;
    if !approve {
        state.delete(keys::publication(id));
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
            p.awaiting.push(org);
        }
    }
    if !p.awaiting.is_empty() {
        p.awaiting.sort();
        keys::put(state, keys::publication(id), &p);
        return Ok(Event::PublicationAwaiting { id: id.into(), awaiting: p.awaiting });
    }
    state.delete(keys::publication(id));
    let ds = Dataset { created_at_ms: ctx.now(), updated_at_ms: ctx.now(), ..p.dataset };
    publish(state, ctx, &ds)
}
