//! The data model: what the ledger stores. Every type here is encoded with
//! [`crate::canonical`], so field order is part of the format.

use serde::{Deserialize, Serialize};

use crate::time::{rfc3339, TimeMs};

/// An organisation's short id, e.g. `org1`.
pub type OrgId = String;
/// SHA-256 digest.
pub type Hash32 = [u8; 32];

/// A member organisation as the genesis lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgInfo {
    pub id: OrgId,
    pub name: String,
    /// ed25519 verifying key for transactions.
    pub signing_key: [u8; 32],
    /// X25519 public key. Data keys are derived from the matching secret and
    /// never leave the owner's node, so nothing is wrapped for it today.
    pub x25519_key: [u8; 32],
    /// libp2p peer id of the org's node; the network admits only these.
    pub peer_id: String,
    /// Where the other nodes dial it (a libp2p multiaddr); a node's config
    /// may name another (`peers`).
    #[serde(default)]
    pub p2p_addr: String,
}

/// Network-wide rules fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPolicy {
    /// Upper bound on any lease, whatever a dataset's policy says.
    pub max_lease_ms: u64,
    /// A tx whose `created_at_ms` is further than this from block time is rejected.
    pub tx_time_window_ms: u64,
    /// Nonces more than this far below an org's highest nonce are stale.
    /// Signers use microseconds since the epoch as nonces (strictly
    /// increasing per signer), so independent signers for one org stay
    /// within the window of each other.
    pub nonce_window: u64,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        Self {
            max_lease_ms: 90 * 24 * 3600 * 1000,
            tx_time_window_ms: 10 * 60 * 1000,
            // Ten minutes of microsecond nonces, matching the time window.
            nonce_window: 10 * 60 * 1_000_000,
        }
    }
}

/// The document every node starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub network_id: String,
    pub created_at_ms: TimeMs,
    pub orgs: Vec<OrgInfo>,
    pub policy: NetworkPolicy,
}

impl Genesis {
    pub fn org(&self, id: &str) -> Option<&OrgInfo> {
        self.orgs.iter().find(|o| o.id == id)
    }
}

/// How a lease on a dataset comes to be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Approval {
    /// A request from a listed org is granted in the same transaction. The
    /// lessee still reads nothing but through the owner's node.
    Automatic,
    /// The owner grants or denies each request.
    Owner,
}

/// Who may lease a dataset, for how long, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPolicy {
    pub allowed_orgs: Vec<OrgId>,
    pub max_lease_ms: u64,
    pub approval: Approval,
    /// At most one active lease at a time.
    pub exclusive: bool,
    /// A workflow reading it must declare QC tests (`tests:`), and they
    /// must pass before the data is fetched. Checked by the lessee's node:
    /// a dishonest lessee's node can skip it, as it can anything it runs
    /// itself; compute-to-data is where the owner runs the code.
    pub require_tests: bool,
    /// Whether what is derived from it may be published as a dataset.
    pub derived: DerivedPolicy,
    /// Whether a lessee receives the files or runs its workflows at the
    /// owner's node.
    pub access: AccessMode,
    /// What may leave the owner's node after a compute run.
    pub release: ReleasePolicy,
}

/// How a lessee reads a dataset (seed `000_*`: the algorithm goes to the data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessMode {
    /// A granted lease lets the lessee's node fetch the files.
    Files,
    /// The files never leave the owner's node: the lessee's workflows run
    /// there, and only released outputs come back.
    Compute,
}

/// When the lessee of a compute dataset sees its jobs' logs: logs are outputs too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogRelease {
    Live,
    AfterRelease,
    Never,
}

/// What may leave the owner's node after a compute run on the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePolicy {
    /// Outputs larger than this are never released.
    pub max_output_bytes: u64,
    /// The owner approves or denies each release, but for `trusted_workflows`.
    pub approval: bool,
    /// Workflow hashes whose outputs are released without approval
    /// (Ocean Protocol's "trusted algorithms").
    pub trusted_workflows: Vec<Hash32>,
    pub logs: LogRelease,
    /// A compute run's end is reported (to its lessee, and on the ledger)
    /// only at a whole multiple of this many ms after its start, so its
    /// duration says at most log2(1 + timeout / granularity) bits of the
    /// data; 0 reports it as it happens. At most [`MAX_END_GRANULARITY_MS`].
    pub end_granularity_ms: u64,
}

/// The coarsest a compute run's end may be reported: one day.
pub const MAX_END_GRANULARITY_MS: u64 = 86_400_000;

impl Default for ReleasePolicy {
    fn default() -> Self {
        Self {
            max_output_bytes: 64 << 20,
            approval: true,
            trusted_workflows: Vec::new(),
            logs: LogRelease::AfterRelease,
            end_granularity_ms: 0,
        }
    }
}

/// What may become of outputs derived from a dataset, checked by the
/// chaincode when a run's outputs are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DerivedPolicy {
    /// Published under the publisher's own policy.
    Allow,
    /// Published once the dataset's owner approves that publication
    /// (`DecidePublication`); until then it waits on the ledger.
    OwnerApproval,
    /// Never published by another org; the owner may still publish what it
    /// derives from its own data.
    Deny,
}

/// A lessee's signed request that the owner of a compute dataset run its
/// workflow; the owner's `StartComputeRun` must match it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeRunRequest {
    pub run_id: String,
    pub lessee: OrgId,
    pub lease_id: String,
    /// sha256 over the workflow.yaml and its bundle (`workflow_hash` with no environment).
    pub submission_hash: Hash32,
    pub requested_at_ms: TimeMs,
}

/// A derived dataset waiting for the owners of its inputs to approve its
/// publication. It is registered, as `dataset`, when the last one approves,
/// and dropped when any one refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    /// The dataset as it will be registered; its provenance names the run.
    pub dataset: Dataset,
    /// The orgs whose approval it still needs, sorted.
    pub awaiting: Vec<OrgId>,
    /// The owners' words so far; a refusal is the last.
    pub decisions: Vec<PublicationDecision>,
    pub requested_at_ms: TimeMs,
}

/// One owner's word on a publication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicationDecision {
    pub org: OrgId,
    pub approved: bool,
    pub reason: String,
}

/// AES-256-GCM ciphertext of a dataset's private metadata. Opaque here: the
/// chaincode never sees a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedMetadata {
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
}

/// Where a derived dataset came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub run_id: String,
    pub workflow_hash: Hash32,
    pub inputs: Vec<DatasetRef>,
}

/// A specific version of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DatasetRef {
    pub id: String,
    pub version: u32,
}

/// The fields an owner sets when registering a dataset or a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSpec {
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    /// sha256 of the canonical manifest of the files and their hashes.
    pub content_hash: Hash32,
    pub size_bytes: u64,
    /// Public metadata as a JSON document (kept as text so encoding is exact).
    pub public_metadata: String,
    pub private_metadata: SealedMetadata,
    pub policy: AccessPolicy,
}

/// One version of a dataset as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    pub id: String,
    pub owner: OrgId,
    pub version: u32,
    pub spec: DatasetSpec,
    pub provenance: Option<Provenance>,
    pub retired: bool,
    pub created_at_ms: TimeMs,
    pub updated_at_ms: TimeMs,
}

/// A lease's recorded state. Whether a granted lease is active depends on
/// time; see [`Lease::status_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseState {
    Requested,
    Granted,
    Denied,
    Released,
    Revoked,
}

/// What a lease is at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LeaseStatus {
    Requested,
    Active,
    Expired,
    Denied,
    Released,
    Revoked,
}

impl LeaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Denied => "denied",
            Self::Released => "released",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Requested, Self::Active, Self::Expired, Self::Denied, Self::Released, Self::Revoked]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    pub dataset_id: String,
    pub owner: OrgId,
    pub lessee: OrgId,
    pub purpose: String,
    pub requested_ms: u64,
    pub state: LeaseState,
    /// The dataset version the grant covers.
    pub dataset_version: Option<u32>,
    pub granted_at_ms: Option<TimeMs>,
    pub expires_at_ms: Option<TimeMs>,
    /// Why it was denied or revoked.
    pub reason: Option<String>,
    pub requested_at_ms: TimeMs,
    pub updated_at_ms: TimeMs,
}

impl Lease {
    /// The status at block time `now_ms`. A granted lease is active only
    /// while `now_ms < expires_at_ms`; expiry needs no transaction.
    pub fn status_at(&self, now_ms: TimeMs) -> LeaseStatus {
        match self.state {
            LeaseState::Requested => LeaseStatus::Requested,
            LeaseState::Denied => LeaseStatus::Denied,
            LeaseState::Released => LeaseStatus::Released,
            LeaseState::Revoked => LeaseStatus::Revoked,
            LeaseState::Granted => match self.expires_at_ms {
                Some(exp) if now_ms < exp => LeaseStatus::Active,
                _ => LeaseStatus::Expired,
            },
        }
    }

    /// A sentence saying why the lease is not active at `now_ms`, or `None`
    /// if it is.
    pub fn inactive_reason(&self, now_ms: TimeMs) -> Option<String> {
        let at = |t: Option<TimeMs>| rfc3339(t.unwrap_or(self.updated_at_ms));
        match self.status_at(now_ms) {
            LeaseStatus::Active => None,
            LeaseStatus::Expired => Some(format!("lease {} expired at {}", self.id, at(self.expires_at_ms))),
            LeaseStatus::Requested => Some(format!("lease {} has not been granted yet", self.id)),
            LeaseStatus::Denied => Some(format!(
                "lease {} was denied at {}: {}",
                self.id,
                at(None),
                self.reason.as_deref().unwrap_or("no reason given")
            )),
            LeaseStatus::Released => Some(format!("lease {} was released at {}", self.id, at(None))),
            LeaseStatus::Revoked => Some(format!(
                "lease {} was revoked at {}: {}",
                self.id,
                at(None),
                self.reason.as_deref().unwrap_or("no reason given")
            )),
        }
    }
}

/// How a workflow run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
    Revoked,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub org: OrgId,
    pub workflow_hash: Hash32,
    pub lease_ids: Vec<String>,
    pub inputs: Vec<DatasetRef>,
    pub status: RunStatus,
    pub output_hash: Option<Hash32>,
    pub started_at_ms: TimeMs,
    pub finished_at_ms: Option<TimeMs>,
    /// For a compute run, the owner whose node ran it; `org` asked for it.
    pub executor: Option<OrgId>,
    /// For a compute run, the executor's decision on its outputs.
    pub release: Option<Release>,
}

/// Whether a compute run's outputs may leave the executor's node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub approved: bool,
    pub reason: String,
    pub output_bytes: u64,
    pub at_ms: TimeMs,
}

/// One entry in the history of a dataset, lease or run: the record as a
/// transaction left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub tx_id: crate::TxId,
    pub height: u64,
    pub time_ms: TimeMs,
    pub record: Vec<u8>,
}

/// A disclosure of a lease's private metadata, recorded on the ledger by
/// the owner's node before it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    pub lease_id: String,
    pub dataset_id: String,
    pub version: u32,
    /// The lessee org the metadata was disclosed to, and its user.
    pub org: OrgId,
    pub reader: String,
    pub time_ms: TimeMs,
    pub tx_id: crate::TxId,
    /// How many reads by `reader` this one record counts. Not in the stored
    /// bytes, which are those of the records written before counts were:
    /// kept beside them (`keys::access_reads`) and filled in by
    /// `query::access_log`.
    #[serde(skip, default = "one_read")]
    pub reads: u32,
}

fn one_read() -> u32 {
    1
}
