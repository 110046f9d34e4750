//! The session routes: sign in with a token (`POST /v1/session`), see the
//! session (`GET`), sign out (`DELETE`). The store and the cookie's format
//! are in `session.rs`; a request's session is found by `auth.rs`.

use axum::extract::State;
use axum::http::header::{HeaderMap, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use leasehold_node::users::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, JsonBody};
use crate::session::{cookie, COOKIE_NAME, SESSION_TTL_MS};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/session", post(sign_in).get(show).delete(sign_out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// A bearer token of this node's users.
    pub token: String,
}

/// Who is signed in, and the CSRF token the page sends with its writes.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub org: String,
    pub user: String,
    /// viewer, member or admin.
    #[schema(value_type = String)]
    pub role: Role,
    /// Present for a cookie session: send it as `X-CSRF-Token` on writes.
    pub csrf: Option<String>,
    pub expires_at_ms: Option<i64>,
}

/// Signs a browser in: the token is checked once, and the answer sets an
/// HttpOnly, SameSite=Strict session cookie.
#[utoipa::path(post, path = "/v1/session", request_body = SignIn, responses((status = 201, body = SessionView), (status = 401, body = crate::error::Problem)))]
pub async fn sign_in(s: State<AppState>, JsonBody(req): JsonBody<SignIn>) -> Result<Response, ApiError> {
    if req.token.len() > 256 {
        return Err(ApiError::invalid("token", "is longer than any token this node issues"));
    }
    let user = s
        .users
        .authenticate(req.token.trim())?
        .ok_or_else(|| ApiError::Unauthorized("the token is not valid on this node".into()))?;
    let (id, session) = s.sessions.open(user.token_sha256.clone(), leasehold_node::now_ms());
    let max_age_s = SESSION_TTL_MS / 1000;
    let set = format!("{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}");
    let view = SessionView {
        org: s.node.org().into(),
        user: user.name,
        role: user.role,
        csrf: Some(session.csrf),
        expires_at_ms: Some(session.expires_at_ms),
    };
    Ok((StatusCode::CREATED, [(SET_COOKIE, set)], Json(view)).into_response())
}

/// The caller, by cookie or bearer token.
#[utoipa::path(get, path = "/v1/session", responses((status = 200, body = SessionView), (status = 401, body = crate::error::Problem)), security(("bearer" = ["viewer"])))]
pub async fn show(s: State<AppState>, headers: HeaderMap, caller: Caller) -> Json<SessionView> {
    let session = cookie(&headers).and_then(|id| s.sessions.find(id, leasehold_node::now_ms()));
    let by_cookie = session.filter(|_| !headers.contains_key(axum::http::header::AUTHORIZATION));
    Json(SessionView {
        org: s.node.org().into(),
        user: caller.0.name,
        role: caller.0.role,
        csrf: by_cookie.as_ref().map(|s| s.csrf.clone()),
        expires_at_ms: by_cookie.map(|s| s.expires_at_ms),
    })
}

/// Ends the browser's session (a write: it needs the CSRF token).
#[utoipa::path(delete, path = "/v1/session", responses((status = 204), (status = 401, body = crate::error::Problem)), security(("bearer" = ["viewer"])))]
pub async fn sign_out(s: State<AppState>, headers: HeaderMap, _caller: Caller) -> Response {
    if let Some(id) = cookie(&headers) {
        s.sessions.close(id);
    }
    let clear = format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (StatusCode::NO_CONTENT, [(SET_COOKIE, clear)]).into_response()
}
