//! Connection reuse, framing, limits and time faults over loopback (fault scenarios 1-10,
//! tests/README.md), checked against the server's request log.
//!
//! Every test runs through [`scenario`], which serialises the tests of this file and checks
//! that the process has as many open file descriptors afterwards as before: a fault must not
//! leak a socket. Each test also sends a normal request on the same client after the fault.

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use http_sentinel::{
    error::ConnectFailure, error::TimeoutPhase, retry::Jitter, BreakerConfig, Client, ErrorKind,
    PoolConfigBuilder, RetryPolicy,
};

mod support;

use support::server::{Behaviour, ChunkFault, LoggedRequest, Reply, TestServer};
use support::{fast, pool, scenario};

/// Slack allowed past a deadline: scheduling, not a performance target.
const MARGIN: Duration = Duration::from_millis(1500);

fn config() -> PoolConfigBuilder {
    support::config(Duration::from_secs(5))
}

/// A server with `path` behaving as given and `/ok` answering 200 "ok".
fn server(path: &str, behaviour: Behaviour) -> TestServer {
    TestServer::builder()
        .route(path, behaviour)
        .route("/ok", Behaviour::Respond(Reply::text(200, "ok")))
        .start()
}

fn assert_next_request_succeeds(client: &Client, server: &TestServer) {
    let response = client.get(&server.url("/ok")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "ok");
}

/// The logged requests that carried `X-Request-Id: id`.
fn with_id(server: &TestServer, id: &str) -> Vec<LoggedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.header("x-request-id") == Some(id))
        .collect()
}

fn is_io(kind: &ErrorKind, want: std::io::ErrorKind) -> bool {
    matches!(kind, ErrorKind::Io { kind, may_have_been_processed: true } if *kind == want)
}

// 1. Connection reuse

#[test]
fn idle_connection_closed_by_the_server_is_replaced_by_a_new_one() {
    scenario(|| {
        // The response leaves the connection looking reusable, then the server closes it.
        let server = server("/", Behaviour::CloseAfter(Reply::text(200, "first")));
        let pool = pool(config().retry(RetryPolicy::none()));
        let client = pool.checkout().unwrap();

        let first = client.get(&server.url("/")).send().unwrap();
        assert_eq!(first.text().unwrap(), "first");

        let second = client.get(&server.url("/ok")).send().unwrap();
        assert_eq!(second.attempts(), 1);
        assert_eq!(second.text().unwrap(), "ok");
        assert_eq!(server.connections_accepted(), 2);
        assert_eq!(client.connections_opened(), 2);
        let log = server.requests();
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!((log[1].connection, log[1].index_on_connection), (2, 1));
    });
}

// 2. A reused connection closed after the request was read: idempotent requests replayed

#[test]
fn idempotent_request_on_a_reused_connection_closed_without_response_is_replayed_once() {
    scenario(|| {
        // Every connection's second request is read and answered with a close: each call
        // below goes out on the pooled connection of the call before, dies there, and must
        // be replayed on a fresh connection, where it is the first request and succeeds.
        let server = TestServer::builder()
            .fallback(Behaviour::CloseOnNthOfConnection {
                n: 2,
                otherwise: Reply::text(200, "ok"),
            })
            .start();
        // A budget that allows no retry at all: the replay must not need one.
        let no_budget = fast().with_budget_ratio(0.0).with_budget_min_per_sec(0);
        let pool = pool(config().retry(no_budget));
        let client = pool.checkout().unwrap();
        let url = server.url("/r");
        assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "ok");

        let calls: [(&str, Option<&str>); 7] = [
            ("GET", None),
            ("HEAD", None),
            ("PUT", Some("put-body")),
            ("DELETE", None),
            ("OPTIONS", None),
            ("TRACE", None),
            ("POST", Some("keyed-post-body")),
        ];
        for (i, (method, body)) in calls.iter().enumerate() {
            let id = format!("call-{i}");
            let mut request = client.request(method, &url).header("x-request-id", &id);
            if *method == "POST" {
                request = request.header("idempotency-key", "key-1");
            }
            if let Some(body) = body {
                request = request.body(*body);
            }
            let response = request.send().unwrap_or_else(|e| panic!("{method}: {e:?}"));
            assert_eq!(response.status(), 200, "{method}");
            assert_eq!(
                response.attempts(),
                1,
                "{method}: a replay is not an attempt"
            );
            let _ = response.bytes().unwrap();

            let sent = with_id(&server, &id);
            assert_eq!(
                sent.len(),
                2,
                "{method}: sent once, replayed once: {sent:?}"
            );
            assert_eq!(
                sent[0].index_on_connection, 2,
                "{method}: first on a reused one"
            );
            assert_eq!(
                sent[1].index_on_connection, 1,
                "{method}: replay on a fresh one"
            );
            assert_ne!(sent[0].connection, sent[1].connection);
            for request in &sent {
                assert_eq!(request.method, *method);
                assert_eq!(
                    request.body,
                    body.unwrap_or_default().as_bytes(),
                    "{method}"
                );
            }
        }
        let stats = pool.stats();
        assert_eq!(stats.stale_replays(), calls.len() as u64);
        assert_eq!(stats.retries(), 0);
        assert_eq!(stats.retries_refused(), 0);
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn reset_on_a_reused_connection_before_any_response_byte_is_replayed_once() {
    scenario(|| {
        let server = server(
            "/r",
            Behaviour::Sequence(vec![
                Behaviour::Respond(Reply::text(200, "first")),
                Behaviour::ResetBeforeResponse,
                Behaviour::Respond(Reply::text(200, "replayed")),
            ]),
        );
        let pool = pool(config().retry(RetryPolicy::none()));
        let client = pool.checkout().unwrap();
        let url = server.url("/r");
        assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "first");

        let response = client.get(&url).header("x-request-id", "b").send().unwrap();
        assert_eq!(response.attempts(), 1);
        assert_eq!(response.text().unwrap(), "replayed");
        let sent = with_id(&server, "b");
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!((sent[0].connection, sent[0].index_on_connection), (1, 2));
        assert_eq!((sent[1].connection, sent[1].index_on_connection), (2, 1));
        assert_eq!(pool.stats().stale_replays(), 1);
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn stale_replay_happens_once_then_the_retry_policy_decides() {
    scenario(|| {
        // The first request answers; every later one is read and closed without a byte.
        let server = server(
            "/r",
            Behaviour::Sequence(vec![
                Behaviour::Respond(Reply::text(200, "first")),
                Behaviour::CloseWithoutResponse,
            ]),
        );
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let url = server.url("/r");
        assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "first");

        let err = client
            .get(&url)
            .header("x-request-id", "none")
            .retry(RetryPolicy::none())
            .send()
            .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Io { .. }), "{err:?}");
        assert_eq!(err.attempts(), 1);
        // Sent on the pooled connection, replayed once on a fresh one, and no more.
        assert_eq!(with_id(&server, "none").len(), 2);
        assert_eq!(pool.stats().stale_replays(), 1);
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn stale_replay_uses_a_fresh_connection_even_when_more_stale_ones_are_pooled() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::CloseOnNthOfConnection {
                n: 2,
                otherwise: Reply::text(200, "ok"),
            })
            .start();
        let pool = pool(config().retry(RetryPolicy::none()).max_idle_per_host(2));
        let client = pool.checkout().unwrap();
        // Two requests in flight at once leave two pooled connections, and on each the
        // server will close after reading the next request.
        let first = client.get(&server.url("/a")).send().unwrap();
        let second = client.get(&server.url("/b")).send().unwrap();
        assert_eq!(first.text().unwrap(), "ok");
        assert_eq!(second.text().unwrap(), "ok");
        assert_eq!(server.connections_accepted(), 2);

        let response = client
            .get(&server.url("/c"))
            .header("x-request-id", "c")
            .send()
            .unwrap_or_else(|e| panic!("{e:?}; sent as {:?}", with_id(&server, "c")));
        assert_eq!(response.text().unwrap(), "ok");
        let sent = with_id(&server, "c");
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(
            sent[1].index_on_connection, 1,
            "the replay went to a pooled connection"
        );
    });
}

// 3. The same with a POST: never replayed

#[test]
fn post_on_a_reused_connection_closed_without_response_is_not_replayed() {
    scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::CloseOnNthOfConnection {
                n: 2,
                otherwise: Reply::text(200, "ok"),
            })
            .start();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        // Read to the end, so the connection goes back to the client's pool.
        assert_eq!(
            client.get(&server.url("/")).send().unwrap().text().unwrap(),
            "ok"
        );

        for (i, method) in ["POST", "PATCH"].into_iter().enumerate() {
            let id = format!("charge-{i}");
            let err = client
                .request(method, &server.url("/charge"))
                .header("x-request-id", &id)
                .body("amount=10")
                .send()
                .unwrap_err();
            assert!(
                is_io(err.kind(), std::io::ErrorKind::UnexpectedEof),
                "{method}: {err:?}"
            );
            assert!(err.may_have_been_processed(), "{method}");
            assert!(
                err.to_string().contains("may have been processed"),
                "{method}: {err}"
            );
            assert_eq!(err.attempts(), 1, "{method}");
            assert_eq!(
                with_id(&server, &id).len(),
                1,
                "{method}: sent exactly once"
            );
            // The next request (on a fresh connection) succeeds, leaving a pooled connection
            // for the next method to die on.
            assert_next_request_succeeds(&client, &server);
        }
        assert_eq!(pool.stats().stale_replays(), 0);
    });
}

// 4. The same on a fresh connection: an error, retried by the policy only

#[test]
fn fresh_connection_closed_without_response_is_an_error_retried_by_policy_only() {
    scenario(|| {
        let server = server("/", Behaviour::CloseWithoutResponse);
        let pool = pool(config());
        let client = pool.checkout().unwrap();

        let err = client
            .get(&server.url("/"))
            .header("x-request-id", "policy")
            .send()
            .unwrap_err();
        assert!(
            is_io(err.kind(), std::io::ErrorKind::UnexpectedEof),
            "{err:?}"
        );
        assert_eq!(err.attempts(), 3);
        assert_eq!(with_id(&server, "policy").len(), 3);
        assert_eq!(server.connections_accepted(), 3);

        let err = client
            .get(&server.url("/"))
            .header("x-request-id", "once")
            .retry(RetryPolicy::none())
            .send()
            .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Io { .. }), "{err:?}");
        assert_eq!(err.attempts(), 1);
        assert_eq!(with_id(&server, "once").len(), 1, "no redial");
        assert_eq!(server.connections_accepted(), 4);
        assert_eq!(pool.stats().stale_replays(), 0);
        assert_next_request_succeeds(&client, &server);
    });
}

// 5. Resets before and after the response head

#[test]
fn reset_before_any_response_byte_is_an_error() {
    scenario(|| {
        let server = server("/", Behaviour::ResetBeforeResponse);
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let err = client
            .get(&server.url("/"))
            .retry(RetryPolicy::none())
            .send()
            .unwrap_err();
        assert!(
            is_io(err.kind(), std::io::ErrorKind::ConnectionReset),
            "{err:?}"
        );
        assert_eq!(server.requests_to("/"), 1);

        // With a retry policy a GET is retried, each time on a new connection.
        let err = client.get(&server.url("/")).send().unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Io { .. }), "{err:?}");
        assert_eq!(err.attempts(), 3);
        assert_eq!(server.requests_to("/"), 4);
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn reset_mid_body_is_an_error_and_is_not_retried_once_the_head_arrived() {
    scenario(|| {
        let body = vec![b'x'; 10_000];
        let server = server(
            "/",
            Behaviour::ResetMidBody {
                reply: Reply::new(200).body(body),
                after: 100,
            },
        );
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let response = client.get(&server.url("/")).send().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.header("content-length"), Some("10000"));
        let err = response.bytes().unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Io { .. }), "{err:?}");
        assert_eq!(server.requests_to("/"), 1, "nothing retried after the head");
        assert_next_request_succeeds(&client, &server);
    });
}

/// `/` announces 4096 body bytes and sends 1000 before closing.
fn truncating_server() -> TestServer {
    server(
        "/",
        Behaviour::Truncate {
            reply: Reply::new(200).body(vec![b'x'; 4096]),
            send: 1000,
        },
    )
}

#[test]
fn truncated_body_is_never_returned_as_success() {
    scenario(|| {
        let server = truncating_server();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let url = server.url("/");

        let err = client.get(&url).send().unwrap().bytes().unwrap_err();
        assert!(
            is_io(err.kind(), std::io::ErrorKind::UnexpectedEof),
            "{err:?}"
        );
        let err = client.get(&url).send().unwrap().text().unwrap_err();
        assert!(
            is_io(err.kind(), std::io::ErrorKind::UnexpectedEof),
            "{err:?}"
        );
        assert_eq!(server.requests_to("/"), 2, "nothing retried after the head");
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn truncated_body_read_through_into_reader_is_a_typed_io_error() {
    scenario(|| {
        let server = truncating_server();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let mut read = Vec::new();
        let err = client
            .get(&server.url("/"))
            .send()
            .unwrap()
            .into_reader()
            .read_to_end(&mut read)
            .unwrap_err();
        assert!(read.len() <= 1000);
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err:?}");
        let inner = err
            .into_inner()
            .and_then(|e| e.downcast::<http_sentinel::Error>().ok());
        assert!(
            inner
                .as_ref()
                .is_some_and(|e| is_io(e.kind(), std::io::ErrorKind::UnexpectedEof)),
            "{inner:?}"
        );
        assert_next_request_succeeds(&client, &server);
    });
}

// 6. Framing

#[test]
fn broken_framing_gives_typed_errors_and_is_not_retried() {
    scenario(|| {
        let body = vec![b'c'; 3000];
        let server = TestServer::builder()
            .route(
                "/bad-chunk",
                Behaviour::Chunked {
                    reply: Reply::new(200).body(body.clone()),
                    bad: ChunkFault::BadSize,
                },
            )
            .route(
                "/cut-chunk",
                Behaviour::Chunked {
                    reply: Reply::new(200).body(body.clone()),
                    bad: ChunkFault::CutShort,
                },
            )
            .route(
                "/good-chunk",
                Behaviour::Chunked {
                    reply: Reply::new(200).body(body.clone()),
                    bad: ChunkFault::None,
                },
            )
            .route("/garbage", Behaviour::Raw(b"garbage\r\n\r\n".to_vec()))
            .route(
                "/bad-status",
                Behaviour::Raw(b"HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n".to_vec()),
            )
            .route("/ok", Behaviour::Respond(Reply::text(200, "ok")))
            .start();
        let pool = pool(config());
        let client = pool.checkout().unwrap();

        let good = client.get(&server.url("/good-chunk")).send().unwrap();
        assert_eq!(good.bytes().unwrap(), body, "the control case decodes");

        let err = client
            .get(&server.url("/bad-chunk"))
            .send()
            .unwrap()
            .bytes()
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Protocol, "{err:?}");

        let err = client
            .get(&server.url("/cut-chunk"))
            .send()
            .unwrap()
            .bytes()
            .unwrap_err();
        assert!(
            is_io(err.kind(), std::io::ErrorKind::UnexpectedEof),
            "{err:?}"
        );

        for path in ["/garbage", "/bad-status"] {
            let err = client.get(&server.url(path)).send().unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::Protocol, "{path}: {err:?}");
            assert!(err.is_protocol());
            assert_eq!(err.attempts(), 1, "{path}");
        }
        for path in ["/bad-chunk", "/cut-chunk", "/garbage", "/bad-status"] {
            assert_eq!(server.requests_to(path), 1, "{path} retried");
        }
        // A protocol error retires the client; the pool hands out a healthy one.
        let retired = client.id();
        drop(client);
        let client = pool.checkout().unwrap();
        assert_ne!(client.id(), retired, "the discarded client came back");
        assert_next_request_succeeds(&client, &server);
    });
}

// 7. HTTP/1.0 without Content-Length

#[test]
fn http10_body_is_read_to_close_and_the_connection_is_not_pooled() {
    scenario(|| {
        let body = "an HTTP/1.0 body without content-length".repeat(100);
        let server = server("/old", Behaviour::Http10(body.clone().into_bytes()));
        let pool = pool(config());
        let client = pool.checkout().unwrap();

        let response = client.get(&server.url("/old")).send().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().unwrap(), body);
        assert_next_request_succeeds(&client, &server);
        assert_eq!(
            server.connections_accepted(),
            2,
            "the 1.0 connection was reused"
        );
        assert_eq!(client.connections_opened(), 2);
        let log = server.requests();
        assert_eq!((log[1].connection, log[1].index_on_connection), (2, 1));
    });
}

// 8. Limits

#[test]
fn header_over_the_limit_is_a_typed_error_and_not_retried() {
    scenario(|| {
        let big = "h".repeat(100 * 1024);
        let server = server(
            "/big",
            Behaviour::Respond(Reply::new(200).header("x-big", big)),
        );
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let err = client.get(&server.url("/big")).send().unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::HeaderTooLarge(64 * 1024), "{err:?}");
        assert!(err.is_too_large());
        assert_eq!(server.requests_to("/big"), 1);
        drop(client);
        let client = pool.checkout().unwrap();
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn body_over_the_limit_is_a_typed_error_whatever_the_server_claims() {
    scenario(|| {
        let mut lying = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000000\r\n\r\n".to_vec();
        lying.extend(vec![b'l'; 8192]);
        let server = TestServer::builder()
            .route(
                "/big",
                Behaviour::Respond(Reply::new(200).body(vec![b'b'; 8192])),
            )
            .route("/lying", Behaviour::Raw(lying))
            .route(
                "/chunked",
                Behaviour::Chunked {
                    reply: Reply::new(200).body(vec![b'c'; 8192]),
                    bad: ChunkFault::None,
                },
            )
            .route("/ok", Behaviour::Respond(Reply::text(200, "ok")))
            .start();
        let pool = pool(config().body_limit(1024));
        let client = pool.checkout().unwrap();

        for path in ["/big", "/lying", "/chunked"] {
            let err = client
                .get(&server.url(path))
                .send()
                .unwrap()
                .bytes()
                .unwrap_err();
            assert_eq!(
                err.kind(),
                &ErrorKind::BodyTooLarge(1024),
                "{path}: {err:?}"
            );
            assert!(err.is_too_large());

            let mut read = Vec::new();
            let err = client
                .get(&server.url(path))
                .send()
                .unwrap()
                .into_reader()
                .read_to_end(&mut read)
                .unwrap_err();
            assert!(read.len() <= 1024, "{path}: {} bytes", read.len());
            let inner = err
                .into_inner()
                .and_then(|e| e.downcast::<http_sentinel::Error>().ok());
            assert_eq!(
                inner.map(|e| e.kind().clone()),
                Some(ErrorKind::BodyTooLarge(1024)),
                "{path}"
            );
            assert_eq!(server.requests_to(path), 2, "{path}");
        }
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn gzip_bomb_is_stopped_at_the_body_limit() {
    scenario(|| {
        const INFLATED: usize = 1 + 258 * 32_514; // about 8 MiB
        let bomb = support::gzip::gzip_of_zeros(INFLATED);
        assert!(bomb.len() < 64 * 1024, "{} compressed bytes", bomb.len());
        let server = server(
            "/bomb",
            Behaviour::Respond(
                Reply::new(200)
                    .header("content-encoding", "gzip")
                    .body(bomb),
            ),
        );

        // Control: with room for it, the body inflates to what it claims to be.
        let roomy = pool(config().body_limit(16 * 1024 * 1024));
        let inflated = roomy
            .checkout()
            .unwrap()
            .get(&server.url("/bomb"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(inflated.len(), INFLATED);
        assert!(inflated.iter().all(|&b| b == 0));
        drop(roomy);
        let accept = server.requests()[0]
            .header("accept-encoding")
            .map(str::to_owned);
        assert!(
            accept.as_deref().is_some_and(|v| v.contains("gzip")),
            "{accept:?}"
        );

        // The limit counts inflated bytes, not the 50 KiB on the wire.
        let pool = pool(config().body_limit(64 * 1024));
        let client = pool.checkout().unwrap();
        let err = client
            .get(&server.url("/bomb"))
            .send()
            .unwrap()
            .bytes()
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::BodyTooLarge(64 * 1024), "{err:?}");
        assert_next_request_succeeds(&client, &server);
    });
}

// 9. Time

#[test]
fn server_that_never_answers_hits_the_call_deadline_without_retries() {
    scenario(|| {
        let deadline = Duration::from_millis(400);
        let server = server("/stall", Behaviour::Stall);
        let pool = pool(config().deadline(deadline));
        let client = pool.checkout().unwrap();
        let started = Instant::now();
        let err = client.get(&server.url("/stall")).send().unwrap_err();
        let took = started.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(took >= deadline, "{took:?}");
        assert!(took < deadline + MARGIN, "{took:?}");
        assert_eq!(
            server.requests_to("/stall"),
            1,
            "no attempt after the deadline"
        );
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn a_stalled_post_times_out_waiting_for_the_response_and_may_have_been_processed() {
    scenario(|| {
        let deadline = Duration::from_millis(300);
        let server = server("/stall", Behaviour::Stall);
        let pool = pool(config().deadline(deadline));
        let client = pool.checkout().unwrap();
        let err = client
            .post(&server.url("/stall"))
            .body("charge=10")
            .send()
            .unwrap_err();
        // The request was written and the server read it: the deadline cut short the wait
        // for the response, and a caller must not assume the charge did not happen.
        assert_eq!(
            err.kind(),
            &ErrorKind::Timeout(TimeoutPhase::Response),
            "{err:?}"
        );
        assert!(err.may_have_been_processed(), "{err:?}");
        assert!(err.to_string().contains("may have been processed"), "{err}");
        assert_eq!(server.requests_to("/stall"), 1);
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn a_hung_host_trips_its_breaker() {
    scenario(|| {
        let server = server("/stall", Behaviour::Stall);
        let pool = pool(
            config()
                .deadline(Duration::from_millis(100))
                .retry(RetryPolicy::none())
                .breaker(
                    BreakerConfig::new()
                        .with_min_calls(3)
                        .with_failure_ratio(0.5)
                        .with_break_duration(Duration::from_secs(60)),
                ),
        );
        let client = pool.checkout().unwrap();
        for _ in 0..3 {
            let err = client.get(&server.url("/stall")).send().unwrap_err();
            assert_eq!(
                err.kind(),
                &ErrorKind::Timeout(TimeoutPhase::Response),
                "{err:?}"
            );
        }
        // Timeouts waiting for a response count against the host: the breaker is open and
        // the next call fails at once, without reaching the server.
        let err = client.get(&server.url("/stall")).send().unwrap_err();
        assert!(err.is_circuit_open(), "{err:?}");
        assert_eq!(server.requests_to("/stall"), 3);
    });
}

#[test]
fn dripping_server_hits_the_call_deadline() {
    scenario(|| {
        // One byte every 200 ms: each read makes progress, so only an overall deadline ends it.
        let deadline = Duration::from_millis(600);
        let server = server(
            "/drip",
            Behaviour::Drip {
                reply: Reply::text(200, "slowly, slowly"),
                interval: Duration::from_millis(200),
            },
        );
        let pool = pool(config().deadline(deadline));
        let client = pool.checkout().unwrap();
        let started = Instant::now();
        let err = client.get(&server.url("/drip")).send().unwrap_err();
        let took = started.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(took < deadline + MARGIN, "{took:?}");
        assert_eq!(server.requests_to("/drip"), 1);
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn dripping_body_hits_the_call_deadline_while_the_caller_reads_it() {
    scenario(|| {
        // The ~40-byte head takes ~0.4 s; the 2000-byte body would take 20 s more.
        let deadline = Duration::from_millis(1500);
        let server = server(
            "/drip",
            Behaviour::Drip {
                reply: Reply::new(200).body(vec![b'd'; 2000]),
                interval: Duration::from_millis(10),
            },
        );
        let pool = pool(config().deadline(deadline));
        let client = pool.checkout().unwrap();
        let started = Instant::now();
        let err = match client.get(&server.url("/drip")).send() {
            Ok(response) => response.bytes().unwrap_err(),
            // On a very slow machine the head alone may take the whole deadline.
            Err(err) => err,
        };
        let took = started.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(took < deadline + MARGIN, "{took:?}");
        assert_eq!(server.requests_to("/drip"), 1);
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn retries_and_backoff_sleeps_stay_within_the_call_deadline() {
    scenario(|| {
        let deadline = Duration::from_millis(700);
        let server = server(
            "/slow-503",
            Behaviour::Delay {
                reply: Reply::new(503),
                delay: Duration::from_millis(100),
            },
        );
        let steady = RetryPolicy::new()
            .with_max_attempts(50)
            .with_base_delay(Duration::from_millis(50))
            .with_multiplier(1.0)
            .with_jitter(Jitter::None);
        let pool = pool(config().deadline(deadline).retry(steady));
        let client = pool.checkout().unwrap();
        let started = Instant::now();
        let outcome = client.get(&server.url("/slow-503")).send();
        let took = started.elapsed();
        match &outcome {
            // The last 503, given back rather than sleeping past the deadline.
            Ok(response) => assert_eq!(response.status(), 503),
            Err(err) => assert!(err.is_timeout(), "{err:?}"),
        }
        assert!(took < deadline + MARGIN, "{took:?}");
        // Each attempt takes at least 150 ms with its sleep.
        let attempts = server.requests_to("/slow-503");
        assert!((2..=5).contains(&attempts), "{attempts} attempts");
        drop(outcome);

        // A backoff longer than the deadline is not slept at all.
        let started = Instant::now();
        let response = client
            .get(&server.url("/slow-503"))
            .retry(
                RetryPolicy::new()
                    .with_base_delay(Duration::from_secs(30))
                    .with_jitter(Jitter::None),
            )
            .send()
            .unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.attempts(), 1);
        assert!(started.elapsed() < deadline + MARGIN);
        assert_next_request_succeeds(&client, &server);
    });
}

// 10. Connect failures

#[test]
fn closed_port_is_a_fast_connection_refused_error() {
    scenario(|| {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let started = Instant::now();
        let err = client
            .post(&format!("http://127.0.0.1:{port}/"))
            .body("nothing was sent")
            .send()
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Connect(ConnectFailure::Refused),
            "{err:?}"
        );
        assert!(err.is_connect() && !err.is_dns());
        assert!(!err.may_have_been_processed());
        // Nothing was sent, so even a POST may be retried by the policy.
        assert_eq!(err.attempts(), 3);
        assert!(started.elapsed() < MARGIN, "{:?}", started.elapsed());
        assert_eq!(err.host(), Some(format!("127.0.0.1:{port}").as_str()));

        let server = server("/", Behaviour::Respond(Reply::text(200, "ok")));
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn unknown_host_is_a_distinct_dns_error_and_not_retried() {
    scenario(|| {
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let err = client
            .get("http://no-such-host.invalid/")
            .send()
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Dns, "{err:?}");
        assert!(err.is_dns() && !err.is_connect());
        assert_eq!(err.attempts(), 1);
        assert_eq!(err.host(), Some("no-such-host.invalid:80"));

        let server = server("/", Behaviour::Respond(Reply::text(200, "ok")));
        assert_next_request_succeeds(&client, &server);
    });
}

#[test]
fn per_request_timeout_bounds_a_call_to_a_silent_server() {
    scenario(|| {
        // A request's own timeout replaces the pool's 5 s deadline for that call only.
        let server = server("/stall", Behaviour::Stall);
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        let timeout = Duration::from_millis(200);
        let started = Instant::now();
        let err = client
            .get(&server.url("/stall"))
            .timeout(timeout)
            .send()
            .unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::Timeout(TimeoutPhase::Deadline | TimeoutPhase::Response)
            ),
            "{err:?}"
        );
        assert!(took >= timeout && took < timeout + MARGIN, "{took:?}");
        assert_eq!(server.requests_to("/stall"), 1);
        assert_next_request_succeeds(&client, &server);
    });
}
