//! The orgs of the network: who they are, and the changes (an org joins,
//! leaves or rotates its keys) that take effect once a majority of the
//! active orgs approve, and are dropped once a majority deny them or their
//! proposer withdraws them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use leasehold_chaincode::roster::OrgChange;
use leasehold_chaincode::Payload;
use leasehold_node::orgs::{join_change, rotate_change, JoinRequest};
use leasehold_node::users::Role;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{Caller, JsonBody};
use crate::views::WriteView;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs", get(list))
        .route("/v1/orgs/changes", post(propose))
        .route("/v1/orgs/changes/{id}/approve", post(approve))
        .route("/v1/orgs/changes/{id}/deny", post(deny))
        .route("/v1/orgs/changes/{id}/withdraw", post(withdraw))
}

/// Every org that ever joined (with its raft node id, and why it left if
/// it did), and the changes waiting for approval.
#[utoipa::path(get, path = "/v1/orgs", responses((status = 200, body = Object)), security(("bearer" = ["viewer"])))]
pub async fn list(s: State<AppState>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Role::Viewer)?;
    serde_json::to_value(s.node.orgs()?).map(Json).map_err(|e| ApiError::Internal(e.to_string()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Leave {
    pub org: String,
    /// Recorded on the org and on each lease its leaving ends.
    pub reason: String,
}

/// One of `join`, `leave` and `rotate`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    pub change_id: String,
    /// What the joining org made with `leasehold org join-request`.
    #[schema(value_type = Option<Object>)]
    pub join: Option<JoinRequest>,
    pub leave: Option<Leave>,
    /// What a member made with `leasehold org rotate-keys`: its card with
    /// its new keys, signed by the new signing key.
    #[schema(value_type = Option<Object>)]
    pub rotate: Option<JoinRequest>,
}

/// Proposes a change, with this org's approval.
#[utoipa::path(post, path = "/v1/orgs/changes", request_body = ChangeRequest, responses((status = 200, body = WriteView), (status = 422, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn propose(
    s: State<AppState>,
    caller: Caller,
    JsonBody(r): JsonBody<ChangeRequest>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    let change = match (r.join, r.leave, r.rotate) {
        (Some(j), None, None) => join_change(&j).map_err(|e| ApiError::invalid("join", e.to_string()))?,
        (None, Some(l), None) => OrgChange::Leave { org: l.org, reason: l.reason },
        (None, None, Some(k)) => rotate_change(&k).map_err(|e| ApiError::invalid("rotate", e.to_string()))?,
        _ => return Err(ApiError::invalid("join", "give exactly one of `join`, `leave` and `rotate`")),
    };
    let w = s.node.write(Payload::ProposeOrgChange { change_id: r.change_id, change }).await?;
    Ok(WriteView::reply(&w, false, Some(s.node.orgs()?)))
}

/// Adds this org's approval to a pending change.
#[utoipa::path(post, path = "/v1/orgs/changes/{id}/approve", params(("id" = String, Path)), responses((status = 200, body = WriteView), (status = 422, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn approve(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    let w = s.node.write(Payload::ApproveOrgChange { change_id: id }).await?;
    Ok(WriteView::reply(&w, false, Some(s.node.orgs()?)))
}

/// Adds this org's refusal to a pending change: a majority's drop it.
#[utoipa::path(post, path = "/v1/orgs/changes/{id}/deny", params(("id" = String, Path)), responses((status = 200, body = WriteView), (status = 422, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn deny(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    let w = s.node.write(Payload::DenyOrgChange { change_id: id }).await?;
    Ok(WriteView::reply(&w, false, Some(s.node.orgs()?)))
}

/// Takes back a pending change this org proposed.
#[utoipa::path(post, path = "/v1/orgs/changes/{id}/withdraw", params(("id" = String, Path)), responses((status = 200, body = WriteView), (status = 422, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn withdraw(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    let w = s.node.write(Payload::WithdrawOrgChange { change_id: id }).await?;
    Ok(WriteView::reply(&w, false, Some(s.node.orgs()?)))
}
