//! The only module that touches `ureq::unversioned` (not semver-stable; ureq is pinned `~3.5`).
//!
//! - [`CountingConnector`] counts connections opened: ureq calls a connector only on a pool
//!   miss, so the count is the number of new connections, and a call whose count did not move
//!   ran on a reused one.
//! - [`TlsConnector`] wraps TCP in rustls with the webpki roots plus the pool's private CAs
//!   (ureq's `RootCerts` is either/or), TLS 1.2+ only, verification always on.
//! - [`CachingResolver`] caches lookups: ureq resolves before every request, and spawns a thread
//!   per lookup when a timeout is set.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, NextTimeout, Transport,
    TransportAdapter,
};
use ureq::Agent;

use crate::config::PoolConfig;
use crate::error::{Error, ErrorKind};
use crate::retry::later;
use crate::url::port;

/// The ureq agent of one client, wired to this module's connector and resolver, and whether
/// ureq itself must enforce the call's deadline (through a proxy, whose connections ureq
/// makes itself; otherwise the transport enforces the deadline and the connect timeout).
pub(crate) fn agent(
    c: &PoolConfig,
    tls: &Arc<ClientConfig>,
    conns: &Arc<Connections>,
    #[cfg(feature = "fuzzing")] script: Option<&Arc<scripted::Script>>,
) -> (Agent, bool) {
    let proxy = match &c.proxy {
        crate::config::Proxy::None => None,
        crate::config::Proxy::FromEnv => ureq::Proxy::try_from_env(),
        // Checked when the pool was built.
        crate::config::Proxy::Url(u) => ureq::Proxy::new(u).ok(),
    };
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
    #[cfg(feature = "fuzzing")]
    if let Some(script) = script {
        let connector = scripted::ScriptedConnector(script.clone());
        let agent = Agent::with_parts(config, connector, scripted::ScriptedResolver);
        return (agent, ureq_timeouts);
    }
    let sizes = BufferSizes {
        input: c.input_buffer,
        max_input: c.max_header_size,
        output: c.output_buffer,
    };
    let connector = connector(tls.clone(), conns.clone(), sizes, c.connect_timeout);
    let resolver = CachingResolver::new(c.dns_ttl, c.dns_negative_ttl, conns.clone());
    (
        Agent::with_parts(config, connector, resolver),
        ureq_timeouts,
    )
}

/// Refuses a proxy URL that ureq cannot use, when the pool is built rather than per request.
pub(crate) fn check_proxy(proxy: &crate::config::Proxy) -> Result<(), Error> {
    if let crate::config::Proxy::Url(u) = proxy {
        ureq::Proxy::new(u)
            .map_err(|_| Error::new(ErrorKind::InvalidConfig("proxy url is invalid".into())))?;
    }
    Ok(())
}

/// Builds the rustls configuration once per pool: the webpki roots, plus the private CAs.
///
/// # Errors
///
/// `InvalidConfig` when an extra root certificate cannot be parsed.
pub(crate) fn tls_config(config: &PoolConfig) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in &config.extra_roots {
        let der = if cert.starts_with(b"-----BEGIN") {
            ureq::tls::Certificate::from_pem(cert)
                .map_err(|e| bad_root(&e))?
                .der()
                .to_vec()
        } else {
            cert.to_vec()
        };
        roots
            .add(CertificateDer::from(der))
            .map_err(|e| bad_root(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| bad_root(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}

fn bad_root(e: &dyn fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidConfig(format!("root certificate: {e}")))
}

/// Buffer sizes of every connection: where input starts, how far it may grow (the largest
/// response header accepted), and the fixed output size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BufferSizes {
    pub(crate) input: usize,
    pub(crate) max_input: usize,
    pub(crate) output: usize,
}

/// One client's connection bookkeeping, shared by its connector, resolver and transports.
#[derive(Debug)]
pub(crate) struct Connections {
    /// Connections opened so far.
    opened: AtomicU64,
    /// Connections numbered below this (in opening order) are retired: the pool's probe
    /// reports them closed, so the next request opens a fresh one.
    retired_below: AtomicU64,
    /// The running call's deadline, as nanoseconds after `base` (0: none). A connection takes
    /// it over when it is opened or taken from the pool for a call, and bounds every lookup,
    /// connect, handshake, write and read of that call with it: ureq's own timeouts would
    /// re-read the clock and recompute every phase's limit several times per request.
    deadline: AtomicU64,
    base: Instant,
}

impl Connections {
    pub(crate) fn new() -> Connections {
        Connections {
            opened: AtomicU64::new(0),
            retired_below: AtomicU64::new(0),
            deadline: AtomicU64::new(0),
            base: Instant::now(),
        }
    }

    /// Connections opened so far. Only the owning client's thread writes it: Relaxed is enough.
    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Retires every connection opened so far: the next request opens a new one. Used after a
    /// pooled connection turned out stale, since its idle siblings most likely are too.
    pub(crate) fn retire_all(&self) {
        self.retired_below.store(self.opened(), Ordering::Relaxed);
    }

    fn is_retired(&self, serial: u64) -> bool {
        serial < self.retired_below.load(Ordering::Relaxed)
    }

    /// Sets the deadline of the attempt about to run.
    pub(crate) fn set_deadline(&self, deadline: Instant) {
        let nanos = deadline.saturating_duration_since(self.base).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX).max(1);
        self.deadline.store(nanos, Ordering::Relaxed);
    }

    fn deadline(&self) -> Option<Instant> {
        match self.deadline.load(Ordering::Relaxed) {
            0 => None,
            n => self.base.checked_add(Duration::from_nanos(n)),
        }
    }
}

/// The earlier of ureq's own limit for this step (when it has one) and the call's deadline,
/// with the reason to report when it passes: the deadline is reported as the phase it cut
/// short (`deadline_phase`), so that a hung server shows as a response timeout (which the
/// breaker counts, and which says the request may have been processed) rather than as a bare
/// deadline. A step that ureq (or the TLS connector) marks as part of connecting stays a
/// connect timeout whichever limit ends it.
fn limit(
    ureq_until: Option<Instant>,
    ureq_reason: ureq::Timeout,
    deadline: Option<Instant>,
    deadline_phase: ureq::Timeout,
) -> (Option<Instant>, ureq::Timeout) {
    let deadline_phase = match ureq_reason {
        ureq::Timeout::Connect | ureq::Timeout::Resolve => ureq_reason,
        _ => deadline_phase,
    };
    match (ureq_until, deadline) {
        (Some(u), Some(d)) if d < u => (Some(d), deadline_phase),
        (Some(u), _) => (Some(u), ureq_reason),
        (None, Some(d)) => (Some(d), deadline_phase),
        (None, None) => (None, ureq_reason),
    }
}

/// The connector chain of one client: proxy CONNECT, TCP, TLS, counted.
pub(crate) fn connector(
    tls: Arc<ClientConfig>,
    conns: Arc<Connections>,
    sizes: BufferSizes,
    connect_timeout: Duration,
) -> impl Connector {
    let chain = ()
        .chain(ConnectProxyConnector::default())
        .chain(TcpConnector {
            sizes,
            conns: conns.clone(),
            connect_timeout,
        })
        .chain(TlsConnector {
            config: tls,
            sizes,
            connect_timeout,
        });
    CountingConnector {
        inner: chain,
        conns,
    }
}

/// Counts the connections its inner connector opens.
#[derive(Debug)]
pub(crate) struct CountingConnector<C> {
    inner: C,
    conns: Arc<Connections>,
}

impl<C: Connector> Connector for CountingConnector<C> {
    type Out = C::Out;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let out = self.inner.connect(details, chained)?;
        if out.is_some() {
            self.conns.opened.fetch_add(1, Ordering::Relaxed);
        }
        Ok(out)
    }
}

/// Wraps a TCP transport in rustls when the URL is https.
pub(crate) struct TlsConnector {
    config: Arc<ClientConfig>,
    sizes: BufferSizes,
    connect_timeout: Duration,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector").finish()
    }
}

// Takes the TCP connector's box as it is: boxing it again (as a generic `In` would need) puts
// a second virtual call in front of every read, write and probe.
impl Connector<Box<dyn Transport>> for TlsConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(transport));
        }
        let host = details.uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ureq::Error::Tls("invalid server name for tls"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport, details.current_time.clone());
        // The handshake is part of connecting: bounded by the connect timeout (and, through
        // the TCP transport, by the call's deadline), and reported as a connect timeout.
        let after = match details.timeout.not_zero() {
            Some(t) => (*t).min(self.connect_timeout),
            None => self.connect_timeout,
        };
        sock.set_timeout(NextTimeout {
            after: after.into(),
            reason: ureq::Timeout::Connect,
            ..NextTimeout::default()
        });
        conn.complete_io(&mut sock)?;
        let buffers = GrowBuffers::new(self.sizes);
        Ok(Some(Box::new(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

struct TlsTransport {
    buffers: GrowBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.append_buf()?;
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// Opens plain TCP connections (ureq's `TcpConnector` hard-wires its fixed-size buffers).
#[derive(Debug)]
pub(crate) struct TcpConnector {
    sizes: BufferSizes,
    conns: Arc<Connections>,
    connect_timeout: Duration,
}

impl<In: Transport> Connector<In> for TcpConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if let Some(t) = chained {
            // A proxy connector already made the connection.
            return Ok(Some(t.boxed()));
        }
        let deadline = self.conns.deadline();
        let connect_by = later(Instant::now(), self.connect_timeout);
        let connect_by = until(&details.timeout).map_or(connect_by, |u| u.min(connect_by));
        let (by, reason) = limit(
            Some(connect_by),
            ureq::Timeout::Connect,
            deadline,
            ureq::Timeout::Connect,
        );
        let mut last = None;
        for addr in details.addrs.iter() {
            let left = by.map_or(Duration::MAX, |b| {
                b.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Err(ureq::Error::Timeout(reason));
            }
            match TcpStream::connect_timeout(addr, left) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(Some(Box::new(TcpTransport {
                        stream,
                        serial: self.conns.opened(),
                        conns: self.conns.clone(),
                        deadline,
                        buffers: GrowBuffers::new(self.sizes),
                        read_timeout: None,
                        write_timeout: None,
                        probed_at: None,
                    })));
                }
                Err(e) if is_timeout(&e) => return Err(ureq::Error::Timeout(reason)),
                Err(e) => last = Some(e),
            }
        }
        Err(ureq::Error::Io(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::ConnectionRefused, "no address to connect to")
        })))
    }
}

/// A probe that says a connection is open is trusted for this long: ureq probes a pooled
/// connection when it is returned and again when it is taken, and in a busy worker the two are
/// microseconds apart. A close in that window is caught by the stale-connection replay.
const PROBE_FRESH: Duration = Duration::from_millis(1);

#[derive(Debug)]
struct TcpTransport {
    stream: TcpStream,
    // This connection's number in its client's opening order, and the client's bookkeeping.
    serial: u64,
    conns: Arc<Connections>,
    // The deadline of the call this connection serves, taken over from `conns` when the
    // connection is opened or taken from the pool.
    deadline: Option<Instant>,
    buffers: GrowBuffers,
    // The socket's current timeouts (SO_RCVTIMEO / SO_SNDTIMEO), see `arm`.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    probed_at: Option<Instant>,
}

/// The socket timeout to set before blocking until `until`, or `None` to keep `current`.
///
/// A call's deadline shrinks as it runs and jumps back with the next call, so setting the
/// exact remaining time would cost a `setsockopt` per read and per write. Instead a timeout
/// already set is kept while it is no longer than what is left and at least half of it; an
/// early expiry is re-armed by the caller (`blocking_io`), so no read or write ever blocks past
/// `until`. A new timeout is set a sixteenth short of what is left, so the next calls of a
/// steady worker, each with slightly more time left, keep it.
fn arm(current: Option<Duration>, until: Option<Instant>) -> Option<Option<Duration>> {
    let Some(until) = until else {
        return current.is_some().then_some(None);
    };
    let left = until.saturating_duration_since(Instant::now());
    // A zero timeout is refused by the socket (it means "no timeout"): wait at least 1 ms.
    let left = left.max(Duration::from_millis(1));
    match current {
        Some(c) if c <= left && c >= left / 2 => None,
        _ => Some(Some((left - left / 16).max(Duration::from_millis(1)))),
    }
}

/// The instant a timeout handed over by ureq runs out (`None`: never).
fn until(timeout: &NextTimeout) -> Option<Instant> {
    (!timeout.after.is_not_happening()).then(|| later(Instant::now(), *timeout.after))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Runs one blocking socket operation that must give up at `until`: arms the socket timeout
/// with `set` (see `arm`), retries interrupted calls and expiries that came before `until`.
fn blocking_io<T>(
    current: &mut Option<Duration>,
    until: Option<Instant>,
    reason: ureq::Timeout,
    mut set: impl FnMut(Option<Duration>) -> io::Result<()>,
    mut op: impl FnMut() -> io::Result<T>,
) -> Result<T, ureq::Error> {
    loop {
        // A peer that keeps sending a little never lets a socket timeout expire: the limit is
        // checked before every operation too.
        if until.is_some_and(|u| Instant::now() >= u) {
            return Err(ureq::Error::Timeout(reason));
        }
        if let Some(t) = arm(*current, until) {
            set(t)?;
            *current = t;
        }
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                if until.is_none_or(|u| Instant::now() >= u) {
                    return Err(ureq::Error::Timeout(reason));
                }
            }
            other => return Ok(other?),
        }
    }
}

impl Transport for TcpTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        let (by, reason) = limit(
            until(&timeout),
            timeout.reason,
            self.deadline,
            ureq::Timeout::SendRequest,
        );
        self.probed_at = None;
        let stream = &self.stream;
        let mut output = &self.buffers.output()[..amount];
        while !output.is_empty() {
            let n = blocking_io(
                &mut self.write_timeout,
                by,
                reason,
                |t| stream.set_write_timeout(t),
                || (&*stream).write(output),
            )?;
            if n == 0 {
                return Err(ureq::Error::Io(io::ErrorKind::WriteZero.into()));
            }
            output = &output[n..];
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        // Waiting for the head or reading the body: the transport cannot tell which, so the
        // deadline is reported as such and the client names the phase (see `client.rs`).
        let (by, reason) = limit(
            until(&timeout),
            timeout.reason,
            self.deadline,
            ureq::Timeout::Global,
        );
        let stream = &self.stream;
        let input = self.buffers.append_buf()?;
        let amount = blocking_io(
            &mut self.read_timeout,
            by,
            reason,
            |t| stream.set_read_timeout(t),
            || (&*stream).read(input),
        )?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        if self.conns.is_retired(self.serial) {
            return false;
        }
        // Called when the pool hands the connection to a call (and when it takes it back).
        self.deadline = self.conns.deadline();
        if self.probed_at.is_some_and(|at| at.elapsed() < PROBE_FRESH) {
            return true;
        }
        let open = probe(&self.stream);
        self.probed_at = open.then(Instant::now);
        open
    }
}

/// Whether an idle connection is still open: a non-blocking read must find nothing to read.
/// Bytes (or end of stream) on an idle HTTP/1.1 connection mean it cannot be reused.
///
/// On Unix this is one `recv(MSG_PEEK | MSG_DONTWAIT)`, where toggling the socket's blocking
/// mode around a read (ureq's way, and the only one std offers) costs three system calls.
#[cfg(unix)]
fn probe(stream: &TcpStream) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    let peeked = socket2::SockRef::from(stream)
        .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT);
    matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[cfg(not(unix))]
fn probe(mut stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let idle = matches!(stream.read(&mut [0u8]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).is_ok() && idle
}

/// Connection buffers that start small and grow on demand: an idle connection holds a few KiB
/// instead of ureq's 2 x 128 KiB, while a response header up to the configured maximum still
/// fits. A header that would need more fails as `LargeResponseHeader` rather than a bare EOF.
#[derive(Debug)]
pub(crate) struct GrowBuffers {
    sizes: BufferSizes,
    input: Vec<u8>,
    // input[start..end] is filled and not yet consumed.
    start: usize,
    end: usize,
    output: Vec<u8>,
    progress: bool,
}

impl GrowBuffers {
    pub(crate) fn new(sizes: BufferSizes) -> GrowBuffers {
        GrowBuffers {
            sizes,
            input: Vec::new(),
            start: 0,
            end: 0,
            output: Vec::new(),
            progress: false,
        }
    }

    /// Free space to read into, growing (up to the limit) when there is none.
    fn append_buf(&mut self) -> Result<&mut [u8], ureq::Error> {
        if self.end == self.input.len() {
            if self.start > 0 {
                self.input.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.input.len() >= self.sizes.max_input {
                return Err(ureq::Error::LargeResponseHeader(
                    self.input.len(),
                    self.sizes.max_input,
                ));
            }
        }
        if self.end == self.input.len() {
            let grown = (self.input.len() * 2)
                .clamp(self.sizes.input, self.sizes.max_input.max(self.sizes.input));
            self.input.resize(grown, 0);
        }
        Ok(&mut self.input[self.end..])
    }
}

impl Buffers for GrowBuffers {
    fn output(&mut self) -> &mut [u8] {
        if self.output.is_empty() {
            self.output = vec![0; self.sizes.output];
        }
        &mut self.output
    }

    fn input(&self) -> &[u8] {
        &self.input[self.start..self.end]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        match self.append_buf() {
            Ok(_) => &mut self.input[self.end..],
            // ureq treats an empty buffer as "cannot read more"; the transports call
            // `append_buf` themselves and report the typed error.
            Err(_) => &mut [],
        }
    }

    fn input_appended(&mut self, amount: usize) {
        self.end = (self.end + amount).min(self.input.len());
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.start = (self.start + amount).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // Give back what one large header needed once it has been read.
            if self.input.len() > self.sizes.input {
                self.input = vec![0; self.sizes.input];
            }
        }
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        // ureq reads a request body through the free input space; make sure there is some.
        const MIN_TMP: usize = 4 * 1024;
        if self.input.len() - self.end < MIN_TMP {
            self.input.resize(self.end + MIN_TMP, 0);
        }
        if self.output.is_empty() {
            self.output = vec![0; self.sizes.output];
        }
        (&mut self.input[self.end..], &mut self.output)
    }

    fn can_use_input(&self) -> bool {
        self.end > self.start && self.progress
    }
}

/// One cached lookup. Entries live in a map, not on the hot path's stack: the size
/// difference between the variants does not matter.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
enum Cached {
    Found(ResolvedSocketAddrs, Instant),
    NotFound(Instant),
    /// A lookup that outlived its call. The system resolver cannot be cancelled, so its thread
    /// runs on; calls within the negative TTL fail at once instead of each starting another.
    TimedOut(Instant),
}

/// Host names a client's resolver remembers before it starts over (a crawler meets unbounded
/// hosts).
const MAX_CACHED_NAMES: usize = 1024;

/// Caches host lookups per client for a TTL, failures for a shorter one. IP literals never
/// reach the system resolver. A lookup runs on a helper thread bounded by the call's timeout
/// (the system resolver cannot be cancelled); only cache misses pay for it.
pub(crate) struct CachingResolver {
    ttl: Duration,
    negative_ttl: Duration,
    conns: Arc<Connections>,
    // Uncontended: a client is used by one thread at a time. ureq requires `Sync`.
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// The last answer, looked up by the URL's scheme and authority as they are written: a
    /// worker calling one host again and again needs neither a port parse nor a hash.
    last: Option<Last>,
    by_host: HashMap<String, Cached>,
}

struct Last {
    https: bool,
    authority: String,
    addrs: ResolvedSocketAddrs,
    /// `None` for an IP literal, which never expires.
    until: Option<Instant>,
}

impl Cache {
    fn last(&self, https: bool, authority: &str) -> Option<&ResolvedSocketAddrs> {
        self.last
            .as_ref()
            .filter(|l| l.https == https && l.authority == authority)
            .filter(|l| l.until.is_none_or(|u| Instant::now() < u))
            .map(|l| &l.addrs)
    }
}

impl CachingResolver {
    pub(crate) fn new(ttl: Duration, negative_ttl: Duration, conns: Arc<Connections>) -> Self {
        CachingResolver {
            ttl,
            negative_ttl,
            conns,
            cache: Mutex::new(Cache::default()),
        }
    }

    fn remember(
        &self,
        https: bool,
        authority: &str,
        addrs: &ResolvedSocketAddrs,
        until: Option<Instant>,
    ) {
        if let Ok(mut c) = self.cache.lock() {
            c.last = Some(Last {
                https,
                authority: authority.to_owned(),
                addrs: addrs.clone(),
                until,
            });
        }
    }

    fn lookup(
        &self,
        host_port: &str,
        timeout: Option<Duration>,
    ) -> Result<Vec<SocketAddr>, ureq::Error> {
        let owned = host_port.to_owned();
        let Some(timeout) = timeout else {
            return owned.to_socket_addrs().map(Iterator::collect).map_err(|e| {
                log::debug!("dns lookup of {host_port} failed: {e}");
                ureq::Error::HostNotFound
            });
        };
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sentinel-dns".into())
            .spawn(move || {
                let _ = tx.send(owned.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
            })
            .map_err(ureq::Error::Io)?;
        match rx.recv_timeout(timeout) {
            Ok(Ok(addrs)) => Ok(addrs),
            Ok(Err(e)) => {
                log::debug!("dns lookup of {host_port} failed: {e}");
                Err(ureq::Error::HostNotFound)
            }
            Err(_) => Err(ureq::Error::Timeout(ureq::Timeout::Resolve)),
        }
    }
}

impl fmt::Debug for CachingResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingResolver").finish()
    }
}

impl CachingResolver {
    /// A cached answer for `key` that has not expired, remembered for the authority too.
    fn cached(
        &self,
        key: &str,
        now: Instant,
        https: bool,
        authority: &str,
    ) -> Option<Result<ResolvedSocketAddrs, ureq::Error>> {
        let hit = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.by_host.get(key).cloned())?;
        match hit {
            Cached::Found(addrs, until) if now < until => {
                self.remember(https, authority, &addrs, Some(until));
                Some(Ok(addrs))
            }
            Cached::NotFound(until) if now < until => Some(Err(ureq::Error::HostNotFound)),
            Cached::TimedOut(until) if now < until => {
                Some(Err(ureq::Error::Timeout(ureq::Timeout::Resolve)))
            }
            _ => None,
        }
    }

    /// Looks `key` up, bounded by the call's deadline (or ureq's own limit, when it has one),
    /// and caches the answer, a failure included (for the negative TTL).
    fn look_up(
        &self,
        key: String,
        now: Instant,
        timeout: &NextTimeout,
    ) -> Result<Cached, ureq::Error> {
        let (by, _) = limit(
            until(timeout),
            timeout.reason,
            self.conns.deadline(),
            ureq::Timeout::Resolve,
        );
        let left = by.map(|b| b.saturating_duration_since(now));
        if left.is_some_and(|l| l.is_zero()) {
            return Err(ureq::Error::Timeout(ureq::Timeout::Resolve));
        }
        let entry = match self.lookup(&key, left) {
            Ok(addrs) => {
                let mut out = self.empty();
                for a in addrs.into_iter().take(16) {
                    out.push(a);
                }
                if out.is_empty() {
                    Cached::NotFound(later(now, self.negative_ttl))
                } else {
                    Cached::Found(out, later(now, self.ttl))
                }
            }
            Err(ureq::Error::HostNotFound) => Cached::NotFound(later(now, self.negative_ttl)),
            Err(ureq::Error::Timeout(_)) => Cached::TimedOut(later(now, self.negative_ttl)),
            Err(e) => return Err(e),
        };
        if let Ok(mut c) = self.cache.lock() {
            if c.by_host.len() >= MAX_CACHED_NAMES {
                c.by_host.clear();
            }
            c.by_host.insert(key, entry.clone());
        }
        Ok(entry)
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let https = uri.scheme_str() == Some("https");
        let authority = uri.authority().map_or("", |a| a.as_str());
        if let Some(addrs) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.last(https, authority).cloned())
        {
            return Ok(addrs);
        }
        let host = uri
            .host()
            .ok_or_else(|| ureq::Error::BadUri("no host".into()))?;
        let port = port(uri);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let mut out = self.empty();
            out.push(SocketAddr::new(ip, port));
            self.remember(https, authority, &out, None);
            return Ok(out);
        }
        let key = format!("{host}:{port}");
        let now = Instant::now();
        if let Some(answer) = self.cached(&key, now, https, authority) {
            return answer;
        }
        match self.look_up(key, now, &timeout)? {
            Cached::Found(addrs, until) => {
                self.remember(https, authority, &addrs, Some(until));
                Ok(addrs)
            }
            Cached::NotFound(_) => Err(ureq::Error::HostNotFound),
            Cached::TimedOut(_) => Err(ureq::Error::Timeout(ureq::Timeout::Resolve)),
        }
    }
}

/// An in-memory peer for fuzzing whole calls: each new connection is served the next scripted
/// response (bytes, then end of stream), and everything the client writes is recorded.
#[cfg(feature = "fuzzing")]
pub(crate) mod scripted {
    use super::*;
    use std::collections::VecDeque;

    /// What the scripted peer says and what it heard.
    #[derive(Debug, Default)]
    pub(crate) struct Script {
        pub(crate) responses: Mutex<VecDeque<Vec<u8>>>,
        pub(crate) written: Mutex<Vec<Vec<u8>>>,
    }

    #[derive(Debug)]
    pub(crate) struct ScriptedConnector(pub(crate) Arc<Script>);

    impl Connector for ScriptedConnector {
        type Out = Box<dyn Transport>;

        fn connect(
            &self,
            details: &ConnectionDetails,
            _: Option<()>,
        ) -> Result<Option<Self::Out>, ureq::Error> {
            let next = self.0.responses.lock().ok().and_then(|mut r| r.pop_front());
            let Some(response) = next else {
                return Err(ureq::Error::Io(
                    std::io::ErrorKind::ConnectionRefused.into(),
                ));
            };
            self.0
                .written
                .lock()
                .map_err(|_| ureq::Error::ConnectionFailed)?
                .push(Vec::new());
            Ok(Some(Box::new(ScriptedTransport {
                buffers: GrowBuffers::new(BufferSizes {
                    input: details.config.input_buffer_size(),
                    max_input: details.config.max_response_header_size(),
                    output: details.config.output_buffer_size(),
                }),
                input: response,
                read: 0,
                script: self.0.clone(),
            })))
        }
    }

    /// Every host resolves to a loopback address without any lookup.
    #[derive(Debug)]
    pub(crate) struct ScriptedResolver;

    impl Resolver for ScriptedResolver {
        fn resolve(
            &self,
            uri: &Uri,
            _: &Config,
            _: NextTimeout,
        ) -> Result<ResolvedSocketAddrs, ureq::Error> {
            let mut out = self.empty();
            out.push(SocketAddr::from(([127, 0, 0, 1], port(uri))));
            Ok(out)
        }
    }

    #[derive(Debug)]
    struct ScriptedTransport {
        buffers: GrowBuffers,
        input: Vec<u8>,
        read: usize,
        script: Arc<Script>,
    }

    impl Transport for ScriptedTransport {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }

        fn transmit_output(&mut self, amount: usize, _: NextTimeout) -> Result<(), ureq::Error> {
            let out = self.buffers.output()[..amount].to_vec();
            if let Some(last) = self
                .script
                .written
                .lock()
                .ok()
                .as_mut()
                .and_then(|w| w.last_mut())
            {
                last.extend_from_slice(&out);
            }
            Ok(())
        }

        fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
            let buf = self.buffers.append_buf()?;
            let n = buf.len().min(self.input.len() - self.read);
            buf[..n].copy_from_slice(&self.input[self.read..self.read + n]);
            self.read += n;
            self.buffers.input_appended(n);
            Ok(n > 0)
        }

        fn is_open(&mut self) -> bool {
            self.read < self.input.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(r: &CachingResolver, url: &str) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let uri: Uri = url.parse().unwrap();
        r.resolve(&uri, &Config::default(), NextTimeout::default())
    }

    #[test]
    fn socket_timeouts_are_kept_while_they_fit_and_never_exceed_what_is_left() {
        let in30 = Some(Instant::now() + Duration::from_secs(30));
        // Nothing to bound: clear a timeout that is set, leave an unset one alone.
        assert_eq!(arm(None, None), None);
        assert_eq!(arm(Some(Duration::from_secs(1)), None), Some(None));
        // A new timeout is a sixteenth short of what is left ...
        let set = arm(None, in30).unwrap().unwrap();
        assert!(set <= Duration::from_secs(30) - Duration::from_secs(30) / 16);
        assert!(set > Duration::from_secs(27));
        // ... so the next calls, with a little more or less time left, keep it.
        assert_eq!(arm(Some(set), in30), None);
        assert_eq!(arm(Some(Duration::from_secs(16)), in30), None);
        // Longer than what is left, or far shorter: set again.
        assert!(arm(Some(Duration::from_secs(31)), in30).is_some());
        assert!(arm(Some(Duration::from_secs(1)), in30).is_some());
        // A limit already passed still gives a valid (non-zero) socket timeout.
        let past = Some(Instant::now() - Duration::from_secs(1));
        assert_eq!(arm(None, past), Some(Some(Duration::from_millis(1))));
    }

    #[test]
    fn the_earlier_limit_wins_and_names_its_reason() {
        let now = Instant::now();
        let soon = now + Duration::from_secs(1);
        let later = now + Duration::from_secs(2);
        let (connect, global, recv) = (
            ureq::Timeout::Connect,
            ureq::Timeout::Global,
            ureq::Timeout::RecvResponse,
        );
        let send = ureq::Timeout::SendRequest;
        // ureq's own limit first: its reason.
        assert_eq!(
            limit(Some(soon), recv, Some(later), send),
            (Some(soon), recv)
        );
        assert_eq!(limit(Some(soon), recv, None, send), (Some(soon), recv));
        // The deadline first: the phase it cut short ...
        assert_eq!(
            limit(Some(later), global, Some(soon), send),
            (Some(soon), send)
        );
        assert_eq!(
            limit(None, global, Some(soon), global),
            (Some(soon), global)
        );
        // ... except while connecting, which stays a connect timeout.
        assert_eq!(
            limit(Some(later), connect, Some(soon), send),
            (Some(soon), connect)
        );
        assert_eq!(limit(None, connect, None, send), (None, connect));
    }

    #[test]
    fn later_saturates_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(later(now, Duration::MAX) > now + Duration::from_secs(3600 * 24 * 365));
    }

    #[test]
    fn connections_carry_the_call_deadline_and_retire_what_was_opened() {
        let c = Connections::new();
        assert_eq!(c.deadline(), None);
        let d = Instant::now() + Duration::from_millis(1500);
        c.set_deadline(d);
        let back = c.deadline().unwrap();
        assert!(
            back <= d && d - back < Duration::from_micros(1),
            "{back:?} vs {d:?}"
        );
        c.opened.store(3, Ordering::Relaxed);
        assert!(!c.is_retired(0));
        c.retire_all();
        assert!(c.is_retired(2));
        assert!(
            !c.is_retired(3),
            "a connection opened after the retirement is fresh"
        );
    }

    #[test]
    fn ip_literals_resolve_without_lookup() {
        let r = CachingResolver::new(
            Duration::from_secs(60),
            Duration::from_secs(5),
            Arc::new(Connections::new()),
        );
        let a = resolve(&r, "http://127.0.0.1:8080/x").unwrap();
        assert_eq!(a[0], "127.0.0.1:8080".parse().unwrap());
        let a = resolve(&r, "https://[::1]/").unwrap();
        assert_eq!(a[0], "[::1]:443".parse().unwrap());
        assert!(r.cache.lock().unwrap().by_host.is_empty());
        // The last answer is served again without parsing: same scheme and authority only.
        let a = resolve(&r, "https://[::1]/other").unwrap();
        assert_eq!(a[0], "[::1]:443".parse().unwrap());
        let a = resolve(&r, "http://[::1]/").unwrap();
        assert_eq!(a[0], "[::1]:80".parse().unwrap());
    }

    #[test]
    fn names_are_cached_and_failures_negatively_cached() {
        let r = CachingResolver::new(
            Duration::from_secs(60),
            Duration::from_secs(5),
            Arc::new(Connections::new()),
        );
        let a = resolve(&r, "http://localhost:9/").unwrap();
        assert!(a.iter().all(|s| s.ip().is_loopback()));
        let err = resolve(&r, "http://no-such-host.invalid/").unwrap_err();
        assert!(matches!(err, ureq::Error::HostNotFound));
        let cache = r.cache.lock().unwrap();
        assert!(matches!(
            cache.by_host.get("localhost:9"),
            Some(Cached::Found(..))
        ));
        assert!(matches!(
            cache.by_host.get("no-such-host.invalid:80"),
            Some(Cached::NotFound(_))
        ));
    }
}
