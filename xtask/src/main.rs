//! `cargo xtask`: the project's automation.
//!
//! - `setup`: installs what building and testing need (rust-src, bpf-linker built against
//!   rustc's own LLVM, Debian packages). Idempotent, prints what it does, quick when all is there.
//! - `lab`: setup, build, then the self-contained lab (README's first command).
//! - `test`: setup, build, then every test (README's second command).
//! - `image`: the container image, from the release binary and its libraries, committed with
//!   buildah under the DaemonSet's image name (or only its root filesystem, for the
//!   Containerfile's build stage).
//! - `conformance`: setup, build, then Jool's graybox corpus through nat64d at the TC and XDP
//!   hooks (the shared conformance runner), and docs/conformance.md.

mod conformance;
mod image;
mod setup;

use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the toolchain pieces, Debian packages and Python tools the build and the tests
    /// need.
    Setup {
        /// Only what building needs (rust-src, bpf-linker): for the container image.
        #[arg(long)]
        toolchain_only: bool,
    },
    /// Build the daemon (with its embedded eBPF object) and the lab.
    Build,
    /// Run the lab: IPv6-only and IPv4-only hosts in namespaces, translated by the real daemon.
    Lab {
        /// Where the fast path runs on the lab's veths: auto (the daemon's default: TC there),
        /// tc, or an XDP mode: native or generic.
        #[arg(long, default_value = "auto")]
        xdp_mode: String,
    },
    /// Run the benchmark suite (release build): per-packet cost against a do-nothing program,
    /// scale to 1M bindings, and plain forwarding / TAYGA / nat64d end to end. A full run
    /// writes docs/benchmarks.md.
    Bench {
        /// Fewer samples and sizes: a smoke run (prints, writes nothing).
        #[arg(long)]
        quick: bool,
        /// Only one part: micro, scale or e2e.
        #[arg(long)]
        only: Option<String>,
    },
    /// Run every test: unit, property, packet-level (BPF_PROG_TEST_RUN) and end-to-end.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the container image (release binary, its libraries, the default configuration;
    /// no shell) and commit it with buildah as ghcr.io/nat64-ebpf/nat64d:VERSION.
    Image {
        /// Build as this version (`nat64d --version`, the image tag) instead of the crate's.
        #[arg(long)]
        version: Option<String>,
        /// Only assemble the root filesystem in this directory (no buildah): what the
        /// Containerfile's build stage runs.
        #[arg(long)]
        rootfs: Option<std::path::PathBuf>,
    },
    /// Replay Jool's graybox corpus (the shared conformance runner) through nat64d at the TC
    /// and XDP hooks, print the tables, and write docs/conformance.md (a full run only).
    Conformance {
        /// siit, nat64 or both.
        #[arg(long, default_value = "both")]
        suite: String,
        /// tc, xdp or both.
        #[arg(long, default_value = "both")]
        hook: String,
        /// Only these groups (comma-separated, the runner's --group); writes nothing.
        #[arg(long)]
        group: Option<String>,
        /// Only cases matching these globs (the runner's --case); writes nothing.
        #[arg(long)]
        case: Option<String>,
        /// Print the tables, write nothing.
        #[arg(long)]
        no_write: bool,
    },
    /// The conformance runner's adapter for nat64d (run by `conformance` through a wrapper
    /// script that sets NAT64_CONFORMANCE_HOOK).
    #[command(hide = true)]
    ConformanceAdapter {
        /// start, configure, health or stop.
        verb: String,
        netns: String,
        if6: String,
        if4: String,
        /// For configure: the Jool keys that changed.
        keys: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Setup { toolchain_only } => {
            if toolchain_only {
                setup::toolchain()
            } else {
                setup::all()
            }
        }
        Cmd::Build => {
            setup::all()?;
            build()
        }
        Cmd::Lab { xdp_mode } => {
            require_root("the lab creates network namespaces and loads BPF programs")?;
            setup::all()?;
            build()?;
            run(Command::new(target_dir()?.join("debug/nat64-lab")).args(["--xdp-mode", &xdp_mode]))
        }
        Cmd::Bench { quick, only } => {
            require_root("the benchmarks load BPF programs and create network namespaces")?;
            setup::all()?;
            setup::bench_packages()?;
            step("building in release mode");
            run(cargo().args(["build", "--release", "--workspace", "--bins"]))?;
            let mut cmd = Command::new(target_dir()?.join("release/nat64-bench"));
            if quick {
                cmd.arg("--quick");
            }
            if let Some(o) = &only {
                cmd.args(["--only", o]);
            }
            if !quick && only.is_none() {
                cmd.args(["--write", "docs/benchmarks.md"]);
            }
            run(&mut cmd)
        }
        Cmd::Test { args } => {
            require_root(
                "the packet and end-to-end tests load BPF programs and create network namespaces",
            )?;
            setup::all()?;
            build()?;
            // The container test (tests/tests/container.rs) runs the image of this tree, and
            // upgrades it to a second one with another version string.
            image::build(&image::Options {
                version: None,
                rootfs: None,
            })?;
            image::build(&image::Options {
                version: Some(image::upgrade_test_version()),
                rootfs: None,
            })?;
            run(cargo().args(["test", "--workspace"]).args(args))
        }
        Cmd::Image { version, rootfs } => {
            if rootfs.is_none() {
                setup::image_packages()?;
            }
            image::build(&image::Options { version, rootfs })
        }
        Cmd::Conformance {
            suite,
            hook,
            group,
            case,
            no_write,
        } => conformance::run(&conformance::Options {
            suites: conformance::Options::expand(&suite, ["siit", "nat64"])?,
            hooks: conformance::Options::expand(&hook, ["tc", "xdp"])?,
            group,
            case,
            no_write,
        }),
        Cmd::ConformanceAdapter {
            verb,
            netns,
            if6,
            if4,
            keys,
        } => {
            // The runner reads the exit status (3: not expressible), so errors become 1 here
            // rather than anyhow's report.
            let code =
                conformance::adapter_main(&verb, &netns, &if6, &if4, &keys).unwrap_or_else(|e| {
                    eprintln!("conformance-adapter {verb}: {e:#}");
                    1
                });
            std::process::exit(code.into())
        }
    }
}

/// Builds every default member in the dev profile: the daemon binary the tests and the lab
/// run, the lab binary, and (through the daemon's build.rs) the eBPF object.
fn build() -> anyhow::Result<()> {
    step("building the workspace (the daemon's build script compiles the eBPF dataplane)");
    run(cargo().args(["build", "--workspace", "--bins"]))
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn target_dir() -> anyhow::Result<std::path::PathBuf> {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(d.into());
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    Ok(root.join("target"))
}

/// The workspace's root directory (xtask's parent).
fn repo_root() -> anyhow::Result<std::path::PathBuf> {
    Ok(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf())
}

fn require_root(why: &str) -> anyhow::Result<()> {
    // Read from /proc to keep xtask free of libc.
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    if euid != "0" {
        bail!("this needs root: {why}. Run it as root (for example with sudo -E).");
    }
    Ok(())
}

/// Prints a step header.
pub fn step(what: &str) {
    eprintln!("xtask: {what}");
}

/// Runs a command, echoing it, and fails if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: $ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("spawning {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Runs a command and returns its stdout, failing if it fails.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("spawning {}", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
