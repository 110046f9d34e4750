//! Election certificates: a leader shows the signed votes that elected it.
//!
//! openraft trusts a committed vote: a peer that sends AppendEntries or
//! InstallSnapshot claiming to lead a higher term is followed, election or
//! not. So every vote this node grants is signed by its org (`Grant`, over
//! network, term and candidate), the candidate collects the grants it
//! receives (`Ballots`), and a leader sends them with every AppendEntries
//! and InstallSnapshot. A follower takes those only once a majority of each
//! of its voter sets signed a vote for that leader in that term; it then
//! remembers the proof and skips the check for the rest of the term.
//!
//! What this does not stop: an org may still win an election by claiming a
//! longer log than it has (raft believes a candidate's `last_log_id`). It
//! then leads like any leader: every tx is re-validated, its time gated,
//! its snapshots checked, and a fork it makes is exposed by the
//! certificates.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use leasehold_network::PeerId;
use openraft::Vote;
use tracing::warn;

use super::Consensus;
use crate::error::Result;
use crate::ledger::store::{Store, CF_RAFT_META};
use crate::raft::NodeId;
use crate::wire::Grant;

/// Terms of grants a candidate keeps; older ones are of no use.
const TERMS_KEPT: usize = 4;

/// The grants this node received as a candidate, per term. They are kept
/// in `raft_meta`: openraft resumes leadership after a restart when its
/// vote was committed, and the resumed leader must still show its proof.
pub struct Ballots {
    terms: Mutex<BTreeMap<u64, Vec<Grant>>>,
    store: Store,
}

impl Ballots {
    pub fn load(store: Store) -> Result<Self> {
        let terms = store.get(CF_RAFT_META, b"ballots")?.unwrap_or_default();
        Ok(Self { terms: Mutex::new(terms), store })
    }

    pub fn record(&self, grant: Grant) {
        let mut terms = self.terms.lock().expect("ballots lock");
        let list = terms.entry(grant.term).or_default();
        if list.iter().any(|g| g.org == grant.org) {
            return;
        }
        list.push(grant);
        while terms.len() > TERMS_KEPT {
            terms.pop_first();
        }
        if let Err(e) = self.store.put_sync(CF_RAFT_META, b"ballots", &*terms) {
            warn!("cannot keep this node's election grants: {e}");
        }
    }

    pub fn for_term(&self, term: u64) -> Vec<Grant> {
        self.terms.lock().expect("ballots lock").get(&term).cloned().unwrap_or_default()
    }
}

/// The grant this node gives when it has granted `vote`'s candidate its vote.
pub(crate) fn grant_for(inner: &Consensus, vote: &Vote<NodeId>) -> Option<Grant> {
    let candidate = vote.leader_id().voted_for()?;
    Some(Grant::sign(&inner.ledger.genesis, &inner.cfg.org, &inner.key, vote.leader_id().term, candidate))
}

/// Whether `grants` prove that `vote`'s leader was elected: a majority
/// signed a vote for it in that term.
pub(crate) fn proves(inner: &Consensus, peer: &PeerId, vote: &Vote<NodeId>, grants: &[Grant], what: &str) -> bool {
    let (term, Some(leader)) = (vote.leader_id().term, vote.leader_id().voted_for()) else { return false };
    if *inner.elected.lock().expect("elected lock") == Some((term, leader)) {
        return true;
    }
    let roster = inner.ledger.roster();
    let orgs = &roster.orgs;
    let signers: BTreeSet<NodeId> = grants
        .iter()
        .filter(|g| g.term == term && g.candidate == leader && g.verify(orgs))
        .filter_map(|g| roster.node_id(&g.org))
        .collect();
    // A majority of the genesis orgs, or of each of this node's voter sets:
    // a leader elected before the voters changed keeps its proof. Either
    // way an honest org signed, and honest nodes vote only for voters.
    let membership = inner.raft.metrics().borrow().membership_config.clone();
    let of_genesis = signers.len() > orgs.orgs.len() / 2;
    // An empty membership (a joined node before it is a learner) proves nothing.
    let configs = membership.membership().get_joint_config();
    let of_current = !configs.is_empty() && configs.iter().all(|c| c.intersection(&signers).count() > c.len() / 2);
    let proven = of_genesis || of_current;
    if proven {
        *inner.elected.lock().expect("elected lock") = Some((term, leader));
    } else {
        let org = inner.peers().org_name(peer);
        warn!(%peer, "refused {what} from {org}: it claims to lead term {term} without a majority's signed votes (signed by nodes {signers:?})");
    }
    proven
}
