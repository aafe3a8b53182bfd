//! ICMPv6 Destination Unreachable errors the dataplane answers itself:
//!
//! - Address Unreachable for a new stateful flow that gets no binding (RFC 6146 section
//!   3.5.1.1: "the packet is discarded and the NAT64 SHOULD send an ICMPv6 Destination
//!   Unreachable error message with Code 3"): the pool is exhausted, the table full, or the
//!   client's /64 at its limit. The client's stack then fails the connection at once instead
//!   of retrying into silence. It comes from the address the client wrote to.
//! - Communication Administratively Prohibited for a packet that is not translated (RFC 7915
//!   section 5.4): a malformed fragment (`DropReason::BadFragment`). It comes from this node,
//!   the address its kernel would send its own packet to the sender from (as Jool's does).
//!
//! - Parameter Problem, Erroneous Header Field (RFC 4443 section 3.4, type 4 code 0) for a
//!   packet with a Routing header whose Segments Left is not zero (RFC 7915 section 5.1: "the
//!   packet MUST NOT be translated, and an ICMPv6 'parameter problem/erroneous header field
//!   encountered' (Type 4, Code 0) error message, with the Pointer field indicating the first
//!   byte of the Segments Left field, SHOULD be returned to the sender"), from this node.
//!
//! - Packet Too Big (RFC 4443 section 3.2) for a packet from a pool4 address the node shares
//!   that is too big for the route out (`egress`), from this node, like the previous one.
//!
//! The frame becomes the error in place: 48 bytes of new headers go in front of the offending
//! IPv6 packet, which stays where it is as the quote, cut so that the error fits the minimum
//! IPv6 MTU (RFC 4443 section 2.4(c)). It goes back out of the interface it came in on.

use crate::frame::Frame;
use nat64_common::{Counter, DropReason, Generated, checksum, maps::Config};

use crate::{
    Packed, Step, link,
    packet::{
        ETH_LEN, ETH_P_IPV6, ICMP_LEN, IPPROTO_ICMPV6, IPV6_LEN, Ipv6Hdr, sum_range, turn_back,
        view, word, write_bytes,
    },
    rfc6791,
};

/// RFC 4443 section 3.1: the type, and the codes answered with (`Scratch::answer6`).
const ICMPV6_DEST_UNREACH: u8 = 1;
pub const ADMIN_PROHIBITED: u8 = 1;
pub const ADDRESS_UNREACHABLE: u8 = 3;
/// RFC 4443 section 3.2: Packet Too Big (type 2, code 0), with `Scratch::ptb_mtu`; in
/// `Scratch::answer6`, outside the range of codes.
const ICMPV6_PACKET_TOO_BIG: u8 = 2;
pub const PACKET_TOO_BIG: u8 = 0x80;
/// RFC 4443 section 3.4: Parameter Problem (type 4), Erroneous Header Field (code 0), with its
/// pointer in `Scratch::ptb_mtu`; in `Scratch::answer6`, outside the range of codes.
const ICMPV6_PARAM_PROBLEM: u8 = 4;
pub const PARAMETER_PROBLEM: u8 = 0x81;
/// The hop limit of errors this node originates (the kernel's default).
const HOP_LIMIT: u8 = 64;
/// The most of the offending packet an error may quote: 1280 - 40 - 8.
const MAX_QUOTE: usize = 1232;

/// Not inlined: its frame replaces `translate`'s rather than adding to it. The code is the
/// scratch slot's `answer6`.
#[inline(never)]
pub fn answer(ctx: &impl Frame, cfg: &Config) -> Packed {
    Packed::pack(reply(ctx, cfg).map(Step::Done))
}

#[inline(always)]
fn reply(ctx: &impl Frame, cfg: &Config) -> Result<u32, DropReason> {
    // The packet is counted already (dropped, under its reason); over the rate limit it goes
    // without an answer.
    // RFC 4443 section 2.4 (e): no error about a packet whose source does not identify one
    // node (the unspecified address, a multicast one): it would go to nobody, or to many.
    let sender = view::<Ipv6Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    if sender.src[0] == 0xff || sender.src == [0; 16] {
        return Ok(aya_ebpf::bindings::xdp_action::XDP_DROP);
    }
    if !crate::ratelimit::allow() {
        return Ok(aya_ebpf::bindings::xdp_action::XDP_DROP);
    }
    let s = crate::scratch::get()?;
    // The ICMPv6 header, its checksum filled in last; kept in the scratch slot, not on the
    // stack (this frame is the deepest of its call chain).
    let [m0, m1, m2, m3] = s.ptb_mtu;
    s.icmp = match s.answer6 {
        ADMIN_PROHIBITED => [ICMPV6_DEST_UNREACH, ADMIN_PROHIBITED, 0, 0, 0, 0, 0, 0],
        PACKET_TOO_BIG => [ICMPV6_PACKET_TOO_BIG, 0, 0, 0, m0, m1, m2, m3],
        PARAMETER_PROBLEM => [ICMPV6_PARAM_PROBLEM, 0, 0, 0, m0, m1, m2, m3],
        _ => [ICMPV6_DEST_UNREACH, ADDRESS_UNREACHABLE, 0, 0, 0, 0, 0, 0],
    };
    let (ty, code) = (s.icmp[0], s.icmp[1]);
    // On the translator link the kernel took a hop on the way in: the quote shows the packet
    // as its sender sent it, the hop given back.
    if link::on_link(cfg) {
        let h = view::<Ipv6Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
        write_bytes(ctx, ETH_LEN + 7, [h.hop_limit.saturating_add(1)])?;
    }
    let ip6 = view::<Ipv6Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    // The error goes back to the sender, from the address it wrote to, or from this node's
    // own toward it (that address when the node has no route back).
    s.addr6[0] = ip6.dst;
    s.addr6[1] = ip6.src;
    if (ty != ICMPV6_DEST_UNREACH || code == ADMIN_PROHIBITED) && !rfc6791::own6(ctx) {
        s.addr6[0] = ip6.dst;
    }
    let packet_len = IPV6_LEN + u16::from_be_bytes(ip6.payload_len) as usize;
    let quote = if packet_len < MAX_QUOTE {
        packet_len
    } else {
        MAX_QUOTE
    } & 0x7ff;
    let quoted = sum_range(ctx, ETH_LEN, quote).ok_or(DropReason::Truncated)?;
    let icmp_len = (ICMP_LEN + quote) as u16;
    // RFC 4443 section 2.3: the checksum covers the pseudo-header (RFC 8200 section 8.1).
    let sum = checksum::sum16(&s.addr6[0])
        + checksum::sum16(&s.addr6[1])
        + icmp_len as u32
        + IPPROTO_ICMPV6 as u32
        + word(ty, code)
        + word(s.icmp[4], s.icmp[5])
        + word(s.icmp[6], s.icmp[7])
        + quoted;
    let [c0, c1] = (!checksum::fold(sum)).to_be_bytes();
    const NEW: usize = IPV6_LEN + ICMP_LEN;
    turn_back(ctx, NEW, ETH_P_IPV6, quote)?;
    let [l0, l1] = icmp_len.to_be_bytes();
    write_bytes(
        ctx,
        ETH_LEN,
        [
            0x60,
            0,
            0,
            0,
            l0,
            l1,
            IPPROTO_ICMPV6,
            link::hops(cfg, HOP_LIMIT),
        ],
    )?;
    write_bytes(ctx, ETH_LEN + 8, s.addr6[0])?;
    write_bytes(ctx, ETH_LEN + 24, s.addr6[1])?;
    s.icmp[2] = c0;
    s.icmp[3] = c1;
    write_bytes(ctx, ETH_LEN + IPV6_LEN, s.icmp)?;
    crate::stats::add(
        Counter::Generated(if s.icmp[0] == ICMPV6_PACKET_TOO_BIG {
            Generated::PacketTooBig
        } else if s.icmp[0] == ICMPV6_PARAM_PROBLEM {
            Generated::ParameterProblem
        } else if s.icmp[1] == ADMIN_PROHIBITED {
            Generated::AdminProhibited
        } else {
            Generated::AddressUnreachable
        }),
        1,
    );
    Ok(crate::packet::send_back(ctx))
}
