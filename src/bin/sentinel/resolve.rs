//! `--resolve host:port:addr[,addr...]`, curl's option, handed to the library's
//! `PoolConfigBuilder::resolve`: the URL, the `Host` header and the name an https certificate
//! is checked against stay `host`'s; only the addresses connected to change.

use std::net::IpAddr;

use http_sentinel::PoolConfigBuilder;

/// One `--resolve` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    host: String,
    port: u16,
    addrs: Vec<IpAddr>,
}

/// Parses `host:port:addr[,addr...]` (an IPv6 address may be written with or without
/// brackets); the addresses are tried in turn, as curl tries them.
pub(crate) fn parse(v: &str) -> Result<Entry, String> {
    let bad = || format!("--resolve takes host:port:address, got {v:?}");
    let mut parts = v.splitn(3, ':');
    let (Some(host), Some(port), Some(addrs)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let addrs = addrs
        .split(',')
        .map(|a| a.trim_start_matches('[').trim_end_matches(']'))
        .map(|a| a.parse::<IpAddr>().map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Entry {
        host: host.to_owned(),
        port,
        addrs,
    })
}

/// The pool's configuration with every entry as an override (a later entry for the same host
/// and port replaces an earlier one).
pub(crate) fn apply(mut config: PoolConfigBuilder, entries: &[Entry]) -> PoolConfigBuilder {
    for e in entries {
        config = config.resolve(&e.host, e.port, e.addrs.iter().copied());
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_with_every_address() {
        let e = parse("example.test:8080:127.0.0.2,[::1],127.0.0.1").unwrap();
        assert_eq!(e.host, "example.test");
        assert_eq!(e.port, 8080);
        let want: Vec<IpAddr> = ["127.0.0.2", "::1", "127.0.0.1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(e.addrs, want);
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "h.test:80",
            "h.test:x:127.0.0.1",
            ":80:127.0.0.1",
            "h:80:nope",
            "h:80:127.0.0.1,",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
