//! Start to ready (#20): where the daemon's start-up time goes, from its own `nat64d ready`
//! line (`load_and_verify_ms`, `link_and_listeners_ms`, `attach_ms`), over cold starts of the
//! release binary with stateful NAT64, a translator link and one interface (generic XDP) in a
//! namespace of its own.

use nat64_tests::{lab::Daemon, netns::Netns};

pub struct Start {
    pub load_and_verify_ms: u64,
    pub link_and_listeners_ms: u64,
    pub attach_ms: u64,
    /// From the start of the process to the ready line, as the harness saw it.
    pub wall_ms: u64,
}

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in: {line}"))
}

pub fn run(starts: usize) -> Vec<Start> {
    let ns = Netns::new("bench-ready");
    ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ns.ip(&["link", "set", "v0", "up"]);
    ns.ip(&["link", "set", "v1", "up"]);
    let dir = std::env::temp_dir().join(format!("{}-run", ns.name()));
    std::fs::create_dir_all(&dir).expect("directory");
    let toml = "admin_socket = \"off\"\nmetrics_listen = \"off\"\nstate_dir = \"off\"\n\
                interfaces = [{ name = \"v0\", hook = \"xdp\", xdp_mode = \"generic\" }]\n\
                [[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n\
                [stateful]\npool4 = \"203.0.113.0/28\"\n";
    let mut out = Vec::new();
    for _ in 0..starts {
        let started = std::time::Instant::now();
        let d = Daemon::start(&ns, &dir, toml);
        let wall_ms = started.elapsed().as_millis() as u64;
        let log = d.log();
        let line = log
            .lines()
            .find(|l| l.contains("nat64d ready"))
            .unwrap_or_else(|| panic!("no ready line:\n{log}"))
            .to_string();
        let exit = d.stop();
        assert!(exit.status.success(), "{}", exit.stderr);
        out.push(Start {
            load_and_verify_ms: field(&line, "load_and_verify_ms"),
            link_and_listeners_ms: field(&line, "link_and_listeners_ms"),
            attach_ms: field(&line, "attach_ms"),
            wall_ms,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}
