//! runtime-core: the node mechanics of Runtime Warden.
//!
//! Everything here works on one node with no Kubernetes: host facts, cgroup
//! layout, device rules, the freezer, seccomp profile analysis, container
//! discovery, diagnosis and repair. Every filesystem reader takes an injectable
//! root ([`host::HostRoot`]) so that tests run on tempdir fixtures and on the
//! real machine through the same code.

pub mod cgroups;
pub mod checks;
pub mod devices;
pub mod diagnose;
pub mod discovery;
pub mod error;
pub mod host;
pub mod procfs;
pub mod repair;
pub mod seccomp;
pub mod systemd;
#[doc(hidden)]
pub mod testing;

pub use error::{IoContext, WrappedIoError};
