//! The admin interface: a Unix socket, one request line per connection, answered with lines
//! that end in `ok` or `error: REASON`.
//!
//! Security: the socket is created mode 0600 in a directory of mode 0700, and every connection
//! is checked with SO_PEERCRED: only root or the daemon's own user is served. Nothing is
//! reachable over the network.
//!
//! Requests (`nat64d bindings ...` writes them):
//! - `bindings [protocol tcp|udp|icmp] [address ADDR]`: the bindings, one per line;
//! - `bindings-add PROTO [IPV6]:PORT IPV4:PORT`: a static binding;
//! - `bindings-remove PROTO [IPV6]:PORT`: removes a binding (static or dynamic);
//! - `bindings-flush`: removes every dynamic binding (and their sessions);
//! - `sessions [protocol tcp|udp|icmp] [address ADDR]`: the sessions (RFC 6146 section 3.5),
//!   one per line; the address is the pool4 address or the remote one;
//! - `stats`, `stats-json`: the counters, as a table or as JSON;
//! - `config`: the running configuration as TOML;
//! - `eam`, `eam-add IPV6/LEN IPV4/LEN`, `eam-remove IPV6/LEN`: the explicit address mappings
//!   (NAT46 aliases), listed, added or removed at run time: validated like the file, applied
//!   atomically; a reload from the file replaces them.

use std::{
    net::{IpAddr, SocketAddrV4, SocketAddrV6},
    os::unix::fs::PermissionsExt as _,
    path::Path,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::UnixListener,
    sync::{mpsc, oneshot},
};

use crate::{Config, Dataplane, bindings::Protocol};

/// The longest request line accepted.
const MAX_REQUEST: usize = 4096;
/// The most bindings one listing returns.
pub const MAX_LISTED: usize = 100_000;

/// A request line and where its answer goes.
pub struct Request {
    pub line: String,
    pub reply: oneshot::Sender<String>,
}

/// Binds the socket at `path` and serves it in the background: each request goes to `tx`,
/// whose receiver (the daemon's main loop, which owns the dataplane) answers it.
pub fn listen(path: &Path, tx: mpsc::Sender<Request>) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    // A socket file left by a daemon that died is in the way; only ever remove a socket.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt as _;
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        }
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                // SAFETY: geteuid has no preconditions.
                let me = unsafe { libc::geteuid() };
                let allowed = stream
                    .peer_cred()
                    .is_ok_and(|c| c.uid() == 0 || c.uid() == me);
                let (read, mut write) = stream.into_split();
                if !allowed {
                    let _ = write
                        .write_all(b"error: permission denied (root or the daemon's user only)\n")
                        .await;
                    return;
                }
                let mut line = String::new();
                let mut reader = BufReader::new(read).take(MAX_REQUEST as u64);
                if reader.read_line(&mut line).await.is_err() {
                    return;
                }
                let (reply, answer) = oneshot::channel();
                let req = Request {
                    line: line.trim().to_string(),
                    reply,
                };
                if tx.send(req).await.is_err() {
                    return;
                }
                if let Ok(text) = answer.await {
                    let _ = write.write_all(text.as_bytes()).await;
                }
            });
        }
    });
    Ok(())
}

use tokio::io::AsyncReadExt as _;

/// Applies a configuration that differs from the running one in its EAM entries only:
/// validated as a file would be (sizes, overlaps, the host's own addresses), then applied at
/// once (see `Dataplane::replace`).
fn change_eam(dp: &mut Dataplane, cfg: &mut Config, new: Config) -> Result<(), String> {
    new.validate().map_err(|e| e.to_string())?;
    new.check_own_addresses().map_err(|e| e.to_string())?;
    dp.replace(&new).map_err(|e| e.to_string())?;
    *cfg = new;
    Ok(())
}

/// Answers one request line against the running dataplane.
pub fn handle(line: &str, dp: &mut Dataplane, cfg: &mut Config) -> String {
    match answer(line, dp, cfg) {
        Ok(mut text) => {
            text.push_str("ok\n");
            text
        }
        Err(e) => format!("error: {e}\n"),
    }
}

fn answer(line: &str, dp: &mut Dataplane, cfg: &mut Config) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let stateful = || {
        cfg.stateful
            .as_ref()
            .ok_or_else(|| "stateful NAT64 is not configured".to_string())
    };
    match words.as_slice() {
        ["config"] => Ok(cfg.to_toml()),
        ["eam"] => Ok(cfg
            .eam
            .iter()
            .map(|e| format!("{} {}\n", e.ipv6, e.ipv4))
            .collect()),
        ["eam-add", v6, v4] => {
            let e = crate::config::Eam {
                ipv6: v6
                    .parse()
                    .map_err(|e| format!("{v6:?} is not an IPv6 prefix: {e}"))?,
                ipv4: v4
                    .parse()
                    .map_err(|e| format!("{v4:?} is not an IPv4 prefix: {e}"))?,
            };
            let mut new = cfg.clone();
            new.eam.push(e.clone());
            change_eam(dp, cfg, new)?;
            tracing::info!(ipv6 = %e.ipv6, ipv4 = %e.ipv4, "EAM entry added at run time (a reload from the file replaces it)");
            Ok(String::new())
        }
        ["eam-remove", v6] => {
            let p: ipnet::Ipv6Net = v6
                .parse()
                .map_err(|e| format!("{v6:?} is not an IPv6 prefix: {e}"))?;
            let mut new = cfg.clone();
            let before = new.eam.len();
            new.eam.retain(|e| e.ipv6 != p);
            if new.eam.len() == before {
                return Err(format!("no EAM entry for {p}"));
            }
            change_eam(dp, cfg, new)?;
            tracing::info!(ipv6 = %p, "EAM entry removed at run time (a reload from the file replaces it)");
            Ok(String::new())
        }
        ["stats"] => dp.stats().map(|s| s.table()).map_err(|e| e.to_string()),
        ["stats-json"] => dp.stats().map(|s| s.json()).map_err(|e| e.to_string()),
        ["bindings-flush"] => {
            stateful()?;
            let mut tables = dp.bindings().map_err(|e| e.to_string())?;
            let n = tables.flush().map_err(|e| e.to_string())?;
            tracing::info!(removed = n, "dynamic bindings flushed");
            Ok(format!("{n} bindings removed\n"))
        }
        ["bindings", rest @ ..] => {
            stateful()?;
            let (proto, addr) = filters(rest)?;
            let tables = dp.bindings().map_err(|e| e.to_string())?;
            let now = crate::bindings::now_ns();
            let mut out = String::new();
            for b in tables.list(MAX_LISTED) {
                if b.matches(proto, addr) {
                    out.push_str(&b.describe(now));
                    out.push('\n');
                }
            }
            Ok(out)
        }
        ["sessions", rest @ ..] => {
            stateful()?;
            let (proto, addr) = filters(rest)?;
            let tables = dp.bindings().map_err(|e| e.to_string())?;
            let now = crate::bindings::now_ns();
            let mut out = String::new();
            for s in tables.list_sessions(MAX_LISTED) {
                if s.matches(proto, addr) {
                    out.push_str(&s.describe(now));
                    out.push('\n');
                }
            }
            Ok(out)
        }
        ["bindings-add", proto, v6, v4] => {
            let st = stateful()?;
            let proto: Protocol = proto.parse()?;
            let v6: SocketAddrV6 = v6
                .parse()
                .map_err(|e| format!("{v6:?} is not [IPV6]:PORT: {e}"))?;
            let v4: SocketAddrV4 = v4
                .parse()
                .map_err(|e| format!("{v4:?} is not IPV4:PORT: {e}"))?;
            let mut tables = dp.bindings().map_err(|e| e.to_string())?;
            tables
                .add_static(&st.pool4, proto, v6, v4)
                .map_err(|e| e.to_string())?;
            tracing::info!(protocol = proto.name(), %v6, %v4, "static binding added");
            Ok(String::new())
        }
        ["bindings-remove", proto, v6] => {
            stateful()?;
            let proto: Protocol = proto.parse()?;
            let v6: SocketAddrV6 = v6
                .parse()
                .map_err(|e| format!("{v6:?} is not [IPV6]:PORT: {e}"))?;
            let mut tables = dp.bindings().map_err(|e| e.to_string())?;
            tables.remove(proto, v6).map_err(|e| e.to_string())?;
            tracing::info!(protocol = proto.name(), %v6, "binding removed");
            Ok(String::new())
        }
        _ => Err(format!("unknown request {line:?}")),
    }
}

/// The `protocol P` and `address A` filters of a listing request, each optional.
fn filters(words: &[&str]) -> Result<(Option<Protocol>, Option<IpAddr>), String> {
    let (mut proto, mut addr) = (None, None);
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let v = it.next().ok_or_else(|| format!("{w}: value missing"))?;
        match *w {
            "protocol" => proto = Some(v.parse::<Protocol>()?),
            "address" => {
                addr = Some(
                    v.parse::<IpAddr>()
                        .map_err(|e| format!("address {v:?}: {e}"))?,
                )
            }
            other => return Err(format!("unknown filter {other:?}")),
        }
    }
    Ok((proto, addr))
}
