//! The owner's checks on every data-plane request, against a ledger state
//! the chaincode built and peer identities made up for the test: no raft,
//! no network, milliseconds per test.

use std::collections::HashMap;

use leasehold_chaincode::{Approval, Payload};
use leasehold_network::PeerId;

use super::{DataReply, DataRequest, Owner, CHUNK_BYTES};
use crate::data::DataDirs;
use crate::wire::data::DataRefusal;
use leasehold_files::Manifest;

#[path = "../../../chaincode/tests/common/mod.rs"]
mod net;
use net::{grant, policy, register, request, spec, HOUR, T0};

/// A file of two and a half chunks, each byte telling its offset apart.
fn contents() -> Vec<u8> {
    (0..CHUNK_BYTES * 5 / 2).map(|i| (i % 251) as u8).collect()
}

struct Fixture {
    net: net::Net,
    data: tempfile::TempDir,
    peers: HashMap<PeerId, String>,
    /// The peer identity of each org's node, org1 first.
    nodes: Vec<PeerId>,
    expires_ms: i64,
}

impl Fixture {
    /// org1 owns `iris` and holds its file; org2 holds lease L1, active from
    /// T0 + 2 s for 10 minutes.
    fn new() -> Self {
        let data = tempfile::tempdir().unwrap();
        let staged = data.path().join("staged");
        std::fs::create_dir_all(&staged).unwrap();
        std::fs::write(staged.join("big.bin"), contents()).unwrap();
        let manifest = Manifest::of_dir(&staged).unwrap();
        DataDirs::new(data.path()).adopt("iris", &staged, &manifest).unwrap();
        let mut net = net::Net::new();
        let mut iris = spec("Iris", &["t"], policy(&[1, 2], HOUR, Approval::Owner, false));
        iris.content_hash = manifest.hash();
        net.run(0, T0, register("iris", iris)).unwrap();
        net.run(1, T0 + 1_000, request("L1", "iris", HOUR / 2)).unwrap();
        net.run(0, T0 + 2_000, grant("L1", 600_000)).unwrap();
        let nodes: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let peers = nodes.iter().enumerate().map(|(i, p)| (*p, net::org(i))).collect();
        Self { net, data, peers, nodes, expires_ms: T0 + 2_000 + 600_000 }
    }

    fn serve(&self, at_ms: i64, from: PeerId, req: DataRequest) -> Result<DataReply, DataRefusal> {
        let owner = Owner {
            org: "org1",
            state: &self.net.state,
            data_dir: self.data.path(),
            org_of_peer: &self.peers,
            manifests: &Default::default(),
        };
        match owner.serve(at_ms, from, req)? {
            super::Served::Reply(reply) => Ok(reply),
            super::Served::FromBucket(c) => panic!("these datasets are on disk, not in a bucket: {c:?}"),
        }
    }

    /// A chunk's bytes, or why it was refused.
    fn chunk(&self, at_ms: i64, from: PeerId, offset: u64) -> Result<Vec<u8>, DataRefusal> {
        let req = DataRequest::Chunk { lease_id: "L1".into(), path: "big.bin".into(), offset, len: u64::MAX };
        match self.serve(at_ms, from, req)? {
            DataReply::Chunk(bytes) => Ok(bytes),
            DataReply::Manifest(_) => panic!("a chunk request answered with a manifest"),
        }
    }

    /// Why a chunk was refused; a served chunk fails the test by its length.
    fn refusal(&self, at_ms: i64, from: PeerId, offset: u64) -> String {
        match self.chunk(at_ms, from, offset) {
            Ok(bytes) => panic!("served {} bytes", bytes.len()),
            Err(reason) => reason.to_string(),
        }
    }
}

#[test]
fn the_lessees_node_gets_the_manifest_and_every_chunk_while_the_lease_is_active() {
    let f = Fixture::new();
    let org2 = f.nodes[1];
    let Ok(DataReply::Manifest(m)) = f.serve(T0 + 3_000, org2, DataRequest::Manifest { lease_id: "L1".into() }) else {
        panic!("no manifest");
    };
    assert_eq!(m.files.len(), 1);
    let mut got = Vec::new();
    while (got.len() as u64) < m.files[0].size_bytes {
        let bytes = f.chunk(T0 + 3_000, org2, got.len() as u64).unwrap();
        assert!(!bytes.is_empty() && bytes.len() as u64 <= CHUNK_BYTES, "a chunk is at most {CHUNK_BYTES} bytes");
        got.extend(bytes);
    }
    assert_eq!(got, contents());
    assert_eq!(f.chunk(T0 + 3_000, org2, got.len() as u64).unwrap(), Vec::<u8>::new(), "nothing past the end");
}

#[test]
fn a_chunk_is_refused_to_any_peer_but_the_lessees_node() {
    let f = Fixture::new();
    let at = T0 + 3_000;
    assert_eq!(f.refusal(at, f.nodes[2], 0), "lease L1 is not between org1 and org3");
    assert_eq!(f.refusal(at, f.nodes[0], 0), "lease L1 is not between org1 and org1");
    assert_eq!(f.refusal(at, PeerId::random(), 0), "unknown peer");
    // A node that is not the owner serves nothing of the lease, even to its lessee.
    let other = Owner {
        org: "org3",
        state: &f.net.state,
        data_dir: f.data.path(),
        org_of_peer: &f.peers,
        manifests: &Default::default(),
    };
    let req = DataRequest::Manifest { lease_id: "L1".into() };
    assert_eq!(
        other.serve(at, f.nodes[1], req).err().map(|e| e.to_string()).as_deref(),
        Some("lease L1 is not between org3 and org2")
    );
    assert_eq!(f.chunk(at, f.nodes[1], 0).map(|b| b.len()), Ok(CHUNK_BYTES as usize), "the lessee's node is served");
}

#[test]
fn a_transfer_stops_at_the_first_chunk_asked_for_after_expiry() {
    let f = Fixture::new();
    let org2 = f.nodes[1];
    assert_eq!(f.chunk(f.expires_ms - 1, org2, 0).map(|b| b.len()), Ok(CHUNK_BYTES as usize), "served up to the end");
    let err = f.refusal(f.expires_ms, org2, CHUNK_BYTES);
    assert!(err.starts_with("lease L1 expired at"), "{err}");
    let err = f.serve(f.expires_ms, org2, DataRequest::Manifest { lease_id: "L1".into() }).unwrap_err().to_string();
    assert!(err.starts_with("lease L1 expired at"), "{err}");
}

#[test]
fn a_transfer_stops_at_the_first_chunk_asked_for_after_a_revocation() {
    let mut f = Fixture::new();
    let org2 = f.nodes[1];
    assert_eq!(f.chunk(T0 + 3_000, org2, 0).map(|b| b.len()), Ok(CHUNK_BYTES as usize));
    let revoke = Payload::RevokeLease { lease_id: "L1".into(), reason: "audit".into() };
    f.net.run(0, T0 + 4_000, revoke).unwrap();
    let err = f.refusal(T0 + 4_001, org2, CHUNK_BYTES);
    assert!(err.starts_with("lease L1 was revoked at") && err.ends_with("audit"), "{err}");
}

/// The lessee's writer: chunks in order, over a sync boundary, give the
/// file and the size and SHA-256 of all of them; a file already there is
/// never written through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_hashes_and_keeps_every_chunk_in_order() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    let mut writer = super::FileWriter::create(&path).unwrap();
    // Past `SYNC_EVERY_BYTES`, in uneven chunks.
    let all: Vec<u8> = (0..(super::SYNC_EVERY_BYTES + 3 * CHUNK_BYTES / 2)).map(|i| (i % 253) as u8).collect();
    for chunk in all.chunks(CHUNK_BYTES as usize - 7) {
        writer.append(chunk.to_vec()).await.unwrap();
    }
    let (size_bytes, digest) = writer.finish().await.unwrap();
    assert_eq!(size_bytes, all.len() as u64);
    assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&all)));
    assert!(std::fs::read(&path).unwrap() == all, "the file holds every chunk in order");
    // A name taken already (here by a link an attacker left) is refused.
    let link = dir.path().join("link.bin");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(super::FileWriter::create(&link).is_err());
    assert_eq!(std::fs::read(&path).unwrap().len(), all.len(), "the link's target is untouched");
}
