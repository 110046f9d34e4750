//! Where the runner keeps runs and environments: under the node's data
//! directory, or under `executor.shared_dir/{org}/` when a cluster runs
//! the jobs, since a compute node reaches only what it shares.
//!
//! - `runs/{run}/`: a run's record, logs, working and output directories;
//! - `runs/.bundles/`: bundles being unpacked;
//! - `envs/{key}/`: Python environments built from `requirements.txt`.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct RunDirs {
    work: PathBuf,
}

impl RunDirs {
    pub fn new(work: &Path) -> Self {
        Self { work: work.to_path_buf() }
    }

    pub fn runs_root(&self) -> PathBuf {
        self.work.join("runs")
    }

    pub fn envs_root(&self) -> PathBuf {
        self.work.join("envs")
    }

    pub fn run(&self, run: &str) -> PathBuf {
        self.runs_root().join(run)
    }
}
