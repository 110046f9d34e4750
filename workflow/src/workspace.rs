//! A workspace to start from: the files of a workflow directory that runs
//! at once on a leased dataset, and passes its own QC test.
//!
//! Pure: it takes the lease, the dataset's id and the sample its owner made
//! public, and returns file contents by path. Nothing leased goes into it,
//! not even the files' names (they are listed only under a lease): the
//! test's fixture is the owner's public sample, and without one there is
//! no test, so the directory holds nothing that stops being the user's
//! when the lease ends.

use std::collections::{BTreeMap, BTreeSet};

/// Where jupyterflow's users find their volumes.
const HOME: &str = "/home/jovyan";
/// The fixture takes at most this many files of the sample.
pub const MAX_FIXTURE_FILES: usize = 50;
/// The most sample text the fixture takes from the public metadata.
pub const MAX_SAMPLE_BYTES: usize = 64 * 1024;

/// What a workspace is made from.
pub struct Starter<'a> {
    pub lease_id: &'a str,
    pub dataset_id: &'a str,
    /// `public_metadata.sample`, when the owner published one: an object of
    /// file path to text, mounted in place of the dataset in the QC test.
    pub sample: Option<&'a serde_json::Value>,
}

/// The workspace's files, by path relative to its directory.
pub fn starter(s: &Starter) -> BTreeMap<String, String> {
    let fixture = fixture(s.sample);
    let mut out = BTreeMap::new();
    out.insert("workflow.yaml".into(), workflow_yaml(s, fixture.len()));
    out.insert("analyse.py".into(), script(s.dataset_id));
    out.insert(
        "requirements.txt".into(),
        "# One package per line, such as pandas==2.2.3; the node builds the\n\
         # environment (wheels only) before the test and the jobs run.\n"
            .into(),
    );
    out.insert("README.md".into(), readme(s, fixture.is_empty()));
    for (path, text) in fixture {
        out.insert(format!("tests/sample/{path}"), text);
    }
    out
}

/// The QC test's files, from the owner's public sample: text entries whose
/// paths stay inside, within the limits, none where another needs a
/// directory.
fn fixture(sample: Option<&serde_json::Value>) -> Vec<(String, String)> {
    let Some(entries) = sample.and_then(|v| v.as_object()) else { return Vec::new() };
    let mut total = 0usize;
    let files: Vec<(String, String)> = entries
        .iter()
        .filter_map(|(path, text)| Some((path.clone(), text.as_str()?.to_string())))
        .filter(|(path, _)| leasehold_files::check_rel_path(path).is_ok())
        .take_while(|(_, text)| {
            total += text.len();
            total <= MAX_SAMPLE_BYTES
        })
        .take(MAX_FIXTURE_FILES)
        .collect();
    let dirs: BTreeSet<&str> =
        files.iter().flat_map(|(p, _)| p.match_indices('/').map(move |(i, _)| &p[..i])).collect();
    files.iter().filter(|(p, _)| !dirs.contains(p.as_str())).cloned().collect()
}

fn workflow_yaml(s: &Starter, fixture_files: usize) -> String {
    let ds = s.dataset_id;
    let lease = s.lease_id;
    let test = if fixture_files == 0 {
        String::new()
    } else {
        format!(
            "# Run first, on tests/sample mounted where the dataset will be: if it\n\
             # fails, no leased byte is fetched.\n\
             tests:\n  - name: analyse.py on the sample\n    command: python3 analyse.py\n    \
             fixtures:\n      - from: tests/sample\n        path: '{HOME}/{ds}'\n    \
             output: \"read {fixture_files} files\"\n    timeout: 60\n"
        )
    };
    format!(
        "# A starting point on dataset {ds}, leased as {lease} (leasehold workspace new).\n\
         # The dataset is mounted read-only at {HOME}/{ds}; the jobs share their\n\
         # working directory ($HOME, {HOME}) and write what they publish to\n\
         # $OUTPUT_DIR. Run with: leasehold run -f workflow.yaml\n\
         name: '{ds}-analysis'\n\
         jobs:\n  - command: python3 analyse.py\n    volumes:\n      - id: '{ds}'\n        name: '{ds}'\n        \
         path: '{HOME}/{ds}'\n    timeout: 600\n\
         {test}"
    )
}

fn script(ds: &str) -> String {
    format!(
        r#""""Reads dataset {ds} where the workflow mounts it, and writes a summary
of its files to $OUTPUT_DIR, the directory a run publishes."""

import json
import os
from pathlib import Path

data = Path.home() / "{ds}"
out = Path(os.environ.get("OUTPUT_DIR", "output"))
out.mkdir(parents=True, exist_ok=True)

summary = []
for path in sorted(p for p in data.rglob("*") if p.is_file()):
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    name = path.relative_to(data).as_posix()
    summary.append({{"path": name, "bytes": path.stat().st_size, "lines": lines}})
    print(f"{{name}}: {{path.stat().st_size}} bytes, {{lines}} lines")

print(f"read {{len(summary)}} files")
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
"#
    )
}

fn readme(s: &Starter, no_fixture: bool) -> String {
    let sample = if no_fixture {
        "The owner published no sample: put a few rows of your own under `tests/sample/`, and a `tests:` entry, to test before each run."
    } else {
        "`tests/sample/` holds the owner's public sample, which the QC test runs on first; add rows of your own there."
    };
    format!(
        "# Working on {ds}\n\n\
         `analyse.py` reads the dataset at `{HOME}/{ds}` (mounted while lease {lease} is active) and writes `summary.json` to `$OUTPUT_DIR`.\n\
         Run it with `leasehold run -f workflow.yaml`, or `client.runs.run(\".\")` from Python; add packages to `requirements.txt`.\n\
         {sample}\n",
        ds = s.dataset_id,
        lease = s.lease_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Workflow;

    #[test]
    fn the_workspace_parses_and_tests_on_the_public_sample() {
        let sample = serde_json::json!({"iris.csv": "5.1,setosa\n", "../escape": "x", "d": "file", "d/e": "dir"});
        let out = starter(&Starter { lease_id: "lease-1", dataset_id: "iris", sample: Some(&sample) });
        let wf = Workflow::parse(&out["workflow.yaml"]).unwrap();
        assert_eq!(wf.jobs[0].volumes[0].path, "/home/jovyan/iris");
        assert_eq!(wf.tests[0].output.as_deref(), Some("read 2 files"));
        assert_eq!(out["tests/sample/iris.csv"], "5.1,setosa\n");
        let fixture: Vec<_> = out.keys().filter(|k| k.starts_with("tests/")).collect();
        assert_eq!(fixture, ["tests/sample/d/e", "tests/sample/iris.csv"], "no escape, no file where a directory is");
    }

    #[test]
    fn without_a_sample_there_is_no_test_and_nothing_of_the_dataset() {
        let out = starter(&Starter { lease_id: "l", dataset_id: "true", sample: None });
        let wf = Workflow::parse(&out["workflow.yaml"]).unwrap();
        assert!(wf.tests.is_empty() && !out.keys().any(|k| k.starts_with("tests/")), "{:?}", out.keys());
        assert_eq!(wf.jobs[0].volumes[0].id, "true", "an id YAML would read as a boolean stays a string");
    }
}
