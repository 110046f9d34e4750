//! What the node answers about its ledger and files: every read the API
//! makes goes through these, so the API never touches the store.

use leasehold_chaincode::query::{self, DatasetFilter, LeaseFilter, LineageNode};
use leasehold_chaincode::{AccessRecord, Dataset, HistoryEntry, Lease, LeaseStatus, Publication, TxId};

use crate::block::Block;
use crate::data::objects::{ObjectError, S3Url};
use crate::data::plane::Fetcher;
use crate::data::staging::{DiskReserve, StageError, Staged, Upload};
use crate::data::DataDirs;
use crate::error::{NodeError, Result};
use crate::handle::NodeHandle;

impl NodeHandle {
    fn dirs(&self) -> DataDirs {
        DataDirs::new(&self.inner.cfg.data_dir)
    }

    /// The committed height.
    pub fn height(&self) -> u64 {
        self.inner.ledger.head().height
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>> {
        self.inner.ledger.store.block(height)
    }

    /// Committed blocks from `from`, at most `limit` and about `max_bytes`
    /// of them (see [`crate::ledger::store::Store::blocks`]).
    pub fn blocks(&self, from: u64, limit: u64, max_bytes: usize) -> Result<Vec<Block>> {
        self.inner.ledger.store.blocks(from, limit, max_bytes)
    }

    /// A committed valid tx's block and its index in it.
    pub fn tx_block(&self, id: &TxId) -> Result<Option<(Block, u32)>> {
        let Some((height, index)) = self.lookup_tx(id)? else { return Ok(None) };
        Ok(self.block(height)?.map(|b| (b, index)))
    }

    pub fn dataset(&self, id: &str) -> Result<Option<Dataset>> {
        Ok(query::dataset(&self.inner.ledger.store, id)?)
    }

    pub fn dataset_versions(&self, id: &str) -> Result<Vec<Dataset>> {
        Ok(query::dataset_versions(&self.inner.ledger.store, id)?)
    }

    pub fn datasets(&self, filter: &DatasetFilter) -> Result<query::Page<Dataset>> {
        Ok(query::datasets(&self.inner.ledger.store, filter)?)
    }

    pub fn lineage(&self, id: &str) -> Result<Vec<LineageNode>> {
        Ok(query::lineage(&self.inner.ledger.store, id)?)
    }

    pub fn lease(&self, id: &str) -> Result<Option<Lease>> {
        Ok(query::lease(&self.inner.ledger.store, id)?)
    }

    /// Leases matching `filter`, with statuses at the ledger's time now.
    pub fn leases(&self, filter: &LeaseFilter) -> Result<query::Page<Lease>> {
        Ok(query::leases(&self.inner.ledger.store, filter, self.ledger_now())?)
    }

    /// A page of a lease's audit trail: records `from`.. (0-based), each
    /// with its number.
    pub fn access_log(&self, lease_id: &str, from: u32, limit: usize) -> Result<Vec<(u32, AccessRecord)>> {
        Ok(query::access_log(&self.inner.ledger.store, lease_id, from, limit)?)
    }

    /// A derived dataset waiting for its inputs' owners to approve its publication.
    pub fn publication(&self, id: &str) -> Result<Option<Publication>> {
        Ok(query::publication(&self.inner.ledger.store, id)?)
    }

    /// Pending publications this org published or must decide.
    pub fn publications(&self) -> Result<Vec<Publication>> {
        Ok(query::publications(&self.inner.ledger.store, self.org())?)
    }

    pub fn history(&self, kind: &str, id: &str) -> Result<Vec<HistoryEntry>> {
        Ok(query::history(&self.inner.ledger.store, kind, id)?)
    }

    /// Starts staging `path` of `dataset`'s next version (the API streams
    /// the body into it). The node alone opens its directories.
    pub async fn begin_upload(&self, dataset: &str, path: &str) -> std::result::Result<Upload, StageError> {
        let disk = DiskReserve { dir: self.inner.cfg.data_dir.clone(), min_free_mib: self.inner.cfg.min_free_disk_mib };
        Upload::begin(&self.dirs().uploads(dataset), path, disk).await
    }

    /// Whether files are staged for `dataset`'s next version.
    pub fn has_staged_files(&self, dataset: &str) -> bool {
        self.dirs().uploads(dataset).exists()
    }

    /// The files staged for `dataset`'s next version, if any.
    pub async fn staged_files(&self, dataset: &str) -> Result<Option<Staged>> {
        let dir = self.dirs().uploads(dataset);
        if !dir.exists() {
            return Ok(None);
        }
        Staged::of_dir(dir, false).await.map(Some)
    }

    /// A copy of a succeeded run's outputs, to publish as a dataset.
    pub async fn run_outputs(&self, run_id: &str) -> Result<Staged> {
        let runner = self.runner().clone();
        let id = run_id.to_string();
        let copy = tokio::task::spawn_blocking(move || runner.outputs_copy(&id))
            .await
            .map_err(|e| crate::error::NodeError::Data(format!("copying a run's outputs: {e}")))??;
        Staged::of_dir(copy, true).await
    }

    /// Held from before a write naming new files until they are adopted, so
    /// that no backup falls between the two.
    pub async fn adopting_guard(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.inner.adopting.clone().read_owned().await
    }

    /// Moves verified files into this owner's store under their content
    /// hash; files in a bucket are adopted where they are.
    pub fn adopt_files(&self, dataset: &str, staged: Staged) -> Result<()> {
        let manifest = staged.manifest().clone();
        match staged.source() {
            Some(source) => {
                self.dirs().adopt_objects(dataset, &manifest, source)?;
                self.inner.manifests.forget(dataset, &manifest.hash());
                Ok(())
            }
            None => self.dirs().adopt(dataset, &staged.into_dir(), &manifest).map(drop),
        }
    }

    /// Lists and hashes every object under `url` (`s3://bucket/prefix`) in
    /// this org's object store: files to register by reference.
    pub async fn stage_from_bucket(&self, url: &str) -> std::result::Result<Staged, ObjectError> {
        let url = S3Url::parse(url)?;
        let (manifest, source) = self.inner.objects.index(&url).await?;
        Ok(Staged::of_objects(manifest, source))
    }

    /// Every org that ever joined, and the changes waiting for approval.
    pub fn orgs(&self) -> Result<crate::orgs::OrgsView> {
        crate::orgs::orgs(&self.inner.ledger)
    }
}

/// A dataset version's files as its owner holds them.
pub struct DatasetFiles {
    pub dataset: Dataset,
    pub manifest: leasehold_files::Manifest,
}

impl NodeHandle {
    /// The files of a dataset, with their sizes: of its latest version from
    /// this node's own store when this org owns it; else of the version an
    /// active lease of this org covers, asked of the owner, whose node
    /// checks the lease as it answers (a `compute` lease gets no names).
    /// Nobody else learns them: the ledger holds only their hash.
    pub async fn dataset_files(&self, id: &str) -> Result<DatasetFiles> {
        let not_found = || NodeError::NotFound(format!("dataset {id:?} does not exist"));
        let latest = self.dataset(id)?.ok_or_else(not_found)?;
        if latest.owner == self.org() {
            let held = self.dirs().dataset_manifest(id, &latest.spec.content_hash)?;
            let manifest = held
                .ok_or_else(|| NodeError::NotFound(format!("this node holds no files for {id}@{}", latest.version)))?;
            return Ok(DatasetFiles { dataset: latest, manifest });
        }
        let filter = LeaseFilter {
            dataset: Some(id.into()),
            lessee: Some(self.org().into()),
            owner: None,
            status: Some(LeaseStatus::Active),
            after: None,
            limit: 1,
        };
        let Some(lease) = self.leases(&filter)?.items.into_iter().next() else {
            return Err(NodeError::Forbidden(format!(
                "the files of {id} are listed to its owner and to an org with an active lease on it"
            )));
        };
        let version = lease.dataset_version.unwrap_or(latest.version);
        let dataset = query::dataset_version(&self.inner.ledger.store, id, version)?.ok_or_else(not_found)?;
        let (dirs, inner) = (self.dirs(), &self.inner);
        let fetcher = Fetcher { consensus: &inner.consensus, ledger: &inner.ledger, dirs: &dirs };
        // The owner's refusal (a compute lease, a lease it sees ended) is
        // its word, for the asker; a manifest that fails its checks is the
        // owner's node at fault.
        let refused = format!("{} refused", lease.owner);
        let manifest = fetcher.manifest(&lease).await.map_err(|e| match e {
            NodeError::Data(d) if d.starts_with(&refused) => NodeError::Forbidden(d),
            NodeError::Data(d) => NodeError::Peer(d),
            other => other,
        })?;
        Ok(DatasetFiles { dataset, manifest })
    }
}
