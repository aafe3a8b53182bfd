//! Empty library target: it lets `nat64-daemon` name this crate as a build dependency, so that
//! cargo re-runs the daemon's build script (which builds the real object) when it changes.
#![no_std]
