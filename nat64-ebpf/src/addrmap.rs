//! Which addresses are ours, and what they become: EAM entries (RFC 7757) first, then the
//! RFC 6052 prefix (pool6). RFC 7757 section 3.3 gives the EAM table precedence.

use aya_ebpf::maps::lpm_trie::Key;
use nat64_common::{
    addr::{
        RFC6052_LENGTHS, eam_to_v4, eam_to_v6, eam_to_v6_halves, embed, embed_halves, extract,
        in_span4, in_span6, prefix_matches, wkp_may_embed,
    },
    maps::{CONFIG_F2_POOL6_WKP, Config, EAM_F_LOCAL, EAM_F_POOL6, EamToV6},
};

use crate::maps::{EAM4, EAM6};

/// The IPv4 address an IPv6 address stands for, or `None` if it stands for none.
/// Used for the destination (which decides whether a packet is ours at all) and the source of
/// 6-to-4 packets.
#[inline(always)]
pub fn v6_to_v4(cfg: &Config, a: &[u8; 16]) -> Option<[u8; 4]> {
    v6_to_v4_via(cfg, a).map(|(v4, _)| v4)
}

/// How an IPv4 address maps to IPv6: through an EAM entry (a pointer into map memory, valid
/// for the whole program run) or by embedding under pool6.
///
/// The 16-byte result is only built where it is written or summed ([`to6`]): an IPv6 address
/// kept live across helper calls is split into sixteen byte-sized values that each take a stack
/// slot, and the BPF stack is 512 bytes.
#[derive(Clone, Copy)]
pub enum To6 {
    Eam(&'static EamToV6),
    Pool6,
}

/// Like [`v6_to_v4`], and whether the address was found through pool6 rather than EAM.
#[inline(always)]
pub fn v6_to_v4_via(cfg: &Config, a: &[u8; 16]) -> Option<([u8; 4], bool)> {
    // An LPM trie lookup is among the dearest steps of a translation: skipped where there is
    // nothing to find (outside the entries' span; always, with no entries).
    if in_span6(&cfg.eam6_span, a)
        && let Some(e) = eam6_get(a)
    {
        // The IPv6 counterpart of one of this node's own IPv4 addresses: not translated.
        if e.flags & EAM_F_LOCAL != 0 {
            return None;
        }
        return Some((eam_to_v4(a, e), false));
    }
    if prefix_matches(a, &cfg.pool6, cfg.pool6_len) {
        return extract(a, cfg.pool6_len).map(|v| (v, true));
    }
    None
}

/// The IPv6 host an IPv4 destination stands for. Only what the operator listed makes an IPv4
/// destination ours: an EAM entry, or a `pool6_ipv4` prefix (RFC 7915 section 4.1 with RFC
/// 6052: the IPv4-translatable address of an IPv6 host, embedded under pool6), both in the
/// EAM4 trie; so the node's own IPv4 traffic is never captured.
#[inline(always)]
pub fn v4_dst(cfg: &Config, a: [u8; 4]) -> Option<To6> {
    v4_dst_entry(cfg, a).map(entry)
}

/// [`v4_dst`] as the trie entry itself. An `Option` of a reference is a nullable pointer;
/// `Option<To6>` is a tag and a pointer, and with `None` LLVM leaves the pointer undefined:
/// kept across a helper call, it was spilled from a register the call had clobbered, which the
/// verifier refuses ("!read_ok").
#[inline(always)]
pub fn v4_dst_entry(cfg: &Config, a: [u8; 4]) -> Option<&'static EamToV6> {
    if !in_span4(&cfg.eam4_span, a) {
        return None;
    }
    // One of this node's own addresses (`EAM_F_LOCAL`) is not a translated destination.
    EAM4.get(Key::new(32, a))
        .filter(|e| e.flags & EAM_F_LOCAL == 0)
}

/// The EAM6 trie key of `a`, laid out so that its address starts on an 8-byte boundary of the
/// stack: LLVM may store the address as two 8-byte words (it often has them in registers
/// already, from the span check), and the kernel refuses unaligned stack accesses. The
/// trie's key is `prefix_len`, then the address (`Key<[u32; 4]>`), so the padding goes first.
#[repr(C, align(8))]
struct Key6 {
    _pad: u32,
    prefix_len: u32,
    data: [u32; 4],
}

#[inline(always)]
fn eam6_get(a: &[u8; 16]) -> Option<&'static nat64_common::maps::EamToV4> {
    let k = Key6 {
        _pad: 0,
        prefix_len: 128,
        data: crate::packet::addr_words(a),
    };
    // SAFETY: from offset 4, `Key6` is `Key<[u32; 4]>` (both `repr(C)`: a u32, then [u32; 4];
    // alignment 4 at offset 4 of an 8-aligned struct), and the pointer is derived from the
    // whole struct, which outlives the lookup.
    let key = unsafe {
        &*core::ptr::addr_of!(k)
            .cast::<u8>()
            .add(4)
            .cast::<Key<[u32; 4]>>()
    };
    EAM6.get(key)
}

/// An EAM4 trie entry as a mapping. A `pool6_ipv4` prefix is written by the daemon as
/// entries that give pool6 + the address by the EAM arithmetic itself (see `EAM_F_POOL6`):
/// a branch here would stay live across the whole translation and double the paths the
/// verifier follows.
#[inline(always)]
fn entry(e: &'static EamToV6) -> To6 {
    To6::Eam(e)
}

impl To6 {
    /// A real EAM entry (RFC 7757), not a `pool6_ipv4` prefix (whose IPv6 side is pool6 itself,
    /// so an IPv6 host writing to it must not hairpin).
    #[inline(always)]
    pub fn is_eam(self) -> bool {
        matches!(self, To6::Eam(e) if e.flags & EAM_F_POOL6 == 0)
    }
}

/// How an IPv4 source appears on the IPv6 side: its EAM entry, else embedded in pool6 (not
/// a non-global address under the Well-Known Prefix, RFC 6052 section 3.1: it has none).
#[inline(always)]
pub fn v4_src(cfg: &Config, a: [u8; 4]) -> Option<To6> {
    if in_span4(&cfg.eam4_span, a)
        && let Some(e) = EAM4.get(Key::new(32, a))
        && e.flags & EAM_F_LOCAL == 0
    {
        return Some(entry(e));
    }
    (RFC6052_LENGTHS.contains(&cfg.pool6_len) && wkp_allows(cfg, a)).then_some(To6::Pool6)
}

/// RFC 6052 section 3.1: whether pool6 may carry `a` (anything, unless pool6 is the
/// Well-Known Prefix and `a` is not global).
#[inline(always)]
pub fn wkp_allows(cfg: &Config, a: [u8; 4]) -> bool {
    cfg.flags2 & CONFIG_F2_POOL6_WKP == 0 || wkp_may_embed(a)
}

/// Whether the IPv6 address `a`, which maps to `a4`, is an IPv4 address under pool6 that the
/// Well-Known Prefix must not carry (RFC 6052 section 3.1: such packets are dropped).
#[inline(always)]
pub fn wkp_refuses(cfg: &Config, a: &[u8; 16], a4: [u8; 4]) -> bool {
    !wkp_allows(cfg, a4) && prefix_matches(a, &cfg.pool6, cfg.pool6_len)
}

/// The IPv6 address of `a` under mapping `m`.
#[inline(always)]
pub fn to6(cfg: &Config, m: To6, a: [u8; 4]) -> [u8; 16] {
    match m {
        To6::Eam(e) => eam_to_v6(a, e),
        // `v4_src` only returns Pool6 for a valid length, and a `pool6_ipv4` prefix needs
        // pool6 (the daemon's validation), so `embed` cannot fail here.
        To6::Pool6 => embed(&cfg.pool6, cfg.pool6_len, a).unwrap_or([0; 16]),
    }
}

/// [`to6`], as the two halves of the address, big-endian numbers (`packet::write_halves`
/// writes them).
#[inline(always)]
pub fn to6_halves(cfg: &Config, m: To6, a: [u8; 4]) -> (u64, u64) {
    match m {
        To6::Eam(e) => eam_to_v6_halves(a, e),
        To6::Pool6 => embed_halves(&cfg.pool6, cfg.pool6_len, a).unwrap_or((0, 0)),
    }
}
