//! IPv4 to IPv6 (RFC 7915 section 4).

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use nat64_common::{
    Counter, Dir, DropReason, Handoff, L4Proto,
    addr::is_translatable_v4,
    checksum::{self, sum4, sum16},
    icmp::{Translation, icmp4_to_icmp6},
    maps::{CONFIG_F_COPY_TOS, CONFIG_F_STATEFUL, Config},
    state,
};

use crate::{
    Packed, Step, addrmap, l4, link,
    packet::{
        ETH_LEN, ETH_P_IPV6, EthHdr, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
        IPV4_LEN, IPV6_LEN, IcmpFull, Ipv4Hdr, exceeds_mtu, frame_len, ptr_at, read, resize_head,
        sum_words, view, word, write_bytes,
    },
    stateful, stats,
};

const IPV4_DF: u16 = 0x4000;
const IPV4_MF: u16 = 0x2000;
const IPV4_OFFSET_MASK: u16 = 0x1fff;
const IPPROTO_FRAGMENT: u8 = 44;
const FRAG_LEN: usize = 8;
/// Longest IPv4 options area: IHL 15 words minus the fixed 5.
const MAX_OPTIONS: usize = 40;
const IPOPT_EOL: u8 = 0;
const IPOPT_NOP: u8 = 1;
const IPOPT_LSRR: u8 = 131;
const IPOPT_SSRR: u8 = 137;

/// RFC 7915 section 4.1: the first IPv6 header word: version 6, traffic class from the TOS
/// (or zero when so configured), flow label zero.
#[inline(always)]
pub fn first_word(cfg: &Config, tos: u8) -> [u8; 4] {
    let tc = if cfg.flags & CONFIG_F_COPY_TOS != 0 {
        tos
    } else {
        0
    };
    [0x60 | (tc >> 4), tc << 4, 0, 0]
}

/// Not inlined: each direction gets its own stack frame, so the BPF stack (512 bytes over the
/// whole call chain) holds only the path a packet takes.
#[inline(never)]
pub fn translate(ctx: &XdpContext, cfg: &Config) -> Packed {
    Packed::pack(translate_packet(ctx, cfg))
}

#[inline(always)]
fn translate_packet(ctx: &XdpContext, cfg: &Config) -> Result<Step, DropReason> {
    let Some(ip4) = view::<Ipv4Hdr>(ctx, ETH_LEN) else {
        return Ok(Step::Done(xdp_action::XDP_PASS));
    };
    if ip4.ver_ihl >> 4 != 4 {
        return Ok(Step::Done(xdp_action::XDP_PASS));
    }
    // Only destinations mapped by an EAM entry are ours (see `addrmap::v4_dst`), and with
    // stateful NAT64 the pool4 addresses (RFC 6146), translated through their bindings.
    let eam_dst = addrmap::v4_dst(ip4.dst);
    let to_pool4 =
        eam_dst.is_none() && cfg.flags & CONFIG_F_STATEFUL != 0 && stateful::in_pool4(cfg, ip4.dst);
    if eam_dst.is_none() && !to_pool4 {
        return Ok(Step::Done(xdp_action::XDP_PASS));
    }
    if exceeds_mtu(ctx) {
        return link::hand_off(
            cfg,
            Dir::V4ToV6,
            Handoff::GsoAggregate,
            DropReason::Oversize,
        );
    }

    let ihl = ((ip4.ver_ihl & 0x0f) as usize) * 4;
    let tot_len = u16::from_be_bytes(ip4.tot_len) as usize;
    if ihl < IPV4_LEN || tot_len < ihl {
        return Err(DropReason::BadHeader);
    }
    if ETH_LEN + tot_len > frame_len(ctx) {
        return Err(DropReason::Truncated);
    }
    // The kernel would drop a corrupt header in ip_rcv(); we run before it, so check here.
    match sum_words(ctx, ETH_LEN, ihl) {
        Some(s) if checksum::fold(s) == 0xffff => {}
        _ => return Err(DropReason::BadHeader),
    }
    // RFC 7915 section 4.1: a fragment gets a Fragment header carrying its offset, MF flag and
    // identification. Only the first fragment has the transport header.
    let frag = u16::from_be_bytes(ip4.frag);
    let fragmented = frag & (IPV4_MF | IPV4_OFFSET_MASK) != 0;
    let first = frag & IPV4_OFFSET_MASK == 0;
    // A fragmented ICMP message cannot be translated piecewise: the ICMPv6 checksum covers a
    // pseudo-header with the reassembled length, which no single fragment knows.
    if fragmented && ip4.proto == IPPROTO_ICMP {
        return Err(DropReason::Fragment);
    }
    let frag_hdr_len = if fragmented { FRAG_LEN } else { 0 };
    // RFC 7915 section 4.1: the translated packet must leave with a hop limit of at least one;
    // the kernel's forwarding of the translated packet does the decrement (see v6_to_v4).
    if ip4.ttl <= 1 && !link::on_link(cfg) {
        // Not translated: handed to the kernel as it came, whose forwarding path answers ICMP
        // Time Exceeded from this node's own address, as RFC 7915 sections 4.1 and 5.1 want
        // (it needs a route for the destination, which the daemon installs). So the translator
        // shows up in a traceroute like any router.
        stats::add(
            Counter::Dropped(Dir::V4ToV6, DropReason::HopLimitExceeded),
            1,
        );
        return Ok(Step::Done(xdp_action::XDP_PASS));
    }
    if ihl > IPV4_LEN {
        check_options(ctx, ihl)?;
    }
    if !is_translatable_v4(ip4.src) || !is_translatable_v4(ip4.dst) {
        return Err(DropReason::MartianAddress);
    }
    let src_map = addrmap::v4_src(cfg, ip4.src).ok_or(DropReason::SourceUntranslatable)?;

    let payload_len = (tot_len - ihl) as u16;
    let l4_off = ETH_LEN + ihl;
    // ICMP by table (RFC 7915 section 4.2). Only the echo type travels on; errors and the
    // packet they quote (section 4.3) go to `icmp_error`.
    let echo = if ip4.proto == IPPROTO_ICMP {
        let h = read::<IcmpFull>(ctx, l4_off).ok_or(DropReason::Truncated)?;
        match icmp4_to_icmp6(h.ty, h.code, h.rest)? {
            Translation::Info { ty } => Some((h, ty)),
            // Errors to pool4 go through the binding of the packet they quote (`icmp_error`).
            _ => return Ok(Step::IcmpError),
        }
    } else {
        None
    };
    // The translated packet must fit the IPv6 MTU. Too big with DF set: the sender runs path
    // MTU discovery (RFC 1191), so it gets Fragmentation Needed from here (`too_big`). Too big
    // without DF, or a fragment: RFC 7915 section 4.1 wants it fragmented so that each piece
    // fits, which XDP cannot do (one packet in, one out); the kernel does it on the way into
    // the translator link, whose IPv4 routes carry an MTU of ipv6_mtu - 28 (20 bytes of header
    // growth and 8 of Fragment header), and the pieces are translated there.
    let v6_len = payload_len as usize + IPV6_LEN + frag_hdr_len;
    if cfg.ipv6_mtu != 0 && v6_len > cfg.ipv6_mtu as usize {
        if frag & IPV4_DF != 0 {
            return Ok(Step::FragNeeded);
        }
        return link::hand_off(
            cfg,
            Dir::V4ToV6,
            Handoff::NeedsFragmentation,
            DropReason::PacketTooBig,
        );
    }
    // The destination: its EAM entry, or the binding of its pool4 transport address, whose
    // IPv6 port replaces the destination port (TCP, UDP) or the echo identifier (ICMP).
    let (dst_map, port_change) = match eam_dst {
        Some(m) => (m, None),
        None => {
            if fragmented {
                return Err(DropReason::Fragment);
            }
            let (m, at, old, new) = bind_inbound(ctx, ip4.dst, ip4.proto, l4_off, echo.is_some())?;
            write_bytes(ctx, at, new.to_be_bytes())?;
            (m, Some((old, new)))
        }
    };
    let (old_port, new_port) = port_change.unwrap_or((0, 0));
    let (v4src, v4dst) = (ip4.src, ip4.dst);
    let new_addrs =
        sum16(&addrmap::to6(cfg, src_map, v4src)) + sum16(&addrmap::to6(cfg, dst_map, v4dst));
    let delta = l4::PseudoDelta {
        old_addrs: sum4(&ip4.src) + sum4(&ip4.dst),
        new_addrs,
        len_proto: payload_len as u32 + ip4.proto as u32,
        old_port: old_port as u32,
        new_port: new_port as u32,
    };
    let (nh, counted) = match (ip4.proto, echo) {
        // Not the first fragment: no transport header to fix.
        (IPPROTO_TCP | IPPROTO_UDP, _) if !first => (
            ip4.proto,
            if ip4.proto == IPPROTO_TCP {
                L4Proto::Tcp
            } else {
                L4Proto::Udp
            },
        ),
        (IPPROTO_TCP | IPPROTO_UDP, _) => {
            // RFC 7915 section 4.5: IPv6 requires a UDP checksum. A stateless translator
            // computes a missing one for an unfragmented datagram and drops a fragmented one.
            let zero_udp = if fragmented {
                l4::ZeroUdp::Drop
            } else {
                l4::ZeroUdp::Compute {
                    len: payload_len as usize,
                }
            };
            let partial = crate::iface::partial_checksums(ctx);
            l4::fix_checksum(ctx, ip4.proto, l4_off, &delta, partial, zero_udp)?;
            (
                ip4.proto,
                if ip4.proto == IPPROTO_TCP {
                    L4Proto::Tcp
                } else {
                    L4Proto::Udp
                },
            )
        }
        (_, Some((h, ty))) => {
            echo4_to_echo6(
                ctx,
                l4_off,
                new_addrs,
                payload_len,
                &h,
                ty,
                (old_port, new_port),
            )?;
            (IPPROTO_ICMPV6, L4Proto::Icmp)
        }
        // RFC 7915 section 4.1: any other protocol is copied as is.
        (other, _) => (other, L4Proto::Other),
    };

    // RFC 7915 section 4.1, field by field: traffic class from TOS, flow label zero, payload
    // length from total length minus the IPv4 header and options, next header from protocol,
    // hop limit from TTL. Options are not translated.
    let w0 = first_word(cfg, ip4.tos);
    let [l0, l1] = (payload_len + frag_hdr_len as u16).to_be_bytes();
    let next = if fragmented { IPPROTO_FRAGMENT } else { nh };
    let first8 = [
        w0[0],
        w0[1],
        w0[2],
        w0[3],
        l0,
        l1,
        next,
        link::hops(cfg, ip4.ttl),
    ];
    // Fragment header: next header, reserved, offset (8-byte units) << 3 | M, identification
    // (the IPv4 one, zero-extended to 32 bits).
    let [o0, o1] = (((frag & IPV4_OFFSET_MASK) << 3) | ((frag & IPV4_MF) >> 13)).to_be_bytes();
    let frag8 = [nh, 0, o0, o1, 0, 0, ip4.id[0], ip4.id[1]];

    let eth = read::<EthHdr>(ctx, 0).ok_or(DropReason::Truncated)?;
    // Grow (or, with more than 20 bytes of options, shrink) the head so the transport header
    // stays where it is.
    let grow = (IPV6_LEN + frag_hdr_len) as i32 - ihl as i32;
    if !resize_head(ctx, -grow, &eth, ETH_P_IPV6) {
        return Err(DropReason::HeadroomExhausted);
    }
    write_bytes(ctx, ETH_LEN, first8)?;
    write_bytes(ctx, ETH_LEN + 8, addrmap::to6(cfg, src_map, v4src))?;
    write_bytes(ctx, ETH_LEN + 24, addrmap::to6(cfg, dst_map, v4dst))?;
    if fragmented {
        write_bytes(ctx, ETH_LEN + IPV6_LEN, frag8)?;
    }

    stats::add(Counter::Packets(Dir::V4ToV6, counted), 1);
    stats::add(
        Counter::Bytes(Dir::V4ToV6),
        (payload_len as u64) + (IPV6_LEN + frag_hdr_len) as u64,
    );
    Ok(Step::Translated)
}

/// RFC 7915 section 4.1: options are ignored, except that an unexpired source route (LSRR or
/// SSRR whose pointer has not run past its length) means the packet must be discarded.
#[inline(always)]
fn check_options(ctx: &XdpContext, ihl: usize) -> Result<(), DropReason> {
    let end = ihl - IPV4_LEN;
    let base = ETH_LEN + IPV4_LEN;
    let mut i = 0usize;
    // Each iteration consumes at least one byte, so MAX_OPTIONS iterations cover the area.
    for _ in 0..MAX_OPTIONS {
        if i >= end || i >= MAX_OPTIONS {
            return Ok(());
        }
        let ty = read::<u8>(ctx, base + i).ok_or(DropReason::Truncated)?;
        match ty {
            IPOPT_EOL => return Ok(()),
            IPOPT_NOP => i += 1,
            _ => {
                let [len, ptr] = read::<[u8; 2]>(ctx, base + i + 1).ok_or(DropReason::BadHeader)?;
                if len < 2 {
                    return Err(DropReason::BadHeader);
                }
                if (ty == IPOPT_LSRR || ty == IPOPT_SSRR) && ptr <= len {
                    return Err(DropReason::SourceRoute);
                }
                i += len as usize;
            }
        }
    }
    Ok(())
}

/// ICMPv4 echo to ICMPv6 echo (RFC 7915 section 4.2): the type changes and the ICMPv6
/// pseudo-header (RFC 8200 section 8.1) enters the checksum.
#[inline(always)]
fn echo4_to_echo6(
    ctx: &XdpContext,
    off: usize,
    addrs6: u32,
    payload_len: u16,
    h: &IcmpFull,
    ty6: u8,
    (old_id, new_id): (u16, u16),
) -> Result<(), DropReason> {
    let pseudo = addrs6 + payload_len as u32 + IPPROTO_ICMPV6 as u32;
    let c = checksum::update(
        u16::from_be_bytes(h.check),
        word(h.ty, h.code) + old_id as u32,
        pseudo + word(ty6, h.code) + new_id as u32,
    );
    let p = ptr_at::<[u8; 4]>(ctx, off).ok_or(DropReason::Truncated)?;
    let [cb0, cb1] = c.to_be_bytes();
    // SAFETY: bounds checked by `ptr_at`.
    unsafe { p.write_unaligned([ty6, h.code, cb0, cb1]) };
    Ok(())
}

/// Stateful NAT64 (RFC 6146): the binding of an IPv4 packet to a pool4 address, where the port
/// word sits (TCP or UDP destination port, ICMP echo identifier), and the old and new value.
#[inline(always)]
fn bind_inbound(
    ctx: &XdpContext,
    dst4: [u8; 4],
    proto: u8,
    l4_off: usize,
    echo: bool,
) -> Result<(addrmap::To6, usize, u16, u16), DropReason> {
    let (at, bib_proto, flags) = match proto {
        IPPROTO_TCP => {
            let f = read::<u8>(ctx, l4_off + 13).ok_or(DropReason::Truncated)?;
            (l4_off + 2, state::BIB_TCP, f)
        }
        IPPROTO_UDP => (l4_off + 2, state::BIB_UDP, 0),
        IPPROTO_ICMP if echo => (l4_off + 4, state::BIB_ICMP, 0),
        _ => return Err(DropReason::NoBinding),
    };
    let port4 = read::<[u8; 2]>(ctx, at).ok_or(DropReason::Truncated)?;
    let b = stateful::inbound(dst4, port4, bib_proto, flags).ok_or(DropReason::NoBinding)?;
    Ok((
        addrmap::To6::Bib(b),
        at,
        u16::from_be_bytes(port4),
        u16::from_be_bytes(b.port6),
    ))
}
