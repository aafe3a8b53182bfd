//! The dataplane's counters: one per-CPU `u64` slot per (direction, protocol) translated, per
//! direction of bytes, and per (direction, drop reason). The daemon sums them over CPUs and
//! exports them; the names here are the metric label values, so they are snake_case and stable.

/// Direction of translation.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// IPv6 packet in, IPv4 packet out (NAT64 / SIIT 6-to-4).
    V6ToV4 = 0,
    /// IPv4 packet in, IPv6 packet out.
    V4ToV6 = 1,
}

impl Dir {
    pub const ALL: [Dir; 2] = [Dir::V6ToV4, Dir::V4ToV6];

    pub const fn name(self) -> &'static str {
        match self {
            Dir::V6ToV4 => "6to4",
            Dir::V4ToV6 => "4to6",
        }
    }
}

/// Transport protocol of a translated packet, as counted.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Proto {
    Tcp = 0,
    Udp = 1,
    Icmp = 2,
    Other = 3,
}

impl L4Proto {
    pub const COUNT: u32 = 4;
    pub const ALL: [L4Proto; 4] = [L4Proto::Tcp, L4Proto::Udp, L4Proto::Icmp, L4Proto::Other];

    pub const fn name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Icmp => "icmp",
            L4Proto::Other => "other",
        }
    }
}

/// Why the dataplane dropped a packet that was addressed to the translator's prefixes.
/// Packets that are not ours are passed to the kernel untouched and never counted as drops.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Hop limit or TTL would reach zero here (RFC 7915 4.1, 5.1). The packet is not
    /// translated but handed to the kernel untouched, whose forwarding answers ICMP Time
    /// Exceeded (given a route for the destination); the kernel then drops it.
    HopLimitExceeded = 0,
    /// The frame is shorter than the headers it announces.
    Truncated = 1,
    /// An IP header field is inconsistent (IHL below 5, total length below the header).
    BadHeader = 2,
    /// The destination is ours but the source has no mapping (neither EAM nor pool6), or, with
    /// stateful NAT64, a source under pool6 that is not a `pool6_ipv4` host's (RFC 6146
    /// section 3.5).
    SourceUntranslatable = 3,
    /// Destination or source maps to an IPv4 address that must never be translated
    /// (0/8, 127/8, multicast, class E, limited broadcast).
    MartianAddress = 4,
    /// An IPv6 extension header that cannot be skipped (AH, ESP, and the like), or more or
    /// longer ones than the dataplane walks (RFC 7915 section 5.1).
    ExtensionHeader = 5,
    /// A fragment that cannot be translated on its own: a fragmented ICMP message (its
    /// checksum covers the whole message), stateless hairpinning of a fragment, or, with
    /// stateful NAT64, a later fragment whose first fragment never came through.
    Fragment = 6,
    /// IPv4 UDP without checksum that is not translated (RFC 7915 section 4.5): a fragment, for
    /// which no checksum can be computed, or any with `udp_zero_checksum = "drop"`
    /// (unfragmented ones get one computed otherwise). The sender gets ICMPv4 3/13.
    UdpZeroChecksum = 7,
    /// ICMP type or code with no counterpart, or one RFC 7915 sections 4.2 and 5.2 say to
    /// drop silently (MLD, neighbour discovery, obsolete ICMPv4 types, untranslatable
    /// Parameter Problem pointers).
    IcmpUntranslatable = 8,
    /// IPv4 packet with an unexpired source route option (RFC 7915 4.1).
    SourceRoute = 9,
    /// `bpf_xdp_adjust_head` refused to move the packet start (not enough headroom).
    HeadroomExhausted = 10,
    /// Longer than the ingress interface's MTU: a GRO/GSO aggregate. Only generic XDP sees
    /// these (native XDP on veth turns the peer's segmentation offload off), and XDP cannot
    /// translate them: the kernel would still segment the result as the old family. Counted
    /// here only without a translator link; with one they are handed off
    /// ([`Handoff::GsoAggregate`]).
    Oversize = 11,
    /// The packet quoted inside an ICMP error cannot be translated: its header is cut short,
    /// an address has no mapping, it carries extension headers, or it is itself an ICMP error
    /// (RFC 7915 sections 4.3 and 5.3).
    InnerUntranslatable = 12,
    /// IPv6 to IPv4 from a pool4 address the node shares: too big for the route out, answered
    /// with Packet Too Big by the dataplane ([`Generated::PacketTooBig`]).
    /// IPv4 to IPv6: the translated packet would exceed the configured IPv6 MTU. With DF set
    /// the dataplane answers ICMP Fragmentation Needed itself (RFC 7915 section 4.1 and the
    /// RFC 1191 PMTUD the sender runs); with DF clear it must be fragmented, which the kernel
    /// does on the translator link ([`Handoff::NeedsFragmentation`]), so this counts only
    /// packets that find no link (or that outgrow the link itself).
    PacketTooBig = 13,
    /// Stateful NAT64: no binding could be made for a new flow: no free port among the
    /// candidates tried on the pool4 address of the client's /64. Existing bindings are never
    /// evicted for a new one (RFC 6888 REQ-11).
    PoolExhausted = 14,
    /// Stateful NAT64: an IPv4 packet to a pool4 address and port with no binding, or one the
    /// stateful path cannot translate yet (fragments, ICMP errors): RFC 6146 section 3.5 says
    /// to drop what matches no binding. Also an IPv6 TCP segment other than a SYN with no
    /// binding (section 3.5.2.2: it makes none, and is silently discarded).
    NoBinding = 15,
    /// Stateful NAT64: the IPv6 client's /64 holds as many bindings as it may (RFC 6888
    /// REQ-4); its new flows are refused, its existing ones and everyone else's go on.
    ClientLimit = 16,
    /// Stateful NAT64: the binding table is full (`max_bindings`), so no binding could be made
    /// for a new flow, or the session table is (`max_sessions`), so no session could be made
    /// for a new remote endpoint; as with [`DropReason::PoolExhausted`], nothing is evicted
    /// for it.
    TableFull = 17,
    /// An ICMPv6 error whose checksum is wrong: RFC 7915 section 5.2 has the translator check
    /// it before translating (the translation updates the checksum incrementally, which would
    /// carry the error into a packet that looks whole to nobody).
    BadChecksum = 18,
    /// A malformed IPv6 fragment: an extension header after the Fragment header, or a second
    /// Fragment header (RFC 8200 section 4.1 allows neither; RFC 7915 section 5.1 does not
    /// translate them, and the sender gets ICMPv6 Destination Unreachable, Communication
    /// Administratively Prohibited, section 5.4, as from Jool).
    BadFragment = 19,
    /// Stateful NAT64: a TCP SYN from an IPv4 host to a pool4 port with no binding (or, from
    /// an IPv6 client, to another client's pool4 port with none). RFC 6146 section 3.5.2.2:
    /// it is held for 6 seconds; if the IPv6 side opens the same connection meanwhile (a
    /// simultaneous open) its binding takes that port, otherwise the daemon answers ICMP Port
    /// Unreachable. A repeated SYN, or one that finds the table of held SYNs full, is only
    /// dropped.
    UnsolicitedSyn = 20,
    /// Stateful NAT64: refused by the filtering policy (RFC 6146 section 3.5, RFC 4787
    /// section 5). With `filtering = "address-dependent"`, an IPv4 packet on a binding from an
    /// address its IPv6 client has not sent to (a TCP SYN from one is held instead, as
    /// `unsolicited_syn`); with `drop_external_tcp`, an IPv4 host's SYN on a dynamic binding.
    Filtered = 21,
    /// At the TC hook without a translator link: a packet of ours that only the full core on
    /// the link translates (an ICMP error, hairpinning, IPv4 options, fragments, IPv6
    /// extension headers, UDP without a checksum, a packet answered with an ICMP error). With
    /// a link these are handed off (`Handoff::SlowPath`) and translated there.
    NeedsLink = 22,
    /// A condition the dataplane cannot meet should not happen (its per-CPU scratch slot not
    /// found, a side path handing a packet on again): a bug to report, never an attack.
    Internal = 23,
}

impl DropReason {
    pub const COUNT: u32 = 24;
    pub const ALL: [DropReason; 24] = [
        DropReason::HopLimitExceeded,
        DropReason::Truncated,
        DropReason::BadHeader,
        DropReason::SourceUntranslatable,
        DropReason::MartianAddress,
        DropReason::ExtensionHeader,
        DropReason::Fragment,
        DropReason::UdpZeroChecksum,
        DropReason::IcmpUntranslatable,
        DropReason::SourceRoute,
        DropReason::HeadroomExhausted,
        DropReason::Oversize,
        DropReason::InnerUntranslatable,
        DropReason::PacketTooBig,
        DropReason::PoolExhausted,
        DropReason::NoBinding,
        DropReason::ClientLimit,
        DropReason::TableFull,
        DropReason::BadChecksum,
        DropReason::BadFragment,
        DropReason::UnsolicitedSyn,
        DropReason::Filtered,
        DropReason::NeedsLink,
        DropReason::Internal,
    ];

    /// The reason with this number (its `as u32`), if any.
    pub const fn from_index(i: u32) -> Option<DropReason> {
        if i < Self::COUNT {
            // SAFETY: every number below `COUNT` is a discriminant (checked at compile time
            // below the type). No table lookup: in the dataplane, LLVM would bound the table's
            // index in a form the BPF verifier cannot follow when `i` is a value it knows
            // nothing of (a global function's result).
            Some(unsafe { core::mem::transmute::<u32, DropReason>(i) })
        } else {
            None
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::HopLimitExceeded => "hop_limit_exceeded",
            DropReason::Truncated => "truncated",
            DropReason::BadHeader => "bad_header",
            DropReason::SourceUntranslatable => "source_untranslatable",
            DropReason::MartianAddress => "martian_address",
            DropReason::ExtensionHeader => "extension_header",
            DropReason::Fragment => "fragment",
            DropReason::UdpZeroChecksum => "udp_zero_checksum",
            DropReason::IcmpUntranslatable => "icmp_untranslatable",
            DropReason::SourceRoute => "source_route",
            DropReason::HeadroomExhausted => "headroom_exhausted",
            DropReason::Oversize => "oversize",
            DropReason::InnerUntranslatable => "inner_untranslatable",
            DropReason::PacketTooBig => "packet_too_big",
            DropReason::PoolExhausted => "pool_exhausted",
            DropReason::NoBinding => "no_binding",
            DropReason::ClientLimit => "client_limit",
            DropReason::TableFull => "table_full",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::BadFragment => "bad_fragment",
            DropReason::UnsolicitedSyn => "unsolicited_syn",
            DropReason::Filtered => "filtered",
            DropReason::NeedsLink => "needs_translator_link",
            DropReason::Internal => "internal",
        }
    }
}

/// Why the XDP fast path handed a packet that is ours to the kernel untouched, for the
/// kernel to route it through the translator link (see `maps::CONFIG_F_LINK`), where it is
/// translated after the kernel has done what XDP cannot. Not a drop: the packet goes on.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handoff {
    /// IPv4 without DF (or an IPv4 fragment) that would outgrow the IPv6 MTU once translated:
    /// RFC 7915 section 4.1 wants it fragmented, and the kernel fragments it on its way into
    /// the link (whose IPv4 routes carry an MTU 28 bytes below the IPv6 one).
    NeedsFragmentation = 0,
    /// A GRO/GSO aggregate larger than the interface MTU (generic XDP only): the kernel
    /// segments it on its way into the link.
    GsoAggregate = 1,
    /// At the TC hook: what the TC fast path leaves to the full core on the translator link
    /// (an ICMP error to translate, a hairpin, a packet answered with an ICMP error of the
    /// translator's own), so that the TC program stays within the verifier's budget.
    SlowPath = 2,
    /// An ICMPv6 error from a source with no IPv4 mapping whose translation takes one of this
    /// node's own addresses as its RFC 6791 source: the kernel drops a packet arriving with
    /// its own source address as a martian, except on the translator link, where the daemon
    /// lets it in (`accept_local`); so the error is translated there.
    OwnSource = 3,
}

impl Handoff {
    pub const COUNT: u32 = 4;
    pub const ALL: [Handoff; 4] = [
        Handoff::NeedsFragmentation,
        Handoff::GsoAggregate,
        Handoff::SlowPath,
        Handoff::OwnSource,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Handoff::NeedsFragmentation => "needs_fragmentation",
            Handoff::GsoAggregate => "gso_aggregate",
            Handoff::SlowPath => "slow_path",
            Handoff::OwnSource => "own_source",
        }
    }
}

/// ICMP errors the dataplane generates itself (sent back with `XDP_TX`), as opposed to the
/// ones it translates.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generated {
    /// ICMPv4 Fragmentation Needed to an IPv4 sender whose DF packet would outgrow the IPv6
    /// MTU (RFC 7915 section 4.1, RFC 1191).
    FragmentationNeeded = 0,
    /// ICMPv6 Address Unreachable to an IPv6 client whose new flow got no binding (RFC 6146
    /// section 3.5.1.1).
    AddressUnreachable = 1,
    /// Communication Administratively Prohibited: ICMPv4 to an IPv4 sender whose UDP datagram
    /// without a checksum is not translated (RFC 7915 section 4.5), ICMPv6 to an IPv6 sender
    /// of a malformed fragment (section 5.4, [`DropReason::BadFragment`]).
    AdminProhibited = 2,
    /// Port Unreachable for an unsolicited TCP SYN held 6 seconds without a simultaneous open
    /// (RFC 6146 section 3.5.2.2, [`DropReason::UnsolicitedSyn`]): ICMPv4 3/3 to the IPv4
    /// host, or ICMPv6 1/4 to an IPv6 client whose SYN hairpinned. Sent by the daemon, which
    /// keeps the time; this slot is written by the daemon only.
    PortUnreachable = 3,
    /// ICMPv6 Packet Too Big from this node to an IPv6 client whose packet, translated from a
    /// pool4 address the node shares, is too big for the route out (the kernel's own
    /// Fragmentation Needed would go to the node itself; `DropReason::PacketTooBig`).
    PacketTooBig = 4,
    /// ICMPv4 Destination Unreachable, Source Route Failed (code 5) to an IPv4 sender whose
    /// packet carries an unexpired source route (RFC 7915 section 4.1,
    /// [`DropReason::SourceRoute`]).
    SourceRouteFailed = 5,
    /// ICMPv6 Parameter Problem, Erroneous Header Field (type 4, code 0) to an IPv6 sender whose
    /// packet has a Routing header with Segments Left (RFC 7915 section 5.1, pointing at that
    /// field; [`DropReason::SourceRoute`]).
    ParameterProblem = 6,
}

impl Generated {
    pub const COUNT: u32 = 7;
    pub const ALL: [Generated; 7] = [
        Generated::FragmentationNeeded,
        Generated::AddressUnreachable,
        Generated::AdminProhibited,
        Generated::PortUnreachable,
        Generated::PacketTooBig,
        Generated::SourceRouteFailed,
        Generated::ParameterProblem,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Generated::FragmentationNeeded => "fragmentation_needed",
            Generated::AddressUnreachable => "address_unreachable",
            Generated::AdminProhibited => "admin_prohibited",
            Generated::PortUnreachable => "port_unreachable",
            Generated::PacketTooBig => "packet_too_big",
            Generated::SourceRouteFailed => "source_route_failed",
            Generated::ParameterProblem => "parameter_problem",
        }
    }
}

/// A slot of the `STATS` per-CPU array.
///
/// Layout: translated packets `[dir][proto]`, then translated bytes `[dir]`, then drops
/// `[dir][reason]`, then hand-offs `[dir][reason]`, then generated ICMP errors `[kind]`, then
/// packets forwarded from XDP `[dir]`, then errors translated with an RFC 6791 source `[dir]`,
/// then the errors not sent for the rate limit. [`Counter::index`] is the only place that
/// knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Packets(Dir, L4Proto),
    Bytes(Dir),
    Dropped(Dir, DropReason),
    Handoff(Dir, Handoff),
    Generated(Generated),
    /// Translated packets the fast path forwarded itself (FIB lookup and redirect,
    /// `forward_in_dataplane`), bypassing the kernel's forwarding.
    Forwarded(Dir),
    /// ICMP errors translated with an RFC 6791 source, their own having no mapping in the
    /// other family (typically a router's Packet Too Big: path MTU discovery at work).
    Rfc6791(Dir),
    /// ICMP errors the dataplane would have sent itself but did not: over its rate limit
    /// (RFC 4443 section 2.4(f), RFC 1812 section 4.3.2.8). The packet is dropped and counted
    /// under its reason as usual.
    RateLimited,
    /// Binding events (`EVENTS`) the dataplane could not push: the ring buffer was full.
    EventsLost,
}

const PACKETS_BASE: u32 = 0;
const BYTES_BASE: u32 = PACKETS_BASE + 2 * L4Proto::COUNT;
const DROPPED_BASE: u32 = BYTES_BASE + 2;
const HANDOFF_BASE: u32 = DROPPED_BASE + 2 * DropReason::COUNT;

const GENERATED_BASE: u32 = HANDOFF_BASE + 2 * Handoff::COUNT;

const FORWARDED_BASE: u32 = GENERATED_BASE + Generated::COUNT;

const RFC6791_BASE: u32 = FORWARDED_BASE + 2;

const RATE_LIMITED: u32 = RFC6791_BASE + 2;

const EVENTS_LOST: u32 = RATE_LIMITED + 1;

/// Number of slots in the `STATS` map.
pub const STATS_LEN: u32 = EVENTS_LOST + 1;

// `DropReason::from_index` relies on the discriminants being 0 to `COUNT - 1`, in order.
const _: () = {
    assert!(DropReason::ALL.len() == DropReason::COUNT as usize);
    let mut k = 0;
    while k < DropReason::ALL.len() {
        assert!(DropReason::ALL[k] as usize == k);
        k += 1;
    }
};

impl Counter {
    #[inline(always)]
    pub const fn index(self) -> u32 {
        match self {
            Counter::Packets(d, p) => PACKETS_BASE + d as u32 * L4Proto::COUNT + p as u32,
            Counter::Bytes(d) => BYTES_BASE + d as u32,
            Counter::Dropped(d, r) => DROPPED_BASE + d as u32 * DropReason::COUNT + r as u32,
            Counter::Handoff(d, h) => HANDOFF_BASE + d as u32 * Handoff::COUNT + h as u32,
            Counter::Generated(g) => GENERATED_BASE + g as u32,
            Counter::Forwarded(d) => FORWARDED_BASE + d as u32,
            Counter::Rfc6791(d) => RFC6791_BASE + d as u32,
            Counter::RateLimited => RATE_LIMITED,
            Counter::EventsLost => EVENTS_LOST,
        }
    }
}

impl Counter {
    /// The counter in slot `i` of `STATS`, the inverse of [`Counter::index`].
    pub const fn from_index(i: u32) -> Option<Counter> {
        let dirs = [Dir::V6ToV4, Dir::V4ToV6];
        if i < BYTES_BASE {
            let k = i - PACKETS_BASE;
            return Some(Counter::Packets(
                dirs[(k / L4Proto::COUNT) as usize],
                L4Proto::ALL[(k % L4Proto::COUNT) as usize],
            ));
        }
        if i < DROPPED_BASE {
            return Some(Counter::Bytes(dirs[(i - BYTES_BASE) as usize]));
        }
        if i < HANDOFF_BASE {
            let k = i - DROPPED_BASE;
            return Some(Counter::Dropped(
                dirs[(k / DropReason::COUNT) as usize],
                DropReason::ALL[(k % DropReason::COUNT) as usize],
            ));
        }
        if i < GENERATED_BASE {
            let k = i - HANDOFF_BASE;
            return Some(Counter::Handoff(
                dirs[(k / Handoff::COUNT) as usize],
                Handoff::ALL[(k % Handoff::COUNT) as usize],
            ));
        }
        if i < FORWARDED_BASE {
            return Some(Counter::Generated(
                Generated::ALL[(i - GENERATED_BASE) as usize],
            ));
        }
        if i < RFC6791_BASE {
            return Some(Counter::Forwarded(dirs[(i - FORWARDED_BASE) as usize]));
        }
        if i < RATE_LIMITED {
            return Some(Counter::Rfc6791(dirs[(i - RFC6791_BASE) as usize]));
        }
        if i == RATE_LIMITED {
            return Some(Counter::RateLimited);
        }
        if i == EVENTS_LOST {
            return Some(Counter::EventsLost);
        }
        None
    }

    /// Every counter, in slot order: the one list the log, `nat64d stats` and `/metrics`
    /// walk.
    pub fn all() -> impl Iterator<Item = Counter> {
        (0..STATS_LEN).filter_map(Counter::from_index)
    }

    /// The Prometheus series of the counter: its family, the family's help text, and its
    /// labels (name, value), e.g. `nat64_translated_packets_total` with `direction="6to4"`,
    /// `protocol="tcp"`. The single source of every series name.
    pub const fn series(self) -> Series {
        const NONE: (&str, &str) = ("", "");
        let (family, help, labels) = match self {
            Counter::Packets(d, p) => (
                "nat64_translated_packets_total",
                "Packets translated, by direction and transport protocol.",
                [("direction", d.name()), ("protocol", p.name())],
            ),
            Counter::Bytes(d) => (
                "nat64_translated_bytes_total",
                "IP bytes of the translated packets, by direction.",
                [("direction", d.name()), NONE],
            ),
            Counter::Dropped(d, r) => (
                "nat64_dropped_packets_total",
                "Packets of ours that were dropped, by direction and reason.",
                [("direction", d.name()), ("reason", r.name())],
            ),
            Counter::Handoff(d, h) => (
                "nat64_handed_off_packets_total",
                "Packets the fast path handed to the kernel for the translator link, by direction and reason.",
                [("direction", d.name()), ("reason", h.name())],
            ),
            Counter::Generated(g) => (
                "nat64_icmp_errors_generated_total",
                "ICMP errors the dataplane generated itself, by type.",
                [("type", g.name()), NONE],
            ),
            Counter::Forwarded(d) => (
                "nat64_xdp_forwarded_packets_total",
                "Translated packets the fast path forwarded itself (forward_in_dataplane), by direction.",
                [("direction", d.name()), NONE],
            ),
            Counter::Rfc6791(d) => (
                "nat64_icmp_errors_rfc6791_total",
                "ICMP errors translated with an RFC 6791 source (their own source has no mapping: typically a router's Packet Too Big, path MTU discovery at work), by direction.",
                [("direction", d.name()), NONE],
            ),
            Counter::RateLimited => (
                "nat64_icmp_errors_rate_limited_total",
                "ICMP errors the dataplane would have sent itself but did not: over its rate limit (RFC 4443 section 2.4(f)), 1000 a second with bursts of 50 per CPU.",
                [NONE, NONE],
            ),
            Counter::EventsLost => (
                "nat64_binding_events_lost_total",
                "Binding events the dataplane could not push to the daemon: its ring buffer was full (the bindings themselves are made; only their log lines are missing).",
                [NONE, NONE],
            ),
        };
        Series {
            family,
            help,
            labels,
        }
    }
}

/// A counter's Prometheus series ([`Counter::series`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Series {
    pub family: &'static str,
    pub help: &'static str,
    /// (label, value) pairs; unused ones are empty.
    pub labels: [(&'static str, &'static str); 2],
}

impl Series {
    /// The labels in use.
    pub fn labels(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.labels.iter().copied().filter(|(k, _)| !k.is_empty())
    }
}

/// The rate limit of the ICMP errors the dataplane originates (RFC 4443 section 2.4(f): "MUST
/// limit the rate"; RFC 1812 section 4.3.2.8 for ICMPv4), per CPU: a token bucket of
/// `ICMP_ERROR_BURST` errors refilled at `ICMP_ERRORS_PER_SEC`, the kernel's own defaults
/// (`net.ipv4.icmp_msgs_per_sec`, `icmp_msgs_burst`).
pub const ICMP_ERRORS_PER_SEC: u64 = 1000;
pub const ICMP_ERROR_BURST: u64 = 50;

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{collections::BTreeSet, vec::Vec};

    use super::*;

    fn all() -> Vec<Counter> {
        let mut v = Vec::new();
        for d in Dir::ALL {
            for p in L4Proto::ALL {
                v.push(Counter::Packets(d, p));
            }
            v.push(Counter::Bytes(d));
            for r in DropReason::ALL {
                v.push(Counter::Dropped(d, r));
            }
            for h in Handoff::ALL {
                v.push(Counter::Handoff(d, h));
            }
            v.push(Counter::Forwarded(d));
            v.push(Counter::Rfc6791(d));
        }
        for g in Generated::ALL {
            v.push(Counter::Generated(g));
        }
        v.push(Counter::RateLimited);
        v.push(Counter::EventsLost);
        v
    }

    #[test]
    fn indices_are_dense_and_unique() {
        let idx: BTreeSet<u32> = all().iter().map(|c| c.index()).collect();
        assert_eq!(idx.len() as u32, STATS_LEN);
        assert_eq!(*idx.iter().next_back().unwrap(), STATS_LEN - 1);
    }

    #[test]
    fn from_index_inverts_index_over_every_slot() {
        for c in all() {
            assert_eq!(Counter::from_index(c.index()), Some(c));
        }
        assert_eq!(Counter::from_index(STATS_LEN), None);
        assert_eq!(Counter::all().count(), all().len());
        for (i, c) in Counter::all().enumerate() {
            assert_eq!(c.index(), i as u32);
        }
        assert_eq!(DropReason::from_index(21), Some(DropReason::Filtered));
        assert_eq!(DropReason::from_index(DropReason::COUNT), None);
    }

    #[test]
    fn every_series_names_its_family_and_its_labels() {
        let mut seen = BTreeSet::new();
        for c in all() {
            let s = c.series();
            assert!(s.family.starts_with("nat64_") && s.family.ends_with("_total"));
            assert!(!s.help.is_empty());
            let labels: Vec<_> = s.labels().collect();
            assert!(labels.iter().all(|(k, v)| !k.is_empty() && !v.is_empty()));
            assert!(seen.insert((s.family, labels)), "{c:?} shares its series");
        }
    }

    #[test]
    fn reason_table_matches_discriminants() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.name());
        }
        let names: BTreeSet<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::ALL.len());
        for (i, h) in Handoff::ALL.iter().enumerate() {
            assert_eq!(*h as usize, i, "{}", h.name());
        }
    }
}
