//! The binding log (`log_bindings`): one line per binding made and one per binding removed,
//! each tying a pool4 transport address, as an IPv4 server logs it, to the IPv6 client (RFC
//! 6888 REQ-12; the ingress scenario's "the client's address stays recoverable").
//!
//! The dataplane makes bindings on its own and pushes an event for each (`EVENTS`, a BPF ring
//! buffer) at once; the daemon reads them as they come, so a binding that lives less than a
//! sweep is logged too, and one made just before a stop is read at the stop (or, with pinned
//! state and no daemon running, by the next daemon). Removals are the daemon's own doing (the
//! sweeper, an operator's flush): it logs them where it removes them.

use std::{
    net::{SocketAddrV4, SocketAddrV6},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aya::maps::{MapData, RingBuf};
use nat64_common::{
    DropReason,
    state::{BindingEvent, EVENT_CREATED, EVENT_REFUSED},
};

use crate::config::Protocol;

/// Events read from the dataplane since start, by kind (`nat64_binding_events_total`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventCounts {
    pub created: u64,
    pub refused: u64,
}

/// Reads the dataplane's binding events.
pub struct EventReader {
    ring: RingBuf<MapData>,
    /// Whether each binding gets its log line (`log_bindings`).
    pub log: bool,
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
    pub fn new(ring: RingBuf<MapData>, log: bool) -> Self {
        Self {
            ring,
            log,
            counts: EventCounts::default(),
            refusal_logged: None,
            refusals_unlogged: 0,
        }
    }

    /// Reads every event waiting (at most `budget`): counts them, and logs them when
    /// `log_bindings` is on. Returns how many were read.
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
        match ev.kind {
            EVENT_CREATED => {
                self.counts.created += 1;
                if self.log {
                    let (protocol, ipv6, ipv4) =
                        endpoints(ev.proto, ev.addr6, ev.port6, ev.addr4, ev.port4);
                    tracing::info!(
                        protocol,
                        %ipv6,
                        %ipv4,
                        created_unix_ms = unix_ms(ev.time_ns),
                        "binding created"
                    );
                }
            }
            EVENT_REFUSED => {
                self.counts.refused += 1;
                if !self.log {
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
                let reason = DropReason::from_index(ev.reason.into()).map_or("?", |r| r.name());
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
            _ => {}
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

/// Logs a binding the daemon removed, with why (`expired`, `flushed`, `removed by the
/// operator`, `stopped`).
pub fn removed(
    proto: u8,
    addr6: [u8; 16],
    port6: [u8; 2],
    addr4: [u8; 4],
    port4: [u8; 2],
    why: &str,
) {
    let (protocol, ipv6, ipv4) = endpoints(proto, addr6, port6, addr4, port4);
    tracing::info!(protocol, %ipv6, %ipv4, why, "binding removed");
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
