//! Ports for test nodes that no other test, and no outgoing connection, can
//! take while the test runs.
//!
//! A port the OS hands out with `bind(0)` is free only until it is released.
//! The node binds it a moment later, and in between another test process may
//! pick it too, or any outgoing connection may take it as its source port:
//! those are drawn from the same ephemeral range. A restarted node binds its
//! port again, with the same window. So tests draw ports from below the
//! ephemeral range, which outgoing connections never use, and hold a lock
//! file on each until the test ends, which keeps every other test process off
//! it. Included by path from every crate whose tests start nodes.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;

/// A port held for this test until the value is dropped.
pub struct Port {
    pub number: u16,
    _lock: File,
}

const FIRST_PORT: u16 = 20_000;

/// The lowest port the kernel uses for outgoing connections.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("leasehold-test-ports");
    std::fs::create_dir_all(&dir).expect("create the port lock directory");
    dir
}

/// `n` ports, each locked against other test processes and free right now.
pub fn reserve(n: usize) -> Vec<Port> {
    let (low, high) = (FIRST_PORT, ephemeral_low());
    assert!(high > low + 1_000, "the ephemeral port range starts at {high}; tests need ports below it above {low}");
    let span = u32::from(high - low);
    // Start where the clock points, so parallel tests rarely probe the same ports.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let start = std::process::id().wrapping_mul(7_919).wrapping_add(nanos) % span;
    let dir = lock_dir();
    let mut out = Vec::with_capacity(n);
    for k in 0..span {
        if out.len() == n {
            break;
        }
        let number = (low as u32 + (start + k) % span) as u16;
        let path = dir.join(number.to_string());
        let Ok(lock) = OpenOptions::new().create(true).truncate(false).write(true).open(&path) else { continue };
        if lock.try_lock().is_err() {
            continue; // another test holds it
        }
        if TcpListener::bind(("127.0.0.1", number)).is_err() {
            continue; // something outside the tests holds it
        }
        out.push(Port { number, _lock: lock });
    }
    assert_eq!(out.len(), n, "found only {} free ports in {low}..{high}", out.len());
    out
}
