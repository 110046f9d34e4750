//! `leasehold run -f workflow.yaml`: submits a workflow to a node, prints its
//! log as it happens (data transfers, job output, job ends), and exits with
//! the run's status. Ctrl-C cancels the run and waits for it to end.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::Value;

/// Reconnections to the log stream before giving up.
const MAX_RECONNECTS: u32 = 10;

/// What is sent: a file named `workflow.yaml` goes with its directory (as
/// jupyterflow's users keep their scripts beside it), hidden entries left
/// out; any other file goes alone.
fn body_of(file: &Path) -> anyhow::Result<(&'static str, Vec<u8>)> {
    let dir = file.parent().filter(|_| file.file_name().is_some_and(|n| n == "workflow.yaml"));
    let Some(dir) = dir else {
        let yaml = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        return Ok(("application/yaml", yaml));
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    add_dir(&mut tar, dir, Path::new("")).with_context(|| format!("packing {}", dir.display()))?;
    Ok(("application/x-tar", tar.into_inner()?))
}

fn add_dir(tar: &mut tar::Builder<Vec<u8>>, dir: &Path, rel: &Path) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let (path, rel) = (e.path(), rel.join(&name));
        let kind = e.file_type()?;
        if kind.is_dir() {
            add_dir(tar, &path, &rel)?;
        } else if kind.is_file() {
            tar.append_path_with_name(&path, &rel)?;
        } else {
            eprintln!("leaving out {}: a bundle holds only files and directories", path.display());
        }
    }
    Ok(())
}

pub async fn run(file: &Path, url: &str, token_file: &Path, force: bool) -> anyhow::Result<()> {
    let (content_type, body) = body_of(file)?;
    let token = std::fs::read_to_string(token_file).with_context(|| format!("reading {}", token_file.display()))?;
    let token = token.trim();
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{url}/v1/runs{}", if force { "?force=true" } else { "" }))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await?;
    let run = problem_or_json(resp).await?;
    let id = run["id"].as_str().context("the node answered without a run id")?.to_string();
    if let Some(from) = run["reused_from"].as_str() {
        eprintln!(
            "run {id}: the same code, environment and inputs as run {from}; reusing its outputs (--force runs again)"
        );
    }
    eprintln!(
        "run {id} started on {} ({} jobs; sandbox: {})",
        run["org"],
        run["jobs"].as_array().map_or(0, Vec::len),
        run["sandbox"]
    );
    let end = tokio::select! {
        end = follow(&http, url, token, &id) => end?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("cancelling run {id}...");
            http.post(format!("{url}/v1/runs/{id}/cancel")).bearer_auth(token).send().await?;
            follow(&http, url, token, &id).await?
        }
    };
    for job in end["jobs"].as_array().into_iter().flatten() {
        eprintln!(
            "  job {}: {} (exit code {}, {} ms)",
            job["number"],
            job["status"].as_str().unwrap_or("?"),
            job["exit_code"],
            job["duration_ms"]
        );
    }
    match end["status"].as_str() {
        Some("succeeded") => {
            println!("run {id} succeeded; outputs {}", end["output_hash"].as_str().unwrap_or("-"));
            Ok(())
        }
        Some(s) => bail!("run {id} {s}: {}", end["reason"].as_str().unwrap_or("no reason given")),
        None => bail!("run {id} ended without a status"),
    }
}

pub(crate) async fn problem_or_json(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let field = body["field"].as_str().map(|f| format!(" [{f}]")).unwrap_or_default();
    bail!("{status}{field}: {}", body["detail"].as_str().unwrap_or("no detail"))
}

/// Prints log events until the `end` event, resuming after a dropped
/// connection from the last line seen; returns the final run record.
async fn follow(http: &reqwest::Client, url: &str, token: &str, id: &str) -> anyhow::Result<Value> {
    let mut next = 0u64;
    for attempt in 0..=MAX_RECONNECTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let resp = http.get(format!("{url}/v1/runs/{id}/logs?from={next}")).bearer_auth(token).send().await;
        let Ok(resp) = resp else { continue };
        if !resp.status().is_success() {
            return problem_or_json(resp).await;
        }
        let mut events = resp.bytes_stream().eventsource();
        while let Some(Ok(event)) = events.next().await {
            let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            match event.event.as_str() {
                "log" => {
                    print_line(&data);
                    next = data["seq"].as_u64().map_or(next, |s| s + 1);
                }
                "end" => return Ok(data),
                _ => {}
            }
        }
    }
    bail!("lost the log stream of run {id}; see {url}/v1/runs/{id}")
}

fn print_line(line: &Value) {
    let text = line["text"].as_str().unwrap_or("");
    match (line["stream"].as_str(), line["job"].as_u64()) {
        (Some("runner"), _) => eprintln!("· {text}"),
        (Some("stderr"), Some(j)) => eprintln!("[job {j}] {text}"),
        (_, Some(j)) => println!("[job {j}] {text}"),
        _ => println!("{text}"),
    }
}
