//! A run from start to end, and the lease monitor beside it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use leasehold_chaincode::{Lease, LeaseStatus, Payload};
use tracing::{info, warn};

use super::env::EnvSpec;
use super::qc::QcFailure;
use super::{Inputs, Runner};
use super::{Result, RunError};
use crate::exec::{self, stopped, JobSpec, Plan, StepKind};
use crate::live::{LiveRun, Status, Stop, Stream};
use crate::now_ms;
use crate::sandbox::Mount;
use crate::Workflow;
use leasehold_files::Manifest;

/// Why a run's jobs never started: the reason its record gives.
#[derive(Debug, thiserror::Error)]
enum NotReady {
    /// Its environment could not be built, or its data fetched.
    #[error(transparent)]
    Failed(#[from] RunError),
    #[error(transparent)]
    Qc(#[from] QcFailure),
    #[error("{0}")]
    Stopped(String),
}

impl Runner {
    pub(super) async fn drive(
        self: Arc<Self>,
        run: Arc<LiveRun>,
        wf: Workflow,
        mut plan: Plan,
        inputs: Inputs,
        env: Option<EnvSpec>,
    ) {
        run.update(|r| r.status = Status::Running);
        let interval = Duration::from_millis(self.cfg.lease_check_interval_ms.max(10));
        let leases = inputs.leases.keys().chain(&inputs.watch_only).cloned().collect();
        let monitor = tokio::spawn(monitor_leases(self.clone(), run.clone(), leases, interval));
        let mut stop = run.stop_signal();
        // QC tests run on the executor too.
        plan.deadline_ms = self.first_lease_end(&inputs);
        let ready = tokio::select! {
            r = self.before_jobs(&run, &wf, &mut plan, &inputs, env.as_ref()) => r,
            s = stopped(&mut stop) => Err(NotReady::Stopped(s.reason().into())),
        };
        let (status, reason) = match ready {
            Ok(dirs) => {
                plan.jobs = job_specs(&wf, &self.cfg, &dirs, &inputs.source_of_volume);
                exec::execute(&plan, &run).await
            }
            Err(e) => {
                let ended = match run.stopped() {
                    Some(s) => (s.status(), Some(s.reason().into())),
                    None => (Status::Failed, Some(e.to_string())),
                };
                // No job started: each says why.
                let why = format!("not started: {}", ended.1.as_deref().unwrap_or_default());
                run.update(|r| {
                    for j in &mut r.jobs {
                        j.status = Status::Cancelled;
                        j.error = Some(why.clone());
                    }
                });
                ended
            }
        };
        let (executor, ended) = (plan.executor.clone(), run.clone());
        let _ = tokio::task::spawn_blocking(move || executor.end_run(&ended)).await;
        let (status, reason) = self.pad_end(&run, status, reason, &mut stop).await;
        monitor.abort();
        self.conclude(run, status, reason).await;
    }

    /// A compute run done here for a lessee ends, as far as anyone but this
    /// node can see, only at a whole multiple of its dataset's
    /// `end_granularity_ms` after its start on the ledger: what its jobs
    /// did sets at most which multiple. A stop meanwhile (the lessee's
    /// cancel, the lease's end) ends it at once, as it would have anyway.
    async fn pad_end(
        &self,
        run: &LiveRun,
        status: Status,
        reason: Option<String>,
        stop: &mut tokio::sync::watch::Receiver<Option<Stop>>,
    ) -> (Status, Option<String>) {
        let r = run.record();
        let outcome_of_jobs = matches!(status, Status::Succeeded | Status::Failed);
        if !outcome_of_jobs || r.executor.as_deref() != Some(self.node.org()) {
            return (status, reason);
        }
        let Ok((on_ledger, policy)) = self.ledger_release(&r.id) else { return (status, reason) };
        let Some(until_ms) = padded_end(on_ledger.started_at_ms, now_ms(), policy.end_granularity_ms) else {
            return (status, reason);
        };
        let wait = Duration::from_millis(until_ms.saturating_sub(now_ms()).max(0) as u64);
        tokio::select! {
            () = tokio::time::sleep(wait) => (status, reason),
            s = stopped(stop) => (s.status(), Some(s.reason().into())),
        }
    }

    /// When the first of the run's leases ends, by the ledger.
    fn first_lease_end(&self, inputs: &Inputs) -> Option<i64> {
        let ids = inputs.leases.keys().chain(&inputs.watch_only);
        let ends = ids.filter_map(|id| self.node.lease_status_now(id).ok().flatten()?.0.expires_at_ms);
        ends.min()
    }

    /// The environment, then the QC tests, then the data: each only once
    /// the one before it is done, so a failed test fetches nothing. The
    /// volumes' host directories come back by source (lease id, or
    /// `own:<dataset>`).
    async fn before_jobs(
        &self,
        run: &Arc<LiveRun>,
        wf: &Workflow,
        plan: &mut Plan,
        inputs: &Inputs,
        env: Option<&EnvSpec>,
    ) -> std::result::Result<HashMap<String, PathBuf>, NotReady> {
        if let Some(spec) = env {
            let started = std::time::Instant::now();
            let env = self.environment(run, plan, spec).await?;
            let took = format!("environment ready in {} ms", started.elapsed().as_millis());
            run.log(None, Stream::Runner, &took);
            plan.python_env = Some(env);
        }
        self.run_tests(run, wf, plan).await?;
        let mut dirs = self.fetch_all(run, &inputs.leases).await?;
        for (key, (dataset, content_hash)) in &inputs.own {
            let mut last_pct = None;
            let dir = self
                .node
                .own_dataset_files(dataset, content_hash, &mut |done, total| {
                    log_progress(run, &format!("dataset {dataset}"), &mut last_pct, done, total)
                })
                .await?;
            dirs.insert(key.clone(), dir);
        }
        if !inputs.own.is_empty() {
            run.log(None, Stream::Runner, "this org's own datasets mounted read-only from its store");
        }
        Ok(dirs)
    }

    async fn fetch_all(&self, run: &LiveRun, leases: &BTreeMap<String, Lease>) -> Result<HashMap<String, PathBuf>> {
        let mut dirs = HashMap::new();
        for lease in leases.values() {
            let lock = self.fetching.lock().expect("fetch lock").entry(lease.id.clone()).or_default().clone();
            let _guard = lock.lock().await;
            let mut last_pct = None;
            let what = format!("lease {} (dataset {})", lease.id, lease.dataset_id);
            let dir = self
                .node
                .fetch_lease_data(lease, &mut |done, total| log_progress(run, &what, &mut last_pct, done, total))
                .await?;
            run.log(None, Stream::Runner, &format!("{what} verified against the ledger; mounted read-only"));
            dirs.insert(lease.id.clone(), dir);
        }
        Ok(dirs)
    }

    /// Records the end on the ledger and in the run's record.
    pub(super) async fn conclude(self: Arc<Self>, run: Arc<LiveRun>, status: Status, reason: Option<String>) {
        let mut status = status;
        let mut reason = reason;
        let mut output_hash = None;
        if status == Status::Succeeded {
            let out = run.output_dir();
            match tokio::task::spawn_blocking(move || Manifest::of_dir(&out)).await {
                Ok(Ok(m)) => output_hash = Some(m.hash()),
                Ok(Err(e)) => (status, reason) = (Status::Failed, Some(format!("outputs: {e}"))),
                Err(e) => (status, reason) = (Status::Failed, Some(e.to_string())),
            }
        }
        let id = run.record().id;
        // A run done here for a lessee: its hash goes on the ledger with
        // its release, not before (an unsalted hash can give a small output away).
        let for_lessee = run.record().executor.as_deref() == Some(self.node.org());
        let on_ledger = if for_lessee { None } else { output_hash };
        let finish = Payload::FinishRun { run_id: id.clone(), status: status.to_ledger(), output_hash: on_ledger };
        let mut finish_tx = None;
        for attempt in 1..=3 {
            match self.node.write(finish.clone()).await {
                Ok(w) => {
                    finish_tx = Some(w.tx_id);
                    break;
                }
                Err(e) => warn!(run = %id, attempt, "recording the run's end: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let line = match &reason {
            Some(why) => format!("run {id} {}: {why}", status.as_str()),
            None => format!("run {id} {}", status.as_str()),
        };
        // The line before the status: a log follower ends at the final status.
        run.log(None, Stream::Runner, &line);
        run.update(|r| {
            r.status = status;
            r.reason = reason.clone();
            r.finished_at_ms = Some(now_ms());
            r.output_hash = output_hash.map(hex::encode);
            r.finish_tx = finish_tx;
        });
        run.evict_log();
        info!(run = %id, "{line}");
        if status == Status::Succeeded && run.record().executor.as_deref() == Some(self.node.org()) {
            self.release_by_policy(&run).await;
        }
        if matches!(status, Status::Expired | Status::Revoked) {
            let node = self.node.clone();
            let _ = tokio::task::spawn_blocking(move || node.delete_ended_caches()).await;
        }
    }
}

/// The first whole multiple of `granularity_ms` after `started_ms` that is
/// not before `now_ms` (at least one), or `None` for no padding.
fn padded_end(started_ms: i64, now_ms: i64, granularity_ms: u64) -> Option<i64> {
    let g = i64::try_from(granularity_ms).ok().filter(|g| *g > 0)?;
    let periods = (now_ms.saturating_sub(started_ms) + g - 1).div_euclid(g).max(1);
    Some(started_ms.saturating_add(periods.saturating_mul(g)))
}

/// One line per 10% of a transfer, so that a large one shows progress
/// without flooding the log.
fn log_progress(run: &LiveRun, what: &str, last_pct: &mut Option<u64>, done: u64, total: u64) {
    let pct = (done * 100).checked_div(total).unwrap_or(100);
    if last_pct.is_none_or(|p| pct / 10 > p / 10) {
        *last_pct = Some(pct);
        let line = format!("fetching {what}: {} of {} ({pct}%)", mib(done), mib(total));
        run.log(None, Stream::Runner, &line);
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn job_specs(
    wf: &Workflow,
    cfg: &super::config::WorkflowConfig,
    dirs: &HashMap<String, PathBuf>,
    source_of_volume: &HashMap<String, String>,
) -> Vec<JobSpec> {
    let order = wf.order().expect("validated at submission");
    order
        .into_iter()
        .map(|n| {
            let job = &wf.jobs[n - 1];
            let mounts = job
                .volumes
                .iter()
                .map(|v| Mount {
                    name: v.name.clone(),
                    host: dirs[&source_of_volume[&v.id]].clone(),
                    path: v.path.clone(),
                })
                .collect();
            JobSpec {
                number: n,
                kind: StepKind::Job,
                argv: wf.argv(job).expect("validated at submission"),
                env: job.env.clone(),
                mounts,
                deps: wf.dependencies(n),
                timeout_ms: job.timeout_s.unwrap_or(cfg.default_job_timeout_s) * 1000,
            }
        })
        .collect()
}

/// Stops the run as soon as one of its leases is no longer active: expired
/// at the ledger's time, or revoked, released or otherwise ended on it.
async fn monitor_leases(runner: Arc<Runner>, run: Arc<LiveRun>, leases: Vec<String>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        for id in &leases {
            let Ok(Some((lease, status))) = runner.node.lease_status_now(id) else { continue };
            if status == LeaseStatus::Active {
                continue;
            }
            let why = lease.inactive_reason(runner.node.ledger_now_ms()).unwrap_or_default();
            let stop = if status == LeaseStatus::Expired { Stop::Expired(why) } else { Stop::Revoked(why) };
            run.log(None, Stream::Runner, &format!("stopping: {}", stop.reason()));
            run.stop(stop);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::padded_end;

    #[test]
    fn an_end_is_padded_to_the_next_whole_period_after_the_start() {
        assert_eq!(padded_end(1_000, 1_200, 0), None);
        assert_eq!(padded_end(1_000, 1_200, 3_000), Some(4_000));
        assert_eq!(padded_end(1_000, 1_000, 3_000), Some(4_000), "at least one period");
        assert_eq!(padded_end(1_000, 4_000, 3_000), Some(4_000));
        assert_eq!(padded_end(1_000, 4_001, 3_000), Some(7_000));
        assert_eq!(padded_end(5_000, 1_000, 3_000), Some(8_000), "a clock behind the ledger");
    }
}
