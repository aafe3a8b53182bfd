//! Issue 15, the camera's upload: path MTU discovery across the translator when the router
//! that reports the narrow link has no IPv4 mapping (`docs/guides/1-ipv6-only-camera.md`).
//!
//! ```text
//!  pod (IPv4 only)        node (nat64d)                         isp                  site                 camera (IPv6 only)
//!  p0 192.0.2.10/24 -- n0 192.0.2.1/24  n1 2001:db8:1::1 -- i0 2001:db8:1::2  i1 -- s0     s1 2001:db8:6::1 -- c0 2001:db8:6::102
//!                                                                 2001:db8:2::1  MTU 1400  2001:db8:2::2
//! ```
//!
//! The pod reaches the camera through its IPv4 alias 198.51.100.2 (an EAM entry, RFC 7757);
//! the camera sees the pod as 2001:db8:a:64::192.0.2.10 (pool6, which the ISP routes back to
//! the node). The ISP's link to the camera site has MTU 1400, so the pod's full-size segments
//! come back as an ICMPv6 Packet Too Big from the ISP router's 2001:db8:1::2: an address
//! neither pool6 nor the EAM table maps. Only if the translator turns it into an ICMPv4
//! Fragmentation Needed with an RFC 6791 source (RFC 7915 section 5.2; with no `pool6791`
//! configured, the node's own IPv4 address toward the pod, as Jool does) does the pod learn
//! the path MTU (1400 - 20 = 1380) and the upload get through. The site filters ICMPv6 echo, so
//! pinging the camera is no way to find out what happens (the guide's "Not ping").
//!
//! Run once with the fast path at TC (with the translator link, which the TC hook needs for
//! ICMP errors) and once in native XDP.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use nat64_tests::{
    lab::{Daemon, attach_pass, detach_in, ping},
    netns::{Netns, run_ok},
    peers,
};

const POD: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The node's address toward the pod: the pod's gateway.
const NODE4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CAMERA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 0x102);
const CAMERA_ALIAS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// How the camera sees the pod: 2001:db8:a:64::192.0.2.10.
const POD_AS_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0x64, 0, 0, 0xc000, 0x020a);
const POOL6: &str = "2001:db8:a:64::/96";
const RTSP: u16 = 554;
/// The ISP's link to the camera site.
const NARROW_MTU: u32 = 1400;
/// What the pod must learn: the narrow link's MTU less the 20 bytes IPv6's header has over
/// IPv4's (RFC 7915 section 5.2: the MTU of a Packet Too Big, minus 20).
const EXPECTED_PMTU: u32 = NARROW_MTU - 20;
const UPLOAD: usize = 64 * 1024;
/// How long the whole upload may take: with path MTU discovery working it takes milliseconds.
const UPLOAD_TIME: Duration = Duration::from_secs(10);
/// `pool6791` for the node, or none: the translator's default source is then under test.
const POOL6791: Option<&str> = None;
/// Where the daemon serves its metrics (its default, inside the node's namespace).
const METRICS: &str = "127.0.0.1:9464";

/// The five namespaces, the daemon, and the pass-through programs on the node's neighbours.
struct Scenario {
    daemon: Option<Daemon>,
    dir: PathBuf,
    pass: Vec<(String, aya::Ebpf)>,
    pod: Netns,
    node: Netns,
    isp: Netns,
    site: Netns,
    camera: Netns,
}

/// A veth pair `a` (in `a_ns`) -- `b` (in `b_ns`), both up, made inside the namespaces so that
/// nothing appears in the root one.
fn veth(a_ns: &Netns, a: &str, b: &str, b_ns: &Netns, mtu: u32) {
    a_ns.ip(&[
        "link",
        "add",
        "name",
        a,
        "mtu",
        &mtu.to_string(),
        "type",
        "veth",
        "peer",
        "name",
        b,
        "mtu",
        &mtu.to_string(),
        "netns",
        b_ns.name(),
    ]);
    a_ns.ip(&["link", "set", "dev", a, "up"]);
    b_ns.ip(&["link", "set", "dev", b, "up"]);
}

fn addr6(ns: &Netns, addr: &str, dev: &str) {
    ns.ip(&["-6", "addr", "add", addr, "dev", dev, "nodad"]);
}

impl Scenario {
    fn build() -> Self {
        let pod = Netns::new("cam-pod");
        let node = Netns::new("cam-node");
        let isp = Netns::new("cam-isp");
        let site = Netns::new("cam-site");
        let camera = Netns::new("cam-camera");
        let dir = std::env::temp_dir().join(format!("{}-run", node.name()));
        std::fs::create_dir_all(&dir).expect("node directory");
        let mut s = Self {
            daemon: None,
            dir,
            pass: Vec::new(),
            pod,
            node,
            isp,
            site,
            camera,
        };
        s.wire();
        s
    }

    fn wire(&mut self) {
        let (pod, node, isp, site, camera) =
            (&self.pod, &self.node, &self.isp, &self.site, &self.camera);
        veth(pod, "p0", "n0", node, 1500);
        veth(node, "n1", "i0", isp, 1500);
        veth(isp, "i1", "s0", site, NARROW_MTU);
        veth(site, "s1", "c0", camera, 1500);

        // pod: IPv4 only, everything through the node. Path MTU discovery on (the default,
        // said explicitly since the test is about it).
        pod.sysctl("net.ipv6.conf.all.disable_ipv6", "1");
        pod.sysctl("net.ipv4.ip_no_pmtu_disc", "0");
        pod.ip(&["addr", "add", &format!("{POD}/24"), "dev", "p0"]);
        pod.ip(&["route", "add", "default", "via", &NODE4.to_string()]);

        // node: the translator. Translated IPv4 packets arrive on n1, whose IPv4 side has no
        // route back, so reverse-path filtering must be off.
        node.ip(&["addr", "add", &format!("{NODE4}/24"), "dev", "n0"]);
        addr6(node, "2001:db8:1::1/64", "n1");
        node.ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:6::/64",
            "via",
            "2001:db8:1::2",
        ]);
        node.sysctl("net.ipv4.ip_forward", "1");
        node.sysctl("net.ipv6.conf.all.forwarding", "1");
        for i in ["all", "default", "n0", "n1"] {
            node.sysctl(&format!("net.ipv4.conf.{i}.rp_filter"), "0");
        }
        // As in the lab (tests/src/lab.rs, `verify_checksums`): no transmit checksum offload
        // on the translator's interfaces, so whatever it forwards carries a real checksum and
        // the receivers verify it; the pod keeps its offloads, so the node does receive
        // CHECKSUM_PARTIAL packets.
        for dev in ["n0", "n1"] {
            run_ok(node.command("ethtool").args(["-K", dev, "tx", "off"]));
        }

        // isp: routes the camera's network to the site and pool6 back to the node.
        addr6(isp, "2001:db8:1::2/64", "i0");
        addr6(isp, "2001:db8:2::1/64", "i1");
        isp.sysctl("net.ipv6.conf.all.forwarding", "1");
        isp.ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:6::/64",
            "via",
            "2001:db8:2::2",
        ]);
        isp.ip(&["-6", "route", "add", POOL6, "via", "2001:db8:1::1"]);

        // site: the camera's router, which filters ICMPv6 echo. Neither nft nor ip6tables is
        // installed on this kind of machine (and the kernel has no tc drop action), so the
        // filter is a policy rule: ICMPv6 to the camera, and from it to the pods, is
        // blackholed. That is stricter than an echo filter, and harmless here: the Packet Too
        // Big this test is about comes from the ISP and never crosses the site.
        addr6(site, "2001:db8:2::2/64", "s0");
        addr6(site, "2001:db8:6::1/64", "s1");
        site.sysctl("net.ipv6.conf.all.forwarding", "1");
        site.ip(&["-6", "route", "add", "default", "via", "2001:db8:2::1"]);
        site.ip(&[
            "-6",
            "rule",
            "add",
            "pref",
            "100",
            "iif",
            "s0",
            "to",
            &format!("{CAMERA}/128"),
            "ipproto",
            "ipv6-icmp",
            "blackhole",
        ]);
        site.ip(&[
            "-6",
            "rule",
            "add",
            "pref",
            "101",
            "iif",
            "s1",
            "from",
            &format!("{CAMERA}/128"),
            "to",
            POOL6,
            "ipproto",
            "ipv6-icmp",
            "blackhole",
        ]);

        // camera: IPv6 only.
        addr6(camera, &format!("{CAMERA}/64"), "c0");
        camera.ip(&["-6", "route", "add", "default", "via", "2001:db8:6::1"]);

        // As in the lab: the node answers some packets itself with XDP_TX (Fragmentation
        // Needed), which a veth only delivers promptly when the receiving end runs an XDP
        // program of its own; the node's neighbours get the dataplane's pass-through program.
        for (ns, dev) in [(&self.pod, "p0"), (&self.isp, "i0")] {
            let ebpf = ns.run(|| attach_pass(dev));
            self.pass.push((ns.name().to_string(), ebpf));
        }
    }

    fn config(&self, mode: &str) -> String {
        let hook = match mode {
            "tc" => "hook = \"tc\"".to_string(),
            "xdp" | "xdp-no-link" => "hook = \"xdp\"\nxdp_mode = \"native\"".to_string(),
            other => panic!("unknown hook {other}"),
        };
        // Interfaces only: the error is translated where it arrives (n1), and the daemon sets
        // accept_local there so that the kernel forwards it with the node's own source.
        let link = if mode == "xdp-no-link" {
            "translator_link = \"off\"\n"
        } else {
            ""
        };
        let pool6791 = POOL6791
            .map(|a| format!("pool6791 = \"{a}\"\n"))
            .unwrap_or_default();
        // The guide's configuration, plus what a test run needs: its interfaces, a private
        // admin socket, nothing pinned. The translator link stays on (its default): the TC
        // hook leaves ICMP errors to it.
        format!(
            r#"pool6 = "{POOL6}"
{link}{pool6791}admin_socket = "{admin}"
state_dir = "off"
metrics_listen = "{METRICS}"

[[interfaces]]
name = "n0"
{hook}

[[interfaces]]
name = "n1"
{hook}

[[eam]]
ipv6 = "{CAMERA}/128"
ipv4 = "{CAMERA_ALIAS}/32"
"#,
            admin = self.admin_socket().display(),
        )
    }

    fn admin_socket(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }

    fn start(&mut self, hook: &str) {
        let toml = self.config(hook);
        self.daemon = Some(Daemon::start(&self.node, &self.dir, &toml));
    }

    /// Everything the daemon can tell about its counters, for failure messages: `nat64d
    /// stats` (the non-zero counters), `nat64d stats --json` (all of them) and the log.
    fn diagnostics(&self) -> String {
        let stats = |json: bool| {
            let mut cmd = Command::new(nat64_tests::nat64d_path());
            cmd.arg("stats").arg("--socket").arg(self.admin_socket());
            if json {
                cmd.arg("--json");
            }
            match cmd.output() {
                Ok(o) => format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => format!("nat64d stats: {e}"),
            }
        };
        format!(
            "--- nat64d stats\n{}--- nat64d stats --json\n{}--- nat64d log\n{}",
            stats(false),
            stats(true),
            self.daemon.as_ref().map(Daemon::log).unwrap_or_default()
        )
    }

    /// The daemon's Prometheus exposition.
    fn metrics(&self) -> String {
        let addr: SocketAddr = METRICS.parse().unwrap();
        let (status, text) = self
            .node
            .run(|| peers::http_get(addr, "/metrics"))
            .unwrap_or_else(|e| panic!("GET /metrics: {e}\n{}", self.diagnostics()));
        assert_eq!(status, 200, "{text}");
        text
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        // The daemon first, then the programs on the neighbours, detached from inside their
        // namespaces (aya detaches by interface index, which names something else elsewhere).
        drop(self.daemon.take());
        for (ns, ebpf) in self.pass.drain(..) {
            detach_in(&ns, ebpf);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // The namespaces go after this, taking their links with them.
    }
}

/// What the camera saw of the upload.
struct Received {
    peer: Option<SocketAddr>,
    bytes: Vec<u8>,
    /// Whether the pod's FIN arrived (the upload is complete, not cut off by the deadline).
    eof: bool,
}

/// The camera's RTSP port: accepts one connection and reads it to EOF, all within `within`.
fn camera_listen(camera: &Netns, within: Duration) -> std::thread::JoinHandle<Received> {
    let listener = camera
        .run(|| TcpListener::bind((CAMERA, RTSP)))
        .expect("the camera listens on 554");
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + within;
        let mut got = Received {
            peer: None,
            bytes: Vec::with_capacity(UPLOAD),
            eof: false,
        };
        let mut s = loop {
            match listener.accept() {
                Ok((s, peer)) => {
                    got.peer = Some(peer);
                    break s;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return got,
            }
        };
        s.set_nonblocking(false).unwrap();
        let mut buf = [0u8; 16384];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match s.read(&mut buf) {
                Ok(0) => {
                    got.eof = true;
                    break;
                }
                Ok(n) => got.bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        got
    })
}

/// The path MTU the pod's kernel holds for `dst`: the `mtu N` of `ip -4 route get DST`
/// (present once an ICMP Fragmentation Needed has been accepted); the whole output too.
fn pod_path_mtu(pod: &Netns, dst: Ipv4Addr) -> (Option<u32>, String) {
    let out = pod.output("ip", &["-4", "route", "get", &dst.to_string()]);
    let words: Vec<_> = std::str::from_utf8(&out.stdout)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let mtu = words
        .windows(2)
        .find(|w| w[0] == "mtu")
        .and_then(|w| w[1].parse().ok());
    (mtu, words.join(" "))
}

/// The value of the series `series` (labels exactly as written) in a Prometheus exposition.
fn value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        l.strip_prefix(series)
            .filter(|rest| rest.starts_with(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Assertion 3, kept in one place so that it is easy to adjust to the counter's final name:
/// the ISP's Packet Too Big went out as an ICMPv4 error with an RFC 6791 source.
fn assert_rfc6791_error_counted(exposition: &str, diagnostics: &str) {
    let series = "nat64_icmp_errors_rfc6791_total{direction=\"6to4\"}";
    let n = value(exposition, series);
    assert!(
        n.unwrap_or(0.0) >= 1.0,
        "{series} is {n:?}: the Packet Too Big from the ISP router (an unmapped IPv6 source) \
         was not translated with an RFC 6791 source\n{diagnostics}"
    );
}

fn camera_upload_learns_the_path_mtu(hook: &str) {
    nat64_tests::require_root();
    let mut s = Scenario::build();
    s.start(hook);

    // The topology routes (the node reaches the site router's camera side), and the site
    // filters ICMPv6 echo (the camera does not answer).
    let (ok, text) = ping(&s.node, "2001:db8:6::1", 1);
    assert!(ok, "node to the site router: {text}");
    let (ok, text) = ping(&s.node, &CAMERA.to_string(), 1);
    assert!(
        !ok,
        "the site should filter ICMPv6 echo to the camera: {text}"
    );

    // 1. The upload: 64 KiB written by the pod, all of it at the camera within UPLOAD_TIME.
    let camera = camera_listen(&s.camera, UPLOAD_TIME);
    let started = Instant::now();
    let data = peers::pattern(UPLOAD, 15);
    let sent = s
        .pod
        .run(|| TcpStream::connect_timeout(&(CAMERA_ALIAS, RTSP).into(), Duration::from_secs(5)))
        .map_err(|e| format!("connect: {e}"))
        .and_then(|mut c| {
            c.set_write_timeout(Some(UPLOAD_TIME)).unwrap();
            c.write_all(&data).map_err(|e| format!("write: {e}"))?;
            c.shutdown(Shutdown::Write)
                .map_err(|e| format!("shutdown: {e}"))?;
            Ok(c)
        });
    let got = camera.join().expect("camera thread");
    let took = started.elapsed();
    let complete = got.eof && got.bytes.len() == UPLOAD;
    assert!(
        sent.is_ok() && complete,
        "the upload did not get through in {UPLOAD_TIME:?} with hook {hook}: the pod's side \
         {sent_state}, the camera received {} of {UPLOAD} bytes (EOF: {}); the pod's route: {}\n{}",
        got.bytes.len(),
        got.eof,
        pod_path_mtu(&s.pod, CAMERA_ALIAS).1,
        s.diagnostics(),
        sent_state = match &sent {
            Ok(_) => "wrote everything".to_string(),
            Err(e) => e.clone(),
        },
    );
    assert!(
        got.bytes == data,
        "the camera received other bytes than sent"
    );
    // The camera sees the pod under pool6.
    assert_eq!(
        got.peer.map(|p| p.ip()),
        Some(IpAddr::V6(POD_AS_V6)),
        "the camera's view of the pod"
    );
    eprintln!("hook {hook}: {UPLOAD} bytes uploaded in {took:?}");
    drop(sent);

    // 2. The pod learned the path MTU from the translated Packet Too Big.
    let (mtu, route) = pod_path_mtu(&s.pod, CAMERA_ALIAS);
    assert_eq!(
        mtu,
        Some(EXPECTED_PMTU),
        "the pod's path MTU to {CAMERA_ALIAS}: {route}\n{}",
        s.diagnostics()
    );

    // 3. The daemon counted the translated ICMP error.
    let exposition = s.metrics();
    let diagnostics = s.diagnostics();
    let icmp = value(
        &exposition,
        "nat64_translated_packets_total{direction=\"6to4\",protocol=\"icmp\"}",
    );
    assert!(
        icmp.unwrap_or(0.0) >= 1.0,
        "no ICMP translated 6to4: {icmp:?}\n{diagnostics}"
    );
    assert_rfc6791_error_counted(&exposition, &diagnostics);

    let exit = s.daemon.take().expect("daemon").stop();
    assert!(exit.status.success(), "{}", exit.stderr);
}

#[test]
fn camera_upload_learns_the_path_mtu_tc() {
    camera_upload_learns_the_path_mtu("tc");
}

#[test]
fn camera_upload_learns_the_path_mtu_xdp() {
    camera_upload_learns_the_path_mtu("xdp");
}

/// The interfaces-only deployment (no translator link): the same upload in native XDP.
#[test]
fn camera_upload_learns_the_path_mtu_xdp_without_link() {
    camera_upload_learns_the_path_mtu("xdp-no-link");
}
