//! Block time that one organisation's clock cannot move. A rogue peer with
//! org3's keys sends proposals signed by org3 with a time a day ahead (even
//! claiming them committed) or an hour behind; the honest followers refuse
//! them, and no lease moves.

mod common;

use std::time::Duration;

use common::*;
use leasehold_node::block::Proposal;
use leasehold_node::raft::TypeConfig;
use leasehold_node::wire::{Rpc, RpcReply};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};

const DAY_MS: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_a_day_ahead_or_held_behind_are_refused_and_no_lease_moves() {
    let mut net = TestNet::start(3).await;
    let ds = net.sign(0, auto_dataset("hourly"));
    let (_, r) = net.submit(0, &[ds], 20_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");
    let req = net.sign(1, lease_request("hour", "hourly"));
    let (_, r) = net.submit(1, &[req], 20_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");
    net.wait_lease(1, "hour", "active").await;
    let probe = net.sign(2, lease_request("probe", "hourly"));

    // org3's node is replaced by a rogue holding its keys.
    let rogue = Rogue::as_org3(&mut net).await;
    let genesis: leasehold_chaincode::Genesis =
        serde_json::from_slice(&std::fs::read(net.dir.path().join("genesis.json")).unwrap()).unwrap();

    // org3 wins a real election with one honest node's vote while the other
    // is down (the leader, if one of the two led), and then proposes.
    let leader = net.wait_for_leader(Duration::from_secs(10)).await;
    let (down, voter) = if leader == 1 { (1, 0) } else { (0, 1) };
    net.stop(down);
    let voter_org = format!("org{}", voter + 1);
    let term = net.status(voter).await.unwrap()["raft_term"].as_u64().unwrap();
    let (term, grants) = rogue.win_election(&voter_org, term).await;
    let now = leasehold_node::now_ms();
    for (time_ms, claim_committed) in [(now + DAY_MS, true), (now + DAY_MS, false), (now - 3_600_000, false)] {
        let proposal = Proposal::new(&genesis, "org3", &net.nodes[2].key, time_ms, vec![probe.clone()]);
        let log_id = LogId::new(CommittedLeaderId::new(term, 3), 1_000_000);
        let entry = Entry::<TypeConfig> { log_id, payload: EntryPayload::Normal(proposal) };
        let append = AppendEntriesRequest {
            vote: Vote::new_committed(term, 3),
            prev_log_id: None,
            entries: vec![entry],
            leader_commit: claim_committed.then_some(log_id),
        };
        // Each case must be refused for its time, not because the rogue is
        // still ignored for the previous one: resend until the refusal for
        // time is logged again.
        let refusals =
            |net: &TestNet| net.log(voter).matches("refused AppendEntries from org3: its proposal's time is").count();
        let (seen, deadline) = (refusals(&net), std::time::Instant::now() + Duration::from_secs(20));
        while refusals(&net) == seen {
            let answer = rogue.send(&voter_org, &Rpc::Append(append.clone(), grants.clone())).await;
            // Refused: no answer, or only "my term is higher" once the
            // voter has moved on from the rogue's term.
            let refused = matches!(answer, None | Some(RpcReply::Append(Ok(AppendEntriesResponse::HigherVote(_)))));
            assert!(refused, "{voter_org} took a proposal {} ms off: {answer:?}", time_ms - now);
            assert!(
                std::time::Instant::now() < deadline,
                "a proposal {} ms off was never refused for its time",
                time_ms - now
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Nothing moved, on either honest node once the other is back: the
    // lease active, block time near now, and the probe transaction nowhere.
    net.spawn(down);
    net.wait_converged(0, Duration::from_secs(30)).await;
    for i in [0, 1] {
        let s = net.status(i).await.unwrap();
        assert!(s["block_time_ms"].as_i64().unwrap() < leasehold_node::now_ms() + 60_000, "{s}");
        assert_eq!(net.wait_lease(i, "hour", "active").await["status"], "active");
        assert_eq!(net.get(i, &format!("/v1/txs/{}", probe.id().to_hex())).await.0, 404);
    }
    // And the honest pair still commits.
    let tx = net.sign(0, auto_dataset("after"));
    let (_, r) = net.submit(0, &[tx], 20_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}\norg1:\n{}\norg2:\n{}", net.log(0), net.log(1));
}
