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
    Counter, Dir, DropReason, Handoff,
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
    hand_off(cfg, dir, Handoff::SlowPath, DropReason::IcmpUntranslatable)
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
/// and service load balancing apply to it; back into the link on its far end.
#[inline(always)]
pub fn emit(ctx: &impl Frame, cfg: &Config) -> u32 {
    if !on_link(cfg) {
        return xdp_action::XDP_PASS;
    }
    // The frame came from the kernel side of the link, addressed to its own MAC (the link has
    // no neighbours: NOARP); it goes back addressed to where it came from.
    let Some(eth) = read::<EthHdr>(ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&eth.src);
    macs[6..].copy_from_slice(&eth.dst);
    match write_bytes(ctx, 0, macs) {
        Ok(()) => xdp_action::XDP_TX,
        Err(_) => xdp_action::XDP_DROP,
    }
}
