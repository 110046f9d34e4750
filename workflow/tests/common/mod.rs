//! Helpers for the executor and hostile-job tests: one job or a few, run by
//! the real executor under the real sandbox, with no ledger.
#![allow(dead_code)]

pub mod attacks;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use leasehold_workflow::exec::{execute, Executor, JobSpec, Local, Plan};
use leasehold_workflow::live::{JobRecord, LiveRun, RunRecord, Status, Stream};
use leasehold_workflow::sandbox::JobLimits;
use leasehold_workflow::sandbox::{Mount, Sandbox};

/// The executor every job of this test binary runs through, and the
/// directory it shares with the machines that run them; unset, `Local`.
static EXECUTOR: OnceLock<(Arc<dyn Executor>, PathBuf)> = OnceLock::new();

/// Runs this binary's jobs through `executor`, their runs under `shared`.
pub fn use_executor(executor: Arc<dyn Executor>, shared: &Path) {
    assert!(EXECUTOR.set((executor, shared.to_path_buf())).is_ok(), "one executor per test binary");
}

fn executor() -> Arc<dyn Executor> {
    EXECUTOR.get().map_or_else(|| Arc::new(Local) as Arc<dyn Executor>, |(e, _)| e.clone())
}

/// A directory for a run: under the shared directory when a cluster runs
/// the jobs, else in the system's temporary directory.
fn run_parent() -> tempfile::TempDir {
    match EXECUTOR.get() {
        Some((_, shared)) => tempfile::tempdir_in(shared).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

/// A directory on the host that is not under `/tmp` (which a job never
/// shares, so a marker there proves nothing), and that a run may live in.
pub fn host_dir() -> tempfile::TempDir {
    match EXECUTOR.get() {
        Some((_, shared)) => tempfile::tempdir_in(shared).unwrap(),
        None => tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
    }
}

/// Small limits, so that each can be reached quickly.
pub fn small_limits() -> JobLimits {
    JobLimits {
        memory_mib: 128,
        processes: 64,
        cpu_cores: 1.0,
        tmp_mib: 16,
        disk_mib: 32,
        log_job_mib: 1,
        log_run_mib: 4,
        ..JobLimits::default()
    }
}

/// The full sandbox, or `None` with a message saying why these tests are
/// skipped: they need root for cgroups (and CI runs as root).
pub fn sandbox() -> Option<Sandbox> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the sandbox's cgroups and uid drop need root; run the tests as root");
        return None;
    }
    Some(Sandbox::detect("test", &small_limits()).expect("bubblewrap, setpriv and cgroups must work here as root"))
}

pub fn sh(number: usize, script: &str, deps: &[usize]) -> JobSpec {
    JobSpec {
        number,
        kind: leasehold_workflow::exec::StepKind::Job,
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: BTreeMap::new(),
        mounts: Vec::new(),
        deps: deps.to_vec(),
        timeout_ms: 60_000,
    }
}

pub fn live(dir: &Path, jobs: &[JobSpec]) -> Arc<LiveRun> {
    let jobs = jobs.iter().map(|j| JobRecord::queued(j.number, j.argv.join(" "), j.deps.clone())).collect();
    let id = format!("run-test-{}", dir.file_name().unwrap().to_string_lossy().replace('.', ""));
    let record = RunRecord {
        id,
        name: "test".into(),
        org: "org1".into(),
        submitted_by: "tester".into(),
        status: Status::Running,
        reason: None,
        sandbox: String::new(),
        workflow_hash: String::new(),
        leases: vec![],
        inputs: vec![],
        jobs,
        created_at_ms: 0,
        finished_at_ms: None,
        output_hash: None,
        start_tx: None,
        finish_tx: None,
        published_as: None,
        protections: vec![],
        environment: None,
        reuse_key: None,
        reused_from: None,
        executor: None,
        release: None,
        placements: Default::default(),
    };
    LiveRun::create(&dir.join("run"), record).unwrap()
}

pub fn plan(sandbox: Sandbox, jobs: Vec<JobSpec>, max_parallel: usize) -> Plan {
    let l = small_limits();
    Plan {
        jobs,
        max_parallel,
        sandbox,
        executor: executor(),
        output_path: "/output".into(),
        home: leasehold_workflow::DEFAULT_WORKDIR.into(),
        python_env: None,
        deadline_ms: None,
        log_job_bytes: l.log_job_mib << 20,
        log_run_bytes: l.log_run_mib << 20,
        secrets: Default::default(),
    }
}

pub struct Ran {
    pub status: Status,
    pub reason: Option<String>,
    pub live: Arc<LiveRun>,
    pub dir: tempfile::TempDir,
}

pub async fn run(sandbox: Sandbox, jobs: Vec<JobSpec>, max_parallel: usize) -> Ran {
    run_in(leasehold_workflow::DEFAULT_WORKDIR, sandbox, jobs, max_parallel).await
}

/// Like `run`, with the working directory at `home` in the sandbox.
pub async fn run_in(home: &str, sandbox: Sandbox, jobs: Vec<JobSpec>, max_parallel: usize) -> Ran {
    let dir = run_parent();
    let live = live(dir.path(), &jobs);
    let mounts: Vec<&str> = jobs.iter().flat_map(|j| j.mounts.iter().map(|m| m.path.as_str())).collect();
    sandbox.prepare_workdir(&live.work_dir(), home, &mounts).expect("the working directory takes the mounts");
    let plan = Plan { home: home.into(), ..plan(sandbox, jobs, max_parallel) };
    let (status, reason) = execute(&plan, &live).await;
    Ran { status, reason, live, dir }
}

pub fn job(live: &LiveRun, n: usize) -> JobRecord {
    live.record().jobs.into_iter().find(|j| j.number == n).unwrap()
}

pub fn output(live: &LiveRun, n: usize, stream: Stream) -> Vec<String> {
    live.lines_from(0).into_iter().filter(|l| l.job == Some(n) && l.stream == stream).map(|l| l.text).collect()
}

/// stdout then stderr of job `n`.
pub fn all_output(live: &LiveRun, n: usize) -> Vec<String> {
    let mut lines = output(live, n, Stream::Stdout);
    lines.extend(output(live, n, Stream::Stderr));
    lines
}

/// A directory the job's uid may read once mounted, as a lessee's cache is.
pub fn volume_dir() -> tempfile::TempDir {
    let vol = tempfile::tempdir().unwrap();
    std::fs::set_permissions(vol.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    vol
}

/// One job with `volume` mounted at /data/v; returns its record and output.
pub async fn sandboxed(sandbox: Sandbox, script: &str, volume: &Path) -> (JobRecord, Vec<String>, Ran) {
    let mut j = sh(1, script, &[]);
    j.mounts = vec![Mount { name: "v".into(), host: volume.to_path_buf(), path: "/data/v".into() }];
    let ran = run(sandbox, vec![j], 1).await;
    (job(&ran.live, 1), all_output(&ran.live, 1), ran)
}
