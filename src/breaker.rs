//! Per-host circuit breakers shared by every thread of a pool.
//!
//! A [`CircuitBreaker`] sits on every request's path twice: once before the call
//! ([`CircuitBreaker::admit`]) and once after it ([`CircuitBreaker::record`]). While the breaker
//! is closed both are lock-free: admission is one atomic load, and recording is one atomic add
//! into a time bucket plus a scan of the bucket ring. State changes are compare-and-swaps on a
//! single word, so exactly one thread wins (and reports, and logs) each transition.
//!
//! [`Breakers`] keeps one breaker per host key such as `"example.com:443"`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use ureq::http::StatusCode;

use crate::error::{Error, ErrorKind, TimeoutPhase};

/// Number of time buckets the sliding window is split into.
const BUCKETS: usize = 10;

/// The state word keeps the state in its low two bits and a tick count (nanoseconds since the
/// breaker was created) above them: the end of the break while open, the end of the probe's
/// lease while half-open. Packing both into one word lets a single CAS change them together, so
/// no thread can ever see an open state paired with a stale deadline.
const TAG_BITS: u32 = 2;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
const TAG_CLOSED: u64 = 0;
const TAG_OPEN: u64 = 1;
const TAG_HALF_OPEN: u64 = 2;
/// Largest tick count that still fits above the tag bits (about 146 years).
const MAX_TICKS: u64 = u64::MAX >> TAG_BITS;

/// Bucket counters are packed as `calls << 32 | failures` so one `fetch_add` counts a call and
/// its outcome together; a reader can never see a failure without its call.
const CALL: u64 = 1 << 32;
const FAILURE: u64 = 1;
/// Marks a bucket whose counters are being reset for a new epoch.
const RESETTING: u64 = u64::MAX;

fn duration_ticks(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).map_or(MAX_TICKS, |n| n.min(MAX_TICKS))
}

/// Settings of a [`CircuitBreaker`].
///
/// A consuming builder: start from [`BreakerConfig::new`] (or [`Default`]) and chain setters.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use http_sentinel::BreakerConfig;
///
/// let config = BreakerConfig::new()
///     .with_failure_ratio(0.25)
///     .with_min_calls(20)
///     .with_window(Duration::from_secs(30))
///     .with_break_duration(Duration::from_secs(10));
/// assert_eq!(config.failure_ratio(), 0.25);
/// assert_eq!(config.min_calls(), 20);
/// assert!(config.is_enabled());
/// ```
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    enabled: bool,
    failure_ratio: f64,
    min_calls: u32,
    window: Duration,
    break_duration: Duration,
    probe_lease: Duration,
}

impl BreakerConfig {
    /// The default configuration: enabled, ratio 0.5, 10 calls, 10 s window, 5 s break.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::BreakerConfig;
    ///
    /// let config = BreakerConfig::new();
    /// assert_eq!(config.window(), Duration::from_secs(10));
    /// assert_eq!(config.break_duration(), Duration::from_secs(5));
    /// ```
    pub const fn new() -> Self {
        Self {
            enabled: true,
            failure_ratio: 0.5,
            min_calls: 10,
            window: Duration::from_secs(10),
            break_duration: Duration::from_secs(5),
            probe_lease: Duration::ZERO,
        }
    }

    /// A configuration whose breakers never reject and ignore every result, for pools that run
    /// without circuit breaking.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{breaker::Admission, BreakerConfig, breaker::CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new(BreakerConfig::disabled());
    /// for _ in 0..100 {
    ///     assert_eq!(breaker.record(breaker.admit(), false), None);
    /// }
    /// assert_eq!(breaker.admit(), Admission::Allowed);
    /// ```
    pub const fn disabled() -> Self {
        Self::new().with_enabled(false)
    }

    /// Whether breakers built from this configuration do anything at all. Defaults to `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::BreakerConfig;
    ///
    /// assert!(!BreakerConfig::new().with_enabled(false).is_enabled());
    /// ```
    #[must_use]
    pub const fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// The breaker opens when failures divided by calls in the window reach this ratio (and at
    /// least [`min_calls`](Self::min_calls) calls were made). Defaults to 0.5.
    ///
    /// # Panics
    ///
    /// If `ratio` is not in `(0, 1]` (NaN included).
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::BreakerConfig;
    ///
    /// assert_eq!(BreakerConfig::new().with_failure_ratio(1.0).failure_ratio(), 1.0);
    /// ```
    #[must_use]
    pub fn with_failure_ratio(mut self, ratio: f64) -> Self {
        assert!(
            ratio > 0.0 && ratio <= 1.0,
            "failure_ratio must be in (0, 1], got {ratio}"
        );
        self.failure_ratio = ratio;
        self
    }

    /// The breaker never opens before this many calls were recorded in the window, however
    /// many of them failed. Defaults to 10.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::BreakerConfig;
    ///
    /// assert_eq!(BreakerConfig::new().with_min_calls(3).min_calls(), 3);
    /// ```
    #[must_use]
    pub const fn with_min_calls(mut self, n: u32) -> Self {
        self.min_calls = n;
        self
    }

    /// How far back calls count. The window is a ring of ten buckets, so a result stops
    /// counting between nine and ten tenths of the window after it was recorded. Defaults to
    /// 10 s.
    ///
    /// # Panics
    ///
    /// If `window` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::BreakerConfig;
    ///
    /// let config = BreakerConfig::new().with_window(Duration::from_secs(60));
    /// assert_eq!(config.window(), Duration::from_secs(60));
    /// ```
    #[must_use]
    pub fn with_window(mut self, window: Duration) -> Self {
        assert!(!window.is_zero(), "breaker window must be positive");
        self.window = window;
        self
    }

    /// How long an open breaker rejects calls before it lets one probe through. It is also the
    /// probe's lease unless [`probe_lease`](Self::probe_lease) is longer: a probe whose result
    /// is not recorded within it counts as lost, and the next caller gets a new probe. Defaults
    /// to 5 s.
    ///
    /// # Panics
    ///
    /// If `d` is zero: such a breaker would never reject anything.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::BreakerConfig;
    ///
    /// let config = BreakerConfig::new().with_break_duration(Duration::from_secs(30));
    /// assert_eq!(config.break_duration(), Duration::from_secs(30));
    /// ```
    #[must_use]
    pub fn with_break_duration(mut self, d: Duration) -> Self {
        assert!(!d.is_zero(), "break_duration must be positive");
        self.break_duration = d;
        self
    }

    /// The least time a half-open probe may take before it counts as lost and another caller
    /// gets a probe; the lease is the longer of this and the break duration. A
    /// [`ClientPool`](crate::ClientPool) raises it to its call deadline, so a slow probe is
    /// never joined by a second one. Defaults to zero (the break duration alone).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::BreakerConfig;
    ///
    /// let config = BreakerConfig::new().with_probe_lease(Duration::from_secs(30));
    /// assert_eq!(config.probe_lease(), Duration::from_secs(30));
    /// ```
    #[must_use]
    pub const fn with_probe_lease(mut self, d: Duration) -> Self {
        self.probe_lease = d;
        self
    }

    /// The least probe lease; see [`probe_lease`](Self::probe_lease).
    pub const fn probe_lease(&self) -> Duration {
        self.probe_lease
    }

    /// Whether breakers built from this configuration are active.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::BreakerConfig;
    ///
    /// assert!(BreakerConfig::new().is_enabled());
    /// assert!(!BreakerConfig::disabled().is_enabled());
    /// ```
    pub const fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The failure ratio that opens the breaker.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::BreakerConfig;
    ///
    /// assert_eq!(BreakerConfig::new().failure_ratio(), 0.5);
    /// ```
    pub const fn failure_ratio(&self) -> f64 {
        self.failure_ratio
    }

    /// The number of calls in the window below which the breaker never opens.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::BreakerConfig;
    ///
    /// assert_eq!(BreakerConfig::new().min_calls(), 10);
    /// ```
    pub const fn min_calls(&self) -> u32 {
        self.min_calls
    }

    /// The length of the sliding window.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::BreakerConfig;
    ///
    /// assert_eq!(BreakerConfig::new().window(), Duration::from_secs(10));
    /// ```
    pub const fn window(&self) -> Duration {
        self.window
    }

    /// How long the breaker stays open before a probe.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::BreakerConfig;
    ///
    /// assert_eq!(BreakerConfig::new().break_duration(), Duration::from_secs(5));
    /// ```
    pub const fn break_duration(&self) -> Duration {
        self.break_duration
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The state of a [`CircuitBreaker`]. Displays as `closed`, `open` or `half-open`.
///
/// # Examples
///
/// ```
/// use http_sentinel::breaker::BreakerState;
///
/// assert_eq!(BreakerState::HalfOpen.to_string(), "half-open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through and their results are counted.
    Closed,
    /// Calls are rejected until the break ends.
    Open,
    /// One probe call is in flight; every other call is rejected until its result is recorded.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        })
    }
}

/// What [`CircuitBreaker::admit`] decided for one call. Hand it back to
/// [`CircuitBreaker::record`] once the call has finished.
///
/// # Examples
///
/// ```
/// use http_sentinel::{breaker::Admission, BreakerConfig, breaker::CircuitBreaker};
///
/// let breaker = CircuitBreaker::new(BreakerConfig::new());
/// match breaker.admit() {
///     Admission::Allowed | Admission::Probe => { /* make the call, then record it */ }
///     Admission::Rejected { retry_in } => println!("host unavailable, retry in {retry_in:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed: make the call.
    Allowed,
    /// The break has ended and this call is the single probe that decides whether the breaker
    /// closes again. Its result must be recorded, or no other probe is admitted until the
    /// probe's lease (the break duration) runs out.
    Probe,
    /// The breaker refused the call.
    Rejected {
        /// While open: the time left of the break, after which a probe is admitted. While
        /// half-open: the time left of the probe's lease, after which another probe would be
        /// admitted if the first is never recorded; the breaker may close sooner than that.
        retry_in: Duration,
    },
}

/// A state change caused by a [`CircuitBreaker::record`] call.
///
/// # Examples
///
/// ```
/// use http_sentinel::{breaker::Admission, BreakerConfig, breaker::BreakerState, breaker::CircuitBreaker};
///
/// let breaker = CircuitBreaker::new(BreakerConfig::new().with_min_calls(1));
/// let transition = breaker.record(breaker.admit(), false).unwrap();
/// assert_eq!(transition.from(), BreakerState::Closed);
/// assert_eq!(transition.to(), BreakerState::Open);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    from: BreakerState,
    to: BreakerState,
}

impl Transition {
    /// The state before the change.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, breaker::BreakerState, breaker::CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new(BreakerConfig::new().with_min_calls(1));
    /// let transition = breaker.record(breaker.admit(), false).unwrap();
    /// assert_eq!(transition.from(), BreakerState::Closed);
    /// ```
    pub const fn from(&self) -> BreakerState {
        self.from
    }

    /// The state after the change.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, breaker::BreakerState, breaker::CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new(BreakerConfig::new().with_min_calls(1));
    /// let transition = breaker.record(breaker.admit(), false).unwrap();
    /// assert_eq!(transition.to(), BreakerState::Open);
    /// ```
    pub const fn to(&self) -> BreakerState {
        self.to
    }
}

/// One slice of the sliding window.
#[derive(Debug)]
struct Bucket {
    /// Which slice of time (ticks / bucket width) the counters belong to, or `RESETTING`.
    epoch: AtomicU64,
    /// `calls << 32 | failures`.
    counts: AtomicU64,
}

/// A circuit breaker for one host, shared by every thread that calls it.
///
/// Closed, it admits every call and counts results in a sliding window; when at least
/// [`min_calls`](BreakerConfig::min_calls) calls were made in the window and the failure ratio
/// reaches [`failure_ratio`](BreakerConfig::failure_ratio), it opens. Open, it rejects calls for
/// the [`break_duration`](BreakerConfig::break_duration); then exactly one caller gets a
/// [`Admission::Probe`] and the breaker turns half-open. The probe's success closes it with an
/// empty window; its failure opens it for a new break.
///
/// Every transition is logged with `log::warn!`.
///
/// Times are measured from the moment the breaker was created: an `Instant` earlier than that,
/// passed to one of the `*_at` methods, counts as that moment.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use http_sentinel::{breaker::Admission, BreakerConfig, breaker::BreakerState, breaker::CircuitBreaker};
///
/// let breaker = CircuitBreaker::named(
///     BreakerConfig::new().with_min_calls(2).with_break_duration(Duration::from_secs(5)),
///     "example.com:443",
/// );
/// let t0 = Instant::now();
/// for _ in 0..2 {
///     let admission = breaker.admit_at(t0);
///     breaker.record_at(admission, false, t0);
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
/// assert_eq!(
///     breaker.admit_at(t0 + Duration::from_secs(1)),
///     Admission::Rejected { retry_in: Duration::from_secs(4) }
/// );
///
/// let later = t0 + Duration::from_secs(5);
/// assert_eq!(breaker.admit_at(later), Admission::Probe);
/// breaker.record_at(Admission::Probe, true, later);
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// ```
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    name: String,
    /// Zero point of every tick count.
    base: Instant,
    break_ticks: u64,
    lease_ticks: u64,
    bucket_ticks: u64,
    /// Packed state and deadline; see `TAG_BITS`.
    state: AtomicU64,
    buckets: [Bucket; BUCKETS],
    /// The latest bucket epoch a failure was counted in, plus one (0: none yet). A success
    /// with no failure in its window cannot open the breaker (the ratio is above zero), so it
    /// is counted without summing the window.
    last_failure: AtomicU64,
}

impl CircuitBreaker {
    /// A breaker without a name; its log lines say only "circuit breaker".
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, breaker::BreakerState, breaker::CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new(BreakerConfig::new());
    /// assert_eq!(breaker.state(), BreakerState::Closed);
    /// ```
    pub fn new(config: BreakerConfig) -> Self {
        Self::named(config, String::new())
    }

    /// A breaker whose log lines carry `name`, typically the host key such as
    /// `"example.com:443"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, breaker::CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::named(BreakerConfig::new(), "example.com:443");
    /// assert_eq!(breaker.name(), "example.com:443");
    /// ```
    pub fn named(config: BreakerConfig, name: impl Into<String>) -> Self {
        let bucket_ticks = (duration_ticks(config.window) / BUCKETS as u64).max(1);
        Self {
            break_ticks: duration_ticks(config.break_duration),
            lease_ticks: duration_ticks(config.break_duration.max(config.probe_lease)),
            bucket_ticks,
            config,
            name: name.into(),
            base: Instant::now(),
            state: AtomicU64::new(TAG_CLOSED),
            buckets: std::array::from_fn(|_| Bucket {
                epoch: AtomicU64::new(0),
                counts: AtomicU64::new(0),
            }),
            last_failure: AtomicU64::new(0),
        }
    }

    /// The name given to [`named`](Self::named), empty for [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, breaker::CircuitBreaker};
    ///
    /// assert_eq!(CircuitBreaker::new(BreakerConfig::new()).name(), "");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration this breaker was built with.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, breaker::CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new(BreakerConfig::new().with_min_calls(4));
    /// assert_eq!(breaker.config().min_calls(), 4);
    /// ```
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state, for reporting. An open breaker whose break has ended still reports
    /// [`BreakerState::Open`] until a caller is admitted as the probe, and a half-open breaker
    /// reports [`BreakerState::HalfOpen`] until the probe's result is recorded. A disabled
    /// breaker is always [`BreakerState::Closed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, breaker::BreakerState, breaker::CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new(BreakerConfig::new().with_min_calls(1));
    /// breaker.record(breaker.admit(), false);
    /// assert_eq!(breaker.state(), BreakerState::Open);
    /// ```
    pub fn state(&self) -> BreakerState {
        decode(self.state.load(Ordering::Acquire)).0
    }

    /// Decides whether a call may go out now. See [`admit_at`](Self::admit_at).
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{breaker::Admission, BreakerConfig, breaker::CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new(BreakerConfig::new());
    /// assert_eq!(breaker.admit(), Admission::Allowed);
    /// ```
    pub fn admit(&self) -> Admission {
        self.admit_at(Instant::now())
    }

    /// Decides whether a call may go out at `now`.
    ///
    /// Closed: [`Admission::Allowed`]. Open with time left in the break:
    /// [`Admission::Rejected`] with that time. Open with the break over: exactly one caller
    /// gets [`Admission::Probe`] and the breaker turns half-open. Half-open: rejected with the
    /// time left of the probe's lease; once the lease runs out without a recorded result, the
    /// next caller gets a new probe.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use http_sentinel::{breaker::Admission, BreakerConfig, breaker::CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new(BreakerConfig::new().with_min_calls(1));
    /// let t0 = Instant::now();
    /// breaker.record_at(breaker.admit_at(t0), false, t0);
    ///
    /// let after_break = t0 + Duration::from_secs(5);
    /// assert_eq!(breaker.admit_at(after_break), Admission::Probe);
    /// assert_eq!(
    ///     breaker.admit_at(after_break),
    ///     Admission::Rejected { retry_in: Duration::from_secs(5) }
    /// );
    /// ```
    pub fn admit_at(&self, now: Instant) -> Admission {
        self.admit_reporting_at(now).0
    }

    /// [`admit_at`](Self::admit_at), also saying whether this admission moved the breaker
    /// from open to half-open: the caller that wins the probe is the one that caused the
    /// transition, so exactly one caller learns of it, however many race for the probe.
    pub(crate) fn admit_reporting_at(&self, now: Instant) -> (Admission, Option<Transition>) {
        if !self.config.enabled {
            return (Admission::Allowed, None);
        }
        let mut word = self.state.load(Ordering::Acquire);
        if decode(word).0 == BreakerState::Closed {
            return (Admission::Allowed, None);
        }
        let now = self.ticks(now);
        loop {
            let (state, deadline) = decode(word);
            if state == BreakerState::Closed {
                return (Admission::Allowed, None);
            }
            if now < deadline {
                let retry_in = Duration::from_nanos(deadline - now);
                return (Admission::Rejected { retry_in }, None);
            }
            // The break (or a lost probe's lease) is over: whoever swaps in a new lease is the
            // probe; everyone who loses the race re-reads and is rejected by that lease.
            let lease = encode(TAG_HALF_OPEN, now.saturating_add(self.lease_ticks));
            match self
                .state
                .compare_exchange(word, lease, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if state == BreakerState::Open {
                        self.log_transition(BreakerState::Open, BreakerState::HalfOpen);
                        let t = Transition {
                            from: BreakerState::Open,
                            to: BreakerState::HalfOpen,
                        };
                        return (Admission::Probe, Some(t));
                    }
                    log::warn!(
                        "{}: probe result not recorded within {:?}, admitting another probe",
                        self.label(),
                        self.config.break_duration
                    );
                    return (Admission::Probe, None);
                }
                Err(current) => word = current,
            }
        }
    }

    /// Records the outcome of a finished call. See [`record_at`](Self::record_at).
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, breaker::CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new(BreakerConfig::new());
    /// let admission = breaker.admit();
    /// // ... make the call ...
    /// assert_eq!(breaker.record(admission, true), None);
    /// ```
    pub fn record(&self, admission: Admission, success: bool) -> Option<Transition> {
        self.record_at(admission, success, Instant::now())
    }

    /// Records, at `now`, the outcome of a call that was given `admission`.
    ///
    /// For a [`Admission::Probe`]: success closes the breaker with an empty window, failure
    /// opens it for a new break. For [`Admission::Allowed`]: the call is counted in the window,
    /// and the breaker opens if the thresholds are met; a result arriving while the breaker is
    /// no longer closed (the call was in flight when it opened) is ignored, so it can neither
    /// close the breaker nor start a second probe. A [`Admission::Rejected`] call is ignored.
    ///
    /// Returns the transition this call caused, if any; each transition is returned to exactly
    /// one caller.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use http_sentinel::{breaker::Admission, BreakerConfig, breaker::BreakerState, breaker::CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new(BreakerConfig::new().with_min_calls(2).with_failure_ratio(1.0));
    /// let now = Instant::now();
    /// assert_eq!(breaker.record_at(Admission::Allowed, false, now), None);
    /// let transition = breaker.record_at(Admission::Allowed, false, now).unwrap();
    /// assert_eq!(transition.to(), BreakerState::Open);
    /// // A call that was already in flight changes nothing.
    /// assert_eq!(breaker.record_at(Admission::Allowed, true, now), None);
    /// assert_eq!(breaker.state(), BreakerState::Open);
    /// ```
    pub fn record_at(
        &self,
        admission: Admission,
        success: bool,
        now: Instant,
    ) -> Option<Transition> {
        if !self.config.enabled {
            return None;
        }
        match admission {
            Admission::Rejected { .. } => None,
            Admission::Probe => self.record_probe(success, self.ticks(now)),
            Admission::Allowed => self.record_allowed(success, self.ticks(now)),
        }
    }

    fn record_probe(&self, success: bool, now: u64) -> Option<Transition> {
        let word = self.state.load(Ordering::Acquire);
        if decode(word).0 != BreakerState::HalfOpen {
            // A probe whose lease ran out and whose successor already decided.
            return None;
        }
        let (next, to) = if success {
            // Empty the window before closing: while half-open no counted result can arrive,
            // so callers admitted after the close start from zero instead of tripping on the
            // failures that opened the breaker.
            for bucket in &self.buckets {
                bucket.counts.store(0, Ordering::Release);
            }
            (TAG_CLOSED, BreakerState::Closed)
        } else {
            (
                encode(TAG_OPEN, now.saturating_add(self.break_ticks)),
                BreakerState::Open,
            )
        };
        self.state
            .compare_exchange(word, next, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        self.log_transition(BreakerState::HalfOpen, to);
        Some(Transition {
            from: BreakerState::HalfOpen,
            to,
        })
    }

    fn record_allowed(&self, success: bool, now: u64) -> Option<Transition> {
        if self.state.load(Ordering::Acquire) != TAG_CLOSED {
            return None;
        }
        let epoch = now / self.bucket_ticks;
        if success {
            self.count(epoch, CALL);
            // SeqCst here, on the failure's mark (set before its count), on the counts and on
            // the sums' loads: of a success and a failure racing, one always sees the other,
            // so a window that must open the breaker is summed by at least one of them.
            let last = self.last_failure.load(Ordering::SeqCst);
            if last == 0 || epoch >= (last - 1).saturating_add(BUCKETS as u64) {
                return None;
            }
        } else {
            self.last_failure
                .fetch_max(epoch.saturating_add(1), Ordering::SeqCst);
            self.count(epoch, CALL | FAILURE);
        }

        let (calls, failures) = self.totals(epoch);
        if calls < u64::from(self.config.min_calls)
            || (failures as f64) < self.config.failure_ratio * calls as f64
        {
            return None;
        }
        let open = encode(TAG_OPEN, now.saturating_add(self.break_ticks));
        self.state
            .compare_exchange(TAG_CLOSED, open, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        self.log_transition(BreakerState::Closed, BreakerState::Open);
        Some(Transition {
            from: BreakerState::Closed,
            to: BreakerState::Open,
        })
    }

    /// Adds `delta` to the bucket of `epoch`, claiming and zeroing the bucket first if it still
    /// holds an older epoch.
    fn count(&self, epoch: u64, delta: u64) {
        let bucket = &self.buckets[(epoch % BUCKETS as u64) as usize];
        let mut seen = bucket.epoch.load(Ordering::Acquire);
        loop {
            if seen == epoch {
                bucket.counts.fetch_add(delta, Ordering::SeqCst);
                return;
            }
            // Another thread is zeroing this bucket, or this result was timed before the
            // bucket moved on. Dropping one sample is cheaper than waiting, and the window
            // holds enough others for the ratio.
            if seen == RESETTING || seen > epoch {
                return;
            }
            match bucket.epoch.compare_exchange(
                seen,
                RESETTING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    bucket.counts.store(delta, Ordering::SeqCst);
                    bucket.epoch.store(epoch, Ordering::SeqCst);
                    return;
                }
                Err(current) => seen = current,
            }
        }
    }

    /// Calls and failures in the buckets that belong to the window ending at `epoch`.
    fn totals(&self, epoch: u64) -> (u64, u64) {
        let (mut calls, mut failures) = (0, 0);
        for bucket in &self.buckets {
            let bucket_epoch = bucket.epoch.load(Ordering::SeqCst);
            if bucket_epoch == RESETTING
                || bucket_epoch > epoch
                || epoch - bucket_epoch >= BUCKETS as u64
            {
                continue;
            }
            let counts = bucket.counts.load(Ordering::SeqCst);
            calls += counts >> 32;
            failures += counts & u64::from(u32::MAX);
        }
        (calls, failures)
    }

    fn ticks(&self, now: Instant) -> u64 {
        duration_ticks(now.saturating_duration_since(self.base))
    }

    fn label(&self) -> String {
        if self.name.is_empty() {
            "circuit breaker".to_owned()
        } else {
            format!("circuit breaker for {}", self.name)
        }
    }

    fn log_transition(&self, from: BreakerState, to: BreakerState) {
        log::warn!("{}: {from} -> {to}", self.label());
    }
}

fn encode(tag: u64, ticks: u64) -> u64 {
    (ticks.min(MAX_TICKS) << TAG_BITS) | tag
}

fn decode(word: u64) -> (BreakerState, u64) {
    let state = match word & TAG_MASK {
        TAG_CLOSED => BreakerState::Closed,
        TAG_OPEN => BreakerState::Open,
        _ => BreakerState::HalfOpen,
    };
    (state, word >> TAG_BITS)
}

/// One [`CircuitBreaker`] per host key, created on first use and shared by every thread.
///
/// Callers are expected to keep the returned `Arc` (per thread and host), so
/// [`get`](Self::get) is off the request path.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use http_sentinel::{BreakerConfig, breaker::BreakerState, breaker::Breakers};
///
/// let breakers = Breakers::new(BreakerConfig::new());
/// let a = breakers.get("example.com:443");
/// assert!(Arc::ptr_eq(&a, &breakers.get("example.com:443")));
/// assert_eq!(
///     breakers.states(),
///     vec![("example.com:443".to_owned(), BreakerState::Closed)]
/// );
/// ```
#[derive(Debug)]
pub struct Breakers {
    config: BreakerConfig,
    map: RwLock<HashMap<String, Arc<CircuitBreaker>>>,
}

impl Breakers {
    /// An empty registry whose breakers all use `config`.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, breaker::Breakers};
    ///
    /// let breakers = Breakers::new(BreakerConfig::disabled());
    /// assert!(breakers.states().is_empty());
    /// ```
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The configuration every breaker of this registry is built with.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, breaker::Breakers};
    ///
    /// let breakers = Breakers::new(BreakerConfig::new().with_min_calls(7));
    /// assert_eq!(breakers.config().min_calls(), 7);
    /// ```
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The breaker of `host` (a key such as `"example.com:443"`), created and named after the
    /// host on first use.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, breaker::Breakers};
    ///
    /// let breakers = Breakers::new(BreakerConfig::new());
    /// assert_eq!(breakers.get("example.com:443").name(), "example.com:443");
    /// ```
    pub fn get(&self, host: &str) -> Arc<CircuitBreaker> {
        // The map only ever gains complete entries, so a panic elsewhere while a guard was held
        // cannot have left it inconsistent: poisoning is ignored.
        if let Some(breaker) = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host)
        {
            return Arc::clone(breaker);
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            map.entry(host.to_owned())
                .or_insert_with(|| Arc::new(CircuitBreaker::named(self.config.clone(), host))),
        )
    }

    /// Every known host with its breaker's [`state`](CircuitBreaker::state), sorted by host.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, breaker::BreakerState, breaker::Breakers};
    ///
    /// let breakers = Breakers::new(BreakerConfig::new().with_min_calls(1));
    /// breakers.get("b.example:443");
    /// let a = breakers.get("a.example:443");
    /// a.record(a.admit(), false);
    /// assert_eq!(
    ///     breakers.states(),
    ///     vec![
    ///         ("a.example:443".to_owned(), BreakerState::Open),
    ///         ("b.example:443".to_owned(), BreakerState::Closed),
    ///     ]
    /// );
    /// ```
    pub fn states(&self) -> Vec<(String, BreakerState)> {
        let mut states: Vec<_> = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(host, breaker)| (host.clone(), breaker.state()))
            .collect();
        states.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        states
    }
}

// ---------------------------------------------------------------------------------------------
// What counts as a failure
// ---------------------------------------------------------------------------------------------

/// The outcome of one attempt, as a breaker's failure predicate sees it.
#[derive(Debug, Clone, Copy)]
pub enum AttemptOutcome<'a> {
    /// The server answered with this status.
    Status(StatusCode),
    /// The attempt failed.
    Error(&'a Error),
}

/// Decides whether an attempt counts as a failure for the host's circuit breaker.
pub type FailurePredicate = fn(AttemptOutcome<'_>) -> bool;

/// The default [`FailurePredicate`]: connect errors, timeouts (other than the caller's own
/// deadline running out), broken connections and 5xx statuses count as failures; 4xx and
/// client-side errors (invalid request, body too large, TLS certificate) do not.
pub fn default_breaker_failure(outcome: AttemptOutcome<'_>) -> bool {
    match outcome {
        AttemptOutcome::Status(s) => s.is_server_error(),
        AttemptOutcome::Error(e) => matches!(
            e.kind(),
            ErrorKind::Connect(_)
                | ErrorKind::Io { .. }
                | ErrorKind::Protocol
                | ErrorKind::Timeout(
                    TimeoutPhase::Connect | TimeoutPhase::Send | TimeoutPhase::Response
                )
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::thread;

    const SECOND: Duration = Duration::from_secs(1);

    /// A breaker with min 10 calls, ratio 0.5, 10 s window and 5 s break, plus the fake clock's
    /// zero. The clock starts after the breaker so every offset maps to an exact tick count
    /// relative to it (the few microseconds between them never cross a bucket boundary).
    fn breaker() -> (CircuitBreaker, Instant) {
        let breaker = CircuitBreaker::named(BreakerConfig::new(), "test:443");
        (breaker, Instant::now())
    }

    fn call(breaker: &CircuitBreaker, success: bool, now: Instant) -> Option<Transition> {
        let admission = breaker.admit_at(now);
        assert_eq!(admission, Admission::Allowed);
        breaker.record_at(admission, success, now)
    }

    fn trip(breaker: &CircuitBreaker, now: Instant) {
        for _ in 0..9 {
            assert_eq!(call(breaker, false, now), None);
        }
        assert_eq!(
            call(breaker, false, now),
            Some(Transition {
                from: BreakerState::Closed,
                to: BreakerState::Open
            })
        );
    }

    #[test]
    fn defaults() {
        let config = BreakerConfig::default();
        assert!(config.is_enabled());
        assert_eq!(config.failure_ratio(), 0.5);
        assert_eq!(config.min_calls(), 10);
        assert_eq!(config.window(), 10 * SECOND);
        assert_eq!(config.break_duration(), 5 * SECOND);
    }

    #[test]
    #[should_panic(expected = "failure_ratio")]
    fn zero_ratio_panics() {
        let _ = BreakerConfig::new().with_failure_ratio(0.0);
    }

    #[test]
    #[should_panic(expected = "failure_ratio")]
    fn ratio_above_one_panics() {
        let _ = BreakerConfig::new().with_failure_ratio(1.01);
    }

    #[test]
    #[should_panic(expected = "failure_ratio")]
    fn nan_ratio_panics() {
        let _ = BreakerConfig::new().with_failure_ratio(f64::NAN);
    }

    #[test]
    #[should_panic(expected = "window")]
    fn zero_window_panics() {
        let _ = BreakerConfig::new().with_window(Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "break_duration")]
    fn zero_break_panics() {
        let _ = BreakerConfig::new().with_break_duration(Duration::ZERO);
    }

    #[test]
    fn state_display() {
        assert_eq!(BreakerState::Closed.to_string(), "closed");
        assert_eq!(BreakerState::Open.to_string(), "open");
        assert_eq!(BreakerState::HalfOpen.to_string(), "half-open");
    }

    #[test]
    fn stays_closed_below_min_calls() {
        let (b, t0) = breaker();
        for i in 0..9 {
            assert_eq!(call(&b, false, t0 + i * SECOND / 2), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit_at(t0 + 5 * SECOND), Admission::Allowed);
    }

    #[test]
    fn trips_at_exact_threshold() {
        let (b, t0) = breaker();
        for _ in 0..5 {
            assert_eq!(call(&b, true, t0), None);
        }
        for _ in 0..4 {
            assert_eq!(call(&b, false, t0), None);
        }
        assert_eq!(
            call(&b, false, t0),
            Some(Transition {
                from: BreakerState::Closed,
                to: BreakerState::Open
            })
        );
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn below_ratio_stays_closed() {
        let (b, t0) = breaker();
        for _ in 0..6 {
            assert_eq!(call(&b, true, t0), None);
        }
        for _ in 0..4 {
            assert_eq!(call(&b, false, t0), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn success_crossing_min_calls_trips() {
        let (b, t0) = breaker();
        for _ in 0..9 {
            assert_eq!(call(&b, false, t0), None);
        }
        let transition = call(&b, true, t0).expect("tenth call trips");
        assert_eq!(transition.from(), BreakerState::Closed);
        assert_eq!(transition.to(), BreakerState::Open);
    }

    #[test]
    fn a_success_sums_the_window_while_a_failure_is_in_it_and_only_then() {
        // Failures in second 0, the success that reaches min_calls in second 9: still in the
        // window, so the success trips the breaker.
        let (b, t0) = breaker();
        for _ in 0..9 {
            assert_eq!(call(&b, false, t0), None);
        }
        assert!(call(&b, true, t0 + 9 * SECOND).is_some());
        // The same success in second 10: the failures have left the window.
        let (b, t0) = breaker();
        for _ in 0..9 {
            assert_eq!(call(&b, false, t0), None);
        }
        assert_eq!(call(&b, true, t0 + 10 * SECOND), None);
        assert_eq!(b.state(), BreakerState::Closed);
        // A failure counted after many successes is summed with them.
        let (b, t0) = breaker();
        for _ in 0..5 {
            assert_eq!(call(&b, true, t0 + 10 * SECOND), None);
        }
        for _ in 0..4 {
            assert_eq!(call(&b, false, t0 + 11 * SECOND), None);
        }
        assert!(call(&b, false, t0 + 12 * SECOND).is_some());
    }

    #[test]
    fn open_rejects_with_exact_remaining_time() {
        let (b, t0) = breaker();
        let tripped = t0 + 2 * SECOND;
        trip(&b, tripped);
        assert_eq!(
            b.admit_at(tripped),
            Admission::Rejected {
                retry_in: 5 * SECOND
            }
        );
        assert_eq!(
            b.admit_at(tripped + Duration::from_millis(1500)),
            Admission::Rejected {
                retry_in: Duration::from_millis(3500)
            }
        );
        assert_eq!(
            b.admit_at(tripped + 5 * SECOND - Duration::from_nanos(1)),
            Admission::Rejected {
                retry_in: Duration::from_nanos(1)
            }
        );
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn single_probe_after_break() {
        let (b, t0) = breaker();
        trip(&b, t0);
        let probe_at = t0 + 5 * SECOND;
        assert_eq!(b.admit_at(probe_at), Admission::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(
            b.admit_at(probe_at),
            Admission::Rejected {
                retry_in: 5 * SECOND
            }
        );
        assert_eq!(
            b.admit_at(probe_at + SECOND),
            Admission::Rejected {
                retry_in: 4 * SECOND
            }
        );
    }

    #[test]
    fn probe_success_closes_with_fresh_counters() {
        let (b, t0) = breaker();
        trip(&b, t0);
        let probe_at = t0 + 5 * SECOND;
        assert_eq!(b.admit_at(probe_at), Admission::Probe);
        assert_eq!(
            b.record_at(Admission::Probe, true, probe_at),
            Some(Transition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Closed
            })
        );
        assert_eq!(b.state(), BreakerState::Closed);
        // The ten failures that tripped it are still inside the window but no longer count:
        // nine more failures stay below min_calls.
        for _ in 0..9 {
            assert_eq!(call(&b, false, probe_at), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(call(&b, false, probe_at).is_some());
    }

    #[test]
    fn probe_failure_reopens_for_a_new_break() {
        let (b, t0) = breaker();
        trip(&b, t0);
        let probe_at = t0 + 6 * SECOND;
        assert_eq!(b.admit_at(probe_at), Admission::Probe);
        let failed_at = probe_at + SECOND;
        assert_eq!(
            b.record_at(Admission::Probe, false, failed_at),
            Some(Transition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Open
            })
        );
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            b.admit_at(failed_at),
            Admission::Rejected {
                retry_in: 5 * SECOND
            }
        );
        assert_eq!(b.admit_at(failed_at + 5 * SECOND), Admission::Probe);
    }

    #[test]
    fn lost_probe_is_replaced_after_its_lease() {
        let (b, t0) = breaker();
        trip(&b, t0);
        let first = t0 + 5 * SECOND;
        assert_eq!(b.admit_at(first), Admission::Probe);
        assert_eq!(b.admit_at(first + 10 * SECOND), Admission::Probe);
        assert_eq!(
            b.admit_at(first + 10 * SECOND),
            Admission::Rejected {
                retry_in: 5 * SECOND
            }
        );
        // Either probe may settle it; the other one's late result is then ignored.
        assert!(b
            .record_at(Admission::Probe, true, first + 11 * SECOND)
            .is_some());
        assert_eq!(
            b.record_at(Admission::Probe, false, first + 12 * SECOND),
            None
        );
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_probe_lease_longer_than_the_break_keeps_a_slow_probe_alone() {
        let b = CircuitBreaker::new(BreakerConfig::new().with_probe_lease(30 * SECOND));
        let t0 = Instant::now();
        trip(&b, t0);
        let first = t0 + 5 * SECOND;
        assert_eq!(b.admit_at(first), Admission::Probe);
        // Past the break duration, within the lease: the probe is still out.
        assert_eq!(
            b.admit_at(first + 29 * SECOND),
            Admission::Rejected { retry_in: SECOND }
        );
        assert_eq!(b.admit_at(first + 30 * SECOND), Admission::Probe);
    }

    #[test]
    fn failures_older_than_the_window_expire() {
        let (b, t0) = breaker();
        // Nine failures at t0, then nothing until the window has passed.
        for _ in 0..9 {
            assert_eq!(call(&b, false, t0), None);
        }
        let later = t0 + 10 * SECOND;
        assert_eq!(call(&b, false, later), None);
        assert_eq!(b.state(), BreakerState::Closed);
        for _ in 0..8 {
            assert_eq!(call(&b, false, later), None);
        }
        assert!(call(&b, false, later).is_some());
    }

    #[test]
    fn window_slides_bucket_by_bucket() {
        let (b, t0) = breaker();
        // One failure every second: at most ten one-second buckets count at any time.
        for i in 0..9 {
            assert_eq!(call(&b, false, t0 + i * SECOND), None);
        }
        // Second 9 completes the window; the tenth failure trips it.
        assert!(call(&b, false, t0 + 9 * SECOND).is_some());

        let (b, t0) = breaker();
        for i in 0..9 {
            assert_eq!(call(&b, false, t0 + i * SECOND), None);
        }
        // At second 10 the failure of second 0 has left the window.
        assert_eq!(call(&b, false, t0 + 10 * SECOND), None);
        assert!(call(&b, false, t0 + 10 * SECOND).is_some());
    }

    #[test]
    fn successes_dilute_failures_within_window() {
        let (b, t0) = breaker();
        for i in 0..20 {
            let at = t0 + i * SECOND / 4;
            assert_eq!(call(&b, i % 3 != 0, at), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn in_flight_results_after_trip_change_nothing() {
        let (b, t0) = breaker();
        let in_flight: Vec<Admission> = (0..5).map(|_| b.admit_at(t0)).collect();
        trip(&b, t0);
        for admission in &in_flight {
            assert_eq!(b.record_at(*admission, true, t0 + SECOND), None);
            assert_eq!(b.record_at(*admission, false, t0 + SECOND), None);
        }
        assert_eq!(b.state(), BreakerState::Open);

        // Nor while half-open: only the probe decides.
        let probe_at = t0 + 5 * SECOND;
        assert_eq!(b.admit_at(probe_at), Admission::Probe);
        for admission in &in_flight {
            assert_eq!(b.record_at(*admission, true, probe_at), None);
            assert_eq!(b.record_at(*admission, false, probe_at), None);
        }
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(
            b.admit_at(probe_at),
            Admission::Rejected {
                retry_in: 5 * SECOND
            }
        );
    }

    #[test]
    fn rejected_results_are_ignored() {
        let (b, t0) = breaker();
        trip(&b, t0);
        let rejected = b.admit_at(t0);
        assert!(matches!(rejected, Admission::Rejected { .. }));
        assert_eq!(b.record_at(rejected, true, t0), None);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn disabled_never_rejects() {
        let b = CircuitBreaker::new(BreakerConfig::disabled().with_min_calls(1));
        let t0 = Instant::now();
        for i in 0..1000 {
            let at = t0 + i * Duration::from_millis(7);
            let admission = b.admit_at(at);
            assert_eq!(admission, Admission::Allowed);
            assert_eq!(b.record_at(admission, false, at), None);
            assert_eq!(b.record_at(Admission::Probe, false, at), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn only_the_admission_that_takes_the_probe_reports_open_to_half_open() {
        let (b, t0) = breaker();
        assert_eq!(b.admit_reporting_at(t0), (Admission::Allowed, None));
        trip(&b, t0);
        let during = b.admit_reporting_at(t0 + SECOND);
        assert_eq!(during.1, None, "rejected while open: no transition");
        let probe_at = t0 + 5 * SECOND;
        let half_open = Transition {
            from: BreakerState::Open,
            to: BreakerState::HalfOpen,
        };
        assert_eq!(
            b.admit_reporting_at(probe_at),
            (Admission::Probe, Some(half_open))
        );
        assert_eq!(b.admit_reporting_at(probe_at).1, None);
        // A lost probe's replacement stays half-open: no transition to report.
        let (admission, t) = b.admit_reporting_at(probe_at + 5 * SECOND);
        assert_eq!((admission, t), (Admission::Probe, None));
    }

    #[test]
    fn concurrent_admit_yields_exactly_one_probe() {
        const THREADS: usize = 16;
        for _ in 0..200 {
            let (b, t0) = breaker();
            trip(&b, t0);
            let now = t0 + 5 * SECOND;
            let barrier = Barrier::new(THREADS);
            let admissions: Vec<Admission> = thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            b.admit_at(now)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let probes = admissions
                .iter()
                .filter(|a| **a == Admission::Probe)
                .count();
            assert_eq!(probes, 1, "{admissions:?}");
            assert!(admissions.iter().all(|a| match a {
                Admission::Probe => true,
                Admission::Rejected { retry_in } => *retry_in == 5 * SECOND,
                Admission::Allowed => false,
            }));
            assert_eq!(b.state(), BreakerState::HalfOpen);
        }
    }

    #[test]
    fn concurrent_records_yield_one_transition() {
        const THREADS: usize = 16;
        for _ in 0..200 {
            let (b, t0) = breaker();
            // Every thread was admitted while closed; all fail at once, then report again
            // (as a retry of a call still in flight would).
            let barrier = Barrier::new(THREADS);
            let transitions: Vec<Option<Transition>> = thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|_| {
                        s.spawn(|| {
                            let admission = b.admit_at(t0);
                            assert_eq!(admission, Admission::Allowed);
                            barrier.wait();
                            let first = b.record_at(admission, false, t0);
                            barrier.wait();
                            let late = b.record_at(admission, true, t0 + SECOND);
                            assert_eq!(late, None);
                            first
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let opened: Vec<_> = transitions.iter().flatten().collect();
            assert_eq!(
                opened,
                [&Transition {
                    from: BreakerState::Closed,
                    to: BreakerState::Open
                }]
            );
            assert_eq!(b.state(), BreakerState::Open);
        }
    }

    #[test]
    fn registry_shares_and_sorts() {
        let breakers = Breakers::new(BreakerConfig::new().with_min_calls(1));
        let hosts = ["c.example:443", "a.example:80", "b.example:443"];
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for host in hosts {
                        assert_eq!(breakers.get(host).name(), host);
                    }
                });
            }
        });
        let a = breakers.get("a.example:80");
        assert!(Arc::ptr_eq(&a, &breakers.get("a.example:80")));
        a.record(Admission::Allowed, false);
        assert_eq!(
            breakers.states(),
            vec![
                ("a.example:80".to_owned(), BreakerState::Open),
                ("b.example:443".to_owned(), BreakerState::Closed),
                ("c.example:443".to_owned(), BreakerState::Closed),
            ]
        );
    }

    #[test]
    fn types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CircuitBreaker>();
        assert_send_sync::<Breakers>();
        assert_send_sync::<BreakerConfig>();
    }
}
