//! A repair budget per container: a runtime or systemd that keeps undoing a
//! repair would otherwise get it (and, on cgroup v1, a freeze of the
//! container) every cycle.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Repairs one container may have within [`BUDGET_WINDOW`].
pub const BUDGET_REPAIRS: usize = 5;
/// The window the budget counts over.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(3600);

/// When each container was last repaired, within the window.
#[derive(Debug, Default)]
pub struct RepairBudget {
    spent: HashMap<String, VecDeque<Instant>>,
}

impl RepairBudget {
    /// Whether `container` may be repaired at `now`; `Err(n)` with the
    /// repairs it had in the window when its budget is spent.
    pub fn ready(&mut self, container: &str, now: Instant) -> Result<(), usize> {
        let Some(times) = self.spent.get_mut(container) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= BUDGET_WINDOW)
        {
            times.pop_front();
        }
        if times.len() >= BUDGET_REPAIRS {
            Err(times.len())
        } else {
            Ok(())
        }
    }

    /// Record a repair of `container` applied at `now`.
    pub fn spend(&mut self, container: &str, now: Instant) {
        self.spent
            .entry(container.to_string())
            .or_default()
            .push_back(now);
    }

    /// Forget containers that are gone.
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        self.spent.retain(|c, _| live(c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_an_hour_then_refused_until_the_oldest_leaves_the_window() {
        let mut b = RepairBudget::default();
        let t0 = Instant::now();
        for i in 0..BUDGET_REPAIRS {
            assert_eq!(b.ready("c1", t0), Ok(()), "repair {i}");
            b.spend("c1", t0 + Duration::from_secs(i as u64));
        }
        assert_eq!(b.ready("c1", t0 + Duration::from_secs(60)), Err(5));
        assert_eq!(b.ready("c2", t0), Ok(()), "per container");
        assert_eq!(b.ready("c1", t0 + BUDGET_WINDOW), Ok(()), "the first left");
        b.retain(|_| false);
        assert_eq!(b.ready("c1", t0), Ok(()));
    }
}
