//! `NO_PROXY` matching, curl's rules: ureq's own list knows no CIDR blocks (it would compare
//! `127.0.0.0/8` with the host as a string and never match), so the crate matches itself and
//! never hands ureq a `NO_PROXY` list.
//!
//! Entries are separated by commas (spaces around them are ignored):
//!
//! - `*` alone: every host bypasses the proxy.
//! - a domain, with or without a leading `.` or `*.`: that host and every host under it, on a
//!   label boundary (`example.com` matches `example.com` and `www.example.com`, not
//!   `badexample.com`), case-insensitively, a trailing dot of the host ignored. curl (since
//!   7.86) treats `.example.com` and `example.com` alike; Go's leading-dot form excludes the
//!   domain itself, which surprises more users than it helps.
//! - an IP address (`10.1.2.3`, `::1`, `[::1]`): that address.
//! - a CIDR block (`127.0.0.0/8`, `::1/128`): every IP-literal target inside it. Host names are
//!   not resolved to be matched, as in curl.
//!
//! Ports in entries are not supported (curl ignores them too); an entry that parses as none of
//! the above (an empty one, a bad prefix length) matches nothing.

use std::net::IpAddr;

/// A parsed `NO_PROXY` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NoProxy {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    All,
    /// A lowercase domain without leading or trailing dots.
    Domain(String),
    Ip(IpAddr),
    Cidr(IpAddr, u8),
}

impl NoProxy {
    /// Parses a comma-separated list; entries that mean nothing are dropped.
    pub(crate) fn parse(list: &str) -> NoProxy {
        let entries = list
            .split(',')
            .map(str::trim)
            .filter_map(Entry::parse)
            .collect();
        NoProxy { entries }
    }

    /// Whether a request to `host` (a URI's host: a name, an IPv4 address or a bracketed IPv6
    /// address) goes direct instead of through the proxy.
    pub(crate) fn matches(&self, host: &str) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip = bare.parse::<IpAddr>().ok();
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        self.entries.iter().any(|e| match (e, ip) {
            (Entry::All, _) => true,
            (Entry::Ip(want), Some(ip)) => *want == ip,
            (Entry::Cidr(net, bits), Some(ip)) => in_block(ip, *net, *bits),
            (Entry::Domain(d), None) => {
                name == *d
                    || (name.len() > d.len()
                        && name.ends_with(d.as_str())
                        && name.as_bytes()[name.len() - d.len() - 1] == b'.')
            }
            _ => false,
        })
    }
}

impl Entry {
    fn parse(s: &str) -> Option<Entry> {
        if s == "*" {
            return Some(Entry::All);
        }
        if let Some((addr, bits)) = s.split_once('/') {
            let addr: IpAddr = addr
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            return (bits <= max).then_some(Entry::Cidr(addr, bits));
        }
        let bare = s.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(Entry::Ip(ip));
        }
        let domain = s.strip_prefix("*.").unwrap_or(s);
        let domain = domain.trim_matches('.').to_ascii_lowercase();
        (!domain.is_empty() && !domain.contains(['*', '/', ' ', ':']))
            .then_some(Entry::Domain(domain))
    }
}

/// Whether `ip` lies in the block `net/bits`; an address of the other family never does.
fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn np(list: &str) -> NoProxy {
        NoProxy::parse(list)
    }

    #[test]
    fn cidr_blocks_match_ip_literal_targets_only() {
        let list = np("127.0.0.0/8, ::1/128,10.20.0.0/16");
        for yes in ["127.0.0.1", "127.255.255.254", "[::1]", "::1", "10.20.3.4"] {
            assert!(list.matches(yes), "{yes}");
        }
        for no in [
            "128.0.0.1",
            "[::2]",
            "10.21.0.1",
            "localhost",
            "127.0.0.1.example",
        ] {
            assert!(!list.matches(no), "{no}");
        }
        // An IPv4 block never matches an IPv6 address and the other way round.
        assert!(!np("0.0.0.0/0").matches("[::1]"));
        assert!(np("0.0.0.0/0").matches("192.0.2.1"));
        assert!(np("::/0").matches("[2001:db8::1]"));
        assert!(!np("::/0").matches("192.0.2.1"));
        // Prefix lengths at the edges, and ones that are out of range (ignored).
        assert!(np("192.0.2.7/32").matches("192.0.2.7"));
        assert!(!np("192.0.2.7/32").matches("192.0.2.8"));
        assert!(np("192.0.2.0/24").matches("192.0.2.200"));
        assert!(!np("192.0.2.0/33").matches("192.0.2.0"));
        assert!(!np("::1/129").matches("[::1]"));
        assert!(!np("10.0.0.0/x").matches("10.0.0.1"));
        // A block written with host bits set still means the block.
        assert!(np("10.1.2.3/8").matches("10.200.0.1"));
        assert!(np("[fd00::]/8").matches("[fd12::1]"));
    }

    #[test]
    fn domains_match_themselves_and_subdomains_on_a_label_boundary() {
        for entry in [
            "example.com",
            ".example.com",
            "*.example.com",
            "EXAMPLE.com.",
        ] {
            let list = np(entry);
            for yes in [
                "example.com",
                "www.example.com",
                "a.b.EXAMPLE.COM",
                "example.com.",
            ] {
                assert!(list.matches(yes), "{entry} / {yes}");
            }
            for no in [
                "badexample.com",
                "example.org",
                "com",
                "example.com.evil.test",
            ] {
                assert!(!list.matches(no), "{entry} / {no}");
            }
        }
    }

    #[test]
    fn ip_entries_star_and_garbage() {
        assert!(np("192.0.2.1").matches("192.0.2.1"));
        assert!(!np("192.0.2.1").matches("192.0.2.10"));
        assert!(np("[::1]").matches("[::1]"));
        assert!(np("::1").matches("[::1]"));
        // An IP entry is not a domain suffix.
        assert!(!np("0.2.1").matches("192.0.2.1"));
        assert!(np("*").matches("anything.test"));
        assert!(np("a.test, *").matches("[::1]"));
        // `*` inside a list entry other than alone or as `*.` is not a wildcard.
        assert!(!np("*example.com").matches("www.example.com"));
        for nothing in ["", " , ,", ".", "*.", "a b"] {
            let list = np(nothing);
            assert!(
                !list.matches("a.test") && !list.matches("127.0.0.1"),
                "{nothing:?}"
            );
        }
        assert!(!NoProxy::default().matches("localhost"));
    }
}
