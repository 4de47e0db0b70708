//! systemd: what runtime-core needs from the service manager that owns
//! container scopes under the systemd cgroup driver.
//!
//! * [`client`]: the [`SystemdClient`] trait (read a unit's device settings,
//!   `SetUnitProperties`, version, daemon-reload) and the pure property
//!   plans that repairs send through it;
//! * [`dbus`]: its D-Bus implementation (zbus, blocking, with timeouts),
//!   over the system bus or systemd's private socket;
//! * [`history`]: what runtime and systemd versions do with device rules,
//!   as hazards for node reports;
//! * [`unit_view`]: a unit's `DeviceAllow=` against a container's rules
//!   (what it loses once systemd re-applies it).

pub mod client;
pub mod dbus;
pub mod history;
mod sender_relay;
pub mod unit_view;

pub use client::{parse_systemd_version, SystemdClient, SystemdError, UnitProperty};
pub use dbus::{BusPaths, DbusSystemd, Transport};
pub use unit_view::{Lost, UnitView, UnitViewError};
