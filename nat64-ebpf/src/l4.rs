//! Transport checksum fix-ups shared by both directions. TCP and UDP keep their pseudo-header
//! length and protocol across the translation, so only the address words change (RFC 7915
//! sections 4.5 and 5.5: the checksum is updated for the new pseudo-header).

use crate::frame::Frame;
use nat64_common::{
    DropReason,
    checksum::{self, is_partial, update, update_partial},
};

use crate::packet::{
    IPPROTO_TCP, IPPROTO_UDP, TCP_CSUM_OFF, UDP_CSUM_OFF, read, sum_range, write_u16,
};

/// The address part of the pseudo-header before and after translation, and what stays.
pub struct PseudoDelta {
    /// Sum of the old source and destination address words.
    pub old_addrs: u32,
    /// Sum of the new source and destination address words.
    pub new_addrs: u32,
    /// Transport length plus protocol number: identical in both pseudo-headers.
    pub len_proto: u32,
    /// Stateful NAT64: the port word the binding replaces and its replacement (both 0 when no
    /// port changes). Written to the packet before `fix_checksum` runs.
    pub old_port: u32,
    pub new_port: u32,
}

/// What to do with a UDP datagram that has no checksum (zero).
pub enum ZeroUdp {
    /// Keep it: IPv6 to IPv4, where "no checksum" is legal.
    Keep,
    /// Compute it over the `len` bytes of the datagram: IPv4 to IPv6, unfragmented (IPv6
    /// requires one; RFC 7915 section 4.5 says a stateless translator should compute it).
    Compute { len: usize },
    /// Drop it: IPv4 to IPv6, fragmented, where the rest of the datagram is out of reach
    /// (section 4.5).
    Drop,
}

/// Rewrites the checksum of a TCP or UDP header at `l4` for the new pseudo-header; `zero_udp`
/// says what a zero UDP checksum becomes. Whether the ingress interface may deliver partial
/// checksums (a hash lookup) is asked only of a field that looks like one.
#[inline(always)]
pub fn fix_checksum(
    ctx: &impl Frame,
    proto: u8,
    l4: usize,
    d: &PseudoDelta,
    zero_udp: ZeroUdp,
) -> Result<(), DropReason> {
    let off = match proto {
        IPPROTO_TCP => l4 + TCP_CSUM_OFF,
        IPPROTO_UDP => l4 + UDP_CSUM_OFF,
        _ => return Ok(()),
    };
    let c = u16::from_be_bytes(read::<[u8; 2]>(ctx, off).ok_or(DropReason::Truncated)?);
    if proto == IPPROTO_UDP && c == 0 {
        return match zero_udp {
            ZeroUdp::Keep => Ok(()),
            ZeroUdp::Drop => Err(DropReason::UdpZeroChecksum),
            ZeroUdp::Compute { len } => {
                // The datagram with its zero checksum field, plus the new pseudo-header
                // (RFC 8200 section 8.1); a computed zero is sent as all ones (RFC 768).
                let data = sum_range(ctx, l4, len).ok_or(DropReason::Truncated)?;
                let mut n = !checksum::fold(data + d.new_addrs + d.len_proto);
                if n == 0 {
                    n = 0xffff;
                }
                write_u16(ctx, off, n).ok_or(DropReason::Truncated)
            }
        };
    }
    write_u16(ctx, off, updated(ctx, proto, c, d, false)).ok_or(DropReason::Truncated)
}

/// The new value of the TCP or UDP checksum field `c` (not a UDP zero) for the pseudo-header
/// change `d`. A partial checksum covers only the pseudo-header (the port is summed later, by
/// whoever completes it); a full one covers the port too. A field that looks partial is taken
/// for one where the interface may deliver them, or where `partial` says it is one (a GSO
/// aggregate's seed).
#[inline(always)]
pub fn updated(ctx: &impl Frame, proto: u8, c: u16, d: &PseudoDelta, partial: bool) -> u16 {
    let mut n = if is_partial(c, d.old_addrs + d.len_proto)
        && (partial || crate::iface::partial_checksums(ctx))
    {
        update_partial(c, d.old_addrs, d.new_addrs)
    } else {
        update(c, d.old_addrs + d.old_port, d.new_addrs + d.new_port)
    };
    // RFC 768: a computed UDP checksum of zero is transmitted as all ones.
    if proto == IPPROTO_UDP && n == 0 {
        n = 0xffff;
    }
    n
}
