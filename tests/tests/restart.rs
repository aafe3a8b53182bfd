//! State that survives a daemon restart: with `state_dir` on a bpf filesystem, the binding
//! tables and the counters are pinned, and a restarted daemon adopts them. An established
//! stateful TCP session carries on across the restart (TCP retransmits what crossed no
//! translator in between), with the same pool4 transport address.

use std::{
    io::{Read, Write},
    time::Duration,
};

use nat64_common::{Counter, Dir, L4Proto};
use nat64_daemon::stats::parse_value;
use nat64_tests::{
    lab::{Lab, LabOptions, SERVER4, SERVER4_AS_V6, STATEFUL_CLIENTS},
    peers,
};

/// The bindings `nat64d bindings list` shows: protocol and both transport addresses.
fn bindings(lab: &Lab) -> Vec<String> {
    let (ok, out, err) = lab.bindings_cli(&["list"]);
    assert!(ok, "{err}");
    let mut lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

#[test]
fn bindings_and_counters_survive_a_daemon_restart() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        pinned_state: true,
        ..LabOptions::default()
    });
    lab.start_daemon();
    let log = lab.daemon_log();
    assert!(
        log.contains("adopted_maps=0"),
        "a fresh start adopts nothing:\n{log}"
    );

    let listener = lab
        .server4
        .run(|| std::net::TcpListener::bind((SERVER4, 5007)))
        .expect("bind");
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 6];
        for _ in 0..2 {
            s.read_exact(&mut buf).expect("message");
            s.write_all(&buf).expect("echo");
        }
        peer
    });
    let mut tcp = lab
        .client6
        .run(|| peers::tcp_connect_from(STATEFUL_CLIENTS[0], (SERVER4_AS_V6, 5007).into()));
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 6];
    tcp.write_all(b"before").unwrap();
    tcp.read_exact(&mut buf).expect("echo before the restart");
    let before = bindings(&lab);
    assert_eq!(before.len(), 1, "{before:?}");

    let first = lab.restart_daemon();
    assert!(first.status.success(), "{}", first.stderr);
    let log = lab.daemon_log();
    assert!(
        log.contains("adopted_maps=5"),
        "the restarted daemon adopts its state:\n{log}"
    );
    assert_eq!(
        bindings(&lab),
        before,
        "the binding survived, same pool4 address and port"
    );

    tcp.write_all(b"after!").unwrap();
    tcp.read_exact(&mut buf).expect("echo after the restart");
    assert_eq!(&buf, b"after!");
    let peer = server.join().expect("server");
    assert!(
        before[0].contains(&peer.to_string()),
        "the server saw {peer} all along: {before:?}"
    );

    // The counters went on from where they were.
    let second = lab.stop_daemon();
    // `nat64d cleanup` removes the pinned state: the next start adopts nothing.
    let out = std::process::Command::new(nat64_tests::nat64d_path())
        .args(["cleanup", "--config"])
        .arg(lab.config_path())
        .output()
        .expect("nat64d cleanup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.start_daemon();
    let log = lab.daemon_log();
    assert!(
        log.contains("adopted_maps=0"),
        "state left after cleanup:\n{log}"
    );
    assert!(bindings(&lab).is_empty());
    let tcp_4to6 =
        |text: &str| parse_value(text, Counter::Packets(Dir::V4ToV6, L4Proto::Tcp)).unwrap_or(0);
    assert!(
        tcp_4to6(&second.stdout) > tcp_4to6(&first.stdout),
        "first run {}, both runs {}",
        tcp_4to6(&first.stdout),
        tcp_4to6(&second.stdout)
    );
}
