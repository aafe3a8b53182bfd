//! `cargo xtask conformance`: Jool's graybox corpus through nat64d, at the TC and XDP hooks,
//! by the shared conformance runner (`../shared/conformance`, `NAT64_CONFORMANCE_DIR`), with
//! this binary as the runner's adapter (`conformance-adapter`, in [`adapter`]); then the
//! runner's table, and docs/conformance.md.

mod adapter;
mod mapping;
mod report;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

pub use adapter::main as adapter_main;

use crate::{output, step};

/// What to run.
pub struct Options {
    pub suites: Vec<String>,
    pub hooks: Vec<String>,
    pub group: Option<String>,
    pub case: Option<String>,
    pub no_write: bool,
}

impl Options {
    /// "both" or one name, as the flags take them.
    pub fn expand(which: &str, both: [&str; 2]) -> anyhow::Result<Vec<String>> {
        match which {
            "both" => Ok(both.iter().map(|s| s.to_string()).collect()),
            w if both.contains(&w) => Ok(vec![w.to_string()]),
            w => bail!("{w:?}: expected {}, {} or both", both[0], both[1]),
        }
    }
}

pub fn run(o: &Options) -> anyhow::Result<()> {
    let root = workspace_root()?;
    let runner_dir = match std::env::var_os("NAT64_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => root.join("../shared/conformance"),
    };
    let runner_dir = runner_dir
        .canonicalize()
        .with_context(|| format!("the conformance runner at {}", runner_dir.display()))?;
    let runner = runner_dir.join("runner.py");
    if !runner.exists() {
        bail!(
            "no runner at {} (set NAT64_CONFORMANCE_DIR to the folder holding runner.py)",
            runner.display()
        );
    }
    // The runner's own default, computed the same way so that a missing corpus fails here,
    // before the build, with how to bring it.
    let mirror = match std::env::var_os("JOOL_MIRROR") {
        Some(m) => PathBuf::from(m),
        None => runner_dir.join("../../.mirror/NICMx+Jool/repo"),
    };
    let Ok(mirror) = mirror.canonicalize() else {
        bail!(
            "no Jool mirror at {}: the runner reads the corpus's .pkt files from a bare git mirror of NICMx/Jool. \
             Bring it with the tool named `fetch` and the source `github:NICMx/Jool` (it lands in \
             .mirror/NICMx+Jool/repo two folders above the runner), or point JOOL_MIRROR at one.",
            mirror.display()
        );
    };
    crate::require_root("the runner creates network namespaces and the daemon loads BPF programs")?;
    crate::setup::all()?;
    crate::build()?;
    // Another build of the daemon (an older commit's, to compare) can be put in its place.
    let nat64d = match std::env::var_os("NAT64_CONFORMANCE_NAT64D") {
        Some(p) => PathBuf::from(p),
        None => crate::target_dir()?.join("debug/nat64d"),
    };
    let xtask = xtask_binary()?;
    let work = std::env::temp_dir().join("nat64-conformance");
    fs::create_dir_all(&work)?;

    let mut runs = Vec::new();
    for suite in &o.suites {
        for hook in &o.hooks {
            let adapter = write_wrapper(&work, hook, &xtask, &nat64d)?;
            let out = work.join(format!("{suite}-{hook}.json"));
            let _ = fs::remove_file(&out);
            step(&format!(
                "conformance: {suite} through nat64d at the {hook} hook"
            ));
            let mut cmd = Command::new("python3");
            cmd.arg(&runner)
                .args(["--suite", suite, "--peer-gro", "on", "--mirror"])
                .arg(&mirror)
                .arg("--adapter")
                .arg(&adapter)
                .arg("--out")
                .arg(&out);
            if let Some(g) = &o.group {
                cmd.args(["--group", g]);
            }
            if let Some(c) = &o.case {
                cmd.args(["--case", c]);
            }
            eprintln!("xtask: $ {}", crate::describe(&cmd));
            // Failing cases make the runner exit 1: collected, not fatal.
            let status = cmd.status().context("running python3")?;
            if status.code() == Some(130) {
                bail!("the runner was interrupted");
            }
            let results = fs::read_to_string(&out)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            if results.is_none() {
                eprintln!("xtask: the {suite}/{hook} run left no results ({status})");
            }
            runs.push(report::Run {
                suite: suite.clone(),
                hook: hook.clone(),
                out,
                results,
            });
        }
    }

    for r in runs.iter().filter(|r| r.results.is_some()) {
        step(&format!(
            "{} at the {} hook ({})",
            r.suite,
            r.hook,
            r.out.display()
        ));
        let _ = crate::run(
            Command::new("python3")
                .arg(runner_dir.join("report.py"))
                .arg("table")
                .arg(&r.out),
        );
    }
    // A run that stopped early (the daemon did not start) leaves the page as it was: it
    // would otherwise say nothing passes.
    let incomplete: Vec<String> = runs
        .iter()
        .filter(|r| {
            r.results
                .as_ref()
                .is_none_or(|v| v.get("fatal_error").is_some())
        })
        .map(|r| format!("{}/{}", r.suite, r.hook))
        .collect();
    let filtered = o.group.is_some() || o.case.is_some();
    if !o.no_write && !filtered && incomplete.is_empty() {
        let meta = report::Meta {
            date: output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))?
                .trim()
                .to_string(),
            commit: git_commit(&root),
            kernel: output(Command::new("uname").arg("-r"))?.trim().to_string(),
            command: command_line(),
            daemon: std::env::var_os("NAT64_CONFORMANCE_NAT64D")
                .map(|_| format!("{} (NAT64_CONFORMANCE_NAT64D)", nat64d.display())),
        };
        let doc = root.join("docs/conformance.md");
        fs::write(&doc, report::markdown(&runs, &meta))
            .with_context(|| format!("writing {}", doc.display()))?;
        step(&format!("wrote {}", doc.display()));
    }
    if !incomplete.is_empty() {
        bail!(
            "no complete results from {} (docs/conformance.md left as it was)",
            incomplete.join(", ")
        );
    }
    Ok(())
}

/// The runner takes one executable as the adapter: a script that runs this binary's
/// `conformance-adapter` with the hook and the daemon's path in its environment.
fn write_wrapper(dir: &Path, hook: &str, xtask: &Path, nat64d: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    // Named after the translator and hook: the runner records the adapter's name.
    let path = dir.join(format!("nat64d-{hook}"));
    let script = format!(
        "#!/bin/sh\n# Written by `cargo xtask conformance`: the conformance runner's adapter.\n\
         export NAT64_CONFORMANCE_HOOK={hook}\n\
         export NAT64_CONFORMANCE_NAT64D={}\n\
         exec {} conformance-adapter \"$@\"\n",
        sh_quote(&nat64d.display().to_string()),
        sh_quote(&xtask.display().to_string())
    );
    fs::write(&path, script)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// This binary, as the adapter runs it. The build just done relinks xtask too, and Linux then
/// names the running (replaced) binary "PATH (deleted)"; the new one at PATH is the same code.
fn xtask_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let s = exe.to_string_lossy();
    Ok(match s.strip_suffix(" (deleted)") {
        Some(p) => PathBuf::from(p),
        None => exe,
    })
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf())
}

/// The short commit, "-dirty" when tracked files differ from it. `--no-optional-locks`: a
/// status must not rewrite the index someone else may be using.
fn git_commit(root: &Path) -> String {
    let git = |args: &[&str]| output(Command::new("git").arg("-C").arg(root).args(args));
    let Ok(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty = git(&[
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
    ])
    .map(|s| !s.trim().is_empty())
    .unwrap_or(false);
    format!("{}{}", head.trim(), if dirty { "-dirty" } else { "" })
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo xtask {}", args.join(" "))
}
