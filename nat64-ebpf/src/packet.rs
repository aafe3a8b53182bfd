//! Header layouts and the one bounds-checked accessor every parse goes through.
//!
//! Header structs are byte arrays only (alignment 1), so reading them at any packet offset is
//! valid and multi-byte fields are converted with `from_be_bytes` where they are used.

use core::mem::size_of;

use crate::frame::Frame;
use nat64_common::DropReason;

// The wire constants live in `proto`; re-exported here, where the parsers have always found
// them.
pub use crate::proto::{
    ETH_LEN, ETH_P_IP, ETH_P_IPV6, ICMP_LEN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
    IPPROTO_UDP, IPV4_LEN, IPV6_LEN, TCP_CSUM_OFF, UDP_CSUM_OFF,
};

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub proto: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv6Hdr {
    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub vtcfl: [u8; 4],
    pub payload_len: [u8; 2],
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv4Hdr {
    pub ver_ihl: u8,
    pub tos: u8,
    pub tot_len: [u8; 2],
    pub id: [u8; 2],
    pub frag: [u8; 2],
    pub ttl: u8,
    pub proto: u8,
    pub check: [u8; 2],
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

/// The whole 8-byte ICMP / ICMPv6 header: the second word is the identifier and sequence of an
/// echo, or the unused / pointer / MTU word of an error.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IcmpFull {
    pub ty: u8,
    pub code: u8,
    pub check: [u8; 2],
    pub rest: [u8; 4],
}

/// Furthest transport header offset accepted (Ethernet + IPv6 + extension headers): a bound
/// the verifier can see for every access at that offset.
pub const MAX_HEADERS_LEN: usize = 512;

/// Next-header values that are IPv6 extension headers (RFC 8200 section 4 and the IANA
/// registry): hop-by-hop, routing, fragment, AH, destination options, mobility, HIP, shim6,
/// and the two experimental values.
#[inline(always)]
pub fn is_extension_header(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 44 | 51 | 60 | 135 | 139 | 140 | 253 | 254)
}

/// Sum of the 16-bit words of `len` bytes at `off` (`len` even, at most 60: IPv4 headers with
/// options), or `None` if the frame is shorter.
///
/// Words are loaded as native integers (no per-iteration temporaries on the small BPF stack)
/// and summed in host order; a one's complement sum is byte-order independent (RFC 1071
/// section 2(B)), so swapping the folded result gives the network-order sum.
#[inline(always)]
pub fn sum_words<C: Frame>(ctx: &C, off: usize, len: usize) -> Option<u32> {
    match sum_words_outlined(ctx, off as u32, len as u32) {
        u32::MAX => None,
        s => Some(s),
    }
}

/// [`sum_words`], as a function of its own, so that the verifier does not carry one state
/// per length into the caller. The loop's bounds checks are on a pointer of variable offset
/// (`Scratch::zero`): on constant offsets they would widen the caller's packet pointers to
/// each length's range (an IPv4 header's eleven lengths multiplied every path after the
/// header check). `len` is masked so that the loop's bounds on it stay in this frame (the
/// verifier links copies of a register across frames).
#[inline(never)]
fn sum_words_outlined<C: Frame>(ctx: &C, off: u32, len: u32) -> u32 {
    let Ok(slot) = crate::scratch::get() else {
        return u32::MAX;
    };
    let len = (len & 0x7e) as usize;
    let base = ctx.data() + (off & 0x3ff) as usize + (slot.zero & 1) as usize;
    let end = ctx.data_end();
    let mut s = 0u32;
    let mut i = 0;
    while i < 60 {
        if i >= len {
            break;
        }
        if base + i + 2 > end {
            return u32::MAX;
        }
        // SAFETY: bounds checked just above; unaligned loads are fine on BPF.
        s += unsafe { ((base + i) as *const u16).read_unaligned() } as u32;
        i += 2;
    }
    nat64_common::checksum::fold(s).swap_bytes() as u32
}

/// One byte at `at`, copied out with the context's load helper: a direct one-byte read at a
/// variable offset gets a bounds check that LLVM rewrites into a form (`p >= end`) the
/// verifier cannot use.
#[inline(always)]
pub fn load_u8(ctx: &impl Frame, at: usize) -> Option<u8> {
    let mut b = [0u8; 4];
    (ctx.load(at as u32, &mut b, 1) == 0).then_some(b[0])
}

/// Longest stretch [`sum_range`] covers: a full page, more than any XDP frame without
/// multi-buffer support.
pub const MAX_SUM_BYTES: usize = 4096;

/// State of a [`sum_range`] loop, shared with its `bpf_loop` callback.
#[repr(C)]
struct SumLoop {
    ctx: *mut core::ffi::c_void,
    off: u32,
    len: u32,
    acc: u64,
    failed: u32,
}

/// One 32-bit step of [`sum_range`]. Runs under `bpf_loop`, which the verifier checks once
/// rather than once per iteration (an open-coded loop over a 1500-byte datagram, entered from
/// every path of the translator, exceeds its million-instruction budget).
extern "C" fn sum_step<C: Frame>(i: u64, c: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `c` is the `SumLoop` that `sum_range` passed to `bpf_loop`.
    let c = unsafe { &mut *(c as *mut SumLoop) };
    let pos = (i as u32) * 4;
    if pos + 4 > c.len {
        return 1;
    }
    let off = (c.off + pos) as usize;
    // A bound the verifier can see before the offset meets a packet pointer.
    if off > ETH_LEN + 60 + MAX_SUM_BYTES {
        c.failed = 1;
        return 1;
    }
    let ctx = C::from_raw(c.ctx);
    match ptr_at::<u32>(&ctx, off) {
        Some(p) => {
            // SAFETY: bounds checked by `ptr_at`; unaligned loads are fine on BPF.
            c.acc += unsafe { p.read_unaligned() } as u64;
            0
        }
        None => {
            c.failed = 1;
            1
        }
    }
}

/// Sum of the 16-bit words of `len` bytes at `off` (a trailing odd byte is padded with zero,
/// RFC 1071), or `None` if the frame is shorter or `len` exceeds [`MAX_SUM_BYTES`].
///
/// Loads 32 bits at a time in host order into a 64-bit accumulator; the one's complement sum
/// is byte-order independent (RFC 1071 section 2(B)), so swapping the folded result gives the
/// network-order sum.
#[inline(always)]
pub fn sum_range<C: Frame>(ctx: &C, off: usize, len: usize) -> Option<u32> {
    if len > MAX_SUM_BYTES {
        return None;
    }
    let mut state = SumLoop {
        ctx: ctx.raw(),
        off: off as u32,
        len: len as u32,
        acc: 0,
        failed: 0,
    };
    let words = (len / 4) as u32;
    // SAFETY: `sum_step` only touches `state` and the packet through bounds-checked pointers.
    unsafe {
        aya_ebpf::helpers::generated::bpf_loop(
            words,
            sum_step::<C> as *mut core::ffi::c_void,
            &mut state as *mut SumLoop as *mut core::ffi::c_void,
            0,
        )
    };
    if state.failed != 0 {
        return None;
    }
    let mut acc = state.acc;
    // The last one to three bytes, through a helper that checks the bounds itself (an
    // open-coded check at a variable offset is rewritten by LLVM into a form the verifier
    // cannot follow).
    let tail = len & 3;
    if tail != 0 {
        let mut b = [0u8; 4];
        let at = (off + (len & !3)) as u32;
        let rc = match tail {
            1 => ctx.load(at, &mut b, 1),
            2 => ctx.load(at, &mut b, 2),
            _ => ctx.load(at, &mut b, 3),
        };
        if rc != 0 {
            return None;
        }
        // Zero-padded bytes summed like the 32-bit steps: host order, swapped at the end.
        acc += u32::from_ne_bytes(b) as u64;
    }
    // Fold 64 -> 32 -> 16 bits with end-around carries.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    Some(nat64_common::checksum::fold(acc as u32).swap_bytes() as u32)
}

/// Sum of the 16-bit words of an IPv6 header.
#[inline(always)]
pub fn ipv6_header_sum(h: &Ipv6Hdr) -> u32 {
    word(h.vtcfl[0], h.vtcfl[1])
        + word(h.vtcfl[2], h.vtcfl[3])
        + word(h.payload_len[0], h.payload_len[1])
        + word(h.next_header, h.hop_limit)
        + nat64_common::checksum::sum16(&h.src)
        + nat64_common::checksum::sum16(&h.dst)
}

/// The one's complement sum of an option-less IPv4 header's 16-bit words, within 32 bits (0xffff
/// once folded when its checksum is right), from five 4-byte loads summed in a 64-bit
/// accumulator: the sum is byte-order independent (RFC 1071 section 2(B)), and a checksum of
/// 0xffff is one either way.
#[inline(always)]
pub fn ipv4_header_sum(h: &Ipv4Hdr) -> u32 {
    let p = h as *const Ipv4Hdr as *const u32;
    let mut acc = 0u64;
    let mut i = 0;
    while i < 5 {
        // SAFETY: `h` is a 20-byte header (the caller's view checked its bounds); unaligned
        // loads are fine on BPF (see build.rs).
        acc += unsafe { p.add(i).read_unaligned() } as u64;
        i += 1;
    }
    // Five words are below 2^35: two end-around folds bring the sum within 32 bits, which
    // `checksum::fold` takes down to 16.
    let folded = (acc & 0xffff_ffff) + (acc >> 32);
    ((folded & 0xffff_ffff) + (folded >> 32)) as u32
}

/// An option-less IPv4 header built straight from its fields, checksum included (computed from
/// the field words, without a pass over a byte buffer).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn ipv4_header(
    tos: u8,
    tot_len: u16,
    id: [u8; 2],
    frag: [u8; 2],
    ttl: u8,
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
) -> Ipv4Words {
    let sum = word(0x45, tos)
        + tot_len as u32
        + word(id[0], id[1])
        + word(frag[0], frag[1])
        + word(ttl, proto)
        + nat64_common::checksum::sum4(&src)
        + nat64_common::checksum::sum4(&dst);
    let [c0, c1] = (!nat64_common::checksum::fold(sum)).to_be_bytes();
    let [l0, l1] = tot_len.to_be_bytes();
    Ipv4Words {
        w0: u64::from_ne_bytes([0x45, tos, l0, l1, id[0], id[1], frag[0], frag[1]]),
        w1: u64::from_ne_bytes([ttl, proto, c0, c1, src[0], src[1], src[2], src[3]]),
        w2: u32::from_ne_bytes(dst),
    }
}

/// A built IPv4 header as the words it is stored with: three stores (its twenty bytes, one by
/// one, were twenty, and the values spilled to the stack on the way). Aligned fields, so a
/// copy of it on the stack never needs an unaligned access.
#[derive(Clone, Copy)]
pub struct Ipv4Words {
    w0: u64,
    w1: u64,
    w2: u32,
}

impl Ipv4Words {
    /// Writes the header at `off`.
    #[inline(always)]
    pub fn write(&self, ctx: &impl Frame, off: usize) -> Result<(), DropReason> {
        let p = ptr_at::<Ipv4Hdr>(ctx, off).ok_or(DropReason::Truncated)? as *mut u8;
        // SAFETY: bounds checked by `ptr_at` (20 bytes); unaligned packet stores are fine on
        // BPF (see build.rs).
        unsafe {
            (p as *mut u64).write_unaligned(self.w0);
            (p.add(8) as *mut u64).write_unaligned(self.w1);
            (p.add(16) as *mut u32).write_unaligned(self.w2);
        }
        Ok(())
    }
}

/// Moves what follows the network headers forward by `delta` bytes after the caller has
/// already written the new headers (Ethernet included, carrying `proto`) at `delta` bytes in:
/// nothing has to survive the helper call, which keeps values off the BPF stack. In TC the
/// Ethernet header stays in place (see `frame`), so its type is written again.
#[inline(always)]
pub fn shrink_head(ctx: &impl Frame, delta: i32, proto: u16) -> bool {
    ctx.move_head(delta, proto) && write_bytes(ctx, 12, proto.to_be_bytes()).is_ok()
}

/// The shortest transport header of protocol `proto` (TCP 20 bytes, UDP and ICMP 8), that a
/// whole packet or a first fragment must hold; 0 for the others.
#[inline(always)]
pub fn l4_min(proto: u8) -> usize {
    match proto {
        IPPROTO_TCP => 20,
        IPPROTO_UDP | IPPROTO_ICMP | IPPROTO_ICMPV6 => 8,
        _ => 0,
    }
}

/// Two bytes as a 16-bit word for checksum sums.
#[inline(always)]
pub fn word(a: u8, b: u8) -> u32 {
    u16::from_be_bytes([a, b]) as u32
}

const _: () = assert!(size_of::<EthHdr>() == ETH_LEN);
const _: () = assert!(size_of::<Ipv6Hdr>() == IPV6_LEN);
const _: () = assert!(size_of::<Ipv4Hdr>() == IPV4_LEN);

/// A pointer to a `T` at `off` bytes into the frame, or `None` if the frame is shorter.
#[inline(always)]
pub fn ptr_at<T>(ctx: &impl Frame, off: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + size_of::<T>() > end {
        return None;
    }
    Some((start + off) as *mut T)
}

/// A reference to the `T` at `off`, in the packet itself. Reading fields through it instead of
/// copying the header keeps the many small fields out of registers and off the small BPF
/// stack. Valid until the packet is resized (`resize_head`).
#[inline(always)]
pub fn view<'a, T>(ctx: &'a impl Frame, off: usize) -> Option<&'a T> {
    // SAFETY: `ptr_at` checked the bounds and every header type here has alignment 1.
    ptr_at::<T>(ctx, off).map(|p| unsafe { &*p })
}

/// A copy of the `T` at `off`.
#[inline(always)]
pub fn read<T: Copy>(ctx: &impl Frame, off: usize) -> Option<T> {
    // SAFETY: `ptr_at` checked the bounds and `T` has alignment 1 in every use here.
    ptr_at::<T>(ctx, off).map(|p| unsafe { p.read_unaligned() })
}

/// The whole packet's length (beyond the directly accessible part for a GSO packet in TC).
#[inline(always)]
pub fn frame_len(ctx: &impl Frame) -> usize {
    ctx.len()
}

/// Frames up to the IPv6 minimum MTU (RFC 8200 section 5) plus the Ethernet header fit every
/// IPv6 link, so only longer ones need the MTU helper (a helper call per packet is not free).
const ALWAYS_FITS: usize = 1280 + ETH_LEN;

/// Whether the frame is longer than the ingress interface's MTU allows, which only a GRO/GSO
/// aggregate can be (see `DropReason::Oversize`).
#[inline(always)]
pub fn exceeds_mtu(ctx: &impl Frame) -> bool {
    // TC sees GSO packets whole and the kernel segments them after translation: nothing to
    // check there.
    let Some(xdp) = ctx.as_xdp() else {
        return false;
    };
    if frame_len(ctx) <= ALWAYS_FITS {
        return false;
    }
    let mut mtu: u32 = 0;
    // SAFETY: helper call on the program's own context; ifindex 0 means the ingress device.
    let rc = unsafe {
        aya_ebpf::helpers::generated::bpf_check_mtu(
            xdp.ctx as *mut core::ffi::c_void,
            0,
            &mut mtu,
            0,
            0,
        )
    };
    rc == aya_ebpf::bindings::bpf_check_mtu_ret::BPF_MTU_CHK_RET_FRAG_NEEDED as i64
}

/// An IPv6 address as four native-order words, its bytes in order: what `bpf_fib_lookup` takes,
/// and the EAM6 trie's key.
#[inline(always)]
pub fn addr_words(a: &[u8; 16]) -> [u32; 4] {
    // One 4-byte load each: four bytes gathered one by one stay four loads.
    let w = |i: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&a[i..i + 4]);
        u32::from_ne_bytes(b)
    };
    [w(0), w(4), w(8), w(12)]
}

/// Whether the frame was sent to a link-layer broadcast or multicast address (the I/G bit of
/// the destination MAC). Such a frame carrying a unicast IP packet is not for a router to
/// forward (RFC 1812 section 5.3.4, RFC 1122 section 3.3.6; the kernel's `ip_forward` and
/// `ip6_forward` drop it), so the translator leaves it to the kernel: translated, it would
/// make state for a flow not addressed to this node, and every node on the segment that runs
/// the translator would send its own copy on. A unicast frame to another MAC address is not
/// refused (the kernel's `PACKET_OTHERHOST`): on a bridge port, frames for the bridge, this
/// node, carry the bridge's address, not the port's.
#[inline(always)]
pub fn to_group_address(ctx: &impl Frame) -> bool {
    read::<EthHdr>(ctx, 0).is_some_and(|e| e.dst[0] & 1 != 0)
}

#[inline(always)]
pub fn ethertype(ctx: &impl Frame) -> Option<u16> {
    read::<EthHdr>(ctx, 0).map(|e| u16::from_be_bytes(e.proto))
}

/// The verdict that sends a frame turned around by [`turn_back`] out of the interface it came
/// in on: `XDP_TX`, except on a virtual link (`IFACE_F_PARTIAL_CSUM` marks them) in XDP. A
/// veth hands `XDP_TX` frames to its peer at once only when the peer runs an XDP program of
/// its own; a peer with GRO alone keeps them until its next packet, which may never come. A
/// redirect to the same interface is flushed at once. (At TC `XDP_TX` becomes a redirect.)
#[inline(always)]
pub fn send_back(ctx: &impl Frame) -> u32 {
    if ctx.as_xdp().is_some() && crate::iface::partial_checksums(ctx) {
        // SAFETY: plain helper call; flags 0 (no fallback action).
        unsafe { aya_ebpf::helpers::generated::bpf_redirect(ctx.ifindex(), 0) as u32 }
    } else {
        aya_ebpf::bindings::xdp_action::XDP_TX
    }
}

/// Turns the frame around for an error this node answers in place (`XDP_TX`): the frame is
/// cut to the Ethernet header and the `quote` bytes after it (the rest of a quote, Ethernet
/// padding), `new` bytes of headers are made room for in front of the quote, and the Ethernet
/// header goes back to where the frame came from (MAC addresses swapped), carrying `proto`.
/// Cutting first keeps the packet within what TC lets it grow to (the device's MTU).
#[inline(always)]
pub fn turn_back(ctx: &impl Frame, new: usize, proto: u16, quote: usize) -> Result<(), DropReason> {
    let back = Macs::read(ctx).ok_or(DropReason::Truncated)?.swapped();
    trim_to(ctx, ETH_LEN + quote)?;
    if resize_head(ctx, -(new as i32), &back, proto) {
        Ok(())
    } else {
        Err(DropReason::HeadroomExhausted)
    }
}

/// Cuts the frame down to `len` bytes (what follows goes: the rest of a quote, Ethernet
/// padding); a frame no longer than that is left alone.
#[inline(always)]
pub fn trim_to(ctx: &impl Frame, len: usize) -> Result<(), DropReason> {
    if ctx.set_len(len as u32) {
        Ok(())
    } else {
        Err(DropReason::HeadroomExhausted)
    }
}

/// The two MAC addresses of an Ethernet header (its first 12 bytes) as an 8-byte and a 4-byte
/// word in memory order: two loads and two stores to carry them over a head move (as a
/// 14-byte `EthHdr` they were 14 single-byte loads and 12 stores).
#[derive(Clone, Copy)]
pub struct Macs {
    head: u64,
    tail: u32,
}

impl Macs {
    /// The frame's MAC addresses, or `None` if it is shorter than an Ethernet header.
    #[inline(always)]
    pub fn read(ctx: &impl Frame) -> Option<Macs> {
        let p = ptr_at::<EthHdr>(ctx, 0)? as *const u8;
        // SAFETY: bounds checked by `ptr_at` (14 bytes); unaligned packet loads are fine on
        // BPF (see build.rs).
        unsafe {
            Some(Macs {
                head: (p as *const u64).read_unaligned(),
                tail: (p.add(8) as *const u32).read_unaligned(),
            })
        }
    }

    /// Destination and source exchanged: the frame goes back where it came from.
    #[inline(always)]
    pub fn swapped(self) -> Macs {
        // Bytes 0-5 are the destination, 6-11 the source; in the native little-endian words,
        // `head` holds bytes 0-7 and `tail` bytes 8-11.
        let dst = self.head & 0xffff_ffff_ffff;
        let src = (self.head >> 48) | ((self.tail as u64) << 16);
        Macs {
            head: src | (dst << 48),
            tail: (dst >> 16) as u32,
        }
    }
}

/// Moves the start of the frame by `delta` bytes (positive shrinks the headroom side) and
/// writes a new Ethernet header with the saved MAC addresses and `proto`. Returns `false` when
/// the driver has no headroom left to grow into.
#[inline(always)]
pub fn resize_head(ctx: &impl Frame, delta: i32, macs: &Macs, proto: u16) -> bool {
    if !ctx.move_head(delta, proto) {
        return false;
    }
    let Some(p) = ptr_at::<EthHdr>(ctx, 0) else {
        return false;
    };
    let p = p as *mut u8;
    // SAFETY: bounds checked by `ptr_at` after the move (14 bytes).
    unsafe {
        (p as *mut u64).write_unaligned(macs.head);
        (p.add(8) as *mut u32).write_unaligned(macs.tail);
        (p.add(12) as *mut [u8; 2]).write_unaligned(proto.to_be_bytes());
    }
    true
}

/// Writes an IPv6 address given as its two halves (big-endian numbers, `addrmap::to6_halves`)
/// at `off`: two 8-byte stores ([`set_addr6`]).
#[inline(always)]
pub fn write_halves(ctx: &impl Frame, off: usize, halves: (u64, u64)) -> Result<(), DropReason> {
    let p = ptr_at::<[u8; 16]>(ctx, off).ok_or(DropReason::Truncated)?;
    // SAFETY: bounds checked by `ptr_at`; a byte array has alignment 1.
    set_addr6(unsafe { &mut *p }, halves);
    Ok(())
}

/// Copies the IPv6 address at `a` (map memory: the scratch slot, an entry) to `off`: two
/// 8-byte loads and stores ([`copy_addr6`]).
#[inline(always)]
pub fn write_addr6(ctx: &impl Frame, off: usize, a: &[u8; 16]) -> Result<(), DropReason> {
    let p = ptr_at::<[u8; 16]>(ctx, off).ok_or(DropReason::Truncated)?;
    // SAFETY: bounds checked by `ptr_at`; a byte array has alignment 1.
    copy_addr6(unsafe { &mut *p }, a);
    Ok(())
}

/// Stores an IPv6 address given as its two halves (`addrmap::to6_halves`) into map or packet
/// memory: two 8-byte stores, where a `[u8; 16]` built from them is sixteen. Not into the stack,
/// where the kernel refuses unaligned accesses.
#[inline(always)]
pub fn set_addr6(dst: &mut [u8; 16], (hi, lo): (u64, u64)) {
    let d = dst.as_mut_ptr() as *mut u64;
    // SAFETY: 16 writable bytes; unaligned map and packet accesses are fine on BPF (see
    // build.rs).
    unsafe {
        d.write_unaligned(hi.to_be());
        d.add(1).write_unaligned(lo.to_be());
    }
}

/// Copies an IPv6 address between two places in map memory (the scratch slot, a table entry)
/// or a packet: two 8-byte loads and stores, where an assignment is expanded byte by byte.
/// Not for an address at an unaligned place on the stack, where the kernel refuses unaligned
/// accesses.
#[inline(always)]
pub fn copy_addr6(dst: &mut [u8; 16], src: &[u8; 16]) {
    let d = dst.as_mut_ptr() as *mut u64;
    let s = src.as_ptr() as *const u64;
    // SAFETY: both are 16 valid bytes; unaligned accesses to map and packet memory are fine on
    // BPF (see build.rs).
    unsafe {
        d.write_unaligned(s.read_unaligned());
        d.add(1).write_unaligned(s.add(1).read_unaligned());
    }
}

/// Writes `N` bytes at `off`.
#[inline(always)]
pub fn write_bytes<const N: usize>(
    ctx: &impl Frame,
    off: usize,
    b: [u8; N],
) -> Result<(), nat64_common::DropReason> {
    let p = ptr_at::<[u8; N]>(ctx, off).ok_or(nat64_common::DropReason::Truncated)?;
    // SAFETY: bounds checked by `ptr_at`.
    unsafe { p.write_unaligned(b) };
    Ok(())
}

/// Overwrites the 16-bit field at `off` (a checksum) in place.
#[inline(always)]
pub fn write_u16(ctx: &impl Frame, off: usize, v: u16) -> Option<()> {
    let p = ptr_at::<[u8; 2]>(ctx, off)?;
    // SAFETY: bounds checked by `ptr_at`.
    unsafe { p.write_unaligned(v.to_be_bytes()) };
    Some(())
}

/// The drop reason a packed result carries (its number, `DropReason as u32`): the one decoder
/// of every packed result. A number no reason has cannot come from this program; should it,
/// the packet counts as `bad_header`.
#[inline(always)]
pub fn drop_reason(n: u32) -> DropReason {
    DropReason::from_index(n).unwrap_or(DropReason::BadHeader)
}

/// Whether the frame is an IPv4 packet carrying TCP.
#[inline(always)]
pub fn is_tcp4(ctx: &impl Frame) -> bool {
    view::<Ipv4Hdr>(ctx, ETH_LEN).is_some_and(|h| h.proto == IPPROTO_TCP)
}
