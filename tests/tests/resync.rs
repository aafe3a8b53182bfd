//! The daemon follows netlink events: a translator link someone deleted is re-created with its
//! programs and routes, and a configured interface that is deleted and comes back is attached
//! again, each within a moment rather than at the next periodic pass (every 10 s).

use std::time::{Duration, Instant};

use nat64_tests::lab::{CLIENT6_AS_V4, LINK, Lab, LabOptions, SERVER4_AS_V6, ping};

/// Polls `f` every 100 ms for up to `within`; whether it became true.
fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `/readyz` of the lab's daemon (metrics on 127.0.0.1:9464 in the translator's namespace).
fn readyz(lab: &Lab) -> (u16, String) {
    let addr = "127.0.0.1:9464".parse().unwrap();
    lab.xlat
        .run(|| nat64_tests::peers::http_get(addr, "/readyz"))
        .unwrap_or_else(|e| panic!("GET /readyz: {e}\n{}", lab.daemon_log()))
}

/// A ping from the translator node's own IPv4 address to the IPv6 client, which only the
/// translator link translates: the fast path never sees what the node originates.
fn node_ping(lab: &Lab) -> (bool, String) {
    ping(&lab.xlat, &CLIENT6_AS_V4.to_string(), 1)
}

#[test]
fn a_deleted_translator_link_is_recreated_with_its_programs_and_routes() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions::default());
    lab.start_daemon();
    let (ok, text) = node_ping(&lab);
    assert!(ok, "through the link before: {text}");

    lab.xlat.ip(&["link", "del", "dev", LINK]);
    let log = lab
        .daemon()
        .wait_log("re-creating it", 1, Duration::from_secs(5))
        .unwrap_or_else(|log| panic!("the deletion went unnoticed:\n{log}"));
    assert!(log.contains("trigger=\"netlink event\""), "{log}");
    assert!(
        eventually(Duration::from_secs(5), || {
            lab.xlat_link(LINK).contains("xdp") && lab.xlat_link("nat64-dp").contains("xdp")
        }),
        "programs not attached to the new link:\n{}\n{}",
        lab.xlat_link(LINK),
        lab.daemon_log()
    );
    let routes = lab
        .xlat
        .output("ip", &["-6", "route", "show", "proto", "64"]);
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains("64:ff9b::/96 dev nat64"),
        "pool6 routed into the new link"
    );
    assert!(
        eventually(Duration::from_secs(5), || node_ping(&lab).0),
        "nothing crosses the re-created link:\n{}",
        lab.daemon_log()
    );
    // The fast path was never affected.
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 1);
    assert!(ok, "{text}");
}

#[test]
fn an_interface_deleted_and_recreated_is_attached_again() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        extra_config: "[[interfaces]]\nname = \"xe\"\nhook = \"xdp\"\n".to_string(),
        ..LabOptions::default()
    });
    let add = |lab: &Lab| {
        lab.xlat
            .ip(&["link", "add", "xe", "type", "veth", "peer", "name", "xe-p"]);
        lab.xlat.ip(&["link", "set", "dev", "xe", "up"]);
        lab.xlat.ip(&["link", "set", "dev", "xe-p", "up"]);
    };
    add(&lab);
    lab.start_daemon();
    assert!(
        lab.xlat_link("xe").contains("xdp"),
        "{}",
        lab.xlat_link("xe")
    );

    // A flap changes nothing: XDP stays attached across down and up.
    lab.xlat.ip(&["link", "set", "dev", "xe", "down"]);
    lab.xlat.ip(&["link", "set", "dev", "xe", "up"]);
    assert!(
        lab.xlat_link("xe").contains("xdp"),
        "{}",
        lab.xlat_link("xe")
    );

    assert_eq!(readyz(&lab), (200, "ready\n".to_string()));

    lab.xlat.ip(&["link", "del", "dev", "xe"]);
    lab.daemon()
        .wait_log("interface gone", 1, Duration::from_secs(5))
        .unwrap_or_else(|log| panic!("the deletion went unnoticed:\n{log}"));
    // Unready while a configured interface has no dataplane, saying which.
    assert_eq!(
        readyz(&lab),
        (503, "not ready: not attached to xe\n".to_string())
    );
    add(&lab);
    lab.daemon()
        .wait_log("interface back: attached again", 1, Duration::from_secs(5))
        .unwrap_or_else(|log| panic!("the new xe was not attached:\n{log}"));
    assert_eq!(readyz(&lab), (200, "ready\n".to_string()));
    assert!(
        lab.xlat_link("xe").contains("xdp"),
        "{}\n{}",
        lab.xlat_link("xe"),
        lab.daemon_log()
    );
    // The other interfaces were left alone.
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 1);
    assert!(ok, "{text}");
}
