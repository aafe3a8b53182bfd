//! The `[stateful]` section: stateful NAT64 (RFC 6146), its pool4, port ranges, limits,
//! timeouts, filtering and static bindings, and their validation.

use ipnet::{IpNet, Ipv4Net};
use nat64_common::maps::POOL4_MAX_PREFIXES;
use serde::Deserialize;

use std::fmt;

use super::{ConfigError, Eam, invalid, overlaps, yes};

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
    /// server's log line can be tied back to the IPv6 client. The dataplane pushes each
    /// binding it makes; the daemon logs it at once (`binding_log`).
    #[serde(default)]
    pub log_bindings: bool,
    /// Export the same events as IPFIX (RFC 7011, NAT events of RFC 8158) to this collector,
    /// "ADDRESS:PORT" (4739 is IPFIX's port), over UDP; "off" (the default): no export.
    #[serde(default = "off")]
    pub ipfix_collector: super::OrOff<std::net::SocketAddr>,
    /// The IPFIX observation domain this node exports in (to tell nodes apart at a collector
    /// that does not go by the source address).
    #[serde(default = "default_observation_domain")]
    pub ipfix_observation_domain: u32,
    /// How often the IPFIX template is sent again (RFC 7011 section 8.4: over UDP a collector
    /// that starts later learns it this way), 1 to 3600 seconds.
    #[serde(default = "default_template_refresh")]
    pub ipfix_template_refresh_secs: u64,
    /// Refuse timeouts below the RFC 6146 minimums (UDP 2 min, TCP established 2 h 4 min, TCP
    /// transitory 4 min). Only a test bench turns this off.
    #[serde(default = "yes")]
    pub rfc_minimum_timeouts: bool,
    /// Static bindings: never expire, and let IPv4 hosts open flows inward.
    #[serde(default, rename = "static")]
    pub static_bindings: Vec<StaticBinding>,
    /// Deterministic mapping (RFC 7422): each client prefix gets a pool4 address and port
    /// block computed from the configuration, so `nat64d map` answers offline. Absent: ports
    /// are chosen at random over the whole range (RFC 6056), and the binding log is the record.
    #[serde(default)]
    pub deterministic: Option<DeterministicMapping>,
    /// Port blocks (RFC 6888 section 5, RFC 7422 section 1): each IPv6 /64 gets a block of
    /// this many consecutive ports of its pool4 address (per protocol) with its first binding,
    /// and more blocks on demand, up to `per_client_limit` ports (at most 8 blocks); its
    /// bindings take random ports inside its blocks. The log and IPFIX then carry one record
    /// per block (allocated, released) instead of one per binding. A block is released once no
    /// binding is left in it and its ports' hold-down is over. 0 (the default): no blocks.
    #[serde(default)]
    pub port_block_size: u16,
    /// Where pool4 holds the node's own address (shared by port): an address, routed into the
    /// translator link, that stands in for it while the kernel fragments an IPv4 packet
    /// without DF (or a fragment) bound for a client (RFC 7915 section 4.1: it must fit
    /// `ipv6_mtu` once translated). The kernel delivers what is addressed to the node itself
    /// instead of fragmenting it into the link; the link puts the address back. The address
    /// after it is routed there too, for GSO aggregates with DF. Nothing else may use either
    /// on this node; "off": such packets are translated as they come.
    #[serde(default = "default_shared_alias")]
    pub shared_address_alias: super::OrOff<std::net::Ipv4Addr>,
}

/// `[stateful.deterministic]`: the clients, as sub-prefixes of one prefix.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeterministicMapping {
    /// The prefix the clients are in (e.g. the sites' /48 or a pod range).
    pub clients: ipnet::Ipv6Net,
    /// Each client's prefix length (default 64: one block per /64; 128: per address).
    #[serde(default = "default_client_prefix_len")]
    pub client_prefix_len: u8,
}

fn default_client_prefix_len() -> u8 {
    64
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

fn off<T>() -> super::OrOff<T> {
    super::OrOff(None)
}

/// `shared_address_alias`'s default: from 240.0.0.0/4, reserved (RFC 1112 section 4, RFC 6890)
/// and not routed anywhere, so that no real destination is shadowed. Linux forwards it like
/// any unicast address; the packets never leave the node with it.
pub const DEFAULT_SHARED_ALIAS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(240, 0, 0, 64);

fn default_shared_alias() -> super::OrOff<std::net::Ipv4Addr> {
    super::OrOff(Some(DEFAULT_SHARED_ALIAS))
}

fn default_observation_domain() -> u32 {
    1
}

fn default_template_refresh() -> u64 {
    60
}

impl Stateful {
    /// The deterministic mapping as the dataplane and `nat64d map` use it (RFC 7422): clients
    /// spread over pool4's addresses in order, `ceil(clients / addresses)` per address, each
    /// with an equal share of every protocol's range. `None` when the mode is off.
    pub fn deterministic_map(&self) -> Option<nat64_common::deterministic::Deterministic> {
        let d = self.deterministic.as_ref()?;
        let bits = d.client_prefix_len.saturating_sub(d.clients.prefix_len());
        let clients = 1u64 << bits.min(63);
        let addresses: u64 = self
            .pool4
            .iter()
            .map(|p| 1u64 << (32 - p.prefix_len()))
            .sum();
        let per_addr = clients.div_ceil(addresses.max(1)).max(1);
        let block = |i: usize| {
            let r = self.range(i);
            ((u64::from(r.1) - u64::from(r.0) + 1) / per_addr).min(u64::from(u16::MAX)) as u16
        };
        Some(nat64_common::deterministic::Deterministic {
            prefix: d.clients.network().octets(),
            prefix_len: d.clients.prefix_len(),
            client_len: d.client_prefix_len,
            _pad: [0; 2],
            per_addr: per_addr.min(u64::from(u32::MAX)) as u32,
            block: [block(0), block(1), block(2)],
            _pad2: [0; 1],
        })
    }

    /// `shared_address_alias` and the address after it (`Config::df_alias`), both routed into
    /// the translator link; none when it is off.
    pub fn alias_addresses(&self) -> Vec<std::net::Ipv4Addr> {
        self.shared_address_alias
            .get()
            .map_or(Vec::new(), |&a| vec![a, super::Config::df_alias(a)])
    }

    /// Where binding events are exported (IPFIX), if anywhere.
    pub fn ipfix(&self) -> Option<crate::ipfix::ExportSettings> {
        self.ipfix_collector
            .get()
            .map(|&collector| crate::ipfix::ExportSettings {
                collector,
                domain: self.ipfix_observation_domain,
                template_refresh: std::time::Duration::from_secs(self.ipfix_template_refresh_secs),
            })
    }

    /// Port blocks: the most one /64 holds per protocol, enough for `per_client_limit` ports
    /// (the most there is room for without a limit); 0 without blocks.
    pub fn max_blocks(&self) -> u32 {
        use nat64_common::state::MAX_CLIENT_BLOCKS;
        match (self.port_block_size, self.per_client_limit) {
            (0, _) => 0,
            (_, 0) => MAX_CLIENT_BLOCKS as u32,
            (size, limit) => limit.div_ceil(u32::from(size)),
        }
    }

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
    pub protocol: Protocol,
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

pub(super) fn validate_stateful(
    st: &Stateful,
    eam: &[Eam],
    pool6: bool,
) -> Result<(), ConfigError> {
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
    if let Some(d) = &st.deterministic {
        validate_deterministic(st, d)?;
    }
    if st.port_block_size != 0 {
        validate_port_blocks(st)?;
    }
    if !(1..=3600).contains(&st.ipfix_template_refresh_secs) {
        return Err(invalid(
            "stateful.ipfix_template_refresh_secs",
            "must be 1 to 3600 seconds",
        ));
    }
    if let Some(c) = st
        .ipfix_collector
        .get()
        .filter(|c| c.port() == 0 || c.ip().is_unspecified())
    {
        return Err(invalid(
            "stateful.ipfix_collector",
            format!(
                "{c} is not a collector's address: give its ADDRESS:PORT (4739 is IPFIX's port)"
            ),
        ));
    }
    for a in &st.alias_addresses() {
        let o = a.octets();
        if a.is_unspecified()
            || a.is_loopback()
            || a.is_multicast()
            || a.is_broadcast()
            || o[0] == 0
        {
            return Err(invalid(
                "stateful.shared_address_alias",
                format!(
                    "{a} is not a unicast address the kernel forwards (the alias and the address after it are both used)"
                ),
            ));
        }
        if let Some(p) = st.pool4.iter().find(|p| p.contains(a)) {
            return Err(invalid(
                "stateful.shared_address_alias",
                format!(
                    "{a} lies in pool4 ({p}): the alias and the address after it must be addresses nothing else uses"
                ),
            ));
        }
        if let Some((j, e)) = eam.iter().enumerate().find(|(_, e)| e.ipv4.contains(a)) {
            return Err(invalid(
                "stateful.shared_address_alias",
                format!(
                    "{a} lies in eam[{j}].ipv4 ({}): the alias and the address after it must be addresses nothing else uses",
                    e.ipv4
                ),
            ));
        }
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

/// A transport protocol with bindings, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

impl Protocol {
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => nat64_common::state::BIB_TCP,
            Protocol::Udp => nat64_common::state::BIB_UDP,
            Protocol::Icmp => nat64_common::state::BIB_ICMP,
        }
    }

    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            nat64_common::state::BIB_TCP => Some(Protocol::Tcp),
            nat64_common::state::BIB_UDP => Some(Protocol::Udp),
            nat64_common::state::BIB_ICMP => Some(Protocol::Icmp),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "icmp" => Ok(Protocol::Icmp),
            other => Err(format!(
                "unknown protocol {other:?} (expected tcp, udp or icmp)"
            )),
        }
    }
}

/// Port blocks: at least two ports (both parities), a block within every protocol's range,
/// and `per_client_limit` within the blocks one /64 may hold.
fn validate_port_blocks(st: &Stateful) -> Result<(), ConfigError> {
    use nat64_common::state::MAX_CLIENT_BLOCKS;
    let field = "stateful.port_block_size";
    let size = st.port_block_size;
    if st.deterministic.is_some() {
        return Err(invalid(
            field,
            "deterministic mapping ([stateful.deterministic]) gives each client its block already: set one or the other",
        ));
    }
    if size < 2 {
        return Err(invalid(
            field,
            "a block needs at least 2 ports (one of each parity)",
        ));
    }
    for (i, name) in ["tcp", "udp", "icmp"].into_iter().enumerate() {
        let r = st.range(i);
        if u32::from(r.1) - u32::from(r.0) + 1 < u32::from(size) {
            return Err(invalid(
                field,
                format!(
                    "{size} ports is more than the {name} range {}-{} holds",
                    r.0, r.1
                ),
            ));
        }
    }
    if st.max_blocks() as usize > MAX_CLIENT_BLOCKS {
        return Err(invalid(
            field,
            format!(
                "per_client_limit = {} takes {} blocks of {size}; a /64 holds at most {MAX_CLIENT_BLOCKS}: make the blocks at least {} ports, or lower per_client_limit",
                st.per_client_limit,
                st.max_blocks(),
                st.per_client_limit.div_ceil(MAX_CLIENT_BLOCKS as u32)
            ),
        ));
    }
    Ok(())
}

/// RFC 7422 mapping: the clients' prefix well formed, their count within reach, and a block
/// of at least two ports (the parity rule of RFC 6056 needs two) for every protocol.
fn validate_deterministic(st: &Stateful, d: &DeterministicMapping) -> Result<(), ConfigError> {
    use nat64_common::deterministic::MAX_INDEX_BITS;
    let field = "stateful.deterministic";
    let p = d.clients;
    if p.addr() != p.network() {
        return Err(invalid(
            format!("{field}.clients"),
            format!(
                "{p} has bits set past the prefix length; did you mean {}?",
                p.trunc()
            ),
        ));
    }
    let (plen, clen) = (p.prefix_len(), d.client_prefix_len);
    if clen <= plen || clen > 128 {
        return Err(invalid(
            format!("{field}.client_prefix_len"),
            format!("/{clen} must be longer than the clients' prefix /{plen}, and at most /128"),
        ));
    }
    if clen - plen > MAX_INDEX_BITS {
        return Err(invalid(
            format!("{field}.client_prefix_len"),
            format!(
                "/{plen} in /{clen}s is 2^{} clients; at most 2^{MAX_INDEX_BITS}",
                clen - plen
            ),
        ));
    }
    if plen < 64 && clen > 64 {
        return Err(invalid(
            format!("{field}.client_prefix_len"),
            format!(
                "the client index (bits {plen} to {clen}) must lie within one half of the address: give clients of /64 or shorter, or a clients' prefix of /64 or longer"
            ),
        ));
    }
    let map = st.deterministic_map().expect("the mode is on");
    for (i, name) in ["tcp", "udp", "icmp"].into_iter().enumerate() {
        if map.block[i] < 2 {
            let r = st.range(i);
            return Err(invalid(
                field,
                format!(
                    "{} clients over {} pool4 addresses is {} per address, which leaves each less than 2 {name} ports of {}-{}: widen pool4 or the ports, or lengthen the clients' prefix",
                    map.clients(),
                    st.pool4
                        .iter()
                        .map(|p| 1u64 << (32 - p.prefix_len()))
                        .sum::<u64>(),
                    map.per_addr,
                    r.0,
                    r.1
                ),
            ));
        }
    }
    Ok(())
}
