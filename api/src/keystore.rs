//! The owner's data keys, one per dataset, encrypted at rest under a key
//! derived from the org's X25519 secret. File mode 0600.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::crypto::DataKey;
use crate::ApiError;

#[derive(Serialize, Deserialize, Clone)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

pub struct Keystore {
    path: PathBuf,
    cipher: Aes256Gcm,
    keys: Mutex<BTreeMap<String, Sealed>>,
}

fn err(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("keystore: {e}"))
}

impl Keystore {
    pub fn open(data_dir: &Path, org_secret: &[u8; 32]) -> Result<Self, ApiError> {
        let mut k = [0u8; 32];
        Hkdf::<Sha256>::new(None, org_secret).expand(b"leasehold/keystore/v1", &mut k).expect("HKDF length");
        let path = data_dir.join("keystore.json");
        let keys = match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(err)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(err(e)),
        };
        Ok(Self { path, cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k)), keys: Mutex::new(keys) })
    }

    pub fn get(&self, dataset_id: &str) -> Result<Option<DataKey>, ApiError> {
        let keys = self.keys.lock().expect("keystore lock");
        let Some(s) = keys.get(dataset_id) else { return Ok(None) };
        let nonce = hex::decode(&s.nonce).map_err(err)?;
        let ct = hex::decode(&s.ciphertext).map_err(err)?;
        let key = self
            .cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad: dataset_id.as_bytes() })
            .map_err(|_| err("a stored key does not decrypt"))?;
        Ok(Some(key.try_into().map_err(|_| err("stored key has the wrong length"))?))
    }

    pub fn put(&self, dataset_id: &str, key: &DataKey) -> Result<(), ApiError> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: key, aad: dataset_id.as_bytes() })
            .expect("AES-GCM encryption");
        let mut keys = self.keys.lock().expect("keystore lock");
        keys.insert(dataset_id.into(), Sealed { nonce: hex::encode(nonce), ciphertext: hex::encode(ct) });
        let tmp = self.path.with_extension("json.tmp");
        let mut f =
            fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(err)?;
        f.write_all(&serde_json::to_vec(&*keys).expect("keystore serialises")).map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::rename(&tmp, &self.path).map_err(err)
    }
}
