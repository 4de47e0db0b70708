//! Shared helpers for Runtime Warden's real-runtime scenarios: locating the
//! `warden` binary, building busybox bundles, running containers with real
//! runc / crun, and skipping with a printed reason where a prerequisite is
//! missing (never in CI: see `runtime_core::testing`).

pub mod breakage;
pub mod bundle;
pub mod container;
pub mod containerd;
pub mod listener;
pub mod nspawn;
pub mod start_probe;
pub mod warden;

pub use bundle::Bundle;
pub use container::{Container, Runtime};
