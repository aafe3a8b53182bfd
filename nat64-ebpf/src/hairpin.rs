//! EAM hairpinning (RFC 7757 section 4): an IPv6 host reaching another IPv6 host through the
//! latter's IPv4 alias under pool6 (what DNS64 hands out for its A record).
//!
//! Translated to IPv4 and back, the packet goes to the destination's own IPv6 address, and its
//! source becomes the sender's IPv4 alias under pool6, not the sender's own IPv6 address: the
//! reply then takes the same way back, and the sender hears from the address it wrote to.
//! Both translations collapse into one in-place rewrite of the two addresses; the transport
//! checksum follows the pseudo-header.
//!
//! An ICMPv6 error about a hairpinned flow is not rewritten here: `icmp_error` translates it to
//! IPv4, and the 4-to-6 program translates it back (`again_4to6` in main.rs), its quoted
//! packet with it.

use crate::frame::Frame;
use nat64_common::{
    Counter, Dir, DropReason, L4Proto,
    addr::embed,
    checksum::{self, sum16},
    maps::Config,
};

use crate::{
    Packed, Step, addrmap, l4, link,
    packet::{
        ETH_LEN, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV6_LEN, Ipv6Hdr, MAX_HEADERS_LEN,
        read, view, write_bytes, write_u16,
    },
    stats,
};

/// Not inlined: its frame replaces `translate`'s rather than adding to it.
#[inline(never)]
pub fn v6(ctx: &impl Frame, cfg: &Config) -> Packed {
    Packed::pack(rewrite(ctx, cfg))
}

#[inline(always)]
fn rewrite(ctx: &impl Frame, cfg: &Config) -> Result<Step, DropReason> {
    let s = crate::scratch::get()?;
    // A mask the verifier can see; `translate` never hands over more than MAX_HEADERS_LEN.
    let l4_off = s.l4_off as usize & 0x3ff;
    if !(ETH_LEN + IPV6_LEN..=MAX_HEADERS_LEN).contains(&l4_off) {
        return Err(DropReason::ExtensionHeader);
    }
    let proto = s.l4_proto;
    let ip6 = view::<Ipv6Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    let payload_len = u16::from_be_bytes(ip6.payload_len);
    // `translate` checked all of this: the source maps, the destination is pool6 + an EAM
    // IPv4 address.
    let src4 = addrmap::v6_to_v4(cfg, &ip6.src).ok_or(DropReason::SourceUntranslatable)?;
    let dst4 = addrmap::v6_to_v4(cfg, &ip6.dst).ok_or(DropReason::BadHeader)?;
    let dst_map = addrmap::v4_dst(cfg, dst4).ok_or(DropReason::BadHeader)?;
    let new_src = embed(&cfg.pool6, cfg.pool6_len, src4).ok_or(DropReason::SourceUntranslatable)?;
    let new_dst = addrmap::to6(cfg, dst_map, dst4);
    let old_addrs = sum16(&ip6.src) + sum16(&ip6.dst);
    let new_addrs = sum16(&new_src) + sum16(&new_dst);
    let l4_len = payload_len
        .checked_sub((l4_off - ETH_LEN - IPV6_LEN) as u16)
        .ok_or(DropReason::Truncated)?;

    let counted = match proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            let delta = l4::PseudoDelta {
                old_addrs,
                new_addrs,
                len_proto: l4_len as u32 + proto as u32,
                old_port: 0,
                new_port: 0,
            };
            l4::fix_checksum(ctx, proto, l4_off, &delta, l4::ZeroUdp::Keep)?;
            if proto == IPPROTO_TCP {
                L4Proto::Tcp
            } else {
                L4Proto::Udp
            }
        }
        IPPROTO_ICMPV6 => {
            // Still ICMPv6: only the pseudo-header addresses change.
            let c = read::<[u8; 2]>(ctx, l4_off + 2).ok_or(DropReason::Truncated)?;
            let n = checksum::update(u16::from_be_bytes(c), old_addrs, new_addrs);
            write_u16(ctx, l4_off + 2, n).ok_or(DropReason::Truncated)?;
            L4Proto::Icmp
        }
        _ => L4Proto::Other,
    };
    write_bytes(ctx, ETH_LEN + 8, new_src)?;
    write_bytes(ctx, ETH_LEN + 24, new_dst)?;
    if link::on_link(cfg) {
        // See `link::hops`. IPv6 has no header checksum to follow.
        write_bytes(ctx, ETH_LEN + 7, [link::hops(cfg, ip6.hop_limit)])?;
    }
    stats::add(Counter::Packets(Dir::V6ToV4, counted), 1);
    stats::add(
        Counter::Bytes(Dir::V6ToV4),
        (IPV6_LEN + payload_len as usize) as u64,
    );
    Ok(Step::Translated)
}
