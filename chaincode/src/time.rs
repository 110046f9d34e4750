//! Block time is milliseconds since the Unix epoch, UTC. Formatting only; no
//! function here reads a clock.

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type TimeMs = i64;

/// Formats a block time as RFC 3339 in UTC, e.g. `2026-11-23T21:30:00.000Z`.
pub fn rfc3339(ms: TimeMs) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => format!("{ms} ms since epoch"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_with_millis() {
        assert_eq!(super::rfc3339(1_795_469_400_123), "2026-11-23T21:30:00.123Z");
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
