//! `cargo xtask conformance-adapter start|configure|health|stop NETNS IF6 IF4 [KEY...]`: the
//! conformance runner's adapter for nat64d (the contract is in the runner's README).
//!
//! The daemon runs detached in the translator's namespace, entered with `nsenter --net` (`ip
//! netns exec` would hide /sys/fs/bpf behind a fresh sysfs), and is known by the PID file in
//! `$JC_STATE_DIR`. It logs JSON, which is how the adapter learns that it is ready or that a
//! reload was applied.

use std::{
    fs,
    io::{Read as _, Seek as _, SeekFrom},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::mapping::{self, Translation};

/// Exit status the runner reads as "not expressible".
const EXIT_UNSUPPORTED: u8 = 3;
/// The daemon's pinned state: its own directory, so nothing of a daemon on the host is touched.
const BPF_STATE_DIR: &str = "/sys/fs/bpf/nat64-conformance";
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// One invocation: the runner's arguments and environment.
struct Ctx {
    netns: String,
    if6: String,
    if4: String,
    /// "tc" or "xdp", from `NAT64_CONFORMANCE_HOOK` (the wrapper script sets it).
    hook: String,
    nat64d: PathBuf,
    /// `$JC_STATE_DIR`: the runner's scratch directory for this run.
    state: PathBuf,
    /// `$JC_CONFIG`: the configuration the runner wants now.
    jc_config: PathBuf,
}

impl Ctx {
    fn from_env(netns: &str, if6: &str, if4: &str) -> anyhow::Result<Self> {
        let var = |k: &str| std::env::var(k).with_context(|| format!("${k} is not set"));
        let hook = var("NAT64_CONFORMANCE_HOOK")?;
        if hook != "tc" && hook != "xdp" {
            bail!("NAT64_CONFORMANCE_HOOK={hook:?}: expected tc or xdp");
        }
        let nat64d = match std::env::var_os("NAT64_CONFORMANCE_NAT64D") {
            Some(p) => PathBuf::from(p),
            None => crate::target_dir()?.join("debug/nat64d"),
        };
        Ok(Self {
            netns: netns.into(),
            if6: if6.into(),
            if4: if4.into(),
            hook,
            nat64d,
            state: var("JC_STATE_DIR")?.into(),
            jc_config: var("JC_CONFIG")?.into(),
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.state.join(name)
    }
    fn toml(&self) -> PathBuf {
        self.file("nat64d.toml")
    }
    fn log(&self) -> PathBuf {
        self.file("nat64d.log")
    }
    fn pid_file(&self) -> PathBuf {
        self.file("nat64d.pid")
    }
    /// The admin socket in a directory of its own: the daemon makes its directory 0700.
    fn admin_socket(&self) -> String {
        self.file("admin/admin.sock").display().to_string()
    }
    fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }

    /// A command run inside the translator's namespace.
    fn in_ns(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.netns_path().display()))
            .arg("--")
            .arg(program);
        c
    }

    fn translate(&self, jc: &Value) -> Translation {
        let admin = self.admin_socket();
        let caps = probe_caps(self);
        mapping::translate(
            jc,
            &mapping::Site {
                if6: &self.if6,
                if4: &self.if4,
                hook: &self.hook,
                admin_socket: &admin,
                state_dir: BPF_STATE_DIR,
                caps,
            },
        )
    }
}

/// Runs one verb; the value is the exit status for the runner.
pub fn main(verb: &str, netns: &str, if6: &str, if4: &str, keys: &[String]) -> anyhow::Result<u8> {
    let ctx = Ctx::from_env(netns, if6, if4)?;
    match verb {
        "start" => start(&ctx),
        "configure" => configure(&ctx, keys),
        "health" => Ok(if daemon_pid(&ctx).is_some() { 0 } else { 1 }),
        "stop" => stop(&ctx).map(|()| 0),
        other => bail!("unknown verb {other:?} (start, configure, health, stop)"),
    }
}

/// `start`: the baseline configuration, and the daemon translating it.
fn start(ctx: &Ctx) -> anyhow::Result<u8> {
    stop(ctx)?; // a daemon of an earlier, interrupted run
    let jc = read_json(&ctx.jc_config)?;
    let t = ctx.translate(&jc);
    if t.mode != "siit" && t.mode != "nat64" {
        println!("nat64d has no {:?} mode", t.mode);
        return Ok(EXIT_UNSUPPORTED);
    }
    // Kept for `configure`: a key that goes back to its baseline value goes back to the
    // baseline's approximation, which was declared here, not refused again.
    fs::write(ctx.file("baseline.json"), serde_json::to_string(&jc)?)?;
    let mut notes = vec![format!(
        "nat64d (hook {}) on {} and {}, configured from Jool's settings by xtask/src/conformance/mapping.rs",
        ctx.hook, ctx.if6, ctx.if4
    )];
    let mut unsupported = String::new();
    for (k, why) in t.unsupported() {
        unsupported.push_str(&format!("{k}\t{why}\n"));
    }
    for (k, why) in t.approximations() {
        notes.push(format!("{k}: {why}"));
    }
    notes.extend(bring_up(ctx, &t, true)?);
    fs::write(ctx.file("unsupported"), unsupported)?;
    fs::write(ctx.file("notes"), notes.join("\n") + "\n")?;
    Ok(0)
}

/// Writes the configuration and starts the daemon; returns notes on what it had to change in
/// the namespace.
fn bring_up(ctx: &Ctx, t: &Translation, fresh_log: bool) -> anyhow::Result<Vec<String>> {
    ensure_bpffs()?;
    let toml = ctx.toml();
    write_atomically(&toml, &t.config.render())?;
    // Jool's setup as it is (pool4 on the namespace's own address, shared by port) when the
    // daemon takes it; an older one refuses it, and gets the address moved.
    let mut notes = Vec::new();
    if check_config(ctx, &toml).is_err() {
        notes = free_pool4_addresses(ctx, &t.pool4)?;
        check_config(ctx, &toml).map_err(anyhow::Error::msg)?;
    }
    fs::create_dir_all(ctx.file("admin"))?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .truncate(false)
        .open(ctx.log())?;
    if fresh_log {
        log.set_len(0)?;
    }
    let offset = log.metadata()?.len();
    // setsid: out of the runner's session and process group, so that its signals and its
    // end leave the daemon to the adapter's `stop`. The child is not a group leader, so
    // setsid execs in place, and nsenter (only a network namespace to enter) execs too: the
    // PID is the daemon's.
    let mut child = Command::new("setsid")
        .arg("nsenter")
        .arg(format!("--net={}", ctx.netns_path().display()))
        .arg("--")
        .arg(&ctx.nat64d)
        .args(["run", "--config"])
        .arg(&toml)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", ctx.nat64d.display()))?;
    fs::write(ctx.pid_file(), child.id().to_string())?;
    wait_ready(ctx, &mut child, offset)?;
    Ok(notes)
}

/// Waits for the daemon's "nat64d ready" line: programs attached, link and routes up.
fn wait_ready(ctx: &Ctx, child: &mut Child, offset: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if log_events(ctx, offset)?
            .iter()
            .any(|e| message(e) == "nat64d ready")
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let _ = fs::remove_file(ctx.pid_file());
            bail!(
                "nat64d exited ({status}) before it was ready:\n{}",
                log_tail(ctx)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "nat64d not ready after {READY_TIMEOUT:?}:\n{}",
                log_tail(ctx)
            );
        }
        sleep(POLL);
    }
}

/// `configure KEY...`: moves the daemon to the runner's new configuration by a reload, or a
/// restart where nat64d refuses to reload a key.
fn configure(ctx: &Ctx, keys: &[String]) -> anyhow::Result<u8> {
    let jc = read_json(&ctx.jc_config)?;
    let baseline = read_json(&ctx.file("baseline.json")).unwrap_or(Value::Null);
    let t = ctx.translate(&jc);
    let value = |cfg: &Value, k: &str| cfg["settings"].get(k).or_else(|| cfg.get(k)).cloned();
    let mut refused = Vec::new();
    for (k, why) in t.unsupported() {
        if keys.iter().any(|c| c == k) && value(&jc, k) != value(&baseline, k) {
            refused.push(format!("unsupported {k} {why}"));
        }
    }
    // What the mapping writes, nat64d may still refuse on this host (an EAM IPv4 prefix that
    // holds one of the namespace's own addresses): the same check as its reload, done first.
    if refused.is_empty() {
        let candidate = ctx.file("candidate.toml");
        fs::write(&candidate, t.config.render())?;
        let checked = check_config(ctx, &candidate);
        let _ = fs::remove_file(&candidate);
        if let Err(e) = checked {
            let e = e.replace('\n', " ");
            refused.extend(keys.iter().map(|k| format!("unsupported {k} {e}")));
        }
    }
    if !refused.is_empty() {
        println!("{}", refused.join("\n"));
        return Ok(EXIT_UNSUPPORTED);
    }
    for (k, why) in t.approximations() {
        if keys.iter().any(|c| c == k) {
            eprintln!("approximated {k}: {why}");
        }
    }
    let Some(pid) = daemon_pid(ctx) else {
        eprintln!("nat64d was not running; starting it with the new configuration");
        bring_up(ctx, &t, false)?;
        return Ok(0);
    };
    let offset = fs::metadata(ctx.log()).map(|m| m.len()).unwrap_or(0);
    write_atomically(&ctx.toml(), &t.config.render())?;
    crate::run(Command::new("kill").args(["-HUP", &pid.to_string()]))?;
    match wait_reload(ctx, offset)? {
        Reload::Applied => Ok(0),
        Reload::NeedsRestart(why) => {
            eprintln!("nat64d needs a restart for this change ({why}); restarting");
            stop(ctx)?;
            bring_up(ctx, &t, false)?;
            Ok(0)
        }
    }
}

enum Reload {
    Applied,
    NeedsRestart(String),
}

/// Waits for the outcome of the SIGHUP just sent. The daemon also reloads by itself when the
/// file changes; then the SIGHUP finds the configuration unchanged, which is as good.
fn wait_reload(ctx: &Ctx, offset: u64) -> anyhow::Result<Reload> {
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        for e in log_events(ctx, offset)? {
            if e["fields"]["trigger"].as_str() != Some("SIGHUP") {
                continue;
            }
            let error = e["fields"]["error"].as_str().unwrap_or("").to_string();
            match message(&e) {
                "configuration reloaded" | "configuration unchanged" => return Ok(Reload::Applied),
                m if m.starts_with("reload refused") => {
                    if error.contains("changes only with a restart") {
                        return Ok(Reload::NeedsRestart(error));
                    }
                    bail!("nat64d refused the reload: {error}");
                }
                m if m.starts_with("applying the new configuration failed") => {
                    bail!("nat64d could not apply the new configuration: {error}")
                }
                _ => {}
            }
        }
        if daemon_pid(ctx).is_none() {
            bail!("nat64d died during the reload:\n{}", log_tail(ctx));
        }
        if Instant::now() > deadline {
            bail!(
                "no reload outcome from nat64d after {RELOAD_TIMEOUT:?}:\n{}",
                log_tail(ctx)
            );
        }
        sleep(POLL);
    }
}

/// `stop`: the daemon (SIGTERM, then SIGKILL), what it pinned or created, and the addresses the
/// adapter moved. Idempotent.
fn stop(ctx: &Ctx) -> anyhow::Result<()> {
    if let Some(pid) = daemon_pid(ctx) {
        let _ = crate::output(Command::new("kill").args(["-TERM", &pid.to_string()]));
        let deadline = Instant::now() + STOP_TIMEOUT;
        while alive(pid) && Instant::now() < deadline {
            sleep(POLL);
        }
        if alive(pid) {
            eprintln!("nat64d (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT:?}; SIGKILL");
            let _ = crate::output(Command::new("kill").args(["-KILL", &pid.to_string()]));
            let deadline = Instant::now() + Duration::from_secs(2);
            while alive(pid) && Instant::now() < deadline {
                sleep(POLL);
            }
        }
    }
    let _ = fs::remove_file(ctx.pid_file());
    let ns_there = ctx.netns_path().exists();
    // A daemon stopped by SIGKILL leaves its attachments pinned and its link in place: cleanup
    // removes both (the link lives in the namespace, so it runs there).
    if ns_there && ctx.toml().exists() {
        match crate::output(
            ctx.in_ns(&ctx.nat64d)
                .args(["cleanup", "--config"])
                .arg(ctx.toml()),
        ) {
            Ok(out) => eprint!("{out}"),
            Err(e) => eprintln!("nat64d cleanup: {e:#}"),
        }
    }
    if Path::new(BPF_STATE_DIR).exists() {
        fs::remove_dir_all(BPF_STATE_DIR).with_context(|| format!("removing {BPF_STATE_DIR}"))?;
    }
    if ns_there {
        restore_addresses(ctx)?;
    }
    Ok(())
}

/// The daemon's PID while it runs.
fn daemon_pid(ctx: &Ctx) -> Option<u32> {
    let pid = fs::read_to_string(ctx.pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive(pid).then_some(pid)
}

/// Whether `pid` is a live nat64d: not a zombie (the adapter that spawned it is gone, and
/// whoever reaps orphans may be slow), and not a recycled PID.
fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().next());
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    !matches!(state, Some("Z" | "X") | None) && comm.trim() == "nat64d"
}

/// nat64d's own validation, against the namespace (interfaces, own addresses): `Err` is its
/// message.
fn check_config(ctx: &Ctx, file: &Path) -> Result<(), String> {
    let out = ctx
        .in_ns(&ctx.nat64d)
        .arg("check-config")
        .arg(file)
        .output()
        .map_err(|e| format!("running nat64d check-config: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(format!("nat64d refuses it: {}", err.trim()))
}

/// What the daemon binary accepts: a key it does not know fails its check (unknown keys are
/// errors), so a one-line file tells whether it has the setting.
fn probe_caps(ctx: &Ctx) -> mapping::Caps {
    let accepts = |line: &str| {
        let file = ctx.file("probe.toml");
        let ok = fs::write(&file, format!("{line}\n")).is_ok()
            && Command::new(&ctx.nat64d)
                .args(["check-config", "--skip-interface-check"])
                .arg(&file)
                .output()
                .is_ok_and(|o| o.status.success());
        let _ = fs::remove_file(&file);
        ok
    };
    mapping::Caps {
        pool6791v6: accepts("pool6791v6 = \"2001:db8::1\""),
        pool6_ipv4: accepts("pool6_ipv4 = []"),
        udp_zero_checksum: accepts("udp_zero_checksum = \"drop\""),
        icmp_error_source: accepts(
            "[stateful]\npool4 = \"198.51.100.1/32\"\nicmp_error_source = \"quoted-destination\"",
        ),
    }
}

/// bpffs at /sys/fs/bpf, where the daemon pins its state; mounted if it is not (a container).
fn ensure_bpffs() -> anyhow::Result<()> {
    let mounts = fs::read_to_string("/proc/mounts")?;
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    {
        return Ok(());
    }
    crate::run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
}

/// Jool's pool4 is the translator's own IPv4 address (it shares it with the host, ports 1-3000
/// against the kernel's ephemeral ones). A nat64d from before issue #17 refuses a pool4 that
/// holds an address of the host. For one of those, the namespace's address moves to a free one
/// in the same subnet, recorded for `stop` to undo.
fn free_pool4_addresses(ctx: &Ctx, pool4: &[Ipv4Addr]) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    if pool4.is_empty() {
        return Ok(notes);
    }
    let own = own_ipv4(ctx)?;
    let hosts: Vec<Ipv4Addr> = std::env::var("JC_HOST4")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect();
    let mut moved = fs::read_to_string(ctx.file("moved-addresses")).unwrap_or_default();
    for (dev, addr, len) in own.iter().filter(|(_, a, _)| pool4.contains(a)) {
        let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
        let net = u32::from(*addr) & mask;
        let taken = |a: Ipv4Addr| {
            pool4.contains(&a) || hosts.contains(&a) || own.iter().any(|(_, o, _)| *o == a)
        };
        // From the top of the subnet down: the end Jool's setups leave free.
        let Some(new) = (1..(!mask).saturating_sub(1))
            .map(|i| Ipv4Addr::from(net | (!mask - i)))
            .find(|a| !taken(*a))
        else {
            bail!("no free address in {addr}/{len} to move {dev}'s address to");
        };
        replace_address(ctx, dev, &format!("{new}/{len}"), &format!("{addr}/{len}"))?;
        moved.push_str(&format!("{dev} {addr}/{len} {new}/{len}\n"));
        notes.push(format!(
            "pool4 {addr}: it is {dev}'s own address in Jool's setup; nat64d refuses a pool4 holding an address of the host, so the adapter moved {dev}'s {addr}/{len} to {new}/{len} (the namespace's own IPv4 packets, its kernel's ICMP errors, come from {new})"
        ));
    }
    fs::write(ctx.file("moved-addresses"), moved)?;
    Ok(notes)
}

/// Puts back what [`free_pool4_addresses`] moved.
fn restore_addresses(ctx: &Ctx) -> anyhow::Result<()> {
    let path = ctx.file("moved-addresses");
    let Ok(moved) = fs::read_to_string(&path) else {
        return Ok(());
    };
    for line in moved.lines().rev() {
        if let [dev, old, new] = line.split_whitespace().collect::<Vec<_>>()[..] {
            replace_address(ctx, dev, old, new)?;
        }
    }
    fs::remove_file(path)?;
    Ok(())
}

/// Adds `add` to `dev`, then removes `del`, keeping the subnet's routes: the added address is
/// a secondary that must survive the primary's removal, and the runner's routes through the
/// subnet are put back should the kernel have dropped them.
fn replace_address(ctx: &Ctx, dev: &str, add: &str, del: &str) -> anyhow::Result<()> {
    crate::output(
        ctx.in_ns("sysctl")
            .args(["-qw", &format!("net.ipv4.conf.{dev}.promote_secondaries=1")]),
    )?;
    let _ = crate::output(ctx.in_ns("ip").args(["addr", "add", add, "dev", dev]));
    let _ = crate::output(ctx.in_ns("ip").args(["addr", "del", del, "dev", dev]));
    for route in manifest_routes() {
        let _ = crate::output(
            ctx.in_ns("ip")
                .args(["-4", "route", "replace"])
                .args(route.split_whitespace()),
        );
    }
    Ok(())
}

/// The IPv4 routes the runner gave the translator's namespace (`$JC_MANIFEST` topology).
fn manifest_routes() -> Vec<String> {
    let Some(m) = std::env::var_os("JC_MANIFEST").and_then(|p| read_json(Path::new(&p)).ok())
    else {
        return Vec::new();
    };
    m["topology"]["xlat"]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|r| !r.contains(':'))
        .map(str::to_string)
        .collect()
}

/// (interface, address, prefix length) of every IPv4 address in the namespace.
fn own_ipv4(ctx: &Ctx) -> anyhow::Result<Vec<(String, Ipv4Addr, u8)>> {
    let out = crate::output(ctx.in_ns("ip").args(["-o", "-4", "addr", "show"]))?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f.iter().position(|w| *w == "inet")?;
            let (a, len) = f.get(i + 1)?.split_once('/')?;
            Some((f.get(1)?.to_string(), a.parse().ok()?, len.parse().ok()?))
        })
        .collect())
}

/// The daemon's JSON log lines from `offset` on.
fn log_events(ctx: &Ctx, offset: u64) -> anyhow::Result<Vec<Value>> {
    let mut f = match fs::File::open(ctx.log()) {
        Ok(f) => f,
        Err(_) => return Ok(Vec::new()),
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn message(e: &Value) -> &str {
    e["fields"]["message"].as_str().unwrap_or("")
}

fn log_tail(ctx: &Ctx) -> String {
    let text = fs::read_to_string(ctx.log()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Replaces a file in one step: the daemon also reloads by itself when its file changes, and
/// must never read half of one.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
