//! Compute-to-data over the p2p network: the lessee's node hands a workflow
//! to the owner's node, follows the run, and fetches its outputs once the
//! owner released them on the ledger. The owner's node checks, at every
//! request, that the asking org is the run's (or the lease's) and what the
//! ledger says: the files of a compute dataset never travel, and nothing of
//! a run travels but what the dataset's policy releases.

use leasehold_network::PeerId;
use serde::{Deserialize, Serialize};

use crate::data::Manifest;
use crate::error::{NodeError, Result};
use crate::raft::{Rpc, RpcReply};
use crate::store::decode;
use crate::workflow::live::{JobRecord, LogLine};
use crate::NodeHandle;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ComputeRequest {
    /// Run this workflow, with its directory as a tar if it has one, on the
    /// owner's compute data, under the asking org's leases.
    Submit {
        run_id: String,
        yaml: String,
        bundle: Option<Vec<u8>>,
        submitted_by: String,
    },
    /// The run's state, and its log from `from_seq` as far as the dataset's
    /// policy lets the asking org see it.
    Status {
        run_id: String,
        from_seq: u64,
    },
    Cancel {
        run_id: String,
        by: String,
    },
    /// The released outputs: their manifest, then their bytes.
    OutputManifest {
        run_id: String,
    },
    OutputChunk {
        run_id: String,
        path: String,
        offset: u64,
        len: u64,
    },
}

/// What the owner's node tells the lessee's about a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteStatus {
    pub status: crate::workflow::live::Status,
    pub reason: Option<String>,
    pub jobs: Vec<JobRecord>,
    pub output_hash: Option<String>,
    /// `None` while undecided; the owner's reason either way.
    pub release: Option<(bool, String)>,
    pub lines: Vec<LogLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ComputeReply {
    Started,
    Status(RemoteStatus),
    Cancelled,
    Manifest(Manifest),
    Chunk(Vec<u8>),
}

/// Answers a lessee's node. Runs on the owner's.
pub(crate) async fn serve(
    node: &NodeHandle,
    from: PeerId,
    req: ComputeRequest,
) -> std::result::Result<ComputeReply, String> {
    let asker = node.inner.peers().org_of_peer.get(&from).cloned().ok_or("unknown peer")?;
    let runner = node.runner().clone();
    match req {
        ComputeRequest::Submit { run_id, yaml, bundle, submitted_by } => {
            let by = format!("{asker}/{submitted_by}");
            runner.execute_for(&asker, &run_id, &yaml, bundle, &by).await.map_err(|e| e.to_string())?;
            Ok(ComputeReply::Started)
        }
        ComputeRequest::Status { run_id, from_seq } => {
            runner.remote_status(&asker, &run_id, from_seq).map(ComputeReply::Status)
        }
        ComputeRequest::Cancel { run_id, by } => {
            runner.cancel_for(&asker, &run_id, &format!("{asker}/{by}"))?;
            Ok(ComputeReply::Cancelled)
        }
        ComputeRequest::OutputManifest { run_id } => {
            let r = runner.clone();
            let served = tokio::task::spawn_blocking(move || r.released_manifest(&asker, &run_id)).await;
            served.map_err(|e| e.to_string())?.map(ComputeReply::Manifest)
        }
        ComputeRequest::OutputChunk { run_id, path, offset, len } => {
            let r = runner.clone();
            let served =
                tokio::task::spawn_blocking(move || r.released_chunk(&asker, &run_id, &path, offset, len)).await;
            served.map_err(|e| e.to_string())?.map(ComputeReply::Chunk)
        }
    }
}

impl NodeHandle {
    /// Asks the node of `owner`; its refusal comes back as the owner's words.
    pub(crate) async fn compute_request(&self, owner: &str, req: ComputeRequest) -> Result<ComputeReply> {
        let bytes = self.request_org(owner, Rpc::Compute(req)).await?;
        match decode::<RpcReply>(&bytes, "compute reply")? {
            RpcReply::Compute(Ok(reply)) => Ok(reply),
            RpcReply::Compute(Err(reason)) => Err(NodeError::Data(format!("{owner} refused: {reason}"))),
            _ => Err(NodeError::Data(format!("{owner} answered a different request"))),
        }
    }
}
