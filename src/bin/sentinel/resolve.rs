//! `--resolve host:port:addr`, done by rewriting the URL: the library has no public resolver
//! override, so a matching `http` URL is sent to `addr` with the original `Host` header (RFC 9110
//! section 7.2), which is all a plain-HTTP server sees of a name. An `https` URL cannot be
//! rewritten so: the certificate would be checked against the address instead of the name.

use std::net::IpAddr;

/// One `--resolve` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    host: String,
    port: u16,
    addr: IpAddr,
}

/// What a URL becomes under the `--resolve` entries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rewrite {
    /// No entry applies: send as given.
    Unchanged,
    /// Send to `url`, with `host` as the `Host` header.
    To {
        url: String,
        host: String,
        addr: IpAddr,
    },
    /// An entry applies to an `https` URL, which sentinel cannot honour.
    Https,
}

/// Parses `host:port:addr` (the first of a comma-separated list of addresses is used; an IPv6
/// address may be written with or without brackets).
pub(crate) fn parse(v: &str) -> Result<Entry, String> {
    let bad = || format!("--resolve takes host:port:address, got {v:?}");
    let mut parts = v.splitn(3, ':');
    let (Some(host), Some(port), Some(addrs)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let first = addrs.split(',').next().unwrap_or_default();
    let first = first.trim_start_matches('[').trim_end_matches(']');
    let addr = first.parse::<IpAddr>().map_err(|_| bad())?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Entry {
        host: host.to_ascii_lowercase(),
        port,
        addr,
    })
}

/// Applies the first entry matching the URL's host and port (the scheme's default port when it
/// names none).
pub(crate) fn rewrite(url: &str, entries: &[Entry]) -> Rewrite {
    if entries.is_empty() {
        return Rewrite::Unchanged;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Rewrite::Unchanged;
    };
    let https = scheme.eq_ignore_ascii_case("https");
    if !https && !scheme.eq_ignore_ascii_case("http") {
        return Rewrite::Unchanged;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let (host, port) = split_port(hostport);
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(p) => p,
            Err(_) => return Rewrite::Unchanged,
        },
        None if https => 443,
        None => 80,
    };
    let host_lc = host.to_ascii_lowercase();
    let Some(entry) = entries.iter().find(|e| e.host == host_lc && e.port == port) else {
        return Rewrite::Unchanged;
    };
    if https {
        return Rewrite::Https;
    }
    let addr = match entry.addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    Rewrite::To {
        url: format!("{scheme}://{userinfo}{addr}:{port}{tail}"),
        host: hostport.to_owned(),
        addr: entry.addr,
    }
}

/// `host:port` into its parts; an IPv6 literal keeps its brackets.
fn split_port(hostport: &str) -> (&str, Option<&str>) {
    let colon = match hostport.starts_with('[') {
        true => hostport.find(']').and_then(|b| {
            let after = &hostport[b + 1..];
            after.starts_with(':').then_some(b + 1)
        }),
        false => hostport.rfind(':'),
    };
    match colon {
        Some(c) => (&hostport[..c], Some(&hostport[c + 1..])),
        None => (hostport, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matching_http_url_goes_to_the_address_with_its_host_header() {
        let e = [parse("example.test:80:127.0.0.1").unwrap()];
        assert_eq!(
            rewrite("http://u:p@Example.test/a?b#c", &e),
            Rewrite::To {
                url: "http://u:p@127.0.0.1:80/a?b#c".into(),
                host: "Example.test".into(),
                addr: "127.0.0.1".parse().unwrap(),
            }
        );
        assert_eq!(rewrite("http://example.test:81/", &e), Rewrite::Unchanged);
        assert_eq!(rewrite("http://other.test/", &e), Rewrite::Unchanged);
        assert_eq!(rewrite("https://example.test:80/", &e), Rewrite::Https);
        let v6 = [parse("h.test:8080:[::1]").unwrap()];
        match rewrite("http://h.test:8080", &v6) {
            Rewrite::To { url, host, .. } => {
                assert_eq!(
                    (url.as_str(), host.as_str()),
                    ("http://[::1]:8080", "h.test:8080")
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "h.test:80",
            "h.test:x:127.0.0.1",
            ":80:127.0.0.1",
            "h:80:nope",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("h.test:80:127.0.0.2,127.0.0.3").is_ok());
    }
}
