//! `EventSource`: server-sent events that resume after a cut, with `Last-Event-ID` (opt-in).

use std::time::Duration;

use crate::client::Client;
use crate::error::{Error, ErrorKind, TimeoutPhase};
use crate::request::RequestBuilder;
use crate::sse::Event;
use crate::stream::{Events, DEFAULT_IDLE_TIMEOUT};

/// The wait before reconnecting until the stream sends a `retry` field (the standard leaves
/// it to the client; browsers wait about 3 s).
const DEFAULT_RETRY: Duration = Duration::from_secs(3);
/// The longest wait a `retry` field may ask for: the rest is the server's mistake.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// A stream of server-sent events that reconnects when it is cut or stalls, sending the last
/// event id in `Last-Event-ID` so that a server that supports it resumes after the last event
/// the caller saw, as a browser's `EventSource` does. Opt-in: only for servers that resume
/// streams; [`Response::events`](crate::Response::events) never reconnects.
///
/// - A cut (an I/O error) or a stall ([`TimeoutPhase::Idle`]) reconnects, after the wait the
///   stream last asked for with `retry` (3 s until it does, at most 60 s), up to
///   [`max_reconnects`](EventSource::max_reconnects) times in all; other errors, an error
///   status, and the reconnects running out are yielded, and end the stream.
/// - The end of the body ends the stream (LLM APIs end a completion so); so does a 204.
/// - Each connection is an ordinary call: retries, breaker and deadline apply to its head.
///
/// # Examples
///
/// ```no_run
/// use http_sentinel::{ClientPool, EventSource, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let client = pool.checkout()?;
/// let mut source = EventSource::new(&client, |c| {
///     c.get("http://127.0.0.1:8080/feed").header("Accept", "text/event-stream")
/// })
/// .max_reconnects(5);
/// for event in source.by_ref() {
///     println!("{}", event?.data);
/// }
/// println!("reconnected {} times", source.reconnects());
/// # Ok::<(), http_sentinel::Error>(())
/// ```
pub struct EventSource<'c, F> {
    client: &'c Client,
    request: F,
    events: Option<Events>,
    last_id: String,
    retry: Duration,
    idle: Duration,
    max_reconnects: u32,
    reconnects: u32,
    done: bool,
}

impl<'c, F> std::fmt::Debug for EventSource<'c, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSource")
            .field("last_event_id", &self.last_id)
            .field("reconnects", &self.reconnects)
            .finish_non_exhaustive()
    }
}

impl<'c, F: FnMut(&'c Client) -> RequestBuilder<'c>> EventSource<'c, F> {
    /// A stream that builds each connection's request with `request` (the `Last-Event-ID`
    /// header is added to it). Nothing is sent before the first `next`.
    pub fn new(client: &'c Client, request: F) -> Self {
        EventSource {
            client,
            request,
            events: None,
            last_id: String::new(),
            retry: DEFAULT_RETRY,
            idle: DEFAULT_IDLE_TIMEOUT,
            max_reconnects: 3,
            reconnects: 0,
            done: false,
        }
    }

    /// How many times the stream may reconnect in all. Defaults to 3.
    pub fn max_reconnects(mut self, n: u32) -> Self {
        self.max_reconnects = n;
        self
    }

    /// Each connection's idle timeout ([`Events::idle_timeout`]). Defaults to 60 s.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// How many times the stream has reconnected.
    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    /// The last event id the stream committed: what the next reconnection sends.
    pub fn last_event_id(&self) -> &str {
        self.events
            .as_ref()
            .map_or(&self.last_id, |e| e.last_event_id())
    }

    fn connect(&mut self) -> Result<Option<Events>, Error> {
        let mut request = (self.request)(self.client);
        if !self.last_id.is_empty() {
            request = request.header("last-event-id", self.last_id.as_str());
        }
        let response = request.send()?.error_for_status()?;
        if response.status().as_u16() == 204 {
            return Ok(None);
        }
        Ok(Some(response.events().idle_timeout(self.idle)))
    }

    /// Whether the stream may reconnect after `e`; if so, waits first.
    fn may_reconnect(&mut self, e: &Error) -> bool {
        let cut = matches!(
            e.kind(),
            ErrorKind::Io { .. } | ErrorKind::Timeout(TimeoutPhase::Idle | TimeoutPhase::Body)
        );
        if !cut || self.reconnects >= self.max_reconnects {
            return false;
        }
        self.reconnects += 1;
        log::debug!(
            "{}: event stream cut ({}), reconnecting in {:?}",
            e.host().unwrap_or("-"),
            e.kind(),
            self.retry
        );
        std::thread::sleep(self.retry);
        true
    }
}

impl<'c, F: FnMut(&'c Client) -> RequestBuilder<'c>> Iterator for EventSource<'c, F> {
    type Item = Result<Event, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let events = match &mut self.events {
                Some(events) => events,
                None => match self.connect() {
                    Ok(Some(events)) => self.events.insert(events),
                    Ok(None) => break,
                    Err(e) if self.may_reconnect(&e) => continue,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
            };
            let next = events.next();
            if self.last_id != events.last_event_id() {
                self.last_id = events.last_event_id().to_owned();
            }
            if let Some(retry) = events.retry() {
                self.retry = retry.min(MAX_RETRY);
            }
            match next {
                Some(Ok(event)) => return Some(Ok(event)),
                Some(Err(e)) => {
                    self.events = None;
                    if !self.may_reconnect(&e) {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                None => break,
            }
        }
        self.done = true;
        self.events = None;
        None
    }
}
