//! Redirects, followed by the library rather than by ureq: ureq forwards custom headers and
//! `Proxy-Authorization` cross-origin, compares hosts without ports, and follows https -> http.
//!
//! Rules here: a hop limit; credentials never sent to another origin (scheme, host and port)
//! and not restored later in the chain; https -> http refused unless allowed; 301/302/303 turn
//! into GET without a body (HEAD stays HEAD); 307/308 re-send method and body; only http(s)
//! `Location`s are followed, relative ones resolved against the current URL.

use ureq::http::{Method, StatusCode, Uri};

use crate::error::{Error, ErrorKind};
use crate::url::same_origin;

/// What the engine does after a 3xx response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    /// Where to go next.
    pub(crate) uri: Uri,
    /// The method of the next request.
    pub(crate) method: Method,
    /// Whether the request body is re-sent (307/308).
    pub(crate) keep_body: bool,
    /// The new origin differs from the current one: credentials must be dropped.
    pub(crate) cross_origin: bool,
}

/// One redirect a call followed, from [`Response::redirect_history`](crate::Response::redirect_history):
/// the URL that answered with a redirect, and its status.
///
/// The URL is shown as [`Response::url`](crate::Response::url) shows one: never with a
/// password (userinfo travels as an `Authorization` header, and one in a `Location` is
/// dropped), the values of the request's
/// [`sensitive_query`](crate::RequestBuilder::sensitive_query) parameters as `***`.
///
/// # Examples
///
/// ```no_run
/// use http_sentinel::{ClientPool, PoolConfig};
///
/// let pool = ClientPool::new(PoolConfig::default())?;
/// let response = pool.checkout()?.get("http://127.0.0.1:8080/old").send()?;
/// for hop in response.redirect_history() {
///     println!("{} {}", hop.status().as_u16(), hop.url());
/// }
/// println!("answered by {}", response.url());
/// # Ok::<(), http_sentinel::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectHop {
    pub(crate) status: StatusCode,
    pub(crate) url: Uri,
}

impl RedirectHop {
    /// The redirect's status (301, 302, 303, 307 or 308).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The URL that answered with the redirect, redacted as [`Response::url`](crate::Response::url) is.
    pub fn url(&self) -> &Uri {
        &self.url
    }
}

/// Decides the next hop for a redirect `status` with the response's `Location` values, or
/// `None` when the status is not a followable redirect (304, 300, a 3xx without `Location` is
/// returned to the caller).
///
/// # Errors
///
/// `RedirectRefused` for a non-http(s) target, an https -> http downgrade when not allowed,
/// an unparsable `Location`, or more than one `Location`.
pub(crate) fn next_hop(
    status: StatusCode,
    locations: &[&str],
    current: &Uri,
    method: &Method,
    allow_downgrade: bool,
) -> Result<Option<Hop>, Error> {
    let keep_method = match status.as_u16() {
        301..=303 => false,
        307 | 308 => true,
        _ => return Ok(None),
    };
    let location = match locations {
        [] => return Ok(None),
        [one] => *one,
        // RFC 9110 §10.2.2 defines `Location` as a single URI, so two of them are a broken or
        // tampered response (a proxy or an injected header adding one). Clients disagree on
        // which to follow (ureq-proto takes the last, Go's `Header.Get` the first, curl the
        // last it parsed), so following either would make the target depend on the client:
        // refuse, even when the values are identical, rather than guess.
        _ => return Err(refused("more than one Location header")),
    };
    let uri = resolve(current, location)?;
    if current.scheme_str() == Some("https") && uri.scheme_str() == Some("http") && !allow_downgrade
    {
        return Err(Error::new(ErrorKind::RedirectRefused(
            "https to http downgrade".into(),
        )));
    }
    let method = if keep_method || *method == Method::HEAD {
        method.clone()
    } else {
        Method::GET
    };
    Ok(Some(Hop {
        cross_origin: !same_origin(current, &uri),
        keep_body: keep_method,
        method,
        uri,
    }))
}

fn refused(why: &str) -> Error {
    Error::new(ErrorKind::RedirectRefused(why.into()))
}

/// Resolves a `Location` value against the current URL (RFC 3986 §5.2, without dot-segment
/// removal beyond what servers send in practice: `..` is left to the server).
pub(crate) fn resolve(base: &Uri, location: &str) -> Result<Uri, Error> {
    let location = location.trim_matches(|c| c == ' ' || c == '\t');
    if location.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(refused("control character in Location"));
    }
    let lower = location.get(..8).unwrap_or(location).to_ascii_lowercase();
    let absolute = if lower.starts_with("http://") || lower.starts_with("https://") {
        location.to_owned()
    } else if location.starts_with("//") {
        format!("{}:{location}", base.scheme_str().unwrap_or("http"))
    } else if has_scheme(location) {
        return Err(refused("Location is not http(s)"));
    } else {
        let scheme = base.scheme_str().unwrap_or("http");
        let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
        let path = if location.starts_with('/') {
            location.to_owned()
        } else if let Some(q) = location.strip_prefix('?') {
            format!("{}?{q}", base.path())
        } else {
            let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
            format!("{dir}/{location}")
        };
        format!("{scheme}://{authority}{path}")
    };
    // A fragment is never sent to the server.
    let absolute = absolute.split('#').next().unwrap_or_default();
    let uri: Uri = absolute
        .parse()
        .map_err(|_| refused("unparsable Location"))?;
    // Userinfo in a `Location` is dropped, not turned into credentials: the server chose it,
    // and `Response::url()` promises never to hold a password.
    let uri = match uri.authority().and_then(|a| a.as_str().rsplit_once('@')) {
        Some((_, host_port)) => {
            let rest = uri.path_and_query().map_or("/", |p| p.as_str());
            format!("{}://{host_port}{rest}", uri.scheme_str().unwrap_or("http"))
                .parse()
                .map_err(|_| refused("unparsable Location"))?
        }
        None => uri,
    };
    if uri.host().is_none_or(str::is_empty) {
        return Err(refused("Location has no host"));
    }
    Ok(uri)
}

fn has_scheme(s: &str) -> bool {
    match s.find(':') {
        Some(i) => {
            let scheme = &s[..i];
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// Redirect resolution for fuzzing: the resolved URL, or the refusal.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_resolve(base: &str, location: &str) -> Result<String, Error> {
    let base: Uri = base.parse().map_err(|_| Error::invalid("base"))?;
    resolve(&base, location).map(|u| u.to_string())
}

/// The same-origin check for fuzzing.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_same_origin(a: &str, b: &str) -> Option<bool> {
    Some(same_origin(&a.parse().ok()?, &b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    fn u(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn relative_locations_resolve_against_the_current_url() {
        let base = u("http://a.test:8080/dir/page?x=1");
        let cases = [
            ("/root", "http://a.test:8080/root"),
            ("next", "http://a.test:8080/dir/next"),
            ("?y=2", "http://a.test:8080/dir/page?y=2"),
            ("//b.test/p", "http://b.test/p"),
            ("https://c.test/q#frag", "https://c.test/q"),
            ("HTTP://D.test/", "http://d.test/"),
        ];
        for (loc, want) in cases {
            assert_eq!(resolve(&base, loc).unwrap(), u(want), "{loc}");
        }
    }

    #[test]
    fn userinfo_in_a_location_is_dropped() {
        let base = u("http://a.test/");
        for (loc, want) in [
            ("http://user:pw@b.test/p?q=1", "http://b.test/p?q=1"),
            ("//u@b.test:81", "http://b.test:81/"),
            ("https://:secret@c.test/", "https://c.test/"),
        ] {
            let got = resolve(&base, loc).unwrap();
            assert_eq!(got, u(want), "{loc}");
            assert!(!got.to_string().contains('@'), "{loc} -> {got}");
        }
    }

    #[test]
    fn non_http_and_malformed_locations_are_refused() {
        let base = u("http://a.test/");
        for loc in [
            "ftp://a.test/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "/a\r\nb",
        ] {
            let err = resolve(&base, loc).unwrap_err();
            assert!(err.is_redirect(), "{loc}: {err}");
        }
    }

    #[test]
    fn origin_includes_scheme_host_and_port() {
        assert!(same_origin(&u("http://a.test/x"), &u("http://A.TEST:80/y")));
        assert!(!same_origin(
            &u("http://a.test/"),
            &u("http://a.test:8080/")
        ));
        assert!(!same_origin(&u("http://a.test/"), &u("https://a.test/")));
        assert!(!same_origin(&u("http://a.test/"), &u("http://b.test/")));
    }

    #[test]
    fn methods_follow_rfc_9110() {
        let base = u("http://a.test/");
        let post = Method::POST;
        for (status, method, keep) in [
            (301, Method::GET, false),
            (302, Method::GET, false),
            (303, Method::GET, false),
            (307, Method::POST, true),
            (308, Method::POST, true),
        ] {
            let hop = next_hop(st(status), &["/n"], &base, &post, false)
                .unwrap()
                .unwrap();
            assert_eq!((hop.method, hop.keep_body), (method, keep), "{status}");
        }
        let head = next_hop(st(303), &["/n"], &base, &Method::HEAD, false)
            .unwrap()
            .unwrap();
        assert_eq!(head.method, Method::HEAD);
        assert_eq!(
            next_hop(st(304), &["/n"], &base, &post, false).unwrap(),
            None
        );
        assert_eq!(next_hop(st(302), &[], &base, &post, false).unwrap(), None);
    }

    #[test]
    fn two_locations_are_refused_even_when_identical() {
        let base = u("http://a.test/");
        for locations in [&["/a", "/b"][..], &["/a", "/a"], &["/a", "/b", "/c"]] {
            let err = next_hop(st(302), locations, &base, &Method::GET, false).unwrap_err();
            assert!(err.is_redirect(), "{locations:?}: {err}");
            assert!(err.to_string().contains("more than one Location"), "{err}");
        }
        // Not a followable redirect: returned to the caller as it is, whatever it carries.
        assert_eq!(
            next_hop(st(300), &["/a", "/b"], &base, &Method::GET, false).unwrap(),
            None
        );
    }

    #[test]
    fn downgrade_is_refused_unless_allowed() {
        let base = u("https://a.test/");
        let get = Method::GET;
        assert!(next_hop(st(302), &["http://a.test/"], &base, &get, false).is_err());
        let hop = next_hop(st(302), &["http://a.test/"], &base, &get, true)
            .unwrap()
            .unwrap();
        assert!(hop.cross_origin);
    }
}
