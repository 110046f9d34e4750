//! A workspace to start from, for a lease this org holds: the files of a
//! workflow directory that runs at once on the leased dataset
//! (`leasehold_workflow::workspace`). `leasehold workspace new` and the
//! Python client write them to a directory.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use leasehold_chaincode::LeaseStatus;
use leasehold_node::users::Role;
use leasehold_workflow::workspace::{starter, Starter};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/leases/{id}/workspace", get(workspace))
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceView {
    pub lease: String,
    pub dataset: String,
    /// Each file's text, by its path in the workspace.
    pub files: BTreeMap<String, String>,
}

/// A starter workflow directory on the lease's dataset: `workflow.yaml`
/// mounting it at `/home/jovyan/<dataset>`, a script that reads it, an
/// empty `requirements.txt`, a QC test on the owner's public `sample` (an
/// object of file path to text in the public metadata) if there is one,
/// and a README. Nothing leased, not even a file's name, is in it.
#[utoipa::path(get, path = "/v1/leases/{id}/workspace", responses((status = 200, body = WorkspaceView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = ["member"])))]
pub async fn workspace(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WorkspaceView>, ApiError> {
    caller.require(Role::Member)?;
    let lease = s.node.lease(&id)?.ok_or_else(|| ApiError::NotFound(format!("lease {id:?} does not exist")))?;
    if lease.lessee != s.node.org() {
        return Err(ApiError::Forbidden(format!("lease {id} is {}'s; a workspace is for its lessee", lease.lessee)));
    }
    let status = lease.status_at(s.node.ledger_now());
    if status != LeaseStatus::Active {
        return Err(ApiError::Forbidden(format!("lease {id} is {}, not active", status.as_str())));
    }
    let dataset = s
        .node
        .dataset(&lease.dataset_id)?
        .ok_or_else(|| ApiError::NotFound(format!("dataset {:?} does not exist", lease.dataset_id)))?;
    let public: serde_json::Value = serde_json::from_str(&dataset.spec.public_metadata).unwrap_or_default();
    let files = starter(&Starter { lease_id: &id, dataset_id: &dataset.id, sample: public.get("sample") });
    Ok(Json(WorkspaceView { lease: id, dataset: dataset.id, files }))
}
