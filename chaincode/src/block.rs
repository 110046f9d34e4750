//! Applying an ordered batch of transactions: the unit a node commits.

use serde::{Deserialize, Serialize};

use crate::apply::apply_verified;
use crate::ctx::{BlockCtx, Event};
use crate::{ChaincodeError, Commitment, Overlay, Result, SignedTx, StateRead, TxId, WriteSet};

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

/// Applies `txs` in order over `base`. Invalid transactions are recorded with
/// their reason and leave no writes; an `Err` means the state backend failed
/// and the block must not be committed.
pub fn apply_block<S: StateRead + ?Sized>(
    base: &S,
    ctx: &BlockCtx,
    txs: &[SignedTx],
    prev: &Commitment,
) -> Result<BlockOutcome> {
    apply_block_except(base, ctx, txs, prev, &|_| false)
}

/// As [`apply_block`], taking as valid the signatures `checked` vouches
/// for (see [`crate::verify_signatures_except`]): the same verdicts, with
/// the signatures this node checked on admission not checked again.
pub fn apply_block_except<S: StateRead + ?Sized>(
    base: &S,
    ctx: &BlockCtx,
    txs: &[SignedTx],
    prev: &Commitment,
    checked: &dyn Fn(&[u8; 32]) -> bool,
) -> Result<BlockOutcome> {
    let sigs = crate::signatures::verify_signatures_except(ctx.genesis, txs, checked);
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
