//! The rate limit of the ICMP errors the dataplane originates (`unreachable`, `too_big`):
//! RFC 4443 section 2.4(f) says an IPv6 node "MUST limit the rate of ICMPv6 error messages it
//! originates", and RFC 1812 section 4.3.2.8 asks the same of IPv4 routers, lest a flood of
//! bad packets become a flood of errors. A token bucket per CPU, with the kernel's defaults
//! (`nat64_common::counters::ICMP_ERRORS_PER_SEC`, `ICMP_ERROR_BURST`), kept as time: an
//! allowance in nanoseconds that grows with the clock up to the burst, and that each error
//! spends. Errors over the limit are not sent and are counted (`Counter::RateLimited`).

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::map, maps::PerCpuArray};
use nat64_common::{
    Counter,
    counters::{ICMP_ERROR_BURST, ICMP_ERRORS_PER_SEC},
};

/// Per CPU: the allowance (ns) and when it was last brought up to date.
#[map]
static ICMP_RATE: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// What one error costs, in nanoseconds of allowance.
const COST_NS: u64 = 1_000_000_000 / ICMP_ERRORS_PER_SEC;
/// The most allowance that builds up: the burst.
const MAX_NS: u64 = COST_NS * ICMP_ERROR_BURST;

/// Whether an error may be sent now; if not, it is counted. Not inlined: one frame, verified
/// for each of its two callers.
#[inline(never)]
pub fn allow() -> bool {
    let Some(p) = ICMP_RATE.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's slot, private to this packet while the program runs.
    let b = unsafe { &mut *p };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let grown = b[0].saturating_add(now.saturating_sub(b[1]));
    b[1] = now;
    let allowance = if grown > MAX_NS { MAX_NS } else { grown };
    if allowance < COST_NS {
        b[0] = allowance;
        crate::stats::add(Counter::RateLimited, 1);
        return false;
    }
    b[0] = allowance - COST_NS;
    true
}
