//! The OpenAPI 3 document, generated from the handlers; `/v1/docs` draws it
//! (the explorer's `docs.html`, with no remote script).

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

/// Every error is `application/problem+json` (`Problem`). Which ones an
/// operation can answer follows from its shape, so they are documented from
/// it rather than by hand on each handler, where they would drift.
struct Problems;

impl Modify for Problems {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            let ops = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.patch, true),
                (&mut item.delete, true),
            ];
            for (op, writes) in ops {
                if let Some(op) = op.as_mut() {
                    document_problems(op, writes);
                }
            }
        }
    }
}

fn document_problems(op: &mut utoipa::openapi::path::Operation, writes: bool) {
    use utoipa::openapi::path::ParameterIn;
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_path = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
    let has_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut codes: Vec<(&str, &str)> = Vec::new();
    if has_path || has_query || op.request_body.is_some() {
        codes.push(("400", "A malformed path, query or body; `field` names it"));
    }
    if secured {
        codes.push(("401", "No bearer token, or one this node does not know"));
        codes.push(("403", "The caller's role or org may not do this; `detail` says why"));
    }
    if has_path {
        codes.push(("404", "What the path names does not exist"));
    }
    if op.request_body.is_some() {
        codes.push(("413", "The body is larger than this operation takes"));
    }
    if op.request_body.is_some() || writes {
        codes.push(("422", "A well-formed request the rules refuse; `field` names the part"));
    }
    if writes {
        codes.push(("409", "The ledger's state does not allow it now"));
        codes.push(("503", "The node cannot do it now (no leader, overloaded, no sandbox); retry later"));
        codes.push(("507", "The node's disk is below its reserve; writes resume once space is freed"));
    }
    let problem =
        utoipa::openapi::ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name("Problem"))).build();
    // Errors a handler declares beyond its shape (a 503 when an owner's node
    // is unreachable) are problem+json too.
    for (code, response) in op.responses.responses.iter_mut() {
        if code.as_str() >= "400" && !codes.iter().any(|(c, _)| c == code) {
            let built = utoipa::openapi::ResponseBuilder::new()
                .description("See the problem's detail")
                .content("application/problem+json", problem.clone())
                .build();
            *response = built.into();
        }
    }
    for (code, why) in codes {
        let response = utoipa::openapi::ResponseBuilder::new()
            .description(why)
            .content("application/problem+json", problem.clone())
            .build();
        op.responses.responses.insert(code.into(), response.into());
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "leasehold", description = "Datasets and time-limited leases on a signed, replicated ledger."),
    paths(
        crate::ledger::status, crate::ledger::submit, crate::ledger::tx, crate::ledger::blocks, crate::ledger::block,
        crate::datasets::list, crate::datasets::show, crate::datasets::files, crate::datasets::create, crate::datasets::update, crate::datasets::retire,
        crate::leases::request, crate::leases::list, crate::leases::show, crate::leases::grant, crate::leases::deny,
        crate::leases::revoke, crate::leases::release, crate::leases::extend, crate::leases::metadata, crate::leases::access_log,
        crate::admin::add_user, crate::admin::list_users, crate::admin::revoke_user, crate::admin::history, crate::admin::backup, crate::admin::config, crate::files::upload, crate::membership::show, crate::membership::approve, crate::orgs::list, crate::orgs::propose, crate::orgs::approve, crate::orgs::deny, crate::orgs::withdraw,
        crate::runs::submit, crate::runs::list, crate::runs::show, crate::runs::cancel, crate::runs::logs, crate::runs::publish, crate::runs::approve_release, crate::runs::deny_release, crate::outputs::list, crate::outputs::file, crate::workspace::workspace, crate::secrets::set, crate::secrets::list, crate::secrets::remove,
        crate::publications::list, crate::publications::approve, crate::publications::deny,
        crate::signin::sign_in, crate::signin::show, crate::signin::sign_out, crate::ledger::status_events,
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&Bearer, &Problems)
)]
pub struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/v1/docs", get(crate::ui::docs))
}
