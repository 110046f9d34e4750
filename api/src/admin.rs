//! Users and history.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use leasehold_node::users::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, JsonBody};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list_users).post(add_user))
        .route("/v1/users/{name}", delete(revoke_user))
        .route("/v1/history/{kind}/{id}", get(history))
        .route("/v1/backups", post(backup))
        .route("/v1/config", get(config))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    /// viewer, member or admin.
    #[schema(value_type = String)]
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct UserCreated {
    pub name: String,
    #[schema(value_type = String)]
    pub role: Role,
    /// Shown once; the node keeps only its hash.
    pub token: String,
}

#[utoipa::path(post, path = "/v1/users", request_body = NewUser, responses((status = 201, body = UserCreated), (status = 403, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn add_user(
    s: State<AppState>,
    caller: Caller,
    JsonBody(u): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<UserCreated>), ApiError> {
    caller.require(Role::Admin)?;
    let token =
        s.users.add(&u.name, u.role, leasehold_node::now_ms()).map_err(|e| ApiError::invalid("name", e.to_string()))?;
    Ok((StatusCode::CREATED, Json(UserCreated { name: u.name, role: u.role, token })))
}

/// A user of this node, without its token (stored hashed, shown once).
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub name: String,
    /// viewer, member or admin.
    #[schema(value_type = String)]
    pub role: Role,
    pub created_at: String,
}

impl From<&leasehold_node::users::User> for UserView {
    fn from(u: &leasehold_node::users::User) -> Self {
        Self { name: u.name.clone(), role: u.role, created_at: leasehold_chaincode::time::rfc3339(u.created_at_ms) }
    }
}

#[utoipa::path(get, path = "/v1/users", responses((status = 200, body = Vec<UserView>)), security(("bearer" = ["admin"])))]
pub async fn list_users(s: State<AppState>, caller: Caller) -> Result<Json<Vec<UserView>>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(s.users.list()?.iter().map(UserView::from).collect()))
}

/// Revokes a user's token: it gets 401 from the next request on.
#[utoipa::path(delete, path = "/v1/users/{name}", responses((status = 200, body = UserView), (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn revoke_user(
    s: State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let me = caller.require(Role::Admin)?;
    if me.name == name {
        return Err(ApiError::invalid(
            "name",
            "an admin does not revoke its own token here: another admin can, or `leasehold user revoke` on the node's machine",
        ));
    }
    match s.users.revoke(&name)? {
        Some(u) => Ok(Json(UserView::from(&u))),
        None => Err(ApiError::NotFound(format!("no user {name:?}"))),
    }
}

#[derive(Serialize, ToSchema)]
pub struct HistoryView {
    pub tx_id: String,
    pub height: u64,
    pub at: String,
    /// The record as that transaction left it.
    #[schema(value_type = Object)]
    pub record: serde_json::Value,
}

fn record_json(kind: &str, bytes: &[u8], now: i64) -> Result<serde_json::Value, ApiError> {
    use leasehold_chaincode::{canonical::from_bytes, Dataset, Lease, Run};
    let v = match kind {
        "dataset" => serde_json::to_value(crate::views::DatasetView::from(&from_bytes::<Dataset>(bytes, kind)?)),
        "lease" => serde_json::to_value(crate::views::LeaseView::at(&from_bytes::<Lease>(bytes, kind)?, now)),
        "publication" => serde_json::to_value(crate::views::PublicationView::from(&from_bytes::<
            leasehold_chaincode::Publication,
        >(bytes, kind)?)),
        _ => serde_json::to_value(from_bytes::<Run>(bytes, kind)?),
    };
    v.map_err(|e| ApiError::Internal(e.to_string()))
}

#[utoipa::path(get, path = "/v1/history/{kind}/{id}", responses((status = 200, body = Vec<HistoryView>), (status = 404, body = crate::error::Problem)), security(("bearer" = ["viewer"])))]
pub async fn history(
    s: State<AppState>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Json<Vec<HistoryView>>, ApiError> {
    caller.require(Role::Viewer)?;
    if !matches!(kind.as_str(), "dataset" | "lease" | "run" | "publication") {
        return Err(ApiError::bad("kind", format!("{kind:?} is not dataset, lease, run or publication")));
    }
    let entries = s.node.history(&kind, &id)?;
    if entries.is_empty() {
        return Err(ApiError::NotFound(format!("no history for {kind} {id:?}")));
    }
    let now = s.node.ledger_now();
    entries
        .iter()
        .map(|e| {
            Ok(HistoryView {
                tx_id: e.tx_id.to_hex(),
                height: e.height,
                at: leasehold_chaincode::time::rfc3339(e.time_ms),
                record: record_json(&kind, &e.record, now)?,
            })
        })
        .collect::<Result<_, ApiError>>()
        .map(Json)
}

/// A backup just taken: where it is on the node's host, and what it holds.
#[derive(Serialize, ToSchema)]
pub struct BackupView {
    /// A directory on the node's host; copy it off the host.
    pub path: String,
    pub height: u64,
    pub head_hash: String,
    pub state_root: String,
    pub taken_at: String,
    /// Dataset files (with their manifests) in the backup.
    pub files: u64,
}

/// Takes a backup of this running node: a RocksDB checkpoint of its ledger,
/// its dataset files and its users' token hashes (no keys, no leased files).
/// `leasehold verify --data-dir PATH` checks it; `leasehold restore` puts it
/// back.
#[utoipa::path(post, path = "/v1/backups", responses((status = 201, body = BackupView), (status = 409, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn backup(s: State<AppState>, caller: Caller) -> Result<(StatusCode, Json<BackupView>), ApiError> {
    caller.require(Role::Admin)?;
    let b = s.node.backup().await?;
    let m = b.manifest;
    Ok((
        StatusCode::CREATED,
        Json(BackupView {
            path: b.path.display().to_string(),
            height: m.height,
            head_hash: m.head_hash,
            state_root: m.state_root,
            taken_at: leasehold_chaincode::time::rfc3339(m.taken_at_ms),
            files: m.files,
        }),
    ))
}

/// The node's configuration as it runs: `node.toml` with its defaults
/// filled in. It names where the keys are kept, never what they hold
/// (nothing secret is in the configuration); admins only, since it shows
/// the node's directories.
#[utoipa::path(get, path = "/v1/config", responses((status = 200, body = Object)), security(("bearer" = ["admin"])))]
pub async fn config(s: State<AppState>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(serde_json::to_value(s.node.config()).unwrap_or_default()))
}
