//! The permissioned libp2p layer: TCP + noise + yamux, request-response over
//! raw bytes.
//!
//! It carries bytes and knows nothing of the ledger. [`new`] returns a
//! cloneable [`Client`], an [`EventLoop`] that owns the `Swarm` (spawn its
//! [`EventLoop::run`]) and a receiver of [`Inbound`] requests. Only the peer
//! ids given in [`Config::allowed`] may connect; anyone else is refused at
//! the connection level and logged. Every channel is bounded.

mod codec;
mod event_loop;

use std::time::Duration;

pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

pub use event_loop::EventLoop;

/// Largest request or response, in bytes. A snapshot of a test network fits
/// comfortably; a peer that sends more is cut off.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Depth of the command and inbound queues.
const QUEUE_DEPTH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("peer {0} is not connected and could not be reached")]
    Unreachable(PeerId),
    #[error("request to {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
    #[error("invalid listen address {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("the network event loop has stopped")]
    Stopped,
    #[error("transport setup failed: {0}")]
    Setup(String),
}

pub struct Config {
    pub keypair: Keypair,
    pub listen: Multiaddr,
    /// Peers to dial and keep connected: (peer id, address).
    pub peers: Vec<(PeerId, Multiaddr)>,
    /// Peer ids admitted to connect (the genesis members).
    pub allowed: Vec<PeerId>,
    pub request_timeout_ms: u64,
    /// How often to redial a peer that is not connected.
    pub redial_interval_ms: u64,
}

/// A request that arrived from a peer. Answer it with [`Client::respond`].
pub struct Inbound {
    pub peer: PeerId,
    pub bytes: Vec<u8>,
    pub reply: Reply,
}

/// The handle that routes a response back to its request.
pub struct Reply(libp2p::request_response::ResponseChannel<Vec<u8>>);

pub(crate) enum Command {
    Request { peer: PeerId, bytes: Vec<u8>, done: oneshot::Sender<Result<Vec<u8>, NetworkError>> },
    Respond { reply: Reply, bytes: Vec<u8> },
    Peers { done: oneshot::Sender<Vec<PeerId>> },
    ListenAddrs { done: oneshot::Sender<Vec<Multiaddr>> },
    SetPeers { allowed: Vec<PeerId>, peers: Vec<(PeerId, Multiaddr)> },
}

/// A cheap, cloneable handle to the event loop.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    local_peer_id: PeerId,
}

impl Client {
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Sends `bytes` to `peer` and waits for its response.
    pub async fn request(&self, peer: PeerId, bytes: Vec<u8>) -> Result<Vec<u8>, NetworkError> {
        let (done, rx) = oneshot::channel();
        self.send(Command::Request { peer, bytes, done }).await?;
        rx.await.map_err(|_| NetworkError::Stopped)?
    }

    pub async fn respond(&self, reply: Reply, bytes: Vec<u8>) -> Result<(), NetworkError> {
        self.send(Command::Respond { reply, bytes }).await
    }

    /// Peers with an open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetworkError> {
        let (done, rx) = oneshot::channel();
        self.send(Command::Peers { done }).await?;
        rx.await.map_err(|_| NetworkError::Stopped)
    }

    /// Addresses the swarm actually listens on (the OS picks port 0's).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetworkError> {
        let (done, rx) = oneshot::channel();
        self.send(Command::ListenAddrs { done }).await?;
        rx.await.map_err(|_| NetworkError::Stopped)
    }

    /// Replaces the peers allowed to connect and the ones dialled: those
    /// no longer allowed are disconnected at once.
    pub async fn set_peers(&self, allowed: Vec<PeerId>, peers: Vec<(PeerId, Multiaddr)>) -> Result<(), NetworkError> {
        self.send(Command::SetPeers { allowed, peers }).await
    }

    async fn send(&self, cmd: Command) -> Result<(), NetworkError> {
        self.commands.send(cmd).await.map_err(|_| NetworkError::Stopped)
    }
}

/// Builds the swarm and starts listening. Spawn `EventLoop::run`.
pub fn new(config: Config) -> Result<(Client, EventLoop, mpsc::Receiver<Inbound>), NetworkError> {
    let (cmd_tx, cmd_rx) = mpsc::channel(QUEUE_DEPTH);
    let (in_tx, in_rx) = mpsc::channel(QUEUE_DEPTH);
    let local_peer_id = config.keypair.public().to_peer_id();
    let event_loop = EventLoop::new(config, cmd_rx, in_tx)?;
    Ok((Client { commands: cmd_tx, local_peer_id }, event_loop, in_rx))
}

pub(crate) fn timeout(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
