//! cgroup mechanics: layout detection, v1/v2 paths, the freezer guard and
//! process attachment.

pub mod freezer;
pub mod layout;

pub use freezer::{FreezeError, FreezeGuard, FreezeOptions, FreezeTarget, FreezeTimeout};
pub use layout::{CgroupLayout, CgroupMode, LayoutError, V1Hierarchy, V2Hierarchy};
