//! Separate hosts on one machine: a network namespace per node, each with
//! its own address on a bridge, so a test can cut the links between real
//! hosts. Needs root; `Hosts::create` says why it cannot when it cannot.

use std::process::Command;

use super::TestNet;

/// `n` namespaces on a bridge in the test's own namespace, removed on drop.
/// Names and the /29 subnet come from the test's pid, so tests running at
/// once do not meet.
pub struct Hosts {
    tag: String,
    pub ips: Vec<String>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())),
    }
}

impl Hosts {
    /// `Err` (the test skips, saying so) only when this is not root;
    /// anything else that fails, fails the test.
    pub fn create(n: usize) -> Result<Hosts, String> {
        if !is_root() {
            return super::skip_unless_required("network namespaces need root");
        }
        assert!(n <= 5, "a /29 holds the bridge and at most 5 hosts");
        let pid = std::process::id();
        // 198.18.0.0/15 is set aside for benchmarking networks: 16384 /29s.
        let block = (pid % 16_384) * 8;
        let addr = |host: u32| format!("198.{}.{}.{}", 18 + (block >> 16), (block >> 8) & 255, (block & 255) + host);
        let hosts = Hosts { tag: format!("lh{pid}"), ips: (0..n).map(|i| addr(2 + i as u32)).collect() };
        hosts.remove(n); // leftovers of a killed test with the same pid
        let br = hosts.bridge();
        ip(&["link", "add", &br, "type", "bridge"]).unwrap();
        ip(&["addr", "add", &format!("{}/29", addr(1)), "dev", &br]).unwrap();
        ip(&["link", "set", &br, "up"]).unwrap();
        for i in 0..n {
            let (ns, outer, inner) = (hosts.ns(i), hosts.outer(i), format!("{}n{i}", hosts.tag));
            ip(&["netns", "add", &ns]).unwrap();
            ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner]).unwrap();
            ip(&["link", "set", &inner, "netns", &ns]).unwrap();
            ip(&["link", "set", &outer, "master", &br, "up"]).unwrap();
            ip(&["-n", &ns, "addr", "add", &format!("{}/29", hosts.ips[i]), "dev", &inner]).unwrap();
            ip(&["-n", &ns, "link", "set", &inner, "up"]).unwrap();
            ip(&["-n", &ns, "link", "set", "lo", "up"]).unwrap();
        }
        Ok(hosts)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    pub fn ns(&self, i: usize) -> String {
        format!("{}ns{i}", self.tag)
    }

    /// The host's end of node `i`'s link, on the bridge.
    fn outer(&self, i: usize) -> String {
        format!("{}h{i}", self.tag)
    }

    /// The command prefix that runs a program on host `i`.
    pub fn wrapper(&self, i: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.ns(i)]
    }

    /// Cuts host `i` off from every other host, both ways.
    pub fn isolate(&self, i: usize) {
        ip(&["link", "set", &self.outer(i), "down"]).unwrap();
    }

    pub fn rejoin(&self, i: usize) {
        ip(&["link", "set", &self.outer(i), "up"]).unwrap();
    }

    /// One way: host `i` can no longer send to host `j`: its own routing
    /// drops its packets to `j`. `j`'s packets still reach `i`, but over TCP
    /// they go unacknowledged, so what `i` hears is what arrives before
    /// `j`'s connection gives up.
    pub fn mute(&self, i: usize, j: usize) {
        ip(&["-n", &self.ns(i), "route", "add", "blackhole", &format!("{}/32", self.ips[j])]).unwrap();
    }

    pub fn unmute(&self, i: usize, j: usize) {
        ip(&["-n", &self.ns(i), "route", "del", "blackhole", &format!("{}/32", self.ips[j])]).unwrap();
    }

    /// Moves every node of `net` to its host: each listens on its own
    /// address and dials its peers at theirs.
    pub fn place(&self, net: &mut TestNet) {
        use leasehold_node::config::{NodeConfig, PeerConfig};
        let n = net.nodes.len();
        let ports: Vec<u16> = net.ports.iter().map(|p| p.number).collect();
        let p2p = |j: usize| format!("/ip4/{}/tcp/{}", self.ips[j], ports[j]);
        for (i, node) in net.nodes.iter().enumerate() {
            let path = node.dir.join("node.toml");
            let mut cfg = NodeConfig::load(&path).unwrap();
            let genesis: leasehold_chaincode::Genesis =
                serde_json::from_slice(&std::fs::read(&cfg.genesis).unwrap()).unwrap();
            cfg.p2p_listen = p2p(i);
            cfg.api_listen = format!("{}:{}", self.ips[i], ports[n + i]);
            // The genesis lists loopback addresses: the config names the hosts'.
            cfg.peers = (0..n)
                .filter(|j| *j != i)
                .map(|j| PeerConfig {
                    org: genesis.orgs[j].id.clone(),
                    peer_id: genesis.orgs[j].peer_id.clone(),
                    addr: p2p(j),
                })
                .collect();
            let toml = toml::to_string_pretty(&cfg).unwrap();
            assert!(!toml.contains("127.0.0.1"), "an address was left on loopback:\n{toml}");
            std::fs::write(&path, toml).unwrap();
        }
        for (j, node) in net.nodes.iter_mut().enumerate() {
            node.url = format!("http://{}:{}", self.ips[j], ports[n + j]);
        }
    }

    fn remove(&self, n: usize) {
        for i in 0..n {
            let _ = ip(&["netns", "del", &self.ns(i)]);
            let _ = ip(&["link", "del", &self.outer(i)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.remove(self.ips.len());
    }
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}
