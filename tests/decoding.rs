//! Content codings over loopback (fault scenario `N?`, tests/README.md): `Accept-Encoding`
//! offers what the build decodes; brotli (feature `brotli`) and zstd (feature `zstd`) bodies
//! decode, and a bomb of either is stopped at the body limit counted on decoded bytes, through
//! `bytes()` and through `into_reader()`, with the connection still usable after.

#![allow(unused_imports)]

use std::io::Read;
use std::time::Duration;

use http_sentinel::{Client, ErrorKind, PoolConfigBuilder};

mod support;

use support::server::{Behaviour, Reply, TestServer};
use support::{pool, scenario};

fn config() -> PoolConfigBuilder {
    support::config(Duration::from_secs(5))
}

/// A server answering `/coded` with `body` under `Content-Encoding: coding`, `/ok` with "ok".
fn server(coding: &str, body: Vec<u8>) -> TestServer {
    TestServer::builder()
        .route(
            "/coded",
            Behaviour::Respond(
                Reply::new(200)
                    .header("content-encoding", coding)
                    .body(body),
            ),
        )
        .route("/ok", Behaviour::Respond(Reply::text(200, "ok")))
        .start()
}

#[cfg(any(feature = "brotli", feature = "zstd"))]
fn assert_next_request_succeeds(client: &Client, server: &TestServer) {
    let response = client.get(&server.url("/ok")).send().unwrap();
    assert_eq!(response.text().unwrap(), "ok");
}

/// The crate's error inside an `io::Error` from `into_reader()`.
#[cfg(any(feature = "brotli", feature = "zstd"))]
fn inner_kind(err: std::io::Error) -> Option<ErrorKind> {
    err.into_inner()
        .and_then(|e| e.downcast::<http_sentinel::Error>().ok())
        .map(|e| e.kind().clone())
}

/// The whole exchange for one coding: the control (room for the body: it decodes to what it
/// claims), then a limit under the decoded size, through `bytes()` and `into_reader()`.
#[cfg(any(feature = "brotli", feature = "zstd"))]
fn bomb_is_stopped_at_the_body_limit(coding: &str, bomb: Vec<u8>, decoded: usize) {
    let on_the_wire = bomb.len();
    assert!(on_the_wire < 64 * 1024, "{on_the_wire} coded bytes");
    let server = server(coding, bomb);

    let roomy = pool(config().body_limit(16 * 1024 * 1024));
    let client = roomy.checkout().unwrap();
    let body = client
        .get(&server.url("/coded"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(body.len(), decoded, "{coding}");
    assert!(body.iter().all(|&b| b == 0));
    drop((client, roomy));

    let limit = 64 * 1024;
    let pool = pool(config().body_limit(limit));
    let client = pool.checkout().unwrap();
    let err = client
        .get(&server.url("/coded"))
        .send()
        .unwrap()
        .bytes()
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::BodyTooLarge(limit),
        "{coding}: {err:?}"
    );
    let mut reader = client
        .get(&server.url("/coded"))
        .send()
        .unwrap()
        .into_reader();
    let err = std::io::copy(&mut reader, &mut std::io::sink()).unwrap_err();
    assert_eq!(
        inner_kind(err),
        Some(ErrorKind::BodyTooLarge(limit)),
        "{coding}"
    );
    drop(reader);
    assert_next_request_succeeds(&client, &server);
}

#[test]
fn accept_encoding_offers_the_codings_this_build_decodes() {
    scenario(|| {
        let server = server("identity", b"plain".to_vec());
        let pool = pool(config());
        let client = pool.checkout().unwrap();
        assert_eq!(
            client
                .get(&server.url("/coded"))
                .send()
                .unwrap()
                .text()
                .unwrap(),
            "plain"
        );
        let offered = server.requests()[0]
            .header("accept-encoding")
            .map(str::to_owned)
            .unwrap_or_default();
        let codings: Vec<&str> = offered.split(", ").collect();
        let mut expected = vec!["gzip"];
        if cfg!(feature = "brotli") {
            expected.push("br");
        }
        if cfg!(feature = "zstd") {
            expected.push("zstd");
        }
        assert_eq!(codings, expected);
        // A request's own Accept-Encoding replaces the offer.
        client
            .get(&server.url("/ok"))
            .header("accept-encoding", "identity")
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(
            server.requests()[1].header("accept-encoding"),
            Some("identity")
        );
    });
}

#[cfg(feature = "brotli")]
#[test]
fn brotli_bomb_is_stopped_at_the_body_limit() {
    scenario(|| {
        let bomb = support::coded::BROTLI_8_MIB_OF_ZEROS.to_vec();
        bomb_is_stopped_at_the_body_limit("br", bomb, support::coded::BROTLI_ZEROS_LEN);
    });
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_bomb_is_stopped_at_the_body_limit() {
    scenario(|| {
        const BLOCKS: usize = 64; // 8 MiB decoded, 262 bytes coded
        let bomb = support::coded::zstd_of_zeros(BLOCKS);
        bomb_is_stopped_at_the_body_limit("zstd", bomb, support::coded::zstd_zeros_len(BLOCKS));
    });
}

#[cfg(feature = "zstd")]
#[test]
fn a_corrupt_zstd_body_is_an_error_not_a_success() {
    scenario(|| {
        let mut truncated = support::coded::zstd_of_zeros(4);
        truncated.truncate(truncated.len() - 3);
        for body in [b"not zstd".to_vec(), truncated] {
            let server = server("zstd", body);
            let pool = pool(config());
            let client = pool.checkout().unwrap();
            let err = client
                .get(&server.url("/coded"))
                .send()
                .unwrap()
                .bytes()
                .unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::Protocol, "{err:?}");
            assert_next_request_succeeds(&client, &server);
        }
    });
}
