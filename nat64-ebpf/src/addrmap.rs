//! Which addresses are ours, and what they become: EAM entries (RFC 7757) first, then the
//! RFC 6052 prefix (pool6). RFC 7757 section 3.3 gives the EAM table precedence.

use aya_ebpf::maps::lpm_trie::Key;
use nat64_common::{
    addr::{eam_to_v4, eam_to_v6, embed, extract, prefix_matches},
    maps::Config,
};

use crate::maps::{EAM4, EAM6};

/// The IPv4 address an IPv6 address stands for, or `None` if it stands for none.
/// Used for the destination (which decides whether a packet is ours at all) and the source of
/// 6-to-4 packets.
#[inline(always)]
pub fn v6_to_v4(cfg: &Config, a: &[u8; 16]) -> Option<[u8; 4]> {
    if let Some(e) = EAM6.get(Key::new(128, *a)) {
        return Some(eam_to_v4(a, e));
    }
    if prefix_matches(a, &cfg.pool6, cfg.pool6_len) {
        return extract(a, cfg.pool6_len);
    }
    None
}

/// The IPv6 host an IPv4 destination stands for. Only EAM entries make an IPv4 destination
/// ours: an IPv4 address represents an IPv6 host only when the operator mapped it, so the
/// node's own IPv4 traffic is never captured by pool6.
#[inline(always)]
pub fn v4_dst_to_v6(a: [u8; 4]) -> Option<[u8; 16]> {
    EAM4.get(Key::new(32, a)).map(|e| eam_to_v6(a, e))
}

/// How an IPv4 source appears on the IPv6 side: its EAM entry, else embedded in pool6.
#[inline(always)]
pub fn v4_src_to_v6(cfg: &Config, a: [u8; 4]) -> Option<[u8; 16]> {
    if let Some(e) = EAM4.get(Key::new(32, a)) {
        return Some(eam_to_v6(a, e));
    }
    if cfg.pool6_len == 0 {
        return None;
    }
    embed(&cfg.pool6, cfg.pool6_len, a)
}
