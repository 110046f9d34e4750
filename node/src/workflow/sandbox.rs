//! How a job's process is isolated. With bubblewrap: new user, pid, net,
//! ipc and uts namespaces (so no network), the system's `/usr` read-only,
//! leased volumes read-only at their paths, the run's working directory as
//! `$HOME` and the output directory writable, a private `/tmp`, and nothing
//! else of the host: not the node's keys, ledger or other runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// The job's working directory and `$HOME` inside the sandbox.
pub const JOB_HOME: &str = "/job";
/// Where the outputs go when the workflow names no `outputs`.
pub const DEFAULT_OUTPUT_PATH: &str = "/output";
const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    Bubblewrap(PathBuf),
    /// Only when the node's config allows it; every run record says so.
    Unsandboxed,
}

impl Sandbox {
    /// bubblewrap, if it is installed and can create namespaces here.
    pub fn detect() -> Option<Self> {
        let bwrap = ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())?;
        let probe = std::process::Command::new(&bwrap)
            .args(["--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr"])
            .args(system_binds())
            .args(["--", "/usr/bin/true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        matches!(probe, Ok(s) if s.success()).then_some(Self::Bubblewrap(bwrap))
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Bubblewrap(p) => format!("bubblewrap ({}): no network, volumes read-only", p.display()),
            Self::Unsandboxed => "NONE: jobs ran as the node's user with its network and files, because \
                                  workflow.allow_unsandboxed is set in the node's config"
                .into(),
        }
    }
}

/// A leased volume: the verified cache on the host, and where the job sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub name: String,
    pub host: PathBuf,
    pub path: String,
}

/// Everything needed to start one job's process.
pub struct JobCommand<'a> {
    pub argv: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub mounts: &'a [Mount],
    pub work_dir: &'a Path,
    pub output_dir: &'a Path,
    /// Where the output directory appears inside the sandbox.
    pub output_path: &'a str,
}

/// `/bin`, `/lib` and friends: bound if they are directories, recreated if
/// they are the usual symlinks into `/usr`.
fn system_binds() -> Vec<String> {
    let mut args = Vec::new();
    for d in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        let p = Path::new(d);
        if let Ok(target) = std::fs::read_link(p) {
            args.extend(["--symlink".into(), target.to_string_lossy().into_owned(), d.into()]);
        } else if p.is_dir() {
            args.extend(["--ro-bind".into(), d.into(), d.into()]);
        }
    }
    for f in ["/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime", "/etc/passwd", "/etc/group"] {
        args.extend(["--ro-bind-try".into(), f.into(), f.into()]);
    }
    args
}

/// `VOLUME_<NAME>`: lets a job find a volume by name in either mode.
fn volume_var(name: &str) -> String {
    let n: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("VOLUME_{n}")
}

pub fn command(sandbox: &Sandbox, job: &JobCommand) -> Command {
    let mut cmd = match sandbox {
        Sandbox::Bubblewrap(bwrap) => {
            let mut c = Command::new(bwrap);
            c.args(["--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]);
            c.args(system_binds());
            c.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
            c.arg("--bind").arg(job.work_dir).arg(JOB_HOME);
            c.arg("--bind").arg(job.output_dir).arg(job.output_path);
            for m in job.mounts {
                c.arg("--ro-bind").arg(&m.host).arg(&m.path);
            }
            c.args(["--chdir", JOB_HOME, "--"]).args(job.argv);
            c.env_clear().env("PATH", SANDBOX_PATH).env("HOME", JOB_HOME).env("TMPDIR", "/tmp");
            c.env("OUTPUT_DIR", job.output_path);
            for m in job.mounts {
                c.env(volume_var(&m.name), &m.path);
            }
            c
        }
        Sandbox::Unsandboxed => {
            let mut c = Command::new(&job.argv[0]);
            c.args(&job.argv[1..]).current_dir(job.work_dir);
            c.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_else(|| SANDBOX_PATH.into()));
            c.env("HOME", job.work_dir).env("OUTPUT_DIR", job.output_dir);
            for m in job.mounts {
                c.env(volume_var(&m.name), &m.host);
            }
            c
        }
    };
    cmd.env("LANG", "C.UTF-8").envs(job.env);
    // Its own process group, so that a kill reaches everything it started.
    cmd.process_group(0).kill_on_drop(true).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}
