//! The binding log (`log_bindings`): one line per binding made and one per binding removed,
//! each tying a pool4 transport address, as an IPv4 server logs it, to the IPv6 client (RFC
//! 6888 REQ-12; the ingress scenario's "the client's address stays recoverable").
//!
//! The dataplane makes bindings on its own and pushes an event for each (`EVENTS`, a BPF ring
//! buffer) at once; the daemon reads them as they come, so a binding that lives less than a
//! sweep is logged too, and one made just before a stop is read at the stop (or, with pinned
//! state and no daemon running, by the next daemon). Removals are the daemon's own doing (the
//! sweeper, an operator's flush): it reports them where it removes them.
//!
//! Where the events go is set once per configuration ([`configure`]): log lines with
//! `log_bindings`, IPFIX records with `ipfix_collector` (`ipfix`), both, or neither.

use std::{
    net::{SocketAddrV4, SocketAddrV6},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aya::maps::{MapData, RingBuf};
use nat64_common::{
    DropReason,
    state::{BindingEvent, EVENT_BLOCK, EVENT_CREATED, EVENT_REFUSED},
};

use crate::{
    config::Protocol,
    ipfix::{self, NatRecord, RecordSender},
};

/// Where binding events go: the log, the IPFIX exporter; and whether port blocks are the
/// record (`stateful.port_block_size`), in which case bindings going are not reported one by one.
struct Sinks {
    log: bool,
    blocks: bool,
    ipfix: Option<RecordSender>,
}

static SINKS: Mutex<Sinks> = Mutex::new(Sinks {
    log: false,
    blocks: false,
    ipfix: None,
});

/// Port blocks the daemon released since it started
/// (`nat64_binding_events_total{event="block_released"}`).
pub static BLOCKS_RELEASED: AtomicU64 = AtomicU64::new(0);

/// IPFIX records dropped because the exporter's queue was full
/// (`nat64_ipfix_records_total{outcome="dropped"}`).
pub static IPFIX_DROPPED: AtomicU64 = AtomicU64::new(0);
/// IPFIX records handed to the exporter (`nat64_ipfix_records_total{outcome="queued"}`).
pub static IPFIX_QUEUED: AtomicU64 = AtomicU64::new(0);

/// Sets where binding events go: log lines (`log_bindings`), and IPFIX records to this
/// exporter (`None`: no export; a previous exporter ends when its sender is dropped here);
/// `blocks`: port blocks are on, and their records replace those of each binding.
pub fn configure(log: bool, blocks: bool, ipfix: Option<RecordSender>) {
    let mut s = SINKS.lock().unwrap_or_else(|e| e.into_inner());
    s.log = log;
    s.blocks = blocks;
    s.ipfix = ipfix;
}

fn logging() -> bool {
    SINKS.lock().map(|s| s.log).unwrap_or(false)
}

fn blocks_on() -> bool {
    SINKS.lock().map(|s| s.blocks).unwrap_or(false)
}

fn export(r: NatRecord) {
    let s = SINKS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tx) = &s.ipfix {
        if tx.try_send(r).is_ok() {
            IPFIX_QUEUED.fetch_add(1, Ordering::Relaxed);
        } else {
            IPFIX_DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The IANA protocol number of a binding's protocol on the IPv6 side.
fn protocol_number6(proto: u8) -> u8 {
    match Protocol::from_number(proto) {
        Some(Protocol::Icmp) => 58,
        _ => proto,
    }
}

/// Events read from the dataplane since start, by kind (`nat64_binding_events_total`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventCounts {
    pub created: u64,
    pub refused: u64,
    /// Port blocks allocated by the dataplane.
    pub block_allocated: u64,
}

/// Reads the dataplane's binding events.
pub struct EventReader {
    ring: RingBuf<MapData>,
    pub counts: EventCounts,
    /// Refusals come in floods when a pool or table is exhausted: one line a second at most,
    /// with how many were not written since (every refusal is counted in the metrics).
    refusal_logged: Option<Instant>,
    refusals_unlogged: u64,
}

impl std::os::fd::AsRawFd for EventReader {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.ring.as_raw_fd()
    }
}

impl EventReader {
    pub fn new(ring: RingBuf<MapData>) -> Self {
        Self {
            ring,
            counts: EventCounts::default(),
            refusal_logged: None,
            refusals_unlogged: 0,
        }
    }

    /// Reads every event waiting (at most `budget`): counts them, logs them (`log_bindings`)
    /// and exports them (IPFIX). Returns how many were read.
    pub fn drain(&mut self, budget: usize) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(item) = self.ring.next() else { break };
            n += 1;
            if item.len() < std::mem::size_of::<BindingEvent>() {
                continue;
            }
            // SAFETY: the record holds a whole `BindingEvent` (checked above), a plain
            // `#[repr(C)]` struct of integers written by the dataplane; read unaligned.
            let ev: BindingEvent =
                unsafe { std::ptr::read_unaligned(item.as_ptr() as *const BindingEvent) };
            drop(item);
            self.record(&ev);
        }
        n
    }

    fn record(&mut self, ev: &BindingEvent) {
        let log = logging();
        let time_ms = unix_ms(ev.time_ns);
        match ev.kind {
            EVENT_CREATED => {
                self.counts.created += 1;
                export(NatRecord {
                    time_ms,
                    event: ipfix::NAT64_BIB_CREATE,
                    protocol: protocol_number6(ev.proto),
                    source6: ev.addr6.into(),
                    port6: u16::from_be_bytes(ev.port6),
                    source4: ev.addr4.into(),
                    port4: u16::from_be_bytes(ev.port4),
                    quota: 0,
                    ports: (0, 0),
                });
                if log {
                    let (protocol, ipv6, ipv4) =
                        endpoints(ev.proto, ev.addr6, ev.port6, ev.addr4, ev.port4);
                    tracing::info!(
                        protocol,
                        %ipv6,
                        %ipv4,
                        created_unix_ms = time_ms,
                        "binding created"
                    );
                }
            }
            EVENT_REFUSED => {
                self.counts.refused += 1;
                let reason = DropReason::from_index(ev.reason.into());
                let (event, quota) = match reason {
                    Some(DropReason::ClientLimit) => {
                        (ipfix::QUOTA_EXCEEDED, ipfix::QUOTA_MAX_ENTRIES_PER_USER)
                    }
                    Some(DropReason::TableFull) => {
                        (ipfix::QUOTA_EXCEEDED, ipfix::QUOTA_MAX_BIB_ENTRIES)
                    }
                    _ => (ipfix::NAT_PORTS_EXHAUSTED, 0),
                };
                export(NatRecord {
                    time_ms,
                    event,
                    protocol: protocol_number6(ev.proto),
                    source6: ev.addr6.into(),
                    port6: u16::from_be_bytes(ev.port6),
                    source4: std::net::Ipv4Addr::UNSPECIFIED,
                    port4: 0,
                    quota,
                    ports: (0, 0),
                });
                if !log {
                    return;
                }
                let due = self
                    .refusal_logged
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if !due {
                    self.refusals_unlogged += 1;
                    return;
                }
                let (protocol, ipv6, _) = endpoints(ev.proto, ev.addr6, ev.port6, [0; 4], [0; 2]);
                let reason = reason.map_or("?", |r| r.name());
                tracing::warn!(
                    protocol,
                    %ipv6,
                    reason,
                    not_logged_before = self.refusals_unlogged,
                    "binding refused"
                );
                self.refusal_logged = Some(Instant::now());
                self.refusals_unlogged = 0;
            }
            EVENT_BLOCK => {
                self.counts.block_allocated += 1;
                block(
                    ev.proto,
                    nat64_common::state::client_key(&ev.addr6),
                    ev.addr4,
                    u16::from_be_bytes(ev.port4),
                    u16::from_be_bytes(ev.port_end),
                    BlockEvent::Allocated,
                    Some(time_ms),
                );
            }
            _ => {}
        }
    }
}

/// What happened to a port block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockEvent {
    /// The dataplane allocated it to a client's /64 (its first binding there, or its other
    /// blocks full).
    Allocated,
    /// The sweeper released it: no binding or held-down port was left in it.
    Released,
}

/// Reports a port block allocated or released (`stateful.port_block_size`): a log line
/// (`log_bindings`) and an IPFIX record (natEvent 16 or 17, RFC 8158 section 4.1.1, with
/// portRangeStart and portRangeEnd). One record per block stands for every binding made in it:
/// an IPv4 source port, as a server logged it, leads to the /64 whose block held that port
/// at that time. `time_ms`: when it happened, if not now.
pub fn block(
    proto: u8,
    client: [u8; 8],
    addr4: [u8; 4],
    first: u16,
    last: u16,
    event: BlockEvent,
    time_ms: Option<u64>,
) {
    if event == BlockEvent::Released {
        BLOCKS_RELEASED.fetch_add(1, Ordering::Relaxed);
    }
    let mut a = [0u8; 16];
    a[..8].copy_from_slice(&client);
    let client6 = std::net::Ipv6Addr::from(a);
    let time_ms = time_ms.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    });
    export(NatRecord {
        time_ms,
        event: match event {
            BlockEvent::Allocated => ipfix::PORT_BLOCK_ALLOCATION,
            BlockEvent::Released => ipfix::PORT_BLOCK_DEALLOCATION,
        },
        protocol: protocol_number6(proto),
        source6: client6,
        port6: 0,
        source4: addr4.into(),
        port4: 0,
        quota: 0,
        ports: (first, last),
    });
    if logging() {
        let protocol = Protocol::from_number(proto).map_or("?", |p| p.name());
        let ipv4 = std::net::Ipv4Addr::from(addr4);
        let client = format!("{client6}/64");
        let ports = format!("{first}-{last}");
        match event {
            BlockEvent::Allocated => tracing::info!(
                protocol,
                client,
                %ipv4,
                ports,
                allocated_unix_ms = time_ms,
                "port block allocated"
            ),
            BlockEvent::Released => {
                tracing::info!(protocol, client, %ipv4, ports, "port block released")
            }
        }
    }
}

/// A binding's two transport addresses, for a log line.
pub fn endpoints(
    proto: u8,
    addr6: [u8; 16],
    port6: [u8; 2],
    addr4: [u8; 4],
    port4: [u8; 2],
) -> (&'static str, SocketAddrV6, SocketAddrV4) {
    (
        Protocol::from_number(proto).map_or("?", |p| p.name()),
        SocketAddrV6::new(addr6.into(), u16::from_be_bytes(port6), 0, 0),
        SocketAddrV4::new(addr4.into(), u16::from_be_bytes(port4)),
    )
}

/// Reports a binding the daemon removed, with why (`expired`, `flushed`, `removed by the
/// operator`): a log line (`log_bindings`, or `always_log`) and an IPFIX record.
pub fn removed(
    proto: u8,
    addr6: [u8; 16],
    port6: [u8; 2],
    addr4: [u8; 4],
    port4: [u8; 2],
    why: &str,
    always_log: bool,
) {
    // With port blocks, the block's records stand for its bindings (an operator's removal is
    // still written).
    if blocks_on() && !always_log {
        return;
    }
    export(NatRecord {
        time_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        event: ipfix::NAT64_BIB_DELETE,
        protocol: protocol_number6(proto),
        source6: addr6.into(),
        port6: u16::from_be_bytes(port6),
        source4: addr4.into(),
        port4: u16::from_be_bytes(port4),
        quota: 0,
        ports: (0, 0),
    });
    if always_log || logging() {
        let (protocol, ipv6, ipv4) = endpoints(proto, addr6, port6, addr4, port4);
        tracing::info!(protocol, %ipv6, %ipv4, why, "binding removed");
    }
}

/// Wall-clock milliseconds of a dataplane timestamp (`bpf_ktime_get_coarse_ns`, the monotonic
/// clock): events may wait in the ring (with no daemon running), so the line says when the
/// binding was made, not when it was read.
fn unix_ms(time_ns: u64) -> u64 {
    let age = Duration::from_nanos(crate::bindings::now_ns().saturating_sub(time_ns));
    SystemTime::now()
        .checked_sub(age)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}
