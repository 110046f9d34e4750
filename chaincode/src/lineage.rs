//! Where a dataset came from, as the ledger recorded it: each version on
//! the way back to the roots, and for a derived one the run that made it,
//! the leases that run read under, and every approval behind it (each
//! lease's grant, a compute run's release, the inputs' owners' word on the
//! publication), each with the transaction that wrote it.

use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::query::{dataset, dataset_version, history, lease, run};
use crate::time::TimeMs;
use crate::{DatasetRef, HistoryEntry, Lease, LeaseState, OrgId, Publication, Result, Run, StateRead, TxId};

/// Upper bound on the datasets a lineage walk visits.
pub const MAX_LINEAGE: usize = 1000;

/// One step of a lineage: a dataset version and what it was derived from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageNode {
    pub dataset: DatasetRef,
    pub owner: String,
    pub title: String,
    pub run_id: Option<String>,
    pub workflow_hash: Option<String>,
    /// Empty for a root.
    pub inputs: Vec<DatasetRef>,
    /// The leases the run read its inputs under; empty for a root, or
    /// for a run on its org's own data.
    pub leases: Vec<LeaseLink>,
    /// Each org's recorded word that let this version exist, in ledger order.
    pub approvals: Vec<ApprovalLink>,
}

/// A lease a run read under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLink {
    pub id: String,
    pub dataset: DatasetRef,
    pub owner: OrgId,
    pub lessee: OrgId,
}

/// What an approval was given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalKind {
    /// The dataset's owner granted the lease (or its policy did, at the request).
    LeaseGrant,
    /// The executor of a compute run released its outputs, or refused to.
    Release,
    /// An input's owner approved publishing the result, or refused to.
    Publication,
}

/// One org's recorded word, and the transaction that recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalLink {
    pub kind: ApprovalKind,
    /// The lease, run or dataset it was given on.
    pub subject: String,
    pub org: OrgId,
    pub approved: bool,
    pub reason: String,
    pub tx_id: TxId,
    pub height: u64,
    pub time_ms: TimeMs,
}

/// Walks provenance from `id`'s current version back to its roots,
/// breadth first, visiting each version once and at most [`MAX_LINEAGE`].
pub fn lineage(state: &(impl StateRead + ?Sized), id: &str) -> Result<Vec<LineageNode>> {
    let Some(head) = dataset(state, id)? else {
        return Ok(Vec::new());
    };
    let mut queue = VecDeque::from([DatasetRef { id: head.id, version: head.version }]);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    while let Some(r) = queue.pop_front() {
        if out.len() == MAX_LINEAGE || !seen.insert(r.clone()) {
            continue;
        }
        let Some(ds) = dataset_version(state, &r.id, r.version)? else {
            continue;
        };
        let mut node = LineageNode {
            dataset: r,
            owner: ds.owner,
            title: ds.spec.title,
            run_id: None,
            workflow_hash: None,
            inputs: Vec::new(),
            leases: Vec::new(),
            approvals: Vec::new(),
        };
        if let Some(prov) = ds.provenance {
            queue.extend(prov.inputs.iter().cloned());
            if let Some(run) = run(state, &prov.run_id)? {
                add_run(state, &mut node, &run)?;
            }
            node.approvals.extend(publication_decisions(state, &node.dataset.id)?);
            node.approvals.sort_by_key(|a| a.height);
            node.run_id = Some(prov.run_id);
            node.workflow_hash = Some(hex::encode(prov.workflow_hash));
            node.inputs = prov.inputs;
        }
        out.push(node);
    }
    Ok(out)
}

/// The run's leases with their grants, and its release if it had one.
fn add_run(state: &(impl StateRead + ?Sized), node: &mut LineageNode, run: &Run) -> Result<()> {
    for id in &run.lease_ids {
        let Some(l) = lease(state, id)? else { continue };
        if let Some(grant) = grant(state, &l)? {
            node.approvals.push(grant);
        }
        node.leases.push(LeaseLink {
            id: l.id,
            dataset: DatasetRef { id: l.dataset_id, version: l.dataset_version.unwrap_or_default() },
            owner: l.owner,
            lessee: l.lessee,
        });
    }
    if let (Some(executor), Some(release)) = (&run.executor, &run.release) {
        let entries = history(state, "run", &run.id)?;
        let runs = records::<Run>(&entries)?;
        if let Some((entry, _)) = runs.iter().find(|(_, r)| r.release.is_some()) {
            let (org, approved) = (executor.clone(), release.approved);
            node.approvals.push(approval(ApprovalKind::Release, &run.id, org, approved, &release.reason, entry));
        }
    }
    Ok(())
}

/// The transaction that first granted `lease`: the owner's, or the
/// request's own when the dataset's policy grants automatically.
fn grant(state: &(impl StateRead + ?Sized), l: &Lease) -> Result<Option<ApprovalLink>> {
    let entries = history(state, "lease", &l.id)?;
    let leases = records::<Lease>(&entries)?;
    let Some(at) = leases.iter().position(|(_, r)| r.state == LeaseState::Granted || r.granted_at_ms.is_some()) else {
        return Ok(None);
    };
    let reason = if at == 0 { "granted at the request, by the dataset's policy" } else { "" };
    Ok(Some(approval(ApprovalKind::LeaseGrant, &l.id, l.owner.clone(), true, reason, leases[at].0)))
}

/// The decisions of the last round of publishing `dataset_id`, each with
/// the entry that added it (a round starts with no decisions).
fn publication_decisions(state: &(impl StateRead + ?Sized), dataset_id: &str) -> Result<Vec<ApprovalLink>> {
    let entries = history(state, "publication", dataset_id)?;
    let mut out: Vec<ApprovalLink> = Vec::new();
    for (entry, p) in records::<Publication>(&entries)? {
        if p.decisions.len() < out.len() {
            out.clear();
        }
        for d in &p.decisions[out.len()..] {
            let kind = ApprovalKind::Publication;
            out.push(approval(kind, dataset_id, d.org.clone(), d.approved, &d.reason, entry));
        }
    }
    Ok(out)
}

/// Each entry with its record decoded as `T`.
fn records<T: serde::de::DeserializeOwned>(entries: &[HistoryEntry]) -> Result<Vec<(&HistoryEntry, T)>> {
    entries.iter().map(|e| Ok((e, crate::canonical::from_bytes(&e.record, "history record")?))).collect()
}

fn approval(
    kind: ApprovalKind,
    subject: &str,
    org: OrgId,
    approved: bool,
    reason: &str,
    entry: &HistoryEntry,
) -> ApprovalLink {
    ApprovalLink {
        kind,
        subject: subject.into(),
        org,
        approved,
        reason: reason.into(),
        tx_id: entry.tx_id,
        height: entry.height,
        time_ms: entry.time_ms,
    }
}
