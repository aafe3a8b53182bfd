//! Forwarding from the hook (`forward_in_dataplane`, `CONFIG_F_FIB`): a translated packet is
//! routed by a FIB lookup on its new header and redirected to the egress interface with the
//! next hop's MAC address, instead of going up the kernel's stack (its receive path, netfilter,
//! its own route lookup). It then takes the hop the kernel's forwarding would have taken (RFC
//! 791 TTL, RFC 8200 hop limit): the fast path never decrements, the kernel does on XDP_PASS.
//!
//! Whatever the lookup cannot finish goes up the stack untouched (XDP_PASS), where the kernel
//! does as it always does: no neighbour entry yet (it resolves it), too big for the route (it
//! answers or fragments), a local or unroutable destination, a TTL of 1 (Time Exceeded).
//!
//! In XDP, so does everything from an interface where partial transport checksums can arrive
//! (`IFACE_F_PARTIAL_CSUM`: virtual links whose senders offload checksums): XDP cannot tell
//! such a packet from a complete one, and once redirected nobody would complete its checksum.
//! Physical NICs deliver complete checksums. At TC the socket buffer keeps its checksum state
//! (and a GSO packet its segmentation) through the redirect, as through the kernel's
//! forwarding, so nothing is excluded there.

use aya_ebpf::{
    bindings::{BPF_FIB_LKUP_RET_SUCCESS, TC_ACT_REDIRECT, bpf_fib_lookup, xdp_action},
    helpers::generated::{bpf_fib_lookup as fib_lookup, bpf_redirect},
};
use nat64_common::{Counter, Dir, maps::CONFIG_F_FIB, maps::Config};

use crate::proto::{AF_INET, AF_INET6};
use crate::{
    frame::Frame,
    maps::FIB,
    packet::{ETH_LEN, ETH_P_IP, ETH_P_IPV6, EthHdr, Ipv4Hdr, Ipv6Hdr, addr_words, ptr_at},
    stats,
};

/// Whether translated packets are forwarded from the hook.
#[inline(always)]
pub fn enabled(cfg: &Config) -> bool {
    cfg.flags & CONFIG_F_FIB != 0
}

/// The verdict on a packet redirected from TC (`tc::verdict` makes it `TC_ACT_REDIRECT`): XDP
/// actions are 0 to 4, and `XDP_REDIRECT` at TC means into the translator link.
pub const TC_FORWARDED: u32 = 0x10 + TC_ACT_REDIRECT as u32;

/// Routes the translated frame and redirects it (XDP_REDIRECT in XDP, `TC_FORWARDED` at TC),
/// or leaves it to the kernel (XDP_PASS).
#[inline(never)]
pub fn forward<C: Frame>(ctx: &C, dir: Dir) -> u32 {
    let xdp = ctx.as_xdp().is_some();
    if xdp && crate::iface::partial_checksums(ctx) {
        return xdp_action::XDP_PASS;
    }
    let Some(p) = FIB.get_ptr_mut(0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: the per-CPU slot, private to this packet while the program runs.
    let p: &mut bpf_fib_lookup = unsafe { &mut *p };
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: bounds checked by `ptr_at`; headers have alignment 1.
    let proto = u16::from_be_bytes(unsafe { (*eth).proto });
    p.ifindex = ctx.ifindex();
    p.sport = 0;
    p.dport = 0;
    match proto {
        ETH_P_IP => {
            let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN) else {
                return xdp_action::XDP_PASS;
            };
            // SAFETY: as above.
            let ip = unsafe { &mut *ip };
            if ip.ttl <= 1 {
                return xdp_action::XDP_PASS;
            }
            p.family = AF_INET;
            p.l4_protocol = ip.proto;
            p.__bindgen_anon_1.tot_len = u16::from_be_bytes(ip.tot_len);
            p.__bindgen_anon_2.tos = ip.tos;
            p.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(ip.src);
            p.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(ip.dst);
        }
        ETH_P_IPV6 => {
            let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, ETH_LEN) else {
                return xdp_action::XDP_PASS;
            };
            // SAFETY: as above.
            let ip = unsafe { &mut *ip };
            if ip.hop_limit <= 1 {
                return xdp_action::XDP_PASS;
            }
            p.family = AF_INET6;
            p.l4_protocol = ip.next_header;
            p.__bindgen_anon_1.tot_len = u16::from_be_bytes(ip.payload_len).wrapping_add(40);
            p.__bindgen_anon_2.flowinfo = u32::from_ne_bytes(ip.vtcfl) & 0xffff_ff0f_u32.to_be();
            p.__bindgen_anon_3.ipv6_src = addr_words(&ip.src);
            p.__bindgen_anon_4.ipv6_dst = addr_words(&ip.dst);
        }
        _ => return xdp_action::XDP_PASS,
    }
    if !xdp {
        // At TC a length of 0 has the kernel check the socket buffer itself against the
        // egress MTU (`is_skb_forwardable`), which knows a GSO packet by its segments; the
        // length of a 64 KiB aggregate would fail the route's MTU.
        p.__bindgen_anon_1.tot_len = 0;
    }
    // SAFETY: helper call with the context and a map value of the size given.
    let rc = unsafe {
        fib_lookup(
            ctx.raw(),
            p as *mut bpf_fib_lookup,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    if rc != BPF_FIB_LKUP_RET_SUCCESS as i64 {
        return xdp_action::XDP_PASS;
    }
    // The hop the kernel would have taken.
    match proto {
        ETH_P_IP => {
            let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN) else {
                return xdp_action::XDP_PASS;
            };
            // SAFETY: as above.
            let ip = unsafe { &mut *ip };
            ip.ttl -= 1;
            // RFC 1624: the TTL is the high byte of its 16-bit word, so the sum drops by 0x0100.
            let c = u16::from_be_bytes(ip.check) as u32 + 0x0100;
            ip.check = ((c + (c >> 16)) as u16).to_be_bytes();
        }
        _ => {
            let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, ETH_LEN) else {
                return xdp_action::XDP_PASS;
            };
            // SAFETY: as above.
            unsafe { (*ip).hop_limit -= 1 };
        }
    }
    // SAFETY: `eth` was bounds-checked above and the frame has not been resized since.
    unsafe {
        (*eth).dst = p.dmac;
        (*eth).src = p.smac;
    }
    stats::add(Counter::Forwarded(dir), 1);
    // SAFETY: plain helper call; flags 0 means the device's egress.
    let action = unsafe { bpf_redirect(p.ifindex, 0) } as u32;
    if xdp { action } else { TC_FORWARDED }
}
