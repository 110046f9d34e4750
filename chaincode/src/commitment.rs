//! A commitment to the whole current state, updated per write.
//!
//! A block's state root must let a node check a snapshot it is handed: the
//! state in it, entry by entry, must hash to the root a majority of orgs
//! signed. Hashing the whole state at every block would cost O(state) per
//! block, so the commitment is a lattice hash (LtHash16, 1,024 16-bit lanes
//! over BLAKE3, as specified by Bellare–Micciancio and Facebook's "Securing
//! update propagation with homomorphic hashing"): the sum of one hash per
//! `(key, value)` entry. A write subtracts the old entry's hash and adds the
//! new one, so a block costs O(its writes), and the order of entries does
//! not matter. The root is the BLAKE3 checksum of the 2 KiB lattice.
//!
//! LtHash is a multiset hash: adding one element 2^16 times cancels out.
//! State keys are unique, and whoever sums a stream of entries (a snapshot)
//! must refuse a repeated key; see `node::snapshot`.

use solana_lattice_hash::lt_hash::LtHash;

use crate::{Result, StateRead, WriteSet};

/// A block's state root: the checksum of the state commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct StateRoot(pub crate::Hash32);

impl StateRoot {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The lattice hash of every `(key, value)` entry of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commitment(LtHash);

/// Bytes in a serialized commitment.
pub const COMMITMENT_BYTES: usize = LtHash::NUM_ELEMENTS * 2;

fn element(key: &[u8], value: &[u8]) -> LtHash {
    let mut h = blake3::Hasher::new();
    h.update(b"leasehold/state-entry/v1");
    // The key's length keeps `(ab, c)` and `(a, bc)` apart.
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(value);
    LtHash::with(&h)
}

impl Commitment {
    /// The commitment to the empty state, the state at genesis.
    pub fn empty() -> Self {
        Self(LtHash::identity())
    }

    pub fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.0.mix_in(&element(key, value));
    }

    pub fn remove(&mut self, key: &[u8], value: &[u8]) {
        self.0.mix_out(&element(key, value));
    }

    /// Applies `writes` made over `base`: each key's old value (read from
    /// `base`) leaves the commitment and its new one joins it.
    pub fn apply<S: StateRead + ?Sized>(&mut self, base: &S, writes: &WriteSet) -> Result<()> {
        for (key, new) in writes {
            if let Some(old) = base.get(key)? {
                self.remove(key, &old);
            }
            if let Some(new) = new {
                self.insert(key, new);
            }
        }
        Ok(())
    }

    pub fn root(&self) -> StateRoot {
        StateRoot(self.0.checksum().0)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0 .0.iter().flat_map(|lane| lane.to_le_bytes()).collect()
    }

    /// `None` unless `bytes` is exactly [`COMMITMENT_BYTES`] long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != COMMITMENT_BYTES {
            return None;
        }
        let mut lanes = LtHash::identity();
        for (lane, pair) in lanes.0.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = u16::from_le_bytes([pair[0], pair[1]]);
        }
        Some(Self(lanes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemState, State};

    fn of(state: &MemState) -> Commitment {
        let mut c = Commitment::empty();
        for (k, v) in &state.map {
            c.insert(k, v);
        }
        c
    }

    #[test]
    fn incremental_updates_equal_hashing_the_whole_state() {
        let mut state = MemState::default();
        let mut c = Commitment::empty();
        let rounds: [&[(&str, Option<&str>)]; 3] = [
            &[("a", Some("1")), ("b", Some("2")), ("c", Some("3"))],
            &[("a", None), ("b", Some("20")), ("d", Some("4"))],
            &[("b", Some("20")), ("c", None), ("a", Some("1"))],
        ];
        for writes in rounds {
            let ws: WriteSet =
                writes.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))).collect();
            c.apply(&state, &ws).unwrap();
            state.apply_writes(ws);
            assert_eq!(c, of(&state));
            assert_eq!(c.root(), of(&state).root());
        }
        assert_ne!(c.root(), Commitment::empty().root());
    }

    #[test]
    fn any_changed_entry_changes_the_root_and_bytes_round_trip() {
        let mut state = MemState::default();
        state.put(b"lease/1".to_vec(), b"expires=100".to_vec());
        state.put(b"dataset/1".to_vec(), b"owner=org1".to_vec());
        let honest = of(&state);
        let mut forged = state.clone();
        forged.put(b"lease/1".to_vec(), b"expires=9999".to_vec());
        assert_ne!(of(&forged).root(), honest.root());
        // Moving bytes between key and value is a different entry.
        let mut split = MemState::default();
        split.put(b"lease/1e".to_vec(), b"xpires=100".to_vec());
        split.put(b"dataset/1".to_vec(), b"owner=org1".to_vec());
        assert_ne!(of(&split).root(), honest.root());
        assert_eq!(Commitment::from_bytes(&honest.to_bytes()), Some(honest.clone()));
        assert_eq!(Commitment::from_bytes(&honest.to_bytes()[1..]), None);
    }
}
