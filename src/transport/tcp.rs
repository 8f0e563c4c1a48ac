//! Plain TCP connections: socket timeouts armed with slack, the call's deadline enforced
//! on every blocking read and write, and a one-syscall liveness probe for pooled sockets.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

use crate::dns::interleave;
use crate::error::{ErrorKind, Refused};
use crate::retry::later;
use crate::telemetry::Phase;

use super::buffers::GrowBuffers;
use super::conns::{limit, until, AbortFlag, BufferSizes, Connections};

/// Opens plain TCP connections (ureq's `TcpConnector` hard-wires its fixed-size buffers).
#[derive(Debug)]
pub(crate) struct TcpConnector {
    pub(super) sizes: BufferSizes,
    pub(super) conns: Arc<Connections>,
    pub(super) connect_timeout: Duration,
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
        if details.config.proxy().is_some() {
            // A proxy is configured for this request (a target that bypasses it has its
            // proxy taken off at the request level, see `engine.rs`), yet no proxy connector
            // made a connection: never dial the target around the user's proxy.
            let why = "proxy: no connector for the configured proxy; refusing to connect around it";
            return Err(ureq::Error::Other(Box::new(Refused::new(
                ErrorKind::InvalidConfig(why.into()),
                why,
            ))));
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
        let started = Instant::now();
        let (stream, addr) = dial(&details.addrs, by, reason)?;
        self.conns.clock().record(Phase::Connect, started.elapsed());
        stream.set_nodelay(true)?;
        Ok(Some(Box::new(TcpTransport {
            peer: Some(addr),
            stream: Arc::new(stream),
            aborted: AbortFlag::default(),
            serial: self.conns.opened(),
            conns: self.conns.clone(),
            deadline,
            // Under TLS these buffers hold ciphertext; the TLS layer checks the plaintext.
            buffers: GrowBuffers::new(self.sizes, !details.needs_tls()),
            read_timeout: None,
            write_timeout: None,
            fresh_until: None,
        })))
    }
}

/// Connects to the first of `addrs` that answers by `by`, trying them in turn with the
/// families alternating (`dns::interleave`). Each attempt gets an equal share of the time
/// left (the last one all of it), so an address that does not answer (a black-holed IPv6
/// route) cannot spend the whole connect timeout before the next family is tried. Attempts
/// run one after another, not raced as in RFC 8305: a refused address fails in microseconds,
/// and only a silent one costs its share.
fn dial(
    addrs: &[SocketAddr],
    by: Option<Instant>,
    reason: ureq::Timeout,
) -> Result<(TcpStream, SocketAddr), ureq::Error> {
    let order = interleave(addrs);
    let mut last = None;
    for (i, addr) in order.iter().enumerate() {
        let left = by.map_or(Duration::MAX, |b| {
            b.saturating_duration_since(Instant::now())
        });
        if left.is_zero() {
            return Err(ureq::Error::Timeout(reason));
        }
        match TcpStream::connect_timeout(addr, share(left, order.len() - i)) {
            Ok(stream) => return Ok((stream, *addr)),
            Err(e) => {
                log::debug!("connect to {addr} failed: {e}");
                last = Some(e);
            }
        }
    }
    match last {
        Some(e) if is_timeout(&e) => Err(ureq::Error::Timeout(reason)),
        Some(e) => Err(ureq::Error::Io(e)),
        None => Err(ureq::Error::Io(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "no address to connect to",
        ))),
    }
}

/// One attempt's part of the time `left` when `remaining` addresses (this one included) are
/// still to be tried; never zero, which `connect_timeout` refuses.
fn share(left: Duration, remaining: usize) -> Duration {
    let n = u32::try_from(remaining.max(1)).unwrap_or(u32::MAX);
    (left / n).max(Duration::from_millis(1)).min(left)
}

/// A probe that says a connection is open is trusted for this long: ureq probes a pooled
/// connection when it is returned and again when it is taken, and in a busy worker the two are
/// microseconds apart. A close in that window is caught by the stale-connection replay.
const PROBE_FRESH: Duration = Duration::from_millis(1);

#[derive(Debug)]
struct TcpTransport {
    // Shared only with `Connections::abort`, which may shut it down from another thread.
    stream: Arc<TcpStream>,
    // The abort flag of the attempt that last wrote to this connection (hedging).
    aborted: AbortFlag,
    /// The address connected to (`Response::remote_addr`).
    peer: Option<SocketAddr>,
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
    /// Until when the last probe that found the connection open is trusted (`PROBE_FRESH`).
    fresh_until: Option<Instant>,
}

/// The socket timeout to set before blocking with `left` to go (`None`: no limit), or `None` to
/// keep `current`.
///
/// A call's deadline shrinks as it runs and jumps back with the next call, so setting the
/// exact remaining time would cost a `setsockopt` per read and per write. Instead a timeout
/// already set is kept while it is no longer than what is left and at least half of it; an
/// early expiry is re-armed by the caller (`blocking_io`), so no read or write ever blocks past
/// `until`. A new timeout is set a sixteenth short of what is left, so the next calls of a
/// steady worker, each with slightly more time left, keep it.
fn arm(current: Option<Duration>, left: Option<Duration>) -> Option<Option<Duration>> {
    let Some(left) = left else {
        return current.is_some().then_some(None);
    };
    // A zero timeout is refused by the socket (it means "no timeout"): wait at least 1 ms.
    let left = left.max(Duration::from_millis(1));
    match current {
        Some(c) if c <= left && c >= left / 2 => None,
        _ => Some(Some((left - left / 16).max(Duration::from_millis(1)))),
    }
}

/// The error of a read or write on a connection whose attempt was aborted (it lost a hedge
/// race).
fn aborted() -> ureq::Error {
    ureq::Error::Io(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the attempt was superseded by another (hedging)",
    ))
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
        // checked before every operation too (one clock reading for the check and the arming).
        let left = until.map(|u| u.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return Err(ureq::Error::Timeout(reason));
        }
        if let Some(t) = arm(*current, left) {
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
        self.fresh_until = None;
        self.aborted = self.conns.abort_flag(&self.stream);
        if self.aborted.is_set() {
            return Err(aborted());
        }
        self.conns.note_sending(self.serial);
        self.buffers.request_sent();
        self.conns.note_peer(self.serial, self.peer);
        let stream = &*self.stream;
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
        // deadline is reported as such and the engine names the phase (`engine.rs`, `response.rs`).
        // A streamed body (server-sent events) is bounded by its own deadline instead.
        let deadline = self.conns.streamed(self.serial).unwrap_or(self.deadline);
        let (by, reason) = limit(
            until(&timeout),
            timeout.reason,
            deadline,
            ureq::Timeout::Global,
        );
        if self.aborted.is_set() {
            return Err(aborted());
        }
        let stream = &*self.stream;
        let input = self.buffers.append_buf()?;
        let amount = blocking_io(
            &mut self.read_timeout,
            by,
            reason,
            |t| stream.set_read_timeout(t),
            || (&*stream).read(input),
        )?;
        self.buffers.appended(amount)?;
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // Retired with its siblings after a stale one, or alone after a response that must
        // end the connection (`framing`).
        if self.conns.is_retired(self.serial) || !self.buffers.reusable() || self.aborted.is_set() {
            return false;
        }
        // Called when the pool hands the connection to a call (and when it takes it back).
        self.deadline = self.conns.deadline();
        let now = Instant::now();
        if self.fresh_until.is_some_and(|until| now < until) {
            return true;
        }
        let open = probe(&self.stream);
        self.fresh_until = open.then(|| later(now, PROBE_FRESH));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_a_share_of_what_is_left() {
        let s = Duration::from_secs;
        assert_eq!(share(s(9), 3), s(3));
        assert_eq!(share(s(9), 1), s(9));
        assert_eq!(share(s(9), 0), s(9));
        assert_eq!(
            share(Duration::from_nanos(2), 4),
            Duration::from_nanos(2),
            "never more than is left"
        );
        assert_eq!(share(Duration::MAX, 2), Duration::MAX / 2);
    }

    #[test]
    fn a_refusing_address_falls_back_to_the_next() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        // Nothing listens on 127.0.0.2 at that port: the kernel refuses at once.
        let closed = SocketAddr::new("127.0.0.2".parse().unwrap(), open.port());
        let by = Some(Instant::now() + Duration::from_secs(5));
        let (_stream, addr) = dial(&[closed, open], by, ureq::Timeout::Connect).unwrap();
        assert_eq!(addr, open);
        let err = dial(&[closed], by, ureq::Timeout::Connect).unwrap_err();
        assert!(matches!(err, ureq::Error::Io(_)), "{err:?}");
    }

    #[test]
    fn socket_timeouts_are_kept_while_they_fit_and_never_exceed_what_is_left() {
        let in30 = Some(Duration::from_secs(30));
        // Nothing to bound: clear a timeout that is set, leave an unset one alone.
        assert_eq!(arm(None, None), None);
        assert_eq!(arm(Some(Duration::from_secs(1)), None), Some(None));
        // A new timeout is a sixteenth short of what is left ...
        let set = arm(None, in30).unwrap().unwrap();
        assert_eq!(set, Duration::from_secs(30) - Duration::from_secs(30) / 16);
        // ... so the next calls, with a little more or less time left, keep it.
        assert_eq!(arm(Some(set), in30), None);
        assert_eq!(arm(Some(Duration::from_secs(16)), in30), None);
        // Longer than what is left, or far shorter: set again.
        assert!(arm(Some(Duration::from_secs(31)), in30).is_some());
        assert!(arm(Some(Duration::from_secs(1)), in30).is_some());
        // Nothing left still gives a valid (non-zero) socket timeout.
        assert_eq!(
            arm(None, Some(Duration::ZERO)),
            Some(Some(Duration::from_millis(1)))
        );
    }
}
