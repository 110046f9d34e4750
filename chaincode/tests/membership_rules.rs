//! Raft voters change only when a majority of the orgs approve the same set.

mod common;

use common::*;
use leasehold_chaincode::membership::{view, voters};
use leasehold_chaincode::*;

fn approve(set: &[&str]) -> Payload {
    Payload::ApproveMembership { voters: set.iter().map(|s| s.to_string()).collect() }
}

#[test]
fn one_org_alone_changes_nothing_and_a_majority_changes_the_voters() {
    let mut net = Net::new();
    let all = vec!["org1".to_string(), "org2".into(), "org3".into()];
    assert_eq!(voters(&net.state, &net.genesis).unwrap(), all);
    let ev = net.run(0, T0, approve(&["org2", "org1"])).unwrap();
    assert_eq!(ev, vec![Event::MembershipApproved { voters: vec!["org1".into(), "org2".into()], in_effect: false }]);
    assert_eq!(voters(&net.state, &net.genesis).unwrap(), all, "one org's approval took effect");
    // org3 approving a different set does not count towards org1's.
    net.run(2, T0, approve(&["org1", "org3"])).unwrap();
    assert_eq!(voters(&net.state, &net.genesis).unwrap(), all);
    let ev = net.run(1, T0, approve(&["org1", "org2"])).unwrap();
    assert_eq!(ev, vec![Event::MembershipApproved { voters: vec!["org1".into(), "org2".into()], in_effect: true }]);
    assert_eq!(voters(&net.state, &net.genesis).unwrap(), vec!["org1".to_string(), "org2".into()]);
    let v = view(&net.state, &net.genesis).unwrap();
    assert_eq!(v.approvals.len(), 3, "{v:?}");
    // And back to all three, again by a majority.
    net.run(0, T0, approve(&["org1", "org2", "org3"])).unwrap();
    assert_eq!(voters(&net.state, &net.genesis).unwrap().len(), 2);
    net.run(2, T0, approve(&["org1", "org2", "org3"])).unwrap();
    assert_eq!(voters(&net.state, &net.genesis).unwrap(), all);
}

#[test]
fn a_voter_set_must_be_known_orgs_without_repeats_and_a_majority() {
    let mut net = Net::new();
    let cases: [(&[&str], &str); 3] = [
        (&["org1", "org9"], "\"org9\" is not an org of this network"),
        (&["org1", "org1", "org2"], "lists an org twice"),
        (&["org1"], "1 voters of 3 orgs: a voter set must hold a majority of the orgs"),
    ];
    for (set, reason) in cases {
        let e = net.reject(0, T0, approve(set));
        assert_eq!(e, ChaincodeError::InvalidField { field: "voters", reason: reason.into() });
    }
}
