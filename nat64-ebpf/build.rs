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
    // instructions to verify.
    println!("cargo:rustc-link-arg=--cpu-features=+allows-misaligned-mem-access");
    println!("cargo:rustc-link-arg=--llvm-args=-combiner-store-merging=false");
}
