//! The binding log (`log_bindings`) accounts for every binding: the dataplane pushes each one it
//! makes through a ring buffer and the daemon logs it at once. Three IPv6 clients open short
//! UDP flows; each flow's IPv4 source, as the IPv4 server logged it, leads back to its client
//! through the daemon's log, even when the daemon is stopped right after the flows (the old
//! sweeper-found log lost those), and even for flows made while no daemon ran at all (pinned
//! state: the next daemon reads what waited in the ring).

use std::{
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use nat64_tests::lab::{Lab, LabOptions, SERVER4, SERVER4_AS_V6, STATEFUL_CLIENTS};

/// One short flow from each stateful client: a datagram out and its echo back. Returns, per
/// client, the IPv4 source the server saw (what its log would show).
fn short_flows(
    lab: &Lab,
    server: &UdpSocket,
    port: u16,
) -> Vec<(std::net::Ipv6Addr, u16, SocketAddr)> {
    let mut seen = Vec::new();
    for client in STATEFUL_CLIENTS {
        let sock = lab
            .client6
            .run(|| UdpSocket::bind((client, 0)))
            .expect("bind client");
        let local = sock.local_addr().unwrap().port();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        sock.send_to(b"hello", (SERVER4_AS_V6, port)).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = server
            .recv_from(&mut buf)
            .expect("the server got the datagram");
        server.send_to(&buf[..n], from).unwrap();
        sock.recv_from(&mut buf).expect("the echo came back");
        seen.push((client, local, from));
    }
    seen
}

/// The log line that ties `v4` (as the server saw it) to `client`'s port: `binding created`
/// naming both transport addresses.
fn assert_logged(log: &str, flows: &[(std::net::Ipv6Addr, u16, SocketAddr)], when: &str) {
    for (client, port, v4) in flows {
        let v6 = format!("[{client}]:{port}");
        let line = log
            .lines()
            .find(|l| l.contains("binding created") && l.contains(&format!("ipv4={v4}")))
            .unwrap_or_else(|| panic!("{when}: no `binding created` for {v4}:\n{log}"));
        assert!(
            line.contains(&format!("ipv6={v6}")),
            "{when}: {v4} must lead back to {v6}: {line}"
        );
        assert!(line.contains("protocol=\"udp\""), "{line}");
        assert!(line.contains("created_unix_ms="), "{line}");
    }
}

#[test]
fn every_short_flow_leads_back_to_its_client_through_the_log() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        pinned_state: true,
        extra_config: "on_stop = \"keep\"\n".to_string(),
        ..LabOptions::default()
    });
    lab.start_daemon();
    let server = lab
        .server4
        .run(|| UdpSocket::bind((SERVER4, 5300)))
        .expect("bind server");
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    // Flows, then a stop at once: no sweep has run (the sweeper's first pass is a second
    // away), so only the pushed events can log them.
    let flows = short_flows(&lab, &server, 5300);
    let exit = lab.stop_daemon();
    assert!(exit.status.success(), "{}", exit.stderr);
    assert_logged(&exit.stderr, &flows, "flows just before a stop");

    // With no daemon running (on_stop = keep), the dataplane makes bindings alone; the next
    // daemon reads their events from the pinned ring buffer.
    let unattended = short_flows(&lab, &server, 5300);
    assert!(
        unattended
            .iter()
            .all(|(_, _, v4)| flows.iter().all(|(_, _, old)| old != v4)),
        "new flows, new bindings: {flows:?} {unattended:?}"
    );
    lab.start_daemon();
    assert_logged(
        &lab.daemon_log(),
        &unattended,
        "flows made with no daemon running",
    );

    // The events are counted for Prometheus.
    let (status, text) = lab
        .xlat
        .run(|| nat64_tests::peers::http_get(([127, 0, 0, 1], 9464).into(), "/metrics"))
        .expect("scrape");
    assert_eq!(status, 200);
    let created: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("nat64_binding_events_total{event=\"created\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no created events exported:\n{text}"));
    assert!(created >= 3, "{created}");
    assert!(
        text.lines()
            .any(|l| l == "nat64_binding_events_lost_total 0"),
        "no event lost:\n{text}"
    );
}
