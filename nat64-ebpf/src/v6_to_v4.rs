//! IPv6 to IPv4 (RFC 7915 section 5).

use aya_ebpf::{bindings::xdp_action, helpers::generated::bpf_get_prandom_u32};
use nat64_common::{
    Counter, Dir, DropReason, Handoff, L4Proto,
    addr::is_translatable_v4,
    checksum::{self, sum4, sum16},
    icmp::{Translation, icmp6_to_icmp4, is_icmpv6_error},
    maps::{CONFIG_F_COPY_TOS, CONFIG_F_EAM, CONFIG_F_STATEFUL, Config, EAM_F_POOL6},
    state,
};

use crate::proto::{
    FRAG_LEN, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPV4_DF,
    IPV4_OFFSET_MASK,
};
use crate::{
    Packed, Step, addrmap,
    frame::Frame,
    l4, link,
    packet::{
        ETH_LEN, ETH_P_IP, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_LEN,
        IPV6_LEN, IcmpFull, Ipv6Hdr, MAX_HEADERS_LEN, exceeds_mtu, frame_len, ipv4_header,
        is_extension_header, ptr_at, read, resize_head, view, word, write_bytes,
    },
    stateful, stats, unreachable,
};

/// RFC 7915 section 5.1: a translated packet of at most 1260 bytes gets DF=0 (so that an IPv4
/// router can still fragment it for a path MTU below 1280), a larger one DF=1.
const DF_THRESHOLD: u16 = 1260;
/// Extension headers walked before giving up; real traffic carries one or two.
const MAX_EXTENSION_HEADERS: usize = 4;

/// The Identification and flags words of a translated header of `tot_len` bytes (section 5.1).
#[inline(always)]
pub fn id_and_flags(tot_len: u16) -> ([u8; 2], [u8; 2]) {
    if tot_len > DF_THRESHOLD {
        // RFC 6864 section 4.1: the ID of an atomic (DF=1) datagram carries no meaning.
        ([0; 2], IPV4_DF.to_be_bytes())
    } else {
        // SAFETY: helper without arguments.
        (
            ((unsafe { bpf_get_prandom_u32() }) as u16).to_be_bytes(),
            [0; 2],
        )
    }
}

/// RFC 7757 section 4: an IPv6 host reaching another through its IPv4 alias under pool6 (as
/// DNS64 would name it) is sent straight back to IPv6 (`hairpin`): whether IPv4 destination
/// `dst4` is such an alias (a real EAM entry, not a `pool6_ipv4` prefix).
#[inline(always)]
fn hairpinned(cfg: &Config, dst4: [u8; 4]) -> bool {
    cfg.flags & CONFIG_F_EAM != 0 && addrmap::v4_dst(cfg, dst4).is_some_and(addrmap::To6::is_eam)
}

/// RFC 7915 section 5.1: TOS from the traffic class, or the configured value. Not inlined:
/// inlined, reading the configured value kept one more value on the stack of the deepest
/// call chain, past the 512 bytes BPF allows.
#[inline(never)]
pub fn tos(cfg: &Config, ip6: &Ipv6Hdr) -> u8 {
    if cfg.flags & CONFIG_F_COPY_TOS != 0 {
        (ip6.vtcfl[0] << 4) | (ip6.vtcfl[1] >> 4)
    } else {
        cfg.tos
    }
}

/// Not inlined: each direction gets its own stack frame, so the BPF stack (512 bytes over the
/// whole call chain) holds only the path a packet takes.
#[inline(never)]
pub fn translate<C: Frame>(ctx: &C, cfg: &Config) -> Packed {
    Packed::pack(translate_packet(ctx, cfg))
}

#[inline(always)]
fn translate_packet<C: Frame>(ctx: &C, cfg: &Config) -> Result<Step, DropReason> {
    // Too short to hold an IPv6 header: not a packet we can call ours; the kernel drops it.
    let Some(ip6) = view::<Ipv6Hdr>(ctx, ETH_LEN) else {
        return Ok(Step::Done(xdp_action::XDP_PASS));
    };
    if ip6.vtcfl[0] >> 4 != 6 {
        return Ok(Step::Done(xdp_action::XDP_PASS));
    }
    // The destination decides whether the packet is ours; everything else goes to the kernel.
    let Some((dst4, via_pool6)) = addrmap::v6_to_v4_via(cfg, &ip6.dst) else {
        return Ok(Step::Done(xdp_action::XDP_PASS));
    };
    if exceeds_mtu(ctx) {
        return link::hand_off(
            cfg,
            Dir::V6ToV4,
            Handoff::GsoAggregate,
            DropReason::Oversize,
        );
    }

    // RFC 7915 section 5.1: the packet must leave with a hop limit of at least one. The kernel
    // decrements the TTL when it forwards the translated packet (XDP_PASS), so the node costs
    // exactly one hop; here we only refuse packets that would expire on this hop.
    if ip6.hop_limit <= 1 && !link::on_link(cfg) {
        // Not translated: handed to the kernel as it came, whose forwarding path answers ICMP
        // Time Exceeded from this node's own address, as RFC 7915 sections 4.1 and 5.1 want
        // (it needs a route for the destination, which the daemon installs). So the translator
        // shows up in a traceroute like any router.
        stats::add(
            Counter::Dropped(Dir::V6ToV4, DropReason::HopLimitExceeded),
            1,
        );
        return Ok(Step::Done(xdp_action::XDP_PASS));
    }
    let payload_len = u16::from_be_bytes(ip6.payload_len);
    if ETH_LEN + IPV6_LEN + payload_len as usize > frame_len(ctx) {
        return Err(DropReason::Truncated);
    }
    let mut nh = ip6.next_header;
    let mut l4_off = ETH_LEN + IPV6_LEN;
    // RFC 7915 section 5.1: extension headers have no IPv4 counterpart (see `ext_step`).
    let mut frag: Option<([u8; 2], [u8; 2])> = None;
    if is_extension_header(nh) {
        // At TC, extension headers (fragments included) are left to the translator link.
        if !C::FULL {
            return link::slow_path(cfg, Dir::V6ToV4);
        }
        let w = match walk_extension_headers(ctx, nh) {
            Ok(w) => w,
            // Section 5.4: a packet that is not translated is answered with ICMPv6 Destination
            // Unreachable, Communication Administratively Prohibited (`unreachable`); it
            // counts as dropped.
            Err(DropReason::BadFragment) => {
                stats::add(Counter::Dropped(Dir::V6ToV4, DropReason::BadFragment), 1);
                crate::scratch::get()?.answer6 = unreachable::ADMIN_PROHIBITED;
                return Ok(Step::Unreachable);
            }
            // Section 5.1: a Routing header with Segments Left is not translated, and is
            // answered with Parameter Problem pointing at that field (the walk left the
            // pointer in the scratch slot).
            Err(DropReason::SourceRoute) if crate::scratch::get()?.ptb_mtu != [0; 4] => {
                stats::add(Counter::Dropped(Dir::V6ToV4, DropReason::SourceRoute), 1);
                crate::scratch::get()?.answer6 = unreachable::PARAMETER_PROBLEM;
                return Ok(Step::Unreachable);
            }
            Err(e) => return Err(e),
        };
        nh = w.nh as u8;
        // A bound the verifier can see for every later access at `l4_off`.
        l4_off = w.off as usize & 0x3ff;
        if l4_off > MAX_HEADERS_LEN {
            return Err(DropReason::ExtensionHeader);
        }
        if w.fragmented != 0 {
            frag = Some((w.frag_id, w.frag_word));
        }
    }
    if is_extension_header(nh) {
        return Err(DropReason::ExtensionHeader);
    }
    // Transport bytes in this packet: the payload minus the extension headers.
    let l4_len = payload_len
        .checked_sub((l4_off - ETH_LEN - IPV6_LEN) as u16)
        .ok_or(DropReason::Truncated)?;
    let first = frag.is_none_or(|(_, f)| u16::from_be_bytes(f) & IPV4_OFFSET_MASK == 0);
    // The transport header lies within the packet, not in the frame's padding after it: a
    // whole packet or first fragment too short for it is malformed (RFC 8200 section 4.5
    // wants the first fragment to hold the upper-layer header).
    if first && (l4_len as usize) < crate::packet::l4_min(nh) {
        return Err(DropReason::Truncated);
    }
    // A fragmented ICMPv6 message cannot be translated piecewise: its checksum covers a
    // pseudo-header with the reassembled length, which no single fragment knows. (An atomic
    // fragment is a whole message: its offset and MF word is zero.)
    if frag.is_some_and(|(_, w)| w != [0; 2]) && nh == IPPROTO_ICMPV6 {
        return Err(DropReason::Fragment);
    }

    // ICMPv6 is translated by table (section 5.2). Only what the fast path needs travels on:
    // the echo type, or whether it is an error (which may come from a router whose address has
    // no IPv4 mapping: RFC 6791 covers that with a configured address). Errors and the packet
    // they quote (section 5.3) go to `icmp_error`.
    let (echo, is_error) = if nh == IPPROTO_ICMPV6 {
        let h = read::<IcmpFull>(ctx, l4_off).ok_or(DropReason::Truncated)?;
        match icmp6_to_icmp4(h.ty, h.code, h.rest)? {
            Translation::Info { ty } => (Some((h, ty)), false),
            _ => (None, is_icmpv6_error(h.ty)),
        }
    } else {
        (None, false)
    };
    // RFC 6146: a source with no stateless mapping, writing to pool6, gets a binding to a pool4
    // transport address when stateful NAT64 is on (`stateful_source`, which rewrites the port
    // and leaves the port word change in the scratch slot).
    let s = crate::scratch::get()?;
    s.port_old = 0;
    s.port_new = 0;
    s.hairpin_error = 0;
    // The destination address, for a TCP simultaneous open (`stateful::bind`).
    s.remote4 = dst4;
    // What the destination alone rules out, before a binding is made for the source.
    if !is_translatable_v4(dst4) {
        return Err(DropReason::MartianAddress);
    }
    // And a source no router forwards (multicast, unspecified, loopback, link-local), which
    // would otherwise get a binding and have replies translated back to it. An error is the
    // exception, as in the other direction: it is translated whatever its source (RFC 6791).
    if !is_error && !nat64_common::addr::is_forwardable_source_v6(&ip6.src) {
        return Err(DropReason::MartianAddress);
    }
    // RFC 6052 section 3.1: translators "MUST drop" packets with an address made of the
    // Well-Known Prefix and a non-global IPv4 address.
    if via_pool6 && !addrmap::wkp_allows(cfg, dst4) {
        return Err(DropReason::MartianAddress);
    }
    let stateful = cfg.flags & CONFIG_F_STATEFUL != 0;
    let src4 = match addrmap::v6_to_v4_via(cfg, &ip6.src) {
        // RFC 6146 section 3.5: a NAT64 "MUST silently discard all incoming IPv6 packets
        // containing a source address that contains the Pref64::/n" (a hairpinning loop, or
        // an IPv4 source of the sender's choosing, another client's binding included). Only
        // a `pool6_ipv4` host's IPv4-translatable address is a source under pool6.
        Some((a, true))
            if stateful
                && !addrmap::v4_dst_entry(cfg, a).is_some_and(|e| e.flags & EAM_F_POOL6 != 0) =>
        {
            return Err(DropReason::SourceUntranslatable);
        }
        Some((a, _)) => a,
        // An error from a source with no mapping: `icmp_error` settles its source, from the
        // binding of the packet it quotes (stateful, RFC 6146 section 3.5) or by RFC 6791 (a
        // router's error about a stateless flow); a placeholder stands in until then (it only
        // has to pass the martian check below, and is never sent).
        None if is_error => [192, 0, 2, 1],
        // A later fragment has no port, and needs none: a host's bindings all have the pool
        // address of its /64.
        None if stateful && via_pool6 && !first => {
            stateful::fragment_source6(cfg, &ip6.src, dst4, frag.map_or([0; 2], |(id, _)| id), nh)
        }
        // Only an EAM source can be hairpinned (below): a client without one gets no binding
        // for it. (Decided here, not before the mapping: a flag kept live across it cost the
        // stateless path 5 ns.)
        None if stateful && via_pool6 && !hairpinned(cfg, dst4) => {
            let r = stateful_source(ctx, cfg, nh, l4_off, echo.is_some());
            if r & stateful::OUTBOUND_ERR != 0 {
                let reason = crate::packet::drop_reason((r & 0xff) as u32);
                // RFC 6146 section 3.5.1.1: a flow refused for want of a binding is told so
                // (ICMPv6 Address Unreachable, `unreachable`); the packet counts as dropped.
                if matches!(
                    reason,
                    DropReason::PoolExhausted | DropReason::ClientLimit | DropReason::TableFull
                ) {
                    // At TC the translator link answers it (and counts it), untouched so far.
                    if !C::FULL {
                        return link::slow_path(cfg, Dir::V6ToV4);
                    }
                    stats::add(Counter::Dropped(Dir::V6ToV4, reason), 1);
                    s.answer6 = unreachable::ADDRESS_UNREACHABLE;
                    return Ok(Step::Unreachable);
                }
                return Err(reason);
            }
            let a = ((r >> 16) as u32).to_be_bytes();
            // A first fragment (MF, in the IPv4 form `frag` keeps): its later fragments, which
            // carry no port, follow its binding.
            if let Some((id, w)) = frag
                && w[0] & 0x20 != 0
            {
                stateful::remember_fragments6(&ip6.src, dst4, id, nh, a);
            }
            a
        }
        None => return Err(DropReason::SourceUntranslatable),
    };
    if !is_translatable_v4(src4) || addrmap::wkp_refuses(cfg, &ip6.src, src4) {
        return Err(DropReason::MartianAddress);
    }
    // RFC 7757 section 4: hairpinning through an EAM alias under pool6.
    if via_pool6 && hairpinned(cfg, dst4) {
        // Not yet for fragments (only the first has the transport header).
        if frag.is_some() {
            return Err(DropReason::Fragment);
        }
        // An error about a hairpinned flow (a router on the way to the other IPv6 host: a
        // Packet Too Big, say) goes both ways as well, as RFC 7757 section 4 has it: its
        // quoted packet is the hairpinned one, in the addresses it had on the way out. It is
        // translated to IPv4 below (`icmp_error`), then back to IPv6 by the 4-to-6 program, as
        // if it had come from IPv4 (`again_4to6` in main.rs), as Jool does.
        if is_error {
            s.hairpin_error = 1;
        } else {
            crate::scratch::hand_over_6to4(l4_off, nh)?;
            return Ok(Step::Hairpin);
        }
    }
    if is_error {
        crate::scratch::hand_over_6to4(l4_off, nh)?;
        // Section 5.1.1 holds for the error's own header: an (atomic: a fragmented ICMPv6
        // message was refused above) Fragment header gives the Identification, DF clear.
        s.outer_fragmented = frag.is_some() as u8;
        s.outer_id = frag.map_or([0; 2], |(id, _)| id);
        return Ok(Step::IcmpError);
    }
    // An IPv4 total length is 16 bits; XDP frames never get close, but say so explicitly.
    let Some(tot_len) = l4_len.checked_add(IPV4_LEN as u16) else {
        return Err(DropReason::BadHeader);
    };
    // A packet that will leave with DF (RFC 7915 section 5.1) too big for the route out is
    // answered here with Packet Too Big (`egress`), as the IPv4 side's first router would be
    // heard: from this node, quoting the packet as sent.
    if frag.is_none() && tot_len > DF_THRESHOLD && tot_len > cfg.mtu_floor4 {
        let mtu = crate::egress::mtu_if_too_big(ctx, u32::from_ne_bytes(src4), tot_len, l4_off, nh);
        if mtu != 0 {
            return packet_too_big(ctx, cfg, nh, l4_off, mtu);
        }
    }

    let delta = l4::PseudoDelta {
        old_addrs: sum16(&ip6.src) + sum16(&ip6.dst),
        new_addrs: sum4(&src4) + sum4(&dst4),
        len_proto: l4_len as u32 + nh as u32,
        old_port: s.port_old,
        new_port: s.port_new,
    };
    let (proto4, counted) = match (nh, echo) {
        // Only a first fragment carries the transport header; its checksum covers the whole
        // datagram, of which only the pseudo-header addresses change.
        (IPPROTO_TCP | IPPROTO_UDP, _) if !first => (
            nh,
            if nh == IPPROTO_TCP {
                L4Proto::Tcp
            } else {
                L4Proto::Udp
            },
        ),
        (IPPROTO_TCP | IPPROTO_UDP, _) => {
            // A zero UDP checksum is illegal in IPv6 (RFC 8200 section 8.1) but means "none"
            // in IPv4: keep it rather than invent one.
            l4::fix_checksum(ctx, nh, l4_off, &delta, l4::ZeroUdp::Keep)?;
            (
                nh,
                if nh == IPPROTO_TCP {
                    L4Proto::Tcp
                } else {
                    L4Proto::Udp
                },
            )
        }
        (_, Some((h, ty))) => {
            echo6_to_echo4(
                ctx,
                l4_off,
                ip6,
                payload_len,
                &h,
                ty,
                (s.port_old, s.port_new),
            )?;
            (IPPROTO_ICMP, L4Proto::Icmp)
        }
        // RFC 7915 section 5.1: any other protocol is copied as is.
        _ => (nh, L4Proto::Other),
    };

    // RFC 7915 section 5.1, field by field.
    let (id, frag) = frag.unwrap_or_else(|| id_and_flags(tot_len));
    // Its checksum is summed from the field words (`ipv4_header`): a pass over the built
    // header's bytes cost about 10 ns a packet more.
    let hdr = ipv4_header(
        tos(cfg, ip6),
        tot_len,
        id,
        frag,
        link::hops(cfg, ip6.hop_limit),
        proto4,
        src4,
        dst4,
    );

    let macs = crate::packet::Macs::read(ctx).ok_or(DropReason::Truncated)?;
    // The IPv4 header is 20 bytes shorter, and the extension headers go: move the frame start
    // forward so the transport header stays where it is.
    if !resize_head(ctx, (l4_off - ETH_LEN - IPV4_LEN) as i32, &macs, ETH_P_IP) {
        return Err(DropReason::HeadroomExhausted);
    }
    hdr.write(ctx, ETH_LEN)?;

    stats::add(Counter::Packets(Dir::V6ToV4, counted), 1);
    stats::add(Counter::Bytes(Dir::V6ToV4), tot_len as u64);
    Ok(Step::Translated)
}

/// The packet at hand is too big for the route out (`mtu`): a stateful binding's port goes
/// back to the client's, so that the packet is as it came, and it is
/// answered with ICMPv6 Packet Too Big from this node (RFC 4443 section 3.2; the MTU the IPv6
/// side can use, 20 bytes more, at least 1280, as RFC 7915 section 4.2 reckons), or, at TC,
/// left to the translator link untouched, which answers it. Not inlined: its paths end here.
#[inline(never)]
fn packet_too_big<C: Frame>(
    ctx: &C,
    cfg: &Config,
    nh: u8,
    l4_off: usize,
    mtu: u32,
) -> Result<Step, DropReason> {
    let s = crate::scratch::get()?;
    if s.port_old != s.port_new {
        let at = if nh == IPPROTO_ICMPV6 {
            l4_off + 4
        } else {
            l4_off
        };
        write_bytes(ctx, at & 0x3ff, (s.port_old as u16).to_be_bytes())?;
    }
    if !C::FULL {
        return link::slow_path(cfg, Dir::V6ToV4);
    }
    stats::add(Counter::Dropped(Dir::V6ToV4, DropReason::PacketTooBig), 1);
    let v6 = mtu.saturating_add(20);
    s.ptb_mtu = (if v6 < 1280 { 1280 } else { v6 }).to_be_bytes();
    s.answer6 = unreachable::PACKET_TOO_BIG;
    Ok(Step::Unreachable)
}

/// ICMPv6 echo to ICMPv4 echo (RFC 7915 section 5.2): the type changes, and the ICMPv6
/// pseudo-header, which ICMPv4 lacks, leaves the checksum.
#[inline(always)]
fn echo6_to_echo4(
    ctx: &impl Frame,
    off: usize,
    ip6: &Ipv6Hdr,
    payload_len: u16,
    h: &IcmpFull,
    ty4: u8,
    (old_id, new_id): (u32, u32),
) -> Result<(), DropReason> {
    // Pseudo-header of RFC 8200 section 8.1: addresses, the upper-layer packet length (the
    // ICMPv6 message: the payload without the extension headers before it, which end at
    // `off`), next header. The identifier changes too under a stateful binding (already
    // written by the caller).
    let l4_len = (payload_len as u32).wrapping_sub((off - ETH_LEN - IPV6_LEN) as u32) & 0xffff;
    let pseudo = sum16(&ip6.src) + sum16(&ip6.dst) + l4_len + IPPROTO_ICMPV6 as u32;
    let c = checksum::update(
        u16::from_be_bytes(h.check),
        pseudo + word(h.ty, h.code) + old_id,
        word(ty4, h.code) + new_id,
    );
    let p = ptr_at::<[u8; 4]>(ctx, off).ok_or(DropReason::Truncated)?;
    let [cb0, cb1] = c.to_be_bytes();
    // SAFETY: bounds checked by `ptr_at`.
    unsafe { p.write_unaligned([ty4, h.code, cb0, cb1]) };
    Ok(())
}

const EXT_TRUNCATED: u32 = 1;
const EXT_SOURCE_ROUTE: u32 = 2;
const EXT_TOO_LONG: u32 = 3;
const EXT_AFTER_FRAGMENT: u32 = 4;
/// A source route in an ICMPv6 error: dropped like any, never answered (RFC 4443 section
/// 2.4(e.1)).
const EXT_SOURCE_ROUTE_ERROR: u32 = 5;

/// State of the extension-header walk, shared with its `bpf_loop` callback.
#[repr(C)]
struct ExtWalk {
    ctx: *mut core::ffi::c_void,
    /// The next header, and the offset it starts at.
    nh: u32,
    off: u32,
    /// A Fragment header (1), atomic or not: its identification (low 16 bits) and the IPv4
    /// flags and offset word it becomes (zero for an atomic fragment).
    fragmented: u32,
    frag_id: [u8; 2],
    frag_word: [u8; 2],
    /// 0, or why the packet is dropped: `EXT_TRUNCATED`, `EXT_SOURCE_ROUTE`, `EXT_TOO_LONG`,
    /// `EXT_AFTER_FRAGMENT`.
    err: u32,
}

/// Walks the extension headers from `nh` (one), under `bpf_loop`: its callback is verified
/// once, where an open-coded walk multiplied every later path by the ways out of it.
#[inline(always)]
fn walk_extension_headers<C: Frame>(ctx: &C, nh: u8) -> Result<ExtWalk, DropReason> {
    let mut w = ExtWalk {
        ctx: ctx.raw(),
        nh: nh as u32,
        off: (ETH_LEN + IPV6_LEN) as u32,
        fragmented: 0,
        frag_id: [0; 2],
        frag_word: [0; 2],
        err: 0,
    };
    // SAFETY: `ext_step` reads and writes only `w`, which outlives the call, and the packet
    // through bounds-checked accessors.
    unsafe {
        aya_ebpf::helpers::generated::bpf_loop(
            MAX_EXTENSION_HEADERS as u32,
            ext_step::<C> as *mut core::ffi::c_void,
            &mut w as *mut ExtWalk as *mut core::ffi::c_void,
            0,
        );
    }
    // Constant reasons, not a table lookup: an index read back from the stack gives the
    // verifier a value it cannot bound through the caller's unpacking.
    match w.err {
        0 => Ok(w),
        EXT_TRUNCATED => Err(DropReason::Truncated),
        EXT_SOURCE_ROUTE => {
            // The Segments Left field of the Routing header the walk stopped at, counted from
            // the start of the IPv6 header (RFC 4443 section 3.4's pointer).
            crate::scratch::get()?.ptb_mtu = (w.off - ETH_LEN as u32 + 3).to_be_bytes();
            Err(DropReason::SourceRoute)
        }
        EXT_SOURCE_ROUTE_ERROR => {
            // No pointer: not answered (see the caller).
            crate::scratch::get()?.ptb_mtu = [0; 4];
            Err(DropReason::SourceRoute)
        }
        EXT_AFTER_FRAGMENT => Err(DropReason::BadFragment),
        _ => Err(DropReason::ExtensionHeader),
    }
}

/// One extension header (RFC 7915 section 5.1): skipped, except that a Fragment header gives
/// the IPv4 fragment fields (section 5.1.1: MF, offset in the same 8-byte units, the low 16
/// bits of the identification; an atomic fragment, offset 0 and M clear, is translated as an
/// unfragmented packet, RFC 8021) and a routing header with segments left means the packet is
/// not for us to deliver (discarded and counted). Stops at the first header that is not an
/// extension header.
extern "C" fn ext_step<C: Frame>(_i: u64, c: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `c` is the `ExtWalk` that `walk_extension_headers` passed to `bpf_loop`.
    let w = unsafe { &mut *(c as *mut ExtWalk) };
    let fail = |w: &mut ExtWalk, e: u32| {
        w.err = e;
        1
    };
    let off = w.off as usize;
    if off > MAX_HEADERS_LEN {
        return fail(w, EXT_TOO_LONG);
    }
    let ctx = C::from_raw(w.ctx);
    // RFC 8200 section 4.1: nothing but the upper-layer header follows a Fragment header (the
    // headers after it belong to the fragmentable part, which is never walked before
    // reassembly), and a packet has at most one. Such a packet is not translated (RFC 7915
    // section 5.1 has no rule for it; Jool answers it as section 5.4 says).
    if w.fragmented != 0
        && matches!(
            w.nh as u8,
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_FRAGMENT
        )
    {
        return fail(w, EXT_AFTER_FRAGMENT);
    }
    match w.nh as u8 {
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
            let Some(h) = read::<[u8; 4]>(&ctx, off) else {
                return fail(w, EXT_TRUNCATED);
            };
            if w.nh as u8 == IPPROTO_ROUTING && h[3] != 0 {
                // The ICMPv6 type right after it, when that is what follows: an error about
                // an error is not sent.
                // (Two bytes read, not one: a one-byte read's bounds check compiles to a form
                // the verifier cannot follow at a variable offset.)
                let next = off + (h[1] as usize + 1) * 8;
                if h[0] == IPPROTO_ICMPV6
                    && read::<[u8; 2]>(&ctx, next & 0x7ff).is_none_or(|t| t[0] < 128)
                {
                    return fail(w, EXT_SOURCE_ROUTE_ERROR);
                }
                return fail(w, EXT_SOURCE_ROUTE);
            }
            w.nh = h[0] as u32;
            w.off += (h[1] as u32 + 1) * 8;
        }
        IPPROTO_FRAGMENT => {
            let Some(f) = read::<[u8; 8]>(&ctx, off) else {
                return fail(w, EXT_TRUNCATED);
            };
            w.nh = f[0] as u32;
            w.off += FRAG_LEN as u32;
            let off_m = u16::from_be_bytes([f[2], f[3]]);
            let (offset, more) = (off_m >> 3, off_m & 1);
            // Section 5.1.1: a Fragment header, an atomic one (offset 0, M clear) included,
            // gives the Identification (its low 16 bits) and the flags (MF from M, DF clear);
            // an atomic fragment is otherwise translated as a whole packet (RFC 8021), its
            // flags and offset word zero.
            w.fragmented = 1;
            w.frag_id = [f[6], f[7]];
            w.frag_word = ((more << 13) | offset).to_be_bytes();
        }
        _ => return 1,
    }
    if w.off as usize > MAX_HEADERS_LEN {
        return fail(w, EXT_TOO_LONG);
    }
    0
}

/// Stateful NAT64 (RFC 6146): the flow's binding (made now if it has none), packed as
/// `addr4 << 16 | port4` or `stateful::OUTBOUND_ERR` with the reason. The binding's port
/// replaces the source port (TCP, UDP) or the echo identifier (ICMP) in the packet, and the
/// port word change goes to the scratch slot for the checksum update.
///
/// Not inlined: its paths end in one scalar, so the caller's paths do not multiply by them.
#[inline(never)]
fn stateful_source(ctx: &impl Frame, cfg: &Config, nh: u8, l4_off: usize, echo: bool) -> u64 {
    match bind_source(ctx, cfg, nh, l4_off, echo) {
        Ok(r) => r,
        Err(reason) => stateful::OUTBOUND_ERR | reason as u64,
    }
}

#[inline(always)]
fn bind_source(
    ctx: &impl Frame,
    cfg: &Config,
    nh: u8,
    l4_off: usize,
    echo: bool,
) -> Result<u64, DropReason> {
    let l4_off = l4_off & 0x3ff;
    let (port_at, proto, flags) = match nh {
        IPPROTO_TCP => {
            let f = read::<u8>(ctx, l4_off + 13).ok_or(DropReason::Truncated)?;
            (l4_off, state::BIB_TCP, f)
        }
        IPPROTO_UDP => (l4_off, state::BIB_UDP, 0),
        // Echo requests and replies only: their identifier is the "port" (RFC 6146 3.5.3).
        IPPROTO_ICMPV6 if echo => (l4_off + 4, state::BIB_ICMP, 0),
        _ => return Err(DropReason::SourceUntranslatable),
    };
    // The source port and the destination port (TCP, UDP; an echo's identifier and sequence
    // number): the latter is the remote port of a TCP simultaneous open (`stateful::bind`).
    let ports = read::<[u8; 4]>(ctx, port_at).ok_or(DropReason::Truncated)?;
    let old = [ports[0], ports[1]];
    let ip6 = view::<Ipv6Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;

    let r = stateful::outbound(cfg, &ip6.src, u32::from_be_bytes(ports), proto, flags);
    if r & stateful::OUTBOUND_ERR != 0 {
        return Ok(r);
    }
    if !stateful::outbound_session(cfg, proto, flags) {
        return Ok(stateful::OUTBOUND_ERR | DropReason::TableFull as u64);
    }
    let new = (r as u16).to_be_bytes();
    write_bytes(ctx, port_at, new)?;
    let s = crate::scratch::get()?;
    s.port_old = word(old[0], old[1]);
    s.port_new = word(new[0], new[1]);
    Ok(r)
}
