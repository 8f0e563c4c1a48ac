//! URLs: validation of what callers pass, the userinfo split, redaction for logs and errors,
//! origins, and the `host:port` key that names a host in breakers, budgets and metrics.

use std::ops::Range;

use base64::Engine as _;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ureq::http::{HeaderValue, Uri};

use crate::error::Error;

/// Everything outside RFC 3986's unreserved set (`A-Z a-z 0-9 - . _ ~`) is percent-encoded in
/// query keys and values.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Parses and checks a caller's URL: http(s) only, a host, a numeric port, no spaces or
/// control characters. Returns the URL without its userinfo, and the userinfo
/// percent-decoded (`user:password`), which travels only as an `Authorization` header.
pub(crate) fn parse(url: &str, secret_query: &[String]) -> Result<(Uri, Option<Vec<u8>>), Error> {
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Error::invalid("url contains a space or control character"));
    }
    let uri: Uri = url.parse().map_err(|_| {
        Error::invalid(format!(
            "malformed url {:?}",
            redact_query(url, secret_query)
        ))
    })?;
    // The scheme is checked before the userinfo is split off: `@e` parses as a bare
    // authority, and must not come out of the split as `http://e/`.
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(Error::invalid("url scheme must be http or https"));
    }
    let (uri, userinfo) = split_userinfo(uri)?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(Error::invalid("url has no host"));
    }
    // `http://u:pa/ss@h/` reads as host `u` with port `pa`: refuse it rather than send
    // anything to `u`.
    if uri.port_u16().is_none() && has_bad_port(&uri) {
        return Err(Error::invalid("url has a port that is not a number"));
    }
    Ok((uri, userinfo))
}

/// Takes `user:pass@` out of a parsed URL's authority, percent-decoded, so it travels only as
/// an `Authorization` header (subject to the cross-origin rules) and never in a `Host` header
/// or a log line. It works on what the URL parser took for the authority, so a password with
/// an odd character cannot be left half in the URL.
pub(crate) fn split_userinfo(uri: Uri) -> Result<(Uri, Option<Vec<u8>>), Error> {
    let Some((info, host)) = uri.authority().and_then(|a| a.as_str().rsplit_once('@')) else {
        return Ok((uri, None));
    };
    let Some(scheme) = uri.scheme_str() else {
        return Err(Error::invalid("url scheme must be http or https"));
    };
    let info: Vec<u8> = percent_decode_str(info).collect();
    let rest = uri.path_and_query().map_or("/", |p| p.as_str());
    let bare = format!("{scheme}://{host}{rest}")
        .parse()
        .map_err(|_| Error::invalid("malformed url"))?;
    Ok((bare, Some(info)))
}

/// The `Authorization: Basic` value for `user:password` bytes, marked sensitive.
pub(crate) fn basic_auth(userinfo: &[u8]) -> Result<HeaderValue, Error> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(userinfo);
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .map_err(|_| Error::invalid("invalid credentials in url"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Appends `key=value` to a query string, both percent-encoded.
pub(crate) fn push_query_pair(query: &mut String, key: &str, value: &str) {
    if !query.is_empty() {
        query.push('&');
    }
    query.extend(utf8_percent_encode(key, QUERY_COMPONENT));
    query.push('=');
    query.extend(utf8_percent_encode(value, QUERY_COMPONENT));
}

/// Bytes left as they are in an `application/x-www-form-urlencoded` key or value (the WHATWG
/// URL standard's form serializer): ASCII letters, digits and `*-._`; a space becomes `+`.
const FORM_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// Encodes pairs as an `application/x-www-form-urlencoded` body: `k=v&k2=v2`, spaces as `+`.
pub(crate) fn encode_form<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut body = String::new();
    for (key, value) in pairs {
        if !body.is_empty() {
            body.push('&');
        }
        push_form_component(&mut body, key.as_ref());
        body.push('=');
        push_form_component(&mut body, value.as_ref());
    }
    body
}

fn push_form_component(out: &mut String, text: &str) {
    for (i, part) in text.split(' ').enumerate() {
        if i > 0 {
            out.push('+');
        }
        out.extend(utf8_percent_encode(part, FORM_COMPONENT));
    }
}

/// The byte ranges, within `query` (without its `?`), of the values of the pairs whose name
/// (percent-decoded) is one of `names`. A pair without `=` has no value to hide.
pub(crate) fn sensitive_query_values(query: &str, names: &[String]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    if names.is_empty() {
        return out;
    }
    let mut at = 0;
    for pair in query.split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            let key = percent_decode_str(key).decode_utf8_lossy();
            if !value.is_empty() && names.iter().any(|n| *n == key) {
                let start = at + pair.len() - value.len();
                out.push(start..start + value.len());
            }
        }
        at += pair.len() + 1;
    }
    out
}

/// `url` with the values of the query parameters named in `names` replaced by `***` (and its
/// userinfo too, as [`redact_url`]), safe to log or print.
pub(crate) fn redact_query(url: &str, names: &[String]) -> String {
    let url = redact_url(url);
    let Some(q) = url.find('?') else {
        return url;
    };
    let end = url[q..].find('#').map_or(url.len(), |i| q + i);
    let query = &url[q + 1..end];
    let ranges = sensitive_query_values(query, names);
    if ranges.is_empty() {
        return url;
    }
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..=q]);
    let mut at = 0;
    for r in ranges {
        out.push_str(&query[at..r.start]);
        out.push_str("***");
        at = r.end;
    }
    out.push_str(&query[at..]);
    out.push_str(&url[end..]);
    out
}

/// `uri` with the values of the query parameters named in `names` shown as `***`.
pub(crate) fn redact_uri(uri: Uri, names: &[String]) -> Uri {
    if names.is_empty() || uri.query().is_none() {
        return uri;
    }
    // `*` is a sub-delimiter (RFC 3986 §2.2): the redacted URI still parses.
    redact_query(&uri.to_string(), names).parse().unwrap_or(uri)
}

/// Whether the authority ends in `:` and something other than a port number (the http crate
/// reads `u:pa` as host `u` without a port).
fn has_bad_port(uri: &Uri) -> bool {
    let Some(auth) = uri.authority().map(|a| a.as_str()) else {
        return false;
    };
    let host_port = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    match host_port.rsplit_once(':') {
        // After an IPv6 literal's `]`, or the `:`s inside it.
        Some((host, port)) if !port.contains(']') && !host.ends_with('[') => {
            !port.is_empty() && port.parse::<u16>().is_err()
        }
        _ => false,
    }
}

/// `url` with its userinfo (which may hold a password) replaced by `***`, safe to log or
/// print. A URL that does not read cleanly (it fails to parse, has a port that is not a
/// number, or a `#`: a password with a raw `/`, `?` or `#` in it) is hidden up to its last `@`.
///
/// # Examples
///
/// ```
/// use http_sentinel::redact_url;
///
/// assert_eq!(redact_url("https://u:secret@h.test/x"), "https://***@h.test/x");
/// assert_eq!(redact_url("http://u:pa/ss@h.test/"), "http://***@h.test/");
/// assert_eq!(redact_url("https://h.test/users/a@b"), "https://h.test/users/a@b");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(rest_at) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let clean = url
        .parse::<Uri>()
        .ok()
        .filter(|u| !url.contains('#') && !has_bad_port(u));
    let at = match clean
        .as_ref()
        .and_then(|u| u.authority())
        .map(|a| a.as_str())
    {
        // Hidden is what the parser (and so a request) takes for userinfo.
        Some(auth) if url[rest_at..].starts_with(auth) => auth.rfind('@').map(|i| rest_at + i),
        _ => url.rfind('@').filter(|&i| i >= rest_at),
    };
    match at {
        Some(at) => format!("{}***@{}", &url[..rest_at], &url[at + 1..]),
        None => url.to_owned(),
    }
}

/// The effective port of an http(s) URI.
pub(crate) fn port(uri: &Uri) -> u16 {
    uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    })
}

/// Same scheme, host (ASCII case-insensitive) and effective port.
pub(crate) fn same_origin(a: &Uri, b: &Uri) -> bool {
    a.scheme_str() == b.scheme_str()
        && port(a) == port(b)
        && match (a.host(), b.host()) {
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            _ => false,
        }
}

/// `host:port` (the port always written): the name of a host in metrics, breakers, budgets
/// and errors. Built by hand: `format!` costs more than the rest of a call's bookkeeping.
pub(crate) fn host_key(uri: &Uri) -> String {
    let host = uri.host().unwrap_or_default();
    let mut key = String::with_capacity(host.len() + 6);
    key.push_str(host);
    key.push(':');
    let port = port(uri);
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = port;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    key.extend(digits[i..].iter().map(|&d| char::from(d)));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_follows_the_whatwg_serializer() {
        let pairs = [("a b", "c&d=e"), ("k", "*-._~+%\u{e9}")];
        assert_eq!(encode_form(&pairs), "a+b=c%26d%3De&k=*-._%7E%2B%25%C3%A9");
        assert_eq!(encode_form::<&str, &str>(&[]), "");
    }

    #[test]
    fn host_keys_always_name_the_port() {
        for (url, key) in [
            ("http://a.test/x", "a.test:80"),
            ("https://a.test/", "a.test:443"),
            ("http://127.0.0.1:8/", "127.0.0.1:8"),
            ("http://h.test:65535/", "h.test:65535"),
            ("http://h.test:0/", "h.test:0"),
            ("http://[::1]:18080/", "[::1]:18080"),
        ] {
            assert_eq!(host_key(&url.parse().unwrap()), key, "{url}");
        }
    }

    #[test]
    fn userinfo_is_split_out_and_decoded() {
        let split = |url: &str| split_userinfo(url.parse().unwrap()).unwrap();
        let (uri, info) = split("http://us%40er:p%3Ass@h.test:8/p?q@x");
        assert_eq!(uri, "http://h.test:8/p?q@x");
        assert_eq!(info.unwrap(), b"us@er:p:ss");
        assert_eq!(split("http://h.test/a@b").1, None);
        // Whatever the parser takes for userinfo goes.
        let (uri, info) = split("http://u:p:w@h.test/x");
        assert_eq!(
            (uri.host(), info.as_deref()),
            (Some("h.test"), Some(&b"u:p:w"[..]))
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://u:secret@h.test/x"),
            "https://***@h.test/x"
        );
        assert_eq!(redact_url("https://h.test/x@y"), "https://h.test/x@y");
        assert_eq!(
            redact_url("https://h.test/?email=a@b.c"),
            "https://h.test/?email=a@b.c"
        );
        // Passwords with a raw '#', '/' or '?' (URLs that do not parse) stay hidden.
        for (url, want) in [
            ("http://u:p#ss@h.test/", "http://***@h.test/"),
            ("http://u:pa/ss@h.test/x", "http://***@h.test/x"),
            ("http://u:p?ss@h.test/", "http://***@h.test/"),
            ("http://u:a@b#c@h.test/", "http://***@h.test/"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
        assert_eq!(redact_url("no scheme u:p@h"), "no scheme u:p@h");
    }

    #[test]
    fn sensitive_query_values_are_found_and_redacted() {
        let names = ["api_key".to_string(), "t ok".to_string()];
        let q = "a=1&api_key=s3c&b=&api_key=&t%20ok=x&api_keyx=y&api_key";
        let found: Vec<&str> = sensitive_query_values(q, &names)
            .into_iter()
            .map(|r| &q[r])
            .collect();
        assert_eq!(found, ["s3c", "x"]);
        assert_eq!(
            redact_query("https://u:p@h.test/x?api_key=s3c&b=2#api_key=f", &names),
            "https://***@h.test/x?api_key=***&b=2#api_key=f"
        );
        assert_eq!(redact_query("http://h.test/x", &names), "http://h.test/x");
        let uri: Uri = "http://h.test/x?api_key=s3c".parse().unwrap();
        assert_eq!(
            redact_uri(uri.clone(), &names),
            "http://h.test/x?api_key=***"
        );
        assert_eq!(redact_uri(uri.clone(), &[]), uri);
    }

    #[test]
    fn basic_auth_matches_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let value = basic_auth(i.as_bytes()).unwrap();
            assert_eq!(value.to_str().unwrap(), format!("Basic {o}"));
            assert!(value.is_sensitive());
        }
    }

    #[test]
    fn query_encoding_is_rfc_3986() {
        let mut s = String::new();
        push_query_pair(&mut s, "a b&c=d/é~", "x");
        push_query_pair(&mut s, "k", "");
        assert_eq!(s, "a%20b%26c%3Dd%2F%C3%A9~=x&k=");
    }
}
