//! `nat64-bench`: the benchmark suite behind `cargo xtask bench` (not part of the tests).
//!
//! 1. Per-packet cost of every dataplane path under `BPF_PROG_TEST_RUN`, against a do-nothing
//!    XDP program in the same harness (the floor).
//! 2. Scale: cost per packet, new-binding cost, sweep time and table memory at 1k, 100k and 1M
//!    live bindings.
//! 3. Binding events: how fast the dataplane pushes them and the daemon's reader takes them,
//!    and new-flow cost with random ports against deterministic blocks and port blocks.
//! 4. Start to ready: where the daemon's start-up time goes, over cold starts.
//! 5. End to end in namespaces: plain IPv4 forwarding, TAYGA and nat64d on the same topology,
//!    in one run, with ratios.
//!
//! `--quick` takes fewer samples (a smoke run); `--write FILE` writes the Markdown report there
//! as well as to stdout.

mod e2e;
mod events;
mod micro;
mod ready;
mod scale;
mod stats;

use std::fmt::Write as _;

use stats::{Summary, mmm};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let write = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1).cloned());
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let want = |part: &str| only.as_deref().is_none_or(|o| o == part);
    nat64_tests::require_root();

    let mut md = String::new();
    let _ = writeln!(md, "{}", header(quick));
    // Not part of a full run: the timer of the stage profile (docs/profile.md).
    if only.as_deref() == Some("stages") {
        let runs = if quick { 5000 } else { 40000 };
        for (case, ns) in micro::stages(runs) {
            println!("{case}: {ns:.0}");
        }
        return;
    }
    if want("micro") {
        eprintln!("nat64-bench: per-packet cost (BPF_PROG_TEST_RUN)");
        let runs = if quick { 2000 } else { 20000 };
        let (floor, rows) = micro::run(runs);
        let _ = writeln!(
            md,
            "## Per-packet cost of each path\n\nBPF_PROG_TEST_RUN on the loaded programs, one frame per run (the kernel times the \
             program alone), {runs} runs per case; nanoseconds, median (p10-p90). The floor is `nat64_pass` \
             (XDP_PASS, nothing else) in the same harness. Every run's verdict is checked, and each \
             case's output once: translated into the other family, or untouched for what is not \
             the translator's. The rows \"at TC\" run `nat64_tc` on the socket buffer the kernel builds for \
             it; a build of it that returns at once costs what the XDP floor does, within 5 ns \
             (docs/profile.md), so their ratios compare with the others'.\n\n| path | ns per packet | ratio to the floor |\n|---|---|---|"
        );
        let _ = writeln!(
            md,
            "| floor: do-nothing XDP program | {} | 1.00 |",
            ns(&floor)
        );
        for r in &rows {
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} |",
                r.case,
                ns(&r.cost),
                r.cost.median / floor.median
            );
        }
        let _ = writeln!(md);
        // Where the time goes: differences between rows of this run that differ in one thing.
        let med = |prefix: &str| {
            rows.iter()
                .find(|r| r.case.starts_with(prefix))
                .map(|r| r.cost.median)
                .unwrap_or_else(|| panic!("no row {prefix}"))
        };
        let parts = [
            ("the harness itself (the floor)", floor.median),
            (
                "looking at a packet that is not ours (dispatcher, parse, the pool6 and EAM checks)",
                med("IPv6 not ours") - floor.median,
            ),
            (
                "the dispatcher and its tail call, on a packet that is ours (6to4 UDP through nat64_xdp, less nat64_xdp_6to4 alone)",
                med("6to4 UDP (64-byte payload)")
                    - med("6to4 UDP (64-byte payload), nat64_xdp_6to4 alone"),
            ),
            (
                "translating a 6to4 UDP packet, the direction program alone, less the floor",
                med("6to4 UDP (64-byte payload), nat64_xdp_6to4 alone") - floor.median,
            ),
            (
                "the same, 4to6",
                med("4to6 UDP (64-byte payload), nat64_xdp_4to6 alone") - floor.median,
            ),
            (
                "stateful NAT64 over stateless, established 6to4 (binding and session lookups, port rewrite)",
                med("stateful 6to4 UDP, established, no EAM table")
                    - med("6to4 UDP (64-byte payload)"),
            ),
            (
                "an EAM table to look up as well (stateful 6to4, with an EAM table, less without)",
                med("stateful 6to4 UDP, established")
                    - med("stateful 6to4 UDP, established, no EAM table"),
            ),
            (
                "the route's MTU looked up (a big DF packet when an interface is narrower), 6to4",
                med("6to4 TCP (1400-byte payload, DF, an interface")
                    - med("6to4 TCP (1400-byte payload, DF, every"),
            ),
            (
                "the same, 4to6",
                med("4to6 TCP (1400-byte payload, DF, an interface")
                    - med("4to6 TCP (1400-byte payload, DF, every"),
            ),
        ];
        let _ = writeln!(
            md,
            "### Where the time goes\n\nDifferences between rows of the table above that differ in one thing \
             (medians, this run; run-to-run noise is about 5 ns).\n\n| part | ns |\n|---|---|"
        );
        for (what, v) in parts {
            let _ = writeln!(md, "| {what} | {v:.0} |");
        }
        let _ = writeln!(md);
    }
    if want("scale") {
        eprintln!("nat64-bench: scale");
        let sizes: &[usize] = if quick {
            &[1_000, 100_000]
        } else {
            &[1_000, 100_000, 1_000_000]
        };
        let rows = scale::run(sizes, if quick { 2000 } else { 10000 });
        let _ = writeln!(
            md,
            "## Scale: live bindings and sessions\n\nUDP bindings written into the tables, each with its session \
             (RFC 6146 section 3.5), then established flows (random bindings) \
             and new flows (a binding and a session each) measured as above; the daemon's sweep over \
             both tables timed; the tables' kernel memory (BIB6, BIB4, CLIENTS, SESSIONS, preallocated \
             for the table size, and PEERS) from their fdinfo.\n\n| live bindings and sessions | 6to4 established, random flow each packet, ns | 4to6 established, random, ns | 6to4 established, bursts of 16 per flow, ns | 4to6 established, bursts, ns | new flow, ns (new bindings per second per core) | sweep, s | table memory |\n|---|---|---|---|---|---|---|---|"
        );
        let base = rows
            .first()
            .map(|r| r.established_6to4.median)
            .unwrap_or(1.0);
        let burst6 = rows.first().map(|r| r.burst_6to4.median).unwrap_or(1.0);
        let burst4 = rows.first().map(|r| r.burst_4to6.median).unwrap_or(1.0);
        for r in &rows {
            let _ = writeln!(
                md,
                "| {} | {} ({:+.0}% vs the first row) | {} | {} ({:+.0}%) | {} ({:+.0}%) | {} ({:.0}) | {:.2} | {:.1} MiB |",
                r.bindings,
                ns(&r.established_6to4),
                (r.established_6to4.median / base - 1.0) * 100.0,
                ns(&r.established_4to6),
                ns(&r.burst_6to4),
                (r.burst_6to4.median / burst6 - 1.0) * 100.0,
                ns(&r.burst_4to6),
                (r.burst_4to6.median / burst4 - 1.0) * 100.0,
                ns(&r.new_flow),
                1e9 / r.new_flow.median,
                r.sweep_seconds,
                r.table_bytes as f64 / (1024.0 * 1024.0)
            );
        }
        let _ = writeln!(md);
    }
    if want("events") {
        eprintln!("nat64-bench: binding events");
        let flows = if quick { 20_000 } else { 200_000 };
        let e = events::throughput(flows);
        let f = events::new_flow(if quick { 2000 } else { 10000 });
        let _ = writeln!(
            md,
            "## Binding events and port allocation

New flows made one after another through BPF_PROG_TEST_RUN (one \
             syscall each: the fastest this harness makes them), each pushing a binding event into the \
             `EVENTS` ring buffer (1 MiB), while a thread drains it with the daemon's reader (`EventReader::drain`). \
             Then the cost of a new flow (binding and session) at a small fill, with \
             random ports over the whole range (RFC 6056), with deterministic blocks (RFC 7422, \
             4096 clients over 256 addresses), and with port blocks of 512 ports (RFC 6888 \
             section 5: each of the 4096 clients' first flow allocates its block, the rest bind \
             inside it).

| measure | figure |
|---|---|"
        );
        let _ = writeln!(
            md,
            "| events made, read, lost | {} made, {} read, {} lost |",
            e.made, e.read, e.lost
        );
        let _ = writeln!(
            md,
            "| events per second sustained | {:.0} (the producer's limit here: one syscall per new flow) |",
            e.per_second
        );
        let _ = writeln!(md, "| new flow, random ports, ns | {} |", ns(&f.random));
        let _ = writeln!(
            md,
            "| new flow, deterministic blocks, ns | {} ({:+.0}%) |",
            ns(&f.deterministic),
            (f.deterministic.median / f.random.median - 1.0) * 100.0
        );
        let _ = writeln!(
            md,
            "| new flow, port blocks of 512, ns | {} ({:+.0}%) |",
            ns(&f.blocks),
            (f.blocks.median / f.random.median - 1.0) * 100.0
        );
        let _ = writeln!(md);
    }
    if want("ready") {
        eprintln!("nat64-bench: start to ready");
        let starts = ready::run(if quick { 1 } else { 3 });
        let _ = writeln!(
            md,
            "## Start to ready\n\nCold starts of the release `nat64d` with stateful NAT64, a translator link and one \
             interface (generic XDP) in a namespace of its own; milliseconds from the daemon's own `nat64d ready` \
             line, and from the process's start to that line as the harness saw it. The kernel verifies the \
             programs (the direction programs `nat64_xdp_6to4` and `nat64_xdp_4to6`, which both dispatchers share, and \
             `nat64_tc`) on as many threads as there are CPUs ({} here).\n\n| start | load and verify | link and listeners | attach | process start to ready |\n|---|---|---|---|---|",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        for (i, s) in starts.iter().enumerate() {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                i + 1,
                s.load_and_verify_ms,
                s.link_and_listeners_ms,
                s.attach_ms,
                s.wall_ms
            );
        }
        let _ = writeln!(md);
    }
    if want("e2e") {
        let runs = if quick { 1 } else { 3 };
        let modes = [
            e2e::Mode::Forwarding,
            e2e::Mode::Forwarding6,
            e2e::Mode::Tayga,
            e2e::Mode::Nat64d,
            e2e::Mode::Nat64dTc,
            e2e::Mode::Nat64dXdpForward,
            e2e::Mode::Nat64dTcForward,
        ];
        // NAT64_BENCH_MODES=tayga,tc (names as in the table, matched loosely) runs only those
        // modes, for investigating one; a partial run leaves the other columns empty.
        let only_modes = std::env::var("NAT64_BENCH_MODES").ok();
        let selected = |m: e2e::Mode| {
            only_modes.as_ref().is_none_or(|o| {
                o.split(',')
                    .any(|x| m.name().to_lowercase().contains(&x.to_lowercase()))
            })
        };
        let figures: Vec<e2e::Figures> = modes
            .iter()
            .map(|&m| {
                if !selected(m) {
                    return e2e::Figures::default();
                }
                eprintln!("nat64-bench: end to end, {}", m.name());
                e2e::run(m, runs)
            })
            .collect();
        let _ = writeln!(
            md,
            "## End to end: one path, plain forwarding, TAYGA and nat64d\n\nclient6 - xlat - server4 in namespaces over veth, GSO on at the senders, transmit checksum \
             offload off on the translator's interfaces (so that the receivers verify every checksum; \
             it takes TSO with it, so forwarded aggregates are cut in software: see the next table for \
             offloads on), no XDP on \
             the neighbours (except for nat64d (XDP) forwarding itself, which needs the \
             pass-through program on the veth peers to redirect into them, and complete checksums \
             from the senders: transmit checksum offload off there, which also turns their TSO \
             off). nat64d (XDP) runs the fast path in native XDP on the translator's interfaces, \
             nat64d (TC) at their TC ingress hook (`hook = \"tc\"`); both hand translated \
             packets up the kernel's stack, which forwards them (the default), or, \"forwarding \
             itself\" (`forward_in_dataplane = true`), route them with a FIB lookup and redirect \
             them from the hook. Plain IPv6 forwarding: the client reaches an \
             IPv6 address of the server through the same router, the forwarding its IPv6 traffic \
             would get on a dual-stack path. iperf3 3 s per run, {runs} run(s) per figure: min / median / max. \
             UDP: 64-byte payloads at the highest offered rate (25k to 400k packets/s, iperf3) with at most \
             1% loss, delivered packets per second; under overload: 1M frames from trafgen's packet ring \
             as fast as it sends them, delivered packets per second while it sent (the path's capacity, \
             whatever it drops). Ratios compare medians.\n"
        );
        let mut head = String::from("| measure |");
        for m in &modes {
            let _ = write!(head, " {} |", m.name());
        }
        head.push_str(
            " XDP / IPv4 fwd | TC / IPv4 fwd | XDP / IPv6 fwd | TC / IPv6 fwd | XDP forwarding itself / IPv4 fwd | TC forwarding itself / IPv4 fwd | TC forwarding itself / IPv6 fwd | XDP / TAYGA | TC / TAYGA |\n|---|",
        );
        head.push_str(&"---|".repeat(modes.len() + RATIOS.len()));
        let _ = writeln!(md, "{head}");
        let row = |md: &mut String, label: &str, s: Vec<&Summary>, f: &dyn Fn(f64) -> String| {
            let mut line = format!("| {label} |");
            for x in &s {
                let _ = write!(line, " {} |", mmm(x, f));
            }
            for (a, b) in RATIOS {
                let _ = write!(line, " {:.2} |", s[a].median / s[b].median);
            }
            let _ = writeln!(md, "{line}");
        };
        let gb = |v: f64| format!("{v:.2}");
        for (i, case) in e2e::TCP_CASES.iter().enumerate() {
            let s: Vec<&Summary> = figures.iter().map(|f| &f.tcp[i]).collect();
            row(&mut md, &format!("{case}, Gbit/s"), s, &gb);
        }
        let kp = |v: f64| format!("{:.0}k", v / 1000.0);
        for (i, dir) in ["6to4", "4to6"].into_iter().enumerate() {
            let s: Vec<&Summary> = figures.iter().map(|f| &f.udp_pps[i]).collect();
            row(&mut md, &format!("UDP 64 bytes, {dir}, packets/s"), s, &kp);
        }
        for (i, dir) in ["6to4", "4to6"].into_iter().enumerate() {
            let s: Vec<&Summary> = figures.iter().map(|f| &f.overload_pps[i]).collect();
            row(
                &mut md,
                &format!("UDP 64 bytes under overload (trafgen), {dir}, delivered packets/s"),
                s,
                &kp,
            );
        }
        let us = |v: f64| format!("{v:.0}");
        let s: Vec<&Summary> = figures.iter().map(|f| &f.rtt_us).collect();
        row(&mut md, "ping round trip, µs", s, &us);
        let _ = writeln!(md);

        // The same single stream with the translator's offloads on, as a router's NIC has
        // them: forwarded aggregates leave whole.
        let off_modes = [
            e2e::Mode::Forwarding,
            e2e::Mode::Forwarding6,
            e2e::Mode::Nat64dTc,
            e2e::Mode::Nat64dTcForward,
        ];
        let off: Vec<[Summary; 2]> = off_modes
            .iter()
            .map(|&m| {
                if !selected(m) {
                    return [Summary::default(), Summary::default()];
                }
                eprintln!("nat64-bench: end to end, offloads on, {}", m.name());
                e2e::run_offloaded(m, runs)
            })
            .collect();
        let _ = writeln!(
            md,
            "### TCP, 1 stream, transmit offloads on at the translator\n\nThe table above's lab with the \
             translator's transmit checksum offload (and TSO) left on: GSO aggregates are forwarded \
             whole, as a router's NIC would take them. Receivers trust the checksums of what arrives \
             over veth here, so this setting is for throughput only (the tests verify checksums with \
             offload off). {runs} run(s) per figure.\n\n\
             | measure | plain IPv4 forwarding | plain IPv6 forwarding | nat64d (TC) | nat64d (TC), forwarding itself | TC / IPv4 fwd | TC / IPv6 fwd | TC forwarding itself / IPv4 fwd | TC forwarding itself / IPv6 fwd |\n|---|---|---|---|---|---|---|---|---|"
        );
        for (i, dir) in ["6to4", "4to6"].into_iter().enumerate() {
            let _ = writeln!(
                md,
                "| TCP, 1 stream, {dir}, Gbit/s | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                mmm(&off[0][i], gb),
                mmm(&off[1][i], gb),
                mmm(&off[2][i], gb),
                mmm(&off[3][i], gb),
                off[2][i].median / off[0][i].median,
                off[2][i].median / off[1][i].median,
                off[3][i].median / off[0][i].median,
                off[3][i].median / off[1][i].median,
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "{}", READING);
    print!("{md}");
    if let Some(path) = write {
        std::fs::write(&path, &md).unwrap_or_else(|e| panic!("{path}: {e}"));
        eprintln!("nat64-bench: written to {path}");
    }
}

fn ns(s: &Summary) -> String {
    format!("{:.0} ({:.0}-{:.0})", s.median, s.p10, s.p90)
}

/// The run's context: command, date, kernel, machine size.
fn header(quick: bool) -> String {
    let sh = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    format!(
        "# Benchmarks\n\nCommand: `cargo xtask bench{}` (as root). Date: {}. Kernel: Linux {}. Machine: {} CPUs ({cpu}), {mem_gib:.0} GiB. \
         nat64d and the benchmark built in release mode.\n",
        if quick { " --quick" } else { "" },
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        sh("uname", &["-r"]),
        sh("nproc", &[]),
    )
}

/// The end-to-end table's ratio columns, as (numerator, denominator) indexes into its modes:
/// 0 IPv4 forwarding, 1 IPv6 forwarding, 2 TAYGA, 3 nat64d XDP, 4 nat64d TC, 5 and 6 the same
/// forwarding itself (`forward_in_dataplane`).
const RATIOS: [(usize, usize); 9] = [
    (3, 0),
    (4, 0),
    (3, 1),
    (4, 1),
    (5, 0),
    (6, 0),
    (6, 1),
    (3, 2),
    (4, 2),
];

/// How to read the tables (what each measures, and what limits it), written under them.
const READING: &str = "## Reading the figures

- **The floor** is what `BPF_PROG_TEST_RUN` costs around any program (timer, context set-up),
  measured with a program that only returns XDP_PASS. The translation's own cost is the
  difference. One frame per run keeps every run honest (with `repeat`, the kernel would run
  the program again on the frame it already rewrote), at the price of that fixed overhead in
  every figure.
- **Scale**: the \"random\" established-flow figures pick a random binding for every packet, the
  worst case for the CPU caches; the \"bursts\" columns send 16 packets of one flow in a row
  (both directions), the access pattern of real traffic, each burst's flow picked at random
  (percentages against the first row). What grows with the table is
  memory latency, not the algorithm: two hash lookups per packet (binding and session) whatever the size. The sweep
  walks the whole table through the bpf(2) syscall, bounded per pass by `max_bindings`.
- **End to end**, every mode runs on the same two vCPUs as the traffic generator and receiver,
  over veth. Attaching XDP to a veth makes the kernel give up GSO/TSO on that link, so bulk TCP
  through the XDP fast path runs at the segment-by-segment rate (see
  `../shared/docs/performance-notes.md`): that, not the translation, is the gap to plain
  forwarding in the XDP TCP rows. The TC hook (`hook = \"tc\"`) keeps GSO packets whole
  (`bpf_skb_change_proto`) and closes most of it. On veth it also beats XDP on small packets
  and latency (XDP on a veth converts every skb to an XDP frame and back); physical NICs keep
  GRO after XDP_PASS and are where native XDP earns its place. At TC a GSO aggregate counts as
  one translated packet. The paced UDP rows are bounded by iperf3's
  single-threaded generator on this machine as much as by the path, and at most two trials
  per offered rate decide how far the search goes, so a figure can still jump a whole rate step (100k to 200k
  packets/s, say) from one run to the next, plain forwarding's included. The overload rows take the generator out (trafgen's packet ring offers more
  than any path here carries) and measure capacity whatever is dropped: there the TC hook
  carries what plain forwarding does, and TAYGA does far better than at bounded loss (its
  loop never sleeps under overload). Two vCPUs
  carry the generator, the translator and the receiver at once, so every figure here is a
  ratio measured side by side, not a capacity of the translator alone.
- **Two forwarding baselines.** The translator's IPv6 side is IPv6, so what its traffic would
  otherwise get is IPv6 forwarding; the IPv4 column is the path's IPv4 limit. With transmit
  checksum offload off on the router (the main table), forwarded aggregates are cut in
  software and a single IPv6 stream runs at about 0.7 of an IPv4 one; nat64d (TC), whose
  client is IPv6, goes at the IPv6 rate. A profile of one stream (docs/profile.md) puts the
  translation at 0.4% of the CPU time with both vCPUs 35-43% idle in every mode: the stream
  waits on when its work runs, not on the work. With the router's offloads on (the second
  table), aggregates leave whole and both baselines are close; that is the figure for a
  router with a real NIC.
- **Forwarding itself** (`forward_in_dataplane = true`): from XDP it gains nothing measurable
  here: a redirect into a veth still builds an skb on the receiving side, and the generator is
  the limit. Its case is physical NICs, where the redirected frame goes straight to the
  driver; it is not measured on this machine. From TC the translated packet skips the
  kernel's receive and forwarding path (netfilter included) for the egress interface's queue:
  under overload that carried 2-10% more than going up the stack in five of the six
  figures of three runs (8% less in the sixth); elsewhere about the same, within the runs'
  spread. The generator and the receiver, on the same two vCPUs, cost more than the router.
";
