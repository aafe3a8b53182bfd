//! Test support shared by the end-to-end tests and the lab: network namespaces that clean up
//! after themselves, the lab topology with the real daemon, and traffic peers that run inside
//! namespaces.
//!
//! Everything here follows the project's network rules: every host is a namespace this process
//! created, addresses come from documentation ranges only, every wait is bounded, and the root
//! namespace's routes, addresses and sysctls are never touched.

pub mod collector;
pub mod fixtures;
pub mod frames;
pub mod lab;
pub mod netns;
pub mod peers;
pub mod xdp;

/// Panics with a clear message unless running as root: the tests load BPF programs and create
/// namespaces, and must fail loudly rather than pass vacuously without those rights.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for namespaces); run it as root, e.g. `cargo xtask test`"
    );
}

/// How long until `seen()` holds, asked at once and then every 100 ms, at most `tries` times
/// (a bounded wait); `None` if it never did.
pub fn time_until(tries: u32, mut seen: impl FnMut() -> bool) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    for _ in 0..tries {
        if seen() {
            return Some(start.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

/// For the tests of remembered route MTUs: raises `dev`'s MTU in `ns` to 1500, then lowers it
/// to 1300, and asserts that each change is seen within 1.5 s (the dataplane keeps a route's
/// MTU for a second): `seen(0)` once the packet is translated, `seen(answer)` once it is
/// answered with the MTU `answer`.
pub fn assert_route_mtu_changes_seen(
    ns: &netns::Netns,
    dev: &str,
    answer: u32,
    seen: impl Fn(u32) -> bool,
) {
    for (mtu, want) in [("1500", 0), ("1300", answer)] {
        ns.ip(&["link", "set", dev, "mtu", mtu]);
        let took = time_until(30, || seen(want))
            .unwrap_or_else(|| panic!("{dev} at MTU {mtu} not seen in 3 s (want {want})"));
        assert!(
            took.as_millis() <= 1500,
            "{dev} at MTU {mtu} seen after {took:?}"
        );
    }
}

/// Path of the `nat64d` binary built in the same target directory as the running test or lab.
///
/// `NAT64D_BIN` overrides it. Panics with the fix when it is missing.
pub fn nat64d_path() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("NAT64D_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash> or target/<profile>/<bin>
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join("nat64d");
    assert!(
        p.exists(),
        "{} not found: build it first with `cargo build -p nat64-daemon` (cargo xtask test does)",
        p.display()
    );
    p
}
