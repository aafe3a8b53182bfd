//! Counter updates. The map is per-CPU, so a plain add is race-free and costs no atomic.

use nat64_common::Counter;

use crate::maps::STATS;

#[inline(always)]
pub fn add(c: Counter, n: u64) {
    if let Some(p) = STATS.get_ptr_mut(c.index()) {
        // SAFETY: the pointer comes from a successful lookup into this CPU's slot.
        unsafe { *p += n };
    }
}
