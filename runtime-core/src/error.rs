//! Error helpers shared by every module: I/O errors always carry their path.

use std::io;
use std::path::{Path, PathBuf};

/// An I/O error together with the path (or other object) it happened on.
///
/// A bare `io::Error` says "No such file or directory" and nothing else; an
/// operator reading a report needs to know *which* file.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct WrappedIoError {
    /// What was being done ("read", "write", "open", ...).
    pub op: &'static str,
    /// The path the operation was applied to.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

impl WrappedIoError {
    /// The `io::ErrorKind` of the underlying error.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

/// Attach an operation and a path to an `io::Result`.
pub trait IoContext<T> {
    /// Wrap the error, if any, with `op` and `path`.
    fn with_path(self, op: &'static str, path: &Path) -> Result<T, WrappedIoError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn with_path(self, op: &'static str, path: &Path) -> Result<T, WrappedIoError> {
        self.map_err(|source| WrappedIoError {
            op,
            path: path.to_path_buf(),
            source,
        })
    }
}

/// An error and its causes on one line (`top: cause: cause`), for notes
/// and reports that keep a single string; a cause whose text the line
/// already holds is left out.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = c.source();
    }
    out
}
