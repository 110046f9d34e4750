//! Browser sessions. A user pastes its bearer token once; the node answers
//! with an HttpOnly, SameSite=Strict cookie naming a random session, and a
//! CSRF token that the page keeps in memory and sends with every write.
//! The session holds only the hash of the user's token, so revoking the
//! user ends it at the next request; it also ends after `SESSION_TTL_MS`
//! and at logout. Nothing here is written to disk.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::header::{HeaderMap, COOKIE, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use leasehold_node::users::Role;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::{Caller, JsonBody};
use crate::{ApiError, AppState};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "lh_session";
/// The header a page's write carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts from sign-in.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// Sessions held at once; past it the one closest to its end goes first.
pub const MAX_SESSIONS: usize = 4096;

/// The open sessions, by the sha256 of their cookie's value.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
}

#[derive(Clone)]
pub struct Session {
    /// The hash of the token the user signed in with.
    pub token_sha256: String,
    pub csrf: String,
    pub expires_at_ms: i64,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Opens a session for a token's hash; returns the cookie's value and
    /// the session (with its CSRF token).
    pub fn open(&self, token_sha256: String, now_ms: i64) -> (String, Session) {
        let (id, csrf) = (leasehold_node::users::new_token(), leasehold_node::users::new_token());
        let session = Session { token_sha256, csrf, expires_at_ms: now_ms.saturating_add(SESSION_TTL_MS) };
        let mut open = self.open.lock().expect("sessions lock");
        open.retain(|_, s| s.expires_at_ms > now_ms);
        while open.len() >= MAX_SESSIONS {
            let Some(first) = open.iter().min_by_key(|(_, s)| s.expires_at_ms).map(|(k, _)| *k) else { break };
            open.remove(&first);
        }
        open.insert(digest(&id), session.clone());
        (id, session)
    }

    /// The session a cookie names, while it lasts.
    pub fn find(&self, id: &str, now_ms: i64) -> Option<Session> {
        let mut open = self.open.lock().expect("sessions lock");
        let key = digest(id);
        match open.get(&key) {
            Some(s) if s.expires_at_ms > now_ms => Some(s.clone()),
            Some(_) => {
                open.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        self.open.lock().expect("sessions lock").remove(&digest(id));
    }
}

/// The value of the session cookie a request carries, if any.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

/// Equal without telling, by its time, how much of a guess was right.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

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
