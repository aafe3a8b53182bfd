//! IPv4 packets that would outgrow the IPv6 MTU once translated (RFC 7915 section 4.1), through
//! the loaded program: with DF set the dataplane answers ICMP Fragmentation Needed itself, sent
//! back out of the interface the packet came in on (RFC 792, RFC 1191); without DF it hands them
//! to the kernel untouched, which fragments them on their way into the translator link. The
//! expected error is built here with etherparse, its checksum computed from scratch.

use etherparse::{
    IcmpEchoHeader, Icmpv4Header, Icmpv4Type, IpNumber, Ipv4Header, icmpv4::DestUnreachableHeader,
};
use nat64_common::{Counter, Dir, DropReason, Generated, Handoff, L4Proto};
use nat64_daemon::{InterfaceSettings, dataplane::LINK_PROGRAM};
use nat64_tests::{
    fixtures::{self, EAM_CLIENT, MAC_DST, MAC_SRC},
    frames::{fix_ipv4_checksum, folded_sum},
    xdp::{Loaded, XDP_DROP, XDP_PASS, XDP_TX, counter_delta},
};

const SERVER4: [u8; 4] = fixtures::SERVER4.octets();
const CLIENT4: [u8; 4] = fixtures::CLIENT4.octets();
const XLAT4: [u8; 4] = [192, 0, 2, 1];
/// The translator's interface and the server: where the fixtures' frames go and come from.
const MAC_X: [u8; 6] = MAC_DST;
const MAC_S: [u8; 6] = MAC_SRC;

/// `link`: with the translator link (the default), or without (the interfaces-only
/// deployment, where the dataplane's answer to a DF packet too big for its route is the only
/// one the sender gets).
fn load(ipv6_mtu: u16, pool6791: bool, addr4: bool, link: bool) -> Loaded {
    let mut toml = format!("ipv6_mtu = {ipv6_mtu}\n{EAM_CLIENT}");
    if !link {
        toml = format!("translator_link = \"off\"\n{toml}");
    }
    if pool6791 {
        toml = format!("pool6791 = \"203.0.113.9\"\n{toml}");
    }
    let mut x = Loaded::load("mtu", &toml);
    let settings = InterfaceSettings {
        addr4: addr4.then(|| XLAT4.into()),
        ..Default::default()
    };
    x.dp.set_interface(1, &settings)
        .expect("interface settings");
    x
}

/// An IPv4 echo request of `total` bytes from the server to the client's alias, arriving from
/// the server's MAC.
fn echo4(total: usize, df: bool) -> Vec<u8> {
    let payload: Vec<u8> = (0..total - 28).map(|i| i as u8).collect();
    let icmp = Icmpv4Header::with_checksum(
        Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 7, seq: 1 }),
        &payload,
    );
    let mut ip = Ipv4Header::new(
        (8 + payload.len()) as u16,
        64,
        IpNumber::ICMP,
        SERVER4,
        CLIENT4,
    )
    .unwrap();
    ip.dont_fragment = df;
    ip.identification = 0x4242;
    ip.header_checksum = ip.calc_header_checksum();
    let mut f = [MAC_X, MAC_S].concat();
    f.extend([0x08, 0x00]);
    f.extend(ip.to_bytes());
    f.extend(icmp.to_bytes());
    f.extend(payload);
    f
}

/// Runs `f` in a namespace of its own whose IPv6 route to the client (`2001:db8:6::/64`) has
/// MTU `mtu`, with IPv6 forwarding on (the kernel's FIB lookup for a received packet needs it,
/// as on a node).
fn with_ipv6_route_mtu(name: &str, mtu: u32, f: impl FnOnce() + Send) {
    with_ipv6_route_mtu_ns(name, mtu, |_| f());
}

/// [`with_ipv6_route_mtu`], `f` given the namespace (to change its routes).
fn with_ipv6_route_mtu_ns(name: &str, mtu: u32, f: impl FnOnce(&nat64_tests::netns::Netns) + Send) {
    nat64_tests::require_root();
    let ns = nat64_tests::netns::Netns::new(name);
    ns.veth("r0", "r1", Some(mtu), &["2001:db8:6::1/64"]);
    ns.sysctl("net.ipv6.conf.all.forwarding", "1");
    let ns = &ns;
    ns.run(|| f(ns));
}

/// Without the translator link (the interfaces-only deployment): a packet with DF too big for
/// its IPv6 route (1300 bytes here) is answered Fragmentation Needed by the dataplane, from
/// the interface's address, quoting the packet as sent.
#[test]
fn too_big_with_df_gets_fragmentation_needed_from_the_interface_address() {
    with_ipv6_route_mtu("df-no-link", 1300, too_big_with_df_without_link);
}

fn too_big_with_df_without_link() {
    let x = load(1280, false, true, false);
    // 1290 bytes of IPv4 become 1310 of IPv6: 10 too many for 1300.
    let input = echo4(1290, true);
    let (action, out, moved) = x.run_counted(&input);
    assert_eq!(
        action, XDP_TX,
        "the error goes back out of the ingress interface"
    );
    // RFC 1812 section 4.3.2.3: as much of the packet as fits in 576 bytes, as Jool quotes.
    let quote = &input[14..14 + 576 - 28];
    let icmp = Icmpv4Header::with_checksum(
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1280,
        }),
        quote,
    );
    let mut ip =
        Ipv4Header::new((8 + quote.len()) as u16, 64, IpNumber::ICMP, XLAT4, SERVER4).unwrap();
    ip.dont_fragment = false;
    ip.identification = u16::from_be_bytes([out[18], out[19]]); // random by design (DF=0)
    ip.header_checksum = ip.calc_header_checksum();
    let mut expected = [MAC_S, MAC_X].concat(); // back to the sender
    expected.extend([0x08, 0x00]);
    expected.extend(ip.to_bytes());
    expected.extend(icmp.to_bytes());
    expected.extend(quote);
    assert!(
        out == expected,
        "\n got {:02x?}\nwant {:02x?}",
        &out[..64],
        &expected[..64]
    );
    assert_eq!(
        moved,
        vec![
            (Counter::Dropped(Dir::V4ToV6, DropReason::PacketTooBig), 1),
            (Counter::Generated(Generated::FragmentationNeeded), 1)
        ]
    );
    // No address to send the error from: dropped and counted.
    let x = load(1280, false, false, false);
    let (action, _, moved) = x.run_counted(&echo4(1290, true));
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        moved,
        vec![(Counter::Dropped(Dir::V4ToV6, DropReason::PacketTooBig), 1)]
    );
    // ...unless there is an RFC 6791 address.
    let x = load(1280, true, false, false);
    let (action, out, _) = x.run_counted(&echo4(1290, true));
    assert_eq!(action, XDP_TX);
    assert_eq!(&out[26..30], &[203, 0, 113, 9]);
    // Within the route, DF packets are never held to ipv6_mtu (1280 here), which is what
    // packets without DF are fragmented to: 1300 bytes of IPv6 are translated.
    let (action, out, _) = x.run_counted(&echo4(1280, true));
    assert_eq!(action, XDP_PASS);
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
}

/// In a namespace of its own (as every case here that translates a DF packet: the route
/// check asks the FIB), whose IPv6 route to the client carries 1500 bytes.
#[test]
fn what_fits_is_translated_and_what_cannot_be_answered_is_counted() {
    with_ipv6_route_mtu("what-fits", 1500, what_fits);
}

fn what_fits() {
    let x = load(1300, false, true, true);
    let translated = |ipv4_len: usize| assert_translated(&x, ipv4_len, true);
    // Exactly 1300 bytes of IPv6: translated.
    translated(1280);
    // Too big with DF, with the translator link: translated all the same. ipv6_mtu is what
    // packets without DF are fragmented to (Jool's lowest-ipv6-mtu); one with DF is judged by
    // the kernel against the real IPv6 route, and the kernel's Packet Too Big comes back
    // through the link as Fragmentation Needed from this node (RFC 7915 section 5.2).
    translated(1290);
    // Too big without DF: it must be fragmented (RFC 7915 section 4.1). Handed to the kernel
    // untouched, which fragments it on its way into the translator link.
    let input = echo4(1290, false);
    assert_handed_off_to_fragment(&x, &input);
    // On the link itself, where the kernel has already fragmented to the route MTU, anything
    // still too big has nowhere else to go: dropped and counted.
    let before = x.stats();
    let (action, _) = x.run_program(LINK_PROGRAM, &input);
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        counter_delta(&before, &x.stats()),
        vec![(Counter::Dropped(Dir::V4ToV6, DropReason::PacketTooBig), 1)]
    );
    // Without a translator link: dropped and counted too.
    let x = Loaded::load(
        "mtu without link",
        "ipv6_mtu = 1300\ntranslator_link = \"off\"\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n",
    );
    let (action, _, moved) = x.run_counted(&input);
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        moved,
        vec![(Counter::Dropped(Dir::V4ToV6, DropReason::PacketTooBig), 1)]
    );
    // With DF, though, translated: the IPv6 route judges it (none here is narrower).
    let (action, out, _) = x.run_counted(&echo4(1290, true));
    assert_eq!(action, XDP_PASS);
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
    // ipv6_mtu = 0: no limit.
    let x = load(0, false, true, false);
    let (action, out, _) = x.run_counted(&echo4(1290, false));
    assert_eq!(action, XDP_PASS);
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
}

/// RFC 7915 section 4.5: an IPv4 UDP datagram without a checksum that is not translated (a
/// first fragment: its checksum cannot be computed; or any, with `udp_zero_checksum = "drop"`)
/// is answered with Destination Unreachable, Communication Administratively Prohibited (code
/// 13), from the interface's address, quoting as much as an ICMPv4 error may carry (RFC 1812
/// section 4.3.2.3: 576 bytes in all), as Jool does.
/// The default: packets without DF are fragmented to fit 1280-byte IPv6 packets (RFC 7915
/// section 4: the minimum IPv6 MTU, unless the operator raises it), and a packet with DF is
/// left to the IPv6 route's own MTU, whatever its size.
#[test]
fn by_default_packets_without_df_are_fragmented_to_the_minimum_ipv6_mtu() {
    with_ipv6_route_mtu("mtu-default", 1500, default_ipv6_mtu);
}

fn default_ipv6_mtu() {
    let x = Loaded::load("mtu-default", EAM_CLIENT);
    // 1260 bytes of IPv4: exactly 1280 of IPv6, translated whole.
    assert_translated(&x, 1260, false);
    // 1261: one byte too many, handed to the kernel untouched to be fragmented on its way
    // into the translator link.
    assert_handed_off_to_fragment(&x, &echo4(1261, false));
    // With DF, 1480 bytes: translated (1500 bytes of IPv6, for the route to judge).
    assert_translated(&x, 1480, true);
}

/// Runs `input` and checks that it was handed to the kernel untouched, to be fragmented on its
/// way into the translator link, and counted so.
fn assert_handed_off_to_fragment(x: &Loaded, input: &[u8]) {
    let (action, out, moved) = x.run_counted(input);
    assert_eq!(action, XDP_PASS);
    assert_eq!(out, input, "handed off untouched");
    assert_eq!(
        moved,
        vec![(
            Counter::Handoff(Dir::V4ToV6, Handoff::NeedsFragmentation),
            1
        )]
    );
}

/// Runs an echo request of `ipv4_len` bytes and checks that it was translated, 20 bytes
/// longer, and counted.
fn assert_translated(x: &Loaded, ipv4_len: usize, df: bool) {
    let (action, out, moved) = x.run_counted(&echo4(ipv4_len, df));
    assert_eq!(action, XDP_PASS, "{ipv4_len} bytes");
    assert_eq!(u16::from_be_bytes([out[12], out[13]]), 0x86dd);
    assert_eq!(
        moved,
        vec![
            (Counter::Packets(Dir::V4ToV6, L4Proto::Icmp), 1),
            (Counter::Bytes(Dir::V4ToV6), ipv4_len as u64 + 20)
        ]
    );
}

#[test]
fn udp_without_checksum_not_translated_is_answered_prohibited() {
    for (label, drop_mode, more_fragments, df, payload) in [
        ("first fragment", false, true, false, 16),
        ("first fragment with DF", false, true, true, 4),
        ("udp_zero_checksum = drop", true, false, false, 600),
    ] {
        let mut x = load(1500, false, true, true);
        if drop_mode {
            let toml = "udp_zero_checksum = \"drop\"\nipv6_mtu = 1500\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n";
            x = Loaded::load("udp zero drop", toml);
            let settings = InterfaceSettings {
                addr4: Some(XLAT4.into()),
                ..Default::default()
            };
            x.dp.set_interface(1, &settings)
                .expect("interface settings");
        }
        let data: Vec<u8> = (0..payload).map(|i| i as u8).collect();
        let mut ip =
            Ipv4Header::new((8 + payload) as u16, 64, IpNumber::UDP, SERVER4, CLIENT4).unwrap();
        ip.more_fragments = more_fragments;
        ip.dont_fragment = df;
        ip.identification = 0x77;
        ip.header_checksum = ip.calc_header_checksum();
        let mut input = [MAC_X, MAC_S].concat();
        input.extend([0x08, 0x00]);
        input.extend(ip.to_bytes());
        input.extend([0x0f, 0xa0, 0x07, 0xd0]);
        input.extend(((8 + payload) as u16).to_be_bytes());
        input.extend([0, 0]);
        input.extend(&data);
        let (action, out, moved) = x.run_counted(&input);
        assert_eq!(action, XDP_TX, "{label}");
        let quote = &input[14..(14 + 20 + 8 + payload).min(14 + 548)];
        let expected = unreachable4(13, quote, &out);
        assert_eq!(
            out, expected,
            "{label}\n got {out:02x?}\nwant {expected:02x?}"
        );
        assert_eq!(
            moved,
            vec![
                (
                    Counter::Dropped(Dir::V4ToV6, DropReason::UdpZeroChecksum),
                    1
                ),
                (
                    Counter::Generated(nat64_common::Generated::AdminProhibited),
                    1
                ),
            ],
            "{label}"
        );
    }
}

/// The ICMPv4 Destination Unreachable of `code` the translator (`XLAT4`) sends back to the
/// server quoting `quote`, out of the interface it came in on; its identification taken from
/// `out`, the frame it is compared with (the dataplane's own counter).
fn unreachable4(code: u8, quote: &[u8], out: &[u8]) -> Vec<u8> {
    let mut expected = [MAC_S, MAC_X].concat();
    expected.extend([0x08, 0x00]);
    let mut icmp = vec![3u8, code, 0, 0, 0, 0, 0, 0];
    icmp.extend(quote);
    let sum = !folded_sum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut h = Ipv4Header::new(icmp.len() as u16, 64, IpNumber::ICMP, XLAT4, SERVER4).unwrap();
    h.dont_fragment = false;
    h.identification = u16::from_be_bytes([out[18], out[19]]);
    h.header_checksum = h.calc_header_checksum();
    expected.extend(h.to_bytes());
    expected.extend(&icmp);
    expected
}

/// RFC 7915 section 4.1: "If the IPv4 packet contains an unexpired source route option, the
/// packet SHOULD be dropped and an ICMPv4 Destination Unreachable, Source Route Failed (Type
/// 3, Code 5) error message SHOULD be returned to the sender" (Jool does): from the
/// interface's address, quoting the packet, options and all. A source route already
/// traversed (its pointer past its length) is ignored like any other option.
#[test]
fn an_unexpired_source_route_is_answered_with_source_route_failed() {
    let x = load(1500, false, true, true);
    let payload: Vec<u8> = (0..24u8).collect();
    let frame = |option: [u8; 8]| {
        let mut ip = Ipv4Header::new(
            (8 + payload.len()) as u16,
            64,
            IpNumber::UDP,
            SERVER4,
            CLIENT4,
        )
        .unwrap();
        ip.options = option[..].try_into().unwrap();
        ip.total_len = (28 + 8 + payload.len()) as u16;
        ip.identification = 0x78;
        ip.header_checksum = ip.calc_header_checksum();
        let mut udp = vec![0x0f, 0xa0, 0x07, 0xd0];
        udp.extend(((8 + payload.len()) as u16).to_be_bytes());
        udp.extend([0, 0]);
        udp.extend(&payload);
        let sum = !folded_sum(
            &[
                &SERVER4[..],
                &CLIENT4[..],
                &[0, 17],
                &((udp.len()) as u16).to_be_bytes(),
                &udp,
            ]
            .concat(),
        );
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        let mut input = [MAC_X, MAC_S].concat();
        input.extend([0x08, 0x00]);
        input.extend(ip.to_bytes());
        input.extend(udp);
        input
    };
    for (label, strict) in [("loose", 131u8), ("strict", 137)] {
        // Pointer 4: the first address is still ahead.
        let input = frame([strict, 7, 4, 192, 0, 2, 9, 0]);
        let (action, out, moved) = x.run_counted(&input);
        assert_eq!(action, XDP_TX, "{label}");
        let expected = unreachable4(5, &input[14..], &out);
        assert_eq!(
            out, expected,
            "{label}\n got {out:02x?}\nwant {expected:02x?}"
        );
        assert_eq!(
            moved,
            vec![
                (Counter::Dropped(Dir::V4ToV6, DropReason::SourceRoute), 1),
                (
                    Counter::Generated(nat64_common::Generated::SourceRouteFailed),
                    1
                ),
            ],
            "{label}"
        );
    }
    // RFC 1812 section 4.3.2.7: not answered for a fragment other than the first (the option
    // is copied into every fragment), nor for an ICMP error; dropped and counted all the same.
    let patched = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut input = frame([131, 7, 4, 192, 0, 2, 9, 0]);
        f(&mut input);
        input[24..26].copy_from_slice(&[0, 0]);
        let c = !folded_sum(&input[14..14 + 28]);
        input[24..26].copy_from_slice(&c.to_be_bytes());
        input
    };
    for (label, input) in [
        (
            "a later fragment",
            patched(&|f: &mut Vec<u8>| f[20..22].copy_from_slice(&[0x00, 0x10])),
        ),
        (
            "an ICMP error",
            patched(&|f: &mut Vec<u8>| {
                f[23] = 1;
                f[14 + 28] = 3;
            }),
        ),
    ] {
        let (action, _, moved) = x.run_counted(&input);
        assert_eq!(action, XDP_DROP, "{label}");
        assert_eq!(
            moved,
            vec![(Counter::Dropped(Dir::V4ToV6, DropReason::SourceRoute), 1)],
            "{label}"
        );
    }
    // Traversed (pointer 8, past the length of 7): translated.
    let (action, _, moved) = x.run_counted(&frame([131, 7, 8, 192, 0, 2, 9, 0]));
    assert_eq!(action, XDP_PASS, "traversed");
    assert!(
        moved.contains(&(Counter::Packets(Dir::V4ToV6, L4Proto::Udp), 1)),
        "traversed: {moved:?}"
    );
}

/// Runs `input` and checks that the dataplane answered it with Fragmentation Needed carrying
/// `mtu` (sent back out, counted as a drop and an error sent); returns the answer.
fn assert_fragmentation_needed(x: &Loaded, input: &[u8], mtu: u16) -> Vec<u8> {
    let (action, out, moved) = x.run_counted(input);
    assert_eq!(action, XDP_TX, "answered");
    assert_eq!(
        moved,
        vec![
            (Counter::Dropped(Dir::V4ToV6, DropReason::PacketTooBig), 1),
            (Counter::Generated(Generated::FragmentationNeeded), 1)
        ]
    );
    let icmp = Icmpv4Header::from_slice(&out[14 + 20..]).unwrap().0;
    assert_eq!(
        icmp.icmp_type,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: mtu
        })
    );
    out
}

/// With DF, too big for the IPv6 route out though within `ipv6_mtu`: the dataplane asks the
/// FIB and answers Fragmentation Needed itself with the route's MTU less 20, quoting the packet
/// as sent (before, the kernel's Packet Too Big came back through the translator link with a
/// quote rebuilt from the IPv6 packet). Without DF it is left to the kernel to fragment; what
/// fits the route is translated.
#[test]
fn too_big_with_df_for_the_ipv6_route_gets_fragmentation_needed_with_its_mtu() {
    with_ipv6_route_mtu("route-mtu", 1280, || {
        let x = load(1500, false, true, true);
        // 1290 bytes of IPv4 become 1310 of IPv6: too big for r0's 1280.
        let input = echo4(1290, true);
        let out = assert_fragmentation_needed(&x, &input, 1260);
        assert_eq!(&out[14 + 12..14 + 20], &[XLAT4, SERVER4].concat()[..]);
        assert_eq!(&out[14 + 28..], &input[14..14 + 548], "the packet as sent");
        // Without DF: handed to the kernel untouched, which fragments it on its way into
        // the translator link (its IPv4 routes are kept within the narrowest IPv6 route,
        // `link::ipv6_route_floor`), so that each piece fits the route (RFC 7915 section
        // 4.1). Small enough: translated.
        let input = echo4(1290, false);
        let (action, out, moved) = x.run_counted(&input);
        assert_eq!((action, &out), (XDP_PASS, &input));
        assert_eq!(
            moved,
            vec![(
                Counter::Handoff(Dir::V4ToV6, nat64_common::Handoff::NeedsFragmentation),
                1
            )]
        );
        let (action, out, _) = x.run_counted(&echo4(1260, true));
        assert_eq!(action, XDP_PASS);
        assert_eq!(&out[12..14], &[0x86, 0xdd]);
    });
}

/// The IPv6 route's MTU is remembered (`ROUTE_MTU`: the kernel's IPv6 lookup is the dearest
/// step of a translation that needs it; the entry is read back), for a second and no longer:
/// once the operator raises the route's MTU, packets it now carries are translated within
/// that second, and answered with the new MTU once it is lowered again.
#[test]
fn a_changed_ipv6_route_mtu_is_seen_within_a_second() {
    with_ipv6_route_mtu_ns("route-mtu-ttl", 1400, |ns| {
        let x = load(1500, false, true, true);
        // 1390 bytes of IPv4 become 1410 of IPv6: too big for r0's 1400.
        let input = echo4(1390, true);
        assert_fragmentation_needed(&x, &input, 1380);
        // Remembered: the client's address, from the receiving interface (lo here).
        let client6 = std::net::IpAddr::from(fixtures::CLIENT6);
        assert_eq!(
            x.dp.route_mtus().expect("ROUTE_MTU"),
            vec![(client6, 1, 1400)]
        );
        nat64_tests::assert_route_mtu_changes_seen(ns, "r0", 1280, |want| {
            let (action, out) = x.run(&input);
            match want {
                0 => action == XDP_PASS && out[12..14] == [0x86, 0xdd],
                mtu => {
                    action == XDP_TX
                        && Icmpv4Header::from_slice(&out[14 + 20..]).is_ok_and(|(h, _)| {
                            h.icmp_type
                                == Icmpv4Type::DestinationUnreachable(
                                    DestUnreachableHeader::FragmentationNeeded {
                                        next_hop_mtu: mtu as u16,
                                    },
                                )
                        })
                }
            }
        });
    });
}

/// Runs `f` on a dataplane with the translator link (`ipv6_mtu`) in a namespace whose IPv6
/// route to the client has MTU `route_mtu`: the link's kernel side exists by its default
/// name, for the configuration's `link_ifindex` (the far end's program is not needed).
fn at_tc_with_the_link(name: &str, route_mtu: u32, ipv6_mtu: u16, f: impl FnOnce(&Loaded) + Send) {
    nat64_tests::require_root();
    let ns = nat64_tests::netns::Netns::new(name);
    ns.veth("r0", "r1", Some(route_mtu), &["2001:db8:6::1/64"]);
    ns.veth("nat64", "nat64-dp", None, &[]);
    ns.sysctl("net.ipv6.conf.all.forwarding", "1");
    ns.run(|| {
        let mut x = load(ipv6_mtu, false, true, true);
        x.dp.apply(&x.cfg).expect("apply with the link");
        f(&x);
    });
}

/// A first fragment (MF) of `len` bytes, UDP (a fragmented ICMP message is refused; only its
/// first 8 bytes would be the UDP header), from the server to the client's alias.
fn first_fragment4(len: usize, df: bool) -> Vec<u8> {
    let mut f = echo4(len, df);
    f[14 + 6] |= 0x20; // MF
    f[14 + 9] = 17;
    fix_ipv4_checksum(&mut f);
    f
}

/// At TC, an IPv4 fragment is left to the translator link. With DF and too big for its IPv6
/// route, it goes into the link directly (`TC_ACT_REDIRECT`), whose program answers
/// Fragmentation Needed with that route's MTU (through the kernel, the link's IPv4 routes
/// would answer with theirs); without DF it goes through the kernel, which fragments it to
/// fit on the way in (`TC_ACT_OK`, untouched).
#[test]
fn at_tc_a_df_fragment_too_big_for_its_route_goes_into_the_link_directly() {
    at_tc_with_the_link("tc-df-frag", 1280, 1500, |x| {
        // A first fragment of 1290 bytes: 1318 once translated, over r0's 1280.
        let fragment = |df: bool| first_fragment4(1290, df);
        let before = x.stats();
        let (action, out) = x.run_tc(&fragment(true), 0);
        assert_eq!(action, XDP_TX, "with DF: redirected into the link");
        assert_eq!(&out[12..14], &[0x08, 0x00], "untouched: still IPv4");
        assert_eq!(
            counter_delta(&before, &x.stats()),
            vec![(Counter::Handoff(Dir::V4ToV6, Handoff::SlowPath), 1)]
        );
        let input = fragment(false);
        let (action, out) = x.run_tc(&input, 0);
        assert_eq!(
            (action, &out),
            (XDP_PASS, &input),
            "without DF: through the kernel"
        );
    });
}

/// At TC, a packet with DF that is left to the translator link (a fragment, options) and is
/// larger than the link's IPv4 routes let in (`ipv6_mtu` - 28, sized for what has no DF)
/// goes into the link directly, though its IPv6 route (1500 here) carries it: through the
/// kernel it would get Fragmentation Needed with the link's MTU, and RFC 7915 section 4 does
/// not hold a DF packet to `ipv6_mtu`.
#[test]
fn at_tc_a_df_packet_above_the_links_routes_goes_into_the_link_directly() {
    at_tc_with_the_link("tc-df-link", 1500, 1280, |x| {
        assert_into_the_link_above_its_routes(x, |len| first_fragment4(len, true));
    });
}

/// With `ipv6_mtu` 1280, a packet `frame(len)` of 1253 bytes (one more than the link's routes
/// let in, 1280 - 28) goes into the link directly (untouched: still IPv4); one of 1252 goes
/// through the kernel.
fn assert_into_the_link_above_its_routes(x: &Loaded, frame: impl Fn(usize) -> Vec<u8>) {
    let (action, out) = x.run_tc(&frame(1253), 0);
    assert_eq!(action, XDP_TX, "redirected into the link");
    assert_eq!(&out[12..14], &[0x08, 0x00], "untouched: still IPv4");
    let input = frame(1252);
    let (action, out) = x.run_tc(&input, 0);
    assert_eq!((action, &out), (XDP_PASS, &input), "through the kernel");
}

/// The same for a UDP datagram without a checksum, which TC leaves to the link too (its
/// checksum is computed over the whole datagram there).
#[test]
fn at_tc_a_df_udp_datagram_without_checksum_above_the_links_routes_goes_into_the_link() {
    at_tc_with_the_link("tc-df-udp0", 1500, 1280, |x| {
        // An IPv4 UDP datagram of `len` bytes with DF and a zero checksum.
        let datagram = |len: usize| {
            let mut f = echo4(len, true);
            f[14 + 9] = 17;
            f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
            fix_ipv4_checksum(&mut f);
            f
        };
        assert_into_the_link_above_its_routes(x, datagram);
    });
}

/// An interface whose IPv6 MTU is below its device MTU (a router advertisement's MTU option
/// sets `net.ipv6.conf.IF.mtu`, RFC 4861 section 6.3.4): the dataplane's route check must not
/// skip packets that fit the device. Without a translator link nothing else would answer them.
#[test]
fn an_ipv6_mtu_below_the_device_mtu_is_checked() {
    nat64_tests::require_root();
    let ns = nat64_tests::netns::Netns::new("ra-mtu");
    ns.veth("r0", "r1", Some(1500), &["2001:db8:6::1/64"]);
    ns.sysctl("net.ipv6.conf.all.forwarding", "1");
    ns.sysctl("net.ipv6.conf.r0.mtu", "1300");
    ns.run(|| {
        let x = load(1280, false, true, false);
        // 1290 bytes of IPv4 become 1310 of IPv6: within r0's 1500, over its IPv6 MTU.
        assert_fragmentation_needed(&x, &echo4(1290, true), 1280);
    });
}

/// The errors the dataplane originates are rate-limited (RFC 4443 section 2.4(f), RFC 1812
/// section 4.3.2.8): a burst of 50 per CPU, then 1000 a second. A flood of packets to answer
/// gets the burst answered and the rest dropped unanswered, each counted once as dropped and
/// the unanswered ones as rate-limited.
#[test]
fn the_errors_the_dataplane_sends_are_rate_limited() {
    with_ipv6_route_mtu("rate-limit", 1300, errors_are_rate_limited);
}

fn errors_are_rate_limited() {
    let x = load(1280, false, true, false);
    let input = echo4(1290, true);
    let before = x.stats();
    let (mut answered, mut unanswered) = (0u64, 0u64);
    let started = std::time::Instant::now();
    for _ in 0..300 {
        let (action, _) = x.run(&input);
        match action {
            XDP_TX => answered += 1,
            XDP_DROP => unanswered += 1,
            a => panic!("unexpected action {a}"),
        }
    }
    // What the limit allows in that time: a burst of 50 on each CPU the runs landed on,
    // then one a millisecond (bounded by the time taken, which a loaded machine stretches).
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let allowed = 50 * cpus + elapsed_ms + 2;
    let moved = counter_delta(&before, &x.stats());
    let get = |c: Counter| moved.iter().find(|(k, _)| *k == c).map_or(0, |(_, v)| *v);
    assert!(
        answered >= 50 && answered <= allowed,
        "{answered} answered in {elapsed_ms} ms: a burst of 50 per CPU ({cpus}), refilled at one a millisecond"
    );
    if allowed < 300 {
        assert!(unanswered > 0, "nothing limited in {elapsed_ms} ms");
    }
    assert_eq!(answered + unanswered, 300);
    assert_eq!(
        get(Counter::Dropped(Dir::V4ToV6, DropReason::PacketTooBig)),
        300
    );
    assert_eq!(
        get(Counter::Generated(Generated::FragmentationNeeded)),
        answered
    );
    assert_eq!(get(Counter::RateLimited), unanswered);
}
