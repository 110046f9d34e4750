//! Writes go through [`NodeHandle::write`](leasehold_node::NodeHandle::write);
//! this maps its outcome to HTTP.

use axum::http::StatusCode;
use leasehold_chaincode::Payload;
pub use leasehold_node::Written;

use crate::{ApiError, AppState};

/// 201/200 once committed, 202 while pending.
pub fn status(w: &Written, created: bool) -> StatusCode {
    match (w.height, created) {
        (None, _) => StatusCode::ACCEPTED,
        (Some(_), true) => StatusCode::CREATED,
        (Some(_), false) => StatusCode::OK,
    }
}

pub async fn write(s: &AppState, payload: Payload) -> Result<Written, ApiError> {
    Ok(s.node.write(payload).await?)
}
