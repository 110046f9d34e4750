//! What a workflow's volumes name on the ledger: a lease this org holds, a
//! dataset it holds an active lease on, or a dataset it owns, which it
//! reads from its own store with no lease.

use std::collections::{BTreeMap, HashMap};

use crate::Workflow;
use leasehold_chaincode::{query, ChaincodeError, DatasetRef, Hash32, Lease};

use super::Runner;

/// Why a volume cannot be read: the reason its `volumes[i].id` is refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum VolumeError {
    #[error("{0}")]
    Ledger(#[from] ChaincodeError),
    #[error("no lease or dataset is named {0:?}")]
    Unknown(String),
    #[error("lease {id} is held by {lessee}, not by {me}")]
    HeldByOther { id: String, lessee: String, me: String },
    /// The lease's own words: pending, denied, expired at, revoked at…
    #[error("{0}")]
    Inactive(String),
    #[error("dataset {0} is retired")]
    Retired(String),
    #[error("{me} owns dataset {id}, but this node holds no files for version {version}")]
    NoFiles { me: String, id: String, version: u32 },
    #[error("{me} holds no active lease on dataset {id}")]
    NoLease { me: String, id: String },
    #[error("dataset {id}@{version} is not on the ledger")]
    NotOnLedger { id: String, version: u32 },
    // A compute run's volume, checked by the dataset's owner:
    #[error("{asker} holds no active lease named or on {id:?}")]
    NoComputeLease { asker: String, id: String },
    #[error("lease {lease} is not {asker}'s on a dataset of {me}")]
    NotTheirs { lease: String, asker: String, me: String },
    #[error("dataset {0} is read as files, not run on here")]
    ReadAsFiles(String),
    #[error("a compute run reads one lease")]
    OneLease,
    #[error("the lease has no dataset version")]
    NoVersion,
    #[error("the leased version is not on the ledger")]
    LeasedVersionMissing,
}

/// A workflow's inputs, checked against the ledger at submission.
#[derive(Default)]
pub(super) struct Inputs {
    /// The leases the run reads through, by id.
    pub leases: BTreeMap<String, Lease>,
    /// For each volume id: the lease id, or `own:<dataset>` for an own dataset.
    pub source_of_volume: HashMap<String, String>,
    /// An own dataset's version and content hash, by source
    /// (`own:<dataset>`): its files are the org's, brought in as the run starts.
    pub own: HashMap<String, (String, Hash32)>,
    /// Each dataset version read, and its content hash on the ledger.
    pub versions: BTreeMap<DatasetRef, Hash32>,
    /// Datasets whose policy requires QC tests.
    pub requiring_tests: Vec<String>,
    /// Leases watched but not fetched: a compute run's, at the owner.
    pub watch_only: Vec<String>,
}

enum Source {
    Lease(Lease),
    Own(DatasetRef, Hash32),
}

impl Runner {
    /// Resolves every volume; an error names the volume and why.
    pub(super) fn resolve_inputs(&self, wf: &Workflow) -> Result<Inputs, crate::WorkflowError> {
        let mut inputs = Inputs::default();
        wf.check_leases(|id| {
            let (key, dataset) = match self.resolve_volume(id)? {
                Source::Lease(lease) => {
                    let key = lease.id.clone();
                    let version = lease.dataset_version.unwrap_or(1);
                    inputs.leases.insert(key.clone(), lease.clone());
                    (key, DatasetRef { id: lease.dataset_id, version })
                }
                Source::Own(ds, content_hash) => {
                    let key = format!("own:{}", ds.id);
                    inputs.own.insert(key.clone(), (ds.id.clone(), content_hash));
                    (key, ds)
                }
            };
            let store = self.node.state();
            let found = query::dataset_version(store, &dataset.id, dataset.version)?;
            let ds =
                found.ok_or_else(|| VolumeError::NotOnLedger { id: dataset.id.clone(), version: dataset.version })?;
            if ds.spec.policy.require_tests && !inputs.requiring_tests.contains(&ds.id) {
                inputs.requiring_tests.push(ds.id.clone());
            }
            inputs.versions.insert(dataset, ds.spec.content_hash);
            inputs.source_of_volume.insert(id.into(), key);
            Ok::<(), VolumeError>(())
        })?;
        Ok(inputs)
    }

    /// A volume id is a lease id, or a dataset this org owns or holds an
    /// active lease on.
    fn resolve_volume(&self, id: &str) -> Result<Source, VolumeError> {
        let (store, me, now) = (self.node.state(), self.node.org(), self.node.ledger_now_ms());
        if let Some(lease) = query::lease(store, id)? {
            if lease.lessee != me {
                return Err(VolumeError::HeldByOther { id: id.into(), lessee: lease.lessee, me: me.into() });
            }
            return lease.inactive_reason(now).map_or(Ok(Source::Lease(lease)), |why| Err(VolumeError::Inactive(why)));
        }
        let Some(ds) = query::dataset(store, id)? else {
            return Err(VolumeError::Unknown(id.into()));
        };
        if ds.owner == me {
            if ds.retired {
                return Err(VolumeError::Retired(id.into()));
            }
            if !self.node.holds_own_files(id, &ds.spec.content_hash) {
                return Err(VolumeError::NoFiles { me: me.into(), id: id.into(), version: ds.version });
            }
            return Ok(Source::Own(DatasetRef { id: ds.id, version: ds.version }, ds.spec.content_hash));
        }
        query::active_lease(store, me, id, now)?
            .map(Source::Lease)
            .ok_or_else(|| VolumeError::NoLease { me: me.into(), id: id.into() })
    }
}
