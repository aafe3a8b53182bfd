//! Stateful NAT64 (RFC 6146): the binding information base (BIB) as the dataplane and the
//! daemon share it, and the pure rules around it (port choice, timeouts, TCP state).
//!
//! A binding ties an IPv6 transport address (address, port or ICMP identifier, protocol) to an
//! IPv4 one from pool4. It lives in two hash maps, one keyed by each side, created together by
//! the dataplane on the first outbound packet and removed together by the daemon's sweeper.
//! Mapping is endpoint-independent (RFC 6146 section 3.5.1, RFC 4787 REQ-1, RFC 5382 REQ-1):
//! one IPv6 transport address keeps one IPv4 transport address while its binding lives. Each
//! remote IPv4 endpoint a binding talks to has a session of its own (RFC 6146 section 3.5),
//! with its TCP state and timer; filtering (who may make a session from the IPv4 side) is
//! endpoint-independent by default (RFC 4787 REQ-8, RFC 5382 REQ-3), address-dependent as an
//! option.

/// Transport protocols with bindings, as used in the keys (IANA numbers; ICMP is stored as
/// ICMPv4, whose identifier stands in for a port).
pub const BIB_TCP: u8 = 6;
pub const BIB_UDP: u8 = 17;
pub const BIB_ICMP: u8 = 1;

/// Default size of each BIB map when the configuration does not say.
pub const BIB_DEFAULT_MAX_ENTRIES: u32 = 65_536;

/// Key of the IPv6-side BIB map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bib6Key {
    pub addr6: [u8; 16],
    /// Port or ICMP identifier, network byte order.
    pub port6: [u8; 2],
    pub proto: u8,
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<Bib6Key>() == 20);

/// Key of the IPv4-side BIB map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bib4Key {
    pub addr4: [u8; 4],
    /// Port or ICMP identifier, network byte order.
    pub port4: [u8; 2],
    pub proto: u8,
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<Bib4Key>() == 8);

/// Key of the fragment table (stateful NAT64, IPv4 to IPv6): a fragmented datagram to pool4,
/// as its fragments all say (RFC 791: source, destination, protocol, identification).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src4: [u8; 4],
    pub dst4: [u8; 4],
    pub id: [u8; 2],
    pub proto: u8,
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<FragKey>() == 12);

/// Key of the outbound fragment table: an IPv6 datagram in fragments, by its source, the
/// IPv4 destination it translates to, the low half of its identification (the half its
/// IPv4 fragments carry) and its protocol. Its value is the pool4 address its first
/// fragment's binding has, for the later fragments, which carry no port (a static binding's
/// address need not be the one the client's /64 gets, nor a deterministic one).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frag6Key {
    pub src6: [u8; 16],
    pub dst4: [u8; 4],
    pub id: [u8; 2],
    pub proto: u8,
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<Frag6Key>() == 24);

/// Entries of the fragment table: datagrams whose later fragments may still come. An LRU
/// map: forgetting an old datagram costs only its late fragments.
pub const FRAG_MAX_ENTRIES: u32 = 16_384;

/// Key of the held-SYN table (RFC 6146 section 3.5.2.2, simultaneous open): an IPv4 SYN
/// that found no binding, by the remote endpoint that sent it and the pool4 address it went
/// to. An IPv6 SYN toward that remote endpoint from a client of that pool4 address (a
/// simultaneous open) looks its port up here. One SYN per remote endpoint and pool4 address
/// is held, as Jool holds one per remote endpoint: a repeated SYN is dropped.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SynKey {
    pub remote4: [u8; 4],
    pub pool4: [u8; 4],
    /// Network byte order.
    pub remote_port: [u8; 2],
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<SynKey>() == 12);

/// How many bytes of a held SYN are kept: an IPv4 header with options and a TCP header with
/// options (or an IPv6 header and a TCP header with most options). The ICMP error that
/// answers it quotes these (RFC 792 asks for the header and 8 bytes of data; a longer SYN,
/// one carrying data, is quoted cut).
pub const HELD_SYN_BYTES: usize = 128;
const _: () = assert!(HELD_SYN_BYTES.is_power_of_two());

/// Entries of the held-SYN table. A full table holds no more (the SYN is dropped, counted):
/// memory stays bounded whatever a scan of pool4 sends (RFC 6146 section 5.3 on resource
/// exhaustion).
pub const HELD_SYN_MAX_ENTRIES: u32 = 4096;

/// RFC 6146 section 3.5.2.2: an unsolicited SYN is held "for at least 6 seconds".
pub const SYN_HOLD_SECS: u64 = 6;

/// Value of the held-SYN table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldSyn {
    /// `bpf_ktime_get_coarse_ns` when it arrived.
    pub since_ns: u64,
    /// The pool4 port it went to (network order).
    pub pool_port: [u8; 2],
    /// How many bytes of `packet` are the SYN's, from its IPv4 header on.
    pub len: u16,
    pub _pad: [u8; 4],
    /// The SYN as it came (an IPv6 client's SYN that hairpinned to a pool4 address comes as
    /// its translation; the daemon translates it back for the ICMPv6 error).
    pub packet: [u8; HELD_SYN_BYTES],
}
const _: () = assert!(core::mem::size_of::<HeldSyn>() == 16 + HELD_SYN_BYTES);

impl HeldSyn {
    /// Whether its [`SYN_HOLD_SECS`] are over at `now_ns` (the same clock as `since_ns`).
    pub fn expired(&self, now_ns: u64) -> bool {
        now_ns.saturating_sub(self.since_ns) >= SYN_HOLD_SECS * 1_000_000_000
    }
}

/// Key of the session table (RFC 6146 section 3.5): a binding, by its pool4 transport
/// address, and one remote IPv4 endpoint it talks to. The remote's IPv6 representation is
/// its RFC 6052 address under pool6 (or its EAM), so the IPv4 endpoint names it on both
/// sides. ICMP query sessions have no remote port (section 3.5.3 keys them by the identifier,
/// which is the binding's): `remote_port` is zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub addr4: [u8; 4],
    /// Network byte order.
    pub port4: [u8; 2],
    pub proto: u8,
    pub _pad: u8,
    pub remote4: [u8; 4],
    /// Network byte order.
    pub remote_port: [u8; 2],
    pub _pad2: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<SessionKey>() == 16);

impl SessionKey {
    /// The key of the binding-side map (`BIB4`) of the session's binding.
    pub const fn bib4(&self) -> Bib4Key {
        Bib4Key {
            addr4: self.addr4,
            port4: self.port4,
            proto: self.proto,
            _pad: 0,
        }
    }
}

/// Value of the session table: the TCP state machine of RFC 6146 section 3.5.2.2, one
/// `TCP_*` state per side ([`tcp_next`], [`tcp_lifetime`]), and when the session last carried
/// a packet either way. UDP and ICMP sessions only have the time (sections 3.5.1 and 3.5.3).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionValue {
    pub tcp6: u8,
    pub tcp4: u8,
    pub _pad: [u8; 6],
    /// `bpf_ktime_get_coarse_ns` (CLOCK_MONOTONIC) of the last packet.
    pub last_ns: u64,
}
const _: () = assert!(core::mem::size_of::<SessionValue>() == 16);

/// Key of the peer table, kept only with address-dependent filtering (RFC 4787 section 5,
/// RFC 6146 section 3.5.1.2): a binding and an IPv4 address its client has sent to. An IPv4
/// packet on the binding from that address (from any port) may make a session; one from
/// another address may not. Its value is when a session last named the peer (the sweeper
/// removes peers with no session left).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerKey {
    pub addr4: [u8; 4],
    pub port4: [u8; 2],
    pub proto: u8,
    pub _pad: u8,
    pub remote4: [u8; 4],
}
const _: () = assert!(core::mem::size_of::<PeerKey>() == 12);

/// Default size of the session table: two remote endpoints per binding on average.
pub const SESSION_DEFAULT_MAX_ENTRIES: u32 = 2 * BIB_DEFAULT_MAX_ENTRIES;

/// Value of the IPv6-side map: the IPv4 transport address, and when the binding was last used
/// from the IPv6 side.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bib6Value {
    pub addr4: [u8; 4],
    pub port4: [u8; 2],
    /// The `TCP_*` state of the IPv6 side's first segment when the dataplane made the binding
    /// (a SYN: `TCP_SYN`); TCP state proper is the sessions' ([`SessionValue`]).
    pub tcp: u8,
    /// `BIB_F_*`.
    pub flags: u8,
    /// `bpf_ktime_get_coarse_ns` (CLOCK_MONOTONIC) of the last packet from the IPv6 side.
    pub last_ns: u64,
}
const _: () = assert!(core::mem::size_of::<Bib6Value>() == 16);

/// Value of the IPv4-side map: the IPv6 transport address, and when the binding was last used
/// from the IPv4 side.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bib4Value {
    pub addr6: [u8; 16],
    pub port6: [u8; 2],
    /// Unused (0): TCP state is the sessions' ([`SessionValue`]).
    pub tcp: u8,
    pub flags: u8,
    pub _pad: [u8; 4],
    /// Last packet from the IPv4 side (0: none yet).
    pub last_ns: u64,
}
const _: () = assert!(core::mem::size_of::<Bib4Value>() == 32);

/// A static binding from the configuration: never expires, and lets IPv4 hosts open
/// connections inward (RFC 6146 section 3.5.2.2).
pub const BIB_F_STATIC: u8 = 1 << 0;

/// A static binding from the configuration file (`[[stateful.static]]`), as opposed to one an
/// operator added at run time (`nat64d bindings add`): a restart or reload reconciles only
/// these with the file. The daemon's alone; the dataplane reads [`BIB_F_STATIC`].
pub const BIB_F_FILE: u8 = 1 << 2;

/// On an IPv4-side entry only: the binding has expired and its port is held down (RFC 6888
/// REQ-8): nothing is translated through it and no new binding can take the port until the
/// daemon removes the entry after the hold-down time.
pub const BIB_F_HELD: u8 = 1 << 1;

/// The key of the per-client binding count: the /64 of an IPv6 address (RFC 6888 REQ-4:
/// hosts rotate addresses within their /64, so a limit per address would be no limit).
pub const fn client_key(addr6: &[u8; 16]) -> [u8; 8] {
    [
        addr6[0], addr6[1], addr6[2], addr6[3], addr6[4], addr6[5], addr6[6], addr6[7],
    ]
}

/// TCP tracking per side, the RFC 6146 section 3.5.2 state machine of a session:
/// each side records how far it has gone (a SYN opens, an ACK after that establishes, a FIN
/// closes its half, a RST ends it), and the lifetime follows from both sides
/// ([`tcp_lifetime`]): the transitory timeout while opening, after a RST and once both halves
/// are closed (the RFC's V4 INIT / V6 INIT, TRANS and V4 FIN + V6 FIN RCV), the established
/// one otherwise, a half-closed connection included (V4 FIN RCV, V6 FIN RCV).
pub const TCP_NONE: u8 = 0;
pub const TCP_SYN: u8 = 1;
pub const TCP_ESTABLISHED: u8 = 2;
pub const TCP_FIN: u8 = 3;
pub const TCP_RST: u8 = 4;
/// A side that sent a RST while the session was established: the session is in the RFC's
/// TRANS state until something other than a RST passes ([`tcp_step`]). The daemon also puts a
/// session there when it probes it (RFC 6146 section 3.5.2.2).
pub const TCP_TRANS: u8 = 5;

/// TCP flag bits of the header's flag byte.
pub const TCP_FLAG_FIN: u8 = 0x01;
pub const TCP_FLAG_SYN: u8 = 0x02;
pub const TCP_FLAG_RST: u8 = 0x04;
pub const TCP_FLAG_ACK: u8 = 0x10;

/// The TCP state a side moves to on a segment with `flags` (the TCP header's flag byte), the
/// other side not considered: what a session's first segment makes of it. Later segments go
/// through [`tcp_step`].
pub const fn tcp_next(state: u8, flags: u8) -> u8 {
    if flags & TCP_FLAG_RST != 0 {
        TCP_RST
    } else if flags & TCP_FLAG_SYN != 0 {
        // A new connection on the binding after an old one ended opens again.
        if state == TCP_NONE || state == TCP_FIN || state == TCP_RST {
            TCP_SYN
        } else {
            state
        }
    } else if flags & TCP_FLAG_FIN != 0 {
        TCP_FIN
    } else if flags & TCP_FLAG_ACK != 0 && state != TCP_FIN && state != TCP_RST {
        TCP_ESTABLISHED
    } else {
        state
    }
}

/// Both sides of a session after a segment with `flags` from the side in `own`, the other
/// being in `other`: `(own, other)` after it.
///
/// RFC 6146 section 3.5.2.2: a RST moves an ESTABLISHED session to TRANS, and TRANS goes back
/// to ESTABLISHED on any packet that is not a RST (from either side), so that a spurious or
/// forged RST does not leave a live connection with the transitory timer. The side that sent
/// that RST is then in [`TCP_TRANS`], not [`TCP_RST`]: a RST while the connection was opening
/// (the RFC's V4 INIT and V6 INIT, which leave only on a SYN) stays a RST whatever follows,
/// or a remote could make an established session out of a refused SYN with one bare ACK.
pub const fn tcp_step(own: u8, other: u8, flags: u8) -> (u8, u8) {
    let was_established = (own == TCP_ESTABLISHED || own == TCP_TRANS)
        && (other == TCP_ESTABLISHED || other == TCP_TRANS);
    if flags & TCP_FLAG_RST != 0 {
        let own = if was_established { TCP_TRANS } else { TCP_RST };
        return (own, other);
    }
    if own == TCP_TRANS || other == TCP_TRANS {
        // TRANS -> ESTABLISHED, then this segment as from an established side (a FIN closes
        // its half).
        let own = if own == TCP_TRANS {
            TCP_ESTABLISHED
        } else {
            own
        };
        let other = if other == TCP_TRANS {
            TCP_ESTABLISHED
        } else {
            other
        };
        return (tcp_next(own, flags), other);
    }
    (tcp_next(own, flags), other)
}

/// Which timeout applies to a TCP binding whose sides are in `side6` and `side4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpLifetime {
    Transitory,
    Established,
}

/// RFC 6146 section 3.5.2.2: see [`TCP_NONE`] and the states after it.
pub const fn tcp_lifetime(side6: u8, side4: u8) -> TcpLifetime {
    let opened = (side6 == TCP_ESTABLISHED || side6 == TCP_FIN)
        && (side4 == TCP_ESTABLISHED || side4 == TCP_FIN);
    if side6 == TCP_RST
        || side4 == TCP_RST
        || side6 == TCP_TRANS
        || side4 == TCP_TRANS
        || (side6 == TCP_FIN && side4 == TCP_FIN)
        || !opened
    {
        TcpLifetime::Transitory
    } else {
        TcpLifetime::Established
    }
}

/// Whether a binding counts as established (both sides past the handshake, none closed).
pub const fn tcp_established(side6: u8, side4: u8) -> bool {
    side6 == TCP_ESTABLISHED && side4 == TCP_ESTABLISHED
}

/// Picks the candidate port number `attempt` for a binding, from a random value: uniform
/// over the range `lo..=hi`, keeping the parity of `port6` where the range allows it (RFC
/// 4787 REQ-4, RFC 6146 section 3.5.1.1: port parity preserved for RTP/RTCP), randomised (RFC
/// 6056). `lo <= hi` is the configuration's guarantee.
pub const fn candidate_port(random: u32, lo: u16, hi: u16, port6: u16) -> u16 {
    let span = (hi - lo) as u32 + 1;
    let mut p = lo as u32 + random % span;
    if span >= 2 && (p ^ port6 as u32) & 1 != 0 {
        // Move to the neighbour of the right parity that stays in range.
        p = if p < hi as u32 { p + 1 } else { p - 1 };
    }
    p as u16
}

/// The candidate after `prev` when it was taken: the next port of the same parity, wrapping
/// from `hi` back to the bottom of the range (RFC 6056 section 3.3.2: a random start, then a
/// sequential search), so that a half-full port space still finds a free port within a few
/// tries where independent random tries keep colliding.
pub const fn next_candidate(prev: u16, lo: u16, hi: u16) -> u16 {
    let next = prev as u32 + 2;
    if next <= hi as u32 {
        return next as u16;
    }
    // Back to the lowest port of `prev`'s parity (`lo` or `lo + 1`), if the range has one.
    let bottom = lo as u32 + ((prev ^ lo) as u32 & 1);
    if bottom <= hi as u32 {
        bottom as u16
    } else {
        prev
    }
}

/// The address of the pool an IPv6 host gets: the same one for every binding of the host's
/// /64 ("paired" pooling, RFC 4787 REQ-2 and RFC 6888 REQ-4: hosts rotate addresses within a
/// /64), spread over the pool by a hash of that /64.
pub const fn pool4_index(addr6: &[u8; 16], pool_size: u32) -> u32 {
    // FNV-1a over the /64.
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < 8 {
        h ^= addr6[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    if pool_size == 0 { 0 } else { h % pool_size }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn the_sequential_search_keeps_parity_stays_in_range_and_wraps() {
        assert_eq!(next_candidate(2000, 1024, 65535), 2002);
        assert_eq!(next_candidate(65534, 1024, 65535), 1024);
        assert_eq!(next_candidate(65535, 1024, 65535), 1025);
        assert_eq!(
            next_candidate(2000, 2000, 2001),
            2000,
            "one port of that parity"
        );
        assert_eq!(next_candidate(5000, 5000, 5000), 5000);
        for (lo, hi) in [(1024u16, 65535u16), (10, 13), (11, 20), (7, 8)] {
            let mut p = candidate_port(12345, lo, hi, 1);
            let mut seen = 0;
            for _ in 0..(hi - lo + 2) {
                assert!(
                    (lo..=hi).contains(&p) && p & 1 == 1 || hi == lo,
                    "{p} in {lo}-{hi}"
                );
                p = next_candidate(p, lo, hi);
                seen += 1;
            }
            assert!(seen > 0);
        }
    }

    #[test]
    fn candidate_ports_stay_in_range_and_keep_parity() {
        for r in [0u32, 1, 2, 7, 1000, u32::MAX, 0x8000_0001] {
            for (lo, hi) in [(1024u16, 65535u16), (2000, 2001), (5000, 5000), (10, 13)] {
                for port6 in [0u16, 1, 40000, 40001] {
                    let p = candidate_port(r, lo, hi, port6);
                    assert!((lo..=hi).contains(&p), "{p} outside {lo}-{hi}");
                    if hi > lo {
                        assert_eq!(p & 1, port6 & 1, "parity of {port6} in {lo}-{hi}: {p}");
                    }
                }
            }
        }
    }

    #[test]
    fn candidate_ports_spread_over_the_range() {
        let mut seen = std::collections::BTreeSet::new();
        for r in 0..1000u32 {
            seen.insert(candidate_port(
                r.wrapping_mul(2_654_435_761),
                1024,
                65535,
                7,
            ));
        }
        assert!(seen.len() > 900, "only {} distinct ports", seen.len());
    }

    #[test]
    fn blocks_cut_the_range_in_order_and_leave_the_remainder() {
        assert_eq!(block_count(1024, 65535, 512), 126);
        assert_eq!(block_count(1024, 65535, 0), 0);
        assert_eq!(block_count(0, 65535, 1), 65536);
        assert_eq!(block_ports(1024, 512, 0), (1024, 1535));
        assert_eq!(block_ports(1024, 512, 125), (65024, 65535));
        assert_eq!(block_ports(0, 65535, 0), (0, 65534));
        assert_eq!(block_of_port(1024, 65535, 512, 1024), Some(0));
        assert_eq!(block_of_port(1024, 65535, 512, 1535), Some(0));
        assert_eq!(block_of_port(1024, 65535, 512, 1536), Some(1));
        assert_eq!(block_of_port(1024, 65535, 512, 65535), Some(125));
        assert_eq!(block_of_port(1024, 65535, 512, 1023), None);
        // 2000-2099 in blocks of 30: three blocks, 2090-2099 in none.
        assert_eq!(block_count(2000, 2099, 30), 3);
        assert_eq!(block_of_port(2000, 2099, 30, 2089), Some(2));
        assert_eq!(block_of_port(2000, 2099, 30, 2090), None);
        for i in 0..3u16 {
            let (a, b) = block_ports(2000, 30, i);
            assert_eq!(block_of_port(2000, 2099, 30, a), Some(i));
            assert_eq!(block_of_port(2000, 2099, 30, b), Some(i));
        }
    }

    #[test]
    fn one_pool_address_per_slash_64() {
        let a: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1];
        let mut b = a;
        b[15] = 0x99;
        b[9] = 0x42;
        assert_eq!(pool4_index(&a, 4), pool4_index(&b, 4));
        assert!(pool4_index(&a, 4) < 4);
        assert_eq!(pool4_index(&a, 0), 0);
    }

    #[test]
    fn tcp_states() {
        const SYN: u8 = TCP_FLAG_SYN;
        const ACK: u8 = TCP_FLAG_ACK;
        const FIN: u8 = TCP_FLAG_FIN;
        const RST: u8 = TCP_FLAG_RST;
        let s = tcp_next(TCP_NONE, SYN);
        assert_eq!(s, TCP_SYN);
        assert_eq!(tcp_next(s, SYN | ACK), TCP_SYN);
        assert_eq!(tcp_next(s, ACK), TCP_ESTABLISHED);
        assert_eq!(tcp_next(TCP_ESTABLISHED, ACK | FIN), TCP_FIN);
        assert_eq!(tcp_next(TCP_ESTABLISHED, RST), TCP_RST);
        assert_eq!(tcp_next(TCP_FIN, ACK), TCP_FIN);
        // A new connection reusing the binding after a close.
        assert_eq!(tcp_next(TCP_FIN, SYN), TCP_SYN);
        assert_eq!(tcp_next(TCP_RST, SYN), TCP_SYN);
        assert!(tcp_established(TCP_ESTABLISHED, TCP_ESTABLISHED));
        assert!(!tcp_established(TCP_ESTABLISHED, TCP_SYN));
        // Lifetimes (RFC 6146 section 3.5.2.2).
        use TcpLifetime::*;
        assert_eq!(tcp_lifetime(TCP_SYN, TCP_NONE), Transitory, "V6 INIT");
        assert_eq!(tcp_lifetime(TCP_SYN, TCP_SYN), Transitory, "handshake");
        assert_eq!(tcp_lifetime(TCP_ESTABLISHED, TCP_ESTABLISHED), Established);
        assert_eq!(
            tcp_lifetime(TCP_FIN, TCP_ESTABLISHED),
            Established,
            "V6 FIN RCV"
        );
        assert_eq!(
            tcp_lifetime(TCP_ESTABLISHED, TCP_FIN),
            Established,
            "V4 FIN RCV"
        );
        assert_eq!(
            tcp_lifetime(TCP_FIN, TCP_FIN),
            Transitory,
            "V4 FIN + V6 FIN RCV"
        );
        assert_eq!(tcp_lifetime(TCP_ESTABLISHED, TCP_RST), Transitory, "TRANS");
    }

    /// RFC 6146 section 3.5.2.2: TRANS goes back to ESTABLISHED on any packet but a RST, from
    /// either side; a RST while opening stays one.
    #[test]
    fn a_packet_after_a_rst_establishes_again_only_if_it_was_established() {
        const SYN: u8 = TCP_FLAG_SYN;
        const ACK: u8 = TCP_FLAG_ACK;
        const RST: u8 = TCP_FLAG_RST;
        const FIN: u8 = TCP_FLAG_FIN;
        use TcpLifetime::*;
        const EST: u8 = TCP_ESTABLISHED;
        // The IPv6 side (own) sends a RST in an established session: TRANS.
        let (s6, s4) = tcp_step(EST, EST, RST | ACK);
        assert_eq!((s6, s4), (TCP_TRANS, EST));
        assert_eq!(tcp_lifetime(s6, s4), Transitory);
        // More RSTs keep it there, from either side.
        assert_eq!(tcp_step(s6, s4, RST), (TCP_TRANS, EST));
        assert_eq!(tcp_step(s4, s6, RST), (TCP_TRANS, TCP_TRANS));
        // An ACK from the side that sent the RST, or from the other: ESTABLISHED again.
        assert_eq!(tcp_step(s6, s4, ACK), (EST, EST));
        assert_eq!(tcp_step(s4, s6, ACK), (EST, EST));
        // A FIN after it closes the sender's half, as it would have without the RST.
        assert_eq!(tcp_step(s6, s4, ACK | FIN), (TCP_FIN, EST));
        // Opening: a remote's SYN (V4 INIT), refused by the host with a RST. Bare ACKs from
        // the remote then do not make it established (the RFC leaves V4 INIT on a SYN only).
        let s4 = tcp_next(TCP_NONE, SYN);
        let (s6, s4) = (tcp_step(TCP_NONE, s4, RST | ACK).0, s4);
        assert_eq!(s6, TCP_RST);
        let (s4, s6) = tcp_step(s4, s6, ACK);
        let (s4, s6) = tcp_step(s4, s6, ACK);
        assert_eq!(s6, TCP_RST);
        assert_eq!(tcp_lifetime(s6, s4), Transitory);
        // A half-closed side's RST is not TRANS either (the RFC's FIN states have their own).
        assert_eq!(tcp_step(TCP_FIN, EST, RST), (TCP_RST, EST));
    }
}

/// One record of the `EVENTS` ring buffer: a binding the dataplane made, or one it refused,
/// pushed as it happens so that the daemon logs every binding at once (RFC 6888 REQ-12: the
/// mapping between an IPv6 client and its IPv4 transport address must be recoverable), not
/// when a sweep happens to see it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingEvent {
    /// `bpf_ktime_get_coarse_ns` when it happened (the clock of `Bib6Value::last_ns`).
    pub time_ns: u64,
    /// [`EVENT_CREATED`] or [`EVENT_REFUSED`].
    pub kind: u8,
    /// `BIB_TCP`, `BIB_UDP` or `BIB_ICMP`.
    pub proto: u8,
    /// For a refusal, the `DropReason` (as its index).
    pub reason: u8,
    pub _pad: u8,
    /// The client's transport address (port or ICMP identifier, network order).
    pub port6: [u8; 2],
    /// The pool4 port (network order): zero for a refusal.
    pub port4: [u8; 2],
    pub addr6: [u8; 16],
    /// The pool4 address: zero for a refusal.
    pub addr4: [u8; 4],
    /// For a port block ([`EVENT_BLOCK`]): its last port (network order), `port4` its first,
    /// `addr6` the client's /64 (the rest zero) and `port6` zero.
    pub port_end: [u8; 2],
    pub _pad2: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<BindingEvent>() == 40);

/// A binding the dataplane made (RFC 6146 section 3.5).
pub const EVENT_CREATED: u8 = 1;
/// A binding the dataplane refused (per-client limit, pool or table exhausted).
pub const EVENT_REFUSED: u8 = 2;
/// A port block the dataplane allocated to a client /64 (`stateful.port_block_size`).
pub const EVENT_BLOCK: u8 = 3;

/// Port blocks (RFC 6888 section 5 and RFC 7422 section 1 on logging; `stateful.port_block_size`):
/// each IPv6 /64 gets a block of consecutive ports of its pool4 address (per protocol) when it
/// makes its first binding, and more blocks on demand, up to `Config::max_blocks`; its bindings
/// take ports at random inside its blocks. A block is logged once, when it is allocated and when
/// it is released, instead of each binding. The protocol's port range `lo..=hi` is cut into
/// `(hi - lo + 1) / size` blocks (the remainder is not used); block `i` is
/// `lo + i * size ..= lo + (i + 1) * size - 1`.
///
/// The most blocks one /64 holds per protocol: the dataplane looks at each on a new binding.
pub const MAX_CLIENT_BLOCKS: usize = 8;

/// Entries of the block table (`BLOCKS`), over every pool4 address and protocol.
pub const BLOCK_MAX_ENTRIES: u32 = 65_536;

/// Key of the block table: one block of ports of a pool4 address. The dataplane allocates a
/// block by inserting its key (`BPF_NOEXIST`: a block has one owner); the daemon's sweeper
/// releases it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub addr4: [u8; 4],
    pub proto: u8,
    pub _pad: u8,
    /// The block's index in the protocol's range (host order).
    pub index: u16,
}
const _: () = assert!(core::mem::size_of::<BlockKey>() == 8);

/// Value of the block table: who owns it and since when.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockOwner {
    /// The owner's /64 ([`client_key`]).
    pub client: [u8; 8],
    /// `bpf_ktime_get_coarse_ns` when it was allocated.
    pub since_ns: u64,
    /// `BLOCK_F_*`.
    pub flags: u8,
    pub _pad: u8,
    /// Its first port and its size, as they were when it was allocated (host order): a
    /// block made under another `port_block_size` or port range is told apart by these.
    pub first: u16,
    pub size: u16,
    pub _pad2: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<BlockOwner>() == 24);

impl BlockOwner {
    /// The block's last port.
    pub const fn last(&self) -> u16 {
        let size = if self.size == 0 { 1 } else { self.size as u32 };
        let last = self.first as u32 + size - 1;
        if last > 65535 { 65535 } else { last as u16 }
    }
}

/// The sweeper found the block unused and took it off its owner's list; it releases the block
/// on its next pass if it is still unused then (a binding made in it meanwhile keeps it).
pub const BLOCK_F_RELEASING: u8 = 1 << 0;

/// Key of a client's block list (`CLIENT_BLOCKS`): its /64 and a protocol.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientBlocksKey {
    pub client: [u8; 8],
    pub proto: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<ClientBlocksKey>() == 12);

/// Value of a client's block list: the blocks its new bindings take ports in. Written by the
/// dataplane when it allocates a block, rebuilt from the block table by the sweeper.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientBlocks {
    /// The pool4 address of its blocks (the client's, `pool4_index`).
    pub addr4: [u8; 4],
    /// How many of `index` are valid.
    pub count: u8,
    pub _pad: [u8; 3],
    pub index: [u16; MAX_CLIENT_BLOCKS],
}
const _: () = assert!(core::mem::size_of::<ClientBlocks>() == 24);

/// How many blocks of `size` ports the range `lo..=hi` has (0 when `size` is 0).
pub const fn block_count(lo: u16, hi: u16, size: u16) -> u32 {
    if size == 0 || hi < lo {
        0
    } else {
        (hi as u32 - lo as u32 + 1) / size as u32
    }
}

/// The ports of block `index` of the range starting at `lo`: `(first, last)`.
pub const fn block_ports(lo: u16, size: u16, index: u16) -> (u16, u16) {
    let first = lo as u32 + index as u32 * size as u32;
    (first as u16, (first + size as u32 - 1) as u16)
}

/// The block of the range `lo..=hi` that `port` lies in, if any.
pub const fn block_of_port(lo: u16, hi: u16, size: u16, port: u16) -> Option<u16> {
    if size == 0 || port < lo || port > hi {
        return None;
    }
    let i = (port - lo) as u32 / size as u32;
    if i < block_count(lo, hi, size) {
        Some(i as u16)
    } else {
        None
    }
}

/// Size of the `EVENTS` ring buffer: 1 MiB, about 26,000 events (40 bytes and an 8-byte
/// header each) between two reads of the daemon, which reads as soon as they come.
pub const EVENTS_BYTES: u32 = 1 << 20;
