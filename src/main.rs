//! The `leasehold` binary: parses the command line and wires the node and
//! its REST API together. Everything of substance lives in the crates.

mod bench;
mod dataset;
mod run;
mod secret;
mod workspace;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use leasehold_node::cli::{ApiArgs, Cli, Command, GenesisCommand, OrgCommand, UserCommand, WorkflowCommand};
use leasehold_node::config::NodeConfig;

/// jemalloc, for the whole process: the node allocates and frees many small
/// buffers per tx (decoded values, encodings, receipts) on several threads,
/// where glibc's malloc spent about a tenth of the CPU at saturation. It
/// also takes RocksDB's C++ allocations (the `malloc` it exports overrides
/// glibc's), which glibc's arenas held on to once freed: after a million
/// leases, 210-240 MB from the system for 100 MB in use. Its background
/// threads hand freed pages back once its decay (10 s) has passed, idle or
/// not (docs/BENCHMARKS.md). Tuned, if ever, with `MALLOC_CONF`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    // Errors are for the operator: one line with its causes, no backtrace.
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn,libp2p=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Init { orgs, out, network_id, host, p2p_ports, api_ports } => {
            let default = |base: u16| (0..orgs as u16).map(|i| base + i).collect::<Vec<_>>();
            let opts = leasehold_node::init::InitOptions {
                orgs,
                network_id,
                host,
                p2p_ports: if p2p_ports.is_empty() { default(7051) } else { p2p_ports },
                api_ports: if api_ports.is_empty() { default(8081) } else { api_ports },
                now_ms: leasehold_node::now_ms(),
            };
            leasehold_node::init::init(&out, &opts)?;
            println!("initialised {orgs} organisations under {}", out.display());
            Ok(())
        }
        Command::Org { command: OrgCommand::New { org, name, dir, p2p_addr, p2p_listen, api_addr } } => {
            use leasehold_node::ceremony;
            let p2p_addr = ceremony::multiaddr_of(&p2p_addr)?;
            let port = p2p_addr.rsplit('/').next().unwrap_or_default().to_string();
            let p2p_listen = match p2p_listen {
                Some(l) => ceremony::multiaddr_of(&l)?,
                None => format!("/ip4/0.0.0.0/tcp/{port}"),
            };
            let new = ceremony::NewOrg {
                org: &org,
                name: &name,
                p2p_addr: &p2p_addr,
                p2p_listen: &p2p_listen,
                api_listen: &api_addr,
                genesis: Path::new("genesis.json"),
                now_ms: leasehold_node::now_ms(),
            };
            let card = ceremony::new_org(&dir, &new)?;
            println!("{}", serde_json::to_string_pretty(&card)?);
            Ok(())
        }
        Command::Genesis { command: GenesisCommand::New { cards, network_id, out } } => {
            let cards = cards
                .iter()
                .map(|p| {
                    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                    serde_json::from_slice(&bytes).with_context(|| format!("card {}", p.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let genesis = leasehold_node::ceremony::genesis_from_cards(&network_id, &cards, leasehold_node::now_ms())?;
            anyhow::ensure!(!out.exists(), "{} exists: refusing to overwrite a genesis", out.display());
            leasehold_files::durable::write_atomic(&out, &serde_json::to_vec_pretty(&genesis)?, 0o644)?;
            println!("wrote {}: each org now signs it with `leasehold genesis sign`", out.display());
            Ok(())
        }
        Command::Genesis { command: GenesisCommand::Sign { genesis, config, sha256 } } => {
            let cfg = NodeConfig::load(&config)?;
            let signed = leasehold_node::ceremony::sign(&genesis, &cfg.org, &cfg.signing_key()?, sha256.as_deref())?;
            print!("{signed}");
            let sigs = leasehold_node::ceremony::signatures_path(&genesis);
            println!("{} signed {}; signatures in {}", cfg.org, genesis.display(), sigs.display());
            Ok(())
        }
        Command::Start { config, verify, ui_dir } => rt.block_on(start(&config, verify, ui_dir)),
        Command::Verify { data_dir } => {
            let v = leasehold_node::ledger::verify::verify(&data_dir)?;
            let versions = leasehold_node::backup::check_files(&data_dir)?;
            println!(
                "ok: {} blocks verified, {} certified by a majority of the orgs; head {} state root {}; \
                 {versions} dataset versions match their content hashes",
                v.height, v.certified_blocks, v.head_hash, v.state_root
            );
            for c in &v.conflicts {
                println!("warning: {c}");
            }
            Ok(())
        }
        Command::Backup { url, token_file } => rt.block_on(async {
            let token = std::fs::read_to_string(&token_file)?.trim().to_string();
            let r = reqwest::Client::new().post(format!("{url}/v1/backups")).bearer_auth(token).send().await?;
            let status = r.status();
            let body: serde_json::Value = r.json().await?;
            anyhow::ensure!(status.is_success(), "{status}: {}", body["detail"].as_str().unwrap_or_default());
            println!("{}", serde_json::to_string_pretty(&body)?);
            Ok(())
        }),
        Command::Restore { backup, config, unfenced } => {
            let cfg = NodeConfig::load(&config)?;
            let r = leasehold_node::backup::restore(&backup, &cfg, unfenced, leasehold_node::now_ms())?;
            println!(
                "restored {} at height {} ({}) into {}",
                r.manifest.org,
                r.manifest.height,
                r.manifest.head_hash,
                cfg.data_dir.display()
            );
            if let Some(aside) = r.replaced {
                println!("the data directory it replaced is at {}", aside.display());
            }
            match unfenced {
                false => println!("start the node: it catches up with the others before it votes again"),
                true => println!("start the node: unfenced, it votes at once"),
            }
            Ok(())
        }
        Command::Status { url } => rt.block_on(async {
            let status: serde_json::Value =
                reqwest::get(format!("{url}/v1/status")).await?.error_for_status()?.json().await?;
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(())
        }),
        Command::Bench(args) => rt.block_on(bench::run(args)),
        Command::Run { file, url, token_file, force } => rt.block_on(run::run(&file, &url, &token_file, force)),
        Command::Dataset { command } => rt.block_on(dataset::run(command)),
        Command::Workspace { command } => rt.block_on(workspace::run(command)),
        Command::Secret { command } => rt.block_on(secret::run(command)),
        Command::Workflow { command: WorkflowCommand::Argo { file, image, url, token_file } } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let wf = leasehold_workflow::Workflow::parse(&text)?;
            let deadline = match url {
                Some(url) => Some(rt.block_on(lease_deadline_s(&wf, &url, token_file.as_deref()))?),
                None => None,
            };
            let manifest = leasehold_workflow::argo::manifest(&wf, &image, deadline);
            print!("{}", serde_norway::to_string(&manifest)?);
            Ok(())
        }
        Command::Org { command } => rt.block_on(org(command)),
        Command::User { command: UserCommand::Add { config, name, role } } => {
            let cfg = NodeConfig::load(&config)?;
            let token =
                leasehold_node::users::UserStore::new(&cfg.data_dir).add(&name, role, leasehold_node::now_ms())?;
            println!("{token}");
            Ok(())
        }
        Command::User { command: UserCommand::List { config } } => {
            let cfg = NodeConfig::load(&config)?;
            for u in leasehold_node::users::UserStore::new(&cfg.data_dir).list()? {
                let created = leasehold_chaincode::time::rfc3339(u.created_at_ms);
                println!("{}\t{}\t{created}", u.name, serde_json::to_value(u.role)?.as_str().unwrap_or_default());
            }
            Ok(())
        }
        Command::User { command: UserCommand::Revoke { config, name } } => {
            let cfg = NodeConfig::load(&config)?;
            let revoked = leasehold_node::users::UserStore::new(&cfg.data_dir).revoke(&name)?;
            anyhow::ensure!(revoked.is_some(), "no user {name:?}");
            println!("revoked {name}'s token");
            Ok(())
        }
    }
}

/// The org commands that talk to a node's API, and the joining org's request.
async fn org(command: OrgCommand) -> anyhow::Result<()> {
    let call = |api: &ApiArgs, method: reqwest::Method, path: String, body: Option<serde_json::Value>| {
        let token = std::fs::read_to_string(&api.token_file).map(|t| t.trim().to_string());
        let req = reqwest::Client::new().request(method, format!("{}{path}", api.url));
        async move {
            let req = req.bearer_auth(token?);
            let r = match body {
                Some(b) => req.json(&b).send().await?,
                None => req.send().await?,
            };
            let (ok, text) = (r.status().is_success(), r.text().await?);
            anyhow::ensure!(ok, "{text}");
            println!("{text}");
            Ok(())
        }
    };
    match command {
        OrgCommand::New { .. } => unreachable!("handled before the runtime"),
        OrgCommand::JoinRequest { config, card } => {
            let req = leasehold_node::orgs::join_request(&NodeConfig::load(&config)?, &card)?;
            println!("{}", serde_json::to_string_pretty(&req)?);
            Ok(())
        }
        OrgCommand::RotateKeys { config, card } => {
            let req = leasehold_node::orgs::rotate_keys(&NodeConfig::load(&config)?, &card)?;
            println!("{}", serde_json::to_string_pretty(&req)?);
            Ok(())
        }
        OrgCommand::TakeUpKeys { config } => {
            leasehold_node::orgs::take_up_next_keys(&NodeConfig::load(&config)?)?;
            println!("the next keys are this org's keys now; start the node");
            Ok(())
        }
        OrgCommand::Propose { api, change_id, join, rotate, leave, reason } => {
            let file = |f: &std::path::Path| -> anyhow::Result<serde_json::Value> {
                Ok(serde_json::from_slice(&std::fs::read(f)?)?)
            };
            let body = match (join, rotate, leave) {
                (Some(f), None, None) => serde_json::json!({"change_id": change_id, "join": file(&f)?}),
                (None, Some(f), None) => serde_json::json!({"change_id": change_id, "rotate": file(&f)?}),
                (None, None, Some(org)) => {
                    serde_json::json!({"change_id": change_id, "leave": {"org": org, "reason": reason}})
                }
                _ => anyhow::bail!("give one of --join FILE, --rotate FILE and --leave ORG"),
            };
            call(&api, reqwest::Method::POST, "/v1/orgs/changes".into(), Some(body)).await
        }
        OrgCommand::Approve { api, change_id } => {
            call(&api, reqwest::Method::POST, format!("/v1/orgs/changes/{change_id}/approve"), None).await
        }
        OrgCommand::List { api } => call(&api, reqwest::Method::GET, "/v1/orgs".into(), None).await,
    }
}

async fn start(config: &Path, verify: bool, ui_dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let cfg = NodeConfig::load(config)?;
    if let Some(dir) = &ui_dir {
        anyhow::ensure!(dir.join("index.html").is_file(), "--ui-dir {}: no index.html there", dir.display());
    }
    if verify && cfg.data_dir.join("ledger").exists() {
        let v = leasehold_node::ledger::verify::verify(&cfg.data_dir).map_err(|e| leasehold_node::corrupt(&cfg, e))?;
        println!("verified {} blocks up to head {}", v.height, v.head_hash);
    }
    let listener = tokio::net::TcpListener::bind(&cfg.api_listen)
        .await
        .with_context(|| format!("binding the API address {}", cfg.api_listen))?;
    let (node, tasks) = leasehold_node::start(cfg.clone()).await?;
    println!("leasehold node {} up: api http://{} p2p {}", cfg.org, listener.local_addr()?, cfg.p2p_listen);
    let mut state = leasehold_api::AppState::new(node.clone())?;
    if let Some(dir) = ui_dir {
        state.ui = leasehold_api::ui::UiFiles::Dir(dir);
    }
    let rotated = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = {
        let (node, rotated) = (node.clone(), rotated.clone());
        async move {
            tokio::select! {
                () = shutdown_signal() => {}
                () = node.keys_rotated() => rotated.store(true, std::sync::atomic::Ordering::SeqCst),
            }
        }
    };
    leasehold_api::serve(listener, state, stop).await?;
    tracing::info!("shutting down");
    node.shutdown().await;
    tasks.abort();
    // A non-zero exit, so a service manager starts it again.
    anyhow::ensure!(
        !rotated.load(std::sync::atomic::Ordering::SeqCst),
        "this org's keys were rotated on the ledger: start the node again to take up the new ones"
    );
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Seconds until the earliest expiry among the workflow's leased volumes.
async fn lease_deadline_s(
    wf: &leasehold_workflow::Workflow,
    url: &str,
    token_file: Option<&Path>,
) -> anyhow::Result<u64> {
    let token = match token_file {
        Some(f) => std::fs::read_to_string(f)?.trim().to_string(),
        None => anyhow::bail!("--url needs --token-file"),
    };
    let http = reqwest::Client::new();
    let mut earliest: Option<i64> = None;
    for v in wf.jobs.iter().flat_map(|j| &j.volumes) {
        let lease: serde_json::Value = http
            .get(format!("{url}/v1/leases/{}", v.id))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::ensure!(lease["status"] == "active", "volume {}: lease is {}", v.id, lease["status"]);
        let exp = lease["expires_at_ms"].as_i64().context("lease without expiry")?;
        earliest = Some(earliest.map_or(exp, |e: i64| e.min(exp)));
    }
    let left_ms = earliest.context("the workflow mounts no leased volume")? - leasehold_node::now_ms();
    anyhow::ensure!(left_ms >= 1000, "the earliest lease expires in under a second");
    Ok(left_ms as u64 / 1000)
}
