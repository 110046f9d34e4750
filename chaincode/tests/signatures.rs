//! Every node reaches the same verdict on a signature, however the txs
//! around it are batched and whichever of them it verified on admission:
//! the rule is ZIP 215, whose batch and single checks agree. Shown with a
//! signature crafted, by the holder of the key, to carry a small-order
//! component, which ed25519-dalek's batch check (no cofactor) accepts or
//! refuses depending on the rest of its batch.

mod common;

use common::*;
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::scalar::Scalar;
use leasehold_chaincode::*;
use sha2::{Digest, Sha512};

/// org1's signature on `body` with the secret scalar `a`, its R shifted by
/// a point of order 8: valid under the cofactored equation, not under the
/// cofactorless one.
fn crafted(body: TxBody, a: Scalar, nonce: u8) -> SignedTx {
    let public = (a * ED25519_BASEPOINT_POINT).compress();
    let r = Scalar::from_bytes_mod_order([nonce; 32]);
    let big_r = (r * ED25519_BASEPOINT_POINT + EIGHT_TORSION[1]).compress();
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(big_r.as_bytes())
            .chain_update(public.as_bytes())
            .chain_update(body.canonical_bytes())
            .finalize()
            .into(),
    );
    let s = r + k * a;
    let signature = [big_r.to_bytes(), s.to_bytes()].concat();
    SignedTx { body, signature }
}

#[test]
fn a_crafted_signature_has_one_verdict_in_every_batch_and_from_the_cache() {
    let mut net = Net::new();
    let a = Scalar::from_bytes_mod_order([7; 32]);
    net.genesis.orgs[0].signing_key = (a * ED25519_BASEPOINT_POINT).compress().to_bytes();
    let genesis = net.genesis.clone();
    let odd: Vec<SignedTx> =
        (0..8).map(|n| crafted(net.body(0, T0, request(&format!("L{n}"), "d", 1)), a, n + 1)).collect();
    let honest: Vec<SignedTx> = (0..5).map(|n| net.tx(1, T0, request(&format!("H{n}"), "d", 1))).collect();
    let mut forged = net.tx(2, T0, request("F", "d", 1));
    forged.signature[0] ^= 1;
    // Each crafted one alone, with honest ones, and with a forged one
    // (a batch that fails, so each is then checked alone): always valid.
    for t in &odd {
        assert!(t.verify(&genesis).is_ok());
        for batch in [vec![t.clone()], [vec![t.clone()], honest.clone()].concat(), vec![t.clone(), forged.clone()]] {
            let verdicts = verify_signatures(&genesis, &batch);
            assert!(verdicts[0].is_ok(), "{:?} in a batch of {}", verdicts[0], batch.len());
        }
    }
    let all = [odd.clone(), honest.clone(), vec![forged.clone()]].concat();
    let verdicts = verify_signatures(&genesis, &all);
    let valid: Vec<bool> = verdicts.iter().map(Result::is_ok).collect();
    assert_eq!(valid.iter().filter(|v| !**v).count(), 1, "only the forged one fails: {verdicts:?}");
    // A node that verified some on admission reaches the same verdicts.
    let remembered: Vec<[u8; 32]> =
        all[..6].iter().map(|t| signed_digest(t, &genesis.org(&t.body.org).unwrap().signing_key)).collect();
    let again = verify_signatures_except(&genesis, &all, &|d| remembered.contains(d));
    assert_eq!(again.iter().map(Result::is_ok).collect::<Vec<_>>(), valid);
}

#[test]
fn a_remembered_digest_counts_only_for_the_key_it_was_checked_under() {
    let mut net = Net::new();
    let tx = net.tx(1, T0, request("L", "d", 1));
    let mut forged = tx.clone();
    forged.signature[0] ^= 1;
    let genesis = net.genesis.clone();
    // A digest for the forged tx under the right key was never remembered;
    // one under another key does not vouch for it either.
    let other_key = signed_digest(&forged, &[9; 32]);
    let verdicts = verify_signatures_except(&genesis, &[forged.clone(), tx.clone()], &|d| *d == other_key);
    assert!(verdicts[0].is_err() && verdicts[1].is_ok(), "{verdicts:?}");
}

#[test]
fn a_small_order_key_signs_nothing() {
    // Under ZIP 215 the identity key would take (R = identity, s = 0) for
    // every message: such a key is refused, as if the org had none.
    let mut net = Net::new();
    let identity = curve25519_dalek::edwards::EdwardsPoint::default().compress().to_bytes();
    net.genesis.orgs[0].signing_key = identity;
    let body = net.body(0, T0, request("L", "d", 1));
    let forged = SignedTx { body, signature: [identity, [0; 32]].concat() };
    assert!(matches!(forged.verify(&net.genesis), Err(ChaincodeError::BadSignature { .. })));
    assert!(verify_signatures(&net.genesis, &[forged])[0].is_err());
}
