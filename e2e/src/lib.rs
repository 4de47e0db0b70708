//! Shared helpers for Runtime Warden's real-runtime scenarios: locating the
//! `warden` binary, building busybox bundles, and skipping with a printed reason
//! where a prerequisite is missing (never in CI).
