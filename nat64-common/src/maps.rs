//! Layout of the values stored in the dataplane's maps (see `nat64-ebpf/src/maps.rs` for the
//! maps themselves). Versioned by [`LAYOUT_VERSION`] so that a future daemon can refuse pinned
//! maps it would misread.

/// Bumped whenever a type in this module changes size or meaning.
pub const LAYOUT_VERSION: u32 = 21;

/// Maximum number of explicit address mappings (RFC 7757 EAM entries) per direction.
/// Each entry costs one LPM trie node; 4096 covers per-host mappings of a large cluster while
/// keeping the trie small enough to preallocate.
pub const EAM_MAX_ENTRIES: u32 = 4096;

/// Most of this node's own IPv6 addresses the `NODE6` map holds.
pub const NODE6_MAX_ENTRIES: u32 = 256;

/// Maximum number of interfaces with per-interface settings (`IFACES` map).
pub const IFACE_MAX_ENTRIES: u32 = 256;

/// Per-interface settings, keyed by ifindex in the `IFACES` hash map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfaceConfig {
    /// Bit flags, see `IFACE_F_*`.
    pub flags: u32,
    /// The interface's MTU, for the MTU arithmetic of translated Packet Too Big and
    /// Fragmentation Needed messages (RFC 7915 sections 4.2 and 5.2); 0 if unknown.
    pub mtu: u32,
    /// The interface's IPv4 address, the source of the Fragmentation Needed errors the
    /// dataplane answers itself; all zero if it has none.
    pub addr4: [u8; 4],
    pub _pad: [u8; 4],
}
const _: () = assert!(core::mem::size_of::<IfaceConfig>() == 16);

/// Packets on this interface may carry partial transport checksums (`CHECKSUM_PARTIAL`:
/// locally generated packets on veth and other virtual links), so the dataplane recognises
/// them and updates them in their partial form. Off on physical NICs, whose received packets
/// always carry full checksums.
pub const IFACE_F_PARTIAL_CSUM: u32 = 1 << 0;

/// Slots of the `PROGS` program array: the programs the dispatchers tail-call, one per
/// direction (the fast path's `nat64_xdp`, the translator link's `nat64_link`).
pub const PROG_XDP_6TO4: u32 = 0;
pub const PROG_XDP_4TO6: u32 = 1;
pub const PROG_LINK_6TO4: u32 = 2;
pub const PROG_LINK_4TO6: u32 = 3;
pub const PROGS_LEN: u32 = 4;

/// Slots of the `CONFIG` array map: the fast path's configuration, and the translator link's;
/// then the same two with `CONFIG_F_HAIRPIN_IN`, for the second half of a hairpinned error.
/// A direction program takes the slot its dispatcher's mark names (`LINKMARK`: bit 0 the
/// link, bit 1 the hairpin).
pub const CONFIG_SLOT_FAST_PATH: u32 = 0;
pub const CONFIG_SLOT_LINK: u32 = 1;
pub const CONFIG_SLOT_FAST_PATH_HAIRPIN: u32 = 2;
pub const CONFIG_SLOT_LINK_HAIRPIN: u32 = 3;
pub const CONFIG_SLOTS: u32 = 4;

/// The bits of the `LINKMARK` word a dispatcher sets for the direction program it
/// tail-calls: the frame came through the translator link; it is the IPv4 half of a
/// hairpinned error. Together they name the `CONFIG` slot. Frozen: programs of other builds
/// read them (the word is pinned with the state so that a dispatcher left attached by one
/// build and the programs of the next agree on it); a change needs a new `LAYOUT_VERSION`.
pub const MARK_LINK: u32 = 1;
pub const MARK_AGAIN: u32 = 2;
const _: () = assert!(
    CONFIG_SLOT_LINK == MARK_LINK
        && CONFIG_SLOT_FAST_PATH_HAIRPIN == MARK_AGAIN
        && CONFIG_SLOT_LINK_HAIRPIN == MARK_LINK | MARK_AGAIN
);

/// The translator's run-time configuration, in the `CONFIG` array map.
///
/// It lives in a map rather than a load-time global so that one object serves every
/// configuration: a reload with pinned state loads a new copy of the programs and fills its
/// own `CONFIG` (swapped in atomically on every attachment); without pinned state the daemon
/// rewrites the map in place. Either way nothing is recompiled.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// RFC 6052 translation prefix (pool6); only the first `pool6_len / 8` bytes are used.
    pub pool6: [u8; 16],
    /// Prefix length in bits: one of 32, 40, 48, 56, 64, 96; 0 disables pool6.
    pub pool6_len: u8,
    /// Bit flags, see `CONFIG_F_*`.
    pub flags: u8,
    /// The IPv6 size IPv4 packets without DF are fragmented to (host order; RFC 7915 section
    /// 4); 0 means no limit. One that would grow past it is handed to the kernel to fragment
    /// on its way into the translator link, or without a link dropped. Packets with DF are
    /// judged by their IPv6 route instead.
    pub ipv6_mtu: u16,
    /// RFC 6791: the IPv4 source for translated ICMPv6 errors whose source (a router) has no
    /// IPv4 mapping; valid when `CONFIG_F_POOL6791` is set. Without it the node's own address
    /// toward the error's destination is used (`CONFIG_F2_*`).
    pub pool6791: [u8; 4],
    /// Stateful NAT64 (RFC 6146, valid when `CONFIG_F_STATEFUL` is set): how many addresses
    /// pool4 has over all its prefixes (the `POOL4` map), and how many prefixes.
    pub pool4_addresses: u32,
    pub pool4_prefixes: u8,
    /// More bit flags, see `CONFIG_F2_*`.
    pub flags2: u8,
    /// Port ranges of pool4 per protocol, host order, `lo <= hi`: TCP, UDP, ICMP identifiers.
    pub tcp_ports: [u16; 2],
    pub udp_ports: [u16; 2],
    pub icmp_ids: [u16; 2],
    /// The most dynamic bindings one IPv6 /64 may hold (RFC 6888 REQ-4); 0: no limit.
    pub per_client_limit: u32,
    /// RFC 6791 on the IPv6 side: the IPv6 source for translated ICMPv4 errors whose source
    /// has no IPv6 mapping; valid when `CONFIG_F2_POOL6791_V6` is set, else the node's own
    /// IPv6 address toward the error's destination is used.
    pub pool6791v6: [u8; 16],
    /// The translator link's kernel side: its ifindex (0: no link) and MAC address. At TC, a
    /// packet the kernel would refuse before routing it into the link (an IPv4 source route,
    /// a martian source) is redirected straight into it instead (`tc::verdict`).
    pub link_ifindex: u32,
    pub link_mac: [u8; 6],
    /// A pool4 address that is also the node's own (shared by port; zero: none). The kernel
    /// delivers what is routed to it locally, so a packet translated toward it (stateful
    /// hairpinning) is redirected into the translator link instead (`link::emit`).
    pub shared4: [u8; 4],
    /// RFC 7915 section 5.1: the IPv4 TOS written when `CONFIG_F_COPY_TOS` is clear.
    pub tos: u8,
    pub _pad: [u8; 1],
    /// The smallest MTU of the node's interfaces, IPv4 and IPv6 (those that carry IPv6), host
    /// order; 0: unknown. A translated packet no larger than it fits any route's device, so
    /// the first-hop MTU lookup (`egress`) is skipped for it. Kept current by the daemon.
    pub mtu_floor4: u16,
    pub mtu_floor6: u16,
    /// Stateful NAT64: deterministic mapping (RFC 7422, `stateful.deterministic`), all zero
    /// when off: each client's pool4 address and port block come from it.
    pub det: crate::deterministic::Deterministic,
    /// Stateful NAT64: ports per block (`stateful.port_block_size`, `state::MAX_CLIENT_BLOCKS`);
    /// 0: no blocks, each binding takes a port anywhere in the range.
    pub block_size: u16,
    /// The most blocks one /64 holds per protocol (1 to `state::MAX_CLIENT_BLOCKS`).
    pub max_blocks: u16,
    /// Where the EAM tries can find anything (`addr::span6`, `addr::span4`): the upper
    /// halves of the IPv6 addresses the EAM entries cover, and the IPv4 addresses of the EAM
    /// entries and `pool6_ipv4` prefixes (the node's own addresses in the tries lie inside
    /// them). An LPM lookup is among the dearest steps of a translation, and a packet makes
    /// up to three; outside these spans they are skipped. Empty (first above last) when the
    /// tries are.
    pub eam6_span: [u64; 2],
    pub eam4_span: [u32; 2],
    /// Stateful NAT64: the span of pool4's prefixes (`addr::span4`), empty without stateful
    /// NAT64. An IPv4 destination outside it is not a pool4 address, and with one prefix
    /// (the usual case) one inside it is: the `POOL4_LPM` lookup is only needed between the
    /// prefixes of a pool4 of several.
    pub pool4_span: [u32; 2],
    /// Stands in for `shared4` while the kernel fragments a packet to it (zero: none; set only
    /// with a translator link). RFC 7915 section 4.1 wants an IPv4 packet without DF that
    /// would grow past `ipv6_mtu` fragmented, which the kernel does on its way into the link,
    /// but it delivers what is addressed to the node itself rather than route it there. So
    /// the fast path readdresses such a packet (and every fragment to `shared4`, so that all
    /// of a datagram takes one way) to this address, which the daemon routes into the link
    /// with pool4's MTU, and the link's far end (`nat64_link`) puts `shared4` back before it
    /// translates the kernel's pieces.
    pub shared4_alias: [u8; 4],
    pub _pad2: [u8; 4],
}
const _: () = assert!(core::mem::size_of::<Config>() == 160);

/// RFC 7915 section 5.1: copy the IPv6 traffic class to the IPv4 TOS. When clear, the
/// translator writes `Config::tos` instead (Jool's override-tos).
pub const CONFIG_F_COPY_TOS: u8 = 1 << 0;
/// `Config::pool6791` holds an address.
pub const CONFIG_F_POOL6791: u8 = 1 << 1;
/// The EAM table has entries, so an IPv6 packet to pool6 may hairpin (RFC 7757 section 4):
/// the dataplane only looks when this is set.
pub const CONFIG_F_EAM: u8 = 1 << 2;
/// The daemon runs a translator link: a veth pair into which the kernel routes pool6 and the
/// EAM IPv4 prefixes, with the dataplane's `nat64_link` program on its far end. Packets of
/// ours that XDP cannot translate in place (IPv4 to fragment, GSO aggregates) are then handed
/// to the kernel untouched instead of dropped: it fragments or segments them on their way into
/// the link, where they are translated (see `counters::Handoff`).
pub const CONFIG_F_LINK: u8 = 1 << 3;
/// Stateful NAT64 is on: an IPv6 source with no stateless mapping gets a binding to a pool4
/// address and port (`nat64_common::state`), and IPv4 packets to pool4 are translated through
/// the bindings.
pub const CONFIG_F_STATEFUL: u8 = 1 << 4;
/// Set only in the link's copies of the configuration (`CONFIG_SLOT_LINK`,
/// `CONFIG_SLOT_LINK_HAIRPIN`), the ones frames `nat64_link` dispatched read,
/// so that the shared translation code knows it runs on the far end of the translator link. There a translated packet goes back into the link (`XDP_TX`) rather
/// than up the stack, the hop limit is left alone (the kernel decremented it on the way in
/// and checks it on the way out), and nothing is handed off again.
pub const CONFIG_F_ON_LINK: u8 = 1 << 7;
/// The fast path forwards translated packets itself (`forward_in_dataplane`): a FIB lookup for
/// the new header and a redirect to the egress interface, with the hop the kernel would have
/// taken taken here. What the lookup cannot finish (no neighbour entry yet, a packet too big
/// for the route, a local destination) goes up the stack as usual.
pub const CONFIG_F_FIB: u8 = 1 << 5;
/// Set only in the `*_HAIRPIN` slots: this run translates the IPv4 half of a hairpinned error
/// (RFC 7757 section 4; `again_4to6` in the dataplane), whose addresses that were pool6
/// addresses on the way in go back under pool6.
pub const CONFIG_F_HAIRPIN_IN: u8 = 1 << 6;

/// `Config::pool6791v6` holds an address.
pub const CONFIG_F2_POOL6791_V6: u8 = 1 << 0;
/// The IPv4 source of translated errors from unmapped sources is one of this node's own
/// addresses: `pool6791` is one of them, or is not set (the daemon sets this flag then). The kernel
/// takes a packet arriving with its own source address for a martian unless the receiving
/// interface accepts local sources (`accept_local`), which the daemon sets on its translator
/// link only: so the fast path hands such errors to the link (`Handoff::OwnSource`), and
/// without a link the daemon sets `accept_local` on the attached interfaces.
pub const CONFIG_F2_POOL6791_LOCAL: u8 = 1 << 1;

/// RFC 7915 section 4.5: an unfragmented IPv4 UDP datagram without a checksum is dropped
/// (counted as `udp_zero_checksum`) instead of given one.
pub const CONFIG_F2_UDP_ZERO_DROP: u8 = 1 << 2;

/// pool6 is the Well-Known Prefix 64:ff9b::/96, which must not carry non-global IPv4
/// addresses (RFC 6052 section 3.1, `addr::wkp_may_embed`): packets that would need one are
/// dropped, and an ICMPv4 error from such a router takes an RFC 6791 source.
pub const CONFIG_F2_POOL6_WKP: u8 = 1 << 3;

/// RFC 7915 section 4.1: the traffic class of IPv4-to-IPv6 packets is zero instead of the TOS
/// (Jool's zeroize-traffic-class).
pub const CONFIG_F2_TC_ZERO: u8 = 1 << 4;

/// Stateful NAT64: address-dependent filtering (RFC 4787 section 5, RFC 6146 section 3.5):
/// an IPv4 packet on a binding makes a session only if it comes from an address the binding's
/// client has sent to (the `PEERS` map). Clear: endpoint-independent filtering, the RFC's
/// recommendation for transparency (RFC 4787 REQ-8, RFC 5382 REQ-3).
pub const CONFIG_F2_ADF: u8 = 1 << 5;

/// Stateful NAT64: IPv4 hosts may not open TCP connections on dynamic bindings (RFC 6146
/// section 3.5.2.2, "the security policy requires silently dropping externally initiated TCP
/// connections"); static bindings still accept them. Jool's drop-externally-initiated-tcp.
pub const CONFIG_F2_DROP_EXTERNAL_TCP: u8 = 1 << 6;

/// Stateful NAT64: an ICMPv4 error about a flow of a binding is translated with the quoted
/// packet's destination as its source (RFC 6146 section 3.4: an error's tuple is its quoted
/// packet's, reversed), rather than with its own source, the router's (Jool's
/// source-icmpv6-errors-better = false; the router's address is what traceroute needs).
pub const CONFIG_F2_ICMP_SRC_QUOTED: u8 = 1 << 7;

impl Config {
    pub const fn disabled() -> Self {
        Self {
            pool6: [0; 16],
            pool6_len: 0,
            flags: CONFIG_F_COPY_TOS,
            ipv6_mtu: 0,
            pool6791: [0; 4],
            pool4_addresses: 0,
            pool4_prefixes: 0,
            flags2: 0,
            tcp_ports: [0; 2],
            udp_ports: [0; 2],
            icmp_ids: [0; 2],
            per_client_limit: 0,
            pool6791v6: [0; 16],
            link_ifindex: 0,
            link_mac: [0; 6],
            shared4: [0; 4],
            tos: 0,
            _pad: [0; 1],
            mtu_floor4: 0,
            mtu_floor6: 0,
            det: crate::deterministic::Deterministic::OFF,
            block_size: 0,
            max_blocks: 0,
            eam6_span: crate::addr::EMPTY_SPAN6,
            eam4_span: crate::addr::EMPTY_SPAN4,
            pool4_span: crate::addr::EMPTY_SPAN4,
            shared4_alias: [0; 4],
            _pad2: [0; 4],
        }
    }
}

/// Value of the IPv6-keyed EAM trie: the IPv4 side of an RFC 7757 entry.
/// The trie key is the IPv6 prefix; the IPv4 suffix (32 - `v4_len` bits) sits right after it
/// (RFC 7757 section 3.2), `shift` bits above the end of the address (`addr::eam_shift`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EamToV4 {
    /// IPv4 prefix, network byte order.
    pub v4: [u8; 4],
    /// IPv4 prefix length in bits.
    pub v4_len: u8,
    /// IPv6 bits after the IPv4 suffix: the IPv6 suffix length less the IPv4 one.
    pub shift: u8,
    /// Bit flags, see `EAM_F_*` (only `EAM_F_LOCAL` here).
    pub flags: u8,
    pub _pad: [u8; 1],
}
const _: () = assert!(core::mem::size_of::<EamToV4>() == 8);

/// Most prefixes pool4 may have (the `POOL4` array map).
pub const POOL4_MAX_PREFIXES: u32 = 8;

/// One prefix of pool4, in the `POOL4` array: the addresses of all prefixes are numbered in
/// order, this one's from `first` to `first + count - 1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool4Prefix {
    /// Network address, network byte order.
    pub addr: [u8; 4],
    pub len: u8,
    pub _pad: [u8; 3],
    pub first: u32,
    pub count: u32,
}
const _: () = assert!(core::mem::size_of::<Pool4Prefix>() == 16);

/// Value of the IPv4-keyed EAM trie: the IPv6 side of an RFC 7757 entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EamToV6 {
    /// IPv6 prefix, network byte order.
    pub v6: [u8; 16],
    /// IPv4 prefix length of the entry; its suffix (32 - `v4_len` bits) replaces the last bits
    /// of `v6`. (An RFC 7757 entry whose IPv6 suffix is the longer is written as one /32
    /// entry per address, `v6` the whole address: `addr::eam_place`.)
    pub v4_len: u8,
    /// Bit flags, see `EAM_F_*`.
    pub flags: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<EamToV6>() == 20);

/// Not an EAM entry but (part of) a `pool6_ipv4` prefix: its IPv4 addresses stand for the
/// IPv6 hosts they embed under pool6 (RFC 6052; the stateless IVI case of RFC 7915 section
/// 4.1). The daemon writes it so that the EAM arithmetic gives pool6 + the address: with a /96
/// pool6 one entry per prefix (the address is the IPv6 address's last 32 bits), with shorter
/// ones an entry per address (the IPv4 bits straddle the u-octet). Kept in the same trie so
/// that the longest prefix decides between the two (an EAM entry inside such a prefix wins, as
/// RFC 7757 section 3.3 wants); the flag keeps an IPv6 host writing to one from hairpinning.
pub const EAM_F_POOL6: u8 = 1 << 0;

/// Not a mapping: this node's own IPv4 address inside an EAM (or `pool6_ipv4`) prefix, as a
/// /32 entry in EAM4 and, for an EAM entry, the /128 of its IPv6 counterpart in EAM6. The
/// longest match makes the address the node's: nothing to or from it is translated by the
/// entry (Jool does the same for its own addresses), and the node's traffic on it stays its
/// own. Written by the daemon from the node's addresses at start and on reload.
pub const EAM_F_LOCAL: u8 = 1 << 1;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` structs of integers and byte arrays with explicit padding:
    // every bit pattern is valid and there are no implicit padding bytes.
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::EamToV4 {}
    unsafe impl aya::Pod for super::EamToV6 {}
    unsafe impl aya::Pod for super::IfaceConfig {}
    unsafe impl aya::Pod for super::Pool4Prefix {}
    unsafe impl aya::Pod for crate::state::Bib6Key {}
    unsafe impl aya::Pod for crate::state::Bib4Key {}
    unsafe impl aya::Pod for crate::state::Bib6Value {}
    unsafe impl aya::Pod for crate::state::Bib4Value {}
    unsafe impl aya::Pod for crate::state::SynKey {}
    unsafe impl aya::Pod for crate::state::SessionKey {}
    unsafe impl aya::Pod for crate::state::SessionValue {}
    unsafe impl aya::Pod for crate::state::PeerKey {}
    unsafe impl aya::Pod for crate::state::HeldSyn {}
    unsafe impl aya::Pod for crate::state::BindingEvent {}
    unsafe impl aya::Pod for crate::state::BlockKey {}
    unsafe impl aya::Pod for crate::state::BlockOwner {}
    unsafe impl aya::Pod for crate::state::ClientBlocksKey {}
    unsafe impl aya::Pod for crate::state::ClientBlocks {}
}
