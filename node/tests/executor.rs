//! The local executor with real processes under real bubblewrap: ordering,
//! parallelism, failure, timeout, cancellation, and what the sandbox lets a
//! job do. No ledger is involved; the runner's ledger side is tested with
//! three real nodes in the workspace's `tests/workflow.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leasehold_node::workflow::exec::{execute, JobSpec, Plan};
use leasehold_node::workflow::live::{JobRecord, LiveRun, RunRecord, Status, Stop, Stream};
use leasehold_node::workflow::sandbox::{Mount, Sandbox};

fn sandbox() -> Sandbox {
    Sandbox::detect().expect("bubblewrap must be installed and able to create namespaces (apt install bubblewrap)")
}

fn sh(number: usize, script: &str, deps: &[usize]) -> JobSpec {
    JobSpec {
        number,
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: BTreeMap::new(),
        mounts: Vec::new(),
        deps: deps.to_vec(),
        timeout_ms: 60_000,
    }
}

fn live(dir: &Path, jobs: &[JobSpec]) -> Arc<LiveRun> {
    let jobs = jobs.iter().map(|j| JobRecord::queued(j.number, j.argv.join(" "), j.deps.clone())).collect();
    let record = RunRecord {
        id: "run-test".into(),
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
    };
    LiveRun::create(&dir.join("run"), record).unwrap()
}

fn plan(jobs: Vec<JobSpec>, max_parallel: usize) -> Plan {
    Plan { jobs, max_parallel, sandbox: sandbox(), output_path: "/output".into() }
}

async fn run(jobs: Vec<JobSpec>, max_parallel: usize) -> (Status, Option<String>, Arc<LiveRun>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let live = live(dir.path(), &jobs);
    let (status, reason) = execute(&plan(jobs, max_parallel), &live).await;
    (status, reason, live, dir)
}

fn job(live: &LiveRun, n: usize) -> JobRecord {
    live.record().jobs.into_iter().find(|j| j.number == n).unwrap()
}

fn output(live: &LiveRun, n: usize, stream: Stream) -> Vec<String> {
    live.lines_from(0).into_iter().filter(|l| l.job == Some(n) && l.stream == stream).map(|l| l.text).collect()
}

fn span(j: &JobRecord) -> (i64, i64) {
    (j.started_at_ms.unwrap(), j.finished_at_ms.unwrap())
}

#[tokio::test]
async fn independent_jobs_run_in_parallel_up_to_the_limit_and_dependents_wait() {
    let jobs = || vec![sh(1, "sleep 1", &[]), sh(2, "sleep 1", &[]), sh(3, "echo after", &[1, 2])];
    let (status, _, live, _d) = run(jobs(), 2).await;
    assert_eq!(status, Status::Succeeded);
    let (a, b, c) = (span(&job(&live, 1)), span(&job(&live, 2)), span(&job(&live, 3)));
    assert!(a.0 < b.1 && b.0 < a.1, "jobs 1 and 2 overlapped: {a:?} {b:?}");
    assert!(c.0 >= a.1 && c.0 >= b.1, "job 3 started after both: {c:?}");
    assert_eq!(output(&live, 3, Stream::Stdout), ["after"]);

    let (status, _, live, _d) = run(jobs(), 1).await;
    assert_eq!(status, Status::Succeeded);
    let (a, b) = (span(&job(&live, 1)), span(&job(&live, 2)));
    assert!(a.1 <= b.0 || b.1 <= a.0, "with a limit of 1 they did not overlap: {a:?} {b:?}");
}

#[tokio::test]
async fn a_failure_stops_the_jobs_that_depend_on_it_and_no_others() {
    let jobs = vec![
        sh(1, "echo oops >&2; exit 3", &[]),
        sh(2, "echo never", &[1]),
        sh(3, "echo never either", &[2]),
        sh(4, "echo independent", &[]),
    ];
    let (status, reason, live, _d) = run(jobs, 2).await;
    assert_eq!(status, Status::Failed);
    assert_eq!(reason.as_deref(), Some("job 1 failed: exit code 3"));
    let j1 = job(&live, 1);
    assert_eq!((j1.status, j1.exit_code), (Status::Failed, Some(3)));
    assert_eq!(output(&live, 1, Stream::Stderr), ["oops"]);
    for (n, dep) in [(2, 1), (3, 2)] {
        let j = job(&live, n);
        assert_eq!(j.status, Status::Cancelled);
        assert_eq!(j.error, Some(format!("not started: job {dep} did not succeed")));
        assert!(j.started_at_ms.is_none() && output(&live, n, Stream::Stdout).is_empty());
    }
    assert_eq!(job(&live, 4).status, Status::Succeeded);
}

#[tokio::test]
async fn a_job_past_its_timeout_is_killed_with_its_children() {
    let mut slow = sh(1, "sleep 30 & sleep 30; echo unreachable", &[]);
    slow.timeout_ms = 1_000;
    let t = Instant::now();
    let (status, reason, live, _d) = run(vec![slow, sh(2, "echo never", &[1])], 2).await;
    assert!(t.elapsed() < Duration::from_secs(5), "killed promptly, took {:?}", t.elapsed());
    assert_eq!(status, Status::Failed);
    assert_eq!(reason.as_deref(), Some("job 1 failed: timed out after 1 s"));
    assert_eq!(job(&live, 2).status, Status::Cancelled);
    assert!(output(&live, 1, Stream::Stdout).is_empty());
}

#[tokio::test]
async fn cancel_kills_running_jobs_within_a_second_and_ends_queued_ones() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = vec![sh(1, "sleep 30", &[]), sh(2, "echo never", &[1])];
    let live = live(dir.path(), &jobs);
    let p = plan(jobs, 2);
    let exec = tokio::spawn({
        let live = live.clone();
        async move { execute(&p, &live).await }
    });
    while job(&live, 1).status != Status::Running {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    live.stop(Stop::Cancelled("cancelled by tester".into()));
    let (status, reason) = exec.await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "took {:?}", t.elapsed());
    assert_eq!((status, reason.as_deref()), (Status::Cancelled, Some("cancelled by tester")));
    assert_eq!(job(&live, 1).status, Status::Cancelled);
    assert_eq!(job(&live, 2).status, Status::Cancelled);
    assert!(job(&live, 2).started_at_ms.is_none());
}

/// One job with the given volume mounted at /data/v; returns its record and stdout+stderr.
async fn sandboxed(script: &str, volume: &Path) -> (JobRecord, Vec<String>, Arc<LiveRun>, tempfile::TempDir) {
    let mut j = sh(1, script, &[]);
    j.mounts = vec![Mount { name: "v".into(), host: volume.to_path_buf(), path: "/data/v".into() }];
    let (_, _, live, dir) = run(vec![j], 1).await;
    let mut lines = output(&live, 1, Stream::Stdout);
    lines.extend(output(&live, 1, Stream::Stderr));
    (job(&live, 1), lines, live, dir)
}

#[tokio::test]
async fn the_sandbox_reads_volumes_and_writes_only_to_its_own_directories() {
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("in.txt"), "leased bytes\n").unwrap();
    let script =
        "cat /data/v/in.txt; cp /data/v/in.txt $OUTPUT_DIR/out.txt && echo home=$HOME > note && echo $VOLUME_V";
    let (j, lines, live, _d) = sandboxed(script, vol.path()).await;
    assert_eq!(j.status, Status::Succeeded, "{lines:?}");
    assert_eq!(lines, ["leased bytes", "/data/v"]);
    assert_eq!(std::fs::read_to_string(live.output_dir().join("out.txt")).unwrap(), "leased bytes\n");
    assert_eq!(std::fs::read_to_string(live.work_dir().join("note")).unwrap(), "home=/job\n");

    let (j, lines, _, _d) = sandboxed("echo tampered > /data/v/in.txt", vol.path()).await;
    assert_eq!(j.status, Status::Failed);
    assert!(lines.iter().any(|l| l.contains("Read-only file system")), "{lines:?}");
    let (j, _, _, _d) = sandboxed("touch /data/v/new.txt", vol.path()).await;
    assert_eq!(j.status, Status::Failed);
    assert_eq!(std::fs::read_to_string(vol.path().join("in.txt")).unwrap(), "leased bytes\n");
    assert!(!vol.path().join("new.txt").exists());

    // /tmp is private: nothing a job writes there reaches the host's /tmp.
    let marker = format!("leasehold-sandbox-{}", std::process::id());
    let (j, _, _, _d) = sandboxed(&format!("echo x > /tmp/{marker} && test -f /tmp/{marker}"), vol.path()).await;
    assert_eq!(j.status, Status::Succeeded);
    assert!(!Path::new("/tmp").join(&marker).exists());
}

#[tokio::test]
async fn the_sandbox_has_no_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let vol = tempfile::tempdir().unwrap();
    let probe = format!(
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')\""
    );
    // The same probe reaches the listener from outside the sandbox...
    let out = std::process::Command::new("/bin/sh").args(["-c", &probe]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "connected");
    // ...and not from inside.
    let (j, lines, _, _d) = sandboxed(&probe, vol.path()).await;
    assert_eq!(j.status, Status::Failed, "{lines:?}");
    assert!(!lines.iter().any(|l| l == "connected"));
    let (j, _, _, _d) =
        sandboxed("python3 -c \"import socket; socket.getaddrinfo('example.com', 80)\"", vol.path()).await;
    assert_eq!(j.status, Status::Failed, "no DNS either");
}

#[tokio::test]
async fn the_sandbox_cannot_read_the_nodes_keys_or_data_dir() {
    // A stand-in node dir on the host, with a secret key and a ledger file.
    let node_dir = tempfile::tempdir().unwrap();
    let keys = node_dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("signing.key"), "5ec2e7-key-material").unwrap();
    std::fs::write(node_dir.path().join("ledger.sst"), "5ec2e7-ledger").unwrap();
    let vol = tempfile::tempdir().unwrap();
    let script = format!(
        "cat {k}/signing.key; cat {d}/ledger.sst; ls {d}; cat /root/.ssh/* /etc/shadow 2>&1; ls /home",
        k = keys.display(),
        d = node_dir.path().display()
    );
    let (j, lines, live, _d) = sandboxed(&script, vol.path()).await;
    assert_eq!(j.status, Status::Failed);
    assert!(!lines.iter().any(|l| l.contains("5ec2e7")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("No such file or directory")), "{lines:?}");
    // Nor the run's own record and log, which live beside its work dir.
    let (j, lines, _, _d) = sandboxed("ls ..; cat ../run.json", vol.path()).await;
    assert_eq!(j.status, Status::Failed);
    assert!(!lines.iter().any(|l| l.contains("run-test")), "{lines:?}");
    drop(live);
}

#[tokio::test]
async fn unsandboxed_mode_runs_on_the_host_and_finds_volumes_by_name() {
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("in.txt"), "host copy\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut j = sh(1, "cat $VOLUME_V/in.txt; echo $HOME", &[]);
    j.mounts = vec![Mount { name: "v".into(), host: vol.path().to_path_buf(), path: "/data/v".into() }];
    let live = live(dir.path(), std::slice::from_ref(&j));
    let p = Plan { jobs: vec![j], max_parallel: 1, sandbox: Sandbox::Unsandboxed, output_path: "/output".into() };
    assert_eq!(execute(&p, &live).await.0, Status::Succeeded);
    let home = live.work_dir().display().to_string();
    assert_eq!(output(&live, 1, Stream::Stdout), ["host copy".to_string(), home]);
    assert!(Sandbox::Unsandboxed.describe().starts_with("NONE"), "the record says it plainly");
}
