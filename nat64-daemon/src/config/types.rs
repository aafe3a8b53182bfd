//! The value types of the configuration: interfaces and hooks, address mappings, prefixes,
//! link names, the TOS and traffic class settings, and the settings "off" turns off.

use std::{fmt, net::Ipv6Addr, path::PathBuf, str::FromStr};

use ipnet::{Ipv4Net, Ipv6Net};
use nat64_common::{
    addr::WELL_KNOWN_PREFIX,
    maps::{EamToV4, EamToV6},
};
use serde::Deserialize;

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

/// [`OffValue`] for a type that parses from and displays as its text (`FromStr`, `Display`).
macro_rules! off_value_by_text {
    ($t:ty, $expected:expr) => {
        impl OffValue for $t {
            const EXPECTED: &'static str = $expected;
            fn parse(s: &str) -> Option<Self> {
                s.parse().ok()
            }
            fn text(&self) -> String {
                self.to_string()
            }
        }
    };
}

off_value_by_text!(
    std::net::SocketAddr,
    "ADDRESS:PORT (\"127.0.0.1:9464\", \"[::1]:9464\")"
);
off_value_by_text!(std::net::Ipv4Addr, "an IPv4 address");

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
