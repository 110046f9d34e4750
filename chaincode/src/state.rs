//! The key-value state the chaincode runs over, and the overlay that makes a
//! transaction all-or-nothing.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::Result;

/// Writes of a transaction or block, in key order: `None` deletes.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The read side of the key-value state: all that queries and block
/// application need from a backend.
pub trait StateRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Entries whose key starts with `prefix` and sorts after `after` (from
    /// the first when `after` is empty), in key order, at most `limit`: a
    /// page of a listing, read without touching what comes before it.
    fn scan_after(&self, prefix: &[u8], after: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Entries whose key starts with `prefix`, in key order, at most `limit`.
    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan_after(prefix, &[], limit)
    }
}

/// A key-value state the chaincode writes to.
pub trait State: StateRead {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, key: Vec<u8>);
}

/// An in-memory state for tests and tools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemState {
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemState {
    pub fn apply_writes(&mut self, writes: WriteSet) {
        for (k, v) in writes {
            match v {
                Some(v) => self.map.insert(k, v),
                None => self.map.remove(&k),
            };
        }
    }
}

/// The entries of `map` under `prefix` after `after`, in key order.
fn prefix_range<'a, V>(
    map: &'a BTreeMap<Vec<u8>, V>,
    prefix: &[u8],
    after: &[u8],
) -> impl Iterator<Item = (&'a Vec<u8>, &'a V)> {
    let prefix = prefix.to_vec();
    let start =
        if after > prefix.as_slice() { Bound::Excluded(after.to_vec()) } else { Bound::Included(prefix.clone()) };
    map.range::<Vec<u8>, _>((start, Bound::Unbounded)).take_while(move |(k, _)| k.starts_with(&prefix))
}

impl StateRead for MemState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.map.get(key).cloned())
    }

    fn scan_after(&self, prefix: &[u8], after: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(prefix_range(&self.map, prefix, after).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

impl State for MemState {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.map.insert(key, value);
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.map.remove(&key);
    }
}

/// Buffers writes over a base state. Reads see the buffered writes first.
/// Dropping the overlay discards them; that is how a rejected transaction
/// leaves no trace.
pub struct Overlay<'a, S: StateRead + ?Sized> {
    base: &'a S,
    writes: WriteSet,
}

impl<'a, S: StateRead + ?Sized> Overlay<'a, S> {
    pub fn new(base: &'a S) -> Self {
        Self { base, writes: WriteSet::new() }
    }

    pub fn into_writes(self) -> WriteSet {
        self.writes
    }

    /// Folds a nested overlay's writes into this one.
    pub fn absorb(&mut self, writes: WriteSet) {
        self.writes.extend(writes);
    }
}

impl<S: StateRead + ?Sized> StateRead for Overlay<'_, S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    fn scan_after(&self, prefix: &[u8], after: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        // Of the base, only as many entries as this overlay could delete
        // beyond `limit`: the first `limit` of the merged view are among
        // them and the overlay's own writes, never further into the base.
        let writes: Vec<_> = prefix_range(&self.writes, prefix, after).collect();
        let deletes = writes.iter().filter(|(_, v)| v.is_none()).count();
        let base = self.base.scan_after(prefix, after, limit.saturating_add(deletes))?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
        for (k, v) in writes {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }
}

impl<S: StateRead + ?Sized> State for Overlay<'_, S> {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_reads_its_own_writes_and_drops_on_discard() {
        let mut base = MemState::default();
        base.put(b"a/1".to_vec(), b"x".to_vec());
        base.put(b"a/2".to_vec(), b"y".to_vec());
        let mut o = Overlay::new(&base);
        o.put(b"a/3".to_vec(), b"z".to_vec());
        o.delete(b"a/1".to_vec());
        assert_eq!(o.get(b"a/1").unwrap(), None);
        let keys: Vec<_> = o.scan_prefix(b"a/", 10).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"a/2".to_vec(), b"a/3".to_vec()]);
        assert_eq!(o.scan_prefix(b"a/", 1).unwrap().len(), 1);
        let after: Vec<_> = o.scan_after(b"a/", b"a/2", 10).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(after, vec![b"a/3".to_vec()]);
        drop(o);
        assert_eq!(base.get(b"a/1").unwrap(), Some(b"x".to_vec()));
    }
}
