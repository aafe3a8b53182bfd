//! Stateful NAT64 bindings from the daemon's side: expiring them (RFC 6146 section 3.5 timers)
//! and reporting what is in use. The dataplane creates bindings; only the daemon removes them.

use std::time::Duration;

use aya::maps::{HashMap, MapData, MapError};
use nat64_common::state::{
    BIB_F_STATIC, BIB_ICMP, BIB_TCP, BIB_UDP, Bib4Key, Bib4Value, Bib6Key, Bib6Value,
    tcp_established,
};

use crate::config::Stateful;

/// Both binding tables, borrowed from the loaded dataplane.
pub struct Tables<'a> {
    pub bib6: HashMap<&'a mut MapData, Bib6Key, Bib6Value>,
    pub bib4: HashMap<&'a mut MapData, Bib4Key, Bib4Value>,
}

/// One binding as both tables describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub key6: Bib6Key,
    pub v6: Bib6Value,
    /// The IPv4-side half; `None` only in the instant between the dataplane's two inserts.
    pub v4: Option<Bib4Value>,
}

impl Binding {
    /// When it was last used from either side (CLOCK_MONOTONIC nanoseconds).
    pub fn last_ns(&self) -> u64 {
        self.v6.last_ns.max(self.v4.map_or(0, |v| v.last_ns))
    }

    fn key4(&self) -> Bib4Key {
        Bib4Key {
            addr4: self.v6.addr4,
            port4: self.v6.port4,
            proto: self.key6.proto,
            _pad: 0,
        }
    }

    /// How long it lives after its last packet.
    pub fn lifetime(&self, st: &Stateful) -> Duration {
        let secs = match self.key6.proto {
            BIB_TCP => {
                if tcp_established(self.v6.tcp, self.v4.map_or(0, |v| v.tcp)) {
                    st.tcp_established_timeout_secs
                } else {
                    st.tcp_transitory_timeout_secs
                }
            }
            BIB_ICMP => st.icmp_timeout_secs,
            _ => st.udp_timeout_secs,
        };
        Duration::from_secs(secs)
    }
}

/// Bindings in use, by protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub tcp: u64,
    pub udp: u64,
    pub icmp: u64,
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Bindings still alive, by protocol (after the sweep).
    pub live: Usage,
    /// Bindings removed.
    pub expired: u64,
}

/// The monotonic clock the dataplane stamps bindings with (`bpf_ktime_get_coarse_ns`).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Tables<'_> {
    /// Every binding, at most `limit` of them.
    pub fn list(&self, limit: usize) -> Vec<Binding> {
        let mut out = Vec::new();
        for item in self.bib6.iter().take(limit) {
            let Ok((key6, v6)) = item else { continue };
            let mut b = Binding { key6, v6, v4: None };
            b.v4 = self.bib4.get(&b.key4(), 0).ok();
            out.push(b);
        }
        out
    }

    /// Removes the bindings idle for longer than their lifetime at `now_ns` (static ones never
    /// expire), looking at no more than `budget` of them (bounded work per pass).
    ///
    /// The IPv6-side entry goes first, so that a packet racing the removal makes a new binding
    /// rather than reviving a half-removed one; the IPv4 side follows.
    pub fn sweep(&mut self, st: &Stateful, now_ns: u64, budget: usize) -> Result<Sweep, MapError> {
        let mut out = Sweep::default();
        for b in self.list(budget) {
            let idle = now_ns.saturating_sub(b.last_ns());
            let keep = b.v6.flags & BIB_F_STATIC != 0 || idle <= b.lifetime(st).as_nanos() as u64;
            if keep {
                match b.key6.proto {
                    BIB_TCP => out.live.tcp += 1,
                    BIB_UDP => out.live.udp += 1,
                    _ => out.live.icmp += 1,
                }
                continue;
            }
            self.bib6.remove(&b.key6)?;
            match self.bib4.remove(&b.key4()) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(e),
            }
            out.expired += 1;
        }
        Ok(out)
    }
}
