//! Scenario 2 of `../shared/docs/scenarios.md`: IPv4-only Ceph clients, each behind its own
//! translator node, reach an IPv6-only monitor on TCP 6789 and 3300; stopping one node's
//! translator does not affect the other node's clients (no single point of failure).
//!
//! ```text
//!  clientA 192.0.2.10 ---- nodeA (nat64d, pool6 2001:db8:a:64::/96) ---- 2001:db8:a::2 \
//!                                                                                       monitor
//!  clientB 203.0.113.10 -- nodeB (nat64d, pool6 2001:db8:b:64::/96) ---- 2001:db8:b::2 /  2001:db8:c::1
//! ```
//!
//! Both nodes map the monitor to the same IPv4 alias, 198.51.100.10 (an EAM entry), and each
//! embeds its clients under its own pool6, which the monitor routes back to that node: a
//! node's clients depend on that node alone.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use nat64_tests::{lab::Daemon, netns::Netns};

const MONITOR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);
const MONITOR_ALIAS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

/// One node and its client: (client namespace, node namespace, the node's working directory).
struct Node {
    client: Netns,
    node: Netns,
    dir: std::path::PathBuf,
    daemon: Option<Daemon>,
}

fn veth(a_ns: &Netns, a: &str, b: &str, b_ns: &Netns) {
    a_ns.ip(&[
        "link",
        "add",
        "name",
        a,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        b_ns.name(),
    ]);
    a_ns.ip(&["link", "set", "dev", a, "up"]);
    b_ns.ip(&["link", "set", "dev", b, "up"]);
}

/// Builds node `tag` ("a" or "b") with its IPv4 client at `client4`/24 (the node is .1 of it).
fn node(tag: &str, monitor: &Netns, client4: Ipv4Addr) -> Node {
    let client = Netns::new(&format!("ceph-client{tag}"));
    let node = Netns::new(&format!("ceph-node{tag}"));
    let o = client4.octets();
    let gw = Ipv4Addr::new(o[0], o[1], o[2], 1);
    veth(&client, "c0", "n0", &node);
    veth(&node, "n1", &format!("m{tag}"), monitor);
    client.ip(&["addr", "add", &format!("{client4}/24"), "dev", "c0"]);
    client.ip(&[
        "route",
        "add",
        &format!("{MONITOR_ALIAS}/32"),
        "via",
        &gw.to_string(),
    ]);
    node.ip(&["addr", "add", &format!("{gw}/24"), "dev", "n0"]);
    node.ip(&[
        "addr",
        "add",
        &format!("2001:db8:{tag}::1/64"),
        "dev",
        "n1",
        "nodad",
    ]);
    node.ip(&[
        "-6",
        "route",
        "add",
        &format!("{MONITOR}/128"),
        "via",
        &format!("2001:db8:{tag}::2"),
    ]);
    node.sysctl("net.ipv4.ip_forward", "1");
    node.sysctl("net.ipv6.conf.all.forwarding", "1");
    for i in ["all", "default", "n0", "n1"] {
        node.sysctl(&format!("net.ipv4.conf.{i}.rp_filter"), "0");
    }
    monitor.ip(&[
        "addr",
        "add",
        &format!("2001:db8:{tag}::2/64"),
        "dev",
        &format!("m{tag}"),
        "nodad",
    ]);
    monitor.ip(&[
        "-6",
        "route",
        "add",
        &format!("2001:db8:{tag}:64::/96"),
        "via",
        &format!("2001:db8:{tag}::1"),
    ]);
    let dir = std::env::temp_dir().join(format!("{}-run", node.name()));
    std::fs::create_dir_all(&dir).expect("node directory");
    Node {
        client,
        node,
        dir,
        daemon: None,
    }
}

impl Node {
    fn start(&mut self, tag: &str) {
        let toml = format!(
            r#"pool6 = "2001:db8:{tag}:64::/96"
admin_socket = "{admin}"

[[interfaces]]
name = "n0"

[[interfaces]]
name = "n1"

[[eam]]
ipv6 = "{MONITOR}/128"
ipv4 = "{MONITOR_ALIAS}/32"
"#,
            admin = self.dir.join("admin.sock").display()
        );
        self.daemon = Some(Daemon::start(&self.node, &self.dir, &toml));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.daemon.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A monitor port: echoes every connection until EOF, until `done` (or 60 s); returns the
/// peers seen.
fn monitor_port(
    monitor: &Netns,
    port: u16,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<SocketAddr>> {
    let listener = monitor
        .run(|| TcpListener::bind((MONITOR, port)))
        .expect("monitor listens");
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut peers = Vec::new();
        while Instant::now() < deadline && !done.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((mut s, peer)) => {
                    peers.push(peer);
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 256];
                        while let Ok(n) = s.read(&mut buf) {
                            if n == 0 || s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        peers
    })
}

/// Connects from `client` to the monitor's alias on `port`, or the error.
fn connect(client: &Netns, port: u16) -> std::io::Result<TcpStream> {
    let s = client.run(|| {
        TcpStream::connect_timeout(&(MONITOR_ALIAS, port).into(), Duration::from_secs(3))
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

fn echo(s: &mut TcpStream, msg: &[u8]) -> bool {
    let mut buf = vec![0u8; msg.len()];
    s.write_all(msg).is_ok() && s.read_exact(&mut buf).is_ok() && buf == msg
}

#[test]
fn ceph_clients_behind_two_nodes_reach_an_ipv6_only_monitor_without_a_single_point_of_failure() {
    nat64_tests::require_root();
    let monitor = Netns::new("ceph-mon");
    monitor.ip(&["addr", "add", &format!("{MONITOR}/128"), "dev", "lo"]);
    let mut a = node("a", &monitor, Ipv4Addr::new(192, 0, 2, 10));
    let mut b = node("b", &monitor, Ipv4Addr::new(203, 0, 113, 10));
    a.start("a");
    b.start("b");
    let done = Arc::new(AtomicBool::new(false));
    let v1 = monitor_port(&monitor, 6789, done.clone());
    let v2 = monitor_port(&monitor, 3300, done.clone());

    // Both nodes' clients reach both monitor ports (legacy 6789 and msgr2 3300).
    let mut sessions = Vec::new();
    for (n, who) in [(&a, "A"), (&b, "B")] {
        for port in [6789, 3300] {
            let mut s = connect(&n.client, port)
                .unwrap_or_else(|e| panic!("client {who} to monitor port {port}: {e}"));
            assert!(
                echo(&mut s, format!("hello from {who}").as_bytes()),
                "{who}:{port}"
            );
            sessions.push((who, port, s));
        }
    }

    // Node A's translator stops. Node B's clients go on: their open sessions and new ones.
    let exit = a.daemon.take().expect("node A's daemon").stop();
    assert!(exit.status.success(), "{}", exit.stderr);
    for (who, port, s) in sessions.iter_mut().filter(|(w, _, _)| *w == "B") {
        assert!(
            echo(s, b"still there"),
            "{who}'s open session to {port} after node A stopped"
        );
    }
    let mut fresh = connect(&b.client, 3300).expect("client B, new session after node A stopped");
    assert!(echo(&mut fresh, b"new session"));
    // Node A's clients are the only ones affected.
    assert!(
        connect(&a.client, 6789).is_err(),
        "client A reached the monitor without its translator"
    );

    drop(sessions);
    drop(fresh);
    done.store(true, Ordering::SeqCst);
    let exit_b = b.daemon.take().expect("node B's daemon").stop();
    assert!(exit_b.status.success(), "{}", exit_b.stderr);
    // The monitor saw each client under its own node's pool6.
    let peers: Vec<SocketAddr> = v1
        .join()
        .expect("monitor 6789")
        .into_iter()
        .chain(v2.join().expect("monitor 3300"))
        .collect();
    let a6: Ipv6Addr = "2001:db8:a:64::c000:20a".parse().unwrap();
    let b6: Ipv6Addr = "2001:db8:b:64::cb00:710a".parse().unwrap();
    assert!(peers.iter().any(|p| p.ip() == a6), "{peers:?}");
    assert!(peers.iter().any(|p| p.ip() == b6), "{peers:?}");
    assert!(
        peers.iter().all(|p| p.ip() == a6 || p.ip() == b6),
        "{peers:?}"
    );
}
