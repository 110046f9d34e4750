//! A fourth org joins a running network under load, and then an org leaves:
//! both only once a majority of the orgs approved, each approval a signed tx.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::load::{assert_acknowledged_everywhere, stop_and_verify_all, Load};
use common::*;
use leasehold_chaincode::Payload;
use serde_json::{json, Value};

/// org4 makes its keys in a directory of its own and takes the network's
/// signed genesis; it is told its node id, 4, as `org list` would show.
fn make_org4(net: &TestNet, p2p: u16, api: u16) -> PathBuf {
    let dir = net.dir.path().join("org4-machine");
    let addr = format!("127.0.0.1:{p2p}");
    let listen = format!("/ip4/127.0.0.1/tcp/{p2p}");
    let api = format!("127.0.0.1:{api}");
    let d = path_str(&dir);
    let args = ["--dir", d, "--p2p-addr", &addr, "--p2p-listen", &listen, "--api-addr", &api];
    leasehold_ok(&[&["org", "new", "--org", "org4", "--name", "Org Four"][..], &args].concat());
    let cfg = leasehold_node::config::NodeConfig::load(&net.nodes[0].dir.join("node.toml")).unwrap();
    std::fs::copy(&cfg.genesis, dir.join("genesis.json")).unwrap();
    let sigs = leasehold_node::ceremony::signatures_path(&cfg.genesis);
    std::fs::copy(sigs, leasehold_node::ceremony::signatures_path(&dir.join("genesis.json"))).unwrap();
    let toml = std::fs::read_to_string(dir.join("node.toml")).unwrap();
    let toml =
        toml.replace("snapshot_every = 20000", "snapshot_every = 5").replace("keep_logs = 1000", "keep_logs = 300");
    std::fs::write(dir.join("node.toml"), format!("node_id = 4\n{toml}")).unwrap();
    dir
}

fn token_file(net: &TestNet, i: usize) -> String {
    path_str(&net.nodes[i].dir.join("admin.token")).to_string()
}

fn tails(net: &TestNet) -> String {
    let keep = std::env::temp_dir().join(format!("leasehold-join-{}", std::process::id()));
    std::fs::create_dir_all(&keep).unwrap();
    for n in &net.nodes {
        let _ = std::fs::copy(n.dir.join("node.log"), keep.join(format!("{}.log", n.org)));
    }
    eprintln!("the nodes' logs are kept in {}", keep.display());
    let tail = |i: usize| net.log(i).lines().rev().take(25).collect::<Vec<_>>().join("\n");
    (0..net.nodes.len()).map(|i| format!("--- {} (newest first)\n{}", net.nodes[i].org, tail(i))).collect()
}

async fn wait_for(net: &TestNet, what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < within, "{what} within {within:?}\n{}", tails(net));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn raft_voters(net: &TestNet, i: usize) -> Value {
    net.get(i, "/v1/membership").await.1["raft_voters"].clone()
}

fn join_node(net: &mut TestNet, dir: &Path, api: u16) {
    let cfg = leasehold_node::config::NodeConfig::load(&dir.join("node.toml")).unwrap();
    net.nodes.push(NodeProc {
        org: "org4".into(),
        dir: dir.to_path_buf(),
        url: format!("http://127.0.0.1:{api}"),
        child: None,
        key: cfg.signing_key().unwrap(),
        token: std::fs::read_to_string(dir.join("admin.token")).unwrap(),
    });
    net.spawn(3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fourth_org_joins_under_load_and_an_org_that_leaves_is_refused() {
    let mut net = TestNet::start_with(3, |t| {
        *t = t.replace("snapshot_every = 20000", "snapshot_every = 5").replace("keep_logs = 1000", "keep_logs = 300");
    })
    .await;
    let tx = net.sign(0, auto_dataset("shared"));
    let (_, r) = net.submit(0, &[tx], 5_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");
    let load = Load::start(&net, "shared", 20);
    load.wait_for_progress(200, Duration::from_secs(60)).await;

    // org4, on its own machine, asks to join; org1 proposes, org2 approves.
    let held = ports::reserve(2);
    let (p2p, api) = (held[0].number, held[1].number);
    let dir = make_org4(&net, p2p, api);
    let (config, card) = (dir.join("node.toml"), dir.join("card.json"));
    let request = leasehold_ok(&["org", "join-request", "--config", path_str(&config), "--card", path_str(&card)]);
    let join = dir.join("join.json");
    std::fs::write(&join, request).unwrap();
    let (u1, t1) = (net.nodes[0].url.clone(), token_file(&net, 0));
    let proposed = leasehold_ok(&[
        "org",
        "propose",
        "--url",
        &u1,
        "--token-file",
        &t1,
        "--change-id",
        "add-org4",
        "--join",
        path_str(&join),
    ]);
    let proposed: Value = serde_json::from_str(&proposed).unwrap();
    assert_eq!(proposed["resource"]["pending"][0]["approvals"], json!(["org1"]), "{proposed}");
    assert_eq!(proposed["resource"]["members"].as_array().unwrap().len(), 3, "one org alone added org4");
    let (u2, t2) = (net.nodes[1].url.clone(), token_file(&net, 1));
    wait_for(&net, "the proposal reaches org2", Duration::from_secs(10), async || {
        net.get(1, "/v1/orgs").await.1["pending"].as_array().is_some_and(|p| !p.is_empty())
    })
    .await;
    leasehold_ok(&["org", "approve", "--url", &u2, "--token-file", &t2, "--change-id", "add-org4"]);
    wait_for(&net, "org1 applies the join", Duration::from_secs(10), async || {
        net.get(0, "/v1/orgs").await.1["members"].as_array().is_some_and(|m| m.len() == 4)
    })
    .await;
    let (_, orgs) = net.get(0, "/v1/orgs").await;
    assert_eq!(orgs["members"][3]["org"], "org4", "{orgs}");
    assert_eq!(orgs["members"][3]["node_id"], 4, "{orgs}");

    // Past many snapshots, the log that org4 would need is gone. The leader keeps
    // 300 entries behind a snapshot so a node that just installed one can catch up
    // from the log under load, rather than chase snapshot after snapshot.
    wait_for(&net, "400 blocks", Duration::from_secs(60), async || {
        net.status(0).await.is_some_and(|s| s["height"].as_u64() > Some(400))
    })
    .await;
    // It starts from the genesis, catches up from a snapshot, and votes.
    join_node(&mut net, &dir, api);
    wait_for(&net, "org4 becomes a raft voter", Duration::from_secs(90), async || {
        raft_voters(&net, 0).await.as_array().is_some_and(|v| v.len() == 4)
    })
    .await;
    let log = net.log(3);
    assert!(log.contains("installed a checked snapshot"), "org4 did not catch up from a snapshot:\n{log}");
    load.wait_for_progress(200, Duration::from_secs(60)).await;
    // org4 writes under its own key.
    // Under load, on two cores, a commit may take longer than the usual wait.
    let tx = net.sign(3, lease_request("org4-lease", "shared"));
    let (_, r) = net.submit(3, &[tx], 30_000).await.unwrap();
    let refused = json!({"Invalid": "\"org4\" is not allowed by the policy of dataset \"shared\""});
    assert_eq!(r[0]["receipt"]["verdict"], refused, "org4's signature did not pass: {r:?}\n{}", tails(&net));
    let (acked, _) = load.stop().await;
    let status = assert_acknowledged_everywhere(&net, &acked).await;
    assert!(status["height"].as_u64().unwrap() > 400, "{status}");

    // org3 leaves: org1 and org4 are not a majority of four; org2 makes one.
    let lease = net.sign(2, lease_request("org3-lease", "shared"));
    let (_, r) = net.submit(2, &[lease], 5_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");
    let leave = json!({"change_id": "drop-org3", "leave": {"org": "org3", "reason": "contract ended"}});
    let (code, v) = net.call(0, "POST", "/v1/orgs/changes", None, Some(leave)).await;
    assert_eq!(code, 200, "{v}");
    for i in [1, 3] {
        wait_for(&net, "the proposal reaches every node", Duration::from_secs(10), async || {
            net.get(i, "/v1/orgs").await.1["pending"].as_array().is_some_and(|p| !p.is_empty())
        })
        .await;
    }
    let (code, v) = net.call(3, "POST", "/v1/orgs/changes/drop-org3/approve", None, None).await;
    assert_eq!(code, 200, "{v}");
    wait_for(&net, "org1 applies org4's approval", Duration::from_secs(10), async || {
        net.get(0, "/v1/orgs").await.1["pending"][0]["approvals"].as_array().is_some_and(|a| a.contains(&json!("org4")))
    })
    .await;
    assert_eq!(net.get(0, "/v1/leases/org3-lease").await.1["status"], "active", "two of four ended a lease");
    let (code, v) = net.call(1, "POST", "/v1/orgs/changes/drop-org3/approve", None, None).await;
    assert_eq!(code, 200, "{v}");
    let l = net.wait_lease(0, "org3-lease", "revoked").await;
    assert_eq!(l["reason"], "org org3 left the network: contract ended", "{l}");

    // Its node is refused: its txs, its raft vote and its connections.
    let tx = net.sign(2, lease_request("org3-late", "shared"));
    let (_, r) = net.submit(0, &[tx], 5_000).await.unwrap();
    assert_eq!(r[0]["status"], "rejected", "{r:?}");
    assert!(r[0]["reason"].as_str().unwrap().contains("\"org3\" is not a member"), "{r:?}");
    wait_for(&net, "org3 leaves the raft voters", Duration::from_secs(30), async || {
        raft_voters(&net, 0).await == json!(["org1", "org2", "org4"])
    })
    .await;
    wait_for(&net, "org1 drops org3's connection", Duration::from_secs(30), async || {
        let peers = net.status(0).await.unwrap()["peers"].clone();
        peers == json!(["org2", "org4"])
    })
    .await;
    net.stop(2);
    net.spawn(2);
    let start = Instant::now();
    let exit = loop {
        if let Some(status) = net.nodes[2].child.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "org3's node started after it left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    net.nodes[2].child = None;
    assert!(!exit.success());
    assert!(net.log(2).contains("this node is refused: org org3 left the network"), "{}", net.log(2));

    // The three that remain still commit, and every store verifies.
    let tx = net.sign(1, lease_request("after-leave", "shared"));
    let (_, r) = net.submit(3, &[tx], 5_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}\n{}", tails(&net));
    net.wait_converged(status["height"].as_u64().unwrap() + 3, Duration::from_secs(30)).await;
    stop_and_verify_all(&mut net);
}

/// In a network of two, one org leaves: the other alone must be able to
/// remove it from raft, so its node stays connected until raft has.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_orgs_one_leaves_and_the_other_commits_alone() {
    let mut net = TestNet::start(2).await;
    let mut dataset = auto_dataset("shared");
    if let Payload::RegisterDataset { spec, .. } = &mut dataset {
        spec.policy.allowed_orgs = vec!["org2".into()];
    }
    let tx = net.sign(0, dataset);
    let (_, r) = net.submit(0, &[tx], 5_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");
    let leave = json!({"change_id": "drop-org2", "leave": {"org": "org2", "reason": "merged into org1"}});
    let (code, v) = net.call(0, "POST", "/v1/orgs/changes", None, Some(leave)).await;
    assert_eq!(code, 200, "{v}");
    wait_for(&net, "the proposal reaches org2", Duration::from_secs(10), async || {
        net.get(1, "/v1/orgs").await.1["pending"].as_array().is_some_and(|p| !p.is_empty())
    })
    .await;
    let (code, v) = net.call(1, "POST", "/v1/orgs/changes/drop-org2/approve", None, None).await;
    assert_eq!(code, 200, "{v}");
    wait_for(&net, "org2 leaves the raft voters", Duration::from_secs(30), async || {
        raft_voters(&net, 0).await == json!(["org1"])
    })
    .await;
    net.stop(1);
    let tx = net.sign(0, lease_request("alone", "shared"));
    let (_, r) = net.submit(0, &[tx], 10_000).await.unwrap();
    assert_eq!(r[0]["status"], "committed", "org1 cannot commit alone: {r:?}\n{}", tails(&net));
    net.nodes.truncate(1);
    stop_and_verify_all(&mut net);
}
