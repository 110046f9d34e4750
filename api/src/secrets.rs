//! This org's job secrets at its own node: set, list by name, delete. A
//! value goes in and never comes out; a workflow names a secret under
//! `secrets:` and its jobs receive it as an environment variable
//! (`leasehold_workflow::secrets`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use leasehold_node::users::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, JsonBody};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/secrets", get(list)).route("/v1/secrets/{name}", put(set).delete(remove))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// 1 to 4096 bytes on one line. Sealed at rest at this node; never
    /// shown again.
    pub value: String,
}

/// A secret, by name only: its value is never shown.
#[derive(Serialize, ToSchema)]
pub struct SecretView {
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct SecretList {
    pub secrets: Vec<SecretView>,
}

/// Stores a secret's value at this node (201 when the name is new, 200
/// when it replaced one). The name is upper-case letters, digits and `_`.
#[utoipa::path(put, path = "/v1/secrets/{name}", request_body = SecretValue, responses((status = 201, body = SecretView), (status = 200, body = SecretView), (status = 422, body = crate::error::Problem)), security(("bearer" = ["member"])))]
pub async fn set(
    s: State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<SecretValue>,
) -> Result<(StatusCode, Json<SecretView>), ApiError> {
    caller.require(Role::Member)?;
    let new = s.node.set_secret(&name, &body.value)?;
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(SecretView { name })))
}

/// The names of the secrets stored at this node, sorted.
#[utoipa::path(get, path = "/v1/secrets", responses((status = 200, body = SecretList)), security(("bearer" = ["member"])))]
pub async fn list(s: State<AppState>, caller: Caller) -> Result<Json<SecretList>, ApiError> {
    caller.require(Role::Member)?;
    let secrets = s.node.secret_names()?.into_iter().map(|name| SecretView { name }).collect();
    Ok(Json(SecretList { secrets }))
}

/// Deletes a secret: runs submitted from then on that name it are refused.
#[utoipa::path(delete, path = "/v1/secrets/{name}", responses((status = 200, body = SecretView), (status = 404, body = crate::error::Problem)), security(("bearer" = ["member"])))]
pub async fn remove(
    s: State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<SecretView>, ApiError> {
    caller.require(Role::Member)?;
    s.node.delete_secret(&name)?;
    Ok(Json(SecretView { name }))
}
