//! `nat64d`: loads and attaches the translator's dataplane and runs until told to stop.

use std::{io::IsTerminal as _, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use nat64_daemon::{
    Config, Dataplane,
    config::{Hook, Interface, LogFormat, PartialChecksums, Pool6, XdpMode},
    dataplane::Attached,
};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, error, info, warn};

#[derive(Parser)]
#[command(
    name = "nat64d",
    version,
    about = "NAT64/NAT46 translator daemon (eBPF dataplane)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
enum EamAction {
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
enum BindingsAction {
    /// List bindings, optionally only one protocol's or one address's (either side).
    List {
        #[arg(long)]
        protocol: Option<String>,
        #[arg(long)]
        address: Option<std::net::IpAddr>,
    },
    /// Add a static binding: it never expires and lets IPv4 hosts open flows inward.
    Add {
        #[arg(long)]
        protocol: String,
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
        protocol: Option<String>,
        #[arg(long)]
        address: Option<std::net::IpAddr>,
    },
    /// Remove every dynamic binding and its sessions (static ones stay).
    Flush,
    /// Remove the binding of an IPv6 transport address (static or dynamic).
    Remove {
        #[arg(long)]
        protocol: String,
        /// [IPV6]:PORT
        #[arg(long)]
        ipv6: std::net::SocketAddrV6,
    },
}

#[derive(Args)]
struct RunArgs {
    /// TOML configuration file; without it the built-in defaults apply.
    #[arg(short, long, env = "NAT64D_CONFIG")]
    config: Option<PathBuf>,
    /// Override pool6: an RFC 6052 prefix, or "off".
    #[arg(long, value_name = "PREFIX")]
    pool6: Option<Pool6>,
    /// Override the interfaces (repeat for several): NAME or NAME:native or NAME:generic.
    #[arg(long = "interface", short = 'i', value_name = "NAME[:MODE]")]
    interfaces: Vec<Interface>,
    /// Override the log format.
    #[arg(long, value_enum, env = "NAT64D_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Override the interval, in seconds, of counter summaries in the log (0: only at exit).
    #[arg(long)]
    stats_interval_secs: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig {
            file,
            skip_interface_check,
        } => check_config(&file, skip_interface_check),
        Command::Run(args) => run(args),
        Command::Bindings { socket, action } => bindings_cli(&socket, action),
        Command::Stats { socket, json } => {
            admin_request(&socket, if json { "stats-json" } else { "stats" })
        }
        Command::Config { socket } => admin_request(&socket, "config"),
        Command::Eam { socket, action } => admin_request(
            &socket,
            &match action {
                EamAction::List => "eam".to_string(),
                EamAction::Add { ipv6, ipv4 } => format!("eam-add {ipv6} {ipv4}"),
                EamAction::Remove { ipv6 } => format!("eam-remove {ipv6}"),
            },
        ),
        Command::Doctor { config } => doctor(config.as_deref()),
        Command::Cleanup { config } => cleanup(config.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nat64d: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path, skip_interface_check: bool) -> anyhow::Result<()> {
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
    println!("{}: OK", file.display());
    Ok(())
}

/// Sends one `bindings ...` request to the daemon's admin socket and prints the answer.
fn bindings_cli(socket: &std::path::Path, action: BindingsAction) -> anyhow::Result<()> {
    let line = match action {
        BindingsAction::List { protocol, address } => {
            let mut l = "bindings".to_string();
            if let Some(p) = protocol {
                l.push_str(&format!(" protocol {p}"));
            }
            if let Some(a) = address {
                l.push_str(&format!(" address {a}"));
            }
            l
        }
        BindingsAction::Add {
            protocol,
            ipv6,
            ipv4,
        } => format!("bindings-add {protocol} {ipv6} {ipv4}"),
        BindingsAction::Remove { protocol, ipv6 } => format!("bindings-remove {protocol} {ipv6}"),
        BindingsAction::Sessions { protocol, address } => {
            let mut l = "sessions".to_string();
            if let Some(p) = protocol {
                l.push_str(&format!(" protocol {p}"));
            }
            if let Some(a) = address {
                l.push_str(&format!(" address {a}"));
            }
            l
        }
        BindingsAction::Flush => "bindings-flush".to_string(),
    };
    admin_request(socket, &line)
}

/// Sends one request line to the daemon's admin socket and prints the answer; the answer's
/// last line says whether it worked.
fn admin_request(socket: &std::path::Path, line: &str) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .with_context(|| format!("connecting to the admin socket {}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let (body, last) = match answer.trim_end().rsplit_once('\n') {
        Some((b, l)) => (b.to_string(), l.to_string()),
        None => (String::new(), answer.trim_end().to_string()),
    };
    if !body.is_empty() {
        println!("{body}");
    }
    match last.strip_prefix("error: ") {
        Some(e) => anyhow::bail!("{e}"),
        None if last == "ok" => Ok(()),
        None => anyhow::bail!("unexpected answer from the daemon: {answer:?}"),
    }
}

/// Where this run pins its state: `state_dir/vN` for the maps (N the layout version, so that a
/// daemon with another layout never misreads them) and `state_dir/links` for the attachments
/// (version-free: any daemon can swap its programs into them). `None` with the reason logged.
fn state_dir(cfg: &Config) -> Option<(PathBuf, PathBuf)> {
    if cfg.state_dir == "off" {
        return None;
    }
    let base = PathBuf::from(&cfg.state_dir);
    let fs_root = base.parent().unwrap_or(&base);
    if !nat64_daemon::sys::is_bpffs(&base) && !nat64_daemon::sys::is_bpffs(fs_root) {
        warn!(
            state_dir = %base.display(),
            "not on a bpf filesystem: bindings and counters will not survive a restart (mount -t bpf bpf {})",
            fs_root.display()
        );
        return None;
    }
    let dir = base.join(format!("v{}", nat64_common::maps::LAYOUT_VERSION));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        warn!(state_dir = %dir.display(), error = %e, "cannot create the state directory; running without pinned state");
        return None;
    }
    let adopted = nat64_daemon::dataplane::STATE_MAPS
        .iter()
        .filter(|m| dir.join(m).exists())
        .count();
    info!(state_dir = %dir.display(), adopted_maps = adopted, "state pinned; a restart adopts it");
    Some((dir, base.join("links")))
}

/// Removes the maps pinned by daemons of other layout versions: their state cannot be read by
/// this one. Done once this daemon's programs run everywhere, so that nothing uses them.
fn remove_other_layouts(cfg: &Config) {
    let current = format!("v{}", nat64_common::maps::LAYOUT_VERSION);
    let Ok(entries) = std::fs::read_dir(&cfg.state_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let versioned = name.len() > 1
            && name.starts_with('v')
            && name[1..].bytes().all(|b| b.is_ascii_digit());
        if versioned && name != current {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => warn!(
                    layout = %name,
                    this_daemon = %current,
                    "state pinned by a daemon of another layout version was not adopted (bindings are not carried over); removed"
                ),
                Err(err) => {
                    warn!(layout = %name, error = %err, "cannot remove the state of another layout version")
                }
            }
        }
    }
}

/// `nat64d cleanup`: everything a daemon may leave behind once stopped with `on_stop =
/// "keep"` or killed: its attachments (their pins; the links detach with them), the translator
/// link with its routes, and the pinned maps.
fn cleanup(config: Option<&std::path::Path>) -> anyhow::Result<()> {
    let cfg = match config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
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
    if cfg.state_dir == "off" {
        println!("state_dir is off: nothing pinned");
        return Ok(());
    }
    let dir = std::path::Path::new(&cfg.state_dir);
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

fn doctor(config: Option<&std::path::Path>) -> anyhow::Result<()> {
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

fn effective_config(args: &RunArgs) -> anyhow::Result<Config> {
    let mut cfg = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(p) = args.pool6 {
        cfg.pool6 = p;
    }
    if !args.interfaces.is_empty() {
        cfg.interfaces = args.interfaces.clone();
    }
    if let Some(f) = args.log_format {
        cfg.log_format = f;
    }
    if let Some(s) = args.stats_interval_secs {
        cfg.stats_interval_secs = s;
    }
    // Overrides go through the same validation as the file.
    cfg.validate()
        .context("configuration after command-line overrides")?;
    if cfg.interfaces.is_empty() && cfg.translator_link.0.is_none() {
        anyhow::bail!(
            "interfaces: no interface configured and translator_link is off, so nothing would be translated; give an interface with --interface or in the file"
        );
    }
    cfg.check_interfaces_exist()?;
    cfg.check_own_addresses()?;
    Ok(cfg)
}

/// Resolves `partial_checksums = "auto"` for an interface at `hook` (see
/// `config::PartialChecksums`).
fn partial_checksums(ifc: &Interface, hook: Hook) -> bool {
    match ifc.partial_checksums {
        PartialChecksums::On => true,
        PartialChecksums::Off => false,
        // On the socket-buffer path (generic XDP, TC) any interface can deliver them: a
        // virtio NIC passes the host's partial checksums on, for one.
        PartialChecksums::Auto => {
            ifc.xdp_mode == XdpMode::Generic
                || hook == Hook::Tc
                || nat64_daemon::dataplane::virtual_link(&ifc.name).unwrap_or_else(|e| {
                    warn!(interface = %ifc.name, error = %e, "cannot query the driver; assuming a virtual link");
                    true
                })
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NAT64D_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let cfg = effective_config(&args)?;
    init_logging(cfg.log_format);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg, args))
}

/// Sets everything up, translates until told to stop, then takes everything down again.
async fn serve(mut cfg: Config, args: RunArgs) -> anyhow::Result<()> {
    if cfg.enable_forwarding {
        for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
            if nat64_daemon::link::enable_forwarding(key).context("enable_forwarding")? {
                info!(
                    sysctl = key,
                    "forwarding was off; switched on (enable_forwarding = true)"
                );
            }
        }
    }
    let state = state_dir(&cfg);
    let mut dp = Dataplane::load_with_state(&cfg, state.as_ref().map(|(maps, _)| maps.as_path()))
        .context("loading the dataplane")?;
    // The node's own addresses inside EAM and pool6_ipv4 prefixes stay its own.
    dp.keep_own_addresses(nat64_daemon::sys::ipv4_addrs());
    dp.apply(&cfg)
        .context("keeping the node's own addresses its own")?;
    let pinned = match &state {
        Some((_, links)) => match dp.pin_attachments(links) {
            Ok(true) => true,
            Ok(false) => {
                warn!(
                    "this kernel attaches XDP over netlink (before Linux 5.9): attachments cannot be pinned and end with the daemon"
                );
                false
            }
            Err(e) => {
                warn!(dir = %links.display(), error = %e, "cannot pin attachments; they end with the daemon");
                false
            }
        },
        None => false,
    };
    if cfg.on_stop == nat64_daemon::config::OnStop::Keep && !pinned {
        warn!("on_stop = \"keep\" cannot be honoured without pinned attachments: a stop detaches");
    }
    let nl = nat64_daemon::link::connect()?;
    let link = match (&cfg.translator_link.0, cfg.translator_link.peer()) {
        (Some(name), Some(peer)) => Some(set_up_link(&mut dp, &nl, &cfg, name, &peer).await?),
        _ => None,
    };
    if let Some(st) = &cfg.stateful {
        let mut tables = dp.bindings()?;
        for (i, b) in st.static_bindings.iter().enumerate() {
            tables
                .add_static(&st.pool4, b.protocol, b.ipv6, b.ipv4)
                .with_context(|| format!("stateful.static[{i}]"))?;
        }
    }
    // The admin socket and the metrics listener hand their requests to the main loop, which
    // owns the dataplane.
    let (requests, admin) = tokio::sync::mpsc::channel(32);
    if cfg.admin_socket != "off" {
        nat64_daemon::admin::listen(std::path::Path::new(&cfg.admin_socket), requests.clone())
            .with_context(|| format!("admin_socket: cannot listen on {}", cfg.admin_socket))?;
    }
    if let Ok(addr) = cfg.metrics_listen.parse::<std::net::SocketAddr>() {
        nat64_daemon::metrics::serve(addr, requests.clone())
            .await
            .with_context(|| format!("metrics_listen: cannot listen on {addr}"))?;
        info!(%addr, "metrics and probes served");
    }
    drop(requests);
    let admin = Some(admin);
    for ifc in &cfg.interfaces {
        let (hook, why) = nat64_daemon::dataplane::resolve_hook(ifc, &cfg);
        let partial = partial_checksums(ifc, hook);
        match dp.attach(&ifc.name, hook, ifc.xdp_mode, partial) {
            Ok(how) => {
                info!(interface = %ifc.name, %hook, configured = %ifc.hook, why, mode = %ifc.xdp_mode, partial_checksums = partial, taken_over = how == Attached::TakenOver, "attached")
            }
            Err(e) => {
                // Leave nothing half attached.
                dp.detach_all();
                if let Some(l) = &link {
                    let _ = nat64_daemon::link::remove(&nl, l.index).await;
                }
                return Err(e.into());
            }
        }
    }
    // RFC 6791 without a translator link: see `link::accept_local`. And a pool4 address shared
    // with the node: translated packets from it arrive on the attached interfaces carrying
    // one of the node's own addresses as their source, which the kernel drops as a martian
    // unless the interface accepts local sources.
    let mut sysctls = Vec::new();
    let shared_pool4 = cfg.stateful.as_ref().is_some_and(|st| {
        nat64_daemon::sys::ipv4_addrs()
            .iter()
            .any(|(_, a)| st.pool4.iter().any(|p| p.contains(a)))
    });
    if shared_pool4 {
        let names: Vec<&str> = cfg.interfaces.iter().map(|i| i.name.as_str()).collect();
        sysctls = nat64_daemon::link::accept_local(&names).context(
            "accept_local (translated packets leave from pool4, the node's own address)",
        )?;
        for (path, old) in &sysctls {
            info!(sysctl = %path, old = %old, "set to 1: translated packets carry pool4, one of this node's own addresses, as their source");
        }
    } else if link.is_none() && nat64_daemon::dataplane::own_rfc6791_source(&cfg) {
        let names: Vec<&str> = cfg.interfaces.iter().map(|i| i.name.as_str()).collect();
        sysctls = nat64_daemon::link::accept_local(&names).context(
            "accept_local (ICMP errors from unmapped routers leave from the node's own address)",
        )?;
        for (path, old) in &sysctls {
            info!(sysctl = %path, old = %old, "set to 1: translated ICMP errors from routers with no IPv4 mapping carry this node's own address (RFC 6791)");
        }
    }
    for gone in dp.unpin_unclaimed() {
        info!(attachment = %gone, "detached: pinned by an earlier run, no longer configured");
    }
    if pinned {
        remove_other_layouts(&cfg);
    }
    info!(
        pool6 = %cfg.pool6.0.map_or("off".to_string(), |p| p.to_string()),
        eam_entries = cfg.eam.len(),
        interfaces = cfg.interfaces.len(),
        translator_link = link.as_ref().map_or("off", |l| l.name.as_str()),
        "nat64d ready"
    );

    let mut reload = Reload {
        args: &args,
        nl: &nl,
        link,
        gone: Default::default(),
    };
    let waited = wait_for_shutdown(&mut dp, &mut cfg, admin, &mut reload).await;
    let link = reload.link.take();
    if cfg.admin_socket != "off" {
        let _ = std::fs::remove_file(&cfg.admin_socket);
    }

    let keep = cfg.on_stop == nat64_daemon::config::OnStop::Keep && pinned;
    if keep {
        for iface in dp.leave_running() {
            info!(interface = %iface, "left translating (on_stop = \"keep\")");
        }
        if let Some(l) = &link {
            info!(link = %l.name, "translator link and routes left in place (on_stop = \"keep\")");
        }
    } else {
        for (iface, r) in dp.detach_all() {
            match r {
                Ok(()) => info!(interface = %iface, "detached"),
                Err(e) => warn!(interface = %iface, error = %e, "detach failed"),
            }
        }
    }
    if !keep {
        nat64_daemon::link::restore_sysctls(&sysctls);
    }
    if let Some(l) = link.as_ref().filter(|_| !keep) {
        match nat64_daemon::link::remove(&nl, l.index).await {
            Ok(()) => info!(link = %l.name, "translator link removed, and its routes with it"),
            Err(e) => warn!(link = %l.name, error = %e, "removing the translator link failed"),
        }
    }
    match dp.stats() {
        Ok(s) => {
            // The final counters go to stdout, in the same series names as the metrics.
            print!("{}", s.render());
            info!("nat64d stopped");
        }
        Err(e) => error!(error = %e, "reading counters failed"),
    }
    waited
}

/// Creates the translator link, attaches its programs and routes pool6 and the EAM IPv4
/// prefixes into it. On failure nothing of it is left behind.
async fn set_up_link(
    dp: &mut Dataplane,
    nl: &rtnetlink::Handle,
    cfg: &Config,
    name: &str,
    peer: &str,
) -> anyhow::Result<nat64_daemon::link::TranslatorLink> {
    use nat64_daemon::link;
    let mtu = cfg.link_mtu();
    let l = link::create(nl, name, peer, mtu)
        .await
        .context("creating the translator link")?;
    let (v6, v4) = cfg.link_routes();
    let mtu4 = cfg.ipv4_route_mtu();
    let r = match dp.attach_link(&l) {
        Ok(_) => link::add_routes(nl, &l, &v6, &v4, mtu4)
            .await
            .context("routing into the translator link"),
        Err(e) => Err(anyhow::Error::from(e).context("attaching to the translator link")),
    };
    // The configuration again, now with the link's ifindex and MAC (`Config::link_ifindex`).
    let r = r.and_then(|()| {
        dp.apply(cfg)
            .map_err(|e| anyhow::Error::from(e).context("writing the translator link's settings"))
    });
    if let Err(e) = r {
        dp.detach_all();
        let _ = link::remove(nl, l.index).await;
        return Err(e);
    }
    info!(
        link = %l.name,
        far_end = %l.peer,
        mtu,
        ipv4_route_mtu = mtu4,
        routes = v6.len() + v4.len(),
        "translator link up"
    );
    Ok(l)
}

/// The next admin request, or never when there is no admin socket.
async fn next_request(
    rx: &mut Option<tokio::sync::mpsc::Receiver<nat64_daemon::admin::Request>>,
) -> Option<nat64_daemon::admin::Request> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// How often the routes into the translator link are written again (replace: a no-op when
/// they are intact).
const ROUTE_RESYNC: Duration = Duration::from_secs(10);

/// How long a burst of netlink events must settle before the daemon re-syncs.
const EVENT_SETTLE: Duration = Duration::from_millis(200);

/// Follows link and route events in the background; a unit arrives on the returned channel
/// for each one that may have undone something of the daemon's.
fn follow_netlink() -> std::io::Result<tokio::sync::mpsc::Receiver<()>> {
    use futures_util::StreamExt as _;
    let (conn, _, mut events) = rtnetlink::new_multicast_connection(&[
        rtnetlink::MulticastGroup::Link,
        rtnetlink::MulticastGroup::Ipv4Route,
        rtnetlink::MulticastGroup::Ipv6Route,
    ])?;
    tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Some((msg, _)) = events.next().await {
            // A full channel already has a re-sync coming.
            if is_disruptive(&msg) && tx.try_send(()).is_err() && tx.is_closed() {
                break;
            }
        }
    });
    Ok(rx)
}

/// The next netlink event, or never when events are not followed.
async fn next_event(events: &mut Option<tokio::sync::mpsc::Receiver<()>>) -> Option<()> {
    match events {
        Some(e) => e.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever when it is `None`.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Whether an event may have undone something of the daemon's: a link appearing, changing or
/// going, or a route going. (New routes are the daemon's own re-sync, or harmless.)
fn is_disruptive(
    msg: &rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
) -> bool {
    use rtnetlink::{packet_core::NetlinkPayload, packet_route::RouteNetlinkMessage as M};
    matches!(
        &msg.payload,
        NetlinkPayload::InnerMessage(M::NewLink(_) | M::DelLink(_) | M::DelRoute(_))
    )
}

/// What a reload needs besides the dataplane and the running configuration.
struct Reload<'a> {
    args: &'a RunArgs,
    nl: &'a rtnetlink::Handle,
    /// The translator link as it is now (re-created if someone deleted it).
    link: Option<nat64_daemon::link::TranslatorLink>,
    /// Configured interfaces found gone, waiting to come back (said once).
    gone: std::collections::BTreeSet<String>,
}

impl Reload<'_> {
    /// Re-reads the configuration (file and flags) and applies it, or keeps the running one
    /// and says why. Established sessions live in the binding tables, which a reload does not
    /// touch.
    async fn run(&self, dp: &mut Dataplane, cur: &mut Config, trigger: &str) {
        let new = match effective_config(self.args) {
            Ok(c) => c,
            Err(e) => {
                error!(trigger, error = %format!("{e:#}"), "reload refused; the running configuration is kept");
                return;
            }
        };
        if new == *cur {
            info!(trigger, "configuration unchanged");
            return;
        }
        if let Err(e) = cur.check_reload(&new) {
            error!(trigger, error = %e, "reload refused; the running configuration is kept");
            return;
        }
        // With pinned state, a new copy of the programs with the new configuration is swapped
        // in whole (no packet sees half of it); without, the maps are written in place (EAM
        // entries added before the configuration slot changes, removed after it).
        dp.keep_own_addresses(nat64_daemon::sys::ipv4_addrs());
        if let Err(e) = dp.replace(&new) {
            error!(trigger, error = %e, "applying the new configuration failed; the running one is written back");
            if let Err(e) = dp.apply(cur) {
                error!(error = %e, "writing the running configuration back failed");
            }
            return;
        }
        self.move_routes(cur.link_routes(), &new).await;
        if let (Some(old), Some(st)) = (&cur.stateful, &new.stateful)
            && old.static_bindings != st.static_bindings
        {
            match dp.bindings() {
                Ok(mut t) => {
                    for b in old
                        .static_bindings
                        .iter()
                        .filter(|b| !st.static_bindings.contains(b))
                    {
                        let _ = t.remove(b.protocol, b.ipv6);
                    }
                    for b in st
                        .static_bindings
                        .iter()
                        .filter(|b| !old.static_bindings.contains(b))
                    {
                        if let Err(e) = t.add_static(&st.pool4, b.protocol, b.ipv6, b.ipv4) {
                            warn!(error = %e, binding = %b.ipv6, "static binding not added");
                        }
                    }
                }
                Err(e) => warn!(error = %e, "binding tables unavailable"),
            }
        }
        *cur = new;
        info!(
            trigger,
            pool6 = %cur.pool6.0.map_or("off".to_string(), |p| p.to_string()),
            eam_entries = cur.eam.len(),
            programs_swapped = dp.swaps_programs(),
            "configuration reloaded"
        );
    }

    /// Routes into the translator link what `cfg` translates and removes the routes of `old`
    /// that it no longer does.
    async fn move_routes(&self, old: (Vec<ipnet::Ipv6Net>, Vec<ipnet::Ipv4Net>), cfg: &Config) {
        let Some(l) = &self.link else { return };
        let (old6, old4) = old;
        let (new6, new4) = cfg.link_routes();
        let mtu4 = cfg.ipv4_route_mtu();
        if let Err(e) = nat64_daemon::link::add_routes(self.nl, l, &new6, &new4, mtu4).await {
            warn!(error = %e, "adding the new routes failed");
        }
        let gone6: Vec<_> = old6.into_iter().filter(|p| !new6.contains(p)).collect();
        let gone4: Vec<_> = old4.into_iter().filter(|p| !new4.contains(p)).collect();
        if gone6.is_empty() && gone4.is_empty() {
            return;
        }
        match nat64_daemon::link::remove_routes(self.nl, l, &gone6, &gone4).await {
            Ok(()) => info!(
                removed = gone6.len() + gone4.len(),
                "routes of what is no longer translated removed"
            ),
            Err(e) => warn!(error = %e, "removing the old routes failed"),
        }
    }

    /// Puts back what someone else undid: re-creates a deleted translator link (with its
    /// programs and routes), re-attaches to a configured interface that was deleted and has
    /// come back (a new interface index), and writes the link's routes again (replace: a
    /// no-op when they are intact).
    async fn resync(&mut self, dp: &mut Dataplane, cfg: &Config, trigger: &str) {
        use nat64_daemon::sys::if_index;
        if let Err(e) = dp.sync_node_addresses() {
            warn!(trigger, error = %e, "cannot record this node's IPv6 addresses");
        }
        if let Some(l) = &self.link
            && (if_index(&l.name) != Some(l.index) || if_index(&l.peer) != Some(l.peer_index))
        {
            warn!(trigger, link = %l.name, "the translator link was deleted or replaced; re-creating it");
            dp.forget(&l.name);
            dp.forget(&l.peer);
            let (name, peer) = (l.name.clone(), l.peer.clone());
            match set_up_link(dp, self.nl, cfg, &name, &peer).await {
                Ok(new) => self.link = Some(new),
                Err(e) => {
                    error!(error = %format!("{e:#}"), "re-creating the translator link failed; trying again at the next re-sync")
                }
            }
        }
        for ifc in &cfg.interfaces {
            let now = if_index(&ifc.name);
            let was = dp.attached_index(&ifc.name);
            if now.is_some() && now == was {
                continue;
            }
            if was.is_some() {
                dp.forget(&ifc.name);
            }
            if now.is_none() {
                if self.gone.insert(ifc.name.clone()) {
                    warn!(trigger, interface = %ifc.name, "interface gone; attaching to it when it comes back");
                }
                continue;
            }
            let (hook, _) = nat64_daemon::dataplane::resolve_hook(ifc, cfg);
            match dp.attach(&ifc.name, hook, ifc.xdp_mode, partial_checksums(ifc, hook)) {
                Ok(_) => {
                    self.gone.remove(&ifc.name);
                    info!(trigger, interface = %ifc.name, %hook, mode = %ifc.xdp_mode, "interface back: attached again");
                }
                Err(e) => {
                    error!(trigger, interface = %ifc.name, error = %e, "attaching again failed")
                }
            }
        }
        if let Some(l) = &self.link {
            let (v6, v4) = cfg.link_routes();
            let mtu4 = cfg.ipv4_route_mtu();
            if let Err(e) = nat64_daemon::link::add_routes(self.nl, l, &v6, &v4, mtu4).await {
                warn!(trigger, error = %e, "re-syncing the translator link's routes failed");
            }
        }
    }

    /// The configuration file's modification time and size, to notice a change (a Kubernetes
    /// ConfigMap update swaps the file under a symlink).
    fn file_stamp(&self) -> Option<(std::time::SystemTime, u64)> {
        let m = std::fs::metadata(self.args.config.as_ref()?).ok()?;
        Some((m.modified().ok()?, m.len()))
    }
}

async fn wait_for_shutdown(
    dp: &mut Dataplane,
    cfg: &mut Config,
    mut admin: Option<tokio::sync::mpsc::Receiver<nat64_daemon::admin::Request>>,
    reload: &mut Reload<'_>,
) -> anyhow::Result<()> {
    // Link and route events, so that a deleted translator link, a re-created interface or a
    // removed route is put right at once rather than at the next periodic pass.
    let mut events = match follow_netlink() {
        Ok(rx) => Some(rx),
        Err(e) => {
            warn!(error = %e, "cannot follow netlink events; links and routes are re-synced every {} s only", ROUTE_RESYNC.as_secs());
            None
        }
    };
    let mut resync_at: Option<tokio::time::Instant> = None;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut watch = tokio::time::interval(Duration::from_secs(2));
    // The routes into the translator link are put back if someone removed or replaced them.
    let mut resync = tokio::time::interval(ROUTE_RESYNC);
    resync.tick().await;
    let mut stamp = reload.file_stamp();
    let stats_interval_secs = cfg.stats_interval_secs;
    let period = Duration::from_secs(stats_interval_secs.max(1));
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    // Stateful NAT64: the sweeper runs at a quarter of the shortest binding lifetime (1 to 30
    // s), so a binding outlives its timeout by at most that much.
    let sweep_every = cfg
        .stateful
        .as_ref()
        .map_or(Duration::from_secs(3600), |st| {
            let shortest = [
                st.udp_timeout_secs,
                st.icmp_timeout_secs,
                st.tcp_transitory_timeout_secs,
                st.tcp_established_timeout_secs,
            ]
            .into_iter()
            .min()
            .unwrap_or(60);
            Duration::from_secs((shortest / 4).clamp(1, 30))
        });
    let mut sweep = tokio::time::interval(sweep_every);
    sweep.tick().await;
    // Stateful NAT64: unsolicited SYNs held 6 seconds are answered within a second after
    // (RFC 6146 section 3.5.2.2, `held_syns`).
    let mut held_syns = tokio::time::interval(Duration::from_secs(1));
    held_syns.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // What the last sweep found in use, for the periodic summary.
    let mut usage = nat64_daemon::bindings::Sweep::default();
    let mut binding_log = nat64_daemon::bindings::BindingLog::default();
    // How long the last sweep took, for the metrics.
    let mut sweep_secs = 0.0f64;
    loop {
        tokio::select! {
            _ = sigint.recv() => { info!("SIGINT: shutting down"); return Ok(()); }
            _ = sigterm.recv() => { info!("SIGTERM: shutting down"); return Ok(()); }
            _ = sighup.recv() => {
                reload.run(dp, cfg, "SIGHUP").await;
                stamp = reload.file_stamp();
            }
            _ = resync.tick() => reload.resync(dp, cfg, "periodic").await,
            Some(()) = next_event(&mut events) => {
                // An interface's MTU counts at once (the first-hop MTU check skips packets
                // no larger than the smallest); the rest waits for the burst to settle.
                match dp.refresh_mtu_floors() {
                    Ok(Some((v4, v6))) => debug!(mtu_floor4 = v4, mtu_floor6 = v6, "interface MTU floors changed"),
                    Ok(None) => {}
                    Err(e) => warn!(error = %e, "cannot update the interface MTU floors"),
                }
                // A burst of events (a link going away takes its routes with it) is answered
                // once, shortly after it settles.
                resync_at = Some(tokio::time::Instant::now() + EVENT_SETTLE);
            }
            _ = sleep_until_some(resync_at) => {
                resync_at = None;
                reload.resync(dp, cfg, "netlink event").await;
            }
            _ = watch.tick(), if reload.args.config.is_some() => {
                let now = reload.file_stamp();
                if now.is_some() && now != stamp {
                    stamp = now;
                    reload.run(dp, cfg, "file changed").await;
                }
            }
            Some(req) = next_request(&mut admin) => {
                let answer = match req.line.as_str() {
                    "ready" => "ok\n".to_string(),
                    "metrics" => match dp.stats() {
                        Ok(stats) => {
                            let snap = nat64_daemon::metrics::Snapshot {
                                stats: &stats,
                                bindings: cfg.stateful.as_ref().map(|_| usage),
                                sweep_seconds: sweep_secs,
                                max_bindings: cfg.stateful.as_ref().map_or(0, |s| s.max_bindings),
                                attached: dp.attached().count(),
                                stateful: cfg.stateful.as_ref(),
                            };
                            nat64_daemon::metrics::render(&snap)
                                .unwrap_or_else(|e| format!("error: {e}\n"))
                        }
                        Err(e) => format!("error: {e}\n"),
                    },
                    line => {
                        // Run-time EAM changes move routes too.
                        let before = cfg.link_routes();
                        let answer = nat64_daemon::admin::handle(line, dp, cfg);
                        if cfg.link_routes() != before {
                            reload.move_routes(before, cfg).await;
                        }
                        answer
                    }
                };
                let _ = req.reply.send(answer);
            }
            _ = sweep.tick(), if cfg.stateful.is_some() => {
                let Some(st) = &cfg.stateful else { continue };
                let started = std::time::Instant::now();
                let r = dp
                    .bindings()
                    .map_err(anyhow::Error::from)
                    .and_then(|mut t| {
                        let r = t
                            .sweep(st, nat64_daemon::bindings::now_ns(), st.max_bindings as usize)
                            .map_err(anyhow::Error::from);
                        if st.log_bindings {
                            t.report_changes(&mut binding_log, st.max_bindings as usize);
                        }
                        r
                    });
                if let Ok(s) = &r {
                    usage = *s;
                    sweep_secs = started.elapsed().as_secs_f64();
                }
                match r {
                    Ok(s) if s.expired > 0 => info!(
                        expired = s.expired,
                        tcp = s.live.tcp,
                        udp = s.live.udp,
                        icmp = s.live.icmp,
                        sessions_expired = s.sessions_expired,
                        "bindings expired"
                    ),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "sweeping bindings failed"),
                }
            }
            _ = held_syns.tick(), if cfg.stateful.is_some() => {
                let now = nat64_daemon::bindings::now_ns();
                match nat64_daemon::held_syns::answer_expired(dp, cfg, now, 4096) {
                    Ok(a) if a.sent + a.unanswered > 0 => debug!(
                        sent = a.sent,
                        unanswered = a.unanswered,
                        "held SYNs answered with Port Unreachable"
                    ),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "answering held SYNs failed"),
                }
            }
            _ = tick.tick(), if stats_interval_secs > 0 => {
                match dp.stats() {
                    Ok(s) => info!(
                        translated_6to4 = s.translated(nat64_common::Dir::V6ToV4),
                        translated_4to6 = s.translated(nat64_common::Dir::V4ToV6),
                        dropped_6to4 = s.dropped(nat64_common::Dir::V6ToV4),
                        dropped_4to6 = s.dropped(nat64_common::Dir::V4ToV6),
                        bindings_tcp = usage.live.tcp,
                        bindings_udp = usage.live.udp,
                        bindings_icmp = usage.live.icmp,
                        ports_held = usage.held,
                        "counters"
                    ),
                    Err(e) => warn!(error = %e, "reading counters failed"),
                }
            }
        }
    }
}
