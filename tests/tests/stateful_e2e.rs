//! Stateful NAT64 (RFC 6146) end to end: the real daemon in the namespace lab with pool4
//! 203.0.113.200/30, and three IPv6 client addresses that no EAM entry covers, sharing it.
//!
//! Why one file of this size: every file in `tests/tests` is its own test binary, linked against
//! aya and the daemon; the stateful end-to-end flows share one lab setup and stay together.

use std::{
    io::{Read, Write},
    net::{IpAddr, TcpListener, UdpSocket},
    sync::mpsc,
    time::Duration,
};

use nat64_common::{Counter, Dir, DropReason, L4Proto};
use nat64_daemon::stats::parse_value;
use nat64_tests::{
    lab::{Lab, LabOptions, SERVER4, SERVER4_AS_V6, STATEFUL_CLIENTS},
    peers,
};

fn in_pool4(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            o[..3] == [203, 0, 113] && (200..204).contains(&o[3])
        }
        IpAddr::V6(_) => false,
    }
}

fn lab() -> Lab {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        ..LabOptions::default()
    });
    lab.start_daemon();
    lab
}

/// Three IPv6 clients at once, over TCP (HTTP), UDP and ping: the server sees every one of
/// them as a pool4 address, and every answer finds its way back.
#[test]
fn several_ipv6_clients_share_pool4_over_tcp_udp_and_ping() {
    let mut lab = lab();
    let http = lab
        .server4
        .run(|| TcpListener::bind((SERVER4, 8080)))
        .expect("bind http");
    let http = std::thread::spawn(move || peers::http_serve(http, 3, Duration::from_secs(20)));
    let echo = lab
        .server4
        .run(|| UdpSocket::bind((SERVER4, 7007)))
        .expect("bind udp");
    let echo = std::thread::spawn(move || peers::udp_echo(echo, 3));

    // Each client, in its own thread: an HTTP fetch, a UDP echo and two pings, all at once.
    let url = format!("http://[{SERVER4_AS_V6}]:8080/");
    let mut workers = Vec::new();
    for (i, src) in STATEFUL_CLIENTS.into_iter().enumerate() {
        let mut curl = lab.client6.command("curl");
        curl.args([
            "-sS",
            "--max-time",
            "10",
            "--interface",
            &src.to_string(),
            &url,
        ]);
        let mut ping = lab.client6.command("ping");
        ping.args([
            "-n",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "2",
            "-I",
            &src.to_string(),
            &SERVER4_AS_V6.to_string(),
        ]);
        let udp = lab
            .client6
            .run(|| UdpSocket::bind((src, 0)))
            .expect("bind client udp");
        let sizes: &'static [usize] = [&[100usize][..], &[200], &[300]][i];
        workers.push(std::thread::spawn(move || {
            let udp_ok =
                peers::udp_exchange(&udp, (SERVER4_AS_V6, 7007).into(), sizes, i as u64) == 1;
            let page = curl.output().expect("curl");
            let pinged = ping.output().expect("ping");
            (src, udp_ok, page, pinged)
        }));
    }
    for w in workers {
        let (src, udp_ok, page, pinged) = w.join().expect("client thread");
        assert!(udp_ok, "UDP echo for {src}");
        let body = String::from_utf8_lossy(&page.stdout);
        assert!(
            body.contains("you are 203.0.113.20"),
            "HTTP from {src}: the server should see a pool4 address: {body}{}",
            String::from_utf8_lossy(&page.stderr)
        );
        assert!(
            pinged.status.success(),
            "ping from {src}: {}",
            String::from_utf8_lossy(&pinged.stdout)
        );
    }
    http.join().expect("http thread");
    let seen = echo.join().expect("echo thread");
    assert_eq!(seen.len(), 3, "three UDP clients echoed: {seen:?}");
    assert!(
        seen.iter().all(|p| in_pool4(p.ip())),
        "UDP sources {seen:?}"
    );

    let exit = lab.stop_daemon();
    for dir in Dir::ALL {
        for p in [L4Proto::Tcp, L4Proto::Udp, L4Proto::Icmp] {
            assert!(
                parse_value(&exit.stdout, Counter::Packets(dir, p)).unwrap_or(0) > 0,
                "{dir:?} {p:?}:\n{}",
                exit.stdout
            );
        }
    }
}

/// RFC 6146 section 3.5.2.2: when an established session's timer runs out, the daemon probes
/// the IPv6 host with an empty ACK (sequence and acknowledgment zero) and moves the session to
/// TRANS; the host's kernel answers the out-of-window segment with an ACK, which makes the
/// session established again. So an idle connection outlives the established timer (3 s here,
/// `rfc_minimum_timeouts = false`) as often as it runs out, and the server can still write
/// first after the wait. Without the probe the session, then the binding, went after 3 s, and
/// the server's segment met no binding.
#[test]
fn an_idle_connection_is_probed_and_survives_the_established_timer() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        stateful_extra: "tcp_established_timeout_secs = 3\n".into(),
        ..LabOptions::default()
    });
    lab.start_daemon();
    let listener = lab
        .server4
        .run(|| TcpListener::bind((SERVER4, 5006)))
        .expect("bind tcp");
    let (go, wait) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("first message");
        wait.recv().expect("go");
        // The server speaks first after the idle time: its segment needs the binding.
        s.write_all(b"first").expect("write after the idle time");
        s.read_exact(&mut buf).expect("answer after the idle time");
        buf
    });
    let src = STATEFUL_CLIENTS[0];
    let mut tcp = lab
        .client6
        .run(|| peers::tcp_connect_from(src, (SERVER4_AS_V6, 5006).into()));
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"hello").unwrap();
    // Idle for three established timers and the sweeper's periods.
    std::thread::sleep(Duration::from_secs(11));
    let (ok, sessions, err) = lab.bindings_cli(&["sessions"]);
    assert!(ok, "{err}");
    go.send(()).unwrap();
    let mut buf = [0u8; 5];
    tcp.read_exact(&mut buf).unwrap_or_else(|e| {
        panic!(
            "the server's segment after the idle time did not arrive ({e}); sessions then:\n{sessions}\n{}",
            lab.daemon_log()
        )
    });
    assert_eq!(&buf, b"first");
    tcp.write_all(b"reply").unwrap();
    assert_eq!(&server.join().expect("server thread"), b"reply");
    assert!(
        sessions.contains(&format!("{SERVER4}:5006 idle ")),
        "the session was gone after the idle time:\n{sessions}"
    );
}

/// A binding outlives its idle timeout only by the sweeper's period: an idle UDP binding
/// expires (3 s in the lab), after which the server's datagram to it finds nothing and is
/// dropped; until then any IPv4 host may use it (endpoint-independent filtering). An idle,
/// established TCP connection survives the same wait (its timeout is 2 h 4 min).
#[test]
fn idle_udp_expires_while_an_idle_tcp_connection_survives() {
    let mut lab = lab();
    // TCP from the first client, established and then left idle.
    let listener = lab
        .server4
        .run(|| TcpListener::bind((SERVER4, 5005)))
        .expect("bind tcp");
    let (to_server, server_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("first message");
        s.write_all(b"hello").expect("first answer");
        // Wait, idle, until the test says the UDP binding has expired.
        server_rx.recv().expect("go");
        s.read_exact(&mut buf).expect("message after the idle time");
        s.write_all(b"again").expect("answer after the idle time");
        peer
    });
    let src = STATEFUL_CLIENTS[0];
    let mut tcp = lab
        .client6
        .run(|| peers::tcp_connect_from(src, (SERVER4_AS_V6, 5005).into()));
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 5];
    tcp.write_all(b"hi!!!").unwrap();
    tcp.read_exact(&mut buf).expect("first answer");

    // UDP from the second client: the server learns its pool4 transport address.
    let server_udp = lab
        .server4
        .run(|| UdpSocket::bind((SERVER4, 7008)))
        .expect("bind udp");
    server_udp
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let client_udp = lab
        .client6
        .run(|| UdpSocket::bind((STATEFUL_CLIENTS[1], 0)))
        .expect("bind client udp");
    client_udp
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    client_udp
        .send_to(b"open", (SERVER4_AS_V6, 7008))
        .expect("send");
    let (_, bound) = server_udp.recv_from(&mut [0u8; 16]).expect("datagram");
    assert!(in_pool4(bound.ip()), "server saw {bound}");
    // While the binding lives, the server (or anyone) can write to it.
    server_udp.send_to(b"live", bound).expect("send back");
    // Generous: the tests run side by side, each lab's daemon loading its programs.
    client_udp
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = [0u8; 16];
    let n = client_udp
        .recv(&mut got)
        .expect("datagram through the live binding");
    assert_eq!(&got[..n], b"live");

    // Idle for the UDP timeout (3 s) plus two sweeper periods (1 s each) and a margin.
    std::thread::sleep(Duration::from_millis(6500));
    client_udp
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    server_udp.send_to(b"late", bound).expect("send late");
    assert!(
        client_udp.recv(&mut got).is_err(),
        "a datagram crossed an expired binding"
    );

    // The TCP connection, idle all that time, still works both ways.
    to_server.send(()).unwrap();
    tcp.write_all(b"still").unwrap();
    tcp.read_exact(&mut buf)
        .expect("answer after the idle time");
    assert_eq!(&buf, b"again");
    let peer = server.join().expect("server thread");
    assert!(in_pool4(peer.ip()), "TCP peer {peer}");
    // Its session (RFC 6146 section 3.5: the binding and the server's endpoint) is listed with
    // the TCP state both sides reached: established, or half-closed once the server's FIN
    // (its thread has ended) crossed; the UDP one is gone with its binding.
    let (ok, out, err) = lab.bindings_cli(&["sessions"]);
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("tcp {peer} {SERVER4}:5005 idle ")))
        .unwrap_or_else(|| panic!("no session of {peer}: {out}"));
    assert!(
        line.ends_with(" established") || line.ends_with(" half-closed"),
        "{line}"
    );
    assert!(!out.contains("udp "), "{out}");

    let exit = lab.stop_daemon();
    assert!(
        exit.stderr.contains("bindings expired"),
        "the sweeper said nothing:\n{}",
        exit.stderr
    );
    // log_bindings: the UDP binding's birth and death, with both transport addresses, so
    // that the server's log line ("from {bound}") leads back to the IPv6 client.
    let udp_client = STATEFUL_CLIENTS[1];
    let created = exit
        .stderr
        .lines()
        .find(|l| l.contains("binding created") && l.contains(&bound.to_string()))
        .unwrap_or_else(|| panic!("no creation logged for {bound}:\n{}", exit.stderr));
    assert!(created.contains(&format!("[{udp_client}]:")), "{created}");
    assert!(
        exit.stderr
            .lines()
            .any(|l| l.contains("binding removed") && l.contains(&bound.to_string())),
        "no removal logged for {bound}:\n{}",
        exit.stderr
    );
    assert!(
        parse_value(
            &exit.stdout,
            Counter::Dropped(Dir::V4ToV6, DropReason::NoBinding)
        )
        .unwrap_or(0)
            >= 1,
        "{}",
        exit.stdout
    );
}

/// A closed port on the IPv4 server answers ICMP Port Unreachable to the pool4 address; the
/// translator sends it to the IPv6 client through the binding, whose socket then reports
/// "connection refused".
#[test]
fn port_unreachable_reaches_the_ipv6_client_through_its_binding() {
    let mut lab = lab();
    assert!(
        peers::udp_refused(
            &lab.client6,
            "[2001:db8:6::203]:0",
            (SERVER4_AS_V6, 9).into()
        ),
        "no connection refused through the binding"
    );
    let exit = lab.stop_daemon();
    assert!(
        parse_value(&exit.stdout, Counter::Packets(Dir::V4ToV6, L4Proto::Icmp)).unwrap_or(0) >= 1,
        "{}",
        exit.stdout
    );
}

/// The operator's view: `nat64d bindings list` shows what the traffic made (filtered by
/// protocol and address); `bindings add` makes a static binding through which an IPv4 host
/// opens a TCP connection to an IPv6 server; `bindings remove` takes it away again.
#[test]
fn the_cli_lists_adds_and_removes_bindings() {
    let mut lab = lab();
    let client = STATEFUL_CLIENTS[1];
    // Some UDP traffic to make a dynamic binding.
    let echo = lab
        .server4
        .run(|| UdpSocket::bind((SERVER4, 7009)))
        .expect("bind udp");
    let echo = std::thread::spawn(move || peers::udp_echo(echo, 1));
    let sock = lab
        .client6
        .run(|| UdpSocket::bind((client, 41000)))
        .expect("bind client");
    assert_eq!(
        peers::udp_exchange(&sock, (SERVER4_AS_V6, 7009).into(), &[64], 9),
        1
    );
    let seen = echo.join().expect("echo")[0];

    // Only root (or the daemon's user) may use the admin socket.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(nat64_tests::nat64d_path())
        .arg("bindings")
        .arg("--socket")
        .arg(lab.admin_socket())
        .arg("list")
        .output()
        .expect("setpriv");
    assert!(
        !out.status.success(),
        "an unprivileged user listed bindings: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ermission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (ok, out, err) = lab.bindings_cli(&["list", "--protocol", "udp"]);
    assert!(ok, "{err}");
    let line = format!("udp [{client}]:41000 {seen}");
    assert!(out.contains(&line), "no {line:?} in:\n{out}");
    let (ok, out, _) = lab.bindings_cli(&["list", "--protocol", "tcp"]);
    assert!(
        ok && out.trim().is_empty(),
        "no TCP binding expected:\n{out}"
    );
    let (ok, out, _) = lab.bindings_cli(&["list", "--address", &seen.ip().to_string()]);
    assert!(
        ok && out.contains(&line),
        "filter by the IPv4 address:\n{out}"
    );

    // A static binding: the IPv4 server reaches a TCP service on the IPv6 client.
    let service = lab
        .client6
        .run(|| TcpListener::bind((client, 8080)))
        .expect("bind service");
    let (ok, _, err) = lab.bindings_cli(&[
        "add",
        "--protocol",
        "tcp",
        "--ipv6",
        &format!("[{client}]:8080"),
        "--ipv4",
        "203.0.113.200:80",
    ]);
    assert!(ok, "add: {err}");
    let (ok, _, err) = lab.bindings_cli(&[
        "add",
        "--protocol",
        "tcp",
        "--ipv6",
        &format!("[{client}]:8081"),
        "--ipv4",
        "203.0.113.200:80",
    ]);
    assert!(!ok && err.contains("already bound"), "a taken port: {err}");
    let (ok, _, err) = lab.bindings_cli(&[
        "add",
        "--protocol",
        "tcp",
        "--ipv6",
        &format!("[{client}]:8082"),
        "--ipv4",
        "192.0.2.77:80",
    ]);
    assert!(!ok && err.contains("not in pool4"), "outside pool4: {err}");
    let accept = std::thread::spawn(move || {
        let (mut s, peer) = service.accept().expect("accept");
        s.write_all(b"inbound ok").expect("write");
        peer
    });
    let mut c = lab
        .server4
        .run(|| {
            std::net::TcpStream::connect_timeout(
                &(std::net::Ipv4Addr::new(203, 0, 113, 200), 80).into(),
                Duration::from_secs(5),
            )
        })
        .expect("connect through the static binding");
    let mut got = String::new();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.read_to_string(&mut got).expect("read");
    assert_eq!(got, "inbound ok");
    let peer = accept.join().expect("accept thread");
    assert_eq!(
        peer.ip(),
        IpAddr::V6(SERVER4_AS_V6),
        "the IPv6 service sees the server under pool6"
    );
    let (_, out, _) = lab.bindings_cli(&["list", "--protocol", "tcp"]);
    assert!(
        out.contains(&format!("tcp [{client}]:8080 203.0.113.200:80 static")),
        "{out}"
    );

    let (ok, _, err) = lab.bindings_cli(&[
        "remove",
        "--protocol",
        "tcp",
        "--ipv6",
        &format!("[{client}]:8080"),
    ]);
    assert!(ok, "remove: {err}");
    let again = lab.server4.run(|| {
        std::net::TcpStream::connect_timeout(
            &(std::net::Ipv4Addr::new(203, 0, 113, 200), 80).into(),
            Duration::from_secs(2),
        )
    });
    assert!(again.is_err(), "connected without a binding");
    // The counters, for people and for programs.
    let (ok, table, err) = lab.stats_cli(false);
    assert!(ok, "{err}");
    assert!(
        table.starts_with("direction") && table.contains("translated packets, udp"),
        "{table}"
    );
    let (ok, json, err) = lab.stats_cli(true);
    assert!(ok, "{err}");
    assert!(
        json.starts_with("{\"6to4\":{\"translated\":{\"tcp\":") && json.contains("\"no_binding\":"),
        "{json}"
    );
    // Flush: the dynamic bindings go (the static one was removed above).
    let (ok, out, err) = lab.bindings_cli(&["flush"]);
    assert!(ok && out.contains("bindings removed"), "{out}{err}");
    let (_, listing, _) = lab.bindings_cli(&["list"]);
    assert!(listing.trim().is_empty(), "{listing}");
    let exit = lab.stop_daemon();
    assert!(
        parse_value(
            &exit.stdout,
            Counter::Dropped(Dir::V4ToV6, DropReason::NoBinding)
        )
        .unwrap_or(0)
            >= 1,
        "{}",
        exit.stdout
    );
}

/// UDP datagrams larger than the MTU from a stateful client, echoed back by the IPv4 server:
/// the IPv6 fragments leave from the client's pool4 address (the later ones carry no port, and
/// need none), and the echo's IPv4 fragments follow the binding their first fragment found.
/// With a 1500-byte IPv4 link the echo's fragments are also refragmented through the
/// translator link, where the same tracking applies.
#[test]
fn fragmented_datagrams_cross_a_binding_both_ways() {
    for v4_link_mtu in [1400, 1500] {
        nat64_tests::require_root();
        let mut lab = Lab::new(LabOptions {
            stateful: true,
            v4_link_mtu,
            ..LabOptions::default()
        });
        lab.start_daemon();
        const SIZES: [usize; 3] = [3000, 5000, 8000];
        let echo = lab
            .server4
            .run(|| UdpSocket::bind((SERVER4, 7010)))
            .expect("bind udp");
        let echo = std::thread::spawn(move || peers::udp_echo(echo, SIZES.len()));
        let sock = lab
            .client6
            .run(|| UdpSocket::bind((STATEFUL_CLIENTS[2], 0)))
            .expect("bind client");
        let ok = peers::udp_exchange(&sock, (SERVER4_AS_V6, 7010).into(), &SIZES, 7);
        let seen = echo.join().expect("echo");
        assert_eq!(
            ok,
            SIZES.len(),
            "MTU {v4_link_mtu}: datagrams echoed intact"
        );
        assert!(seen.iter().all(|p| in_pool4(p.ip())), "{seen:?}");
        let exit = lab.stop_daemon();
        for dir in Dir::ALL {
            assert_eq!(
                parse_value(&exit.stdout, Counter::Dropped(dir, DropReason::Fragment)),
                Some(0),
                "MTU {v4_link_mtu} {dir:?}:\n{}",
                exit.stdout
            );
        }
    }
}

/// Hairpinning (RFC 6146 section 3.8): a stateful client reaches another through the other's
/// pool4 transport address (as a peer-to-peer application learns it). The translated IPv4
/// packet is for pool4, which the kernel routes into the translator link, where it is
/// translated back to IPv6 through the other's binding; each sees the other at its pool4
/// transport address under pool6.
#[test]
fn stateful_clients_reach_each_other_through_their_pool4_addresses() {
    let mut lab = lab();
    // B makes a binding for its port 9000 by talking to the IPv4 server, which learns B's
    // pool4 transport address.
    let server = lab
        .server4
        .run(|| UdpSocket::bind((SERVER4, 7011)))
        .expect("bind server");
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let b = lab
        .client6
        .run(|| UdpSocket::bind((STATEFUL_CLIENTS[1], 9000)))
        .expect("bind B");
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    b.send_to(b"hello server", (SERVER4_AS_V6, 7011))
        .expect("send");
    let (_, b_public) = server.recv_from(&mut [0u8; 64]).expect("B's datagram");
    let IpAddr::V4(b4) = b_public.ip() else {
        panic!("{b_public}")
    };
    assert!(in_pool4(b_public.ip()));
    let b_as_v6: std::net::Ipv6Addr = {
        let o = b4.octets();
        std::net::Ipv6Addr::new(
            0x64,
            0xff9b,
            0,
            0,
            0,
            0,
            u16::from_be_bytes([o[0], o[1]]),
            u16::from_be_bytes([o[2], o[3]]),
        )
    };

    // A writes to B's pool4 transport address under pool6, on a connected socket: only an
    // answer from exactly that address is accepted.
    let a = lab
        .client6
        .run(|| UdpSocket::bind((STATEFUL_CLIENTS[0], 0)))
        .expect("bind A");
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    a.connect((b_as_v6, b_public.port())).expect("connect");
    a.send(b"hello B").expect("send to B");
    let mut buf = [0u8; 64];
    let (n, a_seen) = b.recv_from(&mut buf).expect("B receives A's datagram");
    assert_eq!(&buf[..n], b"hello B");
    let IpAddr::V6(a6) = a_seen.ip() else {
        panic!("{a_seen}")
    };
    let o = a6.octets();
    assert_eq!(
        &o[..12],
        &[0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0],
        "A under pool6: {a_seen}"
    );
    assert!(
        in_pool4(IpAddr::V4(std::net::Ipv4Addr::new(
            o[12], o[13], o[14], o[15]
        ))),
        "{a_seen}"
    );
    b.send_to(b"hello A", a_seen).expect("answer A");
    let n = a.recv(&mut buf).expect("A receives B's answer");
    assert_eq!(&buf[..n], b"hello A");
    let exit = lab.stop_daemon();
    assert!(
        parse_value(&exit.stdout, Counter::Packets(Dir::V4ToV6, L4Proto::Udp)).unwrap_or(0) >= 2,
        "{}",
        exit.stdout
    );
}

/// The lab's configuration with pool4 on the translator's own address 192.0.2.1, shared by
/// port (ports 61001-65535, beside the kernel's ephemeral ones), and a documentation address
/// for that address's alias (`stateful.shared_address_alias`, whose default is 240.0.0.64).
/// A UDP socket of the node itself on its shared pool4 address (192.0.2.1), from an ephemeral
/// port: the node's own traffic, which the translator must leave to the kernel.
fn node_socket(lab: &Lab) -> UdpSocket {
    lab.xlat
        .run(|| UdpSocket::bind(("192.0.2.1", 0)))
        .expect("bind node udp")
}

fn shared_pool4_toml(lab: &Lab) -> String {
    let toml = lab.config_toml().replace(
        "pool4 = \"203.0.113.200/30\"\nports = \"20000-29999\"",
        "pool4 = \"192.0.2.1/32\"\nports = \"61001-65535\"\n\
         shared_address_alias = \"203.0.113.64\"",
    );
    assert!(
        toml.contains("pool4 = \"192.0.2.1/32\""),
        "test setup:\n{toml}"
    );
    toml
}

/// The dataplane shares one of the node's addresses in pool4; with two, the daemon says which
/// and what the other loses (hairpinning and fragmentation through the node), rather than
/// leaving the operator to find out from lost packets.
#[test]
fn a_second_node_address_in_pool4_is_named_at_start() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        ..LabOptions::default()
    });
    lab.xlat.ip(&["addr", "add", "192.0.2.9/32", "dev", "lo"]);
    let toml = shared_pool4_toml(&lab).replace(
        "pool4 = \"192.0.2.1/32\"",
        "pool4 = [\"192.0.2.1/32\", \"192.0.2.9/32\"]",
    );
    assert!(
        toml.contains("pool4 = [\"192.0.2.1/32\", \"192.0.2.9/32\"]"),
        "test setup:\n{toml}"
    );
    lab.start_daemon_with(&toml);
    let log = lab.daemon_log();
    let warning = log
        .lines()
        .find(|l| l.contains("only the first is shared"))
        .unwrap_or_else(|| panic!("no warning about the second address:\n{log}"));
    // Whichever the node lists first is shared (here the loopback's), the other named.
    assert!(
        (warning.contains("shared=192.0.2.1") && warning.contains("others=[192.0.2.9]"))
            || (warning.contains("shared=192.0.2.9") && warning.contains("others=[192.0.2.1]")),
        "{warning}"
    );
}

/// pool4 on the translator's own address, shared by port (Jool's default pool4): the node's
/// 192.0.2.1 serves as pool4 with ports 61001-65535, beside the kernel's ephemeral ports. A
/// stateful client's flows leave from it with a pool4 port, while the node's own traffic on
/// the same address (its ping, a datagram from its own ephemeral port) comes and goes as
/// before: the translator leaves it to the kernel.
#[test]
fn pool4_on_the_translators_own_address_is_shared_by_port() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        ..LabOptions::default()
    });
    lab.start_daemon_with(&shared_pool4_toml(&lab));
    let echo = lab
        .server4
        .run(|| UdpSocket::bind((SERVER4, 7007)))
        .expect("bind udp");
    let echo = std::thread::spawn(move || peers::udp_echo(echo, 2));
    // A stateful client through the shared address.
    let client = lab
        .client6
        .run(|| UdpSocket::bind((STATEFUL_CLIENTS[0], 0)))
        .expect("bind client udp");
    assert_eq!(
        peers::udp_exchange(&client, (SERVER4_AS_V6, 7007).into(), &[64], 1),
        1,
        "the client's datagram through pool4 on 192.0.2.1"
    );
    // The node's own datagram, from its own ephemeral port on the same address.
    let own = node_socket(&lab);
    assert_eq!(
        peers::udp_exchange(&own, (SERVER4, 7007).into(), &[32], 2),
        1,
        "the node's own datagram and its echo\n{}",
        lab.daemon_log()
    );
    let seen = echo.join().expect("echo thread");
    assert_eq!(seen.len(), 2, "{seen:?}");
    let client_port = seen[0].port();
    assert_eq!(seen[0].ip(), IpAddr::from([192, 0, 2, 1]), "{seen:?}");
    assert!(
        (61001..=65535).contains(&client_port),
        "the client's binding takes a pool4 port: {seen:?}"
    );
    assert!(
        !(61001..=65535).contains(&seen[1].port()),
        "the node's own socket keeps an ephemeral port: {seen:?}"
    );
    // The node's own ping: the echo replies to 192.0.2.1 are its own.
    let (ok, text) = nat64_tests::lab::ping(&lab.xlat, "192.0.2.2", 2);
    assert!(ok, "the node's ping:\n{text}");
    // The client's ping through the shared address too.
    let (ok, text) = nat64_tests::lab::ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
    assert!(ok, "the client's ping:\n{text}");
}

/// RFC 7915 section 4.1 through pool4 on the translator's own address: an IPv4 datagram
/// without DF is fragmented so that each piece fits `ipv6_mtu` (1280, as is the client's
/// link). The server's 3000-byte echo leaves its kernel as fragments of up to 1500 bytes,
/// 1528 once translated. The kernel would deliver them to the node rather than fragment them
/// into the translator link (as it does for another pool4 address), so the dataplane sends
/// them there under `stateful.shared_address_alias`, and the link translates the kernel's
/// pieces. The 1400-byte echo leaves with DF, is answered with Fragmentation Needed, and is
/// sent again in fragments after the client's retry. At both hooks; the node's own datagram,
/// as large, still reaches its own socket.
#[test]
fn large_datagrams_through_a_shared_pool4_address_are_fragmented_to_fit() {
    nat64_tests::require_root();
    for mode in ["native", "tc"] {
        let mut lab = Lab::new(LabOptions {
            stateful: true,
            xdp_mode: mode.into(),
            ..LabOptions::default()
        });
        // The client's link at the IPv6 minimum: only pieces that fit `ipv6_mtu` reach it.
        lab.client6.ip(&["link", "set", "dev", "c0", "mtu", "1280"]);
        lab.xlat.ip(&["link", "set", "dev", "xc", "mtu", "1280"]);
        lab.start_daemon_with(&shared_pool4_toml(&lab));
        let echo = lab
            .server4
            .run(|| UdpSocket::bind((SERVER4, 7007)))
            .expect("bind udp");
        // Detached: the 1400-byte echo may be asked for more than once (the client retries
        // until the server has learnt the path's MTU), so how many datagrams come is not known.
        std::thread::spawn(move || peers::udp_echo(echo, 16));
        let client = lab
            .client6
            .run(|| UdpSocket::bind((STATEFUL_CLIENTS[0], 0)))
            .expect("bind client udp");
        assert_eq!(
            peers::udp_exchange(&client, (SERVER4_AS_V6, 7007).into(), &[3000, 1400], 1),
            2,
            "{mode}: the server's large echoes through pool4 on 192.0.2.1\n{}",
            lab.daemon_log()
        );
        let own = node_socket(&lab);
        assert_eq!(
            peers::udp_exchange(&own, (SERVER4, 7007).into(), &[3000], 9),
            1,
            "{mode}: the node's own large datagram and its echo\n{}",
            lab.daemon_log()
        );
        let exit = lab.stop_daemon();
        assert!(
            parse_value(
                &exit.stdout,
                Counter::Handoff(Dir::V4ToV6, nat64_common::Handoff::NeedsFragmentation)
            )
            .unwrap_or(0)
                >= 1,
            "{mode}: handed to the kernel to fragment\n{}",
            exit.stdout
        );
    }
}

/// Bulk TCP both ways through pool4 on the translator's own address, with the senders' GSO
/// on: in generic XDP the fast path receives the server's aggregates whole, too big to
/// translate in place, and hands them to the kernel to cut on their way into the translator
/// link; to the shared address the kernel would deliver them to the node (and answer them
/// with a reset), so they go there under the address's alias.
#[test]
fn bulk_tcp_through_a_shared_pool4_address_in_generic_xdp() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        xdp_mode: "generic".into(),
        sender_gso: true,
        ..LabOptions::default()
    });
    lab.start_daemon_with(&shared_pool4_toml(&lab));
    let listener = lab
        .server4
        .run(|| TcpListener::bind((SERVER4, 8090)))
        .expect("bind");
    let server = std::thread::spawn(move || peers::tcp_serve_once(listener, 1 << 20, 1 << 20, 21));
    let stream = lab
        .client6
        .run(|| peers::tcp_connect_from(STATEFUL_CLIENTS[0], (SERVER4_AS_V6, 8090).into()));
    let started = std::time::Instant::now();
    let (intact, got) = peers::tcp_transfer(stream, 1 << 20, 1 << 20, 21);
    let report = server.join().expect("server");
    let took = started.elapsed();
    assert!(
        report.upload_intact && intact && got == 1 << 20,
        "upload intact {}, download intact {intact} ({got} bytes)\n{}",
        report.upload_intact,
        lab.daemon_log()
    );
    assert_eq!(report.peer.ip(), IpAddr::from([192, 0, 2, 1]));
    // Aggregates sent where the kernel answers them with a Fragmentation Needed the sender
    // cannot match (under the alias routed at pool4's MTU) stall the transfer: it took 55 s
    // that way, 55 ms under the second alias.
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    let exit = lab.stop_daemon();
    assert!(
        parse_value(
            &exit.stdout,
            Counter::Handoff(Dir::V4ToV6, nat64_common::Handoff::GsoAggregate)
        )
        .unwrap_or(0)
            >= 1,
        "the server's aggregates handed to the kernel\n{}",
        exit.stdout
    );
}

/// RFC 6146 section 3.5.2.2, with the real daemon: an IPv4 host's SYN to a pool4 port with no
/// binding is held 6 seconds and then refused with ICMP Port Unreachable, so the host's
/// connect fails with "connection refused" after those seconds rather than timing out; and an
/// IPv6 client's SYN toward that host within the window completes a simultaneous open on the
/// held port (how peer-to-peer TCP crosses NATs), with data both ways.
#[test]
fn unsolicited_syns_are_held_then_refused_or_joined_by_a_simultaneous_open() {
    use std::{net::Ipv4Addr, time::Instant};
    let mut lab = lab();
    let client = STATEFUL_CLIENTS[0];
    // The pool4 address every binding of the client's /64 gets (paired pooling).
    let idx = nat64_common::state::pool4_index(&client.octets(), 4);
    let pool = Ipv4Addr::new(203, 0, 113, 200 + idx as u8);

    // Nobody opens the other side: refused once the SYN's time is up.
    let started = Instant::now();
    let refused = lab.server4.run(|| {
        peers::tcp_connect_bound(
            (SERVER4, 40000).into(),
            (pool, 21000).into(),
            Duration::from_secs(15),
        )
    });
    let took = started.elapsed();
    let err = refused.expect_err("a SYN to a pool4 port without a binding was accepted");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "after {took:?}: {err}"
    );
    assert!(
        took >= Duration::from_millis(5900) && took < Duration::from_secs(9),
        "refused after {took:?}, not after the 6 seconds the SYN is held"
    );

    // Simultaneous open: the IPv4 host's SYN first, the IPv6 client's half a second later.
    let (v4, v6) = std::thread::scope(|sc| {
        let v4 = sc.spawn(|| {
            lab.server4.run(|| {
                peers::tcp_connect_bound(
                    (SERVER4, 40001).into(),
                    (pool, 22000).into(),
                    Duration::from_secs(10),
                )
            })
        });
        std::thread::sleep(Duration::from_millis(500));
        let v6 = lab.client6.run(|| {
            peers::tcp_connect_bound(
                (client, 41000).into(),
                (SERVER4_AS_V6, 40001).into(),
                Duration::from_secs(10),
            )
        });
        (v4.join().expect("IPv4 thread"), v6)
    });
    let mut four = v4.expect("the IPv4 side of the simultaneous open");
    let mut six = v6.expect("the IPv6 side of the simultaneous open");
    assert_eq!(
        six.peer_addr().expect("peer").port(),
        40001,
        "the IPv6 side reached the host's port"
    );
    four.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    six.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    four.write_all(b"from v4").expect("write v4");
    six.write_all(b"from v6").expect("write v6");
    let mut buf = [0u8; 7];
    six.read_exact(&mut buf).expect("read on the IPv6 side");
    assert_eq!(&buf, b"from v4");
    four.read_exact(&mut buf).expect("read on the IPv4 side");
    assert_eq!(&buf, b"from v6");
    let (_, listing, _) = lab.bindings_cli(&["list", "--protocol", "tcp"]);
    assert!(
        listing.contains(&format!("tcp [{client}]:41000 {pool}:22000")),
        "the binding took the held SYN's port: {listing}"
    );
    drop((four, six));

    let exit = lab.stop_daemon();
    let count = |c| parse_value(&exit.stdout, c).unwrap_or(0);
    assert!(
        count(Counter::Dropped(Dir::V4ToV6, DropReason::UnsolicitedSyn)) >= 2,
        "{}",
        exit.stdout
    );
    assert!(
        count(Counter::Generated(nat64_common::Generated::PortUnreachable)) >= 1,
        "{}",
        exit.stdout
    );
}
