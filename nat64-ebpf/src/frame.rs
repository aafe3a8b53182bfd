//! The two contexts the one translation core runs on: an XDP frame (`nat64_xdp`, `nat64_link`)
//! and a socket buffer at the TC ingress hook (`nat64_tc`). The core reads and writes headers
//! through direct packet pointers either way; what differs, and lives here, is how the packet
//! grows or shrinks, how a byte is copied out and how long the packet is.
//!
//! Resizing keeps one contract for both: `move_head(delta, proto)` makes the bytes that followed
//! the old network headers follow the new ones, `delta` bytes earlier (positive: the headers
//! shrank). XDP moves the start of the frame (`bpf_xdp_adjust_head`); TC changes the room right
//! after the Ethernet header (`bpf_skb_change_proto` for the 20 bytes between an IPv4 and an
//! IPv6 header, which also converts a GSO packet's type and keeps it whole, and
//! `bpf_skb_adjust_room` for the rest), so the Ethernet header stays where it is and only its
//! type changes.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{__sk_buff, bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, xdp_md},
    helpers::generated::{
        bpf_skb_adjust_room, bpf_skb_change_proto, bpf_skb_change_tail, bpf_skb_load_bytes,
        bpf_skb_store_bytes, bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_load_bytes,
        bpf_xdp_store_bytes,
    },
    programs::{TcContext, XdpContext},
};

use crate::proto::{ETH_P_IP, ETH_P_IPV6};

/// What the translation core needs of its context.
pub trait Frame {
    /// Whether the whole core runs here. The TC program leaves ICMP errors and hairpinning
    /// to the translator link (`Handoff::SlowPath`): with them it would exceed the verifier's
    /// budget, and their packets are few.
    const FULL: bool;
    /// The raw context pointer, for `bpf_loop` callbacks that rebuild the context.
    fn raw(&self) -> *mut c_void;
    /// The context behind a pointer from [`Frame::raw`].
    fn from_raw(p: *mut c_void) -> Self;
    /// Start and end of the directly accessible bytes (for TC, the linear part).
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
    /// The whole packet's length, Ethernet header included.
    fn len(&self) -> usize;
    /// The interface the packet arrived on.
    fn ifindex(&self) -> u32;
    /// The segment size of a GSO packet, 0 for one packet on the wire (always 0 in XDP).
    fn gso_size(&self) -> u32;
    /// Copies `n` (1 to 4) bytes at `at` into `b`; 0 on success.
    fn load(&self, at: u32, b: &mut [u8; 4], n: u32) -> i64;
    /// Moves what follows the network headers `delta` bytes earlier (negative: later), the
    /// packet becoming `proto` (see the module comment). The Ethernet header is the caller's to
    /// write afterwards.
    fn move_head(&self, delta: i32, proto: u16) -> bool;
    /// Cuts the packet to `len` bytes.
    fn set_len(&self, len: u32) -> bool;
    /// Makes the packet `len` bytes long, cutting or growing it at the end (new bytes are
    /// the caller's to write).
    fn resize_tail(&self, len: u32) -> bool;
    /// Copies `len` bytes at `at` to `to`, or stores `len` bytes from `from` at `at`, through
    /// the context's helpers (any offset, any part of the packet); 0 on success. The caller
    /// keeps `len` within its buffer, where the verifier can see it.
    fn load_into(&self, at: u32, to: *mut u8, len: u32) -> i64;
    fn store_from(&self, at: u32, from: *const u8, len: u32) -> i64;
    /// This is the XDP context, for what only XDP does (forwarding from the hook).
    fn as_xdp(&self) -> Option<&XdpContext>;
    /// A 16-bit word of the packet went from `old` to `new` by a direct write: a receive
    /// checksum over the packet (TC's `CHECKSUM_COMPLETE`) is moved with it; XDP has none.
    fn word_changed(&self, old: u16, new: u16);
}

impl Frame for XdpContext {
    const FULL: bool = true;
    #[inline(always)]
    fn raw(&self) -> *mut c_void {
        self.ctx as *mut c_void
    }
    #[inline(always)]
    fn from_raw(p: *mut c_void) -> Self {
        XdpContext::new(p as *mut xdp_md)
    }
    #[inline(always)]
    fn data(&self) -> usize {
        XdpContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        XdpContext::data_end(self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        XdpContext::data_end(self) - XdpContext::data(self)
    }
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        self.ingress_ifindex() as u32
    }
    #[inline(always)]
    fn gso_size(&self) -> u32 {
        0
    }
    #[inline(always)]
    fn load(&self, at: u32, b: &mut [u8; 4], n: u32) -> i64 {
        // SAFETY: the caller keeps `n` within `b`.
        unsafe { bpf_xdp_load_bytes(self.ctx, at, b.as_mut_ptr() as *mut c_void, n.min(4)) }
    }
    #[inline(always)]
    fn move_head(&self, delta: i32, _proto: u16) -> bool {
        // SAFETY: plain helper call on the program's own context.
        unsafe { bpf_xdp_adjust_head(self.ctx, delta) == 0 }
    }
    #[inline(always)]
    fn set_len(&self, len: u32) -> bool {
        let cut = Frame::len(self).saturating_sub(len as usize);
        // SAFETY: plain helper call on the program's own context.
        cut == 0 || unsafe { bpf_xdp_adjust_tail(self.ctx, -(cut as i32)) == 0 }
    }
    #[inline(always)]
    fn resize_tail(&self, len: u32) -> bool {
        let delta = len as i32 - Frame::len(self) as i32;
        // SAFETY: plain helper call on the program's own context.
        delta == 0 || unsafe { bpf_xdp_adjust_tail(self.ctx, delta) == 0 }
    }
    #[inline(always)]
    fn load_into(&self, at: u32, to: *mut u8, len: u32) -> i64 {
        // SAFETY: the caller keeps `len` within `to`.
        unsafe { bpf_xdp_load_bytes(self.ctx, at, to as *mut c_void, len) }
    }
    #[inline(always)]
    fn store_from(&self, at: u32, from: *const u8, len: u32) -> i64 {
        // SAFETY: the caller keeps `len` within `from`; the helper only reads it.
        unsafe { bpf_xdp_store_bytes(self.ctx, at, from as *mut c_void, len) }
    }
    #[inline(always)]
    fn as_xdp(&self) -> Option<&XdpContext> {
        Some(self)
    }
    #[inline(always)]
    fn word_changed(&self, _old: u16, _new: u16) {}
}

/// The socket buffer behind a TC context.
#[inline(always)]
fn sk(ctx: &TcContext) -> *mut __sk_buff {
    ctx.skb.skb
}

impl Frame for TcContext {
    const FULL: bool = false;
    #[inline(always)]
    fn raw(&self) -> *mut c_void {
        sk(self) as *mut c_void
    }
    #[inline(always)]
    fn from_raw(p: *mut c_void) -> Self {
        TcContext::new(p as *mut __sk_buff)
    }
    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        TcContext::len(self) as usize
    }
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        // SAFETY: a field of the program's own context.
        unsafe { (*sk(self)).ingress_ifindex }
    }
    #[inline(always)]
    fn gso_size(&self) -> u32 {
        // SAFETY: a field of the program's own context.
        unsafe { (*sk(self)).gso_size }
    }
    #[inline(always)]
    fn load(&self, at: u32, b: &mut [u8; 4], n: u32) -> i64 {
        // SAFETY: the caller keeps `n` within `b`.
        unsafe {
            bpf_skb_load_bytes(
                sk(self) as *const c_void,
                at,
                b.as_mut_ptr() as *mut c_void,
                n.min(4),
            )
        }
    }
    #[inline(always)]
    fn move_head(&self, delta: i32, proto: u16) -> bool {
        // SAFETY: a field of the program's own context (network byte order).
        let old = u16::from_be(unsafe { (*sk(self)).protocol } as u16);
        let mut grow = -delta;
        if old != proto {
            // RFC 7915 translation proper: 20 bytes of difference between the base headers,
            // GSO type converted (TCPv6 to TCPv4 and back) with the segment size kept, so a
            // 64 KiB TCP aggregate stays one packet through the hook.
            // SAFETY: plain helper call on the program's own context.
            if unsafe { bpf_skb_change_proto(sk(self), proto.to_be(), 0) } != 0 {
                return false;
            }
            grow -= match proto {
                ETH_P_IPV6 => 20,
                ETH_P_IP => -20,
                _ => return false,
            };
        }
        // Any rest of the change (extension headers, options, a Fragment header, an ICMP
        // error's inner header, an answer's new headers), right after the Ethernet header. The
        // TC program as built leaves all of those to the translator link (`Frame::FULL`); this
        // keeps the contract whole for the core all the same.
        grow == 0
            // SAFETY: plain helper call on the program's own context.
            || unsafe { bpf_skb_adjust_room(sk(self), grow, BPF_ADJ_ROOM_MAC, 0) } == 0
    }
    #[inline(always)]
    fn set_len(&self, len: u32) -> bool {
        // SAFETY: plain helper call on the program's own context.
        len as usize >= Frame::len(self) || unsafe { bpf_skb_change_tail(sk(self), len, 0) } == 0
    }
    #[inline(always)]
    fn resize_tail(&self, len: u32) -> bool {
        // SAFETY: plain helper call on the program's own context.
        len as usize == Frame::len(self) || unsafe { bpf_skb_change_tail(sk(self), len, 0) } == 0
    }
    #[inline(always)]
    fn load_into(&self, at: u32, to: *mut u8, len: u32) -> i64 {
        // SAFETY: the caller keeps `len` within `to`.
        unsafe { bpf_skb_load_bytes(sk(self) as *const c_void, at, to as *mut c_void, len) }
    }
    #[inline(always)]
    fn store_from(&self, at: u32, from: *const u8, len: u32) -> i64 {
        // SAFETY: the caller keeps `len` within `from`; the helper only reads it.
        // BPF_F_RECOMPUTE_CSUM: a receive checksum (`CHECKSUM_COMPLETE`) follows the bytes.
        unsafe { bpf_skb_store_bytes(sk(self), at, from as *const c_void, len, 1) }
    }
    #[inline(always)]
    fn as_xdp(&self) -> Option<&XdpContext> {
        None
    }
    #[inline(always)]
    fn word_changed(&self, old: u16, new: u16) {
        // `bpf_csum_update` does nothing unless the checksum is CHECKSUM_COMPLETE.
        // SAFETY: plain helper call on the program's own context.
        unsafe {
            aya_ebpf::helpers::generated::bpf_csum_update(sk(self), new as u32 + (!old) as u32)
        };
    }
}
