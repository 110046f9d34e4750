//! Every write is a signed transaction: dry-run it against the committed
//! state for a precise error, submit it, and wait (bounded) for its commit.

use axum::http::StatusCode;
use leasehold_chaincode::{BlockCtx, Overlay, Payload, Verdict};
use leasehold_node::{now_ms, Submission};

use crate::{ApiError, AppState};

pub struct Written {
    pub tx_id: String,
    /// `None` while pending.
    pub height: Option<u64>,
}

impl Written {
    /// 201/200 once committed, 202 while pending.
    pub fn status(&self, created: bool) -> StatusCode {
        match (self.height, created) {
            (None, _) => StatusCode::ACCEPTED,
            (Some(_), true) => StatusCode::CREATED,
            (Some(_), false) => StatusCode::OK,
        }
    }
}

/// The block time a transaction submitted now will most likely get.
pub fn ledger_now(s: &AppState) -> i64 {
    now_ms().max(s.node.ledger().head().time_ms)
}

pub async fn write(s: &AppState, payload: Payload) -> Result<Written, ApiError> {
    let tx = s.node.sign(payload);
    let ledger = s.node.ledger();
    let head = ledger.head();
    let ctx = BlockCtx {
        genesis: &ledger.genesis,
        height: head.height + 1,
        time_ms: ledger_now(s),
        proposer: s.node.org().into(),
    };
    let mut overlay = Overlay::new(&ledger.store);
    leasehold_chaincode::apply(&mut overlay, &tx, &ctx)?;
    let outcome = s.node.submit(vec![tx], s.commit_wait()).await.remove(0);
    match outcome {
        Submission::Committed { tx_id, receipt } => match receipt.verdict {
            Verdict::Valid => Ok(Written { tx_id, height: Some(receipt.height) }),
            // The state moved between the dry run and the block.
            Verdict::Invalid(reason) => Err(ApiError::Conflict(reason)),
        },
        Submission::Pending { tx_id } => Ok(Written { tx_id, height: None }),
        Submission::Rejected { reason, .. } => Err(ApiError::Unavailable(reason)),
    }
}
