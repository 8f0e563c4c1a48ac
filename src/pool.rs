//! `ClientPool`: clients created lazily, checked out r2d2-style, returned LIFO on drop;
//! thread-local access; scoped workers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::breaker::{Breakers, CircuitBreaker};
use crate::client::Client;
use crate::config::PoolConfig;
use crate::error::{Error, ErrorKind};
use crate::events::{CheckoutEvent, EventHandler};
use crate::metrics::{PoolState, Registry, Stats};
use crate::retry::RetryBudget;
use crate::transport;

/// Pool-wide state every client of a pool shares: configuration and TLS roots. Nothing here is
/// locked on the request path.
pub(crate) struct Shared {
    pub(crate) config: PoolConfig,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) breakers: Breakers,
    budgets: RwLock<HashMap<String, Arc<RetryBudget>>>,
    pub(crate) metrics: Arc<Registry>,
    #[cfg(feature = "fuzzing")]
    pub(crate) script: Option<Arc<transport::scripted::Script>>,
}

/// What a client caches per host so that its hot path does not touch the pool's maps.
pub(crate) struct HostPolicy {
    pub(crate) breaker: Arc<CircuitBreaker>,
    pub(crate) budget: Arc<RetryBudget>,
}

impl Shared {
    pub(crate) fn events(&self) -> Option<&dyn EventHandler> {
        self.config.events.as_ref().map(|h| &*h.0)
    }

    /// The pool-wide breaker and retry budget of `host`, created on first use.
    pub(crate) fn host_policy(&self, host: &str) -> HostPolicy {
        let existing = self
            .budgets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host)
            .cloned();
        let budget = existing.unwrap_or_else(|| {
            let mut map = self.budgets.write().unwrap_or_else(PoisonError::into_inner);
            map.entry(host.to_owned())
                .or_insert_with(|| Arc::new(RetryBudget::from_policy(&self.config.retry)))
                .clone()
        });
        HostPolicy {
            breaker: self.breakers.get(host),
            budget,
        }
    }
}

struct Slots {
    // LIFO: the most recently returned client has the warmest connections.
    idle: Vec<Client>,
    created: usize,
    waiting: usize,
}

struct PoolInner {
    id: u64,
    shared: Arc<Shared>,
    slots: Mutex<Slots>,
    returned: Condvar,
}

/// A pool of [`Client`]s, one per worker thread, checked out and returned like r2d2
/// connections. Cheap to clone (an `Arc`), `Send + Sync`: share it between threads freely.
///
/// # Examples
///
/// ```no_run
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::builder().max_clients(8).build())?;
/// let results = pool.scope(8, |worker| {
///     worker.get("http://127.0.0.1:8080/").send()?.text()
/// });
/// for r in results {
///     println!("{:?}", r?);
/// }
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Clone)]
pub struct ClientPool {
    inner: Arc<PoolInner>,
}

impl fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientPool")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

impl ClientPool {
    /// Creates a pool. No client (and no connection) is created until the first checkout.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] when an extra root certificate or the proxy URL is invalid.
    pub fn new(config: PoolConfig) -> Result<ClientPool, Error> {
        if let crate::Proxy::Url(u) = &config.proxy {
            ureq::Proxy::new(u)
                .map_err(|_| Error::new(ErrorKind::InvalidConfig("proxy url is invalid".into())))?;
        }
        let tls = transport::tls_config(&config)?;
        Ok(ClientPool {
            inner: Arc::new(PoolInner {
                id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
                shared: Arc::new(Shared {
                    // A probe may take the whole call deadline: until then it is not lost.
                    breakers: Breakers::new(
                        config
                            .breaker
                            .clone()
                            .probe_lease(config.breaker.get_probe_lease().max(config.deadline)),
                    ),
                    budgets: RwLock::new(HashMap::new()),
                    metrics: Arc::new(Registry::new()),
                    #[cfg(feature = "fuzzing")]
                    script: None,
                    config,
                    tls,
                }),
                slots: Mutex::new(Slots {
                    idle: Vec::new(),
                    created: 0,
                    waiting: 0,
                }),
                returned: Condvar::new(),
            }),
        })
    }

    /// A pool whose clients talk to an in-memory scripted peer instead of the network: each
    /// new connection gets the next of `responses`. Returns the pool and a way to read what was
    /// written on each connection. For fuzzing only.
    #[cfg(feature = "fuzzing")]
    #[doc(hidden)]
    pub fn scripted(
        config: PoolConfig,
        responses: Vec<Vec<u8>>,
    ) -> Result<(ClientPool, impl Fn() -> Vec<Vec<u8>>), Error> {
        let pool = ClientPool::new(config)?;
        let script = Arc::new(transport::scripted::Script {
            responses: Mutex::new(responses.into()),
            written: Mutex::new(Vec::new()),
        });
        let mut inner = Arc::try_unwrap(pool.inner).map_err(|_| Error::new(ErrorKind::Other))?;
        let mut shared = Arc::try_unwrap(inner.shared).map_err(|_| Error::new(ErrorKind::Other))?;
        shared.script = Some(script.clone());
        inner.shared = Arc::new(shared);
        let written = move || script.written.lock().map(|w| w.clone()).unwrap_or_default();
        Ok((
            ClientPool {
                inner: Arc::new(inner),
            },
            written,
        ))
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.shared.config
    }

    /// Checks out a client, waiting up to the configured checkout timeout for one to be free.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PoolTimeout`] saying how long it waited.
    pub fn checkout(&self) -> Result<Checkout, Error> {
        self.checkout_timeout(self.config().checkout_timeout)
    }

    /// Checks out a client, waiting up to `timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PoolTimeout`] saying how long it waited.
    pub fn checkout_timeout(&self, timeout: Duration) -> Result<Checkout, Error> {
        let start = Instant::now();
        let mut slots = self.inner.lock();
        let mut waited_once = false;
        loop {
            if let Some(client) = self.take(&mut slots) {
                drop(slots);
                self.record_checkout(start.elapsed(), waited_once, false);
                return Ok(self.guard(client));
            }
            let waited = start.elapsed();
            let Some(left) = timeout.checked_sub(waited).filter(|d| !d.is_zero()) else {
                drop(slots);
                self.record_checkout(waited, true, true);
                return Err(Error::new(ErrorKind::PoolTimeout(waited)));
            };
            waited_once = true;
            slots.waiting += 1;
            let (s, _) = self
                .inner
                .returned
                .wait_timeout(slots, left)
                .unwrap_or_else(|p| p.into_inner());
            slots = s;
            slots.waiting -= 1;
        }
    }

    /// Checks out a client if one is free (or may be created) right now; never blocks.
    pub fn try_checkout(&self) -> Option<Checkout> {
        let client = self.take(&mut self.inner.lock())?;
        self.record_checkout(Duration::ZERO, false, false);
        Some(self.guard(client))
    }

    fn record_checkout(&self, waited: Duration, notify: bool, timed_out: bool) {
        let shared = &self.inner.shared;
        if timed_out {
            shared.metrics.record_checkout_timeout(waited);
        } else {
            shared.metrics.record_checkout(waited);
        }
        if let (true, Some(h)) = (notify, shared.events()) {
            h.on_checkout_wait(&CheckoutEvent { waited, timed_out });
        }
    }

    /// A snapshot of the pool's metrics: calls, attempts, failures by kind, retries, breaker
    /// rejections, latency percentiles, connection reuse, per host, plus the pool's state and
    /// breaker states. Sums every client's counters; meant for scrapes and periodic logs.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let stats = pool.stats();
    /// assert_eq!(stats.calls(), 0);
    /// assert!(stats.to_prometheus().contains("http_sentinel_pool_clients"));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let shared = &self.inner.shared;
        let mut stats = shared.metrics.snapshot(self.state());
        stats.set_breakers(shared.breakers.states());
        stats
    }

    fn take(&self, slots: &mut MutexGuard<'_, Slots>) -> Option<Client> {
        if let Some(c) = slots.idle.pop() {
            return Some(c);
        }
        if slots.created < self.config().max_clients {
            slots.created += 1;
            // Creating an agent allocates but does no I/O: cheap enough under the lock.
            return Some(Client::new(self.inner.shared.clone()));
        }
        None
    }

    fn guard(&self, client: Client) -> Checkout {
        Checkout {
            client: Some(client),
            pool: self.inner.clone(),
        }
    }

    /// The pool's current state.
    pub fn state(&self) -> PoolState {
        let slots = self.inner.lock();
        PoolState {
            clients: slots.created,
            idle: slots.idle.len(),
            checked_out: slots.created - slots.idle.len(),
            waiting: slots.waiting,
            max_clients: self.config().max_clients,
        }
    }

    /// Runs `f` with this thread's client of this pool: checked out on the thread's first
    /// call and kept until the thread ends (or [`release_local`](ClientPool::release_local)),
    /// for code that cannot pass a client around (callbacks, thread pools you do not own).
    ///
    /// Each thread that calls it holds one client, so a pool needs `max_clients` at least the
    /// number of such threads; beyond that, callers wait up to the checkout timeout. A nested
    /// call on the same thread checks out a second client.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PoolTimeout`] when no client could be checked out.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let first = pool.with_client(|c| c as *const _ as usize)?;
    /// let again = pool.with_client(|c| c as *const _ as usize)?;
    /// assert_eq!(first, again); // the same client for the whole thread
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn with_client<R>(&self, f: impl FnOnce(&Client) -> R) -> Result<R, Error> {
        let id = self.inner.id;
        let held = LOCAL
            .try_with(|l| {
                let mut l = l.borrow_mut();
                let at = l.iter().position(|c| c.pool.id == id)?;
                Some(l.swap_remove(at))
            })
            .ok()
            .flatten();
        let checkout = match held {
            Some(c) => c,
            None => self.checkout()?,
        };
        // A panic in `f` drops `checkout` while unwinding, which discards the client.
        let result = f(&checkout);
        let _ = LOCAL.try_with(|l| l.borrow_mut().push(checkout));
        Ok(result)
    }

    /// Returns this thread's [`with_client`](ClientPool::with_client) client to the pool now
    /// rather than when the thread ends. Returns whether the thread held one.
    pub fn release_local(&self) -> bool {
        let id = self.inner.id;
        LOCAL
            .try_with(|l| {
                let mut l = l.borrow_mut();
                let at = l.iter().position(|c| c.pool.id == id);
                at.map(|at| l.swap_remove(at)).is_some()
            })
            .unwrap_or(false)
    }

    /// Runs `workers` scoped threads, each owning a checked-out client and a stable id
    /// (`0..workers`), and returns each worker's result in id order. A worker that panics gives
    /// [`ErrorKind::Panicked`] and its client is discarded, never returned dirty; a worker that
    /// gets no client within the checkout timeout gives [`ErrorKind::PoolTimeout`].
    ///
    /// Built on [`std::thread::scope`], so `f` may borrow from the caller's stack.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let ids = pool.scope(4, |worker| worker.id());
    /// let ids: Vec<usize> = ids.into_iter().collect::<Result<_, _>>()?;
    /// assert_eq!(ids, [0, 1, 2, 3]);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn scope<R, F>(&self, workers: usize, f: F) -> Vec<Result<R, Error>>
    where
        F: Fn(&mut Worker) -> R + Sync,
        R: Send,
    {
        let f = &f;
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|id| {
                    std::thread::Builder::new()
                        .name(format!("sentinel-worker-{id}"))
                        .spawn_scoped(s, move || self.run_worker(id, f))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or_else(|p| Err(panicked(&*p))),
                    Err(e) => Err(Error::new(ErrorKind::Other).with_source(e)),
                })
                .collect()
        })
    }

    fn run_worker<R>(&self, id: usize, f: &(impl Fn(&mut Worker) -> R + Sync)) -> Result<R, Error> {
        let mut worker = Worker {
            id,
            checkout: self.checkout()?,
        };
        catch_unwind(AssertUnwindSafe(|| f(&mut worker))).map_err(|p| {
            worker.checkout.discard();
            panicked(&*p)
        })
    }
}

pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> Error {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into());
    Error::new(ErrorKind::Panicked(msg))
}

thread_local! {
    static LOCAL: RefCell<Vec<Checkout>> = const { RefCell::new(Vec::new()) };
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Pool bookkeeping stays consistent even if a thread panicked while holding the lock:
        // every critical section is a few field updates.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A checked-out [`Client`]: derefs to it, and returns it to the pool when dropped. A client
/// dropped during a panic, or whose connection state is suspect, is discarded instead.
pub struct Checkout {
    client: Option<Client>,
    pool: Arc<PoolInner>,
}

impl Checkout {
    /// Drops the client instead of returning it (its connections close); the pool creates a
    /// fresh one when needed.
    pub fn discard(&mut self) {
        if let Some(c) = &self.client {
            c.poison();
        }
    }
}

impl fmt::Debug for Checkout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Checkout").field(&self.client).finish()
    }
}

impl Deref for Checkout {
    type Target = Client;

    fn deref(&self) -> &Client {
        // Only `Drop` takes the client out.
        self.client.as_ref().expect("client present until drop")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let dirty = std::thread::panicking() || client.is_poisoned();
        let mut slots = self.pool.lock();
        if dirty {
            slots.created -= 1;
            drop(slots);
            drop(client);
        } else {
            slots.idle.push(client);
            drop(slots);
        }
        self.pool.returned.notify_one();
    }
}

/// One scoped worker: a stable id and its own checked-out client (it derefs to [`Client`]).
#[derive(Debug)]
pub struct Worker {
    id: usize,
    checkout: Checkout,
}

impl Worker {
    /// The worker's id, `0..workers`, stable for the scope.
    pub fn id(&self) -> usize {
        self.id
    }
}

impl Deref for Worker {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.checkout
    }
}
