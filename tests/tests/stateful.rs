//! Stateful NAT64 (RFC 6146) through the loaded program: bindings made on the first outbound
//! packet, reused, refusing what matches none, exhaustion, and expiry by the daemon's sweeper.
//!
//! Expected frames are built whole by etherparse with checksums computed from scratch. Two
//! values are the translator's own choice by design and are read from the output before the
//! expected frame is built: the pool4 port (random, RFC 6056) and the IPv4 Identification of
//! a DF=0 packet; the tests check that the port is in the configured range with the parity of
//! the IPv6 port, and that the address is in pool4.
//!
//! Why one file of this size: every file in `tests/tests` is its own test binary, linked against
//! aya and the daemon; the suite is one table of stateful cases over one loaded program, in
//! sections (bindings, sessions, filtering, expiry). The packet model is `tests/src/fixtures.rs`.

use etherparse::{
    IcmpEchoHeader, Icmpv4Header, Icmpv4Type, IpNumber, Ipv4Header, PacketBuilder, UdpHeader,
    icmpv4::DestUnreachableHeader as Unreach4, icmpv6::DestUnreachableCode as Unreach6,
};
use nat64_common::{
    Counter, Dir, DropReason, Generated, L4Proto,
    state::{BIB_TCP, TCP_ESTABLISHED, TCP_NONE, TCP_RST, TCP_SYN, TCP_TRANS},
};
use nat64_daemon::bindings::now_ns;
use nat64_tests::{
    fixtures::{self, MAC_DST, MAC_SRC},
    frames::fix_ipv4_checksum,
    xdp::{Loaded, XDP_DROP, XDP_PASS, XDP_TX, counter_delta},
};

const MACS: ([u8; 6], [u8; 6]) = (MAC_SRC, MAC_DST);
/// IPv6 clients with no EAM entry: stateful. A and A2 share a /64; B does not.
const A: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1];
const A2: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 6, 0, 0, 0x99, 0, 0, 0, 0, 0, 2, 2];
const B: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3];
/// 64:ff9b::192.0.2.2 and the IPv4 server itself.
const SERVER6: [u8; 16] = fixtures::SERVER6.octets();
const SERVER4: [u8; 4] = fixtures::SERVER4.octets();
const OTHER4: [u8; 4] = [203, 0, 113, 77];
const OTHER6: [u8; 16] = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 203, 0, 113, 77];

fn load(ports: &str) -> Loaded {
    Loaded::load(
        "stateful",
        &format!(
            "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"198.51.100.200/30\"\nports = \"{ports}\"\n"
        ),
    )
}

fn in_pool4(a: [u8; 4]) -> bool {
    a[..3] == [198, 51, 100] && (200..204).contains(&a[3])
}

fn udp6(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(src, dst, 63)
        .udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// A TCP SYN from A, port 41000, to the server's HTTPS port.
fn syn6() -> Vec<u8> {
    let mut syn = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(A, SERVER6, 64)
        .tcp(41000, 443, 1, 64240)
        .syn()
        .write(&mut syn, &[])
        .unwrap();
    syn
}

/// An ICMPv6 port unreachable from A to the server, quoting `quoted` (an IPv6 packet).
fn port_unreachable_from_a(quoted: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(A, SERVER6, 64)
        .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Port,
        ))
        .write(&mut v, quoted)
        .unwrap();
    v
}

fn udp4(
    (src, sport): ([u8; 4], u16),
    (dst, dport): ([u8; 4], u16),
    ttl: u8,
    id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let udp = UdpHeader::with_ipv4_checksum(
        sport,
        dport,
        &ip4(src, dst, ttl, id, 17, 8 + payload.len()),
        payload,
    )
    .unwrap();
    let mut f = [MACS.1.as_slice(), MACS.0.as_slice(), &[0x08, 0x00]].concat();
    f.extend(ip4(src, dst, ttl, id, 17, 8 + payload.len()).to_bytes());
    f.extend(udp.to_bytes());
    f.extend(payload);
    f
}

/// An IPv4 header given as bytes, with its checksum computed by etherparse.
fn ip4_header_with_checksum(hdr: &[u8]) -> Vec<u8> {
    let (mut ip, _) = Ipv4Header::from_slice(hdr).unwrap();
    ip.header_checksum = ip.calc_header_checksum();
    ip.to_bytes().to_vec()
}

fn ip4(src: [u8; 4], dst: [u8; 4], ttl: u8, id: u16, proto: u8, len: usize) -> Ipv4Header {
    let mut ip = Ipv4Header::new(len as u16, ttl, IpNumber(proto), src, dst).unwrap();
    ip.dont_fragment = false;
    ip.identification = id;
    ip.header_checksum = ip.calc_header_checksum();
    ip
}

/// An ICMPv4 Destination Unreachable (`kind`) from `from` to pool4 address `to`, quoting
/// `quoted4` (an IPv4 packet), as a frame.
fn unreachable4(from: [u8; 4], to: [u8; 4], id: u16, kind: Unreach4, quoted4: &[u8]) -> Vec<u8> {
    let icmp4 = Icmpv4Header::with_checksum(Icmpv4Type::DestinationUnreachable(kind), quoted4);
    let mut frame = [MACS.1.as_slice(), MACS.0.as_slice(), &[0x08, 0x00]].concat();
    frame.extend(ip4(from, to, 64, id, 1, 8 + quoted4.len()).to_bytes());
    frame.extend(icmp4.to_bytes());
    frame.extend(quoted4);
    frame
}

/// What A receives for [`unreachable4`] about its UDP datagram of `payload` from port 40000
/// to the server's port 53: an ICMPv6 Destination Unreachable (`code`) from `from`, quoting
/// the datagram as A sent it with the hop limit it had where the error was raised (`hops`).
fn unreachable6_to_a(from: [u8; 16], code: Unreach6, hops: u8, payload: &[u8]) -> Vec<u8> {
    let mut quoted6 = Vec::new();
    PacketBuilder::ipv6(A, SERVER6, hops)
        .udp(40000, 53)
        .write(&mut quoted6, payload)
        .unwrap();
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(from, A, 64)
        .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(code))
        .write(&mut frame, &quoted6)
        .unwrap();
    frame
}

/// Source address, source port and identification of an IPv4 output frame.
fn src_of(out: &[u8]) -> ([u8; 4], u16, u16) {
    (
        out[26..30].try_into().unwrap(),
        u16::from_be_bytes([out[34], out[35]]),
        u16::from_be_bytes([out[18], out[19]]),
    )
}

#[test]
fn a_udp_flow_gets_a_binding_that_is_reused_and_answered() {
    let x = load("2000-2999");
    let payload = b"stateful nat64 query";
    let input = udp6(A, 40000, SERVER6, 53, payload);
    let (action, out, moved) = x.run_counted(&input);
    assert_eq!(action, XDP_PASS, "translated");
    let (addr4, port4, id) = src_of(&out);
    assert!(in_pool4(addr4), "{addr4:?} not in pool4");
    assert!((2000..=2999).contains(&port4), "port {port4}");
    assert_eq!(port4 % 2, 0, "parity of 40000 kept");
    let expected = udp4((addr4, port4), (SERVER4, 53), 63, id, payload);
    assert_eq!(out, expected, "\n got {out:02x?}\nwant {expected:02x?}");
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V6ToV4, L4Proto::Udp), 1),
            (Counter::Bytes(Dir::V6ToV4), 20 + 8 + payload.len() as u64)
        ]
    );

    // Same flow again: same binding (endpoint-independent mapping, RFC 6146 section 3.5.1).
    let (_, out2, _) = x.run_counted(&udp6(
        A,
        40000,
        [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 203, 0, 113, 77],
        53,
        payload,
    ));
    assert_eq!(
        (src_of(&out2).0, src_of(&out2).1),
        (addr4, port4),
        "same binding toward another server"
    );
    // Another host of the same /64 gets the same pool4 address (RFC 6888 REQ-4), another port.
    let (_, out3, _) = x.run_counted(&udp6(A2, 40000, SERVER6, 53, payload));
    assert_eq!(src_of(&out3).0, addr4, "paired pooling per /64");
    assert_ne!(src_of(&out3).1, port4);

    // The answer comes back to the IPv6 host and port (RFC 6146 section 3.5.1).
    let reply = b"answer";
    let (action, out, moved) =
        x.run_counted(&udp4((SERVER4, 53), (addr4, port4), 60, 0x1234, reply));
    assert_eq!(action, XDP_PASS);
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(SERVER6, A, 60)
        .udp(53, 40000)
        .write(&mut expected, reply)
        .unwrap();
    assert_eq!(out, expected, "\n got {out:02x?}\nwant {expected:02x?}");
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V4ToV6, L4Proto::Udp), 1),
            (Counter::Bytes(Dir::V4ToV6), 40 + 8 + reply.len() as u64)
        ]
    );
    // Endpoint-independent filtering: another IPv4 host may use the binding too.
    let (action, out, _) = x.run_counted(&udp4((OTHER4, 5000), (addr4, port4), 60, 1, reply));
    assert_eq!(action, XDP_PASS);
    assert_eq!(&out[22..38], &OTHER6, "from the other host under pool6");
    assert_eq!(&out[38..54], &A);

    // Nothing bound to this port: dropped and counted (RFC 6146 section 3.5.1).
    let free = if port4 == 2998 { 2996 } else { 2998 };
    assert_dropped4(
        &x,
        &udp4((SERVER4, 53), (addr4, free), 60, 1, reply),
        DropReason::NoBinding,
        "dropped",
    );
    // Outside pool4 and EAM: not ours at all.
    let (action, _, moved) = x.run_counted(&udp4(
        (SERVER4, 53),
        ([198, 51, 100, 199], port4),
        60,
        1,
        reply,
    ));
    assert_eq!((action, moved), (XDP_PASS, vec![]));
}

/// An ICMPv6 echo request from B (identifier 0x0777) to the server.
fn echo6_from_b() -> Vec<u8> {
    let mut input = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(B, SERVER6, 64)
        .icmpv6_echo_request(0x0777, 3)
        .write(&mut input, b"ping")
        .unwrap();
    input
}

#[test]
fn echo_identifiers_are_bound_like_ports() {
    let x = load("2000-2999");
    let input = echo6_from_b();
    let (action, out, _) = x.run_counted(&input);
    assert_eq!(action, XDP_PASS);
    let addr4: [u8; 4] = out[26..30].try_into().unwrap();
    let id4 = u16::from_be_bytes([out[38], out[39]]);
    assert!(in_pool4(addr4) && (2000..=2999).contains(&id4) && id4 % 2 == 1);
    let icmp = Icmpv4Header::with_checksum(
        Icmpv4Type::EchoRequest(IcmpEchoHeader { id: id4, seq: 3 }),
        b"ping",
    );
    let ipid = u16::from_be_bytes([out[18], out[19]]);
    let mut expected = [MACS.1.as_slice(), MACS.0.as_slice(), &[0x08, 0x00]].concat();
    expected.extend(ip4(addr4, SERVER4, 64, ipid, 1, 12).to_bytes());
    expected.extend(icmp.to_bytes());
    expected.extend(b"ping");
    assert_eq!(out, expected, "\n got {out:02x?}\nwant {expected:02x?}");

    // The reply finds the binding by its identifier.
    let reply = Icmpv4Header::with_checksum(
        Icmpv4Type::EchoReply(IcmpEchoHeader { id: id4, seq: 3 }),
        b"ping",
    );
    let mut input = [MACS.1.as_slice(), MACS.0.as_slice(), &[0x08, 0x00]].concat();
    input.extend(ip4(SERVER4, addr4, 61, 9, 1, 12).to_bytes());
    input.extend(reply.to_bytes());
    input.extend(b"ping");
    let (action, out, _) = x.run_counted(&input);
    assert_eq!(action, XDP_PASS);
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(SERVER6, B, 61)
        .icmpv6_echo_reply(0x0777, 3)
        .write(&mut expected, b"ping")
        .unwrap();
    assert_eq!(out, expected, "\n got {out:02x?}\nwant {expected:02x?}");
}

/// A fragmented ICMP message is not translated (its ICMPv6 checksum would need all of it), and
/// it is refused before its binding is looked at: it makes no session (from a new remote),
/// refreshes none, and leaves no entry for its later fragments to follow.
#[test]
fn a_fragmented_echo_reply_touches_no_session() {
    let mut x = load("2000-2999");
    let input = echo6_from_b();
    let (_, out, _) = x.run_counted(&input);
    let addr4: [u8; 4] = out[26..30].try_into().unwrap();
    let id4 = u16::from_be_bytes([out[38], out[39]]);
    let before = session_times(&mut x);
    std::thread::sleep(std::time::Duration::from_millis(20));
    // First fragments of echo replies (MF), from the pinged server and from another host.
    for src in [SERVER4, OTHER4] {
        let reply = Icmpv4Header::with_checksum(
            Icmpv4Type::EchoReply(IcmpEchoHeader { id: id4, seq: 3 }),
            b"pingpong",
        );
        let mut ip = ip4(src, addr4, 61, 0x4444, 1, 16);
        ip.more_fragments = true;
        ip.header_checksum = ip.calc_header_checksum();
        let mut frame = [MACS.1.as_slice(), MACS.0.as_slice(), &[0x08, 0x00]].concat();
        frame.extend(ip.to_bytes());
        frame.extend(reply.to_bytes());
        frame.extend(b"pingpong");
        assert_dropped4(&x, &frame, DropReason::Fragment, "dropped");
        // Its last fragment finds nothing to follow.
        assert_dropped4(
            &x,
            &later_fragment4(src, addr4, 0x4444, 1, 2),
            DropReason::Fragment,
            "its last fragment",
        );
    }
    assert_eq!(
        session_times(&mut x),
        before,
        "no session made, none refreshed"
    );
}

/// Runs `frame` and checks it was dropped and counted as `reason` (4to6), and nothing else.
fn assert_dropped4(x: &Loaded, frame: &[u8], reason: DropReason, what: &str) {
    let (action, _, moved) = x.run_counted(frame);
    assert_eq!(action, XDP_DROP, "{what}");
    assert_eq!(
        moved,
        vec![(Counter::Dropped(Dir::V4ToV6, reason), 1)],
        "{what}"
    );
}

/// Each session's remote IPv4 address and last use: what a packet that must touch no state
/// leaves as it was.
fn session_times(x: &mut Loaded) -> Vec<([u8; 4], u64)> {
    x.dp.bindings()
        .unwrap()
        .list_sessions(10)
        .into_iter()
        .map(|s| (s.key.remote4, s.value.last_ns))
        .collect()
}

/// The last fragment (8 bytes of payload at `offset` eight-byte units) of an IPv4 datagram of
/// protocol `proto` and identification `id`, as a frame.
fn later_fragment4(src: [u8; 4], dst: [u8; 4], id: u16, proto: u8, offset: u16) -> Vec<u8> {
    let mut f = [MACS.1.as_slice(), MACS.0.as_slice(), &[0x08, 0x00]].concat();
    let mut ip = ip4(src, dst, 60, id, proto, 8);
    ip.fragment_offset = etherparse::IpFragOffset::try_new(offset).unwrap();
    ip.header_checksum = ip.calc_header_checksum();
    f.extend(ip.to_bytes());
    f.extend([0xcd; 8]);
    f
}

/// RFC 7915 section 4.5 (and RFC 6146 section 3.4): a fragmented UDP datagram without a
/// checksum is not translated, since the checksum would need all of it; its first fragment is
/// refused (and answered), and so are the later ones, which find no binding to follow.
#[test]
fn a_fragmented_udp_datagram_without_checksum_is_refused_whole() {
    let mut x = load("2000-2999");
    let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"q"));
    let (addr4, port4, _) = src_of(&out);
    let before = session_times(&mut x);
    std::thread::sleep(std::time::Duration::from_millis(20));
    // From the server (its session not refreshed) and from another host (none made).
    for (src, id) in [(SERVER4, 0x7778), (OTHER4, 0x7779)] {
        let mut first = udp4((src, 53), (addr4, port4), 60, id, &[0xab; 8]);
        first[20] = 0x20;
        first[40..42].copy_from_slice(&[0, 0]);
        fix_ipv4_checksum(&mut first);
        let (action, _, moved) = x.run_counted(&first);
        assert_ne!(action, XDP_PASS, "{moved:?}");
        assert_eq!(
            moved.first(),
            Some(&(
                Counter::Dropped(Dir::V4ToV6, DropReason::UdpZeroChecksum),
                1
            )),
            "{moved:?}"
        );
        assert_dropped4(
            &x,
            &later_fragment4(src, addr4, id, 17, 2),
            DropReason::Fragment,
            "the rest of it is not translated either",
        );
    }
    assert_eq!(
        session_times(&mut x),
        before,
        "no session made, none refreshed"
    );
}

/// RFC 6146 section 3.5: a binding has one session per remote endpoint, each with its own TCP
/// state machine (section 3.5.2.2) and timer; the binding lives while one of them does.
#[test]
fn each_remote_endpoint_has_a_session_with_its_own_tcp_state() {
    let mut x = load("2000-2999");
    let (action, out, _) = x.run_counted(&syn6());
    assert_eq!(action, XDP_PASS);
    let (addr4, port4, _) = src_of(&out);
    {
        let tables = x.dp.bindings().expect("binding tables");
        let all = tables.list(100);
        assert_eq!(all.len(), 1, "{all:?}");
        let b = all[0];
        assert_eq!(
            (b.key6.addr6, u16::from_be_bytes(b.key6.port6), b.key6.proto),
            (A, 41000, BIB_TCP)
        );
        assert_eq!((b.v6.addr4, u16::from_be_bytes(b.v6.port4)), (addr4, port4));
        assert_eq!(b.v4.map(|v| v.addr6), Some(A));
        let s = tables.list_sessions(100);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(
            (
                s[0].key.addr4,
                s[0].key.port4,
                s[0].key.remote4,
                s[0].key.remote_port
            ),
            (addr4, port4.to_be_bytes(), SERVER4, 443u16.to_be_bytes())
        );
        assert_eq!(
            (s[0].value.tcp6, s[0].value.tcp4),
            (TCP_SYN, TCP_NONE),
            "V6 INIT"
        );
    }
    // The handshake completes: the server's SYN-ACK, the client's ACK, the server's ACK.
    assert_eq!(
        x.run_counted(&tcp4(SERVER4, 443, addr4, port4, SYN | ACK))
            .0,
        XDP_PASS
    );
    assert_eq!(
        x.run_counted(&tcp6(A, 41000, SERVER6, 443, ACK)).0,
        XDP_PASS
    );
    assert_eq!(
        x.run_counted(&tcp4(SERVER4, 443, addr4, port4, ACK)).0,
        XDP_PASS
    );
    // Another IPv4 host opens a connection on the binding (endpoint-independent filtering,
    // the default): a session of its own, in V4 INIT.
    let (action, out, _) = x.run_counted(&tcp4(OTHER4, 5555, addr4, port4, SYN));
    assert_eq!(action, XDP_PASS);
    assert_eq!(&out[38..54], &A, "to the binding's client");
    let sessions = |x: &mut Loaded| {
        let mut v: Vec<_> =
            x.dp.bindings()
                .unwrap()
                .list_sessions(100)
                .into_iter()
                .map(|s| (s.key.remote4, s.value.tcp6, s.value.tcp4))
                .collect();
        v.sort();
        v
    };
    assert_eq!(
        sessions(&mut x),
        vec![
            (SERVER4, TCP_ESTABLISHED, TCP_ESTABLISHED),
            (OTHER4, TCP_NONE, TCP_SYN)
        ]
    );
    // Five minutes on: the opening session (transitory, 4 minutes) is gone, the established
    // one (2 hours 4 minutes) and so its binding stay.
    let cfg = x.cfg.stateful.clone().unwrap();
    let later = now_ns() + 300 * 1_000_000_000;
    let swept = x.dp.bindings().unwrap().sweep(&cfg, later, 100).unwrap();
    assert_eq!(
        (
            swept.sessions_expired,
            swept.sessions.tcp,
            swept.expired,
            swept.live.tcp
        ),
        (1, 1, 0, 1)
    );
    assert_eq!(
        sessions(&mut x),
        vec![(SERVER4, TCP_ESTABLISHED, TCP_ESTABLISHED)]
    );
    // Three hours on, past the established timer: RFC 6146 section 3.5.2.2 probes the IPv6
    // host (an empty ACK from the server's side of the connection) and moves the session to
    // TRANS, its transitory timer starting then.
    let later = now_ns() + 3 * 3600 * 1_000_000_000;
    let mut probes = Vec::new();
    let swept =
        x.dp.bindings()
            .unwrap()
            .sweep_probing(&cfg, later, 100, &mut probes)
            .unwrap();
    assert_eq!(
        (swept.probed, swept.sessions_expired, swept.live.tcp),
        (1, 0, 1)
    );
    assert_eq!(probes.len(), 1);
    assert_eq!(
        (probes[0].to, probes[0].session.key.remote4),
        (Some((A, 41000)), SERVER4),
        "the probe goes to the IPv6 host, about the session with the server"
    );
    assert_eq!(
        sessions(&mut x),
        vec![(SERVER4, TCP_ESTABLISHED, TCP_TRANS)]
    );
    // No answer within the transitory timer: the session and then its binding go.
    let swept =
        x.dp.bindings()
            .unwrap()
            .sweep(&cfg, later + 300 * 1_000_000_000, 100)
            .unwrap();
    assert_eq!(
        (
            swept.probed,
            swept.sessions_expired,
            swept.expired,
            swept.live.tcp
        ),
        (0, 1, 1, 0)
    );
    assert!(x.dp.bindings().unwrap().list(10).is_empty());
}

/// RFC 6146 section 3.5.2.2: a RST moves an established session to TRANS (4 minutes), and
/// anything but a RST that follows, from either side, moves it back to ESTABLISHED: a
/// spurious or forged RST does not cut a live connection that then idles past 4 minutes.
#[test]
fn traffic_after_a_rst_keeps_the_session_established() {
    let mut x = load("2000-2999");
    let (_, out, _) = x.run_counted(&syn6());
    let (addr4, port4, _) = src_of(&out);
    let from4 = |flags| tcp4(SERVER4, 443, addr4, port4, flags);
    let from6 = |flags| tcp6(A, 41000, SERVER6, 443, flags);
    for frame in [from4(SYN | ACK), from6(ACK), from4(ACK)] {
        assert_eq!(x.run_counted(&frame).0, XDP_PASS);
    }
    let state = |x: &mut Loaded| {
        let s = x.dp.bindings().unwrap().list_sessions(10);
        assert_eq!(s.len(), 1, "{s:?}");
        (s[0].value.tcp6, s[0].value.tcp4)
    };
    // (the RST's sender, the frame that follows it, the states after the RST)
    let rounds = [
        (from4(RST), from6(ACK), (TCP_ESTABLISHED, TCP_TRANS)),
        (from6(RST | ACK), from4(ACK), (TCP_TRANS, TCP_ESTABLISHED)),
        (from4(RST), from4(ACK), (TCP_ESTABLISHED, TCP_TRANS)),
    ];
    for (rst, next, trans) in rounds {
        assert_eq!(x.run_counted(&rst).0, XDP_PASS);
        assert_eq!(state(&mut x), trans, "TRANS after the RST");
        assert_eq!(x.run_counted(&next).0, XDP_PASS);
        assert_eq!(
            state(&mut x),
            (TCP_ESTABLISHED, TCP_ESTABLISHED),
            "ESTABLISHED again after a packet other than a RST"
        );
    }
    // Five minutes on, past the transitory timeout: the session stays.
    let cfg = x.cfg.stateful.clone().unwrap();
    let later = now_ns() + 300 * 1_000_000_000;
    let swept = x.dp.bindings().unwrap().sweep(&cfg, later, 100).unwrap();
    assert_eq!((swept.sessions_expired, swept.live.tcp), (0, 1));
    // A RST that nothing follows still ends it after the transitory timeout.
    assert_eq!(x.run_counted(&from6(RST)).0, XDP_PASS);
    let swept = x.dp.bindings().unwrap().sweep(&cfg, later, 100).unwrap();
    assert_eq!((swept.sessions_expired, swept.live.tcp), (1, 0));
}

/// A RST while a connection opens is no TRANS (RFC 6146 section 3.5.2.2: V4 INIT leaves only
/// on a SYN from the IPv6 side): another IPv4 host's SYN to a binding (endpoint-independent
/// filtering), refused by the client with a RST, then bare ACKs from that host, spoofable
/// since it need not see the RST, leave the session on the transitory timer. Were they to
/// establish it, three packets per forged source would fill the session table for hours.
#[test]
fn acks_after_a_refused_inbound_syn_do_not_establish_the_session() {
    let mut x = load("2000-2999");
    let (_, out, _) = x.run_counted(&syn6());
    let (addr4, port4, _) = src_of(&out);
    let other = |flags| tcp4(OTHER4, 5555, addr4, port4, flags);
    assert_eq!(x.run_counted(&other(SYN)).0, XDP_PASS);
    // The client's RST back to the other host (no listener on its ephemeral port).
    assert_eq!(
        x.run_counted(&tcp6(A, 41000, OTHER6, 5555, RST | ACK)).0,
        XDP_PASS
    );
    for _ in 0..3 {
        assert_eq!(x.run_counted(&other(ACK)).0, XDP_PASS);
    }
    let s = x.dp.bindings().unwrap().list_sessions(10);
    let s = s
        .iter()
        .find(|s| s.key.remote4 == OTHER4)
        .expect("the other host's session");
    assert_eq!(s.value.tcp6, TCP_RST, "{s:?}");
    let cfg = x.cfg.stateful.clone().unwrap();
    assert_eq!(
        s.lifetime(&cfg).as_secs(),
        cfg.tcp_transitory_timeout_secs,
        "transitory, not established"
    );
}

/// TCP flag bits for [`tcp4`] and [`tcp6`].
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;

/// A TCP segment from an IPv4 host to pool4 with `flags` (`SYN`, `ACK`, `RST`).
fn tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
    segment(
        PacketBuilder::ethernet2(MACS.1, MACS.0)
            .ipv4(src, dst, 60)
            .tcp(sport, dport, 7, 64240),
        flags,
    )
}

/// A TCP segment from an IPv6 client with `flags`.
fn tcp6(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, flags: u8) -> Vec<u8> {
    segment(
        PacketBuilder::ethernet2(MACS.0, MACS.1)
            .ipv6(src, dst, 64)
            .tcp(sport, dport, 7, 64240),
        flags,
    )
}

/// The frame of a TCP segment with `flags` set, without payload.
fn segment(mut b: etherparse::PacketBuilderStep<etherparse::TcpHeader>, flags: u8) -> Vec<u8> {
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & ACK != 0 {
        b = b.ack(2);
    }
    if flags & RST != 0 {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

#[test]
fn batched_and_entry_by_entry_listings_agree() {
    let mut x = load("2000-2999");
    for port in 40000..40300u16 {
        let (action, _, _) = x.run_counted(&udp6(A, port, SERVER6, 53, b"b"));
        assert_eq!(action, XDP_PASS);
    }
    let mut t = x.dp.bindings().unwrap();
    assert!(
        t.batch_fds.is_some(),
        "the tables' descriptors for batch lookups"
    );
    let key = |b: &nat64_daemon::bindings::Binding| (b.key6.addr6, b.key6.port6, b.key6.proto);
    let mut batched = t.list(usize::MAX);
    t.batch_fds = None;
    let mut single = t.list(usize::MAX);
    batched.sort_by_key(key);
    single.sort_by_key(key);
    assert_eq!(batched.len(), 300);
    assert_eq!(batched, single);
}

#[test]
fn a_full_binding_table_refuses_new_flows_as_table_full_and_keeps_the_old_ones() {
    // Two bindings fit; plenty of ports.
    let x = Loaded::load(
        "stateful",
        "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"198.51.100.200/30\"\nmax_bindings = 2\n",
    );
    for (src, port) in [(A, 40000), (B, 40000)] {
        let (action, _, _) = x.run_counted(&udp6(src, port, SERVER6, 53, b"fits"));
        assert_eq!(action, XDP_PASS);
    }
    assert_refused(
        &x,
        &udp6(A, 40002, SERVER6, 53, b"full"),
        DropReason::TableFull,
    );
    // The bindings already made carry on.
    let (action, _, moved) = x.run_counted(&udp6(B, 40000, SERVER6, 53, b"again"));
    assert_eq!(action, XDP_PASS);
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V6ToV4, L4Proto::Udp), 1),
            (Counter::Bytes(Dir::V6ToV4), 33)
        ]
    );
}

#[test]
fn an_exhausted_pool_refuses_new_flows_and_keeps_the_old_ones() {
    // One port of each parity: 2000 (even) and 2001 (odd), on four addresses, but a /64 always
    // gets the same address: two flows of even ports from one host exhaust it.
    let x = load("2000-2001");
    let (action, first, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"one"));
    assert_eq!(action, XDP_PASS);
    assert_eq!(src_of(&first).1, 2000);
    let refused = udp6(A, 40002, SERVER6, 53, b"two");
    let (action, out, moved) = x.run_counted(&refused);
    assert_eq!(action, XDP_TX, "no even port left: answered");
    // RFC 6146 section 3.5.1.1: ICMPv6 Address Unreachable, from the address A wrote to,
    // quoting A's packet.
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(MACS.1, MACS.0)
        .ipv6(SERVER6, A, 64)
        .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Address,
        ))
        .write(&mut expected, &refused[14..])
        .unwrap();
    assert_eq!(out, expected, "\n got {out:02x?}\nwant {expected:02x?}");
    assert_eq!(
        moved,
        vec![
            (Counter::Dropped(Dir::V6ToV4, DropReason::PoolExhausted), 1),
            (Counter::Generated(Generated::AddressUnreachable), 1)
        ]
    );
    // A large refused packet is quoted only as far as the error fits 1280 bytes.
    let big = udp6(A, 40004, SERVER6, 53, &[0x5a; 1400]);
    let (action, out, _) = x.run_counted(&big);
    assert_eq!(action, XDP_TX);
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(MACS.1, MACS.0)
        .ipv6(SERVER6, A, 64)
        .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Address,
        ))
        .write(&mut expected, &big[14..14 + 1232])
        .unwrap();
    assert_eq!(out.len(), 14 + 1280);
    assert_eq!(out, expected, "a cut quote");
    // The existing flow is untouched, and the odd port is still free.
    let (_, again, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"one"));
    assert_eq!(src_of(&again).1, 2000);
    let (action, odd, _) = x.run_counted(&udp6(A, 40001, SERVER6, 53, b"odd"));
    assert_eq!((action, src_of(&odd).1), (XDP_PASS, 2001));
}

#[test]
fn the_sweeper_expires_idle_bindings_and_inbound_packets_then_find_none() {
    let mut x = load("2000-2999");
    let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"q"));
    let (addr4, port4, _) = src_of(&out);
    let cfg = x.cfg.stateful.clone().expect("stateful config");
    // Now: nothing has been idle for 5 minutes.
    let swept =
        x.dp.bindings()
            .unwrap()
            .sweep(&cfg, now_ns(), 1000)
            .unwrap();
    assert_eq!((swept.expired, swept.live.udp), (0, 1));
    // Six minutes on: the UDP binding (5 minutes) is gone from both tables.
    let later = now_ns() + 360 * 1_000_000_000;
    let swept = x.dp.bindings().unwrap().sweep(&cfg, later, 1000).unwrap();
    assert_eq!((swept.expired, swept.live.udp, swept.held), (1, 0, 1));
    assert!(x.dp.bindings().unwrap().list(10).is_empty());
    let before = x.stats();
    let (action, _) = x.run(&udp4((SERVER4, 53), (addr4, port4), 60, 1, b"late"));
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        counter_delta(&before, &x.stats()),
        vec![(Counter::Dropped(Dir::V4ToV6, DropReason::NoBinding), 1)]
    );
}

#[test]
fn fragments_and_unsupported_protocols_are_refused_and_counted() {
    let x = load("2000-2999");
    // GRE from a stateful source: no port to bind.
    let mut gre = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(A, SERVER6, 64)
        .write(&mut gre, IpNumber(47), &[0u8; 8])
        .unwrap();
    let (action, _, moved) = x.run_counted(&gre);
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        moved,
        vec![(
            Counter::Dropped(Dir::V6ToV4, DropReason::SourceUntranslatable),
            1
        )]
    );
    // A first fragment to a pool4 port with no binding.
    let mut frag = udp4((SERVER4, 53), ([198, 51, 100, 200], 2000), 60, 7, b"frag");
    frag[20] = 0x20; // MF
    fix_ipv4_checksum(&mut frag);
    assert_dropped4(&x, &frag, DropReason::NoBinding, "dropped");
    // A later fragment whose first never came through: nothing to follow.
    frag[20] = 0x00;
    frag[21] = 0x03; // offset 24 bytes, last fragment
    fix_ipv4_checksum(&mut frag);
    assert_dropped4(&x, &frag, DropReason::Fragment, "dropped");
}

/// Fragments of a datagram through a binding: the first (with the port) finds the binding,
/// the later ones (without) follow it by their IPv4 identity; IPv6 fragments from the client
/// all leave from its /64's pool address.
#[test]
fn fragments_follow_the_binding_of_their_first_fragment() {
    let x = load("2000-2999");
    let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"q"));
    let (addr4, port4, _) = src_of(&out);
    // 4 to 6: first fragment (UDP header, MF) then the last one (offset 16 bytes).
    let mut first = udp4((SERVER4, 53), (addr4, port4), 60, 0x7777, &[0xab; 8]);
    first[20] = 0x20;
    fix_ipv4_checksum(&mut first);
    let (action, out, _) = x.run_counted(&first);
    assert_eq!(action, XDP_PASS);
    assert_eq!(&out[38..54], &A, "first fragment to the client");
    assert_eq!(out[20], 44, "with a Fragment header");
    assert_eq!(
        u16::from_be_bytes([out[64], out[65]]),
        40000,
        "port from the binding"
    );
    let last = later_fragment4(SERVER4, addr4, 0x7777, 17, 2);
    let (action, out, moved) = x.run_counted(&last);
    assert_eq!(action, XDP_PASS, "moved {moved:?}");
    assert_eq!(&out[38..54], &A, "later fragment to the same client");
    assert_eq!(&out[62..70], &[0xcd; 8], "payload untouched");
    // 6 to 4: a later IPv6 fragment of the client leaves from its pool address.
    let mut frag6 = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(A, SERVER6, 64)
        .write(
            &mut frag6,
            IpNumber(44),
            &[17, 0, 0, 16, 0, 0, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8],
        )
        .unwrap();
    let (action, out, moved) = x.run_counted(&frag6);
    assert_eq!(action, XDP_PASS, "moved {moved:?}");
    assert_eq!(
        &out[26..30],
        &addr4,
        "from the pool address of the client's /64"
    );
    assert_eq!(
        u16::from_be_bytes([out[20], out[21]]) & 0x1fff,
        2,
        "offset kept"
    );
}

/// An ICMPv4 error about a packet a binding sent reaches the IPv6 host through that binding
/// (RFC 6146 section 3.5, RFC 7915 section 4.3): the quoted source address and port become
/// the host's own, the quoted UDP checksum follows, and so does the outer ICMPv6 checksum.
#[test]
fn icmp_errors_to_pool4_go_through_the_binding_of_the_quoted_packet() {
    let x = load("2000-2999");
    let payload = b"to a closed port";
    let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, payload));
    let (addr4, port4, id) = src_of(&out);
    // What the server received (one hop further) and quotes back in its port unreachable.
    let quoted4 = udp4((addr4, port4), (SERVER4, 53), 62, id, payload)[14..].to_vec();
    let input = unreachable4(SERVER4, addr4, 0x4321, Unreach4::Port, &quoted4);
    let (action, out, moved) = x.run_counted(&input);
    assert_eq!(action, XDP_PASS, "moved: {moved:?}");
    // The quoted packet as the IPv6 host sent it (hop limit as the server saw it).
    let expected = unreachable6_to_a(SERVER6, Unreach6::Port, 62, payload);
    assert_eq!(out, expected, "\n got {out:02x?}\nwant {expected:02x?}");
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V4ToV6, L4Proto::Icmp), 1),
            (Counter::Bytes(Dir::V4ToV6), expected.len() as u64 - 14)
        ]
    );

    // A quote of a first fragment (the server's reassembly timed out) goes through the same
    // binding, and gains a Fragment Header (RFC 7915 sections 4.1 and 4.3): M set, the
    // Identification zero-extended.
    let mut frag4 = quoted4.clone();
    frag4[6] |= 0x20;
    let frag4 = [&ip4_header_with_checksum(&frag4[..20])[..], &frag4[20..]].concat();
    let input = unreachable4(SERVER4, addr4, 0x4323, Unreach4::Port, &frag4);
    let (action, out, moved) = x.run_counted(&input);
    assert_eq!(action, XDP_PASS, "moved: {moved:?}");
    let plain = unreachable6_to_a(SERVER6, Unreach6::Port, 62, payload);
    let mut quoted6 = plain[14 + 48..].to_vec();
    let plen = quoted6.len() as u16 - 40 + 8;
    quoted6[4..6].copy_from_slice(&plen.to_be_bytes());
    quoted6[6] = 44;
    let [i0, i1] = id.to_be_bytes();
    quoted6.splice(40..40, [17, 0, 0, 1, 0, 0, i0, i1]);
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(SERVER6, A, 64)
        .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
            Unreach6::Port,
        ))
        .write(&mut expected, &quoted6)
        .unwrap();
    assert_eq!(out, expected, "\n got {out:02x?}\nwant {expected:02x?}");

    // Quoting a pool4 port with no binding: dropped and counted.
    let stray4 = udp4((addr4, port4 ^ 2), (SERVER4, 53), 62, id, payload)[14..].to_vec();
    let input = unreachable4(SERVER4, addr4, 0x4322, Unreach4::Port, &stray4);
    assert_dropped4(&x, &input, DropReason::NoBinding, "dropped");
}

/// A router's error about a client's flow (a Host Unreachable from 192.0.2.5, Jool's issue
/// 132): by default its source is the router under pool6, which traceroute needs; with
/// `icmp_error_source = "quoted-destination"` it is the quoted packet's destination (RFC 6146
/// section 3.4: the error's tuple is its quoted packet's, reversed).
#[test]
fn a_routers_error_is_sourced_from_the_router_or_the_quoted_destination() {
    const ROUTER4: [u8; 4] = [192, 0, 2, 5];
    const ROUTER6: [u8; 16] = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 5];
    for (setting, source) in [
        ("", ROUTER6),
        ("icmp_error_source = \"quoted-destination\"\n", SERVER6),
    ] {
        let x = Loaded::load(
            "stateful",
            &format!(
                "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"198.51.100.200/30\"\nports = \"2000-2999\"\n{setting}"
            ),
        );
        let payload = b"toward an unreachable host";
        let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, payload));
        let (addr4, port4, id) = src_of(&out);
        let quoted4 = udp4((addr4, port4), (SERVER4, 53), 63, id, payload)[14..].to_vec();
        let input = unreachable4(ROUTER4, addr4, 0x4321, Unreach4::Host, &quoted4);
        let (action, out, moved) = x.run_counted(&input);
        assert_eq!(action, XDP_PASS, "moved: {moved:?}");
        let expected = unreachable6_to_a(source, Unreach6::NoRoute, 63, payload);
        assert_eq!(
            out, expected,
            "{setting}\n got {out:02x?}\nwant {expected:02x?}"
        );
    }
}

/// RFC 6888 REQ-4: a /64 holds at most `per_client_limit` dynamic bindings; its next flow is
/// refused and counted, other clients are not affected, and the sweeper's recount frees the
/// slots of expired bindings.
#[test]
fn a_client_slash_64_is_limited_and_others_are_not() {
    let mut x = Loaded::load(
        "stateful limit",
        "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"198.51.100.200/30\"\nports = \"2000-2999\"\nper_client_limit = 2\n",
    );
    for port in [40000, 40002] {
        let (action, _, _) = x.run_counted(&udp6(A, port, SERVER6, 53, b"ok"));
        assert_eq!(action, XDP_PASS);
    }
    // A2 shares A's /64: the third binding of that /64 is refused.
    assert_refused(
        &x,
        &udp6(A2, 40004, SERVER6, 53, b"no"),
        DropReason::ClientLimit,
    );
    // Existing flows go on; another /64 is not limited by A's.
    assert_eq!(
        x.run_counted(&udp6(A, 40000, SERVER6, 53, b"ok")).0,
        XDP_PASS
    );
    assert_eq!(
        x.run_counted(&udp6(B, 40000, SERVER6, 53, b"ok")).0,
        XDP_PASS
    );
    // After A's bindings expire, the recount lets A2 in.
    let st = x.cfg.stateful.clone().unwrap();
    let later = now_ns() + 360 * 1_000_000_000;
    let swept = x.dp.bindings().unwrap().sweep(&st, later, 1000).unwrap();
    assert_eq!(swept.expired, 3);
    assert_eq!(
        x.run_counted(&udp6(A2, 40004, SERVER6, 53, b"ok")).0,
        XDP_PASS
    );
}

/// RFC 6888 REQ-8: the port of an expired binding is held down: nothing crosses it, and no new
/// binding takes it, until the hold-down time is over.
#[test]
fn the_port_of_an_expired_binding_is_held_down() {
    // Only one even port: 2000.
    let mut x = load("2000-2001");
    let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"q"));
    let (addr4, port4, _) = src_of(&out);
    assert_eq!(port4, 2000);
    let st = x.cfg.stateful.clone().unwrap();
    assert_eq!(st.port_hold_down_secs, 120);
    let expire_at = now_ns() + 360 * 1_000_000_000;
    let swept =
        x.dp.bindings()
            .unwrap()
            .sweep(&st, expire_at, 1000)
            .unwrap();
    assert_eq!((swept.expired, swept.held), (1, 1));
    // Held: a late answer does not cross, and a new even-port flow finds no free port.
    assert_dropped4(
        &x,
        &udp4((SERVER4, 53), (addr4, 2000), 60, 1, b"late"),
        DropReason::NoBinding,
        "dropped",
    );
    assert_refused(
        &x,
        &udp6(A, 40002, SERVER6, 53, b"new"),
        DropReason::PoolExhausted,
    );
    // Still held a minute later; released after two minutes.
    let swept =
        x.dp.bindings()
            .unwrap()
            .sweep(&st, expire_at + 60 * 1_000_000_000, 1000)
            .unwrap();
    assert_eq!((swept.held, swept.released), (1, 0));
    let swept =
        x.dp.bindings()
            .unwrap()
            .sweep(&st, expire_at + 121 * 1_000_000_000, 1000)
            .unwrap();
    assert_eq!((swept.held, swept.released), (0, 1));
    let (action, out, _) = x.run_counted(&udp6(A, 40002, SERVER6, 53, b"new"));
    assert_eq!((action, src_of(&out).1), (XDP_PASS, 2000));
}

/// An ICMPv6 error from a stateful client about a packet it received through its binding
/// (here: port unreachable for the server's datagram) reaches the IPv4 host from the pool4
/// address, quoting the packet as the IPv4 host sent it (RFC 6146 section 3.5, RFC 7915
/// section 5.3).
#[test]
fn icmpv6_errors_from_a_stateful_client_go_out_through_its_binding() {
    let x = load("2000-2999");
    let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"q"));
    let (addr4, port4, _) = src_of(&out);
    // The server's answer, as the client received it, quoted in the client's error.
    let answer = b"an answer nobody waits for";
    let mut quoted6 = Vec::new();
    PacketBuilder::ipv6(SERVER6, A, 61)
        .udp(53, 40000)
        .write(&mut quoted6, answer)
        .unwrap();
    let input = port_unreachable_from_a(&quoted6);
    let (action, out, moved) = x.run_counted(&input);
    assert_eq!(action, XDP_PASS, "moved: {moved:?}");
    // Both IPv4 identifications are the translator's (random, DF=0): read from the output.
    let outer_id = u16::from_be_bytes([out[18], out[19]]);
    let inner_id = u16::from_be_bytes([out[14 + 28 + 4], out[14 + 28 + 5]]);
    let quoted4 = udp4((SERVER4, 53), (addr4, port4), 61, inner_id, answer)[14..].to_vec();
    let icmp4 = Icmpv4Header::with_checksum(
        Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port),
        &quoted4,
    );
    let mut expected = [MACS.1.as_slice(), MACS.0.as_slice(), &[0x08, 0x00]].concat();
    expected.extend(ip4(addr4, SERVER4, 64, outer_id, 1, 8 + quoted4.len()).to_bytes());
    expected.extend(icmp4.to_bytes());
    expected.extend(&quoted4);
    assert_eq!(out, expected, "\n got {out:02x?}\nwant {expected:02x?}");
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V6ToV4, L4Proto::Icmp), 1),
            (Counter::Bytes(Dir::V6ToV4), expected.len() as u64 - 14)
        ]
    );

    // Quoting a flow with no binding: dropped and counted.
    let mut stray = Vec::new();
    PacketBuilder::ipv6(SERVER6, A, 61)
        .udp(53, 40002)
        .write(&mut stray, answer)
        .unwrap();
    let input = port_unreachable_from_a(&stray);
    let (action, _, moved) = x.run_counted(&input);
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        moved,
        vec![(Counter::Dropped(Dir::V6ToV4, DropReason::NoBinding), 1)]
    );
}

/// Hairpinning (RFC 6146 section 3.8), as the two programs do it: the fast path translates
/// A's packet to B's pool4 transport address into IPv4 from A's binding (the kernel then
/// routes pool4 into the translator link), and the link's program translates that into IPv6
/// to B through B's binding, from A's pool4 transport address under pool6.
#[test]
fn hairpinning_goes_through_both_bindings() {
    let x = load("2000-2999");
    let (_, out_b, _) = x.run_counted(&udp6(B, 9000, SERVER6, 53, b"b"));
    let (b4, b_port, _) = src_of(&out_b);
    let b_under_pool6 = [
        0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, b4[0], b4[1], b4[2], b4[3],
    ];
    let (action, to_b4, _) = x.run_counted(&udp6(A, 40000, b_under_pool6, b_port, b"hi B"));
    assert_eq!(action, XDP_PASS);
    let (a4, a_port, _) = src_of(&to_b4);
    assert_eq!(&to_b4[30..34], &b4, "IPv4 to B's pool4 address");
    let (action, to_b6) = x.run_program(nat64_daemon::dataplane::LINK_PROGRAM, &to_b4);
    assert_eq!(action, XDP_TX);
    let a_under_pool6 = [
        0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, a4[0], a4[1], a4[2], a4[3],
    ];
    // Hop limit 64 in, 64 out: the link gives back the hop the kernel takes on the way in.
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(MACS.1, MACS.0)
        .ipv6(a_under_pool6, B, 64)
        .udp(a_port, 9000)
        .write(&mut expected, b"hi B")
        .unwrap();
    assert_eq!(to_b6, expected, "\n got {to_b6:02x?}\nwant {expected:02x?}");
}

/// An IPv4 host may answer through a dynamic TCP binding but not open a connection through
/// it: a SYN without ACK gets through only a static binding.
/// Endpoint-independent filtering (the default, RFC 4787 REQ-8): any IPv4 host may use a
/// binding, and a TCP segment other than a SYN with no session is translated without making
/// one (RFC 6146 section 3.5.2.2's CLOSED state, as Jool does). With `drop_external_tcp`, an
/// IPv4 host's SYN on a dynamic binding is refused as `filtered`; a static binding takes it.
#[test]
fn endpoint_independent_filtering_and_external_tcp_connections() {
    let mut x = load("2000-2999");
    let (_, out, _) = x.run_counted(&syn6());
    let (addr4, port4, _) = src_of(&out);
    // A stray ACK from another host: through, and no session for it.
    let (action, out, _) = x.run_counted(&tcp4(OTHER4, 5555, addr4, port4, ACK));
    assert_eq!(action, XDP_PASS);
    assert_eq!(&out[38..54], &A);
    assert_eq!(x.dp.bindings().unwrap().list_sessions(10).len(), 1);
    // UDP from anyone on a UDP binding: a session each.
    let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"q"));
    let (uaddr, uport, _) = src_of(&out);
    let (action, _) = x.run(&udp4((OTHER4, 9999), (uaddr, uport), 60, 1, b"hi"));
    assert_eq!(action, XDP_PASS);
    assert_eq!(x.dp.bindings().unwrap().list_sessions(10).len(), 3);

    let mut x = Loaded::load(
        "stateful",
        "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"198.51.100.200/30\"\nports = \"2000-2999\"\ndrop_external_tcp = true\n",
    );
    let (_, out, _) = x.run_counted(&syn6());
    let (addr4, port4, _) = src_of(&out);
    // The server's SYN-ACK answers the client's SYN: through.
    assert_eq!(
        x.run_counted(&tcp4(SERVER4, 443, addr4, port4, SYN | ACK))
            .0,
        XDP_PASS
    );
    // Someone else's SYN to the same binding: refused and counted.
    assert_dropped4(
        &x,
        &tcp4(OTHER4, 5555, addr4, port4, SYN),
        DropReason::Filtered,
        "dropped",
    );
    // Through a static binding a SYN is welcome.
    add_static(
        &mut x,
        nat64_daemon::bindings::Protocol::Tcp,
        "[2001:db8:6::201]:80".parse().unwrap(),
        std::net::SocketAddrV4::new(addr4.into(), 80),
    );
    let (action, out, _) = x.run_counted(&tcp4(OTHER4, 5555, addr4, 80, SYN));
    assert_eq!(action, XDP_PASS);
    assert_eq!(&out[38..54], &A, "to the static binding's IPv6 host");
}

/// Address-dependent filtering (`filtering = "address-dependent"`, RFC 4787 section 5, RFC
/// 6146 section 3.5): an IPv4 host may use a binding only once its client has sent to that
/// address (from any port of it); another host's UDP is refused as `filtered`, its TCP SYN is
/// held (section 3.5.2.2), and an IPv6 SYN to it in time completes a simultaneous open on the
/// existing binding. The sweeper removes a peer with its last session.
#[test]
fn address_dependent_filtering_admits_only_addresses_the_client_sent_to() {
    let mut x = Loaded::load(
        "stateful",
        "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"198.51.100.200/30\"\nports = \"2000-2999\"\nfiltering = \"address-dependent\"\n",
    );
    let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"q"));
    let (addr4, port4, _) = src_of(&out);
    let (action, _) = x.run(&udp4((SERVER4, 53), (addr4, port4), 60, 1, b"a"));
    assert_eq!(action, XDP_PASS, "the server's answer");
    let (action, _) = x.run(&udp4((SERVER4, 5353), (addr4, port4), 60, 2, b"b"));
    assert_eq!(action, XDP_PASS, "the same address from another port");
    // An address the client never sent to: refused, and told so from the interface's address
    // (ICMPv4 3/13, Communication Administratively Prohibited, as Jool answers it).
    let before = x.stats();
    let (action, _) = x.run(&udp4((OTHER4, 53), (addr4, port4), 60, 3, b"c"));
    assert_eq!(action, XDP_DROP, "no address to answer from");
    assert_eq!(
        counter_delta(&before, &x.stats()),
        vec![(Counter::Dropped(Dir::V4ToV6, DropReason::Filtered), 1)]
    );
    const IFACE4: [u8; 4] = [192, 0, 2, 1];
    let settings = nat64_daemon::InterfaceSettings {
        addr4: Some(IFACE4.into()),
        ..Default::default()
    };
    x.dp.set_interface(1, &settings)
        .expect("interface settings");
    let refused = udp4((OTHER4, 53), (addr4, port4), 60, 4, b"d");
    let (action, out, moved) = x.run_counted(&refused);
    assert_eq!(action, XDP_TX, "answered");
    let quote = &refused[14..];
    let icmp = Icmpv4Header::with_checksum(
        Icmpv4Type::DestinationUnreachable(Unreach4::FilterProhibited),
        quote,
    );
    let mut ip = ip4(
        IFACE4,
        OTHER4,
        64,
        u16::from_be_bytes([out[18], out[19]]),
        1,
        8 + quote.len(),
    );
    ip.header_checksum = ip.calc_header_checksum();
    let mut expected = [MACS.0.as_slice(), MACS.1.as_slice(), &[0x08, 0x00]].concat();
    expected.extend(ip.to_bytes());
    expected.extend(icmp.to_bytes());
    expected.extend(quote);
    assert_eq!(out, expected, "\n got {out:02x?}\nwant {expected:02x?}");
    assert_eq!(
        moved,
        vec![
            (Counter::Dropped(Dir::V4ToV6, DropReason::Filtered), 1),
            (Counter::Generated(Generated::AdminProhibited), 1)
        ]
    );
    assert_eq!(x.dp.bindings().unwrap().list_sessions(10).len(), 2);

    // TCP: a SYN from another host on the client's binding is held, not translated.
    let (_, out, _) = x.run_counted(&syn6());
    let (taddr, tport, _) = src_of(&out);
    assert_dropped4(
        &x,
        &tcp4(OTHER4, 5555, taddr, tport, SYN),
        DropReason::UnsolicitedSyn,
        "dropped",
    );
    // Nor does any other segment of its get through (no session, no peer).
    assert_dropped4(
        &x,
        &tcp4(OTHER4, 5555, taddr, tport, ACK),
        DropReason::Filtered,
        "dropped",
    );
    // The client's SYN to that host from the same port: the simultaneous open.
    let (action, out, _) = x.run_counted(&tcp6(A, 41000, OTHER6, 5555, SYN));
    assert_eq!(action, XDP_PASS);
    assert_eq!(src_of(&out).0, taddr);
    assert_eq!(src_of(&out).1, tport, "the same binding");
    assert!(
        x.dp.take_expired_syns(u64::MAX, 10).unwrap().is_empty(),
        "the simultaneous open took the held SYN"
    );
    let open: Vec<_> =
        x.dp.bindings()
            .unwrap()
            .list_sessions(10)
            .into_iter()
            .filter(|s| s.key.remote4 == OTHER4)
            .map(|s| (s.value.tcp6, s.value.tcp4))
            .collect();
    assert_eq!(open, vec![(TCP_SYN, TCP_SYN)], "both sides opened");
    // Now that host may answer.
    assert_eq!(
        x.run_counted(&tcp4(OTHER4, 5555, taddr, tport, SYN | ACK))
            .0,
        XDP_PASS
    );

    // Every session idle past its time: the peers go with them.
    let cfg = x.cfg.stateful.clone().unwrap();
    let later = now_ns() + 3 * 3600 * 1_000_000_000;
    let swept = x.dp.bindings().unwrap().sweep(&cfg, later, 100).unwrap();
    assert_eq!(swept.sessions_expired, 4);
    let t = x.dp.bindings().unwrap();
    assert_eq!(t.peers.keys().count(), 0, "no peer without a session");
}

/// RFC 6146 section 3.5.2.2: an IPv4 SYN to a pool4 port with no binding is held (dropped,
/// counted, kept whole for the daemon's Port Unreachable), and a repeat is only dropped; an
/// IPv6 SYN from a client of that pool4 address to the SYN's sender takes the held port (a
/// simultaneous open), which leaves the table. A SYN-ACK with no binding is not held.
#[test]
fn an_unsolicited_syn_is_held_and_a_simultaneous_open_takes_its_port() {
    let mut x = load("2000-2999");
    let idx = nat64_common::state::pool4_index(&A, 4) as u8;
    let pool = [198, 51, 100, 200 + idx];
    let tcp4 = |sport: u16, dport: u16, ack: bool| {
        let mut b = PacketBuilder::ethernet2(MACS.1, MACS.0)
            .ipv4(OTHER4, pool, 60)
            .tcp(sport, dport, 7, 64240)
            .syn();
        if ack {
            b = b.ack(2);
        }
        let mut v = Vec::new();
        b.write(&mut v, &[1, 2, 3, 4]).unwrap();
        v
    };
    let held = [(Counter::Dropped(Dir::V4ToV6, DropReason::UnsolicitedSyn), 1)];
    for _ in 0..2 {
        let (action, _, moved) = x.run_counted(&tcp4(5555, 2468, false));
        assert_eq!(action, XDP_DROP);
        assert_eq!(moved, held);
    }
    assert_dropped4(
        &x,
        &tcp4(5557, 2472, true),
        DropReason::NoBinding,
        "dropped",
    );
    // The IPv6 side opens the same connection: its binding takes port 2468.
    let mut syn = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(A, OTHER6, 64)
        .tcp(41000, 5555, 1, 64240)
        .syn()
        .write(&mut syn, &[])
        .unwrap();
    let (action, out, _) = x.run_counted(&syn);
    assert_eq!(action, XDP_PASS);
    let (addr4, port4, _) = src_of(&out);
    assert_eq!((addr4, port4), (pool, 2468), "the held SYN's port");
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv4(pool, OTHER4, 64)
        .tcp(2468, 5555, 1, 64240)
        .syn()
        .write(&mut expected, &[])
        .unwrap();
    // All but the Identification and DF (the translator's choice for a small packet) and the
    // header checksum that covers them.
    assert_eq!(
        (&out[22..24], &out[26..]),
        (&expected[22..24], &expected[26..]),
        "\n got {out:02x?}\nwant {expected:02x?}"
    );
    assert!(
        x.dp.take_expired_syns(u64::MAX, 10).unwrap().is_empty(),
        "the simultaneous open took the held SYN"
    );
    // Another one, left alone: not due before its 6 seconds, then handed over whole.
    let syn4 = tcp4(5556, 2470, false);
    let (action, _, _) = x.run_counted(&syn4);
    assert_eq!(action, XDP_DROP);
    assert!(x.dp.take_expired_syns(now_ns(), 10).unwrap().is_empty());
    let due =
        x.dp.take_expired_syns(now_ns() + 6_000_000_000, 10)
            .unwrap();
    assert_eq!(due.len(), 1);
    let (k, h) = due[0];
    assert_eq!(
        (k.remote4, k.pool4, u16::from_be_bytes(k.remote_port)),
        (OTHER4, pool, 5556)
    );
    assert_eq!(u16::from_be_bytes(h.pool_port), 2470);
    assert_eq!(nat64_daemon::held_syns::quote(&h), &syn4[14..]);
}

/// pool4 of several prefixes with a port range per protocol: every host's address comes from
/// one of the prefixes, each protocol's port from its own range, and inbound packets find
/// their bindings on any prefix.
#[test]
fn several_pool4_prefixes_and_a_range_per_protocol() {
    let x = Loaded::load(
        "stateful prefixes",
        "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = [\"198.51.100.200/32\", \"198.51.100.210/31\"]\ntcp_ports = \"3000-3999\"\nudp_ports = \"5000-5999\"\n",
    );
    let in_pool = |a: [u8; 4]| a[..3] == [198, 51, 100] && [200, 210, 211].contains(&a[3]);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..24u8 {
        let mut host = A;
        host[5] = i; // a different /64 each
        let (action, out, _) = x.run_counted(&udp6(host, 40000, SERVER6, 53, b"q"));
        assert_eq!(action, XDP_PASS);
        let (addr4, port4, _) = src_of(&out);
        assert!(in_pool(addr4), "{addr4:?}");
        assert!((5000..=5999).contains(&port4), "UDP port {port4}");
        seen.insert(addr4);
        // The answer finds the binding on whichever prefix it is.
        let (action, back, _) = x.run_counted(&udp4((SERVER4, 53), (addr4, port4), 60, 1, b"a"));
        assert_eq!(action, XDP_PASS);
        assert_eq!(&back[38..54], &host);
    }
    assert_eq!(
        seen.len(),
        3,
        "24 /64s spread over all three addresses: {seen:?}"
    );
    // Between the prefixes, inside their span: not pool4, so not ours (passed untouched and
    // uncounted, where a pool4 address would drop it for want of a binding).
    let between = udp4((SERVER4, 53), ([198, 51, 100, 205], 5000), 60, 1, b"a");
    let (action, out, moved) = x.run_counted(&between);
    assert_eq!((action, &out, moved), (XDP_PASS, &between, vec![]));
    let syn = syn6();
    let (_, out, _) = x.run_counted(&syn);
    assert!(
        (3000..=3999).contains(&src_of(&out).1),
        "TCP port {}",
        src_of(&out).1
    );
}

/// RFC 6146 pool4 on the node's own address, shared by port (issue #17; Jool's default pool4):
/// what arrives for a pool4 address outside pool4's ports and finds no binding is the node's
/// own traffic and goes up the stack untouched: its SSH, an echo reply to its own ping, an
/// ICMP error about a packet it sent, other protocols. Inside pool4's ports, no binding still
/// means a drop (RFC 6146 section 3.5), and a static binding outside them still translates.
#[test]
fn a_pool4_address_shared_with_the_node_leaves_the_nodes_traffic_alone() {
    let mut x = shared_pool4("shared pool4");
    add_static(
        &mut x,
        nat64_daemon::bindings::Protocol::Udp,
        "[2001:db8:6::201]:53".parse().unwrap(),
        "198.51.100.201:53".parse().unwrap(),
    );
    let node = [198, 51, 100, 200];
    let unchanged = |name: &str, frame: Vec<u8>| {
        let (action, out, moved) = x.run_counted(&frame);
        assert_eq!(action, XDP_PASS, "{name}");
        assert_eq!(out, frame, "{name}: touched");
        assert_eq!(moved, vec![], "{name}: counted");
    };
    // The node's SSH server, and its own outgoing connection's reply (an ephemeral port).
    unchanged(
        "UDP to port 22",
        udp4((SERVER4, 40000), (node, 22), 60, 1, b"ssh"),
    );
    unchanged(
        "UDP to port 40000",
        udp4((SERVER4, 53), (node, 40000), 60, 2, b"dns"),
    );
    // Another protocol (GRE).
    let mut gre = [MACS.1.as_slice(), MACS.0.as_slice(), &[0x08, 0x00]].concat();
    gre.extend(ip4(SERVER4, node, 60, 3, 47, 8).to_bytes());
    gre.extend([0u8; 8]);
    unchanged("GRE", gre);
    // An echo reply to the node's own ping, its identifier inside pool4's range or not.
    for id in [1234u16, 62000] {
        let mut echo = Vec::new();
        PacketBuilder::ethernet2(MACS.1, MACS.0)
            .ipv4(SERVER4, node, 60)
            .icmpv4_echo_reply(id, 1)
            .write(&mut echo, b"ping")
            .unwrap();
        unchanged(&format!("echo reply, identifier {id}"), echo);
    }
    // Port Unreachable about a datagram the node sent from its ephemeral port 40000.
    let quoted = &udp4((node, 40000), (SERVER4, 53), 63, 9, b"q")[14..];
    let mut err = Vec::new();
    PacketBuilder::ethernet2(MACS.1, MACS.0)
        .ipv4(SERVER4, node, 60)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut err, quoted)
        .unwrap();
    unchanged("port unreachable about the node's datagram", err);
    // A datagram to the node in fragments (a large DNS answer to its resolver): the first
    // and the later ones alike, for the kernel to reassemble.
    let mut first = udp4((SERVER4, 53), (node, 40000), 60, 7, &[0x5a; 64]);
    first[20] = 0x20; // MF
    fix_ipv4_checksum(&mut first);
    unchanged("the first fragment of the node's datagram", first);
    let mut later = [MACS.1.as_slice(), MACS.0.as_slice(), &[0x08, 0x00]].concat();
    later.extend(ip4(SERVER4, node, 60, 7, 17, 32).to_bytes());
    later.extend([0x5a; 32]);
    later[20] = 0x00;
    later[21] = 9; // offset 72 bytes, the last fragment
    fix_ipv4_checksum(&mut later);
    unchanged("a later fragment of the node's datagram", later);
    // Inside pool4's ports with no binding: refused, as before.
    assert_dropped4(
        &x,
        &udp4((SERVER4, 53), (node, 61005), 60, 4, b"x"),
        DropReason::NoBinding,
        "dropped",
    );
    // A static binding on port 53, outside pool4's ports: translated.
    let (action, out, _) = x.run_counted(&udp4(
        (SERVER4, 5353),
        ([198, 51, 100, 201], 53),
        60,
        5,
        b"static",
    ));
    assert_eq!(action, XDP_PASS);
    assert_eq!(&out[12..14], &[0x86, 0xdd], "translated to IPv6");
}

/// Stateful hairpinning toward a pool4 address the node shares: the kernel would deliver the
/// translated IPv4 packet locally, so the fast path redirects it into the translator link
/// (both MAC addresses the link's kernel side's, the TTL one less, as the kernel's forwarding
/// would leave it), where the link's program translates it back through the binding.
#[test]
fn hairpinning_to_a_shared_pool4_address_goes_into_the_link() {
    nat64_tests::require_root();
    let ns = nat64_tests::netns::Netns::new("shared-hairpin");
    ns.ip(&[
        "link", "add", "nat64", "type", "veth", "peer", "name", "nat64-dp",
    ]);
    ns.ip(&["link", "set", "nat64", "up"]);
    // A link of MTU 1280 toward the IPv6 clients, for the case of a DF packet too big for it.
    ns.veth("r0", "r1", Some(1280), &["2001:db8:6::1/64"]);
    ns.sysctl("net.ipv6.conf.all.forwarding", "1");
    let mac = ns.mac("nat64");
    ns.run(|| {
        let mut x = shared_pool4("shared hairpin");
        // B writes to 64:ff9b::198.51.100.200, port 61001: the pool4 address itself.
        let to_pool4 = [
            0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 198, 51, 100, 200,
        ];
        let input = udp6(B, 5000, to_pool4, 61001, b"hairpin");
        let (action, out, _) = x.run_counted(&input);
        assert_eq!(
            action,
            nat64_tests::xdp::XDP_REDIRECT,
            "redirected into the link"
        );
        assert_eq!(&out[..6], &mac[..], "to the link's kernel side");
        assert_eq!(&out[6..12], &mac[..], "from the link's kernel side");
        assert_eq!(&out[12..14], &[0x08, 0x00], "translated to IPv4");
        assert_eq!(out[14 + 8], 62, "TTL: hop limit 63, one taken");
        assert_eq!(&out[14 + 16..14 + 20], &[198, 51, 100, 200]);
        // The header checksum still verifies after the TTL change.
        let h = Ipv4Header::from_slice(&out[14..]).unwrap().0;
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        // At TC, an IPv4 packet with DF for that address (a static binding's port) too big
        // for the IPv6 route, which the link answers with Fragmentation Needed, goes into the
        // link directly too: handed to the kernel, it would be delivered to the node.
        // (Fragments go to the kernel under the address's alias: see
        // `datagrams_to_fragment_for_a_shared_address_go_to_the_kernel_under_its_alias`.)
        add_static(
            &mut x,
            nat64_daemon::bindings::Protocol::Udp,
            "[2001:db8:6::201]:53".parse().unwrap(),
            "198.51.100.200:61010".parse().unwrap(),
        );
        let mut big = udp4(
            (SERVER4, 53),
            ([198, 51, 100, 200], 61010),
            60,
            8,
            &[7; 1300],
        );
        big[20] = 0x40; // DF
        fix_ipv4_checksum(&mut big);
        let (action, out) = x.run_tc(&big, 0);
        assert_eq!(action, XDP_TX, "redirected (TC_ACT_REDIRECT)");
        assert_eq!(&out[..6], &mac[..], "to the link's kernel side");
        assert_eq!(out[14 + 8], 59, "one hop taken");
    });
}

/// A namespace for the route-MTU tests of a shared pool4 address: `r0` toward the IPv4 side
/// with MTU `mtu` (192.0.2.1/24), the IPv6 side on a link of its own (IPv6 needs 1280), both
/// forwarding. `f` gets the namespace and, loaded inside it, a dataplane with pool4 on the
/// node's address and a static UDP binding of A port 2000 to 198.51.100.200:61010.
fn with_shared_route_mtu(
    name: &str,
    mtu: u32,
    f: impl FnOnce(&nat64_tests::netns::Netns, Loaded) + Send,
) {
    nat64_tests::require_root();
    let ns = nat64_tests::netns::Netns::new(name);
    ns.veth("r0", "r1", Some(mtu), &["192.0.2.1/24"]);
    ns.veth("s0", "s1", None, &["2001:db8:6::1/64"]);
    ns.sysctl("net.ipv4.conf.all.forwarding", "1");
    ns.sysctl("net.ipv6.conf.all.forwarding", "1");
    let ns = &ns;
    ns.run(|| {
        let mut x = shared_pool4(name);
        add_static(
            &mut x,
            nat64_daemon::bindings::Protocol::Udp,
            std::net::SocketAddrV6::new(A.into(), 2000, 0, 0),
            "198.51.100.200:61010".parse().unwrap(),
        );
        f(ns, x)
    });
}

/// The IPv4 route's MTU is remembered too (`ROUTE_MTU`), for a second and no longer: once the
/// route out is widened, the packet it refused is translated within that second, and once it
/// is narrowed again, answered with the new MTU (its MTU plus 20, RFC 7915 section 4.2).
#[test]
fn a_changed_ipv4_route_mtu_is_seen_within_a_second() {
    with_shared_route_mtu("shared-mtu-ttl", 1400, |ns, x| {
        // 1450 bytes of IPv6, 1430 of IPv4 with DF: too big for r0's 1400.
        let big = udp6(A, 2000, SERVER6, 4000, &[0x5a; 1402]);
        let verdict = || {
            let (action, out) = x.run(&big);
            match action {
                XDP_PASS if out[12..14] == [0x08, 0x00] => Some(0),
                // ICMPv6 Packet Too Big: its MTU at the fifth byte of the message.
                XDP_TX if out[14 + 40] == 2 => Some(u32::from_be_bytes(
                    out[14 + 44..14 + 48].try_into().unwrap(),
                )),
                _ => None,
            }
        };
        assert_eq!(verdict(), Some(1420), "answered with r0's MTU plus 20");
        // Remembered: the server's address from the receiving interface (lo here).
        assert_eq!(
            x.dp.route_mtus().expect("ROUTE_MTU"),
            vec![(std::net::IpAddr::from(SERVER4), 1, 1400)]
        );
        nat64_tests::assert_route_mtu_changes_seen(ns, "r0", 1320, |want| verdict() == Some(want));
    });
}

/// From a pool4 address the node shares, a packet with DF too big for the route out is
/// answered with ICMPv6 Packet Too Big from the node (the kernel's Fragmentation Needed would
/// go to that address, the node itself): MTU 1000 on the way out, so 1280 for the IPv6 side
/// (RFC 7915 section 4.2's arithmetic, at least the IPv6 minimum), the packet quoted as the
/// client sent it, its binding's port given back. At TC the packet goes to the translator
/// link untouched, which answers it. A packet that fits is translated.
#[test]
fn a_packet_too_big_for_the_way_out_from_a_shared_address_is_answered_with_packet_too_big() {
    let node6: [u8; 16] = "2001:db8:6::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    with_shared_route_mtu("shared-mtu", 1000, |_, x| {
        // 1281 bytes of IPv6, 1261 of IPv4 with DF: too big for r0.
        let big = udp6(A, 2000, SERVER6, 4000, &[0x5a; 1233]);
        let (action, out, moved) = x.run_counted(&big);
        assert_eq!(action, XDP_TX, "answered");
        assert_eq!(
            moved,
            vec![
                (Counter::Dropped(Dir::V6ToV4, DropReason::PacketTooBig), 1),
                (Counter::Generated(Generated::PacketTooBig), 1),
            ]
        );
        let quote = &big[14..14 + 1232];
        let mut expected = Vec::new();
        PacketBuilder::ethernet2(MACS.1, MACS.0)
            .ipv6(node6, A, 64)
            .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 })
            .write(&mut expected, quote)
            .unwrap();
        assert_eq!(out.len(), expected.len());
        assert_eq!(
            out,
            expected,
            "\n got {:02x?}\nwant {:02x?}",
            &out[..80],
            &expected[..80]
        );
        // At TC: to the translator link untouched, the binding's port given back.
        let (action, out) = x.run_tc(&big, 0);
        assert_eq!(action, XDP_PASS);
        assert_eq!(out, big, "handed to the link as it came");
        // One that fits is translated, from the shared address.
        let fits = udp6(A, 2000, SERVER6, 4000, &[0x5a; 900]);
        let (action, out, _) = x.run_counted(&fits);
        assert_eq!(action, XDP_PASS);
        assert_eq!(src_of(&out).0, [198, 51, 100, 200]);
    });
}

/// RFC 7915 section 4.1 for a pool4 address the node shares: an IPv4 datagram without DF
/// too big for `ipv6_mtu` once translated, and every fragment, goes to the kernel readdressed
/// to the alias (`stateful.shared_address_alias`), its header and UDP checksums moved with
/// the address, at both hooks: the kernel fragments it on its way into the translator link
/// (it would deliver it to the node under its own address). On the link's far end the
/// address comes back and the piece is translated through the binding. To another pool4
/// address the datagram goes to the kernel untouched, routed there already. Without an alias
/// the datagram is translated whole.
#[test]
fn datagrams_to_fragment_for_a_shared_address_go_to_the_kernel_under_its_alias() {
    let mut x = shared_pool4_with("shared fragment", "ipv6_mtu = 1280\n");
    for (v4, v6) in [
        ("198.51.100.200:61010", 2000),
        ("198.51.100.201:61010", 2001),
    ] {
        add_static(
            &mut x,
            nat64_daemon::bindings::Protocol::Udp,
            std::net::SocketAddrV6::new(A.into(), v6, 0, 0),
            v4.parse().unwrap(),
        );
    }
    let shared = ([198, 51, 100, 200], 61010);
    let handed = vec![(
        Counter::Handoff(Dir::V4ToV6, nat64_common::Handoff::NeedsFragmentation),
        1,
    )];
    // 1428 bytes of IPv4 without DF: 1448 of IPv6, over the 1280 of ipv6_mtu.
    let payload = [0x33; 1400];
    let to_shared = udp4((SERVER4, 4000), shared, 64, 0x1234, &payload);
    let aliased = udp4((SERVER4, 4000), (SHARED_ALIAS, 61010), 64, 0x1234, &payload);
    let (action, out, moved) = x.run_counted(&to_shared);
    assert_eq!((action, &moved), (XDP_PASS, &handed));
    assert!(out == aliased, "under the alias: {:02x?}", &out[..50]);
    let (action, out) = x.run_tc(&to_shared, 0);
    assert_eq!(action, XDP_PASS, "TC: up the stack");
    assert!(out == aliased, "TC: under the alias: {:02x?}", &out[..50]);
    // A first fragment, however small (its UDP checksum moved with the address), and a later
    // one (whose bytes past the header are data: only the header changes).
    let mf = |mut f: Vec<u8>, off8: u16| {
        let w = 0x2000 | off8;
        f[20..22].copy_from_slice(&w.to_be_bytes());
        fix_ipv4_checksum(&mut f);
        f
    };
    let later = mf(udp4((SERVER4, 4000), shared, 64, 0x77, b"a later one"), 4);
    let mut later_aliased = later.clone();
    later_aliased[30..34].copy_from_slice(&SHARED_ALIAS);
    fix_ipv4_checksum(&mut later_aliased);
    for (frame, want) in [
        (
            mf(udp4((SERVER4, 4000), shared, 64, 0x77, b"first piece"), 0),
            mf(
                udp4(
                    (SERVER4, 4000),
                    (SHARED_ALIAS, 61010),
                    64,
                    0x77,
                    b"first piece",
                ),
                0,
            ),
        ),
        (later, later_aliased),
    ] {
        let (action, out, moved) = x.run_counted(&frame);
        assert_eq!((action, &moved), (XDP_PASS, &handed));
        assert!(out == want, "fragment under the alias: {:02x?}", &out[..50]);
        let (action, out) = x.run_tc(&frame, 0);
        assert_eq!(action, XDP_PASS);
        assert!(
            out == want,
            "TC: fragment under the alias: {:02x?}",
            &out[..50]
        );
    }
    // Not under the alias: an ICMP message or a UDP datagram without a checksum as large
    // (translated whole: in pieces the link could not translate them), and a fragment whose
    // TTL runs out here (the kernel's Time Exceeded would quote the alias).
    add_static(
        &mut x,
        nat64_daemon::bindings::Protocol::Icmp,
        std::net::SocketAddrV6::new(A.into(), 3000, 0, 0),
        "198.51.100.200:61030".parse().unwrap(),
    );
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(MACS.1, MACS.0)
        .ipv4(SERVER4, shared.0, 64)
        .icmpv4_echo_reply(61030, 1)
        .write(&mut echo, &payload)
        .unwrap();
    echo[20] &= !0x40; // no DF: as Linux answers a large ping
    fix_ipv4_checksum(&mut echo);
    let mut no_checksum = to_shared.clone();
    no_checksum[14 + 20 + 6..14 + 20 + 8].fill(0);
    for (what, frame, proto) in [
        ("echo reply", echo, L4Proto::Icmp),
        ("UDP without a checksum", no_checksum, L4Proto::Udp),
    ] {
        let (action, out, moved) = x.run_counted(&frame);
        assert_eq!(action, XDP_PASS, "{what}");
        assert_eq!(&out[12..14], &[0x86, 0xdd], "{what}: translated whole");
        assert_eq!(
            moved,
            vec![
                (Counter::Packets(Dir::V4ToV6, proto), 1),
                (Counter::Bytes(Dir::V4ToV6), 1448),
            ],
            "{what}"
        );
    }
    let last_hop = mf(udp4((SERVER4, 4000), shared, 1, 0x78, b"last hop"), 0);
    let (action, out, moved) = x.run_counted(&last_hop);
    assert_eq!(action, XDP_PASS);
    assert!(out == last_hop, "untouched: {:02x?}", &out[..40]);
    assert_eq!(
        moved,
        vec![(
            Counter::Dropped(Dir::V4ToV6, DropReason::HopLimitExceeded),
            1
        )]
    );
    // The far end: a piece the kernel cut (here one that fits) gets the shared address back
    // and is translated through its binding (the hop the kernel took given back).
    let piece = udp4(
        (SERVER4, 4000),
        (SHARED_ALIAS, 61010),
        63,
        0x99,
        &[0x44; 600],
    );
    let (action, out) = x.run_program(nat64_daemon::dataplane::LINK_PROGRAM, &piece);
    assert_eq!(action, XDP_TX, "translated back into the link");
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(SERVER6, A, 64)
        .udp(4000, 2000)
        .write(&mut expected, &[0x44; 600])
        .unwrap();
    assert!(
        out[12..] == expected[12..],
        "translated: {:02x?}",
        &out[..70]
    );
    // So does one under the address after it (a GSO aggregate with DF went there, which the
    // kernel cut into segments).
    let df_alias = [
        SHARED_ALIAS[0],
        SHARED_ALIAS[1],
        SHARED_ALIAS[2],
        SHARED_ALIAS[3] + 1,
    ];
    let mut segment = udp4((SERVER4, 4000), (df_alias, 61010), 63, 0x9a, &[0x44; 600]);
    segment[20] = 0x40; // DF
    fix_ipv4_checksum(&mut segment);
    let (action, out) = x.run_program(nat64_daemon::dataplane::LINK_PROGRAM, &segment);
    assert_eq!(action, XDP_TX, "translated back into the link");
    assert!(
        out[12..] == expected[12..],
        "translated: {:02x?}",
        &out[..70]
    );
    // To another pool4 address: to the kernel untouched.
    let to_other = udp4(
        (SERVER4, 4000),
        ([198, 51, 100, 201], 61010),
        64,
        0x1235,
        &payload,
    );
    let (action, out, moved) = x.run_counted(&to_other);
    assert_eq!((action, &moved), (XDP_PASS, &handed));
    assert!(
        out == to_other,
        "to the kernel untouched: {:02x?}",
        &out[..40]
    );
    // No alias: translated whole.
    let mut x = shared_pool4_aliased("shared fragment, no alias", "ipv6_mtu = 1280\n", "off");
    add_static(
        &mut x,
        nat64_daemon::bindings::Protocol::Udp,
        std::net::SocketAddrV6::new(A.into(), 2000, 0, 0),
        "198.51.100.200:61010".parse().unwrap(),
    );
    let (action, out, moved) = x.run_counted(&to_shared);
    assert_eq!(action, XDP_PASS);
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V4ToV6, L4Proto::Udp), 1),
            (Counter::Bytes(Dir::V4ToV6), 1448),
        ]
    );
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(SERVER6, A, 64)
        .udp(4000, 2000)
        .write(&mut expected, &payload)
        .unwrap();
    assert!(out == expected, "translated whole: {:02x?}", &out[..70]);
}

/// The alias is routed into the translator link whenever stateful NAT64 and the link are on;
/// with no pool4 address shared there is nothing to give it back, and the link drops what
/// comes to it (passed up its far end, it would be routed back into the link until its TTL
/// ran out).
#[test]
fn the_link_drops_what_comes_to_the_alias_when_no_address_is_shared() {
    let x = Loaded::load(
        "alias, nothing shared",
        &format!(
            "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"198.51.100.200/30\"\n\
             ports = \"61001-65535\"\nshared_address_alias = \"{}\"\n",
            std::net::Ipv4Addr::from(SHARED_ALIAS)
        ),
    );
    let before = x.stats();
    let df_alias = [
        SHARED_ALIAS[0],
        SHARED_ALIAS[1],
        SHARED_ALIAS[2],
        SHARED_ALIAS[3] + 1,
    ];
    for alias in [SHARED_ALIAS, df_alias] {
        let to_alias = udp4((SERVER4, 4000), (alias, 61010), 63, 5, b"nobody");
        let (action, _) = x.run_program(nat64_daemon::dataplane::LINK_PROGRAM, &to_alias);
        assert_eq!(action, XDP_DROP, "{alias:?}");
    }
    assert_eq!(
        counter_delta(&before, &x.stats()),
        vec![(Counter::Dropped(Dir::V4ToV6, DropReason::MartianAddress), 2)]
    );
}

/// The link's kernel side (`nat64_return`): what the far end translated toward a pool4 address
/// the node shares goes back into the link with one hop taken (the kernel would deliver it
/// locally); anything else goes up the stack untouched.
#[test]
fn the_links_kernel_side_returns_hairpinned_packets_to_a_shared_address() {
    let x = shared_pool4("link return");
    let prog = nat64_daemon::dataplane::RETURN_PROGRAM;
    let hairpinned = udp4(
        (SERVER4, 5000),
        ([198, 51, 100, 200], 61001),
        64,
        7,
        b"back",
    );
    let (action, out) = x.run_program(prog, &hairpinned);
    assert_eq!(action, XDP_TX, "sent back to the far end");
    assert_eq!(out[14 + 8], 63, "one hop taken");
    let h = Ipv4Header::from_slice(&out[14..]).unwrap().0;
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert_eq!(&out[..14], &hairpinned[..14]);
    assert_eq!(&out[14 + 12..], &hairpinned[14 + 12..]);
    // Another destination, and IPv6: up the stack untouched.
    for frame in [
        udp4(
            (SERVER4, 5000),
            ([198, 51, 100, 201], 61001),
            64,
            8,
            b"other",
        ),
        udp6(A, 5000, SERVER6, 53, b"six"),
    ] {
        let (action, out) = x.run_program(prog, &frame);
        assert_eq!(action, XDP_PASS);
        assert_eq!(out, frame);
    }
}

/// The alias of the shared pool4 address in these tests (`stateful.shared_address_alias`; a
/// documentation address rather than the default 240.0.0.64).
const SHARED_ALIAS: [u8; 4] = [203, 0, 113, 64];

/// A dataplane with pool4 198.51.100.200/30 (ports 61001-65535) whose first address is the
/// node's own, as the daemon hands it over (`Dataplane::keep_own_addresses`).
fn shared_pool4(label: &str) -> Loaded {
    shared_pool4_with(label, "")
}

/// [`shared_pool4`] with more top-level settings (`extra`, TOML lines).
fn shared_pool4_with(label: &str, extra: &str) -> Loaded {
    shared_pool4_aliased(
        label,
        extra,
        &std::net::Ipv4Addr::from(SHARED_ALIAS).to_string(),
    )
}

/// [`shared_pool4_with`] with `alias` for `stateful.shared_address_alias`.
fn shared_pool4_aliased(label: &str, extra: &str, alias: &str) -> Loaded {
    let mut x = Loaded::load(
        label,
        &format!(
            "pool6 = \"64:ff9b::/96\"\n{extra}[stateful]\npool4 = \"198.51.100.200/30\"\nports = \"61001-65535\"\n\
             shared_address_alias = \"{alias}\"\n"
        ),
    );
    x.dp.keep_own_addresses(vec![("d0".into(), [198, 51, 100, 200].into())]);
    let cfg = x.cfg.clone();
    x.dp.apply(&cfg).expect("apply");
    x
}

/// Runs `frame` (a new IPv6 flow) and checks that it is refused for `reason` and answered
/// with ICMPv6 Address Unreachable (XDP_TX), and that nothing else is counted.
fn assert_refused(x: &Loaded, frame: &[u8], reason: DropReason) {
    let (action, _, moved) = x.run_counted(frame);
    assert_eq!(action, XDP_TX, "refused, and told with Address Unreachable");
    assert_eq!(
        moved,
        vec![
            (Counter::Dropped(Dir::V6ToV4, reason), 1),
            (Counter::Generated(Generated::AddressUnreachable), 1)
        ]
    );
}

/// Adds a static binding (`[[stateful.static]]`, as the daemon does at start) to `x`'s tables.
fn add_static(
    x: &mut Loaded,
    protocol: nat64_daemon::bindings::Protocol,
    ipv6: std::net::SocketAddrV6,
    ipv4: std::net::SocketAddrV4,
) {
    let st = x.cfg.stateful.clone().unwrap();
    x.dp.bindings()
        .unwrap()
        .add_static(&st.pool4, protocol, ipv6, ipv4)
        .unwrap();
}

/// RFC 7422 deterministic mapping: a client's bindings take ports in its own block of its own
/// pool4 address, as computed from the configuration, and a source outside the clients'
/// prefix gets none (refused as `pool_exhausted`).
#[test]
fn deterministic_mapping_keeps_each_client_in_its_block() {
    // Two clients (the /64s of 2001:db8:6::/63) on one address: 2000-2499 and 2500-2999.
    let x = Loaded::load(
        "stateful deterministic",
        "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"198.51.100.200/32\"\nports = \"2000-2999\"\n[stateful.deterministic]\nclients = \"2001:db8:6::/63\"\n",
    );
    // A and A2 share the /64 2001:db8:6::/64, client 0.
    for (src, port6) in [(A, 40000), (A2, 40002), (A, 40004)] {
        let (action, out, _) = x.run_counted(&udp6(src, port6, SERVER6, 53, b"ok"));
        assert_eq!(action, XDP_PASS);
        let (addr4, port4, _) = src_of(&out);
        assert_eq!(addr4, [198, 51, 100, 200]);
        assert!(
            (2000..2500).contains(&port4),
            "{port4} outside client 0's block"
        );
    }
    // B (2001:db8:7::/64) is not a client.
    assert_refused(
        &x,
        &udp6(B, 40000, SERVER6, 53, b"no"),
        DropReason::PoolExhausted,
    );
}

/// Port blocks (`port_block_size`, RFC 6888 section 5): a /64's bindings take ports in its own
/// blocks of its pool4 address, a new block comes when its blocks have no port of the flow's
/// parity left, up to `per_client_limit` ports' worth of blocks, and another /64 never gets a
/// port in them. The sweeper releases a block once no binding or held-down port is left in
/// it, in two passes, after which another client may get it.
#[test]
fn port_blocks_keep_each_slash_64_in_its_own_blocks() {
    use nat64_common::state::BLOCK_F_RELEASING;
    // 2000-2063 in 8 blocks of 8 ports (4 of each parity); 2 blocks per /64 at most.
    let mut x = Loaded::load(
        "stateful port blocks",
        "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"198.51.100.200/32\"\nports = \"2000-2063\"\nper_client_limit = 16\nport_block_size = 8\nport_hold_down_secs = 0\n",
    );
    let block = |port: u16| (port - 2000) / 8;
    let mut a_blocks = std::collections::BTreeSet::new();
    // Four even ports fill one block's even half (A and A2 share their /64).
    let mut first = Vec::new();
    for (src, port6) in [(A, 40000), (A2, 40002), (A, 40004), (A2, 40006)] {
        let (action, out, _) = x.run_counted(&udp6(src, port6, SERVER6, 53, b"ok"));
        assert_eq!(action, XDP_PASS);
        let (addr4, port4, _) = src_of(&out);
        assert_eq!(addr4, [198, 51, 100, 200]);
        assert_eq!(port4 % 2, 0, "parity kept: {port4}");
        first.push(block(port4));
    }
    assert!(
        first.iter().all(|b| *b == first[0]),
        "one block for the /64's first four even ports: {first:?}"
    );
    a_blocks.insert(first[0]);
    // An odd port still fits in it.
    let (_, out, _) = x.run_counted(&udp6(A, 40001, SERVER6, 53, b"ok"));
    assert_eq!(block(src_of(&out).1), first[0]);
    // A fifth even port takes a second block, and four more fill it.
    for port6 in [40008, 40010, 40012, 40014] {
        let (action, out, _) = x.run_counted(&udp6(A, port6, SERVER6, 53, b"ok"));
        assert_eq!(action, XDP_PASS);
        let b = block(src_of(&out).1);
        assert_ne!(b, first[0], "the first block has no even port left");
        a_blocks.insert(b);
    }
    assert_eq!(a_blocks.len(), 2, "{a_blocks:?}");
    // A third block would exceed per_client_limit's 16 ports: refused (pool exhausted for
    // this /64), while its odd ports still bind.
    assert_refused(
        &x,
        &udp6(A, 40016, SERVER6, 53, b"no"),
        DropReason::PoolExhausted,
    );
    let (_, out, _) = x.run_counted(&udp6(A, 40003, SERVER6, 53, b"ok"));
    assert!(a_blocks.contains(&block(src_of(&out).1)));
    // Another /64 gets blocks of its own.
    let mut b_blocks = std::collections::BTreeSet::new();
    for port6 in [50000, 50002, 50004, 50006, 50008] {
        let (action, out, _) = x.run_counted(&udp6(B, port6, SERVER6, 53, b"ok"));
        assert_eq!(action, XDP_PASS);
        b_blocks.insert(block(src_of(&out).1));
    }
    assert_eq!(b_blocks.len(), 2);
    assert!(a_blocks.is_disjoint(&b_blocks), "{a_blocks:?} {b_blocks:?}");
    // The block table says the same, with each block's ports.
    let st = x.cfg.stateful.clone().unwrap();
    let listed = x.dp.bindings().unwrap().list_blocks();
    assert_eq!(listed.len(), 4, "{listed:?}");
    for (k, o) in &listed {
        assert_eq!((k.addr4, k.proto, o.size), ([198, 51, 100, 200], 17, 8));
        assert_eq!(o.first, 2000 + k.index * 8);
        let mine = if o.client == A[..8] {
            &a_blocks
        } else {
            assert_eq!(o.client, B[..8]);
            &b_blocks
        };
        assert!(mine.contains(&k.index), "{k:?} {o:?}");
    }
    // Everything expires (no hold-down): the first pass marks the blocks, the second releases
    // them, and then a new client may get any of them.
    let later = now_ns() + 360 * 1_000_000_000;
    let swept = x.dp.bindings().unwrap().sweep(&st, later, 1000).unwrap();
    assert_eq!((swept.blocks.udp, swept.blocks_released), (4, 0));
    assert!(
        x.dp.bindings()
            .unwrap()
            .list_blocks()
            .iter()
            .all(|(_, o)| o.flags & BLOCK_F_RELEASING != 0)
    );
    let swept =
        x.dp.bindings()
            .unwrap()
            .sweep(&st, later + 1, 1000)
            .unwrap();
    assert_eq!((swept.blocks.udp, swept.blocks_released), (0, 4));
    assert!(x.dp.bindings().unwrap().list_blocks().is_empty());
    let (action, out, _) = x.run_counted(&udp6(B, 50010, SERVER6, 53, b"ok"));
    assert_eq!(action, XDP_PASS);
    assert!((2000..2064).contains(&src_of(&out).1));
    assert_eq!(x.dp.bindings().unwrap().list_blocks().len(), 1);
}

/// A block in use is never released: the sweeper's first pass marks only blocks with no
/// binding or held-down port left, and a binding made in a marked block keeps it.
#[test]
fn a_port_block_in_use_or_held_down_is_kept() {
    let mut x = Loaded::load(
        "stateful port blocks held",
        "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"198.51.100.200/32\"\nports = \"2000-2063\"\nper_client_limit = 8\nport_block_size = 8\n",
    );
    let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"ok"));
    let port = src_of(&out).1;
    let st = x.cfg.stateful.clone().unwrap();
    // Alive: kept.
    let now = now_ns() + 2_000_000_000;
    for _ in 0..2 {
        let swept = x.dp.bindings().unwrap().sweep(&st, now, 1000).unwrap();
        assert_eq!((swept.blocks.udp, swept.blocks_released), (1, 0));
    }
    // Expired, its port held down for 120 s: the block stays its client's.
    let later = now_ns() + 360 * 1_000_000_000;
    for dt in [0, 60] {
        let swept =
            x.dp.bindings()
                .unwrap()
                .sweep(&st, later + dt * 1_000_000_000, 1000)
                .unwrap();
        assert_eq!(
            (swept.held, swept.blocks.udp, swept.blocks_released),
            (1, 1, 0)
        );
    }
    // Hold-down over: the port goes, then the block in two passes.
    let end = later + 121 * 1_000_000_000;
    let swept = x.dp.bindings().unwrap().sweep(&st, end, 1000).unwrap();
    assert_eq!(swept.released, 1);
    let swept = x.dp.bindings().unwrap().sweep(&st, end + 1, 1000).unwrap();
    assert_eq!(swept.blocks_released, 1);
    // A new flow of the same /64 gets a block again; the released port may be in it.
    let (action, out, _) = x.run_counted(&udp6(A, 40002, SERVER6, 53, b"ok"));
    assert_eq!(action, XDP_PASS);
    assert!((2000..2064).contains(&src_of(&out).1), "{port}");
}

/// What a hostile or stray IPv6 packet may not do: take a pool4 port. A TCP segment other than
/// a SYN with no binding (RFC 6146 section 3.5.2.2, CLOSED: "silently discarded"), a source
/// under pool6 (section 3.5: a hairpinning loop, or a forged IPv4 source: here another
/// client's pool4 address), a destination that no translation may reach (RFC 6052 section
/// 3.1, RFC 7915 section 5.1): each is dropped, counted, and leaves the tables empty.
#[test]
fn stray_and_forged_ipv6_packets_make_no_binding() {
    let x = load("2000-2999");
    let under_pool6 = |a: [u8; 4]| {
        let mut v = SERVER6;
        v[12..].copy_from_slice(&a);
        v
    };
    let from = |src: &str| {
        let src: std::net::Ipv6Addr = src.parse().unwrap();
        udp6(src.octets(), 41004, SERVER6, 53, b"x")
    };
    let cases: [(&str, Vec<u8>, DropReason); 9] = [
        // RFC 4291: sources no router forwards.
        (
            "from multicast",
            from("ff02::1"),
            DropReason::MartianAddress,
        ),
        (
            "from the unspecified address",
            from("::"),
            DropReason::MartianAddress,
        ),
        ("from loopback", from("::1"), DropReason::MartianAddress),
        (
            "from link-local",
            from("fe80::1"),
            DropReason::MartianAddress,
        ),
        (
            "an ACK with no binding",
            tcp6(A, 41000, SERVER6, 443, ACK),
            DropReason::NoBinding,
        ),
        (
            "an RST with no binding",
            tcp6(A, 41001, SERVER6, 443, RST),
            DropReason::NoBinding,
        ),
        (
            "a source under pool6 (a pool4 address)",
            udp6(under_pool6([198, 51, 100, 201]), 2000, SERVER6, 53, b"x"),
            DropReason::SourceUntranslatable,
        ),
        (
            "to loopback under pool6",
            udp6(A, 41002, under_pool6([127, 0, 0, 1]), 53, b"x"),
            DropReason::MartianAddress,
        ),
        (
            "to multicast under pool6",
            udp6(A, 41003, under_pool6([224, 0, 0, 1]), 53, b"x"),
            DropReason::MartianAddress,
        ),
    ];
    for (what, frame, reason) in cases {
        let (action, _, moved) = x.run_counted(&frame);
        assert_eq!(action, XDP_DROP, "{what}");
        assert_eq!(
            moved,
            vec![(Counter::Dropped(Dir::V6ToV4, reason), 1)],
            "{what}"
        );
    }
    let mut x = x;
    {
        let tables = x.dp.bindings().unwrap();
        assert!(tables.list(10).is_empty(), "{:?}", tables.list(10));
        assert!(tables.list_sessions(10).is_empty());
    }
    // A SYN still makes one.
    let (action, _, _) = x.run_counted(&tcp6(A, 41000, SERVER6, 443, SYN));
    assert_eq!(action, XDP_PASS);
    assert_eq!(x.dp.bindings().unwrap().list(10).len(), 1);
}

/// What a corrupt or forged IPv4 packet to a binding may not do: make or refresh a session.
/// RFC 6146 section 3.5 keeps state for what RFC 7915 translates, and these are dropped
/// (header checksum, IHL, total length: what ip_rcv() would drop; a martian source, RFC 1812
/// section 5.3.7), before the binding is looked at.
#[test]
fn corrupt_or_martian_ipv4_packets_touch_no_session() {
    let mut x = load("2000-2999");
    let (action, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"open"));
    assert_eq!(action, XDP_PASS);
    let (addr4, port4, _) = src_of(&out);
    let before = session_times(&mut x);
    assert_eq!(before.len(), 1);
    let from = |src: [u8; 4]| {
        let mut f = udp4((src, 5000), (addr4, port4), 64, 1, b"hostile");
        fix_ipv4_checksum(&mut f);
        f
    };
    let mut bad_sum = from(OTHER4);
    bad_sum[24] ^= 0x55;
    let mut bad_ihl = from(OTHER4);
    bad_ihl[14] = 0x44;
    fix_ipv4_checksum(&mut bad_ihl);
    let mut long = from(OTHER4);
    long[17] += 40;
    fix_ipv4_checksum(&mut long);
    let mut known_bad_sum = from(SERVER4);
    known_bad_sum[24] ^= 0x55;
    // Four bytes of options: IHL 6, the total length and header checksum following.
    let with_options = |src, opts: [u8; 4]| {
        let f = from(src);
        let mut g = [&f[..34], &opts[..], &f[34..]].concat();
        g[14] = 0x46;
        let tot = u16::from_be_bytes([g[16], g[17]]) + 4;
        g[16..18].copy_from_slice(&tot.to_be_bytes());
        fix_ipv4_checksum(&mut g);
        g
    };
    // A total length of 0 means a BIG TCP aggregate longer than 64 KB, never a frame.
    let zero_len = |src| {
        let mut f = from(src);
        f[16..18].copy_from_slice(&[0, 0]);
        fix_ipv4_checksum(&mut f);
        f
    };
    let cases: [(&str, Vec<u8>, DropReason); 11] = [
        (
            "an option running past the header (timestamp, length 40 in 4 bytes)",
            with_options(SERVER4, [0x44, 40, 5, 0]),
            DropReason::BadHeader,
        ),
        (
            "an option of length 1",
            with_options(SERVER4, [0x07, 1, 0, 0]),
            DropReason::BadHeader,
        ),
        (
            "a total length of 0",
            zero_len(OTHER4),
            DropReason::BadHeader,
        ),
        (
            "a total length of 0, from the session's own remote",
            zero_len(SERVER4),
            DropReason::BadHeader,
        ),
        ("a wrong header checksum", bad_sum, DropReason::BadHeader),
        (
            "a wrong header checksum, from the session's own remote",
            known_bad_sum,
            DropReason::BadHeader,
        ),
        ("IHL 4", bad_ihl, DropReason::BadHeader),
        ("a total length past the frame", long, DropReason::Truncated),
        (
            "from loopback",
            from([127, 0, 0, 1]),
            DropReason::MartianAddress,
        ),
        (
            "from multicast",
            from([224, 0, 0, 9]),
            DropReason::MartianAddress,
        ),
        (
            "from the limited broadcast address",
            from([255; 4]),
            DropReason::MartianAddress,
        ),
    ];
    std::thread::sleep(std::time::Duration::from_millis(20));
    for (what, frame, reason) in cases {
        let (action, _, moved) = x.run_counted(&frame);
        assert_eq!(action, XDP_DROP, "{what}");
        assert_eq!(
            moved,
            vec![(Counter::Dropped(Dir::V4ToV6, reason), 1)],
            "{what}"
        );
    }
    assert_eq!(
        session_times(&mut x),
        before,
        "no session made, none refreshed"
    );
}

/// The later IPv6 fragments of a datagram leave from its first fragment's binding address:
/// for a static binding, the operator's address, which need not be the one the client's /64
/// gets for its dynamic bindings (nor is a deterministic one).
#[test]
fn later_ipv6_fragments_follow_a_static_binding() {
    let mut x = load("2000-2999");
    // The address A's dynamic bindings get; the static binding takes another.
    let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"q"));
    let (dynamic, _, _) = src_of(&out);
    let other = [198, 51, 100, if dynamic[3] == 203 { 202 } else { 203 }];
    add_static(
        &mut x,
        nat64_daemon::bindings::Protocol::Udp,
        std::net::SocketAddrV6::new(A.into(), 53, 0, 0),
        std::net::SocketAddrV4::new(other.into(), 53),
    );
    // A 24-byte datagram from [A]:53 in two fragments: UDP header and 8 bytes, then 8 more.
    let fragment = |offset_m: [u8; 2], body: &[u8]| {
        let mut f = Vec::new();
        let mut ext = vec![17, 0, offset_m[0], offset_m[1], 0, 0, 0x43, 0x21];
        ext.extend_from_slice(body);
        PacketBuilder::ethernet2(MACS.0, MACS.1)
            .ipv6(A, SERVER6, 64)
            .write(&mut f, IpNumber(44), &ext)
            .unwrap();
        f
    };
    let mut first_body = vec![0, 53, 0, 53, 0, 24, 0, 0];
    first_body.extend([0xab; 8]);
    let (action, out, moved) = x.run_counted(&fragment([0, 1], &first_body));
    assert_eq!(action, XDP_PASS, "moved {moved:?}");
    assert_eq!(
        &out[26..30],
        &other,
        "the first fragment, from the static binding"
    );
    let (action, out, moved) = x.run_counted(&fragment([0, 16], &[0xcd; 8]));
    assert_eq!(action, XDP_PASS, "moved {moved:?}");
    assert_eq!(
        &out[26..30],
        &other,
        "the later fragment, from the same address"
    );
    assert_eq!(&out[18..20], &[0x43, 0x21], "the same identification");
}

/// A zero-checksum UDP datagram to a binding, refused (`udp_zero_checksum = "drop"`, RFC 7915
/// section 4.5), is answered with ICMPv4 Communication Administratively Prohibited quoting it
/// as its sender sent it: to the pool4 port, never the client's own.
#[test]
fn a_refused_zero_checksum_datagram_is_quoted_with_the_pool4_port() {
    let mut x = Loaded::load(
        "stateful zero checksum",
        "pool6 = \"64:ff9b::/96\"\nudp_zero_checksum = \"drop\"\n[stateful]\npool4 = \"198.51.100.200/30\"\nports = \"2000-2999\"\n",
    );
    // An address to answer from.
    let settings = nat64_daemon::InterfaceSettings {
        addr4: Some([192, 0, 2, 1].into()),
        ..Default::default()
    };
    x.dp.set_interface(1, &settings)
        .expect("interface settings");
    let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"q"));
    let (addr4, port4, _) = src_of(&out);
    let mut input = udp4((SERVER4, 53), (addr4, port4), 60, 9, b"no checksum");
    input[40] = 0;
    input[41] = 0;
    let (action, out, moved) = x.run_counted(&input);
    assert_eq!(action, XDP_TX, "answered; moved {moved:?}");
    assert_eq!(
        (out[34], out[35]),
        (3, 13),
        "Communication Administratively Prohibited"
    );
    assert_eq!(&out[42..62], &input[14..34], "the quoted header, as sent");
    assert_eq!(
        u16::from_be_bytes([out[64], out[65]]),
        port4,
        "the quoted destination port is the pool4 port"
    );
}

/// Under address-dependent filtering, a sender the filter refuses does not keep the binding
/// alive: only what the session lets through refreshes it from the IPv4 side.
#[test]
fn a_filtered_sender_does_not_refresh_the_binding() {
    let mut x = Loaded::load(
        "stateful adf refresh",
        "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"198.51.100.200/30\"\nports = \"2000-2999\"\nfiltering = \"address-dependent\"\n",
    );
    let (_, out, _) = x.run_counted(&udp6(A, 40000, SERVER6, 53, b"q"));
    let (addr4, port4, _) = src_of(&out);
    let last4 = |x: &mut Loaded| {
        let all = x.dp.bindings().unwrap().list(10);
        assert_eq!(all.len(), 1, "{all:?}");
        all[0].v4.expect("both halves").last_ns
    };
    let before = last4(&mut x);
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert_dropped4(
        &x,
        &udp4((OTHER4, 53), (addr4, port4), 60, 3, b"no"),
        DropReason::Filtered,
        "dropped",
    );
    assert_eq!(last4(&mut x), before, "refreshed by a refused sender");
    let (action, _, _) = x.run_counted(&udp4((SERVER4, 53), (addr4, port4), 60, 4, b"ok"));
    assert_eq!(action, XDP_PASS);
    assert!(last4(&mut x) > before, "refreshed by the server's answer");
}

/// After tables are carried into new ones of another size (a restart with other sizes), a
/// binding half whose other half is missing goes (`Tables::remove_orphans`): an IPv4 half
/// alone would hold its port for ever and let IPv4 hosts through to the client.
#[test]
fn binding_halves_without_their_other_half_are_removed() {
    let mut x = load("2000-2999");
    for port in [40000, 40002, 40004] {
        let (action, _, _) = x.run_counted(&udp6(A, port, SERVER6, 53, b"q"));
        assert_eq!(action, XDP_PASS);
    }
    let mut t = x.dp.bindings().unwrap();
    let all = t.list(10);
    assert_eq!(all.len(), 3);
    // One loses its IPv6 half, another its IPv4 half.
    t.bib6.remove(&all[0].key6).unwrap();
    let k4 = nat64_common::state::Bib4Key {
        addr4: all[1].v6.addr4,
        port4: all[1].v6.port4,
        proto: all[1].key6.proto,
        _pad: 0,
    };
    t.bib4.remove(&k4).unwrap();
    assert_eq!(t.remove_orphans(), 2);
    let left = t.list(10);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].key6, all[2].key6);
    assert!(left[0].v4.is_some());
    assert_eq!(t.bib4.iter().count(), 1, "no IPv4 half left alone");
}

/// Frames to a link-layer broadcast or multicast address are not for a router to forward
/// (RFC 1812 section 5.3.4; the kernel's `ip_forward` drops them): left to the kernel
/// untouched at both hooks, they touch no state and move no counter. Translated, they would
/// make bindings for flows addressed elsewhere, one copy per node of the segment.
#[test]
fn frames_not_addressed_to_the_translator_make_no_state() {
    let mut x = load("2000-2999");
    let payload = b"not for this router";
    let query = udp6(A, 40000, SERVER6, 53, payload);
    let group_addresses: [[u8; 6]; 3] = [
        [0xff; 6],                   // broadcast
        [0x33, 0x33, 0, 0, 0, 1],    // IPv6 multicast (all nodes)
        [0x01, 0x00, 0x5e, 0, 0, 1], // IPv4 multicast (all hosts)
    ];
    let readdressed = |frame: &[u8], to: [u8; 6]| {
        let mut f = frame.to_vec();
        f[..6].copy_from_slice(&to);
        f
    };
    let untouched = |x: &Loaded, f: &[u8], at_tc: bool, what: &str| {
        let before = x.stats();
        let (action, out) = if at_tc { x.run_tc(f, 0) } else { x.run(f) };
        assert_eq!(action, XDP_PASS, "{what}");
        assert_eq!(out, f, "{what}: untouched");
        assert_eq!(counter_delta(&before, &x.stats()), vec![], "{what}");
    };
    for to in group_addresses {
        let f = readdressed(&query, to);
        untouched(&x, &f, false, &format!("XDP, a query to {to:02x?}"));
        untouched(&x, &f, true, &format!("TC, a query to {to:02x?}"));
    }
    assert!(session_times(&mut x).is_empty(), "no binding made");

    // Addressed to the translator, the same query makes its binding; the answer, sent to a
    // group address, still touches nothing.
    let (action, out) = x.run(&query);
    assert_eq!(action, XDP_PASS);
    let (addr4, port4, _) = src_of(&out);
    assert!(in_pool4(addr4), "translated: {out:02x?}");
    let sessions = session_times(&mut x);
    assert_eq!(sessions.len(), 1);
    let answer = udp4((SERVER4, 53), (addr4, port4), 60, 7, b"answer");
    for to in group_addresses {
        let f = readdressed(&answer, to);
        untouched(&x, &f, false, &format!("XDP, the answer to {to:02x?}"));
        untouched(&x, &f, true, &format!("TC, the answer to {to:02x?}"));
    }
    assert_eq!(
        session_times(&mut x),
        sessions,
        "the session was not refreshed"
    );
    // A unicast frame is translated whatever its MAC address: under BPF_PROG_TEST_RUN the
    // kernel classifies this one against loopback's address (all zeros) as another host's
    // (`PACKET_OTHERHOST`), as it does at a bridge port for frames to the bridge, this node.
    let (action, out) = x.run_tc(&answer, 0);
    assert_eq!(action, XDP_PASS);
    assert_eq!(u16::from_be_bytes([out[12], out[13]]), 0x86dd, "translated");
}
