//! RFC 4884 extensions of a translated ICMP error (layout: `nat64_common::rfc4884`): the
//! extension moves behind the cut or padded quote, whole, and the message gets its final
//! length.
//!
//! The move goes through a per-CPU buffer (`maps::EXTENSION`) and the context's load and
//! store helpers, under `bpf_loop` (one turn) so that the verifier checks it once rather than
//! on every path of the error translation that reaches it.

use core::ffi::c_void;

use nat64_common::{
    DropReason,
    rfc4884::{Layout, MIN_QUOTE},
};

use crate::{
    frame::Frame,
    maps::{EXTENSION, EXTENSION_MAX, FRONT_MAX, Scratch},
};

/// Where things go, in bytes from the start of the frame.
#[repr(C)]
struct Move {
    ctx: *mut c_void,
    /// Where the extension is now, and how long it is (0: none).
    from: u32,
    len: u32,
    /// Where the padding starts (the end of the kept quote), and its length; the extension
    /// follows it.
    pad_at: u32,
    pad: u32,
    /// The frame's final length.
    end: u32,
    failed: u32,
}

/// Records a translated error body's layout in the scratch slot, for [`finish`] once the
/// headers are written.
#[inline(always)]
pub fn record(s: &mut Scratch, l: &Layout) {
    s.keep = l.keep as u16;
    s.pad = l.pad as u16;
    s.ext_len = l.ext as u16;
    s.ext_from = l.ext_from as u16;
}

/// Gives the frame its final length `end` (everything past it goes: what was cut, any
/// Ethernet padding), the translated body starting at `body`, laid out as [`record`] noted:
/// the padding after the quote kept, then the extension, moved behind it.
#[inline(always)]
pub fn finish<C: Frame>(ctx: &C, s: &Scratch, body: usize, end: usize) -> Result<(), DropReason> {
    move_extension(
        ctx,
        body + s.ext_from as usize,
        s.ext_len as usize,
        body + s.keep as usize,
        s.pad as usize,
        end,
    )
}

/// [`finish`], and TC's shortening of an error for the link (`icmp_error::fit_for_link`): `pad`
/// zero bytes at `pad_at`, the `len` bytes of extension now at `from` right after them, the
/// frame `end` bytes long.
#[inline(always)]
pub fn move_extension<C: Frame>(
    ctx: &C,
    from: usize,
    len: usize,
    pad_at: usize,
    pad: usize,
    end: usize,
) -> Result<(), DropReason> {
    if len == 0 && pad == 0 {
        return crate::packet::trim_to(ctx, end);
    }
    let mut m = Move {
        ctx: ctx.raw(),
        from: from as u32,
        len: len as u32,
        pad_at: pad_at as u32,
        pad: pad as u32,
        end: end as u32,
        failed: 1,
    };
    // SAFETY: `move_step` touches only `m`, which outlives the call, this CPU's buffer and
    // the packet through the context's helpers.
    unsafe {
        aya_ebpf::helpers::generated::bpf_loop(
            1,
            move_step::<C> as *mut c_void,
            &mut m as *mut Move as *mut c_void,
            0,
        );
    }
    if m.failed != 0 {
        return Err(DropReason::HeadroomExhausted);
    }
    Ok(())
}

extern "C" fn move_step<C: Frame>(_i: u64, c: *mut c_void) -> i64 {
    // SAFETY: `c` is the `Move` that `finish` passed to `bpf_loop`.
    let m = unsafe { &mut *(c as *mut Move) };
    let Some(buf) = EXTENSION.get_ptr_mut(0) else {
        return 1;
    };
    let buf = buf as *mut u8;
    // SAFETY: offsets within the buffer (its layout: `maps::EXTENSION`).
    let (front, ext) = unsafe { (buf.add(MIN_QUOTE), buf.add(MIN_QUOTE + FRONT_MAX)) };
    let ctx = C::from_raw(m.ctx);
    // The bounds are checks the verifier sees on the helpers' length arguments.
    let (len, pad) = (m.len, m.pad);
    if len as usize > EXTENSION_MAX || pad as usize > MIN_QUOTE {
        return 1;
    }
    if len > 0 && ctx.load_into(m.from, ext, len) != 0 {
        return 1;
    }
    if !ctx.resize_tail(m.end) {
        // No room at the end (a socket buffer's tailroom, in XDP too when the kernel made
        // the frame from one): the frame grows at its start instead, where XDP keeps 256
        // bytes, and what precedes the padding moves there. Only padding makes a frame grow
        // (the quote kept is never longer than the one that came), so that is short.
        let grow = m.end as i64 - ctx.len() as i64;
        // Masked, then checked: LLVM turns a range check into one on a temporary that the
        // verifier does not tie back to `at`.
        let at = m.pad_at & (FRONT_MAX as u32 - 1);
        if grow <= 0 || at != m.pad_at || at == 0 {
            return 1;
        }
        if ctx.load_into(0, front, at) != 0 || !ctx.move_head(-(grow as i32), 0) {
            return 1;
        }
        if ctx.store_from(0, front, at) != 0 {
            return 1;
        }
    }
    if pad > 0 && ctx.store_from(m.pad_at, buf, pad) != 0 {
        return 1;
    }
    if len > 0 && ctx.store_from(m.pad_at + pad, ext, len) != 0 {
        return 1;
    }
    m.failed = 0;
    1
}
