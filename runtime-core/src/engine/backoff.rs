//! Per-finding backoff after failed repairs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::diagnose::FindingId;

/// First backoff after a failed repair.
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// Longest backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(600);

/// Failed repairs per finding and when each may be tried again: a repair
/// that fails (or applies but leaves the check failing) is not retried
/// before its backoff ends (10 s, doubling to 10 min), so a container that
/// cannot be repaired does not cost a repair every scan.
#[derive(Debug, Default)]
pub struct Backoff {
    entries: HashMap<FindingId, (u32, Instant)>,
}

impl Backoff {
    /// Whether a repair of `k` may run at `now`; `Err(failures)` while
    /// backing off.
    pub fn ready(&self, k: &FindingId, now: Instant) -> Result<(), u32> {
        match self.entries.get(k) {
            Some((n, until)) if now < *until => Err(*n),
            _ => Ok(()),
        }
    }

    /// Record a failed repair of `k`.
    pub fn failed(&mut self, k: FindingId, now: Instant) {
        let n = self.entries.get(&k).map_or(0, |e| e.0) + 1;
        let delay = BACKOFF_BASE
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(BACKOFF_MAX);
        self.entries.insert(k, (n, now + delay));
    }

    /// Record a successful repair of `k`.
    pub fn succeeded(&mut self, k: &FindingId) {
        self.entries.remove(k);
    }

    /// Forget findings the last scan no longer shows (a deleted container,
    /// a problem that went away), so the table does not grow; one still
    /// within its backoff is kept until it ends, so a problem that vanishes
    /// for one scan and comes back (something keeps undoing the repair) is
    /// not retried at once.
    pub fn retain(&mut self, live: impl Fn(&FindingId) -> bool, now: Instant) {
        self.entries.retain(|k, (_, until)| live(k) || now < *until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckId;

    #[test]
    fn backoff_doubles_and_resets() {
        let mut b = Backoff::default();
        let k = FindingId {
            check: CheckId::DeviceAccessBroken,
            container: Some("c1".into()),
            subject: String::new(),
        };
        let t0 = Instant::now();
        assert_eq!(b.ready(&k, t0), Ok(()));
        b.failed(k.clone(), t0);
        assert_eq!(b.ready(&k, t0 + Duration::from_secs(9)), Err(1));
        assert_eq!(b.ready(&k, t0 + Duration::from_secs(10)), Ok(()));
        b.failed(k.clone(), t0);
        assert_eq!(b.ready(&k, t0 + Duration::from_secs(19)), Err(2));
        for _ in 0..20 {
            b.failed(k.clone(), t0);
        }
        assert_eq!(b.ready(&k, t0 + BACKOFF_MAX), Ok(()), "capped");
        b.succeeded(&k);
        assert_eq!(b.ready(&k, t0), Ok(()));
        b.failed(k.clone(), t0);
        b.retain(|_| false, t0 + Duration::from_secs(1));
        assert_eq!(
            b.ready(&k, t0 + Duration::from_secs(2)),
            Err(1),
            "absent for one scan is not a reset: still backing off"
        );
        b.retain(|_| false, t0 + BACKOFF_BASE);
        assert_eq!(b.ready(&k, t0), Ok(()), "forgotten once its backoff ended");
    }
}
