//! Fails early, with the fix, when bpf-linker is missing, and rebuilds when it changes (a new
//! linker may produce a different object).
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.starts_with("bpf") {
        return;
    }
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(e) => panic!("bpf-linker not found ({e}); run `cargo xtask setup` to install it"),
    }
}
