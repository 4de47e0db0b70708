//! cgroup v1 device rules: the `devices.list` / `devices.allow` dialect, an
//! exact emulator of the kernel's semantics, minimal never-narrowing
//! transitions, and applying them to a real cgroup.

pub mod apply;
pub mod emulator;
pub mod lines;
pub mod transition;
pub mod update;

pub use apply::{apply_target, Applied, ApplyError, Plan, V1DeviceCgroup};
pub use emulator::{DefaultPolicy, Emulator, EmulatorError, Exception, Pattern};
pub use lines::LineError;
pub use transition::{transition, Transition};
pub use update::{
    update_devices, update_devices_with, UpdateError, UpdateOptions, UpdateOutcome, V1Paths,
};
