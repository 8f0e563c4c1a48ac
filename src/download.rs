//! How a response body is read: a request's own body limit and idle timeout over the pool's
//! limit (`RequestBuilder::body_limit`, `no_body_limit`, `body_idle_timeout`), the idle
//! deadline that bodies and event streams share, and the reader behind
//! `Response::into_reader`.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::error::{from_ureq, Error, ErrorKind, TimeoutPhase};
use crate::metrics::HostCounters;
use crate::retry::later;
use crate::shared::HostKey;
use crate::transport::StreamDeadline;

/// The body settings a request gave itself (none: the pool's).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BodySettings {
    /// The limit of `bytes`, `text`, `json` and event lines, and of `into_reader` unless
    /// `unlimited_reader`.
    pub(crate) limit: Option<u64>,
    /// `into_reader` reads without a limit.
    pub(crate) unlimited_reader: bool,
    /// The body is bounded by this idle timeout instead of the pool's deadline.
    pub(crate) idle: Option<Duration>,
}

/// What a response's body readers go by: a request's settings over the pool's limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyRules {
    /// The limit of everything that holds the body (or a line of it) in memory.
    pub(crate) limit: u64,
    /// The limit of `into_reader` (`None`: none).
    pub(crate) reader_limit: Option<u64>,
    /// The idle timeout of the body, when the request set one.
    pub(crate) idle: Option<Duration>,
}

impl BodySettings {
    /// The rules for a response of a pool whose body limit is `pool_limit`.
    pub(crate) fn rules(&self, pool_limit: u64) -> BodyRules {
        let limit = self.limit.unwrap_or(pool_limit);
        BodyRules {
            limit,
            reader_limit: (!self.unlimited_reader).then_some(limit),
            idle: self.idle,
        }
    }
}

/// A body's reads bounded by an idle timeout instead of the call's deadline: each read that
/// makes progress (an event parsed, for a stream of events; any byte, for a body) pushes the
/// connection's own deadline (`StreamDeadline`) `idle` further, up to `bound`, a deadline
/// that still covers the whole body (one set on the request itself).
#[derive(Debug)]
pub(crate) struct IdleDeadline {
    /// The connection's own deadline (`None`: through a proxy, ureq's timeouts rule).
    lease: Option<StreamDeadline>,
    idle: Duration,
    bound: Option<Instant>,
    /// When the idle timeout runs out.
    until: Instant,
    /// What did not come in time, for the error: "server-sent event", "body byte".
    what: &'static str,
}

impl IdleDeadline {
    /// Starts the idle timeout now.
    pub(crate) fn new(
        lease: Option<StreamDeadline>,
        idle: Duration,
        bound: Option<Instant>,
        what: &'static str,
    ) -> IdleDeadline {
        let mut deadline = IdleDeadline {
            lease,
            idle,
            bound,
            until: Instant::now(),
            what,
        };
        deadline.arm();
        deadline
    }

    pub(crate) fn idle(&self) -> Duration {
        self.idle
    }

    /// Replaces the idle timeout, starting it again now.
    pub(crate) fn set_idle(&mut self, idle: Duration) {
        self.idle = idle;
        self.arm();
    }

    /// Progress: the idle timeout starts again.
    pub(crate) fn arm(&mut self) {
        self.until = later(Instant::now(), self.idle);
        let until = match self.bound {
            Some(d) => d.min(self.until),
            None => self.until,
        };
        if let Some(lease) = &self.lease {
            lease.set(Some(until));
        }
    }

    /// The body ended or failed: its connection goes back to the call's deadline (a later
    /// call on it must not run under this body's timeout).
    pub(crate) fn release(&mut self) {
        self.lease = None;
    }

    /// A failed read as the crate's error: a timeout that the idle timeout (not `bound`)
    /// ended is [`TimeoutPhase::Idle`].
    pub(crate) fn read_error(&self, e: std::io::Error) -> Error {
        let e = read_error(e);
        let idle_first = self.bound.is_none_or(|d| self.until < d);
        if e.is_timeout() && idle_first && Instant::now() >= self.until {
            return Error::new(ErrorKind::Timeout(TimeoutPhase::Idle))
                .with_source(format!("no {} within {:?}", self.what, self.idle));
        }
        e
    }
}

/// A failed body read as the crate's error. ureq hands out its own errors wrapped in an
/// io::Error and plain io errors (a truncated body's UnexpectedEof) as they are; a deadline
/// that cut the read short is named the body's.
fn read_error(e: std::io::Error) -> Error {
    from_ureq(ureq::Error::from(e), true).deadline_as(TimeoutPhase::Body)
}

/// The crate's error inside an io::Error from [`BodyReader`].
pub(crate) fn into_error(e: std::io::Error) -> Error {
    match e.get_ref().is_some_and(|i| i.is::<Error>()) {
        true => *e
            .into_inner()
            .and_then(|i| i.downcast::<Error>().ok())
            .expect("checked above"),
        false => read_error(e),
    }
}

/// A response body as a reader: within its limit (the reader ureq hands over enforces it),
/// under its idle timeout when it has one, its errors the crate's wrapped in io::Errors.
pub(crate) struct BodyReader<'a> {
    /// Returned by the first read: the declared length is over the limit.
    pub(crate) refused: Option<Error>,
    pub(crate) inner: crate::decode::Decoded<ureq::BodyReader<'a>>,
    pub(crate) host: HostKey,
    /// Where the bytes read are counted, when the reader counts them itself.
    pub(crate) counters: Option<Arc<CachePadded<HostCounters>>>,
    pub(crate) idle: Option<IdleDeadline>,
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(e) = self.refused.take() {
            // Every later read fails too: the body is not read at all.
            self.refused = Some(Error::new(e.kind().clone()).with_host(&self.host));
            return Err(e.into());
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let e = match &mut self.idle {
                    Some(idle) => {
                        let e = idle.read_error(e);
                        idle.release();
                        e
                    }
                    None => read_error(e),
                };
                return Err(e.with_host(&self.host).into());
            }
        };
        if let Some(idle) = &mut self.idle {
            match n {
                0 => idle.release(),
                _ => idle.arm(),
            }
        }
        if let Some(counters) = &self.counters {
            counters.record_body_bytes(n as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_limit_replaces_the_pools_and_no_body_limit_frees_the_reader_only() {
        let pool = BodySettings::default().rules(100);
        assert_eq!((pool.limit, pool.reader_limit), (100, Some(100)));
        let own = BodySettings {
            limit: Some(7),
            ..BodySettings::default()
        };
        let own = own.rules(100);
        assert_eq!((own.limit, own.reader_limit), (7, Some(7)));
        let free = BodySettings {
            unlimited_reader: true,
            ..BodySettings::default()
        };
        let free = free.rules(100);
        assert_eq!((free.limit, free.reader_limit), (100, None));
    }

    #[test]
    fn a_wrapped_error_comes_back_as_it_was() {
        let e = Error::new(ErrorKind::Timeout(TimeoutPhase::Idle)).with_host("h:1");
        let back = into_error(std::io::Error::from(e));
        assert_eq!(back.kind(), &ErrorKind::Timeout(TimeoutPhase::Idle));
        assert_eq!(back.host(), Some("h:1"));
        let plain = into_error(std::io::ErrorKind::UnexpectedEof.into());
        assert!(matches!(plain.kind(), ErrorKind::Io { .. }), "{plain:?}");
    }

    #[test]
    fn the_idle_timeout_names_itself_only_when_it_came_first() {
        let timeout = || std::io::Error::from(std::io::ErrorKind::TimedOut);
        let mut idle = IdleDeadline::new(None, Duration::ZERO, None, "body byte");
        let e = idle.read_error(timeout());
        assert_eq!(e.kind(), &ErrorKind::Timeout(TimeoutPhase::Idle));
        // A request's own deadline that comes first keeps its name.
        idle.bound = Some(Instant::now());
        idle.set_idle(Duration::from_secs(60));
        let e = idle.read_error(timeout());
        assert_ne!(e.kind(), &ErrorKind::Timeout(TimeoutPhase::Idle), "{e:?}");
    }
}
