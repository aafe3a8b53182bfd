//! The daemon's configuration: a TOML file (every key documented in
//! `docs/configuration.md`), overridable from the command line, validated before anything on
//! the system is touched. Errors name the field and the reason.

use std::{
    collections::BTreeSet,
    fmt,
    net::Ipv6Addr,
    path::{Path, PathBuf},
    str::FromStr,
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use nat64_common::{
    addr::{RFC6052_LENGTHS, U_OCTET, WELL_KNOWN_PREFIX},
    maps::{
        CONFIG_F_COPY_TOS, CONFIG_F_EAM, CONFIG_F_LINK, CONFIG_F_POOL6791, CONFIG_F_STATEFUL,
        EAM_MAX_ENTRIES, EamToV4, EamToV6, POOL4_MAX_PREFIXES,
    },
};
use serde::Deserialize;

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

/// How the XDP program is attached (`XdpMode` in aya).
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver (fastest; veth and most physical NICs support it).
    #[default]
    Native,
    /// On the generic skb path (any interface; slower).
    Generic,
}

impl FromStr for XdpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" => Ok(Self::Native),
            "generic" => Ok(Self::Generic),
            other => Err(format!(
                "unknown XDP mode {other:?} (expected native or generic; tc for the TC hook)"
            )),
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Generic => "generic",
        })
    }
}

/// Where on an interface the fast path runs.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// TC on virtual links (veth: pods, containers), where it measured faster than XDP on
    /// every count (docs/benchmarks.md), when the translator link is on (TC leaves the rare
    /// paths to it), tcx exists (Linux 6.6) and `xdp_mode` is not "generic"; XDP otherwise
    /// (physical NICs, where native XDP earns its place).
    #[default]
    Auto,
    /// XDP, before the kernel builds a socket buffer: the highest packet rate and the
    /// earliest drops. On a veth, the kernel gives up GSO for it, so bulk TCP crosses segment
    /// by segment.
    Xdp,
    /// TC ingress (tcx, Linux 6.6): the same translation on the socket buffer, which keeps a
    /// GSO packet whole (`bpf_skb_change_proto`); for bulk TCP over veth.
    Tc,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Xdp => "xdp",
            Self::Tc => "tc",
        })
    }
}

/// Whether the dataplane should recognise partial transport checksums on an interface.
///
/// Locally generated packets on virtual links (veth between pods and the host, for example)
/// carry `CHECKSUM_PARTIAL`: the checksum field holds only the pseudo-header sum, and it must be
/// updated differently. XDP cannot see the kernel's flag, so the dataplane recognises such a
/// field by its value, which a full checksum matches by chance once in 65536 packets. So it is
/// only done where partial checksums can arrive.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PartialChecksums {
    /// On for virtual links (no bus, e.g. veth) and for generic XDP; off for physical NICs in
    /// native mode, whose received packets always carry full checksums.
    #[default]
    Auto,
    On,
    Off,
}

/// An interface the dataplane attaches to.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub hook: Hook,
    /// For `hook = "xdp"`.
    #[serde(default)]
    pub xdp_mode: XdpMode,
    #[serde(default)]
    pub partial_checksums: PartialChecksums,
}

impl FromStr for Interface {
    type Err = String;
    /// `NAME`, `NAME:MODE` (an XDP mode), `NAME:tc` or `NAME:xdp`, as given on the command
    /// line.
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, hook, mode) = match s.split_once(':') {
            Some((n, "tc")) => (n, Hook::Tc, XdpMode::default()),
            Some((n, "xdp")) => (n, Hook::Xdp, XdpMode::default()),
            Some((n, m)) => (n, Hook::Xdp, m.parse()?),
            None => (s, Hook::Auto, XdpMode::default()),
        };
        Ok(Self {
            name: name.to_string(),
            hook,
            xdp_mode: mode,
            partial_checksums: PartialChecksums::default(),
        })
    }
}

/// The trie entries that keep the node's own addresses its own: EAM6 (IPv6 /128s) and EAM4
/// (IPv4 /32s), see `Config::local_exclusions`.
pub type LocalExclusions = (Vec<(Ipv6Net, EamToV4)>, Vec<(Ipv4Net, EamToV6)>);

/// An explicit address mapping (RFC 7757): an IPv6 prefix and an IPv4 prefix whose suffix
/// bits map to the IPv6 bits right after the IPv6 prefix (section 3.2); the IPv6 suffix may be
/// the longer (any bits after the IPv4 suffix's are zero going to IPv6, ignored coming from
/// it), within the address's last 64 bits.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Eam {
    pub ipv6: Ipv6Net,
    pub ipv4: Ipv4Net,
}

impl Eam {
    /// Where the IPv4 suffix sits (`nat64_common::addr::eam_shift`; validated).
    pub fn shift(&self) -> u8 {
        nat64_common::addr::eam_shift(self.ipv6.prefix_len(), self.ipv4.prefix_len()).unwrap_or(0)
    }
}

/// `tos`: copy the IPv6 traffic class, or set this value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(try_from = "TosRepr", into = "TosRepr")]
pub enum Tos {
    Copy,
    Set(u8),
}

/// How `tos` is written: the word "copy" or a number.
#[derive(Deserialize, serde::Serialize)]
#[serde(untagged)]
enum TosRepr {
    Word(String),
    Value(u8),
}

impl TryFrom<TosRepr> for Tos {
    type Error = String;
    fn try_from(r: TosRepr) -> Result<Self, String> {
        match r {
            TosRepr::Word(w) if w == "copy" => Ok(Tos::Copy),
            TosRepr::Word(w) => Err(format!("{w:?} is neither \"copy\" nor a TOS value 0-255")),
            TosRepr::Value(v) => Ok(Tos::Set(v)),
        }
    }
}

impl From<Tos> for TosRepr {
    fn from(t: Tos) -> Self {
        match t {
            Tos::Copy => TosRepr::Word("copy".into()),
            Tos::Set(v) => TosRepr::Value(v),
        }
    }
}

/// `traffic_class`: copy the IPv4 TOS, or write zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficClass {
    Copy,
    Zero,
}

/// pool6: the RFC 6052 prefix, or "off" for an EAM-only translator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pool6(pub Option<Ipv6Net>);

impl From<Pool6> for String {
    fn from(p: Pool6) -> String {
        p.0.map_or_else(|| "off".to_string(), |n| n.to_string())
    }
}

impl Default for Pool6 {
    fn default() -> Self {
        Self(Some(
            Ipv6Net::new(Ipv6Addr::from(WELL_KNOWN_PREFIX), 96).expect("well-known prefix"),
        ))
    }
}

impl TryFrom<String> for Pool6 {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl FromStr for Pool6 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(Self(None));
        }
        s.parse::<Ipv6Net>()
            .map(|n| Self(Some(n)))
            .map_err(|e| format!("{s:?} is not an IPv6 prefix or \"off\": {e}"))
    }
}

/// The translator link: a veth pair the daemon creates and owns. The kernel routes pool6 and
/// the EAM IPv4 prefixes into `name`; the dataplane runs on the far end, [`LinkName::peer`].
/// What the XDP fast path cannot translate in place (IPv4 to fragment, GSO aggregates) and
/// traffic this host originates take that way. "off": no link and no routes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct LinkName(pub Option<String>);

impl LinkName {
    /// Longest accepted name: the far end's name adds [`LinkName::PEER_SUFFIX`] and must fit
    /// the kernel's 15 characters.
    pub const MAX_LEN: usize = 12;
    pub const PEER_SUFFIX: &str = "-dp";

    /// The far end's name, where the dataplane runs.
    pub fn peer(&self) -> Option<String> {
        self.0.as_ref().map(|n| format!("{n}{}", Self::PEER_SUFFIX))
    }
}

impl From<LinkName> for String {
    fn from(l: LinkName) -> String {
        l.0.unwrap_or_else(|| "off".to_string())
    }
}

impl Default for LinkName {
    fn default() -> Self {
        Self(Some("nat64".to_string()))
    }
}

impl TryFrom<String> for LinkName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl FromStr for LinkName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(Self(None));
        }
        if s.is_empty()
            || s.len() > Self::MAX_LEN
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(format!(
                "{s:?} is not a usable link name (1 to {} characters among letters, digits, '-', '_' and '.'; the far end adds {:?}), nor \"off\"",
                Self::MAX_LEN,
                Self::PEER_SUFFIX
            ));
        }
        Ok(Self(Some(s.to_string())))
    }
}

/// Stateful NAT64 (RFC 6146): IPv6 sources with no stateless mapping share the IPv4
/// addresses of pool4, one binding (address and port) per IPv6 transport address.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Stateful {
    /// The IPv4 prefixes bindings are made from (each /16 to /32, at most
    /// `POOL4_MAX_PREFIXES`): one prefix as a string, or a list.
    #[serde(deserialize_with = "one_or_more_prefixes")]
    pub pool4: Vec<Ipv4Net>,
    /// The port (and ICMP identifier) range of pool4, "LO-HI". Translator nodes sharing an
    /// address get disjoint ranges.
    #[serde(default = "default_ports")]
    pub ports: PortRange,
    /// Per-protocol ranges, each defaulting to `ports`.
    #[serde(default)]
    pub tcp_ports: Option<PortRange>,
    #[serde(default)]
    pub udp_ports: Option<PortRange>,
    #[serde(default)]
    pub icmp_ids: Option<PortRange>,
    /// Size of each binding table (IPv6 side and IPv4 side); a full table refuses new flows.
    #[serde(default = "default_max_bindings")]
    pub max_bindings: u32,
    /// Size of the session table (RFC 6146 section 3.5: one session per binding and remote
    /// IPv4 endpoint); a full table refuses new sessions. Default: twice `max_bindings`.
    #[serde(default)]
    pub max_sessions: Option<u32>,
    /// Which IPv4 hosts may use a binding (RFC 4787 section 5, RFC 6146 section 3.5):
    /// "endpoint-independent" (any, the default and the RFCs' recommendation for
    /// transparency) or "address-dependent" (only those its IPv6 client has sent to).
    #[serde(default)]
    pub filtering: Filtering,
    /// Refuse TCP connections that IPv4 hosts open on dynamic bindings (RFC 6146 section
    /// 3.5.2.2's security policy; Jool's drop-externally-initiated-tcp). Static bindings
    /// still accept them.
    #[serde(default)]
    pub drop_external_tcp: bool,
    /// The source of an ICMPv4 error translated for a binding's client: "router" (the error's
    /// own source under pool6, what traceroute needs; Jool's default) or "quoted-destination"
    /// (the quoted packet's destination, RFC 6146 section 3.4's tuple; Jool's
    /// source-icmpv6-errors-better = false).
    #[serde(default)]
    pub icmp_error_source: IcmpErrorSource,
    /// The most dynamic bindings one IPv6 /64 may hold (RFC 6888 REQ-4), so that one client
    /// cannot exhaust the pool; 0: no limit.
    #[serde(default = "default_per_client")]
    pub per_client_limit: u32,
    /// How long the port of an expired binding stays unused (RFC 6888 REQ-8); 0: reused at
    /// once.
    #[serde(default = "default_hold_down")]
    pub port_hold_down_secs: u64,
    /// RFC 6146 section 3.5.1: UDP binding lifetime after the last packet.
    #[serde(default = "default_udp_timeout")]
    pub udp_timeout_secs: u64,
    /// RFC 6146 section 3.5.2.2: established TCP.
    #[serde(default = "default_tcp_est_timeout")]
    pub tcp_established_timeout_secs: u64,
    /// RFC 6146 section 3.5.2.2: TCP opening or closing.
    #[serde(default = "default_tcp_trans_timeout")]
    pub tcp_transitory_timeout_secs: u64,
    /// RFC 6146 section 3.5.3: ICMP query identifiers.
    #[serde(default = "default_icmp_timeout")]
    pub icmp_timeout_secs: u64,
    /// Log every binding made and removed (with both transport addresses), so that an IPv4
    /// server's log line can be tied back to the IPv6 client. Reported by the sweeper, at most
    /// one sweep period late.
    #[serde(default)]
    pub log_bindings: bool,
    /// Refuse timeouts below the RFC 6146 minimums (UDP 2 min, TCP established 2 h 4 min, TCP
    /// transitory 4 min). Only a test bench turns this off.
    #[serde(default = "yes")]
    pub rfc_minimum_timeouts: bool,
    /// Static bindings: never expire, and let IPv4 hosts open flows inward.
    #[serde(default, rename = "static")]
    pub static_bindings: Vec<StaticBinding>,
}

/// The source of translated ICMPv4 errors in stateful NAT64 (`stateful.icmp_error_source`).
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IcmpErrorSource {
    /// The router that sent the error, under pool6.
    #[default]
    Router,
    /// The destination of the packet the error quotes (RFC 6146 section 3.4).
    QuotedDestination,
}

/// Filtering of inbound packets on a binding (`stateful.filtering`).
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Filtering {
    /// Any IPv4 host may send through a binding (RFC 4787 REQ-8, RFC 5382 REQ-3).
    #[default]
    EndpointIndependent,
    /// Only an IPv4 address the binding's client has sent to (a session names it).
    AddressDependent,
}

impl Stateful {
    /// The size of the session table: `max_sessions`, or twice `max_bindings`.
    pub fn session_capacity(&self) -> u32 {
        self.max_sessions
            .unwrap_or_else(|| self.max_bindings.saturating_mul(2))
    }
}

/// A binding from the configuration (`[[stateful.static]]`).
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StaticBinding {
    pub protocol: crate::bindings::Protocol,
    /// "[IPv6]:PORT" (port or ICMP identifier).
    pub ipv6: std::net::SocketAddrV6,
    /// "IPv4:PORT", the address in pool4.
    pub ipv4: std::net::SocketAddrV4,
}

/// `pool4 = "PREFIX"` or `pool4 = ["PREFIX", ...]`.
fn one_or_more_prefixes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Ipv4Net>, D::Error> {
    struct Prefixes;
    impl<'de> serde::de::Visitor<'de> for Prefixes {
        type Value = Vec<Ipv4Net>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an IPv4 prefix (\"203.0.113.0/28\") or a list of them")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.parse()
                .map(|p| vec![p])
                .map_err(|e| E::custom(format!("{v:?} is not an IPv4 prefix: {e}")))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<String>()? {
                out.push(v.parse().map_err(|e| {
                    serde::de::Error::custom(format!("{v:?} is not an IPv4 prefix: {e}"))
                })?);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Prefixes)
}

fn default_ports() -> PortRange {
    PortRange(1024, 65535)
}
fn default_max_bindings() -> u32 {
    nat64_common::state::BIB_DEFAULT_MAX_ENTRIES
}
fn default_per_client() -> u32 {
    4096
}
fn default_hold_down() -> u64 {
    120
}
fn default_udp_timeout() -> u64 {
    300
}
fn default_tcp_est_timeout() -> u64 {
    7440
}
fn default_tcp_trans_timeout() -> u64 {
    240
}
fn default_icmp_timeout() -> u64 {
    60
}

/// A port range "LO-HI" (or a single port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortRange(pub u16, pub u16);

impl From<PortRange> for String {
    fn from(r: PortRange) -> String {
        format!("{}-{}", r.0, r.1)
    }
}

impl TryFrom<String> for PortRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (lo, hi) = s.split_once('-').unwrap_or((&s, &s));
        let p = |x: &str| {
            x.trim()
                .parse::<u16>()
                .map_err(|e| format!("{s:?} is not a port range LO-HI: {e}"))
        };
        let (lo, hi) = (p(lo)?, p(hi)?);
        if lo == 0 || lo > hi {
            return Err(format!(
                "{s:?}: the range must start at 1 or above and not end below its start"
            ));
        }
        Ok(Self(lo, hi))
    }
}

/// RFC 7915 section 4.5: what becomes of an unfragmented IPv4 UDP datagram without a checksum
/// (zero), which IPv6 does not allow. A fragmented one is always dropped: its checksum cannot
/// be computed from one fragment.
#[derive(
    Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum UdpZeroChecksum {
    /// Compute it (what the section says a stateless translator should do; Jool's
    /// `amend-udp-checksum-zero = true`).
    #[default]
    Compute,
    /// Drop the datagram and count it (`udp_zero_checksum`), as for a fragment.
    Drop,
}

/// What a clean stop (SIGTERM, SIGINT) does to the dataplane.
#[derive(
    Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum OnStop {
    /// Detach the programs and remove the translator link and its routes: translation stops
    /// with the daemon.
    #[default]
    Detach,
    /// Leave the programs attached (pinned in `state_dir`), the translator link and its routes
    /// in place: translation goes on while no daemon runs, and the next start takes it over
    /// without dropping a packet (an upgrade, a DaemonSet rollout). `nat64d cleanup` removes it.
    Keep,
}

impl std::fmt::Display for OnStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Detach => "detach",
            Self::Keep => "keep",
        })
    }
}

/// Log output format.
#[derive(
    Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Stateful {
    /// The port (or identifier) range of a protocol: TCP, UDP, ICMP by
    /// `bindings::protocol_index` order.
    pub fn range(&self, protocol_index: usize) -> PortRange {
        match protocol_index {
            0 => self.tcp_ports,
            1 => self.udp_ports,
            _ => self.icmp_ids,
        }
        .unwrap_or(self.ports)
    }
}

/// The most addresses `pool6_ipv4` may cover with a pool6 shorter than /96 (each takes an entry
/// of the EAM4 trie, which holds `EAM_MAX_ENTRIES`).
pub const POOL6_IPV4_MAX_EXPANDED: u64 = 2048;

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
    /// The IPv6 MTU translated packets must fit; an IPv4 packet that would grow past it gets
    /// ICMP Fragmentation Needed (DF set) or is dropped (DF clear). 0 disables the check.
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
    /// Forward translated packets from XDP (a FIB lookup and a redirect to the egress
    /// interface) instead of handing them up the kernel's stack: faster, but routing is all
    /// they get (no netfilter, no Kubernetes service handling), and the egress driver must
    /// support XDP redirects (on veth, its peer must run an XDP program). Off by default.
    #[serde(default)]
    pub forward_in_xdp: bool,
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

fn yes() -> bool {
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

/// A setting that the string "off" turns off (`OrOff(None)`), written as its value otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrOff<T>(pub Option<T>);

impl<T> OrOff<T> {
    /// The value, unless off.
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

/// A value an [`OrOff`] setting holds, read from and written as text.
pub trait OffValue: Sized {
    /// What the text must be, for the error message.
    const EXPECTED: &'static str;
    fn parse(s: &str) -> Option<Self>;
    fn text(&self) -> String;
}

impl OffValue for PathBuf {
    const EXPECTED: &'static str = "a path";
    fn parse(s: &str) -> Option<Self> {
        (!s.is_empty()).then(|| PathBuf::from(s))
    }
    fn text(&self) -> String {
        self.display().to_string()
    }
}

impl OffValue for std::net::SocketAddr {
    const EXPECTED: &'static str = "ADDRESS:PORT (\"127.0.0.1:9464\", \"[::1]:9464\")";
    fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
    fn text(&self) -> String {
        self.to_string()
    }
}

impl<'de, T: OffValue> Deserialize<'de> for OrOff<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "off" {
            return Ok(Self(None));
        }
        T::parse(&s).map(|v| Self(Some(v))).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not {} nor \"off\"", T::EXPECTED))
        })
    }
}

impl<T: OffValue> serde::Serialize for OrOff<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.as_ref().map_or_else(|| "off".to_string(), T::text))
    }
}

fn default_ipv6_mtu() -> u16 {
    1500
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

    /// Checks everything that can be checked without the system.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(p) = self.pool6.0 {
            validate_pool6(&p)?;
        }
        if self.ipv6_mtu != 0 && self.ipv6_mtu < 1280 {
            return Err(invalid(
                "ipv6_mtu",
                format!(
                    "{} is below 1280, the minimum IPv6 link MTU (RFC 8200 section 5); 0 disables the check",
                    self.ipv6_mtu
                ),
            ));
        }
        if self.on_stop == OnStop::Keep && self.state_dir.get().is_none() {
            return Err(invalid(
                "on_stop",
                "\"keep\" pins the attachments in state_dir, which is \"off\"",
            ));
        }
        if let Some(a) = self.pool6791
            && !nat64_common::addr::is_translatable_v4(a.octets())
        {
            return Err(invalid(
                "pool6791",
                format!("{a} is not a unicast address a translated packet may come from"),
            ));
        }
        if let Some(a) = self.pool6791v6
            && (a.is_unspecified() || a.is_loopback() || a.is_multicast())
        {
            return Err(invalid(
                "pool6791v6",
                format!("{a} is not a unicast address a translated packet may come from"),
            ));
        }
        let mut names = BTreeSet::new();
        for (i, ifc) in self.interfaces.iter().enumerate() {
            let field = format!("interfaces[{i}].name");
            if ifc.name.is_empty() || ifc.name.len() > 15 || ifc.name.contains(['/', ' ', ':']) {
                return Err(invalid(
                    field,
                    format!(
                        "{:?} is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)",
                        ifc.name
                    ),
                ));
            }
            if !names.insert(ifc.name.as_str()) {
                return Err(invalid(
                    field,
                    format!("interface {:?} is listed twice", ifc.name),
                ));
            }
            if ifc.hook == Hook::Tc && self.translator_link.0.is_none() {
                return Err(invalid(
                    format!("interfaces[{i}].hook"),
                    "the TC hook leaves ICMP errors, extension headers, IPv4 options and \
                     fragments to the translator link, so translator_link cannot be \"off\"",
                ));
            }
        }
        if let (Some(link), Some(peer)) = (&self.translator_link.0, self.translator_link.peer())
            && let Some(i) = self
                .interfaces
                .iter()
                .position(|ifc| ifc.name == *link || ifc.name == peer)
        {
            return Err(invalid(
                "translator_link",
                format!(
                    "{link:?} (and its far end {peer:?}) belong to the daemon; interfaces[{i}] names {:?}",
                    self.interfaces[i].name
                ),
            ));
        }
        if let Some(st) = &self.stateful {
            validate_stateful(st, &self.eam, self.pool6.0.is_some())?;
        }
        for (i, p) in self.pool6_ipv4.iter().enumerate() {
            let field = format!("pool6_ipv4[{i}]");
            if self.pool6.0.is_none() {
                return Err(invalid(
                    field,
                    "its addresses are embedded under pool6, which is \"off\"",
                ));
            }
            if *p != p.trunc() {
                return Err(invalid(
                    field,
                    format!("{p} has host bits set; write {}", p.trunc()),
                ));
            }
            if self.pool6.0.is_some_and(|p6| p6.prefix_len() != 96)
                && self
                    .pool6_ipv4
                    .iter()
                    .map(|p| 1u64 << (32 - p.prefix_len()))
                    .sum::<u64>()
                    > POOL6_IPV4_MAX_EXPANDED
            {
                return Err(invalid(
                    field,
                    format!(
                        "with a pool6 shorter than /96 each address takes a table entry, and the prefixes hold more than {POOL6_IPV4_MAX_EXPANDED} addresses; list fewer, or use a /96 pool6"
                    ),
                ));
            }
            if !nat64_common::addr::is_translatable_v4(p.network().octets()) {
                return Err(invalid(
                    field,
                    format!(
                        "{p} starts with an address that is never translated (0/8, 127/8, multicast, class E)"
                    ),
                ));
            }
            // RFC 6052 section 3.1: the Well-Known Prefix must not carry non-global addresses.
            let wkp = self.pool6.0.is_some_and(|p6| {
                p6.prefix_len() == 96 && p6.addr().octets() == nat64_common::addr::WKP
            });
            if let Some((a, len)) = nat64_common::addr::NON_GLOBAL_V4.iter().find(|(a, len)| {
                wkp && Ipv4Net::new(std::net::Ipv4Addr::from(*a), *len)
                    .is_ok_and(|n| n.contains(p) || p.contains(&n))
            }) {
                return Err(invalid(
                    field,
                    format!(
                        "{p} overlaps {}/{len}, which is not global: the well-known prefix 64:ff9b::/96 must not carry it (RFC 6052 section 3.1); use a network-specific pool6 (such as a /96 of your own) or an EAM entry",
                        std::net::Ipv4Addr::from(*a)
                    ),
                ));
            }
        }
        // Entries with a longer IPv6 suffix take one per address (`eam4_entries`), counted
        // once each is known valid.
        for (i, e) in self.eam.iter().enumerate() {
            validate_eam(i, e)?;
        }
        // Counted, not listed: a /0 would list four billion.
        let entries = self
            .eam
            .iter()
            .map(|e| match e.shift() {
                0 => 1u64,
                _ => 1u64 << (32 - e.ipv4.prefix_len()),
            })
            .sum::<u64>()
            + self.pool6_ipv4_entries().count() as u64;
        if entries > EAM_MAX_ENTRIES as u64 {
            return Err(invalid(
                "eam",
                format!(
                    "{} entries take {entries} table entries (an entry whose IPv6 suffix is longer than its IPv4 one takes one per address, as does pool6_ipv4 under a pool6 shorter than /96); the dataplane holds at most {EAM_MAX_ENTRIES}",
                    self.eam.len()
                ),
            ));
        }
        for (i, e) in self.eam.iter().enumerate() {
            // An entry inside pool6 is fine: the EAM table is looked up first (RFC 7757
            // section 3.3), so its addresses translate by it and the rest of pool6 as usual.
            validate_eam(i, e)?;
            if let Some((j, p)) = self
                .pool6_ipv4
                .iter()
                .enumerate()
                .find(|(_, p)| **p == e.ipv4)
            {
                return Err(invalid(
                    format!("pool6_ipv4[{j}]"),
                    format!(
                        "{p} is eam[{i}].ipv4 too: an address would have two translations (a longer or shorter prefix is fine: the longest match wins)"
                    ),
                ));
            }
            for (j, other) in self.eam.iter().enumerate().take(i) {
                if overlaps(IpNet::V6(e.ipv6), IpNet::V6(other.ipv6)) {
                    return Err(invalid(
                        format!("eam[{i}].ipv6"),
                        format!("{} overlaps eam[{j}].ipv6 {}", e.ipv6, other.ipv6),
                    ));
                }
                if overlaps(IpNet::V4(e.ipv4), IpNet::V4(other.ipv4)) {
                    return Err(invalid(
                        format!("eam[{i}].ipv4"),
                        format!("{} overlaps eam[{j}].ipv4 {}", e.ipv4, other.ipv4),
                    ));
                }
            }
        }
        Ok(())
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
                if a.max_bindings != b.max_bindings {
                    return restart("stateful.max_bindings");
                }
                if a.session_capacity() != b.session_capacity() {
                    return restart("stateful.max_sessions");
                }
            }
            _ => return restart("stateful"),
        }
        Ok(())
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

    /// The prefixes the daemon routes into the translator link: pool6, and the EAM IPv4
    /// prefixes with pool4.
    pub fn link_routes(&self) -> (Vec<Ipv6Net>, Vec<Ipv4Net>) {
        let v6 = self.pool6.0.into_iter().collect();
        let v4 = self
            .eam
            .iter()
            .map(|e| e.ipv4)
            .chain(self.pool6_ipv4.iter().copied())
            .chain(self.stateful.iter().flat_map(|s| s.pool4.iter().copied()))
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
        if self.forward_in_xdp {
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
            let range = |r: Option<PortRange>| {
                let r = r.unwrap_or(st.ports);
                [r.0, r.1]
            };
            c.tcp_ports = range(st.tcp_ports);
            c.udp_ports = range(st.udp_ports);
            c.icmp_ids = range(st.icmp_ids);
            c.per_client_limit = st.per_client_limit;
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
        let v6 = match self.ipv6_mtu {
            0 => 1500,
            m => u32::from(m).min(1500),
        };
        v6 - crate::link::IPV4_FRAGMENT_GROWTH
    }
}

fn validate_stateful(st: &Stateful, eam: &[Eam], pool6: bool) -> Result<(), ConfigError> {
    if !pool6 {
        return Err(invalid(
            "stateful",
            "stateful NAT64 needs pool6: IPv6 hosts reach IPv4 ones through it",
        ));
    }
    if st.pool4.is_empty() || st.pool4.len() > POOL4_MAX_PREFIXES as usize {
        return Err(invalid(
            "stateful.pool4",
            format!(
                "{} prefixes; give 1 to {POOL4_MAX_PREFIXES}",
                st.pool4.len()
            ),
        ));
    }
    for (i, &p) in st.pool4.iter().enumerate() {
        let field = format!("stateful.pool4[{i}]");
        if p.addr() != p.network() {
            return Err(invalid(
                field,
                format!(
                    "{p} has bits set past the prefix length; did you mean {}?",
                    p.trunc()
                ),
            ));
        }
        if p.prefix_len() < 16 {
            return Err(invalid(
                field,
                format!("{p} is larger than a /16; a pool4 prefix holds at most 65536 addresses"),
            ));
        }
        if !nat64_common::addr::is_translatable_v4(p.network().octets()) {
            return Err(invalid(field, format!("{p} is not unicast address space")));
        }
        if let Some((j, e)) = eam
            .iter()
            .enumerate()
            .find(|(_, e)| overlaps(IpNet::V4(e.ipv4), IpNet::V4(p)))
        {
            return Err(invalid(
                field,
                format!(
                    "{p} overlaps eam[{j}].ipv4 {}: an address would have two meanings",
                    e.ipv4
                ),
            ));
        }
        if let Some(j) = st.pool4[..i]
            .iter()
            .position(|o| overlaps(IpNet::V4(*o), IpNet::V4(p)))
        {
            return Err(invalid(field, format!("{p} overlaps stateful.pool4[{j}]")));
        }
    }
    for (i, b) in st.static_bindings.iter().enumerate() {
        if !st.pool4.iter().any(|p| p.contains(b.ipv4.ip())) {
            return Err(invalid(
                format!("stateful.static[{i}].ipv4"),
                format!("{} is not in pool4", b.ipv4.ip()),
            ));
        }
        if let Some(j) = st.static_bindings[..i]
            .iter()
            .position(|o| o.protocol == b.protocol && (o.ipv4 == b.ipv4 || o.ipv6 == b.ipv6))
        {
            return Err(invalid(
                format!("stateful.static[{i}]"),
                format!("binds the same address as stateful.static[{j}]"),
            ));
        }
    }
    if st.max_bindings == 0 {
        return Err(invalid("stateful.max_bindings", "must be at least 1"));
    }
    if st.max_sessions == Some(0) {
        return Err(invalid("stateful.max_sessions", "must be at least 1"));
    }
    let minimums = [
        (
            "stateful.udp_timeout_secs",
            st.udp_timeout_secs,
            120,
            "RFC 6146 section 3.5.1: at least 2 minutes",
        ),
        (
            "stateful.tcp_established_timeout_secs",
            st.tcp_established_timeout_secs,
            7440,
            "RFC 6146 section 3.5.2.2: at least 2 hours 4 minutes",
        ),
        (
            "stateful.tcp_transitory_timeout_secs",
            st.tcp_transitory_timeout_secs,
            240,
            "RFC 6146 section 3.5.2.2: at least 4 minutes",
        ),
        (
            "stateful.icmp_timeout_secs",
            st.icmp_timeout_secs,
            60,
            "RFC 6146 section 3.5.3: at least 60 seconds",
        ),
    ];
    for (field, v, min, why) in minimums {
        if v == 0 {
            return Err(invalid(field, "must be at least 1 second"));
        }
        if st.rfc_minimum_timeouts && v < min {
            return Err(invalid(
                field,
                format!(
                    "{v} s is below the minimum ({why}); rfc_minimum_timeouts = false allows it on a test bench"
                ),
            ));
        }
    }
    Ok(())
}

fn validate_pool6(p: &Ipv6Net) -> Result<(), ConfigError> {
    if !RFC6052_LENGTHS.contains(&p.prefix_len()) {
        return Err(invalid(
            "pool6",
            format!(
                "prefix length /{} is not one of /32, /40, /48, /56, /64, /96 (RFC 6052 section 2.2)",
                p.prefix_len()
            ),
        ));
    }
    if p.addr() != p.network() {
        return Err(invalid(
            "pool6",
            format!(
                "{p} has bits set past the prefix length; did you mean {}?",
                p.trunc()
            ),
        ));
    }
    if p.addr().octets()[U_OCTET] != 0 {
        return Err(invalid(
            "pool6",
            format!("{p}: bits 64 to 71 (the u-octet) must be zero (RFC 6052 section 2.2)"),
        ));
    }
    Ok(())
}

fn validate_eam(i: usize, e: &Eam) -> Result<(), ConfigError> {
    if e.ipv6.addr() != e.ipv6.network() {
        return Err(invalid(
            format!("eam[{i}].ipv6"),
            format!(
                "{} has bits set past the prefix length; did you mean {}?",
                e.ipv6,
                e.ipv6.trunc()
            ),
        ));
    }
    if e.ipv4.addr() != e.ipv4.network() {
        return Err(invalid(
            format!("eam[{i}].ipv4"),
            format!(
                "{} has bits set past the prefix length; did you mean {}?",
                e.ipv4,
                e.ipv4.trunc()
            ),
        ));
    }
    let s6 = 128 - e.ipv6.prefix_len();
    let s4 = 32 - e.ipv4.prefix_len();
    if s6 < s4 {
        return Err(invalid(
            format!("eam[{i}]"),
            format!(
                "{} has {s6} suffix bits but {} has {s4}; the IPv6 side of an explicit address mapping needs at least as many (RFC 7757 section 3.2), or addresses would be lost",
                e.ipv6, e.ipv4
            ),
        ));
    }
    if s6 > 64 {
        return Err(invalid(
            format!("eam[{i}]"),
            format!(
                "{} is shorter than /64 and has more suffix bits than {} ({s6} against {s4}); the IPv4 suffix must lie in the IPv6 address's last 64 bits: use a /64 or longer IPv6 prefix",
                e.ipv6, e.ipv4
            ),
        ));
    }
    Ok(())
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, "test.toml").unwrap_err().to_string()
    }

    #[test]
    fn the_rendered_configuration_parses_back_to_itself() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/nat64d.toml"
        ))
        .unwrap();
        let stateful = "\n[stateful]\npool4 = [\"203.0.113.8/30\", \"203.0.113.64/32\"]\ntcp_ports = \"3000-3999\"\n\n[[stateful.static]]\nprotocol = \"tcp\"\nipv6 = \"[2001:db8::5]:80\"\nipv4 = \"203.0.113.9:80\"\n";
        for t in [String::new(), text, stateful.to_string()] {
            let c = Config::parse(&t, "x").unwrap_or_else(|e| panic!("{e}\n{t}"));
            let shown = c.to_toml();
            let back = Config::parse(&shown, "shown").unwrap_or_else(|e| panic!("{e}\n{shown}"));
            assert_eq!(back, c, "{shown}");
        }
        let c = Config::parse("pool6 = \"off\"\ntranslator_link = \"off\"\n[[eam]]\nipv6 = \"2001:db8::/120\"\nipv4 = \"192.0.2.0/24\"", "x").unwrap();
        let shown = c.to_toml();
        assert!(shown.contains("pool6 = \"off\""), "{shown}");
        assert!(shown.contains("on_stop = \"detach\""), "{shown}");
        assert_eq!(Config::parse(&shown, "shown").unwrap(), c);
    }

    #[test]
    fn tos_and_traffic_class_each_direction_on_its_own() {
        use nat64_common::maps::CONFIG_F2_TC_ZERO;
        let d = |t: &str| Config::parse(t, "x").unwrap().dataplane();
        // Default: copy both ways; copy_tos = false: zero both ways.
        let c = d("");
        assert_eq!(
            (c.flags & CONFIG_F_COPY_TOS, c.flags2 & CONFIG_F2_TC_ZERO),
            (CONFIG_F_COPY_TOS, 0)
        );
        let c = d("copy_tos = false");
        assert_eq!(
            (
                c.flags & CONFIG_F_COPY_TOS,
                c.tos,
                c.flags2 & CONFIG_F2_TC_ZERO
            ),
            (0, 0, CONFIG_F2_TC_ZERO)
        );
        // RFC 7915 section 5.1: a TOS value always set; section 4.1: traffic class zero.
        let c = d("tos = 184\ntraffic_class = \"copy\"");
        assert_eq!(
            (
                c.flags & CONFIG_F_COPY_TOS,
                c.tos,
                c.flags2 & CONFIG_F2_TC_ZERO
            ),
            (0, 184, 0)
        );
        let c = d("traffic_class = \"zero\"");
        assert_eq!(
            (c.flags & CONFIG_F_COPY_TOS, c.flags2 & CONFIG_F2_TC_ZERO),
            (CONFIG_F_COPY_TOS, CONFIG_F2_TC_ZERO)
        );
        let c = d("copy_tos = false\ntos = \"copy\"");
        assert_eq!(
            (c.flags & CONFIG_F_COPY_TOS, c.flags2 & CONFIG_F2_TC_ZERO),
            (CONFIG_F_COPY_TOS, CONFIG_F2_TC_ZERO)
        );
        // Refused, with the reason.
        let e = err("tos = \"keep\"");
        assert!(e.contains("tos") && e.contains("neither \"copy\""), "{e}");
        let e = err("tos = 300");
        assert!(e.contains("tos"), "{e}");
        let e = err("traffic_class = \"one\"");
        assert!(e.contains("traffic_class"), "{e}");
        // Rendered and read back.
        let c = Config::parse("tos = 32\ntraffic_class = \"zero\"", "x").unwrap();
        assert_eq!(Config::parse(&c.to_toml(), "shown").unwrap(), c);
    }

    #[test]
    fn pool6_ipv4_under_the_well_known_prefix_must_be_global() {
        // RFC 6052 section 3.1.
        let e = err("pool6_ipv4 = [\"192.0.2.0/24\", \"10.1.0.0/16\"]");
        assert!(
            e.contains("pool6_ipv4[1]") && e.contains("10.0.0.0/8") && e.contains("RFC 6052"),
            "{e}"
        );
        let e = err("pool6_ipv4 = [\"172.0.0.0/8\"]");
        assert!(e.contains("172.16.0.0/12"), "{e}");
        // Documentation ranges are left to labs; a network-specific prefix carries anything.
        Config::parse("pool6_ipv4 = [\"192.0.2.0/24\"]", "x").unwrap();
        Config::parse(
            "pool6 = \"2001:db8:64::/96\"\npool6_ipv4 = [\"10.1.0.0/16\"]",
            "x",
        )
        .unwrap();
    }

    #[test]
    fn empty_config_means_well_known_prefix() {
        let c = Config::parse("", "x").unwrap();
        assert_eq!(c.pool6.0.unwrap().to_string(), "64:ff9b::/96");
        assert!(c.copy_tos);
        let d = c.dataplane();
        assert_eq!(d.pool6, WELL_KNOWN_PREFIX);
        assert_eq!(d.pool6_len, 96);
        assert_eq!(d.flags, CONFIG_F_COPY_TOS | CONFIG_F_LINK);
        assert_ne!(d.flags2 & nat64_common::maps::CONFIG_F2_POOL6_WKP, 0);
        assert_eq!(c.translator_link.0.as_deref(), Some("nat64"));
        assert_eq!(c.translator_link.peer().as_deref(), Some("nat64-dp"));
        assert_eq!(c.link_mtu(), 1500);
    }

    #[test]
    fn stateful_section() {
        let c = Config::parse(
            "[stateful]\npool4 = \"203.0.113.8/30\"\nports = \"2000-2999\"",
            "x",
        )
        .unwrap();
        let d = c.dataplane();
        assert_eq!(d.flags & CONFIG_F_STATEFUL, CONFIG_F_STATEFUL);
        assert_eq!((d.pool4_addresses, d.pool4_prefixes), (4, 1));
        assert_eq!(
            (d.tcp_ports, d.udp_ports, d.icmp_ids),
            ([2000, 2999], [2000, 2999], [2000, 2999])
        );
        let c = Config::parse(
            "[stateful]\npool4 = [\"203.0.113.8/30\", \"203.0.113.64/32\"]\ntcp_ports = \"3000-3999\"",
            "x",
        )
        .unwrap();
        let d = c.dataplane();
        assert_eq!((d.pool4_addresses, d.pool4_prefixes), (5, 2));
        assert_eq!((d.tcp_ports, d.udp_ports), ([3000, 3999], [1024, 65535]));
        let e = err("[stateful]\npool4 = [\"203.0.113.8/30\", \"203.0.113.9/32\"]");
        assert!(
            e.starts_with("stateful.pool4[1]: ") && e.contains("overlaps stateful.pool4[0]"),
            "{e}"
        );
        let e = err("[stateful]\npool4 = [\"203.0.113.8/30\", \"nonsense\"]");
        assert!(e.contains("\"nonsense\" is not an IPv4 prefix"), "{e}");
        let st = c.stateful.unwrap();
        assert_eq!(st.udp_timeout_secs, 300);
        assert_eq!(st.tcp_established_timeout_secs, 7440);
        assert_eq!(
            Config::parse("", "x").unwrap().dataplane().flags & CONFIG_F_STATEFUL,
            0
        );
        let e = err("[stateful]\npool4 = \"203.0.113.9/30\"");
        assert!(
            e.starts_with("stateful.pool4[0]: ") && e.contains("did you mean"),
            "{e}"
        );
        let e = err("[stateful]\npool4 = \"10.0.0.0/8\"");
        assert!(e.contains("larger than a /16"), "{e}");
        let e = err(
            "[stateful]\npool4 = \"198.51.100.8/30\"\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"",
        );
        assert!(e.contains("overlaps eam[0].ipv4"), "{e}");
        let e = err("[stateful]\npool4 = \"203.0.113.8/30\"\nports = \"3000-2000\"");
        assert!(e.contains("ports") || e.contains("range"), "{e}");
        let e = err("[stateful]\npool4 = \"203.0.113.8/30\"\nudp_timeout_secs = 10");
        assert!(
            e.starts_with("stateful.udp_timeout_secs: 10 s is below"),
            "{e}"
        );
        let c = Config::parse(
            "[stateful]\npool4 = \"203.0.113.8/30\"\nudp_timeout_secs = 10\nrfc_minimum_timeouts = false",
            "x",
        )
        .unwrap();
        assert_eq!(c.stateful.unwrap().udp_timeout_secs, 10);
        let c = Config::parse(
            "[stateful]\npool4 = \"203.0.113.8/30\"\n[[stateful.static]]\nprotocol = \"tcp\"\nipv6 = \"[2001:db8::5]:80\"\nipv4 = \"203.0.113.9:8080\"",
            "x",
        )
        .unwrap();
        assert_eq!(c.stateful.unwrap().static_bindings[0].ipv4.port(), 8080);
        let e = err(
            "[stateful]\npool4 = \"203.0.113.8/30\"\n[[stateful.static]]\nprotocol = \"tcp\"\nipv6 = \"[2001:db8::5]:80\"\nipv4 = \"192.0.2.9:8080\"",
        );
        assert!(e.starts_with("stateful.static[0].ipv4: "), "{e}");
        let e = err("pool6 = \"off\"\n[stateful]\npool4 = \"203.0.113.8/30\"");
        assert!(e.starts_with("stateful: "), "{e}");
    }

    #[test]
    fn reload_changes_what_the_maps_hold_and_refuses_the_rest() {
        let base = "[[interfaces]]\nname = \"eth0\"\n[stateful]\npool4 = \"203.0.113.8/30\"\n";
        let a = Config::parse(base, "a").unwrap();
        let b = Config::parse(
            &format!("pool6 = \"2001:db8:64::/96\"\ncopy_tos = false\n{base}udp_timeout_secs = 600\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n"),
            "b",
        )
        .unwrap();
        a.check_reload(&b).unwrap();
        let c = Config::parse(&base.replace("eth0", "eth1"), "c").unwrap();
        let e = a.check_reload(&c).unwrap_err().to_string();
        assert!(
            e.starts_with("interfaces: changes only with a restart"),
            "{e}"
        );
        let d = Config::parse(&base.replace("/30", "/29"), "d").unwrap();
        let e = a.check_reload(&d).unwrap_err().to_string();
        assert!(e.starts_with("stateful.pool4: "), "{e}");
        let (v6, v4) = b.link_routes();
        assert_eq!(v6.len(), 1);
        assert_eq!(v4.len(), 2, "the EAM prefix and pool4");
    }

    #[test]
    fn translator_link_name_off_and_limits() {
        let c = Config::parse("translator_link = \"off\"", "x").unwrap();
        assert_eq!(c.translator_link.0, None);
        assert_eq!(c.dataplane().flags & CONFIG_F_LINK, 0);
        let c = Config::parse("translator_link = \"xl\"\nipv6_mtu = 1400", "x").unwrap();
        assert_eq!(c.translator_link.peer().as_deref(), Some("xl-dp"));
        assert_eq!(c.link_mtu(), 1500);
        assert_eq!(c.ipv4_route_mtu(), 1372);
        let c = Config::parse("ipv6_mtu = 9000", "x").unwrap();
        assert_eq!((c.link_mtu(), c.ipv4_route_mtu()), (1500, 1472));
        let e = err("translator_link = \"thirteen-char\"");
        assert!(e.contains("not a usable link name"), "{e}");
        let e = err("translator_link = \"a b\"");
        assert!(e.contains("not a usable link name"), "{e}");
        let e = err("translator_link = \"xl\"\n[[interfaces]]\nname = \"xl-dp\"");
        assert!(e.starts_with("translator_link: "), "{e}");
        let e = err("translator_link = \"off\"\n[[interfaces]]\nname = \"eth0\"\nhook = \"tc\"");
        assert!(e.starts_with("interfaces[0].hook: "), "{e}");
        assert!(e.contains("interfaces[0]"), "{e}");
    }

    #[test]
    fn full_config_parses() {
        let c = Config::parse(
            r#"
            pool6 = "2001:db8:100::/40"
            copy_tos = false
            log_format = "json"
            stats_interval_secs = 10
            pool6791 = "192.0.2.1"
            translator_link = "xl"
            [[interfaces]]
            name = "eth0"
            [[interfaces]]
            name = "eth1"
            xdp_mode = "generic"
            [[interfaces]]
            name = "eth2"
            hook = "tc"
            [[eam]]
            ipv6 = "2001:db8:6::100/120"
            ipv4 = "198.51.100.0/24"
            "#,
            "x",
        )
        .unwrap();
        assert_eq!(c.interfaces[0].xdp_mode, XdpMode::Native);
        assert_eq!(c.interfaces[1].xdp_mode, XdpMode::Generic);
        assert_eq!(c.interfaces[1].hook, Hook::Auto);
        assert_eq!(c.interfaces[2].hook, Hook::Tc);
        assert_eq!(c.dataplane().pool6_len, 40);
        assert_eq!(c.dataplane().flags & CONFIG_F_COPY_TOS, 0);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.dataplane().pool6791, [192, 0, 2, 1]);
        // pool6791 set, copy_tos off, an EAM entry (hairpinning is looked for), and the
        // translator link.
        assert_eq!(
            c.dataplane().flags,
            CONFIG_F_POOL6791 | CONFIG_F_EAM | CONFIG_F_LINK
        );
    }

    #[test]
    fn ipv6_mtu_default_and_limits() {
        assert_eq!(Config::parse("", "x").unwrap().dataplane().ipv6_mtu, 1500);
        assert_eq!(
            Config::parse("ipv6_mtu = 0", "x")
                .unwrap()
                .dataplane()
                .ipv6_mtu,
            0
        );
        assert_eq!(
            Config::parse("ipv6_mtu = 9000", "x")
                .unwrap()
                .dataplane()
                .ipv6_mtu,
            9000
        );
        let e = err("ipv6_mtu = 1000");
        assert!(e.starts_with("ipv6_mtu: 1000 is below 1280"), "{e}");
    }

    #[test]
    fn pool6_off() {
        let c = Config::parse("pool6 = \"off\"", "x").unwrap();
        assert_eq!(c.dataplane().pool6_len, 0);
    }

    #[test]
    fn rejects_bad_prefix_length_with_field_and_reason() {
        let e = err("pool6 = \"64:ff9b::/80\"");
        assert!(e.starts_with("pool6: prefix length /80"), "{e}");
        assert!(e.contains("RFC 6052"), "{e}");
    }

    #[test]
    fn rejects_host_bits_and_u_octet() {
        assert!(err("pool6 = \"64:ff9b::1/96\"").contains("did you mean 64:ff9b::/96"));
        let e = err("pool6 = \"2001:db8:0:0:ff00::/96\"");
        assert!(e.contains("u-octet"), "{e}");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_types() {
        let e = err("pool7 = \"64:ff9b::/96\"");
        assert!(e.contains("unknown field `pool7`"), "{e}");
        let e = err("[[interfaces]]\nname = \"eth0\"\nxdp_mode = \"turbo\"");
        assert!(e.contains("xdp_mode") || e.contains("turbo"), "{e}");
        let e = err("pool6 = \"not-a-prefix\"");
        assert!(e.contains("not an IPv6 prefix"), "{e}");
    }

    #[test]
    fn rejects_mismatched_and_overlapping_eams() {
        let e = err("[[eam]]\nipv6 = \"2001:db8::/120\"\nipv4 = \"192.0.2.0/23\"");
        assert!(e.starts_with("eam[0]: "), "{e}");
        assert!(e.contains("suffix bits"), "{e}");
        let e = err(
            "[[eam]]\nipv6 = \"2001:db8::/120\"\nipv4 = \"192.0.2.0/24\"\n\
             [[eam]]\nipv6 = \"2001:db8::80/121\"\nipv4 = \"198.51.100.0/25\"",
        );
        assert!(e.starts_with("eam[1].ipv6: "), "{e}");
        let e = err(
            "[[eam]]\nipv6 = \"2001:db8::/120\"\nipv4 = \"192.0.2.0/24\"\n\
             [[eam]]\nipv6 = \"2001:db8:1::/120\"\nipv4 = \"192.0.2.0/24\"",
        );
        assert!(e.starts_with("eam[1].ipv4: "), "{e}");
        // Inside pool6: the EAM table comes first (RFC 7757 section 3.3).
        Config::parse(
            "[[eam]]\nipv6 = \"64:ff9b::c000:200/120\"\nipv4 = \"192.0.2.0/24\"",
            "x",
        )
        .unwrap();
        // A longer IPv6 suffix (section 3.2), within the last 64 bits.
        Config::parse(
            "pool6 = \"2001:db8:100::/40\"\n[[eam]]\nipv6 = \"2001:db8:1c6:3364::/72\"\nipv4 = \"198.51.100.0/24\"",
            "x",
        )
        .unwrap();
        let e = err("[[eam]]\nipv6 = \"2001:db8::/56\"\nipv4 = \"192.0.2.0/24\"");
        assert!(e.contains("last 64 bits"), "{e}");
    }

    #[test]
    fn rejects_duplicate_and_bad_interface_names() {
        let e = err("[[interfaces]]\nname = \"eth0\"\n[[interfaces]]\nname = \"eth0\"");
        assert!(e.starts_with("interfaces[1].name"), "{e}");
        let e = err("[[interfaces]]\nname = \"a-very-long-interface-name\"");
        assert!(e.starts_with("interfaces[0].name"), "{e}");
    }

    #[test]
    fn interface_flag_syntax() {
        assert_eq!(
            "xc:generic".parse::<Interface>().unwrap(),
            Interface {
                name: "xc".into(),
                hook: Hook::Xdp,
                xdp_mode: XdpMode::Generic,
                partial_checksums: PartialChecksums::Auto
            }
        );
        assert_eq!("xc".parse::<Interface>().unwrap().xdp_mode, XdpMode::Native);
        assert_eq!("xc:tc".parse::<Interface>().unwrap().hook, Hook::Tc);
        assert_eq!("xc:xdp".parse::<Interface>().unwrap().hook, Hook::Xdp);
        assert_eq!("xc".parse::<Interface>().unwrap().hook, Hook::Auto);
        assert!("xc:fast".parse::<Interface>().is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::Config;

        /// Keys with values, valid and not, that a generated file picks from.
        const CHOICES: &[(&str, &[&str])] = &[
            (
                "pool6",
                &[
                    "\"64:ff9b::/96\"",
                    "\"64:ff9b::/95\"",
                    "\"2001:db8::/32\"",
                    "\"off\"",
                    "\"x\"",
                    "7",
                ],
            ),
            (
                "ipv6_mtu",
                &["1500", "1280", "1279", "0", "70000", "\"1500\""],
            ),
            ("pool6791", &["\"192.0.2.1\"", "\"127.0.0.1\"", "\"::1\""]),
            (
                "translator_link",
                &[
                    "\"nat64\"",
                    "\"off\"",
                    "\"a-very-long-link-name\"",
                    "\"a/b\"",
                ],
            ),
            ("on_stop", &["\"keep\"", "\"detach\"", "\"later\""]),
            ("state_dir", &["\"off\"", "\"/sys/fs/bpf/x\""]),
            ("copy_tos", &["true", "1"]),
            ("unknown_key", &["1"]),
        ];

        fn file() -> impl Strategy<Value = (String, Vec<&'static str>)> {
            proptest::collection::vec((0..CHOICES.len(), 0..6usize), 0..6).prop_map(|picks| {
                let mut text = String::new();
                let mut keys = Vec::new();
                for (k, v) in picks {
                    let (key, values) = CHOICES[k];
                    if keys.contains(&key) {
                        continue;
                    }
                    keys.push(key);
                    text.push_str(&format!("{key} = {}\n", values[v % values.len()]));
                }
                (text, keys)
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Whatever the bytes, the parser answers: a configuration or an error.
            #[test]
            fn any_input_is_answered_without_panic(text in "\\PC{0,300}") {
                let _ = Config::parse(&text, "fuzz.toml");
            }

            /// A refused file is refused for a key it has, named in the error; an accepted
            /// one renders to TOML that parses back to the same configuration.
            #[test]
            fn refusals_name_a_given_key_and_acceptances_round_trip((text, keys) in file()) {
                match Config::parse(&text, "gen.toml") {
                    Ok(c) => {
                        let back = Config::parse(&c.to_toml(), "rendered");
                        prop_assert_eq!(back.ok(), Some(c));
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        prop_assert!(
                            keys.iter().any(|k| msg.contains(k)),
                            "{} names none of {:?}\n{}", msg, keys, text
                        );
                    }
                }
            }
        }
    }
}
