//! `cargo xtask image`: the nat64d container image, built from what these machines reach.
//!
//! The image is the release binary, the dynamic libraries it links (glibc and libgcc, read off
//! `ldd`, from the build machine's Debian) and the default configuration, on an empty base: no
//! shell, no package manager. `deploy/image/Containerfile` runs the same assembly
//! (`cargo xtask image --rootfs /out`) in its build stage and copies the result onto `scratch`,
//! so a registry build and this one produce the same filesystem, entry point and labels.
//!
//! Here the image is committed with `buildah` (Debian's package) into the local container
//! storage under the name the DaemonSet references, so that `podman run` of the manifest's own
//! image name runs what this tree builds.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{cargo, output, run, step, target_dir};

/// The image's repository, as `deploy/kubernetes/base/daemonset.yaml` names it.
pub const REPOSITORY: &str = "ghcr.io/nat64-ebpf/nat64d";

/// The version string of the second image the container test upgrades to: the crate's own
/// with `-next` (tests/tests/container.rs builds the same name).
pub fn upgrade_test_version() -> String {
    format!("{}-next", env!("CARGO_PKG_VERSION"))
}

/// What `cargo xtask image` was asked for.
pub struct Options {
    /// Build with this version string (`NAT64D_VERSION`) instead of the crate's, and tag the
    /// image with it.
    pub version: Option<String>,
    /// Only assemble the root filesystem in this directory (the Containerfile's build stage).
    pub rootfs: Option<PathBuf>,
}

pub fn build(opts: &Options) -> anyhow::Result<()> {
    step(&format!(
        "building nat64d in release mode{}",
        opts.version
            .as_deref()
            .map_or(String::new(), |v| format!(" as version {v}"))
    ));
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--release",
        "--locked",
        "-p",
        "nat64-daemon",
        "--bin",
        "nat64d",
    ]);
    match &opts.version {
        Some(v) => {
            validate_tag(v)?;
            cmd.env("NAT64D_VERSION", v);
        }
        None => {
            cmd.env_remove("NAT64D_VERSION");
        }
    }
    run(&mut cmd)?;
    let binary = target_dir()?.join("release/nat64d");
    let said = output(Command::new(&binary).arg("--version"))?;
    let version = said
        .trim()
        .strip_prefix("nat64d ")
        .with_context(|| format!("unexpected `nat64d --version`: {said}"))?
        .to_string();

    let rootfs = match &opts.rootfs {
        Some(dir) => dir.clone(),
        None => target_dir()?.join("image").join(&version).join("rootfs"),
    };
    assemble(&binary, &rootfs)?;
    step(&format!(
        "root filesystem assembled in {}",
        rootfs.display()
    ));
    if opts.rootfs.is_some() {
        return Ok(());
    }
    commit(&rootfs, &version)
}

/// A tag may hold letters, digits, `_`, `.` and `-` (the OCI distribution spec), and the version
/// becomes one.
fn validate_tag(v: &str) -> anyhow::Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !v.starts_with(['.', '-']);
    if !ok {
        bail!("--version {v:?}: an image tag takes letters, digits, '_', '.' and '-' only");
    }
    Ok(())
}

/// The image's files: the binary, its libraries at the paths the dynamic loader looks them up,
/// the default configuration, and empty mount points for what the DaemonSet mounts (a
/// read-only root filesystem cannot grow them at run time on every runtime).
fn assemble(binary: &Path, rootfs: &Path) -> anyhow::Result<()> {
    if rootfs.exists() {
        fs::remove_dir_all(rootfs).with_context(|| format!("clearing {}", rootfs.display()))?;
    }
    let root = crate::repo_root()?;
    install(binary, &rootfs.join("usr/bin/nat64d"), 0o755)?;
    install(
        &root.join("deploy/nat64d.toml"),
        &rootfs.join("etc/nat64d/nat64d.toml"),
        0o644,
    )?;
    for lib in libraries(binary)? {
        let real =
            fs::canonicalize(&lib).with_context(|| format!("resolving {}", lib.display()))?;
        let dest = rootfs.join(lib.strip_prefix("/").unwrap_or(&lib));
        install(&real, &dest, 0o755)?;
    }
    for dir in [
        "proc",
        "sys/fs/bpf",
        "dev",
        "run/nat64d",
        "tmp",
        "host/proc/sys/net",
    ] {
        fs::create_dir_all(rootfs.join(dir))?;
    }
    // Who uid 0 is, for tools that ask (`ps`, `id` in a debug container).
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\n",
    )?;
    fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
    Ok(())
}

/// The shared objects the binary loads, and its interpreter, from `ldd`: lines like
/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x...)` (the vDSO has no file).
fn libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let said = output(Command::new("ldd").arg(binary))?;
    let mut libs = Vec::new();
    for line in said.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        } else if line.contains("not found") {
            bail!("ldd {}: {line}", binary.display());
        }
    }
    if !libs
        .iter()
        .any(|l| l.to_string_lossy().contains("ld-linux"))
    {
        bail!("ldd {} names no dynamic loader:\n{said}", binary.display());
    }
    Ok(libs)
}

fn install(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::create_dir_all(to.parent().expect("a path inside the root filesystem"))?;
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Commits the root filesystem as `REPOSITORY:version` with buildah, with the Containerfile's
/// entry point, command and labels.
fn commit(rootfs: &Path, version: &str) -> anyhow::Result<()> {
    let name = format!("{REPOSITORY}:{version}");
    step(&format!("committing {name} with buildah"));
    let working = "nat64d-image-build";
    // A working container left by an interrupted run would make `from` fail.
    let _ = Command::new("buildah")
        .args(["rm", working])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    run(Command::new("buildah").args(["from", "--name", working, "scratch"]))?;
    let result = (|| -> anyhow::Result<()> {
        run(Command::new("buildah")
            .arg("copy")
            .arg(working)
            .arg(rootfs)
            .arg("/"))?;
        run(Command::new("buildah").args([
            "config",
            "--entrypoint",
            r#"["/usr/bin/nat64d"]"#,
            "--cmd",
            r#"["run","--config","/etc/nat64d/nat64d.toml"]"#,
            "--label",
            "org.opencontainers.image.title=nat64d",
            "--label",
            &format!("org.opencontainers.image.version={version}"),
            "--label",
            "org.opencontainers.image.description=NAT64/NAT46 translator daemon (eBPF dataplane)",
            working,
        ]))?;
        // The image this name pointed at before is left untagged by the commit: remove it,
        // so repeated builds do not pile up (it stays if a container still uses it).
        let before = Command::new("buildah")
            .args(["images", "--quiet", "--no-trunc", &name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let after = output(Command::new("buildah").args(["commit", "--quiet", working, &name]))?;
        if !before.is_empty() && !after.trim().ends_with(before.trim_start_matches("sha256:")) {
            let _ = Command::new("buildah")
                .args(["rmi", &before])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        Ok(())
    })();
    let _ = Command::new("buildah")
        .args(["rm", working])
        .stdout(std::process::Stdio::null())
        .status();
    result?;
    step(&format!("image {name} is in the local container storage"));
    Ok(())
}
