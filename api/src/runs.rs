//! Workflow runs: submit a `workflow.yaml`, follow its logs as server-sent
//! events, cancel it, publish its outputs as a derived dataset.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::stream::{self, Stream};
use leasehold_node::users::Role;
use leasehold_workflow::live::{LiveRun, RunRecord};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{Caller, JsonBody};
use crate::datasets::{register, NewDataset, Source};
use crate::views::{Decision, PublicationView, RunView, WriteView};
use crate::{ApiError, AppState};

/// Largest workflow.yaml accepted, in bytes.
pub const MAX_WORKFLOW_BYTES: usize = 256 * 1024;

/// `max_bundle_bytes`: the node's `workflow.max_bundle_mib`; a bundle's tar
/// may be a little larger, for its headers.
pub fn routes(max_bundle_bytes: usize) -> Router<AppState> {
    let body_limit = axum::extract::DefaultBodyLimit::max(max_bundle_bytes + max_bundle_bytes / 8 + (1 << 20));
    Router::new()
        .route("/v1/runs", get(list).post(submit).layer(body_limit))
        .route("/v1/runs/{id}", get(show))
        .route("/v1/runs/{id}/cancel", post(cancel))
        .route("/v1/runs/{id}/logs", get(logs))
        .route("/v1/runs/{id}/publish", post(publish))
        .route("/v1/releases/{id}/approve", post(approve_release))
        .route("/v1/releases/{id}/deny", post(deny_release))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SubmitQuery {
    /// Run the jobs even when a succeeded run of this node had the same
    /// workflow, bundle, environment and input versions (its outputs are
    /// otherwise reused).
    pub force: Option<bool>,
}

/// The body is a `workflow.yaml` alone (`application/yaml`), or the
/// workflow's directory as a tar (`application/x-tar`) with `workflow.yaml`
/// at its top: its files become the run's working directory, and their
/// hash is part of the workflow hash on the ledger.
#[utoipa::path(post, path = "/v1/runs",
    request_body(description = "a workflow.yaml, or a tar of the workflow's directory", content(
        (String = "application/yaml"),
        (Vec<u8> = "application/x-tar"),
    )),
    params(SubmitQuery),
    responses((status = 201, body = RunView), (status = 400, body = crate::error::Problem), (status = 422, body = crate::error::Problem), (status = 503, body = crate::error::Problem)), security(("bearer" = ["member"])))]
pub async fn submit(
    s: State<AppState>,
    caller: Caller,
    query: Result<Query<SubmitQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let user = caller.require(Role::Member)?;
    let force = query.map_err(|e| ApiError::bad("query", e.body_text()))?.force.unwrap_or(false);
    let body = body.map_err(|e| ApiError::TooLarge(e.body_text()))?;
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case("application/x-tar") {
        let record = s.node.submit_run_bundle(body.to_vec(), &user.name, force).await?;
        return Ok((StatusCode::CREATED, Json(RunView::from(&record))));
    }
    if body.len() > MAX_WORKFLOW_BYTES {
        return Err(ApiError::TooLarge(format!("a workflow.yaml is at most {MAX_WORKFLOW_BYTES} bytes")));
    }
    let yaml = std::str::from_utf8(&body).map_err(|_| ApiError::bad("body", "the workflow is not UTF-8 text"))?;
    let record = s.node.submit_run(yaml, &user.name, force).await?;
    Ok((StatusCode::CREATED, Json(RunView::from(&record))))
}

/// Runs listed at once, at most.
const MAX_RUNS: usize = 1000;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// The last id of the previous page.
    after: Option<String>,
    /// At most this many (100 by default, 1000 at most).
    limit: Option<usize>,
}

/// The runs on this node, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/runs", params(RunQuery), responses((status = 200, body = Vec<RunView>)), security(("bearer" = ["viewer"])))]
pub async fn list(s: State<AppState>, caller: Caller, q: Query<RunQuery>) -> Result<Json<Vec<RunView>>, ApiError> {
    caller.require(Role::Viewer)?;
    let mut runs = s.node.runs();
    runs.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then_with(|| a.id.cmp(&b.id)));
    let from = match &q.after {
        Some(after) => runs
            .iter()
            .position(|r| &r.id == after)
            .map(|i| i + 1)
            .ok_or_else(|| ApiError::bad("after", format!("no run {after:?} on this node to list after")))?,
        None => 0,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_RUNS);
    Ok(Json(runs.iter().skip(from).take(limit).map(RunView::from).collect()))
}

#[utoipa::path(get, path = "/v1/runs/{id}", responses((status = 200, body = RunView), (status = 404, body = crate::error::Problem)), security(("bearer" = ["viewer"])))]
pub async fn show(s: State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<RunView>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(RunView::from(&s.node.run(&id)?.record())))
}

#[utoipa::path(post, path = "/v1/runs/{id}/cancel", responses((status = 200, body = RunView), (status = 409, body = crate::error::Problem)), security(("bearer" = ["member"])))]
pub async fn cancel(s: State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<RunView>, ApiError> {
    let user = caller.require(Role::Member)?;
    Ok(Json(RunView::from(&s.node.cancel_run(&id, &user.name)?)))
}

/// Releases a compute run's outputs to the org that asked for it (the
/// executing owner's admin only; recorded on the ledger).
#[utoipa::path(post, path = "/v1/releases/{id}/approve", request_body = Decision, responses((status = 200, body = RunView), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn approve_release(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(d): JsonBody<Decision>,
) -> Result<Json<RunView>, ApiError> {
    decide(s, caller, id, true, d).await
}

/// Refuses a compute run's outputs, with a reason; they never leave this node.
#[utoipa::path(post, path = "/v1/releases/{id}/deny", request_body = Decision, responses((status = 200, body = RunView), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn deny_release(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(d): JsonBody<Decision>,
) -> Result<Json<RunView>, ApiError> {
    decide(s, caller, id, false, d).await
}

async fn decide(
    s: State<AppState>,
    caller: Caller,
    id: String,
    approve: bool,
    d: Decision,
) -> Result<Json<RunView>, ApiError> {
    let user = caller.require(Role::Admin)?;
    if !approve && d.reason.trim().is_empty() {
        return Err(ApiError::invalid("reason", "a refusal says why"));
    }
    let reason = if d.reason.is_empty() { format!("approved by {}", user.name) } else { d.reason };
    Ok(Json(RunView::from(&s.node.decide_release(&id, approve, &reason).await?)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// The first line's sequence number (default 0); `Last-Event-ID` resumes after it.
    from: Option<u64>,
}

/// Each line is an event `log` whose id is its sequence number and whose
/// data is the line as JSON; the stream ends with one event `end` carrying
/// the run's final record.
#[utoipa::path(get, path = "/v1/runs/{id}/logs", params(LogQuery), responses((status = 200, content_type = "text/event-stream", body = String)), security(("bearer" = ["viewer"])))]
pub async fn logs(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Role::Viewer)?;
    let run = s.node.run(&id)?;
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()?.parse::<u64>().ok()).map(|n| n + 1);
    let from = resume.or(q.from).unwrap_or(0);
    Ok(Sse::new(follow(run, from)).keep_alive(KeepAlive::default()))
}

/// Log text read per batch while following a run.
const FOLLOW_BATCH_BYTES: usize = 256 * 1024;

/// Sends what is there, waits for more, and ends once the run has ended
/// and every line is out. Lines come in batches, read off the runtime's
/// threads, since an ended run's lines are read from its file.
fn follow(run: Arc<LiveRun>, from: u64) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = (from, run.watch(), std::collections::VecDeque::new());
    stream::unfold(Some(start), move |state| {
        let run = run.clone();
        async move {
            let (mut next, mut changes, mut batch) = state?;
            loop {
                if let Some(line) = batch.pop_front() {
                    let line: leasehold_workflow::live::LogLine = line;
                    next = line.seq + 1;
                    let event = Event::default().event("log").id(line.seq.to_string()).json_data(&line).ok()?;
                    return Some((Ok(event), Some((next, changes, batch))));
                }
                changes.borrow_and_update();
                let ended = run.record().status.is_final();
                let r = run.clone();
                batch = tokio::task::spawn_blocking(move || r.read_lines(next, FOLLOW_BATCH_BYTES)).await.ok()?.into();
                if !batch.is_empty() {
                    continue;
                }
                if ended {
                    let end = Event::default().event("end").json_data(RunView::from(&run.record())).ok()?;
                    return Some((Ok(end), None));
                }
                changes.changed().await.ok()?;
            }
        }
    })
}

/// Publishes a succeeded run's outputs as a dataset derived from its inputs.
/// When an input's owner must approve it (`derived: owner_approval`), it
/// answers 202 with the pending publication (`/v1/publications`).
#[utoipa::path(post, path = "/v1/runs/{id}/publish", request_body = NewDataset,
    responses((status = 201, body = WriteView), (status = 202, body = WriteView), (status = 409, body = crate::error::Problem)), security(("bearer" = ["admin"])))]
pub async fn publish(
    s: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<NewDataset>,
) -> Result<(StatusCode, Json<WriteView>), ApiError> {
    caller.require(Role::Admin)?;
    let (record, _): (RunRecord, _) = s.node.publishable_run(&id)?;
    // Adopted into the store on success; dropped (and deleted) otherwise.
    let outputs = s.node.run_outputs(&id).await?;
    let (status, Json(view), dataset) =
        register(&s, req, Source::RunOutput { run_id: record.id.clone(), outputs }).await?;
    // A pending publication may yet be refused, and the run published again.
    if let Some(p) = s.node.publication(&dataset)? {
        let pending = WriteView { resource: serde_json::to_value(PublicationView::from(&p)).ok(), ..view };
        return Ok((StatusCode::ACCEPTED, Json(pending)));
    }
    s.node.mark_published(&id, &dataset)?;
    Ok((status, Json(view)))
}
