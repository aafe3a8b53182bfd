//! Forwarding from the hook (`forward_in_dataplane`), XDP and TC: a translated packet is routed
//! by a FIB lookup and redirected with the next hop's MAC address, one hop taken; what the
//! lookup cannot finish goes up the stack. Packet level (in a namespace of its own, whose routes and neighbours the
//! lookup sees) and end to end.

use etherparse::PacketBuilder;
use nat64_common::{Counter, Dir, L4Proto};
use nat64_daemon::stats::parse_value;
use nat64_tests::{
    lab::{CLIENT6_AS_V4, Lab, LabOptions, SERVER4, SERVER4_AS_V6, ping},
    netns::Netns,
    peers,
    xdp::{Loaded, XDP_PASS, XDP_REDIRECT, XDP_TX, counter_delta},
};

const CLIENT6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2];
const SERVER6: [u8; 16] = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 2];
const NEXT_HOP4_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xaa];
const NEXT_HOP6_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xbb];
/// Stateless, the client 2001:db8:6::102 mapped by the EAM entry; written with the option's
/// first name, which must still be read.
const FORWARDING_CONFIG: &str = "pool6 = \"64:ff9b::/96\"\nforward_in_xdp = true\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n";

fn udp6(dst: [u8; 16], hop: u8) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv6(CLIENT6, dst, hop)
        .udp(40000, 53)
        .write(&mut v, b"forward me")
        .unwrap();
    v
}

fn udp4(src: [u8; 4], dst: [u8; 4], ttl: u8) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, ttl)
        .udp(53, 40000)
        .write(&mut v, b"forward me")
        .unwrap();
    v
}

/// A namespace whose routes and neighbours the FIB lookup sees: f0 (a veth) on 192.0.2.0/24
/// and 2001:db8:6::/64, with permanent neighbours 192.0.2.2 and 2001:db8:6::102, forwarding
/// on in both families.
fn fib_ns() -> Netns {
    let ns = Netns::new("fwd");
    ns.ip(&["link", "add", "f0", "type", "veth", "peer", "name", "f1"]);
    ns.ip(&["link", "set", "dev", "f0", "up"]);
    ns.ip(&["link", "set", "dev", "f1", "up"]);
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "f0"]);
    ns.ip(&["addr", "add", "2001:db8:6::1/64", "dev", "f0", "nodad"]);
    ns.ip(&[
        "neigh",
        "add",
        "192.0.2.2",
        "lladdr",
        "02:00:00:00:00:aa",
        "dev",
        "f0",
        "nud",
        "permanent",
    ]);
    ns.ip(&[
        "neigh",
        "add",
        "2001:db8:6::102",
        "lladdr",
        "02:00:00:00:00:bb",
        "dev",
        "f0",
        "nud",
        "permanent",
    ]);
    ns.sysctl("net.ipv4.ip_forward", "1");
    ns.sysctl("net.ipv6.conf.all.forwarding", "1");
    ns
}

#[test]
fn translated_packets_are_routed_and_redirected_from_xdp() {
    nat64_tests::require_root();
    let ns = fib_ns();
    ns.run(|| {
        let mac = ns_mac("f0");
        let mut x = Loaded::load("forward", FORWARDING_CONFIG);
        routes_and_redirects(&|f| x.run_counted(f), XDP_REDIRECT, mac);
        // From an interface where partial checksums can arrive: up the stack (once
        // redirected, nobody would complete such a checksum).
        let partial = nat64_daemon::InterfaceSettings {
            partial_checksums: true,
            ..Default::default()
        };
        x.dp.set_interface(1, &partial).expect("IFACES");
        let (action, out, moved) = x.run_counted(&udp6(SERVER6, 64));
        assert_eq!(action, XDP_PASS, "{moved:?}");
        assert_eq!(
            (u16::from_be_bytes([out[12], out[13]]), out[14 + 8]),
            (0x0800, 64)
        );
    });
}

/// The same from TC: the redirect is `TC_ACT_REDIRECT`, and what XDP leaves to the stack for
/// its checksums (an interface where partial ones arrive) is forwarded, the socket buffer
/// keeping its checksum state; a GSO aggregate longer than the egress MTU is forwarded whole
/// (the kernel cuts it there).
#[test]
fn translated_packets_are_routed_and_redirected_from_tc() {
    nat64_tests::require_root();
    let ns = fib_ns();
    ns.run(|| {
        let mac = ns_mac("f0");
        let mut x = Loaded::load(
            "forward-tc",
            &FORWARDING_CONFIG.replace("forward_in_xdp", "forward_in_dataplane"),
        );
        let partial = nat64_daemon::InterfaceSettings {
            partial_checksums: true,
            ..Default::default()
        };
        x.dp.set_interface(1, &partial).expect("IFACES");
        let run = |frame: &[u8], gso_size: u32| {
            let before = x.stats();
            let (action, out) = x.run_tc(frame, gso_size);
            (action, out, counter_delta(&before, &x.stats()))
        };
        // The same as from XDP, though partial checksums may arrive here.
        routes_and_redirects(&|f| run(f, 0), XDP_TX, mac);
        // 2800 bytes of TCP for f0's 1500: as a GSO aggregate of 1400-byte segments it is
        // forwarded whole; as one packet it goes up the stack (too big for the route).
        let mut big = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(CLIENT6, SERVER6, 64)
            .tcp(40000, 80, 1, 65535)
            .ack(1)
            .write(&mut big, &[0x5a; 2800])
            .unwrap();
        let (action, out, moved) = run(&big, 1400);
        assert_eq!(action, XDP_TX, "a GSO aggregate: {moved:?}");
        assert_eq!((&out[0..6], out[14 + 8]), (&NEXT_HOP4_MAC[..], 63));
        assert_eq!(
            u16::from_be_bytes([out[16], out[17]]) as usize,
            20 + 20 + 2800
        );
        // One packet that long is the core's: too big for the route out (it looks the route's
        // MTU up), it calls for a Packet Too Big, which TC leaves to the translator link (none
        // here): untouched, up the stack, not forwarded.
        let (action, out, moved) = run(&big, 0);
        assert_eq!(action, XDP_PASS, "one packet too big for f0: {moved:?}");
        assert!(out == big, "untouched");
        assert!(
            !moved
                .iter()
                .any(|(c, _)| matches!(c, Counter::Forwarded(_))),
            "{moved:?}"
        );
    });
}

/// One run of the fast path: verdict, output frame, counters moved.
type Ran = (u32, Vec<u8>, Vec<(Counter, u64)>);

/// What forwarding does from either hook, in `fib_ns`'s namespace: `run` runs the fast path
/// once on a frame (verdict, output frame, counters moved), `redirected` is its verdict for a
/// redirect and `mac` f0's MAC address.
fn routes_and_redirects(run: &dyn Fn(&[u8]) -> Ran, redirected: u32, mac: [u8; 6]) {
    // 6to4: routed out of f0 to 192.0.2.2's MAC, TTL one less than the hop limit was.
    let (action, out, moved) = run(&udp6(SERVER6, 64));
    assert_eq!(action, redirected, "{moved:?}");
    assert_eq!(&out[0..6], &NEXT_HOP4_MAC, "destination MAC: the next hop");
    assert_eq!(&out[6..12], &mac, "source MAC: f0");
    assert_eq!(u16::from_be_bytes([out[12], out[13]]), 0x0800);
    assert_eq!(out[14 + 8], 63, "TTL: the hop the kernel would have taken");
    assert_eq!(
        nat64_common::checksum::compute(0, &out[14..34]),
        0,
        "IPv4 header checksum"
    );
    assert!(
        moved.contains(&(Counter::Forwarded(Dir::V6ToV4), 1)),
        "{moved:?}"
    );
    assert!(
        moved.contains(&(Counter::Packets(Dir::V6ToV4, L4Proto::Udp), 1)),
        "{moved:?}"
    );
    // 4to6: to 2001:db8:6::102's MAC, hop limit 63.
    let (action, out, moved) = run(&udp4([192, 0, 2, 2], [198, 51, 100, 2], 64));
    assert_eq!(action, redirected, "{moved:?}");
    assert_eq!(&out[0..6], &NEXT_HOP6_MAC);
    assert_eq!(u16::from_be_bytes([out[12], out[13]]), 0x86dd);
    assert_eq!(out[14 + 7], 63, "hop limit");
    assert!(
        moved.contains(&(Counter::Forwarded(Dir::V4ToV6), 1)),
        "{moved:?}"
    );
    // No neighbour entry yet: translated, up the stack, which resolves it.
    let (action, out, moved) = run(&udp6(
        [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 9],
        64,
    ));
    assert_eq!(action, XDP_PASS, "{moved:?}");
    assert_eq!(
        u16::from_be_bytes([out[12], out[13]]),
        0x0800,
        "translated all the same"
    );
    assert_eq!(out[14 + 8], 64, "no hop taken: the kernel takes it");
    assert!(
        !moved
            .iter()
            .any(|(c, _)| matches!(c, Counter::Forwarded(_))),
        "{moved:?}"
    );
    // A hop limit of 2 leaves with a TTL of 1, still forwarded.
    let (action, out, _) = run(&udp6(SERVER6, 2));
    assert_eq!((action, out[14 + 8]), (redirected, 1));
}

/// The MAC address of `dev` in the calling thread's namespace.
fn ns_mac(dev: &str) -> [u8; 6] {
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show", "dev", dev])
        .output()
        .expect("ip link");
    let text = String::from_utf8_lossy(&out.stdout);
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("link/ether");
    let mut m = [0u8; 6];
    for (i, b) in mac.split(':').enumerate() {
        m[i] = u8::from_str_radix(b, 16).unwrap();
    }
    m
}

#[test]
fn forwarding_from_xdp_end_to_end() {
    nat64_tests::require_root();
    let lab_opts = LabOptions {
        extra_config: "forward_in_dataplane = true\n".to_string(),
        ..LabOptions::default()
    };
    let mut lab = Lab::new(lab_opts);
    // Complete checksums from the senders (as physical NICs deliver them): packets that may
    // carry partial ones are never forwarded from XDP.
    for (ns, dev) in [(&lab.client6, "c0"), (&lab.server4, "s0")] {
        let out = ns.output("ethtool", &["-K", dev, "tx", "off"]);
        assert!(out.status.success());
    }
    let toml = lab.config_toml().replace(
        "xdp_mode = \"native\"\n",
        "xdp_mode = \"native\"\npartial_checksums = \"off\"\n",
    );
    assert!(toml.contains("partial_checksums = \"off\""), "{toml}");
    lab.start_daemon_with(&toml);
    forwards_both_ways(lab, "XDP");
}

/// The same at the TC hook, with the lab's senders offloading checksums (partial ones arrive,
/// and GSO aggregates): the redirected socket buffer keeps both, and the egress completes the
/// checksums (the lab's receivers verify them).
#[test]
fn forwarding_from_tc_end_to_end() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        xdp_mode: "tc".into(),
        extra_config: "forward_in_dataplane = true\n".to_string(),
        ..LabOptions::default()
    });
    lab.start_daemon();
    forwards_both_ways(lab, "TC");
}

/// Pings both ways and 1 MiB of TCP each way through the lab's running daemon, which stops;
/// most translated packets (all but those sent while neighbours were resolved) were forwarded
/// from the hook.
fn forwards_both_ways(mut lab: Lab, hook: &str) {
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 3);
    assert!(ok, "{text}");
    let (ok, text) = ping(&lab.server4, &CLIENT6_AS_V4.to_string(), 3);
    assert!(ok, "{text}");
    let listener = lab
        .server4
        .run(|| std::net::TcpListener::bind((SERVER4, 5030)))
        .expect("bind");
    let server = std::thread::spawn(move || peers::tcp_serve_once(listener, 1 << 20, 1 << 20, 5));
    let stream = lab
        .client6
        .run(|| peers::tcp_connect((SERVER4_AS_V6, 5030).into()));
    let (ok, n) = peers::tcp_transfer(stream, 1 << 20, 1 << 20, 5);
    assert!(ok, "1 MiB each way forwarded from {hook}: {n} bytes");
    let _ = server.join();
    let exit = lab.stop_daemon();
    for dir in Dir::ALL {
        let translated: u64 = L4Proto::ALL
            .iter()
            .map(|p| parse_value(&exit.stdout, Counter::Packets(dir, *p)).unwrap_or(0))
            .sum();
        let forwarded = parse_value(&exit.stdout, Counter::Forwarded(dir)).unwrap_or(0);
        // All but the first packets, which went up the stack while neighbours were resolved
        // (at TC a GSO aggregate counts as one: a few dozen each way).
        assert!(
            forwarded * 10 >= translated * 8 && translated > 20,
            "{dir:?}: {forwarded} of {translated} forwarded from {hook}\n{}",
            exit.stdout
        );
    }
}
