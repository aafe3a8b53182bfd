//! The control daemon's library: configuration, the dataplane handle and counters. The
//! `nat64d` binary wires them together; tests and the lab use them directly.

pub mod admin;
pub mod bindings;
pub mod config;
pub mod dataplane;
pub mod doctor;
pub mod held_syns;
pub mod link;
pub mod metrics;
pub mod stats;
pub mod sys;

pub use config::Config;
pub use dataplane::{Dataplane, DataplaneError, InterfaceSettings};
pub use stats::Stats;
