//! The data explorer: a page served by every node at `/`, from files built
//! into the binary (`api/ui/`: Preact and htm, vendored, as ES modules; no
//! bundler, no CDN), or from a directory while developing (`--ui-dir`).
//! Every response carries a strict Content-Security-Policy: scripts, styles
//! and requests from this node only, no inline script, no frames.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

use crate::AppState;

#[derive(RustEmbed)]
#[folder = "ui/"]
struct Assets;

/// Where the page's files come from.
#[derive(Clone, Debug, Default)]
pub enum UiFiles {
    /// Built into the binary.
    #[default]
    Embedded,
    /// Read from a directory at each request, for editing the page.
    Dir(PathBuf),
}

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page's own headers, on every response of the node's API too.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// Any path no route took: under `/v1` a 404 (problem+json, like every
/// error); elsewhere a file of the page, or the page itself, so that its
/// own paths (`/datasets/x`) load it.
pub async fn fallback(State(s): State<AppState>, method: Method, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/v1/") || path == "/v1" || path == "/metrics" || ![Method::GET, Method::HEAD].contains(&method)
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    let name = path.trim_start_matches('/');
    let last = name.rsplit('/').next().unwrap_or_default();
    let found = match file(&s.ui, name) {
        Some(f) => Some((name.to_string(), f)),
        // A path of the page's own, not a file: the page routes it.
        None if !last.contains('.') => file(&s.ui, "index.html").map(|f| ("index.html".to_string(), f)),
        None => None,
    };
    let Some((name, body)) = found else { return StatusCode::NOT_FOUND.into_response() };
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..16]));
    let fresh = headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let common = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, "no-cache".to_string()),
        (header::CONTENT_TYPE, content_type(&name).to_string()),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, body.into_owned()).into_response()
}

/// `/v1/docs`: the API's documentation, drawn by the page's own script
/// from `/v1/openapi.json`, so it works with no internet.
pub async fn docs(State(s): State<AppState>) -> Response {
    match file(&s.ui, "docs.html") {
        Some(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body.into_owned()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn file(from: &UiFiles, name: &str) -> Option<Cow<'static, [u8]>> {
    // Hidden files, empty segments and `..` name nothing the page serves.
    if name.is_empty() || name.split('/').any(|seg| seg.is_empty() || seg.starts_with('.')) {
        return None;
    }
    match from {
        UiFiles::Embedded => Assets::get(name).map(|f| f.data),
        UiFiles::Dir(dir) => read_under(dir, name).map(Cow::Owned),
    }
}

fn read_under(dir: &Path, name: &str) -> Option<Vec<u8>> {
    let path = dir.join(name);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    // Only regular files, and none bigger than a page's file could be.
    (meta.is_file() && meta.len() <= 8 << 20).then(|| std::fs::read(&path).ok()).flatten()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}
