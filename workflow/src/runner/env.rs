//! A run's Python environment: a virtual environment built with pip from
//! the workflow's `requirements.txt`, before any test or job runs, and
//! mounted read-only for them at `sandbox::ENV_PATH`.
//!
//! An environment is keyed by the hash of the requirements and of the
//! interpreter, and kept under `envs/` in the data directory: a second run
//! with the same requirements starts at once. It holds exactly the
//! requirements (no system site packages), so the key names what is in it.
//!
//! The build is the one step with network (pip must download), so no code
//! of the workflow's may run in it: a requirements file names packages and
//! versions only (no options, URLs or paths, so packages come from the
//! node's own index), and pip installs wheels only (`--only-binary=:all:`),
//! which it unpacks without running anything of theirs. It runs in the
//! sandbox as the jobs' uid, with none of the node's files: its own empty
//! directory, the requirements file, `/usr` read-only and what name
//! resolution and TLS need. It is written into a staging directory, its
//! modes made plain, synced, and renamed into place whole, so a crash
//! leaves no half-built environment to be taken for a built one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::Runner;
use super::{Result, RunError};
use crate::exec::{Executor, JobSpec, Local, Plan, StepDirs, StepKind};
use crate::live::{LiveRun, Status, Stream};
use crate::sandbox::ENV_PATH;
use crate::{Workflow, WorkflowError};

/// The interpreter environments are made from, inside the sandbox as on the host.
const PYTHON: &str = "/usr/bin/python3";
/// Where a build is staged, under `envs/`.
const BUILDING: &str = ".build-";
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

/// A requirements file the node can build: checked at submission.
#[derive(Debug, Clone)]
pub struct EnvSpec {
    pub requirements: Vec<u8>,
    pub key: [u8; 32],
}

/// Why a requirements file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequirement {
    #[error("is not UTF-8 text")]
    NotUtf8,
    #[error("line {number}: {why}")]
    Line { number: usize, why: &'static str },
}

/// Each line names a package, with extras, versions and markers, and
/// nothing else. The reason names the line.
pub fn check_requirements(requirements: &[u8]) -> std::result::Result<(), BadRequirement> {
    let text = std::str::from_utf8(requirements).map_err(|_| BadRequirement::NotUtf8)?;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split(" #").next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let why = if line.starts_with('-') {
            "options are not taken: packages come from the node's own index"
        } else if line.contains("://") || line.contains(['@', '/', '\\']) {
            "URLs and paths are not taken: name a package and its version"
        } else if !line.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            "does not start with a package name"
        } else {
            continue;
        };
        return Err(BadRequirement::Line { number: n + 1, why });
    }
    Ok(())
}

/// The key of the environment `requirements` makes with this host's Python:
/// the sha256 of both.
pub fn env_key(requirements: &[u8]) -> Result<[u8; 32]> {
    let python = std::fs::canonicalize(PYTHON).and_then(std::fs::read).map_err(|e| {
        RunError::Unavailable(format!("this node has no Python to build environments with: {PYTHON}: {e}"))
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
        self.dirs.envs_root()
    }

    /// The environment for `requirements`, built now unless it is cached.
    /// Concurrent runs with the same key wait for one build.
    pub(super) async fn environment(&self, run: &Arc<LiveRun>, plan: &Plan, spec: &EnvSpec) -> Result<PathBuf> {
        let (requirements, key) = (&spec.requirements, hex::encode(spec.key));
        let dir = self.envs_root().join(&key);
        let lock = self.fetching.lock().expect("fetch lock").entry(format!("env-{key}")).or_default().clone();
        let _one_build = lock.lock().await;
        if dir.exists() {
            run.log(None, Stream::Runner, &format!("environment {} reused from the cache", &key[..16]));
            return Ok(dir);
        }
        let staging = self.envs_root().join(format!("{BUILDING}{}", hex::encode(rand::random::<[u8; 8]>())));
        // Removed however this ends, a cancel that drops the build included.
        let _staging = super::RemoveOnDrop(staging.clone());
        self.build(run, plan, requirements, &staging).await?;
        let venv = staging.join("venv");
        let fail = |e: std::io::Error| RunError::file(&venv, e);
        // Read-only to the jobs, the node's on the host, no special bits.
        plain_modes(&venv).map_err(fail)?;
        leasehold_files::durable::sync_tree(&venv).map_err(fail)?;
        leasehold_files::durable::rename(&venv, &dir).map_err(fail)?;
        Ok(dir)
    }

    /// Builds cut short by a crash or a stop.
    pub(super) fn delete_unfinished_builds(&self) {
        let Ok(entries) = std::fs::read_dir(self.envs_root()) else { return };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(BUILDING) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    async fn build(&self, run: &Arc<LiveRun>, plan: &Plan, requirements: &[u8], staging: &Path) -> Result<()> {
        let (work, venv) = (staging.join("work"), staging.join("venv"));
        for d in [&work, &venv] {
            leasehold_files::durable::create_dirs(d).map_err(|e| RunError::file(d, e))?;
        }
        let req = work.join("requirements.txt");
        leasehold_files::durable::write_atomic(&req, requirements, 0o644).map_err(|e| RunError::file(&req, e))?;
        let script = format!(
            "{PYTHON} -m venv {ENV_PATH} && \
             {ENV_PATH}/bin/pip install --no-input --disable-pip-version-check --no-warn-script-location \
             --only-binary=:all: -r requirements.txt"
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
        // On the node's own host whatever the executor: the build needs the
        // network, which compute nodes may lack, and its result is shared.
        let end = Local.run_step(plan, &spec, run, &dirs).await;
        match end.status {
            Status::Succeeded => Ok(()),
            _ => Err(RunError::Data(format!(
                "building the environment from requirements.txt failed: {} (pip's output is in the run's log)",
                end.error.unwrap_or_default()
            ))),
        }
    }
}

/// The node's (when it is root), directories 0755 and files 0644 or 0755:
/// nothing the build left writable by others, setuid or setgid.
fn plain_modes(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let root = nix::unistd::geteuid().is_root();
    let own = |p: &Path| if root { std::os::unix::fs::lchown(p, Some(0), Some(0)) } else { Ok(()) };
    own(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            own(&path)?;
        } else if meta.is_dir() {
            plain_modes(&path)?;
        } else {
            own(&path)?;
            let mode = if meta.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

/// The requirements file: the one the workflow names, else the bundle's
/// `requirements.txt` if it has one.
pub(super) fn requirements(wf: &Workflow, files: Option<&Path>) -> Result<Option<Vec<u8>>> {
    let named = wf.requirements.as_deref();
    let path = match (named, files) {
        (Some(_), None) => {
            let why = "names a file of the workflow's directory: send it with leasehold run -f DIR/workflow.yaml";
            return Err(WorkflowError::new(None, "requirements", why).into());
        }
        (_, None) => return Ok(None),
        (Some(name), Some(dir)) => dir.join(name),
        (None, Some(dir)) if dir.join("requirements.txt").is_file() => dir.join("requirements.txt"),
        (None, Some(_)) => return Ok(None),
    };
    let field = if named.is_some() { "requirements" } else { "bundle" };
    let bytes = leasehold_files::open_plain(&path)
        .and_then(|f| {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_REQUIREMENTS_BYTES as u64 + 1), &mut buf)?;
            Ok(buf)
        })
        .map_err(|e| {
            WorkflowError::new(None, field, format!("{}: {e}", path.file_name().unwrap_or_default().to_string_lossy()))
        })?;
    if bytes.len() > MAX_REQUIREMENTS_BYTES {
        let why = format!("a requirements file holds at most {} bytes", MAX_REQUIREMENTS_BYTES);
        return Err(WorkflowError::new(None, field, why).into());
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    check_requirements(&bytes).map_err(|why| WorkflowError::new(None, field, format!("{name}: {why}")))?;
    // A file of comments only (a workspace's starting point) asks for
    // nothing: the jobs run on the host's Python, with no build.
    let names_a_package = String::from_utf8_lossy(&bytes).lines().any(|l| {
        let line = l.split(" #").next().unwrap_or_default().trim();
        !line.is_empty() && !line.starts_with('#')
    });
    Ok(names_a_package.then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::{check_requirements, BadRequirement};

    #[test]
    fn requirements_name_packages_and_nothing_else() {
        let ok = "# pinned\nsix==1.16.0\nnumpy>=1.26,<3  # inline comment\nrequests[socks]~=2.31; python_version >= '3.8'\n\n";
        check_requirements(ok.as_bytes()).unwrap();
        for (bad, why) in [
            ("six\n-e git+https://x.example/r.git\n", "line 2: options"),
            ("--extra-index-url https://x.example\n", "line 1: options"),
            ("pkg @ https://x.example/p.whl\n", "line 1: URLs and paths"),
            ("https://x.example/p.whl\n", "line 1: URLs and paths"),
            ("./local/pkg\n", "line 1: URLs and paths"),
            ("[extra]\n", "line 1: does not start"),
        ] {
            let e = check_requirements(bad.as_bytes()).unwrap_err().to_string();
            assert!(e.starts_with(why), "{bad:?}: {e}");
        }
        assert_eq!(check_requirements(&[0xff, 0xfe]).unwrap_err(), BadRequirement::NotUtf8);
    }
}
