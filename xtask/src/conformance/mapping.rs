//! Jool's settings, as the conformance runner hands them over (`$JC_CONFIG`), written as a
//! nat64d configuration file.
//!
//! [`apply`] is the one place that knows what each Jool setting becomes in nat64d: when nat64d
//! gains a setting, the arm of the matching Jool key changes (usually one line). Nothing is
//! dropped silently: a key or value without an arm is [`Fit::Unsupported`], which the adapter
//! declares to the runner (the cases that need it become `needs-setting:KEY`), and a value that
//! nat64d expresses only approximately is [`Fit::Approx`], which the adapter notes.

use std::{collections::BTreeMap, fmt::Write as _, net::Ipv4Addr};

use serde_json::Value;

/// How a Jool setting's value came across to nat64d.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fit {
    /// nat64d does what Jool does with it.
    Exact,
    /// Written, but nat64d behaves differently in a way the reason says.
    Approx(String),
    /// nat64d cannot express it; what it does instead is in the reason.
    Unsupported(String),
}

/// Where the daemon runs: what the configuration needs besides Jool's settings.
pub struct Site<'a> {
    pub if6: &'a str,
    pub if4: &'a str,
    /// "tc" or "xdp".
    pub hook: &'a str,
    pub admin_socket: &'a str,
    pub state_dir: &'a str,
    pub caps: Caps,
}

/// Settings nat64d gained after this adapter was first written, asked of the binary under test
/// (see `adapter::probe_caps`), so that the same adapter tells the truth about an older daemon.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caps {
    /// `pool6791v6`, the IPv6-side RFC 6791 source. The same nat64d change made a missing
    /// pool6791 (and pool6791v6) mean "the node's own address", Jool's fallback, so this
    /// stands for that too.
    pub pool6791v6: bool,
    /// `pool6_ipv4`: IPv4 destinations translated through pool6 (the stateless IVI case).
    pub pool6_ipv4: bool,
    /// `udp_zero_checksum = "drop"` (RFC 7915 section 4.5).
    pub udp_zero_checksum: bool,
    /// `stateful.icmp_error_source`.
    pub icmp_error_source: bool,
}

/// The IPv4 side of the SIIT topology's IPv6 network (Jool's `siit/network.md`: the IPv4 host
/// routes it through the translator, and its IPv6 hosts' addresses embed it under pool6).
const SIIT_IPV6_SIDE: &str = "192.0.2.0/24";

/// A nat64d configuration under construction: each value is already a TOML literal, so that a
/// mapping is one `set` call whatever the key's type.
#[derive(Default)]
pub struct Nat64dConfig {
    top: BTreeMap<String, String>,
    interfaces: Vec<String>,
    hook: String,
    eam: Vec<(String, String)>,
    stateful: Option<BTreeMap<String, String>>,
    /// `[stateful]` keys set by global Jool settings, which come before pool4 opens the
    /// section: written into it if it exists.
    stateful_extra: BTreeMap<String, String>,
    statics: Vec<[String; 3]>,
}

impl Nat64dConfig {
    fn set(&mut self, key: &str, toml_literal: String) {
        self.top.insert(key.to_string(), toml_literal);
    }

    /// The file nat64d reads: top-level keys first (TOML puts them before any table).
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Written by `cargo xtask conformance-adapter` from the conformance runner's $JC_CONFIG.\n",
        );
        for (k, v) in &self.top {
            let _ = writeln!(out, "{k} = {v}");
        }
        for name in &self.interfaces {
            let _ = writeln!(out, "\n[[interfaces]]\nname = {}", s(name));
            let _ = writeln!(out, "hook = {}", s(&self.hook));
            if self.hook == "xdp" {
                // Native on veth: the runner's --peer-gro on gives the peers the NAPI that
                // XDP_TX and redirects into a veth need.
                let _ = writeln!(out, "xdp_mode = \"native\"");
            }
        }
        for (v6, v4) in &self.eam {
            let _ = writeln!(out, "\n[[eam]]\nipv6 = {}\nipv4 = {}", s(v6), s(v4));
        }
        if let Some(st) = &self.stateful {
            out.push_str("\n[stateful]\n");
            for (k, v) in st.iter().chain(&self.stateful_extra) {
                let _ = writeln!(out, "{k} = {v}");
            }
            for [proto, v6, v4] in &self.statics {
                let _ = writeln!(
                    out,
                    "\n[[stateful.static]]\nprotocol = {}\nipv6 = {}\nipv4 = {}",
                    s(proto),
                    s(v6),
                    s(v4)
                );
            }
        }
        out
    }
}

/// A Jool configuration as nat64d sees it: the file, and how each Jool key fared.
pub struct Translation {
    pub config: Nat64dConfig,
    pub fits: Vec<(String, Fit)>,
    /// "siit" or "nat64".
    pub mode: String,
    /// The pool4 addresses (nat64 mode), which must not be addresses of the host.
    pub pool4: Vec<Ipv4Addr>,
}

impl Translation {
    pub fn unsupported(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fits.iter().filter_map(|(k, f)| match f {
            Fit::Unsupported(why) => Some((k.as_str(), why.as_str())),
            _ => None,
        })
    }

    pub fn approximations(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fits.iter().filter_map(|(k, f)| match f {
            Fit::Approx(why) => Some((k.as_str(), why.as_str())),
            _ => None,
        })
    }
}

/// Translates the runner's configuration (`{"mode", "settings", "eamt", "pool4", "bib"}`).
pub fn translate(jc: &Value, site: &Site<'_>) -> Translation {
    let mut c = Nat64dConfig {
        interfaces: vec![site.if6.to_string(), site.if4.to_string()],
        hook: site.hook.to_string(),
        ..Default::default()
    };
    // What the test bench needs, not Jool's settings: its own admin socket and bpffs directory
    // (no collision with a daemon on the host), no metrics listener (the namespace's loopback
    // is down), JSON logs the adapter reads to know when the daemon is ready or reloaded.
    c.set("admin_socket", s(site.admin_socket));
    c.set("state_dir", s(site.state_dir));
    c.set("metrics_listen", s("off"));
    c.set("log_format", s("json"));
    c.set("translator_link", s("nat64"));
    // Jool's defaults where the runner does not say otherwise: it copies TOS both ways, and
    // fragments to 1280 bytes (lowest-ipv6-mtu).
    c.set("copy_tos", "true".into());
    c.set("ipv6_mtu", "1280".into());
    let mode = jc["mode"].as_str().unwrap_or("siit").to_string();
    let mut fits = Vec::new();
    if let Some(settings) = jc["settings"].as_object() {
        for (k, v) in settings {
            fits.push((k.clone(), apply(k, v, &mode, site.caps, &mut c)));
        }
    }
    // pool4 before bib: static bindings go into the [stateful] section pool4 opens.
    for k in ["eamt", "pool4", "bib"] {
        if let Some(v) = jc.get(k) {
            fits.push((k.to_string(), apply(k, v, &mode, site.caps, &mut c)));
        }
    }
    if mode == "nat64" && c.stateful.is_none() {
        fits.push((
            "pool4".into(),
            Fit::Unsupported("stateful NAT64 without pool4: nat64d runs stateless".into()),
        ));
    }
    let pool4 = jc["pool4"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["addr"].as_str()?.parse().ok())
        .collect::<std::collections::BTreeSet<Ipv4Addr>>()
        .into_iter()
        .collect();
    Translation {
        config: c,
        fits,
        mode,
        pool4,
    }
}

/// What one Jool key and value become in nat64d. One arm per setting, with the reason; the
/// catch-all at the end declares anything else unsupported.
fn apply(key: &str, v: &Value, mode: &str, caps: Caps, c: &mut Nat64dConfig) -> Fit {
    use Fit::{Approx, Exact, Unsupported};
    let text = text(v);
    match (key, text.as_deref()) {
        // RFC 6052 prefix; null: an EAM-only translator, nat64d's "off".
        ("pool6", None) => {
            c.set("pool6", s("off"));
            Exact
        }
        // In NAT64 mode IPv4 packets find their IPv6 destination through the bindings.
        ("pool6", Some(p)) if mode == "nat64" => {
            c.set("pool6", s(p));
            Exact
        }
        // SIIT: Jool translates every IPv4 destination outside the EAM that is not its own
        // through pool6; nat64d those in `pool6_ipv4`, here the topology's IPv6 side.
        ("pool6", Some(p)) if caps.pool6_ipv4 => {
            c.set("pool6", s(p));
            c.set("pool6_ipv4", format!("[{}]", s(SIIT_IPV6_SIDE)));
            Approx(format!(
                "nat64d translates the IPv4 destinations of pool6_ipv4 = [{SIIT_IPV6_SIDE}] through pool6 (the topology's IPv6 side); Jool every one that is not its own"
            ))
        }
        // An older nat64d: IPv4 packets to EAM prefixes only (IPv6 to IPv4 through pool6 works).
        ("pool6", Some(p)) => {
            c.set("pool6", s(p));
            Unsupported(
                "nat64d translates IPv4 destinations through EAM entries only: IPv4 packets to \
                 other destinations, which Jool maps through pool6, reach the kernel untranslated"
                    .into(),
            )
        }
        // RFC 6791 source for ICMPv6 errors from routers without an IPv4 address: nat64d takes
        // one address (pool6791), Jool a pool.
        ("rfc6791v4-prefix", Some(p)) => match one_address(p) {
            Some((a, true)) => {
                c.set("pool6791", s(&a.to_string()));
                Exact
            }
            Some((a, false)) => {
                c.set("pool6791", s(&a.to_string()));
                Approx(format!(
                    "nat64d's pool6791 is one address: {a}, the first of {p}, is used for every error"
                ))
            }
            None => Unsupported(format!("{p:?} is not an IPv4 address or prefix")),
        },
        // null: Jool falls back to its own IPv4 address, and so does a nat64d without pool6791
        // that has the fallback; an older one drops them.
        ("rfc6791v4-prefix", None) if caps.pool6791v6 => Exact,
        ("rfc6791v4-prefix", None) => Unsupported(
            "nat64d has no own-address fallback: without pool6791 it drops ICMPv6 errors from \
             unmappable sources (Jool uses its own IPv4 address)"
                .into(),
        ),
        // The IPv6 counterpart (ICMPv4 errors from IPv4 sources with no mapping): pool6791v6,
        // one address; null: the node's own IPv6 address, as Jool.
        ("rfc6791v6-prefix", None) if caps.pool6791v6 => Exact,
        ("rfc6791v6-prefix", Some(p)) if caps.pool6791v6 => match p.split_once('/') {
            None | Some((_, "128")) => {
                c.set("pool6791v6", s(p.split('/').next().unwrap_or(p)));
                Exact
            }
            Some((a, _)) => {
                c.set("pool6791v6", s(a));
                Approx(format!(
                    "nat64d's pool6791v6 is one address: {a}, of {p}, is used for every error"
                ))
            }
        },
        ("rfc6791v6-prefix", _) => Unsupported(
            "nat64d has no IPv6-side RFC 6791 source: ICMPv4 errors from IPv4 sources without a \
             mapping are dropped (Jool uses the prefix, or its own IPv6 address)"
                .into(),
        ),
        // Jool: the size DF=0 IPv4 packets are fragmented to once translated; DF=1 packets go
        // by the route's MTU. So does nat64d's ipv6_mtu with its translator link (which the
        // adapter always turns on).
        ("lowest-ipv6-mtu", Some(m)) => match m.parse::<u16>() {
            Ok(mtu) if mtu >= 1280 => {
                c.set("ipv6_mtu", mtu.to_string());
                Exact
            }
            _ => Unsupported(format!(
                "{m:?}: nat64d's ipv6_mtu is at least 1280 (RFC 8200 section 5)"
            )),
        },
        // RFC 7915 section 4.5. nat64d always computes the checksum of an unfragmented
        // zero-checksum IPv4 UDP datagram and drops fragmented ones: Jool's "true".
        ("amend-udp-checksum-zero", Some("true")) => {
            c.set("udp_zero_checksum", s("compute"));
            Exact
        }
        // Dropped, counted and answered with ICMPv4 3/13 (RFC 7915 section 4.5), as by Jool.
        ("amend-udp-checksum-zero", Some("false")) if caps.udp_zero_checksum => {
            c.set("udp_zero_checksum", s("drop"));
            Exact
        }
        ("amend-udp-checksum-zero", Some("false")) => Unsupported(
            "nat64d always computes the checksum of an unfragmented zero-checksum IPv4 UDP \
             datagram (RFC 7915 section 4.5); Jool with false drops it"
                .into(),
        ),
        // IPv4 to IPv6: traffic class zero instead of the TOS (RFC 7915 section 4.1); the
        // IPv6-to-IPv4 TOS (Jool's override-tos, off) is copied either way.
        ("zeroize-traffic-class", Some("false")) => {
            c.set("traffic_class", s("copy"));
            Exact
        }
        ("zeroize-traffic-class", Some("true")) => {
            c.set("traffic_class", s("zero"));
            Exact
        }
        // NAT64: the outer source of a translated ICMPv4 error: the error's own source in pool6
        // (Jool's "true", nat64d's default), or the quoted packet's destination (RFC 6146
        // section 3.4).
        ("source-icmpv6-errors-better", Some("true")) => Exact,
        ("source-icmpv6-errors-better", Some("false")) if caps.icmp_error_source => {
            c.stateful_extra
                .insert("icmp_error_source".into(), s("quoted-destination"));
            Exact
        }
        ("source-icmpv6-errors-better", Some("false")) => Unsupported(
            "nat64d always sources a translated ICMPv4 error from the error's own source (RFC 6146's \
             inner-destination rule is not offered)"
                .into(),
        ),
        // RFC 7757 entries.
        ("eamt", _) => eamt(v, c),
        // Stateful NAT64 (RFC 6146): addresses and port ranges per protocol.
        ("pool4", _) if mode == "nat64" => pool4(v, c),
        ("pool4", _) => Exact, // a SIIT manifest's empty pool4
        // Static BIB entries.
        ("bib", _) => bib(v, c),
        (k, _) => Unsupported(format!("the adapter has no mapping for {k} = {v}")),
    }
}

fn eamt(v: &Value, c: &mut Nat64dConfig) -> Fit {
    c.eam.clear();
    for e in v.as_array().into_iter().flatten() {
        match (e[0].as_str(), e[1].as_str()) {
            (Some(v6), Some(v4)) => c.eam.push((v6.to_string(), v4.to_string())),
            _ => return Fit::Unsupported(format!("entry {e} is not [IPv6 prefix, IPv4 prefix]")),
        }
    }
    Fit::Exact
}

fn pool4(v: &Value, c: &mut Nat64dConfig) -> Fit {
    let entries = v.as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return Fit::Unsupported("an empty pool4: nat64d's stateful mode needs one".into());
    }
    let mut addrs = std::collections::BTreeSet::new();
    let mut ranges: BTreeMap<&str, String> = BTreeMap::new();
    let mut why = Vec::new();
    for e in &entries {
        let (Some(addr), Some(proto)) = (e["addr"].as_str(), e["proto"].as_str()) else {
            return Fit::Unsupported(format!("entry {e} lacks addr or proto"));
        };
        if let Some(extra) = e.as_object().and_then(|o| {
            o.keys()
                .find(|k| !["addr", "ports", "proto"].contains(&k.as_str()))
        }) {
            why.push(format!("{extra} (in {e}) has no nat64d counterpart"));
        }
        let key = match proto {
            "tcp" => "tcp_ports",
            "udp" => "udp_ports",
            "icmp" => "icmp_ids",
            other => return Fit::Unsupported(format!("protocol {other:?}")),
        };
        let ports = e["ports"].as_str().unwrap_or("1-65535").to_string();
        if ranges.get(key).is_some_and(|r| *r != ports) {
            why.push(format!(
                "nat64d has one {key} range for all pool4 addresses; {ports} is not used"
            ));
        }
        ranges.entry(key).or_insert(ports);
        addrs.insert(if addr.contains('/') {
            addr.to_string()
        } else {
            format!("{addr}/32")
        });
    }
    // nat64d's pool4 serves every protocol: an address Jool gives one protocol only is given
    // all three.
    let per_proto = entries.len() == addrs.len() * ranges.len();
    if !per_proto {
        why.push("nat64d's pool4 addresses serve every protocol".into());
    }
    let mut st = BTreeMap::new();
    let list = addrs.iter().map(|a| s(a)).collect::<Vec<_>>().join(", ");
    st.insert("pool4".to_string(), format!("[{list}]"));
    for (k, r) in ranges {
        st.insert(k.to_string(), s(&r));
    }
    c.stateful = Some(st);
    if why.is_empty() {
        Fit::Exact
    } else {
        Fit::Unsupported(why.join("; "))
    }
}

fn bib(v: &Value, c: &mut Nat64dConfig) -> Fit {
    c.statics.clear();
    let entries = v.as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return Fit::Exact;
    }
    if c.stateful.is_none() {
        return Fit::Unsupported("static BIB entries need pool4 (stateful NAT64)".into());
    }
    for e in &entries {
        let parse = |k: &str| e[k].as_str().and_then(|a| a.rsplit_once('#'));
        let (Some((a6, p6)), Some((a4, p4)), Some(proto)) =
            (parse("ipv6"), parse("ipv4"), e["proto"].as_str())
        else {
            return Fit::Unsupported(format!(
                "entry {e} is not {{ipv6: ADDR#PORT, ipv4: ADDR#PORT, proto}}"
            ));
        };
        c.statics.push([
            proto.to_string(),
            format!("[{a6}]:{p6}"),
            format!("{a4}:{p4}"),
        ]);
    }
    Fit::Exact
}

/// An address, or a prefix whose first address is taken; `true` when that is all of it.
fn one_address(p: &str) -> Option<(Ipv4Addr, bool)> {
    let (a, len) = p.split_once('/').unwrap_or((p, "32"));
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    let a: Ipv4Addr = a.parse().ok()?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Some((Ipv4Addr::from(u32::from(a) & mask), len == 32))
}

/// A setting's value as text (the manifests write "true", "1280"), `None` for null.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A TOML basic string.
fn s(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site<'static> {
        Site {
            if6: "jc-x6",
            if4: "jc-x4",
            hook: "tc",
            admin_socket: "/run/x/admin.sock",
            state_dir: "/sys/fs/bpf/x",
            caps: Caps::default(),
        }
    }

    #[test]
    fn siit_baseline_declares_what_nat64d_cannot_do() {
        let jc: Value = serde_json::from_str(
            r#"{"mode":"siit","settings":{"pool6":"2001:db8:100::/40","rfc6791v4-prefix":"203.0.113.8",
            "lowest-ipv6-mtu":"1280","amend-udp-checksum-zero":"false","rfc6791v6-prefix":null,
            "new-jool-knob":"on"},
            "eamt":[["2001:db8:3::/120","1.0.0.0/24"]]}"#,
        )
        .unwrap();
        let t = translate(&jc, &site());
        let toml = t.config.render();
        assert!(toml.contains("pool6 = \"2001:db8:100::/40\""), "{toml}");
        assert!(toml.contains("pool6791 = \"203.0.113.8\""), "{toml}");
        assert!(toml.contains("ipv6_mtu = 1280"), "{toml}");
        assert!(
            toml.contains("[[eam]]\nipv6 = \"2001:db8:3::/120\""),
            "{toml}"
        );
        let mut unsupported: Vec<_> = t.unsupported().map(|(k, _)| k).collect();
        unsupported.sort();
        assert_eq!(
            unsupported,
            [
                "amend-udp-checksum-zero",
                "new-jool-knob",
                "pool6",
                "rfc6791v6-prefix"
            ],
            "{toml}"
        );
    }

    #[test]
    fn nat64_pool4_and_bib_become_the_stateful_section() {
        let jc: Value = serde_json::from_str(
            r#"{"mode":"nat64","settings":{"pool6":"64:ff9b::/96"},
            "pool4":[{"addr":"192.0.2.2","ports":"1-3000","proto":"tcp"},
                     {"addr":"192.0.2.2","ports":"1-3000","proto":"udp"},
                     {"addr":"192.0.2.2","ports":"1-3000","proto":"icmp"}],
            "bib":[{"ipv4":"192.0.2.2#2000","ipv6":"2001:db8::5#2000","proto":"tcp"}]}"#,
        )
        .unwrap();
        let t = translate(&jc, &site());
        let toml = t.config.render();
        assert_eq!(t.unsupported().count(), 0, "{toml}");
        assert_eq!(t.pool4, ["192.0.2.2".parse::<Ipv4Addr>().unwrap()]);
        assert!(
            toml.contains("[stateful]\nicmp_ids = \"1-3000\"\npool4 = [\"192.0.2.2/32\"]"),
            "{toml}"
        );
        assert!(
            toml.contains("ipv6 = \"[2001:db8::5]:2000\"\nipv4 = \"192.0.2.2:2000\""),
            "{toml}"
        );
    }

    #[test]
    fn a_daemon_with_the_rfc6791_fallbacks_takes_jools_nulls() {
        let jc: Value = serde_json::from_str(
            r#"{"mode":"siit","settings":{"rfc6791v4-prefix":null,"rfc6791v6-prefix":"2::2"}}"#,
        )
        .unwrap();
        let mut site = site();
        site.caps.pool6791v6 = true;
        let t = translate(&jc, &site);
        let toml = t.config.render();
        assert_eq!(t.unsupported().count(), 0, "{toml}");
        assert!(toml.contains("pool6791v6 = \"2::2\""), "{toml}");
        assert!(!toml.contains("pool6791 ="), "{toml}");
    }

    #[test]
    fn a_pool6791_prefix_gives_its_first_address() {
        assert_eq!(
            one_address("203.0.113.8"),
            Some(("203.0.113.8".parse().unwrap(), true))
        );
        assert_eq!(
            one_address("203.0.113.9/29"),
            Some(("203.0.113.8".parse().unwrap(), false))
        );
        assert_eq!(one_address("nope"), None);
    }
}
