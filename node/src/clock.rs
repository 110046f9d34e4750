//! This node's clock. Time enters the node here; the chaincode sees only
//! block time, which the leader proposes and every node checks (`gate`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch by this node's clock.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}
