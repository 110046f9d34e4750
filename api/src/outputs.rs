//! A succeeded run's outputs, for its own org to read: the listing with
//! each file's sha256, and each file as bytes. What a compute run's owner
//! has not released never reached this node, so it is not here to list.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use leasehold_node::users::Role;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/runs/{id}/outputs", get(list)).route("/v1/runs/{id}/outputs/{*path}", get(file))
}

#[derive(Serialize, ToSchema)]
pub struct OutputsView {
    pub run: String,
    /// The outputs' manifest hash, as `output_hash` in the run.
    pub output_hash: String,
    pub total_bytes: u64,
    pub files: Vec<OutputFileView>,
}

#[derive(Serialize, ToSchema)]
pub struct OutputFileView {
    pub path: String,
    pub size_bytes: u64,
    pub sha256: String,
}

/// The files a succeeded run wrote to its output directory.
#[utoipa::path(get, path = "/v1/runs/{id}/outputs", responses((status = 200, body = OutputsView), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)), security(("bearer" = ["member"])))]
pub async fn list(s: State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<OutputsView>, ApiError> {
    caller.require(Role::Member)?;
    let manifest = s.node.run_outputs_manifest(&id).await?;
    Ok(Json(OutputsView {
        run: id,
        output_hash: hex::encode(manifest.hash()),
        total_bytes: manifest.total_bytes(),
        files: manifest
            .files
            .into_iter()
            .map(|f| OutputFileView { path: f.path, size_bytes: f.size_bytes, sha256: hex::encode(f.sha256) })
            .collect(),
    }))
}

/// One output file's bytes.
#[utoipa::path(get, path = "/v1/runs/{id}/outputs/{path}", responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)), security(("bearer" = ["member"])))]
pub async fn file(
    s: State<AppState>,
    caller: Caller,
    Path((id, path)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Member)?;
    let file = s.node.open_run_output(&id, &path)?;
    let size = file.metadata().map_err(|e| ApiError::Internal(e.to_string()))?.len();
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_LENGTH, size.to_string())],
        Body::from_stream(stream),
    ))
}
