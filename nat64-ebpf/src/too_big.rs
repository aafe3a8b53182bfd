//! ICMPv4 Destination Unreachable errors the dataplane answers itself, the frame turned into
//! the error in place (the quoted header and data stay where they are, 28 bytes of new headers
//! go in front, the rest is cut) and sent back out of the interface it came in on:
//!
//! - Fragmentation Needed for IPv4 packets with DF that would outgrow the IPv6 MTU once
//!   translated, without a translator link (RFC 7915 section 4.1; RFC 792 for the error, RFC
//!   1191 for the MTU field): the kernel's IPv6 forwarding would drop them, and its Packet Too
//!   Big would go to a translated address with no link to bring it back. With a link the
//!   packet is translated and that Packet Too Big comes back through it.
//! - Communication Administratively Prohibited for UDP datagrams without a checksum that are
//!   not translated (RFC 7915 section 4.5).
//! - Source Route Failed for packets with an unexpired source route (RFC 7915 section 4.1).

use crate::frame::Frame;
use nat64_common::{
    Counter, Dir, DropReason, Generated, checksum,
    icmp::{
        ICMP_ADMIN_PROHIBITED, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_SOURCE_ROUTE_FAILED,
        ICMP4_ERROR_MAX,
    },
    maps::{CONFIG_F_POOL6791, Config},
};

use crate::{
    Packed, Step, iface, link,
    packet::{
        ETH_LEN, ETH_P_IP, ICMP_LEN, IPPROTO_ICMP, IPV4_LEN, Ipv4Hdr, ipv4_header, send_back,
        sum_range, turn_back, view, word, write_bytes,
    },
    rfc6791, stats, v6_to_v4,
};

/// The TTL of errors this node originates (the kernel's default).
const TTL: u8 = 64;

/// Not inlined: its frame replaces `translate`'s rather than adding to it.
#[inline(never)]
pub fn frag_needed(ctx: &impl Frame, cfg: &Config) -> Packed {
    // RFC 1191: the next-hop MTU, the IPv4 size that fits once the header grows by 20, as
    // `translate` worked it out (from the route's MTU) in the scratch slot.
    let [_, _, m0, m1] = match crate::scratch::get() {
        Ok(s) => s.ptb_mtu,
        Err(r) => return Packed::pack(Err(r)),
    };
    let answer = Answer {
        code: ICMP_FRAG_NEEDED,
        rest: [0, 0, m0, m1],
        // RFC 1812 section 4.3.2.3: as much of the packet as fits in 576 bytes (RFC 792's
        // header and 64 bits of data at the least), as Jool quotes it.
        quoted_data: ICMP4_ERROR_MAX,
        max_quote: ICMP4_ERROR_MAX - ICMP_LEN - IPV4_LEN,
        reason: DropReason::PacketTooBig,
        kind: Generated::FragmentationNeeded,
    };
    Packed::pack(reply(ctx, cfg, &answer).map(Step::Done))
}

/// Answered with Destination Unreachable, Communication Administratively Prohibited (RFC 1812
/// section 5.2.7.1, code 13), quoting as much as an ICMPv4 error may carry (RFC 1812 section
/// 4.3.2.3), as Jool does, and counted as `reason`:
/// - RFC 7915 section 4.5: an IPv4 UDP datagram without a checksum that is not translated (a
///   fragment, whose checksum cannot be computed, or any with `udp_zero_checksum = "drop"`);
/// - stateful NAT64 with address-dependent filtering: a UDP datagram or ICMP query from an
///   address the binding's client has not sent to (`DropReason::Filtered`; RFC 6146 section
///   3.5.1.2 leaves the answer to the implementation; Jool sends this one).
#[inline(never)]
pub fn prohibited(ctx: &impl Frame, cfg: &Config, reason: DropReason) -> Packed {
    let answer = Answer {
        code: ICMP_ADMIN_PROHIBITED,
        rest: [0; 4],
        quoted_data: ICMP4_ERROR_MAX,
        max_quote: ICMP4_ERROR_MAX - ICMP_LEN - IPV4_LEN,
        reason,
        kind: Generated::AdminProhibited,
    };
    Packed::pack(reply(ctx, cfg, &answer).map(Step::Done))
}

/// RFC 7915 section 4.1: "If the IPv4 packet contains an unexpired source route option, the
/// packet SHOULD be dropped and an ICMPv4 Destination Unreachable, Source Route Failed (Type
/// 3, Code 5) error message SHOULD be returned to the sender" (as Jool does), quoting as much
/// as an ICMPv4 error may carry; counted as `DropReason::SourceRoute`.
#[inline(never)]
pub fn source_route_failed(ctx: &impl Frame, cfg: &Config) -> Packed {
    // RFC 1812 section 4.3.2.7 (and RFC 792): no error about a fragment other than the first
    // (a source route is copied into every fragment), nor about an ICMP error.
    let Some(ip4) = view::<Ipv4Hdr>(ctx, ETH_LEN) else {
        return Packed::pack(Err(DropReason::Truncated));
    };
    let ihl = ((ip4.ver_ihl & 0x0f) as usize) * 4;
    let later_fragment = u16::from_be_bytes(ip4.frag) & 0x1fff != 0;
    let error = ip4.proto == IPPROTO_ICMP
        && crate::packet::read::<u8>(ctx, (ETH_LEN + ihl) & 0x7f)
            .is_none_or(nat64_common::icmp::is_icmpv4_error);
    if later_fragment || error {
        return Packed::pack(Err(DropReason::SourceRoute));
    }
    let answer = Answer {
        code: ICMP_SOURCE_ROUTE_FAILED,
        rest: [0; 4],
        quoted_data: ICMP4_ERROR_MAX,
        max_quote: ICMP4_ERROR_MAX - ICMP_LEN - IPV4_LEN,
        reason: DropReason::SourceRoute,
        kind: Generated::SourceRouteFailed,
    };
    Packed::pack(reply(ctx, cfg, &answer).map(Step::Done))
}

/// An ICMPv4 Destination Unreachable this node sends back for the packet at hand.
struct Answer {
    code: u8,
    /// The second word of the ICMP header.
    rest: [u8; 4],
    /// The most bytes of the packet's data quoted after its header, and of the whole quote.
    quoted_data: usize,
    max_quote: usize,
    /// What the packet counts as, dropped.
    reason: DropReason,
    kind: Generated,
}

#[inline(always)]
fn reply(ctx: &impl Frame, cfg: &Config, a: &Answer) -> Result<u32, DropReason> {
    // Over the rate limit the packet is dropped, counted under its reason, unanswered.
    if !crate::ratelimit::allow() {
        return Err(a.reason);
    }
    let ip4 = view::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    let dst = ip4.src;
    // RFC 1812 section 4.3.2.7: no error to a source that does not name one host (0/8,
    // 127/8, multicast, the limited broadcast, class E).
    if !nat64_common::addr::is_translatable_v4(dst) {
        return Err(a.reason);
    }
    // The error comes from this interface's own address; on the translator link (which has
    // none) from the node's own address toward the sender, as the kernel's would; else from
    // the RFC 6791 address; with none of them there is nothing to send it from.
    let src = match iface::addr4(ctx) {
        Some(a) => a,
        None if link::on_link(cfg) && rfc6791::own4(ctx, dst) => crate::scratch::get()?.rfc6791_src,
        None if cfg.flags & CONFIG_F_POOL6791 != 0 => cfg.pool6791,
        None => return Err(a.reason),
    };
    // On the translator link the kernel took a hop on the way in: the quote shows the packet
    // as its sender sent it, the hop given back (RFC 1624 for its header checksum: the TTL is
    // the high byte of its word).
    if link::on_link(cfg) {
        let h = view::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
        let ttl = h.ttl.saturating_add(1);
        let check = checksum::update(u16::from_be_bytes(h.check), 0, 0x0100);
        write_bytes(ctx, ETH_LEN + 8, [ttl])?;
        write_bytes(ctx, ETH_LEN + 10, check.to_be_bytes())?;
    }
    let ip4 = view::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    let ihl = ((ip4.ver_ihl & 0x0f) as usize) * 4;
    let tot_len = u16::from_be_bytes(ip4.tot_len) as usize;
    let data = tot_len.saturating_sub(ihl);
    let quote_len = (ihl + data.min(a.quoted_data)).min(a.max_quote) & 0x3ff;

    let quote = sum_range(ctx, ETH_LEN, quote_len).ok_or(DropReason::Truncated)?;
    let [r0, r1, r2, r3] = a.rest;
    let sum = word(ICMP_DEST_UNREACH, a.code) + word(r0, r1) + word(r2, r3) + quote;
    let [c0, c1] = (!checksum::fold(sum)).to_be_bytes();
    const NEW: usize = IPV4_LEN + ICMP_LEN;
    turn_back(ctx, NEW, ETH_P_IP, quote_len)?;
    let len = (NEW + quote_len) as u16;
    let (id, frag) = v6_to_v4::id_and_flags(len);
    ipv4_header(
        0,
        len,
        id,
        frag,
        link::hops(cfg, TTL),
        IPPROTO_ICMP,
        src,
        dst,
    )
    .write(ctx, ETH_LEN)?;
    write_bytes(
        ctx,
        ETH_LEN + IPV4_LEN,
        [ICMP_DEST_UNREACH, a.code, c0, c1, r0, r1, r2, r3],
    )?;
    stats::add(Counter::Dropped(Dir::V4ToV6, a.reason), 1);
    stats::add(Counter::Generated(a.kind), 1);
    Ok(send_back(ctx))
}
