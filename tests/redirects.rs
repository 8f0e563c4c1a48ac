//! Redirects followed by the library, and caller input with CR/LF, over loopback
//! (fault scenarios 15-18, tests/README.md), checked against the servers' request logs.
//!
//! Two `TestServer`s listen on different ports, so they are different origins. Scenario 17
//! (https -> http refused) needs TLS on the first hop; the unit tests of `src/redirect.rs`
//! cover it.

use std::io::Cursor;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_sentinel::{
    retry::Jitter, BreakerConfig, ClientPool, ErrorKind, PoolConfig, PoolConfigBuilder, RetryPolicy,
};

mod support;

use support::scenario;
use support::server::{Behaviour, LoggedRequest, Reply, TestServer};

fn config() -> PoolConfigBuilder {
    PoolConfig::builder()
        .deadline(Duration::from_secs(5))
        .retry(
            RetryPolicy::new()
                .with_base_delay(Duration::from_millis(5))
                .with_jitter(Jitter::None),
        )
        .breaker(BreakerConfig::disabled())
}

fn pool(config: PoolConfigBuilder) -> ClientPool {
    ClientPool::new(config.build()).unwrap()
}

fn redirect(status: u16, location: impl Into<String>) -> Behaviour {
    Behaviour::Redirect {
        status,
        location: location.into(),
    }
}

fn logged(server: &TestServer, path: &str) -> Vec<LoggedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

fn only(server: &TestServer, path: &str) -> LoggedRequest {
    let mut requests = logged(server, path);
    assert_eq!(requests.len(), 1, "{path}: {requests:?}");
    requests.remove(0)
}

// 15. Redirect loops

#[test]
fn redirect_loop_fails_after_the_hop_limit_and_is_not_retried() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/loop", redirect(302, "/loop"))
            .route("/a", redirect(307, "/b"))
            .route("/b", redirect(308, "/a"))
            .route("/ok", Behaviour::Respond(Reply::text(200, "ok")))
            .start();
        let pool = pool(config().max_redirects(5));
        let client = pool.checkout().unwrap();

        let err = client
            .get(&server.url("/loop"))
            .header("x-request-id", "loop")
            .send()
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::TooManyRedirects(5), "{err:?}");
        assert!(err.is_redirect());
        assert_eq!(err.redirects(), 5);
        // The first request and five hops, once: no retry of the chain.
        let sent = logged(&server, "/loop");
        assert_eq!(sent.len(), 6);
        assert!(sent
            .iter()
            .all(|r| r.header("x-request-id") == Some("loop")));

        let err = client.post(&server.url("/a")).body("b").send().unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::TooManyRedirects(5), "{err:?}");
        assert_eq!(server.requests_to("/a") + server.requests_to("/b"), 6);

        let response = client.get(&server.url("/ok")).send().unwrap();
        assert_eq!(response.text().unwrap(), "ok");
    });
}

#[test]
fn max_redirects_zero_returns_the_redirect_as_is() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/loop", redirect(302, "/loop"))
            .start();
        let pool = pool(config().max_redirects(0));
        let response = pool
            .checkout()
            .unwrap()
            .get(&server.url("/loop"))
            .send()
            .unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(response.header("location"), Some("/loop"));
        assert_eq!(server.request_count(), 1);
    });
}

// 16. Credentials and other origins

const SECRETS: [(&str, &str); 5] = [
    ("authorization", "Bearer s3cret-token"),
    ("cookie", "session=s3cret-cookie"),
    ("proxy-authorization", "Basic s3cret-proxy"),
    ("x-api-key", "s3cret-key"),
    ("x-secret", "s3cret-marked-first"),
];

fn assert_no_secrets(request: &LoggedRequest, at: &str) {
    for (name, _) in SECRETS {
        assert_eq!(request.header(name), None, "{name} sent to {at}");
    }
    for (name, value) in &request.headers {
        assert!(!value.contains("s3cret"), "{name}: {value} sent to {at}");
    }
    assert_eq!(
        request.header("x-trace"),
        Some("t-1"),
        "ordinary header lost at {at}"
    );
}

/// Server `a` redirects `/start` to `b`, which redirects back to `a`'s `/back`; both log.
fn two_origins(first: u16, second: u16) -> (TestServer, TestServer) {
    // Each needs the other's address: `b` learns `a`'s once `a` is listening.
    let back = Arc::new(OnceLock::<String>::new());
    let b = {
        let back = back.clone();
        TestServer::builder()
            .route(
                "/hop",
                Behaviour::Handler(Arc::new(move |_: &LoggedRequest| {
                    redirect(second, back.get().cloned().unwrap_or_default())
                })),
            )
            .start()
    };
    let a = TestServer::builder()
        .route("/start", redirect(first, b.url("/hop")))
        .route("/same", redirect(302, "/back"))
        .route("/back", Behaviour::EchoHeaders)
        .start();
    back.set(a.url("/back")).unwrap();
    (a, b)
}

/// The `Host` header lines of a logged request, as received.
fn hosts(request: &LoggedRequest) -> Vec<&str> {
    request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.as_str())
        .collect()
}

#[test]
fn each_hop_carries_one_host_header_naming_its_own_origin_unless_the_caller_set_one() {
    scenario(|| {
        let (a, b) = two_origins(302, 307);
        let (a_host, b_host) = (a.addr().to_string(), b.addr().to_string());
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        // Twice: the second call's hops reuse what the client kept of the first.
        for _ in 0..2 {
            let response = client.get(&a.url("/start")).send().unwrap();
            assert_eq!(response.redirects(), 2);
        }
        for (server, path, host) in [
            (&a, "/start", &a_host),
            (&b, "/hop", &b_host),
            (&a, "/back", &a_host),
        ] {
            let seen = logged(server, path);
            assert_eq!(seen.len(), 2, "{path}: {seen:?}");
            for request in &seen {
                assert_eq!(hosts(request), [host.as_str()], "{path}: {request:?}");
            }
        }
        // A Host the caller set is the only one sent.
        let mut echoed = client
            .get(&a.url("/back"))
            .header("host", "virtual.test")
            .send()
            .unwrap()
            .text()
            .unwrap();
        echoed.retain(|c| c != '\r');
        let lines: Vec<&str> = echoed.lines().filter(|l| l.starts_with("host:")).collect();
        assert_eq!(lines, ["host: virtual.test"], "{echoed}");
    });
}

#[test]
fn credentials_are_not_sent_to_another_origin_nor_restored_when_the_chain_returns() {
    scenario(|| {
        let (a, b) = two_origins(302, 307);
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let mut request = client
            .get(&a.url("/start"))
            .sensitive_header("x-secret")
            .header("x-trace", "t-1");
        for (name, value) in SECRETS {
            request = request.header(name, value);
        }
        let response = request.sensitive_header("x-api-key").send().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.redirects(), 2);
        assert_eq!(response.url().to_string(), a.url("/back"));
        let echoed = response.text().unwrap();
        assert!(!echoed.contains("s3cret"), "{echoed}");

        // The first origin got everything the caller set.
        let start = only(&a, "/start");
        for (name, value) in SECRETS {
            assert_eq!(start.header(name), Some(value), "{name}");
        }
        assert_no_secrets(&only(&b, "/hop"), "the other origin");
        assert_no_secrets(&only(&a, "/back"), "the first origin, later in the chain");
    });
}

#[test]
fn url_credentials_are_not_sent_to_another_origin() {
    scenario(|| {
        let (a, b) = two_origins(301, 302);
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let with_userinfo = a
            .url("/start")
            .replacen("http://", "http://user:pa%20ss@", 1);
        let response = client
            .get(&with_userinfo)
            .header("x-trace", "t-1")
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            !response.url().to_string().contains("user"),
            "{}",
            response.url()
        );
        let _ = response.text().unwrap();

        // "user:pa ss" in base64.
        assert_eq!(
            only(&a, "/start").header("authorization"),
            Some("Basic dXNlcjpwYSBzcw==")
        );
        assert_no_secrets(&only(&b, "/hop"), "the other origin");
        assert_no_secrets(&only(&a, "/back"), "the first origin, later in the chain");
    });
}

#[test]
fn credentials_follow_a_redirect_within_the_same_origin() {
    scenario(|| {
        // The control case: the same headers do reach a same-origin target.
        let (a, _b) = two_origins(302, 302);
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let mut request = client
            .get(&a.url("/same"))
            .sensitive_header("x-secret")
            .header("x-trace", "t-1");
        for (name, value) in SECRETS {
            request = request.header(name, value);
        }
        let response = request.sensitive_header("x-api-key").send().unwrap();
        assert_eq!(response.redirects(), 1);
        let _ = response.text().unwrap();
        let back = only(&a, "/back");
        for (name, value) in SECRETS {
            assert_eq!(back.header(name), Some(value), "{name}");
        }
    });
}

// Methods and bodies across redirects

fn method_server() -> TestServer {
    let mut builder = TestServer::builder().route("/echo", Behaviour::Echo);
    for status in [301, 302, 303, 307, 308] {
        builder = builder.route(&format!("/{status}"), redirect(status, "/echo"));
    }
    builder.start()
}

#[test]
fn see_other_and_friends_turn_into_a_get_without_body() {
    scenario(|| {
        let server = method_server();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        for status in [301, 302, 303] {
            let response = client
                .post(&server.url(&format!("/{status}")))
                .header("content-type", "application/json")
                .body("{\"order\":1}")
                .send()
                .unwrap();
            assert_eq!(response.redirects(), 1, "{status}");
            assert_eq!(response.header("x-echo-method"), Some("GET"), "{status}");
            assert_eq!(response.text().unwrap(), "", "{status}");
        }
        let targets = logged(&server, "/echo");
        assert_eq!(targets.len(), 3);
        for target in &targets {
            assert_eq!(target.method, "GET");
            assert!(target.body.is_empty());
            assert_eq!(target.header("content-type"), None);
            assert!(matches!(target.header("content-length"), None | Some("0")));
            assert_eq!(target.header("transfer-encoding"), None);
        }
        for origin in logged(&server, "/301")
            .iter()
            .chain(&logged(&server, "/302"))
            .chain(&logged(&server, "/303"))
        {
            assert_eq!(origin.method, "POST");
            assert_eq!(origin.body, b"{\"order\":1}");
        }
    });
}

#[test]
fn temporary_and_permanent_redirects_resend_method_and_body() {
    scenario(|| {
        let server = method_server();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        for (status, method) in [(307, "POST"), (308, "POST"), (307, "PUT"), (308, "DELETE")] {
            let response = client
                .request(method, &server.url(&format!("/{status}")))
                .header("content-type", "text/plain")
                .body(format!("{method} body via {status}"))
                .send()
                .unwrap();
            assert_eq!(response.redirects(), 1, "{status}");
            assert_eq!(response.header("x-echo-method"), Some(method), "{status}");
            assert_eq!(response.header("content-type"), Some("text/plain"));
            assert_eq!(
                response.text().unwrap(),
                format!("{method} body via {status}")
            );
        }
        assert_eq!(server.requests_to("/echo"), 4);
    });
}

#[test]
fn streamed_body_and_a_307_is_a_clear_error_and_nothing_is_resent() {
    scenario(|| {
        let server = method_server();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        for status in [307, 308] {
            let err = client
                .post(&server.url(&format!("/{status}")))
                .body_reader(Cursor::new(b"streamed once".to_vec()))
                .send()
                .unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::RedirectRefused(why) if why.contains("streamed")),
                "{err:?}"
            );
            assert!(err.is_redirect());
            assert_eq!(only(&server, &format!("/{status}")).body, b"streamed once");
        }
        assert_eq!(server.requests_to("/echo"), 0);

        // A 303 drops the body anyway, so a streamed request may follow it.
        let response = client
            .post(&server.url("/303"))
            .body_reader(Cursor::new(b"streamed once".to_vec()))
            .send()
            .unwrap();
        assert_eq!(response.header("x-echo-method"), Some("GET"));
        assert_eq!(response.text().unwrap(), "");
    });
}

// 24. Response headers summed over a redirect chain

/// A 302 to `next` whose head carries `pad` bytes of padding header, sent raw (FIN close).
fn padded_redirect(next: &str, pad: usize) -> Behaviour {
    Behaviour::Raw(
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {next}\r\nX-Pad: {}\r\nContent-Length: 0\r\n\r\n",
            "p".repeat(pad)
        )
        .into_bytes(),
    )
}

fn padded_chain(hops: usize, pad: usize) -> TestServer {
    let mut builder = TestServer::builder().route(
        &format!("/hop/{hops}"),
        Behaviour::Respond(Reply::text(200, "end")),
    );
    for i in 0..hops {
        builder = builder.route(
            &format!("/hop/{i}"),
            padded_redirect(&format!("/hop/{}", i + 1), pad),
        );
    }
    builder.start()
}

#[test]
fn a_redirect_chain_whose_headers_add_up_past_the_limit_fails_with_header_too_large() {
    scenario(|| {
        // Nine hops of 50 KiB each: every response is under the 64 KiB limit on its own.
        let server = padded_chain(9, 50 * 1024);
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let err = client.get(&server.url("/hop/0")).send().unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::HeaderTooLarge(64 * 1024), "{err:?}");
        // The second 50 KiB head takes the chain past 64 KiB: nothing after it was requested.
        let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/hop/0", "/hop/1"]);

        // The limit is a total: small heads over the same nine hops are followed to the end.
        let small = padded_chain(9, 1024);
        let response = client.get(&small.url("/hop/0")).send().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().unwrap(), "end");
        assert_eq!(small.request_count(), 10);
    });
}

#[test]
fn the_final_response_counts_towards_the_chain_total() {
    scenario(|| {
        // One 40 KiB redirect, then a 40 KiB final response: 80 KiB in all.
        let end = "HTTP/1.1 200 OK\r\nX-Pad: {pad}\r\nContent-Length: 2\r\n\r\nok"
            .replace("{pad}", &"q".repeat(40 * 1024));
        let server = TestServer::builder()
            .route("/start", padded_redirect("/end", 40 * 1024))
            .route("/end", Behaviour::Raw(end.into_bytes()))
            .start();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let err = client.get(&server.url("/start")).send().unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::HeaderTooLarge(_)),
            "{err:?}"
        );
        assert_eq!(server.requests_to("/end"), 1);
        // The same final response without a redirect before it is within the limit.
        let response = client.get(&server.url("/end")).send().unwrap();
        assert_eq!(response.text().unwrap(), "ok");
    });
}

// Two `Location`s in one redirect

#[test]
fn two_location_headers_are_refused_and_neither_is_followed() {
    scenario(|| {
        let two = |a: &str, b: &str| {
            Behaviour::Raw(
                format!(
                    "HTTP/1.1 302 Found\r\nLocation: {a}\r\nLocation: {b}\r\nContent-Length: 0\r\n\r\n"
                )
                .into_bytes(),
            )
        };
        let server = TestServer::builder()
            .route("/different", two("/a", "/b"))
            .route("/same", two("/a", "/a"))
            .route("/one", redirect(302, "/a"))
            .fallback(Behaviour::Respond(Reply::text(200, "target")))
            .start();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        for path in ["/different", "/same"] {
            let err = client.get(&server.url(path)).send().unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::RedirectRefused(why) if why.contains("more than one Location")),
                "{path}: {err:?}"
            );
            assert_eq!(server.requests_to(path), 1, "{path}: not retried");
        }
        assert_eq!(server.requests_to("/a"), 0);
        assert_eq!(server.requests_to("/b"), 0);
        // Control: one Location is followed.
        let response = client.get(&server.url("/one")).send().unwrap();
        assert_eq!(response.text().unwrap(), "target");
        assert_eq!(server.requests_to("/a"), 1);
    });
}

// 18. CR/LF and other control characters from the caller

#[test]
fn header_or_url_with_cr_lf_is_rejected_before_anything_is_sent() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::EchoHeaders)
            .start();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let url = server.url("/p");

        // Header values may be credentials: their errors must not echo them.
        let values = [
            client.get(&url).header("x-note", "a\r\nX-Injected: 1"),
            client.get(&url).header("x-note", "a\nX-Injected: 1"),
            client.get(&url).header("x-note", "a\rX-Injected: 1"),
            client.get(&url).header("x-note", "nul\0X-Injected"),
            client
                .get(&url)
                .header("authorization", "Bearer t\r\nX-Injected: 1"),
        ];
        let others = [
            client.get(&url).header("x-a\r\nX-Injected", "1"),
            client.get(&format!("{url}\r\nX-Injected: 1")),
            client.get(&format!("{url}?q=a\r\nX-Injected: 1")),
            client.get(&format!("{url} HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /")),
            client.get(&url.replace("/p", "/p\nX-Injected: 1")),
        ];
        let value_count = values.len();
        for (i, request) in values.into_iter().chain(others).enumerate() {
            let err = request.send().unwrap_err();
            assert!(err.is_invalid_request(), "{i}: {err:?}");
            assert_eq!(err.attempts(), 0, "{i}");
            let shown = err.to_string();
            assert!(!shown.contains(['\r', '\n', '\0']), "{i}: {shown:?}");
            if i < value_count {
                assert!(!shown.contains("Injected"), "{i}: {shown}");
            }
        }
        assert_eq!(server.request_count(), 0);
        assert_eq!(server.connections_accepted(), 0);

        // A query value is data, not syntax: it is percent-encoded, not rejected.
        let response = client
            .get(&url)
            .query("q", "a\r\nX-Injected: 1")
            .send()
            .unwrap();
        let echoed = response.text().unwrap();
        assert!(
            !echoed.to_ascii_lowercase().contains("x-injected"),
            "{echoed}"
        );
        let sent = only(&server, "/p");
        assert_eq!(sent.query.as_deref(), Some("q=a%0D%0AX-Injected%3A%201"));
        assert_eq!(sent.header("x-injected"), None);
    });
}
