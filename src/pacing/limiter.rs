//! One rate limiter: a GCRA (the token bucket's arithmetic on one timestamp) plus a "send
//! nothing before" time, all in atomics so every client of a pool shares it without a lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::headers::Feedback;

/// A limiter's state, in nanoseconds since its pacer's epoch.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    /// No request leaves before this (a `Retry-After`, an exhausted quota).
    blocked_until: AtomicU64,
    /// GCRA's theoretical arrival time: when the next request would be exactly on pace.
    tat: AtomicU64,
    /// The pace the server's quota fields ask for (0: none), and when that pace lapses.
    header_interval: AtomicU64,
    header_until: AtomicU64,
    /// The configured limit's pace and burst tolerance (0: none).
    static_interval: u64,
    static_tolerance: u64,
}

/// Servers' windows and this host's sleeps do not line up exactly: a pace taken from the
/// headers runs this much slower than declared (parts per thousand), so a late sleeper's
/// request does not land in the next window on top of that window's quota.
const MARGIN_PER_MILLE: u64 = 20;

impl Limiter {
    /// A limiter with a configured limit of `burst` requests per `burst * interval`.
    pub(crate) fn new(static_limit: Option<(u32, Duration)>) -> Limiter {
        let (static_interval, static_tolerance) = match static_limit {
            Some((n, per)) => {
                let interval = nanos(per) / u64::from(n.max(1));
                (interval, interval.saturating_mul(u64::from(n.max(1)) - 1))
            }
            None => (0, 0),
        };
        Limiter {
            static_interval,
            static_tolerance,
            ..Limiter::default()
        }
    }

    /// Takes the next slot at or after `now` and returns how long to wait for it; or, when that
    /// wait is longer than `budget`, takes nothing and returns `Err(wait)`.
    pub(crate) fn reserve(&self, now: u64, budget: u64) -> Result<u64, u64> {
        let start = now.max(self.blocked_until.load(Relaxed));
        let header = if self.header_until.load(Relaxed) > start {
            self.header_interval.load(Relaxed)
        } else {
            0
        };
        // The header pace spreads evenly (no burst); a configured limit allows its burst.
        let (interval, tolerance) = if header > self.static_interval {
            (header, 0)
        } else {
            (self.static_interval, self.static_tolerance)
        };
        if interval == 0 {
            let wait = start - now;
            return if wait > budget { Err(wait) } else { Ok(wait) };
        }
        let mut tat = self.tat.load(Relaxed);
        loop {
            let slot = start.max(tat.saturating_sub(tolerance));
            let wait = slot - now;
            if wait > budget {
                return Err(wait);
            }
            let next = tat.max(start).saturating_add(interval);
            match self.tat.compare_exchange_weak(tat, next, Relaxed, Relaxed) {
                Ok(_) => return Ok(wait),
                Err(current) => tat = current,
            }
        }
    }

    /// How long from `now` until the block (if any) is over.
    pub(crate) fn blocked_for(&self, now: u64) -> u64 {
        self.blocked_until.load(Relaxed).saturating_sub(now)
    }

    /// Learns from a response received at `now`. Returns whether it said anything.
    pub(crate) fn learn(&self, fb: &Feedback, now: u64) -> bool {
        if let Some(block) = fb.block {
            self.blocked_until
                .fetch_max(now.saturating_add(nanos(block)), Relaxed);
        }
        if let Some(s) = fb.spacing {
            let interval = nanos(s.interval);
            let padded = interval.saturating_add(interval / 1000 * MARGIN_PER_MILLE);
            self.header_interval.store(padded, Relaxed);
            self.header_until
                .store(now.saturating_add(nanos(s.lapses)), Relaxed);
        }
        fb.block.is_some() || fb.spacing.is_some()
    }
}

/// `d` in nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::headers::Spacing;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_static_limit_allows_its_burst_then_paces() {
        let l = Limiter::new(Some((3, Duration::from_millis(30))));
        let waits: Vec<u64> = (0..5).map(|_| l.reserve(0, u64::MAX).unwrap()).collect();
        assert_eq!(waits, [0, 0, 0, 10 * MS, 20 * MS]);
        // Refill: 50 ms later the bucket holds three again... less the two still owed.
        assert_eq!(l.reserve(50 * MS, u64::MAX), Ok(0));
        assert_eq!(l.reserve(50 * MS, u64::MAX), Ok(0));
    }

    #[test]
    fn a_wait_past_the_budget_takes_no_slot() {
        let l = Limiter::new(Some((1, Duration::from_millis(100))));
        assert_eq!(l.reserve(0, 0), Ok(0));
        assert_eq!(l.reserve(0, 50 * MS), Err(100 * MS));
        assert_eq!(l.reserve(0, 100 * MS), Ok(100 * MS));
    }

    #[test]
    fn a_block_holds_everything_and_a_header_pace_lapses() {
        let l = Limiter::new(None);
        assert_eq!(l.reserve(0, 0), Ok(0));
        let fb = Feedback {
            block: Some(Duration::from_millis(40)),
            spacing: Some(Spacing {
                interval: Duration::from_millis(10),
                lapses: Duration::from_millis(100),
            }),
        };
        assert!(l.learn(&fb, 0));
        assert_eq!(l.blocked_for(10 * MS), 30 * MS);
        assert_eq!(l.reserve(0, u64::MAX), Ok(40 * MS));
        assert_eq!(l.reserve(0, u64::MAX), Ok(50 * MS + 200_000));
        // After the quota's reset the pace lapses: nothing is learnt, nothing waits.
        assert_eq!(l.reserve(200 * MS, 0), Ok(0));
        assert!(!l.learn(&Feedback::default(), 0));
    }
}
