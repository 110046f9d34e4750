//! The leasehold daemon library: RocksDB storage, openraft ordering over
//! libp2p, hash-chained blocks, and the CLI's node-side commands.
//!
//! It knows no HTTP: `leasehold-api` drives a node through [`NodeHandle`].

pub mod backup;
pub mod block;
mod censor;
#[cfg(test)]
mod censor_tests;
pub mod ceremony;
pub mod certify;
pub mod cli;
pub mod compute;
pub mod config;
pub mod crypto;
pub mod data;
pub mod disclose;
pub mod disk;
pub mod election;
mod error;
mod fence;
pub mod fuzzing;
mod gate;
pub mod init;
pub mod ledger;
mod limits;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod orgs;
pub mod peers;
pub mod raft;
mod reads;
mod receive_snapshot;
mod rpc;
mod runner;
pub mod snapshot;
mod status;
pub mod store;
pub mod users;
pub mod verify;
pub mod write;

pub use data::staging::{StageError, Staged, StagedFile, Upload, MAX_UPLOAD_BYTES};
pub use error::{NodeError, Result};
pub use node::{now_ms, start, NodeHandle, Submission, Tasks};
pub use status::Status;
