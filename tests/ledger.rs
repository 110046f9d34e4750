//! The ledger end to end: real `leasehold` processes, raft over libp2p,
//! RocksDB on disk.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use leasehold_chaincode::SignedTx;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_signed_txs_over_three_nodes_converge() {
    let mut net = TestNet::start(3).await;
    let setup = net.sign(0, auto_dataset("ds"));
    let (code, out) = net.submit(0, &[setup], 10_000).await.unwrap();
    assert_eq!(code, 200, "{out:?}");
    assert!(is_committed_valid(&out[0]), "{out:?}");
    // 1,000 lease requests signed by org2 and org3, sent to all three nodes.
    let txs: Vec<_> = (0..1000).map(|i| net.sign(1 + i % 2, lease_request(&format!("l{i}"), "ds"))).collect();
    let mut handles = Vec::new();
    for (n, chunk) in txs.chunks(100).enumerate() {
        let (http, url, chunk) = (net.http.clone(), net.nodes[n % 3].url.clone(), chunk.to_vec());
        let token = net.nodes[n % 3].token.clone();
        handles.push(tokio::spawn(async move {
            let body = leasehold_chaincode::canonical::to_bytes(&chunk);
            let r =
                http.post(format!("{url}/v1/txs?wait_ms=20000")).bearer_auth(token).body(body).send().await.unwrap();
            r.json::<Vec<serde_json::Value>>().await.unwrap()
        }));
    }
    let mut valid = 0;
    for h in handles {
        valid += h.await.unwrap().iter().filter(|v| is_committed_valid(v)).count();
    }
    assert_eq!(valid, 1000, "every tx commits valid");
    let status = net.wait_converged(2, Duration::from_secs(20)).await;
    // Every node indexes every tx at the same place.
    let id = txs[777].id().to_hex();
    let mut seen = HashSet::new();
    for i in 0..3 {
        let (code, body) = net.get(i, &format!("/v1/txs/{id}")).await;
        assert_eq!(code, 200);
        seen.insert((body["height"].as_u64(), body["index"].as_u64()));
    }
    assert_eq!(seen.len(), 1);
    let (_, leases) = net.get(2, &format!("/v1/blocks/{}", status["height"])).await;
    assert_eq!(leases["hash"], status["head_hash"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tx_with_a_bad_signature_is_never_committed_as_valid() {
    let mut net = TestNet::start(3).await;
    for i in 0..3 {
        let mut forged = net.sign(1, lease_request(&format!("f{i}"), "ds"));
        forged.signature[3] ^= 0x55;
        let (code, out) = net.submit(i, std::slice::from_ref(&forged), 3_000).await.unwrap();
        assert_eq!(code, 200);
        assert_eq!(out[0]["status"], "rejected", "{out:?}");
        assert!(out[0]["reason"].as_str().unwrap().contains("signature does not verify"));
        // Signed by another org's key, claiming to be org2.
        let mut body = net.sign(1, lease_request(&format!("g{i}"), "ds")).body;
        body.nonce += 1;
        let other = body.sign(&net.nodes[2].key);
        let (_, out) = net.submit(i, std::slice::from_ref(&other), 3_000).await.unwrap();
        assert_eq!(out[0]["status"], "rejected");
        for j in 0..3 {
            for tx in [&forged, &other] {
                let (code, _) = net.get(j, &format!("/v1/txs/{}", tx.id())).await;
                assert_eq!(code, 404, "a forged tx is on node {j}");
            }
        }
    }
}

/// Sends one batch to the followers until every tx in it is acknowledged:
/// committed valid, or found already committed (its first acknowledgement
/// was lost with a request the leader's death cut off); panics after 40
/// attempts.
async fn submit_until_acknowledged(http: reqwest::Client, urls: Vec<(String, String)>, batch: Vec<SignedTx>) {
    let mut acked = HashSet::new();
    for attempt in 0..40 {
        let todo: Vec<SignedTx> = batch.iter().filter(|t| !acked.contains(&t.id().to_hex())).cloned().collect();
        if todo.is_empty() {
            return;
        }
        let (url, token) = &urls[attempt % urls.len()];
        let body = leasehold_chaincode::canonical::to_bytes(&todo);
        let req = http.post(format!("{url}/v1/txs?wait_ms=5000")).bearer_auth(token).body(body);
        let sent = req.timeout(Duration::from_secs(15)).send().await;
        if let Ok(out) = async { sent?.json::<Vec<serde_json::Value>>().await }.await {
            for v in out {
                // A copy sent again while the first was still in flight is
                // committed as an invalid replay: the first copy stands.
                let reason = format!("{}{}", v["reason"].as_str().unwrap_or(""), v["receipt"]["verdict"]);
                assert!(
                    v["status"] != "committed" || is_committed_valid(&v) || reason.contains("already committed"),
                    "{v}"
                );
                if v["status"] == "committed" || reason.contains("already committed") {
                    acked.insert(v["tx_id"].as_str().unwrap().to_string());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("a batch was still not acknowledged after 40 attempts: {} of {}", acked.len(), batch.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_no_acknowledged_tx() {
    let mut net = TestNet::start(3).await;
    let setup = net.sign(0, auto_dataset("ds"));
    assert!(is_committed_valid(&net.submit(0, &[setup], 10_000).await.unwrap().1[0]));
    let leader = net.wait_for_leader(Duration::from_secs(10)).await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    // Pre-sign the load so the submitter only sends.
    let batches: Vec<Vec<_>> = (0..60)
        .map(|b| (0..50).map(|i| net.sign(1 + (b + i) % 2, lease_request(&format!("k{b}-{i}"), "ds"))).collect())
        .collect();
    let sent: HashSet<String> = batches.iter().flatten().map(|t| t.id().to_hex()).collect();
    let urls: Vec<(String, String)> =
        followers.iter().map(|i| (net.nodes[*i].url.clone(), net.nodes[*i].token.clone())).collect();
    let http = net.http.clone();
    let load = tokio::spawn(async move {
        for batch in batches {
            submit_until_acknowledged(http.clone(), urls.clone(), batch).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!load.is_finished(), "the load ended before the leader was killed");
    net.kill9(leader);
    let killed_ms = leasehold_node::now_ms();
    let new_leader = net.wait_for_leader(Duration::from_secs(15)).await;
    assert_ne!(new_leader, leader);
    // The new leader commits: a fresh tx goes through, and the block that
    // holds it says when, by the new leader's clock.
    let probe = net.sign(2, lease_request("after-failover", "ds"));
    let (_, out) = net.submit(new_leader, &[probe], 15_000).await.unwrap();
    assert!(is_committed_valid(&out[0]), "new leader did not commit: {out:?}");
    // Failover, by the ledger's own clock: the first block proposed after
    // the kill, whatever the test's polling cost.
    let (_, at) = net.get(new_leader, &format!("/v1/txs/{}", out[0]["tx_id"].as_str().unwrap())).await;
    let mut first_after = None;
    for h in (1..=at["height"].as_u64().unwrap()).rev() {
        let t = net.get(new_leader, &format!("/v1/blocks/{h}")).await.1["time_ms"].as_i64().unwrap();
        if t <= killed_ms {
            break;
        }
        first_after = Some(t);
    }
    let failover_ms = first_after.expect("the probe's block is after the kill") - killed_ms;
    assert!(failover_ms < 10_000, "the first block after the kill came {failover_ms} ms later");
    // Every batch was resent until acknowledged (or the load panicked).
    load.await.unwrap();
    // The killed node comes back; every node holds each acknowledged tx
    // exactly once, and all agree on the state.
    net.spawn(leader);
    let status = net.wait_converged(2, Duration::from_secs(30)).await;
    for i in 0..3 {
        let ids = net.valid_tx_ids(i).await;
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "node {i} applied a tx twice");
        assert!(sent.iter().all(|id| unique.contains(id)), "node {i} lacks an acknowledged tx");
        assert_eq!(net.status(i).await.unwrap()["state_root"], status["state_root"], "node {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_height_of_a_corrupted_block() {
    let mut net = TestNet::start(3).await;
    let setup = net.sign(0, auto_dataset("ds"));
    assert!(is_committed_valid(&net.submit(0, &[setup], 10_000).await.unwrap().1[0]));
    for b in 0..5 {
        let txs: Vec<_> = (0..20).map(|i| net.sign(1, lease_request(&format!("v{b}-{i}"), "ds"))).collect();
        net.submit(b % 3, &txs, 10_000).await.unwrap();
    }
    let status = net.wait_converged(3, Duration::from_secs(20)).await;
    net.stop(1);
    let dir = net.data_dir(1);
    let verify = || std::process::Command::new(bin()).args(["verify", "--data-dir", path_str(&dir)]).output().unwrap();
    let ok = verify();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains(status["head_hash"].as_str().unwrap()));
    let cfs = ["raft_log", "raft_meta", "blocks", "txs", "state", "indexes", "meta"];
    let open = || rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.join("ledger"), cfs).unwrap();
    let flip = |cf: &str, key: &[u8]| {
        let db = open();
        let cf = db.cf_handle(cf).unwrap();
        let mut bytes = db.get_cf(cf, key).unwrap().unwrap();
        let at = bytes.len().saturating_sub(40);
        bytes[at] ^= 0x01;
        db.put_cf(cf, key, bytes).unwrap();
    };
    let failure = || {
        let out = verify();
        assert!(!out.status.success(), "verify passed a corrupt store");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // One byte in the state column family, then one in the indexes: the
    // chain checks out, the stored state does not.
    for cf in ["state", "indexes"] {
        let (key, value) = {
            let db = open();
            let h = db.cf_handle(cf).unwrap();
            let (k, v) = db.iterator_cf(h, rocksdb::IteratorMode::Start).next().unwrap().unwrap();
            db.put_cf(h, &k, [&v[..], &[0]].concat()).unwrap();
            (k.to_vec(), v.to_vec())
        };
        let err = failure();
        assert!(err.contains("the stored state and indexes differ"), "{cf}: {err}");
        let db = open();
        db.put_cf(db.cf_handle(cf).unwrap(), &key, &value).unwrap();
        drop(db);
        assert!(verify().status.success(), "restored {cf}");
    }
    // A tx index entry moved to another place, then one removed.
    let (key, value) = {
        let db = open();
        let h = db.cf_handle("txs").unwrap();
        let (k, v) = db.iterator_cf(h, rocksdb::IteratorMode::Start).next().unwrap().unwrap();
        let (height, index): (u64, u32) = leasehold_node::ledger::store::decode(&v, "tx location").unwrap();
        db.put_cf(h, &k, leasehold_node::ledger::store::encode(&(height, index + 1))).unwrap();
        (k.to_vec(), v.to_vec())
    };
    assert!(failure().contains("the tx index puts tx"));
    let db = open();
    db.delete_cf(db.cf_handle("txs").unwrap(), &key).unwrap();
    drop(db);
    assert!(failure().contains("the tx index puts tx"), "a missing entry is named too");
    let db = open();
    db.put_cf(db.cf_handle("txs").unwrap(), &key, &value).unwrap();
    db.put_cf(db.cf_handle("txs").unwrap(), [7u8; 32], &value).unwrap();
    drop(db);
    assert!(failure().contains("the tx index holds"), "an extra entry");
    let db = open();
    db.delete_cf(db.cf_handle("txs").unwrap(), [7u8; 32]).unwrap();
    drop(db);
    assert!(verify().status.success(), "restored txs");
    // One byte inside the blocks at heights 3 and 2: the first bad height is named.
    flip("blocks", &3u64.to_be_bytes());
    assert!(failure().contains("verification failed at height 3"));
    flip("blocks", &2u64.to_be_bytes());
    let err = failure();
    assert!(err.contains("verification failed at height 2"), "{err}");
    // The node itself checks its recent blocks at start: it refuses to serve
    // the corrupt store, names the height and says how to recover.
    net.spawn(1);
    let mut child = net.nodes[1].child.take().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the node served a corrupt store");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    let log = net.log(1);
    assert!(log.contains("is corrupt (verification failed at height 2"), "{log}");
    assert!(log.contains("re-syncing from the other organisations' nodes"), "{log}");
    // `start --verify` replays the whole chain first, and refuses too.
    let cfg = net.nodes[1].dir.join("node.toml");
    let out = std::process::Command::new(bin()).args(["start", "--verify", "--config"]).arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("verification failed at height 2"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_peers_outside_the_genesis() {
    let net = TestNet::start(2).await;
    // A stranger with a fresh identity dials the node's p2p port.
    let ports = ports::reserve(1);
    let node_cfg = std::fs::read_to_string(net.nodes[0].dir.join("node.toml")).unwrap();
    let p2p: String = node_cfg.lines().find(|l| l.starts_with("p2p_listen")).unwrap().split('"').nth(1).unwrap().into();
    let genesis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(net.dir.path().join("genesis.json")).unwrap()).unwrap();
    let peer_id: leasehold_network::PeerId = genesis["orgs"][0]["peer_id"].as_str().unwrap().parse().unwrap();
    let (client, event_loop, _inbound) = leasehold_network::new(leasehold_network::Config {
        keypair: leasehold_network::Keypair::generate_ed25519(),
        listen: format!("/ip4/127.0.0.1/tcp/{}", ports[0].number).parse().unwrap(),
        peers: vec![(peer_id, p2p.parse().unwrap())],
        allowed: vec![peer_id],
        request_timeout_ms: 2_000,
        redial_interval_ms: 200,
    })
    .unwrap();
    tokio::spawn(event_loop.run());
    let res = client.request(peer_id, b"hello".to_vec()).await;
    assert!(res.is_err(), "a stranger's request was answered");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(net.log(0).contains("refused incoming connection"), "refusal not logged:\n{}", net.log(0));
    // Its one genesis peer is connected; the stranger is not a peer.
    assert_eq!(net.status(0).await.unwrap()["peers"], serde_json::json!(["org2"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_far_behind_catches_up_from_a_snapshot() {
    // Snapshot every 5 entries and keep 2 behind it, so a node that misses
    // 30 blocks cannot be sent the log and must install a snapshot.
    let mut net = TestNet::start_with(3, |toml| {
        *toml =
            toml.replace("snapshot_every = 20000", "snapshot_every = 5").replace("keep_logs = 1000", "keep_logs = 2");
    })
    .await;
    let setup = net.sign(0, auto_dataset("ds"));
    assert!(is_committed_valid(&net.submit(0, &[setup], 10_000).await.unwrap().1[0]));
    let leader = net.wait_for_leader(Duration::from_secs(10)).await;
    let behind = (leader + 1) % 3;
    let other = 3 - leader - behind;
    net.stop(behind);
    for b in 0..30 {
        let tx = net.sign(1, lease_request(&format!("s{b}"), "ds"));
        let (_, out) = net.submit(other, &[tx], 10_000).await.unwrap();
        assert!(is_committed_valid(&out[0]), "{out:?}");
    }
    net.spawn(behind);
    let status = net.wait_converged(30, Duration::from_secs(30)).await;
    assert_eq!(net.status(behind).await.unwrap()["state_root"], status["state_root"]);
    assert!(
        net.log(behind).contains("installed a checked snapshot"),
        "caught up without a snapshot:\n{}",
        net.log(behind)
    );
    // The caught-up node's chain verifies offline.
    net.stop(behind);
    let out = std::process::Command::new(bin())
        .args(["verify", "--data-dir", path_str(&net.data_dir(behind))])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_and_another_signer_for_one_org_do_not_stale_each_others_nonces() {
    let mut net = TestNet::start(3).await;
    let setup = net.sign(0, auto_dataset("ds"));
    assert!(is_committed_valid(&net.submit(0, &[setup], 10_000).await.unwrap().1[0]));
    // A tool signing for org2 with microsecond nonces, a minute ahead of the node's clock.
    let mut body = net.sign(1, lease_request("tool", "ds")).body;
    body.nonce = leasehold_node::now_ms() as u64 * 1000 + 60_000_000;
    let tx = body.sign(&net.nodes[1].key);
    assert!(is_committed_valid(&net.submit(1, &[tx], 10_000).await.unwrap().1[0]));
    // org2's own node still signs fresh transactions for org2.
    let (code, out) =
        net.call(1, "POST", "/v1/datasets/ds/leases", None, Some(serde_json::json!({"duration_ms": 1000}))).await;
    assert_eq!(code, 201, "{out}");
}
