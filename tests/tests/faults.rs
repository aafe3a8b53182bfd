//! Faults and hostile load, end to end with the real daemon: a flood of new flows from one
//! client and a flood of unsolicited inbound packets do not starve another client; state of an
//! incompatible layout is detected and set aside, never misread.

use std::{
    io::{Read, Write},
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use nat64_common::{Counter, Dir, DropReason};
use nat64_daemon::stats::parse_value;
use nat64_tests::{
    lab::{Lab, LabOptions, SERVER4, SERVER4_AS_V6, STATEFUL_CLIENTS},
    peers,
};

/// A client in another /64 than the flooding one (per-client limits count per /64).
const OTHER: &str = "2001:db8:7::5";

#[test]
fn floods_from_one_client_and_from_outside_do_not_starve_another_client() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        stateful_extra: "per_client_limit = 200\n".to_string(),
        ..LabOptions::default()
    });
    lab.client6
        .ip(&["addr", "add", &format!("{OTHER}/64"), "dev", "c0", "nodad"]);
    lab.xlat
        .ip(&["-6", "route", "add", "2001:db8:7::/64", "dev", "xc"]);
    lab.start_daemon();

    // The other client's established TCP session, used before, during and after the floods.
    let listener = lab
        .server4
        .run(|| std::net::TcpListener::bind((SERVER4, 5020)))
        .expect("bind");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 4];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let other: std::net::Ipv6Addr = OTHER.parse().unwrap();
    let mut tcp = lab
        .client6
        .run(|| peers::tcp_connect_from(other, (SERVER4_AS_V6, 5020).into()));
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut echo = |tag: &[u8; 4]| {
        let mut buf = [0u8; 4];
        tcp.write_all(tag).unwrap();
        tcp.read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("echo {tag:?}: {e}"));
        assert_eq!(&buf, tag);
    };
    echo(b"pre!");

    // Flood 1: one client opens 3000 UDP flows (one datagram from each of 3000 source ports),
    // bounded in count, as fast as it can.
    let flooder = STATEFUL_CLIENTS[0];
    lab.client6.run(|| {
        let to: SocketAddr = (SERVER4_AS_V6, 9).into();
        for _ in 0..3000 {
            let s = UdpSocket::bind((flooder, 0)).expect("bind");
            let _ = s.send_to(b"flood", to);
        }
    });
    echo(b"mid1");
    // Flood 2: 3000 unsolicited datagrams from outside to pool4 addresses and ports.
    lab.server4.run(|| {
        let s = UdpSocket::bind((SERVER4, 0)).expect("bind");
        for i in 0..3000u32 {
            let to: SocketAddr = (
                std::net::Ipv4Addr::new(203, 0, 113, 200 + (i % 4) as u8),
                20000 + (i % 10000) as u16,
            )
                .into();
            let _ = s.send_to(b"knock", to);
        }
    });
    echo(b"mid2");
    // A new flow of the other client still gets a binding.
    let s = lab
        .client6
        .run(|| UdpSocket::bind((other, 0)).expect("bind"));
    let echo_srv = lab
        .server4
        .run(|| UdpSocket::bind((SERVER4, 5021)).expect("bind"));
    let srv = std::thread::spawn(move || peers::udp_echo(echo_srv, 1));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = peers::udp_exchange(&s, (SERVER4_AS_V6, 5021).into(), &[64], 3);
    assert_eq!(n, 1, "the other client's new flow after the floods");
    let _ = srv.join();
    echo(b"post");
    drop(tcp);
    let _ = server.join();

    let exit = lab.stop_daemon();
    let get = |c| parse_value(&exit.stdout, c).unwrap_or(0);
    let limited = get(Counter::Dropped(Dir::V6ToV4, DropReason::ClientLimit));
    let unsolicited = get(Counter::Dropped(Dir::V4ToV6, DropReason::NoBinding));
    println!(
        "floods: {limited} new flows refused at the per-client limit, {unsolicited} unsolicited datagrams dropped; the other client's session and new flow unaffected"
    );
    assert!(
        limited >= 2500,
        "the flooding /64 stopped at its limit (200): {limited} refused\n{}",
        exit.stdout
    );
    assert!(
        unsolicited >= 2900,
        "unsolicited inbound datagrams dropped: {unsolicited}\n{}",
        exit.stdout
    );
}

#[test]
fn state_of_another_layout_version_is_set_aside_not_misread() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        pinned_state: true,
        ..LabOptions::default()
    });
    // What an older daemon would have left: its own versioned directory.
    let state = lab.config_toml();
    let dir = state
        .lines()
        .find_map(|l| l.strip_prefix("state_dir = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("state_dir")
        .to_string();
    let old = std::path::Path::new(&dir).join("v1");
    std::fs::create_dir_all(&old).expect("mkdir on bpffs");
    lab.start_daemon();
    let log = lab.daemon_log();
    assert!(
        log.contains("another layout version was not adopted") && log.contains("layout=v1"),
        "{log}"
    );
    assert!(!old.exists(), "the old layout's state is removed");
    assert!(log.contains("adopted_maps=0"), "{log}");
    let (ok, text) = nat64_tests::lab::ping(&lab.client6, &SERVER4_AS_V6.to_string(), 1);
    assert!(ok, "{text}");
}
