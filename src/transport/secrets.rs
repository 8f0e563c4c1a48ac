//! Secrets kept out of ureq: the engine hands ureq each request with every secret replaced by
//! a placeholder, and this vault, shared by a client's transports, holds what each placeholder
//! stands for. ureq-proto hex-dumps every request and response head it writes or parses at
//! `trace`, and ureq prints a request's full path and query and a response's `Location` at
//! `trace`: a secret that never passes through ureq cannot reach those records, whatever a
//! later ureq version decides to log.
//!
//! - Request: `Authorization`, `Cookie`, `Proxy-Authorization`, every header value marked
//!   sensitive (`sensitive_header`, URL credentials turned into Basic), and the values of
//!   sensitive query parameters become placeholder tokens; the transport (`heads.rs`) puts the
//!   real bytes back into the request head just before it reaches the socket.
//! - Response: the transport blanks `Set-Cookie` values and the userinfo and sensitive query
//!   values of `Location` in the response head before ureq parses it, and records the real
//!   values here; the engine puts them back into the headers it returns.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ureq::http::header::{Entry, LOCATION, SET_COOKIE};
use ureq::http::uri::PathAndQuery;
use ureq::http::{HeaderMap, HeaderValue, Uri};

use crate::url::sensitive_query_values;

/// Placeholder tokens start with this, then 32 hex digits: letters and digits only, so a
/// token is a valid header value, cookie value and query value as it is.
const TOKEN_PREFIX: &str = "sentinelph";

/// One client's vault of placeholders and of the response values taken out of ureq's sight.
#[derive(Debug)]
pub(crate) struct Secrets {
    /// Per-client keys: SipHash under std's random keys, so a token cannot be guessed (and so
    /// cannot be planted in a request by whoever controls part of it, to have a secret
    /// substituted where it does not belong).
    seed: RandomState,
    tokens: AtomicU64,
    /// Bumped by each attempt: a transport that sees it change knows a new exchange starts.
    exchange: AtomicU64,
    /// The running exchange has placeholders or sensitive query names: the only flag a request
    /// without secrets reads.
    armed: AtomicBool,
    /// A response head of the running exchange had values taken out.
    received: AtomicBool,
    state: Mutex<State>,
}

/// A placeholder token and the real bytes it stands for.
type Swap = (Box<[u8]>, Box<[u8]>);

#[derive(Debug, Default)]
struct State {
    /// Placeholder -> real bytes, for the running exchange.
    swaps: Vec<Swap>,
    /// Query parameter names whose values are secret, for the running exchange.
    query_names: Vec<String>,
    received: Received,
}

/// Real values taken out of the final response head of an exchange, in the order they came.
#[derive(Debug, Default)]
pub(crate) struct Received {
    pub(crate) set_cookie: Vec<Vec<u8>>,
    pub(crate) location: Option<Vec<u8>>,
}

impl Secrets {
    pub(crate) fn new() -> Secrets {
        Secrets {
            seed: RandomState::new(),
            tokens: AtomicU64::new(0),
            exchange: AtomicU64::new(0),
            armed: AtomicBool::new(false),
            received: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a plain map: a panic elsewhere leaves nothing half-updated in it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh placeholder token, unique within this client.
    fn token(&self) -> String {
        let n = self.tokens.fetch_add(1, Ordering::Relaxed);
        let half = |domain: u64| {
            let mut h = self.seed.build_hasher();
            h.write_u64(domain);
            h.write_u64(n);
            h.finish()
        };
        format!("{TOKEN_PREFIX}{:016x}{:016x}", half(1), half(2))
    }

    /// Starts the next exchange (one attempt) for a request to `uri` with `headers`. Returns
    /// the URI and headers to hand ureq when anything had to be hidden (every sensitive header
    /// value, and the values of the query parameters named in `query_names`, replaced by
    /// placeholders), or `None` when the request carries no secret: then the cost is one scan
    /// of the header values' sensitive flags.
    pub(crate) fn begin(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        query_names: &[String],
    ) -> Option<(Uri, HeaderMap)> {
        self.exchange.fetch_add(1, Ordering::Relaxed);
        let secret_header = headers.values().any(HeaderValue::is_sensitive);
        if !secret_header && query_names.is_empty() {
            if self.armed.load(Ordering::Relaxed) || self.received.load(Ordering::Relaxed) {
                self.armed.store(false, Ordering::Relaxed);
                self.received.store(false, Ordering::Relaxed);
                *self.state() = State::default();
            }
            return None;
        }
        let mut state = State {
            query_names: query_names.to_vec(),
            ..State::default()
        };
        let mut disguised = headers.clone();
        for value in disguised.values_mut().filter(|v| v.is_sensitive()) {
            let token = self.token();
            state
                .swaps
                .push((token.as_bytes().into(), value.as_bytes().into()));
            // A token is letters and digits: always a valid header value.
            if let Ok(t) = HeaderValue::from_str(&token) {
                *value = t;
            }
        }
        let uri = self.disguise_query(uri, query_names, &mut state);
        self.received.store(false, Ordering::Relaxed);
        *self.state() = state;
        self.armed.store(true, Ordering::Relaxed);
        Some((uri, disguised))
    }

    /// `uri` with the values of the named query parameters replaced by placeholders.
    fn disguise_query(&self, uri: &Uri, names: &[String], state: &mut State) -> Uri {
        let Some(query) = uri.query() else {
            return uri.clone();
        };
        let ranges = sensitive_query_values(query, names);
        if ranges.is_empty() {
            return uri.clone();
        }
        let mut out = String::with_capacity(query.len() + ranges.len() * 42);
        let mut at = 0;
        for r in ranges {
            let token = self.token();
            state
                .swaps
                .push((token.as_bytes().into(), query[r.clone()].as_bytes().into()));
            out.push_str(&query[at..r.start]);
            out.push_str(&token);
            at = r.end;
        }
        out.push_str(&query[at..]);
        let path_and_query = format!("{}?{out}", uri.path());
        let mut parts = uri.clone().into_parts();
        // Tokens are letters and digits: the query stays valid.
        match PathAndQuery::try_from(path_and_query) {
            Ok(pq) => parts.path_and_query = Some(pq),
            Err(_) => return uri.clone(),
        }
        Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
    }

    /// The number of the running exchange.
    pub(super) fn exchange(&self) -> u64 {
        self.exchange.load(Ordering::Relaxed)
    }

    /// Whether the running exchange has placeholders to reveal or query names to hide.
    pub(super) fn armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }

    /// `head` with every placeholder of the running exchange replaced by its real bytes.
    pub(super) fn reveal(&self, head: &[u8]) -> Vec<u8> {
        let state = self.state();
        let mut out = head.to_vec();
        for (token, real) in &state.swaps {
            out = replace_all(&out, token, real);
        }
        out
    }

    /// The query names of the running exchange whose values a `Location` must not show.
    pub(super) fn query_names(&self) -> Vec<String> {
        if !self.armed() {
            return Vec::new();
        }
        self.state().query_names.clone()
    }

    /// Keeps the real values a transport took out of the exchange's final response head.
    pub(super) fn keep_received(&self, received: Received) {
        self.state().received = received;
        self.received.store(true, Ordering::Relaxed);
    }

    /// Puts the real values taken out of the response head back into `headers`, marked
    /// sensitive. Costs one flag read when nothing was taken out.
    pub(crate) fn restore(&self, headers: &mut HeaderMap) {
        if !self.received.swap(false, Ordering::Relaxed) {
            return;
        }
        let received = std::mem::take(&mut self.state().received);
        let real = |bytes: &[u8]| {
            let mut v = HeaderValue::from_bytes(bytes).ok()?;
            v.set_sensitive(true);
            Some(v)
        };
        if let Entry::Occupied(mut e) = headers.entry(SET_COOKIE) {
            for (value, bytes) in e.iter_mut().zip(&received.set_cookie) {
                if let Some(v) = real(bytes) {
                    *value = v;
                }
            }
        }
        if let (Some(bytes), Some(value)) = (&received.location, headers.get_mut(LOCATION)) {
            if let Some(v) = real(bytes) {
                *value = v;
            }
        }
    }
}

/// `haystack` with every `needle` replaced by `with`.
fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len() + with.len());
    let mut rest = haystack;
    while let Some(i) = find(rest, needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The first position of `needle` in `haystack`.
pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_values_become_tokens_that_reveal_to_the_real_bytes() {
        let s = Secrets::new();
        let uri: Uri = "http://h.test/p?a=1&api_key=s%20ecret&b=2".parse().unwrap();
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_static("Bearer tok");
        auth.set_sensitive(true);
        headers.insert("authorization", auth);
        headers.insert("accept", HeaderValue::from_static("*/*"));
        let (u, h) = s.begin(&uri, &headers, &["api_key".into()]).unwrap();
        let shown = format!("{u} {h:?} {:?}", h.get("authorization"));
        assert!(
            !shown.contains("tok") && !shown.contains("ecret"),
            "{shown}"
        );
        assert_eq!(h.get("accept").unwrap(), "*/*");
        let head = format!(
            "GET {} HTTP/1.1\r\nauthorization: {}\r\n\r\n",
            u.path_and_query().unwrap(),
            h.get("authorization").unwrap().to_str().unwrap()
        );
        let real = String::from_utf8(s.reveal(head.as_bytes())).unwrap();
        assert_eq!(
            real,
            "GET /p?a=1&api_key=s%20ecret&b=2 HTTP/1.1\r\nauthorization: Bearer tok\r\n\r\n"
        );
        // Tokens are unique per use, even for equal values.
        let (u2, _) = s.begin(&uri, &headers, &["api_key".into()]).unwrap();
        assert_ne!(u, u2);
    }

    #[test]
    fn a_request_without_secrets_is_handed_over_as_it_is_and_disarms() {
        let s = Secrets::new();
        let uri: Uri = "http://h.test/?q=1".parse().unwrap();
        let mut headers = HeaderMap::new();
        let mut cookie = HeaderValue::from_static("c=1");
        cookie.set_sensitive(true);
        headers.insert("cookie", cookie);
        assert!(s.begin(&uri, &headers, &[]).is_some());
        assert!(s.armed());
        let before = s.exchange();
        assert!(s.begin(&uri, &HeaderMap::new(), &[]).is_none());
        assert!(!s.armed());
        assert_eq!(s.exchange(), before + 1);
        assert_eq!(s.reveal(b"x"), b"x");
    }

    #[test]
    fn received_values_are_restored_in_order() {
        let s = Secrets::new();
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, HeaderValue::from_static("***"));
        headers.append(SET_COOKIE, HeaderValue::from_static("*****"));
        headers.insert(LOCATION, HeaderValue::from_static("http://***@h/"));
        s.keep_received(Received {
            set_cookie: vec![b"a=1".to_vec(), b"b=22".to_vec()],
            location: Some(b"http://u:p@h/".to_vec()),
        });
        s.restore(&mut headers);
        let cookies: Vec<_> = headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=22"]);
        assert!(cookies.iter().all(|v| v.is_sensitive()));
        assert_eq!(headers.get(LOCATION).unwrap(), "http://u:p@h/");
        // Once only.
        headers.insert(LOCATION, HeaderValue::from_static("x"));
        s.restore(&mut headers);
        assert_eq!(headers.get(LOCATION).unwrap(), "x");
    }
}
