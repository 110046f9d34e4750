//! The owner's side of compute-to-data: runs a lessee's workflow on this
//! node's own compute data, decides under the dataset's policy what of it
//! may leave, and answers the lessee's node about it. Every answer is
//! checked against the ledger at that moment: the asking org must be the
//! run's, and outputs go only once released there.

use std::sync::Arc;

use leasehold_chaincode::{query, DatasetRef, Lease, LogRelease, Payload, ReleasePolicy, Run, SignedTx};

use super::inputs::{Inputs, VolumeError};
use super::wire::{Refusal, RemoteStatus};
use super::{Mode, Runner};
use super::{Port, Result, RunError};
use crate::live::{JobRecord, LiveRun, RunRecord, Status, Stop, Stream};
use crate::{Workflow, WorkflowError};
use leasehold_files::{read_chunk, Manifest, CHUNK_BYTES};

/// Log text sent per status request, at most.
const MAX_LOG_BYTES_PER_REPLY: usize = 1 << 20;

impl Runner {
    /// Runs `yaml` for `asker`, a lessee of this node's compute data, under
    /// `request`, its signed `RequestComputeRun`: committed here only once
    /// the workflow is accepted, just before the run's start.
    pub async fn execute_for(
        self: &Arc<Self>,
        asker: &str,
        run_id: &str,
        yaml: &str,
        bundle: Option<Vec<u8>>,
        by: &str,
        request: &SignedTx,
    ) -> Result<RunRecord> {
        leasehold_chaincode::keys::valid_id("run_id", run_id)?;
        // The lessee's code: never without the sandbox.
        if !matches!(self.usable_sandbox()?, crate::sandbox::Sandbox::Jail(_)) {
            let why = format!("{} runs no other org's code without its sandbox", self.node.org());
            return Err(RunError::Unavailable(why));
        }
        // The id is the lessee's choice: it must name nothing here or on the
        // ledger, and its directory is claimed atomically, so no submission
        // reaches another run's.
        let taken = || RunError::Conflict(format!("run id {run_id} is taken"));
        if self.runs.lock().expect("runs lock").contains_key(run_id) || query::run(self.node.state(), run_id)?.is_some()
        {
            return Err(taken());
        }
        check_request(self.node.as_ref(), asker, run_id, request)?;
        std::fs::create_dir(self.dirs.run(run_id)).map_err(|_| taken())?;
        let mode = Mode::For { asker, run_id, request };
        let submitted = match bundle {
            Some(tar) => self.submit_tar(tar, by, mode).await,
            None => self.submit_with(yaml, None, by, mode).await,
        };
        if submitted.is_err() {
            // Claimed above by this call alone.
            let _ = std::fs::remove_dir_all(self.dirs.run(run_id));
        }
        submitted
    }

    /// Every volume must name one active lease `asker` holds on a compute
    /// dataset of this org's; it is mounted from this node's own store.
    pub(super) fn resolve_for(&self, asker: &str, wf: &Workflow) -> std::result::Result<Inputs, WorkflowError> {
        let (store, me, now) = (self.node.state(), self.node.org(), self.node.ledger_now_ms());
        let mut inputs = Inputs::default();
        let mut the_lease: Option<Lease> = None;
        wf.check_leases(|id| {
            let lease = match query::lease(store, id)? {
                Some(l) => l,
                None => query::active_lease(store, asker, id, now)?
                    .ok_or_else(|| VolumeError::NoComputeLease { asker: asker.into(), id: id.into() })?,
            };
            if lease.lessee != asker || lease.owner != me {
                return Err(VolumeError::NotTheirs { lease: lease.id, asker: asker.into(), me: me.into() });
            }
            if let Some(why) = lease.inactive_reason(now) {
                return Err(VolumeError::Inactive(why));
            }
            if query::files_served(store, &lease.dataset_id, lease.dataset_version).is_ok() {
                return Err(VolumeError::ReadAsFiles(lease.dataset_id));
            }
            if the_lease.as_ref().is_some_and(|l| l.id != lease.id) {
                return Err(VolumeError::OneLease);
            }
            let version = lease.dataset_version.ok_or(VolumeError::NoVersion)?;
            let ds =
                query::dataset_version(store, &lease.dataset_id, version)?.ok_or(VolumeError::LeasedVersionMissing)?;
            let key = format!("own:{}", ds.id);
            inputs.own.insert(key.clone(), (ds.id.clone(), ds.spec.content_hash));
            inputs.source_of_volume.insert(id.into(), key);
            inputs.versions.insert(DatasetRef { id: ds.id.clone(), version }, ds.spec.content_hash);
            if ds.spec.policy.require_tests && !inputs.requiring_tests.contains(&ds.id) {
                inputs.requiring_tests.push(ds.id);
            }
            the_lease = Some(lease);
            Ok::<(), VolumeError>(())
        })?;
        let lease =
            the_lease.ok_or_else(|| WorkflowError::new(None, "jobs", "a compute run mounts its leased dataset"))?;
        inputs.watch_only.push(lease.id);
        Ok(inputs)
    }

    /// A run of this node's for `asker`, whose it must be.
    fn run_for(&self, asker: &str, run_id: &str) -> std::result::Result<Arc<LiveRun>, Refusal> {
        let run = self.get(run_id).map_err(|e| Refusal::Forbidden(e.to_string()))?;
        let r = run.record();
        if r.org != asker || r.executor.as_deref() != Some(self.node.org()) {
            return Err(Refusal::Forbidden(format!("run {run_id} is not one {} runs for {asker}", self.node.org())));
        }
        Ok(run)
    }

    /// The run on the ledger and its dataset's release policy.
    pub(super) fn ledger_release(&self, run_id: &str) -> std::result::Result<(Run, ReleasePolicy), Refusal> {
        let store = self.node.state();
        let refuse = |why: &str| Refusal::Forbidden(why.into());
        let ledger = |e: leasehold_chaincode::ChaincodeError| Refusal::Forbidden(e.to_string());
        let run = query::run(store, run_id).map_err(ledger)?.ok_or_else(|| refuse("the run is not on the ledger"))?;
        let input = run.inputs.first().ok_or_else(|| refuse("the run has no input"))?;
        let ds = query::dataset(store, &input.id).map_err(ledger)?.ok_or_else(|| refuse("its dataset is gone"))?;
        Ok((run, ds.spec.policy.release))
    }

    pub fn remote_status(&self, asker: &str, run_id: &str, from: u64) -> std::result::Result<RemoteStatus, Refusal> {
        let run = self.run_for(asker, run_id)?;
        let r = run.record();
        let (on_ledger, policy) = self.ledger_release(run_id)?;
        let release = on_ledger.release.as_ref().map(|d| (d.approved, d.reason.clone()));
        let released = release.as_ref().is_some_and(|(ok, _)| *ok);
        let shown = policy.logs == LogRelease::Live || (policy.logs == LogRelease::AfterRelease && released);
        if !shown {
            // Until the release the lessee learns one word for the whole
            // run: a job's state, exit code, times, sizes or log could each
            // carry a bit of the data out, and a workflow has many jobs. Each
            // job shows the run's word. (Its end is padded: see `drive`.)
            let withheld = format!("withheld by {}'s policy until the outputs are released", self.node.org());
            let jobs = r
                .jobs
                .iter()
                .map(|j| JobRecord {
                    status: r.status,
                    error: Some(withheld.clone()),
                    ..JobRecord::queued(j.number, j.command.clone(), j.depends_on.clone())
                })
                .collect();
            let reason = r
                .reason
                .as_ref()
                .map(|_| format!("{} at {}'s node, whose logs are not released", r.status.as_str(), self.node.org()));
            return Ok(RemoteStatus { status: r.status, reason, jobs, output_hash: None, release, lines: Vec::new() });
        }
        let lines = run.read_lines(from, MAX_LOG_BYTES_PER_REPLY);
        let output_hash = on_ledger.output_hash.map(hex::encode);
        Ok(RemoteStatus { status: r.status, reason: r.reason, jobs: r.jobs, output_hash, release, lines })
    }

    pub fn cancel_for(&self, asker: &str, run_id: &str, by: &str) -> std::result::Result<(), Refusal> {
        let run = self.run_for(asker, run_id)?;
        if !run.record().status.is_final() {
            run.stop(Stop::Cancelled(format!("cancelled by {by}")));
        }
        Ok(())
    }

    /// The outputs' manifest, once the ledger says they are released to `asker`.
    pub fn released_manifest(&self, asker: &str, run_id: &str) -> std::result::Result<Manifest, Refusal> {
        let run = self.run_for(asker, run_id)?;
        let (on_ledger, _) = self.ledger_release(run_id)?;
        if !on_ledger.release.as_ref().is_some_and(|r| r.approved) || on_ledger.org != asker {
            return Err(Refusal::Forbidden(format!("the outputs of run {run_id} are not released to {asker}")));
        }
        let manifest = Manifest::of_dir(&run.output_dir()).map_err(|e| Refusal::Forbidden(e.to_string()))?;
        if Some(manifest.hash()) != on_ledger.output_hash {
            return Err(Refusal::Forbidden("the outputs no longer match their hash on the ledger".into()));
        }
        Ok(manifest)
    }

    pub fn released_chunk(
        &self,
        asker: &str,
        run_id: &str,
        path: &str,
        offset: u64,
        len: u64,
    ) -> std::result::Result<Vec<u8>, Refusal> {
        let manifest = self.released_manifest(asker, run_id)?;
        let entry = manifest.files.iter().find(|f| f.path == path);
        let entry = entry.ok_or_else(|| Refusal::Forbidden("no such output".into()))?;
        let len = len.min(CHUNK_BYTES).min(entry.size_bytes.saturating_sub(offset));
        let run = self.get(run_id).map_err(|e| Refusal::Forbidden(e.to_string()))?;
        let file = run.output_dir().join(&entry.path);
        read_chunk(&file, offset, len).map_err(|e| Refusal::Forbidden(format!("{path}: {e}")))
    }

    /// After a compute run succeeded here: where the policy needs the
    /// owner's approval (and the workflow is not trusted), left for the
    /// owner, whatever the outputs are; else released at once, or refused
    /// if over the cap. An automatic refusal under approval would tell the
    /// lessee whether the outputs were over the cap: a bit of the data.
    pub(super) async fn release_by_policy(&self, run: &Arc<LiveRun>) {
        let r = run.record();
        let out = run.output_dir();
        let bytes = match tokio::task::spawn_blocking(move || Manifest::of_dir(&out)).await {
            Ok(Ok(m)) => m.total_bytes(),
            _ => return,
        };
        let Ok((on_ledger, policy)) = self.ledger_release(&r.id) else { return };
        let trusted = policy.trusted_workflows.contains(&on_ledger.workflow_hash);
        let decision = if policy.approval && !trusted {
            None
        } else if bytes > policy.max_output_bytes {
            Some((false, format!("the outputs are over the {} bytes the policy releases", policy.max_output_bytes)))
        } else if trusted {
            Some((true, "a trusted workflow: released by the dataset's policy".to_string()))
        } else {
            Some((true, "released by the dataset's policy".to_string()))
        };
        match decision {
            Some((approve, reason)) => {
                if let Err(e) = self.decide(&r.id, approve, &reason).await {
                    tracing::warn!(run = %r.id, "recording the release decision: {e}");
                }
            }
            None => {
                run.log(None, Stream::Runner, &format!("outputs ({bytes} bytes) await {}'s approval", self.node.org()))
            }
        }
    }

    /// Records on the ledger whether a compute run's outputs may leave.
    pub async fn decide(&self, run_id: &str, approve: bool, reason: &str) -> Result<RunRecord> {
        let run = self.get(run_id)?;
        if run.record().executor.as_deref() != Some(self.node.org()) {
            return Err(RunError::NotFound(format!("run {run_id} is not a compute run this node executed")));
        }
        // A refusal records nothing of the outputs, not even their size.
        let (output_bytes, output_hash) = if approve {
            let out = run.output_dir();
            let manifest = tokio::task::spawn_blocking(move || Manifest::of_dir(&out))
                .await
                .map_err(|e| RunError::Unavailable(e.to_string()))??;
            (manifest.total_bytes(), Some(manifest.hash()))
        } else {
            (0, None)
        };
        let payload =
            Payload::DecideRelease { run_id: run_id.into(), approve, output_bytes, output_hash, reason: reason.into() };
        let w = self.node.write(payload).await?;
        if w.height.is_none() {
            return Err(RunError::Unavailable("the ledger did not commit the decision in time; try again".into()));
        }
        let verb = if approve { "released" } else { "refused" };
        run.log(None, Stream::Runner, &format!("outputs {verb} by {}: {reason}", self.node.org()));
        run.update(|r| r.release = Some((approve, reason.into())));
        Ok(run.record())
    }

    /// An approval for a run not yet succeeded is refused by the chaincode;
    /// this says so plainly first.
    pub fn check_decidable(&self, run_id: &str) -> Result<()> {
        let r = self.get(run_id)?.record();
        if r.executor.as_deref() != Some(self.node.org()) {
            return Err(RunError::NotFound(format!("run {run_id} is not a compute run this node executed")));
        }
        if r.status != Status::Succeeded {
            return Err(RunError::Conflict(format!(
                "run {run_id} is {}; only a succeeded run's outputs are released",
                r.status.as_str()
            )));
        }
        Ok(())
    }
}

impl Runner {
    /// Commits the lessee's request once its submission is accepted: it
    /// must name the lease the workflow reads and the submission's hash.
    pub(super) async fn commit_request(&self, request: &SignedTx, lease: &str, submission: &[u8; 32]) -> Result<()> {
        let Payload::RequestComputeRun { lease_id, submission_hash, .. } = &request.body.payload else {
            return Err(RunError::Forbidden("the run's request is not a request".into()));
        };
        if lease_id != lease {
            let why = format!("the run's request names lease {lease_id}, but its workflow reads lease {lease}");
            return Err(WorkflowError::new(None, "jobs", why).into());
        }
        if submission_hash != submission {
            let why = "the run's request was signed for another workflow or other files";
            return Err(WorkflowError::new(None, "workflow.yaml", why).into());
        }
        match self.node.write_signed(request.clone()).await? {
            w if w.height.is_some() => Ok(()),
            _ => Err(RunError::Unavailable("the ledger did not commit the run's request in time; try again".into())),
        }
    }
}

/// The lessee's request for `run_id`: `asker`'s own, correctly signed, for
/// this run, and one the ledger would take now. What it names (the lease
/// and the workflow's hash) is checked against the submission before it is
/// committed (`submit_with`).
fn check_request(node: &dyn Port, asker: &str, run_id: &str, request: &SignedTx) -> Result<()> {
    let refuse = |why: String| RunError::Forbidden(format!("the request for run {run_id}: {why}"));
    if request.body.org != asker {
        return Err(refuse(format!("signed as {}, not by {asker}", request.body.org)));
    }
    match &request.body.payload {
        Payload::RequestComputeRun { run_id: id, .. } if id == run_id => {}
        _ => return Err(refuse("it is not a request for this run".into())),
    }
    node.verify_signature(request).map_err(|e| refuse(e.to_string()))?;
    node.check(request)
}
