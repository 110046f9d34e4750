//! Applying one transaction: envelope checks, then the payload's rules.

use crate::ctx::{BlockCtx, Event, TxCtx};
use crate::time::rfc3339;
use crate::{dataset, keys, lease, run, ChaincodeError, Overlay, Payload, Result, SignedTx, State, StateRead, TxId};

/// Applies one signed transaction to `state`, all or nothing.
///
/// The signature is checked here; [`crate::apply_block`] batch-verifies a
/// block's signatures first and then applies with [`apply_verified`].
pub fn apply<S: State>(state: &mut S, tx: &SignedTx, ctx: &BlockCtx) -> Result<Vec<Event>> {
    tx.verify(ctx.genesis)?;
    let mut overlay = Overlay::new(&*state);
    let events = apply_verified(&mut overlay, tx, tx.id(), ctx)?;
    for (k, v) in overlay.into_writes() {
        match v {
            Some(v) => state.put(k, v),
            None => state.delete(k),
        }
    }
    Ok(events)
}

/// Applies a transaction whose signature is already known to be good. On
/// error the caller must discard `state`'s writes (it is an overlay).
pub(crate) fn apply_verified(state: &mut impl State, tx: &SignedTx, tx_id: TxId, ctx: &BlockCtx) -> Result<Vec<Event>> {
    check_envelope(state, tx, &tx_id, ctx)?;
    let tcx = TxCtx { block: ctx, org: &tx.body.org, tx_id };
    let event = match &tx.body.payload {
        Payload::RegisterDataset { id, spec, derived_from_run } => {
            dataset::register(state, &tcx, id, spec, derived_from_run)?
        }
        Payload::UpdateDataset { id, spec } => dataset::update(state, &tcx, id, spec)?,
        Payload::RetireDataset { id } => dataset::retire(state, &tcx, id)?,
        Payload::RequestLease { lease_id, dataset_id, duration_ms, purpose } => {
            lease::request(state, &tcx, lease_id, dataset_id, *duration_ms, purpose)?
        }
        Payload::GrantLease { lease_id, duration_ms } => lease::grant(state, &tcx, lease_id, *duration_ms)?,
        Payload::DenyLease { lease_id, reason } => lease::deny(state, &tcx, lease_id, reason)?,
        Payload::ReleaseLease { lease_id } => lease::release(state, &tcx, lease_id)?,
        Payload::RevokeLease { lease_id, reason } => lease::revoke(state, &tcx, lease_id, reason)?,
        Payload::ExtendLease { lease_id, extra_ms } => lease::extend(state, &tcx, lease_id, *extra_ms)?,
        Payload::StartRun { run_id, workflow_hash, lease_ids, inputs } => {
            run::start(state, &tcx, run_id, workflow_hash, lease_ids, inputs)?
        }
        Payload::FinishRun { run_id, status, output_hash } => run::finish(state, &tcx, run_id, *status, output_hash)?,
        Payload::RecordAccess { lease_id, reader } => lease::record_access(state, &tcx, lease_id, reader, 1)?,
        Payload::RecordReads { lease_id, reader, reads } => {
            lease::record_access(state, &tcx, lease_id, reader, *reads)?
        }
        Payload::ApproveMembership { voters } => crate::membership::approve(state, &tcx, voters)?,
        Payload::RequestComputeRun { run_id, lease_id, submission_hash } => {
            crate::compute::request(state, &tcx, run_id, lease_id, submission_hash)?
        }
        Payload::StartComputeRun { run_id, workflow_hash, lease_id, submission_hash } => {
            crate::compute::start(state, &tcx, run_id, (workflow_hash, submission_hash), lease_id)?
        }
        Payload::DecideRelease { run_id, approve, output_bytes, output_hash, reason } => {
            let outputs = (*output_bytes, *output_hash);
            crate::compute::decide_release(state, &tcx, run_id, *approve, outputs, reason)?
        }
        Payload::DecidePublication { dataset_id, approve, reason } => {
            crate::publication::decide(state, &tcx, dataset_id, *approve, reason)?
        }
        Payload::ProposeOrgChange { change_id, change } => crate::roster::propose(state, &tcx, change_id, change)?,
        Payload::ApproveOrgChange { change_id } => crate::roster::approve(state, &tcx, change_id)?,
        Payload::WithdrawOrgChange { change_id } => crate::roster::withdraw(state, &tcx, change_id)?,
        Payload::DenyOrgChange { change_id } => crate::roster::deny(state, &tcx, change_id)?,
    };
    keys::put(state, keys::tx(&tx_id), &ctx.height);
    let nonce_key = keys::nonce(&tx.body.org);
    let max: u64 = keys::get(state, &nonce_key)?.unwrap_or(0);
    keys::put(state, nonce_key, &max.max(tx.body.nonce));
    Ok(vec![event])
}

fn check_envelope(state: &(impl StateRead + ?Sized), tx: &SignedTx, tx_id: &TxId, ctx: &BlockCtx) -> Result<()> {
    let body = &tx.body;
    let g = ctx.genesis;
    if body.network_id != g.network_id {
        return Err(ChaincodeError::WrongNetwork { expected: g.network_id.clone(), got: body.network_id.clone() });
    }
    if g.org(&body.org).is_none() {
        return Err(ChaincodeError::UnknownOrg(body.org.clone()));
    }
    if body.created_at_ms.abs_diff(ctx.time_ms) > g.policy.tx_time_window_ms {
        return Err(ChaincodeError::OutsideTimeWindow {
            created_at: rfc3339(body.created_at_ms),
            block_time: rfc3339(ctx.time_ms),
        });
    }
    if state.get(&keys::tx(tx_id))?.is_some() {
        return Err(ChaincodeError::Replay(tx_id.to_hex()));
    }
    let max: u64 = keys::get(state, &keys::nonce(&body.org))?.unwrap_or(0);
    let floor = max.saturating_sub(g.policy.nonce_window);
    if max >= g.policy.nonce_window && body.nonce <= floor {
        return Err(ChaincodeError::StaleNonce { org: body.org.clone(), nonce: body.nonce, floor });
    }
    Ok(())
}
