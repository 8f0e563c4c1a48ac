//! Backoff delays: exponential growth, a cap, and jitter, as an iterator.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// How a backoff delay is randomised.
///
/// Clients that failed at the same moment would otherwise retry in lockstep
/// and hit a recovering server all at once.
///
/// # Examples
///
/// ```
/// use http_sentinel::{retry::Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::new().with_jitter(Jitter::Equal);
/// assert_eq!(policy.jitter(), Jitter::Equal);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The exponential delay `d` as is.
    None,
    /// Uniform in `[0, d]`.
    Full,
    /// `d / 2` plus uniform in `[0, d / 2]`: never less than half of `d`.
    Equal,
    /// AWS-style decorrelated jitter: uniform in `[base, 3 × previous delay]`,
    /// capped at the maximum delay. It ignores the multiplier, and a zero base
    /// delay keeps every delay at zero.
    Decorrelated,
}

/// splitmix64: jitter needs spread, not cryptographic strength, and this
/// keeps the crate free of a random-number dependency.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, from the top 53 bits so every value is exact.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Converts a float nanosecond count, saturating instead of panicking the way
/// `Duration::from_secs_f64` does on NaN, infinity or negative input.
fn duration_from_nanos(nanos: f64) -> Duration {
    // `as` saturates: NaN and negatives become 0, huge values u128::MAX.
    let nanos = nanos as u128;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % NANOS_PER_SEC) as u32)
}

/// `d × fraction` for a fraction in `[0, 1)`, never above `d` even where the
/// float conversion rounds up.
fn fraction_of(d: Duration, fraction: f64) -> Duration {
    duration_from_nanos(d.as_nanos() as f64 * fraction).min(d)
}

/// The delays before retry 1, 2, 3, … of one call.
///
/// The iterator never ends: the number of attempts is the caller's to bound.
/// Made by [`RetryPolicy::backoff`](crate::retry::RetryPolicy::backoff).
///
/// # Examples
///
/// ```
/// use http_sentinel::{retry::Jitter, RetryPolicy};
/// use std::time::Duration;
///
/// let delays: Vec<Duration> = RetryPolicy::new().with_jitter(Jitter::None).backoff().take(3).collect();
/// assert_eq!(delays, [100, 200, 400].map(Duration::from_millis));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    multiplier: f64,
    max_delay: Duration,
    jitter: Jitter,
    retries: u32,
    previous: Duration,
    rng: SplitMix64,
}

impl Backoff {
    /// A fresh sequence with a random seed.
    pub(super) fn new(
        base: Duration,
        multiplier: f64,
        max_delay: Duration,
        jitter: Jitter,
    ) -> Self {
        Backoff {
            base,
            multiplier,
            max_delay,
            jitter,
            retries: 0,
            previous: base,
            rng: SplitMix64(RandomState::new().hash_one(Instant::now())),
        }
    }

    /// Replaces the random seed, so that the jittered delays are reproducible.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new();
    /// let a: Vec<_> = policy.backoff().with_seed(7).take(5).collect();
    /// let b: Vec<_> = policy.backoff().with_seed(7).take(5).collect();
    /// assert_eq!(a, b);
    /// ```
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = SplitMix64(seed);
        self
    }

    /// `base × multiplier^retries`, capped at `max_delay`. Computed in float
    /// nanoseconds so that huge exponents saturate instead of overflowing;
    /// powers of two stay exact.
    fn exponential(&self) -> Duration {
        let exponent = i32::try_from(self.retries).unwrap_or(i32::MAX);
        // Clamping the infinite power keeps a zero base at zero, not NaN.
        let factor = self.multiplier.powi(exponent).min(f64::MAX);
        let nanos = self.base.as_nanos() as f64 * factor;
        if nanos >= self.max_delay.as_nanos() as f64 {
            self.max_delay
        } else {
            duration_from_nanos(nanos)
        }
    }

    pub(super) fn next_delay(&mut self) -> Duration {
        let exponential = self.exponential();
        self.retries = self.retries.saturating_add(1);
        match self.jitter {
            Jitter::None => exponential,
            Jitter::Full => fraction_of(exponential, self.rng.next_unit()),
            Jitter::Equal => {
                let half = exponential / 2;
                half + fraction_of(exponential - half, self.rng.next_unit())
            }
            Jitter::Decorrelated => {
                let upper = self.previous.saturating_mul(3).max(self.base);
                let spread = fraction_of(upper - self.base, self.rng.next_unit());
                self.previous = (self.base + spread).min(self.max_delay);
                self.previous
            }
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryPolicy;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn delays(policy: &RetryPolicy, count: usize) -> Vec<Duration> {
        policy.backoff().with_seed(42).take(count).collect()
    }

    #[test]
    fn unjittered_backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::new().with_jitter(Jitter::None);
        let expected = [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000].map(ms);
        assert_eq!(delays(&policy, 9), expected);
    }

    #[test]
    fn multiplier_three_triples_up_to_the_cap() {
        let policy = RetryPolicy::new()
            .with_jitter(Jitter::None)
            .with_multiplier(3.0);
        let expected = [100, 300, 900, 2700, 8100, 10_000, 10_000].map(ms);
        assert_eq!(delays(&policy, 7), expected);
    }

    #[test]
    fn multiplier_one_keeps_the_base_delay() {
        let policy = RetryPolicy::new()
            .with_jitter(Jitter::None)
            .with_multiplier(1.0);
        assert_eq!(delays(&policy, 3), [ms(100); 3]);
    }

    #[test]
    fn base_above_the_cap_is_capped() {
        let policy = RetryPolicy::new()
            .with_jitter(Jitter::None)
            .with_base_delay(Duration::from_secs(30))
            .with_max_delay(Duration::from_secs(5));
        assert_eq!(delays(&policy, 2), [Duration::from_secs(5); 2]);
    }

    #[test]
    fn far_retries_and_huge_multipliers_saturate_without_panicking() {
        let policy = RetryPolicy::new().with_jitter(Jitter::None);
        assert_eq!(policy.backoff().nth(1000), Some(Duration::from_secs(10)));

        for jitter in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ] {
            let unbounded = RetryPolicy::new()
                .with_jitter(jitter)
                .with_multiplier(1e300)
                .with_base_delay(Duration::MAX)
                .with_max_delay(Duration::MAX);
            assert!(unbounded.backoff().take(50).all(|d| d <= Duration::MAX));
        }

        let zero_base = RetryPolicy::new()
            .with_jitter(Jitter::None)
            .with_multiplier(1e300)
            .with_base_delay(Duration::ZERO);
        assert_eq!(zero_base.backoff().nth(1000), Some(Duration::ZERO));
    }

    /// Same exponential delay for every sample, so all 1000 come from one
    /// distribution.
    fn flat(jitter: Jitter) -> Vec<Duration> {
        let policy = RetryPolicy::new()
            .with_jitter(jitter)
            .with_multiplier(1.0)
            .with_base_delay(Duration::from_secs(1));
        delays(&policy, 1000)
    }

    #[test]
    fn full_jitter_spreads_over_zero_to_the_delay() {
        let samples = flat(Jitter::Full);
        assert!(samples.iter().all(|&d| d <= Duration::from_secs(1)));
        assert!(samples.iter().any(|&d| d < ms(100)));
        assert!(samples.iter().any(|&d| d > ms(900)));
    }

    #[test]
    fn equal_jitter_keeps_at_least_half_the_delay() {
        let samples = flat(Jitter::Equal);
        assert!(samples.iter().all(|&d| (ms(500)..=ms(1000)).contains(&d)));
        assert!(samples.iter().any(|&d| d < ms(550)));
        assert!(samples.iter().any(|&d| d > ms(950)));
    }

    #[test]
    fn decorrelated_jitter_stays_between_base_and_three_times_previous() {
        let policy = RetryPolicy::new().with_jitter(Jitter::Decorrelated);
        let mut previous = ms(100);
        for delay in delays(&policy, 1000) {
            assert!(delay >= ms(100), "{delay:?} below base");
            assert!(delay <= Duration::from_secs(10), "{delay:?} above cap");
            assert!(delay <= previous * 3, "{delay:?} above 3 × {previous:?}");
            previous = delay;
        }
        assert!(delays(&policy, 1000).contains(&Duration::from_secs(10)));
    }

    #[test]
    fn same_seed_repeats_and_other_seeds_differ() {
        for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
            let policy = RetryPolicy::new().with_jitter(jitter);
            let run = |seed| {
                policy
                    .backoff()
                    .with_seed(seed)
                    .take(100)
                    .collect::<Vec<_>>()
            };
            assert_eq!(run(1), run(1));
            assert_ne!(run(1), run(2));
        }
    }

    #[test]
    fn unseeded_backoffs_differ() {
        let policy = RetryPolicy::new().with_multiplier(1.0);
        let a: Vec<_> = policy.backoff().take(10).collect();
        let b: Vec<_> = policy.backoff().take(10).collect();
        assert_ne!(a, b);
    }
}
