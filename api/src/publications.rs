//! Derived datasets waiting for the approval of the owners of what they
//! were derived from (`derived: owner_approval`), and those owners' word.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use leasehold_chaincode::{time::rfc3339, Payload, Publication};
use leasehold_node::users::Role;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Caller, JsonBody};
use crate::runs::Decision;
use crate::views::{PolicyView, WriteView};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/publications", get(list))
        .route("/v1/publications/{id}/approve", post(approve))
        .route("/v1/publications/{id}/deny", post(deny))
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
