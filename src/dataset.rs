//! `leasehold dataset add --from s3://bucket/prefix`: registers a dataset
//! whose files stay in the org's object store, through the node's API.

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use leasehold_node::cli::DatasetCommand;

pub async fn run(command: DatasetCommand) -> anyhow::Result<()> {
    let DatasetCommand::Add { from, title, id, description, allow, max_lease_h, access, automatic, url, token_file } =
        command;
    let token = read_token(&token_file)?;
    let max_lease_ms = max_lease_h.checked_mul(3_600_000).context("--max-lease-h is too large")?;
    let body = json!({
        "id": id,
        "title": title,
        "description": description,
        "from": from,
        "policy": {
            "allowed_orgs": allow,
            "max_lease_ms": max_lease_ms,
            "approval": if automatic { "automatic" } else { "owner" },
            "access": access,
        },
        "private_metadata": {},
    });
    eprintln!("listing and hashing {from} at the node; a large prefix takes a while");
    let resp = reqwest::Client::new().post(format!("{url}/v1/datasets")).bearer_auth(token).json(&body).send().await?;
    let written = crate::run::problem_or_json(resp).await?;
    println!("{}", serde_json::to_string_pretty(&written["resource"])?);
    Ok(())
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(token.trim().to_string())
}
