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

use ed25519_dalek::{Signer, Verifier};
use leasehold_chaincode::{Genesis, Hash32};
use leasehold_network::PeerId;
use rocksdb::{Direction, IteratorMode};
use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use crate::block::{head_after, Head};
use crate::error::Result;
use crate::node::Inner;
use crate::raft::Rpc;
use crate::store::{decode, encode, CF_META};
use crate::NodeHandle;

/// Heights signed per message at most, so a node far behind catches up in
/// bounded messages.
const MAX_CERTS_PER_MESSAGE: usize = 512;

/// One org's signature on one block's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {
    pub org: String,
    pub height: u64,
    pub hash: Hash32,
    pub state_root: Hash32,
    pub signature: Vec<u8>,
}

fn signed_bytes(network_id: &str, height: u64, hash: &Hash32, state_root: &Hash32) -> Vec<u8> {
    encode(&("leasehold/block-certificate/v1", network_id, height, hash, state_root))
}

impl Cert {
    /// `org`'s signature, with `key`, on a block header.
    pub fn signed(
        network_id: &str,
        org: &str,
        key: &ed25519_dalek::SigningKey,
        height: u64,
        hash: Hash32,
        state_root: Hash32,
    ) -> Self {
        let signature = key.sign(&signed_bytes(network_id, height, &hash, &state_root)).to_bytes().to_vec();
        Self { org: org.into(), height, hash, state_root, signature }
    }

    fn sign(inner: &Inner, head: &Head) -> Self {
        let network = &inner.ledger.genesis.network_id;
        Self::signed(network, &inner.cfg.org, &inner.key, head.height, head.hash, head.state_root.0)
    }

    /// Where it is stored in `meta`: `cert/{height:020}/{org}/{hash}`.
    pub fn key(&self) -> Vec<u8> {
        let mut key = org_prefix(self.height, &self.org);
        key.extend(hex::encode(self.hash).into_bytes());
        key
    }

    /// Whether the signature is `org`'s over these fields.
    pub fn verify(&self, genesis: &Genesis) -> bool {
        let Some(org) = genesis.org(&self.org) else { return false };
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&org.signing_key) else { return false };
        let Ok(sig) = <[u8; 64]>::try_from(self.signature.as_slice()) else { return false };
        let bytes = signed_bytes(&genesis.network_id, self.height, &self.hash, &self.state_root);
        key.verify(&bytes, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
    }
}

/// Distinct hashes kept per org and height: its real one and one proof.
const MAX_SIGNED_PER_HEIGHT: usize = 2;

/// Where every certificate on blocks at `height` is stored.
pub(crate) fn height_prefix(height: u64) -> Vec<u8> {
    format!("cert/{height:020}/").into_bytes()
}

fn org_prefix(height: u64, org: &str) -> Vec<u8> {
    let mut prefix = height_prefix(height);
    prefix.extend(format!("{org}/").into_bytes());
    prefix
}

/// Keeps `cert` beside what its org signed before at that height, never
/// replacing it: an org cannot erase evidence by signing again.
fn store_cert(inner: &Inner, cert: &Cert) -> Result<()> {
    let store = &inner.ledger.store;
    let prefix = org_prefix(cert.height, &cert.org);
    let key = cert.key();
    let held = store
        .db()
        .iterator_cf(store.cf(CF_META), IteratorMode::From(&prefix, Direction::Forward))
        .take_while(|i| i.as_ref().is_ok_and(|(k, _)| k.starts_with(&prefix)))
        .count();
    if held < MAX_SIGNED_PER_HEIGHT && store.db().get_pinned_cf(store.cf(CF_META), &key)?.is_none() {
        store.db().put_cf(store.cf(CF_META), key, encode(cert))?;
    }
    Ok(())
}

/// Certificates for heights this far past this node's head are refused, so
/// a peer cannot fill the store with signatures on blocks that do not exist.
const MAX_HEIGHTS_AHEAD: u64 = 10_000;

/// Signs every block applied since the last one signed, and sends the
/// signatures to every other node.
pub(crate) async fn run(inner: Arc<Inner>) {
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
                Ok(Some(b)) => certs.push(Cert::sign(&inner, &head_after(&b))),
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
            if let Err(e) = store_cert(&inner, c) {
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

fn broadcast(inner: &Arc<Inner>, certs: Vec<Cert>) {
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

/// Why a node refused another's block certificates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum CertRefusal {
    #[error("unknown peer")]
    UnknownPeer,
    #[error("{0}")]
    NotStored(String),
}

/// Keeps a peer's signatures: each must be the sending org's own and
/// verify. One on a different hash than this node's block at that height is
/// evidence of divergence, logged with both hashes.
pub(crate) fn accept(inner: &Inner, peer: PeerId, certs: Vec<Cert>) -> std::result::Result<(), CertRefusal> {
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
        store_cert(inner, c).map_err(|e| CertRefusal::NotStored(e.to_string()))?;
    }
    Ok(())
}

/// A block's certificate as this node holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Signatures on this node's block at that height.
    pub signatures: Vec<Cert>,
    /// Whether a majority of the orgs active at its height signed it.
    pub certified: bool,
    /// Signatures on a different block at that height: proof of divergence.
    pub conflicting: Vec<Cert>,
}

impl NodeHandle {
    pub fn certificate(&self, height: u64) -> Result<Certificate> {
        let store = &self.inner.ledger.store;
        let prefix = height_prefix(height);
        let mine = store.block(height)?.map(|b| head_after(&b));
        let (mut signatures, mut conflicting) = (Vec::new(), Vec::new());
        for item in store.db().iterator_cf(store.cf(CF_META), IteratorMode::From(&prefix, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let c: Cert = decode(&v, "block certificate")?;
            match &mine {
                Some(m) if m.hash == c.hash && m.state_root.0 == c.state_root => signatures.push(c),
                _ => conflicting.push(c),
            }
        }
        // The majority is of the orgs active at that height.
        // Only a key its org had at that height counts (one kept from
        // before this node applied a rotation may be an old key's).
        let roster = self.inner.ledger.roster_at(height);
        signatures.retain(|c| c.verify(&roster.orgs));
        let certified = signatures.len() > roster.orgs.orgs.len() / 2;
        Ok(Certificate { signatures, certified, conflicting })
    }
}
