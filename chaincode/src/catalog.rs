//! The dataset records on the ledger: loading one, and storing, indexing
//! and publishing it. Below every rule that touches a dataset (`dataset`,
//! `lease`, `run`, `publication`), so none of them needs another for this.

use crate::ctx::{Event, TxCtx};
use crate::{keys, ChaincodeError, Dataset, Result, State, StateRead};

pub(crate) fn load_dataset(state: &(impl StateRead + ?Sized), id: &str) -> Result<Dataset> {
    keys::get(state, &keys::dataset(id))?.ok_or_else(|| ChaincodeError::NotFound { kind: "dataset", id: id.into() })
}

pub(crate) fn index_dataset(state: &mut impl State, ds: &Dataset, present: bool) {
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

pub(crate) fn store_dataset(state: &mut impl State, ctx: &TxCtx, ds: &Dataset) -> Result<()> {
    keys::put(state, keys::dataset(&ds.id), ds);
    keys::put(state, keys::dataset_version(&ds.id, ds.version), ds);
    ctx.record_history(state, "dataset", &ds.id, ds)
}

/// Puts a new dataset on the ledger.
pub(crate) fn publish(state: &mut impl State, ctx: &TxCtx, ds: &Dataset) -> Result<Event> {
    index_dataset(state, ds, true);
    store_dataset(state, ctx, ds)?;
    Ok(Event::DatasetRegistered { id: ds.id.clone(), version: 1 })
}
