//! `HostHedge`: one host's hedge budget and its live hedge delay, shared by the pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::retry::RetryBudget;

use super::policy::{HedgeDelay, HedgePolicy};

/// A quantile delay is read again from the metrics this often once known ...
const REFRESH: Duration = Duration::from_secs(1);
/// ... and this often while the host has too few attempts for it.
const REFRESH_UNKNOWN: Duration = Duration::from_millis(10);
/// Attempts a host needs before its quantile is trusted.
pub(crate) const MIN_SAMPLES: u64 = 20;
const UNKNOWN: u64 = u64::MAX;

/// One host's hedging state, shared by every client of the pool.
#[derive(Debug)]
pub(crate) struct HostHedge {
    /// Hedges allowed: a share of the host's calls plus a floor per second.
    pub(crate) budget: RetryBudget,
    base: Instant,
    /// The last quantile read, in microseconds (`UNKNOWN`: not enough attempts).
    delay_micros: AtomicU64,
    /// When the quantile is to be read again, in nanoseconds after `base`.
    refresh_at: AtomicU64,
}

impl HostHedge {
    pub(crate) fn new(policy: &HedgePolicy) -> HostHedge {
        HostHedge {
            budget: RetryBudget::new(
                policy.budget_ratio(),
                policy.budget_min_per_sec(),
                policy.budget_window(),
            ),
            base: Instant::now(),
            delay_micros: AtomicU64::new(UNKNOWN),
            refresh_at: AtomicU64::new(0),
        }
    }

    /// The delay before a hedge of a call starting at `now`, or `None` when the host's
    /// quantile is not known yet. `quantile(q)` reads the host's attempt latency at `q` with
    /// the number of attempts behind it; one caller at a time reads it, once per refresh.
    pub(crate) fn delay(
        &self,
        policy: &HedgePolicy,
        now: Instant,
        quantile: impl FnOnce(f64) -> (Duration, u64),
    ) -> Option<Duration> {
        let (q, floor) = match policy.delay() {
            HedgeDelay::Fixed(d) => return Some(d),
            HedgeDelay::Quantile { quantile, floor } => (quantile, floor),
        };
        let at = self.nanos(now);
        let due = self.refresh_at.load(Ordering::Relaxed);
        if at >= due {
            let known = self.delay_micros.load(Ordering::Relaxed) != UNKNOWN;
            let next = at + self.nanos_of(if known { REFRESH } else { REFRESH_UNKNOWN });
            let won = self
                .refresh_at
                .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
            if won {
                let (d, samples) = quantile(q);
                let micros = match samples >= MIN_SAMPLES {
                    true => u64::try_from(d.max(floor).as_micros()).unwrap_or(UNKNOWN - 1),
                    false => UNKNOWN,
                };
                self.delay_micros.store(micros, Ordering::Relaxed);
            }
        }
        match self.delay_micros.load(Ordering::Relaxed) {
            UNKNOWN => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        self.nanos_of(at.saturating_duration_since(self.base))
    }

    fn nanos_of(&self, d: Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quantile_delay_waits_for_samples_then_keeps_its_floor() {
        let policy = HedgePolicy::new().with_delay(HedgeDelay::Quantile {
            quantile: 0.99,
            floor: Duration::from_millis(3),
        });
        let host = HostHedge::new(&policy);
        let now = Instant::now();
        assert_eq!(
            host.delay(&policy, now, |_| (Duration::from_millis(9), 5)),
            None
        );
        // Not read again before the refresh interval.
        let soon = now + Duration::from_millis(5);
        assert_eq!(host.delay(&policy, soon, |_| unreachable!()), None);
        let later = now + Duration::from_millis(150);
        let d = host.delay(&policy, later, |q| {
            assert_eq!(q, 0.99);
            (Duration::from_millis(1), 50)
        });
        assert_eq!(d, Some(Duration::from_millis(3)), "the floor");
        let fixed = HedgePolicy::new().with_delay(HedgeDelay::Fixed(Duration::from_millis(7)));
        let host = HostHedge::new(&fixed);
        assert_eq!(
            host.delay(&fixed, now, |_| unreachable!()),
            Some(Duration::from_millis(7))
        );
    }
}
