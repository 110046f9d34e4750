//! Runs workflows on this node: checks a workflow against the ledger,
//! records its start, fetches and verifies the leased data, runs the jobs in
//! the sandbox, watches the leases while they run, and records the end.
//!
//! It reaches its node only through a [`Port`], and runs jobs through an
//! [`Executor`]: this host's sandbox, or a cluster's.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use leasehold_chaincode::Payload;
use tracing::{info, warn};

use crate::exec::{Executor, ExecutorConfig, Plan};
use crate::live::{JobRecord, LiveRun, RunRecord, Status, Stop};
use crate::now_ms;
use crate::sandbox::{Sandbox, Unavailable, WorkdirError, DEFAULT_OUTPUT_PATH};
use crate::secrets::SecretEnv;
use crate::{bundle, Workflow, WorkflowError};

pub struct Runner {
    node: Arc<dyn Port>,
    cfg: WorkflowConfig,
    dirs: RunDirs,
    /// The sandbox, or the protection this machine lacks.
    sandbox: std::result::Result<Sandbox, Unavailable>,
    /// Where jobs run: this host, or a cluster (`[executor]`).
    executor: Arc<dyn Executor>,
    runs: Mutex<BTreeMap<String, Arc<LiveRun>>>,
    /// One fetch per lease, and one build per environment, at a time;
    /// concurrent runs share the result.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Runner {
    /// Finds the sandbox and loads the runs kept under `data_dir` (or the
    /// executor's shared directory). Must be called inside a tokio runtime:
    /// runs left unfinished are concluded, or followed again.
    pub fn start(
        node: Arc<dyn Port>,
        cfg: WorkflowConfig,
        executor: &ExecutorConfig,
        data_dir: &Path,
    ) -> Result<Arc<Self>> {
        let executor = executor.build(node.org());
        // A cluster reaches a run's files only in the directory it shares.
        let dirs = match executor.work_root() {
            Some(shared) => RunDirs::new(&shared.join(node.org())),
            None => RunDirs::new(data_dir),
        };
        let sandbox = match Sandbox::detect(node.org(), &cfg.limits) {
            Err(missing) if cfg.allow_unsandboxed => {
                warn!("{missing}: jobs will run UNSANDBOXED, as workflow.allow_unsandboxed is set");
                Ok(Sandbox::Unsandboxed)
            }
            other => other,
        };
        match &sandbox {
            Ok(s) => info!("workflow sandbox: {}; executor: {}", s.describe(), executor.describe()),
            Err(missing) => warn!("{missing}: this node will refuse to run workflows"),
        }
        let runner = Arc::new(Self {
            node,
            cfg,
            dirs,
            sandbox,
            executor,
            runs: Mutex::new(BTreeMap::new()),
            fetching: Mutex::new(HashMap::new()),
        });
        runner.private_dirs()?;
        runner.load_runs();
        runner.delete_unfinished_builds();
        Ok(runner)
    }

    /// Runs and environments are the node's alone: a run's home is
    /// world-writable (sticky) for the jobs' sake, so no other user of the
    /// host may reach it, or anything else under these.
    fn private_dirs(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for d in [self.dirs.runs_root(), self.dirs.envs_root()] {
            leasehold_files::durable::create_dirs(&d).map_err(|e| RunError::file(&d, e))?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).map_err(|e| RunError::file(&d, e))?;
        }
        Ok(())
    }

    fn load_runs(self: &Arc<Self>) {
        // Bundles being unpacked when the node stopped: their runs never started.
        let _ = std::fs::remove_dir_all(self.bundles_root());
        let Ok(entries) = std::fs::read_dir(self.dirs.runs_root()) else { return };
        for dir in entries.flatten().map(|e| e.path()) {
            if dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            match LiveRun::load(&dir) {
                Ok(run) => {
                    let r = run.record();
                    let elsewhere = r.executor.as_ref().filter(|e| e.as_str() != self.node.org()).cloned();
                    if let (Some(owner), false) = (elsewhere, r.status.is_final()) {
                        // It runs at its owner's node: follow it again.
                        tokio::spawn(self.clone().follow(run.clone(), owner));
                    } else if !r.status.is_final() {
                        // The node stopped while it ran; its jobs died with it
                        // (a cluster's were cancelled as the executor started),
                        // and what was staged for them goes.
                        self.executor.end_run(&run);
                        run.stop(Stop::Cancelled("the node restarted during the run".into()));
                        let why = run.stopped().map(|s| s.reason().to_string());
                        tokio::spawn(self.clone().conclude(run.clone(), Status::Failed, why));
                    }
                    self.runs.lock().expect("runs lock").insert(run.record().id, run);
                }
                Err(e) => warn!("skipping {}: {e}", dir.display()),
            }
        }
    }

    pub fn list(&self) -> Vec<RunRecord> {
        self.runs.lock().expect("runs lock").values().map(|r| r.record()).collect()
    }

    pub fn get(&self, id: &str) -> Result<Arc<LiveRun>> {
        let runs = self.runs.lock().expect("runs lock");
        runs.get(id).cloned().ok_or_else(|| RunError::NotFound(format!("run {id:?} does not exist on this node")))
    }

    pub fn cancel(&self, id: &str, by: &str) -> Result<RunRecord> {
        let run = self.get(id)?;
        let status = run.record().status;
        if status.is_final() {
            return Err(RunError::Conflict(format!("run {id} has already ended: {}", status.as_str())));
        }
        run.stop(Stop::Cancelled(format!("cancelled by {by}")));
        Ok(run.record())
    }

    /// A succeeded, unpublished run's record and output directory.
    pub fn publishable(&self, id: &str) -> Result<(RunRecord, PathBuf)> {
        let run = self.get(id)?;
        let r = run.record();
        if r.status != Status::Succeeded {
            return Err(RunError::Conflict(format!(
                "run {id} is {}; only a succeeded run is published",
                r.status.as_str()
            )));
        }
        if let Some(ds) = &r.published_as {
            return Err(RunError::Conflict(format!("run {id} was already published as dataset {ds}")));
        }
        Ok((r, run.output_dir()))
    }

    /// A succeeded run's output directory, to read its files: no job of
    /// the run is left to change them.
    pub fn succeeded_outputs(&self, id: &str) -> Result<PathBuf> {
        let run = self.get(id)?;
        let status = run.record().status;
        if status != Status::Succeeded {
            return Err(RunError::Conflict(format!(
                "run {id} is {}; only a succeeded run has outputs",
                status.as_str()
            )));
        }
        Ok(run.output_dir())
    }

    pub fn mark_published(&self, id: &str, dataset: &str) -> Result<()> {
        self.get(id)?.update(|r| r.published_as = Some(dataset.into()));
        Ok(())
    }

    /// The bundle's files become the run's working directory, owned by the
    /// jobs' uid when the node is root, as the directory itself is at each
    /// job's start, so a job may change them as it could in its own home.
    fn adopt_bundle(&self, files: &std::path::Path, work: &std::path::Path) -> Result<()> {
        let fail = |e: std::io::Error| RunError::file(work, e);
        std::fs::remove_dir(work).map_err(fail)?;
        leasehold_files::durable::rename(files, work).map_err(fail)?;
        if nix::unistd::geteuid().is_root() {
            chown_tree(work, self.cfg.limits.job_uid, self.cfg.limits.job_gid).map_err(fail)?;
        }
        Ok(())
    }

    fn usable_sandbox(&self) -> Result<Sandbox> {
        self.sandbox.clone().map_err(|missing| {
            RunError::Unavailable(format!(
                "this node cannot sandbox jobs: {missing}; fix that, or set \
                 workflow.allow_unsandboxed = true in its config to run jobs with no protection"
            ))
        })
    }

    fn check_room(&self) -> Result<()> {
        let active = self.list().iter().filter(|r| !r.status.is_final()).count();
        if active >= self.cfg.max_active_runs {
            return Err(RunError::Unavailable(format!("{active} runs are active, the most this node allows")));
        }
        Ok(())
    }

    fn bundles_root(&self) -> PathBuf {
        self.dirs.runs_root().join(".bundles")
    }

    /// Unpacks a workflow's directory (a tar with `workflow.yaml` at its
    /// top) and submits it; its files become the run's working directory.
    pub async fn submit_bundle(self: &Arc<Self>, tar: Vec<u8>, submitted_by: &str, force: bool) -> Result<RunRecord> {
        self.submit_tar(tar, submitted_by, Mode::Local { force }).await
    }

    pub(super) async fn submit_tar(
        self: &Arc<Self>,
        tar: Vec<u8>,
        submitted_by: &str,
        mode: Mode<'_>,
    ) -> Result<RunRecord> {
        // What is cheap to refuse is refused before anything is unpacked.
        self.usable_sandbox()?;
        self.check_room()?;
        let staging = self.bundles_root().join(hex::encode(rand::random::<[u8; 8]>()));
        let (to, max) = (staging.clone(), self.cfg.max_bundle_mib << 20);
        // Kept whole in case the run goes to a compute dataset's owner.
        let raw = Arc::new(tar);
        let tar = raw.clone();
        // Up to `max_bundle_mib` of files, written and synced: off the async threads.
        let unpacked = tokio::task::spawn_blocking(move || {
            leasehold_files::durable::create_dirs(&to).map_err(|e| RunError::file(&to, e))?;
            let unpacked = bundle::unpack(&tar, &to, max)?;
            // Files and directories synced once, before the rename that
            // makes them the run's working directory.
            leasehold_files::durable::sync_tree(&to).map_err(|e| RunError::file(&to, e))?;
            Ok::<_, RunError>(unpacked)
        })
        .await
        .map_err(|e| RunError::Unavailable(format!("unpacking the bundle: {e}")))
        .and_then(|r| r);
        let submitted = match unpacked {
            Ok(b) => {
                let bundle = Bundled { dir: &staging, hash: b.hash, tar: &raw };
                self.submit_with(&b.yaml, Some(bundle), submitted_by, mode).await
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_dir_all(&staging);
        submitted
    }

    /// Validates `yaml`, checks every volume against the ledger, records
    /// the start and starts the run, or reuses an earlier run's outputs
    /// unless `force`. Nothing is left behind if any step fails.
    pub async fn submit(self: &Arc<Self>, yaml: &str, submitted_by: &str, force: bool) -> Result<RunRecord> {
        self.submit_with(yaml, None, submitted_by, Mode::Local { force }).await
    }

    pub(super) async fn submit_with(
        self: &Arc<Self>,
        yaml: &str,
        bundled: Option<Bundled<'_>>,
        submitted_by: &str,
        mode: Mode<'_>,
    ) -> Result<RunRecord> {
        let wf = Workflow::parse(yaml)?;
        let sandbox = self.usable_sandbox()?;
        self.check_room()?;
        self.check_timeouts(&wf)?;
        let inputs = match mode {
            Mode::Local { .. } => self.resolve_inputs(&wf)?,
            Mode::For { asker, .. } => self.resolve_for(asker, &wf)?,
        };
        let secrets = self.secrets_for(&wf, mode, &inputs)?;
        let bundle = bundled.as_ref().map(|b| (b.dir, b.hash));
        // What the lessee signs, and the owner must run: the workflow and
        // its files, not the environment, which is the owner's to build.
        let submission_hash = bundle::workflow_hash(yaml, bundle.as_ref().map(|(_, h)| h), None);
        if let (Mode::Local { .. }, Some(_)) = (mode, self.compute_lease(&inputs)?) {
            let tar = bundled.map(|b| b.tar.as_slice());
            let submission = remote::Submission { yaml, tar, hash: submission_hash };
            return self.submit_remote(submission, &wf, &sandbox, &inputs, submitted_by).await;
        }
        if let Some(ds) = inputs.requiring_tests.first().filter(|_| wf.tests.is_empty()) {
            let why = format!("dataset {ds}'s policy requires QC tests: declare them under tests:");
            return Err(WorkflowError::new(None, "tests", why).into());
        }
        let files = bundle.map(|(dir, _)| dir);
        let requirements = env::requirements(&wf, files)?;
        match files {
            Some(dir) => qc::check_fixtures(&wf, dir)?,
            None if wf.tests.iter().any(|t| !t.fixtures.is_empty()) => {
                let why =
                    "fixtures come from the workflow's directory: send it with leasehold run -f DIR/workflow.yaml";
                return Err(WorkflowError::new(None, "tests", why).into());
            }
            None => {}
        }
        let env = match requirements {
            Some(_) if matches!(sandbox, Sandbox::Unsandboxed) => {
                let why = "this node runs jobs unsandboxed and builds no environments";
                return Err(RunError::Unavailable(why.into()));
            }
            Some(requirements) => Some(env::EnvSpec { key: env::env_key(&requirements)?, requirements }),
            None => None,
        };
        let env_key = env.as_ref().map(|e| e.key);
        let workflow_hash = bundle::workflow_hash(yaml, bundle.as_ref().map(|(_, h)| h), env_key.as_ref());
        let reuse_key = reuse::reuse_key(&workflow_hash, &inputs.versions);
        // Outputs made with secrets are not taken for another run's: the
        // values may have changed, and no hash of them is kept to compare.
        let reuse_from = match mode {
            Mode::Local { force: false } if secrets.is_empty() => self.reusable(&reuse_key),
            _ => None,
        };
        let id = match mode {
            Mode::For { run_id, .. } => run_id.to_string(),
            Mode::Local { .. } => new_run_id(),
        };
        let mut record = self.new_record(&id, &wf, &sandbox, submitted_by, &workflow_hash, &inputs);
        if let Mode::For { asker, .. } = mode {
            record.org = asker.into();
            record.executor = Some(self.node.org().into());
        }
        record.environment = env_key.map(hex::encode);
        record.reuse_key = Some(reuse_key);
        record.reused_from = reuse_from.as_ref().map(|r| r.id.clone());
        let run = LiveRun::create(&self.dirs.run(&id), record)?;
        if let Err(e) = self.fill_workdir(&run, &wf, files, &sandbox) {
            let _ = std::fs::remove_dir_all(run.dir());
            return Err(e);
        }
        let _ = leasehold_files::durable::write_atomic(&run.dir().join("workflow.yaml"), yaml.as_bytes(), 0o644);
        let lease_ids: Vec<String> = inputs.leases.keys().cloned().collect();
        let dataset_refs = inputs.versions.keys().cloned().collect();
        let start = match (mode, inputs.watch_only.first()) {
            (Mode::For { request, .. }, Some(lease)) => {
                let committed = self.commit_request(request, lease, &submission_hash).await;
                if let Err(e) = committed {
                    let _ = std::fs::remove_dir_all(run.dir());
                    return Err(e);
                }
                Payload::StartComputeRun { run_id: id.clone(), workflow_hash, lease_id: lease.clone(), submission_hash }
            }
            _ => Payload::StartRun { run_id: id.clone(), workflow_hash, lease_ids, inputs: dataset_refs },
        };
        match self.node.write(start).await {
            Ok(w) if w.height.is_some() => run.update(|r| r.start_tx = Some(w.tx_id)),
            other => {
                let _ = std::fs::remove_dir_all(run.dir());
                return Err(other.err().unwrap_or_else(|| {
                    RunError::Unavailable("the ledger did not commit the run's start in time; try again".into())
                }));
            }
        }
        self.runs.lock().expect("runs lock").insert(id.clone(), run.clone());
        if let Some(from) = reuse_from {
            tokio::spawn(self.clone().reuse(run.clone(), from));
            return Ok(run.record());
        }
        let plan = Plan {
            jobs: Vec::new(),
            max_parallel: self.cfg.parallel_jobs(),
            sandbox,
            executor: self.executor.clone(),
            output_path: wf.outputs.clone().unwrap_or_else(|| DEFAULT_OUTPUT_PATH.into()),
            home: wf.workdir.clone(),
            python_env: None,
            deadline_ms: None,
            log_job_bytes: self.cfg.limits.log_job_mib << 20,
            log_run_bytes: self.cfg.limits.log_run_mib << 20,
            secrets,
        };
        tokio::spawn(self.clone().drive(run.clone(), wf, plan, inputs, env));
        Ok(run.record())
    }

    /// The values of the secrets `wf` names, opened by the node: only for
    /// this org's own run on this node. A run for another org, at another
    /// org's node, or on a cluster receives none, and is refused if it
    /// names any.
    fn secrets_for(&self, wf: &Workflow, mode: Mode<'_>, inputs: &Inputs) -> Result<SecretEnv> {
        if wf.secrets.is_empty() {
            return Ok(SecretEnv::default());
        }
        let refuse = |why: String| Err(WorkflowError::new(None, "secrets", why).into());
        if let Mode::For { asker, .. } = mode {
            return refuse(format!("a run for {asker} receives none of {}'s secrets", self.node.org()));
        }
        if let Some(lease) = self.compute_lease(inputs)? {
            let owner = &lease.owner;
            return refuse(format!("a compute run at {owner}'s node receives no secrets: remove secrets:"));
        }
        if self.executor.work_root().is_some() {
            return refuse("this node's jobs run on a cluster, which receives no secrets from it".into());
        }
        self.node.secrets(&wf.secrets)
    }

    fn check_timeouts(&self, wf: &Workflow) -> Result<()> {
        let max = self.cfg.max_job_timeout_s;
        let why = || format!("at most {max} seconds on this node");
        if let Some(j) = wf.jobs.iter().find(|j| j.timeout_s.is_some_and(|t| t > max)) {
            return Err(WorkflowError::new(Some(j.number), "timeout", why()).into());
        }
        if let Some(t) = wf.tests.iter().position(|t| t.timeout_s > max) {
            return Err(WorkflowError::new(None, &format!("tests[{t}].timeout"), why()).into());
        }
        Ok(())
    }

    /// The bundle's files, then the mount points of the volumes inside the
    /// working directory (see `sandbox::workdir`). Each test makes its
    /// fixtures' in a copy of its own.
    fn fill_workdir(&self, run: &LiveRun, wf: &Workflow, files: Option<&Path>, sandbox: &Sandbox) -> Result<()> {
        if let Some(files) = files {
            self.adopt_bundle(files, &run.work_dir())?;
        }
        let paths: Vec<&str> = wf.jobs.iter().flat_map(|j| j.volumes.iter().map(|v| v.path.as_str())).collect();
        sandbox.prepare_workdir(&run.work_dir(), &wf.workdir, &paths).map_err(|e| match e.io {
            true => RunError::File(leasehold_files::FileError { path: e.path, reason: e.reason }),
            false => mount_error(wf, e).into(),
        })
    }

    fn new_record(
        &self,
        id: &str,
        wf: &Workflow,
        sandbox: &Sandbox,
        submitted_by: &str,
        workflow_hash: &[u8; 32],
        inputs: &Inputs,
    ) -> RunRecord {
        let jobs =
            wf.jobs.iter().map(|j| JobRecord::queued(j.number, j.command.clone(), wf.dependencies(j.number))).collect();
        RunRecord {
            id: id.into(),
            name: wf.name.clone(),
            org: self.node.org().into(),
            submitted_by: submitted_by.into(),
            status: Status::Queued,
            reason: None,
            sandbox: sandbox.describe(),
            workflow_hash: hex::encode(workflow_hash),
            leases: inputs.leases.keys().cloned().collect(),
            inputs: inputs.versions.keys().cloned().collect(),
            jobs,
            created_at_ms: now_ms(),
            finished_at_ms: None,
            output_hash: None,
            start_tx: None,
            finish_tx: None,
            published_as: None,
            protections: self.executor.protections(sandbox),
            environment: None,
            reuse_key: None,
            reused_from: None,
            executor: None,
            release: None,
            placements: Default::default(),
        }
    }
}

/// A mount point the working directory cannot take, as the field of the
/// first volume or fixture mounted there.
fn mount_error(wf: &Workflow, e: WorkdirError) -> WorkflowError {
    let same = |p: &str| Path::new(p) == Path::new(&e.path);
    for j in &wf.jobs {
        if let Some(i) = j.volumes.iter().position(|v| same(&v.path)) {
            return WorkflowError::new(Some(j.number), &format!("volumes[{i}].path"), e.reason);
        }
    }
    for (t, test) in wf.tests.iter().enumerate() {
        if let Some(i) = test.fixtures.iter().position(|f| same(&f.path)) {
            return WorkflowError::new(None, &format!("tests[{t}].fixtures[{i}].path"), e.reason);
        }
    }
    WorkflowError::new(None, "workdir", e.reason)
}

/// Who a submission is for.
#[derive(Clone, Copy)]
pub(super) enum Mode<'a> {
    /// This node's own user; `force` runs even when outputs could be reused.
    Local { force: bool },
    /// The node of `asker`, a lessee of this node's compute data, which
    /// signed `request` for this run.
    For { asker: &'a str, run_id: &'a str, request: &'a leasehold_chaincode::SignedTx },
}

/// A workflow's directory: unpacked at `dir`, named by `hash`, and the tar
/// it came in, to send on to a compute dataset's owner.
pub(super) struct Bundled<'a> {
    pub dir: &'a Path,
    pub hash: [u8; 32],
    pub tar: &'a Arc<Vec<u8>>,
}

pub(super) fn new_run_id() -> String {
    format!("run-{}", hex::encode(rand::random::<[u8; 8]>()))
}

mod config;
mod dirs;
mod drive;
mod env;
mod error;
mod executor;
mod inputs;
mod port;
mod qc;
mod remote;
mod reuse;
pub mod wire;

pub use config::WorkflowConfig;
pub use dirs::RunDirs;
pub use error::{Result, RunError};
use inputs::Inputs;
pub use port::{Port, Progress, Written};

/// Removes a directory when dropped: what a step leaves behind goes, even
/// when a stop drops the step's future halfway.
pub(super) struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A bundle holds only files and directories (see `bundle`): no link to follow.
fn chown_tree(dir: &std::path::Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        match e.file_type()?.is_dir() {
            true => chown_tree(&e.path(), uid, gid)?,
            false => std::os::unix::fs::lchown(e.path(), Some(uid), Some(gid))?,
        }
    }
    Ok(())
}
