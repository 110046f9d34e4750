//! openraft's own storage test suite (`openraft::testing::Suite`) against
//! our `LogStore` and `StateMachine`, each on a fresh RocksDB in a temporary
//! directory: votes, log reads, appends, truncation, purges, membership,
//! applying, and building then installing a snapshot. No network, no
//! consensus round; a few seconds.

use leasehold_node::consensus::{LogStore, StateMachine};
use leasehold_node::ledger::store::Store;
use leasehold_node::raft::{NodeId, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

struct OnDisk;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for OnDisk {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().unwrap();
        let opts = leasehold_node::init::InitOptions {
            orgs: 3,
            network_id: "storage-suite".into(),
            host: "127.0.0.1".into(),
            p2p_ports: vec![1, 2, 3],
            api_ports: vec![4, 5, 6],
            now_ms: leasehold_node::now_ms(),
        };
        leasehold_node::init::init(&dir.path().join("net"), &opts).unwrap();
        let genesis = std::fs::read(dir.path().join("net/genesis.json")).unwrap();
        let store = Store::open(&dir.path().join("ledger")).unwrap();
        let ledger = std::sync::Arc::new(leasehold_node::ledger::Ledger::open(store.clone(), genesis).unwrap());
        let sm = StateMachine::new(ledger, dir.path().join("snapshots"));
        Ok((dir, LogStore::new(store), sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_our_rocksdb_adapters() {
    Suite::test_all(OnDisk).expect("the storage suite");
}
