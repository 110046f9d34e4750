//! Workflow runs and the provenance of what they publish.

use crate::catalog::load_dataset;
use crate::ctx::{Event, TxCtx};
use crate::{
    keys, lease, ChaincodeError, Dataset, DatasetRef, DerivedPolicy, Hash32, Provenance, Result, Run, RunStatus, State,
    StateRead,
};

const MAX_RUN_LEASES: usize = 64;
const MAX_RUN_INPUTS: usize = 256;

pub(crate) fn load(state: &(impl StateRead + ?Sized), id: &str) -> Result<Run> {
    keys::get(state, &keys::run(id))?.ok_or_else(|| ChaincodeError::NotFound { kind: "run", id: id.into() })
}

pub(crate) fn store(state: &mut impl State, ctx: &TxCtx, run: &Run) -> Result<()> {
    keys::put(state, keys::run(&run.id), run);
    ctx.record_history(state, "run", &run.id, run)
}

pub(crate) fn start(
    state: &mut impl State,
    ctx: &TxCtx,
    run_id: &str,
    workflow_hash: &Hash32,
    lease_ids: &[String],
    inputs: &[DatasetRef],
) -> Result<Event> {
    keys::valid_id("run_id", run_id)?;
    if state.get(&keys::run(run_id))?.is_some() {
        return Err(ChaincodeError::AlreadyExists { kind: "run", id: run_id.into() });
    }
    // A requested compute run's id is its requester's, for its owner to
    // start: no other run may take it first.
    if let Some(req) = keys::get::<crate::ComputeRunRequest>(state, &keys::compute_request(run_id))? {
        let why =
            format!("{} asked for run {run_id:?} at its dataset's owner: the id is bound to that request", req.lessee);
        return Err(ChaincodeError::invalid("run_id", why));
    }
    if lease_ids.len() > MAX_RUN_LEASES || inputs.len() > MAX_RUN_INPUTS {
        return Err(ChaincodeError::invalid(
            "lease_ids",
            format!("at most {MAX_RUN_LEASES} leases and {MAX_RUN_INPUTS} inputs"),
        ));
    }
    let leases = lease_ids.iter().map(|id| lease::require_active_for(state, ctx, id)).collect::<Result<Vec<_>>>()?;
    // A compute dataset's runs execute at its owner (`compute::start`).
    for l in &leases {
        crate::query::files_served(state, &l.dataset_id, l.dataset_version)?;
    }
    for input in inputs {
        let ds = load_dataset(state, &input.id)?;
        if state.get(&keys::dataset_version(&input.id, input.version))?.is_none() {
            return Err(ChaincodeError::NotFound {
                kind: "dataset version",
                id: format!("{}@{}", input.id, input.version),
            });
        }
        if ds.owner != ctx.org && !leases.iter().any(|l| l.dataset_id == input.id) {
            return Err(ChaincodeError::invalid(
                "inputs",
                format!(
                    "dataset {:?} is neither owned by {:?} nor covered by one of the run's leases",
                    input.id, ctx.org
                ),
            ));
        }
    }
    let run = Run {
        id: run_id.into(),
        org: ctx.org.into(),
        workflow_hash: *workflow_hash,
        lease_ids: lease_ids.to_vec(),
        inputs: inputs.to_vec(),
        status: RunStatus::Running,
        output_hash: None,
        started_at_ms: ctx.now(),
        finished_at_ms: None,
        executor: None,
        release: None,
    };
    store(state, ctx, &run)?;
    Ok(Event::RunStarted { run_id: run_id.into() })
}

pub(crate) fn finish(
    state: &mut impl State,
    ctx: &TxCtx,
    run_id: &str,
    status: RunStatus,
    output_hash: &Option<Hash32>,
) -> Result<Event> {
    let mut run = load(state, run_id)?;
    // A compute run is finished by the node that ran it.
    let runner = run.executor.clone().unwrap_or_else(|| run.org.clone());
    if runner != ctx.org {
        return Err(ChaincodeError::NotOwner { owner: runner, org: ctx.org.into(), action: "finish the run" });
    }
    if run.status != RunStatus::Running {
        return Err(ChaincodeError::RunState {
            run: run.id,
            status: run.status.as_str().into(),
            action: "finish",
            needs: "running",
        });
    }
    if status == RunStatus::Running {
        return Err(ChaincodeError::invalid("status", "a finished run cannot be 'running'"));
    }
    // Unsalted, the hash of a small output would give it away: a compute
    // run's is recorded with its release (`compute::decide_release`).
    if run.executor.is_some() && output_hash.is_some() {
        return Err(ChaincodeError::invalid(
            "output_hash",
            "a compute run's output hash is recorded when it is released",
        ));
    }
    run.status = status;
    run.output_hash = *output_hash;
    run.finished_at_ms = Some(ctx.now());
    store(state, ctx, &run)?;
    Ok(Event::RunFinished { run_id: run_id.into() })
}

/// The provenance of a dataset `publisher` publishes from `run_id`: the
/// run must be the publisher's, have succeeded (and, run at an owner, been
/// released), and have produced exactly `content_hash`; no input may deny it.
pub(crate) fn provenance_for(
    state: &(impl StateRead + ?Sized),
    publisher: &str,
    run_id: &str,
    content_hash: &Hash32,
) -> Result<Provenance> {
    let run = load(state, run_id)?;
    if run.org != publisher {
        return Err(ChaincodeError::Provenance(format!("run {run_id:?} belongs to {:?}, not {publisher:?}", run.org)));
    }
    if run.status != RunStatus::Succeeded {
        return Err(ChaincodeError::Provenance(format!(
            "run {run_id:?} is {}; only a succeeded run can be published",
            run.status.as_str()
        )));
    }
    if let Some(executor) = &run.executor {
        if !run.release.as_ref().is_some_and(|r| r.approved) {
            return Err(ChaincodeError::Provenance(format!(
                "run {run_id:?} ran at {executor:?}, which has not released its outputs"
            )));
        }
    }
    if run.output_hash.as_ref() != Some(content_hash) {
        return Err(ChaincodeError::Provenance(format!(
            "content hash does not match the output hash recorded by run {run_id:?}"
        )));
    }
    for input in &run.inputs {
        if input_policies(state, publisher, input)?.contains(&DerivedPolicy::Deny) {
            let owner = load_dataset(state, &input.id)?.owner;
            return Err(ChaincodeError::Provenance(format!(
                "dataset {:?}'s owner {owner:?} does not allow publishing what is derived from it",
                input.id
            )));
        }
    }
    Ok(Provenance { run_id: run.id, workflow_hash: run.workflow_hash, inputs: run.inputs })
}

/// The derived-data policies of `input` that bind `publisher`: those of the
/// version the run read and of the current one, so that neither an old
/// version nor a new one loosens it. None bind the dataset's own owner.
pub(crate) fn input_policies(
    state: &(impl StateRead + ?Sized),
    publisher: &str,
    input: &DatasetRef,
) -> Result<Vec<DerivedPolicy>> {
    let current: Dataset = load_dataset(state, &input.id)?;
    if current.owner == publisher {
        return Ok(Vec::new());
    }
    let read: Option<Dataset> = keys::get(state, &keys::dataset_version(&input.id, input.version))?;
    Ok(std::iter::once(current).chain(read).map(|d| d.spec.policy.derived).collect())
}
