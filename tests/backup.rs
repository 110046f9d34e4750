//! Backup, verify and restore, against three real nodes: a backup of a
//! running owner's node holds its ledger and files and nothing secret;
//! `verify` checks it and catches a tampered file; a restored node stands
//! for no election until an elected leader has caught it up, then rejoins
//! and serves its files again.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::runs::*;
use common::*;
use serde_json::{json, Value};

fn leasehold(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run leasehold")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn config(net: &TestNet, i: usize) -> PathBuf {
    net.nodes[i].dir.join("node.toml")
}

/// Node `i`'s org registers a dataset `id`.
async fn register(net: &TestNet, i: usize, id: &str) {
    let policy = json!({"allowed_orgs": ["org3"], "max_lease_ms": 600_000});
    let body = json!({"id": id, "title": "t", "policy": policy, "private_metadata": {"k": "v"}});
    let (code, r) = net.call(i, "POST", "/v1/datasets", None, Some(body)).await;
    assert_eq!(code, 201, "{r}");
}

fn reads_file(run: &str) -> String {
    format!(
        "name: {run}\ncmd_mode: shell\njobs:\n  - command: \"cat /data/d/dir/data.csv\"\n    \
         volumes: [{{id: kept, name: d, path: /data/d}}]\n"
    )
}

/// org2 runs a job that prints org1's leased file; returns its log.
async fn lessee_reads(net: &TestNet, run: &str) -> String {
    let (code, r) = net.call_raw(1, "POST", "/v1/runs", reads_file(run).into_bytes(), "application/yaml").await;
    assert_eq!(code, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let ended = ended_on(net, 1, &id, 60).await;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    log_on(net, 1, &id).await
}

async fn fenced_term(net: &TestNet, i: usize) -> Option<(bool, u64)> {
    let s = net.status(i).await?;
    Some((!s["restore_fence"].is_null(), s["raft_term"].as_u64().unwrap()))
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap().success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_verifies_restores_and_the_restored_node_rejoins_only_once_caught_up() {
    let mut net = TestNet::start(3).await;
    leased_dataset(&net, "kept", 600_000).await;
    assert!(lessee_reads(&net, "before").await.contains("3,4"));

    // A user whose token is revoked after the backup is taken.
    let (code, gone) = net.call(0, "POST", "/v1/users", None, Some(json!({"name": "gone", "role": "viewer"}))).await;
    assert_eq!(code, 201, "{gone}");
    let gone = gone["token"].as_str().unwrap().to_string();

    // A backup of the running owner, taken through its CLI and API.
    let token_file = net.nodes[0].dir.join("admin.token");
    let out = leasehold(&["backup", "--url", &net.nodes[0].url, "--token-file", path_str(&token_file)]);
    assert!(out.status.success(), "{}", text(&out));
    let b: Value = serde_json::from_slice(&out.stdout).unwrap();
    let backup = PathBuf::from(b["path"].as_str().unwrap());
    let height = b["height"].as_u64().unwrap();
    assert!(height > 0 && b["files"].as_u64().unwrap() >= 2, "the file and its manifest: {b}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o700, "only root reads it");
    for f in files_under(&backup) {
        let bytes = std::fs::read(&f).unwrap();
        for key in files_under(&net.nodes[0].dir.join("keys")) {
            let k = std::fs::read(&key).unwrap();
            assert!(!bytes.windows(k.len()).any(|w| w == k.as_slice()), "{} holds {}", f.display(), key.display());
        }
        assert!(!String::from_utf8_lossy(&bytes).contains(net.nodes[0].token.trim()), "a token in the clear");
    }
    // Nobody without a token takes one.
    let (code, p) = net.call(0, "POST", "/v1/backups", Some("not-a-token"), None).await;
    assert_eq!(code, 401, "{p}");

    // `verify` checks the backup whole, and catches a changed file.
    let out = leasehold(&["verify", "--data-dir", path_str(&backup)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("ok: {height} blocks verified")), "{}", text(&out));
    assert!(text(&out).contains("1 dataset versions match"), "{}", text(&out));
    let tampered = net.dir.path().join("tampered");
    copy_dir(&backup, &tampered);
    let file = files_under(&tampered.join("datasets")).into_iter().find(|f| f.ends_with("dir/data.csv")).unwrap();
    std::fs::write(&file, "a,b\n1,2\n3,5\n").unwrap();
    let out = leasehold(&["verify", "--data-dir", path_str(&tampered)]);
    assert!(!out.status.success(), "a tampered file passed: {}", text(&out));
    assert!(text(&out).contains("not to the content hash"), "{}", text(&out));

    // The ledger moves on after the backup, and a token is revoked.
    register(&net, 0, "after-backup").await;
    assert_eq!(net.call(0, "DELETE", "/v1/users/gone", None, None).await.0, 200);
    let status = net.wait_converged(height + 1, Duration::from_secs(20)).await;
    assert!(status["height"].as_u64().unwrap() > height);

    // A running node is not restored over.
    let out = leasehold(&["restore", "--backup", path_str(&backup), "--config", path_str(&config(&net, 0))]);
    assert!(!out.status.success() && text(&out).contains("stop the node first"), "{}", text(&out));

    net.stop(0);
    register(&net, 1, "while-org1-is-down").await;
    // Not as another org, and not over another org's node.
    let out = leasehold(&["restore", "--backup", path_str(&backup), "--config", path_str(&config(&net, 1))]);
    assert!(!out.status.success() && text(&out).contains("the backup is of org1"), "{}", text(&out));
    let out = leasehold(&["restore", "--backup", path_str(&backup), "--config", path_str(&config(&net, 0))]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("at height {height}")), "{}", text(&out));
    let aside = net.nodes[0]
        .dir
        .read_dir()
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("data.replaced-"));
    assert!(aside.is_some(), "the replaced data directory is kept aside");

    // Alone, the restored node neither votes nor stands for election: its
    // term does not move, where an unfenced lone node campaigns.
    // The node that led comes back last: back first, it would resume
    // leading its term without an election.
    let led = net.status(1).await.expect("node 1 answers")["leader"].clone();
    let (back_first, back_last) = if led == "org2" { (2, 1) } else { (1, 2) };
    net.stop(1);
    net.stop(2);
    net.spawn(0);
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while first.is_none() {
        assert!(Instant::now() < deadline, "the restored node never answered:\n{}", net.log(0));
        first = fenced_term(&net, 0).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (fenced, term) = fenced_term(&net, 0).await.unwrap();
    assert!(fenced, "the restored node is not fenced");
    assert_eq!(term, first.unwrap().1, "the fenced node stood for election:\n{}", net.log(0));

    // With one other node only, no leader can be elected: the fenced node
    // grants no vote until it knows no leader was elected after its backup.
    net.spawn(back_first);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let s = net.status(back_first).await.expect("the other node answers");
    assert!(s["leader"].is_null(), "a leader was elected with the fenced node's vote: {s}");
    let s0 = net.status(0).await.expect("the restored node answers");
    assert_eq!(s0["restore_fence"], "learning the voters' terms", "with 3 voters it needs both others: {s0}");

    // With all the others back, an elected leader catches it up, the fence
    // comes down, and it holds what was committed while it was away.
    net.spawn(back_last);
    let deadline = Instant::now() + Duration::from_secs(30);
    while fenced_term(&net, 0).await.is_none_or(|(f, _)| f) {
        assert!(Instant::now() < deadline, "the fence never came down:\n{}", net.log(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    net.wait_for_leader(Duration::from_secs(30)).await;
    register(&net, 0, "after-restore").await;
    let status = net.wait_converged(height + 3, Duration::from_secs(30)).await;
    for id in ["after-backup", "while-org1-is-down", "after-restore"] {
        let (code, d) = net.call(0, "GET", &format!("/v1/datasets/{id}"), None, None).await;
        assert_eq!(code, 200, "{id} on the restored node: {d} ({status})");
    }
    // The token revoked after the backup stays revoked.
    assert_eq!(net.call(0, "GET", "/v1/datasets", Some(&gone), None).await.0, 401);
    // Its files came back with it: the lessee reads them again.
    assert!(lessee_reads(&net, "after").await.contains("3,4"));
    net.stop(0);
    let out = leasehold(&["verify", "--data-dir", path_str(&net.data_dir(0))]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_restored_while_its_leader_runs_catches_up_and_lifts_its_fence() {
    let mut net = TestNet::start(3).await;
    let leader = net.wait_for_leader(Duration::from_secs(30)).await;
    let f = (leader + 1) % 3;
    register(&net, leader, "before").await;
    let (code, b) = net.call(f, "POST", "/v1/backups", None, None).await;
    assert_eq!(code, 201, "{b}");
    let backup = PathBuf::from(b["path"].as_str().unwrap());
    for k in 0..5 {
        register(&net, leader, &format!("after-{k}")).await;
    }
    let height = net.wait_converged(0, Duration::from_secs(20)).await["height"].as_u64().unwrap();

    // The leader still holds how far the follower's log had come, past the
    // end of the restored one.
    net.stop(f);
    register(&net, leader, "while-down").await;
    let out = leasehold(&["restore", "--backup", path_str(&backup), "--config", path_str(&config(&net, f))]);
    assert!(out.status.success(), "{}", text(&out));
    net.spawn(f);
    let deadline = Instant::now() + Duration::from_secs(30);
    while fenced_term(&net, f).await.is_none_or(|(fenced, _)| fenced) {
        assert!(Instant::now() < deadline, "the fence never came down:\n{}", net.log(f));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    register(&net, leader, "after-restore").await;
    net.wait_converged(height + 2, Duration::from_secs(30)).await;
    for id in ["before", "after-4", "while-down", "after-restore"] {
        assert_eq!(net.call(f, "GET", &format!("/v1/datasets/{id}"), None, None).await.0, 200, "{id}");
    }
}

#[test]
fn a_node_whose_restore_stopped_halfway_refuses_to_start() {
    let net = TestNet::init_with(1, |_| {});
    // Between moving the data directory aside and renaming the restored
    // copy in: started now, the node would be empty and unfenced.
    let data = net.data_dir(0);
    std::fs::create_dir_all(&data).unwrap();
    std::fs::rename(&data, data.with_file_name("data.restoring")).unwrap();
    let mut child = Command::new(bin())
        .args(["start", "--config", path_str(&config(&net, 0))])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the node started: {}", text(&child.wait_with_output().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "it started: {}", text(&out));
    assert!(text(&out).contains("a restore was interrupted"), "{}", text(&out));
    assert!(!data.exists(), "it made an empty data directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_voter_restored_needs_no_fence() {
    let mut net = TestNet::start(1).await;
    let alone = |id: &str| json!({"id": id, "title": "t", "policy": {"allowed_orgs": [], "max_lease_ms": 60_000}, "private_metadata": {}});
    let (code, r) = net.call(0, "POST", "/v1/datasets", None, Some(alone("before"))).await;
    assert_eq!(code, 201, "{r}");
    let (code, b) = net.call(0, "POST", "/v1/backups", None, None).await;
    assert_eq!(code, 201, "{b}");
    net.stop(0);
    let out = leasehold(&["restore", "--backup", b["path"].as_str().unwrap(), "--config", path_str(&config(&net, 0))]);
    assert!(out.status.success(), "{}", text(&out));
    net.spawn(0);
    net.wait_for_leader(Duration::from_secs(30)).await;
    // No other node holds what it forgot: it lifts its fence and leads.
    let (code, r) = net.call(0, "POST", "/v1/datasets", None, Some(alone("after"))).await;
    assert_eq!(code, 201, "{r}");
    assert!(fenced_term(&net, 0).await.is_some_and(|(fenced, _)| !fenced));
}
