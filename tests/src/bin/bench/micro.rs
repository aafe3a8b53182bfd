//! Per-packet cost of each dataplane path: the real loaded programs run on crafted frames with
//! `BPF_PROG_TEST_RUN`, one frame per run (the kernel times the program alone), many runs per
//! case; against the same harness running `nat64_pass` (XDP_PASS, nothing else): the floor.

use etherparse::PacketBuilder;
use nat64_daemon::dataplane::{PASS_PROGRAM, XDP_PROGRAM};
use nat64_tests::xdp::{Loaded, XDP_PASS, action_name};

use crate::stats::{Summary, summarize};

const MACS: ([u8; 6], [u8; 6]) = ([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]);
/// The lab's IPv6 client (inside the EAM prefix): stateless.
pub const CLIENT6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2];
/// A stateful client: no stateless mapping.
pub const STATEFUL6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
pub const SERVER6: [u8; 16] = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 2];
pub const SERVER4: [u8; 4] = [192, 0, 2, 2];
pub const CLIENT4: [u8; 4] = [198, 51, 100, 2];

pub const CONFIG: &str = "pool6 = \"64:ff9b::/96\"\n\
    [[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n\
    [stateful]\npool4 = \"203.0.113.0/24\"\nper_client_limit = 0\nmax_bindings = 131072\n";

pub fn udp6(src: [u8; 16], sport: u16, payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(src, SERVER6, 64)
        .udp(sport, 53)
        .write(&mut v, &vec![0x5a; payload])
        .unwrap();
    v
}

fn tcp6(payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(CLIENT6, SERVER6, 64)
        .tcp(40000, 443, 1000, 64240)
        .ack(1)
        .write(&mut v, &vec![0x5a; payload])
        .unwrap();
    v
}

fn echo6() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(CLIENT6, SERVER6, 64)
        .icmpv6_echo_request(7, 1)
        .write(&mut v, &[0x5a; 56])
        .unwrap();
    v
}

pub fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut v, &vec![0x5a; payload])
        .unwrap();
    v
}

fn tcp4(payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv4(SERVER4, CLIENT4, 64)
        .tcp(443, 40000, 1000, 64240)
        .ack(1)
        .write(&mut v, &vec![0x5a; payload])
        .unwrap();
    v
}

fn echo4() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv4(SERVER4, CLIENT4, 64)
        .icmpv4_echo_reply(7, 1)
        .write(&mut v, &[0x5a; 56])
        .unwrap();
    v
}

/// ICMPv6 Port Unreachable from the client about a datagram the server sent it.
fn error6() -> Vec<u8> {
    let mut inner = Vec::new();
    PacketBuilder::ipv6(SERVER6, CLIENT6, 63)
        .udp(53, 40000)
        .write(&mut inner, &[0x5a; 32])
        .unwrap();
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6(CLIENT6, SERVER6, 64)
        .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Port,
        ))
        .write(&mut v, &inner)
        .unwrap();
    v
}

/// ICMPv4 Port Unreachable from the server about a datagram the client sent it.
fn error4() -> Vec<u8> {
    let mut inner = Vec::new();
    PacketBuilder::ipv4(CLIENT4, SERVER4, 63)
        .udp(40000, 53)
        .write(&mut inner, &[0x5a; 32])
        .unwrap();
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv4(SERVER4, CLIENT4, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut v, &inner)
        .unwrap();
    v
}

/// Runs `program` once on `frame`: the kernel's duration of the run (ns) and the action.
pub fn once(x: &Loaded, program: &'static str, frame: &[u8]) -> (u64, u32) {
    run_once(x.dp.program(program).expect("program"), frame)
}

/// Runs `nat64_tc` once on `frame` (the socket buffer `BPF_PROG_TEST_RUN` builds): the kernel's
/// duration of the run (ns) and the TC verdict.
pub fn once_tc(x: &Loaded, frame: &[u8]) -> (u64, u32) {
    run_once(x.dp.tc().expect("nat64_tc"), frame)
}

/// One `BPF_PROG_TEST_RUN` of `prog` (XDP or TC) on `frame`: its duration (ns) and verdict.
fn run_once<P>(prog: &P, frame: &[u8]) -> (u64, u32)
where
    P: for<'a> aya::programs::TestRun<
            Opts<'a> = aya::programs::TestRunOptions<'a>,
            Result = aya::programs::TestRunResult,
        >,
{
    let mut out = vec![0u8; frame.len() + 256];
    let r = prog
        .test_run(aya::programs::TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    (r.duration.as_nanos() as u64, r.return_value)
}

/// `runs` runs of `frame`, each checked to end in `want`; for the fast path, the frame is
/// also checked once to come out translated (the other family) or untouched, as the case says.
pub fn measure(x: &Loaded, program: &'static str, frame: &[u8], want: u32, runs: usize) -> Summary {
    let mut ns = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (d, action) = once(x, program, frame);
        assert_eq!(action, want, "{}: expected {}", program, action_name(want));
        ns.push(d as f64);
    }
    summarize(&mut ns)
}

/// Like [`measure`] on the fast path, after checking once that the frame comes out translated
/// into the other family (`translated`) or untouched.
fn measure_case(x: &Loaded, frame: &[u8], translated: bool, runs: usize) -> Summary {
    let (action, out) = x.run_program(XDP_PROGRAM, frame);
    assert_eq!(action, XDP_PASS);
    if translated {
        assert_ne!(
            out.get(12..14),
            frame.get(12..14),
            "not translated: {out:02x?}"
        );
    } else {
        assert_eq!(out, frame, "touched");
    }
    measure(x, XDP_PROGRAM, frame, XDP_PASS, runs / 4);
    measure(x, XDP_PROGRAM, frame, XDP_PASS, runs)
}

/// `runs` timed calls of `run` (each returning its ns), after a quarter as many to warm up.
fn timed(runs: usize, mut run: impl FnMut() -> u64) -> Summary {
    for _ in 0..runs / 4 {
        run();
    }
    let mut ns: Vec<f64> = (0..runs).map(|_| run() as f64).collect();
    summarize(&mut ns)
}

/// `runs` runs of `frame` through `nat64_tc`, each checked to end in TC_ACT_OK, the frame
/// checked once to come out translated.
fn measure_tc(x: &Loaded, frame: &[u8], runs: usize) -> Summary {
    let (action, out) = x.run_tc(frame, 0);
    assert_eq!(action, XDP_PASS, "nat64_tc: expected TC_ACT_OK");
    assert_ne!(
        out.get(12..14),
        frame.get(12..14),
        "not translated at TC: {out:02x?}"
    );
    timed(runs, || {
        let (d, verdict) = once_tc(x, frame);
        assert_eq!(verdict, 0, "nat64_tc: expected TC_ACT_OK");
        d
    })
}

/// One row: the case, its cost, and the ratio to the floor.
pub struct Row {
    pub case: &'static str,
    pub cost: Summary,
}

pub fn run(runs: usize) -> (Summary, Vec<Row>) {
    let x = Loaded::load("bench", CONFIG);
    // Warm up every path once (first runs pay for cold caches).
    let floor = {
        let f = udp6(CLIENT6, 40000, 64);
        measure(&x, PASS_PROGRAM, &f, XDP_PASS, runs / 4);
        measure(&x, PASS_PROGRAM, &f, XDP_PASS, runs)
    };
    let mut rows = Vec::new();
    // What an ingress node sees most: traffic that is not the translator's, passed untouched.
    for (case, frame) in [
        ("IPv6 not ours (passed untouched)", {
            let mut f = udp6(CLIENT6, 40000, 64);
            // Destination 2001:db8:9::1: neither pool6 nor an EAM prefix.
            f[38..54].copy_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            f
        }),
        (
            "IPv4 not ours (passed untouched)",
            udp4(SERVER4, 53, [192, 0, 2, 77], 40000, 64),
        ),
    ] {
        rows.push(Row {
            case,
            cost: measure_case(&x, &frame, false, runs),
        });
    }
    let cases: Vec<(&'static str, Vec<u8>)> = vec![
        ("6to4 TCP (100-byte payload)", tcp6(100)),
        ("6to4 UDP (64-byte payload)", udp6(CLIENT6, 40000, 64)),
        ("6to4 ICMP echo", echo6()),
        ("6to4 ICMP error (port unreachable)", error6()),
        ("4to6 TCP (100-byte payload)", tcp4(100)),
        (
            "4to6 UDP (64-byte payload)",
            udp4(SERVER4, 53, CLIENT4, 40000, 64),
        ),
        ("4to6 ICMP echo", echo4()),
        ("4to6 ICMP error (port unreachable)", error4()),
    ];
    for (case, frame) in cases {
        rows.push(Row {
            case,
            cost: measure_case(&x, &frame, true, runs),
        });
    }
    // Where the time goes, first part: the dispatcher and its tail call. The direction
    // programs run alone on the same frames; the difference to the rows above is what
    // `nat64_xdp` (the ethertype check and the tail call through `PROGS`) costs.
    for (case, program, frame) in [
        (
            "6to4 UDP (64-byte payload), nat64_xdp_6to4 alone: no dispatcher, no tail call",
            "nat64_xdp_6to4",
            udp6(CLIENT6, 40000, 64),
        ),
        (
            "4to6 UDP (64-byte payload), nat64_xdp_4to6 alone: no dispatcher, no tail call",
            "nat64_xdp_4to6",
            udp4(SERVER4, 53, CLIENT4, 40000, 64),
        ),
    ] {
        measure(&x, program, &frame, XDP_PASS, runs / 4);
        rows.push(Row {
            case,
            cost: measure(&x, program, &frame, XDP_PASS, runs),
        });
    }
    // Packets that leave with DF over 1260 bytes (6to4) or translate to over 1280 (4to6) have
    // the MTU of their route looked up (`egress.rs`) when they are larger than the smallest
    // MTU of the node's interfaces (`Config::mtu_floor4`/`6`): measured in a namespace whose
    // routes lead somewhere (1500-byte links), as on a node, with every interface at 1500 (no
    // lookup), then with another interface at 1280 (the lookup made).
    let fib = nat64_tests::netns::Netns::new("bench-fib");
    fib.veth("r0", "r1", None, &["192.0.2.1/24", "2001:db8:6::1/64"]);
    fib.sysctl("net.ipv4.conf.all.forwarding", "1");
    fib.sysctl("net.ipv6.conf.all.forwarding", "1");
    let big = [
        ("6to4 TCP (1400-byte payload, DF", tcp6(1400)),
        ("4to6 TCP (1400-byte payload, DF", tcp4(1400)),
    ];
    let under = fib.run(|| Loaded::load("bench-mtu-1500", CONFIG));
    for (case, frame) in &big {
        let case: &'static str = if case.starts_with("6to4") {
            "6to4 TCP (1400-byte payload, DF, every interface 1500: no MTU lookup)"
        } else {
            "4to6 TCP (1400-byte payload, DF, every interface 1500: no MTU lookup)"
        };
        rows.push(Row {
            case,
            cost: fib.run(|| measure_case(&under, frame, true, runs)),
        });
    }
    fib.veth("s0", "s1", Some(1280), &[]);
    let over = fib.run(|| Loaded::load("bench-mtu-1280", CONFIG));
    for (case, frame) in &big {
        let case: &'static str = if case.starts_with("6to4") {
            "6to4 TCP (1400-byte payload, DF, an interface at 1280: the route's MTU looked up)"
        } else {
            "4to6 TCP (1400-byte payload, DF, an interface at 1280: the route's MTU looked up)"
        };
        rows.push(Row {
            case,
            cost: fib.run(|| measure_case(&over, frame, true, runs)),
        });
    }
    // Stateful: an established flow both ways, then new flows (each run a new source port:
    // a binding made, an atomic insert in each table).
    let first = udp6(STATEFUL6, 40000, 64);
    let (_, out) = x.run(&first);
    let (pool_addr, pool_port) = ipv4_source(&out);
    rows.push(Row {
        case: "stateful 6to4 UDP, established",
        cost: measure_case(&x, &first, true, runs),
    });
    let back = udp4(SERVER4, 53, pool_addr, pool_port, 64);
    rows.push(Row {
        case: "stateful 4to6 UDP, established",
        cost: measure_case(&x, &back, true, runs),
    });
    // The same four at the TC hook (`nat64_tc`, the default on virtual links): the socket
    // buffer's helpers (`bpf_skb_change_proto` above all, docs/profile.md) cost more than
    // XDP's.
    for (case, frame) in [
        ("6to4 UDP (64-byte payload) at TC", udp6(CLIENT6, 40000, 64)),
        (
            "4to6 UDP (64-byte payload) at TC",
            udp4(SERVER4, 53, CLIENT4, 40000, 64),
        ),
        ("stateful 6to4 UDP, established, at TC", first.clone()),
        ("stateful 4to6 UDP, established, at TC", back.clone()),
    ] {
        rows.push(Row {
            case,
            cost: measure_tc(&x, &frame, runs),
        });
    }
    let mut ns = Vec::with_capacity(runs);
    for i in 0..runs.min(60000) {
        // Spread over 200 /64s, hence over pool4's addresses (a /64 always gets the same one),
        // as many clients would: one address's ports filling up is another measurement.
        let mut src = STATEFUL6;
        src[7] = (i % 200) as u8;
        let f = udp6(src, 1024 + (i / 200) as u16, 64);
        let (d, action) = once(&x, XDP_PROGRAM, &f);
        assert_eq!(action, XDP_PASS, "new flow {i} refused");
        ns.push(d as f64);
    }
    rows.push(Row {
        case: "stateful 6to4 UDP, new flow (binding made)",
        cost: summarize(&mut ns),
    });
    // The usual stateful NAT64: no explicit mappings at all (no EAM table to look up).
    let y = Loaded::load(
        "bench-no-eam",
        "pool6 = \"64:ff9b::/96\"\n[stateful]\npool4 = \"203.0.113.0/24\"\nper_client_limit = 0\n",
    );
    let first = udp6(STATEFUL6, 40000, 64);
    let (_, out) = y.run(&first);
    let (pool_addr, pool_port) = ipv4_source(&out);
    rows.push(Row {
        case: "stateful 6to4 UDP, established, no EAM table",
        cost: measure_case(&y, &first, true, runs),
    });
    let back = udp4(SERVER4, 53, pool_addr, pool_port, 64);
    rows.push(Row {
        case: "stateful 4to6 UDP, established, no EAM table",
        cost: measure_case(&y, &back, true, runs),
    });
    (floor, rows)
}

/// Source address and port of a translated IPv4 frame.
pub fn ipv4_source(frame: &[u8]) -> ([u8; 4], u16) {
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0xf) * 4;
    (
        [ip[12], ip[13], ip[14], ip[15]],
        u16::from_be_bytes([ip[ihl], ip[ihl + 1]]),
    )
}

/// The stage profile's timer (docs/profile.md, `nat64-bench --only stages`): the floor and
/// each direction program alone on its frame, medians in ns, with no check of the verdict or
/// the output: a stage build returns early on purpose. The stateful frames use the binding
/// the full program makes (a stage build that returns before it makes none, and is timed on
/// whatever path that leaves).
pub fn stages(runs: usize) -> Vec<(&'static str, f64)> {
    let x = Loaded::load("bench-stages", CONFIG);
    let time =
        |program: &'static str, frame: &[u8]| timed(runs, || once(&x, program, frame).0).median;
    let tc = |frame: &[u8]| timed(runs, || once_tc(&x, frame).0).median;
    let stateful6 = udp6(STATEFUL6, 40000, 64);
    let (_, out) = x.run(&stateful6);
    let (pool_addr, pool_port) = ipv4_source(&out);
    let stateful4 = udp4(SERVER4, 53, pool_addr, pool_port, 64);
    vec![
        ("TC 6to4 UDP", tc(&udp6(CLIENT6, 40000, 64))),
        ("TC 4to6 UDP", tc(&udp4(SERVER4, 53, CLIENT4, 40000, 64))),
        ("TC stateful 6to4 UDP", tc(&stateful6)),
        ("TC stateful 4to6 UDP", tc(&stateful4)),
        ("floor", time(PASS_PROGRAM, &udp6(CLIENT6, 40000, 64))),
        (
            "6to4 UDP",
            time("nat64_xdp_6to4", &udp6(CLIENT6, 40000, 64)),
        ),
        (
            "4to6 UDP",
            time("nat64_xdp_4to6", &udp4(SERVER4, 53, CLIENT4, 40000, 64)),
        ),
        ("stateful 6to4 UDP", time("nat64_xdp_6to4", &stateful6)),
        ("stateful 4to6 UDP", time("nat64_xdp_4to6", &stateful4)),
    ]
}
