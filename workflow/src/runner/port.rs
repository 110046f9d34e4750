//! What the runner may ask of its node, and nothing more: read the ledger,
//! sign and submit as this org, ask another org's node about a compute
//! run, bring a lease's files in, and find the org's own. The node
//! implements it over its subsystems; tests implement it over a
//! [`leasehold_chaincode::MemState`].

use std::path::PathBuf;

use leasehold_chaincode::{ChaincodeError, Hash32, Lease, LeaseStatus, Payload, SignedTx, StateRead};

use super::wire::{ComputeReply, ComputeRequest};
use super::Result;
use crate::secrets::SecretEnv;

/// A transaction the node accepted.
#[derive(Debug, Clone)]
pub struct Written {
    pub tx_id: String,
    /// `None` while pending: accepted for ordering but not committed in time.
    pub height: Option<u64>,
}

/// Called with (bytes done, bytes in all) as a lease's files come in.
pub type Progress<'a> = &'a mut (dyn FnMut(u64, u64) + Send);

#[async_trait::async_trait]
pub trait Port: Send + Sync + 'static {
    /// The org this node is.
    fn org(&self) -> &str;

    /// The committed state: what `leasehold_chaincode::query` reads.
    fn state(&self) -> &dyn StateRead;

    /// The ledger's time now: the last block's, never this host's clock.
    fn ledger_now_ms(&self) -> i64;

    /// A lease and its status at the ledger's time now.
    fn lease_status_now(&self, lease_id: &str) -> Result<Option<(Lease, LeaseStatus)>>;

    /// Signs as this org, without submitting.
    fn sign(&self, payload: Payload) -> SignedTx;

    /// Whether `tx` is signed by a key of the org it names, on the roster now.
    fn verify_signature(&self, tx: &SignedTx) -> std::result::Result<(), ChaincodeError>;

    /// Whether the ledger would take `tx` now (a dry run).
    fn check(&self, tx: &SignedTx) -> Result<()>;

    /// Signs as this org and submits; waits a while for the commit.
    async fn write(&self, payload: Payload) -> Result<Written>;

    /// Submits a transaction another org signed.
    async fn write_signed(&self, tx: SignedTx) -> Result<Written>;

    /// Refuses when the node's disk is below its reserve.
    fn check_disk(&self) -> Result<()>;

    /// Asks the node of `owner` about a compute run; its refusal comes back
    /// as an error in the owner's words.
    async fn compute_request(&self, owner: &str, req: ComputeRequest) -> Result<ComputeReply>;

    /// Brings a lease's files into this node's cache, verified against the
    /// ledger, and returns their directory.
    async fn fetch_lease_data(&self, lease: &Lease, progress: Progress<'_>) -> Result<PathBuf>;

    /// Whether this org holds the files of its own dataset version, on its
    /// disk or in its object store (their manifest is written last).
    fn holds_own_files(&self, dataset: &str, content_hash: &Hash32) -> bool;

    /// The directory of this org's own files of a dataset version: in its
    /// store, or brought in from its object store first, each chunk checked.
    async fn own_dataset_files(&self, dataset: &str, content_hash: &Hash32, progress: Progress<'_>) -> Result<PathBuf>;

    /// Deletes the cached files of every lease that is no longer active.
    fn delete_ended_caches(&self);

    /// The values of this org's secrets named `names`, opened from the
    /// node's sealed store; a name not stored is the fault of the field
    /// `secrets[i]` that names it.
    fn secrets(&self, names: &[String]) -> Result<SecretEnv>;
}
