//! Staging a dataset's files before registering it (or a new version of
//! it): the next `POST /v1/datasets` or `PATCH /v1/datasets/{id}` hashes
//! the staged files into the content hash and moves them into the store.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use futures::StreamExt;
use leasehold_chaincode::keys;
use leasehold_files::check_rel_path;
use leasehold_node::users::Role;
use leasehold_node::NodeHandle;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// Largest file accepted in one upload, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 << 30;

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
    check_rel_path(&path).map_err(|e| ApiError::invalid("path", e.to_string()))?;
    if s.node.dataset(&id)?.is_some() {
        crate::datasets::owned(&s, &id)?;
    }
    let root = s.node.staging_dir(&id);
    clash(&root, &path)?;
    let target = root.join(&path);
    let partial =
        target.with_file_name(format!(".{}.partial", target.file_name().and_then(|n| n.to_str()).unwrap_or("upload")));
    let parent = target.parent().expect("under the uploads dir");
    tokio::fs::create_dir_all(parent).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    match receive(&s.node, body, &partial).await {
        Ok((size_bytes, sha256)) => {
            // `receive` fsynced the file; the rename is durable once its
            // directory is.
            let (from, to) = (partial.clone(), target.clone());
            tokio::task::spawn_blocking(move || leasehold_files::durable::rename(&from, &to))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok((StatusCode::CREATED, Json(StagedFile { dataset: id, path, size_bytes, sha256 })))
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}

/// A staged file cannot be a directory of others too: `a` then `a/b` (or
/// `a/b` then `a`) is refused, naming the path, and nothing is changed.
fn clash(root: &std::path::Path, rel: &str) -> Result<(), ApiError> {
    let parts: Vec<&str> = rel.split('/').collect();
    let mut at = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let Ok(meta) = std::fs::symlink_metadata(&at) else { return Ok(()) };
        let last = i + 1 == parts.len();
        if !last && !meta.is_dir() {
            let why = format!("{} is a staged file, so {rel} cannot be under it", parts[..=i].join("/"));
            return Err(ApiError::invalid("path", why));
        }
        if last && meta.is_dir() {
            return Err(ApiError::invalid("path", format!("{rel} is a directory of staged files")));
        }
    }
    Ok(())
}

/// Streams the body to `to`, hashing as it goes, within the size limit.
/// The disk is checked against the node's reserve again every this many
/// bytes of an upload: one upload may be larger than the reserve.
const DISK_CHECK_BYTES: u64 = 64 << 20;

async fn receive(node: &NodeHandle, body: Body, to: &std::path::Path) -> Result<(u64, String), ApiError> {
    let mut file = tokio::fs::File::create(to).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut stream = body.into_data_stream();
    let (mut size, mut hasher) = (0u64, Sha256::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad("body", e.to_string()))?;
        if size / DISK_CHECK_BYTES != (size + chunk.len() as u64) / DISK_CHECK_BYTES {
            node.check_disk()?;
        }
        size += chunk.len() as u64;
        if size > MAX_FILE_BYTES {
            return Err(ApiError::TooLarge(format!("a file is at most {MAX_FILE_BYTES} bytes")));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    file.sync_all().await.map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((size, hex::encode(hasher.finalize())))
}
