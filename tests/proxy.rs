//! Proxies over loopback (fault scenario 26, tests/README.md): a configured proxy is used or
//! the pool refuses to build; nothing ever connects directly around it. Checked on what
//! reached the wire: the proxy's log of request lines (or SOCKS handshakes) and the target
//! server's connection count.
//!
//! `Proxy::FromEnv` tests change the process environment; every test runs inside
//! `support::scenario`, which serialises the tests of this binary.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use http_sentinel::error::ConnectFailure;
use http_sentinel::{ClientPool, ErrorKind, PoolConfig, Proxy};

mod support;

use support::proxy::ForwardProxy;
use support::scenario;
use support::server::{Behaviour, Reply, TestServer};

const PROXY_VARS: [&str; 8] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

fn clear_env() {
    for v in PROXY_VARS {
        std::env::remove_var(v);
    }
}

fn target() -> TestServer {
    TestServer::builder()
        .fallback(Behaviour::Respond(Reply::text(200, "through")))
        .start()
}

fn pool_with(proxy: Proxy) -> ClientPool {
    ClientPool::new(
        support::config(Duration::from_secs(5))
            .proxy(proxy)
            .max_clients(2)
            .build(),
    )
    .unwrap()
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn an_http_target_is_forwarded_in_absolute_form_with_proxy_authorization_and_no_connect() {
    scenario(|| {
        let target = target();
        let proxy = ForwardProxy::start(403);
        // `%20` in the password: decoded once, as ureq and curl do.
        let pool = pool_with(Proxy::Url(proxy.url(Some("user:pa%20ss"))));
        let client = pool.checkout().unwrap();
        let url = target.url("/p?q=1");
        let response = client.get(&url).send().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().unwrap(), "through");

        let seen = proxy.requests();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].line, format!("GET {url} HTTP/1.1"));
        assert!(
            seen.iter().all(|r| !r.line.starts_with("CONNECT")),
            "{seen:?}"
        );
        // base64("user:pa ss")
        assert_eq!(
            seen[0].header("proxy-authorization"),
            Some("Basic dXNlcjpwYSBzcw==")
        );
        assert_eq!(
            seen[0].header("host"),
            Some(target.addr().to_string().as_str())
        );
        // The target was reached through the proxy only, over one connection (to the proxy).
        assert_eq!(target.connections_accepted(), 1);
        assert_eq!(proxy.connections_accepted(), 1);
        assert_eq!(client.connections_opened(), 1);
        assert_eq!(target.requests()[0].path, "/p");

        // Every request on the proxy connection is rewritten, not only the first: the proxy
        // closes after each response, so the next one arrives on a new connection.
        let response = client
            .post(&target.url("/second"))
            .body("b")
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        let seen = proxy.requests();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(
            seen[1].line,
            format!("POST {} HTTP/1.1", target.url("/second"))
        );
        assert_eq!(target.requests()[1].body, b"b");
    });
}

#[test]
fn without_credentials_no_proxy_authorization_is_sent() {
    scenario(|| {
        let target = target();
        let proxy = ForwardProxy::start(403);
        let pool = pool_with(Proxy::Url(proxy.url(None)));
        let client = pool.checkout().unwrap();
        client.get(&target.url("/")).send().unwrap();
        let seen = proxy.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].header("proxy-authorization"), None);
    });
}

#[test]
fn an_https_target_goes_through_connect_and_a_refused_tunnel_never_goes_direct() {
    scenario(|| {
        let target = target();
        let proxy = ForwardProxy::start(403);
        let pool = pool_with(Proxy::Url(proxy.url(Some("user:hunter2"))));
        let client = pool.checkout().unwrap();
        let url = format!("https://{}/secure", target.addr());
        let err = client.get(&url).send().unwrap_err();
        let seen = proxy.requests();
        assert!(!seen.is_empty());
        assert!(
            seen.iter()
                .all(|r| r.line == format!("CONNECT {} HTTP/1.1", target.addr())),
            "{seen:?}"
        );
        assert_eq!(target.connections_accepted(), 0, "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    });
}

#[test]
fn with_the_proxy_down_the_call_fails_and_the_target_sees_no_connection() {
    scenario(|| {
        let target = target();
        let url = format!("http://user:hunter2@127.0.0.1:{}", closed_port());
        let pool = pool_with(Proxy::Url(url));
        let client = pool.checkout().unwrap();
        for target_url in [target.url("/"), format!("https://{}/", target.addr())] {
            let started = Instant::now();
            let err = client.get(&target_url).send().unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(3), "{err:?}");
            assert!(
                matches!(err.kind(), ErrorKind::Connect(ConnectFailure::Refused)),
                "{target_url}: {err:?}"
            );
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(target.connections_accepted(), 0);
    });
}

#[test]
fn no_proxy_cidr_blocks_send_ip_literal_targets_direct_and_the_env_is_read_per_client() {
    scenario(|| {
        clear_env();
        let target = target();
        let proxy = ForwardProxy::start(403);
        std::env::set_var("HTTP_PROXY", proxy.url(None));
        std::env::set_var("NO_PROXY", "10.0.0.0/8, example.test");
        let pool = pool_with(Proxy::FromEnv);
        let first = pool.checkout().unwrap();
        first.get(&target.url("/via-proxy")).send().unwrap();
        assert_eq!(proxy.requests().len(), 1);

        // A client created after the change reads the new NO_PROXY; the first keeps its own.
        std::env::set_var("NO_PROXY", "127.0.0.0/8,::1/128");
        let second = pool.checkout().unwrap();
        let response = second.get(&target.url("/direct")).send().unwrap();
        assert_eq!(response.text().unwrap(), "through");
        assert_eq!(proxy.requests().len(), 1, "the second client went direct");
        assert_eq!(target.requests_to("/direct"), 1);
        first.get(&target.url("/via-proxy")).send().unwrap();
        assert_eq!(proxy.requests().len(), 2);
        clear_env();
    });
}

#[test]
fn a_password_in_the_proxy_url_never_shows_in_debug_output() {
    scenario(|| {
        let pool = pool_with(Proxy::Url("http://user:hunter2@127.0.0.1:3128".into()));
        let shown = format!("{:?} {:?}", pool.config(), pool.config().proxy());
        assert!(!shown.contains("hunter2"), "{shown}");
        let err = ClientPool::new(
            PoolConfig::builder()
                .proxy(Proxy::Url("ftp://user:hunter2@127.0.0.1:21".into()))
                .build(),
        )
        .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::InvalidConfig(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    });
}

#[cfg(not(feature = "socks"))]
#[test]
fn without_the_socks_feature_a_socks_proxy_is_refused_at_build_and_never_bypassed() {
    scenario(|| {
        clear_env();
        let target = target();
        for scheme in ["socks4", "socks4a", "socks5", "socks5h"] {
            let url = format!("{scheme}://user:hunter2@127.0.0.1:1080");
            let err =
                ClientPool::new(PoolConfig::builder().proxy(Proxy::Url(url)).build()).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::InvalidConfig(_)), "{err:?}");
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("socks"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
            for var in ["ALL_PROXY", "HTTPS_PROXY", "http_proxy"] {
                std::env::set_var(var, format!("{scheme}://127.0.0.1:1080"));
                let err = ClientPool::new(PoolConfig::builder().proxy(Proxy::FromEnv).build())
                    .unwrap_err();
                assert!(
                    matches!(err.kind(), ErrorKind::InvalidConfig(_)),
                    "{var}: {err:?}"
                );
                std::env::remove_var(var);
            }
        }
        // The environment changes after the pool was built: the new client refuses to send.
        let pool = pool_with(Proxy::FromEnv);
        std::env::set_var("ALL_PROXY", "socks5h://127.0.0.1:1080");
        let client = pool.checkout().unwrap();
        let err = client.get(&target.url("/")).send().unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::InvalidConfig(_)), "{err:?}");
        assert_eq!(target.connections_accepted(), 0);
        clear_env();
    });
}

#[cfg(feature = "socks")]
mod socks {
    use super::*;
    use support::socks::Socks5Server;

    #[test]
    fn a_socks5_proxy_without_auth_carries_the_request_to_the_target() {
        scenario(|| {
            let target = target();
            let socks = Socks5Server::start(None);
            let pool = pool_with(Proxy::Url(format!("socks5://{}", socks.addr())));
            let client = pool.checkout().unwrap();
            let response = client.get(&target.url("/s")).send().unwrap();
            assert_eq!(response.text().unwrap(), "through");
            let seen = socks.handshakes();
            assert_eq!(seen.len(), 1, "{seen:?}");
            assert_eq!(seen[0].target, target.addr().to_string());
            assert_eq!(seen[0].credentials, None);
            assert_eq!(target.connections_accepted(), 1);
            assert_eq!(target.requests_to("/s"), 1);
            assert_eq!(client.connections_opened(), 1);
        });
    }

    #[test]
    fn a_socks5h_proxy_with_a_password_gets_the_credentials_and_the_target() {
        scenario(|| {
            let target = target();
            let socks = Socks5Server::start(Some(("user", "hunter2")));
            let url = format!("socks5h://user:hunter2@{}", socks.addr());
            let pool = pool_with(Proxy::Url(url));
            let client = pool.checkout().unwrap();
            let response = client.get(&target.url("/s")).send().unwrap();
            assert_eq!(response.text().unwrap(), "through");
            let seen = socks.handshakes();
            assert_eq!(seen.len(), 1, "{seen:?}");
            assert_eq!(
                seen[0].credentials,
                Some(("user".to_string(), "hunter2".to_string()))
            );
            assert_eq!(seen[0].target, target.addr().to_string());
            assert_eq!(target.connections_accepted(), 1);

            // Wrong credentials: refused by the proxy, and nothing goes direct.
            let url = format!("socks5://user:wrong@{}", socks.addr());
            let pool = pool_with(Proxy::Url(url));
            let client = pool.checkout().unwrap();
            let err = client.get(&target.url("/s")).send().unwrap_err();
            assert!(!format!("{err} {err:?}").contains("wrong"), "{err:?}");
            assert_eq!(target.connections_accepted(), 1);
        });
    }

    #[test]
    fn a_large_response_head_through_socks_is_read_up_to_the_header_limit() {
        scenario(|| {
            let big = Reply::text(200, "big").header("x-pad", "p".repeat(20 * 1024));
            let target = TestServer::builder()
                .route("/big", Behaviour::Respond(big))
                .start();
            let socks = Socks5Server::start(None);
            let pool = pool_with(Proxy::Url(format!("socks5://{}", socks.addr())));
            let client = pool.checkout().unwrap();
            // 20 KiB: over the 8 KiB initial buffer, under the 64 KiB limit.
            let response = client.get(&target.url("/big")).send().unwrap();
            assert_eq!(response.header("x-pad").map(str::len), Some(20 * 1024));
            assert_eq!(response.text().unwrap(), "big");
            assert_eq!(socks.handshakes().len(), 1);
        });
    }

    #[test]
    fn with_the_socks_proxy_down_the_call_fails_and_nothing_goes_direct() {
        scenario(|| {
            let target = target();
            for scheme in ["socks5", "socks5h", "socks4", "socks4a"] {
                let url = format!("{scheme}://127.0.0.1:{}", closed_port());
                let pool = pool_with(Proxy::Url(url));
                let client = pool.checkout().unwrap();
                let started = Instant::now();
                let err = client.get(&target.url("/")).send().unwrap_err();
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "{scheme}: {err:?}"
                );
            }
            assert_eq!(target.connections_accepted(), 0);
        });
    }
}

// Secrets pass through the proxy for real, and the response's `Set-Cookie` comes back whole:
// the proxy's own leg runs through the connector again, and must not hide the head a second
// time (that would hand the caller the blanked value).
#[test]
fn through_a_forward_proxy_secrets_are_sent_and_set_cookie_comes_back_real() {
    scenario(|| {
        let target = TestServer::builder()
            .fallback(Behaviour::Respond(
                Reply::text(200, "ok").header("Set-Cookie", "sid=s3cr3t-cookie; HttpOnly"),
            ))
            .start();
        let proxy = ForwardProxy::start(403);
        let pool = pool_with(Proxy::Url(proxy.url(None)));
        let client = pool.checkout().unwrap();
        let response = client
            .get(&target.url("/login?key=q-secret"))
            .header("Authorization", "Bearer tok-123")
            .sensitive_query("key")
            .send()
            .unwrap();
        assert_eq!(
            response.header("set-cookie"),
            Some("sid=s3cr3t-cookie; HttpOnly")
        );
        let seen = proxy.requests();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(
            seen[0].line,
            format!("GET {} HTTP/1.1", target.url("/login?key=q-secret"))
        );
        assert_eq!(seen[0].header("authorization"), Some("Bearer tok-123"));
        assert_eq!(
            target.requests()[0].header("authorization"),
            Some("Bearer tok-123")
        );
    });
}
