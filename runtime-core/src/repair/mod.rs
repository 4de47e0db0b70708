//! Repairs: a finding becomes a pure [`RepairPlan`] (what will be written
//! where, and why it never narrows access), which [`apply`] carries out
//! idempotently. Planning reads state but changes nothing, so `--dry-run`
//! prints exactly what `--fix` would do.
//!
//! The safety rules (DESIGN §1) hold for every action:
//! - device repairs only widen toward what the container's runtime granted it
//!   (its OCI config plus the runtime's defaults); a v1 repair is a minimal
//!   transition that writes only `allow` lines; a v2 repair attaches the
//!   correct program *before* detaching the one that denies, so at every
//!   instant access contains the intersection of before and after;
//! - a systemd `DeviceAllow=` rewrite (seed 003) sets the explicit form of
//!   the container's rules plus every entry the unit had, so systemd's list
//!   only grows; on cgroup v1, where systemd replays deny-all then the list,
//!   the container is frozen around the call or the call is not made;
//! - a kill re-checks the process's start time, so a recycled pid is never
//!   killed, and happens only when the policy allows it;
//! - applying a plan twice does nothing the second time.

mod apply;
mod plan;
pub(crate) mod systemd_unit;

pub use apply::{apply, ApplyOutcome, RepairError, V2Error};
pub use plan::{plan, PlanError, RepairAction, RepairPlan};
