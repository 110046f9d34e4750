//! Dataset endpoints: catalog, registration with encrypted private metadata,
//! new versions, retirement.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use leasehold_chaincode::query::DatasetFilter;

use leasehold_chaincode::{
    keys, AccessMode, AccessPolicy, Approval, Dataset, DatasetSpec, DerivedPolicy, LogRelease, Payload, ReleasePolicy,
};
use leasehold_node::users::Role;
use leasehold_node::Staged;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, JsonBody};
use crate::views::{DatasetView, LineageView, PolicyView, WriteView};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/datasets", get(list).post(create))
        .route("/v1/datasets/{id}", get(show).patch(update).delete(retire))
        .route("/v1/datasets/{id}/files", get(files))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    owner: Option<String>,
    tag: Option<String>,
    /// Case-insensitive text in title, description or tags.
    q: Option<String>,
    /// The last id of the previous page.
    after: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    include_retired: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DatasetPage {
    pub items: Vec<DatasetView>,
    /// Pass as `after` for the next page; absent on the last page. A page
    /// may hold fewer than `limit` items and still have a next: a request
    /// reads at most 10,000 datasets, whatever it filters out.
    pub next: Option<String>,
}

#[utoipa::path(get, path = "/v1/datasets", params(ListQuery), responses((status = 200, body = DatasetPage)), security(("bearer" = ["viewer"])))]
pub async fn list(s: State<AppState>, caller: Caller, q: Query<ListQuery>) -> Result<Json<DatasetPage>, ApiError> {
    caller.require(Role::Viewer)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let f = DatasetFilter {
        owner: q.owner.clone(),
        tag: q.tag.clone(),
        text: q.q.clone(),
        include_retired: q.include_retired,
        after: q.after.clone(),
        limit,
    };
    let page = s.node.datasets(&f)?;
    Ok(Json(DatasetPage { items: page.items.iter().map(DatasetView::from).collect(), next: page.next }))
}

#[derive(Serialize, ToSchema)]
pub struct DatasetDetail {
    #[serde(flatten)]
    pub dataset: DatasetView,
    pub versions: Vec<VersionView>,
    pub lineage: Vec<LineageView>,
}

#[derive(Serialize, ToSchema)]
pub struct VersionView {
    pub version: u32,
    pub title: String,
    pub content_hash: String,
    pub updated_at: String,
}

#[utoipa::path(get, path = "/v1/datasets/{id}", responses((status = 200, body = DatasetDetail), (status = 404, body = crate::error::Problem)), security(("bearer" = ["viewer"])))]
pub async fn show(s: State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<DatasetDetail>, ApiError> {
    caller.require(Role::Viewer)?;
    let ds = s.node.dataset(&id)?.ok_or_else(|| ApiError::NotFound(format!("dataset {id:?} does not exist")))?;
    let versions = s
        .node
        .dataset_versions(&id)?
        .iter()
        .map(|v| VersionView {
            version: v.version,
            title: v.spec.title.clone(),
            content_hash: hex::encode(v.spec.content_hash),
            updated_at: leasehold_chaincode::time::rfc3339(v.updated_at_ms),
        })
        .collect();
    let lineage = s.node.lineage(&id)?.into_iter().map(LineageView::from).collect();
    Ok(Json(DatasetDetail { dataset: (&ds).into(), versions, lineage }))
}

/// A dataset version's files, as its owner holds them.
#[derive(Serialize, ToSchema)]
pub struct FilesView {
    pub dataset: String,
    pub version: u32,
    /// The manifest's hash: the version's `content_hash` on the ledger.
    pub content_hash: String,
    pub total_bytes: u64,
    pub files: Vec<FileView>,
}

#[derive(Serialize, ToSchema)]
pub struct FileView {
    pub path: String,
    pub size_bytes: u64,
}

/// The files of a dataset and their sizes: at the owner's node, of its
/// latest version; at a lessee's, of the version its active lease covers,
/// asked of the owner, which checks the lease as it answers. Any other org
/// gets 403: the ledger holds only the files' hash.
#[utoipa::path(get, path = "/v1/datasets/{id}/files", responses((status = 200, body = FilesView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = ["viewer"])))]
pub async fn files(s: State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<FilesView>, ApiError> {
    caller.require(Role::Viewer)?;
    let listed = s.node.dataset_files(&id).await?;
    let (ds, manifest) = (listed.dataset, listed.manifest);
    Ok(Json(FilesView {
        dataset: ds.id.clone(),
        version: ds.version,
        content_hash: hex::encode(manifest.hash()),
        total_bytes: manifest.total_bytes(),
        files: manifest.files.iter().map(|f| FileView { path: f.path.clone(), size_bytes: f.size_bytes }).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDataset {
    /// Generated from the title when absent.
    pub id: Option<String>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub policy: PolicyView,
    /// sha256 (hex) of the dataset's canonical file manifest.
    pub content_hash: Option<String>,
    #[serde(default)]
    pub size_bytes: u64,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub public_metadata: serde_json::Value,
    /// Location, credentials, schema: stored on the ledger only encrypted.
    #[schema(value_type = Object)]
    pub private_metadata: serde_json::Value,
    /// `s3://bucket/prefix` in this org's object store: the files stay
    /// there, registered by reference (listed and hashed by the node).
    pub from: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DatasetPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub policy: Option<PolicyView>,
    pub content_hash: Option<String>,
    pub size_bytes: Option<u64>,
    #[schema(value_type = Option<Object>)]
    pub public_metadata: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub private_metadata: Option<serde_json::Value>,
    /// A new version from `s3://bucket/prefix` in this org's object store.
    pub from: Option<String>,
}

fn policy_from(p: &PolicyView) -> Result<AccessPolicy, ApiError> {
    let approval = match p.approval.as_str() {
        "owner" => Approval::Owner,
        "automatic" => Approval::Automatic,
        other => return Err(ApiError::invalid("policy.approval", format!("{other:?} is not 'owner' or 'automatic'"))),
    };
    let access = match p.access.as_str() {
        "files" => AccessMode::Files,
        "compute" => AccessMode::Compute,
        other => return Err(ApiError::invalid("policy.access", format!("{other:?} is not 'files' or 'compute'"))),
    };
    let derived = match p.derived.as_str() {
        "allow" => DerivedPolicy::Allow,
        "owner_approval" => DerivedPolicy::OwnerApproval,
        "deny" => DerivedPolicy::Deny,
        other => {
            return Err(ApiError::invalid(
                "policy.derived",
                format!("{other:?} is not 'allow', 'owner_approval' or 'deny'"),
            ))
        }
    };
    Ok(AccessPolicy {
        allowed_orgs: p.allowed_orgs.clone(),
        max_lease_ms: p.max_lease_ms,
        approval,
        exclusive: p.exclusive,
        require_tests: p.require_tests,
        derived,
        access,
        release: release_from(&p.release)?,
    })
}

fn release_from(r: &crate::views::ReleaseView) -> Result<ReleasePolicy, ApiError> {
    let logs = match r.logs.as_str() {
        "live" => LogRelease::Live,
        "after_release" => LogRelease::AfterRelease,
        "never" => LogRelease::Never,
        other => {
            let why = format!("{other:?} is not 'live', 'after_release' or 'never'");
            return Err(ApiError::invalid("policy.release.logs", why));
        }
    };
    if r.trusted_workflows.len() > 64 {
        return Err(ApiError::invalid("policy.release.trusted_workflows", "at most 64"));
    }
    let mut trusted = Vec::new();
    for h in &r.trusted_workflows {
        let mut out = [0u8; 32];
        hex::decode_to_slice(h, &mut out).map_err(|_| {
            ApiError::invalid("policy.release.trusted_workflows", format!("{h:?} is not 64 hex characters"))
        })?;
        trusted.push(out);
    }
    // Its bound is the chaincode's to check (`policy.release.end_granularity_ms`).
    Ok(ReleasePolicy {
        max_output_bytes: r.max_output_bytes,
        approval: r.approval,
        trusted_workflows: trusted,
        logs,
        end_granularity_ms: r.end_granularity_ms,
    })
}

fn content_hash(h: &Option<String>) -> Result<[u8; 32], ApiError> {
    match h {
        None => Ok([0; 32]),
        Some(h) => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out)
                .map_err(|_| ApiError::invalid("content_hash", "must be 64 hex characters"))?;
            Ok(out)
        }
    }
}

fn slug(title: &str) -> String {
    let base: String = title.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let base: String = base.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
    let suffix = hex::encode(rand::random::<[u8; 4]>());
    format!("{}-{suffix}", if base.is_empty() { "dataset" } else { &base[..base.len().min(48)] })
}

/// Metadata is a JSON object, as the OpenAPI document says; absent (null)
/// is the empty object.
fn to_json_text(field: &'static str, v: &serde_json::Value) -> Result<String, ApiError> {
    match v {
        serde_json::Value::Null => Ok("{}".into()),
        serde_json::Value::Object(_) => serde_json::to_string(v).map_err(|e| ApiError::invalid(field, e.to_string())),
        _ => Err(ApiError::invalid(field, "must be a JSON object")),
    }
}

fn committed_view(s: &AppState, id: &str) -> Option<DatasetView> {
    s.node.dataset(id).ok().flatten().as_ref().map(DatasetView::from)
}

/// Where a new dataset's files come from.
pub enum Source {
    /// Files staged with `PUT /v1/datasets/{id}/files/...`, if any; without
    /// them the dataset is metadata only.
    Upload,
    /// A copy of a succeeded run's outputs: the dataset is derived from it.
    RunOutput { run_id: String, outputs: Staged },
}

#[utoipa::path(post, path = "/v1/datasets", request_body = NewDataset, responses((status = 201, body = WriteView), (status = 202, body = WriteView), (status = 422, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn create(
    s: State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<NewDataset>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    let (status, view, _) = register(&s, req, Source::Upload).await?;
    Ok((status, view))
}

/// The files under `url` in this org's object store, listed and hashed
/// where they are; never mixed with uploaded ones.
async fn bucket_files(s: &AppState, id: &str, url: &str) -> Result<Staged, ApiError> {
    if s.node.has_staged_files(id) {
        let why = "files are staged for this dataset by upload: register those, or the bucket's, not both";
        return Err(ApiError::invalid("from", why));
    }
    Ok(s.node.stage_from_bucket(url).await?)
}

/// A content hash the client sent must agree with the staged files.
fn check_claim(files: &Option<Staged>, claimed: &Option<String>) -> Result<(), ApiError> {
    if let (Some(staged), Some(_)) = (files, claimed) {
        if content_hash(claimed)? != staged.manifest().hash() {
            return Err(ApiError::invalid("content_hash", "does not match the manifest of the files"));
        }
    }
    Ok(())
}

/// Registers a dataset, seals its private metadata and, once the ledger has
/// it, moves its files into the owner's store. Returns the dataset id too.
pub(crate) async fn register(
    s: &AppState,
    req: NewDataset,
    source: Source,
) -> Result<(StatusCode, Json<WriteView>, String), ApiError> {
    let id = req.id.clone().unwrap_or_else(|| slug(&req.title));
    keys::valid_id("id", &id)?;
    let policy = policy_from(&req.policy)?;
    let (files, derived_from_run) = match (source, &req.from) {
        (Source::Upload, None) => (s.node.staged_files(&id).await?, None),
        (Source::Upload, Some(url)) => (Some(bucket_files(s, &id, url).await?), None),
        (Source::RunOutput { .. }, Some(_)) => {
            return Err(ApiError::invalid("from", "a run's outputs are published from the run, not from a bucket"));
        }
        (Source::RunOutput { run_id, outputs }, None) => (Some(outputs), Some(run_id)),
    };
    check_claim(&files, &req.content_hash)?;
    let (hash, size_bytes) = match &files {
        Some(f) => (f.manifest().hash(), f.manifest().total_bytes()),
        None => (content_hash(&req.content_hash)?, req.size_bytes),
    };
    let private = to_json_text("private_metadata", &req.private_metadata)?;
    let spec = DatasetSpec {
        title: req.title,
        description: req.description,
        tags: req.tags,
        content_hash: hash,
        size_bytes,
        public_metadata: to_json_text("public_metadata", &req.public_metadata)?,
        // Under a key derived from this org's secret for (id, version 1):
        // nothing is stored, so a rejected or retried registration leaves
        // no key behind and changes none.
        private_metadata: s.node.seal_metadata(&id, 1, private.as_bytes()),
        policy,
    };
    let _adopting = match &files {
        Some(_) => Some(s.node.adopting_guard().await),
        None => None,
    };
    let w = s.node.write(Payload::RegisterDataset { id: id.clone(), spec, derived_from_run }).await?;
    if let Some(staged) = files {
        s.node.adopt_files(&id, staged)?;
    }
    let (status, view) = WriteView::reply(&w, true, committed_view(s, &id));
    Ok((status, view, id))
}

pub(crate) fn owned(s: &AppState, id: &str) -> Result<Dataset, ApiError> {
    let ds = s.node.dataset(id)?.ok_or_else(|| ApiError::NotFound(format!("dataset {id:?} does not exist")))?;
    if ds.owner != s.node.org() {
        return Err(ApiError::Forbidden(format!(
            "dataset {id:?} belongs to {}; only its owner may change it",
            ds.owner
        )));
    }
    Ok(ds)
}

#[utoipa::path(patch, path = "/v1/datasets/{id}", request_body = DatasetPatch, responses((status = 200, body = WriteView), (status = 202, body = WriteView), (status = 403, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn update(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<DatasetPatch>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    let old = owned(&s, &id)?;
    let version = old.version + 1;
    let private = match &p.private_metadata {
        Some(v) => to_json_text("private_metadata", v)?.into_bytes(),
        None => s.node.open_own_metadata(&id, old.version, &old.spec.private_metadata)?,
    };
    let policy = match &p.policy {
        Some(pv) => policy_from(pv)?,
        None => old.spec.policy.clone(),
    };
    let files = match &p.from {
        Some(url) => Some(bucket_files(&s, &id, url).await?),
        None => s.node.staged_files(&id).await?,
    };
    check_claim(&files, &p.content_hash)?;
    let (hash, size_bytes) = match &files {
        Some(f) => (f.manifest().hash(), f.manifest().total_bytes()),
        None if p.content_hash.is_some() => {
            (content_hash(&p.content_hash)?, p.size_bytes.unwrap_or(old.spec.size_bytes))
        }
        None => (old.spec.content_hash, p.size_bytes.unwrap_or(old.spec.size_bytes)),
    };
    let spec = DatasetSpec {
        title: p.title.unwrap_or(old.spec.title),
        description: p.description.unwrap_or(old.spec.description),
        tags: p.tags.unwrap_or(old.spec.tags),
        content_hash: hash,
        size_bytes,
        public_metadata: match &p.public_metadata {
            Some(v) => to_json_text("public_metadata", v)?,
            None => old.spec.public_metadata,
        },
        private_metadata: s.node.seal_metadata(&id, version, &private),
        policy,
    };
    let _adopting = match &files {
        Some(_) => Some(s.node.adopting_guard().await),
        None => None,
    };
    let w = s.node.write(Payload::UpdateDataset { id: id.clone(), spec }).await?;
    if let Some(staged) = files {
        s.node.adopt_files(&id, staged)?;
    }
    Ok(WriteView::reply(&w, false, committed_view(&s, &id)))
}

#[utoipa::path(delete, path = "/v1/datasets/{id}", responses((status = 200, body = WriteView), (status = 403, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn retire(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    owned(&s, &id)?;
    let w = s.node.write(Payload::RetireDataset { id: id.clone() }).await?;
    Ok(WriteView::reply(&w, false, committed_view(&s, &id)))
}
