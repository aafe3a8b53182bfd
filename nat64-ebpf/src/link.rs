//! The translator link (see `CONFIG_F_LINK`): a veth pair the daemon creates, into which the
//! kernel routes pool6 and the EAM IPv4 prefixes. Its far end runs `nat64_link`, the same
//! translation as the fast path with three differences decided here:
//!
//! - a translated packet goes back into the link (`XDP_TX`, MAC addresses swapped) and the
//!   kernel routes it from there;
//! - the hop the kernel took off on the way into the link is given back, so the slow path
//!   costs one hop like the fast one (the kernel takes the second off on the way out, and
//!   answers Time Exceeded itself on the way in when a packet has none left);
//! - nothing is handed off again.
//!
//! On the fast path, packets of ours that XDP cannot translate in place are handed to the
//! kernel untouched ([`hand_off`]), which fragments or segments them on their way into the
//! link.

use crate::frame::Frame;
use aya_ebpf::bindings::xdp_action;
use nat64_common::{
    Counter, Dir, DropReason, Handoff, checksum,
    maps::{CONFIG_F_LINK, CONFIG_F_ON_LINK, Config},
};

use crate::{
    Step,
    packet::{EthHdr, read, write_bytes},
    stats,
};

/// Whether this runs on the far end of the translator link.
#[inline(always)]
pub fn on_link(cfg: &Config) -> bool {
    cfg.flags & CONFIG_F_ON_LINK != 0
}

/// The hop limit (or TTL) a translated packet leaves with: as it came on the fast path; one
/// more on the link, giving back the hop the kernel's forwarding into the link took.
/// Traffic this node originates was not decremented on its way in, so it gains one hop.
#[inline(always)]
pub fn hops(cfg: &Config, h: u8) -> u8 {
    if on_link(cfg) { h.saturating_add(1) } else { h }
}

/// A packet of ours that XDP cannot translate in place: with a translator link it goes to the
/// kernel untouched (counted as a hand-off, not a drop), which routes it into the link after
/// fragmenting or segmenting it; without one, or on the link itself, it is dropped for
/// `otherwise`.
#[inline(always)]
pub fn hand_off(
    cfg: &Config,
    dir: Dir,
    why: Handoff,
    otherwise: DropReason,
) -> Result<Step, DropReason> {
    if cfg.flags & (CONFIG_F_LINK | CONFIG_F_ON_LINK) == CONFIG_F_LINK {
        stats::add(Counter::Handoff(dir, why), 1);
        Ok(Step::Done(xdp_action::XDP_PASS))
    } else {
        Err(otherwise)
    }
}

/// At TC: what the TC program leaves to the full core on the translator link, untouched
/// (`Handoff::SlowPath`).
#[inline(always)]
pub fn slow_path(cfg: &Config, dir: Dir) -> Result<Step, DropReason> {
    hand_off(cfg, dir, Handoff::SlowPath, DropReason::NeedsLink)
}

/// At TC: a packet of ours the kernel would refuse before routing it into the translator link
/// (an IPv4 source route, a martian source) is redirected into the link itself
/// (`tc::verdict`, which takes the hop the kernel would have), counted as a hand-off. Without
/// a link, as `slow_path`.
#[inline(always)]
pub fn redirect(cfg: &Config, dir: Dir) -> Result<Step, DropReason> {
    if cfg.link_ifindex != 0 && cfg.flags & (CONFIG_F_LINK | CONFIG_F_ON_LINK) == CONFIG_F_LINK {
        stats::add(Counter::Handoff(dir, Handoff::SlowPath), 1);
        Ok(Step::Done(xdp_action::XDP_REDIRECT))
    } else {
        slow_path(cfg, dir)
    }
}

/// The verdict for a translated packet: up the stack on the fast path, so routing, netfilter
/// and service load balancing apply to it; back into the link on its far end. On the fast path,
/// an IPv4 packet to a pool4 address the node shares (`Config::shared4`: stateful hairpinning)
/// goes into the link directly, as the kernel would deliver it locally.
#[inline(always)]
pub fn emit(ctx: &impl Frame, cfg: &Config, dir: Dir) -> u32 {
    if !on_link(cfg) {
        if dir == Dir::V6ToV4
            && cfg.shared4 != [0; 4]
            && read::<[u8; 4]>(ctx, crate::packet::ETH_LEN + 16) == Some(cfg.shared4)
            && cfg.link_ifindex != 0
        {
            return match ctx.as_xdp() {
                Some(_) if prepare(ctx, cfg) => {
                    // SAFETY: plain helper call; flags 0.
                    unsafe {
                        aya_ebpf::helpers::generated::bpf_redirect(cfg.link_ifindex, 0) as u32
                    }
                }
                Some(_) => xdp_action::XDP_DROP,
                // At TC, `tc::verdict` readies it.
                None => xdp_action::XDP_REDIRECT,
            };
        }
        return xdp_action::XDP_PASS;
    }
    // The frame came from the kernel side of the link, addressed to its own MAC (the link has
    // no neighbours: NOARP); it goes back addressed to where it came from.
    let Some(eth) = read::<EthHdr>(ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    if routed_back(ctx, cfg) {
        // Not for somewhere else: the hop given back (`hops`) is taken again, so that a
        // packet going round through the link loses one on every turn (the kernel answers
        // Time Exceeded when it has none left) instead of circling for ever.
        let Some(h) = read::<[u8; 1]>(ctx, crate::packet::ETH_LEN + 7) else {
            return xdp_action::XDP_DROP;
        };
        if write_bytes(ctx, crate::packet::ETH_LEN + 7, [h[0].saturating_sub(1)]).is_err() {
            return xdp_action::XDP_DROP;
        }
    }
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&eth.src);
    macs[6..].copy_from_slice(&eth.dst);
    match write_bytes(ctx, 0, macs) {
        Ok(()) => xdp_action::XDP_TX,
        Err(_) => xdp_action::XDP_DROP,
    }
}

/// Whether the kernel will route the IPv6 packet the link is about to send back straight into
/// the link again. RFC 7757 lets an EAM entry's IPv6 side lie under pool6, which is routed
/// into the link: IPv4 to the entry's prefix becomes IPv6 to pool6, which the link translates
/// back to the same IPv4 prefix, and so round. Every such turn has an IPv6 leg under pool6
/// (the link's only IPv6 route), so only those legs are looked up: one FIB lookup from the
/// link's kernel side, where the kernel's own will start.
#[inline(never)]
fn routed_back(ctx: &impl Frame, cfg: &Config) -> bool {
    use crate::packet::{ETH_LEN, ETH_P_IPV6};
    use aya_ebpf::bindings::{BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup};
    if cfg.link_ifindex == 0 || crate::packet::ethertype(ctx) != Some(ETH_P_IPV6) {
        return false;
    }
    let Some(dst) = read::<[u8; 16]>(ctx, ETH_LEN + 24) else {
        return false;
    };
    if !nat64_common::addr::prefix_matches(&dst, &cfg.pool6, cfg.pool6_len) {
        return false;
    }
    let Some(p) = crate::maps::FIB.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: the per-CPU slot, private to this packet while the program runs.
    let p: &mut bpf_fib_lookup = unsafe { &mut *p };
    crate::egress::query(p, crate::proto::AF_INET6, cfg.link_ifindex, 0);
    p.__bindgen_anon_3.ipv6_src = [0; 4];
    p.__bindgen_anon_4.ipv6_dst = crate::packet::addr_words(&dst);
    // SAFETY: helper call with the context and a map value of the size given.
    let rc = unsafe {
        aya_ebpf::helpers::generated::bpf_fib_lookup(
            ctx.raw(),
            p as *mut bpf_fib_lookup,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    // The route is known either way; the neighbour (none on the link, which has no ARP or ND)
    // does not matter. (`BPF_FIB_LOOKUP_SKIP_NEIGH` would say so, from Linux 6.3 only; the
    // kernel sets the egress interface before it looks the neighbour up.)
    (rc == BPF_FIB_LKUP_RET_SUCCESS as i64 || rc == BPF_FIB_LKUP_RET_NO_NEIGH as i64)
        && p.ifindex == cfg.link_ifindex
}

/// Readies an IPv4 packet to be redirected into the link: both MAC addresses the link's
/// kernel side's (as the kernel addresses what it routes there; the link has no neighbours),
/// the TTL one less, as the kernel's forwarding would take it (the link's program gives it
/// back; RFC 1624 for the header checksum). `false` when it has no hop left (counted). Not
/// inlined: its locals stay out of the entry point's frame (the stack is 512 bytes over the
/// call chain).
#[inline(never)]
pub fn prepare(ctx: &impl Frame, cfg: &Config) -> bool {
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&cfg.link_mac);
    macs[6..].copy_from_slice(&cfg.link_mac);
    take_hop(ctx) && write_bytes(ctx, 0, macs).is_ok()
}

/// On the link's kernel side (`nat64_return`): an IPv4 packet the far end translated toward a
/// pool4 address the node shares (`Config::shared4`) goes back to the far end, which
/// translates it again through the binding (the kernel would deliver it locally). It loses the
/// hop the kernel's forwarding would have taken. Anything else goes up the stack.
#[inline(always)]
pub fn bounce(ctx: &impl Frame, cfg: &Config) -> u32 {
    if cfg.shared4 == [0; 4]
        || crate::packet::ethertype(ctx) != Some(crate::packet::ETH_P_IP)
        || read::<[u8; 4]>(ctx, crate::packet::ETH_LEN + 16) != Some(cfg.shared4)
    {
        return xdp_action::XDP_PASS;
    }
    if take_hop(ctx) {
        xdp_action::XDP_TX
    } else {
        xdp_action::XDP_DROP
    }
}

/// One hop off an IPv4 packet (RFC 1624 for the header checksum); `false` when it had none
/// left (counted).
#[inline(always)]
fn take_hop(ctx: &impl Frame) -> bool {
    let Some(h) = read::<[u8; 12]>(ctx, crate::packet::ETH_LEN) else {
        return false;
    };
    let (ttl, proto) = (h[8], h[9]);
    if ttl <= 1 {
        stats::add(
            Counter::Dropped(Dir::V4ToV6, DropReason::HopLimitExceeded),
            1,
        );
        return false;
    }
    let check = nat64_common::checksum::update(
        u16::from_be_bytes([h[10], h[11]]),
        crate::packet::word(ttl, proto),
        crate::packet::word(ttl - 1, proto),
    );
    let [c0, c1] = check.to_be_bytes();
    write_bytes(ctx, crate::packet::ETH_LEN + 8, [ttl - 1, proto, c0, c1]).is_ok()
}

/// Whether `dst` is the pool4 address the node shares and has an alias for ([`to_alias`]),
/// on the fast path. Asked where it is needed rather than kept: a flag live across the
/// translation would have the verifier walk it once for each value.
#[inline(always)]
pub fn aliased(cfg: &Config, dst: [u8; 4]) -> bool {
    cfg.shared4_alias != [0; 4] && cfg.shared4 != [0; 4] && dst == cfg.shared4 && !on_link(cfg)
}

/// [`aliased`], for a whole packet (not a fragment) at `l4`: TCP, or UDP with a checksum. An
/// ICMP message, or a UDP datagram without a checksum, would reach the link in pieces it
/// cannot translate (their checksums need all of the message: RFC 7915 sections 4.2 and 4.5),
/// so those are translated whole, as without an alias (a large ping's reply, say).
#[inline(always)]
pub fn aliased_whole(ctx: &impl Frame, cfg: &Config, dst: [u8; 4], proto: u8, l4: usize) -> bool {
    aliased(cfg, dst)
        && match proto {
            crate::packet::IPPROTO_TCP => true,
            crate::packet::IPPROTO_UDP => read::<[u8; 2]>(ctx, l4 + 6).is_some_and(|c| c != [0; 2]),
            _ => false,
        }
}

/// RFC 7915 section 4.1 for a pool4 address the node shares (`Config::shared4_alias`): an
/// IPv4 packet without DF too big for `ipv6_mtu` once translated, or a fragment, goes to the
/// kernel readdressed to the alias, which the daemon routes into the link with pool4's MTU.
/// The kernel fragments it on the way there (what is addressed to the node itself it would
/// deliver instead), and the far end puts the address back ([`from_alias`]) and translates
/// the pieces. Every fragment of a datagram takes this way, so that a kernel that reassembles
/// what it forwards (connection tracking) gets all of them. Counted as a hand-off.
///
/// `aggregate`: a GSO aggregate too big to translate in place (generic XDP receives them
/// whole), which the kernel cuts on its way into the link: to the shared address it would
/// deliver the aggregate to the node instead (which answers a TCP one with a reset). Its
/// transport checksum field holds the pseudo-header seed the segments' checksums are finished
/// from, whatever the interface. One with DF (TCP's) goes to the address after the alias
/// ([`df_alias`]), routed at the link's own MTU: the kernel only cuts it into segments, and
/// the link answers one too big for its IPv6 route with Fragmentation Needed quoting the
/// shared address, which the sender's TCP heeds. Under the alias, routed at pool4's MTU, the
/// kernel would answer it itself, quoting the alias, which no sender's socket matches: a black
/// hole. Counted as a `gso_aggregate` hand-off.
///
/// Reached through `Step::Alias`, from one call site.
#[inline(always)]
pub fn to_alias(ctx: &impl Frame, cfg: &Config, aggregate: bool) -> Result<Step, DropReason> {
    let h = read::<[u8; 9]>(ctx, crate::packet::ETH_LEN).ok_or(DropReason::Truncated)?;
    let ihl = (h[0] & 0x0f) as usize * 4;
    // An aggregate whose TTL runs out here goes as it is: under the alias, the kernel's Time
    // Exceeded would quote the alias. (Fragments are settled before: `translate_packet`.)
    if aggregate && h[8] <= 1 {
        stats::add(Counter::Handoff(Dir::V4ToV6, Handoff::GsoAggregate), 1);
        return Ok(Step::Done(xdp_action::XDP_PASS));
    }
    let (to, why) = if !aggregate {
        (cfg.shared4_alias, Handoff::NeedsFragmentation)
    } else if h[6] & 0x40 != 0 {
        (df_alias(cfg), Handoff::GsoAggregate)
    } else {
        (cfg.shared4_alias, Handoff::GsoAggregate)
    };
    readdress(ctx, ihl, cfg.shared4, to, aggregate as u32)?;
    stats::add(Counter::Handoff(Dir::V4ToV6, why), 1);
    Ok(Step::Done(xdp_action::XDP_PASS))
}

/// The address after the alias (`Config::shared4_alias`), which the daemon routes into the
/// link at the link's MTU, for aggregates with DF ([`to_alias`]).
#[inline(always)]
fn df_alias(cfg: &Config) -> [u8; 4] {
    u32::from_be_bytes(cfg.shared4_alias)
        .wrapping_add(1)
        .to_be_bytes()
}

/// On the link's far end, before the translation: an IPv4 packet to the alias of the pool4
/// address the node shares ([`to_alias`]) gets that address back. Anything else is left as
/// it is. `false`: one to the alias that cannot have it (no address is shared, or a malformed
/// header), to drop (counted): passed up the far end, it would be routed back into the link,
/// round and round until its TTL ran out.
#[inline(always)]
pub fn from_alias(ctx: &impl Frame) -> bool {
    let Some(cfg) = crate::maps::CONFIG.get(crate::maps::CONFIG_LINK) else {
        return true;
    };
    if cfg.shared4_alias == [0; 4] || crate::packet::ethertype(ctx) != Some(crate::packet::ETH_P_IP)
    {
        return true;
    }
    let Some(dst) = read::<[u8; 4]>(ctx, crate::packet::ETH_LEN + 16) else {
        return true;
    };
    if dst != cfg.shared4_alias && dst != df_alias(cfg) {
        return true;
    }
    let r = match read::<u8>(ctx, crate::packet::ETH_LEN) {
        _ if cfg.shared4 == [0; 4] => Err(DropReason::MartianAddress),
        Some(v) => readdress(ctx, (v & 0x0f) as usize * 4, dst, cfg.shared4, 0),
        None => Err(DropReason::Truncated),
    };
    match r {
        Ok(()) => true,
        Err(reason) => {
            stats::add(Counter::Dropped(Dir::V4ToV6, reason), 1);
            false
        }
    }
}

/// Rewrites the IPv4 destination `from` to `to` (RFC 1624 for the header checksum, and for a
/// whole packet's or first fragment's TCP or UDP checksum, whose pseudo-header holds it; a
/// UDP datagram without one keeps none), as `l4::updated` has it; `aggregate` 1 says the
/// field is a partial checksum (a GSO aggregate's seed) whatever the interface. Not inlined:
/// verified once, whatever the caller.
#[inline(never)]
fn readdress(
    ctx: &impl Frame,
    ihl: usize,
    from: [u8; 4],
    to: [u8; 4],
    aggregate: u32,
) -> Result<(), DropReason> {
    use crate::packet::{ETH_LEN, IPPROTO_TCP, IPPROTO_UDP, IPV4_LEN, Ipv4Hdr, view, write_u16};
    let ihl = ihl & 0x3c;
    if ihl < IPV4_LEN {
        return Err(DropReason::BadHeader);
    }
    let ip4 = *view::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::Truncated)?;
    let (old, new) = (checksum::sum4(&from), checksum::sum4(&to));
    let check = checksum::update(u16::from_be_bytes(ip4.check), old, new);
    write_bytes(ctx, ETH_LEN + 10, check.to_be_bytes())?;
    write_bytes(ctx, ETH_LEN + 16, to)?;
    if u16::from_be_bytes(ip4.frag) & crate::proto::IPV4_OFFSET_MASK != 0 {
        return Ok(());
    }
    let at = match ip4.proto {
        IPPROTO_TCP => ETH_LEN + ihl + 16,
        IPPROTO_UDP => ETH_LEN + ihl + 6,
        _ => return Ok(()),
    };
    let c = u16::from_be_bytes(read::<[u8; 2]>(ctx, at).ok_or(DropReason::Truncated)?);
    if ip4.proto == IPPROTO_UDP && c == 0 {
        return Ok(());
    }
    let src = checksum::sum4(&ip4.src);
    let d = crate::l4::PseudoDelta {
        old_addrs: src + old,
        new_addrs: src + new,
        len_proto: (u16::from_be_bytes(ip4.tot_len) as u32).saturating_sub(ihl as u32)
            + ip4.proto as u32,
        old_port: 0,
        new_port: 0,
    };
    let n = crate::l4::updated(ctx, ip4.proto, c, &d, aggregate != 0);
    write_u16(ctx, at, n).ok_or(DropReason::Truncated)?;
    // The header's own sum is unchanged (its checksum moved with the address); the
    // transport checksum word is what a receive checksum over the packet must follow.
    ctx.word_changed(c, n);
    Ok(())
}
