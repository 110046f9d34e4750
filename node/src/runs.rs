//! The node's side of the workflow runner (`leasehold_workflow::runner`):
//! the [`Port`] it gives the runner, built from the subsystems themselves
//! so the runner never holds the [`NodeHandle`] that holds it, and the
//! handle's run methods, which the API calls.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use leasehold_chaincode::{ChaincodeError, Hash32, Lease, LeaseStatus, Payload, SignedTx, StateRead};
use leasehold_files::Manifest;
use leasehold_workflow::live::{LiveRun, RunRecord};
use leasehold_workflow::runner::wire::{ComputeReply, ComputeRequest};
use leasehold_workflow::runner::{Port, Progress, RunError, Runner, Written};
use leasehold_workflow::secrets::SecretEnv;

use crate::config::NodeConfig;
use crate::consensus::Consensus;
use crate::data::objects::{Materialize, ObjectStores};
use crate::data::plane::Fetcher;
use crate::data::DataDirs;
use crate::error::{NodeError, Result};
use crate::handle::NodeHandle;
use crate::ledger::Ledger;
use crate::secrets::SecretStore;
use crate::wire::{Rpc, RpcReply};
use crate::write::Writer;

pub(crate) struct RunnerPort {
    cfg: NodeConfig,
    ledger: Arc<Ledger>,
    consensus: Arc<Consensus>,
    writer: Arc<Writer>,
    objects: Arc<ObjectStores>,
    /// Opened for this org's own runs only: the runner refuses the rest.
    secrets: Arc<SecretStore>,
    /// An own version's files being copied in from its bucket, by directory.
    materializing: std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl RunnerPort {
    pub(crate) fn new(
        cfg: NodeConfig,
        ledger: Arc<Ledger>,
        consensus: Arc<Consensus>,
        writer: Arc<Writer>,
        objects: Arc<ObjectStores>,
        secrets: Arc<SecretStore>,
    ) -> Self {
        Self { cfg, ledger, consensus, writer, objects, secrets, materializing: Default::default() }
    }

    fn dirs(&self) -> DataDirs {
        DataDirs::new(&self.cfg.data_dir)
    }
}

fn written(w: crate::write::Written) -> Written {
    Written { tx_id: w.tx_id, height: w.height }
}

#[async_trait::async_trait]
impl Port for RunnerPort {
    fn org(&self) -> &str {
        &self.cfg.org
    }

    fn state(&self) -> &dyn StateRead {
        &self.ledger.store
    }

    fn ledger_now_ms(&self) -> i64 {
        self.ledger.now_ms()
    }

    fn lease_status_now(&self, lease_id: &str) -> Result<Option<(Lease, LeaseStatus)>, RunError> {
        Ok(self.ledger.lease_status_now(lease_id)?)
    }

    fn sign(&self, payload: Payload) -> SignedTx {
        self.writer.sign(payload)
    }

    fn verify_signature(&self, tx: &SignedTx) -> std::result::Result<(), ChaincodeError> {
        let roster = self.ledger.roster();
        leasehold_chaincode::verify_signatures(&roster.orgs, std::slice::from_ref(tx)).pop().unwrap_or(Ok(()))
    }

    fn check(&self, tx: &SignedTx) -> Result<(), RunError> {
        Ok(self.writer.check(tx)?)
    }

    async fn write(&self, payload: Payload) -> Result<Written, RunError> {
        Ok(written(self.writer.write(payload).await?))
    }

    async fn write_signed(&self, tx: SignedTx) -> Result<Written, RunError> {
        Ok(written(self.writer.write_signed(tx).await?))
    }

    fn check_disk(&self) -> Result<(), RunError> {
        Ok(self.consensus.check_disk()?)
    }

    async fn compute_request(&self, owner: &str, req: ComputeRequest) -> Result<ComputeReply, RunError> {
        match self.consensus.ask_org(owner, Rpc::Compute(req)).await? {
            RpcReply::Compute(Ok(reply)) => Ok(reply),
            RpcReply::Compute(Err(refusal)) => Err(refusal.into_run_error(owner)),
            _ => Err(NodeError::Peer(format!("{owner}'s node answered a different request")).into()),
        }
    }

    async fn fetch_lease_data(&self, lease: &Lease, progress: Progress<'_>) -> Result<PathBuf, RunError> {
        let dirs = self.dirs();
        let fetcher = Fetcher { consensus: &self.consensus, ledger: &self.ledger, dirs: &dirs };
        Ok(fetcher.fetch(lease, progress).await?)
    }

    fn holds_own_files(&self, dataset: &str, content_hash: &Hash32) -> bool {
        matches!(self.dirs().dataset_manifest(dataset, content_hash), Ok(Some(_)))
    }

    async fn own_dataset_files(
        &self,
        dataset: &str,
        content_hash: &Hash32,
        progress: Progress<'_>,
    ) -> Result<PathBuf, RunError> {
        let dirs = self.dirs();
        let dir = dirs.dataset(dataset, content_hash);
        let Some(source) = dirs.dataset_source(dataset, content_hash)? else { return Ok(dir) };
        // One copy at a time per version; runs after it find it whole.
        let lock = self.materializing.lock().expect("lock").entry(dir.clone()).or_default().clone();
        let _guard = lock.lock().await;
        if dir.exists() {
            return Ok(dir);
        }
        let manifest = dirs
            .dataset_manifest(dataset, content_hash)?
            .ok_or_else(|| NodeError::Data(format!("dataset {dataset}'s manifest is gone")))?;
        let registered = format!("the version of {dataset} with content {}", &hex::encode(content_hash)[..12]);
        let partial = dirs.materializing(dataset, content_hash);
        let job = Materialize {
            manifest: &manifest,
            source: Arc::new(source),
            registered: &registered,
            partial: &partial,
            to: &dir,
        };
        let room = || self.consensus.check_disk();
        self.objects.materialize(job, room, progress).await.map_err(|e| NodeError::Data(e.to_string()))?;
        Ok(dir)
    }

    fn delete_ended_caches(&self) {
        crate::data::cache::delete_ended(&self.dirs(), &self.ledger);
    }

    fn secrets(&self, names: &[String]) -> Result<SecretEnv, RunError> {
        Ok(self.secrets.values(names)?)
    }
}

/// The node's errors pass through the runner unchanged: each kind the API
/// sorts by has its own variant, and the rest ride boxed.
impl From<NodeError> for RunError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Workflow(w) => Self::Workflow(w),
            NodeError::Chaincode(c) => Self::Ledger(c),
            NodeError::NotFound(d) => Self::NotFound(d),
            NodeError::Forbidden(d) => Self::Forbidden(d),
            NodeError::Conflict(d) => Self::Conflict(d),
            NodeError::Unavailable(d) => Self::Unavailable(d),
            NodeError::File { path, reason } => Self::File(leasehold_files::FileError { path, reason }),
            NodeError::Data(d) => Self::Data(d),
            other => Self::Node(Box::new(other)),
        }
    }
}

impl From<RunError> for NodeError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Workflow(w) => Self::Workflow(w),
            RunError::Ledger(c) => Self::Chaincode(c),
            RunError::NotFound(d) => Self::NotFound(d),
            RunError::Forbidden(d) => Self::Forbidden(d),
            RunError::Conflict(d) => Self::Conflict(d),
            RunError::Unavailable(d) => Self::Unavailable(d),
            RunError::File(f) => Self::File { path: f.path, reason: f.reason },
            RunError::Data(d) => Self::Data(d),
            RunError::Node(e) => match e.downcast::<NodeError>() {
                Ok(e) => *e,
                Err(e) => Self::Unavailable(e.to_string()),
            },
        }
    }
}

/// Runs, as the API sees them.
impl NodeHandle {
    pub(crate) fn runner(&self) -> &Arc<Runner> {
        &self.inner.runner
    }

    /// Submits a workflow's directory: a tar with `workflow.yaml` at its top.
    pub async fn submit_run_bundle(&self, tar: Vec<u8>, submitted_by: &str, force: bool) -> Result<RunRecord> {
        Ok(self.runner().submit_bundle(tar, submitted_by, force).await?)
    }

    /// Submits a `workflow.yaml` alone; `force` runs it even when an
    /// earlier run's outputs could be reused.
    pub async fn submit_run(&self, yaml: &str, submitted_by: &str, force: bool) -> Result<RunRecord> {
        Ok(self.runner().submit(yaml, submitted_by, force).await?)
    }

    /// The runs this node knows: its own, and those it ran for others.
    pub fn runs(&self) -> Vec<RunRecord> {
        self.runner().list()
    }

    /// A run, with its log.
    pub fn run(&self, id: &str) -> Result<Arc<LiveRun>> {
        Ok(self.runner().get(id)?)
    }

    pub fn cancel_run(&self, id: &str, by: &str) -> Result<RunRecord> {
        Ok(self.runner().cancel(id, by)?)
    }

    /// Records on the ledger whether a compute run's outputs, done here,
    /// may leave for its lessee.
    pub async fn decide_release(&self, id: &str, approve: bool, reason: &str) -> Result<RunRecord> {
        self.runner().check_decidable(id)?;
        Ok(self.runner().decide(id, approve, reason).await?)
    }

    /// A succeeded, unpublished run's record and output directory.
    pub fn publishable_run(&self, id: &str) -> Result<(RunRecord, PathBuf)> {
        Ok(self.runner().publishable(id)?)
    }

    /// A succeeded run's output files, each hashed as it is now. Listings
    /// read whole trees: two at a time, so that repeated requests queue
    /// rather than take every blocking thread and the disk.
    pub async fn run_outputs_manifest(&self, id: &str) -> Result<Manifest> {
        static LISTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
        let dir = self.runner().succeeded_outputs(id)?;
        let _turn = LISTING.acquire().await.map_err(|e| NodeError::Unavailable(e.to_string()))?;
        tokio::task::spawn_blocking(move || Manifest::of_dir(&dir))
            .await
            .map_err(|e| NodeError::Data(format!("listing a run's outputs: {e}")))?
            .map_err(Into::into)
    }

    /// One file of a succeeded run's outputs. A job could have left links
    /// there: none on the path is followed, and only a regular file opens.
    pub fn open_run_output(&self, id: &str, path: &str) -> Result<std::fs::File> {
        let missing = || NodeError::NotFound(format!("run {id} has no output file {path:?}"));
        leasehold_files::check_rel_path(path).map_err(|_| missing())?;
        let mut at = self.runner().succeeded_outputs(id)?;
        let parts: Vec<&str> = path.split('/').collect();
        for dir in &parts[..parts.len() - 1] {
            at.push(dir);
            let plain_dir = std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_dir());
            if !plain_dir {
                return Err(missing());
            }
        }
        at.push(parts[parts.len() - 1]);
        leasehold_files::open_plain(&at).map_err(|_| missing())
    }

    pub fn mark_published(&self, id: &str, dataset: &str) -> Result<()> {
        Ok(self.runner().mark_published(id, dataset)?)
    }
}
