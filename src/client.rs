//! `Client`: one worker's HTTP client. The type users hold; the per-call engine behind it is
//! `engine.rs`, the request builder `request.rs`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ureq::http::Method;

use crate::engine::Engine;
use crate::error::Error;
use crate::request::RequestBuilder;
use crate::shared::Shared;

/// An HTTP client for one worker thread: one ureq `Agent` with its own connection pool,
/// buffers and DNS cache, so sending never takes a lock shared with other workers.
///
/// Get one from a [`ClientPool`](crate::ClientPool). A `Client` is `Send` (it can move to a
/// thread) but not `Sync`: it cannot be shared between threads, which the compiler enforces:
///
/// ```compile_fail
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::default()).unwrap();
/// let client = pool.try_checkout().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(|| client.get("http://127.0.0.1:1/").send());
///     s.spawn(|| client.get("http://127.0.0.1:1/").send());
/// });
/// ```
///
/// Moving it to a thread is fine:
///
/// ```
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let client = pool.checkout()?;
/// std::thread::spawn(move || drop(client)).join().unwrap();
/// # Ok::<(), http_sentinel::Error>(())
/// ```
pub struct Client {
    id: u64,
    engine: Engine,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("connections_opened", &self.connections_opened())
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(shared: Arc<Shared>) -> Client {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Client {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            engine: Engine::new(shared),
        }
    }

    /// A process-wide unique id for this client, stable while it lives: tells which client
    /// (and so which connections) served a worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let a = pool.checkout()?;
    /// let b = pool.checkout()?;
    /// assert_ne!(a.id(), b.id());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How many connections this client has opened (TCP, plus TLS when https). Compared with
    /// the requests sent it tells how well connections are reused.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.checkout()?.connections_opened(), 0);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn connections_opened(&self) -> u64 {
        self.engine.connections_opened()
    }

    /// The cookie jar this client reads and fills (feature `cookies`): the pool's shared jar,
    /// or this client's own with [`CookieJar::per_client`](crate::CookieJar::per_client);
    /// `None` when the pool has no jar.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, CookieJar, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().cookie_store(CookieJar::per_client()).build())?;
    /// let (a, b) = (pool.checkout()?, pool.checkout()?);
    /// let url = "http://127.0.0.1/".parse().unwrap();
    /// a.cookie_jar().unwrap().lock().parse("session=a", &url).unwrap();
    /// assert_eq!(b.cookie_jar().unwrap().lock().iter_unexpired().count(), 0);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    #[cfg(feature = "cookies")]
    pub fn cookie_jar(&self) -> Option<crate::cookies::CookieJar> {
        self.engine.cookie_jar()
    }

    /// Whether the client must not be handed out again (its connection state is suspect).
    pub(crate) fn should_discard(&self) -> bool {
        self.engine.should_discard()
    }

    /// Whether the client is in the middle of a call (the caller is one of its callbacks).
    pub(crate) fn in_call(&self) -> bool {
        self.engine.in_call()
    }

    /// Marks the client to be dropped instead of returned to the pool.
    pub(crate) fn discard_on_return(&self) {
        self.engine.discard_on_return();
    }

    /// Starts a GET request.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let body = pool.checkout()?.get("http://127.0.0.1:8080/").send()?.text()?;
    /// # let _ = body;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn get(&self, url: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(&self.engine, Ok(Method::GET), url)
    }

    /// Starts a HEAD request.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.head("http://127.0.0.1:8080/file").send()?;
    /// println!("{:?}", response.header("content-length"));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn head(&self, url: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(&self.engine, Ok(Method::HEAD), url)
    }

    /// Starts a POST request. A POST is never retried after it may have reached the server,
    /// unless it carries an `Idempotency-Key` header (or the policy says otherwise).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool
    ///     .checkout()?
    ///     .post("http://127.0.0.1:8080/orders")
    ///     .header("idempotency-key", "order-42")
    ///     .body("{}")
    ///     .send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn post(&self, url: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(&self.engine, Ok(Method::POST), url)
    }

    /// Starts a PUT request.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.put("http://127.0.0.1:8080/k").body("v").send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn put(&self, url: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(&self.engine, Ok(Method::PUT), url)
    }

    /// Starts a PATCH request.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.patch("http://127.0.0.1:8080/k").body("v").send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn patch(&self, url: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(&self.engine, Ok(Method::PATCH), url)
    }

    /// Starts a DELETE request.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.delete("http://127.0.0.1:8080/k").send()?;
    /// # let _ = response;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn delete(&self, url: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(&self.engine, Ok(Method::DELETE), url)
    }

    /// Starts a request with any method. An invalid method name fails at
    /// [`send`](RequestBuilder::send) with
    /// [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest).
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let err = client.request("BAD METHOD", "http://127.0.0.1:1/").send().unwrap_err();
    /// assert!(err.is_invalid_request());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn request(&self, method: &str, url: &str) -> RequestBuilder<'_> {
        let method =
            Method::from_bytes(method.as_bytes()).map_err(|_| Error::invalid("invalid method"));
        RequestBuilder::new(&self.engine, method, url)
    }
}
