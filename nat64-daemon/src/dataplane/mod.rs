//! The eBPF dataplane as the daemon sees it: the embedded object and loading it (with the
//! verifier's log kept in errors), here with swapping a whole new copy in on reload; writing
//! configuration into maps (`config_maps`); attaching and taking attachments over
//! (`attach`); the state tables and counters (`tables`).

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapError, PerCpuArray, lpm_trie::Key},
    programs::{
        LinkOrder, ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
        xdp::XdpLink,
    },
};
use nat64_common::{
    counters::STATS_LEN,
    maps::{
        CONFIG_F_HAIRPIN_IN, CONFIG_F_ON_LINK, CONFIG_SLOT_FAST_PATH,
        CONFIG_SLOT_FAST_PATH_HAIRPIN, CONFIG_SLOT_LINK, CONFIG_SLOT_LINK_HAIRPIN, EamToV4,
        IFACE_F_PARTIAL_CSUM, IfaceConfig, Pool4Prefix,
    },
    state::{HeldSyn, SynKey},
};

use crate::config::{self, Config};
use tracing::{info, warn};

mod attach;
mod config_maps;
mod tables;

use attach::link_err;
pub use attach::{
    InterfaceAttached, kernel_has_tcx, partial_checksums, pin_interface, pin_name, resolve_hook,
    virtual_link,
};

/// The dataplane object built by build.rs from `nat64-ebpf` (never stale: a failed eBPF build
/// fails the daemon's build).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nat64"));

/// Name of the XDP entry point in `nat64-ebpf/src/main.rs`: the fast path.
pub const XDP_PROGRAM: &str = "nat64_xdp";
/// The entry point for the far end of the translator link.
pub const LINK_PROGRAM: &str = "nat64_link";
/// The entry point for the kernel's end of the translator link (passes everything).
pub const PASS_PROGRAM: &str = "nat64_pass";
/// The program on the translator link's kernel side (see `nat64_return` in the dataplane).
pub const RETURN_PROGRAM: &str = "nat64_return";
/// The fast path at TC ingress (`hook = "tc"`).
pub const TC_PROGRAM: &str = "nat64_tc";
/// Never attached: the daemon runs it to hand the kernel packets it made (`Dataplane::inject`).
pub const INJECT_PROGRAM: &str = "nat64_inject";
/// The programs the dispatchers `nat64_xdp` and `nat64_link` tail-call (the `PROGS` map),
/// by slot: one per direction, each verified on its own, and the same two for both
/// dispatchers (`nat64_link` marks its frames, and a direction program takes the link's
/// configuration for them).
pub const TAIL_PROGRAMS: [(u32, &str); 4] = [
    (nat64_common::maps::PROG_XDP_6TO4, "nat64_xdp_6to4"),
    (nat64_common::maps::PROG_XDP_4TO6, "nat64_xdp_4to6"),
    (nat64_common::maps::PROG_LINK_6TO4, "nat64_xdp_6to4"),
    (nat64_common::maps::PROG_LINK_4TO6, "nat64_xdp_4to6"),
];
const XDP_PROGRAMS: [&str; 6] = [
    XDP_PROGRAM,
    LINK_PROGRAM,
    PASS_PROGRAM,
    RETURN_PROGRAM,
    TAIL_PROGRAMS[0].1,
    TAIL_PROGRAMS[1].1,
];
/// The maps pinned in the state directory and adopted by the next daemon (see
/// `load_with_state`): the ones that hold state worth keeping across a restart, and `PROGS`,
/// which must outlive the daemon for its attached dispatchers to keep translating (the
/// kernel empties a program array that nothing in user space holds). `IFACES` too: once a
/// new daemon's programs are in `PROGS`, the dispatchers still attached call them with frames
/// of interfaces it has not attached yet (or never will, when its start fails), and without
/// their settings a veth's partial checksums would be taken for full ones; and `LINKMARK`,
/// through which those dispatchers tell them a frame is the translator link's.
pub const STATE_MAPS: [&str; 14] = [
    "IFACES",
    "LINKMARK",
    "BIB6",
    "BIB4",
    "SESSIONS",
    "PEERS",
    "CLIENTS",
    "BLOCKS",
    "CLIENT_BLOCKS",
    "FRAGS",
    "HELD_SYNS",
    "STATS",
    "PROGS",
    "EVENTS",
];

/// The sizes of the stateful tables (from `stateful.max_bindings` and `max_sessions`; one
/// entry each without stateful NAT64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TableSizes {
    bindings: u32,
    sessions: u32,
}

/// What can go wrong between the object and a running dataplane.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The object could not be parsed or its maps created.
    #[error("loading the eBPF object failed: {0}")]
    Object(#[from] EbpfError),
    /// The object lacks a program or map this daemon expects: daemon and object disagree.
    #[error("the eBPF object has no {0}; the daemon and its dataplane are out of step")]
    Missing(&'static str),
    /// The kernel refused a program; the message carries the verifier log.
    #[error("the kernel refused program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    /// Attaching failed (interface gone, mode unsupported by the driver, another program).
    #[error("attaching to {iface} ({hook}) failed: {source}")]
    Attach {
        iface: String,
        hook: Hook,
        #[source]
        source: ProgramError,
    },
    /// Taking over or pinning an attachment failed.
    #[error("{what}: {source}")]
    Link {
        what: String,
        #[source]
        source: LinkError,
    },
    /// Pinning an attachment failed.
    #[error("pinning {what}: {source}")]
    Pin {
        what: String,
        #[source]
        source: aya::pin::PinError,
    },
    /// A map operation failed.
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    /// A packet the daemon made could not be handed to the kernel.
    #[error("injecting a packet: {0}")]
    Inject(String),
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> DataplaneError {
    move |source| DataplaneError::Map { map, source }
}

/// What the dataplane needs to know about an interface (the `IFACES` map).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceSettings {
    /// Partial transport checksums can arrive here (see `config::PartialChecksums`).
    pub partial_checksums: bool,
    /// The MTU, for translated Packet Too Big arithmetic; 0 if unknown.
    pub mtu: u32,
    /// The IPv4 address the dataplane's own Fragmentation Needed errors come from.
    pub addr4: Option<std::net::Ipv4Addr>,
}

/// A loaded dataplane and the interfaces it is attached to. Dropping it detaches what is not
/// pinned; [`Dataplane::detach_all`] detaches everything, [`Dataplane::leave_running`] leaves
/// the pinned attachments translating.
pub struct Dataplane {
    ebpf: Ebpf,
    links: Vec<Attachment>,
    /// The directory the state maps are pinned in (`state_dir/vN`), if any.
    state: Option<std::path::PathBuf>,
    /// The directory attachments are pinned in (`state_dir/links`), if any: a pinned XDP link
    /// stays attached, running its program over its maps, while no daemon runs.
    link_pins: Option<std::path::PathBuf>,
    /// The size of the binding tables and of the session table this object was loaded with.
    sizes: TableSizes,
    /// The node's own IPv4 addresses (with their interfaces), kept its own inside EAM and
    /// `pool6_ipv4` prefixes (`Config::local_exclusions`); the daemon sets them
    /// ([`Dataplane::keep_own_addresses`]), a bare dataplane has none.
    own4: Vec<(String, std::net::Ipv4Addr)>,
    /// The translator link's kernel side (ifindex, MAC), where packets the daemon makes enter
    /// the kernel ([`Dataplane::inject`]); set by [`Dataplane::apply`].
    link_side: Option<(u32, [u8; 6])>,
    /// The MTU floors last written into the configuration (`Config::mtu_floor4` and `6`), and
    /// the translator link's two ends, which do not count.
    mtu_floors: (u16, u16),
    link_names: Vec<String>,
    /// The node's addresses in pool4 beside the one shared that the daemon last warned about
    /// (`apply` runs at start, again with the link, and on every re-sync): said once.
    unshared4: Vec<std::net::Ipv4Addr>,
}

/// Where a program is attached: XDP in a mode, or TC ingress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Xdp(XdpMode),
    /// A tcx link (Linux 6.6), which can be pinned and swapped like an XDP link.
    Tc,
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hook::Xdp(XdpMode::Skb) => f.write_str("generic XDP"),
            Hook::Xdp(_) => f.write_str("native XDP"),
            Hook::Tc => f.write_str("TC ingress"),
        }
    }
}

/// An attachment: interface, its index, the program, its hook and the kernel link.
struct Attachment {
    iface: String,
    ifindex: u32,
    program: &'static str,
    hook: Hook,
    handle: Handle,
}

/// A kernel link this process holds.
enum Link {
    Xdp(XdpLink),
    Tc(SchedClassifierLink),
}

impl Link {
    fn into_fd(self) -> Result<FdLink, LinkError> {
        match self {
            Link::Xdp(l) => FdLink::try_from(l),
            Link::Tc(l) => FdLink::try_from(l),
        }
    }
}

/// Who keeps an attachment alive.
enum Handle {
    /// This process: it ends when the daemon does.
    Owned(Link),
    /// A pin on bpffs: it ends when the pin is removed.
    Pinned(PinnedLink, std::path::PathBuf),
}

/// How an attachment came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// A new XDP link.
    New,
    /// A pinned link an earlier daemon left translating, now running this daemon's program
    /// (swapped atomically: not one packet goes untranslated).
    TakenOver,
}

impl Dataplane {
    /// Loads the object, has the kernel verify the program and writes `cfg` into the maps.
    /// Attaches nothing.
    pub fn load(cfg: &Config) -> Result<Self, DataplaneError> {
        Self::load_with_state(cfg, None)
    }

    /// Like [`Dataplane::load`], with the maps that hold state (bindings, fragments, per-client
    /// counts, counters) pinned in `state` (a directory on a bpf filesystem): maps already
    /// pinned there are adopted, the others created and pinned.
    pub fn load_with_state(
        cfg: &Config,
        state: Option<&std::path::Path>,
    ) -> Result<Self, DataplaneError> {
        Self::load_keeping(cfg, state, Vec::new())
    }

    /// [`Dataplane::load_with_state`], keeping the node's own addresses `own4` its own from
    /// the first configuration written ([`Dataplane::keep_own_addresses`]).
    pub fn load_keeping(
        cfg: &Config,
        state: Option<&std::path::Path>,
        own4: Vec<(String, std::net::Ipv4Addr)>,
    ) -> Result<Self, DataplaneError> {
        // The binding tables are sized from config (preallocated: a full table refuses new
        // flows rather than evicting); without stateful NAT64 they stay a single entry.
        let sizes = TableSizes {
            bindings: cfg.stateful.as_ref().map_or(1, |s| s.max_bindings),
            sessions: cfg.stateful.as_ref().map_or(1, |s| s.session_capacity()),
        };
        let (ebpf, resized) = Self::load_object(sizes, state)?;
        let mut dp = Self {
            ebpf,
            links: Vec::new(),
            state: state.map(std::path::Path::to_path_buf),
            link_pins: None,
            sizes,
            own4,
            link_side: None,
            unshared4: Vec::new(),
            mtu_floors: (0, 0),
            link_names: Vec::new(),
        };
        dp.apply(cfg)?;
        if resized && cfg.stateful.is_some() {
            let gone = dp.bindings()?.remove_orphans();
            if gone > 0 {
                warn!(
                    halves = gone,
                    "binding halves left without their other half by the resize: removed"
                );
            }
        }
        Ok(dp)
    }

    /// Loads the object and has the kernel verify every program; the state maps are adopted
    /// from (or pinned in) `state`.
    fn load_object(
        sizes: TableSizes,
        state: Option<&std::path::Path>,
    ) -> Result<(Ebpf, bool), DataplaneError> {
        let TableSizes { bindings, sessions } = sizes;
        let mut loader = EbpfLoader::new();
        // Without stateful NAT64 (one-entry binding tables) no SYN is ever held.
        let held = if bindings > 1 {
            nat64_common::state::HELD_SYN_MAX_ENTRIES
        } else {
            1
        };
        let sized = [
            ("BIB6", bindings),
            ("BIB4", bindings),
            ("CLIENTS", bindings),
            ("CLIENT_BLOCKS", bindings),
            ("BLOCKS", bindings),
            ("SESSIONS", sessions),
            ("PEERS", sessions),
            ("HELD_SYNS", held),
            // Another version's counters, laid out otherwise (`refill` does not carry them).
            ("STATS", STATS_LEN),
        ];
        for (name, size) in sized {
            loader.map_max_entries(name, size);
        }
        let resized = match state {
            Some(dir) => {
                for name in STATE_MAPS {
                    loader.map_pin_path(name, dir.join(name));
                }
                unpin_resized(dir, &sized)
            }
            None => Vec::new(),
        };
        let loaded = loader
            .load(EBPF_OBJECT)
            .map_err(DataplaneError::from)
            .and_then(|mut ebpf| verify_in_parallel(&mut ebpf).map(|()| ebpf));
        let mut ebpf = match loaded {
            Ok(ebpf) => ebpf,
            Err(e) => {
                // Nothing was swapped in: the old tables go back where they were (the loader
                // pins each new map as it makes it, before the verifier runs).
                for r in resized {
                    let _ = std::fs::remove_file(&r.path);
                    if let Err(err) = r.map.pin(&r.path) {
                        warn!(map = r.name, error = %err, "cannot pin a resized table back");
                    }
                }
                return Err(e);
            }
        };
        let any = !resized.is_empty();
        for r in resized {
            refill(&mut ebpf, r);
        }
        Ok((ebpf, any))
    }

    /// Replaces the whole dataplane configuration at once: a new copy of the programs, with
    /// configuration maps of their own filled from `cfg` and the pinned state maps shared, is
    /// swapped in on every attachment with one atomic link update each. Every packet sees
    /// either the old configuration or the new one, never a mix. Without pinned state the
    /// maps are written in place instead ([`Dataplane::apply`]), which is atomic per entry.
    pub fn replace(&mut self, cfg: &Config) -> Result<(), DataplaneError> {
        let Some(state) = self.state.clone() else {
            return self.apply(cfg);
        };
        let mut next = Self {
            ebpf: Self::load_object(self.sizes, Some(&state))?.0,
            links: Vec::new(),
            state: Some(state),
            link_pins: self.link_pins.clone(),
            sizes: self.sizes,
            own4: self.own4.clone(),
            link_side: None,
            unshared4: self.unshared4.clone(),
            mtu_floors: (0, 0),
            link_names: Vec::new(),
        };
        // Interface settings are per interface, not per configuration: the new programs share
        // the pinned `IFACES` (see `STATE_MAPS`), so the attached dispatchers find them there
        // as soon as `apply` points the program array at those programs.
        next.apply(cfg)?;
        for a in std::mem::take(&mut self.links) {
            let Attachment {
                iface,
                ifindex,
                program,
                hook,
                handle,
            } = a;
            let what = || format!("the attachment to {iface}");
            // No early return from here on: every attachment taken out of `self.links` ends
            // in `next.links`, swapped or attached anew, or is logged as lost.
            let (link, pin) = match handle {
                Handle::Owned(l) => (l.into_fd().map_err(link_err(what())), None),
                Handle::Pinned(p, path) => (Ok(FdLink::from(p)), Some(path)),
            };
            let swapped = link
                .and_then(|link| next.swap(program, link, hook, &iface))
                .and_then(|l| next.hold(l, pin.as_deref(), &iface));
            let handle = match swapped {
                Ok(h) => h,
                Err(e) => {
                    // Not expected (same program type, same hook); attach anew rather than
                    // leave the interface without a program.
                    tracing::error!(interface = %iface, error = %e, "swapping the program failed; attaching anew");
                    if let Some(path) = &pin {
                        let _ = std::fs::remove_file(path);
                    }
                    match next.attach_program(program, &iface, ifindex, hook) {
                        Ok(_) => continue,
                        Err(e) => {
                            tracing::error!(interface = %iface, error = %e, "attaching anew failed: the interface is not translating");
                            continue;
                        }
                    }
                }
            };
            next.links.push(Attachment {
                iface,
                ifindex,
                program,
                hook,
                handle,
            });
        }
        *self = next;
        Ok(())
    }

    /// The node's own IPv4 addresses, for the next [`Dataplane::apply`] to keep its own inside
    /// EAM and `pool6_ipv4` prefixes (the daemon's, at start and on reload).
    pub fn keep_own_addresses(&mut self, own4: Vec<(String, std::net::Ipv4Addr)>) {
        self.own4 = own4;
    }
}

/// The descriptor of a map, for the calls aya does not make (fdinfo, batch lookups). Valid as
/// long as the map is.
fn raw_fd(map: &aya::maps::Map) -> Option<std::os::fd::RawFd> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    match map {
        aya::maps::Map::HashMap(m)
        | aya::maps::Map::LruHashMap(m)
        | aya::maps::Map::Array(m)
        | aya::maps::Map::PerCpuArray(m)
        | aya::maps::Map::LpmTrie(m) => Some(m.fd().as_fd().as_raw_fd()),
        _ => None,
    }
}

/// The program `name` of the object, as its type (`Xdp`, `SchedClassifier`).
fn typed<'a, P>(ebpf: &'a Ebpf, name: &'static str) -> Result<&'a P, DataplaneError>
where
    &'a P: TryFrom<&'a aya::programs::Program, Error = ProgramError>,
{
    ebpf.program(name)
        .ok_or(DataplaneError::Missing(name))?
        .try_into()
        .map_err(|source| DataplaneError::Program { name, source })
}

/// Has the kernel verify every program, on as many threads as the node has CPUs: verification
/// is most of the time to ready (about 0.5 s on one CPU here, nearly all of it the two
/// direction programs and the TC one; docs/profile.md), and the kernel verifies programs
/// independently of each other.
fn verify_in_parallel(ebpf: &mut Ebpf) -> Result<(), DataplaneError> {
    use aya::programs::Program;
    // The heaviest first: the direction programs, then TC.
    let order: Vec<&'static str> = TAIL_PROGRAMS
        .iter()
        .map(|(_, n)| *n)
        .chain([TC_PROGRAM, INJECT_PROGRAM])
        .chain(XDP_PROGRAMS.iter().copied())
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    let mut progs: Vec<(&'static str, &mut Program)> = Vec::new();
    for (name, p) in ebpf.programs_mut() {
        if let Some(n) = order.iter().find(|n| **n == name) {
            progs.push((n, p));
        }
    }
    if let Some(missing) = order.iter().find(|n| !progs.iter().any(|(m, _)| m == *n)) {
        return Err(DataplaneError::Missing(missing));
    }
    progs.sort_by_key(|(n, _)| order.iter().position(|o| o == n));
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, progs.len());
    // A shared queue, heaviest first: each thread takes the next program when it is done
    // with one, so the light ones fill in around the heavy ones (with two CPUs: 6-to-4 on
    // one, 4-to-6 then TC on the other, about even).
    let queue = std::sync::Mutex::new(progs.into_iter());
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    loop {
                        // Not held across the load: a poisoned lock means another thread
                        // panicked, and this one stops too.
                        let next = queue.lock().map(|mut q| q.next());
                        let Ok(Some((name, p))) = next else {
                            return Ok(());
                        };
                        let r = match p {
                            Program::Xdp(x) => x.load(),
                            Program::SchedClassifier(t) => t.load(),
                            _ => return Err(DataplaneError::Missing(name)),
                        };
                        r.map_err(|source| DataplaneError::Program { name, source })?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("a verifier thread panicked"))
    })
}

/// [`typed`], mutable.
fn typed_mut<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, DataplaneError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(DataplaneError::Missing(name))?
        .try_into()
        .map_err(|source| DataplaneError::Program { name, source })
}

/// Whether translated ICMPv6 errors from routers with no IPv4 mapping leave from one of this
/// node's own addresses (RFC 6791): `pool6791` unset (the address toward the destination), or
/// set to an address an interface holds. The kernel accepts those only on an interface with
/// `accept_local` (see `CONFIG_F2_POOL6791_LOCAL`).
pub fn own_rfc6791_source(cfg: &Config) -> bool {
    match cfg.pool6791 {
        None => true,
        Some(a) => crate::sys::ipv4_addrs().iter().any(|(_, b)| *b == a),
    }
}

/// A pinned state table of another size than the configuration's, unpinned before the load
/// ([`unpin_resized`]) and held open here until its entries are copied into the new one.
struct Resized {
    name: &'static str,
    path: std::path::PathBuf,
    map: aya::maps::MapData,
    was: u32,
    now: u32,
}

/// The pinned tables in `dir` whose size is not the one in `sized`: the kernel cannot resize a
/// map, and a pin is adopted whatever its size, so a changed `max_bindings` or `max_sessions`,
/// or stateful NAT64 turned on after a run without it (one-entry tables), would otherwise keep
/// the old size, and every flow past it be refused as a full table. Each is unpinned (the load
/// then makes it anew at its size) and kept open for [`refill`].
fn unpin_resized(dir: &std::path::Path, sized: &[(&'static str, u32)]) -> Vec<Resized> {
    let mut out = Vec::new();
    for &(name, size) in sized {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let map = match aya::maps::MapData::from_pin(&path) {
            Ok(m) => m,
            Err(e) => {
                warn!(map = name, error = %e, "cannot open a pinned table to check its size");
                continue;
            }
        };
        let was = match map.info() {
            Ok(i) => i.max_entries(),
            Err(e) => {
                warn!(map = name, error = %e, "cannot read a pinned table's size");
                continue;
            }
        };
        if was == size {
            continue;
        }
        if let Err(e) = std::fs::remove_file(&path) {
            warn!(map = name, error = %e, "cannot unpin a table to resize it; it keeps its size");
            continue;
        }
        out.push(Resized {
            name,
            path,
            map,
            was,
            now: size,
        });
    }
    out
}

/// Copies a resized table's entries into the new one the load made.
fn refill(ebpf: &mut Ebpf, r: Resized) {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    if r.name == "STATS" {
        // A counter's slot depends on the layout of the version that counted it: carried
        // over, the counts would land on other counters. Prometheus takes the reset.
        info!(
            from = r.was,
            to = r.now,
            "counters start again from zero: the last run counted in another layout"
        );
        return;
    }
    let (Some(new), Ok(old)) = (ebpf.map(r.name).and_then(raw_fd), r.map.info()) else {
        return;
    };
    let (copied, refused) = crate::sys::copy_map_entries(
        r.map.fd().as_fd().as_raw_fd(),
        new,
        old.key_size() as usize,
        old.value_size() as usize,
        u64::from(r.was) * 2 + 16,
    );
    let (map, from, to) = (r.name, r.was, r.now);
    if refused > 0 {
        warn!(
            map,
            from,
            to,
            copied,
            refused,
            "table resized to the configuration's size: it is smaller than what it held, and the entries that did not fit were dropped"
        );
    } else {
        info!(
            map,
            from, to, copied, "table resized to the configuration's size, its entries carried over"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_names_have_no_dot_and_give_the_interface_back() {
        for iface in ["eth0", "eth0.100", "a%2eb", "x.y.z"] {
            let n = pin_name(iface, Hook::Xdp(XdpMode::Skb));
            assert!(!n.contains('.'), "{n}");
            assert_eq!(pin_interface(&n).as_deref(), Some(iface));
        }
        assert_eq!(
            pin_name("eth0.7", Hook::Xdp(XdpMode::Driver)),
            "eth0%2e7@native"
        );
        assert_eq!(pin_name("eth0", Hook::Tc), "eth0@tc");
    }
}
