//! Every write is a signed transaction: dry-run it against the committed
//! state for a precise error, submit it, and wait (bounded) for its commit.

use leasehold_chaincode::{BlockCtx, Overlay, Payload, SignedTx, Verdict};

use crate::error::{NodeError, Result};
use crate::{NodeHandle, Submission};

/// A transaction this node signed and submitted.
#[derive(Debug, Clone)]
pub struct Written {
    pub tx_id: String,
    /// `None` while pending: accepted for ordering but not committed in time.
    pub height: Option<u64>,
}

impl NodeHandle {
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
        let ledger = self.ledger();
        let roster = ledger.roster();
        let ctx = BlockCtx {
            genesis: &roster.orgs,
            height: ledger.head().height + 1,
            time_ms: self.ledger_now(),
            proposer: self.org().into(),
        };
        leasehold_chaincode::apply(&mut Overlay::new(&ledger.store), tx, &ctx)?;
        Ok(())
    }

    /// Submits a checked tx and waits up to `commit_wait_ms` for its block.
    pub async fn write_signed(&self, tx: SignedTx) -> Result<Written> {
        let ledger = self.ledger();
        let wait = std::time::Duration::from_millis(self.config().commit_wait_ms);
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
