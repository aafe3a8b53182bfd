//! The binding log's sources (#21): how fast the dataplane pushes binding events and the
//! daemon's reader takes them without loss, and what a new flow costs with random ports
//! (RFC 6056) against deterministic blocks (RFC 7422) and port blocks (RFC 6888 section 5).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use nat64_common::Counter;
use nat64_daemon::{binding_log::EventReader, dataplane::XDP_PROGRAM};
use nat64_tests::xdp::{Loaded, XDP_PASS};

use crate::{
    micro::{once, udp6},
    stats::{Summary, summarize},
};

pub struct Events {
    /// New flows made (each one binding event).
    pub made: u64,
    /// Events the reader took, and those the dataplane lost (ring buffer full).
    pub read: u64,
    pub lost: u64,
    /// Events per second over the run (made / elapsed).
    pub per_second: f64,
}

pub struct NewFlow {
    pub random: Summary,
    pub deterministic: Summary,
    /// Port blocks of 512 (each client's first flow allocates its block).
    pub blocks: Summary,
}

/// The client of new flow `j`: a /64 of its own in 2001:db8:8::/48.
fn client(j: usize) -> [u8; 16] {
    let mut a6 = [0x20, 1, 0xd, 0xb8, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    a6[6..8].copy_from_slice(&(j as u16).to_be_bytes());
    a6
}

/// `flows` new flows as fast as `BPF_PROG_TEST_RUN` makes them, while a thread drains the
/// events as the daemon does (`EventReader::drain`).
pub fn throughput(flows: usize) -> Events {
    let cfg = format!(
        "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"203.0.113.0/24\"\nper_client_limit = 0\nmax_bindings = {}\n",
        flows + 1024
    );
    let mut x = Loaded::load("events", &cfg);
    let ring = x.dp.take_events().expect("the EVENTS ring buffer");
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut r = EventReader::new(ring);
            loop {
                let n = r.drain(4096);
                if n == 0 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
            r.counts.created
        })
    };
    let started = Instant::now();
    for j in 0..flows {
        // 1000 flows per client /64: the clients' pool4 addresses (a hash of the /64) never
        // run out of ports of either parity.
        let port = 1024 + (j % 1000) as u16;
        let (_, action) = once(&x, XDP_PROGRAM, &udp6(client(j / 1000), port, 64));
        assert_eq!(action, XDP_PASS, "new flow {j}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let read = reader.join().expect("reader");
    let lost = x.dp.stats().expect("stats").get(Counter::EventsLost);
    Events {
        made: flows as u64,
        read,
        lost,
        per_second: flows as f64 / elapsed,
    }
}

/// New-flow cost at a small fill, random ports against deterministic blocks and port blocks.
pub fn new_flow(samples: usize) -> NewFlow {
    let base = "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"203.0.113.0/24\"\nper_client_limit = 0\nmax_bindings = 65536\n";
    let measure = |cfg: &str| {
        let x = Loaded::load("new flow", cfg);
        let mut v = Vec::new();
        for j in 0..samples {
            let (d, action) = once(
                &x,
                XDP_PROGRAM,
                &udp6(client(j % 4096), 1024 + (j / 4096) as u16, 64),
            );
            assert_eq!(action, XDP_PASS, "new flow {j}");
            v.push(d as f64);
        }
        summarize(&mut v)
    };
    NewFlow {
        random: measure(base),
        deterministic: measure(&format!(
            "{base}[stateful.deterministic]\nclients = \"2001:db8:8::/52\"\n"
        )),
        blocks: measure(&format!("{base}port_block_size = 512\n")),
    }
}
