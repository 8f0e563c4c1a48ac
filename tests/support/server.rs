#![allow(dead_code)]
//! A fault-injecting HTTP/1.1 server on the loopback interface, for tests and
//! examples.
//!
//! Only std is used so that the file can be pulled into any test binary or
//! example with `#[path = ...] mod server;`.
//!
//! Threads: one accept thread plus one thread per connection. Dropping the
//! server (or calling [`TestServer::shutdown`]) stops accepting, shuts down
//! every live socket, wakes every stalled or dripping connection and waits
//! (bounded) for all threads to finish. Reads and writes carry a timeout, so a
//! forgotten client cannot pin a thread either.
//!
//! # What each fault looks like on the wire
//!
//! Two kinds of close are used:
//!
//! * *FIN close*: whatever is left of the request is consumed, the write half
//!   is shut down (the client reads EOF), and anything the client sends
//!   afterwards is drained for a short while, so the client never gets a
//!   reset for data it sends after the close.
//! * *RST close*: std has no stable `SO_LINGER` setter (`set_linger` is
//!   unstable), so a reset is produced portably with std alone: the server
//!   leaves the last byte of the request unread in the kernel's receive buffer
//!   and closes the socket. Linux (and the BSDs) answer a close with unread
//!   received data with an RST instead of a FIN, and discard anything still
//!   queued for sending. The client's next read fails with `ConnectionReset`
//!   (bytes that had already reached it are still readable first).
//!
//! To make that possible, requests are read with `peek` and only consumed up
//! to their end: the server never reads past the request it is handling, and
//! the final bytes of each request stay in the kernel until the behaviour
//! decides whether to consume them.
//!
//! Per behaviour:
//!
//! * `Respond`, `Redirect`, `Echo`, `EchoHeaders`, `Delay`: a complete
//!   response framed by `content-length`; the connection stays open
//!   (unless the client asked for `Connection: close`, in which case the
//!   response carries `connection: close` and is followed by a FIN close).
//! * `CloseAfter`: the complete response, no `connection: close`, FIN close.
//! * `CloseWithoutResponse`, `CloseOnNthOfConnection` (on the n-th request):
//!   not a byte, FIN close (the client reads EOF).
//! * `ResetBeforeResponse`: not a byte, RST close.
//! * `ResetMidBody`: the head and `after` body bytes, then RST close.
//! * `Truncate`: the head with the full `content-length`, `send` body bytes,
//!   FIN close.
//! * `Stall`: nothing until the server shuts down (FIN close then) or the
//!   client goes away.
//! * `Drip`: the complete response one byte per interval, then keep-alive.
//! * `Stream`: its steps' bytes and pauses, then a FIN close (a `Stall` step: nothing more
//!   until the client goes away; a `Reset` step: RST close).
//! * `Bulk`: a 200 with `content-length` and a generated body of any length, keep-alive;
//!   with `stall_after`, that many body bytes and then nothing until the client goes away.
//! * `Raw`: the given bytes, FIN close.
//! * `RawKeepAlive`: the given bytes, then the next request on the same
//!   connection (so a test can see whether the client reuses it).
//! * `Http10`: `HTTP/1.0 200 OK`, no `content-length`, the body, FIN close.
//! * `Chunked`: `transfer-encoding: chunked`, the body in up to three chunks.
//!   `ChunkFault::None` ends with `0\r\n\r\n` and keeps the connection;
//!   `BadSize` sends `zz` as the first chunk size, the body, then FIN close;
//!   `CutShort` declares the last chunk at full size, sends half of it and
//!   FIN-closes without the terminating chunk.
//!
//! A response whose reply headers already contain `content-length` or
//! `transfer-encoding` is sent without the automatic `content-length`, so a
//! test can craft inconsistent framing. Responses to `HEAD` carry no body, and
//! 1xx/204/304 responses get neither `content-length` nor a body.
//!
//! `drop_rate` draws, before each request slot, whether to drop it and where:
//! before reading the request (plain close without reading; if the request has
//! already arrived the kernel turns that close into an RST), after reading it
//! (FIN close), in the middle of the head, or after the head with part of the
//! body (FIN close in both cases). Behaviours that do not produce a response
//! the server can cut (`Stall`, `Raw`, faults) are dropped after the request
//! instead. Each connection gets its own generator seeded from the seed and
//! the connection id, so the decisions do not depend on thread scheduling.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a connection thread waits for a client to send something.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection thread waits for a client to accept bytes.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers) accepted; larger gets 431.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted; larger gets 413.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How long a FIN-closed connection keeps draining what the client sends.
const LINGER: Duration = Duration::from_secs(2);
/// How long shutdown waits for threads before leaving stragglers detached.
const JOIN_GRACE: Duration = Duration::from_secs(5);
/// How often a stalled connection checks whether its client went away.
const STALL_POLL: Duration = Duration::from_millis(100);
/// Deepest nesting of `Sequence`/`Handler` resolved before giving up.
const MAX_RESOLVE_DEPTH: usize = 16;

/// A response to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A reply with no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (sent in the order added, after `content-length`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// A `text/plain` reply.
    pub fn text(status: u16, body: &str) -> Self {
        Reply::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body)
    }
}

/// How the framing of a `Behaviour::Chunked` response is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkFault {
    /// Well-formed chunked encoding.
    None,
    /// The first chunk size is not hexadecimal.
    BadSize,
    /// The last chunk is cut in half and the terminating chunk never comes.
    CutShort,
}

/// A per-request decision, for `Behaviour::Handler`.
pub type HandlerFn = dyn Fn(&LoggedRequest) -> Behaviour + Send + Sync;

/// What the server does with a request routed to it. See the module docs for
/// the bytes each variant produces.
#[derive(Clone)]
pub enum Behaviour {
    /// A normal keep-alive response framed by `content-length`.
    Respond(Reply),
    /// The n-th request to the route (counted across connections) gets the
    /// n-th behaviour; the last one repeats.
    Sequence(Vec<Behaviour>),
    /// The reply (without `connection: close`), then a FIN close.
    CloseAfter(Reply),
    /// Reads the whole request, then FIN-closes without a byte.
    CloseWithoutResponse,
    /// On the n-th (1-based) request of a connection: reads it and FIN-closes
    /// without a byte; other requests get `otherwise`, keep-alive.
    CloseOnNthOfConnection { n: usize, otherwise: Reply },
    /// Reads the request, then resets the connection.
    ResetBeforeResponse,
    /// The head and `after` body bytes, then a reset.
    ResetMidBody { reply: Reply, after: usize },
    /// `content-length` of the full body but only `send` body bytes, then a
    /// FIN close.
    Truncate { reply: Reply, send: usize },
    /// Reads the request and never answers (until the server shuts down).
    Stall,
    /// The response one byte per interval, then keep-alive.
    Drip { reply: Reply, interval: Duration },
    /// These exact bytes, then a FIN close.
    Raw(Vec<u8>),
    /// These exact bytes, then keep-alive: the connection serves the next
    /// request.
    RawKeepAlive(Vec<u8>),
    /// `HTTP/1.0 200` without `content-length`, this body, then a FIN close.
    Http10(Vec<u8>),
    /// Chunked transfer encoding, possibly broken.
    Chunked { reply: Reply, bad: ChunkFault },
    /// A redirect with `location`, empty body, keep-alive.
    Redirect { status: u16, location: String },
    /// Waits (cut short by server shutdown), then replies.
    Delay { reply: Reply, delay: Duration },
    /// 200 whose body lists the request headers as `name: value\n` lines,
    /// names lowercased, in the order received.
    EchoHeaders,
    /// 200 whose body is the request body, with `x-echo-method` and (when the
    /// request had a query) `x-echo-query`; the request's `content-type` is
    /// echoed too.
    Echo,
    /// Decides per request. A `Sequence` it returns is indexed by the route's
    /// request count, like one configured directly.
    Handler(Arc<HandlerFn>),
    /// A streamed response written step by step (raw bytes, pauses), ending as its
    /// last step says; with no end step, a FIN close. For server-sent events.
    Stream(Vec<StreamStep>),
    /// A 200 whose `content-length` is `length`, its body the bytes of [`bulk_byte`]
    /// generated as they are written (a body of any size costs the server 64 KiB); then
    /// keep-alive. With `stall_after`, only that many body bytes, then nothing more until
    /// the client goes away or the server shuts down.
    Bulk {
        length: u64,
        stall_after: Option<u64>,
    },
}

/// Byte `i` of a [`Behaviour::Bulk`] body: a repeating pattern of 251 (prime) bytes, so a
/// reader can check every byte it got, and where.
pub fn bulk_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// One step of a [`Behaviour::Stream`].
#[derive(Clone, Debug)]
pub enum StreamStep {
    /// These exact bytes (the head, a chunk, ...).
    Write(Vec<u8>),
    /// Waits this long (cut short by server shutdown).
    Pause(Duration),
    /// Sends nothing more, keeping the connection open until the client goes away or
    /// the server shuts down.
    Stall,
    /// Resets the connection.
    Reset,
}

impl fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Behaviour::Respond(r) => f.debug_tuple("Respond").field(r).finish(),
            Behaviour::Sequence(s) => f.debug_tuple("Sequence").field(s).finish(),
            Behaviour::CloseAfter(r) => f.debug_tuple("CloseAfter").field(r).finish(),
            Behaviour::CloseWithoutResponse => f.write_str("CloseWithoutResponse"),
            Behaviour::CloseOnNthOfConnection { n, otherwise } => f
                .debug_struct("CloseOnNthOfConnection")
                .field("n", n)
                .field("otherwise", otherwise)
                .finish(),
            Behaviour::ResetBeforeResponse => f.write_str("ResetBeforeResponse"),
            Behaviour::ResetMidBody { reply, after } => f
                .debug_struct("ResetMidBody")
                .field("reply", reply)
                .field("after", after)
                .finish(),
            Behaviour::Truncate { reply, send } => f
                .debug_struct("Truncate")
                .field("reply", reply)
                .field("send", send)
                .finish(),
            Behaviour::Stall => f.write_str("Stall"),
            Behaviour::Drip { reply, interval } => f
                .debug_struct("Drip")
                .field("reply", reply)
                .field("interval", interval)
                .finish(),
            Behaviour::Raw(b) => f.debug_tuple("Raw").field(b).finish(),
            Behaviour::RawKeepAlive(b) => f.debug_tuple("RawKeepAlive").field(b).finish(),
            Behaviour::Http10(b) => f.debug_tuple("Http10").field(b).finish(),
            Behaviour::Chunked { reply, bad } => f
                .debug_struct("Chunked")
                .field("reply", reply)
                .field("bad", bad)
                .finish(),
            Behaviour::Redirect { status, location } => f
                .debug_struct("Redirect")
                .field("status", status)
                .field("location", location)
                .finish(),
            Behaviour::Delay { reply, delay } => f
                .debug_struct("Delay")
                .field("reply", reply)
                .field("delay", delay)
                .finish(),
            Behaviour::EchoHeaders => f.write_str("EchoHeaders"),
            Behaviour::Echo => f.write_str("Echo"),
            Behaviour::Handler(_) => f.write_str("Handler(..)"),
            Behaviour::Stream(steps) => f.debug_tuple("Stream").field(steps).finish(),
            Behaviour::Bulk {
                length,
                stall_after,
            } => f
                .debug_struct("Bulk")
                .field("length", length)
                .field("stall_after", stall_after)
                .finish(),
        }
    }
}

/// A request as the server read it.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query, without the `?`.
    pub query: Option<String>,
    /// Headers in the order received, names as the client spelled them.
    pub headers: Vec<(String, String)>,
    /// The body, with chunked transfer encoding already decoded.
    pub body: Vec<u8>,
    /// 1-based id of the connection, in accept order.
    pub connection: usize,
    /// 1-based position of the request on its connection.
    pub index_on_connection: usize,
}

impl LoggedRequest {
    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Configures a [`TestServer`].
pub struct ServerBuilder {
    routes: Vec<(String, Behaviour)>,
    fallback: Behaviour,
    drop_rate: Option<(u32, u64)>,
    expect_answer: Option<Vec<u8>>,
}

impl ServerBuilder {
    /// Serves `behaviour` for requests whose path (query ignored) is exactly
    /// `path`. A later route for the same path replaces the earlier one.
    pub fn route(mut self, path: &str, behaviour: Behaviour) -> Self {
        self.routes.retain(|(p, _)| p != path);
        self.routes.push((path.to_string(), behaviour));
        self
    }

    /// Serves `behaviour` for every path without a route (default: 404).
    pub fn fallback(mut self, behaviour: Behaviour) -> Self {
        self.fallback = behaviour;
        self
    }

    /// Drops `percent` of request slots at a random point, deterministically
    /// from `seed`; applies to every route.
    pub fn drop_rate(mut self, percent: u32, seed: u64) -> Self {
        self.drop_rate = Some((percent.min(100), seed));
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    /// Answers every request that carries `Expect: 100-continue` and a body
    /// with these bytes instead of `100 Continue`, right after its head. The
    /// connection then stays open, collecting whatever the client still
    /// sends, until the client closes it (or the server stops, or 10 s pass);
    /// the request is logged then, with those bytes as its body.
    pub fn answer_expect_with(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.expect_answer = Some(bytes.into());
        self
    }

    pub fn start(self) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback test server");
        let addr = listener.local_addr().expect("test server address");
        let route = |behaviour| Route {
            behaviour,
            hits: AtomicUsize::new(0),
        };
        let shared = Arc::new(Shared {
            routes: self
                .routes
                .into_iter()
                .map(|(p, b)| (p, route(b)))
                .collect(),
            fallback: route(self.fallback),
            drop_rate: self.drop_rate.filter(|(percent, _)| *percent > 0),
            expect_answer: self.expect_answer,
            log: Mutex::new(Vec::new()),
            log_changed: Condvar::new(),
            request_count: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            stopping: Mutex::new(false),
            stop_signal: Condvar::new(),
            stopped: AtomicBool::new(false),
            sockets: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
            live_threads: Mutex::new(0),
            threads_done: Condvar::new(),
            gone: Mutex::new(Vec::new()),
            gone_changed: Condvar::new(),
        });
        *lock(&shared.live_threads) += 1;
        let for_thread = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("test-server-accept".to_string())
            .spawn(move || {
                let guard = LiveGuard {
                    shared: for_thread,
                    socket: None,
                };
                accept_loop(&guard.shared, listener);
            })
            .expect("spawn test server accept thread");
        TestServer {
            shared,
            addr,
            accept: Mutex::new(Some(accept)),
        }
    }
}

/// A loopback HTTP/1.1 server with scripted behaviours; stops when dropped.
pub struct TestServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl TestServer {
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            routes: Vec::new(),
            fallback: Behaviour::Respond(Reply::text(404, "not found")),
            drop_rate: None,
            expect_answer: None,
        }
    }

    /// Answers `/` and every other path with 200 "hello, world!", keep-alive.
    pub fn start_default() -> TestServer {
        let hello = Behaviour::Respond(Reply::text(200, "hello, world!"));
        TestServer::builder()
            .route("/", hello.clone())
            .fallback(hello)
            .start()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/path`; a missing leading `/` is added.
    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("http://{}{}{}", self.addr, slash, path)
    }

    /// The requests read so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.request_count.load(Ordering::SeqCst)
    }

    /// How many requests had this path (a query in `path` is ignored).
    pub fn requests_to(&self, path: &str) -> usize {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// The connection log: the connections the client closed (between two requests, or while
    /// a `Stall` held its request, checked every 100 ms), by id, with when the server saw it.
    pub fn closed_by_client(&self) -> Vec<(usize, Instant)> {
        lock(&self.shared.gone).clone()
    }

    /// Waits until the client has closed connection `id` (see `closed_by_client`); when the
    /// server saw it, or `None` after `timeout`.
    pub fn wait_for_client_close(&self, id: usize, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        let mut gone = lock(&self.shared.gone);
        loop {
            if let Some((_, at)) = gone.iter().find(|(c, _)| *c == id) {
                return Some(*at);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            gone = self
                .shared
                .gone_changed
                .wait_timeout(gone, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub fn connections_accepted(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests have been read; false on timeout.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut log = lock(&self.shared.log);
        loop {
            if log.len() >= n {
                return true;
            }
            log = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.shared
                        .log_changed
                        .wait_timeout(log, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self
                    .shared
                    .log_changed
                    .wait(log)
                    .unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Stops accepting, closes every connection and waits (at most a few
    /// seconds) for all server threads. Idempotent.
    pub fn shutdown(&self) {
        {
            let mut stopping = lock(&self.shared.stopping);
            *stopping = true;
            self.shared.stopped.store(true, Ordering::SeqCst);
            self.shared.stop_signal.notify_all();
        }
        let accept = lock(&self.accept).take();
        if accept.is_some() {
            // The accept thread blocks in accept(); a connection of our own
            // wakes it, and it sees the stop flag before counting it.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        }
        // Anything blocked in a read or write on a live socket returns now.
        // The accept thread checks the stop flag under this same lock before
        // registering a socket, so none can slip in after the sweep.
        for socket in lock(&self.shared.sockets).values() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        let all_done = {
            let deadline = Instant::now() + JOIN_GRACE;
            let mut live = lock(&self.shared.live_threads);
            loop {
                if *live == 0 {
                    break true;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break false;
                }
                live = self
                    .shared
                    .threads_done
                    .wait_timeout(live, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        let mut handles: Vec<JoinHandle<()>> = lock(&self.shared.workers).drain(..).collect();
        handles.extend(accept);
        for handle in handles {
            // A thread that has released its count is about to return, so
            // joining it is immediate; one stuck past the grace period (say
            // in a test's handler) is left detached rather than hanging.
            if all_done || handle.is_finished() {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

struct Route {
    behaviour: Behaviour,
    /// Requests routed here so far, for `Sequence`.
    hits: AtomicUsize,
}

struct Shared {
    routes: HashMap<String, Route>,
    fallback: Route,
    drop_rate: Option<(u32, u64)>,
    expect_answer: Option<Vec<u8>>,
    log: Mutex<Vec<LoggedRequest>>,
    log_changed: Condvar,
    request_count: AtomicUsize,
    connections: AtomicUsize,
    stopping: Mutex<bool>,
    stop_signal: Condvar,
    /// Mirror of `stopping` for cheap checks.
    stopped: AtomicBool,
    /// A clone of every live connection's socket, so shutdown can unblock it.
    sockets: Mutex<HashMap<usize, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    live_threads: Mutex<usize>,
    threads_done: Condvar,
    /// Connections the client closed, by id, with when the server saw it (see
    /// `TestServer::closed_by_client`).
    gone: Mutex<Vec<(usize, Instant)>>,
    gone_changed: Condvar,
}

impl Shared {
    fn is_stopping(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Waits for `duration` or until shutdown; true if shutting down.
    fn wait_stop(&self, duration: Duration) -> bool {
        let deadline = Instant::now().checked_add(duration);
        let mut stopping = lock(&self.stopping);
        loop {
            if *stopping {
                return true;
            }
            stopping = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.stop_signal
                        .wait_timeout(stopping, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self
                    .stop_signal
                    .wait(stopping)
                    .unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Notes that the client closed connection `id`.
    fn note_gone(&self, id: usize) {
        lock(&self.gone).push((id, Instant::now()));
        self.gone_changed.notify_all();
    }

    fn record(&self, request: LoggedRequest) {
        let mut log = lock(&self.log);
        log.push(request);
        self.request_count.fetch_add(1, Ordering::SeqCst);
        self.log_changed.notify_all();
    }

    /// Picks the concrete behaviour for a request: the route's (or the
    /// fallback's), with `Sequence` and `Handler` resolved.
    fn resolve(&self, request: &LoggedRequest) -> Behaviour {
        let route = self.routes.get(&request.path).unwrap_or(&self.fallback);
        let hit = route.hits.fetch_add(1, Ordering::SeqCst);
        resolve_behaviour(&route.behaviour, hit, request, 0)
    }
}

fn resolve_behaviour(
    behaviour: &Behaviour,
    hit: usize,
    request: &LoggedRequest,
    depth: usize,
) -> Behaviour {
    if depth > MAX_RESOLVE_DEPTH {
        return Behaviour::Respond(Reply::text(500, "behaviour nested too deeply"));
    }
    match behaviour {
        Behaviour::Sequence(steps) => match steps.get(hit).or(steps.last()) {
            Some(step) => resolve_behaviour(step, hit, request, depth + 1),
            None => Behaviour::Respond(Reply::text(500, "empty sequence")),
        },
        Behaviour::Handler(decide) => resolve_behaviour(&decide(request), hit, request, depth + 1),
        other => other.clone(),
    }
}

/// Keeps the live-thread count honest and the socket registry clean even if a
/// thread unwinds (a panicking handler, say).
struct LiveGuard {
    shared: Arc<Shared>,
    socket: Option<usize>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Some(id) = self.socket {
            lock(&self.shared.sockets).remove(&id);
        }
        let mut live = lock(&self.shared.live_threads);
        *live -= 1;
        self.shared.threads_done.notify_all();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or similar: back off briefly instead of
                // spinning, but still notice shutdown at once.
                if shared.wait_stop(Duration::from_millis(10)) {
                    return;
                }
                continue;
            }
        };
        let mut sockets = lock(&shared.sockets);
        if shared.is_stopping() {
            return;
        }
        let Ok(registered) = stream.try_clone() else {
            continue;
        };
        let id = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        sockets.insert(id, registered);
        *lock(&shared.live_threads) += 1;
        drop(sockets);
        // Built after the registry lock is released: if the spawn fails, the
        // guard's drop takes that lock to unregister the socket.
        let guard = LiveGuard {
            shared: Arc::clone(shared),
            socket: Some(id),
        };
        let spawned = thread::Builder::new()
            .name(format!("test-server-conn-{id}"))
            .spawn(move || {
                let guard = guard;
                serve_connection(&guard.shared, stream, id);
            });
        if let Ok(handle) = spawned {
            let mut workers = lock(&shared.workers);
            workers.retain(|h| !h.is_finished());
            workers.push(handle);
        }
    }
}

/// splitmix64: tiny, deterministic, good enough to scatter faults.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DropPoint {
    BeforeRequest,
    AfterRequest,
    MidHead,
    MidBody,
}

struct Dropper {
    percent: u32,
    rng: SplitMix64,
}

impl Dropper {
    fn for_connection(percent: u32, seed: u64, connection: usize) -> Self {
        let mut mix = SplitMix64(seed ^ (connection as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        Dropper {
            percent,
            rng: SplitMix64(mix.next()),
        }
    }

    fn draw(&mut self) -> Option<DropPoint> {
        if self.rng.below(100) >= self.percent as usize {
            return None;
        }
        Some(match self.rng.below(4) {
            0 => DropPoint::BeforeRequest,
            1 => DropPoint::AfterRequest,
            2 => DropPoint::MidHead,
            _ => DropPoint::MidBody,
        })
    }
}

enum ReadError {
    Io,
    HeadTooLarge,
    BodyTooLarge,
    Malformed,
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Io
    }
}

/// A connection whose reads never go past the request being handled.
struct Conn {
    stream: TcpStream,
    /// Bytes of the current request already parsed (via peek) but still in
    /// the kernel's receive buffer. Closing with them unread sends an RST.
    held: usize,
    scratch: Vec<u8>,
}

impl Conn {
    /// Consumes the held bytes; after this a close is a plain FIN.
    fn release(&mut self) -> io::Result<()> {
        let mut sink = [0u8; 512];
        while self.held > 0 {
            let n = self.held.min(sink.len());
            self.stream.read_exact(&mut sink[..n])?;
            self.held -= n;
        }
        Ok(())
    }

    fn peek(&mut self, len: usize) -> io::Result<usize> {
        loop {
            match self.stream.peek(&mut self.scratch[..len]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Reads through the first `delim`, leaving the bytes that complete it
    /// held. `Ok(None)` if the peer closed before sending anything.
    fn read_until(&mut self, delim: &[u8], max: usize) -> Result<Option<Vec<u8>>, ReadError> {
        self.release()?;
        let mut acc = Vec::new();
        loop {
            let len = self.scratch.len();
            let n = self.peek(len)?;
            if n == 0 {
                return if acc.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Io)
                };
            }
            let old = acc.len();
            acc.extend_from_slice(&self.scratch[..n]);
            let from = old.saturating_sub(delim.len() - 1);
            if let Some(pos) = find(&acc[from..], delim) {
                let end = from + pos + delim.len();
                if end > max {
                    return Err(ReadError::HeadTooLarge);
                }
                acc.truncate(end);
                self.held = end - old;
                return Ok(Some(acc));
            }
            if acc.len() > max {
                return Err(ReadError::HeadTooLarge);
            }
            self.stream.read_exact(&mut self.scratch[..n])?;
        }
    }

    /// Reads exactly `len` bytes, leaving the last one held.
    fn read_exact_held(&mut self, len: usize) -> Result<Vec<u8>, ReadError> {
        if len == 0 {
            // Nothing to read, so whatever is held stays held.
            return Ok(Vec::new());
        }
        self.release()?;
        let mut out = vec![0u8; len];
        self.stream.read_exact(&mut out[..len - 1])?;
        if self.peek(1)? == 0 {
            return Err(ReadError::Io);
        }
        out[len - 1] = self.scratch[0];
        self.held = 1;
        Ok(out)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// FIN close: consume the rest of the request, shut down the write half,
    /// then drain what the client still sends for a moment, so that data
    /// arriving after the close does not turn it into a reset.
    fn finish(&mut self, shared: &Shared) {
        if self.release().is_err() {
            return;
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        let mut sink = [0u8; 4096];
        while !shared.is_stopping() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                return;
            }
            match self.stream.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// True once the client has closed its side (or the socket failed).
    /// Reads whatever the client sends until it closes the connection, the
    /// server stops, or `READ_TIMEOUT` passes (at most `MAX_BODY` bytes kept).
    fn collect_until_close(&mut self, shared: &Shared) -> Vec<u8> {
        let mut got = Vec::new();
        let until = Instant::now() + READ_TIMEOUT;
        let _ = self.stream.set_read_timeout(Some(STALL_POLL));
        while Instant::now() < until && !shared.is_stopping() {
            match self.stream.read(&mut self.scratch) {
                Ok(0) => break,
                Ok(n) if got.len() + n <= MAX_BODY => got.extend_from_slice(&self.scratch[..n]),
                Ok(_) => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => break,
            }
        }
        let _ = self.stream.set_read_timeout(Some(READ_TIMEOUT));
        got
    }

    fn peer_gone(&mut self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return true;
        }
        let gone = match self.stream.peek(&mut self.scratch[..1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ),
        };
        self.stream.set_nonblocking(false).is_err() || gone
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A request plus whether the client wants the connection closed after it.
struct Incoming {
    request: LoggedRequest,
    client_close: bool,
    /// Answered by `answer_expect_with`; the connection is done.
    answered: bool,
}

fn read_request(
    shared: &Shared,
    conn: &mut Conn,
    connection: usize,
    index: usize,
) -> Result<Option<Incoming>, ReadError> {
    let Some(head) = conn.read_until(b"\r\n\r\n", MAX_HEAD)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed);
    };
    if method.is_empty() || !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(ReadError::Malformed);
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(ReadError::Malformed)?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    // Absolute-form targets (as sent to proxies) are reduced to their path.
    let target = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut request = LoggedRequest {
        method: method.to_string(),
        path,
        query,
        headers,
        body: Vec::new(),
        connection,
        index_on_connection: index,
    };

    let has_token = |name: &str, token: &str| {
        request
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let client_close = if version == "HTTP/1.0" {
        !has_token("connection", "keep-alive")
    } else {
        has_token("connection", "close")
    };
    let chunked = has_token("transfer-encoding", "chunked");
    let content_length = match request.header("content-length") {
        None => 0,
        Some(v) => v.parse::<usize>().map_err(|_| ReadError::Malformed)?,
    };
    if content_length > MAX_BODY {
        return Err(ReadError::BodyTooLarge);
    }
    let expects_continue = request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue && (chunked || content_length > 0) {
        conn.release()?;
        if let Some(answer) = &shared.expect_answer {
            conn.write_all(answer)?;
            request.body = conn.collect_until_close(shared);
            return Ok(Some(Incoming {
                request,
                client_close: true,
                answered: true,
            }));
        }
        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    request.body = if chunked {
        read_chunked(conn)?
    } else {
        conn.read_exact_held(content_length)?
    };
    Ok(Some(Incoming {
        request,
        client_close,
        answered: false,
    }))
}

fn read_chunked(conn: &mut Conn) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = conn.read_until(b"\r\n", 4096)?.ok_or(ReadError::Io)?;
        let line =
            std::str::from_utf8(&line[..line.len() - 2]).map_err(|_| ReadError::Malformed)?;
        let digits = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(digits, 16).map_err(|_| ReadError::Malformed)?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let trailer = conn.read_until(b"\r\n", MAX_HEAD)?.ok_or(ReadError::Io)?;
                if trailer == b"\r\n" {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(ReadError::BodyTooLarge);
        }
        body.extend(conn.read_exact_held(size)?);
        if conn.read_exact_held(2)? != b"\r\n" {
            return Err(ReadError::Malformed);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// The bytes of a response and the length of its head.
fn serialize(reply: &Reply, head_only: bool, close: bool) -> (Vec<u8>, usize) {
    let bodyless = reply.status < 200 || reply.status == 204 || reply.status == 304;
    let has = |name: &str| {
        reply
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    let mut out = Vec::with_capacity(256 + reply.body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        reply.status,
        reason(reply.status)
    );
    if !bodyless && !has("content-length") && !has("transfer-encoding") {
        let _ = write!(out, "content-length: {}\r\n", reply.body.len());
    }
    for (name, value) in &reply.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if close && !has("connection") {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let head_len = out.len();
    if !head_only && !bodyless {
        out.extend_from_slice(&reply.body);
    }
    (out, head_len)
}

fn chunked_bytes(
    reply: &Reply,
    fault: ChunkFault,
    head_only: bool,
    close: bool,
) -> (Vec<u8>, usize) {
    let framed = reply.clone().header("transfer-encoding", "chunked");
    let (mut out, head_len) = serialize(&framed, true, close);
    if head_only {
        return (out, head_len);
    }
    let body = &reply.body;
    let chunks: Vec<&[u8]> = if body.is_empty() {
        Vec::new()
    } else {
        body.chunks(body.len().div_ceil(3)).collect()
    };
    match fault {
        ChunkFault::None => {
            for chunk in &chunks {
                let _ = write!(out, "{:x}\r\n", chunk.len());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
        ChunkFault::BadSize => {
            out.extend_from_slice(b"zz\r\n");
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        ChunkFault::CutShort => {
            // An empty body still gets a chunk that is declared and cut.
            let (last, whole): (&[u8], &[&[u8]]) = match chunks.split_last() {
                Some((last, whole)) => (last, whole),
                None => (b"?", &[]),
            };
            for chunk in whole {
                let _ = write!(out, "{:x}\r\n", chunk.len());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            let _ = write!(out, "{:x}\r\n", last.len());
            out.extend_from_slice(&last[..last.len() / 2]);
        }
    }
    (out, head_len)
}

fn http10_bytes(body: &[u8]) -> (Vec<u8>, usize) {
    let mut out = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    let head_len = out.len();
    out.extend_from_slice(body);
    (out, head_len)
}

fn redirect_reply(status: u16, location: &str) -> Reply {
    Reply::new(status).header("location", location)
}

fn echo_reply(request: &LoggedRequest) -> Reply {
    let mut reply = Reply::new(200).header("x-echo-method", request.method.as_str());
    if let Some(query) = &request.query {
        reply = reply.header("x-echo-query", query.as_str());
    }
    if let Some(content_type) = request.header("content-type") {
        reply = reply.header("content-type", content_type);
    }
    reply.body(request.body.clone())
}

fn echo_headers_reply(request: &LoggedRequest) -> Reply {
    let mut body = String::new();
    for (name, value) in &request.headers {
        body.push_str(&name.to_ascii_lowercase());
        body.push_str(": ");
        body.push_str(value);
        body.push('\n');
    }
    Reply::text(200, &body)
}

/// The full response a behaviour would send, for cutting it short under
/// `drop_rate`; `None` for behaviours that send no ordinary response.
fn wire_bytes(behaviour: &Behaviour, request: &LoggedRequest) -> Option<(Vec<u8>, usize)> {
    let head_only = request.method == "HEAD";
    let reply = match behaviour {
        Behaviour::Respond(reply)
        | Behaviour::CloseAfter(reply)
        | Behaviour::CloseOnNthOfConnection {
            otherwise: reply, ..
        }
        | Behaviour::ResetMidBody { reply, .. }
        | Behaviour::Truncate { reply, .. }
        | Behaviour::Drip { reply, .. }
        | Behaviour::Delay { reply, .. } => reply.clone(),
        Behaviour::Redirect { status, location } => redirect_reply(*status, location),
        Behaviour::Echo => echo_reply(request),
        Behaviour::EchoHeaders => echo_headers_reply(request),
        Behaviour::Chunked { reply, .. } => {
            return Some(chunked_bytes(reply, ChunkFault::None, head_only, false));
        }
        Behaviour::Http10(body) => return Some(http10_bytes(body)),
        _ => return None,
    };
    Some(serialize(&reply, head_only, false))
}

/// What to do with the connection after a behaviour ran.
enum Next {
    KeepAlive,
    /// FIN close.
    Close,
    /// Drop the socket as it is: an RST if request bytes are still held, and
    /// nothing more to say if the socket already failed.
    Abandon,
}

fn serve_connection(shared: &Shared, stream: TcpStream, id: usize) {
    // Nagle would hold back the small partial writes the faults depend on.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut conn = Conn {
        stream,
        held: 0,
        scratch: vec![0u8; 8192],
    };
    let mut dropper = shared
        .drop_rate
        .map(|(percent, seed)| Dropper::for_connection(percent, seed, id));
    let mut index = 0;
    while !shared.is_stopping() {
        let drop_point = dropper.as_mut().and_then(Dropper::draw);
        if drop_point == Some(DropPoint::BeforeRequest) {
            return;
        }
        index += 1;
        let incoming = match read_request(shared, &mut conn, id, index) {
            Ok(Some(incoming)) => incoming,
            Ok(None) => {
                shared.note_gone(id);
                return;
            }
            Err(ReadError::Io) => return,
            Err(error) => {
                let reply = match error {
                    ReadError::HeadTooLarge => Reply::text(431, "request header fields too large"),
                    ReadError::BodyTooLarge => Reply::text(413, "content too large"),
                    _ => Reply::text(400, "bad request"),
                };
                if conn.release().is_ok()
                    && conn.write_all(&serialize(&reply, false, true).0).is_ok()
                {
                    conn.finish(shared);
                }
                return;
            }
        };
        let request = incoming.request;
        shared.record(request.clone());
        if incoming.answered {
            // `answer_expect_with` already answered and waited for the close.
            return;
        }
        let behaviour = shared.resolve(&request);
        if let (Some(point), Some(dropper)) = (drop_point, dropper.as_mut()) {
            if conn.release().is_err() {
                return;
            }
            let response = match point {
                DropPoint::MidHead | DropPoint::MidBody => wire_bytes(&behaviour, &request),
                _ => None,
            };
            if let Some((bytes, head_len)) = response {
                let cut = if point == DropPoint::MidBody && bytes.len() > head_len {
                    head_len + dropper.rng.below(bytes.len() - head_len)
                } else {
                    1 + dropper.rng.below(head_len - 1)
                };
                if conn.write_all(&bytes[..cut]).is_err() {
                    return;
                }
            }
            conn.finish(shared);
            return;
        }
        match act(
            shared,
            &mut conn,
            &request,
            behaviour,
            incoming.client_close,
        ) {
            Next::KeepAlive if !incoming.client_close => {}
            Next::KeepAlive | Next::Close => {
                conn.finish(shared);
                return;
            }
            Next::Abandon => return,
        }
    }
}

/// Plays a [`Behaviour::Bulk`].
fn bulk(shared: &Shared, conn: &mut Conn, length: u64, stall_after: Option<u64>) -> Next {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\n\r\n");
    if conn.write_all(head.as_bytes()).is_err() {
        return Next::Abandon;
    }
    let end = stall_after.map_or(length, |n| n.min(length));
    let mut chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < end {
        let n = (end - sent).min(chunk.len() as u64) as usize;
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            *b = bulk_byte(sent + i as u64);
        }
        if shared.is_stopping() || conn.write_all(&chunk[..n]).is_err() {
            return Next::Abandon;
        }
        sent += n as u64;
    }
    if stall_after.is_none() {
        return Next::KeepAlive;
    }
    while !shared.wait_stop(STALL_POLL) {
        if conn.peer_gone() {
            return Next::Abandon;
        }
    }
    Next::Close
}

/// Plays a [`Behaviour::Stream`].
fn stream(shared: &Shared, conn: &mut Conn, steps: Vec<StreamStep>) -> Next {
    for step in steps {
        match step {
            StreamStep::Write(bytes) => {
                if conn.write_all(&bytes).is_err() {
                    return Next::Abandon;
                }
            }
            StreamStep::Pause(d) => {
                if shared.wait_stop(d) {
                    return Next::Close;
                }
            }
            StreamStep::Stall => {
                while !shared.wait_stop(STALL_POLL) {
                    if conn.peer_gone() {
                        return Next::Abandon;
                    }
                }
                return Next::Close;
            }
            StreamStep::Reset => return Next::Abandon,
        }
    }
    Next::Close
}

fn act(
    shared: &Shared,
    conn: &mut Conn,
    request: &LoggedRequest,
    behaviour: Behaviour,
    client_close: bool,
) -> Next {
    let head_only = request.method == "HEAD";
    let resets = match &behaviour {
        Behaviour::ResetBeforeResponse | Behaviour::ResetMidBody { .. } => true,
        // The request's bytes are held unread so that the close is an RST.
        Behaviour::Stream(steps) => steps.iter().any(|s| matches!(s, StreamStep::Reset)),
        _ => false,
    };
    if !resets && conn.release().is_err() {
        return Next::Abandon;
    }
    let send = |conn: &mut Conn, bytes: &[u8], then: Next| match conn.write_all(bytes) {
        Ok(()) => then,
        Err(_) => Next::Abandon,
    };
    let reply = |conn: &mut Conn, reply: &Reply| {
        send(
            conn,
            &serialize(reply, head_only, client_close).0,
            Next::KeepAlive,
        )
    };
    match behaviour {
        Behaviour::Respond(r) => reply(conn, &r),
        Behaviour::CloseAfter(r) => send(conn, &serialize(&r, head_only, false).0, Next::Close),
        Behaviour::CloseWithoutResponse => Next::Close,
        Behaviour::CloseOnNthOfConnection { n, otherwise } => {
            if request.index_on_connection == n {
                Next::Close
            } else {
                reply(conn, &otherwise)
            }
        }
        Behaviour::ResetBeforeResponse => Next::Abandon,
        Behaviour::ResetMidBody { reply, after } => {
            let (bytes, head_len) = serialize(&reply, false, false);
            let end = (head_len + after).min(bytes.len());
            let _ = conn.write_all(&bytes[..end]);
            Next::Abandon
        }
        Behaviour::Truncate { reply, send: sent } => {
            let (bytes, head_len) = serialize(&reply, false, false);
            let end = (head_len + sent).min(bytes.len());
            send(conn, &bytes[..end], Next::Close)
        }
        Behaviour::Stall => {
            while !shared.wait_stop(STALL_POLL) {
                if conn.peer_gone() {
                    shared.note_gone(request.connection);
                    return Next::Abandon;
                }
            }
            Next::Close
        }
        Behaviour::Drip { reply, interval } => {
            let (bytes, _) = serialize(&reply, head_only, client_close);
            for (i, byte) in bytes.iter().enumerate() {
                if i > 0 && shared.wait_stop(interval) {
                    return Next::Close;
                }
                if conn.write_all(std::slice::from_ref(byte)).is_err() {
                    return Next::Abandon;
                }
            }
            Next::KeepAlive
        }
        Behaviour::Raw(bytes) => send(conn, &bytes, Next::Close),
        Behaviour::RawKeepAlive(bytes) => send(conn, &bytes, Next::KeepAlive),
        Behaviour::Http10(body) => send(conn, &http10_bytes(&body).0, Next::Close),
        Behaviour::Chunked { reply, bad } => {
            let (bytes, _) = chunked_bytes(&reply, bad, head_only, client_close);
            let then = if bad == ChunkFault::None {
                Next::KeepAlive
            } else {
                Next::Close
            };
            send(conn, &bytes, then)
        }
        Behaviour::Redirect { status, location } => reply(conn, &redirect_reply(status, &location)),
        Behaviour::Delay { reply: r, delay } => {
            if shared.wait_stop(delay) {
                Next::Close
            } else {
                reply(conn, &r)
            }
        }
        Behaviour::EchoHeaders => reply(conn, &echo_headers_reply(request)),
        Behaviour::Echo => reply(conn, &echo_reply(request)),
        Behaviour::Stream(steps) => stream(shared, conn, steps),
        Behaviour::Bulk {
            length,
            stall_after,
        } => bulk(shared, conn, length, stall_after),
        // `Shared::resolve` never hands these over.
        Behaviour::Sequence(_) | Behaviour::Handler(_) => {
            reply(conn, &Reply::text(500, "unresolved behaviour"))
        }
    }
}
