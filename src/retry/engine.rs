//! `RetryEngine`: runs any fallible operation under a `RetryPolicy`, a deadline and a budget.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::budget::RetryBudget;
use super::policy::{later, RetryDecision, RetryPolicy, RetryState, StopReason};

/// The last error of a call that a [`RetryEngine`] gave up on, with how many
/// attempts were made and why it stopped.
///
/// # Examples
///
/// ```
/// use http_sentinel::{retry::RetryDecision, retry::RetryEngine, RetryPolicy, retry::StopReason};
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
    /// use http_sentinel::{retry::RetryDecision, retry::RetryEngine, RetryPolicy};
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
    /// use http_sentinel::{retry::RetryDecision, retry::RetryEngine, RetryPolicy};
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
    /// use http_sentinel::{retry::RetryDecision, retry::RetryEngine, RetryPolicy};
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
    /// use http_sentinel::{retry::RetryDecision, retry::RetryEngine, RetryPolicy, retry::StopReason};
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
/// use http_sentinel::{retry::RetryDecision, retry::RetryEngine, RetryPolicy};
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
    /// use http_sentinel::{retry::RetryEngine, RetryPolicy};
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
    /// use http_sentinel::{retry::RetryDecision, retry::RetryEngine, RetryPolicy, retry::StopReason};
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
    /// use http_sentinel::{retry::RetryBudget, retry::RetryDecision, retry::RetryEngine, RetryPolicy, retry::StopReason};
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
    /// use http_sentinel::{retry::RetryDecision, retry::RetryEngine, RetryPolicy};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::{Jitter, RetryBudget};

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }
    use std::cell::Cell;

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
        let budget = Arc::new(RetryBudget::new(0.5, 0, Duration::from_secs(10)));
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
