//! Rate-limit pacing shared by every client of a pool.
//!
//! Without pacing, each worker finds a server's limit by hitting `429` and backs off alone:
//! 32 workers on one API key make a 429 storm. With [`Pacing`] set on the pool, one limiter per
//! host (or per host and API key) is shared by all clients: a `Retry-After` seen by one thread
//! holds every thread, and the quota a server reports (`RateLimit`, OpenAI's and Anthropic's
//! fields) is spread evenly over the time to its reset instead of being spent in a burst. A
//! configured limit (N per interval, a token bucket) serves APIs that say nothing.
//!
//! A host that has never sent a rate-limit field and has no configured limit costs one atomic
//! load per request.

mod headers;
mod limiter;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use ureq::http::{HeaderMap, StatusCode};

pub(crate) use headers::server_wait;
use limiter::{nanos, Limiter};

/// How a pool paces its requests to rate-limited hosts. Off unless set with
/// [`PoolConfigBuilder::pacing`](crate::PoolConfigBuilder::pacing).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use http_sentinel::{ClientPool, Pacing, PoolConfig};
///
/// // Follow the servers' rate-limit headers, per API key, and never more than 60 a second.
/// let pacing = Pacing::new()
///     .with_per_key(true)
///     .with_limit(60, Duration::from_secs(1));
/// let pool = ClientPool::new(PoolConfig::builder().pacing(pacing).build())?;
/// assert!(pool.config().pacing().unwrap().per_key());
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacing {
    per_key: bool,
    limit: Option<(u32, Duration)>,
}

impl Pacing {
    /// Pacing from the servers' headers, one limiter per host, no configured limit.
    pub const fn new() -> Pacing {
        Pacing {
            per_key: false,
            limit: None,
        }
    }

    /// One limiter per host and API key (the `Authorization` or `x-api-key` value) instead of
    /// one per host. The key is kept only as a keyed hash, never as its value. Defaults to
    /// `false`.
    pub const fn with_per_key(mut self, per_key: bool) -> Pacing {
        self.per_key = per_key;
        self
    }

    /// A configured limit: at most `requests` per `interval` (a token bucket that holds
    /// `requests`), for each host (or host and key), whatever the server says.
    /// Defaults to none.
    ///
    /// # Panics
    ///
    /// If `requests` is 0 or `interval` is zero.
    pub fn with_limit(mut self, requests: u32, interval: Duration) -> Pacing {
        assert!(requests > 0, "a rate limit needs at least one request");
        assert!(
            !interval.is_zero(),
            "a rate limit needs a non-zero interval"
        );
        self.limit = Some((requests, interval));
        self
    }

    /// Whether each API key has its own limiter.
    pub const fn per_key(&self) -> bool {
        self.per_key
    }

    /// The configured limit: requests per interval.
    pub const fn limit(&self) -> Option<(u32, Duration)> {
        self.limit
    }
}

impl Default for Pacing {
    fn default() -> Pacing {
        Pacing::new()
    }
}

/// Keys a host remembers before it starts over.
const MAX_KEYS: usize = 4096;

/// The limiters of one host, shared by every client of the pool.
pub(crate) struct HostPacer {
    /// Set once anything limits this host: until then admission is this one load.
    active: AtomicBool,
    epoch: Instant,
    config: Pacing,
    host: Arc<Limiter>,
    keys: RwLock<HashMap<u64, Arc<Limiter>>>,
    hasher: RandomState,
}

/// The outcome of admission: how long the request waited for its slot.
pub(crate) type Paced = Option<Duration>;

impl HostPacer {
    pub(crate) fn new(config: &Pacing) -> HostPacer {
        HostPacer {
            active: AtomicBool::new(config.limit.is_some()),
            epoch: Instant::now(),
            host: Arc::new(Limiter::new(config.limit)),
            keys: RwLock::new(HashMap::new()),
            hasher: RandomState::new(),
            config: config.clone(),
        }
    }

    /// Waits for the request's slot, up to `deadline`. `Ok(None)` when it did not wait,
    /// `Ok(Some(waited))` when it did, `Err(wait)` (having taken no slot) when the slot is
    /// past the deadline.
    pub(crate) fn admit(&self, headers: &HeaderMap, deadline: Instant) -> Result<Paced, Duration> {
        if !self.active.load(Relaxed) {
            return Ok(None);
        }
        let key = self.key_of(headers);
        let limiter = self.limiter(key);
        let started = Instant::now();
        let now = self.at(started);
        let budget = nanos(deadline.saturating_duration_since(started));
        let wait = limiter.reserve(now, budget).map_err(Duration::from_nanos)?;
        if wait == 0 && limiter.blocked_for(now) == 0 {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_nanos(wait));
        // A block learnt while this thread slept holds it too: no request leaves before it.
        loop {
            let now = Instant::now();
            let blocked = limiter.blocked_for(self.at(now));
            if blocked == 0 {
                return Ok(Some(now.saturating_duration_since(started)));
            }
            if blocked > nanos(deadline.saturating_duration_since(now)) {
                return Err(Duration::from_nanos(blocked));
            }
            std::thread::sleep(Duration::from_nanos(blocked));
        }
    }

    /// Learns from a response to a request sent with `headers`.
    pub(crate) fn observe(&self, request: &HeaderMap, status: StatusCode, response: &HeaderMap) {
        let fb = headers::feedback(status, response, SystemTime::now());
        if fb == headers::Feedback::default() {
            return;
        }
        let limiter = self.limiter(self.key_of(request));
        if limiter.learn(&fb, self.at(Instant::now())) {
            self.active.store(true, Relaxed);
        }
    }

    fn at(&self, t: Instant) -> u64 {
        nanos(t.saturating_duration_since(self.epoch))
    }

    /// The keyed hash of the request's API key, when limiters are per key and it has one.
    fn key_of(&self, headers: &HeaderMap) -> Option<u64> {
        if !self.config.per_key {
            return None;
        }
        let value = headers
            .get("authorization")
            .or_else(|| headers.get("x-api-key"))?;
        Some(self.hasher.hash_one(value.as_bytes()))
    }

    fn limiter(&self, key: Option<u64>) -> Arc<Limiter> {
        let Some(key) = key else {
            return self.host.clone();
        };
        let read = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = read.get(&key) {
            return l.clone();
        }
        drop(read);
        let mut map = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_KEYS {
            map.clear();
        }
        map.entry(key)
            .or_insert_with(|| Arc::new(Limiter::new(self.config.limit)))
            .clone()
    }
}
