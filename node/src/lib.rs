//! The daemon library: RocksDB storage, openraft ordering over libp2p,
//! hash-chained blocks, the data plane, disclosure, compute-to-data, the
//! workflow runner, and the CLI's node-side commands.
//!
//! It knows no HTTP: `leasehold-api` drives a node through [`NodeHandle`].
//! The subsystems, lowest first: `block` and `raft` (types), `ledger`
//! (store, blocks, snapshots, certificates), `wire` (what nodes send each
//! other), `consensus` (raft and the checks around it), `data`, `disclose`,
//! `compute`, and `runs`, the port through which the workflow runner
//! (`leasehold_workflow::runner`) reaches the node; `handle` wires them
//! behind [`NodeHandle`] and `node` starts them.

mod audit;
pub mod backup;
pub mod block;
pub mod ceremony;
pub mod cli;
mod clock;
mod compute;
pub mod config;
pub mod consensus;
pub mod crypto;
mod data;
mod disclose;
pub mod disk;
mod error;
pub mod fuzzing;
mod handle;
pub mod init;
pub mod ledger;
pub mod limits;
pub mod metrics;
mod node;
pub mod orgs;
pub mod raft;
mod reads;
mod rpc;
mod runs;
mod secrets;
mod status;
pub mod users;
pub mod wire;
mod write;

pub use clock::now_ms;
pub use data::objects::ObjectError;
pub use data::staging::{StageError, Staged, StagedFile, Upload, MAX_UPLOAD_BYTES};
pub use error::{NodeError, Result};
pub use handle::NodeHandle;
pub use node::{corrupt, start, Tasks};
pub use reads::DatasetFiles;
pub use status::Status;
pub use write::{Submission, Written};
