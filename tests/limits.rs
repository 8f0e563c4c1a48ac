//! Bounded memory: response header size, request head size, a Content-Length the server cannot
//! back, 1xx floods. Memory is bounded by the configured limits, not by what the server claims.

mod support;

use std::time::Duration;

use http_sentinel::{ClientPool, ErrorKind, PoolConfig, RetryPolicy};
use support::server::{Behaviour, Reply, TestServer};

fn pool() -> ClientPool {
    ClientPool::new(
        PoolConfig::builder()
            .deadline(Duration::from_secs(5))
            .retry(RetryPolicy::none())
            .build(),
    )
    .unwrap()
}

fn raw(bytes: impl Into<Vec<u8>>) -> Behaviour {
    Behaviour::Raw(bytes.into())
}

#[test]
fn a_header_larger_than_the_initial_buffer_grows_it_and_works() {
    // 40 KiB of header: five times the 8 KiB starting buffer, within the 64 KiB limit.
    let big = "v".repeat(40 * 1024);
    let server = TestServer::builder()
        .route(
            "/",
            Behaviour::Respond(Reply::text(200, "ok").header("x-big", &big)),
        )
        .start();
    let pool = pool();
    let client = pool.checkout().unwrap();
    for _ in 0..3 {
        let r = client.get(&server.url("/")).send().unwrap();
        assert_eq!(r.header("x-big").map(str::len), Some(big.len()));
        assert_eq!(r.text().unwrap(), "ok");
    }
    // The connection (and its buffer) was reused after growing.
    assert_eq!(client.connections_opened(), 1);
}

#[test]
fn a_header_over_the_limit_is_a_typed_error() {
    let huge = "v".repeat(100 * 1024);
    let server = TestServer::builder()
        .route(
            "/",
            Behaviour::Respond(Reply::text(200, "ok").header("x-huge", &huge)),
        )
        .start();
    let pool = pool();
    let err = pool
        .checkout()
        .unwrap()
        .get(&server.url("/"))
        .send()
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::HeaderTooLarge(64 * 1024), "{err}");
    assert!(err.is_too_large());

    let small = ClientPool::new(PoolConfig::builder().max_header_size(16 * 1024).build()).unwrap();
    let big = "v".repeat(20 * 1024);
    let server = TestServer::builder()
        .route(
            "/",
            Behaviour::Respond(Reply::text(200, "ok").header("x-big", &big)),
        )
        .start();
    let err = small
        .checkout()
        .unwrap()
        .get(&server.url("/"))
        .send()
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::HeaderTooLarge(16 * 1024), "{err}");
}

#[test]
fn a_request_head_larger_than_the_output_buffer_is_an_invalid_request() {
    let server = TestServer::builder()
        .fallback(Behaviour::EchoHeaders)
        .start();
    let pool = pool();
    let client = pool.checkout().unwrap();
    let cookie = "c".repeat(6 * 1024);
    let r = client
        .get(&server.url("/"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert!(r.text().unwrap().contains(&cookie));
    // Past the 8 KiB output buffer: the caller's error, reported before anything is sent.
    let huge = "c".repeat(20 * 1024);
    let err = client
        .get(&server.url("/"))
        .header("x-huge", &huge)
        .send()
        .unwrap_err();
    assert!(err.is_invalid_request(), "{err:?}");
    assert!(err.to_string().contains("buffer_sizes"), "{err}");
    assert_eq!(server.requests_to("/"), 1);
    // The client is not discarded: it stays in service for the next request.
    client
        .get(&server.url("/"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let id = client.id();
    drop(client);
    assert_eq!(pool.checkout().unwrap().id(), id);
    // Configurable when an application needs large request heads.
    let roomy =
        ClientPool::new(PoolConfig::builder().buffer_sizes(8192, 64 * 1024).build()).unwrap();
    let r = roomy
        .checkout()
        .unwrap()
        .get(&server.url("/"))
        .header("x-huge", &huge)
        .send()
        .unwrap();
    assert!(r.text().unwrap().contains(&huge));
}

#[test]
fn a_content_length_of_2_pow_62_does_not_make_the_client_allocate() {
    let server = TestServer::builder()
        .route(
            "/",
            raw("HTTP/1.1 200 OK\r\ncontent-length: 4611686018427387904\r\n\r\nonly this"),
        )
        .start();
    let pool = pool();
    let client = pool.checkout().unwrap();
    let err = client
        .get(&server.url("/"))
        .send()
        .unwrap()
        .bytes()
        .unwrap_err();
    // The server closed early: a truncated body is an error, never a success.
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Io {
                kind: std::io::ErrorKind::UnexpectedEof,
                ..
            }
        ),
        "{err:?}"
    );

    // The server does send more than the limit: reading stops at the limit.
    let mut flood = b"HTTP/1.1 200 OK\r\ncontent-length: 4611686018427387904\r\n\r\n".to_vec();
    flood.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    let server = TestServer::builder()
        .route("/", Behaviour::Raw(flood))
        .start();
    let limited = ClientPool::new(PoolConfig::builder().body_limit(1024 * 1024).build()).unwrap();
    let err = limited
        .checkout()
        .unwrap()
        .get(&server.url("/"))
        .send()
        .unwrap()
        .bytes()
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::BodyTooLarge(1024 * 1024), "{err:?}");
}

#[test]
fn an_endless_stream_of_1xx_responses_is_bounded() {
    let flood = "HTTP/1.1 102 Processing\r\n\r\n".repeat(5000);
    let server = TestServer::builder().route("/", raw(flood)).start();
    let pool = pool();
    let started = std::time::Instant::now();
    let result = pool.checkout().unwrap().get(&server.url("/")).send();
    // Interim responses are counted, and the sixth ends the call (Go's net/http cap):
    // memory stays constant and the call ends long before the stream or the deadline does.
    let err = result.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Protocol, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
