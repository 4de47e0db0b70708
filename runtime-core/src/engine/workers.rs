//! Repairs run on a few worker threads: the repairs of one container one
//! after another on one worker, containers in parallel.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Run `groups` of jobs on at most `max` worker threads: the jobs of one
/// group in order on one worker, groups in parallel. Jobs not started once
/// `stop` is set come back as `None`.
pub fn run_groups<T: Send>(
    groups: Vec<Vec<usize>>,
    max: usize,
    stop: &AtomicBool,
    job: impl Fn(usize) -> T + Sync,
) -> Vec<(usize, Option<T>)> {
    let workers = max.max(1).min(groups.len());
    let queue = Mutex::new(VecDeque::from(groups));
    let out = Mutex::new(Vec::new());
    let next = || {
        queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
    };
    let push = |j: usize, r: Option<T>| {
        out.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((j, r));
    };
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(group) = next() {
                    for j in group {
                        if stop.load(Ordering::SeqCst) {
                            push(j, None);
                        } else {
                            push(j, Some(job(j)));
                        }
                    }
                }
            });
        }
    });
    let mut out = out
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    out.sort_by_key(|(j, _)| *j);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn groups_run_in_parallel_up_to_the_limit_and_never_overlap_per_container() {
        // 6 containers with 3 repairs each; job j belongs to container j / 3.
        let groups: Vec<Vec<usize>> = (0..6).map(|c| (c * 3..c * 3 + 3).collect()).collect();
        for max in [1usize, 2, 4] {
            let running = AtomicUsize::new(0);
            let peak = AtomicUsize::new(0);
            let busy = Mutex::new(HashSet::new());
            let stop = AtomicBool::new(false);
            let out = run_groups(groups.clone(), max, &stop, |j| {
                let c = j / 3;
                assert!(
                    busy.lock().unwrap().insert(c),
                    "two repairs on container {c} at once"
                );
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
                busy.lock().unwrap().remove(&c);
                j * 10
            });
            assert_eq!(out.len(), 18);
            assert!(out.iter().all(|(j, r)| *r == Some(j * 10)));
            let p = peak.load(Ordering::SeqCst);
            assert!(p <= max, "max {max}, peak {p}");
            if max > 1 {
                assert!(p > 1, "max {max}: repairs of different containers overlap");
            }
        }
    }

    #[test]
    fn a_stop_abandons_what_has_not_started() {
        let stop = AtomicBool::new(false);
        let out = run_groups(vec![vec![0, 1, 2]], 1, &stop, |j| {
            if j == 0 {
                stop.store(true, Ordering::SeqCst);
            }
            j
        });
        assert_eq!(out, vec![(0, Some(0)), (1, None), (2, None)]);
    }
}
