//! Checks that turn what a node shows into [`Finding`]s.
//!
//! Check ids are stable (DESIGN §2): reports, metrics and policies use them.

mod finding;

pub use finding::{ContainerRef, Finding, Severity};
