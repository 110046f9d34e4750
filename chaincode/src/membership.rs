//! Who votes in raft: the genesis orgs, until a majority of the orgs
//! approve another set. Each org signs its own `ApproveMembership`; a
//! later approval replaces its earlier one. The set takes effect in the
//! block where a majority of the genesis orgs approve exactly the same set.
//! The node then proposes the raft membership change, and followers admit
//! a membership entry only for a set that is in effect (see `node::gate`).

use serde::{Deserialize, Serialize};

use crate::ctx::{Event, TxCtx};
use crate::{keys, ChaincodeError, Genesis, OrgId, Result, State, StateRead};

const VOTERS: &[u8] = b"cfg/voters";

fn approval_key(org: &str) -> Vec<u8> {
    format!("cfg/approval/{org}").into_bytes()
}

/// The voter set in effect, and the orgs' standing approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipView {
    pub voters: Vec<OrgId>,
    pub approvals: Vec<(OrgId, Vec<OrgId>)>,
}

/// The voters in effect: the genesis orgs unless a majority approved others.
pub fn voters(state: &(impl StateRead + ?Sized), genesis: &Genesis) -> Result<Vec<OrgId>> {
    Ok(keys::get(state, VOTERS)?.unwrap_or_else(|| genesis.orgs.iter().map(|o| o.id.clone()).collect()))
}

/// Sets the voters in effect; an org change does, as it takes effect.
pub(crate) fn set_voters(state: &mut impl State, voters: &[OrgId]) {
    keys::put(state, VOTERS.to_vec(), &voters);
}

pub fn view(state: &(impl StateRead + ?Sized), genesis: &Genesis) -> Result<MembershipView> {
    let mut approvals = Vec::new();
    for org in &genesis.orgs {
        if let Some(set) = keys::get::<Vec<OrgId>>(state, &approval_key(&org.id))? {
            approvals.push((org.id.clone(), set));
        }
    }
    Ok(MembershipView { voters: voters(state, genesis)?, approvals })
}

/// `voters` sorted, without repeats, every one a genesis org, and enough of
/// them to outnumber the rest: a set that a majority of the genesis orgs
/// could not form a quorum in is refused.
fn normalized(genesis: &Genesis, voters: &[OrgId]) -> Result<Vec<OrgId>> {
    let mut set: Vec<OrgId> = voters.to_vec();
    set.sort();
    set.dedup();
    if set.len() != voters.len() {
        return Err(ChaincodeError::invalid("voters", "lists an org twice"));
    }
    if let Some(unknown) = set.iter().find(|o| genesis.org(o).is_none()) {
        return Err(ChaincodeError::invalid("voters", format!("{unknown:?} is not an org of this network")));
    }
    if set.len() <= genesis.orgs.len() / 2 {
        return Err(ChaincodeError::invalid(
            "voters",
            format!(
                "{} voters of {} orgs: a voter set must hold a majority of the orgs",
                set.len(),
                genesis.orgs.len()
            ),
        ));
    }
    Ok(set)
}

pub(crate) fn approve(state: &mut impl State, tcx: &TxCtx, voters: &[OrgId]) -> Result<Event> {
    let genesis = tcx.block.genesis;
    let set = normalized(genesis, voters)?;
    keys::put(state, approval_key(tcx.org), &set);
    let mut approving = 0;
    for org in &genesis.orgs {
        if keys::get::<Vec<OrgId>>(state, &approval_key(&org.id))?.as_ref() == Some(&set) {
            approving += 1;
        }
    }
    let in_effect = approving > genesis.orgs.len() / 2;
    if in_effect {
        set_voters(state, &set);
    }
    Ok(Event::MembershipApproved { voters: set, in_effect })
}
