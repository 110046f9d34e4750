//! Compute-to-data (seed `000_*`): the algorithm goes to the data. A
//! `compute` dataset's files never leave its owner's node. Its lessee asks
//! the owner's node to run a workflow there, with a signed request on the
//! ledger; the owner starts the run that request names, as the lessee's,
//! runs it, and decides, under the dataset's release policy, whether its
//! outputs may leave.

use crate::catalog::load_dataset;
use crate::ctx::{Event, TxCtx};
use crate::run::{load, store};
use crate::{
    keys, lease, ChaincodeError, ComputeRunRequest, DatasetRef, Hash32, Lease, LeaseStatus, Release, Result, Run,
    RunStatus, State, StateRead,
};

/// How long, in block time, the owner has to start a requested run: the
/// lessee's node gives up on its submission well before.
pub const REQUEST_TTL_MS: i64 = 60_000;

/// The lessee of `lease_id` asks the owner to run a workflow on it.
pub(crate) fn request(
    state: &mut impl State,
    ctx: &TxCtx,
    run_id: &str,
    lease_id: &str,
    submission_hash: &Hash32,
) -> Result<Event> {
    keys::valid_id("run_id", run_id)?;
    if state.get(&keys::run(run_id))?.is_some() || state.get(&keys::compute_request(run_id))?.is_some() {
        return Err(ChaincodeError::AlreadyExists { kind: "run", id: run_id.into() });
    }
    let lease = lease::load(state, lease_id)?;
    if lease.lessee != ctx.org {
        return Err(ChaincodeError::NotLessee { lease: lease.id, lessee: lease.lessee, org: ctx.org.into() });
    }
    runnable(state, ctx, &lease)?;
    let req = ComputeRunRequest {
        run_id: run_id.into(),
        lessee: ctx.org.into(),
        lease_id: lease.id,
        submission_hash: *submission_hash,
        requested_at_ms: ctx.now(),
    };
    keys::put(state, keys::compute_request(run_id), &req);
    Ok(Event::ComputeRunRequested { run_id: run_id.into() })
}

/// The owner starts the run its lessee requested, on the leased version of
/// its compute dataset.
pub(crate) fn start(
    state: &mut impl State,
    ctx: &TxCtx,
    run_id: &str,
    (workflow_hash, submission_hash): (&Hash32, &Hash32),
    lease_id: &str,
) -> Result<Event> {
    keys::valid_id("run_id", run_id)?;
    if state.get(&keys::run(run_id))?.is_some() {
        return Err(ChaincodeError::AlreadyExists { kind: "run", id: run_id.into() });
    }
    let req: ComputeRunRequest = keys::get(state, &keys::compute_request(run_id))?
        .ok_or_else(|| ChaincodeError::NotFound { kind: "compute run request", id: run_id.into() })?;
    let lease = lease::load(state, lease_id)?;
    lease::require_owner(&lease, ctx, "run a workflow on its dataset")?;
    if req.lease_id != lease.id {
        return Err(ChaincodeError::invalid(
            "lease_id",
            format!("{} asked for run {run_id:?} under lease {:?}", req.lessee, req.lease_id),
        ));
    }
    if ctx.now() > req.requested_at_ms.saturating_add(REQUEST_TTL_MS) {
        return Err(ChaincodeError::invalid(
            "run_id",
            format!("{}'s request for run {run_id:?} lapsed {REQUEST_TTL_MS} ms after it was made", req.lessee),
        ));
    }
    if req.submission_hash != *submission_hash {
        return Err(ChaincodeError::invalid(
            "submission_hash",
            format!("the workflow differs from the one {} asked to run as {run_id:?}", req.lessee),
        ));
    }
    let input = runnable(state, ctx, &lease)?;
    let run = Run {
        id: run_id.into(),
        org: lease.lessee,
        workflow_hash: *workflow_hash,
        lease_ids: vec![lease.id],
        inputs: vec![input],
        status: RunStatus::Running,
        output_hash: None,
        started_at_ms: ctx.now(),
        finished_at_ms: None,
        executor: Some(ctx.org.into()),
        release: None,
    };
    store(state, ctx, &run)?;
    Ok(Event::RunStarted { run_id: run_id.into() })
}

/// The dataset version an active `lease` on a live compute dataset reads.
fn runnable(state: &(impl StateRead + ?Sized), ctx: &TxCtx, lease: &Lease) -> Result<DatasetRef> {
    if lease.status_at(ctx.now()) != LeaseStatus::Active {
        return Err(lease::wrong_state(lease, ctx.now(), "run on", "active"));
    }
    let ds = load_dataset(state, &lease.dataset_id)?;
    if ds.retired {
        return Err(ChaincodeError::Retired(ds.id));
    }
    if crate::query::files_served(state, &ds.id, lease.dataset_version).is_ok() {
        return Err(ChaincodeError::invalid(
            "lease_id",
            format!("dataset {:?} is read as files: its lessee runs workflows on its own node", ds.id),
        ));
    }
    let input = DatasetRef { id: ds.id, version: lease.dataset_version.unwrap_or(ds.version) };
    if state.get(&keys::dataset_version(&input.id, input.version))?.is_none() {
        return Err(ChaincodeError::NotFound {
            kind: "dataset version",
            id: format!("{}@{}", input.id, input.version),
        });
    }
    Ok(input)
}

/// The executor releases a succeeded compute run's outputs, or refuses to.
/// A release never exceeds the dataset's `max_output_bytes`, and is decided
/// once; a refusal records nothing of the outputs.
pub(crate) fn decide_release(
    state: &mut impl State,
    ctx: &TxCtx,
    run_id: &str,
    approve: bool,
    (output_bytes, output_hash): (u64, Option<Hash32>),
    reason: &str,
) -> Result<Event> {
    let mut run = load(state, run_id)?;
    let Some(executor) = run.executor.clone() else {
        return Err(ChaincodeError::invalid(
            "run_id",
            format!("run {run_id:?} ran at its own org: nothing to release"),
        ));
    };
    if executor != ctx.org {
        return Err(ChaincodeError::NotOwner {
            owner: executor,
            org: ctx.org.into(),
            action: "release the run's outputs",
        });
    }
    if run.status != RunStatus::Succeeded {
        let status = run.status.as_str().into();
        return Err(ChaincodeError::RunState { run: run.id, status, action: "release", needs: "succeeded" });
    }
    if run.release.is_some() {
        return Err(ChaincodeError::AlreadyExists { kind: "release decision for run", id: run.id });
    }
    if reason.len() > 1000 {
        return Err(ChaincodeError::invalid("reason", "at most 1000 bytes"));
    }
    if approve != output_hash.is_some() {
        return Err(ChaincodeError::invalid("output_hash", "a release names the outputs' hash; a refusal names none"));
    }
    // What was refused stays at the owner, its size included: a size on
    // the ledger would carry the data out a few bits a run.
    if !approve && output_bytes != 0 {
        return Err(ChaincodeError::invalid("output_bytes", "a refusal records no size: 0"));
    }
    for input in &run.inputs {
        // The stricter of the version the run read and the current one.
        let current = load_dataset(state, &input.id)?.spec.policy.release.max_output_bytes;
        let read: Option<crate::Dataset> = keys::get(state, &keys::dataset_version(&input.id, input.version))?;
        let cap = read.map_or(current, |d| d.spec.policy.release.max_output_bytes.min(current));
        if approve && output_bytes > cap {
            return Err(ChaincodeError::invalid(
                "output_bytes",
                format!("{output_bytes} bytes of outputs exceed the {cap} bytes dataset {:?} releases", input.id),
            ));
        }
    }
    run.release = Some(Release { approved: approve, reason: reason.into(), output_bytes, at_ms: ctx.now() });
    run.output_hash = output_hash;
    store(state, ctx, &run)?;
    Ok(Event::ReleaseDecided { run_id: run_id.into(), approved: approve })
}
