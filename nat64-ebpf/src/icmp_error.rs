//! ICMP error messages and the packet they quote (RFC 7915 sections 4.2-4.3 and 5.2-5.3).
//!
//! An error carries the offending packet as a router saw it, usually truncated. Its IP header
//! is translated like an outer one, its addresses mapped the same way, its transport checksum
//! updated where it was quoted, and the outer ICMP checksum, which covers all of it, updated
//! incrementally: the words that left are subtracted and the ones that came are added. So an
//! error's checksum is checked first (RFC 7915 section 5.2 for ICMPv6; ICMPv4 likewise, as
//! Jool does) and a wrong one dropped, so that nothing corrupt leaves looking translated.
//!
//! Layout, 6 to 4 (the frame shrinks by 40 bytes; the quoted data does not move):
//! `eth | IPv6 40 | ICMPv6 8 | IPv6 40 | data` -> `eth | IPv4 20 | ICMP 8 | IPv4 20 | data`.
//! 4 to 6 is the reverse; outer and inner IPv4 options are dropped.
//!
//! These functions run when `translate` has already decided the packet is ours and is an ICMP
//! error. They are called from the entry point, not from `translate`, so their stack frame
//! replaces it rather than adding to it (the BPF stack is 512 bytes over the call chain), and
//! they re-read what they need from the packet.
//!
//! Why one file of this size: both directions of ICMP error translation (RFC 7915 sections 4.2 and
//! 5.2, with the packet each error quotes, sections 4.5 and 5.5) share the quoted-packet helpers
//! and the stack discipline described above.

use crate::frame::Frame;
use nat64_common::{
    Counter, Dir, DropReason, Handoff, L4Proto,
    checksum::{self, sum4, sum16},
    icmp::{
        ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, Translation,
        drops_extension4, has_length6, icmp4_to_icmp6, icmp6_to_icmp4, mtu4_from_ptb,
        mtu6_from_frag_needed,
    },
    maps::{CONFIG_F_STATEFUL, CONFIG_F2_ICMP_SRC_QUOTED, Config},
    rfc4884::{self, Towards},
};

use crate::{
    Packed, Step, addrmap, extension, iface, link,
    packet::{
        ETH_LEN, ETH_P_IP, ETH_P_IPV6, ICMP_LEN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
        IPPROTO_UDP, IPV4_LEN, IPV6_LEN, IcmpFull, Ipv4Hdr, Ipv6Hdr, TCP_CSUM_OFF, UDP_CSUM_OFF,
        ipv4_header, ipv6_header_sum, is_extension_header, load_u8, read, resize_head, shrink_head,
        sum_words, view, word, write_bytes, write_u16,
    },
    packet::{MAX_HEADERS_LEN, sum_range},
    proto::{FRAG_LEN, IPPROTO_FRAGMENT},
    rfc6791::{self, Source4},
    stats, v4_to_v6, v6_to_v4,
};

/// `Scratch::rfc6791`: the error's RFC 6791 source is one of the node's own, to be found on
/// the translator link (see `rfc6791`).
const HAND_OFF: u8 = 2;

/// Extension headers walked in a quoted IPv6 packet, and the most bytes they may take.
const MAX_QUOTED_EXTENSION_HEADERS: usize = 4;
const MAX_QUOTED_EXTENSION_BYTES: usize = 256;

/// What changed in the quoted transport header, as sums of the words removed and added.
struct InnerL4 {
    proto: u8,
    removed: u32,
    added: u32,
}

#[inline(always)]
fn rest_sum(r: &[u8; 4]) -> u32 {
    word(r[0], r[1]) + word(r[2], r[3])
}

/// Rewrites the quoted checksum at `off` (when it was quoted at all) for new pseudo-header
/// addresses, and returns the (removed, added) words. A zero UDP checksum stays zero.
#[inline(always)]
fn quoted_checksum(
    ctx: &impl Frame,
    off: usize,
    udp: bool,
    old_addrs: u32,
    new_addrs: u32,
) -> (u32, u32) {
    let Some(c) = read::<[u8; 2]>(ctx, off) else {
        return (0, 0);
    };
    let c = u16::from_be_bytes(c);
    if udp && c == 0 {
        return (0, 0);
    }
    let mut n = checksum::update(c, old_addrs, new_addrs);
    if udp && n == 0 {
        n = 0xffff;
    }
    if write_u16(ctx, off, n).is_none() {
        return (0, 0);
    }
    (c as u32, n as u32)
}

/// The quoted transport header: TCP and UDP checksums follow the inner addresses; an echo
/// changes type and gains or loses the ICMPv6 pseudo-header (`pseudo6_add` / `pseudo6_remove`,
/// one of them zero). An error inside an error is never translated.
#[inline(always)]
fn inner_l4(
    ctx: &impl Frame,
    off: usize,
    proto: u8,
    old_addrs: u32,
    new_addrs: u32,
    pseudo6: (u32, u32),
) -> Result<InnerL4, DropReason> {
    match proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            let csum_off = off
                + if proto == IPPROTO_TCP {
                    TCP_CSUM_OFF
                } else {
                    UDP_CSUM_OFF
                };
            let (removed, added) =
                quoted_checksum(ctx, csum_off, proto == IPPROTO_UDP, old_addrs, new_addrs);
            Ok(InnerL4 {
                proto,
                removed,
                added,
            })
        }
        IPPROTO_ICMPV6 | IPPROTO_ICMP => {
            let h = read::<[u8; 4]>(ctx, off).ok_or(DropReason::InnerUntranslatable)?;
            let (ty, out_proto) = match (proto, h[0]) {
                (IPPROTO_ICMPV6, ICMPV6_ECHO_REQUEST) => (ICMP_ECHO_REQUEST, IPPROTO_ICMP),
                (IPPROTO_ICMPV6, ICMPV6_ECHO_REPLY) => (ICMP_ECHO_REPLY, IPPROTO_ICMP),
                (IPPROTO_ICMP, ICMP_ECHO_REQUEST) => (ICMPV6_ECHO_REQUEST, IPPROTO_ICMPV6),
                (IPPROTO_ICMP, ICMP_ECHO_REPLY) => (ICMPV6_ECHO_REPLY, IPPROTO_ICMPV6),
                _ => return Err(DropReason::InnerUntranslatable),
            };
            let old = u16::from_be_bytes([h[2], h[3]]);
            let (sub, add) = pseudo6;
            let new = checksum::update(old, sub + word(h[0], h[1]), add + word(ty, h[1]));
            let [n0, n1] = new.to_be_bytes();
            write_bytes(ctx, off, [ty, h[1], n0, n1])?;
            Ok(InnerL4 {
                proto: out_proto,
                removed: word(h[0], h[1]) + old as u32,
                added: word(ty, h[1]) + new as u32,
            })
        }
        other => Ok(InnerL4 {
            proto: other,
            removed: 0,
            added: 0,
        }),
    }
}

/// RFC 7915 section 5.2: an ICMPv6 error becomes an ICMPv4 error (section 5.3 for the packet
/// inside).
#[inline(never)]
pub fn v6_to_v4(ctx: &impl Frame, cfg: &Config) -> Packed {
    Packed::pack(error_6to4(ctx, cfg))
}

#[inline(always)]
fn error_6to4(ctx: &impl Frame, cfg: &Config) -> Result<Step, DropReason> {
    let s = crate::scratch::get()?;
    let ip6 = view::<Ipv6Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    // The ICMPv6 header follows any extension headers `translate` walked past (RFC 7915
    // section 5.1: they are skipped); they leave with the IPv6 header.
    // The mask is the bound the verifier sees (a range check alone is rewritten by LLVM into
    // a comparison on a temporary); `translate` never hands over more than MAX_HEADERS_LEN.
    let icmp_off = s.l4_off as usize & 0x3ff;
    if !(ETH_LEN + IPV6_LEN..=MAX_HEADERS_LEN).contains(&icmp_off) {
        return Err(DropReason::ExtensionHeader);
    }
    // Masked too: without it LLVM folds `new` below into `icmp_off - 14`, a negative constant
    // offset on a variable packet pointer, which the verifier refuses.
    let ext_len = (icmp_off - ETH_LEN - IPV6_LEN) & 0x1ff;
    let msg_len = u16::from_be_bytes(ip6.payload_len)
        .checked_sub(ext_len as u16)
        .ok_or(DropReason::Truncated)?;
    if (msg_len as usize) < ICMP_LEN + IPV6_LEN {
        return Err(DropReason::InnerUntranslatable);
    }
    // The ICMPv6 checksum covers a pseudo-header that ICMPv4 lacks (RFC 8200 section 8.1).
    s.removed = sum16(&ip6.src) + sum16(&ip6.dst) + msg_len as u32 + IPPROTO_ICMPV6 as u32;
    // RFC 7915 section 5.2: the checksum is checked before translation; the incremental
    // update below would otherwise carry a corrupt message into an ICMPv4 one.
    let whole = sum_range(ctx, icmp_off, msg_len as usize).ok_or(DropReason::Truncated)?;
    if checksum::fold(s.removed + whole) != 0xffff {
        return Err(DropReason::BadChecksum);
    }
    s.added = 0;
    s.tot_len = msg_len; // 20 + 8 + 20 + data = 8 + 40 + data
    s.outer_tos = v6_to_v4::tos(cfg, ip6);
    // A hairpinned error is translated twice, and the second translation gives the hop back
    // (`link::hops`) on the link: not this one as well.
    s.outer_ttl = if s.hairpin_error != 0 {
        ip6.hop_limit
    } else {
        link::hops(cfg, ip6.hop_limit)
    };
    // `translate` checked that both addresses map. A source with no mapping (a router, or a
    // stateful client) is settled once the quoted packet is known, further down.
    s.addr4[1] = addrmap::v6_to_v4(cfg, &ip6.dst).ok_or(DropReason::BadHeader)?;
    s.addr4[0] = addrmap::v6_to_v4(cfg, &ip6.src).unwrap_or([0; 4]);
    s.bound_port_at = 0;
    // RFC 6791: the source it gets unless the binding of the quoted packet gives one. Settled
    // here, before the branches below multiply the paths the verifier follows through the FIB
    // lookup; a hand-off waits until the binding is known not to apply.
    s.rfc6791 = 0;
    s.rfc6791_src = [0; 4];
    if rfc6791::from_this_node(ctx, cfg, &ip6.src) {
        s.addr4[0] = s.rfc6791_src;
        s.rfc6791 = 1;
    } else if s.addr4[0] == [0; 4] {
        match rfc6791::source4(ctx, cfg) {
            Source4::Address(a) => s.rfc6791_src = a,
            Source4::HandOff => s.rfc6791 = HAND_OFF,
            Source4::Found | Source4::Unknown => {}
        }
    }

    let icmp = read::<IcmpFull>(ctx, icmp_off).ok_or(DropReason::Truncated)?;
    s.check_in = u16::from_be_bytes(icmp.check);
    s.removed += word(icmp.ty, icmp.code) + rest_sum(&icmp.rest);
    // RFC 4884's length attribute (RFC 7915 section 5.2), where the type has one: the quote's
    // length in bytes, settled with the layout once the quote is known.
    s.ext_from = 0;
    let (ty, code, rest) = match icmp6_to_icmp4(icmp.ty, icmp.code, icmp.rest)? {
        Translation::Error { ty, code, rest } => {
            if has_length6(icmp.ty) {
                s.ext_from = icmp.rest[0] as u16 * 8;
            }
            (ty, code, rest)
        }
        Translation::TooBig { ty, code, mtu } => {
            let m = mtu4_from_ptb(mtu, iface::mtu(ctx));
            (ty, code, [0, 0, (m >> 8) as u8, m as u8])
        }
        Translation::Info { .. } => return Err(DropReason::IcmpUntranslatable),
    };
    s.added += word(ty, code) + rest_sum(&rest);
    s.icmp = [ty, code, 0, 0, rest[0], rest[1], rest[2], rest[3]];

    // Section 5.3: the quoted packet's addresses map like any others.
    let inner_off = icmp_off + ICMP_LEN;
    let inner = view::<Ipv6Hdr>(ctx, inner_off).ok_or(DropReason::InnerUntranslatable)?;
    if inner.vtcfl[0] >> 4 != 6 {
        return Err(DropReason::InnerUntranslatable);
    }
    s.addr4[2] = addrmap::v6_to_v4(cfg, &inner.src).ok_or(DropReason::InnerUntranslatable)?;
    // The quoted destination is the IPv6 host the error comes back from; with stateful NAT64
    // it may have no mapping but a binding, found once its transport header is reached.
    s.addr4[3] = match addrmap::v6_to_v4(cfg, &inner.dst) {
        Some(a) => a,
        None if cfg.flags & CONFIG_F_STATEFUL != 0 => {
            s.bound_port_at = 1;
            s.bib6_key.addr6 = inner.dst;
            [0; 4]
        }
        None => return Err(DropReason::InnerUntranslatable),
    };
    s.inner_tos = v6_to_v4::tos(cfg, inner);
    s.inner_ttl = inner.hop_limit;
    // The new inner IPv4 header adds nothing: a header with a valid checksum sums to zero.
    s.removed += ipv6_header_sum(inner);
    let old_inner_addrs = sum16(&inner.src) + sum16(&inner.dst);
    let inner_plen = u16::from_be_bytes(inner.payload_len);

    // The quoted packet's extension headers go with its IPv6 header (section 5.1 applied to
    // the quoted packet, 5.3); a quoted Fragment header becomes its IPv4 fragment fields.
    let mut nh = inner.next_header;
    let mut at = inner_off + IPV6_LEN;
    s.inner_fragmented = 0;
    for _ in 0..MAX_QUOTED_EXTENSION_HEADERS {
        match nh {
            0 | 43 | 60 => {
                let h = read::<[u8; 2]>(ctx, at).ok_or(DropReason::InnerUntranslatable)?;
                nh = h[0];
                at += (h[1] as usize + 1) * 8;
            }
            44 => {
                let f = read::<[u8; 8]>(ctx, at).ok_or(DropReason::InnerUntranslatable)?;
                nh = f[0];
                at += 8;
                let off_m = u16::from_be_bytes([f[2], f[3]]);
                let (offset, more) = (off_m >> 3, off_m & 1);
                // Section 5.1.1, an atomic fragment included: its Identification, DF clear.
                s.inner_fragmented = 1;
                s.inner_id = [f[6], f[7]];
                s.inner_frag = ((more << 13) | offset).to_be_bytes();
            }
            _ => break,
        }
        if at > inner_off + IPV6_LEN + MAX_QUOTED_EXTENSION_BYTES {
            return Err(DropReason::InnerUntranslatable);
        }
    }
    if is_extension_header(nh) {
        return Err(DropReason::InnerUntranslatable);
    }
    // Masked: a bound the verifier can see for the offsets computed from it.
    let inner_ext = (at - inner_off - IPV6_LEN) & 0x1ff;
    if inner_ext > 0 {
        s.removed += sum_range(ctx, inner_off + IPV6_LEN, inner_ext)
            .ok_or(DropReason::InnerUntranslatable)?;
    }
    // The quoted transport length (its pseudo-header length) and the quoted IPv4 total length.
    s.inner_plen = inner_plen
        .checked_sub(inner_ext as u16)
        .ok_or(DropReason::InnerUntranslatable)?;
    s.inner_tot = s
        .inner_plen
        .checked_add(IPV4_LEN as u16)
        .ok_or(DropReason::InnerUntranslatable)?;
    let first = s.inner_fragmented == 0 || u16::from_be_bytes(s.inner_frag) & 0x1fff == 0;
    if s.inner_frag != [0; 2] && s.inner_fragmented != 0 && nh == IPPROTO_ICMPV6 {
        // Its checksum covers a pseudo-header with the reassembled length: not known here.
        return Err(DropReason::InnerUntranslatable);
    }
    // The binding of the quoted packet (stateful NAT64): its IPv4 transport address replaces
    // the quoted destination and port, and the error comes from it when nothing else maps.
    let (mut old_port, mut new_port) = (0, 0);
    if s.bound_port_at != 0 {
        if !first {
            return Err(DropReason::InnerUntranslatable);
        }
        let l4_at = (at & 0x3ff) as usize;
        let (port_at, proto) = match nh {
            IPPROTO_TCP => (l4_at + 2, nat64_common::state::BIB_TCP),
            IPPROTO_UDP => (l4_at + 2, nat64_common::state::BIB_UDP),
            IPPROTO_ICMPV6 => (l4_at + 4, nat64_common::state::BIB_ICMP),
            _ => return Err(DropReason::InnerUntranslatable),
        };
        let old = read::<[u8; 2]>(ctx, port_at).ok_or(DropReason::InnerUntranslatable)?;
        s.bib6_key.port6 = old;
        s.bib6_key.proto = proto;
        s.bib6_key._pad = 0;
        // SAFETY: read-only lookup of a plain value, copied out.
        let b = unsafe { crate::maps::BIB6.get(&s.bib6_key) }.ok_or(DropReason::NoBinding)?;
        s.addr4[3] = b.addr4;
        if s.addr4[0] == [0; 4] {
            s.addr4[0] = b.addr4;
        }
        write_bytes(ctx, port_at, b.port4)?;
        old_port = word(old[0], old[1]);
        new_port = word(b.port4[0], b.port4[1]);
    }
    if s.addr4[0] == [0; 4] {
        // RFC 6791: a router with no IPv4 mapping, about a stateless flow (settled above).
        // Nothing has been written to the packet yet (only a binding writes before this), so
        // it can still be handed off untouched.
        if s.rfc6791 == HAND_OFF {
            return link::hand_off(
                cfg,
                Dir::V6ToV4,
                Handoff::OwnSource,
                DropReason::SourceUntranslatable,
            );
        }
        if s.rfc6791_src == [0; 4] {
            return Err(DropReason::SourceUntranslatable);
        }
        s.addr4[0] = s.rfc6791_src;
        s.rfc6791 = 1;
    }
    s.removed += old_port;
    s.added += new_port;
    let l4 = if first {
        inner_l4(
            ctx,
            (at & 0x3ff) as usize,
            nh,
            old_inner_addrs + old_port,
            sum4(&s.addr4[2]) + sum4(&s.addr4[3]) + new_port,
            (
                old_inner_addrs + s.inner_plen as u32 + IPPROTO_ICMPV6 as u32 + old_port,
                new_port,
            ),
        )?
    } else {
        InnerL4 {
            proto: nh,
            removed: 0,
            added: 0,
        }
    };
    s.inner_proto = l4.proto;
    s.removed += l4.removed;
    s.added += l4.added;
    // RFC 1812 section 4.3.2.3: an ICMPv4 error is at most 576 bytes long (as the kernel's own
    // and Jool's are), and RFC 4884 lays out a quote followed by an extension (see
    // `nat64_common::rfc4884`). Both IP headers shrink by 20 bytes and the quoted extension
    // headers go.
    let shrink = IPV6_LEN - IPV4_LEN + inner_ext;
    let body_in = msg_len as usize - ICMP_LEN;
    let l = rfc4884::layout(
        Towards::V4,
        s.ext_from as usize,
        body_in,
        IPV6_LEN + inner_ext,
        shrink as isize,
        false,
    )
    .ok_or(DropReason::InnerUntranslatable)?;
    s.icmp[5] = l.length;
    s.added += l.length as u32;
    // The bytes that leave the message (the end of the quote, where it was cut) leave the
    // checksum. They start at an even offset of the message (headers and extension headers
    // are all of even length, the quote kept a whole number of words).
    let gap = (l.gap_end - l.keep) & 0xfff;
    if gap > 0 {
        let at = (icmp_off + ICMP_LEN + l.keep + shrink) & 0xffff;
        s.removed += sum_range(ctx, at, gap).ok_or(DropReason::Truncated)?;
    }
    extension::record(s, &l);
    s.tot_len = (IPV4_LEN + ICMP_LEN + l.body()) as u16;
    let [c0, c1] = checksum::update(s.check_in, s.removed, s.added).to_be_bytes();
    s.icmp[2] = c0;
    s.icmp[3] = c1;

    // Everything is read; the new headers go where the frame will start (40 bytes in, plus
    // the extension headers), and only then does the start move.
    let new = 2 * (IPV6_LEN - IPV4_LEN) + ext_len + inner_ext;
    let (id, frag) = if s.outer_fragmented != 0 {
        (s.outer_id, [0; 2])
    } else {
        v6_to_v4::id_and_flags(s.tot_len)
    };
    let outer = ipv4_header(
        s.outer_tos,
        s.tot_len,
        id,
        frag,
        s.outer_ttl,
        IPPROTO_ICMP,
        s.addr4[0],
        s.addr4[1],
    );
    outer.write(ctx, new + ETH_LEN)?;
    let (iid, ifrag) = if s.inner_fragmented != 0 {
        (s.inner_id, s.inner_frag)
    } else {
        v6_to_v4::id_and_flags(s.inner_tot)
    };
    let inner4 = ipv4_header(
        s.inner_tos,
        s.inner_tot,
        iid,
        ifrag,
        s.inner_ttl,
        s.inner_proto,
        s.addr4[2],
        s.addr4[3],
    );
    inner4.write(ctx, new + ETH_LEN + IPV4_LEN + ICMP_LEN)?;
    write_bytes(ctx, new + ETH_LEN + IPV4_LEN, s.icmp)?;
    // The MAC addresses, as two scalars (a byte-array copy becomes a memcpy call).
    let mac_a = read::<u64>(ctx, 0).ok_or(DropReason::Truncated)?;
    let mac_b = read::<u32>(ctx, 8).ok_or(DropReason::Truncated)?;
    write_bytes(ctx, new, mac_a.to_ne_bytes())?;
    write_bytes(ctx, new + 8, mac_b.to_ne_bytes())?;
    write_bytes(ctx, new + 12, ETH_P_IP.to_be_bytes())?;
    if !shrink_head(ctx, new as i32, ETH_P_IP) {
        return Err(DropReason::HeadroomExhausted);
    }
    let body = ETH_LEN + IPV4_LEN + ICMP_LEN;
    extension::finish(ctx, s, body, ETH_LEN + s.tot_len as usize)?;

    stats::add(Counter::Packets(Dir::V6ToV4, L4Proto::Icmp), 1);
    stats::add(Counter::Bytes(Dir::V6ToV4), s.tot_len as u64);
    if s.rfc6791 == 1 {
        stats::add(Counter::Rfc6791(Dir::V6ToV4), 1);
    }
    Ok(Step::Translated)
}

/// RFC 7915 section 4.2: an ICMPv4 error becomes an ICMPv6 error (section 4.3 for the packet
/// inside).
#[inline(never)]
pub fn v4_to_v6(ctx: &impl Frame, cfg: &Config) -> Packed {
    Packed::pack(error_4to6(ctx, cfg))
}

#[inline(always)]
fn error_4to6(ctx: &impl Frame, cfg: &Config) -> Result<Step, DropReason> {
    let s = crate::scratch::get()?;
    let ip4 = view::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    let ihl = ((ip4.ver_ihl & 0x0f) as usize) * 4;
    let tot_len = u16::from_be_bytes(ip4.tot_len) as usize;
    // `translate` checked both addresses map: the destination through an EAM entry, or it is
    // a pool4 address and the binding is that of the quoted packet, which the binding sent
    // (RFC 6146 section 3.5: its IPv6 transport address replaces the quoted source). What the
    // binding says goes to the scratch slot, so that no path-dependent value stays live (the
    // verifier would follow both paths through everything below).
    let inner_off = ETH_LEN + ihl + ICMP_LEN;
    s.bound_port_at = 0;
    match addrmap::v4_dst(cfg, ip4.dst) {
        Some(m) => s.addr6[1] = addrmap::to6(cfg, m, ip4.dst),
        None => quoted_binding(ctx, s, ip4.dst, inner_off)?,
    }
    // The IPv4 half of a hairpinned error (RFC 7757 section 4; `again_4to6` in main.rs): its
    // source, and the quoted destination, were pool6 addresses on the way in (the sender
    // wrote to the other host's alias under pool6), and go back under pool6, as the source of
    // a hairpinned packet does (`hairpin`).
    let hairpin = cfg.flags & nat64_common::maps::CONFIG_F_HAIRPIN_IN != 0;
    let v4_src = |a| {
        if hairpin {
            Some(addrmap::To6::Pool6)
        } else {
            addrmap::v4_src(cfg, a)
        }
    };
    // RFC 6791: a router with no IPv6 mapping (no pool6, no EAM entry for it).
    s.rfc6791 = 0;
    match v4_src(ip4.src) {
        Some(m) => s.addr6[0] = addrmap::to6(cfg, m, ip4.src),
        None => {
            if !rfc6791::source6(ctx, cfg, s) {
                return Err(DropReason::SourceUntranslatable);
            }
            s.rfc6791 = 1;
        }
    }
    s.outer_tos = ip4.tos;
    s.outer_ttl = link::hops(cfg, ip4.ttl);

    let icmp_off = ETH_LEN + ihl;
    let icmp = read::<IcmpFull>(ctx, icmp_off).ok_or(DropReason::Truncated)?;
    // The checksum is checked before translation, as for an ICMPv6 error (section 5.2, and
    // Jool both ways): the incremental update below would carry a corrupt message into an
    // ICMPv6 error that looks translated. ICMPv4's covers the message alone (RFC 792).
    let whole = sum_range(ctx, icmp_off, tot_len - ihl).ok_or(DropReason::Truncated)?;
    if checksum::fold(whole) != 0xffff {
        return Err(DropReason::BadChecksum);
    }
    s.check_in = u16::from_be_bytes(icmp.check);
    s.removed = word(icmp.ty, icmp.code) + rest_sum(&icmp.rest);

    let inner = view::<Ipv4Hdr>(ctx, inner_off).ok_or(DropReason::InnerUntranslatable)?;
    let ihl_in = ((inner.ver_ihl & 0x0f) as usize) * 4;
    if inner.ver_ihl >> 4 != 4 || ihl_in < IPV4_LEN || tot_len < ihl + ICMP_LEN + ihl_in {
        return Err(DropReason::InnerUntranslatable);
    }
    // RFC 7915 section 4.3 translates the quoted header as section 4.1 does a packet, so a
    // quoted first fragment gains a Fragment Header (its Identification in the low 16 bits,
    // M set). A later fragment has no transport header to find the flow by (Jool drops it
    // too), and a fragmented ICMP message is not translated, as in `v4_to_v6`: its ICMPv6
    // checksum would need the length of the whole message.
    let frag = u16::from_be_bytes(inner.frag);
    if frag & 0x1fff != 0 || (frag & 0x2000 != 0 && inner.proto == IPPROTO_ICMP) {
        return Err(DropReason::InnerUntranslatable);
    }
    s.inner_fragmented = (frag >> 13) as u8 & 1;
    s.inner_id = inner.id;
    // The bytes the quoted header grows by beyond the IPv6 header: 8, or none.
    let fh = s.inner_fragmented as usize * FRAG_LEN;
    s.removed += sum_words(ctx, inner_off, ihl_in).ok_or(DropReason::InnerUntranslatable)?;
    if s.bound_port_at == 0 {
        let isrc_map = addrmap::v4_src(cfg, inner.src).ok_or(DropReason::InnerUntranslatable)?;
        s.addr6[2] = addrmap::to6(cfg, isrc_map, inner.src);
    }
    let idst_map = v4_src(inner.dst).ok_or(DropReason::InnerUntranslatable)?;
    s.addr6[3] = addrmap::to6(cfg, idst_map, inner.dst);
    // Stateful, `icmp_error_source = "quoted-destination"`: RFC 6146 section 3.4 takes an
    // error's tuple from its quoted packet, reversed, so its source is the quoted destination.
    if s.bound_port_at != 0 && cfg.flags2 & CONFIG_F2_ICMP_SRC_QUOTED != 0 {
        s.addr6[0] = s.addr6[3];
        s.rfc6791 = 0;
    }
    s.inner_tot = u16::from_be_bytes(inner.tot_len);
    s.inner_plen = s
        .inner_tot
        .checked_sub(ihl_in as u16)
        .ok_or(DropReason::InnerUntranslatable)?;
    s.inner_tos = inner.tos;
    s.inner_ttl = inner.ttl;

    let (ty, code, mut rest) = match icmp4_to_icmp6(icmp.ty, icmp.code, icmp.rest)? {
        Translation::Error { ty, code, rest } => (ty, code, rest),
        Translation::TooBig { ty, code, mtu } => (
            ty,
            code,
            mtu6_from_frag_needed(mtu, s.inner_tot, iface::mtu(ctx)).to_be_bytes(),
        ),
        Translation::Info { .. } => return Err(DropReason::IcmpUntranslatable),
    };
    // RFC 4443 section 2.4(c): an ICMPv6 error must not exceed the minimum IPv6 MTU, and RFC
    // 4884 lays out a quote followed by an extension (RFC 7915 section 4.2; see
    // `nat64_common::rfc4884`). The length attribute is read from every ICMPv4 error, as the
    // second byte of its second word; the types that become an ICMPv6 type without one
    // (Protocol Unreachable and Parameter Problem become Parameter Problem, Fragmentation
    // Needed becomes Packet Too Big) lose their extension.
    let l = rfc4884::layout(
        Towards::V6,
        icmp.rest[1] as usize * 4,
        tot_len - ihl - ICMP_LEN,
        ihl_in,
        ihl_in as isize - (IPV6_LEN + fh) as isize,
        !has_length6(ty),
    )
    .ok_or(DropReason::InnerUntranslatable)?;
    rest[0] = l.length;
    // The bytes that leave the message leave the checksum; they start at an even offset of it
    // (the quote kept is a whole number of 64-bit words, or all of it: 1240 bytes at most).
    let gap = (l.gap_end - l.keep) & 0xfff;
    if gap > 0 {
        let at = (ETH_LEN + ihl + ICMP_LEN + l.keep + ihl_in - IPV6_LEN - fh) & 0xffff;
        s.removed += sum_range(ctx, at, gap).ok_or(DropReason::Truncated)?;
    }
    extension::record(s, &l);
    let icmp_len = ICMP_LEN + l.body();
    s.tot_len = icmp_len as u16;
    s.icmp = [ty, code, 0, 0, rest[0], rest[1], rest[2], rest[3]];
    // The ICMPv6 checksum gains the pseudo-header (RFC 8200 section 8.1).
    s.added = sum16(&s.addr6[0])
        + sum16(&s.addr6[1])
        + icmp_len as u32
        + IPPROTO_ICMPV6 as u32
        + word(ty, code)
        + rest_sum(&rest);

    let new_inner_addrs = sum16(&s.addr6[2]) + sum16(&s.addr6[3]);
    // Under a binding the quoted source port (or echo identifier) becomes the IPv6 host's:
    // written here, and its change carried into the quoted and the outer checksums.
    let (mut old_port, mut new_port) = (0, 0);
    if s.bound_port_at != 0 {
        let at = s.bound_port_at as usize & 0x3ff;
        let old = read::<[u8; 2]>(ctx, at).ok_or(DropReason::InnerUntranslatable)?;
        write_bytes(ctx, at, s.bound_port6)?;
        old_port = word(old[0], old[1]);
        new_port = word(s.bound_port6[0], s.bound_port6[1]);
    }
    s.removed += old_port;
    s.added += new_port;
    let l4 = inner_l4(
        ctx,
        inner_off + ihl_in,
        inner.proto,
        sum4(&inner.src) + sum4(&inner.dst) + old_port,
        new_inner_addrs + new_port,
        (
            old_port,
            new_inner_addrs + s.inner_plen as u32 + IPPROTO_ICMPV6 as u32 + new_port,
        ),
    )?;
    s.inner_proto = l4.proto;
    s.removed += l4.removed;
    let iw = v4_to_v6::first_word(cfg, s.inner_tos);
    // The quoted IPv6 header, and the Fragment Header after it (next header, reserved, offset
    // 0 with M set, the Identification zero-extended: RFC 7915 section 4.1).
    let (inner_nh, inner_plen6) = if fh != 0 {
        (IPPROTO_FRAGMENT, s.inner_plen + FRAG_LEN as u16)
    } else {
        (s.inner_proto, s.inner_plen)
    };
    let frag8 = [s.inner_proto, 0, 0, 1, 0, 0, s.inner_id[0], s.inner_id[1]];
    s.added += l4.added
        + word(iw[0], iw[1])
        + word(iw[2], iw[3])
        + inner_plen6 as u32
        + word(inner_nh, s.inner_ttl)
        + new_inner_addrs;
    if fh != 0 {
        s.added += word(frag8[0], 0) + 1 + word(frag8[6], frag8[7]);
    }
    let [c0, c1] = checksum::update(s.check_in, s.removed, s.added).to_be_bytes();
    s.icmp[2] = c0;
    s.icmp[3] = c1;

    let macs = crate::packet::Macs::read(ctx).ok_or(DropReason::Truncated)?;
    // Both headers grow to 40 bytes; options disappear.
    let grow = (IPV6_LEN as i32 - ihl as i32) + ((IPV6_LEN + fh) as i32 - ihl_in as i32);
    if !resize_head(ctx, -grow, &macs, ETH_P_IPV6) {
        return Err(DropReason::HeadroomExhausted);
    }
    let ow = v4_to_v6::first_word(cfg, s.outer_tos);
    let [l0, l1] = s.tot_len.to_be_bytes();
    write_bytes(
        ctx,
        ETH_LEN,
        [
            ow[0],
            ow[1],
            ow[2],
            ow[3],
            l0,
            l1,
            IPPROTO_ICMPV6,
            s.outer_ttl,
        ],
    )?;
    write_bytes(ctx, ETH_LEN + 8, s.addr6[0])?;
    write_bytes(ctx, ETH_LEN + 24, s.addr6[1])?;
    write_bytes(ctx, ETH_LEN + IPV6_LEN, s.icmp)?;
    let at = ETH_LEN + IPV6_LEN + ICMP_LEN;
    let [p0, p1] = inner_plen6.to_be_bytes();
    write_bytes(
        ctx,
        at,
        [iw[0], iw[1], iw[2], iw[3], p0, p1, inner_nh, s.inner_ttl],
    )?;
    write_bytes(ctx, at + 8, s.addr6[2])?;
    write_bytes(ctx, at + 24, s.addr6[3])?;
    if fh != 0 {
        write_bytes(ctx, at + IPV6_LEN, frag8)?;
    }

    let body = ETH_LEN + IPV6_LEN + ICMP_LEN;
    extension::finish(ctx, s, body, ETH_LEN + IPV6_LEN + s.tot_len as usize)?;
    stats::add(Counter::Packets(Dir::V4ToV6, L4Proto::Icmp), 1);
    stats::add(Counter::Bytes(Dir::V4ToV6), (IPV6_LEN + icmp_len) as u64);
    if s.rfc6791 != 0 {
        stats::add(Counter::Rfc6791(Dir::V4ToV6), 1);
    }
    Ok(Step::Translated)
}

/// The longest ICMPv4 error handed whole to the translator link at TC: the link's IPv4 routes
/// carry an MTU of `ipv6_mtu` - 28, at least 1252, and the kernel neither fragments nor
/// answers an ICMP error that exceeds it: it drops it.
const LINK_ERROR4_MAX: usize = 1252;

/// At TC, an ICMPv4 error longer than [`LINK_ERROR4_MAX`] about to be handed to the
/// translator link loses there what its translation would lose: translated, an error keeps
/// only the first 1280 bytes of the ICMPv6 error it becomes (RFC 4443 section 2.4(c)), laid
/// out as RFC 4884 says when it has an extension (`nat64_common::rfc4884`). So the bytes of the
/// quote that would go, go now, and any extension that stays moves up behind the rest, its
/// length attribute (in IPv4's 32-bit words) telling the link where; the checksum, total length
/// and header checksum follow. Nothing that would be sent is lost, and the link translates the
/// shorter error into the same ICMPv6 error. Not inlined: its frame stays out of the entry
/// point's (the stack is 512 bytes over the call chain).
#[inline(never)]
pub fn fit_for_link(ctx: &impl Frame) -> Packed {
    Packed::pack(shorten(ctx).map(|()| Step::Done(0)))
}

#[inline(always)]
fn shorten(ctx: &impl Frame) -> Result<(), DropReason> {
    let ip4 = view::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    let ihl = ((ip4.ver_ihl & 0x0f) as usize * 4) & 0x3c;
    let tot_len = u16::from_be_bytes(ip4.tot_len) as usize;
    if tot_len <= LINK_ERROR4_MAX || ihl < IPV4_LEN {
        return Ok(());
    }
    let check = u16::from_be_bytes(ip4.check);
    let icmp_off = ETH_LEN + ihl;
    let icmp = read::<IcmpFull>(ctx, icmp_off).ok_or(DropReason::Truncated)?;
    let inner = load_u8(ctx, icmp_off + ICMP_LEN).ok_or(DropReason::Truncated)?;
    let ihl_in = (inner & 0x0f) as usize * 4;
    let shrink = ihl_in as isize - IPV6_LEN as isize;
    let Some(l) = rfc4884::layout(
        Towards::V6,
        icmp.rest[1] as usize * 4,
        tot_len - ihl - ICMP_LEN,
        ihl_in,
        shrink,
        drops_extension4(icmp.ty, icmp.code),
    ) else {
        // Not a valid extended error: the link drops it and counts why.
        return Ok(());
    };
    // The quote as the link will keep it, in IPv4 terms (never longer than it was).
    let quote = ((l.keep as isize + shrink) as usize) & 0x7ff;
    let body = ETH_LEN + ihl + ICMP_LEN;
    let gap = ((l.gap_end as isize + shrink) as usize).saturating_sub(quote) & 0x7ff;
    let removed = if gap > 0 {
        sum_range(ctx, body + quote, gap).ok_or(DropReason::Truncated)?
    } else {
        0
    };
    let length = if l.ext > 0 { (quote / 4) as u8 } else { 0 };
    let new_len = ihl + ICMP_LEN + quote + l.ext;
    let c = u16::from_be_bytes(icmp.check);
    let c = checksum::update(c, removed + icmp.rest[1] as u32, length as u32);
    let [c0, c1] = c.to_be_bytes();
    write_bytes(ctx, icmp_off + 2, [c0, c1])?;
    write_bytes(ctx, icmp_off + 5, [length])?;
    let [l0, l1] = (new_len as u16).to_be_bytes();
    let [h0, h1] = checksum::update(check, tot_len as u32, new_len as u32).to_be_bytes();
    write_bytes(ctx, ETH_LEN + 2, [l0, l1])?;
    write_bytes(ctx, ETH_LEN + 10, [h0, h1])?;
    extension::move_extension(
        ctx,
        body + quote + gap,
        l.ext,
        body + quote,
        0,
        ETH_LEN + new_len,
    )
}

/// Stateful NAT64: the binding of the packet quoted by an ICMPv4 error sent to pool4 address
/// `dst4`, recorded in the scratch slot: the IPv6 address (outer destination and quoted
/// source), the offset of the quoted port word (TCP or UDP source port, echo identifier) and
/// its IPv6 value. The quoted packet must come from that address: one the translator sent.
#[inline(always)]
fn quoted_binding(
    ctx: &impl Frame,
    s: &mut crate::maps::Scratch,
    dst4: [u8; 4],
    inner_off: usize,
) -> Result<(), DropReason> {
    let inner = view::<Ipv4Hdr>(ctx, inner_off).ok_or(DropReason::InnerUntranslatable)?;
    if inner.src != dst4 {
        return Err(DropReason::NoBinding);
    }
    let l4 = inner_off + (((inner.ver_ihl & 0x0f) as usize) * 4 & 0x3c);
    let (at, proto) = match inner.proto {
        IPPROTO_TCP => (l4, nat64_common::state::BIB_TCP),
        IPPROTO_UDP => (l4, nat64_common::state::BIB_UDP),
        IPPROTO_ICMP => (l4 + 4, nat64_common::state::BIB_ICMP),
        _ => return Err(DropReason::NoBinding),
    };
    let port = read::<[u8; 2]>(ctx, at).ok_or(DropReason::InnerUntranslatable)?;
    let b = crate::stateful::lookup4(dst4, port, proto).ok_or(DropReason::NoBinding)?;
    s.addr6[1] = b.addr6;
    s.addr6[2] = b.addr6;
    s.bound_port6 = b.port6;
    s.bound_port_at = at as u16;
    Ok(())
}
