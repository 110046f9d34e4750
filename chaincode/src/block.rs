//! Applying an ordered batch of transactions: the unit a node commits.

use std::collections::HashMap;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::apply::apply_verified;
use crate::ctx::{BlockCtx, Event};
use crate::{ChaincodeError, Commitment, Genesis, Overlay, Result, SignedTx, StateRead, TxId, WriteSet};

/// One transaction's verdict, recorded in the block like Fabric's validity bitmap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    pub tx_id: TxId,
    pub result: Result<Vec<Event>, ChaincodeError>,
}

impl TxOutcome {
    pub fn verdict(&self) -> Verdict {
        match &self.result {
            Ok(_) => Verdict::Valid,
            Err(e) => Verdict::Invalid(e.to_string()),
        }
    }
}

/// A transaction's verdict as stored in a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Valid,
    /// The chaincode's reason, identical on every node.
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    pub outcomes: Vec<TxOutcome>,
    /// Everything the valid transactions wrote, to commit atomically.
    pub writes: WriteSet,
    /// The state commitment after the block; its root goes in the header.
    pub commitment: Commitment,
}

/// Signatures are checked in fixed-size chunks so that every node, given the
/// same block, makes exactly the same batch calls.
const SIG_BATCH: usize = 256;

/// Checks every signature of `txs`, batch-verifying where it can: a chunk
/// that passes as a batch is valid as a whole; a chunk that fails is checked
/// one by one to find the culprits.
pub fn verify_signatures(genesis: &Genesis, txs: &[SignedTx]) -> Vec<Result<(), ChaincodeError>> {
    // Decompressing a public key costs about as much as half a verification,
    // so each org's key is decoded once per call, not once per tx.
    let keys: HashMap<&str, VerifyingKey> = genesis
        .orgs
        .iter()
        .filter_map(|o| Some((o.id.as_str(), VerifyingKey::from_bytes(&o.signing_key).ok()?)))
        .collect();
    let parse = |t: &SignedTx| -> Result<(VerifyingKey, Signature)> {
        let bad = || ChaincodeError::BadSignature { org: t.body.org.clone() };
        let key = match keys.get(t.body.org.as_str()) {
            Some(k) => *k,
            None if genesis.org(&t.body.org).is_some() => return Err(bad()),
            None => return Err(ChaincodeError::UnknownOrg(t.body.org.clone())),
        };
        let sig: [u8; 64] = t.signature.as_slice().try_into().map_err(|_| bad())?;
        Ok((key, Signature::from_bytes(&sig)))
    };
    let mut out = Vec::with_capacity(txs.len());
    for chunk in txs.chunks(SIG_BATCH) {
        let parsed: Vec<Result<(VerifyingKey, Signature)>> = chunk.iter().map(parse).collect();
        let bodies: Vec<Vec<u8>> = chunk.iter().map(|t| t.body.canonical_bytes()).collect();
        if parsed.iter().all(|p| p.is_ok()) {
            let msgs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
            let (keys, sigs): (Vec<_>, Vec<_>) = parsed.iter().map(|p| *p.as_ref().expect("checked")).unzip();
            if ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
                out.extend(chunk.iter().map(|_| Ok(())));
                continue;
            }
        }
        for ((t, p), body) in chunk.iter().zip(parsed).zip(&bodies) {
            out.push(p.and_then(|(key, sig)| {
                key.verify(body, &sig).map_err(|_| ChaincodeError::BadSignature { org: t.body.org.clone() })
            }));
        }
    }
    out
}

/// Applies `txs` in order over `base`. Invalid transactions are recorded with
/// their reason and leave no writes; an `Err` means the state backend failed
/// and the block must not be committed.
pub fn apply_block<S: StateRead + ?Sized>(
    base: &S,
    ctx: &BlockCtx,
    txs: &[SignedTx],
    prev: &Commitment,
) -> Result<BlockOutcome> {
    let sigs = verify_signatures(ctx.genesis, txs);
    let mut block = Overlay::new(base);
    let mut outcomes = Vec::with_capacity(txs.len());
    // Orgs that left earlier in this block: the roster is the block's
    // start's, but a departed org's later tx must not pass.
    let mut departed: Vec<String> = Vec::new();
    for (tx, sig) in txs.iter().zip(sigs) {
        let tx_id = tx.id();
        let signed = sig.is_ok();
        let result = sig.and_then(|()| {
            if departed.contains(&tx.body.org) {
                return Err(ChaincodeError::UnknownOrg(tx.body.org.clone()));
            }
            let mut overlay = Overlay::new(&block);
            let events = apply_verified(&mut overlay, tx, tx_id, ctx)?;
            Ok((events, overlay.into_writes()))
        });
        let result = match result {
            Ok((events, writes)) => {
                block.absorb(writes);
                if events.iter().any(|e| matches!(e, Event::OrgChange { in_effect: true, .. })) {
                    departed = crate::roster::departed(&block, ctx.genesis)?;
                }
                Ok(events)
            }
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => {
                // A correctly signed tx is spent even when invalid, so that
                // it cannot be replayed once the state would accept it.
                if signed && !matches!(e, ChaincodeError::Replay(_)) {
                    crate::keys::put(&mut block, crate::keys::tx(&tx_id), &ctx.height);
                }
                Err(e)
            }
        };
        outcomes.push(TxOutcome { tx_id, result });
    }
    let writes = block.into_writes();
    let mut commitment = prev.clone();
    commitment.apply(base, &writes)?;
    Ok(BlockOutcome { outcomes, writes, commitment })
}
