//! A dishonest organisation against three real honest node processes: a
//! rogue peer that holds org3's genesis-listed p2p key and signing key,
//! speaks the wire protocol, and misbehaves. What it says alone must change
//! nothing the others hold.

mod common;

use std::time::{Duration, Instant};

use common::*;
use leasehold_chaincode::{Payload, SignedTx};
use leasehold_node::wire::Grant;
use leasehold_node::wire::{Rpc, RpcReply};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::Vote;
use serde_json::{json, Value};

async fn status(net: &TestNet, i: usize) -> Value {
    net.status(i).await.expect("node answers status")
}

async fn leader_of_two(net: &TestNet) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = status(net, 0).await;
        if let Some(l) = s["leader"].as_str().filter(|l| *l != "org3") {
            return if l == "org1" { 0 } else { 1 };
        }
        assert!(Instant::now() < deadline, "no leader among org1 and org2: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_messages_that_speak_for_another_node_are_refused() {
    let mut net = TestNet::start(3).await;
    let rogue = Rogue::as_org3(&mut net).await;
    let leader = leader_of_two(&net).await;
    let follower = 1 - leader;
    let (f_org, l_node) = (format!("org{}", follower + 1), leader as u64 + 1);
    let term = status(&net, follower).await["raft_term"].as_u64().unwrap();
    // AppendEntries in a higher term, claiming the real leader's node id;
    // then a vote request claiming it too.
    let append = AppendEntriesRequest {
        vote: Vote::new_committed(term + 1, l_node),
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    };
    assert!(rogue.send(&f_org, &Rpc::Append(append, vec![])).await.is_none(), "no answer to a forged AppendEntries");
    let vote = VoteRequest { vote: Vote::new(term + 5, l_node), last_log_id: None };
    assert!(rogue.send(&f_org, &Rpc::Vote(vote)).await.is_none(), "no answer to a forged vote request");
    // The follower's term did not move, it still follows the real leader, and it says why.
    let s = status(&net, follower).await;
    assert_eq!(s["raft_term"].as_u64(), Some(term), "{s}");
    assert_eq!(s["leader"].as_str(), Some(format!("org{}", leader + 1).as_str()), "{s}");
    let log = net.log(follower);
    assert!(log.contains("refused AppendEntries from org3"), "{log}");
    assert!(log.contains("refused a vote request from org3"), "{log}");
    // Speaking for its own node is allowed: the check is not a blanket refusal.
    let own = VoteRequest { vote: Vote::new(term, 3), last_log_id: None };
    assert!(matches!(rogue.send(&f_org, &Rpc::Vote(own)).await, Some(RpcReply::Vote(..))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_proclaimed_leader_without_a_majoritys_signed_votes_is_refused() {
    let mut net = TestNet::start(3).await;
    let rogue = Rogue::as_org3(&mut net).await;
    let leader = leader_of_two(&net).await;
    let follower = 1 - leader;
    let (f_org, l_org) = (format!("org{}", follower + 1), format!("org{}", leader + 1));
    let before = status(&net, follower).await;
    let term = before["raft_term"].as_u64().unwrap() + 1;
    // org3 claims to lead a higher term, for its own node: with no votes,
    // with its own only, and with a "vote from the leader" it signed itself.
    let own = Grant::sign(&rogue.genesis, "org3", &rogue.key, term, 3);
    let fake = Grant { org: l_org, ..own.clone() };
    for grants in [vec![], vec![own.clone()], vec![own, fake]] {
        let append = AppendEntriesRequest {
            vote: Vote::new_committed(term, 3),
            prev_log_id: None,
            entries: vec![],
            leader_commit: None,
        };
        assert!(rogue.send(&f_org, &Rpc::Append(append, grants)).await.is_none(), "no answer to a self-made leader");
    }
    let after = status(&net, follower).await;
    assert_eq!(after["raft_term"], before["raft_term"], "{after}");
    assert_eq!(after["leader"], before["leader"], "{after}");
    let log = net.log(follower);
    assert!(
        log.contains(&format!(
            "refused AppendEntries from org3: it claims to lead term {term} without a majority's signed votes"
        )),
        "{log}"
    );
}

fn forged(net: &mut TestNet, payload: Payload) -> SignedTx {
    // Signed by org3's key, claiming to come from org1.
    let mut tx = net.sign(2, payload);
    tx.body.org = "org1".into();
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_duplicate_and_flooding_forwarded_txs_are_dropped_and_honest_writes_go_on() {
    let mut net = TestNet::start_with(3, |toml| {
        *toml = toml.replace("mempool_capacity = 100000", "mempool_capacity = 300");
    })
    .await;
    let committed = net.sign(0, auto_dataset("honest"));
    let (code, r) = net.submit(0, std::slice::from_ref(&committed), 5_000).await.unwrap();
    assert!(code == 200 && is_committed_valid(&r[0]), "{r:?}");
    let rogue = Rogue::as_org3(&mut net).await;
    let leader = leader_of_two(&net).await;
    let l_org = format!("org{}", leader + 1);
    let fake = forged(&mut net, auto_dataset("planted"));
    let reply = rogue.send(&l_org, &Rpc::Forward(vec![fake.clone(), committed.clone()])).await;
    assert!(matches!(reply, Some(RpcReply::Forward(Ok(())))), "{reply:?}");
    // A flood of well-signed txs from org3 fills its share (300 / 3) and no more.
    let flood: Vec<SignedTx> = (0..400).map(|i| net.sign(2, lease_request(&format!("f{i}"), "nowhere"))).collect();
    let reply = rogue.send(&l_org, &Rpc::Forward(flood)).await;
    let Some(RpcReply::Forward(Err(why))) = reply else { panic!("the flood was not refused: {reply:?}") };
    assert!(matches!(why, leasehold_node::wire::TxRefusal::ShareFull { .. }), "{why}");
    // An honest write still commits.
    let t = Instant::now();
    let (code, r) = net
        .call(
            leader,
            "POST",
            "/v1/datasets",
            None,
            Some(json!({"id": "after", "title": "t",
        "policy": {"allowed_orgs": [], "max_lease_ms": 1000}, "private_metadata": {}})),
        )
        .await;
    assert_eq!(code, 201, "{r}");
    assert!(t.elapsed() < Duration::from_secs(10));
    // The forged tx is on no node; the duplicate is not committed twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..2 {
        assert_eq!(net.get(i, &format!("/v1/txs/{}", fake.id().to_hex())).await.0, 404);
        assert_eq!(net.get(i, "/v1/datasets/planted").await.0, 404);
    }
    assert!(net.log(leader).contains("dropped 2 forwarded txs from org3"), "{}", net.log(leader));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_tx_once_ordered_cannot_be_replayed_when_it_would_be_valid() {
    let mut net = TestNet::start(3).await;
    let ds = net.sign(0, auto_dataset("ds"));
    let (code, r) = net.submit(0, &[ds], 5_000).await.unwrap();
    assert!(code == 200 && is_committed_valid(&r[0]), "{r:?}");
    // org1 revokes a lease that does not exist yet: ordered, and invalid.
    let early = net.sign(0, Payload::RevokeLease { lease_id: "later".into(), reason: "pre-signed".into() });
    let (_, r) = net.submit(0, std::slice::from_ref(&early), 5_000).await.unwrap();
    assert_eq!(r[0]["status"], "committed", "{r:?}");
    assert!(!is_committed_valid(&r[0]), "{r:?}");
    // org2 takes the lease (automatic approval); the same revocation, sent
    // again by anyone who saw it, is refused as a replay.
    let request = net.sign(1, lease_request("later", "ds"));
    let (_, r) = net.submit(1, &[request], 5_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");
    let (_, r) = net.submit(1, std::slice::from_ref(&early), 5_000).await.unwrap();
    assert!(r[0].to_string().contains("replay"), "{r:?}");
    net.wait_lease(1, "later", "active").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_are_certified_by_a_majority_and_a_signature_on_another_block_is_kept_as_proof() {
    let mut net = TestNet::start(3).await;
    for i in 0..3 {
        let tx = net.sign(i, auto_dataset(&format!("c{i}")));
        let (_, r) = net.submit(i, &[tx], 10_000).await.unwrap();
        assert!(is_committed_valid(&r[0]), "{r:?}");
    }
    net.wait_converged(3, Duration::from_secs(20)).await;
    let genesis: leasehold_chaincode::Genesis =
        serde_json::from_slice(&std::fs::read(net.dir.path().join("genesis.json")).unwrap()).unwrap();
    // Every org signs block 2 and every node holds all three signatures.
    let mut block = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(10);
    while block["certificate"].as_array().map_or(0, |c| c.len()) < 3 {
        assert!(Instant::now() < deadline, "block 2 never got three signatures: {block}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        block = net.get(0, "/v1/blocks/2").await.1;
    }
    assert_eq!(block["certified"], true);
    let hex32 = |v: &Value| <[u8; 32]>::try_from(hex::decode(v.as_str().unwrap()).unwrap().as_slice()).unwrap();
    for c in block["certificate"].as_array().unwrap() {
        let cert = leasehold_node::ledger::certs::Cert {
            org: c["org"].as_str().unwrap().into(),
            height: 2,
            hash: hex32(&c["hash"]),
            state_root: hex32(&c["state_root"]),
            signature: hex::decode(c["signature"].as_str().unwrap()).unwrap(),
        };
        assert!(cert.verify(&genesis), "{c}");
        assert_eq!(c["hash"], block["hash"]);
    }

    // org3 signs a different block at height 2, and forges org1's signature
    // on another: the first is kept as proof and logged, the second refused.
    let rogue = Rogue::as_org3(&mut net).await;
    let key = net.nodes[2].key.clone();
    let other = leasehold_node::ledger::certs::Cert::signed(&net.network_id, "org3", &key, 2, [9; 32], [8; 32]);
    let forged = leasehold_node::ledger::certs::Cert::signed(&net.network_id, "org1", &key, 2, [7; 32], [6; 32]);
    let reply = rogue.send("org1", &Rpc::Certify(vec![other, forged])).await;
    assert!(matches!(reply, Some(RpcReply::Certify(Ok(())))), "{reply:?}");
    let block = net.get(0, "/v1/blocks/2").await.1;
    let conflicting = block["conflicting"].as_array().unwrap();
    assert_eq!(conflicting.len(), 1, "{block}");
    assert_eq!(
        (conflicting[0]["org"].as_str(), conflicting[0]["hash"].as_str()),
        (Some("org3"), Some(hex::encode([9u8; 32]).as_str()))
    );
    assert_eq!(block["certified"], true, "the honest majority still certifies it");
    assert!(net.log(0).contains("DIVERGENCE: org3 signed block"), "{}", net.log(0));
    assert!(net.log(0).contains("refused a block certificate from org3"), "{}", net.log(0));
    // Offline, `verify` checks the certificates and reports the conflict; one
    // org's signature alone does not make the honest store look corrupt.
    net.stop(0);
    let out = std::process::Command::new(bin()).args(["verify", "--data-dir"]).arg(net.data_dir(0)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("warning: org3 signed a different block"), "{stdout}");
    assert!(stdout.contains("at height 2"), "{stdout}");
    let out = std::process::Command::new(bin()).args(["verify", "--data-dir"]).arg(net.data_dir(1)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("certified by a majority"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_no_majority_signed_is_refused() {
    use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership};
    let mut net = TestNet::start(3).await;
    let rogue = Rogue::as_org3(&mut net).await;
    let leader = leader_of_two(&net).await;
    let follower = 1 - leader;
    let f_org = format!("org{}", follower + 1);
    // org3 wins a real election with the follower's vote while the leader is
    // down: it now leads, and still cannot change the voters alone.
    net.stop(leader);
    let (term, grants) = rogue.win_election(&f_org, status(&net, follower).await["raft_term"].as_u64().unwrap()).await;
    let voters = std::collections::BTreeSet::from([follower as u64 + 1, 3]);
    let nodes: std::collections::BTreeMap<u64, BasicNode> = voters.iter().map(|n| (*n, BasicNode::default())).collect();
    let entry = Entry::<leasehold_node::raft::TypeConfig> {
        log_id: LogId::new(CommittedLeaderId::new(term, 3), 1_000_000),
        payload: EntryPayload::Membership(Membership::new(vec![voters], nodes)),
    };
    let append = AppendEntriesRequest {
        vote: Vote::new_committed(term, 3),
        prev_log_id: None,
        entries: vec![entry],
        leader_commit: None,
    };
    assert!(rogue.send(&f_org, &Rpc::Append(append, grants)).await.is_none(), "no answer to the change");
    let log = net.log(follower);
    assert!(log.contains("refused AppendEntries from org3: it changes the membership"), "{log}");
    let (_, m) = net.get(follower, "/v1/membership").await;
    assert_eq!(m["raft_voters"], json!(["org1", "org2", "org3"]), "{m}");
    // The leader back: the ledger still commits with the real voters.
    net.spawn(leader);
    let tx = net.sign(follower, auto_dataset("still"));
    let (_, r) = net.submit(follower, &[tx], 20_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");
}

/// org3's own copy of the ledger, taken while its node is stopped, with
/// each record's value changed by `forge`.
fn forged_snapshot(
    net: &TestNet,
    out: &std::path::Path,
    mut forge: impl FnMut(u8, &[u8], Vec<u8>) -> Vec<u8>,
) -> Vec<u8> {
    rewritten_snapshot(net, out, |section, key, value| {
        let value = forge(section, &key, value);
        Some((key, value))
    })
}

/// org3's own copy of the ledger with each record rewritten (key and
/// value) or dropped (`None`) by `rewrite`.
fn rewritten_snapshot(
    net: &TestNet,
    out: &std::path::Path,
    mut rewrite: impl FnMut(u8, Vec<u8>, Vec<u8>) -> Option<(Vec<u8>, Vec<u8>)>,
) -> Vec<u8> {
    use leasehold_node::ledger::snapshot::{write, Reader, Writer};
    let store = leasehold_node::ledger::store::Store::open_read_only(&net.data_dir(2).join("ledger")).unwrap();
    let genesis_head = store.head().unwrap().expect("org3 committed blocks");
    let genuine = write(&store, out, "genuine.snap", genesis_head, 2, Duration::ZERO).unwrap();
    let mut reader = Reader::new(std::fs::File::open(&genuine.path).unwrap()).unwrap();
    let path = out.join("forged.snap");
    let mut writer = Writer::create(&path).unwrap();
    while let Some((section, key, value)) = reader.next_record().unwrap() {
        if let Some((key, value)) = rewrite(section, key, value) {
            writer.record(section, &key, &value).unwrap();
        }
    }
    writer.finish().unwrap();
    std::fs::read(&path).unwrap()
}

fn with_lease_forever(value: Vec<u8>) -> Vec<u8> {
    use leasehold_chaincode::{canonical, Lease};
    let mut lease: Lease = canonical::from_bytes(&value, "lease").unwrap();
    lease.expires_at_ms = Some(i64::MAX);
    canonical::to_bytes(&lease)
}

fn install_request(term: u64, grants: Vec<Grant>, data: Vec<u8>) -> Rpc {
    use openraft::raft::InstallSnapshotRequest;
    use openraft::{BasicNode, CommittedLeaderId, LogId, Membership, SnapshotMeta, StoredMembership};
    let log_id = LogId::new(CommittedLeaderId::new(term, 3), 1_000_000);
    let voters = std::collections::BTreeSet::from([1u64, 2, 3]);
    let nodes: std::collections::BTreeMap<u64, BasicNode> = voters.iter().map(|n| (*n, BasicNode::default())).collect();
    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), Membership::new(vec![voters], nodes)),
        snapshot_id: "forged".into(),
    };
    // org3 won its election: the gate lets it through, so only the
    // snapshot's check stands between the forgery and the follower's state.
    let request = InstallSnapshotRequest { vote: Vote::new_committed(term, 3), meta, offset: 0, data, done: true };
    Rpc::Snapshot(request, grants)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_snapshot_is_refused() {
    let mut net = TestNet::start(3).await;
    let setup = [net.sign(0, auto_dataset("ds")), net.sign(1, lease_request("L", "ds"))];
    for tx in setup {
        let (_, r) = net.submit(0, &[tx], 10_000).await.unwrap();
        assert!(is_committed_valid(&r[0]), "{r:?}");
    }
    let honest_lease = net.wait_lease(0, "L", "active").await;
    net.wait_converged(2, Duration::from_secs(20)).await;
    let rogue = Rogue::as_org3(&mut net).await;
    let leader = leader_of_two(&net).await;
    let follower = 1 - leader;
    let f_org = format!("org{}", follower + 1);
    let before = status(&net, follower).await;
    net.stop(leader);
    let (term, grants) = rogue.win_election(&f_org, before["raft_term"].as_u64().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();

    // 1. The state changed (lease L never expires), the blocks left as signed.
    let lease_key = leasehold_chaincode::keys::lease("L");
    let forged = forged_snapshot(&net, dir.path(), |section, key, value| {
        if section == leasehold_node::ledger::snapshot::STATE && key == lease_key.as_slice() {
            with_lease_forever(value)
        } else {
            value
        }
    });
    let request = install_request(term, grants.clone(), forged);
    assert!(rogue.send(&f_org, &request).await.is_none(), "no answer to a forged snapshot");
    let log = net.log(follower);
    assert!(log.contains("refused a snapshot from org3: its state hashes to"), "{log}");

    // 2. The last block re-rooted to the forged state: now its hash is one
    // no other org signed, and not the follower's block at that height.
    let mut forged_root = leasehold_chaincode::Commitment::empty();
    let _ = forged_snapshot(&net, dir.path(), |section, key, value| {
        let value = if section == leasehold_node::ledger::snapshot::STATE && key == lease_key.as_slice() {
            with_lease_forever(value)
        } else {
            value
        };
        if section == leasehold_node::ledger::snapshot::STATE || section == leasehold_node::ledger::snapshot::INDEXES {
            forged_root.insert(key, &value);
        }
        value
    });
    let top = before["height"].as_u64().unwrap();
    let forged = forged_snapshot(&net, dir.path(), |section, key, value| {
        if section == leasehold_node::ledger::snapshot::STATE && key == lease_key.as_slice() {
            return with_lease_forever(value);
        }
        if section == leasehold_node::ledger::snapshot::BLOCKS && key == top.to_be_bytes() {
            let mut b = leasehold_node::block::Block::from_bytes(&value).unwrap();
            b.header.state_root = forged_root.root().0;
            return b.to_bytes();
        }
        value
    });
    let request = install_request(term, grants.clone(), forged);
    assert!(rogue.send(&f_org, &request).await.is_none(), "no answer to a re-rooted snapshot");
    let log = net.log(follower);
    assert!(log.contains(&format!("its block {top} is not this node's: it would fork this node's chain")), "{log}");

    // 3. An empty ledger: it would roll the follower back to the genesis.
    let empty = rewritten_snapshot(&net, dir.path(), |_, _, _| None);
    assert!(rogue.send(&f_org, &install_request(term, grants.clone(), empty)).await.is_none(), "empty snapshot");
    let log = net.log(follower);
    assert!(log.contains("below this node's head") && log.contains("it would roll this node's ledger back"), "{log}");

    // 4. The honest ledger, with org3's own valid signature on its last
    // block filed under a key of the rogue's choosing (over the genesis).
    let store = leasehold_node::ledger::store::Store::open_read_only(&net.data_dir(2).join("ledger")).unwrap();
    let head = store.head().unwrap().unwrap();
    drop(store);
    let network = rogue.genesis.network_id.clone();
    let cert = leasehold_node::ledger::certs::Cert::signed(
        &network,
        "org3",
        &rogue.key,
        head.height,
        head.hash,
        head.state_root.0,
    );
    let bytes = rewritten_snapshot(&net, dir.path(), |section, key, value| {
        (section != leasehold_node::ledger::snapshot::CERTS).then_some((key, value))
    });
    // Copied record by record through the real format, plus one CERTS record.
    let mut reader = leasehold_node::ledger::snapshot::Reader::new(bytes.as_slice()).unwrap();
    let path = dir.path().join("planted.snap");
    let mut writer = leasehold_node::ledger::snapshot::Writer::create(&path).unwrap();
    while let Some((section, key, value)) = reader.next_record().unwrap() {
        writer.record(section, &key, &value).unwrap();
    }
    let value = leasehold_node::ledger::store::encode(&cert);
    writer.record(leasehold_node::ledger::snapshot::CERTS, b"genesis", &value).unwrap();
    writer.finish().unwrap();
    let planted = std::fs::read(&path).unwrap();
    assert!(rogue.send(&f_org, &install_request(term, grants.clone(), planted)).await.is_none(), "planted certificate");
    let refusal = "it carries a certificate that is not a valid signature on its last block";
    let log = net.log(follower);
    assert!(log.contains(refusal), "{log}");

    // 5. The honest ledger, with a certificate filed under its own key by an
    // org no node knows: installed, it would make `verify` refuse this
    // honest store, and be served on in its next snapshot.
    let forged = leasehold_node::ledger::certs::Cert {
        org: "org9".into(),
        height: head.height,
        hash: head.hash,
        state_root: head.state_root.0,
        signature: vec![7; 64],
    };
    let path = dir.path().join("stranger.snap");
    let mut reader = leasehold_node::ledger::snapshot::Reader::new(bytes.as_slice()).unwrap();
    let mut writer = leasehold_node::ledger::snapshot::Writer::create(&path).unwrap();
    while let Some((section, key, value)) = reader.next_record().unwrap() {
        writer.record(section, &key, &value).unwrap();
    }
    writer
        .record(leasehold_node::ledger::snapshot::CERTS, &forged.key(), &leasehold_node::ledger::store::encode(&forged))
        .unwrap();
    writer.finish().unwrap();
    let stranger = std::fs::read(&path).unwrap();
    let refused_before = net.log(follower).matches(refusal).count();
    assert!(rogue.send(&f_org, &install_request(term, grants, stranger)).await.is_none(), "a stranger's certificate");
    let log = net.log(follower);
    assert_eq!(log.matches(refusal).count(), refused_before + 1, "{log}");

    // Nothing moved: the follower's height, state and lease.
    let after = status(&net, follower).await;
    assert_eq!(after["height"], before["height"], "{after}");
    assert_eq!(after["state_root"], before["state_root"], "{after}");
    let (_, lease) = net.get(follower, "/v1/leases/L").await;
    assert_eq!(lease["expires_at_ms"], honest_lease["expires_at_ms"], "{lease}");
    // And its store, stopped, still verifies whole.
    net.stop(follower);
    leasehold_ok(&["verify", "--data-dir", path_str(&net.data_dir(follower))]);
}
