//! The source of a translated ICMP error whose own source has no mapping in the other family
//! (RFC 6791): typically an IPv6 router's Packet Too Big about a flow to an IPv4 host, the one
//! signal path MTU discovery gets.
//!
//! A configured address (`pool6791`, `pool6791v6`) is used as it is. Without one the error
//! leaves from this node's own address toward the error's destination, the address the kernel
//! would pick for a packet of its own on that route (Jool's behaviour when its RFC 6791 pool is
//! empty; RFC 6791 section 4 allows a pool of one address, and TAYGA does the same with its
//! own address). The FIB lookup asks the kernel for it (`BPF_FIB_LOOKUP_SRC`, Linux 6.8).
//!
//! An IPv4 packet arriving with one of the node's own addresses as its source is a martian to
//! the kernel unless the interface accepts local sources. The daemon lets them in on its
//! translator link only; so on the fast path, with a link, such an error is handed to the
//! kernel untouched and translated on the link (`Handoff::OwnSource`).

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_NOT_FWDED,
        BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LOOKUP_SKIP_NEIGH, BPF_FIB_LOOKUP_SRC, bpf_fib_lookup,
    },
    helpers::generated::bpf_fib_lookup as fib_lookup,
};
use nat64_common::maps::{
    CONFIG_F_LINK, CONFIG_F_ON_LINK, CONFIG_F_POOL6791, CONFIG_F2_POOL6791_LOCAL,
    CONFIG_F2_POOL6791_V6, Config,
};

use crate::proto::{AF_INET, AF_INET6};
use crate::{
    frame::Frame,
    maps::{FIB, NODE6, SCRATCH, Scratch},
    packet::addr_words,
};

/// Where the IPv4 source of such an error comes from.
pub enum Source4 {
    /// This address.
    Address([u8; 4]),
    /// The node's own, found by the FIB lookup: in the scratch slot's `rfc6791_src`.
    Found,
    /// One of the node's own, on the translator link: hand the error to it.
    HandOff,
    /// None can be found (no route toward the destination, or a kernel without
    /// `BPF_FIB_LOOKUP_SRC` and no `pool6791`).
    Unknown,
}

/// The IPv4 source for a translated ICMPv6 error to `s.addr4[1]` from a source with no IPv4
/// mapping.
#[inline(always)]
pub fn source4(ctx: &impl Frame, cfg: &Config) -> Source4 {
    if cfg.flags2 & CONFIG_F2_POOL6791_LOCAL != 0
        && cfg.flags & (CONFIG_F_LINK | CONFIG_F_ON_LINK) == CONFIG_F_LINK
    {
        return Source4::HandOff;
    }
    if cfg.flags & CONFIG_F_POOL6791 != 0 {
        return Source4::Address(cfg.pool6791);
    }
    if own_source(ctx, AF_INET) {
        Source4::Found
    } else {
        Source4::Unknown
    }
}

/// Whether an ICMPv6 error reaching the translator link comes from this node itself: one its
/// kernel sent (a Packet Too Big for a translated packet that outgrew the IPv6 route, a Time
/// Exceeded), whose source `src` is one of the node's own addresses (`NODE6`). Such an error
/// is this node's: it leaves from the node's own IPv4 address toward its destination (as the
/// kernel's own ICMPv4 errors do, and Jool's), whatever pool6 or pool6791 would say, written
/// to `rfc6791_src`. Asked on the link only: the node's own packets never reach the fast path.
#[inline(always)]
pub fn from_this_node(ctx: &impl Frame, cfg: &Config, src: &[u8; 16]) -> bool {
    cfg.flags & CONFIG_F_ON_LINK != 0
        // SAFETY: read-only lookup; only presence matters.
        && unsafe { NODE6.get(src) }.is_some()
        && own_source(ctx, AF_INET)
}

/// The IPv6 source for a translated ICMPv4 error to `s.addr6[1]` from a source with no IPv6
/// mapping, written to `s.addr6[0]`; false if there is none. An IPv6 packet with a local
/// source is not a martian to the kernel, so it is translated wherever it arrives.
#[inline(always)]
pub fn source6(ctx: &impl Frame, cfg: &Config, s: &mut Scratch) -> bool {
    if cfg.flags2 & CONFIG_F2_POOL6791_V6 != 0 {
        s.addr6[0] = cfg.pool6791v6;
        return true;
    }
    own_source(ctx, AF_INET6)
}

/// The node's own IPv6 address toward the scratch slot's `addr6[1]`, for an error this node
/// answers itself, written to `addr6[0]`.
#[inline(always)]
pub fn own6(ctx: &impl Frame) -> bool {
    own_source(ctx, AF_INET6)
}

/// The node's own IPv4 address toward `dst`, for an error this node answers itself on the
/// translator link (which has no address of its own), in the scratch slot's `rfc6791_src`.
#[inline(always)]
pub fn own4(ctx: &impl Frame, dst: [u8; 4]) -> bool {
    let Ok(s) = crate::scratch::get() else {
        return false;
    };
    s.addr4[1] = dst;
    own_source(ctx, AF_INET)
}

/// The node's own address toward the error's destination (`family`: of that destination).
#[inline(always)]
fn own_source(ctx: &impl Frame, family: u8) -> bool {
    lookup(ctx, family as u32)
}

/// The FIB lookup under `bpf_loop` (one turn): its callback is verified once, where an inline
/// lookup would be verified again for every path that reaches it (the error paths have many).
#[inline(always)]
fn lookup(ctx: &impl Frame, family: u32) -> bool {
    let mut l = Lookup {
        ctx: ctx.raw(),
        family,
        ifindex: ctx.ifindex(),
        found: 0,
    };
    // SAFETY: `lookup_step` reads and writes only `l`, which outlives the call, and the
    // per-CPU FIB and scratch slots.
    unsafe {
        aya_ebpf::helpers::generated::bpf_loop(
            1,
            lookup_step as *mut core::ffi::c_void,
            &mut l as *mut Lookup as *mut core::ffi::c_void,
            0,
        );
    }
    l.found != 0
}

#[repr(C)]
struct Lookup {
    ctx: *mut core::ffi::c_void,
    family: u32,
    /// The receiving interface (the translator link's far end on the link).
    ifindex: u32,
    found: u32,
}

/// Routes the error's destination (the scratch slot's outer destination) as an input lookup
/// from the receiving interface, as the kernel will forward the translated error, skipping
/// the neighbour table: only the route's preferred source matters, which the kernel fills in
/// before its MTU check (so a FRAG_NEEDED answer carries it too). A local destination (the
/// error is about a packet of the node's own) gets its own address as the source. The
/// address found goes to the scratch slot: `rfc6791_src`, or the outer IPv6 source.
extern "C" fn lookup_step(_i: u64, c: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `c` is the `Lookup` that `own_source` passed to `bpf_loop`.
    let l = unsafe { &mut *(c as *mut Lookup) };
    let (Some(p), Some(s)) = (FIB.get_ptr_mut(0), SCRATCH.get_ptr_mut(0)) else {
        return 1;
    };
    // SAFETY: this CPU's slots, private to this packet while the program runs.
    let (p, s): (&mut bpf_fib_lookup, &mut Scratch) = unsafe { (&mut *p, &mut *s) };
    // No MTU check: the lookup is for the source only.
    crate::egress::query(p, l.family as u8, l.ifindex, 0);
    if l.family as u8 == AF_INET {
        p.__bindgen_anon_3.ipv4_src = 0;
        p.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(s.addr4[1]);
    } else {
        p.__bindgen_anon_3.ipv6_src = [0; 4];
        p.__bindgen_anon_4.ipv6_dst = addr_words(&s.addr6[1]);
    }
    // SAFETY: helper call with the context and a map value of the size given.
    let rc = unsafe {
        fib_lookup(
            l.ctx,
            p as *mut bpf_fib_lookup,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            BPF_FIB_LOOKUP_SRC | BPF_FIB_LOOKUP_SKIP_NEIGH,
        )
    } as u32;
    let routed = rc == BPF_FIB_LKUP_RET_SUCCESS
        || rc == BPF_FIB_LKUP_RET_NO_NEIGH
        || rc == BPF_FIB_LKUP_RET_FRAG_NEEDED;
    let local = rc == BPF_FIB_LKUP_RET_NOT_FWDED;
    if l.family as u8 == AF_INET {
        // SAFETY: the union holds the IPv4 source after an AF_INET lookup.
        let a = unsafe { p.__bindgen_anon_3.ipv4_src };
        if routed && a != 0 {
            s.rfc6791_src = a.to_ne_bytes();
            l.found = 1;
        } else if local {
            s.rfc6791_src = s.addr4[1];
            l.found = 1;
        }
    } else {
        // SAFETY: the union holds the IPv6 source after an AF_INET6 lookup.
        let a = unsafe { p.__bindgen_anon_3.ipv6_src };
        if routed && a != [0; 4] {
            for (i, w) in a.iter().enumerate() {
                s.addr6[0][i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            l.found = 1;
        } else if local {
            s.addr6[0] = s.addr6[1];
            l.found = 1;
        }
    }
    1
}
