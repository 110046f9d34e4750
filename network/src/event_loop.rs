//! The task that owns the `Swarm`: commands in, events out.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{allow_block_list, noise, request_response as rr, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::codec::{BytesCodec, PROTOCOL};
use crate::{timeout, Command, Config, Inbound, NetworkError, Reply};

#[derive(NetworkBehaviour)]
struct Behaviour {
    allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    rpc: rr::Behaviour<BytesCodec>,
}

type Pending = oneshot::Sender<Result<Vec<u8>, NetworkError>>;

pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<Inbound>,
    peers: Vec<(PeerId, Multiaddr)>,
    allowed: HashSet<PeerId>,
    connected: HashSet<PeerId>,
    pending: HashMap<rr::OutboundRequestId, (PeerId, Pending)>,
    redial_interval_ms: u64,
}

impl EventLoop {
    pub(crate) fn new(
        config: Config,
        commands: mpsc::Receiver<Command>,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Self, NetworkError> {
        let setup = |e: &dyn std::fmt::Display| NetworkError::Setup(e.to_string());
        let rr_config = rr::Config::default()
            .with_request_timeout(timeout(config.request_timeout_ms))
            .with_max_concurrent_streams(1024);
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|e| setup(&e))?
            .with_behaviour(|_| Behaviour {
                allowed: allow_block_list::Behaviour::default(),
                rpc: rr::Behaviour::with_codec(BytesCodec, [(PROTOCOL, rr::ProtocolSupport::Full)], rr_config),
            })
            .map_err(|e| setup(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(std::time::Duration::from_secs(24 * 3600)))
            .build();
        for peer in &config.allowed {
            swarm.behaviour_mut().allowed.allow_peer(*peer);
        }
        swarm
            .listen_on(config.listen.clone())
            .map_err(|e| NetworkError::Listen { addr: config.listen.to_string(), reason: e.to_string() })?;
        let me = *swarm.local_peer_id();
        let peers = config.peers.into_iter().filter(|(p, _)| *p != me).collect();
        Ok(Self {
            swarm,
            commands,
            inbound,
            peers,
            allowed: config.allowed.into_iter().collect(),
            connected: HashSet::new(),
            pending: HashMap::new(),
            redial_interval_ms: config.redial_interval_ms,
        })
    }

    /// Runs until every [`crate::Client`] is dropped.
    pub async fn run(mut self) {
        let mut redial = tokio::time::interval(timeout(self.redial_interval_ms));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event).await,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => return,
                },
                _ = redial.tick() => self.redial(),
            }
        }
    }

    fn redial(&mut self) {
        for (peer, addr) in &self.peers {
            if !self.connected.contains(peer) {
                let opts = DialOpts::peer_id(*peer).addresses(vec![addr.clone()]).build();
                if let Err(e) = self.swarm.dial(opts) {
                    debug!(%peer, "dial failed: {e}");
                }
            }
        }
    }

    fn address_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.peers.iter().filter(|(p, _)| p == peer).map(|(_, a)| a.clone()).collect()
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Request { peer, bytes, done } => {
                let addrs = self.address_of(&peer);
                let id = self.swarm.behaviour_mut().rpc.send_request_with_addresses(&peer, bytes, addrs);
                self.pending.insert(id, (peer, done));
            }
            Command::Respond { reply, bytes } => {
                // The requester may have timed out and gone; nothing to do then.
                let _ = self.swarm.behaviour_mut().rpc.send_response(reply.0, bytes);
            }
            Command::Peers { done } => {
                let _ = done.send(self.connected.iter().copied().collect());
            }
            Command::ListenAddrs { done } => {
                let _ = done.send(self.swarm.listeners().cloned().collect());
            }
            Command::SetPeers { allowed, peers } => self.set_peers(allowed, peers),
        }
    }

    fn set_peers(&mut self, allowed: Vec<PeerId>, peers: Vec<(PeerId, Multiaddr)>) {
        let allowed: HashSet<PeerId> = allowed.into_iter().collect();
        for gone in self.allowed.difference(&allowed) {
            // Closes its connections too.
            self.swarm.behaviour_mut().allowed.disallow_peer(*gone);
            info!(peer = %gone, "peer no longer allowed");
        }
        for new in allowed.difference(&self.allowed) {
            self.swarm.behaviour_mut().allowed.allow_peer(*new);
        }
        let me = *self.swarm.local_peer_id();
        self.peers = peers.into_iter().filter(|(p, _)| *p != me).collect();
        self.allowed = allowed;
    }

    async fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(event)) => self.on_rpc_event(event).await,
            SwarmEvent::ConnectionEstablished { peer_id, .. } if self.connected.insert(peer_id) => {
                info!(peer = %peer_id, "peer connected");
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.connected.remove(&peer_id);
                info!(peer = %peer_id, "peer disconnected");
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                warn!(from = %send_back_addr, "refused incoming connection: {error}");
            }
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
            _ => {}
        }
    }

    async fn on_rpc_event(&mut self, event: rr::Event<Vec<u8>, Vec<u8>>) {
        match event {
            rr::Event::Message { peer, message: rr::Message::Request { request, channel, .. }, .. } => {
                let inbound = Inbound { peer, bytes: request, reply: Reply(channel) };
                // Bounded: when the node falls behind, this applies back-pressure
                // to the swarm rather than buffering without limit.
                if self.inbound.send(inbound).await.is_err() {
                    debug!("inbound receiver dropped");
                }
            }
            rr::Event::Message { message: rr::Message::Response { request_id, response }, .. } => {
                if let Some((_, done)) = self.pending.remove(&request_id) {
                    let _ = done.send(Ok(response));
                }
            }
            rr::Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some((_, done)) = self.pending.remove(&request_id) {
                    let _ = done.send(Err(NetworkError::Request { peer, reason: error.to_string() }));
                }
            }
            rr::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, "inbound request failed: {error}")
            }
            rr::Event::ResponseSent { .. } => {}
        }
    }
}
