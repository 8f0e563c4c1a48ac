//! [`AttemptTimings`]: where the time of one attempt went (DNS, connect, TLS, first byte), and
//! the clock the transport stamps the phases on.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// Where one attempt's time went, as curl's `-w` timings and reqwest #2827 ask for: the
/// phases a new connection went through, the time to the first response byte, and whether
/// the attempt reused a pooled connection.
///
/// A phase the attempt did not go through is `None`: DNS on a cached answer or an IP address,
/// connect and TLS on a reused connection, TLS on plain http, the first byte when no response
/// came. The time the body took is reported by [`Response::bytes`](crate::Response::bytes)
/// and [`Response::text`](crate::Response::text) to
/// [`EventHandler::on_body`](crate::EventHandler::on_body) once the body is read.
///
/// # Examples
///
/// ```no_run
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let response = pool.checkout()?.get("http://127.0.0.1:8080/").send()?;
/// let t = response.timings();
/// println!(
///     "attempt {} reused {} connect {:?} first byte {:?}",
///     t.attempt(),
///     t.reused_connection(),
///     t.connect(),
///     t.time_to_first_byte()
/// );
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptTimings {
    pub(crate) attempt: u32,
    pub(crate) reused: bool,
    pub(crate) dns: Option<Duration>,
    pub(crate) connect: Option<Duration>,
    pub(crate) tls: Option<Duration>,
    pub(crate) first_byte: Option<Duration>,
    pub(crate) total: Duration,
}

impl AttemptTimings {
    /// The attempt number within its hop of the redirect chain, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// Whether the attempt ran on a pooled connection (no connect, no handshake).
    pub fn reused_connection(&self) -> bool {
        self.reused
    }
    /// The name lookup, when one was made (not for a cached answer or an IP address).
    pub fn dns(&self) -> Option<Duration> {
        self.dns
    }
    /// The TCP connect, when a connection was opened.
    pub fn connect(&self) -> Option<Duration> {
        self.connect
    }
    /// The TLS handshake, when an https connection was opened.
    pub fn tls_handshake(&self) -> Option<Duration> {
        self.tls
    }
    /// From the attempt's start to the first byte of the response (curl's
    /// `time_starttransfer`), when a response byte arrived.
    pub fn time_to_first_byte(&self) -> Option<Duration> {
        self.first_byte
    }
    /// From the attempt's start to its response head (or its error): the attempt's duration.
    pub fn total(&self) -> Duration {
        self.total
    }
}

/// The phase stamps of the running attempt, written by the transport (the resolver, the
/// connectors, the head filter) and read by the engine when the attempt ends. Only the owning
/// client's thread touches it: Relaxed is enough, and the lock is never contended. A phase's
/// stamp is its duration in nanoseconds plus one (0: none).
#[derive(Debug, Default)]
pub(crate) struct PhaseClock {
    dns: AtomicU64,
    connect: AtomicU64,
    tls: AtomicU64,
    // When the first response byte arrived: the `Instant` itself, as the time since some base
    // would cost a clock subtraction to store and an addition to read.
    first_byte: Mutex<Option<Instant>>,
}

/// The phases a clock can stamp.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    Dns,
    Connect,
    Tls,
}

fn stamp(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

fn unstamp(n: u64) -> Option<Duration> {
    n.checked_sub(1).map(Duration::from_nanos)
}

impl PhaseClock {
    pub(crate) fn new() -> PhaseClock {
        PhaseClock::default()
    }

    /// Forgets the last attempt's stamps.
    pub(crate) fn reset(&self) {
        for a in [&self.dns, &self.connect, &self.tls] {
            a.store(0, Relaxed);
        }
        *lock(&self.first_byte) = None;
    }

    /// Records that `phase` took `took` in the running attempt.
    pub(crate) fn record(&self, phase: Phase, took: Duration) {
        let slot = match phase {
            Phase::Dns => &self.dns,
            Phase::Connect => &self.connect,
            Phase::Tls => &self.tls,
        };
        slot.store(stamp(took), Relaxed);
    }

    /// Marks the first response byte of the running attempt, once.
    pub(crate) fn first_byte(&self) {
        lock(&self.first_byte).get_or_insert_with(Instant::now);
    }

    /// The timings of the attempt that started at `started` and took `total`.
    pub(crate) fn read(
        &self,
        started: Instant,
        attempt: u32,
        reused: bool,
        total: Duration,
    ) -> AttemptTimings {
        let first_byte = lock(&self.first_byte).map(|at| at.saturating_duration_since(started));
        AttemptTimings {
            attempt,
            reused,
            dns: unstamp(self.dns.load(Relaxed)),
            connect: unstamp(self.connect.load(Relaxed)),
            tls: unstamp(self.tls.load(Relaxed)),
            first_byte,
            total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_read_back_and_reset_clears_them() {
        let clock = PhaseClock::new();
        let started = Instant::now();
        clock.record(Phase::Connect, Duration::from_micros(250));
        clock.record(Phase::Dns, Duration::ZERO);
        clock.first_byte();
        let t = clock.read(started, 2, false, Duration::from_millis(1));
        assert_eq!(t.connect(), Some(Duration::from_micros(250)));
        assert_eq!(
            t.dns(),
            Some(Duration::ZERO),
            "a zero phase is still a phase"
        );
        assert_eq!(t.tls_handshake(), None);
        assert!(t.time_to_first_byte().is_some());
        // Only the first byte counts: later reads of the same attempt do not move it.
        clock.first_byte();
        let again = clock.read(started, 2, false, Duration::from_millis(1));
        assert_eq!(again.time_to_first_byte(), t.time_to_first_byte());
        assert_eq!((t.attempt(), t.reused_connection()), (2, false));
        clock.reset();
        let t = clock.read(started, 1, true, Duration::ZERO);
        assert_eq!(
            (t.dns(), t.connect(), t.time_to_first_byte()),
            (None, None, None)
        );
    }
}
