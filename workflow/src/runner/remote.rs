//! The lessee's side of compute-to-data: a run whose volumes are on a
//! compute dataset goes to the dataset owner's node, which runs it there.
//! This node keeps a record of it, follows it (state, and the log as far as
//! the owner's policy shows it), passes a cancel on, and, once the owner
//! released the outputs on the ledger, fetches them and checks them against
//! the output hash there. No byte of the dataset comes here.

use std::sync::Arc;
use std::time::Duration;

use leasehold_chaincode::{query, Lease, Payload};
use sha2::{Digest, Sha256};

use super::inputs::Inputs;
use super::wire::{ComputeReply, ComputeRequest, RemoteStatus};
use super::{new_run_id, Runner};
use super::{Result, RunError};
use crate::live::{LiveRun, RunRecord, Status, Stream};
use crate::now_ms;
use crate::{Workflow, WorkflowError};
use leasehold_files::CHUNK_BYTES;

/// How often a remote run is asked about while it runs, and after.
const FOLLOW_MS: u64 = 200;
const AWAIT_RELEASE_MS: u64 = 1_000;
/// Failed polls in a row before the run is given up on.
const MAX_MISSES: u32 = 150;

/// A workflow a lessee hands to a compute dataset's owner.
pub(super) struct Submission<'a> {
    pub yaml: &'a str,
    pub tar: Option<&'a [u8]>,
    /// What the lessee signs on the ledger (`RequestComputeRun`).
    pub hash: [u8; 32],
}

impl Runner {
    /// The lease of a run on a compute dataset: then it is the only input.
    pub(super) fn compute_lease<'a>(&self, inputs: &'a Inputs) -> Result<Option<&'a Lease>> {
        let store = self.node.state();
        let compute: Vec<&Lease> = inputs
            .leases
            .values()
            .filter(|l| query::files_served(store, &l.dataset_id, l.dataset_version).is_err())
            .collect();
        match compute.as_slice() {
            [] => Ok(None),
            [lease] if inputs.leases.len() == 1 && inputs.own.is_empty() => Ok(Some(lease)),
            [lease, ..] => {
                let why = format!(
                    "dataset {} is compute-only, so the run executes at {}'s node, which holds none of the \
                     run's other data; run on it alone",
                    lease.dataset_id, lease.owner
                );
                Err(WorkflowError::new(None, "jobs", why).into())
            }
        }
    }

    /// Hands the workflow to the owner of `lease`'s dataset and follows it.
    /// It goes with this org's signed request, which the owner commits
    /// before it starts the run: the owner runs nothing this org did not
    /// ask for, and cannot say it did.
    pub(super) async fn submit_remote(
        self: &Arc<Self>,
        submission: Submission<'_>,
        wf: &Workflow,
        sandbox: &crate::sandbox::Sandbox,
        inputs: &Inputs,
        submitted_by: &str,
    ) -> Result<RunRecord> {
        // `compute_lease` found it the run's only lease.
        let lease = inputs.leases.values().next().expect("a compute run has its lease");
        let id = new_run_id();
        let owner = lease.owner.clone();
        let mut record = self.new_record(&id, wf, sandbox, submitted_by, &[0; 32], inputs);
        // The owner's node runs it, under its own sandbox, and names its
        // workflow hash on the ledger (copied here as the run is followed).
        record.sandbox = format!("at {owner}'s node, under its sandbox");
        record.protections = Vec::new();
        record.workflow_hash = String::new();
        record.executor = Some(owner.clone());
        let run = LiveRun::create(&self.dirs.run(&id), record)?;
        // Signed here, committed by the owner only once it accepts the
        // workflow: a refused submission leaves nothing on the ledger.
        let request = self.node.sign(Payload::RequestComputeRun {
            run_id: id.clone(),
            lease_id: lease.id.clone(),
            submission_hash: submission.hash,
        });
        let req = ComputeRequest::Submit {
            run_id: id.clone(),
            yaml: submission.yaml.into(),
            bundle: submission.tar.map(<[u8]>::to_vec),
            submitted_by: submitted_by.into(),
            request: Box::new(request.clone()),
        };
        let handed = match self.node.check(&request) {
            Ok(()) => self.node.compute_request(&owner, req).await,
            Err(e) => Err(e),
        };
        if let Err(e) = handed {
            // A lost reply: the owner may have started it all the same.
            let started = query::run(self.node.state(), &id).ok().flatten().is_some();
            if !started {
                let _ = std::fs::remove_dir_all(run.dir());
                return Err(e);
            }
            run.log(None, Stream::Runner, &format!("{owner}'s node did not answer ({e}), but started the run"));
        }
        run.log(None, Stream::Runner, &format!("handed to {owner}'s node, which holds the data and runs it"));
        self.runs.lock().expect("runs lock").insert(id, run.clone());
        tokio::spawn(self.clone().follow(run.clone(), owner));
        Ok(run.record())
    }

    /// Mirrors the remote run here until it ends and its release is
    /// decided, then fetches what was released.
    pub(super) async fn follow(self: Arc<Self>, run: Arc<LiveRun>, owner: String) {
        let id = run.record().id;
        let (mut next, mut misses, mut cancel_sent) = (0u64, 0u32, false);
        let end = loop {
            if let (Some(stop), false) = (run.stopped(), cancel_sent) {
                let by = stop.reason().to_string();
                cancel_sent =
                    self.node.compute_request(&owner, ComputeRequest::Cancel { run_id: id.clone(), by }).await.is_ok();
            }
            match self.node.compute_request(&owner, ComputeRequest::Status { run_id: id.clone(), from_seq: next }).await
            {
                Ok(ComputeReply::Status(s)) => {
                    misses = 0;
                    for line in &s.lines {
                        run.log(line.job, line.stream, &line.text);
                        next = line.seq + 1;
                    }
                    let ended = s.status.is_final();
                    self.mirror(&run, &s);
                    if ended && (s.status != Status::Succeeded || s.release.is_some()) {
                        break s;
                    }
                    if let (true, Some(stop)) = (ended, run.stopped()) {
                        // Cancelled while the owner had yet to decide: this
                        // node stops waiting; the owner keeps the outputs.
                        break RemoteStatus { status: stop.status(), reason: Some(stop.reason().into()), ..s };
                    }
                    let wait = if ended { AWAIT_RELEASE_MS } else { FOLLOW_MS };
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                other => {
                    misses += 1;
                    if misses >= MAX_MISSES {
                        let why =
                            format!("lost {owner}'s node: {}", other.err().map(|e| e.to_string()).unwrap_or_default());
                        break RemoteStatus {
                            status: Status::Failed,
                            reason: Some(why),
                            jobs: run.record().jobs,
                            output_hash: None,
                            release: None,
                            lines: Vec::new(),
                        };
                    }
                    tokio::time::sleep(Duration::from_millis(FOLLOW_MS)).await;
                }
            }
        };
        let (status, reason, hash) = match (&end.status, &end.release) {
            (Status::Succeeded, Some((true, _))) => match self.fetch_outputs(&run, &owner).await {
                Ok(hash) => (Status::Succeeded, None, Some(hash)),
                Err(e) => (Status::Failed, Some(format!("fetching the released outputs: {e}")), None),
            },
            (Status::Succeeded, Some((false, why))) => {
                (Status::Failed, Some(format!("{owner} did not release the outputs: {why}")), None)
            }
            _ => (end.status, end.reason.clone(), None),
        };
        let line =
            format!("run {id} {}{}", status.as_str(), reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default());
        run.log(None, Stream::Runner, &line);
        run.update(|r| {
            r.status = status;
            r.reason = reason;
            r.output_hash = hash;
            r.finished_at_ms = Some(now_ms());
        });
        run.evict_log();
    }

    fn mirror(&self, run: &LiveRun, s: &RemoteStatus) {
        let ledger = query::run(self.node.state(), &run.record().id).ok().flatten();
        run.update(|r| {
            // Final only once the outputs are here or refused.
            r.status = if s.status.is_final() { Status::Running } else { s.status };
            r.jobs = s.jobs.clone();
            r.release = s.release.clone();
            if let Some(l) = &ledger {
                r.workflow_hash = hex::encode(l.workflow_hash);
            }
        });
    }

    /// The released outputs, each file checked against the manifest and the
    /// manifest against the output hash on this node's ledger.
    async fn fetch_outputs(&self, run: &Arc<LiveRun>, owner: &str) -> Result<String> {
        let id = run.record().id;
        let want = self.released_hash(&id).await?;
        let ComputeReply::Manifest(manifest) =
            self.node.compute_request(owner, ComputeRequest::OutputManifest { run_id: id.clone() }).await?
        else {
            return Err(RunError::Data("expected a manifest".into()));
        };
        if manifest.hash() != want {
            return Err(RunError::Data("the manifest does not match the output hash on the ledger".into()));
        }
        manifest.check().map_err(|e| RunError::Data(e.to_string()))?;
        let stage = run.dir().join(".outputs");
        let _stage = super::RemoveOnDrop(stage.clone());
        for entry in &manifest.files {
            let path = stage.join(&entry.path);
            std::fs::create_dir_all(path.parent().expect("has parent")).map_err(|e| RunError::file(&path, e))?;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| RunError::file(&path, e))?;
            let (mut hasher, mut offset) = (Sha256::new(), 0u64);
            while offset < entry.size_bytes {
                self.node.check_disk()?;
                let req = ComputeRequest::OutputChunk {
                    run_id: id.clone(),
                    path: entry.path.clone(),
                    offset,
                    len: CHUNK_BYTES,
                };
                let ComputeReply::Chunk(bytes) = self.node.compute_request(owner, req).await? else {
                    return Err(RunError::Data("expected a chunk".into()));
                };
                if bytes.is_empty() {
                    return Err(RunError::Data(format!("{} ended early", entry.path)));
                }
                hasher.update(&bytes);
                std::io::Write::write_all(&mut out, &bytes).map_err(|e| RunError::file(&path, e))?;
                offset += bytes.len() as u64;
            }
            let digest: [u8; 32] = hasher.finalize().into();
            if offset != entry.size_bytes || digest != entry.sha256 {
                return Err(RunError::Data(format!("{} does not match its hash in the manifest", entry.path)));
            }
        }
        let dest = run.output_dir();
        leasehold_files::durable::sync_tree(&stage).map_err(|e| RunError::file(&stage, e))?;
        std::fs::remove_dir(&dest).map_err(|e| RunError::file(&dest, e))?;
        leasehold_files::durable::rename(&stage, &dest).map_err(|e| RunError::file(&dest, e))?;
        Ok(hex::encode(want))
    }

    /// The output hash of a released run, once this node's ledger has the release.
    async fn released_hash(&self, run_id: &str) -> Result<[u8; 32]> {
        for _ in 0..100 {
            let on_ledger = query::run(self.node.state(), run_id)?;
            if let Some(r) = on_ledger.filter(|r| r.release.as_ref().is_some_and(|rel| rel.approved)) {
                return r.output_hash.ok_or_else(|| RunError::Data("a released run without an output hash".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(RunError::Data("this node's ledger has no release of the run".into()))
    }
}
