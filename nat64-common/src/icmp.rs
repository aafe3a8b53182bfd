//! ICMP translation tables (RFC 7915 sections 4.2 and 5.2) and the MTU arithmetic of Packet Too
//! Big / Fragmentation Needed. Pure functions: the dataplane calls them, host tests cover every
//! row.

use crate::DropReason;

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
pub const ICMP_PARAM_PROBLEM: u8 = 12;
pub const ICMP_FRAG_NEEDED: u8 = 4;
/// RFC 1812 section 5.2.7.1: Destination Unreachable, Communication Administratively
/// Prohibited.
pub const ICMP_ADMIN_PROHIBITED: u8 = 13;
/// Destination Unreachable code: Source Route Failed (RFC 792).
pub const ICMP_SOURCE_ROUTE_FAILED: u8 = 5;
/// RFC 1812 section 4.3.2.3: the most bytes an ICMPv4 error may take.
pub const ICMP4_ERROR_MAX: usize = 576;

pub const ICMPV6_DEST_UNREACH: u8 = 1;
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
pub const ICMPV6_TIME_EXCEEDED: u8 = 3;
pub const ICMPV6_PARAM_PROBLEM: u8 = 4;
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
pub const ICMPV6_ECHO_REPLY: u8 = 129;

/// IPv6 minimum link MTU (RFC 8200 section 5).
pub const IPV6_MIN_MTU: u32 = 1280;

/// What an ICMP message becomes in the other family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Translation {
    /// An informational message (echo): new type, same code and rest of header.
    Info { ty: u8 },
    /// An error: new type, code and rest-of-header word; the packet inside must be translated.
    Error { ty: u8, code: u8, rest: [u8; 4] },
    /// Packet Too Big / Fragmentation Needed: an error whose MTU the caller computes with
    /// [`mtu4_from_ptb`] or [`mtu6_from_frag_needed`] and the interface MTUs it knows.
    TooBig { ty: u8, code: u8, mtu: u32 },
}

/// Whether an ICMPv4 type is an error RFC 7915 section 4.2 translates (Destination
/// Unreachable, Time Exceeded, Parameter Problem), the kind that may come from a router with
/// no IPv6 mapping (RFC 6791).
#[inline(always)]
pub const fn is_icmpv4_error(ty: u8) -> bool {
    matches!(
        ty,
        ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED | ICMP_PARAM_PROBLEM
    )
}

/// Whether an ICMPv6 type is an error message (RFC 4443 section 2.1: types 0 to 127).
#[inline(always)]
pub const fn is_icmpv6_error(ty: u8) -> bool {
    ty < 128
}

const NO: u8 = 0xff;

/// RFC 7915 section 4.2, Figure 3 ("pointer" of an ICMPv4 Parameter Problem, indexed by the
/// IPv4 header offset, to the IPv6 header offset); `NO` means no counterpart.
const PTR_4TO6: [u8; 20] = [
    0, 1, 4, 4, // version/IHL, TOS, total length
    NO, NO, NO, NO, // identification, flags/offset
    7, 6, NO, NO, // TTL, protocol, header checksum
    8, 8, 8, 8, // source address
    24, 24, 24, 24, // destination address
];

/// Whether an ICMPv6 error type carries RFC 4884's length attribute (section 4.2: Destination
/// Unreachable and Time Exceeded, in the first byte of the header's second word); the
/// layout of a translated error with one is `rfc4884`'s.
#[inline(always)]
pub const fn has_length6(ty6: u8) -> bool {
    ty6 == ICMPV6_DEST_UNREACH || ty6 == ICMPV6_TIME_EXCEEDED
}

/// Whether an ICMPv4 error loses any RFC 4884 extension when translated: the ones that become
/// an ICMPv6 type without a length attribute (Protocol Unreachable and Parameter Problem
/// become Parameter Problem, Fragmentation Needed becomes Packet Too Big; RFC 7915 section
/// 4.2).
#[inline(always)]
pub const fn drops_extension4(ty: u8, code: u8) -> bool {
    ty == ICMP_PARAM_PROBLEM || (ty == ICMP_DEST_UNREACH && (code == 2 || code == ICMP_FRAG_NEEDED))
}

/// ICMPv4 to ICMPv6 (RFC 7915 section 4.2). `rest` is the second 32-bit word of the ICMPv4
/// header (unused, pointer or MTU).
#[inline(always)]
pub fn icmp4_to_icmp6(ty: u8, code: u8, rest: [u8; 4]) -> Result<Translation, DropReason> {
    use Translation::*;
    let unreach = |code6: u8| {
        Ok(Error {
            ty: ICMPV6_DEST_UNREACH,
            code: code6,
            rest: [0; 4],
        })
    };
    match ty {
        ICMP_ECHO_REQUEST => Ok(Info {
            ty: ICMPV6_ECHO_REQUEST,
        }),
        ICMP_ECHO_REPLY => Ok(Info {
            ty: ICMPV6_ECHO_REPLY,
        }),
        ICMP_DEST_UNREACH => match code {
            // Net/host unreachable, source route failed, net/host unknown, host isolated,
            // net/host unreachable for TOS: "No route to destination".
            0 | 1 | 5 | 6 | 7 | 8 | 11 | 12 => unreach(0),
            // Protocol unreachable: Parameter Problem, unrecognised Next Header, pointing at
            // the Next Header field (offset 6).
            2 => Ok(Error {
                ty: ICMPV6_PARAM_PROBLEM,
                code: 1,
                rest: [0, 0, 0, 6],
            }),
            // Port unreachable.
            3 => unreach(4),
            // Fragmentation needed: Packet Too Big, MTU adjusted by the caller.
            ICMP_FRAG_NEEDED => Ok(TooBig {
                ty: ICMPV6_PACKET_TOO_BIG,
                code: 0,
                mtu: u16::from_be_bytes([rest[2], rest[3]]) as u32,
            }),
            // Administratively prohibited (net, host, communication) and precedence cutoff:
            // "Communication with destination administratively prohibited".
            9 | 10 | 13 | 15 => unreach(1),
            // Host precedence violation (14) and unknown codes: silently drop.
            _ => Err(DropReason::IcmpUntranslatable),
        },
        ICMP_TIME_EXCEEDED => Ok(Error {
            ty: ICMPV6_TIME_EXCEEDED,
            code,
            rest: [0; 4],
        }),
        ICMP_PARAM_PROBLEM => match code {
            // Pointer indicates the error, bad length: translate the pointer (Figure 3).
            0 | 2 => {
                let ptr = rest[0] as usize;
                if ptr >= PTR_4TO6.len() || PTR_4TO6[ptr] == NO {
                    return Err(DropReason::IcmpUntranslatable);
                }
                Ok(Error {
                    ty: ICMPV6_PARAM_PROBLEM,
                    code: 0,
                    rest: [0, 0, 0, PTR_4TO6[ptr]],
                })
            }
            // Missing a required option, and anything else: silently drop.
            _ => Err(DropReason::IcmpUntranslatable),
        },
        // Information request/reply, timestamp, address mask, router advertisement and
        // solicitation, source quench, redirect, alternate host address: obsolete or
        // single-hop, silently dropped (section 4.2).
        _ => Err(DropReason::IcmpUntranslatable),
    }
}

/// The IPv4 header offset for an ICMPv6 Parameter Problem pointer (RFC 7915 section 5.2,
/// Figure 6), or `None` where the field has no IPv4 counterpart.
#[inline(always)]
pub const fn ptr_6to4(ptr: u32) -> Option<u8> {
    match ptr {
        0 => Some(0),     // version / traffic class -> version/IHL
        1 => Some(1),     // traffic class / flow label -> TOS
        2 | 3 => None,    // flow label
        4 | 5 => Some(2), // payload length -> total length
        6 => Some(9),     // next header -> protocol
        7 => Some(8),     // hop limit -> TTL
        8..=23 => Some(12),
        24..=39 => Some(16),
        _ => None,
    }
}

/// ICMPv6 to ICMPv4 (RFC 7915 section 5.2). `rest` is the second 32-bit word of the ICMPv6
/// header (unused, pointer or MTU).
#[inline(always)]
pub fn icmp6_to_icmp4(ty: u8, code: u8, rest: [u8; 4]) -> Result<Translation, DropReason> {
    use Translation::*;
    let unreach = |code4: u8| {
        Ok(Error {
            ty: ICMP_DEST_UNREACH,
            code: code4,
            rest: [0; 4],
        })
    };
    match ty {
        ICMPV6_ECHO_REQUEST => Ok(Info {
            ty: ICMP_ECHO_REQUEST,
        }),
        ICMPV6_ECHO_REPLY => Ok(Info {
            ty: ICMP_ECHO_REPLY,
        }),
        ICMPV6_DEST_UNREACH => match code {
            // No route, beyond scope of source address, address unreachable: host unreachable.
            0 | 2 | 3 => unreach(1),
            // Administratively prohibited: communication with host administratively prohibited.
            1 => unreach(10),
            // Port unreachable.
            4 => unreach(3),
            _ => Err(DropReason::IcmpUntranslatable),
        },
        ICMPV6_PACKET_TOO_BIG => Ok(TooBig {
            ty: ICMP_DEST_UNREACH,
            code: ICMP_FRAG_NEEDED,
            mtu: u32::from_be_bytes(rest),
        }),
        ICMPV6_TIME_EXCEEDED => Ok(Error {
            ty: ICMP_TIME_EXCEEDED,
            code,
            rest: [0; 4],
        }),
        ICMPV6_PARAM_PROBLEM => match code {
            // Erroneous header field: Parameter Problem with the pointer translated.
            0 => match ptr_6to4(u32::from_be_bytes(rest)) {
                Some(p) => Ok(Error {
                    ty: ICMP_PARAM_PROBLEM,
                    code: 0,
                    rest: [p, 0, 0, 0],
                }),
                None => Err(DropReason::IcmpUntranslatable),
            },
            // Unrecognised next header: protocol unreachable.
            1 => unreach(2),
            // Unrecognised IPv6 option and anything else: silently drop.
            _ => Err(DropReason::IcmpUntranslatable),
        },
        // MLD, neighbour discovery, router renumbering and the rest are single-hop or have no
        // counterpart: silently dropped (section 5.2).
        _ => Err(DropReason::IcmpUntranslatable),
    }
}

/// RFC 7915 section 5.2: the MTU of a Fragmentation Needed made from a Packet Too Big, the
/// advertised IPv6 MTU minus the 20 bytes the IPv4 header saves, and no more than the
/// ingress (IPv6-side) link allows for an IPv4 packet that will grow by 20 bytes. `in_mtu` 0
/// means unknown.
#[inline(always)]
pub fn mtu4_from_ptb(mtu6: u32, in_mtu: u32) -> u16 {
    let mut m = mtu6.saturating_sub(20);
    if in_mtu != 0 && in_mtu.saturating_sub(20) < m {
        m = in_mtu.saturating_sub(20);
    }
    if m > 0xffff { 0xffff } else { m as u16 }
}

/// RFC 1191 section 7: plateaus for guessing the MTU when a router reports zero.
pub const PLATEAUS: [u16; 11] = [
    65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68,
];

/// RFC 7915 section 4.2: the MTU of a Packet Too Big made from a Fragmentation Needed: the
/// IPv4 MTU plus 20, at most the ingress (IPv4-side) MTU plus 20, never below 1280. A router
/// that reports zero (pre-RFC 1191) gets the plateau below the length of the packet it quoted.
#[inline(always)]
pub fn mtu6_from_frag_needed(mtu4: u32, quoted_tot_len: u16, in_mtu: u32) -> u32 {
    let mut m = mtu4;
    if m == 0 {
        let mut i = 0;
        while i < PLATEAUS.len() {
            if PLATEAUS[i] < quoted_tot_len {
                m = PLATEAUS[i] as u32;
                break;
            }
            i += 1;
        }
    }
    let mut m = m + 20;
    if in_mtu != 0 && in_mtu + 20 < m {
        m = in_mtu + 20;
    }
    if m < IPV6_MIN_MTU { IPV6_MIN_MTU } else { m }
}

#[cfg(test)]
mod tests {
    use super::{Translation::*, *};

    #[test]
    fn rfc4884_length_in_two_icmpv6_types() {
        assert!(has_length6(ICMPV6_DEST_UNREACH) && has_length6(ICMPV6_TIME_EXCEEDED));
        assert!(!has_length6(ICMPV6_PACKET_TOO_BIG) && !has_length6(ICMPV6_PARAM_PROBLEM));
        // The ICMPv4 errors that become those two lose their extension.
        for (ty, code) in [(3, 2), (3, 4), (12, 0), (12, 2)] {
            assert!(drops_extension4(ty, code), "{ty}/{code}");
            let t = icmp4_to_icmp6(ty, code, [0; 4]);
            assert!(matches!(t, Ok(Error { ty, .. } | TooBig { ty, .. }) if !has_length6(ty)));
        }
        for (ty, code) in [(3, 0), (3, 1), (3, 3), (3, 13), (11, 0), (11, 1)] {
            assert!(!drops_extension4(ty, code), "{ty}/{code}");
            let t = icmp4_to_icmp6(ty, code, [0; 4]);
            assert!(
                matches!(t, Ok(Error { ty, .. }) if has_length6(ty)),
                "{ty}/{code}"
            );
        }
    }

    #[test]
    fn echo_both_ways() {
        assert_eq!(icmp4_to_icmp6(8, 0, [0; 4]), Ok(Info { ty: 128 }));
        assert_eq!(icmp4_to_icmp6(0, 0, [0; 4]), Ok(Info { ty: 129 }));
        assert_eq!(icmp6_to_icmp4(128, 0, [0; 4]), Ok(Info { ty: 8 }));
        assert_eq!(icmp6_to_icmp4(129, 0, [0; 4]), Ok(Info { ty: 0 }));
    }

    #[test]
    fn rfc7915_4_2_destination_unreachable_codes() {
        let expect6 = |c4: u8| icmp4_to_icmp6(3, c4, [0; 4]);
        for c in [0, 1, 5, 6, 7, 8, 11, 12] {
            assert_eq!(
                expect6(c),
                Ok(Error {
                    ty: 1,
                    code: 0,
                    rest: [0; 4]
                }),
                "code {c}"
            );
        }
        for c in [9, 10, 13, 15] {
            assert_eq!(
                expect6(c),
                Ok(Error {
                    ty: 1,
                    code: 1,
                    rest: [0; 4]
                }),
                "code {c}"
            );
        }
        assert_eq!(
            expect6(2),
            Ok(Error {
                ty: 4,
                code: 1,
                rest: [0, 0, 0, 6]
            })
        );
        assert_eq!(
            expect6(3),
            Ok(Error {
                ty: 1,
                code: 4,
                rest: [0; 4]
            })
        );
        assert_eq!(
            icmp4_to_icmp6(3, 4, [0, 0, 0x05, 0xdc]),
            Ok(TooBig {
                ty: 2,
                code: 0,
                mtu: 1500
            })
        );
        assert_eq!(expect6(14), Err(DropReason::IcmpUntranslatable));
        assert_eq!(expect6(16), Err(DropReason::IcmpUntranslatable));
    }

    #[test]
    fn rfc7915_4_2_other_types() {
        // The unused bytes are not carried (RFC 4884's length is the error path's, see
        // `rfc4884`).
        assert_eq!(
            icmp4_to_icmp6(11, 1, [9; 4]),
            Ok(Error {
                ty: 3,
                code: 1,
                rest: [0; 4]
            })
        );
        for ty in [4, 5, 6, 9, 10, 13, 14, 15, 16, 17, 18, 42] {
            assert_eq!(
                icmp4_to_icmp6(ty, 0, [0; 4]),
                Err(DropReason::IcmpUntranslatable),
                "type {ty}"
            );
        }
        assert_eq!(
            icmp4_to_icmp6(12, 1, [0; 4]),
            Err(DropReason::IcmpUntranslatable)
        );
    }

    #[test]
    fn rfc7915_figure_3_pointers() {
        let expected: [Option<u8>; 20] = [
            Some(0),
            Some(1),
            Some(4),
            Some(4),
            None,
            None,
            None,
            None,
            Some(7),
            Some(6),
            None,
            None,
            Some(8),
            Some(8),
            Some(8),
            Some(8),
            Some(24),
            Some(24),
            Some(24),
            Some(24),
        ];
        for (p, e) in expected.iter().enumerate() {
            for code in [0, 2] {
                let got = icmp4_to_icmp6(12, code, [p as u8, 0, 0, 0]);
                match e {
                    Some(v) => assert_eq!(
                        got,
                        Ok(Error {
                            ty: 4,
                            code: 0,
                            rest: [0, 0, 0, *v]
                        }),
                        "ptr {p}"
                    ),
                    None => assert_eq!(got, Err(DropReason::IcmpUntranslatable), "ptr {p}"),
                }
            }
        }
        assert_eq!(
            icmp4_to_icmp6(12, 0, [20, 0, 0, 0]),
            Err(DropReason::IcmpUntranslatable)
        );
    }

    #[test]
    fn rfc7915_5_2_destination_unreachable_and_parameter_problem() {
        let to4 = |ty, code, rest| icmp6_to_icmp4(ty, code, rest);
        for c in [0, 2, 3] {
            assert_eq!(
                to4(1, c, [0; 4]),
                Ok(Error {
                    ty: 3,
                    code: 1,
                    rest: [0; 4]
                }),
                "code {c}"
            );
        }
        assert_eq!(
            to4(1, 1, [0; 4]),
            Ok(Error {
                ty: 3,
                code: 10,
                rest: [0; 4]
            })
        );
        assert_eq!(
            to4(1, 4, [0; 4]),
            Ok(Error {
                ty: 3,
                code: 3,
                rest: [0; 4]
            })
        );
        for c in [5, 6, 7] {
            assert_eq!(
                to4(1, c, [0; 4]),
                Err(DropReason::IcmpUntranslatable),
                "code {c}"
            );
        }
        assert_eq!(
            to4(2, 0, 1400u32.to_be_bytes()),
            Ok(TooBig {
                ty: 3,
                code: 4,
                mtu: 1400
            })
        );
        assert_eq!(
            to4(3, 0, [0; 4]),
            Ok(Error {
                ty: 11,
                code: 0,
                rest: [0; 4]
            })
        );
        assert_eq!(
            to4(4, 1, [0; 4]),
            Ok(Error {
                ty: 3,
                code: 2,
                rest: [0; 4]
            })
        );
        assert_eq!(to4(4, 2, [0; 4]), Err(DropReason::IcmpUntranslatable));
        // Figure 6.
        let ptr = |p: u32| to4(4, 0, p.to_be_bytes());
        for (p6, p4) in [
            (0u32, 0u8),
            (1, 1),
            (4, 2),
            (5, 2),
            (6, 9),
            (7, 8),
            (8, 12),
            (23, 12),
            (24, 16),
            (39, 16),
        ] {
            assert_eq!(
                ptr(p6),
                Ok(Error {
                    ty: 12,
                    code: 0,
                    rest: [p4, 0, 0, 0]
                }),
                "ptr {p6}"
            );
        }
        for p6 in [2u32, 3, 40, 1000] {
            assert_eq!(ptr(p6), Err(DropReason::IcmpUntranslatable), "ptr {p6}");
        }
        // MLD and neighbour discovery are never translated.
        for ty in [130, 131, 132, 133, 134, 135, 136, 137, 143, 200] {
            assert_eq!(
                to4(ty, 0, [0; 4]),
                Err(DropReason::IcmpUntranslatable),
                "type {ty}"
            );
        }
    }

    #[test]
    fn packet_too_big_mtus() {
        assert_eq!(mtu4_from_ptb(1400, 0), 1380);
        assert_eq!(
            mtu4_from_ptb(1500, 1400),
            1380,
            "the IPv6-side link is narrower"
        );
        assert_eq!(mtu4_from_ptb(9000, 1500), 1480);
        assert_eq!(mtu4_from_ptb(10, 0), 0);
        assert_eq!(mtu6_from_frag_needed(1400, 1500, 0), 1420);
        assert_eq!(mtu6_from_frag_needed(1400, 1500, 1300), 1320);
        assert_eq!(
            mtu6_from_frag_needed(576, 1500, 0),
            1280,
            "never below the IPv6 minimum"
        );
        // A pre-RFC 1191 router reports 0: the plateau below the quoted length is used.
        assert_eq!(mtu6_from_frag_needed(0, 1500, 0), 1492 + 20);
        assert_eq!(mtu6_from_frag_needed(0, 4000, 0), 2002 + 20);
        assert_eq!(mtu6_from_frag_needed(0, 1000, 0), 1280);
    }
}
