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
    lab::{Lab, LabOptions, SERVER4, SERVER4_AS_V6, STATEFUL_CLIENTS, ping},
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
        log.contains(&format!(
            "adopted_maps={}",
            nat64_daemon::dataplane::STATE_MAPS.len()
        )),
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

    // `nat64d cleanup` refuses while the daemon runs (it would re-create what is removed),
    // and so does a second daemon with the same configuration (it would take the first's
    // pins and attachments over), leaving the first one untouched.
    let (ok, _, err) = lab.cleanup_cli();
    assert!(!ok && err.contains("a daemon is running"), "{err}");
    let nat64d = nat64_tests::nat64d_path();
    let second = lab
        .xlat
        .command(nat64d.to_str().expect("utf-8 path"))
        .args(["run", "--config"])
        .arg(lab.config_path())
        .output()
        .expect("run a second nat64d");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success() && err.contains("already running"),
        "{err}"
    );
    assert_eq!(
        bindings(&lab),
        before,
        "the first daemon still answers, its binding in place"
    );
    // The counters went on from where they were.
    let second = lab.stop_daemon();
    // `nat64d cleanup` removes the pinned state: the next start adopts nothing.
    let (ok, _, err) = lab.cleanup_cli();
    assert!(ok, "{err}");
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

/// Sends `msg` on `tcp` and expects it echoed.
fn echo(tcp: &mut std::net::TcpStream, msg: &[u8; 6], when: &str) {
    let mut buf = [0u8; 6];
    tcp.write_all(msg).unwrap();
    tcp.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("no echo {when}: {e}"));
    assert_eq!(&buf, msg, "{when}");
}

#[test]
fn with_on_stop_keep_the_dataplane_translates_while_no_daemon_runs() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        pinned_state: true,
        extra_config: "on_stop = \"keep\"\n".to_string(),
        ..LabOptions::default()
    });
    lab.start_daemon();
    let listener = lab
        .server4
        .run(|| std::net::TcpListener::bind((SERVER4, 5008)))
        .expect("bind");
    // Echoes on every connection (two: one made before, one while no daemon runs).
    let server = peers::echo_connections(listener, 2, Duration::from_secs(60));
    let mut tcp = lab
        .client6
        .run(|| peers::tcp_connect_from(STATEFUL_CLIENTS[0], (SERVER4_AS_V6, 5008).into()));
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    echo(&mut tcp, b"first!", "before anything");

    // A steady stream of echoes (stateless, through the EAM) across a clean stop, a time with
    // no daemon, a start, a SIGKILL and another start: every one must come back.
    let pinger = lab
        .client6
        .command("ping")
        .args(["-6", "-n", "-c", "240", "-i", "0.05", "-W", "2"])
        .arg(SERVER4_AS_V6.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ping");
    std::thread::sleep(Duration::from_millis(500));

    let exit = lab.stop_daemon();
    assert!(exit.status.success(), "{}", exit.stderr);
    assert!(
        exit.stderr.contains("left translating"),
        "a clean stop with on_stop = keep leaves the dataplane running:\n{}",
        exit.stderr
    );
    assert!(
        lab.xlat_link("xc").contains("xdp"),
        "XDP left attached to xc:\n{}",
        lab.xlat_link("xc")
    );
    let routes = lab.xlat.output("ip", &["route", "show", "proto", "64"]);
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains("dev nat64"),
        "the translator link's routes stay"
    );
    // No daemon: the established session goes on, and a new stateful flow gets a binding from
    // the dataplane alone.
    echo(&mut tcp, b"nodmn1", "with no daemon running");
    let mut second = lab
        .client6
        .run(|| peers::tcp_connect_from(STATEFUL_CLIENTS[1], (SERVER4_AS_V6, 5008).into()));
    second
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    echo(
        &mut second,
        b"newflw",
        "on a flow opened with no daemon running",
    );

    lab.start_daemon();
    let log = lab.daemon_log();
    assert!(
        log.contains("taken_over=true") && !log.contains("taken_over=false"),
        "the new daemon takes the pinned attachments over:\n{log}"
    );
    assert!(log.contains("taking over the translator link"), "{log}");
    echo(&mut tcp, b"again!", "after the daemon came back");
    let now = bindings(&lab);
    assert_eq!(
        now.iter().filter(|b| b.starts_with("tcp")).count(),
        2,
        "the binding the dataplane made alone is adopted: {now:?}"
    );

    lab.kill_daemon();
    echo(&mut tcp, b"killed", "with the daemon killed");
    lab.start_daemon();
    assert!(lab.daemon_log().contains("taken_over=true"));
    echo(
        &mut tcp,
        b"last!!",
        "after the restart that followed the kill",
    );

    let out = pinger.wait_with_output().expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("240 packets transmitted, 240 received"),
        "echoes lost across stop, start and kill:\n{text}"
    );

    // Uninstall: stop (the dataplane stays), then `nat64d cleanup` removes attachments,
    // translator link, routes and pinned state.
    lab.stop_daemon();
    drop((tcp, second));
    let _ = server.join();
    let (ok, said, err) = lab.cleanup_cli();
    assert!(ok, "{said}{err}");
    assert!(said.contains("xc: detached"), "{said}");
    assert!(said.contains("translator link removed"), "{said}");
    assert!(
        !lab.xlat_link("xc").contains("xdp"),
        "{}",
        lab.xlat_link("xc")
    );
    assert!(
        !lab.xlat
            .output("ip", &["link", "show", "dev", "nat64"])
            .status
            .success()
    );
    let (ok, _) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 1);
    assert!(!ok, "still translating after cleanup");
}

/// The TC hook's tcx links are pinned and taken over like XDP links: with the daemon killed
/// the program stays attached and translates; the next daemon swaps its own program into the
/// same link (one program at tcx ingress, not two); a clean stop detaches it.
#[test]
fn tc_attachments_are_pinned_and_taken_over() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        xdp_mode: "tc".into(),
        pinned_state: true,
        ..LabOptions::default()
    });
    let target = SERVER4_AS_V6.to_string();
    let attached = |lab: &Lab, when: &str| {
        for dev in ["xc", "xs"] {
            assert_eq!(
                lab.xlat_tcx_programs(dev),
                ["nat64_tc"],
                "tcx ingress of {dev} {when}"
            );
        }
    };
    lab.start_daemon();
    attached(&lab, "after the start");
    let (ok, text) = ping(&lab.client6, &target, 2);
    assert!(ok, "ping before:\n{text}");

    lab.kill_daemon();
    attached(&lab, "with the daemon killed");
    let (ok, text) = ping(&lab.client6, &target, 2);
    assert!(ok, "ping with no daemon running:\n{text}");

    lab.start_daemon();
    let log = lab.daemon_log();
    assert!(
        log.contains("taken_over=true") && !log.contains("taken_over=false"),
        "the new daemon takes the pinned tcx links over:\n{log}"
    );
    attached(&lab, "after the take-over");
    let (ok, text) = ping(&lab.client6, &target, 2);
    assert!(ok, "ping after the take-over:\n{text}");

    let exit = lab.stop_daemon();
    assert!(exit.status.success(), "{}", exit.stderr);
    for dev in ["xc", "xs"] {
        assert!(
            lab.xlat_tcx_programs(dev).is_empty(),
            "a clean stop detaches {dev}: {:?}",
            lab.xlat_tcx_programs(dev)
        );
    }
}

/// `[[stateful.static]]` across restarts with pinned tables: the adopted tables already hold
/// the static bindings of the last run. The restart keeps them (and the connection made
/// through one), and a start whose file no longer lists one, or moves it, follows the file.
#[test]
fn static_bindings_survive_a_restart_and_follow_the_file() {
    nat64_tests::require_root();
    let client = STATEFUL_CLIENTS[1];
    let listed = |port4: u16| {
        format!(
            "\n[[stateful.static]]\nprotocol = \"tcp\"\nipv6 = \"[{client}]:8080\"\nipv4 = \"203.0.113.201:{port4}\"\n"
        )
    };
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        pinned_state: true,
        stateful_extra: listed(80),
        ..LabOptions::default()
    });
    lab.start_daemon();
    let service = lab
        .client6
        .run(|| std::net::TcpListener::bind((client, 8080)))
        .expect("bind service");
    let accept = std::thread::spawn(move || {
        let (mut s, _) = service.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 6];
        for _ in 0..2 {
            s.read_exact(&mut buf).expect("message");
            s.write_all(&buf).expect("echo");
        }
        service
    });
    let mut tcp = lab
        .server4
        .run(|| {
            std::net::TcpStream::connect_timeout(
                &(std::net::Ipv4Addr::new(203, 0, 113, 201), 80).into(),
                Duration::from_secs(5),
            )
        })
        .expect("connect through the static binding");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    echo(&mut tcp, b"before", "before the restart");
    let static_line = format!("tcp [{client}]:8080 203.0.113.201:80");
    assert!(
        bindings(&lab).contains(&static_line),
        "{:?}",
        bindings(&lab)
    );

    // The same file: the restart adopts the binding as it is, and the connection goes on.
    let first = lab.restart_daemon();
    assert!(first.status.success(), "{}", first.stderr);
    assert!(
        bindings(&lab).contains(&static_line),
        "{:?}",
        bindings(&lab)
    );
    echo(&mut tcp, b"after!", "after the restart");
    let service = accept.join().expect("service");
    drop(service);

    // One an operator adds at run time is not the file's: restarts leave it alone.
    let (ok, _, err) = lab.bindings_cli(&[
        "add",
        "--protocol",
        "udp",
        "--ipv6",
        &format!("[{client}]:5353"),
        "--ipv4",
        "203.0.113.202:5353",
    ]);
    assert!(ok, "{err}");
    let operators = format!("udp [{client}]:5353 203.0.113.202:5353");

    // Moved to another port: the old binding goes, the new one is there.
    lab.stop_daemon();
    let moved = lab.config_toml().replace(&listed(80), &listed(81));
    assert_ne!(moved, lab.config_toml());
    lab.start_daemon_with(&moved);
    let now = bindings(&lab);
    assert!(!now.contains(&static_line), "{now:?}");
    assert!(
        now.contains(&format!("tcp [{client}]:8080 203.0.113.201:81")),
        "{now:?}"
    );
    assert!(now.contains(&operators), "{now:?}");

    // No longer listed: gone.
    lab.stop_daemon();
    lab.start_daemon_with(&lab.config_toml().replace(&listed(80), ""));
    let now = bindings(&lab);
    assert!(
        !now.iter().any(|l| l.contains(&format!("[{client}]:8080"))),
        "{now:?}"
    );
    assert!(now.contains(&operators), "{now:?}");
    assert!(lab.daemon_log().contains("no longer configured: removed"));
}

/// The size of a pinned state table, as the kernel has it.
fn pinned_size(lab: &Lab, map: &str) -> u32 {
    let path = lab
        .dir()
        .join("bpf/nat64d")
        .join(format!("v{}", nat64_common::maps::LAYOUT_VERSION))
        .join(map);
    aya::maps::MapData::from_pin(&path)
        .and_then(|m| m.info())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .max_entries()
}

/// The kernel cannot resize a map, and a pinned one is adopted whatever its size: a restart
/// that turns stateful NAT64 on after a run without it (one-entry tables), or changes
/// `max_bindings`, gets tables of the configured size, with what the old ones held.
#[test]
fn a_restart_resizes_pinned_tables_to_the_configuration() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        pinned_state: true,
        ..LabOptions::default()
    });
    let toml = lab.config_toml();
    let stateless = toml[..toml.find("\n[stateful]").expect("stateful section")].to_string();
    let sized = |n: u32| format!("{toml}\nmax_bindings = {n}\n");
    lab.start_daemon_with(&stateless);
    lab.stop_daemon();
    assert_eq!(pinned_size(&lab, "BIB6"), 1, "stateless: one-entry tables");

    lab.start_daemon_with(&sized(64));
    let log = lab.daemon_log();
    assert!(
        log.contains("table resized") && log.contains("map=\"BIB6\""),
        "{log}"
    );
    assert_eq!(pinned_size(&lab, "BIB6"), 64);
    assert_eq!(pinned_size(&lab, "SESSIONS"), 128);
    // Three flows, three bindings: a one-entry table would have refused two.
    let echo = lab
        .server4
        .run(|| std::net::UdpSocket::bind((SERVER4, 7011)))
        .expect("bind");
    let echo = std::thread::spawn(move || peers::udp_echo(echo, 3));
    for port in [41001, 41002, 41003] {
        let sock = lab
            .client6
            .run(|| std::net::UdpSocket::bind((STATEFUL_CLIENTS[0], port)))
            .expect("bind client");
        assert_eq!(
            peers::udp_exchange(&sock, (SERVER4_AS_V6, 7011).into(), &[64], port.into()),
            1,
            "flow from port {port}"
        );
    }
    assert_eq!(echo.join().expect("echo").len(), 3);
    let before = bindings(&lab);
    assert_eq!(before.len(), 3, "{before:?}");

    // A bigger table: the bindings are carried over.
    lab.stop_daemon();
    lab.start_daemon_with(&sized(128));
    assert_eq!(pinned_size(&lab, "BIB6"), 128);
    assert_eq!(pinned_size(&lab, "BIB4"), 128);
    assert_eq!(bindings(&lab), before);
}

/// Counters pinned by a daemon of another version, with another number of slots (a new
/// counter came), are not adopted: a pin is adopted whatever its size, so the counters past
/// its end would never count, and carried over slot by slot they would land on other
/// counters. The table is made anew at this version's size (the counters start from zero,
/// which Prometheus takes as a reset) and everything counts.
#[test]
fn counters_pinned_in_another_layout_are_made_anew() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        pinned_state: true,
        ..LabOptions::default()
    });
    // The state directory as the daemon makes it, with a ten-slot STATS in it.
    let dir = lab
        .dir()
        .join("bpf/nat64d")
        .join(format!("v{}", nat64_common::maps::LAYOUT_VERSION));
    lab.start_daemon();
    lab.stop_daemon();
    std::fs::remove_file(dir.join("STATS")).expect("unpin STATS");
    pin_percpu_array(&dir.join("STATS"), 10);
    assert_eq!(pinned_size(&lab, "STATS"), 10);

    lab.start_daemon();
    let log = lab.daemon_log();
    assert!(log.contains("counters start again from zero"), "{log}");
    assert_eq!(
        pinned_size(&lab, "STATS"),
        nat64_common::counters::STATS_LEN
    );
    let (ok, text) = nat64_tests::lab::ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
    assert!(ok, "{text}");
    let exit = lab.stop_daemon();
    assert!(
        parse_value(&exit.stdout, Counter::Packets(Dir::V6ToV4, L4Proto::Icmp)).unwrap_or(0) >= 2,
        "{}",
        exit.stdout
    );
}

/// Creates a per-CPU array of `n` u64 slots with u32 keys and pins it at `path` (raw
/// `bpf(2)`: BPF_MAP_CREATE, then BPF_OBJ_PIN).
fn pin_percpu_array(path: &std::path::Path, n: u32) {
    use std::os::unix::ffi::OsStrExt as _;
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_OBJ_PIN: libc::c_long = 6;
    const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
    // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries.
    let mut attr = [0u32; 32];
    attr[..4].copy_from_slice(&[BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, n]);
    // SAFETY: `attr` outlives the call and is larger than the kernel reads for this command.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr) as u32,
        )
    };
    assert!(
        fd >= 0,
        "BPF_MAP_CREATE: {}",
        std::io::Error::last_os_error()
    );
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // For BPF_OBJ_PIN: pathname (u64), bpf_fd (u32).
    let mut attr = [0u64; 16];
    attr[0] = c.as_ptr() as u64;
    attr[1] = fd as u64;
    // SAFETY: as above; `c` stays alive until after the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_PIN,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr) as u32,
        )
    };
    assert_eq!(rc, 0, "BPF_OBJ_PIN: {}", std::io::Error::last_os_error());
    // SAFETY: closing the descriptor made above; the pin keeps the map.
    unsafe { libc::close(fd as libc::c_int) };
}

/// The lab's configuration with its admin socket off.
fn without_admin_socket(lab: &Lab) -> String {
    let admin = format!("admin_socket = \"{}\"", lab.admin_socket().display());
    let toml = lab.config_toml().replace(&admin, "admin_socket = \"off\"");
    assert!(toml.contains("admin_socket = \"off\""), "{toml}");
    toml
}

/// `nat64d <args> <the lab's configuration file>` in the translator's namespace.
fn nat64d_on_lab_config(lab: &Lab, args: &[&str]) -> std::process::Output {
    let nat64d = nat64_tests::nat64d_path();
    lab.xlat
        .command(nat64d.to_str().expect("utf-8 path"))
        .args(args)
        .arg(lab.config_path())
        .output()
        .expect("run nat64d")
}

/// Without an admin socket a second daemon on the same state is refused all the same: the
/// first holds the state directory's lock. So is `nat64d cleanup`. The first goes on
/// translating, and once it has stopped a new one starts.
#[test]
fn a_second_daemon_on_the_same_state_is_refused_without_an_admin_socket() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        pinned_state: true,
        ..LabOptions::default()
    });
    let toml = without_admin_socket(&lab);
    lab.start_daemon_with(&toml);
    let run = |args: &[&str]| nat64d_on_lab_config(&lab, args);
    let second = run(&["run", "--config"]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success() && err.contains("another nat64d holds"),
        "{err}"
    );
    let cleanup = run(&["cleanup", "--config"]);
    let err = String::from_utf8_lossy(&cleanup.stderr);
    assert!(
        !cleanup.status.success() && err.contains("another nat64d holds"),
        "{err}"
    );
    let (ok, text) = nat64_tests::lab::ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
    assert!(ok, "the first daemon still translates: {text}");
    lab.stop_daemon();
    lab.start_daemon_with(&toml);
    lab.stop_daemon();
}

/// Without a state directory and without an admin socket, a second daemon for the same
/// translator link in the namespace is refused too: the first holds an abstract socket named
/// after it. So is `nat64d cleanup`, which would take the link from under it. Once the first
/// has stopped (killed here: the kernel frees the name with the process) a new one starts.
#[test]
fn a_second_daemon_in_the_namespace_is_refused_without_state_or_admin_socket() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions::default());
    let toml = without_admin_socket(&lab);
    assert!(toml.contains("state_dir = \"off\""), "{toml}");
    lab.start_daemon_with(&toml);
    let run = |args: &[&str]| nat64d_on_lab_config(&lab, args);
    for args in [["run", "--config"], ["cleanup", "--config"]] {
        let out = run(&args[..]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("another nat64d runs in this network namespace"),
            "nat64d {}: {err}",
            args[0]
        );
    }
    let (ok, text) = nat64_tests::lab::ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
    assert!(ok, "the first daemon still translates: {text}");
    lab.kill_daemon();
    lab.start_daemon_with(&toml);
    let (ok, text) = nat64_tests::lab::ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
    assert!(ok, "the daemon started after the kill translates: {text}");
    lab.stop_daemon();
}

/// A start that fails half way (here: its metrics port is taken) has already put its programs
/// into the program array that the dispatchers an earlier run left attached (`on_stop =
/// "keep"`) call into, and they go on running them once it has exited. They must find what
/// those dispatchers' programs knew: the interfaces' settings (pinned with the state), without
/// which a partial checksum from a veth sender is taken for a full one and every translated
/// datagram arrives with a wrong checksum (and the dispatchers' word that a frame is the
/// translator link's, `LINKMARK`: see packet.rs
/// `a_link_dispatcher_of_another_copy_hands_its_frames_over_as_the_links`).
#[test]
fn programs_swapped_in_by_a_failed_start_run_with_the_interfaces_settings() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        pinned_state: true,
        extra_config: "on_stop = \"keep\"\n".to_string(),
        ..LabOptions::default()
    });
    lab.start_daemon();
    let exchange = |lab: &Lab, port: u16| {
        let server = lab
            .server4
            .run(|| std::net::UdpSocket::bind((SERVER4, port)))
            .expect("bind server");
        let echo = std::thread::spawn(move || peers::udp_echo(server, 3));
        let client = lab
            .client6
            .run(|| std::net::UdpSocket::bind((nat64_tests::lab::CLIENT6, 0)))
            .expect("bind client");
        let n = peers::udp_exchange(&client, (SERVER4_AS_V6, port).into(), &[100, 200, 300], 7);
        let _ = echo.join();
        n
    };
    assert_eq!(exchange(&lab, 7301), 3, "with the daemon");
    let exit = lab.stop_daemon();
    assert!(exit.stderr.contains("left translating"), "{}", exit.stderr);
    assert_eq!(exchange(&lab, 7302), 3, "with no daemon");

    let taken = lab
        .xlat
        .run(|| std::net::TcpListener::bind("127.0.0.1:9464"))
        .expect("take the metrics port");
    let nat64d = nat64_tests::nat64d_path();
    let failed = lab
        .xlat
        .command(nat64d.to_str().expect("utf-8 path"))
        .args(["run", "--config"])
        .arg(lab.config_path())
        .output()
        .expect("run nat64d");
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success() && err.contains("metrics_listen"),
        "{err}"
    );
    drop(taken);
    assert_eq!(exchange(&lab, 7303), 3, "after a failed start");
    // And a start that goes through takes over from there.
    lab.start_daemon();
    assert_eq!(exchange(&lab, 7304), 3, "after a new start");
}

/// Interface settings are pinned with the state (the dispatchers a last run left attached read
/// them): those of an interface no daemon attaches any more (gone while none ran, or no longer
/// configured) are removed once a start has attached everything, so the table does not fill
/// up with them. The attached interfaces' stay.
#[test]
fn settings_of_interfaces_no_longer_attached_are_removed_at_start() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        pinned_state: true,
        ..LabOptions::default()
    });
    let path = lab
        .dir()
        .join("bpf/nat64d")
        .join(format!("v{}", nat64_common::maps::LAYOUT_VERSION))
        .join("IFACES");
    let table = || {
        let map = aya::maps::Map::HashMap(aya::maps::MapData::from_pin(&path).expect("IFACES pin"));
        aya::maps::HashMap::<_, u32, nat64_common::maps::IfaceConfig>::try_from(map)
            .expect("IFACES")
    };
    lab.start_daemon();
    lab.stop_daemon();
    let stale = 0x7fff_0001_u32;
    table()
        .insert(
            stale,
            nat64_common::maps::IfaceConfig {
                flags: 0,
                mtu: 1500,
                addr4: [0; 4],
                _pad: [0; 4],
            },
            0,
        )
        .expect("insert");
    lab.start_daemon();
    let log = lab.daemon_log();
    assert!(
        log.contains("settings of interfaces no longer attached removed"),
        "{log}"
    );
    let keys: Vec<u32> = table().keys().filter_map(Result::ok).collect();
    assert!(!keys.contains(&stale), "{keys:?}");
    let xc = lab
        .xlat
        .run(|| nat64_daemon::sys::if_index("xc"))
        .expect("xc");
    assert!(
        keys.contains(&xc),
        "the attached interface's settings: {keys:?}"
    );
    // The translator link's far end is attached too (its MTU feeds the errors it answers).
    let far = lab
        .xlat
        .run(|| nat64_daemon::sys::if_index("nat64-dp"))
        .expect("nat64-dp");
    assert!(
        keys.contains(&far),
        "the link's far end's settings: {keys:?}"
    );
    let (ok, text) = nat64_tests::lab::ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
    assert!(ok, "{text}");
}
