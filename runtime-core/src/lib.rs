//! runtime-core: the node mechanics of Runtime Warden.
//!
//! Everything here works on one node with no Kubernetes: host facts, cgroup
//! layout, device rules, the freezer, seccomp profile analysis, container
//! discovery, diagnosis and repair. Every filesystem reader takes an injectable
//! root ([`root::HostRoot`]) so that tests run on tempdir fixtures and on the
//! real machine through the same code.

pub mod cgroups;
pub mod checks;
pub mod devices;
pub mod diagnose;
pub mod discovery;
pub mod engine;
pub mod error;
pub mod host;
pub mod ports;
pub mod procfs;
pub mod repair;
pub mod root;
pub mod seccomp;
pub mod systemd;
/// Test support: prerequisites, self-cleaning test cgroups, fixtures and
/// fakes of every port. Built for this crate's tests and, with the cargo
/// feature `testing`, for the operator's and e2e's; production builds leave
/// it out.
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{IoContext, WrappedIoError};
