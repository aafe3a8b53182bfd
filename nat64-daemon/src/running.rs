//! The running daemon's loop: one `select!` over every event source (signals, the
//! configuration file, netlink events, admin and metrics requests, the sweeper, held SYNs,
//! the counters' summary), each answered by one method of [`Running`].

use std::time::Duration;

use anyhow::Context as _;
use nat64_daemon::binding_log::EventReader;
use nat64_daemon::{Config, Dataplane};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tracing::{debug, info, warn};

use crate::reload::Reload;

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

/// The binding events ready to read, or never when there is no ring buffer.
async fn next_events(
    events: &mut Option<AsyncFd<EventReader>>,
) -> std::io::Result<tokio::io::unix::AsyncFdReadyMutGuard<'_, EventReader>> {
    match events {
        Some(e) => e.readable_mut().await,
        None => std::future::pending().await,
    }
}

/// How many binding events one turn of the loop reads before it lets the other arms run.
const EVENTS_PER_TURN: usize = 4096;

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
    // The dataplane's binding events (`binding_log`), read as they come.
    let mut binding_events = match dp.take_events() {
        // SAFETY: the reader owns the ring buffer's descriptor for as long as it lives, and
        // `as_raw_fd` always returns that one.
        Some(ring) => match unsafe {
            AsyncFd::register_with_interest(EventReader::new(ring), tokio::io::Interest::READABLE)
        } {
            Ok(fd) => Some(fd),
            Err(e) => {
                let e = std::io::Error::from(e);
                warn!(error = %e, "cannot poll the binding events; bindings are not logged");
                None
            }
        },
        None => None,
    };
    let mut r = Running {
        stamp: crate::reload::STARTUP_STAMP
            .get()
            .copied()
            .unwrap_or_else(|| reload.file_stamp()),
        dp,
        cfg,
        reload,
        resync_at: None,
        usage: Default::default(),
        event_counts: Default::default(),
        sweep_secs: 0.0,
        ipfix: None,
    };
    r.sync_binding_sinks();
    loop {
        tokio::select! {
            _ = sigint.recv() => { info!("SIGINT: shutting down"); break; }
            _ = sigterm.recv() => { info!("SIGTERM: shutting down"); break; }
            Ok(mut ready) = next_events(&mut binding_events) => {
                let reader = ready.get_inner_mut();
                if reader.drain(EVENTS_PER_TURN) < EVENTS_PER_TURN {
                    ready.clear_ready();
                }
                r.event_counts = ready.get_inner().counts;
            }
            _ = sighup.recv() => r.reload("SIGHUP").await,
            _ = resync.tick() => {
                r.refresh_mtu_floors();
                r.reload.resync(r.dp, r.cfg, crate::reload::PERIODIC).await
            }
            Some(()) = next_event(&mut events) => r.netlink_event(),
            _ = sleep_until_some(r.resync_at) => {
                r.resync_at = None;
                r.reload.resync(r.dp, r.cfg, "netlink event").await;
                // A reload that waited for a missing interface: again, now that links changed.
                if r.reload.waiting.get() {
                    r.reload("links changed, after a reload that waited for an interface").await;
                }
            }
            _ = watch.tick(), if watching => r.reload_if_changed().await,
            Some(req) = next_request(&mut admin) => r.answer(req).await,
            _ = sweep.tick(), if stateful => r.sweep(),
            _ = held_syns.tick(), if stateful => r.answer_held_syns(),
            _ = tick.tick(), if stats_interval_secs > 0 => r.log_counters(),
        }
    }
    // A clean stop reads what the dataplane pushed last, so that no binding goes unlogged.
    if let Some(fd) = binding_events.as_mut() {
        let reader = fd.get_mut();
        while reader.drain(EVENTS_PER_TURN) == EVENTS_PER_TURN {}
    }
    // And sends their IPFIX records before it goes.
    nat64_daemon::binding_log::configure(false, false, None);
    if let Some(e) = r.ipfix.take() {
        e.finish(Duration::from_secs(2)).await;
    }
    Ok(())
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
    /// Binding events read so far (`nat64_binding_events_total`).
    event_counts: nat64_daemon::binding_log::EventCounts,
    /// How long the last sweep took, for the metrics.
    sweep_secs: f64,
    /// The IPFIX exporter running (`stateful.ipfix_*`).
    ipfix: Option<nat64_daemon::ipfix::Exporter>,
}

impl Running<'_, '_> {
    async fn reload(&mut self, trigger: &str) {
        // The stamp before the file is read: a change that lands while the reload runs (it
        // verifies programs for most of a second) is then seen as a change, and reloaded.
        self.stamp = self.reload.file_stamp();
        self.reload.run(self.dp, self.cfg, trigger).await;
        self.sync_binding_sinks();
    }

    /// Points the binding events where the configuration says (`binding_log::configure`):
    /// the log (`log_bindings`) and the IPFIX exporter, started, restarted with new settings,
    /// or ended (its sender dropped) as `stateful.ipfix_collector` says.
    fn sync_binding_sinks(&mut self) {
        let st = self.cfg.stateful.as_ref();
        let want = st.and_then(|s| s.ipfix());
        if want != self.ipfix.as_ref().map(|e| e.settings) {
            // The exporter replaced ends when `configure` below drops its last sender.
            self.ipfix = want.and_then(|s| match nat64_daemon::ipfix::Exporter::start(s) {
                Ok(e) => {
                    info!(collector = %s.collector, observation_domain = s.domain, "exporting binding events as IPFIX");
                    Some(e)
                }
                Err(e) => {
                    warn!(collector = %s.collector, error = %e, "cannot export IPFIX");
                    None
                }
            });
        }
        nat64_daemon::binding_log::configure(
            st.is_some_and(|s| s.log_bindings),
            st.is_some_and(|s| s.port_block_size != 0),
            self.ipfix.as_ref().map(|e| e.sender()),
        );
    }

    /// The configuration file changed (a Kubernetes ConfigMap update): reload.
    async fn reload_if_changed(&mut self) {
        let now = self.reload.file_stamp();
        if now.is_some() && now != self.stamp {
            self.stamp = now;
            self.reload.run(self.dp, self.cfg, "file changed").await;
            self.sync_binding_sinks();
        }
    }

    /// A link or route event. An interface's MTU counts at once (the first-hop MTU check skips
    /// packets no larger than the smallest); the rest waits for the burst to settle (a link
    /// going away takes its routes with it) and is answered once.
    fn netlink_event(&mut self) {
        self.refresh_mtu_floors();
        self.resync_at = Some(tokio::time::Instant::now() + EVENT_SETTLE);
    }

    /// The interfaces' MTU floors again: on a link event, and at every periodic resync, since
    /// an interface's IPv6 MTU set by a router advertisement changes with no link event.
    fn refresh_mtu_floors(&mut self) {
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
        if self.cfg.translator_link.0.is_some() {
            // The link as last set up, and still there: one deleted under the daemon, whose
            // re-creation failed, stays recorded (the re-sync retries it) but is not up.
            let up = self.reload.link.as_ref().is_some_and(|l| {
                nat64_daemon::sys::if_index(&l.name) == Some(l.index)
                    && nat64_daemon::sys::if_index(&l.peer) == Some(l.peer_index)
            });
            if !up {
                return Reply::Failed("the translator link is down".into());
            }
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
            binding_events: self.event_counts,
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
        let mut probes = Vec::new();
        let r = self
            .dp
            .bindings()
            .map_err(anyhow::Error::from)
            .and_then(|mut t| {
                t.sweep_probing(
                    st,
                    nat64_daemon::bindings::now_ns(),
                    st.max_bindings as usize,
                    &mut probes,
                )
                .map_err(anyhow::Error::from)
            });
        nat64_daemon::tcp_probe::send(self.dp, self.cfg, &probes);
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
            // The kernel refused the errors: a warning (once a pass), not a debug line, so
            // that an operator learns that IPv4 hosts' SYNs go unanswered.
            Ok(nat64_daemon::held_syns::Answered {
                sent,
                unanswered,
                inject_error: Some(error),
            }) => warn!(
                sent,
                unanswered,
                %error,
                "held SYNs could not all be answered with Port Unreachable"
            ),
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
