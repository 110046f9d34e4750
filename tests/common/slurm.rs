//! A real one-node Slurm cluster of the test's own, on loopback: `munged`
//! with a test key, `slurmctld` and `slurmd` from Debian's packages, each
//! with its config, ports, state and spool under a temporary directory, and
//! all stopped when the fixture drops. Shared by the node's tests and the
//! workflow crate's (included there by path, beside `ports.rs`), so it uses
//! std, tempfile and `super::ports` only.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The partition the fixture's jobs go to.
pub const PARTITION: &str = "leasehold";

pub struct Cluster {
    pub dir: tempfile::TempDir,
    /// Its `slurm.conf`: what `SLURM_CONF` names for Slurm's commands.
    pub conf: PathBuf,
    /// The directory the node and the compute node share.
    pub shared: PathBuf,
    daemons: Vec<Child>,
    /// The Slurm node's name: its cgroups are `slurm_{node}`.
    node: String,
    /// slurmctld's and slurmd's, held for the cluster's life.
    _ports: Vec<super::ports::Port>,
}

/// `Some(why)` when Slurm cannot run here: not root, or not installed.
fn missing() -> Option<String> {
    // /proc/self belongs to the process's effective uid.
    if std::fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
        return Some("a Slurm cluster needs root (its daemons and job cgroups)".into());
    }
    for p in ["/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch"] {
        if !Path::new(p).exists() {
            return Some(format!("{p} is missing (apt install munge slurmctld slurmd slurm-client)"));
        }
    }
    None
}

impl Cluster {
    /// Starts the cluster, or says SKIPPED and returns `None` where it
    /// cannot run; with `LEASEHOLD_REQUIRE_ROOT` or `LEASEHOLD_REQUIRE_SLURM`
    /// set (scripts/test.sh sets the latter as root) that is a failure.
    /// `under` is where its directory goes (not under `/tmp`, which jobs
    /// never share).
    pub fn start(under: &Path) -> Option<Self> {
        if let Some(why) = missing() {
            for must in ["LEASEHOLD_REQUIRE_ROOT", "LEASEHOLD_REQUIRE_SLURM"] {
                assert!(std::env::var_os(must).is_none(), "{why}, and {must} is set");
            }
            eprintln!("SKIPPED: {why}");
            return None;
        }
        std::fs::create_dir_all(under).unwrap();
        let dir = tempfile::tempdir_in(under).unwrap();
        let d = dir.path().to_path_buf();
        for sub in ["state", "spool", "shared", "log"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = d.join("munge.key");
        std::fs::File::create(&key).unwrap().write_all(&random_bytes(1024)).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
        let socket = d.join("munge.socket");
        let ports = super::ports::reserve(2);
        let (ctld, slurmd) = (ports[0].number, ports[1].number);
        let mut cluster = Self {
            conf: d.join("slurm.conf"),
            shared: d.join("shared"),
            dir,
            daemons: Vec::new(),
            node: String::new(),
            _ports: ports,
        };
        cluster.spawn(Command::new("/usr/sbin/munged").args(["-F", "-f"]).args([
            format!("--socket={}", socket.display()),
            format!("--key-file={}", key.display()),
            format!("--log-file={}", d.join("log/munged.log").display()),
            format!("--pid-file={}", d.join("munged.pid").display()),
            format!("--seed-file={}", d.join("munged.seed").display()),
        ]));
        wait_until("munged's socket", Duration::from_secs(10), || socket.exists());
        // Unique per process: slurmd names its cgroups after its node.
        let node = format!("lh{}", std::process::id());
        cluster.node = node.clone();
        std::fs::write(&cluster.conf, slurm_conf(&d, &node, &socket, (ctld, slurmd))).unwrap();
        std::fs::write(d.join("cgroup.conf"), CGROUP_CONF).unwrap();
        cluster.spawn(Command::new("/usr/sbin/slurmctld").args(["-D", "-i"]));
        cluster.spawn(Command::new("/usr/sbin/slurmd").args(["-D", "-N", &node]));
        let idle = || cluster.sinfo().is_some_and(|s| s.trim() == "idle");
        wait_until("the Slurm node to be idle", Duration::from_secs(60), idle);
        Some(cluster)
    }

    fn spawn(&mut self, cmd: &mut Command) {
        let name = Path::new(cmd.get_program()).file_name().unwrap().to_string_lossy().into_owned();
        let log = std::fs::File::create(self.dir.path().join("log").join(format!("{name}.out"))).unwrap();
        let child = cmd
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        self.daemons.push(child);
    }

    fn sinfo(&self) -> Option<String> {
        let out = self.command("sinfo").args(["--noheader", "--format=%T"]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// One of Slurm's commands, for this cluster.
    pub fn command(&self, tool: &str) -> Command {
        let mut c = Command::new(Path::new("/usr/bin").join(tool));
        // Slurm prints and reads times in the caller's zone.
        c.env("SLURM_CONF", &self.conf).env("TZ", "UTC");
        c
    }

    /// `scontrol show job --oneliner`'s fields of job `id`.
    pub fn job(&self, id: &str) -> std::collections::BTreeMap<String, String> {
        let out = self.command("scontrol").args(["show", "job", "--oneliner", id]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace().filter_map(|w| w.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
    }

    /// Ids of the jobs Slurm holds now, with their state.
    pub fn queue(&self) -> Vec<(String, String)> {
        let out = self.command("squeue").args(["--noheader", "--format=%i %T"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
            .collect()
    }

    /// What a node's `node.toml` needs to run its jobs here.
    pub fn executor_toml(&self) -> String {
        format!(
            "\n[executor]\nkind = \"slurm\"\nshared_dir = \"{}\"\nslurm_conf = \"{}\"\npartition = \"{PARTITION}\"\n",
            self.shared.display(),
            self.conf.display()
        )
    }

    /// The daemons' logs, for a failure's message.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for f in ["slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"] {
            let text = std::fs::read_to_string(self.dir.path().join("log").join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            all.push_str(&format!("--- {f}\n{}\n", tail.into_iter().rev().collect::<Vec<_>>().join("\n")));
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.command("scancel").args(["--partition", PARTITION]).status();
        for d in self.daemons.iter_mut().rev() {
            // SIGTERM to the group: slurmd's steps and munged stop with them.
            let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", d.id())]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for d in &mut self.daemons {
            while d.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        // slurmd leaves its cgroups, empty, under each controller.
        let name = format!("slurm_{}", self.node);
        let mounts = std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten().map(|e| e.path());
        for top in mounts.chain([PathBuf::from("/sys/fs/cgroup")]) {
            remove_cgroup(&top.join(&name));
        }
    }
}

/// An empty cgroup tree, deepest first: cgroup directories go by rmdir.
fn remove_cgroup(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "no {what} within {} s", within.as_secs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut buf).unwrap();
    buf
}

/// cgroup v1 or v2, whichever the host mounts: Slurm's plugin detects it.
const CGROUP_CONF: &str = "CgroupPlugin=autodetect\nConstrainRAMSpace=yes\nConstrainCores=yes\n";

fn slurm_conf(d: &Path, node: &str, socket: &Path, (ctld, slurmd): (u16, u16)) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let d = d.display();
    format!(
        "ClusterName=leasehold{node}\n\
         SlurmctldHost=localhost(127.0.0.1)\n\
         SlurmctldPort={ctld}\n\
         SlurmdPort={slurmd}\n\
         SlurmUser=root\n\
         SlurmdUser=root\n\
         StateSaveLocation={d}/state\n\
         SlurmdSpoolDir={d}/spool\n\
         SlurmctldPidFile={d}/slurmctld.pid\n\
         SlurmdPidFile={d}/slurmd.pid\n\
         SlurmctldLogFile={d}/log/slurmctld.log\n\
         SlurmdLogFile={d}/log/slurmd.log\n\
         AuthType=auth/munge\n\
         AuthInfo=socket={socket}\n\
         CredType=cred/munge\n\
         ProctrackType=proctrack/cgroup\n\
         TaskPlugin=task/cgroup\n\
         SelectType=select/cons_tres\n\
         SelectTypeParameters=CR_Core_Memory\n\
         SchedulerType=sched/backfill\n\
         SchedulerParameters=batch_sched_delay=0,sched_min_interval=0\n\
         MpiDefault=none\n\
         ReturnToService=2\n\
         MinJobAge=600\n\
         KillWait=5\n\
         JobAcctGatherType=jobacct_gather/none\n\
         AccountingStorageType=accounting_storage/none\n\
         NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=8192 State=UNKNOWN\n\
         PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP\n",
        socket = socket.display(),
    )
}
