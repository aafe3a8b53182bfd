//! The image, run the way the DaemonSet runs it: `podman run` of the image the manifest names
//! (built from this tree by `cargo xtask image`, which `cargo xtask test` runs first), with the
//! pod's security context, mounts, environment and arguments read from
//! `deploy/kubernetes/base/daemonset.yaml` rather than retyped here. The "node" is the lab's
//! translator namespace: its network is the pod's host network, a bpf filesystem the lab
//! mounts stands in for the node's `/sys/fs/bpf`, and the ConfigMap is a directory laid out and
//! updated the way the kubelet does it (a `..data` symlink swapped atomically).
//!
//! Three settings differ from plain `podman run`, each said where it is made: the runtime is
//! runc (crun refuses this machine's hybrid cgroup layout); the container's RLIMIT_NOFILE/NPROC
//! are set no higher than the test's own (this machine's root lacks CAP_SYS_RESOURCE, so a
//! runtime cannot raise them); and `RuntimeDefault` is podman's default seccomp profile with the
//! two rules containerd's RuntimeDefault (what a Kubernetes node applies) has and Debian's
//! podman 4.3 predates: bpf(2) for CAP_BPF and perf_event_open(2) for CAP_PERFMON.
//!
//! Why one file of this size: it is one scenario (start, reload, restart, upgrade) and the
//! translation of the manifest into `podman run` that it needs.

use std::{
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use nat64_tests::{
    lab::{Lab, LabOptions, SERVER4, SERVER4_AS_V6, STATEFUL_CLIENTS, ping},
    peers,
};
use serde_json::Value;

/// The image repository `cargo xtask image` commits to (and the manifest names).
const REPOSITORY: &str = "ghcr.io/nat64-ebpf/nat64d";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The DaemonSet, as JSON (PyYAML reads the manifest; the deployment tests use it too).
fn daemonset() -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(repo().join("deploy/kubernetes/base/daemonset.yaml"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "reading the DaemonSet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the DaemonSet as JSON")
}

/// The image the DaemonSet's container runs.
fn manifest_image(ds: &Value) -> String {
    ds["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("the container's image")
        .to_string()
}

fn podman(args: &[&str]) -> (bool, String) {
    let out = Command::new("podman")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("podman {args:?}: {e} (cargo xtask setup installs podman)"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The ConfigMap volume as the kubelet writes it: the data in a timestamped directory,
/// `..data` pointing at it, and each key a symlink through `..data`. An update writes a new
/// directory and renames a new `..data` over the old one, so the file changes at once.
struct ConfigMap {
    dir: PathBuf,
    generation: u32,
}

impl ConfigMap {
    fn new(dir: PathBuf, toml: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mut cm = Self { dir, generation: 0 };
        cm.update(toml);
        std::os::unix::fs::symlink("..data/nat64d.toml", cm.dir.join("nat64d.toml")).unwrap();
        cm
    }

    fn update(&mut self, toml: &str) {
        self.generation += 1;
        let data = format!("..2026_12_06_00_00_00.{:09}", self.generation);
        std::fs::create_dir(self.dir.join(&data)).unwrap();
        std::fs::write(self.dir.join(&data).join("nat64d.toml"), toml).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&data, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if self.generation > 1 {
            let old = format!("..2026_12_06_00_00_00.{:09}", self.generation - 1);
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

/// A running container; removed (killed if need be) when dropped.
struct Container {
    name: String,
}

impl Container {
    fn log(&self) -> String {
        podman(&["logs", &self.name]).1
    }

    fn pid(&self) -> u32 {
        let (ok, text) = podman(&["inspect", "--format", "{{.State.Pid}}", &self.name]);
        assert!(ok, "{text}");
        text.trim().parse().expect("the container's pid")
    }

    fn exec(&self, args: &[&str]) -> (bool, String) {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        podman(&all)
    }

    /// `podman stop` with the pod's grace period (SIGTERM, then SIGKILL): the exit code.
    fn stop(&self, grace: u64) -> i64 {
        let (ok, text) = podman(&["stop", "--time", &grace.to_string(), &self.name]);
        assert!(ok, "podman stop: {text}");
        let (ok, text) = podman(&["inspect", "--format", "{{.State.ExitCode}}", &self.name]);
        assert!(ok, "{text}");
        text.trim().parse().expect("exit code")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "0", &self.name]);
    }
}

/// The pod of the DaemonSet on the lab's "node".
struct Pod<'a> {
    lab: &'a Lab,
    ds: Value,
    config: PathBuf,
    empty_dir: PathBuf,
    /// What stands in for the node's `/sys/fs/bpf`.
    bpffs: PathBuf,
    /// The runtime's default seccomp profile, as a Kubernetes node's runtime has it (see
    /// [`runtime_default_seccomp`]).
    seccomp: PathBuf,
    started: u32,
}

/// Podman's default seccomp profile with containerd's two capability rules for BPF (see the
/// module comment): bpf(2) is allowed to CAP_BPF and perf_event_open(2) to CAP_PERFMON, as it
/// already is to CAP_SYS_ADMIN, and still refused (EPERM) to a container with neither.
/// Everything else the profile allows or refuses stays as it is.
fn runtime_default_seccomp(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string("/usr/share/containers/seccomp.json")
        .expect("podman's default seccomp profile (package golang-github-containers-common)");
    let mut profile: Value = serde_json::from_str(&text).unwrap();
    let rules = profile["syscalls"].as_array_mut().unwrap();
    let moved = ["bpf", "perf_event_open"];
    // Take the two calls out of the rules that name them (podman's: allowed with
    // CAP_SYS_ADMIN, EPERM without), so that each has exactly the rules written below:
    // two rules of different actions for one call would conflict.
    for rule in rules.iter_mut() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| !moved.contains(&n.as_str().unwrap_or("")));
        }
    }
    rules.retain(|r| r["names"].as_array().is_none_or(|n| !n.is_empty()));
    for (syscall, cap) in [("bpf", "CAP_BPF"), ("perf_event_open", "CAP_PERFMON")] {
        rules.push(serde_json::json!({
            "names": [syscall],
            "action": "SCMP_ACT_ALLOW",
            "includes": { "caps": ["CAP_SYS_ADMIN"] },
        }));
        rules.push(serde_json::json!({
            "names": [syscall],
            "action": "SCMP_ACT_ALLOW",
            "includes": { "caps": [cap] },
            "excludes": { "caps": ["CAP_SYS_ADMIN"] },
        }));
        rules.push(serde_json::json!({
            "names": [syscall],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
            "excludes": { "caps": ["CAP_SYS_ADMIN", cap] },
        }));
    }
    let path = dir.join("runtime-default-seccomp.json");
    std::fs::write(&path, profile.to_string()).unwrap();
    path
}

impl<'a> Pod<'a> {
    fn spec(&self) -> &Value {
        &self.ds["spec"]["template"]["spec"]
    }

    fn container(&self) -> &Value {
        let c = &self.spec()["containers"];
        assert_eq!(c.as_array().map(Vec::len), Some(1), "one container: {c}");
        &c[0]
    }

    fn probe_path(&self, probe: &str) -> String {
        self.container()[probe]["httpGet"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{probe} is not an httpGet"))
            .to_string()
    }

    fn grace(&self) -> u64 {
        self.spec()["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap()
    }

    /// Where a hostPath of the manifest is on this stand-in node.
    fn host_path(&self, path: &str) -> PathBuf {
        match path {
            // The node's bpf filesystem: the lab's own (mounted by `pinned_state`).
            "/sys/fs/bpf" => self.bpffs.clone(),
            // The node's /proc/sys/net: the real one. A process sees the net sysctls of its
            // own network namespace through it, so the container (in the translator
            // namespace) sees the node's, exactly as a host-network pod does.
            "/proc/sys/net" => PathBuf::from("/proc/sys/net"),
            other => panic!("the test has no stand-in for hostPath {other}: add one"),
        }
    }

    /// `podman run` arguments for the manifest's pod, field by field.
    fn run_args(&self, image: &str, name: &str) -> Vec<String> {
        let spec = self.spec();
        let c = self.container();
        let sc = &c["securityContext"];
        let mut a: Vec<String> = ["run", "--detach", "--name", name]
            .map(String::from)
            .to_vec();
        // This machine: see the module comment.
        a.extend(["--runtime", "runc", "--log-driver", "k8s-file"].map(String::from));
        let limit = |r: libc::__rlimit_resource_t| {
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes the struct it is given.
            assert_eq!(unsafe { libc::getrlimit(r, &mut l) }, 0);
            l.rlim_max
        };
        a.push(format!(
            "--ulimit=nofile={0}:{0}",
            limit(libc::RLIMIT_NOFILE).min(1 << 20)
        ));
        // Equal to the caller's hard limit is refused too (the runtime's own process has a
        // lower one); 4096 is plenty for a daemon of a few threads.
        a.push(format!(
            "--ulimit=nproc={0}:{0}",
            limit(libc::RLIMIT_NPROC).min(4096)
        ));

        // hostNetwork: the node's network namespace.
        assert_eq!(spec["hostNetwork"], Value::Bool(true));
        a.push(format!("--network=ns:/run/netns/{}", self.lab.xlat.name()));
        // Pod and container security context: the container's setting wins.
        let pod_sc = &spec["securityContext"];
        let pick = |field: &str| match &sc[field] {
            Value::Null => pod_sc[field].clone(),
            v => v.clone(),
        };
        if let Some(uid) = pick("runAsUser").as_u64() {
            a.push(format!("--user={uid}"));
        }
        match pick("seccompProfile")["type"].as_str() {
            Some("RuntimeDefault") => {
                a.push(format!("--security-opt=seccomp={}", self.seccomp.display()))
            }
            None => {}
            Some(other) => panic!("seccompProfile {other}: not mapped"),
        }
        assert_eq!(sc["privileged"], Value::Bool(false));
        if sc["allowPrivilegeEscalation"] == Value::Bool(false) {
            a.push("--security-opt=no-new-privileges".into());
        }
        if sc["readOnlyRootFilesystem"] == Value::Bool(true) {
            // Kubernetes adds no writable tmpfs of its own, unlike podman's default.
            a.extend(["--read-only", "--read-only-tmpfs=false"].map(String::from));
        }
        for cap in sc["capabilities"]["drop"].as_array().unwrap() {
            a.push(format!("--cap-drop={}", cap.as_str().unwrap()));
        }
        for cap in sc["capabilities"]["add"].as_array().unwrap() {
            a.push(format!("--cap-add=CAP_{}", cap.as_str().unwrap()));
        }
        // Resources: the limits the kubelet would put on the container's cgroup.
        let limits = &c["resources"]["limits"];
        if let Some(mem) = limits["memory"].as_str() {
            let mib = mem.strip_suffix("Mi").expect("a memory limit in Mi");
            a.push(format!("--memory={mib}m"));
        }
        if let Some(cpu) = limits["cpu"].as_str() {
            a.push(format!("--cpus={cpu}"));
        }
        for e in c["env"].as_array().unwrap() {
            a.push(format!(
                "--env={}={}",
                e["name"].as_str().unwrap(),
                e["value"].as_str().unwrap()
            ));
        }
        // Volumes, as the manifest mounts them.
        let volumes = spec["volumes"].as_array().unwrap();
        for m in c["volumeMounts"].as_array().unwrap() {
            let name = m["name"].as_str().unwrap();
            let target = m["mountPath"].as_str().unwrap();
            let v = volumes
                .iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("volume {name} not declared"));
            let source = if v.get("configMap").is_some() {
                self.config.clone()
            } else if v.get("emptyDir").is_some() {
                self.empty_dir.clone()
            } else if let Some(hp) = v.get("hostPath") {
                self.host_path(hp["path"].as_str().unwrap())
            } else {
                panic!("volume {name}: kind not mapped: {v}")
            };
            let mut opts = Vec::new();
            if m["readOnly"] == Value::Bool(true) {
                opts.push("ro");
            }
            match m["mountPropagation"].as_str() {
                Some("HostToContainer") => opts.push("rslave"),
                None | Some("None") => {}
                Some(p) => panic!("mountPropagation {p}: not mapped"),
            }
            let opts = if opts.is_empty() {
                String::new()
            } else {
                format!(":{}", opts.join(","))
            };
            a.push(format!("--volume={}:{target}{opts}", source.display()));
        }
        a.push(image.to_string());
        for arg in c["args"].as_array().unwrap() {
            a.push(arg.as_str().unwrap().to_string());
        }
        a
    }

    /// Runs the pod's container from `image` (`podman run --detach`).
    fn launch(&mut self, image: &str) -> (Container, String) {
        self.started += 1;
        let name = format!("nat64d-{}-{}", self.lab.xlat.name(), self.started);
        let args = self.run_args(image, &name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, text) = podman(&args);
        let container = Container { name };
        assert!(ok, "podman {}:\n{text}", args.join(" "));
        (container, args.join(" "))
    }

    /// Starts the pod's container from `image` and waits for its startup probe to pass, within
    /// the probe's own bound (period x failureThreshold).
    fn start(&mut self, image: &str) -> Container {
        let (container, args) = self.launch(image);
        let probe = &self.container()["startupProbe"];
        let bound = Duration::from_secs(
            probe["periodSeconds"].as_u64().unwrap() * probe["failureThreshold"].as_u64().unwrap(),
        );
        let path = &self.probe_path("startupProbe");
        let start = Instant::now();
        loop {
            if self.get(path).0 == 200 {
                break;
            }
            let (_, state) = podman(&["inspect", "--format", "{{.State.Status}}", &container.name]);
            assert!(
                !state.contains("exited"),
                "the container exited before its startup probe passed:\n{}\npodman {}",
                container.log(),
                args
            );
            assert!(
                start.elapsed() < bound,
                "the startup probe ({path}) did not pass within {bound:?}:\n{}",
                container.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        container
    }

    /// GET on the metrics port, from the node (the translator namespace): (status, body).
    fn get(&self, path: &str) -> (u16, String) {
        let port = self.container()["ports"][0]["containerPort"]
            .as_u64()
            .unwrap() as u16;
        self.lab
            .xlat
            .run(|| peers::http_get((std::net::Ipv4Addr::LOCALHOST, port).into(), path))
            .unwrap_or((0, String::new()))
    }
}

/// The lab's stateful configuration, as an operator's ConfigMap would carry it: the base
/// ConfigMap's file (admin socket, state on the node's bpffs, on_stop = keep, forwarding, metrics
/// on :9464, JSON logs) followed by the lab's interfaces, mappings and pool4.
fn configmap_toml(lab: &Lab, extra: &str) -> String {
    let base = std::fs::read_to_string(repo().join("deploy/kubernetes/base/nat64d.toml")).unwrap();
    let lab_toml = lab.config_toml();
    let sections = &lab_toml[lab_toml.find("\n[").expect("the lab's sections")..];
    format!("{base}{sections}{extra}")
}

fn echo(tcp: &mut std::net::TcpStream, msg: &[u8; 6], when: &str) {
    let mut buf = [0u8; 6];
    tcp.write_all(msg).unwrap();
    tcp.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("no echo {when}: {e}"));
    assert_eq!(&buf, msg, "{when}");
}

/// The capability bits of `/proc/PID/status`'s `CapEff`.
fn cap_bits(status: &str, field: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
fn the_image_runs_as_the_daemonset_translates_reloads_and_keeps_sessions_across_restart_and_upgrade()
 {
    nat64_tests::require_root();
    let ds = daemonset();
    let image = manifest_image(&ds);
    assert!(
        image.starts_with(&format!("{REPOSITORY}:")),
        "the manifest's image {image} is not the one `cargo xtask image` builds"
    );
    let upgrade = format!("{REPOSITORY}:{}-next", env!("CARGO_PKG_VERSION"));
    for img in [&image, &upgrade] {
        let (ok, _) = podman(&["image", "exists", img]);
        assert!(
            ok,
            "image {img} is not in the local container storage: build it with `cargo xtask image` \
             (and `--version {}-next` for the upgrade), which `cargo xtask test` runs first",
            env!("CARGO_PKG_VERSION")
        );
    }

    let lab = Lab::new(LabOptions {
        stateful: true,
        pinned_state: true,
        ..LabOptions::default()
    });
    // For the reload: a mapping the first configuration does not have.
    lab.prepare_spare_mapping();
    let mut configmap = ConfigMap::new(lab.dir().join("configmap"), &configmap_toml(&lab, ""));
    let empty_dir = lab.dir().join("empty-dir");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let mut pod = Pod {
        lab: &lab,
        ds: ds.clone(),
        config: configmap.dir.clone(),
        empty_dir: empty_dir.clone(),
        // The lab's own bpf filesystem (`pinned_state`).
        bpffs: lab.dir().join("bpf"),
        seccomp: runtime_default_seccomp(lab.dir()),
        started: 0,
    };

    let first = pod.start(&image);
    let liveness = pod.probe_path("livenessProbe");
    assert_eq!(pod.get(&liveness).0, 200, "liveness:\n{}", first.log());

    // The process really runs confined as the manifest says.
    let status = std::fs::read_to_string(format!("/proc/{}/status", first.pid())).unwrap();
    let want = (1u64 << 39) | (1 << 12) | (1 << 38); // CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON
    assert_eq!(cap_bits(&status, "CapEff:"), want, "{status}");
    assert_eq!(cap_bits(&status, "CapBnd:"), want, "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(
        status.contains("Seccomp:\t2"),
        "the runtime's seccomp filter: {status}"
    );
    let (ok, text) = first.exec(&["/usr/bin/nat64d", "--version"]);
    assert!(
        ok && text.trim() == format!("nat64d {}", env!("CARGO_PKG_VERSION")),
        "{text}"
    );
    // Read-only root: the daemon can write nowhere but its volumes.
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", first.pid())).unwrap();
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .expect("the root mount");
    assert!(
        root.split_whitespace()
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{root}"
    );

    // Live traffic: stateless (the EAM client) and a stateful TCP connection kept open
    // throughout, plus a steady ping across reload, restart and upgrade.
    let (ok, text) = ping(&lab.client6, &SERVER4_AS_V6.to_string(), 2);
    assert!(
        ok,
        "IPv6 to IPv4 through the container's dataplane: {text}\n{}",
        first.log()
    );
    let listener = lab
        .server4
        .run(|| std::net::TcpListener::bind((SERVER4, 5010)))
        .expect("bind");
    let server = peers::echo_connections(listener, 1, Duration::from_secs(120));
    let mut tcp = lab
        .client6
        .run(|| peers::tcp_connect_from(STATEFUL_CLIENTS[0], (SERVER4_AS_V6, 5010).into()));
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    echo(&mut tcp, b"hello!", "on the new connection");
    let sessions = |c: &Container| {
        let (ok, text) = c.exec(&[
            "/usr/bin/nat64d",
            "bindings",
            "sessions",
            "--protocol",
            "tcp",
        ]);
        assert!(ok, "nat64d bindings sessions in the container: {text}");
        text
    };
    let before = sessions(&first);
    assert!(
        before.contains(&format!("{SERVER4}:5010")),
        "the connection's session:\n{before}"
    );
    let pinger = lab
        .client6
        .command("ping")
        .args(["-6", "-n", "-i", "0.1", "-W", "2", "-w", "180"])
        .arg(SERVER4_AS_V6.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ping");

    // The ConfigMap changes: the daemon reloads the mounted file by itself.
    configmap.update(&configmap_toml(&lab, nat64_tests::lab::SPARE_EAM));
    let start = Instant::now();
    while !first.log().contains("configuration reloaded") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no reload after the ConfigMap changed:\n{}",
            first.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, text) = ping(&lab.server4, "203.0.113.99", 2);
    assert!(
        ok,
        "the reloaded mapping does not translate: {text}\n{}",
        first.log()
    );
    echo(&mut tcp, b"reload", "after the reload");

    // A container restart: SIGTERM within the grace period, a clean exit that leaves the
    // dataplane translating (on_stop = keep), and a new container that adopts it.
    let code = first.stop(pod.grace());
    assert_eq!(code, 0, "exit code on SIGTERM:\n{}", first.log());
    assert!(first.log().contains("left translating"), "{}", first.log());
    echo(&mut tcp, b"nopod!", "with no container running");
    drop(first);
    let second = pod.start(&image);
    echo(&mut tcp, b"again!", "after the restart");
    let after = sessions(&second);
    assert!(
        after.contains(&format!("{SERVER4}:5010")),
        "the session is kept across the restart:\n{after}"
    );
    let log = second.log();
    assert!(log.contains("\"taken_over\":true"), "{log}");

    // An image upgrade: the next version's image, same pod, same node state.
    assert_eq!(second.stop(pod.grace()), 0, "{}", second.log());
    drop(second);
    let third = pod.start(&upgrade);
    let (ok, text) = third.exec(&["/usr/bin/nat64d", "--version"]);
    assert!(
        ok && text.trim() == format!("nat64d {}-next", env!("CARGO_PKG_VERSION")),
        "{text}"
    );
    assert!(
        third.log().contains(&format!(
            "\"version\":\"{}-next\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{}",
        third.log()
    );
    echo(&mut tcp, b"newver", "after the upgrade");
    let upgraded = sessions(&third);
    assert!(
        upgraded.contains(&format!("{SERVER4}:5010")),
        "the session is kept across the upgrade:\n{upgraded}"
    );
    assert_eq!(
        pod.get(&pod.probe_path("readinessProbe")),
        (200, "ready\n".to_string())
    );

    // SAFETY: kill(2) on the ping this test spawned; SIGINT makes it print its summary.
    unsafe { libc::kill(pinger.id() as i32, libc::SIGINT) };
    let out = pinger.wait_with_output().expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary:\n{text}"));
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    // The ping ran from before the reload to after the upgrade, ten echoes a second: more
    // than 20 means it spanned them (the three take about 4 s with a 0.4 s start each).
    assert!(
        numbers.len() >= 2 && numbers[0] > 20 && numbers[0] == numbers[1],
        "echoes lost across reload, restart and upgrade: {summary}"
    );
    assert_eq!(third.stop(pod.grace()), 0, "{}", third.log());
    drop(tcp);
    let _ = server.join();
}

/// A node whose `/sys/fs/bpf` is not a bpf filesystem: the hostPath volume is then a plain
/// directory, the confined daemon may not mount one (no CAP_SYS_ADMIN), and pinning there would
/// lose every session at the next restart without a word. The pod must not become ready: the
/// daemon stops at once, naming the fix.
#[test]
fn on_a_node_without_bpffs_the_pod_stops_and_names_the_fix() {
    nat64_tests::require_root();
    let ds = daemonset();
    let image = manifest_image(&ds);
    let (ok, _) = podman(&["image", "exists", &image]);
    assert!(ok, "image {image} missing: run `cargo xtask image`");
    let lab = Lab::new(LabOptions {
        stateful: true,
        ..LabOptions::default()
    });
    let configmap = ConfigMap::new(lab.dir().join("configmap"), &configmap_toml(&lab, ""));
    let plain = lab.dir().join("node-sys-fs-bpf");
    let empty_dir = lab.dir().join("empty-dir");
    for d in [&plain, &empty_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut pod = Pod {
        lab: &lab,
        ds: ds.clone(),
        config: configmap.dir.clone(),
        empty_dir,
        bpffs: plain.clone(),
        seccomp: runtime_default_seccomp(lab.dir()),
        started: 0,
    };
    let (container, args) = pod.launch(&image);
    // Bounded: `timeout` ends the wait if the daemon were to keep running.
    let out = Command::new("timeout")
        .args(["60", "podman", "wait", &container.name])
        .output()
        .expect("podman wait");
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let log = container.log();
    assert_eq!(
        code, "1",
        "the daemon should stop with an error:\n{log}\npodman {args}"
    );
    assert!(
        log.contains("no bpf filesystem at /sys/fs/bpf")
            && log.contains("mount -t bpf bpf /sys/fs/bpf"),
        "the error names the fix:\n{log}"
    );
    assert_ne!(pod.get("/readyz").0, 200);
    assert_eq!(
        std::fs::read_dir(&plain).unwrap().count(),
        0,
        "nothing pinned on a directory that is not a bpf filesystem"
    );
}
