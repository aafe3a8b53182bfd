//! The TC ingress entry point's side of the core: what it makes sure of before the core runs,
//! and what the core's XDP verdicts mean at this hook.
//!
//! Why a second hook: attaching XDP to a veth makes the kernel give up GSO on it, so a TCP
//! stream crosses an XDP translator segment by segment. At TC ingress a GSO packet arrives
//! whole (up to 64 KiB), `bpf_skb_change_proto` translates its headers and converts its GSO
//! type, and the kernel segments it only where it leaves, if at all.

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, xdp_action},
    helpers::generated::{bpf_csum_diff, bpf_csum_update, bpf_redirect},
    programs::TcContext,
};

use nat64_common::maps::Config;

use crate::{
    frame::Frame,
    packet::{
        ETH_LEN, ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_LEN, IPV6_LEN, ethertype,
        ptr_at, read,
    },
};

pub const PASS: i32 = TC_ACT_OK as i32;

/// Longest run of headers the TC program reads: Ethernet, an IPv4 header with options or an
/// IPv6 header, and a TCP header with options.
const HEADERS: usize = ETH_LEN + 60 + 60;

/// Makes the bytes the core reads directly accessible: the headers (Ethernet, an IPv4 header
/// with options or an IPv6 header, the transport header). The TC program never reads further:
/// what would need the payload (an ICMP error's quote, a UDP checksum to compute) is left to
/// the translator link. `false` when even the headers cannot be pulled (then the packet is
/// left alone).
///
/// Exactly the headers, not a round figure: payload pulled into the linear part
/// (`bpf_skb_pull_data` copies it out of the pages, into a head it reallocates) made every
/// TCP aggregate reach its receiver with 48 bytes of payload in the head instead of in the
/// pages, and cost single-stream TCP 5-10% with the router's offloads on (15.0-15.7 against
/// 16.0-16.8 Gbit/s for plain IPv6 forwarding, the same run; exact headers: 16.0-16.6).
#[inline(always)]
pub fn pull_headers(ctx: &TcContext) -> bool {
    let linear = Frame::data_end(ctx) - Frame::data(ctx);
    // A packet linear already (a small one, mostly) has nothing to pull: no need to measure it.
    if Frame::len(ctx) <= linear {
        return true;
    }
    let want = Frame::len(ctx).min(headers_len(ctx));
    want <= linear || ctx.pull_data(want as u32).is_ok()
}

/// How long the headers are, from what is already linear; [`HEADERS`] when that does not show
/// it (a short linear part, extension headers, ICMP, whose errors' quotes are read as well).
#[inline(always)]
fn headers_len(ctx: &TcContext) -> usize {
    let (l4, proto) = match ethertype(ctx) {
        Some(ETH_P_IPV6) => match read::<u8>(ctx, ETH_LEN + 6) {
            Some(nh) => (ETH_LEN + IPV6_LEN, nh),
            None => return HEADERS,
        },
        Some(ETH_P_IP) => match read::<[u8; 10]>(ctx, ETH_LEN) {
            Some(h) => (ETH_LEN + (h[0] as usize & 0xf) * 4, h[9]),
            None => return HEADERS,
        },
        _ => return HEADERS,
    };
    match proto {
        // The data offset, in 32-bit words (RFC 9293 section 3.1); a bad one is the core's to
        // refuse, from the fixed header.
        IPPROTO_TCP => match read::<u8>(ctx, l4 + 12) {
            Some(off) => l4 + ((off >> 4) as usize * 4).max(20),
            None => HEADERS,
        },
        IPPROTO_UDP => l4 + 8,
        _ => HEADERS,
    }
}

/// The core's verdict at TC ingress: up the stack, dropped, (an error answered in place, MAC
/// addresses already swapped) sent back out of the interface it came from, or (`XDP_REDIRECT`,
/// `link::redirect`) into the translator link: addressed to the link's kernel side, as the
/// kernel addresses what it routes there (the link has no neighbours), with the hop the
/// kernel's forwarding would have taken (the link's program gives it back).
#[inline(always)]
pub fn verdict(ctx: &TcContext, action: u32, cfg: &Config) -> i32 {
    match action {
        xdp_action::XDP_PASS => TC_ACT_OK as i32,
        // Routed and redirected by `forward::forward`.
        crate::forward::TC_FORWARDED => TC_ACT_REDIRECT,
        // SAFETY: plain helper call; flags 0 means the device's egress.
        xdp_action::XDP_TX => unsafe { bpf_redirect(ctx.ifindex(), 0) as i32 },
        xdp_action::XDP_REDIRECT if crate::link::prepare(ctx, cfg) => {
            // SAFETY: plain helper call; flags 0 means the device's egress.
            unsafe { bpf_redirect(cfg.link_ifindex, 0) as i32 }
        }
        _ => TC_ACT_SHOT as i32,
    }
}

/// The receive checksum a NIC may have supplied (`CHECKSUM_COMPLETE`: the sum of everything
/// after the Ethernet header, in `skb->csum`) must follow the bytes the translation changes,
/// or the stack finds it wrong (and logs "hw csum failure") wherever it checks one, conntrack
/// included. The helpers that resize keep it for the bytes they remove or insert (zeros); the
/// direct writes do not. So the sum of the headers that change is taken before and after, and
/// the difference added (`bpf_csum_update`, which does nothing to another kind of checksum).
///
/// The window: the network header and the transport header's first `l4` bytes (ports, the
/// ICMP identifier and both checksums lie there); the payload is the same bytes moved by an
/// even amount, which leaves its sum alone. For 6-to-4 the first 20 bytes of the IPv6 header
/// were removed by `bpf_skb_change_proto`, which took them out of the sum itself, so the old
/// window starts after them.
/// The window's sum goes to the scratch slot (see `Scratch::tc_sum`).
/// Transport bytes in the window: a TCP header's fixed part, else ICMP's or UDP's 8 bytes.
#[inline(always)]
fn window_l4(proto: u8) -> usize {
    if proto == IPPROTO_TCP { 20 } else { 8 }
}

/// Ones' complement sum of the `N` bytes at `off`, or `None` when they are not all there.
#[inline(always)]
fn sum_at<const N: usize>(ctx: &TcContext, off: usize, seed: u32) -> Option<u32> {
    let p = ptr_at::<[u8; N]>(ctx, off)?;
    // SAFETY: `p` points at N bytes of the packet, checked by `ptr_at`.
    let r = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, p as *mut u32, N as u32, seed) };
    (r >= 0).then_some(r as u32)
}

/// Before the core runs: records the ethertype, and the old window's sum when the packet
/// carries a complete checksum.
#[inline(always)]
pub fn complete_sum_before(ctx: &TcContext) {
    let Ok(s) = crate::scratch::get() else { return };
    s.tc_sum_l4 = 0;
    s.tc_family = ethertype(ctx).unwrap_or(0);
    // Adding 0 changes nothing, and fails unless the checksum is CHECKSUM_COMPLETE.
    // SAFETY: plain helper call on the program's own context.
    if unsafe { bpf_csum_update(ctx.skb.skb, 0) } < 0 {
        return;
    }
    let (at, proto_at) = match s.tc_family {
        ETH_P_IPV6 => (ETH_LEN + IPV6_LEN - IPV4_LEN, ETH_LEN + 6),
        ETH_P_IP => (ETH_LEN, ETH_LEN + 9),
        _ => return,
    };
    let l4 = window_l4(read::<u8>(ctx, proto_at).unwrap_or(0));
    let sum = if l4 == 20 {
        sum_at::<40>(ctx, at, 0)
    } else {
        sum_at::<28>(ctx, at, 0)
    };
    if let Some(sum) = sum {
        s.tc_sum = sum;
        s.tc_sum_l4 = l4 as u16;
    }
}

/// After the core: when the packet was translated (its family changed; what stays in its
/// family at TC is handed on untouched, answered, or readdressed by `link::to_alias`, which
/// moves the receive checksum itself) and carries a complete checksum, adds the new window's
/// sum minus the old one to `skb->csum`.
#[inline(always)]
pub fn complete_sum_after(ctx: &TcContext) {
    let Ok(s) = crate::scratch::get() else { return };
    let now = ethertype(ctx).unwrap_or(0);
    if s.tc_sum_l4 == 0 || now == s.tc_family {
        return;
    }
    // Seeded with the old sum's complement: the helper returns new - old.
    let seed = !s.tc_sum;
    let diff = match (now, s.tc_sum_l4) {
        (ETH_P_IP, 20) => sum_at::<40>(ctx, ETH_LEN, seed),
        (ETH_P_IP, _) => sum_at::<28>(ctx, ETH_LEN, seed),
        (ETH_P_IPV6, 20) => sum_at::<60>(ctx, ETH_LEN, seed),
        (ETH_P_IPV6, _) => sum_at::<48>(ctx, ETH_LEN, seed),
        _ => None,
    };
    if let Some(d) = diff {
        // SAFETY: plain helper call on the program's own context.
        unsafe { bpf_csum_update(ctx.skb.skb, d) };
    }
}
