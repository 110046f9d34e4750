//! The leasehold REST API, versioned under `/v1`, and the data explorer
//! page at `/` (`ui`), which uses the same routes.
//!
//! [`app`] builds the router over an [`AppState`]; the binary serves it on
//! the node's configured address. Every error is `application/problem+json`.
//! The API acts for its own org only and holds no key: metadata is sealed
//! and disclosed by the node (`leasehold_node::disclose`), and a lessee's
//! read is answered by the owner's node.

mod admin;
mod auth;
mod datasets;
mod error;
mod files;
mod leases;
mod ledger;
mod membership;
pub mod openapi;
mod orgs;
mod outputs;
mod publications;
mod runs;
mod secrets;
pub mod session;
pub mod signin;
pub mod ui;
mod views;
mod workspace;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use leasehold_node::users::UserStore;
use leasehold_node::NodeHandle;

pub use error::{ApiError, Problem};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub node: NodeHandle,
    pub users: Arc<UserStore>,
    pub sessions: Arc<session::Sessions>,
    /// Where the explorer's files come from.
    pub ui: ui::UiFiles,
}

impl AppState {
    pub fn new(node: NodeHandle) -> Result<Self, ApiError> {
        let cfg = node.config();
        Ok(Self {
            users: Arc::new(UserStore::new(&cfg.data_dir)),
            sessions: Default::default(),
            ui: ui::UiFiles::Embedded,
            node,
        })
    }

    pub fn commit_wait(&self) -> Duration {
        Duration::from_millis(self.node.config().commit_wait_ms)
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(ledger::routes())
        .merge(datasets::routes())
        .merge(files::routes())
        .merge(leases::routes())
        .merge(admin::routes())
        .merge(membership::routes())
        .merge(orgs::routes())
        .merge(publications::routes())
        .merge(outputs::routes())
        .merge(workspace::routes())
        .merge(secrets::routes())
        .merge(runs::routes((state.node.config().workflow.max_bundle_mib as usize) << 20))
        .merge(openapi::routes())
        .merge(signin::routes())
        .route("/v1/status/events", axum::routing::get(ledger::status_events))
        .route("/metrics", axum::routing::get(metrics))
        .fallback(ui::fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), refuse_writes_on_a_full_disk))
        .layer(axum::middleware::map_response(error::problem_json))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(axum::middleware::from_fn(ui::security_headers))
        .with_state(state)
}

/// Prometheus metrics (OpenMetrics text), for a scraper: no
/// token, and nothing in it names a dataset, lease, run or user.
async fn metrics(axum::extract::State(s): axum::extract::State<AppState>) -> impl axum::response::IntoResponse {
    let text = tokio::task::spawn_blocking(move || s.node.metrics_text()).await.unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
}

/// Counts each request and its latency by route template, method and status.
async fn count_requests(
    axum::extract::State(s): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    // A client may send any method name: only the known ones become labels.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_string();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let seconds = started.elapsed().as_secs_f64();
    s.node.record_api_request(&route, &method, response.status().as_u16(), seconds);
    response
}

/// A request other than a read makes the node write to its disk (a tx, a
/// file, a run, a user): below the node's reserve each is refused before it
/// starts. Only a caller with a valid token learns that the disk is full;
/// others are told to authenticate, as they would be anyway.
async fn refuse_writes_on_a_full_disk(
    axum::extract::State(s): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let reads = [axum::http::Method::GET, axum::http::Method::HEAD, axum::http::Method::OPTIONS];
    if reads.contains(req.method()) {
        return next.run(req).await;
    }
    let Err(full) = s.node.check_disk() else { return next.run(req).await };
    let (mut parts, _) = req.into_parts();
    match auth::Caller::from_request_parts(&mut parts, &s).await {
        Ok(_) => ApiError::from(full).into_response(),
        Err(unauthenticated) => unauthenticated.into_response(),
    }
}

/// Serves the API until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}
