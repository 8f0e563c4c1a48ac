//! What every client of a pool shares (configuration, TLS roots, per-host breakers and retry
//! budgets, the metrics registry), and each client's cached view of it.
//!
//! The shared maps are touched only the first time a client meets a host; after that a client
//! reads its own `LocalHosts` and never takes a lock on the request path.

use std::cell::{Cell, Ref, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crossbeam_utils::CachePadded;
use ureq::http::{HeaderValue, Uri};

use crate::breaker::{Breakers, CircuitBreaker};
use crate::concurrency::{HostLimiter, LimitSnapshot};
use crate::config::PoolConfig;
use crate::error::Error;
use crate::events::EventHandler;
use crate::hedge::host::HostHedge;
use crate::hedge::threads::Threads;
use crate::metrics::{HostCounters, Recorder, Registry};
use crate::pacing::HostPacer;
use crate::retry::RetryBudget;
use crate::transport;
use crate::url::host_key;

/// Pool-wide state every client of a pool shares. Nothing here is locked on the request path.
pub(crate) struct Shared {
    pub(crate) config: PoolConfig,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) breakers: Breakers,
    hosts: RwLock<HashMap<String, HostPolicy>>,
    pub(crate) metrics: Arc<Registry>,
    /// The pool's hedge threads, when it hedges.
    pub(crate) hedge_threads: Option<Threads>,
    #[cfg(feature = "fuzzing")]
    pub(crate) script: Option<Arc<transport::scripted::Script>>,
}

/// The pool-wide policy state of one host: its breaker and its retry budget.
#[derive(Clone)]
pub(crate) struct HostPolicy {
    pub(crate) breaker: Arc<CircuitBreaker>,
    pub(crate) budget: Arc<RetryBudget>,
    /// The host's rate-limit pacing, when the pool paces.
    pub(crate) pacer: Option<Arc<HostPacer>>,
    /// The host's hedge budget and delay, when the pool hedges.
    pub(crate) hedge: Option<Arc<HostHedge>>,
    /// The host's adaptive concurrency limit, when the pool has one.
    pub(crate) limiter: Option<Arc<HostLimiter>>,
}

impl Shared {
    /// The shared state of a new pool.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig) for an unusable root
    /// certificate or proxy URL.
    pub(crate) fn new(config: PoolConfig) -> Result<Shared, Error> {
        transport::check_proxy(&config.proxy)?;
        let tls = transport::tls_config(&config)?;
        // A probe may take the whole call deadline: until then it is not lost.
        let lease = config.breaker.probe_lease().max(config.deadline);
        Ok(Shared {
            breakers: Breakers::new(config.breaker.clone().with_probe_lease(lease)),
            hosts: RwLock::new(HashMap::new()),
            metrics: Arc::new(Registry::new()),
            hedge_threads: config.hedge.as_ref().map(|h| Threads::new(h.threads())),
            #[cfg(feature = "fuzzing")]
            script: None,
            config,
            tls,
        })
    }

    pub(crate) fn events(&self) -> Option<&dyn EventHandler> {
        self.config.events.as_ref().map(|h| &*h.0)
    }

    /// The pool-wide breaker and retry budget of `host`, created on first use.
    pub(crate) fn host_policy(&self, host: &str) -> HostPolicy {
        let read = self.hosts.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(policy) = read.get(host) {
            return policy.clone();
        }
        drop(read);
        let mut map = self.hosts.write().unwrap_or_else(PoisonError::into_inner);
        map.entry(host.to_owned())
            .or_insert_with(|| HostPolicy {
                breaker: self.breakers.get(host),
                budget: Arc::new(RetryBudget::from_policy(&self.config.retry)),
                pacer: self
                    .config
                    .pacing
                    .as_ref()
                    .map(|p| Arc::new(HostPacer::new(p))),
                hedge: self
                    .config
                    .hedge
                    .as_ref()
                    .map(|h| Arc::new(HostHedge::new(h))),
                limiter: self
                    .config
                    .adaptive_concurrency
                    .as_ref()
                    .map(|c| Arc::new(HostLimiter::new(c))),
            })
            .clone()
    }

    /// The learned concurrency limit of every host that has one, as `(host, snapshot)`.
    pub(crate) fn concurrency_limits(&self) -> Vec<(String, LimitSnapshot)> {
        let read = self.hosts.read().unwrap_or_else(PoisonError::into_inner);
        read.iter()
            .filter_map(|(host, p)| Some((host.clone(), p.limiter.as_ref()?.snapshot())))
            .collect()
    }
}

/// A host's `host:port` key (see [`host_key`]), shared by reference count: a call, its
/// response and the client's caches carry the same one without copying it.
pub(crate) type HostKey = Arc<str>;

/// Hosts a client remembers before it starts over.
const MAX_CACHED_HOSTS: usize = 256;

/// A client's view of one host: the pool's policy state, this client's metrics shard, and
/// the `Host` header its requests carry.
pub(crate) struct HostLocal {
    pub(crate) policy: HostPolicy,
    pub(crate) counters: Arc<CachePadded<HostCounters>>,
    /// The key itself when its port is neither 80 nor 443 (see [`host_header`]).
    pub(crate) host_header: Option<HeaderValue>,
}

/// The `Host` header value for a host key (`host:port`) with a port other than 80 and 443:
/// the key itself, as ureq would write it. ureq formats `host:port` anew for every request
/// (about 840 instructions of its ~30,000); given on the request, it is not. `None` for 80
/// and 443 (the scheme's default, where ureq copies the bare host; or a rare
/// `http://host:443`), which are left to ureq: a header in the request's map costs more than
/// that copy, as ureq then looks up three headers of its own in a map no longer empty. `None`
/// too if the key is no valid value.
fn host_header(key: &str) -> Option<HeaderValue> {
    if key.ends_with(":80") || key.ends_with(":443") {
        return None;
    }
    HeaderValue::from_str(key).ok()
}

/// One client's cache of the hosts it calls. Not `Sync`: it belongs to one client.
///
/// A [`HostKey`] is handed out by [`key`](Self::key) (and remembered with a parsed URL), so a
/// call carries it by reference count. The hosts sit in a `Vec` indexed by a map;
/// the last one found is tried first, by pointer and then by bytes (a redirect's hop builds a
/// key of its own, which only the bytes match), so a worker calling one host again and again
/// neither hashes nor probes the map.
pub(crate) struct LocalHosts {
    hosts: RefCell<Vec<(HostKey, HostLocal)>>,
    index: RefCell<HashMap<HostKey, usize, BuildHostHasher>>,
    /// The position in `hosts` of the host found last.
    last_found: Cell<usize>,
    // The last URL authority seen (https?, authority) and its host key: a worker calling one
    // host again and again reuses the key instead of parsing host and port each time.
    last: RefCell<Option<(bool, String, HostKey)>>,
    recorder: RefCell<Recorder>,
}

impl LocalHosts {
    pub(crate) fn new(shared: &Shared) -> LocalHosts {
        LocalHosts {
            hosts: RefCell::new(Vec::new()),
            index: RefCell::new(HashMap::default()),
            last_found: Cell::new(0),
            last: RefCell::new(None),
            recorder: RefCell::new(shared.metrics.recorder()),
        }
    }

    /// The host key of `uri` (see [`host_key`]), remembered for the last authority.
    pub(crate) fn key(&self, uri: &Uri) -> HostKey {
        let https = uri.scheme_str() == Some("https");
        let authority = uri.authority().map_or("", |a| a.as_str());
        if let Some((h, a, key)) = &*self.last.borrow() {
            if *h == https && a == authority {
                return Arc::clone(key);
            }
        }
        let key: HostKey = host_key(uri).into();
        *self.last.borrow_mut() = Some((https, authority.to_owned(), Arc::clone(&key)));
        key
    }

    /// Where `key` is in `hosts`: the last host found, or one map lookup.
    fn position(&self, key: &str) -> Option<usize> {
        let last = self.last_found.get();
        if let Some((k, _)) = self.hosts.borrow().get(last) {
            if (std::ptr::eq(k.as_ptr(), key.as_ptr()) && k.len() == key.len()) || **k == *key {
                return Some(last);
            }
        }
        let at = *self.index.borrow().get(key)?;
        self.last_found.set(at);
        Some(at)
    }

    /// This client's view of `host`. The pool's maps are touched only the first time this
    /// client meets a host.
    pub(crate) fn get(&self, shared: &Shared, key: &HostKey) -> Ref<'_, HostLocal> {
        let at = match self.position(key) {
            Some(at) => at,
            None => self.insert(shared, key),
        };
        Ref::map(self.hosts.borrow(), |h| &h[at].1)
    }

    fn insert(&self, shared: &Shared, key: &HostKey) -> usize {
        let mut hosts = self.hosts.borrow_mut();
        let mut index = self.index.borrow_mut();
        // A crawler meets unbounded hosts: forget them rather than grow without bound (the
        // pool-wide breakers, budgets and metrics are unaffected).
        if hosts.len() >= MAX_CACHED_HOSTS {
            hosts.clear();
            index.clear();
        }
        let policy = shared.host_policy(key);
        let counters = self.recorder.borrow_mut().host_arc(key);
        let at = hosts.len();
        let local = HostLocal {
            policy,
            counters,
            host_header: host_header(key),
        };
        hosts.push((Arc::clone(key), local));
        index.insert(Arc::clone(key), at);
        self.last_found.set(at);
        at
    }
}

impl LocalHosts {
    /// This client's metrics shard for `key`, without the host's pool-wide policy state (for
    /// a request refused before it was sent, which concerns no breaker or budget).
    pub(crate) fn counters(&self, key: &str) -> Arc<CachePadded<HostCounters>> {
        if let Some(at) = self.position(key) {
            return Arc::clone(&self.hosts.borrow()[at].1.counters);
        }
        self.recorder.borrow_mut().host_arc(key)
    }
}

/// FNV-1a for a client's host map: its keys are a few short `host:port` strings looked up
/// on every call, where SipHash costs more than the rest of the lookup. The map is bounded
/// (`MAX_CACHED_HOSTS`) and private to one client, so flooding resistance buys nothing here.
#[derive(Default, Clone, Copy)]
struct BuildHostHasher;

struct HostHasher(u64);

impl std::hash::BuildHasher for BuildHostHasher {
    type Hasher = HostHasher;

    fn build_hasher(&self) -> HostHasher {
        HostHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for HostHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::host_header;

    #[test]
    fn the_host_header_is_the_key_unless_its_port_is_80_or_443() {
        let value = |key| host_header(key).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(value("a.test:8080").as_deref(), Some("a.test:8080"));
        assert_eq!(value("[::1]:8443").as_deref(), Some("[::1]:8443"));
        assert_eq!(value("a.test:180").as_deref(), Some("a.test:180"));
        // ureq writes these itself, from the URI (the bare host for the scheme's default).
        for key in ["a.test:80", "a.test:443", "[::1]:80"] {
            assert_eq!(value(key), None, "{key}");
        }
    }
}
