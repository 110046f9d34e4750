//! Browser sessions. A user pastes its bearer token once; the node answers
//! with an HttpOnly, SameSite=Strict cookie naming a random session, and a
//! CSRF token that the page keeps in memory and sends with every write.
//! The session holds only the hash of the user's token, so revoking the
//! user ends it at the next request; it also ends after `SESSION_TTL_MS`
//! and at logout. Nothing here is written to disk.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::header::{HeaderMap, COOKIE};
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "lh_session";
/// The header a page's write carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts from sign-in.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// Sessions held at once; past it the one closest to its end goes first.
pub const MAX_SESSIONS: usize = 4096;

/// The open sessions, by the sha256 of their cookie's value.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
}

#[derive(Clone)]
pub struct Session {
    /// The hash of the token the user signed in with.
    pub token_sha256: String,
    pub csrf: String,
    pub expires_at_ms: i64,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Opens a session for a token's hash; returns the cookie's value and
    /// the session (with its CSRF token).
    pub fn open(&self, token_sha256: String, now_ms: i64) -> (String, Session) {
        let (id, csrf) = (leasehold_node::users::new_token(), leasehold_node::users::new_token());
        let session = Session { token_sha256, csrf, expires_at_ms: now_ms.saturating_add(SESSION_TTL_MS) };
        let mut open = self.open.lock().expect("sessions lock");
        open.retain(|_, s| s.expires_at_ms > now_ms);
        while open.len() >= MAX_SESSIONS {
            let Some(first) = open.iter().min_by_key(|(_, s)| s.expires_at_ms).map(|(k, _)| *k) else { break };
            open.remove(&first);
        }
        open.insert(digest(&id), session.clone());
        (id, session)
    }

    /// The session a cookie names, while it lasts.
    pub fn find(&self, id: &str, now_ms: i64) -> Option<Session> {
        let mut open = self.open.lock().expect("sessions lock");
        let key = digest(id);
        match open.get(&key) {
            Some(s) if s.expires_at_ms > now_ms => Some(s.clone()),
            Some(_) => {
                open.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        self.open.lock().expect("sessions lock").remove(&digest(id));
    }
}

/// The value of the session cookie a request carries, if any.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

/// Equal without telling, by its time, how much of a guess was right.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
