//! A run's Python environment: a virtual environment built with pip from
//! the workflow's `requirements.txt`, before any test or job runs, and
//! mounted read-only for them at `sandbox::ENV_PATH`.
//!
//! An environment is keyed by the hash of the requirements and of the
//! interpreter, and kept under `envs/` in the data directory: a second run
//! with the same requirements starts at once. It is built in the sandbox as
//! the jobs' uid, with the host's network (pip must download) but none of
//! the node's files: its own empty directory, the requirements file, `/usr`
//! read-only and what name resolution and TLS need. It is written into a
//! staging directory, synced, and renamed into place whole, so a crash
//! leaves no half-built environment to be taken for a built one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::Runner;
use crate::error::{NodeError, Result};
use crate::workflow::exec::{run_step, JobSpec, Plan, StepDirs, StepKind};
use crate::workflow::live::{LiveRun, Status, Stream};
use crate::workflow::sandbox::ENV_PATH;

/// The interpreter environments are made from, inside the sandbox as on the host.
const PYTHON: &str = "/usr/bin/python3";
/// The most a requirements file may hold.
pub const MAX_REQUIREMENTS_BYTES: usize = 64 * 1024;
/// What pip's build may read from the node's own environment: an operator's
/// proxy and package index, never anything of the workflow's.
const PASSED_VARS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_CERT",
    "PIP_DEFAULT_TIMEOUT",
];

/// The key of the environment `requirements` makes with this host's Python:
/// the sha256 of both.
pub fn env_key(requirements: &[u8]) -> Result<[u8; 32]> {
    let python = std::fs::canonicalize(PYTHON).and_then(std::fs::read).map_err(|e| {
        NodeError::Unavailable(format!("this node has no Python to build environments with: {PYTHON}: {e}"))
    })?;
    Ok(Sha256::new()
        .chain_update(b"leasehold-python-env-v1\n")
        .chain_update(Sha256::digest(&python))
        .chain_update(Sha256::digest(requirements))
        .finalize()
        .into())
}

impl Runner {
    fn envs_root(&self) -> PathBuf {
        self.node.config().data_dir.join("envs")
    }

    /// The environment for `requirements`, built now unless it is cached.
    /// Concurrent runs with the same key wait for one build.
    pub(super) async fn environment(&self, run: &Arc<LiveRun>, plan: &Plan, requirements: &[u8]) -> Result<PathBuf> {
        let key = hex::encode(env_key(requirements)?);
        let dir = self.envs_root().join(&key);
        let lock = self.fetching.lock().expect("fetch lock").entry(format!("env-{key}")).or_default().clone();
        let _one_build = lock.lock().await;
        if dir.exists() {
            run.log(None, Stream::Runner, &format!("environment {} reused from the cache", &key[..16]));
            return Ok(dir);
        }
        let staging = self.envs_root().join(format!(".build-{}", hex::encode(rand::random::<[u8; 8]>())));
        let built = self.build(run, plan, requirements, &staging).await;
        let done = built.and_then(|()| {
            let venv = staging.join("venv");
            let fail = |e: std::io::Error| NodeError::file(&venv, e);
            if nix::unistd::geteuid().is_root() {
                // Read-only to the jobs, the node's on the host.
                super::chown_tree(&venv, 0, 0).map_err(fail)?;
            }
            crate::durable::sync_tree(&venv).map_err(fail)?;
            crate::durable::rename(&venv, &dir).map_err(fail)
        });
        let _ = std::fs::remove_dir_all(&staging);
        done.map(|()| dir)
    }

    async fn build(&self, run: &Arc<LiveRun>, plan: &Plan, requirements: &[u8], staging: &Path) -> Result<()> {
        let (work, venv) = (staging.join("work"), staging.join("venv"));
        for d in [&work, &venv] {
            crate::durable::create_dirs(d).map_err(|e| NodeError::file(d, e))?;
        }
        let req = work.join("requirements.txt");
        crate::durable::write_atomic(&req, requirements, 0o644).map_err(|e| NodeError::file(&req, e))?;
        let script = format!(
            "{PYTHON} -m venv --system-site-packages {ENV_PATH} && \
             {ENV_PATH}/bin/pip install --no-input --disable-pip-version-check --no-warn-script-location \
             -r requirements.txt"
        );
        let mut env: std::collections::BTreeMap<String, String> =
            PASSED_VARS.iter().filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?))).collect();
        // Its home is not its to write: no cache, and no warning about one.
        env.insert("PIP_NO_CACHE_DIR".into(), "1".into());
        let spec = JobSpec {
            number: 0,
            kind: StepKind::Environment,
            argv: vec!["/bin/sh".into(), "-c".into(), script],
            env,
            mounts: Vec::new(),
            deps: Vec::new(),
            timeout_ms: self.cfg.env_build_timeout_s * 1000,
        };
        let dirs = StepDirs { work, output: venv, output_path: ENV_PATH.into(), tmp: staging.join("tmp") };
        let end = run_step(plan, &spec, run, &dirs).await;
        match end.status {
            Status::Succeeded => Ok(()),
            _ => Err(NodeError::Data(format!(
                "building the environment from requirements.txt failed: {} (pip's output is in the run's log)",
                end.error.unwrap_or_default()
            ))),
        }
    }
}
