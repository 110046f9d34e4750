//! The command line. The binary parses it and dispatches; node-side commands
//! live here, client commands in the binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "leasehold",
    version,
    about = "Share data between organisations under a signed, replicated ledger of time-limited leases."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create keys, a shared genesis and a node config per organisation.
    Init {
        #[arg(long, default_value_t = 3)]
        orgs: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "leasehold-testnet")]
        network_id: String,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Comma-separated p2p ports, one per org (default 7051, 7052, ...).
        #[arg(long, value_delimiter = ',')]
        p2p_ports: Vec<u16>,
        /// Comma-separated API ports, one per org (default 8081, 8082, ...).
        #[arg(long, value_delimiter = ',')]
        api_ports: Vec<u16>,
    },
    /// This org's side of the genesis ceremony, run on its own machine.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Build a genesis from the orgs' cards, and sign it as one org.
    Genesis {
        #[command(subcommand)]
        command: GenesisCommand,
    },
    /// Run a node until SIGTERM or Ctrl-C.
    Start {
        #[arg(long)]
        config: PathBuf,
        /// Replay the whole chain before starting, not only the last blocks.
        #[arg(long)]
        verify: bool,
        /// Serve the web explorer's files from this directory (`api/ui`)
        /// instead of those built into the binary: edit, then reload.
        #[arg(long)]
        ui_dir: Option<PathBuf>,
    },
    /// Re-check a stopped node's chain offline: hashes, signatures, state roots.
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Take a backup of a running node (admin token): it is written on the
    /// node's host, and its path printed.
    Backup {
        /// The node's API base URL.
        #[arg(long, env = "LEASEHOLD_URL", default_value = "http://127.0.0.1:8081")]
        url: String,
        /// File holding an admin's bearer token.
        #[arg(long, env = "LEASEHOLD_TOKEN_FILE")]
        token_file: PathBuf,
    },
    /// Restore a stopped node from a backup: the backup is verified, the
    /// data directory it replaces is moved aside, and the node rejoins
    /// without voting until it has caught up.
    Restore {
        #[arg(long)]
        backup: PathBuf,
        #[arg(long)]
        config: PathBuf,
        /// Vote at once. Only when every voter is restored from a backup,
        /// so that no node remembers more than its backup: the fence
        /// would otherwise wait for a leader that cannot be elected.
        #[arg(long)]
        unfenced: bool,
    },
    /// Print a node's status as JSON.
    Status {
        /// The node's API base URL.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        url: String,
    },
    /// Manage the org's local API users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Workflow tools.
    Workflow {
        #[command(subcommand)]
        command: WorkflowCommand,
    },
    /// Run a workflow on a node: submit it, print its log as it runs, and
    /// exit with its status (0 only if it succeeded).
    Run {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// The node's API base URL.
        #[arg(long, env = "LEASEHOLD_URL", default_value = "http://127.0.0.1:8081")]
        url: String,
        /// File holding a bearer token of a member or admin of that node.
        #[arg(long, env = "LEASEHOLD_TOKEN_FILE")]
        token_file: PathBuf,
        /// Run the jobs even if an earlier run had the same code,
        /// environment and input versions (its outputs are otherwise reused).
        #[arg(long)]
        force: bool,
    },
    /// Measure committed tx/s and commit latency against a running network.
    Bench(BenchArgs),
    /// Register this org's datasets (admin token).
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
    /// Start working on a leased dataset (member token).
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// This org's job secrets at its node, which a workflow names under
    /// `secrets:` (member token).
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret, its value read from standard input (one line), never
    /// from the command line, where other users of the machine could read it.
    Set {
        /// Upper-case letters, digits and `_`: the job's variable.
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the secrets' names (their values are never shown).
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete a secret.
    Rm {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Write a workflow directory that runs at once on the lease's dataset
    /// and passes its own QC test: `workflow.yaml`, a script that reads the
    /// dataset, `requirements.txt`, a test fixture and a README.
    New {
        /// A directory that does not exist yet, or is empty.
        dir: PathBuf,
        /// An active lease this org holds.
        #[arg(long)]
        lease: String,
        /// The node's API base URL.
        #[arg(long, env = "LEASEHOLD_URL", default_value = "http://127.0.0.1:8081")]
        url: String,
        /// File holding a member's or admin's bearer token.
        #[arg(long, env = "LEASEHOLD_TOKEN_FILE")]
        token_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Register a dataset whose files stay in this org's object store
    /// (`[s3]` in the node's config): the node lists and hashes them, and
    /// the ledger gets their content hash. Prints the dataset.
    Add {
        /// `s3://bucket/prefix`: every object under the prefix is a file.
        #[arg(long)]
        from: String,
        #[arg(long)]
        title: String,
        /// The id on the ledger; by default made from the title.
        #[arg(long)]
        id: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Orgs that may request a lease, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        allow: Vec<String>,
        /// The longest lease, in hours.
        #[arg(long, default_value_t = 24)]
        max_lease_h: u64,
        /// `files` (lessees fetch them) or `compute` (lessees' runs execute here).
        #[arg(long, default_value = "files")]
        access: String,
        /// Grant each lease request without asking an admin.
        #[arg(long)]
        automatic: bool,
        /// The node's API base URL.
        #[arg(long, env = "LEASEHOLD_URL", default_value = "http://127.0.0.1:8081")]
        url: String,
        /// File holding an admin's bearer token.
        #[arg(long, env = "LEASEHOLD_TOKEN_FILE")]
        token_file: PathBuf,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The testnet directory written by `init` (for the org keys and configs).
    #[arg(long, default_value = "testnet")]
    pub net: PathBuf,
    /// Offered loads in tx/s; 0 means saturation.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,0")]
    pub rates: Vec<u64>,
    /// Seconds per load level.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Transactions per HTTP request.
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Make this org's keys (mode 0600), node config and first admin token
    /// in `--dir`, and print its public card (also in `DIR/card.json`).
    New {
        /// The org's id on the ledger, e.g. `org4`.
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        dir: PathBuf,
        /// Where the other orgs' nodes dial this one (it goes on the
        /// card): `HOST:PORT` or a libp2p multiaddr.
        #[arg(long)]
        p2p_addr: String,
        /// Where the node listens; by default every interface, on the
        /// port of `--p2p-addr`.
        #[arg(long)]
        p2p_listen: Option<String>,
        /// Where its REST API listens.
        #[arg(long, default_value = "127.0.0.1:8081")]
        api_addr: String,
    },
    /// As an org joining a running network: sign this org's card for the
    /// network of its genesis, for a member to propose (`org propose`).
    JoinRequest {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        card: PathBuf,
    },
    /// As a member rotating its keys: make the next signing and p2p keys
    /// (beside the current ones) and sign the card with them, for a member
    /// to propose (`org propose --rotate`); the org itself must approve it
    /// too. The node takes them up when it restarts after the change took
    /// effect (it stops by itself then).
    RotateKeys {
        #[arg(long)]
        config: PathBuf,
        /// The org's current card, or the request of its last rotation.
        #[arg(long)]
        card: PathBuf,
    },
    /// As a member whose rotation took effect while its node was down (or
    /// behind): take up the next keys now, then start the node. It catches
    /// up under them; the ledger it has not applied yet names the old key.
    TakeUpKeys {
        #[arg(long)]
        config: PathBuf,
    },
    /// As a member: propose that an org joins (`--join`, a join request),
    /// leaves (`--leave ORG --reason`) or takes new keys (`--rotate`, a
    /// rotation request). It takes effect once a majority of the orgs
    /// approve; this org's proposal is its approval.
    Propose {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        change_id: String,
        #[arg(long, conflicts_with_all = ["leave", "rotate"])]
        join: Option<PathBuf>,
        #[arg(long, conflicts_with = "leave")]
        rotate: Option<PathBuf>,
        #[arg(long, requires = "reason")]
        leave: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// As a member: approve a pending change.
    Approve {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        change_id: String,
    },
    /// The orgs, their node ids, and the changes waiting for approval.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// A node's API and a user's token.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// The node's API base URL.
    #[arg(long, env = "LEASEHOLD_URL", default_value = "http://127.0.0.1:8081")]
    pub url: String,
    /// File holding the bearer token.
    #[arg(long, env = "LEASEHOLD_TOKEN_FILE")]
    pub token_file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum GenesisCommand {
    /// Write a genesis listing the orgs of `--cards`, in that order.
    New {
        #[arg(long, num_args = 1.., required = true)]
        cards: Vec<PathBuf>,
        #[arg(long)]
        network_id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a genesis as this node's org: the signature goes into
    /// `genesis.sigs.json` beside it. A node starts only once every org
    /// the genesis lists has signed.
    Sign {
        #[arg(long)]
        genesis: PathBuf,
        /// This org's node config (for its key).
        #[arg(long)]
        config: PathBuf,
        /// The genesis's sha256 as the orgs agreed it out of band: signing
        /// stops if the file differs.
        #[arg(long)]
        sha256: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user and print its bearer token (shown once, stored hashed).
    Add {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: crate::users::Role,
    },
    /// List the users: name, role, created.
    List {
        #[arg(long)]
        config: PathBuf,
    },
    /// Revoke a user's token: it is refused from the next request on.
    Revoke {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Validate a workflow.yaml and print the equivalent Argo Workflow manifest.
    Argo {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Image for jobs that name none.
        #[arg(long, default_value = "python:3.11-slim")]
        image: String,
        /// A node's API; with it, each volume's lease is looked up and the
        /// manifest's deadline is set no later than the earliest expiry.
        #[arg(long)]
        url: Option<String>,
        /// File holding a bearer token for `--url`.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
}
