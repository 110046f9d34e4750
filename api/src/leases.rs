//! Lease endpoints, and the one place private metadata is decrypted.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use leasehold_chaincode::query::LeaseFilter;
use leasehold_chaincode::{Lease, LeaseStatus, Payload};
use leasehold_node::users::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, JsonBody};
use crate::views::{LeaseView, WriteView};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/datasets/{id}/leases", post(request))
        .route("/v1/leases", get(list))
        .route("/v1/leases/{id}", get(show))
        .route("/v1/leases/{id}/grant", post(grant))
        .route("/v1/leases/{id}/deny", post(deny))
        .route("/v1/leases/{id}/revoke", post(revoke))
        .route("/v1/leases/{id}/release", post(release))
        .route("/v1/leases/{id}/extend", post(extend))
        .route("/v1/leases/{id}/metadata", get(metadata))
        .route("/v1/leases/{id}/access-log", get(access_log))
}

fn load(s: &AppState, id: &str) -> Result<Lease, ApiError> {
    s.node.lease(id)?.ok_or_else(|| ApiError::NotFound(format!("lease {id:?} does not exist")))
}

fn reply(s: &AppState, w: leasehold_node::Written, id: &str, created: bool) -> (StatusCode, Json<WriteView>) {
    let view = s.node.lease(id).ok().flatten().map(|l| LeaseView::at(&l, s.node.ledger_now()));
    WriteView::reply(&w, created, view)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    pub duration_ms: u64,
    #[serde(default)]
    pub purpose: String,
}

#[utoipa::path(post, path = "/v1/datasets/{id}/leases", request_body = LeaseRequest, responses((status = 201, body = WriteView), (status = 403, body = crate::error::Problem)), security(("bearer" = ["member"])))]
pub async fn request(
    s: State<AppState>,
    caller: Caller,
    Path(dataset): Path<String>,
    JsonBody(r): JsonBody<LeaseRequest>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Member)?;
    let id = format!("lease-{}", hex::encode(rand::random::<[u8; 8]>()));
    let payload = Payload::RequestLease {
        lease_id: id.clone(),
        dataset_id: dataset,
        duration_ms: r.duration_ms,
        purpose: r.purpose,
    };
    let w = s.node.write(payload).await?;
    Ok(reply(&s, w, &id, true))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LeaseQuery {
    /// `lessee` (leases this org holds) or `owner` (leases on this org's datasets); both when absent.
    role: Option<String>,
    status: Option<String>,
    dataset: Option<String>,
    /// The last id of the previous page (with one `role`).
    after: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/leases", params(LeaseQuery), responses((status = 200, body = Vec<LeaseView>)), security(("bearer" = ["viewer"])))]
pub async fn list(s: State<AppState>, caller: Caller, q: Query<LeaseQuery>) -> Result<Json<Vec<LeaseView>>, ApiError> {
    caller.require(Role::Viewer)?;
    let status = match &q.status {
        Some(st) => Some(
            LeaseStatus::parse(st).ok_or_else(|| ApiError::bad("status", format!("{st:?} is not a lease status")))?,
        ),
        None => None,
    };
    let me = s.node.org().to_string();
    let roles: Vec<(Option<String>, Option<String>)> = match q.role.as_deref() {
        Some("lessee") => vec![(Some(me), None)],
        Some("owner") => vec![(None, Some(me))],
        None => vec![(Some(me.clone()), None), (None, Some(me))],
        Some(other) => return Err(ApiError::bad("role", format!("{other:?} is not 'lessee' or 'owner'"))),
    };
    let now = s.node.ledger_now();
    let mut out = Vec::new();
    for (lessee, owner) in roles {
        let f = LeaseFilter {
            dataset: q.dataset.clone(),
            lessee,
            owner,
            status,
            after: q.after.clone(),
            limit: q.limit.unwrap_or(100),
        };
        out.extend(s.node.leases(&f)?.items.iter().map(|l| LeaseView::at(l, now)));
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/v1/leases/{id}", responses((status = 200, body = LeaseView), (status = 404, body = crate::error::Problem)), security(("bearer" = ["viewer"])))]
pub async fn show(s: State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<LeaseView>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(LeaseView::at(&load(&s, &id)?, s.node.ledger_now())))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// Defaults to the requested duration.
    pub duration_ms: Option<u64>,
}

#[utoipa::path(post, path = "/v1/leases/{id}/grant", request_body = GrantBody, responses((status = 200, body = WriteView), (status = 403, body = crate::error::Problem), (status = 409, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn grant(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    let lease = load(&s, &id)?;
    if lease.owner != s.node.org() {
        return Err(ApiError::Forbidden(format!("only the owner {:?} may grant the lease", lease.owner)));
    }
    let body: GrantBody = crate::auth::optional_json(&body)?;
    let duration_ms = body.duration_ms.unwrap_or(lease.requested_ms);
    let w = s.node.write(Payload::GrantLease { lease_id: id.clone(), duration_ms }).await?;
    Ok(reply(&s, w, &id, false))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

#[utoipa::path(post, path = "/v1/leases/{id}/deny", request_body = ReasonBody, responses((status = 200, body = WriteView)), security(("bearer" = ["admin"])))]
pub async fn deny(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ReasonBody>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    let w = s.node.write(Payload::DenyLease { lease_id: id.clone(), reason: b.reason }).await?;
    Ok(reply(&s, w, &id, false))
}

#[utoipa::path(post, path = "/v1/leases/{id}/revoke", request_body = ReasonBody, responses((status = 200, body = WriteView)), security(("bearer" = ["admin"])))]
pub async fn revoke(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ReasonBody>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    let w = s.node.write(Payload::RevokeLease { lease_id: id.clone(), reason: b.reason }).await?;
    Ok(reply(&s, w, &id, false))
}

#[utoipa::path(post, path = "/v1/leases/{id}/release", responses((status = 200, body = WriteView)), security(("bearer" = ["member"])))]
pub async fn release(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Member)?;
    let w = s.node.write(Payload::ReleaseLease { lease_id: id.clone() }).await?;
    Ok(reply(&s, w, &id, false))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    pub extra_ms: u64,
}

#[utoipa::path(post, path = "/v1/leases/{id}/extend", request_body = ExtendBody, responses((status = 200, body = WriteView)), security(("bearer" = ["admin"])))]
pub async fn extend(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ExtendBody>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    let w = s.node.write(Payload::ExtendLease { lease_id: id.clone(), extra_ms: b.extra_ms }).await?;
    Ok(reply(&s, w, &id, false))
}

#[derive(Serialize, ToSchema)]
pub struct MetadataView {
    pub lease_id: String,
    pub dataset_id: String,
    pub dataset_version: u32,
    pub expires_at: String,
    /// When the owner's node decided to disclose: always before `expires_at`.
    pub decided_at: String,
    /// The owner's tx that recorded this read in the ledger's audit trail
    /// (with the reads of the same user that waited for it together).
    pub audit_tx_id: String,
    #[schema(value_type = Object)]
    pub private_metadata: serde_json::Value,
}

/// Decrypts a leased dataset's private metadata for the lessee org, after the
/// ledger confirms the lease is active: the read is itself a transaction
/// (`RecordReads`) that the chaincode rejects once the lease has expired or
/// been revoked, so the check is made at the block's time, not the node's.
/// A user's reads that wait together share one record, which counts them;
/// over the owner's limits the answer is 429, naming the limit.
#[utoipa::path(get, path = "/v1/leases/{id}/metadata", responses((status = 200, body = MetadataView), (status = 403, body = crate::error::Problem), (status = 429, body = crate::error::Problem), (status = 503, body = crate::error::Problem)), security(("bearer" = ["member"])))]
pub async fn metadata(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MetadataView>, ApiError> {
    let user = caller.require(Role::Member)?;
    // Asked of the owner's node, which checks, audits and decides; nothing
    // of the answer is kept here.
    let d = s.node.lease_metadata(&id, &user.name).await?;
    Ok(Json(MetadataView {
        lease_id: d.lease_id,
        dataset_id: d.dataset_id,
        dataset_version: d.version,
        expires_at: leasehold_chaincode::time::rfc3339(d.expires_at_ms),
        decided_at: leasehold_chaincode::time::rfc3339(d.decided_at_ms),
        audit_tx_id: d.audit_tx_id,
        private_metadata: serde_json::from_slice(&d.plaintext).unwrap_or(serde_json::Value::Null),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AccessView {
    /// The record's number in the lease's trail, from 0: the next page starts after it.
    pub seq: u32,
    /// The lessee's user and org the metadata was disclosed to.
    pub reader: String,
    pub org: String,
    /// The dataset version disclosed.
    pub version: u32,
    /// Block time of the owner's audit record, before the disclosure.
    pub at: String,
    pub tx_id: String,
    /// The reads this record stands for: those of `reader` that waited for
    /// it together.
    pub reads: u32,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccessQuery {
    /// The first record's number (default 0).
    from: Option<u32>,
    /// At most this many records (default and maximum 1000).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/leases/{id}/access-log", params(AccessQuery), responses((status = 200, body = Vec<AccessView>)), security(("bearer" = ["viewer"])))]
pub async fn access_log(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<AccessQuery>,
) -> Result<Json<Vec<AccessView>>, ApiError> {
    caller.require(Role::Viewer)?;
    load(&s, &id)?;
    let log = s.node.access_log(&id, q.from.unwrap_or(0), q.limit.unwrap_or(1000))?;
    Ok(Json(
        log.into_iter()
            .map(|(seq, a)| AccessView {
                seq,
                reader: a.reader,
                org: a.org,
                version: a.version,
                at: leasehold_chaincode::time::rfc3339(a.time_ms),
                tx_id: a.tx_id.to_hex(),
                reads: a.reads,
            })
            .collect(),
    ))
}
