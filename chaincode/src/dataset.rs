//! The dataset rules: register (holding a derived dataset for its inputs' owners
//! where their policy asks), update and retire.

use crate::catalog::{index_dataset, load_dataset, publish, store_dataset};
use crate::ctx::{Event, TxCtx};
use crate::{keys, run, ChaincodeError, Dataset, DatasetSpec, Result, State, StateRead};

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

pub(crate) fn register(
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

fn owned_live_dataset(
    state: &(impl StateRead + ?Sized),
    ctx: &TxCtx,
    id: &str,
    action: &'static str,
) -> Result<Dataset> {
    let ds = load_dataset(state, id)?;
    if ds.owner != ctx.org {
        return Err(ChaincodeError::NotOwner { owner: ds.owner, org: ctx.org.into(), action });
    }
    if ds.retired {
        return Err(ChaincodeError::Retired(id.into()));
    }
    Ok(ds)
}

pub(crate) fn update(state: &mut impl State, ctx: &TxCtx, id: &str, spec: &DatasetSpec) -> Result<Event> {
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

pub(crate) fn retire(state: &mut impl State, ctx: &TxCtx, id: &str) -> Result<Event> {
    let ds = owned_live_dataset(state, ctx, id, "retire the dataset")?;
    let ds = Dataset { retired: true, updated_at_ms: ctx.now(), ..ds };
    keys::put(state, keys::dataset(id), &ds);
    ctx.record_history(state, "dataset", id, &ds)?;
    Ok(Event::DatasetRetired { id: id.into() })
}
