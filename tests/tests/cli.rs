//! The daemon's command line: configuration errors name the field and the reason, and nothing is
//! touched when the configuration is bad.

use std::process::Command;

fn nat64d(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(nat64_tests::nat64d_path())
        .args(args)
        .output()
        .expect("run nat64d");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("nat64-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&p, text).expect("write config");
    p
}

#[test]
fn check_config_accepts_the_example_config() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nat64d.toml");
    let (ok, out, err) = nat64d(&["check-config", "--skip-interface-check", example]);
    assert!(ok, "example config rejected: {err}");
    assert!(out.contains("OK"), "{out}");
}

/// A file that would translate nothing (no interface, no translator link) passes, since
/// `nat64d run --interface` may name the interfaces, but says so; one with either does not.
#[test]
fn check_config_notes_a_file_that_would_translate_nothing() {
    let nothing = write_config("nothing", "translator_link = \"off\"\n");
    let (ok, out, err) = nat64d(&[
        "check-config",
        "--skip-interface-check",
        nothing.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("OK"), "{out}{err}");
    assert!(
        err.contains("nothing would be translated") && err.contains("--interface"),
        "{err}"
    );
    let link = write_config("link", "pool6 = \"64:ff9b::/96\"\n");
    let (ok, out, err) = nat64d(&[
        "check-config",
        "--skip-interface-check",
        link.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("OK") && err.is_empty(), "{out}{err}");
}

#[test]
fn check_config_names_field_and_reason() {
    let cases = [
        (
            "len",
            "pool6 = \"64:ff9b::/80\"\n",
            "pool6: prefix length /80",
        ),
        (
            "unknown",
            "pool6 = \"64:ff9b::/96\"\nturbo = true\n",
            "unknown field `turbo`",
        ),
        (
            "eam",
            "[[eam]]\nipv6 = \"2001:db8::/121\"\nipv4 = \"192.0.2.0/24\"\n",
            "eam[0]: 2001:db8::/121 has 7 suffix bits but 192.0.2.0/24 has 8",
        ),
        ("syntax", "pool6 = \n", "TOML parse error"),
    ];
    for (name, text, expected) in cases {
        let p = write_config(name, text);
        let (ok, _, err) = nat64d(&[
            "check-config",
            "--skip-interface-check",
            p.to_str().unwrap(),
        ]);
        let _ = std::fs::remove_file(&p);
        assert!(!ok, "{name}: accepted a bad config");
        assert!(
            err.contains(expected),
            "{name}: expected {expected:?} in:\n{err}"
        );
    }
}

#[test]
fn run_refuses_unknown_interface_before_touching_anything() {
    let (ok, _, err) = nat64d(&["run", "--interface", "nat64-nosuch0"]);
    assert!(!ok);
    assert!(
        err.contains("interfaces[0].name: no interface named \"nat64-nosuch0\""),
        "{err}"
    );
}

#[test]
fn run_refuses_bad_override() {
    let (ok, _, err) = nat64d(&["run", "--pool6", "2001:db8::/33", "--interface", "lo"]);
    assert!(!ok);
    assert!(err.contains("pool6: prefix length /33"), "{err}");
}

/// `nat64d doctor` names what a node lacks and how to fix it (here: forwarding, off in a fresh
/// namespace), and passes once it is fixed.
#[test]
fn doctor_names_missing_forwarding_and_passes_once_fixed() {
    nat64_tests::require_root();
    let ns = nat64_tests::netns::Netns::new("doctor");
    // `nat64d doctor [--config FILE]` in the namespace: (passed, report).
    let doctor = |ns: &nat64_tests::netns::Netns, cfg: Option<&std::path::Path>| {
        let mut cmd = ns.command(nat64_tests::nat64d_path().to_str().unwrap());
        cmd.arg("doctor");
        if let Some(cfg) = cfg {
            cmd.arg("--config").arg(cfg);
        }
        let out = cmd.output().expect("run nat64d doctor");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, report) = doctor(&ns, None);
    assert!(!ok, "a node without forwarding passed:\n{report}");
    assert!(
        report.contains("FIX   ipv4 forwarding: net.ipv4.ip_forward = 0")
            && report.contains("fix: sysctl -w net.ipv4.ip_forward=1"),
        "{report}"
    );
    assert!(report.contains("FIX   ipv6 forwarding"), "{report}");
    ns.sysctl("net.ipv4.ip_forward", "1");
    ns.sysctl("net.ipv6.conf.all.forwarding", "1");
    // A new namespace inherits the host's IPv4 settings, strict reverse-path filtering
    // included on some hosts.
    ns.sysctl("net.ipv4.conf.all.rp_filter", "0");
    let (ok, report) = doctor(&ns, None);
    assert!(ok, "still failing after the fixes:\n{report}");
    assert!(report.contains("ok    ipv4 forwarding"), "{report}");

    // pool4 holding one of the node's own addresses: named, with the interface.
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    // Which hook each interface gets, and why: `auto` is TC on a veth with the translator
    // link on, XDP with it off.
    for (link, want) in [
        (
            "",
            "ok    hook: d0: tc (auto: a virtual link, where TC keeps GSO)",
        ),
        (
            "translator_link = \"off\"\n",
            "ok    hook: d0: xdp (auto: the translator link is off)",
        ),
    ] {
        let cfg = std::env::temp_dir().join(format!("{}-hook.toml", ns.name()));
        std::fs::write(&cfg, format!("{link}[[interfaces]]\nname = \"d0\"\n")).unwrap();
        let (_, report) = doctor(&ns, Some(&cfg));
        assert!(report.contains(want), "{report}");
    }
    ns.ip(&["addr", "add", "203.0.113.5/24", "dev", "d0"]);
    let cfg = std::env::temp_dir().join(format!("{}-doctor.toml", ns.name()));
    std::fs::write(&cfg, "[stateful]\npool4 = \"203.0.113.0/29\"\n").unwrap();
    let (ok, report) = doctor(&ns, Some(&cfg));
    assert!(!ok, "{report}");
    // With the default ports (1024-65535) it would take the host's own ports: named, with
    // the interface and the fix.
    assert!(
        report.contains("FIX   pool4 ports: stateful.pool4[0] 203.0.113.0/29 holds 203.0.113.5, an address of d0, and pool4's port ranges overlap ip_local_port_range"),
        "{report}"
    );
    assert!(report.contains("61001-65535"), "{report}");
    // `nat64d run` refuses the same configuration before touching anything, naming the field.
    let out = ns
        .command(nat64_tests::nat64d_path().to_str().unwrap())
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .expect("run nat64d run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("stateful.pool4[0]: 203.0.113.0/29 holds 203.0.113.5, an address of d0 on this host, and pool4's tcp_ports 1024-65535 overlap net.ipv4.ip_local_port_range"),
        "{err}"
    );
    // Shared by port, clear of ip_local_port_range: fine (RFC 6146 pool4 on the node's own
    // address, as Jool's default).
    std::fs::write(
        &cfg,
        "[stateful]\npool4 = \"203.0.113.0/29\"\nports = \"61001-65535\"\n",
    )
    .unwrap();
    let (_, report) = doctor(&ns, Some(&cfg));
    assert!(
        report.contains("ok    pool4 ports: stateful.pool4[0] 203.0.113.0/29 holds 203.0.113.5, an address of d0, shared by port"),
        "{report}"
    );

    // Someone else's routes inside what the translator answers for: a more specific one wins
    // over the translator's and is named.
    ns.ip(&["link", "set", "dev", "d0", "up"]);
    ns.ip(&["link", "set", "dev", "d1", "up"]);
    ns.ip(&["route", "add", "198.51.100.128/25", "dev", "d1"]);
    ns.ip(&["-6", "route", "add", "64:ff9b::c000:200/120", "dev", "d1"]);
    std::fs::write(
        &cfg,
        "[[eam]]\nipv6 = \"2001:db8:6::/120\"\nipv4 = \"198.51.100.0/24\"\n",
    )
    .unwrap();
    let (ok, report) = doctor(&ns, Some(&cfg));
    let _ = std::fs::remove_file(&cfg);
    assert!(!ok, "{report}");
    assert!(
        report.contains("FIX   routes:")
            && report.contains("198.51.100.128/25 dev d1 (inside 198.51.100.0/24)")
            && report.contains("64:ff9b::c000:200/120 dev d1 (inside 64:ff9b::/96)"),
        "{report}"
    );
}

/// With only the translator link (no interface), the daemon switches forwarding on where it is
/// off, and its routes carry its own protocol number (64), so `ip route show proto 64` lists
/// exactly what it added; they leave with it.
#[test]
fn the_daemon_enables_forwarding_and_tags_its_routes() {
    nat64_tests::require_root();
    let ns = nat64_tests::netns::Netns::new("fwd");
    let dir = std::env::temp_dir().join(format!("{}-run", ns.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = format!(
        "admin_socket = \"{}\"\nmetrics_listen = \"off\"\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n",
        dir.join("admin.sock").display()
    );
    let sysctl = |key: &str| {
        let out = ns.output("sysctl", &["-n", key]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(sysctl("net.ipv4.ip_forward"), "0");
    let daemon = nat64_tests::lab::Daemon::start(&ns, &dir, &toml);
    assert_eq!(sysctl("net.ipv4.ip_forward"), "1");
    assert_eq!(sysctl("net.ipv6.conf.all.forwarding"), "1");
    let routes =
        |args: &[&str]| String::from_utf8_lossy(&ns.output("ip", args).stdout).into_owned();
    let v6 = routes(&["-6", "route", "show", "proto", "64"]);
    let v4 = routes(&["route", "show", "proto", "64"]);
    assert!(v6.contains("64:ff9b::/96 dev nat64"), "{v6}");
    assert!(v4.contains("198.51.100.0/24 dev nat64"), "{v4}");
    assert_eq!(v6.lines().count() + v4.lines().count(), 2, "{v6}{v4}");
    let exit = daemon.stop();
    assert!(exit.status.success(), "{}", exit.stderr);
    assert!(routes(&["route", "show", "proto", "64"]).trim().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A route of the daemon's that someone removes comes back at the next re-sync (10 s).
#[test]
fn a_removed_route_is_put_back() {
    nat64_tests::require_root();
    let ns = nat64_tests::netns::Netns::new("resync");
    let dir = std::env::temp_dir().join(format!("{}-run", ns.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = format!(
        "admin_socket = \"{}\"\nmetrics_listen = \"off\"\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n",
        dir.join("admin.sock").display()
    );
    let daemon = nat64_tests::lab::Daemon::start(&ns, &dir, &toml);
    let routes = || {
        String::from_utf8_lossy(&ns.output("ip", &["route", "show", "proto", "64"]).stdout)
            .into_owned()
    };
    assert!(routes().contains("198.51.100.0/24 dev nat64"));
    ns.ip(&["route", "del", "198.51.100.0/24"]);
    assert!(!routes().contains("198.51.100.0/24"));
    // Put back on the route's deletion event, well before the 10 s periodic re-sync.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !routes().contains("198.51.100.0/24 dev nat64") {
        assert!(
            std::time::Instant::now() < deadline,
            "the route did not come back:\n{}",
            daemon.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = daemon.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
