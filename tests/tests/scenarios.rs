//! The acceptance scenarios of `../shared/docs/scenarios.md` that one translator node covers,
//! end to end with the real daemon (documentation addresses only). The two-node Ceph scenario
//! is in `scenario_ceph.rs`. `docs/scenarios.md` in this repository is the operator's version.

use std::{
    io::{Read, Write},
    net::{IpAddr, TcpListener, TcpStream},
    time::Duration,
};

use nat64_tests::{
    lab::{
        CLIENT6, CLIENT6_AS_V4, Lab, LabOptions, SERVER4, SERVER4_AS_V6, STATEFUL_CLIENTS, ping,
    },
    peers,
};

/// Scenario 1, the camera: an IPv4-only pod opens RTSP (TCP 554) to the IPv4 alias of an
/// IPv6-only camera (a static 4-to-6 mapping: the EAM entry 198.51.100.0/24 <->
/// 2001:db8:6::100/120 makes 198.51.100.2 the camera 2001:db8:6::102). The camera ignores
/// pings, as a filtered path would: ping fails and TCP still works.
#[test]
fn camera_ipv4_pod_streams_from_an_ipv6_only_camera() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions::default());
    lab.client6.sysctl("net.ipv6.icmp.echo_ignore_all", "1");
    lab.start_daemon();
    let (camera, pod) = (&lab.client6, &lab.server4);
    let rtsp = camera
        .run(|| TcpListener::bind((CLIENT6, 554)))
        .expect("camera listens on 554");
    let server = std::thread::spawn(move || {
        let (mut s, peer) = rtsp.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 512];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).expect("request");
            assert!(n > 0, "request cut short");
            req.extend_from_slice(&buf[..n]);
        }
        assert!(
            req.starts_with(b"OPTIONS rtsp://"),
            "{}",
            String::from_utf8_lossy(&req)
        );
        s.write_all(
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY\r\n\r\n",
        )
        .expect("answer");
        peer
    });
    let (pinged, text) = ping(pod, &CLIENT6_AS_V4.to_string(), 2);
    assert!(
        !pinged,
        "the camera answered a ping; the scenario wants it filtered: {text}"
    );
    let mut s = pod
        .run(|| TcpStream::connect_timeout(&(CLIENT6_AS_V4, 554).into(), Duration::from_secs(5)))
        .expect("the pod connects to the camera's IPv4 alias");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"OPTIONS rtsp://198.51.100.2:554/stream RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok();
    assert!(answer.starts_with("RTSP/1.0 200 OK"), "{answer:?}");
    let peer = server.join().expect("camera thread");
    // The camera sees the pod under pool6: the pod's address stays recoverable.
    assert_eq!(peer.ip(), IpAddr::V6(SERVER4_AS_V6));
    let _ = lab.stop_daemon();
}

/// Scenario 4, option 2 (NAT46 ingress): IPv4 clients reach an IPv6-only HTTP service through
/// its IPv4 alias; the service sees each client's IPv4 address embedded in pool6.
#[test]
fn ingress_ipv4_clients_reach_an_ipv6_only_http_service() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions::default());
    lab.start_daemon();
    let listener = lab
        .client6
        .run(|| TcpListener::bind((CLIENT6, 8080)))
        .expect("service listens");
    let http = std::thread::spawn(move || peers::http_serve(listener, 1, Duration::from_secs(15)));
    let out = lab.server4.output(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            &format!("http://{CLIENT6_AS_V4}:8080/"),
        ],
    );
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains(&format!("you are [{SERVER4_AS_V6}]")),
        "the service should see the client under pool6: {body}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    http.join().expect("http thread");
    let _ = lab.stop_daemon();
}

/// Scenario 4, option 1 (NAT64 ingress): IPv6 clients reach an IPv4-only HTTP backend, and the
/// backend can learn each client's IPv6 address: a stateless client appears as its EAM alias
/// (198.51.100.2 is 2001:db8:6::102 by the configured mapping); a stateful client appears as
/// a pool4 address and port, which `nat64d bindings list --address` turns back into the IPv6
/// address and port.
#[test]
fn ingress_ipv6_clients_reach_an_ipv4_backend_that_can_name_them() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        ..LabOptions::default()
    });
    lab.start_daemon();
    let listener = lab
        .server4
        .run(|| TcpListener::bind((SERVER4, 80)))
        .expect("backend listens");
    let http = std::thread::spawn(move || peers::http_serve(listener, 2, Duration::from_secs(15)));
    let url = format!("http://[{SERVER4_AS_V6}]/");
    let fetch = |src: String| {
        let out = lab.client6.output(
            "curl",
            &["-sS", "--max-time", "10", "--interface", &src, &url],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Stateless: the EAM alias.
    let body = fetch(CLIENT6.to_string());
    assert!(
        body.contains(&format!("you are {CLIENT6_AS_V4}:")),
        "{body}"
    );
    // Stateful: a pool4 transport address, named by the binding table.
    let client = STATEFUL_CLIENTS[0];
    let body = fetch(client.to_string());
    let seen = body
        .split("you are ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the backend names the client")
        .to_string();
    let (addr, port) = seen.rsplit_once(':').expect("addr:port");
    assert!(addr.starts_with("203.0.113.20"), "{seen}");
    let (ok, listing, err) = lab.bindings_cli(&["list", "--protocol", "tcp", "--address", addr]);
    assert!(ok, "{err}");
    let line = listing
        .lines()
        .find(|l| l.contains(&format!("{addr}:{port}")))
        .unwrap_or_else(|| panic!("no binding for {seen} in:\n{listing}"));
    assert!(
        line.starts_with(&format!("tcp [{client}]:")),
        "the binding names the IPv6 client: {line}"
    );
    http.join().expect("http thread");
    let _ = lab.stop_daemon();
}
