//! The snapshot types: [`Stats`] (totals, per-host figures, pool and breaker states),
//! [`HostStats`] and [`PoolState`], their getters, and [`Stats::delta`].

use super::counters::{counter_list, Counters};
use super::histogram::{HistogramSnapshot, LatencySummary};
use super::otel::{OpenConnectionsSeries, OtelSnapshot, RequestDurationSeries};
use super::status_class::StatusClass;
use crate::breaker::BreakerState;
use crate::error::ErrorClass;

/// A snapshot of a pool's clients, as [`ClientPool::state`](crate::ClientPool::state) and
/// [`Stats::pool`] report it.
///
/// The figures were read at one moment and may be out of date the next. The fields are public
/// to read; the struct is `#[non_exhaustive]`, so only this crate builds it and fields can be
/// added without breaking anyone.
///
/// # Examples
///
/// ```
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::builder().max_clients(4).build())?;
/// let state = pool.state();
/// assert_eq!((state.clients, state.checked_out, state.max_clients), (0, 0, 4));
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
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

/// The counters and latencies of one host, part of a [`Stats`] snapshot. It has the same
/// counter getters as [`Stats`], for this host alone.
///
/// # Examples
///
/// ```
/// use http_sentinel::Stats;
///
/// let stats = Stats::default(); // normally `pool.stats()`
/// for host in stats.hosts() {
///     println!("{}: {} calls, {} succeeded", host.host(), host.calls(), host.calls_succeeded());
/// }
/// ```
#[derive(Debug, Clone)]
pub struct HostStats {
    pub(super) host: String,
    pub(super) counters: Counters,
    /// The host's adaptive concurrency limit and its attempts in flight, when the pool has one.
    pub(super) concurrency: Option<(u32, u32)>,
}

/// A snapshot of a pool's metrics: totals, per-host figures, pool state and breaker states.
///
/// Calls and attempts are counted apart:
///
/// - **Calls**, by how they ended. Every call ends either with a final response, counted by
///   its status class ([`calls_with_status`](Self::calls_with_status)), or with an error,
///   counted by its class ([`calls_with_error`](Self::calls_with_error), all together
///   [`calls_errored`](Self::calls_errored)). A call *succeeded* when its final response was
///   `2xx` or `3xx` ([`calls_succeeded`](Self::calls_succeeded)); a final `5xx` is not a
///   success. So `calls() == calls_succeeded() + final 1xx, 4xx and 5xx + calls_errored()`.
/// - **Attempts**, and per attempt the [`responses`](Self::responses) received, by status
///   class, including the responses that were then retried or redirected.
///
/// Counters are cumulative since the pool was created; use [`Stats::delta`] for an interval.
/// `Display` renders a compact table and [`Stats::to_prometheus`] the Prometheus text format.
///
/// # Examples
///
/// ```
/// use http_sentinel::{Stats, metrics::StatusClass};
///
/// let stats = Stats::default(); // normally `pool.stats()`
/// let answered: u64 = StatusClass::ALL
///     .iter()
///     .map(|&class| stats.calls_with_status(class))
///     .sum();
/// assert_eq!(stats.calls(), answered + stats.calls_errored());
/// assert_eq!(stats.reuse_ratio(), None);
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
    pub(super) breakers: Vec<(String, BreakerState)>,
    pub(super) otel: OtelSnapshot,
}

/// The `# Examples` section of a getter of `Stats` or of `HostStats`: `$call` is the method call
/// after the receiver, `$empty` what it returns for an empty snapshot.
macro_rules! example {
    (Stats, $call:expr, $empty:literal) => {
        concat!(
            "# Examples\n\n```\n",
            "use http_sentinel::{error::ErrorClass, Stats, metrics::StatusClass};\n\n",
            "let stats = Stats::default(); // normally `pool.stats()`\n",
            "assert_eq!(stats.",
            $call,
            ", ",
            $empty,
            ");\n```",
        )
    };
    (HostStats, $call:expr, $empty:literal) => {
        concat!(
            "# Examples\n\n```\n",
            "use http_sentinel::{error::ErrorClass, Stats, metrics::StatusClass};\n\n",
            "let stats = Stats::default(); // normally `pool.stats()`\n",
            "for host in stats.hosts() {\n",
            "    println!(\"{}: {:?}\", host.host(), host.",
            $call,
            ");\n}\n```",
        )
    };
}

/// One getter of the counter list, by kind.
macro_rules! getter {
    ($ty:ident, scalar, $name:ident, $help:literal, [$($doc:literal),*]) => {
        #[doc = $help]
        #[doc = ""]
        $(#[doc = $doc])*
        #[doc = ""]
        #[doc = example!($ty, concat!(stringify!($name), "()"), "0")]
        pub fn $name(&self) -> u64 {
            self.counters.$name
        }
    };
    ($ty:ident, by_status, $name:ident, $help:literal, [$($doc:literal),*]) => {
        #[doc = $help]
        #[doc = ""]
        $(#[doc = $doc])*
        #[doc = ""]
        #[doc = example!($ty, concat!(stringify!($name), "(StatusClass::ServerError)"), "0")]
        pub fn $name(&self, class: StatusClass) -> u64 {
            self.counters.$name[class.index()]
        }
    };
    ($ty:ident, by_error, $name:ident, $help:literal, [$($doc:literal),*]) => {
        #[doc = $help]
        #[doc = ""]
        $(#[doc = $doc])*
        #[doc = ""]
        #[doc = example!($ty, concat!(stringify!($name), "(ErrorClass::Timeout)"), "0")]
        pub fn $name(&self, class: ErrorClass) -> u64 {
            self.counters.$name[class.index()]
        }
    };
    ($ty:ident, latency, $name:ident, $help:literal, [$($doc:literal),*]) => {
        #[doc = $help]
        #[doc = ""]
        $(#[doc = $doc])*
        #[doc = ""]
        #[doc = example!($ty, concat!(stringify!($name), "().count()"), "0")]
        pub fn $name(&self) -> LatencySummary {
            self.counters.$name.summary()
        }
    };
}

/// [`counter_list!`]'s callback that gives `$ty` a getter per counter, plus the figures derived
/// from them.
macro_rules! getters {
    (
        ($ty:ident)
        $(
            $(#[doc = $doc:literal])*
            $name:ident : $kind:ident, $family:literal, [$($column:tt)*], $help:literal;
        )*
    ) => {
        impl $ty {
            $( getter!($ty, $kind, $name, $help, [$($doc),*]); )*

            /// Calls that succeeded: they ended with a `2xx` or `3xx` response, after any
            /// retries and redirects.
            ///
            /// A call whose final response was `4xx` or `5xx` did not succeed (see
            /// [`calls_with_status`](Self::calls_with_status)), nor did one that ended in an
            /// error (see [`calls_errored`](Self::calls_errored)). The success rate the
            /// `Display` table shows is `calls_succeeded() / calls()`.
            #[doc = ""]
            #[doc = example!($ty, "calls_succeeded()", "0")]
            pub fn calls_succeeded(&self) -> u64 {
                self.counters.succeeded()
            }

            /// Calls that ended in an error instead of a response, every [`ErrorClass`]
            /// together; [`calls_with_error`](Self::calls_with_error) tells them apart.
            #[doc = ""]
            #[doc = example!($ty, "calls_errored()", "0")]
            pub fn calls_errored(&self) -> u64 {
                self.counters.errored()
            }

            /// Share of attempts that reused a connection: `1 - connections_opened / attempts`,
            /// clamped to `0.0..=1.0`; `None` when there were no attempts.
            #[doc = ""]
            #[doc = example!($ty, "reuse_ratio()", "None")]
            pub fn reuse_ratio(&self) -> Option<f64> {
                self.counters.reuse_ratio()
            }
        }
    };
}

counter_list!(getters, Stats);
counter_list!(getters, HostStats);

impl HostStats {
    /// The host these figures are for, as `host:port`.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::Stats;
    ///
    /// let stats = Stats::default(); // normally `pool.stats()`
    /// let hosts: Vec<&str> = stats.hosts().iter().map(|h| h.host()).collect();
    /// assert!(hosts.is_empty());
    /// ```
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The concurrency limit learnt for this host, when the pool has an
    /// [`AdaptiveLimit`](crate::AdaptiveLimit).
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::Stats;
    ///
    /// let stats = Stats::default(); // normally `pool.stats()`
    /// for host in stats.hosts() {
    ///     if let Some(limit) = host.concurrency_limit() {
    ///         println!("{}: limit {limit}, {:?} in flight", host.host(), host.in_flight());
    ///     }
    /// }
    /// ```
    pub fn concurrency_limit(&self) -> Option<u32> {
        self.concurrency.map(|(limit, _)| limit)
    }

    /// Attempts to this host holding a slot of its concurrency limit (waiting for their
    /// response head), when the pool has an [`AdaptiveLimit`](crate::AdaptiveLimit).
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::Stats;
    ///
    /// let stats = Stats::default(); // normally `pool.stats()`
    /// assert!(stats.hosts().iter().all(|h| h.in_flight().is_none()));
    /// ```
    pub fn in_flight(&self) -> Option<u32> {
        self.concurrency.map(|(_, in_flight)| in_flight)
    }
}

impl Stats {
    /// A snapshot of `per_host` (in order of host, each host once) with their sum as the
    /// totals. The checkout figures and breaker states are left empty for the caller to fill.
    pub(super) fn from_hosts(
        per_host: impl IntoIterator<Item = (String, Counters)>,
        pool: PoolState,
    ) -> Stats {
        let mut counters = Counters::default();
        let hosts: Vec<HostStats> = per_host
            .into_iter()
            .map(|(host, host_counters)| {
                counters.merge(&host_counters);
                HostStats {
                    host,
                    counters: host_counters,
                    concurrency: None,
                }
            })
            .collect();
        debug_assert!(hosts.windows(2).all(|w| w[0].host < w[1].host));
        Stats {
            counters,
            hosts,
            pool,
            ..Stats::default()
        }
    }

    /// Pool state when the snapshot was taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.stats().pool(), pool.state());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn pool(&self) -> PoolState {
        self.pool
    }

    /// Successful client checkouts.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// drop(pool.checkout()?);
    /// assert_eq!(pool.stats().checkouts(), 1);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn checkouts(&self) -> u64 {
        self.checkouts
    }

    /// Checkouts that gave up waiting for a client.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::Stats;
    ///
    /// let stats = Stats::default(); // normally `pool.stats()`
    /// assert_eq!(stats.checkout_timeouts(), 0);
    /// ```
    pub fn checkout_timeouts(&self) -> u64 {
        self.checkout_timeouts
    }

    /// Time spent waiting in checkout, successful and timed-out checkouts alike.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::Stats;
    ///
    /// let stats = Stats::default(); // normally `pool.stats()`
    /// assert_eq!(stats.checkout_wait().count(), 0);
    /// ```
    pub fn checkout_wait(&self) -> LatencySummary {
        self.checkout_wait.summary()
    }

    /// Per-host figures, sorted by host.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::Stats;
    ///
    /// let stats = Stats::default(); // normally `pool.stats()`
    /// let busiest = stats.hosts().iter().max_by_key(|h| h.calls());
    /// assert!(busiest.is_none());
    /// ```
    pub fn hosts(&self) -> &[HostStats] {
        &self.hosts
    }

    /// The figures for `host` (`host:port`), if any call was ever made to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::Stats;
    ///
    /// assert!(Stats::default().host("example.com:443").is_none());
    /// ```
    pub fn host(&self, host: &str) -> Option<&HostStats> {
        self.hosts
            .binary_search_by(|h| h.host.as_str().cmp(host))
            .ok()
            .map(|index| &self.hosts[index])
    }

    /// Circuit breaker states as `(host, state)`, sorted by host.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{breaker::BreakerState, ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let stats = pool.stats();
    /// let open: Vec<&str> = stats
    ///     .breakers()
    ///     .iter()
    ///     .filter(|(_, state)| *state == BreakerState::Open)
    ///     .map(|(host, _)| host.as_str())
    ///     .collect();
    /// assert!(open.is_empty());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn breakers(&self) -> &[(String, BreakerState)] {
        &self.breakers
    }

    /// OpenTelemetry's `http.client.request.duration` series, one per attribute set, sorted;
    /// empty unless the pool was built with
    /// [`otel_metrics`](crate::PoolConfigBuilder::otel_metrics).
    pub fn otel_request_durations(&self) -> &[RequestDurationSeries] {
        &self.otel.durations
    }

    /// OpenTelemetry's `http.client.open_connections`, one entry per server; empty unless the
    /// pool was built with [`otel_metrics`](crate::PoolConfigBuilder::otel_metrics).
    pub fn otel_open_connections(&self) -> &[OpenConnectionsSeries] {
        &self.otel.open
    }

    pub(crate) fn set_otel(&mut self, otel: OtelSnapshot) {
        self.otel = otel;
    }

    /// Sets the breaker states reported with this snapshot.
    pub(crate) fn set_breakers(&mut self, mut breakers: Vec<(String, BreakerState)>) {
        breakers.sort_by(|a, b| a.0.cmp(&b.0));
        self.breakers = breakers;
    }

    /// Sets the hosts' concurrency limits, as `(host, limit, in flight)`, on their rows.
    pub(crate) fn set_concurrency(&mut self, limits: impl IntoIterator<Item = (String, u32, u32)>) {
        for (host, limit, in_flight) in limits {
            if let Ok(i) = self.hosts.binary_search_by(|h| h.host.as_str().cmp(&host)) {
                self.hosts[i].concurrency = Some((limit, in_flight));
            }
        }
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
    /// let earlier = Stats::default(); // normally `pool.stats()`, some time ago
    /// let now = Stats::default(); // and `pool.stats()` now
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
                concurrency: now.concurrency,
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
            otel: self.otel.saturating_sub(&earlier.otel),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::counters::{assert_filled, CallRecord, HostCounters, FAMILIES};
    use crate::metrics::histogram::Histogram;
    use std::time::Duration;
    use ureq::http::StatusCode;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// The sum of one shard per host, each filled with [`HostCounters::fill_distinct`] once per
    /// `k` listed for it.
    fn filled(hosts: &[(&str, &[u64])], pool: PoolState) -> Stats {
        let per_host = hosts.iter().map(|&(host, ks)| {
            let shard = HostCounters::default();
            for &k in ks {
                shard.fill_distinct(k);
            }
            let mut counters = Counters::default();
            counters.absorb(&shard);
            (host.to_owned(), counters)
        });
        Stats::from_hosts(per_host, pool)
    }

    fn waits(waits: &[Duration]) -> HistogramSnapshot {
        let h = Histogram::default();
        for &wait in waits {
            h.record(wait);
        }
        h.snapshot()
    }

    #[test]
    fn the_totals_are_the_sum_of_the_hosts() {
        let stats = filled(&[("a", &[1, 2]), ("b", &[4])], PoolState::default());
        assert_filled(&stats.counters, 7, 3);
        assert_filled(&stats.host("a").unwrap().counters, 3, 2);
        assert_filled(&stats.host("b").unwrap().counters, 4, 1);
        assert!(stats.host("c").is_none());
        let hosts: Vec<&str> = stats.hosts().iter().map(HostStats::host).collect();
        assert_eq!(hosts, ["a", "b"]);
    }

    #[test]
    fn delta_subtracts_exactly() {
        let mut earlier = filled(&[("busy", &[2]), ("idle", &[1])], PoolState::default());
        earlier.checkouts = 1;
        earlier.checkout_wait = waits(&[us(10)]);
        earlier.set_breakers(vec![("busy".into(), BreakerState::Closed)]);

        // The interval: five more units on "busy", a first call to "new", more checkouts.
        let pool = PoolState {
            clients: 2,
            idle: 0,
            checked_out: 2,
            waiting: 1,
            max_clients: 2,
        };
        let hosts: [(&str, &[u64]); 3] = [("busy", &[2, 5]), ("idle", &[1]), ("new", &[4])];
        let mut later = filled(&hosts, pool);
        later.checkouts = 2;
        later.checkout_timeouts = 1;
        later.checkout_wait = waits(&[us(10), ms(3), ms(7)]);
        later.set_breakers(vec![("busy".into(), BreakerState::Open)]);

        let d = later.delta(&earlier);
        assert_filled(&d.counters, 9, 2);
        assert_filled(&d.host("busy").unwrap().counters, 5, 1);
        assert_filled(&d.host("new").unwrap().counters, 4, 1);
        let idle = d.host("idle").unwrap();
        assert_eq!(idle.counters, Counters::default());
        assert_eq!(idle.call_latency().count(), 0);
        assert_eq!(idle.reuse_ratio(), None);

        // Histograms: the interval filled the call latency twice, with 5 and 4 times its unit.
        let unit = (1..)
            .zip(FAMILIES)
            .find(|(_, f)| f.name == "http_sentinel_call_duration_seconds")
            .unwrap()
            .0;
        assert_eq!(d.call_latency().count(), 2);
        assert_eq!(d.call_latency().max(), ms(5 * unit));
        assert_eq!(d.call_latency().mean(), us(4_500 * unit));

        assert_eq!(d.checkouts(), 1);
        assert_eq!(d.checkout_timeouts(), 1);
        assert_eq!(d.checkout_wait().count(), 2);
        assert_eq!(d.checkout_wait().max(), ms(7));
        assert_eq!(d.pool(), pool);
        assert_eq!(d.breakers(), [("busy".to_owned(), BreakerState::Open)]);

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
    fn breakers_are_sorted_by_host() {
        let mut stats = Stats::default();
        stats.set_breakers(vec![
            ("b.test:80".into(), BreakerState::HalfOpen),
            ("a.test:80".into(), BreakerState::Open),
        ]);
        let hosts: Vec<&str> = stats.breakers().iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(hosts, ["a.test:80", "b.test:80"]);
        assert_eq!(stats.breakers()[1].1, BreakerState::HalfOpen);
    }

    #[test]
    fn a_host_that_answers_500_to_everything_has_no_successes() {
        let shard = HostCounters::default();
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        for _ in 0..4 {
            shard.record_attempt(ms(1), 0, true, Some(status));
            shard.record_call(&CallRecord {
                latency: ms(1),
                retries: 0,
                retries_refused: 0,
                stale_replays: 0,
                redirects: 0,
                outcome: Ok(status),
            });
        }
        let mut counters = Counters::default();
        counters.absorb(&shard);
        let stats = Stats::from_hosts(
            [("down.test:80".to_owned(), counters)],
            PoolState::default(),
        );
        let h = stats.host("down.test:80").unwrap();
        assert_eq!(h.calls(), 4);
        assert_eq!(h.calls_succeeded(), 0);
        assert_eq!(h.calls_with_status(StatusClass::ServerError), 4);
        assert_eq!(h.calls_errored(), 0);
        assert_eq!(h.responses(StatusClass::ServerError), 4);
        assert_eq!(stats.calls_succeeded(), 0);
    }
}
