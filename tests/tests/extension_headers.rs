//! IPv6 extension headers and fragments through the loaded XDP program (BPF_PROG_TEST_RUN):
//! hop-by-hop, destination options and routing headers with no segments left are skipped (RFC
//! 7915 section 5.1), a routing header with segments left is discarded, IPv4 fragments and the
//! IPv6 Fragment header translate into each other (sections 4.1 and 5.1.1), an atomic fragment
//! is translated as an unfragmented packet (RFC 8021), and only a first fragment has its
//! transport checksum updated, for the whole datagram's pseudo-header.
//!
//! Expected frames are built here with etherparse: the datagram is built whole for each family
//! (so etherparse computes each UDP checksum from scratch over all of it) and then cut into the
//! fragment under test.
//!
//! Why one file of this size: every file in `tests/tests` is its own test binary, linked against
//! aya and the daemon; the suite is one table of fragment and extension-header cases over one
//! loaded program.

use etherparse::{IpFragOffset, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, UdpHeader};
use nat64_common::{Counter, Dir, DropReason, L4Proto};
use nat64_tests::{
    fixtures::{self, base_config},
    xdp::{Loaded, XDP_DROP, XDP_PASS},
};

/// The lab's client and server (see `nat64_tests::fixtures`), as etherparse takes them.
const CLIENT6: [u8; 16] = fixtures::CLIENT6.octets();
const CLIENT4: [u8; 4] = fixtures::CLIENT4.octets();
const SERVER6: [u8; 16] = fixtures::SERVER6.octets();
const SERVER4: [u8; 4] = fixtures::SERVER4.octets();
const ETH6: [u8; 14] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
const ETH4: [u8; 14] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];

fn dataplane() -> Loaded {
    Loaded::load("extension headers", &base_config())
}

/// Runs one frame; returns the action, the output frame and the counters that moved.
fn run(x: &Loaded, frame: &[u8]) -> (u32, Vec<u8>, Vec<(Counter, u64)>) {
    x.run_counted(frame)
}

/// An IPv6 Fragment header, laid out by hand from RFC 8200 section 4.5: next header,
/// reserved, then a 16-bit word with the offset (8-byte units) in its top 13 bits, two reserved
/// bits and M as the lowest bit, then the identification. (etherparse 0.16's
/// `Ipv6FragmentHeader` puts M at bit 7 of the fourth byte, so it is not used here; the Linux
/// kernel, like the RFC, writes `htons(offset_bytes | IP6_MF)` with `IP6_MF` = 1.)
fn frag_header(next: IpNumber, offset: u16, more: bool, id: u32) -> [u8; 8] {
    let [o0, o1] = ((offset << 3) | more as u16).to_be_bytes();
    let i = id.to_be_bytes();
    [next.0, 0, o0, o1, i[0], i[1], i[2], i[3]]
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

/// A UDP datagram (header + payload) with its checksum computed for IPv4 addresses.
fn udp4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let ip = Ipv4Header::new(0, 64, IpNumber::UDP, src, dst).expect("ipv4");
    let udp = UdpHeader::with_ipv4_checksum(4000, 5000, &ip, payload).expect("udp");
    [udp.to_bytes().to_vec(), payload.to_vec()].concat()
}

/// The same datagram with its checksum computed for IPv6 addresses.
fn udp6(src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let ip = ipv6(src, dst, 0, IpNumber::UDP, 64);
    let udp = UdpHeader::with_ipv6_checksum(4000, 5000, &ip, payload).expect("udp");
    [udp.to_bytes().to_vec(), payload.to_vec()].concat()
}

fn ipv6(src: [u8; 16], dst: [u8; 16], payload_len: u16, nh: IpNumber, hop: u8) -> Ipv6Header {
    Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: payload_len,
        next_header: nh,
        hop_limit: hop,
        source: src,
        destination: dst,
    }
}

/// An IPv4 fragment: `data` at `offset` (8-byte units) of datagram `id`.
fn frag4(
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    offset: u16,
    more: bool,
    proto: IpNumber,
    data: &[u8],
) -> Vec<u8> {
    let mut h = Ipv4Header::new(data.len() as u16, 64, proto, src, dst).expect("ipv4");
    h.identification = id;
    h.dont_fragment = false;
    h.more_fragments = more;
    h.fragment_offset = IpFragOffset::try_new(offset).expect("offset");
    h.header_checksum = h.calc_header_checksum();
    [ETH4.to_vec(), h.to_bytes().to_vec(), data.to_vec()].concat()
}

/// An IPv6 packet with a Fragment header: `data` at `offset` of datagram `id`.
fn frag6(
    src: [u8; 16],
    dst: [u8; 16],
    id: u32,
    offset: u16,
    more: bool,
    proto: IpNumber,
    data: &[u8],
) -> Vec<u8> {
    let f = frag_header(proto, offset, more, id);
    let ip = ipv6(
        src,
        dst,
        (8 + data.len()) as u16,
        IpNumber::IPV6_FRAGMENTATION_HEADER,
        64,
    );
    [
        ETH6.to_vec(),
        ip.to_bytes().to_vec(),
        f.to_vec(),
        data.to_vec(),
    ]
    .concat()
}

fn assert_frame(name: &str, got: &[u8], expected: &[u8]) {
    if got != expected {
        let first = got
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        panic!(
            "{name}: output differs from the expected frame at byte {first} (got {} bytes, expected {})\n got: {:02x?}\nwant: {:02x?}",
            got.len(),
            expected.len(),
            &got[first..got.len().min(first + 24)],
            &expected[first..expected.len().min(first + 24)],
        );
    }
}

#[test]
fn ipv4_fragments_gain_a_fragment_header() {
    let dp = dataplane();
    let payload = pattern(2000);
    let whole4 = udp4(SERVER4, CLIENT4, &payload);
    let whole6 = udp6(SERVER6, CLIENT6, &payload);
    // First fragment: 1232 bytes of the datagram (UDP header included), MF set: 1280 bytes of
    // IPv6 with its 48 bytes of headers, the default IPv6 MTU (RFC 7915 section 4).
    let (action, out, moved) = run(
        &dp,
        &frag4(
            SERVER4,
            CLIENT4,
            0x1234,
            0,
            true,
            IpNumber::UDP,
            &whole4[..1232],
        ),
    );
    let f = frag_header(IpNumber::UDP, 0, true, 0x1234);
    let ip = ipv6(
        SERVER6,
        CLIENT6,
        8 + 1232,
        IpNumber::IPV6_FRAGMENTATION_HEADER,
        64,
    );
    // The UDP checksum becomes that of the whole datagram for IPv6 (RFC 7915 section 4.5).
    let expected = [
        ETH6.to_vec(),
        ip.to_bytes().to_vec(),
        f.to_vec(),
        whole6[..1232].to_vec(),
    ]
    .concat();
    assert_eq!(action, XDP_PASS);
    assert_frame("first fragment", &out, &expected);
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V4ToV6, L4Proto::Udp), 1),
            (Counter::Bytes(Dir::V4ToV6), 40 + 8 + 1232)
        ]
    );

    // Last fragment: offset 154 (1232 bytes), no transport header, MF clear.
    let rest = &whole4[1232..];
    let (action, out, moved) = run(
        &dp,
        &frag4(SERVER4, CLIENT4, 0x1234, 154, false, IpNumber::UDP, rest),
    );
    let f = frag_header(IpNumber::UDP, 154, false, 0x1234);
    let ip = ipv6(
        SERVER6,
        CLIENT6,
        (8 + rest.len()) as u16,
        IpNumber::IPV6_FRAGMENTATION_HEADER,
        64,
    );
    let expected = [
        ETH6.to_vec(),
        ip.to_bytes().to_vec(),
        f.to_vec(),
        rest.to_vec(),
    ]
    .concat();
    assert_eq!(action, XDP_PASS);
    assert_frame("last fragment", &out, &expected);
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V4ToV6, L4Proto::Udp), 1),
            (Counter::Bytes(Dir::V4ToV6), (48 + rest.len()) as u64)
        ]
    );
}

#[test]
fn ipv6_fragments_become_ipv4_fragments() {
    let dp = dataplane();
    let payload = pattern(2000);
    let whole6 = udp6(CLIENT6, SERVER6, &payload);
    let whole4 = udp4(CLIENT4, SERVER4, &payload);
    // First fragment: 1448 bytes (a multiple of 8), M set, 32-bit identification.
    let (action, out, moved) = run(
        &dp,
        &frag6(
            CLIENT6,
            SERVER6,
            0xdead_beef,
            0,
            true,
            IpNumber::UDP,
            &whole6[..1448],
        ),
    );
    // IPv4: MF, offset 0, the low 16 bits of the identification, DF clear (RFC 7915 5.1.1).
    let mut h = Ipv4Header::new(1448, 64, IpNumber::UDP, CLIENT4, SERVER4).unwrap();
    h.identification = 0xbeef;
    h.dont_fragment = false;
    h.more_fragments = true;
    h.header_checksum = h.calc_header_checksum();
    let expected = [
        ETH4.to_vec(),
        h.to_bytes().to_vec(),
        whole4[..1448].to_vec(),
    ]
    .concat();
    assert_eq!(action, XDP_PASS);
    assert_frame("first fragment", &out, &expected);
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V6ToV4, L4Proto::Udp), 1),
            (Counter::Bytes(Dir::V6ToV4), 20 + 1448)
        ]
    );

    // A later fragment: offset 181 (1448 bytes), M clear: header only, data untouched.
    let rest = &whole6[1448..];
    let (action, out, _) = run(
        &dp,
        &frag6(
            CLIENT6,
            SERVER6,
            0xdead_beef,
            181,
            false,
            IpNumber::UDP,
            rest,
        ),
    );
    let mut h = Ipv4Header::new(rest.len() as u16, 64, IpNumber::UDP, CLIENT4, SERVER4).unwrap();
    h.identification = 0xbeef;
    h.dont_fragment = false;
    h.fragment_offset = IpFragOffset::try_new(181).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let expected = [ETH4.to_vec(), h.to_bytes().to_vec(), rest.to_vec()].concat();
    assert_eq!(action, XDP_PASS);
    assert_frame("later fragment", &out, &expected);
}

#[test]
fn an_atomic_fragment_is_translated_as_a_whole_packet() {
    let dp = dataplane();
    let payload = pattern(100);
    let datagram = udp6(CLIENT6, SERVER6, &payload);
    let (action, out, moved) = run(
        &dp,
        &frag6(
            CLIENT6,
            SERVER6,
            0x8765_4321,
            0,
            false,
            IpNumber::UDP,
            &datagram,
        ),
    );
    assert_eq!(action, XDP_PASS);
    // RFC 8021: no fragment fields; RFC 7915 section 5.1.1: DF clear and the Identification
    // from the Fragment header's low 16 bits, an atomic fragment's too.
    let mut h =
        Ipv4Header::new(datagram.len() as u16, 64, IpNumber::UDP, CLIENT4, SERVER4).unwrap();
    h.dont_fragment = false;
    h.identification = 0x4321;
    h.header_checksum = h.calc_header_checksum();
    let expected = [
        ETH4.to_vec(),
        h.to_bytes().to_vec(),
        udp4(CLIENT4, SERVER4, &payload),
    ]
    .concat();
    assert_frame("atomic fragment", &out, &expected);
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V6ToV4, L4Proto::Udp), 1),
            (Counter::Bytes(Dir::V6ToV4), (20 + datagram.len()) as u64)
        ]
    );
}

#[test]
fn fragmented_icmp_is_refused_in_both_directions() {
    let dp = dataplane();
    let echo = [8u8, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8];
    let (action, _, moved) = run(
        &dp,
        &frag4(SERVER4, CLIENT4, 9, 0, true, IpNumber::ICMP, &echo),
    );
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        moved,
        vec![(Counter::Dropped(Dir::V4ToV6, DropReason::Fragment), 1)]
    );
    let echo6 = [128u8, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8];
    let (action, _, moved) = run(
        &dp,
        &frag6(CLIENT6, SERVER6, 9, 0, true, IpNumber::IPV6_ICMP, &echo6),
    );
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        moved,
        vec![(Counter::Dropped(Dir::V6ToV4, DropReason::Fragment), 1)]
    );
}

/// An IPv6 packet whose payload is `exts` (each: header bytes with its next-header byte set)
/// followed by `data`; `first` is the IPv6 Next Header.
fn with_exts(first: u8, exts: &[Vec<u8>], data: &[u8]) -> Vec<u8> {
    let body: Vec<u8> = exts
        .iter()
        .flatten()
        .copied()
        .chain(data.iter().copied())
        .collect();
    let ip = ipv6(CLIENT6, SERVER6, body.len() as u16, IpNumber(first), 64);
    [ETH6.to_vec(), ip.to_bytes().to_vec(), body].concat()
}

/// An options header (hop-by-hop or destination options) of `len8` 8-byte units: next header,
/// length, then PadN filling the rest.
fn options(next: u8, len8: u8) -> Vec<u8> {
    let total = (len8 as usize + 1) * 8;
    let mut h = vec![next, len8, 1, (total - 4) as u8];
    h.resize(total, 0);
    h
}

/// A type 0-style routing header with `segments_left` and one address (24 bytes).
fn routing(next: u8, segments_left: u8) -> Vec<u8> {
    let mut h = vec![next, 2, 0, segments_left, 0, 0, 0, 0];
    h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h
}

#[test]
fn skipped_extension_headers_leave_a_plain_ipv4_packet() {
    let dp = dataplane();
    let payload = pattern(200);
    let datagram = udp6(CLIENT6, SERVER6, &payload);
    let mut h =
        Ipv4Header::new(datagram.len() as u16, 64, IpNumber::UDP, CLIENT4, SERVER4).unwrap();
    h.dont_fragment = false;
    let cases: [(&str, u8, Vec<Vec<u8>>); 4] = [
        ("hop-by-hop", 0, vec![options(17, 0)]),
        ("destination options (16 bytes)", 60, vec![options(17, 1)]),
        ("routing, no segments left", 43, vec![routing(17, 0)]),
        (
            "hop-by-hop, destination options, routing",
            0,
            vec![options(60, 0), options(43, 0), routing(17, 0)],
        ),
    ];
    for (name, first, exts) in cases {
        let (action, out, moved) = run(&dp, &with_exts(first, &exts, &datagram));
        assert_eq!(action, XDP_PASS, "{name}");
        h.identification = u16::from_be_bytes([out[18], out[19]]);
        h.header_checksum = h.calc_header_checksum();
        let expected = [
            ETH4.to_vec(),
            h.to_bytes().to_vec(),
            udp4(CLIENT4, SERVER4, &payload),
        ]
        .concat();
        assert_frame(name, &out, &expected);
        assert_eq!(
            moved,
            vec![
                (Counter::Packets(Dir::V6ToV4, L4Proto::Udp), 1),
                (Counter::Bytes(Dir::V6ToV4), (20 + datagram.len()) as u64)
            ],
            "{name}"
        );
    }
}

#[test]
fn extension_headers_that_cannot_be_skipped_are_refused() {
    let dp = dataplane();
    let datagram = udp6(CLIENT6, SERVER6, &pattern(40));
    let cases: [(&str, u8, Vec<Vec<u8>>, DropReason); 2] = [
        // Five headers: more than the dataplane walks.
        (
            "a chain of five",
            0,
            vec![
                options(60, 0),
                options(60, 0),
                options(60, 0),
                options(60, 0),
                options(17, 0),
            ],
            DropReason::ExtensionHeader,
        ),
        // AH authenticates the addresses that translation changes.
        (
            "authentication header",
            51,
            vec![vec![17, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]],
            DropReason::ExtensionHeader,
        ),
    ];
    for (name, first, exts, reason) in cases {
        let (action, _, moved) = run(&dp, &with_exts(first, &exts, &datagram));
        assert_eq!(action, XDP_DROP, "{name}");
        assert_eq!(
            moved,
            vec![(Counter::Dropped(Dir::V6ToV4, reason), 1)],
            "{name}"
        );
    }
}

/// A namespace where the node holds 2001:db8:6::1 on the interface its route toward the client
/// leaves by (the source of the errors it answers itself), with IPv6 forwarding on (the
/// kernel's FIB lookup for a received packet needs it, as on a node); and that address.
fn node_ns(name: &str) -> (nat64_tests::netns::Netns, [u8; 16]) {
    let ns = nat64_tests::netns::Netns::new(name);
    ns.ip(&["link", "add", "r0", "type", "veth", "peer", "name", "r1"]);
    ns.ip(&["addr", "add", "2001:db8:6::1/64", "dev", "r0", "nodad"]);
    ns.ip(&["link", "set", "r0", "up"]);
    ns.ip(&["link", "set", "r1", "up"]);
    ns.sysctl("net.ipv6.conf.all.forwarding", "1");
    let node6 = "2001:db8:6::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    (ns, node6)
}

/// The ICMPv6 error of type `ty` the node (`node6`) sends back to the client for the frame
/// `input`, quoting all of it (it is short), out of the interface it came in on.
fn node_error(node6: [u8; 16], ty: etherparse::Icmpv6Type, input: &[u8]) -> Vec<u8> {
    let quote = &input[14..];
    let icmp = etherparse::Icmpv6Header::with_checksum(ty, node6, CLIENT6, quote).unwrap();
    let ip = ipv6(
        node6,
        CLIENT6,
        (8 + quote.len()) as u16,
        IpNumber::IPV6_ICMP,
        64,
    );
    let eth = [&ETH6[6..12], &ETH6[0..6], &ETH6[12..]].concat();
    [
        eth,
        ip.to_bytes().to_vec(),
        icmp.to_bytes().to_vec(),
        quote.to_vec(),
    ]
    .concat()
}

/// RFC 8200 section 4.1: only the upper-layer header follows a Fragment header, and there is
/// at most one. A packet with an extension header after it, or a second one, is not translated
/// (RFC 7915 section 5.1 has no rule for it) and is answered as section 5.4 says: ICMPv6
/// Destination Unreachable, Communication Administratively Prohibited (1/1), quoting it, from
/// the node's own address toward the sender (as Jool answers, its graybox `ac` cases).
#[test]
fn headers_after_the_fragment_header_are_answered_with_admin_prohibited() {
    let dp = dataplane();
    let (ns, node6) = node_ns("after-fragment");
    let datagram = udp6(CLIENT6, SERVER6, &pattern(40));
    let (hop, dst, rt, frag) = (0u8, 60u8, 43u8, 44u8);
    let f = |next: u8| frag_header(IpNumber(next), 0, true, 0x0102_0304).to_vec();
    let cases: [(&str, u8, Vec<Vec<u8>>); 5] = [
        ("hop-by-hop after it", frag, vec![f(hop), options(17, 0)]),
        (
            "destination options after it",
            frag,
            vec![f(dst), options(17, 0)],
        ),
        ("routing after it", frag, vec![f(rt), routing(17, 0)]),
        ("a second Fragment header", frag, vec![f(frag), f(17)]),
        (
            "hop-by-hop, Fragment, destination options",
            hop,
            vec![options(frag, 0), f(dst), options(17, 0)],
        ),
    ];
    for (name, first, exts) in cases {
        let input = with_exts(first, &exts, &datagram);
        let (action, out, moved) = ns.run(|| run(&dp, &input));
        assert_eq!(action, nat64_tests::xdp::XDP_TX, "{name}");
        // RFC 4443 section 3.1, the whole packet quoted (it is short), back where it came from.
        let expected = node_error(
            node6,
            etherparse::Icmpv6Type::DestinationUnreachable(
                etherparse::icmpv6::DestUnreachableCode::Prohibited,
            ),
            &input,
        );
        assert_frame(name, &out, &expected);
        assert_eq!(
            moved,
            vec![
                (Counter::Dropped(Dir::V6ToV4, DropReason::BadFragment), 1),
                (
                    Counter::Generated(nat64_common::Generated::AdminProhibited),
                    1
                )
            ],
            "{name}"
        );
    }
}

/// RFC 7915 section 5.1: a packet with a Routing header whose Segments Left is not zero "MUST
/// NOT be translated, and an ICMPv6 'parameter problem/erroneous header field encountered'
/// (Type 4, Code 0) error message, with the Pointer field indicating the first byte of the
/// Segments Left field, SHOULD be returned to the sender" (Jool does). It quotes the packet
/// and comes from the node's own address toward the sender.
#[test]
fn a_routing_header_with_segments_left_is_answered_with_parameter_problem() {
    let dp = dataplane();
    let (ns, node6) = node_ns("segments-left");
    let datagram = udp6(CLIENT6, SERVER6, &pattern(40));
    // The pointer: Segments Left is the fourth byte of the Routing header.
    let cases: [(&str, u8, Vec<Vec<u8>>, u32); 2] = [
        ("routing header first", 43, vec![routing(17, 1)], 40 + 3),
        (
            "after hop-by-hop options",
            0,
            vec![options(43, 0), routing(17, 2)],
            48 + 3,
        ),
    ];
    for (name, first, exts, pointer) in cases {
        let input = with_exts(first, &exts, &datagram);
        let (action, out, moved) = ns.run(|| run(&dp, &input));
        assert_eq!(action, nat64_tests::xdp::XDP_TX, "{name}");
        let expected = node_error(
            node6,
            etherparse::Icmpv6Type::ParameterProblem(etherparse::icmpv6::ParameterProblemHeader {
                code: etherparse::icmpv6::ParameterProblemCode::ErroneousHeaderField,
                pointer,
            }),
            &input,
        );
        assert_frame(name, &out, &expected);
        assert_eq!(
            moved,
            vec![
                (Counter::Dropped(Dir::V6ToV4, DropReason::SourceRoute), 1),
                (
                    Counter::Generated(nat64_common::Generated::ParameterProblem),
                    1
                )
            ],
            "{name}"
        );
    }
    // RFC 4443 section 2.4(e.1): an ICMPv6 error behind the Routing header is not answered,
    // only dropped and counted.
    let mut error = vec![1u8, 4, 0, 0, 0, 0, 0, 0];
    error.extend(&datagram);
    let input = with_exts(43, &[routing(58, 1)], &error);
    let (action, _, moved) = ns.run(|| run(&dp, &input));
    assert_eq!(action, XDP_DROP, "an ICMPv6 error");
    assert_eq!(
        moved,
        vec![(Counter::Dropped(Dir::V6ToV4, DropReason::SourceRoute), 1)],
        "an ICMPv6 error"
    );
}

/// A fragment with more to come whose length is not a multiple of 8 is translated as it is, as
/// a router forwards it: RFC 8200 section 4.5's rule is the reassembling destination's (Linux
/// there rounds such a fragment down), and RFC 7915 has none. Jool's corpus expects the same
/// (graybox `abt3`, `cjt1`).
#[test]
fn a_fragment_with_more_to_come_and_an_odd_length_is_translated() {
    let dp = dataplane();
    // The first 44 bytes of a datagram, its checksum for the whole (updated for the
    // pseudo-header like any first fragment's).
    let data = &udp6(CLIENT6, SERVER6, &pattern(200))[..44];
    let (action, out, moved) = run(
        &dp,
        &frag6(CLIENT6, SERVER6, 0x0102_0304, 0, true, IpNumber::UDP, data),
    );
    assert_eq!(action, XDP_PASS);
    let data4 = &udp4(CLIENT4, SERVER4, &pattern(200))[..44];
    let expected = frag4(CLIENT4, SERVER4, 0x0304, 0, true, IpNumber::UDP, data4);
    assert_frame("odd-length fragment", &out, &expected);
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V6ToV4, L4Proto::Udp), 1),
            (Counter::Bytes(Dir::V6ToV4), (20 + data.len()) as u64)
        ]
    );
}

/// An ICMPv6 error (`ty`, `code`, `rest`) from `src` to `dst` quoting `quoted`, as a frame.
fn icmp6_error(
    src: [u8; 16],
    dst: [u8; 16],
    ty: u8,
    code: u8,
    rest: [u8; 4],
    quoted: &[u8],
) -> Vec<u8> {
    let mut msg = vec![ty, code, 0, 0, rest[0], rest[1], rest[2], rest[3]];
    msg.extend_from_slice(quoted);
    let c = nat64_common::checksum::compute(
        nat64_common::checksum::sum16(&src)
            + nat64_common::checksum::sum16(&dst)
            + 58
            + msg.len() as u32,
        &msg,
    );
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    let ip = ipv6(src, dst, msg.len() as u16, IpNumber::IPV6_ICMP, 64);
    [ETH6.to_vec(), ip.to_bytes().to_vec(), msg].concat()
}

/// The expected frame of an ICMPv4 error of type `ty` from 192.0.2.1 (the RFC 6791 address) to
/// the IPv4 server, quoting `quoted4`, with the outer identification taken from `out` (random
/// by design, DF clear).
fn expected_icmp4_error(ty: etherparse::Icmpv4Type, quoted4: &[u8], out: &[u8]) -> Vec<u8> {
    let icmp = etherparse::Icmpv4Header::with_checksum(ty, quoted4);
    let mut o4 = Ipv4Header::new(
        (8 + quoted4.len()) as u16,
        64,
        IpNumber::ICMP,
        [192, 0, 2, 1],
        SERVER4,
    )
    .unwrap();
    o4.dont_fragment = false;
    o4.identification = u16::from_be_bytes([out[18], out[19]]);
    o4.header_checksum = o4.calc_header_checksum();
    [
        ETH4.to_vec(),
        o4.to_bytes().to_vec(),
        icmp.to_bytes().to_vec(),
        quoted4.to_vec(),
    ]
    .concat()
}

/// RFC 7915 section 5.1.1 holds for an ICMPv6 error's own header and for the packet it quotes
/// (section 5.3): an atomic Fragment header (offset 0, M clear) gives the IPv4 Identification
/// (its low 16 bits) and DF clear (Jool's graybox `icmpe64`).
#[test]
fn atomic_fragment_headers_in_an_error_give_its_identifications() {
    let x = Loaded::load(
        "atomic fragments in an error",
        "pool6 = \"64:ff9b::/96\"\npool6791 = \"192.0.2.1\"\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n",
    );
    const ROUTER6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ];
    let payload = pattern(100);
    let dgram6 = udp6(SERVER6, CLIENT6, &payload);
    let dgram4 = udp4(SERVER4, CLIENT4, &payload);
    let quoted = [
        ipv6(
            SERVER6,
            CLIENT6,
            (8 + dgram6.len()) as u16,
            IpNumber::IPV6_FRAGMENTATION_HEADER,
            61,
        )
        .to_bytes()
        .to_vec(),
        frag_header(IpNumber::UDP, 0, false, 0x0102_0304).to_vec(),
        dgram6,
    ]
    .concat();
    // The error as `icmp6_error` makes it, then an atomic Fragment header put in front of its
    // ICMPv6 message.
    let plain = icmp6_error(ROUTER6, SERVER6, 1, 4, [0; 4], &quoted);
    let msg = &plain[14 + 40..];
    let ip = ipv6(
        ROUTER6,
        SERVER6,
        (8 + msg.len()) as u16,
        IpNumber::IPV6_FRAGMENTATION_HEADER,
        64,
    );
    let input = [
        ETH6.to_vec(),
        ip.to_bytes().to_vec(),
        frag_header(IpNumber::IPV6_ICMP, 0, false, 0x8765_4321).to_vec(),
        msg.to_vec(),
    ]
    .concat();
    let (action, out, _) = x.run_counted(&input);
    assert_eq!(action, XDP_PASS);
    let mut q4 = Ipv4Header::new(dgram4.len() as u16, 61, IpNumber::UDP, SERVER4, CLIENT4).unwrap();
    q4.identification = 0x0304;
    q4.dont_fragment = false;
    q4.header_checksum = q4.calc_header_checksum();
    let quoted4 = [q4.to_bytes().to_vec(), dgram4].concat();
    let expected = expected_icmp4_error(
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ),
        &quoted4,
        &out,
    );
    assert_frame("atomic fragments in an error", &out, &expected);
    assert_eq!(
        u16::from_be_bytes([out[18], out[19]]),
        0x4321,
        "outer Identification"
    );
}

/// The IPv4 server's DF=0 datagram, translated into IPv6 fragments, meets a narrower IPv6 link:
/// the router's Packet Too Big quotes the IPv6 fragment, Fragment header and all. The IPv4
/// server must get Fragmentation Needed quoting its own IPv4 fragment: identification, MF,
/// offset and the UDP checksum (for the whole datagram) as it sent them (RFC 7915 section 5.3).
#[test]
fn an_error_quoting_a_fragment_quotes_the_ipv4_fragment() {
    let x = Loaded::load(
        "quoted fragment",
        "pool6 = \"64:ff9b::/96\"\npool6791 = \"192.0.2.1\"\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n",
    );
    const ROUTER6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ];
    let payload = pattern(600);
    let whole6 = udp6(SERVER6, CLIENT6, &payload);
    let whole4 = udp4(SERVER4, CLIENT4, &payload);
    // The first 200 bytes of the datagram, as the translator sent them: IPv6 + Fragment header.
    let f = frag_header(IpNumber::UDP, 0, true, 0x5a5a);
    let quoted_ip = ipv6(
        SERVER6,
        CLIENT6,
        8 + 200,
        IpNumber::IPV6_FRAGMENTATION_HEADER,
        61,
    );
    let quoted = [
        quoted_ip.to_bytes().to_vec(),
        f.to_vec(),
        whole6[..200].to_vec(),
    ]
    .concat();
    let input = icmp6_error(ROUTER6, SERVER6, 2, 0, 1400u32.to_be_bytes(), &quoted);
    let (action, out, moved) = x.run_counted(&input);
    assert_eq!(action, XDP_PASS);

    // Expected: from the RFC 6791 address, Fragmentation Needed with MTU 1380, quoting the
    // IPv4 fragment (ID 0x5a5a, MF, offset 0, the IPv4 checksum of the whole datagram).
    let mut q4 = Ipv4Header::new(200, 61, IpNumber::UDP, SERVER4, CLIENT4).unwrap();
    q4.identification = 0x5a5a;
    q4.dont_fragment = false;
    q4.more_fragments = true;
    q4.header_checksum = q4.calc_header_checksum();
    let quoted4 = [q4.to_bytes().to_vec(), whole4[..200].to_vec()].concat();
    let expected = expected_icmp4_error(
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1380 },
        ),
        &quoted4,
        &out,
    );
    assert_frame("error quoting a fragment", &out, &expected);
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V6ToV4, L4Proto::Icmp), 1),
            (Counter::Bytes(Dir::V6ToV4), (expected.len() - 14) as u64),
            // The router has no IPv4 mapping: the error leaves from the RFC 6791 address.
            (Counter::Rfc6791(Dir::V6ToV4), 1),
        ]
    );

    // The same error quoting a hop-by-hop header before an unfragmented datagram: the
    // extension header goes, the quote is a plain IPv4 packet.
    let small6 = udp6(SERVER6, CLIENT6, &payload[..100]);
    let small4 = udp4(SERVER4, CLIENT4, &payload[..100]);
    let hbh = options(17, 0);
    let quoted_ip = ipv6(
        SERVER6,
        CLIENT6,
        (hbh.len() + small6.len()) as u16,
        IpNumber(0),
        61,
    );
    let quoted = [quoted_ip.to_bytes().to_vec(), hbh, small6].concat();
    let input = icmp6_error(ROUTER6, SERVER6, 1, 4, [0; 4], &quoted);
    let (action, out, _) = x.run_counted(&input);
    assert_eq!(action, XDP_PASS);
    let mut q4 = Ipv4Header::new(small4.len() as u16, 61, IpNumber::UDP, SERVER4, CLIENT4).unwrap();
    q4.dont_fragment = false;
    q4.identification = u16::from_be_bytes([out[46], out[47]]);
    q4.header_checksum = q4.calc_header_checksum();
    let quoted4 = [q4.to_bytes().to_vec(), small4].concat();
    let expected = expected_icmp4_error(
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ),
        &quoted4,
        &out,
    );
    assert_frame("error quoting a hop-by-hop header", &out, &expected);
}

/// RFC 4443 section 2.4 (e): the same malformed packets from a source that names no single
/// node (multicast, the unspecified address) are dropped and counted, never answered: an
/// error would go to many, or to nobody.
#[test]
fn malformed_fragments_from_multicast_or_unspecified_sources_are_not_answered() {
    let dp = dataplane();
    let datagram = udp6(CLIENT6, SERVER6, &pattern(40));
    let f = frag_header(IpNumber(60), 0, true, 0x0102_0304).to_vec();
    let mut ff02 = [0u8; 16];
    ff02[0] = 0xff;
    ff02[1] = 0x02;
    ff02[15] = 1;
    for (name, src) in [("from ff02::1", ff02), ("from ::", [0u8; 16])] {
        let mut input = with_exts(44, &[f.clone(), options(17, 0)], &datagram);
        input[22..38].copy_from_slice(&src);
        let (action, _, moved) = run(&dp, &input);
        assert_eq!(action, nat64_tests::xdp::XDP_DROP, "{name}");
        assert_eq!(
            moved,
            vec![(Counter::Dropped(Dir::V6ToV4, DropReason::BadFragment), 1)],
            "{name}"
        );
    }
}
