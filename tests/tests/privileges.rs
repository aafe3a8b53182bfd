//! The least privilege that works, as the DaemonSet grants it: uid 0 with every capability
//! dropped but CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (`setpriv --bounding-set`, the way a
//! container runtime confines root). With those three the whole daemon works (dataplane,
//! translator link, pinned state and attachments, take-over, cleanup); without any one of them
//! the kernel refuses it at start, and it says so.

use std::{net::Ipv4Addr, time::Duration};

use nat64_tests::{
    lab::{CLIENT6_AS_V4, Lab, LabOptions, SERVER4, SERVER4_AS_V6, ping},
    peers,
};

const CAPS: &str = "+bpf,+net_admin,+perfmon";

#[test]
fn the_daemon_works_with_bpf_net_admin_and_perfmon_only() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        pinned_state: true,
        extra_config: "on_stop = \"keep\"\n".to_string(),
        daemon_caps: Some(CAPS.to_string()),
        ..LabOptions::default()
    });
    lab.start_daemon();
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
    assert!(ok, "IPv6 to IPv4: {text}\n{}", lab.daemon_log());
    let (ok, text) = ping(&lab.server4, &CLIENT6_AS_V4.to_string(), 2);
    assert!(ok, "IPv4 to IPv6: {text}");
    let (ok, text) = ping(&lab.xlat, &CLIENT6_AS_V4.to_string(), 1);
    assert!(ok, "through the translator link: {text}");
    // A SYN to a pool4 port without a binding is held, then refused: the daemon hands the
    // kernel its Port Unreachable (`Dataplane::inject`) with these privileges alone.
    let started = std::time::Instant::now();
    let refused = lab.server4.run(|| {
        peers::tcp_connect_bound(
            (SERVER4, 40000).into(),
            (Ipv4Addr::new(203, 0, 113, 201), 21000).into(),
            Duration::from_secs(12),
        )
    });
    let err = refused.expect_err("a SYN to a pool4 port without a binding was accepted");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{err}\n{}",
        lab.daemon_log()
    );
    // After the 6 seconds a SYN is held (RFC 6146 section 3.5.2.2), not at once.
    assert!(
        started.elapsed() >= Duration::from_millis(5900),
        "{:?}",
        started.elapsed()
    );
    // A second daemon, as confined, takes the pinned attachments over.
    let exit = lab.restart_daemon();
    assert!(exit.status.success(), "{}", exit.stderr);
    let log = lab.daemon_log();
    assert!(log.contains("taken_over=true"), "{log}");
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 1);
    assert!(ok, "{text}");
    lab.stop_daemon();
    // And `nat64d cleanup`, as confined, removes it all.
    let (ok, out, err) = lab.cleanup_cli();
    assert!(ok, "{out}{err}");
    assert!(
        !lab.xlat_link("xc").contains("xdp"),
        "{}",
        lab.xlat_link("xc")
    );
}

#[test]
fn without_any_one_of_the_three_the_kernel_refuses_the_daemon() {
    nat64_tests::require_root();
    let lab = Lab::new(LabOptions {
        stateful: true,
        ..LabOptions::default()
    });
    std::fs::write(lab.config_path(), lab.config_toml()).unwrap();
    for (missing, caps) in [
        ("BPF", "+net_admin,+perfmon"),
        ("NET_ADMIN", "+bpf,+perfmon"),
        ("PERFMON", "+bpf,+net_admin"),
    ] {
        // Bounded: were the daemon to start after all, `timeout` ends it and the test fails.
        let out = lab
            .xlat
            .command("timeout")
            .args(["20", "setpriv", &format!("--bounding-set=-all,{caps}")])
            .args(["--inh-caps=-all", "--"])
            .arg(nat64_tests::nat64d_path())
            .args(["run", "--config"])
            .arg(lab.config_path())
            .output()
            .expect("nat64d run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "without CAP_{missing} the daemon should stop with an error:\n{err}"
        );
        assert!(
            err.contains("loading the dataplane")
                && (err.contains("Operation not permitted") || err.contains("Permission denied")),
            "without CAP_{missing}:\n{err}"
        );
        assert!(!err.contains("nat64d ready"), "{err}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing was left behind by the refused starts.
    assert!(
        !lab.xlat
            .output("ip", &["link", "show", "dev", "nat64"])
            .status
            .success()
    );
}

/// A node without a bpf filesystem (`ip netns exec` gives the daemon a fresh /sys, with none at
/// /sys/fs/bpf): a state directory there would lose every session at the next restart, so
/// the daemon mounts one when it may (root) and otherwise refuses to start, naming the fix;
/// `nat64d doctor`, as confined, reports it as a FIX.
#[test]
fn without_a_bpf_filesystem_the_daemon_mounts_one_or_refuses_with_the_fix() {
    nat64_tests::require_root();
    let lab = Lab::new(LabOptions {
        stateful: true,
        ..LabOptions::default()
    });
    let config = lab
        .config_toml()
        .replace("state_dir = \"off\"", "state_dir = \"/sys/fs/bpf/nat64d\"");
    assert!(config.contains("/sys/fs/bpf/nat64d"), "{config}");
    std::fs::write(lab.config_path(), &config).unwrap();
    let confined = |args: &[&str]| {
        lab.xlat
            .command("timeout")
            .args(["20", "setpriv", &format!("--bounding-set=-all,{CAPS}")])
            .args(["--inh-caps=-all", "--"])
            .arg(nat64_tests::nat64d_path())
            .args(args)
            .arg("--config")
            .arg(lab.config_path())
            .output()
            .expect("nat64d")
    };

    // Confined as the DaemonSet confines it (no CAP_SYS_ADMIN): refused, with the fix.
    let out = confined(&["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("state_dir: no bpf filesystem at /sys/fs/bpf")
            && err.contains("mount -t bpf bpf /sys/fs/bpf")
            && err.contains("state_dir = \"off\""),
        "{err}"
    );
    assert!(!err.contains("nat64d ready"), "{err}");
    let out = confined(&["doctor"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("FIX   bpffs: state_dir /sys/fs/bpf/nat64d is not on a bpf filesystem"),
        "{report}"
    );

    // As root: it mounts one and pins its state there (bounded: SIGINT after 10 s).
    let out = lab
        .xlat
        .command("timeout")
        .args(["--preserve-status", "-s", "INT", "10"])
        .arg(nat64_tests::nat64d_path())
        .args(["run", "--config"])
        .arg(lab.config_path())
        .output()
        .expect("nat64d run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("no bpf filesystem was mounted; mounted one for the pinned state")
            && err.contains("state pinned; a restart adopts it")
            && err.contains("nat64d ready"),
        "{err}"
    );
}
