//! The binding log (`log_bindings`) accounts for every binding: the dataplane pushes each one it
//! makes through a ring buffer and the daemon logs it at once. Three IPv6 clients open short
//! UDP flows; each flow's IPv4 source, as the IPv4 server logged it, leads back to its client
//! through the daemon's log, even when the daemon is stopped right after the flows (the old
//! sweeper-found log lost those), and even for flows made while no daemon ran at all (pinned
//! state: the next daemon reads what waited in the ring).

use std::{net::SocketAddr, time::Duration};

use nat64_tests::lab::{Lab, LabOptions};

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
    let server = lab.udp_server(5300);

    // Flows, then a stop at once: no sweep has run (the sweeper's first pass is a second
    // away), so only the pushed events can log them.
    let flows = nat64_tests::peers::short_udp_flows(&lab, &server, 5300);
    let exit = lab.stop_daemon();
    assert!(exit.status.success(), "{}", exit.stderr);
    assert_logged(&exit.stderr, &flows, "flows just before a stop");

    // With no daemon running (on_stop = keep), the dataplane makes bindings alone; the next
    // daemon reads their events from the pinned ring buffer.
    let unattended = nat64_tests::peers::short_udp_flows(&lab, &server, 5300);
    assert!(
        unattended
            .iter()
            .all(|(_, _, v4)| flows.iter().all(|(_, _, old)| old != v4)),
        "new flows, new bindings: {flows:?} {unattended:?}"
    );
    lab.start_daemon();
    // The new daemon reads the waiting events once its loop runs, just after it is ready.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline
        && !unattended.iter().all(|(_, _, v4)| {
            lab.daemon_log()
                .lines()
                .any(|l| l.contains("binding created") && l.contains(&format!("ipv4={v4}")))
        })
    {
        std::thread::sleep(Duration::from_millis(100));
    }
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

/// The same events as IPFIX, read back from a real collector (nfdump's `nfcapd`, from
/// Debian): each flow's IPv4 source, as the server saw it, leads back to its client through
/// the NAT64 BIB create record the daemon exported (RFC 8158 natEvent 10, with the client's
/// sourceIPv6Address and port and the binding's postNATSourceIPv4Address and
/// postNAPTSourceTransportPort), and the binding's expiry to a delete record (natEvent 11);
/// the records of flows made just before a clean stop are sent before the daemon exits.
#[test]
fn ipfix_records_at_a_real_collector_lead_back_to_each_client() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        stateful_extra: format!(
            "ipfix_collector = \"{}\"\nipfix_template_refresh_secs = 1\n",
            nat64_tests::collector::COLLECTOR
        ),
        ..LabOptions::default()
    });
    let collector = nat64_tests::collector::Collector::start(&lab);
    lab.start_daemon();
    let server = lab.udp_server(5301);
    let flows = nat64_tests::peers::short_udp_flows(&lab, &server, 5301);
    // The lab's UDP timeout is 3 s and the sweeper runs every second: wait for the expiry.
    std::thread::sleep(Duration::from_secs(6));
    // Three more flows, and a stop at once: their records go out as the daemon stops.
    let last = nat64_tests::peers::short_udp_flows(&lab, &server, 5301);
    let exit = lab.stop_daemon();
    assert!(exit.status.success(), "{}", exit.stderr);
    assert!(
        exit.stderr.contains("exporting binding events as IPFIX"),
        "{}",
        exit.stderr
    );
    let (parsed, records) = collector.records();
    let find = |event: &str, v4: &SocketAddr| {
        parsed.iter().find(|r| {
            r.get("nat event").map(String::as_str) == Some(event)
                && r.get("src xlt ip") == Some(&v4.ip().to_string())
                && r.get("src xlt port") == Some(&v4.port().to_string())
        })
    };
    for (client, port, v4) in &flows {
        for (event, what) in [("10", "NAT64 BIB create"), ("11", "NAT64 BIB delete")] {
            let r =
                find(event, v4).unwrap_or_else(|| panic!("no {what} record for {v4}:\n{records}"));
            assert_eq!(
                r["src addr"],
                client.to_string(),
                "{v4} leads back to its client: {r:?}"
            );
            assert_eq!(r["src port"], port.to_string(), "{r:?}");
            assert_eq!(r["proto"], "17", "{r:?}");
        }
    }
    for (client, port, v4) in &last {
        let r = find("10", v4).unwrap_or_else(|| {
            panic!("no create record for {v4}, made just before the stop:\n{records}")
        });
        assert_eq!(
            (r["src addr"].as_str(), r["src port"].as_str()),
            (client.to_string().as_str(), port.to_string().as_str()),
            "{r:?}"
        );
    }
}
