//! Disclosure of a lease's private metadata. The ledger holds the metadata
//! sealed under a key only the owner's node can derive ([`crate::crypto`]),
//! so the owner's node alone decides each read, at the moment of the read,
//! the way it serves file chunks:
//!
//! 1. the lessee's node asks the owner's node over the permissioned network;
//! 2. the owner checks that the lease is active and held by the asking
//!    peer's org, and that the dataset is read as files (a compute
//!    dataset's metadata is never disclosed);
//! 3. it commits the audit record (`RecordReads`: org, user, lease,
//!    version, block time, and how many reads it stands for: those of one
//!    user that waited together, see [`crate::audit`]), which the chaincode
//!    accepts only while the lease is active at that block's time;
//! 4. it checks the lease again after the commit, at the later of its clock
//!    and the last block time, and only then decrypts and answers.
//!
//! The lessee's node relays the answer and keeps no copy. A refusal carries
//! the owner's reason; an owner that cannot be reached discloses nothing.

use leasehold_chaincode::{query, SealedMetadata, MAX_READER_BYTES};
use leasehold_network::PeerId;

use crate::crypto;
use crate::error::{NodeError, Result};
use crate::handle::NodeHandle;
use crate::wire::disclose::{Disclosure, MetadataRequest, Refusal};
use crate::wire::{Rpc, RpcReply};

impl From<Refusal> for NodeError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Forbidden(d) => NodeError::Forbidden(d),
            Refusal::NotFound(d) => NodeError::NotFound(d),
            Refusal::Unavailable(d) => NodeError::Unavailable(d),
            Refusal::Busy(d) => NodeError::Busy(d),
        }
    }
}

impl NodeHandle {
    fn secret(&self) -> &[u8; 32] {
        &self.inner.x25519_secret
    }

    /// Seals `plaintext` as the private metadata of this org's `dataset_id`
    /// at `version`.
    pub fn seal_metadata(&self, dataset_id: &str, version: u32, plaintext: &[u8]) -> SealedMetadata {
        crypto::seal(&crypto::data_key(self.secret(), dataset_id, version), dataset_id, version, plaintext)
    }

    /// Opens this org's own dataset's metadata (an owner needs no lease).
    pub fn open_own_metadata(&self, dataset_id: &str, version: u32, sealed: &SealedMetadata) -> Result<Vec<u8>> {
        crypto::open(&crypto::data_key(self.secret(), dataset_id, version), dataset_id, version, sealed).ok_or_else(
            || {
                NodeError::Forbidden(format!(
                    "the metadata of {dataset_id}@{version} does not open with {}'s key",
                    self.org()
                ))
            },
        )
    }

    /// The lessee's side: checks what it can locally (to spare the owner a
    /// request that must fail), then asks the owner's node.
    pub async fn lease_metadata(&self, lease_id: &str, reader: &str) -> Result<Disclosure> {
        let me = self.org();
        let lease =
            self.lease(lease_id)?.ok_or_else(|| NodeError::NotFound(format!("lease {lease_id} does not exist")))?;
        if lease.lessee != me {
            return Err(NodeError::Forbidden(format!("lease {lease_id} is held by {}, not by {me}", lease.lessee)));
        }
        if let Some(reason) = lease.inactive_reason(self.ledger_now()) {
            return Err(NodeError::Forbidden(reason));
        }
        let req = Rpc::Metadata(MetadataRequest { lease_id: lease_id.into(), reader: reader.into() });
        let unreachable = |e: NodeError| {
            NodeError::Unavailable(format!("{}'s node cannot be reached ({e}); nothing was disclosed", lease.owner))
        };
        let reply = match self.ask_org(&lease.owner, req).await {
            Err(NodeError::Peer(why)) => return Err(NodeError::Peer(why)),
            other => other.map_err(unreachable)?,
        };
        match reply {
            RpcReply::Metadata(answer) => answer.map_err(NodeError::from),
            _ => Err(NodeError::Peer(format!("{}'s node answered a different request", lease.owner))),
        }
    }
}

/// The owner's side: decides one read of a lease's metadata.
pub(crate) async fn serve(
    node: &NodeHandle,
    from: PeerId,
    req: MetadataRequest,
) -> std::result::Result<Disclosure, Refusal> {
    let me = node.org().to_string();
    let id = &req.lease_id;
    let asker = node
        .inner
        .consensus
        .peers()
        .org_of_peer
        .get(&from)
        .cloned()
        .ok_or(Refusal::Forbidden("unknown peer".into()))?;
    let internal =
        |e: NodeError| Refusal::Unavailable(format!("{me} cannot read its ledger: {e}; nothing was disclosed"));
    let lease =
        node.lease(id).map_err(internal)?.ok_or_else(|| Refusal::NotFound(format!("lease {id} does not exist")))?;
    if lease.owner != me {
        return Err(Refusal::NotFound(format!("lease {id} is not on a dataset of {me}")));
    }
    if lease.lessee != asker {
        return Err(Refusal::Forbidden(format!("lease {id} is held by {}, not by {asker}", lease.lessee)));
    }
    if let Some(reason) = lease.inactive_reason(node.ledger_now()) {
        return Err(Refusal::Forbidden(reason));
    }
    // A compute dataset's private metadata is the way to its raw data (a
    // location, a password), which would outlive the lease: its lessee
    // gets only what the owner releases of its runs.
    match query::files_served(&node.inner.ledger.store, &lease.dataset_id, lease.dataset_version) {
        Ok(()) => {}
        Err(leasehold_chaincode::ChaincodeError::ComputeOnly(ds)) => {
            return Err(Refusal::Forbidden(format!(
                "dataset {ds} is compute-only: its private metadata stays at {me}'s node, and its lessees \
                 receive only the outputs {me} releases"
            )))
        }
        Err(e) => return Err(internal(e.into())),
    }
    // Refused here, before it takes a place among the audits, not by the
    // chaincode after: the whole record would fail.
    if req.reader.is_empty() || req.reader.len() > MAX_READER_BYTES {
        return Err(Refusal::Forbidden(format!("the reader's name must be 1 to {MAX_READER_BYTES} bytes")));
    }
    // Each read is on the ledger before its answer; reads that wait
    // together share one audit record (`audit`), whose limits keep a flood
    // of them from filling this node's mempool and its ledger.
    if !node.inner.limits.disclosures.take(&asker, id, std::time::Instant::now()) {
        let (burst, rate) = (crate::limits::DISCLOSURE_BURST, crate::limits::DISCLOSURES_PER_S);
        return Err(Refusal::Busy(format!(
            "{asker} reads lease {id}'s metadata at most {burst} times at once and {rate} a second; retry later"
        )));
    }
    let audit_tx_id = node.inner.audits.record(&asker, id, &req.reader).await?;
    // Decided now, after the commit, and never at or after expiry.
    let decided_at_ms = node.ledger_now();
    let lease =
        node.lease(id).map_err(internal)?.ok_or_else(|| Refusal::NotFound(format!("lease {id} does not exist")))?;
    if let Some(reason) = lease.inactive_reason(decided_at_ms) {
        return Err(Refusal::Forbidden(reason));
    }
    let version = lease.dataset_version.unwrap_or(1);
    let ds = query::dataset_version(&node.inner.ledger.store, &lease.dataset_id, version)
        .map_err(|e| internal(e.into()))?
        .ok_or_else(|| Refusal::NotFound(format!("dataset {}@{version} is not on the ledger", lease.dataset_id)))?;
    let plaintext = node
        .open_own_metadata(&ds.id, version, &ds.spec.private_metadata)
        .map_err(|e| Refusal::Unavailable(e.to_string()))?;
    Ok(Disclosure {
        lease_id: id.clone(),
        dataset_id: ds.id,
        version,
        plaintext,
        audit_tx_id,
        decided_at_ms,
        expires_at_ms: lease.expires_at_ms.unwrap_or_default(),
    })
}
