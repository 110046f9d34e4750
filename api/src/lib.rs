//! The leasehold REST API, versioned under `/v1`.
//!
//! [`app`] builds the router over a [`NodeHandle`]; the binary serves it on
//! the node's configured address. Errors are `application/problem+json`.

mod error;
mod ledger;

use std::time::Duration;

use axum::Router;
use leasehold_node::NodeHandle;

pub use error::ApiError;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub node: NodeHandle,
}

impl AppState {
    pub fn commit_wait(&self) -> Duration {
        Duration::from_millis(self.node.config().commit_wait_ms)
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(ledger::routes())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .with_state(state)
}

/// Serves the API until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
