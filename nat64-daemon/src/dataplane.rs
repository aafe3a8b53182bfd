//! The eBPF dataplane as the daemon sees it: the embedded object, loading (with the verifier's
//! log kept in errors), writing configuration into maps, attaching, and reading counters.

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapError, PerCpuArray, lpm_trie::Key},
    programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId},
};
use nat64_common::{
    counters::STATS_LEN,
    maps::{
        CONFIG_F_ON_LINK, CONFIG_SLOT_FAST_PATH, CONFIG_SLOT_LINK, EamToV4, EamToV6,
        IFACE_F_PARTIAL_CSUM, IfaceConfig, Pool4Prefix,
    },
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
const PROGRAMS: [&str; 3] = [XDP_PROGRAM, LINK_PROGRAM, PASS_PROGRAM];
/// The maps that hold state worth keeping across a daemon restart (see `load_with_state`).
pub const STATE_MAPS: [&str; 5] = ["BIB6", "BIB4", "CLIENTS", "FRAGS", "STATS"];

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
    #[error("attaching to {iface} in {mode} XDP mode failed: {source}")]
    Attach {
        iface: String,
        mode: config::XdpMode,
        #[source]
        source: ProgramError,
    },
    /// A map operation failed.
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
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

/// A loaded dataplane and the interfaces it is attached to. Dropping it detaches everything.
pub struct Dataplane {
    ebpf: Ebpf,
    links: Vec<Link>,
}

/// An attachment: interface, its index, the program and the kernel link.
struct Link {
    iface: String,
    ifindex: u32,
    program: &'static str,
    id: XdpLinkId,
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
        let bindings = cfg.stateful.as_ref().map_or(1, |s| s.max_bindings);
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries("BIB6", bindings)
            .map_max_entries("BIB4", bindings)
            .map_max_entries("CLIENTS", bindings);
        if let Some(dir) = state {
            for name in STATE_MAPS {
                loader.map_pin_path(name, dir.join(name));
            }
        }
        let mut ebpf = loader.load(EBPF_OBJECT)?;
        for name in PROGRAMS {
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or(DataplaneError::Missing(name))?
                .try_into()
                .map_err(|source| DataplaneError::Program { name, source })?;
            prog.load()
                .map_err(|source| DataplaneError::Program { name, source })?;
        }
        let mut dp = Self {
            ebpf,
            links: Vec::new(),
        };
        dp.apply(cfg)?;
        Ok(dp)
    }

    /// Writes a validated configuration into the maps: EAM entries first, then the config slot.
    pub fn apply(&mut self, cfg: &Config) -> Result<(), DataplaneError> {
        self.apply_eams(cfg)?;
        self.apply_pool4(cfg)?;
        let mut array: Array<_, nat64_common::maps::Config> = Array::try_from(
            self.ebpf
                .map_mut("CONFIG")
                .ok_or(DataplaneError::Missing("map CONFIG"))?,
        )
        .map_err(map_err("CONFIG"))?;
        let fast = cfg.dataplane();
        let mut link = fast;
        link.flags |= CONFIG_F_ON_LINK;
        array
            .set(CONFIG_SLOT_LINK, link, 0)
            .map_err(map_err("CONFIG"))?;
        array
            .set(CONFIG_SLOT_FAST_PATH, fast, 0)
            .map_err(map_err("CONFIG"))
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
        let mut lpm: LpmTrie<_, [u8; 4], u32> = LpmTrie::try_from(
            self.ebpf
                .map_mut("POOL4_LPM")
                .ok_or(DataplaneError::Missing("map POOL4_LPM"))?,
        )
        .map_err(map_err("POOL4_LPM"))?;
        let stale: Vec<Key<[u8; 4]>> = lpm.keys().filter_map(Result::ok).collect();
        let wanted: Vec<Key<[u8; 4]>> = prefixes
            .iter()
            .map(|p| Key::new(p.prefix_len() as u32, p.network().octets()))
            .collect();
        for (i, k) in wanted.iter().enumerate() {
            lpm.insert(k, i as u32, 0).map_err(map_err("POOL4_LPM"))?;
        }
        for k in stale.iter().filter(|k| !wanted.iter().any(|w| same4(w, k))) {
            lpm.remove(k).map_err(map_err("POOL4_LPM"))?;
        }
        Ok(())
    }

    fn apply_eams(&mut self, cfg: &Config) -> Result<(), DataplaneError> {
        {
            let mut t6: LpmTrie<_, [u8; 16], EamToV4> = LpmTrie::try_from(
                self.ebpf
                    .map_mut("EAM6")
                    .ok_or(DataplaneError::Missing("map EAM6"))?,
            )
            .map_err(map_err("EAM6"))?;
            let stale: Vec<Key<[u8; 16]>> = t6.keys().filter_map(Result::ok).collect();
            let wanted: Vec<Key<[u8; 16]>> = cfg
                .eam
                .iter()
                .map(|e| Key::new(e.ipv6.prefix_len() as u32, e.ipv6.network().octets()))
                .collect();
            for (e, k) in cfg.eam.iter().zip(&wanted) {
                let v = EamToV4 {
                    v4: e.ipv4.network().octets(),
                    v4_len: e.ipv4.prefix_len(),
                    _pad: [0; 3],
                };
                t6.insert(k, v, 0).map_err(map_err("EAM6"))?;
            }
            for k in stale.iter().filter(|k| !wanted.iter().any(|w| same6(w, k))) {
                t6.remove(k).map_err(map_err("EAM6"))?;
            }
        }
        let mut t4: LpmTrie<_, [u8; 4], EamToV6> = LpmTrie::try_from(
            self.ebpf
                .map_mut("EAM4")
                .ok_or(DataplaneError::Missing("map EAM4"))?,
        )
        .map_err(map_err("EAM4"))?;
        let stale: Vec<Key<[u8; 4]>> = t4.keys().filter_map(Result::ok).collect();
        let wanted: Vec<Key<[u8; 4]>> = cfg
            .eam
            .iter()
            .map(|e| Key::new(e.ipv4.prefix_len() as u32, e.ipv4.network().octets()))
            .collect();
        for (e, k) in cfg.eam.iter().zip(&wanted) {
            let v = EamToV6 {
                v6: e.ipv6.network().octets(),
                v4_len: e.ipv4.prefix_len(),
                _pad: [0; 3],
            };
            t4.insert(k, v, 0).map_err(map_err("EAM4"))?;
        }
        for k in stale.iter().filter(|k| !wanted.iter().any(|w| same4(w, k))) {
            t4.remove(k).map_err(map_err("EAM4"))?;
        }
        Ok(())
    }

    /// Attaches the program to `iface` and records its per-interface settings.
    /// `partial_checksums` says whether partial transport checksums can arrive there (see
    /// `config::PartialChecksums`).
    pub fn attach(
        &mut self,
        iface: &str,
        mode: config::XdpMode,
        partial_checksums: bool,
    ) -> Result<(), DataplaneError> {
        let attach_err = |source| DataplaneError::Attach {
            iface: iface.to_string(),
            mode,
            source,
        };
        let ifindex = crate::sys::if_index(iface).ok_or_else(|| {
            attach_err(ProgramError::UnknownInterface {
                name: iface.to_string(),
            })
        })?;
        // Settings first, so the first packet the program sees is handled right.
        let settings = InterfaceSettings {
            partial_checksums,
            mtu: crate::sys::mtu(iface).unwrap_or(0),
            addr4: crate::sys::ipv4_addr(iface),
        };
        self.set_interface(ifindex, &settings)?;
        let aya_mode = match mode {
            config::XdpMode::Native => XdpMode::Driver,
            config::XdpMode::Generic => XdpMode::Skb,
        };
        let id = self
            .program_mut(XDP_PROGRAM)?
            .attach_to_if_index(ifindex, aya_mode)
            .map_err(attach_err)?;
        self.links.push(Link {
            iface: iface.to_string(),
            ifindex,
            program: XDP_PROGRAM,
            id,
        });
        Ok(())
    }

    /// Attaches to the translator link (natively: it is a veth): the translating program on
    /// its far end, the pass-through one on the kernel's end, which gives the far end's
    /// `XDP_TX` the NAPI context it needs on veth.
    pub fn attach_link(
        &mut self,
        link: &crate::link::TranslatorLink,
    ) -> Result<(), DataplaneError> {
        let settings = InterfaceSettings {
            // The kernel side has transmit checksum offload off (see `link::create`): every
            // checksum arrives complete.
            partial_checksums: false,
            mtu: crate::sys::mtu(&link.peer).unwrap_or(0),
            addr4: None,
        };
        self.set_interface(link.peer_index, &settings)?;
        for (iface, ifindex, program) in [
            (&link.name, link.index, PASS_PROGRAM),
            (&link.peer, link.peer_index, LINK_PROGRAM),
        ] {
            let id = self
                .program_mut(program)?
                .attach_to_if_index(ifindex, XdpMode::Driver)
                .map_err(|source| DataplaneError::Attach {
                    iface: iface.clone(),
                    mode: config::XdpMode::Native,
                    source,
                })?;
            self.links.push(Link {
                iface: iface.clone(),
                ifindex,
                program,
                id,
            });
        }
        Ok(())
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

    /// Detaches from every interface, newest first.
    pub fn detach_all(&mut self) -> Vec<(String, Result<(), ProgramError>)> {
        let links = std::mem::take(&mut self.links);
        let mut out = Vec::new();
        for link in links.into_iter().rev() {
            let r = match self.program_mut(link.program) {
                Ok(p) => p.detach(link.id),
                Err(_) => Err(ProgramError::NotAttached),
            };
            if let Ok(mut m) = self.ifaces() {
                let _ = m.remove(&link.ifindex);
            }
            out.push((link.iface, r));
        }
        out
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
        self.ebpf
            .program(name)
            .ok_or(DataplaneError::Missing(name))?
            .try_into()
            .map_err(|source| DataplaneError::Program { name, source })
    }

    fn program_mut(&mut self, name: &'static str) -> Result<&mut Xdp, DataplaneError> {
        self.ebpf
            .program_mut(name)
            .ok_or(DataplaneError::Missing(name))?
            .try_into()
            .map_err(|source| DataplaneError::Program { name, source })
    }

    /// The binding tables (stateful NAT64), for the sweeper and for listing.
    pub fn bindings(&mut self) -> Result<crate::bindings::Tables<'_>, DataplaneError> {
        let (mut b6, mut b4, mut clients) = (None, None, None);
        for (name, map) in self.ebpf.maps_mut() {
            match name {
                "BIB6" => b6 = Some(map),
                "BIB4" => b4 = Some(map),
                "CLIENTS" => clients = Some(map),
                _ => {}
            }
        }
        Ok(crate::bindings::Tables {
            bib6: HashMap::try_from(b6.ok_or(DataplaneError::Missing("map BIB6"))?)
                .map_err(map_err("BIB6"))?,
            bib4: HashMap::try_from(b4.ok_or(DataplaneError::Missing("map BIB4"))?)
                .map_err(map_err("BIB4"))?,
            clients: HashMap::try_from(clients.ok_or(DataplaneError::Missing("map CLIENTS"))?)
                .map_err(map_err("CLIENTS"))?,
        })
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

fn same6(a: &Key<[u8; 16]>, b: &Key<[u8; 16]>) -> bool {
    a.prefix_len() == b.prefix_len() && a.data() == b.data()
}

fn same4(a: &Key<[u8; 4]>, b: &Key<[u8; 4]>) -> bool {
    a.prefix_len() == b.prefix_len() && a.data() == b.data()
}
