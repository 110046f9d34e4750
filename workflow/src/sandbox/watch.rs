//! The node's side of a job's limits: what the kernel cannot bound alone.
//! The guard reads the cgroup's counters (the kernel enforces memory and
//! processes; the guard names which limit was hit), and measures `/tmp` and
//! the run's working and output directories, which live on the host's disk.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::cgroup::JobCgroup;
use super::JobCommand;
use leasehold_files::MAX_FILES;

use super::JobLimits;

pub struct Guard {
    cgroup: Option<JobCgroup>,
    /// `None` for an unsandboxed job: nothing is watched.
    limits: Option<JobLimits>,
    work: PathBuf,
    output: PathBuf,
    tmp: PathBuf,
    released: AtomicBool,
}

/// Bytes (by length, so a sparse file counts in full) and entries under
/// `dir`, never following a link; counting stops past `max_entries`.
pub fn dir_usage(dir: &Path, max_entries: u64) -> (u64, u64) {
    let (mut bytes, mut entries) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            entries += 1;
            if entries > max_entries {
                return (bytes, entries);
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                bytes = bytes.saturating_add(meta.len());
            }
        }
    }
    (bytes, entries)
}

impl Guard {
    pub(super) fn new(cgroup: Option<JobCgroup>, limits: Option<JobLimits>, job: &JobCommand) -> Self {
        Self {
            cgroup,
            limits,
            work: job.work_dir.to_path_buf(),
            output: job.output_dir.to_path_buf(),
            tmp: job.tmp_dir.to_path_buf(),
            released: AtomicBool::new(false),
        }
    }

    pub(super) fn procs_files(&self) -> Vec<PathBuf> {
        self.cgroup.as_ref().map(|c| c.procs_files()).unwrap_or_default()
    }

    /// The limit the job has reached, if any: a limit is reached at its value,
    /// which a single file can reach through `RLIMIT_FSIZE`. Blocking: it
    /// walks directories.
    pub fn breach(&self) -> Option<String> {
        let limits = self.limits.as_ref()?;
        if let Some(b) = self.cgroup.as_ref().and_then(|c| c.breach(limits)) {
            return Some(b);
        }
        let max_files = MAX_FILES as u64;
        let (tmp, tmp_files) = dir_usage(&self.tmp, max_files);
        if tmp >= limits.tmp_mib << 20 {
            return Some(format!("/tmp limit {} MiB reached", limits.tmp_mib));
        }
        let (work, work_files) = dir_usage(&self.work, max_files);
        let (out, out_files) = dir_usage(&self.output, max_files);
        if work.saturating_add(out) >= limits.disk_mib << 20 {
            return Some(format!("disk limit {} MiB reached in the working and output directories", limits.disk_mib));
        }
        if tmp_files + work_files + out_files > max_files {
            return Some(format!("file limit {max_files} reached"));
        }
        None
    }

    /// Kills whatever is left of the job and removes its cgroup and `/tmp`,
    /// once. Blocking.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(c) = &self.cgroup {
            c.remove();
        }
        if self.limits.is_some() {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// A job that failed to start, or whose task was aborted, still leaves
/// nothing behind.
impl Drop for Guard {
    fn drop(&mut self) {
        self.release();
    }
}
