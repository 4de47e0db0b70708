//! The unit of every report: one [`Finding`], its stable [`FindingId`], and
//! its people-facing rendering (message, evidence), made from its typed
//! cause only when it is shown or serialised.

use std::collections::BTreeMap;

use serde::ser::SerializeStruct;
use serde::Serialize;

pub use crate::checks::{CheckId, Severity};
pub use crate::discovery::ContainerRef;

use super::cause::Cause;
use super::render;

/// A finding's identity across scans: the check, the container (none for
/// the host) and what tells it apart from others of the same check
/// ([`Cause::subject`]). Backoff, repair budgets and "was it repaired" key
/// on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FindingId {
    /// The check.
    pub check: CheckId,
    /// The container id, or `None` for the host.
    pub container: Option<String>,
    /// The subject within check and container (often empty).
    pub subject: String,
}

impl std::fmt::Display for FindingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {}",
            self.check,
            self.container.as_deref().unwrap_or("the host")
        )?;
        if !self.subject.is_empty() {
            write!(f, " ({})", self.subject)?;
        }
        Ok(())
    }
}

/// One thing found wrong (or about to go wrong) on a node.
///
/// Serialised as `{check, severity, container?, message, evidence?,
/// repaired, repair_note?}`: the message and evidence are rendered from the
/// cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The check.
    pub check: CheckId,
    /// How bad it is.
    pub severity: Severity,
    /// The container it concerns; `None` for host-level hazards.
    pub container: Option<ContainerRef>,
    /// What the check found, typed.
    pub cause: Cause,
    /// Whether a repair fixed it in this run.
    pub repaired: bool,
    /// Why it was or was not repaired.
    pub repair_note: Option<String>,
}

impl Finding {
    /// A finding not (yet) repaired.
    pub fn new(
        check: CheckId,
        severity: Severity,
        container: Option<ContainerRef>,
        cause: Cause,
    ) -> Self {
        Self {
            check,
            severity,
            container,
            cause,
            repaired: false,
            repair_note: None,
        }
    }

    /// Its stable identity.
    pub fn id(&self) -> FindingId {
        FindingId {
            check: self.check,
            container: self.container.as_ref().map(|c| c.id.clone()),
            subject: self.cause.subject(),
        }
    }

    /// One sentence an operator can act on.
    pub fn message(&self) -> String {
        render::message(&self.cause)
    }

    /// The facts that back the finding, as key/value text.
    pub fn evidence(&self) -> BTreeMap<String, String> {
        render::evidence(&self.cause)
    }
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let evidence = self.evidence();
        let mut n = 5;
        n += usize::from(self.container.is_some());
        n += usize::from(!evidence.is_empty());
        n += usize::from(self.repair_note.is_some());
        let mut st = s.serialize_struct("Finding", n)?;
        st.serialize_field("check", &self.check)?;
        st.serialize_field("severity", &self.severity)?;
        if let Some(c) = &self.container {
            st.serialize_field("container", c)?;
        }
        st.serialize_field("message", &self.message())?;
        if !evidence.is_empty() {
            st.serialize_field("evidence", &evidence)?;
        }
        st.serialize_field("repaired", &self.repaired)?;
        if let Some(n) = &self.repair_note {
            st.serialize_field("repair_note", n)?;
        }
        st.end()
    }
}
