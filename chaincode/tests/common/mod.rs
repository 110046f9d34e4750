//! A three-org network over an in-memory state, for the chaincode tests.
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use leasehold_chaincode::*;

pub const T0: i64 = 1_795_469_400_000; // 2026-11-23T21:30:00Z
pub const HOUR: u64 = 3_600_000;

pub struct Net {
    pub genesis: Genesis,
    pub keys: Vec<SigningKey>,
    pub state: MemState,
    pub nonce: u64,
    pub height: u64,
}

pub fn org(i: usize) -> String {
    format!("org{}", i + 1)
}

impl Net {
    pub fn new() -> Self {
        let keys: Vec<SigningKey> = (0..3).map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32])).collect();
        let orgs = keys
            .iter()
            .enumerate()
            .map(|(i, k)| OrgInfo {
                id: org(i),
                name: format!("Organisation {}", i + 1),
                signing_key: k.verifying_key().to_bytes(),
                x25519_key: [i as u8; 32],
                peer_id: format!("peer{i}"),
                p2p_addr: String::new(),
            })
            .collect();
        let genesis = Genesis {
            network_id: "test-net".into(),
            created_at_ms: T0,
            orgs,
            policy: NetworkPolicy { max_lease_ms: 30 * 24 * HOUR, ..NetworkPolicy::default() },
        };
        Self { genesis, keys, state: MemState::default(), nonce: 0, height: 0 }
    }

    pub fn body(&mut self, org_ix: usize, at: i64, payload: Payload) -> TxBody {
        self.nonce += 1;
        TxBody {
            network_id: self.genesis.network_id.clone(),
            org: org(org_ix),
            nonce: self.nonce,
            created_at_ms: at,
            payload,
        }
    }

    pub fn tx(&mut self, org_ix: usize, at: i64, payload: Payload) -> SignedTx {
        let body = self.body(org_ix, at, payload);
        body.sign(&self.keys[org_ix])
    }

    pub fn ctx(&self, at: i64) -> BlockCtx<'_> {
        BlockCtx { genesis: &self.genesis, height: self.height, time_ms: at, proposer: "org1".into() }
    }

    pub fn submit(&mut self, tx: &SignedTx, at: i64) -> Result<Vec<Event>> {
        self.height += 1;
        let genesis = self.genesis.clone();
        let ctx = BlockCtx { genesis: &genesis, height: self.height, time_ms: at, proposer: "org1".into() };
        apply(&mut self.state, tx, &ctx)
    }

    /// Signs as `org_ix` and applies at block time `at`.
    pub fn run(&mut self, org_ix: usize, at: i64, payload: Payload) -> Result<Vec<Event>> {
        let tx = self.tx(org_ix, at, payload);
        self.submit(&tx, at)
    }

    /// Like `run`, and asserts that a rejection left the state untouched.
    pub fn reject(&mut self, org_ix: usize, at: i64, payload: Payload) -> ChaincodeError {
        let before = self.state.clone();
        let err = self.run(org_ix, at, payload).expect_err("transaction should be rejected");
        assert_eq!(before, self.state, "a rejected tx changed state: {err}");
        err
    }

    pub fn lease(&self, id: &str) -> Lease {
        query::lease(&self.state, id).unwrap().expect("lease exists")
    }

    pub fn dataset(&self, id: &str) -> Dataset {
        query::dataset(&self.state, id).unwrap().expect("dataset exists")
    }
}

pub fn policy(allowed: &[usize], max_ms: u64, approval: Approval, exclusive: bool) -> AccessPolicy {
    AccessPolicy {
        allowed_orgs: allowed.iter().map(|i| org(*i)).collect(),
        max_lease_ms: max_ms,
        approval,
        exclusive,
        require_tests: false,
        derived: DerivedPolicy::Allow,
        access: AccessMode::Files,
        release: ReleasePolicy::default(),
    }
}

pub fn spec(title: &str, tags: &[&str], policy: AccessPolicy) -> DatasetSpec {
    DatasetSpec {
        title: title.into(),
        description: format!("{title} description"),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        content_hash: [7; 32],
        size_bytes: 4551,
        public_metadata: "{\"rows\":150}".into(),
        private_metadata: SealedMetadata { nonce: [1; 12], ciphertext: vec![9; 48] },
        policy,
    }
}

pub fn register(id: &str, spec: DatasetSpec) -> Payload {
    Payload::RegisterDataset { id: id.into(), spec, derived_from_run: None }
}

pub fn request(lease: &str, ds: &str, ms: u64) -> Payload {
    Payload::RequestLease { lease_id: lease.into(), dataset_id: ds.into(), duration_ms: ms, purpose: "k-means".into() }
}

pub fn grant(lease: &str, ms: u64) -> Payload {
    Payload::GrantLease { lease_id: lease.into(), duration_ms: ms }
}

/// org1 owns `iris` (org2 and org3 allowed, owner approval, max 1 h);
/// org2 has requested lease `L1` for 30 minutes.
pub fn with_requested_lease() -> Net {
    let mut net = Net::new();
    net.run(
        0,
        T0,
        register("iris", spec("Iris", &["flowers", "tabular"], policy(&[1, 2], HOUR, Approval::Owner, false))),
    )
    .unwrap();
    net.run(1, T0 + 1000, request("L1", "iris", HOUR / 2)).unwrap();
    net
}

/// As [`with_requested_lease`], with L1 granted for 10 minutes at T0 + 2 s.
pub fn with_active_lease() -> Net {
    let mut net = with_requested_lease();
    net.run(0, T0 + 2000, grant("L1", 600_000)).unwrap();
    net
}
