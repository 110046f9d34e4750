//! Ledger endpoints: status, raw transaction submission, blocks, txs.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use leasehold_chaincode::{canonical, SignedTx, TxId, Verdict};
use leasehold_node::block::Block;
use leasehold_node::{Status, Submission};
use serde::{Deserialize, Serialize};

use leasehold_node::users::Role;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// Most transactions in one submission.
const MAX_SUBMIT_TXS: usize = 10_000;
/// Most blocks in one listing.
const MAX_BLOCKS: u64 = 100;
/// Encoded blocks one listing decodes at most (it holds one block at least,
/// up to `block.max_bytes`): a page of full blocks would be hundreds of MiB.
const MAX_BLOCKS_BYTES: usize = 8 << 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/txs", post(submit))
        .route("/v1/txs/{id}", get(tx))
        .route("/v1/blocks", get(blocks))
        .route("/v1/blocks/{height}", get(block))
}

/// Public: scripts and monitors poll it without a token.
#[utoipa::path(get, path = "/v1/status", responses((status = 200, description = "org, height, head_hash, state_root, leader, peers")))]
pub async fn status(State(s): State<AppState>) -> Json<Status> {
    Json(s.node.status().await)
}

#[derive(Deserialize)]
pub struct SubmitQuery {
    wait_ms: Option<u64>,
}

/// Body: the canonical encoding of a `Vec<SignedTx>`. Answers 200 when every
/// tx committed, 202 when some are still pending.
/// How often the status stream looks for a change.
const STATUS_EVENTS_EVERY_MS: u64 = 1000;

/// The status as it changes, as server-sent `status` events: one at once,
/// then at most one a second, when something in it changed.
#[utoipa::path(get, path = "/v1/status/events", responses((status = 200, description = "text/event-stream of `status` events")), security(("bearer" = ["viewer"])))]
pub async fn status_events(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Role::Viewer)?;
    let changes = futures::stream::unfold((s, None::<String>), |(s, last)| async move {
        loop {
            if last.is_some() {
                tokio::time::sleep(Duration::from_millis(STATUS_EVENTS_EVERY_MS)).await;
            }
            let now = serde_json::to_string(&s.node.status().await).unwrap_or_default();
            if last.as_deref() != Some(now.as_str()) {
                let event = Event::default().event("status").data(now.clone());
                return Some((Ok(event), (s, Some(now))));
            }
        }
    });
    Ok(Sse::new(changes).keep_alive(KeepAlive::default()))
}

#[utoipa::path(post, path = "/v1/txs", request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 200, description = "every tx committed"), (status = 202, description = "some still pending")), security(("bearer" = ["member"])))]
pub async fn submit(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<SubmitQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<Vec<Submission>>), ApiError> {
    caller.require(Role::Member)?;
    let body = body.map_err(|e| ApiError::TooLarge(e.body_text()))?;
    let txs: Vec<SignedTx> = canonical::from_bytes(&body, "body")
        .map_err(|e| ApiError::bad("body", format!("not a canonical list of signed transactions: {e}")))?;
    if txs.is_empty() || txs.len() > MAX_SUBMIT_TXS {
        return Err(ApiError::bad("body", format!("submit 1 to {MAX_SUBMIT_TXS} transactions")));
    }
    let wait = q.wait_ms.map(std::time::Duration::from_millis).unwrap_or_else(|| s.commit_wait());
    let out = s.node.submit(txs, wait.min(std::time::Duration::from_secs(60))).await;
    let pending = out.iter().any(|o| matches!(o, Submission::Pending { .. }));
    Ok((if pending { StatusCode::ACCEPTED } else { StatusCode::OK }, Json(out)))
}

#[derive(Serialize, ToSchema)]
pub struct TxView {
    pub tx_id: String,
    pub org: String,
    pub nonce: u64,
    pub kind: &'static str,
    pub created_at_ms: i64,
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BlockView {
    pub height: u64,
    pub hash: String,
    pub prev_hash: String,
    pub time_ms: i64,
    pub proposer: String,
    pub state_root: String,
    pub txs: Vec<TxView>,
    /// Whether a majority of the orgs signed this block's header.
    pub certified: bool,
    /// The orgs' signatures on (network, height, hash, state root).
    pub certificate: Vec<CertView>,
    /// Signatures on a different block at this height: proof of divergence.
    pub conflicting: Vec<CertView>,
}

#[derive(Serialize, ToSchema)]
pub struct CertView {
    pub org: String,
    pub hash: String,
    pub state_root: String,
    pub signature: String,
}

fn cert_view(c: &leasehold_node::ledger::certs::Cert) -> CertView {
    CertView {
        org: c.org.clone(),
        hash: hex::encode(c.hash),
        state_root: hex::encode(c.state_root),
        signature: hex::encode(&c.signature),
    }
}

fn tx_view(tx: &SignedTx, verdict: &Verdict) -> TxView {
    let (valid, reason) = match verdict {
        Verdict::Valid => (true, None),
        Verdict::Invalid(r) => (false, Some(r.clone())),
    };
    TxView {
        tx_id: tx.id().to_hex(),
        org: tx.body.org.clone(),
        nonce: tx.body.nonce,
        kind: tx.body.payload.kind(),
        created_at_ms: tx.body.created_at_ms,
        valid,
        reason,
    }
}

fn block_view(b: &Block, cert: &leasehold_node::ledger::certs::Certificate) -> BlockView {
    BlockView {
        certified: cert.certified,
        certificate: cert.signatures.iter().map(cert_view).collect(),
        conflicting: cert.conflicting.iter().map(cert_view).collect(),
        height: b.header.height,
        hash: hex::encode(b.hash()),
        prev_hash: hex::encode(b.header.prev_hash),
        time_ms: b.header.time_ms,
        proposer: b.header.proposer.clone(),
        state_root: hex::encode(b.header.state_root),
        txs: b.txs.iter().zip(&b.verdicts).map(|(t, v)| tx_view(t, v)).collect(),
    }
}

#[utoipa::path(get, path = "/v1/blocks/{height}", responses((status = 200, body = BlockView), (status = 404, body = crate::error::Problem)), security(("bearer" = ["viewer"])))]
pub async fn block(
    State(s): State<AppState>,
    caller: Caller,
    Path(height): Path<u64>,
) -> Result<Json<BlockView>, ApiError> {
    caller.require(Role::Viewer)?;
    let b = s.node.block(height)?.ok_or_else(|| ApiError::NotFound(format!("no block at height {height}")))?;
    Ok(Json(block_view(&b, &s.node.certificate(height)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlocksQuery {
    from: Option<u64>,
    limit: Option<u64>,
}

/// Blocks from `from`, at most `limit` (100) and about 8 MiB of them: a
/// page may be shorter; go on from the last height plus one.
#[utoipa::path(get, path = "/v1/blocks", params(("from" = Option<u64>, Query), ("limit" = Option<u64>, Query)), responses((status = 200, body = Vec<BlockView>)), security(("bearer" = ["viewer"])))]
pub async fn blocks(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<BlocksQuery>,
) -> Result<Json<Vec<BlockView>>, ApiError> {
    caller.require(Role::Viewer)?;
    let from = q.from.unwrap_or(1).max(1);
    let limit = q.limit.unwrap_or(20).clamp(1, MAX_BLOCKS);
    let mut out = Vec::new();
    for b in s.node.blocks(from, limit, MAX_BLOCKS_BYTES)? {
        let cert = s.node.certificate(b.header.height)?;
        out.push(block_view(&b, &cert));
    }
    Ok(Json(out))
}

#[derive(Serialize, ToSchema)]
pub struct TxLookup {
    height: u64,
    index: u32,
    #[serde(flatten)]
    tx: TxView,
    /// What the signer asked, as signed: the payload with every byte
    /// string in hex, and a dataset's sealed private metadata shown only by
    /// its size.
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    /// The ed25519 signature (hex) of the body's canonical bytes, whose
    /// sha256 is `tx_id`.
    signature: String,
    network_id: String,
}

#[utoipa::path(get, path = "/v1/txs/{id}", responses((status = 200, body = TxLookup), (status = 404, body = crate::error::Problem)), security(("bearer" = ["viewer"])))]
pub async fn tx(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<TxLookup>, ApiError> {
    caller.require(Role::Viewer)?;
    let tx_id = TxId::from_hex(&id).ok_or_else(|| ApiError::bad("id", "a tx id is 64 hex characters"))?;
    let not_found = || ApiError::NotFound(format!("no committed valid transaction {id}"));
    let (b, index) = s.node.tx_block(&tx_id)?.ok_or_else(not_found)?;
    let height = b.header.height;
    let signed = &b.txs[index as usize];
    Ok(Json(TxLookup {
        height,
        index,
        tx: tx_view(signed, &b.verdicts[index as usize]),
        payload: payload_json(&signed.body.payload),
        signature: hex::encode(&signed.signature),
        network_id: signed.body.network_id.clone(),
    }))
}

/// The payload as JSON for people: byte strings (hashes, keys) as hex, and
/// sealed metadata as its size, since ciphertexts never leave through the API.
fn payload_json(payload: &leasehold_chaincode::Payload) -> serde_json::Value {
    fn walk(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Array(items) if !items.is_empty() && items.iter().all(|i| i.as_u64().is_some_and(|n| n <= 255)) => {
                Value::String(items.iter().map(|i| format!("{:02x}", i.as_u64().unwrap_or_default())).collect())
            }
            Value::Array(items) => Value::Array(items.into_iter().map(walk).collect()),
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| {
                        let v = if k == "private_metadata" { sealed(&v) } else { walk(v) };
                        (k, v)
                    })
                    .collect(),
            ),
            other => other,
        }
    }
    fn sealed(v: &serde_json::Value) -> serde_json::Value {
        let bytes = v["ciphertext"].as_array().map_or(0, Vec::len);
        serde_json::json!({ "sealed_bytes": bytes })
    }
    walk(serde_json::to_value(payload).unwrap_or_default())
}
