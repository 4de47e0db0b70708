//! Kubernetes API types of Runtime Warden (group `runtimewarden.io`, version
//! `v1alpha1`), and the pure functions that give them meaning.
//!
//! - [`policy`]: `RuntimePolicy`, what users apply.
//! - [`report`]: `NodeRuntimeReport`, what each node's agent writes.
//! - [`merge`]: the strictest-wins merge of the policies that select a node
//!   or a namespace, and label-selector matching.
//!
//! No client and no I/O live here: the operator, the agent, the webhook and
//! `warden check --policy` all link this crate and agree on one meaning of a
//! policy. The merge sits with the types rather than in the operator binary
//! because every one of those consumers needs it and it depends on nothing
//! but the types.

pub mod merge;
pub mod policy;
pub mod report;

pub use merge::{merge, EffectivePolicy};
pub use policy::{RuntimePolicy, RuntimePolicySpec, RuntimePolicyStatus};
pub use report::{NodeRuntimeReport, NodeRuntimeReportSpec};

/// API group of every Runtime Warden custom resource.
pub const GROUP: &str = "runtimewarden.io";
/// API version served by this release.
pub const VERSION: &str = "v1alpha1";
