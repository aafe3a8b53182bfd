//! Shared by the eBPF dataplane (`nat64-ebpf`) and the control daemon (`nat64-daemon`).
//!
//! Everything here is `no_std` and free of allocation so that the very same code runs in the
//! kernel (compiled for `bpfel-unknown-none`) and in host unit tests. Map key and value types
//! are `#[repr(C)]` with explicit padding and compile-time size checks, because the kernel and
//! userspace must agree on their layout byte for byte.
#![no_std]

pub mod addr;
pub mod checksum;
pub mod counters;
pub mod deterministic;
pub mod icmp;
pub mod maps;
pub mod rfc4884;
pub mod state;

pub use counters::{Counter, Dir, DropReason, Generated, Handoff, L4Proto};
