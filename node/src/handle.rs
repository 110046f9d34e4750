//! [`NodeHandle`]: the one face of a running node. The API, the CLI and the
//! runner drive the node through it; it delegates to the subsystem that
//! owns each thing (`consensus`, `ledger`, `data`, `disclose`, `compute`).

use std::sync::Arc;
use std::time::Duration;

use leasehold_chaincode::{Payload, SignedTx, TxId};

use leasehold_chaincode::{Lease, LeaseStatus};

use crate::config::NodeConfig;
use crate::consensus::membership::MembershipStatus;
use crate::consensus::Consensus;
use crate::error::Result;
use crate::ledger::certs::Certificate;
use crate::ledger::Ledger;
use crate::write::{Submission, Writer, Written};

pub(crate) struct Inner {
    pub(crate) cfg: NodeConfig,
    pub(crate) ledger: Arc<Ledger>,
    /// Ordering: raft, the p2p client, the mempool (see `consensus`).
    pub(crate) consensus: Arc<Consensus>,
    /// Signs as this org, checks, submits and waits (see `write`).
    pub(crate) writer: Arc<Writer>,
    /// The org's X25519 secret: data keys are derived from it, here only.
    pub(crate) x25519_secret: [u8; 32],
    /// Manifests of this node's datasets, for serving chunks.
    pub(crate) manifests: crate::data::plane::Manifests,
    /// What other orgs may ask of this node at once, and how often.
    pub(crate) limits: crate::limits::PeerLimits,
    /// Reads of leased metadata waiting for their audit record.
    pub(crate) audits: crate::audit::Audits,
    /// Held while a backup is taken: one at a time.
    pub(crate) backing_up: Arc<tokio::sync::Mutex<()>>,
    /// Read while a write that names new files commits and the files are
    /// adopted; written while a backup is taken, so it holds them all.
    pub(crate) adopting: Arc<tokio::sync::RwLock<()>>,
    /// The object store clients `[s3]` configures (none without it).
    pub(crate) objects: Arc<crate::data::objects::ObjectStores>,
    /// Runs workflows; it reaches the node only through its own port.
    pub(crate) runner: Arc<leasehold_workflow::runner::Runner>,
    /// This org's job secrets, sealed at rest (see `secrets`).
    pub(crate) secrets: Arc<crate::secrets::SecretStore>,
}

/// What `start` made, for `Inner::new`: the subsystems with state of their own.
pub(crate) struct Parts {
    pub(crate) cfg: NodeConfig,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) consensus: Arc<Consensus>,
    pub(crate) writer: Arc<Writer>,
    pub(crate) x25519_secret: [u8; 32],
    pub(crate) objects: Arc<crate::data::objects::ObjectStores>,
    pub(crate) runner: Arc<leasehold_workflow::runner::Runner>,
    pub(crate) secrets: Arc<crate::secrets::SecretStore>,
}

impl Inner {
    pub(crate) fn new(p: Parts) -> Self {
        let audits = crate::audit::Audits::new(p.writer.clone());
        Self {
            cfg: p.cfg,
            ledger: p.ledger,
            consensus: p.consensus,
            writer: p.writer,
            x25519_secret: p.x25519_secret,
            manifests: Default::default(),
            limits: Default::default(),
            audits,
            backing_up: Default::default(),
            adopting: Default::default(),
            objects: p.objects,
            runner: p.runner,
            secrets: p.secrets,
        }
    }
}

/// The cloneable handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) inner: Arc<Inner>,
}

impl NodeHandle {
    pub fn config(&self) -> &NodeConfig {
        &self.inner.cfg
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.inner.ledger
    }

    pub fn org(&self) -> &str {
        &self.inner.cfg.org
    }

    /// The time a lease is judged at: the later of this node's clock and the
    /// last block's time, so a lease ends at its expiry even when no block
    /// has been cut since.
    pub fn ledger_now(&self) -> i64 {
        self.inner.ledger.now_ms()
    }

    /// Signs `payload` as this node's org with a fresh nonce.
    pub fn sign(&self, payload: Payload) -> SignedTx {
        self.inner.writer.sign(payload)
    }

    /// Submits signed transactions and waits up to `wait` for each to commit
    /// on this node (see [`Writer::submit`]).
    pub async fn submit(&self, txs: Vec<SignedTx>, wait: Duration) -> Vec<Submission> {
        self.inner.writer.submit(txs, wait).await
    }

    /// Signs `payload` as this org, checks it against the committed state
    /// (a rejection is [`crate::NodeError::Chaincode`] and nothing is
    /// submitted), submits it and waits up to `commit_wait_ms`.
    pub async fn write(&self, payload: Payload) -> Result<Written> {
        self.inner.writer.write(payload).await
    }

    /// Checks a signed tx, this org's or another's, against the committed
    /// state, as the next block would.
    pub fn check(&self, tx: &SignedTx) -> Result<()> {
        self.inner.writer.check(tx)
    }

    /// Submits a checked tx and waits up to `commit_wait_ms` for its block.
    pub async fn write_signed(&self, tx: SignedTx) -> Result<Written> {
        self.inner.writer.write_signed(tx).await
    }

    pub fn leader_org(&self) -> Option<String> {
        let leader = self.inner.consensus.leader()?;
        self.inner.ledger.roster().member(leader).map(|m| m.info.id.clone())
    }

    /// Orgs whose nodes this node is connected to.
    pub async fn connected_orgs(&self) -> Vec<String> {
        self.inner.consensus.connected_orgs().await
    }

    pub fn lookup_tx(&self, id: &TxId) -> Result<Option<(u64, u32)>> {
        self.inner.ledger.store.tx_location(id)
    }

    /// Resolves once the ledger no longer names this node's signing key as
    /// its org's (a rotation took effect): the node must stop, and start
    /// again with the new keys, for nothing it signs now counts.
    pub async fn keys_rotated(&self) {
        let mut rosters = self.inner.ledger.watch_roster();
        let mine = self.inner.writer.verifying_key();
        loop {
            // Only this node's key among its org's earlier ones is a
            // rotation: a ledger behind a joining or rotated node names an
            // older key, or none.
            let rotated = {
                let roster = rosters.borrow_and_update();
                let org = roster.members.iter().find(|m| m.info.id == self.inner.cfg.org);
                org.is_some_and(|m| m.previous.iter().any(|p| p.signing_key == mine))
            };
            if rotated {
                return;
            }
            if rosters.changed().await.is_err() {
                // The ledger is gone: the node is stopping anyway.
                std::future::pending::<()>().await;
            }
        }
    }

    pub async fn shutdown(&self) {
        self.inner.consensus.shutdown().await
    }

    /// Sends `rpc` to the node of `org` and returns its reply.
    pub(crate) async fn ask_org(&self, org: &str, rpc: crate::wire::Rpc) -> Result<crate::wire::RpcReply> {
        self.inner.consensus.ask_org(org, rpc).await
    }

    /// Whether this node has room to take a write now.
    pub fn check_disk(&self) -> Result<()> {
        self.inner.consensus.check_disk()
    }

    /// Whether `lease` is active now, by the ledger's records and the later
    /// of this node's clock and the last block's time.
    pub fn lease_status_now(&self, lease_id: &str) -> Result<Option<(Lease, LeaseStatus)>> {
        self.inner.ledger.lease_status_now(lease_id)
    }

    /// The voters as the ledger and raft see them.
    pub fn membership(&self) -> Result<MembershipStatus> {
        self.inner.consensus.membership()
    }

    /// The certificate of the block at `height`, as this node holds it.
    pub fn certificate(&self, height: u64) -> Result<Certificate> {
        crate::ledger::certs::certificate(&self.inner.ledger, height)
    }
}
