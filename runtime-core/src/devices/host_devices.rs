//! The host's device table, as systemd sees it when it turns `DeviceAllow=`
//! into a device program: which node paths under `/dev` name which
//! `major:minor`, which `/dev/char/M:m` and `/dev/block/M:m` links exist, and
//! the driver names `/proc/devices` gives each major (what `char-NAME`
//! entries are matched against).
//!
//! systemd resolves a node path with `stat()` at every daemon-reload, in its
//! own mount namespace: the host's. So the table is read from a [`HostRoot`]
//! and records *host* paths, never a container's.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::devices::DeviceType;
use crate::error::{IoContext, WrappedIoError};
use crate::root::HostRoot;

/// A concrete device: type ([`DeviceType::Char`] or [`DeviceType::Block`]),
/// major and minor.
pub type DeviceId = (DeviceType, u32, u32);

/// Errors reading the host's device table.
#[derive(Debug, thiserror::Error)]
pub enum HostDevicesError {
    /// `/dev` or `/proc/devices` could not be read.
    #[error(transparent)]
    Io(#[from] WrappedIoError),
}

/// Directories under `/dev` that hold no device nodes worth naming (or hold
/// only links to nodes found elsewhere), skipped by the scan.
const SKIP_DIRS: &[&str] = &["char", "block", "shm", "mqueue", "hugepages", "fd", "disk"];

/// How deep the scan descends below `/dev` (`/dev/dri/by-path/x` is 3).
const MAX_DEPTH: usize = 4;

/// The driver names of device majors, from `/proc/devices`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcDevices {
    /// `Character devices:` section: (major, name), in file order. A major
    /// may appear under several names (`4 tty`, `4 ttyS`).
    pub char: Vec<(u32, String)>,
    /// `Block devices:` section.
    pub block: Vec<(u32, String)>,
}

impl ProcDevices {
    /// Parse the text of `/proc/devices`.
    pub fn parse(text: &str) -> Self {
        let mut out = ProcDevices::default();
        let mut section: Option<DeviceType> = None;
        for line in text.lines() {
            let line = line.trim();
            match line {
                "Character devices:" => section = Some(DeviceType::Char),
                "Block devices:" => section = Some(DeviceType::Block),
                "" => section = None,
                _ => {
                    let Some(kind) = section else { continue };
                    let mut parts = line.splitn(2, char::is_whitespace);
                    let (Some(num), Some(name)) = (parts.next(), parts.next()) else {
                        continue;
                    };
                    let Ok(major) = num.parse::<u32>() else {
                        continue;
                    };
                    let entry = (major, name.trim().to_string());
                    match kind {
                        DeviceType::Block => out.block.push(entry),
                        _ => out.char.push(entry),
                    }
                }
            }
        }
        out
    }

    /// The section for `kind` (block for [`DeviceType::Block`], char
    /// otherwise).
    pub fn section(&self, kind: DeviceType) -> &[(u32, String)] {
        match kind {
            DeviceType::Block => &self.block,
            _ => &self.char,
        }
    }

    /// Names registered for `major`.
    pub fn names_of(&self, kind: DeviceType, major: u32) -> impl Iterator<Item = &str> {
        self.section(kind)
            .iter()
            .filter(move |(m, _)| *m == major)
            .map(|(_, n)| n.as_str())
    }

    /// Majors whose name matches the shell glob `pattern`, the way systemd
    /// matches `char-PATTERN` (fnmatch without flags; major 0 is never
    /// taken).
    pub fn majors_matching(&self, kind: DeviceType, pattern: &str) -> BTreeSet<u32> {
        self.section(kind)
            .iter()
            .filter(|(m, n)| *m > 0 && glob_match(pattern, n))
            .map(|(m, _)| *m)
            .collect()
    }
}

/// A small fnmatch(3) without flags: `*`, `?`, `[...]` (with `!`/`^`
/// negation and ranges) and `\` escapes. Names in `/proc/devices` are short,
/// so the simple backtracking is fine.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, length consumed incl. ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some('!') | Some('^'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            let lo = p[i];
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                if lo <= c && c <= p[i + 2] {
                    matched = true;
                }
                i += 3;
            } else {
                if lo == c {
                    matched = true;
                }
                i += 1;
            }
        }
        None
    }
    fn go(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') => (0..=s.len()).any(|k| go(&p[1..], &s[k..])),
            Some('?') => !s.is_empty() && go(&p[1..], &s[1..]),
            Some('[') => match (s.first(), class(&p[1..], *s.first().unwrap_or(&'\0'))) {
                (Some(_), Some((true, n))) => go(&p[1 + n..], &s[1..]),
                (Some(_), Some((false, _))) | (None, _) => false,
                // An unclosed '[' is an ordinary character.
                (Some(c), None) => *c == '[' && go(&p[1..], &s[1..]),
            },
            Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && go(&p[2..], &s[1..]),
            Some(c) => s.first() == Some(c) && go(&p[1..], &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    go(&p, &s)
}

/// Whether a name can be used literally as a `char-NAME` glob: no glob
/// metacharacters, no whitespace, no `/`.
pub fn is_literal_class_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| matches!(c, '*' | '?' | '[' | ']' | '\\' | '/') || c.is_whitespace())
}

/// The host's device nodes and major names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostDevices {
    /// Host node path -> device, for every char/block node found.
    by_path: BTreeMap<PathBuf, DeviceId>,
    /// Device -> host node paths, sorted.
    by_device: BTreeMap<DeviceId, Vec<PathBuf>>,
    /// `/dev/char/M:m` and `/dev/block/M:m` entries that resolve to a node
    /// of that number.
    number_links: BTreeSet<DeviceId>,
    /// Whether `/dev/char` exists at all.
    dev_char: bool,
    /// Names from `/proc/devices`.
    proc_devices: ProcDevices,
}

impl HostDevices {
    /// A table from parts (tests, or a table read some other way). Paths are
    /// host paths (`/dev/null`).
    pub fn from_parts(
        nodes: impl IntoIterator<Item = (PathBuf, DeviceId)>,
        number_links: impl IntoIterator<Item = DeviceId>,
        dev_char: bool,
        proc_devices: ProcDevices,
    ) -> Self {
        let mut out = HostDevices {
            dev_char,
            proc_devices,
            number_links: number_links.into_iter().collect(),
            ..Default::default()
        };
        for (path, dev) in nodes {
            out.insert(path, dev);
        }
        out
    }

    fn insert(&mut self, path: PathBuf, dev: DeviceId) {
        let paths = self.by_device.entry(dev).or_default();
        if !paths.contains(&path) {
            paths.push(path.clone());
            paths.sort();
        }
        self.by_path.insert(path, dev);
    }

    /// Scan `root`'s `/dev` (not following symlinks, skipping
    /// `SKIP_DIRS`), its `/dev/char` and `/dev/block` links, and read
    /// `/proc/devices`. A missing `/dev` or `/proc/devices` gives an empty
    /// part, not an error: a fixture may hold only what a test needs.
    pub fn scan(root: &HostRoot) -> Result<Self, HostDevicesError> {
        let mut out = HostDevices::default();
        let dev = root.join("/dev");
        if dev.is_dir() {
            out.walk(root, &dev, 0)?;
        }
        for (dir, kind) in [
            ("/dev/char", DeviceType::Char),
            ("/dev/block", DeviceType::Block),
        ] {
            let p = root.join(dir);
            if kind == DeviceType::Char {
                out.dev_char = p.is_dir();
            }
            if !p.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&p).with_path("read directory", &p)? {
                let entry = entry.with_path("read directory", &p)?;
                let name = entry.file_name();
                let Some((major, minor)) = name.to_str().and_then(parse_major_minor) else {
                    continue;
                };
                // Follow the link (relative links resolve inside the root),
                // as systemd's stat() would.
                let Ok(meta) = fs::metadata(entry.path()) else {
                    continue;
                };
                if device_of(&meta) == Some((kind, major, minor)) {
                    out.number_links.insert((kind, major, minor));
                }
            }
        }
        let pd = root.join("/proc/devices");
        match fs::read_to_string(&pd) {
            Ok(text) => out.proc_devices = ProcDevices::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(WrappedIoError {
                    op: "read",
                    path: pd,
                    source,
                }
                .into());
            }
        }
        Ok(out)
    }

    fn walk(&mut self, root: &HostRoot, dir: &Path, depth: usize) -> Result<(), HostDevicesError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            // A subdirectory we may not read (or that vanished) is not worth
            // failing the whole table for; `/dev` itself is checked above.
            Err(_) if depth > 0 => return Ok(()),
            Err(source) => {
                return Err(WrappedIoError {
                    op: "read directory",
                    path: dir.to_path_buf(),
                    source,
                }
                .into())
            }
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                let skip = depth == 0
                    && entry
                        .file_name()
                        .to_str()
                        .is_some_and(|n| SKIP_DIRS.contains(&n));
                if !skip && depth + 1 < MAX_DEPTH {
                    self.walk(root, &path, depth + 1)?;
                }
            } else if let Some(dev) = device_of(&meta) {
                if let Ok(rel) = path.strip_prefix(root.path()) {
                    self.insert(Path::new("/").join(rel), dev);
                }
            }
        }
        Ok(())
    }

    /// Host node paths of a device, sorted; empty when it has no node.
    pub fn node_paths(&self, dev: DeviceId) -> &[PathBuf] {
        self.by_device.get(&dev).map_or(&[], Vec::as_slice)
    }

    /// The node path to name a device by: the shortest, then the first in
    /// order (`/dev/null` over `/dev/somewhere/null`).
    pub fn preferred_path(&self, dev: DeviceId) -> Option<&Path> {
        self.node_paths(dev)
            .iter()
            .min_by(|a, b| {
                let (a, b) = (a.as_os_str(), b.as_os_str());
                a.len().cmp(&b.len()).then(a.cmp(b))
            })
            .map(PathBuf::as_path)
    }

    /// What `stat()` of a host path finds: the device, when it is a node in
    /// the table or a `/dev/char|block/M:m` link to one.
    pub fn stat(&self, path: &Path) -> Option<DeviceId> {
        if let Some(dev) = self.by_path.get(path) {
            return Some(*dev);
        }
        let s = path.to_str()?;
        let (kind, rest) = if let Some(r) = s.strip_prefix("/dev/char/") {
            (DeviceType::Char, r)
        } else {
            (DeviceType::Block, s.strip_prefix("/dev/block/")?)
        };
        let (major, minor) = parse_major_minor(rest)?;
        let dev = (kind, major, minor);
        self.number_links.contains(&dev).then_some(dev)
    }

    /// Whether `/dev/char/M:m` (or `/dev/block/M:m`) exists and resolves to
    /// the device.
    pub fn has_number_link(&self, dev: DeviceId) -> bool {
        self.number_links.contains(&dev)
    }

    /// Whether `/dev/char` exists.
    pub fn dev_char(&self) -> bool {
        self.dev_char
    }

    /// The `/proc/devices` names.
    pub fn proc_devices(&self) -> &ProcDevices {
        &self.proc_devices
    }

    /// Every device that has a node.
    pub fn devices(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.by_device.keys().copied()
    }
}

/// `M:m` as two numbers.
pub fn parse_major_minor(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    if a.is_empty() || b.is_empty() || !a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The device a node's metadata names (`None` for anything but a character
/// or block node).
pub(crate) fn device_of(meta: &fs::Metadata) -> Option<DeviceId> {
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        DeviceType::Char
    } else if ft.is_block_device() {
        DeviceType::Block
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some((
        kind,
        nix::sys::stat::major(rdev) as u32,
        nix::sys::stat::minor(rdev) as u32,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_DEVICES: &str = "Character devices:\n  1 mem\n  4 /dev/vc/0\n  4 tty\n  4 ttyS\n  5 /dev/tty\n 10 misc\n136 pts\n\nBlock devices:\n  7 loop\n259 blkext\n";

    #[test]
    fn proc_devices_sections_and_names() {
        let pd = ProcDevices::parse(PROC_DEVICES);
        assert_eq!(pd.char.len(), 7);
        assert_eq!(pd.block, vec![(7, "loop".into()), (259, "blkext".into())]);
        assert_eq!(
            pd.names_of(DeviceType::Char, 4).collect::<Vec<_>>(),
            ["/dev/vc/0", "tty", "ttyS"]
        );
        assert_eq!(
            pd.majors_matching(DeviceType::Char, "pts"),
            BTreeSet::from([136])
        );
        assert_eq!(
            pd.majors_matching(DeviceType::Char, "tty*"),
            BTreeSet::from([4])
        );
        assert_eq!(
            pd.majors_matching(DeviceType::Char, "*"),
            BTreeSet::from([1, 4, 5, 10, 136])
        );
        assert_eq!(
            pd.majors_matching(DeviceType::Block, "loop"),
            BTreeSet::from([7])
        );
        assert!(pd.majors_matching(DeviceType::Block, "pts").is_empty());
    }

    #[test]
    fn glob_follows_fnmatch() {
        assert!(glob_match("pts", "pts"));
        assert!(!glob_match("pts", "ptsx"));
        assert!(glob_match("tty*", "ttyS"));
        assert!(glob_match("t?y", "tty"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[!a-c]x", "bx"));
        assert!(glob_match("\\*", "*"));
        assert!(!glob_match("\\*", "a"));
        assert!(glob_match("[x", "[x"));
        assert!(is_literal_class_name("pts"));
        assert!(!is_literal_class_name("/dev/tty"));
        assert!(!is_literal_class_name("a*"));
        assert!(!is_literal_class_name("cpu/cpuid"));
    }

    #[test]
    fn major_minor_parsing() {
        assert_eq!(parse_major_minor("1:3"), Some((1, 3)));
        assert_eq!(parse_major_minor("10:200"), Some((10, 200)));
        for bad in ["1:", ":3", "1-3", "a:b", "1:3:4", "-1:3", "1: 3"] {
            assert_eq!(parse_major_minor(bad), None, "{bad}");
        }
    }

    #[test]
    fn lookups_from_parts() {
        let t = HostDevices::from_parts(
            [
                ("/dev/null".into(), (DeviceType::Char, 1, 3)),
                ("/dev/a/long/null".into(), (DeviceType::Char, 1, 3)),
                ("/dev/loop0".into(), (DeviceType::Block, 7, 0)),
            ],
            [(DeviceType::Char, 1, 3)],
            true,
            ProcDevices::parse(PROC_DEVICES),
        );
        assert_eq!(
            t.preferred_path((DeviceType::Char, 1, 3)),
            Some(Path::new("/dev/null"))
        );
        assert_eq!(t.node_paths((DeviceType::Char, 1, 3)).len(), 2);
        assert_eq!(
            t.stat(Path::new("/dev/char/1:3")),
            Some((DeviceType::Char, 1, 3))
        );
        assert_eq!(t.stat(Path::new("/dev/char/1:5")), None);
        assert_eq!(
            t.stat(Path::new("/dev/loop0")),
            Some((DeviceType::Block, 7, 0))
        );
        assert_eq!(t.preferred_path((DeviceType::Block, 7, 1)), None);
    }

    #[test]
    fn scan_of_this_host() {
        let t = HostDevices::scan(&HostRoot::real()).unwrap();
        assert_eq!(
            t.preferred_path((DeviceType::Char, 1, 3)),
            Some(Path::new("/dev/null"))
        );
        assert_eq!(t.dev_char(), Path::new("/dev/char").is_dir());
        assert!(t
            .proc_devices()
            .majors_matching(DeviceType::Char, "mem")
            .contains(&1));
    }

    #[test]
    fn scan_of_an_empty_root_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let t = HostDevices::scan(&HostRoot::new(dir.path())).unwrap();
        assert_eq!(t, HostDevices::default());
    }
}
