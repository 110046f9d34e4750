//! The Slurm executor against a real Slurm cluster of the test's own (see
//! `tests/common/slurm.rs`): the hostile-job suite's network, key-reading
//! and uid attacks fail there too; a DAG's independent jobs run side by
//! side as Slurm jobs on staged, read-only volumes; a stop cancels a
//! running job at once; Slurm's cgroup holds the memory limit.

#[path = "../../tests/common/slurm.rs"]
mod cluster;
mod common;
#[path = "../../tests/common/ports.rs"]
mod ports;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use leasehold_workflow::exec::{execute, Slurm, SlurmConfig};
use leasehold_workflow::live::{LiveRun, Status, Stop, Stream};
use leasehold_workflow::sandbox::{Mount, Sandbox};

/// `2026-12-07T00:12:27` (UTC) in ms since the epoch.
fn chrono_free_ms(t: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap_or_else(|_| panic!("not a Slurm time: {t}"));
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from the civil date, after Howard Hinnant's `days_from_civil`.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n(11..13)) * 60 + n(14..16)) * 60_000 + n(17..19) * 1000
}

/// The Slurm job id a job's record names.
fn slurm_id(live: &LiveRun, n: usize) -> String {
    let placement = live
        .record()
        .placements
        .get(&n)
        .cloned()
        .unwrap_or_else(|| panic!("job {n} has no placement: {:?}", live.record()));
    let id = placement.strip_prefix("Slurm job ").unwrap_or_else(|| panic!("{placement}"));
    id.split_whitespace().next().unwrap().to_string()
}

/// The test's own cluster, and an executor's config for it; `None` where
/// it cannot run (it says SKIPPED).
fn start_cluster() -> Option<(cluster::Cluster, SlurmConfig)> {
    let cluster = cluster::Cluster::start(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("slurm"))?;
    let cfg = SlurmConfig {
        shared_dir: cluster.shared.clone(),
        partition: Some(cluster::PARTITION.into()),
        slurm_conf: Some(cluster.conf.clone()),
        bin_dir: "/usr/bin".into(),
        poll_interval_ms: 50,
    };
    Some((cluster, cfg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_on_a_real_slurm_cluster_in_the_same_sandbox() {
    let Some(sb) = sandbox() else { return };
    let Some((cluster, cfg)) = start_cluster() else { return };
    let slurm = Arc::new(Slurm::new(cfg, "test"));
    use_executor(slurm.clone(), &cluster.shared);

    // The hostile-job suite's attacks, now through Slurm.
    attacks::no_network(sb.clone()).await;
    attacks::unprivileged(sb.clone()).await;
    attacks::no_keys(sb.clone()).await;

    a_diamond_runs_side_by_side_on_staged_volumes(&sb, &slurm, &cluster).await;
    a_stop_cancels_the_slurm_job_at_once(&sb, &cluster).await;
    a_job_still_queued_in_slurm_at_the_stop_never_starts(&sb, &cluster).await;
    a_memory_bomb_is_stopped_by_slurms_cgroup(&sb).await;
    let left = cluster.queue();
    assert!(left.iter().all(|(_, s)| s != "RUNNING" && s != "PENDING"), "jobs left on the cluster: {left:?}");
}

async fn a_diamond_runs_side_by_side_on_staged_volumes(sb: &Sandbox, slurm: &Slurm, cluster: &cluster::Cluster) {
    let vol = volume_dir();
    std::fs::write(vol.path().join("data.csv"), "a,b\n1,2\n").unwrap();
    let mount = Mount { name: "v".into(), host: vol.path().to_path_buf(), path: "/data/v".into() };
    let mut jobs = vec![
        sh(1, "echo hello; id -u", &[]),
        sh(2, "wc -l < /data/v/data.csv; touch /data/v/x || echo read-only; sleep 2; echo world foo!", &[1]),
        sh(3, "sleep 2; echo world bar!", &[1]),
        sh(4, "echo hello again!", &[2, 3]),
    ];
    jobs[1].mounts = vec![mount.clone()];
    jobs[2].mounts = vec![mount];
    let host = host_dir();
    let live = live(host.path(), &jobs);
    let plan = plan(sb.clone(), jobs, 2);
    let started = Instant::now();
    let (status, reason) = execute(&plan, &live).await;
    let lines = |n| all_output(&live, n);
    assert_eq!(status, Status::Succeeded, "{reason:?} {:?}\n{}", live.lines_from(0), cluster.logs());
    assert_eq!(lines(1), ["hello", "65534"]);
    assert_eq!(lines(2)[0], "2", "the staged volume holds the file");
    assert!(lines(2).iter().any(|l| l.contains("Read-only file system")), "{:?}", lines(2));
    assert_eq!(output(&live, 2, Stream::Stdout).last().unwrap(), "world foo!");
    assert_eq!(lines(3), ["world bar!"]);
    assert_eq!(lines(4), ["hello again!"]);
    // Four Slurm jobs, 2 and 3 side by side.
    let ids: Vec<String> = (1..=4).map(|n| slurm_id(&live, n)).collect();
    let (two, three) = (job(&live, 2), job(&live, 3));
    assert!(
        two.started_at_ms < three.finished_at_ms && three.started_at_ms < two.finished_at_ms,
        "jobs 2 and 3 overlapped: {two:?} {three:?} (in {:?})",
        started.elapsed()
    );
    for id in &ids {
        assert_eq!(cluster.job(id).get("JobState").map(String::as_str), Some("COMPLETED"), "Slurm job {id}");
    }
    let log: Vec<String> =
        live.lines_from(0).into_iter().filter(|l| l.stream == Stream::Runner).map(|l| l.text).collect();
    assert!(log.iter().any(|l| l.starts_with("job 2 submitted to Slurm as job")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("in the queue")), "{log:?}");
    // The staged copy is read-only and goes with the run.
    let staged = live.dir().join("volumes");
    assert_eq!(staged.read_dir().unwrap().count(), 1, "jobs 2 and 3 share one staged copy");
    leasehold_workflow::exec::Executor::end_run(slurm, &live);
    assert!(!staged.exists(), "the staged volume is removed when the run ends");
}

async fn a_stop_cancels_the_slurm_job_at_once(sb: &Sandbox, cluster: &cluster::Cluster) {
    let jobs = vec![sh(1, "echo started; sleep 2999", &[]), sh(2, "echo never", &[1])];
    let host = host_dir();
    let live = live(host.path(), &jobs);
    let plan = plan(sb.clone(), jobs, 2);
    let running = {
        let live = live.clone();
        tokio::spawn(async move { execute(&plan, &live).await })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let started = |live: &LiveRun| {
        output(live, 1, Stream::Stdout).contains(&"started".to_string()) && live.record().placements.contains_key(&1)
    };
    while !started(&live) {
        assert!(Instant::now() < deadline, "job 1 never started: {:?}\n{}", live.lines_from(0), cluster.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = slurm_id(&live, 1);
    let job_left = || {
        let found = std::process::Command::new("pgrep").args(["-f", "sleep 2999"]).output().unwrap();
        found.status.success()
    };
    assert!(job_left(), "the job's process runs, on this one-node cluster");
    let (stopped, stopped_ms) = (Instant::now(), leasehold_workflow::now_ms());
    live.stop(Stop::Expired("lease L1 expired".into()));
    let (status, _) = running.await.unwrap();
    assert_eq!(status, Status::Expired);
    while job_left() {
        assert!(stopped.elapsed() < Duration::from_secs(1), "Slurm job {id} still runs 1 s after the stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("the job's processes were gone {} ms after the stop", stopped.elapsed().as_millis());
    // Slurm's own record: ended (whole seconds, UTC) within a second of it.
    let end = cluster.job(&id)["EndTime"].clone();
    let end_ms = chrono_free_ms(&end);
    assert!((end_ms - stopped_ms).abs() < 1_000, "Slurm ended job {id} at {end}, the stop was at {stopped_ms} ms");
    let deadline = Instant::now() + Duration::from_secs(15);
    while cluster.job(&id)["JobState"] != "CANCELLED" {
        assert!(Instant::now() < deadline, "Slurm job {id}: {:?}", cluster.job(&id));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job(&live, 2).status, Status::Expired, "the queued job never started");
    assert!(!live.record().placements.contains_key(&2), "nor reached Slurm");
}

async fn a_job_still_queued_in_slurm_at_the_stop_never_starts(sb: &Sandbox, cluster: &cluster::Cluster) {
    // One job more than the cluster has CPUs: the last waits in Slurm's queue.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs: Vec<_> = (1..=cpus + 1).map(|n| sh(n, &format!("echo started {n}; sleep 2997"), &[])).collect();
    let host = host_dir();
    let live = live(host.path(), &jobs);
    let plan = plan(sb.clone(), jobs, cpus + 1);
    let running = {
        let live = live.clone();
        tokio::spawn(async move { execute(&plan, &live).await })
    };
    // Slurm's job id for each job submitted, by job number.
    let submitted = |live: &LiveRun| -> std::collections::BTreeMap<usize, String> {
        let parse = |t: &str| {
            let (n, rest) = t.strip_prefix("job ")?.split_once(" submitted to Slurm as job ")?;
            Some((n.parse().ok()?, rest.split_whitespace().next()?.to_string()))
        };
        live.lines_from(0).iter().filter_map(|l| parse(&l.text)).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while live.record().placements.len() < cpus || submitted(&live).len() <= cpus {
        assert!(Instant::now() < deadline, "{:?}\n{}", live.lines_from(0), cluster.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let placed = live.record().placements;
    let (last, queued) = submitted(&live).into_iter().find(|(n, _)| !placed.contains_key(n)).unwrap();
    let state = cluster.job(&queued)["JobState"].clone();
    assert_eq!(state, "PENDING", "{:?}\n{:?}", live.lines_from(0), cluster.queue());
    live.stop(Stop::Revoked("lease L1 revoked".into()));
    assert_eq!(running.await.unwrap().0, Status::Revoked);
    let deadline = Instant::now() + Duration::from_secs(15);
    while cluster.job(&queued)["JobState"] != "CANCELLED" {
        assert!(Instant::now() < deadline, "Slurm job {queued}: {:?}", cluster.job(&queued));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!live.record().placements.contains_key(&last), "it never ran: {:?}", live.record());
    assert!(output(&live, last, Stream::Stdout).is_empty(), "it never ran: {:?}", live.lines_from(0));
}

async fn a_memory_bomb_is_stopped_by_slurms_cgroup(sb: &Sandbox) {
    let bomb = "python3 -c \"x = ' ' * (1 << 30); print('allocated')\"";
    let ran = run(sb.clone(), vec![sh(1, bomb, &[])], 1).await;
    let j = job(&ran.live, 1);
    assert_eq!(j.status, Status::Failed, "{:?}", ran.live.lines_from(0));
    assert!(!all_output(&ran.live, 1).contains(&"allocated".to_string()));
    assert!(j.error.as_deref().is_some_and(|e| e.contains("memory")), "the error names the memory limit: {j:?}");
}

/// Not a check: the figures docs/BENCHMARKS.md gives, from submission to
/// the end of a job that does nothing, on this host and on the cluster,
/// alternated; and
/// from a stop to the job's last process gone.
/// `cargo test --release --test on_slurm -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_time_to_the_first_job_and_to_the_kill() {
    let Some(sb) = sandbox() else { return };
    let Some((cluster, cfg)) = start_cluster() else { return };
    let slurm: Arc<dyn leasehold_workflow::exec::Executor> = Arc::new(Slurm::new(cfg, "bench"));
    let local: Arc<dyn leasehold_workflow::exec::Executor> = Arc::new(leasehold_workflow::exec::Local);
    let (mut on_local, mut on_slurm, mut kills) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..10 {
        for (executor, into) in [(&local, &mut on_local), (&slurm, &mut on_slurm)] {
            let host = tempfile::tempdir_in(&cluster.shared).unwrap();
            let jobs = vec![sh(1, "true", &[])];
            let live = live(host.path(), &jobs);
            let plan = leasehold_workflow::exec::Plan { executor: executor.clone(), ..plan(sb.clone(), jobs, 1) };
            let t0 = leasehold_workflow::now_ms();
            let (status, _) = execute(&plan, &live).await;
            assert_eq!(status, Status::Succeeded);
            // Submitted to ended: what a one-line job costs on each.
            into.push(leasehold_workflow::now_ms() - t0);
        }
        let host = tempfile::tempdir_in(&cluster.shared).unwrap();
        let jobs = vec![sh(1, "echo started; sleep 2998", &[])];
        let live = live(host.path(), &jobs);
        let plan = leasehold_workflow::exec::Plan { executor: slurm.clone(), ..plan(sb.clone(), jobs, 1) };
        let running = {
            let live = live.clone();
            tokio::spawn(async move { execute(&plan, &live).await })
        };
        while !output(&live, 1, Stream::Stdout).contains(&"started".to_string())
            || !live.record().placements.contains_key(&1)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let t = Instant::now();
        live.stop(Stop::Expired("measured".into()));

        let left = || std::process::Command::new("pgrep").args(["-f", "sleep 2998"]).status().unwrap().success();
        while left() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        kills.push(t.elapsed().as_millis() as i64);
        running.await.unwrap();
        // Slurm holds the job's resources until it is done with it: the
        // next measurement starts on an idle cluster.
        let id = slurm_id(&live, 1);
        while cluster.job(&id).get("JobState").map(String::as_str) != Some("CANCELLED") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let median = |v: &mut Vec<i64>| {
        v.sort();
        v[v.len() / 2]
    };
    println!("a job that does nothing, submitted to ended, ms: local {on_local:?}, slurm {on_slurm:?}");
    println!("stop to the job's last process gone, ms: {kills:?}");
    println!(
        "medians: local {} ms, slurm {} ms, kill {} ms",
        median(&mut on_local),
        median(&mut on_slurm),
        median(&mut kills)
    );
}
