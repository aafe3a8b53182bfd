//! `nat64d doctor`: checks that this node can run the translator with a given configuration,
//! and says what is missing and how to fix it. Reads only; changes nothing.
//!
//! The operators' notes behind the project (`../shared/docs/scenarios.md`, scenario 3) spent
//! hours on exactly these: forwarding sysctls, reverse-path filtering, bpffs, BTF, the kernel
//! version, interfaces, conflicting routes.

use std::{fmt, fs, path::Path};

use crate::Config;

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok(String),
    /// Works, but worth knowing.
    Warn(String),
    /// Must be fixed: what is wrong, and the fix.
    Fix {
        problem: String,
        fix: String,
    },
}

/// One named check and its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verdict {
            Verdict::Ok(s) => write!(f, "ok    {}: {s}", self.name),
            Verdict::Warn(s) => write!(f, "warn  {}: {s}", self.name),
            Verdict::Fix { problem, fix } => {
                write!(f, "FIX   {}: {problem}\n      fix: {fix}", self.name)
            }
        }
    }
}

fn sysctl(key: &str) -> Option<String> {
    fs::read_to_string(crate::sys::sysctl_path(key))
        .ok()
        .map(|s| s.trim().to_string())
}

fn check_sysctl(name: &'static str, key: &str, want: &str) -> Check {
    let verdict = match sysctl(key) {
        Some(v) if v == want => Verdict::Ok(format!("{key} = {v}")),
        Some(v) => Verdict::Fix {
            problem: format!("{key} = {v}; translated packets are forwarded, so it must be {want}"),
            fix: format!("sysctl -w {key}={want} (and persist it in /etc/sysctl.d/)"),
        },
        None => Verdict::Fix {
            problem: format!("{key} cannot be read"),
            fix: "run in the node's network namespace (hostNetwork in Kubernetes)".into(),
        },
    };
    Check { name, verdict }
}

/// The kernel release as (major, minor).
fn kernel_version() -> Option<(u32, u32)> {
    let rel = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut it = rel.trim().split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Whether `state_dir` can hold state that survives a restart: on a bpf filesystem, or under
/// /sys/fs/bpf where `nat64d run` mounts one itself when it may (CAP_SYS_ADMIN); otherwise
/// the daemon refuses to start, so this is a FIX.
fn bpffs_verdict(cfg: &Config) -> Verdict {
    let Some(dir) = cfg.state_dir.get() else {
        return Verdict::Ok("state_dir = \"off\": nothing pinned, on purpose".into());
    };
    if crate::sys::on_bpffs(dir) {
        return Verdict::Ok(format!(
            "state_dir {} is on a bpf filesystem",
            dir.display()
        ));
    }
    let root = Path::new("/sys/fs/bpf");
    if dir.starts_with(root) && has_cap_sys_admin() {
        return Verdict::Ok(
            "no bpf filesystem at /sys/fs/bpf; nat64d run mounts one (it holds CAP_SYS_ADMIN)"
                .into(),
        );
    }
    Verdict::Fix {
        problem: format!(
            "state_dir {} is not on a bpf filesystem: nat64d refuses to start rather than lose every session at its next restart",
            dir.display()
        ),
        fix: "mount -t bpf bpf /sys/fs/bpf (in Kubernetes: the DaemonSet's hostPath volume of /sys/fs/bpf), or state_dir = \"off\" to run without state that survives a restart".into(),
    }
}

/// Whether this process holds CAP_SYS_ADMIN (bit 21 of its effective set), which mounting
/// takes.
fn has_cap_sys_admin() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 21) != 0)
}

/// The node's IPv4 routes of the main table (`/proc/net/route`): device and prefix.
fn ipv4_routes() -> Vec<(String, ipnet::Ipv4Net)> {
    let Ok(text) = fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // The kernel prints the network-order words as host integers.
            let dest = std::net::Ipv4Addr::from(hex(f.get(1)?)?.to_ne_bytes());
            let mask = hex(f.get(7)?)?.to_ne_bytes();
            let len = u32::from_be_bytes(mask).count_ones() as u8;
            Some((f[0].to_string(), ipnet::Ipv4Net::new(dest, len).ok()?))
        })
        .collect()
}

/// The node's IPv6 routes (`/proc/net/ipv6_route`): device and prefix.
fn ipv6_routes() -> Vec<(String, ipnet::Ipv6Net)> {
    let Ok(text) = fs::read_to_string("/proc/net/ipv6_route") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u128::from_str_radix(f.first()?, 16).ok()?;
            let len = u8::from_str_radix(f.get(1)?, 16).ok()?;
            let dev = f.last()?.to_string();
            Some((dev, ipnet::Ipv6Net::new(dest.into(), len).ok()?))
        })
        .collect()
}

/// Routes of someone else's that take part of what the translator answers for: a route as
/// specific as the translator's (replaced when the daemon starts) or more specific (it wins
/// over the translator's, so that part of the traffic is never translated).
fn route_conflicts(cfg: &Config) -> (Vec<String>, Vec<String>) {
    use ipnet::IpNet;
    let link = cfg.translator_link.0.clone().unwrap_or_default();
    let (v6, v4) = cfg.link_routes();
    let ours: Vec<IpNet> = v6
        .into_iter()
        .map(IpNet::V6)
        .chain(v4.into_iter().map(IpNet::V4))
        .collect();
    let theirs: Vec<(String, IpNet)> = ipv6_routes()
        .into_iter()
        .map(|(d, r)| (d, IpNet::V6(r)))
        .chain(ipv4_routes().into_iter().map(|(d, r)| (d, IpNet::V4(r))))
        .filter(|(dev, _)| dev != "lo" && *dev != link)
        .collect();
    let (mut same, mut more) = (Vec::new(), Vec::new());
    for p in &ours {
        for (dev, r) in &theirs {
            if !p.contains(&r.network()) || r.prefix_len() < p.prefix_len() {
                continue;
            }
            let line = format!("{r} dev {dev} (inside {p})");
            if r.prefix_len() == p.prefix_len() {
                same.push(line);
            } else {
                more.push(line);
            }
        }
    }
    (same, more)
}

/// Runs every check for `cfg` on this node.
pub fn run(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(Check {
        name: "kernel",
        verdict: match kernel_version() {
            Some((maj, min)) if (maj, min) >= (5, 18) => {
                Verdict::Ok(format!("Linux {maj}.{min} (5.18 or newer: bpf_loop, bpf_xdp_load_bytes)"))
            }
            Some((maj, min)) => Verdict::Fix {
                problem: format!("Linux {maj}.{min}; the dataplane needs 5.18 or newer (bpf_loop, bpf_xdp_load_bytes)"),
                fix: "upgrade the node's kernel".into(),
            },
            None => Verdict::Warn("kernel version unknown".into()),
        },
    });
    out.push(Check {
        name: "btf",
        verdict: if Path::new("/sys/kernel/btf/vmlinux").exists() {
            Verdict::Ok("/sys/kernel/btf/vmlinux present".into())
        } else {
            Verdict::Warn("no /sys/kernel/btf/vmlinux: the dataplane does not need it today, future CO-RE features will".into())
        },
    });
    out.push(Check {
        name: "bpffs",
        verdict: bpffs_verdict(cfg),
    });
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    out.push(Check {
        name: "privileges",
        verdict: if euid == 0 {
            Verdict::Ok("running as root".into())
        } else {
            Verdict::Fix {
                problem: format!("running as uid {euid}; loading XDP programs and managing links needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (or root)"),
                fix: "run as root, or grant those capabilities (securityContext.capabilities in Kubernetes)".into(),
            }
        },
    });
    out.push(check_sysctl("ipv4 forwarding", "net.ipv4.ip_forward", "1"));
    out.push(check_sysctl(
        "ipv6 forwarding",
        "net.ipv6.conf.all.forwarding",
        "1",
    ));
    out.push(Check {
        name: "reverse-path filter",
        verdict: match sysctl("net.ipv4.conf.all.rp_filter").as_deref() {
            Some("1") => Verdict::Fix {
                problem: "net.ipv4.conf.all.rp_filter = 1 (strict): translated IPv4 packets arrive on the IPv6-facing interface and would be dropped".into(),
                fix: "sysctl -w net.ipv4.conf.all.rp_filter=2 (loose) or 0".into(),
            },
            Some(v) => Verdict::Ok(format!("net.ipv4.conf.all.rp_filter = {v}")),
            None => Verdict::Warn("net.ipv4.conf.all.rp_filter cannot be read".into()),
        },
    });
    for (i, ifc) in cfg.interfaces.iter().enumerate() {
        let name = "interface";
        let verdict = match crate::sys::if_index(&ifc.name) {
            None => Verdict::Fix {
                problem: format!(
                    "interfaces[{i}]: no interface named {:?} on this node",
                    ifc.name
                ),
                fix: "fix the name in the configuration (ip link shows the node's interfaces)"
                    .into(),
            },
            Some(_) => match crate::sys::mtu(&ifc.name) {
                Ok(mtu) if cfg.ipv6_mtu != 0 && mtu + 20 < cfg.ipv6_mtu as u32 && mtu < 1500 => {
                    Verdict::Warn(format!(
                        "{} has MTU {mtu}, below ipv6_mtu {} minus 20: IPv6 packets of that size cannot arrive here whole",
                        ifc.name, cfg.ipv6_mtu
                    ))
                }
                Ok(mtu) => Verdict::Ok(format!("{} exists (MTU {mtu})", ifc.name)),
                Err(e) => Verdict::Warn(format!("{}: MTU unknown ({e})", ifc.name)),
            },
        };
        out.push(Check { name, verdict });
    }
    for ifc in cfg.interfaces.iter() {
        if crate::sys::if_index(&ifc.name).is_none() {
            continue;
        }
        let (hook, why) = crate::dataplane::resolve_hook(ifc, cfg);
        let verdict = if hook == crate::config::Hook::Tc && !crate::dataplane::kernel_has_tcx() {
            Verdict::Fix {
                problem: format!("{}: hook = \"tc\" needs tcx (Linux 6.6 or newer)", ifc.name),
                fix: "set hook = \"xdp\" (or \"auto\") on it, or upgrade the kernel".into(),
            }
        } else {
            Verdict::Ok(format!("{}: {hook} ({why})", ifc.name))
        };
        out.push(Check {
            name: "hook",
            verdict,
        });
    }
    if let (Some(link), Some(peer)) = (&cfg.translator_link.0, cfg.translator_link.peer()) {
        let verdict = match (crate::sys::if_index(link), crate::sys::if_index(&peer)) {
            (None, None) => Verdict::Ok(format!(
                "{link:?} and {peer:?} are free for the translator link"
            )),
            _ => Verdict::Warn(format!(
                "an interface named {link:?} or {peer:?} exists: nat64d replaces it if it is a translator link it left behind, and refuses to start otherwise"
            )),
        };
        out.push(Check {
            name: "translator link",
            verdict,
        });
    } else {
        out.push(Check {
            name: "translator link",
            verdict: Verdict::Warn("off: DF=0 IPv4 packets that outgrow the IPv6 MTU are dropped, GSO aggregates in generic mode are dropped, traffic this node originates is not translated, and you route pool6 and the EAM IPv4 prefixes yourself".into()),
        });
    }
    // A pool4 address of this host's own is shared by port: the host's sockets take their
    // ports from ip_local_port_range, pool4's ranges must lie outside it. (The node's
    // addresses inside an EAM or pool6_ipv4 prefix are kept its own by the dataplane.)
    let own = crate::sys::ipv4_addrs();
    let ours = cfg.answered_ipv4();
    let shared: Vec<String> = ours
        .iter()
        .filter(|(field, _)| field.starts_with("stateful."))
        .flat_map(|(field, p)| {
            own.iter()
                .filter(|(_, a)| p.contains(a))
                .map(move |(ifc, a)| format!("{field} {p} holds {a}, an address of {ifc}"))
        })
        .collect();
    if let Some(st) = &cfg.stateful {
        let local = sysctl("net.ipv4.ip_local_port_range").unwrap_or_default();
        let mut it = local
            .split_whitespace()
            .filter_map(|v| v.parse::<u16>().ok());
        let verdict = match (it.next(), it.next()) {
            (Some(lo), Some(hi)) => {
                let overlap = (0..3).any(|j| {
                    let r = st.range(j);
                    r.0 <= hi && lo <= r.1
                });
                if shared.is_empty() {
                    Verdict::Ok(format!(
                        "ip_local_port_range {lo}-{hi}; pool4 holds no address of this host, so its ports cannot collide with the host's sockets"
                    ))
                } else if overlap {
                    Verdict::Fix {
                        problem: format!(
                            "{}, and pool4's port ranges overlap ip_local_port_range {lo}-{hi}: bindings and the host's own sockets would take the same ports",
                            shared.join("; ")
                        ),
                        fix: "set stateful.ports outside ip_local_port_range (\"61001-65535\" beside Linux's default 32768-60999, as Jool does), or narrow net.ipv4.ip_local_port_range".into(),
                    }
                } else {
                    Verdict::Ok(format!(
                        "{}, shared by port: pool4's ranges stay clear of ip_local_port_range {lo}-{hi}, and the rest of the address's traffic is the host's",
                        shared.join("; ")
                    ))
                }
            }
            _ => Verdict::Warn("net.ipv4.ip_local_port_range cannot be read".into()),
        };
        out.push(Check {
            name: "pool4 ports",
            verdict,
        });
    }
    let (same, more) = route_conflicts(cfg);
    if cfg.translator_link.0.is_some() {
        out.push(Check {
        name: "routes",
        verdict: if !more.is_empty() {
            Verdict::Fix {
                problem: format!(
                    "routes of someone else's are more specific than the translator's, so what they cover is never translated: {}",
                    more.join("; ")
                ),
                fix: "remove those routes (ip route del ...), or take prefixes nothing else routes".into(),
            }
        } else if !same.is_empty() {
            Verdict::Warn(format!(
                "nat64d replaces these routes with its own into the translator link when it starts: {}",
                same.join("; ")
            ))
        } else {
            Verdict::Ok("nothing else routes what the translator answers for".into())
        },
    });
    }
    out.push(rfc6791_source(cfg));
    if cfg.interfaces.is_empty() && cfg.translator_link.0.is_none() {
        out.push(Check {
            name: "attachment",
            verdict: Verdict::Fix {
                problem: "no interface and no translator link: nothing would be translated".into(),
                fix: "list the interfaces traffic arrives on, or turn translator_link on".into(),
            },
        });
    }
    out
}

/// Whether the ICMPv6 errors of IPv6 routers with no IPv4 mapping (a Packet Too Big: the
/// only signal path MTU discovery gets) will reach their IPv4 destination once translated
/// with their RFC 6791 source (`pool6791`, or the node's own address). Also run by
/// `check-config`.
pub fn rfc6791_source(cfg: &Config) -> Check {
    let name = "rfc6791 source";
    let own = crate::sys::ipv4_addrs();
    let verdict = match cfg.pool6791 {
        // The address comes from a FIB lookup in the dataplane (BPF_FIB_LOOKUP_SRC).
        None => match kernel_version() {
            Some(v) if v < (6, 8) => Verdict::Fix {
                problem: format!(
                    "pool6791 is not set and Linux {}.{} cannot tell the dataplane this node's own address (BPF_FIB_LOOKUP_SRC needs 6.8): ICMPv6 errors from routers with no IPv4 mapping, Packet Too Big included, would be dropped and path MTU discovery would fail",
                    v.0, v.1
                ),
                fix: "set pool6791 to an IPv4 address of this node's, or to one routed to it".into(),
            },
            _ => Verdict::Ok(
                "pool6791 not set: errors from routers with no IPv4 mapping leave from this node's own address toward their destination".into(),
            ),
        },
        Some(a) if own.iter().any(|(_, b)| *b == a) => Verdict::Ok(format!(
            "pool6791 {a} is an address of this node: such errors are translated on the translator link (or, without one, on interfaces the daemon sets accept_local on)"
        )),
        Some(a) => rfc6791_reverse_path(cfg, a),
    };
    Check { name, verdict }
}

/// A configured pool6791 address the node does not hold: the translated errors arrive on the
/// translator link or the attached interfaces with it as their source, and reverse-path
/// filtering drops them unless it routes back (strict: through that interface; loose: at all).
fn rfc6791_reverse_path(cfg: &Config, a: std::net::Ipv4Addr) -> Verdict {
    let all = sysctl("net.ipv4.conf.all.rp_filter")
        .and_then(|v| v.parse::<u8>().ok())
        .unwrap_or(0);
    // The daemon sets rp_filter = 0 on its own link: only `all` counts there.
    let receiving = cfg
        .translator_link
        .0
        .iter()
        .map(|l| (l.clone(), all))
        .chain(cfg.interfaces.iter().map(|i| {
            let own = sysctl(&format!("net.ipv4.conf.{}.rp_filter", i.name))
                .and_then(|v| v.parse::<u8>().ok())
                .unwrap_or(0);
            (i.name.clone(), all.max(own))
        }));
    let route = ipv4_routes()
        .into_iter()
        .filter(|(_, p)| p.contains(&a))
        .max_by_key(|(_, p)| p.prefix_len());
    let mut dropped = Vec::new();
    for (dev, rp) in receiving {
        match (rp, &route) {
            (0, _) => {}
            (_, None) => dropped.push(format!("{dev} (rp_filter {rp}: no route covers {a})")),
            (1, Some((via, _))) if *via != dev => dropped.push(format!(
                "{dev} (rp_filter 1, strict: {a} is routed through {via})"
            )),
            _ => {}
        }
    }
    if dropped.is_empty() {
        Verdict::Ok(format!(
            "pool6791 {a}: reverse-path filtering lets translated errors from it through"
        ))
    } else {
        Verdict::Fix {
            problem: format!(
                "pool6791 {a}: ICMP errors translated with this source would be dropped by reverse-path filtering on {}",
                dropped.join(", ")
            ),
            fix: format!(
                "route {a} back through the receiving interface (ip route add {a}/32 dev IFACE), or set rp_filter to 0 there, or leave pool6791 unset (the node's own address)"
            ),
        }
    }
}

/// Whether any check asks for a fix.
pub fn needs_fixing(checks: &[Check]) -> bool {
    checks
        .iter()
        .any(|c| matches!(c.verdict, Verdict::Fix { .. }))
}
