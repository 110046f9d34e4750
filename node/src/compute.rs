//! Compute-to-data over the p2p network: the lessee's node hands a workflow
//! to the owner's node, follows the run, and fetches its outputs once the
//! owner released them on the ledger. The owner's node checks, at every
//! request, that the asking org is the run's (or the lease's) and what the
//! ledger says: the files of a compute dataset never travel, and nothing of
//! a run travels but what the dataset's policy releases.

use leasehold_network::PeerId;

use crate::handle::NodeHandle;
use crate::wire::compute::{ComputeReply, ComputeRequest, Refusal};

/// Answers a lessee's node. Runs on the owner's.
pub(crate) async fn serve(
    node: &NodeHandle,
    from: PeerId,
    req: ComputeRequest,
) -> std::result::Result<ComputeReply, Refusal> {
    let unknown = || Refusal::Forbidden("unknown peer".into());
    let asker = node.inner.consensus.peers().org_of_peer.get(&from).cloned().ok_or_else(unknown)?;
    let runner = node.runner().clone();
    match req {
        ComputeRequest::Submit { run_id, yaml, bundle, submitted_by, request } => {
            let by = format!("{asker}/{submitted_by}");
            runner.execute_for(&asker, &run_id, &yaml, bundle, &by, &request).await?;
            Ok(ComputeReply::Started)
        }
        ComputeRequest::Status { run_id, from_seq } => {
            Ok(runner.remote_status(&asker, &run_id, from_seq).map(ComputeReply::Status)?)
        }
        ComputeRequest::Cancel { run_id, by } => {
            runner.cancel_for(&asker, &run_id, &format!("{asker}/{by}"))?;
            Ok(ComputeReply::Cancelled)
        }
        ComputeRequest::OutputManifest { run_id } => {
            let r = runner.clone();
            let served = tokio::task::spawn_blocking(move || r.released_manifest(&asker, &run_id)).await;
            let served = served.map_err(|e| Refusal::Unavailable(e.to_string()))?;
            Ok(served.map(ComputeReply::Manifest)?)
        }
        ComputeRequest::OutputChunk { run_id, path, offset, len } => {
            let r = runner.clone();
            let served =
                tokio::task::spawn_blocking(move || r.released_chunk(&asker, &run_id, &path, offset, len)).await;
            let served = served.map_err(|e| Refusal::Unavailable(e.to_string()))?;
            Ok(served.map(ComputeReply::Chunk)?)
        }
    }
}
