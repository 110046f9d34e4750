//! One control group per job, under one the node owns, so that the kernel
//! bounds a job's memory, processes and CPU, and the node can tell which
//! limit a job hit and kill everything it started.
//!
//! Both hierarchies are supported. cgroup v2 (one tree at `/sys/fs/cgroup`)
//! is what production hosts run; v1 (a tree per controller) is what these
//! build machines have. The node's groups are named after the node
//! (`leasehold-{org}-{pid}`), so nodes sharing a host never meet.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{JobLimits, Unavailable};

const ROOT: &str = "/sys/fs/cgroup";
const V1_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The node's own groups: one per v1 controller, or one v2 group with the
/// memory, pids and cpu controllers enabled for its children.
#[derive(Debug)]
pub struct Cgroups {
    pub version: Version,
    parents: Vec<PathBuf>,
}

/// A job's group, removed (with anything still in it killed) by [`JobCgroup::remove`].
#[derive(Debug)]
pub struct JobCgroup {
    version: Version,
    dirs: Vec<PathBuf>,
}

/// This process's group in the hierarchy whose `/proc/self/cgroup` line
/// `matches`.
fn own_path(matches: impl Fn(&str) -> bool) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        matches(controllers).then(|| path.trim_start_matches('/').to_string())
    })
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl Cgroups {
    /// Creates the node's groups, or says why it cannot.
    pub fn detect(name: &str) -> Result<Self, Unavailable> {
        let root = Path::new(ROOT);
        let denied = |e: io::Error| {
            Unavailable::Cgroups(format!("{e} (run the node as root, or delegate a cgroup v2 subtree to its user)"))
        };
        if root.join("cgroup.controllers").exists() {
            let controllers = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            if let Some(missing) =
                ["memory", "pids", "cpu"].iter().find(|c| !controllers.split_whitespace().any(|x| x == **c))
            {
                return Err(Unavailable::Cgroups(format!("the v2 hierarchy has no {missing} controller")));
            }
            let own =
                own_path(|c| c.is_empty()).ok_or(Unavailable::Cgroups("no v2 entry in /proc/self/cgroup".into()))?;
            let own = root.join(own);
            let parent = Self::v2_parent(&own, name).map_err(denied)?;
            return Ok(Self { version: Version::V2, parents: vec![parent] });
        }
        let mut parents = Vec::new();
        for c in V1_CONTROLLERS {
            let mount = root.join(c);
            if !mount.join("cgroup.procs").exists() {
                return Err(Unavailable::Cgroups(format!(
                    "no {c} controller at {} (neither cgroup v2 nor v1 is usable)",
                    mount.display()
                )));
            }
            let own = own_path(|list| list.split(',').any(|x| x == c)).unwrap_or_default();
            let parent = mount.join(own).join(name);
            fs::create_dir_all(&parent)
                .map_err(|e| denied(io::Error::new(e.kind(), format!("{}: {e}", parent.display()))))?;
            parents.push(parent);
        }
        Ok(Self { version: Version::V1, parents })
    }

    /// v2 allows controllers for children only in a group with no processes
    /// of its own (the root excepted), so a node in a non-root group first
    /// moves itself into a leaf beside the jobs' parent.
    fn v2_parent(own: &Path, name: &str) -> io::Result<PathBuf> {
        if own != Path::new(ROOT) {
            let leaf = own.join(format!("{name}-node"));
            fs::create_dir_all(&leaf)?;
            write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
        }
        write(&own.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
        let parent = own.join(name);
        fs::create_dir_all(&parent)?;
        write(&parent.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
        Ok(parent)
    }

    pub fn describe(&self) -> &'static str {
        match self.version {
            Version::V1 => "cgroup v1",
            Version::V2 => "cgroup v2",
        }
    }

    /// A new group for one job, with its limits set.
    pub fn create_job(&self, job: &str, limits: &JobLimits) -> io::Result<JobCgroup> {
        let dirs: Vec<PathBuf> = self.parents.iter().map(|p| p.join(job)).collect();
        for d in &dirs {
            fs::create_dir_all(d)?;
        }
        let group = JobCgroup { version: self.version, dirs };
        if let Err(e) = group.set_limits(limits) {
            group.remove();
            return Err(e);
        }
        Ok(group)
    }

    /// Removes what a node that died left behind: its jobs' groups and its own.
    pub fn sweep_stale(&self) {
        for parent in &self.parents {
            let Some(base) = parent.parent() else { continue };
            let Some(mine) = parent.file_name().and_then(|n| n.to_str()) else { continue };
            let prefix = mine.rsplit_once('-').map_or(mine, |(p, _)| p);
            for entry in fs::read_dir(base).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(pid) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else { continue };
                if name != mine && pid.parse::<u32>().is_ok_and(|p| !Path::new("/proc").join(p.to_string()).exists()) {
                    for job in fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                        if job.path().is_dir() {
                            JobCgroup { version: self.version, dirs: vec![job.path()] }.remove();
                        }
                    }
                    let _ = fs::remove_dir(entry.path());
                }
            }
        }
    }
}

/// `key value` lines, as in `memory.events` and `pids.events`.
fn counter(path: &Path, key: &str) -> u64 {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0)
}

impl JobCgroup {
    fn dir(&self, controller: &str) -> &Path {
        match self.version {
            Version::V2 => &self.dirs[0],
            Version::V1 => &self.dirs[V1_CONTROLLERS.iter().position(|c| *c == controller).expect("known controller")],
        }
    }

    fn set_limits(&self, l: &JobLimits) -> io::Result<()> {
        let memory = (l.memory_mib << 20).to_string();
        let quota_us = ((l.cpu_cores * CPU_PERIOD_US as f64) as u64).max(1_000);
        match self.version {
            Version::V1 => {
                write(&self.dir("memory").join("memory.limit_in_bytes"), &memory)?;
                // With swap accounting, memory+swap too, so swap is no way around it.
                let memsw = self.dir("memory").join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &memory)?;
                }
                write(&self.dir("pids").join("pids.max"), &l.processes.to_string())?;
                write(&self.dir("cpu").join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&self.dir("cpu").join("cpu.cfs_quota_us"), &quota_us.to_string())
            }
            Version::V2 => {
                let d = &self.dirs[0];
                write(&d.join("memory.max"), &memory)?;
                if d.join("memory.swap.max").exists() {
                    write(&d.join("memory.swap.max"), "0")?;
                }
                write(&d.join("pids.max"), &l.processes.to_string())?;
                write(&d.join("cpu.max"), &format!("{quota_us} {CPU_PERIOD_US}"))
            }
        }
    }

    /// The files a process writes its pid to in order to join the group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// The limit the job has hit, if any: the kernel killed one of its
    /// processes for memory, or refused it a process.
    pub fn breach(&self, limits: &JobLimits) -> Option<String> {
        let oom = match self.version {
            Version::V1 => counter(&self.dir("memory").join("memory.oom_control"), "oom_kill"),
            Version::V2 => counter(&self.dirs[0].join("memory.events"), "oom_kill"),
        };
        if oom > 0 {
            return Some(format!("memory limit {} MiB reached", limits.memory_mib));
        }
        if counter(&self.dir("pids").join("pids.events"), "max") > 0 {
            return Some(format!("process limit {} reached", limits.processes));
        }
        None
    }

    fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs
            .iter()
            .flat_map(|d| {
                fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Kills every process in the group and removes it. Blocking: a few
    /// milliseconds while the killed processes exit.
    pub fn remove(&self) {
        if self.version == Version::V2 && self.dirs[0].join("cgroup.kill").exists() {
            let _ = write(&self.dirs[0].join("cgroup.kill"), "1");
        }
        // A process forked while the list was read joins the group too, so
        // kill until the group is empty; the pids limit bounds the rounds.
        for _ in 0..1000 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for d in &self.dirs {
            for _ in 0..500 {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memory.events");
        fs::write(&f, "low 0\nhigh 0\nmax 12\noom 1\noom_kill 2\noom_group_kill 0\n").unwrap();
        assert_eq!(counter(&f, "oom_kill"), 2);
        assert_eq!(counter(&f, "max"), 12);
        assert_eq!(counter(&f, "oom"), 1, "not confused with oom_kill");
        assert_eq!(counter(&dir.path().join("absent"), "max"), 0);
        fs::write(&f, "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n").unwrap();
        assert_eq!(counter(&f, "oom_kill"), 1, "the v1 memory.oom_control layout");
    }
}
