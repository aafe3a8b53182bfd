//! The path MTU of the first hop, both ways. IPv6 to IPv4: a translated packet with DF (RFC 7915
//! section 5.1) that is too big for the route out would be answered by the kernel's
//! forwarding with Fragmentation Needed to its IPv4 source: a translated address, whose error
//! the translator link brings back as a Packet Too Big from that address with a quote cut to
//! 576 bytes, or, with stateful NAT64 on the node's own address as pool4, the node itself,
//! which keeps the error, so that the IPv6 sender never learns the path MTU (a black hole for
//! every packet that size). So the dataplane asks the FIB first, as the kernel will (the
//! route's MTU, or the device's), and answers ICMPv6 Packet Too Big itself, from the node,
//! quoting the packet as sent (RFC 4443 section 3.2), as Jool does from its own route lookup.
//! Errors from routers further on come back from outside and are translated like any other.
//!
//! Only packets over 1260 bytes leave with DF, and only one larger than the smallest MTU of
//! the node's interfaces (`Config::mtu_floor4`, kept current by the daemon) can be too big for
//! a device, so the lookup is for those alone: none at all on a node whose interfaces all
//! carry 1500 bytes. (A route whose own MTU is below its device's is not seen by the floor;
//! its packets take the kernel's Fragmentation Needed, as before.)
//!
//! The other way, an IPv4 packet with DF whose translation is too big for the IPv6 route out
//! ([`mtu6_if_too_big`], for translations over 1280 bytes and `Config::mtu_floor6`) is answered
//! with Fragmentation Needed from this node (`too_big`), quoting the packet as sent, where the
//! kernel's Packet Too Big would come back through the link with a quote rebuilt from the
//! IPv6 packet.
//!
//! Both ways a route's MTU is remembered for a second (`ROUTE_MTU`): the kernel's lookup takes
//! 50 ns (IPv4) to 130 ns (IPv6, more than the rest of the translation) here, and on a node
//! with one narrower interface (a tunnel's, say) every full-size packet would ask it (with DF;
//! 4 to 6 also without, to keep what the link must fragment within the route).

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LOOKUP_SKIP_NEIGH,
        bpf_fib_lookup,
    },
    helpers::{bpf_ktime_get_coarse_ns, generated::bpf_fib_lookup as fib_lookup},
};

use crate::proto::{AF_INET, AF_INET6};
use crate::{
    frame::Frame,
    maps::{FIB, ROUTE_MTU, RouteKey, RouteMtu},
};

/// How long a route's MTU is taken from `ROUTE_MTU` before the FIB is asked again: a route
/// the operator changed, or a path MTU the kernel learned for the node's own address (a
/// shared pool4 address), is seen within this.
pub const ROUTE_MTU_TTL_NS: u64 = 1_000_000_000;

/// Asked of the FIB instead of the packet's length, so that its answer carries the route's
/// MTU (`BPF_FIB_LKUP_RET_FRAG_NEEDED`) whatever the packet: a number to remember for every
/// packet to that destination.
const LONGEST: u16 = 0xffff;

/// The MTU of the route out for the translated IPv4 packet of `tot_len` bytes from `src`
/// (network order) to the scratch slot's `remote4` when it does not fit, else 0. A GSO
/// aggregate (TC) is judged by the segments the kernel will cut it into: `gso_size` bytes of
/// the transport protocol `nh` at `l4_off`, and the headers. Not inlined, and the lookup runs
/// under `bpf_loop`: verified once, not once per path of `translate`.
#[inline(never)]
pub fn mtu_if_too_big(ctx: &impl Frame, src: u32, tot_len: u16, l4_off: usize, nh: u8) -> u32 {
    let gso = ctx.gso_size() & 0xffff;
    let len = if gso == 0 {
        tot_len as u32
    } else {
        let l4_hdr = if nh == crate::packet::IPPROTO_TCP {
            crate::packet::read::<[u8; 13]>(ctx, l4_off & 0x3ff)
                .map_or(60, |h| (h[12] >> 4) as u32 * 4)
        } else {
            8
        };
        gso + l4_hdr + crate::packet::IPV4_LEN as u32
    };
    lookup(ctx, step4, src, len)
}

/// The MTU of the IPv6 route out for the translated packet of `len` bytes to the scratch
/// slot's `addr6[1]` when it does not fit, else 0 (the other direction's check, for IPv4
/// packets with DF). Not inlined.
#[inline(never)]
pub fn mtu6_if_too_big(ctx: &impl Frame, len: u32) -> u32 {
    lookup(ctx, step6, 0, len)
}

/// Runs `step` as the one turn of a `bpf_loop`: verified once, not once per path of
/// `translate` that reaches it. One callback per family, each with one call site per
/// program: the kernel inlines the loop then, and verifies each callback for its own family.
#[inline(always)]
fn lookup(
    ctx: &impl Frame,
    step: extern "C" fn(u64, *mut core::ffi::c_void) -> i64,
    src: u32,
    len: u32,
) -> u32 {
    let mut l = Lookup {
        ctx: ctx.raw(),
        ifindex: ctx.ifindex(),
        src,
        tot_len: len,
        mtu: 0,
    };
    // SAFETY: `step` reads and writes only `l`, which outlives the call, the per-CPU FIB and
    // scratch slots and `ROUTE_MTU`.
    unsafe {
        aya_ebpf::helpers::generated::bpf_loop(
            1,
            step as *mut core::ffi::c_void,
            &mut l as *mut Lookup as *mut core::ffi::c_void,
            0,
        );
    }
    l.mtu
}

#[repr(C)]
struct Lookup {
    ctx: *mut core::ffi::c_void,
    ifindex: u32,
    /// IPv4: the source, network order (IPv6 looks up without one).
    src: u32,
    tot_len: u32,
    mtu: u32,
}

/// IPv4: whether the translated packet fits the route out to the scratch slot's `remote4`
/// (from `l.src`), by the route's MTU ([`remembered_mtu`]).
extern "C" fn step4(_i: u64, c: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `c` is the `Lookup` that `lookup` passed to `bpf_loop`.
    let l = unsafe { &mut *(c as *mut Lookup) };
    let Ok(s) = crate::scratch::get() else {
        return 1;
    };
    let dst = [u32::from_ne_bytes(s.remote4), 0, 0, 0];
    if let Some(mtu) = remembered_mtu(l, AF_INET, dst)
        && l.tot_len > mtu
    {
        l.mtu = mtu;
    }
    1
}

/// IPv6: the same to the scratch slot's `addr6[1]`.
extern "C" fn step6(_i: u64, c: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `c` is the `Lookup` that `lookup` passed to `bpf_loop`.
    let l = unsafe { &mut *(c as *mut Lookup) };
    let Ok(s) = crate::scratch::get() else {
        return 1;
    };
    let dst = crate::packet::addr_words(&s.addr6[1]);
    if let Some(mtu) = remembered_mtu(l, AF_INET6, dst)
        && l.tot_len > mtu
    {
        l.mtu = mtu;
    }
    1
}

/// The MTU of the route of `family` to `dst` from the receiving interface (and `l.src` for
/// IPv4), as the kernel's own lookup will find it: remembered for [`ROUTE_MTU_TTL_NS`] in
/// `ROUTE_MTU`, else one FIB lookup for the longest packet (whose
/// `BPF_FIB_LKUP_RET_FRAG_NEEDED` carries the MTU). `None` when there is no route (or one
/// the kernel refuses anyway): nothing to answer.
#[inline(always)]
fn remembered_mtu(l: &Lookup, family: u8, dst: [u32; 4]) -> Option<u32> {
    let key = RouteKey {
        dst,
        src: l.src,
        ifindex: l.ifindex,
        family: family as u32,
    };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    // SAFETY: a plain value, copied out. (An LRU element is reused at once when it is
    // evicted: a lookup racing that on another CPU may read the new destination's MTU, for
    // one packet.)
    if let Some(e) = unsafe { ROUTE_MTU.get(&key) }
        && now.wrapping_sub(e.at_ns) < ROUTE_MTU_TTL_NS
    {
        return Some(e.mtu);
    }
    let mtu = fib_mtu(l, family, dst)?;
    let entry = RouteMtu {
        mtu,
        _pad: 0,
        at_ns: now,
    };
    let _ = ROUTE_MTU.insert(&key, &entry, 0);
    Some(mtu)
}

/// One FIB lookup of `family` to `dst` (IPv4 in its first word, from `l.src`) for the
/// [`LONGEST`] packet: the route's MTU (`u32::MAX` when it carries that), `None` when the
/// lookup fails (no route, a blackhole, forwarding off).
#[inline(always)]
fn fib_mtu(l: &Lookup, family: u8, dst: [u32; 4]) -> Option<u32> {
    let p = FIB.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot, private to this packet while the program runs.
    let p: &mut bpf_fib_lookup = unsafe { &mut *p };
    query(p, family, l.ifindex, LONGEST);
    if family == AF_INET {
        p.__bindgen_anon_3.ipv4_src = l.src;
        p.__bindgen_anon_4.ipv4_dst = dst[0];
    } else {
        p.__bindgen_anon_3.ipv6_src = [0; 4];
        p.__bindgen_anon_4.ipv6_dst = dst;
    }
    // SAFETY: helper call with the context and a map value of the size given.
    let rc = unsafe {
        fib_lookup(
            l.ctx,
            p as *mut bpf_fib_lookup,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            BPF_FIB_LOOKUP_SKIP_NEIGH,
        )
    } as u32;
    match rc {
        // SAFETY: the union holds the MTU after a FRAG_NEEDED answer.
        BPF_FIB_LKUP_RET_FRAG_NEEDED => Some(unsafe { p.__bindgen_anon_1.mtu_result } as u32),
        BPF_FIB_LKUP_RET_SUCCESS => Some(u32::MAX),
        _ => None,
    }
}

/// Readies the per-CPU `bpf_fib_lookup` parameters for a route lookup of `family` from
/// `ifindex` (the interface the kernel's own lookup would start from) for a packet of
/// `tot_len` bytes (0: no MTU check), with no transport ports or flow label; the caller sets
/// the addresses. Shared by every lookup but `forward`'s, which fills in the packet's own.
#[inline(always)]
pub fn query(p: &mut bpf_fib_lookup, family: u8, ifindex: u32, tot_len: u16) {
    p.family = family;
    p.l4_protocol = 0;
    p.sport = 0;
    p.dport = 0;
    p.__bindgen_anon_1.tot_len = tot_len;
    p.__bindgen_anon_2.flowinfo = 0;
    p.ifindex = ifindex;
}
