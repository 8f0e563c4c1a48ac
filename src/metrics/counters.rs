//! The one list of per-host counters, what is generated from it, and the record methods.
//!
//! [`counter_list!`] names every counter once. From it come:
//!
//! - [`HostCounters`], the atomic cells one client records into for one host;
//! - [`Counters`], their plain sum over shards, with `absorb`, `merge` and `saturating_sub`;
//! - [`FAMILIES`], one descriptor per counter, from which `prometheus.rs` writes the Prometheus
//!   families and `table.rs` the `Display` columns;
//! - the getters of `Stats` and `HostStats`, which `stats.rs` generates by handing its own macro
//!   to `counter_list!`.
//!
//! So adding a counter is one entry in the list, plus the line in a record method that counts
//! it.

use std::sync::atomic::{
    fence, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::time::Duration;

use ureq::http::StatusCode;

use super::histogram::{Histogram, HistogramSnapshot};
use super::status_class::StatusClass;
use crate::error::ErrorClass;

/// The per-host counters, one entry each:
///
/// ```text
/// /// More documentation for the getter (optional, any number of lines).
/// name: kind, "prometheus_family_name", [table columns], "Help text.";
/// ```
///
/// - `name` is the field of [`HostCounters`] and [`Counters`] and the getter of `Stats` and
///   `HostStats`.
/// - `kind` is `scalar` (one number), `by_status` (one per [`StatusClass`], Prometheus label
///   `class`), `by_error` (one per [`ErrorClass`], label `kind`) or `latency` (a histogram).
/// - The table columns are [`Column`]s (`Count("header")`, `Classes(&[...])`, `SuccessRate`,
///   `ReuseRatio`, `Quantiles`); `[]` keeps the counter out of the table.
/// - The help text is the Prometheus `HELP` line and the first paragraph of the getter's docs.
///
/// The order is the order of the getters, of the Prometheus families and of the table columns.
///
/// `counter_list!(callback, args...)` expands to `callback! { (args...) entries... }`.
macro_rules! counter_list {
    ($callback:ident $(, $arg:tt)*) => {
        $callback! {
            ($($arg)*)

            // Calls, by how they ended: with a final response (by its status class) or with an
            // error (by its class). Every call ends one way or the other, so
            // calls == sum of calls_with_status + sum of calls_with_error.

            /// Together with [`calls_with_status`](Self::calls_with_status) and
            /// [`calls_with_error`](Self::calls_with_error) it adds up: every call ends either
            /// with a final response or with an error.
            calls: scalar, "http_sentinel_calls_total", [Count("calls"), SuccessRate],
                "Calls made, one per request however many attempts and redirects it took.";

            /// A call *succeeded* when this class was `2xx` or `3xx`, see
            /// [`calls_succeeded`](Self::calls_succeeded). Responses that were retried or
            /// redirected are not final and are not counted here, see
            /// [`responses`](Self::responses).
            calls_with_status: by_status, "http_sentinel_calls_with_status_total",
                [Classes(&[ClientError, ServerError])],
                "Calls that ended with a response, by the status class of that final response.";

            /// All classes together: [`calls_errored`](Self::calls_errored). A call rejected by
            /// an open circuit breaker counts here as `CircuitOpen`, and also as a
            /// [`breaker_rejection`](Self::breaker_rejections). A request refused before
            /// anything was sent (invalid input) counts here as `InvalidRequest`, with no
            /// attempt, under its host, or under `-` when its URL did not parse.
            calls_with_error: by_error, "http_sentinel_calls_with_error_total", [Count("errors")],
                "Calls that ended in an error instead of a response, by error kind.";

            // Attempts, and what they met on the way.

            attempts: scalar, "http_sentinel_attempts_total", [Count("attempts")],
                "Attempts sent: first attempts, retries and each redirect hop alike.";

            /// The reuse ratio is measured over these: a host whose connects all failed has
            /// none, and so no ratio.
            attempts_connected: scalar, "http_sentinel_attempts_connected_total", [],
                "Attempts that got a connection, new or pooled: every attempt but those whose \
                 DNS lookup, connect or TLS handshake failed.";

            responses: by_status, "http_sentinel_responses_total", [],
                "Responses received, by status class: one per attempt that got a response, \
                 including the responses that were then retried or redirected.";

            /// A retry is counted when it is sent: one that the retry budget or an open
            /// breaker refused is counted in [`retries_refused`](Self::retries_refused)
            /// instead.
            retries: scalar, "http_sentinel_retries_total", [Count("retries")],
                "Retries sent: attempts made after a call's first attempt at a URL.";

            /// A retry the breaker refuses ends the call with the outcome it was for (the
            /// response or error of the attempt before), not with `CircuitOpen`.
            retries_refused: scalar, "http_sentinel_retries_refused_total", [],
                "Retries that were warranted but not sent because the retry budget was spent \
                 or the host's circuit breaker was open.";

            breaker_rejections: scalar, "http_sentinel_breaker_rejections_total", [],
                "Calls rejected by an open circuit breaker without being sent.";

            stale_replays: scalar, "http_sentinel_stale_replays_total", [],
                "Requests replayed because a pooled connection turned out to be stale.";

            redirects: scalar, "http_sentinel_redirects_total", [],
                "Redirects followed.";

            paced_requests: scalar, "http_sentinel_paced_requests_total", [],
                "Attempts that waited for a slot of the host's rate-limit pacing.";

            paced_micros: scalar, "http_sentinel_paced_microseconds_total", [],
                "Time attempts spent waiting for rate-limit pacing, in microseconds.";

            /// Hedges are counted on the host of the attempt they copy; each one is an attempt
            /// too (see [`HedgePolicy`](crate::HedgePolicy)).
            hedges_sent: scalar, "http_sentinel_hedges_sent_total", [],
                "Hedged requests sent: second copies of a slow attempt, on another client.";

            hedges_won: scalar, "http_sentinel_hedges_won_total", [],
                "Hedged requests whose response head came first and was returned.";

            hedges_refused: scalar, "http_sentinel_hedges_refused_total", [],
                "Hedges that were due but not sent because the host's hedge budget was spent.";

            connections_opened: scalar, "http_sentinel_connections_opened_total",
                [Count("conns"), ReuseRatio],
                "New connections opened.";

            bytes_received: scalar, "http_sentinel_received_bytes_total", [],
                "Response body bytes received.";

            call_latency: latency, "http_sentinel_call_duration_seconds", [Quantiles],
                "Duration of whole calls, retries and backoff included.";

            attempt_latency: latency, "http_sentinel_attempt_duration_seconds", [],
                "Duration of single attempts.";
        }
    };
}
pub(super) use counter_list;

/// The cell one client records into, by kind.
macro_rules! cell_type {
    (scalar) => {
        AtomicU64
    };
    (by_status) => {
        [AtomicU64; StatusClass::COUNT]
    };
    (by_error) => {
        [AtomicU64; ErrorClass::COUNT]
    };
    (latency) => {
        Histogram
    };
}

/// The plain value a snapshot holds, by kind.
macro_rules! value_type {
    (scalar) => {
        u64
    };
    (by_status) => {
        [u64; StatusClass::COUNT]
    };
    (by_error) => {
        [u64; ErrorClass::COUNT]
    };
    (latency) => {
        HistogramSnapshot
    };
}

/// How reporting reads a counter of a kind from [`Counters`].
macro_rules! read_fn {
    (scalar, $name:ident) => {
        Read::Scalar(|c| c.$name)
    };
    (by_status, $name:ident) => {
        Read::ByStatus(|c| &c.$name)
    };
    (by_error, $name:ident) => {
        Read::ByError(|c| &c.$name)
    };
    (latency, $name:ident) => {
        Read::Latency(|c| &c.$name)
    };
}

/// [`counter_list!`]'s callback that defines the storage, its arithmetic and [`FAMILIES`].
macro_rules! define_counters {
    (
        ()
        $(
            $(#[doc = $doc:literal])*
            $name:ident : $kind:ident, $family:literal, [$($column:expr),*], $help:literal;
        )*
    ) => {
        /// Counters of one client for one host.
        ///
        /// Only the owning client writes them (and, for `bytes_received`, the body readers it
        /// hands out), so relaxed atomics never contend; they are atomics only so that
        /// snapshots can read them from another thread. Record into them with
        /// [`record_attempt`](Self::record_attempt), [`record_call`](Self::record_call) and
        /// [`record_body_bytes`](Self::record_body_bytes).
        #[derive(Default)]
        pub(crate) struct HostCounters {
            /// The seqlock's sequence: odd while the owning client is recording a call or an
            /// attempt, even between records (see [`HostCounters::write`]).
            seq: AtomicU64,
            $( #[doc = $help] pub(super) $name: cell_type!($kind), )*
        }

        /// The plain sum of any number of [`HostCounters`]: one host's figures or all hosts'.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub(super) struct Counters {
            $( #[doc = $help] pub(super) $name: value_type!($kind), )*
        }

        impl Counters {
            /// Adds one shard's current values as they are, with no consistency between
            /// cells; [`absorb`](Self::absorb) is the consistent read built on it.
            fn add_cells(&mut self, shard: &HostCounters) {
                $( shard.$name.add_to(&mut self.$name); )*
            }

            /// Adds `other`, as if its shards had been absorbed too.
            pub(super) fn merge(&mut self, other: &Counters) {
                $( Value::merge(&mut self.$name, &other.$name); )*
            }

            /// What was recorded between `earlier` and `self`, saturating at zero.
            pub(super) fn saturating_sub(&self, earlier: &Counters) -> Counters {
                Counters {
                    $( $name: Value::saturating_sub(&self.$name, &earlier.$name), )*
                }
            }
        }

        /// Every counter as reporting sees it, in list order.
        pub(super) const FAMILIES: &[Family] = &[
            $(
                Family {
                    name: $family,
                    help: $help,
                    read: read_fn!($kind, $name),
                    columns: {
                        #[allow(unused_imports)]
                        use {Column::*, StatusClass::*};
                        &[$($column),*]
                    },
                },
            )*
        ];

        #[cfg(test)]
        impl HostCounters {
            /// Records a distinct amount in every cell: `k` times the cell's position in the
            /// list, counting from 1 (see [`Cell::fill`]); [`assert_filled`] checks the sums.
            pub(super) fn fill_distinct(&self, k: u64) {
                let mut position = 0;
                $(
                    position += 1;
                    self.$name.fill(position * k);
                )*
            }
        }
    };
}

counter_list!(define_counters);

/// One entry of the counter list, as the reporting code sees it.
pub(super) struct Family {
    /// The Prometheus family name.
    pub(super) name: &'static str,
    /// The Prometheus help text, also the first paragraph of the getter's documentation.
    pub(super) help: &'static str,
    /// How to read the counter, which also says its kind.
    pub(super) read: Read,
    /// The cells the counter adds to each row of the `Display` table, in order.
    pub(super) columns: &'static [Column],
}

/// How to read one counter from [`Counters`], by kind.
#[derive(Clone, Copy)]
pub(super) enum Read {
    /// One number.
    Scalar(fn(&Counters) -> u64),
    /// One number per [`StatusClass`], indexed by [`StatusClass::index`].
    ByStatus(fn(&Counters) -> &[u64; StatusClass::COUNT]),
    /// One number per [`ErrorClass`], indexed by [`ErrorClass::index`].
    ByError(fn(&Counters) -> &[u64; ErrorClass::COUNT]),
    /// A latency histogram.
    Latency(fn(&Counters) -> &HistogramSnapshot),
}

impl Read {
    /// The number itself, every class together, or the number of samples.
    pub(super) fn total(self, c: &Counters) -> u64 {
        match self {
            Read::Scalar(get) => get(c),
            Read::ByStatus(get) => sum(get(c)),
            Read::ByError(get) => sum(get(c)),
            Read::Latency(get) => get(c).count(),
        }
    }
}

/// A cell of the `Display` table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Column {
    /// The counter's [`Read::total`], under this header.
    Count(&'static str),
    /// One cell per listed class, headed `4xx` and so on (`by_status` counters only).
    Classes(&'static [StatusClass]),
    /// The share of calls that succeeded, headed `success`.
    SuccessRate,
    /// The share of attempts that reused a connection, headed `reuse`.
    ReuseRatio,
    /// The median, 99th percentile and maximum, headed `p50`, `p99`, `max` (`latency` only).
    Quantiles,
}

/// Saturating sum of per-class counts.
fn sum(counts: &[u64]) -> u64 {
    counts.iter().fold(0, |total, &n| total.saturating_add(n))
}

/// A recording cell of one kind and the plain value it adds up to.
trait Cell {
    type Value;

    /// Adds the cell's current contents to `total`.
    fn add_to(&self, total: &mut Self::Value);

    /// Records an amount derived from `n`: `n` itself, `n * (i + 1)` for element `i` of an
    /// array, one sample of `n` milliseconds for a histogram.
    #[cfg(test)]
    fn fill(&self, n: u64);
}

impl Cell for AtomicU64 {
    type Value = u64;

    fn add_to(&self, total: &mut u64) {
        *total = total.saturating_add(self.load(Relaxed));
    }

    #[cfg(test)]
    fn fill(&self, n: u64) {
        add(self, n);
    }
}

impl<const N: usize> Cell for [AtomicU64; N] {
    type Value = [u64; N];

    fn add_to(&self, totals: &mut [u64; N]) {
        for (total, cell) in totals.iter_mut().zip(self) {
            cell.add_to(total);
        }
    }

    #[cfg(test)]
    fn fill(&self, n: u64) {
        for (i, cell) in (1..).zip(self) {
            add(cell, n * i);
        }
    }
}

impl Cell for Histogram {
    type Value = HistogramSnapshot;

    fn add_to(&self, total: &mut HistogramSnapshot) {
        self.merge_into(total);
    }

    #[cfg(test)]
    fn fill(&self, n: u64) {
        self.record(Duration::from_millis(n));
    }
}

/// Arithmetic on the plain value of one counter, whatever its kind.
trait Value {
    /// Adds `other`, saturating.
    fn merge(&mut self, other: &Self);

    /// `self - earlier`, saturating at zero.
    fn saturating_sub(&self, earlier: &Self) -> Self;
}

impl Value for u64 {
    fn merge(&mut self, other: &u64) {
        *self = self.saturating_add(*other);
    }

    fn saturating_sub(&self, earlier: &u64) -> u64 {
        u64::saturating_sub(*self, *earlier)
    }
}

impl<const N: usize> Value for [u64; N] {
    fn merge(&mut self, other: &[u64; N]) {
        for (mine, theirs) in self.iter_mut().zip(other) {
            mine.merge(theirs);
        }
    }

    fn saturating_sub(&self, earlier: &[u64; N]) -> [u64; N] {
        std::array::from_fn(|i| Value::saturating_sub(&self[i], &earlier[i]))
    }
}

impl Value for HistogramSnapshot {
    fn merge(&mut self, other: &HistogramSnapshot) {
        HistogramSnapshot::merge(self, other);
    }

    fn saturating_sub(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot::saturating_sub(self, earlier)
    }
}

/// Adds one to a counter.
fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// Adds `n` to a counter.
fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

/// What one finished call adds to its host's counters.
pub(crate) struct CallRecord {
    /// From the call's start to the end of its last attempt.
    pub(crate) latency: Duration,
    pub(crate) retries: u32,
    pub(crate) retries_refused: u32,
    pub(crate) stale_replays: u32,
    pub(crate) redirects: u32,
    /// The final response's status, or the class of the error the call ended with.
    pub(crate) outcome: Result<StatusCode, ErrorClass>,
}

/// How many times a snapshot tries to read one shard between two records of its writer before
/// it yields the processor to let the writer finish.
const SPINS_BEFORE_YIELD: u32 = 16;
/// How many times a snapshot tries before it takes the shard as it reads it. A record is a
/// few dozen stores between two network round trips, so a reader that loses this many races
/// in a row is not reachable in practice; the bound only keeps `stats()` from ever hanging.
const MAX_READ_TRIES: u32 = 100_000;

impl HostCounters {
    /// Runs one record as a seqlock write (the Linux kernel's `seqcount_t`, in the form that
    /// is sound for atomics: Boehm, "Can seqlocks get along with programming language memory
    /// models?", 2012): the sequence turns odd, a release fence keeps the cell updates after
    /// that store, the cells are updated, and a release store turns the sequence even again.
    /// Each shard has one writer, its client, so plain load and store suffice: the hot path
    /// pays one load, two stores and a fence (free on x86, one `dmb` on Arm).
    fn write(&self, record: impl FnOnce()) {
        let seq = self.seq.load(Relaxed);
        self.seq.store(seq.wrapping_add(1), Relaxed);
        fence(Release);
        record();
        self.seq.store(seq.wrapping_add(2), Release);
    }

    /// Counts one attempt that took `took`, opened `connections_opened` connections, got a
    /// connection or not (`connected`) and, when a response arrived, got `status`: every
    /// response counts, whether the call then returns it, retries or follows a redirect.
    pub(crate) fn record_attempt(
        &self,
        took: Duration,
        connections_opened: u64,
        connected: bool,
        status: Option<StatusCode>,
    ) {
        self.write(|| {
            inc(&self.attempts);
            add(&self.attempts_connected, u64::from(connected));
            add(&self.connections_opened, connections_opened);
            self.attempt_latency.record(took);
            if let Some(status) = status {
                inc(&self.responses[StatusClass::from_status(status).index()]);
            }
        });
    }

    /// Counts one attempt that waited `waited` for its rate-limit pacing slot.
    pub(crate) fn record_paced(&self, waited: Duration) {
        self.write(|| {
            inc(&self.paced_requests);
            add(
                &self.paced_micros,
                u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
            );
        });
    }

    /// Counts the hedges of one attempt: `sent` of them, and whether one of them won.
    pub(crate) fn record_hedges(&self, sent: u32, won: bool) {
        add(&self.hedges_sent, u64::from(sent));
        if won {
            inc(&self.hedges_won);
        }
    }

    /// Counts one hedge the host's budget refused.
    pub(crate) fn record_hedge_refused(&self) {
        inc(&self.hedges_refused);
    }

    /// Counts one finished call, by its outcome: the class of its final response or of its
    /// error. A call rejected by an open breaker is also a breaker rejection.
    pub(crate) fn record_call(&self, call: &CallRecord) {
        self.write(|| {
            inc(&self.calls);
            add(&self.retries, u64::from(call.retries));
            add(&self.retries_refused, u64::from(call.retries_refused));
            add(&self.stale_replays, u64::from(call.stale_replays));
            add(&self.redirects, u64::from(call.redirects));
            self.call_latency.record(call.latency);
            match call.outcome {
                Ok(status) => {
                    inc(&self.calls_with_status[StatusClass::from_status(status).index()]);
                }
                Err(class) => {
                    if class == ErrorClass::CircuitOpen {
                        inc(&self.breaker_rejections);
                    }
                    inc(&self.calls_with_error[class.index()]);
                }
            }
        });
    }

    /// Counts response body bytes handed to the caller. Not a seqlock write: a body reader may
    /// run on another thread than the client, and a seqlock allows one writer; the byte count
    /// takes part in no invariant between counters.
    pub(crate) fn record_body_bytes(&self, n: u64) {
        add(&self.bytes_received, n);
    }
}

impl Counters {
    /// Adds a consistent cut of one shard: every call and attempt its client recorded either
    /// entirely or not at all, so `calls` equals the calls by outcome and the call latency
    /// samples, shard by shard and so in any sum of shards. The seqlock read: retried until
    /// the sequence is even and unchanged across the read (see [`HostCounters::write`]).
    pub(super) fn absorb(&mut self, shard: &HostCounters) {
        let mut cut = Counters::default();
        for tries in 1..=MAX_READ_TRIES {
            cut = Counters::default();
            let before = shard.seq.load(Acquire);
            cut.add_cells(shard);
            fence(Acquire);
            if before % 2 == 0 && shard.seq.load(Relaxed) == before {
                break;
            }
            if tries >= SPINS_BEFORE_YIELD {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        self.merge(&cut);
    }

    /// Calls that ended with a `2xx` or `3xx` response.
    pub(super) fn succeeded(&self) -> u64 {
        let ended_with = |class: StatusClass| self.calls_with_status[class.index()];
        ended_with(StatusClass::Success).saturating_add(ended_with(StatusClass::Redirection))
    }

    /// Calls that ended in an error, every class together.
    pub(super) fn errored(&self) -> u64 {
        sum(&self.calls_with_error)
    }

    /// `1 - connections_opened / attempts_connected`, clamped to `0.0..=1.0`: the share of the
    /// attempts that got a connection which got a pooled one. `None` while no attempt got a
    /// connection: attempts that all failed to connect (a closed port, an unknown host)
    /// reused nothing, and a ratio of `1.0` (or `0.0`) would say something about them.
    pub(super) fn reuse_ratio(&self) -> Option<f64> {
        (self.attempts_connected > 0).then(|| {
            let opened = self.connections_opened as f64;
            (1.0 - opened / self.attempts_connected as f64).clamp(0.0, 1.0)
        })
    }
}

/// Checks the sums of shards filled with [`HostCounters::fill_distinct`]: `k` is the sum of
/// the `k`s they were filled with, `fills` how many fills there were.
#[cfg(test)]
pub(super) fn assert_filled(c: &Counters, k: u64, fills: u64) {
    fn filled<const N: usize>(n: u64) -> [u64; N] {
        std::array::from_fn(|i| n * (i as u64 + 1))
    }
    for (position, family) in (1u64..).zip(FAMILIES) {
        let (n, name) = (position * k, family.name);
        match family.read {
            Read::Scalar(get) => assert_eq!(get(c), n, "{name}"),
            Read::ByStatus(get) => assert_eq!(*get(c), filled(n), "{name}"),
            Read::ByError(get) => assert_eq!(*get(c), filled(n), "{name}"),
            Read::Latency(get) => {
                assert_eq!(get(c).count(), fills, "{name}");
                assert_eq!(get(c).sum(), Duration::from_millis(n), "{name}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    fn call(outcome: Result<u16, ErrorClass>) -> CallRecord {
        CallRecord {
            latency: Duration::from_millis(1),
            retries: 0,
            retries_refused: 0,
            stale_replays: 0,
            redirects: 0,
            outcome: outcome.map(status),
        }
    }

    fn snapshot(c: &HostCounters) -> Counters {
        let mut counters = Counters::default();
        counters.absorb(c);
        counters
    }

    #[test]
    fn error_classes_are_indexed_and_labelled_consistently() {
        assert_eq!(ErrorClass::COUNT, 18);
        let mut labels = HashSet::new();
        for (i, &class) in ErrorClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
            let label = class.as_str();
            assert!(labels.insert(label), "duplicate label {label}");
            assert!(label.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_eq!(class.to_string(), label);
        }
        assert_eq!(
            ErrorClass::RetryAfterTooLong.as_str(),
            "retry_after_too_long"
        );
        assert_eq!(ErrorClass::BodyTooLarge.as_str(), "body_too_large");
    }

    #[test]
    fn every_response_of_every_attempt_is_counted_by_class() {
        let c = HostCounters::default();
        for code in [100, 200, 204, 301, 404, 500, 503, 599, 600, 999] {
            c.record_attempt(Duration::from_millis(2), 0, true, Some(status(code)));
        }
        // An attempt that got no response counts as an attempt only.
        c.record_attempt(Duration::from_millis(2), 1, true, None);
        let s = snapshot(&c);
        assert_eq!(s.responses, [1, 2, 1, 1, 5]);
        assert_eq!(s.attempts, 11);
        assert_eq!(s.connections_opened, 1);
        assert_eq!(s.attempt_latency.count(), 11);
        assert_eq!(s.calls, 0, "attempts are not calls");
    }

    #[test]
    fn calls_are_counted_by_outcome_and_the_outcomes_add_up() {
        let c = HostCounters::default();
        let outcomes = [
            Ok(200),
            Ok(204),
            Ok(304),
            Ok(404),
            Ok(500),
            Ok(503),
            Ok(101),
            Err(ErrorClass::Timeout),
            Err(ErrorClass::CircuitOpen),
            Err(ErrorClass::CircuitOpen),
        ];
        for outcome in outcomes {
            c.record_call(&call(outcome));
        }
        let s = snapshot(&c);
        assert_eq!(s.calls, 10);
        assert_eq!(s.calls_with_status, [1, 2, 1, 1, 2]);
        assert_eq!(s.succeeded(), 3, "2xx and 3xx");
        assert_eq!(s.errored(), 3);
        assert_eq!(s.calls_with_error[ErrorClass::Timeout.index()], 1);
        assert_eq!(s.calls_with_error[ErrorClass::CircuitOpen.index()], 2);
        assert_eq!(s.breaker_rejections, 2);
        assert_eq!(s.calls, sum(&s.calls_with_status) + s.errored());
        assert_eq!(s.responses, [0; 5], "calls record no responses");
        assert_eq!(s.call_latency.count(), 10);
    }

    #[test]
    fn a_call_adds_its_retries_replays_and_redirects() {
        let c = HostCounters::default();
        c.record_call(&CallRecord {
            latency: Duration::from_millis(30),
            retries: 2,
            retries_refused: 1,
            stale_replays: 1,
            redirects: 3,
            outcome: Ok(status(200)),
        });
        c.record_body_bytes(10);
        c.record_body_bytes(5);
        let s = snapshot(&c);
        assert_eq!(
            (s.retries, s.retries_refused, s.stale_replays, s.redirects),
            (2, 1, 1, 3)
        );
        assert_eq!(s.bytes_received, 15);
        assert_eq!(s.call_latency.max(), Duration::from_millis(30));
    }

    #[test]
    fn reuse_ratio_is_none_without_attempts_and_clamped() {
        let c = HostCounters::default();
        assert_eq!(snapshot(&c).reuse_ratio(), None);
        c.record_attempt(Duration::ZERO, 3, true, None);
        assert_eq!(snapshot(&c).reuse_ratio(), Some(0.0));
        for _ in 0..3 {
            c.record_attempt(Duration::ZERO, 0, true, None);
        }
        assert_eq!(snapshot(&c).reuse_ratio(), Some(0.25));
    }

    #[test]
    fn reuse_ratio_is_none_while_no_attempt_got_a_connection() {
        let c = HostCounters::default();
        for _ in 0..4 {
            c.record_attempt(Duration::ZERO, 0, false, None);
        }
        let s = snapshot(&c);
        assert_eq!((s.attempts, s.attempts_connected), (4, 0));
        assert_eq!(s.reuse_ratio(), None, "not 1.0: nothing was reused");
        // Measured over the attempts that connected only.
        c.record_attempt(Duration::ZERO, 1, true, Some(status(200)));
        c.record_attempt(Duration::ZERO, 0, true, Some(status(200)));
        assert_eq!(snapshot(&c).reuse_ratio(), Some(0.5));
    }

    #[test]
    fn absorb_merge_and_subtract_cover_every_counter() {
        let (one, two) = (HostCounters::default(), HostCounters::default());
        one.fill_distinct(1);
        two.fill_distinct(2);
        let mut total = snapshot(&one);
        total.absorb(&two);
        assert_filled(&total, 3, 2);
        let mut merged = snapshot(&one);
        merged.merge(&snapshot(&two));
        assert_eq!(merged, total);
        assert_filled(&total.saturating_sub(&snapshot(&one)), 2, 1);
        assert_eq!(total.saturating_sub(&total), Counters::default());
        assert_eq!(snapshot(&one).saturating_sub(&total), Counters::default());
    }

    #[test]
    fn the_counter_list_is_consistent() {
        let mut names = HashSet::new();
        for family in FAMILIES {
            let name = family.name;
            assert!(names.insert(name), "{name} twice");
            assert!(name.starts_with("http_sentinel_"), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            match family.read {
                Read::Latency(_) => assert!(name.ends_with("_seconds"), "{name}"),
                _ => assert!(name.ends_with("_total"), "{name}"),
            }
            let help = family.help;
            assert!(
                help.ends_with('.') && !help.contains('\n'),
                "{name}: {help}"
            );
            assert!(!help.contains("  "), "{name}: {help}");
            for &column in family.columns {
                let fits = match column {
                    Column::Classes(_) => matches!(family.read, Read::ByStatus(_)),
                    Column::Quantiles => matches!(family.read, Read::Latency(_)),
                    Column::Count(_) | Column::SuccessRate | Column::ReuseRatio => true,
                };
                assert!(fits, "{name}: {column:?} does not fit its kind");
            }
        }
    }
}
