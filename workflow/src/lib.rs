//! The workflow engine: parsing, bundles, QC tests, the sandbox, the
//! executors that run jobs in it, and the [`runner`] that drives a run from
//! submission to its end on the ledger, reaching its node through a port.
//!
//! `workflow.yaml`, compatible with jupyterflow: `name`, `jobs` (a command
//! string, or `{command, volumes: [{id, name, path}]}`), `dags` such as
//! `"1 >> 2"` with jobs numbered from 1. Extensions, all optional: per-job
//! `env`, `timeout` (seconds) and `image`; top-level `outputs`, `workdir`
//! (the jobs' shared working directory and `$HOME`, by default jupyterflow's
//! `/home/jovyan`), `cmd_mode` (`exec` or `shell`), `requirements` (a
//! pip requirements file in the workflow's directory), `tests` (QC
//! tests on fixtures, run before any job; see [`qc`]) and `secrets` (names
//! of secrets stored at the node, handed to every job; see [`secrets`]).
//!
//! Parsing and validation are pure. Whether a volume's lease is active is a
//! question for the ledger, so [`Workflow::check_leases`] takes it as a
//! function.

pub mod argo;
pub mod bundle;
pub mod exec;
pub mod live;
pub mod qc;
pub mod runner;
pub mod sandbox;
pub mod secrets;
pub mod workspace;

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path};

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Deserialize;

/// Wall-clock milliseconds since the Unix epoch: when a job started, ended
/// or logged a line (records for people; the ledger keeps its own time).
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Limits on what one workflow may ask for.
pub const MAX_JOBS: usize = 256;
pub const MAX_VOLUMES_PER_JOB: usize = 32;
pub const MAX_ENV_VARS: usize = 128;
pub const MAX_ENV_BYTES: usize = 64 * 1024;

/// A validation error naming the job (1-based) and field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, Deserialize)]
#[error("{}{field}: {reason}", job.map(|j| format!("job {j}: ")).unwrap_or_default())]
pub struct WorkflowError {
    pub job: Option<usize>,
    pub field: String,
    pub reason: String,
}

impl WorkflowError {
    /// A fault in `field` of job `job` (1-based), or of the workflow.
    pub fn new(job: Option<usize>, field: &str, reason: impl Into<String>) -> Self {
        Self { job, field: field.into(), reason: reason.into() }
    }

    /// The field as a path into the workflow, e.g. `jobs[1].volumes[0].id`
    /// for job 2 (the YAML list is 0-based; job numbers are 1-based).
    pub fn field_path(&self) -> String {
        match self.job {
            Some(n) if n > 0 => format!("jobs[{}].{}", n - 1, self.field),
            _ => self.field.clone(),
        }
    }
}

fn err(job: Option<usize>, field: &str, reason: impl Into<String>) -> WorkflowError {
    WorkflowError::new(job, field, reason)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CmdMode {
    /// The command is split into words and executed directly.
    #[default]
    Exec,
    /// The command is run by `sh -c`.
    Shell,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// A lease id, or a dataset id this org holds an active lease on.
    pub id: String,
    pub name: String,
    /// Absolute mount path inside the job.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// 1-based, as in `dags`.
    pub number: usize,
    pub command: String,
    pub volumes: Vec<Volume>,
    pub env: BTreeMap<String, String>,
    pub timeout_s: Option<u64>,
    pub image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub name: String,
    pub jobs: Vec<Job>,
    /// (from, to), 1-based: `to` runs after `from` succeeds.
    pub edges: Vec<(usize, usize)>,
    pub outputs: Option<String>,
    /// Where the run's working directory appears to its jobs, as `$HOME`.
    pub workdir: String,
    pub cmd_mode: CmdMode,
    /// A pip requirements file in the workflow's directory, if named.
    pub requirements: Option<String>,
    pub tests: Vec<qc::QcTest>,
    /// Names of secrets stored at the node, handed to every job (not to
    /// tests or the environment's build) as environment variables.
    pub secrets: Vec<String>,
}

/// Where jobs start unless the workflow names a `workdir`: jupyterflow's
/// home. Volumes may be mounted inside it (`/home/jovyan/uis`); the node
/// makes their mount points (see `sandbox::workdir`).
pub const DEFAULT_WORKDIR: &str = "/home/jovyan";

#[derive(Deserialize)]
#[serde(untagged)]
enum RawJob {
    Command(String),
    Full(RawJobFields),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobFields {
    command: String,
    #[serde(default)]
    volumes: Vec<Volume>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    timeout: Option<u64>,
    image: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    #[serde(default)]
    name: Option<String>,
    jobs: Vec<RawJob>,
    #[serde(default)]
    dags: Vec<String>,
    outputs: Option<String>,
    workdir: Option<String>,
    #[serde(default)]
    cmd_mode: CmdMode,
    requirements: Option<String>,
    #[serde(default)]
    tests: Vec<qc::RawTest>,
    #[serde(default)]
    secrets: Vec<String>,
}

/// Where the sandbox puts the system and the job's own directories; a
/// volume or the outputs may not be mounted on or under them.
pub const RESERVED_PATHS: &[&str] = &[
    "/",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/proc",
    "/dev",
    "/tmp",
    sandbox::ALIAS_PARENT,
];

/// A mount path must be absolute, must not climb out with `..`, and must
/// not cover the sandbox's own directories.
pub fn check_mount_path(job: usize, field: &str, path: &str) -> Result<(), WorkflowError> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(err(Some(job), field, format!("{path:?} is not an absolute path")));
    }
    if path.len() > 1024 || path.chars().any(|c| c.is_control()) {
        return Err(err(Some(job), field, "a mount path has at most 1024 bytes and no control characters"));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(err(Some(job), field, format!("{path:?} escapes with '..'")));
    }
    // Neither on or under a sandbox directory, nor above one (a mount on
    // `/run` would put `/run/leasehold` inside what the job controls).
    let reserved =
        |r: &&&str| if **r == "/" { p == Path::new("/") } else { p.starts_with(r) || Path::new(r).starts_with(p) };
    if let Some(r) = RESERVED_PATHS.iter().find(reserved) {
        return Err(err(Some(job), field, format!("{path:?} would cover the sandbox's {r}")));
    }
    Ok(())
}

/// Where a volume (or a test's fixture) may be mounted: inside the working
/// directory, whose mount points the node makes itself, but not on or
/// above it; and nowhere near the outputs. The outputs are a host directory
/// the jobs write to, where bubblewrap, as root, would make the mount point
/// following whatever links an earlier job left there.
fn check_beside_workdir(
    job: Option<usize>,
    field: &str,
    path: &str,
    outputs: &str,
    workdir: &str,
) -> Result<(), WorkflowError> {
    let p = Path::new(path);
    if Path::new(workdir).starts_with(p) {
        return Err(err(job, field, format!("{path:?} would cover the working directory {workdir:?}")));
    }
    if p.starts_with(outputs) || Path::new(outputs).starts_with(p) {
        return Err(err(job, field, format!("{path:?} overlaps the output directory {outputs:?}")));
    }
    Ok(())
}

fn check_mounts(wf: &Workflow) -> Result<(), WorkflowError> {
    let outputs = wf.outputs.as_deref().unwrap_or(sandbox::DEFAULT_OUTPUT_PATH);
    for j in &wf.jobs {
        for (i, v) in j.volumes.iter().enumerate() {
            check_beside_workdir(Some(j.number), &format!("volumes[{i}].path"), &v.path, outputs, &wf.workdir)?;
        }
    }
    for (t, test) in wf.tests.iter().enumerate() {
        for (i, f) in test.fixtures.iter().enumerate() {
            check_beside_workdir(None, &format!("tests[{t}].fixtures[{i}].path"), &f.path, outputs, &wf.workdir)?;
        }
    }
    let (o, w) = (Path::new(outputs), Path::new(&wf.workdir));
    if o.starts_with(w) || w.starts_with(o) {
        return Err(err(None, "workdir", format!("{:?} overlaps the output directory {outputs:?}", wf.workdir)));
    }
    Ok(())
}

/// Names are shell-style identifiers; values hold no NUL. They are set
/// inside the sandbox only, never on the host's side of it.
fn check_env(job: usize, env: &BTreeMap<String, String>) -> Result<(), WorkflowError> {
    if env.len() > MAX_ENV_VARS || env.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > MAX_ENV_BYTES {
        return Err(err(Some(job), "env", format!("at most {MAX_ENV_VARS} variables and {MAX_ENV_BYTES} bytes")));
    }
    let ident = |k: &str| {
        k.len() <= 256
            && k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    for (k, v) in env {
        if !ident(k) {
            return Err(err(
                Some(job),
                &format!("env.{k}"),
                "a name is letters, digits and '_', not starting with a digit",
            ));
        }
        if v.contains('\0') {
            return Err(err(Some(job), &format!("env.{k}"), "a value may not hold a NUL byte"));
        }
    }
    Ok(())
}

fn parse_edge(line: &str, jobs: usize) -> Result<Vec<(usize, usize)>, WorkflowError> {
    let nums = line
        .split(">>")
        .map(|p| {
            p.trim().parse::<usize>().map_err(|_| err(None, "dags", format!("{line:?} is not of the form '1 >> 2'")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if nums.len() < 2 {
        return Err(err(None, "dags", format!("{line:?} is not of the form '1 >> 2'")));
    }
    if let Some(n) = nums.iter().find(|n| **n == 0 || **n > jobs) {
        return Err(err(None, "dags", format!("{line:?} names job {n}, but jobs are numbered 1 to {jobs}")));
    }
    Ok(nums.windows(2).map(|w| (w[0], w[1])).collect())
}

impl Workflow {
    /// Parses and validates everything that needs no ledger.
    pub fn parse(yaml: &str) -> Result<Self, WorkflowError> {
        let raw: RawWorkflow = serde_norway::from_str(yaml).map_err(|e| err(None, "workflow.yaml", e.to_string()))?;
        if raw.jobs.is_empty() || raw.jobs.len() > MAX_JOBS {
            return Err(err(None, "jobs", format!("a workflow has 1 to {MAX_JOBS} jobs")));
        }
        let jobs = raw.jobs.into_iter().enumerate().map(|(i, j)| Self::job(i + 1, j)).collect::<Result<Vec<_>, _>>()?;
        let mut edges = Vec::new();
        for line in &raw.dags {
            edges.extend(parse_edge(line, jobs.len())?);
        }
        let top =
            |field: &str, path: &str| check_mount_path(0, field, path).map_err(|e| WorkflowError { job: None, ..e });
        if let Some(out) = &raw.outputs {
            top("outputs", out)?;
        }
        let workdir = raw.workdir.unwrap_or_else(|| DEFAULT_WORKDIR.into());
        top("workdir", &workdir)?;
        if let Some(r) = &raw.requirements {
            leasehold_files::check_rel_path(r).map_err(|why| err(None, "requirements", why.to_string()))?;
        }
        let tests = qc::parse_tests(raw.tests)?;
        secrets::check_workflow(&raw.secrets, &jobs)?;
        let wf = Self {
            name: raw.name.unwrap_or_else(|| "workflow".into()),
            jobs,
            edges,
            outputs: raw.outputs,
            workdir,
            cmd_mode: raw.cmd_mode,
            requirements: raw.requirements,
            tests,
            secrets: raw.secrets,
        };
        check_mounts(&wf)?;
        for j in &wf.jobs {
            wf.check_command(Some(j.number), "command", &j.command)?;
        }
        for (t, test) in wf.tests.iter().enumerate() {
            wf.check_command(None, &format!("tests[{t}].command"), &test.command)?;
        }
        wf.order()?;
        Ok(wf)
    }

    fn check_command(&self, job: Option<usize>, field: &str, command: &str) -> Result<(), WorkflowError> {
        match self.argv_of(command) {
            None => Err(err(job, field, "has unbalanced quotes or no words")),
            // `env` would take it for a variable.
            Some(argv) if argv[0].contains('=') => Err(err(job, field, "its first word may not contain '='")),
            Some(_) => Ok(()),
        }
    }

    /// The job's command as argv: split into words (`exec`), or run by
    /// `sh -c` (`shell`). `None` when the words do not parse.
    pub fn argv(&self, job: &Job) -> Option<Vec<String>> {
        self.argv_of(&job.command)
    }

    pub fn argv_of(&self, command: &str) -> Option<Vec<String>> {
        match self.cmd_mode {
            CmdMode::Exec => shlex::split(command).filter(|w| !w.is_empty()),
            CmdMode::Shell => Some(vec!["/bin/sh".into(), "-c".into(), command.into()]),
        }
    }

    fn job(number: usize, raw: RawJob) -> Result<Job, WorkflowError> {
        let f = match raw {
            RawJob::Command(command) => {
                RawJobFields { command, volumes: vec![], env: BTreeMap::new(), timeout: None, image: None }
            }
            RawJob::Full(f) => f,
        };
        if f.command.trim().is_empty() {
            return Err(err(Some(number), "command", "must not be empty"));
        }
        if f.volumes.len() > MAX_VOLUMES_PER_JOB {
            return Err(err(Some(number), "volumes", format!("at most {MAX_VOLUMES_PER_JOB}")));
        }
        let mut paths = HashSet::new();
        for (v, vol) in f.volumes.iter().enumerate() {
            let field = format!("volumes[{v}].path");
            check_mount_path(number, &field, &vol.path)?;
            if !paths.insert(Path::new(&vol.path).components().collect::<Vec<_>>()) {
                return Err(err(Some(number), &field, format!("two volumes are mounted at {:?}", vol.path)));
            }
            if vol.id.is_empty() {
                return Err(err(Some(number), &format!("volumes[{v}].id"), "must name a lease or dataset"));
            }
        }
        if f.timeout == Some(0) {
            return Err(err(Some(number), "timeout", "must be at least 1 second"));
        }
        check_env(number, &f.env)?;
        Ok(Job { number, command: f.command, volumes: f.volumes, env: f.env, timeout_s: f.timeout, image: f.image })
    }

    /// Job numbers in an order that respects every edge; an error names a
    /// job on a cycle.
    pub fn order(&self) -> Result<Vec<usize>, WorkflowError> {
        let mut g: DiGraph<usize, ()> = DiGraph::new();
        let ix: Vec<NodeIndex> = self.jobs.iter().map(|j| g.add_node(j.number)).collect();
        for (a, b) in &self.edges {
            g.add_edge(ix[a - 1], ix[b - 1], ());
        }
        toposort(&g, None)
            .map(|order| order.into_iter().map(|n| g[n]).collect())
            .map_err(|cycle| err(None, "dags", format!("job {} is part of a cycle", g[cycle.node_id()])))
    }

    /// Jobs that must succeed before `job` starts.
    pub fn dependencies(&self, job: usize) -> Vec<usize> {
        self.edges.iter().filter(|(_, b)| *b == job).map(|(a, _)| *a).collect()
    }

    /// Checks every volume against the ledger: `active(id)` answers whether
    /// the lease (or this org's lease on the dataset) named `id` is active,
    /// and if not, why.
    pub fn check_leases<E: std::fmt::Display>(
        &self,
        mut active: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), WorkflowError> {
        for j in &self.jobs {
            for (v, vol) in j.volumes.iter().enumerate() {
                active(&vol.id).map_err(|why| err(Some(j.number), &format!("volumes[{v}].id"), why.to_string()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
