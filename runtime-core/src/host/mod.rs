//! Host facts: what this node is made of, as far as runtime hazards go.
//!
//! Kernel release, cgroup layout, whether `/dev/char` exists, the systemd
//! that is reachable, and the container runtimes installed. Every reader goes
//! through a [`HostRoot`] so tests can use fixtures; what cannot be read is
//! listed in [`HostFacts::unreadable`] instead of failing the scan.

mod facts;
pub mod kernel;
mod root;
pub mod runtimes;

pub use facts::{HostFacts, SystemdFacts, Unreadable};
pub use kernel::KernelVersion;
pub use root::HostRoot;
pub use runtimes::{RuntimeInfo, RuntimeKind};
