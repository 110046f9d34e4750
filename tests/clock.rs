//! Block time that one organisation's clock cannot move. A rogue peer with
//! org3's keys sends proposals signed by org3 with a time a day ahead (even
//! claiming them committed) or an hour behind; the honest followers refuse
//! them, and no lease moves.

mod common;

use common::*;
use leasehold_node::block::Proposal;
use leasehold_node::raft::{Rpc, TypeConfig};
use openraft::raft::AppendEntriesRequest;
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

    let status = |i| net.status(i);
    let terms = [
        status(0).await.unwrap()["raft_term"].as_u64().unwrap(),
        status(1).await.unwrap()["raft_term"].as_u64().unwrap(),
    ];
    let term = terms[0].max(terms[1]);
    let now = leasehold_node::now_ms();
    for (time_ms, claim_committed) in [(now + DAY_MS, true), (now + DAY_MS, false), (now - 3_600_000, false)] {
        let proposal = Proposal::new(&genesis, "org3", &net.nodes[2].key, time_ms, vec![probe.clone()]);
        let log_id = LogId::new(CommittedLeaderId::new(term + 1, 3), 1_000_000);
        let entry = Entry::<TypeConfig> { log_id, payload: EntryPayload::Normal(proposal) };
        let append = AppendEntriesRequest {
            vote: Vote::new_committed(term + 1, 3),
            prev_log_id: None,
            entries: vec![entry],
            leader_commit: claim_committed.then_some(log_id),
        };
        for org in ["org1", "org2"] {
            let answer = rogue.send(org, &Rpc::Append(append.clone())).await;
            assert!(answer.is_none(), "{org} answered a proposal {} ms off", time_ms - now);
        }
    }
    // Nothing moved: same terms, the lease active, block time near now, and
    // the probe transaction on no node.
    for (i, term) in terms.iter().enumerate() {
        let s = status(i).await.unwrap();
        assert_eq!(s["raft_term"].as_u64(), Some(*term), "{s}");
        assert!(s["block_time_ms"].as_i64().unwrap() < leasehold_node::now_ms() + 60_000, "{s}");
        assert_eq!(net.wait_lease(i, "hour", "active").await["status"], "active");
        assert_eq!(net.get(i, &format!("/v1/txs/{}", probe.id().to_hex())).await.0, 404);
        assert!(net.log(i).contains("refused AppendEntries from org3: its proposal's time is"), "{}", net.log(i));
    }
    // And the honest pair still commits.
    let tx = net.sign(0, auto_dataset("after"));
    let (_, r) = net.submit(0, &[tx], 10_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");
}
