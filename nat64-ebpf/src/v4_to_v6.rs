//! IPv4 to IPv6 (RFC 7915 section 4).
//!
//! Why one file of this size: it is RFC 7915 section 4 read top to bottom (the IPv4 header, then
//! each transport, then what is handed off), the mirror of `v6_to_v4.rs`; splitting it would
//! scatter one section's rules over several files.

use crate::frame::Frame;
use aya_ebpf::bindings::xdp_action;
use nat64_common::{
    Counter, Dir, DropReason, Handoff, L4Proto,
    addr::is_translatable_v4,
    checksum::{self, sum4, sum16},
    icmp::{ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, Translation, icmp4_to_icmp6, is_icmpv4_error},
    maps::{
        CONFIG_F_LINK, CONFIG_F_STATEFUL, CONFIG_F2_ADF, CONFIG_F2_DROP_EXTERNAL_TCP,
        CONFIG_F2_TC_ZERO, CONFIG_F2_UDP_ZERO_DROP, Config,
    },
    state,
};

use crate::proto::{FRAG_LEN, IPPROTO_FRAGMENT, IPV4_DF, IPV4_MF, IPV4_OFFSET_MASK};
use crate::{
    Packed, Step, addrmap, l4, link,
    packet::{
        ETH_LEN, ETH_P_IPV6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_LEN,
        IPV6_LEN, IcmpFull, Ipv4Hdr, exceeds_mtu, frame_len, ptr_at, read, resize_head, sum_words,
        view, word, write_addr6, write_bytes, write_halves,
    },
    stateful, stats,
};

/// Longest IPv4 options area: IHL 15 words minus the fixed 5.
const MAX_OPTIONS: usize = 40;
const IPOPT_EOL: u8 = 0;
const IPOPT_NOP: u8 = 1;
const IPOPT_LSRR: u8 = 131;
const IPOPT_SSRR: u8 = 137;

/// RFC 7915 section 4.1: the first IPv6 header word: version 6, traffic class from the TOS
/// (or zero when so configured, `CONFIG_F2_TC_ZERO`), flow label zero.
#[inline(always)]
pub fn first_word(cfg: &Config, tos: u8) -> [u8; 4] {
    let tc = if cfg.flags2 & CONFIG_F2_TC_ZERO == 0 {
        tos
    } else {
        0
    };
    [0x60 | (tc >> 4), tc << 4, 0, 0]
}

/// Not inlined: each direction gets its own stack frame, so the BPF stack (512 bytes over the
/// whole call chain) holds only the path a packet takes.
#[inline(never)]
pub fn translate<C: Frame>(ctx: &C, cfg: &Config) -> Packed {
    Packed::pack(translate_packet(ctx, cfg))
}

/// RFC 8200 section 5: every IPv6 link carries 1280 bytes.
const IPV6_MIN_MTU: usize = 1280;

/// The MTU of the IPv6 route out when a translated packet of `v6_len` bytes does not fit it,
/// else 0 (`egress`: the FIB's answer, remembered for a second per destination), asked only
/// for packets over the IPv6 minimum MTU and the narrowest interface (`Config::mtu_floor6`),
/// which every route carries.
#[inline(always)]
fn route_mtu_if_too_big(ctx: &impl Frame, cfg: &Config, v6_len: usize) -> u32 {
    if v6_len > IPV6_MIN_MTU && v6_len > cfg.mtu_floor6 as usize {
        crate::egress::mtu6_if_too_big(ctx, v6_len as u32)
    } else {
        0
    }
}

#[inline(always)]
fn translate_packet<C: Frame>(ctx: &C, cfg: &Config) -> Result<Step, DropReason> {
    let Some(ip4) = view::<Ipv4Hdr>(ctx, ETH_LEN) else {
        return Ok(Step::Done(xdp_action::XDP_PASS));
    };
    if ip4.ver_ihl >> 4 != 4 {
        return Ok(Step::Done(xdp_action::XDP_PASS));
    }
    // Only destinations mapped by an EAM entry are ours (see `addrmap::v4_dst`), and with
    // stateful NAT64 the pool4 addresses (RFC 6146), translated through their bindings.
    let eam_dst = addrmap::v4_dst_entry(cfg, ip4.dst);
    let to_pool4 =
        eam_dst.is_none() && cfg.flags & CONFIG_F_STATEFUL != 0 && stateful::in_pool4(cfg, ip4.dst);
    if eam_dst.is_none() && !to_pool4 {
        return Ok(Step::Done(xdp_action::XDP_PASS));
    }
    // The header is checked before anything else, before a binding or session is touched:
    // RFC 6146 section 3.5 keeps state for what RFC 7915 translates, and a corrupt header is
    // not a packet (the kernel would drop it in ip_rcv(); we run before it). A total length
    // of 0 is a BIG TCP aggregate, handed off whole below (`exceeds_mtu`), and only in a
    // buffer longer than any total length could say; in anything shorter (every XDP frame)
    // it is a corrupt header, which must not reach a binding or session either.
    let tot_len = u16::from_be_bytes(ip4.tot_len) as usize;
    if tot_len == 0 && frame_len(ctx) <= ETH_LEN + 0xffff {
        return Err(DropReason::BadHeader);
    }
    if tot_len != 0 {
        let ihl = ((ip4.ver_ihl & 0x0f) as usize) * 4;
        if ihl < IPV4_LEN || tot_len < ihl {
            return Err(DropReason::BadHeader);
        }
        if ETH_LEN + tot_len > frame_len(ctx) {
            return Err(DropReason::Truncated);
        }
        // The transport header lies within the packet, not in what follows it in the frame
        // (an Ethernet frame is padded to 60 bytes): a whole packet or first fragment too
        // short for it is malformed (a tiny first fragment, RFC 1858), and its "ports" would
        // be padding.
        if u16::from_be_bytes(ip4.frag) & IPV4_OFFSET_MASK == 0
            && tot_len - ihl < crate::packet::l4_min(ip4.proto)
        {
            return Err(DropReason::Truncated);
        }
        // The common header, without options, is summed from the view already
        // bounds-checked: five word loads instead of the general loop.
        let sum = if ihl == IPV4_LEN {
            Some(crate::packet::ipv4_header_sum(ip4))
        } else {
            sum_words(ctx, ETH_LEN, ihl)
        };
        match sum {
            Some(s) if checksum::fold(s) == 0xffff => {}
            _ => return Err(DropReason::BadHeader),
        }
        // RFC 7915 section 4.1: options, malformed or an unexpired source route, are judged
        // with the header too, before any binding (at TC they go into the translator link).
        if C::FULL && ihl > IPV4_LEN {
            check_options(ctx, ihl)?;
        }
    }
    // The IPv6 destination: from the EAM entry, or from the binding of the pool4 transport
    // address (`stateful_destination`). Either way it goes to the scratch slot, and the
    // binding is resolved here, before the checks below branch: no path-dependent value
    // stays live, and the resolution is verified once rather than once per path.
    let s = crate::scratch::get()?;
    s.port_old = 0;
    s.port_new = 0;
    s.bound_port_at = 0;
    match eam_dst {
        Some(e) => crate::packet::set_addr6(
            &mut s.addr6[1],
            addrmap::to6_halves(cfg, addrmap::To6::Eam(e), ip4.dst),
        ),
        None => {
            // RFC 1812 section 5.3.7 and RFC 7915 section 4.1: a martian source is dropped
            // (after translation anyway, below), and must not make or refresh a session, nor
            // be answered (address-dependent filtering answers what it refuses). An ICMP
            // error is the exception, as below: a router may send one from anywhere (one
            // with IP options from such a source is not worth a variable offset here).
            if !is_translatable_v4(ip4.src)
                && !(ip4.proto == IPPROTO_ICMP
                    && ip4.ver_ihl == 0x45
                    && read::<u8>(ctx, ETH_LEN + IPV4_LEN).is_some_and(is_icmpv4_error))
            {
                return Err(DropReason::MartianAddress);
            }
            let r = stateful_destination(ctx, cfg);
            // The node's own traffic on a pool4 address it shares: up the stack untouched
            // (on the translator link, where it cannot come from the node, refused).
            if r == NOT_OURS {
                if link::on_link(cfg) {
                    return Err(DropReason::NoBinding);
                }
                return Ok(Step::Done(xdp_action::XDP_PASS));
            }
            // At TC a packet with options was not looked up (`refused_before_binding`): it
            // goes on to the hand-off into the translator link below (`tc_hand_off`).
            if r != 0 && r != HAND_OFF {
                return Err(crate::packet::drop_reason(r & 0xff));
            }
        }
    }
    if exceeds_mtu(ctx) {
        // To a pool4 address the node shares, under its alias (`link::to_alias`; a BIG TCP
        // aggregate, whose header gives no length, goes as it is).
        let ihl = ((ip4.ver_ihl & 0x0f) as usize * 4) & 0x3c;
        if ip4.tot_len != [0; 2] && link::aliased_whole(ctx, cfg, ip4.dst, ip4.proto, ETH_LEN + ihl)
        {
            return Ok(Step::Alias { aggregate: true });
        }
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
    // Checked above; again, for the verifier's bounds and for an aggregate of length 0.
    if ETH_LEN + tot_len > frame_len(ctx) {
        return Err(DropReason::Truncated);
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
    // To a pool4 address the node shares, the kernel fragments nothing (it is the node's
    // own): every fragment goes into the link under the address's alias, so that all of a
    // datagram takes one way, and is translated there, fragmented again by the kernel to
    // fit (`link::to_alias`).
    let shared = cfg.shared4 != [0; 4] && ip4.dst == cfg.shared4;
    // (Not one whose TTL runs out here: the kernel's Time Exceeded would quote the alias.)
    if fragmented && ip4.ttl > 1 && link::aliased(cfg, ip4.dst) {
        return Ok(Step::Alias { aggregate: false });
    }
    // At TC, options and fragments are left to the translator link; a source route, which
    // the kernel would drop on its way there, goes into it directly.
    // So does one to a pool4 address the node shares, which the kernel would deliver locally.
    // A packet with DF too big for its IPv6 route goes into the link directly too, whose
    // program answers Fragmentation Needed with the route's MTU, as for any other: through the
    // kernel, the link's IPv4 routes would answer with their own MTU (kept for what has no DF:
    // `translator_link::ipv4_routes` in the daemon), not this route's.
    // So is a UDP datagram without a checksum, which needs one computed over all of it.
    let zero_udp = !C::FULL
        && !fragmented
        && ihl == IPV4_LEN
        && ip4.proto == IPPROTO_UDP
        && read::<[u8; 2]>(ctx, ETH_LEN + IPV4_LEN + 6).ok_or(DropReason::Truncated)? == [0, 0];
    if !C::FULL && (fragmented || ihl > IPV4_LEN || zero_udp) {
        return tc_hand_off(ctx, cfg, ip4, ihl, tot_len, shared);
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
    if !is_translatable_v4(ip4.dst) {
        return Err(DropReason::MartianAddress);
    }
    // An ICMP error is translated whatever its source (a router's loopback or unspecified
    // address says nothing about where replies go; Jool does the same): it maps like any
    // other, or takes an RFC 6791 source.
    if !is_translatable_v4(ip4.src) {
        if ip4.proto == IPPROTO_ICMP && read::<u8>(ctx, ETH_LEN + ihl).is_some_and(is_icmpv4_error)
        {
            return Ok(Step::IcmpError);
        }
        return Err(DropReason::MartianAddress);
    }
    let Some(src_map) = addrmap::v4_src(cfg, ip4.src) else {
        // RFC 6791: an ICMP error may come from a source with no mapping (a router);
        // `icmp_error` gives it one. Anything else must map. (Settled here, so that no
        // optional mapping stays live across the paths below.)
        if ip4.proto == IPPROTO_ICMP && read::<u8>(ctx, ETH_LEN + ihl).is_some_and(is_icmpv4_error)
        {
            return Ok(Step::IcmpError);
        }
        return Err(DropReason::SourceUntranslatable);
    };

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
    // The translated packet must fit the IPv6 MTU. Too big for its route with DF set: the
    // sender runs path MTU discovery (RFC 1191), so it gets Fragmentation Needed from here
    // (`too_big`). Larger than ipv6_mtu without DF, or a fragment: RFC 7915 section 4.1 wants
    // it fragmented so that each piece fits, which XDP cannot do (one packet in, one out); the
    // kernel does it on the way into the translator link, whose IPv4 routes carry an MTU of
    // ipv6_mtu - 28 (20 bytes of header growth and 8 of Fragment header), and the pieces are
    // translated there.
    let v6_len = match ctx.gso_size() as usize {
        0 => payload_len as usize + IPV6_LEN + frag_hdr_len,
        // A GSO aggregate (TC): what counts is the segments the kernel will cut it into, each
        // a transport header (TCP's with its options) and at most `gso_size` bytes of data.
        seg => {
            let l4_hdr = match ip4.proto {
                IPPROTO_TCP => {
                    read::<[u8; 13]>(ctx, l4_off).map_or(60, |h| (h[12] >> 4) as usize * 4)
                }
                _ => 8,
            };
            (seg & 0xffff) + l4_hdr + IPV6_LEN
        }
    };
    // ipv6_mtu is what packets without DF are fragmented to (RFC 7915 section 4: by default
    // 1280, the minimum IPv6 MTU; Jool's lowest-ipv6-mtu), not a bound on packets with DF,
    // which the real IPv6 path judges (section 4.1 leaves their MTU to the IPv6 side): the
    // route out below (a FIB lookup), and beyond it a router's Packet Too Big, translated
    // back to the sender.
    if cfg.ipv6_mtu != 0 && v6_len > cfg.ipv6_mtu as usize && frag & IPV4_DF == 0 {
        // To a pool4 address the node shares, the kernel would not fragment the packet on
        // its way into the link but deliver it to itself: it goes there under the address's
        // alias (see above). Without one (`shared_address_alias = "off"`) it is translated
        // whole, and the IPv6 route judges it (its Packet Too Big comes back to the sender as
        // Fragmentation Needed): a deviation from RFC 7915 section 4.1 where ipv6_mtu is
        // below the path's MTU.
        if link::aliased_whole(ctx, cfg, ip4.dst, ip4.proto, l4_off) {
            return Ok(Step::Alias { aggregate: false });
        }
        if !shared {
            return link::hand_off(
                cfg,
                Dir::V4ToV6,
                Handoff::NeedsFragmentation,
                DropReason::PacketTooBig,
            );
        }
    }
    // With DF, too big for the IPv6 route out (the route's MTU from `egress`, asked for
    // packets over the IPv6 minimum MTU and the narrowest interface only): answered here with Fragmentation Needed from this node (`too_big`,
    // RFC 1191's MTU: the route's, 20 bytes less), quoting the packet as sent, as Jool does
    // from its own route lookup. The kernel's Packet Too Big would come back through the link
    // with a quote rebuilt from the IPv6 packet, in which a fragment's DF does not survive.
    //
    // Without DF, within ipv6_mtu but too big for an IPv6 route narrower than it (an
    // interface below ipv6_mtu: a tunnel, say): RFC 7915 section 4.1 wants it fragmented so
    // that each piece fits, as Jool does to its route's MTU. The kernel does it on the way
    // into the translator link, whose IPv4 routes the daemon keeps within the IPv6 route
    // their packets take as well as ipv6_mtu (`translator_link::ipv4_routes`). Not on the
    // link itself (the kernel's Packet Too Big answers there), nor to a pool4 address the
    // node shares (only a raised ipv6_mtu leaves room for a narrower IPv6 route: the default
    // is the IPv6 minimum; such a packet is translated whole).
    let df = frag & IPV4_DF != 0;
    if df || (cfg.flags & CONFIG_F_LINK != 0 && !link::on_link(cfg) && !shared) {
        let mtu = route_mtu_if_too_big(ctx, cfg, v6_len);
        if mtu != 0 && df {
            s.ptb_mtu = mtu.saturating_sub(20).to_be_bytes();
            return Ok(Step::FragNeeded);
        }
        if mtu != 0 {
            return link::hand_off(
                cfg,
                Dir::V4ToV6,
                Handoff::NeedsFragmentation,
                DropReason::PacketTooBig,
            );
        }
    }
    // The binding's IPv6 port replaces the destination port (TCP, UDP) or the echo identifier
    // (ICMP); written only now that nothing above can hand the packet on untouched.
    if s.bound_port_at != 0 {
        write_bytes(ctx, s.bound_port_at as usize & 0x3ff, s.bound_port6)?;
    }
    let v4src = ip4.src;
    // The source's IPv6 address, as halves: summed here, written after the head move.
    let src6 = addrmap::to6_halves(cfg, src_map, v4src);
    let new_addrs = checksum::sum_halves(src6.0, src6.1) + sum16(&s.addr6[1]);
    let delta = l4::PseudoDelta {
        old_addrs: sum4(&ip4.src) + sum4(&ip4.dst),
        new_addrs,
        len_proto: payload_len as u32 + ip4.proto as u32,
        old_port: s.port_old,
        new_port: s.port_new,
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
            // computes a missing one for an unfragmented datagram (unless configured to drop
            // it) and drops a fragmented one.
            let zero_udp = if !C::FULL {
                // Handed to the link above.
                l4::ZeroUdp::Keep
            } else if fragmented || cfg.flags2 & CONFIG_F2_UDP_ZERO_DROP != 0 {
                l4::ZeroUdp::Drop
            } else {
                l4::ZeroUdp::Compute {
                    len: payload_len as usize,
                }
            };
            if let Err(e) = l4::fix_checksum(ctx, ip4.proto, l4_off, &delta, zero_udp) {
                // Refused (a zero UDP checksum), and answered with an error that quotes the
                // datagram: as its sender sent it, with the pool4 port, not the client's own
                // port the binding wrote above.
                if s.bound_port_at != 0 {
                    write_bytes(
                        ctx,
                        s.bound_port_at as usize & 0x3ff,
                        (s.port_old as u16).to_be_bytes(),
                    )?;
                }
                return Err(e);
            }
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
                (s.port_old, s.port_new),
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

    let macs = crate::packet::Macs::read(ctx).ok_or(DropReason::Truncated)?;
    // Grow (or, with more than 20 bytes of options, shrink) the head so the transport header
    // stays where it is.
    let grow = (IPV6_LEN + frag_hdr_len) as i32 - ihl as i32;
    if !resize_head(ctx, -grow, &macs, ETH_P_IPV6) {
        return Err(DropReason::HeadroomExhausted);
    }
    write_bytes(ctx, ETH_LEN, first8)?;
    write_halves(ctx, ETH_LEN + 8, src6)?;
    write_addr6(ctx, ETH_LEN + 24, &s.addr6[1])?;
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

/// At TC, a fragment, a packet with options or a UDP datagram without a checksum goes into
/// the translator link, whose program translates it (the kernel fragments it on the way in
/// when it is too big): through the
/// kernel's routing (`link::slow_path`), or directly (`link::redirect`) when the kernel would
/// not route it there: addressed to a pool4 address the node `shared`, or with a source route
/// (which the kernel drops on arrival), or with DF and too big for its IPv6 route (the link's
/// program answers Fragmentation Needed with that route's MTU; the link's IPv4 routes would
/// answer with their own), or with DF and larger than the link's IPv4 routes let in
/// (`ipv6_mtu` - 28: they are sized for packets without DF, which the kernel fragments to
/// them; one with DF would get Fragmentation Needed with that MTU, which RFC 7915 section 4
/// does not hold it to). `tot_len` is at least `ihl` (checked by the caller).
#[inline(always)]
fn tc_hand_off<C: Frame>(
    ctx: &C,
    cfg: &Config,
    ip4: &Ipv4Hdr,
    ihl: usize,
    tot_len: usize,
    shared: bool,
) -> Result<Step, DropReason> {
    let frag = u16::from_be_bytes(ip4.frag);
    let fragmented = frag & (IPV4_MF | IPV4_OFFSET_MASK) != 0;
    let v6_len = tot_len - ihl + IPV6_LEN + if fragmented { FRAG_LEN } else { 0 };
    let df = frag & IPV4_DF != 0;
    if shared
        || (!fragmented && ihl > IPV4_LEN && has_source_route(ctx, ihl))
        || (df && cfg.ipv6_mtu != 0 && tot_len + 28 > cfg.ipv6_mtu as usize)
        || (df && route_mtu_if_too_big(ctx, cfg, v6_len) != 0)
    {
        return link::redirect(cfg, Dir::V4ToV6);
    }
    link::slow_path(cfg, Dir::V4ToV6)
}

/// RFC 7915 section 4.1: options are ignored, except that an unexpired source route (LSRR or
/// SSRR whose pointer has not run past its length) means the packet must be discarded.
///
/// The walk runs under `bpf_loop`: its callback is verified once, where an open-coded loop of
/// up to 40 steps is verified again on every path that reaches it.
#[inline(always)]
fn check_options<C: Frame>(ctx: &C, ihl: usize) -> Result<(), DropReason> {
    walk_options(ctx, ihl, 0)
}

/// Whether the options hold a source route at all, traversed or not: the kernel drops such a
/// packet on arrival (`accept_source_route` is off by default), so at TC it goes into the
/// translator link directly (`link::redirect`), where `check_options` judges it.
#[inline(always)]
fn has_source_route<C: Frame>(ctx: &C, ihl: usize) -> bool {
    walk_options(ctx, ihl, 1) == Err(DropReason::SourceRoute)
}

#[inline(always)]
fn walk_options<C: Frame>(ctx: &C, ihl: usize, any_route: u32) -> Result<(), DropReason> {
    let mut walk = OptionWalk {
        ctx: ctx.raw(),
        end: (ihl - IPV4_LEN) as u32,
        i: 0,
        verdict: 0,
        any_route,
    };
    // SAFETY: `option_step` reads and writes only `walk`, which outlives the call.
    unsafe {
        aya_ebpf::helpers::generated::bpf_loop(
            MAX_OPTIONS as u32,
            option_step::<C> as *mut core::ffi::c_void,
            &mut walk as *mut OptionWalk as *mut core::ffi::c_void,
            0,
        );
    }
    match walk.verdict {
        0 => Ok(()),
        1 => Err(DropReason::SourceRoute),
        2 => Err(DropReason::BadHeader),
        _ => Err(DropReason::Truncated),
    }
}

/// State of the options walk, shared with its `bpf_loop` callback.
#[repr(C)]
struct OptionWalk {
    ctx: *mut core::ffi::c_void,
    end: u32,
    i: u32,
    /// 0 fine, 1 source route, 2 bad option, 3 truncated.
    verdict: u32,
    /// 1: a traversed source route counts too.
    any_route: u32,
}

/// One option. Each step consumes at least one byte, so `MAX_OPTIONS` steps cover the area.
extern "C" fn option_step<C: Frame>(_n: u64, c: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `c` is the `OptionWalk` that `check_options` passed to `bpf_loop`.
    let c = unsafe { &mut *(c as *mut OptionWalk) };
    let i = c.i as usize;
    if i >= c.end as usize || i >= MAX_OPTIONS {
        return 1;
    }
    let ctx = C::from_raw(c.ctx);
    let base = ETH_LEN + IPV4_LEN;
    let Some(ty) = crate::packet::load_u8(&ctx, base + i) else {
        c.verdict = 3;
        return 1;
    };
    match ty {
        IPOPT_EOL => 1,
        IPOPT_NOP => {
            c.i += 1;
            0
        }
        _ => {
            let Some([len, ptr]) = read::<[u8; 2]>(&ctx, base + i + 1) else {
                c.verdict = 2;
                return 1;
            };
            // A length below 2, or running past the header, is malformed (the kernel's
            // ip_options_compile drops it too).
            if len < 2 || i + len as usize > c.end as usize {
                c.verdict = 2;
                return 1;
            }
            if (ty == IPOPT_LSRR || ty == IPOPT_SSRR) && (ptr <= len || c.any_route != 0) {
                c.verdict = 1;
                return 1;
            }
            c.i += len as u32;
            0
        }
    }
}

/// ICMPv4 echo to ICMPv6 echo (RFC 7915 section 4.2): the type changes and the ICMPv6
/// pseudo-header (RFC 8200 section 8.1) enters the checksum.
#[inline(always)]
fn echo4_to_echo6(
    ctx: &impl Frame,
    off: usize,
    addrs6: u32,
    payload_len: u16,
    h: &IcmpFull,
    ty6: u8,
    (old_id, new_id): (u32, u32),
) -> Result<(), DropReason> {
    let pseudo = addrs6 + payload_len as u32 + IPPROTO_ICMPV6 as u32;
    let c = checksum::update(
        u16::from_be_bytes(h.check),
        word(h.ty, h.code) + old_id,
        pseudo + word(ty6, h.code) + new_id,
    );
    let p = ptr_at::<[u8; 4]>(ctx, off).ok_or(DropReason::Truncated)?;
    let [cb0, cb1] = c.to_be_bytes();
    // SAFETY: bounds checked by `ptr_at`.
    unsafe { p.write_unaligned([ty6, h.code, cb0, cb1]) };
    Ok(())
}

/// Stateful NAT64 (RFC 6146): the IPv6 destination of an IPv4 packet to pool4, from the binding
/// of its transport address (or, for a later fragment, the binding its first fragment found),
/// written to the scratch slot with the port word change and where the new port goes (the
/// caller writes it once its checks pass). ICMP errors are left to `icmp_error` (the binding
/// of the packet they quote); other ICMP messages than echo to the ICMP table. Returns 0,
/// [`NOT_OURS`], or 0x100 with the `DropReason` index in the low byte.
///
/// A pool4 address may be one of the node's own, shared by port (Jool's default pool4 is the
/// node's addresses, ports 61001-65535): what arrives for it outside pool4's port ranges, and
/// finds no binding, is the node's own traffic (its sockets' ephemeral ports, SSH, an echo
/// reply to its own ping, an ICMP error about a packet it sent, other protocols), and is left
/// to the kernel.
///
/// Not inlined, and called before the translation branches: it is verified for few paths.
#[inline(never)]
fn stateful_destination<C: Frame>(ctx: &C, cfg: &Config) -> u32 {
    match refused_before_binding(ctx, cfg) {
        Ok(false) => {}
        Ok(true) => return HAND_OFF,
        Err(r) => return r as u32 | 0x100,
    }
    match resolve_destination(ctx, cfg) {
        Ok(true) => 0,
        Ok(false) => NOT_OURS,
        Err(r) => r as u32 | 0x100,
    }
}

/// [`stateful_destination`]: not a translated flow, but the node's own.
const NOT_OURS: u32 = 0x200;
/// [`stateful_destination`], at TC: a packet for the translator link, not looked up here.
const HAND_OFF: u32 = 0x400;

/// What is refused, or handed on, whatever a binding says is settled before one is looked
/// at, so that it makes or refreshes no state either (RFC 6146 section 3.5 keeps state for
/// what RFC 7915 translates): a fragmented ICMP message (see `translate_packet`), a UDP
/// datagram without a checksum that will not be translated (section 4.5: fragmented, or so
/// configured), and at TC a packet with options, which goes on into the translator link
/// untouched (`Ok(true)`). (Options themselves, malformed or an unexpired source route, are
/// judged in XDP with the header, in `translate_packet`, for every destination: the kernel
/// would drop such a packet of the node's own too.) Not for an address the node shares,
/// whose own traffic (its large pings' fragments, say) only the lookup tells apart: those
/// checks come after it. Inside the non-inlined lookup, so that its branches do not multiply
/// the paths the verifier walks through the translation after it.
#[inline(always)]
fn refused_before_binding<C: Frame>(ctx: &C, cfg: &Config) -> Result<bool, DropReason> {
    let ip4 = view::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    if cfg.shared4 != [0; 4] && ip4.dst == cfg.shared4 {
        return Ok(false);
    }
    let frag = u16::from_be_bytes(ip4.frag);
    if frag & (IPV4_MF | IPV4_OFFSET_MASK) != 0 && ip4.proto == IPPROTO_ICMP {
        return Err(DropReason::Fragment);
    }
    let ihl = ((ip4.ver_ihl & 0x0f) as usize * 4) & 0x3c;
    if C::FULL
        && ip4.proto == IPPROTO_UDP
        && (frag & (IPV4_MF | IPV4_OFFSET_MASK) == IPV4_MF
            || (frag & IPV4_OFFSET_MASK == 0 && cfg.flags2 & CONFIG_F2_UDP_ZERO_DROP != 0))
        && read::<[u8; 2]>(ctx, ETH_LEN + ihl + 6).is_some_and(|c| c == [0, 0])
    {
        return Err(DropReason::UdpZeroChecksum);
    }
    // (In XDP the options were judged with the header, before this lookup.)
    Ok(!C::FULL && ihl > IPV4_LEN && ip4.tot_len != [0; 2])
}

#[inline(always)]
fn resolve_destination(ctx: &impl Frame, cfg: &Config) -> Result<bool, DropReason> {
    let s = crate::scratch::get()?;
    let ip4 = view::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    let l4_off = ETH_LEN + (((ip4.ver_ihl & 0x0f) as usize) * 4 & 0x3c);
    let frag = u16::from_be_bytes(ip4.frag);
    // A later fragment has no port: it follows the binding its first fragment found.
    if frag & IPV4_OFFSET_MASK != 0 {
        let Some(b) = stateful::fragment_binding(ip4.src, ip4.dst, ip4.id, ip4.proto) else {
            // The node's own datagram to an address it shares (a large DNS answer to its
            // resolver, say): its first fragment went up untouched (no binding), and so do
            // the later ones, for the kernel to reassemble.
            if cfg.shared4 != [0; 4] && ip4.dst == cfg.shared4 {
                return Ok(false);
            }
            return Err(DropReason::Fragment);
        };
        crate::packet::copy_addr6(&mut s.addr6[1], &b.addr6);
        return Ok(true);
    }
    let (at, bib_proto, tcp) = match ip4.proto {
        IPPROTO_TCP => {
            let f = read::<[u8; 2]>(ctx, l4_off + 12).ok_or(DropReason::Truncated)?;
            (l4_off + 2, state::BIB_TCP, f[1])
        }
        IPPROTO_UDP => (l4_off + 2, state::BIB_UDP, 0),
        IPPROTO_ICMP => {
            let h = read::<[u8; 2]>(ctx, l4_off).ok_or(DropReason::Truncated)?;
            if h[0] != ICMP_ECHO_REQUEST && h[0] != ICMP_ECHO_REPLY {
                // Other queries (timestamps, ...) have no binding: the node's, if any.
                return Ok(is_icmpv4_error(h[0]) && quoted_is_ours(ctx, cfg, ip4.dst, l4_off));
            }
            (l4_off + 4, state::BIB_ICMP, 0)
        }
        // Another protocol to a pool4 address: the node's own, if it is the node's address.
        _ => return Ok(false),
    };
    let port4 = read::<[u8; 2]>(ctx, at).ok_or(DropReason::Truncated)?;
    let Some(b) = stateful::inbound(ip4.dst, port4, bib_proto) else {
        // No binding: outside pool4's ports (or an echo, whose identifiers the node's own
        // pings share), the node's; inside them, refused (RFC 6146 section 3.5).
        if bib_proto == state::BIB_ICMP || !stateful::in_ports(cfg, bib_proto, port4) {
            return Ok(false);
        }
        // RFC 6146 section 3.5.2.2: an IPv4 host opening a TCP connection with no binding is
        // held 6 seconds (a simultaneous open may come from the IPv6 side), then answered
        // with ICMP Port Unreachable by the daemon.
        if bib_proto == state::BIB_TCP && stateful::is_opening(tcp) {
            return Err(stateful::hold_syn(ctx, l4_off, port4));
        }
        return Err(DropReason::NoBinding);
    };
    // The session of the binding and the sender (RFC 6146 section 3.5), made now if the
    // filtering policy lets the sender open one.
    let remote_port = if bib_proto == state::BIB_ICMP {
        [0; 2]
    } else {
        read::<[u8; 2]>(ctx, l4_off).ok_or(DropReason::Truncated)?
    };
    s.sess_key = state::SessionKey {
        addr4: ip4.dst,
        port4,
        proto: bib_proto,
        _pad: 0,
        remote4: ip4.src,
        remote_port,
        _pad2: [0; 2],
    };
    s.sess_flags = tcp;
    let mut args = 0;
    if cfg.flags2 & CONFIG_F2_ADF != 0 {
        args |= stateful::SESSION_ADF;
    }
    if cfg.flags2 & CONFIG_F2_DROP_EXTERNAL_TCP != 0 {
        args |= stateful::SESSION_DROP_EXTERNAL_TCP;
    }
    if b.flags & state::BIB_F_STATIC != 0 {
        args |= stateful::SESSION_STATIC;
    }
    match stateful::session(args) {
        // Let through: the binding is refreshed from the IPv4 side.
        stateful::SESS_OK => b.last_ns = s.now_ns,
        stateful::SESS_HOLD => return Err(stateful::hold_syn(ctx, l4_off, port4)),
        stateful::SESS_FILTERED => return Err(DropReason::Filtered),
        _ => return Err(DropReason::TableFull),
    }
    // A first fragment's binding is remembered for the later ones, unless the datagram is
    // UDP without a checksum: it is not translated (RFC 7915 section 4.5: the checksum would
    // need all of it; RFC 6146 section 3.4), so neither are the rest of it.
    if frag & IPV4_MF != 0
        && !(bib_proto == state::BIB_UDP
            && read::<[u8; 2]>(ctx, l4_off + 6).is_some_and(|c| c == [0, 0]))
    {
        stateful::remember_fragments(ip4.src, ip4.dst, ip4.id, ip4.proto, b);
    }
    crate::packet::copy_addr6(&mut s.addr6[1], &b.addr6);
    s.port_old = word(port4[0], port4[1]);
    s.port_new = word(b.port6[0], b.port6[1]);
    s.bound_port6 = b.port6;
    s.bound_port_at = at as u16;
    Ok(true)
}

/// Whether the ICMPv4 error at `l4_off`, to pool4 address `dst4`, is about a translated flow:
/// the packet it quotes left from `dst4` with a binding's port (or one inside pool4's ranges,
/// which `icmp_error` then refuses without a binding). One the node sent itself (another
/// source port, another protocol) is the node's to receive.
#[inline(always)]
fn quoted_is_ours(ctx: &impl Frame, cfg: &Config, dst4: [u8; 4], l4_off: usize) -> bool {
    let inner = l4_off + crate::packet::ICMP_LEN;
    let Some(h) = read::<[u8; 12]>(ctx, inner) else {
        return true;
    };
    let at = inner + (((h[0] & 0x0f) as usize) * 4 & 0x3c);
    let (at, proto) = match h[9] {
        IPPROTO_TCP => (at, state::BIB_TCP),
        IPPROTO_UDP => (at, state::BIB_UDP),
        IPPROTO_ICMP => (at + 4, state::BIB_ICMP),
        _ => return false,
    };
    let Some(port) = read::<[u8; 2]>(ctx, at & 0x3ff) else {
        return true;
    };
    stateful::lookup4(dst4, port, proto).is_some()
        || (proto != state::BIB_ICMP && stateful::in_ports(cfg, proto, port))
}
