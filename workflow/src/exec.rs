//! The local executor: runs a plan's jobs in dependency order, independent
//! jobs in parallel up to a limit, each in the sandbox, with its output
//! captured line by line into the run's log. A failed job stops the jobs
//! that depend on it; a stop (cancel, lease expiry or revocation) kills
//! every running job at once and ends the queued ones.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::live::{LiveRun, Status, Stop, Stream, MAX_LINE_BYTES};
use super::sandbox::{Guard, JobCommand, Mount, Sandbox};
use crate::now_ms;

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
    pub sandbox: Sandbox,
    pub output_path: String,
    /// The working directory's path inside the sandbox (`workdir`).
    pub home: String,
    /// The run's Python environment on the host, if it has one.
    pub python_env: Option<PathBuf>,
    /// Output a job, and all of a run's jobs, may log; past either the job
    /// is killed and the rest of its output dropped.
    pub log_job_bytes: u64,
    pub log_run_bytes: u64,
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

/// Runs one sandboxed process to its end: a job, a test or a build.
pub async fn run_step(plan: &Plan, job: &JobSpec, run: &Arc<LiveRun>, dirs: &StepDirs) -> JobEnd {
    let (label, log_as) = match &job.kind {
        StepKind::Job => (format!("job {}", job.number), Some(job.number)),
        StepKind::Test(name) => (format!("test {name:?}"), None),
        StepKind::Environment => ("the environment's build".to_string(), None),
    };
    let id = match &job.kind {
        StepKind::Job => format!("{}-job{}", run.record().id, job.number),
        StepKind::Test(_) => format!("{}-test{}", run.record().id, job.number),
        StepKind::Environment => format!("{}-env", run.record().id),
    };
    let spec = JobCommand {
        id: &id,
        argv: &job.argv,
        env: &job.env,
        mounts: &job.mounts,
        work_dir: &dirs.work,
        home: &plan.home,
        output_dir: &dirs.output,
        output_path: &dirs.output_path,
        tmp_dir: &dirs.tmp,
        python_env: plan.python_env.as_deref().filter(|_| job.kind != StepKind::Environment),
        network: job.kind == StepKind::Environment,
    };
    if job.kind == StepKind::Job {
        run.update_job(job.number, |j| {
            j.status = Status::Running;
            j.started_at_ms = Some(now_ms());
        });
    }
    let line = job.argv.join(" ");
    let first_line = line.lines().next().unwrap_or_default();
    let more = if line.contains('\n') { " …" } else { "" };
    run.log(log_as, Stream::Runner, &format!("{label} started: {first_line}{more}"));
    let (mut child, guard) = match plan.sandbox.spawn(&spec) {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start: {e}")),
    };
    let guard = Arc::new(guard);
    // Limits reached, from the watcher and the log pumps: the first one kills the job.
    let (limit_tx, mut limit_rx) = mpsc::channel::<String>(4);
    let job_bytes = Arc::new(AtomicU64::new(0));
    let stdout = matches!(job.kind, StepKind::Test(_)).then(|| Arc::new(Mutex::new(Vec::new())));
    let pump_to = |stream| Pump {
        run: run.clone(),
        job: log_as,
        keep: if stream == Stream::Stdout { stdout.clone() } else { None },
        stream,
        job_bytes: job_bytes.clone(),
        limits: (plan.log_job_bytes, plan.log_run_bytes),
        limit: limit_tx.clone(),
    };
    let pumps = [
        child.stdout.take().map(|o| tokio::spawn(pump(o, pump_to(Stream::Stdout)))),
        child.stderr.take().map(|e| tokio::spawn(pump(e, pump_to(Stream::Stderr)))),
    ];
    // Aborted however this ends: a stop may drop this future halfway, and
    // the watcher holds the guard, which cleans up only once dropped.
    let watcher = AbortOnDrop(tokio::spawn(watch_limits(guard.clone(), limit_tx)));
    let pid = child.id();
    let mut stop = run.stop_signal();
    let exited = tokio::select! {
        r = child.wait() => Ok(r),
        _ = tokio::time::sleep(Duration::from_millis(job.timeout_ms)) => {
            Err(failed(format!("timed out after {} s", job.timeout_ms / 1000)))
        }
        s = stopped(&mut stop) => Err(JobEnd { status: s.status(), ..failed(s.reason().into()) }),
        Some(why) = limit_rx.recv() => Err(failed(format!("killed: {why}"))),
    };
    watcher.0.abort();
    let end = match exited {
        Ok(Ok(s)) => ended(s),
        Ok(Err(e)) => failed(e.to_string()),
        Err(killed) => {
            // Not yet reaped, so the group id is still ours: kill the whole
            // group, so that a shell's children die with it.
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            killed
        }
    };
    let _ = child.wait().await;
    // A limit reached just before the job ended is still its cause; then
    // nothing of the job may outlive it.
    let after = tokio::task::spawn_blocking(move || {
        let breach = guard.breach();
        guard.release();
        breach
    });
    let breach = after.await.ok().flatten();
    for p in pumps.into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    // A log limit a pump reported as the job ended still names the cause.
    let breach = breach.or_else(|| limit_rx.try_recv().ok());
    let killed_already = end.error.as_deref().is_some_and(|e| e.starts_with("killed:"));
    let mut end = match breach {
        Some(why) if matches!(end.status, Status::Succeeded | Status::Failed) && !killed_already => {
            JobEnd { exit_code: end.exit_code, ..failed(format!("killed: {why}")) }
        }
        _ => end,
    };
    if let Some(out) = stdout {
        end.stdout = std::mem::take(&mut *out.lock().expect("stdout lock"));
    }
    end
}

fn ended(s: std::process::ExitStatus) -> JobEnd {
    match (s.code(), s.signal()) {
        (Some(0), _) => JobEnd { status: Status::Succeeded, exit_code: Some(0), error: None, stdout: Vec::new() },
        (Some(c), _) => JobEnd { exit_code: Some(c), ..failed(format!("exit code {c}")) },
        // The guard then names the limit the file reached.
        (None, Some(sig)) if sig == Signal::SIGXFSZ as i32 => {
            failed("ended by SIGXFSZ: a file reached the size limit".into())
        }
        _ => failed(format!("ended by {s}")),
    }
}

/// Checks the job's limits until one is reached, and reports it.
async fn watch_limits(guard: Arc<Guard>, limit: mpsc::Sender<String>) {
    let mut tick = tokio::time::interval(Duration::from_millis(WATCH_INTERVAL_MS));
    loop {
        tick.tick().await;
        let g = guard.clone();
        if let Ok(Some(why)) = tokio::task::spawn_blocking(move || g.breach()).await {
            let _ = limit.send(why).await;
            return;
        }
    }
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

struct Pump {
    run: Arc<LiveRun>,
    /// The job the lines belong to; `None` for a test's or a build's.
    job: Option<usize>,
    /// Where a test's stdout is also kept, up to `MAX_TEST_STDOUT_BYTES`.
    keep: Option<Arc<Mutex<Vec<u8>>>>,
    stream: Stream,
    /// Shared by the job's stdout and stderr.
    job_bytes: Arc<AtomicU64>,
    /// (per job, per run)
    limits: (u64, u64),
    limit: mpsc::Sender<String>,
}

/// Copies a stream into the run's log a line at a time, splitting lines
/// longer than the limit rather than holding them whole. Past the job's or
/// the run's log limit it says so once, reports the limit and stops.
async fn pump(out: impl AsyncRead + Unpin, p: Pump) {
    let mut reader = BufReader::new(out);
    let mut buf = Vec::new();
    let mib = |b: u64| b >> 20;
    loop {
        buf.clear();
        match (&mut reader).take(MAX_LINE_BYTES as u64).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let job_total = p.job_bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                let run_total = p.run.add_output_bytes(n as u64);
                let over = if job_total > p.limits.0 {
                    Some(format!("log limit {} MiB per job reached", mib(p.limits.0)))
                } else if run_total > p.limits.1 {
                    Some(format!("log limit {} MiB per run reached", mib(p.limits.1)))
                } else {
                    None
                };
                if let Some(why) = over {
                    let whose = p.job.map_or("the rest of the".into(), |n| format!("the rest of job {n}'s"));
                    p.run.log(p.job, Stream::Runner, &format!("{why}: {whose} output is dropped"));
                    let _ = p.limit.send(why).await;
                    return;
                }
                if let Some(keep) = &p.keep {
                    let mut kept = keep.lock().expect("stdout lock");
                    let room = super::qc::MAX_TEST_STDOUT_BYTES.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..buf.len().min(room)]);
                }
                p.run.log(p.job, p.stream, &String::from_utf8_lossy(&buf));
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
