//! Adaptive per-host concurrency limits, shared by every client of a pool.
//!
//! A fixed cap on requests in flight to a host has to be guessed: too low and a big server is
//! crawled against, too high and a small one melts. With [`AdaptiveLimit`] set on the pool, each
//! host has a limit learned by AIMD (additive increase, multiplicative decrease), the loss-based
//! algorithm of Netflix's `concurrency-limits` (`AIMDLimit`) and of TCP congestion control: one
//! more slot after a success within the latency target, 10 % fewer after a `503`, a `429`, a
//! timeout or a response slower than the target.
//!
//! An attempt over its host's limit waits (on a condition variable, not spinning) for a slot,
//! up to its call's deadline, and then fails with
//! [`ErrorKind::Overloaded`](crate::ErrorKind::Overloaded) without being sent.
//!
//! # What a slot covers
//!
//! The limit counts requests waiting for their response head: a slot is taken before the
//! request is sent and given back when the head has arrived (or the attempt failed), when the
//! attempt's outcome is classified. The work the limit protects is the server's work before it
//! answers; a body being read (an event stream open for an hour, a download) is in the caller's
//! hands and holds no slot. The latency that is compared with the target is the same interval,
//! from the request to its head.
//!
//! # One change per round trip
//!
//! Every outcome is a sample of the limit its attempt was admitted under. Netflix's `AIMDLimit`
//! updates on every sample, so with 100 requests in flight one round trip of successes raises
//! the limit by up to 100, and one round trip of slow responses cuts it by 0.9^100. Here an
//! outcome moves the limit only when its attempt was admitted under the current limit: the
//! first sample of each round trip decides, and the others, which measured a limit that is no
//! longer in force, are not counted. The limit then moves by at most one step per round trip,
//! like TCP's congestion window, and settles in a band just under the point where latency
//! crosses the target.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How a pool learns the concurrency each host can take. Off unless set with
/// [`PoolConfigBuilder::adaptive_concurrency`](crate::PoolConfigBuilder::adaptive_concurrency).
///
/// The defaults are those of Netflix `concurrency-limits`' `AIMDLimit.Builder`: an initial
/// limit of 20, a backoff ratio of 0.9, a maximum of 200 and a latency target (its `timeout`) of
/// 5 s, except the minimum: `AIMDLimit` never goes below 20, which would not protect a server
/// that can take 8; here the minimum is 1.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use http_sentinel::{AdaptiveLimit, ClientPool, PoolConfig};
///
/// let limit = AdaptiveLimit::new()
///     .with_initial_limit(10)
///     .with_bounds(2, 64)
///     .with_latency_target(Duration::from_millis(250));
/// let pool = ClientPool::new(PoolConfig::builder().adaptive_concurrency(limit).build())?;
/// assert_eq!(pool.config().adaptive_concurrency().unwrap().initial_limit(), 10);
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveLimit {
    initial: u32,
    min: u32,
    max: u32,
    backoff: f64,
    target: Duration,
}

impl AdaptiveLimit {
    /// The defaults: initial limit 20, bounds 1 to 200, backoff ratio 0.9, latency target 5 s.
    pub const fn new() -> AdaptiveLimit {
        AdaptiveLimit {
            initial: 20,
            min: 1,
            max: 200,
            backoff: 0.9,
            target: Duration::from_secs(5),
        }
    }

    /// The limit a host starts with, before anything is learnt. Kept within the bounds.
    /// Defaults to 20.
    ///
    /// # Panics
    ///
    /// If `limit` is 0.
    pub fn with_initial_limit(mut self, limit: u32) -> AdaptiveLimit {
        assert!(limit > 0, "a concurrency limit needs at least one slot");
        self.initial = limit;
        self
    }

    /// The least and the most the limit may become. Defaults to 1 and 200.
    ///
    /// # Panics
    ///
    /// If `min` is 0 or `max` is less than `min`.
    pub fn with_bounds(mut self, min: u32, max: u32) -> AdaptiveLimit {
        assert!(min > 0, "a concurrency limit needs at least one slot");
        assert!(
            max >= min,
            "the maximum limit {max} is under the minimum {min}"
        );
        self.min = min;
        self.max = max;
        self
    }

    /// What the limit is multiplied by on a drop (a `503`, a `429`, a timeout, a response
    /// slower than the target); the limit always falls by at least one. Defaults to 0.9.
    ///
    /// # Panics
    ///
    /// If `ratio` is not in `[0.5, 1.0)`, the range `AIMDLimit` accepts.
    pub fn with_backoff_ratio(mut self, ratio: f64) -> AdaptiveLimit {
        assert!(
            (0.5..1.0).contains(&ratio),
            "the backoff ratio must be in [0.5, 1.0), got {ratio}"
        );
        self.backoff = ratio;
        self
    }

    /// A response head that takes longer than this counts as a drop. Defaults to 5 s.
    ///
    /// # Panics
    ///
    /// If `target` is zero.
    pub fn with_latency_target(mut self, target: Duration) -> AdaptiveLimit {
        assert!(!target.is_zero(), "the latency target must be positive");
        self.target = target;
        self
    }

    /// The limit a host starts with (within the bounds).
    pub fn initial_limit(&self) -> u32 {
        self.initial.clamp(self.min, self.max)
    }

    /// The least and the most the limit may become.
    pub const fn bounds(&self) -> (u32, u32) {
        (self.min, self.max)
    }

    /// The backoff ratio.
    pub const fn backoff_ratio(&self) -> f64 {
        self.backoff
    }

    /// The latency target.
    pub const fn latency_target(&self) -> Duration {
        self.target
    }

    /// The limit after `sample`, from `limit` with `in_flight` attempts out (the sampled one
    /// included).
    fn next(&self, limit: u32, in_flight: u32, sample: Sample) -> u32 {
        let dropped = match sample {
            Sample::Ignore => return limit,
            Sample::Drop => true,
            Sample::Answered(latency) => latency > self.target,
        };
        let next = if dropped {
            // At least one fewer: 0.9 of a small limit rounds back to itself.
            ((f64::from(limit) * self.backoff) as u32).min(limit.saturating_sub(1))
        } else if in_flight >= limit {
            limit.saturating_add(1)
        } else {
            // Raised only when it binds (every slot taken), as TCP does not grow a window
            // the sender does not fill (RFC 7661). AIMDLimit raises a limit half used: with
            // slots given back at the response head, callers between two requests keep the
            // use under the limit, which then drifts above what the host was tested at.
            limit
        };
        next.clamp(self.min, self.max)
    }
}

impl Default for AdaptiveLimit {
    fn default() -> AdaptiveLimit {
        AdaptiveLimit::new()
    }
}

/// What one attempt's outcome says about the host's limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Sample {
    /// A response head (not a `503` or `429`) after this long.
    Answered(Duration),
    /// A `503`, a `429` or a timeout.
    Drop,
    /// Says nothing about the host's load (a refused connection, a TLS failure, ...).
    Ignore,
}

/// A snapshot of one host's limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimitSnapshot {
    pub(crate) limit: u32,
    pub(crate) in_flight: u32,
}

#[derive(Debug)]
struct State {
    limit: u32,
    in_flight: u32,
    /// Bumped on every change of the limit: a permit of an older epoch sampled a limit that
    /// is no longer in force.
    epoch: u64,
    /// Attempts waiting for a slot, oldest first: a slot given back goes to the oldest, so a
    /// thread that gives one back and asks again at once cannot barge ahead of the others.
    waiters: VecDeque<Waiter>,
    next_waiter: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    wake: Arc<Condvar>,
}

impl State {
    fn take(&mut self, limiter: &Arc<HostLimiter>) -> Permit {
        self.in_flight += 1;
        Permit {
            limiter: limiter.clone(),
            epoch: self.epoch,
            done: false,
        }
    }

    /// Wakes the oldest waiter when a slot is free for it.
    fn wake_oldest(&self) {
        if self.in_flight < self.limit {
            if let Some(w) = self.waiters.front() {
                w.wake.notify_one();
            }
        }
    }
}

/// The limiter of one host, shared by every client of the pool.
#[derive(Debug)]
pub(crate) struct HostLimiter {
    config: AdaptiveLimit,
    state: Mutex<State>,
}

/// A slot held by one attempt: given back on [`Permit::complete`] with the attempt's sample,
/// or on drop without one.
#[derive(Debug)]
pub(crate) struct Permit {
    limiter: Arc<HostLimiter>,
    epoch: u64,
    done: bool,
}

/// Why no slot was had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) limit: u32,
    pub(crate) waited: Duration,
}

impl HostLimiter {
    pub(crate) fn new(config: &AdaptiveLimit) -> HostLimiter {
        HostLimiter {
            state: Mutex::new(State {
                limit: config.initial_limit(),
                in_flight: 0,
                epoch: 0,
                waiters: VecDeque::new(),
                next_waiter: 0,
            }),
            config: config.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole, so a panic elsewhere cannot have broken it.
        crate::sync::lock(&self.state)
    }

    /// A slot, waiting for one (in turn, oldest first) up to `deadline`. Returns the permit
    /// and how long it waited, if it had to.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<(Permit, Option<Duration>), Refused> {
        let mut state = self.lock();
        if state.waiters.is_empty() && state.in_flight < state.limit {
            return Ok((state.take(self), None));
        }
        let start = Instant::now();
        let id = state.next_waiter;
        state.next_waiter += 1;
        let wake = Arc::new(Condvar::new());
        state.waiters.push_back(Waiter {
            id,
            wake: wake.clone(),
        });
        loop {
            // A free slot is taken even just past the deadline: the wake-up that came for it
            // must not go to waste (the caller checks its deadline next).
            let first = state.waiters.front().is_some_and(|w| w.id == id);
            if first && state.in_flight < state.limit {
                state.waiters.pop_front();
                let permit = state.take(self);
                state.wake_oldest();
                return Ok((permit, Some(start.elapsed())));
            }
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                state.waiters.retain(|w| w.id != id);
                state.wake_oldest();
                return Err(Refused {
                    limit: state.limit,
                    waited: now.saturating_duration_since(start),
                });
            }
            state = wake
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// A slot if one is free now and nobody waits for one: for an extra attempt (a hedge),
    /// which never queues behind the host's calls.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut state = self.lock();
        (state.waiters.is_empty() && state.in_flight < state.limit).then(|| state.take(self))
    }

    /// The limit and the attempts in flight now.
    pub(crate) fn snapshot(&self) -> LimitSnapshot {
        let state = self.lock();
        LimitSnapshot {
            limit: state.limit,
            in_flight: state.in_flight,
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().waiters.len()
    }

    fn release(&self, epoch: u64, sample: Sample) {
        let mut state = self.lock();
        let before = state.limit;
        if epoch == state.epoch {
            state.limit = self.config.next(before, state.in_flight, sample);
            if state.limit != before {
                state.epoch += 1;
                log::debug!("concurrency limit {before} -> {}", state.limit);
            }
        }
        state.in_flight -= 1;
        // The slot given back goes to the oldest waiter (who passes on any further free slot).
        state.wake_oldest();
    }
}

impl Permit {
    /// Gives the slot back, with what the attempt's outcome says about the host.
    pub(crate) fn complete(mut self, sample: Sample) {
        self.done = true;
        self.limiter.release(self.epoch, sample);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.limiter.release(self.epoch, Sample::Ignore);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limiter(config: AdaptiveLimit) -> Arc<HostLimiter> {
        Arc::new(HostLimiter::new(&config))
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn defaults_are_aimd_limits_but_a_minimum_of_one() {
        let c = AdaptiveLimit::new();
        assert_eq!(c.initial_limit(), 20);
        assert_eq!(c.bounds(), (1, 200));
        assert_eq!(c.backoff_ratio(), 0.9);
        assert_eq!(c.latency_target(), Duration::from_secs(5));
    }

    #[test]
    fn increase_is_one_and_decrease_is_the_ratio_at_least_one() {
        let c = AdaptiveLimit::new().with_latency_target(100 * MS);
        assert_eq!(c.next(20, 20, Sample::Answered(10 * MS)), 21);
        assert_eq!(c.next(20, 20, Sample::Answered(101 * MS)), 18);
        assert_eq!(c.next(20, 20, Sample::Drop), 18);
        assert_eq!(c.next(100, 1, Sample::Drop), 90);
        assert_eq!(c.next(5, 5, Sample::Drop), 4);
        assert_eq!(c.next(1, 1, Sample::Drop), 1);
        assert_eq!(c.next(20, 20, Sample::Ignore), 20);
        // A limit not used to its last slot is not raised.
        assert_eq!(c.next(20, 19, Sample::Answered(MS)), 20);
        assert_eq!(c.next(20, 20, Sample::Answered(MS)), 21);
    }

    #[test]
    fn bounds_hold_both_ways() {
        let c = AdaptiveLimit::new()
            .with_bounds(4, 6)
            .with_initial_limit(50);
        assert_eq!(c.initial_limit(), 6);
        assert_eq!(c.next(6, 6, Sample::Answered(MS)), 6);
        assert_eq!(c.next(4, 4, Sample::Drop), 4);
    }

    #[test]
    fn never_more_permits_than_the_limit() {
        let l = limiter(AdaptiveLimit::new().with_initial_limit(2));
        let (a, _) = l.acquire(far()).unwrap();
        let (b, _) = l.acquire(far()).unwrap();
        let refused = l.acquire(Instant::now() + 20 * MS).unwrap_err();
        assert_eq!(refused.limit, 2);
        assert!(refused.waited >= 19 * MS, "{refused:?}");
        drop(a);
        let (c, _) = l.acquire(Instant::now()).unwrap();
        assert_eq!(l.snapshot().in_flight, 2);
        drop((b, c));
        assert_eq!(l.snapshot().in_flight, 0);
    }

    #[test]
    fn only_samples_of_the_current_limit_move_it() {
        let l = limiter(AdaptiveLimit::new().with_initial_limit(10));
        let permits: Vec<_> = (0..10).map(|_| l.acquire(far()).unwrap().0).collect();
        // Ten drops of one round trip: one decrease, not ten.
        for p in permits {
            p.complete(Sample::Drop);
        }
        assert_eq!(l.snapshot().limit, 9);
        // A permit taken after the change samples the new limit.
        let fresh: Vec<_> = (0..9).map(|_| l.acquire(far()).unwrap().0).collect();
        for p in fresh {
            p.complete(Sample::Answered(MS));
        }
        assert_eq!(
            l.snapshot(),
            LimitSnapshot {
                limit: 10,
                in_flight: 0
            }
        );
    }

    #[test]
    fn a_waiter_gets_the_slot_given_back() {
        let l = limiter(AdaptiveLimit::new().with_initial_limit(1));
        let (held, _) = l.acquire(far()).unwrap();
        let waiter = {
            let l = l.clone();
            std::thread::spawn(move || l.acquire(far()).is_ok())
        };
        held.complete(Sample::Ignore);
        assert!(waiter.join().unwrap());
        assert_eq!(l.snapshot().in_flight, 0);
    }

    #[test]
    fn a_slot_given_back_goes_to_the_oldest_waiter_not_to_a_newcomer() {
        let l = limiter(AdaptiveLimit::new().with_initial_limit(1));
        let (held, _) = l.acquire(far()).unwrap();
        // A waiter that gives up leaves the queue without blocking the ones behind it.
        assert!(l.acquire(Instant::now() + MS).is_err());
        assert_eq!(l.waiting(), 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let l = l.clone();
            std::thread::spawn(move || {
                let (permit, waited) = l.acquire(far()).unwrap();
                assert!(waited.is_some());
                rx.recv().unwrap();
                drop(permit);
            })
        };
        let queued = Instant::now() + Duration::from_secs(10);
        while l.waiting() == 0 && Instant::now() < queued {
            std::thread::yield_now();
        }
        assert_eq!(l.waiting(), 1);
        held.complete(Sample::Ignore);
        // The slot is the waiter's, woken or not yet: a newcomer does not get it.
        assert!(l.acquire(Instant::now()).is_err());
        tx.send(()).unwrap();
        waiter.join().unwrap();
        assert!(l.acquire(Instant::now()).is_ok());
    }
}
