//! Installs what the build and the tests need, following `../shared/docs/toolchain.md`:
//! rust-src (for `-Z build-std=core`), bpf-linker linked against rustc's own LLVM, and the
//! Debian packages the tests call. Every check is cheap, so a second run does nothing.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::{output, run, step};

/// The bpf-linker release installed: the one the object's code generation options
/// (`nat64-ebpf/build.rs`: `--cpu-features`, `--llvm-args`) and the verifier budgets in
/// docs/profile.md were checked with. A linker already present and linked against rustc's LLVM
/// is kept whatever its release.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages the tests and the lab run: `ip` and `sysctl` to build namespaces, `ping`
/// and `curl` for traffic, `ethtool` to switch checksum offload, `prometheus` for a real
/// scrape of the daemon's metrics and `promtool check metrics`, `unbound` (a DNS64 resolver
/// and its IPv4-only upstream) and `dig` for the DNS64 test, `nfcapd` and `nfdump` (an IPFIX
/// collector and its reader) for the binding export test.
const PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "ip"),
    ("procps", "sysctl"),
    ("iputils-ping", "ping"),
    ("curl", "curl"),
    ("ethtool", "ethtool"),
    ("prometheus", "promtool"),
    ("unbound", "unbound"),
    ("dnsutils", "dig"),
    ("nfdump", "nfcapd"),
];

/// Python tools the deployment tests run on the rendered manifests, offline:
/// `kubernetes-validate` (API schemas) and `checkov` (security posture). Command and package.
const PYTHON_TOOLS: &[(&str, &str)] = &[
    ("kubernetes-validate", "kubernetes-validate"),
    ("checkov", "checkov"),
];

/// Everything: the toolchain, then what the tests run.
pub fn all() -> anyhow::Result<()> {
    toolchain()?;
    debian_packages()?;
    python_tools()?;
    kubectl();
    step("setup complete");
    Ok(())
}

/// Only what building needs (the container image's build stage): rust-src and bpf-linker.
pub fn toolchain() -> anyhow::Result<()> {
    rust_src()?;
    bpf_linker()
}

/// `kubectl` (with its built-in kustomize) renders the deployment overlays in the tests. This
/// machine kind ships it (Google's `kubectl` package); where it is missing, try that package,
/// and otherwise say so: the deployment tests then fail, naming it.
fn kubectl() {
    if which("kubectl").is_ok() {
        step("kubectl: present");
        return;
    }
    step("kubectl: installing the kubectl package");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends", "kubectl"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        step("kubectl: not installable here; tests/tests/deploy.rs will fail until it is");
    }
}

fn python_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = PYTHON_TOOLS
        .iter()
        .filter(|(bin, _)| which(bin).is_err())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        step("Python tools: present");
        return Ok(());
    }
    step(&format!("Python tools: installing {}", missing.join(" ")));
    run(Command::new("python3")
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(&missing))
}

fn rustc_vv() -> anyhow::Result<(String, String)> {
    let vv = output(Command::new("rustc").arg("-vV"))?;
    let field = |k: &str| {
        vv.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .with_context(|| format!("`rustc -vV` has no {k}"))
    };
    Ok((field("release:")?, field("LLVM version:")?))
}

fn rust_src() -> anyhow::Result<()> {
    let sysroot = PathBuf::from(output(Command::new("rustc").args(["--print", "sysroot"]))?.trim());
    let src = sysroot.join("lib/rustlib/src/rust/library/core");
    if src.exists() {
        step("rust-src: present");
        return Ok(());
    }
    step("rust-src: missing, installing (needed by -Z build-std=core for the eBPF target)");
    run(Command::new("rustup").args(["component", "add", "rust-src"]))
}

/// The toolchain's own libLLVM shared object, e.g. `libLLVM.so.22.1-rust-1.95.0-stable`.
fn toolchain_llvm() -> anyhow::Result<(PathBuf, String)> {
    let sysroot = PathBuf::from(output(Command::new("rustc").args(["--print", "sysroot"]))?.trim());
    let lib = sysroot.join("lib");
    for entry in std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("libLLVM.so.") {
            return Ok((lib.join(&name), name));
        }
    }
    bail!(
        "no libLLVM.so.* in {}: this rustc does not ship a shared LLVM",
        lib.display()
    )
}

fn bpf_linker() -> anyhow::Result<()> {
    let (llvm_path, llvm_name) = toolchain_llvm()?;
    let (rustc_release, llvm_version) = rustc_vv()?;
    let major = llvm_version
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string();

    // Installed and linked against this very LLVM? Then nothing to do (unless forced).
    let forced = std::env::var_os("XTASK_REINSTALL_BPF_LINKER").is_some();
    if forced {
        step("bpf-linker: XTASK_REINSTALL_BPF_LINKER is set, reinstalling");
    } else if let Ok(path) = which("bpf-linker") {
        let ldd = Command::new("ldd").arg(&path).output();
        let linked = ldd
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let runs = Command::new(&path)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if runs && linked.contains(&llvm_name) && !linked.contains("not found") {
            step(&format!("bpf-linker: present, linked against {llvm_name}"));
            return Ok(());
        }
        step(&format!(
            "bpf-linker: {} is not linked against rustc's LLVM ({llvm_name}); reinstalling",
            path.display()
        ));
    } else {
        step("bpf-linker: missing, installing");
    }

    // bpf-linker must use the LLVM that rustc itself uses (toolchain.md): an LLVM_PREFIX whose
    // lib/ holds that library under both names bpf-linker's build looks for. The prefix stays:
    // the installed linker finds libLLVM through a RUNPATH into it.
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let prefix = cargo_home.join(format!(
        "bpf-linker-llvm/rust-{rustc_release}-llvm-{llvm_version}"
    ));
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    for name in ["libLLVM.so", llvm_name.as_str()] {
        let link = lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&llvm_path, &link)
            .with_context(|| format!("linking {} -> {}", link.display(), llvm_path.display()))?;
    }
    step(&format!(
        "building bpf-linker against LLVM {llvm_version} of rustc {rustc_release} (about a minute)"
    ));
    run(Command::new("cargo")
        .args([
            "install",
            "--force",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix))
}

fn which(program: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").context("PATH is not set")?;
    for dir in std::env::split_paths(&path) {
        let p = dir.join(program);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("{program} not found in PATH")
}

/// What only the benchmarks run: iperf3 (the load), trafgen (netsniff-ng: overload) and TAYGA
/// (the userspace translator compared against).
const BENCH_PACKAGES: &[(&str, &str)] = &[
    ("iperf3", "iperf3"),
    ("tayga", "tayga"),
    ("netsniff-ng", "trafgen"),
];

pub fn bench_packages() -> anyhow::Result<()> {
    install(BENCH_PACKAGES)
}

fn debian_packages() -> anyhow::Result<()> {
    install(PACKAGES)?;
    image_packages()
}

/// `cargo xtask image` commits with buildah; the container test runs the image with podman and
/// runc. runc rather than crun: this machine kind mounts cgroup v1 controllers beside a cgroup2
/// hierarchy that holds one (hugetlb), a hybrid layout crun refuses ("cgroups in hybrid mode
/// not supported"), and runc accepts.
pub fn image_packages() -> anyhow::Result<()> {
    install(&[
        ("buildah", "buildah"),
        ("podman", "podman"),
        ("runc", "runc"),
    ])
}

fn install(packages: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, bin)| which(bin).is_err() && !PathBuf::from("/usr/sbin").join(bin).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        step("Debian packages: present");
        return Ok(());
    }
    step(&format!(
        "Debian packages: installing {}",
        missing.join(" ")
    ));
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
