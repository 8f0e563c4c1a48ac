//! Scenarios 21-23: response framing the client must not trust (`Content-Length` with
//! `Transfer-Encoding`, a `Transfer-Encoding` not ending in `chunked`, chains of codings),
//! floods of 1xx responses, and a final response that arrives while the client waits for
//! `100 Continue`. Each runs against the fault server, and checks what reached the wire.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use http_sentinel::ErrorKind;
use support::server::{Behaviour, Reply, TestServer};
use support::{config, scenario};

const BODY: &str = "5\r\nhello\r\n0\r\n\r\n";

fn keep_alive(head: &str, body: &str) -> Behaviour {
    Behaviour::RawKeepAlive(format!("{head}\r\n{body}").into_bytes())
}

fn server_with(path: &str, behaviour: Behaviour) -> TestServer {
    TestServer::builder()
        .route(path, behaviour)
        .route("/ok", Behaviour::Respond(Reply::text(200, "ok")))
        .start()
}

#[test]
fn content_length_with_chunked_is_read_by_chunks_and_its_connection_is_never_reused() {
    scenario(|| {
        // Control: chunked alone keeps the connection.
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n";
        let server = server_with("/te", keep_alive(head, BODY));
        let pool = support::pool(config(Duration::from_secs(5)));
        let client = pool.checkout().unwrap();
        let r = client.get(&server.url("/te")).send().unwrap();
        assert_eq!(r.text().unwrap(), "hello");
        assert_eq!(
            client
                .get(&server.url("/ok"))
                .send()
                .unwrap()
                .text()
                .unwrap(),
            "ok"
        );
        assert_eq!(server.connections_accepted(), 1);
        drop((client, pool, server));

        // Both headers: framed by Transfer-Encoding (not the 3 bytes Content-Length says),
        // and the next request goes out on a new connection.
        for cl in ["3", "5", "1000"] {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\nTransfer-Encoding: chunked\r\n"
            );
            let server = server_with("/both", keep_alive(&head, BODY));
            let pool = support::pool(config(Duration::from_secs(5)));
            let client = pool.checkout().unwrap();
            let r = client.get(&server.url("/both")).send().unwrap();
            assert_eq!(r.text().unwrap(), "hello", "content-length {cl}");
            assert_eq!(
                client
                    .get(&server.url("/ok"))
                    .send()
                    .unwrap()
                    .text()
                    .unwrap(),
                "ok"
            );
            let log = server.requests();
            assert_eq!(log.len(), 2);
            assert_eq!(log[0].connection, 1);
            assert_eq!(
                log[1].connection, 2,
                "content-length {cl}: the connection was reused"
            );
            assert_eq!(server.connections_accepted(), 2);
        }
    });
}

#[test]
fn a_transfer_encoding_whose_last_coding_is_not_chunked_is_refused_before_the_body() {
    scenario(|| {
        for te in [
            "chunked, gzip",
            "gzip",
            "chunked, identity",
            "chunked, chunked",
        ] {
            let head = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n");
            let server = server_with("/te", keep_alive(&head, BODY));
            let pool = support::pool(config(Duration::from_secs(5)));
            let client = pool.checkout().unwrap();
            let started = Instant::now();
            let err = client.get(&server.url("/te")).send().unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::Protocol, "{te}: {err:?}");
            assert!(format!("{err:?}").contains("chunked"), "{err:?}");
            assert!(started.elapsed() < Duration::from_secs(2));
            // Not retried, and the connection is not reused.
            assert_eq!(server.requests_to("/te"), 1, "{te}");
            let ok = pool.checkout().unwrap().get(&server.url("/ok")).send();
            assert_eq!(ok.unwrap().text().unwrap(), "ok");
            assert_eq!(server.connections_accepted(), 2, "{te}");
        }
    });
}

#[test]
fn a_chain_of_codings_the_client_cannot_undo_is_refused_with_its_length() {
    scenario(|| {
        let forty = vec!["gzip"; 40].join(", ");
        let cases = [
            (
                format!("Content-Encoding: {forty}\r\nContent-Length: 5\r\n"),
                "hello",
                "40 codings",
            ),
            (
                "Content-Encoding: gzip\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n".into(),
                "hello",
                "2 codings",
            ),
            (
                "Transfer-Encoding: gzip, chunked\r\n".into(),
                BODY,
                "2 codings",
            ),
        ];
        for (headers, body, says) in cases {
            let head = format!("HTTP/1.1 200 OK\r\n{headers}");
            let server = server_with("/enc", keep_alive(&head, body));
            let pool = support::pool(config(Duration::from_secs(5)));
            let client = pool.checkout().unwrap();
            let err = client.get(&server.url("/enc")).send().unwrap_err();
            match err.kind() {
                ErrorKind::Decode(why) => assert!(why.contains(says), "{why}"),
                other => panic!("{headers}: {other:?}"),
            }
            assert_eq!(err.class().as_str(), "decode");
            assert_eq!(server.requests_to("/enc"), 1);
            let ok = client.get(&server.url("/ok")).send().unwrap();
            assert_eq!(ok.text().unwrap(), "ok");
            assert_eq!(server.connections_accepted(), 2);
        }
    });
}

#[test]
fn fifty_interim_responses_end_in_a_protocol_error() {
    scenario(|| {
        let final_ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        for interim in [
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 102 Processing\r\n\r\n",
        ] {
            let flood = format!("{}{final_ok}", interim.repeat(50));
            let five = format!("{}{final_ok}", interim.repeat(5));
            let server = TestServer::builder()
                .route("/flood", Behaviour::RawKeepAlive(flood.into_bytes()))
                .route("/five", Behaviour::RawKeepAlive(five.into_bytes()))
                .start();
            let pool = support::pool(config(Duration::from_secs(5)));
            let client = pool.checkout().unwrap();
            // Control: Go's cap of 5 interim responses is allowed.
            let r = client.get(&server.url("/five")).send().unwrap();
            assert_eq!(r.text().unwrap(), "ok");
            let started = Instant::now();
            let err = client.get(&server.url("/flood")).send().unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::Protocol, "{err:?}");
            assert!(format!("{err:?}").contains("interim"), "{err:?}");
            assert!(started.elapsed() < Duration::from_secs(2));
            assert_eq!(server.requests_to("/flood"), 1, "not retried");
            assert_eq!(server.connections_accepted(), 1);
        }
    });
}

#[test]
fn a_final_response_while_awaiting_100_continue_is_returned_at_once_and_the_body_not_sent() {
    scenario(|| {
        for answer in [
            "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n",
            // No framing: the body is close-delimited, but the head is there.
            "HTTP/1.1 417 Expectation Failed\r\n\r\n",
        ] {
            let server = TestServer::builder()
                .answer_expect_with(answer)
                .fallback(Behaviour::Respond(Reply::text(200, "ok")))
                .start();
            let deadline = Duration::from_secs(5);
            let pool = support::pool(config(deadline));
            let client = pool.checkout().unwrap();
            let started = Instant::now();
            let response = client
                .post(&server.url("/upload"))
                .header("Expect", "100-continue")
                .body(vec![b'x'; 4096])
                .send()
                .unwrap();
            let took = started.elapsed();
            assert_eq!(response.status().as_u16(), 417);
            // ureq gives up waiting for 100 Continue after 1 s; well before that, and far
            // before the deadline.
            assert!(
                took < Duration::from_millis(700),
                "{answer:?} took {took:?}"
            );
            drop(response);
            drop(client);
            drop(pool);
            // The server logs the request once the client closed the connection.
            assert!(server.wait_for_requests(1, Duration::from_secs(5)));
            let log = server.requests();
            assert_eq!(log.len(), 1);
            assert_eq!(log[0].header("expect"), Some("100-continue"));
            assert!(
                log[0].body.is_empty(),
                "{} body bytes sent",
                log[0].body.len()
            );
        }
    });
}

#[test]
fn a_final_response_after_100_continue_still_gets_the_body() {
    scenario(|| {
        // Control for the test above: the server answers 100 Continue and reads the body.
        let server = TestServer::builder().fallback(Behaviour::Echo).start();
        let pool = support::pool(config(Duration::from_secs(5)));
        let client = pool.checkout().unwrap();
        let mut body = String::new();
        client
            .post(&server.url("/upload"))
            .header("Expect", "100-continue")
            .body(b"payload".to_vec())
            .send()
            .unwrap()
            .into_reader()
            .read_to_string(&mut body)
            .unwrap();
        assert_eq!(body, "payload");
        assert_eq!(server.requests()[0].body, b"payload");
    });
}
