//! What the runner may ask of its node, and nothing more: read the ledger,
//! sign and submit as this org, ask another org's node, bring a lease's
//! files in. Built from the subsystems themselves, so the runner never holds
//! the [`crate::NodeHandle`] that holds it.

use std::path::PathBuf;
use std::sync::Arc;

use leasehold_chaincode::{Lease, LeaseStatus, Payload, SignedTx};

use crate::config::NodeConfig;
use crate::consensus::Consensus;
use crate::data::plane::Fetcher;
use crate::data::DataDirs;
use crate::error::{NodeError, Result};
use crate::ledger::Ledger;
use crate::wire::compute::{ComputeReply, ComputeRequest};
use crate::wire::{Rpc, RpcReply};
use crate::write::{Writer, Written};

pub(crate) struct Node {
    cfg: NodeConfig,
    ledger: Arc<Ledger>,
    consensus: Arc<Consensus>,
    writer: Arc<Writer>,
}

impl Node {
    pub(crate) fn new(cfg: NodeConfig, ledger: Arc<Ledger>, consensus: Arc<Consensus>, writer: Arc<Writer>) -> Self {
        Self { cfg, ledger, consensus, writer }
    }

    pub(crate) fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    pub(crate) fn org(&self) -> &str {
        &self.cfg.org
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub(crate) fn ledger_now(&self) -> i64 {
        self.ledger.now_ms()
    }

    pub(crate) fn lease_status_now(&self, lease_id: &str) -> Result<Option<(Lease, LeaseStatus)>> {
        self.ledger.lease_status_now(lease_id)
    }

    pub(crate) fn sign(&self, payload: Payload) -> SignedTx {
        self.writer.sign(payload)
    }

    pub(crate) fn check(&self, tx: &SignedTx) -> Result<()> {
        self.writer.check(tx)
    }

    pub(crate) async fn write(&self, payload: Payload) -> Result<Written> {
        self.writer.write(payload).await
    }

    pub(crate) async fn write_signed(&self, tx: SignedTx) -> Result<Written> {
        self.writer.write_signed(tx).await
    }

    pub(crate) fn check_disk(&self) -> Result<()> {
        self.consensus.check_disk()
    }

    /// Asks the node of `owner`; its refusal comes back as the owner's words.
    pub(crate) async fn compute_request(&self, owner: &str, req: ComputeRequest) -> Result<ComputeReply> {
        match self.consensus.ask_org(owner, Rpc::Compute(req)).await? {
            RpcReply::Compute(Ok(reply)) => Ok(reply),
            RpcReply::Compute(Err(refusal)) => Err(refusal.into_node_error(owner)),
            _ => Err(NodeError::Peer(format!("{owner}'s node answered a different request"))),
        }
    }

    /// Brings a lease's files into this node's cache and returns their
    /// directory, verified against the ledger (see `data::plane`).
    /// `progress(done, total)` is called after each chunk.
    pub(crate) async fn fetch_lease_data(&self, lease: &Lease, progress: impl FnMut(u64, u64)) -> Result<PathBuf> {
        let dirs = DataDirs::new(&self.cfg.data_dir);
        let fetcher = Fetcher { consensus: &self.consensus, ledger: &self.ledger, dirs: &dirs };
        fetcher.fetch(lease, progress).await
    }
}
