//! Configuration reload with live traffic: a new mapping applies, established sessions carry
//! on, and a bad or restart-only change is refused while the running configuration keeps
//! working.

use std::{
    io::{Read, Write},
    time::Duration,
};

use nat64_tests::{
    lab::{Lab, LabOptions, SERVER4, SERVER4_AS_V6, STATEFUL_CLIENTS, ping},
    peers,
};

/// The lab's configuration with one more EAM entry: 2001:db8:6::300 as 203.0.113.99 (a
/// `[[eam]]` header is absolute, so it may follow the `[stateful]` table).
fn with_extra_mapping(lab: &Lab) -> String {
    format!("{}{}", lab.config_toml(), nat64_tests::lab::SPARE_EAM)
}

/// What `nat64d config` says runs now: its text, and that text parsed.
fn running_config(lab: &Lab) -> (String, nat64_daemon::Config) {
    let out = std::process::Command::new(nat64_tests::nat64d_path())
        .arg("config")
        .arg("--socket")
        .arg(lab.admin_socket())
        .output()
        .expect("nat64d config");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let running = nat64_daemon::Config::parse(&shown, "nat64d config").expect("parses");
    (shown, running)
}

fn lab() -> Lab {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        // With pinned state a reload swaps in a whole new copy of the programs.
        pinned_state: true,
        ..LabOptions::default()
    });
    lab.prepare_spare_mapping();
    lab.start_daemon();
    lab
}

#[test]
fn a_reload_applies_new_mappings_and_keeps_established_sessions() {
    let lab = lab();
    // An established stateful TCP session across the reload.
    let listener = lab
        .server4
        .run(|| std::net::TcpListener::bind((SERVER4, 5006)))
        .expect("bind");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 6];
        for _ in 0..2 {
            s.read_exact(&mut buf).expect("message");
            s.write_all(&buf).expect("echo");
        }
    });
    let mut tcp = lab
        .client6
        .run(|| peers::tcp_connect_from(STATEFUL_CLIENTS[0], (SERVER4_AS_V6, 5006).into()));
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 6];
    tcp.write_all(b"before").unwrap();
    tcp.read_exact(&mut buf).expect("echo before the reload");

    // Not mapped yet: the IPv4 side cannot reach 2001:db8:6::300.
    let (ok, _) = ping(&lab.server4, "203.0.113.99", 1);
    assert!(!ok, "203.0.113.99 answered before it was mapped");

    // A steady stream of echoes across the reload: not one may be lost. From the client's
    // EAM-mapped address, whose mapping the reload keeps (the lab's other client addresses
    // include 2001:db8:6::300, which the reload maps anew: its flows change addresses).
    let pinger = lab
        .client6
        .command("ping")
        .args([
            "-6",
            "-n",
            "-c",
            "150",
            "-i",
            "0.04",
            "-W",
            "2",
            "-I",
            "2001:db8:6::102",
        ])
        .arg(SERVER4_AS_V6.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ping");
    std::thread::sleep(Duration::from_millis(500));

    // The file changes: the daemon notices it by itself (as with a ConfigMap update).
    std::fs::write(lab.config_path(), with_extra_mapping(&lab)).unwrap();
    let log = lab
        .daemon()
        .wait_log("configuration reloaded", 1, Duration::from_secs(10))
        .unwrap_or_else(|log| panic!("no reload after the file changed:\n{log}"));
    assert!(log.contains("trigger=\"file changed\""), "{log}");
    assert!(log.contains("programs_swapped=true"), "{log}");
    let out = pinger.wait_with_output().expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("150 packets transmitted, 150 received"),
        "echoes lost across the reload:\n{text}\n{}\n{}",
        lab.stats_cli(false).1,
        lab.daemon_log()
    );
    let (ok, text) = ping(&lab.server4, "203.0.113.99", 2);
    assert!(ok, "the new mapping does not work: {text}");

    // `nat64d config` shows what runs now, the new mapping included, as TOML that parses.
    let (shown, running) = running_config(&lab);
    assert!(shown.contains("ipv4 = \"203.0.113.99/32\""), "{shown}");
    assert_eq!(running.eam.len(), 2, "{shown}");

    // The session established before the reload carries on.
    tcp.write_all(b"after!").unwrap();
    tcp.read_exact(&mut buf).expect("echo after the reload");
    assert_eq!(&buf, b"after!");
    server.join().expect("server");

    // SIGHUP with the file unchanged: nothing to do, and said so.
    lab.daemon().signal(libc::SIGHUP);
    lab.daemon()
        .wait_log("configuration unchanged", 1, Duration::from_secs(5))
        .unwrap_or_else(|log| panic!("SIGHUP not handled:\n{log}"));
}

#[test]
fn a_bad_or_restart_only_reload_is_refused_and_the_running_configuration_kept() {
    let lab = lab();
    let good = lab.config_toml();
    // Invalid: refused with the field and the reason.
    std::fs::write(
        lab.config_path(),
        good.replace("pool6 = \"64:ff9b::/96\"", "pool6 = \"64:ff9b::/80\""),
    )
    .unwrap();
    lab.daemon().signal(libc::SIGHUP);
    // The daemon reloads on SIGHUP and on the file's change alike, so each refusal may be
    // logged twice: wait for each by its reason, not by a count of refusals.
    let log = lab
        .daemon()
        .wait_log("pool6: prefix length /80", 1, Duration::from_secs(10))
        .unwrap_or_else(|log| panic!("a bad file was not refused:\n{log}"));
    assert!(log.contains("reload refused"), "{log}");
    // Valid, but only a restart can apply it.
    std::fs::write(
        lab.config_path(),
        good.replace("translator_link = \"nat64\"", "translator_link = \"xl\""),
    )
    .unwrap();
    lab.daemon().signal(libc::SIGHUP);
    lab.daemon()
        .wait_log(
            "translator_link: changes only with a restart",
            1,
            Duration::from_secs(10),
        )
        .unwrap_or_else(|log| panic!("a restart-only change was not refused:\n{log}"));
    let log = lab.daemon_log();
    // The running configuration still translates.
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
    assert!(ok, "{text}");
    assert!(!log.contains("configuration reloaded"), "{log}");
}

/// Runs `nat64d eam ARGS...` against the lab's daemon: (success, stdout, stderr).
fn eam(lab: &Lab, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(nat64_tests::nat64d_path())
        .arg("eam")
        .arg("--socket")
        .arg(lab.admin_socket())
        .args(args)
        .output()
        .expect("nat64d eam");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn nat46_mappings_are_added_and_removed_at_run_time() {
    let lab = lab();
    let (ok, _) = ping(&lab.server4, "203.0.113.99", 1);
    assert!(!ok, "mapped before it was added");
    // Refused, with the reason: an IPv6 suffix shorter than the IPv4 one (RFC 7757 section
    // 3.2), and nothing changes.
    let (ok, _, err) = eam(
        &lab,
        &[
            "add",
            "--ipv6",
            "2001:db8:6::300/128",
            "--ipv4",
            "203.0.113.96/30",
        ],
    );
    assert!(!ok && err.contains("eam[1]"), "{err}");
    let (ok, out, err) = eam(
        &lab,
        &[
            "add",
            "--ipv6",
            "2001:db8:6::300/128",
            "--ipv4",
            "203.0.113.99/32",
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, list, _) = eam(&lab, &["list"]);
    assert!(
        ok && list.contains("2001:db8:6::300/128 203.0.113.99/32"),
        "{list}"
    );
    // Routed into the translator link and translated.
    let routes = lab.xlat.output("ip", &["route", "show", "proto", "64"]);
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains("203.0.113.99 dev nat64"),
        "{}",
        String::from_utf8_lossy(&routes.stdout)
    );
    let (ok, text) = ping(&lab.server4, "203.0.113.99", 2);
    assert!(
        ok,
        "the run-time mapping does not work: {text}\n{}",
        lab.daemon_log()
    );
    // Removed: the route goes, nothing crosses.
    let (ok, out, err) = eam(&lab, &["remove", "--ipv6", "2001:db8:6::300/128"]);
    assert!(ok, "{out}{err}");
    let routes = lab.xlat.output("ip", &["route", "show", "proto", "64"]);
    assert!(
        !String::from_utf8_lossy(&routes.stdout).contains("203.0.113.99"),
        "{}\n{}",
        String::from_utf8_lossy(&routes.stdout),
        lab.daemon_log()
    );
    let (ok, _) = ping(&lab.server4, "203.0.113.99", 1);
    assert!(!ok, "still translated after removal");
    let (ok, _, err) = eam(&lab, &["remove", "--ipv6", "2001:db8:6::300/128"]);
    assert!(!ok && err.contains("no EAM entry"), "{err}");
    // The file's own mapping was never disturbed.
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 1);
    assert!(ok, "{text}");
}

/// An EAM prefix may hold one of the node's own addresses (here the translator's 192.0.2.1/24,
/// the server's subnet): that address stays the node's, and the route into the translator link
/// for the prefix goes in behind the node's connected route (metric 1024) instead of replacing
/// it, so the node keeps its subnet, also when a reload takes the entry away again.
#[test]
fn an_eam_prefix_on_the_nodes_subnet_leaves_its_connected_route_alone() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions::default());
    let with_subnet = format!(
        "{}\n[[eam]]\nipv6 = \"2001:db8:1c0:2::/72\"\nipv4 = \"192.0.2.0/24\"\n",
        lab.config_toml()
    );
    lab.start_daemon_with(&with_subnet);
    let routes = |lab: &Lab| {
        let out = lab
            .xlat
            .output("ip", &["-4", "route", "show", "192.0.2.0/24"]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let r = routes(&lab);
    assert!(
        r.contains("dev xs proto kernel") && r.contains("dev nat64") && r.contains("metric 1024"),
        "the connected route and ours behind it:\n{r}"
    );
    std::fs::write(lab.config_path(), lab.config_toml()).unwrap();
    lab.daemon().signal(libc::SIGHUP);
    lab.daemon()
        .wait_log("configuration reloaded", 1, Duration::from_secs(10))
        .unwrap_or_else(|log| panic!("no reload:\n{log}"));
    let r = routes(&lab);
    assert!(
        r.contains("dev xs proto kernel") && !r.contains("dev nat64"),
        "the connected route alone:\n{r}"
    );
    // The lab translates as before.
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
    assert!(ok, "{text}");
}

/// A reload that finds a configured interface missing for the moment (a link that flaps as
/// a ConfigMap changes) keeps the running configuration, and goes through by itself once the
/// interface is back: no second signal, no second change to the file.
#[test]
fn a_reload_waits_for_a_missing_interface_and_goes_through_when_it_is_back() {
    let lab = lab();
    lab.xlat.ip(&["link", "set", "xs", "down"]);
    lab.xlat.ip(&["link", "set", "xs", "name", "xs-away"]);
    std::fs::write(lab.config_path(), with_extra_mapping(&lab)).unwrap();
    lab.daemon().signal(libc::SIGHUP);
    let log = lab
        .daemon()
        .wait_log("reload waits for the interface", 1, Duration::from_secs(10))
        .unwrap_or_else(|log| panic!("the reload did not wait:\n{log}"));
    assert!(!log.contains("configuration reloaded"), "{log}");
    lab.xlat.ip(&["link", "set", "xs-away", "name", "xs"]);
    lab.xlat.ip(&["link", "set", "xs", "up"]);
    lab.daemon()
        .wait_log("configuration reloaded", 1, Duration::from_secs(10))
        .unwrap_or_else(|log| panic!("no reload once the interface was back:\n{log}"));
    let (shown, running) = running_config(&lab);
    assert_eq!(running.eam.len(), 2, "the new mapping runs: {shown}");
}
