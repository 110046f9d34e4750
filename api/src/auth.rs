//! Authentication (a bearer token, or a browser's session cookie with its
//! CSRF token: see `session`) and role checks.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::Method;
use axum::Json;
use leasehold_node::users::{Role, User};
use serde::de::DeserializeOwned;

use crate::{session, ApiError, AppState};

/// The authenticated caller. Extracting it answers 401 without a valid token.
pub struct Caller(pub User);

impl Caller {
    /// 403 unless the caller's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<&User, ApiError> {
        if self.0.role >= role {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(
                format!("this needs the {role:?} role; {} is {:?}", self.0.name, self.0.role).to_lowercase(),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if header.is_none() {
            if let Some(id) = session::cookie(&parts.headers) {
                return from_session(parts, state, id);
            }
        }
        let token = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::Unauthorized("send 'Authorization: Bearer <token>'".into()))?;
        match state.users.authenticate(token.trim())? {
            Some(user) => Ok(Caller(user)),
            None => Err(ApiError::Unauthorized("the bearer token is not valid on this node".into())),
        }
    }
}

/// A browser's request: its session must still be open, its user still on
/// this node, and a write must carry the session's CSRF token, which a page
/// of another origin cannot read.
fn from_session(parts: &Parts, state: &AppState, id: &str) -> Result<Caller, ApiError> {
    let ended = || ApiError::Unauthorized("the session has ended: sign in again".into());
    let session = state.sessions.find(id, leasehold_node::now_ms()).ok_or_else(ended)?;
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    if !reads.contains(&parts.method) {
        let sent = parts.headers.get(session::CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !session::same_secret(sent, &session.csrf) {
            return Err(ApiError::Forbidden(format!(
                "a write from a browser session needs the session's {} header",
                session::CSRF_HEADER
            )));
        }
    }
    match state.users.by_token_hash(&session.token_sha256)? {
        Some(user) => Ok(Caller(user)),
        None => {
            state.sessions.close(id);
            Err(ended())
        }
    }
}

/// `Json<T>` whose rejections are problem+json naming the field.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(Self(v))
    }
}

/// A JSON body that may be left out entirely (then `T::default()`).
pub fn optional_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            let text = e.to_string();
            let field = text.split("field `").nth(1).and_then(|r| r.split('`').next()).map(String::from);
            ApiError::Unprocessable { field, detail: text }
        }
        _ => ApiError::bad("body", format!("malformed JSON: {e}")),
    })
}
