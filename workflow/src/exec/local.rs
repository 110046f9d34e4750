//! The local executor: each step a sandboxed process on this host, its
//! output pumped into the run's log, its limits watched from here.

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use super::step::{self, watch_limits, AbortOnDrop, Pumps};
use super::{failed, stopped, Executor, JobEnd, JobSpec, Plan, StepDirs, StepFuture, StepKind};
use crate::live::{LiveRun, Status, Stream};
use crate::now_ms;

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
    let (label, log_as, id) = step::names(job, run);
    let spec = dirs.command(&id, plan, job, &job.mounts);
    if job.kind == StepKind::Job {
        run.update_job(job.number, |j| {
            j.status = Status::Running;
            j.started_at_ms = Some(now_ms());
        });
    }
    run.log(log_as, Stream::Runner, &format!("{label} started: {}", step::command_line(job)));
    let (mut child, guard) = match plan.sandbox.spawn(&spec) {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start: {e}")),
    };
    let guard = Arc::new(guard);
    // Limits reached, from the watcher and the log pumps: the first one kills the job.
    let (limit_tx, mut limit_rx) = mpsc::channel::<String>(4);
    let pumps = Pumps::new(plan, job, run, limit_tx.clone());
    let pumping = [
        child.stdout.take().map(|o| pumps.spawn(o, Stream::Stdout)),
        child.stderr.take().map(|e| pumps.spawn(e, Stream::Stderr)),
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
    let mut end = step::conclude(end, guard, pumping.into_iter().flatten(), &mut limit_rx).await;
    end.stdout = pumps.kept();
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
