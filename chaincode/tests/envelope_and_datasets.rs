//! Envelope rules (network, signature, replay, nonce, time) and dataset rules.

mod common;
use common::*;
use leasehold_chaincode::*;

fn iris() -> Payload {
    register("iris", spec("Iris", &["flowers"], policy(&[1], HOUR, Approval::Owner, false)))
}

#[test]
fn wrong_network_is_rejected() {
    let mut net = Net::new();
    let mut body = net.body(0, T0, iris());
    body.network_id = "other-net".into();
    let tx = body.sign(&net.keys[0]);
    let err = net.submit(&tx, T0).unwrap_err();
    assert!(matches!(err, ChaincodeError::WrongNetwork { .. }), "{err}");
}

#[test]
fn unknown_org_is_rejected() {
    let mut net = Net::new();
    let mut body = net.body(0, T0, iris());
    body.org = "org9".into();
    let tx = body.sign(&net.keys[0]);
    assert_eq!(net.submit(&tx, T0).unwrap_err().to_string(), "organisation \"org9\" is not a member of this network");
}

#[test]
fn a_tx_signed_with_another_orgs_key_is_rejected_and_changes_nothing() {
    let mut net = Net::new();
    let body = net.body(0, T0, iris());
    let forged = body.sign(&net.keys[1]);
    let before = net.state.clone();
    let err = net.submit(&forged, T0).unwrap_err();
    assert_eq!(err, ChaincodeError::BadSignature { org: "org1".into() });
    assert_eq!(before, net.state);
}

#[test]
fn a_tampered_body_or_truncated_signature_is_rejected() {
    let mut net = Net::new();
    let mut tx = net.tx(0, T0, iris());
    tx.body.nonce += 1;
    assert!(matches!(net.submit(&tx, T0), Err(ChaincodeError::BadSignature { .. })));
    let mut tx = net.tx(0, T0, iris());
    tx.signature.truncate(10);
    assert!(matches!(net.submit(&tx, T0), Err(ChaincodeError::BadSignature { .. })));
}

#[test]
fn a_replayed_tx_is_rejected() {
    let mut net = Net::new();
    let tx = net.tx(0, T0, iris());
    net.submit(&tx, T0).unwrap();
    let err = net.submit(&tx, T0 + 1).unwrap_err();
    assert_eq!(err, ChaincodeError::Replay(tx.id().to_hex()));
}

#[test]
fn a_stale_nonce_is_rejected() {
    let mut net = Net::new();
    net.genesis.policy.nonce_window = 10;
    net.nonce = 100;
    net.run(0, T0, iris()).unwrap();
    net.nonce = 50; // next nonce 51 <= 101 - 10
    let err = net.reject(0, T0, register("other", spec("Other", &[], policy(&[], HOUR, Approval::Owner, false))));
    assert_eq!(err, ChaincodeError::StaleNonce { org: "org1".into(), nonce: 51, floor: 91 });
    net.nonce = 95; // within the window: accepted
    net.run(0, T0, register("other", spec("Other", &[], policy(&[], HOUR, Approval::Owner, false)))).unwrap();
}

#[test]
fn a_tx_created_far_from_block_time_is_rejected() {
    let mut net = Net::new();
    let tx = net.tx(0, T0, iris());
    let err = net.submit(&tx, T0 + 11 * 60 * 1000).unwrap_err();
    assert_eq!(
        err.to_string(),
        "transaction was created at 2026-11-23T21:30:00.000Z, outside the accepted window around block time 2026-11-23T21:41:00.000Z"
    );
}

#[test]
fn register_stores_version_one_with_indexes() {
    let mut net = Net::new();
    let events = net.run(0, T0, iris()).unwrap();
    assert_eq!(events, vec![Event::DatasetRegistered { id: "iris".into(), version: 1 }]);
    let ds = net.dataset("iris");
    assert_eq!((ds.owner.as_str(), ds.version, ds.retired, ds.created_at_ms), ("org1", 1, false, T0));
    let by_tag = query::datasets(
        &net.state,
        &query::DatasetFilter { tag: Some("flowers".into()), limit: 10, ..Default::default() },
    );
    assert_eq!(by_tag.unwrap().items.len(), 1);
}

#[test]
fn register_rejects_duplicates_and_bad_fields() {
    let mut net = Net::new();
    net.run(0, T0, iris()).unwrap();
    assert_eq!(net.reject(1, T0, iris()), ChaincodeError::AlreadyExists { kind: "dataset", id: "iris".into() });
    let p = || policy(&[1], HOUR, Approval::Owner, false);
    let cases: Vec<(Payload, &str)> = vec![
        (register("../etc", spec("x", &[], p())), "id"),
        (register("d1", spec("  ", &[], p())), "title"),
        (register("d2", spec("x", &["a/b"], p())), "tags"),
        (register("d3", spec("x", &[], policy(&[1], 31 * 24 * HOUR, Approval::Owner, false))), "policy.max_lease_ms"),
        (register("d4", spec("x", &[], policy(&[1], 0, Approval::Owner, false))), "policy.max_lease_ms"),
        (
            register("d5", spec("x", &[], AccessPolicy { allowed_orgs: vec!["org9".into()], ..p() })),
            "policy.allowed_orgs",
        ),
    ];
    for (payload, field) in cases {
        match net.reject(0, T0, payload) {
            ChaincodeError::InvalidField { field: f, .. } => assert_eq!(f, field),
            other => panic!("expected invalid {field}, got {other}"),
        }
    }
}

#[test]
fn update_is_owner_only_and_each_update_is_a_new_version() {
    let mut net = Net::new();
    net.run(0, T0, iris()).unwrap();
    let new_spec = spec("Iris v2", &["botany"], policy(&[1, 2], HOUR, Approval::Owner, false));
    let err = net.reject(1, T0, Payload::UpdateDataset { id: "iris".into(), spec: new_spec.clone() });
    assert_eq!(err.to_string(), "only the owner \"org1\" may update the dataset; \"org2\" is not the owner");
    let ev = net.run(0, T0 + 5, Payload::UpdateDataset { id: "iris".into(), spec: new_spec }).unwrap();
    assert_eq!(ev, vec![Event::DatasetUpdated { id: "iris".into(), version: 2 }]);
    assert_eq!(net.dataset("iris").spec.title, "Iris v2");
    let v1 = query::dataset_version(&net.state, "iris", 1).unwrap().unwrap();
    assert_eq!(v1.spec.title, "Iris", "old versions stay readable");
    let tag = |t: &str| {
        query::datasets(&net.state, &query::DatasetFilter { tag: Some(t.into()), limit: 10, ..Default::default() })
            .unwrap()
            .items
            .len()
    };
    assert_eq!((tag("flowers"), tag("botany")), (0, 1), "tag index follows the new version");
    assert_eq!(query::dataset_versions(&net.state, "iris").unwrap().len(), 2);
}

#[test]
fn update_of_unknown_dataset_is_not_found() {
    let mut net = Net::new();
    let s = spec("x", &[], policy(&[], HOUR, Approval::Owner, false));
    assert_eq!(
        net.reject(0, T0, Payload::UpdateDataset { id: "nope".into(), spec: s }).to_string(),
        "dataset \"nope\" does not exist"
    );
}

#[test]
fn retire_is_owner_only_and_final() {
    let mut net = Net::new();
    net.run(0, T0, iris()).unwrap();
    assert!(matches!(net.reject(2, T0, Payload::RetireDataset { id: "iris".into() }), ChaincodeError::NotOwner { .. }));
    net.run(0, T0, Payload::RetireDataset { id: "iris".into() }).unwrap();
    assert!(net.dataset("iris").retired);
    assert_eq!(net.reject(0, T0, Payload::RetireDataset { id: "iris".into() }), ChaincodeError::Retired("iris".into()));
    let s = spec("x", &[], policy(&[1], HOUR, Approval::Owner, false));
    assert_eq!(
        net.reject(0, T0, Payload::UpdateDataset { id: "iris".into(), spec: s }),
        ChaincodeError::Retired("iris".into())
    );
    assert_eq!(net.reject(1, T0, request("L", "iris", 1000)), ChaincodeError::Retired("iris".into()));
    let listed = query::datasets(&net.state, &query::DatasetFilter { limit: 10, ..Default::default() }).unwrap().items;
    assert!(listed.is_empty(), "retired datasets are hidden unless asked for");
}
