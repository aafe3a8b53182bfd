//! The translator's XDP entry point.
//!
//! One program serves every attached interface and both directions: IPv6 frames go through the
//! 6-to-4 path, IPv4 frames through the 4-to-6 path, everything else is passed untouched. A
//! translated packet is handed back to the kernel (`XDP_PASS`) so that routing, netfilter and
//! Kubernetes service handling still apply to it.
//!
//! Built for the host (as by `cargo build --workspace` or clippy), this is an empty program:
//! the dataplane exists only for the BPF target.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(target_arch = "bpf")]
mod addrmap;
#[cfg(target_arch = "bpf")]
mod iface;
#[cfg(target_arch = "bpf")]
mod l4;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod stats;
#[cfg(target_arch = "bpf")]
mod v4_to_v6;
#[cfg(target_arch = "bpf")]
mod v6_to_v4;

#[cfg(target_arch = "bpf")]
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
#[cfg(target_arch = "bpf")]
use nat64_common::{Counter, Dir, DropReason};

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("nat64-ebpf is an eBPF object; nat64d embeds and loads it");
}

#[cfg(target_arch = "bpf")]
#[xdp]
pub fn nat64_xdp(ctx: XdpContext) -> u32 {
    // The daemon writes slot 0 before it attaches the program; until then nothing is ours.
    let Some(cfg) = maps::CONFIG.get(0) else {
        return xdp_action::XDP_PASS;
    };
    let cfg = *cfg;
    match packet::ethertype(&ctx) {
        Some(packet::ETH_P_IPV6) => verdict(Dir::V6ToV4, v6_to_v4::translate(&ctx, &cfg)),
        Some(packet::ETH_P_IP) => verdict(Dir::V4ToV6, v4_to_v6::translate(&ctx, &cfg)),
        _ => xdp_action::XDP_PASS,
    }
}

/// Every refusal is counted under its reason; nothing is dropped silently.
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn verdict(dir: Dir, r: Result<u32, DropReason>) -> u32 {
    match r {
        Ok(action) => action,
        Err(reason) => {
            stats::add(Counter::Dropped(dir, reason), 1);
            xdp_action::XDP_DROP
        }
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects any path that could get here.
    loop {}
}

// The kernel requires a GPL-compatible licence for some helpers; the code is dual licensed.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
