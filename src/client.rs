//! `Client`: one ureq `Agent` owned by one worker at a time, the request builder and the
//! per-call engine (deadline, stale-connection replay, redirects).

use std::cell::{Cell, Ref, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_utils::CachePadded;
use ureq::http::header::{AUTHORIZATION, COOKIE, LOCATION, PROXY_AUTHORIZATION, RETRY_AFTER};
use ureq::http::{self, HeaderMap, HeaderName, HeaderValue, Method, Uri};
use ureq::{Agent, SendBody};

use crate::breaker::Admission;
use crate::config::AttemptOutcome;
use crate::error::{from_ureq, Error, ErrorKind, TimeoutPhase};
use crate::events::{AttemptEvent, BreakerEvent, RetryEvent, RetryReason, StaleReplayEvent};
use crate::metrics::{CallRecord, HostCounters, Recorder};
use crate::pool::{HostPolicy, Shared};
use crate::redirect;
use crate::retry::{parse_retry_after, RetryPolicy};
use crate::transport;

/// Hosts a client remembers before it starts over.
const MAX_CACHED_HOSTS: usize = 256;

/// FNV-1a for the client's host map: its keys are a few short `host:port` strings looked up
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

/// A client's view of one host.
struct HostLocal {
    policy: HostPolicy,
    counters: Arc<CachePadded<HostCounters>>,
}

/// What one call has done so far.
struct CallRun {
    deadline: Instant,
    /// When the last attempt ended (the call's start until one has).
    last_end: Instant,
    attempts: u32,
    retries: u32,
    refused: u32,
    stale_replays: u32,
    redirects: u32,
}

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
    agent: Agent,
    conns: Arc<transport::Connections>,
    // Whether ureq enforces the deadline (through a proxy) instead of the transport.
    ureq_timeouts: bool,
    pub(crate) shared: Arc<Shared>,
    // Set when the client's connection state is suspect; the pool then drops the client
    // instead of handing it out again. Being a `Cell` also makes `Client` `!Sync`.
    poisoned: Cell<bool>,
    hosts: RefCell<HashMap<String, HostLocal, BuildHostHasher>>,
    // The last URL authority seen (https?, authority) and its host key: a worker calling one
    // host again and again reuses the key instead of parsing host and port each time.
    last_host: RefCell<Option<(bool, String, String)>>,
    recorder: RefCell<Recorder>,
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
        let c = &shared.config;
        let proxy = match &c.proxy {
            crate::Proxy::None => None,
            crate::Proxy::FromEnv => ureq::Proxy::try_from_env(),
            // Validated when the pool was built.
            crate::Proxy::Url(u) => ureq::Proxy::new(u).ok(),
        };
        // The call's deadline and the connect timeout are enforced by the transport (see
        // `transport::Connections`); through a proxy, whose connections ureq makes itself,
        // ureq enforces them.
        let ureq_timeouts = proxy.is_some();
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .allow_non_standard_methods(true)
            .proxy(proxy)
            .user_agent(c.user_agent.as_str())
            .timeout_global(ureq_timeouts.then_some(c.deadline))
            .timeout_connect(ureq_timeouts.then_some(c.connect_timeout))
            .max_idle_connections(c.max_idle)
            .max_idle_connections_per_host(c.max_idle_per_host)
            .max_idle_age(c.idle_age)
            .input_buffer_size(c.input_buffer)
            .output_buffer_size(c.output_buffer)
            .max_response_header_size(c.max_header_size)
            .build();
        let conns = Arc::new(transport::Connections::new());
        #[cfg(feature = "fuzzing")]
        if let Some(script) = &shared.script {
            let agent = Agent::with_parts(
                config,
                transport::scripted::ScriptedConnector(script.clone()),
                transport::scripted::ScriptedResolver,
            );
            return Client::from_agent(agent, conns, shared, ureq_timeouts);
        }
        let agent = Agent::with_parts(
            config,
            transport::connector(
                shared.tls.clone(),
                conns.clone(),
                transport::BufferSizes {
                    input: c.input_buffer,
                    max_input: c.max_header_size,
                    output: c.output_buffer,
                },
                c.connect_timeout,
            ),
            transport::CachingResolver::new(c.dns_ttl, c.dns_negative_ttl, conns.clone()),
        );
        Client::from_agent(agent, conns, shared, ureq_timeouts)
    }

    fn from_agent(
        agent: Agent,
        conns: Arc<transport::Connections>,
        shared: Arc<Shared>,
        ureq_timeouts: bool,
    ) -> Client {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Client {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            agent,
            conns,
            ureq_timeouts,
            recorder: RefCell::new(shared.metrics.recorder()),
            shared,
            poisoned: Cell::new(false),
            hosts: RefCell::new(HashMap::default()),
            last_host: RefCell::new(None),
        }
    }

    /// A process-wide unique id for this client, stable while it lives: tells which client
    /// (and so which connections) served a worker.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How many connections this client has opened (TCP, plus TLS when https). Compared with
    /// the requests sent it tells how well connections are reused.
    pub fn connections_opened(&self) -> u64 {
        self.conns.opened()
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.get()
    }

    pub(crate) fn poison(&self) {
        self.poisoned.set(true);
    }

    /// Starts a GET request.
    pub fn get(&self, url: &str) -> RequestBuilder<'_> {
        self.request_method(Ok(Method::GET), url)
    }
    /// Starts a HEAD request.
    pub fn head(&self, url: &str) -> RequestBuilder<'_> {
        self.request_method(Ok(Method::HEAD), url)
    }
    /// Starts a POST request.
    pub fn post(&self, url: &str) -> RequestBuilder<'_> {
        self.request_method(Ok(Method::POST), url)
    }
    /// Starts a PUT request.
    pub fn put(&self, url: &str) -> RequestBuilder<'_> {
        self.request_method(Ok(Method::PUT), url)
    }
    /// Starts a PATCH request.
    pub fn patch(&self, url: &str) -> RequestBuilder<'_> {
        self.request_method(Ok(Method::PATCH), url)
    }
    /// Starts a DELETE request.
    pub fn delete(&self, url: &str) -> RequestBuilder<'_> {
        self.request_method(Ok(Method::DELETE), url)
    }

    /// Starts a request with any method. An invalid method name fails at
    /// [`send`](RequestBuilder::send) with [`ErrorKind::InvalidRequest`].
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
        self.request_method(method, url)
    }

    fn request_method(&self, method: Result<Method, Error>, url: &str) -> RequestBuilder<'_> {
        let mut b = RequestBuilder {
            client: self,
            method: Method::GET,
            url: url.to_owned(),
            query: String::new(),
            headers: HeaderMap::new(),
            sensitive: Vec::new(),
            body: Body::None,
            timeout: None,
            policy: None,
            error: None,
        };
        match method {
            Ok(m) => b.method = m,
            Err(e) => b.error = Some(e),
        }
        b
    }

    /// The host key of `uri` (see [`host_key`]), remembered for the last authority.
    fn host_key(&self, uri: &Uri) -> String {
        let https = uri.scheme_str() == Some("https");
        let authority = uri.authority().map_or("", |a| a.as_str());
        if let Some((h, a, key)) = &*self.last_host.borrow() {
            if *h == https && a == authority {
                return key.clone();
            }
        }
        let key = host_key(uri);
        *self.last_host.borrow_mut() = Some((https, authority.to_owned(), key.clone()));
        key
    }

    /// This client's cached view of `host`: the pool's breaker and retry budget, and this
    /// client's metrics shard. One map lookup per attempt; the pool's maps are touched only the
    /// first time this client meets a host.
    fn host(&self, key: &str) -> Ref<'_, HostLocal> {
        if let Ok(found) = Ref::filter_map(self.hosts.borrow(), |m| m.get(key)) {
            return found;
        }
        {
            let mut hosts = self.hosts.borrow_mut();
            // A crawler meets unbounded hosts: forget them rather than grow without bound (the
            // pool-wide breakers, budgets and metrics are unaffected).
            if hosts.len() >= MAX_CACHED_HOSTS {
                hosts.clear();
            }
            let policy = self.shared.host_policy(key);
            let counters = self.recorder.borrow_mut().host_arc(key);
            hosts.insert(key.to_owned(), HostLocal { policy, counters });
        }
        Ref::map(self.hosts.borrow(), |m| &m[key])
    }

    /// Runs one call: attempts, retries, stale-connection replay and redirects, all within one
    /// deadline, with the host's breaker and retry budget consulted and metrics recorded.
    fn execute(&self, mut call: Call) -> Result<Response, Error> {
        let started = Instant::now();
        let mut run = CallRun {
            deadline: transport::later(started, call.timeout),
            last_end: started,
            attempts: 0,
            retries: 0,
            refused: 0,
            stale_replays: 0,
            redirects: 0,
        };
        let own_policy = call.policy.take();
        let policy = own_policy.as_ref().unwrap_or(&self.shared.config.retry);
        // One host lookup per hop, one clock reading per attempt boundary: the call's start
        // serves the budget, the breaker and the first attempt, each attempt's end its record.
        let mut host = Some(self.host(&call.host));
        if let Some(h) = &host {
            h.policy.budget.record_request_at(started);
        }
        let outcome = self.attempts(&mut call, &mut run, policy, &mut host);
        let host = host.unwrap_or_else(|| self.host(&call.host));
        let c = &host.counters;
        c.record_call(&CallRecord {
            latency: run.last_end.saturating_duration_since(started),
            retries: run.retries,
            retries_refused: run.refused,
            stale_replays: run.stale_replays,
            redirects: run.redirects,
            outcome: outcome.as_ref().map(|r| r.status()).map_err(|e| e.class()),
        });
        match outcome {
            Ok(response) => Ok(Response::new(
                response,
                call,
                &run,
                c.clone(),
                self.shared.config.body_limit,
            )),
            Err(e) => Err(call.fail(e, run.attempts, run.redirects)),
        }
    }

    /// Runs the attempts of a call. `slot` holds the current hop's host (the caller looked up
    /// the first); it is emptied when a redirect leads elsewhere and filled again here.
    fn attempts<'a>(
        &'a self,
        call: &mut Call,
        run: &mut CallRun,
        policy: &RetryPolicy,
        slot: &mut Option<Ref<'a, HostLocal>>,
    ) -> Result<http::Response<ureq::Body>, Error> {
        let mut at_hop = 0u32;
        let mut stale_replayed = false;
        let mut carried = None;
        let mut backoff = None;
        loop {
            // The first attempt starts when the call did; later ones read the clock again.
            let attempt_started = if run.attempts == 0 && run.redirects == 0 {
                run.last_end
            } else {
                Instant::now()
            };
            let remaining = run.deadline.saturating_duration_since(attempt_started);
            if remaining.is_zero() {
                return Err(Error::new(ErrorKind::Timeout(TimeoutPhase::Deadline)));
            }
            let host = &**slot.get_or_insert_with(|| self.host(&call.host));
            let admission = carried
                .take()
                .unwrap_or_else(|| host.policy.breaker.admit_at(attempt_started));
            if let Admission::Rejected { retry_in } = admission {
                return Err(Error::new(ErrorKind::CircuitOpen { retry_in }));
            }
            run.attempts += 1;
            at_hop += 1;
            log::debug!("{} {}: attempt {at_hop}", call.method, call.host);
            // Through a proxy ureq enforces the deadline: its global timeout equals the
            // default deadline, so only later attempts and custom timeouts configure it.
            let ureq_timeout = (self.ureq_timeouts && (run.attempts > 1 || call.custom_timeout))
                .then_some(remaining);
            self.conns.set_deadline(run.deadline);
            let opened_before = self.conns.opened();
            let result = self.run_once(call, ureq_timeout);
            run.last_end = Instant::now();
            let took = run.last_end.saturating_duration_since(attempt_started);
            let opened = self.conns.opened() - opened_before;
            host.counters
                .record_attempt(took, opened, result.as_ref().ok().map(|r| r.status()));
            if let Some(h) = self.shared.events() {
                h.on_attempt(&AttemptEvent {
                    host: call.host.clone(),
                    attempt: at_hop,
                    duration: took,
                    outcome: result
                        .as_ref()
                        .map(|r| r.status().as_u16())
                        .map_err(|e| e.kind().clone()),
                    reused_connection: opened == 0,
                });
            }

            // Go's net/http rule: a request that died on a *reused* connection before any
            // response byte most likely hit a connection the server had closed while idle;
            // replay it once on a fresh connection, without counting an attempt or spending
            // budget, and without judging the host by it.
            if let Err(e) = &result {
                if opened == 0 && !stale_replayed && is_stale(e) && call.replayable() {
                    stale_replayed = true;
                    // Fresh means fresh: the idle siblings of a stale connection most likely
                    // went the same way, so none of them may carry the replay.
                    self.conns.retire_all();
                    run.attempts -= 1;
                    at_hop -= 1;
                    run.stale_replays += 1;
                    carried = Some(admission);
                    log::debug!(
                        "{} {}: stale pooled connection, replaying",
                        call.method,
                        call.host
                    );
                    if let Some(h) = self.shared.events() {
                        h.on_stale_replay(&StaleReplayEvent {
                            host: call.host.clone(),
                            method: call.method.to_string(),
                        });
                    }
                    continue;
                }
            }

            let outcome = match &result {
                Ok(r) => AttemptOutcome::Status(r.status().as_u16()),
                Err(e) => AttemptOutcome::Error(e),
            };
            let failed = (self.shared.config.breaker_failure)(outcome);
            if let Some(t) = host
                .policy
                .breaker
                .record_at(admission, !failed, run.last_end)
            {
                if let Some(h) = self.shared.events() {
                    h.on_breaker_transition(&BreakerEvent {
                        host: call.host.clone(),
                        from: t.from(),
                        to: t.to(),
                    });
                }
            }

            let (last, reason, server_wait) = match result {
                Err(e) => {
                    if e.is_protocol() {
                        self.poison();
                    }
                    if !retryable_error(&e, call.retryable(policy)) {
                        return Err(e);
                    }
                    let reason = RetryReason::Error(e.kind().clone());
                    (Err(e), reason, None)
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    if let Some(hop) = self.redirect(call, &response, run.redirects)? {
                        drain(response);
                        // The next hop may be another host.
                        *slot = None;
                        call.follow(hop)?;
                        run.redirects += 1;
                        at_hop = 0;
                        stale_replayed = false;
                        backoff = None;
                        continue;
                    }
                    if !(policy.is_retryable_status(status) && call.retryable(policy)) {
                        return Ok(response);
                    }
                    let wait = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    (Ok(response), RetryReason::Status(status), wait)
                }
            };
            if at_hop >= policy.get_max_attempts() {
                return last;
            }
            let too_long = |wait| {
                let status = last.as_ref().map_or(0, |r| r.status().as_u16());
                Error::new(ErrorKind::RetryAfterTooLong { wait, status })
            };
            let delay = match server_wait {
                Some(wait) => policy.retry_after_delay(wait).map_err(too_long)?,
                None => backoff
                    .get_or_insert_with(|| policy.backoff())
                    .next()
                    .unwrap_or_default(),
            };
            // Sleeps never overshoot the deadline: rather than sleep into it, give the caller
            // the last outcome now (or, for a server-requested wait, say how long it asked).
            if transport::later(Instant::now(), delay) >= run.deadline {
                return match server_wait {
                    Some(wait) => Err(too_long(wait)),
                    None => last,
                };
            }
            let budget = &slot
                .get_or_insert_with(|| self.host(&call.host))
                .policy
                .budget;
            if !budget.try_withdraw() {
                run.refused += 1;
                log::debug!(
                    "{}: retry budget spent, returning the last outcome",
                    call.host
                );
                return last;
            }
            log::warn!(
                "{} {}: attempt {at_hop} failed ({reason}); retrying in {delay:?}",
                call.method,
                call.host
            );
            if let Some(h) = self.shared.events() {
                h.on_retry(&RetryEvent {
                    host: call.host.clone(),
                    attempt: at_hop,
                    delay,
                    reason,
                    server_requested: server_wait.is_some(),
                });
            }
            if let Ok(response) = last {
                drain(response);
            }
            run.retries += 1;
            std::thread::sleep(delay);
        }
    }

    /// The next hop when `response` is a redirect to follow.
    fn redirect(
        &self,
        call: &Call,
        response: &http::Response<ureq::Body>,
        followed: u32,
    ) -> Result<Option<redirect::Hop>, Error> {
        let config = &self.shared.config;
        if config.max_redirects == 0 || !(300..400).contains(&response.status().as_u16()) {
            return Ok(None);
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok());
        let hop = redirect::next_hop(
            response.status().as_u16(),
            location,
            &call.uri,
            &call.method,
            config.allow_https_downgrade,
        )?;
        if hop.is_some() && followed >= config.max_redirects {
            return Err(Error::new(ErrorKind::TooManyRedirects(followed)));
        }
        Ok(hop)
    }

    fn run_once(
        &self,
        call: &mut Call,
        timeout: Option<Duration>,
    ) -> Result<http::Response<ureq::Body>, Error> {
        let mut builder = http::Request::builder()
            .method(call.method.clone())
            .uri(call.uri.clone());
        if let Some(h) = builder.headers_mut() {
            h.clone_from(&call.headers);
        }
        let result = match &mut call.body {
            Body::None => self.run(builder.body(()), timeout),
            Body::Bytes(b) => self.run(builder.body(&b[..]), timeout),
            Body::Stream(r) => match r.take() {
                Some(r) => self.run(builder.body(SendBody::from_owned_reader(r)), timeout),
                None => Err(Error::invalid(
                    "a streamed body was already sent and cannot be sent again",
                )),
            },
        };
        result.map_err(|e| e.with_host(&call.host))
    }

    fn run<S: ureq::AsSendBody>(
        &self,
        request: Result<http::Request<S>, http::Error>,
        timeout: Option<Duration>,
    ) -> Result<http::Response<ureq::Body>, Error> {
        let request = request.map_err(|e| Error::invalid(e.to_string()))?;
        let request = match timeout {
            Some(t) => self
                .agent
                .configure_request(request)
                .timeout_global(Some(t))
                .build(),
            None => request,
        };
        self.agent
            .run(request)
            .map_err(|e| from_ureq(e, true).deadline_as(TimeoutPhase::Response))
    }
}

/// A failure before any response byte on a connection that may have been closed while idle.
fn is_stale(e: &Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        ErrorKind::Io {
            kind: K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe,
            ..
        }
    )
}

/// Whether an attempt's error is worth another attempt. Connect failures are retried for any
/// method (nothing was sent, as urllib3 does); failures after the request may have been sent
/// only for requests that may be replayed. TLS, DNS, invalid input, limits, protocol violations
/// and redirect errors are never retried.
fn retryable_error(e: &Error, replayable: bool) -> bool {
    match e.kind() {
        ErrorKind::Connect(_)
        | ErrorKind::Timeout(TimeoutPhase::Connect | TimeoutPhase::Resolve) => true,
        ErrorKind::Io { .. }
        | ErrorKind::Timeout(TimeoutPhase::Send | TimeoutPhase::Response | TimeoutPhase::Body) => {
            replayable
        }
        _ => false,
    }
}

/// Reads a small redirect body to its end so the connection can be reused; a large one is
/// dropped with its connection instead.
fn drain(response: http::Response<ureq::Body>) {
    let mut body = response.into_body();
    let _ = std::io::copy(
        &mut body.with_config().limit(64 * 1024).reader(),
        &mut std::io::sink(),
    );
}

/// The request body of a call.
enum Body {
    None,
    /// Held as bytes, so it can be re-sent on a retry or a 307/308 redirect.
    Bytes(Arc<[u8]>),
    /// Sent once, never replayed.
    Stream(Option<Box<dyn Read + Send + 'static>>),
}

/// A validated request: what every attempt of the call is built from.
pub(crate) struct Call {
    method: Method,
    uri: Uri,
    host: String,
    headers: HeaderMap,
    sensitive: Vec<HeaderName>,
    body: Body,
    timeout: Duration,
    custom_timeout: bool,
    policy: Option<RetryPolicy>,
}

impl Call {
    /// Whether the policy allows sending this request again after a failed attempt.
    fn retryable(&self, policy: &RetryPolicy) -> bool {
        !matches!(self.body, Body::Stream(_))
            && policy.is_replayable(
                self.method.as_str(),
                self.headers.contains_key("idempotency-key"),
            )
    }

    fn fail(&self, e: Error, attempts: u32, redirects: u32) -> Error {
        e.with_host(&self.host).with_attempts(attempts, redirects)
    }

    /// Whether the request may be sent again after it possibly reached the server.
    fn replayable(&self) -> bool {
        let idempotent = matches!(
            self.method,
            Method::GET
                | Method::HEAD
                | Method::PUT
                | Method::DELETE
                | Method::OPTIONS
                | Method::TRACE
        ) || self.headers.contains_key("idempotency-key");
        idempotent && !matches!(self.body, Body::Stream(_))
    }

    fn follow(&mut self, hop: redirect::Hop) -> Result<(), Error> {
        if hop.keep_body && matches!(self.body, Body::Stream(_)) {
            return Err(Error::new(ErrorKind::RedirectRefused(
                "a streamed body cannot be re-sent to the redirect target".into(),
            )));
        }
        if !hop.keep_body {
            self.body = Body::None;
            self.headers.remove(http::header::CONTENT_TYPE);
            self.headers.remove(http::header::CONTENT_LENGTH);
        }
        if hop.cross_origin {
            // Removed for the rest of the chain: a later hop back to the first origin does not
            // get them back.
            for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION]
                .iter()
                .chain(&self.sensitive)
            {
                self.headers.remove(name);
            }
        }
        self.host = host_key(&hop.uri);
        self.method = hop.method;
        self.uri = hop.uri;
        Ok(())
    }
}

/// `host:port` (the port always written): the name of a host in metrics, breakers, budgets
/// and errors. Built by hand: `format!` costs more than the rest of a call's bookkeeping.
pub(crate) fn host_key(uri: &Uri) -> String {
    let host = uri.host().unwrap_or_default();
    let mut key = String::with_capacity(host.len() + 6);
    key.push_str(host);
    key.push(':');
    let port = redirect::port(uri);
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = port;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    key.extend(digits[i..].iter().map(|&d| char::from(d)));
    key
}

/// Builds one request; [`send`](RequestBuilder::send) runs it.
///
/// Invalid input (a malformed URL, a header with CR/LF/NUL) is remembered and reported by
/// `send` as [`ErrorKind::InvalidRequest`] before anything is sent.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let client = pool.checkout()?;
/// let response = client
///     .post("http://127.0.0.1:8080/orders")
///     .header("Idempotency-Key", "order-42")
///     .query("dry_run", "true")
///     .body("{\"qty\":1}")
///     .timeout(Duration::from_secs(2))
///     .send()?
///     .error_for_status()?;
/// println!("{}", response.text()?);
/// # Ok::<(), http_sentinel::Error>(())
/// ```
pub struct RequestBuilder<'c> {
    client: &'c Client,
    method: Method,
    url: String,
    query: String,
    headers: HeaderMap,
    sensitive: Vec<HeaderName>,
    body: Body,
    timeout: Option<Duration>,
    policy: Option<RetryPolicy>,
    error: Option<Error>,
}

impl fmt::Debug for RequestBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let secret = is_credential(k) || self.sensitive.contains(k);
                (
                    k.as_str(),
                    if secret {
                        "[redacted]"
                    } else {
                        v.to_str().unwrap_or("[binary]")
                    },
                )
            })
            .collect();
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("headers", &headers)
            .finish_non_exhaustive()
    }
}

fn is_credential(name: &HeaderName) -> bool {
    name == AUTHORIZATION || name == COOKIE || name == PROXY_AUTHORIZATION
}

/// Whether the authority ends in `:` and something other than a port number (the http crate
/// reads `u:pa` as host `u` without a port).
fn has_bad_port(uri: &Uri) -> bool {
    let Some(auth) = uri.authority().map(|a| a.as_str()) else {
        return false;
    };
    let host_port = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    match host_port.rsplit_once(':') {
        // After an IPv6 literal's `]`, or the `:`s inside it.
        Some((host, port)) if !port.contains(']') && !host.ends_with('[') => {
            !port.is_empty() && port.parse::<u16>().is_err()
        }
        _ => false,
    }
}

/// `url` with its userinfo (which may hold a password) replaced by `***`, safe to log or
/// print. A URL that does not read cleanly (it fails to parse, has a port that is not a
/// number, or a `#`: a password with a raw `/`, `?` or `#` in it) is hidden up to its last `@`.
///
/// # Examples
///
/// ```
/// use http_sentinel::redact_url;
///
/// assert_eq!(redact_url("https://u:secret@h.test/x"), "https://***@h.test/x");
/// assert_eq!(redact_url("http://u:pa/ss@h.test/"), "http://***@h.test/");
/// assert_eq!(redact_url("https://h.test/users/a@b"), "https://h.test/users/a@b");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(rest_at) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let clean = url
        .parse::<Uri>()
        .ok()
        .filter(|u| !url.contains('#') && !has_bad_port(u));
    let at = match clean
        .as_ref()
        .and_then(|u| u.authority())
        .map(|a| a.as_str())
    {
        // Hidden is what the parser (and so a request) takes for userinfo.
        Some(auth) if url[rest_at..].starts_with(auth) => auth.rfind('@').map(|i| rest_at + i),
        _ => url.rfind('@').filter(|&i| i >= rest_at),
    };
    match at {
        Some(at) => format!("{}***@{}", &url[..rest_at], &url[at + 1..]),
        None => url.to_owned(),
    }
}

impl<'c> RequestBuilder<'c> {
    fn set_error(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Adds a header. A name or value with CR, LF, NUL or other forbidden bytes makes `send`
    /// fail with [`ErrorKind::InvalidRequest`] without sending anything.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(mut v)) => {
                if is_credential(&n) || self.sensitive.contains(&n) {
                    v.set_sensitive(true);
                }
                self.headers.append(n, v);
            }
            (Err(_), _) => self.set_error(Error::invalid(format!("invalid header name {name:?}"))),
            // The value is not echoed: it may be a credential.
            (_, Err(_)) => self.set_error(Error::invalid(format!(
                "invalid value for header {name:?} (control character)"
            ))),
        }
        self
    }

    /// Marks a header (for example `X-Api-Key`) as a credential: it is redacted from `Debug`
    /// output and dropped on a cross-origin redirect, like `Authorization` and `Cookie`.
    pub fn sensitive_header(mut self, name: &str) -> Self {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) => {
                for v in self.headers.get_all(&n).iter() {
                    let _ = v;
                }
                if let http::header::Entry::Occupied(mut e) = self.headers.entry(&n) {
                    for v in e.iter_mut() {
                        v.set_sensitive(true);
                    }
                }
                self.sensitive.push(n);
            }
            Err(_) => self.set_error(Error::invalid(format!("invalid header name {name:?}"))),
        }
        self
    }

    /// Appends `key=value` to the query string, percent-encoded.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        if !self.query.is_empty() {
            self.query.push('&');
        }
        encode_into(&mut self.query, key);
        self.query.push('=');
        encode_into(&mut self.query, value);
        self
    }

    /// Sets the body from bytes or a string. The body is kept, so the request can be retried
    /// and re-sent on a 307/308 redirect.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Bytes(Arc::from(body.into()));
        self
    }

    /// Streams the body from a reader (sent chunked). A streamed request is sent once: it is
    /// never retried, replayed or re-sent on a 307/308 redirect.
    pub fn body_reader(mut self, reader: impl Read + Send + 'static) -> Self {
        self.body = Body::Stream(Some(Box::new(reader)));
        self
    }

    /// Serialises `value` as the JSON body and sets `Content-Type: application/json`.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(v) => {
                self.body = Body::Bytes(Arc::from(v));
                self.header("content-type", "application/json")
            }
            Err(e) => {
                self.set_error(Error::invalid(format!("json body: {e}")));
                self
            }
        }
    }

    /// Overrides the pool's retry policy for this call, e.g. [`RetryPolicy::none`] for a
    /// request that must be sent at most once.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Overrides the pool's overall deadline for this call.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Validates the request as `send` would, without sending it. For fuzzing only.
    #[cfg(feature = "fuzzing")]
    #[doc(hidden)]
    pub fn validate(self) -> Result<(), Error> {
        self.prepare().map(drop)
    }

    /// Sends the request and returns the response head; the body is read through
    /// [`Response`]. Non-2xx statuses are responses, not errors
    /// (see [`Response::error_for_status`]).
    ///
    /// # Errors
    ///
    /// Invalid input, DNS, connect, TLS, timeout, protocol and redirect failures, each as its
    /// [`ErrorKind`], with the host and the number of attempts.
    pub fn send(self) -> Result<Response, Error> {
        let client = self.client;
        let call = self.prepare()?;
        client.execute(call)
    }

    fn prepare(mut self) -> Result<Call, Error> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(Error::invalid("url contains a space or control character"));
        }
        let mut url = std::mem::take(&mut self.url);
        if !self.query.is_empty() {
            let sep = if url.contains('?') { '&' } else { '?' };
            url.push(sep);
            url.push_str(&self.query);
        }
        let uri: Uri = url
            .parse()
            .map_err(|_| Error::invalid(format!("malformed url {:?}", redact_url(&url))))?;
        // The scheme is checked before the userinfo is split off: `@e` parses as a bare
        // authority, and must not come out of the split as `http://e/`.
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(Error::invalid("url scheme must be http or https"));
        }
        let (uri, userinfo) = split_userinfo(uri)?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(Error::invalid("url has no host"));
        }
        // `http://u:pa/ss@h/` reads as host `u` with port `pa`: refuse it rather than send
        // anything to `u`.
        if has_bad_port(&uri) {
            return Err(Error::invalid("url has a port that is not a number"));
        }
        if let Some(userinfo) = userinfo {
            if !self.headers.contains_key(AUTHORIZATION) {
                let mut v = HeaderValue::from_str(&format!("Basic {}", base64(&userinfo)))
                    .map_err(|_| Error::invalid("invalid credentials in url"))?;
                v.set_sensitive(true);
                self.headers.insert(AUTHORIZATION, v);
            }
        }
        let config = &self.client.shared.config;
        Ok(Call {
            host: self.client.host_key(&uri),
            method: self.method,
            uri,
            headers: self.headers,
            sensitive: self.sensitive,
            body: self.body,
            timeout: self.timeout.unwrap_or(config.deadline),
            custom_timeout: self.timeout.is_some(),
            policy: self.policy,
        })
    }
}

/// Takes `user:pass@` out of a parsed URL's authority, percent-decoded, so it travels only as
/// an `Authorization` header (subject to the cross-origin rules) and never in a `Host` header
/// or a log line. It works on what the URL parser took for the authority, so a password with
/// an odd character cannot be left half in the URL.
fn split_userinfo(uri: Uri) -> Result<(Uri, Option<Vec<u8>>), Error> {
    let Some((info, host)) = uri.authority().and_then(|a| a.as_str().rsplit_once('@')) else {
        return Ok((uri, None));
    };
    let Some(scheme) = uri.scheme_str() else {
        return Err(Error::invalid("url scheme must be http or https"));
    };
    let info = percent_decode(info);
    let rest = uri.path_and_query().map_or("/", |p| p.as_str());
    let bare = format!("{scheme}://{host}{rest}")
        .parse()
        .map_err(|_| Error::invalid("malformed url"))?;
    Ok((bare, Some(info)))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encodes everything outside RFC 3986's unreserved set.
fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(
                char::from_digit((b >> 4) as u32, 16)
                    .unwrap_or('0')
                    .to_ascii_uppercase(),
            );
            out.push(
                char::from_digit((b & 15) as u32, 16)
                    .unwrap_or('0')
                    .to_ascii_uppercase(),
            );
        }
    }
}

/// A response: status and headers are here; the body is read with [`text`](Response::text),
/// [`bytes`](Response::bytes) or [`into_reader`](Response::into_reader), within the pool's
/// body limit and the call's deadline. Read the body to its end for the connection to be reused.
pub struct Response {
    status: u16,
    headers: HeaderMap,
    uri: Uri,
    host: String,
    attempts: u32,
    redirects: u32,
    body: ureq::Body,
    limit: u64,
    counters: Arc<CachePadded<HostCounters>>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("url", &self.uri)
            .field("attempts", &self.attempts)
            .field("redirects", &self.redirects)
            .finish_non_exhaustive()
    }
}

impl Response {
    fn new(
        response: http::Response<ureq::Body>,
        call: Call,
        run: &CallRun,
        counters: Arc<CachePadded<HostCounters>>,
        limit: u64,
    ) -> Response {
        let (parts, body) = response.into_parts();
        Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            uri: call.uri,
            host: call.host,
            attempts: run.attempts,
            redirects: run.redirects,
            body,
            limit,
            counters,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// All response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The first value of a header, when it is valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The URL that answered, after redirects (never holds credentials).
    pub fn url(&self) -> String {
        self.uri.to_string()
    }

    /// How many attempts the call made (1 when it succeeded first time).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// How many redirects the call followed.
    pub fn redirects(&self) -> u32 {
        self.redirects
    }

    /// Turns a 4xx or 5xx status into [`ErrorKind::Status`]. The body is dropped.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Status`] for 400..=599.
    pub fn error_for_status(self) -> Result<Response, Error> {
        if (400..600).contains(&self.status) {
            Err(Error::new(ErrorKind::Status(self.status))
                .with_host(&self.host)
                .with_attempts(self.attempts, self.redirects))
        } else {
            Ok(self)
        }
    }

    fn body_error(&self, e: ureq::Error) -> Error {
        from_ureq(e, true)
            .deadline_as(TimeoutPhase::Body)
            .with_host(&self.host)
            .with_attempts(self.attempts, self.redirects)
    }

    /// Reads the whole body as bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BodyTooLarge`] past the body limit; timeouts, truncation and framing errors
    /// as their kinds. A truncated body is never returned as a success.
    pub fn bytes(mut self) -> Result<Vec<u8>, Error> {
        let limit = self.limit;
        let r = self.body.with_config().limit(limit).read_to_vec();
        let bytes = r.map_err(|e| self.body_error(e))?;
        self.counters.record_body_bytes(bytes.len() as u64);
        Ok(bytes)
    }

    /// Reads the whole body as UTF-8 text (invalid sequences replaced).
    ///
    /// # Errors
    ///
    /// As [`bytes`](Response::bytes).
    pub fn text(self) -> Result<String, Error> {
        self.bytes().map(|b| {
            String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        })
    }

    /// Deserialises the body as JSON.
    ///
    /// # Errors
    ///
    /// As [`bytes`](Response::bytes), or [`ErrorKind::Protocol`] when the body is not valid JSON
    /// for `T`.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        let host = self.host.clone();
        let bytes = self.bytes()?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(ErrorKind::Protocol)
                .with_host(&host)
                .with_source(e)
        })
    }

    /// The body as a reader, limited to the body limit. Errors surface as `io::Error`s whose
    /// inner error is the crate's [`Error`].
    pub fn into_reader(self) -> impl Read + Send + 'static {
        BodyReader {
            inner: self.body.into_with_config().limit(self.limit).reader(),
            host: self.host,
            counters: self.counters,
        }
    }
}

struct BodyReader {
    inner: ureq::BodyReader<'static>,
    host: String,
    counters: Arc<CachePadded<HostCounters>>,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // ureq hands out its own errors wrapped in an io::Error and plain io errors (a
        // truncated body's UnexpectedEof) as they are: both become the crate's Error, wrapped
        // in an io::Error of the matching kind.
        let n = self.inner.read(buf).map_err(|e| {
            let e = from_ureq(ureq::Error::from(e), true).deadline_as(TimeoutPhase::Body);
            std::io::Error::from(e.with_host(&self.host))
        })?;
        self.counters.record_body_bytes(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_always_name_the_port() {
        for (url, key) in [
            ("http://a.test/x", "a.test:80"),
            ("https://a.test/", "a.test:443"),
            ("http://127.0.0.1:8/", "127.0.0.1:8"),
            ("http://h.test:65535/", "h.test:65535"),
            ("http://h.test:0/", "h.test:0"),
            ("http://[::1]:18080/", "[::1]:18080"),
        ] {
            assert_eq!(host_key(&url.parse().unwrap()), key, "{url}");
        }
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn userinfo_is_split_out_and_decoded() {
        let split = |url: &str| split_userinfo(url.parse().unwrap()).unwrap();
        let (uri, info) = split("http://us%40er:p%3Ass@h.test:8/p?q@x");
        assert_eq!(uri, "http://h.test:8/p?q@x");
        assert_eq!(info.unwrap(), b"us@er:p:ss");
        assert_eq!(split("http://h.test/a@b").1, None);
        // Whatever the parser takes for userinfo goes.
        let (uri, info) = split("http://u:p:w@h.test/x");
        assert_eq!(
            (uri.host(), info.as_deref()),
            (Some("h.test"), Some(&b"u:p:w"[..]))
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://u:secret@h.test/x"),
            "https://***@h.test/x"
        );
        assert_eq!(redact_url("https://h.test/x@y"), "https://h.test/x@y");
        assert_eq!(
            redact_url("https://h.test/?email=a@b.c"),
            "https://h.test/?email=a@b.c"
        );
        // Passwords with a raw '#', '/' or '?' (URLs that do not parse) stay hidden.
        for (url, want) in [
            ("http://u:p#ss@h.test/", "http://***@h.test/"),
            ("http://u:pa/ss@h.test/x", "http://***@h.test/x"),
            ("http://u:p?ss@h.test/", "http://***@h.test/"),
            ("http://u:a@b#c@h.test/", "http://***@h.test/"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
        assert_eq!(redact_url("no scheme u:p@h"), "no scheme u:p@h");
    }

    #[test]
    fn query_encoding_is_rfc_3986() {
        let mut s = String::new();
        encode_into(&mut s, "a b&c=d/é~");
        assert_eq!(s, "a%20b%26c%3Dd%2F%C3%A9~");
    }
}
