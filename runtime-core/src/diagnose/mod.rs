//! Checks that turn what a node shows into typed [`Finding`]s.
//!
//! Each check returns findings whose [`Cause`] holds what it found (what was
//! refused by which layer, the unit view and what it loses, the stuck
//! init's pid and start time, the shim's counts, ...); messages and evidence
//! are rendered from the cause only at the edges. [`scan`] runs every check
//! over every discovered container and keeps what it read in a
//! [`Snapshot`], from which repairs are planned without reading again.
//! Check ids are stable ([`crate::checks::CheckId`]).

pub mod cause;
mod checks;
mod finding;
mod policy;
mod render;
mod scan;
mod snapshot;

pub use cause::Cause;
pub use finding::{CheckId, ContainerRef, Finding, FindingId, Severity};
pub use policy::{CheckPolicy, ExplicitRules};
pub use scan::{scan, ContainerSummary, ScanOptions, ScanReport};
pub use snapshot::{RequiredDevice, Snapshot, SnapshotError};

pub(crate) use checks::device_access::rw_request;
pub(crate) use checks::device_rules_latent::unit_view;
pub use checks::device_rules_latent::UnitUnknown;
