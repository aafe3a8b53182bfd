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

use aya_ebpf::{
    bindings::{BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LOOKUP_SKIP_NEIGH, bpf_fib_lookup},
    helpers::generated::bpf_fib_lookup as fib_lookup,
};

use crate::proto::{AF_INET, AF_INET6};
use crate::{frame::Frame, maps::FIB};

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
    lookup(ctx, AF_INET, src, len)
}

/// The MTU of the IPv6 route out for the translated packet of `len` bytes to the scratch
/// slot's `addr6[1]` when it does not fit, else 0 (the other direction's check, for IPv4
/// packets with DF). Not inlined.
#[inline(never)]
pub fn mtu6_if_too_big(ctx: &impl Frame, len: u32) -> u32 {
    lookup(ctx, AF_INET6, 0, len)
}

/// Runs [`step`] as the one turn of a `bpf_loop`: verified once, not once per path of
/// `translate` that reaches it.
#[inline(always)]
fn lookup(ctx: &impl Frame, family: u8, src: u32, len: u32) -> u32 {
    let mut l = Lookup {
        ctx: ctx.raw(),
        ifindex: ctx.ifindex(),
        family: family as u32,
        src,
        tot_len: len,
        mtu: 0,
    };
    // SAFETY: `step` reads and writes only `l`, which outlives the call, and the per-CPU FIB
    // and scratch slots.
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
    family: u32,
    /// IPv4: the source, network order (IPv6 looks up without one).
    src: u32,
    tot_len: u32,
    mtu: u32,
}

/// One forwarding lookup from the receiving interface with the packet's length, as the
/// kernel's will be, to the scratch slot's destination (`remote4` for IPv4, `addr6[1]` for
/// IPv6): `BPF_FIB_LKUP_RET_FRAG_NEEDED` carries the MTU that refused it.
extern "C" fn step(_i: u64, c: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `c` is the `Lookup` that `lookup` passed to `bpf_loop`.
    let l = unsafe { &mut *(c as *mut Lookup) };
    let (Some(p), Ok(s)) = (FIB.get_ptr_mut(0), crate::scratch::get()) else {
        return 1;
    };
    // SAFETY: this CPU's slot, private to this packet while the program runs.
    let p: &mut bpf_fib_lookup = unsafe { &mut *p };
    query(p, l.family as u8, l.ifindex, l.tot_len as u16);
    if l.family as u8 == AF_INET {
        p.__bindgen_anon_3.ipv4_src = l.src;
        p.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(s.remote4);
    } else {
        p.__bindgen_anon_3.ipv6_src = [0; 4];
        p.__bindgen_anon_4.ipv6_dst = crate::packet::addr_words(&s.addr6[1]);
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
    if rc == BPF_FIB_LKUP_RET_FRAG_NEEDED {
        // SAFETY: the union holds the MTU after a FRAG_NEEDED answer.
        l.mtu = unsafe { p.__bindgen_anon_1.mtu_result } as u32;
    }
    1
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
