//! cgroup mechanics: layout detection, v1/v2 paths, the freezer guard and
//! process attachment.

pub mod attach;
pub mod freezer;
pub mod layout;
pub mod paths;

pub use attach::{attach, spawn_into_cgroup, AttachError, Attached, SpawnError};
pub use freezer::{FreezeError, FreezeGuard, FreezeOptions, FreezeTarget, FreezeTimeout};
pub use layout::{CgroupLayout, CgroupMode, LayoutError, V1Hierarchy, V2Hierarchy};
