//! The node's Prometheus metrics (`GET /metrics`). Each node owns its
//! registry, so nodes in one process (the in-process tests) keep theirs
//! apart. Counters move where things happen; gauges that mirror state
//! (height, raft, mempool, leases, runs) are read when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's template (`/v1/leases/{id}`), never a concrete id.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_s() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub height: Gauge,
    pub raft_term: Gauge,
    pub raft_leader: Gauge,
    pub mempool_depth: Gauge,
    pub commit_latency_s: Histogram,
    pub txs_committed: Family<KindLabels, Counter>,
    pub leases: Family<StatusLabels, Gauge>,
    pub runs: Family<StatusLabels, Gauge>,
    pub api_requests: Family<RouteLabels, Counter>,
    pub api_latency_s: HistogramFamily<RouteLabels>,
    pub data_plane_bytes: Family<KindLabels, Counter>,
    pub storage_memory_bytes: Family<KindLabels, Gauge>,
    /// When the lease gauges were last counted: they scan this org's
    /// leases, so an unauthenticated scraper may not make that happen
    /// more often than every [`LEASE_COUNT_INTERVAL`].
    pub leases_counted_at: std::sync::Mutex<Option<std::time::Instant>>,
}

pub const LEASE_COUNT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("leasehold");
        let m = Self {
            height: Gauge::default(),
            raft_term: Gauge::default(),
            raft_leader: Gauge::default(),
            mempool_depth: Gauge::default(),
            commit_latency_s: latency_s(),
            txs_committed: Family::default(),
            leases: Family::default(),
            runs: Family::default(),
            api_requests: Family::default(),
            api_latency_s: Family::new_with_constructor(latency_s),
            data_plane_bytes: Family::default(),
            storage_memory_bytes: Family::default(),
            leases_counted_at: std::sync::Mutex::new(None),
            registry: Registry::default(),
        };
        registry.register("height", "Committed blocks", m.height.clone());
        registry.register("raft_term", "The raft term this node is in", m.raft_term.clone());
        registry.register("raft_leader", "1 while this node is the raft leader", m.raft_leader.clone());
        registry.register("mempool_depth", "Transactions waiting for a block on this node", m.mempool_depth.clone());
        registry.register(
            "commit_latency_seconds",
            "From a write's submission on this node to its commit",
            m.commit_latency_s.clone(),
        );
        registry.register("txs_committed", "Transactions committed valid, by kind", m.txs_committed.clone());
        registry.register(
            "leases",
            "This org's leases, as owner plus as lessee, by status (at most 1000 each way; counted every 5 s)",
            m.leases.clone(),
        );
        registry.register("runs", "Workflow runs on this node, by status", m.runs.clone());
        registry.register("api_requests", "API requests, by route, method and status", m.api_requests.clone());
        registry.register("api_latency_seconds", "API request latency, by route", m.api_latency_s.clone());
        registry.register("data_plane_bytes", "Leased file bytes, served or fetched", m.data_plane_bytes.clone());
        registry.register(
            "storage_memory_bytes",
            "RocksDB's memory: memtables, table readers (index and filter blocks outside the cache), block cache",
            m.storage_memory_bytes.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    pub fn api_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let labels = RouteLabels { route: route.into(), method: method.into(), status };
        self.api_requests.get_or_create(&labels).inc();
        self.api_latency_s.get_or_create(&labels).observe(seconds);
    }

    pub fn data_plane(&self, direction: &str, bytes: u64) {
        self.data_plane_bytes.get_or_create(&KindLabels { kind: direction.into() }).inc_by(bytes);
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
