//! The per-CPU working slot (`maps::SCRATCH`) that the side paths share: `translate` hands
//! over where it found the transport header, and the ICMP error path keeps its long-lived
//! values there instead of on the 512-byte BPF stack.

use nat64_common::DropReason;

use crate::maps::{SCRATCH, Scratch};

/// Records where `translate` found the transport header and which protocol it is, for the
/// paths that continue from there (ICMP errors, hairpinning).
#[inline(always)]
pub fn hand_over_6to4(l4_off: usize, proto: u8) -> Result<(), DropReason> {
    let s = get()?;
    s.l4_off = l4_off as u16;
    s.l4_proto = proto;
    Ok(())
}

/// The per-CPU working state (see `maps::SCRATCH`).
#[inline(always)]
pub fn get() -> Result<&'static mut Scratch, DropReason> {
    let p = SCRATCH.get_ptr_mut(0).ok_or(DropReason::Internal)?;
    // SAFETY: this CPU's slot; nothing else runs on it until the program returns.
    Ok(unsafe { &mut *p })
}
