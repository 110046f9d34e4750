//! What the fuzz targets (`fuzz/`) check, and their regression tests
//! (`node/tests/fuzz_regressions.rs`) replay: each takes bytes from anyone
//! and panics only on a defect. Decoding may fail; it may not panic, hang or
//! accept two encodings of one value.

use leasehold_chaincode::{canonical, SignedTx};

use crate::block::Block;
use crate::ledger::store::decode;
use crate::wire::{Rpc, RpcReply};
use leasehold_workflow::Workflow;

/// A client's or peer's batch of signed txs. The encoding is canonical: a
/// decoded batch encodes back to exactly the bytes it came from, so no tx
/// has a second form (a signature covers one byte string, a tx id one tx).
pub fn signed_txs(bytes: &[u8]) {
    if let Ok(txs) = canonical::from_bytes::<Vec<SignedTx>>(bytes, "fuzz") {
        assert_eq!(canonical::to_bytes(&txs), bytes, "a second encoding of {} txs decoded", txs.len());
        for tx in &txs {
            assert_eq!(SignedTx::from_bytes(&tx.to_bytes()).as_ref(), Ok(tx));
        }
    }
}

/// A block from a peer or a snapshot file: canonical like a tx, and its
/// body checked against its header without panicking.
pub fn block(bytes: &[u8]) {
    if let Ok(b) = Block::from_bytes(bytes) {
        assert_eq!(b.to_bytes(), bytes, "a second encoding of block {} decoded", b.header.height);
        let _ = b.body_matches_header();
    }
}

/// A request or reply from a peer, as the node decodes them.
pub fn rpc(bytes: &[u8]) {
    let _ = decode::<Rpc>(bytes, "fuzz rpc");
    let _ = decode::<RpcReply>(bytes, "fuzz rpc reply");
}

/// A user's workflow.yaml. A workflow that parses is a DAG whose every
/// edge names one of its jobs.
pub fn workflow(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Ok(w) = Workflow::parse(text) {
        assert!(!w.jobs.is_empty());
        let order = w.order().expect("a parsed workflow has an order");
        assert_eq!(order.len(), w.jobs.len(), "the order names each job once");
    }
}
