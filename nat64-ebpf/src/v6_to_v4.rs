//! IPv6 to IPv4 (RFC 7915 section 5).

use aya_ebpf::{
    bindings::xdp_action, helpers::generated::bpf_get_prandom_u32, programs::XdpContext,
};
use nat64_common::{
    Counter, Dir, DropReason, L4Proto,
    addr::is_translatable_v4,
    checksum::{self, sum4, sum16},
    maps::{CONFIG_F_COPY_TOS, Config},
};

use crate::{
    addrmap, l4,
    packet::{
        ETH_LEN, ETH_P_IP, EthHdr, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
        IPV4_LEN, IPV6_LEN, IcmpHdr, Ipv4Hdr, Ipv6Hdr, exceeds_mtu, frame_len, ptr_at, read,
        resize_head,
    },
    stats,
};

/// RFC 7915 section 5.1: a translated packet of at most 1260 bytes gets DF=0 (so that an IPv4
/// router can still fragment it for a path MTU below 1280), a larger one DF=1.
const DF_THRESHOLD: u16 = 1260;
const IPV4_DF: u16 = 0x4000;

/// ICMPv6 informational types that have an ICMPv4 counterpart (RFC 7915 section 5.2).
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;

/// Next-header values that are IPv6 extension headers (RFC 8200 section 4 and the IANA
/// registry): hop-by-hop, routing, fragment, AH, destination options, mobility, HIP, shim6,
/// and the two experimental values. Their translation is issue #3; until then they are
/// dropped and counted, never passed as if they were a transport header.
#[inline(always)]
fn is_extension_header(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 44 | 51 | 60 | 135 | 139 | 140 | 253 | 254)
}

#[inline(always)]
pub fn translate(ctx: &XdpContext, cfg: &Config) -> Result<u32, DropReason> {
    // Too short to hold an IPv6 header: not a packet we can call ours; the kernel drops it.
    let Some(ip6) = read::<Ipv6Hdr>(ctx, ETH_LEN) else {
        return Ok(xdp_action::XDP_PASS);
    };
    if ip6.vtcfl[0] >> 4 != 6 {
        return Ok(xdp_action::XDP_PASS);
    }
    // The destination decides whether the packet is ours; everything else goes to the kernel.
    let Some(dst4) = addrmap::v6_to_v4(cfg, &ip6.dst) else {
        return Ok(xdp_action::XDP_PASS);
    };

    if exceeds_mtu(ctx) {
        return Err(DropReason::Oversize);
    }
    // RFC 7915 section 5.1: the packet must leave with a hop limit of at least one. The kernel
    // decrements the TTL when it forwards the translated packet (XDP_PASS), so the node costs
    // exactly one hop; here we only refuse packets that would expire on this hop.
    if ip6.hop_limit <= 1 {
        return Err(DropReason::HopLimitExceeded);
    }
    let src4 = addrmap::v6_to_v4(cfg, &ip6.src).ok_or(DropReason::SourceUntranslatable)?;
    if !is_translatable_v4(dst4) || !is_translatable_v4(src4) {
        return Err(DropReason::MartianAddress);
    }
    let nh = ip6.next_header;
    if is_extension_header(nh) {
        return Err(DropReason::ExtensionHeader);
    }
    let payload_len = u16::from_be_bytes(ip6.payload_len);
    if ETH_LEN + IPV6_LEN + payload_len as usize > frame_len(ctx) {
        return Err(DropReason::Truncated);
    }
    // An IPv4 total length is 16 bits; XDP frames never get close, but say so explicitly.
    let Some(tot_len) = payload_len.checked_add(IPV4_LEN as u16) else {
        return Err(DropReason::BadHeader);
    };

    let l4_off = ETH_LEN + IPV6_LEN;
    let delta = l4::PseudoDelta {
        old_addrs: sum16(&ip6.src) + sum16(&ip6.dst),
        new_addrs: sum4(&src4) + sum4(&dst4),
        len_proto: payload_len as u32 + nh as u32,
    };
    let (proto4, counted) = match nh {
        IPPROTO_TCP | IPPROTO_UDP => {
            // A zero UDP checksum is illegal in IPv6 (RFC 8200 section 8.1) but means "none"
            // in IPv4: keep it rather than invent one.
            l4::fix_checksum(ctx, nh, l4_off, &delta, l4::partial_allowed(ctx), Ok(()))?;
            (
                nh,
                if nh == IPPROTO_TCP {
                    L4Proto::Tcp
                } else {
                    L4Proto::Udp
                },
            )
        }
        IPPROTO_ICMPV6 => {
            icmp6_to_icmp4(ctx, l4_off, &ip6, payload_len)?;
            (IPPROTO_ICMP, L4Proto::Icmp)
        }
        // RFC 7915 section 5.1: any other protocol is copied as is.
        other => (other, L4Proto::Other),
    };

    // RFC 7915 section 5.1, field by field.
    let tos = if cfg.flags & CONFIG_F_COPY_TOS != 0 {
        (ip6.vtcfl[0] << 4) | (ip6.vtcfl[1] >> 4)
    } else {
        0
    };
    let (id, frag) = if tot_len > DF_THRESHOLD {
        // RFC 6864 section 4.1: the ID of an atomic (DF=1) datagram carries no meaning.
        (0u16, IPV4_DF)
    } else {
        // SAFETY: helper without arguments.
        ((unsafe { bpf_get_prandom_u32() }) as u16, 0u16)
    };
    let mut hdr = Ipv4Hdr {
        ver_ihl: 0x45,
        tos,
        tot_len: tot_len.to_be_bytes(),
        id: id.to_be_bytes(),
        frag: frag.to_be_bytes(),
        ttl: ip6.hop_limit,
        proto: proto4,
        check: [0; 2],
        src: src4,
        dst: dst4,
    };
    // SAFETY: `Ipv4Hdr` is 20 plain bytes.
    let bytes: [u8; IPV4_LEN] = unsafe { core::mem::transmute(hdr) };
    hdr.check = checksum::ipv4_header(&bytes).to_be_bytes();

    let eth = read::<EthHdr>(ctx, 0).ok_or(DropReason::Truncated)?;
    // The IPv4 header is 20 bytes shorter: move the frame start forward so the transport header
    // stays where it is.
    if !resize_head(ctx, (IPV6_LEN - IPV4_LEN) as i32, &eth, ETH_P_IP) {
        return Err(DropReason::HeadroomExhausted);
    }
    let p = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    // SAFETY: bounds checked by `ptr_at`.
    unsafe { p.write_unaligned(hdr) };

    stats::add(Counter::Packets(Dir::V6ToV4, counted), 1);
    stats::add(Counter::Bytes(Dir::V6ToV4), tot_len as u64);
    Ok(xdp_action::XDP_PASS)
}

/// ICMPv6 echo to ICMPv4 echo (RFC 7915 section 5.2). The ICMPv6 checksum covers a
/// pseudo-header that ICMPv4 lacks, so it is taken out along with the type change.
#[inline(always)]
fn icmp6_to_icmp4(
    ctx: &XdpContext,
    off: usize,
    ip6: &Ipv6Hdr,
    payload_len: u16,
) -> Result<(), DropReason> {
    let p = ptr_at::<IcmpHdr>(ctx, off).ok_or(DropReason::Truncated)?;
    // SAFETY: bounds checked by `ptr_at`.
    let mut h = unsafe { p.read_unaligned() };
    let ty4 = match h.ty {
        ICMPV6_ECHO_REQUEST => ICMP_ECHO_REQUEST,
        ICMPV6_ECHO_REPLY => ICMP_ECHO_REPLY,
        // Errors (with their inner packets) are issue #3; MLD, ND and the other single-hop
        // messages are never translated (RFC 7915 section 5.2: "silently drop").
        _ => return Err(DropReason::IcmpUntranslatable),
    };
    // Pseudo-header of RFC 8200 section 8.1: addresses, 32-bit length, next header.
    let pseudo = sum16(&ip6.src) + sum16(&ip6.dst) + payload_len as u32 + IPPROTO_ICMPV6 as u32;
    let old_word = u16::from_be_bytes([h.ty, h.code]) as u32;
    let new_word = u16::from_be_bytes([ty4, h.code]) as u32;
    let c = checksum::update(u16::from_be_bytes(h.check), pseudo + old_word, new_word);
    h.ty = ty4;
    h.check = c.to_be_bytes();
    // SAFETY: bounds checked by `ptr_at`.
    unsafe { p.write_unaligned(h) };
    Ok(())
}
