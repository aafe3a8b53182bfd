//! The daemon's configuration: a TOML file (every key documented in
//! `docs/configuration.md`), overridable from the command line, validated before anything on
//! the system is touched. Errors name the field and the reason.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use ipnet::{Ipv4Net, Ipv6Net};
use nat64_common::maps::{
    CONFIG_F_COPY_TOS, CONFIG_F_EAM, CONFIG_F_LINK, CONFIG_F_POOL6791, CONFIG_F_STATEFUL, EamToV4,
    EamToV6,
};
use serde::Deserialize;

mod stateful;
#[cfg(test)]
mod tests;
mod types;
mod validate;

use stateful::validate_stateful;
pub use stateful::*;
pub use types::*;
pub use validate::POOL6_IPV4_MAX_EXPANDED;
use validate::overlaps;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type. The
    /// message from the TOML parser names the line, the column and the key.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// A value parsed but is not acceptable.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The whole configuration file. Unknown keys are errors.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// RFC 6052 prefix; default the Well-Known Prefix 64:ff9b::/96.
    #[serde(default)]
    pub pool6: Pool6,
    /// RFC 7915 sections 4.1 and 5.1: copy TOS to traffic class and back (true), or write zero;
    /// the default of `tos` and `traffic_class`, which set each direction on its own.
    #[serde(default = "yes")]
    pub copy_tos: bool,
    /// RFC 7915 section 5.1: the IPv4 TOS of IPv6-to-IPv4 packets, `"copy"` (the traffic class)
    /// or a value to always set ("an administratively configurable option to ignore the IPv6
    /// traffic class and always set the IPv4 TOS Octet to a specified value").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos: Option<Tos>,
    /// RFC 7915 section 4.1: the IPv6 traffic class of IPv4-to-IPv6 packets, `"copy"` (the
    /// TOS) or `"zero"` ("the ability to ignore the IPv4 TOS and always set the IPv6 traffic
    /// class (TC) to zero").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_class: Option<TrafficClass>,
    /// RFC 6791: IPv4 source address of translated ICMPv6 errors whose source (typically an
    /// IPv6 router sending Packet Too Big) has no IPv4 mapping. Without it they leave from the
    /// node's own address toward their destination, as Jool and TAYGA do (RFC 6791 section 4
    /// allows a pool of one address), so path MTU discovery works out of the box.
    #[serde(default)]
    pub pool6791: Option<std::net::Ipv4Addr>,
    /// RFC 6791 on the IPv6 side: IPv6 source address of translated ICMPv4 errors whose source
    /// has no IPv6 mapping (no pool6, no EAM entry). Without it, the node's own IPv6 address
    /// toward the error's destination.
    #[serde(default)]
    pub pool6791v6: Option<std::net::Ipv6Addr>,
    /// The IPv6 size IPv4 packets without DF are fragmented to (RFC 7915 section 4; Jool's
    /// lowest-ipv6-mtu), through the translator link; without a link they are dropped. Packets
    /// with DF are judged by their IPv6 route instead. 0 disables the check.
    #[serde(default = "default_ipv6_mtu")]
    pub ipv6_mtu: u16,
    /// Interfaces the dataplane attaches to.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Explicit address mappings.
    #[serde(default)]
    pub eam: Vec<Eam>,
    /// IPv4 prefixes whose addresses stand for IPv6 hosts under pool6 (RFC 6052: their
    /// IPv4-translatable addresses; RFC 7915 section 4.1, the stateless IVI case): an IPv4
    /// packet to one of them is translated to pool6 + the address. Routed into the translator
    /// link like the EAM IPv4 prefixes. Empty: only EAM entries (and pool4) make an IPv4
    /// destination the translator's, so nothing the node itself is sent is ever taken.
    #[serde(default)]
    pub pool6_ipv4: Vec<Ipv4Net>,
    /// The translator link's name, or "off" (see [`LinkName`]).
    #[serde(default)]
    pub translator_link: LinkName,
    /// The admin interface: a Unix socket only root (or the daemon's own user) may use, for
    /// `nat64d bindings ...`; "off" disables it.
    #[serde(default = "default_admin_socket")]
    pub admin_socket: OrOff<PathBuf>,
    /// Where the stateful binding tables and the counters are pinned (a directory on a bpf
    /// filesystem), so that a restarted daemon adopts them: established sessions survive a
    /// restart or an upgrade. "off": nothing pinned. When the directory is not on a bpf
    /// filesystem the daemon says so and runs without pinning.
    #[serde(default = "default_state_dir")]
    pub state_dir: OrOff<PathBuf>,
    /// RFC 7915 section 4.5: "compute" (default) the checksum of an unfragmented IPv4 UDP
    /// datagram that has none, or "drop" it.
    #[serde(default)]
    pub udp_zero_checksum: UdpZeroChecksum,
    /// What a clean stop does to the dataplane: "detach" (default) or "keep" (needs
    /// `state_dir` on a bpf filesystem: attachments are pinned there).
    #[serde(default)]
    pub on_stop: OnStop,
    /// Forward translated packets from the hook that translated them (a FIB lookup and a
    /// redirect to the egress interface, from XDP or TC) instead of handing them up the
    /// kernel's stack: faster, but routing is all they get (no netfilter, no Kubernetes
    /// service handling). From XDP the egress driver must support XDP redirects (on veth, its
    /// peer must run an XDP program); from TC any interface takes them. Off by default. Its
    /// first name, `forward_in_xdp`, is still read.
    #[serde(default, alias = "forward_in_xdp")]
    pub forward_in_dataplane: bool,
    /// Switch IPv4 and IPv6 forwarding on at start if they are off (true), or leave them to the
    /// operator (false; `nat64d doctor` reports them). A translator forwards every packet it
    /// translates, so without forwarding nothing crosses.
    #[serde(default = "yes")]
    pub enable_forwarding: bool,
    /// Where the Prometheus metrics and the probes (`/healthz`, `/readyz`) are served,
    /// "ADDRESS:PORT"; "off" disables them. Read-only.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: OrOff<std::net::SocketAddr>,
    /// Stateful NAT64; absent: stateless only.
    #[serde(default)]
    pub stateful: Option<Stateful>,
    /// Log format.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Seconds between counter summaries in the log; 0 logs them only at shutdown.
    #[serde(default)]
    pub stats_interval_secs: u64,
}

pub(crate) fn yes() -> bool {
    true
}

/// Where the admin socket lives unless configured.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/nat64d/admin.sock";

/// Where pinned state lives unless configured.
pub const DEFAULT_STATE_DIR: &str = "/sys/fs/bpf/nat64d";

fn default_state_dir() -> OrOff<PathBuf> {
    OrOff(Some(DEFAULT_STATE_DIR.into()))
}

fn default_metrics_listen() -> OrOff<std::net::SocketAddr> {
    OrOff(Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9464))))
}

fn default_admin_socket() -> OrOff<PathBuf> {
    OrOff(Some(DEFAULT_ADMIN_SOCKET.into()))
}

/// RFC 7915 section 4: an IPv4 packet without DF is fragmented to fit 1280-byte IPv6 packets,
/// the minimum IPv6 MTU, unless the operator knows the IPv6 network's real minimum and raises
/// it (Jool's `lowest-ipv6-mtu`, default 1280 too).
fn default_ipv6_mtu() -> u16 {
    1280
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("the empty config is valid")
    }
}

impl Config {
    /// Reads and parses a file, then validates it (without looking at the system).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The configuration as TOML, every key written out (defaults included): what `nat64d
    /// config` shows of the running daemon. Parses back to the same configuration.
    pub fn to_toml(&self) -> String {
        toml::to_string(self)
            .unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }

    /// Parses TOML text and validates it. `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Whether a running daemon can move from `self` to `new` by reloading: what the dataplane
    /// reads from its maps (pool6, EAM, MTU, TOS, RFC 6791, stateful timeouts, limits, port
    /// ranges, static bindings) changes in place; what was set up at start (interfaces, the
    /// translator link, listeners, logging, pool4 and the binding tables' size) needs a
    /// restart, and is refused with the field that changed.
    pub fn check_reload(&self, new: &Config) -> Result<(), ConfigError> {
        let restart = |field: &str| {
            Err(invalid(
                field,
                "changes only with a restart; the running configuration is kept",
            ))
        };
        if self.interfaces != new.interfaces {
            return restart("interfaces");
        }
        if self.translator_link != new.translator_link {
            return restart("translator_link");
        }
        if self.admin_socket != new.admin_socket {
            return restart("admin_socket");
        }
        if self.metrics_listen != new.metrics_listen {
            return restart("metrics_listen");
        }
        if self.log_format != new.log_format {
            return restart("log_format");
        }
        if self.enable_forwarding != new.enable_forwarding {
            return restart("enable_forwarding");
        }
        if self.state_dir != new.state_dir {
            return restart("state_dir");
        }
        if self.stats_interval_secs != new.stats_interval_secs {
            return restart("stats_interval_secs");
        }
        match (&self.stateful, &new.stateful) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                if a.pool4 != b.pool4 {
                    return restart("stateful.pool4");
                }
                // RFC 7422: the bindings made under one mapping lie in the blocks it gave;
                // under another they would sit in other clients' (the start flushes them).
                if a.deterministic != b.deterministic {
                    return restart("stateful.deterministic");
                }
                if a.max_bindings != b.max_bindings {
                    return restart("stateful.max_bindings");
                }
                // Its route into the link is made with the link.
                if a.shared_address_alias != b.shared_address_alias {
                    return restart("stateful.shared_address_alias");
                }
                if a.session_capacity() != b.session_capacity() {
                    return restart("stateful.max_sessions");
                }
                // Blocks are laid out by their size and the port ranges; blocks of two layouts
                // could overlap.
                let ranges = |s: &crate::config::Stateful| [s.range(0), s.range(1), s.range(2)];
                if a.port_block_size != b.port_block_size
                    || (b.port_block_size != 0 && ranges(a) != ranges(b))
                {
                    return restart("stateful.port_block_size");
                }
            }
            _ => return restart("stateful"),
        }
        Ok(())
    }

    /// The IPv6 address the dataplane gives the IPv4 address `a` as a source: through the EAM
    /// entry of longest IPv4 prefix that holds it (RFC 7757 section 3.3), else under pool6
    /// (RFC 6052); `None` when neither maps it.
    pub fn ipv6_of(&self, a: std::net::Ipv4Addr) -> Option<std::net::Ipv6Addr> {
        if let Some(e) = self
            .eam
            .iter()
            .filter(|e| e.ipv4.contains(&a))
            .max_by_key(|e| e.ipv4.prefix_len())
        {
            let v6 = nat64_common::addr::eam_place(
                &e.ipv6.network().octets(),
                e.ipv4.prefix_len(),
                e.shift(),
                a.octets(),
            );
            return Some(v6.into());
        }
        let p6 = self.pool6.0?;
        nat64_common::addr::embed(&p6.network().octets(), p6.prefix_len(), a.octets())
            .map(Into::into)
    }

    /// The EAM4 trie entries of the EAM table: one per entry whose suffixes have the same
    /// length; one /32 per address for an entry whose IPv6 suffix is the longer, its whole IPv6
    /// address computed here (RFC 7757 section 3.2; see `nat64_common::addr::eam_to_v6`).
    pub fn eam4_entries(&self) -> impl Iterator<Item = (Ipv4Net, EamToV6)> + '_ {
        self.eam.iter().flat_map(|e| {
            let shift = e.shift();
            let nets: Vec<Ipv4Net> = if shift == 0 {
                vec![e.ipv4]
            } else {
                e.ipv4
                    .subnets(32)
                    .map(Iterator::collect)
                    .unwrap_or_default()
            };
            let p6 = e.ipv6.network().octets();
            nets.into_iter().map(move |n| {
                let v6 = if shift == 0 {
                    p6
                } else {
                    nat64_common::addr::eam_place(
                        &p6,
                        e.ipv4.prefix_len(),
                        shift,
                        n.network().octets(),
                    )
                };
                (
                    n,
                    EamToV6 {
                        v6,
                        v4_len: n.prefix_len(),
                        flags: 0,
                        _pad: [0; 2],
                    },
                )
            })
        })
    }

    /// The EAM4 trie entries that make the `pool6_ipv4` prefixes map to pool6 + the address
    /// (`EAM_F_POOL6`): the EAM arithmetic puts an entry's IPv4 suffix bits in the last bits
    /// of its IPv6 prefix, which is where a /96 pool6 embeds the address, so one entry per
    /// prefix; shorter pool6 prefixes spread the address around the u-octet (RFC 6052 section
    /// 2.2), so one /32 entry per address ([`POOL6_IPV4_MAX_EXPANDED`] at most, validated).
    pub fn pool6_ipv4_entries(&self) -> impl Iterator<Item = (Ipv4Net, EamToV6)> + '_ {
        let pool6 = self.pool6.0;
        let wide = pool6.is_some_and(|p| p.prefix_len() == 96);
        self.pool6_ipv4.iter().flat_map(move |p| {
            let nets: Vec<Ipv4Net> = if wide {
                vec![*p]
            } else {
                p.subnets(32).map(Iterator::collect).unwrap_or_default()
            };
            nets.into_iter().filter_map(move |n| {
                let p6 = pool6?;
                let v6 = nat64_common::addr::embed(
                    &p6.network().octets(),
                    p6.prefix_len(),
                    n.network().octets(),
                )?;
                Some((
                    n,
                    EamToV6 {
                        v6,
                        v4_len: n.prefix_len(),
                        flags: nat64_common::maps::EAM_F_POOL6,
                        _pad: [0; 2],
                    },
                ))
            })
        })
    }

    /// `stateful.shared_address_alias`, where stateful NAT64 and the translator link are on
    /// (without a link there is nowhere to route it).
    pub fn shared_alias(&self) -> Option<std::net::Ipv4Addr> {
        self.translator_link.0.as_ref()?;
        self.stateful.as_ref()?.shared_address_alias.get().copied()
    }

    /// The address after the alias `a`, routed into the link at the link's own MTU: GSO
    /// aggregates with DF to the shared address go under it, for the kernel to cut into
    /// segments without holding them to pool4's MTU (the dataplane's `link::df_alias`).
    pub fn df_alias(a: std::net::Ipv4Addr) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(u32::from(a).wrapping_add(1))
    }

    /// The prefixes the daemon routes into the translator link: pool6, and the EAM IPv4
    /// prefixes with pool4 (and the two alias addresses of a pool4 address the node shares).
    pub fn link_routes(&self) -> (Vec<Ipv6Net>, Vec<Ipv4Net>) {
        let v6 = self.pool6.0.into_iter().collect();
        let v4 = self
            .eam
            .iter()
            .map(|e| e.ipv4)
            .chain(self.pool6_ipv4.iter().copied())
            .chain(self.stateful.iter().flat_map(|s| s.pool4.iter().copied()))
            .chain(
                self.shared_alias()
                    .into_iter()
                    .flat_map(|a| [a, Self::df_alias(a)].map(Ipv4Net::from)),
            )
            .collect();
        (v6, v4)
    }

    /// Checks that every configured interface exists on this host.
    pub fn check_interfaces_exist(&self) -> Result<(), ConfigError> {
        for (i, ifc) in self.interfaces.iter().enumerate() {
            if crate::sys::if_index(&ifc.name).is_none() {
                return Err(invalid(
                    format!("interfaces[{i}].name"),
                    format!("no interface named {:?} on this host", ifc.name),
                ));
            }
        }
        Ok(())
    }

    /// The IPv4 prefixes the translator answers for, with the field that sets each: the EAM
    /// IPv4 prefixes, `pool6_ipv4` and pool4 (all routed into the translator link).
    pub fn answered_ipv4(&self) -> Vec<(String, Ipv4Net)> {
        let eam = self
            .eam
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("eam[{i}].ipv4"), e.ipv4));
        let pool6_ipv4 = self
            .pool6_ipv4
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("pool6_ipv4[{i}]"), *p));
        let pool4 = self.stateful.iter().flat_map(|s| {
            s.pool4
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("stateful.pool4[{i}]"), *p))
        });
        eam.chain(pool6_ipv4).chain(pool4).collect()
    }

    /// This node's addresses `own` inside the EAM and `pool6_ipv4` prefixes, as the trie entries
    /// that keep them the node's (`EAM_F_LOCAL`): a /128 of the IPv6 counterpart of each EAM
    /// one (EAM6), a /32 of each (EAM4). Jool likewise translates nothing to or from its own
    /// addresses.
    pub fn local_exclusions(&self, own: &[(String, std::net::Ipv4Addr)]) -> LocalExclusions {
        use nat64_common::maps::EAM_F_LOCAL;
        let (mut six, mut four) = (Vec::new(), Vec::new());
        for (_, a) in own {
            let eam = self.eam.iter().find(|e| e.ipv4.contains(a));
            let in_pool6_ipv4 = self.pool6_ipv4.iter().any(|p| p.contains(a));
            if let Some(e) = eam {
                let v6 = nat64_common::addr::eam_place(
                    &e.ipv6.network().octets(),
                    e.ipv4.prefix_len(),
                    e.shift(),
                    a.octets(),
                );
                if let Ok(k) = Ipv6Net::new(v6.into(), 128) {
                    six.push((
                        k,
                        EamToV4 {
                            v4: a.octets(),
                            v4_len: 32,
                            shift: 0,
                            flags: EAM_F_LOCAL,
                            _pad: [0; 1],
                        },
                    ));
                }
            }
            if eam.is_some() || in_pool6_ipv4 {
                four.push((
                    Ipv4Net::from(*a),
                    EamToV6 {
                        v6: [0; 16],
                        v4_len: 32,
                        flags: EAM_F_LOCAL,
                        _pad: [0; 2],
                    },
                ));
            }
        }
        (six, four)
    }

    /// Checks that a pool4 prefix holding an address of this host shares it safely: the node's
    /// own sockets take their ports from `net.ipv4.ip_local_port_range` (ping sockets their
    /// identifiers too), so pool4's port ranges must lie outside it. Then bindings and the
    /// node's sockets never meet, and the dataplane leaves to the kernel what arrives for the
    /// address outside pool4's ranges (Jool's default pool4 is the node's addresses, ports
    /// 61001-65535, beside Linux's default 32768-60999). (An EAM or `pool6_ipv4` prefix may
    /// hold one too: the node's addresses in it are kept its own, see `local_exclusions`.)
    pub fn check_own_addresses(&self) -> Result<(), ConfigError> {
        let own = crate::sys::ipv4_addrs();
        let Some(st) = &self.stateful else {
            return Ok(());
        };
        for (field, p) in self
            .answered_ipv4()
            .into_iter()
            .filter(|(f, _)| f.starts_with("stateful."))
        {
            let Some((ifc, a)) = own.iter().find(|(_, a)| p.contains(a)) else {
                continue;
            };
            let local =
                std::fs::read_to_string(crate::sys::sysctl_path("net.ipv4.ip_local_port_range"))
                    .unwrap_or_default();
            let mut it = local
                .split_whitespace()
                .filter_map(|v| v.parse::<u16>().ok());
            let (Some(lo), Some(hi)) = (it.next(), it.next()) else {
                return Err(invalid(
                    field,
                    format!(
                        "{p} holds {a}, an address of {ifc} on this host, and net.ipv4.ip_local_port_range cannot be read to check that pool4's ports stay clear of the host's own"
                    ),
                ));
            };
            for (j, name) in ["tcp_ports", "udp_ports", "icmp_ids"].iter().enumerate() {
                let r = st.range(j);
                if r.0 <= hi && lo <= r.1 {
                    return Err(invalid(
                        field,
                        format!(
                            "{p} holds {a}, an address of {ifc} on this host, and pool4's {name} {}-{} overlap net.ipv4.ip_local_port_range {lo}-{hi}: bindings and the host's own sockets would take the same ports; set stateful.ports (or {name}) outside it, such as \"61001-65535\" (Jool's default for a pool4 on the node's address), or narrow ip_local_port_range",
                            r.0, r.1
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The value of the dataplane's `CONFIG` map.
    pub fn dataplane(&self) -> nat64_common::maps::Config {
        let mut c = nat64_common::maps::Config::disabled();
        if let Some(p) = self.pool6.0 {
            c.pool6 = p.network().octets();
            c.pool6_len = p.prefix_len();
        }
        // Each direction on its own (RFC 7915 sections 4.1 and 5.1), copy_tos the default.
        let tos = self.tos.unwrap_or(if self.copy_tos {
            Tos::Copy
        } else {
            Tos::Set(0)
        });
        let tc = self.traffic_class.unwrap_or(if self.copy_tos {
            TrafficClass::Copy
        } else {
            TrafficClass::Zero
        });
        c.flags = match tos {
            Tos::Copy => CONFIG_F_COPY_TOS,
            Tos::Set(v) => {
                c.tos = v;
                0
            }
        };
        if tc == TrafficClass::Zero {
            c.flags2 |= nat64_common::maps::CONFIG_F2_TC_ZERO;
        }
        c.ipv6_mtu = self.ipv6_mtu;
        // pool6_ipv4 prefixes live in the EAM4 trie (`EAM_F_POOL6`).
        if !self.eam.is_empty() || !self.pool6_ipv4.is_empty() {
            c.flags |= CONFIG_F_EAM;
        }
        c.eam6_span = nat64_common::addr::span6(
            self.eam
                .iter()
                .map(|e| (e.ipv6.network().octets(), e.ipv6.prefix_len())),
        );
        c.eam4_span = nat64_common::addr::span4(
            self.eam
                .iter()
                .map(|e| e.ipv4)
                .chain(self.pool6_ipv4.iter().copied())
                .map(|p| (p.network().octets(), p.prefix_len())),
        );
        if self.forward_in_dataplane {
            c.flags |= nat64_common::maps::CONFIG_F_FIB;
        }
        match self.pool6791 {
            Some(a) => {
                c.pool6791 = a.octets();
                c.flags |= CONFIG_F_POOL6791;
            }
            // The node's own address: the daemon also sets the flag for a configured address
            // the node holds (`Dataplane::apply`), which it can only know at run time.
            None => c.flags2 |= nat64_common::maps::CONFIG_F2_POOL6791_LOCAL,
        }
        if let Some(a) = self.pool6791v6 {
            c.pool6791v6 = a.octets();
            c.flags2 |= nat64_common::maps::CONFIG_F2_POOL6791_V6;
        }
        if self.udp_zero_checksum == UdpZeroChecksum::Drop {
            c.flags2 |= nat64_common::maps::CONFIG_F2_UDP_ZERO_DROP;
        }
        if c.pool6_len == 96 && c.pool6 == nat64_common::addr::WKP {
            c.flags2 |= nat64_common::maps::CONFIG_F2_POOL6_WKP;
        }
        if self.translator_link.0.is_some() {
            c.flags |= CONFIG_F_LINK;
        }
        if let Some(st) = &self.stateful {
            c.flags |= CONFIG_F_STATEFUL;
            if st.filtering == Filtering::AddressDependent {
                c.flags2 |= nat64_common::maps::CONFIG_F2_ADF;
            }
            if st.drop_external_tcp {
                c.flags2 |= nat64_common::maps::CONFIG_F2_DROP_EXTERNAL_TCP;
            }
            if st.icmp_error_source == IcmpErrorSource::QuotedDestination {
                c.flags2 |= nat64_common::maps::CONFIG_F2_ICMP_SRC_QUOTED;
            }
            c.pool4_addresses = st.pool4.iter().map(|p| 1u32 << (32 - p.prefix_len())).sum();
            c.pool4_prefixes = st.pool4.len() as u8;
            c.pool4_span = nat64_common::addr::span4(
                st.pool4
                    .iter()
                    .map(|p| (p.network().octets(), p.prefix_len())),
            );
            let range = |r: Option<PortRange>| {
                let r = r.unwrap_or(st.ports);
                [r.0, r.1]
            };
            c.tcp_ports = range(st.tcp_ports);
            c.udp_ports = range(st.udp_ports);
            c.icmp_ids = range(st.icmp_ids);
            c.per_client_limit = st.per_client_limit;
            c.det = st
                .deterministic_map()
                .unwrap_or(nat64_common::deterministic::Deterministic::OFF);
            c.block_size = st.port_block_size;
            c.max_blocks = st.max_blocks().min(u32::from(u16::MAX)) as u16;
        }
        c
    }

    /// The MTU of the translator link: 1500 whatever the IPv6 MTU (XDP on veth caps the MTU
    /// near one page, and a larger link buys nothing: what takes it is the exception). Not
    /// the IPv6 MTU: what the fast path hands off (an IPv6 fragment, an ICMP error) must get
    /// in whole, and the IPv6 MTU only says what IPv4 packets are fragmented to, which the
    /// IPv4 routes' own MTU does ([`Config::ipv4_route_mtu`]).
    pub fn link_mtu(&self) -> u32 {
        1500
    }

    /// The MTU of the IPv4 routes into the translator link: the kernel fragments what takes
    /// them (IPv4 without DF that would outgrow the IPv6 MTU, RFC 7915 section 4.1) so that
    /// each piece fits the IPv6 MTU once translated (20 bytes of header growth, 8 of Fragment
    /// header).
    pub fn ipv4_route_mtu(&self) -> u32 {
        self.ipv4_route_mtu_under(0)
    }

    /// [`Config::ipv4_route_mtu`] on a node whose narrowest IPv6 route out has MTU `floor6`
    /// (`link::ipv6_route_floor`; 0: unknown): no more than that route carries either. The
    /// dataplane hands an IPv4 packet without DF to the kernel when its translation is too
    /// big for its IPv6 route (narrower than `ipv6_mtu`: a tunnel, say), and the pieces the
    /// kernel cuts it into on the way into the link must fit that route, as RFC 7915 section
    /// 4.1 wants (Jool fragments to the route's MTU; its corpus's `cct1` and `cft1`).
    pub fn ipv4_route_mtu_under(&self, floor6: u16) -> u32 {
        let v6 = match self.ipv6_mtu {
            0 => 1500,
            m => u32::from(m).min(1500),
        };
        let v6 = match u32::from(floor6) {
            f if f >= 1280 => v6.min(f),
            _ => v6,
        };
        v6 - crate::link::IPV4_FRAGMENT_GROWTH
    }
}
