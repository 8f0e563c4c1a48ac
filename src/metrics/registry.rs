//! The pool-wide [`Registry`] of counter shards and each client's [`Recorder`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::counters::{inc, Counters, HostCounters};
use super::histogram::Histogram;
use super::stats::{HostStats, PoolState, Stats};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use crate::metrics::counters::add;
    use std::thread;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

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
}
