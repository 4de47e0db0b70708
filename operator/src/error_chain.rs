//! An error and its causes, each said once.
//!
//! The errors of this crate say only their own context in `Display` ("read
//! policy p.yaml") and hand the cause to `source()`, so that nothing is
//! printed twice when the chain is walked. Libraries are not all so careful:
//! kube's errors put their source's text in their own message *and* return
//! it from `source()`. Walking the chain therefore skips a cause whose text
//! an earlier line already shows.

use std::error::Error;
use std::fmt;

/// The lines that describe `error`: its own message, then each cause not
/// already contained in an earlier line.
pub fn lines(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = vec![error.to_string()];
    let mut next = error.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !out.iter().any(|line| line.contains(&text)) {
            out.push(text);
        }
        next = cause.source();
    }
    out
}

/// `error` and its causes on one line, `context: cause: cause`, for log
/// fields: a log line that shows only the outermost context ("apply
/// NodeRuntimeReport n1") would hide why it failed.
pub struct Chain<'a>(
    /// The error to show.
    pub &'a (dyn Error + 'static),
);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&lines(self.0).join(": "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Says only its own context, as this crate's errors do.
    #[derive(Debug, thiserror::Error)]
    #[error("connect to the cluster")]
    struct Outer(#[source] Embedding);

    /// Repeats its source in its own message, as kube's errors do.
    #[derive(Debug, thiserror::Error)]
    #[error("failed to read kubeconfig: {0}")]
    struct Embedding(#[source] std::io::Error);

    fn example() -> Outer {
        Outer(Embedding(std::io::Error::from(
            std::io::ErrorKind::NotFound,
        )))
    }

    #[test]
    fn a_cause_already_shown_is_skipped() {
        assert_eq!(
            lines(&example()),
            [
                "connect to the cluster",
                "failed to read kubeconfig: entity not found"
            ]
        );
    }

    #[test]
    fn one_line_joins_the_distinct_causes() {
        assert_eq!(
            Chain(&example()).to_string(),
            "connect to the cluster: failed to read kubeconfig: entity not found"
        );
    }
}
