//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several
//! operator replicas exactly one acts.
//!
//! The protocol is client-go's: the holder renews `renewTime` every retry
//! period; a candidate takes the Lease only after seeing the same record
//! unchanged for a whole `leaseDurationSeconds` *by its own clock* (so
//! clock skew between replicas does not matter, only their rates); writes
//! carry the `resourceVersion` they read, so of two candidates racing for an
//! expired Lease the API server lets one win (the other gets 409). A leader
//! that cannot renew for `renew_deadline` (shorter than the lease duration)
//! stops acting before anyone else may take over.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::time::Instant;
use tokio::sync::watch;

use crate::error_chain::Chain;

/// Timings of the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a Lease is valid without renewal.
    pub duration: Duration,
    /// A leader that has not renewed for this long stops acting.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry: Duration,
}

/// Why the election could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The timings cannot guarantee a single leader.
    #[error("renew deadline ({renew_deadline:?}) must be shorter than the lease duration ({duration:?}) and longer than the retry period ({retry:?})")]
    Timings {
        /// Lease duration.
        duration: Duration,
        /// Renew deadline.
        renew_deadline: Duration,
        /// Retry period.
        retry: Duration,
    },
    /// An API call on the Lease failed.
    #[error("{action} Lease {name}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// The Lease's name.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

impl LeaseTimings {
    /// How long work may go on after this replica stopped renewing before
    /// another replica may take the Lease: a leader gives up at most
    /// `renew_deadline` after the start of its last successful renewal, and
    /// nobody else takes the Lease before `duration` after it.
    pub fn margin(self) -> Duration {
        self.duration.saturating_sub(self.renew_deadline)
    }

    /// Check that the timings allow a single leader.
    pub fn validate(self) -> Result<Self, LeaderError> {
        if self.renew_deadline < self.duration && self.retry < self.renew_deadline {
            Ok(self)
        } else {
            Err(LeaderError::Timings {
                duration: self.duration,
                renew_deadline: self.renew_deadline,
                retry: self.retry,
            })
        }
    }
}

/// What to do about the Lease as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it, holding it.
    Create,
    /// Nobody holds it, or its holder stopped renewing: take it over.
    Take,
    /// We hold it: renew.
    Renew,
    /// Someone else holds it and renews: wait.
    Wait {
        /// The holder.
        holder: String,
    },
}

/// Decide from the Lease's spec (`None`: no Lease object), who we are, and
/// how long the Lease's record has been seen unchanged.
pub fn decide(
    spec: Option<&LeaseSpec>,
    me: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Decision {
    let Some(spec) = spec else {
        return Decision::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(h) if h == me => Decision::Renew,
        None | Some("") => Decision::Take,
        Some(holder) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(default_duration, Duration::from_secs);
            if unchanged_for >= duration {
                Decision::Take
            } else {
                Decision::Wait {
                    holder: holder.to_owned(),
                }
            }
        }
    }
}

/// The part of a Lease whose change proves its holder is alive.
type Record = (Option<String>, Option<MicroTime>, Option<i32>);

fn record(spec: Option<&LeaseSpec>) -> Record {
    spec.map_or((None, None, None), |s| {
        (
            s.holder_identity.clone(),
            s.renew_time.clone(),
            s.lease_transitions,
        )
    })
}

/// Whether this replica leads after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// We hold the Lease.
    Leader,
    /// Someone else holds it, or won the race for it.
    Follower,
}

/// How [`Elector::hold`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEnd {
    /// Shutdown was requested; the Lease is still ours.
    Shutdown,
    /// The Lease was lost or could not be renewed in time: stop acting.
    Lost,
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: LeaseTimings,
    observed: Mutex<Option<(Record, Instant)>>,
    /// When the last successful create/take/renew *started*: the Lease's
    /// validity runs from no earlier than that, whatever the answer's delay.
    renewed: Mutex<Option<Instant>>,
    clock: Clock,
}

/// The monotonic clock lease expiry is judged by (a fake one in tests).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

fn duration_secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl Elector {
    /// An elector for Lease `name` (in `api`'s namespace) as `identity`.
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timings: LeaseTimings) -> Self {
        Self::with_clock(api, name, identity, timings, Arc::new(Instant::now))
    }

    /// Like [`Elector::new`], judging time by `clock`.
    pub fn with_clock(
        api: Api<Lease>,
        name: &str,
        identity: &str,
        timings: LeaseTimings,
        clock: Clock,
    ) -> Self {
        Self {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
            timings,
            observed: Mutex::new(None),
            renewed: Mutex::new(None),
            clock,
        }
    }

    /// How long the record in `spec` has been seen unchanged.
    fn unchanged_for(&self, spec: Option<&LeaseSpec>, now: Instant) -> Duration {
        let current = record(spec);
        let mut observed = self
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match observed.as_ref() {
            Some((seen, since)) if *seen == current => now.saturating_duration_since(*since),
            _ => {
                *observed = Some((current, now));
                Duration::ZERO
            }
        }
    }

    fn api_error(&self, action: &'static str, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            action,
            name: self.name.clone(),
            source,
        }
    }

    /// One round: read the Lease and create, take, renew it, or wait.
    pub async fn try_acquire_or_renew(&self) -> Result<Role, LeaderError> {
        let started = (self.clock)();
        let lease = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.api_error("read", e))?;
        let spec = lease.as_ref().and_then(|l| l.spec.as_ref());
        let unchanged_for = self.unchanged_for(spec, (self.clock)());
        let now = MicroTime(Timestamp::now());
        let decision = decide(spec, &self.identity, unchanged_for, self.timings.duration);
        tracing::trace!(lease = %self.name, ?decision, "leader election");
        let mine = |acquire_time: Option<MicroTime>, transitions: Option<i32>| LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(duration_secs(self.timings.duration)),
            acquire_time,
            renew_time: Some(now.clone()),
            lease_transitions: transitions,
            ..LeaseSpec::default()
        };
        let result = match (decision, lease) {
            (Decision::Wait { .. }, _) => return Ok(Role::Follower),
            (Decision::Create, _) | (_, None) => {
                let fresh = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(mine(Some(now.clone()), Some(0))),
                };
                self.api.create(&PostParams::default(), &fresh).await
            }
            (Decision::Take, Some(mut lease)) => {
                let transitions = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0)
                    .saturating_add(1);
                lease.spec = Some(mine(Some(now.clone()), Some(transitions)));
                // `lease` carries the resourceVersion just read: if anyone
                // wrote in between, the API server answers 409.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
            (Decision::Renew, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                lease.spec = Some(mine(old.acquire_time, old.lease_transitions));
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(written) => {
                // Our own write is a change we saw.
                self.unchanged_for(written.spec.as_ref(), (self.clock)());
                *self
                    .renewed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(started);
                Ok(Role::Leader)
            }
            // Another replica created or wrote the Lease first.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Role::Follower),
            Err(e) => Err(self.api_error("write", e)),
        }
    }

    /// Try until this replica leads (`true`) or `stop` becomes true
    /// (`false`). API errors are logged and retried.
    pub async fn acquire(&self, stop: &mut watch::Receiver<bool>) -> bool {
        loop {
            // A hung request must not stall the candidate for good; a write
            // that landed anyway shows up as ours next round (Renew).
            let attempt =
                tokio::time::timeout(self.timings.renew_deadline, self.try_acquire_or_renew());
            match attempt.await.unwrap_or(Ok(Role::Follower)) {
                Ok(Role::Leader) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                    return true;
                }
                Ok(Role::Follower) => {}
                Err(e) => tracing::warn!(error = %Chain(&e), "leader election"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.timings.retry) => {}
                _ = stop.wait_for(|s| *s) => return false,
            }
        }
    }

    /// Keep renewing until `stop` becomes true or the Lease is lost: another
    /// replica holds it, or no renewal succeeded for the renew deadline.
    ///
    /// Each renewal gets only the time left before the renew deadline
    /// (counted from the start of the last successful one): a request that
    /// hangs ends this replica's leadership in time, instead of blocking the
    /// deadline check while another replica takes the Lease.
    pub async fn hold(&self, stop: &mut watch::Receiver<bool>) -> HoldEnd {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.timings.retry) => {}
                _ = stop.wait_for(|s| *s) => return HoldEnd::Shutdown,
            }
            let last_renewal = self
                .renewed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .unwrap_or_else(|| (self.clock)());
            let left = self
                .timings
                .renew_deadline
                .saturating_sub((self.clock)().saturating_duration_since(last_renewal));
            if left.is_zero() {
                tracing::error!(lease = %self.name, "could not renew the Lease in time");
                return HoldEnd::Lost;
            }
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(Role::Leader)) => {}
                Ok(Ok(Role::Follower)) => {
                    tracing::error!(lease = %self.name, "lost the Lease to another replica");
                    return HoldEnd::Lost;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %Chain(&e), "renewing the Lease failed");
                    if (self.clock)().saturating_duration_since(last_renewal)
                        >= self.timings.renew_deadline
                    {
                        tracing::error!(lease = %self.name, "could not renew the Lease in time");
                        return HoldEnd::Lost;
                    }
                }
                Err(_) => {
                    tracing::error!(lease = %self.name, "renewing the Lease did not finish before the renew deadline");
                    return HoldEnd::Lost;
                }
            }
        }
    }

    /// Give the Lease up (on shutdown), so that another replica takes over
    /// at once instead of after the lease duration.
    pub async fn release(&self) -> Result<(), LeaderError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.api_error("read", e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| self.api_error("release", e))?;
        tracing::info!(lease = %self.name, "released the Lease");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    fn held_by(holder: Option<&str>, duration: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(String::from),
            lease_duration_seconds: duration,
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, "a", Duration::ZERO, D), Decision::Create);
        let mine = held_by(Some("a"), Some(15));
        assert_eq!(
            decide(Some(&mine), "a", Duration::from_secs(100), D),
            Decision::Renew
        );
        let free = held_by(None, Some(1));
        assert_eq!(decide(Some(&free), "a", Duration::ZERO, D), Decision::Take);
        let empty = held_by(Some(""), None);
        assert_eq!(decide(Some(&empty), "a", Duration::ZERO, D), Decision::Take);

        let theirs = held_by(Some("b"), Some(30));
        // The Lease's own duration counts, not ours.
        assert_eq!(
            decide(Some(&theirs), "a", Duration::from_secs(20), D),
            Decision::Wait { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&theirs), "a", Duration::from_secs(30), D),
            Decision::Take
        );
        // Without a duration in the Lease, ours applies.
        let no_duration = held_by(Some("b"), None);
        assert_eq!(decide(Some(&no_duration), "a", D, D), Decision::Take);
    }

    #[test]
    fn timings_must_allow_a_single_leader() {
        let ok = LeaseTimings {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.margin(), Duration::from_secs(5));
        assert!(LeaseTimings {
            renew_deadline: Duration::from_secs(15),
            ..ok
        }
        .validate()
        .is_err());
        assert!(LeaseTimings {
            retry: Duration::from_secs(10),
            ..ok
        }
        .validate()
        .is_err());
    }
}
