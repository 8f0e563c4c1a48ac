//! Event hooks, after r2d2's `HandleEvent`: a trait whose methods default to doing nothing,
//! registered on the pool with [`PoolConfigBuilder::event_handler`](crate::PoolConfigBuilder::event_handler).
//!
//! Handlers run inline on the worker thread that caused the event: keep them short.

use std::fmt;
use std::time::Duration;

use ureq::http::StatusCode;

use crate::breaker::BreakerState;
use crate::error::ErrorKind;
use crate::telemetry::AttemptTimings;

/// Receives the pool's events. Every method defaults to doing nothing.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use http_sentinel::{ClientPool, EventHandler, PoolConfig, events::RetryEvent};
///
/// #[derive(Default)]
/// struct CountRetries(AtomicU64);
///
/// impl EventHandler for CountRetries {
///     fn on_retry(&self, _event: &RetryEvent) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// let handler = Arc::new(CountRetries::default());
/// let pool = ClientPool::new(PoolConfig::builder().event_handler(handler.clone()).build())?;
/// assert_eq!(handler.0.load(Ordering::Relaxed), 0);
/// # drop(pool);
/// # Ok::<(), http_sentinel::Error>(())
/// ```
pub trait EventHandler: Send + Sync + 'static {
    /// An attempt finished (successfully or not). A hedge's attempt is told of on the pool's
    /// hedge thread that sent it (named `sentinel-hedge`), possibly while its caller's call
    /// goes on; a panic there is logged and does not stop hedging. A hedge cut short because
    /// its race was decided is not told of.
    fn on_attempt(&self, event: &AttemptEvent) {
        let _ = event;
    }
    /// A retry is about to sleep and resend.
    fn on_retry(&self, event: &RetryEvent) {
        let _ = event;
    }
    /// A host's circuit breaker changed state.
    fn on_breaker_transition(&self, event: &BreakerEvent) {
        let _ = event;
    }
    /// A checkout had to wait for a client, or gave up.
    fn on_checkout_wait(&self, event: &CheckoutEvent) {
        let _ = event;
    }
    /// A request is replayed because its pooled connection had been closed by the server.
    fn on_stale_replay(&self, event: &StaleReplayEvent) {
        let _ = event;
    }
    /// An attempt waited for its slot of the host's rate-limit pacing, or failed because the
    /// slot was past its deadline.
    fn on_paced(&self, event: &PacedEvent) {
        let _ = event;
    }

    /// A hedge was sent, won its race, or was refused by the host's hedge budget (see
    /// [`HedgePolicy`](crate::HedgePolicy)). `Sent` and `Won` come from the caller's thread
    /// once the race is over; `Refused` from the hedge thread.
    fn on_hedge(&self, event: &HedgeEvent) {
        let _ = event;
    }

    /// A response body was read to its end (or failed) by [`Response::bytes`](crate::Response::bytes),
    /// [`text`](crate::Response::text) or [`json`](crate::Response::json).
    fn on_body(&self, event: &BodyEvent) {
        let _ = event;
    }
}

/// One finished attempt.
#[derive(Debug, Clone)]
pub struct AttemptEvent {
    pub(crate) host: String,
    pub(crate) attempt: u32,
    pub(crate) duration: Duration,
    pub(crate) outcome: Result<StatusCode, ErrorKind>,
    pub(crate) reused_connection: bool,
    pub(crate) timings: AttemptTimings,
}

impl AttemptEvent {
    /// The host (`host:port`).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The attempt number within the current hop, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// How long the attempt took until the response head (or the error).
    pub fn duration(&self) -> Duration {
        self.duration
    }
    /// The status, or the error kind.
    pub fn outcome(&self) -> Result<StatusCode, &ErrorKind> {
        self.outcome.as_ref().map(|s| *s)
    }
    /// Whether the attempt ran on a pooled connection.
    pub fn reused_connection(&self) -> bool {
        self.reused_connection
    }
    /// Where the attempt's time went: DNS, connect, TLS handshake, first byte.
    pub fn timings(&self) -> &AttemptTimings {
        &self.timings
    }
}

/// A response body read to its end, or cut short by an error.
#[derive(Debug, Clone)]
pub struct BodyEvent {
    pub(crate) host: String,
    pub(crate) attempt: u32,
    pub(crate) duration: Duration,
    pub(crate) bytes: u64,
    pub(crate) ok: bool,
}

impl BodyEvent {
    /// The host (`host:port`).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The attempt that received the response, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// How long reading the body took.
    pub fn duration(&self) -> Duration {
        self.duration
    }
    /// Bytes of body read (after any content decoding).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    /// Whether the body was read to its end.
    pub fn ok(&self) -> bool {
        self.ok
    }
}

/// Why an attempt is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// The server answered with a retryable status.
    Status(StatusCode),
    /// The attempt failed with a retryable error.
    Error(ErrorKind),
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryReason::Status(s) => write!(f, "status {}", s.as_u16()),
            RetryReason::Error(e) => fmt::Display::fmt(e, f),
        }
    }
}

/// A retry about to happen.
#[derive(Debug, Clone)]
pub struct RetryEvent {
    pub(crate) host: String,
    pub(crate) attempt: u32,
    pub(crate) delay: Duration,
    pub(crate) reason: RetryReason,
    pub(crate) server_requested: bool,
}

impl RetryEvent {
    /// The host (`host:port`).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The attempt that failed, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// How long the call sleeps before the next attempt.
    pub fn delay(&self) -> Duration {
        self.delay
    }
    /// Why it is retried.
    pub fn reason(&self) -> &RetryReason {
        &self.reason
    }
    /// Whether the delay came from the server's `Retry-After`.
    pub fn server_requested(&self) -> bool {
        self.server_requested
    }
}

/// A circuit breaker transition.
#[derive(Debug, Clone)]
pub struct BreakerEvent {
    pub(crate) host: String,
    pub(crate) from: BreakerState,
    pub(crate) to: BreakerState,
}

impl BreakerEvent {
    /// The host (`host:port`).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The state before.
    pub fn from(&self) -> BreakerState {
        self.from
    }
    /// The state after.
    pub fn to(&self) -> BreakerState {
        self.to
    }
}

/// A checkout that waited for a client.
#[derive(Debug, Clone)]
pub struct CheckoutEvent {
    pub(crate) waited: Duration,
    pub(crate) timed_out: bool,
}

impl CheckoutEvent {
    /// How long the caller waited.
    pub fn waited(&self) -> Duration {
        self.waited
    }
    /// Whether it gave up without a client.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }
}

/// A stale-connection replay.
#[derive(Debug, Clone)]
pub struct StaleReplayEvent {
    pub(crate) host: String,
    pub(crate) method: String,
}

impl StaleReplayEvent {
    /// The host (`host:port`).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The replayed request's method.
    pub fn method(&self) -> &str {
        &self.method
    }
}

/// An attempt held back by rate-limit pacing.
#[derive(Debug, Clone)]
pub struct PacedEvent {
    pub(crate) host: String,
    pub(crate) wait: Duration,
    pub(crate) sent: bool,
}

impl PacedEvent {
    /// The host (`host:port`).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// How long the attempt waited (or, when it was not sent, would have had to wait).
    pub fn wait(&self) -> Duration {
        self.wait
    }
    /// Whether the attempt went ahead after the wait; `false` when its slot was past the
    /// deadline and the call failed with `RateLimited`.
    pub fn sent(&self) -> bool {
        self.sent
    }
}

/// What happened to a hedge, in a [`HedgeEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HedgeOutcome {
    /// The hedge was sent (reported by the caller's thread once its attempt has ended, with
    /// the hedges counted in `hedges_sent`).
    Sent,
    /// A hedge's response head came first and is the call's (reported by the caller's thread).
    Won,
    /// The hedge was due but the host's hedge budget was spent: not sent.
    Refused,
}

/// One hedge of an attempt.
#[derive(Debug, Clone)]
pub struct HedgeEvent {
    pub(crate) host: String,
    pub(crate) outcome: HedgeOutcome,
    pub(crate) delay: Duration,
}

impl HedgeEvent {
    /// The `host:port` hedged.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sent, won or refused.
    pub fn outcome(&self) -> HedgeOutcome {
        self.outcome
    }

    /// The delay the hedge waited after its attempt started.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}
