//! Private metadata encryption. Only standard constructions from audited
//! crates: HKDF-SHA256 and AES-256-GCM.
//!
//! - A dataset version's data key is HKDF-SHA256 over the owner's X25519
//!   secret, with the dataset id and version as `info`. One key per version,
//!   derived when needed and never stored or sent: nothing to lose, nothing
//!   orphaned by a rejected registration, nothing a retry can overwrite, and
//!   a key for one version opens no other.
//! - Metadata is sealed with AES-256-GCM under that key and a random nonce;
//!   the AAD binds the ciphertext to the dataset id and version, so a
//!   ciphertext moved to another dataset or version fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use leasehold_chaincode::SealedMetadata;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;

const KEY_SALT: &[u8] = b"leasehold/data-key/v1";

/// The data key of `dataset_id` at `version`, from the owner's secret.
pub fn data_key(owner_secret: &[u8; 32], dataset_id: &str, version: u32) -> [u8; 32] {
    let info = [dataset_id.as_bytes(), &[0], &version.to_be_bytes()].concat();
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(KEY_SALT), owner_secret).expand(&info, &mut key).expect("32 bytes is a valid HKDF length");
    key
}

fn aad(dataset_id: &str, version: u32) -> Vec<u8> {
    format!("leasehold/metadata/v1|{dataset_id}|{version}").into_bytes()
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

pub fn seal(key: &[u8; 32], dataset_id: &str, version: u32, plaintext: &[u8]) -> SealedMetadata {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher(key)
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad(dataset_id, version) })
        .expect("AES-GCM encryption of a bounded message");
    SealedMetadata { nonce, ciphertext }
}

pub fn open(key: &[u8; 32], dataset_id: &str, version: u32, sealed: &SealedMetadata) -> Option<Vec<u8>> {
    cipher(key)
        .decrypt(Nonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad: &aad(dataset_id, version) })
        .ok()
}

/// The key that seals this org's job secrets at rest on its own node
/// (`secrets.rs`): derived from its X25519 secret, with its own salt, so it
/// is no dataset's key.
pub fn secrets_key(org_secret: &[u8; 32]) -> [u8; 32] {
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(b"leasehold/secrets-key/v1"), org_secret)
        .expand(b"job secrets at rest", &mut key)
        .expect("32 bytes is a valid HKDF length");
    key
}

fn secret_aad(name: &str) -> Vec<u8> {
    format!("leasehold/secret/v1|{name}").into_bytes()
}

/// A secret's value sealed under `key`, bound to its name: the nonce, then
/// the ciphertext.
pub fn seal_secret(key: &[u8; 32], name: &str, value: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher(key)
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: value, aad: &secret_aad(name) })
        .expect("AES-GCM encryption of a bounded message");
    [nonce.as_slice(), &ciphertext].concat()
}

/// `None` unless `sealed` is `name`'s value sealed under `key`.
pub fn open_secret(key: &[u8; 32], name: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    let (nonce, ciphertext) = sealed.split_at_checked(12)?;
    cipher(key).decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &secret_aad(name) }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_per_dataset_version_and_only_from_the_owners_secret() {
        let owner = [7u8; 32];
        let sealed = seal(&data_key(&owner, "iris", 1), "iris", 1, b"{\"location\":\"s3://x\"}");
        assert_eq!(open(&data_key(&owner, "iris", 1), "iris", 1, &sealed).unwrap(), b"{\"location\":\"s3://x\"}");
        assert!(open(&data_key(&owner, "iris", 2), "iris", 1, &sealed).is_none(), "another version's key");
        assert!(open(&data_key(&owner, "iris2", 1), "iris", 1, &sealed).is_none(), "another dataset's key");
        assert!(open(&data_key(&[8u8; 32], "iris", 1), "iris", 1, &sealed).is_none(), "another org's secret");
        assert!(open(&data_key(&owner, "iris", 1), "iris", 2, &sealed).is_none(), "moved to another version");
        assert_eq!(data_key(&owner, "iris", 1), data_key(&owner, "iris", 1), "derived, so never lost");
        assert_ne!(data_key(&owner, "a", 10), data_key(&owner, "a\u{0}", 10), "ids and versions do not run together");
    }
}
