//! End-to-end: the real daemon in a namespace lab (see `nat64_tests::lab`), real TCP, UDP and
//! ICMP between an IPv6-only and an IPv4-only host, in both directions and both XDP modes.
//!
//! The lab turns checksum offload off on the translator's interfaces, so every packet that
//! leaves the translator carries a complete checksum that the receiving kernel verifies: a
//! wrong checksum update fails these tests instead of hiding behind veth's trust in
//! CHECKSUM_PARTIAL.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use nat64_common::{Counter, Dir, DropReason, Handoff, L4Proto};
use nat64_daemon::stats::parse_value;
use nat64_tests::{
    lab::{CLIENT6, CLIENT6_AS_V4, Lab, LabOptions, SERVER4, SERVER4_AS_V6, XLAT6, ping},
    netns::Netns,
    peers,
};

const BULK: usize = 8 << 20;

fn exchange_everything(mode: &str) {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        xdp_mode: mode.into(),
        ..LabOptions::default()
    });
    lab.start_daemon();
    let tc = mode == "tc";
    if tc {
        for dev in ["xc", "xs"] {
            let progs = lab.xlat_tcx_programs(dev);
            assert_eq!(progs, ["nat64_tc"], "tcx ingress of {dev}");
            assert!(!lab.xlat_link(dev).contains("xdp"), "XDP on {dev} too");
        }
    } else {
        assert!(
            lab.xlat_link("xc").contains("prog/xdp"),
            "XDP not attached to xc:\n{}",
            lab.xlat_link("xc")
        );
    }

    // TCP, 8 MiB each way with content checks; each side must see the other's translated
    // address: the IPv6 client as its EAM address, the IPv4 server under pool6.
    tcp_round_trip(
        &lab.server4,
        (SERVER4, 5001).into(),
        &lab.client6,
        (SERVER4_AS_V6, 5001).into(),
        CLIENT6_AS_V4.into(),
        11,
    );
    tcp_round_trip(
        &lab.client6,
        (CLIENT6, 5002).into(),
        &lab.server4,
        (CLIENT6_AS_V4, 5002).into(),
        SERVER4_AS_V6.into(),
        22,
    );

    // UDP both ways, sizes from tiny to a full 1500-byte packet on the IPv6 side.
    const SIZES6: [usize; 8] = [1, 8, 100, 512, 1000, 1200, 1400, 1452];
    udp_round_trip(
        &lab.server4,
        (SERVER4, 7001).into(),
        &lab.client6,
        "[::]:0",
        (SERVER4_AS_V6, 7001).into(),
        CLIENT6_AS_V4.into(),
        &SIZES6,
    );
    const SIZES4: [usize; 5] = [1, 64, 700, 1400, 1432];
    udp_round_trip(
        &lab.client6,
        (CLIENT6, 7002).into(),
        &lab.server4,
        "0.0.0.0:0",
        (CLIENT6_AS_V4, 7002).into(),
        SERVER4_AS_V6.into(),
        &SIZES4,
    );

    // ICMP echo both ways.
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 4);
    assert!(ok, "ping 6->4 failed:\n{text}");
    let (ok, text) = ping(&lab.server4, &CLIENT6_AS_V4.to_string(), 4);
    assert!(ok, "ping 4->6 failed:\n{text}");

    // Traffic not addressed to the translator's prefixes passes untouched: the client reaches
    // the translator's own IPv6 address.
    let (ok, text) = ping(&lab.client6, &XLAT6.to_string(), 2);
    assert!(ok, "ping to the translator's own address failed:\n{text}");

    let exit = lab.stop_daemon();
    assert!(
        exit.status.success(),
        "nat64d exit {}:\n{}",
        exit.status,
        exit.stderr
    );
    let v = |c: Counter| {
        parse_value(&exit.stdout, c)
            .unwrap_or_else(|| panic!("counter {c:?} missing from:\n{}", exit.stdout))
    };
    // 8 MiB in segments of at most 1440 bytes is more than 5800 segments each way. At TC the
    // senders' GSO aggregates cross whole (`bpf_skb_change_proto`) and count as one packet
    // each: far fewer, which is what the TC hook is for.
    for dir in Dir::ALL {
        let tcp = v(Counter::Packets(dir, L4Proto::Tcp));
        if tc {
            assert!(
                (100..5800).contains(&tcp),
                "{dir:?} tcp: {tcp} packets, expected GSO aggregates:\n{}",
                exit.stdout
            );
        } else {
            assert!(tcp > 11_000, "{dir:?} tcp:\n{}", exit.stdout);
        }
        assert!(
            v(Counter::Packets(dir, L4Proto::Udp)) >= 13,
            "{dir:?} udp:\n{}",
            exit.stdout
        );
        assert!(
            v(Counter::Packets(dir, L4Proto::Icmp)) >= 8,
            "{dir:?} icmp:\n{}",
            exit.stdout
        );
        assert!(
            v(Counter::Bytes(dir)) > 2 * BULK as u64,
            "{dir:?} bytes:\n{}",
            exit.stdout
        );
        for r in DropReason::ALL {
            assert_eq!(
                v(Counter::Dropped(dir, r)),
                0,
                "{dir:?} drops for {}:\n{}",
                r.name(),
                exit.stdout
            );
        }
    }
    // Clean shutdown detached the program from both interfaces.
    for dev in ["xc", "xs"] {
        assert!(
            !lab.xlat_link(dev).contains("xdp"),
            "XDP still attached to {dev}:\n{}",
            lab.xlat_link(dev)
        );
        assert!(
            lab.xlat_tcx_programs(dev).is_empty(),
            "a program still attached to {dev} at tcx ingress: {:?}",
            lab.xlat_tcx_programs(dev)
        );
    }
}

/// One TCP connection from `client` to `target` (served in `server` at `bind`): `BULK` bytes
/// each way, content-checked on both ends, and the server must see the client as `peer`.
fn tcp_round_trip(
    server: &Netns,
    bind: SocketAddr,
    client: &Netns,
    target: SocketAddr,
    peer: IpAddr,
    seed: u64,
) {
    let listener = server.run(|| TcpListener::bind(bind)).expect("bind");
    let srv = std::thread::spawn(move || peers::tcp_serve_once(listener, BULK, BULK, seed));
    let stream = client.run(|| peers::tcp_connect(target));
    let (down_ok, down_len) = peers::tcp_transfer(stream, BULK, BULK, seed);
    let report = srv.join().expect("server thread");
    assert!(
        report.upload_intact,
        "to {target}: upload corrupted ({} of {BULK} bytes)",
        report.uploaded
    );
    assert!(
        down_ok,
        "to {target}: download corrupted ({down_len} of {BULK} bytes)"
    );
    assert_eq!(
        report.peer.ip(),
        peer,
        "to {target}: the server saw the wrong source"
    );
}

/// Datagrams of each size from `client` (bound at `local`) to `target`, echoed by `server`
/// at `bind`; all must come back intact and the server must see the client as `peer`.
fn udp_round_trip(
    server: &Netns,
    bind: SocketAddr,
    client: &Netns,
    local: &'static str,
    target: SocketAddr,
    peer: IpAddr,
    sizes: &'static [usize],
) {
    let echo = server.run(|| UdpSocket::bind(bind)).expect("bind");
    let srv = std::thread::spawn(move || peers::udp_echo(echo, sizes.len()));
    let sock = client.run(|| UdpSocket::bind(local)).expect("bind");
    let ok = peers::udp_exchange(&sock, target, sizes, bind.port() as u64);
    let seen = srv.join().expect("echo thread");
    assert_eq!(ok, sizes.len(), "to {target}: UDP echoes intact");
    assert!(
        seen.iter().all(|p| p.ip() == peer),
        "to {target}: sources seen {seen:?}"
    );
}

#[test]
fn native_xdp_translates_tcp_udp_icmp_both_ways() {
    exchange_everything("native");
}

#[test]
fn tc_hook_translates_tcp_udp_icmp_both_ways_keeping_gso() {
    exchange_everything("tc");
}

#[test]
fn generic_xdp_translates_tcp_udp_icmp_both_ways() {
    exchange_everything("generic");
}

/// Generic XDP receives GSO aggregates from a veth peer that segments late; translating one
/// would hand the kernel an IPv4 packet still marked for IPv6 segmentation. The fast path hands
/// them to the kernel untouched, which segments them on their way into the translator link,
/// where they are translated: bulk TCP crosses intact both ways, nothing is dropped.
#[test]
fn generic_xdp_hands_gso_aggregates_to_the_translator_link() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        xdp_mode: "generic".into(),
        sender_gso: true,
        ..LabOptions::default()
    });
    lab.start_daemon();
    tcp_round_trip(
        &lab.server4,
        (SERVER4, 5003).into(),
        &lab.client6,
        (SERVER4_AS_V6, 5003).into(),
        CLIENT6_AS_V4.into(),
        5,
    );
    let exit = lab.stop_daemon();
    for dir in Dir::ALL {
        let handed = parse_value(&exit.stdout, Counter::Handoff(dir, Handoff::GsoAggregate))
            .expect("hand-off counter");
        assert!(
            handed > 0,
            "{dir:?}: no GSO aggregate handed off:\n{}",
            exit.stdout
        );
        assert_eq!(
            parse_value(&exit.stdout, Counter::Dropped(dir, DropReason::Oversize)),
            Some(0),
            "{}",
            exit.stdout
        );
    }
}

/// Without a translator link there is nowhere to hand GSO aggregates to: they are dropped and
/// counted as `oversize`, and nothing is corrupted.
#[test]
fn without_the_link_generic_xdp_counts_gso_aggregates_as_oversize() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        xdp_mode: "generic".into(),
        sender_gso: true,
        translator_link: false,
        ..LabOptions::default()
    });
    lab.start_daemon();
    let listener = lab
        .server4
        .run(|| TcpListener::bind((SERVER4, 5003)))
        .expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let stream = lab
        .client6
        .run(|| peers::tcp_connect(SocketAddr::from((SERVER4_AS_V6, 5003))));
    // Bulk writes from the client coalesce into GSO segments; a short timeout bounds the stall.
    stream
        .set_write_timeout(Some(std::time::Duration::from_secs(2)))
        .expect("timeout");
    let mut w = &stream;
    let chunk = vec![0x5au8; 64 << 10];
    for _ in 0..8 {
        if std::io::Write::write_all(&mut w, &chunk).is_err() {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    let exit = lab.stop_daemon();
    let oversize = parse_value(
        &exit.stdout,
        Counter::Dropped(Dir::V6ToV4, DropReason::Oversize),
    )
    .expect("oversize counter");
    assert!(oversize > 0, "no GSO aggregate counted:\n{}", exit.stdout);
    assert_eq!(
        parse_value(
            &exit.stdout,
            Counter::Handoff(Dir::V6ToV4, Handoff::GsoAggregate)
        ),
        Some(0)
    );
    drop(listener);
}

/// UDP datagrams larger than the MTU, fragmented by their senders, echoed across the lab
/// whose IPv4 link has `v4_link_mtu`: they must arrive whole both ways (RFC 7915 sections 4.1
/// and 5.1.1). Returns the daemon's final counters.
fn datagrams_cross_as_fragments(v4_link_mtu: u32) -> String {
    datagrams_cross_as_fragments_with(v4_link_mtu, None)
}

/// [`datagrams_cross_as_fragments`], with the client's link (both ends) at `v6_link_mtu`.
fn datagrams_cross_as_fragments_with(v4_link_mtu: u32, v6_link_mtu: Option<u32>) -> String {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        v4_link_mtu,
        // The lab's IPv6 side is 1500 bytes throughout, and its operator says so (the default
        // is the minimum IPv6 MTU, 1280, to which every full-size fragment would be cut).
        extra_config: "ipv6_mtu = 1500\n".into(),
        ..LabOptions::default()
    });
    if let Some(mtu) = v6_link_mtu {
        let mtu = mtu.to_string();
        lab.xlat.ip(&["link", "set", "xc", "mtu", &mtu]);
        lab.client6.ip(&["link", "set", "c0", "mtu", &mtu]);
    }
    lab.start_daemon();
    const SIZES: [usize; 3] = [3000, 5000, 8000];
    udp_round_trip(
        &lab.server4,
        (SERVER4, 7101).into(),
        &lab.client6,
        "[::]:0",
        (SERVER4_AS_V6, 7101).into(),
        CLIENT6_AS_V4.into(),
        &SIZES,
    );
    udp_round_trip(
        &lab.client6,
        (CLIENT6, 7102).into(),
        &lab.server4,
        "0.0.0.0:0",
        (CLIENT6_AS_V4, 7102).into(),
        SERVER4_AS_V6.into(),
        &SIZES,
    );
    let exit = lab.stop_daemon();
    for dir in Dir::ALL {
        for reason in [DropReason::Fragment, DropReason::PacketTooBig] {
            assert_eq!(
                parse_value(&exit.stdout, Counter::Dropped(dir, reason)),
                Some(0),
                "{dir:?} {reason:?}:\n{}",
                exit.stdout
            );
        }
        // Each datagram crossed twice in this direction (request and echo), in at least 3 pieces.
        assert!(
            parse_value(&exit.stdout, Counter::Packets(dir, L4Proto::Udp)).unwrap_or(0) >= 18,
            "{dir:?}:\n{}",
            exit.stdout
        );
    }
    exit.stdout
}

/// With a 1400-byte IPv4 link, IPv4 fragments still fit the IPv6 side after growing by 28
/// bytes: every fragment is translated on the fast path, none is handed off.
#[test]
fn fragments_that_fit_are_translated_in_place_both_ways() {
    let counters = datagrams_cross_as_fragments(1400);
    let handed = Counter::Handoff(Dir::V4ToV6, Handoff::NeedsFragmentation);
    assert_eq!(parse_value(&counters, handed), Some(0), "{counters}");
}

/// With a 1500-byte IPv4 link, full-size IPv4 fragments would be 1528 bytes of IPv6: the fast
/// path hands them to the kernel, which fragments them again on the way into the translator
/// link (route MTU 1472), where the pieces are translated. Nothing is lost.
#[test]
fn fragments_too_big_for_ipv6_are_refragmented_through_the_link() {
    let counters = datagrams_cross_as_fragments(1500);
    let handed = Counter::Handoff(Dir::V4ToV6, Handoff::NeedsFragmentation);
    // 3000, 5000 and 8000 bytes leave the server in 3, 4 and 6 fragments, at least two of
    // them full-size in each datagram.
    assert!(
        parse_value(&counters, handed).unwrap_or(0) >= 6,
        "{counters}"
    );
}

/// An IPv6 side narrower than `ipv6_mtu` (1280 against 1500: a tunnel, say): 1400-byte IPv4
/// fragments would be 1428 bytes of IPv6, within ipv6_mtu but too big for the route out. The
/// fast path finds that in the FIB and hands them to the kernel, which fragments them again
/// on the way into the translator link, whose IPv4 routes the daemon keeps within the
/// narrowest IPv6 route (RFC 7915 section 4.1: each piece fits). Nothing is lost; before, every
/// such datagram was (the route's Packet Too Big went to a sender that had not set DF).
#[test]
fn fragments_too_big_for_a_narrower_ipv6_route_are_refragmented_through_the_link() {
    let counters = datagrams_cross_as_fragments_with(1400, Some(1280));
    let handed = Counter::Handoff(Dir::V4ToV6, Handoff::NeedsFragmentation);
    assert!(
        parse_value(&counters, handed).unwrap_or(0) >= 6,
        "{counters}"
    );
    // No Packet Too Big came back to be translated: no datagram needed sending again (the
    // sender's stack would have, once told, which hides a loss from the round trip).
    assert_eq!(
        parse_value(&counters, Counter::Packets(Dir::V6ToV4, L4Proto::Icmp)),
        Some(0),
        "{counters}"
    );
}

/// The MTU of each of the translator link's IPv4 routes follows the IPv6 route its packets
/// take once translated: an EAM prefix its IPv6 prefix's route, pool4 (every client) the
/// narrowest IPv6 route out, not every interface. A narrow interface without an IPv6 route
/// (an IPv4-only tunnel or overlay) changes nothing; an IPv6 route through it lowers pool4's
/// once the route appears (a route event, then the daemon's resync), and leaves the EAM
/// prefix's, whose IPv6 side is elsewhere.
#[test]
fn the_links_ipv4_route_mtus_follow_the_ipv6_routes() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        // An operator who knows the IPv6 side's MTU (the default, 1280, would be the routes'
        // limit whatever the IPv6 routes allow).
        extra_config: "ipv6_mtu = 1500\n".into(),
        ..LabOptions::default()
    });
    lab.xlat.ip(&[
        "link", "add", "d0", "mtu", "1300", "type", "veth", "peer", "name", "d1", "mtu", "1300",
    ]);
    lab.xlat.ip(&["link", "set", "d0", "up"]);
    lab.xlat.ip(&["link", "set", "d1", "up"]);
    lab.start_daemon();
    let mtu_of = |lab: &Lab, prefix: &str| {
        let out = lab.xlat.output(
            "ip",
            &["-4", "route", "show", "dev", nat64_tests::lab::LINK],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no route for {prefix}:\n{text}"));
        let mtu = line.split_whitespace().skip_while(|w| *w != "mtu").nth(1);
        (mtu.map(str::to_string), text)
    };
    let eam = nat64_tests::lab::EAM_V4;
    let pool4 = nat64_tests::lab::POOL4;
    for prefix in [eam, pool4] {
        let (mtu, text) = mtu_of(&lab, prefix);
        assert_eq!(mtu.as_deref(), Some("1472"), "{prefix}: {text}");
    }
    lab.xlat
        .ip(&["-6", "route", "add", "2001:db8:99::/64", "dev", "d0"]);
    let mut seen = (None, String::new());
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        seen = mtu_of(&lab, pool4);
        if seen.0.as_deref() == Some("1272") {
            break;
        }
    }
    assert_eq!(
        seen.0.as_deref(),
        Some("1272"),
        "{}\n{}",
        seen.1,
        lab.daemon_log()
    );
    let (mtu, text) = mtu_of(&lab, eam);
    assert_eq!(mtu.as_deref(), Some("1472"), "the EAM prefix's: {text}");
}

/// Traffic the translator host originates itself never crosses an XDP hook on its way out: the
/// kernel routes it into the translator link, where it is translated like any other. Pings from
/// the host's IPv6 address in the EAM range (2001:db8:6::1fe, 198.51.100.254 in IPv4) to the
/// IPv4 server, and from its IPv4 address to the IPv6 client.
#[test]
fn traffic_from_the_translator_host_is_translated_through_the_link() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions::default());
    lab.xlat
        .ip(&["addr", "add", "2001:db8:6::1fe/128", "dev", "lo", "nodad"]);
    lab.start_daemon();
    let out = lab.xlat.output(
        "ping",
        &[
            "-n",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "2",
            "-I",
            "2001:db8:6::1fe",
            &SERVER4_AS_V6.to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "IPv6 ping from the host: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (ok, text) = ping(&lab.xlat, &CLIENT6_AS_V4.to_string(), 2);
    assert!(ok, "IPv4 ping from the host: {text}");
    let exit = lab.stop_daemon();
    for dir in Dir::ALL {
        assert!(
            parse_value(&exit.stdout, Counter::Packets(dir, L4Proto::Icmp)).unwrap_or(0) >= 4,
            "{dir:?}:\n{}",
            exit.stdout
        );
    }
}

/// An EAM entry whose IPv6 side lies under pool6 (RFC 7757 allows it, and gives the EAM
/// precedence) sends what is translated to it back into the translator link: IPv4 to its
/// prefix becomes IPv6 under pool6, which the kernel routes into the link, which translates
/// it back to the same IPv4 prefix. The link gives back the hop the kernel's forwarding took
/// only for a packet that leaves it for somewhere else, so such a packet loses a hop on every
/// pass and dies of old age (the kernel's Time Exceeded) instead of circling for ever.
#[test]
fn a_packet_translated_back_into_the_link_runs_out_of_hops() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        extra_config: "[[eam]]\nipv6 = \"64:ff9b::cb00:714d/128\"\nipv4 = \"203.0.113.77/32\"\n"
            .into(),
        ..LabOptions::default()
    });
    lab.start_daemon();
    // Both directions' ICMP translations, from `nat64d stats`' table.
    let icmp = |text: &str| {
        text.lines()
            .filter(|l| l.contains("translated packets, icmp"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let out = lab.xlat.output(
        "ping",
        &["-n", "-c", "1", "-t", "16", "-W", "1", "203.0.113.77"],
    );
    // Whatever ping saw, the circling must have stopped: no translation between two reads.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let first = icmp(&lab.stats_cli(false).1);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let second = icmp(&lab.stats_cli(false).1);
    assert!(
        first > 0 && first <= 40 && second == first,
        "ICMP translations: {first} then {second}; ping: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    lab.stop_daemon();
}

/// Two IPv6 hosts reach each other through their IPv4 aliases under pool6, as DNS64 would
/// name them (RFC 7757 section 4, hairpinning): each sees the other at the alias it wrote to.
/// The client socket is connected, so a reply from any other address would not be accepted.
#[test]
fn ipv6_hosts_reach_each_other_through_their_ipv4_aliases() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions::default());
    // A second IPv6 host on the client's link: 2001:db8:6::105, 198.51.100.5 in IPv4.
    lab.client6
        .ip(&["addr", "add", "2001:db8:6::105/64", "dev", "c0", "nodad"]);
    lab.start_daemon();
    let b: std::net::Ipv6Addr = "2001:db8:6::105".parse().unwrap();
    let b_alias: std::net::Ipv6Addr = "64:ff9b::198.51.100.5".parse().unwrap();
    let a_alias: std::net::Ipv6Addr = "64:ff9b::198.51.100.2".parse().unwrap();
    let server = lab
        .client6
        .run(|| UdpSocket::bind((b, 7201)))
        .expect("bind B");
    let echo = std::thread::spawn(move || peers::udp_echo(server, 3));
    let client = lab
        .client6
        .run(|| UdpSocket::bind((CLIENT6, 0)))
        .expect("bind A");
    client.connect((b_alias, 7201)).expect("connect");
    // Each echo is awaited in turn, but any late one still counts (the first may wait for
    // neighbour discovery on a loaded machine): the set of echoes is what must be whole.
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let mut echoed = std::collections::BTreeSet::new();
    let mut buf = [0u8; 64];
    for i in 0..3u8 {
        client.send(&[i; 32]).expect("send");
        while let Ok(n) = client.recv(&mut buf) {
            if n == 32 && buf[..n].iter().all(|b| *b == buf[0]) {
                echoed.insert(buf[0]);
            }
            if echoed.contains(&i) {
                break;
            }
        }
    }
    let ok = echoed.len();
    let seen = echo.join().expect("echo");
    assert_eq!(
        ok,
        3,
        "echoes through the hairpin; B saw {seen:?}; counters:\n{}",
        lab.stats_cli(false).1
    );
    assert!(
        seen.iter().all(|p| p.ip() == IpAddr::V6(a_alias)),
        "B saw {seen:?}, not A's alias"
    );
    lab.stop_daemon();
}

/// Without the daemon nothing is translated: the lab's v6 client cannot reach the v4 server.
/// This guards the other tests against passing through some path that bypasses the translator.
#[test]
fn nothing_is_translated_without_the_daemon() {
    nat64_tests::require_root();
    let lab = Lab::new(LabOptions::default());
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 1);
    assert!(!ok, "ping succeeded without a translator:\n{text}");
}

/// The "dedicated translator interface" deployment: no XDP on the node's interfaces at all;
/// the routes the daemon installs steer what it translates into its translator link, where the
/// whole translation happens. Forwarded traffic crosses both ways, TCP with its content intact.
#[test]
fn the_translator_link_alone_translates_forwarded_traffic() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        fast_path: false,
        ..LabOptions::default()
    });
    lab.start_daemon();
    assert!(
        !lab.xlat_link("xc").contains("xdp"),
        "{}",
        lab.xlat_link("xc")
    );
    assert!(
        !lab.xlat_link("xs").contains("xdp"),
        "{}",
        lab.xlat_link("xs")
    );
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
    assert!(ok, "IPv6 to IPv4 through the link: {text}");
    let (ok, text) = ping(&lab.server4, &CLIENT6_AS_V4.to_string(), 2);
    assert!(ok, "IPv4 to IPv6 through the link: {text}");
    let listener = lab
        .server4
        .run(|| std::net::TcpListener::bind((SERVER4, 5010)))
        .expect("bind");
    let server = std::thread::spawn(move || peers::tcp_serve_once(listener, 1 << 20, 1 << 20, 11));
    let stream = lab
        .client6
        .run(|| peers::tcp_connect((SERVER4_AS_V6, 5010).into()));
    let (ok, n) = peers::tcp_transfer(stream, 1 << 20, 1 << 20, 11);
    assert!(ok, "1 MiB each way through the link: {n} bytes");
    let _ = server.join();
    let exit = lab.stop_daemon();
    for dir in Dir::ALL {
        assert!(
            parse_value(&exit.stdout, Counter::Packets(dir, L4Proto::Tcp)).unwrap_or(0) > 100,
            "{dir:?}:\n{}",
            exit.stdout
        );
    }
}

/// `hook = "auto"`, the default: TC on virtual links such as the lab's veths when the
/// translator link is on (it takes what TC leaves), XDP without the link.
#[test]
fn auto_hook_is_tc_on_veth_with_the_link_and_xdp_without() {
    nat64_tests::require_root();
    for link in [true, false] {
        let mut lab = Lab::new(LabOptions {
            xdp_mode: "auto".into(),
            translator_link: link,
            ..LabOptions::default()
        });
        lab.start_daemon();
        let want_tc = link;
        for dev in ["xc", "xs"] {
            let tcx = lab.xlat_tcx_programs(dev);
            let xdp = lab.xlat_link(dev).contains("prog/xdp");
            assert_eq!(
                (tcx == ["nat64_tc"], xdp),
                (want_tc, !want_tc),
                "link {link}, {dev}: tcx {tcx:?}, XDP {xdp}\n{}",
                lab.daemon_log()
            );
        }
        let log = lab.daemon_log();
        assert!(
            log.contains(if want_tc { "hook=tc" } else { "hook=xdp" })
                && log.contains("configured=auto"),
            "{log}"
        );
        let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
        assert!(ok, "ping 6->4 (link {link}):\n{text}");
        let (ok, text) = ping(&lab.server4, &CLIENT6_AS_V4.to_string(), 2);
        assert!(ok, "ping 4->6 (link {link}):\n{text}");
        let exit = lab.stop_daemon();
        assert!(exit.status.success(), "{}", exit.stderr);
    }
}
