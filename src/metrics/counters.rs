//! Per-(client, host) counters: [`HostCounters`], what recording a call or an attempt adds to
//! them, and [`Counters`], their plain sum over shards.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use ureq::http::StatusCode;

use super::histogram::{Histogram, HistogramSnapshot};
use crate::error::ErrorClass;

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

/// Plain (non-atomic) counters of one host or of all hosts together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Counters {
    pub(super) calls: u64,
    pub(super) attempts: u64,
    pub(super) successes: u64,
    pub(super) failures: [u64; ErrorClass::COUNT],
    pub(super) responses: [u64; 5],
    pub(super) retries: u64,
    pub(super) retries_refused: u64,
    pub(super) breaker_rejections: u64,
    pub(super) stale_replays: u64,
    pub(super) redirects: u64,
    pub(super) connections_opened: u64,
    pub(super) bytes_received: u64,
    pub(super) call_latency: HistogramSnapshot,
    pub(super) attempt_latency: HistogramSnapshot,
}

impl Counters {
    /// Adds one shard's current values.
    pub(super) fn absorb(&mut self, shard: &HostCounters) {
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
    pub(super) fn combine_scalars(&mut self, other: &Counters, op: fn(u64, u64) -> u64) {
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

    pub(super) fn merge(&mut self, other: &Counters) {
        self.combine_scalars(other, u64::saturating_add);
        self.call_latency.merge(&other.call_latency);
        self.attempt_latency.merge(&other.attempt_latency);
    }

    pub(super) fn saturating_sub(&self, earlier: &Counters) -> Counters {
        let mut out = self.clone();
        out.combine_scalars(earlier, u64::saturating_sub);
        out.call_latency = self.call_latency.saturating_sub(&earlier.call_latency);
        out.attempt_latency = self
            .attempt_latency
            .saturating_sub(&earlier.attempt_latency);
        out
    }

    pub(super) fn failures(&self) -> u64 {
        self.failures
            .iter()
            .fold(0, |sum, &n| sum.saturating_add(n))
    }

    pub(super) fn reuse_ratio(&self) -> f64 {
        if self.attempts == 0 {
            return 0.0;
        }
        (1.0 - self.connections_opened as f64 / self.attempts as f64).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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
}
