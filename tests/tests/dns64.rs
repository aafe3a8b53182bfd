//! The fifth situation (IPv6-only pods whose resolver reaches an IPv4-only upstream, see
//! `docs/scenarios.md` and `docs/guides/5-ipv6-only-pods-dns64.md`), end to end with a real
//! DNS64 resolver: Unbound's `dns64` module, configured as the guide says, IPv6-only in the
//! client namespace; an IPv4-only upstream (another Unbound, serving the zone) behind nat64d.
//! The pod's AAAA answer is synthesized under pool6, the resolver's own queries cross the
//! translator over UDP and, for an answer too big for UDP, over TCP, and the pod then fetches
//! a page from the IPv4-only server at the synthesized address.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv6Addr, SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nat64_tests::lab::{Lab, LabOptions, SERVER4, SERVER4_AS_V6, STATEFUL_CLIENTS};

/// How many A records the big name has: its answer (16 bytes each) outgrows the 512 bytes the
/// upstream allows over UDP, so the resolver must ask again over TCP.
const BIG_RRSET: usize = 40;

/// The resolver's address: a pod address with no EAM entry, so that its queries are
/// translated statefully (a binding and a session each).
const RESOLVER: Ipv6Addr = STATEFUL_CLIENTS[0];

/// A process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `server:` and `forward-zone:` lines of the guide's Unbound configuration.
fn guide_unbound_config() -> String {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/guides/5-ipv6-only-pods-dns64.md"
    ))
    .expect("the guide");
    let block = guide
        .split("```text\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or(""))
        .find(|b| b.trim_start().starts_with("server:"))
        .expect("an Unbound block in the guide");
    assert!(
        block.contains("module-config: \"dns64 iterator\""),
        "{block}"
    );
    block.to_string()
}

/// Runs `unbound` with `config` in `ns` until the test ends.
fn unbound(ns: &nat64_tests::netns::Netns, name: &str, config: &str) -> Running {
    let path = std::env::temp_dir().join(format!("{}-{name}.conf", ns.name()));
    std::fs::write(&path, config).unwrap();
    let check = Command::new("unbound-checkconf").arg(&path).output();
    if let Ok(out) = check {
        assert!(
            out.status.success(),
            "{name}: {}\n{config}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let child = ns
        .command("unbound")
        .args(["-d", "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unbound (cargo xtask setup installs it)");
    Running(child)
}

/// `dig` in `ns`: (status line, answer section), retried for up to 10 s while the servers
/// start.
fn dig(ns: &nat64_tests::netns::Netns, server: &str, args: &[&str]) -> (String, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ns.output(
            "dig",
            &[&[&format!("@{server}"), "+time=2", "+tries=1"], args].concat(),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = text
            .lines()
            .find(|l| l.contains("status:"))
            .unwrap_or("")
            .to_string();
        if status.contains("NOERROR") || Instant::now() > deadline {
            let answers = text
                .split(";; ANSWER SECTION:")
                .nth(1)
                .unwrap_or("")
                .lines()
                .skip(1)
                .take_while(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            return (status, answers);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_ipv6_only_dns64_resolver_reaches_an_ipv4_only_upstream_and_the_pod_its_server() {
    nat64_tests::require_root();
    let mut lab = Lab::new(LabOptions {
        stateful: true,
        ..LabOptions::default()
    });
    lab.start_daemon();
    lab.client6
        .ip(&["addr", "add", &format!("{RESOLVER}/128"), "dev", "lo"]);

    // The IPv4-only upstream: answers the zone itself, at most 512 bytes over UDP.
    let mut records = String::new();
    for i in 0..BIG_RRSET {
        records.push_str(&format!(
            "    local-data: \"big.example. 60 IN A 198.18.0.{}\"\n",
            i + 1
        ));
    }
    let upstream = format!(
        "server:\n    interface: {SERVER4}\n    port: 53\n    do-ip6: no\n    do-daemonize: no\n    \
         username: \"\"\n    chroot: \"\"\n    directory: \"\"\n    pidfile: \"\"\n    use-syslog: no\n    \
         access-control: 0.0.0.0/0 allow\n    max-udp-size: 512\n    \
         local-zone: \"example.\" static\n    \
         local-data: \"ipv4only.example. 60 IN A {SERVER4}\"\n{records}"
    );
    let _upstream = unbound(&lab.server4, "upstream", &upstream);

    // The pod's resolver: the guide's configuration, pointed at the lab's upstream (under
    // pool6), listening on a pod address, and run in the foreground.
    let guide = guide_unbound_config();
    let forward = guide
        .lines()
        .find(|l| l.trim_start().starts_with("forward-addr:"))
        .expect("forward-addr in the guide")
        .to_string();
    let config = guide
        .replace(&forward, &format!("    forward-addr: {SERVER4_AS_V6}"))
        .replace(
            "server:\n",
            &format!(
                "server:\n    interface: {RESOLVER}\n    outgoing-interface: {RESOLVER}\n    \
                 access-control: ::/0 allow\n    do-daemonize: no\n    username: \"\"\n    \
                 chroot: \"\"\n    directory: \"\"\n    pidfile: \"\"\n    use-syslog: no\n"
            ),
        );
    let _resolver = unbound(&lab.client6, "dns64", &config);
    let resolver = RESOLVER.to_string();

    // An IPv4-only name: its AAAA answer is synthesized under pool6.
    let (status, answers) = dig(&lab.client6, &resolver, &["AAAA", "ipv4only.example"]);
    assert!(status.contains("NOERROR"), "{status}\n{}", lab.daemon_log());
    assert!(
        answers
            .iter()
            .any(|a| a.ends_with(&format!("AAAA\t{SERVER4_AS_V6}"))),
        "{answers:?}"
    );
    // A big one: the upstream truncates it over UDP, the resolver asks again over TCP.
    let (status, answers) = dig(&lab.client6, &resolver, &["AAAA", "big.example"]);
    assert!(status.contains("NOERROR"), "{status}");
    assert_eq!(answers.len(), BIG_RRSET, "{answers:?}");
    assert!(
        answers.iter().all(|a| a.contains("AAAA\t64:ff9b::c612:")),
        "{answers:?}"
    );
    // Both ways crossed the translator statefully: the resolver's sessions with the
    // upstream's port 53, over UDP and over TCP.
    let (ok, sessions, err) = lab.bindings_cli(&["sessions"]);
    assert!(ok, "{err}");
    let to_upstream = format!(" {SERVER4}:53 ");
    assert!(
        sessions
            .lines()
            .any(|l| l.starts_with("udp ") && l.contains(&to_upstream)),
        "{sessions}"
    );
    assert!(
        sessions
            .lines()
            .any(|l| l.starts_with("tcp ") && l.contains(&to_upstream)),
        "no TCP query crossed:\n{sessions}"
    );

    // The pod fetches a page from the IPv4-only server at the synthesized address.
    let listener = lab
        .server4
        .run(|| TcpListener::bind((SERVER4, 8080)))
        .expect("bind the web server");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The whole request before the answer: closing with unread bytes would reset it.
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nipv4-only ok\n")
            .unwrap();
    });
    let addr = SocketAddr::from((SERVER4_AS_V6, 8080));
    let (status, body) = lab
        .client6
        .run(|| nat64_tests::peers::http_get(addr, "/"))
        .expect("GET through the translator");
    server.join().expect("web server");
    assert_eq!((status, body.as_str()), (200, "ipv4-only ok\n"));
}
