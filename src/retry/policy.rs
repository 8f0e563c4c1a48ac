//! `RetryPolicy`: which failures are retried, how often and how long to wait; and the one
//! retry decision that both the client's engine and `RetryEngine` ask.

use std::fmt;
use std::time::{Duration, Instant};

use super::backoff::{Backoff, Jitter};
use super::budget::{assert_budget_ratio, assert_budget_window, RetryBudget};

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

/// When and how a failed call is retried.
///
/// # Examples
///
/// ```
/// use http_sentinel::{retry::Jitter, RetryPolicy};
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
    /// use http_sentinel::{retry::Jitter, RetryPolicy};
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
    /// Exactly: a floor of `retries × window` retries over the sliding window,
    /// built up from the budget's first use in tenths of the window (10/s over
    /// the default 10 s window: 10 in the first second, 20 by the end of the
    /// second, ..., 100 from the tenth on). Once built up it is an average
    /// over the window, not a rate: floor retries not made early in the window
    /// can be made later in it (see [`RetryBudget`]).
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
    /// use http_sentinel::{retry::Jitter, RetryPolicy};
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

    /// Retries per second allowed whatever the traffic, averaged over the
    /// budget window (see [`with_budget_min_per_sec`](Self::with_budget_min_per_sec)).
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
        is_idempotent(method) || has_idempotency_key || self.retry_non_idempotent
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
        Backoff::new(
            self.base_delay,
            self.multiplier,
            self.max_delay,
            self.jitter,
        )
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

/// What to do after a failed attempt, as judged by the caller's classifier.
///
/// # Examples
///
/// ```
/// use http_sentinel::retry::RetryDecision;
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

/// Why a [`RetryEngine`](crate::retry::RetryEngine) stopped retrying.
///
/// # Examples
///
/// ```
/// use http_sentinel::{retry::RetryDecision, retry::RetryEngine, RetryPolicy, retry::StopReason};
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
/// Whether a method is idempotent (RFC 9110 §9.2.2: GET, HEAD, PUT, DELETE, OPTIONS, TRACE).
/// Method names are case-sensitive.
pub(crate) fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
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

impl RetryBudget {
    /// A budget with the policy's `budget_*` settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{retry::RetryBudget, RetryPolicy};
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

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

    #[test]
    fn later_saturates_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(later(now, Duration::MAX) > now + Duration::from_secs(3600 * 24 * 365));
    }
}
