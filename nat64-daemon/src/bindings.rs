//! Stateful NAT64 bindings and sessions from the daemon's side: expiring them (RFC 6146
//! section 3.5 timers) and reporting what is in use. The dataplane creates both; only the
//! daemon removes them. A session (a binding and one remote IPv4 endpoint) lives by its own
//! timer and TCP state; a binding lives while one of its sessions does.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddrV4, SocketAddrV6},
    time::Duration,
};

use aya::maps::{HashMap, MapData, MapError};
use nat64_common::state::{
    BIB_F_FILE, BIB_F_HELD, BIB_F_STATIC, BIB_ICMP, BIB_TCP, BIB_UDP, BLOCK_F_RELEASING, Bib4Key,
    Bib4Value, Bib6Key, Bib6Value, BlockKey, BlockOwner, ClientBlocks, ClientBlocksKey,
    MAX_CLIENT_BLOCKS, PeerKey, SessionKey, SessionValue, TCP_TRANS, TcpLifetime, block_of_port,
    block_ports, client_key, tcp_established, tcp_lifetime,
};

use crate::config::Stateful;

/// Both binding tables and the per-client counts, borrowed from the loaded dataplane.
pub struct Tables<'a> {
    /// The descriptors of BIB6 and BIB4, for batch lookups (see [`Tables::list`]).
    pub batch_fds: Option<(std::os::fd::RawFd, std::os::fd::RawFd)>,
    pub bib6: HashMap<&'a mut MapData, Bib6Key, Bib6Value>,
    pub bib4: HashMap<&'a mut MapData, Bib4Key, Bib4Value>,
    pub clients: HashMap<&'a mut MapData, [u8; 8], u64>,
    /// The session table and its descriptor (for batch lookups), and the peers of
    /// address-dependent filtering.
    pub session_fd: Option<std::os::fd::RawFd>,
    pub sessions: HashMap<&'a mut MapData, SessionKey, SessionValue>,
    pub peers: HashMap<&'a mut MapData, PeerKey, u64>,
    /// Port blocks (`stateful.port_block_size`): their owners, and each client's list.
    pub blocks: HashMap<&'a mut MapData, BlockKey, BlockOwner>,
    pub client_blocks: HashMap<&'a mut MapData, ClientBlocksKey, ClientBlocks>,
}

/// One session (RFC 6146 section 3.5): a binding's pool4 transport address and a remote IPv4
/// endpoint, with its TCP state and last use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub key: SessionKey,
    pub value: SessionValue,
}

impl Session {
    /// How long it lives after its last packet: the TCP state machine's timer (RFC 6146
    /// section 3.5.2.2), the UDP one (3.5.1) or the ICMP query one (3.5.3).
    pub fn lifetime(&self, st: &Stateful) -> Duration {
        let secs = match self.key.proto {
            BIB_TCP => match tcp_lifetime(self.value.tcp6, self.value.tcp4) {
                TcpLifetime::Established => st.tcp_established_timeout_secs,
                TcpLifetime::Transitory => st.tcp_transitory_timeout_secs,
            },
            BIB_ICMP => st.icmp_timeout_secs,
            _ => st.udp_timeout_secs,
        };
        Duration::from_secs(secs)
    }

    /// Whether `proto` (if given) and `addr` (if given: the pool4 address or the remote one)
    /// match.
    pub fn matches(&self, proto: Option<Protocol>, addr: Option<IpAddr>) -> bool {
        proto.is_none_or(|p| p.number() == self.key.proto)
            && addr.is_none_or(|a| match a {
                IpAddr::V6(_) => false,
                IpAddr::V4(a) => a.octets() == self.key.addr4 || a.octets() == self.key.remote4,
            })
    }

    /// The peer entry (address-dependent filtering) the session keeps alive.
    fn peer(&self) -> PeerKey {
        PeerKey {
            addr4: self.key.addr4,
            port4: self.key.port4,
            proto: self.key.proto,
            _pad: 0,
            remote4: self.key.remote4,
        }
    }

    /// One line for people: protocol, the binding's pool4 side, the remote endpoint, idle
    /// time and TCP state.
    pub fn describe(&self, now_ns: u64) -> String {
        let proto = Protocol::from_number(self.key.proto).map_or("?", |p| p.name());
        let v4 = SocketAddrV4::new(self.key.addr4.into(), u16::from_be_bytes(self.key.port4));
        let remote = SocketAddrV4::new(
            self.key.remote4.into(),
            u16::from_be_bytes(self.key.remote_port),
        );
        let idle = now_ns.saturating_sub(self.value.last_ns) / 1_000_000_000;
        let mut line = format!("{proto} {v4} {remote} idle {idle}s");
        if self.key.proto == BIB_TCP {
            let (a, b) = (self.value.tcp6, self.value.tcp4);
            let state = match tcp_lifetime(a, b) {
                TcpLifetime::Established if tcp_established(a, b) => "established",
                TcpLifetime::Established => "half-closed",
                TcpLifetime::Transitory => "transitory",
            };
            let _ = write!(line, " {state}");
        }
        line
    }
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

    /// How long it lives after its last packet once no session of it is left: the shortest
    /// lifetime a session of its protocol can have (a binding whose sessions all ended goes
    /// with the last of them; this only bounds one whose session never came, the table being
    /// full, or that the sweeper saw in the instant between the two inserts).
    pub fn lifetime(&self, st: &Stateful) -> Duration {
        let secs = match self.key6.proto {
            BIB_TCP => st.tcp_transitory_timeout_secs,
            BIB_ICMP => st.icmp_timeout_secs,
            _ => st.udp_timeout_secs,
        };
        Duration::from_secs(secs)
    }
}

pub use crate::config::Protocol;

/// Why a binding operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error("{0} is not in pool4")]
    OutsidePool(std::net::Ipv4Addr),
    #[error("{0} {1} is already bound")]
    Taken(&'static str, String),
    #[error("no {0} binding for {1}")]
    NotFound(&'static str, SocketAddrV6),
    #[error("binding table: {0}")]
    Map(#[from] MapError),
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
    /// Bindings that expired in this pass.
    pub expired: u64,
    /// Sessions still alive, by protocol (after the sweep), and those that expired in it.
    pub sessions: Usage,
    pub sessions_expired: u64,
    /// Ports still held down after their binding expired (RFC 6888 REQ-8).
    pub held: u64,
    /// Held ports released in this pass.
    pub released: u64,
    /// pool4 ports in use (bound or held), by pool4 prefix (in configuration order) and
    /// protocol (TCP, UDP, ICMP).
    pub ports_used: [[u64; 3]; nat64_common::maps::POOL4_MAX_PREFIXES as usize],
    /// Port blocks allocated, by protocol (after the sweep), and those released in this pass.
    pub blocks: Usage,
    pub blocks_released: u64,
    /// Established TCP sessions whose timer ran out in this pass, moved to TRANS for a probe
    /// ([`Probe`]).
    pub probed: u64,
}

/// An established TCP session whose timer ran out (RFC 6146 section 3.5.2.2): "the NAT64
/// SHOULD send a probe packet ... to at least one of the endpoints of the TCP connection" and
/// moves it to TRANS. The IPv6 host is the endpoint probed, as Jool does: `session`, and `to`
/// the binding's IPv6 transport address (`None`: the binding was gone, no probe possible).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub session: Session,
    pub to: Option<([u8; 16], u16)>,
}

/// The index of a protocol in [`Sweep::ports_used`].
pub const fn protocol_index(proto: u8) -> usize {
    match proto {
        BIB_TCP => 0,
        BIB_UDP => 1,
        _ => 2,
    }
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

impl Binding {
    /// Reports it gone for `why` (`binding_log`: the log and IPFIX, as configured).
    pub fn report_removed(&self, why: &str) {
        crate::binding_log::removed(
            self.key6.proto,
            self.key6.addr6,
            self.key6.port6,
            self.v6.addr4,
            self.v6.port4,
            why,
            false,
        );
    }

    /// One line for people: protocol, both transport addresses, idle time, TCP state, origin.
    pub fn describe(&self, now_ns: u64) -> String {
        let proto = Protocol::from_number(self.key6.proto).map_or("?", |p| p.name());
        let v6 = SocketAddrV6::new(
            self.key6.addr6.into(),
            u16::from_be_bytes(self.key6.port6),
            0,
            0,
        );
        let v4 = SocketAddrV4::new(self.v6.addr4.into(), u16::from_be_bytes(self.v6.port4));
        let mut line = format!("{proto} {v6} {v4}");
        if self.v6.flags & BIB_F_STATIC != 0 {
            line.push_str(" static");
        } else {
            let idle = now_ns.saturating_sub(self.last_ns()) / 1_000_000_000;
            let _ = write!(line, " idle {idle}s");
        }
        line
    }

    /// Whether `proto` (if given) and `addr` (if given; either side's address) match.
    pub fn matches(&self, proto: Option<Protocol>, addr: Option<IpAddr>) -> bool {
        proto.is_none_or(|p| p.number() == self.key6.proto)
            && addr.is_none_or(|a| match a {
                IpAddr::V6(a) => a.octets() == self.key6.addr6,
                IpAddr::V4(a) => a.octets() == self.v6.addr4,
            })
    }
}

impl Tables<'_> {
    /// Adds a static binding: it never expires and lets IPv4 hosts open flows toward `v6`
    /// (RFC 6146 section 3.5.2.2 for TCP). `v4` must be a pool4 address; its port need not
    /// be in the dynamic range (keeping it outside avoids a clash with dynamic bindings).
    pub fn add_static(
        &mut self,
        pool4: &[ipnet::Ipv4Net],
        proto: Protocol,
        v6: SocketAddrV6,
        v4: SocketAddrV4,
    ) -> Result<(), BindingError> {
        self.insert_static(pool4, proto, v6, v4, BIB_F_STATIC)
    }

    /// [`Tables::add_static`] with `flags` (`BIB_F_STATIC`, and `BIB_F_FILE` for the file's).
    fn insert_static(
        &mut self,
        pool4: &[ipnet::Ipv4Net],
        proto: Protocol,
        v6: SocketAddrV6,
        v4: SocketAddrV4,
        flags: u8,
    ) -> Result<(), BindingError> {
        if !pool4.iter().any(|p| p.contains(v4.ip())) {
            return Err(BindingError::OutsidePool(*v4.ip()));
        }
        let key6 = Bib6Key {
            addr6: v6.ip().octets(),
            port6: v6.port().to_be_bytes(),
            proto: proto.number(),
            _pad: 0,
        };
        let key4 = Bib4Key {
            addr4: v4.ip().octets(),
            port4: v4.port().to_be_bytes(),
            proto: proto.number(),
            _pad: 0,
        };
        let now = now_ns();
        let value4 = Bib4Value {
            addr6: key6.addr6,
            port6: key6.port6,
            tcp: 0,
            flags,
            _pad: [0; 4],
            last_ns: now,
        };
        let value6 = Bib6Value {
            addr4: key4.addr4,
            port4: key4.port4,
            tcp: 0,
            flags,
            last_ns: now,
        };
        const BPF_NOEXIST: u64 = 1;
        self.bib4
            .insert(key4, value4, BPF_NOEXIST)
            .map_err(|_| BindingError::Taken(proto.name(), v4.to_string()))?;
        if self.bib6.insert(key6, value6, BPF_NOEXIST).is_err() {
            let _ = self.bib4.remove(&key4);
            return Err(BindingError::Taken(proto.name(), v6.to_string()));
        }
        Ok(())
    }

    /// Makes the file's static bindings in the tables those of `st` (`[[stateful.static]]`): one
    /// from the file no longer listed goes (with its sessions), one listed and already there,
    /// both halves whole, stays untouched (its sessions with it: a restart that adopts pinned
    /// tables finds last run's), and the others are added, in place of whatever static binding
    /// holds their IPv6 transport address. Those an operator added at run time (`nat64d
    /// bindings add`) stay. Removals come first, so that an entry moved to another pool4
    /// address or port takes its new place. Returns how many went, and each listed binding that
    /// could not be added, by its index in the list.
    pub fn sync_static(&mut self, st: &Stateful) -> (usize, Vec<(usize, BindingError)>) {
        let same = |s: &crate::config::StaticBinding, b: &Binding| {
            s.protocol.number() == b.key6.proto
                && s.ipv6.ip().octets() == b.key6.addr6
                && s.ipv6.port().to_be_bytes() == b.key6.port6
                && s.ipv4.ip().octets() == b.v6.addr4
                && s.ipv4.port().to_be_bytes() == b.v6.port4
        };
        let whole = |b: &Binding| {
            b.v4.is_some_and(|v| {
                v.addr6 == b.key6.addr6 && v.port6 == b.key6.port6 && v.flags & BIB_F_HELD == 0
            })
        };
        let v6_of = |b: &Binding| {
            SocketAddrV6::new(b.key6.addr6.into(), u16::from_be_bytes(b.key6.port6), 0, 0)
        };
        let present: Vec<Binding> = self
            .list(usize::MAX)
            .into_iter()
            .filter(|b| b.v6.flags & BIB_F_STATIC != 0)
            .collect();
        let mut removed = 0;
        for b in present.iter().filter(|b| {
            b.v6.flags & BIB_F_FILE != 0
                && !(whole(b) && st.static_bindings.iter().any(|s| same(s, b)))
        }) {
            if let Some(proto) = Protocol::from_number(b.key6.proto)
                && self.remove(proto, v6_of(b)).is_ok()
            {
                removed += 1;
            }
        }
        let mut failed = Vec::new();
        for (i, s) in st.static_bindings.iter().enumerate() {
            if present.iter().any(|b| same(s, b) && whole(b)) {
                continue;
            }
            // Another static binding of the same IPv6 transport address (an operator's, or a
            // half-broken one): the file's takes its place.
            if let Some(b) = present.iter().find(|b| {
                b.v6.flags & BIB_F_FILE == 0
                    && b.key6.proto == s.protocol.number()
                    && v6_of(b) == SocketAddrV6::new(*s.ipv6.ip(), s.ipv6.port(), 0, 0)
            }) {
                let _ = self.remove(s.protocol, v6_of(b));
            }
            if let Err(e) = self.insert_static(
                &st.pool4,
                s.protocol,
                s.ipv6,
                s.ipv4,
                BIB_F_STATIC | BIB_F_FILE,
            ) {
                failed.push((i, e));
            }
        }
        (removed, failed)
    }

    /// Whether every dynamic binding lies in the block RFC 7422's mapping (`st.deterministic`)
    /// gives its client; true without one. Bindings kept from a run with another mapping sit
    /// in other clients' blocks, and `nat64d map`, which answers from the configuration,
    /// would name the wrong client for them.
    pub fn follow_deterministic(&self, st: &Stateful) -> bool {
        if st.deterministic.is_none() {
            return true;
        }
        self.list(usize::MAX)
            .iter()
            .filter(|b| b.v6.flags & BIB_F_STATIC == 0)
            .all(|b| {
                let Some(proto) = Protocol::from_number(b.key6.proto) else {
                    return true;
                };
                let port = u16::from_be_bytes(b.v6.port4);
                crate::map::client_of(st, b.v6.addr4.into(), port, proto).is_ok_and(
                    |(prefix, len, _)| {
                        ipnet::Ipv6Net::new(prefix, len)
                            .is_ok_and(|n| n.contains(&std::net::Ipv6Addr::from(b.key6.addr6)))
                    },
                )
            })
    }

    /// Removes every dynamic binding (static ones stay), both halves at once (no hold-down: an
    /// operator's flush); returns how many went.
    pub fn flush(&mut self) -> Result<u64, MapError> {
        let mut n = 0;
        for b in self.list(usize::MAX) {
            if b.v6.flags & BIB_F_STATIC != 0 {
                continue;
            }
            self.bib6.remove(&b.key6)?;
            b.report_removed("flushed");
            match self.bib4.remove(&b.key4()) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(e),
            }
            n += 1;
        }
        // Their sessions with them (those of static bindings stay).
        for sess in self.list_sessions(usize::MAX) {
            let is_static = self
                .bib4
                .get(&sess.key.bib4(), 0)
                .is_ok_and(|v| v.flags & BIB_F_STATIC != 0);
            if !is_static {
                self.remove_session(&sess);
            }
        }
        Ok(n)
    }

    /// Every session, at most `limit` of them (batch lookups where the kernel has them).
    pub fn list_sessions(&self, limit: usize) -> Vec<Session> {
        if let Some(v) = self
            .session_fd
            .and_then(crate::sys::lookup_batch::<SessionKey, SessionValue>)
        {
            return v
                .into_iter()
                .take(limit)
                .map(|(key, value)| Session { key, value })
                .collect();
        }
        self.sessions
            .iter()
            .filter_map(Result::ok)
            .take(limit)
            .map(|(key, value)| Session { key, value })
            .collect()
    }

    /// Removes a session; its peer entry (address-dependent filtering), if no other session
    /// names it, goes with the next sweep.
    fn remove_session(&mut self, sess: &Session) {
        let _ = self.sessions.remove(&sess.key);
    }

    /// Removes the binding of `v6` (static or not), both halves.
    pub fn remove(&mut self, proto: Protocol, v6: SocketAddrV6) -> Result<(), BindingError> {
        let key6 = Bib6Key {
            addr6: v6.ip().octets(),
            port6: v6.port().to_be_bytes(),
            proto: proto.number(),
            _pad: 0,
        };
        let v = self
            .bib6
            .get(&key6, 0)
            .map_err(|_| BindingError::NotFound(proto.name(), v6))?;
        self.bib6.remove(&key6)?;
        // An operator's action: its line (both transport addresses) is always written.
        crate::binding_log::removed(
            key6.proto,
            key6.addr6,
            key6.port6,
            v.addr4,
            v.port4,
            "removed by the operator",
            true,
        );
        let key4 = Bib4Key {
            addr4: v.addr4,
            port4: v.port4,
            proto: proto.number(),
            _pad: 0,
        };
        match self.bib4.remove(&key4) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(e.into()),
        }
        for sess in self.list_sessions(usize::MAX) {
            if sess.key.bib4() == key4 {
                self.remove_session(&sess);
            }
        }
        Ok(())
    }

    /// Removes the halves of bindings whose other half is missing or names another binding:
    /// tables carried over into new ones of another size are copied one by one while the last
    /// run's programs still make bindings, and a smaller table keeps only some of each. An
    /// IPv4 half alone would hold its pool4 port for ever (the sweeper walks the IPv6 side) and
    /// let IPv4 hosts through to the client; an IPv6 half alone would lose every reply. Ports
    /// held down (`BIB_F_HELD`) have no IPv6 half by design and stay. Returns how many went.
    pub fn remove_orphans(&mut self) -> usize {
        let four: Vec<(Bib4Key, Bib4Value)> = match self.batch_fds {
            Some((_, fd4)) => crate::sys::lookup_batch(fd4).unwrap_or_default(),
            None => self.bib4.iter().filter_map(Result::ok).collect(),
        };
        let mut n = 0;
        for b in self.list(usize::MAX) {
            let paired = b.v4.is_some_and(|v| {
                v.addr6 == b.key6.addr6 && v.port6 == b.key6.port6 && v.flags & BIB_F_HELD == 0
            });
            if !paired && self.bib6.remove(&b.key6).is_ok() {
                n += 1;
            }
        }
        for (k4, v4) in four {
            if v4.flags & BIB_F_HELD != 0 {
                continue;
            }
            let key6 = Bib6Key {
                addr6: v4.addr6,
                port6: v4.port6,
                proto: k4.proto,
                _pad: 0,
            };
            let paired = self
                .bib6
                .get(&key6, 0)
                .is_ok_and(|v6| v6.addr4 == k4.addr4 && v6.port4 == k4.port4);
            if !paired && self.bib4.remove(&k4).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Every binding, at most `limit` of them. Both tables are read with batch lookups (a few
    /// bpf(2) calls for the whole table: a sweep of a million bindings would otherwise take
    /// three calls per binding), else entry by entry.
    pub fn list(&self, limit: usize) -> Vec<Binding> {
        if let Some((fd6, fd4)) = self.batch_fds
            && let Some(six) = crate::sys::lookup_batch::<Bib6Key, Bib6Value>(fd6)
            && let Some(four) = crate::sys::lookup_batch::<Bib4Key, Bib4Value>(fd4)
        {
            let four: std::collections::HashMap<Bib4Key, Bib4Value> = four.into_iter().collect();
            return six
                .into_iter()
                .take(limit)
                .map(|(key6, v6)| {
                    let mut b = Binding { key6, v6, v4: None };
                    b.v4 = four.get(&b.key4()).copied();
                    b
                })
                .collect();
        }
        let mut out = Vec::new();
        for item in self.bib6.iter().take(limit) {
            let Ok((key6, v6)) = item else { continue };
            let mut b = Binding { key6, v6, v4: None };
            b.v4 = self.bib4.get(&b.key4(), 0).ok();
            out.push(b);
        }
        out
    }

    /// [`Tables::sweep_probing`], its probes not sent (as if every one were lost).
    pub fn sweep(&mut self, st: &Stateful, now_ns: u64, budget: usize) -> Result<Sweep, MapError> {
        self.sweep_probing(st, now_ns, budget, &mut Vec::new())
    }

    /// Expires the sessions idle for longer than their lifetime at `now_ns` (RFC 6146
    /// section 3.5 timers, per session), then the bindings with no session left (static ones
    /// never expire), looking at no more than `budget` bindings (bounded work per pass) and
    /// `st.session_capacity()` sessions; releases the ports held down for longer than
    /// `hold_down`; removes the peers (address-dependent filtering) no session names; and
    /// recounts the bindings of each /64 for the per-client limit.
    ///
    /// The bindings are read before the sessions: the dataplane makes a binding before its
    /// session, so a binding this pass sees has its session in the session read, and is not
    /// taken for one without. A binding without a live session goes only once it is also idle
    /// for [`Binding::lifetime`] (a session refused for a full table leaves one behind).
    ///
    /// An expired binding's IPv6 side goes first, so that a packet racing the removal makes a
    /// new binding rather than reviving a half-removed one. Its IPv4 side stays, marked held
    /// (RFC 6888 REQ-8: a freed port is not reused at once, so a new flow does not receive
    /// the old one's late packets); the dataplane translates nothing through it and cannot
    /// allocate the port until it goes.
    ///
    /// An established TCP session whose timer ran out is not removed but moved to TRANS (its
    /// IPv4 side marked `TCP_TRANS`, its time restarted: the transitory timer now runs), and
    /// listed in `probes`, for the caller to send each its probe (RFC 6146 section
    /// 3.5.2.2). The answer of a live host, any segment but a RST, makes it established again
    /// (`tcp_step`); without one it goes when the transitory timer runs out.
    pub fn sweep_probing(
        &mut self,
        st: &Stateful,
        now_ns: u64,
        budget: usize,
        probes: &mut Vec<Probe>,
    ) -> Result<Sweep, MapError> {
        let hold_down = Duration::from_secs(st.port_hold_down_secs).as_nanos() as u64;
        let mut out = Sweep::default();
        let mut per_client: std::collections::HashMap<[u8; 8], u64> = Default::default();
        let bindings = self.list(budget);
        let mut live_bindings = std::collections::HashSet::new();
        let mut live_peers = std::collections::HashSet::new();
        for sess in self.list_sessions(st.session_capacity() as usize) {
            let idle = now_ns.saturating_sub(sess.value.last_ns);
            if idle <= sess.lifetime(st).as_nanos() as u64 {
                live_bindings.insert(sess.key.bib4());
                live_peers.insert(sess.peer());
                match sess.key.proto {
                    BIB_TCP => out.sessions.tcp += 1,
                    BIB_UDP => out.sessions.udp += 1,
                    _ => out.sessions.icmp += 1,
                }
                continue;
            }
            if sess.key.proto == BIB_TCP && tcp_established(sess.value.tcp6, sess.value.tcp4) {
                // What the dataplane holds now: a segment since the listing (a refresh, a FIN,
                // a RST) leaves the session to the next pass, rather than being overwritten.
                let now = self.sessions.get(&sess.key, 0).ok();
                if now.is_some_and(|v| v != sess.value) {
                    live_bindings.insert(sess.key.bib4());
                    live_peers.insert(sess.peer());
                    out.sessions.tcp += 1;
                    continue;
                }
                let v = SessionValue {
                    tcp4: TCP_TRANS,
                    last_ns: now_ns,
                    ..sess.value
                };
                // BPF_EXIST: only if the dataplane has not removed it meanwhile.
                if now.is_some() && self.sessions.insert(sess.key, v, 2).is_ok() {
                    let to = self
                        .bib4
                        .get(&sess.key.bib4(), 0)
                        .ok()
                        .map(|b| (b.addr6, u16::from_be_bytes(b.port6)));
                    probes.push(Probe { session: sess, to });
                    out.probed += 1;
                    live_bindings.insert(sess.key.bib4());
                    live_peers.insert(sess.peer());
                    out.sessions.tcp += 1;
                    continue;
                }
            }
            match self.sessions.remove(&sess.key) {
                Ok(()) | Err(MapError::KeyNotFound) => out.sessions_expired += 1,
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
                {
                    out.sessions_expired += 1
                }
                Err(e) => return Err(e),
            }
        }
        // Peers no live session names, older than this pass (one the dataplane adds from
        // now on is left for the next).
        let stale: Vec<PeerKey> = self
            .peers
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, since)| *since < now_ns && !live_peers.contains(k))
            .map(|(k, _)| k)
            .collect();
        for k in stale {
            let _ = self.peers.remove(&k);
        }
        for b in bindings {
            let idle = now_ns.saturating_sub(b.last_ns());
            let is_static = b.v6.flags & BIB_F_STATIC != 0;
            if is_static
                || live_bindings.contains(&b.key4())
                || idle <= b.lifetime(st).as_nanos() as u64
            {
                match b.key6.proto {
                    BIB_TCP => out.live.tcp += 1,
                    BIB_UDP => out.live.udp += 1,
                    _ => out.live.icmp += 1,
                }
                if !is_static {
                    *per_client.entry(client_key(&b.key6.addr6)).or_default() += 1;
                }
                continue;
            }
            self.bib6.remove(&b.key6)?;
            b.report_removed("expired");
            let key4 = b.key4();
            let r = match b.v4 {
                Some(mut v4) if hold_down > 0 => {
                    v4.flags |= BIB_F_HELD;
                    v4.last_ns = now_ns;
                    // BPF_EXIST: only if the entry is still there.
                    self.bib4.insert(key4, v4, 2)
                }
                _ => self.bib4.remove(&key4),
            };
            match r {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            out.expired += 1;
        }
        // The IPv4 side: ports in use per prefix, and held ports whose time is up.
        let all4: Vec<(Bib4Key, Bib4Value)> = match self
            .batch_fds
            .and_then(|(_, fd4)| crate::sys::lookup_batch::<Bib4Key, Bib4Value>(fd4))
        {
            Some(v) => v.into_iter().take(budget).collect(),
            None => self
                .bib4
                .iter()
                .take(budget)
                .filter_map(Result::ok)
                .collect(),
        };
        // Port blocks: the ports each block could hold, only when there are blocks (a sweep
        // of a million bindings without them does not collect a million ports).
        let track_blocks =
            st.port_block_size != 0 || self.blocks.keys().next().is_some_and(|k| k.is_ok());
        let mut ports_taken: std::collections::HashMap<([u8; 4], u8), Vec<u16>> =
            Default::default();
        for (k, v) in all4 {
            if v.flags & BIB_F_HELD != 0 {
                if now_ns.saturating_sub(v.last_ns) > hold_down {
                    match self.bib4.remove(&k) {
                        Ok(()) | Err(MapError::KeyNotFound) => out.released += 1,
                        Err(e) => return Err(e),
                    }
                    continue;
                }
                out.held += 1;
            }
            // A port bound or held down keeps its block (hold-down works per block: a block
            // goes only once the last of its ports is free).
            if track_blocks {
                ports_taken
                    .entry((k.addr4, k.proto))
                    .or_default()
                    .push(u16::from_be_bytes(k.port4));
            }
            let addr = std::net::Ipv4Addr::from(k.addr4);
            if let Some(i) = st.pool4.iter().position(|p| p.contains(&addr))
                && let Some(row) = out.ports_used.get_mut(i)
            {
                row[protocol_index(k.proto)] += 1;
            }
        }
        // The per-client counts, as the table says they are now.
        let stale: Vec<[u8; 8]> = self
            .clients
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !per_client.contains_key(k))
            .collect();
        for k in stale {
            let _ = self.clients.remove(&k);
        }
        for (k, n) in per_client {
            self.clients.insert(k, n, 0)?;
        }
        if track_blocks {
            for ports in ports_taken.values_mut() {
                ports.sort_unstable();
            }
            self.sweep_blocks(now_ns, &ports_taken, &mut out)?;
        }
        Ok(out)
    }

    /// Releases the port blocks no binding or held-down port uses any more (`taken`: the ports
    /// of the IPv4 side as this pass read it, sorted, by address and protocol), in two passes:
    /// the first takes an unused block off its owner's list (the dataplane no longer binds in
    /// it) and marks it; the next releases it if it is still unused, or keeps it if a binding
    /// came in between. A block allocated in the last second is left alone (its first binding
    /// may postdate the read). Then rebuilds each client's list from the blocks it owns.
    fn sweep_blocks(
        &mut self,
        now_ns: u64,
        taken: &std::collections::HashMap<([u8; 4], u8), Vec<u16>>,
        out: &mut Sweep,
    ) -> Result<(), MapError> {
        const BPF_EXIST: u64 = 2;
        let owned: Vec<(BlockKey, BlockOwner)> =
            self.blocks.iter().filter_map(Result::ok).collect();
        let mut lists: std::collections::HashMap<ClientBlocksKey, Vec<(u64, BlockKey)>> =
            Default::default();
        for (k, mut owner) in owned.iter().copied() {
            let used = taken.get(&(k.addr4, k.proto)).is_some_and(|ports| {
                let from = ports.partition_point(|&p| p < owner.first);
                ports
                    .get(from)
                    .is_some_and(|&p| u32::from(p) < u32::from(owner.first) + u32::from(owner.size))
            });
            let young = now_ns.saturating_sub(owner.since_ns) < 1_000_000_000;
            let in_use = used || young;
            if !in_use && owner.flags & BLOCK_F_RELEASING != 0 {
                match self.blocks.remove(&k) {
                    Ok(()) | Err(MapError::KeyNotFound) => {}
                    Err(e) => return Err(e),
                }
                out.blocks_released += 1;
                report_block_released(&k, &owner);
                continue;
            }
            if !in_use {
                owner.flags |= BLOCK_F_RELEASING;
                let _ = self.blocks.insert(k, owner, BPF_EXIST);
            } else {
                if owner.flags & BLOCK_F_RELEASING != 0 {
                    owner.flags &= !BLOCK_F_RELEASING;
                    let _ = self.blocks.insert(k, owner, BPF_EXIST);
                }
                let list = ClientBlocksKey {
                    client: owner.client,
                    proto: k.proto,
                    _pad: [0; 3],
                };
                lists.entry(list).or_default().push((owner.since_ns, k));
            }
            match k.proto {
                BIB_TCP => out.blocks.tcp += 1,
                BIB_UDP => out.blocks.udp += 1,
                _ => out.blocks.icmp += 1,
            }
        }
        let snapshot: std::collections::HashSet<BlockKey> = owned.iter().map(|(k, _)| *k).collect();
        let current: Vec<(ClientBlocksKey, ClientBlocks)> =
            self.client_blocks.iter().filter_map(Result::ok).collect();
        for (key, now) in &current {
            let mut want = match lists.remove(key) {
                Some(blocks) => client_list(blocks),
                None => ClientBlocks {
                    addr4: now.addr4,
                    count: 0,
                    _pad: [0; 3],
                    index: [0; MAX_CLIENT_BLOCKS],
                },
            };
            // A block the dataplane allocated after the read above stays on the list.
            for &i in &now.index[..(now.count as usize).min(MAX_CLIENT_BLOCKS)] {
                let k = BlockKey {
                    addr4: now.addr4,
                    proto: key.proto,
                    _pad: 0,
                    index: i,
                };
                let n = want.count as usize;
                if !snapshot.contains(&k)
                    && !want.index[..n].contains(&i)
                    && want.addr4 == now.addr4
                    && n < MAX_CLIENT_BLOCKS
                {
                    want.index[n] = i;
                    want.count += 1;
                }
            }
            // Best effort, like the dataplane's own write: a list not written now is rebuilt
            // on the next pass, and a failed write must not stop the sweep.
            if want.count == 0 {
                let _ = self.client_blocks.remove(key);
            } else if want != *now {
                let _ = self.client_blocks.insert(*key, want, 0);
            }
        }
        // Owners with no list (one lost to a race): theirs again.
        for (key, blocks) in lists {
            let _ = self.client_blocks.insert(key, client_list(blocks), 0);
        }
        Ok(())
    }

    /// Whether every port block was allocated under `st`'s block size and port ranges. Blocks
    /// of another layout (state kept across a restart that changed them) no longer describe the
    /// ports their clients hold, and new blocks could overlap them.
    pub fn blocks_match(&self, st: &Stateful) -> bool {
        self.blocks.iter().filter_map(Result::ok).all(|(k, o)| {
            let r = st.range(protocol_index(k.proto));
            o.size == st.port_block_size
                && block_of_port(r.0, r.1, st.port_block_size, o.first) == Some(k.index)
                && block_ports(r.0, o.size, k.index).0 == o.first
        })
    }

    /// Releases every port block and forgets every client's list (each block reported).
    pub fn release_all_blocks(&mut self) -> u64 {
        let owned: Vec<(BlockKey, BlockOwner)> =
            self.blocks.iter().filter_map(Result::ok).collect();
        let mut n = 0;
        for (k, o) in owned {
            if self.blocks.remove(&k).is_ok() {
                report_block_released(&k, &o);
                n += 1;
            }
        }
        let lists: Vec<ClientBlocksKey> =
            self.client_blocks.keys().filter_map(Result::ok).collect();
        for k in lists {
            let _ = self.client_blocks.remove(&k);
        }
        n
    }

    /// Every port block and its owner, by client (`nat64d bindings blocks`).
    pub fn list_blocks(&self) -> Vec<(BlockKey, BlockOwner)> {
        let mut v: Vec<_> = self.blocks.iter().filter_map(Result::ok).collect();
        v.sort_by_key(|(k, o)| (o.client, k.proto, k.addr4, k.index));
        v
    }
}

/// Whether a port block matches `proto` (if given) and `addr` (if given: an address of the
/// owner's /64, or the pool4 address).
pub fn block_matches(
    k: &BlockKey,
    o: &BlockOwner,
    proto: Option<Protocol>,
    addr: Option<IpAddr>,
) -> bool {
    proto.is_none_or(|p| p.number() == k.proto)
        && addr.is_none_or(|a| match a {
            IpAddr::V6(a) => client_key(&a.octets()) == o.client,
            IpAddr::V4(a) => a.octets() == k.addr4,
        })
}

/// One line for people: protocol, the owner's /64, the pool4 address and ports, age, and
/// whether the sweeper is releasing it.
pub fn describe_block(k: &BlockKey, o: &BlockOwner, now_ns: u64) -> String {
    let proto = Protocol::from_number(k.proto).map_or("?", |p| p.name());
    let mut a = [0u8; 16];
    a[..8].copy_from_slice(&o.client);
    let last = o.last();
    let age = now_ns.saturating_sub(o.since_ns) / 1_000_000_000;
    let mut line = format!(
        "{proto} {}/64 {} {}-{last} age {age}s",
        std::net::Ipv6Addr::from(a),
        std::net::Ipv4Addr::from(k.addr4),
        o.first
    );
    if o.flags & BLOCK_F_RELEASING != 0 {
        line.push_str(" releasing");
    }
    line
}

/// A client's list of blocks from the blocks it owns (`(since, block)`): those on the address
/// of its newest block (older ones on another address, from before a pool4 change, are left to
/// empty out), oldest first, at most [`MAX_CLIENT_BLOCKS`].
fn client_list(mut blocks: Vec<(u64, BlockKey)>) -> ClientBlocks {
    blocks.sort_by_key(|(since, _)| *since);
    let addr4 = blocks.last().map_or([0; 4], |(_, b)| b.addr4);
    let mut v = ClientBlocks {
        addr4,
        count: 0,
        _pad: [0; 3],
        index: [0; MAX_CLIENT_BLOCKS],
    };
    for (_, b) in blocks.iter().filter(|(_, b)| b.addr4 == addr4) {
        if (v.count as usize) < MAX_CLIENT_BLOCKS {
            v.index[v.count as usize] = b.index;
            v.count += 1;
        }
    }
    v
}

/// Reports a block released (`binding_log`: the log and IPFIX), with the ports it had.
fn report_block_released(k: &BlockKey, o: &BlockOwner) {
    crate::binding_log::block(
        k.proto,
        o.client,
        k.addr4,
        o.first,
        o.last(),
        crate::binding_log::BlockEvent::Released,
        None,
    );
}
