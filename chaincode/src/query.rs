//! Read-only queries the API needs, over any [`State`].

use std::collections::BTreeSet;

use crate::{keys, AccessRecord, Dataset, HistoryEntry, Lease, LeaseStatus, Result, Run, StateRead};

/// Upper bound on any one listing, whatever the caller asks for.
pub const MAX_PAGE: usize = 1000;

pub use crate::lineage::{lineage, ApprovalKind, ApprovalLink, LeaseLink, LineageNode, MAX_LINEAGE};

pub fn dataset(state: &(impl StateRead + ?Sized), id: &str) -> Result<Option<Dataset>> {
    keys::get(state, &keys::dataset(id))
}

pub fn dataset_version(state: &(impl StateRead + ?Sized), id: &str, version: u32) -> Result<Option<Dataset>> {
    keys::get(state, &keys::dataset_version(id, version))
}

/// Every version of a dataset, oldest first.
pub fn dataset_versions(state: &(impl StateRead + ?Sized), id: &str) -> Result<Vec<Dataset>> {
    let prefix = format!("dsv/{id}/").into_bytes();
    state.scan_prefix(&prefix, MAX_PAGE)?.iter().map(|(k, v)| decode(k, v)).collect()
}

pub fn lease(state: &(impl StateRead + ?Sized), id: &str) -> Result<Option<Lease>> {
    keys::get(state, &keys::lease(id))
}

pub fn run(state: &(impl StateRead + ?Sized), id: &str) -> Result<Option<Run>> {
    keys::get(state, &keys::run(id))
}

fn decode<T: serde::de::DeserializeOwned>(k: &[u8], v: &[u8]) -> Result<T> {
    crate::canonical::from_bytes(v, &String::from_utf8_lossy(k))
}

#[derive(Debug, Clone, Default)]
pub struct DatasetFilter {
    pub owner: Option<String>,
    pub tag: Option<String>,
    /// Case-insensitive substring of title, description or a tag.
    pub text: Option<String>,
    pub include_retired: bool,
    /// Resume after this id (the last id of the previous page).
    pub after: Option<String>,
    pub limit: usize,
}

/// A page of a listing, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next: Option<String>,
}

/// Entries a listing reads per request at most, whatever it filters out:
/// a filter that matches little stops there and says where to go on.
pub const MAX_SCAN: usize = 10_000;
/// Entries read from the state at a time (a dataset is up to ~150 KiB).
const SCAN_STEP: usize = 32;

/// Walks the ids under `prefix` after `after`, a bounded step at a time,
/// handing each key and value to `take` until it has `limit` items or
/// [`MAX_SCAN`] entries were read. `take` answers with the item, if any.
fn walk<T>(
    state: &(impl StateRead + ?Sized),
    prefix: &[u8],
    after: Option<&str>,
    limit: usize,
    mut take: impl FnMut(&[u8], &[u8]) -> Result<Option<T>>,
) -> Result<Page<T>> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut cursor = after.map(|a| [prefix, a.as_bytes()].concat()).unwrap_or_default();
    let (mut items, mut scanned) = (Vec::new(), 0usize);
    loop {
        let step = state.scan_after(prefix, &cursor, SCAN_STEP)?;
        if step.is_empty() {
            return Ok(Page { items, next: None });
        }
        for (k, v) in step {
            scanned += 1;
            cursor = k;
            if let Some(item) = take(&cursor, &v)? {
                items.push(item);
            }
            if items.len() == limit || scanned == MAX_SCAN {
                return Ok(Page { items, next: Some(keys::last_segment(&cursor)) });
            }
        }
    }
}

/// Datasets matching `f`, in id order, at most `f.limit` (capped at
/// [`MAX_PAGE`]), reading at most [`MAX_SCAN`] entries.
pub fn datasets(state: &(impl StateRead + ?Sized), f: &DatasetFilter) -> Result<Page<Dataset>> {
    let (prefix, indexed) = match (&f.owner, &f.tag) {
        (Some(o), _) => (keys::idx_owner(o, ""), true),
        (None, Some(t)) => (keys::idx_tag(t, ""), true),
        (None, None) => (b"ds/".to_vec(), false),
    };
    let text = f.text.as_ref().map(|t| t.to_lowercase());
    walk(state, &prefix, f.after.as_deref(), f.limit, |k, v| {
        let ds = match indexed {
            true => dataset(state, &keys::last_segment(k))?,
            false => Some(decode::<Dataset>(k, v)?),
        };
        let Some(ds) = ds else { return Ok(None) };
        let tag_ok = f.tag.as_ref().is_none_or(|t| ds.spec.tags.contains(t));
        let text_ok = text.as_ref().is_none_or(|t| {
            ds.spec.title.to_lowercase().contains(t)
                || ds.spec.description.to_lowercase().contains(t)
                || ds.spec.tags.iter().any(|g| g.to_lowercase().contains(t))
        });
        Ok((tag_ok && text_ok && (f.include_retired || !ds.retired)).then_some(ds))
    })
}

#[derive(Debug, Clone, Default)]
pub struct LeaseFilter {
    pub dataset: Option<String>,
    pub lessee: Option<String>,
    pub owner: Option<String>,
    pub status: Option<LeaseStatus>,
    pub after: Option<String>,
    pub limit: usize,
}

/// Leases matching `f`, with status judged at block time `now_ms`, in id
/// order, at most `f.limit`, reading at most [`MAX_SCAN`] entries.
pub fn leases(state: &(impl StateRead + ?Sized), f: &LeaseFilter, now_ms: i64) -> Result<Page<Lease>> {
    let (prefix, indexed) = match (&f.dataset, &f.lessee, &f.owner) {
        (Some(d), _, _) => (keys::idx_lease_by_dataset(d, ""), true),
        (None, Some(o), _) => (keys::idx_lease_by_lessee(o, ""), true),
        (None, None, Some(o)) => (keys::idx_lease_by_owner(o, ""), true),
        (None, None, None) => (b"lease/".to_vec(), false),
    };
    walk(state, &prefix, f.after.as_deref(), f.limit, |k, v| {
        let l = match indexed {
            true => lease(state, &keys::last_segment(k))?,
            false => Some(decode::<Lease>(k, v)?),
        };
        Ok(l.filter(|l| {
            f.lessee.as_ref().is_none_or(|o| &l.lessee == o)
                && f.owner.as_ref().is_none_or(|o| &l.owner == o)
                && f.status.is_none_or(|s| l.status_at(now_ms) == s)
        }))
    })
}

/// The lease through which `org` may use `dataset` at time `now_ms`, if any.
/// Read from the index of live leases, so it costs the dataset's live
/// leases (at most [`MAX_SCAN`] of them), never its ended ones.
pub fn active_lease(state: &(impl StateRead + ?Sized), org: &str, dataset: &str, now_ms: i64) -> Result<Option<Lease>> {
    let live = crate::lease::live(state, dataset, now_ms, MAX_SCAN)?;
    Ok(live.into_iter().find(|l| l.lessee == org && l.status_at(now_ms) == LeaseStatus::Active))
}

/// Every recorded version of `kind` (`dataset`, `lease`, `run` or `access`)
/// `id`, oldest first, each with the transaction that wrote it.
pub fn history(state: &(impl StateRead + ?Sized), kind: &str, id: &str) -> Result<Vec<HistoryEntry>> {
    state.scan_prefix(&keys::history_prefix(kind, id), MAX_PAGE)?.iter().map(|(k, v)| decode(k, v)).collect()
}

/// The audit trail of metadata reads under a lease, from its `from`th record
/// (0-based), at most `limit` (capped at [`MAX_PAGE`]); each with its number.
pub fn access_log(
    state: &(impl StateRead + ?Sized),
    lease_id: &str,
    from: u32,
    limit: usize,
) -> Result<Vec<(u32, AccessRecord)>> {
    let count: u32 = keys::get(state, &keys::history_count("access", lease_id))?.unwrap_or(0);
    let end = from.saturating_add(limit.min(MAX_PAGE) as u32).min(count);
    (from..end)
        .map(|seq| {
            let key = keys::history_entry("access", lease_id, seq);
            let missing = || crate::ChaincodeError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: "an access record the count promises is missing".into(),
            };
            let entry: HistoryEntry = keys::get(state, &key)?.ok_or_else(missing)?;
            let mut record: AccessRecord = crate::canonical::from_bytes(&entry.record, "access record")?;
            record.reads = keys::get(state, &keys::access_reads(lease_id, &record.tx_id))?.unwrap_or(1);
            Ok((seq, record))
        })
        .collect()
}

/// Whether a lessee's node may fetch the files of `dataset` in `version`
/// (a lease's): never when that version or the current one is
/// compute-only, so a later version read as files opens no earlier one.
/// The owner's node asks at every request.
pub fn files_served(state: &(impl StateRead + ?Sized), dataset: &str, version: Option<u32>) -> Result<()> {
    let current = crate::catalog::load_dataset(state, dataset)?;
    let leased: Option<Dataset> = match version {
        Some(v) => keys::get(state, &keys::dataset_version(dataset, v))?,
        None => None,
    };
    let compute = |d: &Dataset| d.spec.policy.access == crate::AccessMode::Compute;
    if compute(&current) || leased.as_ref().is_some_and(compute) {
        return Err(crate::ChaincodeError::ComputeOnly(current.id));
    }
    Ok(())
}

/// A derived dataset waiting for its inputs' owners to approve its publication.
pub fn publication(state: &(impl StateRead + ?Sized), id: &str) -> Result<Option<crate::Publication>> {
    keys::get(state, &keys::publication(id))
}

/// Pending publications that `org` published or must still decide: each
/// list read from its own index, so no org's requests hide another's.
pub fn publications(state: &(impl StateRead + ?Sized), org: &str) -> Result<Vec<crate::Publication>> {
    let mut ids = BTreeSet::new();
    for prefix in [keys::idx_publication_awaiting(org, ""), keys::idx_publication_by(org, "")] {
        ids.extend(state.scan_prefix(&prefix, MAX_PAGE)?.iter().map(|(k, _)| keys::last_segment(k)));
    }
    let mut out = Vec::new();
    for id in ids {
        out.extend(publication(state, &id)?);
    }
    Ok(out)
}
