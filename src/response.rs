//! `Response`: the status and headers of a finished call, and its body, read within the body
//! limit and the call's deadline.

use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use ureq::http::header::{AsHeaderName, HeaderName};
use ureq::http::{self, HeaderMap, StatusCode, Uri, Version};

use crate::decode::Decoded;
use crate::download::{into_error, BodyReader, BodyRules, IdleDeadline};
use crate::error::{Error, ErrorKind};
use crate::events::{BodyEvent, EventHandler};
use crate::metrics::HostCounters;
use crate::redirect::RedirectHop;
use crate::shared::HostKey;
use crate::stream::{Events, Origin, DEFAULT_IDLE_TIMEOUT};
use crate::telemetry::AttemptTimings;
use crate::transport::Connections;

/// A response: status and headers are here; the body is read with [`text`](Response::text),
/// [`bytes`](Response::bytes), [`json`](Response::json) or
/// [`into_reader`](Response::into_reader), within the body limit (the pool's, or the
/// request's own: [`RequestBuilder::body_limit`](crate::RequestBuilder::body_limit)) and the
/// call's deadline (or the request's
/// [`body_idle_timeout`](crate::RequestBuilder::body_idle_timeout)). Read the body to its end
/// for the connection to be reused.
///
/// # Examples
///
/// ```no_run
/// use http_sentinel::{http::StatusCode, ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let client = pool.checkout()?;
/// let response = client.get("http://127.0.0.1:8080/health").send()?;
/// if response.status() == StatusCode::OK {
///     println!("{}", response.text()?);
/// }
/// # Ok::<(), http_sentinel::Error>(())
/// ```
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    uri: Uri,
    host: HostKey,
    attempts: u32,
    redirects: u32,
    body: ureq::Body,
    rules: BodyRules,
    history: Vec<RedirectHop>,
    counters: Arc<CachePadded<HostCounters>>,
    timings: AttemptTimings,
    events: Option<Arc<dyn EventHandler>>,
    stream: StreamParts,
    version: Version,
    connection: ConnectionFacts,
}

/// How the final response's exchange was carried: its peer, and whether the attempt reused
/// a pooled connection (the attempt's timings already know; this is their copy).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnectionFacts {
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) reused: bool,
}

/// What [`Response::events`] needs to take the body out of the call's deadline.
pub(crate) struct StreamParts {
    /// The client's connections (`None` through a proxy, where ureq enforces the deadline).
    pub(crate) conns: Option<Arc<Connections>>,
    /// The connection carrying the body (taken when the call returned: the client may send
    /// other calls before the body is read).
    pub(crate) serial: u64,
    /// The call's deadline when it was set on the request itself.
    pub(crate) deadline: Option<Instant>,
}

impl StreamParts {
    /// Takes the body's connection out of the call's deadline, under `idle` (`None` through
    /// a proxy).
    fn idle_deadline(&self, idle: Duration, what: &'static str) -> IdleDeadline {
        let lease = self
            .conns
            .as_ref()
            .map(|c| c.stream_deadline(self.serial, self.deadline));
        IdleDeadline::new(lease, idle, self.deadline, what)
    }
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

/// What the engine knows of a finished call besides the response.
pub(crate) struct Finished {
    /// The final hop's URL, its secret query values redacted.
    pub(crate) uri: Uri,
    pub(crate) host: HostKey,
    pub(crate) attempts: u32,
    pub(crate) redirects: u32,
    pub(crate) counters: Arc<CachePadded<HostCounters>>,
    /// The body's limits and idle timeout.
    pub(crate) body: BodyRules,
    /// The redirects followed, redacted.
    pub(crate) history: Vec<RedirectHop>,
    pub(crate) timings: AttemptTimings,
    pub(crate) events: Option<Arc<dyn EventHandler>>,
    pub(crate) stream: StreamParts,
    /// How the final response's exchange was carried.
    pub(crate) connection: ConnectionFacts,
}

/// The longest server request id kept: enough for any id scheme, not for a hostile header.
const MAX_REQUEST_ID: usize = 128;

/// The request id the server gave a response: `x-request-id` (OpenAI, most gateways), else
/// `request-id` (Anthropic, Stripe).
pub(crate) fn server_request_id(headers: &HeaderMap) -> Option<String> {
    request_id_in(headers).map(str::to_owned)
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// The server's request id in `headers`, cut to `MAX_REQUEST_ID` characters: read when asked
/// for, so a response nobody asks costs no lookup or copy.
fn request_id_in(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(&X_REQUEST_ID)
        .or_else(|| headers.get(&REQUEST_ID))?
        .to_str()
        .ok()?;
    let end = value
        .char_indices()
        .nth(MAX_REQUEST_ID)
        .map_or(value.len(), |(i, _)| i);
    Some(&value[..end])
}

impl Response {
    pub(crate) fn new(response: http::Response<ureq::Body>, f: Finished) -> Response {
        let (parts, body) = response.into_parts();
        Response {
            stream: f.stream,
            version: parts.version,
            connection: f.connection,
            status: parts.status,
            headers: parts.headers,
            uri: f.uri,
            host: f.host,
            attempts: f.attempts,
            redirects: f.redirects,
            body,
            rules: f.body,
            history: f.history,
            counters: f.counters,
            timings: f.timings,
            events: f.events,
        }
    }

    /// Where the time of the attempt that got this response went: DNS, connect, TLS
    /// handshake, time to first byte, whether the connection was reused, the attempt number.
    /// The body's time is reported to [`EventHandler::on_body`] once it is read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/").send()?;
    /// if !response.timings().reused_connection() {
    ///     println!("new connection: connect {:?}", response.timings().connect());
    /// }
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn timings(&self) -> &AttemptTimings {
        &self.timings
    }

    /// The status code.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{http::StatusCode, ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/").send()?;
    /// assert!(response.status().is_success());
    /// assert_eq!(response.status(), StatusCode::OK);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// All response headers.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{http::header::CONTENT_TYPE, ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/").send()?;
    /// for (name, value) in response.headers() {
    ///     println!("{name}: {value:?}");
    /// }
    /// let json = response.headers().get(CONTENT_TYPE).is_some_and(|v| v == "application/json");
    /// # let _ = json;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The first value of a header, when it is valid text. Takes a `&str` (any case) or a
    /// [`HeaderName`](http::HeaderName).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{http::header::ETAG, ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/").send()?;
    /// let request_id = response.header("x-request-id");
    /// let etag = response.header(ETAG);
    /// # let _ = (request_id, etag);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn header<K: AsHeaderName>(&self, name: K) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The URL that answered, after redirects. It never holds credentials: userinfo is moved
    /// into an `Authorization` header before the request is sent, and the value of each query
    /// parameter marked with
    /// [`RequestBuilder::sensitive_query`](crate::RequestBuilder::sensitive_query) shows as
    /// `***` here (it was sent for real).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/old").send()?;
    /// println!("answered by {} after {} redirects", response.url(), response.redirects());
    /// assert_eq!(response.url().path(), "/new");
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn url(&self) -> &Uri {
        &self.uri
    }

    /// The request id the server gave this response (its `x-request-id` header, else
    /// `request-id`), at most 128 characters; errors from the response carry it too
    /// ([`Error::request_id`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/v1/models").send()?;
    /// log::info!("served as {}", response.request_id().unwrap_or("-"));
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn request_id(&self) -> Option<&str> {
        request_id_in(&self.headers)
    }

    /// The body as a stream of server-sent events: see [`Events`] for the idle timeout,
    /// retries and limits.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/v1/stream").send()?;
    /// for event in response.events() {
    ///     let event = event?;
    ///     println!("{}: {}", event.event, event.data);
    /// }
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn events(self) -> Events {
        let idle = self.stream.idle_deadline(
            self.rules.idle.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            "server-sent event",
        );
        let origin = Origin {
            host: self.host.to_string(),
            attempts: self.attempts,
            redirects: self.redirects,
            request_id: server_request_id(&self.headers),
            limit: self.rules.limit,
        };
        Events::new(self.body, idle, origin, self.counters)
    }

    /// How many attempts the call made (1 when it succeeded first time).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/flaky").send()?;
    /// if response.attempts() > 1 {
    ///     eprintln!("succeeded after {} attempts", response.attempts());
    /// }
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// How many redirects the call followed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/moved").send()?;
    /// assert_eq!(response.redirects(), 1);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn redirects(&self) -> u32 {
        self.redirects
    }

    /// The redirects the call followed, in order: each one's status and the URL that
    /// answered with it, redacted as [`url`](Response::url) is (no password; the request's
    /// [`sensitive_query`](crate::RequestBuilder::sensitive_query) values as `***`). The URL
    /// that gave this response is [`url`](Response::url), not in the list. Empty when no
    /// redirect was followed (with
    /// [`no_redirects`](crate::RequestBuilder::no_redirects), a 3xx is this response).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/moved").send()?;
    /// for hop in response.redirect_history() {
    ///     println!("{} from {}", hop.status(), hop.url());
    /// }
    /// assert_eq!(response.redirect_history().len() as u32, response.redirects());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn redirect_history(&self) -> &[RedirectHop] {
        &self.history
    }

    /// The body's length as its `Content-Length` declares it, when it does: `None` for a
    /// chunked or close-delimited body, a response without a body (`HEAD`, 204, 304), and a
    /// body the client decompresses (the declared length is not the length read).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/big.iso").send()?;
    /// match response.content_length() {
    ///     Some(n) => println!("{n} bytes to come"),
    ///     None => println!("length unknown"),
    /// }
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn content_length(&self) -> Option<u64> {
        self.body.content_length()
    }

    /// The HTTP version the server answered with (`HTTP/1.1` or `HTTP/1.0`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{http::Version, ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/").send()?;
    /// assert_eq!(response.version(), Version::HTTP_11);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn version(&self) -> Version {
        self.version
    }

    /// The address of the peer the final request was sent to: the server's, or the proxy's
    /// when the request went through an HTTP proxy. `None` through a SOCKS proxy.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://localhost:8080/").send()?;
    /// if let Some(addr) = response.remote_addr() {
    ///     println!("answered by {addr}");
    /// }
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.connection.remote_addr
    }

    /// Whether the final request went out on a pooled connection that an earlier request had
    /// used (`false`: a connection was opened for it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// let first = client.get("http://127.0.0.1:8080/").send()?;
    /// assert!(!first.connection_reused());
    /// first.bytes()?; // read to the end: the connection goes back to the client's pool
    /// let second = client.get("http://127.0.0.1:8080/").send()?;
    /// assert!(second.connection_reused());
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn connection_reused(&self) -> bool {
        self.connection.reused
    }

    /// Turns a 4xx or 5xx status into [`ErrorKind::Status`]. The body is dropped.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Status`] for 400..=599.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let client = pool.checkout()?;
    /// match client.get("http://127.0.0.1:8080/missing").send()?.error_for_status() {
    ///     Ok(response) => println!("{}", response.text()?),
    ///     Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => println!("not there"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn error_for_status(self) -> Result<Response, Error> {
        if self.status.is_client_error() || self.status.is_server_error() {
            Err(Error::new(ErrorKind::Status(self.status))
                .with_host(&self.host)
                .with_attempts(self.attempts, self.redirects)
                .with_request_id(request_id_in(&self.headers)))
        } else {
            Ok(self)
        }
    }

    fn body_error(&self, e: Error) -> Error {
        e.with_host(&self.host)
            .with_attempts(self.attempts, self.redirects)
            .with_request_id(request_id_in(&self.headers))
    }

    /// The body's idle timeout, when the request set one: from now on it, not the call's
    /// deadline, bounds the body's reads.
    fn body_idle(&self) -> Option<IdleDeadline> {
        let idle = self.rules.idle?;
        Some(self.stream.idle_deadline(idle, "body byte"))
    }

    /// Reads the whole body as bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BodyTooLarge`] past the body limit, at once (nothing read) when the
    /// `Content-Length` declares more; [`ErrorKind::Decode`] for a content coding the client
    /// cannot undo; timeouts, truncation (over TLS, also a close-delimited body that ends
    /// without `close_notify`) and framing errors as their kinds. A truncated body is never
    /// returned as a success.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let image = pool.checkout()?.get("http://127.0.0.1:8080/logo.png").send()?.bytes()?;
    /// std::fs::write("logo.png", image)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bytes(mut self) -> Result<Vec<u8>, Error> {
        if let Some(e) = self.declared_too_large(Some(self.rules.limit)) {
            return Err(e);
        }
        let limit = self.rules.limit;
        // ureq gives no length for a body it decodes (gzip, br).
        let declared = self.body.content_length();
        let started = self.events.is_some().then(Instant::now);
        let mut reader = BodyReader {
            refused: None,
            idle: self.body_idle(),
            inner: Decoded::new(
                self.body.with_config().limit(limit).reader(),
                &self.headers,
                limit,
            ),
            host: Arc::clone(&self.host),
            counters: None,
        };
        // Nor is the declared length of a body decoded here (zstd) a hint of the decoded one:
        // it is the coded length. A coding no one decodes reaches the caller as sent, and its
        // declared length is the body's.
        let hint = declared.filter(|_| !reader.inner.decodes());
        let r = read_within(&mut reader, limit, hint);
        drop(reader);
        if let (Some(h), Some(started)) = (&self.events, started) {
            h.on_body(&BodyEvent {
                host: self.host.to_string(),
                attempt: self.timings.attempt(),
                duration: started.elapsed(),
                bytes: r.as_ref().map_or(0, |b| b.len() as u64),
                ok: r.is_ok(),
            });
        }
        let bytes = r.map_err(|e| self.body_error(into_error(e)))?;
        self.counters.record_body_bytes(bytes.len() as u64);
        Ok(bytes)
    }

    /// A body whose `Content-Length` is over the limit fails before a byte of it is read:
    /// reading up to the limit first would only spend time and memory on a body that is
    /// refused anyway, and the error names what the server declared.
    fn declared_too_large(&self, limit: Option<u64>) -> Option<Error> {
        let declared = self.body.content_length()?;
        let limit = limit?;
        (declared > limit).then(|| {
            Error::new(ErrorKind::BodyTooLarge(limit))
                .with_source(format!(
                    "content-length declares {declared} bytes, over the {limit} byte limit"
                ))
                .with_host(&self.host)
                .with_attempts(self.attempts, self.redirects)
        })
    }

    /// Reads the whole body as UTF-8 text (invalid sequences replaced).
    ///
    /// # Errors
    ///
    /// As [`bytes`](Response::bytes).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let page = pool.checkout()?.get("http://127.0.0.1:8080/").send()?.text()?;
    /// println!("{page}");
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
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
    /// As [`bytes`](Response::bytes), or [`ErrorKind::Decode`] (with serde's message, and the
    /// call's attempts and redirects) when the body is not valid JSON for `T`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let order: serde_json::Value =
    ///     pool.checkout()?.get("http://127.0.0.1:8080/orders/7").send()?.json()?;
    /// assert_eq!(order["id"], 7);
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        let host = self.host.clone();
        let (attempts, redirects) = (self.attempts, self.redirects);
        let request_id = server_request_id(&self.headers);
        let bytes = self.bytes()?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(ErrorKind::Decode(format!("JSON: {e}")))
                .with_host(&host)
                .with_attempts(attempts, redirects)
                .with_request_id(request_id.as_deref())
                .with_source(e)
        })
    }

    /// The body as a reader, limited to the body limit (none after
    /// [`RequestBuilder::no_body_limit`](crate::RequestBuilder::no_body_limit)) and bounded by
    /// the call's deadline or the request's
    /// [`body_idle_timeout`](crate::RequestBuilder::body_idle_timeout). Errors surface as
    /// `io::Error`s whose inner error is the crate's [`Error`]; a `Content-Length` over the
    /// limit fails the first read with [`ErrorKind::BodyTooLarge`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/export.csv").send()?;
    /// let mut file = std::fs::File::create("export.csv")?;
    /// std::io::copy(&mut response.into_reader(), &mut file)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_reader(self) -> impl Read + Send + 'static {
        let limit = self.rules.reader_limit;
        BodyReader {
            refused: self.declared_too_large(limit),
            idle: self.body_idle(),
            inner: Decoded::new(
                self.body
                    .into_with_config()
                    .limit(limit.unwrap_or(u64::MAX))
                    .reader(),
                &self.headers,
                limit.unwrap_or(u64::MAX),
            ),
            host: self.host,
            counters: Some(self.counters),
        }
    }
}

/// Reads `reader` to its end without the capacity ever passing `limit + 1` bytes.
/// `read_to_end` doubles its Vec, so a body (a decompression bomb) that reaches a 64 MiB
/// limit would hold a 128 MiB buffer. Small bodies grow by doubling from their declared
/// length; past 1 MiB the capacity goes straight to the limit, which the allocator maps
/// without touching it (only the pages written become resident), and is shrunk to the body
/// at the end: no copy of a large body is ever made, whatever the allocator does on realloc.
fn read_within(reader: &mut impl Read, limit: u64, hint: Option<u64>) -> std::io::Result<Vec<u8>> {
    const DIRECT: usize = 1024 * 1024;
    // Bytes zeroed ahead of a read when the length is unknown: reads go straight into the
    // Vec, so a 13-byte body costs 13 zeroed bytes with a declared length and 4 KiB without,
    // not a 16 KiB stack buffer zeroed and copied on every call.
    const WINDOW: usize = 4 * 1024;
    let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    // A declared length caps the buffer as the limit does (ureq fails a body longer than
    // its Content-Length), but is not trusted with more than 1 MiB before bytes arrive.
    let cap = hint.map_or(cap, |h| usize::try_from(h).unwrap_or(usize::MAX).min(cap));
    // Without a declared length nothing is reserved until the first byte arrives (an empty
    // body allocates nothing), then 16 KiB.
    let first = hint.map_or(0, |_| cap).min(DIRECT);
    let mut out = Vec::with_capacity(first);
    let mut filled = 0;
    loop {
        if filled == out.capacity() {
            // Full: one small read tells the end from more bytes before the Vec grows, so a
            // body that fills its declared length exactly is never reallocated.
            let mut probe = [0u8; 64];
            let n = match reader.read(&mut probe) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let need = filled + n;
            let doubled = out.capacity().saturating_mul(2).max(need).max(16 * 1024);
            let target = if doubled > DIRECT {
                cap
            } else {
                doubled.min(cap)
            };
            out.reserve_exact(target.max(need) - out.len());
            out.extend_from_slice(&probe[..n]);
            filled = need;
            continue;
        }
        // Zero only the window about to be read into: capacity reserved up to the limit stays
        // untouched (and unmapped) until bytes arrive.
        let window = (out.capacity() - filled).min(WINDOW.max(filled));
        out.resize(filled + window, 0);
        let r = reader.read(&mut out[filled..]);
        // What the read wrote stays; the rest of the zeroed window is cut off again.
        filled += r.as_ref().map_or(0, |&n| n.min(window));
        out.truncate(filled);
        match r {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // Give back what the jump to the limit reserved beyond the body.
    if out.capacity() > DIRECT && out.capacity() - out.len() > out.len() / 4 {
        out.shrink_to_fit();
    }
    Ok(out)
}
