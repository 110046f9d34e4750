//! The explorer's server side on one in-process node: browser sessions
//! (an HttpOnly, SameSite=Strict cookie; a CSRF token on every write; the
//! session ends with its user, or at sign-out), the page's files served
//! from the binary under a strict Content-Security-Policy, and the API's
//! docs with no remote script. The page itself is driven in a real browser
//! by `tests/web_explorer.rs` at the top of the repository.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::*;
use serde_json::{json, Value};
use tower::ServiceExt;

/// One request as a browser with cookie `session` sends it.
async fn browser(
    o: &Org,
    method: &str,
    path: &str,
    session: Option<&str>,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(s) = session {
        req = req.header("cookie", format!("theme=dark; lh_session={s}"));
    }
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = o.app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, axum::body::to_bytes(resp.into_body(), 16 << 20).await.unwrap().to_vec())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// Signs in with `token`; returns the cookie's value and the CSRF token.
async fn sign_in(o: &Org, token: &str) -> (String, String) {
    let (code, headers, body) = browser(o, "POST", "/v1/session", None, None, Some(json!({"token": token}))).await;
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let set = headers.get("set-cookie").expect("a session cookie").to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "the cookie lacks {attr}: {set}");
    }
    let id = set.split(';').next().unwrap().strip_prefix("lh_session=").expect("named lh_session").to_string();
    assert!(!id.is_empty() && id != token, "the cookie is a new secret, not the token");
    (id, json_of(&body)["csrf"].as_str().expect("a CSRF token").to_string())
}

fn dataset(id: &str) -> Value {
    json!({"id": id, "title": id, "policy": {"allowed_orgs": [], "max_lease_ms": 60_000}, "private_metadata": {}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_is_an_httponly_cookie_and_each_write_needs_its_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let o = &one_node(dir.path()).await;

    let (code, headers, _) = browser(o, "POST", "/v1/session", None, None, Some(json!({"token": "lh_nope"}))).await;
    assert_eq!(code, 401);
    assert!(headers.get("set-cookie").is_none(), "a wrong token opens no session");

    let (session, csrf) = sign_in(o, &o.admin).await;
    let (code, _, body) = browser(o, "GET", "/v1/session", Some(&session), None, None).await;
    assert_eq!((code, json_of(&body)["csrf"].as_str()), (StatusCode::OK, Some(csrf.as_str())));
    assert_eq!(json_of(&body)["role"], "admin");
    let (code, _, _) = browser(o, "GET", "/v1/datasets", Some(&session), None, None).await;
    assert_eq!(code, 200, "a read needs the cookie only");

    // A write forged from another page carries the cookie but not the token.
    let height = o.node.height();
    for forged in [None, Some("lh_guess"), Some(&csrf[..csrf.len() - 1])] {
        let (code, headers, body) =
            browser(o, "POST", "/v1/datasets", Some(&session), forged, Some(dataset("forged"))).await;
        assert_eq!(code, 403, "{forged:?}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(json_of(&body)["detail"].as_str().unwrap().contains("x-csrf-token"));
    }
    assert_eq!(o.node.height(), height, "no forged write reached the ledger");
    let (code, _, body) = browser(o, "POST", "/v1/datasets", Some(&session), Some(&csrf), Some(dataset("real"))).await;
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));

    // Revoking a user ends its sessions at their next request.
    let (member, _) = sign_in(o, &o.member).await;
    assert_eq!(browser(o, "GET", "/v1/leases", Some(&member), None, None).await.0, 200);
    let (code, _, _) = browser(o, "DELETE", "/v1/users/mia", Some(&session), Some(&csrf), None).await;
    assert_eq!(code, 200);
    let (code, _, body) = browser(o, "GET", "/v1/leases", Some(&member), None, None).await;
    assert_eq!(code, 401, "{}", String::from_utf8_lossy(&body));

    // Signing out needs the token too, and ends the session.
    assert_eq!(browser(o, "DELETE", "/v1/session", Some(&session), None, None).await.0, 403);
    let (code, headers, _) = browser(o, "DELETE", "/v1/session", Some(&session), Some(&csrf), None).await;
    assert_eq!(code, 204);
    assert!(headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"), "the browser drops the cookie");
    assert_eq!(browser(o, "GET", "/v1/datasets", Some(&session), None, None).await.0, 401);
    assert_eq!(browser(o, "GET", "/v1/datasets", Some("lh_made_up"), None, None).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_from_the_binary_under_a_strict_csp() {
    let dir = tempfile::tempdir().unwrap();
    let o = &one_node(dir.path()).await;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();

    let (code, headers, page) = browser(o, "GET", "/", None, None, None).await;
    assert_eq!(code, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    for part in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(text(&page).contains(r#"<script type="module" src="/app.js">"#));

    // The page's own paths load the page; a file it lacks is a 404.
    let (code, _, body) = browser(o, "GET", "/datasets/iris", None, None, None).await;
    assert_eq!((code, text(&body)), (StatusCode::OK, text(&page)));
    for missing in ["/nope.js", "/.env", "/vendor/%2e%2e/app.js", "/v1/nope"] {
        let (code, headers, _) = browser(o, "GET", missing, None, None, None).await;
        assert_eq!(code, 404, "{missing}");
        assert_eq!(headers["content-type"], "application/problem+json", "{missing}");
    }
    assert_eq!(browser(o, "POST", "/", None, None, None).await.0, 404, "the page takes no writes");

    // Scripts come from the node, with an ETag; none names another origin.
    let (code, headers, app) = browser(o, "GET", "/app.js", None, None, None).await;
    assert_eq!(code, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/javascript"));
    let etag = headers["etag"].to_str().unwrap().to_string();
    let req = Request::get("/app.js").header("if-none-match", &etag).body(Body::empty()).unwrap();
    assert_eq!(o.app.clone().oneshot(req).await.unwrap().status(), 304);
    let imports: Vec<String> = text(&app)
        .lines()
        .filter_map(|l| l.split(" from '").nth(1).map(|s| s.trim_end_matches("';").to_string()))
        .collect();
    assert!(imports.len() >= 5, "{imports:?}");
    for module in imports {
        let path = format!("/{}", module.trim_start_matches("./"));
        let (code, _, body) = browser(o, "GET", &path, None, None, None).await;
        assert_eq!(code, 200, "{path}");
        // The SVG namespace is a name, not an address anything loads.
        let body = text(&body).replace("http://www.w3.org/2000/svg", "");
        assert!(!body.contains("https://") && !body.contains("http://"), "{path} names another origin");
    }

    // The API's docs: drawn by the node's own script, no CDN.
    let (code, headers, docs) = browser(o, "GET", "/v1/docs", None, None, None).await;
    assert_eq!(code, 200);
    assert!(headers.contains_key("content-security-policy"));
    assert!(text(&docs).contains(r#"src="/docs.js""#) && !text(&docs).contains("https://"), "{}", text(&docs));
    let (code, _, doc) = browser(o, "GET", "/v1/openapi.json", None, None, None).await;
    assert_eq!(code, 200);
    assert!(json_of(&doc)["paths"]["/v1/session"]["post"].is_object(), "sign-in is documented");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_streams_to_a_signed_in_viewer() {
    let dir = tempfile::tempdir().unwrap();
    let o = &one_node(dir.path()).await;
    assert_eq!(browser(o, "GET", "/v1/status/events", None, None, None).await.0, 401);
    let req = Request::get("/v1/status/events")
        .header("authorization", format!("Bearer {}", o.viewer))
        .body(Body::empty())
        .unwrap();
    let resp = o.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut stream = resp.into_body().into_data_stream();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), futures::StreamExt::next(&mut stream))
        .await
        .expect("the first event at once")
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&first);
    assert!(first.starts_with("event: status\n"), "{first}");
    let data = first.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(data).unwrap()["org"], "org1");
}
