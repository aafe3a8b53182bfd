//! The lab topology: an IPv6-only client, the translator running the real `nat64d`, and an
//! IPv4-only server, each in its own namespace, joined by veth pairs.
//!
//! ```text
//!  client6 (IPv6 only)           xlat (nat64d, XDP on xc and xs)          server4 (IPv4 only)
//!  c0 2001:db8:6::102/64 ---- xc 2001:db8:6::1/64   xs 192.0.2.1/24 ---- s0 192.0.2.2/24
//!  route 64:ff9b::/96 via xlat                                     route 198.51.100.0/24 via xlat
//! ```
//!
//! The IPv4 server is reached from the IPv6 side at 64:ff9b::192.0.2.2 (RFC 6052 Well-Known
//! Prefix); the IPv6 client appears on the IPv4 side as 198.51.100.2 through the explicit
//! address mapping 2001:db8:6::100/120 <-> 198.51.100.0/24 (RFC 7757).
//!
//! With `LabOptions::router4`, an IPv4 router stands between the translator and the server, so
//! that ICMP errors come from a third party (Time Exceeded, Fragmentation Needed):
//!
//! ```text
//!  xlat xs 203.0.113.1/24 ---- r0 203.0.113.254/24  router4  r1 192.0.2.1/24 ---- s0 192.0.2.2/24
//! ```
//!
//! Why one file of this size: the topology, its options and the daemon handle are used together by
//! every end-to-end test; each part is a section below.

use std::{
    fs,
    io::Read as _,
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use crate::netns::Netns;

pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 0x102);
pub const XLAT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 1);
pub const XLAT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const SERVER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// How the IPv6 client appears to IPv4 hosts (EAM).
pub const CLIENT6_AS_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// How the IPv4 server appears to IPv6 hosts (64:ff9b::192.0.2.2).
pub const SERVER4_AS_V6: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0202);
/// The IPv4 router's address toward the translator (router mode), and how IPv6 hosts see it.
pub const ROUTER4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
pub const ROUTER4_AS_V6: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xcb00, 0x71fe);
/// The daemon's translator link in the lab (its far end is `nat64-dp`).
pub const LINK: &str = "nat64";
/// Stateful NAT64 (`LabOptions::stateful`): the IPv4 pool, and IPv6 client addresses that no
/// EAM entry covers, so their traffic is translated statefully.
pub const POOL4: &str = "203.0.113.200/30";
pub const STATEFUL_CLIENTS: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 0x201),
    Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 0x202),
    Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 0x203),
];
pub const EAM_V6: &str = "2001:db8:6::100/120";
/// An `[[eam]]` entry the lab's configuration lacks: 2001:db8:6::300 as 203.0.113.99
/// (`Lab::prepare_spare_mapping` readies its hosts).
pub const SPARE_EAM: &str =
    "\n[[eam]]\nipv6 = \"2001:db8:6::300/128\"\nipv4 = \"203.0.113.99/32\"\n";
pub const EAM_V4: &str = "198.51.100.0/24";

/// How the lab is built.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// "native" or "generic" (XDP), "tc" (the TC ingress hook), or "auto" (the daemon's
    /// default: TC on these veths).
    pub xdp_mode: String,
    /// Turn off transmit checksum offload on the translator's own interfaces, so that any
    /// packet still carrying a partial checksum is completed in software when the translator
    /// forwards it, and the receiving host verifies every checksum for real. The endpoints keep
    /// their offloads, so the translator does receive CHECKSUM_PARTIAL packets.
    pub verify_checksums: bool,
    /// Leave TSO/GSO on at the endpoints. Native XDP on veth turns the peer's segmentation
    /// offload off by itself; generic XDP does not, and then receives GSO aggregates that it
    /// cannot translate (`DropReason::Oversize`). Generic-mode tests of bulk traffic turn it
    /// off, as an operator running generic XDP on veth must.
    pub sender_gso: bool,
    /// Put an IPv4 router between the translator and the server, with this MTU on its
    /// interface toward the server (a narrower link behind the translator for path MTU
    /// discovery; 1500 for none).
    pub router4: Option<u32>,
    /// MTU of the IPv4 link to the server (both ends). IPv4 fragments grow by 28 bytes when
    /// they gain a Fragment header: with a narrower IPv4 link they fit the IPv6 side and are
    /// translated in place; full-size ones are refragmented through the translator link.
    pub v4_link_mtu: u32,
    /// Let the daemon run its translator link (the default, as in production). Without it
    /// the lab routes pool6 and the EAM prefix itself, as an operator without the link would,
    /// so that the kernel still answers Time Exceeded for what the dataplane leaves to it.
    pub translator_link: bool,
    /// Stateful NAT64: pool4 [`POOL4`], and the client gets [`STATEFUL_CLIENTS`], addresses
    /// outside the EAM range, which share pool4. Timeouts are short (UDP and ICMP 3 s, TCP
    /// transitory 4 s; established stays at its RFC default) so that expiry can be watched.
    pub stateful: bool,
    /// Pin the daemon's state on a bpf filesystem the lab mounts in its directory, so that a
    /// restarted daemon adopts it (`Lab::restart_daemon`). Without it, `state_dir = "off"`.
    pub pinned_state: bool,
    /// Top-level configuration lines added to the lab's (e.g. `on_stop = "keep"`).
    pub extra_config: String,
    /// Lines added to the `[stateful]` section (e.g. `per_client_limit = 100`).
    pub stateful_extra: String,
    /// Run the daemon with only these capabilities (as `setpriv --bounding-set`, e.g.
    /// "+bpf,+net_admin,+perfmon"), the way a container grants them; `None`: all of root's.
    pub daemon_caps: Option<String>,
    /// Attach the XDP fast path to the translator's interfaces (xc, xs); without it only the
    /// translator link translates (the "dedicated translator interface" deployment).
    pub fast_path: bool,
    /// Attach the pass-through program to the translator's neighbours (see `Lab::build`);
    /// off for benchmarks, where XDP on a veth peer would slow the other paths measured.
    pub neighbour_xdp: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            xdp_mode: "native".into(),
            verify_checksums: true,
            sender_gso: true,
            router4: None,
            v4_link_mtu: 1500,
            translator_link: true,
            stateful: false,
            pinned_state: false,
            extra_config: String::new(),
            stateful_extra: String::new(),
            daemon_caps: None,
            neighbour_xdp: true,
            fast_path: true,
        }
    }
}

/// A running `nat64d` inside a namespace. Dropping it kills the daemon.
pub struct Daemon {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    /// Writes `toml` to `dir/nat64d.toml`, starts `nat64d run` with it in `ns` and waits (at
    /// most 15 s) until it says it is ready.
    pub fn start(ns: &Netns, dir: &std::path::Path, toml: &str) -> Self {
        Self::start_with_caps(ns, dir, toml, None)
    }

    /// Like [`Daemon::start`], with only the capabilities `caps` (see
    /// [`LabOptions::daemon_caps`]) when given.
    pub fn start_with_caps(
        ns: &Netns,
        dir: &std::path::Path,
        toml: &str,
        caps: Option<&str>,
    ) -> Self {
        let config = dir.join("nat64d.toml");
        fs::write(&config, toml).expect("write config");
        let stdout = dir.join("nat64d.stdout");
        let stderr = dir.join("nat64d.stderr");
        let nat64d = crate::nat64d_path();
        let nat64d = nat64d.to_str().expect("utf-8 path");
        let mut cmd = match caps {
            None => ns.command(nat64d),
            Some(caps) => {
                let mut c = ns.command("setpriv");
                c.arg(format!("--bounding-set=-all,{caps}")).args([
                    "--inh-caps=-all",
                    "--",
                    nat64d,
                ]);
                c
            }
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(&config)
            .env("NAT64D_LOG", "info,nat64_daemon::ipfix=debug")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn nat64d");
        let mut d = Self {
            child,
            stdout,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = fs::read_to_string(&d.stderr).unwrap_or_default();
            if log.contains("nat64d ready") {
                return d;
            }
            if let Some(status) = d.child.try_wait().expect("try_wait") {
                panic!("nat64d exited during start-up ({status}):\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "nat64d not ready after 15 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits (at most 10 s) for the daemon to exit.
    pub fn stop(mut self) -> DaemonExit {
        // `ip netns exec` execs the program, so the child's pid is nat64d's.
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("nat64d did not exit within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        let _ = fs::File::open(&self.stdout).and_then(|mut f| f.read_to_string(&mut stdout));
        let _ = fs::File::open(&self.stderr).and_then(|mut f| f.read_to_string(&mut stderr));
        DaemonExit {
            status,
            stdout,
            stderr,
        }
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the daemon.
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits (at most `within`) until the log contains `needle` `times` times or more; the
    /// log, or `Err` with it.
    pub fn wait_log(&self, needle: &str, times: usize, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if log.matches(needle).count() >= times {
                return Ok(log);
            }
            if Instant::now() > deadline {
                return Err(log);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the daemon left behind when it stopped.
#[derive(Debug)]
pub struct DaemonExit {
    pub status: ExitStatus,
    /// The final counters, in `nat64_daemon::stats::Stats::render` form.
    pub stdout: String,
    pub stderr: String,
}

/// The three namespaces, the daemon's working directory and the daemon itself. Dropping it
/// stops the daemon and removes everything.
pub struct Lab {
    daemon: Option<Daemon>,
    pub opts: LabOptions,
    dir: PathBuf,
    pub client6: Netns,
    pub xlat: Netns,
    pub server4: Netns,
    /// The IPv4 router, in router mode.
    pub router4: Option<Netns>,
    /// The pass-through programs on the translator's neighbours (see `Lab::build`): which
    /// namespace each is attached in, and the object holding it.
    pass: Vec<(String, aya::Ebpf)>,
}

impl Lab {
    pub fn new(opts: LabOptions) -> Self {
        let client6 = Netns::new("client6");
        let xlat = Netns::new("xlat");
        let server4 = Netns::new("server4");
        let router4 = opts.router4.map(|_| Netns::new("router4"));
        let dir = std::env::temp_dir().join(format!("{}-run", xlat.name()));
        fs::create_dir_all(&dir).expect("lab directory");
        let mut lab = Self {
            daemon: None,
            pass: Vec::new(),
            opts,
            dir,
            client6,
            xlat,
            server4,
            router4,
        };
        lab.build();
        lab
    }

    fn build(&mut self) {
        if self.opts.pinned_state {
            // A bpf filesystem of the lab's own, in its directory (seen by `ip netns exec`,
            // which only remounts /sys); unmounted when the lab goes.
            let bpf = self.dir.join("bpf");
            fs::create_dir_all(&bpf).expect("bpffs mount point");
            crate::netns::run_ok(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&bpf));
        }
        let (c, x, s) = (&self.client6, &self.xlat, &self.server4);
        let veth = |ns: &Netns, a: &str, b: &str, peer: &Netns| {
            ns.ip(&[
                "link",
                "add",
                "name",
                a,
                "type",
                "veth",
                "peer",
                "name",
                b,
                "netns",
                peer.name(),
            ]);
        };
        // Links are created directly inside the namespaces: nothing appears in the root one.
        veth(c, "c0", "xc", x);
        match &self.router4 {
            None => veth(s, "s0", "xs", x),
            Some(r) => {
                veth(s, "s0", "r1", r);
                veth(r, "r0", "xs", x);
            }
        }

        // client6: IPv6 only.
        c.ip(&[
            "addr",
            "add",
            &format!("{CLIENT6}/64"),
            "dev",
            "c0",
            "nodad",
        ]);
        if self.opts.stateful {
            for a in STATEFUL_CLIENTS {
                c.ip(&["addr", "add", &format!("{a}/64"), "dev", "c0", "nodad"]);
            }
        }
        c.ip(&["link", "set", "c0", "up"]);
        c.ip(&["route", "add", "64:ff9b::/96", "via", &XLAT6.to_string()]);

        // server4: IPv4 only (IPv6 switched off entirely). Its gateway is 192.0.2.1: the
        // translator, or the router in router mode.
        s.sysctl("net.ipv6.conf.all.disable_ipv6", "1");
        s.ip(&["addr", "add", &format!("{SERVER4}/24"), "dev", "s0"]);
        s.ip(&["link", "set", "s0", "up"]);
        s.ip(&["route", "add", EAM_V4, "via", &XLAT4.to_string()]);
        if self.opts.stateful {
            s.ip(&["route", "add", POOL4, "via", &XLAT4.to_string()]);
        }

        // xlat: a router for both families. Translated IPv4 packets arrive on xc, whose IPv4
        // side has no address or route back, so reverse-path filtering must be off there.
        x.ip(&["addr", "add", &format!("{XLAT6}/64"), "dev", "xc", "nodad"]);
        x.sysctl("net.ipv4.ip_forward", "1");
        x.sysctl("net.ipv6.conf.all.forwarding", "1");
        for i in ["all", "default", "xc", "xs"] {
            x.sysctl(&format!("net.ipv4.conf.{i}.rp_filter"), "0");
        }
        x.ip(&["link", "set", "xc", "up"]);
        if self.opts.v4_link_mtu != 1500 {
            let mtu = self.opts.v4_link_mtu.to_string();
            s.ip(&["link", "set", "s0", "mtu", &mtu]);
            let (peer, dev) = match &self.router4 {
                Some(r) => (r, "r1"),
                None => (x, "xs"),
            };
            peer.ip(&["link", "set", dev, "mtu", &mtu]);
        }
        match &self.router4 {
            None => {
                x.ip(&["addr", "add", &format!("{XLAT4}/24"), "dev", "xs"]);
                x.ip(&["link", "set", "xs", "up"]);
            }
            Some(r) => {
                x.ip(&["addr", "add", "203.0.113.1/24", "dev", "xs"]);
                x.ip(&["link", "set", "xs", "up"]);
                x.ip(&["route", "add", "192.0.2.0/24", "via", &ROUTER4.to_string()]);
                r.sysctl("net.ipv4.ip_forward", "1");
                r.ip(&["addr", "add", &format!("{ROUTER4}/24"), "dev", "r0"]);
                r.ip(&["addr", "add", &format!("{XLAT4}/24"), "dev", "r1"]);
                let mtu = self.opts.router4.unwrap_or(1500).to_string();
                r.ip(&["link", "set", "r1", "mtu", &mtu]);
                r.ip(&["link", "set", "r0", "up"]);
                r.ip(&["link", "set", "r1", "up"]);
                r.ip(&["route", "add", EAM_V4, "via", "203.0.113.1"]);
            }
        }
        // The routes for what the translator stands for (pool6, the EAM IPv4 prefix) are the
        // daemon's: it points them into its translator link. Without the link, the lab stands
        // in for the operator.
        if !self.opts.translator_link {
            x.ip(&["-6", "route", "add", "64:ff9b::/96", "dev", "xs"]);
            x.ip(&["route", "add", EAM_V4, "dev", "xc"]);
        }
        if !self.opts.sender_gso {
            crate::netns::run_ok(
                c.command("ethtool")
                    .args(["-K", "c0", "tso", "off", "gso", "off"]),
            );
            crate::netns::run_ok(
                s.command("ethtool")
                    .args(["-K", "s0", "tso", "off", "gso", "off"]),
            );
        }
        if self.opts.verify_checksums {
            for dev in ["xc", "xs"] {
                crate::netns::run_ok(x.command("ethtool").args(["-K", dev, "tx", "off"]));
            }
        }
        // The translator answers some packets itself with XDP_TX (Fragmentation Needed). On
        // veth, a frame sent that way is only picked up promptly when the receiving end runs
        // an XDP program of its own (the kernel schedules the receiver's NAPI for it only
        // then; with GRO alone it waits for the next ordinary packet), so the neighbours get
        // the dataplane's pass-through program. Physical NICs need nothing of the kind.
        let far = match &self.router4 {
            None => (&self.server4, "s0"),
            Some(r) => (r, "r0"),
        };
        if self.opts.neighbour_xdp {
            for (ns, dev) in [(&self.client6, "c0"), far] {
                let ebpf = ns.run(|| attach_pass(dev));
                self.pass.push((ns.name().to_string(), ebpf));
            }
        }
    }

    /// The daemon's configuration for this lab.
    pub fn config_toml(&self) -> String {
        format!(
            r#"# Written by the lab: see tests/src/lab.rs for the topology.
pool6 = "64:ff9b::/96"
translator_link = "{link}"
admin_socket = "{admin}"
state_dir = "{state}"
{extra}{interfaces}
[[eam]]
ipv6 = "{EAM_V6}"
ipv4 = "{EAM_V4}"
{stateful}"#,
            stateful = if self.opts.stateful {
                format!(
                    "\n[stateful]\npool4 = \"{POOL4}\"\nports = \"20000-29999\"\nudp_timeout_secs = 3\nicmp_timeout_secs = 3\ntcp_transitory_timeout_secs = 4\nrfc_minimum_timeouts = false\nlog_bindings = true\n{}",
                    self.opts.stateful_extra
                )
            } else {
                String::new()
            },
            extra = self.opts.extra_config,
            interfaces = if self.opts.fast_path {
                format!(
                    "\n[[interfaces]]\nname = \"xc\"\n{m}\n\n[[interfaces]]\nname = \"xs\"\n{m}\n",
                    m = match self.opts.xdp_mode.as_str() {
                        "tc" => "hook = \"tc\"".to_string(),
                        "auto" => "hook = \"auto\"".to_string(),
                        m => format!("hook = \"xdp\"\nxdp_mode = \"{m}\""),
                    }
                )
            } else {
                String::new()
            },
            admin = self.admin_socket().display(),
            state = if self.opts.pinned_state {
                self.dir.join("bpf").join("nat64d").display().to_string()
            } else {
                "off".to_string()
            },
            link = if self.opts.translator_link {
                LINK
            } else {
                "off"
            },
        )
    }

    /// A UDP socket on the IPv4 server at `port`, its reads bounded by 5 s.
    pub fn udp_server(&self, port: u16) -> std::net::UdpSocket {
        let server = self
            .server4
            .run(|| std::net::UdpSocket::bind((SERVER4, port)))
            .expect("bind server");
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        server
    }

    /// The daemon's admin socket (per lab, so that labs can run side by side).
    pub fn admin_socket(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }

    /// Runs `nat64d bindings ARGS...` against this lab's daemon: (success, stdout, stderr).
    pub fn bindings_cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(crate::nat64d_path())
            .arg("bindings")
            .arg("--socket")
            .arg(self.admin_socket())
            .args(args)
            .output()
            .expect("run nat64d bindings");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `nat64d stats [--json]` against this lab's daemon: (success, stdout, stderr).
    pub fn stats_cli(&self, json: bool) -> (bool, String, String) {
        let mut cmd = Command::new(crate::nat64d_path());
        cmd.arg("stats").arg("--socket").arg(self.admin_socket());
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run nat64d stats");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `nat64d cleanup` with the lab's configuration in the translator namespace (with
    /// only the daemon's capabilities, when the lab confines it): (success, stdout, stderr).
    pub fn cleanup_cli(&self) -> (bool, String, String) {
        let nat64d = crate::nat64d_path();
        let mut cmd = match &self.opts.daemon_caps {
            None => self.xlat.command(nat64d.to_str().expect("utf-8 path")),
            Some(caps) => {
                let mut c = self.xlat.command("setpriv");
                c.arg(format!("--bounding-set=-all,{caps}"))
                    .args(["--inh-caps=-all", "--"])
                    .arg(&nat64d);
                c
            }
        };
        let out = cmd
            .args(["cleanup", "--config"])
            .arg(self.config_path())
            .output()
            .expect("run nat64d cleanup");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Readies a mapping the lab's configuration does not have ([`SPARE_EAM`], for reload
    /// tests): the client's address in it, and the server's route back to it.
    pub fn prepare_spare_mapping(&self) {
        self.client6
            .ip(&["addr", "add", "2001:db8:6::300/64", "dev", "c0", "nodad"]);
        self.server4
            .ip(&["route", "add", "203.0.113.99/32", "via", &XLAT4.to_string()]);
    }

    /// The lab's own directory (its bpf filesystem is `bpf/` in it, with `pinned_state`).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("nat64d.toml")
    }

    /// Starts `nat64d run` in the translator namespace and waits (at most 15 s) until it says
    /// it is ready.
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "daemon already running");
        self.daemon = Some(Daemon::start_with_caps(
            &self.xlat,
            &self.dir,
            &self.config_toml(),
            self.opts.daemon_caps.as_deref(),
        ));
    }

    /// Starts `nat64d run` with this configuration instead of the lab's own.
    pub fn start_daemon_with(&mut self, toml: &str) {
        assert!(self.daemon.is_none(), "daemon already running");
        self.daemon = Some(Daemon::start_with_caps(
            &self.xlat,
            &self.dir,
            toml,
            self.opts.daemon_caps.as_deref(),
        ));
    }

    /// Sends SIGTERM and waits (at most 10 s) for the daemon to exit.
    pub fn stop_daemon(&mut self) -> DaemonExit {
        self.daemon.take().expect("daemon not running").stop()
    }

    /// Kills the daemon with SIGKILL (no clean-up of any kind) and waits for it to be gone.
    pub fn kill_daemon(&mut self) {
        let d = self.daemon.take().expect("daemon not running");
        d.signal(libc::SIGKILL);
        drop(d);
    }

    /// Stops the daemon and starts it again with the same configuration; what the first run
    /// left behind.
    pub fn restart_daemon(&mut self) -> DaemonExit {
        let exit = self.stop_daemon();
        self.start_daemon();
        exit
    }

    /// The running daemon.
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("daemon not running")
    }

    /// The daemon's log so far.
    pub fn daemon_log(&self) -> String {
        self.daemon.as_ref().map(Daemon::log).unwrap_or_default()
    }

    /// `ip link show` of a translator interface (to see whether XDP is attached).
    pub fn xlat_link(&self, dev: &str) -> String {
        let out = self.xlat.output("ip", &["link", "show", "dev", dev]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The names of the programs attached at tcx ingress of `dev` in the translator's
    /// namespace (asked of the kernel: BPF_PROG_QUERY).
    pub fn xlat_tcx_programs(&self, dev: &str) -> Vec<String> {
        use aya::programs::{SchedClassifier, TcAttachType};
        let dev = dev.to_string();
        self.xlat.run(
            move || match SchedClassifier::query_tcx(&dev, TcAttachType::Ingress) {
                Ok((_, progs)) => progs
                    .iter()
                    .map(|p| p.name_as_str().unwrap_or("?").to_string())
                    .collect(),
                Err(e) => vec![format!("query failed: {e}")],
            },
        )
    }
}

/// Loads the dataplane's `nat64_pass` program and attaches it natively to `dev` in the calling
/// thread's namespace (a veth peer picks up the translator's `XDP_TX` frames at once only when
/// it runs an XDP program). Detach it with [`detach_in`].
pub fn attach_pass(dev: &str) -> aya::Ebpf {
    use nat64_daemon::dataplane::{EBPF_OBJECT, PASS_PROGRAM};
    let mut ebpf = aya::Ebpf::load(EBPF_OBJECT).expect("load the dataplane object");
    let prog: &mut aya::programs::Xdp = ebpf
        .program_mut(PASS_PROGRAM)
        .expect("pass program")
        .try_into()
        .expect("an XDP program");
    prog.load().expect("load the pass program");
    let ifindex = nat64_daemon::sys::if_index(dev).unwrap_or_else(|| panic!("no {dev}"));
    prog.attach_to_if_index(ifindex, aya::programs::XdpMode::Driver)
        .unwrap_or_else(|e| panic!("attaching XDP to {dev}: {e}"));
    ebpf
}

/// Detaches (drops) programs attached by [`attach_pass`] from inside the namespace `ns`, where
/// they were attached: aya detaches by interface index, which names something else elsewhere.
pub fn detach_in(ns: &str, ebpf: aya::Ebpf) {
    let path = format!("/run/netns/{ns}");
    let _ = std::thread::spawn(move || {
        crate::netns::enter(&path);
        drop(ebpf);
    })
    .join();
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The daemon first (its own drop stops it), then the programs on the neighbours.
        drop(self.daemon.take());
        // Detached where they were attached: aya detaches by interface index, which means
        // something else in any other namespace.
        for (ns, ebpf) in self.pass.drain(..) {
            detach_in(&ns, ebpf);
        }
        if self.opts.pinned_state {
            let _ = Command::new("umount").arg(self.dir.join("bpf")).output();
        }
        let _ = fs::remove_dir_all(&self.dir);
        // The namespaces are dropped after this, taking their links with them.
    }
}

/// Runs `ping` in `ns` and returns whether all `count` echoes were answered.
pub fn ping(ns: &Netns, target: &str, count: u32) -> (bool, String) {
    let out = ns.output(
        "ping",
        &[
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "2",
            target,
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// One echo request with hop limit / TTL `hops` from `ns` to `target`; ping's output (where
/// an ICMP error's "From <address> ... exceeded" line shows up).
pub fn ping_hops(ns: &Netns, target: &str, hops: u32) -> String {
    let out = ns.output(
        "ping",
        &["-n", "-c", "1", "-W", "2", "-t", &hops.to_string(), target],
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A command line for log output, e.g. in the lab's narration.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
