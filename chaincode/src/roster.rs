//! Who the orgs are: the genesis orgs, amended by org changes (an org joins
//! or leaves) that a majority of the active orgs approved.
//!
//! Any active org proposes a change (`ProposeOrgChange`, which counts as its
//! approval; at most [`MAX_PENDING_PER_ORG`] of an org's wait at once); the
//! others approve it (`ApproveOrgChange`) or deny it (`DenyOrgChange`: a
//! majority's denials drop it), and its proposer may withdraw it. It takes effect in
//! the block where more than half of the active orgs have approved it. The
//! node checks the signatures of block h against the roster after block
//! h - 1, so a change binds from the next block (and later in its own
//! block, for an org that left or rotated its key): a departed org's tx, or
//! one under a rotated-away key, is refused from then on. A rotation keeps
//! the old card in [`Member::previous`], for old blocks' signatures.
//!
//! Every org that ever joined keeps its place in [`Roster::members`]; its
//! raft node id is that place plus one, so ids are never reused.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ctx::{Event, TxCtx};
use crate::time::TimeMs;
use crate::{canonical, keys, ChaincodeError, Genesis, LeaseState, LeaseStatus, OrgId, OrgInfo, Result, State};
use crate::{Lease, StateRead};

/// The state key of the members; a block that writes it changes the roster.
pub const MEMBERS: &[u8] = b"cfg/orgs";
const CHANGE_PREFIX: &str = "cfg/orgchange/";
/// At most this many orgs ever, so every roster-sized loop is bounded.
pub const MAX_ORGS: usize = 64;
/// At most this many of one org's proposals wait for approval at once: no
/// org can fill the queue and so block the others' changes.
pub const MAX_PENDING_PER_ORG: usize = 2;
/// At most this many changes wait for approval at once.
pub const MAX_PENDING: usize = MAX_ORGS * MAX_PENDING_PER_ORG;
/// A change not approved within this much block time lapses.
pub const CHANGE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// Leases ended when an org leaves, at most: a bound on one tx's work.
const MAX_LEASES_ENDED: usize = 100_000;

fn change_key(id: &str) -> Vec<u8> {
    format!("{CHANGE_PREFIX}{id}").into_bytes()
}

/// An org that is or was a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub info: OrgInfo,
    /// Set once it left: when, and why.
    pub left: Option<Departure>,
    /// The cards it had before each key rotation, oldest first: their keys
    /// are never taken again, and old blocks still check against them.
    pub previous: Vec<OrgInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Departure {
    pub at_ms: TimeMs,
    pub reason: String,
}

/// A change to the orgs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrgChange {
    /// A new org, from its card. `proof` is the card's signing key's
    /// signature over [`card_proof_bytes`]: without it one org could bind
    /// another's key or peer id to a name of its choosing.
    Join { card: OrgInfo, proof: Vec<u8> },
    /// An org leaves: its tx are refused and its leases end, with `reason`.
    Leave { org: OrgId, reason: String },
    /// An org's new signing and p2p keys: `card` names the org (`card.id`)
    /// and its new keys; `proof` is the new signing key's signature over
    /// [`card_proof_bytes`]. It needs the org's own approval besides the
    /// majority. The old keys sign nothing from the next tx on. The X25519
    /// key stays: data sealed to it must still open.
    Rotate { card: OrgInfo, proof: Vec<u8> },
}

/// Rotations one org may make, at most: every old key is kept.
pub const MAX_ROTATIONS: usize = 16;

/// A change waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    pub id: String,
    pub change: OrgChange,
    pub proposed_by: OrgId,
    pub proposed_at_ms: TimeMs,
    pub approvals: Vec<OrgId>,
    /// The active orgs that refused it; a majority of them drop it.
    pub denials: Vec<OrgId>,
}

/// The orgs in effect after some block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// Every org that ever joined, in joining order.
    pub members: Vec<Member>,
    /// The genesis with the active orgs only: what new signatures are
    /// checked against.
    pub orgs: Genesis,
    /// The genesis with every member, departed ones too: for signatures
    /// made before they left (old blocks and their certificates).
    pub ever: Genesis,
    /// Whether any change has taken effect since the genesis.
    pub changed: bool,
}

impl Roster {
    /// The roster in `state`: the genesis orgs until a change took effect.
    pub fn load(state: &(impl StateRead + ?Sized), genesis: &Genesis) -> Result<Self> {
        let stored: Option<Vec<Member>> = keys::get(state, MEMBERS)?;
        let changed = stored.is_some();
        let members = stored.unwrap_or_else(|| genesis_members(genesis));
        let active = members.iter().filter(|m| m.left.is_none()).map(|m| m.info.clone()).collect();
        let ever = members.iter().map(|m| m.info.clone()).collect();
        Ok(Self {
            members,
            orgs: Genesis { orgs: active, ..genesis.clone() },
            ever: Genesis { orgs: ever, ..genesis.clone() },
            changed,
        })
    }

    /// The raft node id of `org`, active or not.
    pub fn node_id(&self, org: &str) -> Option<u64> {
        self.members.iter().position(|m| m.info.id == org).map(|i| i as u64 + 1)
    }

    /// Whether `key` is `org`'s signing key now (the org active).
    pub fn is_key_of(&self, org: &str, key: &[u8; 32]) -> bool {
        self.orgs.org(org).is_some_and(|o| o.signing_key == *key)
    }

    /// `ever`, then the same with each member's earlier cards, newest
    /// first: every key an org signed with, for old signatures whose height
    /// is not at hand (at most `MAX_ROTATIONS + 1`).
    pub fn generations(&self) -> Vec<Genesis> {
        let depth = self.members.iter().map(|m| m.previous.len()).max().unwrap_or(0);
        let mut out = vec![self.ever.clone()];
        for back in 1..=depth {
            let orgs = self
                .members
                .iter()
                .map(|m| m.previous.len().checked_sub(back).map_or(&m.info, |i| &m.previous[i]).clone())
                .collect();
            out.push(Genesis { orgs, ..self.ever.clone() });
        }
        out
    }

    /// The member whose node id is `id`.
    pub fn member(&self, id: u64) -> Option<&Member> {
        usize::try_from(id).ok()?.checked_sub(1).and_then(|i| self.members.get(i))
    }
}

/// The members in `state`. When none are stored, `genesis` is the genesis
/// itself (no change has taken effect), so its orgs are the members.
fn members(state: &(impl StateRead + ?Sized), genesis: &Genesis) -> Result<Vec<Member>> {
    Ok(keys::get(state, MEMBERS)?.unwrap_or_else(|| genesis_members(genesis)))
}

fn genesis_members(genesis: &Genesis) -> Vec<Member> {
    genesis.orgs.iter().map(|o| Member { info: o.clone(), left: None, previous: Vec::new() }).collect()
}

/// The orgs of `genesis` (the roster a block started with) that have left
/// or rotated their signing key in `state`: their txs later in the block
/// were checked against a key that no longer speaks for them.
pub(crate) fn departed(state: &(impl StateRead + ?Sized), genesis: &Genesis) -> Result<Vec<OrgId>> {
    let members = members(state, genesis)?;
    let gone = |o: &OrgInfo| {
        members.iter().any(|m| m.info.id == o.id && (m.left.is_some() || m.info.signing_key != o.signing_key))
    };
    Ok(genesis.orgs.iter().filter(|o| gone(o)).map(|o| o.id.clone()).collect())
}

/// What a card's proof signs: domain, network and the card's canonical bytes.
pub fn card_proof_bytes(network_id: &str, card: &OrgInfo) -> Vec<u8> {
    let mut bytes = b"leasehold org card\0".to_vec();
    bytes.extend(canonical::to_bytes(&(network_id, card)));
    bytes
}

/// The changes waiting for approval, oldest first.
pub fn pending(state: &(impl StateRead + ?Sized)) -> Result<Vec<PendingChange>> {
    let mut out = Vec::new();
    for (key, value) in state.scan_prefix(CHANGE_PREFIX.as_bytes(), MAX_PENDING)? {
        out.push(canonical::from_bytes(&value, "org change").map_err(|e| ChaincodeError::Corrupt {
            key: String::from_utf8_lossy(&key).into(),
            reason: e.to_string(),
        })?);
    }
    out.sort_by_key(|c: &PendingChange| c.proposed_at_ms);
    Ok(out)
}

/// Checks a new card (`rotating`: new keys for the member of that id) and
/// its proof. No key or peer id any member has or had may be taken again.
fn check_card(tcx: &TxCtx, members: &[Member], card: &OrgInfo, proof: &[u8], rotating: bool) -> Result<()> {
    keys::valid_id("card.id", &card.id)?;
    if card.name.trim().is_empty() || card.name.len() > 200 {
        return Err(ChaincodeError::invalid("card.name", "must be 1 to 200 bytes"));
    }
    if card.peer_id.is_empty() || card.peer_id.len() > 128 || card.p2p_addr.len() > 256 {
        return Err(ChaincodeError::invalid("card.peer_id", "must be 1 to 128 bytes, its address at most 256"));
    }
    for m in members {
        if m.info.id == card.id && !rotating {
            return Err(ChaincodeError::AlreadyExists { kind: "org", id: card.id.clone() });
        }
        for i in std::iter::once(&m.info).chain(&m.previous) {
            let own_sealing_key = rotating && i.id == card.id;
            if i.signing_key == card.signing_key
                || (i.x25519_key == card.x25519_key && !own_sealing_key)
                || i.peer_id == card.peer_id
            {
                return Err(ChaincodeError::invalid("card", format!("its keys or peer id are or were {:?}'s", i.id)));
            }
        }
    }
    let bad = || ChaincodeError::invalid("proof", "is not the card's signing key's signature over the card");
    let key = VerifyingKey::from_bytes(&card.signing_key).map_err(|_| bad())?;
    let sig: [u8; 64] = proof.try_into().map_err(|_| bad())?;
    let bytes = card_proof_bytes(&tcx.block.genesis.network_id, card);
    key.verify_strict(&bytes, &Signature::from_bytes(&sig)).map_err(|_| bad())
}

fn check_change(tcx: &TxCtx, members: &[Member], change: &OrgChange) -> Result<()> {
    let active = |id: &str| members.iter().any(|m| m.info.id == id && m.left.is_none());
    match change {
        OrgChange::Join { card, proof } => {
            if members.len() >= MAX_ORGS {
                return Err(ChaincodeError::invalid("change", format!("a network holds at most {MAX_ORGS} orgs")));
            }
            check_card(tcx, members, card, proof, false)
        }
        OrgChange::Rotate { card, proof } => {
            let Some(m) = members.iter().find(|m| m.info.id == card.id && m.left.is_none()) else {
                return Err(ChaincodeError::UnknownOrg(card.id.clone()));
            };
            if m.info.x25519_key != card.x25519_key {
                return Err(ChaincodeError::invalid("card.x25519_key", "stays the same: data is sealed to it"));
            }
            if m.previous.len() >= MAX_ROTATIONS {
                return Err(ChaincodeError::invalid(
                    "card",
                    format!("an org rotates its keys at most {MAX_ROTATIONS} times"),
                ));
            }
            check_card(tcx, members, card, proof, true)
        }
        OrgChange::Leave { org, reason } => {
            if !active(org) {
                return Err(ChaincodeError::UnknownOrg(org.clone()));
            }
            if reason.trim().is_empty() || reason.len() > 1000 {
                return Err(ChaincodeError::invalid("reason", "must be 1 to 1000 bytes"));
            }
            if members.iter().filter(|m| m.left.is_none()).count() < 2 {
                return Err(ChaincodeError::invalid("org", "the last org cannot leave"));
            }
            Ok(())
        }
    }
}

/// `ProposeOrgChange`: records the change with the proposer's approval.
pub(crate) fn propose(state: &mut impl State, tcx: &TxCtx, id: &str, change: &OrgChange) -> Result<Event> {
    keys::valid_id("change_id", id)?;
    let mut live = Vec::new();
    for c in pending(state)? {
        if lapsed(&c, tcx.now()) {
            state.delete(change_key(&c.id));
        } else {
            live.push(c);
        }
    }
    if live.iter().any(|c| c.id == id) {
        return Err(ChaincodeError::AlreadyExists { kind: "org change", id: id.into() });
    }
    let mine = live.iter().filter(|c| c.proposed_by == tcx.org).count();
    if mine >= MAX_PENDING_PER_ORG {
        let why = format!("{} already has {mine} changes waiting for approval: withdraw one first", tcx.org);
        return Err(ChaincodeError::invalid("change_id", why));
    }
    check_change(tcx, &members(state, tcx.block.genesis)?, change)?;
    let pending = PendingChange {
        id: id.into(),
        change: change.clone(),
        proposed_by: tcx.org.into(),
        proposed_at_ms: tcx.now(),
        approvals: vec![tcx.org.into()],
        denials: Vec::new(),
    };
    settle(state, tcx, pending)
}

/// A pending change by `id`; one that lapsed is dropped and refused.
fn load_pending(state: &mut impl State, tcx: &TxCtx, id: &str) -> Result<PendingChange> {
    let not_found = || ChaincodeError::NotFound { kind: "org change", id: id.into() };
    let c: PendingChange = keys::get(state, &change_key(id))?.ok_or_else(not_found)?;
    if lapsed(&c, tcx.now()) {
        state.delete(change_key(id));
        return Err(ChaincodeError::invalid("change_id", "the change lapsed: it was not approved within 7 days"));
    }
    Ok(c)
}

/// `WithdrawOrgChange`: its proposer takes a pending change back.
pub(crate) fn withdraw(state: &mut impl State, tcx: &TxCtx, id: &str) -> Result<Event> {
    let c = load_pending(state, tcx, id)?;
    if c.proposed_by != tcx.org {
        let why = format!("only {}, which proposed it, may withdraw it", c.proposed_by);
        return Err(ChaincodeError::invalid("change_id", why));
    }
    state.delete(change_key(id));
    Ok(Event::OrgChangeDenied { change_id: c.id, denials: c.denials, dropped: true })
}

/// `DenyOrgChange`: an active org refuses a pending change; once more
/// than half of the active orgs have, it is dropped.
pub(crate) fn deny(state: &mut impl State, tcx: &TxCtx, id: &str) -> Result<Event> {
    let mut c = load_pending(state, tcx, id)?;
    if c.denials.iter().any(|o| o == tcx.org) {
        return Err(ChaincodeError::invalid("change_id", format!("{:?} already denied it", tcx.org)));
    }
    c.denials.push(tcx.org.into());
    let orgs = &tcx.block.genesis.orgs;
    let denying = c.denials.iter().filter(|d| orgs.iter().any(|o| &o.id == *d)).count();
    let dropped = denying > orgs.len() / 2;
    match dropped {
        true => state.delete(change_key(id)),
        false => keys::put(state, change_key(id), &c),
    }
    Ok(Event::OrgChangeDenied { change_id: c.id, denials: c.denials, dropped })
}

fn lapsed(c: &PendingChange, now: TimeMs) -> bool {
    now.saturating_sub(c.proposed_at_ms) > CHANGE_TTL_MS
}

/// `ApproveOrgChange`: adds this org's approval.
pub(crate) fn approve(state: &mut impl State, tcx: &TxCtx, id: &str) -> Result<Event> {
    let mut c = load_pending(state, tcx, id)?;
    if c.approvals.iter().any(|o| o == tcx.org) {
        return Err(ChaincodeError::invalid("change_id", format!("{:?} already approved it", tcx.org)));
    }
    // The roster may have moved since the proposal (a key taken, an org gone).
    check_change(tcx, &members(state, tcx.block.genesis)?, &c.change)?;
    c.approvals.push(tcx.org.into());
    settle(state, tcx, c)
}

/// Stores `c`, or applies it once a majority of the active orgs approve.
fn settle(state: &mut impl State, tcx: &TxCtx, c: PendingChange) -> Result<Event> {
    let orgs = &tcx.block.genesis.orgs;
    let approving = c.approvals.iter().filter(|a| orgs.iter().any(|o| &o.id == *a)).count();
    // An org's keys change only with its own word too: a majority must not
    // take over another org's name (a lost key is a leave and a new join).
    let consents = match &c.change {
        OrgChange::Rotate { card, .. } => c.approvals.contains(&card.id),
        _ => true,
    };
    let in_effect = approving > orgs.len() / 2 && consents;
    let event = Event::OrgChange { change_id: c.id.clone(), approvals: c.approvals.clone(), in_effect };
    if !in_effect {
        keys::put(state, change_key(&c.id), &c);
        return Ok(event);
    }
    state.delete(change_key(&c.id));
    let mut members = members(state, tcx.block.genesis)?;
    let mut voters = crate::membership::voters(state, tcx.block.genesis)?;
    match c.change {
        OrgChange::Join { card, .. } => {
            voters.push(card.id.clone());
            members.push(Member { info: card, left: None, previous: Vec::new() });
        }
        OrgChange::Rotate { card, .. } => {
            let m = members.iter_mut().find(|m| m.info.id == card.id).expect("checked active");
            let old = std::mem::replace(&mut m.info, card);
            m.previous.push(old);
            keys::put(state, MEMBERS.to_vec(), &members);
            return Ok(event);
        }
        OrgChange::Leave { org, reason } => {
            let reason = format!("org {org} left the network: {reason}");
            end_leases(state, tcx, &org, &reason)?;
            // Its own proposals go with it.
            for p in pending(state)?.into_iter().filter(|p| p.proposed_by == org) {
                state.delete(change_key(&p.id));
            }
            crate::publication::refuse_for_departed(state, tcx, &org, &reason)?;
            voters.retain(|v| *v != org);
            state.delete(format!("cfg/approval/{org}").into_bytes());
            let m = members.iter_mut().find(|m| m.info.id == org).expect("checked active");
            m.left = Some(Departure { at_ms: tcx.now(), reason });
            // The voters must stay a majority of the orgs that remain.
            let remaining = members.iter().filter(|m| m.left.is_none()).count();
            if voters.len() <= remaining / 2 {
                voters = members.iter().filter(|m| m.left.is_none()).map(|m| m.info.id.clone()).collect();
            }
        }
    }
    voters.sort();
    // Standing voter approvals were for the old orgs: a majority of those
    // must not re-approve a set that drops a newcomer.
    for (key, _) in state.scan_prefix(b"cfg/approval/", MAX_ORGS)? {
        state.delete(key);
    }
    keys::put(state, MEMBERS.to_vec(), &members);
    crate::membership::set_voters(state, &voters);
    Ok(event)
}

/// Ends every lease `org` holds or grants that is still requested or active.
fn end_leases(state: &mut impl State, tcx: &TxCtx, org: &str, reason: &str) -> Result<()> {
    let mut ids: Vec<String> = Vec::new();
    for prefix in [format!("idx/lessee/{org}/"), format!("idx/lowner/{org}/")] {
        let found = state.scan_prefix(prefix.as_bytes(), MAX_LEASES_ENDED)?;
        ids.extend(found.iter().map(|(k, _)| keys::last_segment(k)));
    }
    ids.sort();
    ids.dedup();
    for id in ids {
        let mut lease: Lease = crate::lease::load(state, &id)?;
        lease.state = match lease.status_at(tcx.now()) {
            LeaseStatus::Requested => LeaseState::Denied,
            LeaseStatus::Active => LeaseState::Revoked,
            _ => continue,
        };
        lease.reason = Some(reason.into());
        lease.updated_at_ms = tcx.now();
        crate::lease::store(state, tcx, &lease)?;
    }
    Ok(())
}

/// The members and the changes waiting, for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterView {
    pub members: Vec<Member>,
    pub pending: Vec<PendingChange>,
}

pub fn view(state: &(impl StateRead + ?Sized), genesis: &Genesis) -> Result<RosterView> {
    Ok(RosterView { members: members(state, genesis)?, pending: pending(state)? })
}
