//! The lab: stands up an IPv6-only client, the translator running the real daemon and an
//! IPv4-only server in network namespaces, shows live translated traffic both ways, prints the
//! daemon's counters and tears everything down (also on Ctrl-C).
//!
//! Run it with `cargo xtask lab` (which installs the toolchain and builds the daemon first).

use std::{
    net::{SocketAddr, TcpListener, UdpSocket},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use nat64_common::Dir;
use nat64_tests::{
    lab::{CLIENT6, CLIENT6_AS_V4, EAM_V4, EAM_V6, Lab, LabOptions, SERVER4, SERVER4_AS_V6, ping},
    netns::Netns,
    peers,
};

fn main() -> ExitCode {
    nat64_tests::require_root();
    let mode = std::env::args()
        .skip_while(|a| a != "--xdp-mode")
        .nth(1)
        .unwrap_or_else(|| "auto".into());
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // Ctrl-C: remember it; the current step finishes (all are bounded) and `Lab`'s drop
        // removes the namespaces.
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).expect("Ctrl-C handler");
    }
    let ok = demo(&mode, &interrupted);
    if interrupted.load(Ordering::SeqCst) {
        println!("\ninterrupted: lab torn down");
        return ExitCode::from(130);
    }
    if ok {
        println!("\nlab: all steps succeeded; namespaces removed");
        ExitCode::SUCCESS
    } else {
        println!("\nlab: some steps FAILED (see above); namespaces removed");
        ExitCode::FAILURE
    }
}

fn step(title: &str) {
    println!("\n=== {title}");
}

fn demo(mode: &str, interrupted: &AtomicBool) -> bool {
    let stop = || interrupted.load(Ordering::SeqCst);
    let mut all_ok = true;
    let mut check = |ok: bool, what: &str| {
        println!("    {} {what}", if ok { "ok  " } else { "FAIL" });
        all_ok &= ok;
    };

    step("building the lab: three network namespaces joined by veth pairs");
    let mut lab = Lab::new(LabOptions {
        xdp_mode: mode.to_string(),
        ..LabOptions::default()
    });
    println!(
        "    client6  {} (IPv6 only)    -> {}",
        lab.client6.name(),
        CLIENT6
    );
    println!(
        "    xlat     {} (nat64d on xc and xs, hook: {mode})",
        lab.xlat.name()
    );
    println!(
        "    server4  {} (IPv4 only)    -> {}",
        lab.server4.name(),
        SERVER4
    );
    println!("    the IPv4 server is {SERVER4_AS_V6} to IPv6 hosts (pool6 64:ff9b::/96, RFC 6052)");
    println!(
        "    the IPv6 client is {CLIENT6_AS_V4} to IPv4 hosts (EAM {EAM_V6} <-> {EAM_V4}, RFC 7757)"
    );

    step("starting nat64d in the translator namespace");
    println!("{}", indent(&lab.config_toml()));
    lab.start_daemon();
    println!("{}", indent(lab.daemon_log().trim_end()));
    if stop() {
        return false;
    }

    step("IPv6 client fetches a page from the IPv4 server (HTTP over TCP, 6 -> 4)");
    let url = format!("http://[{SERVER4_AS_V6}]:8080/");
    let ok = http_fetch(
        &lab.server4,
        (SERVER4, 8080).into(),
        &lab.client6,
        &url,
        &CLIENT6_AS_V4.to_string(),
    );
    check(
        ok,
        "page received; the server saw the client as its EAM address",
    );
    if stop() {
        return false;
    }

    step("UDP exchange, 6 -> 4 (client6 sends to the IPv4 server's echo port)");
    let echo4 = lab
        .server4
        .run(|| UdpSocket::bind((SERVER4, 7007)))
        .expect("bind UDP");
    let srv = std::thread::spawn(move || peers::udp_echo(echo4, 3));
    let sock = lab
        .client6
        .run(|| UdpSocket::bind("[::]:0"))
        .expect("bind client UDP");
    let n = peers::udp_exchange(
        &sock,
        SocketAddr::from((SERVER4_AS_V6, 7007)),
        &[64, 512, 1400],
        1,
    );
    let seen = srv.join().unwrap_or_default();
    println!(
        "    3 datagrams sent to [{SERVER4_AS_V6}]:7007, {n} echoed back intact; server saw {:?}",
        seen.first()
    );
    check(n == 3, "all datagrams echoed");

    step("ping, 6 -> 4");
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 3);
    println!("{}", indent(summary(&text)));
    check(ok, "ICMPv6 echo translated to ICMP echo and back");
    if stop() {
        return false;
    }

    step("the reverse direction: the IPv4 server reaches the IPv6 client (4 -> 6)");
    let url = format!("http://{CLIENT6_AS_V4}:8080/");
    let any6: SocketAddr = "[::]:8080".parse().expect("address");
    let ok = http_fetch(
        &lab.client6,
        any6,
        &lab.server4,
        &url,
        &SERVER4_AS_V6.to_string(),
    );
    check(
        ok,
        "page received; the IPv6 host saw the IPv4 server as 64:ff9b::c000:202",
    );
    let (ok, text) = ping(&lab.server4, &CLIENT6_AS_V4.to_string(), 3);
    println!("{}", indent(summary(&text)));
    check(ok, "ICMP echo translated to ICMPv6 echo and back");

    step("ICMP errors cross too: the translator is a traceroute hop, a closed port is reported");
    let text = nat64_tests::lab::ping_hops(&lab.client6, &SERVER4_AS_V6.to_string(), 1);
    let hop = text
        .lines()
        .find(|l| l.starts_with("From"))
        .unwrap_or("(no answer)");
    println!("    $ ping -t 1 {SERVER4_AS_V6}   (hop limit 1: expires on the translator)");
    println!("    {hop}");
    check(
        hop.contains("2001:db8:6::1") && hop.to_lowercase().contains("exceeded"),
        "Time Exceeded from the translator",
    );
    let refused = peers::udp_refused(&lab.client6, "[::]:0", SocketAddr::from((SERVER4_AS_V6, 9)));
    println!(
        "    UDP to [{SERVER4_AS_V6}]:9 (closed): {}",
        if refused {
            "connection refused (ICMP port unreachable, translated)"
        } else {
            "no answer"
        }
    );
    check(refused, "ICMP Port Unreachable translated to ICMPv6");

    step("stopping nat64d (SIGTERM): it detaches and prints its counters");
    let exit = lab.stop_daemon();
    let stats = exit.stdout;
    for line in stats.lines().filter(|l| !l.ends_with(" 0")) {
        println!("    {line}");
    }
    let sum = |dir: Dir| -> u64 {
        nat64_daemon::stats::all_counters()
            .filter(|c| matches!(c, nat64_common::Counter::Packets(d, _) if *d == dir))
            .filter_map(|c| nat64_daemon::stats::parse_value(&stats, c))
            .sum()
    };
    check(exit.status.success(), "nat64d exited cleanly");
    check(
        sum(Dir::V6ToV4) > 0 && sum(Dir::V4ToV6) > 0,
        "packets translated in both directions",
    );
    check(
        !lab.xlat_link("xc").contains("xdp") && lab.xlat_tcx_programs("xc").is_empty(),
        "the fast path detached from xc",
    );
    all_ok
}

/// Serves one page in `server` at `bind`, fetches `url` with curl from `client`, shows both,
/// and says whether the page names `expect_peer` (the address the server saw).
fn http_fetch(
    server: &Netns,
    bind: SocketAddr,
    client: &Netns,
    url: &str,
    expect_peer: &str,
) -> bool {
    let listener = server.run(|| TcpListener::bind(bind)).expect("bind HTTP");
    let srv = std::thread::spawn(move || peers::http_serve(listener, 1, Duration::from_secs(10)));
    let out = client.output("curl", &["-sS", "-m", "5", url]);
    println!("    $ curl {url}");
    println!("{}", indent(&combined(&out)));
    let _ = srv.join();
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains(expect_peer)
}

/// A command's stdout and stderr together, without the trailing newline.
fn combined(out: &std::process::Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s.trim_end().to_string()
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn summary(ping_output: &str) -> &str {
    ping_output
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or(ping_output)
}
