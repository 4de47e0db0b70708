//! The cgroup v1 dialect: `devices.list` lines and the strings written to
//! `devices.allow` / `devices.deny`.
//!
//! Both use one line form, `TYPE MAJOR:MINOR ACCESS` (`c 1:3 rwm`,
//! `b 8:* m`, `a *:* rwm`); which file a line goes to says whether it allows
//! or denies. For logs and tests a write is also spelled with its file:
//! `allow c 1:3 rwm`, `deny a`.

use crate::devices::v1::emulator::{DefaultPolicy, Emulator, Exception, Pattern};
use crate::devices::{Access, DeviceRule, DeviceType};

/// `devices.allow`.
pub const ALLOW_FILE: &str = "devices.allow";
/// `devices.deny`.
pub const DENY_FILE: &str = "devices.deny";
/// `devices.list`.
pub const LIST_FILE: &str = "devices.list";

/// A line that is not in the v1 form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line does not have the `TYPE MAJOR:MINOR ACCESS` shape.
    #[error("`{line}`: {why}")]
    Malformed {
        /// The offending line.
        line: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `devices.list` mixes `a *:* rwm` (allow mode) with other lines, which
    /// the kernel never prints.
    #[error("devices.list mixes `a *:* rwm` with exception lines")]
    MixedList,
}

/// The file a write of `rule` goes to.
pub fn file_for(rule: &DeviceRule) -> &'static str {
    if rule.allow {
        ALLOW_FILE
    } else {
        DENY_FILE
    }
}

fn number(n: Option<u32>) -> String {
    n.map_or_else(|| "*".to_string(), |n| n.to_string())
}

/// The line for `rule` as written to `devices.allow` / `devices.deny` or
/// printed in `devices.list`: `c 1:3 rwm`.
pub fn format_rule(rule: &DeviceRule) -> String {
    format!(
        "{} {}:{} {}",
        rule.kind.letter(),
        number(rule.major),
        number(rule.minor),
        rule.access
    )
}

/// The write spelled with its file: `allow c 1:3 rwm`, `deny a *:* rwm`.
/// (The same as `rule.to_string()`.)
pub fn format_write(rule: &DeviceRule) -> String {
    rule.to_string()
}

/// Parse one `TYPE MAJOR:MINOR ACCESS` line; `allow` says which file it is
/// for. A lone `a` is accepted as `a *:* rwm` (the kernel reads nothing after
/// the `a`).
pub fn parse_rule(line: &str, allow: bool) -> Result<DeviceRule, LineError> {
    let bad = |why| LineError::Malformed {
        line: line.to_string(),
        why,
    };
    let mut fields = line.split_whitespace();
    let kind = match fields.next() {
        Some("a") => DeviceType::All,
        Some("c") => DeviceType::Char,
        Some("b") => DeviceType::Block,
        Some(_) => return Err(bad("type must be a, c or b")),
        None => return Err(bad("empty line")),
    };
    let Some(numbers) = fields.next() else {
        if kind == DeviceType::All {
            return Ok(DeviceRule {
                allow,
                kind,
                major: None,
                minor: None,
                access: Access::ALL,
            });
        }
        return Err(bad("missing MAJOR:MINOR"));
    };
    let (major, minor) = numbers
        .split_once(':')
        .ok_or_else(|| bad("MAJOR:MINOR needs a colon"))?;
    let num = |s: &str| -> Result<Option<u32>, LineError> {
        if s == "*" {
            return Ok(None);
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("major and minor are decimal numbers or *"));
        }
        s.parse::<u32>()
            .map(Some)
            .map_err(|_| bad("major or minor does not fit in 32 bits"))
    };
    let (major, minor) = (num(major)?, num(minor)?);
    let access = match fields.next() {
        Some(a) => Access::parse(a).ok_or_else(|| bad("access is a set of r, w, m"))?,
        None => {
            return Err(bad(
                "missing access (the kernel refuses a rule without one)",
            ))
        }
    };
    if access.is_empty() {
        return Err(bad("empty access"));
    }
    if fields.next().is_some() {
        return Err(bad("trailing fields"));
    }
    Ok(DeviceRule {
        allow,
        kind,
        major,
        minor,
        access,
    })
}

/// Parse a write spelled with its file (`allow c 1:3 rwm`, `deny a`).
pub fn parse_write(s: &str) -> Result<DeviceRule, LineError> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("allow ") {
        parse_rule(rest, true)
    } else if let Some(rest) = s.strip_prefix("deny ") {
        parse_rule(rest, false)
    } else {
        Err(LineError::Malformed {
            line: s.to_string(),
            why: "a write starts with `allow ` or `deny `",
        })
    }
}

/// Parse the lines of a `devices.list` (each as an allow rule, which is what
/// the file means: "the devices allowed"). Blank lines are skipped.
pub fn parse_list_lines(text: &str) -> Result<Vec<DeviceRule>, LineError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_rule(l, true))
        .collect()
}

/// Print rules as `devices.list` lines, one per line, newline-terminated.
pub fn format_list_lines(rules: &[DeviceRule]) -> String {
    rules.iter().map(|r| format_rule(r) + "\n").collect()
}

impl Emulator {
    /// The state a `devices.list` shows. `a *:* rwm` alone is allow mode
    /// whose denies are unknown (the kernel does not print them; see
    /// [`Emulator::hidden_denies_possible`]); anything else is deny mode with
    /// exactly the listed exceptions, in order.
    pub fn from_devices_list(text: &str) -> Result<Emulator, LineError> {
        let rules = parse_list_lines(text)?;
        let has_all = rules.iter().any(|r| r.kind == DeviceType::All);
        if has_all {
            if rules.len() != 1 {
                return Err(LineError::MixedList);
            }
            let mut emu = Emulator::allow_all();
            emu.set_hidden_denies_possible(true);
            return Ok(emu);
        }
        let exceptions: Vec<Exception> = rules
            .iter()
            .map(|r| Exception {
                pattern: Pattern::new(r.kind, r.major, r.minor),
                access: r.access,
            })
            .collect();
        Ok(Emulator::with_exceptions(DefaultPolicy::Deny, &exceptions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_line_form() {
        for line in [
            "c 1:3 rwm",
            "a *:* rwm",
            "b 8:* m",
            "c *:* m",
            "c 136:* rw",
            "b *:0 r",
            "c 4294967294:1048575 w",
        ] {
            let rule = parse_rule(line, true).unwrap();
            assert_eq!(format_rule(&rule), line);
            let deny = parse_rule(line, false).unwrap();
            assert!(!deny.allow);
            assert_eq!(format_rule(&deny), line);
        }
    }

    #[test]
    fn parses_the_parts() {
        let r = parse_rule("b 8:* m", false).unwrap();
        assert_eq!(
            r,
            DeviceRule {
                allow: false,
                kind: DeviceType::Block,
                major: Some(8),
                minor: None,
                access: Access::MKNOD
            }
        );
        assert_eq!(file_for(&r), DENY_FILE);
        let a = parse_rule("a", true).unwrap();
        assert_eq!(format_rule(&a), "a *:* rwm");
        assert_eq!(file_for(&a), ALLOW_FILE);
        assert_eq!(
            parse_rule("c 1:3 mwr", true).unwrap().access,
            Access::ALL,
            "any letter order"
        );
    }

    #[test]
    fn rejects_what_the_kernel_rejects() {
        for bad in [
            "",
            "x 1:3 r",
            "c 1:3",
            "c 1:3 ",
            "c 1-3 r",
            "c a:3 r",
            "c 1:3 rx",
            "c 1:3 rr",
            "c 1:3 r extra",
            "c 4294967296:1 r",
            "c -1:1 r",
            "c :1 r",
        ] {
            assert!(parse_rule(bad, true).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn writes_round_trip() {
        for w in ["allow c 1:3 rwm", "deny a *:* rwm", "deny b 8:* m"] {
            assert_eq!(format_write(&parse_write(w).unwrap()), w);
        }
        assert_eq!(
            format_write(&parse_write("deny a").unwrap()),
            "deny a *:* rwm"
        );
        assert!(parse_write("permit c 1:3 r").is_err());
    }

    #[test]
    fn list_round_trips_and_reads_as_a_state() {
        let text = "c 1:3 rwm\nc 1:* m\nb 8:* m\n";
        let rules = parse_list_lines(text).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(format_list_lines(&rules), text);
        let emu = Emulator::from_devices_list(text).unwrap();
        assert_eq!(emu.default_policy(), DefaultPolicy::Deny);
        assert_eq!(emu.devices_list(), text);
        assert!(!emu.hidden_denies_possible());

        let all = Emulator::from_devices_list("a *:* rwm\n").unwrap();
        assert_eq!(all.default_policy(), DefaultPolicy::Allow);
        assert!(all.hidden_denies_possible());
        assert_eq!(all.devices_list(), "a *:* rwm\n");

        let empty = Emulator::from_devices_list("").unwrap();
        assert_eq!(empty, Emulator::deny_all());

        assert_eq!(
            Emulator::from_devices_list("a *:* rwm\nc 1:3 r\n"),
            Err(LineError::MixedList)
        );
    }
}
