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

    #[test]
    fn round_trips_and_rejects_trailing_bytes() {
        let r = DatasetRef { id: "d".into(), version: 3 };
        let mut bytes = super::to_bytes(&r);
        assert_eq!(super::from_bytes::<DatasetRef>(&bytes, "r").unwrap(), r);
        bytes.push(0);
        assert!(super::from_bytes::<DatasetRef>(&bytes, "r").is_err());
    }
}
