//! The `tracing` spans and events of a call (feature `tracing`); without the feature every
//! function here is empty and compiles away.
//!
//! - `call`, one per call (`otel.name` = the method): `http.request.method`,
//!   `server.address`, `server.port`, `url.scheme`; then `http.response.status_code` or
//!   `error.type` of the outcome, `trace_id`.
//! - `attempt`, one per request sent, child of its call (`otel.kind` = `client`): the same
//!   attributes, `http.request.resend_count` (0 for the first), `network.protocol.version`,
//!   `span_id` (the W3C parent id the server saw, when a propagator is set).
//! - events: `retry` (warn) before a retry's sleep, `breaker` (warn) on a breaker transition.
//!
//! Fields follow the logs' redaction: a method, a host and port, a status, an error class;
//! never a path, a query, a header or a credential.

#[cfg(feature = "tracing")]
use tracing::field::Empty;

use std::time::Duration;

use ureq::http::{Method, Uri};

use crate::breaker::BreakerState;
use crate::telemetry::propagation::TraceIds;

/// The attributes both spans carry.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct Target<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
}

impl Target<'_> {
    #[cfg(feature = "tracing")]
    fn address(&self) -> &str {
        let host = self.uri.host().unwrap_or("");
        host.trim_start_matches('[').trim_end_matches(']')
    }
    #[cfg(feature = "tracing")]
    fn port(&self) -> u16 {
        crate::url::port(self.uri)
    }
}

/// A call's span, entered while the call runs.
pub(crate) struct CallSpan {
    #[cfg(feature = "tracing")]
    span: tracing::span::EnteredSpan,
}

/// An attempt's span; entered while the attempt is sent, closed when it is dropped.
pub(crate) struct AttemptSpan {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

/// Opens and enters the span of a call.
#[inline]
pub(crate) fn call(target: &Target<'_>) -> CallSpan {
    #[cfg(feature = "tracing")]
    {
        let span = tracing::info_span!(
            target: "http_sentinel",
            "call",
            otel.name = target.method.as_str(),
            http.request.method = target.method.as_str(),
            server.address = target.address(),
            server.port = target.port(),
            url.scheme = target.uri.scheme_str().unwrap_or(""),
            http.response.status_code = Empty,
            error.type = Empty,
            trace_id = Empty,
        );
        CallSpan {
            span: span.entered(),
        }
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = target;
        CallSpan {}
    }
}

impl CallSpan {
    /// Records how the call ended: a status, or the error class.
    #[inline]
    pub(crate) fn outcome(&self, outcome: Result<u16, &'static str>) {
        #[cfg(feature = "tracing")]
        record_outcome(&self.span, outcome);
        #[cfg(not(feature = "tracing"))]
        let _ = outcome;
    }

    /// Records the call's W3C trace id.
    #[inline]
    pub(crate) fn trace(&self, ids: Option<&TraceIds>) {
        #[cfg(feature = "tracing")]
        if let Some(ids) = ids {
            if !self.span.is_disabled() {
                self.span.record("trace_id", ids.trace_hex());
            }
        }
        #[cfg(not(feature = "tracing"))]
        let _ = ids;
    }
}

/// Opens the span of one attempt, a child of the current (call) span.
#[inline]
pub(crate) fn attempt(target: &Target<'_>, resend_count: u32) -> AttemptSpan {
    #[cfg(feature = "tracing")]
    {
        let span = tracing::info_span!(
            target: "http_sentinel",
            "attempt",
            otel.name = target.method.as_str(),
            otel.kind = "client",
            http.request.method = target.method.as_str(),
            server.address = target.address(),
            server.port = target.port(),
            url.scheme = target.uri.scheme_str().unwrap_or(""),
            http.request.resend_count = resend_count,
            network.protocol.version = "1.1",
            http.response.status_code = Empty,
            error.type = Empty,
            span_id = Empty,
        );
        AttemptSpan { span }
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (target, resend_count);
        AttemptSpan {}
    }
}

impl AttemptSpan {
    /// Runs `f` (the send) inside the span.
    #[inline]
    pub(crate) fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        #[cfg(feature = "tracing")]
        {
            self.span.in_scope(f)
        }
        #[cfg(not(feature = "tracing"))]
        f()
    }

    /// Records the W3C span id the attempt was sent with.
    #[inline]
    pub(crate) fn ids(&self, ids: Option<&TraceIds>) {
        #[cfg(feature = "tracing")]
        if let Some(ids) = ids {
            if !self.span.is_disabled() {
                self.span.record("span_id", ids.span_hex());
            }
        }
        #[cfg(not(feature = "tracing"))]
        let _ = ids;
    }

    /// Records the attempt's outcome, as [`CallSpan::outcome`] does.
    #[inline]
    pub(crate) fn outcome(&self, outcome: Result<u16, &'static str>) {
        #[cfg(feature = "tracing")]
        record_outcome(&self.span, outcome);
        #[cfg(not(feature = "tracing"))]
        let _ = outcome;
    }
}

/// A status (and `error.type` for 4xx/5xx) or an error class, on a call or attempt span.
#[cfg(feature = "tracing")]
fn record_outcome(span: &tracing::Span, outcome: Result<u16, &'static str>) {
    match outcome {
        Ok(status) => {
            span.record("http.response.status_code", status);
            if status >= 400 {
                span.record("error.type", status);
            }
        }
        Err(class) => {
            span.record("error.type", class);
        }
    }
}

/// A retry about to sleep: an event in the call's span.
#[inline]
pub(crate) fn retry(host: &str, attempt: u32, delay: Duration, reason: &dyn std::fmt::Display) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "http_sentinel",
        host,
        attempt,
        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        reason = %reason,
        "retry"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (host, attempt, delay, reason);
}

/// A breaker transition: an event in the call's span.
#[inline]
pub(crate) fn breaker(host: &str, from: BreakerState, to: BreakerState) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "http_sentinel",
        host,
        from = ?from,
        to = ?to,
        "breaker"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (host, from, to);
}
