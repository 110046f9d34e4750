//! Staging a dataset's files before registering it (or a new version of
//! it): the next `POST /v1/datasets` or `PATCH /v1/datasets/{id}` hashes
//! the staged files into the content hash and moves them into the store.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use axum::{Json, Router};
use futures::StreamExt;
use leasehold_chaincode::keys;
use leasehold_node::users::Role;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/datasets/{id}/files/{*path}", put(upload))
}

#[derive(Serialize, ToSchema)]
pub struct StagedFile {
    pub dataset: String,
    pub path: String,
    pub size_bytes: u64,
    pub sha256: String,
}

#[utoipa::path(put, path = "/v1/datasets/{id}/files/{path}", request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = StagedFile), (status = 413, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn upload(
    s: State<AppState>,
    caller: Caller,
    Path((id, path)): Path<(String, String)>,
    body: Body,
) -> Result<(StatusCode, Json<StagedFile>), ApiError> {
    caller.require(Role::Admin)?;
    keys::valid_id("id", &id)?;
    if s.node.dataset(&id)?.is_some() {
        crate::datasets::owned(&s, &id)?;
    }
    let mut upload = s.node.begin_upload(&id, &path).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad("body", e.to_string()))?;
        upload.write(&chunk).await?;
    }
    let staged = upload.finish().await?;
    Ok((
        StatusCode::CREATED,
        Json(StagedFile { dataset: id, path, size_bytes: staged.size_bytes, sha256: staged.sha256 }),
    ))
}
