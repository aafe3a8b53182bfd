//! Per-interface settings of the ingress interface (`IFACES` map, written by the daemon).

use crate::frame::Frame;
use nat64_common::maps::{IFACE_F_PARTIAL_CSUM, IfaceConfig};

use crate::maps::IFACES;

#[inline(always)]
fn settings(ctx: &impl Frame) -> Option<IfaceConfig> {
    let ifindex = ctx.ifindex();
    // SAFETY: read-only lookup of a plain value, copied out.
    unsafe { IFACES.get(&ifindex) }.copied()
}

/// Whether partial checksums may arrive on the ingress interface (see `IFACE_F_PARTIAL_CSUM`).
#[inline(always)]
pub fn partial_checksums(ctx: &impl Frame) -> bool {
    settings(ctx).is_some_and(|c| c.flags & IFACE_F_PARTIAL_CSUM != 0)
}

/// The ingress interface's MTU, 0 if unknown.
#[inline(always)]
pub fn mtu(ctx: &impl Frame) -> u32 {
    settings(ctx).map_or(0, |c| c.mtu)
}

/// The ingress interface's IPv4 address, if the daemon recorded one.
#[inline(always)]
pub fn addr4(ctx: &impl Frame) -> Option<[u8; 4]> {
    settings(ctx).map(|c| c.addr4).filter(|a| *a != [0; 4])
}
