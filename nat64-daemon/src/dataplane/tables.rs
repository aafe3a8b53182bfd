//! The state the dataplane keeps, as the daemon reads and writes it: the binding and session
//! tables, held SYNs, map memory, counters, and frames injected as if received.

use super::*;
use crate::stats::Stats;

impl Dataplane {
    /// The binding tables (stateful NAT64), for the sweeper and for listing.
    pub fn bindings(&mut self) -> Result<crate::bindings::Tables<'_>, DataplaneError> {
        let (mut b6, mut b4, mut clients, mut sessions, mut peers) = (None, None, None, None, None);
        let (mut blocks, mut client_blocks) = (None, None);
        for (name, map) in self.ebpf.maps_mut() {
            match name {
                "BLOCKS" => blocks = Some(map),
                "CLIENT_BLOCKS" => client_blocks = Some(map),
                "BIB6" => b6 = Some(map),
                "BIB4" => b4 = Some(map),
                "CLIENTS" => clients = Some(map),
                "SESSIONS" => sessions = Some(map),
                "PEERS" => peers = Some(map),
                _ => {}
            }
        }
        let sessions = sessions.ok_or(DataplaneError::Missing("map SESSIONS"))?;
        let peers = peers.ok_or(DataplaneError::Missing("map PEERS"))?;
        let session_fd = raw_fd(sessions);
        let b6 = b6.ok_or(DataplaneError::Missing("map BIB6"))?;
        let b4 = b4.ok_or(DataplaneError::Missing("map BIB4"))?;
        let fds = raw_fd(b6).zip(raw_fd(b4));
        Ok(crate::bindings::Tables {
            batch_fds: fds,
            bib6: HashMap::try_from(b6).map_err(map_err("BIB6"))?,
            bib4: HashMap::try_from(b4).map_err(map_err("BIB4"))?,
            clients: HashMap::try_from(clients.ok_or(DataplaneError::Missing("map CLIENTS"))?)
                .map_err(map_err("CLIENTS"))?,
            session_fd,
            sessions: HashMap::try_from(sessions).map_err(map_err("SESSIONS"))?,
            peers: HashMap::try_from(peers).map_err(map_err("PEERS"))?,
            blocks: HashMap::try_from(blocks.ok_or(DataplaneError::Missing("map BLOCKS"))?)
                .map_err(map_err("BLOCKS"))?,
            client_blocks: HashMap::try_from(
                client_blocks.ok_or(DataplaneError::Missing("map CLIENT_BLOCKS"))?,
            )
            .map_err(map_err("CLIENT_BLOCKS"))?,
        })
    }

    /// The binding events ring buffer (`binding_log`), taken out of the object: the daemon
    /// reads it for as long as it runs. A reload's new copy of the programs shares it (pinned
    /// state) or is this one (written in place); `None` once taken.
    pub fn take_events(&mut self) -> Option<aya::maps::RingBuf<aya::maps::MapData>> {
        let map = self.ebpf.take_map("EVENTS")?;
        aya::maps::RingBuf::try_from(map).ok()
    }

    /// The kernel memory of each map (`memlock` in the map's fdinfo), by name: what the
    /// binding tables cost at a given size.
    pub fn map_memory(&self) -> Vec<(String, u64)> {
        self.ebpf
            .maps()
            .filter_map(|(name, map)| {
                let fd = raw_fd(map)?;
                let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
                let bytes = info
                    .lines()
                    .find_map(|l| l.strip_prefix("memlock:"))?
                    .trim()
                    .parse()
                    .ok()?;
                Some((name.to_string(), bytes))
            })
            .collect()
    }

    /// Removes the held SYNs (RFC 6146 section 3.5.2.2) whose 6 seconds are up at `now_ns`
    /// and returns them, for the daemon to answer (`held_syns`). At most `budget`.
    pub fn take_expired_syns(
        &mut self,
        now_ns: u64,
        budget: usize,
    ) -> Result<Vec<(SynKey, HeldSyn)>, DataplaneError> {
        let mut m: HashMap<_, SynKey, HeldSyn> = HashMap::try_from(
            self.ebpf
                .map_mut("HELD_SYNS")
                .ok_or(DataplaneError::Missing("map HELD_SYNS"))?,
        )
        .map_err(map_err("HELD_SYNS"))?;
        let due: Vec<(SynKey, HeldSyn)> = m
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, h)| h.expired(now_ns))
            .take(budget)
            .collect();
        let mut taken = Vec::with_capacity(due.len());
        for (k, h) in due {
            // Gone already: a simultaneous open took it in the meantime.
            if m.remove(&k).is_ok() {
                taken.push((k, h));
            }
        }
        Ok(taken)
    }

    /// Hands `ip` (an IPv4 or IPv6 packet the daemon made) to the kernel as if it had arrived
    /// on the translator link's kernel side, which routes it on: `BPF_PROG_TEST_RUN` of
    /// `nat64_inject`, which sends a copy of the frame into that interface's receive path
    /// (`bpf_clone_redirect`). That side accepts the node's own source addresses
    /// (`accept_local`), and this needs no privilege beyond the ones the dataplane does (XDP's
    /// live frames did the same until a kernel refused them with EPERM). Without a link, the
    /// first attached interface takes it (its program passes what is not its own).
    pub fn inject(&self, ip: &[u8]) -> Result<(), DataplaneError> {
        let (ifindex, mac) = match self.link_side {
            Some(side) => side,
            None => {
                let a = self
                    .links
                    .first()
                    .ok_or(DataplaneError::Missing("an interface to inject packets on"))?;
                let mac =
                    crate::sys::mac(&a.iface).map_err(|e| DataplaneError::Inject(e.to_string()))?;
                (a.ifindex, mac)
            }
        };
        let ethertype: u16 = if ip.first().is_some_and(|b| b >> 4 == 6) {
            0x86dd
        } else {
            0x0800
        };
        // To the interface's own address: the receive path drops what is for another host.
        let mut frame = Vec::with_capacity(14 + ip.len());
        frame.extend_from_slice(&mac);
        frame.extend_from_slice(&mac);
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(ip);
        // struct __sk_buff up to `ifindex` (offset 40): the interface the buffer is on, which
        // `nat64_inject` sends it into; every other field zero.
        let mut ctx = [0u8; 44];
        ctx[40..44].copy_from_slice(&ifindex.to_ne_bytes());
        use aya::programs::TestRun as _;
        let r = typed::<SchedClassifier>(&self.ebpf, INJECT_PROGRAM)?
            .test_run(aya::programs::TestRunOptions {
                data_in: Some(&frame),
                ctx_in: Some(&ctx),
                ..Default::default()
            })
            .map_err(|e| DataplaneError::Inject(error_chain(&e)))?;
        match r.return_value as i32 {
            0 => Ok(()),
            e => Err(DataplaneError::Inject(format!(
                "bpf_clone_redirect: {}",
                std::io::Error::from_raw_os_error(-e)
            ))),
        }
    }

    /// Adds `n` to a counter the daemon keeps itself (CPU 0's slot; the dataplane never
    /// writes it), so that it shows with the dataplane's own.
    pub fn count(&mut self, c: nat64_common::Counter, n: u64) -> Result<(), DataplaneError> {
        let mut arr: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map_mut("STATS")
                .ok_or(DataplaneError::Missing("map STATS"))?,
        )
        .map_err(map_err("STATS"))?;
        let i = c.index();
        let values = arr.get(&i, 0).map_err(map_err("STATS"))?;
        let mut v: Vec<u64> = values.iter().copied().collect();
        if let Some(first) = v.first_mut() {
            *first += n;
        }
        let values = aya::maps::PerCpuValues::try_from(v)
            .map_err(|e| DataplaneError::Inject(e.to_string()))?;
        arr.set(i, values, 0).map_err(map_err("STATS"))
    }

    /// Sums every counter over all CPUs.
    pub fn stats(&self) -> Result<Stats, DataplaneError> {
        let arr: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map("STATS")
                .ok_or(DataplaneError::Missing("map STATS"))?,
        )
        .map_err(map_err("STATS"))?;
        let mut values = Vec::with_capacity(STATS_LEN as usize);
        for i in 0..STATS_LEN {
            let per_cpu = arr.get(&i, 0).map_err(map_err("STATS"))?;
            values.push(per_cpu.iter().sum());
        }
        Ok(Stats::from_values(values))
    }

    /// The route MTUs the dataplane remembers (`ROUTE_MTU`: see `nat64-ebpf/src/egress.rs`),
    /// each as its destination, the receiving interface it was looked up from, and the MTU
    /// (`u32::MAX`: none that limits).
    pub fn route_mtus(&self) -> Result<Vec<(std::net::IpAddr, u32, u32)>, DataplaneError> {
        // The key: the destination (4 words; IPv4 in the first), the source, the interface,
        // the family; the value: the MTU, padding, the time. Native byte order, but for the
        // addresses.
        let map: aya::maps::HashMap<_, [u8; 28], [u8; 16]> = aya::maps::HashMap::try_from(
            self.ebpf
                .map("ROUTE_MTU")
                .ok_or(DataplaneError::Missing("map ROUTE_MTU"))?,
        )
        .map_err(map_err("ROUTE_MTU"))?;
        let word = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let mut out = Vec::new();
        for entry in map.iter() {
            let (k, v) = entry.map_err(map_err("ROUTE_MTU"))?;
            let dst = if word(&k[24..]) == libc::AF_INET as u32 {
                std::net::IpAddr::from([k[0], k[1], k[2], k[3]])
            } else {
                let mut a = [0u8; 16];
                a.copy_from_slice(&k[..16]);
                std::net::IpAddr::from(a)
            };
            out.push((dst, word(&k[20..]), word(&v[..])));
        }
        Ok(out)
    }
}

/// An error and its sources, for a log line: aya's syscall errors keep the errno in the source.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}
