//! The pool-wide [`Registry`] of counter shards and each client's [`Recorder`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sync::lock;

use crossbeam_utils::CachePadded;

use super::counters::{Counters, HostCounters};
use super::histogram::Histogram;
use super::otel::OtelRegistry;
use super::stats::{PoolState, Stats};

type Shard = Arc<CachePadded<HostCounters>>;

/// All counter shards of one pool, plus the pool's own checkout counters.
///
/// Each client records into its own shard per host (see [`Recorder`]), so the hot path never
/// takes this registry's locks and never writes a cache line another worker writes.
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
    // OpenTelemetry's HTTP client metrics, when the pool keeps them.
    pub(crate) otel: Arc<OtelRegistry>,
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
        self.checkouts.fetch_add(1, Relaxed);
        self.checkout_wait.record(waited);
    }

    /// Counts a checkout that gave up after `waited`. The wait goes into the same histogram as
    /// successful checkouts: the longest waits are the ones worth seeing.
    pub(crate) fn record_checkout_timeout(&self, waited: Duration) {
        self.checkout_timeouts.fetch_add(1, Relaxed);
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
        let per_host = per_host
            .into_iter()
            .map(|(host, counters)| (host.to_string(), counters));
        let mut stats = Stats::from_hosts(per_host, pool);
        stats.checkouts = self.checkouts.load(Relaxed);
        stats.checkout_timeouts = self.checkout_timeouts.load(Relaxed);
        stats.checkout_wait = self.checkout_wait.snapshot();
        stats.set_otel(self.otel.snapshot());
        stats
    }

    /// The `q`-quantile of `host`'s attempt latency over every client, and the number of
    /// attempts it is drawn from (the live hedge delay reads it once a second).
    pub(crate) fn attempt_quantile(&self, host: &str, q: f64) -> (Duration, u64) {
        let shards: Vec<Shard> = lock(&self.shards)
            .iter()
            .filter(|(h, _)| &**h == host)
            .map(|(_, shard)| Arc::clone(shard))
            .collect();
        let mut total = Counters::default();
        for shard in &shards {
            total.absorb(shard);
        }
        let latency = &total.attempt_latency;
        (latency.quantile(q), latency.count())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use crate::metrics::counters::{assert_filled, CallRecord};
    use crate::metrics::stats::HostStats;
    use crate::metrics::status_class::StatusClass;
    use std::thread;
    use ureq::http::StatusCode;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn call(latency: Duration, retries: u32, outcome: Result<u16, ErrorClass>) -> CallRecord {
        CallRecord {
            latency,
            retries,
            retries_refused: 0,
            stale_replays: 0,
            redirects: 0,
            outcome: outcome.map(|code| StatusCode::from_u16(code).unwrap()),
        }
    }

    fn status(code: u16) -> Option<StatusCode> {
        Some(StatusCode::from_u16(code).unwrap())
    }

    #[test]
    fn a_gone_clients_shards_are_taken_over_and_totals_stay_exact() {
        let registry = Arc::new(Registry::new());
        let shards = || lock(&registry.shards).len();
        let ok = call(ms(1), 0, Ok(200));
        for _ in 0..5 {
            // A client meets two hosts, records, and is discarded.
            let mut r = registry.recorder();
            r.host("a.test:80").record_call(&ok);
            r.host("b.test:80").record_call(&ok);
            drop(r);
        }
        assert_eq!(shards(), 2, "one shard per host, reused by each new client");
        // Two clients alive at once need two shards for the host they share.
        let mut one = registry.recorder();
        let mut two = registry.recorder();
        one.host("a.test:80").record_call(&ok);
        two.host("a.test:80").record_call(&ok);
        assert_eq!(shards(), 3);
        drop((one, two));
        let stats = registry.snapshot(PoolState::default());
        assert_eq!(stats.calls(), 12);
        assert_eq!(stats.host("a.test:80").map(|h| h.calls()), Some(7));
    }

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
                        // a.example: one attempt on a reused connection, answered 200.
                        let a = rec.host("a.example");
                        a.record_attempt(ms(1), 0, true, status(200));
                        a.record_call(&call(ms(1), 0, Ok(200)));
                        // A body reader holds its own handle.
                        rec.host_arc("a.example").record_body_bytes(100);

                        // b.example: 503, 503, then a timeout, on one new connection.
                        let b = rec.host("b.example");
                        b.record_attempt(ms(10), 1, true, status(503));
                        b.record_attempt(ms(10), 0, true, status(503));
                        b.record_attempt(ms(10), 0, true, None);
                        b.record_call(&call(ms(30), 2, Err(ErrorClass::Timeout)));
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
        assert_eq!(stats.calls_succeeded(), total);
        assert_eq!(stats.calls_errored(), total);
        assert_eq!(stats.calls_with_error(ErrorClass::Timeout), total);
        assert_eq!(stats.calls_with_error(ErrorClass::Dns), 0);
        assert_eq!(stats.calls_with_status(StatusClass::Success), total);
        assert_eq!(stats.calls_with_status(StatusClass::ServerError), 0);
        assert_eq!(stats.responses(StatusClass::Success), total);
        assert_eq!(stats.responses(StatusClass::ServerError), 2 * total);
        assert_eq!(stats.responses(StatusClass::ClientError), 0);
        assert_eq!(stats.retries(), 2 * total);
        assert_eq!(stats.connections_opened(), total);
        assert_eq!(stats.bytes_received(), 100 * total);
        assert_eq!(stats.reuse_ratio(), Some(0.75));
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
            (
                a.calls(),
                a.attempts(),
                a.calls_succeeded(),
                a.calls_errored()
            ),
            (total, total, total, 0)
        );
        assert_eq!(a.bytes_received(), 100 * total);
        assert_eq!(a.responses(StatusClass::Success), total);
        assert_eq!(a.reuse_ratio(), Some(1.0));
        assert_eq!(a.call_latency().p99(), ms(1));
        let b = stats.host("b.example").unwrap();
        assert_eq!(
            (
                b.calls(),
                b.attempts(),
                b.calls_succeeded(),
                b.calls_errored()
            ),
            (total, 3 * total, 0, total)
        );
        assert_eq!(b.retries(), 2 * total);
        assert_eq!(b.calls_with_error(ErrorClass::Timeout), total);
        assert_eq!(b.responses(StatusClass::ServerError), 2 * total);
        assert_eq!(b.connections_opened(), total);
        assert_eq!(b.attempt_latency().count(), 3 * total);
        assert_eq!(b.attempt_latency().mean(), ms(10));
        assert!((b.reuse_ratio().unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!(stats.host("c.example").is_none());
    }

    #[test]
    fn every_counter_reaches_the_snapshot() {
        let registry = Arc::new(Registry::new());
        let mut one = registry.recorder();
        let mut two = registry.recorder();
        one.host("h").fill_distinct(1);
        two.host("h").fill_distinct(2);
        two.host("i").fill_distinct(4);
        let stats = registry.snapshot(PoolState::default());
        assert_filled(&stats.host("h").unwrap().counters, 3, 2);
        assert_filled(&stats.host("i").unwrap().counters, 4, 1);
        assert_filled(&stats.counters, 7, 3);
    }
}
