//! Kubernetes API types of Runtime Warden (group `runtimewarden.io`, version `v1alpha1`).
//!
//! This crate holds types only: no client, no I/O. `RuntimePolicy` and
//! `NodeRuntimeReport` arrive with the operator issue; until then it exports the
//! API coordinates that every component agrees on.

/// API group of every Runtime Warden custom resource.
pub const GROUP: &str = "runtimewarden.io";
/// API version served by this release.
pub const VERSION: &str = "v1alpha1";
