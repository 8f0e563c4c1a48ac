//! Pool configuration: timeouts, pool sizes, buffers, limits, TLS roots, proxy, redirects.

use std::sync::Arc;
use std::time::Duration;

use crate::breaker::{default_breaker_failure, BreakerConfig, FailurePredicate};
use crate::error::{Error, ErrorKind};
use crate::events::EventHandler;
use crate::retry::RetryPolicy;

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
    pub(crate) max_redirects: u32,
    pub(crate) allow_https_downgrade: bool,
    pub(crate) dns_ttl: Duration,
    pub(crate) dns_negative_ttl: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) breaker: BreakerConfig,
    pub(crate) breaker_failure: FailurePredicate,
    pub(crate) events: Option<Handler>,
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
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Proxy {
    /// Connect directly; `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are ignored.
    None,
    /// Read `ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY` (and lowercase forms) and `NO_PROXY`
    /// once, when each client is created.
    FromEnv,
    /// Use this proxy, e.g. `http://user:pass@proxy:3128`.
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
            max_redirects: 10,
            allow_https_downgrade: false,
            dns_ttl: Duration::from_secs(60),
            dns_negative_ttl: Duration::from_secs(5),
            retry: RetryPolicy::new(),
            breaker: BreakerConfig::new(),
            breaker_failure: default_breaker_failure,
            events: None,
        }
    }
}

impl PoolConfig {
    /// A builder starting from the defaults.
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
    /// [`ErrorKind::InvalidConfig`] naming the variable when a value is not a positive integer.
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

    /// The most clients the pool creates.
    pub fn max_clients(&self) -> usize {
        self.max_clients
    }
    /// How long `checkout()` waits for a free client.
    pub fn checkout_timeout(&self) -> Duration {
        self.checkout_timeout
    }
    /// The overall deadline of one call.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
    /// The connect timeout of one attempt.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
    /// Idle connections kept per host by each client.
    pub fn max_idle_per_host(&self) -> usize {
        self.max_idle_per_host
    }
    /// The user agent sent when a request sets none.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }
    /// The response body limit in bytes.
    pub fn body_limit(&self) -> u64 {
        self.body_limit
    }
    /// The largest response header accepted, in bytes.
    pub fn max_header_size(&self) -> usize {
        self.max_header_size
    }
    /// The hop limit for redirects.
    pub fn max_redirects(&self) -> u32 {
        self.max_redirects
    }
    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }
    /// The circuit breaker settings.
    pub fn breaker(&self) -> &BreakerConfig {
        &self.breaker
    }
}

/// Builder for [`PoolConfig`]; setters consume and return it.
#[derive(Debug, Clone)]
pub struct PoolConfigBuilder(PoolConfig);

fn positive(name: &str, value: &str) -> Result<u64, Error> {
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::new(ErrorKind::InvalidConfig(format!(
            "{name} must be a positive integer, got {value:?}"
        )))),
    }
}

impl PoolConfigBuilder {
    /// The most clients (one per worker thread) the pool creates. Clients are created lazily.
    /// Defaults to 64.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn max_clients(mut self, n: usize) -> Self {
        assert!(n > 0, "max_clients must be at least 1");
        self.0.max_clients = n;
        self
    }

    /// How long [`ClientPool::checkout`](crate::ClientPool::checkout) waits for a free client
    /// before failing with [`ErrorKind::PoolTimeout`]. Defaults to 30 s.
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
    pub fn deadline(mut self, d: Duration) -> Self {
        assert!(!d.is_zero(), "deadline must be positive");
        self.0.deadline = d;
        self
    }

    /// The timeout for establishing one connection (TCP and TLS), within the deadline.
    /// Defaults to 10 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.0.connect_timeout = d;
        self
    }

    /// Idle keep-alive connections each client keeps per host. A worker sends one request at a
    /// time, so one or two are enough. Defaults to 2.
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.0.max_idle_per_host = n;
        self
    }

    /// Idle keep-alive connections each client keeps over all hosts. Defaults to 8.
    pub fn max_idle(mut self, n: usize) -> Self {
        self.0.max_idle = n;
        self
    }

    /// How long an idle connection may be kept for reuse. Defaults to 15 s.
    pub fn idle_age(mut self, d: Duration) -> Self {
        self.0.idle_age = d;
        self
    }

    /// The `User-Agent` sent when a request sets none. Defaults to `http-sentinel/<version>`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.0.user_agent = ua.into();
        self
    }

    /// Size of each connection's buffers in bytes: the input buffer's starting size (it grows on
    /// demand up to [`max_header_size`](Self::max_header_size) to hold a large response header,
    /// and shrinks back once it is read) and the output buffer's fixed size (it holds a request
    /// head, so it bounds the size of the headers a request can send). Small buffers keep an
    /// idle connection cheap: ureq's defaults are 128 KiB each. Defaults to 8 KiB and 8 KiB.
    pub fn buffer_sizes(mut self, input: usize, output: usize) -> Self {
        self.0.input_buffer = input.max(1024);
        self.0.output_buffer = output.max(1024);
        self
    }

    /// The largest response header accepted; a larger one fails with
    /// [`ErrorKind::HeaderTooLarge`]. Defaults to 64 KiB.
    pub fn max_header_size(mut self, n: usize) -> Self {
        self.0.max_header_size = n;
        self
    }

    /// The most bytes [`Response`](crate::Response) reads from a body (after decompression); more
    /// fails with [`ErrorKind::BodyTooLarge`]. Defaults to 10 MiB.
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.0.body_limit = bytes;
        self
    }

    /// The proxy to use. Proxies from the environment (`HTTP_PROXY` and friends) are ignored
    /// unless [`Proxy::FromEnv`] is chosen, so a deployment's environment cannot silently reroute
    /// (and observe) traffic. Defaults to [`Proxy::None`].
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.0.proxy = proxy;
        self
    }

    /// Trusts a private CA in addition to the webpki (Mozilla) roots. Takes a PEM or DER
    /// certificate; an unparsable one is rejected when the pool is built. Defaults to none.
    pub fn add_root_certificate(mut self, pem_or_der: impl AsRef<[u8]>) -> Self {
        self.0.extra_roots.push(Arc::from(pem_or_der.as_ref()));
        self
    }

    /// The most redirects one call follows before failing with
    /// [`ErrorKind::TooManyRedirects`]; 0 returns 3xx responses as they are. Defaults to 10.
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.0.max_redirects = n;
        self
    }

    /// Whether a redirect from https to http is followed. Defaults to false.
    pub fn allow_https_downgrade(mut self, allow: bool) -> Self {
        self.0.allow_https_downgrade = allow;
        self
    }

    /// How long a resolved host name is cached, and how long a failed lookup is.
    /// Defaults to 60 s and 5 s.
    pub fn dns_ttl(mut self, positive: Duration, negative: Duration) -> Self {
        self.0.dns_ttl = positive;
        self.0.dns_negative_ttl = negative;
        self
    }

    /// The retry policy of every call (a request can override it with
    /// [`RequestBuilder::retry`](crate::RequestBuilder::retry)). The policy's budget settings
    /// size the pool's per-host retry budget. Defaults to [`RetryPolicy::new`]: 3 attempts,
    /// idempotent requests only, full-jitter exponential backoff from 100 ms.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.0.retry = policy;
        self
    }

    /// The per-host circuit breaker settings. Defaults to [`BreakerConfig::new`]; use
    /// [`BreakerConfig::disabled`] to turn breakers off.
    pub fn breaker(mut self, config: BreakerConfig) -> Self {
        self.0.breaker = config;
        self
    }

    /// What counts as a failure for the circuit breaker. Defaults to
    /// [`default_breaker_failure`].
    pub fn breaker_failure(mut self, predicate: FailurePredicate) -> Self {
        self.0.breaker_failure = predicate;
        self
    }

    /// Registers a handler for the pool's events (attempts, retries, breaker transitions,
    /// checkout waits, stale replays). Defaults to none.
    pub fn event_handler(mut self, handler: Arc<dyn EventHandler>) -> Self {
        self.0.events = Some(Handler(handler));
        self
    }

    /// Applies `SENTINEL_*` overrides read through `get` (see [`PoolConfig::from_env`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] naming the variable when a value is not a positive integer.
    pub fn env_overrides(mut self, get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        type Apply = fn(&mut PoolConfig, u64);
        const OVERRIDES: [(&str, Apply); 7] = [
            ("SENTINEL_MAX_CLIENTS", |c, n| c.max_clients = n as usize),
            ("SENTINEL_MAX_IDLE_PER_HOST", |c, n| {
                c.max_idle_per_host = n as usize
            }),
            ("SENTINEL_DEADLINE_MS", |c, n| {
                c.deadline = Duration::from_millis(n)
            }),
            ("SENTINEL_CONNECT_TIMEOUT_MS", |c, n| {
                c.connect_timeout = Duration::from_millis(n)
            }),
            ("SENTINEL_CHECKOUT_TIMEOUT_MS", |c, n| {
                c.checkout_timeout = Duration::from_millis(n)
            }),
            ("SENTINEL_IDLE_AGE_MS", |c, n| {
                c.idle_age = Duration::from_millis(n)
            }),
            ("SENTINEL_BODY_LIMIT", |c, n| c.body_limit = n),
        ];
        for (name, apply) in OVERRIDES {
            if let Some(value) = get(name) {
                apply(&mut self.0, positive(name, &value)?);
            }
        }
        Ok(self)
    }

    /// Finishes the configuration.
    pub fn build(self) -> PoolConfig {
        self.0
    }
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
}
