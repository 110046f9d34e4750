//! Running a workflow's QC tests (see `workflow::qc`): in order, before
//! any leased data is fetched, each on its fixtures from the workflow's
//! directory, mounted read-only where the real volume will be. A test works
//! in a copy of the working directory and writes its outputs to a
//! throwaway directory, so nothing a test does reaches the jobs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use leasehold_files::FileError;

use super::Runner;
use crate::exec::{run_step, JobSpec, Plan, StepDirs, StepKind};
use crate::live::{LiveRun, Stream};
use crate::qc::QcTest;
use crate::sandbox::Mount;
use crate::{Workflow, WorkflowError};

/// Every fixture must be a directory of the workflow's (a volume is one).
pub(super) fn check_fixtures(wf: &Workflow, work_dir: &Path) -> Result<(), WorkflowError> {
    for (t, test) in wf.tests.iter().enumerate() {
        for (i, f) in test.fixtures.iter().enumerate() {
            let is_dir = std::fs::symlink_metadata(work_dir.join(&f.from)).is_ok_and(|m| m.is_dir());
            if !is_dir {
                let why = format!("the workflow's directory has no directory {:?}", f.from);
                return Err(WorkflowError::new(None, &format!("tests[{t}].fixtures[{i}].from"), why));
            }
        }
    }
    Ok(())
}

/// The name a job gives the volume mounted at `path`, so that a test finds
/// its fixture as `$VOLUME_<NAME>` too; else the path's last component.
fn volume_name(wf: &Workflow, path: &str) -> String {
    let same = |v: &&crate::Volume| Path::new(&v.path) == Path::new(path);
    match wf.jobs.iter().flat_map(|j| &j.volumes).find(same) {
        Some(v) => v.name.clone(),
        None => Path::new(path).file_name().map_or("fixture".into(), |n| n.to_string_lossy().into_owned()),
    }
}

impl Runner {
    /// A copy of the working directory as the bundle left it (no job has
    /// run yet), the jobs' to change, with the fixtures' mount points.
    fn scratch_copy(
        &self,
        run: &LiveRun,
        wf: &Workflow,
        plan: &Plan,
        test: &QcTest,
        dirs: &StepDirs,
    ) -> Result<(), FileError> {
        leasehold_files::copy_tree(&run.work_dir(), &dirs.work)?;
        std::fs::create_dir_all(&dirs.output).map_err(|e| FileError::new(&dirs.output, e))?;
        if nix::unistd::geteuid().is_root() {
            super::chown_tree(&dirs.work, self.cfg.limits.job_uid, self.cfg.limits.job_gid)
                .map_err(|e| FileError::new(&dirs.work, e))?;
        }
        let paths: Vec<&str> = test.fixtures.iter().map(|f| f.path.as_str()).collect();
        let prepared = plan.sandbox.prepare_workdir(&dirs.work, &wf.workdir, &paths);
        prepared.map_err(|e| FileError { path: e.path, reason: e.reason })
    }

    /// Runs the tests in order; the first failure names its test.
    pub(super) async fn run_tests(&self, run: &Arc<LiveRun>, wf: &Workflow, plan: &Plan) -> Result<(), QcFailure> {
        for (i, test) in wf.tests.iter().enumerate() {
            let mounts = test
                .fixtures
                .iter()
                .map(|f| Mount {
                    name: volume_name(wf, &f.path),
                    host: run.work_dir().join(&f.from),
                    path: f.path.clone(),
                })
                .collect();
            let spec = JobSpec {
                number: i + 1,
                kind: StepKind::Test(test.name.clone()),
                argv: wf.argv_of(&test.command).expect("validated at submission"),
                env: BTreeMap::new(),
                mounts,
                deps: Vec::new(),
                timeout_ms: test.timeout_s * 1000,
            };
            let scratch = run.dir().join("tests").join((i + 1).to_string());
            // Removed however the test ends, a stop that drops it included.
            let _scratch = super::RemoveOnDrop(scratch.clone());
            let dirs = StepDirs {
                work: scratch.join("work"),
                output: scratch.join("output"),
                output_path: plan.output_path.clone(),
                tmp: scratch.join("tmp"),
            };
            let made = self.scratch_copy(run, wf, plan, test, &dirs);
            made.map_err(|why| QcFailure::CouldNotStart { test: test.name.clone(), why })?;
            let end = run_step(plan, &spec, run, &dirs).await;
            if let Some(stop) = run.stopped() {
                return Err(QcFailure::Stopped(stop.reason().into()));
            }
            match verdict(test, end.exit_code, end.error, &end.stdout) {
                Ok(()) => run.log(None, Stream::Runner, &format!("test {:?} passed", test.name)),
                Err(why) => return Err(QcFailure::Failed { test: test.name.clone(), why }),
            }
        }
        Ok(())
    }
}

/// Why a run's QC tests stopped it before any job.
#[derive(Debug, thiserror::Error)]
pub(super) enum QcFailure {
    #[error("test {test:?} could not start: {why}")]
    CouldNotStart { test: String, why: FileError },
    #[error("test {test:?} failed: {why}")]
    Failed { test: String, why: Failed },
    #[error("{0}")]
    Stopped(String),
}

/// How one test failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failed {
    /// A limit reached, or no exit at all: the executor's words.
    #[error("{0}")]
    Ended(String),
    #[error("exit code {got}, expected {want}")]
    ExitCode { got: i32, want: i32 },
    #[error("its output does not contain {0:?}")]
    Output(String),
}

fn verdict(test: &QcTest, exit_code: Option<i32>, error: Option<String>, stdout: &[u8]) -> Result<(), Failed> {
    // A limit reached: whatever its exit code, the test did not pass.
    if let Some(killed) = error.as_deref().filter(|e| e.starts_with("killed:")) {
        return Err(Failed::Ended(killed.into()));
    }
    match exit_code {
        None => return Err(Failed::Ended(error.unwrap_or_else(|| "it did not exit".into()))),
        Some(c) if c != test.exit_code => return Err(Failed::ExitCode { got: c, want: test.exit_code }),
        Some(_) => {}
    }
    if let Some(want) = &test.output {
        if !String::from_utf8_lossy(stdout).contains(want.as_str()) {
            return Err(Failed::Output(want.clone()));
        }
    }
    Ok(())
}
