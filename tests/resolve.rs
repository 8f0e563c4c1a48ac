//! Name resolution the caller controls, over loopback: `resolve` overrides (curl's
//! `--resolve`), a custom `Resolver`, the fallback from an address that refuses to the next
//! (fault scenario `N?`, tests/README.md), and overrides through a proxy. Against the fault
//! server, which logs each request's head, inside `support::scenario`.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_sentinel::{ClientPool, ErrorKind, Proxy, Resolver};

mod support;

use support::proxy::ForwardProxy;
use support::scenario;
use support::server::{Behaviour, Reply, TestServer};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn an_override_sends_a_named_url_to_its_address_with_the_names_host_header() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/pinned", Behaviour::Respond(Reply::text(200, "pinned")))
            .start();
        let port = server.addr().port();
        let pool = support::pool(support::config(Duration::from_secs(5)).resolve(
            "Example.test",
            port,
            [ip("127.0.0.1")],
        ));
        let client = pool.checkout().unwrap();
        let url = format!("http://example.test:{port}/pinned");
        for _ in 0..2 {
            let r = client.get(&url).send().unwrap();
            assert_eq!(r.remote_addr(), Some(server.addr()));
            assert_eq!(r.text().unwrap(), "pinned");
        }
        let seen = server.requests();
        assert_eq!(seen.len(), 2);
        let host = format!("example.test:{port}");
        assert!(
            seen.iter().all(|r| r.header("host") == Some(host.as_str())),
            "{seen:?}"
        );
        // The override is for that port only: another port of the name is resolved (and the
        // reserved `.test` name is not found).
        let err = client
            .get(&format!("http://example.test:{}/", port.wrapping_add(1)))
            .send()
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Dns, "{err:?}");
    });
}

/// Answers `api.svc.test` with 127.0.0.1 and counts its calls.
struct Mesh {
    calls: Arc<AtomicUsize>,
}

impl Resolver for Mesh {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match host {
            "api.svc.test" => Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
            "empty.svc.test" => Ok(Vec::new()),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "not in the mesh")),
        }
    }
}

#[test]
fn a_custom_resolver_is_asked_once_per_name_and_its_failures_are_dns_errors() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/svc", Behaviour::Respond(Reply::text(200, "mesh")))
            .start();
        let port = server.addr().port();
        let calls = Arc::new(AtomicUsize::new(0));
        let pool = support::pool(
            support::config(Duration::from_secs(5))
                .max_clients(1)
                .resolver(Mesh {
                    calls: calls.clone(),
                }),
        );
        let client = pool.checkout().unwrap();
        let url = format!("http://api.svc.test:{port}/svc");
        for _ in 0..3 {
            assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "mesh");
        }
        assert_eq!(server.requests_to("/svc"), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "answers are cached");
        // An IP literal is never handed to the resolver.
        let literal = format!("http://127.0.0.1:{port}/svc");
        client.get(&literal).send().unwrap().bytes().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        for name in ["empty.svc.test", "elsewhere.test"] {
            let err = client.get(&format!("http://{name}/")).send().unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::Dns, "{name}: {err:?}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn a_refusing_first_address_falls_back_to_the_next_within_the_connect_timeout() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(200, "second")))
            .start();
        let port = server.addr().port();
        // Nothing listens on 127.0.0.2 (nor on ::1) at the server's port: each refuses.
        let config = support::config(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .retry(http_sentinel::RetryPolicy::none())
            .resolve(
                "dual.test",
                port,
                [ip("::1"), ip("127.0.0.2"), ip("127.0.0.1")],
            );
        let pool = support::pool(config);
        let client = pool.checkout().unwrap();
        let r = client
            .get(&format!("http://dual.test:{port}/"))
            .send()
            .unwrap();
        assert_eq!(r.remote_addr(), Some(server.addr()));
        assert_eq!(r.attempts(), 1, "one attempt, three addresses");
        assert_eq!(r.text().unwrap(), "second");
        assert_eq!(server.connections_accepted(), 1);

        // Every address refusing fails the call as a connect error.
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let pool = support::pool(
            support::config(Duration::from_secs(5))
                .retry(http_sentinel::RetryPolicy::none())
                .resolve("down.test", closed, [ip("127.0.0.2"), ip("127.0.0.1")]),
        );
        let err = pool
            .checkout()
            .unwrap()
            .get(&format!("http://down.test:{closed}/"))
            .send()
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
    });
}

/// A listener on `addr` whose accept queue is full: the kernel drops further SYNs, so a
/// connect to it hangs until its timeout, like a black-holed route. The returned socket
/// holds the one queued connection.
fn silent_listener(addr: SocketAddr) -> (socket2::Socket, std::net::TcpStream) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener.bind(&addr.into()).unwrap();
    listener.listen(0).unwrap();
    let queued = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap();
    (listener, queued)
}

#[test]
fn a_silent_first_address_gets_only_its_share_of_the_connect_timeout() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(200, "second")))
            .start();
        let port = server.addr().port();
        let silent = SocketAddr::from(([127, 0, 0, 2], port));
        let (_listener, _queued) = silent_listener(silent);
        // The silent address alone times out: the check that it does drop the SYN.
        let only = support::pool(
            support::config(Duration::from_secs(5))
                .connect_timeout(Duration::from_millis(300))
                .retry(http_sentinel::RetryPolicy::none())
                .resolve("silent.test", port, [silent.ip()]),
        );
        let err = only
            .checkout()
            .unwrap()
            .get(&format!("http://silent.test:{port}/"))
            .send()
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Timeout(http_sentinel::error::TimeoutPhase::Connect),
            "{err:?}"
        );
        // First of two: it gets half of the connect timeout, and the second address the rest.
        let pool = support::pool(
            support::config(Duration::from_secs(5))
                .connect_timeout(Duration::from_secs(2))
                .retry(http_sentinel::RetryPolicy::none())
                .resolve("silent.test", port, [silent.ip(), ip("127.0.0.1")]),
        );
        let r = pool
            .checkout()
            .unwrap()
            .get(&format!("http://silent.test:{port}/"))
            .send()
            .unwrap();
        assert_eq!(r.remote_addr(), Some(server.addr()));
        assert_eq!(r.text().unwrap(), "second");
    });
}

#[test]
fn through_a_proxy_the_proxy_name_is_overridden_and_the_target_name_is_passed_on() {
    scenario(|| {
        let target = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(200, "direct")))
            .start();
        let proxy = ForwardProxy::start(403);
        let proxy_port = proxy.addr().port();
        let port = target.addr().port();
        // The target's override points at the target server: a client that connected there
        // itself (around the proxy) would get "direct".
        let config = support::config(Duration::from_secs(5))
            .proxy(Proxy::Url(format!("http://proxy.test:{proxy_port}")))
            .resolve("proxy.test", proxy_port, [ip("127.0.0.1")])
            .resolve("origin.test", port, [ip("127.0.0.1")]);
        let pool = ClientPool::new(config.build()).unwrap();
        let url = format!("http://origin.test:{port}/p");
        let r = pool.checkout().unwrap().get(&url).send().unwrap();
        // The proxy was handed the name (as curl does) and refuses targets it cannot reach.
        assert_eq!(r.status(), 403);
        r.bytes().unwrap();
        let seen = proxy.requests();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].line, format!("GET {url} HTTP/1.1"));
        assert_eq!(target.connections_accepted(), 0);
    });
}
