//! Network namespaces owned by a test: created with `ip netns add`, removed on drop, entered by
//! threads with setns(2).

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace that is deleted (with everything in it) when dropped.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `n64-<role>-<pid>-<seq>`: unique per process and call, so tests can run in
    /// parallel and a leftover is traceable to its test run.
    pub fn new(role: &str) -> Self {
        let name = format!(
            "n64-{role}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        // Loopback up: many tools expect it.
        ns.ip(&["link", "set", "lo", "up"]);
        // No duplicate address detection on the interfaces to come, link-local addresses
        // included: a router resolves its next hop from its link-local address, and during the
        // second or two of detection it sends no Neighbor Solicitation at all, so the first
        // packets forwarded through a fresh namespace would be lost (a test whose daemon is
        // ready in less time than that saw it).
        for conf in ["all", "default"] {
            ns.sysctl(&format!("net.ipv6.conf.{conf}.accept_dad"), "0");
        }
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> ARGS`, panicking with its stderr on failure.
    pub fn ip(&self, args: &[&str]) {
        run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args));
    }

    /// A veth pair `name`/`peer` in the namespace, both ends up: `name` with `mtu` (if given)
    /// and `addrs` (IPv6 ones without duplicate address detection, usable at once).
    pub fn veth(&self, name: &str, peer: &str, mtu: Option<u32>, addrs: &[&str]) {
        self.ip(&["link", "add", name, "type", "veth", "peer", "name", peer]);
        if let Some(m) = mtu {
            self.ip(&["link", "set", name, "mtu", &m.to_string()]);
        }
        for a in addrs {
            let mut args = vec!["addr", "add", a, "dev", name];
            if a.contains(':') {
                args.push("nodad");
            }
            self.ip(&args);
        }
        self.ip(&["link", "set", name, "up"]);
        self.ip(&["link", "set", peer, "up"]);
    }

    /// The MAC address of interface `dev` in the namespace (`ip -br link show`).
    pub fn mac(&self, dev: &str) -> [u8; 6] {
        let out = self.output("ip", &["-br", "link", "show", dev]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let bytes: Vec<u8> = text
            .split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("no MAC address for {dev} in {text:?}"))
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).expect("hex"))
            .collect();
        bytes
            .try_into()
            .unwrap_or_else(|b| panic!("not a MAC address: {b:?}"))
    }

    /// Sets a sysctl inside the namespace (never in the root namespace).
    pub fn sysctl(&self, key: &str, value: &str) {
        run_ok(
            self.command("sysctl")
                .args(["-q", "-w", &format!("{key}={value}")]),
        );
    }

    /// A command that will run inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs a command inside the namespace and returns its output, whatever its status.
    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {program} in {}: {e}", self.name))
    }

    /// Runs `f` on a thread that has entered this namespace; sockets it creates live there.
    pub fn run<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(move || {
                enter(&path);
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Like [`Netns::run`] but returns at once with a handle; the thread lives in the namespace.
    pub fn spawn<F, R>(&self, f: F) -> std::thread::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes its veth ends (and so their peers) too.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter(path: &str) {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: a valid namespace fd; setns only affects the calling thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
}

/// Runs a command and panics with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
