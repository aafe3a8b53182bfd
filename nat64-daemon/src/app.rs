//! The daemon itself (`nat64d run`): sets the dataplane up, runs the loop that owns it
//! (admin and metrics requests, reloads, re-syncs, the sweeper, held SYNs, counters) until
//! told to stop, and takes everything down again.

use std::{io::IsTerminal as _, path::PathBuf, time::Duration};

use anyhow::Context as _;
use nat64_daemon::{Config, Dataplane, config::LogFormat, dataplane::Attached};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, error, info, warn};

use crate::{cli::RunArgs, reload::Reload};

pub(crate) fn run(args: RunArgs) -> anyhow::Result<()> {
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

pub(crate) fn effective_config(args: &RunArgs) -> anyhow::Result<Config> {
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

/// Where this run pins its state: `state_dir/vN` for the maps (N the layout version, so that a
/// daemon with another layout never misreads them) and `state_dir/links` for the attachments
/// (version-free: any daemon can swap its programs into them). `None` with the reason logged.
pub(crate) fn state_dir(cfg: &Config) -> Option<(PathBuf, PathBuf)> {
    let base = cfg.state_dir.get()?.clone();
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

/// Creates the translator link, attaches its programs and routes pool6 and the EAM IPv4
/// prefixes into it. On failure nothing of it is left behind.
pub(crate) async fn set_up_link(
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
pub(crate) async fn next_request(
    rx: &mut Option<tokio::sync::mpsc::Receiver<nat64_daemon::admin::Request>>,
) -> Option<nat64_daemon::admin::Request> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// The next netlink event, or never when events are not followed.
pub(crate) async fn next_event(events: &mut Option<tokio::sync::mpsc::Receiver<()>>) -> Option<()> {
    match events {
        Some(e) => e.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever when it is `None`.
pub(crate) async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Runs the daemon's loop until SIGINT or SIGTERM: each event source is one arm, each arm one
/// method of [`Running`].
pub(crate) async fn wait_for_shutdown(
    dp: &mut Dataplane,
    cfg: &mut Config,
    mut admin: Option<tokio::sync::mpsc::Receiver<nat64_daemon::admin::Request>>,
    reload: &mut Reload<'_>,
) -> anyhow::Result<()> {
    // Link and route events, so that a deleted translator link, a re-created interface or a
    // removed route is put right at once rather than at the next periodic pass.
    let mut events = match nat64_daemon::link::follow_events() {
        Ok(rx) => Some(rx),
        Err(e) => {
            warn!(error = %e, "cannot follow netlink events; links and routes are re-synced every {} s only", ROUTE_RESYNC.as_secs());
            None
        }
    };
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut watch = tokio::time::interval(Duration::from_secs(2));
    // The routes into the translator link are put back if someone removed or replaced them.
    let mut resync = tokio::time::interval(ROUTE_RESYNC);
    resync.tick().await;
    let stats_interval_secs = cfg.stats_interval_secs;
    let mut tick = tokio::time::interval(Duration::from_secs(stats_interval_secs.max(1)));
    tick.tick().await;
    let mut sweep = tokio::time::interval(sweep_period(cfg));
    sweep.tick().await;
    // Stateful NAT64: unsolicited SYNs held 6 seconds are answered within a second after
    // (RFC 6146 section 3.5.2.2, `held_syns`).
    let mut held_syns = tokio::time::interval(Duration::from_secs(1));
    held_syns.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stateful = cfg.stateful.is_some();
    let watching = reload.args.config.is_some();
    let mut r = Running {
        stamp: reload.file_stamp(),
        dp,
        cfg,
        reload,
        resync_at: None,
        usage: Default::default(),
        binding_log: Default::default(),
        sweep_secs: 0.0,
    };
    loop {
        tokio::select! {
            _ = sigint.recv() => { info!("SIGINT: shutting down"); return Ok(()); }
            _ = sigterm.recv() => { info!("SIGTERM: shutting down"); return Ok(()); }
            _ = sighup.recv() => r.reload("SIGHUP").await,
            _ = resync.tick() => r.reload.resync(r.dp, r.cfg, "periodic").await,
            Some(()) = next_event(&mut events) => r.netlink_event(),
            _ = sleep_until_some(r.resync_at) => {
                r.resync_at = None;
                r.reload.resync(r.dp, r.cfg, "netlink event").await;
            }
            _ = watch.tick(), if watching => r.reload_if_changed().await,
            Some(req) = next_request(&mut admin) => r.answer(req).await,
            _ = sweep.tick(), if stateful => r.sweep(),
            _ = held_syns.tick(), if stateful => r.answer_held_syns(),
            _ = tick.tick(), if stats_interval_secs > 0 => r.log_counters(),
        }
    }
}

/// Stateful NAT64: the sweeper runs at a quarter of the shortest lifetime (1 to 30 s), so a
/// session or binding outlives its timeout by at most that much.
fn sweep_period(cfg: &Config) -> Duration {
    cfg.stateful
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
        })
}

/// The running daemon's state between events: what the loop's arms share.
struct Running<'a, 'r> {
    dp: &'a mut Dataplane,
    cfg: &'a mut Config,
    reload: &'a mut Reload<'r>,
    /// The configuration file's stamp when last read (see `Reload::file_stamp`).
    stamp: Option<(std::time::SystemTime, u64)>,
    /// When the re-sync a burst of netlink events asked for is due.
    resync_at: Option<tokio::time::Instant>,
    /// What the last sweep found in use, for the metrics and the periodic summary.
    usage: nat64_daemon::bindings::Sweep,
    binding_log: nat64_daemon::bindings::BindingLog,
    /// How long the last sweep took, for the metrics.
    sweep_secs: f64,
}

impl Running<'_, '_> {
    async fn reload(&mut self, trigger: &str) {
        self.reload.run(self.dp, self.cfg, trigger).await;
        self.stamp = self.reload.file_stamp();
    }

    /// The configuration file changed (a Kubernetes ConfigMap update): reload.
    async fn reload_if_changed(&mut self) {
        let now = self.reload.file_stamp();
        if now.is_some() && now != self.stamp {
            self.stamp = now;
            self.reload.run(self.dp, self.cfg, "file changed").await;
        }
    }

    /// A link or route event. An interface's MTU counts at once (the first-hop MTU check skips
    /// packets no larger than the smallest); the rest waits for the burst to settle (a link
    /// going away takes its routes with it) and is answered once.
    fn netlink_event(&mut self) {
        match self.dp.refresh_mtu_floors() {
            Ok(Some((v4, v6))) => {
                debug!(
                    mtu_floor4 = v4,
                    mtu_floor6 = v6,
                    "interface MTU floors changed"
                )
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot update the interface MTU floors"),
        }
        self.resync_at = Some(tokio::time::Instant::now() + EVENT_SETTLE);
    }

    /// An admin socket or metrics request.
    async fn answer(&mut self, req: nat64_daemon::admin::Request) {
        use nat64_daemon::admin::Command;
        let reply = match &req.command {
            Command::Ready => self.readiness(),
            Command::Metrics => self.metrics(),
            command => {
                // Run-time EAM changes move routes too.
                let before = self.cfg.link_routes();
                let reply = nat64_daemon::admin::handle(command, self.dp, self.cfg);
                if self.cfg.link_routes() != before {
                    self.reload.move_routes(before, self.cfg).await;
                }
                reply
            }
        };
        let _ = req.reply.send(reply);
    }

    /// Ready when every configured interface has the dataplane attached and the translator
    /// link (if configured) is up: an interface that went away, or a re-attach that failed,
    /// makes the node unready until it is put right (`/readyz` answers 503 with the reason).
    fn readiness(&self) -> nat64_daemon::admin::Reply {
        use nat64_daemon::admin::Reply;
        let attached: std::collections::BTreeSet<&str> = self.dp.attached().collect();
        let missing: Vec<&str> = self
            .cfg
            .interfaces
            .iter()
            .map(|i| i.name.as_str())
            .filter(|n| !attached.contains(n))
            .collect();
        if !missing.is_empty() {
            return Reply::Failed(format!("not attached to {}", missing.join(", ")));
        }
        if self.cfg.translator_link.0.is_some() && self.reload.link.is_none() {
            return Reply::Failed("the translator link is down".into());
        }
        Reply::Done(String::new())
    }

    /// The Prometheus exposition text.
    fn metrics(&self) -> nat64_daemon::admin::Reply {
        let stats = match self.dp.stats() {
            Ok(s) => s,
            Err(e) => return nat64_daemon::admin::Reply::Failed(e.to_string()),
        };
        let snap = nat64_daemon::metrics::Snapshot {
            stats: &stats,
            bindings: self.cfg.stateful.as_ref().map(|_| self.usage),
            sweep_seconds: self.sweep_secs,
            max_bindings: self.cfg.stateful.as_ref().map_or(0, |s| s.max_bindings),
            attached: self.dp.attached().count(),
            stateful: self.cfg.stateful.as_ref(),
        };
        nat64_daemon::metrics::render(&snap)
            .map_err(|e| e.to_string())
            .into()
    }

    /// One pass of the sweeper: sessions and bindings expired, held ports released, per-client
    /// counts restored (`bindings::Tables::sweep`), and the binding log.
    fn sweep(&mut self) {
        let Some(st) = &self.cfg.stateful else { return };
        let started = std::time::Instant::now();
        let log = &mut self.binding_log;
        let r = self
            .dp
            .bindings()
            .map_err(anyhow::Error::from)
            .and_then(|mut t| {
                let r = t
                    .sweep(
                        st,
                        nat64_daemon::bindings::now_ns(),
                        st.max_bindings as usize,
                    )
                    .map_err(anyhow::Error::from);
                if st.log_bindings {
                    t.report_changes(log, st.max_bindings as usize);
                }
                r
            });
        match r {
            Ok(s) => {
                self.usage = s;
                self.sweep_secs = started.elapsed().as_secs_f64();
                if s.expired > 0 {
                    info!(
                        expired = s.expired,
                        tcp = s.live.tcp,
                        udp = s.live.udp,
                        icmp = s.live.icmp,
                        sessions_expired = s.sessions_expired,
                        "bindings expired"
                    );
                }
            }
            Err(e) => warn!(error = %e, "sweeping bindings failed"),
        }
    }

    /// Held SYNs whose 6 seconds are up get their Port Unreachable (`held_syns`).
    fn answer_held_syns(&mut self) {
        let now = nat64_daemon::bindings::now_ns();
        match nat64_daemon::held_syns::answer_expired(self.dp, self.cfg, now, 4096) {
            Ok(a) if a.sent + a.unanswered > 0 => debug!(
                sent = a.sent,
                unanswered = a.unanswered,
                "held SYNs answered with Port Unreachable"
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "answering held SYNs failed"),
        }
    }

    /// The periodic summary of the counters in the log (`stats_interval_secs`).
    fn log_counters(&self) {
        let usage = &self.usage;
        match self.dp.stats() {
            Ok(s) => info!(
                translated_6to4 = s.translated(nat64_common::Dir::V6ToV4),
                translated_4to6 = s.translated(nat64_common::Dir::V4ToV6),
                dropped_6to4 = s.dropped(nat64_common::Dir::V6ToV4),
                dropped_4to6 = s.dropped(nat64_common::Dir::V4ToV6),
                bindings_tcp = usage.live.tcp,
                bindings_udp = usage.live.udp,
                bindings_icmp = usage.live.icmp,
                sessions_tcp = usage.sessions.tcp,
                sessions_udp = usage.sessions.udp,
                sessions_icmp = usage.sessions.icmp,
                ports_held = usage.held,
                "counters"
            ),
            Err(e) => warn!(error = %e, "reading counters failed"),
        }
    }
}

/// How often the routes into the translator link are written again (replace: a no-op when
/// they are intact).
pub(crate) const ROUTE_RESYNC: Duration = Duration::from_secs(10);

/// How long a burst of netlink events must settle before the daemon re-syncs.
pub(crate) const EVENT_SETTLE: Duration = Duration::from_millis(200);
