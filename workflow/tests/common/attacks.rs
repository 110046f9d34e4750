//! Attacks that must fail on every executor: the local one in
//! `hostile.rs`, a real Slurm cluster's in `slurm.rs`. Each proves where it
//! can that the attack works on the host, then that it fails in a job.

use std::os::unix::fs::PermissionsExt;

use leasehold_workflow::exec::execute;
use leasehold_workflow::live::Status;
use leasehold_workflow::sandbox::Sandbox;

use super::*;

/// Every way out a job might try, each reporting "reached N" or "blocked N:
/// <error>". Anything else (no interpreter, a syntax error, an exception
/// other than the OS refusing) prints neither, and the test fails.
const PROBES: &str = r#"import socket, sys
port, path, name, udp_port = sys.argv[1:5]
def probe(n, f):
    try:
        f()
        print(f"reached {n}")
    except OSError as e:
        print(f"blocked {n}: {type(e).__name__}: {e}")
def unix(addr):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(addr)
probe(0, lambda: socket.create_connection(("127.0.0.1", int(port)), timeout=2))
probe(1, lambda: unix(path))
probe(2, lambda: unix("\0" + name))
probe(3, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", int(udp_port))))
if len(sys.argv) > 5:
    probe(4, lambda: socket.getaddrinfo("example.com", 80))
"#;

pub async fn no_network(sb: Sandbox) {
    use std::os::linux::net::SocketAddrExt;
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port().to_string();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let udp_port = udp.local_addr().unwrap().port().to_string();
    let host = host_dir();
    let sock = host.path().join("node.sock");
    let _unix = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let name = format!("leasehold-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _abstract = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let vol = volume_dir();
    std::fs::write(vol.path().join("probes.py"), PROBES).unwrap();
    let args = [port.as_str(), sock.to_str().unwrap(), &name, &udp_port];
    // Each probe but DNS reaches its listener from the host...
    let out = std::process::Command::new("python3").arg(vol.path().join("probes.py")).args(args).output().unwrap();
    let host_lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    assert_eq!(host_lines, ["reached 0", "reached 1", "reached 2", "reached 3"], "{out:?}");
    let mut got = [0u8; 16];
    assert_eq!(udp.recv(&mut got).ok(), Some(1), "the host probe's datagram arrived");
    // ...and none from a job. (The host does not try DNS: this machine may
    // have no resolver, so "blocked 4" only proves something where it has.)
    let script = format!("python3 /data/v/probes.py {} dns", args.join(" "));
    let (j, lines, _) = sandboxed(sb, &script, vol.path()).await;
    assert_eq!(j.status, Status::Succeeded, "{lines:?}");
    // A datagram may leave the socket (the job's own namespace has a
    // loopback), so for UDP what counts is that none arrives at the host.
    assert!(lines.iter().any(|l| l == "reached 3" || l.starts_with("blocked 3:")), "the UDP probe ran: {lines:?}");
    for n in [0, 1, 2, 4] {
        assert!(lines.iter().any(|l| l.starts_with(&format!("blocked {n}:"))), "probe {n} was not blocked: {lines:?}");
    }
    assert!(udp.recv(&mut got).is_err(), "no UDP datagram reached the host");
}

pub async fn unprivileged(sb: Sandbox) {
    let script =
        "id -u; id -g; grep -E '^(CapEff|CapPrm|NoNewPrivs):' /proc/self/status; ls /proc/self/fd | tr '\\n' ' '";
    let (j, lines, ran) = sandboxed(sb, script, volume_dir().path()).await;
    assert_eq!(j.status, Status::Succeeded, "{lines:?}");
    assert_eq!(lines[..2], ["65534", "65534"], "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("CapEff:") && l.ends_with("0000000000000000")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("CapPrm:") && l.ends_with("0000000000000000")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')), "{lines:?}");
    // 0-2, and 3 for the directory ls itself reads: the last line of
    // stdout (a cluster's step daemon may add its own lines to stderr).
    let stdout = output(&ran.live, 1, leasehold_workflow::live::Stream::Stdout);
    let fds: Vec<&str> = stdout.last().unwrap().split_whitespace().collect();
    assert!(fds.iter().all(|fd| ["0", "1", "2", "3"].contains(fd)), "inherited descriptors: {fds:?}");
}

pub async fn no_keys(sb: Sandbox) {
    // A stand-in node directory outside /tmp, laid out like a real one, its
    // key readable by anyone so that only the sandbox stands in the way.
    let node = host_dir();
    let keys = node.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("signing.key"), "5ec2e7-key-material").unwrap();
    std::fs::set_permissions(keys.join("signing.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let key = keys.join("signing.key").display().to_string();
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "5ec2e7-key-material");
    let script = format!(
        "cat {key}; cat /proc/1/root{key}; ls /proc/1/root/; cat ../../keys/signing.key; \
         for src in $(awk '{{print $4}}' /proc/self/mountinfo); do cat $src/../../keys/signing.key; cat /proc/1/root$src/../../keys/signing.key; done; \
         cat ~/../run.json; cat /proc/1/root/../run.json"
    );
    let mut j = sh(1, &script, &[]);
    j.timeout_ms = 20_000;
    let jobs = vec![j];
    let live = live(node.path(), &jobs);
    execute(&plan(sb, jobs, 1), &live).await;
    let lines = all_output(&live, 1);
    assert!(!lines.iter().any(|l| l.contains("5ec2e7")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("run-test")), "the run's own record: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("No such file or directory")), "{lines:?}");
}
