//! The admin interface: a Unix socket, one request line per connection, answered with lines
//! that end in `ok` or `error: REASON`.
//!
//! Security: the socket is created mode 0600 in a directory of mode 0700, and every connection
//! is checked with SO_PEERCRED: only root or the daemon's own user is served. Nothing is
//! reachable over the network.
//!
//! Requests (typed in [`protocol`]; `nat64d bindings ...` and the other commands build them):
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

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::UnixListener,
    sync::{mpsc, oneshot},
};

pub mod protocol;

pub use protocol::{Command, Filter, Reply};

use crate::{Config, Dataplane};

/// The longest request line accepted.
const MAX_REQUEST: usize = 4096;
/// The most bindings one listing returns.
pub const MAX_LISTED: usize = 100_000;

/// A command and where its answer goes: what the socket server and the metrics endpoints
/// send the daemon's loop, which owns the dataplane.
pub struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Reply>,
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
                // A line that is no command is refused here; the loop sees only commands.
                let command = match line.trim().parse::<Command>() {
                    Ok(c) => c,
                    Err(reason) => {
                        let _ = write
                            .write_all(Reply::Failed(reason).to_wire().as_bytes())
                            .await;
                        return;
                    }
                };
                let (reply, answer) = oneshot::channel();
                if tx.send(Request { command, reply }).await.is_err() {
                    return;
                }
                if let Ok(r) = answer.await {
                    let _ = write.write_all(r.to_wire().as_bytes()).await;
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

/// Answers one command against the running dataplane (all but `Ready` and `Metrics`, which
/// the loop answers from what it tracks).
pub fn handle(command: &Command, dp: &mut Dataplane, cfg: &mut Config) -> Reply {
    answer(command, dp, cfg).into()
}

fn answer(command: &Command, dp: &mut Dataplane, cfg: &mut Config) -> Result<String, String> {
    let stateful = || {
        cfg.stateful
            .as_ref()
            .ok_or_else(|| "stateful NAT64 is not configured".to_string())
    };
    match command {
        Command::Ready | Command::Metrics => Err("answered by the daemon's loop".into()),
        Command::Config => Ok(cfg.to_toml()),
        Command::Eam => Ok(cfg
            .eam
            .iter()
            .map(|e| format!("{} {}\n", e.ipv6, e.ipv4))
            .collect()),
        Command::EamAdd { ipv6, ipv4 } => {
            let mut new = cfg.clone();
            new.eam.push(crate::config::Eam {
                ipv6: *ipv6,
                ipv4: *ipv4,
            });
            change_eam(dp, cfg, new)?;
            tracing::info!(%ipv6, %ipv4, "EAM entry added at run time (a reload from the file replaces it)");
            Ok(String::new())
        }
        Command::EamRemove { ipv6 } => {
            let mut new = cfg.clone();
            let before = new.eam.len();
            new.eam.retain(|e| e.ipv6 != *ipv6);
            if new.eam.len() == before {
                return Err(format!("no EAM entry for {ipv6}"));
            }
            change_eam(dp, cfg, new)?;
            tracing::info!(%ipv6, "EAM entry removed at run time (a reload from the file replaces it)");
            Ok(String::new())
        }
        Command::Stats { json: false } => dp.stats().map(|s| s.table()).map_err(|e| e.to_string()),
        Command::Stats { json: true } => dp.stats().map(|s| s.json()).map_err(|e| e.to_string()),
        Command::BindingsFlush => {
            stateful()?;
            let mut tables = dp.bindings().map_err(|e| e.to_string())?;
            let n = tables.flush().map_err(|e| e.to_string())?;
            tracing::info!(removed = n, "dynamic bindings flushed");
            Ok(format!("{n} bindings removed\n"))
        }
        Command::Bindings(f) => {
            stateful()?;
            let tables = dp.bindings().map_err(|e| e.to_string())?;
            let now = crate::bindings::now_ns();
            Ok(tables
                .list(MAX_LISTED)
                .iter()
                .filter(|b| b.matches(f.protocol, f.address))
                .map(|b| format!("{}\n", b.describe(now)))
                .collect())
        }
        Command::Sessions(f) => {
            stateful()?;
            let tables = dp.bindings().map_err(|e| e.to_string())?;
            let now = crate::bindings::now_ns();
            Ok(tables
                .list_sessions(MAX_LISTED)
                .iter()
                .filter(|s| s.matches(f.protocol, f.address))
                .map(|s| format!("{}\n", s.describe(now)))
                .collect())
        }
        Command::Blocks(f) => {
            stateful()?;
            let tables = dp.bindings().map_err(|e| e.to_string())?;
            let now = crate::bindings::now_ns();
            Ok(tables
                .list_blocks()
                .iter()
                .filter(|(k, o)| crate::bindings::block_matches(k, o, f.protocol, f.address))
                .take(MAX_LISTED)
                .map(|(k, o)| format!("{}\n", crate::bindings::describe_block(k, o, now)))
                .collect())
        }
        Command::BindingsAdd {
            protocol,
            ipv6,
            ipv4,
        } => {
            let st = stateful()?;
            let mut tables = dp.bindings().map_err(|e| e.to_string())?;
            tables
                .add_static(&st.pool4, *protocol, *ipv6, *ipv4)
                .map_err(|e| e.to_string())?;
            tracing::info!(protocol = protocol.name(), %ipv6, %ipv4, "static binding added");
            Ok(String::new())
        }
        Command::BindingsRemove { protocol, ipv6 } => {
            stateful()?;
            let mut tables = dp.bindings().map_err(|e| e.to_string())?;
            tables.remove(*protocol, *ipv6).map_err(|e| e.to_string())?;
            Ok(String::new())
        }
    }
}
