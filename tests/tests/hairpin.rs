//! EAM hairpinning (RFC 7757 section 4) through the loaded program: an IPv6 host writing to
//! another IPv6 host's IPv4 alias under pool6 is sent straight back to IPv6, to the real
//! address, from its own IPv4 alias under pool6, so that the reply takes the same way and
//! comes from the address the sender wrote to. Expected frames are built whole by etherparse
//! for the new addresses, checksums computed from scratch.

use etherparse::PacketBuilder;
use nat64_common::{Counter, Dir, DropReason, L4Proto};
use nat64_tests::{
    fixtures::{MAC_DST, MAC_SRC, base_config},
    xdp::{Loaded, XDP_DROP, XDP_PASS, XDP_TX},
};

const A: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x02,
];
const B: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x05,
];
/// 64:ff9b::198.51.100.2 and 64:ff9b::198.51.100.5: A and B as IPv4 hosts under pool6.
const A_ALIAS: [u8; 16] = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 198, 51, 100, 2];
const B_ALIAS: [u8; 16] = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 198, 51, 100, 5];
const MACS: ([u8; 6], [u8; 6]) = (MAC_SRC, MAC_DST);

fn load() -> Loaded {
    Loaded::load("hairpin", &base_config())
}

fn udp(src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(src, dst, 63)
        .udp(40000, 7201);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn tcp(src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(src, dst, 63)
        .tcp(40001, 443, 0x1000_0000, 64240)
        .ack(7)
        .psh();
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn echo(src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(src, dst, 63)
        .icmpv6_echo_request(9, 1);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

#[test]
fn a_conversation_through_ipv4_aliases_hairpins_both_ways() {
    let x = load();
    let payload: Vec<u8> = (0..61u8).collect();
    type Build = fn([u8; 16], [u8; 16], &[u8]) -> Vec<u8>;
    let cases: [(&str, Build, L4Proto); 3] = [
        ("UDP", udp, L4Proto::Udp),
        ("TCP", tcp, L4Proto::Tcp),
        ("echo", echo, L4Proto::Icmp),
    ];
    for (name, build, proto) in cases {
        // A writes to B's alias: B gets it from A's alias.
        let (action, out, moved) = x.run_counted(&build(A, B_ALIAS, &payload));
        assert_eq!(action, XDP_PASS, "{name}");
        let expected = build(A_ALIAS, B, &payload);
        assert_eq!(
            out, expected,
            "{name}: A -> B\n got {out:02x?}\nwant {expected:02x?}"
        );
        let len = (expected.len() - 14) as u64;
        assert_eq!(
            moved,
            vec![
                (Counter::Packets(Dir::V6ToV4, proto), 1),
                (Counter::Bytes(Dir::V6ToV4), len)
            ],
            "{name}"
        );
        // B answers A's alias: A gets it from B's alias, the address it wrote to.
        let (action, out, _) = x.run_counted(&build(B, A_ALIAS, &payload));
        assert_eq!(action, XDP_PASS, "{name}");
        assert_eq!(out, build(B_ALIAS, A, &payload), "{name}: B -> A");
    }
}

/// An ICMPv6 error about a hairpinned flow (RFC 7757 section 4): a router by A (here A
/// itself) answers a packet that reached A from B's alias, and the error goes to B's alias.
/// It is translated to IPv4 and back (`again_4to6`): B gets it from A's alias, quoting the
/// packet as B sent it (to A's alias), so that B's stack finds the flow it belongs to.
#[test]
fn an_error_about_a_hairpinned_flow_hairpins_too() {
    let x = load();
    let error = |src, dst, quote: &[u8]| {
        let b = PacketBuilder::ethernet2(MACS.0, MACS.1)
            .ipv6(src, dst, 63)
            .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
                etherparse::icmpv6::DestUnreachableCode::Port,
            ));
        let mut v = Vec::new();
        b.write(&mut v, quote).unwrap();
        v
    };
    let payload: Vec<u8> = (0..29u8).collect();
    let sent = error(A, B_ALIAS, &udp(B_ALIAS, A, &payload)[14..]);
    let (action, out, moved) = x.run_counted(&sent);
    assert_eq!(action, XDP_PASS, "{moved:?}");
    let expected = error(A_ALIAS, B, &udp(B, A_ALIAS, &payload)[14..]);
    assert_eq!(out, expected, "\n got {out:02x?}\nwant {expected:02x?}");
    // Translated twice: once each way.
    let len4 = (expected.len() - 14 - 40) as u64;
    let len6 = (expected.len() - 14) as u64;
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V6ToV4, L4Proto::Icmp), 1),
            (Counter::Packets(Dir::V4ToV6, L4Proto::Icmp), 1),
            (Counter::Bytes(Dir::V6ToV4), len4),
            (Counter::Bytes(Dir::V4ToV6), len6),
        ]
    );
    // The same through the translator link (`nat64_link`): translated the same way, both
    // halves with the link's configuration (the second half's slot is the link's hairpin
    // slot), and sent back into the link (MAC addresses swapped) with the hop the kernel took
    // on the way in given back.
    let (action, out) = x.run_program(nat64_daemon::dataplane::LINK_PROGRAM, &sent);
    assert_eq!(action, XDP_TX, "through the link");
    let mut on_link = expected.clone();
    on_link[..6].copy_from_slice(&MACS.0);
    on_link[6..12].copy_from_slice(&MACS.1);
    on_link[14 + 7] = 64;
    assert_eq!(out, on_link, "\n got {out:02x?}\nwant {on_link:02x?}");
    // An error from the IPv4 side right after is translated as one from IPv4: the hairpin
    // mark did not outlive the packet. From a router at 203.0.113.1 to B's IPv4 address,
    // quoting B's packet to A's IPv4 address: the quoted destination maps through EAM (A),
    // not under pool6 (A's alias).
    let b = PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv4([203, 0, 113, 1], [198, 51, 100, 5], 63)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ));
    let quoted = {
        let q = PacketBuilder::ipv4([198, 51, 100, 5], [198, 51, 100, 2], 63).udp(40000, 7201);
        let mut v = Vec::new();
        q.write(&mut v, &payload).unwrap();
        v
    };
    let mut from4 = Vec::new();
    b.write(&mut from4, &quoted).unwrap();
    let (action, out, _) = x.run_counted(&from4);
    assert_eq!(action, XDP_PASS);
    let router = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 203, 0, 113, 1];
    let addrs = |at: usize| (&out[at + 8..at + 24], &out[at + 24..at + 40]);
    assert_eq!(addrs(14), (&router[..], &B[..]), "{out:02x?}");
    assert_eq!(addrs(14 + 48), (&B[..], &A[..]), "{out:02x?}");
}

#[test]
fn hairpinned_fragments_are_refused_for_now() {
    let x = load();
    // A first fragment to B's alias.
    let mut f = udp(A, B_ALIAS, &[0u8; 40]);
    let frag = [17u8, 0, 0, 1, 0, 0, 0, 7]; // next header UDP, offset 0, M set, id 7
    f.splice(54..54, frag);
    f[20] = 44; // next header: Fragment
    let plen = u16::from_be_bytes([f[18], f[19]]) + 8;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    let (action, _, moved) = x.run_counted(&f);
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        moved,
        vec![(Counter::Dropped(Dir::V6ToV4, DropReason::Fragment), 1)]
    );
}
