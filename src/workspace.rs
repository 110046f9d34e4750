//! `leasehold workspace new DIR --lease ID`: writes the starter workflow
//! directory the node makes for a lease this org holds
//! (`GET /v1/leases/{id}/workspace`).

use std::path::Path;

use anyhow::{bail, Context};
use leasehold_node::cli::WorkspaceCommand;

pub async fn run(command: WorkspaceCommand) -> anyhow::Result<()> {
    let WorkspaceCommand::New { dir, lease, url, token_file } = command;
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} exists and is not empty: name a new directory", dir.display());
    }
    let token = std::fs::read_to_string(&token_file).with_context(|| format!("reading {}", token_file.display()))?;
    let resp = reqwest::Client::new()
        .get(format!("{url}/v1/leases/{lease}/workspace"))
        .bearer_auth(token.trim())
        .send()
        .await?;
    let workspace = crate::run::problem_or_json(resp).await?;
    let files = workspace["files"].as_object().context("the node answered without files")?;
    for (path, text) in files {
        write(&dir, path, text.as_str().context("a file that is not text")?)?;
    }
    println!(
        "wrote {} files to {}; run it with: leasehold run -f {}",
        files.len(),
        dir.display(),
        dir.join("workflow.yaml").display()
    );
    Ok(())
}

/// Each file durably (temp, fsync, rename), and only inside `dir`.
fn write(dir: &Path, path: &str, text: &str) -> anyhow::Result<()> {
    leasehold_files::check_rel_path(path).with_context(|| format!("the node named a file {path:?}"))?;
    let target = dir.join(path);
    let parent = target.parent().context("a file without a directory")?;
    leasehold_files::durable::create_dirs(parent)?;
    leasehold_files::durable::write_atomic(&target, text.as_bytes(), 0o644)?;
    Ok(())
}
