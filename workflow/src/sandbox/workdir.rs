//! The run's working directory, made safe to mount volumes inside.
//!
//! jupyterflow's users mount volumes inside their home (`/home/jovyan/uis`),
//! which is also the directory the run's jobs write to. bubblewrap, as
//! root, makes a mount point that is missing, and follows whatever link a
//! job left on the way. So the node makes every mount point itself, before
//! any job starts, as root-owned directories the jobs cannot write into
//! (a directory of the workflow's on the way becomes one too: its files stay
//! the jobs', but no entry in it can be added, removed or renamed), and makes the working directory root-owned and sticky (mode 1777): a job
//! may add and change its own files there, but can neither remove nor
//! rename a mount point to put a link in its place.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use super::Sandbox;

/// Why the working directory cannot take a volume: the volume's path inside
/// the sandbox, and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkdirError {
    pub path: String,
    pub reason: String,
    /// The host's file system failed: the node's fault, not the workflow's.
    pub io: bool,
}

impl Sandbox {
    /// Prepares `work_dir` (seen at `home`) for jobs that mount volumes at
    /// `mounts` (paths inside the sandbox). Call it once per run, before any
    /// job starts and after the bundle is in place.
    pub fn prepare_workdir(&self, work_dir: &Path, home: &str, mounts: &[&str]) -> Result<(), WorkdirError> {
        let mut inside: Vec<&str> = mounts.iter().copied().filter(|m| Path::new(m).starts_with(home)).collect();
        // Outer before inner: a volume's mount point may be on the way to
        // another's, never the other way round.
        inside.sort_by_key(|m| Path::new(m).components().count());
        let Self::Jail(jail) = self else { return Ok(()) };
        if jail.setpriv.is_none() {
            // Without root, jobs run as the node's own uid, which owns
            // whatever it could make here: no mount point would be safe.
            if let Some(m) = inside.first() {
                let why = format!(
                    "this node does not run as root, so a volume cannot be mounted inside the working directory \
                     {home:?}; mount it elsewhere, e.g. under /data"
                );
                return Err(WorkdirError { path: m.to_string(), reason: why, io: false });
            }
            return Ok(());
        }
        fn io(path: &str) -> impl Fn(std::io::Error) -> WorkdirError + '_ {
            move |e| WorkdirError { path: path.into(), reason: e.to_string(), io: true }
        }
        std::os::unix::fs::lchown(work_dir, Some(0), Some(0)).map_err(io(home))?;
        std::fs::set_permissions(work_dir, std::fs::Permissions::from_mode(0o1777)).map_err(io(home))?;
        for m in inside {
            let rel = Path::new(m).strip_prefix(home).expect("filtered above");
            let names: Vec<_> = rel
                .components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n),
                    _ => None,
                })
                .collect();
            let mut at = work_dir.to_path_buf();
            for (i, name) in names.iter().enumerate() {
                at.push(name);
                let last = i + 1 == names.len();
                match std::fs::symlink_metadata(&at) {
                    // A directory of the bundle on the way, or one made for
                    // an earlier volume: it becomes the node's.
                    Ok(meta) if meta.is_dir() && (!last || is_empty(&at)) => {}
                    Ok(_) => {
                        let why = format!(
                            "the workflow's directory has {:?} where this volume is mounted; \
                             rename it, or mount the volume elsewhere",
                            at.strip_prefix(work_dir).unwrap_or(&at)
                        );
                        return Err(WorkdirError { path: m.into(), reason: why, io: false });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&at).map_err(io(m))?,
                    Err(e) => return Err(io(m)(e)),
                }
                std::os::unix::fs::lchown(&at, Some(0), Some(0)).map_err(io(m))?;
                std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755)).map_err(io(m))?;
            }
        }
        Ok(())
    }
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}
