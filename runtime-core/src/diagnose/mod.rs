//! Checks that turn what a node shows into [`Finding`]s.
//!
//! Check ids are stable (DESIGN §2, [`ids`]): reports, metrics and policies
//! use them. [`scan`] runs every check over every discovered container.

mod checks;
mod finding;
pub mod ids;
mod policy;
mod scan;

pub use finding::{ContainerRef, Finding, Severity};
pub use policy::{CheckPolicy, ExplicitRules};
pub use scan::{scan, ContainerSummary, ScanOptions, ScanReport};
