//! Host facts: what this node is made of, as far as runtime hazards go.
//!
//! Kernel release, cgroup layout, whether `/dev/char` exists, the systemd
//! that is reachable, and the container runtimes installed. Every reader goes
//! through a [`crate::root::HostRoot`] so tests can use fixtures; what cannot be read is
//! listed in [`HostFacts::unreadable`] instead of failing the scan.

mod facts;
pub mod kernel;
pub mod runtimes;

/// Re-exported for the binary's lint command until it moves to
/// [`crate::root::HostRoot`].
pub use crate::root::HostRoot;
pub use facts::{HostFacts, SystemdFacts, Unreadable};
pub use kernel::KernelVersion;
pub use runtimes::{RuntimeInfo, RuntimeKind};

pub use crate::root::running_as_root;
