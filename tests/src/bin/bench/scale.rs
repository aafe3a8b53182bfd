//! Cost per packet and memory with many live bindings and sessions (1k, 100k, 1M: one session
//! each, RFC 6146 section 3.5), the daemon's sweep included, and the rate at which the
//! dataplane makes new bindings (with their sessions) at that fill.

use nat64_common::state::{
    BIB_UDP, Bib4Key, Bib4Value, Bib6Key, Bib6Value, SessionKey, SessionValue,
};
use nat64_daemon::{bindings::now_ns, dataplane::XDP_PROGRAM};
use nat64_tests::xdp::{Loaded, XDP_PASS};

use crate::{
    micro::{SERVER4, once, udp4, udp6},
    stats::{Summary, summarize},
};

pub struct Row {
    pub bindings: usize,
    pub established_6to4: Summary,
    pub established_4to6: Summary,
    /// The same with the access pattern of real traffic: packets of one flow in bursts (16 per
    /// flow, both directions, flows picked at random).
    pub burst_6to4: Summary,
    pub burst_4to6: Summary,
    pub new_flow: Summary,
    pub sweep_seconds: f64,
    pub table_bytes: u64,
}

/// The i-th synthetic binding: its IPv6 side (one client per /64 in 2001:db8:7::/48... spread
/// over /64s) and its pool4 side in 203.0.113.0/24.
fn binding(i: usize) -> ([u8; 16], u16, [u8; 4], u16) {
    let mut a6 = [0x20, 1, 0xd, 0xb8, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    a6[6..8].copy_from_slice(&((i >> 8) as u16).to_be_bytes());
    a6[14..16].copy_from_slice(&((i & 0xff) as u16 + 1).to_be_bytes());
    let a4 = [203, 0, 113, (i % 256) as u8];
    // Ports scattered over the range as the dataplane's allocator leaves them (a random start
    // each), not one contiguous block, which no real table holds and which a sequential
    // search from a random start could fail to get out of. 40507 and 64512 are coprime, so
    // every address's ports stay distinct.
    let port = 1024 + ((i / 256) * 40507 % 64512) as u16;
    (a6, 40000, a4, port)
}

/// Packets per flow in the bursty access pattern.
const BURST: usize = 16;

/// A deterministic spread of indices below `n` (no RNG crate needed for this).
fn picks(n: usize, count: usize) -> Vec<usize> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        })
        .collect()
}

pub fn run(sizes: &[usize], samples: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for &n in sizes {
        let new_flows = samples.min(20000);
        let cfg = format!(
            "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"203.0.113.0/24\"\nper_client_limit = 0\nmax_bindings = {}\n",
            n + new_flows + 1024
        );
        let mut x = Loaded::load("scale", &cfg);
        let now = now_ns();
        {
            let mut t = x.dp.bindings().expect("tables");
            for i in 0..n {
                let (a6, p6, a4, p4) = binding(i);
                let k6 = Bib6Key {
                    addr6: a6,
                    port6: p6.to_be_bytes(),
                    proto: BIB_UDP,
                    _pad: 0,
                };
                let v6 = Bib6Value {
                    addr4: a4,
                    port4: p4.to_be_bytes(),
                    tcp: 0,
                    flags: 0,
                    last_ns: now,
                };
                let k4 = Bib4Key {
                    addr4: a4,
                    port4: p4.to_be_bytes(),
                    proto: BIB_UDP,
                    _pad: 0,
                };
                let v4 = Bib4Value {
                    addr6: a6,
                    port6: p6.to_be_bytes(),
                    tcp: 0,
                    flags: 0,
                    _pad: [0; 4],
                    last_ns: now,
                };
                t.bib4.insert(k4, v4, 0).expect("BIB4 insert");
                t.bib6.insert(k6, v6, 0).expect("BIB6 insert");
                // Its session with the server the measured packets go to and come from.
                let ks = SessionKey {
                    addr4: a4,
                    port4: p4.to_be_bytes(),
                    proto: BIB_UDP,
                    _pad: 0,
                    remote4: SERVER4,
                    remote_port: 53u16.to_be_bytes(),
                    _pad2: [0; 2],
                };
                let vs = SessionValue {
                    tcp6: 0,
                    tcp4: 0,
                    _pad: [0; 6],
                    last_ns: now,
                };
                t.sessions.insert(ks, vs, 0).expect("SESSIONS insert");
            }
        }
        let mut e6 = Vec::new();
        let mut e4 = Vec::new();
        for &i in &picks(n, samples) {
            let (a6, p6, a4, p4) = binding(i);
            let (d, action) = once(&x, XDP_PROGRAM, &udp6(a6, p6, 64));
            assert_eq!(action, XDP_PASS);
            e6.push(d as f64);
            let (d, action) = once(&x, XDP_PROGRAM, &udp4(SERVER4, 53, a4, p4, 64));
            assert_eq!(action, XDP_PASS, "inbound to binding {i}");
            e4.push(d as f64);
        }
        let (mut b6, mut b4) = (Vec::new(), Vec::new());
        for &i in &picks(n, (samples / BURST).max(1)) {
            let (a6, p6, a4, p4) = binding(i);
            for _ in 0..BURST {
                let (d, action) = once(&x, XDP_PROGRAM, &udp6(a6, p6, 64));
                assert_eq!(action, XDP_PASS);
                b6.push(d as f64);
                let (d, action) = once(&x, XDP_PROGRAM, &udp4(SERVER4, 53, a4, p4, 64));
                assert_eq!(action, XDP_PASS);
                b4.push(d as f64);
            }
        }
        let mut fresh = Vec::new();
        for j in 0..new_flows {
            // Each from a /64 of its own (2001:db8:8:J::1): a client's pool4 address filling
            // up is not what this row measures.
            let mut a6 = [0x20, 1, 0xd, 0xb8, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            a6[6..8].copy_from_slice(&(j as u16).to_be_bytes());
            let (d, action) = once(&x, XDP_PROGRAM, &udp6(a6, 40000, 64));
            assert_eq!(action, XDP_PASS, "new flow {j} at {n} bindings");
            fresh.push(d as f64);
        }
        let st = x.cfg.stateful.clone().expect("stateful");
        let started = std::time::Instant::now();
        let swept =
            x.dp.bindings()
                .expect("tables")
                .sweep(&st, now_ns(), usize::MAX)
                .expect("sweep");
        let sweep_seconds = started.elapsed().as_secs_f64();
        assert_eq!(swept.expired, 0);
        assert_eq!(
            swept.live.udp as usize,
            n + new_flows,
            "every binding is live"
        );
        assert_eq!(
            swept.sessions.udp as usize,
            n + new_flows,
            "every session is live"
        );
        let table_bytes = x
            .dp
            .map_memory()
            .into_iter()
            .filter(|(m, _)| ["BIB6", "BIB4", "CLIENTS", "SESSIONS", "PEERS"].contains(&m.as_str()))
            .map(|(_, b)| b)
            .sum();
        rows.push(Row {
            bindings: n,
            established_6to4: summarize(&mut e6),
            established_4to6: summarize(&mut e4),
            burst_6to4: summarize(&mut b6),
            burst_4to6: summarize(&mut b4),
            new_flow: summarize(&mut fresh),
            sweep_seconds,
            table_bytes,
        });
    }
    rows
}
