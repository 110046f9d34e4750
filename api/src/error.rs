//! One error type for the API, rendered as RFC 9457 problem details:
//! `application/problem+json` with `type`, `title`, `status`, `detail`, and
//! `field` when one field is at fault.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use leasehold_chaincode::ChaincodeError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { field: Option<String>, detail: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{detail}")]
    Unprocessable { field: Option<String>, detail: String },
    #[error("{0}")]
    Unavailable(String),
    /// Over a limit: retry later.
    #[error("{0}")]
    TooMany(String),
    /// Another organisation's node, asked on the caller's behalf, answered
    /// wrongly: nothing the caller sent, and nothing of this node, is at fault.
    #[error("{0}")]
    BadGateway(String),
    /// The node's disk is below its reserve; writes resume when it is not.
    #[error("{0}")]
    DiskFull(String),
    #[error("{0}")]
    Internal(String),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn bad(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::BadRequest { field: Some(field.into()), detail: detail.into() }
    }

    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Unprocessable { field: Some(field.into()), detail: detail.into() }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict with the ledger"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Request body too large"),
            Self::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid", "Invalid field"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Unavailable"),
            Self::TooMany(_) => (StatusCode::TOO_MANY_REQUESTS, "too-many", "Too many requests"),
            Self::BadGateway(_) => {
                (StatusCode::BAD_GATEWAY, "bad-peer", "Another organisation's node answered wrongly")
            }
            Self::DiskFull(_) => (StatusCode::INSUFFICIENT_STORAGE, "disk-full", "The node's disk is full"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }
}

/// A refused upload names its path; the node's own trouble maps as any.
impl From<leasehold_node::StageError> for ApiError {
    fn from(e: leasehold_node::StageError) -> Self {
        use leasehold_node::StageError as S;
        match e {
            S::Path(_) | S::Clash(_) => Self::invalid("path", e.to_string()),
            S::TooLarge => Self::TooLarge(e.to_string()),
            S::Node(n) => n.into(),
        }
    }
}

/// A bucket that cannot be registered is the `from` field's fault; a
/// store that cannot be reached, or answers wrongly, is nobody's here.
impl From<leasehold_node::ObjectError> for ApiError {
    fn from(e: leasehold_node::ObjectError) -> Self {
        use leasehold_node::ObjectError as O;
        match e {
            O::Store { .. } => Self::BadGateway(e.to_string()),
            _ => Self::invalid("from", e.to_string()),
        }
    }
}

impl From<leasehold_node::NodeError> for ApiError {
    fn from(e: leasehold_node::NodeError) -> Self {
        use leasehold_node::NodeError as N;
        match e {
            N::Chaincode(e) => e.into(),
            N::Workflow(w) => Self::Unprocessable { field: Some(w.field_path()), detail: w.to_string() },
            N::NotFound(d) => Self::NotFound(d),
            N::Forbidden(d) => Self::Forbidden(d),
            N::Conflict(d) => Self::Conflict(d),
            N::Unavailable(d) => Self::Unavailable(d),
            N::DiskFull(d) => Self::DiskFull(d),
            N::Peer(d) => Self::BadGateway(d),
            N::Busy(d) => Self::TooMany(d),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// The chaincode's verdicts, as HTTP: who may not (403), what is not there
/// (404), what conflicts with the ledger's state (409), what is malformed (422).
impl From<ChaincodeError> for ApiError {
    fn from(e: ChaincodeError) -> Self {
        let detail = e.to_string();
        match e {
            ChaincodeError::NotFound { .. } => Self::NotFound(detail),
            ChaincodeError::NotOwner { .. }
            | ChaincodeError::NotAllowedByPolicy { .. }
            | ChaincodeError::NotLessee { .. } => Self::Forbidden(detail),
            ChaincodeError::InvalidField { field, .. } => Self::Unprocessable { field: Some(field.into()), detail },
            ChaincodeError::DurationExceedsPolicy { .. } => {
                Self::Unprocessable { field: Some("duration_ms".into()), detail }
            }
            ChaincodeError::Storage(_) | ChaincodeError::Corrupt { .. } => Self::Internal(detail),
            ChaincodeError::WrongNetwork { .. }
            | ChaincodeError::UnknownOrg(_)
            | ChaincodeError::BadSignature { .. }
            | ChaincodeError::OutsideTimeWindow { .. } => Self::BadRequest { field: None, detail },
            _ => Self::Conflict(detail),
        }
    }
}

/// serde names the culprit as "missing field `x`", "unknown field `x`" or a
/// path prefix "a.b: ..."; the problem's `field` carries it.
fn field_of(text: &str) -> Option<String> {
    let msg = text.split("target type: ").nth(1).unwrap_or(text);
    if let Some(rest) = msg.split("field `").nth(1) {
        return rest.split('`').next().map(String::from);
    }
    let path = msg.split(": ").next()?;
    (!path.contains(' ')).then(|| path.to_string())
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let text = r.body_text();
        match r {
            JsonRejection::JsonDataError(_) => Self::Unprocessable { field: field_of(&text), detail: text },
            JsonRejection::JsonSyntaxError(_) => {
                Self::BadRequest { field: Some("body".into()), detail: format!("malformed JSON: {text}") }
            }
            JsonRejection::MissingJsonContentType(_) => {
                Self::BadRequest { field: Some("content-type".into()), detail: text }
            }
            JsonRejection::BytesRejection(_) => Self::TooLarge(text),
            _ => Self::BadRequest { field: None, detail: text },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        let field = match &self {
            Self::BadRequest { field, .. } | Self::Unprocessable { field, .. } => field.clone(),
            _ => None,
        };
        let body = Problem {
            kind: kind.into(),
            title: title.into(),
            status: status.as_u16(),
            detail: self.to_string(),
            field,
        };
        let json = serde_json::to_vec(&body).expect("problem serialises");
        (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], json).into_response()
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Error bodies longer than this are cut when rewritten.
const MAX_REWRITTEN_BYTES: usize = 16 * 1024;

/// Every error leaves as problem+json, the ones axum itself produces too: a
/// body over the limit, a query string or path that does not parse, no
/// such route or method. Their text becomes the `detail`, and the query
/// parameter at fault the `field`; the status and other headers are kept.
pub async fn problem_json(res: Response) -> Response {
    let status = res.status();
    let is_problem = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v == PROBLEM_JSON);
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_REWRITTEN_BYTES).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let title = status.canonical_reason().unwrap_or("Error");
    let field = match text.strip_prefix("Failed to deserialize query string: ") {
        Some(rest) => field_of(rest),
        None if text.starts_with("Invalid URL") => Some("path".into()),
        None => None,
    };
    let body = Problem {
        kind: title.to_lowercase().replace(' ', "-"),
        title: title.into(),
        status: status.as_u16(),
        detail: if text.is_empty() { title.into() } else { text },
        field,
    };
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(serde_json::to_vec(&body).expect("problem serialises")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_the_field_serde_complains_about() {
        let f = |s| super::field_of(s);
        assert_eq!(
            f("Failed to deserialize the JSON body into the target type: missing field `title` at line 1"),
            Some("title".into())
        );
        assert_eq!(
            f("Failed to deserialize the JSON body into the target type: unknown field `x`, expected one of"),
            Some("x".into())
        );
        assert_eq!(
            f("Failed to deserialize the JSON body into the target type: policy.max_lease_ms: invalid type"),
            Some("policy.max_lease_ms".into())
        );
        assert_eq!(f("limit: invalid digit found in string"), Some("limit".into()), "a query string's parameter");
    }
}
