//! A run's jobs in dependency order, independent jobs in parallel up to a
//! limit, each run to its end by the plan's [`Executor`] in the sandbox,
//! with its output captured line by line into the run's log. A failed job
//! stops the jobs that depend on it; a stop (cancel, lease expiry or
//! revocation) kills every running job at once and ends the queued ones.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::live::{LiveRun, Status, Stop, Stream};
use super::sandbox::{JobCommand, Mount, Protection, Sandbox};
use crate::now_ms;
use crate::secrets::SecretEnv;

/// What a test or a build receives of the run's secrets.
static NO_SECRETS: std::sync::LazyLock<SecretEnv> = std::sync::LazyLock::new(SecretEnv::default);

/// How often a running job's limits are checked.
pub const WATCH_INTERVAL_MS: u64 = 100;

/// What a sandboxed process is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// One of the workflow's jobs: its record is updated as it goes.
    Job,
    /// A QC test, named; it works in a copy of the working directory.
    Test(String),
    /// The build of the run's Python environment: the only step with network.
    Environment,
}

#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The job's number; for a test or a build, only a name for its cgroup.
    pub number: usize,
    pub kind: StepKind,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub mounts: Vec<Mount>,
    pub deps: Vec<usize>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// In an order that respects every dependency.
    pub jobs: Vec<JobSpec>,
    pub max_parallel: usize,
    /// How each step is confined, wherever it runs.
    pub sandbox: Sandbox,
    /// Where each step runs.
    pub executor: Arc<dyn Executor>,
    pub output_path: String,
    /// The working directory's path inside the sandbox (`workdir`).
    pub home: String,
    /// The run's Python environment on the host, if it has one.
    pub python_env: Option<PathBuf>,
    /// When the run's first lease ends (ms since the epoch, ledger time):
    /// an executor that queues jobs starts none past it.
    pub deadline_ms: Option<i64>,
    /// Output a job, and all of a run's jobs, may log; past either the job
    /// is killed and the rest of its output dropped.
    pub log_job_bytes: u64,
    pub log_run_bytes: u64,
    /// Handed to each job (not to a test or a build), masked in the log.
    pub secrets: SecretEnv,
}

/// How a step ended; `stdout` is kept for tests only, up to a limit.
#[derive(Debug, Clone)]
pub struct JobEnd {
    pub status: Status,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub stdout: Vec<u8>,
}

fn failed(error: String) -> JobEnd {
    JobEnd { status: Status::Failed, exit_code: None, error: Some(error), stdout: Vec::new() }
}

/// Where a step works on the host, and where its outputs appear to it.
pub struct StepDirs {
    pub work: PathBuf,
    pub output: PathBuf,
    pub output_path: String,
    pub tmp: PathBuf,
}

impl StepDirs {
    /// What the sandbox needs to start `job` in these directories, with
    /// its volumes at `mounts` (the job's own, or copies an executor staged).
    pub fn command<'a>(&'a self, id: &'a str, plan: &'a Plan, job: &'a JobSpec, mounts: &'a [Mount]) -> JobCommand<'a> {
        JobCommand {
            id,
            argv: &job.argv,
            env: &job.env,
            mounts,
            work_dir: &self.work,
            home: &plan.home,
            output_dir: &self.output,
            output_path: &self.output_path,
            tmp_dir: &self.tmp,
            python_env: plan.python_env.as_deref().filter(|_| job.kind != StepKind::Environment),
            network: job.kind == StepKind::Environment,
            secrets: if job.kind == StepKind::Job { &plan.secrets } else { &NO_SECRETS },
        }
    }
}

/// Runs `plan` to the end and returns the run's status and, unless it
/// succeeded, why not. Job records and the log are updated as it goes.
pub async fn execute(plan: &Plan, run: &Arc<LiveRun>) -> (Status, Option<String>) {
    let mut status: HashMap<usize, Status> = plan.jobs.iter().map(|j| (j.number, Status::Queued)).collect();
    let mut running = JoinSet::new();
    let mut first_failure: Option<String> = None;
    loop {
        if let Some(stop) = run.stopped() {
            let queued: Vec<usize> =
                plan.jobs.iter().map(|j| j.number).filter(|n| status[n] == Status::Queued).collect();
            for n in queued {
                finish(run, &mut status, n, stop.status(), None, Some(stop.reason().into()));
            }
        } else {
            schedule(plan, run, &mut status, &mut running);
        }
        match running.join_next().await {
            None => break,
            Some(Ok((number, end))) => {
                let JobEnd { status: s, exit_code, error, .. } = end;
                if s == Status::Failed && first_failure.is_none() {
                    first_failure = Some(format!("job {number} failed: {}", error.as_deref().unwrap_or("")));
                }
                finish(run, &mut status, number, s, exit_code, error);
            }
            Some(Err(e)) => tracing::error!("a job task panicked: {e}"),
        }
    }
    match run.stopped() {
        Some(stop) => (stop.status(), Some(stop.reason().into())),
        None if status.values().all(|s| *s == Status::Succeeded) => (Status::Succeeded, None),
        None => (Status::Failed, first_failure),
    }
}

/// Ends jobs whose dependencies did not succeed, then starts ready jobs
/// while there is room.
fn schedule(
    plan: &Plan,
    run: &Arc<LiveRun>,
    status: &mut HashMap<usize, Status>,
    running: &mut JoinSet<(usize, JobEnd)>,
) {
    for job in &plan.jobs {
        if status[&job.number] != Status::Queued {
            continue;
        }
        if let Some(d) = job.deps.iter().find(|d| status[*d].is_final() && status[*d] != Status::Succeeded) {
            let why = format!("not started: job {d} did not succeed");
            finish(run, status, job.number, Status::Cancelled, None, Some(why));
        } else if job.deps.iter().all(|d| status[d] == Status::Succeeded) && running.len() < plan.max_parallel {
            status.insert(job.number, Status::Running);
            let (job, run, plan) = (job.clone(), run.clone(), plan.clone());
            running.spawn(async move {
                let dirs = StepDirs {
                    work: run.work_dir(),
                    output: run.output_dir(),
                    output_path: plan.output_path.clone(),
                    tmp: run.dir().join("tmp").join(job.number.to_string()),
                };
                (job.number, run_step(&plan, &job, &run, &dirs).await)
            });
        }
    }
}

fn finish(
    run: &LiveRun,
    status: &mut HashMap<usize, Status>,
    number: usize,
    s: Status,
    exit_code: Option<i32>,
    error: Option<String>,
) {
    status.insert(number, s);
    let line = match (&error, exit_code) {
        (Some(e), _) => format!("job {number} {}: {e}", s.as_str()),
        (None, Some(c)) => format!("job {number} {} (exit code {c})", s.as_str()),
        (None, None) => format!("job {number} {}", s.as_str()),
    };
    run.log(Some(number), Stream::Runner, &line);
    run.update_job(number, |j| {
        j.status = s;
        j.exit_code = exit_code;
        j.error = error;
        if j.started_at_ms.is_some() {
            j.finished_at_ms = Some(now_ms());
        }
    });
}

/// Where a step runs. leasehold schedules a run's jobs itself (`execute`:
/// dependencies, parallelism, stops); an executor runs one step to its end.
/// On whatever machine, the step starts through the plan's `sandbox`, its
/// output reaches the run's log line by line within the plan's limits, and
/// a stop on the run (cancel, lease expiry or revocation) ends it at once.
/// `dirs` are the node's: an executor on other machines needs them on a
/// directory those machines share with the node.
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// What runs the steps, for the node's log and status.
    fn describe(&self) -> String;

    /// Runs one step (a job, a test or the environment's build) to its end.
    fn run_step<'a>(
        &'a self,
        plan: &'a Plan,
        job: &'a JobSpec,
        run: &'a Arc<LiveRun>,
        dirs: &'a StepDirs,
    ) -> StepFuture<'a>;

    /// What a run's steps are held to, and by what, under `sandbox`.
    fn protections(&self, sandbox: &Sandbox) -> Vec<Protection> {
        sandbox.protections()
    }

    /// Where runs and environments must live for the steps to reach them:
    /// `None` for the node's own data directory.
    fn work_root(&self) -> Option<PathBuf> {
        None
    }

    /// The run has ended: remove whatever the executor staged for it.
    /// Blocking.
    fn end_run(&self, _run: &LiveRun) {}
}

/// Where a node's steps run: `[executor]` in `node.toml`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ExecutorConfig {
    /// Each step on the node's own host (the default).
    #[default]
    Local,
    /// Each step a job on a Slurm cluster.
    Slurm(SlurmConfig),
}

impl ExecutorConfig {
    pub fn is_local(&self) -> bool {
        *self == Self::Local
    }

    /// The executor; `org` names this node's jobs on a shared cluster.
    pub fn build(&self, org: &str) -> Arc<dyn Executor> {
        match self {
            Self::Local => Arc::new(Local),
            Self::Slurm(cfg) => {
                let slurm = Slurm::new(cfg.clone(), org);
                // Jobs a previous run of this node left: their runs ended with it.
                match slurm.sweep() {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!("cancelled {n} Slurm jobs this node left when it last stopped"),
                    Err(e) => tracing::warn!("cannot list this node's Slurm jobs: {e}"),
                }
                Arc::new(slurm)
            }
        }
    }
}

/// A step running; it resolves to how the step ended.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = JobEnd> + Send + 'a>>;

/// Runs one step through the plan's executor.
pub async fn run_step(plan: &Plan, job: &JobSpec, run: &Arc<LiveRun>, dirs: &StepDirs) -> JobEnd {
    plan.executor.run_step(plan, job, run, dirs).await
}

pub async fn stopped(rx: &mut watch::Receiver<Option<Stop>>) -> Stop {
    loop {
        if let Some(s) = rx.borrow_and_update().clone() {
            return s;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

mod local;
mod slurm;
mod step;
pub use local::Local;
pub use slurm::{Slurm, SlurmConfig};
