//! Raft voters change only through approvals a majority of the orgs signed
//! on the ledger, and then really change in raft.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn membership(net: &TestNet, i: usize) -> Value {
    let (code, m) = net.call(i, "GET", "/v1/membership", None, None).await;
    assert_eq!(code, 200, "{m}");
    m
}

async fn wait_raft_voters(net: &TestNet, i: usize, want: Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = membership(net, i).await;
        if m["raft_voters"] == want {
            return;
        }
        assert!(Instant::now() < deadline, "node {i}'s raft voters never became {want}: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_change_when_a_majority_approves_and_not_before() {
    let mut net = TestNet::start(3).await;
    net.wait_for_leader(Duration::from_secs(10)).await;
    let all = json!(["org1", "org2", "org3"]);
    let two = json!(["org1", "org2"]);

    // A bad set is refused with the field and the reason.
    let (code, p) = net.call(0, "POST", "/v1/membership", None, Some(json!({"voters": ["org1"]}))).await;
    assert_eq!(code, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("a voter set must hold a majority"), "{p}");

    // org1 alone approves dropping org3: committed, and nothing changes.
    let (code, w) = net.call(0, "POST", "/v1/membership", None, Some(json!({"voters": ["org2", "org1"]}))).await;
    assert_eq!(code, 200, "{w}");
    let height = w["height"].as_u64().unwrap();
    net.wait_converged(height, Duration::from_secs(10)).await;
    for i in 0..3 {
        let m = membership(&net, i).await;
        assert_eq!(m["voters"], all, "node {i}: {m}");
        assert_eq!(m["raft_voters"], all, "node {i}: {m}");
        assert_eq!(m["approvals"], json!([["org1", ["org1", "org2"]]]), "node {i}: {m}");
    }

    // org2 approves the same set: now a majority, and raft follows.
    let (code, w) = net.call(1, "POST", "/v1/membership", None, Some(json!({"voters": ["org1", "org2"]}))).await;
    assert_eq!(code, 200, "{w}");
    assert_eq!(w["resource"]["voters"], two, "{w}");
    wait_raft_voters(&net, 0, two.clone()).await;
    wait_raft_voters(&net, 1, two.clone()).await;

    // org3 no longer votes: with org2 down, org1 and org3 are not a quorum.
    net.stop(1);
    let tx = net.sign(0, auto_dataset("while-org2-is-down"));
    let (_, r) = net.submit(0, &[tx], 3_000).await.unwrap();
    assert!(!is_committed_valid(&r[0]), "committed without org2, so org3 still votes: {r:?}");
    // org2 back: the two voters elect a leader and commit again. (org3,
    // out of the cluster, hears from no leader, so it is not asked.)
    net.spawn(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (a, b) = (net.status(0).await, net.status(1).await);
        let leader = |s: &Option<Value>| s.as_ref().and_then(|s| s["leader"].as_str().map(String::from));
        // org3, removed, may still be named until the two hold an election.
        let voter = leader(&a).is_some_and(|l| l == "org1" || l == "org2");
        if voter && leader(&a) == leader(&b) {
            break;
        }
        assert!(Instant::now() < deadline, "org1 and org2 never agreed on a leader: {a:?} {b:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tx = net.sign(0, auto_dataset("with-org2-back"));
    let (_, r) = net.submit(0, &[tx], 15_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}\norg1:\n{}\norg2:\n{}", net.log(0), net.log(1));
}

/// A follower a block behind receives, in one AppendEntries, the block
/// whose approval makes a majority for new voters and the change the
/// leader proposed on applying it (an honest leader does this whenever the
/// follower lagged by that block). The follower takes the block and
/// answers a partial success, then takes the change sent again: it once
/// refused the whole, judging the change before the block that allows it,
/// and stayed behind for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_takes_the_approving_block_and_then_the_change_it_allows() {
    use leasehold_node::block::Proposal;
    use leasehold_node::raft::{Entry, TypeConfig};
    use leasehold_node::wire::{Rpc, RpcReply};
    use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
    use openraft::{BasicNode, CommittedLeaderId, EntryPayload, LogId, Membership, Vote};

    let mut net = TestNet::start(3).await;
    let rogue = Rogue::as_org3(&mut net).await;
    let (leader, f) = settled_pair(&net).await;
    let f_org = format!("org{}", f + 1);
    let s = net.status(f).await.unwrap();
    let (term, applied) = (s["raft_term"].as_u64().unwrap(), s["raft_applied_index"].as_u64().unwrap());
    let last = LogId::new(CommittedLeaderId::new(term, leader as u64 + 1), applied);
    net.stop(leader);
    let (term, grants) = rogue.win_election(&f_org, term).await;

    // The follower's org and org3 approve {follower, org3}: a majority.
    let voters = json!([f_org.clone(), "org3"]);
    let approve = leasehold_chaincode::Payload::ApproveMembership { voters: vec![f_org.clone(), "org3".into()] };
    let txs = vec![net.sign(f, approve.clone()), rogue.sign(approve)];
    let block = Proposal::new(&rogue.genesis, "org3", &rogue.key, leasehold_node::now_ms(), txs);
    let at = |index: u64| LogId::new(CommittedLeaderId::new(term, 3), index);
    let ids = std::collections::BTreeSet::from([f as u64 + 1, 3]);
    let nodes = (1..=3).map(|n| (n, BasicNode::default())).collect::<std::collections::BTreeMap<u64, _>>();
    let joint = Membership::new(vec![std::collections::BTreeSet::from([1, 2, 3]), ids], nodes);
    let change = Entry { log_id: at(applied + 2), payload: EntryPayload::Membership(joint) };
    let append = |prev, entries: Vec<Entry>| {
        let r = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(term, 3),
            prev_log_id: Some(prev),
            entries,
            leader_commit: Some(at(applied + 1)),
        };
        Rpc::Append(r, grants.clone())
    };
    let both = vec![Entry { log_id: at(applied + 1), payload: EntryPayload::Normal(block) }, change.clone()];

    let reply = rogue.send(&f_org, &append(last, both)).await;
    let Some(RpcReply::Append(Ok(AppendEntriesResponse::PartialSuccess(Some(taken))))) = reply else {
        panic!("the block was not taken alone: {reply:?}\n{}", net.log(f));
    };
    assert_eq!(taken, at(applied + 1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while membership(&net, f).await["voters"] != voters {
        assert!(Instant::now() < deadline, "the approving block never applied: {}", membership(&net, f).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = rogue.send(&f_org, &append(at(applied + 1), vec![change])).await;
    assert!(matches!(reply, Some(RpcReply::Append(Ok(AppendEntriesResponse::Success)))), "{reply:?}");
}

/// A leader among org1 and org2 and its follower, once the follower has
/// applied all the leader has: (leader, follower).
async fn settled_pair(net: &TestNet) -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (a, b) = (net.status(0).await.unwrap(), net.status(1).await.unwrap());
        let leader = a["leader"].as_str().filter(|l| *l == "org1" || *l == "org2");
        let same = |k: &str| a[k] == b[k];
        if let Some(l) = leader.filter(|_| same("leader") && same("raft_term") && same("raft_applied_index")) {
            return if l == "org1" { (0, 1) } else { (1, 0) };
        }
        assert!(Instant::now() < deadline, "org1 and org2 never settled: {a} {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
