//! Result reuse by checksum (seed `003_*`). A run's reuse key is the sha256
//! of its workflow hash (the YAML, the bundle's files and the environment)
//! and the content hash of each input's version on the ledger. A new run
//! whose key matches a succeeded run of this node takes that run's outputs
//! instead of running its jobs, unless it is forced. It is still a run on
//! the ledger, started and finished like any other, with the same output
//! hash, so its provenance is as good as the first's.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use leasehold_chaincode::{DatasetRef, Hash32};
use sha2::{Digest, Sha256};

use super::Runner;
use super::{Result, RunError};
use crate::live::{LiveRun, RunRecord, Status, Stream};
use leasehold_files::Manifest;

pub(super) fn reuse_key(workflow_hash: &[u8; 32], versions: &BTreeMap<DatasetRef, Hash32>) -> String {
    let mut h = Sha256::new().chain_update(b"leasehold-reuse-v1\n").chain_update(workflow_hash);
    for (input, content_hash) in versions {
        h.update((input.id.len() as u64).to_le_bytes());
        h.update(input.id.as_bytes());
        h.update(input.version.to_le_bytes());
        h.update(content_hash);
    }
    hex::encode(h.finalize())
}

impl Runner {
    /// The newest succeeded run of this org's, on this node, with `key`.
    pub(super) fn reusable(&self, key: &str) -> Option<RunRecord> {
        // Only this org's own runs: not one it ran for a lessee, nor one a
        // compute dataset's owner ran for it.
        let own = |r: &RunRecord| r.org == self.node.org() && r.executor.is_none();
        let same = |r: &RunRecord| own(r) && r.status == Status::Succeeded && r.reuse_key.as_deref() == Some(key);
        self.list().into_iter().filter(same).filter(|r| r.output_hash.is_some()).max_by_key(|r| r.created_at_ms)
    }

    /// Ends `run` with `from`'s outputs, copied and checked against the
    /// output hash `from` recorded.
    pub(super) async fn reuse(self: Arc<Self>, run: Arc<LiveRun>, from: RunRecord) {
        let why = format!("not run: the outputs of run {} were reused", from.id);
        run.update(|r| {
            r.status = Status::Running;
            for j in &mut r.jobs {
                j.status = Status::Cancelled;
                j.error = Some(why.clone());
            }
        });
        run.log(None, Stream::Runner, &format!("reusing the outputs of run {} (same inputs and code)", from.id));
        let (source, dest, stage) =
            (self.dirs.run(&from.id).join("output"), run.output_dir(), run.dir().join(".reused"));
        let want = from.output_hash.clone();
        // Gone once renamed into place; removed if anything fails first.
        let _stage = super::RemoveOnDrop(stage.clone());
        let copied = tokio::task::spawn_blocking(move || {
            leasehold_files::copy_tree(&source, &stage)?;
            let got = hex::encode(Manifest::of_dir(&stage)?.hash());
            if Some(&got) != want.as_ref() {
                return Err(RunError::Data("they no longer match the output hash that run recorded".into()));
            }
            leasehold_files::durable::sync_tree(&stage).map_err(|e| RunError::file(&stage, e))?;
            fs::remove_dir(&dest).map_err(|e| RunError::file(&dest, e))?;
            leasehold_files::durable::rename(&stage, &dest).map_err(|e| RunError::file(&dest, e))
        })
        .await
        .map_err(|e| RunError::Unavailable(e.to_string()))
        .and_then(|r| r);
        let (status, reason) = match copied {
            _ if run.stopped().is_some() => {
                let stop = run.stopped().expect("checked");
                (stop.status(), Some(stop.reason().to_string()))
            }
            Ok(()) => (Status::Succeeded, None),
            Err(e) => (
                Status::Failed,
                Some(format!("the outputs of run {} cannot be reused: {e}; run with --force", from.id)),
            ),
        };
        self.conclude(run, status, reason).await;
    }
}

impl Runner {
    /// A copy of a run's outputs to publish: the run keeps its own, so a
    /// publication its inputs' owners refuse can be offered again.
    pub fn outputs_copy(&self, id: &str) -> Result<std::path::PathBuf> {
        let run = self.get(id)?;
        let to = run.dir().join(format!("publishing-{}", super::new_run_id()));
        if let Err(e) = leasehold_files::copy_tree(&run.output_dir(), &to) {
            let _ = std::fs::remove_dir_all(&to);
            return Err(e.into());
        }
        Ok(to)
    }
}
