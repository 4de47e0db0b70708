//! cgroup mechanics: layout detection, v1/v2 paths, the freezer guard and
//! process attachment.

pub mod layout;

pub use layout::{CgroupLayout, CgroupMode, LayoutError, V1Hierarchy, V2Hierarchy};
