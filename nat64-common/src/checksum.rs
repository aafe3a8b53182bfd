//! Internet checksum arithmetic (RFC 1071) and incremental update (RFC 1624).
//!
//! Sums are kept in a `u32` accumulator of big-endian 16-bit words and folded at the end, so
//! adding a few dozen words can never overflow.

/// Folds a 32-bit accumulator into a 16-bit one's complement sum (RFC 1071 section 4.1).
#[inline(always)]
pub const fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Sum of the eight 16-bit words of an IPv6 address.
#[inline(always)]
pub fn sum16(a: &[u8; 16]) -> u32 {
    let mut s = 0u32;
    let mut i = 0;
    while i < 16 {
        s += u16::from_be_bytes([a[i], a[i + 1]]) as u32;
        i += 2;
    }
    s
}

/// [`sum16`] of an IPv6 address given as its two halves (big-endian numbers, bytes 0-7 and
/// 8-15): the same value, without building the sixteen bytes first.
#[inline(always)]
pub fn sum_halves(hi: u64, lo: u64) -> u32 {
    let w =
        |v: u64| ((v >> 48) + ((v >> 32) & 0xffff) + ((v >> 16) & 0xffff) + (v & 0xffff)) as u32;
    w(hi) + w(lo)
}

/// Sum of the two 16-bit words of an IPv4 address.
#[inline(always)]
pub fn sum4(a: &[u8; 4]) -> u32 {
    u16::from_be_bytes([a[0], a[1]]) as u32 + u16::from_be_bytes([a[2], a[3]]) as u32
}

/// Incremental update of a checksum field (RFC 1624 equation 3, `HC' = ~(~HC + ~m + m')`),
/// generalised to a set of removed words summing to `removed` and added words summing to
/// `added`. Equation 3 is the form that never produces the -0 pitfall of equation 2.
#[inline(always)]
pub fn update(check: u16, removed: u32, added: u32) -> u16 {
    let s = (!check) as u32 + (!fold(removed)) as u32 + fold(added) as u32;
    !fold(s)
}

/// Update of a field that holds a *partial* checksum instead of a full one.
///
/// A locally generated packet with checksum offload (`CHECKSUM_PARTIAL`, common on veth)
/// carries only the folded pseudo-header sum, not complemented; whoever finishes the checksum
/// later adds the transport bytes and complements. Changing the pseudo-header therefore moves
/// that sum itself by `added - removed`, the opposite sign of [`update`]. This mirrors the
/// kernel's `inet_proto_csum_replace4()` for `CHECKSUM_PARTIAL`.
#[inline(always)]
pub fn update_partial(field: u16, removed: u32, added: u32) -> u16 {
    fold(field as u32 + (!fold(removed)) as u32 + fold(added) as u32)
}

/// Whether a transport checksum field looks like a partial checksum: it equals the folded sum
/// of the pseudo-header (`pseudo`). A full checksum matches by chance with probability 2^-16,
/// which is why the dataplane only asks on interfaces where partial checksums can arrive.
#[inline(always)]
pub fn is_partial(field: u16, pseudo: u32) -> bool {
    field == fold(pseudo)
}

/// The checksum of a 20-byte IPv4 header whose checksum field (bytes 10-11) is ignored.
#[inline(always)]
pub fn ipv4_header(h: &[u8; 20]) -> u16 {
    let mut s = 0u32;
    let mut i = 0;
    while i < 20 {
        if i != 10 {
            s += u16::from_be_bytes([h[i], h[i + 1]]) as u32;
        }
        i += 2;
    }
    !fold(s)
}

/// The full Internet checksum of `data` with `initial` added (for a pseudo-header sum). Not used
/// on the packet path: it is the from-scratch reference the tests compare against.
pub fn compute(initial: u32, data: &[u8]) -> u16 {
    let mut s = initial as u64;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        s += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        s += (*last as u64) << 8;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn sum_halves_is_sum16_of_the_address(a in any::<[u8; 16]>()) {
            let hi = u64::from_be_bytes(a[..8].try_into().unwrap());
            let lo = u64::from_be_bytes(a[8..].try_into().unwrap());
            prop_assert_eq!(sum_halves(hi, lo), sum16(&a));
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(compute(0, &data), !0xddf2);
    }

    #[test]
    fn ipv4_header_known_value() {
        // A header from a capture: checksum b861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header(&h), 0xb861);
    }

    #[test]
    fn well_known_prefix_is_checksum_neutral() {
        // RFC 6052 section 2.1 chose 64:ff9b::/96 so that its words sum to 0xffff (one's
        // complement zero): embedding an IPv4 address under it leaves the sum unchanged.
        assert_eq!(fold(sum16(&crate::addr::WELL_KNOWN_PREFIX)), 0xffff);
    }

    /// A partial checksum (pseudo-header sum only) updated for new addresses and then
    /// completed over the data equals the full checksum computed for the new addresses.
    #[test]
    fn partial_update_then_completion_is_correct() {
        let old_addrs = sum16(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x02,
        ]) + sum16(&crate::addr::WELL_KNOWN_PREFIX);
        let new_addrs = sum4(&[198, 51, 100, 2]) + sum4(&[0, 0, 0, 0]);
        let len_proto = 24u32 + 6;
        let data: [u8; 24] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        let partial = fold(old_addrs + len_proto);
        assert!(is_partial(partial, old_addrs + len_proto));
        let moved = update_partial(partial, old_addrs, new_addrs);
        // Completion: sum the data with the field (data here has the field zeroed) and invert.
        let completed = compute(moved as u32, &data);
        assert_eq!(completed, compute(new_addrs + len_proto, &data));
    }

    proptest! {
        #[test]
        fn partial_update_matches_full_recompute(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            old in any::<[u8; 16]>(), new in any::<[u8; 4]>(), len_proto in 0u32..0x1_0000,
        ) {
            let old_s = sum16(&old);
            let new_s = sum4(&new);
            let moved = update_partial(fold(old_s + len_proto), old_s, new_s);
            let completed = compute(moved as u32, &data);
            let expected = compute(new_s + len_proto, &data);
            // One's complement has two zeros (0x0000 and 0xffff); both verify the same.
            let norm = |x: u16| if x == 0xffff { 0 } else { x };
            prop_assert_eq!(norm(completed), norm(expected));
        }

        /// Replacing words in a buffer and updating its checksum incrementally gives the same
        /// result as recomputing it from scratch.
        #[test]
        fn incremental_matches_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 40..200),
            new16 in any::<[u8; 16]>(),
            new4 in any::<[u8; 4]>(),
        ) {
            let len = data.len() & !1;
            data.truncate(len);
            let before = compute(0, &data);
            let old16: [u8; 16] = data[0..16].try_into().unwrap();
            let old4: [u8; 4] = data[16..20].try_into().unwrap();
            data[0..16].copy_from_slice(&new16);
            data[16..20].copy_from_slice(&new4);
            let updated = update(before, sum16(&old16) + sum4(&old4), sum16(&new16) + sum4(&new4));
            let recomputed = compute(0, &data);
            // One's complement has two zeros; both must verify, so compare by verification.
            let mut with = data.clone();
            with.extend_from_slice(&updated.to_be_bytes());
            prop_assert_eq!(compute(0, &with), 0, "updated {:04x} recomputed {:04x}", updated, recomputed);
        }

        #[test]
        fn header_checksum_verifies(mut h in any::<[u8; 20]>()) {
            let c = ipv4_header(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let v: Vec<u8> = h.to_vec();
            prop_assert_eq!(compute(0, &v), 0);
        }
    }
}
