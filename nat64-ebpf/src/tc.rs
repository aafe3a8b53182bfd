//! The TC ingress entry point's side of the core: what it makes sure of before the core runs,
//! and what the core's XDP verdicts mean at this hook.
//!
//! Why a second hook: attaching XDP to a veth makes the kernel give up GSO on it, so a TCP
//! stream crosses an XDP translator segment by segment. At TC ingress a GSO packet arrives
//! whole (up to 64 KiB), `bpf_skb_change_proto` translates its headers and converts its GSO
//! type, and the kernel segments it only where it leaves, if at all.

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, xdp_action},
    helpers::generated::bpf_redirect,
    programs::TcContext,
};

use crate::{frame::Frame, packet::ETH_LEN};

pub const PASS: i32 = TC_ACT_OK as i32;

/// Longest run of headers the core reads in a GSO packet: Ethernet, an IPv4 header with
/// options or an IPv6 header, and a TCP header with options.
const GSO_HEADERS: usize = ETH_LEN + 60 + 60;

/// Makes the bytes the core reads directly accessible: the whole packet when it is one packet
/// on the wire (an ICMP error's quote, a UDP datagram whose checksum is computed), the headers
/// of a GSO aggregate (its payload is never read, and copying 64 KiB would cost what the hook
/// is there to save). `false` when the packet cannot be pulled (then it is left alone).
#[inline(always)]
pub fn pull_headers(ctx: &TcContext) -> bool {
    let len = Frame::len(ctx);
    let want = if ctx.gso_size() == 0 {
        len
    } else {
        len.min(GSO_HEADERS)
    };
    want <= Frame::data_end(ctx) - Frame::data(ctx) || ctx.pull_data(want as u32).is_ok()
}

/// The core's verdict at TC ingress: up the stack, dropped, or (an error answered in place,
/// MAC addresses already swapped) sent back out of the interface it came from.
#[inline(always)]
pub fn verdict(ctx: &TcContext, action: u32) -> i32 {
    match action {
        xdp_action::XDP_PASS => TC_ACT_OK as i32,
        // SAFETY: plain helper call; flags 0 means the device's egress.
        xdp_action::XDP_TX => unsafe { bpf_redirect(ctx.ifindex(), 0) as i32 },
        _ => TC_ACT_SHOT as i32,
    }
}
