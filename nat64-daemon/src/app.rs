//! The daemon itself (`nat64d run`): sets the dataplane up, runs the loop that owns it
//! (`running`) until told to stop, and takes everything down again.

use std::{io::IsTerminal as _, path::PathBuf};

use anyhow::Context as _;
use nat64_daemon::{Config, Dataplane, config::LogFormat, dataplane::Attached};
use tracing::{error, info, warn};

use crate::{
    reload::Reload,
    run_args::{RunArgs, effective_config},
    translator_link::set_up_link,
};

pub(crate) fn run(args: RunArgs) -> anyhow::Result<()> {
    // A SIGHUP before the main loop listens for it (a configuration reloader that fires as
    // the pod starts) would end the process half set up, by the signal's default action. The
    // main loop reloads a file changed since the start anyway, so nothing is
    // lost by ignoring it until then: its stamp is taken before the file is read.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let _ =
        crate::reload::STARTUP_STAMP.set(args.config.as_deref().and_then(crate::reload::stamp_of));
    let cfg = effective_config(&args)?;
    init_logging(cfg.log_format);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg, args))
}

pub(crate) fn init_logging(format: LogFormat) {
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

/// Where this run pins its state: `state_dir/vN` for the maps (N the layout version, so that a
/// daemon with another layout never misreads them) and `state_dir/links` for the attachments
/// (version-free: any daemon can swap its programs into them). `None` only when `state_dir =
/// "off"` says so on purpose.
///
/// A state directory that is not on a bpf filesystem would lose every session at the next
/// restart without a word, so the daemon mounts one at `/sys/fs/bpf` when the directory lies
/// under it and none is there (as Cilium's agent does; it takes CAP_SYS_ADMIN, which root on
/// a plain host has), and otherwise refuses to start, naming the fix.
pub(crate) fn state_dir(cfg: &Config) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    let Some(base) = cfg.state_dir.get().cloned() else {
        info!("state_dir = \"off\": nothing pinned; a restart starts with empty tables");
        return Ok(None);
    };
    let root = std::path::Path::new(BPFFS_ROOT);
    if !nat64_daemon::sys::on_bpffs(&base) {
        if !base.starts_with(root) || nat64_daemon::sys::is_bpffs(root) {
            anyhow::bail!(
                "state_dir: {} is not on a bpf filesystem, so bindings, sessions and counters would not survive a restart; put it on one (under {BPFFS_ROOT}), or set state_dir = \"off\" to run without state that survives a restart",
                base.display()
            );
        }
        match nat64_daemon::sys::mount_bpffs(root) {
            Ok(()) => info!(
                path = BPFFS_ROOT,
                "no bpf filesystem was mounted; mounted one for the pinned state"
            ),
            Err(e) => anyhow::bail!(
                "state_dir: no bpf filesystem at {BPFFS_ROOT}, and mounting one failed ({e}); mount it on the node (mount -t bpf bpf {BPFFS_ROOT}; in Kubernetes the DaemonSet mounts the node's {BPFFS_ROOT} as a hostPath volume), or set state_dir = \"off\" to run without state that survives a restart"
            ),
        }
    }
    let dir = base.join(format!("v{}", nat64_common::maps::LAYOUT_VERSION));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("state_dir: cannot create {}", dir.display()))?;
    let adopted = nat64_daemon::dataplane::STATE_MAPS
        .iter()
        .filter(|m| dir.join(m).exists())
        .count();
    info!(state_dir = %dir.display(), adopted_maps = adopted, "state pinned; a restart adopts it");
    Ok(Some((dir, base.join("links"))))
}

/// The lock of the state directory `dir`: a second daemon on the same state would take the
/// first's pins over (see `nat64_daemon::sys::lock_dir`).
pub(crate) fn lock_state(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    match nat64_daemon::sys::lock_dir(dir) {
        Ok(Some(f)) => Ok(f),
        Ok(None) => anyhow::bail!(
            "state_dir: another nat64d holds {} (a daemon is already running with this state directory); stop it first",
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("state_dir: cannot lock {}", dir.display())),
    }
}

/// Without a state directory, the single-instance guard is a set of lock files, one for the
/// translator link and one per interface, each named after the network namespace (its inode)
/// and held with `flock(2)` for the daemon's life: a second daemon with the same link or any
/// of the same interfaces in that namespace would take the first's over. The kernel drops the
/// locks when the process ends, killed or not. The directory is root's, so no other user can
/// take a name first (an abstract socket, per namespace by itself, could be squatted by
/// anyone). Where it cannot be written (a read-only /run), the daemon runs unguarded and says
/// so.
pub(crate) fn lock_namespace(cfg: &Config) -> anyhow::Result<Vec<std::fs::File>> {
    use std::os::unix::fs::DirBuilderExt as _;
    let ns = std::fs::read_link("/proc/self/ns/net").context("reading the network namespace")?;
    let ns: String = ns
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let dir = std::path::Path::new(NAMESPACE_LOCKS);
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        warn!(dir = %dir.display(), error = %e, "no single-instance lock (state_dir and its lock are off): cannot create the lock directory");
        return Ok(Vec::new());
    }
    let mut names: Vec<(&str, &str)> = cfg
        .interfaces
        .iter()
        .map(|i| ("interface", i.name.as_str()))
        .collect();
    if let Some(link) = &cfg.translator_link.0 {
        names.push(("translator link", link.as_str()));
    }
    let mut held = Vec::new();
    for (kind, name) in names {
        let path = dir.join(format!("net{ns}.{}.{name}", kind.replace(' ', "-")));
        if let Err(e) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            warn!(file = %path.display(), error = %e, "no single-instance lock for this name: cannot create its lock file");
            continue;
        }
        match nat64_daemon::sys::lock_dir(&path) {
            Ok(Some(f)) => held.push(f),
            Ok(None) => anyhow::bail!(
                "another nat64d runs in this network namespace with the {kind} {name} (it holds {}); stop it first",
                path.display()
            ),
            Err(e) => {
                warn!(file = %path.display(), error = %e, "no single-instance lock for this name");
            }
        }
    }
    Ok(held)
}

/// Where the lock files of daemons without a state directory live (`lock_namespace`).
const NAMESPACE_LOCKS: &str = "/run/nat64d/locks";

/// Where bpf filesystems live by convention (what the daemon mounts if it must).
const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// Removes the maps pinned by daemons of other layout versions: their state cannot be read by
/// this one. Done once this daemon's programs run everywhere, so that nothing uses them.
pub(crate) fn remove_other_layouts(cfg: &Config) {
    let current = format!("v{}", nat64_common::maps::LAYOUT_VERSION);
    let Some(Ok(entries)) = cfg.state_dir.get().map(std::fs::read_dir) else {
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

/// Sets everything up, translates until told to stop, then takes everything down again.
pub(crate) async fn serve(mut cfg: Config, args: RunArgs) -> anyhow::Result<()> {
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
    // One daemon per configuration: a second one would take the first's pins and
    // attachments over and remove its admin socket. The socket answering says one runs.
    if let Some(path) = cfg.admin_socket.get()
        && std::os::unix::net::UnixStream::connect(path).is_ok()
    {
        anyhow::bail!(
            "a daemon is already running with this configuration (its admin socket {} answers)",
            path.display()
        );
    }
    // Where the time to ready goes (`nat64d ready` reports each phase).
    let started = std::time::Instant::now();
    let state = state_dir(&cfg)?;
    // The same guard without an admin socket: the state directory's lock, held until this
    // function returns; without a state directory, a name in the network namespace.
    let _state_lock = match &state {
        Some((maps, _)) => Some(lock_state(maps.parent().unwrap_or(maps))?),
        None => None,
    };
    let _namespace_lock = match &state {
        Some(_) => None,
        None => Some(lock_namespace(&cfg)?),
    };
    // The node's own addresses inside EAM and pool6_ipv4 prefixes stay its own, from the
    // first configuration written: the dispatchers an earlier run left attached tail-call
    // into these programs as soon as they are in place.
    let mut dp = Dataplane::load_keeping(
        &cfg,
        state.as_ref().map(|(maps, _)| maps.as_path()),
        nat64_daemon::sys::ipv4_addrs(),
    )
    .context("loading the dataplane")?;
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
    let loaded = started.elapsed();
    let link = match (&cfg.translator_link.0, cfg.translator_link.peer()) {
        (Some(name), Some(peer)) => Some(set_up_link(&mut dp, &nl, &cfg, name, &peer).await?),
        _ => None,
    };
    if let Some(st) = &cfg.stateful {
        // The binding log is on before anything below removes bindings or releases blocks,
        // so that those are logged too (RFC 6888 REQ-12's record; the IPFIX export starts
        // with the main loop).
        nat64_daemon::binding_log::configure(st.log_bindings, st.port_block_size != 0, None);
        let mut tables = dp.bindings()?;
        // Port blocks kept from a run with another block size or port range would not describe
        // the ports their clients hold, and new blocks could overlap them: they go, with the
        // dynamic bindings (the log then holds no record that two clients could share).
        // Dynamic bindings of a run with another deterministic mapping (RFC 7422) lie in the
        // blocks of other clients now: they go.
        if !tables.follow_deterministic(st) {
            let flushed = tables.flush()?;
            warn!(
                flushed,
                "dynamic bindings kept from the last run lie outside the blocks [stateful.deterministic] gives their clients now: flushed"
            );
        }
        if !tables.blocks_match(st) {
            let flushed = tables.flush()?;
            let released = tables.release_all_blocks();
            warn!(
                flushed,
                released,
                "port blocks kept from the last run were laid out for another port_block_size or port range: released, and the dynamic bindings flushed"
            );
        }
        // Pinned tables hold the last run's static bindings: those still listed stay as they
        // are (with their sessions), those no longer listed go.
        let (removed, failed) = tables.sync_static(st);
        if removed > 0 {
            info!(
                removed,
                "static bindings of the last run no longer configured: removed"
            );
        }
        if let Some((i, e)) = failed.into_iter().next() {
            return Err(anyhow::Error::new(e).context(format!("stateful.static[{i}]")));
        }
    }
    // The admin socket and the metrics listener hand their requests to the main loop, which
    // owns the dataplane.
    let (requests, admin) = tokio::sync::mpsc::channel(32);
    if let Some(path) = cfg.admin_socket.get() {
        nat64_daemon::admin::listen(path, requests.clone())
            .with_context(|| format!("admin_socket: cannot listen on {}", path.display()))?;
    }
    if let Some(&addr) = cfg.metrics_listen.get() {
        nat64_daemon::metrics::serve(addr, requests.clone())
            .await
            .with_context(|| format!("metrics_listen: cannot listen on {addr}"))?;
        info!(%addr, "metrics and probes served");
    }
    drop(requests);
    let admin = Some(admin);
    let linked = started.elapsed();
    for ifc in &cfg.interfaces {
        match dp.attach_interface(ifc, &cfg) {
            Ok(a) => {
                info!(interface = %ifc.name, hook = %a.hook, configured = %ifc.hook, why = a.why, mode = %ifc.xdp_mode, partial_checksums = a.partial, taken_over = a.how == Attached::TakenOver, "attached")
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
    let pruned = dp.prune_interface_settings();
    if pruned > 0 {
        info!(
            pruned,
            "settings of interfaces no longer attached removed (kept by an earlier run)"
        );
    }
    if pinned {
        remove_other_layouts(&cfg);
    }
    info!(
        version = nat64_daemon::VERSION,
        pool6 = %cfg.pool6.0.map_or("off".to_string(), |p| p.to_string()),
        eam_entries = cfg.eam.len(),
        interfaces = cfg.interfaces.len(),
        translator_link = link.as_ref().map_or("off", |l| l.name.as_str()),
        load_and_verify_ms = loaded.as_millis() as u64,
        link_and_listeners_ms = (linked - loaded).as_millis() as u64,
        attach_ms = (started.elapsed() - linked).as_millis() as u64,
        "nat64d ready"
    );

    let mut reload = Reload {
        args: &args,
        nl: &nl,
        link,
        gone: Default::default(),
        ipv4_routes: Default::default(),
        waiting: Default::default(),
    };
    let waited = crate::running::wait_for_shutdown(&mut dp, &mut cfg, admin, &mut reload).await;
    let link = reload.link.take();
    if let Some(path) = cfg.admin_socket.get() {
        let _ = std::fs::remove_file(path);
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
