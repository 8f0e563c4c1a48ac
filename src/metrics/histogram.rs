//! Latency histograms: the bucket layout, [`Histogram`] (recorded into by many threads without
//! locking), [`HistogramSnapshot`] (a plain copy to read, merge and subtract) and the public
//! [`LatencySummary`] reported from it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Duration;

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
const BUCKETS: usize = OVERFLOW_BUCKET + 1;

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

/// Buckets per chunk of a [`Histogram`]: four powers of two.
const CHUNK: usize = 4 * SUB_BUCKETS;
/// Chunks of a [`Histogram`], the last one partly used.
const CHUNKS: usize = BUCKETS.div_ceil(CHUNK);

/// A latency histogram that many threads may record into without locking (but for the
/// one-time allocation of a chunk, see below).
///
/// The total count is not stored: it is the sum of the buckets, which saves an atomic add per
/// sample and keeps `count` consistent with the buckets by construction.
///
/// The buckets are allocated a chunk (four powers of two) at a time, on the first sample that
/// falls in it: a client's latencies usually span a few powers of two, so each histogram holds
/// one to three chunks of 256 bytes instead of all 281 buckets (2.2 KiB), and a pool of 1,000
/// idle clients holds megabytes less.
pub(super) struct Histogram {
    chunks: [OnceLock<Box<[AtomicU64; CHUNK]>>; CHUNKS],
    sum_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

/// The chunk of `slot`, allocated by the first sample that falls in it (out of line: it runs
/// a few times in a shard's life).
#[cold]
fn new_chunk(slot: &OnceLock<Box<[AtomicU64; CHUNK]>>) -> &[AtomicU64; CHUNK] {
    slot.get_or_init(|| Box::new(std::array::from_fn(|_| AtomicU64::new(0))))
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            chunks: std::array::from_fn(|_| OnceLock::new()),
            sum_nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one sample. Relaxed atomics, but for the acquire load that finds the sample's
    /// chunk (the first sample in a chunk allocates it): samples need no ordering with anything
    /// else.
    pub(super) fn record(&self, d: Duration) {
        let nanos = saturating_nanos(d);
        let index = bucket_index(nanos / 1_000);
        let slot = &self.chunks[index / CHUNK];
        let chunk = match slot.get() {
            Some(chunk) => chunk,
            None => new_chunk(slot),
        };
        chunk[index % CHUNK].fetch_add(1, Relaxed);
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

    /// Adds this histogram's current contents to `acc`. A chunk never allocated holds zeros.
    pub(super) fn merge_into(&self, acc: &mut HistogramSnapshot) {
        for (totals, chunk) in acc.buckets.chunks_mut(CHUNK).zip(&self.chunks) {
            let Some(chunk) = chunk.get() else { continue };
            for (total, bucket) in totals.iter_mut().zip(chunk.iter()) {
                let n = bucket.load(Relaxed);
                *total = total.saturating_add(n);
                acc.count = acc.count.saturating_add(n);
            }
        }
        acc.sum_nanos = acc.sum_nanos.saturating_add(self.sum_nanos.load(Relaxed));
        acc.max_nanos = acc.max_nanos.max(self.max_nanos.load(Relaxed));
    }

    /// A point-in-time copy of this histogram.
    pub(super) fn snapshot(&self) -> HistogramSnapshot {
        let mut snapshot = HistogramSnapshot::default();
        self.merge_into(&mut snapshot);
        snapshot
    }
}

/// An immutable copy of one or more [`Histogram`]s.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct HistogramSnapshot {
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
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// Exact sum of all samples (saturating at about 584 years).
    pub(super) fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos)
    }

    /// Exact largest sample; zero when empty. After [`saturating_sub`](Self::saturating_sub) it
    /// is an upper bound, see there.
    pub(super) fn max(&self) -> Duration {
        Duration::from_nanos(self.max_nanos)
    }

    /// Arithmetic mean; zero when empty.
    pub(super) fn mean(&self) -> Duration {
        match self.count {
            0 => Duration::ZERO,
            n => Duration::from_nanos(self.sum_nanos / n),
        }
    }

    /// The `q`-quantile (`q` in `0.0..=1.0`, clamped; NaN counts as 0): the upper bound of the
    /// bucket holding the sample of rank `ceil(q * count)`, clamped to the exact maximum. It is
    /// never below the true quantile and at most 12.5% above it. Zero when empty.
    pub(super) fn quantile(&self, q: f64) -> Duration {
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
    pub(super) fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
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
    pub(super) fn count_within(&self, bound: Duration) -> u64 {
        self.buckets()
            .take_while(|&(upper, _)| upper <= bound)
            .last()
            .map_or(0, |(_, cumulative)| cumulative)
    }

    /// Adds `other` into `self`, as if every sample had been recorded in one histogram.
    pub(super) fn merge(&mut self, other: &HistogramSnapshot) {
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
    pub(super) fn saturating_sub(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
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
    pub(super) fn summary(&self) -> LatencySummary {
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
    ///
    /// # Examples
    ///
    /// ```
    /// let latency = http_sentinel::Stats::default().call_latency(); // normally `pool.stats()`
    /// assert_eq!(latency.count(), 0);
    /// ```
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Median.
    ///
    /// # Examples
    ///
    /// ```
    /// let latency = http_sentinel::Stats::default().call_latency(); // normally `pool.stats()`
    /// assert!(latency.p50() <= latency.p90());
    /// ```
    pub fn p50(&self) -> Duration {
        self.p50
    }

    /// 90th percentile.
    ///
    /// # Examples
    ///
    /// ```
    /// let latency = http_sentinel::Stats::default().call_latency(); // normally `pool.stats()`
    /// assert!(latency.p90() <= latency.p99());
    /// ```
    pub fn p90(&self) -> Duration {
        self.p90
    }

    /// 99th percentile.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let latency = http_sentinel::Stats::default().call_latency(); // normally `pool.stats()`
    /// if latency.p99() > Duration::from_millis(250) {
    ///     eprintln!("slow: p99 {:?}", latency.p99());
    /// }
    /// ```
    pub fn p99(&self) -> Duration {
        self.p99
    }

    /// 99.9th percentile.
    ///
    /// # Examples
    ///
    /// ```
    /// let latency = http_sentinel::Stats::default().call_latency(); // normally `pool.stats()`
    /// assert!(latency.p999() <= latency.max());
    /// ```
    pub fn p999(&self) -> Duration {
        self.p999
    }

    /// Largest sample (exact).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let latency = http_sentinel::Stats::default().call_latency(); // normally `pool.stats()`
    /// assert_eq!(latency.max(), Duration::ZERO); // no samples
    /// ```
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Arithmetic mean (exact up to nanosecond rounding).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let latency = http_sentinel::Stats::default().call_latency(); // normally `pool.stats()`
    /// assert_eq!(latency.mean(), Duration::ZERO); // no samples
    /// ```
    pub fn mean(&self) -> Duration {
        self.mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn chunks_are_allocated_by_the_samples_that_fall_in_them() {
        let h = Histogram::default();
        let allocated = |h: &Histogram| h.chunks.iter().filter(|c| c.get().is_some()).count();
        assert_eq!(allocated(&h), 0);
        // The first chunk holds everything below 64 µs; 2 ms is in the third.
        h.record(us(20));
        h.record(us(63));
        assert_eq!(allocated(&h), 1);
        h.record(ms(2));
        assert_eq!(allocated(&h), 2);
        // The last bucket of every chunk and the overflow bucket are counted where they belong.
        for index in (CHUNK - 1..BUCKETS).step_by(CHUNK).chain([OVERFLOW_BUCKET]) {
            let micros = match bucket_upper_micros(index) {
                Some(upper) => upper - 1,
                None => u64::MAX / 1_000,
            };
            assert_eq!(bucket_index(micros), index);
            h.record(us(micros));
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 3 + CHUNKS as u64);
        let counts: Vec<u64> = s.buckets().map(|(_, c)| c).collect();
        for index in (CHUNK - 1..BUCKETS).step_by(CHUNK).chain([OVERFLOW_BUCKET]) {
            assert!(counts[index] > counts[index - 1], "bucket {index} counted");
        }
        assert_eq!(allocated(&h), CHUNKS);
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
}
