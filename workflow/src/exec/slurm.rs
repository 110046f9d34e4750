//! The Slurm executor: each step a Slurm batch job, started on a compute
//! node through the same sandbox chain as on the node's host (see
//! `sandbox::remote`). leasehold keeps its own DAG: a step is submitted
//! once its dependencies succeeded, so a failure or a stop ends the rest
//! the same way on either executor.
//!
//! The node and the compute nodes share `shared_dir`: the runs (working,
//! output and `/tmp` directories), the environments and the staged copies
//! of the leased volumes live there. The node follows each job with
//! `scontrol`, reads its output from the shared directory into the run's
//! log, watches the directories' limits, and `scancel`s it on a stop (the
//! lessee's cancel, the lease's end or revocation), a timeout or a limit.

mod cli;
mod stage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use self::cli::{JobState, SlurmCli};
use super::step::{self, watch_limits, AbortOnDrop, Pumps};
use super::{failed, stopped, Executor, JobEnd, JobSpec, Plan, StepDirs, StepFuture, StepKind};
use crate::live::{LiveRun, Status, Stream};
use crate::now_ms;
use crate::sandbox::{Protection, Sandbox};

/// `[executor]` with `kind = "slurm"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// A directory the node and every compute node mount at this same path
    /// (NFS, Lustre): runs, environments and staged volumes live under
    /// `{shared_dir}/{org}/`.
    pub shared_dir: PathBuf,
    /// The partition jobs go to; unset, the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// The cluster's `slurm.conf`, when it is not the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_conf: Option<PathBuf>,
    /// Where `sbatch`, `scontrol`, `squeue` and `scancel` are.
    #[serde(default = "default_bin_dir")]
    pub bin_dir: PathBuf,
    /// How often a job's state and output are read.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
}

fn default_bin_dir() -> PathBuf {
    PathBuf::from("/usr/bin")
}

fn default_poll_interval_ms() -> u64 {
    250
}

/// How long Slurm may fail to say what became of a job (a restart of
/// `slurmctld`, say) before the node gives the job up and cancels it.
const MAX_SILENCE: Duration = Duration::from_secs(120);

/// A volume's copy, once made.
type Staged = Arc<tokio::sync::OnceCell<PathBuf>>;

#[derive(Debug)]
pub struct Slurm {
    cli: SlurmCli,
    cfg: SlurmConfig,
    /// Names this node's jobs on a cluster other nodes may share.
    prefix: String,
    /// Each volume's copy in the shared directory, by run and source.
    staged: Mutex<HashMap<(String, PathBuf), Staged>>,
    /// Runs whose staged data was removed: a copy still being made for one
    /// (by a step dropped halfway) is thrown away, not put in place.
    ended: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl Slurm {
    pub fn new(cfg: SlurmConfig, org: &str) -> Self {
        let cli = SlurmCli::new(&cfg.bin_dir, cfg.slurm_conf.clone());
        // `:` is in no org id: one org's prefix is never another's.
        let prefix = format!("lh:{org}:");
        Self { cli, prefix, cfg, staged: Mutex::default(), ended: Arc::default() }
    }

    /// Cancels the jobs a previous run of this node left on the cluster:
    /// their runs ended with it. Blocking.
    pub fn sweep(&self) -> std::io::Result<usize> {
        self.cli.cancel_named(&self.prefix)
    }

    fn shared_root(&self) -> &Path {
        &self.cfg.shared_dir
    }

    /// A volume's copy in the run's directory, made once per run.
    async fn stage(&self, run: &LiveRun, host: &Path) -> std::io::Result<PathBuf> {
        let run_id = run.record().id;
        let key = (run_id.clone(), host.to_path_buf());
        let cell = self.staged.lock().expect("staged lock").entry(key).or_default().clone();
        let (from, volumes, ended) = (host.to_path_buf(), run.dir().join("volumes"), self.ended.clone());
        let staged = cell
            .get_or_try_init(|| async move {
                let place = move |partial: &Path, to: &Path| {
                    let ended = ended.lock().expect("ended lock");
                    if ended.contains(&run_id) {
                        return Err(std::io::Error::other("the run has ended"));
                    }
                    leasehold_files::durable::rename(partial, to)
                };
                tokio::task::spawn_blocking(move || stage::copy_verified(&from, &volumes, place))
                    .await
                    .map_err(std::io::Error::other)?
            })
            .await?;
        Ok(staged.clone())
    }
}

impl Executor for Slurm {
    fn describe(&self) -> String {
        let partition = self.cfg.partition.as_deref().unwrap_or("the default partition");
        format!("slurm: each step a job on {partition}, sharing {}", self.cfg.shared_dir.display())
    }

    fn run_step<'a>(
        &'a self,
        plan: &'a Plan,
        job: &'a JobSpec,
        run: &'a Arc<LiveRun>,
        dirs: &'a StepDirs,
    ) -> StepFuture<'a> {
        Box::pin(self.run_slurm(plan, job, run, dirs))
    }

    fn protections(&self, sandbox: &Sandbox) -> Vec<Protection> {
        sandbox.remote_protections("Slurm")
    }

    fn work_root(&self) -> Option<PathBuf> {
        Some(self.shared_root().to_path_buf())
    }

    fn end_run(&self, run: &LiveRun) {
        let id = run.record().id;
        self.staged.lock().expect("staged lock").retain(|(r, _), _| *r != id);
        // Held while removing, so that no copy is put in place after it.
        let mut ended = self.ended.lock().expect("ended lock");
        ended.insert(id);
        stage::remove(&run.dir().join("volumes"));
        let _ = std::fs::remove_dir_all(run.dir().join("slurm"));
    }
}

impl Slurm {
    async fn run_slurm(&self, plan: &Plan, job: &JobSpec, run: &Arc<LiveRun>, dirs: &StepDirs) -> JobEnd {
        let (label, log_as, id) = step::names(job, run);
        if !dirs.work.starts_with(self.shared_root()) {
            let why =
                format!("the run's directory is not under executor.shared_dir ({})", self.shared_root().display());
            return failed(why);
        }
        let mut mounts = job.mounts.clone();
        for m in &mut mounts {
            match self.stage(run, &m.host).await {
                Ok(staged) => m.host = staged,
                Err(e) => return failed(format!("cannot stage volume {:?} in the shared directory: {e}", m.name)),
            }
        }
        let spec = dirs.command(&id, plan, job, &mounts);
        let (remote, guard) = match plan.sandbox.remote(&spec) {
            Ok(r) => r,
            Err(e) => return failed(format!("cannot start: {e}")),
        };
        let guard = Arc::new(guard);
        let files = match stage::step_files(&run.dir().join("slurm").join(&id), &remote) {
            Ok(f) => f,
            Err(e) => return failed(format!("cannot write the job's files to the shared directory: {e}")),
        };
        let limits = cli::Limits::of(plan, job, now_ms());
        let name = format!("{}{id}", self.prefix);
        let submitted = Instant::now();
        let slurm_id = match self.cli.submit(&name, self.cfg.partition.as_deref(), &limits, &files, &remote).await {
            Ok(id) => id,
            Err(e) => {
                // It may have been queued all the same.
                let _ = self.cli.cancel_named_exactly(&name).await;
                return failed(format!("Slurm refused the job: {e}"));
            }
        };
        // Dropped halfway (a stop while QC tests run drops them), the step
        // still cancels its job.
        let mut on_drop = CancelOnDrop { cli: &self.cli, slurm_id: Some(slurm_id.clone()) };
        let partition = self.cfg.partition.clone().unwrap_or_else(|| "the default partition".into());
        let line = format!("{label} submitted to Slurm as job {slurm_id} on {partition}: {}", step::command_line(job));
        run.log(log_as, Stream::Runner, &line);

        let (limit_tx, mut limit_rx) = mpsc::channel::<String>(4);
        let pumps = Pumps::new(plan, job, run, limit_tx.clone());
        let (done_tx, done_rx) = watch::channel(false);
        let poll = Duration::from_millis(self.cfg.poll_interval_ms.max(10));
        let pumping = [(&files.stdout, Stream::Stdout), (&files.stderr, Stream::Stderr)].map(|(path, stream)| {
            let (tx, rx) = tokio::io::duplex(64 << 10);
            tokio::spawn(stage::tail(path.clone(), tx, done_rx.clone(), poll));
            pumps.spawn(rx, stream)
        });
        let watcher = AbortOnDrop(tokio::spawn(watch_limits(guard.clone(), limit_tx)));
        let follow = Follow { cli: &self.cli, slurm_id: &slurm_id, poll, label: &label, log_as, submitted };
        let followed = follow.run(job, run, &mut limit_rx).await;
        watcher.0.abort();
        let end = match followed {
            Ok(state) => state.end(),
            Err(killed) => {
                self.cancel(&slurm_id, run, log_as).await;
                killed
            }
        };
        on_drop.slurm_id = None;
        let _ = done_tx.send(true);
        let mut end = step::conclude(end, guard, pumping.into_iter(), &mut limit_rx).await;
        end.stdout = pumps.kept();
        end
    }
}

impl Slurm {
    /// `scancel`, tried again for as long as Slurm may be silent.
    async fn cancel(&self, slurm_id: &str, run: &LiveRun, log_as: Option<usize>) {
        let since = Instant::now();
        while let Err(e) = self.cli.cancel(slurm_id).await {
            if since.elapsed() > MAX_SILENCE {
                run.log(log_as, Stream::Runner, &format!("scancel {slurm_id} failed: {e}"));
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

struct CancelOnDrop<'a> {
    cli: &'a SlurmCli,
    /// `None` once the step ended as it should.
    slurm_id: Option<String>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.slurm_id.take() {
            self.cli.cancel_detached(id);
        }
    }
}

/// One submitted job, followed until it ends or the node ends it.
struct Follow<'a> {
    cli: &'a SlurmCli,
    slurm_id: &'a str,
    poll: Duration,
    label: &'a str,
    log_as: Option<usize>,
    submitted: Instant,
}

impl Follow<'_> {
    /// How the job ended, or, if the node must end it, why.
    async fn run(
        &self,
        job: &JobSpec,
        run: &Arc<LiveRun>,
        limit_rx: &mut mpsc::Receiver<String>,
    ) -> Result<JobState, JobEnd> {
        let mut stop = run.stop_signal();
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The job's timeout counts from its start, as on the node's host;
        // its queue wait is bounded by the lease.
        let mut timeout_at: Option<tokio::time::Instant> = None;
        let mut heard = Instant::now();
        loop {
            let timeout = async {
                match timeout_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            // A stop, a limit or the timeout ends the job at once, even
            // while Slurm is slow to answer.
            let state = tokio::select! {
                s = stopped(&mut stop) => return Err(JobEnd { status: s.status(), ..failed(s.reason().into()) }),
                Some(why) = limit_rx.recv() => return Err(failed(format!("killed: {why}"))),
                () = timeout => return Err(failed(format!("timed out after {} s", job.timeout_ms / 1000))),
                state = async {
                    tick.tick().await;
                    self.cli.state(self.slurm_id).await
                } => state,
            };
            match state {
                Ok(JobState::Running { node, partition }) if timeout_at.is_none() => {
                    timeout_at = Some(tokio::time::Instant::now() + Duration::from_millis(job.timeout_ms));
                    self.started(job, run, &format!("partition {partition}, node {node}"));
                }
                Ok(s @ JobState::Ended { .. }) => {
                    if timeout_at.is_none() {
                        self.started(job, run, "a compute node");
                    }
                    return Ok(s);
                }
                Ok(_) => {}
                Err(e) if heard.elapsed() > MAX_SILENCE => {
                    let why = format!("lost track of Slurm job {}: {e}", self.slurm_id);
                    return Err(failed(why));
                }
                Err(_) => continue,
            }
            heard = Instant::now();
        }
    }

    /// `on` names where: `partition p, node n`.
    fn started(&self, job: &JobSpec, run: &LiveRun, on: &str) {
        let queued_ms = self.submitted.elapsed().as_millis();
        if job.kind == StepKind::Job {
            run.update_job(job.number, |j| {
                j.status = Status::Running;
                j.started_at_ms = Some(now_ms());
            });
            let placement = format!("Slurm job {} on {on}, {queued_ms} ms queued", self.slurm_id);
            run.update(|r| {
                r.placements.insert(job.number, placement);
            });
        }
        let line =
            format!("{} running as Slurm job {} on {on} after {queued_ms} ms in the queue", self.label, self.slurm_id);
        run.log(self.log_as, Stream::Runner, &line);
    }
}
