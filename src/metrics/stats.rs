//! The snapshot types: [`Stats`] (totals, per-host figures, pool and breaker states),
//! [`HostStats`] and [`PoolState`], and [`Stats::delta`].

use super::counters::Counters;
use super::histogram::{HistogramSnapshot, LatencySummary};

/// A snapshot of a pool's clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolState {
    /// Clients created so far (idle plus checked out).
    pub clients: usize,
    /// Clients waiting in the pool.
    pub idle: usize,
    /// Clients checked out by workers.
    pub checked_out: usize,
    /// Threads blocked in `checkout`.
    pub waiting: usize,
    /// The most clients the pool creates.
    pub max_clients: usize,
}

/// Counter getters shared by [`Stats`] (all hosts) and [`HostStats`] (one host).
macro_rules! counter_getters {
    () => {
        /// Logical calls: one per request, however many attempts it took.
        pub fn calls(&self) -> u64 {
            self.counters.calls
        }

        /// Attempts sent, first attempts and retries alike.
        pub fn attempts(&self) -> u64 {
            self.counters.attempts
        }

        /// Calls that returned a response, whatever its status.
        pub fn successes(&self) -> u64 {
            self.counters.successes
        }

        /// Calls that ended in an error, all [`ErrorClass`](crate::ErrorClass)es
        /// together.
        pub fn failures(&self) -> u64 {
            self.counters.failures()
        }

        /// Calls that ended in an error of class `class`.
        pub fn failures_by(&self, class: crate::error::ErrorClass) -> u64 {
            self.counters.failures[class.index()]
        }

        /// Responses in status class `class`: 1 for 1xx through 5 for 5xx; 0 for any other
        /// `class`.
        pub fn responses_by_class(&self, class: u8) -> u64 {
            usize::from(class)
                .checked_sub(1)
                .and_then(|index| self.counters.responses.get(index))
                .copied()
                .unwrap_or(0)
        }

        /// Attempts made after a call's first attempt.
        pub fn retries(&self) -> u64 {
            self.counters.retries
        }

        /// Retries that were warranted but not made because the retry budget was spent.
        pub fn retries_refused(&self) -> u64 {
            self.counters.retries_refused
        }

        /// Calls rejected by an open circuit breaker without being sent.
        pub fn breaker_rejections(&self) -> u64 {
            self.counters.breaker_rejections
        }

        /// Requests replayed because a pooled connection turned out to be stale.
        pub fn stale_replays(&self) -> u64 {
            self.counters.stale_replays
        }

        /// Redirects followed.
        pub fn redirects(&self) -> u64 {
            self.counters.redirects
        }

        /// New connections opened.
        pub fn connections_opened(&self) -> u64 {
            self.counters.connections_opened
        }

        /// Response body bytes received.
        pub fn bytes_received(&self) -> u64 {
            self.counters.bytes_received
        }

        /// Share of attempts that reused a connection: `1 - connections_opened / attempts`,
        /// clamped to `0.0..=1.0`, and `0.0` when there were no attempts.
        pub fn reuse_ratio(&self) -> f64 {
            self.counters.reuse_ratio()
        }

        /// Latency of whole calls, retries and backoff included.
        pub fn call_latency(&self) -> super::histogram::LatencySummary {
            self.counters.call_latency.summary()
        }

        /// Latency of single attempts.
        pub fn attempt_latency(&self) -> super::histogram::LatencySummary {
            self.counters.attempt_latency.summary()
        }
    };
}

/// The counters and latencies of one host, part of a [`Stats`] snapshot.
#[derive(Debug, Clone)]
pub struct HostStats {
    pub(super) host: String,
    pub(super) counters: Counters,
}

impl HostStats {
    /// The host these figures are for.
    pub fn host(&self) -> &str {
        &self.host
    }

    counter_getters!();
}

/// A snapshot of a pool's metrics: totals, per-host figures, pool state and breaker states.
///
/// Counters are cumulative since the pool was created; use [`Stats::delta`] for an interval.
/// `Display` renders a compact table and [`Stats::to_prometheus`] the Prometheus text format.
///
/// # Examples
///
/// ```
/// use http_sentinel::Stats;
///
/// // Normally taken from the pool; an empty snapshot reads as all zeros.
/// let stats = Stats::default();
/// assert_eq!(stats.calls(), 0);
/// assert_eq!(stats.reuse_ratio(), 0.0);
/// assert!(stats.hosts().is_empty());
/// assert!(stats.to_string().starts_with("calls 0"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub(super) counters: Counters,
    pub(super) hosts: Vec<HostStats>,
    pub(super) pool: PoolState,
    pub(super) checkouts: u64,
    pub(super) checkout_timeouts: u64,
    pub(super) checkout_wait: HistogramSnapshot,
    pub(super) breakers: Vec<(String, String)>,
}

impl Stats {
    counter_getters!();

    /// Pool state when the snapshot was taken.
    pub fn pool(&self) -> PoolState {
        self.pool
    }

    /// Successful client checkouts.
    pub fn checkouts(&self) -> u64 {
        self.checkouts
    }

    /// Checkouts that gave up waiting for a client.
    pub fn checkout_timeouts(&self) -> u64 {
        self.checkout_timeouts
    }

    /// Time spent waiting in checkout, successful and timed-out checkouts alike.
    pub fn checkout_wait(&self) -> LatencySummary {
        self.checkout_wait.summary()
    }

    /// Per-host figures, sorted by host.
    pub fn hosts(&self) -> &[HostStats] {
        &self.hosts
    }

    /// The figures for `host`, if any call was ever made to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::Stats;
    ///
    /// assert!(Stats::default().host("example.com").is_none());
    /// ```
    pub fn host(&self, host: &str) -> Option<&HostStats> {
        self.hosts
            .binary_search_by(|h| h.host.as_str().cmp(host))
            .ok()
            .map(|index| &self.hosts[index])
    }

    /// Circuit breaker states as `(host, state)`, sorted by host.
    pub fn breakers(&self) -> &[(String, String)] {
        &self.breakers
    }

    /// Sets the breaker states reported with this snapshot (`(host, state label)`; the label
    /// `open` marks an open breaker in the Prometheus output).
    pub(crate) fn set_breakers(&mut self, mut breakers: Vec<(String, String)>) {
        breakers.sort();
        self.breakers = breakers;
    }

    /// What happened between `earlier` and `self`: counters and histograms are subtracted
    /// (saturating at zero, so an `earlier` from another pool cannot underflow), while the pool
    /// state and breaker states are `self`'s. Hosts first seen after `earlier` keep their full
    /// counts; an interval's maximum latency is exact to within one histogram bucket.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::Stats;
    ///
    /// let earlier = Stats::default();
    /// let now = Stats::default();
    /// let interval = now.delta(&earlier);
    /// assert_eq!(interval.calls(), 0);
    /// assert_eq!(interval.pool(), now.pool());
    /// ```
    pub fn delta(&self, earlier: &Stats) -> Stats {
        let hosts = self
            .hosts
            .iter()
            .map(|now| HostStats {
                host: now.host.clone(),
                counters: match earlier.host(&now.host) {
                    Some(then) => now.counters.saturating_sub(&then.counters),
                    None => now.counters.clone(),
                },
            })
            .collect();
        Stats {
            counters: self.counters.saturating_sub(&earlier.counters),
            hosts,
            pool: self.pool,
            checkouts: self.checkouts.saturating_sub(earlier.checkouts),
            checkout_timeouts: self
                .checkout_timeouts
                .saturating_sub(earlier.checkout_timeouts),
            checkout_wait: self.checkout_wait.saturating_sub(&earlier.checkout_wait),
            breakers: self.breakers.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use crate::metrics::counters::{add, inc, HostCounters};
    use crate::metrics::registry::Registry;
    use crate::metrics::stats::PoolState;
    use std::sync::Arc;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// One shard with a distinct value in every counter, so a field mixed up or left out of the
    /// summing or subtraction shows up as a wrong number.
    fn fill_every_counter(c: &HostCounters, k: u64) {
        add(&c.calls, k);
        add(&c.attempts, 2 * k);
        add(&c.successes, 3 * k);
        for (i, &class) in ErrorClass::ALL.iter().enumerate() {
            for _ in 0..(i as u64 + 1) * k {
                c.record_failure(class);
            }
        }
        for (i, status) in [100, 200, 300, 400, 500].into_iter().enumerate() {
            for _ in 0..(i as u64 + 20) * k {
                c.record_status(status);
            }
        }
        add(&c.retries, 4 * k);
        add(&c.retries_refused, 5 * k);
        add(&c.breaker_rejections, 6 * k);
        add(&c.stale_replays, 7 * k);
        add(&c.redirects, 8 * k);
        add(&c.connections_opened, 9 * k);
        add(&c.bytes_received, 10 * k);
        c.call_latency.record(ms(k));
        c.attempt_latency.record(us(k));
        c.attempt_latency.record(us(k));
    }

    fn assert_every_counter(
        get: &dyn Fn() -> [u64; 10],
        failures: &dyn Fn(ErrorClass) -> u64,
        responses: &dyn Fn(u8) -> u64,
        k: u64,
    ) {
        assert_eq!(
            get(),
            [
                k,
                2 * k,
                3 * k,
                4 * k,
                5 * k,
                6 * k,
                7 * k,
                8 * k,
                9 * k,
                10 * k
            ]
        );
        for (i, &class) in ErrorClass::ALL.iter().enumerate() {
            assert_eq!(failures(class), (i as u64 + 1) * k, "{class}");
        }
        for class in 1..=5u8 {
            assert_eq!(responses(class), (u64::from(class) + 19) * k, "{class}xx");
        }
    }

    fn scalars_of(s: &Stats) -> [u64; 10] {
        [
            s.calls(),
            s.attempts(),
            s.successes(),
            s.retries(),
            s.retries_refused(),
            s.breaker_rejections(),
            s.stale_replays(),
            s.redirects(),
            s.connections_opened(),
            s.bytes_received(),
        ]
    }

    fn host_scalars_of(s: &HostStats) -> [u64; 10] {
        [
            s.calls(),
            s.attempts(),
            s.successes(),
            s.retries(),
            s.retries_refused(),
            s.breaker_rejections(),
            s.stale_replays(),
            s.redirects(),
            s.connections_opened(),
            s.bytes_received(),
        ]
    }

    #[test]
    fn every_counter_reaches_the_snapshot() {
        let registry = Arc::new(Registry::new());
        let mut one = registry.recorder();
        let mut two = registry.recorder();
        fill_every_counter(one.host("h"), 1);
        fill_every_counter(two.host("h"), 2);
        let stats = registry.snapshot(PoolState::default());
        assert_every_counter(
            &|| scalars_of(&stats),
            &|c| stats.failures_by(c),
            &|c| stats.responses_by_class(c),
            3,
        );
        let h = stats.host("h").unwrap();
        assert_every_counter(
            &|| host_scalars_of(h),
            &|c| h.failures_by(c),
            &|c| h.responses_by_class(c),
            3,
        );
        assert_eq!(stats.failures(), 120 * 3);
        assert_eq!(h.call_latency().count(), 2);
        assert_eq!(h.call_latency().max(), ms(2));
        assert_eq!(h.attempt_latency().count(), 4);
    }

    // -- delta --------------------------------------------------------------------------------

    #[test]
    fn delta_subtracts_exactly() {
        let registry = Arc::new(Registry::new());
        let mut rec = registry.recorder();
        fill_every_counter(rec.host("busy"), 2);
        fill_every_counter(rec.host("idle"), 1);
        registry.record_checkout(us(10));
        let mut earlier = registry.snapshot(PoolState::default());
        earlier.set_breakers(vec![("busy".into(), "closed".into())]);

        // The interval: five more units on "busy", a first call to "new", more checkouts.
        fill_every_counter(rec.host("busy"), 5);
        fill_every_counter(rec.host("new"), 4);
        registry.record_checkout(ms(3));
        registry.record_checkout_timeout(ms(7));
        let pool = PoolState {
            clients: 2,
            idle: 0,
            checked_out: 2,
            waiting: 1,
            max_clients: 2,
        };
        let mut later = registry.snapshot(pool);
        later.set_breakers(vec![("busy".into(), "open".into())]);

        let d = later.delta(&earlier);
        assert_every_counter(
            &|| scalars_of(&d),
            &|c| d.failures_by(c),
            &|c| d.responses_by_class(c),
            9,
        );
        let busy = d.host("busy").unwrap();
        assert_every_counter(
            &|| host_scalars_of(busy),
            &|c| busy.failures_by(c),
            &|c| busy.responses_by_class(c),
            5,
        );
        let new = d.host("new").unwrap();
        assert_every_counter(
            &|| host_scalars_of(new),
            &|c| new.failures_by(c),
            &|c| new.responses_by_class(c),
            4,
        );
        let idle = d.host("idle").unwrap();
        assert_eq!(idle.counters, Counters::default());
        assert_eq!(idle.call_latency().count(), 0);

        // Histograms: the interval recorded one call each of 5 ms and 4 ms.
        assert_eq!(d.call_latency().count(), 2);
        assert_eq!(d.call_latency().max(), ms(5));
        assert_eq!(d.call_latency().mean(), us(4_500));
        assert_eq!(busy.call_latency().count(), 1);
        assert_eq!(busy.call_latency().max(), ms(5));
        assert_eq!(d.attempt_latency().count(), 4);

        assert_eq!(d.checkouts(), 1);
        assert_eq!(d.checkout_timeouts(), 1);
        assert_eq!(d.checkout_wait().count(), 2);
        assert_eq!(d.checkout_wait().max(), ms(7));
        assert_eq!(d.pool(), pool);
        assert_eq!(d.breakers(), [("busy".to_owned(), "open".to_owned())]);

        // Subtracting a snapshot from itself leaves only zeros; the other way round saturates.
        let none = later.delta(&later);
        assert_eq!(none.counters, Counters::default());
        assert!(none
            .hosts()
            .iter()
            .all(|h| h.counters == Counters::default()));
        assert_eq!(earlier.delta(&later).calls(), 0);
        assert_eq!(later.delta(&Stats::default()).counters, later.counters);
    }

    #[test]
    fn reuse_ratio_edges() {
        let registry = Arc::new(Registry::new());
        let mut rec = registry.recorder();
        add(
            &rec.host("more-connections-than-attempts")
                .connections_opened,
            3,
        );
        add(&rec.host("more-connections-than-attempts").attempts, 1);
        inc(&rec.host("no-attempts").calls);
        let stats = registry.snapshot(PoolState::default());
        assert_eq!(
            stats
                .host("more-connections-than-attempts")
                .unwrap()
                .reuse_ratio(),
            0.0
        );
        assert_eq!(stats.host("no-attempts").unwrap().reuse_ratio(), 0.0);
        assert_eq!(Stats::default().reuse_ratio(), 0.0);
    }
}
