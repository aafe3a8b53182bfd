//! Fails early, with the fix, when bpf-linker is missing, and rebuilds when it changes (a new
//! linker may produce a different object), and sets the code generation options of the object.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.starts_with("bpf") {
        return;
    }
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(e) => panic!("bpf-linker not found ({e}); run `cargo xtask setup` to install it"),
    }
    // Headers sit at any offset (a 14-byte Ethernet header puts IPv4 and IPv6 fields on 2-byte
    // boundaries), so the code reads them as byte arrays. Without this feature LLVM splits every
    // such multi-byte access into single bytes (an IPv6 address: 16 loads, 15 shifts, 15 ors);
    // with it, a load is a load. The kernel allows unaligned packet and map value accesses on
    // architectures with efficient unaligned access (x86_64, arm64: the ones the daemon is
    // built for), but never on the stack: store merging would combine adjacent stack fields
    // into unaligned wide stores (the verifier's "misaligned stack access"), so it is off.
    // Measured (docs/profile.md): 15-20 ns less per translated packet, a quarter fewer
    // instructions to verify. For any other architecture the object keeps byte-wise accesses,
    // which every verifier takes.
    println!("cargo:rerun-if-env-changed=NAT64_KERNEL_ARCH");
    if unaligned_ok(&kernel_arch()) {
        println!("cargo:rustc-link-arg=--cpu-features=+allows-misaligned-mem-access");
        println!("cargo:rustc-link-arg=--llvm-args=-combiner-store-merging=false");
    }
}

/// The architecture of the kernel that will verify the object: the daemon's (its build script
/// passes it down), else this build host's.
fn kernel_arch() -> String {
    std::env::var("NAT64_KERNEL_ARCH").unwrap_or_else(|_| std::env::consts::ARCH.to_string())
}

/// Whether that kernel's verifier accepts unaligned packet and map accesses
/// (`CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS`) on an architecture the object is tested on.
fn unaligned_ok(arch: &str) -> bool {
    matches!(arch, "x86_64" | "aarch64")
}
