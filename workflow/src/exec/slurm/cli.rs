//! Slurm's own commands, run with a fixed environment: `sbatch` submits,
//! `scontrol` reports a job's state, `scancel` ends it, `squeue` lists.
//! Each is bounded in time; none is given anything of a workflow but the
//! paths of the files the node wrote.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::super::{failed, JobEnd, JobSpec, Plan};
use super::stage::StepFiles;
use crate::live::Status;
use crate::sandbox::RemoteStep;

/// How long one Slurm command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub(super) struct SlurmCli {
    bin_dir: PathBuf,
    slurm_conf: Option<PathBuf>,
}

/// What Slurm says of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JobState {
    Queued,
    Running {
        node: String,
        partition: String,
    },
    /// `state` as Slurm names it (`COMPLETED`, `FAILED`, `OUT_OF_MEMORY`…).
    Ended {
        state: String,
        exit_code: i32,
        signal: i32,
    },
}

impl JobState {
    /// The step's end, in the words the local executor uses.
    pub(super) fn end(&self) -> JobEnd {
        let Self::Ended { state, exit_code, signal } = self else {
            return failed("Slurm reported no end".into());
        };
        match state.as_str() {
            "COMPLETED" => JobEnd { status: Status::Succeeded, exit_code: Some(0), error: None, stdout: Vec::new() },
            "FAILED" if *signal != 0 => failed(format!("ended by signal {signal}")),
            "FAILED" => JobEnd { exit_code: Some(*exit_code), ..failed(format!("exit code {exit_code}")) },
            "OUT_OF_MEMORY" => failed("killed: memory limit reached (Slurm's job cgroup)".into()),
            "TIMEOUT" => failed("Slurm's time limit reached".into()),
            "DEADLINE" => failed("not started: its lease ends before the job could".into()),
            other => failed(format!("ended by Slurm: {}", other.to_lowercase())),
        }
    }
}

/// What a job may use on the cluster, from the node's limits and the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Limits {
    pub memory_mib: u64,
    pub cpus: u64,
    /// Slurm counts time limits in whole minutes.
    pub time_minutes: u64,
    /// The lease's end as Slurm reads it (UTC), when the time limit fits
    /// before it: Slurm then never starts the job past it.
    pub deadline: Option<String>,
}

impl Limits {
    pub(super) fn of(plan: &Plan, job: &JobSpec, now_ms: i64) -> Self {
        let limits = plan.sandbox.limits();
        let timeout_minutes = job.timeout_ms.div_ceil(60_000);
        let remaining_s = plan.deadline_ms.map(|d| (d - now_ms).max(0) as u64 / 1000);
        // Never past the lease's end, but never 0, which Slurm reads as none.
        let time_minutes = remaining_s.map_or(timeout_minutes, |r| timeout_minutes.min(r / 60)).max(1);
        let fits = remaining_s.is_some_and(|r| r >= time_minutes * 60);
        let deadline = plan.deadline_ms.filter(|_| fits).map(slurm_time);
        Self {
            memory_mib: limits.map_or(1024, |l| l.memory_mib),
            cpus: limits.map_or(1, |l| l.cpu_cores.ceil().max(1.0) as u64),
            time_minutes,
            deadline,
        }
    }
}

/// `2026-12-07T10:00:00`, UTC, as Slurm's commands read it with `TZ=UTC`.
fn slurm_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl SlurmCli {
    pub(super) fn new(bin_dir: &Path, slurm_conf: Option<PathBuf>) -> Self {
        Self { bin_dir: bin_dir.to_path_buf(), slurm_conf }
    }

    fn command(&self, tool: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.bin_dir.join(tool));
        // Slurm reads a deadline in the caller's zone; ours are UTC.
        cmd.env_clear().env("PATH", "/usr/bin:/bin").env("TZ", "UTC").stdin(Stdio::null()).kill_on_drop(true);
        if let Some(conf) = &self.slurm_conf {
            cmd.env("SLURM_CONF", conf);
        }
        cmd
    }

    /// Runs a command to its end and returns its stdout, or what it said.
    async fn output(&self, mut cmd: tokio::process::Command) -> std::io::Result<String> {
        let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
            .await
            .map_err(|_| std::io::Error::other(format!("no answer in {} s", COMMAND_TIMEOUT.as_secs())))??;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(std::io::Error::other(format!("{}: {said}", out.status)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Submits the step and returns Slurm's job id.
    pub(super) async fn submit(
        &self,
        name: &str,
        partition: Option<&str>,
        limits: &Limits,
        files: &StepFiles,
        step: &RemoteStep,
    ) -> std::io::Result<String> {
        let mut cmd = self.command("sbatch");
        // `ALL` of this command's environment, which is fixed (`command`):
        // `NONE` would have Slurm load the user's login environment.
        cmd.args(["--parsable", "--export=ALL", "--no-requeue", "--nodes=1", "--ntasks=1"]);
        cmd.arg(format!("--job-name={name}"));
        cmd.arg("--output").arg(&files.stdout).arg("--error").arg(&files.stderr);
        cmd.arg("--chdir").arg(&files.dir);
        cmd.arg(format!("--mem={}M", limits.memory_mib));
        cmd.arg(format!("--cpus-per-task={}", limits.cpus));
        cmd.arg(format!("--time={}", limits.time_minutes));
        if let Some(d) = &limits.deadline {
            // Slurm may then start it with less time, still ending by the deadline.
            cmd.args([format!("--deadline={d}"), "--time-min=1".into()]);
        }
        if let Some(p) = partition {
            cmd.arg(format!("--partition={p}"));
        }
        cmd.arg(&files.script).args(&step.tools).arg(&files.chain).arg(&files.filter);
        let out = self.output(cmd).await?;
        // `--parsable` prints `id` or `id;cluster`.
        let id = out.split(';').next().unwrap_or_default().trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(std::io::Error::other(format!("sbatch printed no job id: {out:?}")));
        }
        Ok(id.to_string())
    }

    pub(super) async fn state(&self, id: &str) -> std::io::Result<JobState> {
        let mut cmd = self.command("scontrol");
        cmd.args(["show", "job", "--oneliner", id]);
        parse_state(&self.output(cmd).await?)
    }

    pub(super) async fn cancel(&self, id: &str) -> std::io::Result<()> {
        let mut cmd = self.command("scancel");
        cmd.arg(id);
        self.output(cmd).await.map(|_| ())
    }

    /// Cancels this user's job named `name`, if Slurm queued it: after an
    /// `sbatch` that gave no answer. Step names are unique on a node.
    pub(super) async fn cancel_named_exactly(&self, name: &str) -> std::io::Result<()> {
        let mut cmd = self.command("scancel");
        cmd.args(["--me", &format!("--name={name}")]);
        self.output(cmd).await.map(|_| ())
    }

    /// As `cancel`, from a thread of its own: for a step dropped halfway,
    /// which can no longer wait.
    pub(super) fn cancel_detached(&self, id: String) {
        let cli = self.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                if let Err(e) = rt.block_on(cli.cancel(&id)) {
                    tracing::warn!("scancel {id} failed: {e}");
                }
            }
        });
    }

    /// Cancels every job whose name starts with `prefix`. Blocking.
    pub(super) fn cancel_named(&self, prefix: &str) -> std::io::Result<usize> {
        let run = |tool: &str, args: &[&str]| -> std::io::Result<String> {
            let mut cmd = std::process::Command::new(self.bin_dir.join(tool));
            cmd.env_clear().env("PATH", "/usr/bin:/bin").args(args).stdin(Stdio::null());
            if let Some(conf) = &self.slurm_conf {
                cmd.env("SLURM_CONF", conf);
            }
            let out = cmd.output()?;
            if !out.status.success() {
                return Err(std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let listed = run("squeue", &["--me", "--noheader", "--format=%i %j"])?;
        let ids: Vec<&str> = listed
            .lines()
            .filter_map(|l| l.trim().split_once(' '))
            .filter(|(_, name)| name.starts_with(prefix))
            .map(|(id, _)| id)
            .collect();
        if !ids.is_empty() {
            run("scancel", &ids)?;
        }
        Ok(ids.len())
    }
}

/// Reads `JobState=`, `ExitCode=` and `NodeList=` from `scontrol show job
/// --oneliner`.
fn parse_state(out: &str) -> std::io::Result<JobState> {
    let field = |key: &str| out.split_whitespace().find_map(|w| w.strip_prefix(key));
    let state = field("JobState=").ok_or_else(|| std::io::Error::other(format!("no JobState in {out:?}")))?;
    let node = field("NodeList=").filter(|n| *n != "(null)").unwrap_or("a compute node").to_string();
    let partition = field("Partition=").unwrap_or("its partition").to_string();
    let (exit_code, signal) = field("ExitCode=")
        .and_then(|c| c.split_once(':'))
        .map(|(c, s)| (c.parse().unwrap_or(-1), s.parse().unwrap_or(0)))
        .unwrap_or((-1, 0));
    Ok(match state {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" | "SUSPENDED" => {
            JobState::Queued
        }
        // Ending: its exit code is known once Slurm is done with it.
        "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" | "STOPPED" | "RESIZING" => {
            JobState::Running { node, partition }
        }
        other => JobState::Ended { state: other.to_string(), exit_code, signal },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_read_from_scontrol() {
        let running = "JobId=7 JobName=lh-org1-r1-job1 UserId=root(0) JobState=RUNNING Reason=None \
                       Partition=leasehold ExitCode=0:0 NodeList=lhnode BatchHost=lhnode";
        let want = JobState::Running { node: "lhnode".into(), partition: "leasehold".into() };
        assert_eq!(parse_state(running).unwrap(), want);
        let pending = "JobId=8 JobState=PENDING Reason=Resources ExitCode=0:0 NodeList=(null)";
        assert_eq!(parse_state(pending).unwrap(), JobState::Queued);
        let failed = parse_state("JobId=9 JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0").unwrap();
        assert_eq!(failed, JobState::Ended { state: "FAILED".into(), exit_code: 3, signal: 0 });
        assert_eq!(failed.end().exit_code, Some(3));
        assert_eq!(failed.end().error.as_deref(), Some("exit code 3"));
        let oom = parse_state("JobId=9 JobState=OUT_OF_MEMORY ExitCode=0:125").unwrap();
        assert!(oom.end().error.unwrap().starts_with("killed: memory limit"));
        assert!(parse_state("slurm_load_jobs error: Invalid job id specified").is_err());
    }

    #[test]
    fn deadlines_are_slurm_times_in_utc() {
        assert_eq!(slurm_time(0), "1970-01-01T00:00:00");
        assert_eq!(slurm_time(1_796_602_309_123), "2026-12-07T00:11:49");
        assert_eq!(slurm_time(951_782_400_000), "2000-02-29T00:00:00");
    }
}
