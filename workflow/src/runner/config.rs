//! `[workflow]` in a node's config: how many runs and jobs, how long, and
//! what each job may use.

use serde::{Deserialize, Serialize};

use crate::sandbox::JobLimits;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkflowConfig {
    /// Jobs of one run that may run at once; unset, the host's cores, so
    /// a diamond DAG runs as wide as the machine allows (see
    /// [`WorkflowConfig::parallel_jobs`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_parallel_jobs: Option<usize>,
    /// Runs that may be queued or running at once on this node.
    pub max_active_runs: usize,
    /// The most a workflow's directory (its bundle) may hold: MiB of files.
    pub max_bundle_mib: u64,
    /// How long building a run's Python environment (pip install) may take.
    pub env_build_timeout_s: u64,
    /// A job's timeout when its workflow names none, and the most it may name.
    pub default_job_timeout_s: u64,
    pub max_job_timeout_s: u64,
    /// How often a running workflow's leases are checked against the ledger.
    pub lease_check_interval_ms: u64,
    /// Run jobs without the sandbox when a protection it needs is missing
    /// (bubblewrap, cgroups, root). Off by default: the jobs would see the
    /// node's network and files. Each run records it.
    pub allow_unsandboxed: bool,
    /// What one job may use; see [`JobLimits`].
    pub limits: JobLimits,
}

impl WorkflowConfig {
    /// Jobs of one run that may run at once: as configured, else one per
    /// core this process may use.
    pub fn parallel_jobs(&self) -> usize {
        let cores = || std::thread::available_parallelism().map_or(1, |n| n.get());
        self.max_parallel_jobs.unwrap_or_else(cores).max(1)
    }
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            max_parallel_jobs: None,
            max_active_runs: 8,
            max_bundle_mib: 64,
            env_build_timeout_s: 900,
            default_job_timeout_s: 3_600,
            max_job_timeout_s: 86_400,
            lease_check_interval_ms: 200,
            allow_unsandboxed: false,
            limits: JobLimits::default(),
        }
    }
}
