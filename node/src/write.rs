//! Every write is a signed transaction: dry-run it against the committed
//! state for a precise error, submit it, and wait (bounded) for its commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use leasehold_chaincode::{verify_signatures, BlockCtx, Overlay, Payload, SignedTx, TxBody, TxId, Verdict};
use tokio::sync::oneshot;

use crate::clock::now_ms;
use crate::consensus::mempool::{self, Pending};
use crate::consensus::Consensus;
use crate::error::{NodeError, Result};
use crate::ledger::{Ledger, Receipt};

/// A transaction this node signed and submitted.
#[derive(Debug, Clone)]
pub struct Written {
    pub tx_id: String,
    /// `None` while pending: accepted for ordering but not committed in time.
    pub height: Option<u64>,
}

/// What became of one submitted transaction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Submission {
    /// Committed on this node; the verdict says whether it was valid.
    Committed { tx_id: String, receipt: Receipt },
    /// Accepted for ordering, but not committed within the wait.
    Pending { tx_id: String },
    /// Refused before ordering (bad signature, wrong network, duplicate, busy).
    Rejected { tx_id: String, reason: String },
}

/// Signs as this org, checks, submits and waits: what every write of the
/// node's goes through, the API's and the runner's alike.
pub(crate) struct Writer {
    org: String,
    key: SigningKey,
    nonce: AtomicU64,
    commit_wait_ms: u64,
    ledger: Arc<Ledger>,
    consensus: Arc<Consensus>,
}

impl Writer {
    pub(crate) fn new(
        org: &str,
        key: SigningKey,
        commit_wait_ms: u64,
        ledger: Arc<Ledger>,
        consensus: Arc<Consensus>,
    ) -> Self {
        let nonce = AtomicU64::new((now_ms() as u64).saturating_mul(1000));
        Self { org: org.into(), key, nonce, commit_wait_ms, ledger, consensus }
    }

    /// This node's signing key, as the roster would name it.
    pub(crate) fn verifying_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Microseconds since the epoch, strictly increasing across calls: the
    /// convention every signer for an org follows, so that nonces from the
    /// node, the bench and other tools stay within the chaincode's window.
    fn next_nonce(&self) -> u64 {
        let now_us = now_ms() as u64 * 1000;
        let prev = self.nonce.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| Some((p + 1).max(now_us)));
        let prev = prev.unwrap_or_else(|p| p);
        (prev + 1).max(now_us)
    }

    /// Signs `payload` as this node's org with a fresh nonce.
    pub(crate) fn sign(&self, payload: Payload) -> SignedTx {
        let body = TxBody {
            network_id: self.ledger.genesis.network_id.clone(),
            org: self.org.clone(),
            nonce: self.next_nonce(),
            created_at_ms: now_ms(),
            payload,
        };
        body.sign(&self.key)
    }

    /// Submits signed transactions and waits up to `wait` for each to commit
    /// on this node. Signatures and network are checked before ordering, so
    /// a forged tx costs the network nothing; the chaincode checks them again
    /// when every node applies the block.
    pub(crate) async fn submit(&self, txs: Vec<SignedTx>, wait: Duration) -> Vec<Submission> {
        let ledger = &self.ledger;
        if let Err(e) = self.consensus.check_disk() {
            let reason = e.to_string();
            return txs
                .iter()
                .map(|t| Submission::Rejected { tx_id: t.id().to_hex(), reason: reason.clone() })
                .collect();
        }
        let roster = ledger.roster();
        let sigs = verify_signatures(&roster.orgs, &txs);
        let mut admitted = Vec::with_capacity(txs.len());
        let mut out: Vec<Option<Submission>> = vec![None; txs.len()];
        for (i, (tx, sig)) in txs.into_iter().zip(sigs).enumerate() {
            let id = tx.id();
            let reject = |reason: String| Some(Submission::Rejected { tx_id: id.to_hex(), reason });
            if tx.body.network_id != ledger.genesis.network_id {
                out[i] = reject(format!("transaction is for network {:?}", tx.body.network_id));
            } else if let Err(e) = sig {
                out[i] = reject(e.to_string());
            } else if let Ok(Some((h, _))) = ledger.store.tx_location(&id) {
                out[i] = reject(format!("transaction {id} was already committed at height {h}"));
            } else {
                let Some(pending) = mempool::sized(tx, None) else {
                    out[i] = reject(format!("transaction is larger than {} bytes", mempool::MAX_TX_BYTES));
                    continue;
                };
                ledger.checked.remember(&roster.orgs, std::iter::once(&pending.tx));
                admitted.push((i, id, pending));
            }
        }
        let waiting = self.enqueue_together(admitted, &mut out);
        let deadline = tokio::time::Instant::now() + wait;
        for (i, id, rx) in waiting {
            out[i] = Some(match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(receipt)) => Submission::Committed { tx_id: id.to_hex(), receipt },
                _ => Submission::Pending { tx_id: id.to_hex() },
            });
        }
        out.into_iter().map(|s| s.expect("every tx has an outcome")).collect()
    }

    /// Queues checked txs together, after every check of their request: a
    /// block is cut as soon as the pipeline has room, so one request's txs
    /// then usually ride in one block rather than the first few alone and
    /// the rest in the next. Returns each queued tx's receipt to wait for;
    /// a tx the full mempool refuses gets its outcome in `out`.
    fn enqueue_together(
        &self,
        admitted: Vec<(usize, TxId, Pending)>,
        out: &mut [Option<Submission>],
    ) -> Vec<(usize, TxId, oneshot::Receiver<Receipt>)> {
        let admitted: Vec<_> = admitted.into_iter().map(|(i, id, p)| (i, id, p, self.ledger.wait_for(id))).collect();
        let mut waiting = Vec::with_capacity(admitted.len());
        for (i, id, pending, rx) in admitted {
            if self.consensus.enqueue_own(pending) {
                waiting.push((i, id, rx));
            } else {
                let reason = "the node is overloaded; retry later".into();
                out[i] = Some(Submission::Rejected { tx_id: id.to_hex(), reason });
            }
        }
        waiting
    }

    /// Signs `payload` as this org, checks it against the committed state
    /// (a rejection is [`NodeError::Chaincode`] and nothing is submitted),
    /// submits it and waits up to `commit_wait_ms`.
    pub async fn write(&self, payload: Payload) -> Result<Written> {
        let tx = self.sign(payload);
        self.check(&tx)?;
        self.write_signed(tx).await
    }

    /// Checks a signed tx, this org's or another's, against the committed
    /// state, as the next block would: a rejection is [`NodeError::Chaincode`].
    pub fn check(&self, tx: &SignedTx) -> Result<()> {
        let ledger = &self.ledger;
        let roster = ledger.roster();
        let ctx = BlockCtx {
            genesis: &roster.orgs,
            height: ledger.head().height + 1,
            time_ms: self.ledger.now_ms(),
            proposer: self.org.clone(),
        };
        leasehold_chaincode::apply(&mut Overlay::new(&ledger.store), tx, &ctx)?;
        Ok(())
    }

    /// Submits a checked tx and waits up to `commit_wait_ms` for its block.
    pub async fn write_signed(&self, tx: SignedTx) -> Result<Written> {
        let ledger = &self.ledger;
        let wait = Duration::from_millis(self.commit_wait_ms);
        let started = std::time::Instant::now();
        let submitted = self.submit(vec![tx], wait).await.remove(0);
        // Every wait counts, those that timed out included.
        ledger.metrics.commit_latency_s.observe(started.elapsed().as_secs_f64());
        match submitted {
            Submission::Committed { tx_id, receipt } => match receipt.verdict {
                Verdict::Valid => Ok(Written { tx_id, height: Some(receipt.height) }),
                // The state moved between the check and the block.
                Verdict::Invalid(reason) => Err(NodeError::Conflict(reason)),
            },
            Submission::Pending { tx_id } => Ok(Written { tx_id, height: None }),
            Submission::Rejected { reason, .. } => Err(NodeError::Unavailable(reason)),
        }
    }
}
