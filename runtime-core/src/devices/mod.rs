//! Device rules: one model, three dialects (OCI, cgroup v1, systemd), the v1
//! emulator and minimal transitions, and v2 eBPF device programs.

pub mod bpf;
pub mod canary;
pub mod device_allow;
pub mod expected;
pub mod host_devices;
pub mod oci;
mod rule;
pub mod systemd;
pub mod v1;

pub use rule::{Access, DeviceRule, DeviceType};
