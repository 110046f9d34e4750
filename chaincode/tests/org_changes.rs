//! Orgs join and leave only when a majority of the active orgs
//! approve; a change binds from the next block.

mod common;

use common::*;
use ed25519_dalek::{Signer, SigningKey};
use leasehold_chaincode::membership::voters;
use leasehold_chaincode::roster::{card_proof_bytes, OrgChange, Roster};
use leasehold_chaincode::*;

fn card(id: &str, key: &SigningKey, seed: u8) -> OrgInfo {
    OrgInfo {
        id: id.into(),
        name: format!("Organisation {id}"),
        signing_key: key.verifying_key().to_bytes(),
        x25519_key: [seed; 32],
        peer_id: format!("peer-{id}-{seed}"),
        p2p_addr: "/ip4/127.0.0.1/tcp/1".into(),
    }
}

fn proof(net: &Net, card: &OrgInfo, key: &SigningKey) -> Vec<u8> {
    key.sign(&card_proof_bytes(&net.genesis.network_id, card)).to_bytes().to_vec()
}

fn invalid(field: &'static str, reason: &str) -> ChaincodeError {
    ChaincodeError::InvalidField { field, reason: reason.into() }
}

fn propose(id: &str, change: OrgChange) -> Payload {
    Payload::ProposeOrgChange { change_id: id.into(), change }
}

fn approve(id: &str) -> Payload {
    Payload::ApproveOrgChange { change_id: id.into() }
}

/// Makes the next blocks see the roster in effect now, as the node does.
fn next_block(net: &mut Net, genesis: &Genesis) {
    net.genesis = Roster::load(&net.state, genesis).unwrap().orgs;
}

fn join_org4(net: &mut Net) -> SigningKey {
    let key = SigningKey::from_bytes(&[44; 32]);
    let card = card("org4", &key, 44);
    let change = OrgChange::Join { proof: proof(net, &card, &key), card };
    let ev = net.run(0, T0, propose("add-org4", change)).unwrap();
    assert!(matches!(&ev[0], Event::OrgChange { in_effect: false, .. }), "{ev:?}");
    net.run(1, T0, approve("add-org4")).unwrap();
    key
}

#[test]
fn an_org_joins_once_a_majority_approves_and_signs_from_the_next_block() {
    let mut net = Net::new();
    let genesis = net.genesis.clone();
    let key = SigningKey::from_bytes(&[44; 32]);
    let card = card("org4", &key, 44);
    let change = OrgChange::Join { proof: proof(&net, &card, &key), card };
    net.run(0, T0, propose("add-org4", change)).unwrap();
    next_block(&mut net, &genesis);
    assert_eq!(net.genesis.orgs.len(), 3, "one org's proposal took effect");
    assert_eq!(net.reject(0, T0, approve("add-org4")), invalid("change_id", "\"org1\" already approved it"));
    let ev = net.run(1, T0, approve("add-org4")).unwrap();
    assert_eq!(
        ev,
        vec![Event::OrgChange { change_id: "add-org4".into(), approvals: vec![org(0), org(1)], in_effect: true }]
    );
    let roster = Roster::load(&net.state, &genesis).unwrap();
    assert_eq!(roster.node_id("org4"), Some(4));
    assert_eq!(roster.orgs.orgs.len(), 4);
    assert_eq!(voters(&net.state, &roster.orgs).unwrap(), vec![org(0), org(1), org(2), "org4".to_string()]);
    // org4 signs: refused while the block sees the old roster, valid after.
    net.keys.push(key);
    assert_eq!(net.reject(3, T0, request("L9", "none", HOUR)), ChaincodeError::UnknownOrg("org4".into()));
    next_block(&mut net, &genesis);
    let e = net.reject(3, T0, request("L9", "none", HOUR));
    assert_eq!(e, ChaincodeError::NotFound { kind: "dataset", id: "none".into() }, "org4's tx passed the envelope");
}

#[test]
fn a_join_needs_the_cards_own_proof_and_fresh_keys() {
    let mut net = Net::new();
    let key = SigningKey::from_bytes(&[44; 32]);
    let mut c = card("org4", &key, 44);
    let forged = OrgChange::Join { proof: proof(&net, &c, &SigningKey::from_bytes(&[45; 32])), card: c.clone() };
    let e = net.reject(0, T0, propose("j", forged));
    assert_eq!(e, invalid("proof", "is not the card's signing key's signature over the card"));
    // org2's key, proven by org2's own key: still not a new org's.
    c.signing_key = net.keys[1].verifying_key().to_bytes();
    let stolen = OrgChange::Join { proof: proof(&net, &c, &net.keys[1].clone()), card: c };
    assert_eq!(net.reject(0, T0, propose("j", stolen)), invalid("card", "its keys or peer id are or were \"org2\"'s"));
    let mut dup = card("org2", &key, 44);
    dup.peer_id = "fresh".into();
    let dup = OrgChange::Join { proof: proof(&net, &dup, &key), card: dup };
    assert_eq!(net.reject(0, T0, propose("j", dup)), ChaincodeError::AlreadyExists { kind: "org", id: "org2".into() });
}

#[test]
fn a_change_lapses_unapproved() {
    let mut net = Net::new();
    let key = SigningKey::from_bytes(&[44; 32]);
    let c = card("org4", &key, 44);
    net.run(0, T0, propose("add", OrgChange::Join { proof: proof(&net, &c, &key), card: c })).unwrap();
    let late = T0 + roster::CHANGE_TTL_MS + 1;
    let e = net.run(1, late, approve("add")).unwrap_err();
    assert_eq!(e, invalid("change_id", "the change lapsed: it was not approved within 7 days"));
    assert_eq!(roster::pending(&net.state).unwrap().len(), 1, "a failed tx must not write");
}

#[test]
fn an_org_that_leaves_is_refused_and_its_leases_end_with_the_reason() {
    let mut net = with_active_lease(); // org2 leases org1's iris as L1
    let genesis = net.genesis.clone();
    net.run(2, T0 + 3000, request("L2", "iris", HOUR / 2)).unwrap();
    let leave = OrgChange::Leave { org: org(0), reason: "contract ended".into() };
    net.run(1, T0 + 4000, propose("bye", leave)).unwrap();
    assert_eq!(net.lease("L1").status_at(T0 + 4000), LeaseStatus::Active, "one org's proposal ended a lease");
    net.run(2, T0 + 4000, approve("bye")).unwrap();
    let reason = Some("org org1 left the network: contract ended".to_string());
    let (l1, l2) = (net.lease("L1"), net.lease("L2"));
    assert_eq!((l1.state, &l1.reason), (LeaseState::Revoked, &reason));
    assert_eq!((l2.state, &l2.reason), (LeaseState::Denied, &reason));
    let roster = Roster::load(&net.state, &genesis).unwrap();
    assert!(roster.members[0].left.is_some());
    assert_eq!(roster.node_id("org1"), Some(1), "node ids are never reused");
    assert_eq!(voters(&net.state, &roster.orgs).unwrap(), vec![org(1), org(2)]);
    next_block(&mut net, &genesis);
    assert_eq!(net.reject(0, T0 + 5000, request("L3", "iris", HOUR)), ChaincodeError::UnknownOrg(org(0)));
    let e = net.reject(2, T0 + 5000, request("L3", "iris", HOUR));
    assert_eq!(e, invalid("dataset_id", "its owner \"org1\" left the network"));
}

#[test]
fn a_departed_orgs_later_tx_in_its_own_leave_block_is_refused() {
    let mut net = with_active_lease();
    let leave = OrgChange::Leave { org: org(0), reason: "contract ended".into() };
    net.run(1, T0 + 4000, propose("bye", leave)).unwrap();
    let before =
        net.tx(0, T0 + 4000, register("early", spec("Early", &[], policy(&[1], HOUR, Approval::Owner, false))));
    let approval = net.tx(2, T0 + 4000, approve("bye"));
    let after = net.tx(0, T0 + 4000, register("late", spec("Late", &[], policy(&[1], HOUR, Approval::Owner, false))));
    let ctx = net.ctx(T0 + 4000);
    let out = apply_block(&net.state, &ctx, &[before, approval, after], &Commitment::empty()).unwrap();
    let results: Vec<_> = out.outcomes.iter().map(|o| o.result.as_ref().map(|_| ())).collect();
    assert_eq!(results[0], Ok(()), "before the leave, org1 is a member");
    assert_eq!(results[1], Ok(()));
    assert_eq!(results[2], Err(&ChaincodeError::UnknownOrg(org(0))), "org1 wrote after it left");
    assert!(!out.writes.keys().any(|k| k.windows(4).any(|w| w == b"late")), "the refused tx left writes");
}

#[test]
fn org4_joins_then_counts_towards_the_majority() {
    let mut net = Net::new();
    let genesis = net.genesis.clone();
    let key = join_org4(&mut net);
    net.keys.push(key);
    next_block(&mut net, &genesis);
    // Four orgs: two approvals are not a majority any more.
    let leave = OrgChange::Leave { org: org(2), reason: "gone".into() };
    net.run(0, T0, propose("bye", leave)).unwrap();
    let ev = net.run(3, T0, approve("bye")).unwrap();
    assert!(matches!(&ev[0], Event::OrgChange { in_effect: false, .. }), "{ev:?}");
    let ev = net.run(1, T0, approve("bye")).unwrap();
    assert!(matches!(&ev[0], Event::OrgChange { in_effect: true, .. }), "{ev:?}");
}

#[test]
fn an_org_rotates_its_keys_and_its_old_key_is_refused() {
    let mut net = Net::new();
    let genesis = net.genesis.clone();
    let old = net.genesis.orgs[1].clone();
    let key = SigningKey::from_bytes(&[52; 32]);
    let card = OrgInfo { signing_key: key.verifying_key().to_bytes(), peer_id: "peer-org2-new".into(), ..old.clone() };
    let rotate = |card: &OrgInfo, net: &Net| OrgChange::Rotate { proof: proof(net, card, &key), card: card.clone() };
    // The sealing key stays; no key is taken twice; the proof is the new key's.
    let other_x = OrgInfo { x25519_key: [9; 32], ..card.clone() };
    let e = net.reject(0, T0, propose("r", rotate(&other_x, &net)));
    assert_eq!(e, invalid("card.x25519_key", "stays the same: data is sealed to it"));
    let taken = OrgInfo { peer_id: net.genesis.orgs[2].peer_id.clone(), ..card.clone() };
    assert!(matches!(
        net.reject(0, T0, propose("r", rotate(&taken, &net))),
        ChaincodeError::InvalidField { field: "card", .. }
    ));
    let forged = OrgChange::Rotate { proof: proof(&net, &card, &net.keys[1].clone()), card: card.clone() };
    assert!(matches!(net.reject(0, T0, propose("r", forged)), ChaincodeError::InvalidField { field: "proof", .. }));

    net.run(0, T0, propose("r", rotate(&card, &net))).unwrap();
    let ev = net.run(2, T0, approve("r")).unwrap();
    assert!(matches!(&ev[0], Event::OrgChange { in_effect: false, .. }), "a majority took over org2's keys: {ev:?}");
    assert_eq!(Roster::load(&net.state, &genesis).unwrap().members[1].info, old);
    let approval = net.tx(1, T0, approve("r"));
    let late_old = net.tx(1, T0, request("L1", "none", HOUR));
    let ctx = net.ctx(T0);
    let out = apply_block(&net.state, &ctx, &[approval.clone(), late_old], &Commitment::empty()).unwrap();
    assert_eq!(
        out.outcomes[1].result,
        Err(ChaincodeError::UnknownOrg(org(1))),
        "the old key signed after the rotation"
    );
    net.submit(&approval, T0).unwrap();
    let roster = Roster::load(&net.state, &genesis).unwrap();
    assert_eq!(roster.members[1].info, card);
    assert_eq!(roster.members[1].previous, vec![old.clone()]);
    assert_eq!(roster.generations()[1].orgs[1], old, "the old key is kept for old signatures");
    next_block(&mut net, &genesis);
    let stale = net.tx(1, T0, request("L2", "none", HOUR));
    assert!(net.submit(&stale, T0).is_err(), "the old key still signs for org2");
    net.keys[1] = key;
    let e = net.reject(1, T0, request("L3", "none", HOUR));
    assert_eq!(
        e,
        ChaincodeError::NotFound { kind: "dataset", id: "none".into() },
        "the new key's tx passed the envelope"
    );
    // Going back to the old key is refused: no key is taken twice.
    let back = OrgChange::Rotate { proof: proof(&net, &old, &SigningKey::from_bytes(&[2; 32])), card: old.clone() };
    assert!(matches!(net.reject(0, T0, propose("back", back)), ChaincodeError::InvalidField { .. }));
}

fn leave(org_ix: usize, reason: &str) -> OrgChange {
    OrgChange::Leave { org: org(org_ix), reason: reason.into() }
}

/// A rogue org's flood of proposals to expel the honest orgs: it may keep
/// only a few pending, so it blocks neither an honest org's key rotation
/// nor its own expulsion; a proposer withdraws its own change, and a
/// majority denies one.
#[test]
fn hostile_org_changes_block_no_rotation_and_no_expulsion() {
    let mut net = Net::new();
    let genesis = net.genesis.clone();
    let mut refused = 0;
    for i in 0..8 {
        let target = [0, 1][i % 2];
        match net.run(2, T0, propose(&format!("rogue-{i}"), leave(target, "spite"))) {
            Ok(_) => {}
            Err(e) => {
                assert!(e.to_string().contains("org3 already has"), "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused >= 8 - roster::MAX_PENDING_PER_ORG, "org3 kept {} changes pending", 8 - refused);
    // org1 rotates its keys all the same.
    let key = SigningKey::from_bytes(&[51; 32]);
    let mut new_card = card("org1", &key, 0);
    new_card.x25519_key = net.genesis.orgs[0].x25519_key;
    let rotate = OrgChange::Rotate { proof: proof(&net, &new_card, &key), card: new_card };
    net.run(0, T0 + 1, propose("rotate-org1", rotate)).unwrap();
    let ev = net.run(1, T0 + 1, approve("rotate-org1")).unwrap();
    assert!(matches!(&ev[0], Event::OrgChange { in_effect: true, .. }), "{ev:?}");
    next_block(&mut net, &genesis);
    net.keys[0] = key;
    // Its proposer withdraws a change; no one else can.
    let err = net.reject(0, T0 + 2, Payload::WithdrawOrgChange { change_id: "rogue-0".into() });
    assert!(err.to_string().contains("only org3"), "{err}");
    net.run(2, T0 + 2, Payload::WithdrawOrgChange { change_id: "rogue-0".into() }).unwrap();
    assert!(roster::pending(&net.state).unwrap().iter().all(|c| c.id != "rogue-0"));
    // A majority denies one: it is gone, and cannot be approved.
    net.run(0, T0 + 3, Payload::DenyOrgChange { change_id: "rogue-1".into() }).unwrap();
    assert!(roster::pending(&net.state).unwrap().iter().any(|c| c.id == "rogue-1"), "one denial is not a majority");
    net.run(1, T0 + 3, Payload::DenyOrgChange { change_id: "rogue-1".into() }).unwrap();
    assert!(roster::pending(&net.state).unwrap().iter().all(|c| c.id != "rogue-1"));
    assert!(matches!(net.reject(2, T0 + 4, approve("rogue-1")), ChaincodeError::NotFound { .. }));
    // And the rogue is expelled by the other two.
    net.run(2, T0 + 4, propose("rogue-2", leave(0, "spite"))).unwrap();
    net.run(0, T0 + 5, propose("expel-org3", leave(2, "proposed to expel everyone"))).unwrap();
    let ev = net.run(1, T0 + 5, approve("expel-org3")).unwrap();
    assert!(matches!(&ev[0], Event::OrgChange { in_effect: true, .. }), "{ev:?}");
    // Its proposals go with it.
    assert!(roster::pending(&net.state).unwrap().is_empty(), "{:?}", roster::pending(&net.state).unwrap());
}
