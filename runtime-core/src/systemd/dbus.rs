//! [`SystemdClient`] over D-Bus with zbus (blocking API).
//!
//! Two ways in, tried in order:
//! 1. the system bus (`/run/dbus/system_bus_socket`), destination
//!    `org.freedesktop.systemd1`;
//! 2. systemd's private socket (`/run/systemd/private`), a peer-to-peer
//!    connection with no bus daemon and no names: what `systemctl` uses when
//!    D-Bus is down, and what works on a node whose dbus-daemon is broken.
//!    systemd accepts it only from root in its own PID namespace (it refuses
//!    a peer whose pid it cannot see), so an agent needs `hostPID`; and its
//!    replies go through a small relay that makes their sender field
//!    acceptable to zbus (`sender_relay`).
//!
//! Both paths are injectable ([`BusPaths`]), so the same code reaches a
//! systemd in another mount namespace through `/proc/<pid>/root/run/...`
//! (the real-systemd tier talks to the systemd inside systemd-nspawn that
//! way). Nothing here waits forever: the authentication handshake runs
//! against a deadline (on expiry the socket is shut down, which ends the
//! handshake), and every method call has zbus's method timeout.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use zbus::blocking::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use crate::devices::systemd::{DeviceAllowEntry, DevicePolicy, UnitDevices};
use crate::root::HostRoot;

use super::client::{SystemdClient, SystemdError, UnitProperty};

const DESTINATION: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_IFACE: &str = "org.freedesktop.systemd1.Manager";
const PROPERTIES_IFACE: &str = "org.freedesktop.DBus.Properties";

/// The default deadline for connecting and for each call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the sockets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusPaths {
    /// The system bus socket.
    pub system_bus: PathBuf,
    /// systemd's private socket.
    pub private: PathBuf,
    /// Deadline for the handshake and for each method call.
    pub timeout: Duration,
}

impl BusPaths {
    /// The sockets under a host root (`/` on a node; the agent's mounted
    /// host root in its pod).
    pub fn under(root: &HostRoot) -> Self {
        Self {
            system_bus: root.join("/run/dbus/system_bus_socket"),
            private: root.join("/run/systemd/private"),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The sockets of the systemd whose mount namespace `pid` is in, reached
    /// through `/proc/<pid>/root`.
    pub fn of_process(pid: u32) -> Self {
        Self::under(&HostRoot::new(format!("/proc/{pid}/root")))
    }

    /// The same paths with another deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Which way a [`DbusSystemd`] reached systemd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Through the bus daemon at this socket.
    SystemBus(PathBuf),
    /// Directly, through systemd's private socket.
    Private(PathBuf),
}

/// A connection to systemd.
pub struct DbusSystemd {
    conn: Connection,
    transport: Transport,
    timeout: Duration,
}

impl std::fmt::Debug for DbusSystemd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbusSystemd")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl DbusSystemd {
    /// Connect through the system bus, or through the private socket when
    /// the bus socket is absent or connecting to it fails.
    pub fn connect(paths: &BusPaths) -> Result<Self, SystemdError> {
        let bus_exists = paths.system_bus.exists();
        if !bus_exists && !paths.private.exists() {
            return Err(SystemdError::NoSocket(vec![
                paths.system_bus.clone(),
                paths.private.clone(),
            ]));
        }
        let bus_error = if bus_exists {
            match Self::connect_system_bus(&paths.system_bus, paths.timeout) {
                Ok(c) => return Ok(c),
                Err(e) => Some(e),
            }
        } else {
            None
        };
        match Self::connect_private(&paths.private, paths.timeout) {
            Ok(c) => {
                if let Some(e) = bus_error {
                    tracing::warn!(error = %e, "system bus unusable; using systemd's private socket");
                }
                Ok(c)
            }
            Err(e) => Err(match bus_error {
                Some(b) => SystemdError::Connect {
                    path: paths.private.clone(),
                    message: format!("{e}; before that, system bus: {b}"),
                },
                None => e,
            }),
        }
    }

    /// Connect through the bus daemon at `socket`.
    pub fn connect_system_bus(socket: &Path, timeout: Duration) -> Result<Self, SystemdError> {
        let conn = handshake(socket, false, timeout)?;
        Ok(Self {
            conn,
            transport: Transport::SystemBus(socket.to_path_buf()),
            timeout,
        })
    }

    /// Connect to systemd directly at its private socket.
    pub fn connect_private(socket: &Path, timeout: Duration) -> Result<Self, SystemdError> {
        let conn = handshake(socket, true, timeout)?;
        Ok(Self {
            conn,
            transport: Transport::Private(socket.to_path_buf()),
            timeout,
        })
    }

    /// How this connection reaches systemd.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    fn destination(&self) -> Option<&'static str> {
        match self.transport {
            Transport::SystemBus(_) => Some(DESTINATION),
            Transport::Private(_) => None,
        }
    }

    fn call<B>(
        &self,
        method: &'static str,
        path: &str,
        iface: &str,
        body: &B,
    ) -> Result<zbus::Message, SystemdError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.conn
            .call_method(self.destination(), path, Some(iface), method, body)
            .map_err(|e| call_error(method, e, self.timeout))
    }

    fn get_property(
        &self,
        path: &str,
        iface: &str,
        name: &str,
    ) -> Result<OwnedValue, SystemdError> {
        let reply = self.call("Get", path, PROPERTIES_IFACE, &(iface, name))?;
        reply
            .body()
            .deserialize::<OwnedValue>()
            .map_err(|e| SystemdError::Reply {
                method: "Get",
                message: format!("{iface}.{name}: {e}"),
            })
    }

    fn unit_path(&self, unit: &str) -> Result<OwnedObjectPath, SystemdError> {
        let reply = self.call("GetUnit", MANAGER_PATH, MANAGER_IFACE, &(unit,))?;
        reply
            .body()
            .deserialize::<OwnedObjectPath>()
            .map_err(|e| SystemdError::Reply {
                method: "GetUnit",
                message: e.to_string(),
            })
    }
}

/// The interface that carries a unit's cgroup properties, from its suffix.
pub fn unit_interface(unit: &str) -> Option<&'static str> {
    let (_, suffix) = unit.rsplit_once('.')?;
    Some(match suffix {
        "service" => "org.freedesktop.systemd1.Service",
        "scope" => "org.freedesktop.systemd1.Scope",
        "slice" => "org.freedesktop.systemd1.Slice",
        "socket" => "org.freedesktop.systemd1.Socket",
        "mount" => "org.freedesktop.systemd1.Mount",
        "swap" => "org.freedesktop.systemd1.Swap",
        _ => return None,
    })
}

fn call_error(method: &'static str, e: zbus::Error, timeout: Duration) -> SystemdError {
    if let zbus::Error::InputOutput(io) = &e {
        if io.kind() == std::io::ErrorKind::TimedOut {
            return SystemdError::Timeout {
                what: method.to_string(),
                after: timeout,
            };
        }
    }
    SystemdError::Call {
        method,
        source: Box::new(e),
    }
}

/// Connect and authenticate within `timeout`. The handshake runs on a
/// helper thread; if it does not finish in time the socket is shut down,
/// which makes the handshake fail and the thread end.
fn handshake(socket: &Path, p2p: bool, timeout: Duration) -> Result<Connection, SystemdError> {
    let connect_err = |message: String| SystemdError::Connect {
        path: socket.to_path_buf(),
        message,
    };
    let stream = UnixStream::connect(socket).map_err(|e| connect_err(e.to_string()))?;
    // systemd's private socket needs its sender field fixed up for zbus
    // (see `sender_relay`).
    let stream = if p2p {
        super::sender_relay::relay(stream).map_err(|e| connect_err(format!("relay: {e}")))?
    } else {
        stream
    };
    let guard = stream.try_clone().map_err(|e| connect_err(e.to_string()))?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("systemd-dbus-handshake".into())
        .spawn(move || {
            // `unix_stream` is deprecated only because it breaks builds that
            // enable zbus's tokio feature; this crate enables async-io only,
            // and taking a std stream is what lets us keep the shutdown guard.
            #[allow(deprecated)]
            let mut builder =
                zbus::blocking::connection::Builder::unix_stream(stream).method_timeout(timeout);
            if p2p {
                builder = builder.p2p();
            }
            // The receiver may be gone after a timeout; nothing to do then.
            let _ = tx.send(builder.build());
        })
        .map_err(|e| connect_err(format!("spawn handshake thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(connect_err(e.to_string())),
        Err(_) => {
            let _ = guard.shutdown(std::net::Shutdown::Both);
            Err(SystemdError::Timeout {
                what: format!("handshake on {}", socket.display()),
                after: timeout,
            })
        }
    }
}

fn device_allow_from_value(v: &Value<'_>) -> Result<Vec<DeviceAllowEntry>, SystemdError> {
    let bad = |message: String| SystemdError::Reply {
        method: "Get",
        message: format!("DeviceAllow: {message}"),
    };
    let v = match v {
        Value::Value(inner) => inner.as_ref(),
        other => other,
    };
    let Value::Array(items) = v else {
        return Err(bad(format!("expected a(ss), got {}", v.value_signature())));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        let Value::Structure(s) = item else {
            return Err(bad(format!(
                "expected (ss), got {}",
                item.value_signature()
            )));
        };
        match s.fields() {
            [Value::Str(path), Value::Str(access)] => {
                out.push(DeviceAllowEntry::from_pair(path.as_str(), access.as_str())?)
            }
            other => return Err(bad(format!("expected (ss), got {} fields", other.len()))),
        }
    }
    Ok(out)
}

fn string_from_value(method: &'static str, v: &Value<'_>) -> Result<String, SystemdError> {
    match v {
        Value::Str(s) => Ok(s.as_str().to_string()),
        Value::Value(inner) => string_from_value(method, inner),
        other => Err(SystemdError::Reply {
            method,
            message: format!("expected a string, got {}", other.value_signature()),
        }),
    }
}

fn property_value(p: &UnitProperty) -> Value<'static> {
    match p {
        UnitProperty::DeviceAllow(entries) => {
            let pairs: Vec<(String, String)> =
                entries.iter().map(DeviceAllowEntry::to_pair).collect();
            Value::new(pairs)
        }
        UnitProperty::DevicePolicy(policy) => Value::new(policy.as_str().to_string()),
    }
}

impl SystemdClient for DbusSystemd {
    fn version_string(&self) -> Result<String, SystemdError> {
        let v = self.get_property(MANAGER_PATH, MANAGER_IFACE, "Version")?;
        string_from_value("Version", &v)
    }

    fn unit_devices(&self, unit: &str) -> Result<UnitDevices, SystemdError> {
        let iface = unit_interface(unit).ok_or_else(|| SystemdError::Reply {
            method: "GetUnit",
            message: format!("{unit}: not a unit type with cgroup settings"),
        })?;
        let path = self.unit_path(unit)?;
        let allow = self.get_property(path.as_str(), iface, "DeviceAllow")?;
        let policy = self.get_property(path.as_str(), iface, "DevicePolicy")?;
        Ok(UnitDevices {
            policy: Some(DevicePolicy::parse(&string_from_value("Get", &policy)?)?),
            allow: device_allow_from_value(&allow)?,
        })
    }

    fn unit_control_group(&self, unit: &str) -> Result<String, SystemdError> {
        let iface = unit_interface(unit).ok_or_else(|| SystemdError::Reply {
            method: "GetUnit",
            message: format!("{unit}: not a unit type with cgroup settings"),
        })?;
        let path = self.unit_path(unit)?;
        let cg = self.get_property(path.as_str(), iface, "ControlGroup")?;
        string_from_value("Get", &cg)
    }

    fn set_unit_properties(
        &self,
        unit: &str,
        runtime: bool,
        properties: &[UnitProperty],
    ) -> Result<(), SystemdError> {
        let props: Vec<(&str, Value<'static>)> = properties
            .iter()
            .map(|p| (p.name(), property_value(p)))
            .collect();
        self.call(
            "SetUnitProperties",
            MANAGER_PATH,
            MANAGER_IFACE,
            &(unit, runtime, props),
        )?;
        Ok(())
    }

    fn reload(&self) -> Result<(), SystemdError> {
        self.call("Reload", MANAGER_PATH, MANAGER_IFACE, &())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::time::Instant;

    #[test]
    fn unit_interfaces() {
        assert_eq!(
            unit_interface("runc-x.scope"),
            Some("org.freedesktop.systemd1.Scope")
        );
        assert_eq!(
            unit_interface("a.service"),
            Some("org.freedesktop.systemd1.Service")
        );
        assert_eq!(
            unit_interface("system.slice"),
            Some("org.freedesktop.systemd1.Slice")
        );
        assert_eq!(unit_interface("x.target"), None);
        assert_eq!(unit_interface("noext"), None);
    }

    #[test]
    fn paths_are_rerooted() {
        let p = BusPaths::of_process(42);
        assert_eq!(
            p.system_bus,
            PathBuf::from("/proc/42/root/run/dbus/system_bus_socket")
        );
        assert_eq!(
            p.private,
            PathBuf::from("/proc/42/root/run/systemd/private")
        );
        assert_eq!(
            BusPaths::under(&HostRoot::real()).private,
            PathBuf::from("/run/systemd/private")
        );
    }

    #[test]
    fn missing_sockets_are_reported_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let e = DbusSystemd::connect(&BusPaths::under(&HostRoot::new(dir.path()))).unwrap_err();
        assert!(
            matches!(e, SystemdError::NoSocket(ref v) if v.len() == 2),
            "{e}"
        );
    }

    /// A peer that accepts and then never says a word: the handshake must
    /// give up at the deadline, on both paths, and the fallback must say
    /// what happened to each.
    #[test]
    fn silent_peer_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        std::fs::create_dir_all(root.join("/run/dbus")).unwrap();
        std::fs::create_dir_all(root.join("/run/systemd")).unwrap();
        let paths = BusPaths::under(&root).with_timeout(Duration::from_millis(300));
        let bus = UnixListener::bind(&paths.system_bus).unwrap();
        let private = UnixListener::bind(&paths.private).unwrap();
        let held = std::thread::spawn(move || {
            let a = bus.accept().unwrap();
            let b = private.accept().unwrap();
            std::thread::sleep(Duration::from_secs(2));
            drop((a, b));
        });
        let t0 = Instant::now();
        let e = DbusSystemd::connect(&paths).unwrap_err();
        let took = t0.elapsed();
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("no answer") && msg.contains("system bus"),
            "{msg}"
        );
        held.join().unwrap();
    }

    /// With no system bus socket, the private socket is used (and a refused
    /// connection there is an error, not a hang).
    #[test]
    fn falls_back_to_private_socket_when_bus_socket_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        std::fs::create_dir_all(root.join("/run/systemd")).unwrap();
        let paths = BusPaths::under(&root).with_timeout(Duration::from_millis(300));
        // A socket file nobody listens on: connect is refused at once.
        drop(UnixListener::bind(&paths.private).unwrap());
        let e = DbusSystemd::connect(&paths).unwrap_err();
        match e {
            SystemdError::Connect { path, .. } => assert_eq!(path, paths.private),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn device_allow_values_convert_both_ways() {
        let entries = vec![
            DeviceAllowEntry::parse("/dev/null rwm").unwrap(),
            DeviceAllowEntry::parse("char-pts rw").unwrap(),
        ];
        let v = property_value(&UnitProperty::DeviceAllow(entries.clone()));
        assert_eq!(v.value_signature().to_string(), "a(ss)");
        assert_eq!(device_allow_from_value(&v).unwrap(), entries);
        let empty = property_value(&UnitProperty::DeviceAllow(vec![]));
        assert_eq!(empty.value_signature().to_string(), "a(ss)");
        assert!(device_allow_from_value(&empty).unwrap().is_empty());
        let p = property_value(&UnitProperty::DevicePolicy(DevicePolicy::Strict));
        assert_eq!(string_from_value("Get", &p).unwrap(), "strict");
    }
}
