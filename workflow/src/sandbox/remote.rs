//! A step that runs on another machine, a cluster's compute node: the same
//! chain as on this host (bwrap, seccomp, setpriv, `env -i`), started there
//! by a fixed batch script. The script holds nothing of the workflow: the
//! chain's arguments reach it in a file, NUL-separated, so no word of a job
//! is ever parsed by a shell.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use super::{seccomp, Guard, JobCommand, Protection, Sandbox, LAUNCHER};

/// What a cluster needs to start one sandboxed step.
pub struct RemoteStep {
    /// The batch script: fixed text. Its arguments are [`RemoteStep::args`].
    pub script: String,
    /// The chain's arguments, NUL-separated: `--`, then what the launcher
    /// execs (see `Jail::chain`).
    pub chain: Vec<u8>,
    /// The seccomp filter, loaded by bwrap from fd 3.
    pub filter: &'static [u8],
    /// bubblewrap's path, setpriv's (empty when the node is not root) and
    /// the process limit: the script's first three arguments. The chain's
    /// file and the filter's follow them.
    pub tools: [OsString; 3],
}

/// Checks that the compute node has the sandbox's programs, bounds the
/// processes of the job's uid, opens the filter on fd 3 and reads the chain;
/// then the launcher, as on the node's own host.
/// Its first line restarts it with an empty environment: Slurm may hand a
/// batch script its user's login environment, and bash would read
/// `BASH_ENV` from it.
const HEADER: &str = r#"#!/usr/bin/env -S -i PATH=/usr/bin:/bin /bin/bash --noprofile --norc
# leasehold: one sandboxed step. $1 bubblewrap, $2 setpriv (or empty),
# $3 the process limit, $4 the chain's arguments (NUL-separated), $5 the
# seccomp filter. Nothing of the workflow is in this script.
for tool in "$1" "$2"; do
  if [ -n "$tool" ] && [ ! -x "$tool" ]; then
    echo "leasehold: $tool is not installed on $(hostname): the job is refused, as it cannot be sandboxed" >&2
    exit 126
  fi
done
ulimit -u "$3" || exit 125
mapfile -d '' -t chain < "$4" || exit 125
exec 3< "$5" || exit 125
set -- "${chain[@]}"
"#;

impl Sandbox {
    /// Prepares one step to run on another machine that shares the job's
    /// directories with this one. The guard watches the directories' limits
    /// from here and removes the job's `/tmp` after it; the cluster bounds
    /// memory and CPU.
    pub fn remote(&self, job: &JobCommand) -> std::io::Result<(RemoteStep, Guard)> {
        let Self::Jail(jail) = self else {
            return Err(std::io::Error::other(
                "a cluster runs only sandboxed jobs, and this node has no sandbox (workflow.allow_unsandboxed)",
            ));
        };
        if !job.secrets.is_empty() {
            // They would pass through the cluster's shared directory.
            return Err(std::io::Error::other("a cluster's jobs receive no secrets from this node"));
        }
        jail.prepare_dirs(job)?;
        let guard = Guard::new(None, Some(jail.limits.clone()), job);
        let mut chain = b"--\0".to_vec();
        for a in jail.chain(job) {
            // Locally `Command` refuses such a word; here it would split in two.
            if a.as_bytes().contains(&0) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a word of the job holds a NUL byte",
                ));
            }
            chain.extend_from_slice(a.as_bytes());
            chain.push(0);
        }
        let setpriv = jail.setpriv.clone().map(OsString::from).unwrap_or_default();
        let step = RemoteStep {
            script: format!("{HEADER}{LAUNCHER}\n"),
            chain,
            filter: seccomp::program().expect("checked at detection"),
            tools: [jail.bwrap.clone().into(), setpriv, jail.limits.processes.to_string().into()],
        };
        Ok((step, guard))
    }

    /// The limits of the sandbox's jobs; none when it is off.
    pub fn limits(&self) -> Option<&super::JobLimits> {
        match self {
            Self::Jail(j) => Some(&j.limits),
            Self::Unsandboxed => None,
        }
    }

    /// The protections of a step run on a cluster: the cluster's cgroup
    /// bounds memory and CPU, the process limit is the job uid's on the
    /// compute node, and the rest is as on this host.
    pub fn remote_protections(&self, cluster: &str) -> Vec<Protection> {
        let mut out = self.protections();
        for p in &mut out {
            match p.name.as_str() {
                "memory" | "cpu" => p.enforced_by = format!("{cluster}'s job cgroup"),
                "processes" => p.enforced_by = "RLIMIT_NPROC of the job's uid on the compute node".into(),
                "/tmp" | "disk" => p.enforced_by = format!("{} (the shared directory)", p.enforced_by),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::HEADER;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    /// The batch script's checks as a compute node runs them: with
    /// bubblewrap at the given path, or without it.
    fn run_header(bwrap: &str) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("step.sh");
        let body = format!("{HEADER}printf '%s|' \"$@\"; echo; echo \"BASH_ENV=$BASH_ENV\"\n");
        std::fs::write(&script, body).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(dir.path().join("chain"), b"--\0a b\0\0c\0").unwrap();
        std::fs::write(dir.path().join("filter"), b"").unwrap();
        let (chain, filter) = (dir.path().join("chain"), dir.path().join("filter"));
        Command::new(&script)
            .args([bwrap, "", "64"])
            .arg(chain)
            .arg(filter)
            .env("BASH_ENV", "/nonexistent-rc")
            .output()
            .unwrap()
    }

    #[test]
    fn a_compute_node_without_bubblewrap_refuses_the_job() {
        let out = run_header("/nonexistent/bwrap");
        assert_eq!(out.status.code(), Some(126), "{out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("/nonexistent/bwrap is not installed on") && said.contains("refused"), "{said}");
        assert!(out.stdout.is_empty(), "nothing ran: {out:?}");
    }

    #[test]
    fn the_chain_reaches_the_launcher_word_for_word_in_an_empty_environment() {
        let out = run_header("/bin/true");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Empty words and spaces survive; nothing of the caller's environment does.
        assert_eq!(stdout, "--|a b||c|\nBASH_ENV=\n", "{out:?}");
    }
}
