//! Three real nodes whose `node.toml` point their executor at a real Slurm
//! cluster of the test's own (`common/slurm.rs`): jupyterflow's get-started
//! diamond runs there unchanged and prints what it prints locally; a
//! compute-to-data run executes on the owner's cluster; and a lease that
//! ends mid-run cancels every Slurm job of the run within a second, by the
//! ledger's time and Slurm's own end time, and removes the staged data.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::runs::*;
use common::slurm::Cluster;
use common::*;
use serde_json::{json, Value};

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis()
}

/// The Slurm job ids a run's record names, one per job that reached Slurm.
fn slurm_ids(run: &Value) -> Vec<String> {
    let jobs = run["jobs"].as_array().unwrap();
    let placed = jobs.iter().filter_map(|j| j["placement"].as_str());
    placed.map(|p| p.strip_prefix("Slurm job ").unwrap().split_whitespace().next().unwrap().to_string()).collect()
}

async fn submit_yaml(net: &TestNet, node: usize, yaml: &str) -> String {
    let (code, r) = net.call_raw(node, "POST", "/v1/runs", yaml.as_bytes().to_vec(), "application/yaml").await;
    assert_eq!(code, 201, "{r}");
    r["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_run_on_a_slurm_cluster_and_the_lease_rules_hold_there() {
    let Some(cluster) = Cluster::start(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("slurm")) else { return };
    let toml = cluster.executor_toml();
    let net = TestNet::start_with(3, |t| t.push_str(&toml)).await;
    the_get_started_diamond_runs_unchanged(&net, &cluster).await;
    a_compute_run_executes_on_the_owners_cluster(&net, &cluster).await;
    a_lease_that_ends_cancels_its_slurm_jobs_within_a_second(&net, &cluster).await;
}

async fn the_get_started_diamond_runs_unchanged(net: &TestNet, cluster: &Cluster) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jupyterflow/get-started/workflow.yaml");
    let token = net.nodes[1].dir.join("admin.token");
    let args = ["run", "-f", path_str(&example), "--url", &net.nodes[1].url, "--token-file", path_str(&token)];
    let out = Command::new(bin()).args(args).output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{all}\n{}", cluster.logs());
    for line in ["[job 1] hello", "[job 2] world foo!", "[job 3] world bar!", "[job 4] hello again!"] {
        assert!(all.contains(line), "{line:?} missing from: {all}");
    }
    let at = all.find("run run-").unwrap() + 4;
    let id = all[at..].split_whitespace().next().unwrap().trim_end_matches(':');
    let run = run_on(net, 1, id).await;
    let ids = slurm_ids(&run);
    assert_eq!(ids.len(), 4, "each job a Slurm job: {run}");
    for id in &ids {
        assert_eq!(cluster.job(id)["JobState"], "COMPLETED", "Slurm job {id}");
        assert_eq!(cluster.job(id)["Partition"], common::slurm::PARTITION);
    }
    let (two, three) = (&run["jobs"][1], &run["jobs"][2]);
    let t = |j: &Value, k: &str| ms(j[k].as_str().unwrap());
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        let overlap = t(two, "started_at") < t(three, "finished_at") && t(three, "started_at") < t(two, "finished_at");
        assert!(overlap, "jobs 2 and 3 ran side by side on the cluster: {two} {three}");
    }
    let protections = run["protections"].as_array().unwrap();
    let memory = protections.iter().find(|p| p["name"] == "memory").unwrap();
    assert_eq!(memory["enforced_by"], "Slurm's job cgroup", "{run}");
}

async fn a_compute_run_executes_on_the_owners_cluster(net: &TestNet, cluster: &Cluster) {
    let policy = json!({"access": "compute", "release": {"approval": false, "logs": "live"}});
    let lease = leased_dataset_with(net, "records", 600_000, policy).await["id"].as_str().unwrap().to_string();
    let yaml = format!(
        "cmd_mode: shell\njobs:\n- command: wc -l < d/dir/data.csv > $OUTPUT_DIR/count.txt; echo counted\n  \
         volumes: [{{id: {lease}, name: d, path: /home/jovyan/d}}]\n"
    );
    let id = submit_yaml(net, 1, &yaml).await;
    let at_owner = until(net, 0, &id, 60, |r| r["status"] == "succeeded" || r["status"] == "failed").await;
    assert_eq!(at_owner["status"], "succeeded", "{at_owner}\n{}", cluster.logs());
    let ids = slurm_ids(&at_owner);
    assert_eq!(ids.len(), 1, "the owner's Slurm ran it: {at_owner}");
    assert!(cluster.job(&ids[0])["JobName"].starts_with("lh:org1:"), "as org1's job: {:?}", cluster.job(&ids[0]));
    let done = ended_on(net, 1, &id, 30).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // The run lived in the owner's part of the shared directory, and the
    // staged copy of its data is gone with it.
    let run_dir = cluster.shared.join("org1/runs").join(&id);
    assert!(run_dir.join("output/count.txt").exists(), "{}", run_dir.display());
    assert!(!run_dir.join("volumes").exists(), "the staged data outlived the run");
}

async fn a_lease_that_ends_cancels_its_slurm_jobs_within_a_second(net: &TestNet, cluster: &Cluster) {
    let lease = leased_dataset(net, "brief", 20_000).await;
    let (lease_id, expires) = (lease["id"].as_str().unwrap(), lease["expires_at"].as_str().unwrap());
    let yaml = format!(
        "cmd_mode: shell\njobs:\n\
         - command: cat /data/d/dir/data.csv; echo started; sleep 300\n  volumes: [{{id: {lease_id}, name: d, path: /data/d}}]\n\
         - command: echo started; sleep 300\n  volumes: [{{id: {lease_id}, name: d, path: /data/d}}]\n\
         - echo never\n\
         dags: [\"1 >> 3\", \"2 >> 3\"]\n"
    );
    let id = submit_yaml(net, 1, &yaml).await;
    let running = |r: &Value| slurm_ids(r).len() == 2 || r["status"] != "running";
    let r = until(net, 1, &id, 20, running).await;
    assert_eq!(slurm_ids(&r).len(), 2, "both jobs reached Slurm before the lease ended: {r}\n{}", cluster.logs());
    let staged = cluster.shared.join("org2/runs").join(&id).join("volumes");
    assert!(staged.exists(), "the leased data was staged in the shared directory");
    let r = ended_on(net, 1, &id, 40).await;
    assert_eq!(r["status"], "expired", "{r}");
    let after = ms(r["finished_at"].as_str().unwrap()) - ms(expires);
    assert!((0..1_000).contains(&after), "the run ended {after} ms after the lease");
    for slurm in slurm_ids(&r) {
        // COMPLETING until Slurm has reaped it; its end time is set already.
        let deadline = Instant::now() + Duration::from_secs(15);
        while cluster.job(&slurm)["JobState"] == "COMPLETING" && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let job = cluster.job(&slurm);
        assert_eq!(job["JobState"], "CANCELLED", "{job:?}");
        // Slurm's end time, in whole seconds (UTC): within a second of the lease's end.
        let end = ms(&format!("{}Z", job["EndTime"]));
        assert!((-1_000..1_000).contains(&(end - ms(expires))), "Slurm ended job {slurm} at {end} for {expires}");
    }
    assert!(!staged.exists(), "the staged data outlived the lease");
    assert!(r["jobs"][2]["placement"].is_null(), "the dependent job never reached Slurm: {r}");
    let log = log_on(net, 1, &id).await;
    assert!(log.contains("started"), "{log}");
}
