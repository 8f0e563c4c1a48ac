//! Request helpers (`bearer_auth`, `basic_auth`, `query_pairs`, `form`) and the pool's
//! default headers, checked against the loopback test server's request log.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_sentinel::{
    retry::Jitter, BreakerConfig, ClientPool, PoolConfig, PoolConfigBuilder, RetryPolicy,
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

fn only(server: &TestServer, path: &str) -> LoggedRequest {
    let mut requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect();
    assert_eq!(requests.len(), 1, "{path}: {requests:?}");
    requests.remove(0)
}

fn echo_server() -> TestServer {
    TestServer::builder()
        .route("/echo", Behaviour::Echo)
        .route("/headers", Behaviour::EchoHeaders)
        .start()
}

#[test]
fn bearer_and_basic_credentials_reach_the_server_exactly() {
    scenario(|| {
        let server = echo_server();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        // "alice:hunter2" and "alice:" in base64; the last Authorization set wins, URL
        // credentials included.
        let expected = [
            "Bearer sk-s3cret",
            "Basic YWxpY2U6aHVudGVyMg==",
            "Basic YWxpY2U6",
            "Bearer second",
        ];
        for (i, expected) in expected.iter().enumerate() {
            let path = format!("/headers?case={i}");
            let url = server.url(&path);
            let request = match i {
                0 => client.get(&url).bearer_auth("sk-s3cret"),
                1 => client.get(&url).basic_auth("alice", Some("hunter2")),
                2 => client.get(&url).basic_auth("alice", None::<&str>),
                _ => client
                    .get(&url.replacen("http://", "http://u:p@", 1))
                    .header("authorization", "Basic first")
                    .bearer_auth("second"),
            };
            let _ = request.send().unwrap().text().unwrap();
            let sent = server.requests().pop().unwrap();
            let all: Vec<_> = sent
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                .collect();
            assert_eq!(all.len(), 1, "case {i}: {:?}", sent.headers);
            assert_eq!(sent.header("authorization"), Some(*expected), "case {i}");
        }
    });
}

/// Server `a` redirects `/start` to `b`, which redirects back to `a`'s `/back`.
fn two_origins() -> (TestServer, TestServer) {
    let back = Arc::new(OnceLock::<String>::new());
    let b = {
        let back = back.clone();
        TestServer::builder()
            .route(
                "/hop",
                Behaviour::Handler(Arc::new(move |_: &LoggedRequest| Behaviour::Redirect {
                    status: 307,
                    location: back.get().cloned().unwrap_or_default(),
                })),
            )
            .start()
    };
    let a = TestServer::builder()
        .route(
            "/start",
            Behaviour::Redirect {
                status: 302,
                location: b.url("/hop"),
            },
        )
        .route("/back", Behaviour::EchoHeaders)
        .start();
    back.set(a.url("/back")).unwrap();
    (a, b)
}

fn assert_no_secret(request: &LoggedRequest, at: &str) {
    assert_eq!(request.header("authorization"), None, "sent to {at}");
    assert_eq!(request.header("x-api-key"), None, "sent to {at}");
    for (name, value) in &request.headers {
        assert!(!value.contains("s3cret"), "{name}: {value} sent to {at}");
    }
    assert_eq!(request.header("x-tenant"), Some("acme"), "lost at {at}");
}

#[test]
fn helper_and_default_credentials_are_dropped_on_a_cross_origin_redirect() {
    scenario(|| {
        let pool = pool(
            config()
                .default_header("x-tenant", "acme")
                .default_sensitive_header("x-api-key", "s3cret-key"),
        );
        let client = pool.checkout().unwrap();
        for expected in ["Bearer s3cret-token", "Basic YWxpY2U6czNjcmV0LXB3"] {
            let (a, b) = two_origins();
            let request = client.get(&a.url("/start"));
            let request = match expected.starts_with("Bearer") {
                true => request.bearer_auth("s3cret-token"),
                false => request.basic_auth("alice", Some("s3cret-pw")),
            };
            let response = request.send().unwrap();
            assert_eq!(response.redirects(), 2);
            let echoed = response.text().unwrap();
            assert!(!echoed.contains("s3cret"), "{echoed}");
            let start = only(&a, "/start");
            assert_eq!(start.header("authorization"), Some(expected));
            assert_eq!(start.header("x-api-key"), Some("s3cret-key"));
            assert_no_secret(&only(&b, "/hop"), "the other origin");
            assert_no_secret(&only(&a, "/back"), "the first origin, later in the chain");
        }
    });
}

#[test]
fn credentials_never_appear_in_debug_or_errors() {
    scenario(|| {
        let config = config()
            .retry(RetryPolicy::none())
            .default_sensitive_header("x-api-key", "s3cret-key")
            .default_header("authorization", "Bearer s3cret-default");
        let shown = format!("{config:?} {:?}", config.clone().build());
        assert!(!shown.contains("s3cret"), "{shown}");
        let pool = pool(config);
        let client = pool.checkout().unwrap();
        // A port nothing listens on: the call fails with a connect error.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}/private");
        for request in [
            client.get(&url).bearer_auth("s3cret-token"),
            client.get(&url).basic_auth("alice", Some("s3cret-pw")),
        ] {
            let debug = format!("{request:?}");
            assert!(!debug.contains("s3cret"), "{debug}");
            // base64 of "alice:s3cret-pw" starts with this.
            assert!(!debug.contains("YWxpY2U6czNjcmV0"), "{debug}");
            let err = request.send().unwrap_err();
            assert!(err.is_connect(), "{err:?}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(!shown.contains("YWxpY2U6czNjcmV0"), "{shown}");
        }
        // A token that could never be sent is refused without being echoed.
        let err = client
            .get(&url)
            .bearer_auth("s3cret\r\nx-injected: 1")
            .send()
            .unwrap_err();
        assert!(err.is_invalid_request(), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
    });
}

#[test]
fn form_body_and_content_type_are_exact_and_retried() {
    scenario(|| {
        let server = TestServer::builder()
            .route(
                "/token",
                Behaviour::Sequence(vec![
                    Behaviour::Respond(Reply::text(503, "busy")),
                    Behaviour::Echo,
                ]),
            )
            .start();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let response = client
            .post(&server.url("/token"))
            // A POST is retried only with an idempotency key.
            .header("idempotency-key", "token-1")
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "read write"),
                ("x", "a&b=c/é"),
            ])
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        let expected = "grant_type=client_credentials&scope=read+write&x=a%26b%3Dc%2F%C3%A9";
        assert_eq!(response.text().unwrap(), expected);
        let sent = server.requests();
        assert_eq!(sent.len(), 2, "{sent:?}");
        for request in sent {
            assert_eq!(request.body, expected.as_bytes());
            assert_eq!(
                request.header("content-type"),
                Some("application/x-www-form-urlencoded")
            );
            assert_eq!(
                request.header("content-length"),
                Some(expected.len().to_string().as_str())
            );
        }
    });
}

#[test]
fn query_pairs_are_percent_encoded_in_order_after_the_url_query() {
    scenario(|| {
        let server = echo_server();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let owned = vec![("lang".to_owned(), "en-GB".to_owned())];
        let response = client
            .get(&server.url("/echo?page=2"))
            .query_pairs([("q", "a b&c"), ("k/1", "é~")])
            .query_pairs(owned)
            .query("last", "1")
            .send()
            .unwrap();
        let _ = response.text().unwrap();
        assert_eq!(
            only(&server, "/echo").query.as_deref(),
            Some("page=2&q=a%20b%26c&k%2F1=%C3%A9~&lang=en-GB&last=1")
        );
    });
}

#[test]
fn default_headers_are_sent_and_overridden_per_request() {
    scenario(|| {
        let server = echo_server();
        let pool = pool(
            config()
                .default_header("accept", "application/json")
                .default_header("x-tenant", "acme")
                .default_header("x-tenant", "acme-eu")
                .default_sensitive_header("x-api-key", "key-1"),
        );
        let client = pool.checkout().unwrap();
        let _ = client.get(&server.url("/headers")).send().unwrap().text();
        let plain = server.requests().pop().unwrap();
        assert_eq!(plain.header("accept"), Some("application/json"));
        assert_eq!(plain.header("x-api-key"), Some("key-1"));
        let tenants: Vec<_> = plain
            .headers
            .iter()
            .filter(|(n, _)| n == "x-tenant")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(tenants, ["acme", "acme-eu"]);

        let _ = client
            .get(&server.url("/headers"))
            .header("accept", "text/csv")
            .header("x-tenant", "other")
            .send()
            .unwrap()
            .text();
        let overridden = server.requests().pop().unwrap();
        let names = |name: &str| -> Vec<String> {
            overridden
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .collect()
        };
        assert_eq!(names("accept"), ["text/csv"]);
        assert_eq!(names("x-tenant"), ["other"]);
        assert_eq!(names("x-api-key"), ["key-1"]);
    });
}

#[test]
#[should_panic(expected = "not a valid header value")]
fn a_default_header_with_a_newline_panics_without_echoing_the_value() {
    // Inside a scenario like the others: the panic (and, with RUST_BACKTRACE set, the binary
    // it opens to name the frames) must not fall within another scenario's descriptor count.
    scenario(|| {
        let _ = PoolConfig::builder().default_header("x-a", "s3cret\r\nx-b: 1");
    });
}

#[test]
fn a_url_given_again_is_sent_as_given_whatever_each_request_adds() {
    scenario(|| {
        let (a, b) = (echo_server(), echo_server());
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let url = a.url("/echo?api_key=s3cret");
        let get = |request: http_sentinel::RequestBuilder<'_>| {
            let response = request.send().unwrap();
            let shown = response.url().to_string();
            let _ = response.text().unwrap();
            shown
        };
        // The same string each time: the first request parses it, the others reuse the parse.
        assert!(get(client.get(&url)).ends_with("/echo?api_key=s3cret"));
        let shown = get(client.get(&url).sensitive_query("api_key"));
        assert!(shown.ends_with("/echo?api_key=***"), "{shown}");
        assert!(get(client.get(&url).query("page", "2")).ends_with("&page=2"));
        // Userinfo is not remembered: it becomes `Authorization` every time, and only then.
        let with_user = url.replacen("http://", "http://alice:pw@", 1);
        for _ in 0..2 {
            assert!(!get(client.get(&with_user)).contains("alice"));
        }
        let _ = get(client.get(&url));
        // A request built before another URL was sent still goes where it was told.
        let held = client.get(&url);
        let _ = get(client.get(&b.url("/echo")));
        let _ = get(held);
        let seen: Vec<_> = a
            .requests()
            .into_iter()
            .map(|r| {
                let auth = r.header("authorization").is_some();
                (r.query.unwrap_or_default(), auth)
            })
            .collect();
        let plain = ("api_key=s3cret".to_owned(), false);
        let expected = [
            plain.clone(),
            plain.clone(),
            ("api_key=s3cret&page=2".to_owned(), false),
            ("api_key=s3cret".to_owned(), true),
            ("api_key=s3cret".to_owned(), true),
            plain.clone(),
            plain,
        ];
        assert_eq!(seen, expected);
        assert_eq!(b.requests().len(), 1);
    });
}
