//! Pool configuration: timeouts, pool sizes, buffers, limits, TLS roots, proxy, redirects.

use std::sync::Arc;
use std::time::Duration;
use ureq::http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use crate::breaker::{default_breaker_failure, BreakerConfig, FailurePredicate};
use crate::concurrency::AdaptiveLimit;
use crate::dns::{Names, Resolver};
use crate::error::{Error, ErrorKind};
use crate::events::EventHandler;
use crate::hedge::policy::HedgePolicy;
use crate::identity::Identity;
use crate::pacing::Pacing;
use crate::retry::RetryPolicy;
use crate::telemetry::Propagator;

/// Configuration shared by every client of a [`ClientPool`](crate::ClientPool).
///
/// Built with [`PoolConfig::builder`]; every setter documents its default. Nothing waits forever
/// by default: every call has an overall deadline and checkout has a timeout.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use http_sentinel::PoolConfig;
///
/// let config = PoolConfig::builder()
///     .max_clients(8)
///     .deadline(Duration::from_secs(5))
///     .build();
/// assert_eq!(config.max_clients(), 8);
/// assert_eq!(config.deadline(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub(crate) max_clients: usize,
    pub(crate) checkout_timeout: Duration,
    pub(crate) deadline: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_idle_per_host: usize,
    pub(crate) max_idle: usize,
    pub(crate) idle_age: Duration,
    pub(crate) user_agent: String,
    pub(crate) input_buffer: usize,
    pub(crate) output_buffer: usize,
    pub(crate) max_header_size: usize,
    pub(crate) body_limit: u64,
    pub(crate) proxy: Proxy,
    pub(crate) extra_roots: Vec<Arc<[u8]>>,
    pub(crate) built_in_roots: bool,
    pub(crate) identity: Option<Identity>,
    pub(crate) max_redirects: u32,
    pub(crate) allow_https_downgrade: bool,
    pub(crate) dns_ttl: Duration,
    pub(crate) dns_negative_ttl: Duration,
    /// Pinned addresses and the custom resolver.
    pub(crate) names: Names,
    pub(crate) retry: RetryPolicy,
    pub(crate) breaker: BreakerConfig,
    pub(crate) breaker_failure: FailurePredicate,
    pub(crate) events: Option<Handler>,
    pub(crate) pacing: Option<Pacing>,
    /// Hedged requests, when the pool sends them.
    pub(crate) hedge: Option<HedgePolicy>,
    pub(crate) adaptive_concurrency: Option<AdaptiveLimit>,
    /// The header naming each call's own id and the one carrying its retry count.
    pub(crate) request_ids: Option<(HeaderName, HeaderName)>,
    pub(crate) otel_metrics: bool,
    pub(crate) propagator: Option<PropagatorHook>,
    /// Sent on every request that does not set the same header; credentials marked sensitive.
    pub(crate) default_headers: HeaderMap,
    /// Default headers dropped on a cross-origin redirect, like `Authorization`.
    pub(crate) default_sensitive: Vec<HeaderName>,
    #[cfg(feature = "cookies")]
    pub(crate) cookie_store: Option<crate::cookies::CookieJar>,
}

/// The registered propagation hook (`Debug` for the config's sake).
#[derive(Clone)]
pub(crate) struct PropagatorHook(pub(crate) Arc<dyn Propagator>);

impl std::fmt::Debug for PropagatorHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Propagator")
    }
}

/// The registered event handler (`Debug` for the config's sake).
#[derive(Clone)]
pub(crate) struct Handler(pub(crate) Arc<dyn EventHandler>);

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventHandler")
    }
}

/// Where requests go through a proxy. `Debug` hides a proxy URL's password.
///
/// Through an `http://` or `https://` proxy, plain-http targets are forwarded in absolute form
/// (`GET http://host:port/path HTTP/1.1`, RFC 9112 §3.2.2) with `Proxy-Authorization` from the
/// proxy URL's credentials, and https targets go through a `CONNECT` tunnel. `socks4://`,
/// `socks4a://`, `socks5://` and `socks5h://` proxies (`h` and `a`: the proxy resolves the
/// name) need the `socks` cargo feature; without it [`ClientPool::new`](crate::ClientPool::new)
/// refuses them with [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig). A request
/// never goes around a configured proxy: a proxy that is down or refuses is an error.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Proxy {
    /// Connect directly; `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are ignored.
    None,
    /// Read the first of `ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY` (upper then lowercase) that is
    /// set, for every target, and `NO_PROXY`, when each client is created; the pool checks the
    /// values when it is built. `NO_PROXY` is read as curl reads it: comma-separated `*`
    /// (everything), names (that host and its subdomains, with or without a leading `.`), IP
    /// addresses and CIDR blocks (`127.0.0.0/8,::1/128`, matched against IP-literal targets;
    /// names are not resolved to be matched).
    FromEnv,
    /// Use this proxy, e.g. `http://user:pass@proxy:3128` (no `NO_PROXY` list applies).
    Url(String),
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proxy::None => f.write_str("None"),
            Proxy::FromEnv => f.write_str("FromEnv"),
            Proxy::Url(u) => f
                .debug_tuple("Url")
                .field(&crate::url::redact_url(u))
                .finish(),
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_clients: 64,
            checkout_timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_idle_per_host: 2,
            max_idle: 8,
            idle_age: Duration::from_secs(15),
            user_agent: concat!("http-sentinel/", env!("CARGO_PKG_VERSION")).to_owned(),
            input_buffer: 8 * 1024,
            output_buffer: 8 * 1024,
            max_header_size: 64 * 1024,
            body_limit: 10 * 1024 * 1024,
            proxy: Proxy::None,
            extra_roots: Vec::new(),
            built_in_roots: true,
            identity: None,
            max_redirects: 10,
            allow_https_downgrade: false,
            dns_ttl: Duration::from_secs(60),
            dns_negative_ttl: Duration::from_secs(5),
            names: Names::default(),
            retry: RetryPolicy::new(),
            breaker: BreakerConfig::new(),
            breaker_failure: default_breaker_failure,
            events: None,
            pacing: None,
            hedge: None,
            adaptive_concurrency: None,
            request_ids: None,
            otel_metrics: false,
            propagator: None,
            default_headers: HeaderMap::new(),
            default_sensitive: Vec::new(),
            #[cfg(feature = "cookies")]
            cookie_store: None,
        }
    }
}

impl PoolConfig {
    /// The headers sent on every request that does not set the same header; see
    /// [`PoolConfigBuilder::default_header`]. Sensitive values show as `Sensitive` in `Debug`.
    pub fn default_headers(&self) -> &HeaderMap {
        &self.default_headers
    }

    /// Adds the default headers whose name `headers` lacks, and the sensitive ones' names to
    /// `sensitive`.
    pub(crate) fn apply_default_headers(
        &self,
        headers: &mut HeaderMap,
        sensitive: &mut Vec<HeaderName>,
    ) {
        for name in self.default_headers.keys() {
            if headers.contains_key(name) {
                continue;
            }
            for value in self.default_headers.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
            if self.default_sensitive.contains(name) && !sensitive.contains(name) {
                sensitive.push(name.clone());
            }
        }
    }

    /// The headers of the per-call request ids, when they are on; see
    /// [`PoolConfigBuilder::request_ids`].
    pub fn request_id_headers(&self) -> Option<(&HeaderName, &HeaderName)> {
        self.request_ids.as_ref().map(|(id, retries)| (id, retries))
    }

    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let config = PoolConfig::builder().max_clients(4).build();
    /// let pool = ClientPool::new(config)?;
    /// assert_eq!(pool.config().max_clients(), 4);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn builder() -> PoolConfigBuilder {
        PoolConfigBuilder(PoolConfig::default())
    }

    /// A builder starting from the defaults with the `SENTINEL_*` environment overrides applied.
    ///
    /// | variable | setting |
    /// |---|---|
    /// | `SENTINEL_MAX_CLIENTS` | [`max_clients`](PoolConfigBuilder::max_clients) |
    /// | `SENTINEL_MAX_IDLE_PER_HOST` | [`max_idle_per_host`](PoolConfigBuilder::max_idle_per_host) |
    /// | `SENTINEL_DEADLINE_MS` | [`deadline`](PoolConfigBuilder::deadline) |
    /// | `SENTINEL_CONNECT_TIMEOUT_MS` | [`connect_timeout`](PoolConfigBuilder::connect_timeout) |
    /// | `SENTINEL_CHECKOUT_TIMEOUT_MS` | [`checkout_timeout`](PoolConfigBuilder::checkout_timeout) |
    /// | `SENTINEL_IDLE_AGE_MS` | [`idle_age`](PoolConfigBuilder::idle_age) |
    /// | `SENTINEL_BODY_LIMIT` | [`body_limit`](PoolConfigBuilder::body_limit) (bytes) |
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] naming the variable when a value is not a positive integer
    /// (or does not fit the setting). An environment value never makes a setter panic.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::PoolConfig;
    ///
    /// let config = PoolConfig::from_env()?.build();
    /// assert!(config.max_clients() > 0);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn from_env() -> Result<PoolConfigBuilder, Error> {
        PoolConfig::builder().env_overrides(|name| std::env::var(name).ok())
    }

    /// The most clients the pool creates. See [`PoolConfigBuilder::max_clients`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().max_clients(), 64);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn max_clients(&self) -> usize {
        self.max_clients
    }

    /// How long `checkout()` waits for a free client. See
    /// [`PoolConfigBuilder::checkout_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().checkout_timeout(), Duration::from_secs(30));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn checkout_timeout(&self) -> Duration {
        self.checkout_timeout
    }

    /// The overall deadline of one call. See [`PoolConfigBuilder::deadline`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().deadline(), Duration::from_secs(30));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The connect timeout of one attempt. See [`PoolConfigBuilder::connect_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().connect_timeout(), Duration::from_secs(10));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Idle connections kept per host by each client. See
    /// [`PoolConfigBuilder::max_idle_per_host`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().max_idle_per_host(), 2);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn max_idle_per_host(&self) -> usize {
        self.max_idle_per_host
    }

    /// Idle connections kept over all hosts by each client. See
    /// [`PoolConfigBuilder::max_idle`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().max_idle(), 8);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn max_idle(&self) -> usize {
        self.max_idle
    }

    /// How long an idle connection may be kept for reuse. See [`PoolConfigBuilder::idle_age`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().idle_age(), Duration::from_secs(15));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn idle_age(&self) -> Duration {
        self.idle_age
    }

    /// The user agent sent when a request sets none; empty when none is sent. See
    /// [`PoolConfigBuilder::user_agent`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert!(pool.config().user_agent().starts_with("http-sentinel/"));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// Each connection's buffer sizes in bytes, `(input, output)`, after raising values below
    /// 1 KiB. See [`PoolConfigBuilder::buffer_sizes`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().buffer_sizes(), (8 * 1024, 8 * 1024));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn buffer_sizes(&self) -> (usize, usize) {
        (self.input_buffer, self.output_buffer)
    }

    /// The response body limit in bytes. See [`PoolConfigBuilder::body_limit`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().body_limit(), 10 * 1024 * 1024);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn body_limit(&self) -> u64 {
        self.body_limit
    }

    /// The largest response header accepted, in bytes. See
    /// [`PoolConfigBuilder::max_header_size`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().max_header_size(), 64 * 1024);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn max_header_size(&self) -> usize {
        self.max_header_size
    }

    /// The proxy requests go through. Its `Debug` output hides a proxy URL's password. See
    /// [`PoolConfigBuilder::proxy`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig, Proxy};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().proxy(), &Proxy::None);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// The private CA certificates (PEM or DER, as given) trusted in addition to the webpki
    /// roots, in the order they were added. See [`PoolConfigBuilder::add_root_certificate`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().root_certificates().len(), 0);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn root_certificates(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.extra_roots.iter().map(|cert| &cert[..])
    }

    /// The hop limit for redirects; 0 when redirects are not followed. See
    /// [`PoolConfigBuilder::max_redirects`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().max_redirects(), 10);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn max_redirects(&self) -> u32 {
        self.max_redirects
    }

    /// The cookie jar a new client of the pool uses (nothing without the `cookies` feature).
    pub(crate) fn client_jar(&self) -> crate::cookies::ClientJar {
        #[cfg(feature = "cookies")]
        return crate::cookies::ClientJar::for_client(self.cookie_store.as_ref());
        #[cfg(not(feature = "cookies"))]
        crate::cookies::ClientJar
    }

    /// The cookie jar set with [`PoolConfigBuilder::cookie_store`] (feature `cookies`);
    /// `None` by default.
    #[cfg(feature = "cookies")]
    pub fn cookie_store(&self) -> Option<&crate::cookies::CookieJar> {
        self.cookie_store.as_ref()
    }

    /// Whether a redirect from https to http is followed. See
    /// [`PoolConfigBuilder::allow_https_downgrade`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert!(!pool.config().allow_https_downgrade());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn allow_https_downgrade(&self) -> bool {
        self.allow_https_downgrade
    }

    /// How long a resolved host name is cached and how long a failed lookup is,
    /// `(positive, negative)`. See [`PoolConfigBuilder::dns_ttl`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let (positive, negative) = pool.config().dns_ttl();
    /// assert_eq!(positive, Duration::from_secs(60));
    /// assert_eq!(negative, Duration::from_secs(5));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn dns_ttl(&self) -> (Duration, Duration) {
        (self.dns_ttl, self.dns_negative_ttl)
    }

    /// The retry policy. See [`PoolConfigBuilder::retry`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert_eq!(pool.config().retry().max_attempts(), 3);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The circuit breaker settings. See [`PoolConfigBuilder::breaker`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert!(pool.config().breaker().is_enabled());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn breaker(&self) -> &BreakerConfig {
        &self.breaker
    }

    /// The rate-limit pacing, if any. See [`PoolConfigBuilder::pacing`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert!(pool.config().pacing().is_none());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn pacing(&self) -> Option<&Pacing> {
        self.pacing.as_ref()
    }

    /// The pool's hedging policy, if it hedges. See [`PoolConfigBuilder::hedge`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert!(pool.config().hedge().is_none()); // off by default
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn hedge(&self) -> Option<&HedgePolicy> {
        self.hedge.as_ref()
    }

    /// The adaptive per-host concurrency limit, if any. See
    /// [`PoolConfigBuilder::adaptive_concurrency`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert!(pool.config().adaptive_concurrency().is_none());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn adaptive_concurrency(&self) -> Option<&AdaptiveLimit> {
        self.adaptive_concurrency.as_ref()
    }

    /// What counts as a failure for the circuit breaker. See
    /// [`PoolConfigBuilder::breaker_failure`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::breaker::AttemptOutcome;
    /// use http_sentinel::http::StatusCode;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let is_failure = pool.config().breaker_failure();
    /// assert!(is_failure(AttemptOutcome::Status(StatusCode::BAD_GATEWAY)));
    /// assert!(!is_failure(AttemptOutcome::Status(StatusCode::NOT_FOUND)));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn breaker_failure(&self) -> FailurePredicate {
        self.breaker_failure
    }

    /// The registered event handler, if any. See [`PoolConfigBuilder::event_handler`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// assert!(pool.config().event_handler().is_none());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn event_handler(&self) -> Option<&Arc<dyn EventHandler>> {
        self.events.as_ref().map(|h| &h.0)
    }

    /// Whether OpenTelemetry's HTTP client metrics are kept (see
    /// [`PoolConfigBuilder::otel_metrics`]).
    pub fn otel_metrics(&self) -> bool {
        self.otel_metrics
    }

    /// The propagation hook called on every attempt, if any.
    pub fn propagator(&self) -> Option<&Arc<dyn Propagator>> {
        self.propagator.as_ref().map(|p| &p.0)
    }
}

/// Builder for [`PoolConfig`]; setters consume and return it.
///
/// Setters panic on values that could never work (such as zero clients or a zero deadline),
/// each documenting it under `# Panics`; [`build`](Self::build) never fails. What can only be
/// checked by parsing (root certificates, a proxy URL) is checked by
/// [`ClientPool::new`](crate::ClientPool::new), and
/// [`env_overrides`](Self::env_overrides) returns an error for an unusable environment value.
#[derive(Debug, Clone)]
pub struct PoolConfigBuilder(PoolConfig);

fn positive(name: &str, value: &str) -> Result<u64, Error> {
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid_env(name, value)),
    }
}

/// [`positive`], for a setting counted in `usize`.
fn positive_usize(name: &str, value: &str) -> Result<usize, Error> {
    usize::try_from(positive(name, value)?).map_err(|_| invalid_env(name, value))
}

fn invalid_env(name: &str, value: &str) -> Error {
    Error::new(ErrorKind::InvalidConfig(format!(
        "{name} must be a positive integer, got {value:?}"
    )))
}

impl PoolConfigBuilder {
    /// The most clients (one per worker thread) the pool creates. Clients are created lazily.
    /// Defaults to 64.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().max_clients(8).build())?;
    /// assert_eq!(pool.state().max_clients, 8);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn max_clients(mut self, n: usize) -> Self {
        assert!(n > 0, "max_clients must be at least 1");
        self.0.max_clients = n;
        self
    }

    /// How long [`ClientPool::checkout`](crate::ClientPool::checkout) waits for a free client
    /// before failing with [`ErrorKind::PoolTimeout`]. Zero never waits: `checkout` then fails
    /// at once when every client is busy (while a client is free or may still be created, it
    /// succeeds). Defaults to 30 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let config = PoolConfig::builder()
    ///     .max_clients(1)
    ///     .checkout_timeout(Duration::ZERO)
    ///     .build();
    /// let pool = ClientPool::new(config)?;
    /// let held = pool.checkout()?;
    /// assert!(pool.checkout().unwrap_err().is_pool_timeout());
    /// drop(held);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn checkout_timeout(mut self, d: Duration) -> Self {
        self.0.checkout_timeout = d;
        self
    }

    /// The overall deadline of one call: every attempt, backoff sleep and redirect, and reading
    /// the body through [`Response`](crate::Response), must end within it. A request can set its
    /// own with [`RequestBuilder::timeout`](crate::RequestBuilder::timeout). Defaults to 30 s.
    ///
    /// # Panics
    ///
    /// If `d` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let config = PoolConfig::builder().deadline(Duration::from_secs(5)).build();
    /// let pool = ClientPool::new(config)?;
    /// assert_eq!(pool.config().deadline(), Duration::from_secs(5));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn deadline(mut self, d: Duration) -> Self {
        assert!(!d.is_zero(), "deadline must be positive");
        self.0.deadline = d;
        self
    }

    /// The timeout for establishing one connection (TCP and TLS), within the deadline.
    /// Defaults to 10 s.
    ///
    /// # Panics
    ///
    /// If `d` is zero: no connection could ever be made.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let config = PoolConfig::builder().connect_timeout(Duration::from_secs(2)).build();
    /// let pool = ClientPool::new(config)?;
    /// assert_eq!(pool.config().connect_timeout(), Duration::from_secs(2));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        assert!(!d.is_zero(), "connect_timeout must be positive");
        self.0.connect_timeout = d;
        self
    }

    /// Idle keep-alive connections each client keeps per host. A worker sends one request at a
    /// time, so one or two are enough; 0 keeps none (every call opens a new connection).
    /// Defaults to 2.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().max_idle_per_host(1).build())?;
    /// assert_eq!(pool.config().max_idle_per_host(), 1);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.0.max_idle_per_host = n;
        self
    }

    /// Idle keep-alive connections each client keeps over all hosts; 0 keeps none.
    /// Defaults to 8.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().max_idle(4).build())?;
    /// assert_eq!(pool.config().max_idle(), 4);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn max_idle(mut self, n: usize) -> Self {
        self.0.max_idle = n;
        self
    }

    /// How long an idle connection may be kept for reuse; zero never reuses one.
    /// Defaults to 15 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let config = PoolConfig::builder().idle_age(Duration::from_secs(5)).build();
    /// let pool = ClientPool::new(config)?;
    /// assert_eq!(pool.config().idle_age(), Duration::from_secs(5));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn idle_age(mut self, d: Duration) -> Self {
        self.0.idle_age = d;
        self
    }

    /// The `User-Agent` sent when a request sets none; an empty string sends none.
    /// Defaults to `http-sentinel/<version>`.
    ///
    /// # Panics
    ///
    /// If `ua` is not a valid header value (it contains a control character such as CR, LF or
    /// NUL): it could never be sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().user_agent("inventory-sync/2.1").build())?;
    /// assert_eq!(pool.config().user_agent(), "inventory-sync/2.1");
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        let ua = ua.into();
        assert!(
            ureq::http::HeaderValue::from_str(&ua).is_ok(),
            "user_agent must be a valid header value (no control characters), got {ua:?}"
        );
        self.0.user_agent = ua;
        self
    }

    /// Sends `name: value` on every request of the pool that does not set a header of the
    /// same name itself (a request's own value replaces all the defaults of that name). A
    /// name given more than once sends each value. `Authorization`, `Cookie` and
    /// `Proxy-Authorization` are treated as credentials (redacted, dropped cross-origin), as
    /// on a request; see [`default_sensitive_header`](Self::default_sensitive_header) for
    /// other secrets. Defaults to none.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid header name or `value` not a valid header value (a control
    /// character such as CR, LF or NUL): it could never be sent. The value is not echoed.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let config = PoolConfig::builder()
    ///     .default_header("accept", "application/json")
    ///     .default_header("x-tenant", "acme")
    ///     .build();
    /// assert_eq!(config.default_headers()["x-tenant"], "acme");
    /// let pool = ClientPool::new(config)?;
    /// let client = pool.checkout()?;
    /// // Sends `accept: text/csv` and `x-tenant: acme`.
    /// let request = client.get("http://127.0.0.1:8080/report").header("accept", "text/csv");
    /// # let _ = request;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn default_header(mut self, name: &str, value: &str) -> Self {
        let (name, value) = default_pair(name, value);
        self.0.default_headers.append(name, value);
        self
    }

    /// Like [`default_header`](Self::default_header), for a secret such as an API key: the
    /// value is redacted from `Debug` output (this configuration's included), errors and logs,
    /// and the header is dropped on a redirect to another origin, as `Authorization` is.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid header name or `value` not a valid header value. The value
    /// is not echoed.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::PoolConfig;
    ///
    /// let config = PoolConfig::builder()
    ///     .default_sensitive_header("x-api-key", "s3cret")
    ///     .build();
    /// assert!(config.default_headers()["x-api-key"].is_sensitive());
    /// assert!(!format!("{config:?}").contains("s3cret"));
    /// ```
    pub fn default_sensitive_header(mut self, name: &str, value: &str) -> Self {
        let (name, mut value) = default_pair(name, value);
        value.set_sensitive(true);
        if !self.0.default_sensitive.contains(&name) {
            self.0.default_sensitive.push(name.clone());
        }
        self.0.default_headers.append(name, value);
        self
    }

    /// Gives every call a request id of its own: a new UUID (version 4) in header `id_header`,
    /// the same on every retry, redirect hop and replay of that call, and the number of
    /// retries made so far (0 on the first attempt) in `retry_header`, as the official OpenAI
    /// and Anthropic SDKs send `x-stainless-retry-count`. A call whose request already has
    /// `id_header` keeps its own. Server logs then tie retries of one call together. Defaults
    /// to off.
    ///
    /// # Panics
    ///
    /// When a name is not a valid header name.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let config = PoolConfig::builder()
    ///     .request_ids("x-client-request-id", "x-retry-count")
    ///     .build();
    /// let (id, retries) = config.request_id_headers().unwrap();
    /// assert_eq!((id.as_str(), retries.as_str()), ("x-client-request-id", "x-retry-count"));
    /// # let _ = ClientPool::new(config)?;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn request_ids(mut self, id_header: &str, retry_header: &str) -> Self {
        let name = |n: &str| {
            HeaderName::from_bytes(n.as_bytes())
                .unwrap_or_else(|_| panic!("request_ids: {n:?} is not a valid header name"))
        };
        self.0.request_ids = Some((name(id_header), name(retry_header)));
        self
    }

    /// Size of each connection's buffers in bytes: the input buffer's starting size (it grows on
    /// demand up to [`max_header_size`](Self::max_header_size) to hold a large response header,
    /// and shrinks back once it is read) and the output buffer's fixed size (it holds a request
    /// head, so it bounds the size of the headers a request can send). Small buffers keep an
    /// idle connection cheap: ureq's defaults are 128 KiB each. A size below 1 KiB is raised to
    /// 1 KiB. Defaults to 8 KiB and 8 KiB.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().buffer_sizes(4096, 16 * 1024).build())?;
    /// assert_eq!(pool.config().buffer_sizes(), (4096, 16 * 1024));
    ///
    /// let tiny = PoolConfig::builder().buffer_sizes(0, 100).build();
    /// assert_eq!(tiny.buffer_sizes(), (1024, 1024));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn buffer_sizes(mut self, input: usize, output: usize) -> Self {
        self.0.input_buffer = input.max(1024);
        self.0.output_buffer = output.max(1024);
        self
    }

    /// The largest response header accepted; a larger one fails with
    /// [`ErrorKind::HeaderTooLarge`]. Defaults to 64 KiB.
    ///
    /// The limit also caps a redirect chain's total, as curl caps the sum: the headers of
    /// every response of the chain (each header's name and value plus 4 bytes of `: ` and
    /// CRLF), the final response included, may add up to at most `n` bytes.
    ///
    /// # Panics
    ///
    /// If `n` is 0: no response could ever be read.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().max_header_size(16 * 1024).build())?;
    /// assert_eq!(pool.config().max_header_size(), 16 * 1024);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn max_header_size(mut self, n: usize) -> Self {
        assert!(n > 0, "max_header_size must be at least 1");
        self.0.max_header_size = n;
        self
    }

    /// The most bytes [`Response`](crate::Response) reads from a body (after decompression); more
    /// fails with [`ErrorKind::BodyTooLarge`]. 0 accepts only empty bodies (status and headers
    /// are always available). Defaults to 10 MiB.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().body_limit(1024 * 1024).build())?;
    /// assert_eq!(pool.config().body_limit(), 1024 * 1024);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.0.body_limit = bytes;
        self
    }

    /// The proxy to use. Proxies from the environment (`HTTP_PROXY` and friends) are ignored
    /// unless [`Proxy::FromEnv`] is chosen, so a deployment's environment cannot silently reroute
    /// (and observe) traffic. An invalid proxy URL, or a SOCKS proxy without the `socks`
    /// feature, is rejected by [`ClientPool::new`](crate::ClientPool::new) with
    /// [`ErrorKind::InvalidConfig`]; see [`Proxy`] for how each kind is used.
    /// Defaults to [`Proxy::None`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig, Proxy};
    ///
    /// let proxy = Proxy::Url("http://user:secret@proxy.test:3128".into());
    /// let pool = ClientPool::new(PoolConfig::builder().proxy(proxy.clone()).build())?;
    /// assert_eq!(pool.config().proxy(), &proxy);
    /// // The password never shows in `Debug` output.
    /// assert!(!format!("{:?}", pool.config()).contains("secret"));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.0.proxy = proxy;
        self
    }

    /// Trusts a private CA in addition to the webpki (Mozilla) roots; may be called repeatedly.
    /// Takes a PEM or DER certificate; an unparsable one is rejected by
    /// [`ClientPool::new`](crate::ClientPool::new) with [`ErrorKind::InvalidConfig`].
    /// Defaults to none.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, ErrorKind, PoolConfig};
    ///
    /// # let pem = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()])
    /// #     .unwrap()
    /// #     .cert
    /// #     .pem();
    /// // `pem` holds the private CA's certificate, e.g. read from a file.
    /// let config = PoolConfig::builder().add_root_certificate(&pem).build();
    /// assert_eq!(config.root_certificates().len(), 1);
    /// let pool = ClientPool::new(config)?;
    ///
    /// let garbage = PoolConfig::builder().add_root_certificate(b"not a certificate").build();
    /// let err = ClientPool::new(garbage).unwrap_err();
    /// assert!(matches!(err.kind(), ErrorKind::InvalidConfig(_)));
    /// # drop(pool);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn add_root_certificate(mut self, pem_or_der: impl AsRef<[u8]>) -> Self {
        self.0.extra_roots.push(Arc::from(pem_or_der.as_ref()));
        self
    }

    /// Whether the webpki (Mozilla) roots are trusted besides the certificates given to
    /// [`add_root_certificate`](PoolConfigBuilder::add_root_certificate). `false` trusts only
    /// those: for a private service mesh whose servers no public CA vouches for. Defaults to
    /// `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// # let mesh_ca_pem = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()])
    /// #     .unwrap()
    /// #     .cert
    /// #     .pem();
    /// let config = PoolConfig::builder()
    ///     .tls_built_in_root_certs(false)
    ///     .add_root_certificate(&mesh_ca_pem)
    ///     .build();
    /// let pool = ClientPool::new(config)?;
    /// # drop(pool);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn tls_built_in_root_certs(mut self, trust: bool) -> Self {
        self.0.built_in_roots = trust;
        self
    }

    /// The client certificate chain and key every client of the pool presents when a server
    /// asks for one (mutual TLS). Defaults to none.
    ///
    /// A server that requires a certificate and gets none (or one it does not trust) ends
    /// the call with [`ErrorKind::Tls`] ([`TlsFailure::ClientCertificate`](crate::error::TlsFailure::ClientCertificate)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, Identity, PoolConfig};
    ///
    /// let identity = Identity::from_pem_parts(
    ///     &std::fs::read("client-chain.pem")?,
    ///     &std::fs::read("client-key.pem")?,
    /// )?;
    /// let pool = ClientPool::new(PoolConfig::builder().identity(identity).build())?;
    /// let status = pool.checkout()?.get("https://mesh.internal/health").send()?.status();
    /// # let _ = status;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn identity(mut self, identity: Identity) -> Self {
        self.0.identity = Some(identity);
        self
    }

    /// Keeps cookies in `jar` (feature `cookies`): one jar shared by every client
    /// ([`CookieJar::shared`](crate::CookieJar::shared)) or one per client
    /// ([`CookieJar::per_client`](crate::CookieJar::per_client)). Every response, redirect
    /// hops included, stores its `Set-Cookie` values; every request sends the jar's cookies
    /// for its URL under RFC 6265's domain, path and `Secure` rules, unless the request sets
    /// its own `Cookie` header, which then replaces the jar's for that request. Defaults to
    /// no jar: `Set-Cookie` is only passed to the caller.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{CookieJar, PoolConfig};
    ///
    /// let jar = CookieJar::shared();
    /// let config = PoolConfig::builder().cookie_store(jar.clone()).build();
    /// assert!(config.cookie_store().is_some());
    /// ```
    #[cfg(feature = "cookies")]
    pub fn cookie_store(mut self, jar: crate::cookies::CookieJar) -> Self {
        self.0.cookie_store = Some(jar);
        self
    }

    /// The most redirects one call follows before failing with
    /// [`ErrorKind::TooManyRedirects`]; 0 returns 3xx responses as they are. Defaults to 10.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// // Hand every 3xx response to the caller.
    /// let pool = ClientPool::new(PoolConfig::builder().max_redirects(0).build())?;
    /// assert_eq!(pool.config().max_redirects(), 0);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.0.max_redirects = n;
        self
    }

    /// Whether a redirect from https to http is followed. Defaults to false.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().allow_https_downgrade(true).build())?;
    /// assert!(pool.config().allow_https_downgrade());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn allow_https_downgrade(mut self, allow: bool) -> Self {
        self.0.allow_https_downgrade = allow;
        self
    }

    /// How long a resolved host name is cached, and how long a failed lookup is; zero does not
    /// cache. Defaults to 60 s and 5 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let ttl = (Duration::from_secs(300), Duration::from_secs(1));
    /// let pool = ClientPool::new(PoolConfig::builder().dns_ttl(ttl.0, ttl.1).build())?;
    /// assert_eq!(pool.config().dns_ttl(), ttl);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn dns_ttl(mut self, positive: Duration, negative: Duration) -> Self {
        self.0.dns_ttl = positive;
        self.0.dns_negative_ttl = negative;
        self
    }

    /// Sends connections for `host:port` to `addrs` instead of resolving `host` (curl's
    /// `--resolve host:port:addr`); the URL, the `Host` header and the name TLS verifies stay
    /// `host`'s. Addresses are tried in turn, alternating families. A second call for the same
    /// host and port replaces the first. Defaults to none.
    ///
    /// Through a proxy an override applies as in curl: to the proxy's own host name, and to the
    /// target's only where the client connects to the target itself (see [`Resolver`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let canary: IpAddr = "127.0.0.1".parse()?;
    /// let config = PoolConfig::builder()
    ///     .resolve("api.example.test", 443, [canary])
    ///     .build();
    /// let pool = ClientPool::new(config)?;
    /// # drop(pool);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resolve(
        mut self,
        host: &str,
        port: u16,
        addrs: impl IntoIterator<Item = std::net::IpAddr>,
    ) -> Self {
        self.0.names.pin(host, port, addrs.into_iter().collect());
        self
    }

    /// Resolves host names with `resolver` instead of the system resolver; its answers are
    /// cached for [`dns_ttl`](PoolConfigBuilder::dns_ttl). Overrides set with
    /// [`resolve`](PoolConfigBuilder::resolve) still come first, and IP literals are never
    /// resolved. Defaults to the system resolver.
    ///
    /// # Examples
    ///
    /// See [`Resolver`].
    pub fn resolver(mut self, resolver: impl Resolver) -> Self {
        self.0.names.set_custom(Arc::new(resolver));
        self
    }

    /// The retry policy of every call (a request can override it with
    /// [`RequestBuilder::retry`](crate::RequestBuilder::retry)). The policy's budget settings
    /// size the pool's per-host retry budget. Defaults to [`RetryPolicy::new`]: 3 attempts,
    /// idempotent requests only, full-jitter exponential backoff from 100 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig, RetryPolicy};
    ///
    /// let policy = RetryPolicy::new().with_max_attempts(5);
    /// let pool = ClientPool::new(PoolConfig::builder().retry(policy).build())?;
    /// assert_eq!(pool.config().retry().max_attempts(), 5);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.0.retry = policy;
        self
    }

    /// The per-host circuit breaker settings. Use [`BreakerConfig::disabled`] to turn breakers
    /// off. Defaults to [`BreakerConfig::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{BreakerConfig, ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().breaker(BreakerConfig::disabled()).build())?;
    /// assert!(!pool.config().breaker().is_enabled());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn breaker(mut self, config: BreakerConfig) -> Self {
        self.0.breaker = config;
        self
    }

    /// Paces requests by the servers' rate-limit headers (and an optional configured limit),
    /// one limiter per host or per host and API key, shared by every client of the pool.
    /// A request whose slot is past its deadline fails with
    /// [`ErrorKind::RateLimited`] without being sent. Defaults to no pacing.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, Pacing, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().pacing(Pacing::new()).build())?;
    /// assert!(pool.config().pacing().is_some());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn pacing(mut self, pacing: Pacing) -> Self {
        self.0.pacing = Some(pacing);
        self
    }

    /// Hedges slow replayable requests (see [`HedgePolicy`] for the rules and defaults):
    /// after the policy's delay a second copy goes out on one of the pool's hedge threads,
    /// on a client of its own, and the first response head wins; the loser's connection is
    /// closed. Off by default. Not applied through a proxy.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, HedgePolicy, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().hedge(HedgePolicy::new()).build())?;
    /// assert_eq!(pool.config().hedge().map(|h| h.max_extra()), Some(1));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn hedge(mut self, policy: HedgePolicy) -> Self {
        self.0.hedge = Some(policy);
        self
    }

    /// Learns a concurrency limit for each host (AIMD, see [`AdaptiveLimit`]), shared by every
    /// client of the pool: an attempt over its host's limit waits for a slot up to its call's
    /// deadline, then fails with [`ErrorKind::Overloaded`] without being sent. `fan_out`,
    /// [`FanOut`](crate::FanOut) and [`WorkerPool`](crate::WorkerPool) send through the pool's
    /// clients, so they are held to the limit too. Defaults to no limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{AdaptiveLimit, ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(
    ///     PoolConfig::builder().adaptive_concurrency(AdaptiveLimit::new()).build(),
    /// )?;
    /// assert_eq!(pool.config().adaptive_concurrency().unwrap().bounds(), (1, 200));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn adaptive_concurrency(mut self, limit: AdaptiveLimit) -> Self {
        self.0.adaptive_concurrency = Some(limit);
        self
    }

    /// What counts as a failure for the circuit breaker. Defaults to
    /// [`default_breaker_failure`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::breaker::{default_breaker_failure, AttemptOutcome};
    /// use http_sentinel::http::StatusCode;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// /// The defaults, plus 429: a host that throttles us is given a break too.
    /// fn failure_or_throttled(outcome: AttemptOutcome<'_>) -> bool {
    ///     matches!(outcome, AttemptOutcome::Status(StatusCode::TOO_MANY_REQUESTS))
    ///         || default_breaker_failure(outcome)
    /// }
    ///
    /// let config = PoolConfig::builder().breaker_failure(failure_or_throttled).build();
    /// let pool = ClientPool::new(config)?;
    /// let is_failure = pool.config().breaker_failure();
    /// assert!(is_failure(AttemptOutcome::Status(StatusCode::TOO_MANY_REQUESTS)));
    /// assert!(is_failure(AttemptOutcome::Status(StatusCode::SERVICE_UNAVAILABLE)));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn breaker_failure(mut self, predicate: FailurePredicate) -> Self {
        self.0.breaker_failure = predicate;
        self
    }

    /// Registers a handler for the pool's events (attempts, retries, breaker transitions,
    /// checkout waits, stale replays), replacing any previous one. Defaults to none.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use http_sentinel::events::RetryEvent;
    /// use http_sentinel::{ClientPool, EventHandler, PoolConfig};
    ///
    /// struct LogRetries;
    ///
    /// impl EventHandler for LogRetries {
    ///     fn on_retry(&self, event: &RetryEvent) {
    ///         eprintln!("retrying: {event:?}");
    ///     }
    /// }
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().event_handler(Arc::new(LogRetries)).build())?;
    /// assert!(pool.config().event_handler().is_some());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn event_handler(mut self, handler: Arc<dyn EventHandler>) -> Self {
        self.0.events = Some(Handler(handler));
        self
    }

    /// Keeps OpenTelemetry's HTTP client metrics, `http.client.request.duration` (one sample per
    /// request sent) and `http.client.open_connections`, with the semantic conventions'
    /// attributes; [`Stats::to_prometheus`](crate::Stats::to_prometheus) renders them as
    /// `http_client_request_duration_seconds` and `http_client_open_connections` next to its
    /// own families (see [`metrics::otel`](crate::metrics::otel)). Costs one uncontended lock
    /// per attempt. Defaults to off.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().otel_metrics(true).build())?;
    /// assert!(pool.config().otel_metrics());
    /// assert!(pool.stats().otel_request_durations().is_empty());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn otel_metrics(mut self, on: bool) -> Self {
        self.0.otel_metrics = on;
        self
    }

    /// Registers a hook that adds trace-propagation headers to every attempt (W3C
    /// `traceparent` with [`W3cPropagator`](crate::telemetry::W3cPropagator), or whatever a
    /// tracer propagates), replacing any previous one. Defaults to none.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use http_sentinel::telemetry::W3cPropagator;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::builder().propagator(Arc::new(W3cPropagator)).build())?;
    /// assert!(pool.config().propagator().is_some());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn propagator(mut self, propagator: Arc<dyn Propagator>) -> Self {
        self.0.propagator = Some(PropagatorHook(propagator));
        self
    }

    /// Applies `SENTINEL_*` overrides read through `get` (see [`PoolConfig::from_env`] for the
    /// variables). Variables `get` returns `None` for leave their setting as it is.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] naming the variable when a value is not a positive integer
    /// (or does not fit the setting). An environment value never makes a setter panic.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ErrorKind, PoolConfig};
    ///
    /// let env = |name: &str| (name == "SENTINEL_DEADLINE_MS").then(|| "2500".to_owned());
    /// let config = PoolConfig::builder().max_clients(4).env_overrides(env)?.build();
    /// assert_eq!(config.deadline(), Duration::from_millis(2500));
    /// assert_eq!(config.max_clients(), 4);
    ///
    /// let zero = |name: &str| (name == "SENTINEL_DEADLINE_MS").then(|| "0".to_owned());
    /// let err = PoolConfig::builder().env_overrides(zero).unwrap_err();
    /// assert!(matches!(err.kind(), ErrorKind::InvalidConfig(_)));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn env_overrides(mut self, get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        // Each value is validated here (a positive integer that fits the setting) before it
        // goes through the setter, so that no setter assertion can fire on environment input.
        type Apply = fn(PoolConfigBuilder, &str, &str) -> Result<PoolConfigBuilder, Error>;
        const OVERRIDES: [(&str, Apply); 7] = [
            ("SENTINEL_MAX_CLIENTS", |b, name, v| {
                Ok(b.max_clients(positive_usize(name, v)?))
            }),
            ("SENTINEL_MAX_IDLE_PER_HOST", |b, name, v| {
                Ok(b.max_idle_per_host(positive_usize(name, v)?))
            }),
            ("SENTINEL_DEADLINE_MS", |b, name, v| {
                Ok(b.deadline(Duration::from_millis(positive(name, v)?)))
            }),
            ("SENTINEL_CONNECT_TIMEOUT_MS", |b, name, v| {
                Ok(b.connect_timeout(Duration::from_millis(positive(name, v)?)))
            }),
            ("SENTINEL_CHECKOUT_TIMEOUT_MS", |b, name, v| {
                Ok(b.checkout_timeout(Duration::from_millis(positive(name, v)?)))
            }),
            ("SENTINEL_IDLE_AGE_MS", |b, name, v| {
                Ok(b.idle_age(Duration::from_millis(positive(name, v)?)))
            }),
            ("SENTINEL_BODY_LIMIT", |b, name, v| {
                Ok(b.body_limit(positive(name, v)?))
            }),
        ];
        for (name, apply) in OVERRIDES {
            if let Some(value) = get(name) {
                self = apply(self, name, &value)?;
            }
        }
        Ok(self)
    }

    /// Finishes the configuration. Never fails: impossible values were refused by the setters,
    /// and root certificates and the proxy URL are checked by
    /// [`ClientPool::new`](crate::ClientPool::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let config = PoolConfig::builder()
    ///     .max_clients(16)
    ///     .deadline(Duration::from_secs(10))
    ///     .build();
    /// let pool = ClientPool::new(config)?;
    /// assert_eq!(pool.config().max_clients(), 16);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn build(self) -> PoolConfig {
        self.0
    }
}

/// A default header's checked name and value, credentials marked sensitive.
fn default_pair(name: &str, value: &str) -> (HeaderName, HeaderValue) {
    let name = HeaderName::from_bytes(name.as_bytes())
        .unwrap_or_else(|_| panic!("default_header: {name:?} is not a valid header name"));
    let Ok(mut value) = HeaderValue::from_str(value) else {
        panic!("default_header: the value for {name:?} is not a valid header value");
    };
    if name == AUTHORIZATION || name == COOKIE || name == PROXY_AUTHORIZATION {
        value.set_sensitive(true);
    }
    (name, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_a_proxy_password() {
        let builder =
            PoolConfig::builder().proxy(Proxy::Url("http://user:hunter2@proxy.test:3128".into()));
        let config = builder.clone().build();
        for shown in [format!("{builder:?}"), format!("{config:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("http://***@proxy.test:3128"), "{shown}");
        }
    }

    #[test]
    fn env_overrides_apply_and_reject_garbage() {
        let env = |name: &str| match name {
            "SENTINEL_MAX_CLIENTS" => Some("12".to_owned()),
            "SENTINEL_DEADLINE_MS" => Some("1500".to_owned()),
            _ => None,
        };
        let c = PoolConfig::builder().env_overrides(env).unwrap().build();
        assert_eq!(c.max_clients(), 12);
        assert_eq!(c.deadline(), Duration::from_millis(1500));
        assert_eq!(c.connect_timeout(), Duration::from_secs(10));

        let bad = |name: &str| (name == "SENTINEL_MAX_CLIENTS").then(|| "0".to_owned());
        let err = PoolConfig::builder().env_overrides(bad).unwrap_err();
        assert!(err.to_string().contains("SENTINEL_MAX_CLIENTS"), "{err}");
    }

    #[test]
    #[should_panic(expected = "max_clients must be at least 1")]
    fn zero_clients_panic() {
        let _ = PoolConfig::builder().max_clients(0);
    }

    #[test]
    #[should_panic(expected = "deadline must be positive")]
    fn zero_deadline_panics() {
        let _ = PoolConfig::builder().deadline(Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "connect_timeout must be positive")]
    fn zero_connect_timeout_panics() {
        let _ = PoolConfig::builder().connect_timeout(Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "max_header_size must be at least 1")]
    fn zero_max_header_size_panics() {
        let _ = PoolConfig::builder().max_header_size(0);
    }

    #[test]
    #[should_panic(expected = "user_agent must be a valid header value")]
    fn user_agent_with_a_newline_panics() {
        let _ = PoolConfig::builder().user_agent("agent\r\nX-Injected: 1");
    }

    #[test]
    #[should_panic(expected = "user_agent must be a valid header value")]
    fn user_agent_with_a_nul_panics() {
        let _ = PoolConfig::builder().user_agent("agent\0");
    }

    #[test]
    fn legitimate_zero_and_edge_values_are_accepted() {
        let c = PoolConfig::builder()
            .checkout_timeout(Duration::ZERO)
            .max_idle_per_host(0)
            .max_idle(0)
            .idle_age(Duration::ZERO)
            .body_limit(0)
            .max_redirects(0)
            .dns_ttl(Duration::ZERO, Duration::ZERO)
            .user_agent("")
            .max_header_size(1)
            .buffer_sizes(0, 0)
            .build();
        assert_eq!(c.checkout_timeout(), Duration::ZERO);
        assert_eq!(c.max_idle_per_host(), 0);
        assert_eq!(c.max_idle(), 0);
        assert_eq!(c.idle_age(), Duration::ZERO);
        assert_eq!(c.body_limit(), 0);
        assert_eq!(c.max_redirects(), 0);
        assert_eq!(c.dns_ttl(), (Duration::ZERO, Duration::ZERO));
        assert_eq!(c.user_agent(), "");
        assert_eq!(c.max_header_size(), 1);
        assert_eq!(c.buffer_sizes(), (1024, 1024));
    }

    #[test]
    fn getters_return_what_the_setters_set() {
        struct Quiet;
        impl EventHandler for Quiet {}
        fn never(_: crate::breaker::AttemptOutcome<'_>) -> bool {
            false
        }
        let c = PoolConfig::builder()
            .max_idle(3)
            .idle_age(Duration::from_secs(7))
            .buffer_sizes(2048, 4096)
            .proxy(Proxy::FromEnv)
            .add_root_certificate(b"first")
            .add_root_certificate(b"second")
            .allow_https_downgrade(true)
            .dns_ttl(Duration::from_secs(1), Duration::from_secs(2))
            .breaker_failure(never)
            .event_handler(Arc::new(Quiet))
            .build();
        assert_eq!(c.max_idle(), 3);
        assert_eq!(c.idle_age(), Duration::from_secs(7));
        assert_eq!(c.buffer_sizes(), (2048, 4096));
        assert_eq!(c.proxy(), &Proxy::FromEnv);
        let roots: Vec<&[u8]> = c.root_certificates().collect();
        assert_eq!(roots, [&b"first"[..], &b"second"[..]]);
        assert!(c.allow_https_downgrade());
        assert_eq!(
            c.dns_ttl(),
            (Duration::from_secs(1), Duration::from_secs(2))
        );
        let status = ureq::http::StatusCode::INTERNAL_SERVER_ERROR;
        assert!(!(c.breaker_failure())(
            crate::breaker::AttemptOutcome::Status(status)
        ));
        assert!(c.event_handler().is_some());

        let d = PoolConfig::default();
        assert!((d.breaker_failure())(
            crate::breaker::AttemptOutcome::Status(status)
        ));
        assert!(d.event_handler().is_none());
        assert_eq!(d.root_certificates().len(), 0);
    }

    const ENV_VARS: [&str; 7] = [
        "SENTINEL_MAX_CLIENTS",
        "SENTINEL_MAX_IDLE_PER_HOST",
        "SENTINEL_DEADLINE_MS",
        "SENTINEL_CONNECT_TIMEOUT_MS",
        "SENTINEL_CHECKOUT_TIMEOUT_MS",
        "SENTINEL_IDLE_AGE_MS",
        "SENTINEL_BODY_LIMIT",
    ];

    #[test]
    fn impossible_env_values_are_invalid_config_not_panics() {
        let bad_values = [
            "0",
            " 0 ",
            "-1",
            "",
            "ten",
            "1.5",
            "18446744073709551616", // u64::MAX + 1
        ];
        for var in ENV_VARS {
            for bad in bad_values {
                let env = |name: &str| (name == var).then(|| bad.to_owned());
                let outcome = std::panic::catch_unwind(|| PoolConfig::builder().env_overrides(env));
                let result = outcome.unwrap_or_else(|_| panic!("{var}={bad:?} panicked"));
                let err = result.expect_err(&format!("{var}={bad:?} was accepted"));
                assert!(
                    matches!(err.kind(), ErrorKind::InvalidConfig(m) if m.contains(var)),
                    "{var}={bad:?}: {err}"
                );
            }
        }
    }

    #[test]
    fn env_values_go_through_the_setters() {
        let env = |name: &str| {
            ENV_VARS
                .contains(&name)
                .then(|| if name.ends_with("_MS") { "250" } else { "3" }.to_owned())
        };
        let c = PoolConfig::builder().env_overrides(env).unwrap().build();
        assert_eq!(c.max_clients(), 3);
        assert_eq!(c.max_idle_per_host(), 3);
        assert_eq!(c.deadline(), Duration::from_millis(250));
        assert_eq!(c.connect_timeout(), Duration::from_millis(250));
        assert_eq!(c.checkout_timeout(), Duration::from_millis(250));
        assert_eq!(c.idle_age(), Duration::from_millis(250));
        assert_eq!(c.body_limit(), 3);
    }
}
