//! The eBPF dataplane as the daemon sees it: the embedded object, loading (with the verifier's
//! log kept in errors), writing configuration into maps, attaching, and reading counters.

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
        CONFIG_F_ON_LINK, CONFIG_SLOT_FAST_PATH, CONFIG_SLOT_LINK, EamToV4, IFACE_F_PARTIAL_CSUM,
        IfaceConfig, Pool4Prefix,
    },
    state::{HeldSyn, SynKey},
};

use crate::{
    config::{self, Config},
    stats::Stats,
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
/// The programs the dispatchers `nat64_xdp` and `nat64_link` tail-call (the `PROGS` map),
/// by slot: one per direction, each verified on its own.
pub const TAIL_PROGRAMS: [(u32, &str); 4] = [
    (nat64_common::maps::PROG_XDP_6TO4, "nat64_xdp_6to4"),
    (nat64_common::maps::PROG_XDP_4TO6, "nat64_xdp_4to6"),
    (nat64_common::maps::PROG_LINK_6TO4, "nat64_link_6to4"),
    (nat64_common::maps::PROG_LINK_4TO6, "nat64_link_4to6"),
];
const XDP_PROGRAMS: [&str; 8] = [
    XDP_PROGRAM,
    LINK_PROGRAM,
    PASS_PROGRAM,
    RETURN_PROGRAM,
    TAIL_PROGRAMS[0].1,
    TAIL_PROGRAMS[1].1,
    TAIL_PROGRAMS[2].1,
    TAIL_PROGRAMS[3].1,
];
/// The maps pinned in the state directory and adopted by the next daemon (see
/// `load_with_state`): the ones that hold state worth keeping across a restart, and `PROGS`,
/// which must outlive the daemon for its attached dispatchers to keep translating (the
/// kernel empties a program array that nothing in user space holds).
pub const STATE_MAPS: [&str; 9] = [
    "BIB6",
    "BIB4",
    "SESSIONS",
    "PEERS",
    "CLIENTS",
    "FRAGS",
    "HELD_SYNS",
    "STATS",
    "PROGS",
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

/// The name of an attachment's pin: interface and hook (a change of hook or XDP mode needs a
/// new link), "IFACE@HOOK". bpffs refuses names with a dot, which interface names may have
/// (VLANs): it is written "%2e" (and '%' "%25").
pub fn pin_name(iface: &str, hook: Hook) -> String {
    let m = match hook {
        Hook::Xdp(XdpMode::Skb) => "generic",
        Hook::Xdp(XdpMode::Driver) => "native",
        Hook::Xdp(XdpMode::Hardware) => "offload",
        Hook::Xdp(XdpMode::Default) => "default",
        Hook::Tc => "tc",
    };
    format!("{}@{m}", iface.replace('%', "%25").replace('.', "%2e"))
}

/// The interface a pin is for (see [`pin_name`]).
pub fn pin_interface(pin: &str) -> Option<String> {
    let (iface, _) = pin.rsplit_once('@')?;
    Some(iface.replace("%2e", ".").replace("%25", "%"))
}

/// Whether this kernel makes XDP links (bpf_link, Linux 5.9), which can be pinned; older
/// kernels attach over netlink, and those attachments end with the daemon.
fn kernel_has_xdp_links() -> bool {
    aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(5, 9, 0))
}

fn attach_err(iface: &str, hook: Hook) -> impl FnOnce(ProgramError) -> DataplaneError {
    let iface = iface.to_string();
    move |source| DataplaneError::Attach {
        iface,
        hook,
        source,
    }
}

fn link_err(what: impl Into<String>) -> impl FnOnce(LinkError) -> DataplaneError {
    let what = what.into();
    move |source| DataplaneError::Link { what, source }
}

/// How [`Dataplane::attach_interface`] attached an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceAttached {
    pub how: Attached,
    pub hook: config::Hook,
    /// Why that hook (for `hook = "auto"`).
    pub why: &'static str,
    pub partial: bool,
}

/// Resolves `partial_checksums = "auto"` for an interface at `hook` (see
/// `config::PartialChecksums`).
pub fn partial_checksums(ifc: &config::Interface, hook: config::Hook) -> bool {
    use config::PartialChecksums;
    match ifc.partial_checksums {
        PartialChecksums::On => true,
        PartialChecksums::Off => false,
        // On the socket-buffer path (generic XDP, TC) any interface can deliver them: a
        // virtio NIC passes the host's partial checksums on, for one.
        PartialChecksums::Auto => {
            ifc.xdp_mode == config::XdpMode::Generic
                || hook == config::Hook::Tc
                || virtual_link(&ifc.name).unwrap_or_else(|e| {
                    tracing::warn!(interface = %ifc.name, error = %e, "cannot query the driver; assuming a virtual link");
                    true
                })
        }
    }
}

/// Whether `iface` is a virtual link (no bus: veth, bridges, tunnels), by its driver.
pub fn virtual_link(iface: &str) -> std::io::Result<bool> {
    crate::sys::driver_info(iface).map(|d| d.bus_info.is_empty())
}

/// Whether this kernel has tcx (Linux 6.6), which the TC hook attaches with.
pub fn kernel_has_tcx() -> bool {
    aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0))
}

/// The hook an interface gets, and why: `hook = "auto"` (see `config::Hook`) is TC on a
/// virtual link when the translator link is on, tcx exists and XDP's generic mode was not
/// asked for; XDP otherwise.
pub fn resolve_hook(ifc: &config::Interface, cfg: &Config) -> (config::Hook, &'static str) {
    use config::Hook;
    match ifc.hook {
        Hook::Auto if cfg.translator_link.0.is_none() => {
            (Hook::Xdp, "auto: the translator link is off")
        }
        Hook::Auto if !kernel_has_tcx() => (Hook::Xdp, "auto: no tcx before Linux 6.6"),
        Hook::Auto if ifc.xdp_mode == config::XdpMode::Generic => {
            (Hook::Xdp, "auto: xdp_mode is generic")
        }
        // A driver that cannot be asked is taken for a virtual link, as for partial checksums.
        Hook::Auto if virtual_link(&ifc.name).unwrap_or(true) => {
            (Hook::Tc, "auto: a virtual link, where TC keeps GSO")
        }
        Hook::Auto => (Hook::Xdp, "auto: a physical NIC"),
        h => (h, "configured"),
    }
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
        // The binding tables are sized from config (preallocated: a full table refuses new
        // flows rather than evicting); without stateful NAT64 they stay a single entry.
        let sizes = TableSizes {
            bindings: cfg.stateful.as_ref().map_or(1, |s| s.max_bindings),
            sessions: cfg.stateful.as_ref().map_or(1, |s| s.session_capacity()),
        };
        let ebpf = Self::load_object(sizes, state)?;
        let mut dp = Self {
            ebpf,
            links: Vec::new(),
            state: state.map(std::path::Path::to_path_buf),
            link_pins: None,
            sizes,
            own4: Vec::new(),
            link_side: None,
            mtu_floors: (0, 0),
            link_names: Vec::new(),
        };
        dp.apply(cfg)?;
        Ok(dp)
    }

    /// Loads the object and has the kernel verify every program; the state maps are adopted
    /// from (or pinned in) `state`.
    fn load_object(
        sizes: TableSizes,
        state: Option<&std::path::Path>,
    ) -> Result<Ebpf, DataplaneError> {
        let TableSizes { bindings, sessions } = sizes;
        let mut loader = EbpfLoader::new();
        // Without stateful NAT64 (one-entry binding tables) no SYN is ever held.
        let held = if bindings > 1 {
            nat64_common::state::HELD_SYN_MAX_ENTRIES
        } else {
            1
        };
        loader
            .map_max_entries("BIB6", bindings)
            .map_max_entries("BIB4", bindings)
            .map_max_entries("CLIENTS", bindings)
            .map_max_entries("SESSIONS", sessions)
            .map_max_entries("PEERS", sessions)
            .map_max_entries("HELD_SYNS", held);
        if let Some(dir) = state {
            for name in STATE_MAPS {
                loader.map_pin_path(name, dir.join(name));
            }
        }
        let mut ebpf = loader.load(EBPF_OBJECT)?;
        let loaded = |name| move |source| DataplaneError::Program { name, source };
        for name in XDP_PROGRAMS {
            typed_mut::<Xdp>(&mut ebpf, name)?
                .load()
                .map_err(loaded(name))?;
        }
        typed_mut::<SchedClassifier>(&mut ebpf, TC_PROGRAM)?
            .load()
            .map_err(loaded(TC_PROGRAM))?;
        Ok(ebpf)
    }

    /// Pins every attachment made from now on in `dir` (on a bpf filesystem), and takes over
    /// the ones pinned there before: the dataplane then keeps translating while no daemon runs
    /// (stopped with `on_stop = "keep"`, killed, or being upgraded). Returns false, pinning
    /// nothing, where the kernel cannot pin XDP attachments (before Linux 5.9).
    pub fn pin_attachments(&mut self, dir: &std::path::Path) -> std::io::Result<bool> {
        if !kernel_has_xdp_links() {
            return Ok(false);
        }
        std::fs::create_dir_all(dir)?;
        self.link_pins = Some(dir.to_path_buf());
        Ok(true)
    }

    /// Whether [`Dataplane::replace`] swaps whole programs (with pinned state) rather than
    /// writing the maps in place.
    pub fn swaps_programs(&self) -> bool {
        self.state.is_some()
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
            ebpf: Self::load_object(self.sizes, Some(&state))?,
            links: Vec::new(),
            state: Some(state),
            link_pins: self.link_pins.clone(),
            sizes: self.sizes,
            own4: self.own4.clone(),
            link_side: None,
            mtu_floors: (0, 0),
            link_names: Vec::new(),
        };
        next.apply(cfg)?;
        // Interface settings are per interface, not per configuration: carry them over.
        let settings: Vec<(u32, IfaceConfig)> =
            self.ifaces()?.iter().filter_map(Result::ok).collect();
        {
            let mut ifaces = next.ifaces()?;
            for (k, v) in settings {
                ifaces.insert(k, v, 0).map_err(map_err("IFACES"))?;
            }
        }
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

    /// Writes a validated configuration into the maps: EAM entries first, then the config slot.
    pub fn apply(&mut self, cfg: &Config) -> Result<(), DataplaneError> {
        self.apply_eams(cfg)?;
        self.apply_pool4(cfg)?;
        self.sync_node_addresses()?;
        let mut array: Array<_, nat64_common::maps::Config> = Array::try_from(
            self.ebpf
                .map_mut("CONFIG")
                .ok_or(DataplaneError::Missing("map CONFIG"))?,
        )
        .map_err(map_err("CONFIG"))?;
        let mut fast = cfg.dataplane();
        if own_rfc6791_source(cfg) {
            fast.flags2 |= nat64_common::maps::CONFIG_F2_POOL6791_LOCAL;
        }
        // A pool4 address shared with the node (`Config::shared4`).
        if let Some(st) = &cfg.stateful
            && let Some((_, a)) = self
                .own4
                .iter()
                .find(|(_, a)| st.pool4.iter().any(|p| p.contains(a)))
        {
            fast.shared4 = a.octets();
        }
        // The link's kernel side, for what TC redirects into it (`Config::link_ifindex`).
        if let Some(name) = cfg.translator_link.0.as_deref()
            && let Some(ifindex) = crate::sys::if_index(name)
            && let Ok(mac) = crate::sys::mac(name)
        {
            fast.link_ifindex = ifindex;
            fast.link_mac = mac;
            self.link_side = Some((ifindex, mac));
        } else {
            self.link_side = None;
        }
        self.link_names = cfg
            .translator_link
            .0
            .iter()
            .cloned()
            .chain(cfg.translator_link.peer())
            .collect();
        self.mtu_floors = crate::sys::mtu_floors(&self.link_names);
        (fast.mtu_floor4, fast.mtu_floor6) = self.mtu_floors;
        let mut link = fast;
        link.flags |= CONFIG_F_ON_LINK;
        array
            .set(CONFIG_SLOT_LINK, link, 0)
            .map_err(map_err("CONFIG"))?;
        array
            .set(CONFIG_SLOT_FAST_PATH, fast, 0)
            .map_err(map_err("CONFIG"))?;
        self.fill_progs()
    }

    /// Writes the interfaces' MTU floors into both configuration slots if they changed (an
    /// interface came, went or changed its MTU): called on every link event, at once, so that
    /// the first-hop MTU check (`egress.rs`) sees a smaller MTU before traffic meets it.
    /// Returns the floors when they changed.
    pub fn refresh_mtu_floors(&mut self) -> Result<Option<(u16, u16)>, DataplaneError> {
        let floors = crate::sys::mtu_floors(&self.link_names);
        if floors == self.mtu_floors {
            return Ok(None);
        }
        let mut array: Array<_, nat64_common::maps::Config> = Array::try_from(
            self.ebpf
                .map_mut("CONFIG")
                .ok_or(DataplaneError::Missing("map CONFIG"))?,
        )
        .map_err(map_err("CONFIG"))?;
        for slot in [CONFIG_SLOT_LINK, CONFIG_SLOT_FAST_PATH] {
            let mut c = array.get(&slot, 0).map_err(map_err("CONFIG"))?;
            (c.mtu_floor4, c.mtu_floor6) = floors;
            array.set(slot, c, 0).map_err(map_err("CONFIG"))?;
        }
        self.mtu_floors = floors;
        Ok(Some(floors))
    }

    /// Points the dispatchers' program array (`PROGS`) at this object's programs, once its
    /// configuration is written: with a pinned array shared with a running dispatcher (a
    /// restart or a reload), the switch happens here, slot by slot, each packet running one
    /// program of one object.
    fn fill_progs(&mut self) -> Result<(), DataplaneError> {
        let mut fds = Vec::with_capacity(TAIL_PROGRAMS.len());
        for (slot, name) in TAIL_PROGRAMS {
            let fd = typed::<Xdp>(&self.ebpf, name)?
                .fd()
                .and_then(|fd| fd.try_clone().map_err(Into::into))
                .map_err(|source| DataplaneError::Program { name, source })?;
            fds.push((slot, fd));
        }
        let mut progs: aya::maps::ProgramArray<_> = aya::maps::ProgramArray::try_from(
            self.ebpf
                .map_mut("PROGS")
                .ok_or(DataplaneError::Missing("map PROGS"))?,
        )
        .map_err(map_err("PROGS"))?;
        for (slot, fd) in &fds {
            progs.set(*slot, fd, 0).map_err(map_err("PROGS"))?;
        }
        Ok(())
    }

    /// This node's own IPv6 addresses into `NODE6` (and the ones gone out): an ICMPv6 error
    /// from one of them that reaches the translator link is the node's own, and leaves from
    /// its IPv4 address. At start, on reload and at each re-sync.
    pub fn sync_node_addresses(&mut self) -> Result<(), DataplaneError> {
        let mut m: aya::maps::HashMap<_, [u8; 16], u8> = aya::maps::HashMap::try_from(
            self.ebpf
                .map_mut("NODE6")
                .ok_or(DataplaneError::Missing("map NODE6"))?,
        )
        .map_err(map_err("NODE6"))?;
        let want: Vec<[u8; 16]> = crate::sys::ipv6_addrs()
            .iter()
            .take(nat64_common::maps::NODE6_MAX_ENTRIES as usize)
            .map(|a| a.octets())
            .collect();
        let stale: Vec<[u8; 16]> = m
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !want.contains(k))
            .collect();
        for k in stale {
            m.remove(&k).map_err(map_err("NODE6"))?;
        }
        for k in &want {
            m.insert(k, 1, 0).map_err(map_err("NODE6"))?;
        }
        Ok(())
    }

    /// pool4's prefixes, numbered in order (`POOL4`) and as a trie (`POOL4_LPM`).
    fn apply_pool4(&mut self, cfg: &Config) -> Result<(), DataplaneError> {
        let prefixes = cfg.stateful.as_ref().map_or(&[][..], |s| &s.pool4[..]);
        {
            let mut arr: Array<_, Pool4Prefix> = Array::try_from(
                self.ebpf
                    .map_mut("POOL4")
                    .ok_or(DataplaneError::Missing("map POOL4"))?,
            )
            .map_err(map_err("POOL4"))?;
            let mut first = 0u32;
            for (i, p) in prefixes.iter().enumerate() {
                let count = 1u32 << (32 - p.prefix_len());
                let v = Pool4Prefix {
                    addr: p.network().octets(),
                    len: p.prefix_len(),
                    _pad: [0; 3],
                    first,
                    count,
                };
                arr.set(i as u32, v, 0).map_err(map_err("POOL4"))?;
                first += count;
            }
        }
        // The prefixes as a trie, each to its index in `POOL4`.
        let lpm = prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.prefix_len(), p.network().octets(), i as u32));
        self.sync_trie(("POOL4_LPM", "map POOL4_LPM"), lpm)
    }

    fn apply_eams(&mut self, cfg: &Config) -> Result<(), DataplaneError> {
        let (local6, local4) = cfg.local_exclusions(&self.own4);
        // The EAM entries, then this node's own addresses among them (`EAM_F_LOCAL`).
        let six = cfg
            .eam
            .iter()
            .map(|e| {
                let v = EamToV4 {
                    v4: e.ipv4.network().octets(),
                    v4_len: e.ipv4.prefix_len(),
                    shift: e.shift(),
                    flags: 0,
                    _pad: [0; 1],
                };
                (e.ipv6.prefix_len(), e.ipv6.network().octets(), v)
            })
            .chain(
                local6
                    .into_iter()
                    .map(|(p, v)| (p.prefix_len(), p.network().octets(), v)),
            );
        self.sync_trie(("EAM6", "map EAM6"), six)?;
        // The EAM entries, and the pool6_ipv4 prefixes (flagged: they map through pool6).
        // Then this node's own addresses among them (`EAM_F_LOCAL`), last so that they win.
        let four = cfg
            .eam4_entries()
            .chain(cfg.pool6_ipv4_entries())
            .chain(local4)
            .map(|(p, v)| (p.prefix_len(), p.network().octets(), v));
        self.sync_trie(("EAM4", "map EAM4"), four)
    }

    /// Makes the LPM trie `name` (`missing`: the error if it is not there) hold exactly `entries` (prefix length, prefix, value): each
    /// written first (a lookup never misses an entry that stays), then the stale ones removed.
    /// A later entry for the same prefix replaces an earlier one.
    fn sync_trie<K: aya::Pod + PartialEq, V: aya::Pod>(
        &mut self,
        (name, missing): (&'static str, &'static str),
        entries: impl Iterator<Item = (u8, K, V)>,
    ) -> Result<(), DataplaneError> {
        let mut trie: LpmTrie<_, K, V> = LpmTrie::try_from(
            self.ebpf
                .map_mut(name)
                .ok_or(DataplaneError::Missing(missing))?,
        )
        .map_err(map_err(name))?;
        let stale: Vec<Key<K>> = trie.keys().filter_map(Result::ok).collect();
        let mut wanted: Vec<Key<K>> = Vec::new();
        for (len, prefix, v) in entries {
            let k = Key::new(len as u32, prefix);
            trie.insert(&k, v, 0).map_err(map_err(name))?;
            wanted.push(k);
        }
        let same =
            |a: &Key<K>, b: &Key<K>| a.prefix_len() == b.prefix_len() && a.data() == b.data();
        for k in stale.iter().filter(|k| !wanted.iter().any(|w| same(w, k))) {
            trie.remove(k).map_err(map_err(name))?;
        }
        Ok(())
    }

    /// Attaches a configured interface as its settings say: the hook resolved for this
    /// configuration ([`resolve_hook`]), partial checksums resolved for that hook
    /// ([`partial_checksums`]). What the daemon does at start and when an interface comes back.
    pub fn attach_interface(
        &mut self,
        ifc: &config::Interface,
        cfg: &Config,
    ) -> Result<InterfaceAttached, DataplaneError> {
        let (hook, why) = resolve_hook(ifc, cfg);
        let partial = partial_checksums(ifc, hook);
        let how = self.attach(&ifc.name, hook, ifc.xdp_mode, partial)?;
        Ok(InterfaceAttached {
            how,
            hook,
            why,
            partial,
        })
    }

    /// Attaches the program to `iface` and records its per-interface settings.
    /// `partial_checksums` says whether partial transport checksums can arrive there (see
    /// `config::PartialChecksums`).
    pub fn attach(
        &mut self,
        iface: &str,
        hook: config::Hook,
        mode: config::XdpMode,
        partial_checksums: bool,
    ) -> Result<Attached, DataplaneError> {
        // `auto` is the daemon's to resolve; unresolved, it means XDP.
        let (program, hook) = match (hook, mode) {
            (config::Hook::Tc, _) => (TC_PROGRAM, Hook::Tc),
            (_, config::XdpMode::Native) => (XDP_PROGRAM, Hook::Xdp(XdpMode::Driver)),
            (_, config::XdpMode::Generic) => (XDP_PROGRAM, Hook::Xdp(XdpMode::Skb)),
        };
        let ifindex = crate::sys::if_index(iface).ok_or_else(|| DataplaneError::Attach {
            iface: iface.to_string(),
            hook,
            source: ProgramError::UnknownInterface {
                name: iface.to_string(),
            },
        })?;
        // Settings first, so the first packet the program sees is handled right.
        let settings = InterfaceSettings {
            partial_checksums,
            mtu: crate::sys::mtu(iface).unwrap_or(0),
            addr4: crate::sys::ipv4_addr(iface),
        };
        self.set_interface(ifindex, &settings)?;
        self.attach_program(program, iface, ifindex, hook)
    }

    /// Attaches to the translator link (natively: it is a veth): the translating program on
    /// its far end, the pass-through one on the kernel's end, which gives the far end's
    /// `XDP_TX` the NAPI context it needs on veth.
    pub fn attach_link(
        &mut self,
        link: &crate::link::TranslatorLink,
    ) -> Result<Attached, DataplaneError> {
        let settings = InterfaceSettings {
            // The kernel side has transmit checksum offload off (see `link::create`): every
            // checksum arrives complete.
            partial_checksums: false,
            mtu: crate::sys::mtu(&link.peer).unwrap_or(0),
            addr4: None,
        };
        self.set_interface(link.peer_index, &settings)?;
        let mut how = Attached::TakenOver;
        for (iface, ifindex, program) in [
            (&link.name, link.index, RETURN_PROGRAM),
            (&link.peer, link.peer_index, LINK_PROGRAM),
        ] {
            if self.attach_program(program, iface, ifindex, Hook::Xdp(XdpMode::Driver))?
                == Attached::New
            {
                how = Attached::New;
            }
        }
        Ok(how)
    }

    /// Attaches `program` to `iface`: takes over the attachment pinned for it if there is one
    /// (an atomic program swap), else attaches anew, pinning the new link when attachments are
    /// pinned.
    fn attach_program(
        &mut self,
        program: &'static str,
        iface: &str,
        ifindex: u32,
        hook: Hook,
    ) -> Result<Attached, DataplaneError> {
        let pin = self
            .link_pins
            .as_ref()
            .map(|d| d.join(pin_name(iface, hook)));
        if let Some(path) = &pin {
            self.unpin_other_modes(iface, path);
            if path.exists() {
                match self.take_over(program, hook, iface, ifindex, path) {
                    Ok(handle) => {
                        self.links.push(Attachment {
                            iface: iface.to_string(),
                            ifindex,
                            program,
                            hook,
                            handle,
                        });
                        return Ok(Attached::TakenOver);
                    }
                    Err(e) => {
                        tracing::warn!(interface = iface, error = %e, "a pinned attachment could not be taken over; attaching anew");
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
        }
        let link = self.attach_new(program, hook, iface, ifindex)?;
        let handle = match (Handle::Owned(link), &pin) {
            (Handle::Owned(l), Some(path)) => {
                let fd = l.into_fd().map_err(link_err(format!(
                    "the attachment to {iface} is not a bpf link"
                )))?;
                Handle::Pinned(
                    fd.pin(path).map_err(|source| DataplaneError::Pin {
                        what: format!("the attachment to {iface} at {}", path.display()),
                        source,
                    })?,
                    path.clone(),
                )
            }
            (h, _) => h,
        };
        self.links.push(Attachment {
            iface: iface.to_string(),
            ifindex,
            program,
            hook,
            handle,
        });
        Ok(Attached::New)
    }

    /// A new attachment of `program` to `iface` at `hook`.
    fn attach_new(
        &mut self,
        program: &'static str,
        hook: Hook,
        iface: &str,
        ifindex: u32,
    ) -> Result<Link, DataplaneError> {
        let prog_err = |source| DataplaneError::Program {
            name: program,
            source,
        };
        match hook {
            Hook::Xdp(mode) => {
                let p = self.program_mut(program)?;
                let id = p
                    .attach_to_if_index(ifindex, mode)
                    .map_err(attach_err(iface, hook))?;
                p.take_link(id).map(Link::Xdp).map_err(prog_err)
            }
            Hook::Tc => {
                let p = self.tc_mut()?;
                // A tcx link (not a clsact filter over netlink): it can be pinned and its
                // program swapped atomically, like an XDP link.
                let id = p
                    .attach_with_options(
                        iface,
                        TcAttachType::Ingress,
                        TcAttachOptions::TcxOrder(LinkOrder::default()),
                    )
                    .map_err(attach_err(iface, hook))?;
                p.take_link(id).map(Link::Tc).map_err(prog_err)
            }
        }
    }

    /// Swaps `program` into the existing `link` (one atomic link update).
    fn swap(
        &mut self,
        program: &'static str,
        link: FdLink,
        hook: Hook,
        iface: &str,
    ) -> Result<Link, DataplaneError> {
        let what = || format!("the attachment to {iface}");
        let prog_err = |source| DataplaneError::Program {
            name: program,
            source,
        };
        match hook {
            Hook::Xdp(_) => {
                let link = XdpLink::try_from(link).map_err(link_err(what()))?;
                let p = self.program_mut(program)?;
                let id = p.attach_to_link(link).map_err(attach_err(iface, hook))?;
                p.take_link(id).map(Link::Xdp).map_err(prog_err)
            }
            Hook::Tc => {
                let link = SchedClassifierLink::try_from(link).map_err(link_err(what()))?;
                let p = self.tc_mut()?;
                let id = p.attach_to_link(link).map_err(attach_err(iface, hook))?;
                p.take_link(id).map(Link::Tc).map_err(prog_err)
            }
        }
    }

    /// Swaps `program` into the link pinned at `path`, after checking that the link is
    /// attached to `ifindex` (a pin can outlive its interface, or name one since recreated).
    fn take_over(
        &mut self,
        program: &'static str,
        hook: Hook,
        iface: &str,
        ifindex: u32,
        path: &std::path::Path,
    ) -> Result<Handle, DataplaneError> {
        let what = || format!("the pinned attachment to {iface} ({})", path.display());
        match crate::sys::pinned_link_ifindex(path) {
            Some(i) if i == ifindex => {}
            found => {
                return Err(DataplaneError::Link {
                    what: format!(
                        "{}: attached to interface index {found:?}, not {ifindex}",
                        what()
                    ),
                    source: LinkError::InvalidLink,
                });
            }
        }
        let pinned = PinnedLink::from_pin(path).map_err(link_err(what()))?;
        let link = self.swap(program, FdLink::from(pinned), hook, iface)?;
        self.hold(link, Some(path), iface)
    }

    /// Keeps `link`: as the pinned link at `pin` when there is one (this descriptor is closed;
    /// the pin keeps the link), else owned.
    fn hold(
        &mut self,
        link: Link,
        pin: Option<&std::path::Path>,
        iface: &str,
    ) -> Result<Handle, DataplaneError> {
        match pin {
            None => Ok(Handle::Owned(link)),
            Some(path) => {
                drop(link);
                let p = PinnedLink::from_pin(path)
                    .map_err(link_err(format!("the pinned attachment to {iface}")))?;
                Ok(Handle::Pinned(p, path.to_path_buf()))
            }
        }
    }

    /// Removes pins of `iface` in another mode than `keep` (their links detach with them):
    /// one XDP program per interface.
    fn unpin_other_modes(&self, iface: &str, keep: &std::path::Path) {
        let Some(dir) = &self.link_pins else { return };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if path != keep && pin_interface(&name).is_some_and(|i| i == iface) {
                tracing::info!(interface = iface, pin = %path.display(), "removing the attachment pinned in another mode");
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Removes the pinned attachments that this daemon did not take over (interfaces no longer
    /// configured): their links detach. Returns the interfaces concerned.
    pub fn unpin_unclaimed(&self) -> Vec<String> {
        let Some(dir) = &self.link_pins else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut gone = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            let claimed = self
                .links
                .iter()
                .any(|a| matches!(&a.handle, Handle::Pinned(_, p) if *p == path));
            if !claimed && std::fs::remove_file(&path).is_ok() {
                gone.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        gone
    }

    /// Records the per-interface settings of `ifindex` (done by [`Dataplane::attach`]; public
    /// for tests that run the program with `BPF_PROG_TEST_RUN`, whose ingress is loopback).
    pub fn set_interface(
        &mut self,
        ifindex: u32,
        s: &InterfaceSettings,
    ) -> Result<(), DataplaneError> {
        let flags = if s.partial_checksums {
            IFACE_F_PARTIAL_CSUM
        } else {
            0
        };
        let value = IfaceConfig {
            flags,
            mtu: s.mtu,
            addr4: s.addr4.map_or([0; 4], |a| a.octets()),
            _pad: [0; 4],
        };
        self.ifaces()?
            .insert(ifindex, value, 0)
            .map_err(map_err("IFACES"))
    }

    fn ifaces(
        &mut self,
    ) -> Result<HashMap<&mut aya::maps::MapData, u32, IfaceConfig>, DataplaneError> {
        HashMap::try_from(
            self.ebpf
                .map_mut("IFACES")
                .ok_or(DataplaneError::Missing("map IFACES"))?,
        )
        .map_err(map_err("IFACES"))
    }

    /// Detaches from every interface, newest first (pinned attachments lose their pins).
    pub fn detach_all(&mut self) -> Vec<(String, Result<(), ProgramError>)> {
        let links = std::mem::take(&mut self.links);
        let mut out = Vec::new();
        for link in links.into_iter().rev() {
            let r = match link.handle {
                Handle::Owned(l) => {
                    drop(l);
                    Ok(())
                }
                // The last reference to the link is this descriptor once the pin is gone.
                Handle::Pinned(p, _) => p.unpin().map(drop).map_err(ProgramError::from),
            };
            if let Ok(mut m) = self.ifaces() {
                let _ = m.remove(&link.ifindex);
            }
            out.push((link.iface, r));
        }
        out
    }

    /// Leaves the pinned attachments translating after this process ends (their programs keep
    /// running over the maps they hold) and detaches the others. Returns the interfaces left
    /// translating.
    pub fn leave_running(&mut self) -> Vec<String> {
        let mut kept = Vec::new();
        for link in std::mem::take(&mut self.links).into_iter().rev() {
            if matches!(link.handle, Handle::Pinned(..)) {
                kept.push(link.iface);
            }
        }
        kept
    }

    /// The interface index `iface` was attached under, if it is attached.
    pub fn attached_index(&self, iface: &str) -> Option<u32> {
        self.links
            .iter()
            .find(|a| a.iface == iface)
            .map(|a| a.ifindex)
    }

    /// Drops the attachment to `iface` (whose interface is gone or was replaced): its pin is
    /// removed, its settings forgotten.
    pub fn forget(&mut self, iface: &str) {
        let Some(i) = self.links.iter().position(|a| a.iface == iface) else {
            return;
        };
        let a = self.links.remove(i);
        if let Handle::Pinned(p, _) = a.handle {
            let _ = p.unpin();
        }
        if let Ok(mut m) = self.ifaces() {
            let _ = m.remove(&a.ifindex);
        }
    }

    /// The interfaces currently attached.
    pub fn attached(&self) -> impl Iterator<Item = &str> {
        self.links.iter().map(|l| l.iface.as_str())
    }

    /// The loaded fast-path program, for `BPF_PROG_TEST_RUN` in tests and benchmarks.
    pub fn xdp(&self) -> Result<&Xdp, DataplaneError> {
        self.program(XDP_PROGRAM)
    }

    /// A loaded program by name (one of the `*_PROGRAM` constants).
    pub fn program(&self, name: &'static str) -> Result<&Xdp, DataplaneError> {
        typed(&self.ebpf, name)
    }

    /// The loaded TC program, for `BPF_PROG_TEST_RUN` in tests and benchmarks.
    pub fn tc(&self) -> Result<&SchedClassifier, DataplaneError> {
        typed(&self.ebpf, TC_PROGRAM)
    }

    fn tc_mut(&mut self) -> Result<&mut SchedClassifier, DataplaneError> {
        typed_mut(&mut self.ebpf, TC_PROGRAM)
    }

    fn program_mut(&mut self, name: &'static str) -> Result<&mut Xdp, DataplaneError> {
        typed_mut(&mut self.ebpf, name)
    }

    /// The binding tables (stateful NAT64), for the sweeper and for listing.
    pub fn bindings(&mut self) -> Result<crate::bindings::Tables<'_>, DataplaneError> {
        let (mut b6, mut b4, mut clients, mut sessions, mut peers) = (None, None, None, None, None);
        for (name, map) in self.ebpf.maps_mut() {
            match name {
                "BIB6" => b6 = Some(map),
                "BIB4" => b4 = Some(map),
                "CLIENTS" => clients = Some(map),
                "SESSIONS" => sessions = Some(map),
                "PEERS" => peers = Some(map),
                _ => {}
            }
        }
        let sessions = sessions.ok_or(DataplaneError::Missing("map SESSIONS"))?;
        let peers = peers.ok_or(DataplaneError::Missing("map PEERS"))?;
        let session_fd = raw_fd(sessions);
        let b6 = b6.ok_or(DataplaneError::Missing("map BIB6"))?;
        let b4 = b4.ok_or(DataplaneError::Missing("map BIB4"))?;
        let fds = raw_fd(b6).zip(raw_fd(b4));
        Ok(crate::bindings::Tables {
            batch_fds: fds,
            bib6: HashMap::try_from(b6).map_err(map_err("BIB6"))?,
            bib4: HashMap::try_from(b4).map_err(map_err("BIB4"))?,
            clients: HashMap::try_from(clients.ok_or(DataplaneError::Missing("map CLIENTS"))?)
                .map_err(map_err("CLIENTS"))?,
            session_fd,
            sessions: HashMap::try_from(sessions).map_err(map_err("SESSIONS"))?,
            peers: HashMap::try_from(peers).map_err(map_err("PEERS"))?,
        })
    }

    /// The kernel memory of each map (`memlock` in the map's fdinfo), by name: what the
    /// binding tables cost at a given size.
    pub fn map_memory(&self) -> Vec<(String, u64)> {
        self.ebpf
            .maps()
            .filter_map(|(name, map)| {
                let fd = raw_fd(map)?;
                let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
                let bytes = info
                    .lines()
                    .find_map(|l| l.strip_prefix("memlock:"))?
                    .trim()
                    .parse()
                    .ok()?;
                Some((name.to_string(), bytes))
            })
            .collect()
    }

    /// Removes the held SYNs (RFC 6146 section 3.5.2.2) whose 6 seconds are up at `now_ns`
    /// and returns them, for the daemon to answer ([`crate::held_syns`]). At most `budget`.
    pub fn take_expired_syns(
        &mut self,
        now_ns: u64,
        budget: usize,
    ) -> Result<Vec<(SynKey, HeldSyn)>, DataplaneError> {
        let mut m: HashMap<_, SynKey, HeldSyn> = HashMap::try_from(
            self.ebpf
                .map_mut("HELD_SYNS")
                .ok_or(DataplaneError::Missing("map HELD_SYNS"))?,
        )
        .map_err(map_err("HELD_SYNS"))?;
        let due: Vec<(SynKey, HeldSyn)> = m
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, h)| crate::held_syns::expired(h, now_ns))
            .take(budget)
            .collect();
        let mut taken = Vec::with_capacity(due.len());
        for (k, h) in due {
            // Gone already: a simultaneous open took it in the meantime.
            if m.remove(&k).is_ok() {
                taken.push((k, h));
            }
        }
        Ok(taken)
    }

    /// Hands `ip` (an IPv4 or IPv6 packet the daemon made) to the kernel as if it had arrived
    /// on the translator link's kernel side, which routes it on (`BPF_PROG_TEST_RUN` of
    /// `nat64_return`, which passes it, with `BPF_F_TEST_XDP_LIVE_FRAMES`: the frame goes
    /// up the stack for real). That side accepts the node's own source addresses
    /// (`accept_local`), and this needs no privilege beyond the ones the dataplane does. Without
    /// a link, the first attached interface takes it through the fast path's program (which
    /// passes what is not its own).
    pub fn inject(&self, ip: &[u8]) -> Result<(), DataplaneError> {
        let (prog, ifindex, mac) = match self.link_side {
            Some((i, mac)) => (RETURN_PROGRAM, i, mac),
            None => {
                let a = self
                    .links
                    .iter()
                    .find(|a| matches!(a.hook, Hook::Xdp(_)))
                    .ok_or(DataplaneError::Missing("an interface to inject packets on"))?;
                let mac =
                    crate::sys::mac(&a.iface).map_err(|e| DataplaneError::Inject(e.to_string()))?;
                (XDP_PROGRAM, a.ifindex, mac)
            }
        };
        let ethertype: u16 = if ip.first().is_some_and(|b| b >> 4 == 6) {
            0x86dd
        } else {
            0x0800
        };
        let mut frame = Vec::with_capacity(14 + ip.len());
        frame.extend_from_slice(&mac);
        frame.extend_from_slice(&mac);
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(ip);
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex; the kernel wants data_end to be the frame's length.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        use aya::programs::TestRun as _;
        self.program(prog)?
            .test_run(aya::programs::TestRunOptions {
                data_in: Some(&frame),
                ctx_in: Some(&ctx),
                attrs: aya::programs::TestRunAttrs::new().xdp_live_frames(1),
                ..Default::default()
            })
            .map_err(|e| DataplaneError::Inject(e.to_string()))?;
        Ok(())
    }

    /// Adds `n` to a counter the daemon keeps itself (CPU 0's slot; the dataplane never
    /// writes it), so that it shows with the dataplane's own.
    pub fn count(&mut self, c: nat64_common::Counter, n: u64) -> Result<(), DataplaneError> {
        let mut arr: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map_mut("STATS")
                .ok_or(DataplaneError::Missing("map STATS"))?,
        )
        .map_err(map_err("STATS"))?;
        let i = c.index();
        let values = arr.get(&i, 0).map_err(map_err("STATS"))?;
        let mut v: Vec<u64> = values.iter().copied().collect();
        if let Some(first) = v.first_mut() {
            *first += n;
        }
        let values = aya::maps::PerCpuValues::try_from(v)
            .map_err(|e| DataplaneError::Inject(e.to_string()))?;
        arr.set(i, values, 0).map_err(map_err("STATS"))
    }

    /// Sums every counter over all CPUs.
    pub fn stats(&self) -> Result<Stats, DataplaneError> {
        let arr: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map("STATS")
                .ok_or(DataplaneError::Missing("map STATS"))?,
        )
        .map_err(map_err("STATS"))?;
        let mut values = Vec::with_capacity(STATS_LEN as usize);
        for i in 0..STATS_LEN {
            let per_cpu = arr.get(&i, 0).map_err(map_err("STATS"))?;
            values.push(per_cpu.iter().sum());
        }
        Ok(Stats::from_values(values))
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
