//! The local executor: each step a sandboxed process on this host, its
//! output pumped into the run's log, its limits watched from here.

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

use super::{failed, stopped, Executor, JobEnd, JobSpec, Plan, StepDirs, StepFuture, StepKind, WATCH_INTERVAL_MS};
use crate::live::{LiveRun, Status, Stream, MAX_LINE_BYTES};
use crate::now_ms;
use crate::sandbox::{Guard, JobCommand};

/// Runs every step on this host, in the plan's sandbox.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Executor for Local {
    fn describe(&self) -> String {
        "local: each step on this host".into()
    }

    fn run_step<'a>(
        &'a self,
        plan: &'a Plan,
        job: &'a JobSpec,
        run: &'a Arc<LiveRun>,
        dirs: &'a StepDirs,
    ) -> StepFuture<'a> {
        Box::pin(run_local(plan, job, run, dirs))
    }
}

/// Runs one sandboxed process to its end on this host: a job, a test or a build.
async fn run_local(plan: &Plan, job: &JobSpec, run: &Arc<LiveRun>, dirs: &StepDirs) -> JobEnd {
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
                    let room = crate::qc::MAX_TEST_STDOUT_BYTES.saturating_sub(kept.len());
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
