//! ICMP Fragmentation Needed for IPv4 packets that would outgrow the IPv6 MTU once translated
//! (RFC 7915 section 4.1; RFC 792 for the error, RFC 1191 for the MTU field).
//!
//! An IPv4 packet with DF set that becomes larger than the configured IPv6 MTU would be
//! dropped by the kernel's IPv6 forwarding, whose Packet Too Big would go to a translated
//! address and be lost. Its sender runs path MTU discovery, so it is told here instead: the
//! frame is turned into the error in place (the quoted header and 8 bytes stay where they are,
//! 28 bytes of new headers go in front, the rest is cut) and sent back out of the interface it
//! came in on.

use crate::frame::Frame;
use aya_ebpf::bindings::xdp_action;
use nat64_common::{
    Counter, Dir, DropReason, Generated, checksum,
    icmp::{ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED},
    maps::{CONFIG_F_POOL6791, Config},
};

use crate::{
    Packed, Step, iface,
    packet::{
        ETH_LEN, ETH_P_IP, ICMP_LEN, IPPROTO_ICMP, IPV4_LEN, Ipv4Hdr, ipv4_header, sum_range,
        turn_back, view, word, write_bytes,
    },
    stats, v6_to_v4,
};

/// RFC 792: the error quotes the offending header and the first 64 bits of its data.
const QUOTED_DATA: usize = 8;
/// The TTL of errors this node originates (the kernel's default).
const TTL: u8 = 64;

/// Not inlined: its frame replaces `translate`'s rather than adding to it.
#[inline(never)]
pub fn frag_needed(ctx: &impl Frame, cfg: &Config) -> Packed {
    Packed::pack(reply(ctx, cfg).map(Step::Done))
}

#[inline(always)]
fn reply(ctx: &impl Frame, cfg: &Config) -> Result<u32, DropReason> {
    let ip4 = view::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    // The error comes from this interface's own address, else from the RFC 6791 address; with
    // neither there is nothing to send it from.
    let src = match iface::addr4(ctx) {
        Some(a) => a,
        None if cfg.flags & CONFIG_F_POOL6791 != 0 => cfg.pool6791,
        None => return Err(DropReason::PacketTooBig),
    };
    let dst = ip4.src;
    let ihl = ((ip4.ver_ihl & 0x0f) as usize) * 4;
    let tot_len = u16::from_be_bytes(ip4.tot_len) as usize;
    let data = tot_len.saturating_sub(ihl);
    let quote_len =
        (ihl + if data < QUOTED_DATA {
            data
        } else {
            QUOTED_DATA
        }) & 0x7f;
    // RFC 1191: the next-hop MTU is the IPv4 size that fits once the header grows by 20.
    let mtu = cfg.ipv6_mtu.saturating_sub(20);

    let quote = sum_range(ctx, ETH_LEN, quote_len).ok_or(DropReason::Truncated)?;
    let [m0, m1] = mtu.to_be_bytes();
    let sum = word(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED) + word(m0, m1) + quote;
    let [c0, c1] = (!checksum::fold(sum)).to_be_bytes();
    const NEW: usize = IPV4_LEN + ICMP_LEN;
    turn_back(ctx, NEW, ETH_P_IP, quote_len)?;
    let len = (NEW + quote_len) as u16;
    let (id, frag) = v6_to_v4::id_and_flags(len);
    write_bytes(
        ctx,
        ETH_LEN,
        ipv4_header(0, len, id, frag, TTL, IPPROTO_ICMP, src, dst),
    )?;
    write_bytes(
        ctx,
        ETH_LEN + IPV4_LEN,
        [ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, c0, c1, 0, 0, m0, m1],
    )?;
    stats::add(Counter::Dropped(Dir::V4ToV6, DropReason::PacketTooBig), 1);
    stats::add(Counter::Generated(Generated::FragmentationNeeded), 1);
    Ok(xdp_action::XDP_TX)
}
