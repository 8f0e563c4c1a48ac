//! Request building and response reading over loopback, against httpmock.

use std::io::Read;
use std::time::Duration;

use http_sentinel::http::StatusCode;
use http_sentinel::{ClientPool, ErrorKind, PoolConfig};
use httpmock::prelude::*;
use httpmock::Method::{HEAD, PATCH};

fn pool() -> ClientPool {
    ClientPool::new(PoolConfig::builder().max_clients(4).build()).unwrap()
}

#[test]
fn get_sends_headers_and_query_and_reads_text() {
    let server = MockServer::start();
    let mock = server.mock(|when, then| {
        when.method(GET)
            .path("/greet")
            .query_param("name", "a b&c")
            .header("x-trace", "42")
            .header_exists("user-agent");
        then.status(200).header("x-reply", "yes").body("hello");
    });
    let pool = pool();
    let client = pool.checkout().unwrap();
    let resp = client
        .get(&server.url("/greet"))
        .query("name", "a b&c")
        .header("X-Trace", "42")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("x-reply"), Some("yes"));
    assert_eq!(resp.attempts(), 1);
    assert_eq!(resp.text().unwrap(), "hello");
    mock.assert_hits(1);
}

#[test]
fn default_user_agent_names_the_crate() {
    let server = MockServer::start();
    let ua = format!("http-sentinel/{}", env!("CARGO_PKG_VERSION"));
    let mock = server.mock(|when, then| {
        when.header("user-agent", ua.as_str());
        then.status(204);
    });
    let pool = pool();
    let resp = pool
        .checkout()
        .unwrap()
        .get(&server.url("/"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    mock.assert();
}

#[test]
fn post_put_patch_delete_send_method_and_body() {
    let server = MockServer::start();
    let pool = pool();
    let client = pool.checkout().unwrap();
    for (method, m) in [
        ("POST", POST),
        ("PUT", PUT),
        ("PATCH", PATCH),
        ("DELETE", DELETE),
    ] {
        let mut mock = server.mock(|when, then| {
            when.method(m).path("/item").body("payload");
            then.status(201).body(method);
        });
        let req = match method {
            "POST" => client.post(&server.url("/item")),
            "PUT" => client.put(&server.url("/item")),
            "PATCH" => client.patch(&server.url("/item")),
            _ => client.delete(&server.url("/item")),
        };
        let resp = req.body("payload").send().unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.text().unwrap(), method);
        mock.assert_hits(1);
        mock.delete();
    }
}

#[test]
fn head_has_no_body() {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(HEAD).path("/h");
        then.status(200).header("content-length", "5");
    });
    let pool = pool();
    let resp = pool
        .checkout()
        .unwrap()
        .head(&server.url("/h"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap(), b"");
}

#[test]
fn non_2xx_is_a_response_and_error_for_status_turns_it_into_an_error() {
    let server = MockServer::start();
    let mock = server.mock(|when, then| {
        when.path("/missing");
        then.status(404).body("nope");
    });
    let pool = pool();
    let client = pool.checkout().unwrap();
    let resp = client.get(&server.url("/missing")).send().unwrap();
    assert_eq!(resp.status(), 404);
    let err = resp.error_for_status().unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Status(StatusCode::NOT_FOUND));
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    mock.assert_hits(1);
}

#[test]
fn body_over_the_limit_is_a_typed_error() {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.path("/big");
        then.status(200).body(vec![b'x'; 64 * 1024]);
    });
    let pool = ClientPool::new(PoolConfig::builder().body_limit(1024).build()).unwrap();
    let client = pool.checkout().unwrap();
    let err = client
        .get(&server.url("/big"))
        .send()
        .unwrap()
        .bytes()
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::BodyTooLarge(1024));

    let mut reader = client
        .get(&server.url("/big"))
        .send()
        .unwrap()
        .into_reader();
    let mut sink = Vec::new();
    let io = reader.read_to_end(&mut sink).unwrap_err();
    let inner = io
        .into_inner()
        .unwrap()
        .downcast::<http_sentinel::Error>()
        .unwrap();
    assert_eq!(inner.kind(), &ErrorKind::BodyTooLarge(1024));
    assert!(sink.len() <= 1024);
}

#[test]
fn body_within_the_limit_streams_through_the_reader() {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.path("/data");
        then.status(200).body(vec![7u8; 100_000]);
    });
    let pool = pool();
    let client = pool.checkout().unwrap();
    let mut body = Vec::new();
    client
        .get(&server.url("/data"))
        .send()
        .unwrap()
        .into_reader()
        .read_to_end(&mut body)
        .unwrap();
    assert_eq!(body.len(), 100_000);
    assert!(body.iter().all(|&b| b == 7));
}

#[test]
fn header_with_crlf_or_nul_is_rejected_before_anything_is_sent() {
    let server = MockServer::start();
    let any = server.mock(|_, then| {
        then.status(200);
    });
    let pool = pool();
    let client = pool.checkout().unwrap();
    for (name, value) in [
        ("x-a", "v\r\nInjected: 1"),
        ("x-a", "v\nx"),
        ("x-a", "v\0x"),
        ("x-a\r\n", "v"),
        ("bad name", "v"),
    ] {
        let err = client
            .get(&server.url("/"))
            .header(name, value)
            .send()
            .unwrap_err();
        assert!(err.is_invalid_request(), "{name:?}: {err}");
        assert_eq!(err.attempts(), 0);
        assert!(!err.to_string().contains("Injected"), "value echoed: {err}");
    }
    for url in [
        format!("{}\r\n", server.url("/")),
        server.url("/a b"),
        "ftp://127.0.0.1/".to_owned(),
        "http://".to_owned(),
        "not a url".to_owned(),
        // A password with a raw '/' or '#' makes the URL read as host "u", port "pa".
        "http://u:pa/ss@127.0.0.1/".to_owned(),
        "http://u:pa#ss@127.0.0.1/".to_owned(),
        // Userinfo without a scheme is not an http URL (found by the header_validation fuzzer).
        "@127.0.0.1".to_owned(),
        "u:p@127.0.0.1/".to_owned(),
    ] {
        let err = client.get(&url).send().unwrap_err();
        assert!(err.is_invalid_request(), "{url:?}: {err}");
        assert!(
            !err.to_string().contains("ss@"),
            "{url:?}: password shown: {err}"
        );
        assert!(
            !format!("{:?}", client.get(&url)).contains("ss@"),
            "{url:?}"
        );
    }
    assert!(client
        .request("GE T", &server.url("/"))
        .send()
        .unwrap_err()
        .is_invalid_request());
    any.assert_hits(0);
}

#[test]
fn url_credentials_become_an_authorization_header_and_never_appear_in_errors() {
    let server = MockServer::start();
    let mock = server.mock(|when, then| {
        // "user:p@ss" in base64
        when.header("authorization", "Basic dXNlcjpwQHNz");
        then.status(200);
    });
    let pool = pool();
    let client = pool.checkout().unwrap();
    let url = server.url("/").replace("http://", "http://user:p%40ss@");
    assert_eq!(client.get(&url).send().unwrap().status(), 200);
    mock.assert();
    let err = client
        .get("http://user:hunter2@127.0.0.1:1/")
        .send()
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"));
    let dbg = format!(
        "{:?}",
        client
            .get("http://user:hunter2@127.0.0.1:1/")
            .header("Authorization", "Bearer top-secret")
            .header("X-Api-Key", "key-secret")
            .sensitive_header("x-api-key")
    );
    assert!(
        !dbg.contains("hunter2") && !dbg.contains("top-secret") && !dbg.contains("key-secret"),
        "{dbg}"
    );
}

#[test]
fn per_request_timeout_overrides_the_deadline() {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.path("/slow");
        then.status(200).delay(Duration::from_secs(3));
    });
    let pool = pool();
    let client = pool.checkout().unwrap();
    let started = std::time::Instant::now();
    let err = client
        .get(&server.url("/slow"))
        .timeout(Duration::from_millis(300))
        .send()
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[cfg(feature = "json")]
#[test]
fn json_bodies_go_out_with_their_content_type_and_come_back_typed() {
    use serde_json::{json, Value};
    let server = MockServer::start();
    let mock = server.mock(|when, then| {
        when.method(POST)
            .path("/orders")
            .header("content-type", "application/json")
            .json_body(json!({"qty": 2, "item": "a\"b"}));
        then.status(201)
            .header("content-type", "application/json")
            .body(r#"{"id": 7, "tags": ["x"]}"#);
    });
    let bad = server.mock(|when, then| {
        when.path("/bad");
        then.status(200).body("{not json");
    });
    let pool = pool();
    let client = pool.checkout().unwrap();
    let reply: Value = client
        .post(&server.url("/orders"))
        .json(&json!({"qty": 2, "item": "a\"b"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(reply, json!({"id": 7, "tags": ["x"]}));
    mock.assert_hits(1);

    let err = client
        .get(&server.url("/bad"))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Decode(_)), "{err:?}");
    assert!(err.to_string().contains("key must be a string"), "{err}");
    assert_eq!(err.attempts(), 1, "{err:?}");
    bad.assert_hits(1);

    // Valid JSON of the wrong shape: a decode error naming what serde expected.
    let err = client
        .post(&server.url("/orders"))
        .json(&json!({"qty": 2, "item": "a\"b"}))
        .send()
        .unwrap()
        .json::<Vec<u32>>()
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Decode(_)), "{err:?}");
    assert!(err.to_string().contains("expected a sequence"), "{err}");
    assert_eq!(err.attempts(), 1, "{err:?}");
    mock.assert_hits(2);
}

#[test]
fn query_pairs_land_before_a_fragment_not_inside_it() {
    let server = MockServer::start();
    let mock = server.mock(|when, then| {
        when.method(GET).path("/page").query_param("q", "a b");
        then.status(200).body("found");
    });
    let client = pool().checkout().unwrap();
    let url = format!("{}#section?x=1", server.url("/page"));
    let response = client.get(&url).query("q", "a b").send().unwrap();
    assert_eq!(response.text().unwrap(), "found");
    mock.assert_hits(1);
}

#[test]
fn a_streamed_body_that_failed_to_connect_reports_the_connect_failure() {
    // Nothing listens on port 1. The reader went with the first attempt, so the connect
    // failure is not retried (a retry could only fail for want of a body) and is what the
    // caller sees.
    let client = pool().checkout().unwrap();
    let err = client
        .post("http://127.0.0.1:1/upload")
        .header("idempotency-key", "k")
        .body_reader(std::io::Cursor::new(b"streamed".to_vec()))
        .send()
        .unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert_eq!(err.attempts(), 1);
}
