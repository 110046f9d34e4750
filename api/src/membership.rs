//! The raft voters: who they are, and this org's approval of a new set.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use leasehold_chaincode::Payload;
use leasehold_node::users::Role;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{Caller, JsonBody};
use crate::views::WriteView;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/membership", get(show).post(approve))
}

/// The voters in effect on the ledger, each org's standing approval, and
/// the voters raft has on this node.
#[utoipa::path(get, path = "/v1/membership", responses((status = 200, body = Object)), security(("bearer" = ["viewer"])))]
pub async fn show(s: State<AppState>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let m = s.node.membership()?;
    serde_json::to_value(m).map(Json).map_err(|e| ApiError::Internal(e.to_string()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The orgs this org approves as the raft voters. The set takes effect
    /// once a majority of the orgs approve exactly the same set.
    pub voters: Vec<String>,
}

#[utoipa::path(post, path = "/v1/membership", request_body = Approval, responses((status = 200, body = WriteView), (status = 422, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn approve(
    s: State<AppState>,
    caller: Caller,
    JsonBody(a): JsonBody<Approval>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    let w = s.node.write(Payload::ApproveMembership { voters: a.voters }).await?;
    let m = s.node.membership()?;
    Ok(WriteView::reply(&w, false, Some(m)))
}
