//! Tests of the fault-injecting test server, talking raw bytes over std
//! sockets (plus a few checks with ureq as a real client).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

mod support;

use support::server::{Behaviour, ChunkFault, LoggedRequest, Reply, TestServer};

/// Upper bound for any single blocking step in these tests.
const STEP: Duration = Duration::from_secs(10);
/// How quickly shutdown must release a blocked client or connection.
const PROMPT: Duration = Duration::from_secs(5);

fn connect(server: &TestServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).expect("connect");
    stream.set_read_timeout(Some(STEP)).unwrap();
    stream.set_write_timeout(Some(STEP)).unwrap();
    stream
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").into_bytes()
}

fn get_close(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").into_bytes()
}

#[derive(Debug)]
struct Resp {
    status: u16,
    version: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

fn read_line(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

/// Reads one response, framed by content-length, chunked encoding or EOF.
fn read_response(stream: &mut TcpStream) -> io::Result<Resp> {
    let status_line = String::from_utf8(read_line(stream)?).unwrap();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap().to_string();
    let status = parts.next().unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let line = String::from_utf8(read_line(stream)?).unwrap();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Resp {
        status,
        version,
        headers,
        body: Vec::new(),
    };
    if status < 200 || status == 204 || status == 304 {
        // No body by definition.
    } else if resp.header("transfer-encoding") == Some("chunked") {
        loop {
            let line = String::from_utf8(read_line(stream)?).unwrap();
            let size = usize::from_str_radix(&line, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, line))?;
            if size == 0 {
                read_line(stream)?;
                break;
            }
            let mut chunk = vec![0u8; size];
            stream.read_exact(&mut chunk)?;
            resp.body.extend(chunk);
            read_line(stream)?;
        }
    } else if let Some(len) = resp.header("content-length") {
        resp.body = vec![0u8; len.parse().unwrap()];
        stream.read_exact(&mut resp.body)?;
    } else {
        stream.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

/// Reads until EOF or an error; returns the bytes and the error, if any.
fn read_all(stream: &mut TcpStream) -> (Vec<u8>, Option<io::Error>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (out, Some(e)),
        }
    }
}

fn roundtrip(server: &TestServer, request: &[u8]) -> Resp {
    let mut stream = connect(server);
    stream.write_all(request).unwrap();
    read_response(&mut stream).unwrap()
}

fn head_of(bytes: &[u8]) -> Option<(String, usize)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((String::from_utf8_lossy(&bytes[..end]).into_owned(), end))
}

/// Whether `bytes` hold a complete content-length framed response.
fn is_complete_response(bytes: &[u8]) -> bool {
    let Some((head, end)) = head_of(bytes) else {
        return false;
    };
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse::<usize>().unwrap())
        .expect("server responses carry content-length");
    bytes.len() - end >= len
}

#[test]
fn default_route_reuses_keep_alive_connection() {
    let server = TestServer::start_default();
    let mut stream = connect(&server);
    for _ in 0..2 {
        stream.write_all(&get("/")).unwrap();
        let resp = read_response(&mut stream).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"hello, world!");
        assert_eq!(resp.header("content-length"), Some("13"));
        assert_eq!(resp.header("connection"), None);
    }
    stream.write_all(&get("/elsewhere?x=1")).unwrap();
    assert_eq!(read_response(&mut stream).unwrap().text(), "hello, world!");

    let log = server.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].connection, log[1].connection);
    assert_eq!(log[0].connection, 1);
    assert_eq!(
        log.iter()
            .map(|r| r.index_on_connection)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(log[2].path, "/elsewhere");
    assert_eq!(log[2].query.as_deref(), Some("x=1"));
    assert_eq!(server.request_count(), 3);
    assert_eq!(server.requests_to("/"), 2);
    assert_eq!(server.requests_to("/elsewhere?ignored"), 1);
    assert_eq!(server.connections_accepted(), 1);
    assert_eq!(server.url("/a"), format!("http://{}/a", server.addr()));
    assert_eq!(server.url("a"), format!("http://{}/a", server.addr()));
}

#[test]
fn unknown_path_gets_404_by_default() {
    let server = TestServer::builder().start();
    let resp = roundtrip(&server, &get("/nope"));
    assert_eq!(resp.status, 404);
    assert_eq!(resp.text(), "not found");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::builder().route("/e", Behaviour::Echo).start();
    let mut stream = connect(&server);
    let mut both = b"POST /e?n=1 HTTP/1.1\r\ncontent-length: 3\r\n\r\none".to_vec();
    both.extend_from_slice(b"POST /e?n=2 HTTP/1.1\r\ncontent-length: 3\r\n\r\ntwo");
    stream.write_all(&both).unwrap();
    assert_eq!(read_response(&mut stream).unwrap().text(), "one");
    assert_eq!(read_response(&mut stream).unwrap().text(), "two");
    let log = server.requests();
    assert_eq!(log[1].query.as_deref(), Some("n=2"));
    assert_eq!(log[1].index_on_connection, 2);
}

/// Asserts the server closed cleanly (FIN) without sending anything more.
fn assert_clean_eof(stream: &mut TcpStream) {
    let (bytes, error) = read_all(stream);
    assert!(error.is_none(), "expected EOF, got {error:?}");
    assert!(bytes.is_empty(), "expected no bytes, got {bytes:?}");
}

fn assert_reset(error: Option<io::Error>) {
    let kind = error.map(|e| e.kind());
    assert_eq!(kind, Some(io::ErrorKind::ConnectionReset));
}

#[test]
fn client_connection_close_is_honoured() {
    let server = TestServer::start_default();
    let mut stream = connect(&server);
    stream.write_all(&get_close("/")).unwrap();
    let resp = read_response(&mut stream).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_clean_eof(&mut stream);
}

#[test]
fn sequence_walks_then_repeats_last() {
    let server = TestServer::builder()
        .route(
            "/s",
            Behaviour::Sequence(vec![
                Behaviour::Respond(Reply::new(500)),
                Behaviour::Respond(Reply::new(503).header("retry-after", "0")),
                Behaviour::Respond(Reply::text(200, "ok")),
            ]),
        )
        .start();
    let mut stream = connect(&server);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        stream.write_all(&get("/s")).unwrap();
        statuses.push(read_response(&mut stream).unwrap().status);
    }
    // A second connection continues the same per-route count.
    statuses.push(roundtrip(&server, &get("/s?q")).status);
    assert_eq!(statuses, [500, 503, 200, 200, 200]);
}

#[test]
fn close_on_nth_request_of_connection() {
    let otherwise = Reply::text(200, "fine");
    let server = TestServer::builder()
        .route("/c", Behaviour::CloseOnNthOfConnection { n: 2, otherwise })
        .start();
    for _ in 0..2 {
        let mut stream = connect(&server);
        stream.write_all(&get("/c")).unwrap();
        assert_eq!(read_response(&mut stream).unwrap().text(), "fine");
        stream.write_all(&get("/c")).unwrap();
        assert_clean_eof(&mut stream);
    }
    assert_eq!(server.request_count(), 4);
    assert_eq!(server.connections_accepted(), 2);
}

#[test]
fn close_without_response_reads_request_then_sends_fin() {
    let server = TestServer::builder()
        .route("/x", Behaviour::CloseWithoutResponse)
        .start();
    let mut stream = connect(&server);
    stream
        .write_all(b"POST /x HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello")
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(stream.read(&mut buf).unwrap(), 0);
    assert_eq!(server.requests()[0].body, b"hello");
}

#[test]
fn reset_before_response_is_a_connection_reset() {
    let server = TestServer::builder()
        .route("/r", Behaviour::ResetBeforeResponse)
        .start();
    // With and without a body: the held-back last byte is what forces the RST.
    for request in [
        get("/r"),
        b"PUT /r HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi".to_vec(),
        b"PUT /r HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n".to_vec(),
    ] {
        let mut stream = connect(&server);
        stream.write_all(&request).unwrap();
        let (bytes, error) = read_all(&mut stream);
        assert!(bytes.is_empty());
        assert_reset(error);
    }
    assert_eq!(server.request_count(), 3);
    assert_eq!(server.requests()[2].body, b"hi");
}

#[test]
fn reset_mid_body_sends_head_and_prefix_then_resets() {
    let reply = Reply::text(200, "0123456789");
    let server = TestServer::builder()
        .route("/m", Behaviour::ResetMidBody { reply, after: 4 })
        .start();
    let mut stream = connect(&server);
    stream.write_all(&get("/m")).unwrap();
    let (bytes, error) = read_all(&mut stream);
    assert_reset(error);
    let (head, end) = head_of(&bytes).expect("head arrives before the reset");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(head.contains("content-length: 10\r\n"));
    assert_eq!(&bytes[end..], b"0123");
}

#[test]
fn truncate_declares_full_length_but_sends_less() {
    let reply = Reply::text(200, "0123456789");
    let server = TestServer::builder()
        .route("/t", Behaviour::Truncate { reply, send: 3 })
        .start();
    let mut stream = connect(&server);
    stream.write_all(&get("/t")).unwrap();
    let (bytes, error) = read_all(&mut stream);
    assert!(error.is_none(), "{error:?}");
    let (head, end) = head_of(&bytes).unwrap();
    assert!(head.contains("content-length: 10\r\n"));
    assert_eq!(&bytes[end..], b"012");
}

#[test]
fn close_after_sends_full_reply_then_fin() {
    let server = TestServer::builder()
        .route("/a", Behaviour::CloseAfter(Reply::text(200, "bye")))
        .start();
    let mut stream = connect(&server);
    stream.write_all(&get("/a")).unwrap();
    let resp = read_response(&mut stream).unwrap();
    assert_eq!(resp.text(), "bye");
    assert_eq!(resp.header("connection"), None);
    assert_clean_eof(&mut stream);
}

#[test]
fn stall_unblocks_promptly_when_server_dropped() {
    let server = TestServer::builder().route("/s", Behaviour::Stall).start();
    let mut stream = connect(&server);
    stream.write_all(&get("/s")).unwrap();
    let reader = thread::spawn(move || {
        let result = read_all(&mut stream);
        (result, Instant::now())
    });
    assert!(server.wait_for_requests(1, STEP));
    let dropped_at = Instant::now();
    drop(server);
    let shutdown_took = dropped_at.elapsed();
    let ((bytes, error), ended_at) = reader.join().unwrap();
    assert!(bytes.is_empty());
    assert!(error.is_none(), "{error:?}");
    assert!(shutdown_took < PROMPT, "shutdown took {shutdown_took:?}");
    assert!(ended_at.duration_since(dropped_at) < PROMPT);
}

#[test]
fn stalled_connection_ends_when_client_leaves() {
    let server = TestServer::builder().route("/s", Behaviour::Stall).start();
    let mut stream = connect(&server);
    stream.write_all(&get("/s")).unwrap();
    assert!(server.wait_for_requests(1, STEP));
    drop(stream);
    // The stall notices the client's FIN; shutdown then has nothing to wait for.
    let started = Instant::now();
    server.shutdown();
    assert!(started.elapsed() < PROMPT);
}

#[test]
fn delay_replies_after_delay_and_is_cut_short_by_shutdown() {
    let server = TestServer::builder()
        .route(
            "/short",
            Behaviour::Delay {
                reply: Reply::text(200, "late"),
                delay: Duration::from_millis(50),
            },
        )
        .route(
            "/long",
            Behaviour::Delay {
                reply: Reply::text(200, "never"),
                delay: Duration::from_secs(600),
            },
        )
        .start();
    let started = Instant::now();
    assert_eq!(roundtrip(&server, &get("/short")).text(), "late");
    assert!(started.elapsed() >= Duration::from_millis(50));

    let mut stream = connect(&server);
    stream.write_all(&get("/long")).unwrap();
    assert!(server.wait_for_requests(2, STEP));
    let started = Instant::now();
    server.shutdown();
    assert!(started.elapsed() < PROMPT);
    assert_clean_eof(&mut stream);
}

#[test]
fn drip_sends_one_byte_per_interval_then_keeps_alive() {
    let interval = Duration::from_millis(2);
    let server = TestServer::builder()
        .route(
            "/d",
            Behaviour::Drip {
                reply: Reply::text(200, "drip"),
                interval,
            },
        )
        .start();
    let mut stream = connect(&server);
    let started = Instant::now();
    stream.write_all(&get("/d")).unwrap();
    let resp = read_response(&mut stream).unwrap();
    assert_eq!(resp.text(), "drip");
    let wire_len = 17 + 19 + 41 + 2 + 4; // status, content-length, content-type, blank, body
    assert!(started.elapsed() >= interval * (wire_len - 1));
    stream.write_all(&get("/")).unwrap();
    assert_eq!(read_response(&mut stream).unwrap().status, 404);
}

#[test]
fn drip_is_cut_short_by_shutdown() {
    let server = TestServer::builder()
        .route(
            "/d",
            Behaviour::Drip {
                reply: Reply::text(200, "drip"),
                interval: Duration::from_secs(600),
            },
        )
        .start();
    let mut stream = connect(&server);
    stream.write_all(&get("/d")).unwrap();
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"H");
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < PROMPT);
    assert_clean_eof(&mut stream);
}

#[test]
fn raw_bytes_are_sent_verbatim_then_closed() {
    let raw = b"HTTP/1.1 200 OK\r\nx-weird:\x01\r\n\r\n".to_vec();
    let server = TestServer::builder()
        .route("/raw", Behaviour::Raw(raw.clone()))
        .start();
    let mut stream = connect(&server);
    stream.write_all(&get("/raw")).unwrap();
    assert_eq!(read_all(&mut stream).0, raw);
}

#[test]
fn http10_response_is_delimited_by_close() {
    let server = TestServer::builder()
        .route("/old", Behaviour::Http10(b"legacy body".to_vec()))
        .start();
    let mut stream = connect(&server);
    stream.write_all(&get("/old")).unwrap();
    let resp = read_response(&mut stream).unwrap();
    assert_eq!(resp.version, "HTTP/1.0");
    assert_eq!(resp.status, 200);
    assert!(resp.headers.is_empty());
    assert_eq!(resp.body, b"legacy body");
}

#[test]
fn chunked_well_formed_then_keep_alive() {
    let reply = Reply::text(200, "hello chunked world");
    let server = TestServer::builder()
        .route(
            "/c",
            Behaviour::Chunked {
                reply,
                bad: ChunkFault::None,
            },
        )
        .start();
    let mut stream = connect(&server);
    for _ in 0..2 {
        stream.write_all(&get("/c")).unwrap();
        let resp = read_response(&mut stream).unwrap();
        assert_eq!(resp.header("content-length"), None);
        assert_eq!(resp.text(), "hello chunked world");
    }
    assert_eq!(server.connections_accepted(), 1);
}

#[test]
fn chunked_bad_size() {
    let reply = Reply::text(200, "abcdef");
    let server = TestServer::builder()
        .route(
            "/c",
            Behaviour::Chunked {
                reply,
                bad: ChunkFault::BadSize,
            },
        )
        .start();
    let mut stream = connect(&server);
    stream.write_all(&get("/c")).unwrap();
    let (bytes, error) = read_all(&mut stream);
    assert!(error.is_none());
    let (head, end) = head_of(&bytes).unwrap();
    assert!(head.contains("transfer-encoding: chunked\r\n"));
    assert_eq!(&bytes[end..], b"zz\r\nabcdef\r\n");
}

#[test]
fn chunked_cut_short() {
    let reply = Reply::text(200, "abcdef");
    let server = TestServer::builder()
        .route(
            "/c",
            Behaviour::Chunked {
                reply,
                bad: ChunkFault::CutShort,
            },
        )
        .start();
    let mut stream = connect(&server);
    stream.write_all(&get("/c")).unwrap();
    let (bytes, error) = read_all(&mut stream);
    assert!(error.is_none());
    let (_, end) = head_of(&bytes).unwrap();
    assert_eq!(&bytes[end..], b"2\r\nab\r\n2\r\ncd\r\n2\r\ne");
}

#[test]
fn redirect_keeps_alive() {
    let server = TestServer::builder()
        .route(
            "/old",
            Behaviour::Redirect {
                status: 302,
                location: "/new".to_string(),
            },
        )
        .route("/new", Behaviour::Respond(Reply::text(200, "moved")))
        .start();
    let mut stream = connect(&server);
    stream.write_all(&get("/old")).unwrap();
    let resp = read_response(&mut stream).unwrap();
    assert_eq!(resp.status, 302);
    assert_eq!(resp.header("location"), Some("/new"));
    assert_eq!(resp.header("content-length"), Some("0"));
    stream.write_all(&get("/new")).unwrap();
    assert_eq!(read_response(&mut stream).unwrap().text(), "moved");
}

#[test]
fn echo_headers_lists_request_headers() {
    let server = TestServer::builder()
        .route("/h", Behaviour::EchoHeaders)
        .start();
    let resp = roundtrip(
        &server,
        b"GET /h HTTP/1.1\r\nHost: test\r\nX-Custom: Some Value\r\naccept: */*\r\n\r\n",
    );
    assert_eq!(
        resp.text(),
        "host: test\nx-custom: Some Value\naccept: */*\n"
    );
    let logged = &server.requests()[0];
    assert_eq!(logged.header("x-CUSTOM"), Some("Some Value"));
    assert_eq!(logged.header("missing"), None);
}

#[test]
fn echo_returns_body_method_and_query() {
    let server = TestServer::builder().route("/e", Behaviour::Echo).start();
    let mut stream = connect(&server);
    stream
        .write_all(b"PUT /e?a=1&b=2 HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"k\":1}")
        .unwrap();
    let resp = read_response(&mut stream).unwrap();
    assert_eq!(resp.text(), "{\"k\":1}");
    assert_eq!(resp.header("x-echo-method"), Some("PUT"));
    assert_eq!(resp.header("x-echo-query"), Some("a=1&b=2"));
    assert_eq!(resp.header("content-type"), Some("application/json"));

    // A chunked request body is decoded, and no query means no query header.
    stream
        .write_all(b"POST /e HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\ntrailer: x\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut stream).unwrap();
    assert_eq!(resp.text(), "abcde");
    assert_eq!(resp.header("x-echo-method"), Some("POST"));
    assert_eq!(resp.header("x-echo-query"), None);
    assert_eq!(server.requests()[1].body, b"abcde");
}

#[test]
fn expect_continue_gets_interim_response() {
    let server = TestServer::builder().route("/e", Behaviour::Echo).start();
    let mut stream = connect(&server);
    stream
        .write_all(b"POST /e HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream).unwrap().status, 100);
    stream.write_all(b"body").unwrap();
    assert_eq!(read_response(&mut stream).unwrap().text(), "body");
}

#[test]
fn head_request_gets_no_body() {
    let server = TestServer::start_default();
    let mut stream = connect(&server);
    stream.write_all(b"HEAD / HTTP/1.1\r\n\r\n").unwrap();
    let status = read_line(&mut stream).unwrap();
    assert_eq!(status, b"HTTP/1.1 200 OK");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(read_line(&mut stream).unwrap());
        head.extend_from_slice(b"\r\n");
    }
    assert!(String::from_utf8(head)
        .unwrap()
        .contains("content-length: 13"));
    // The next response follows directly: nothing of the body was sent.
    stream.write_all(&get("/")).unwrap();
    assert_eq!(read_response(&mut stream).unwrap().text(), "hello, world!");
}

#[test]
fn handler_decides_per_request() {
    let handler = Arc::new(|request: &LoggedRequest| match request.header("x-mode") {
        Some("fail") => Behaviour::Respond(Reply::new(500)),
        Some("seq") => Behaviour::Sequence(vec![
            Behaviour::Respond(Reply::new(201)),
            Behaviour::Respond(Reply::new(202)),
        ]),
        _ => Behaviour::Respond(Reply::text(
            200,
            &format!("hi {}", request.index_on_connection),
        )),
    });
    let server = TestServer::builder()
        .route("/h", Behaviour::Handler(handler))
        .start();
    let mut stream = connect(&server);
    let mut send = |mode: &str| {
        let request = format!("GET /h HTTP/1.1\r\nx-mode: {mode}\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        read_response(&mut stream).unwrap()
    };
    assert_eq!(send("ok").text(), "hi 1");
    assert_eq!(send("fail").status, 500);
    // The route's hit count picks the sequence step (hit index 2, past the end).
    assert_eq!(send("seq").status, 202);
}

#[test]
fn oversized_header_gets_431() {
    let server = TestServer::start_default();
    let mut stream = connect(&server);
    let mut request = b"GET / HTTP/1.1\r\nx-big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 70 * 1024));
    request.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&request).unwrap();
    let resp = read_response(&mut stream).unwrap();
    assert_eq!(resp.status, 431);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_clean_eof(&mut stream);
    assert_eq!(server.request_count(), 0);
}

#[test]
fn malformed_request_gets_400() {
    let server = TestServer::start_default();
    let resp = roundtrip(&server, b"NONSENSE\r\n\r\n");
    assert_eq!(resp.status, 400);
}

#[test]
fn wait_for_requests_times_out() {
    let server = TestServer::start_default();
    assert!(server.wait_for_requests(0, Duration::ZERO));
    assert!(!server.wait_for_requests(1, Duration::from_millis(20)));
}

#[test]
fn drop_rate_100_drops_everything() {
    let server = TestServer::builder()
        .fallback(Behaviour::Respond(Reply::text(200, "a body to cut")))
        .drop_rate(100, 7)
        .start();
    let (mut silent, mut partial) = (0, 0);
    for _ in 0..40 {
        let mut stream = connect(&server);
        // A drop before reading may close (or reset) before the write lands.
        let _ = stream.write_all(&get_close("/"));
        let (bytes, _) = read_all(&mut stream);
        assert!(!is_complete_response(&bytes), "{bytes:?}");
        if bytes.is_empty() {
            silent += 1;
        } else {
            partial += 1;
        }
    }
    assert!(
        silent > 0 && partial > 0,
        "{silent} silent, {partial} partial"
    );
    assert!(server.request_count() < 40);
}

#[test]
fn drop_rate_0_drops_nothing() {
    let server = TestServer::builder().drop_rate(0, 7).start();
    let mut stream = connect(&server);
    for _ in 0..40 {
        stream.write_all(&get("/")).unwrap();
        assert_eq!(read_response(&mut stream).unwrap().status, 404);
    }
}

#[test]
fn drop_rate_is_deterministic_per_seed() {
    let outcomes = |seed| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(200, "deterministic")))
            .drop_rate(50, seed)
            .start();
        (0..30)
            .map(|_| {
                let mut stream = connect(&server);
                let _ = stream.write_all(&get_close("/"));
                read_all(&mut stream).0
            })
            .collect::<Vec<_>>()
    };
    let first = outcomes(42);
    assert_eq!(first, outcomes(42));
    let complete = first.iter().filter(|b| is_complete_response(b)).count();
    assert!(complete > 0 && complete < 30, "{complete} of 30 complete");
}

#[test]
fn shutdown_joins_threads_and_stops_accepting() {
    let server = TestServer::builder()
        .route("/stall", Behaviour::Stall)
        .route("/", Behaviour::Respond(Reply::text(200, "ok")))
        .start();
    let mut stalled = connect(&server);
    stalled.write_all(&get("/stall")).unwrap();
    let mut idle = connect(&server);
    idle.write_all(&get("/")).unwrap();
    read_response(&mut idle).unwrap();
    assert!(server.wait_for_requests(2, STEP));

    let started = Instant::now();
    server.shutdown();
    assert!(started.elapsed() < PROMPT);
    assert_eq!(server.connections_accepted(), 2);
    assert_clean_eof(&mut stalled);
    assert_clean_eof(&mut idle);
    assert!(TcpStream::connect(server.addr()).is_err());
    server.shutdown();
    assert_eq!(server.connections_accepted(), 2);
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(STEP))
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn ureq_reuses_pooled_connection() {
    let server = TestServer::start_default();
    let agent = agent();
    for _ in 0..3 {
        let mut resp = agent.get(&server.url("/")).call().unwrap();
        assert_eq!(resp.body_mut().read_to_string().unwrap(), "hello, world!");
    }
    assert_eq!(server.connections_accepted(), 1);
}

#[test]
fn ureq_sees_faults() {
    let body = Reply::text(200, "0123456789");
    let server = TestServer::builder()
        .route("/reset", Behaviour::ResetBeforeResponse)
        .route(
            "/truncate",
            Behaviour::Truncate {
                reply: body.clone(),
                send: 3,
            },
        )
        .route(
            "/chunked",
            Behaviour::Chunked {
                reply: body.clone(),
                bad: ChunkFault::None,
            },
        )
        .route(
            "/cut",
            Behaviour::Chunked {
                reply: body,
                bad: ChunkFault::CutShort,
            },
        )
        .route(
            "/redirect",
            Behaviour::Redirect {
                status: 301,
                location: "/chunked".to_string(),
            },
        )
        .start();
    let agent = agent();

    match agent.get(&server.url("/reset")).call() {
        Err(ureq::Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        other => panic!("expected a reset, got {other:?}"),
    }
    let mut resp = agent.get(&server.url("/truncate")).call().unwrap();
    assert!(resp.body_mut().read_to_string().is_err());
    let mut resp = agent.get(&server.url("/redirect")).call().unwrap();
    assert_eq!(resp.body_mut().read_to_string().unwrap(), "0123456789");
    let mut resp = agent.get(&server.url("/cut")).call().unwrap();
    assert!(resp.body_mut().read_to_string().is_err());
}
