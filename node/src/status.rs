//! The status view for people and scripts.

use serde::Serialize;

use crate::handle::NodeHandle;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub org: String,
    pub network_id: String,
    pub height: u64,
    pub head_hash: String,
    pub state_root: String,
    pub block_time_ms: i64,
    /// The org whose node leads raft now, if any.
    pub leader: Option<String>,
    /// Orgs whose nodes this node is connected to.
    pub peers: Vec<String>,
    pub raft_term: u64,
    pub raft_applied_index: Option<u64>,
    /// Restored from a backup and not yet caught up, where the fence stands:
    /// it neither votes nor stands for election. `None` otherwise.
    pub restore_fence: Option<&'static str>,
}

impl NodeHandle {
    pub async fn status(&self) -> Status {
        let head = self.ledger().head();
        let metrics = self.inner.consensus.raft_metrics();
        Status {
            org: self.org().to_string(),
            network_id: self.ledger().genesis.network_id.clone(),
            height: head.height,
            head_hash: hex::encode(head.hash),
            state_root: head.state_root.to_hex(),
            block_time_ms: head.time_ms,
            leader: self.leader_org(),
            peers: self.connected_orgs().await,
            raft_term: metrics.current_term,
            raft_applied_index: metrics.last_applied.map(|l| l.index),
            restore_fence: self.restore_fence(),
        }
    }

    /// Counts an API request for `/metrics`: its route's template, method,
    /// status and seconds taken.
    pub fn record_api_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.ledger().metrics.api_request(route, method, status, seconds);
    }

    /// The node's metrics in the Prometheus text format, with the gauges
    /// that mirror state read now.
    pub fn metrics_text(&self) -> String {
        use leasehold_chaincode::{query, LeaseStatus};
        let ledger = self.ledger();
        let m = &ledger.metrics;
        let raft = self.inner.consensus.raft_metrics();
        m.height.set(ledger.head().height as i64);
        m.raft_term.set(raft.current_term as i64);
        m.raft_leader.set(i64::from(raft.current_leader == Some(raft.id)));
        m.mempool_depth.set(self.inner.consensus.mempool_len() as i64);
        let memory = ledger.store.memory();
        for (kind, bytes) in [
            ("memtables", memory.memtables_bytes),
            ("table_readers", memory.table_readers_bytes),
            ("block_cache", memory.block_cache_bytes),
        ] {
            m.storage_memory_bytes.get_or_create(&crate::metrics::KindLabels { kind: kind.into() }).set(bytes as i64);
        }
        let now = self.ledger_now();
        let mut counted_at = m.leases_counted_at.lock().expect("metrics lock");
        let stale = counted_at.is_none_or(|t| t.elapsed() >= crate::metrics::LEASE_COUNT_INTERVAL);
        let statuses = [
            LeaseStatus::Requested,
            LeaseStatus::Active,
            LeaseStatus::Expired,
            LeaseStatus::Denied,
            LeaseStatus::Released,
            LeaseStatus::Revoked,
        ];
        for status in statuses.into_iter().filter(|_| stale) {
            let mut count = 0;
            for side in [true, false] {
                let f = query::LeaseFilter {
                    owner: side.then(|| self.org().to_string()),
                    lessee: (!side).then(|| self.org().to_string()),
                    status: Some(status),
                    limit: query::MAX_PAGE,
                    ..Default::default()
                };
                count += query::leases(&ledger.store, &f, now).map(|l| l.items.len()).unwrap_or(0);
            }
            let labels = crate::metrics::StatusLabels { status: status.as_str().into() };
            m.leases.get_or_create(&labels).set(count as i64);
        }
        if stale {
            *counted_at = Some(std::time::Instant::now());
        }
        drop(counted_at);
        let statuses = ["queued", "running", "succeeded", "failed", "cancelled", "expired", "revoked"];
        let mut runs: std::collections::BTreeMap<&str, i64> = statuses.iter().map(|s| (*s, 0)).collect();
        for r in self.runner().list() {
            *runs.entry(r.status.as_str()).or_default() += 1;
        }
        for (status, n) in runs {
            m.runs.get_or_create(&crate::metrics::StatusLabels { status: status.into() }).set(n);
        }
        m.render()
    }
}
