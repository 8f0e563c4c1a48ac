//! `Events`: a response body read as server-sent events, under an idle timeout between
//! events instead of the call's deadline.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::download::IdleDeadline;
use crate::error::{Error, ErrorKind};
use crate::metrics::HostCounters;
use crate::sse::{Event, Parser};

/// How long a stream may go without an event unless
/// [`idle_timeout`](Events::idle_timeout) says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A response body read as server-sent events (`text/event-stream`), from
/// [`Response::events`](crate::Response::events): an iterator of `Result<Event, Error>`.
///
/// - The call's deadline covered the wait for the response head. The stream itself is
///   bounded by an idle timeout between events (60 s unless
///   [`idle_timeout`](Events::idle_timeout) says otherwise): a stream that stalls, or drips
///   bytes without completing an event, fails with
///   [`TimeoutPhase::Idle`](crate::error::TimeoutPhase::Idle) within it. A deadline set on the
///   request itself ([`RequestBuilder::timeout`](crate::RequestBuilder::timeout)) still bounds
///   the whole stream. Through a proxy, the pool's deadline bounds the stream too.
/// - The call's retries all happened before the response head was returned: a cut or an
///   error after it is the caller's to see (the iterator yields it, then ends) and is never
///   replayed. [`EventSource`](crate::EventSource) reconnects with `Last-Event-ID` on request.
/// - Each line and each event's data is held within the pool's body limit; a longer one is
///   [`ErrorKind::BodyTooLarge`]. The stream as a whole has no length limit.
/// - The iterator ends at the end of the body; an event the body did not finish with a
///   blank line is dropped, as the standard says.
///
/// # Examples
///
/// ```no_run
/// use http_sentinel::{ClientPool, PoolConfig};
/// use std::time::Duration;
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let client = pool.checkout()?;
/// let response = client
///     .post("http://127.0.0.1:8080/v1/chat/completions")
///     .header("Accept", "text/event-stream")
///     .body(r#"{"stream":true}"#)
///     .send()?
///     .error_for_status()?;
/// for event in response.events().idle_timeout(Duration::from_secs(20)) {
///     let event = event?;
///     if event.data == "[DONE]" {
///         break;
///     }
///     print!("{}", event.data);
/// }
/// # Ok::<(), http_sentinel::Error>(())
/// ```
pub struct Events {
    reader: ureq::BodyReader<'static>,
    parser: Parser,
    buf: Vec<u8>,
    /// The idle timeout between events, bounded by a deadline set on the request itself,
    /// which covers the stream as a whole.
    idle: IdleDeadline,
    origin: Origin,
    counters: Arc<CachePadded<HostCounters>>,
    /// An error that ends the stream once the events parsed before it are handed out.
    pending: Option<Error>,
    done: bool,
}

/// What the errors of a stream say about where it came from.
pub(crate) struct Origin {
    pub(crate) host: String,
    pub(crate) attempts: u32,
    pub(crate) redirects: u32,
    pub(crate) request_id: Option<String>,
    pub(crate) limit: u64,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("host", &self.origin.host)
            .field("idle_timeout", &self.idle.idle())
            .field("last_event_id", &self.parser.last_event_id())
            .finish_non_exhaustive()
    }
}

impl Events {
    pub(crate) fn new(
        body: ureq::Body,
        idle: IdleDeadline,
        origin: Origin,
        counters: Arc<CachePadded<HostCounters>>,
    ) -> Events {
        let limit = usize::try_from(origin.limit).unwrap_or(usize::MAX);
        Events {
            reader: body.into_with_config().limit(u64::MAX).reader(),
            parser: Parser::new(limit),
            buf: vec![0; 8 * 1024],
            idle,
            origin,
            counters,
            pending: None,
            done: false,
        }
    }

    /// How long the stream may go without an event (from the response head to the first
    /// one, and between two): past it the iterator yields a
    /// [`TimeoutPhase::Idle`](crate::error::TimeoutPhase::Idle) timeout and ends. Defaults to
    /// the request's [`body_idle_timeout`](crate::RequestBuilder::body_idle_timeout) when it
    /// set one, else 60 s.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::{ClientPool, PoolConfig};
    /// use std::time::Duration;
    ///
    /// let pool = ClientPool::new(PoolConfig::default())?;
    /// let response = pool.checkout()?.get("http://127.0.0.1:8080/feed").send()?;
    /// let events = response.events().idle_timeout(Duration::from_secs(5));
    /// # let _ = events;
    /// # Ok::<(), http_sentinel::Error>(())
    /// ```
    pub fn idle_timeout(mut self, idle: Duration) -> Events {
        self.idle.set_idle(idle);
        self
    }

    /// The last event id the stream set: what to send as `Last-Event-ID` to resume it.
    pub fn last_event_id(&self) -> &str {
        self.parser.last_event_id()
    }

    /// The reconnection time the stream asked for with its last `retry` field.
    pub fn retry(&self) -> Option<Duration> {
        self.parser.retry()
    }

    fn fail(&mut self, e: Error) -> Option<Result<Event, Error>> {
        self.done = true;
        // The connection is out of step with the stream: it is not reused.
        self.idle.release();
        Some(Err(e
            .with_host(&self.origin.host)
            .with_attempts(self.origin.attempts, self.origin.redirects)
            .with_request_id(self.origin.request_id.as_deref())))
    }
}

impl Iterator for Events {
    type Item = Result<Event, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.parser.next_event() {
                self.idle.arm();
                return Some(Ok(event));
            }
            if let Some(e) = self.pending.take() {
                return self.fail(e);
            }
            if self.done {
                return None;
            }
            let n = match self.reader.read(&mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    self.idle.release();
                    return None;
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let e = self.idle.read_error(e);
                    return self.fail(e);
                }
            };
            self.counters.record_body_bytes(n as u64);
            if let Err(too) = self.parser.feed(&self.buf[..n]) {
                let e = Error::new(ErrorKind::BodyTooLarge(self.origin.limit)).with_source(too);
                self.pending = Some(e);
            }
        }
    }
}
