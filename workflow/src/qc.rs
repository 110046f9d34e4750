//! QC tests (seed `001_*`): commands a workflow declares under `tests:`,
//! run on fixture files from its own directory before any job touches
//! leased data. A failed test stops the run there, and its record names it.
//!
//! ```yaml
//! tests:
//! - name: three clusters on a sample
//!   command: python kmeans.py
//!   fixtures:
//!   - from: tests/iris-sample     # in the workflow's directory
//!     path: /home/jovyan/iris     # where the real volume is mounted
//!   exit_code: 0                  # the default
//!   output: "clusters: 3"         # stdout must contain it (optional)
//!   timeout: 60                   # seconds, the default
//! ```

use serde::Deserialize;

use super::{check_mount_path, err, WorkflowError};

pub const MAX_TESTS: usize = 64;
pub const MAX_FIXTURES: usize = 32;
pub const DEFAULT_TEST_TIMEOUT_S: u64 = 60;
/// The most of a test's stdout kept to compare with `output`.
pub const MAX_TEST_STDOUT_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// A directory in the workflow's directory.
    pub from: String,
    /// Where the test sees it, read-only: where a job mounts the real volume.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcTest {
    pub name: String,
    pub command: String,
    pub fixtures: Vec<Fixture>,
    pub exit_code: i32,
    /// Text the test's stdout must contain.
    pub output: Option<String>,
    pub timeout_s: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTest {
    name: Option<String>,
    command: String,
    #[serde(default)]
    fixtures: Vec<Fixture>,
    #[serde(default)]
    exit_code: i32,
    output: Option<String>,
    timeout: Option<u64>,
}

pub(super) fn parse_tests(raw: Vec<RawTest>) -> Result<Vec<QcTest>, WorkflowError> {
    if raw.len() > MAX_TESTS {
        return Err(err(None, "tests", format!("at most {MAX_TESTS}")));
    }
    raw.into_iter().enumerate().map(|(t, r)| parse_test(t, r)).collect()
}

fn parse_test(t: usize, r: RawTest) -> Result<QcTest, WorkflowError> {
    let field = |f: &str| format!("tests[{t}].{f}");
    let name = r.name.unwrap_or_else(|| format!("test {}", t + 1));
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(err(None, &field("name"), "1 to 200 bytes, no control characters"));
    }
    if r.command.trim().is_empty() {
        return Err(err(None, &field("command"), "must not be empty"));
    }
    if r.fixtures.len() > MAX_FIXTURES {
        return Err(err(None, &field("fixtures"), format!("at most {MAX_FIXTURES}")));
    }
    for (i, f) in r.fixtures.iter().enumerate() {
        leasehold_files::check_rel_path(&f.from)
            .map_err(|why| err(None, &field(&format!("fixtures[{i}].from")), why.to_string()))?;
        let path = field(&format!("fixtures[{i}].path"));
        check_mount_path(0, &path, &f.path).map_err(|e| WorkflowError { job: None, ..e })?;
        if r.fixtures[..i].iter().any(|o| std::path::Path::new(&o.path) == std::path::Path::new(&f.path)) {
            return Err(err(None, &path, format!("two fixtures are mounted at {:?}", f.path)));
        }
    }
    if r.output.as_ref().is_some_and(|o| o.len() > MAX_TEST_STDOUT_BYTES) {
        return Err(err(None, &field("output"), format!("at most {MAX_TEST_STDOUT_BYTES} bytes")));
    }
    if r.timeout == Some(0) {
        return Err(err(None, &field("timeout"), "must be at least 1 second"));
    }
    Ok(QcTest {
        name,
        command: r.command,
        fixtures: r.fixtures,
        exit_code: r.exit_code,
        output: r.output,
        timeout_s: r.timeout.unwrap_or(DEFAULT_TEST_TIMEOUT_S),
    })
}
