//! The crate's one error type.
//!
//! ureq's model (one `#[non_exhaustive]` enum, lowercase `Display`) is kept for the *kind* of
//! failure, but the error itself is a boxed struct, as in reqwest: every failure also carries
//! the host, how many attempts and redirects the call made, and the underlying cause. Matching
//! on [`ErrorKind`] stays exhaustive-safe, `Result<Response, Error>` stays one pointer wide on
//! the hot path, and no variant has to repeat the context fields.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use ureq::http::StatusCode;

/// What went wrong. Marked `#[non_exhaustive]`: new kinds may be added, so a `match` needs a
/// catch-all arm.
///
/// # Examples
///
/// ```
/// use http_sentinel::{ClientPool, ErrorKind, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let client = pool.checkout()?;
/// // Nothing listens on port 1 of the loopback address.
/// let err = client.get("http://127.0.0.1:1/").send().unwrap_err();
/// let advice = match err.kind() {
///     ErrorKind::Dns => "check the host name",
///     ErrorKind::Connect(_) => "is the server up?",
///     ErrorKind::Timeout(_) => "try a longer deadline",
///     ErrorKind::Status(s) if s.is_server_error() => "the server failed",
///     ErrorKind::CircuitOpen { .. } => "the host is failing; wait",
///     _ => "see the error message",
/// };
/// assert_eq!(advice, "is the server up?");
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request was rejected before anything was sent: a malformed URL, a scheme other than
    /// http(s), a header name or value with CR, LF or NUL, an invalid method.
    InvalidRequest(String),
    /// A configuration value (for example a `SENTINEL_*` environment variable) is invalid.
    InvalidConfig(String),
    /// The host name could not be resolved.
    Dns,
    /// The TCP connection could not be established.
    Connect(ConnectFailure),
    /// The TLS handshake failed; the certificate is never bypassed.
    Tls(TlsFailure),
    /// A deadline passed.
    Timeout(TimeoutPhase),
    /// The server broke HTTP/1.1 framing (garbage status line, bad chunk, ...).
    Protocol,
    /// The response body could not be decoded (a content coding, or JSON that does not match
    /// the target type); the message says why.
    Decode(String),
    /// The connection failed while the request or response was in flight.
    ///
    /// `may_have_been_processed` is true for every failure once an attempt is under way (the
    /// library cannot tell how much of the request was written before the connection broke),
    /// so a non-idempotent request must be assumed to have possibly taken effect. Failures to
    /// connect are [`Connect`](ErrorKind::Connect) instead, and say nothing was sent.
    Io {
        /// The I/O error kind.
        kind: io::ErrorKind,
        /// The server may have acted on the request.
        may_have_been_processed: bool,
    },
    /// The response body exceeded the configured limit (in bytes).
    BodyTooLarge(u64),
    /// The response header exceeded the configured limit (in bytes).
    HeaderTooLarge(usize),
    /// No client could be checked out of the pool in time.
    PoolTimeout(Duration),
    /// A status the caller asked to treat as an error (see `Response::error_for_status`).
    Status(StatusCode),
    /// The redirect chain was longer than the hop limit.
    TooManyRedirects(u32),
    /// A redirect was refused (https -> http downgrade, non-http scheme, missing `Location`,
    /// or a body that cannot be re-sent).
    RedirectRefused(String),
    /// The host's circuit breaker is open; calls fail without connecting until it may close.
    CircuitOpen {
        /// How long until the breaker lets a probe through.
        retry_in: Duration,
    },
    /// The server asked to wait longer than the policy's cap or the call's deadline allows.
    RetryAfterTooLong {
        /// The wait the server asked for.
        wait: Duration,
        /// The status that carried `Retry-After`.
        status: StatusCode,
    },
    /// The pool's rate-limit pacing would hold the request past the call's deadline: a
    /// `Retry-After` or quota learnt from an earlier response, or the configured limit. Nothing
    /// was sent.
    RateLimited {
        /// How long the request would have had to wait.
        wait: Duration,
    },
    /// The host's adaptive concurrency limit was reached and no slot came free before the
    /// call's deadline (see [`AdaptiveLimit`](crate::AdaptiveLimit)). Nothing was sent.
    Overloaded {
        /// The host's limit when the call gave up.
        limit: u32,
        /// How long the call waited for a slot.
        waited: Duration,
    },
    /// A scoped worker or worker-pool job panicked.
    Panicked(String),
    /// The work was never started: the caller cancelled a fan-out, or a worker pool was shut
    /// down (or its unstarted job dropped) before the job ran.
    Cancelled,
    /// A failure that has no better kind.
    Other,
}

/// Why a TCP connection could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The peer refused the connection (nothing listening).
    Refused,
    /// The network or host is unreachable.
    Unreachable,
    /// Any other connect failure.
    Other,
}

/// Why a TLS handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The certificate is not signed by a trusted root (self-signed, private CA not configured).
    UnknownIssuer,
    /// The certificate has expired or is not yet valid.
    Expired,
    /// The certificate is not valid for the host name.
    NameMismatch,
    /// Any other certificate problem (revoked, bad signature, wrong usage, ...).
    BadCertificate,
    /// The handshake itself failed (no common protocol version or cipher, alert from peer).
    Handshake,
    /// The server requires a client certificate and got none, or refused the one given
    /// (see [`PoolConfigBuilder::identity`](crate::PoolConfigBuilder::identity)).
    ClientCertificate,
}

/// Which phase a timeout hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// The call's overall deadline (attempts, backoff sleeps, redirects and body included).
    Deadline,
    /// Resolving the host name.
    Resolve,
    /// Establishing the TCP (and TLS) connection.
    Connect,
    /// Sending the request.
    Send,
    /// Waiting for the response head.
    Response,
    /// Reading the response body.
    Body,
    /// No progress within an idle timeout: no server-sent event within the stream's
    /// ([`Events::idle_timeout`](crate::Events::idle_timeout)), or no body byte within the
    /// request's ([`RequestBuilder::body_idle_timeout`](crate::RequestBuilder::body_idle_timeout)).
    Idle,
}

/// An error from the library: its [`ErrorKind`], the host it concerns, the attempts and
/// redirects made, and the underlying cause.
///
/// `Display` never contains header values, cookies or URL passwords: it names the host only.
///
/// # Examples
///
/// ```
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let client = pool.checkout()?;
/// let err = client.get("ftp://example.com/").send().unwrap_err();
/// assert!(err.is_invalid_request());
/// assert_eq!(err.attempts(), 0);
/// # Ok::<(), http_sentinel::Error>(())
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    host: Option<String>,
    attempts: u32,
    redirects: u32,
    request_id: Option<String>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                host: None,
                attempts: 0,
                redirects: 0,
                request_id: None,
                source: None,
            }),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidRequest(reason.into()))
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Names a deadline timeout after the phase it cut short. The transport bounds every
    /// read by the call's deadline but cannot tell a wait for the response head from a body
    /// read; the caller can.
    pub(crate) fn deadline_as(mut self, phase: TimeoutPhase) -> Self {
        if self.inner.kind == ErrorKind::Timeout(TimeoutPhase::Deadline) {
            self.inner.kind = ErrorKind::Timeout(phase);
        }
        self
    }

    pub(crate) fn with_host(mut self, host: &str) -> Self {
        if self.inner.host.is_none() {
            self.inner.host = Some(host.to_owned());
        }
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32, redirects: u32) -> Self {
        self.inner.attempts = attempts;
        self.inner.redirects = redirects;
        self
    }

    pub(crate) fn with_request_id(mut self, id: Option<&str>) -> Self {
        if self.inner.request_id.is_none() {
            self.inner.request_id = id.map(str::to_owned);
        }
        self
    }

    /// The request id the server gave the response this error came from (its `x-request-id`
    /// or `request-id` header), for quoting to the API's support; `None` when the error came
    /// before a response, or the server sent none.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/v1/chat").send()?;
    /// if let Err(e) = response.error_for_status() {
    ///     eprintln!("{e} (request id {})", e.request_id().unwrap_or("none"));
    /// }
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// The host (`host:port`) the failure concerns, when there is one.
    pub fn host(&self) -> Option<&str> {
        self.inner.host.as_deref()
    }

    /// How many attempts (requests put on the wire, or tried to be) the call made before it
    /// failed. Zero when it failed before sending anything.
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// How many redirects the call followed before it failed.
    pub fn redirects(&self) -> u32 {
        self.inner.redirects
    }

    /// The metrics class of this error (the `kind` label of `http_sentinel_failures_total`).
    pub fn class(&self) -> ErrorClass {
        match self.inner.kind {
            ErrorKind::InvalidRequest(_) | ErrorKind::InvalidConfig(_) => {
                ErrorClass::InvalidRequest
            }
            ErrorKind::Dns => ErrorClass::Dns,
            ErrorKind::Connect(_) => ErrorClass::Connect,
            ErrorKind::Tls(_) => ErrorClass::Tls,
            ErrorKind::Timeout(_) => ErrorClass::Timeout,
            ErrorKind::Protocol | ErrorKind::HeaderTooLarge(_) => ErrorClass::Protocol,
            ErrorKind::Decode(_) => ErrorClass::Decode,
            ErrorKind::Io { .. } => ErrorClass::Io,
            ErrorKind::BodyTooLarge(_) => ErrorClass::BodyTooLarge,
            ErrorKind::PoolTimeout(_) => ErrorClass::PoolTimeout,
            ErrorKind::Status(_) => ErrorClass::Status,
            ErrorKind::TooManyRedirects(_) => ErrorClass::TooManyRedirects,
            ErrorKind::RedirectRefused(_) => ErrorClass::RedirectRefused,
            ErrorKind::CircuitOpen { .. } => ErrorClass::CircuitOpen,
            ErrorKind::RetryAfterTooLong { .. } => ErrorClass::RetryAfterTooLong,
            ErrorKind::RateLimited { .. } => ErrorClass::RateLimited,
            ErrorKind::Overloaded { .. } => ErrorClass::Overloaded,
            ErrorKind::Panicked(_) | ErrorKind::Cancelled | ErrorKind::Other => ErrorClass::Other,
        }
    }

    /// True for any timeout, including the call's overall deadline.
    pub fn is_timeout(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::Timeout(_))
    }

    /// True when the TCP connection could not be established.
    pub fn is_connect(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::Connect(_))
    }

    /// True when the host name could not be resolved.
    pub fn is_dns(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::Dns)
    }

    /// True for a TLS handshake or certificate failure.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::Tls(_))
    }

    /// True when the request was rejected before anything was sent.
    pub fn is_invalid_request(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::InvalidRequest(_))
    }

    /// True when the server broke HTTP framing.
    pub fn is_protocol(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::Protocol)
    }

    /// True when the response body or header exceeded its limit.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::BodyTooLarge(_) | ErrorKind::HeaderTooLarge(_)
        )
    }

    /// True when checking a client out of the pool timed out.
    pub fn is_pool_timeout(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::PoolTimeout(_))
    }

    /// True when the host's circuit breaker refused the call.
    pub fn is_circuit_open(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::CircuitOpen { .. })
    }

    /// True for redirect failures: too many hops or a refused redirect.
    pub fn is_redirect(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::TooManyRedirects(_) | ErrorKind::RedirectRefused(_)
        )
    }

    /// The HTTP status, for errors made from a response ([`ErrorKind::Status`],
    /// [`ErrorKind::RetryAfterTooLong`]).
    pub fn status(&self) -> Option<StatusCode> {
        match self.inner.kind {
            ErrorKind::Status(s) | ErrorKind::RetryAfterTooLong { status: s, .. } => Some(s),
            _ => None,
        }
    }

    /// True when the request may have reached the server and taken effect even though the
    /// call failed: the caller must not assume a non-idempotent request did nothing.
    pub fn may_have_been_processed(&self) -> bool {
        match self.inner.kind {
            ErrorKind::Io {
                may_have_been_processed,
                ..
            } => may_have_been_processed,
            ErrorKind::Timeout(
                TimeoutPhase::Response | TimeoutPhase::Body | TimeoutPhase::Idle,
            ) => true,
            ErrorKind::Protocol
            | ErrorKind::Decode(_)
            | ErrorKind::Status(_)
            | ErrorKind::BodyTooLarge(_) => true,
            _ => false,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::InvalidRequest(r) => write!(f, "invalid request: {r}"),
            ErrorKind::InvalidConfig(r) => write!(f, "invalid configuration: {r}"),
            ErrorKind::Dns => f.write_str("dns lookup failed"),
            ErrorKind::Connect(ConnectFailure::Refused) => f.write_str("connection refused"),
            ErrorKind::Connect(ConnectFailure::Unreachable) => f.write_str("host unreachable"),
            ErrorKind::Connect(ConnectFailure::Other) => f.write_str("connect failed"),
            ErrorKind::Tls(t) => write!(f, "tls failure: {t}"),
            ErrorKind::Timeout(
                p @ (TimeoutPhase::Response | TimeoutPhase::Body | TimeoutPhase::Idle),
            ) => {
                write!(f, "timed out ({p}; the request may have been processed)")
            }
            ErrorKind::Timeout(p) => write!(f, "timed out ({p})"),
            ErrorKind::Protocol => f.write_str("http protocol error"),
            ErrorKind::Decode(why) => write!(f, "response body could not be decoded: {why}"),
            ErrorKind::Io {
                kind,
                may_have_been_processed,
            } => {
                write!(f, "connection failed: {kind}")?;
                if *may_have_been_processed {
                    f.write_str(" (the request may have been processed)")?;
                }
                Ok(())
            }
            ErrorKind::BodyTooLarge(l) => write!(f, "response body over the {l} byte limit"),
            ErrorKind::HeaderTooLarge(l) => write!(f, "response header over the {l} byte limit"),
            ErrorKind::PoolTimeout(d) => write!(f, "no client free in the pool after {d:?}"),
            ErrorKind::Status(s) => write!(f, "http status {}", s.as_u16()),
            ErrorKind::TooManyRedirects(n) => write!(f, "too many redirects ({n})"),
            ErrorKind::RedirectRefused(r) => write!(f, "redirect refused: {r}"),
            ErrorKind::CircuitOpen { retry_in } => {
                write!(f, "circuit open, next probe in {retry_in:?}")
            }
            ErrorKind::RetryAfterTooLong { wait, status } => {
                write!(
                    f,
                    "status {} asked to retry after {wait:?}, beyond what the call allows",
                    status.as_u16()
                )
            }
            ErrorKind::RateLimited { wait } => {
                write!(
                    f,
                    "rate limited: the next slot is {wait:?} away, past the deadline"
                )
            }
            ErrorKind::Overloaded { limit, waited } => {
                write!(
                    f,
                    "overloaded: all {limit} slots of the host's concurrency limit stayed busy \
                     for {waited:?}, until the deadline"
                )
            }
            ErrorKind::Panicked(m) => write!(f, "worker panicked: {m}"),
            ErrorKind::Cancelled => f.write_str("cancelled before it started"),
            ErrorKind::Other => f.write_str("request failed"),
        }
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsFailure::UnknownIssuer => "certificate issuer not trusted",
            TlsFailure::Expired => "certificate expired or not yet valid",
            TlsFailure::NameMismatch => "certificate not valid for this host name",
            TlsFailure::BadCertificate => "invalid certificate",
            TlsFailure::Handshake => "handshake failed",
            TlsFailure::ClientCertificate => "client certificate missing or refused by the server",
        })
    }
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Deadline => "call deadline",
            TimeoutPhase::Resolve => "resolving host",
            TimeoutPhase::Connect => "connecting",
            TimeoutPhase::Send => "sending request",
            TimeoutPhase::Response => "awaiting response",
            TimeoutPhase::Body => "reading body",
            TimeoutPhase::Idle => "no progress within the idle timeout",
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner.kind, f)?;
        if let Some(host) = &self.inner.host {
            write!(f, " [{host}]")?;
        }
        match self.inner.attempts {
            0 | 1 => {}
            n => write!(f, " after {n} attempts")?,
        }
        if self.inner.redirects > 0 {
            write!(f, " and {} redirects", self.inner.redirects)?;
        }
        if let Some(id) = &self.inner.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(host) = &self.inner.host {
            d.field("host", host);
        }
        d.field("attempts", &self.inner.attempts);
        if let Some(id) = &self.inner.request_id {
            d.field("request_id", id);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", &source.to_string());
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| &**s as &(dyn StdError + 'static))
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e.kind() {
            ErrorKind::Timeout(_) | ErrorKind::PoolTimeout(_) => io::ErrorKind::TimedOut,
            ErrorKind::Connect(ConnectFailure::Refused) => io::ErrorKind::ConnectionRefused,
            ErrorKind::Io { kind, .. } => *kind,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// What the transport refused (framing it must not trust, a TLS body that may be truncated,
/// a connection that would go around the configured proxy): carried through ureq as `ureq::Error::Other`, and turned back
/// into its kind by [`from_ureq`]. Lives here, not in the transport, so that the mapping
/// needs no import from a module above this one.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) kind: ErrorKind,
    pub(crate) why: String,
}

impl Refused {
    pub(crate) fn new(kind: ErrorKind, why: impl Into<String>) -> Refused {
        Refused {
            kind,
            why: why.into(),
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.why)
    }
}

impl StdError for Refused {}

/// Maps a ureq error to the crate's kinds. ureq reports many distinct failures through
/// `Io`, so the io kind and the phase decide.
pub(crate) fn from_ureq(e: ureq::Error, request_sent: bool) -> Error {
    use ureq::Error as U;
    let kind = match &e {
        U::Timeout(t) => ErrorKind::Timeout(match t {
            ureq::Timeout::Resolve => TimeoutPhase::Resolve,
            ureq::Timeout::Connect => TimeoutPhase::Connect,
            ureq::Timeout::SendRequest | ureq::Timeout::SendBody | ureq::Timeout::PerWrite => {
                TimeoutPhase::Send
            }
            ureq::Timeout::RecvResponse => TimeoutPhase::Response,
            ureq::Timeout::RecvBody | ureq::Timeout::PerRead => TimeoutPhase::Body,
            _ => TimeoutPhase::Deadline,
        }),
        U::HostNotFound => ErrorKind::Dns,
        U::BadUri(r) => ErrorKind::InvalidRequest(r.clone()),
        U::Http(r) => ErrorKind::InvalidRequest(r.to_string()),
        // The request head did not fit the output buffer: the caller's request, not the
        // server's fault. ureq-proto's error type is not re-exported, so its message decides.
        U::Protocol(p) if p.to_string().contains("output too small") => ErrorKind::InvalidRequest(
            "request head larger than the output buffer (raise PoolConfigBuilder::buffer_sizes)"
                .into(),
        ),
        U::Protocol(_) => ErrorKind::Protocol,
        U::BodyExceedsLimit(l) => ErrorKind::BodyTooLarge(*l),
        U::LargeResponseHeader(_, limit) => ErrorKind::HeaderTooLarge(*limit),
        U::TooManyRedirects => ErrorKind::TooManyRedirects(0),
        U::ConnectionFailed => ErrorKind::Connect(ConnectFailure::Other),
        U::Tls(_) => ErrorKind::Tls(TlsFailure::Handshake),
        U::Rustls(r) => ErrorKind::Tls(tls_failure(r)),
        U::Io(io) => io_kind(io, request_sent),
        U::Decompress(_, _) => ErrorKind::Protocol,
        U::Other(o) => match (
            o.downcast_ref::<rustls::Error>(),
            o.downcast_ref::<Refused>(),
        ) {
            (Some(r), _) => ErrorKind::Tls(tls_failure(r)),
            (None, Some(r)) => r.kind.clone(),
            (None, None) => ErrorKind::Other,
        },
        _ => ErrorKind::Other,
    };
    let err = Error::new(kind);
    match e {
        U::Io(io) => match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(r) => Error::new(ErrorKind::Tls(tls_failure(r))).with_source(r.to_string()),
            None => err.with_source(io),
        },
        U::Other(o) => err.with_source(o),
        other => err.with_source(other),
    }
}

fn io_kind(io: &io::Error, request_sent: bool) -> ErrorKind {
    use io::ErrorKind as K;
    if io.get_ref().is_some_and(|i| i.is::<rustls::Error>()) {
        return ErrorKind::Tls(TlsFailure::Handshake);
    }
    match io.kind() {
        K::ConnectionRefused => ErrorKind::Connect(ConnectFailure::Refused),
        K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => {
            ErrorKind::Connect(ConnectFailure::Unreachable)
        }
        K::TimedOut | K::WouldBlock => ErrorKind::Timeout(TimeoutPhase::Response),
        kind => ErrorKind::Io {
            kind,
            may_have_been_processed: request_sent,
        },
    }
}

pub(crate) fn tls_failure(e: &rustls::Error) -> TlsFailure {
    use rustls::AlertDescription as A;
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => TlsFailure::UnknownIssuer,
            C::Expired | C::NotValidYet => TlsFailure::Expired,
            C::ExpiredContext { .. } | C::NotValidYetContext { .. } => TlsFailure::Expired,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
            _ => TlsFailure::BadCertificate,
        },
        // What a server alerts with when the client certificate is missing (TLS 1.3's
        // certificate_required; TLS 1.2 servers send handshake_failure, which says nothing
        // more) or not trusted by it.
        rustls::Error::AlertReceived(
            A::CertificateRequired | A::UnknownCA | A::BadCertificate | A::CertificateUnknown,
        ) => TlsFailure::ClientCertificate,
        _ => TlsFailure::Handshake,
    }
}

/// The class of error a failed call ended with, used as the `kind` label of failure counters.
///
/// # Examples
///
/// ```
/// use http_sentinel::error::ErrorClass;
///
/// assert_eq!(ErrorClass::TooManyRedirects.as_str(), "too_many_redirects");
/// assert_eq!(ErrorClass::ALL.len(), 18);
/// assert!(ErrorClass::ALL.contains(&ErrorClass::Timeout));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Name resolution failed.
    Dns,
    /// The TCP connection could not be established.
    Connect,
    /// The TLS handshake or certificate validation failed.
    Tls,
    /// A deadline or phase timeout expired.
    Timeout,
    /// The peer violated HTTP.
    Protocol,
    /// The response body could not be decoded.
    Decode,
    /// Any other I/O error on an established connection.
    Io,
    /// The response body exceeded the configured limit.
    BodyTooLarge,
    /// No client could be checked out of the pool in time.
    PoolTimeout,
    /// The redirect limit was reached.
    TooManyRedirects,
    /// A redirect was refused by policy.
    RedirectRefused,
    /// The host's circuit breaker was open.
    CircuitOpen,
    /// The server asked to retry later than the configured limit allows.
    RetryAfterTooLong,
    /// Pacing would have held the request past its deadline.
    RateLimited,
    /// The host's adaptive concurrency limit had no slot before the deadline.
    Overloaded,
    /// The request could not be built or sent as given.
    InvalidRequest,
    /// The response status was treated as an error.
    Status,
    /// Anything else.
    Other,
}

impl ErrorClass {
    /// Every class, in declaration order.
    pub const ALL: &'static [ErrorClass] = &[
        ErrorClass::Dns,
        ErrorClass::Connect,
        ErrorClass::Tls,
        ErrorClass::Timeout,
        ErrorClass::Protocol,
        ErrorClass::Decode,
        ErrorClass::Io,
        ErrorClass::BodyTooLarge,
        ErrorClass::PoolTimeout,
        ErrorClass::TooManyRedirects,
        ErrorClass::RedirectRefused,
        ErrorClass::CircuitOpen,
        ErrorClass::RetryAfterTooLong,
        ErrorClass::RateLimited,
        ErrorClass::Overloaded,
        ErrorClass::InvalidRequest,
        ErrorClass::Status,
        ErrorClass::Other,
    ];

    /// Number of classes, the length of per-class counter arrays.
    pub(crate) const COUNT: usize = Self::ALL.len();

    /// The snake_case label, as used in the Prometheus `kind` label.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::error::ErrorClass;
    ///
    /// assert_eq!(ErrorClass::CircuitOpen.as_str(), "circuit_open");
    /// assert_eq!(ErrorClass::Dns.to_string(), "dns");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Dns => "dns",
            ErrorClass::Connect => "connect",
            ErrorClass::Tls => "tls",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Protocol => "protocol",
            ErrorClass::Decode => "decode",
            ErrorClass::Io => "io",
            ErrorClass::BodyTooLarge => "body_too_large",
            ErrorClass::PoolTimeout => "pool_timeout",
            ErrorClass::TooManyRedirects => "too_many_redirects",
            ErrorClass::RedirectRefused => "redirect_refused",
            ErrorClass::CircuitOpen => "circuit_open",
            ErrorClass::RetryAfterTooLong => "retry_after_too_long",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Overloaded => "overloaded",
            ErrorClass::InvalidRequest => "invalid_request",
            ErrorClass::Status => "status",
            ErrorClass::Other => "other",
        }
    }

    /// Position in [`ErrorClass::ALL`] and in per-class counter arrays.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_host_and_attempts_only() {
        let e = Error::new(ErrorKind::Connect(ConnectFailure::Refused))
            .with_host("127.0.0.1:9")
            .with_attempts(3, 0);
        assert_eq!(
            e.to_string(),
            "connection refused [127.0.0.1:9] after 3 attempts"
        );
        assert!(e.is_connect());
        assert!(!e.is_timeout());
    }

    #[test]
    fn post_failure_after_send_says_it_may_have_been_processed() {
        let io = io::Error::from(io::ErrorKind::UnexpectedEof);
        let e = from_ureq(ureq::Error::Io(io), true);
        assert!(e.may_have_been_processed());
        assert!(e.to_string().contains("may have been processed"));
        let io = io::Error::from(io::ErrorKind::ConnectionRefused);
        let e = from_ureq(ureq::Error::Io(io), false);
        assert_eq!(e.kind(), &ErrorKind::Connect(ConnectFailure::Refused));
        assert!(!e.may_have_been_processed());
    }

    #[test]
    fn certificate_errors_are_distinguished() {
        use rustls::CertificateError as C;
        let cases = [
            (C::UnknownIssuer, TlsFailure::UnknownIssuer),
            (C::Expired, TlsFailure::Expired),
            (C::NotValidForName, TlsFailure::NameMismatch),
            (C::BadSignature, TlsFailure::BadCertificate),
        ];
        for (cert, want) in cases {
            let e = from_ureq(
                ureq::Error::Rustls(rustls::Error::InvalidCertificate(cert)),
                false,
            );
            assert_eq!(e.kind(), &ErrorKind::Tls(want));
        }
    }
}
