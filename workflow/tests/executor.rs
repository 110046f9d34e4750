//! The local executor with real processes under real bubblewrap: ordering,
//! parallelism, failure, timeout, cancellation, and what the sandbox lets a
//! well-behaved job do. Hostile jobs are in `hostile.rs`. No ledger is
//! involved; the runner's ledger side is tested with three real nodes in
//! the workspace's `tests/workflow.rs`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use leasehold_workflow::exec::execute;
use leasehold_workflow::live::{JobRecord, Status, Stop, Stream};
use leasehold_workflow::sandbox::{Mount, Sandbox};

fn span(j: &JobRecord) -> (i64, i64) {
    (j.started_at_ms.unwrap(), j.finished_at_ms.unwrap())
}

#[tokio::test]
async fn independent_jobs_run_in_parallel_up_to_the_limit_and_dependents_wait() {
    let Some(sb) = sandbox() else { return };
    let jobs = || vec![sh(1, "sleep 1", &[]), sh(2, "sleep 1", &[]), sh(3, "echo after", &[1, 2])];
    let r = run(sb.clone(), jobs(), 2).await;
    assert_eq!(r.status, Status::Succeeded, "{:?}", r.reason);
    let (a, b, c) = (span(&job(&r.live, 1)), span(&job(&r.live, 2)), span(&job(&r.live, 3)));
    assert!(a.0 < b.1 && b.0 < a.1, "jobs 1 and 2 overlapped: {a:?} {b:?}");
    assert!(c.0 >= a.1 && c.0 >= b.1, "job 3 started after both: {c:?}");
    assert_eq!(output(&r.live, 3, Stream::Stdout), ["after"]);

    let r = run(sb, jobs(), 1).await;
    assert_eq!(r.status, Status::Succeeded);
    let (a, b) = (span(&job(&r.live, 1)), span(&job(&r.live, 2)));
    assert!(a.1 <= b.0 || b.1 <= a.0, "with a limit of 1 they did not overlap: {a:?} {b:?}");
}

#[tokio::test]
async fn a_failure_stops_the_jobs_that_depend_on_it_and_no_others() {
    let Some(sb) = sandbox() else { return };
    let jobs = vec![
        sh(1, "echo oops >&2; exit 3", &[]),
        sh(2, "echo never", &[1]),
        sh(3, "echo never either", &[2]),
        sh(4, "echo independent", &[]),
    ];
    let r = run(sb, jobs, 2).await;
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.reason.as_deref(), Some("job 1 failed: exit code 3"));
    let j1 = job(&r.live, 1);
    assert_eq!((j1.status, j1.exit_code), (Status::Failed, Some(3)));
    assert_eq!(output(&r.live, 1, Stream::Stderr), ["oops"]);
    for (n, dep) in [(2, 1), (3, 2)] {
        let j = job(&r.live, n);
        assert_eq!(j.status, Status::Cancelled);
        assert_eq!(j.error, Some(format!("not started: job {dep} did not succeed")));
        assert!(j.started_at_ms.is_none() && output(&r.live, n, Stream::Stdout).is_empty());
    }
    assert_eq!(job(&r.live, 4).status, Status::Succeeded);
}

#[tokio::test]
async fn a_job_past_its_timeout_is_killed_with_its_children() {
    let Some(sb) = sandbox() else { return };
    let mut slow = sh(1, "sleep 30 & sleep 30; echo unreachable", &[]);
    slow.timeout_ms = 1_000;
    let r = run(sb, vec![slow, sh(2, "echo never", &[1])], 2).await;
    let (started, killed) = span(&job(&r.live, 1));
    assert!((1_000..3_000).contains(&(killed - started)), "killed {} ms after it started", killed - started);
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.reason.as_deref(), Some("job 1 failed: timed out after 1 s"));
    assert_eq!(job(&r.live, 2).status, Status::Cancelled);
    assert!(output(&r.live, 1, Stream::Stdout).is_empty());
}

#[tokio::test]
async fn cancel_kills_running_jobs_within_a_second_and_ends_queued_ones() {
    let Some(sb) = sandbox() else { return };
    let dir = tempfile::tempdir().unwrap();
    let jobs = vec![sh(1, "sleep 30", &[]), sh(2, "echo never", &[1])];
    let live = live(dir.path(), &jobs);
    let p = plan(sb, jobs, 2);
    let exec = tokio::spawn({
        let live = live.clone();
        async move { execute(&p, &live).await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while job(&live, 1).status != Status::Running {
        assert!(Instant::now() < deadline, "job 1 never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled_ms = leasehold_workflow::now_ms();
    live.stop(Stop::Cancelled("cancelled by tester".into()));
    let (status, reason) = exec.await.unwrap();
    // The job's own record says when it ended.
    let after_ms = job(&live, 1).finished_at_ms.unwrap() - cancelled_ms;
    assert!((0..1_000).contains(&after_ms), "killed {after_ms} ms after the cancel");
    assert_eq!((status, reason.as_deref()), (Status::Cancelled, Some("cancelled by tester")));
    assert_eq!(job(&live, 1).status, Status::Cancelled);
    assert_eq!(job(&live, 2).status, Status::Cancelled);
    assert!(job(&live, 2).started_at_ms.is_none());
}

#[tokio::test]
async fn the_sandbox_reads_volumes_and_writes_only_to_its_own_directories() {
    let Some(sb) = sandbox() else { return };
    let vol = volume_dir();
    std::fs::write(vol.path().join("in.txt"), "leased bytes\n").unwrap();
    let script =
        "cat /data/v/in.txt; cp /data/v/in.txt $OUTPUT_DIR/out.txt && echo home=$HOME > note && echo $VOLUME_V";
    let (j, lines, r) = sandboxed(sb.clone(), script, vol.path()).await;
    assert_eq!(j.status, Status::Succeeded, "{lines:?}");
    assert_eq!(lines, ["leased bytes", "/data/v"]);
    assert_eq!(std::fs::read_to_string(r.live.output_dir().join("out.txt")).unwrap(), "leased bytes\n");
    assert_eq!(std::fs::read_to_string(r.live.work_dir().join("note")).unwrap(), "home=/home/jovyan\n");

    let (j, lines, _) = sandboxed(sb.clone(), "echo tampered > /data/v/in.txt", vol.path()).await;
    assert_eq!(j.status, Status::Failed);
    assert!(lines.iter().any(|l| l.contains("Read-only file system")), "{lines:?}");
    let (j, lines, _) = sandboxed(sb.clone(), "touch /data/v/new.txt", vol.path()).await;
    assert_eq!(j.status, Status::Failed);
    assert!(lines.iter().any(|l| l.contains("Read-only file system")), "{lines:?}");
    assert_eq!(std::fs::read_to_string(vol.path().join("in.txt")).unwrap(), "leased bytes\n");
    assert!(!vol.path().join("new.txt").exists());

    // The rest of the root is read-only: a write elsewhere fails loudly.
    let (j, lines, _) = sandboxed(sb.clone(), "echo x > /note.txt", vol.path()).await;
    assert_eq!(j.status, Status::Failed);
    assert!(lines.iter().any(|l| l.contains("Read-only file system")), "{lines:?}");

    // `python` is Python 3, as jupyterflow's jobs expect, whether or not
    // the host has a `python` (this one has only `python3`).
    let (j, lines, _) = sandboxed(sb.clone(), "python -c 'import sys; print(sys.version_info[0])'", vol.path()).await;
    assert_eq!((j.status, lines), (Status::Succeeded, vec!["3".to_string()]));

    // /tmp is private: nothing a job writes there reaches the host's /tmp,
    // and the job's own /tmp is gone once it ends.
    let marker = format!("leasehold-sandbox-{}", std::process::id());
    let (j, _, r) = sandboxed(sb, &format!("echo x > /tmp/{marker} && test -f /tmp/{marker}"), vol.path()).await;
    assert_eq!(j.status, Status::Succeeded);
    assert!(!Path::new("/tmp").join(&marker).exists());
    assert!(!r.live.dir().join("tmp/1").exists(), "the job's /tmp is removed after it");
}

#[tokio::test]
async fn unsandboxed_mode_runs_on_the_host_and_finds_volumes_by_name() {
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("in.txt"), "host copy\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut j = sh(1, "cat $VOLUME_V/in.txt; echo $HOME", &[]);
    j.mounts = vec![Mount { name: "v".into(), host: vol.path().to_path_buf(), path: "/data/v".into() }];
    let live = live(dir.path(), std::slice::from_ref(&j));
    let p = plan(Sandbox::Unsandboxed, vec![j], 1);
    assert_eq!(execute(&p, &live).await.0, Status::Succeeded);
    let home = live.work_dir().display().to_string();
    assert_eq!(output(&live, 1, Stream::Stdout), ["host copy".to_string(), home]);
    assert!(Sandbox::Unsandboxed.describe().starts_with("NONE"), "the record says it plainly");
    assert!(Sandbox::Unsandboxed.protections().is_empty(), "and claims no protection");
}

/// A thesis-style chain as jupyterflow users write it: every job starts in
/// /home/jovyan, it is `$HOME`, the leased volume is mounted inside it,
/// and one job's files are there for the next.
#[tokio::test]
async fn jobs_share_the_jupyter_home_with_volumes_inside_it() {
    let Some(sb) = sandbox() else { return };
    let vol = volume_dir();
    std::fs::write(vol.path().join("in.txt"), "leased\n").unwrap();
    let uis = || vec![Mount { name: "uis".into(), host: vol.path().to_path_buf(), path: "/home/jovyan/uis".into() }];
    let mut first = sh(1, "pwd; cat uis/in.txt", &[]);
    first.mounts = uis();
    let mut fourth = sh(4, "cat ~/result.txt; ls /home/jovyan/uis", &[3]);
    fourth.mounts = uis();
    let jobs = vec![
        first,
        sh(2, "echo line two >> /home/jovyan/result.txt", &[1]),
        sh(3, "echo line three >> result.txt", &[2]),
        fourth,
    ];
    let r = run(sb, jobs, 2).await;
    assert_eq!(r.status, Status::Succeeded, "{:?}", r.reason);
    assert_eq!(output(&r.live, 1, Stream::Stdout), ["/home/jovyan", "leased"]);
    assert_eq!(output(&r.live, 4, Stream::Stdout), ["line two", "line three", "in.txt"]);
    let host = std::fs::read_to_string(r.live.work_dir().join("result.txt")).unwrap();
    assert_eq!(host, "line two\nline three\n", "the file is in the run's working directory");
}
