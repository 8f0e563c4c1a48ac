//! The caching resolver: per-client DNS cache with a TTL, negative caching, and lookups
//! bounded by the call's deadline.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use crate::dns::Names;
use crate::retry::later;
use crate::telemetry::Phase;
use crate::url::port;

use super::conns::{limit, until, Connections};

/// One cached lookup. Entries live in a map, not on the hot path's stack: the size
/// difference between the variants does not matter.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
enum Cached {
    Found(ResolvedSocketAddrs, Instant),
    NotFound(Instant),
    /// A lookup that outlived its call. The system resolver cannot be cancelled, so its thread
    /// runs on; calls within the negative TTL fail at once instead of each starting another.
    TimedOut(Instant),
}

/// Host names a client's resolver remembers before it starts over (a crawler meets unbounded
/// hosts).
const MAX_CACHED_NAMES: usize = 1024;

/// Caches host lookups per client for a TTL, failures for a shorter one. IP literals never
/// reach the system resolver. A lookup runs on a helper thread bounded by the call's timeout
/// (the system resolver cannot be cancelled); only cache misses pay for it.
pub(crate) struct CachingResolver {
    ttl: Duration,
    negative_ttl: Duration,
    conns: Arc<Connections>,
    /// The pool's overrides (answered as they are) and custom resolver (asked instead of
    /// the system's).
    names: Names,
    // Uncontended: a client is used by one thread at a time. ureq requires `Sync`.
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// The last answer, looked up by the URL's scheme and authority as they are written: a
    /// worker calling one host again and again needs neither a port parse nor a hash.
    last: Option<Last>,
    by_host: HashMap<String, Cached>,
}

struct Last {
    https: bool,
    authority: String,
    addrs: ResolvedSocketAddrs,
    /// `None` for an IP literal, which never expires.
    until: Option<Instant>,
}

impl Cache {
    fn last(&self, https: bool, authority: &str) -> Option<&ResolvedSocketAddrs> {
        self.last
            .as_ref()
            .filter(|l| l.https == https && l.authority == authority)
            .filter(|l| l.until.is_none_or(|u| Instant::now() < u))
            .map(|l| &l.addrs)
    }
}

impl CachingResolver {
    pub(crate) fn new(
        ttl: Duration,
        negative_ttl: Duration,
        conns: Arc<Connections>,
        names: Names,
    ) -> Self {
        CachingResolver {
            ttl,
            negative_ttl,
            conns,
            names,
            cache: Mutex::new(Cache::default()),
        }
    }

    fn remember(
        &self,
        https: bool,
        authority: &str,
        addrs: &ResolvedSocketAddrs,
        until: Option<Instant>,
    ) {
        if let Ok(mut c) = self.cache.lock() {
            c.last = Some(Last {
                https,
                authority: authority.to_owned(),
                addrs: addrs.clone(),
                until,
            });
        }
    }

    /// Asks the pool's custom resolver, else the system's, about `host_port` (`port` is its
    /// port).
    fn lookup(
        &self,
        host_port: &str,
        port: u16,
        timeout: Option<Duration>,
    ) -> Result<Vec<SocketAddr>, ureq::Error> {
        let owned = host_port.to_owned();
        let custom = self.names.custom().cloned();
        let ask = move || match custom {
            Some(r) => {
                let host = owned.strip_suffix(&format!(":{port}")).unwrap_or(&owned);
                r.resolve(host, port)
            }
            None => owned.to_socket_addrs().map(Iterator::collect::<Vec<_>>),
        };
        let Some(timeout) = timeout else {
            return ask().map_err(|e| {
                log::debug!("dns lookup of {host_port} failed: {e}");
                ureq::Error::HostNotFound
            });
        };
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sentinel-dns".into())
            .spawn(move || {
                let _ = tx.send(ask());
            })
            .map_err(ureq::Error::Io)?;
        match rx.recv_timeout(timeout) {
            Ok(Ok(addrs)) => Ok(addrs),
            Ok(Err(e)) => {
                log::debug!("dns lookup of {host_port} failed: {e}");
                Err(ureq::Error::HostNotFound)
            }
            Err(_) => Err(ureq::Error::Timeout(ureq::Timeout::Resolve)),
        }
    }
}

impl fmt::Debug for CachingResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingResolver").finish()
    }
}

impl CachingResolver {
    /// A cached answer for `key` that has not expired, remembered for the authority too.
    fn cached(
        &self,
        key: &str,
        now: Instant,
        https: bool,
        authority: &str,
    ) -> Option<Result<ResolvedSocketAddrs, ureq::Error>> {
        let hit = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.by_host.get(key).cloned())?;
        match hit {
            Cached::Found(addrs, until) if now < until => {
                self.remember(https, authority, &addrs, Some(until));
                Some(Ok(addrs))
            }
            Cached::NotFound(until) if now < until => Some(Err(ureq::Error::HostNotFound)),
            Cached::TimedOut(until) if now < until => {
                Some(Err(ureq::Error::Timeout(ureq::Timeout::Resolve)))
            }
            _ => None,
        }
    }

    /// Looks `key` up, bounded by the call's deadline (or ureq's own limit, when it has one),
    /// and caches the answer, a failure included (for the negative TTL).
    fn look_up(
        &self,
        key: String,
        port: u16,
        now: Instant,
        timeout: &NextTimeout,
    ) -> Result<Cached, ureq::Error> {
        let (by, _) = limit(
            until(timeout),
            timeout.reason,
            self.conns.deadline(),
            ureq::Timeout::Resolve,
        );
        let left = by.map(|b| b.saturating_duration_since(now));
        if left.is_some_and(|l| l.is_zero()) {
            return Err(ureq::Error::Timeout(ureq::Timeout::Resolve));
        }
        let started = Instant::now();
        let looked_up = self.lookup(&key, port, left);
        self.conns.clock().record(Phase::Dns, started.elapsed());
        let entry = match looked_up {
            Ok(addrs) => {
                let mut out = self.empty();
                for a in addrs.into_iter().take(16) {
                    out.push(a);
                }
                if out.is_empty() {
                    Cached::NotFound(later(now, self.negative_ttl))
                } else {
                    Cached::Found(out, later(now, self.ttl))
                }
            }
            Err(ureq::Error::HostNotFound) => Cached::NotFound(later(now, self.negative_ttl)),
            Err(ureq::Error::Timeout(_)) => Cached::TimedOut(later(now, self.negative_ttl)),
            Err(e) => return Err(e),
        };
        if let Ok(mut c) = self.cache.lock() {
            if c.by_host.len() >= MAX_CACHED_NAMES {
                c.by_host.clear();
            }
            c.by_host.insert(key, entry.clone());
        }
        Ok(entry)
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let https = uri.scheme_str() == Some("https");
        let authority = uri.authority().map_or("", |a| a.as_str());
        if let Some(addrs) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.last(https, authority).cloned())
        {
            return Ok(addrs);
        }
        self.resolve_uncached(uri, https, authority, timeout)
    }
}

impl CachingResolver {
    /// Everything after the last answer missed: kept out of line, so the hot path's stack
    /// frame is not sized for the address lists built here.
    #[inline(never)]
    #[cold]
    fn resolve_uncached(
        &self,
        uri: &Uri,
        https: bool,
        authority: &str,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri
            .host()
            .ok_or_else(|| ureq::Error::BadUri("no host".into()))?;
        let port = port(uri);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Some(pinned) = self.names.pinned(bare, port) {
            let mut out = self.empty();
            for a in pinned.iter().take(16) {
                out.push(*a);
            }
            self.remember(https, authority, &out, None);
            return Ok(out);
        }
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let mut out = self.empty();
            out.push(SocketAddr::new(ip, port));
            self.remember(https, authority, &out, None);
            return Ok(out);
        }
        let key = format!("{host}:{port}");
        let now = Instant::now();
        if let Some(answer) = self.cached(&key, now, https, authority) {
            return answer;
        }
        match self.look_up(key, port, now, &timeout)? {
            Cached::Found(addrs, until) => {
                self.remember(https, authority, &addrs, Some(until));
                Ok(addrs)
            }
            Cached::NotFound(_) => Err(ureq::Error::HostNotFound),
            Cached::TimedOut(_) => Err(ureq::Error::Timeout(ureq::Timeout::Resolve)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(r: &CachingResolver, url: &str) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let uri: Uri = url.parse().unwrap();
        r.resolve(&uri, &Config::default(), NextTimeout::default())
    }

    #[test]
    fn ip_literals_resolve_without_lookup() {
        let r = CachingResolver::new(
            Duration::from_secs(60),
            Duration::from_secs(5),
            Arc::new(Connections::new()),
            Names::default(),
        );
        let a = resolve(&r, "http://127.0.0.1:8080/x").unwrap();
        assert_eq!(a[0], "127.0.0.1:8080".parse().unwrap());
        let a = resolve(&r, "https://[::1]/").unwrap();
        assert_eq!(a[0], "[::1]:443".parse().unwrap());
        assert!(r.cache.lock().unwrap().by_host.is_empty());
        // The last answer is served again without parsing: same scheme and authority only.
        let a = resolve(&r, "https://[::1]/other").unwrap();
        assert_eq!(a[0], "[::1]:443".parse().unwrap());
        let a = resolve(&r, "http://[::1]/").unwrap();
        assert_eq!(a[0], "[::1]:80".parse().unwrap());
    }

    #[test]
    fn names_are_cached_and_failures_negatively_cached() {
        let r = CachingResolver::new(
            Duration::from_secs(60),
            Duration::from_secs(5),
            Arc::new(Connections::new()),
            Names::default(),
        );
        let a = resolve(&r, "http://localhost:9/").unwrap();
        assert!(a.iter().all(|s| s.ip().is_loopback()));
        let err = resolve(&r, "http://no-such-host.invalid/").unwrap_err();
        assert!(matches!(err, ureq::Error::HostNotFound));
        let cache = r.cache.lock().unwrap();
        assert!(matches!(
            cache.by_host.get("localhost:9"),
            Some(Cached::Found(..))
        ));
        assert!(matches!(
            cache.by_host.get("no-such-host.invalid:80"),
            Some(Cached::NotFound(_))
        ));
    }
}
