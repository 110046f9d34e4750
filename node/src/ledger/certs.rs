//! Block certificates as the store keeps them: each org's signature on a
//! block header, in the `meta` column family under
//! `cert/{height:020}/{org}/{hash}`, outside the block's write batch: they
//! are evidence about blocks, not part of them. Every distinct hash an org
//! signs at a height is kept (two at most): a second is proof that it
//! signed two blocks at one height. `consensus::certify` signs and trades them.

use ed25519_dalek::{Signer, Verifier};
use leasehold_chaincode::{Genesis, Hash32};
use rocksdb::{Direction, IteratorMode};
use serde::{Deserialize, Serialize};

use super::store::{decode, encode, Store, CF_META};
use super::Ledger;
use crate::block::head_after;
use crate::error::Result;

/// One org's signature on one block's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {
    pub org: String,
    pub height: u64,
    pub hash: Hash32,
    pub state_root: Hash32,
    pub signature: Vec<u8>,
}

fn signed_bytes(network_id: &str, height: u64, hash: &Hash32, state_root: &Hash32) -> Vec<u8> {
    encode(&("leasehold/block-certificate/v1", network_id, height, hash, state_root))
}

impl Cert {
    /// `org`'s signature, with `key`, on a block header.
    pub fn signed(
        network_id: &str,
        org: &str,
        key: &ed25519_dalek::SigningKey,
        height: u64,
        hash: Hash32,
        state_root: Hash32,
    ) -> Self {
        let signature = key.sign(&signed_bytes(network_id, height, &hash, &state_root)).to_bytes().to_vec();
        Self { org: org.into(), height, hash, state_root, signature }
    }

    /// Where it is stored in `meta`: `cert/{height:020}/{org}/{hash}`.
    pub fn key(&self) -> Vec<u8> {
        let mut key = org_prefix(self.height, &self.org);
        key.extend(hex::encode(self.hash).into_bytes());
        key
    }

    /// Whether the signature is `org`'s over these fields.
    pub fn verify(&self, genesis: &Genesis) -> bool {
        let Some(org) = genesis.org(&self.org) else { return false };
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&org.signing_key) else { return false };
        let Ok(sig) = <[u8; 64]>::try_from(self.signature.as_slice()) else { return false };
        let bytes = signed_bytes(&genesis.network_id, self.height, &self.hash, &self.state_root);
        key.verify(&bytes, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
    }
}

/// Distinct hashes kept per org and height: its real one and one proof.
const MAX_SIGNED_PER_HEIGHT: usize = 2;

/// Where every certificate on blocks at `height` is stored.
pub(crate) fn height_prefix(height: u64) -> Vec<u8> {
    format!("cert/{height:020}/").into_bytes()
}

fn org_prefix(height: u64, org: &str) -> Vec<u8> {
    let mut prefix = height_prefix(height);
    prefix.extend(format!("{org}/").into_bytes());
    prefix
}

/// Keeps `cert` beside what its org signed before at that height, never
/// replacing it: an org cannot erase evidence by signing again.
pub(crate) fn store_cert(store: &Store, cert: &Cert) -> Result<()> {
    let prefix = org_prefix(cert.height, &cert.org);
    let key = cert.key();
    let held = store
        .db()
        .iterator_cf(store.cf(CF_META), IteratorMode::From(&prefix, Direction::Forward))
        .take_while(|i| i.as_ref().is_ok_and(|(k, _)| k.starts_with(&prefix)))
        .count();
    if held < MAX_SIGNED_PER_HEIGHT && store.db().get_pinned_cf(store.cf(CF_META), &key)?.is_none() {
        store.db().put_cf(store.cf(CF_META), key, encode(cert))?;
    }
    Ok(())
}

/// A block's certificate as this node holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Signatures on this node's block at that height.
    pub signatures: Vec<Cert>,
    /// Whether a majority of the orgs active at its height signed it.
    pub certified: bool,
    /// Signatures on a different block at that height: proof of divergence.
    pub conflicting: Vec<Cert>,
}

/// The certificate of the block at `height`, as `ledger` holds it.
pub fn certificate(ledger: &Ledger, height: u64) -> Result<Certificate> {
    let store = &ledger.store;
    let prefix = height_prefix(height);
    let mine = store.block(height)?.map(|b| head_after(&b));
    let (mut signatures, mut conflicting) = (Vec::new(), Vec::new());
    for item in store.db().iterator_cf(store.cf(CF_META), IteratorMode::From(&prefix, Direction::Forward)) {
        let (k, v) = item?;
        if !k.starts_with(&prefix) {
            break;
        }
        let c: Cert = decode(&v, "block certificate")?;
        match &mine {
            Some(m) if m.hash == c.hash && m.state_root.0 == c.state_root => signatures.push(c),
            _ => conflicting.push(c),
        }
    }
    // The majority is of the orgs active at that height.
    // Only a key its org had at that height counts (one kept from
    // before this node applied a rotation may be an old key's).
    let roster = ledger.roster_at(height);
    signatures.retain(|c| c.verify(&roster.orgs));
    let certified = signatures.len() > roster.orgs.orgs.len() / 2;
    Ok(Certificate { signatures, certified, conflicting })
}
