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
            "[[eam]]\nipv6 = \"2001:db8::/120\"\nipv4 = \"192.0.2.0/25\"\n",
            "eam[0]: 2001:db8::/120 has 8 suffix bits but 192.0.2.0/25 has 7",
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
    let doctor = |ns: &nat64_tests::netns::Netns| {
        let out = ns
            .command(nat64_tests::nat64d_path().to_str().unwrap())
            .arg("doctor")
            .output()
            .expect("run nat64d doctor");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, report) = doctor(&ns);
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
    let (ok, report) = doctor(&ns);
    assert!(ok, "still failing after the fixes:\n{report}");
    assert!(report.contains("ok    ipv4 forwarding"), "{report}");
}
