//! The command line: `nat64d run` and the commands that talk to a running daemon (through
//! its admin socket) or to the system (`check-config`, `doctor`, `cleanup`).

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use nat64_daemon::{
    Config,
    admin::{Command as AdminCommand, Filter, Reply},
    config::Protocol,
};

use crate::run_args::RunArgs;

#[derive(Parser)]
#[command(
    name = "nat64d",
    version = nat64_daemon::VERSION,
    about = "NAT64/NAT46 translator daemon (eBPF dataplane)"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Load the dataplane, attach it and translate until SIGINT or SIGTERM.
    Run(RunArgs),
    /// The running daemon's counters, through its admin socket: a table, or JSON.
    Stats {
        #[arg(long, default_value = nat64_daemon::config::DEFAULT_ADMIN_SOCKET, env = "NAT64D_ADMIN_SOCKET")]
        socket: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The running daemon's configuration, every key written out (defaults included), as
    /// TOML, through its admin socket: what it applies now, after reloads and flags.
    Config {
        #[arg(long, default_value = nat64_daemon::config::DEFAULT_ADMIN_SOCKET, env = "NAT64D_ADMIN_SOCKET")]
        socket: PathBuf,
    },
    /// Explicit address mappings (NAT46 aliases) of the running daemon, through its admin
    /// socket: list, add or remove at run time (a reload from the file replaces them).
    Eam {
        #[arg(long, default_value = nat64_daemon::config::DEFAULT_ADMIN_SOCKET, env = "NAT64D_ADMIN_SOCKET")]
        socket: PathBuf,
        #[command(subcommand)]
        action: EamAction,
    },
    /// Stateful NAT64 bindings of the running daemon, through its admin socket.
    Bindings {
        /// The daemon's admin socket.
        #[arg(long, default_value = nat64_daemon::config::DEFAULT_ADMIN_SOCKET, env = "NAT64D_ADMIN_SOCKET")]
        socket: PathBuf,
        #[command(subcommand)]
        action: BindingsAction,
    },
    /// Check that this node can run the translator (kernel, sysctls, privileges, interfaces,
    /// the translator link's names) and say how to fix what is missing; changes nothing.
    /// Exits 1 when something must be fixed.
    Doctor {
        /// The configuration to check the node for; without it the built-in defaults.
        #[arg(short, long, env = "NAT64D_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Remove the state a stopped daemon left pinned (`state_dir`), so that the next start
    /// begins empty; run it after the daemon is stopped, to uninstall.
    Cleanup {
        #[arg(short, long, env = "NAT64D_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Deterministic mapping (RFC 7422, `[stateful.deterministic]`), answered from the
    /// configuration alone (no daemon needed): which client holds a pool4 address and port
    /// (`--ipv4`), or which pool4 address and port blocks a client has (`--ipv6`).
    Map {
        #[arg(short, long, env = "NAT64D_CONFIG")]
        config: PathBuf,
        /// A pool4 transport address as an IPv4 server logged it, ADDRESS:PORT.
        #[arg(long, required_unless_present = "ipv6", conflicts_with = "ipv6")]
        ipv4: Option<std::net::SocketAddrV4>,
        /// The protocol of `--ipv4` (tcp, udp or icmp: the port is then the identifier).
        #[arg(long, default_value = "tcp")]
        protocol: Protocol,
        /// A client's IPv6 address.
        #[arg(long)]
        ipv6: Option<std::net::Ipv6Addr>,
    },
    /// Validate a configuration file and exit; changes nothing on the system.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
        /// Do not check the file against this host (that the configured interfaces exist, that
        /// no prefix holds one of its addresses): for a file meant for another machine.
        #[arg(long)]
        skip_interface_check: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum EamAction {
    /// The mappings in force.
    List,
    /// Add a mapping: an IPv6 prefix and an IPv4 prefix of as many suffix bits or fewer (RFC
    /// 7757 section 3.2).
    Add {
        #[arg(long)]
        ipv6: ipnet::Ipv6Net,
        #[arg(long)]
        ipv4: ipnet::Ipv4Net,
    },
    /// Remove the mapping of an IPv6 prefix.
    Remove {
        #[arg(long)]
        ipv6: ipnet::Ipv6Net,
    },
}

#[derive(Subcommand)]
pub(crate) enum BindingsAction {
    /// List bindings, optionally only one protocol's or one address's (either side).
    List {
        #[arg(long)]
        protocol: Option<Protocol>,
        #[arg(long)]
        address: Option<std::net::IpAddr>,
    },
    /// Add a static binding: it never expires and lets IPv4 hosts open flows inward.
    Add {
        #[arg(long)]
        protocol: Protocol,
        /// [IPV6]:PORT
        #[arg(long)]
        ipv6: std::net::SocketAddrV6,
        /// IPV4:PORT, the address in pool4.
        #[arg(long)]
        ipv4: std::net::SocketAddrV4,
    },
    /// List sessions (RFC 6146 section 3.5: a binding and one remote IPv4 endpoint, with its
    /// TCP state), optionally only one protocol's or one IPv4 address's (pool4 or remote).
    Sessions {
        #[arg(long)]
        protocol: Option<Protocol>,
        #[arg(long)]
        address: Option<std::net::IpAddr>,
    },
    /// List port blocks (stateful.port_block_size): each client /64's blocks of pool4 ports,
    /// optionally only one protocol's or one address's (the client's or the pool4 one).
    Blocks {
        #[arg(long)]
        protocol: Option<Protocol>,
        #[arg(long)]
        address: Option<std::net::IpAddr>,
    },
    /// Remove every dynamic binding and its sessions (static ones stay).
    Flush,
    /// Remove the binding of an IPv6 transport address (static or dynamic).
    Remove {
        #[arg(long)]
        protocol: Protocol,
        /// [IPV6]:PORT
        #[arg(long)]
        ipv6: std::net::SocketAddrV6,
    },
}

pub(crate) fn check_config(
    file: &std::path::Path,
    skip_interface_check: bool,
) -> anyhow::Result<()> {
    let cfg = Config::load(file)?;
    if !skip_interface_check {
        cfg.check_interfaces_exist()?;
        cfg.check_own_addresses()?;
        // Whether router errors (path MTU discovery) would be delivered: a node condition,
        // like the two above.
        let rfc6791 = nat64_daemon::doctor::rfc6791_source(&cfg);
        if let nat64_daemon::doctor::Verdict::Fix { problem, fix } = &rfc6791.verdict {
            anyhow::bail!("{problem}\nfix: {fix}");
        }
    }
    // Not an error in the file: `nat64d run --interface` may name them. But run as it is,
    // it would refuse to start, and the operator should know now.
    if cfg.interfaces.is_empty() && cfg.translator_link.0.is_none() {
        eprintln!(
            "note: no [[interfaces]] and translator_link is off, so nothing would be translated: `nat64d run` with this file needs --interface"
        );
    }
    println!("{}: OK", file.display());
    Ok(())
}

/// The admin command of a `nat64d bindings ...` command line.
fn bindings_command(action: BindingsAction) -> AdminCommand {
    match action {
        BindingsAction::List { protocol, address } => {
            AdminCommand::Bindings(Filter { protocol, address })
        }
        BindingsAction::Sessions { protocol, address } => {
            AdminCommand::Sessions(Filter { protocol, address })
        }
        BindingsAction::Blocks { protocol, address } => {
            AdminCommand::Blocks(Filter { protocol, address })
        }
        BindingsAction::Add {
            protocol,
            ipv6,
            ipv4,
        } => AdminCommand::BindingsAdd {
            protocol,
            ipv6,
            ipv4,
        },
        BindingsAction::Remove { protocol, ipv6 } => {
            AdminCommand::BindingsRemove { protocol, ipv6 }
        }
        BindingsAction::Flush => AdminCommand::BindingsFlush,
    }
}

/// Sends one command to the daemon's admin socket and prints the answer's text; fails with
/// the daemon's reason when it refused.
pub(crate) fn admin_request(
    socket: &std::path::Path,
    command: &AdminCommand,
) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .with_context(|| format!("connecting to the admin socket {}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(format!("{command}\n").as_bytes())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    match Reply::from_wire(&answer) {
        Some(Reply::Done(text)) => {
            print!("{text}");
            Ok(())
        }
        Some(Reply::Failed(reason)) => anyhow::bail!("{reason}"),
        None => anyhow::bail!("unexpected answer from the daemon: {answer:?}"),
    }
}

/// `nat64d cleanup`: everything a daemon may leave behind once stopped with `on_stop =
/// "keep"` or killed: its attachments (their pins; the links detach with them), the translator
/// link with its routes, and the pinned maps.
pub(crate) fn cleanup(config: Option<&std::path::Path>) -> anyhow::Result<()> {
    let cfg = match config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    // A running daemon would re-create the link at once and lose its pins: the next start
    // would find the dataplane half there. Its admin socket answering says it runs.
    if let Some(path) = cfg.admin_socket.get()
        && std::os::unix::net::UnixStream::connect(path).is_ok()
    {
        anyhow::bail!(
            "a daemon is running (its admin socket {} answers): stop it first (in Kubernetes, delete the DaemonSet), then clean up",
            path.display()
        );
    }
    // Without an admin socket, the state directory's lock says so (`app::lock_state`), or
    // without a state directory the namespace's (`app::lock_namespace`).
    let _state_lock = match cfg.state_dir.get() {
        Some(dir) if dir.exists() => Some(crate::app::lock_state(dir)?),
        _ => None,
    };
    let _namespace_lock = match cfg.state_dir.get() {
        Some(_) => None,
        None => Some(crate::app::lock_namespace(&cfg)?),
    };
    if let Some(name) = &cfg.translator_link.0 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let removed = rt.block_on(async {
            let nl = nat64_daemon::link::connect()?;
            nat64_daemon::link::remove_ours(&nl, name).await
        })?;
        if removed {
            println!("{name}: translator link removed, and its routes with it");
        }
    }
    let Some(dir) = cfg.state_dir.get() else {
        println!("state_dir is off: nothing pinned");
        return Ok(());
    };
    if !dir.exists() {
        println!("{}: nothing pinned", dir.display());
        return Ok(());
    }
    let links = dir.join("links");
    if let Ok(entries) = std::fs::read_dir(&links) {
        for e in entries.flatten() {
            std::fs::remove_file(e.path())
                .with_context(|| format!("removing {}", e.path().display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let iface = nat64_daemon::dataplane::pin_interface(&name).unwrap_or(name);
            println!("{iface}: detached");
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    println!("{}: pinned state removed", dir.display());
    Ok(())
}

pub(crate) fn doctor(config: Option<&std::path::Path>) -> anyhow::Result<()> {
    let cfg = match config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let checks = nat64_daemon::doctor::run(&cfg);
    for c in &checks {
        println!("{c}");
    }
    if nat64_daemon::doctor::needs_fixing(&checks) {
        anyhow::bail!("this node needs the fixes above before nat64d can run here");
    }
    println!("this node can run nat64d with this configuration");
    Ok(())
}

/// Runs the command line's command.
pub(crate) fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::CheckConfig {
            file,
            skip_interface_check,
        } => check_config(&file, skip_interface_check),
        Command::Run(args) => crate::app::run(args),
        Command::Bindings { socket, action } => admin_request(&socket, &bindings_command(action)),
        Command::Stats { socket, json } => admin_request(&socket, &AdminCommand::Stats { json }),
        Command::Config { socket } => admin_request(&socket, &AdminCommand::Config),
        Command::Eam { socket, action } => admin_request(
            &socket,
            &match action {
                EamAction::List => AdminCommand::Eam,
                EamAction::Add { ipv6, ipv4 } => AdminCommand::EamAdd { ipv6, ipv4 },
                EamAction::Remove { ipv6 } => AdminCommand::EamRemove { ipv6 },
            },
        ),
        Command::Doctor { config } => doctor(config.as_deref()),
        Command::Map {
            config,
            ipv4,
            protocol,
            ipv6,
        } => map(&config, ipv4, protocol, ipv6),
        Command::Cleanup { config } => cleanup(config.as_deref()),
    }
}

/// `nat64d map`: see [`Command::Map`].
fn map(
    config: &std::path::Path,
    ipv4: Option<std::net::SocketAddrV4>,
    protocol: Protocol,
    ipv6: Option<std::net::Ipv6Addr>,
) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let st = cfg
        .stateful
        .as_ref()
        .context("the configuration has no [stateful] section")?;
    if let Some(v4) = ipv4 {
        let (prefix, len, (lo, hi)) =
            nat64_daemon::map::client_of(st, *v4.ip(), v4.port(), protocol)?;
        println!(
            "{v4} {} -> {prefix}/{len} ({} block {lo}-{hi} of {})",
            protocol.name(),
            protocol.name(),
            v4.ip()
        );
    }
    if let Some(v6) = ipv6 {
        let b = nat64_daemon::map::blocks_of(st, v6)?;
        let [t, u, i] = b.ports;
        println!(
            "{}/{} -> {} tcp {}-{} udp {}-{} icmp {}-{}",
            b.prefix, b.prefix_len, b.addr, t.0, t.1, u.0, u.1, i.0, i.1
        );
    }
    Ok(())
}
