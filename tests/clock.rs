//! Block time that one organisation's clock cannot move: org3's node runs a
//! day fast, is made the leader, and a one-hour lease stays active.

mod common;

use std::time::{Duration, Instant};

use common::*;

const DAY_MS: i64 = 86_400_000;

async fn leader(net: &TestNet, asking: &[usize]) -> Option<String> {
    for &i in asking {
        if let Some(l) = net.status(i).await.and_then(|s| s["leader"].as_str().map(String::from)) {
            return Some(l);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_a_day_fast_moves_no_lease_and_is_replaced() {
    let mut net = TestNet::start_with(3, |toml| {
        // The first `org =` is the node's own; later ones name its peers.
        if toml.lines().find(|l| l.starts_with("org = ")) == Some("org = \"org3\"") {
            // org3 also accepts the others' proposals as far as two days
            // behind its clock: it keeps up with them and can be elected.
            // (With the default 30 s it would refuse them all, fall behind,
            // and never lead: safe, but then this test could not make it lead.)
            assert!(toml.contains("max_past_ms = 30000"), "{toml}");
            *toml =
                format!("clock_offset_ms = {DAY_MS}\n{toml}").replace("max_past_ms = 30000", "max_past_ms = 172800000");
        }
    })
    .await;
    // org2 holds a one-hour lease (automatic approval).
    let ds = net.sign(0, auto_dataset("hourly"));
    let (_, r) = net.submit(0, &[ds], 20_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");
    let req = net.sign(1, lease_request("hour", "hourly"));
    let (_, r) = net.submit(1, &[req], 20_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");
    net.wait_lease(1, "hour", "active").await;

    // Restart whichever honest node leads until org3 is elected.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let l = leader(&net, &[0, 1, 2]).await;
        if l.as_deref() == Some("org3") {
            break;
        }
        assert!(Instant::now() < deadline, "org3 was never elected");
        if let Some(i) = l.and_then(|o| ["org1", "org2"].iter().position(|x| *x == o)) {
            net.stop(i);
            let others: Vec<usize> = (0..3).filter(|j| *j != i).collect();
            let wait = Instant::now() + Duration::from_secs(10);
            while leader(&net, &others).await.is_none_or(|n| n == format!("org{}", i + 1)) && Instant::now() < wait {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            net.spawn(i);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A write while org3 leads: org3 proposes it a day ahead, the others
    // refuse to append that, and elect another leader, which commits it.
    let probe = net.sign(0, auto_dataset("probe"));
    let _ = net.submit(0, &[probe], 3_000).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    while net.get(0, "/v1/datasets/probe").await.0 != 200 {
        assert!(Instant::now() < deadline, "no honest leader took over: {}", net.log(0));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ne!(leader(&net, &[0, 1]).await.as_deref(), Some("org3"));
    for i in 0..2 {
        assert_eq!(net.wait_lease(i, "hour", "active").await["status"], "active");
    }
    let now = leasehold_node::now_ms();
    for i in 0..3 {
        let t = net.status(i).await.unwrap()["block_time_ms"].as_i64().unwrap();
        assert!(t < now + 60_000, "node {i}'s block time moved ahead by {} ms", t - now);
    }
    let refused = (0..2).any(|i| net.log(i).contains("refused AppendEntries from org3: its proposal's time is"));
    assert!(refused, "{}", net.log(0));
}
