//! A run as it happens: its record (persisted as `run.json` at each change),
//! its log (kept in memory for streaming and appended to `logs.jsonl`), and
//! the stop signal that cancellation and the lease monitor pull.

use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use leasehold_chaincode::{DatasetRef, RunStatus};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use leasehold_files::FileError;

use crate::now_ms;

type Result<T> = std::result::Result<T, FileError>;

/// Bytes per log line; a longer line is cut and says so.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Log text a running run keeps in memory for its followers; older lines,
/// and every line of an ended run, are read back from `logs.jsonl`.
pub const MEMORY_LOG_BYTES: usize = 1 << 20;
/// How much of `logs.jsonl` is read at a restart to find where it ends:
/// more than one line's worst case, so the last whole line is in it.
const LOG_TAIL_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }

    pub fn to_ledger(self) -> RunStatus {
        match self {
            Self::Queued | Self::Running => RunStatus::Running,
            Self::Succeeded => RunStatus::Succeeded,
            Self::Failed => RunStatus::Failed,
            Self::Cancelled => RunStatus::Cancelled,
            Self::Expired => RunStatus::Expired,
            Self::Revoked => RunStatus::Revoked,
        }
    }
}

/// Why a run was stopped from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Cancelled(String),
    Expired(String),
    Revoked(String),
}

impl Stop {
    pub fn status(&self) -> Status {
        match self {
            Self::Cancelled(_) => Status::Cancelled,
            Self::Expired(_) => Status::Expired,
            Self::Revoked(_) => Status::Revoked,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Cancelled(r) | Self::Expired(r) | Self::Revoked(r) => r,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub number: usize,
    pub command: String,
    pub depends_on: Vec<usize>,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub error: Option<String>,
}

impl JobRecord {
    /// A job that has not started.
    pub fn queued(number: usize, command: String, depends_on: Vec<usize>) -> Self {
        Self {
            number,
            command,
            depends_on,
            status: Status::Queued,
            exit_code: None,
            started_at_ms: None,
            finished_at_ms: None,
            error: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub name: String,
    pub org: String,
    pub submitted_by: String,
    pub status: Status,
    /// Why it failed or was stopped.
    pub reason: Option<String>,
    /// How jobs were isolated; says so plainly when they were not.
    pub sandbox: String,
    pub workflow_hash: String,
    pub leases: Vec<String>,
    pub inputs: Vec<DatasetRef>,
    pub jobs: Vec<JobRecord>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// Content hash of the output directory, for a succeeded run.
    pub output_hash: Option<String>,
    pub start_tx: Option<String>,
    pub finish_tx: Option<String>,
    /// The dataset the outputs were published as.
    pub published_as: Option<String>,
    /// What the jobs were held to, and by what.
    #[serde(default)]
    pub protections: Vec<super::sandbox::Protection>,
    /// The key of its Python environment, when it has a `requirements.txt`.
    #[serde(default)]
    pub environment: Option<String>,
    /// sha256 of the workflow hash and each input's content hash: a later
    /// run with the same key may reuse this one's outputs.
    #[serde(default)]
    pub reuse_key: Option<String>,
    /// The run whose outputs this one took instead of running its jobs.
    #[serde(default)]
    pub reused_from: Option<String>,
    /// For compute-to-data: the org whose node ran it (`org` asked for it).
    #[serde(default)]
    pub executor: Option<String>,
    /// For compute-to-data: whether its outputs may leave the executor's
    /// node, and why; `None` while undecided.
    #[serde(default)]
    pub release: Option<(bool, String)>,
    /// Where a cluster ran each job, by number: its job id there, the node
    /// and the queue wait. Kept at the node that ran it: never sent to a
    /// compute lessee, whose view is bounded (see `remote_status`).
    #[serde(default)]
    pub placements: std::collections::BTreeMap<usize, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
    /// What the runner itself reports: data transfers, job starts and ends.
    Runner,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: u64,
    pub time_ms: i64,
    pub job: Option<usize>,
    pub stream: Stream,
    pub text: String,
}

struct Log {
    /// The newest lines, at most [`MEMORY_LOG_BYTES`] of text.
    lines: VecDeque<LogLine>,
    bytes: usize,
    next_seq: u64,
    file: Option<fs::File>,
}

pub struct LiveRun {
    dir: PathBuf,
    record: Mutex<RunRecord>,
    log: Mutex<Log>,
    /// Bumped on every change to the record or the log.
    changed: watch::Sender<u64>,
    stop: watch::Sender<Option<Stop>>,
    /// Bytes of job output logged so far, against the run's log limit.
    output_bytes: AtomicU64,
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(v).expect("serialisable");
    leasehold_files::durable::write_atomic(path, &json, 0o644).map_err(|e| FileError::new(path, e))
}

impl LiveRun {
    /// Creates the run's directory (with `work/` and `output/`) and record.
    pub fn create(dir: &Path, record: RunRecord) -> Result<Arc<Self>> {
        for d in [dir.join("work"), dir.join("output")] {
            fs::create_dir_all(&d).map_err(|e| FileError::new(&d, e))?;
        }
        write_json(&dir.join("run.json"), &record)?;
        let log_path = dir.join("logs.jsonl");
        let file = fs::OpenOptions::new().create(true).append(true).open(&log_path);
        let file = file.map_err(|e| FileError::new(&log_path, e))?;
        Ok(Self::new(dir, record, 0, Some(file)))
    }

    /// A finished run from disk, for listing and log replay after a restart.
    /// Only the log's tail is read, to learn where it ends.
    pub fn load(dir: &Path) -> Result<Arc<Self>> {
        let path = dir.join("run.json");
        let bytes = fs::read(&path).map_err(|e| FileError::new(&path, e))?;
        let record: RunRecord =
            serde_json::from_slice(&bytes).map_err(|e| FileError::new(&path, format!("cannot decode: {e}")))?;
        let log_path = dir.join("logs.jsonl");
        let next_seq = last_seq(&log_path).map_or(0, |s| s + 1);
        // A run the node was running when it stopped still logs its end.
        let file = match record.status.is_final() {
            true => None,
            false => fs::OpenOptions::new().append(true).open(&log_path).ok(),
        };
        Ok(Self::new(dir, record, next_seq, file))
    }

    fn new(dir: &Path, record: RunRecord, next_seq: u64, file: Option<fs::File>) -> Arc<Self> {
        Arc::new(Self {
            dir: dir.to_path_buf(),
            record: Mutex::new(record),
            log: Mutex::new(Log { lines: VecDeque::new(), bytes: 0, next_seq, file }),
            changed: watch::channel(0).0,
            stop: watch::channel(None).0,
            output_bytes: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    pub fn output_dir(&self) -> PathBuf {
        self.dir.join("output")
    }

    pub fn record(&self) -> RunRecord {
        self.record.lock().expect("run record lock").clone()
    }

    /// Changes the record, persists it and wakes the watchers.
    pub fn update(&self, f: impl FnOnce(&mut RunRecord)) {
        let snapshot = {
            let mut r = self.record.lock().expect("run record lock");
            f(&mut r);
            r.clone()
        };
        // The record is fsynced (tens of ms on a busy disk); callers are
        // async, on threads raft's heartbeats share. A log line, by
        // contrast, is an append to the page cache, kept under the log's
        // lock so the file has the lines in `seq` order.
        let persist = || write_json(&self.dir.join("run.json"), &snapshot);
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let persisted = if multi_thread { tokio::task::block_in_place(persist) } else { persist() };
        if let Err(e) = persisted {
            tracing::warn!(run = %snapshot.id, "cannot persist the run record: {e}");
        }
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn update_job(&self, number: usize, f: impl FnOnce(&mut JobRecord)) {
        self.update(|r| {
            if let Some(j) = r.jobs.iter_mut().find(|j| j.number == number) {
                f(j)
            }
        })
    }

    pub fn log(&self, job: Option<usize>, stream: Stream, text: &str) {
        let mut text = text.trim_end_matches(['\n', '\r']).to_string();
        if text.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(" …[line truncated]");
        }
        {
            let mut log = self.log.lock().expect("run log lock");
            let line = LogLine { seq: log.next_seq, time_ms: now_ms(), job, stream, text };
            log.next_seq += 1;
            if let Some(f) = &mut log.file {
                let mut bytes = serde_json::to_vec(&line).expect("serialisable");
                bytes.push(b'\n');
                let _ = f.write_all(&bytes);
            }
            log.bytes += line.text.len();
            log.lines.push_back(line);
            while log.bytes > MEMORY_LOG_BYTES {
                let old = log.lines.pop_front().expect("bytes count lines in memory");
                log.bytes -= old.text.len();
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Counts `bytes` more of job output and returns the run's total.
    pub fn add_output_bytes(&self, bytes: u64) -> u64 {
        self.output_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes
    }

    /// Lines with `seq >= from`, up to about `max_bytes` of text: from
    /// memory when it holds them, else from `logs.jsonl`. Blocking.
    pub fn read_lines(&self, from: u64, max_bytes: usize) -> Vec<LogLine> {
        {
            let log = self.log.lock().expect("run log lock");
            if from >= log.next_seq {
                return Vec::new();
            }
            if log.lines.front().is_some_and(|l| l.seq <= from) {
                let start = log.lines.partition_point(|l| l.seq < from);
                let mut taken = 0;
                return log
                    .lines
                    .range(start..)
                    .take_while(|l| {
                        let more = taken < max_bytes;
                        taken += l.text.len();
                        more
                    })
                    .cloned()
                    .collect();
            }
        }
        read_log_file(&self.dir.join("logs.jsonl"), from, max_bytes)
    }

    /// Every line with `seq >= from`. Blocking; for tests and small logs.
    pub fn lines_from(&self, from: u64) -> Vec<LogLine> {
        self.read_lines(from, usize::MAX)
    }

    /// Frees the log's memory and file once the run has ended; readers go
    /// to the file from then on.
    pub fn evict_log(&self) {
        let mut log = self.log.lock().expect("run log lock");
        log.lines.clear();
        log.bytes = 0;
        if let Some(f) = log.file.take() {
            let _ = f.sync_data();
        }
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Asks the run to stop; the first reason given is the one that counts.
    pub fn stop(&self, why: Stop) -> bool {
        self.stop.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(why);
                true
            } else {
                false
            }
        })
    }

    pub fn stop_signal(&self) -> watch::Receiver<Option<Stop>> {
        self.stop.subscribe()
    }

    pub fn stopped(&self) -> Option<Stop> {
        self.stop.borrow().clone()
    }
}

/// Streams `logs.jsonl` from the start, skipping lines before `from`.
fn read_log_file(path: &Path, from: u64, max_bytes: usize) -> Vec<LogLine> {
    let Ok(file) = fs::File::open(path) else { return Vec::new() };
    let mut out = Vec::new();
    let mut taken = 0;
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        let Ok(l) = serde_json::from_str::<LogLine>(&line) else { continue };
        if l.seq >= from {
            if taken >= max_bytes {
                break;
            }
            taken += l.text.len();
            out.push(l);
        }
    }
    out
}

/// The last whole line's sequence number, read from the file's tail only.
fn last_seq(path: &Path) -> Option<u64> {
    let mut f = fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES))).ok()?;
    let mut tail = Vec::new();
    f.take(LOG_TAIL_BYTES).read_to_end(&mut tail).ok()?;
    tail.split(|b| *b == b'\n').rev().find_map(|l| serde_json::from_slice::<LogLine>(l).ok()).map(|l| l.seq)
}
