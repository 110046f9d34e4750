//! Block certificates. After applying a block, each node signs its header
//! (network, height, hash, state root) with its org's key and sends the
//! signature to the others. A block is certified once a majority of orgs
//! have signed the same hash. A signature on a different hash at the same
//! height proves that the signer's chain and this node's have diverged: it
//! is logged at once and kept as evidence.
//!
//! Certificates live in the `meta` column family under
//! `cert/{height:020}/{org}/{hash}`, outside the block's write batch: they
//! are evidence about blocks, not part of them. Every distinct hash an org
//! signs at a height is kept (two at most): a second is proof that it
//! signed two blocks at one height.

use std::sync::Arc;
use std::time::Duration;

use leasehold_network::PeerId;
use tracing::{error, warn};

use super::Consensus;
use crate::block::{head_after, Head};
use crate::ledger::certs::{store_cert, Cert};
use crate::ledger::store::{encode, CF_META};
use crate::wire::CertRefusal;
use crate::wire::Rpc;

/// Heights signed per message at most, so a node far behind catches up in
/// bounded messages.
const MAX_CERTS_PER_MESSAGE: usize = 512;

/// Certificates for heights this far past this node's head are refused, so
/// a peer cannot fill the store with signatures on blocks that do not exist.
const MAX_HEIGHTS_AHEAD: u64 = 10_000;

/// Signs every block applied since the last one signed, and sends the
/// signatures to every other node.
pub(crate) async fn run(inner: Arc<Consensus>) {
    let mut heads = inner.ledger.watch_head();
    let mut signed = inner.ledger.head().height.saturating_sub(1);
    loop {
        let head = *heads.borrow_and_update();
        let mut certs = Vec::new();
        // A snapshot's last block was checked against its state; the blocks
        // below it were not applied here, so this node does not sign them.
        let installed_at: u64 = inner.ledger.store.get(CF_META, b"installed_at").ok().flatten().unwrap_or(0);
        signed = signed.max(installed_at.saturating_sub(1));
        for h in (signed + 1)..=head.height {
            // After a rotation this node's old key speaks for nobody.
            let mine = inner.key.verifying_key().to_bytes();
            if !inner.ledger.roster_at(h).is_key_of(&inner.cfg.org, &mine) {
                continue;
            }
            match inner.ledger.store.block(h) {
                Ok(Some(b)) => certs.push(sign(&inner, &head_after(&b))),
                Ok(None) => {}
                Err(e) => warn!(height = h, "cannot read a block to certify it: {e}"),
            }
            if certs.len() == MAX_CERTS_PER_MESSAGE {
                break;
            }
        }
        // Every height up to here was tried, signed or not (below a
        // snapshot, or unreadable): never retried in a loop.
        signed = certs.last().map_or(head.height, |c| c.height.max(signed));
        if certs.len() < MAX_CERTS_PER_MESSAGE {
            signed = head.height;
        }
        for c in &certs {
            if let Err(e) = store_cert(&inner.ledger.store, c) {
                warn!(height = c.height, "cannot keep this node's certificate: {e}");
            }
        }
        if !certs.is_empty() {
            broadcast(&inner, certs);
        }
        if signed >= head.height && heads.changed().await.is_err() {
            return;
        }
        // A burst of blocks is signed together rather than one by one.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// This node's signature on a block it applied.
fn sign(inner: &Consensus, head: &Head) -> Cert {
    let network = &inner.ledger.genesis.network_id;
    Cert::signed(network, &inner.cfg.org, &inner.key, head.height, head.hash, head.state_root.0)
}

fn broadcast(inner: &Arc<Consensus>, certs: Vec<Cert>) {
    let bytes = encode(&Rpc::Certify(certs));
    for (node, peer) in &inner.peers().peer_of_node {
        if *node == inner.node_id {
            continue;
        }
        let (net, peer, bytes) = (inner.net.clone(), *peer, bytes.clone());
        tokio::spawn(async move {
            let _ = net.request(peer, bytes).await;
        });
    }
}

/// Keeps a peer's signatures: each must be the sending org's own and
/// verify. One on a different hash than this node's block at that height is
/// evidence of divergence, logged with both hashes.
pub(crate) fn accept(inner: &Consensus, peer: PeerId, certs: Vec<Cert>) -> std::result::Result<(), CertRefusal> {
    let peers = inner.peers();
    let org = peers.org_of_peer.get(&peer).ok_or(CertRefusal::UnknownPeer)?;
    for c in certs.iter().take(MAX_CERTS_PER_MESSAGE) {
        if c.height > inner.ledger.head().height.saturating_add(MAX_HEIGHTS_AHEAD) {
            continue;
        }
        // Only an org active at that height signs for it: a newcomer's word
        // on blocks before it joined counts for nothing.
        if &c.org != org || !c.verify(&inner.ledger.roster_at(c.height).orgs) {
            warn!(%peer, "refused a block certificate from {org}: not its own valid signature");
            continue;
        }
        if let Ok(Some(b)) = inner.ledger.store.block(c.height) {
            let mine = head_after(&b);
            if mine.hash != c.hash || mine.state_root.0 != c.state_root {
                error!(
                    height = c.height,
                    "DIVERGENCE: {org} signed block {} with state root {} at height {}, but this node holds \
                     block {} with state root {}; its signature is kept as evidence",
                    hex::encode(c.hash),
                    hex::encode(c.state_root),
                    c.height,
                    hex::encode(mine.hash),
                    mine.state_root.to_hex()
                );
            }
        }
        store_cert(&inner.ledger.store, c).map_err(|e| CertRefusal::NotStored(e.to_string()))?;
    }
    Ok(())
}
