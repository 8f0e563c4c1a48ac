//! `Call`: a validated request, what every attempt of one call is sent from, and the rules
//! for when it may be sent again.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use ureq::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, PROXY_AUTHORIZATION,
};
use ureq::http::{HeaderMap, HeaderName, Method, Uri};

use crate::download::BodySettings;
use crate::error::{Error, ErrorKind};
use crate::redirect::Hop;
use crate::retry::{is_idempotent, RetryPolicy};
use crate::shared::HostKey;
use crate::url::host_key;

/// The request body of a call.
pub(crate) enum Body {
    None,
    /// Held as bytes, so it can be re-sent on a retry or a 307/308 redirect.
    Bytes(Arc<[u8]>),
    /// Sent once, never replayed.
    Stream(Option<Box<dyn Read + Send + 'static>>),
}

/// A validated request: what every attempt of the call is built from.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    /// `host:port` of `uri`: the name of the host in breakers, budgets, metrics and errors.
    pub(crate) host: HostKey,
    pub(crate) headers: HeaderMap,
    /// Headers the caller marked as credentials, dropped cross-origin like `Authorization`.
    pub(crate) sensitive: Vec<HeaderName>,
    /// Query parameters the caller marked as secret: sent for real, shown as `***`.
    pub(crate) sensitive_query: Vec<String>,
    pub(crate) body: Body,
    pub(crate) timeout: Duration,
    /// Whether `timeout` was set for this call rather than taken from the pool.
    pub(crate) custom_timeout: bool,
    pub(crate) policy: Option<RetryPolicy>,
    /// The response body's limit and idle timeout, when the request set them.
    pub(crate) download: BodySettings,
    /// The most redirects to follow, when the request set it (0: none, the 3xx is returned).
    pub(crate) max_redirects: Option<u32>,
}

impl Call {
    fn has_idempotency_key(&self) -> bool {
        self.headers.contains_key("idempotency-key")
    }

    /// Whether the body can be sent again: a streamed body is consumed by its first attempt.
    pub(crate) fn can_resend(&self) -> bool {
        !matches!(self.body, Body::Stream(_))
    }

    /// Whether the policy allows sending this request again after a failed attempt.
    pub(crate) fn retryable(&self, policy: &RetryPolicy) -> bool {
        self.can_resend() && policy.is_replayable(self.method.as_str(), self.has_idempotency_key())
    }

    /// Whether the request may be replayed for free after it died on a stale pooled
    /// connection: idempotent by its method or an `Idempotency-Key`, whatever the policy says,
    /// and with a body that can be sent again.
    pub(crate) fn replayable(&self) -> bool {
        let idempotent = is_idempotent(self.method.as_str()) || self.has_idempotency_key();
        idempotent && self.can_resend()
    }

    /// A copy of the call for a hedge, sent on another client: `None` when the request may
    /// not be replayed (a POST without an `Idempotency-Key`, a streamed body). The copy has
    /// no retry policy of its own: a hedge is one attempt.
    pub(crate) fn hedge_copy(&self) -> Option<Call> {
        let body = match &self.body {
            Body::None => Body::None,
            Body::Bytes(b) => Body::Bytes(b.clone()),
            Body::Stream(_) => return None,
        };
        self.replayable().then(|| Call {
            method: self.method.clone(),
            uri: self.uri.clone(),
            host: self.host.clone(),
            headers: self.headers.clone(),
            sensitive: self.sensitive.clone(),
            sensitive_query: self.sensitive_query.clone(),
            body,
            timeout: self.timeout,
            custom_timeout: self.custom_timeout,
            policy: None,
            download: self.download,
            max_redirects: self.max_redirects,
        })
    }

    /// Turns the call into the request of the next redirect hop.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::RedirectRefused`] when a 307/308 would need a streamed body again.
    pub(crate) fn follow(&mut self, hop: Hop) -> Result<(), Error> {
        if hop.keep_body && matches!(self.body, Body::Stream(_)) {
            return Err(Error::new(ErrorKind::RedirectRefused(
                "a streamed body cannot be re-sent to the redirect target".into(),
            )));
        }
        if !hop.keep_body {
            self.body = Body::None;
            self.headers.remove(CONTENT_TYPE);
            self.headers.remove(CONTENT_LENGTH);
        }
        if hop.cross_origin {
            // Removed for the rest of the chain: a later hop back to the first origin does not
            // get them back.
            for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION]
                .iter()
                .chain(&self.sensitive)
            {
                self.headers.remove(name);
            }
        }
        self.host = host_key(&hop.uri).into();
        self.method = hop.method;
        self.uri = hop.uri;
        Ok(())
    }
}
