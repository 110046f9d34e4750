//! Job secrets on a real network: stored at the org's own node (the CLI
//! reads the value from stdin), handed to that org's jobs, masked in their
//! log, and found nowhere else: not in any node's files, the ledger, the
//! run's record or an API answer. A compute run, asked by the lessee's
//! node or forged by a rogue lessee, receives none of the owner's.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::runs::*;
use common::*;
use serde_json::{json, Value};

/// Whether `needle` is in any file under `dir`, and which.
fn found_under(dir: &Path, needle: &str) -> Vec<String> {
    let hits = files_under(dir)
        .into_iter()
        .filter(|f| std::fs::read(f).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())));
    hits.map(|f| f.display().to_string()).collect()
}

/// `leasehold secret ARGS` against node `i`, with `stdin` as its input.
fn secret_cli(net: &TestNet, i: usize, args: &[&str], stdin: &str) -> std::process::Output {
    let token_file = net.dir.path().join(format!("token-{i}"));
    std::fs::write(&token_file, &net.nodes[i].token).unwrap();
    let mut child = Command::new(bin())
        .arg("secret")
        .args(args)
        .args(["--url", &net.nodes[i].url, "--token-file", path_str(&token_file)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

async fn submit(net: &TestNet, node: usize, yaml: &str) -> (u16, Value) {
    net.call_raw(node, "POST", "/v1/runs", yaml.as_bytes().to_vec(), "application/yaml").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_its_orgs_job_masked_in_its_log_and_is_found_nowhere_else() {
    let net = TestNet::start(3).await;
    let value = format!("s3cr3t-{}-value", std::process::id());
    let set = secret_cli(&net, 1, &["set", "API_KEY"], &format!("{value}\n"));
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let listed = secret_cli(&net, 1, &["list"], "");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "API_KEY\n");
    let bad = secret_cli(&net, 1, &["set", "api-key"], "x\n");
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("[name]"), "{bad:?}");

    // The job proves it holds the value, then prints it; its output keeps a
    // hash of it only.
    let yaml = "cmd_mode: shell\nsecrets: [API_KEY]\njobs:\n- 'printf %s \"$API_KEY\" | sha256sum > $OUTPUT_DIR/key.sha256 && echo \"key: $API_KEY\"'\n";
    let (code, run) = submit(&net, 1, yaml).await;
    assert_eq!(code, 201, "{run}");
    let id = run["id"].as_str().unwrap();
    let end = ended_on(&net, 1, id, 60).await;
    assert_eq!(end["status"], "succeeded", "{end}");
    use sha2::Digest;
    let want = format!("{:x}", sha2::Sha256::digest(value.as_bytes()));
    let output = net.nodes[1].dir.join("data/runs").join(id).join("output/key.sha256");
    let got = std::fs::read_to_string(output).unwrap();
    assert!(got.starts_with(&want), "the job had the value: {got}");
    let log = log_on(&net, 1, id).await;
    assert!(log.contains("key: ***") && !log.contains(&value), "{log}");

    // Nowhere else: no node's files (ledger, runs, logs, secrets' own
    // store, sealed), no API answer, no node's log.
    for (i, node) in net.nodes.iter().enumerate() {
        assert_eq!(found_under(&node.dir, &value), Vec::<String>::new(), "node {i} holds the value in the clear");
        assert!(!net.log(i).contains(&value), "node {i} logged the value");
    }
    let height = net.status(1).await.unwrap()["height"].as_u64().unwrap();
    for path in [format!("/v1/runs/{id}"), "/v1/secrets".into(), format!("/v1/blocks?from=1&limit={height}")] {
        let (code, answer) = net.get(1, &path).await;
        assert_eq!(code, 200, "{path}: {answer}");
        assert!(!answer.to_string().contains(&value), "{path} shows the value");
    }

    // A name the node does not hold: the field's fault, and no run.
    let (code, p) = submit(&net, 1, "secrets: [API_KEY, NOT_SET]\njobs: ['true']\n").await;
    assert_eq!((code, p["field"].as_str()), (422, Some("secrets[1]")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("leasehold secret set NOT_SET"), "{p}");
    // Another org's node holds none of org2's secrets.
    let (code, p) = submit(&net, 2, "secrets: [API_KEY]\njobs: ['true']\n").await;
    assert_eq!((code, p["field"].as_str()), (422, Some("secrets[0]")), "{p}");
    let rm = secret_cli(&net, 1, &["rm", "API_KEY"], "");
    assert!(rm.status.success(), "{rm:?}");
    let (code, _) = submit(&net, 1, yaml).await;
    assert_eq!(code, 422, "a deleted secret is no longer handed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compute_run_receives_no_secrets_asked_for_or_forged() {
    use leasehold_chaincode::Payload;
    use leasehold_node::wire::compute::ComputeRequest;
    use leasehold_node::wire::{Rpc, RpcReply};

    let mut net = TestNet::start(3).await;
    let policy = json!({"access": "compute", "release": {"approval": false}, "allowed_orgs": ["org2", "org3"]});
    let lease = leased_dataset_with(&net, "guarded", 600_000, policy).await["id"].as_str().unwrap().to_string();
    // The owner's secret a lessee's code would love to read.
    let (code, r) =
        net.call(0, "PUT", "/v1/secrets/OWNER_TOKEN", None, Some(json!({"value": "owner-only-value"}))).await;
    assert_eq!(code, 201, "{r}");
    let (code, r) = net.call(1, "PUT", "/v1/secrets/OWNER_TOKEN", None, Some(json!({"value": "lessee-value"}))).await;
    assert_eq!(code, 201, "{r}");
    let job = |lease: &str| {
        format!(
            "cmd_mode: shell\nsecrets: [OWNER_TOKEN]\njobs:\n- command: echo \"$OWNER_TOKEN\" > $OUTPUT_DIR/t.txt\n  \
             volumes: [{{id: {lease}, name: d, path: /home/jovyan/d}}]\n"
        )
    };
    // The lessee's own node refuses to send its secrets to the owner.
    let (code, p) = submit(&net, 1, &job(&lease)).await;
    assert_eq!((code, p["field"].as_str()), (422, Some("secrets")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("compute run at org1's node receives no secrets"), "{p}");

    // A rogue lessee (org3, its node patched) asks the owner directly, its
    // request signed for exactly this workflow: refused, nothing runs.
    let org3_lease = lease_to_org3(&net, "guarded").await;
    let rogue = Rogue::as_org3(&mut net).await;
    let yaml = job(&org3_lease);
    let hash = leasehold_workflow::bundle::workflow_hash(&yaml, None, None);
    let ask =
        Payload::RequestComputeRun { run_id: "run-forged".into(), lease_id: org3_lease.clone(), submission_hash: hash };
    let submit = ComputeRequest::Submit {
        run_id: "run-forged".into(),
        yaml,
        bundle: None,
        submitted_by: "mallory".into(),
        request: Box::new(rogue.sign(ask)),
    };
    match rogue.send("org1", &Rpc::Compute(submit)).await {
        Some(RpcReply::Compute(Err(why))) => {
            assert!(why.to_string().contains("receives none of org1's secrets"), "{why}")
        }
        other => panic!("the owner did not refuse: {}", other.is_some()),
    }
    assert_eq!(net.get(0, "/v1/runs/run-forged").await.0, 404);
    assert_eq!(net.get(0, "/v1/history/run/run-forged").await.0, 404);
    assert_eq!(found_under(&net.nodes[0].dir.join("data/runs"), "owner-only-value"), Vec::<String>::new());
}
