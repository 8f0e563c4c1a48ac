//! Retrying failed calls: when, how often, how long to wait, and how many
//! retries the whole process may spend.
//!
//! [`RetryPolicy`] describes the rules, [`Backoff`] yields the delays,
//! [`RetryEngine`] runs any fallible operation under a policy,
//! [`RetryBudget`] caps retries across threads so that a struggling server is
//! not buried under them, and [`parse_retry_after`] reads a server's
//! `Retry-After` header.

use std::collections::hash_map::RandomState;
use std::error::Error;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// How a backoff delay is randomised.
///
/// Clients that failed at the same moment would otherwise retry in lockstep
/// and hit a recovering server all at once.
///
/// # Examples
///
/// ```
/// use http_sentinel::{Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::new().with_jitter(Jitter::Equal);
/// assert_eq!(policy.jitter(), Jitter::Equal);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The exponential delay `d` as is.
    None,
    /// Uniform in `[0, d]`.
    Full,
    /// `d / 2` plus uniform in `[0, d / 2]`: never less than half of `d`.
    Equal,
    /// AWS-style decorrelated jitter: uniform in `[base, 3 × previous delay]`,
    /// capped at the maximum delay. It ignores the multiplier, and a zero base
    /// delay keeps every delay at zero.
    Decorrelated,
}

/// splitmix64: jitter needs spread, not cryptographic strength, and this
/// keeps the crate free of a random-number dependency.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, from the top 53 bits so every value is exact.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Converts a float nanosecond count, saturating instead of panicking the way
/// `Duration::from_secs_f64` does on NaN, infinity or negative input.
fn duration_from_nanos(nanos: f64) -> Duration {
    // `as` saturates: NaN and negatives become 0, huge values u128::MAX.
    let nanos = nanos as u128;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % NANOS_PER_SEC) as u32)
}

/// `d × fraction` for a fraction in `[0, 1)`, never above `d` even where the
/// float conversion rounds up.
fn fraction_of(d: Duration, fraction: f64) -> Duration {
    duration_from_nanos(d.as_nanos() as f64 * fraction).min(d)
}

/// The delays before retry 1, 2, 3, … of one call.
///
/// The iterator never ends: the number of attempts is the caller's to bound.
/// Made by [`RetryPolicy::backoff`].
///
/// # Examples
///
/// ```
/// use http_sentinel::{Jitter, RetryPolicy};
/// use std::time::Duration;
///
/// let delays: Vec<Duration> = RetryPolicy::new().with_jitter(Jitter::None).backoff().take(3).collect();
/// assert_eq!(delays, [100, 200, 400].map(Duration::from_millis));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    multiplier: f64,
    max_delay: Duration,
    jitter: Jitter,
    retries: u32,
    previous: Duration,
    rng: SplitMix64,
}

impl Backoff {
    /// Replaces the random seed, so that the jittered delays are reproducible.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new();
    /// let a: Vec<_> = policy.backoff().with_seed(7).take(5).collect();
    /// let b: Vec<_> = policy.backoff().with_seed(7).take(5).collect();
    /// assert_eq!(a, b);
    /// ```
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = SplitMix64(seed);
        self
    }

    /// `base × multiplier^retries`, capped at `max_delay`. Computed in float
    /// nanoseconds so that huge exponents saturate instead of overflowing;
    /// powers of two stay exact.
    fn exponential(&self) -> Duration {
        let exponent = i32::try_from(self.retries).unwrap_or(i32::MAX);
        // Clamping the infinite power keeps a zero base at zero, not NaN.
        let factor = self.multiplier.powi(exponent).min(f64::MAX);
        let nanos = self.base.as_nanos() as f64 * factor;
        if nanos >= self.max_delay.as_nanos() as f64 {
            self.max_delay
        } else {
            duration_from_nanos(nanos)
        }
    }

    fn next_delay(&mut self) -> Duration {
        let exponential = self.exponential();
        self.retries = self.retries.saturating_add(1);
        match self.jitter {
            Jitter::None => exponential,
            Jitter::Full => fraction_of(exponential, self.rng.next_unit()),
            Jitter::Equal => {
                let half = exponential / 2;
                half + fraction_of(exponential - half, self.rng.next_unit())
            }
            Jitter::Decorrelated => {
                let upper = self.previous.saturating_mul(3).max(self.base);
                let spread = fraction_of(upper - self.base, self.rng.next_unit());
                self.previous = (self.base + spread).min(self.max_delay);
                self.previous
            }
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

/// A set of status codes below 640 as a bitmap, so that a policy is cheap to
/// clone and its defaults can be built in a `const fn`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct StatusSet([u64; 10]);

impl StatusSet {
    const EMPTY: Self = Self([0; 10]);

    const fn with(mut self, status: u16) -> Self {
        self.0[(status / 64) as usize] |= 1 << (status % 64);
        self
    }

    const fn contains(&self, status: u16) -> bool {
        status < 640 && self.0[(status / 64) as usize] & (1 << (status % 64)) != 0
    }

    fn iter(self) -> impl Iterator<Item = u16> {
        (100..600).filter(move |&status| self.contains(status))
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

const fn assert_budget_ratio(ratio: f64) {
    assert!(
        ratio >= 0.0 && ratio <= 10.0,
        "retry budget ratio must be within [0, 10]"
    );
}

const fn assert_budget_window(window: Duration) {
    assert!(!window.is_zero(), "retry budget window must not be zero");
}

/// When and how a failed call is retried.
///
/// # Examples
///
/// ```
/// use http_sentinel::{Jitter, RetryPolicy};
/// use std::time::Duration;
///
/// let policy = RetryPolicy::new()
///     .with_max_attempts(5)
///     .with_base_delay(Duration::from_millis(50))
///     .with_jitter(Jitter::Equal)
///     .with_retry_statuses([429, 503]);
/// assert!(policy.is_retryable_status(503));
/// assert!(!policy.is_retryable_status(500));
/// ```
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    multiplier: f64,
    max_delay: Duration,
    jitter: Jitter,
    retry_statuses: StatusSet,
    retry_non_idempotent: bool,
    max_retry_after: Duration,
    budget_ratio: f64,
    budget_min_per_sec: u32,
    budget_window: Duration,
}

impl RetryPolicy {
    /// The default policy: 3 attempts, exponential backoff from 100 ms with
    /// full jitter, retrying 429, 500, 502, 503 and 504 on replayable requests.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// const POLICY: RetryPolicy = RetryPolicy::new();
    /// assert_eq!(POLICY.max_attempts(), 3);
    /// ```
    pub const fn new() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            multiplier: 2.0,
            max_delay: Duration::from_secs(10),
            jitter: Jitter::Full,
            retry_statuses: StatusSet::EMPTY
                .with(429)
                .with(500)
                .with(502)
                .with(503)
                .with(504),
            retry_non_idempotent: false,
            max_retry_after: Duration::from_secs(60),
            budget_ratio: 0.2,
            budget_min_per_sec: 10,
            budget_window: Duration::from_secs(10),
        }
    }

    /// A policy that never retries: a single attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::none().max_attempts(), 1);
    /// ```
    pub const fn none() -> Self {
        Self::new().with_max_attempts(1)
    }

    /// Sets the total number of attempts, the first one included.
    /// Defaults to 3.
    ///
    /// # Panics
    ///
    /// Panics if `attempts` is 0: a call needs at least one attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().with_max_attempts(5).max_attempts(), 5);
    /// ```
    #[must_use]
    pub const fn with_max_attempts(mut self, attempts: u32) -> Self {
        assert!(attempts > 0, "max_attempts must be at least 1");
        self.max_attempts = attempts;
        self
    }

    /// Sets the delay before the first retry, which later retries multiply.
    /// Defaults to 100 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::new().with_base_delay(Duration::from_millis(250));
    /// assert_eq!(policy.base_delay(), Duration::from_millis(250));
    /// ```
    #[must_use]
    pub const fn with_base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Sets the factor between one backoff delay and the next.
    /// Defaults to 2.0.
    ///
    /// # Panics
    ///
    /// Panics if `multiplier` is below 1.0 or not finite: delays must not
    /// shrink.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().with_multiplier(3.0).multiplier(), 3.0);
    /// ```
    #[must_use]
    pub const fn with_multiplier(mut self, multiplier: f64) -> Self {
        assert!(
            multiplier.is_finite() && multiplier >= 1.0,
            "multiplier must be finite and at least 1.0"
        );
        self.multiplier = multiplier;
        self
    }

    /// Sets the cap on a single backoff delay. Defaults to 10 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::new().with_max_delay(Duration::from_secs(2));
    /// assert_eq!(policy.max_delay(), Duration::from_secs(2));
    /// ```
    #[must_use]
    pub const fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets how backoff delays are randomised. Defaults to [`Jitter::Full`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{Jitter, RetryPolicy};
    ///
    /// assert_eq!(RetryPolicy::new().with_jitter(Jitter::None).jitter(), Jitter::None);
    /// ```
    #[must_use]
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Replaces the response statuses that are retried.
    /// Defaults to 429, 500, 502, 503 and 504.
    ///
    /// # Panics
    ///
    /// Panics on a status outside 100..=599, and on a status that is never
    /// retried because the same request would fail the same way again: any
    /// 4xx other than 408 (Request Timeout) and 429 (Too Many Requests), and
    /// 501 (Not Implemented).
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new().with_retry_statuses([408, 503]);
    /// assert_eq!(policy.retry_statuses().collect::<Vec<_>>(), [408, 503]);
    /// ```
    #[must_use]
    pub fn with_retry_statuses(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        let mut set = StatusSet::EMPTY;
        for status in statuses {
            assert!(
                (100..=599).contains(&status),
                "{status} is not an HTTP status code"
            );
            let client_error = (400..500).contains(&status) && status != 408 && status != 429;
            assert!(
                !client_error && status != 501,
                "status {status} is never retried: the request would fail the same way again"
            );
            set = set.with(status);
        }
        self.retry_statuses = set;
        self
    }

    /// Sets whether requests with non-idempotent methods (POST, PATCH, …)
    /// may be retried even without an `Idempotency-Key`. Defaults to false,
    /// since replaying them can apply a change twice.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new().with_retry_non_idempotent(true);
    /// assert!(policy.retry_non_idempotent());
    /// assert!(policy.is_replayable("POST", false));
    /// ```
    #[must_use]
    pub const fn with_retry_non_idempotent(mut self, allow: bool) -> Self {
        self.retry_non_idempotent = allow;
        self
    }

    /// Sets the longest `Retry-After` wait that is honoured; a server asking
    /// for longer makes the call fail at once, reporting the requested wait.
    /// Defaults to 60 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::new().with_max_retry_after(Duration::from_secs(5));
    /// assert_eq!(policy.max_retry_after(), Duration::from_secs(5));
    /// ```
    #[must_use]
    pub const fn with_max_retry_after(mut self, limit: Duration) -> Self {
        self.max_retry_after = limit;
        self
    }

    /// Sets the retries a [`RetryBudget`] allows as a fraction of the requests
    /// in its window. Defaults to 0.2.
    ///
    /// # Panics
    ///
    /// Panics if `ratio` is outside `[0, 10]` or not a number.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().with_budget_ratio(0.1).budget_ratio(), 0.1);
    /// ```
    #[must_use]
    pub const fn with_budget_ratio(mut self, ratio: f64) -> Self {
        assert_budget_ratio(ratio);
        self.budget_ratio = ratio;
        self
    }

    /// Sets the retries per second a [`RetryBudget`] allows whatever the
    /// traffic, so that a quiet client can still retry. Defaults to 10.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().with_budget_min_per_sec(2).budget_min_per_sec(), 2);
    /// ```
    #[must_use]
    pub const fn with_budget_min_per_sec(mut self, retries: u32) -> Self {
        self.budget_min_per_sec = retries;
        self
    }

    /// Sets how far back a [`RetryBudget`] counts requests and retries.
    /// Defaults to 10 s.
    ///
    /// # Panics
    ///
    /// Panics if `window` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::new().with_budget_window(Duration::from_secs(30));
    /// assert_eq!(policy.budget_window(), Duration::from_secs(30));
    /// ```
    #[must_use]
    pub const fn with_budget_window(mut self, window: Duration) -> Self {
        assert_budget_window(window);
        self.budget_window = window;
        self
    }

    /// The total number of attempts, the first one included.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().max_attempts(), 3);
    /// ```
    pub const fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before the first retry.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// assert_eq!(RetryPolicy::new().base_delay(), Duration::from_millis(100));
    /// ```
    pub const fn base_delay(&self) -> Duration {
        self.base_delay
    }

    /// The factor between one backoff delay and the next.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().multiplier(), 2.0);
    /// ```
    pub const fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The cap on a single backoff delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// assert_eq!(RetryPolicy::new().max_delay(), Duration::from_secs(10));
    /// ```
    pub const fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// How backoff delays are randomised.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{Jitter, RetryPolicy};
    ///
    /// assert_eq!(RetryPolicy::new().jitter(), Jitter::Full);
    /// ```
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The retried response statuses, in ascending order.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// let statuses: Vec<u16> = RetryPolicy::new().retry_statuses().collect();
    /// assert_eq!(statuses, [429, 500, 502, 503, 504]);
    /// ```
    pub fn retry_statuses(&self) -> impl Iterator<Item = u16> {
        self.retry_statuses.iter()
    }

    /// Whether non-idempotent requests may be retried without an
    /// `Idempotency-Key`.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// assert!(!RetryPolicy::new().retry_non_idempotent());
    /// ```
    pub const fn retry_non_idempotent(&self) -> bool {
        self.retry_non_idempotent
    }

    /// The longest `Retry-After` wait that is honoured.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// assert_eq!(RetryPolicy::new().max_retry_after(), Duration::from_secs(60));
    /// ```
    pub const fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// Retries allowed as a fraction of recent requests.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().budget_ratio(), 0.2);
    /// ```
    pub const fn budget_ratio(&self) -> f64 {
        self.budget_ratio
    }

    /// Retries per second allowed whatever the traffic.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new().budget_min_per_sec(), 10);
    /// ```
    pub const fn budget_min_per_sec(&self) -> u32 {
        self.budget_min_per_sec
    }

    /// How far back a retry budget counts.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// assert_eq!(RetryPolicy::new().budget_window(), Duration::from_secs(10));
    /// ```
    pub const fn budget_window(&self) -> Duration {
        self.budget_window
    }

    /// Whether a response with this status should be retried.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new();
    /// assert!(policy.is_retryable_status(503));
    /// assert!(!policy.is_retryable_status(404));
    /// ```
    pub const fn is_retryable_status(&self, status: u16) -> bool {
        self.retry_statuses.contains(status)
    }

    /// Whether a request may be sent again: its method is idempotent (GET,
    /// HEAD, PUT, DELETE, OPTIONS, TRACE; method names are case-sensitive),
    /// it carries an `Idempotency-Key`, or the policy allows retrying
    /// non-idempotent requests.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new();
    /// assert!(policy.is_replayable("PUT", false));
    /// assert!(!policy.is_replayable("POST", false));
    /// assert!(policy.is_replayable("POST", true));
    /// ```
    pub fn is_replayable(&self, method: &str, has_idempotency_key: bool) -> bool {
        matches!(
            method,
            "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
        ) || has_idempotency_key
            || self.retry_non_idempotent
    }

    /// Checks a server-requested wait against
    /// [`max_retry_after`](Self::max_retry_after): `Ok(wait)` when it is
    /// honoured.
    ///
    /// # Errors
    ///
    /// Returns `Err(server_wait)` when the wait is longer than the limit, so
    /// that the caller can report what the server asked for.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::new().with_max_retry_after(Duration::from_secs(30));
    /// assert_eq!(policy.retry_after_delay(Duration::from_secs(5)), Ok(Duration::from_secs(5)));
    /// assert_eq!(policy.retry_after_delay(Duration::from_secs(90)), Err(Duration::from_secs(90)));
    /// ```
    pub fn retry_after_delay(&self, server_wait: Duration) -> Result<Duration, Duration> {
        if server_wait <= self.max_retry_after {
            Ok(server_wait)
        } else {
            Err(server_wait)
        }
    }

    /// The backoff delays for one call, with a fresh random seed.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let first = RetryPolicy::new().backoff().next().unwrap();
    /// assert!(first <= Duration::from_millis(100));
    /// ```
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: self.base_delay,
            multiplier: self.multiplier,
            max_delay: self.max_delay,
            jitter: self.jitter,
            retries: 0,
            previous: self.base_delay,
            rng: SplitMix64(RandomState::new().hash_one(Instant::now())),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses a `Retry-After` header value (RFC 9110 §10.2.3) into the wait it
/// asks for, measured from `now`.
///
/// Accepts delta-seconds (ASCII digits; a value too large for `u64` saturates
/// to `u64::MAX` seconds, a wait no caller will honour) and all three
/// HTTP-date forms: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
/// As servers are not always strict, it also accepts a one-digit day or hour,
/// a two-digit year in any form, `UTC` for `GMT`, any letter case in names,
/// and a missing weekday; the weekday is not checked against the date. A
/// two-digit year more than 50 years after `now` is taken to be in the
/// previous century (RFC 9110 §5.6.7). Surrounding spaces and tabs are
/// ignored. A date already past gives [`Duration::ZERO`]; anything else
/// unparsable gives `None`.
///
/// # Examples
///
/// ```
/// use http_sentinel::parse_retry_after;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
///
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_000);
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
///     Some(Duration::from_secs(777))
/// );
/// assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim_matches([' ', '\t']);
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Only overflow can make all-digit input fail to parse.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let now_nanos = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => i128::try_from(since.as_nanos()).ok()?,
        Err(before) => -i128::try_from(before.duration().as_nanos()).ok()?,
    };
    let now_secs = i64::try_from(now_nanos.div_euclid(NANOS_PER_SEC as i128)).ok()?;
    let date_secs = parse_http_date(value, year_of_day(now_secs.div_euclid(86_400)))?;
    let wait =
        u128::try_from(i128::from(date_secs) * NANOS_PER_SEC as i128 - now_nanos).unwrap_or(0);
    Some(Duration::new(
        u64::try_from(wait / NANOS_PER_SEC).unwrap_or(u64::MAX),
        (wait % NANOS_PER_SEC) as u32,
    ))
}

/// Unix seconds of an HTTP-date; `current_year` resolves two-digit years.
fn parse_http_date(value: &str, current_year: i64) -> Option<i64> {
    let tokens: Vec<&str> = value.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
    let date = match tokens.split_first() {
        Some((first, rest)) if is_weekday(first.strip_suffix(',').unwrap_or(first)) => rest,
        _ => &tokens[..],
    };
    let (day, month, year, time) = match *date {
        [day, month, year, time, zone] if is_utc(zone) => (day, month, year, time),
        [day_month_year, time, zone] if is_utc(zone) => {
            let mut parts = day_month_year.split('-');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(day), Some(month), Some(year), None) => (day, month, year, time),
                _ => return None,
            }
        }
        [month, day, time, year] => (day, month, year, time),
        _ => return None,
    };
    let year = match year.len() {
        4 => i64::from(number(year, 4)?),
        2 => expand_two_digit_year(number(year, 2)?, current_year),
        _ => return None,
    };
    let month = month_number(month)?;
    let day = number(day, 2)?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut clock = time.split(':');
    let (hour, minute, second) = match (clock.next(), clock.next(), clock.next(), clock.next()) {
        (Some(h), Some(m), Some(s), None) => (number(h, 2)?, number(m, 2)?, number(s, 2)?),
        _ => return None,
    };
    // 60 allows a leap second, as HTTP-date's grammar does.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let seconds_of_day = i64::from(hour * 3600 + minute * 60 + second);
    Some(days_from_civil(year, month, day) * 86_400 + seconds_of_day)
}

/// An unsigned decimal of 1 to `max_digits` ASCII digits.
fn number(s: &str, max_digits: usize) -> Option<u32> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_weekday(name: &str) -> bool {
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    DAYS.iter()
        .any(|day| name.eq_ignore_ascii_case(day) || name.eq_ignore_ascii_case(&day[..3]))
}

fn is_utc(zone: &str) -> bool {
    zone.eq_ignore_ascii_case("GMT") || zone.eq_ignore_ascii_case("UTC")
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let index = MONTHS
        .iter()
        .position(|month| name.eq_ignore_ascii_case(month))?;
    u32::try_from(index + 1).ok()
}

/// RFC 9110 §5.6.7: the most recent year with these last two digits that is
/// not more than 50 years in the future.
fn expand_two_digit_year(two_digits: u32, current_year: i64) -> i64 {
    let year = current_year - current_year.rem_euclid(100) + i64::from(two_digits);
    if year > current_year + 50 {
        year - 100
    } else if year + 100 <= current_year + 50 {
        year + 100
    } else {
        year
    }
}

const fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

const fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`): the year is shifted to start in March so that the leap
/// day falls at its end.
const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month as i64 + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The year of a day counted from 1970-01-01 (the year part of Hinnant's
/// `civil_from_days`).
const fn year_of_day(days: i64) -> i64 {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    // January and February belong to the next calendar year.
    era * 400 + year_of_era + if month_from_march >= 10 { 1 } else { 0 }
}

const BUCKETS: usize = 10;
const COUNT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Budget arithmetic is done in millionths of a retry so that it is exact.
const MICROS: u128 = 1_000_000;

/// One time bucket. Each counter packs the bucket's epoch (low 32 bits of it)
/// above a 32-bit count, so that a stale bucket is reset and counted into by
/// one compare-and-swap, with no lock and no lost update. An epoch is only
/// ambiguous after 2^32 buckets untouched (136 years with 1 s buckets).
#[derive(Debug, Default)]
struct Slot {
    requests: AtomicU64,
    retries: AtomicU64,
}

const fn pack(epoch: u64, count: u64) -> u64 {
    (epoch << COUNT_BITS) | count
}

/// The count held in `word` if it belongs to `epoch`, else 0.
const fn count_at(word: u64, epoch: u64) -> u64 {
    if word >> COUNT_BITS == epoch & COUNT_MASK {
        word & COUNT_MASK
    } else {
        0
    }
}

/// A cap on retries shared by many threads, so that retries cannot multiply
/// the load on a server that is already failing.
///
/// A retry is allowed while the retries in the recent window stay below
/// `min_per_sec × window + ratio × requests in the window`. The window slides
/// in ten buckets, so a request counts for between nine and ten tenths of the
/// window. Lock-free: only atomics are touched.
///
/// # Examples
///
/// ```
/// use http_sentinel::RetryBudget;
/// use std::time::Duration;
///
/// let budget = RetryBudget::new(0.5, 0, Duration::from_secs(10));
/// budget.record_request();
/// budget.record_request();
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw());
/// ```
#[derive(Debug)]
pub struct RetryBudget {
    origin: Instant,
    bucket_nanos: u128,
    ratio_micros: u128,
    floor_micros: u128,
    slots: [Slot; BUCKETS],
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per request plus `min_per_sec`
    /// retries per second, over the last `window`.
    ///
    /// The ratio is kept to six decimal places.
    ///
    /// # Panics
    ///
    /// Panics if `ratio` is outside `[0, 10]` or not a number, or if `window`
    /// is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryBudget;
    /// use std::time::Duration;
    ///
    /// let budget = RetryBudget::new(0.0, 1, Duration::from_secs(2));
    /// assert!(budget.try_withdraw());
    /// assert!(budget.try_withdraw());
    /// assert!(!budget.try_withdraw());
    /// ```
    pub fn new(ratio: f64, min_per_sec: u32, window: Duration) -> Self {
        assert_budget_ratio(ratio);
        assert_budget_window(window);
        Self {
            origin: Instant::now(),
            bucket_nanos: (window.as_nanos() / BUCKETS as u128).max(1),
            ratio_micros: (ratio * MICROS as f64).round() as u128,
            floor_micros: u128::from(min_per_sec) * window.as_micros(),
            slots: Default::default(),
        }
    }

    /// A budget with the policy's `budget_*` settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{RetryBudget, RetryPolicy};
    /// use std::sync::Arc;
    ///
    /// let budget = Arc::new(RetryBudget::from_policy(&RetryPolicy::new()));
    /// assert!(budget.try_withdraw());
    /// ```
    pub fn from_policy(policy: &RetryPolicy) -> Self {
        Self::new(
            policy.budget_ratio,
            policy.budget_min_per_sec,
            policy.budget_window,
        )
    }

    /// Counts a call's first attempt; retries are counted by
    /// [`try_withdraw`](Self::try_withdraw) instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryBudget;
    /// use std::time::Duration;
    ///
    /// let budget = RetryBudget::new(1.0, 0, Duration::from_secs(10));
    /// assert!(!budget.try_withdraw());
    /// budget.record_request();
    /// assert!(budget.try_withdraw());
    /// ```
    pub fn record_request(&self) {
        self.record_request_at(Instant::now());
    }

    /// Takes one retry from the budget: true if it is allowed, in which case
    /// it is counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryBudget;
    /// use std::time::Duration;
    ///
    /// let budget = RetryBudget::new(0.0, 0, Duration::from_secs(10));
    /// assert!(!budget.try_withdraw());
    /// ```
    pub fn try_withdraw(&self) -> bool {
        self.try_withdraw_at(Instant::now())
    }

    pub(crate) fn record_request_at(&self, now: Instant) {
        let epoch = self.epoch(now);
        // Counters carry no other data, so relaxed ordering suffices; the
        // compare-and-swap alone keeps each count exact.
        let _ =
            self.slot(epoch)
                .requests
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                    Some(pack(epoch, (count_at(word, epoch) + 1).min(COUNT_MASK)))
                });
    }

    pub(crate) fn try_withdraw_at(&self, now: Instant) -> bool {
        let epoch = self.epoch(now);
        let current = &self.slot(epoch).retries;
        let mut word = current.load(Ordering::Relaxed);
        loop {
            let mut requests = 0;
            let mut retries = u128::from(count_at(word, epoch));
            for age in 0..=epoch.min(BUCKETS as u64 - 1) {
                let slot = self.slot(epoch - age);
                requests +=
                    u128::from(count_at(slot.requests.load(Ordering::Relaxed), epoch - age));
                if age > 0 {
                    retries +=
                        u128::from(count_at(slot.retries.load(Ordering::Relaxed), epoch - age));
                }
            }
            if retries * MICROS >= self.floor_micros + self.ratio_micros * requests {
                return false;
            }
            // Only this bucket takes new retries, so a successful swap proves
            // no other withdrawal slipped in since the total was read.
            let next = pack(epoch, (count_at(word, epoch) + 1).min(COUNT_MASK));
            match current.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => word = actual,
            }
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(elapsed / self.bucket_nanos).unwrap_or(u64::MAX)
    }

    fn slot(&self, epoch: u64) -> &Slot {
        &self.slots[(epoch % BUCKETS as u64) as usize]
    }
}

/// What to do after a failed attempt, as judged by the caller's classifier.
///
/// # Examples
///
/// ```
/// use http_sentinel::RetryDecision;
/// use std::time::Duration;
///
/// fn classify(status: &u16) -> RetryDecision {
///     match status {
///         503 => RetryDecision::RetryAfter(Duration::from_secs(1)),
///         500 => RetryDecision::Retry,
///         _ => RetryDecision::Fail,
///     }
/// }
/// assert_eq!(classify(&404), RetryDecision::Fail);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Retry after the next backoff delay.
    Retry,
    /// Retry after the wait the server asked for, if the policy's
    /// `max_retry_after` allows it; otherwise stop.
    RetryAfter(Duration),
    /// Do not retry.
    Fail,
}

/// Why a [`RetryEngine`] stopped retrying.
///
/// # Examples
///
/// ```
/// use http_sentinel::{RetryDecision, RetryEngine, RetryPolicy, StopReason};
///
/// let engine = RetryEngine::new(RetryPolicy::new());
/// let error = engine.execute(|_| Err::<(), _>("denied"), |_| RetryDecision::Fail).unwrap_err();
/// assert_eq!(error.reason(), StopReason::NotRetryable);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The classifier said the error is not worth retrying.
    NotRetryable,
    /// Every attempt the policy allows has failed.
    AttemptsExhausted,
    /// The shared retry budget had no retry left.
    BudgetExhausted,
    /// The next wait would have passed the deadline.
    DeadlineExceeded,
    /// The server asked to wait this long, more than the policy honours.
    RetryAfterTooLong(Duration),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRetryable => f.write_str("non-retryable error"),
            Self::AttemptsExhausted => f.write_str("gave up"),
            Self::BudgetExhausted => f.write_str("retry budget exhausted"),
            Self::DeadlineExceeded => f.write_str("deadline exceeded"),
            Self::RetryAfterTooLong(wait) => {
                write!(f, "server asked to wait {wait:?}, longer than allowed,")
            }
        }
    }
}

/// The last error of a call that a [`RetryEngine`] gave up on, with how many
/// attempts were made and why it stopped.
///
/// # Examples
///
/// ```
/// use http_sentinel::{RetryDecision, RetryEngine, RetryPolicy, StopReason};
/// use std::time::Duration;
///
/// let engine = RetryEngine::new(RetryPolicy::new().with_base_delay(Duration::ZERO));
/// let error = engine.execute(|_| Err::<(), _>("busy"), |_| RetryDecision::Retry).unwrap_err();
/// assert_eq!(error.to_string(), "gave up after 3 attempts: busy");
/// ```
#[derive(Debug, Clone)]
pub struct RetryError<E> {
    error: E,
    attempts: u32,
    reason: StopReason,
}

impl<E> RetryError<E> {
    /// The error of the last attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{RetryDecision, RetryEngine, RetryPolicy};
    ///
    /// let engine = RetryEngine::new(RetryPolicy::none());
    /// let error = engine.execute(|_| Err::<(), _>(7), |_| RetryDecision::Retry).unwrap_err();
    /// assert_eq!(*error.error(), 7);
    /// ```
    pub const fn error(&self) -> &E {
        &self.error
    }

    /// Takes the error of the last attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{RetryDecision, RetryEngine, RetryPolicy};
    ///
    /// let engine = RetryEngine::new(RetryPolicy::none());
    /// let error = engine.execute(|_| Err::<(), _>(String::from("down")), |_| RetryDecision::Retry);
    /// assert_eq!(error.unwrap_err().into_error(), "down");
    /// ```
    pub fn into_error(self) -> E {
        self.error
    }

    /// How many attempts were made, the first one included.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{RetryDecision, RetryEngine, RetryPolicy};
    /// use std::time::Duration;
    ///
    /// let engine = RetryEngine::new(RetryPolicy::new().with_max_attempts(4).with_base_delay(Duration::ZERO));
    /// let error = engine.execute(|_| Err::<(), _>(()), |_| RetryDecision::Retry).unwrap_err();
    /// assert_eq!(error.attempts(), 4);
    /// ```
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why the engine stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{RetryDecision, RetryEngine, RetryPolicy, StopReason};
    ///
    /// let engine = RetryEngine::new(RetryPolicy::none());
    /// let error = engine.execute(|_| Err::<(), _>(()), |_| RetryDecision::Retry).unwrap_err();
    /// assert_eq!(error.reason(), StopReason::AttemptsExhausted);
    /// ```
    pub const fn reason(&self) -> StopReason {
        self.reason
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "{} after {} attempt{plural}: {}",
            self.reason, self.attempts, self.error
        )
    }
}

impl<E: Error + 'static> Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.error)
    }
}

/// Runs a fallible operation, retrying it under a [`RetryPolicy`], an
/// optional overall deadline and an optional shared [`RetryBudget`].
///
/// # Examples
///
/// ```
/// use http_sentinel::{RetryDecision, RetryEngine, RetryPolicy};
/// use std::time::Duration;
///
/// let engine = RetryEngine::new(RetryPolicy::new().with_base_delay(Duration::from_millis(1)))
///     .deadline(Duration::from_secs(5));
/// let result = engine.execute(
///     |attempt| if attempt < 3 { Err("busy") } else { Ok(attempt) },
///     |_| RetryDecision::Retry,
/// );
/// assert_eq!(result.unwrap(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct RetryEngine {
    policy: RetryPolicy,
    deadline: Option<Duration>,
    budget: Option<Arc<RetryBudget>>,
}

impl RetryEngine {
    /// An engine applying `policy`, with no deadline and no budget.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{RetryEngine, RetryPolicy};
    ///
    /// let engine = RetryEngine::new(RetryPolicy::new().with_max_attempts(2));
    /// # let _ = engine;
    /// ```
    pub const fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            deadline: None,
            budget: None,
        }
    }

    /// Bounds a whole call, attempts and waits together, measured from the
    /// start of [`execute`](Self::execute). A wait that would end past the
    /// deadline is not started; an attempt in progress is not interrupted.
    /// Defaults to none: only `max_attempts` bounds the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{RetryDecision, RetryEngine, RetryPolicy, StopReason};
    /// use std::time::Duration;
    ///
    /// let engine = RetryEngine::new(RetryPolicy::new().with_base_delay(Duration::from_secs(60)))
    ///     .deadline(Duration::from_secs(1));
    /// let error = engine.execute(|_| Err::<(), _>(()), |_| RetryDecision::Retry).unwrap_err();
    /// assert_eq!(error.reason(), StopReason::DeadlineExceeded);
    /// ```
    #[must_use]
    pub const fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Draws every retry from a budget shared with other engines, and counts
    /// each call in it. Defaults to none: retries are unlimited across calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{RetryBudget, RetryDecision, RetryEngine, RetryPolicy, StopReason};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let budget = Arc::new(RetryBudget::new(0.0, 0, Duration::from_secs(10)));
    /// let engine = RetryEngine::new(RetryPolicy::new()).budget(budget);
    /// let error = engine.execute(|_| Err::<(), _>(()), |_| RetryDecision::Retry).unwrap_err();
    /// assert_eq!(error.reason(), StopReason::BudgetExhausted);
    /// ```
    #[must_use]
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Calls `op` with the attempt number (from 1) until it succeeds or the
    /// engine stops: `classify` rejects the error, attempts run out, the
    /// budget is spent, the next wait would pass the deadline, or the server
    /// asks for a longer wait than the policy honours. The wait between
    /// attempts blocks the thread.
    ///
    /// # Errors
    ///
    /// Returns the last attempt's error, wrapped in a [`RetryError`] that
    /// says how many attempts were made and why the engine stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{RetryDecision, RetryEngine, RetryPolicy};
    /// use std::time::Duration;
    ///
    /// let engine = RetryEngine::new(RetryPolicy::new());
    /// let result = engine.execute(
    ///     |attempt| if attempt == 1 { Err(503) } else { Ok("done") },
    ///     |status| match status {
    ///         503 => RetryDecision::RetryAfter(Duration::from_millis(1)),
    ///         _ => RetryDecision::Fail,
    ///     },
    /// );
    /// assert_eq!(result.unwrap(), "done");
    /// ```
    pub fn execute<T, E, F, C>(&self, mut op: F, classify: C) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Result<T, E>,
        C: Fn(&E) -> RetryDecision,
    {
        let started = Instant::now();
        let deadline = self.deadline.map(|d| later(started, d));
        if let Some(budget) = &self.budget {
            budget.record_request_at(started);
        }
        let mut retries = RetryState::new(deadline);
        loop {
            let attempt = retries.begin_attempt();
            let error = match op(attempt) {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let decision = classify(&error);
            let budget = self.budget.as_deref();
            match self
                .policy
                .decide(&mut retries, decision, budget, Instant::now())
            {
                Ok(delay) => {
                    log::warn!("attempt {attempt} failed; retrying in {delay:?}");
                    std::thread::sleep(delay);
                }
                Err(reason) => {
                    return Err(RetryError {
                        error,
                        attempts: attempt,
                        reason,
                    })
                }
            }
        }
    }
}

/// `t + d`, or a point a century later when that overflows (a `Duration::MAX` deadline).
pub(crate) fn later(t: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    t.checked_add(d)
        .or_else(|| t.checked_add(CENTURY))
        .unwrap_or(t)
}

/// Where one call's retries stand: attempts made so far, the backoff sequence (drawn lazily,
/// so a call that never retries never seeds one) and the deadline. [`RetryPolicy::decide`]
/// reads and advances it.
#[derive(Debug)]
pub(crate) struct RetryState {
    attempts: u32,
    backoff: Option<Backoff>,
    deadline: Option<Instant>,
}

impl RetryState {
    pub(crate) const fn new(deadline: Option<Instant>) -> Self {
        Self {
            attempts: 0,
            backoff: None,
            deadline,
        }
    }

    /// Counts an attempt about to be made; returns its number, from 1.
    pub(crate) fn begin_attempt(&mut self) -> u32 {
        self.attempts += 1;
        self.attempts
    }

    /// Takes back the last attempt: it was replayed for free (a stale pooled connection) and
    /// does not count against `max_attempts`.
    pub(crate) fn forget_attempt(&mut self) {
        self.attempts = self.attempts.saturating_sub(1);
    }

    /// Attempts counted so far.
    pub(crate) const fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl RetryPolicy {
    /// The one retry decision, shared by the client's engine and [`RetryEngine`]: after a
    /// failed attempt, either the wait before the next one or why there is none. In order:
    /// the classifier said no; every allowed attempt is spent; the server asked for a wait
    /// above [`max_retry_after`](Self::max_retry_after); the wait would reach the deadline (a
    /// server-requested wait is then reported as too long, with what the server asked for);
    /// the budget has no retry left. Only a `Ok` spends budget.
    pub(crate) fn decide(
        &self,
        state: &mut RetryState,
        decision: RetryDecision,
        budget: Option<&RetryBudget>,
        now: Instant,
    ) -> Result<Duration, StopReason> {
        let server_wait = match decision {
            RetryDecision::Fail => return Err(StopReason::NotRetryable),
            RetryDecision::Retry => None,
            RetryDecision::RetryAfter(wait) => Some(wait),
        };
        if state.attempts >= self.max_attempts {
            return Err(StopReason::AttemptsExhausted);
        }
        let delay = match server_wait {
            Some(wait) => self
                .retry_after_delay(wait)
                .map_err(StopReason::RetryAfterTooLong)?,
            None => state
                .backoff
                .get_or_insert_with(|| self.backoff())
                .next_delay(),
        };
        // Sleeping into the deadline leaves no time for the attempt it waits for.
        if state
            .deadline
            .is_some_and(|deadline| later(now, delay) >= deadline)
        {
            return Err(match server_wait {
                Some(wait) => StopReason::RetryAfterTooLong(wait),
                None => StopReason::DeadlineExceeded,
            });
        }
        if budget.is_some_and(|b| !b.try_withdraw_at(now)) {
            return Err(StopReason::BudgetExhausted);
        }
        Ok(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn delays(policy: &RetryPolicy, count: usize) -> Vec<Duration> {
        policy.backoff().with_seed(42).take(count).collect()
    }

    // Backoff

    #[test]
    fn unjittered_backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::new().with_jitter(Jitter::None);
        let expected = [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000].map(ms);
        assert_eq!(delays(&policy, 9), expected);
    }

    #[test]
    fn multiplier_three_triples_up_to_the_cap() {
        let policy = RetryPolicy::new()
            .with_jitter(Jitter::None)
            .with_multiplier(3.0);
        let expected = [100, 300, 900, 2700, 8100, 10_000, 10_000].map(ms);
        assert_eq!(delays(&policy, 7), expected);
    }

    #[test]
    fn multiplier_one_keeps_the_base_delay() {
        let policy = RetryPolicy::new()
            .with_jitter(Jitter::None)
            .with_multiplier(1.0);
        assert_eq!(delays(&policy, 3), [ms(100); 3]);
    }

    #[test]
    fn base_above_the_cap_is_capped() {
        let policy = RetryPolicy::new()
            .with_jitter(Jitter::None)
            .with_base_delay(Duration::from_secs(30))
            .with_max_delay(Duration::from_secs(5));
        assert_eq!(delays(&policy, 2), [Duration::from_secs(5); 2]);
    }

    #[test]
    fn far_retries_and_huge_multipliers_saturate_without_panicking() {
        let policy = RetryPolicy::new().with_jitter(Jitter::None);
        assert_eq!(policy.backoff().nth(1000), Some(Duration::from_secs(10)));

        for jitter in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ] {
            let unbounded = RetryPolicy::new()
                .with_jitter(jitter)
                .with_multiplier(1e300)
                .with_base_delay(Duration::MAX)
                .with_max_delay(Duration::MAX);
            assert!(unbounded.backoff().take(50).all(|d| d <= Duration::MAX));
        }

        let zero_base = RetryPolicy::new()
            .with_jitter(Jitter::None)
            .with_multiplier(1e300)
            .with_base_delay(Duration::ZERO);
        assert_eq!(zero_base.backoff().nth(1000), Some(Duration::ZERO));
    }

    /// Same exponential delay for every sample, so all 1000 come from one
    /// distribution.
    fn flat(jitter: Jitter) -> Vec<Duration> {
        let policy = RetryPolicy::new()
            .with_jitter(jitter)
            .with_multiplier(1.0)
            .with_base_delay(Duration::from_secs(1));
        delays(&policy, 1000)
    }

    #[test]
    fn full_jitter_spreads_over_zero_to_the_delay() {
        let samples = flat(Jitter::Full);
        assert!(samples.iter().all(|&d| d <= Duration::from_secs(1)));
        assert!(samples.iter().any(|&d| d < ms(100)));
        assert!(samples.iter().any(|&d| d > ms(900)));
    }

    #[test]
    fn equal_jitter_keeps_at_least_half_the_delay() {
        let samples = flat(Jitter::Equal);
        assert!(samples.iter().all(|&d| (ms(500)..=ms(1000)).contains(&d)));
        assert!(samples.iter().any(|&d| d < ms(550)));
        assert!(samples.iter().any(|&d| d > ms(950)));
    }

    #[test]
    fn decorrelated_jitter_stays_between_base_and_three_times_previous() {
        let policy = RetryPolicy::new().with_jitter(Jitter::Decorrelated);
        let mut previous = ms(100);
        for delay in delays(&policy, 1000) {
            assert!(delay >= ms(100), "{delay:?} below base");
            assert!(delay <= Duration::from_secs(10), "{delay:?} above cap");
            assert!(delay <= previous * 3, "{delay:?} above 3 × {previous:?}");
            previous = delay;
        }
        assert!(delays(&policy, 1000).contains(&Duration::from_secs(10)));
    }

    #[test]
    fn same_seed_repeats_and_other_seeds_differ() {
        for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
            let policy = RetryPolicy::new().with_jitter(jitter);
            let run = |seed| {
                policy
                    .backoff()
                    .with_seed(seed)
                    .take(100)
                    .collect::<Vec<_>>()
            };
            assert_eq!(run(1), run(1));
            assert_ne!(run(1), run(2));
        }
    }

    #[test]
    fn unseeded_backoffs_differ() {
        let policy = RetryPolicy::new().with_multiplier(1.0);
        let a: Vec<_> = policy.backoff().take(10).collect();
        let b: Vec<_> = policy.backoff().take(10).collect();
        assert_ne!(a, b);
    }

    // Policy

    #[test]
    fn defaults() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.max_attempts(), 3);
        assert_eq!(policy.base_delay(), ms(100));
        assert_eq!(policy.multiplier(), 2.0);
        assert_eq!(policy.max_delay(), Duration::from_secs(10));
        assert_eq!(policy.jitter(), Jitter::Full);
        assert_eq!(
            policy.retry_statuses().collect::<Vec<_>>(),
            [429, 500, 502, 503, 504]
        );
        assert!(!policy.retry_non_idempotent());
        assert_eq!(policy.max_retry_after(), Duration::from_secs(60));
        assert_eq!(policy.budget_ratio(), 0.2);
        assert_eq!(policy.budget_min_per_sec(), 10);
        assert_eq!(policy.budget_window(), Duration::from_secs(10));
        assert_eq!(RetryPolicy::none().max_attempts(), 1);
    }

    #[test]
    fn debug_lists_statuses() {
        let policy = RetryPolicy::new().with_retry_statuses([503, 429]);
        assert!(format!("{policy:?}").contains("retry_statuses: {429, 503}"));
    }

    #[test]
    fn retryable_statuses() {
        let policy = RetryPolicy::new().with_retry_statuses([408, 429, 599, 100]);
        for status in [100, 408, 429, 599] {
            assert!(policy.is_retryable_status(status), "{status}");
        }
        for status in [0, 200, 500, 503, 600, 639, 640, u16::MAX] {
            assert!(!policy.is_retryable_status(status), "{status}");
        }
        assert!(!RetryPolicy::new()
            .with_retry_statuses([])
            .is_retryable_status(503));
    }

    #[test]
    #[should_panic(expected = "status 404 is never retried")]
    fn client_errors_are_rejected() {
        let _ = RetryPolicy::new().with_retry_statuses([503, 404]);
    }

    #[test]
    #[should_panic(expected = "status 501 is never retried")]
    fn not_implemented_is_rejected() {
        let _ = RetryPolicy::new().with_retry_statuses([501]);
    }

    #[test]
    #[should_panic(expected = "600 is not an HTTP status code")]
    fn out_of_range_status_is_rejected() {
        let _ = RetryPolicy::new().with_retry_statuses([600]);
    }

    #[test]
    #[should_panic(expected = "max_attempts must be at least 1")]
    fn zero_attempts_is_rejected() {
        let _ = RetryPolicy::new().with_max_attempts(0);
    }

    #[test]
    fn bad_multipliers_are_rejected() {
        for multiplier in [0.5, -1.0, f64::NAN, f64::INFINITY] {
            let result =
                std::panic::catch_unwind(|| RetryPolicy::new().with_multiplier(multiplier));
            assert!(result.is_err(), "{multiplier} accepted");
        }
    }

    #[test]
    fn bad_budget_ratios_are_rejected() {
        for ratio in [-0.1, 10.5, f64::NAN, f64::INFINITY] {
            let result = std::panic::catch_unwind(|| RetryPolicy::new().with_budget_ratio(ratio));
            assert!(result.is_err(), "{ratio} accepted");
            let result =
                std::panic::catch_unwind(|| RetryBudget::new(ratio, 0, Duration::from_secs(1)));
            assert!(result.is_err(), "{ratio} accepted");
        }
        assert_eq!(
            RetryPolicy::new().with_budget_ratio(0.0).budget_ratio(),
            0.0
        );
        assert_eq!(
            RetryPolicy::new().with_budget_ratio(10.0).budget_ratio(),
            10.0
        );
    }

    #[test]
    #[should_panic(expected = "retry budget window must not be zero")]
    fn zero_budget_window_is_rejected() {
        let _ = RetryPolicy::new().with_budget_window(Duration::ZERO);
    }

    #[test]
    fn replayable_requests() {
        let policy = RetryPolicy::new();
        for method in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"] {
            assert!(policy.is_replayable(method, false), "{method}");
        }
        for method in ["POST", "PATCH", "CONNECT", "get", "Put"] {
            assert!(!policy.is_replayable(method, false), "{method}");
            assert!(policy.is_replayable(method, true), "{method}");
        }
        assert!(policy
            .with_retry_non_idempotent(true)
            .is_replayable("POST", false));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_limit() {
        let policy = RetryPolicy::new().with_max_retry_after(Duration::from_secs(30));
        let limit = Duration::from_secs(30);
        assert_eq!(policy.retry_after_delay(Duration::ZERO), Ok(Duration::ZERO));
        assert_eq!(policy.retry_after_delay(limit), Ok(limit));
        let over = limit + Duration::from_nanos(1);
        assert_eq!(policy.retry_after_delay(over), Err(over));
    }

    // Retry-After

    /// 2019-06-03 11:00:00 UTC.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_559_559_600)
    }

    fn parse(value: &str) -> Option<u64> {
        parse_retry_after(value, now()).map(|d| d.as_secs())
    }

    #[test]
    fn retry_after_vectors() {
        assert_eq!(parse("3600"), Some(3600));
        assert_eq!(parse("Mon, 3 Jun 2019 12:00:00 UTC"), Some(3600));
        assert_eq!(parse("Mon, 03 Jun 2019 11:30:12 GMT"), Some(1812));
        assert_eq!(parse("Monday, 03-Jun-19 11:30:12 GMT"), Some(1812));
        assert_eq!(parse("Mon Jun  3 11:30:12 2019"), Some(1812));
        assert_eq!(parse("Mon, 03 Jun 2019 10:59:59 GMT"), Some(0));
        assert_eq!(parse("\t42 "), Some(42));
        for garbage in ["-1", "+1", "1.0", "²", "", "abc"] {
            assert_eq!(parse(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn retry_after_delta_seconds_edges() {
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("007"), Some(7));
        assert_eq!(parse(" \t "), None);
        assert_eq!(parse("1 2"), None);
        assert_eq!(parse("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse("99999999999999999999999999"), Some(u64::MAX));
    }

    #[test]
    fn all_date_forms_give_the_same_instant() {
        // The example date of RFC 9110 §5.6.7, 784111777 s after the epoch.
        for value in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun Nov 06 08:49:37 1994",
            "06 Nov 1994 08:49:37 GMT",
            "sun, 6 nov 1994 8:49:37 utc",
        ] {
            assert_eq!(
                parse_retry_after(value, UNIX_EPOCH),
                Some(Duration::from_secs(784_111_777)),
                "{value:?}"
            );
        }
    }

    #[test]
    fn retry_after_keeps_sub_second_precision_of_now() {
        let now = now() + ms(250);
        assert_eq!(
            parse_retry_after("Mon, 03 Jun 2019 11:00:01 GMT", now),
            Some(ms(750))
        );
    }

    #[test]
    fn retry_after_calendar_validation() {
        assert_eq!(parse("Sat, 29 Feb 2020 12:00:00 GMT"), Some(23_418_000));
        assert_eq!(parse("Tue, 29 Feb 2000 12:00:00 GMT"), Some(0));
        assert_eq!(parse("Fri, 29 Feb 2019 12:00:00 GMT"), None);
        assert_eq!(parse("Thu, 29 Feb 1900 12:00:00 GMT"), None);
        assert_eq!(parse("Thu, 31 Apr 2020 12:00:00 GMT"), None);
        assert_eq!(parse("Thu, 00 Apr 2020 12:00:00 GMT"), None);
        assert_eq!(parse("Thu, 30 Apr 2020 24:00:00 GMT"), None);
        assert_eq!(parse("Thu, 30 Apr 2020 23:60:00 GMT"), None);
        assert_eq!(parse("Thu, 30 Apr 2020 23:59:61 GMT"), None);
        assert_eq!(
            parse("Thu, 31 Dec 2019 23:59:60 GMT"),
            parse("Wed, 01 Jan 2020 00:00:00 GMT")
        );
    }

    #[test]
    fn retry_after_rejects_malformed_dates() {
        for value in [
            "Mon, 03 Jun 2019 11:30:12",
            "Mon, 03 Jun 2019 11:30:12 PST",
            "Mon, 03 Jun 2019 11:30:12 +0000",
            "Mon, 03 Foo 2019 11:30:12 GMT",
            "Mon, 03 Jun 219 11:30:12 GMT",
            "Mon, 003 Jun 2019 11:30:12 GMT",
            "Mon, 03 Jun 2019 11:30 GMT",
            "Mon, 03 Jun 2019 11:30:12:00 GMT",
            "Mon, 03 Jun 2019 11:+3:12 GMT",
            "Monday, 03-Jun-19-1 11:30:12 GMT",
            "Monday, 03-Jun 11:30:12 GMT",
            "Funday, 03 Jun 2019 11:30:12 GMT",
            "Mon, 03 Jun 2019 11:30:12 GMT extra",
            "Mon Jun  3 11:30:12",
        ] {
            assert_eq!(parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn two_digit_years_stay_within_fifty_years_ahead() {
        // From 2019, "69" is 2069 (50 years on) but "70" is 1970.
        assert_eq!(
            parse("Tuesday, 01-Jan-69 00:00:00 GMT"),
            Some(1_564_664_400)
        );
        assert_eq!(parse("Thursday, 01-Jan-70 00:00:00 GMT"), Some(0));
        assert_eq!(expand_two_digit_year(1, 2099), 2101);
        assert_eq!(expand_two_digit_year(50, 2099), 2050);
        assert_eq!(expand_two_digit_year(49, 2099), 2149);
        assert_eq!(expand_two_digit_year(99, 2000), 1999);
        assert_eq!(expand_two_digit_year(50, 2000), 2050);
        assert_eq!(expand_two_digit_year(51, 2000), 1951);
    }

    #[test]
    fn civil_date_arithmetic() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2019, 6, 3), 18_050);
        for (year, month, day) in [
            (1970, 1, 1),
            (1969, 12, 31),
            (2000, 2, 29),
            (2019, 12, 31),
            (2020, 1, 1),
            (1600, 3, 1),
        ] {
            assert_eq!(year_of_day(days_from_civil(year, month, day)), year);
        }
    }

    #[test]
    fn retry_after_before_the_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", before),
            Some(Duration::from_secs(86_410))
        );
    }

    // Budget

    fn budget(ratio: f64, min_per_sec: u32, window_secs: u64) -> RetryBudget {
        RetryBudget::new(ratio, min_per_sec, Duration::from_secs(window_secs))
    }

    fn withdrawals(budget: &RetryBudget, now: Instant) -> usize {
        (0..10_000)
            .take_while(|_| budget.try_withdraw_at(now))
            .count()
    }

    #[test]
    fn budget_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RetryBudget>();
        assert_send_sync::<RetryEngine>();
    }

    #[test]
    fn ratio_allows_a_fraction_of_requests() {
        let budget = budget(0.2, 0, 10);
        let t0 = budget.origin;
        for _ in 0..100 {
            budget.record_request_at(t0);
        }
        assert_eq!(withdrawals(&budget, t0), 20);
        assert!(!budget.try_withdraw_at(t0));
    }

    #[test]
    fn ratio_arithmetic_is_exact() {
        // 0.1 × 30 is 3.0000000000000004 in floating point.
        let budget = budget(0.1, 0, 10);
        let t0 = budget.origin;
        for _ in 0..30 {
            budget.record_request_at(t0);
        }
        assert_eq!(withdrawals(&budget, t0), 3);
    }

    #[test]
    fn floor_allows_min_per_sec_times_window() {
        let budget = budget(0.0, 5, 2);
        assert_eq!(withdrawals(&budget, budget.origin), 10);

        let fractional = RetryBudget::new(0.0, 10, ms(1500));
        assert_eq!(withdrawals(&fractional, fractional.origin), 15);
    }

    #[test]
    fn floor_and_ratio_add_up() {
        let budget = budget(0.5, 1, 10);
        let t0 = budget.origin;
        for _ in 0..4 {
            budget.record_request_at(t0);
        }
        assert_eq!(withdrawals(&budget, t0), 12);
    }

    #[test]
    fn requests_and_retries_age_out_of_the_window() {
        let budget = budget(0.2, 0, 10);
        let t0 = budget.origin;
        for _ in 0..100 {
            budget.record_request_at(t0);
        }
        assert_eq!(withdrawals(&budget, t0), 20);

        // Both still count in the last bucket of the window.
        let last_moment = t0 + Duration::from_secs(10) - Duration::from_nanos(1);
        for _ in 0..5 {
            budget.record_request_at(last_moment);
        }
        assert_eq!(withdrawals(&budget, last_moment), 1);

        // A window later the first bucket is gone; its slot is reused.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(withdrawals(&budget, later), 0);
        for _ in 0..10 {
            budget.record_request_at(later);
        }
        // 15 requests (10 new, 5 from the bucket before) against 1 retry.
        assert_eq!(withdrawals(&budget, later), 2);

        let much_later = t0 + Duration::from_secs(3600);
        assert_eq!(withdrawals(&budget, much_later), 0);
    }

    #[test]
    fn retries_in_older_buckets_still_count() {
        let budget = budget(0.5, 0, 10);
        let t0 = budget.origin;
        for _ in 0..10 {
            budget.record_request_at(t0);
        }
        assert_eq!(withdrawals(&budget, t0), 5);
        assert_eq!(withdrawals(&budget, t0 + Duration::from_secs(5)), 0);
    }

    #[test]
    fn instants_before_the_origin_count_as_the_first_bucket() {
        let budget = budget(1.0, 0, 10);
        let t0 = budget.origin;
        if let Some(earlier) = t0.checked_sub(Duration::from_secs(1)) {
            budget.record_request_at(earlier);
            assert_eq!(withdrawals(&budget, t0), 1);
        }
    }

    #[test]
    fn concurrent_withdrawals_never_exceed_the_allowance() {
        let budget = budget(0.5, 0, 10);
        let t0 = budget.origin;
        for _ in 0..1000 {
            budget.record_request_at(t0);
        }
        let granted: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..200).filter(|_| budget.try_withdraw_at(t0)).count()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(granted, 500);
    }

    #[test]
    fn concurrent_requests_are_all_counted() {
        let budget = budget(1.0, 0, 10);
        let t0 = budget.origin;
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| (0..250).for_each(|_| budget.record_request_at(t0)));
            }
        });
        assert_eq!(withdrawals(&budget, t0), 2000);
    }

    #[test]
    fn budget_from_policy_uses_its_settings() {
        let policy = RetryPolicy::new()
            .with_budget_ratio(0.0)
            .with_budget_min_per_sec(3)
            .with_budget_window(Duration::from_secs(1));
        let budget = RetryBudget::from_policy(&policy);
        assert_eq!(withdrawals(&budget, budget.origin), 3);
    }

    // Engine

    fn fast() -> RetryPolicy {
        RetryPolicy::new().with_base_delay(Duration::ZERO)
    }

    #[test]
    fn succeeds_on_the_third_attempt() {
        let calls = Cell::new(0);
        let result = RetryEngine::new(fast()).execute(
            |attempt| {
                calls.set(calls.get() + 1);
                assert_eq!(attempt, calls.get());
                if attempt < 3 {
                    Err("busy")
                } else {
                    Ok(attempt)
                }
            },
            |_| RetryDecision::Retry,
        );
        assert_eq!(result.unwrap(), 3);
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn fail_stops_after_one_attempt() {
        let calls = Cell::new(0);
        let error = RetryEngine::new(fast())
            .execute(
                |_| {
                    calls.set(calls.get() + 1);
                    Err::<(), _>("denied")
                },
                |_| RetryDecision::Fail,
            )
            .unwrap_err();
        assert_eq!(calls.get(), 1);
        assert_eq!(error.attempts(), 1);
        assert_eq!(error.reason(), StopReason::NotRetryable);
        assert_eq!(
            error.to_string(),
            "non-retryable error after 1 attempt: denied"
        );
    }

    #[test]
    fn stops_when_attempts_are_exhausted() {
        let calls = Cell::new(0);
        let error = RetryEngine::new(fast().with_max_attempts(5))
            .execute(
                |_| {
                    calls.set(calls.get() + 1);
                    Err::<(), _>("busy")
                },
                |_| RetryDecision::Retry,
            )
            .unwrap_err();
        assert_eq!(calls.get(), 5);
        assert_eq!(error.attempts(), 5);
        assert_eq!(error.reason(), StopReason::AttemptsExhausted);
        assert_eq!(error.to_string(), "gave up after 5 attempts: busy");
        assert_eq!(error.into_error(), "busy");
    }

    #[test]
    fn no_retry_policy_makes_one_attempt() {
        let error = RetryEngine::new(RetryPolicy::none())
            .execute(|_| Err::<(), _>(()), |_| RetryDecision::Retry)
            .unwrap_err();
        assert_eq!(error.attempts(), 1);
        assert_eq!(error.reason(), StopReason::AttemptsExhausted);
    }

    #[test]
    fn deadline_stops_before_a_wait_that_would_pass_it() {
        let delay = Duration::from_secs(10);
        let engine = RetryEngine::new(
            RetryPolicy::new()
                .with_jitter(Jitter::None)
                .with_base_delay(delay),
        )
        .deadline(ms(50));
        let started = Instant::now();
        let error = engine
            .execute(|_| Err::<(), _>("busy"), |_| RetryDecision::Retry)
            .unwrap_err();
        assert!(started.elapsed() < delay);
        assert_eq!(error.attempts(), 1);
        assert_eq!(error.reason(), StopReason::DeadlineExceeded);
        assert_eq!(error.to_string(), "deadline exceeded after 1 attempt: busy");
    }

    #[test]
    fn deadline_allows_waits_that_fit() {
        let engine = RetryEngine::new(fast()).deadline(Duration::from_secs(60));
        let result = engine.execute(
            |attempt| if attempt < 3 { Err(()) } else { Ok(()) },
            |_| RetryDecision::Retry,
        );
        assert!(result.is_ok());
    }

    #[test]
    fn budget_exhaustion_stops_retries() {
        // One call funds half a retry: the first retry fits, the second not.
        let budget = Arc::new(budget(0.5, 0, 10));
        let engine = RetryEngine::new(fast().with_max_attempts(10)).budget(Arc::clone(&budget));
        let error = engine
            .execute(|_| Err::<(), _>("busy"), |_| RetryDecision::Retry)
            .unwrap_err();
        assert_eq!(error.attempts(), 2);
        assert_eq!(error.reason(), StopReason::BudgetExhausted);
        assert_eq!(
            error.to_string(),
            "retry budget exhausted after 2 attempts: busy"
        );
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn retry_after_within_the_limit_is_waited_for() {
        let result = RetryEngine::new(fast()).execute(
            |attempt| if attempt == 1 { Err(()) } else { Ok(attempt) },
            |_| RetryDecision::RetryAfter(Duration::ZERO),
        );
        assert_eq!(result.unwrap(), 2);
    }

    #[test]
    fn retry_after_beyond_the_limit_stops_at_once() {
        let wait = Duration::from_secs(120);
        let error = RetryEngine::new(fast())
            .execute(
                |_| Err::<(), _>("slow down"),
                |_| RetryDecision::RetryAfter(wait),
            )
            .unwrap_err();
        assert_eq!(error.attempts(), 1);
        assert_eq!(error.reason(), StopReason::RetryAfterTooLong(wait));
        assert_eq!(
            error.to_string(),
            "server asked to wait 120s, longer than allowed, after 1 attempt: slow down"
        );
    }

    #[test]
    fn exhausted_attempts_take_precedence_over_a_long_retry_after() {
        let error = RetryEngine::new(RetryPolicy::none())
            .execute(
                |_| Err::<(), _>(()),
                |_| RetryDecision::RetryAfter(Duration::MAX),
            )
            .unwrap_err();
        assert_eq!(error.reason(), StopReason::AttemptsExhausted);
    }

    #[test]
    fn error_source_is_the_last_error() {
        let inner = std::io::Error::other("reset");
        let error = RetryEngine::new(RetryPolicy::none())
            .execute(
                |_| Err::<(), _>(std::io::Error::other("reset")),
                |_| RetryDecision::Retry,
            )
            .unwrap_err();
        assert_eq!(error.error().to_string(), inner.to_string());
        assert_eq!(error.source().unwrap().to_string(), "reset");
    }
}
