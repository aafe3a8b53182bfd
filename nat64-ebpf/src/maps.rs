//! Every map of the dataplane, one line each on who writes it. Layouts are in
//! `nat64_common::maps`; sizes in `nat64_common::maps` and `nat64_common::counters`.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray},
};
use nat64_common::{
    counters::STATS_LEN,
    maps::{Config, EAM_MAX_ENTRIES, EamToV4, EamToV6, IFACE_MAX_ENTRIES, IfaceConfig},
};

/// Run-time configuration in slot 0; written by the daemon at start and on reload.
#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// RFC 7757 EAM entries keyed by IPv6 prefix; written by the daemon from config.
#[map]
pub static EAM6: LpmTrie<[u8; 16], EamToV4> = LpmTrie::with_max_entries(EAM_MAX_ENTRIES, 0);

/// The same EAM entries keyed by IPv4 prefix; written by the daemon from config.
#[map]
pub static EAM4: LpmTrie<[u8; 4], EamToV6> = LpmTrie::with_max_entries(EAM_MAX_ENTRIES, 0);

/// Per-interface settings keyed by ifindex; written by the daemon when it attaches.
#[map]
pub static IFACES: HashMap<u32, IfaceConfig> = HashMap::with_max_entries(IFACE_MAX_ENTRIES, 0);

/// Per-CPU packet, byte and drop counters (`nat64_common::Counter`); written here, read and
/// summed by the daemon.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STATS_LEN, 0);
