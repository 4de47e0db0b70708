//! The systemd port: one connection per scan.

use std::sync::Arc;
use std::time::Duration;

use crate::root::HostRoot;
use crate::systemd::{BusPaths, DbusSystemd, SystemdClient, SystemdError};

/// Deadline for connecting to systemd and for each call from a scan or a
/// repair: a wedged systemd costs a scan this much, never a hang.
pub const SYSTEMD_TIMEOUT: Duration = Duration::from_secs(5);

/// Reaching the host's systemd.
pub trait SystemdPort: Send + Sync {
    /// Whether systemd runs on the host (the test `sd_booted()` uses:
    /// `/run/systemd/system` exists).
    fn running(&self) -> bool;

    /// Connect. Callers keep the connection for the scan (or the repair
    /// round) rather than connecting per container.
    fn connect(&self) -> Result<Box<dyn SystemdClient + Send + Sync>, SystemdError>;
}

/// D-Bus to the systemd of the host under a root.
#[derive(Debug, Clone)]
pub struct RealSystemd {
    root: HostRoot,
}

impl RealSystemd {
    /// systemd of the host under `root`.
    pub fn new(root: HostRoot) -> Self {
        Self { root }
    }
}

impl SystemdPort for RealSystemd {
    fn running(&self) -> bool {
        self.root.join("/run/systemd/system").is_dir()
    }

    fn connect(&self) -> Result<Box<dyn SystemdClient + Send + Sync>, SystemdError> {
        if !self.running() {
            return Err(SystemdError::NotRunning);
        }
        let paths = BusPaths::under(&self.root).with_timeout(SYSTEMD_TIMEOUT);
        Ok(Box::new(DbusSystemd::connect(&paths)?))
    }
}

/// Why the session has no client, or a call through it failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    /// Connecting failed (once per session: not retried).
    #[error("systemd unreachable")]
    Unreachable(#[source] Arc<SystemdError>),
    /// A call failed (the unit does not exist, systemd refused, ...).
    #[error("systemd call failed")]
    Call(#[source] Arc<SystemdError>),
    /// A call in this session timed out, so systemd is skipped for the rest
    /// of it (one slow systemd must not cost a timeout per container).
    #[error("systemd skipped for the rest of this session: an earlier call timed out")]
    Tripped(#[source] Arc<SystemdError>),
}

impl From<SystemdError> for SessionError {
    fn from(e: SystemdError) -> Self {
        SessionError::Unreachable(Arc::new(e))
    }
}

/// One scan's (or one repair round's) connection to systemd: made on first
/// use, shared by every check and repair in it, and given up for the rest
/// of the session after a call times out (a circuit breaker: a stopped
/// systemd costs one timeout per scan, not one per container).
pub struct SystemdSession {
    port: std::sync::Arc<dyn SystemdPort>,
    conn: std::sync::OnceLock<Result<Box<dyn SystemdClient + Send + Sync>, Arc<SystemdError>>>,
    tripped: std::sync::Mutex<Option<Arc<SystemdError>>>,
}

impl std::fmt::Debug for SystemdSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemdSession").finish_non_exhaustive()
    }
}

impl SystemdSession {
    /// A session that will connect through `port` when first asked.
    pub fn new(port: std::sync::Arc<dyn SystemdPort>) -> Self {
        Self {
            port,
            conn: std::sync::OnceLock::new(),
            tripped: std::sync::Mutex::new(None),
        }
    }

    /// Whether systemd runs on the host.
    pub fn running(&self) -> bool {
        self.port.running()
    }

    /// The connection, made on first use.
    pub fn client(&self) -> Result<&(dyn SystemdClient + Send + Sync), SessionError> {
        if let Some(why) = self
            .tripped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Err(SessionError::Tripped(why));
        }
        match self
            .conn
            .get_or_init(|| self.port.connect().map_err(Arc::new))
        {
            Ok(c) => Ok(c.as_ref()),
            Err(e) => Err(SessionError::Unreachable(Arc::clone(e))),
        }
    }

    /// Run `f` on the client; a timeout trips the breaker for the rest of
    /// the session.
    pub fn call<T>(
        &self,
        f: impl FnOnce(&dyn SystemdClient) -> Result<T, SystemdError>,
    ) -> Result<T, SessionError> {
        let c = self.client()?;
        match f(c) {
            Ok(v) => Ok(v),
            Err(e) => {
                let e = Arc::new(e);
                self.trip_on_timeout(&e);
                Err(SessionError::Call(e))
            }
        }
    }

    /// Record a failed call made outside [`SystemdSession::call`] (a client
    /// borrowed from [`SystemdSession::client`]): a timeout trips the
    /// breaker as it would there.
    pub fn note_failure(&self, e: &SystemdError) {
        if let SystemdError::Timeout { what, after } = e {
            self.trip_on_timeout(&Arc::new(SystemdError::Timeout {
                what: what.clone(),
                after: *after,
            }));
        }
    }

    /// Trip the breaker on the first timeout of the session.
    fn trip_on_timeout(&self, e: &Arc<SystemdError>) {
        if !matches!(**e, SystemdError::Timeout { .. }) {
            return;
        }
        let mut t = self
            .tripped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.is_none() {
            tracing::warn!(error = %e, "systemd timed out: skipped for the rest of this session");
            *t = Some(Arc::clone(e));
        }
    }

    /// Why systemd was given up in this session, if it was.
    pub fn tripped(&self) -> Option<Arc<SystemdError>> {
        self.tripped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
