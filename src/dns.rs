//! Name resolution the caller controls: fixed addresses for a host and port (curl's
//! `--resolve`), and the [`Resolver`] trait for a resolver of one's own.
//!
//! Both feed each client's caching resolver (`transport/resolver.rs`): an override is used as
//! it is, never cached or looked up; a custom resolver's answers are cached like the system
//! resolver's, for [`dns_ttl`](crate::PoolConfigBuilder::dns_ttl).
//!
//! Through a proxy, names are resolved as curl resolves them: the proxy's own host name goes
//! through the overrides and the resolver (the client connects to it), the target's does only
//! when the client itself connects to the target (no proxy, a target on the `NO_PROXY` list, a
//! `socks4://` or `socks5://` proxy, which take an address). An HTTP proxy or a `socks4a://` /
//! `socks5h://` proxy is handed the target's name and resolves it itself, so an override for the
//! target does not reach it.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A resolver of host names, used by every client of a pool in place of the system resolver
/// (see [`PoolConfigBuilder::resolver`](crate::PoolConfigBuilder::resolver)).
///
/// It is called on a helper thread, only when a client's cache has no answer for the host; the
/// call waits for it at most until the call's deadline, and a resolver that takes longer fails
/// that call with a resolve timeout (its answer is dropped, and the failure cached for the
/// negative TTL). Addresses are tried in the order given, alternating IPv6 and IPv4 from the
/// first one's family.
///
/// # Examples
///
/// ```
/// use std::io;
/// use std::net::SocketAddr;
/// use http_sentinel::{ClientPool, PoolConfig, Resolver};
///
/// /// Every `*.svc.test` name is served from one local address.
/// struct Mesh;
///
/// impl Resolver for Mesh {
///     fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
///         match host.ends_with(".svc.test") {
///             true => Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
///             false => Err(io::Error::new(io::ErrorKind::NotFound, "not in the mesh")),
///         }
///     }
/// }
///
/// let pool = ClientPool::new(PoolConfig::builder().resolver(Mesh).build())?;
/// # drop(pool);
/// # Ok::<(), http_sentinel::Error>(())
/// ```
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of `host` (a name, never an IP literal: those are not resolved) for a
    /// connection to `port`.
    ///
    /// # Errors
    ///
    /// Any error, or an empty list, fails the call with
    /// [`ErrorKind::Dns`](crate::ErrorKind::Dns) and is cached for the negative TTL.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// What the pool's configuration says about resolving names: the overrides and the custom
/// resolver. `Debug` shows the overridden names, not the resolver.
#[derive(Clone, Default)]
pub(crate) struct Names {
    /// `(lowercase host, port)` to its addresses, in the order given.
    overrides: HashMap<(String, u16), Arc<[SocketAddr]>>,
    custom: Option<Arc<dyn Resolver>>,
}

impl fmt::Debug for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut overrides: Vec<String> = self
            .overrides
            .keys()
            .map(|(host, port)| format!("{host}:{port}"))
            .collect();
        overrides.sort();
        f.debug_struct("Names")
            .field("overrides", &overrides)
            .field("custom_resolver", &self.custom.is_some())
            .finish()
    }
}

impl Names {
    /// Pins `host:port` to `addrs` (replacing an earlier override of the same pair).
    pub(crate) fn pin(&mut self, host: &str, port: u16, addrs: Vec<IpAddr>) {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let addrs: Arc<[SocketAddr]> = addrs
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
        self.overrides.insert((host, port), addrs);
    }

    pub(crate) fn set_custom(&mut self, resolver: Arc<dyn Resolver>) {
        self.custom = Some(resolver);
    }

    /// The pinned addresses of `host:port`, if any (`host` as it is written in the URL).
    pub(crate) fn pinned(&self, host: &str, port: u16) -> Option<&[SocketAddr]> {
        if self.overrides.is_empty() {
            return None;
        }
        let host = host.trim_end_matches('.');
        let found = match host.bytes().any(|b| b.is_ascii_uppercase()) {
            true => self.overrides.get(&(host.to_ascii_lowercase(), port)),
            false => self.overrides.get(&(host.to_owned(), port)),
        };
        found.map(|a| &a[..])
    }

    /// The custom resolver, if one is set.
    pub(crate) fn custom(&self) -> Option<&Arc<dyn Resolver>> {
        self.custom.as_ref()
    }
}

/// Addresses in the order they are tried: alternating families, starting with the first
/// address's (RFC 8305 §4: "the first address of the other family second"), each family's
/// own order kept.
pub(crate) fn interleave(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return Vec::new();
    };
    let (mut same, mut other): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.iter().partition(|a| a.is_ipv6() == first.is_ipv6());
    same.reverse();
    other.reverse();
    let mut out = Vec::with_capacity(addrs.len());
    loop {
        match (same.pop(), other.pop()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn families_alternate_from_the_first_address() {
        let given = [
            a("[::1]:80"),
            a("[::2]:80"),
            a("[::3]:80"),
            a("127.0.0.1:80"),
            a("127.0.0.2:80"),
        ];
        assert_eq!(
            interleave(&given),
            [
                a("[::1]:80"),
                a("127.0.0.1:80"),
                a("[::2]:80"),
                a("127.0.0.2:80"),
                a("[::3]:80"),
            ]
        );
        let v4_first = [a("127.0.0.1:80"), a("127.0.0.2:80"), a("[::1]:80")];
        assert_eq!(
            interleave(&v4_first),
            [a("127.0.0.1:80"), a("[::1]:80"), a("127.0.0.2:80")]
        );
        assert!(interleave(&[]).is_empty());
    }

    #[test]
    fn overrides_match_host_case_insensitively_and_port_exactly() {
        let mut names = Names::default();
        names.pin("Example.TEST", 8080, vec!["127.0.0.1".parse().unwrap()]);
        names.pin("[::1]", 80, vec!["127.0.0.1".parse().unwrap()]);
        assert_eq!(
            names.pinned("example.test", 8080),
            Some(&[a("127.0.0.1:8080")][..])
        );
        assert!(names.pinned("EXAMPLE.test.", 8080).is_some());
        assert!(names.pinned("example.test", 8081).is_none());
        assert!(names.pinned("other.test", 8080).is_none());
        assert!(names.pinned("::1", 80).is_some());
        let shown = format!("{names:?}");
        assert!(shown.contains("example.test:8080"), "{shown}");
    }
}
