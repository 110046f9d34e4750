//! Derived datasets waiting for the approval of the owners of what they
//! were derived from (`derived: owner_approval`), and those owners' word.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use leasehold_chaincode::Payload;
use leasehold_node::users::Role;

use crate::auth::{Caller, JsonBody};
use crate::views::{Decision, PublicationView, WriteView};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/publications", get(list))
        .route("/v1/publications/{id}/approve", post(approve))
        .route("/v1/publications/{id}/deny", post(deny))
}

/// Pending publications this org published or must decide.
#[utoipa::path(get, path = "/v1/publications", responses((status = 200, body = Vec<PublicationView>)), security(("bearer" = ["viewer"])))]
pub async fn list(s: State<AppState>, caller: Caller) -> Result<Json<Vec<PublicationView>>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(s.node.publications()?.iter().map(PublicationView::from).collect()))
}

/// Approves publishing a dataset derived from this org's data (recorded on
/// the ledger); the last approval needed puts it on the ledger.
#[utoipa::path(post, path = "/v1/publications/{id}/approve", request_body = Decision, responses((status = 200, body = WriteView), (status = 404, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn approve(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(d): JsonBody<Decision>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    decide(s, caller, id, true, d.reason).await
}

/// Refuses it, saying why: the pending publication is dropped.
#[utoipa::path(post, path = "/v1/publications/{id}/deny", request_body = Decision, responses((status = 200, body = WriteView), (status = 404, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn deny(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(d): JsonBody<Decision>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    // The chaincode refuses a refusal without a reason, naming the field.
    decide(s, caller, id, false, d.reason).await
}

async fn decide(
    s: State<AppState>,
    caller: Caller,
    id: String,
    approve: bool,
    reason: String,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    if s.node.publication(&id)?.is_none() {
        return Err(ApiError::NotFound(format!("no publication of {id:?} is pending")));
    }
    let w = s.node.write(Payload::DecidePublication { dataset_id: id.clone(), approve, reason }).await?;
    let resource = match s.node.publication(&id)? {
        Some(p) => serde_json::to_value(PublicationView::from(&p)).ok(),
        None => {
            s.node.dataset(&id)?.map(|d| serde_json::to_value(crate::views::DatasetView::from(&d))).and_then(|r| r.ok())
        }
    };
    Ok(WriteView::reply(&w, false, resource))
}
