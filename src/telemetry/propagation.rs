//! Trace propagation without pinning an OpenTelemetry version: the [`Propagator`] hook, called
//! once per attempt with the request's headers, and [`W3cPropagator`], which writes W3C
//! `traceparent` / `tracestate` itself.
//!
//! The `tracing` crate alone has no W3C context: its span ids are process-local numbers and it
//! knows no trace id. So the engine carries one itself: each call gets a trace id (the parent's
//! when one was entered with [`TraceParent::enter`], a fresh random one otherwise) and each
//! attempt a fresh span id; with the `tracing` feature both are recorded on the call and
//! attempt spans (`trace_id`, `span_id`), so what the server logs can be matched to them.
//!
//! Running OpenTelemetry with `tracing-opentelemetry`? Forward its context instead: the hook
//! runs inside the attempt's span, so `Span::current()` is that span.
//!
//! ```ignore
//! use opentelemetry::propagation::Injector;
//! use tracing_opentelemetry::OpenTelemetrySpanExt;
//!
//! struct Otel;
//! struct Headers<'a>(&'a mut http_sentinel::http::HeaderMap);
//! impl Injector for Headers<'_> {
//!     fn set(&mut self, key: &str, value: String) {
//!         if let (Ok(k), Ok(v)) = (key.parse::<http::HeaderName>(), value.parse()) { self.0.insert(k, v); }
//!     }
//! }
//! impl http_sentinel::telemetry::Propagator for Otel {
//!     fn inject(&self, _: &http_sentinel::telemetry::PropagationContext<'_>, headers: &mut http::HeaderMap) {
//!         let cx = tracing::Span::current().context();
//!         opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut Headers(headers)));
//!     }
//! }
//! // PoolConfig::builder().propagator(Arc::new(Otel))
//! ```

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::SystemTime;

use crate::error::Error;
use ureq::http::{HeaderMap, HeaderName, HeaderValue, Method};

/// Called once per attempt, just before it is sent, with the request's headers: insert
/// `traceparent`, `tracestate`, `baggage`, or whatever the tracer in use propagates.
///
/// The headers are the attempt's own copy: what a hook inserts is sent with this attempt only,
/// and the next attempt starts again from the request as built. A hook must not insert a
/// secret it would not want logged: injected headers are not marked sensitive.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use http_sentinel::http::{HeaderMap, HeaderValue};
/// use http_sentinel::telemetry::{PropagationContext, Propagator};
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// struct RequestId;
///
/// impl Propagator for RequestId {
///     fn inject(&self, cx: &PropagationContext<'_>, headers: &mut HeaderMap) {
///         let id = format!("{}-{}", cx.trace_id(), cx.resend_count());
///         if let Ok(v) = HeaderValue::from_str(&id) {
///             headers.insert("x-request-id", v);
///         }
///     }
/// }
///
/// let pool = ClientPool::new(PoolConfig::builder().propagator(Arc::new(RequestId)).build())?;
/// # drop(pool);
/// # Ok::<(), http_sentinel::Error>(())
/// ```
pub trait Propagator: Send + Sync + 'static {
    /// Adds the propagation headers of one attempt to `headers`.
    fn inject(&self, context: &PropagationContext<'_>, headers: &mut HeaderMap);
}

/// What a [`Propagator`] knows of the attempt it is called for.
#[derive(Debug)]
pub struct PropagationContext<'a> {
    pub(crate) method: &'a Method,
    pub(crate) host: &'a str,
    pub(crate) resend_count: u32,
    pub(crate) ids: &'a TraceIds,
}

impl PropagationContext<'_> {
    /// The request's method.
    pub fn method(&self) -> &Method {
        self.method
    }
    /// The host (`host:port`).
    pub fn host(&self) -> &str {
        self.host
    }
    /// How many times the request was sent before this attempt in the whole call (retries and
    /// redirects; OpenTelemetry's `http.request.resend_count`): 0 on the first attempt.
    pub fn resend_count(&self) -> u32 {
        self.resend_count
    }
    /// The call's W3C trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.ids.trace_id)
    }
    /// This attempt's W3C span id (the `parent-id` a server sees), 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.ids.span_id)
    }
    /// The `traceparent` value of this attempt: `00-{trace id}-{span id}-{flags}`.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id(),
            self.span_id(),
            self.ids.flags
        )
    }
    /// The entered parent's `tracestate`, forwarded as received.
    pub fn tracestate(&self) -> Option<&HeaderValue> {
        self.ids.state.as_ref()
    }
}

/// The built-in propagator: W3C `traceparent` (and the parent's `tracestate`, when one was
/// entered) on every attempt, each attempt with its own span id under the call's trace id.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use http_sentinel::telemetry::{TraceParent, W3cPropagator};
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::builder().propagator(Arc::new(W3cPropagator)).build())?;
/// // Calls made while a parent is entered continue its trace (an incoming request's header):
/// let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
/// let _guard = parent.enter();
/// # drop(pool);
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct W3cPropagator;

impl Propagator for W3cPropagator {
    fn inject(&self, cx: &PropagationContext<'_>, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&cx.traceparent()) {
            headers.insert(HeaderName::from_static("traceparent"), v);
        }
        if let Some(state) = cx.tracestate() {
            headers.insert(HeaderName::from_static("tracestate"), state.clone());
        }
    }
}

/// A W3C trace context to continue: an incoming request's `traceparent` (and `tracestate`).
#[derive(Clone, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
    state: Option<HeaderValue>,
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceParent")
            .field("trace_id", &hex(&self.trace_id))
            .field("parent_id", &hex(&self.parent_id))
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

thread_local! {
    static ENTERED: RefCell<Vec<TraceParent>> = const { RefCell::new(Vec::new()) };
}

impl TraceParent {
    /// Parses a `traceparent` value (version `00`, or a later version's first four fields).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) for a value that is not
    /// a W3C trace context, or whose trace or parent id is all zeros.
    pub fn parse(value: &str) -> Result<TraceParent, Error> {
        let bad = || Error::invalid("traceparent: not a W3C trace context");
        let parts: Vec<&str> = value.trim().split('-').collect();
        let (&[version, trace, parent, flags], rest) = parts.split_at_checked(4).ok_or_else(bad)?
        else {
            return Err(bad());
        };
        if version.len() != 2 || version == "ff" || (version == "00" && !rest.is_empty()) {
            return Err(bad());
        }
        let (Some(trace_id), Some(parent_id), Some([flags])) =
            (unhex::<16>(trace), unhex::<8>(parent), unhex::<1>(flags))
        else {
            return Err(bad());
        };
        if trace_id == [0; 16] || parent_id == [0; 8] || unhex::<1>(version).is_none() {
            return Err(bad());
        }
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags,
            state: None,
        })
    }

    /// The same context with the `tracestate` that came with it, forwarded as it is.
    pub fn with_tracestate(mut self, state: HeaderValue) -> TraceParent {
        self.state = Some(state);
        self
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// Makes this the parent of the calls this thread makes until the guard is dropped.
    pub fn enter(self) -> EnteredParent {
        ENTERED.with(|e| e.borrow_mut().push(self));
        EnteredParent {
            _not_send: std::marker::PhantomData,
        }
    }

    /// The parent entered last on this thread, if any.
    pub fn current() -> Option<TraceParent> {
        ENTERED.with(|e| e.borrow().last().cloned())
    }
}

/// Keeps a [`TraceParent`] entered; leaves it when dropped.
#[must_use = "the parent is left as soon as the guard is dropped"]
#[derive(Debug)]
pub struct EnteredParent {
    // Entered on one thread, left on the same one.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for EnteredParent {
    fn drop(&mut self) {
        ENTERED.with(|e| e.borrow_mut().pop());
    }
}

/// The W3C ids of one attempt: the call's trace and the attempt's own span.
#[derive(Debug, Clone)]
pub(crate) struct TraceIds {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) flags: u8,
    pub(crate) state: Option<HeaderValue>,
}

impl TraceIds {
    /// The ids of a new call: the entered parent's trace, or a new sampled one.
    pub(crate) fn for_call() -> TraceIds {
        match TraceParent::current() {
            Some(p) => TraceIds {
                trace_id: p.trace_id,
                span_id: p.parent_id,
                flags: p.flags,
                state: p.state,
            },
            None => {
                let (a, b) = (random_u64(), random_u64());
                let mut trace_id = [0; 16];
                trace_id[..8].copy_from_slice(&a.to_be_bytes());
                trace_id[8..].copy_from_slice(&b.to_be_bytes());
                TraceIds {
                    trace_id,
                    span_id: [0; 8],
                    flags: 1,
                    state: None,
                }
            }
        }
    }

    /// A new span id for the next attempt.
    pub(crate) fn next_attempt(&mut self) {
        self.span_id = random_u64().max(1).to_be_bytes();
    }

    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn trace_hex(&self) -> String {
        hex(&self.trace_id)
    }

    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn span_hex(&self) -> String {
        hex(&self.span_id)
    }
}

/// 64 random bits, from std's per-process random hash keys and a per-thread counter: unique
/// enough for trace ids (they are not secrets).
fn random_u64() -> u64 {
    thread_local! {
        static STATE: (RandomState, std::cell::Cell<u64>) =
            (RandomState::new(), std::cell::Cell::new(0));
    }
    STATE.with(|(keys, n)| {
        n.set(n.get().wrapping_add(1));
        let mut h = keys.build_hasher();
        h.write_u64(n.get());
        if let Ok(d) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
            h.write_u128(d.as_nanos());
        }
        h.finish().max(1)
    })
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() != N * 2 || !bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0; N];
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parses_per_w3c_and_refuses_the_rest() {
        let p =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(p.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceParent::parse(bad).is_err(), "{bad:?}");
        }
        // A later version may add fields after the four known ones.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").is_ok()
        );
    }

    #[test]
    fn a_call_continues_the_entered_parent_and_each_attempt_gets_its_own_span() {
        let fresh = TraceIds::for_call();
        assert_ne!(fresh.trace_id, [0; 16]);
        let p = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .unwrap()
            .with_tracestate(HeaderValue::from_static("k=v"));
        let mut ids = {
            let _g = p.enter();
            TraceIds::for_call()
        };
        assert!(
            TraceParent::current().is_none(),
            "left when the guard drops"
        );
        assert_eq!(ids.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        ids.next_attempt();
        let first = ids.span_hex();
        ids.next_attempt();
        assert_ne!(first, ids.span_hex());
        let mut headers = HeaderMap::new();
        let cx = PropagationContext {
            method: &Method::GET,
            host: "h:80",
            resend_count: 1,
            ids: &ids,
        };
        W3cPropagator.inject(&cx, &mut headers);
        let tp = headers["traceparent"].to_str().unwrap();
        assert_eq!(
            tp,
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", ids.span_hex())
        );
        assert_eq!(headers["tracestate"], "k=v");
    }
}
