//! A lessee's node asks the owner's to disclose a lease's private metadata.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataRequest {
    pub lease_id: String,
    /// The lessee's user, for the audit record.
    pub reader: String,
}

/// The owner's answer: the plaintext and the record of its disclosure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Disclosure {
    pub lease_id: String,
    pub dataset_id: String,
    pub version: u32,
    pub plaintext: Vec<u8>,
    pub audit_tx_id: String,
    /// When the owner decided to answer: always before `expires_at_ms`.
    pub decided_at_ms: i64,
    pub expires_at_ms: i64,
}

/// Why the owner did not disclose.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Refusal {
    Forbidden(String),
    NotFound(String),
    Unavailable(String),
    /// Over the owner's limit for this org and lease: retry later.
    Busy(String),
}
