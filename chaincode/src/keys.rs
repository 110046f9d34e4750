//! The state's key layout, and typed access to records.
//!
//! Keys are UTF-8 paths. Ids are validated (see [`valid_id`]) so that no id
//! contains `/` and no key of one kind can collide with another's. Keys
//! under `idx/` are secondary indexes with empty values.

use serde::{de::DeserializeOwned, Serialize};

use crate::{canonical, ChaincodeError, Result, State, StateRead, TxId};

pub const MAX_ID_LEN: usize = 128;

/// Ids are 1..=128 characters of `[A-Za-z0-9._-]`, not starting with `.`.
pub fn valid_id(field: &'static str, id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > MAX_ID_LEN || id.starts_with('.') || !id.chars().all(ok_char) {
        return Err(ChaincodeError::invalid(
            field,
            format!("{id:?} must be 1 to {MAX_ID_LEN} characters of letters, digits, '.', '_' or '-', not starting with '.'"),
        ));
    }
    Ok(())
}

pub fn dataset(id: &str) -> Vec<u8> {
    format!("ds/{id}").into_bytes()
}
pub fn dataset_version(id: &str, version: u32) -> Vec<u8> {
    format!("dsv/{id}/{version:010}").into_bytes()
}
/// A derived dataset waiting for its inputs' owners (`Publication`).
pub fn publication(id: &str) -> Vec<u8> {
    format!("pub/{id}").into_bytes()
}
/// A lessee's request that a compute dataset's owner run its workflow.
pub fn compute_request(run_id: &str) -> Vec<u8> {
    format!("creq/{run_id}").into_bytes()
}
/// The pending publication of a run's outputs: one at a time.
pub fn publication_of_run(run_id: &str) -> Vec<u8> {
    format!("pubrun/{run_id}").into_bytes()
}
pub fn idx_publication_awaiting(org: &str, id: &str) -> Vec<u8> {
    format!("idx/pubawait/{org}/{id}").into_bytes()
}
pub fn idx_publication_by(org: &str, id: &str) -> Vec<u8> {
    format!("idx/pubby/{org}/{id}").into_bytes()
}
pub fn lease(id: &str) -> Vec<u8> {
    format!("lease/{id}").into_bytes()
}
pub fn run(id: &str) -> Vec<u8> {
    format!("run/{id}").into_bytes()
}
pub fn tx(id: &TxId) -> Vec<u8> {
    format!("tx/{id}").into_bytes()
}
pub fn nonce(org: &str) -> Vec<u8> {
    format!("nonce/{org}").into_bytes()
}
pub fn history_prefix(kind: &str, id: &str) -> Vec<u8> {
    format!("hist/{kind}/{id}/").into_bytes()
}
pub fn history_entry(kind: &str, id: &str, seq: u32) -> Vec<u8> {
    format!("hist/{kind}/{id}/{seq:010}").into_bytes()
}
pub fn history_count(kind: &str, id: &str) -> Vec<u8> {
    format!("histn/{kind}/{id}").into_bytes()
}
/// The reads the access record that `tx` wrote under `lease` counts, when
/// more than one (a tx writes one record).
pub fn access_reads(lease: &str, tx: &crate::TxId) -> Vec<u8> {
    format!("accr/{lease}/{}", tx.to_hex()).into_bytes()
}
pub fn idx_owner(org: &str, ds: &str) -> Vec<u8> {
    format!("idx/owner/{org}/{ds}").into_bytes()
}
pub fn idx_tag(tag: &str, ds: &str) -> Vec<u8> {
    format!("idx/tag/{tag}/{ds}").into_bytes()
}
pub fn idx_lease_by_dataset(ds: &str, lease: &str) -> Vec<u8> {
    format!("idx/lds/{ds}/{lease}").into_bytes()
}
pub fn idx_lease_by_lessee(org: &str, lease: &str) -> Vec<u8> {
    format!("idx/lessee/{org}/{lease}").into_bytes()
}
pub fn idx_lease_by_owner(org: &str, lease: &str) -> Vec<u8> {
    format!("idx/lowner/{org}/{lease}").into_bytes()
}

/// A granted lease of dataset `ds` until `expires_at_ms`, by expiry: the
/// leases that may still be active are those after the present, and no
/// check walks the ended ones. Removed when a lease ends early.
pub fn idx_lease_live(ds: &str, expires_at_ms: i64, lease: &str) -> Vec<u8> {
    format!("idx/llive/{ds}/{:020}/{lease}", expires_at_ms.max(0)).into_bytes()
}
pub fn idx_lease_live_prefix(ds: &str) -> Vec<u8> {
    format!("idx/llive/{ds}/").into_bytes()
}
/// Where the leases of `ds` that are unexpired at `now_ms` begin.
pub fn idx_lease_live_from(ds: &str, now_ms: i64) -> Vec<u8> {
    // Every key of a later expiry sorts after this one (an id is never empty).
    format!("idx/llive/{ds}/{:020}/", now_ms.max(0)).into_bytes()
}

/// The last path segment of an index key: the id it points at.
pub fn last_segment(key: &[u8]) -> String {
    let s = String::from_utf8_lossy(key);
    s.rsplit('/').next().unwrap_or_default().to_string()
}

pub fn get<T: DeserializeOwned>(state: &(impl StateRead + ?Sized), key: &[u8]) -> Result<Option<T>> {
    match state.get(key)? {
        Some(bytes) => canonical::from_bytes(&bytes, &String::from_utf8_lossy(key)).map(Some),
        None => Ok(None),
    }
}

pub fn put<T: Serialize>(state: &mut (impl State + ?Sized), key: Vec<u8>, value: &T) {
    state.put(key, canonical::to_bytes(value));
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_that_could_escape_their_key_are_rejected() {
        for bad in ["", "a/b", "..", ".hidden", "a b", "é", &"x".repeat(129)] {
            assert!(super::valid_id("id", bad).is_err(), "{bad:?} accepted");
        }
        for good in ["iris", "org1-ds.v2", "A_b-9"] {
            super::valid_id("id", good).unwrap();
        }
    }
}
