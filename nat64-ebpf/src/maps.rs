//! Every map of the dataplane, one line each on who writes it. Layouts are in
//! `nat64_common::maps`; sizes in `nat64_common::maps` and `nat64_common::counters`.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use nat64_common::{
    counters::STATS_LEN,
    maps::{
        Config, EAM_MAX_ENTRIES, EamToV4, EamToV6, IFACE_MAX_ENTRIES, IfaceConfig,
        POOL4_MAX_PREFIXES, Pool4Prefix,
    },
    state::{
        BIB_DEFAULT_MAX_ENTRIES, BLOCK_MAX_ENTRIES, Bib4Key, Bib4Value, Bib6Key, Bib6Value,
        BindingEvent, BlockKey, BlockOwner, ClientBlocks, ClientBlocksKey, EVENTS_BYTES,
        FRAG_MAX_ENTRIES, Frag6Key, FragKey, HELD_SYN_MAX_ENTRIES, HeldSyn, PeerKey,
        SESSION_DEFAULT_MAX_ENTRIES, SessionKey, SessionValue, SynKey,
    },
};

/// Run-time configuration; written by the daemon at start and on reload: slot
/// `CONFIG_FAST_PATH` for `nat64_xdp`, slot `CONFIG_LINK` (the same with `CONFIG_F_ON_LINK`)
/// for `nat64_link`, and both again with `CONFIG_F_HAIRPIN_IN` (slots 2 and 3).
#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(nat64_common::maps::CONFIG_SLOTS, 0);
pub const CONFIG_FAST_PATH: u32 = nat64_common::maps::CONFIG_SLOT_FAST_PATH;
pub const CONFIG_LINK: u32 = nat64_common::maps::CONFIG_SLOT_LINK;

/// The programs the dispatchers (`nat64_xdp`, `nat64_link`) tail-call, one per direction;
/// filled by the daemon before it attaches anything, and pinned with the state, so that what
/// is attached keeps translating while no daemon runs (the kernel empties a program array
/// when nothing in user space holds it).
#[map]
pub static PROGS: ProgramArray = ProgramArray::with_max_entries(nat64_common::maps::PROGS_LEN, 0);
pub const PROG_XDP_6TO4: u32 = nat64_common::maps::PROG_XDP_6TO4;
pub const PROG_XDP_4TO6: u32 = nat64_common::maps::PROG_XDP_4TO6;
pub const PROG_LINK_6TO4: u32 = nat64_common::maps::PROG_LINK_6TO4;
pub const PROG_LINK_4TO6: u32 = nat64_common::maps::PROG_LINK_4TO6;

/// RFC 7757 EAM entries keyed by IPv6 prefix; written by the daemon from config. The address
/// is four native-order words here (`packet::addr_words`), the same sixteen bytes as the
/// daemon's `[u8; 16]`: the key on the stack is then filled with four 4-byte stores, not
/// sixteen single bytes.
#[map]
pub static EAM6: LpmTrie<[u32; 4], EamToV4> = LpmTrie::with_max_entries(EAM_MAX_ENTRIES, 0);

/// The same EAM entries keyed by IPv4 prefix; written by the daemon from config.
#[map]
pub static EAM4: LpmTrie<[u8; 4], EamToV6> = LpmTrie::with_max_entries(EAM_MAX_ENTRIES, 0);

/// Stateful NAT64 bindings keyed by the IPv6 side (`nat64_common::state`): created here on a
/// flow's first outbound packet, refreshed by each packet, removed by the daemon's sweeper.
/// Preallocated hash maps, sized by the daemon from config: a full table refuses new flows
/// and never evicts a live binding (an LRU map would, against RFC 6888 REQ-11).
#[map]
pub static BIB6: HashMap<Bib6Key, Bib6Value> =
    HashMap::with_max_entries(BIB_DEFAULT_MAX_ENTRIES, 0);

/// The same bindings keyed by the IPv4 side; created and removed with their `BIB6` twins.
#[map]
pub static BIB4: HashMap<Bib4Key, Bib4Value> =
    HashMap::with_max_entries(BIB_DEFAULT_MAX_ENTRIES, 0);

/// Stateful NAT64 sessions (RFC 6146 section 3.5): one per binding and remote IPv4 endpoint,
/// with its own TCP state and time, made here by the first packet between the two (either
/// way, as filtering allows: `stateful::session_out`, `stateful::session_in`), removed by
/// the daemon's sweeper, which keeps a binding while a session of it lives. Preallocated and
/// sized from config (`max_sessions`): a full table refuses new sessions, never evicts one.
#[map]
pub static SESSIONS: HashMap<SessionKey, SessionValue> =
    HashMap::with_max_entries(SESSION_DEFAULT_MAX_ENTRIES, 0);

/// Stateful NAT64 with address-dependent filtering: the IPv4 addresses each binding's client
/// has sent to (`PeerKey`), written here when a session to one is made, removed by the
/// sweeper once no session names it. Sized like `SESSIONS`, but not preallocated: without
/// address-dependent filtering it stays empty and costs nothing.
#[map]
pub static PEERS: HashMap<PeerKey, u64> = HashMap::with_max_entries(
    SESSION_DEFAULT_MAX_ENTRIES,
    aya_ebpf::bindings::BPF_F_NO_PREALLOC,
);

/// Stateful NAT64, IPv4 to IPv6: the binding of each fragmented datagram to pool4, recorded
/// from its first fragment (the only one with the port) for the fragments that follow.
#[map]
pub static FRAGS: LruHashMap<FragKey, Bib4Value> =
    LruHashMap::with_max_entries(FRAG_MAX_ENTRIES, 0);

/// Stateful NAT64, IPv6 to IPv4: the pool4 address of each fragmented datagram's binding,
/// recorded from its first fragment for the fragments that follow. Not pinned: a restart
/// costs only the late fragments of datagrams in flight.
#[map]
pub static FRAGS6: LruHashMap<Frag6Key, [u8; 4]> =
    LruHashMap::with_max_entries(FRAG_MAX_ENTRIES, 0);

/// Stateful NAT64: unsolicited TCP SYNs held for 6 seconds (RFC 6146 section 3.5.2.2),
/// inserted here (`stateful::hold_syn`), taken by the binding of a simultaneous open
/// (`stateful::bind`), and answered with ICMP Port Unreachable and removed by the daemon when
/// their time is up. A preallocated hash map: a full table holds no more.
#[map]
pub static HELD_SYNS: HashMap<SynKey, HeldSyn> = HashMap::with_max_entries(HELD_SYN_MAX_ENTRIES, 0);

/// Bindings made and refused (`BindingEvent`), pushed by `stateful::outbound` as they happen;
/// read by the daemon at once (its binding log). Pinned with the state: what a dataplane with
/// no daemon running pushes waits for the next one. A full buffer loses the event, counted as
/// `Counter::EventsLost`; the binding itself is made regardless.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// pool4's prefixes in order (`Pool4Prefix`); written by the daemon from config.
#[map]
pub static POOL4: Array<Pool4Prefix> = Array::with_max_entries(POOL4_MAX_PREFIXES, 0);

/// The same prefixes as a trie, for "is this IPv4 address in pool4?"; the value is the
/// prefix's index in `POOL4`.
#[map]
pub static POOL4_LPM: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(POOL4_MAX_PREFIXES, 0);

/// Dynamic bindings per IPv6 /64 (`state::client_key`): incremented here when a binding is
/// made, recounted from the binding table by the daemon's sweeper (which removes bindings).
#[map]
pub static CLIENTS: HashMap<[u8; 8], u64> = HashMap::with_max_entries(BIB_DEFAULT_MAX_ENTRIES, 0);

/// Port blocks (`stateful.port_block_size`): the owner of each allocated block. The dataplane
/// allocates a block by inserting it (`BPF_NOEXIST`), the daemon's sweeper releases it once no
/// binding or held-down port is left in it. Not preallocated: without blocks it stays empty.
/// Sized by the daemon like the binding tables (a block outlives its last binding only by
/// its ports' hold-down, which the binding table holds too).
#[map]
pub static BLOCKS: HashMap<BlockKey, BlockOwner> =
    HashMap::with_max_entries(BLOCK_MAX_ENTRIES, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// Port blocks: each client /64's blocks per protocol, where its new bindings take ports.
/// Written here when a block is allocated, rebuilt from `BLOCKS` by the sweeper.
#[map]
pub static CLIENT_BLOCKS: HashMap<ClientBlocksKey, ClientBlocks> = HashMap::with_max_entries(
    BIB_DEFAULT_MAX_ENTRIES,
    aya_ebpf::bindings::BPF_F_NO_PREALLOC,
);

/// This node's own IPv6 addresses (value unused), written by the daemon at start, on reload
/// and at each re-sync: an ICMPv6 error from one of them that reaches the translator link is
/// the node's own (`rfc6791::from_this_node`).
#[map]
pub static NODE6: HashMap<[u8; 16], u8> =
    HashMap::with_max_entries(nat64_common::maps::NODE6_MAX_ENTRIES, 0);

/// Per-interface settings keyed by ifindex; written by the daemon when it attaches.
#[map]
pub static IFACES: HashMap<u32, IfaceConfig> = HashMap::with_max_entries(IFACE_MAX_ENTRIES, 0);

/// The parameters of `bpf_fib_lookup` (`forward.rs`), one slot per CPU: 64 bytes kept off the
/// 512-byte stack.
#[map]
pub static FIB: PerCpuArray<aya_ebpf::bindings::bpf_fib_lookup> =
    PerCpuArray::with_max_entries(1, 0);

/// The route MTUs `egress` looked up, for a second (`egress::ROUTE_MTU_TTL_NS`): the kernel's
/// lookup costs 50 ns (IPv4) to 130 ns (IPv6) here, and on a node with one narrower interface
/// (a tunnel's, say) every full-size packet with DF would ask it. Shared by all CPUs: written
/// once a second per destination, read by every such packet. Not pinned: a new start asks
/// the FIB again.
#[map]
pub static ROUTE_MTU: LruHashMap<RouteKey, RouteMtu> =
    LruHashMap::with_max_entries(ROUTE_MTU_ENTRIES, 0);

/// Destinations whose route MTU `ROUTE_MTU` remembers (least recently used forgotten first).
pub const ROUTE_MTU_ENTRIES: u32 = 16384;

/// A route lookup as `egress` makes it: the destination (IPv4 in the first word), the source
/// (IPv4; 0 for IPv6, looked up without one), the interface it starts from (the receiving
/// one, as the kernel's lookup for a forwarded packet) and the family. No padding: every
/// byte of a hash key counts.
#[repr(C)]
pub struct RouteKey {
    pub dst: [u32; 4],
    pub src: u32,
    pub ifindex: u32,
    pub family: u32,
}

/// The MTU of a route and when it was looked up (`bpf_ktime_get_coarse_ns`).
#[repr(C)]
pub struct RouteMtu {
    pub mtu: u32,
    pub _pad: u32,
    pub at_ns: u64,
}

/// The longest RFC 4884 extension a translated ICMP error keeps: an ICMPv6 error of 1280
/// bytes with the least quote (`nat64_common::rfc4884`).
pub const EXTENSION_MAX: usize =
    nat64_common::rfc4884::MAX_BODY6 - nat64_common::rfc4884::MIN_QUOTE;

/// The most bytes before the padding of an ICMP error that grows (its headers and a quote
/// shorter than 128 bytes), moved when the frame grows at its start (`extension.rs`).
pub const FRONT_MAX: usize = 256;

/// The buffer an RFC 4884 extension moves through (`extension.rs`), one per CPU: 128 bytes
/// that stay zero (the quote's padding is copied from them), room for the front of a frame
/// that grows, then the extension.
#[map]
pub static EXTENSION: PerCpuArray<
    [u8; nat64_common::rfc4884::MIN_QUOTE + FRONT_MAX + EXTENSION_MAX],
> = PerCpuArray::with_max_entries(1, 0);

/// Working state of the side paths (`scratch.rs`: ICMP errors, hairpinning), one slot per CPU. Values kept here
/// instead of in locals do not take BPF stack slots across helper calls (the stack is 512
/// bytes). XDP runs to completion on its CPU, so the slot is private to the packet at hand.
#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// What a dispatcher tells the direction program it tail-calls, one word per CPU, set right
/// before the call (`nat64_link`: `MARK_LINK`; `again_4to6`: `MARK_AGAIN` as well) and read
/// and cleared by the program, which takes the `CONFIG` slot it names. Pinned with the state
/// (`STATE_MAPS` in the daemon), unlike `SCRATCH`: the dispatchers a last run left attached
/// call the programs a new start puts in `PROGS`, and both must read the one word. Its layout,
/// a `u32` of frozen bits (`nat64_common::maps::MARK_*`), does not change.
#[map]
pub static LINKMARK: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

pub use nat64_common::maps::{MARK_AGAIN, MARK_LINK};

/// Sets this CPU's [`LINKMARK`] word for the program about to be tail-called.
#[inline(always)]
pub fn set_mark(v: u32) {
    if let Some(m) = LINKMARK.get_ptr_mut(0) {
        // SAFETY: this CPU's slot, for this run only.
        unsafe { *m = v };
    }
}

/// See `SCRATCH`. Only the dataplane uses it.
#[repr(C)]
pub struct Scratch {
    /// Sums of the checksum words that leave and that come (RFC 1624 update at the end).
    pub removed: u32,
    pub added: u32,
    /// 6 to 4: outer source, outer destination, inner source, inner destination.
    pub addr4: [[u8; 4]; 4],
    /// 4 to 6: the same four, in IPv6.
    pub addr6: [[u8; 16]; 4],
    /// The translated ICMP header; its checksum is filled in last.
    pub icmp: [u8; 8],
    pub check_in: u16,
    pub tot_len: u16,
    pub inner_tot: u16,
    pub inner_plen: u16,
    pub outer_tos: u8,
    pub outer_ttl: u8,
    pub inner_tos: u8,
    pub inner_ttl: u8,
    pub inner_proto: u8,
    /// 6 to 4: the transport protocol `translate` found after any extension headers.
    pub l4_proto: u8,
    /// 6 to 4: the quoted packet was a fragment (its Fragment header gives the IPv4 fields).
    pub inner_fragmented: u8,
    /// The error being translated takes an RFC 6791 source (`rfc6791`), counted once done (1),
    /// or is to be handed to the translator link if it needs one (2).
    pub rfc6791: u8,
    pub inner_id: [u8; 2],
    pub inner_frag: [u8; 2],
    /// 6 to 4: the ICMPv6 error itself had a Fragment header (atomic), with this
    /// Identification (its low 16 bits).
    pub outer_fragmented: u8,
    pub outer_id: [u8; 2],
    /// 6 to 4: where `translate` found the transport header (after any extension headers);
    /// the error and hairpin paths continue from there.
    pub l4_off: u16,
    /// Stateful NAT64, ICMP errors: where the quoted port word that the binding rewrites
    /// sits (0: none; 1 while a 6-to-4 error waits for its binding), and what it becomes.
    pub bound_port_at: u16,
    pub bound_port6: [u8; 2],
    /// 6 to 4, stateful NAT64: the keys and values of a binding being looked up or made
    /// (`stateful.rs`), here rather than on the stack, which they would overflow.
    pub bib6_key: Bib6Key,
    pub bib6_val: Bib6Value,
    pub bib4_key: Bib4Key,
    pub bib4_val: Bib4Value,
    pub client: [u8; 8],
    /// Stateful NAT64, either direction: the port word the binding replaced and its new
    /// value (both 0 when none changed), for the checksum update.
    pub port_old: u32,
    pub port_new: u32,
    /// TC: the sum of the header window before translation (`tc::complete_sum_before`), kept
    /// here so that no register or stack slot lives across the core (which would multiply
    /// the verifier's states), with the window's transport length (0: no complete checksum)
    /// and the ethertype the packet came with.
    pub tc_sum: u32,
    /// 6 to 4: the RFC 6791 source an error takes if nothing else maps its source (zero: none).
    pub rfc6791_src: [u8; 4],
    /// ICMP errors: the translated body's layout (`nat64_common::rfc4884::Layout`): the quote
    /// kept, the padding after it, the extension and where it sits before it moves.
    pub keep: u16,
    pub pad: u16,
    pub ext_len: u16,
    pub ext_from: u16,
    /// 6 to 4: the code of the ICMPv6 Destination Unreachable `unreachable` answers with.
    pub answer6: u8,
    pub tc_sum_l4: u16,
    pub tc_family: u16,
    /// Stateful NAT64, 6 to 4: the IPv4 destination and port of a TCP flow being bound, for
    /// the simultaneous-open lookup (`stateful::bind`); the port is zero for other protocols.
    pub remote4: [u8; 4],
    pub remote_port: [u8; 2],
    /// A SYN being held (`stateful::hold_syn`): its key and value, built here (the value is
    /// larger than the stack allows).
    pub syn_key: SynKey,
    pub held: HeldSyn,
    /// 6 to 4: the MTU a Packet Too Big that `unreachable` answers with carries (network
    /// order), when `answer6` is `unreachable::PACKET_TOO_BIG`; the pointer of a Parameter
    /// Problem, when it is `unreachable::PARAMETER_PROBLEM`.
    pub ptb_mtu: [u8; 4],
    /// Stateful NAT64: the session being looked up or made (`stateful::session_out`,
    /// `stateful::session_in`), its value, and the TCP flags of its packet.
    pub sess_key: SessionKey,
    pub sess_val: SessionValue,
    pub sess_flags: u8,
    /// Stateful NAT64: the coarse time of the packet at hand, read once by its binding's
    /// lookup (`stateful::bind`, `stateful::inbound`) and reused for its session (a helper
    /// call less per packet).
    pub now_ns: u64,
    pub peer: PeerKey,
    /// Stateful NAT64, 6 to 4: the binding event being pushed (`stateful::outbound`).
    pub event: BindingEvent,
    /// Stateful NAT64, 6 to 4: the search for a free port of a new binding
    /// (`stateful::try_port`), and the client's port blocks it searches.
    pub tries: crate::stateful::Tries,
    pub blocks_key: ClientBlocksKey,
    pub blocks: ClientBlocks,
    pub block_key: BlockKey,
    pub block_owner: BlockOwner,
    /// 6 to 4: the ICMPv6 error at hand is about a hairpinned flow (its destination is an EAM
    /// host's IPv4 alias under pool6): once translated to IPv4, it goes through the 4-to-6
    /// program as well (`again_4to6` in main.rs).
    pub hairpin_error: u8,
    /// Always zero: nothing writes it. Added to a packet offset, it makes the pointer one of
    /// variable offset to the verifier, whose bounds checks then stay with that pointer
    /// (`packet::sum_words`); checks on constant offsets widen every packet pointer the
    /// program holds, in every frame, and leave the caller one state per range.
    pub zero: u8,
}

/// Per-CPU packet, byte and drop counters (`nat64_common::Counter`); written here, read and
/// summed by the daemon.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STATS_LEN, 0);
