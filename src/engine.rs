//! The per-call engine: one call's attempts, stale-connection replay, redirects and retries,
//! all within one deadline. This is the file to read when a call misbehaves.
//!
//! One call is a loop of phases, each a function below:
//!
//! ```text
//! execute
//!   loop:
//!     attempt    deadline left? -> admit (the host's breaker) -> send -> record (metrics, event)
//!                (a retry the breaker refuses ends the call with the outcome it was for)
//!     replay     died on a stale pooled connection? once more on a fresh one, for free
//!     judge      the breaker learns the attempt's outcome
//!     classify   Done | Redirect(hop) | Retry(reason)
//!     plan       RetryPolicy::decide: wait, or stop (attempts, Retry-After, deadline, budget)
//!     sleep      bounded by the deadline (plan never sleeps into it)
//!   finish       metrics of the call; Response or Error with host and attempts
//! ```
//!
//! Each new capability is a layer at one of these phases, not a branch inside a long loop.

use std::cell::{Cell, Ref};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ureq::http::header::{HOST, LOCATION};
use ureq::http::{self, HeaderValue, StatusCode};
use ureq::{Agent, SendBody};

use crate::breaker::{Admission, AttemptOutcome, BreakerState, Transition};
use crate::call::{Body, Call};
use crate::concurrency::{Permit, Sample};
use crate::cookies::ClientJar;
use crate::error::{from_ureq, Error, ErrorKind, TimeoutPhase};
use crate::events::{
    AttemptEvent, BreakerEvent, HedgeEvent, HedgeOutcome, PacedEvent, RetryEvent, RetryReason,
    StaleReplayEvent,
};
use crate::hedge::race::Race;
use crate::hedge::threads::Local;
use crate::metrics::otel::{self, DurationShard};
use crate::metrics::CallRecord;
use crate::pacing;
use crate::redirect::{self, Hop, RedirectHop};
use crate::request_id::new_request_id;
use crate::response::{server_request_id, ConnectionFacts, Finished, Response, StreamParts};
use crate::retry::{later, RetryBudget, RetryDecision, RetryPolicy, RetryState, StopReason};
use crate::shared::{HostKey, HostLocal, LocalHosts, Shared};
use crate::target::UrlCache;
use crate::telemetry::spans::{self, Target};
use crate::telemetry::{AttemptTimings, PropagationContext, TraceIds};
use crate::transport::{self, Connections};
use crate::url::redact_uri;

type HttpResponse = http::Response<ureq::Body>;

/// The host under which requests whose URL did not parse are counted.
pub(crate) const NO_HOST: &str = "-";

/// One client's engine: its ureq agent and connections, and its view of the pool's state.
pub(crate) struct Engine {
    agent: Agent,
    conns: Arc<Connections>,
    // Whether ureq enforces the deadline (through a proxy) instead of the transport.
    ureq_timeouts: bool,
    // The proxy's NO_PROXY list, or why nothing may be sent.
    route: transport::Route,
    shared: Arc<Shared>,
    // Set when the client's connection state is suspect; the pool then drops the client
    // instead of handing it out again. Being a `Cell` also makes the engine `!Sync`.
    discard: Cell<bool>,
    // Set while `execute` runs: code called back from inside a call (an event handler) must
    // not start another call on this engine.
    in_call: Cell<bool>,
    hosts: LocalHosts,
    // The last URL this client parsed, for a worker that calls one URL again and again.
    urls: UrlCache,
    // This client's `http.client.request.duration` series, when the pool keeps them.
    otel: Option<Arc<DurationShard>>,
    // The pool's cookie jar or this client's own (feature `cookies`; nothing without it).
    cookies: ClientJar,
}

/// What one call has done so far.
struct CallState {
    started: Instant,
    deadline: Instant,
    /// When the last attempt ended (the call's start until one has).
    last_end: Instant,
    /// From the call's start to `last_end`.
    elapsed: Duration,
    attempts: u32,
    /// Retries sent: one the breaker refused is none.
    retries: u32,
    /// Retries warranted but not sent: the budget was spent or the breaker open.
    refused: u32,
    stale_replays: u32,
    redirects: u32,
    /// Response header bytes of the redirect chain so far (see `charge_head`).
    header_bytes: usize,
    /// Requests sent so far, every kind of resend included.
    sends: u32,
    /// The last attempt's timings.
    timings: AttemptTimings,
    /// The call's W3C ids, when a propagator is set.
    trace: Option<TraceIds>,
    /// The redirects followed so far, redacted.
    history: Vec<RedirectHop>,
}

/// What the attempts at one URL (one hop of a redirect chain) have done so far.
struct HopState {
    retries: RetryState,
    stale_replayed: bool,
    /// The breaker's admission of an attempt that is replayed: the replay uses it, so the
    /// breaker hears of the attempt once.
    carried: Option<Admission>,
    /// The outcome a retry was planned after, kept (a response undrained) until the retry is
    /// admitted: if the breaker refuses it, the call returns this outcome, which is what
    /// happened, rather than a `CircuitOpen` for an attempt that never went out.
    pending: Option<Outcome>,
}

/// How an attempt, or the call, ended.
type Outcome = Result<HttpResponse, Error>;

/// How a call ends without sending its next attempt; boxed, as that is the rare path.
type Ended = Box<Outcome>;

/// One attempt as sent.
struct Sent {
    admission: Admission,
    result: Result<HttpResponse, Error>,
    connections_opened: u64,
    /// The attempt's slot of the host's concurrency limit, given back once the outcome is
    /// known (see `limit_feedback`).
    permit: Option<Permit>,
}

/// A failed attempt that the policy may retry.
struct Retry {
    last: Result<HttpResponse, Error>,
    reason: RetryReason,
    server_wait: Option<Duration>,
}

/// What an attempt's outcome means for the call.
enum Step {
    Done(HttpResponse),
    Redirect(HttpResponse, Hop),
    Retry(Retry),
}

/// What the retry plan says.
enum Plan {
    Sleep(Duration, Retry),
    Stop(Result<HttpResponse, Error>),
}

impl CallState {
    fn start(timeout: Duration) -> CallState {
        let started = Instant::now();
        CallState {
            started,
            deadline: later(started, timeout),
            last_end: started,
            elapsed: Duration::ZERO,
            attempts: 0,
            retries: 0,
            refused: 0,
            stale_replays: 0,
            redirects: 0,
            header_bytes: 0,
            sends: 0,
            timings: AttemptTimings::default(),
            trace: None,
            history: Vec::new(),
        }
    }

    /// When the next attempt starts: the first one when the call did, later ones now.
    fn attempt_start(&self) -> Instant {
        if self.attempts == 0 && self.redirects == 0 {
            self.last_end
        } else {
            Instant::now()
        }
    }
}

impl HopState {
    fn new(deadline: Instant) -> HopState {
        HopState {
            retries: RetryState::new(Some(deadline)),
            stale_replayed: false,
            carried: None,
            pending: None,
        }
    }
}

impl Engine {
    pub(crate) fn new(shared: Arc<Shared>) -> Engine {
        let otel = shared.config.otel_metrics;
        let conns = match shared.config.hedge {
            Some(_) => Connections::new().abortable(),
            None => Connections::new(),
        };
        let conns = Arc::new(match otel {
            true => conns.with_open_gauges(shared.metrics.otel.clone()),
            false => conns,
        });
        let transport::ClientAgent {
            agent,
            ureq_timeouts,
            route,
        } = transport::agent(
            &shared.config,
            &shared.tls,
            &conns,
            #[cfg(feature = "fuzzing")]
            shared.script.as_ref(),
        );
        Engine {
            agent,
            conns,
            ureq_timeouts,
            route,
            hosts: LocalHosts::new(&shared),
            urls: UrlCache::default(),
            otel: otel.then(|| shared.metrics.otel.shard()),
            cookies: shared.config.client_jar(),
            shared,
            discard: Cell::new(false),
            in_call: Cell::new(false),
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn connections_opened(&self) -> u64 {
        self.conns.opened()
    }

    /// This client's cookie jar: the pool's shared one or its own.
    #[cfg(feature = "cookies")]
    pub(crate) fn cookie_jar(&self) -> Option<crate::cookies::CookieJar> {
        self.cookies.handle()
    }

    /// Marks the client for discarding when it is returned to the pool.
    pub(crate) fn discard_on_return(&self) {
        self.discard.set(true);
    }

    pub(crate) fn should_discard(&self) -> bool {
        self.discard.get()
    }

    /// Whether a call is running on this engine (so the caller is one of its callbacks).
    pub(crate) fn in_call(&self) -> bool {
        self.in_call.get()
    }

    /// The `host:port` key of `uri`, remembered for the last authority.
    pub(crate) fn host_key(&self, uri: &http::Uri) -> HostKey {
        self.hosts.key(uri)
    }

    /// The last URL this client parsed.
    pub(crate) fn urls(&self) -> &UrlCache {
        &self.urls
    }

    fn host(&self, key: &HostKey) -> Ref<'_, HostLocal> {
        self.hosts.get(&self.shared, key)
    }

    /// Runs one call: attempts, retries, stale-connection replay and redirects, all within one
    /// deadline, with the host's breaker and retry budget consulted and metrics recorded.
    pub(crate) fn execute(&self, call: &mut Call) -> Result<Response, Error> {
        let _running = InCall::enter(&self.in_call);
        if let Some((name, _)) = &self.shared.config.request_ids {
            if !call.headers.contains_key(name) {
                let id = HeaderValue::from_str(&new_request_id()).expect("hex digits and dashes");
                call.headers.insert(name.clone(), id);
            }
        }
        let own_policy = call.policy.take();
        let policy = own_policy.as_ref().unwrap_or(&self.shared.config.retry);
        let mut state = CallState::start(call.timeout);
        let span = spans::call(&Target {
            method: &call.method,
            uri: &call.uri,
        });
        if self.shared.config.propagator.is_some() {
            state.trace = Some(TraceIds::for_call());
            span.trace(state.trace.as_ref());
        }
        // One host lookup per hop, one clock reading per attempt boundary: the call's start
        // serves the budget, the breaker and the first attempt, each attempt's end its record.
        let mut slot = Some(self.host(&call.host));
        if let Some(h) = &slot {
            h.policy.budget.record_request_at(state.started);
            if let Some(hedge) = &h.policy.hedge {
                hedge.budget.record_request_at(state.started);
            }
        }
        let outcome = self.call_loop(call, &mut state, policy, &mut slot);
        span.outcome(span_outcome(&outcome));
        let host = slot.unwrap_or_else(|| self.host(&call.host));
        self.finish(call, &mut state, &host, outcome)
    }

    /// The phases, hop after hop and attempt after attempt. `slot` holds the current hop's
    /// host; it is emptied when a redirect leads elsewhere and filled again on first use.
    fn call_loop<'a>(
        &'a self,
        call: &mut Call,
        state: &mut CallState,
        policy: &RetryPolicy,
        slot: &mut Option<Ref<'a, HostLocal>>,
    ) -> Result<HttpResponse, Error> {
        let mut hop = HopState::new(state.deadline);
        loop {
            let host = &**slot.get_or_insert_with(|| self.host(&call.host));
            let mut sent = match self.attempt(call, state, &mut hop, host) {
                Ok(sent) => sent,
                Err(ended) => return *ended,
            };
            if self.replay_if_stale(call, state, &mut hop, &sent) {
                continue;
            }
            limit_feedback(&mut sent, state.timings.total());
            self.judge(call, host, &sent, state.last_end);
            match self.classify(call, state, policy, sent.result)? {
                Step::Done(response) => return Ok(response),
                Step::Redirect(response, next) => {
                    state.history.push(RedirectHop {
                        status: response.status(),
                        url: redact_uri(call.uri.clone(), &call.sensitive_query),
                    });
                    drain(response);
                    // The next hop may be another host.
                    *slot = None;
                    call.follow(next)?;
                    state.redirects += 1;
                    hop = HopState::new(state.deadline);
                }
                Step::Retry(retry) => {
                    let host = slot.get_or_insert_with(|| self.host(&call.host));
                    match self.plan(call, state, policy, &mut hop, &host.policy.budget, retry) {
                        Plan::Sleep(delay, retry) => self.sleep(call, &mut hop, delay, retry),
                        Plan::Stop(outcome) => return outcome,
                    }
                }
            }
        }
    }

    /// Admits and sends one attempt, and records it. `Err` is how the call ends without it:
    /// out of time, refused by pacing, or refused by the breaker (with the outcome a refused
    /// retry was for).
    fn attempt(
        &self,
        call: &mut Call,
        state: &mut CallState,
        hop: &mut HopState,
        host: &HostLocal,
    ) -> Result<Sent, Ended> {
        let mut started = state.attempt_start();
        let replay = hop.carried.is_some();
        if !replay {
            started = self
                .pace(call, state, host)
                .map_err(|e| Box::new(Err(e)))?
                .unwrap_or(started);
        }
        let (permit, started) = self
            .take_slot(call, state, host, started)
            .map_err(|e| Box::new(Err(e)))?;
        let admission = self.admission(call, state, hop, host, started)?;
        state.attempts += 1;
        let number = hop.retries.begin_attempt();
        // A retry counts when it is sent, not when it is planned; a replay is the same attempt.
        if number > 1 && !replay {
            state.retries += 1;
        }
        if let Some((_, name)) = &self.shared.config.request_ids {
            call.headers
                .insert(name.clone(), HeaderValue::from(state.retries));
        }
        log::debug!("{} {}: attempt {number}", call.method, call.host);
        // Through a proxy ureq enforces the deadline: its global timeout equals the default
        // deadline, so only the first send of a call with the default deadline may leave it
        // alone; any later send (a retry, a redirect hop, a stale replay) gets what is left.
        let first_send = state.attempts == 1 && state.redirects == 0 && state.stale_replays == 0;
        let ureq_timeout = (self.ureq_timeouts && (!first_send || call.custom_timeout))
            .then(|| state.deadline.saturating_duration_since(started));
        self.conns.set_deadline(state.deadline);
        self.conns.clock().reset();
        let opened_before = self.conns.opened();
        let target = Target {
            method: &call.method,
            uri: &call.uri,
        };
        let span = spans::attempt(&target, state.sends);
        if let Some(ids) = &mut state.trace {
            ids.next_attempt();
            span.ids(Some(ids));
        }
        let resend_count = state.sends;
        state.sends += 1;
        let result =
            span.in_scope(|| self.send_hedged(call, ureq_timeout, state, resend_count, host));
        state.last_end = Instant::now();
        let took = state.last_end.saturating_duration_since(started);
        // A first attempt that waited for nothing started with the call.
        state.elapsed = if started == state.started {
            took
        } else {
            state.last_end.saturating_duration_since(state.started)
        };
        let connections_opened = self.conns.opened() - opened_before;
        let connected = got_connection(&result);
        let reused = connected && connections_opened == 0;
        state.timings = self.conns.clock().read(started, number, reused, took);
        span.outcome(span_outcome(&result));
        let status = result.as_ref().ok().map(|r| r.status());
        host.counters
            .record_attempt(took, connections_opened, connected, status);
        self.record_attempt(call, &result, &state.timings);
        Ok(Sent {
            admission,
            result,
            connections_opened,
            permit,
        })
    }

    /// The breaker's admission of the next attempt (a replay's is carried over), unless the
    /// deadline has passed. A retry the breaker refuses ends the call with the outcome the
    /// retry was planned after (see `HopState::pending`), counted as a refused retry; a first
    /// attempt it refuses is `CircuitOpen`.
    fn admission(
        &self,
        call: &Call,
        state: &mut CallState,
        hop: &mut HopState,
        host: &HostLocal,
        started: Instant,
    ) -> Result<Admission, Ended> {
        if started >= state.deadline {
            // A replay that runs out of time still holds its attempt's admission: a half-open
            // breaker's probe must end with a verdict, or no other probe is let through until
            // its lease expires. Not knowing is not health: the probe counts as failed.
            if let Some(carried) = hop.carried.take() {
                host.policy.breaker.record_at(carried, false, started);
            }
            return Err(Box::new(Err(Error::new(ErrorKind::Timeout(
                TimeoutPhase::Deadline,
            )))));
        }
        let admission = match hop.carried.take() {
            Some(carried) => carried,
            None => self.admit(call, host, started),
        };
        if let Admission::Rejected { retry_in } = admission {
            return Err(Box::new(match hop.pending.take() {
                Some(outcome) => {
                    state.refused += 1;
                    log::debug!(
                        "{}: breaker open, retry refused, returning the last outcome",
                        call.host
                    );
                    outcome
                }
                None => Err(Error::new(ErrorKind::CircuitOpen { retry_in })),
            }));
        }
        // Admitted: the outcome the retry was planned after is no longer the call's, and its
        // connection goes back to the pool before the retry picks one.
        if let Some(Ok(response)) = hop.pending.take() {
            drain(response);
        }
        Ok(admission)
    }

    /// Admission by the host's adaptive concurrency limit, before the breaker's (so a probe's
    /// admission is never held while waiting): a slot, waiting for one up to the deadline.
    /// Returns the slot and when the attempt starts.
    fn take_slot(
        &self,
        call: &Call,
        state: &CallState,
        host: &HostLocal,
        started: Instant,
    ) -> Result<(Option<Permit>, Instant), Error> {
        let Some(limiter) = &host.policy.limiter else {
            return Ok((None, started));
        };
        match limiter.acquire(state.deadline) {
            Ok((permit, None)) => Ok((Some(permit), started)),
            Ok((permit, Some(waited))) => {
                log::debug!(
                    "{} {}: waited {waited:?} for a slot",
                    call.method,
                    call.host
                );
                Ok((Some(permit), Instant::now()))
            }
            Err(refused) => Err(Error::new(ErrorKind::Overloaded {
                limit: refused.limit,
                waited: refused.waited,
            })),
        }
    }

    /// Admission by the host's rate-limit pacing, before the breaker's: waits for the
    /// request's slot, up to the deadline. Returns when the attempt starts, if it waited.
    fn pace(
        &self,
        call: &Call,
        state: &CallState,
        host: &HostLocal,
    ) -> Result<Option<Instant>, Error> {
        let Some(pacer) = &host.policy.pacer else {
            return Ok(None);
        };
        let paced = pacer.admit(&call.headers, state.deadline);
        let (wait, sent) = match paced {
            Ok(None) => return Ok(None),
            Ok(Some(waited)) => (waited, true),
            Err(wait) => (wait, false),
        };
        if sent {
            host.counters.record_paced(wait);
        }
        log::debug!(
            "{} {}: paced {wait:?} (sent: {sent})",
            call.method,
            call.host
        );
        if let Some(h) = self.shared.events() {
            h.on_paced(&PacedEvent {
                host: call.host.to_string(),
                wait,
                sent,
            });
        }
        match sent {
            true => Ok(Some(Instant::now())),
            false => Err(Error::new(ErrorKind::RateLimited { wait })),
        }
    }

    /// The attempt's OpenTelemetry sample and event, for whoever wants them.
    fn record_attempt(
        &self,
        call: &Call,
        result: &Result<HttpResponse, Error>,
        timings: &AttemptTimings,
    ) {
        if let Some(shard) = &self.otel {
            let host = call.uri.host().unwrap_or("");
            let (status, error, version) = match result {
                Ok(r) => (
                    Some(r.status().as_u16()),
                    None,
                    protocol_version(r.version()),
                ),
                Err(e) => (None, Some(otel::error_type(e.class())), "1.1"),
            };
            let attributes = otel::AttemptAttributes {
                method: otel::method_attribute(&call.method),
                scheme: if call.uri.scheme_str() == Some("https") {
                    "https"
                } else {
                    "http"
                },
                address: host.trim_start_matches('[').trim_end_matches(']'),
                port: crate::url::port(&call.uri),
                status,
                error,
                version,
            };
            shard.record(&attributes, timings.total());
        }
        if let Some(h) = self.shared.events() {
            h.on_attempt(&AttemptEvent {
                host: call.host.to_string(),
                attempt: timings.attempt(),
                duration: timings.total(),
                outcome: result
                    .as_ref()
                    .map(|r| r.status())
                    .map_err(|e| e.kind().clone()),
                reused_connection: timings.reused_connection(),
                timings: *timings,
            });
        }
    }

    /// Go's net/http rule: a request that died on a *reused* connection before any response
    /// byte most likely hit a connection the server had closed while idle; replay it once on
    /// a fresh connection, without counting an attempt or spending budget, and without
    /// judging the host by it. Returns whether the attempt is to be replayed.
    fn replay_if_stale(
        &self,
        call: &Call,
        state: &mut CallState,
        hop: &mut HopState,
        sent: &Sent,
    ) -> bool {
        let Err(e) = &sent.result else {
            return false;
        };
        if sent.connections_opened != 0 || hop.stale_replayed || !is_stale(e) || !call.replayable()
        {
            return false;
        }
        hop.stale_replayed = true;
        // Fresh means fresh: the idle siblings of a stale connection most likely went the same
        // way, so none of them may carry the replay.
        self.conns.retire_all();
        state.attempts -= 1;
        hop.retries.forget_attempt();
        state.stale_replays += 1;
        hop.carried = Some(sent.admission);
        log::debug!(
            "{} {}: stale pooled connection, replaying",
            call.method,
            call.host
        );
        if let Some(h) = self.shared.events() {
            h.on_stale_replay(&StaleReplayEvent {
                host: call.host.to_string(),
                method: call.method.to_string(),
            });
        }
        true
    }

    /// Tells the host's breaker how the attempt went, as the pool's failure predicate sees it.
    fn judge(&self, call: &Call, host: &HostLocal, sent: &Sent, now: Instant) {
        let outcome = match &sent.result {
            Ok(r) => AttemptOutcome::Status(r.status()),
            Err(e) => AttemptOutcome::Error(e),
        };
        if let (Some(pacer), Ok(r)) = (&host.policy.pacer, &sent.result) {
            pacer.observe(&call.headers, r.status(), r.headers());
        }
        let failed = (self.shared.config.breaker_failure)(outcome);
        let breaker = &host.policy.breaker;
        if let Some(t) = breaker.record_at(sent.admission, !failed, now) {
            self.breaker_event(call, t);
        }
    }

    /// Asks the host's breaker for an admission, reporting the transition to half-open when
    /// this admission is the probe that caused it (exactly one caller sees it).
    fn admit(&self, call: &Call, host: &HostLocal, now: Instant) -> Admission {
        let (admission, transition) = host.policy.breaker.admit_reporting_at(now);
        if let Some(t) = transition {
            self.breaker_event(call, t);
        }
        admission
    }

    /// A breaker transition, to the `tracing` span and the event handler.
    fn breaker_event(&self, call: &Call, t: Transition) {
        spans::breaker(&call.host, t.from(), t.to());
        if let Some(h) = self.shared.events() {
            h.on_breaker_transition(&BreakerEvent {
                host: call.host.to_string(),
                from: t.from(),
                to: t.to(),
            });
        }
    }

    /// What the attempt's outcome means: the call is done (a response, or an error that is not
    /// retried), a redirect is to be followed, or the policy may retry.
    fn classify(
        &self,
        call: &Call,
        state: &mut CallState,
        policy: &RetryPolicy,
        result: Result<HttpResponse, Error>,
    ) -> Result<Step, Error> {
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                if e.is_protocol() {
                    self.discard_on_return();
                }
                if !retryable_error(&e, call.retryable(policy), call.can_resend()) {
                    return Err(e);
                }
                let reason = RetryReason::Error(e.kind().clone());
                return Ok(Step::Retry(Retry {
                    last: Err(e),
                    reason,
                    server_wait: None,
                }));
            }
        };
        if let Some(next) = self.redirect(call, &response, state.redirects)? {
            self.charge_head(state, &response)?;
            return Ok(Step::Redirect(response, next));
        }
        let status = response.status();
        if !(policy.is_retryable_status(status.as_u16()) && call.retryable(policy)) {
            if state.redirects > 0 {
                self.charge_head(state, &response)?;
            }
            return Ok(Step::Done(response));
        }
        let server_wait = pacing::server_wait(response.headers(), SystemTime::now());
        Ok(Step::Retry(Retry {
            last: Ok(response),
            reason: RetryReason::Status(status),
            server_wait,
        }))
    }

    /// Adds `response`'s header bytes to the chain's total and fails once the total passes
    /// `max_header_size`. curl caps the sum of the headers of a transfer, redirects included,
    /// and so does this: each response is checked against the limit by the transport, but
    /// without a total a chain of ten hops could hand the client ten times the limit. A
    /// header counts its name, its value and 4 framing bytes (`: ` and CRLF), as on the wire
    /// (the status line is not counted). Responses that are retried are not part of the chain.
    fn charge_head(&self, state: &mut CallState, response: &HttpResponse) -> Result<(), Error> {
        let bytes: usize = response
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        state.header_bytes = state.header_bytes.saturating_add(bytes);
        let limit = self.shared.config.max_header_size;
        if state.header_bytes > limit {
            return Err(
                Error::new(ErrorKind::HeaderTooLarge(limit)).with_source(format!(
                    "the responses of the redirect chain sent {} header bytes in all \
                     (after {} redirects), over the {limit} byte total",
                    state.header_bytes, state.redirects
                )),
            );
        }
        Ok(())
    }

    /// The next hop when `response` is a redirect to follow.
    fn redirect(
        &self,
        call: &Call,
        response: &HttpResponse,
        followed: u32,
    ) -> Result<Option<Hop>, Error> {
        let config = &self.shared.config;
        let max_redirects = call.max_redirects.unwrap_or(config.max_redirects);
        if max_redirects == 0 || !response.status().is_redirection() {
            return Ok(None);
        }
        let locations: Vec<&str> = response
            .headers()
            .get_all(LOCATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let hop = redirect::next_hop(
            response.status(),
            &locations,
            &call.uri,
            &call.method,
            config.allow_https_downgrade,
        )?;
        if hop.is_some() && followed >= max_redirects {
            return Err(Error::new(ErrorKind::TooManyRedirects(followed)));
        }
        Ok(hop)
    }

    /// Asks the policy whether to retry. A stop returns the last outcome, except that a server
    /// wait the call cannot honour is reported as such, with the wait the server asked for.
    #[cold]
    #[inline(never)]
    fn plan(
        &self,
        call: &Call,
        state: &mut CallState,
        policy: &RetryPolicy,
        hop: &mut HopState,
        budget: &RetryBudget,
        retry: Retry,
    ) -> Plan {
        let decision = match retry.server_wait {
            Some(wait) => RetryDecision::RetryAfter(wait),
            None => RetryDecision::Retry,
        };
        match policy.decide(&mut hop.retries, decision, Some(budget), Instant::now()) {
            Ok(delay) => Plan::Sleep(delay, retry),
            Err(StopReason::RetryAfterTooLong(wait)) => Plan::Stop(match retry.last {
                Ok(r) => Err(too_long(wait, r.status())
                    .with_request_id(server_request_id(r.headers()).as_deref())),
                Err(e) => Err(e),
            }),
            Err(StopReason::BudgetExhausted) => {
                state.refused += 1;
                log::debug!(
                    "{}: retry budget spent, returning the last outcome",
                    call.host
                );
                Plan::Stop(retry.last)
            }
            Err(_) => Plan::Stop(retry.last),
        }
    }

    /// Waits before the next attempt; the plan made sure the wait ends before the deadline.
    #[cold]
    #[inline(never)]
    fn sleep(&self, call: &Call, hop: &mut HopState, delay: Duration, r: Retry) {
        let attempt = hop.retries.attempts();
        log::warn!(
            "{} {}: attempt {attempt} failed ({}); retrying in {delay:?}",
            call.method,
            call.host,
            r.reason
        );
        spans::retry(&call.host, attempt, delay, &r.reason);
        if let Some(h) = self.shared.events() {
            h.on_retry(&RetryEvent {
                host: call.host.to_string(),
                attempt,
                delay,
                server_requested: r.server_wait.is_some(),
                reason: r.reason,
            });
        }
        // Kept until the retry is admitted (see `HopState::pending`); a response's connection
        // goes back to the pool then, drained, before the retry is sent.
        hop.pending = Some(r.last);
        std::thread::sleep(delay);
    }

    /// Counts a request refused before anything was sent (invalid input) as a call with no
    /// attempt, under its host, or under [`NO_HOST`] when its URL did not parse, and returns
    /// its error with that host. Only the metrics shard is looked up: a host nothing was sent
    /// to gets no breaker or budget.
    pub(crate) fn refuse(&self, e: Error, host: Option<&str>) -> Error {
        self.hosts
            .counters(host.unwrap_or(NO_HOST))
            .record_call(&CallRecord {
                latency: Duration::ZERO,
                retries: 0,
                retries_refused: 0,
                stale_replays: 0,
                redirects: 0,
                outcome: Err(e.class()),
            });
        match host {
            Some(host) => e.with_host(host),
            None => e,
        }
    }

    /// Records the finished call and hands the caller its response or error.
    ///
    /// Out of line: the response it builds takes about 1.5 KiB of stack, which inlined would
    /// sit above every attempt's (and so under ureq's response parser, the deepest point of a
    /// call); a thread's resident stack is its deepest point.
    #[inline(never)]
    fn finish(
        &self,
        call: &mut Call,
        state: &mut CallState,
        host: &HostLocal,
        outcome: Result<HttpResponse, Error>,
    ) -> Result<Response, Error> {
        host.counters.record_call(&CallRecord {
            latency: state.elapsed,
            retries: state.retries,
            retries_refused: state.refused,
            stale_replays: state.stale_replays,
            redirects: state.redirects,
            outcome: outcome.as_ref().map(|r| r.status()).map_err(|e| e.class()),
        });
        match outcome {
            Ok(response) => {
                let finished = Finished {
                    uri: redact_uri(std::mem::take(&mut call.uri), &call.sensitive_query),
                    host: call.host.clone(),
                    attempts: state.attempts,
                    redirects: state.redirects,
                    counters: host.counters.clone(),
                    body: call.download.rules(self.shared.config.body_limit),
                    history: std::mem::take(&mut state.history),
                    stream: StreamParts {
                        conns: (!self.ureq_timeouts).then(|| self.conns.clone()),
                        serial: self.conns.last_sender(),
                        deadline: call.custom_timeout.then_some(state.deadline),
                    },
                    timings: state.timings,
                    events: self.shared.config.events.as_ref().map(|h| h.0.clone()),
                    connection: ConnectionFacts {
                        remote_addr: self.conns.peer(),
                        reused: state.timings.reused_connection(),
                    },
                };
                Ok(Response::new(response, finished))
            }
            Err(e) => Err(e
                .with_host(&call.host)
                .with_attempts(state.attempts, state.redirects)),
        }
    }

    /// Sends one attempt of `call` through the agent.
    ///
    /// No secret passes through ureq (which logs the request line and hex-dumps whole heads
    /// at `trace`): ureq gets placeholders, which the transport swaps for the real values in
    /// the request head on its way to the socket; the response's secrets, which the transport
    /// took out of the head before ureq read it, are put back here.
    fn send(
        &self,
        call: &mut Call,
        host: &HostLocal,
        timeout: Option<Duration>,
        state: &CallState,
        resend_count: u32,
    ) -> Result<HttpResponse, Error> {
        if let Some(refused) = self.route.refusal() {
            return Err(refused.with_host(&call.host));
        }
        // Only a proxied client has a NO_PROXY list (and `ureq_timeouts`): no host to look at.
        let direct = self.ureq_timeouts && self.route.bypasses(&call.uri);
        self.conns.clear_peer();
        let secrets = self.conns.secrets();
        // The jar's cookies for this hop's URL join the headers before they are disguised.
        let with_cookies = self.cookies.request_headers(&call.uri, &call.headers);
        let headers = with_cookies.as_ref().unwrap_or(&call.headers);
        let disguised = secrets.begin(&call.uri, headers, &call.sensitive_query);
        let (uri, headers) = match &disguised {
            Some((uri, headers)) => (uri, headers),
            None => (&call.uri, headers),
        };
        // Built in place, without `http::request::Builder` (which re-checks the method and
        // URI it is given and wraps every step in a `Result`): the call's parts are valid.
        let mut request = http::Request::new(());
        *request.method_mut() = call.method.clone();
        *request.uri_mut() = uri.clone();
        // A new request's map is empty and allocates nothing: cloning an empty one into it
        // would only copy and drop empty vectors.
        if !headers.is_empty() {
            request.headers_mut().clone_from(headers);
        }
        if let (Some(p), Some(ids)) = (&self.shared.config.propagator, &state.trace) {
            let cx = PropagationContext {
                method: &call.method,
                host: &call.host,
                resend_count,
                ids,
            };
            p.0.inject(&cx, request.headers_mut());
        }
        // Last, so that a `Host` set by the caller or a propagator stays the only one.
        if let Some(value) = &host.host_header {
            if !request.headers().contains_key(HOST) {
                request.headers_mut().insert(HOST, value.clone());
            }
        }
        let result = match &mut call.body {
            Body::None => self.run_request(request, timeout, direct),
            Body::Bytes(b) => self.run_request(request.map(|()| &b[..]), timeout, direct),
            Body::Stream(r) => match r.take() {
                Some(r) => {
                    let body = SendBody::from_owned_reader(r);
                    self.run_request(request.map(|()| body), timeout, direct)
                }
                None => Err(Error::invalid(
                    "a streamed body was already sent and cannot be sent again",
                )),
            },
        };
        let mut response = result.map_err(|e| e.with_host(&call.host))?;
        secrets.restore(response.headers_mut());
        self.cookies.store(&call.uri, response.headers());
        Ok(response)
    }

    fn run_request<S: ureq::AsSendBody>(
        &self,
        request: http::Request<S>,
        timeout: Option<Duration>,
        direct: bool,
    ) -> Result<HttpResponse, Error> {
        let request = match (timeout, direct) {
            (None, false) => request,
            (t, direct) => self.configure(request, t, direct),
        };
        self.agent
            .run(request)
            .map_err(|e| from_ureq(e, true).deadline_as(TimeoutPhase::Response))
    }

    /// `request` with its own ureq timeout, and without the proxy when it goes `direct`: a
    /// target on the NO_PROXY list goes direct for this request only (ureq's own NO_PROXY
    /// matching knows no CIDR blocks, so it is not given the list). Out of line: ureq's
    /// request configuration is large, and the usual request (no proxy) never needs it.
    #[inline(never)]
    fn configure<S: ureq::AsSendBody>(
        &self,
        request: http::Request<S>,
        timeout: Option<Duration>,
        direct: bool,
    ) -> http::Request<S> {
        let mut c = self.agent.configure_request(request);
        if let Some(t) = timeout {
            c = c.timeout_global(Some(t));
        }
        if direct {
            c = c.proxy(None);
        }
        c.build()
    }
}

/// A hedge to send: a copy of the call, the race it joins, and the call's deadline.
struct HedgeJob {
    shared: Arc<Shared>,
    race: Arc<Race<Result<HttpResponse, Error>>>,
    call: Call,
    deadline: Instant,
    delay: Duration,
    /// Hedges the attempt may still get, this one included.
    left: u32,
    /// The call's retry policy: which responses end the race (`decisive`).
    policy: RetryPolicy,
    /// The caller's cookie jar: a hedge sends the caller's cookies and stores what it is sent
    /// there, never in the hedge thread's client (which other callers' hedges use too).
    cookies: ClientJar,
}

/// What a hedge's attempt took, recorded once the race says it was not cut short.
struct HedgeAttempt {
    took: Duration,
    opened: u64,
    timings: AttemptTimings,
}

/// The outcome a hedge that panicked gives the race: a failure, so the primary keeps its own.
fn hedge_panicked() -> Error {
    from_ureq(
        ureq::Error::Io(std::io::Error::other("the hedge panicked")),
        true,
    )
}

/// Runs on a hedge thread when the hedge is due: sends it on the thread's own client (kept in
/// the thread's `local`, made by its first hedge) unless its attempt has already ended or its
/// deadline has passed.
fn run_hedge(job: HedgeJob, local: &mut Local) {
    if !job.race.is_open() || Instant::now() >= job.deadline {
        return;
    }
    if local_engine(local).is_none_or(|e| !Arc::ptr_eq(&e.shared, &job.shared)) {
        *local = Some(Box::new(Engine::new(job.shared.clone())));
    }
    if let Some(engine) = local_engine(local) {
        engine.cookies = job.cookies.clone();
        engine.hedge(job);
        engine.cookies = Default::default();
    }
}

fn local_engine(local: &mut Local) -> Option<&mut Engine> {
    local.as_mut().and_then(|l| l.downcast_mut::<Engine>())
}

/// Whether the call's body is read under an idle timeout instead of the deadline (it asks for
/// server-sent events, or set `body_idle_timeout`): not hedged, as that deadline
/// (`StreamParts`) is kept by the caller's client, not by a hedge's.
fn reads_under_idle_timeout(call: &Call) -> bool {
    call.download.idle.is_some()
        || call.headers.get_all(http::header::ACCEPT).iter().any(|v| {
            v.as_bytes()
                .windows(17)
                .any(|w| w.eq_ignore_ascii_case(b"text/event-stream"))
        })
}

/// Whether an attempt's outcome ends the race: a response the retry policy would not retry,
/// and not a `409` (an `Idempotency-Key` still in progress, as a hedge of a keyed POST gets).
/// A `503` or a failure leaves the other attempts running.
fn decisive(result: &Result<HttpResponse, Error>, policy: &RetryPolicy) -> bool {
    result.as_ref().is_ok_and(|r| {
        let status = r.status().as_u16();
        status != 409 && !policy.is_retryable_status(status)
    })
}

/// Hands `job` to the pool's hedge threads, due at `due`.
fn schedule_hedge(due: Instant, job: HedgeJob) -> bool {
    let Some(threads) = job.shared.hedge_threads.clone() else {
        return false;
    };
    threads.schedule(due, Box::new(move |local| run_hedge(job, local)))
}

/// Hedging (`hedge/`): the caller's side (`send_hedged`, `hedge_job`) and the hedge thread's
/// (`hedge`, `hedge_send`).
impl Engine {
    /// Sends one attempt, with a hedge scheduled when the call may be hedged: the first
    /// response head of the two is the attempt's, and the other is aborted.
    fn send_hedged(
        &self,
        call: &mut Call,
        timeout: Option<Duration>,
        state: &CallState,
        resend_count: u32,
        host: &HostLocal,
    ) -> Result<HttpResponse, Error> {
        if self.shared.config.hedge.is_none() {
            return self.send(call, host, timeout, state, resend_count);
        }
        self.send_maybe_racing(call, timeout, state, resend_count, host)
    }

    /// [`Engine::send_hedged`] in a pool that hedges: out of line, so the hedge's copy of the
    /// call does not widen the stack frame of every attempt in a pool that does not.
    #[inline(never)]
    fn send_maybe_racing(
        &self,
        call: &mut Call,
        timeout: Option<Duration>,
        state: &CallState,
        resend_count: u32,
        host: &HostLocal,
    ) -> Result<HttpResponse, Error> {
        match self.hedge_job(call, state, host) {
            None => self.send(call, host, timeout, state, resend_count),
            Some((job, due)) => {
                self.send_racing(call, timeout, state, resend_count, host, job, due)
            }
        }
    }

    /// [`Engine::send_hedged`] with a hedge scheduled: out of line, so the race's state does
    /// not widen the stack frame of every unhedged attempt.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn send_racing(
        &self,
        call: &mut Call,
        timeout: Option<Duration>,
        state: &CallState,
        resend_count: u32,
        host: &HostLocal,
        job: HedgeJob,
        due: Instant,
    ) -> Result<HttpResponse, Error> {
        let (race, delay) = (job.race.clone(), job.delay);
        self.conns.arm_abort();
        let scheduled = schedule_hedge(due, job);
        let result = self.send(call, host, timeout, state, resend_count);
        let policy = call.policy.as_ref().unwrap_or(&self.shared.config.retry);
        let ok = decisive(&result, policy);
        let (result, settled) = race.primary_finish(result, ok, state.deadline);
        self.conns.disarm_abort();
        if scheduled && settled.sent > 0 {
            host.counters.record_hedges(settled.sent, settled.hedge_won);
            for _ in 0..settled.sent {
                self.hedge_event(&call.host, HedgeOutcome::Sent, delay);
            }
        }
        if settled.hedge_won {
            log::debug!("{} {}: the hedge won", call.method, call.host);
            self.hedge_event(&call.host, HedgeOutcome::Won, delay);
        }
        result
    }

    /// The hedge of this attempt and when it is due, when the pool hedges, the request may be
    /// replayed, the host's delay is known and ends before the deadline. Not through a proxy
    /// (ureq enforces the deadline there), nor for an event stream.
    fn hedge_job(
        &self,
        call: &Call,
        state: &CallState,
        host: &HostLocal,
    ) -> Option<(HedgeJob, Instant)> {
        let (policy, hedge) = (
            self.shared.config.hedge.as_ref()?,
            host.policy.hedge.as_ref()?,
        );
        if self.ureq_timeouts || !call.replayable() || reads_under_idle_timeout(call) {
            return None;
        }
        let now = Instant::now();
        let metrics = &self.shared.metrics;
        let delay = hedge.delay(policy, now, |q| metrics.attempt_quantile(&call.host, q))?;
        let due = later(now, delay);
        if due >= state.deadline {
            return None;
        }
        let job = HedgeJob {
            shared: self.shared.clone(),
            race: Arc::new(Race::new(self.conns.clone())),
            call: call.hedge_copy()?,
            deadline: state.deadline,
            delay,
            left: policy.max_extra(),
            policy: call
                .policy
                .clone()
                .unwrap_or_else(|| self.shared.config.retry.clone()),
            cookies: self.cookies.clone(),
        };
        Some((job, due))
    }

    /// On a hedge thread: sends the hedge unless the host's breaker is not closed, the host
    /// has no free slot or paced request for it now, or its budget is spent (counted), and
    /// hands the outcome to the race.
    fn hedge(&self, mut job: HedgeJob) {
        let host = self.host(&job.call.host);
        let Some(budget) = host.policy.hedge.as_ref().map(|h| &h.budget) else {
            return;
        };
        if host.policy.breaker.state() != BreakerState::Closed || !job.race.is_open() {
            return;
        }
        // Under an adaptive concurrency limit a hedge needs a free slot: it never waits for
        // one, and gives it back unsampled (the race, not the host, decides its outcome).
        let slot = match &host.policy.limiter {
            Some(limiter) => match limiter.try_acquire() {
                Some(permit) => Some(permit),
                None => return,
            },
            None => None,
        };
        // Paced hosts: a hedge goes out only if the host's pace lets it go now.
        let now = Instant::now();
        if let Some(pacer) = &host.policy.pacer {
            if pacer.admit(&job.call.headers, now).is_err() {
                return;
            }
        }
        if !budget.try_withdraw() {
            host.counters.record_hedge_refused();
            log::debug!("{} {}: hedge budget spent", job.call.method, job.call.host);
            self.hedge_event(&job.call.host, HedgeOutcome::Refused, job.delay);
            return;
        }
        self.conns.arm_abort();
        if !job.race.hedge_start(&self.conns) {
            self.conns.disarm_abort();
            return;
        }
        log::debug!("{} {}: hedge sent", job.call.method, job.call.host);
        if job.left > 1 {
            self.next_hedge(&job);
        }
        // A panic (an event handler's) must still end the hedge's part in the race, or a
        // failed primary would wait for it until the deadline.
        let sent = panic::catch_unwind(AssertUnwindSafe(|| {
            self.hedge_send(&mut job.call, &host, job.deadline)
        }));
        let (result, attempt) = match sent {
            Ok(sent) => sent,
            Err(panicked) => {
                drop(
                    job.race
                        .hedge_finish(&self.conns, Err(hedge_panicked()), false),
                );
                self.conns.disarm_abort();
                panic::resume_unwind(panicked);
            }
        };
        let ok = decisive(&result, &job.policy);
        // An attempt that failed after the race was decided was cut by its abort: not an
        // attempt that says anything about the host.
        let aborted = result.is_err() && !job.race.is_open();
        if !aborted {
            // The events go to the user's handler on this thread, which has no caller to hand
            // a panic to: it is logged, and the hedge's outcome still reaches the race.
            let record = || self.record_hedge_attempt(&job.call, &result, &attempt, &host);
            if panic::catch_unwind(AssertUnwindSafe(record)).is_err() {
                log::warn!("an event handler panicked on a hedge thread");
            }
        }
        // A losing response is dropped unread here: its connection closes.
        if let Some(Ok(lost)) = job.race.hedge_finish(&self.conns, result, ok) {
            if let Some(pacer) = &host.policy.pacer {
                pacer.observe(&job.call.headers, lost.status(), lost.headers());
            }
        }
        self.conns.disarm_abort();
        drop(slot);
    }

    /// Schedules the attempt's next hedge, a delay after this one, if it is due before the
    /// deadline.
    fn next_hedge(&self, job: &HedgeJob) {
        let due = later(Instant::now(), job.delay);
        let Some(call) = job.call.hedge_copy() else {
            return;
        };
        if due < job.deadline {
            let next = HedgeJob {
                shared: job.shared.clone(),
                race: job.race.clone(),
                call,
                deadline: job.deadline,
                delay: job.delay,
                left: job.left - 1,
                policy: job.policy.clone(),
                cookies: job.cookies.clone(),
            };
            schedule_hedge(due, next);
        }
    }

    /// Sends the hedge's one attempt within the call's deadline; returns its outcome and what
    /// to record of it.
    fn hedge_send(
        &self,
        call: &mut Call,
        host: &HostLocal,
        deadline: Instant,
    ) -> (Result<HttpResponse, Error>, HedgeAttempt) {
        let mut state = CallState::start(call.timeout);
        state.deadline = deadline;
        let started = state.started;
        self.conns.set_deadline(deadline);
        self.conns.clock().reset();
        let opened_before = self.conns.opened();
        let result = self.send(call, host, None, &state, 1);
        let took = started.elapsed();
        let opened = self.conns.opened() - opened_before;
        let timings = self.conns.clock().read(started, 1, opened == 0, took);
        (
            result,
            HedgeAttempt {
                took,
                opened,
                timings,
            },
        )
    }

    /// Records a hedge as an attempt of this client.
    fn record_hedge_attempt(
        &self,
        call: &Call,
        result: &Result<HttpResponse, Error>,
        attempt: &HedgeAttempt,
        host: &HostLocal,
    ) {
        let status = result.as_ref().ok().map(|r| r.status());
        host.counters
            .record_attempt(attempt.took, attempt.opened, got_connection(result), status);
        self.record_attempt(call, result, &attempt.timings);
    }

    fn hedge_event(&self, host: &str, outcome: HedgeOutcome, delay: Duration) {
        if let Some(h) = self.shared.events() {
            h.on_hedge(&HedgeEvent {
                host: host.to_owned(),
                outcome,
                delay,
            });
        }
    }
}

/// Marks an engine as running a call until dropped (a panicking event handler included).
struct InCall<'a>(&'a Cell<bool>, bool);

impl<'a> InCall<'a> {
    fn enter(flag: &'a Cell<bool>) -> InCall<'a> {
        InCall(flag, flag.replace(true))
    }
}

impl Drop for InCall<'_> {
    fn drop(&mut self) {
        self.0.set(self.1);
    }
}

/// A span's view of an outcome: the status, or the error's `error.type`.
fn span_outcome(outcome: &Result<HttpResponse, Error>) -> Result<u16, &'static str> {
    match outcome {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(otel::error_type(e.class())),
    }
}

fn protocol_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Gives the attempt's concurrency slot back with what its outcome says about the host's load:
/// a `503`, a `429` or a timeout is a drop; any other response head is a latency sample (from
/// the request to its head); other failures (refused, TLS, DNS, ...) say nothing about load.
fn limit_feedback(sent: &mut Sent, took: Duration) {
    let Some(permit) = sent.permit.take() else {
        return;
    };
    let sample = match &sent.result {
        Ok(r) if matches!(r.status().as_u16(), 429 | 503) => Sample::Drop,
        Ok(_) => Sample::Answered(took),
        Err(e) if e.is_timeout() => Sample::Drop,
        Err(_) => Sample::Ignore,
    };
    permit.complete(sample);
}

fn too_long(wait: Duration, status: StatusCode) -> Error {
    Error::new(ErrorKind::RetryAfterTooLong { wait, status })
}

/// Whether an attempt got a connection (new or pooled): all but a failed DNS lookup, connect
/// or TLS handshake.
fn got_connection(result: &Result<HttpResponse, Error>) -> bool {
    !matches!(
        result.as_ref().map_err(Error::kind),
        Err(ErrorKind::Dns
            | ErrorKind::Connect(_)
            | ErrorKind::Tls(_)
            | ErrorKind::Timeout(TimeoutPhase::Resolve | TimeoutPhase::Connect))
    )
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
/// method (nothing was sent, as urllib3 does) whose body can be sent again (a streamed body's
/// reader went with the failed attempt); failures after the request may have been sent only
/// for requests that may be replayed. TLS, DNS, invalid input, limits, protocol violations and
/// redirect errors are never retried.
fn retryable_error(e: &Error, replayable: bool, can_resend: bool) -> bool {
    match e.kind() {
        ErrorKind::Connect(_)
        | ErrorKind::Timeout(TimeoutPhase::Connect | TimeoutPhase::Resolve) => can_resend,
        ErrorKind::Io { .. }
        | ErrorKind::Timeout(TimeoutPhase::Send | TimeoutPhase::Response | TimeoutPhase::Body) => {
            replayable
        }
        _ => false,
    }
}

/// Reads a small redirect or retried body to its end so the connection can be reused; a
/// large one is dropped with its connection instead.
fn drain(response: HttpResponse) {
    let mut body = response.into_body();
    let _ = std::io::copy(
        &mut body.with_config().limit(64 * 1024).reader(),
        &mut std::io::sink(),
    );
}
