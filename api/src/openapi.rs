//! The OpenAPI 3 document, generated from the handlers, and a docs page.

use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "leasehold", description = "Datasets and time-limited leases on a signed, replicated ledger."),
    paths(
        crate::ledger::status, crate::ledger::submit, crate::ledger::tx, crate::ledger::blocks, crate::ledger::block,
        crate::datasets::list, crate::datasets::show, crate::datasets::create, crate::datasets::update, crate::datasets::retire,
        crate::leases::request, crate::leases::list, crate::leases::show, crate::leases::grant, crate::leases::deny,
        crate::leases::revoke, crate::leases::release, crate::leases::extend, crate::leases::metadata, crate::leases::access_log,
        crate::admin::add_user, crate::admin::history, crate::files::upload, crate::membership::show, crate::membership::approve,
        crate::runs::submit, crate::runs::list, crate::runs::show, crate::runs::cancel, crate::runs::logs, crate::runs::publish,
    ),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

const DOCS: &str = r#"<!doctype html>
<html><head><title>leasehold API</title><meta charset="utf-8"></head>
<body><script id="api-reference" data-url="/v1/openapi.json"></script>
<script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script></body></html>"#;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/v1/docs", get(|| async { Html(DOCS) }))
}
