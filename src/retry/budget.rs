//! `RetryBudget`: a cap on retries shared by many threads (gRPC's retry throttling and
//! Finagle's retry budget, lock-free).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(super) const fn assert_budget_ratio(ratio: f64) {
    assert!(
        ratio >= 0.0 && ratio <= 10.0,
        "retry budget ratio must be within [0, 10]"
    );
}

pub(super) const fn assert_budget_window(window: Duration) {
    assert!(!window.is_zero(), "retry budget window must not be zero");
}

const BUCKETS: usize = 10;
const COUNT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Budget arithmetic is done in millionths of a retry so that it is exact.
const MICROS: u128 = 1_000_000;

/// One time bucket. Each counter packs the bucket's epoch (low 32 bits of it)
/// above a 32-bit count, so that a stale bucket is reset and counted into by
/// one compare-and-swap, with no lock and no lost update. An epoch is only
/// ambiguous after 2^32 buckets untouched (136 years with 1 s buckets).
#[derive(Debug, Default)]
struct Slot {
    requests: AtomicU64,
    retries: AtomicU64,
}

const fn pack(epoch: u64, count: u64) -> u64 {
    (epoch << COUNT_BITS) | count
}

/// The count held in `word` if it belongs to `epoch`, else 0.
const fn count_at(word: u64, epoch: u64) -> u64 {
    if word >> COUNT_BITS == epoch & COUNT_MASK {
        word & COUNT_MASK
    } else {
        0
    }
}

/// A cap on retries shared by many threads, so that retries cannot multiply
/// the load on a server that is already failing.
///
/// A retry is allowed while the retries in the recent window stay below
/// `floor + ratio × requests in the window`. The window slides in ten buckets,
/// so a request counts for between nine and ten tenths of the window.
///
/// The floor is `min_per_sec` per second of the window that has begun since
/// the budget's first use, counted in whole buckets (tenths of the window):
/// `min_per_sec × window × b / 10` in the `b`-th bucket since then (fractions
/// round up to a whole retry), and `min_per_sec × window` from the tenth on. So
/// a fresh budget allows `min_per_sec × window / 10` floor retries in its first
/// tenth of a window, not the whole window's floor at once (Finagle's retry
/// budget likewise lets its reserve build up rather than start full). Once the
/// window is full the floor is `min_per_sec` per second *averaged over the
/// window*, as any sliding-window allowance: floor retries not made in the
/// window's earlier part can be made in its later part.
///
/// Lock-free: only atomics are touched.
///
/// # Examples
///
/// ```
/// use http_sentinel::retry::RetryBudget;
/// use std::time::Duration;
///
/// let budget = RetryBudget::new(0.5, 0, Duration::from_secs(10));
/// budget.record_request();
/// budget.record_request();
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw());
/// ```
#[derive(Debug)]
pub struct RetryBudget {
    origin: Instant,
    bucket_nanos: u128,
    ratio_micros: u128,
    floor_micros: u128,
    /// The bucket of the first use, plus one; 0 until then.
    first_use: AtomicU64,
    slots: [Slot; BUCKETS],
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per request plus `min_per_sec`
    /// retries per second, over the last `window`; the per-second floor builds
    /// up from the first use (see [`RetryBudget`]).
    ///
    /// The ratio is kept to six decimal places.
    ///
    /// # Panics
    ///
    /// Panics if `ratio` is outside `[0, 10]` or not a number, or if `window`
    /// is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::retry::RetryBudget;
    /// use std::time::Duration;
    ///
    /// // 10 retries per second over 2 s: 2 in each fifth of a second, up to 20.
    /// let budget = RetryBudget::new(0.0, 10, Duration::from_secs(2));
    /// assert!(budget.try_withdraw());
    /// assert!(budget.try_withdraw());
    /// assert!(!budget.try_withdraw());
    /// ```
    pub fn new(ratio: f64, min_per_sec: u32, window: Duration) -> Self {
        assert_budget_ratio(ratio);
        assert_budget_window(window);
        Self {
            origin: Instant::now(),
            bucket_nanos: (window.as_nanos() / BUCKETS as u128).max(1),
            ratio_micros: (ratio * MICROS as f64).round() as u128,
            floor_micros: u128::from(min_per_sec) * window.as_micros(),
            first_use: AtomicU64::new(0),
            slots: Default::default(),
        }
    }

    /// Counts a call's first attempt; retries are counted by
    /// [`try_withdraw`](Self::try_withdraw) instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::retry::RetryBudget;
    /// use std::time::Duration;
    ///
    /// let budget = RetryBudget::new(1.0, 0, Duration::from_secs(10));
    /// assert!(!budget.try_withdraw());
    /// budget.record_request();
    /// assert!(budget.try_withdraw());
    /// ```
    pub fn record_request(&self) {
        self.record_request_at(Instant::now());
    }

    /// Takes one retry from the budget: true if it is allowed, in which case
    /// it is counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::retry::RetryBudget;
    /// use std::time::Duration;
    ///
    /// let budget = RetryBudget::new(0.0, 0, Duration::from_secs(10));
    /// assert!(!budget.try_withdraw());
    /// ```
    pub fn try_withdraw(&self) -> bool {
        self.try_withdraw_at(Instant::now())
    }

    pub(crate) fn record_request_at(&self, now: Instant) {
        let epoch = self.epoch(now);
        self.mark_first_use(epoch);
        // Counters carry no other data, so relaxed ordering suffices; the
        // compare-and-swap alone keeps each count exact.
        let _ =
            self.slot(epoch)
                .requests
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                    Some(pack(epoch, (count_at(word, epoch) + 1).min(COUNT_MASK)))
                });
    }

    pub(crate) fn try_withdraw_at(&self, now: Instant) -> bool {
        let epoch = self.epoch(now);
        let floor = self.floor_at(self.mark_first_use(epoch), epoch);
        let current = &self.slot(epoch).retries;
        let mut word = current.load(Ordering::Relaxed);
        loop {
            let mut requests = 0;
            let mut retries = u128::from(count_at(word, epoch));
            for age in 0..=epoch.min(BUCKETS as u64 - 1) {
                let slot = self.slot(epoch - age);
                requests +=
                    u128::from(count_at(slot.requests.load(Ordering::Relaxed), epoch - age));
                if age > 0 {
                    retries +=
                        u128::from(count_at(slot.retries.load(Ordering::Relaxed), epoch - age));
                }
            }
            if retries * MICROS >= floor + self.ratio_micros * requests {
                return false;
            }
            // Only this bucket takes new retries, so a successful swap proves
            // no other withdrawal slipped in since the total was read.
            let next = pack(epoch, (count_at(word, epoch) + 1).min(COUNT_MASK));
            match current.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => word = actual,
            }
        }
    }

    /// Remembers the bucket of the budget's first use, and returns it.
    fn mark_first_use(&self, epoch: u64) -> u64 {
        let mark = epoch.saturating_add(1);
        match self
            .first_use
            .compare_exchange(0, mark, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => epoch,
            Err(first) => first - 1,
        }
    }

    /// The floor in millionths of a retry at `epoch`: the whole buckets begun since the first
    /// use, at most the window's ten, times a tenth of the window's floor. Multiplied before
    /// divided, so the full window's floor is exact.
    fn floor_at(&self, first_use: u64, epoch: u64) -> u128 {
        let begun = epoch.saturating_sub(first_use).saturating_add(1);
        let buckets = u128::from(begun.min(BUCKETS as u64));
        self.floor_micros * buckets / BUCKETS as u128
    }

    fn epoch(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(elapsed / self.bucket_nanos).unwrap_or(u64::MAX)
    }

    fn slot(&self, epoch: u64) -> &Slot {
        &self.slots[(epoch % BUCKETS as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::{RetryEngine, RetryPolicy};

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn budget(ratio: f64, min_per_sec: u32, window_secs: u64) -> RetryBudget {
        RetryBudget::new(ratio, min_per_sec, Duration::from_secs(window_secs))
    }

    fn withdrawals(budget: &RetryBudget, now: Instant) -> usize {
        (0..10_000)
            .take_while(|_| budget.try_withdraw_at(now))
            .count()
    }

    #[test]
    fn budget_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RetryBudget>();
        assert_send_sync::<RetryEngine>();
    }

    #[test]
    fn ratio_allows_a_fraction_of_requests() {
        let budget = budget(0.2, 0, 10);
        let t0 = budget.origin;
        for _ in 0..100 {
            budget.record_request_at(t0);
        }
        assert_eq!(withdrawals(&budget, t0), 20);
        assert!(!budget.try_withdraw_at(t0));
    }

    #[test]
    fn ratio_arithmetic_is_exact() {
        // 0.1 × 30 is 3.0000000000000004 in floating point.
        let budget = budget(0.1, 0, 10);
        let t0 = budget.origin;
        for _ in 0..30 {
            budget.record_request_at(t0);
        }
        assert_eq!(withdrawals(&budget, t0), 3);
    }

    #[test]
    fn floor_allows_min_per_sec_times_window_once_the_window_has_elapsed() {
        let budget = budget(0.0, 5, 2);
        let t0 = budget.origin;
        // One retry per fifth of a second (a bucket of the 2 s window), up to 10 in all.
        for bucket in 0..10 {
            assert_eq!(withdrawals(&budget, t0 + ms(200) * bucket), 1, "{bucket}");
        }
        assert_eq!(withdrawals(&budget, t0 + ms(1999)), 0);

        // A bucket's floor of 1.5 retries rounds up to 2 at first, then adds up exactly.
        let fractional = RetryBudget::new(0.0, 10, ms(1500));
        let t0 = fractional.origin;
        assert_eq!(withdrawals(&fractional, t0), 2);
        assert_eq!(withdrawals(&fractional, t0 + ms(150)), 1);
        assert_eq!(withdrawals(&fractional, t0 + ms(1350)), 15 - 3);
    }

    #[test]
    fn floor_builds_up_per_second_instead_of_bursting_the_whole_window() {
        // The defaults: 10/s over 10 s. All 100 floor retries at once is what the floor must
        // not allow; 10 in the first second and 10 more each second after is.
        let budget = budget(0.0, 10, 10);
        let t0 = budget.origin;
        assert_eq!(withdrawals(&budget, t0), 10);
        assert_eq!(withdrawals(&budget, t0 + ms(999)), 0);
        assert_eq!(withdrawals(&budget, t0 + ms(1000)), 10);
        assert_eq!(withdrawals(&budget, t0 + ms(4500)), 30);
        assert_eq!(withdrawals(&budget, t0 + ms(9999)), 50);
        // The window is full: the first second's retries age out, and its 10 are free again.
        assert_eq!(withdrawals(&budget, t0 + ms(10_000)), 10);
        assert_eq!(withdrawals(&budget, t0 + ms(10_999)), 0);
    }

    #[test]
    fn the_floor_starts_at_the_first_use_not_at_creation() {
        let budget = budget(0.0, 10, 10);
        let first_use = budget.origin + Duration::from_secs(3600);
        assert_eq!(withdrawals(&budget, first_use), 10);
        assert_eq!(withdrawals(&budget, first_use + ms(1000)), 10);

        // A request is a use too.
        let budget = budget_with_request_at(Duration::from_secs(60));
        let t = budget.origin + Duration::from_secs(60);
        assert_eq!(withdrawals(&budget, t + ms(500)), 10);
    }

    fn budget_with_request_at(after: Duration) -> RetryBudget {
        let budget = budget(0.0, 10, 10);
        budget.record_request_at(budget.origin + after);
        budget
    }

    #[test]
    fn floor_and_ratio_add_up() {
        let budget = budget(0.5, 1, 10);
        let t0 = budget.origin;
        for _ in 0..4 {
            budget.record_request_at(t0);
        }
        // 2 for the requests, 1 for the first second's floor.
        assert_eq!(withdrawals(&budget, t0), 3);
        // Nine seconds later the floor has grown to 10; the 4 requests still count.
        assert_eq!(withdrawals(&budget, t0 + ms(9000)), 12 - 3);
    }

    #[test]
    fn requests_and_retries_age_out_of_the_window() {
        let budget = budget(0.2, 0, 10);
        let t0 = budget.origin;
        for _ in 0..100 {
            budget.record_request_at(t0);
        }
        assert_eq!(withdrawals(&budget, t0), 20);

        // Both still count in the last bucket of the window.
        let last_moment = t0 + Duration::from_secs(10) - Duration::from_nanos(1);
        for _ in 0..5 {
            budget.record_request_at(last_moment);
        }
        assert_eq!(withdrawals(&budget, last_moment), 1);

        // A window later the first bucket is gone; its slot is reused.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(withdrawals(&budget, later), 0);
        for _ in 0..10 {
            budget.record_request_at(later);
        }
        // 15 requests (10 new, 5 from the bucket before) against 1 retry.
        assert_eq!(withdrawals(&budget, later), 2);

        let much_later = t0 + Duration::from_secs(3600);
        assert_eq!(withdrawals(&budget, much_later), 0);
    }

    #[test]
    fn retries_in_older_buckets_still_count() {
        let budget = budget(0.5, 0, 10);
        let t0 = budget.origin;
        for _ in 0..10 {
            budget.record_request_at(t0);
        }
        assert_eq!(withdrawals(&budget, t0), 5);
        assert_eq!(withdrawals(&budget, t0 + Duration::from_secs(5)), 0);
    }

    #[test]
    fn instants_before_the_origin_count_as_the_first_bucket() {
        let budget = budget(1.0, 0, 10);
        let t0 = budget.origin;
        if let Some(earlier) = t0.checked_sub(Duration::from_secs(1)) {
            budget.record_request_at(earlier);
            assert_eq!(withdrawals(&budget, t0), 1);
        }
    }

    #[test]
    fn concurrent_withdrawals_never_exceed_the_allowance() {
        let budget = budget(0.5, 0, 10);
        let t0 = budget.origin;
        for _ in 0..1000 {
            budget.record_request_at(t0);
        }
        let granted: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..200).filter(|_| budget.try_withdraw_at(t0)).count()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(granted, 500);
    }

    #[test]
    fn concurrent_requests_are_all_counted() {
        let budget = budget(1.0, 0, 10);
        let t0 = budget.origin;
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| (0..250).for_each(|_| budget.record_request_at(t0)));
            }
        });
        assert_eq!(withdrawals(&budget, t0), 2000);
    }

    #[test]
    fn budget_from_policy_uses_its_settings() {
        let policy = RetryPolicy::new()
            .with_budget_ratio(0.0)
            .with_budget_min_per_sec(3)
            .with_budget_window(Duration::from_secs(1));
        let budget = RetryBudget::from_policy(&policy);
        // 3 per second, 0.3 per tenth of a second: 1 at first, 3 once the second is over.
        assert_eq!(withdrawals(&budget, budget.origin), 1);
        assert_eq!(withdrawals(&budget, budget.origin + ms(900)), 2);
    }
}
