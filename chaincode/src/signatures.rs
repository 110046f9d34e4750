//! Transaction signatures, checked under one rule whatever else is checked
//! with them: ZIP 215 (ed25519-zebra), whose batch verification agrees
//! with single verification on every signature, honest or crafted.
//!
//! That agreement is what lets a node skip a signature it checked already
//! (when it admitted the tx) while another node checks the same one inside
//! a batch of different txs: both reach the same verdict. With a rule that
//! lacks it (ed25519-dalek's batch equation has no cofactor), a signature
//! crafted with a small-order component passes or fails depending on its
//! batch's other members, and two honest nodes could judge a block apart.

use std::collections::HashMap;

use ed25519_zebra::{batch, Signature, VerificationKey, VerificationKeyBytes};
use rand_chacha::rand_core::SeedableRng;
use sha2::{Digest, Sha256};

use crate::{ChaincodeError, Genesis, SignedTx};

/// Signatures are batch-checked in chunks of this many: large enough to
/// amortise the batch, small enough that a chunk with a bad signature in it
/// costs a bounded number of single checks.
const SIG_BATCH: usize = 256;

/// Checks every signature of `txs`; see [`verify_signatures_except`].
pub fn verify_signatures(genesis: &Genesis, txs: &[SignedTx]) -> Vec<Result<(), ChaincodeError>> {
    verify_signatures_except(genesis, txs, &|_| false)
}

/// Checks the signature of every tx for which `checked` is false, against
/// its org's key in `genesis`, batch-verifying where it can: a chunk that
/// passes as a batch is valid as a whole; a chunk that fails is checked one
/// by one to find the culprits. A tx for which `checked` is true is valid:
/// the caller vouches that this node verified exactly that body, signature
/// and key under this rule (see [`signed_digest`]).
pub fn verify_signatures_except(
    genesis: &Genesis,
    txs: &[SignedTx],
    checked: &dyn Fn(&[u8; 32]) -> bool,
) -> Vec<Result<(), ChaincodeError>> {
    // Decompressing a public key costs about half a verification: each
    // org's key is decoded once per call, not once per tx.
    let keys: HashMap<&str, (VerificationKeyBytes, VerificationKey)> = genesis
        .orgs
        .iter()
        .filter_map(|o| Some((o.id.as_str(), (o.signing_key.into(), usable_key(&o.signing_key)?))))
        .collect();
    let parse = |t: &SignedTx| -> Result<(&VerificationKeyBytes, &VerificationKey, Signature), ChaincodeError> {
        let bad = || ChaincodeError::BadSignature { org: t.body.org.clone() };
        let (bytes, key) = match keys.get(t.body.org.as_str()) {
            Some((b, k)) => (b, k),
            None if genesis.org(&t.body.org).is_some() => return Err(bad()),
            None => return Err(ChaincodeError::UnknownOrg(t.body.org.clone())),
        };
        let sig: [u8; 64] = t.signature.as_slice().try_into().map_err(|_| bad())?;
        Ok((bytes, key, Signature::from_bytes(&sig)))
    };
    let mut out: Vec<Option<Result<(), ChaincodeError>>> = Vec::with_capacity(txs.len());
    let mut unchecked = Vec::new();
    for (i, t) in txs.iter().enumerate() {
        out.push(match parse(t) {
            Err(e) => Some(Err(e)),
            Ok((bytes, _, _)) if checked(&signed_digest(t, &(*bytes).into())) => Some(Ok(())),
            Ok(parsed) => {
                unchecked.push((i, parsed));
                None
            }
        });
    }
    for chunk in unchecked.chunks(SIG_BATCH) {
        let bodies: Vec<Vec<u8>> = chunk.iter().map(|(i, _)| txs[*i].body.canonical_bytes()).collect();
        let mut verifier = batch::Verifier::new();
        let mut seed = Sha256::new();
        for ((i, (bytes, _, sig)), body) in chunk.iter().zip(&bodies) {
            verifier.queue((**bytes, *sig, body.as_slice()));
            seed.update(signed_digest(&txs[*i], &(**bytes).into()));
        }
        // The batch's coefficients are drawn from a hash of every entry
        // (body, signature, key), as ed25519-dalek's transcript does: a
        // signer cannot know them before fixing its messages, which is what
        // makes a passing batch mean each entry is valid. (The verifier
        // hands them out in an order its hash map picks, so two nodes may
        // pair them differently; each pairing is as unpredictable, and
        // agrees with the single check but with probability 2^-128.)
        if verifier.verify(rand_chacha::ChaCha20Rng::from_seed(seed.finalize().into())).is_ok() {
            chunk.iter().for_each(|(i, _)| out[*i] = Some(Ok(())));
            continue;
        }
        for ((i, (_, key, sig)), body) in chunk.iter().zip(&bodies) {
            let bad = || ChaincodeError::BadSignature { org: txs[*i].body.org.clone() };
            out[*i] = Some(key.verify(sig, body).map_err(|_| bad()));
        }
    }
    out.into_iter().map(|r| r.expect("every tx has a verdict")).collect()
}

/// One tx's signature, under the same rule, decoding only its org's key.
pub(crate) fn verify_one(genesis: &Genesis, tx: &SignedTx) -> Result<(), ChaincodeError> {
    let org = genesis.org(&tx.body.org).ok_or_else(|| ChaincodeError::UnknownOrg(tx.body.org.clone()))?;
    let bad = || ChaincodeError::BadSignature { org: tx.body.org.clone() };
    let key = usable_key(&org.signing_key).ok_or_else(bad)?;
    let sig: [u8; 64] = tx.signature.as_slice().try_into().map_err(|_| bad())?;
    key.verify(&Signature::from_bytes(&sig), &tx.body.canonical_bytes()).map_err(|_| bad())
}

/// What a node remembers of a signature it verified: sha256 of the tx id,
/// the signature and the key it was checked under. A later key for the
/// same org (a rotation) gives another digest.
pub fn signed_digest(tx: &SignedTx, key: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tx.id().0);
    h.update(&tx.signature);
    h.update(key);
    h.finalize().into()
}

/// An org's key as signatures are checked against it, or `None` for one
/// no signature can stand for: not a point, or of small order, under which
/// ZIP 215 would take one signature for every message.
fn usable_key(bytes: &[u8; 32]) -> Option<VerificationKey> {
    let weak = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_or(true, |k| k.is_weak());
    (!weak).then(|| VerificationKey::try_from(*bytes).ok()).flatten()
}
