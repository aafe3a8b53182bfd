//! Stateful NAT64 (RFC 6146) in the dataplane: finding or making the binding of an outbound
//! flow, and finding the binding an inbound packet belongs to. The translation itself is the
//! stateless one (RFC 7915, sections 3.5 and 3.7 of RFC 6146 say so) with the IPv4 transport
//! address of the binding in place of a mapped address.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_coarse_ns},
};
use nat64_common::{
    DropReason,
    maps::Config,
    state::{Bib4Key, Bib4Value, Bib6Key, Bib6Value, candidate_port, pool4_index, tcp_next},
};

use crate::maps::{BIB4, BIB6};

/// How many random ports a new flow tries before it is refused (RFC 6056 randomisation; each
/// try is one atomic insert that fails if the port is taken).
const PORT_TRIES: u32 = 8;

/// Whether `a` is a pool4 address.
#[inline(always)]
pub fn in_pool4(cfg: &Config, a: [u8; 4]) -> bool {
    let len = cfg.pool4_len as u32;
    if len == 0 || len > 32 {
        return false;
    }
    let mask = u32::MAX << (32 - len);
    u32::from_be_bytes(a) & mask == u32::from_be_bytes(cfg.pool4) & mask
}

/// The pool4 address and port of the outbound flow (`src6`, `port6`, `proto`), made now if it
/// has none (RFC 6146 section 3.5.1.1 for UDP, 3.5.2.2 for TCP, 3.5.3 for ICMP queries).
/// `tcp_flags` is the TCP flag byte (0 for UDP and ICMP). Packed as `addr4 << 16 | port4`
/// (host order), or `Err` with the reason, so that the result stays one register.
///
/// Not inlined: the allocation's keys and values take stack the translation does not need.
#[inline(never)]
pub fn outbound(cfg: &Config, src6: &[u8; 16], port6: u16, proto: u8, tcp_flags: u8) -> u64 {
    match bind(cfg, src6, port6, proto, tcp_flags) {
        Ok((a, p)) => ((u32::from_be_bytes(a) as u64) << 16) | p as u64,
        Err(r) => OUTBOUND_ERR | r as u64,
    }
}

/// Marks an error in [`outbound`]'s result; the low bits hold the `DropReason`.
pub const OUTBOUND_ERR: u64 = 1 << 63;

#[inline(always)]
fn bind(
    cfg: &Config,
    src6: &[u8; 16],
    port6: u16,
    proto: u8,
    tcp_flags: u8,
) -> Result<([u8; 4], u16), DropReason> {
    let key = Bib6Key {
        addr6: *src6,
        port6: port6.to_be_bytes(),
        proto,
        _pad: 0,
    };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if let Some(v) = BIB6.get_ptr_mut(&key) {
        // SAFETY: a value pointer from a successful lookup, valid for this program run. Other
        // CPUs may write the same fields; each is a single store of a plain value.
        let v = unsafe { &mut *v };
        v.last_ns = now;
        v.tcp = tcp_next(v.tcp, tcp_flags);
        return Ok((v.addr4, u16::from_be_bytes(v.port4)));
    }
    // RFC 6888 REQ-4, RFC 4787 REQ-2: one pool address for every flow of a host's /64.
    let size = 1u32 << ((32 - cfg.pool4_len as u32) & 31);
    let base = u32::from_be_bytes(cfg.pool4);
    let addr4 = (base + pool4_index(src6, size)).to_be_bytes();
    let new4 = Bib4Value {
        addr6: *src6,
        port6: port6.to_be_bytes(),
        tcp: 0,
        flags: 0,
        _pad: [0; 4],
        last_ns: 0,
    };
    for _ in 0..PORT_TRIES {
        // SAFETY: plain helper call.
        let random = unsafe { bpf_get_prandom_u32() };
        let port4 = candidate_port(random, cfg.port_lo, cfg.port_hi, port6);
        let k4 = Bib4Key {
            addr4,
            port4: port4.to_be_bytes(),
            proto,
            _pad: 0,
        };
        // The insert is the allocation: it fails if the port is taken (or the map is full).
        if BIB4.insert(&k4, &new4, BPF_NOEXIST as u64).is_err() {
            continue;
        }
        let new6 = Bib6Value {
            addr4,
            port4: port4.to_be_bytes(),
            tcp: tcp_next(0, tcp_flags),
            flags: 0,
            last_ns: now,
        };
        if BIB6.insert(&key, &new6, BPF_NOEXIST as u64).is_ok() {
            return Ok((addr4, port4));
        }
        // Another CPU bound the same flow a moment ago (or the map is full): give the port
        // back and use theirs.
        let _ = BIB4.remove(&k4);
        // SAFETY: read-only lookup of a plain value, copied out.
        return match unsafe { BIB6.get(&key) } {
            Some(v) => Ok((v.addr4, u16::from_be_bytes(v.port4))),
            None => Err(DropReason::PoolExhausted),
        };
    }
    Err(DropReason::PoolExhausted)
}

/// The binding of an inbound packet to pool4 address `dst4`, port (or ICMP identifier)
/// `port4`, refreshed, or `None`: RFC 6146 sections 3.5.1 to 3.5.3 drop what matches no
/// binding (filtering is endpoint-independent: any IPv4 host may use a binding).
#[inline(always)]
pub fn inbound(
    dst4: [u8; 4],
    port4: [u8; 2],
    proto: u8,
    tcp_flags: u8,
) -> Option<&'static Bib4Value> {
    let k4 = Bib4Key {
        addr4: dst4,
        port4,
        proto,
        _pad: 0,
    };
    let v = BIB4.get_ptr_mut(&k4)?;
    // SAFETY: a value pointer from a successful lookup, valid for this program run.
    let v = unsafe { &mut *v };
    // SAFETY: plain helper call.
    v.last_ns = unsafe { bpf_ktime_get_coarse_ns() };
    v.tcp = tcp_next(v.tcp, tcp_flags);
    Some(v)
}

/// The binding of pool4 transport address (`addr4`, `port4`, `proto`) without touching it:
/// for an ICMP error that quotes a packet the binding sent (RFC 6146 section 3.5 applies the
/// binding to the quoted packet; an error does not keep a binding alive).
#[inline(always)]
pub fn lookup4(addr4: [u8; 4], port4: [u8; 2], proto: u8) -> Option<&'static Bib4Value> {
    let k4 = Bib4Key {
        addr4,
        port4,
        proto,
        _pad: 0,
    };
    // SAFETY: read-only lookup; the value lives in map memory for this program run.
    unsafe { BIB4.get(&k4) }
}
