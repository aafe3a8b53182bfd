//! Builds the eBPF dataplane (`nat64-ebpf`, target bpfel-unknown-none) and leaves the object in
//! OUT_DIR, where `src/dataplane.rs` embeds it. A failed eBPF build fails this build: the daemon
//! never embeds a stale or empty object.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    // The eBPF crate needs `-Z build-std=core`. It is built with the stable toolchain, which
    // accepts -Z flags under RUSTC_BOOTSTRAP=1; setting it here scopes it to that one nested
    // cargo invocation (aya-build reads it from this process's environment).
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    // The architecture the daemon, and so the kernel that verifies the object, runs on: the
    // eBPF crate's build script sees only its own target (bpf), and chooses its code
    // generation by this one (see nat64-ebpf/build.rs).
    if let Ok(arch) = std::env::var("CARGO_CFG_TARGET_ARCH") {
        // SAFETY: as above.
        unsafe { std::env::set_var("NAT64_KERNEL_ARCH", arch) };
    }
    let cargo_metadata_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("workspace root"))?
        .join("nat64-ebpf");
    let root = cargo_metadata_root
        .to_str()
        .context("workspace path is not UTF-8")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "nat64-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom("stable"),
    )?;
    let obj = std::path::Path::new(&std::env::var("OUT_DIR")?).join("nat64");
    let len = std::fs::metadata(&obj)
        .with_context(|| format!("eBPF object {} was not produced", obj.display()))?
        .len();
    if len == 0 {
        return Err(anyhow!("eBPF object {} is empty", obj.display()));
    }
    Ok(())
}
