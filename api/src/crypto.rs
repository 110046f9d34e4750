//! Metadata encryption and key wrapping. Only standard constructions from
//! audited crates: AES-256-GCM, X25519 and HKDF-SHA256.
//!
//! - Private metadata is sealed with the dataset's data key; the AAD binds
//!   the ciphertext to the dataset id and version, so a ciphertext moved to
//!   another dataset or version fails to open.
//! - A data key is wrapped for a lessee with an ephemeral X25519 key: the
//!   shared secret with the lessee's static key goes through HKDF (salt =
//!   both public keys, info = dataset and lessee) to an AES-256-GCM key.
//!   Envelope = ephemeral public key (32) ‖ nonce (12) ‖ ciphertext (48).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use leasehold_chaincode::SealedMetadata;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};

pub type DataKey = [u8; 32];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct CryptoError(pub &'static str);

pub fn new_data_key() -> DataKey {
    let mut k = [0u8; 32];
    OsRng.fill_bytes(&mut k);
    k
}

fn metadata_aad(dataset_id: &str, version: u32) -> Vec<u8> {
    format!("leasehold/metadata/v1|{dataset_id}|{version}").into_bytes()
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

pub fn seal_metadata(key: &DataKey, dataset_id: &str, version: u32, plaintext: &[u8]) -> SealedMetadata {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let aad = metadata_aad(dataset_id, version);
    let ciphertext = cipher(key)
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
        .expect("AES-GCM encryption of a bounded message");
    SealedMetadata { nonce, ciphertext }
}

pub fn open_metadata(
    key: &DataKey,
    dataset_id: &str,
    version: u32,
    sealed: &SealedMetadata,
) -> Result<Vec<u8>, CryptoError> {
    let aad = metadata_aad(dataset_id, version);
    cipher(key)
        .decrypt(Nonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad: &aad })
        .map_err(|_| CryptoError("metadata does not decrypt with this key for this dataset version"))
}

fn wrap_info(dataset_id: &str, lessee: &str) -> Vec<u8> {
    format!("leasehold/wrap/v1|{dataset_id}|{lessee}").into_bytes()
}

fn kek(shared: &[u8; 32], eph: &[u8; 32], recipient: &[u8; 32], info: &[u8]) -> [u8; 32] {
    let salt = [eph.as_slice(), recipient.as_slice()].concat();
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&salt), shared).expand(info, &mut out).expect("32 bytes is a valid HKDF length");
    out
}

/// Wraps `key` so that only the holder of `recipient`'s X25519 secret can
/// unwrap it, for this dataset and lessee only.
pub fn wrap_key(key: &DataKey, recipient: &[u8; 32], dataset_id: &str, lessee: &str) -> Vec<u8> {
    let eph = EphemeralSecret::random_from_rng(OsRng);
    let eph_pub = PublicKey::from(&eph).to_bytes();
    let shared = eph.diffie_hellman(&PublicKey::from(*recipient));
    let info = wrap_info(dataset_id, lessee);
    let k = kek(shared.as_bytes(), &eph_pub, recipient, &info);
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let ct =
        cipher(&k).encrypt(Nonce::from_slice(&nonce), Payload { msg: key, aad: &info }).expect("AES-GCM encryption");
    [eph_pub.as_slice(), &nonce, &ct].concat()
}

pub fn unwrap_key(envelope: &[u8], secret: &[u8; 32], dataset_id: &str, lessee: &str) -> Result<DataKey, CryptoError> {
    if envelope.len() != 32 + 12 + 48 {
        return Err(CryptoError("key envelope has the wrong length"));
    }
    let eph_pub: [u8; 32] = envelope[..32].try_into().expect("sliced to 32");
    let secret = StaticSecret::from(*secret);
    let recipient = PublicKey::from(&secret).to_bytes();
    let shared = secret.diffie_hellman(&PublicKey::from(eph_pub));
    let info = wrap_info(dataset_id, lessee);
    let k = kek(shared.as_bytes(), &eph_pub, &recipient, &info);
    let key = cipher(&k)
        .decrypt(Nonce::from_slice(&envelope[32..44]), Payload { msg: &envelope[44..], aad: &info })
        .map_err(|_| CryptoError("key envelope does not open with this org's key"))?;
    key.try_into().map_err(|_| CryptoError("wrapped key is not 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_bound_to_dataset_and_version() {
        let k = new_data_key();
        let sealed = seal_metadata(&k, "iris", 1, b"s3://bucket/iris.csv");
        assert_eq!(open_metadata(&k, "iris", 1, &sealed).unwrap(), b"s3://bucket/iris.csv");
        assert!(open_metadata(&k, "iris", 2, &sealed).is_err());
        assert!(open_metadata(&k, "other", 1, &sealed).is_err());
        assert!(open_metadata(&new_data_key(), "iris", 1, &sealed).is_err());
    }

    #[test]
    fn a_wrapped_key_opens_only_for_its_recipient_dataset_and_lessee() {
        let k = new_data_key();
        let secret = [7u8; 32];
        let public = PublicKey::from(&StaticSecret::from(secret)).to_bytes();
        let env = wrap_key(&k, &public, "iris", "org2");
        assert_eq!(unwrap_key(&env, &secret, "iris", "org2").unwrap(), k);
        assert!(unwrap_key(&env, &[8u8; 32], "iris", "org2").is_err(), "another org's key opened it");
        assert!(unwrap_key(&env, &secret, "iris", "org3").is_err());
        assert!(unwrap_key(&env, &secret, "wine", "org2").is_err());
    }
}
