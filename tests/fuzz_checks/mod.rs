//! The invariants of the fuzz targets in `fuzz/fuzz_targets/`, one function per target, each
//! taking the raw fuzz input and panicking on a violation.
//!
//! This is the only copy: the fuzz targets include this file with `#[path]`, and
//! `tests/fuzz_corpus.rs` replays the committed corpus through the same functions, so a plain
//! `cargo test --all-features` checks exactly what the fuzzer checked.
//!
//! Input formats are kept printable where the target allows it, so that corpus files can be
//! read and written by hand.

// Each fuzz target uses one of the checks; the corpus replay uses all of them.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_sentinel::{
    fuzz_resolve, fuzz_same_origin, retry::parse_retry_after, BreakerConfig, Checkout, ClientPool,
    PoolConfig, Response, RetryPolicy,
};
use ureq::http::Uri;

// ---------------------------------------------------------------------------------------------
// retry_after: the whole input is one `Retry-After` value.

/// 2019-06-03 11:00:00.25 UTC: a fraction of a second, so that the check sees whether the
/// sub-second part of `now` is carried into a date's wait.
const NOW_SECS: u64 = 1_559_559_600;
const NOW_NANOS: u32 = 250_000_000;

/// 10000-01-01 00:00:00 UTC. No accepted date is later: a four-digit year ends at 9999-12-31
/// 23:59:60, and a two-digit year is at most 50 years after `now`.
const END_OF_YEAR_9999: u64 = 253_402_300_800;

fn fixed_now() -> SystemTime {
    UNIX_EPOCH + Duration::new(NOW_SECS, NOW_NANOS)
}

/// `parse_retry_after` never panics; delta-seconds give exactly their number; a date gives
/// `max(date - now, 0)`; `RetryPolicy::retry_after_delay` honours a wait only up to its cap.
pub fn retry_after(data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    let now = fixed_now();
    let parsed = parse_retry_after(&value, now);

    // Clocks far from today must not make the date arithmetic overflow.
    let far = Duration::from_secs(1 << 40);
    let clocks = [UNIX_EPOCH.checked_sub(far), UNIX_EPOCH.checked_add(far)];
    for clock in clocks.into_iter().flatten().chain([UNIX_EPOCH]) {
        let _ = parse_retry_after(&value, clock);
    }

    let trimmed = value.trim_matches([' ', '\t']);
    if let Some(secs) = delta_seconds(trimmed) {
        assert_eq!(
            parsed,
            Some(Duration::from_secs(secs)),
            "delta-seconds {value:?}"
        );
    } else if let Some(wait) = parsed {
        check_date_wait(&value, wait);
    }
    if let Some(imf) = imf_fixdate_secs(trimmed) {
        // The strict RFC 9110 form must be accepted, with the exact wait.
        let now_nanos = i128::from(NOW_SECS) * 1_000_000_000 + i128::from(NOW_NANOS);
        let wait = (i128::from(imf) * 1_000_000_000 - now_nanos).max(0);
        let secs = u64::try_from(wait / 1_000_000_000).expect("a four-digit year fits in u64");
        let expected = Duration::new(secs, (wait % 1_000_000_000) as u32);
        assert_eq!(parsed, Some(expected), "IMF-fixdate {value:?}");
    }

    if let Some(wait) = parsed {
        check_retry_after_cap(&RetryPolicy::new(), wait);
        // A cap taken from the input, so that waits on both sides of it are exercised.
        let cap = Duration::from_secs(data.len() as u64 * 97);
        check_retry_after_cap(&RetryPolicy::new().with_max_retry_after(cap), wait);
    }
}

/// delta-seconds (RFC 9110 §10.2.3): one or more ASCII digits; the value saturates at
/// `u64::MAX` rather than failing, computed here without `str::parse`.
fn delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// What any accepted HTTP-date must satisfy, whatever its form.
fn check_date_wait(value: &str, wait: Duration) {
    // The time of day is the only token with colons, and it has exactly two.
    assert_eq!(
        value.matches(':').count(),
        2,
        "{value:?} was accepted as a date"
    );
    assert!(
        wait <= Duration::from_secs(END_OF_YEAR_9999 - NOW_SECS),
        "{value:?}: wait {wait:?} is past the year 9999"
    );
    // A date names a whole second: `now + wait` lands on one unless the date is already past.
    if !wait.is_zero() {
        let end = Duration::new(NOW_SECS, NOW_NANOS) + wait;
        assert_eq!(end.subsec_nanos(), 0, "{value:?}: now + {wait:?}");
    }
    // `wait` is `max(date - now, 0)` for one fixed date: moving `now` within the same year (so
    // that two-digit years resolve the same way) moves the wait by exactly as much.
    let later = Duration::new(3600 * 24 * 30, 500_000_000);
    assert_eq!(
        parse_retry_after(value, fixed_now() + later),
        Some(wait.saturating_sub(later)),
        "{value:?} parsed 30 days later"
    );
    let earlier = Duration::from_secs(3600 * 24 * 100);
    let parsed_earlier = parse_retry_after(value, fixed_now() - earlier);
    if wait.is_zero() {
        assert!(
            parsed_earlier.is_some_and(|w| w <= earlier),
            "{value:?} parsed 100 days earlier: {parsed_earlier:?}"
        );
    } else {
        assert_eq!(
            parsed_earlier,
            Some(wait + earlier),
            "{value:?} parsed 100 days earlier"
        );
    }
}

fn check_retry_after_cap(policy: &RetryPolicy, wait: Duration) {
    let cap = policy.max_retry_after();
    match policy.retry_after_delay(wait) {
        Ok(delay) => assert!(delay == wait && delay <= cap, "{wait:?} (cap {cap:?})"),
        Err(asked) => assert!(asked == wait && wait > cap, "{wait:?} (cap {cap:?})"),
    }
}

/// Unix seconds of a strict IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), computed
/// independently of the library: fixed positions and a plain day count.
fn imf_fixdate_secs(s: &str) -> Option<i64> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    if b.len() != 29 || !s.is_ascii() || &s[3..5] != ", " || &s[25..] != " GMT" {
        return None;
    }
    let separators = [(7, b' '), (11, b' '), (16, b' '), (19, b':'), (22, b':')];
    if !DAYS.contains(&&s[..3]) || separators.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = &b[range];
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, &d| n * 10 + i64::from(d - b'0')))
    };
    let day = digits(5..7)?;
    let month = MONTHS.iter().position(|m| *m == &s[8..11])? + 1;
    let year = digits(12..16)?;
    let (hour, minute, second) = (digits(17..19)?, digits(20..22)?, digits(23..25)?);
    let leap = |y: i64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = |y: i64, m: usize| match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day == 0 || day > month_days(year, month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let year_days = |y: i64| if leap(y) { 366 } else { 365 };
    let mut days: i64 = if year >= 1970 {
        (1970..year).map(year_days).sum()
    } else {
        -(year..1970).map(year_days).sum::<i64>()
    };
    days += (1..month).map(|m| month_days(year, m)).sum::<i64>() + day - 1;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

// ---------------------------------------------------------------------------------------------
// redirect_location: `base` LF `location`; without a LF the whole input is the location.

const DEFAULT_BASE: &str = "http://a.test:8080/dir/page?x=1";

/// Resolution gives an http(s) URL free of control characters, or an error; relative
/// `Location`s keep the origin; the same-origin relation is reflexive, symmetric, transitive.
pub fn redirect_location(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (base, location) = text.split_once('\n').unwrap_or((DEFAULT_BASE, &text));
    let resolved = fuzz_resolve(base, location);
    if let Ok(url) = &resolved {
        check_resolved(base, location, url);
    }

    let mut urls = vec![base, location];
    if let Ok(url) = &resolved {
        urls.push(url);
    }
    for a in &urls {
        check_origin_reflexive(a);
        for b in &urls {
            assert_eq!(
                fuzz_same_origin(a, b),
                fuzz_same_origin(b, a),
                "same_origin({a:?}, {b:?}) is not symmetric"
            );
            for c in &urls {
                if fuzz_same_origin(a, b) == Some(true) && fuzz_same_origin(b, c) == Some(true) {
                    assert_eq!(
                        fuzz_same_origin(a, c),
                        Some(true),
                        "same_origin is not transitive over {a:?}, {b:?}, {c:?}"
                    );
                }
            }
        }
    }
}

/// The client only ever resolves against an http(s) URL with a host (it validated the first
/// one and follows only http(s) `Location`s), so the scheme guarantee is checked for such
/// bases; any other base must still not panic.
fn is_client_base(base: &str) -> bool {
    base.parse::<Uri>().is_ok_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty())
    })
}

fn check_resolved(base: &str, location: &str, url: &str) {
    let context = format!("{base:?} + {location:?} -> {url:?}");
    assert!(
        !url.bytes().any(|b| b < 0x20 || b == 0x7f || b == b' '),
        "control character or space in {context}"
    );
    assert!(!url.contains('#'), "fragment kept in {context}");
    let uri: Uri = url
        .parse()
        .unwrap_or_else(|e| panic!("{context}: does not parse again: {e}"));
    assert!(
        uri.host().is_some_and(|h| !h.is_empty()),
        "no host in {context}"
    );
    assert_eq!(
        uri.to_string(),
        url,
        "{context} is not stable under re-parsing"
    );
    if !is_client_base(base) {
        return;
    }
    assert!(
        url.starts_with("http://") || url.starts_with("https://"),
        "not http(s): {context}"
    );

    let base_scheme = base
        .parse::<Uri>()
        .ok()
        .and_then(|u| u.scheme_str().map(str::to_owned));
    let t = location.trim_matches([' ', '\t']);
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let scheme = &lower[..lower.find(':').unwrap_or(0)];
        assert_eq!(uri.scheme_str(), Some(scheme), "scheme changed: {context}");
    } else if t.starts_with("//") {
        assert_eq!(
            uri.scheme_str(),
            base_scheme.as_deref(),
            "scheme-relative Location changed the scheme: {context}"
        );
    } else if t.starts_with('/') || t.starts_with('?') || !t.contains(':') {
        // A path or a query can never move a request (and its credentials) to another origin.
        assert_eq!(
            fuzz_same_origin(base, url),
            Some(true),
            "relative Location left the origin: {context}"
        );
    }
}

/// `same_origin(a, a)` holds for every URL with a host; one that parses without a host (a bare
/// path) has no origin, and one that does not parse has no answer.
fn check_origin_reflexive(a: &str) {
    let expected = a.parse::<Uri>().ok().map(|u| u.host().is_some());
    assert_eq!(
        fuzz_same_origin(a, a),
        expected,
        "same_origin({a:?}, itself)"
    );
}

// ---------------------------------------------------------------------------------------------
// header_validation: fields separated by 0xFF (a byte no `&str` contains):
// method 0xFF url (0xFF name 0xFF value)* [0xFF sensitive-header-name].

const FIELD_SEPARATOR: u8 = 0xFF;

thread_local! {
    // A pool per input would dominate the run time; validation sends nothing, so one client
    // per thread serves every input.
    static VALIDATION_CLIENT: Checkout = ClientPool::new(PoolConfig::default())
        .and_then(|pool| pool.checkout())
        .expect("a default pool and a client");
}

/// `validate` never panics; when it accepts a request, nothing that reaches the wire can carry
/// CR, LF or NUL and the URL is http(s); neither the error nor the builder's `Debug` output
/// depends on the value of a credential header, so neither can reveal one.
pub fn header_validation(data: &[u8]) {
    let fields: Vec<String> = data
        .split(|&b| b == FIELD_SEPARATOR)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let method = fields.first().map_or("GET", String::as_str);
    let url = fields.get(1).map_or("http://a.test/", String::as_str);
    let rest = fields.get(2..).unwrap_or_default();
    let headers: Vec<(&str, &str)> = rest
        .chunks_exact(2)
        .map(|pair| (pair[0].as_str(), pair[1].as_str()))
        .collect();
    let sensitive = rest.chunks_exact(2).remainder().first().map(String::as_str);

    // The same request with every credential value changed (ROT13 keeps each byte's class, so
    // validity is unchanged): whatever the library prints must come out the same, or it printed
    // a credential.
    let is_credential = |name: &str| {
        ["authorization", "cookie", "proxy-authorization"]
            .iter()
            .chain(sensitive.as_slice())
            .any(|c| name.eq_ignore_ascii_case(c))
    };
    let rotated: Vec<String> = headers
        .iter()
        .map(|&(name, value)| {
            if is_credential(name) {
                value.chars().map(rot13).collect()
            } else {
                value.to_owned()
            }
        })
        .collect();
    let rotated: Vec<(&str, &str)> = headers
        .iter()
        .zip(&rotated)
        .map(|(&(name, _), value)| (name, value.as_str()))
        .collect();

    let (debug, result) = validate(method, url, &headers, sensitive);
    let (debug_rotated, result_rotated) = validate(method, url, &rotated, sensitive);
    assert_eq!(debug, debug_rotated, "Debug output depends on a credential");
    let shown = result.as_ref().map_err(|e| format!("{e} / {e:?}"));
    let shown_rotated = result_rotated.as_ref().map_err(|e| format!("{e} / {e:?}"));
    assert_eq!(shown, shown_rotated, "the error depends on a credential");
    match result {
        Err(e) => assert!(e.is_invalid_request(), "validate failed with {e:?}"),
        Ok(()) => check_accepted(method, url, &headers, sensitive),
    }
}

fn rot13(c: char) -> char {
    match c {
        'a'..='m' | 'A'..='M' => (c as u8 + 13) as char,
        'n'..='z' | 'N'..='Z' => (c as u8 - 13) as char,
        _ => c,
    }
}

/// Builds the request on this thread's client; returns its `Debug` output and the validation.
fn validate(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    sensitive: Option<&str>,
) -> (String, Result<(), http_sentinel::Error>) {
    VALIDATION_CLIENT.with(|client| {
        let mut builder = client.request(method, url);
        for &(name, value) in headers {
            builder = builder.header(name, value);
        }
        if let Some(name) = sensitive {
            builder = builder.sensitive_header(name);
        }
        (format!("{builder:?}"), builder.validate())
    })
}

/// What an accepted request is made of must be safe to write on the wire.
fn check_accepted(method: &str, url: &str, headers: &[(&str, &str)], sensitive: Option<&str>) {
    let has_crlf_nul = |s: &str| s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
    assert!(
        !method.is_empty() && !method.bytes().any(|b| b <= b' ' || b == 0x7f),
        "accepted method {method:?}"
    );
    assert!(
        !url.bytes().any(|b| b <= b' ' || b == 0x7f),
        "accepted url {url:?}"
    );
    let lower = url.to_ascii_lowercase();
    assert!(
        lower.starts_with("http://") || lower.starts_with("https://"),
        "accepted url {url:?} is not http(s)"
    );
    for &(name, value) in headers {
        assert!(
            !name.is_empty() && !name.bytes().any(|b| b <= b' ' || b == b':' || b >= 0x7f),
            "accepted header name {name:?}"
        );
        // HTAB is the only control character a field value may hold (RFC 9110 §5.5).
        assert!(
            !has_crlf_nul(value) && !value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f),
            "accepted value {value:?} of {name:?}"
        );
    }
    if let Some(name) = sensitive {
        assert!(!has_crlf_nul(name), "accepted sensitive name {name:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// client_exchange: up to four scripted responses, separated by RESPONSE_SEPARATOR; the last
// one keeps any further separators.

/// Printable, so that corpus files stay readable; unlikely inside a real response.
pub const RESPONSE_SEPARATOR: &[u8] = b"\n~~~\n";
const MAX_RESPONSES: usize = 4;
const MAX_ATTEMPTS: u32 = 3;
const MAX_REDIRECTS: u32 = 3;
const SECRET_A: &str = "SECRET-A";
const SECRET_K: &str = "SECRET-K";

/// Splits the input into at most [`MAX_RESPONSES`] scripted responses.
fn split_responses(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() + 1 < MAX_RESPONSES {
        let Some(at) = rest
            .windows(RESPONSE_SEPARATOR.len())
            .position(|w| w == RESPONSE_SEPARATOR)
        else {
            break;
        };
        out.push(rest[..at].to_vec());
        rest = &rest[at + RESPONSE_SEPARATOR.len()..];
    }
    out.push(rest.to_vec());
    out
}

/// A whole call against the scripted peer: it ends, within its attempt and redirect bounds,
/// and no credential is ever written to another origin.
pub fn client_exchange(data: &[u8]) {
    let responses = split_responses(data);
    let scripted = responses.len();
    let config = PoolConfig::builder()
        .max_clients(1)
        .deadline(Duration::from_secs(1))
        .max_redirects(MAX_REDIRECTS)
        .body_limit(64 * 1024)
        .retry(
            RetryPolicy::new()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_base_delay(Duration::ZERO),
        )
        .breaker(BreakerConfig::disabled())
        .build();
    let framing: Vec<Option<Framing>> = responses.iter().map(|r| Framing::of(r)).collect();
    let (pool, written) = ClientPool::scripted(config, responses).expect("a scripted pool");
    let client = pool.checkout().expect("a client");
    let result = client
        .get("http://origin.test/start")
        .header("Authorization", &format!("Bearer {SECRET_A}"))
        .header("X-Api-Key", SECRET_K)
        .sensitive_header("X-Api-Key")
        .send();

    // `attempts` counts every attempt of the call, but the retry limit applies per hop: the
    // engine restarts its count (`at_hop`) after each redirect it follows. So each of the at
    // most `MAX_REDIRECTS + 1` hops makes at most `MAX_ATTEMPTS` attempts, and a call, whether
    // it ends in a response or an error, makes at most MAX_ATTEMPTS × (redirects + 1). A
    // response needs one attempt per hop; an error can come before the new hop's first
    // attempt (deadline), so it only has one per redirect followed. Stale-connection replays
    // are not attempts (`state.attempts -= 1`); they happen at most once per hop.
    // Checked last, so that the wire checks still run on inputs that break it.
    let mut response_url_with_userinfo = None;
    // The first attempt reads the first scripted response: framing the client must refuse
    // is never a success (and such errors are not retried).
    if let (Some(Some(first)), Ok(response)) = (framing.first(), &result) {
        first.assert_acceptable(response);
    }
    let (attempts, redirects) = match result {
        Ok(response) => {
            if has_userinfo(&response.url().to_string()) {
                response_url_with_userinfo = Some(format!("{} {response:?}", response.url()));
            }
            let counts = (response.attempts(), response.redirects());
            assert!(
                counts.0 > counts.1,
                "response after {counts:?} (attempts, redirects)"
            );
            if let Err(e) = response.bytes() {
                assert_eq!((e.attempts(), e.redirects()), counts, "body error {e:?}");
            }
            counts
        }
        Err(e) => {
            assert!(!e.is_invalid_request(), "the request is valid: {e:?}");
            let counts = (e.attempts(), e.redirects());
            assert!(counts.0 >= counts.1, "{e:?} after {counts:?}");
            counts
        }
    };
    assert!(redirects <= MAX_REDIRECTS, "{redirects} redirects followed");
    assert!(
        attempts <= MAX_ATTEMPTS * (redirects + 1),
        "{attempts} attempts over {redirects} redirects"
    );

    let connections = written();
    assert!(
        connections.len() <= scripted,
        "{} connections for {scripted} scripted responses",
        connections.len()
    );
    let requests: Vec<Vec<&str>> = connections.iter().map(|c| split_requests(c)).collect();
    // A response with both Content-Length and Transfer-Encoding never leaves its connection
    // for reuse (RFC 9112 §6.3): nothing more is written on it.
    for (i, conn) in requests.iter().enumerate() {
        if framing
            .get(i)
            .is_some_and(|f| f.as_ref().is_some_and(|f| f.cl_and_te))
        {
            assert!(
                conn.len() <= 1,
                "connection {i} reused after a CL + TE response"
            );
        }
    }
    let total = requests.iter().map(Vec::len).sum::<usize>();
    assert!(
        total <= (attempts + redirects + 1) as usize,
        "{total} requests written for {attempts} attempts and {redirects} redirects"
    );
    check_credentials(&requests);
    // The final URL may come from a `Location`; `Response::url` promises it never holds
    // credentials, so that it can be logged.
    if let Some(shown) = response_url_with_userinfo {
        panic!("the response URL keeps userinfo: {shown}");
    }
}

/// Whether an absolute URL has `user[:password]@` before its host.
fn has_userinfo(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.contains('@')
}

/// The requests written on one connection. Every request of this call is a GET without a body
/// (a redirect from a GET stays a GET), so each ends at its blank line; a trailing partial
/// request is kept.
fn split_requests(written: &[u8]) -> Vec<&str> {
    let text = std::str::from_utf8(written).expect("the client writes UTF-8 request heads");
    let mut out: Vec<&str> = text.split_inclusive("\r\n\r\n").collect();
    out.retain(|r| !r.is_empty());
    out
}

/// The first request carries both credentials (or the check below would prove nothing); every
/// request for another origin carries neither, and once one has been sent elsewhere, every
/// later connection goes without them: they are not restored on a hop back.
fn check_credentials(connections: &[Vec<&str>]) {
    let first = connections.first().and_then(|c| c.first());
    let first = first.expect("the first connection writes the first request");
    assert!(
        first.starts_with("GET /start HTTP/1.1\r\n") && carries_credentials(first),
        "first request: {first:?}"
    );
    let mut left_origin = false;
    for connection in connections {
        // Connections are opened in order, and a connection is only ever reused for its own
        // host; a request appended to an earlier connection is checked by the host rule alone.
        let opened_after_leaving = left_origin;
        for request in connection {
            let mut lines = request.split("\r\n");
            let request_line = lines.next().unwrap_or_default();
            let parts: Vec<&str> = request_line.split(' ').collect();
            assert!(
                parts.len() == 3
                    && parts[0] == "GET"
                    && parts[1].starts_with('/')
                    && parts[2] == "HTTP/1.1",
                "request line {request_line:?}"
            );
            let hosts: Vec<&str> = lines
                .filter_map(|l| l.split_once(':'))
                .filter(|(name, _)| name.eq_ignore_ascii_case("host"))
                .map(|(_, value)| value.trim())
                .collect();
            let [host] = hosts[..] else {
                panic!("not exactly one Host header: {request:?}");
            };
            let foreign = !(host.eq_ignore_ascii_case("origin.test")
                || host.eq_ignore_ascii_case("origin.test:80"));
            left_origin |= foreign;
            if foreign || opened_after_leaving {
                assert!(
                    !carries_credentials_any(request),
                    "credential sent after leaving the origin ({host}): {request:?}"
                );
            }
        }
    }
}

/// The header lines of a request other than its request line and `Host`, which take their
/// text from the (fuzzer-written) `Location` and so may contain anything.
fn credential_bearing_lines(request: &str) -> impl Iterator<Item = &str> {
    request.split("\r\n").skip(1).filter(|line| {
        !line
            .split_once(':')
            .is_some_and(|(name, _)| name.eq_ignore_ascii_case("host"))
    })
}

fn has_header(request: &str, name: &str) -> bool {
    credential_bearing_lines(request).any(|l| {
        l.split_once(':')
            .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
    })
}

fn carries_credentials(request: &str) -> bool {
    let text: Vec<&str> = credential_bearing_lines(request).collect();
    let text = text.join("\n");
    has_header(request, "authorization")
        && has_header(request, "x-api-key")
        && text.contains(SECRET_A)
        && text.contains(SECRET_K)
}

/// Either credential, by name or by value. An `Authorization: Basic` header on a later hop is
/// not one of them: the client builds it from userinfo in a `Location`, which the server wrote.
fn carries_credentials_any(request: &str) -> bool {
    let bearer = credential_bearing_lines(request).any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("authorization")
                && !value
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("basic ")
        })
    });
    bearer
        || has_header(request, "x-api-key")
        || credential_bearing_lines(request).any(|l| l.contains(SECRET_A) || l.contains(SECRET_K))
}

/// The framing facts of a scripted response's leading heads, for inputs simple enough to read
/// without a full parser: CRLF line ends only, printable ASCII, `HTTP/1.1` status lines.
/// (The scripted peer hands a connection's bytes over at once, so a pipelined second response
/// is normally in the buffer already and the connection is closed for that reason; the reuse
/// check below only bites when a response ends exactly at a buffer boundary.)
/// `None` for anything else, where no framing invariant is checked.
#[derive(Debug)]
struct Framing {
    /// Interim (1xx, not 101) heads before the first final one.
    interim: usize,
    /// The final head's `Transfer-Encoding` codings, when it has the header.
    te: Option<Vec<String>>,
    /// Content codings of the final head, `identity` left out.
    content_codings: usize,
    cl_and_te: bool,
}

impl Framing {
    fn of(response: &[u8]) -> Option<Framing> {
        // The body may be binary; only the heads are looked at, and they must be clean.
        let text = String::from_utf8_lossy(response);
        let mut interim = 0;
        let heads: Vec<&str> = text.split("\r\n\r\n").collect();
        for (i, head) in heads.iter().enumerate() {
            // A head the bytes never finish is no head the client can have accepted (the
            // attempt fails, and a replay or retry reads the next scripted response).
            if i + 1 == heads.len() {
                return None;
            }
            let clean = head
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) || b == b'\r' || b == b'\n');
            if !clean || head.replace("\r\n", "").contains(['\r', '\n']) {
                return None;
            }
            let mut lines = head.split("\r\n");
            let status = lines.next()?.strip_prefix("HTTP/1.1 ")?.get(..3)?;
            let status: u16 = status.parse().ok()?;
            if (100..200).contains(&status) && status != 101 {
                interim += 1;
                continue;
            }
            let (mut te, mut cl, mut ce) = (None::<Vec<String>>, false, 0);
            for line in lines {
                let (name, value) = line.split_once(':')?;
                let codings = value
                    .split(',')
                    .map(|c| {
                        c.split(';')
                            .next()
                            .unwrap_or_default()
                            .trim()
                            .to_ascii_lowercase()
                    })
                    .filter(|c| !c.is_empty());
                match name.to_ascii_lowercase().as_str() {
                    "transfer-encoding" => te.get_or_insert_with(Vec::new).extend(codings),
                    "content-length" => cl = true,
                    "content-encoding" => ce += codings.filter(|c| c != "identity").count(),
                    _ => {}
                }
            }
            return Some(Framing {
                interim,
                cl_and_te: cl && te.is_some(),
                te,
                content_codings: ce,
            });
        }
        None
    }

    /// The call got `response` from this framing: it must be one the client accepts.
    fn assert_acceptable(&self, response: &Response) {
        assert!(
            self.interim <= 5,
            "{} interim responses accepted: {response:?}",
            self.interim
        );
        if let Some(te) = &self.te {
            assert!(
                te.last().is_some_and(|c| c == "chunked") && te.len() == 1,
                "transfer-encoding {te:?} accepted: {response:?}"
            );
        }
        assert!(
            self.content_codings <= 1,
            "a chain of {} content codings accepted: {response:?}",
            self.content_codings
        );
    }
}

// ---------------------------------------------------------------------------------------------
// sse_parser: the whole input is an event stream.

/// What a feeding of the stream gave: the events, and whether it ended in a limit error.
fn sse_feed(pieces: &[&[u8]], limit: usize) -> (Vec<http_sentinel::sse::Event>, bool) {
    let mut parser = http_sentinel::sse::Parser::new(limit);
    let mut events = Vec::new();
    for piece in pieces {
        let result = parser.feed(piece);
        while let Some(e) = parser.next_event() {
            events.push(e);
        }
        if result.is_err() {
            return (events, true);
        }
    }
    (events, false)
}

/// An independent, whole-input reading of the standard's rules (no limit): the lines split
/// at CRLF, LF or CR after one leading BOM, the last unterminated line dropped.
fn sse_reference(data: &[u8]) -> Vec<http_sentinel::sse::Event> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\r' || data[i] == b'\n' {
            lines.push(&data[start..i]);
            if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    let (mut out, mut data_buf, mut event, mut id_buf, mut last_id) = (
        Vec::new(),
        None::<String>,
        String::new(),
        String::new(),
        String::new(),
    );
    let mut retry = None;
    for line in lines {
        if line.is_empty() {
            last_id = id_buf.clone();
            if let Some(d) = data_buf.take() {
                out.push(http_sentinel::sse::Event {
                    event: if event.is_empty() {
                        "message".into()
                    } else {
                        event.clone()
                    },
                    data: d,
                    id: last_id.clone(),
                    retry: retry.take(),
                });
            }
            event.clear();
            retry = None;
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(c) => (
                &line[..c],
                line[c + 1..].strip_prefix(b" ").unwrap_or(&line[c + 1..]),
            ),
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value).into_owned();
        match field {
            b"data" => match &mut data_buf {
                Some(d) => {
                    d.push('\n');
                    d.push_str(&value);
                }
                None => data_buf = Some(value),
            },
            b"event" => event = value,
            b"id" if !value.contains('\0') => id_buf = value,
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                retry = Some(Duration::from_millis(value.parse().unwrap_or(u64::MAX)));
            }
            _ => {}
        }
    }
    let _ = last_id;
    out
}

/// The parser never panics; every way of cutting the stream into reads (whole, 1-byte reads,
/// three pieces at points taken from the input) gives the same events and the same limit
/// error; without a limit in reach the events are the reference reading's; no event holds
/// data over the limit, a line end in its type or id, or a NUL in its id.
pub fn sse_parser(data: &[u8]) {
    let limit = 64;
    let whole = sse_feed(&[data], limit);
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(sse_feed(&bytes, limit), whole, "1-byte reads differ");
    let seed = data
        .iter()
        .fold(7usize, |h, &b| h.wrapping_mul(31).wrapping_add(b as usize));
    let (i, j) = if data.is_empty() {
        (0, 0)
    } else {
        (seed % data.len(), (seed / 7) % data.len())
    };
    let (i, j) = (i.min(j), i.max(j));
    let three = [&data[..i], &data[i..j], &data[j..]];
    assert_eq!(
        sse_feed(&three, limit),
        whole,
        "splits at {i} and {j} differ"
    );
    for e in &whole.0 {
        assert!(e.data.len() <= limit, "data over the limit");
        assert!(!e.event.is_empty());
        for s in [&e.event, &e.id] {
            assert!(!s.contains('\r') && !s.contains('\n'));
        }
        assert!(!e.id.contains('\0') && !e.data.contains('\r'));
    }
    let unlimited = sse_feed(&[data], usize::MAX);
    assert!(!unlimited.1);
    assert_eq!(
        unlimited.0,
        sse_reference(data),
        "differs from the reference reading"
    );
    if !whole.1 {
        assert_eq!(whole.0, unlimited.0);
    }
}
