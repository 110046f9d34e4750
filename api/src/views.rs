//! JSON shapes of ledger records. Ciphertexts and wrapped keys never leave
//! through these views.

use leasehold_chaincode::query::{ApprovalKind, ApprovalLink, LineageNode};
use leasehold_chaincode::time::rfc3339;
use leasehold_chaincode::{
    AccessMode, AccessPolicy, Approval, Dataset, DerivedPolicy, Lease, LogRelease, Publication, ReleasePolicy,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyView {
    /// Orgs that may request a lease.
    pub allowed_orgs: Vec<String>,
    pub max_lease_ms: u64,
    /// `owner` (each request is granted or denied) or `automatic`.
    #[serde(default = "owner")]
    pub approval: String,
    #[serde(default)]
    pub exclusive: bool,
    /// Workflows that read it must declare QC tests, which must pass first.
    #[serde(default)]
    pub require_tests: bool,
    /// `allow` (the default): outputs derived from it may be published;
    /// `owner_approval`: a publication waits until the owner approves it
    /// (`/v1/publications`); `deny`: only its owner may publish what is
    /// derived from it.
    #[serde(default = "allow")]
    pub derived: String,
    /// `files` (the default): a lessee's node fetches the files; or
    /// `compute`: the files never leave the owner's node, and lessees' runs
    /// execute there.
    #[serde(default = "files")]
    pub access: String,
    /// What may leave the owner's node after a compute run.
    #[serde(default)]
    pub release: ReleaseView,
}

fn allow() -> String {
    "allow".into()
}

fn files() -> String {
    "files".into()
}

/// A compute dataset's release policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReleaseView {
    pub max_output_bytes: u64,
    /// The owner approves or denies each release, but for trusted workflows.
    pub approval: bool,
    /// Workflow hashes (hex) whose outputs are released without approval.
    pub trusted_workflows: Vec<String>,
    /// When the lessee sees the jobs' logs: `live`, `after_release` or `never`.
    pub logs: String,
    /// A run's end is reported only at a whole multiple of this many ms
    /// after its start (0: as it happens; at most a day), so that its
    /// duration says little of the data.
    pub end_granularity_ms: u64,
}

impl Default for ReleaseView {
    fn default() -> Self {
        (&ReleasePolicy::default()).into()
    }
}

impl From<&ReleasePolicy> for ReleaseView {
    fn from(r: &ReleasePolicy) -> Self {
        Self {
            max_output_bytes: r.max_output_bytes,
            approval: r.approval,
            trusted_workflows: r.trusted_workflows.iter().map(hex::encode).collect(),
            logs: match r.logs {
                LogRelease::Live => "live",
                LogRelease::AfterRelease => "after_release",
                LogRelease::Never => "never",
            }
            .into(),
            end_granularity_ms: r.end_granularity_ms,
        }
    }
}

fn owner() -> String {
    "owner".into()
}

impl From<&AccessPolicy> for PolicyView {
    fn from(p: &AccessPolicy) -> Self {
        Self {
            allowed_orgs: p.allowed_orgs.clone(),
            max_lease_ms: p.max_lease_ms,
            approval: match p.approval {
                Approval::Automatic => "automatic".into(),
                Approval::Owner => "owner".into(),
            },
            exclusive: p.exclusive,
            require_tests: p.require_tests,
            derived: match p.derived {
                DerivedPolicy::Allow => "allow".into(),
                DerivedPolicy::OwnerApproval => "owner_approval".into(),
                DerivedPolicy::Deny => "deny".into(),
            },
            access: match p.access {
                AccessMode::Files => "files".into(),
                AccessMode::Compute => "compute".into(),
            },
            release: (&p.release).into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetView {
    pub id: String,
    pub owner: String,
    pub version: u32,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub content_hash: String,
    pub size_bytes: u64,
    #[schema(value_type = Object)]
    pub public_metadata: serde_json::Value,
    pub policy: PolicyView,
    pub retired: bool,
    pub created_at: String,
    pub updated_at: String,
    /// The run this dataset was published from, if derived.
    pub derived_from_run: Option<String>,
}

impl From<&Dataset> for DatasetView {
    fn from(d: &Dataset) -> Self {
        Self {
            id: d.id.clone(),
            owner: d.owner.clone(),
            version: d.version,
            title: d.spec.title.clone(),
            description: d.spec.description.clone(),
            tags: d.spec.tags.clone(),
            content_hash: hex::encode(d.spec.content_hash),
            size_bytes: d.spec.size_bytes,
            // An object, as documented; a ledger written before that rule
            // may hold other JSON, shown as the empty object.
            public_metadata: match serde_json::from_str(&d.spec.public_metadata) {
                Ok(v @ serde_json::Value::Object(_)) => v,
                _ => serde_json::json!({}),
            },
            policy: (&d.spec.policy).into(),
            retired: d.retired,
            created_at: rfc3339(d.created_at_ms),
            updated_at: rfc3339(d.updated_at_ms),
            derived_from_run: d.provenance.as_ref().map(|p| p.run_id.clone()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LineageView {
    pub dataset: String,
    pub version: u32,
    pub owner: String,
    pub title: String,
    pub run_id: Option<String>,
    pub workflow_hash: Option<String>,
    /// `id@version` of each input; empty for a root.
    pub inputs: Vec<String>,
    /// The leases the run read its inputs under.
    pub leases: Vec<LineageLeaseView>,
    /// Each org's recorded word that let this version exist, in ledger order.
    pub approvals: Vec<ApprovalView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LineageLeaseView {
    pub id: String,
    /// `id@version` of the dataset the lease covers.
    pub dataset: String,
    pub owner: String,
    pub lessee: String,
}

/// One org's word behind a derived dataset, and the transaction that recorded it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    /// `lease_grant`, `release` (of a compute run's outputs) or `publication`.
    pub kind: &'static str,
    /// The lease, run or dataset it was given on.
    pub subject: String,
    pub org: String,
    pub approved: bool,
    pub reason: String,
    pub tx_id: String,
    pub height: u64,
    pub at: String,
}

impl From<LineageNode> for LineageView {
    fn from(n: LineageNode) -> Self {
        let at = |r: &leasehold_chaincode::DatasetRef| format!("{}@{}", r.id, r.version);
        Self {
            dataset: n.dataset.id,
            version: n.dataset.version,
            owner: n.owner,
            title: n.title,
            run_id: n.run_id,
            workflow_hash: n.workflow_hash,
            inputs: n.inputs.iter().map(at).collect(),
            leases: n
                .leases
                .into_iter()
                .map(|l| LineageLeaseView { dataset: at(&l.dataset), id: l.id, owner: l.owner, lessee: l.lessee })
                .collect(),
            approvals: n.approvals.into_iter().map(ApprovalView::from).collect(),
        }
    }
}

impl From<ApprovalLink> for ApprovalView {
    fn from(a: ApprovalLink) -> Self {
        Self {
            kind: match a.kind {
                ApprovalKind::LeaseGrant => "lease_grant",
                ApprovalKind::Release => "release",
                ApprovalKind::Publication => "publication",
            },
            subject: a.subject,
            org: a.org,
            approved: a.approved,
            reason: a.reason,
            tx_id: a.tx_id.to_hex(),
            height: a.height,
            at: rfc3339(a.time_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseView {
    pub id: String,
    pub dataset_id: String,
    pub dataset_version: Option<u32>,
    pub owner: String,
    pub lessee: String,
    pub purpose: String,
    pub requested_ms: u64,
    /// requested, active, expired, denied, released or revoked, right now.
    pub status: String,
    pub granted_at: Option<String>,
    pub expires_at: Option<String>,
    pub expires_at_ms: Option<i64>,
    pub reason: Option<String>,
    pub requested_at: String,
    pub updated_at: String,
}

impl LeaseView {
    pub fn at(l: &Lease, now_ms: i64) -> Self {
        Self {
            id: l.id.clone(),
            dataset_id: l.dataset_id.clone(),
            dataset_version: l.dataset_version,
            owner: l.owner.clone(),
            lessee: l.lessee.clone(),
            purpose: l.purpose.clone(),
            requested_ms: l.requested_ms,
            status: l.status_at(now_ms).as_str().into(),
            granted_at: l.granted_at_ms.map(rfc3339),
            expires_at: l.expires_at_ms.map(rfc3339),
            expires_at_ms: l.expires_at_ms,
            reason: l.reason.clone(),
            requested_at: rfc3339(l.requested_at_ms),
            updated_at: rfc3339(l.updated_at_ms),
        }
    }
}

/// What a write answers: the tx, and whether it committed within the wait.
#[derive(Debug, Serialize, ToSchema)]
pub struct WriteView {
    pub tx_id: String,
    /// `committed` or `pending`.
    pub status: String,
    pub height: Option<u64>,
    /// The record as committed; absent while pending.
    #[schema(value_type = Option<Object>)]
    pub resource: Option<serde_json::Value>,
}

impl WriteView {
    /// 201 (or 200 when `created` is false) once committed, 202 while
    /// pending; the body says which.
    pub fn reply(
        w: &leasehold_node::Written,
        created: bool,
        resource: Option<impl Serialize>,
    ) -> (axum::http::StatusCode, axum::Json<Self>) {
        use axum::http::StatusCode;
        let code = match (w.height, created) {
            (None, _) => StatusCode::ACCEPTED,
            (Some(_), true) => StatusCode::CREATED,
            (Some(_), false) => StatusCode::OK,
        };
        (code, axum::Json(Self::new(w, resource)))
    }

    pub fn new(w: &leasehold_node::Written, resource: Option<impl Serialize>) -> Self {
        Self {
            tx_id: w.tx_id.clone(),
            status: if w.height.is_some() { "committed" } else { "pending" }.into(),
            height: w.height,
            resource: resource.and_then(|r| serde_json::to_value(r).ok()),
        }
    }
}

/// One job of a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub number: usize,
    pub command: String,
    pub depends_on: Vec<usize>,
    /// queued, running, succeeded, failed, cancelled, expired or revoked.
    pub status: String,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    /// Where a cluster ran it: its job id there, the node and the queue
    /// wait. Absent for a job run on the node's own host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
}

/// A workflow run on this node.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub name: String,
    pub org: String,
    pub submitted_by: String,
    pub status: String,
    pub reason: Option<String>,
    /// How the jobs were isolated.
    pub sandbox: String,
    pub workflow_hash: String,
    pub leases: Vec<String>,
    /// `dataset@version` for each leased input.
    pub inputs: Vec<String>,
    pub jobs: Vec<JobView>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub output_hash: Option<String>,
    pub start_tx: Option<String>,
    pub finish_tx: Option<String>,
    pub published_as: Option<String>,
    /// What the jobs were held to, and by what.
    pub protections: Vec<ProtectionView>,
    /// The key of the run's Python environment, built from its `requirements.txt`.
    pub environment: Option<String>,
    /// sha256 of the workflow hash and each input's content hash.
    pub reuse_key: Option<String>,
    /// The succeeded run whose outputs this run reused instead of running.
    pub reused_from: Option<String>,
    /// Compute-to-data: the org whose node ran it (`org` asked for it).
    pub executor: Option<String>,
    /// Compute-to-data: `released` or `refused` and why; absent while undecided.
    pub release: Option<String>,
}

/// One protection or limit of a run's sandbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProtectionView {
    pub name: String,
    pub value: String,
    pub enforced_by: String,
}

impl From<&leasehold_workflow::live::RunRecord> for RunView {
    fn from(r: &leasehold_workflow::live::RunRecord) -> Self {
        let jobs = r
            .jobs
            .iter()
            .map(|j| JobView {
                number: j.number,
                command: j.command.clone(),
                depends_on: j.depends_on.clone(),
                status: j.status.as_str().into(),
                exit_code: j.exit_code,
                started_at: j.started_at_ms.map(rfc3339),
                finished_at: j.finished_at_ms.map(rfc3339),
                duration_ms: j.started_at_ms.zip(j.finished_at_ms).map(|(a, b)| b - a),
                error: j.error.clone(),
                placement: r.placements.get(&j.number).cloned(),
            })
            .collect();
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            org: r.org.clone(),
            submitted_by: r.submitted_by.clone(),
            status: r.status.as_str().into(),
            reason: r.reason.clone(),
            sandbox: r.sandbox.clone(),
            workflow_hash: r.workflow_hash.clone(),
            leases: r.leases.clone(),
            inputs: r.inputs.iter().map(|i| format!("{}@{}", i.id, i.version)).collect(),
            jobs,
            created_at: rfc3339(r.created_at_ms),
            finished_at: r.finished_at_ms.map(rfc3339),
            output_hash: r.output_hash.clone(),
            start_tx: r.start_tx.clone(),
            finish_tx: r.finish_tx.clone(),
            published_as: r.published_as.clone(),
            environment: r.environment.clone(),
            reuse_key: r.reuse_key.clone(),
            reused_from: r.reused_from.clone(),
            executor: r.executor.clone(),
            release: r.release.as_ref().map(|(ok, why)| format!("{}: {why}", if *ok { "released" } else { "refused" })),
            protections: r
                .protections
                .iter()
                .map(|p| ProtectionView {
                    name: p.name.clone(),
                    value: p.value.clone(),
                    enforced_by: p.enforced_by.clone(),
                })
                .collect(),
        }
    }
}

/// A derived dataset that is not on the ledger until `awaiting` approve it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicationView {
    /// The dataset id it will have.
    pub id: String,
    pub publisher: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    /// Who could lease it once published: what the owner approves.
    pub policy: PolicyView,
    pub run_id: String,
    pub content_hash: String,
    pub size_bytes: u64,
    pub awaiting: Vec<String>,
    /// The owners' words so far: `{org, approved, reason}`.
    #[schema(value_type = Vec<Object>)]
    pub decisions: Vec<serde_json::Value>,
    pub requested_at: String,
}

impl From<&Publication> for PublicationView {
    fn from(p: &Publication) -> Self {
        let ds = &p.dataset;
        Self {
            id: ds.id.clone(),
            publisher: ds.owner.clone(),
            title: ds.spec.title.clone(),
            description: ds.spec.description.clone(),
            tags: ds.spec.tags.clone(),
            policy: PolicyView::from(&ds.spec.policy),
            run_id: ds.provenance.as_ref().map(|p| p.run_id.clone()).unwrap_or_default(),
            content_hash: hex::encode(ds.spec.content_hash),
            size_bytes: ds.spec.size_bytes,
            awaiting: p.awaiting.clone(),
            decisions: p
                .decisions
                .iter()
                .map(|d| serde_json::json!({"org": d.org, "approved": d.approved, "reason": d.reason}))
                .collect(),
            requested_at: rfc3339(p.requested_at_ms),
        }
    }
}

/// An owner's word on a compute run's outputs or a pending publication.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why: recorded on the ledger, where the other org reads it. A
    /// refusal must give one.
    #[serde(default)]
    pub reason: String,
}
