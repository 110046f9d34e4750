//! What one job may use.

use serde::{Deserialize, Serialize};

/// Per-job resource limits, each enforced by the kernel where it can be
/// and by the node's watcher where it cannot; the run record says which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobLimits {
    /// Memory of all the job's processes, `/tmp` excluded (cgroup).
    pub memory_mib: u64,
    /// Processes and threads at once (cgroup pids).
    pub processes: u64,
    /// CPU time per wall-clock second, in cores (cgroup cpu quota).
    pub cpu_cores: f64,
    /// The job's private `/tmp`.
    pub tmp_mib: u64,
    /// The run's working and output directories together, shared by its jobs.
    pub disk_mib: u64,
    /// stdout and stderr kept per job, and per run.
    pub log_job_mib: u64,
    pub log_run_mib: u64,
    /// The host uid and gid jobs run as when the node is root. Give them to
    /// no other service: a dedicated, otherwise unused id is best.
    pub job_uid: u32,
    pub job_gid: u32,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            memory_mib: 1024,
            processes: 256,
            cpu_cores: 1.0,
            tmp_mib: 256,
            disk_mib: 4096,
            log_job_mib: 8,
            log_run_mib: 32,
            job_uid: 65534,
            job_gid: 65534,
        }
    }
}
