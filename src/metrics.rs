//! Request metrics with near-zero cost on the hot path.
//!
//! Recording is sharded. Every `Client` owns a `Recorder`, and each (client, host) pair gets its
//! own cache-padded block of counters (`HostCounters`). Recording a request is one hash lookup in
//! the client's local map followed by a few relaxed atomic adds on memory no other worker thread
//! writes: no lock, no allocation, no shared cache line. Reading goes the other way:
//! `Registry::snapshot` walks every shard ever registered and sums them into a [`Stats`], which
//! is a plain value that can be printed ([`Stats`] implements `Display`), exported
//! ([`Stats::to_prometheus`]) or diffed against an earlier snapshot ([`Stats::delta`]). Snapshots
//! are meant for scrapes and periodic logging, not for every request.
//!
//! Latencies are kept in log-linear histograms over microseconds: values below 16 µs are exact,
//! above that every power of two is split into 8 linear sub-buckets, so a reported quantile is at
//! most 12.5% above the true value (and never above the exact maximum, which is tracked
//! separately). Values of 2^37 µs (about 38 hours) and more share one overflow bucket.
//!
//! Counters only ever grow while a pool lives; the figures for an interval come from
//! [`Stats::delta`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::ErrorClass;
use ureq::http::StatusCode;

use crossbeam_utils::CachePadded;

// ---------------------------------------------------------------------------------------------
// Histogram bucket layout
// ---------------------------------------------------------------------------------------------

/// Each power of two is split into `2^SUB_BITS` linear sub-buckets. Eight sub-buckets bound the
/// relative error of a reported quantile to 1/8 while keeping a histogram at a few hundred slots.
const SUB_BITS: u32 = 3;
const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// Below this many microseconds there is one bucket per microsecond: the log-linear layout would
/// otherwise need sub-microsecond buckets there.
const LINEAR_LIMIT: u64 = 2 * SUB_BUCKETS as u64;
/// Values of `2^TOP_POWER` µs and more go to the overflow bucket.
const TOP_POWER: u32 = 37;
/// Index of the overflow bucket; it is also the number of regular buckets.
const OVERFLOW_BUCKET: usize = (TOP_POWER - SUB_BITS + 1) as usize * SUB_BUCKETS;
/// Total number of buckets in a histogram, overflow included.
pub(crate) const BUCKETS: usize = OVERFLOW_BUCKET + 1;

/// Bucket holding a value of `micros` microseconds.
fn bucket_index(micros: u64) -> usize {
    if micros < LINEAR_LIMIT {
        return micros as usize;
    }
    if micros >> TOP_POWER != 0 {
        return OVERFLOW_BUCKET;
    }
    let power = u64::BITS - 1 - micros.leading_zeros();
    let shift = power - SUB_BITS;
    let sub = (micros >> shift) as usize & (SUB_BUCKETS - 1);
    (shift as usize + 1) * SUB_BUCKETS + sub
}

/// Exclusive upper bound of a bucket in microseconds: every value counted in the bucket is
/// strictly below it, so it is a safe inclusive bound (`le`) for the real, sub-microsecond
/// durations too. `None` for the overflow bucket.
fn bucket_upper_micros(index: usize) -> Option<u64> {
    if index >= OVERFLOW_BUCKET {
        return None;
    }
    if index < LINEAR_LIMIT as usize {
        return Some(index as u64 + 1);
    }
    let shift = (index / SUB_BUCKETS - 1) as u32;
    let sub = (index % SUB_BUCKETS) as u64;
    Some((SUB_BUCKETS as u64 + sub + 1) << shift)
}

/// [`bucket_upper_micros`] as a duration; the overflow bucket is unbounded.
fn bucket_upper(index: usize) -> Duration {
    bucket_upper_micros(index).map_or(Duration::MAX, Duration::from_micros)
}

/// Durations are kept in nanoseconds; anything beyond `u64::MAX` ns (about 584 years) saturates.
fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Histogram (recording) and HistogramSnapshot (reading)
// ---------------------------------------------------------------------------------------------

/// A latency histogram that many threads may record into without locking.
///
/// The total count is not stored: it is the sum of the buckets, which saves an atomic add per
/// sample and keeps `count` consistent with the buckets by construction.
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one sample. Relaxed atomics only: samples need no ordering with anything else.
    pub(crate) fn record(&self, d: Duration) {
        let nanos = saturating_nanos(d);
        self.buckets[bucket_index(nanos / 1_000)].fetch_add(1, Relaxed);
        // Saturating rather than wrapping: one absurd duration must not turn the sum into noise.
        // Each shard has a single writer in practice, so this loop runs once.
        let _ = self
            .sum_nanos
            .fetch_update(Relaxed, Relaxed, |sum| Some(sum.saturating_add(nanos)));
        // Most samples do not raise the maximum; a plain load avoids a read-modify-write for them.
        if nanos > self.max_nanos.load(Relaxed) {
            self.max_nanos.fetch_max(nanos, Relaxed);
        }
    }

    /// Adds this histogram's current contents to `acc`.
    pub(crate) fn merge_into(&self, acc: &mut HistogramSnapshot) {
        for (total, bucket) in acc.buckets.iter_mut().zip(&self.buckets) {
            let n = bucket.load(Relaxed);
            *total = total.saturating_add(n);
            acc.count = acc.count.saturating_add(n);
        }
        acc.sum_nanos = acc.sum_nanos.saturating_add(self.sum_nanos.load(Relaxed));
        acc.max_nanos = acc.max_nanos.max(self.max_nanos.load(Relaxed));
    }

    /// A point-in-time copy of this histogram.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut snapshot = HistogramSnapshot::default();
        self.merge_into(&mut snapshot);
        snapshot
    }
}

/// An immutable copy of one or more [`Histogram`]s.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct HistogramSnapshot {
    buckets: Box<[u64; BUCKETS]>,
    count: u64,
    sum_nanos: u64,
    max_nanos: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        Self {
            buckets: Box::new([0; BUCKETS]),
            count: 0,
            sum_nanos: 0,
            max_nanos: 0,
        }
    }
}

impl fmt::Debug for HistogramSnapshot {
    // The raw buckets would be hundreds of mostly-zero numbers; the summary is what a reader of
    // debug output wants.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistogramSnapshot")
            .field("count", &self.count)
            .field("sum", &self.sum())
            .field("max", &self.max())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .finish_non_exhaustive()
    }
}

impl HistogramSnapshot {
    /// Number of samples.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Exact sum of all samples (saturating at about 584 years).
    pub(crate) fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos)
    }

    /// Exact largest sample; zero when empty. After [`saturating_sub`](Self::saturating_sub) it
    /// is an upper bound, see there.
    pub(crate) fn max(&self) -> Duration {
        Duration::from_nanos(self.max_nanos)
    }

    /// Arithmetic mean; zero when empty.
    pub(crate) fn mean(&self) -> Duration {
        match self.count {
            0 => Duration::ZERO,
            n => Duration::from_nanos(self.sum_nanos / n),
        }
    }

    /// The `q`-quantile (`q` in `0.0..=1.0`, clamped; NaN counts as 0): the upper bound of the
    /// bucket holding the sample of rank `ceil(q * count)`, clamped to the exact maximum. It is
    /// never below the true quantile and at most 12.5% above it. Zero when empty.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let upper = self
            .buckets()
            .find(|&(_, cumulative)| cumulative >= rank)
            .map_or(Duration::MAX, |(upper, _)| upper);
        upper.min(self.max())
    }

    /// Every bucket as `(upper_bound, cumulative_count)`, in increasing order of bound. All
    /// samples counted up to a bucket are below its bound; the last (overflow) bucket's bound is
    /// `Duration::MAX` and its cumulative count equals [`count`](Self::count).
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .scan(0u64, |cumulative, (index, &n)| {
                *cumulative = cumulative.saturating_add(n);
                Some((bucket_upper(index), *cumulative))
            })
    }

    /// Samples in buckets whose upper bound is at most `bound`. Never over-counts; it may leave
    /// out samples of the one bucket that straddles `bound`.
    pub(crate) fn count_within(&self, bound: Duration) -> u64 {
        self.buckets()
            .take_while(|&(upper, _)| upper <= bound)
            .last()
            .map_or(0, |(_, cumulative)| cumulative)
    }

    /// Adds `other` into `self`, as if every sample had been recorded in one histogram.
    pub(crate) fn merge(&mut self, other: &HistogramSnapshot) {
        for (total, &n) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *total = total.saturating_add(n);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum_nanos = self.sum_nanos.saturating_add(other.sum_nanos);
        self.max_nanos = self.max_nanos.max(other.max_nanos);
    }

    /// The samples recorded between `earlier` and `self` (both snapshots of the same
    /// histograms). Buckets, count and sum are exact. The maximum of the interval cannot be
    /// recovered from two maxima, so it is `self`'s maximum capped at the upper bound of the
    /// highest bucket the interval touched: exact when the interval holds the overall maximum,
    /// otherwise within one bucket of the truth. Zero for an empty interval.
    pub(crate) fn saturating_sub(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        let mut out = HistogramSnapshot::default();
        let mut highest = None;
        for (index, ((total, &now), &then)) in out
            .buckets
            .iter_mut()
            .zip(self.buckets.iter())
            .zip(earlier.buckets.iter())
            .enumerate()
        {
            *total = now.saturating_sub(then);
            if *total > 0 {
                out.count = out.count.saturating_add(*total);
                highest = Some(index);
            }
        }
        out.sum_nanos = self.sum_nanos.saturating_sub(earlier.sum_nanos);
        out.max_nanos = match highest {
            None => 0,
            Some(index) => self.max_nanos.min(saturating_nanos(bucket_upper(index))),
        };
        out
    }

    /// The summary reported by [`Stats`].
    pub(crate) fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count,
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max(),
            mean: self.mean(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-(client, host) counters
// ---------------------------------------------------------------------------------------------

/// Adds one to a counter.
pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

/// Counters of one client for one host. Only the owning client writes them (and, for
/// `bytes_received`, the body readers it hands out), so relaxed atomics never contend; they are
/// atomics only so that snapshots can read them from another thread.
#[derive(Default)]
pub(crate) struct HostCounters {
    /// Logical calls started (one per request, however many attempts it takes).
    pub(crate) calls: AtomicU64,
    /// Attempts sent, the first one included.
    pub(crate) attempts: AtomicU64,
    /// Calls that returned a response, whatever its status.
    pub(crate) successes: AtomicU64,
    /// Calls that ended in an error, indexed by [`ErrorClass`]; use [`HostCounters::record_failure`].
    pub(crate) failures: [AtomicU64; ErrorClass::COUNT],
    /// Responses by status class, 1xx at index 0; use [`HostCounters::record_status`].
    pub(crate) responses: [AtomicU64; 5],
    /// Attempts made after the first one.
    pub(crate) retries: AtomicU64,
    /// Retries that were warranted but refused because the retry budget was spent.
    pub(crate) retries_refused: AtomicU64,
    /// Calls rejected by an open circuit breaker.
    pub(crate) breaker_rejections: AtomicU64,
    /// Requests replayed because a pooled connection turned out to be stale.
    pub(crate) stale_replays: AtomicU64,
    /// Redirects followed.
    pub(crate) redirects: AtomicU64,
    /// New connections opened.
    pub(crate) connections_opened: AtomicU64,
    /// Response body bytes received.
    pub(crate) bytes_received: AtomicU64,
    /// Duration of whole calls, retries and backoff included.
    pub(crate) call_latency: Histogram,
    /// Duration of single attempts.
    pub(crate) attempt_latency: Histogram,
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

impl HostCounters {
    /// Counts one attempt that took `took`, opened `connections_opened` connections and, when
    /// a response arrived, got `status`.
    pub(crate) fn record_attempt(
        &self,
        took: Duration,
        connections_opened: u64,
        _status: Option<StatusCode>,
    ) {
        inc(&self.attempts);
        add(&self.connections_opened, connections_opened);
        self.attempt_latency.record(took);
    }

    /// Counts one finished call.
    pub(crate) fn record_call(&self, call: &CallRecord) {
        inc(&self.calls);
        add(&self.retries, u64::from(call.retries));
        add(&self.retries_refused, u64::from(call.retries_refused));
        add(&self.stale_replays, u64::from(call.stale_replays));
        add(&self.redirects, u64::from(call.redirects));
        self.call_latency.record(call.latency);
        match call.outcome {
            Ok(status) => {
                inc(&self.successes);
                self.record_status(status.as_u16());
            }
            Err(class) => {
                if class == ErrorClass::CircuitOpen {
                    inc(&self.breaker_rejections);
                }
                self.record_failure(class);
            }
        }
    }

    /// Counts response body bytes handed to the caller.
    pub(crate) fn record_body_bytes(&self, n: u64) {
        add(&self.bytes_received, n);
    }

    /// Counts a call that ended in an error of class `class`.
    pub(crate) fn record_failure(&self, class: ErrorClass) {
        inc(&self.failures[class.index()]);
    }

    /// Counts a response by its status class; statuses outside 100..=599 are ignored.
    pub(crate) fn record_status(&self, status: u16) {
        if let Some(counter) = (status / 100)
            .checked_sub(1)
            .and_then(|index| self.responses.get(usize::from(index)))
        {
            inc(counter);
        }
    }
}

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

// ---------------------------------------------------------------------------------------------
// Registry (one per pool) and Recorder (one per client)
// ---------------------------------------------------------------------------------------------

type Shard = Arc<CachePadded<HostCounters>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while the lock was held cannot leave the list half-updated (a push is
    // the only mutation), so metrics keep working instead of propagating the poison.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// All counter shards of one pool, plus the pool's own checkout counters.
///
/// Shards are kept for the life of the pool, even after their client is gone, so totals never
/// go backwards; a gone client's shards are handed to the next client that meets the same
/// host, so clients discarded after panics or protocol errors do not grow the list. The lists
/// are locked only when a client first talks to a host, when a client goes, and on snapshot.
#[derive(Default)]
pub(crate) struct Registry {
    shards: Mutex<Vec<(Arc<str>, Shard)>>,
    // Shards of clients that are gone, by host, ready to be taken over.
    free: Mutex<HashMap<Arc<str>, Vec<Shard>>>,
    // Checkouts are shared by all threads, but a checkout already synchronises on the pool, so
    // these atomics add no contention of their own.
    checkouts: AtomicU64,
    checkout_timeouts: AtomicU64,
    checkout_wait: Histogram,
}

impl Registry {
    /// An empty registry.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A recorder for a new client.
    pub(crate) fn recorder(self: &Arc<Self>) -> Recorder {
        Recorder {
            registry: Arc::clone(self),
            slots: HashMap::new(),
            shards: Vec::new(),
        }
    }

    /// Counts a successful checkout that waited `waited` for a client.
    pub(crate) fn record_checkout(&self, waited: Duration) {
        inc(&self.checkouts);
        self.checkout_wait.record(waited);
    }

    /// Counts a checkout that gave up after `waited`. The wait goes into the same histogram as
    /// successful checkouts: the longest waits are the ones worth seeing.
    pub(crate) fn record_checkout_timeout(&self, waited: Duration) {
        inc(&self.checkout_timeouts);
        self.checkout_wait.record(waited);
    }

    /// Sums every shard, per host and overall. Breaker states are left empty for the caller to
    /// fill with [`Stats::set_breakers`].
    pub(crate) fn snapshot(&self, pool: PoolState) -> Stats {
        // Copy the list so the lock is not held while hundreds of atomics per shard are read.
        let shards = lock(&self.shards).clone();
        let mut per_host: BTreeMap<Arc<str>, Counters> = BTreeMap::new();
        for (host, shard) in &shards {
            per_host.entry(Arc::clone(host)).or_default().absorb(shard);
        }
        let mut totals = Counters::default();
        let hosts = per_host
            .into_iter()
            .map(|(host, counters)| {
                totals.merge(&counters);
                HostStats {
                    host: host.to_string(),
                    counters,
                }
            })
            .collect();
        Stats {
            counters: totals,
            hosts,
            pool,
            checkouts: self.checkouts.load(Relaxed),
            checkout_timeouts: self.checkout_timeouts.load(Relaxed),
            checkout_wait: self.checkout_wait.snapshot(),
            breakers: Vec::new(),
        }
    }

    fn register(&self, host: &str) -> Shard {
        if let Some(shard) = lock(&self.free).get_mut(host).and_then(Vec::pop) {
            // Counters only ever add (atomically), so carrying on from where the gone client
            // stopped keeps every total exact.
            return shard;
        }
        let shard = Shard::default();
        lock(&self.shards).push((Arc::from(host), Arc::clone(&shard)));
        log::trace!("metrics: new counter shard for host {host}");
        shard
    }
}

/// One client's view of the registry: a local map from host to that client's shard.
pub(crate) struct Recorder {
    registry: Arc<Registry>,
    // Host -> position in `shards`. An index rather than the shard itself lets `host` return a
    // borrow after a single lookup on the hit path.
    slots: HashMap<Box<str>, usize>,
    shards: Vec<Shard>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let mut free = lock(&self.registry.free);
        for (host, &slot) in &self.slots {
            free.entry(Arc::from(&**host))
                .or_default()
                .push(Arc::clone(&self.shards[slot]));
        }
    }
}

impl Recorder {
    /// This client's counters for `host`, registering them on first use.
    #[cfg(test)]
    pub(crate) fn host(&mut self, host: &str) -> &HostCounters {
        let slot = self.slot(host);
        &self.shards[slot]
    }

    /// Like [`host`](Self::host), as a shared handle that can outlive the borrow of the recorder
    /// (for a response body reader that counts `bytes_received` as it is read).
    pub(crate) fn host_arc(&mut self, host: &str) -> Arc<CachePadded<HostCounters>> {
        let slot = self.slot(host);
        Arc::clone(&self.shards[slot])
    }

    /// The registry this recorder reports to.
    #[cfg(test)]
    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn slot(&mut self, host: &str) -> usize {
        if let Some(&slot) = self.slots.get(host) {
            return slot;
        }
        self.shards.push(self.registry.register(host));
        let slot = self.shards.len() - 1;
        self.slots.insert(host.into(), slot);
        slot
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

/// Latency quantiles of a set of samples.
///
/// Quantiles are reported as the upper bound of the histogram bucket they fall in, capped at the
/// exact maximum: never below the true value and at most 12.5% above it. Everything is zero when
/// there are no samples.
///
/// # Examples
///
/// ```
/// use http_sentinel::Stats;
/// use std::time::Duration;
///
/// let latency = Stats::default().call_latency();
/// assert_eq!(latency.count(), 0);
/// assert_eq!(latency.p99(), Duration::ZERO);
/// assert!(latency.p50() <= latency.p99() && latency.p99() <= latency.max());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    count: u64,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
    mean: Duration,
}

impl LatencySummary {
    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Median.
    pub fn p50(&self) -> Duration {
        self.p50
    }

    /// 90th percentile.
    pub fn p90(&self) -> Duration {
        self.p90
    }

    /// 99th percentile.
    pub fn p99(&self) -> Duration {
        self.p99
    }

    /// 99.9th percentile.
    pub fn p999(&self) -> Duration {
        self.p999
    }

    /// Largest sample (exact).
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Arithmetic mean (exact up to nanosecond rounding).
    pub fn mean(&self) -> Duration {
        self.mean
    }
}

/// Plain (non-atomic) counters of one host or of all hosts together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counters {
    calls: u64,
    attempts: u64,
    successes: u64,
    failures: [u64; ErrorClass::COUNT],
    responses: [u64; 5],
    retries: u64,
    retries_refused: u64,
    breaker_rejections: u64,
    stale_replays: u64,
    redirects: u64,
    connections_opened: u64,
    bytes_received: u64,
    call_latency: HistogramSnapshot,
    attempt_latency: HistogramSnapshot,
}

impl Counters {
    /// Adds one shard's current values.
    fn absorb(&mut self, shard: &HostCounters) {
        fn acc(total: &mut u64, counter: &AtomicU64) {
            *total = total.saturating_add(counter.load(Relaxed));
        }
        // Destructured so that a new field cannot be forgotten here.
        let HostCounters {
            calls,
            attempts,
            successes,
            failures,
            responses,
            retries,
            retries_refused,
            breaker_rejections,
            stale_replays,
            redirects,
            connections_opened,
            bytes_received,
            call_latency,
            attempt_latency,
        } = shard;
        acc(&mut self.calls, calls);
        acc(&mut self.attempts, attempts);
        acc(&mut self.successes, successes);
        for (total, counter) in self.failures.iter_mut().zip(failures) {
            acc(total, counter);
        }
        for (total, counter) in self.responses.iter_mut().zip(responses) {
            acc(total, counter);
        }
        acc(&mut self.retries, retries);
        acc(&mut self.retries_refused, retries_refused);
        acc(&mut self.breaker_rejections, breaker_rejections);
        acc(&mut self.stale_replays, stale_replays);
        acc(&mut self.redirects, redirects);
        acc(&mut self.connections_opened, connections_opened);
        acc(&mut self.bytes_received, bytes_received);
        call_latency.merge_into(&mut self.call_latency);
        attempt_latency.merge_into(&mut self.attempt_latency);
    }

    /// Applies `op` field by field to every scalar counter; histograms are left alone.
    fn combine_scalars(&mut self, other: &Counters, op: fn(u64, u64) -> u64) {
        // Destructured so that a new field cannot be forgotten here.
        let Counters {
            calls,
            attempts,
            successes,
            failures,
            responses,
            retries,
            retries_refused,
            breaker_rejections,
            stale_replays,
            redirects,
            connections_opened,
            bytes_received,
            call_latency: _,
            attempt_latency: _,
        } = other;
        self.calls = op(self.calls, *calls);
        self.attempts = op(self.attempts, *attempts);
        self.successes = op(self.successes, *successes);
        for (mine, theirs) in self.failures.iter_mut().zip(failures) {
            *mine = op(*mine, *theirs);
        }
        for (mine, theirs) in self.responses.iter_mut().zip(responses) {
            *mine = op(*mine, *theirs);
        }
        self.retries = op(self.retries, *retries);
        self.retries_refused = op(self.retries_refused, *retries_refused);
        self.breaker_rejections = op(self.breaker_rejections, *breaker_rejections);
        self.stale_replays = op(self.stale_replays, *stale_replays);
        self.redirects = op(self.redirects, *redirects);
        self.connections_opened = op(self.connections_opened, *connections_opened);
        self.bytes_received = op(self.bytes_received, *bytes_received);
    }

    fn merge(&mut self, other: &Counters) {
        self.combine_scalars(other, u64::saturating_add);
        self.call_latency.merge(&other.call_latency);
        self.attempt_latency.merge(&other.attempt_latency);
    }

    fn saturating_sub(&self, earlier: &Counters) -> Counters {
        let mut out = self.clone();
        out.combine_scalars(earlier, u64::saturating_sub);
        out.call_latency = self.call_latency.saturating_sub(&earlier.call_latency);
        out.attempt_latency = self
            .attempt_latency
            .saturating_sub(&earlier.attempt_latency);
        out
    }

    fn failures(&self) -> u64 {
        self.failures
            .iter()
            .fold(0, |sum, &n| sum.saturating_add(n))
    }

    fn reuse_ratio(&self) -> f64 {
        if self.attempts == 0 {
            return 0.0;
        }
        (1.0 - self.connections_opened as f64 / self.attempts as f64).clamp(0.0, 1.0)
    }
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

        /// Calls that ended in an error, all [`ErrorClass`](crate::metrics::ErrorClass)es
        /// together.
        pub fn failures(&self) -> u64 {
            self.counters.failures()
        }

        /// Calls that ended in an error of class `class`.
        pub fn failures_by(&self, class: crate::metrics::ErrorClass) -> u64 {
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
        pub fn call_latency(&self) -> crate::metrics::LatencySummary {
            self.counters.call_latency.summary()
        }

        /// Latency of single attempts.
        pub fn attempt_latency(&self) -> crate::metrics::LatencySummary {
            self.counters.attempt_latency.summary()
        }
    };
}

/// The counters and latencies of one host, part of a [`Stats`] snapshot.
#[derive(Debug, Clone)]
pub struct HostStats {
    host: String,
    counters: Counters,
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
    counters: Counters,
    hosts: Vec<HostStats>,
    pool: PoolState,
    checkouts: u64,
    checkout_timeouts: u64,
    checkout_wait: HistogramSnapshot,
    breakers: Vec<(String, String)>,
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

    /// Renders the snapshot in the Prometheus text exposition format (version 0.0.4).
    ///
    /// Every metric is prefixed `http_sentinel_`; per-host series carry a `host` label. Latency
    /// histograms use the fixed bounds 1 ms, 2.5 ms, 5 ms ... 10 s. They are derived from the
    /// finer internal buckets, whose edges are powers of two rather than decimal: a bound counts
    /// only the internal buckets that lie entirely below it, so a sample up to 12.5% below a
    /// bound may be counted in the next one (for example, exactly 1 ms falls in `le="0.0025"`).
    /// `_count` and `_sum` are exact.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::Stats;
    ///
    /// let text = Stats::default().to_prometheus();
    /// assert!(text.contains("# TYPE http_sentinel_pool_clients gauge\n"));
    /// assert!(text.contains("http_sentinel_pool_clients 0\n"));
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut out = Exposition::default();

        if !self.hosts.is_empty() {
            for &(name, help, get) in HOST_COUNTERS {
                out.family(name, "counter", help);
                for h in &self.hosts {
                    out.sample(name, &[("host", h.host.as_str())], get(&h.counters));
                }
            }

            let name = "http_sentinel_failures_total";
            out.family(
                name,
                "counter",
                "Calls that ended in an error, by error kind.",
            );
            for h in &self.hosts {
                for &class in ErrorClass::ALL {
                    let labels = [("host", h.host.as_str()), ("kind", class.as_str())];
                    out.sample(name, &labels, h.counters.failures[class.index()]);
                }
            }

            let name = "http_sentinel_responses_total";
            out.family(name, "counter", "Responses received, by status class.");
            for h in &self.hosts {
                for (class, &n) in ["1xx", "2xx", "3xx", "4xx", "5xx"]
                    .into_iter()
                    .zip(&h.counters.responses)
                {
                    out.sample(name, &[("host", h.host.as_str()), ("class", class)], n);
                }
            }

            let name = "http_sentinel_call_duration_seconds";
            out.family(
                name,
                "histogram",
                "Duration of whole calls, retries and backoff included.",
            );
            for h in &self.hosts {
                out.histogram(name, Some(&h.host), &h.counters.call_latency);
            }

            let name = "http_sentinel_attempt_duration_seconds";
            out.family(name, "histogram", "Duration of single attempts.");
            for h in &self.hosts {
                out.histogram(name, Some(&h.host), &h.counters.attempt_latency);
            }
        }

        let name = "http_sentinel_connection_reuse_ratio";
        out.family(
            name,
            "gauge",
            "Share of attempts that reused a connection (1 - connections opened / attempts).",
        );
        out.sample(name, &[], self.reuse_ratio());

        let pool = self.pool;
        for (name, help, value) in [
            (
                "http_sentinel_pool_clients",
                "Clients owned by the pool, idle or checked out.",
                pool.clients,
            ),
            (
                "http_sentinel_pool_idle_clients",
                "Clients idle in the pool.",
                pool.idle,
            ),
            (
                "http_sentinel_pool_checked_out_clients",
                "Clients currently checked out.",
                pool.checked_out,
            ),
            (
                "http_sentinel_pool_waiting_threads",
                "Threads waiting to check out a client.",
                pool.waiting,
            ),
            (
                "http_sentinel_pool_max_clients",
                "Most clients the pool will create.",
                pool.max_clients,
            ),
        ] {
            out.family(name, "gauge", help);
            out.sample(name, &[], value);
        }

        let name = "http_sentinel_pool_checkouts_total";
        out.family(name, "counter", "Successful client checkouts.");
        out.sample(name, &[], self.checkouts);

        let name = "http_sentinel_pool_checkout_timeouts_total";
        out.family(
            name,
            "counter",
            "Checkouts that gave up waiting for a client.",
        );
        out.sample(name, &[], self.checkout_timeouts);

        let name = "http_sentinel_pool_checkout_wait_seconds";
        out.family(
            name,
            "histogram",
            "Time spent waiting in checkout, successful or timed out.",
        );
        out.histogram(name, None, &self.checkout_wait);

        if !self.breakers.is_empty() {
            let name = "http_sentinel_breaker_open";
            out.family(
                name,
                "gauge",
                "1 while the host's circuit breaker is open, else 0.",
            );
            for (host, state) in &self.breakers {
                let open = u8::from(state.eq_ignore_ascii_case("open"));
                out.sample(name, &[("host", host.as_str())], open);
            }
        }

        out.text
    }
}

/// Per-host scalar counters exported to Prometheus: name, help text, value.
type CounterSpec = (&'static str, &'static str, fn(&Counters) -> u64);

const HOST_COUNTERS: &[CounterSpec] = &[
    (
        "http_sentinel_calls_total",
        "Logical calls made, however many attempts each took.",
        |c| c.calls,
    ),
    (
        "http_sentinel_attempts_total",
        "Attempts sent, first attempts and retries alike.",
        |c| c.attempts,
    ),
    (
        "http_sentinel_successes_total",
        "Calls that returned a response, whatever its status.",
        |c| c.successes,
    ),
    (
        "http_sentinel_retries_total",
        "Attempts made after a call's first attempt.",
        |c| c.retries,
    ),
    (
        "http_sentinel_retries_refused_total",
        "Retries not made because the retry budget was spent.",
        |c| c.retries_refused,
    ),
    (
        "http_sentinel_breaker_rejections_total",
        "Calls rejected by an open circuit breaker without being sent.",
        |c| c.breaker_rejections,
    ),
    (
        "http_sentinel_stale_replays_total",
        "Requests replayed because a pooled connection turned out to be stale.",
        |c| c.stale_replays,
    ),
    (
        "http_sentinel_redirects_total",
        "Redirects followed.",
        |c| c.redirects,
    ),
    (
        "http_sentinel_connections_opened_total",
        "New connections opened.",
        |c| c.connections_opened,
    ),
    (
        "http_sentinel_received_bytes_total",
        "Response body bytes received.",
        |c| c.bytes_received,
    ),
];

/// Prometheus `le` bounds for latency histograms: the bound and its label text.
const PROMETHEUS_BOUNDS: [(Duration, &str); 13] = [
    (Duration::from_micros(1_000), "0.001"),
    (Duration::from_micros(2_500), "0.0025"),
    (Duration::from_micros(5_000), "0.005"),
    (Duration::from_millis(10), "0.01"),
    (Duration::from_millis(25), "0.025"),
    (Duration::from_millis(50), "0.05"),
    (Duration::from_millis(100), "0.1"),
    (Duration::from_millis(250), "0.25"),
    (Duration::from_millis(500), "0.5"),
    (Duration::from_secs(1), "1"),
    (Duration::from_millis(2_500), "2.5"),
    (Duration::from_secs(5), "5"),
    (Duration::from_secs(10), "10"),
];

/// Builder for the text exposition format.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a metric family. Callers emit each family once, with all its samples right after.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        self.text.push_str("# HELP ");
        self.text.push_str(name);
        self.text.push(' ');
        for ch in help.chars() {
            match ch {
                '\\' => self.text.push_str("\\\\"),
                '\n' => self.text.push_str("\\n"),
                ch => self.text.push(ch),
            }
        }
        self.text.push_str("\n# TYPE ");
        self.text.push_str(name);
        self.text.push(' ');
        self.text.push_str(kind);
        self.text.push('\n');
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(key);
                self.text.push_str("=\"");
                for ch in value.chars() {
                    match ch {
                        '\\' => self.text.push_str("\\\\"),
                        '"' => self.text.push_str("\\\""),
                        '\n' => self.text.push_str("\\n"),
                        ch => self.text.push(ch),
                    }
                }
                self.text.push('"');
            }
            self.text.push('}');
        }
        // Writing into a String cannot fail.
        let _ = writeln!(self.text, " {value}");
    }

    fn histogram(&mut self, name: &str, host: Option<&str>, h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        let with_le = |le| -> Vec<(&str, &str)> {
            host.map(|host| ("host", host))
                .into_iter()
                .chain([("le", le)])
                .collect()
        };
        for (bound, le) in PROMETHEUS_BOUNDS {
            self.sample(&bucket, &with_le(le), h.count_within(bound));
        }
        self.sample(&bucket, &with_le("+Inf"), h.count());
        let labels: Vec<(&str, &str)> = host.map(|host| ("host", host)).into_iter().collect();
        self.sample(&format!("{name}_sum"), &labels, h.sum().as_secs_f64());
        self.sample(&format!("{name}_count"), &labels, h.count());
    }
}

// ---------------------------------------------------------------------------------------------
// Human-readable table
// ---------------------------------------------------------------------------------------------

/// Three significant digits in the largest unit that keeps the value at or above 1.
fn human_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    let (value, unit) = if nanos < 1_000_000 {
        (nanos as f64 / 1e3, "us")
    } else if nanos < 1_000_000_000 {
        (nanos as f64 / 1e6, "ms")
    } else {
        (nanos as f64 / 1e9, "s")
    };
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.decimals$}{unit}")
}

/// A latency for display; `-` when there were no samples, so "no data" does not read as "0 ns".
fn latency_cell(summary: &LatencySummary, pick: fn(&LatencySummary) -> Duration) -> String {
    if summary.count == 0 {
        "-".to_owned()
    } else {
        human_duration(pick(summary))
    }
}

/// `part` of `whole` in percent, two decimals, rounded down: one failure in 100,000 calls
/// shows as 99.99%, never as a clean 100.00%.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        let hundredths = u128::from(part) * 10_000 / u128::from(whole);
        format!("{}.{:02}%", hundredths / 100, hundredths % 100)
    }
}

/// Lays out `rows` in columns two spaces apart: columns before `first_right` left-aligned, the
/// rest right-aligned; trailing whitespace removed.
fn aligned(rows: &[Vec<String>], first_right: usize) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|col| {
            rows.iter()
                .filter_map(|row| row.get(col))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (col, (cell, &width)) in row.iter().zip(&widths).enumerate() {
                if col > 0 {
                    line.push_str("  ");
                }
                if col < first_right {
                    let _ = write!(line, "{cell:<width$}");
                } else {
                    let _ = write!(line, "{cell:>width$}");
                }
            }
            line.truncate(line.trim_end().len());
            line
        })
        .collect()
}

impl fmt::Display for Stats {
    /// A header line of totals, one row per host, the pool line and any breaker states.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = self.call_latency();
        write!(
            f,
            "calls {}  success {}  attempts {}  retries {}  reuse {:.3}  connections {}  \
             p50 {}  p99 {}  max {}",
            self.calls(),
            percent(self.successes(), self.calls()),
            self.attempts(),
            self.retries(),
            self.reuse_ratio(),
            self.connections_opened(),
            latency_cell(&call, LatencySummary::p50),
            latency_cell(&call, LatencySummary::p99),
            latency_cell(&call, LatencySummary::max),
        )?;

        if !self.hosts.is_empty() {
            let header = [
                "host", "calls", "success", "attempts", "retries", "failures", "conns", "reuse",
                "p50", "p99", "max",
            ];
            let mut rows = vec![header.iter().map(|s| (*s).to_owned()).collect()];
            rows.extend(self.hosts.iter().map(|h| {
                let call = h.call_latency();
                vec![
                    h.host.clone(),
                    h.calls().to_string(),
                    percent(h.successes(), h.calls()),
                    h.attempts().to_string(),
                    h.retries().to_string(),
                    h.failures().to_string(),
                    h.connections_opened().to_string(),
                    format!("{:.3}", h.reuse_ratio()),
                    latency_cell(&call, LatencySummary::p50),
                    latency_cell(&call, LatencySummary::p99),
                    latency_cell(&call, LatencySummary::max),
                ]
            }));
            for line in aligned(&rows, 1) {
                write!(f, "\n{line}")?;
            }
        }

        let pool = self.pool;
        let wait = self.checkout_wait();
        write!(
            f,
            "\npool: clients {}/{}  idle {}  checked out {}  waiting {}  checkouts {}  \
             timeouts {}  wait p99 {}",
            pool.clients,
            pool.max_clients,
            pool.idle,
            pool.checked_out,
            pool.waiting,
            self.checkouts,
            self.checkout_timeouts,
            latency_cell(&wait, LatencySummary::p99),
        )?;

        if !self.breakers.is_empty() {
            let rows: Vec<Vec<String>> = self
                .breakers
                .iter()
                .map(|(host, state)| vec!["breaker".to_owned(), host.clone(), state.clone()])
                .collect();
            for line in aligned(&rows, usize::MAX) {
                write!(f, "\n{line}")?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gone_clients_shards_are_taken_over_and_totals_stay_exact() {
        let registry = Arc::new(Registry::new());
        let shards = || lock(&registry.shards).len();
        for _ in 0..5 {
            // A client meets two hosts, records, and is discarded.
            let mut r = registry.recorder();
            inc(&r.host("a.test:80").calls);
            inc(&r.host("b.test:80").calls);
            drop(r);
        }
        assert_eq!(shards(), 2, "one shard per host, reused by each new client");
        // Two clients alive at once need two shards for the host they share.
        let mut one = registry.recorder();
        let mut two = registry.recorder();
        inc(&one.host("a.test:80").calls);
        inc(&two.host("a.test:80").calls);
        assert_eq!(shards(), 3);
        drop((one, two));
        let stats = registry.snapshot(PoolState::default());
        assert_eq!(stats.calls(), 12);
        assert_eq!(stats.host("a.test:80").map(|h| h.calls()), Some(7));
    }

    #[test]
    fn percentages_round_down_so_a_failure_never_shows_as_100() {
        assert_eq!(percent(102_717, 102_718), "99.99%");
        assert_eq!(percent(5, 5), "100.00%");
        assert_eq!(percent(1, 3), "33.33%");
        assert_eq!(percent(2, 3), "66.66%");
        assert_eq!(percent(0, 7), "0.00%");
        assert_eq!(percent(0, 0), "-");
        assert_eq!(percent(u64::MAX, u64::MAX), "100.00%");
    }
    use std::collections::HashSet;
    use std::thread;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Inclusive lower bound of a regular bucket, in microseconds.
    fn bucket_lower_micros(index: usize) -> u64 {
        if index < LINEAR_LIMIT as usize {
            return index as u64;
        }
        let shift = (index / SUB_BUCKETS - 1) as u32;
        let sub = (index % SUB_BUCKETS) as u64;
        (SUB_BUCKETS as u64 + sub) << shift
    }

    // -- Histogram ----------------------------------------------------------------------------

    #[test]
    fn layout_constants() {
        assert_eq!(OVERFLOW_BUCKET, 280);
        assert_eq!(BUCKETS, 281);
        assert_eq!(
            bucket_upper_micros(OVERFLOW_BUCKET - 1),
            Some(1 << TOP_POWER)
        );
        assert_eq!(bucket_index((1 << TOP_POWER) - 1), OVERFLOW_BUCKET - 1);
        assert_eq!(bucket_index(1 << TOP_POWER), OVERFLOW_BUCKET);
        assert_eq!(bucket_index(u64::MAX), OVERFLOW_BUCKET);
    }

    #[test]
    fn bucket_bounds_are_monotonic_and_contiguous() {
        for index in 0..OVERFLOW_BUCKET {
            let lower = bucket_lower_micros(index);
            let upper = bucket_upper_micros(index).unwrap();
            assert!(lower < upper, "bucket {index}");
            if index + 1 < OVERFLOW_BUCKET {
                assert_eq!(upper, bucket_lower_micros(index + 1), "gap after {index}");
            }
            assert!(bucket_upper(index) < bucket_upper(index + 1));
            // Relative width never exceeds 1/8 once the buckets are log-linear.
            if lower >= LINEAR_LIMIT {
                assert!((upper - lower) * 8 <= lower, "bucket {index} too wide");
            }
        }
        assert_eq!(bucket_upper(OVERFLOW_BUCKET), Duration::MAX);
    }

    #[test]
    fn every_value_lands_in_the_bucket_that_contains_it() {
        let mut values: Vec<u64> = (0..5_000).collect();
        for power in 4..TOP_POWER {
            let base = 1u64 << power;
            values.extend([base - 1, base, base + 1, base + base / 3, 2 * base - 1]);
        }
        for v in values {
            let index = bucket_index(v);
            assert!(index < OVERFLOW_BUCKET, "{v}");
            assert!(bucket_lower_micros(index) <= v, "{v} below bucket {index}");
            assert!(
                v < bucket_upper_micros(index).unwrap(),
                "{v} above bucket {index}"
            );
        }
    }

    #[test]
    fn quantiles_of_a_bimodal_distribution() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.record(ms(1));
        }
        for _ in 0..10 {
            h.record(ms(100));
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        assert_eq!(s.sum(), ms(90 + 1_000));
        assert_eq!(s.max(), ms(100));
        assert_eq!(s.mean(), us(10_900));

        let p50 = s.quantile(0.5);
        assert!(p50 >= ms(1) && p50 <= ms(1) + ms(1) / 8, "p50 {p50:?}");
        assert_eq!(p50, us(1_024));
        assert_eq!(s.quantile(0.9), us(1_024));
        // Rank 91 is the first 100 ms sample: its bucket [98.304 ms, 106.496 ms) is capped at
        // the exact maximum.
        assert_eq!(s.quantile(0.91), ms(100));
        assert_eq!(s.quantile(0.99), ms(100));
        assert_eq!(s.quantile(1.0), ms(100));
        assert_eq!(s.quantile(0.0), us(1_024));
        assert_eq!(s.quantile(-3.0), us(1_024));
        assert_eq!(s.quantile(7.0), ms(100));
        assert_eq!(s.quantile(f64::NAN), us(1_024));

        let summary = s.summary();
        assert_eq!(summary.count(), 100);
        assert_eq!(summary.p50(), us(1_024));
        assert_eq!(summary.p90(), us(1_024));
        assert_eq!(summary.p99(), ms(100));
        assert_eq!(summary.p999(), ms(100));
        assert_eq!(summary.max(), ms(100));
        assert_eq!(summary.mean(), us(10_900));
    }

    #[test]
    fn cumulative_buckets() {
        let h = Histogram::default();
        h.record(us(3));
        h.record(us(3));
        h.record(us(900));
        h.record(ms(1));
        let s = h.snapshot();
        let buckets: Vec<(Duration, u64)> = s.buckets().collect();
        assert_eq!(buckets.len(), BUCKETS);
        assert_eq!(buckets[3], (us(4), 2));
        assert_eq!(buckets.last().unwrap(), &(Duration::MAX, 4));
        assert!(buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        // 900 µs sits in [896, 960) µs, entirely below 1 ms; 1 ms sits in [960, 1024) µs.
        assert_eq!(s.count_within(ms(1)), 3);
        assert_eq!(s.count_within(us(1_024)), 4);
        assert_eq!(s.count_within(Duration::ZERO), 0);
    }

    #[test]
    fn extreme_durations_do_not_panic() {
        let h = Histogram::default();
        h.record(Duration::ZERO);
        h.record(Duration::from_nanos(1));
        h.record(Duration::MAX);
        h.record(Duration::from_secs(u64::MAX / 2));
        let s = h.snapshot();
        assert_eq!(s.count(), 4);
        assert_eq!(s.sum(), Duration::from_nanos(u64::MAX));
        assert_eq!(s.max(), Duration::from_nanos(u64::MAX));
        assert_eq!(s.quantile(0.25), us(1));
        assert_eq!(s.quantile(1.0), s.max());
        assert_eq!(s.buckets().nth(OVERFLOW_BUCKET).unwrap().1, 4);
        let _ = s.summary();
        let mut doubled = s.clone();
        doubled.merge(&s);
        assert_eq!(doubled.count(), 8);
        assert_eq!(doubled.sum(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn empty_histogram_reads_as_zero() {
        let s = Histogram::default().snapshot();
        assert_eq!(s, HistogramSnapshot::default());
        let summary = s.summary();
        assert_eq!(summary.count(), 0);
        for d in [
            summary.p50(),
            summary.p90(),
            summary.p99(),
            summary.p999(),
            summary.max(),
            summary.mean(),
        ] {
            assert_eq!(d, Duration::ZERO);
        }
    }

    #[test]
    fn merging_equals_recording_in_one() {
        let samples_a = [
            us(0),
            us(7),
            us(15),
            us(16),
            ms(3),
            ms(250),
            Duration::from_secs(40),
        ];
        let samples_b = [
            us(999),
            us(1_000),
            ms(1),
            ms(99),
            Duration::from_nanos(1_500),
        ];
        let (a, b, all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for d in samples_a {
            a.record(d);
            all.record(d);
        }
        for d in samples_b {
            b.record(d);
            all.record(d);
        }
        let mut merged = a.snapshot();
        merged.merge(&b.snapshot());
        assert_eq!(merged, all.snapshot());

        let mut via_merge_into = HistogramSnapshot::default();
        b.merge_into(&mut via_merge_into);
        a.merge_into(&mut via_merge_into);
        assert_eq!(via_merge_into, all.snapshot());
    }

    #[test]
    fn histogram_subtraction() {
        let h = Histogram::default();
        for _ in 0..5 {
            h.record(ms(1));
        }
        h.record(ms(50));
        let earlier = h.snapshot();
        for _ in 0..3 {
            h.record(ms(2));
        }
        let later = h.snapshot();
        let d = later.saturating_sub(&earlier);
        assert_eq!(d.count(), 3);
        assert_eq!(d.sum(), ms(6));
        // The later maximum (50 ms) predates the interval; it is capped at the top of the 2 ms
        // bucket, [1.92 ms, 2.048 ms).
        assert_eq!(d.max(), us(2_048));
        assert_eq!(d.quantile(0.5), us(2_048));
        assert_eq!(d.count_within(ms(1)), 0);
        assert_eq!(later.saturating_sub(&later), HistogramSnapshot::default());
        assert_eq!(earlier.saturating_sub(&later).count(), 0);
    }

    // -- ErrorClass ---------------------------------------------------------------------------

    #[test]
    fn error_classes_are_indexed_and_labelled_consistently() {
        assert_eq!(ErrorClass::COUNT, 15);
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

    // -- Registry and Recorder ----------------------------------------------------------------

    #[test]
    fn thread_safety_bounds() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<Recorder>();
        send_sync::<Registry>();
        send_sync::<Arc<CachePadded<HostCounters>>>();
        send_sync::<Stats>();
    }

    #[test]
    fn status_classes() {
        let c = HostCounters::default();
        for status in [
            0,
            99,
            100,
            199,
            200,
            204,
            301,
            404,
            500,
            599,
            600,
            999,
            u16::MAX,
        ] {
            c.record_status(status);
        }
        let counts: Vec<u64> = c.responses.iter().map(|n| n.load(Relaxed)).collect();
        assert_eq!(counts, [2, 2, 1, 1, 2]);
    }

    #[test]
    fn concurrent_recorders_sum_exactly() {
        const THREADS: u64 = 4;
        const N: u64 = 2_000;
        let registry = Arc::new(Registry::new());
        // Recorders are created on one thread and moved to their worker, as a pool does.
        let recorders: Vec<Recorder> = (0..THREADS).map(|_| registry.recorder()).collect();
        thread::scope(|scope| {
            for mut rec in recorders {
                scope.spawn(move || {
                    for _ in 0..N {
                        let a = rec.host("a.example");
                        inc(&a.calls);
                        inc(&a.attempts);
                        inc(&a.successes);
                        a.record_status(200);
                        a.call_latency.record(ms(1));
                        a.attempt_latency.record(ms(1));
                        // A body reader holds its own handle.
                        let body = rec.host_arc("a.example");
                        add(&body.bytes_received, 100);

                        let b = rec.host("b.example");
                        inc(&b.calls);
                        add(&b.attempts, 3);
                        add(&b.retries, 2);
                        inc(&b.connections_opened);
                        b.record_status(503);
                        b.record_status(503);
                        b.record_failure(ErrorClass::Timeout);
                        b.call_latency.record(ms(30));
                        for _ in 0..3 {
                            b.attempt_latency.record(ms(10));
                        }
                    }
                    rec.registry().record_checkout(us(5));
                });
            }
        });
        registry.record_checkout_timeout(ms(2));

        // At most one shard per recorder and host; fewer when a recorder that finished early
        // handed its shards to one that started later.
        let shards = lock(&registry.shards).len();
        assert!((2..=8).contains(&shards), "{shards}");
        let pool = PoolState {
            clients: 4,
            idle: 4,
            checked_out: 0,
            waiting: 0,
            max_clients: 4,
        };
        let stats = registry.snapshot(pool);
        let total = THREADS * N;
        assert_eq!(stats.calls(), 2 * total);
        assert_eq!(stats.attempts(), 4 * total);
        assert_eq!(stats.successes(), total);
        assert_eq!(stats.failures(), total);
        assert_eq!(stats.failures_by(ErrorClass::Timeout), total);
        assert_eq!(stats.failures_by(ErrorClass::Dns), 0);
        assert_eq!(stats.responses_by_class(2), total);
        assert_eq!(stats.responses_by_class(5), 2 * total);
        assert_eq!(stats.responses_by_class(0), 0);
        assert_eq!(stats.responses_by_class(6), 0);
        assert_eq!(stats.retries(), 2 * total);
        assert_eq!(stats.connections_opened(), total);
        assert_eq!(stats.bytes_received(), 100 * total);
        assert_eq!(stats.reuse_ratio(), 0.75);
        assert_eq!(stats.call_latency().count(), 2 * total);
        assert_eq!(stats.call_latency().max(), ms(30));
        assert_eq!(stats.attempt_latency().count(), 4 * total);
        assert_eq!(stats.pool(), pool);
        assert_eq!(stats.checkouts(), THREADS);
        assert_eq!(stats.checkout_timeouts(), 1);
        assert_eq!(stats.checkout_wait().count(), THREADS + 1);
        assert_eq!(stats.checkout_wait().max(), ms(2));

        let hosts: Vec<&str> = stats.hosts().iter().map(HostStats::host).collect();
        assert_eq!(hosts, ["a.example", "b.example"]);
        let a = stats.host("a.example").unwrap();
        assert_eq!(
            (a.calls(), a.attempts(), a.successes(), a.failures()),
            (total, total, total, 0)
        );
        assert_eq!(a.bytes_received(), 100 * total);
        assert_eq!(a.responses_by_class(2), total);
        assert_eq!(a.reuse_ratio(), 1.0);
        assert_eq!(a.call_latency().p99(), ms(1));
        let b = stats.host("b.example").unwrap();
        assert_eq!(
            (b.calls(), b.attempts(), b.successes(), b.failures()),
            (total, 3 * total, 0, total)
        );
        assert_eq!(b.retries(), 2 * total);
        assert_eq!(b.failures_by(ErrorClass::Timeout), total);
        assert_eq!(b.responses_by_class(5), 2 * total);
        assert_eq!(b.connections_opened(), total);
        assert_eq!(b.attempt_latency().count(), 3 * total);
        assert_eq!(b.attempt_latency().mean(), ms(10));
        assert!((b.reuse_ratio() - 2.0 / 3.0).abs() < 1e-12);
        assert!(stats.host("c.example").is_none());
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

    // -- Prometheus ---------------------------------------------------------------------------

    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    impl Sample {
        fn label(&self, key: &str) -> Option<&str> {
            self.labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        }
    }

    fn parse_sample(line: &str) -> Sample {
        let mut chars = line.chars().peekable();
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '{' || c == ' ' {
                break;
            }
            assert!(
                c.is_ascii_alphanumeric() || c == '_' || c == ':',
                "bad name in {line:?}"
            );
            name.push(c);
            chars.next();
        }
        let mut labels = Vec::new();
        if chars.peek() == Some(&'{') {
            chars.next();
            loop {
                match chars.next() {
                    Some('}') => break,
                    Some(',') => continue,
                    Some(c) => {
                        let mut key = c.to_string();
                        for c in chars.by_ref() {
                            if c == '=' {
                                break;
                            }
                            key.push(c);
                        }
                        assert_eq!(chars.next(), Some('"'), "in {line:?}");
                        let mut value = String::new();
                        loop {
                            match chars.next().expect("unterminated label value") {
                                '\\' => match chars.next() {
                                    Some('\\') => value.push('\\'),
                                    Some('"') => value.push('"'),
                                    Some('n') => value.push('\n'),
                                    other => panic!("bad escape {other:?} in {line:?}"),
                                },
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.push((key, value));
                    }
                    None => panic!("unterminated labels in {line:?}"),
                }
            }
        }
        assert_eq!(chars.next(), Some(' '), "in {line:?}");
        let value: String = chars.collect();
        let value = match value.as_str() {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        Sample {
            name,
            labels,
            value,
        }
    }

    /// Checks the structural rules of the text format and returns the samples by family.
    fn validate(text: &str) -> BTreeMap<String, (String, Vec<Sample>)> {
        assert!(text.ends_with('\n'));
        let mut helped = HashSet::new();
        let mut families: BTreeMap<String, (String, Vec<Sample>)> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            assert!(!line.is_empty() && line.trim_end() == line, "{line:?}");
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_owned();
                assert!(!families.contains_key(&name), "HELP after TYPE for {name}");
                assert!(helped.insert(name.clone()), "second HELP for {name}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(helped.contains(name), "TYPE without HELP for {name}");
                assert!(name.starts_with("http_sentinel_"), "{name}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
                let fresh = families
                    .insert(name.to_owned(), (kind.to_owned(), Vec::new()))
                    .is_none();
                assert!(fresh, "second TYPE for {name}");
                current = Some(name.to_owned());
                continue;
            }
            assert!(!line.starts_with('#'), "stray comment {line:?}");
            let sample = parse_sample(line);
            // Samples belong to the family declared last: since each family is declared once,
            // this also proves that a family's samples are contiguous.
            let family = current.as_ref().expect("sample before any TYPE");
            let (kind, samples) = families.get_mut(family).unwrap();
            if kind == "histogram" {
                let suffix = sample.name.strip_prefix(family.as_str()).unwrap_or("");
                assert!(
                    ["_bucket", "_sum", "_count"].contains(&suffix),
                    "{} outside family {family}",
                    sample.name
                );
            } else {
                assert_eq!(&sample.name, family);
            }
            samples.push(sample);
        }
        assert_eq!(helped.len(), families.len());

        for (family, (kind, samples)) in &families {
            assert!(!samples.is_empty(), "{family} has no samples");
            if kind != "histogram" {
                continue;
            }
            // Group by the labels other than `le`, keeping emission order.
            let mut series: BTreeMap<Vec<(String, String)>, Vec<&Sample>> = BTreeMap::new();
            for s in samples {
                let key = s
                    .labels
                    .iter()
                    .filter(|(k, _)| k != "le")
                    .cloned()
                    .collect();
                series.entry(key).or_default().push(s);
            }
            for (labels, samples) in series {
                let buckets: Vec<&&Sample> = samples
                    .iter()
                    .filter(|s| s.name.ends_with("_bucket"))
                    .collect();
                let les: Vec<f64> = buckets
                    .iter()
                    .map(|s| match s.label("le").expect("bucket without le") {
                        "+Inf" => f64::INFINITY,
                        le => le.parse().unwrap(),
                    })
                    .collect();
                assert!(les.windows(2).all(|w| w[0] < w[1]), "{family} {labels:?}");
                assert_eq!(les.last(), Some(&f64::INFINITY), "{family} {labels:?}");
                let counts: Vec<f64> = buckets.iter().map(|s| s.value).collect();
                assert!(
                    counts.windows(2).all(|w| w[0] <= w[1]),
                    "{family} {labels:?}"
                );
                let count = samples
                    .iter()
                    .find(|s| s.name.ends_with("_count"))
                    .expect("no _count");
                assert_eq!(counts.last(), Some(&count.value), "{family} {labels:?}");
                assert!(samples.iter().any(|s| s.name.ends_with("_sum")));
                assert_eq!(samples.len(), PROMETHEUS_BOUNDS.len() + 3);
            }
        }
        families
    }

    fn find<'a>(
        families: &'a BTreeMap<String, (String, Vec<Sample>)>,
        name: &str,
        labels: &[(&str, &str)],
    ) -> &'a Sample {
        families
            .values()
            .flat_map(|(_, samples)| samples)
            .find(|s| s.name == name && labels.iter().all(|&(k, v)| s.label(k) == Some(v)))
            .unwrap_or_else(|| panic!("no {name} {labels:?}"))
    }

    #[test]
    fn prometheus_exposition_is_well_formed() {
        let weird = "we\"ird\\host\nx";
        let registry = Arc::new(Registry::new());
        let mut rec = registry.recorder();
        for latency in [us(900), ms(1), ms(3), ms(40), Duration::from_secs(30)] {
            let a = rec.host("a.example");
            inc(&a.calls);
            inc(&a.attempts);
            inc(&a.successes);
            a.record_status(200);
            a.call_latency.record(latency);
            a.attempt_latency.record(latency);
        }
        let w = rec.host(weird);
        inc(&w.calls);
        add(&w.attempts, 2);
        inc(&w.retries);
        inc(&w.connections_opened);
        w.record_failure(ErrorClass::Connect);
        w.attempt_latency.record(ms(2));
        registry.record_checkout(us(20));
        let mut stats = registry.snapshot(PoolState {
            clients: 3,
            idle: 1,
            checked_out: 2,
            waiting: 0,
            max_clients: 8,
        });
        stats.set_breakers(vec![
            (weird.to_owned(), "open".to_owned()),
            ("a.example".to_owned(), "half_open".to_owned()),
        ]);

        let text = stats.to_prometheus();
        let families = validate(&text);

        assert!(text.contains(r#"http_sentinel_calls_total{host="we\"ird\\host\nx"} 1"#));
        assert!(text.contains("http_sentinel_calls_total{host=\"a.example\"} 5\n"));
        assert_eq!(
            find(&families, "http_sentinel_calls_total", &[("host", weird)]).value,
            1.0
        );
        assert_eq!(
            find(
                &families,
                "http_sentinel_failures_total",
                &[("host", weird), ("kind", "connect")]
            )
            .value,
            1.0
        );
        assert_eq!(
            find(
                &families,
                "http_sentinel_failures_total",
                &[("host", weird), ("kind", "dns")]
            )
            .value,
            0.0
        );
        assert_eq!(
            find(
                &families,
                "http_sentinel_responses_total",
                &[("host", "a.example"), ("class", "2xx")]
            )
            .value,
            5.0
        );
        assert_eq!(
            families["http_sentinel_failures_total"].1.len(),
            2 * ErrorClass::COUNT
        );

        let bucket = "http_sentinel_call_duration_seconds_bucket";
        let le = |le| find(&families, bucket, &[("host", "a.example"), ("le", le)]).value;
        // 900 µs is wholly below 1 ms; exactly 1 ms shares a fine bucket reaching 1.024 ms.
        assert_eq!(le("0.001"), 1.0);
        assert_eq!(le("0.0025"), 2.0);
        assert_eq!(le("0.005"), 3.0);
        assert_eq!(le("0.05"), 4.0);
        assert_eq!(le("10"), 4.0);
        assert_eq!(le("+Inf"), 5.0);
        let sum = find(
            &families,
            "http_sentinel_call_duration_seconds_sum",
            &[("host", "a.example")],
        );
        assert!((sum.value - 30.0449).abs() < 1e-9, "{}", sum.value);

        assert_eq!(
            find(&families, "http_sentinel_pool_clients", &[]).value,
            3.0
        );
        assert_eq!(
            find(&families, "http_sentinel_pool_max_clients", &[]).value,
            8.0
        );
        assert_eq!(
            find(&families, "http_sentinel_pool_checkouts_total", &[]).value,
            1.0
        );
        assert_eq!(
            find(
                &families,
                "http_sentinel_pool_checkout_wait_seconds_count",
                &[]
            )
            .value,
            1.0
        );
        assert_eq!(
            find(&families, "http_sentinel_breaker_open", &[("host", weird)]).value,
            1.0
        );
        assert_eq!(
            find(
                &families,
                "http_sentinel_breaker_open",
                &[("host", "a.example")]
            )
            .value,
            0.0
        );
        let reuse = find(&families, "http_sentinel_connection_reuse_ratio", &[]).value;
        assert!((reuse - (1.0 - 1.0 / 7.0)).abs() < 1e-12);
    }

    #[test]
    fn prometheus_without_hosts_is_still_valid() {
        let families = validate(&Stats::default().to_prometheus());
        assert!(!families.contains_key("http_sentinel_calls_total"));
        assert!(!families.contains_key("http_sentinel_breaker_open"));
        assert!(families.contains_key("http_sentinel_pool_checkout_wait_seconds"));
    }

    #[test]
    fn help_text_is_escaped() {
        let mut out = Exposition::default();
        out.family("http_sentinel_x", "gauge", "a \\ b\nc");
        assert_eq!(
            out.text,
            "# HELP http_sentinel_x a \\\\ b\\nc\n# TYPE http_sentinel_x gauge\n"
        );
    }

    // -- Display ------------------------------------------------------------------------------

    #[test]
    fn display_table() {
        let registry = Arc::new(Registry::new());
        let mut rec = registry.recorder();
        for i in 0..30u64 {
            let h = rec.host("api.example.com");
            inc(&h.calls);
            inc(&h.attempts);
            if i % 3 == 0 {
                h.record_failure(ErrorClass::Timeout);
                inc(&h.retries);
                inc(&h.attempts);
            } else {
                inc(&h.successes);
            }
            h.call_latency.record(ms(2));
        }
        add(&rec.host("api.example.com").connections_opened, 4);
        let s = rec.host("s.example");
        add(&s.calls, 7);
        add(&s.attempts, 7);
        add(&s.successes, 7);
        add(&s.connections_opened, 7);
        s.call_latency.record(ms(150));
        registry.record_checkout(us(40));
        let mut stats = registry.snapshot(PoolState {
            clients: 2,
            idle: 1,
            checked_out: 1,
            waiting: 0,
            max_clients: 4,
        });
        stats.set_breakers(vec![
            ("s.example".into(), "closed".into()),
            ("api.example.com".into(), "open".into()),
        ]);

        let text = stats.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.iter().all(|l| l.trim_end() == *l), "{text}");
        assert!(!text.ends_with('\n'));

        let (calls, successes, attempts) = (37u64, 27u64, 47u64);
        let header = lines[0];
        assert!(
            header.starts_with(&format!("calls {calls}  success 72.97%  ")),
            "{header}"
        );
        assert!(header.contains(&format!("attempts {attempts}  retries 10  ")));
        assert!(header.contains(&format!("reuse {:.3}  connections 11", 1.0 - 11.0 / 47.0)));
        assert!(
            header.contains("p50 2.05ms  p99 150ms  max 150ms"),
            "{header}"
        );
        assert_eq!(
            format!("{:.2}", successes as f64 * 100.0 / calls as f64),
            "72.97"
        );

        // Host table: header row plus one row per host, all the same width.
        assert!(lines[1].starts_with("host "));
        assert!(lines[2].starts_with("api.example.com "));
        assert!(lines[3].starts_with("s.example "));
        let width = lines[1].chars().count();
        assert!(
            lines[1..4].iter().all(|l| l.chars().count() == width),
            "{text}"
        );
        let api: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            api,
            [
                "api.example.com",
                "30",
                "66.66%",
                "40",
                "10",
                "10",
                "4",
                "0.900",
                "2.00ms",
                "2.00ms",
                "2.00ms"
            ]
        );
        let small: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(
            small,
            [
                "s.example",
                "7",
                "100.00%",
                "7",
                "0",
                "0",
                "7",
                "0.000",
                "150ms",
                "150ms",
                "150ms"
            ]
        );

        assert_eq!(
            lines[4],
            "pool: clients 2/4  idle 1  checked out 1  waiting 0  checkouts 1  timeouts 0  wait p99 40.0us"
        );
        assert_eq!(lines[5], "breaker  api.example.com  open");
        assert_eq!(lines[6], "breaker  s.example        closed");
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn display_of_empty_stats() {
        assert_eq!(
            Stats::default().to_string(),
            "calls 0  success -  attempts 0  retries 0  reuse 0.000  connections 0  p50 -  p99 -  max -\n\
             pool: clients 0/0  idle 0  checked out 0  waiting 0  checkouts 0  timeouts 0  wait p99 -"
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(Duration::ZERO), "0ns");
        assert_eq!(human_duration(Duration::from_nanos(999)), "999ns");
        assert_eq!(human_duration(us(1)), "1.00us");
        assert_eq!(human_duration(us(40)), "40.0us");
        assert_eq!(human_duration(us(1_024)), "1.02ms");
        assert_eq!(human_duration(ms(150)), "150ms");
        assert_eq!(human_duration(Duration::from_secs(12)), "12.0s");
    }
}
