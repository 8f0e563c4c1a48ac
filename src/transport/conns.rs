//! A client's connection bookkeeping (connections opened, the call's deadline, retiring
//! pooled connections, the secrets vault) and the limit that a blocking step must not pass.

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::unversioned::transport::NextTimeout;

use crate::metrics::otel::{ConnGauge, OtelRegistry};
use crate::retry::later;
use crate::sync::lock;
use crate::telemetry::PhaseClock;

use super::secrets::Secrets;

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
    pub(super) opened: AtomicU64,
    /// Connections numbered below this (in opening order) are retired: the pool's probe
    /// reports them closed, so the next request opens a fresh one.
    retired_below: AtomicU64,
    /// The running call's deadline (`None` before the first). A connection takes it over when
    /// it is opened or taken from the pool for a call, and bounds every lookup, connect,
    /// handshake, write and read of that call with it: ureq's own timeouts would re-read the
    /// clock and recompute every phase's limit several times per request. Only the client's
    /// thread sets and reads it, so the lock is never contended; it holds the `Instant` itself,
    /// where nanoseconds in an atomic cost a clock subtraction and an addition per use.
    deadline: Mutex<Option<Instant>>,
    base: Instant,
    /// The placeholders of the running exchange and what they stand for.
    secrets: Secrets,
    /// The running attempt's phase timings.
    clock: PhaseClock,
    /// The pool's metrics, when connections are counted for OpenTelemetry's
    /// `http.client.open_connections`.
    open_gauges: Option<Arc<OtelRegistry>>,
    /// The serial of the connection that last sent a request: the one whose response the
    /// engine has just handed out.
    sending: AtomicU64,
    /// Connections streaming a body under their own deadline (`StreamDeadline`), by serial,
    /// and how many there are: a transport with none to look for pays one atomic load.
    streams: Mutex<Vec<(u64, Arc<AtomicU64>)>>,
    stream_count: AtomicUsize,
    /// The peer of the connection the running exchange was written to (see `note_peer`).
    peer: Peer,
    /// Whether an attempt of this client may be aborted from another thread (the pool
    /// hedges): only then do transports register their socket for `abort`.
    abortable: bool,
    abort: Mutex<AbortSlot>,
}

/// What `Connections::abort` acts on: the running attempt's flag and the socket it wrote to.
#[derive(Debug, Default)]
struct AbortSlot {
    flag: Option<Arc<AtomicBool>>,
    socket: Option<Arc<TcpStream>>,
}

/// The abort flag a transport took over from the attempt that wrote to it: set, every read
/// and write of that connection fails at once (its socket was shut down too).
#[derive(Debug, Clone, Default)]
pub(crate) struct AbortFlag(Option<Arc<AtomicBool>>);

impl AbortFlag {
    pub(crate) fn is_set(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Acquire))
    }
}

/// The peer address of the last connection a request was written to, and that connection's
/// serial plus one (0: none since `clear_peer`), so that a worker sending on the same
/// connection again and again takes no lock.
#[derive(Debug, Default)]
struct Peer {
    serial: AtomicU64,
    addr: Mutex<Option<SocketAddr>>,
}

/// The deadline of one streamed body, which replaces the call's deadline for the reads of
/// that connection while it lives: server-sent events are bounded by an idle timeout between
/// events, not by the deadline that covered the response head. Dropping it hands the
/// connection back to the call's deadline.
#[derive(Debug)]
pub(crate) struct StreamDeadline {
    conns: Arc<Connections>,
    cell: Arc<AtomicU64>,
}

impl StreamDeadline {
    /// Bounds the stream's reads by `until` (`None`: no bound).
    pub(crate) fn set(&self, until: Option<Instant>) {
        self.cell.store(
            until.map_or(u64::MAX, |u| self.conns.nanos(u)),
            Ordering::Relaxed,
        );
    }
}

impl Drop for StreamDeadline {
    fn drop(&mut self) {
        let mut streams = lock(&self.conns.streams);
        streams.retain(|(_, cell)| !Arc::ptr_eq(cell, &self.cell));
        self.conns
            .stream_count
            .store(streams.len(), Ordering::Relaxed);
    }
}

impl Connections {
    pub(crate) fn new() -> Connections {
        Connections {
            opened: AtomicU64::new(0),
            retired_below: AtomicU64::new(0),
            deadline: Mutex::new(None),
            base: Instant::now(),
            secrets: Secrets::new(),
            sending: AtomicU64::new(0),
            streams: Mutex::new(Vec::new()),
            stream_count: AtomicUsize::new(0),
            clock: PhaseClock::new(),
            open_gauges: None,
            peer: Peer::default(),
            abortable: false,
            abort: Mutex::new(AbortSlot::default()),
        }
    }

    /// Lets another thread abort this client's running attempt (`abort`): for the clients
    /// of a pool that hedges.
    pub(crate) fn abortable(mut self) -> Connections {
        self.abortable = true;
        self
    }

    /// Starts an attempt that `abort` may cut short: a fresh flag, no socket yet.
    pub(crate) fn arm_abort(&self) {
        if let Ok(mut slot) = self.abort.lock() {
            *slot = AbortSlot {
                flag: Some(Arc::new(AtomicBool::new(false))),
                socket: None,
            };
        }
    }

    /// Ends the attempt `arm_abort` started: a later `abort` touches nothing.
    pub(crate) fn disarm_abort(&self) {
        if let Ok(mut slot) = self.abort.lock() {
            *slot = AbortSlot::default();
        }
    }

    /// Aborts the armed attempt: its connection fails every read and write from now on, and
    /// its socket is shut down, so a read blocked in the kernel returns at once and the
    /// connection is closed, never pooled.
    pub(crate) fn abort(&self) {
        let Ok(slot) = self.abort.lock() else {
            return;
        };
        if let Some(flag) = &slot.flag {
            flag.store(true, Ordering::Release);
        }
        if let Some(socket) = &slot.socket {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Called by a transport about to write a request on `socket`: the flag of the armed
    /// attempt, if any (an empty flag otherwise), with the socket noted for `abort`.
    pub(super) fn abort_flag(&self, socket: &Arc<TcpStream>) -> AbortFlag {
        if !self.abortable {
            return AbortFlag(None);
        }
        let Ok(mut slot) = self.abort.lock() else {
            return AbortFlag(None);
        };
        if slot.flag.is_some() {
            slot.socket = Some(socket.clone());
        }
        AbortFlag(slot.flag.clone())
    }

    /// Counts this client's connections in `registry`'s open-connection gauges.
    pub(crate) fn with_open_gauges(mut self, registry: Arc<OtelRegistry>) -> Connections {
        self.open_gauges = Some(registry);
        self
    }

    /// The running attempt's phase timings.
    pub(crate) fn clock(&self) -> &PhaseClock {
        &self.clock
    }

    /// The gauge of a connection just opened to `uri`, when connections are counted.
    pub(super) fn gauge(&self, uri: &ureq::http::Uri) -> Option<ConnGauge> {
        let registry = self.open_gauges.as_ref()?;
        let scheme = if uri.scheme_str() == Some("https") {
            "https"
        } else {
            "http"
        };
        let host = uri.host().unwrap_or("");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some(registry.opened(scheme, host, crate::url::port(uri)))
    }

    /// Notes that connection `serial` is sending a request.
    pub(super) fn note_sending(&self, serial: u64) {
        self.sending.store(serial, Ordering::Relaxed);
    }

    /// The connection that sent the last request: when a call has just returned, the one
    /// carrying its response's body.
    pub(crate) fn last_sender(&self) -> u64 {
        self.sending.load(Ordering::Relaxed)
    }

    /// Takes connection `serial` (from `last_sender`) out of the call's deadline: its reads
    /// are bounded by the returned `StreamDeadline` instead, starting with `until`.
    pub(crate) fn stream_deadline(
        self: &Arc<Self>,
        serial: u64,
        until: Option<Instant>,
    ) -> StreamDeadline {
        let lease = StreamDeadline {
            conns: self.clone(),
            cell: Arc::new(AtomicU64::new(u64::MAX)),
        };
        lease.set(until);
        let mut streams = lock(&self.streams);
        // A later stream on the same connection (after the first one ended) replaces it.
        streams.retain(|(s, _)| *s != serial);
        streams.push((serial, lease.cell.clone()));
        self.stream_count.store(streams.len(), Ordering::Relaxed);
        lease
    }

    /// The deadline of connection `serial`'s streamed body, when it streams one: `Some(None)`
    /// for a stream without a bound.
    pub(super) fn streamed(&self, serial: u64) -> Option<Option<Instant>> {
        if self.stream_count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let streams = lock(&self.streams);
        let (_, cell) = streams.iter().find(|(s, _)| *s == serial)?;
        Some(match cell.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => self.base.checked_add(Duration::from_nanos(n)),
        })
    }

    fn nanos(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.base).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX - 1).max(1)
    }

    /// Forgets the peer of the last exchange, before a new one is sent: a connection that is
    /// not a TCP transport of ours (ureq's SOCKS connector) leaves no peer rather than a
    /// stale one.
    pub(crate) fn clear_peer(&self) {
        self.peer.serial.store(0, Ordering::Relaxed);
    }

    /// Records that a request is being written to connection `serial`, whose peer is `addr`.
    pub(super) fn note_peer(&self, serial: u64, addr: Option<SocketAddr>) {
        let tag = serial.saturating_add(1);
        if self.peer.serial.load(Ordering::Relaxed) == tag {
            return;
        }
        if let Ok(mut a) = self.peer.addr.lock() {
            *a = addr;
        }
        self.peer.serial.store(tag, Ordering::Relaxed);
    }

    /// The peer of the connection the last request was written to, since `clear_peer`.
    pub(crate) fn peer(&self) -> Option<SocketAddr> {
        if self.peer.serial.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.peer.addr.lock().ok().and_then(|a| *a)
    }

    /// The vault of the secrets kept out of ureq's sight (`secrets.rs`).
    pub(crate) fn secrets(&self) -> &Secrets {
        &self.secrets
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

    pub(super) fn is_retired(&self, serial: u64) -> bool {
        serial < self.retired_below.load(Ordering::Relaxed)
    }

    /// Sets the deadline of the attempt about to run.
    pub(crate) fn set_deadline(&self, deadline: Instant) {
        *lock(&self.deadline) = Some(deadline);
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        *lock(&self.deadline)
    }
}

/// The earlier of ureq's own limit for this step (when it has one) and the call's deadline,
/// with the reason to report when it passes: the deadline is reported as the phase it cut
/// short (`deadline_phase`), so that a hung server shows as a response timeout (which the
/// breaker counts, and which says the request may have been processed) rather than as a bare
/// deadline. A step that ureq (or the TLS connector) marks as part of connecting stays a
/// connect timeout whichever limit ends it.
pub(super) fn limit(
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

/// The instant a timeout handed over by ureq runs out (`None`: never).
pub(super) fn until(timeout: &NextTimeout) -> Option<Instant> {
    (!timeout.after.is_not_happening()).then(|| later(Instant::now(), *timeout.after))
}

/// Whether `details` is the proxy connectors' own connection to `proxy`, which they make
/// through the whole connector again (ureq's `run_connector`) inside the one connection to
/// the target.
pub(crate) fn is_proxy_leg(
    proxy: Option<&ureq::http::Uri>,
    details: &ureq::unversioned::transport::ConnectionDetails,
) -> bool {
    proxy.is_some_and(|p| {
        p.scheme() == details.uri.scheme() && p.authority() == details.uri.authority()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
