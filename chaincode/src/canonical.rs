//! Canonical bytes: the one encoding that is signed, hashed and stored.
//!
//! It is bincode 1 with fixed-width little-endian integers, `u64` length
//! prefixes and no trailing bytes allowed. Structs encode their fields in
//! declaration order and enums a `u32` variant index, so the field order of
//! the types in this crate *is* the wire format: reorder a field and the
//! golden-bytes test below fails. The encoding has no maps with unspecified
//! order and no floats, so equal values always give equal bytes.

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

use crate::ChaincodeError;

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian().reject_trailing_bytes()
}

/// Encodes a value canonically.
pub fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own types into a Vec cannot fail: no maps of unknown
    // length, no custom serialisers that error.
    options().serialize(value).expect("canonical encoding of a ledger type")
}

/// Decodes canonical bytes, naming `what` in the error.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ChaincodeError> {
    options().deserialize(bytes).map_err(|e| ChaincodeError::Corrupt { key: what.to_string(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use crate::{DatasetRef, Payload, TxBody};

    #[test]
    fn golden_bytes_pin_the_format() {
        let body = TxBody {
            network_id: "n".into(),
            org: "o".into(),
            nonce: 7,
            created_at_ms: 1,
            payload: Payload::ReleaseLease { lease_id: "L".into() },
        };
        let bytes = super::to_bytes(&body);
        let expected: Vec<u8> = [
            &[1, 0, 0, 0, 0, 0, 0, 0, b'n'][..],
            &[1, 0, 0, 0, 0, 0, 0, 0, b'o'],
            &[7, 0, 0, 0, 0, 0, 0, 0],
            &[1, 0, 0, 0, 0, 0, 0, 0],
            &[6, 0, 0, 0], // variant index of ReleaseLease
            &[1, 0, 0, 0, 0, 0, 0, 0, b'L'],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    /// Chains written before access records counted their reads still
    /// decode: `RecordAccess` keeps its index, `RecordReads` comes last, and
    /// a stored record's bytes have no count.
    #[test]
    fn audit_records_keep_the_bytes_of_older_chains() {
        let old = Payload::RecordAccess { lease_id: "L".into(), reader: "u".into() };
        let new = Payload::RecordReads { lease_id: "L".into(), reader: "u".into(), reads: 2 };
        assert_eq!(super::to_bytes(&old)[..4], [11, 0, 0, 0]);
        assert_eq!(super::to_bytes(&new)[..4], [21, 0, 0, 0]);
        let record = crate::AccessRecord {
            lease_id: "L".into(),
            dataset_id: "d".into(),
            version: 1,
            org: "o".into(),
            reader: "u".into(),
            time_ms: 9,
            tx_id: crate::TxId([3; 32]),
            reads: 5,
        };
        let expected: Vec<u8> = [
            &[1, 0, 0, 0, 0, 0, 0, 0, b'L'][..],
            &[1, 0, 0, 0, 0, 0, 0, 0, b'd'],
            &[1, 0, 0, 0],
            &[1, 0, 0, 0, 0, 0, 0, 0, b'o'],
            &[1, 0, 0, 0, 0, 0, 0, 0, b'u'],
            &[9, 0, 0, 0, 0, 0, 0, 0],
            &[3; 32],
        ]
        .concat();
        assert_eq!(super::to_bytes(&record), expected);
        let decoded: crate::AccessRecord = super::from_bytes(&expected, "record").unwrap();
        assert_eq!(decoded.reads, 1, "a stored record alone stands for one read");
    }

    #[test]
    fn round_trips_and_rejects_trailing_bytes() {
        let r = DatasetRef { id: "d".into(), version: 3 };
        let mut bytes = super::to_bytes(&r);
        assert_eq!(super::from_bytes::<DatasetRef>(&bytes, "r").unwrap(), r);
        bytes.push(0);
        assert!(super::from_bytes::<DatasetRef>(&bytes, "r").is_err());
    }
}
