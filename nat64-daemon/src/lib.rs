//! The control daemon's library: configuration, the dataplane handle and counters. The
//! `nat64d` binary wires them together; tests and the lab use them directly.

pub mod admin;
pub mod binding_log;

/// The version this build reports (`--version`, `nat64d ready`, `nat64_build_info`): the crate's
/// own, unless the build sets `NAT64D_VERSION` (`cargo xtask image --version`, which is how the
/// container tests make a second image to upgrade to).
pub const VERSION: &str = match option_env!("NAT64D_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};
pub mod bindings;
pub mod config;
pub mod dataplane;
pub mod doctor;
pub mod held_syns;
pub mod ipfix;
pub mod link;
pub mod map;
pub mod metrics;
pub mod stats;
pub mod sys;
pub mod tcp_probe;

pub use config::Config;
pub use dataplane::{Dataplane, DataplaneError, InterfaceSettings};
pub use stats::Stats;
