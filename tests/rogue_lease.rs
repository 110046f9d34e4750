//! A dishonest org on the other side of a lease: a lessee that floods its
//! owner's disclosure of metadata, and an owner whose node answers wrongly.
//! The rogue is `common::rogue`: org3's keys, speaking the wire protocol.

mod common;

use std::time::{Duration, Instant};

use common::*;
use leasehold_node::wire::{Rpc, RpcReply};
use serde_json::json;

/// A lessee floods its owner with metadata reads (256 in flight for 8 s),
/// each by another user so that no two share an audit record: before the
/// limits, over a thousand records in 8 s, each a tx in the owner's
/// mempool. The owner refuses the rest clearly, so the ledger takes a
/// bounded trail (the audit records' burst, then their rate, per lease)
/// and the owner's mempool stays its own: its revocation of that very
/// lease commits within its wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_flood_stops_no_revocation() {
    use leasehold_node::wire::disclose::{MetadataRequest, Refusal};
    let mut net = TestNet::start_with(3, |toml| {
        *toml = toml.replace("mempool_capacity = 100000", "mempool_capacity = 300");
    })
    .await;
    let setup = [net.sign(0, auto_dataset("ds")), net.sign(2, lease_request("L3", "ds"))];
    for tx in setup {
        let (_, r) = net.submit(0, &[tx], 10_000).await.unwrap();
        assert!(is_committed_valid(&r[0]), "{r:?}");
    }
    net.wait_lease(0, "L3", "active").await;
    let rogue = Rogue::as_org3(&mut net).await;
    // 256 reads in flight at all times, for 8 s.
    let read = |i: usize| Rpc::Metadata(MetadataRequest { lease_id: "L3".into(), reader: format!("mallory{i}") });
    let rogue = &rogue;
    let started = Instant::now();
    let flood = async {
        use futures::StreamExt;
        let reads = futures::stream::iter(0..100_000).map(|i| async move { rogue.send("org1", &read(i)).await });
        let mut replies = reads.buffer_unordered(256);
        let (mut out, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(8));
        while let Some(r) = replies.next().await {
            out.push(r);
            if Instant::now() > deadline {
                break;
            }
        }
        out
    };
    let revoke = async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let t = Instant::now();
        let (code, r) = net.call(0, "POST", "/v1/leases/L3/revoke", None, Some(json!({"reason": "flooding"}))).await;
        (code, r, t.elapsed(), started.elapsed())
    };
    let (replies, (code, r, took, until_revoked)) = tokio::join!(flood, revoke);
    assert_eq!(code, 200, "the revocation did not commit in its wait ({took:?}): {r}");
    assert_eq!(r["resource"]["status"], "revoked", "{r}");
    // Reads beyond the network's own bound on streams get no answer; of
    // those answered, all but a few were refused as too many or, once the
    // lease was revoked, as revoked: none waited for the owner's mempool.
    let (mut busy, mut revoked, mut unanswered, mut other) = (0, 0, 0, Vec::new());
    for r in &replies {
        match r {
            Some(RpcReply::Metadata(Err(Refusal::Busy(why)))) if why.contains("at most") => busy += 1,
            Some(RpcReply::Metadata(Err(Refusal::Forbidden(why)))) if why.contains("revoked") => revoked += 1,
            None => unanswered += 1,
            Some(other_reply) => other.push(format!("{other_reply:?}")),
        }
    }
    println!("FIGURE metadata flood: {busy} refused as too many, {revoked} as revoked, {unanswered} unanswered");
    assert!(busy > 10, "{busy} of {} reads were refused as too many ({revoked} as revoked)", replies.len());
    // Each read let through is one audit record here, within the limits
    // until the revocation committed.
    use leasehold_node::limits::{AUDITS_PER_S, AUDIT_BURST};
    let bound = (AUDIT_BURST as f64 + AUDITS_PER_S as f64 * (until_revoked.as_secs_f64() + 0.2)) as usize;
    assert!(other.len() <= bound, "{} reads were neither limited nor refused: {:?}", other.len(), other.first());
    let (_, log) = net.get(0, "/v1/leases/L3/access-log").await;
    let records = log.as_array().unwrap().len();
    assert!(records <= bound, "{records} access records; the limits allow {bound} until {until_revoked:?}");
    assert!(records >= AUDIT_BURST as usize, "the flood reached the ledger: {records} access records");
}

/// An owner's node that answers a metadata read with something else, or
/// with bytes that decode to nothing: the lessee's API says the owner's
/// node answered wrongly (502), not that it failed itself (500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owners_wrong_answer_is_a_502_naming_it() {
    let mut net = TestNet::start(3).await;
    let tx = net.sign(2, auto_dataset("theirs"));
    let (_, r) = net.submit(2, &[tx], 10_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");
    net.wait_found(1, "/v1/datasets/theirs").await;
    let tx = net.sign(1, lease_request("L2", "theirs"));
    let (_, r) = net.submit(1, &[tx], 10_000).await.unwrap();
    assert!(is_committed_valid(&r[0]), "{r:?}");
    net.wait_lease(1, "L2", "active").await;
    let wrong = leasehold_node::ledger::store::encode(&RpcReply::Forward(Ok(())));
    let rogue = Rogue::as_org3_answering(&mut net, Some(wrong)).await;
    let (code, p) = net.call(1, "GET", "/v1/leases/L2/metadata", None, None).await;
    assert_eq!(code, 502, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("org3's node answered a different request"), "{p}");
    drop(rogue);
}

/// The same kind of flood spread over four leases: what one org can make
/// the owner write is bounded over all its leases and user names (the
/// per-org rate of records), not four times the per-lease one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_over_many_leases_is_bounded_per_org() {
    use futures::StreamExt;
    use leasehold_node::limits::{ORG_AUDITS_PER_S, ORG_AUDIT_BURST};
    use leasehold_node::wire::disclose::MetadataRequest;
    const LEASES: [&str; 4] = ["La", "Lb", "Lc", "Ld"];
    let mut net = TestNet::start(3).await;
    let mut setup = vec![net.sign(0, auto_dataset("ds"))];
    for lease in LEASES {
        setup.push(net.sign(2, lease_request(lease, "ds")));
    }
    for tx in setup {
        let (_, r) = net.submit(0, &[tx], 10_000).await.unwrap();
        assert!(is_committed_valid(&r[0]), "{r:?}");
    }
    for lease in LEASES {
        net.wait_lease(0, lease, "active").await;
    }
    let rogue = Rogue::as_org3(&mut net).await;
    let rogue = &rogue;
    // Before the first read, so before the first token.
    let started = Instant::now();
    let read = |i: usize| {
        let req = MetadataRequest { lease_id: LEASES[i % LEASES.len()].into(), reader: format!("mallory{i}") };
        async move { rogue.send("org1", &Rpc::Metadata(req)).await }
    };
    let mut replies = futures::stream::iter(0..100_000).map(read).buffer_unordered(256);
    let deadline = Instant::now() + Duration::from_secs(4);
    while replies.next().await.is_some() && Instant::now() < deadline {}
    drop(replies);
    let mut records = 0;
    for lease in LEASES {
        let (code, log) = net.get(0, &format!("/v1/leases/{lease}/access-log")).await;
        assert_eq!(code, 200, "{log}");
        records += log.as_array().unwrap().len();
    }
    // Counted after the last record read: a bound for every record counted.
    let bound = (ORG_AUDIT_BURST as f64 + ORG_AUDITS_PER_S as f64 * started.elapsed().as_secs_f64()) as usize;
    println!("FIGURE flood over {} leases: {records} access records, the org's bound {bound}", LEASES.len());
    assert!(records <= bound, "{records} access records over {} leases; the org's rate allows {bound}", LEASES.len());
    assert!(records >= ORG_AUDIT_BURST as usize, "the flood reached the ledger: {records} access records");
}
