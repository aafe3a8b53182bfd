//! The admin protocol, typed: what a client may ask ([`Command`]) and what it gets back
//! ([`Reply`]). On the socket a command is one line and a reply is lines ending in `ok` or
//! `error: REASON`; both ends go through the types here, so the CLI (which builds commands
//! from its own parsed arguments), the socket server, the metrics endpoints and the daemon's
//! loop agree on one vocabulary, and a malformed line is refused with the reason.

use std::{
    fmt,
    net::{IpAddr, SocketAddrV4, SocketAddrV6},
    str::FromStr,
};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::config::Protocol;

/// Optional filters of a listing: one protocol, one address (either side of a binding; the
/// pool4 or the remote address of a session).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub protocol: Option<Protocol>,
    pub address: Option<IpAddr>,
}

/// One request to the running daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Whether every part is up (`/readyz`).
    Ready,
    /// The Prometheus exposition (`/metrics`).
    Metrics,
    /// The running configuration as TOML.
    Config,
    /// The counters, as a table or as JSON.
    Stats { json: bool },
    /// The explicit address mappings.
    Eam,
    /// Adds an EAM entry at run time (validated like the file; a reload replaces it).
    EamAdd { ipv6: Ipv6Net, ipv4: Ipv4Net },
    /// Removes the EAM entry of an IPv6 prefix.
    EamRemove { ipv6: Ipv6Net },
    /// The bindings, one per line.
    Bindings(Filter),
    /// The sessions (RFC 6146 section 3.5), one per line.
    Sessions(Filter),
    /// The port blocks (`stateful.port_block_size`), one per line.
    Blocks(Filter),
    /// Adds a static binding.
    BindingsAdd {
        protocol: Protocol,
        ipv6: SocketAddrV6,
        ipv4: SocketAddrV4,
    },
    /// Removes the binding of an IPv6 transport address (static or dynamic).
    BindingsRemove {
        protocol: Protocol,
        ipv6: SocketAddrV6,
    },
    /// Removes every dynamic binding and its sessions.
    BindingsFlush,
}

impl fmt::Display for Command {
    /// The request line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let filter = |f: &mut fmt::Formatter<'_>, name: &str, x: &Filter| {
            f.write_str(name)?;
            if let Some(p) = x.protocol {
                write!(f, " protocol {}", p.name())?;
            }
            if let Some(a) = x.address {
                write!(f, " address {a}")?;
            }
            Ok(())
        };
        match self {
            Command::Ready => f.write_str("ready"),
            Command::Metrics => f.write_str("metrics"),
            Command::Config => f.write_str("config"),
            Command::Stats { json: false } => f.write_str("stats"),
            Command::Stats { json: true } => f.write_str("stats-json"),
            Command::Eam => f.write_str("eam"),
            Command::EamAdd { ipv6, ipv4 } => write!(f, "eam-add {ipv6} {ipv4}"),
            Command::EamRemove { ipv6 } => write!(f, "eam-remove {ipv6}"),
            Command::Bindings(x) => filter(f, "bindings", x),
            Command::Sessions(x) => filter(f, "sessions", x),
            Command::Blocks(x) => filter(f, "blocks", x),
            Command::BindingsAdd {
                protocol,
                ipv6,
                ipv4,
            } => write!(f, "bindings-add {} {ipv6} {ipv4}", protocol.name()),
            Command::BindingsRemove { protocol, ipv6 } => {
                write!(f, "bindings-remove {} {ipv6}", protocol.name())
            }
            Command::BindingsFlush => f.write_str("bindings-flush"),
        }
    }
}

/// Parses one value of a request line, naming what it should have been.
fn value<T: FromStr>(v: &str, what: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    v.parse().map_err(|e| format!("{v:?} is not {what}: {e}"))
}

/// The `protocol P` and `address A` filters of a listing request, each optional.
fn filter(words: &[&str]) -> Result<Filter, String> {
    let mut out = Filter::default();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let v = it.next().ok_or_else(|| format!("{w}: value missing"))?;
        match *w {
            "protocol" => out.protocol = Some(v.parse::<Protocol>()?),
            "address" => out.address = Some(value(v, "an address")?),
            other => return Err(format!("unknown filter {other:?}")),
        }
    }
    Ok(out)
}

impl FromStr for Command {
    type Err = String;

    /// A request line, as [`Command`]'s `Display` writes it.
    fn from_str(line: &str) -> Result<Self, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        Ok(match words.as_slice() {
            ["ready"] => Command::Ready,
            ["metrics"] => Command::Metrics,
            ["config"] => Command::Config,
            ["stats"] => Command::Stats { json: false },
            ["stats-json"] => Command::Stats { json: true },
            ["eam"] => Command::Eam,
            ["eam-add", v6, v4] => Command::EamAdd {
                ipv6: value(v6, "an IPv6 prefix")?,
                ipv4: value(v4, "an IPv4 prefix")?,
            },
            ["eam-remove", v6] => Command::EamRemove {
                ipv6: value(v6, "an IPv6 prefix")?,
            },
            ["bindings", rest @ ..] => Command::Bindings(filter(rest)?),
            ["sessions", rest @ ..] => Command::Sessions(filter(rest)?),
            ["blocks", rest @ ..] => Command::Blocks(filter(rest)?),
            ["bindings-add", p, v6, v4] => Command::BindingsAdd {
                protocol: p.parse()?,
                ipv6: value(v6, "[IPV6]:PORT")?,
                ipv4: value(v4, "IPV4:PORT")?,
            },
            ["bindings-remove", p, v6] => Command::BindingsRemove {
                protocol: p.parse()?,
                ipv6: value(v6, "[IPV6]:PORT")?,
            },
            ["bindings-flush"] => Command::BindingsFlush,
            _ => return Err(format!("unknown request {line:?}")),
        })
    }
}

/// The answer to a [`Command`]: its text and whether it worked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Done; the text (possibly empty) is the answer.
    Done(String),
    /// Refused or failed, with the reason.
    Failed(String),
}

impl Reply {
    /// The reply as sent on the socket: the text, then `ok`; or `error: REASON`, each line
    /// of a reason of several lines (a configuration error and its causes) so prefixed.
    pub fn to_wire(&self) -> String {
        match self {
            Reply::Done(text) => format!("{text}ok\n"),
            Reply::Failed(reason) => {
                let mut out = String::new();
                for line in reason.trim_end_matches('\n').split('\n') {
                    out.push_str("error: ");
                    out.push_str(line);
                    out.push('\n');
                }
                out
            }
        }
    }

    /// A reply read from the socket (what [`Reply::to_wire`] wrote), or `None` if it is not
    /// one.
    pub fn from_wire(text: &str) -> Option<Reply> {
        let trimmed = text.trim_end_matches('\n');
        let (body, last) = match trimmed.rsplit_once('\n') {
            Some((b, l)) => (format!("{b}\n"), l),
            None => (String::new(), trimmed),
        };
        if last == "ok" {
            return Some(Reply::Done(body));
        }
        last.strip_prefix("error: ")?;
        // The reason: the trailing lines that all carry the prefix.
        let mut lines: Vec<&str> = trimmed
            .split('\n')
            .rev()
            .map_while(|l| l.strip_prefix("error: "))
            .collect();
        lines.reverse();
        Some(Reply::Failed(lines.join("\n")))
    }
}

impl From<Result<String, String>> for Reply {
    fn from(r: Result<String, String>) -> Reply {
        match r {
            Ok(text) => Reply::Done(text),
            Err(reason) => Reply::Failed(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses_back_from_its_line() {
        let all = [
            Command::Ready,
            Command::Metrics,
            Command::Config,
            Command::Stats { json: false },
            Command::Stats { json: true },
            Command::Eam,
            Command::EamAdd {
                ipv6: "2001:db8:6::/120".parse().unwrap(),
                ipv4: "198.51.100.0/24".parse().unwrap(),
            },
            Command::EamRemove {
                ipv6: "2001:db8:6::/120".parse().unwrap(),
            },
            Command::Bindings(Filter::default()),
            Command::Sessions(Filter {
                protocol: Some(Protocol::Tcp),
                address: Some("192.0.2.2".parse().unwrap()),
            }),
            Command::Blocks(Filter {
                protocol: Some(Protocol::Udp),
                address: Some("2001:db8::1".parse().unwrap()),
            }),
            Command::BindingsAdd {
                protocol: Protocol::Udp,
                ipv6: "[2001:db8::5]:53".parse().unwrap(),
                ipv4: "203.0.113.1:53".parse().unwrap(),
            },
            Command::BindingsRemove {
                protocol: Protocol::Icmp,
                ipv6: "[2001:db8::5]:7".parse().unwrap(),
            },
            Command::BindingsFlush,
        ];
        for c in all {
            assert_eq!(c.to_string().parse::<Command>(), Ok(c.clone()), "{c}");
        }
    }

    #[test]
    fn malformed_lines_are_refused_with_the_reason() {
        for (line, why) in [
            ("", "unknown request"),
            ("bindings protocol sctp", "sctp"),
            ("bindings address", "value missing"),
            ("bindings colour blue", "unknown filter"),
            ("eam-add 2001:db8::/120 nonsense", "is not an IPv4 prefix"),
            (
                "bindings-add tcp [2001:db8::5] 203.0.113.1:53",
                "is not [IPV6]:PORT",
            ),
            ("stats extra", "unknown request"),
        ] {
            let e = line.parse::<Command>().unwrap_err();
            assert!(e.contains(why), "{line:?}: {e}");
        }
    }

    #[test]
    fn replies_cross_the_wire_unchanged() {
        for r in [
            Reply::Done(String::new()),
            Reply::Done("a\nb\n".into()),
            Reply::Failed("no EAM entry for 2001:db8::/120".into()),
            // A reload refused: the error and its cause, on lines of their own.
            Reply::Failed("configuration rejected\neam[0].ipv4: not a prefix".into()),
        ] {
            assert_eq!(Reply::from_wire(&r.to_wire()), Some(r.clone()));
        }
        assert_eq!(Reply::from_wire("garbage\n"), None);
    }
}
