//! How a job's process is isolated. A job is hostile code: nothing in its
//! workflow may reach the host, and what it may use is bounded.
//!
//! When the node is root (the testnet, and a systemd service), each job
//! starts as a chain of three programs, none of which reads anything the
//! workflow wrote:
//!
//! 1. `bash`, as the node, with a fixed environment: it puts itself in the
//!    job's cgroup, sets `RLIMIT_CORE` to 0 and `RLIMIT_FSIZE` to the disk
//!    limit, closes every file descriptor but the seccomp filter's, and
//!    execs
//! 2. `bwrap`, still as the node's root but in new mount, pid, network, ipc,
//!    uts and cgroup namespaces, with every capability dropped except the
//!    three that step 3 needs. It shows the job `/usr` (and the usual
//!    links into it) read-only, the leased volumes read-only, the run's
//!    working directory at the workflow's `workdir` (`/home/jovyan`), the
//!    output directory, a private `/tmp`, `python` if the host lacks it,
//!    a fresh `/proc` and a minimal `/dev`; the rest of the root is a
//!    read-only tmpfs. Its environment is cleared but for a fixed `PATH`.
//!    It loads the seccomp filter and execs
//! 3. `setpriv`, which drops to the job's uid and gid (65534 by default),
//!    clears the groups, the bounding set and inheritable capabilities,
//!    sets no_new_privs, and execs
//! 4. `env -i`, now as the job's uid, which sets the job's environment
//!    (its `env:` included) and execs the job's command. Nothing of the
//!    workflow's environment is seen by a process that still has root:
//!    `LD_PRELOAD` and friends only ever reach the job's own uid.
//!
//! A job's secrets never appear on a command line, where any user of the
//! host could read them (`/proc/PID/cmdline`): the node writes them to a
//! memfd that bwrap copies to `/run/leasehold/secrets` inside the sandbox,
//! and step 4 starts a shell, as the job's uid and with an empty
//! environment, that exports them from there before it execs `env` with the
//! job's other variables and its command.
//!
//! So the job runs as an unprivileged host uid with no capabilities, no
//! network, no way to create namespaces (the filter refuses `unshare`,
//! `setns` and namespace flags to `clone`), no ptrace, mount, bpf, keyctl
//! or io_uring, inside a cgroup with memory, process and CPU limits.
//!
//! A node that is not root cannot change uid: bwrap then makes a user
//! namespace (`--unshare-user --disable-userns`), and the job's host uid is
//! the node's own; the run record says so.

pub mod cgroup;
mod limits;
mod remote;
pub mod seccomp;
mod watch;
mod workdir;

use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use command_fds::{CommandFdExt, FdMapping};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use self::cgroup::Cgroups;
pub use self::limits::JobLimits;
pub use self::remote::RemoteStep;
pub use self::watch::{dir_usage, Guard};
pub use self::workdir::WorkdirError;
use crate::secrets::SecretEnv;

/// Where the sandbox's own additions live: no volume may cover it.
pub const ALIAS_PARENT: &str = "/run/leasehold";
/// Where the outputs go when the workflow names no `outputs`.
pub const DEFAULT_OUTPUT_PATH: &str = "/output";
const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/run/leasehold/bin";

/// Commands the sandbox adds where the host lacks them, last on the PATH:
/// `python` is Python 3, as in jupyterflow's images, where a host has only
/// `python3`.
const ALIAS_DIR: &str = "/run/leasehold/bin";
/// Where a run's Python environment (`requirements.txt`) appears: first
/// on the jobs' `PATH`, read-only.
pub const ENV_PATH: &str = "/run/leasehold/venv";
/// What an environment's build sees of the host besides `/usr`: enough to
/// resolve names and check certificates, and pip's own configuration.
const NETWORK_FILES: &[&str] =
    &["/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/ssl", "/etc/ca-certificates", "/etc/pip.conf"];
/// The fd the seccomp filter reaches bwrap on.
const SECCOMP_FD: i32 = 3;
/// The fd a job's secrets reach bwrap on, when it has any.
const SECRETS_FD: i32 = 4;
/// Where bwrap puts them inside the sandbox: `NAME=value`, NUL-separated.
const SECRETS_PATH: &str = "/run/leasehold/secrets";
/// Run as the job's uid, in an empty environment: exports each secret from
/// the file named first, then execs `env` with the rest (the job's other
/// variables, then its command). The values never reach an argument list.
const SECRETS_READER: &str = r#"f=$1; shift
while IFS= read -r -d '' kv; do export "$kv" || exit 125; done < "$f"
unset f kv PWD OLDPWD
exec /usr/bin/env -u SHLVL -- "$@""#;

/// One protection a run had, for its record: what, how much, and by what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    pub name: String,
    pub value: String,
    pub enforced_by: String,
}

fn protection(name: &str, value: impl Into<String>, by: impl Into<String>) -> Protection {
    Protection { name: name.into(), value: value.into(), enforced_by: by.into() }
}

#[derive(Debug, Clone)]
pub enum Sandbox {
    Jail(Arc<Jail>),
    /// Only when the node's config allows it; every run record says so.
    Unsandboxed,
}

/// Everything a sandboxed job needs from the host, found once at start.
#[derive(Debug)]
pub struct Jail {
    bwrap: PathBuf,
    /// `Some` when the node is root and jobs drop to their own uid.
    setpriv: Option<PathBuf>,
    cgroups: Cgroups,
    limits: JobLimits,
}

/// Why this machine cannot give jobs the full sandbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// A program or filter the sandbox needs, and how to get it.
    #[error("{0}")]
    Missing(&'static str),
    #[error("cgroups: {0}")]
    Cgroups(String),
    #[error("bubblewrap cannot start: {0}")]
    Bubblewrap(String),
    #[error("bubblewrap cannot create namespaces here: {0}")]
    Namespaces(String),
}

fn find(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/local/bin", "/bin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.exists())
}

impl Sandbox {
    /// The full sandbox, or the name of the protection this machine lacks.
    /// `name` names the node's cgroups (`leasehold-{org}-{pid}`).
    pub fn detect(name: &str, limits: &JobLimits) -> Result<Self, Unavailable> {
        let missing = Unavailable::Missing;
        let bwrap = find("bwrap").ok_or(missing("bubblewrap is not installed (apt install bubblewrap)"))?;
        find("bash").ok_or(missing("bash is not installed"))?;
        let root = nix::unistd::geteuid().is_root();
        let setpriv = match root {
            true => Some(find("setpriv").ok_or(missing("setpriv is not installed (apt install util-linux)"))?),
            false => None,
        };
        seccomp::program().ok_or(missing("no seccomp filter for this architecture"))?;
        let cgroups = Cgroups::detect(&format!("leasehold-{name}-{}", std::process::id()))?;
        cgroups.sweep_stale();
        let jail = Jail { bwrap, setpriv, cgroups, limits: limits.clone() };
        let probe = std::process::Command::new(&jail.bwrap)
            .args(jail.namespace_args(false))
            .args(["--ro-bind", "/usr", "/usr"])
            .args(system_binds())
            .args(["--", "/usr/bin/true"])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Unavailable::Bubblewrap(e.to_string()))?;
        if !probe.status.success() {
            let why = String::from_utf8_lossy(&probe.stderr).trim().to_string();
            return Err(Unavailable::Namespaces(why));
        }
        Ok(Self::Jail(Arc::new(jail)))
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Jail(j) => format!(
                "bubblewrap ({}): no network, volumes read-only, {}, seccomp, {}",
                j.bwrap.display(),
                match j.setpriv {
                    Some(_) => format!("uid {}", j.limits.job_uid),
                    None => "the node's own uid in a user namespace".into(),
                },
                j.cgroups.describe()
            ),
            Self::Unsandboxed => "NONE: jobs ran as the node's user with its network and files, because \
                                  workflow.allow_unsandboxed is set in the node's config"
                .into(),
        }
    }

    /// What a run under this sandbox is held to, and by what.
    pub fn protections(&self) -> Vec<Protection> {
        let Self::Jail(j) = self else { return Vec::new() };
        let (l, cg) = (&j.limits, j.cgroups.describe());
        let (mem, pids, cpu) = match j.cgroups.version {
            cgroup::Version::V1 => ("memory.limit_in_bytes", "pids.max", "cpu.cfs_quota_us"),
            cgroup::Version::V2 => ("memory.max", "pids.max", "cpu.max"),
        };
        let user = match j.setpriv {
            Some(_) => {
                protection("uid", format!("{}:{}", l.job_uid, l.job_gid), "setpriv, no capabilities, no_new_privs")
            }
            None => protection("uid", "the node's", "a user namespace; the node is not root"),
        };
        vec![
            user,
            protection("syscalls", seccomp::denied_names().join(", "), "seccomp (EPERM)"),
            protection("namespaces", "none may be created", "seccomp, and bwrap's own namespaces"),
            protection("memory", format!("{} MiB", l.memory_mib), format!("{cg} {mem}")),
            protection("processes", l.processes.to_string(), format!("{cg} {pids}")),
            protection("cpu", format!("{} cores", l.cpu_cores), format!("{cg} {cpu}")),
            protection("/tmp", format!("{} MiB", l.tmp_mib), "the node's watcher every 100 ms"),
            protection(
                "disk",
                format!("{} MiB in the working and output directories", l.disk_mib),
                "RLIMIT_FSIZE per file, the node's watcher every 100 ms in all",
            ),
            protection("logs", format!("{} MiB per job, {} MiB per run", l.log_job_mib, l.log_run_mib), "the node"),
        ]
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
    /// Names the job's cgroup: unique on this node.
    pub id: &'a str,
    pub argv: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub mounts: &'a [Mount],
    pub work_dir: &'a Path,
    /// Where the working directory appears inside the sandbox: the jobs'
    /// `$HOME` and current directory.
    pub home: &'a str,
    pub output_dir: &'a Path,
    /// Where the output directory appears inside the sandbox.
    pub output_path: &'a str,
    /// The job's private `/tmp` on the host, created here and removed by the guard.
    pub tmp_dir: &'a Path,
    /// The run's Python environment on the host, mounted read-only at `ENV_PATH`.
    pub python_env: Option<&'a Path>,
    /// Only for building an environment: the host's network, and the files
    /// in `NETWORK_FILES`. A job never has it.
    pub network: bool,
    /// Handed to the job as environment variables, off its command line.
    pub secrets: &'a SecretEnv,
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
    // Made by bwrap for its files, /etc would be 0700: closed to the job's uid.
    args.extend(["--perms".into(), "0755".into(), "--dir".into(), "/etc".into()]);
    let etc = ["/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime", "/etc/passwd", "/etc/group"];
    for f in etc.into_iter().chain(["/etc/os-release", "/etc/debian_version"]) {
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

/// Joins the cgroups named before `--`, sets the core and file-size limits,
/// closes every inherited descriptor above the one named next (the seccomp
/// filter's, or the secrets'), and execs the rest. Arguments arrive as
/// positional parameters: nothing is parsed.
const LAUNCHER: &str = r#"while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift
keep=$1; shift
ulimit -c 0 && ulimit -f "$1" || exit 125; shift
for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt "$keep" ] && eval "exec $n>&-" 2>/dev/null; done
exec "$@""#;

impl Jail {
    fn namespace_args(&self, network: bool) -> Vec<String> {
        let mut a = vec!["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"];
        if !network {
            a.push("--unshare-net");
        }
        a.extend(["--die-with-parent", "--new-session"]);
        let mut a: Vec<String> = a.into_iter().map(String::from).collect();
        match self.setpriv {
            // Real root makes the mounts; setpriv needs these three to drop uid.
            Some(_) => a.extend(
                ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
                    .map(String::from),
            ),
            None => {
                a.extend(["--unshare-user", "--disable-userns", "--cap-drop", "ALL"].map(String::from));
                a.extend([
                    "--uid".into(),
                    self.limits.job_uid.to_string(),
                    "--gid".into(),
                    self.limits.job_gid.to_string(),
                ]);
            }
        }
        a
    }

    /// The job's private `/tmp`, and the directories it writes owned by
    /// its uid when it drops to one.
    fn prepare_dirs(&self, job: &JobCommand) -> std::io::Result<()> {
        let (uid, gid) = (self.limits.job_uid, self.limits.job_gid);
        std::fs::create_dir_all(job.tmp_dir)?;
        std::fs::set_permissions(job.tmp_dir, std::fs::Permissions::from_mode(0o700))?;
        if self.setpriv.is_some() {
            // The working directory is the node's, sticky (`prepare_workdir`).
            for d in [job.output_dir, job.tmp_dir] {
                std::os::unix::fs::chown(d, Some(uid), Some(gid))?;
            }
        }
        Ok(())
    }

    /// Starts the job: its cgroup, its private `/tmp`, then the process.
    /// The guard watches its limits and cleans up after it.
    fn spawn(&self, job: &JobCommand) -> std::io::Result<(Child, Guard)> {
        self.prepare_dirs(job)?;
        let cgroup = self.cgroups.create_job(job.id, &self.limits).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(job.tmp_dir);
        })?;
        let guard = Guard::new(Some(cgroup), Some(self.limits.clone()), job);
        let mut filter = tempfile::tempfile()?;
        filter.write_all(seccomp::program().expect("checked at detection"))?;
        filter.rewind()?;

        let mut cmd = Command::new("/bin/bash");
        cmd.arg("-c").arg(LAUNCHER).arg("leasehold-job");
        cmd.args(guard.procs_files()).arg("--");
        cmd.args(self.chain(job));
        // The host side gets a fixed environment: nothing of the workflow's.
        cmd.env_clear().env("PATH", "/usr/bin:/bin");
        let mut fds = vec![FdMapping { parent_fd: filter.into(), child_fd: SECCOMP_FD }];
        if !job.secrets.is_empty() {
            fds.push(FdMapping { parent_fd: secrets_memfd(job.secrets)?, child_fd: SECRETS_FD });
        }
        cmd.fd_mappings(fds).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok((start(cmd)?, guard))
    }

    /// What the launcher execs, from its file-size limit on: bwrap, then
    /// setpriv, then `env -i` and the job's command.
    fn chain(&self, job: &JobCommand) -> Vec<std::ffi::OsString> {
        let (uid, gid) = (self.limits.job_uid, self.limits.job_gid);
        let mut cmd = Args::default();
        let secrets = !job.secrets.is_empty();
        cmd.arg(if secrets { SECRETS_FD } else { SECCOMP_FD }.to_string());
        // bash counts RLIMIT_FSIZE in KiB.
        cmd.arg((self.limits.disk_mib.max(self.limits.tmp_mib) * 1024).to_string());
        cmd.arg(&self.bwrap).args(self.namespace_args(job.network));
        cmd.args(["--seccomp", &SECCOMP_FD.to_string()]);
        cmd.args(["--ro-bind", "/usr", "/usr"]).args(system_binds());
        cmd.args(["--proc", "/proc", "--dev", "/dev"]);
        if job.network {
            for f in NETWORK_FILES {
                cmd.args(["--ro-bind-try", f, f]);
            }
        }
        // bwrap makes a mount point's missing parents 0700, which the job's
        // uid could not walk through: make them first, 0755. Those inside
        // the working directory are there already (`prepare_workdir`).
        let dests = job.mounts.iter().map(|m| m.path.as_str()).chain([job.output_path, job.home]);
        let outside = |p: &&Path| !p.starts_with(job.home);
        for parent in mount_parents(dests).into_iter().filter(outside) {
            cmd.args(["--perms", "0755", "--dir"]).arg(parent);
        }
        cmd.arg("--bind").arg(job.tmp_dir).arg("/tmp");
        cmd.arg("--bind").arg(job.work_dir).arg(job.home);
        cmd.arg("--bind").arg(job.output_dir).arg(job.output_path);
        for m in job.mounts {
            cmd.arg("--ro-bind").arg(&m.host).arg(&m.path);
        }
        for dir in ["/run", ALIAS_PARENT, ALIAS_DIR] {
            cmd.args(["--perms", "0755", "--dir", dir]);
        }
        if secrets {
            // Readable by the job's uid, which step 4 runs as.
            cmd.args(["--perms", "0444", "--ro-bind-data", &SECRETS_FD.to_string(), SECRETS_PATH]);
        }
        if let Some(env) = job.python_env {
            cmd.arg("--ro-bind").arg(env).arg(ENV_PATH);
        }
        cmd.args(["--symlink", "/usr/bin/python3"]);
        cmd.arg(format!("{ALIAS_DIR}/python"));
        cmd.args(["--remount-ro", "/", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin"]);
        cmd.args(["--chdir", job.home, "--"]);
        if let Some(setpriv) = &self.setpriv {
            cmd.arg(setpriv).args(["--reuid", &uid.to_string(), "--regid", &gid.to_string()]);
            cmd.args(["--clear-groups", "--bounding-set", "-all", "--inh-caps", "-all", "--no-new-privs", "--"]);
        }
        // After the drop: the job's variables, then its command. `env` reads
        // NAME=VALUE words until the first without `=`; names are checked
        // identifiers, and a command's first word may not hold `=`.
        cmd.args(["/usr/bin/env", "-i", "--"]);
        if secrets {
            cmd.args(["/bin/bash", "--noprofile", "--norc", "-c", SECRETS_READER, "leasehold-secrets", SECRETS_PATH]);
        }
        for (k, v) in job_env(job, job.home, Path::new(job.output_path), |m| Path::new(&m.path)) {
            let mut kv = std::ffi::OsString::from(format!("{k}="));
            kv.push(v);
            cmd.arg(kv);
        }
        cmd.args(job.argv);
        cmd.0
    }
}

/// A command line being built, as `Command` builds one.
#[derive(Default)]
struct Args(Vec<std::ffi::OsString>);

impl Args {
    fn arg(&mut self, a: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.0.push(a.as_ref().to_owned());
        self
    }

    fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(&mut self, args: I) -> &mut Self {
        self.0.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }
}

/// Every proper ancestor of the given absolute paths, parents first.
fn mount_parents<'a>(paths: impl Iterator<Item = &'a str>) -> std::collections::BTreeSet<&'a Path> {
    let mut out = std::collections::BTreeSet::new();
    for p in paths {
        out.extend(Path::new(p).ancestors().skip(1).filter(|a| *a != Path::new("/")));
    }
    out
}

/// The variables a job sees: the fixed ones, then its own `env`.
fn job_env<'a>(
    job: &'a JobCommand,
    home: impl AsRef<Path>,
    output: &Path,
    volume_path: impl Fn(&'a Mount) -> &'a Path,
) -> Vec<(String, std::ffi::OsString)> {
    let path = match job.python_env {
        Some(_) => format!("{ENV_PATH}/bin:{SANDBOX_PATH}"),
        None => SANDBOX_PATH.into(),
    };
    let mut env = vec![
        ("PATH".to_string(), path.into()),
        ("HOME".to_string(), home.as_ref().as_os_str().to_owned()),
        ("TMPDIR".to_string(), "/tmp".into()),
        ("LANG".to_string(), "C.UTF-8".into()),
        ("OUTPUT_DIR".to_string(), output.as_os_str().to_owned()),
    ];
    if job.python_env.is_some() {
        env.push(("VIRTUAL_ENV".to_string(), ENV_PATH.into()));
    }
    env.extend(job.mounts.iter().map(|m| (volume_var(&m.name), volume_path(m).as_os_str().to_owned())));
    env.extend(job.env.iter().map(|(k, v)| (k.clone(), v.into())));
    env
}

/// The job's secrets in a memfd: in memory only, never in a file on disk.
fn secrets_memfd(secrets: &SecretEnv) -> std::io::Result<std::os::fd::OwnedFd> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(c"leasehold-secrets", MFdFlags::MFD_CLOEXEC).map_err(std::io::Error::from)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&secrets.nul_separated())?;
    file.rewind()?;
    Ok(file.into())
}

/// Its own process group, so that a kill reaches everything it started.
fn start(mut cmd: Command) -> std::io::Result<Child> {
    cmd.process_group(0).kill_on_drop(true).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn()
}

impl Sandbox {
    /// Starts one job's process, and returns it with the guard that
    /// watches its limits and removes what it leaves.
    pub fn spawn(&self, job: &JobCommand) -> std::io::Result<(Child, Guard)> {
        match self {
            Self::Jail(jail) => jail.spawn(job),
            Self::Unsandboxed => {
                let mut c = Command::new(&job.argv[0]);
                c.args(&job.argv[1..]).current_dir(job.work_dir).env_clear();
                for (k, v) in job_env(job, job.work_dir, job.output_dir, |m| &m.host) {
                    c.env(k, v);
                }
                c.envs(job.secrets.pairs());
                if !job.env.contains_key("PATH") {
                    c.env("PATH", std::env::var_os("PATH").unwrap_or_else(|| SANDBOX_PATH.into()));
                }
                let guard = Guard::new(None, None, job);
                Ok((start(c)?, guard))
            }
        }
    }
}
