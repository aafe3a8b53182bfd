//! Prometheus metrics and the probe endpoints, on their own listener (`metrics_listen`).
//!
//! - `/metrics`: the dataplane's counters (the same series names as `stats::series`), binding
//!   usage, table size, attached programs and build info, in the text exposition format.
//! - `/healthz`: the daemon's HTTP side is alive.
//! - `/readyz`: 200 once the programs are attached and the configuration applied (the main
//!   loop answers), 503 otherwise.
//!
//! The values are read when scraped: the handler asks the main loop, which owns the dataplane,
//! through the same request channel as the admin socket.

use std::net::SocketAddr;

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use nat64_common::{Counter, Dir, DropReason};
use prometheus::{
    Encoder as _, Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    admin::{Command, Reply, Request},
    bindings::Sweep,
    stats::Stats,
};

/// What the main loop knows at scrape time.
pub struct Snapshot<'a> {
    pub stats: &'a Stats,
    /// The last sweep's view of the binding tables (stateful NAT64 only).
    pub bindings: Option<Sweep>,
    /// Size of each binding table.
    pub max_bindings: u32,
    /// How long the last sweep of the binding tables took.
    pub sweep_seconds: f64,
    /// Programs attached (interfaces plus the translator link's two ends).
    pub attached: usize,
    /// The stateful configuration (pool4 and its ranges), for the port capacity.
    pub stateful: Option<&'a crate::config::Stateful>,
    /// Binding events read from the dataplane since start.
    pub binding_events: crate::binding_log::EventCounts,
}

/// Renders the exposition text. Counters come from the dataplane as absolute values, so each
/// scrape builds its own registry.
pub fn render(s: &Snapshot<'_>) -> Result<String, prometheus::Error> {
    let r = Registry::new();
    // Every dataplane counter, one family at a time, as `Counter::series` names it.
    let mut families: Vec<(&'static str, IntCounterVec)> = Vec::new();
    for c in Counter::all() {
        let series = c.series();
        let names: Vec<&str> = series.labels().map(|(k, _)| k).collect();
        let values: Vec<&str> = series.labels().map(|(_, v)| v).collect();
        let vec = match families.iter().position(|(f, _)| *f == series.family) {
            Some(i) => &families[i].1,
            None => {
                let v = IntCounterVec::new(Opts::new(series.family, series.help), &names)?;
                families.push((series.family, v));
                &families[families.len() - 1].1
            }
        };
        vec.with_label_values(&values).inc_by(s.stats.get(c));
    }
    for (_, v) in families {
        r.register(Box::new(v))?;
    }
    // RFC 6146 session creation: the dataplane refuses a new flow for one of three reasons,
    // the same events as the matching drop reasons, gathered in one family for alerting.
    let failures = IntCounterVec::new(
        Opts::new(
            "nat64_session_creation_failures_total",
            "New stateful flows refused, by reason (no free port, binding or session table full, the client's /64 at its limit).",
        ),
        &["reason"],
    )?;
    for reason in [
        DropReason::PoolExhausted,
        DropReason::TableFull,
        DropReason::ClientLimit,
    ] {
        failures
            .with_label_values(&[reason.name()])
            .inc_by(s.stats.get(Counter::Dropped(Dir::V6ToV4, reason)));
    }
    r.register(Box::new(failures))?;

    let attached = IntGauge::new(
        "nat64_attached_programs",
        "Programs the daemon has attached (XDP or TC): one per configured interface, and the translator link's two ends. 0 means nothing is translated.",
    )?;
    attached.set(s.attached as i64);
    r.register(Box::new(attached))?;
    let info = IntGaugeVec::new(
        Opts::new("nat64_build_info", "The running nat64d's version."),
        &["version"],
    )?;
    info.with_label_values(&[crate::VERSION]).set(1);
    r.register(Box::new(info))?;

    if let Some(b) = s.bindings {
        use std::sync::atomic::Ordering::Relaxed;
        register_counters(
            &r,
            "nat64_binding_events_total",
            "Binding events since the daemon started, by event: each binding made (created) and each refused (refused), read from the dataplane; with port blocks, each block allocated (block_allocated, from the dataplane; its bindings are not counted one by one) and released (block_released, by the sweeper). With log_bindings each is a log line.",
            "event",
            &[
                ("created", s.binding_events.created),
                ("refused", s.binding_events.refused),
                ("block_allocated", s.binding_events.block_allocated),
                (
                    "block_released",
                    crate::binding_log::BLOCKS_RELEASED.load(Relaxed),
                ),
            ],
        )?;
        register_counters(
            &r,
            "nat64_tcp_probes_total",
            "TCP probes since the daemon started (RFC 6146 section 3.5.2.2: an empty ACK to the IPv6 host of an established session whose timer ran out, which a live connection answers), by outcome: sent, or failed (no IPv6 address for the IPv4 endpoint, the binding gone, or the kernel refused it).",
            "outcome",
            &[
                ("sent", crate::tcp_probe::SENT.load(Relaxed)),
                ("failed", crate::tcp_probe::FAILED.load(Relaxed)),
            ],
        )?;
        register_counters(
            &r,
            "nat64_ipfix_records_total",
            "IPFIX records of binding events (stateful.ipfix_collector), by outcome: queued for the exporter, or dropped because its queue was full.",
            "outcome",
            &[
                ("queued", crate::binding_log::IPFIX_QUEUED.load(Relaxed)),
                ("dropped", crate::binding_log::IPFIX_DROPPED.load(Relaxed)),
            ],
        )?;
        let in_use = IntGaugeVec::new(
            Opts::new(
                "nat64_bindings",
                "Stateful NAT64 bindings in use, by protocol (as of the last sweep).",
            ),
            &["protocol"],
        )?;
        in_use.with_label_values(&["tcp"]).set(b.live.tcp as i64);
        in_use.with_label_values(&["udp"]).set(b.live.udp as i64);
        in_use.with_label_values(&["icmp"]).set(b.live.icmp as i64);
        r.register(Box::new(in_use))?;
        let held = IntGauge::new(
            "nat64_ports_held",
            "pool4 ports of expired bindings still held down (RFC 6888 REQ-8).",
        )?;
        held.set(b.held as i64);
        r.register(Box::new(held))?;
        let blocks = IntGaugeVec::new(
            Opts::new(
                "nat64_port_blocks",
                "Port blocks allocated to client /64s (stateful.port_block_size), by protocol (as of the last sweep).",
            ),
            &["protocol"],
        )?;
        blocks.with_label_values(&["tcp"]).set(b.blocks.tcp as i64);
        blocks.with_label_values(&["udp"]).set(b.blocks.udp as i64);
        blocks
            .with_label_values(&["icmp"])
            .set(b.blocks.icmp as i64);
        r.register(Box::new(blocks))?;
        let size = IntGauge::new(
            "nat64_binding_table_size",
            "Capacity of each binding table (max_bindings).",
        )?;
        size.set(s.max_bindings as i64);
        r.register(Box::new(size))?;
        let sessions = IntGaugeVec::new(
            Opts::new(
                "nat64_sessions",
                "Stateful NAT64 sessions (RFC 6146: a binding and one remote IPv4 endpoint) in use, by protocol (as of the last sweep).",
            ),
            &["protocol"],
        )?;
        sessions
            .with_label_values(&["tcp"])
            .set(b.sessions.tcp as i64);
        sessions
            .with_label_values(&["udp"])
            .set(b.sessions.udp as i64);
        sessions
            .with_label_values(&["icmp"])
            .set(b.sessions.icmp as i64);
        r.register(Box::new(sessions))?;
        if let Some(st) = s.stateful {
            let size = IntGauge::new(
                "nat64_session_table_size",
                "Capacity of the session table (max_sessions).",
            )?;
            size.set(st.session_capacity() as i64);
            r.register(Box::new(size))?;
        }
        if let Some(st) = s.stateful {
            let used = IntGaugeVec::new(
                Opts::new(
                    "nat64_pool4_ports_in_use",
                    "pool4 ports (ICMP identifiers) bound or held, by prefix and protocol (as of the last sweep).",
                ),
                &["prefix", "protocol"],
            )?;
            let free = IntGaugeVec::new(
                Opts::new(
                    "nat64_pool4_ports_free",
                    "pool4 ports (ICMP identifiers) free for new bindings, by prefix and protocol (as of the last sweep).",
                ),
                &["prefix", "protocol"],
            )?;
            for (i, p) in st.pool4.iter().enumerate() {
                let prefix = p.to_string();
                let addresses = 1u64 << (32 - p.prefix_len());
                for (j, proto) in ["tcp", "udp", "icmp"].into_iter().enumerate() {
                    let range = st.range(j);
                    let capacity = addresses * (u64::from(range.1) - u64::from(range.0) + 1);
                    let n = b.ports_used.get(i).map_or(0, |row| row[j]);
                    used.with_label_values(&[&prefix, proto]).set(n as i64);
                    free.with_label_values(&[&prefix, proto])
                        .set(capacity.saturating_sub(n) as i64);
                }
            }
            r.register(Box::new(used))?;
            r.register(Box::new(free))?;
        }
        let sweep = Gauge::new(
            "nat64_sweep_duration_seconds",
            "How long the last sweep of the binding tables took.",
        )?;
        sweep.set(s.sweep_seconds);
        r.register(Box::new(sweep))?;
    }

    let mut out = Vec::new();
    TextEncoder::new().encode(&r.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Registers the counter `name` with one series per `(value of label, count)`.
fn register_counters(
    r: &Registry,
    name: &str,
    help: &str,
    label: &str,
    series: &[(&str, u64)],
) -> prometheus::Result<()> {
    let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
    for (value, n) in series {
        c.with_label_values(&[*value]).inc_by(*n);
    }
    r.register(Box::new(c))
}

/// Serves the endpoints on `addr` in the background; requests go to the main loop on `tx`.
pub async fn serve(addr: SocketAddr, tx: mpsc::Sender<Request>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(tx);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok(())
}

/// Asks the main loop and waits for its answer (`None`: it is not running).
async fn ask(tx: &mpsc::Sender<Request>, command: Command) -> Option<Reply> {
    let (reply, answer) = oneshot::channel();
    tx.send(Request { command, reply }).await.ok()?;
    answer.await.ok()
}

async fn metrics(State(tx): State<mpsc::Sender<Request>>) -> impl IntoResponse {
    match ask(&tx, Command::Metrics).await {
        Some(Reply::Done(text)) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            text,
        ),
        Some(Reply::Failed(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            format!("error: {e}\n"),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/plain")],
            "shutting down\n".to_string(),
        ),
    }
}

/// 200 once the main loop runs with every part up; 503 with the reason while it starts (it
/// does not answer yet: the dataplane is still loading or attaching), when a part is down (an
/// interface gone, a failed re-attach, no translator link) and once it stops.
async fn readyz(State(tx): State<mpsc::Sender<Request>>) -> impl IntoResponse {
    match tokio::time::timeout(READY_WAIT, ask(&tx, Command::Ready)).await {
        Ok(Some(Reply::Done(_))) => (StatusCode::OK, "ready\n".to_string()),
        Ok(Some(Reply::Failed(why))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
        Ok(None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n".to_string(),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting\n".to_string(),
        ),
    }
}

/// How long `/readyz` waits for the main loop, which answers at once when it runs.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
