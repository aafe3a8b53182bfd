//! Deterministic mapping (RFC 7422) end to end: with `[stateful.deterministic]`, every client
//! gets a pool4 address and a port block computed from the configuration, and `nat64d map`
//! answers from the configuration alone, with the daemon stopped: each flow's IPv4 source, as
//! the IPv4 server saw it, leads back to its client, and each client's answer holds the port
//! its flow used.
//!
//! The lab's three stateful clients (2001:db8:6::201 to ::203) are three of the four clients
//! of 2001:db8:6::200/126 (one per address, `client_prefix_len = 128`), all on one pool4
//! address (203.0.113.200/32): 20000-29999 in four blocks of 2500.

use std::process::Command;

use nat64_tests::lab::{Lab, LabOptions};

fn map(config: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(nat64_tests::nat64d_path())
        .arg("map")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("nat64d map");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "nat64d map {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn every_flow_leads_back_to_its_client_offline() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        ..LabOptions::default()
    });
    let toml = lab.config_toml().replace(
        "pool4 = \"203.0.113.200/30\"",
        "pool4 = \"203.0.113.200/32\"",
    ) + "\n[stateful.deterministic]\nclients = \"2001:db8:6::200/126\"\nclient_prefix_len = 128\n";
    assert!(toml.contains("203.0.113.200/32"), "{toml}");
    lab.start_daemon_with(&toml);
    let server = lab.udp_server(5302);
    let flows = nat64_tests::peers::short_udp_flows(&lab, &server, 5302);
    let exit = lab.stop_daemon();
    assert!(exit.status.success(), "{}", exit.stderr);

    // Offline: only the configuration file.
    let config = lab.config_path();
    for (i, (client, _port, v4)) in flows.iter().enumerate() {
        assert_eq!(v4.ip().to_string(), "203.0.113.200", "{v4}");
        // Client ::201 is index 1: its block is the second of four, 22500-24999.
        let index = u16::from_be_bytes([client.octets()[14], client.octets()[15]]) - 0x200;
        let lo = 20000 + index * 2500;
        assert!(
            (lo..lo + 2500).contains(&v4.port()),
            "flow {i}: {client} got {v4}, outside its block {lo}-{}",
            lo + 2499
        );
        let said = map(&config, &["--ipv4", &v4.to_string(), "--protocol", "udp"]);
        assert!(
            said.contains(&format!("-> {client}/128")),
            "{v4} must lead back to {client}: {said}"
        );
        let said = map(&config, &["--ipv6", &client.to_string()]);
        assert!(
            said.contains("-> 203.0.113.200 ") && said.contains(&format!("udp {lo}-{}", lo + 2499)),
            "{client}'s blocks: {said}"
        );
    }
    // A port in no client's block, and an address outside pool4, have no answer.
    let out = Command::new(nat64_tests::nat64d_path())
        .args(["map", "--config"])
        .arg(&config)
        .args(["--ipv4", "203.0.113.201:20000", "--protocol", "udp"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not in pool4"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Another mapping (more clients, smaller blocks) over pinned tables: a reload refuses it (it
/// needs a restart), and the restart flushes the bindings made under the old one, which now
/// lie in other clients' blocks, so that `nat64d map` never names the wrong client.
#[test]
fn a_new_mapping_needs_a_restart_which_flushes_the_old_bindings() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        pinned_state: true,
        ..LabOptions::default()
    });
    let base = lab.config_toml().replace(
        "pool4 = \"203.0.113.200/30\"",
        "pool4 = \"203.0.113.200/32\"",
    );
    let mapping = |clients: &str| {
        format!(
            "{base}\n[stateful.deterministic]\nclients = \"{clients}\"\nclient_prefix_len = 128\n"
        )
    };
    let four = mapping("2001:db8:6::200/126");
    let eight = mapping("2001:db8:6::200/125");
    std::fs::write(lab.config_path(), &four).unwrap();
    lab.start_daemon_with(&four);
    let server = lab.udp_server(5303);
    let flows = nat64_tests::peers::short_udp_flows(&lab, &server, 5303);
    assert!(!flows.is_empty());
    let (ok, listed, err) = lab.bindings_cli(&["list"]);
    assert!(ok && !listed.trim().is_empty(), "{listed}{err}");

    std::fs::write(lab.config_path(), &eight).unwrap();
    lab.daemon().signal(libc::SIGHUP);
    lab.daemon()
        .wait_log(
            "stateful.deterministic: changes only with a restart",
            1,
            std::time::Duration::from_secs(10),
        )
        .unwrap_or_else(|log| panic!("the new mapping was not refused:\n{log}"));

    lab.stop_daemon();
    lab.start_daemon_with(&eight);
    assert!(
        lab.daemon_log()
            .contains("[stateful.deterministic] gives their clients now: flushed"),
        "{}",
        lab.daemon_log()
    );
    let (ok, listed, err) = lab.bindings_cli(&["list"]);
    assert!(ok && listed.trim().is_empty(), "{listed}{err}");

    // The same mapping again: nothing to flush.
    lab.stop_daemon();
    lab.start_daemon_with(&eight);
    assert!(
        !lab.daemon_log().contains("flushed"),
        "{}",
        lab.daemon_log()
    );
}
