//! The TC hook's share of the work: what only the full translation core handles (here an
//! ICMPv6 error) is handed, untouched, to the translator link (`Handoff::SlowPath`), and
//! without a link is dropped and counted as `needs_translator_link`, not under a reason that
//! would send an operator looking at ICMP.

use etherparse::{Icmpv6Type, PacketBuilder, icmpv6::DestUnreachableCode};
use nat64_common::{Counter, Dir, DropReason, Handoff};
use nat64_tests::xdp::{Loaded, XDP_DROP, XDP_PASS, counter_delta};

/// An EAM client (2001:db8:6::102 <-> 198.51.100.2) and an IPv4 server under pool6.
const CLIENT6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2];
const SERVER6: [u8; 16] = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 2];
const EAM: &str = "[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n";

/// The client's Port Unreachable about a datagram the server sent it.
fn port_unreachable() -> Vec<u8> {
    let mut quoted = Vec::new();
    PacketBuilder::ipv6(SERVER6, CLIENT6, 60)
        .udp(53, 40000)
        .write(&mut quoted, b"answer")
        .unwrap();
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv6(CLIENT6, SERVER6, 64)
        .icmpv6(Icmpv6Type::DestinationUnreachable(
            DestUnreachableCode::Port,
        ))
        .write(&mut v, &quoted)
        .unwrap();
    v
}

#[test]
fn what_only_the_full_core_translates_goes_to_the_link_or_is_counted_as_needing_one() {
    let input = port_unreachable();

    let with_link = Loaded::load("tc-link", EAM);
    let before = with_link.stats();
    let (action, out) = with_link.run_tc(&input, 0);
    assert_eq!(action, XDP_PASS);
    assert_eq!(out, input, "handed off untouched");
    assert_eq!(
        counter_delta(&before, &with_link.stats()),
        vec![(Counter::Handoff(Dir::V6ToV4, Handoff::SlowPath), 1)]
    );

    let without = Loaded::load("tc-no-link", &format!("translator_link = \"off\"\n{EAM}"));
    let before = without.stats();
    let (action, _) = without.run_tc(&input, 0);
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        counter_delta(&before, &without.stats()),
        vec![(Counter::Dropped(Dir::V6ToV4, DropReason::NeedsLink), 1)]
    );

    // The XDP fast path's core translates it in place, link or not.
    let (action, out) = without.run(&input);
    assert_eq!(action, XDP_PASS);
    assert_ne!(out, input);
}
