//! The runner alone, against a fake node: what it asks of its port, and
//! what it leaves behind when the port says no. No RocksDB, raft or
//! network; jobs run in the sandbox where the host has one, else
//! unsandboxed (this is the runner's logic, not the sandbox's: that is
//! `hostile.rs`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leasehold_chaincode::{ChaincodeError, Hash32, Lease, LeaseStatus, MemState, Payload, SignedTx, StateRead};
use leasehold_workflow::exec::ExecutorConfig;
use leasehold_workflow::live::{RunRecord, Status};
use leasehold_workflow::runner::wire::{ComputeReply, ComputeRequest};
use leasehold_workflow::runner::{Port, Progress, RunError, Runner, WorkflowConfig, Written};
use leasehold_workflow::secrets::SecretEnv;
use leasehold_workflow::WorkflowError;
use zeroize::Zeroizing;

/// A node whose ledger is empty and whose writes are kept in a list, or
/// refused with `refusal`.
struct FakeNode {
    state: MemState,
    written: Mutex<Vec<Payload>>,
    refusal: Option<&'static str>,
}

#[async_trait::async_trait]
impl Port for FakeNode {
    fn org(&self) -> &str {
        "org1"
    }
    fn state(&self) -> &dyn StateRead {
        &self.state
    }
    fn ledger_now_ms(&self) -> i64 {
        1_000
    }
    fn lease_status_now(&self, _: &str) -> Result<Option<(Lease, LeaseStatus)>, RunError> {
        Ok(None)
    }
    fn sign(&self, _: Payload) -> SignedTx {
        unreachable!("these tests hand no run to another org")
    }
    fn verify_signature(&self, _: &SignedTx) -> Result<(), ChaincodeError> {
        unreachable!("these tests run nothing for another org")
    }
    fn check(&self, _: &SignedTx) -> Result<(), RunError> {
        unreachable!("these tests run nothing for another org")
    }
    async fn write(&self, payload: Payload) -> Result<Written, RunError> {
        if let Some(why) = self.refusal {
            return Err(RunError::Forbidden(why.into()));
        }
        let mut written = self.written.lock().unwrap();
        written.push(payload);
        Ok(Written { tx_id: format!("tx-{}", written.len()), height: Some(written.len() as u64) })
    }
    async fn write_signed(&self, _: SignedTx) -> Result<Written, RunError> {
        unreachable!("these tests run nothing for another org")
    }
    fn check_disk(&self) -> Result<(), RunError> {
        Ok(())
    }
    async fn compute_request(&self, _: &str, _: ComputeRequest) -> Result<ComputeReply, RunError> {
        unreachable!("these tests hand no run to another org")
    }
    async fn fetch_lease_data(&self, _: &Lease, _: Progress<'_>) -> Result<PathBuf, RunError> {
        unreachable!("these tests lease nothing")
    }
    fn holds_own_files(&self, _: &str, _: &Hash32) -> bool {
        false
    }
    async fn own_dataset_files(&self, _: &str, _: &Hash32, _: Progress<'_>) -> Result<PathBuf, RunError> {
        unreachable!("these tests own no dataset")
    }
    fn delete_ended_caches(&self) {}
    fn secrets(&self, names: &[String]) -> Result<SecretEnv, RunError> {
        let mut pairs = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if name != "API_KEY" {
                return Err(WorkflowError::new(None, &format!("secrets[{i}]"), format!("no secret {name}")).into());
            }
            pairs.push((name.clone(), Zeroizing::new(SECRET.to_string())));
        }
        Ok(SecretEnv::new(pairs))
    }
}

/// The one secret the fake node holds, as `API_KEY`.
const SECRET: &str = "s3cr3t-0f-the-fake-node";

fn start(refusal: Option<&'static str>) -> (Arc<FakeNode>, Arc<Runner>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let node = Arc::new(FakeNode { state: MemState::default(), written: Mutex::new(Vec::new()), refusal });
    let cfg = WorkflowConfig { allow_unsandboxed: true, ..WorkflowConfig::default() };
    let runner = Runner::start(node.clone(), cfg, &ExecutorConfig::default(), dir.path()).unwrap();
    (node, runner, dir)
}

async fn until_final(runner: &Runner, id: &str) -> RunRecord {
    for _ in 0..600 {
        let r = runner.get(id).unwrap().record();
        if r.status.is_final() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} did not end within 30 s");
}

#[tokio::test]
async fn a_run_starts_and_finishes_on_the_ledger_through_the_port() {
    let (node, runner, _dir) = start(None);
    let r = runner.submit("jobs:\n- echo hello from the job\n", "alice", false).await.unwrap();
    let end = until_final(&runner, &r.id).await;
    assert_eq!(end.status, Status::Succeeded, "{:?}", end.reason);
    assert_eq!(end.start_tx.as_deref(), Some("tx-1"));
    let text: Vec<String> = runner.get(&r.id).unwrap().read_lines(0, 1 << 20).into_iter().map(|l| l.text).collect();
    assert!(text.iter().any(|t| t == "hello from the job"), "the job's output is in the run's log: {text:?}");
    let written = node.written.lock().unwrap().clone();
    match written.as_slice() {
        [Payload::StartRun { run_id: started, lease_ids, inputs, .. }, Payload::FinishRun { run_id: finished, status, output_hash }] =>
        {
            assert_eq!((started, finished), (&r.id, &r.id));
            assert!(lease_ids.is_empty() && inputs.is_empty());
            assert_eq!(*status, Status::Succeeded.to_ledger());
            assert_eq!(output_hash.map(hex::encode), end.output_hash, "the ledger gets the record's output hash");
        }
        other => panic!("expected a start and a finish, the node was asked to write {other:?}"),
    }
}

#[tokio::test]
async fn a_volume_the_ledger_does_not_know_is_refused_naming_it_and_nothing_is_written() {
    let (node, runner, dir) = start(None);
    let yaml = "jobs:\n- command: ls /data\n  volumes: [{id: lease-nobody, name: d, path: /home/jovyan/d}]\n";
    let Err(RunError::Workflow(e)) = runner.submit(yaml, "alice", false).await else {
        panic!("an unknown lease is the workflow's fault");
    };
    assert_eq!(e.field_path(), "jobs[0].volumes[0].id");
    assert!(e.reason.contains("lease-nobody"), "{e}");
    assert!(node.written.lock().unwrap().is_empty(), "nothing reached the ledger");
    assert!(runner.list().is_empty());
    assert_eq!(std::fs::read_dir(dir.path().join("runs")).unwrap().count(), 0, "no run directory is left");
}

#[tokio::test]
async fn a_start_the_node_refuses_leaves_no_run_and_says_why_in_the_nodes_words() {
    let (_node, runner, dir) = start(Some("this org may not run workflows"));
    let err = runner.submit("jobs:\n- echo never\n", "alice", false).await.unwrap_err();
    assert!(matches!(&err, RunError::Forbidden(why) if why == "this org may not run workflows"), "{err:?}");
    assert!(runner.list().is_empty(), "a run not on the ledger is not listed");
    assert_eq!(std::fs::read_dir(dir.path().join("runs")).unwrap().count(), 0, "no run directory is left");
}

#[tokio::test]
async fn a_cancelled_run_stops_and_its_end_is_recorded_as_cancelled() {
    let (node, runner, _dir) = start(None);
    let r = runner.submit("jobs:\n- sleep 60\n", "alice", false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    runner.cancel(&r.id, "alice").unwrap();
    let end = until_final(&runner, &r.id).await;
    assert_eq!(end.status, Status::Cancelled);
    assert!(end.reason.as_deref().is_some_and(|w| w.contains("cancelled by alice")), "{:?}", end.reason);
    let written = node.written.lock().unwrap().clone();
    assert!(
        matches!(written.last(), Some(Payload::FinishRun { status, output_hash: None, .. }) if *status == Status::Cancelled.to_ledger()),
        "{written:?}"
    );
    let again = runner.cancel(&r.id, "alice").unwrap_err();
    assert!(matches!(again, RunError::Conflict(_)), "a run that ended is not cancelled twice: {again:?}");
}

#[tokio::test]
async fn a_jobs_secret_reaches_it_as_a_variable_and_never_the_log() {
    let (node, runner, dir) = start(None);
    // The job proves it holds the value (its command names only the
    // value's hash), then prints it: the log shows the mask.
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(SECRET.as_bytes()));
    let yaml = format!(
        "cmd_mode: shell\nsecrets: [API_KEY]\njobs:\n- 'printf %s \"$API_KEY\" | sha256sum | grep -q {hash} && echo \"got it: $API_KEY.\"'\n"
    );
    let r = runner.submit(&yaml, "alice", false).await.unwrap();
    let end = until_final(&runner, &r.id).await;
    assert_eq!(end.status, Status::Succeeded, "the job saw the value: {:?}", end.reason);
    let text: Vec<String> = runner.get(&r.id).unwrap().read_lines(0, 1 << 20).into_iter().map(|l| l.text).collect();
    assert!(text.iter().any(|t| t == "got it: ***."), "{text:?}");
    assert!(!text.iter().any(|t| t.contains(SECRET)), "{text:?}");
    // Nowhere in the run's files, its record or the ledger.
    let record = serde_json::to_string(&runner.get(&r.id).unwrap().record()).unwrap();
    assert!(!record.contains(SECRET));
    assert!(!format!("{:?}", node.written.lock().unwrap()).contains(SECRET));
    for f in walk(dir.path()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "{} holds the secret", f.display());
    }
    // A second run is not handed the first's outputs: the value may differ.
    let again = runner.submit(&yaml, "alice", false).await.unwrap();
    assert_eq!(again.reused_from, None);
    // A name the node does not hold is the field's fault, and nothing starts.
    let before = node.written.lock().unwrap().len();
    let Err(RunError::Workflow(e)) = runner.submit("secrets: [API_KEY, OTHER]\njobs: ['true']\n", "alice", false).await
    else {
        panic!("a missing secret is the workflow's fault");
    };
    assert_eq!(e.field_path(), "secrets[1]");
    assert_eq!(node.written.lock().unwrap().len(), before, "nothing reached the ledger");
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(walk(&e.path())),
            Ok(t) if t.is_file() => out.push(e.path()),
            _ => {}
        }
    }
    out
}
