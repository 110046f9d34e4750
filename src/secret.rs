//! `leasehold secret set|list|rm`: this org's job secrets, through its
//! node's API (`/v1/secrets`). A value is read from standard input, never
//! from the command line, where `ps` would show it to the machine's users.

use std::io::{BufRead, Read};

use anyhow::{bail, Context};
use leasehold_node::cli::{ApiArgs, SecretCommand};
use leasehold_workflow::secrets::check_name;
use zeroize::Zeroizing;

/// More than any value the node takes: the node names the limit.
const MAX_STDIN_BYTES: u64 = 64 * 1024;

pub async fn run(command: SecretCommand) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    // Checked here too: the name becomes a segment of the URL.
    if let SecretCommand::Set { name, .. } | SecretCommand::Rm { name, .. } = &command {
        check_name("name", name).map_err(|e| anyhow::anyhow!("[name] {}", e.reason))?;
    }
    match command {
        SecretCommand::Set { name, api } => {
            let value = read_value()?;
            let body = Zeroizing::new(serde_json::to_vec(&serde_json::json!({ "value": value.as_str() }))?);
            let resp = http
                .put(format!("{}/v1/secrets/{name}", api.url))
                .bearer_auth(token(&api)?)
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .await?;
            crate::run::problem_or_json(resp).await?;
            eprintln!("secret {name} stored at {}; a workflow names it under secrets:", api.url);
        }
        SecretCommand::List { api } => {
            let resp = http.get(format!("{}/v1/secrets", api.url)).bearer_auth(token(&api)?).send().await?;
            let list = crate::run::problem_or_json(resp).await?;
            for s in list["secrets"].as_array().into_iter().flatten() {
                println!("{}", s["name"].as_str().unwrap_or_default());
            }
        }
        SecretCommand::Rm { name, api } => {
            let resp = http.delete(format!("{}/v1/secrets/{name}", api.url)).bearer_auth(token(&api)?).send().await?;
            crate::run::problem_or_json(resp).await?;
            eprintln!("secret {name} deleted");
        }
    }
    Ok(())
}

fn token(api: &ApiArgs) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(&api.token_file)
        .with_context(|| format!("reading the token file {}", api.token_file.display()))?;
    Ok(token.trim().to_string())
}

/// One line from standard input, without its line ending.
fn read_value() -> anyhow::Result<Zeroizing<String>> {
    use std::io::IsTerminal;
    let mut value = Zeroizing::new(String::new());
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("value (one line, shown as you type; pipe it in to keep it off the screen): ");
        stdin.lock().take(MAX_STDIN_BYTES).read_line(&mut value).context("reading the value")?;
    } else {
        stdin.lock().take(MAX_STDIN_BYTES).read_to_string(&mut value).context("reading the value from stdin")?;
    }
    let trimmed = value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v));
    let value = Zeroizing::new(trimmed.unwrap_or(&value).to_string());
    if value.is_empty() {
        bail!("no value on standard input: echo \"$VALUE\" | leasehold secret set NAME");
    }
    Ok(value)
}
