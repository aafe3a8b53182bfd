//! Port blocks end to end (`stateful.port_block_size`, RFC 6888 section 5): three IPv6
//! clients, each in a /64 of its own, open short UDP flows; each flow's IPv4 source, as the
//! IPv4 server saw it, leads back to its client's /64 through one `port block allocated` line
//! per client (no line per binding) and through the port block allocation record (natEvent 16,
//! with portRangeStart and portRangeEnd) at a real IPFIX collector. Once the flows expire and
//! their ports' hold-down is over, the sweeper releases each block: a `port block released` line
//! and a de-allocation record (natEvent 17). `nat64d bindings blocks` lists the blocks while
//! they live.

use std::{
    net::{Ipv6Addr, SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use nat64_tests::lab::{CLIENT6, Lab, LabOptions, SERVER4_AS_V6};

/// The clients: one address in each of three /64s besides the lab's own.
const CLIENTS: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 0xdb8, 6, 1, 0, 0, 0, 0x201),
    Ipv6Addr::new(0x2001, 0xdb8, 6, 2, 0, 0, 0, 0x201),
    Ipv6Addr::new(0x2001, 0xdb8, 6, 3, 0, 0, 0, 0x201),
];

/// The /64 of `a`, as the log and the collector name it.
fn slash64(a: &Ipv6Addr) -> Ipv6Addr {
    let s = a.segments();
    Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)
}

/// Gives the client namespace the three clients' addresses, and the translator routes back to
/// their /64s (through the client's lab address).
fn add_clients(lab: &Lab) {
    for c in CLIENTS {
        lab.client6
            .ip(&["addr", "add", &format!("{c}/128"), "dev", "c0", "nodad"]);
        lab.xlat.ip(&[
            "-6",
            "route",
            "add",
            &format!("{}/64", slash64(&c)),
            "via",
            &CLIENT6.to_string(),
        ]);
    }
}

/// Two UDP flows per client (each its own socket, so its own port), echoed by `server`:
/// (client, its port, the source the server saw).
fn flows(lab: &Lab, server: &UdpSocket, port: u16) -> Vec<(Ipv6Addr, u16, SocketAddr)> {
    let mut seen = Vec::new();
    for client in CLIENTS {
        for _ in 0..2 {
            let sock = lab
                .client6
                .run(|| UdpSocket::bind((client, 0)))
                .expect("bind client");
            sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            sock.send_to(b"hello", (SERVER4_AS_V6, port)).unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).expect("the server got it");
            server.send_to(&buf[..n], from).unwrap();
            sock.recv_from(&mut buf).expect("the echo came back");
            seen.push((client, sock.local_addr().unwrap().port(), from));
        }
    }
    seen
}

/// The `port block <what>` line whose address and ports hold `v4`: (its client, its ports).
fn block_line<'a>(log: &'a str, what: &str, v4: &SocketAddr) -> Option<(&'a str, u16, u16)> {
    log.lines()
        .filter(|l| l.contains(&format!("port block {what}")))
        .filter(|l| l.contains(&format!("ipv4={}", v4.ip())))
        .find_map(|l| {
            let ports = l.split("ports=\"").nth(1)?.split('"').next()?;
            let (a, b) = ports.split_once('-')?;
            let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
            let client = l.split("client=\"").nth(1)?.split('"').next()?;
            (a <= v4.port() && v4.port() <= b).then_some((client, a, b))
        })
}

#[test]
fn every_flow_leads_back_to_its_clients_block() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        stateful_extra: format!(
            "port_block_size = 64\nper_client_limit = 256\nport_hold_down_secs = 1\nipfix_collector = \"{}\"\nipfix_template_refresh_secs = 1\n",
            nat64_tests::collector::COLLECTOR
        ),
        ..LabOptions::default()
    });
    add_clients(&lab);
    let collector = nat64_tests::collector::Collector::start(&lab);
    lab.start_daemon();
    let server = lab.udp_server(5310);
    let flows = flows(&lab, &server, 5310);

    // The log: one block per client holds both its flows' ports; no line per binding.
    let log = lab
        .daemon()
        .wait_log("port block allocated", 3, Duration::from_secs(5))
        .unwrap_or_else(|log| panic!("three blocks are logged:\n{log}"));
    for (client, port, v4) in &flows {
        let (owner, lo, hi) = block_line(&log, "allocated", v4)
            .unwrap_or_else(|| panic!("no block holds {v4} ([{client}]:{port}):\n{log}"));
        assert_eq!(owner, format!("{}/64", slash64(client)), "{v4}");
        assert_eq!(hi - lo + 1, 64);
    }
    let allocated = log.matches("port block allocated").count();
    assert_eq!(allocated, 3, "one block per client:\n{log}");
    assert!(
        !log.contains("binding created"),
        "blocks replace bindings:\n{log}"
    );
    let (ok, listed, err) = lab.bindings_cli(&["blocks"]);
    assert!(ok, "{err}");
    assert_eq!(listed.lines().count(), 3, "{listed}");
    for c in CLIENTS {
        assert!(
            listed.contains(&format!("udp {}/64 ", slash64(&c))),
            "{listed}"
        );
    }

    // Expiry (3 s), the ports' hold-down (1 s), then two sweeper passes (1 s apart).
    let deadline = Instant::now() + Duration::from_secs(20);
    while lab.daemon_log().matches("port block released").count() < 3 {
        assert!(
            Instant::now() < deadline,
            "the blocks are released:\n{}",
            lab.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = lab.daemon_log();
    for (client, _, v4) in &flows {
        let (owner, _, _) = block_line(&log, "released", v4)
            .unwrap_or_else(|| panic!("no release of the block of {v4}:\n{log}"));
        assert_eq!(owner, format!("{}/64", slash64(client)));
    }
    let (ok, listed, _) = lab.bindings_cli(&["blocks"]);
    assert!(ok && listed.is_empty(), "{listed}");
    let exit = lab.stop_daemon();
    assert!(exit.status.success(), "{}", exit.stderr);

    // The collector: an allocation and a de-allocation record naming the client's /64 and the
    // block's pool4 address, for each client. (nfdump 1.7's IPFIX reader does not decode
    // portRangeStart and portRangeEnd; their bytes are checked by the exporter's unit test, and
    // the ports by the log above.)
    let (records, raw) = collector.records();
    for (client, _, v4) in &flows {
        for (event, what) in [("16", "allocation"), ("17", "de-allocation")] {
            let r = records
                .iter()
                .find(|r| {
                    r.get("nat event").map(String::as_str) == Some(event)
                        && r.get("src xlt ip") == Some(&v4.ip().to_string())
                        && r.get("src addr") == Some(&slash64(client).to_string())
                })
                .unwrap_or_else(|| {
                    panic!("no port block {what} record of {client}'s /64 on {v4}:\n{raw}")
                });
            assert_eq!(r["proto"], "17", "{r:?}");
        }
    }
    let blocks = |event: &str| {
        records
            .iter()
            .filter(|r| r.get("nat event").map(String::as_str) == Some(event))
            .count()
    };
    assert_eq!((blocks("16"), blocks("17")), (3, 3), "{raw}");
    assert!(
        !records
            .iter()
            .any(|r| r.get("nat event").map(String::as_str) == Some("10")),
        "no record per binding:\n{raw}"
    );
}

/// Blocks kept in pinned state across a restart that changes `port_block_size` would not
/// describe their clients' ports, and new blocks could overlap them: the new daemon releases
/// them and flushes the dynamic bindings, says so, and new flows get blocks of the new size.
#[test]
fn a_restart_with_another_block_size_starts_the_blocks_over() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        pinned_state: true,
        stateful_extra: "port_block_size = 64\nper_client_limit = 256\n".to_string(),
        ..LabOptions::default()
    });
    add_clients(&lab);
    lab.start_daemon();
    let server = lab.udp_server(5311);
    let before = flows(&lab, &server, 5311);
    let (ok, listed, err) = lab.bindings_cli(&["blocks"]);
    assert!(ok && listed.lines().count() == 3, "{listed}{err}");
    let exit = lab.stop_daemon();
    assert!(exit.status.success(), "{}", exit.stderr);

    // The same state, blocks of 128 now.
    let toml = lab
        .config_toml()
        .replace("port_block_size = 64", "port_block_size = 128");
    lab.start_daemon_with(&toml);
    let log = lab.daemon_log();
    assert!(
        log.contains("laid out for another port_block_size"),
        "the restart says why the bindings went:\n{log}"
    );
    let (ok, bindings, _) = lab.bindings_cli(&["list"]);
    assert!(ok && bindings.is_empty(), "flushed: {bindings}");
    let after = flows(&lab, &server, 5311);
    let (ok, listed, err) = lab.bindings_cli(&["blocks"]);
    assert!(ok, "{err}");
    assert_eq!(
        listed.lines().count(),
        3,
        "one new block per client: {listed}"
    );
    for line in listed.lines() {
        let ports = line.split_whitespace().nth(3).unwrap();
        let (a, b) = ports.split_once('-').unwrap();
        let (a, b): (u16, u16) = (a.parse().unwrap(), b.parse().unwrap());
        assert_eq!(b - a + 1, 128, "{line}");
        assert_eq!((a - 20000) % 128, 0, "aligned to the new size: {line}");
    }
    assert_eq!(
        after.len(),
        before.len(),
        "the flows go through after the restart"
    );
}
