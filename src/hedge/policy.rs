//! `HedgePolicy`: when a second copy of a slow request is sent, how many, and within what
//! budget. Settings only; the engine and `hedge::threads` act on them.

use std::time::Duration;

/// How long a call waits for its response head before a hedge is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// A fixed delay, the same for every host.
    Fixed(Duration),
    /// The host's own attempt latency at this quantile (`0.95` for p95, `0.99` for p99), as
    /// the pool's metrics keep it (the `attempt_latency` histogram that
    /// [`Stats`](crate::Stats) reports), read again every second, and never below `floor`.
    /// A host with fewer than 20 attempts recorded is not hedged: its quantile is not known
    /// yet.
    Quantile {
        /// The quantile, clamped to `0.5..=0.999`.
        quantile: f64,
        /// The shortest delay, whatever the quantile says.
        floor: Duration,
    },
}

/// Hedged requests: when a replayable request's response head has not arrived after a delay,
/// a second copy goes out on another client of the pool, and the first response head wins
/// (the loser's connection is closed, never pooled half-read). Set with
/// [`PoolConfigBuilder::hedge`](crate::PoolConfigBuilder::hedge); off by default.
///
/// Only requests that may be replayed are hedged, by the rule the stale-connection replay
/// uses: GET, HEAD, PUT, DELETE, OPTIONS, TRACE, or any request with an `Idempotency-Key`,
/// and a body held as bytes. A POST without an `Idempotency-Key` is never hedged, whatever
/// the retry policy allows. A request that accepts `text/event-stream` is not hedged (its
/// stream's idle timeout is kept by the caller's client), nor one sent through a proxy. A
/// hedge is not sent to a host whose breaker is not closed, nor when its delay ends at or
/// after the call's deadline; a hedge never outlives the deadline.
///
/// Defaults, and the designs they follow:
///
/// | setting | default | Finagle `BackupRequestFilter` | gRPC A6 `hedgingPolicy` |
/// |---|---|---|---|
/// | delay | p95 of the host's attempts, floor 1 ms | the latency at `1 - maxExtraLoad` (p99 for 1 %), refreshed every 3 s, floor `minSendBackupAfterMs` = 1 ms | `hedgingDelay`, fixed (unset: all at once) |
/// | extra attempts | 1 | 1 | `maxAttempts - 1` (client cap 5 attempts) |
/// | budget | 5 % of the host's calls over 10 s, plus 1 per second | `maxExtraLoad` as a `RetryBudget` (10 s, plus 10 per second) | `retryThrottling` tokens shared with retries |
/// | hedge threads | 4 per pool | (asynchronous) | (asynchronous) |
///
/// The floor of the budget (1 per second here, Finagle's 10) lets a host that has seen few
/// calls hedge at all; it is kept small so that it does not dwarf the ratio at low rates.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use http_sentinel::{ClientPool, HedgeDelay, HedgePolicy, PoolConfig};
///
/// let pool = ClientPool::new(
///     PoolConfig::builder()
///         .hedge(HedgePolicy::new().with_delay(HedgeDelay::Fixed(Duration::from_millis(50))))
///         .build(),
/// )?;
/// let policy = pool.config().hedge().unwrap();
/// assert_eq!(policy.delay(), HedgeDelay::Fixed(Duration::from_millis(50)));
/// assert_eq!(policy.max_extra(), 1);
/// assert_eq!(policy.budget_ratio(), 0.05);
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HedgePolicy {
    delay: HedgeDelay,
    max_extra: u32,
    budget_ratio: f64,
    budget_min_per_sec: u32,
    budget_window: Duration,
    threads: usize,
}

impl Default for HedgePolicy {
    fn default() -> Self {
        HedgePolicy::new()
    }
}

impl HedgePolicy {
    /// The defaults: p95 delay (floor 1 ms), one extra attempt, a budget of 5 % of calls plus
    /// 1 per second over 10 s, 4 hedge threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{HedgeDelay, HedgePolicy};
    ///
    /// let p = HedgePolicy::new();
    /// assert_eq!(
    ///     p.delay(),
    ///     HedgeDelay::Quantile { quantile: 0.95, floor: Duration::from_millis(1) }
    /// );
    /// assert_eq!((p.budget_min_per_sec(), p.threads()), (1, 4));
    /// ```
    pub fn new() -> Self {
        HedgePolicy {
            delay: HedgeDelay::Quantile {
                quantile: 0.95,
                floor: Duration::from_millis(1),
            },
            max_extra: 1,
            budget_ratio: 0.05,
            budget_min_per_sec: 1,
            budget_window: Duration::from_secs(10),
            threads: 4,
        }
    }

    /// Sets the delay before a hedge. A quantile is clamped to `0.5..=0.999`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{HedgeDelay, HedgePolicy};
    ///
    /// let p = HedgePolicy::new().with_delay(HedgeDelay::Quantile {
    ///     quantile: 0.99,
    ///     floor: Duration::from_millis(5),
    /// });
    /// assert!(matches!(p.delay(), HedgeDelay::Quantile { quantile, .. } if quantile == 0.99));
    /// ```
    pub fn with_delay(mut self, delay: HedgeDelay) -> Self {
        self.delay = match delay {
            HedgeDelay::Quantile { quantile, floor } => HedgeDelay::Quantile {
                quantile: if quantile.is_nan() {
                    0.95
                } else {
                    quantile.clamp(0.5, 0.999)
                },
                floor,
            },
            fixed => fixed,
        };
        self
    }

    /// Sets how many hedges one attempt may get (default 1), each a delay after the previous
    /// one; clamped to `1..=4` (gRPC caps a call at 5 attempts).
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::HedgePolicy;
    ///
    /// assert_eq!(HedgePolicy::new().with_max_extra(9).max_extra(), 4);
    /// ```
    pub fn with_max_extra(mut self, n: u32) -> Self {
        self.max_extra = n.clamp(1, 4);
        self
    }

    /// Sets the hedge budget of each host: hedges stay under `ratio` of the host's calls plus
    /// `min_per_sec` per second, over the last 10 s (default 0.05 and 1). A hedge the budget
    /// refuses is not sent and is counted (`hedges_refused`). `ratio` is clamped to `0..=1`.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::HedgePolicy;
    ///
    /// let p = HedgePolicy::new().with_budget(0.02, 0);
    /// assert_eq!((p.budget_ratio(), p.budget_min_per_sec()), (0.02, 0));
    /// ```
    pub fn with_budget(mut self, ratio: f64, min_per_sec: u32) -> Self {
        self.budget_ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        self.budget_min_per_sec = min_per_sec;
        self
    }

    /// Sets how many threads the pool keeps for sending hedges (default 4, at least 1),
    /// started when the first hedge is due. A hedge due while every one of them is busy waits
    /// for one; one whose call has ended by then is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::HedgePolicy;
    ///
    /// assert_eq!(HedgePolicy::new().with_threads(0).threads(), 1);
    /// ```
    pub fn with_threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// The delay before a hedge.
    pub fn delay(&self) -> HedgeDelay {
        self.delay
    }

    /// Hedges per attempt at most.
    pub fn max_extra(&self) -> u32 {
        self.max_extra
    }

    /// The budget's share of the host's calls.
    pub fn budget_ratio(&self) -> f64 {
        self.budget_ratio
    }

    /// The budget's hedges per second allowed whatever the calls.
    pub fn budget_min_per_sec(&self) -> u32 {
        self.budget_min_per_sec
    }

    /// The window the budget counts over (10 s).
    pub fn budget_window(&self) -> Duration {
        self.budget_window
    }

    /// The pool's hedge threads at most.
    pub fn threads(&self) -> usize {
        self.threads
    }
}
