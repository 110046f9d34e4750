//! What every executor does around a step, wherever it runs: its names,
//! its output pumped into the run's log within the limits, and its
//! directories' limits watched from the node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

use super::{failed, JobEnd, JobSpec, Plan, StepKind, WATCH_INTERVAL_MS};
use crate::live::{LiveRun, Status, Stream, MAX_LINE_BYTES};
use crate::sandbox::Guard;
use crate::secrets::{Masker, SecretEnv};

/// A step's names: for the log (`job 2`), the job its lines belong to
/// (none for a test or a build), and an id unique on this node.
pub(super) fn names(job: &JobSpec, run: &LiveRun) -> (String, Option<usize>, String) {
    let run_id = run.record().id;
    match &job.kind {
        StepKind::Job => (format!("job {}", job.number), Some(job.number), format!("{run_id}-job{}", job.number)),
        StepKind::Test(name) => (format!("test {name:?}"), None, format!("{run_id}-test{}", job.number)),
        StepKind::Environment => ("the environment's build".into(), None, format!("{run_id}-env")),
    }
}

/// The first line of a step's command, and `…` if it has more.
pub(super) fn command_line(job: &JobSpec) -> String {
    let line = job.argv.join(" ");
    let first = line.lines().next().unwrap_or_default();
    let more = if line.contains('\n') { " …" } else { "" };
    format!("{first}{more}")
}

/// Checks the job's limits until one is reached, and reports it.
pub(super) async fn watch_limits(guard: Arc<Guard>, limit: mpsc::Sender<String>) {
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

/// The pumps of one step's output: stdout's and stderr's count against the
/// same job limit, and a test's stdout is also kept.
pub(super) struct Pumps {
    run: Arc<LiveRun>,
    job: Option<usize>,
    keep: Option<Arc<Mutex<Vec<u8>>>>,
    job_bytes: Arc<AtomicU64>,
    limits: (u64, u64),
    limit: mpsc::Sender<String>,
    secrets: SecretEnv,
}

impl Pumps {
    /// Limits reached are sent on `limit`.
    pub(super) fn new(plan: &Plan, job: &JobSpec, run: &Arc<LiveRun>, limit: mpsc::Sender<String>) -> Self {
        Self {
            run: run.clone(),
            job: (job.kind == StepKind::Job).then_some(job.number),
            keep: matches!(job.kind, StepKind::Test(_)).then(|| Arc::new(Mutex::new(Vec::new()))),
            job_bytes: Arc::new(AtomicU64::new(0)),
            limits: (plan.log_job_bytes, plan.log_run_bytes),
            limit,
            secrets: plan.secrets.clone(),
        }
    }

    /// Pumps `out` into the log as `stream`, on a task of its own.
    pub(super) fn spawn(
        &self,
        out: impl AsyncRead + Unpin + Send + 'static,
        stream: Stream,
    ) -> tokio::task::JoinHandle<()> {
        let p = Pump {
            run: self.run.clone(),
            job: self.job,
            keep: if stream == Stream::Stdout { self.keep.clone() } else { None },
            stream,
            job_bytes: self.job_bytes.clone(),
            limits: self.limits,
            limit: self.limit.clone(),
            masker: self.secrets.masker(),
        };
        tokio::spawn(pump(out, p))
    }

    /// A test's stdout, as far as it was kept.
    pub(super) fn kept(&self) -> Vec<u8> {
        self.keep.as_ref().map(|k| std::mem::take(&mut *k.lock().expect("stdout lock"))).unwrap_or_default()
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
    /// The run's secrets, which no line of the log shows.
    masker: Masker,
}

/// Copies a stream into the run's log a line at a time, splitting lines
/// longer than the limit rather than holding them whole. Past the job's or
/// the run's log limit it says so once, reports the limit and stops.
async fn pump(out: impl AsyncRead + Unpin, mut p: Pump) {
    let mut reader = BufReader::new(out);
    let mut buf = Vec::new();
    let mib = |b: u64| b >> 20;
    loop {
        buf.clear();
        match (&mut reader).take(MAX_LINE_BYTES as u64).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => {
                for part in p.masker.finish().chunks(MAX_LINE_BYTES) {
                    p.run.log(p.job, p.stream, &String::from_utf8_lossy(part));
                }
                return;
            }
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
                // What was held back comes out with this piece: the log
                // takes lines of at most `MAX_LINE_BYTES`.
                for part in p.masker.feed(&buf, buf.ends_with(b"\n")).chunks(MAX_LINE_BYTES) {
                    p.run.log(p.job, p.stream, &String::from_utf8_lossy(part));
                }
            }
        }
    }
}

pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// After a step's process is gone: the limit it reached just before it
/// ended is still its cause, nothing of it outlives it (the guard's
/// release), and its output is in the log.
pub(super) async fn conclude(
    end: JobEnd,
    guard: Arc<Guard>,
    pumps: impl Iterator<Item = tokio::task::JoinHandle<()>>,
    limit_rx: &mut mpsc::Receiver<String>,
) -> JobEnd {
    let after = tokio::task::spawn_blocking(move || {
        let breach = guard.breach();
        guard.release();
        breach
    });
    let breach = after.await.ok().flatten();
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    // A log limit a pump reported as the job ended still names the cause.
    let breach = breach.or_else(|| limit_rx.try_recv().ok());
    let killed_already = end.error.as_deref().is_some_and(|e| e.starts_with("killed:"));
    match breach {
        Some(why) if matches!(end.status, Status::Succeeded | Status::Failed) && !killed_already => {
            JobEnd { exit_code: end.exit_code, ..failed(format!("killed: {why}")) }
        }
        _ => end,
    }
}
