//! Server-sent events: the parser fed every split of a stream, and `Response::events` over
//! loopback against the fault server (stalls, cuts, a 429 first, endless lines), plus the
//! per-call request ids.

mod support;

use std::time::{Duration, Instant};

use http_sentinel::error::TimeoutPhase;
use http_sentinel::sse::{Event, Parser};
use http_sentinel::{ErrorKind, EventSource};
use support::server::{Behaviour, Reply, StreamStep, TestServer};
use support::{config, pool, scenario};

/// A stream with everything the format allows: a BOM, comments, CR, LF and CRLF line ends,
/// multi-line data, ids (one with a NUL, ignored), retry values (one invalid), unknown fields,
/// an event without data, an error event and the `[DONE]` sentinel, then an unterminated
/// event that must not be dispatched.
const STREAM: &[u8] = b"\xEF\xBB\xBF: welcome\r\n\
retry: 2500\n\
event: delta\rid: 1\r\ndata: Hel\r\ndata: lo\n\n\
: keep-alive\r\r\
event: ping\n\n\
id: 2\x00bad\nfoo: bar\ndata:world\r\nretry: 1x\r\n\r\n\
id: 3\nevent: error\ndata: {\"type\":\"overloaded\"}\r\r\
data\n\n\
data: [DONE]\n\n\
data: never dispatched";

fn expected() -> Vec<Event> {
    let event = |event: &str, data: &str, id: &str, retry: Option<u64>| Event {
        event: event.into(),
        data: data.into(),
        id: id.into(),
        retry: retry.map(Duration::from_millis),
    };
    vec![
        event("delta", "Hel\nlo", "1", Some(2500)),
        event("message", "world", "1", None),
        event("error", "{\"type\":\"overloaded\"}", "3", None),
        event("message", "", "3", None),
        event("message", "[DONE]", "3", None),
    ]
}

fn parse_in(pieces: &[&[u8]]) -> Vec<Event> {
    let mut parser = Parser::new(1024);
    let mut out = Vec::new();
    for piece in pieces {
        parser.feed(piece).unwrap();
        while let Some(e) = parser.next_event() {
            out.push(e);
        }
    }
    out
}

#[test]
fn every_split_of_the_stream_gives_the_same_events_none_lost_or_duplicated() {
    let expected = expected();
    assert_eq!(parse_in(&[STREAM]), expected, "whole");
    let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
    assert_eq!(parse_in(&bytes), expected, "1-byte reads");
    for i in 0..=STREAM.len() {
        let (a, b) = STREAM.split_at(i);
        assert_eq!(parse_in(&[a, b]), expected, "split at {i}");
    }
    // Every pair of split points: three reads.
    for i in 0..=STREAM.len() {
        for j in i..=STREAM.len() {
            let pieces = [&STREAM[..i], &STREAM[i..j], &STREAM[j..]];
            assert_eq!(parse_in(&pieces), expected, "splits at {i} and {j}");
        }
    }
}

/// The head of a chunked `text/event-stream` response.
fn head(extra: &str) -> StreamStep {
    StreamStep::Write(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
             transfer-encoding: chunked\r\n{extra}\r\n"
        )
        .into_bytes(),
    )
}

fn chunk(bytes: &[u8]) -> StreamStep {
    let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    StreamStep::Write(out)
}

/// `STREAM` one byte per chunk, so the client's reads end at every byte.
fn byte_chunks() -> Vec<StreamStep> {
    STREAM
        .iter()
        .map(|b| chunk(std::slice::from_ref(b)))
        .collect()
}

fn end() -> StreamStep {
    StreamStep::Write(b"0\r\n\r\n".to_vec())
}

#[test]
fn events_over_the_wire_in_one_byte_chunks_arrive_exactly_once_and_in_order() {
    scenario(|| {
        let mut steps = vec![head("x-request-id: req_abc\r\n")];
        steps.extend(byte_chunks());
        steps.push(end());
        let server = TestServer::builder()
            .route("/v1/stream", Behaviour::Stream(steps))
            .start();
        let pool = pool(config(Duration::from_secs(10)));
        let client = pool.checkout().unwrap();
        let response = client.get(&server.url("/v1/stream")).send().unwrap();
        assert_eq!(response.request_id(), Some("req_abc"));
        let events = response.events();
        let got: Vec<Event> = events.map(Result::unwrap).collect();
        assert_eq!(got, expected());
        assert_eq!(server.request_count(), 1);
    });
}

#[test]
fn a_stall_after_some_events_fails_within_the_idle_timeout_with_every_event_delivered() {
    scenario(|| {
        let idle = Duration::from_millis(600);
        let steps = vec![
            head(""),
            chunk(b"data: one\n\n"),
            chunk(b"data: two\n\ndata: half"),
            StreamStep::Stall,
        ];
        let server = TestServer::builder()
            .route("/s", Behaviour::Stream(steps))
            .start();
        let pool = pool(config(Duration::from_secs(30)));
        let client = pool.checkout().unwrap();
        let mut events = client
            .get(&server.url("/s"))
            .send()
            .unwrap()
            .events()
            .idle_timeout(idle);
        assert_eq!(events.next().unwrap().unwrap().data, "one");
        assert_eq!(events.next().unwrap().unwrap().data, "two");
        let last_event = Instant::now();
        let err = events.next().unwrap().unwrap_err();
        let waited = last_event.elapsed();
        assert_eq!(err.kind(), &ErrorKind::Timeout(TimeoutPhase::Idle), "{err}");
        assert!(err.is_timeout() && err.may_have_been_processed());
        assert!(
            waited >= idle - Duration::from_millis(50)
                && waited < idle + Duration::from_millis(500),
            "stall detected after {waited:?}, idle timeout {idle:?}"
        );
        assert!(events.next().is_none(), "the stream ends after its error");
        assert_eq!(
            server.request_count(),
            1,
            "a stalled stream is never replayed"
        );
    });
}

#[test]
fn a_byte_drip_that_never_completes_an_event_fails_within_the_idle_timeout() {
    scenario(|| {
        let idle = Duration::from_millis(500);
        let mut steps = vec![head(""), chunk(b"data: first\n\n")];
        for _ in 0..40 {
            steps.push(chunk(b"a"));
            steps.push(StreamStep::Pause(Duration::from_millis(50)));
        }
        let server = TestServer::builder()
            .route("/drip", Behaviour::Stream(steps))
            .start();
        let pool = pool(config(Duration::from_secs(30)));
        let client = pool.checkout().unwrap();
        let mut events = client.get(&server.url("/drip")).send().unwrap().events();
        events = events.idle_timeout(idle);
        assert_eq!(events.next().unwrap().unwrap().data, "first");
        let started = Instant::now();
        let err = events.next().unwrap().unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Timeout(TimeoutPhase::Idle));
        assert!(started.elapsed() < idle + Duration::from_millis(500));
    });
}

#[test]
fn the_pools_deadline_covers_the_head_only_and_a_request_timeout_covers_the_stream() {
    scenario(|| {
        let slow = || {
            let mut steps = vec![head("")];
            for i in 0..6 {
                steps.push(StreamStep::Pause(Duration::from_millis(150)));
                steps.push(chunk(format!("data: {i}\n\n").as_bytes()));
            }
            steps.push(end());
            Behaviour::Stream(steps)
        };
        let server = TestServer::builder()
            .route("/slow", slow())
            .route("/bounded", slow())
            .start();
        // 900 ms of stream under a 300 ms pool deadline: the deadline saw the head only.
        let pool = pool(config(Duration::from_millis(300)));
        let client = pool.checkout().unwrap();
        let events = client.get(&server.url("/slow")).send().unwrap().events();
        let data: Vec<String> = events.map(|e| e.unwrap().data).collect();
        assert_eq!(data, ["0", "1", "2", "3", "4", "5"]);
        // A timeout set on the request bounds the whole stream.
        let started = Instant::now();
        let response = client
            .get(&server.url("/bounded"))
            .timeout(Duration::from_millis(500))
            .send()
            .unwrap();
        let results: Vec<_> = response.events().collect();
        let err = results.last().unwrap().as_ref().unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_ne!(err.kind(), &ErrorKind::Timeout(TimeoutPhase::Idle));
        assert!(results.len() < 7 && started.elapsed() < Duration::from_millis(1000));
    });
}

#[test]
fn a_cut_after_an_error_event_is_the_callers_to_see_and_is_never_replayed() {
    scenario(|| {
        let steps = vec![
            head("request-id: req_cut\r\n"),
            chunk(b"data: a\n\nevent: error\ndata: overloaded\n\n"),
            chunk(b"data: b\n\ndata: par"),
            StreamStep::Reset,
        ];
        let server = TestServer::builder()
            .route("/cut", Behaviour::Stream(steps))
            .start();
        let pool = pool(config(Duration::from_secs(10)));
        let client = pool.checkout().unwrap();
        let results: Vec<_> = client
            .get(&server.url("/cut"))
            .send()
            .unwrap()
            .events()
            .collect();
        let events: Vec<(String, String)> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|e| (e.event.clone(), e.data.clone()))
            .collect();
        assert_eq!(
            events,
            [
                ("message".into(), "a".into()),
                ("error".into(), "overloaded".into()),
                ("message".into(), "b".into())
            ]
        );
        let err = results.last().unwrap().as_ref().unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Io { .. }), "{err:?}");
        assert_eq!(err.request_id(), Some("req_cut"));
        assert_eq!(results.len(), 4, "events, then one error, then the end");
        assert_eq!(server.request_count(), 1, "nothing was replayed");
        // The client is fine for the next call.
        let server2 = TestServer::start_default();
        assert!(client.get(&server2.url("/")).send().is_ok());
    });
}

#[test]
fn a_429_before_the_stream_is_retried_with_one_request_id_and_a_retry_count() {
    scenario(|| {
        let mut steps = vec![head("")];
        steps.extend(byte_chunks());
        steps.push(end());
        let limited = Reply::text(429, "slow down")
            .header("retry-after", "0")
            .header("x-ratelimit-remaining-requests", "0");
        let server = TestServer::builder()
            .route(
                "/v1/chat",
                Behaviour::Sequence(vec![Behaviour::Respond(limited), Behaviour::Stream(steps)]),
            )
            .start();
        let pool = pool(
            config(Duration::from_secs(10)).request_ids("x-client-request-id", "x-retry-count"),
        );
        let client = pool.checkout().unwrap();
        let response = client.get(&server.url("/v1/chat")).send().unwrap();
        assert_eq!(response.attempts(), 2);
        let got: Vec<Event> = response.events().map(Result::unwrap).collect();
        assert_eq!(got, expected());
        let logged = server.requests();
        assert_eq!(logged.len(), 2);
        let ids: Vec<_> = logged
            .iter()
            .map(|r| r.header("x-client-request-id").unwrap().to_owned())
            .collect();
        assert_eq!(ids[0], ids[1], "one id for every attempt of the call");
        assert_eq!(ids[0].len(), 36);
        let counts: Vec<_> = logged
            .iter()
            .map(|r| r.header("x-retry-count").unwrap())
            .collect();
        assert_eq!(counts, ["0", "1"]);
        // The next call gets an id of its own.
        let _ = client
            .get(&server.url("/v1/chat"))
            .send()
            .unwrap()
            .events()
            .count();
        let next = server.requests()[2]
            .header("x-client-request-id")
            .unwrap()
            .to_owned();
        assert_ne!(next, ids[0]);
    });
}

#[test]
fn the_servers_request_id_is_on_status_errors_and_retry_after_errors() {
    scenario(|| {
        let server = TestServer::builder()
            .route(
                "/500",
                Behaviour::Respond(Reply::text(400, "bad").header("x-request-id", "req_400")),
            )
            .route(
                "/wait",
                Behaviour::Respond(
                    Reply::text(429, "later")
                        .header("retry-after", "3600")
                        .header("request-id", "req_429"),
                ),
            )
            .start();
        let pool = pool(config(Duration::from_secs(5)));
        let client = pool.checkout().unwrap();
        let err = client
            .get(&server.url("/500"))
            .send()
            .unwrap()
            .error_for_status()
            .unwrap_err();
        assert_eq!(err.request_id(), Some("req_400"));
        assert!(err.to_string().contains("req_400"), "{err}");
        let err = client.get(&server.url("/wait")).send().unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::RetryAfterTooLong { .. }));
        assert_eq!(err.request_id(), Some("req_429"));
    });
}

#[test]
fn an_endless_line_is_a_typed_error_within_the_body_limit() {
    scenario(|| {
        let mut steps = vec![head(""), chunk(b"data: ok\n\ndata: ")];
        let block = vec![b'a'; 16 * 1024];
        for _ in 0..64 {
            steps.push(chunk(&block));
        }
        steps.push(StreamStep::Stall);
        let server = TestServer::builder()
            .route("/endless", Behaviour::Stream(steps))
            .start();
        let pool = pool(config(Duration::from_secs(10)).body_limit(64 * 1024));
        let client = pool.checkout().unwrap();
        let mut events = client.get(&server.url("/endless")).send().unwrap().events();
        assert_eq!(events.next().unwrap().unwrap().data, "ok");
        let err = events.next().unwrap().unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::BodyTooLarge(64 * 1024));
        assert!(events.next().is_none());
    });
}

#[test]
fn event_source_reconnects_after_a_cut_with_last_event_id_and_loses_nothing() {
    scenario(|| {
        let first = vec![
            head(""),
            chunk(b"retry: 10\nid: 1\ndata: a\n\nid: 2\ndata: b\n\ndata: lost"),
            StreamStep::Reset,
        ];
        let second = vec![head(""), chunk(b"id: 3\ndata: c\n\n"), end()];
        let server = TestServer::builder()
            .route(
                "/feed",
                Behaviour::Sequence(vec![Behaviour::Stream(first), Behaviour::Stream(second)]),
            )
            .start();
        let pool = pool(config(Duration::from_secs(10)));
        let client = pool.checkout().unwrap();
        let url = server.url("/feed");
        let mut source = EventSource::new(&client, |c| c.get(&url)).max_reconnects(2);
        let data: Vec<String> = source.by_ref().map(|e| e.unwrap().data).collect();
        assert_eq!(data, ["a", "b", "c"]);
        assert_eq!(source.reconnects(), 1);
        let logged = server.requests();
        assert_eq!(logged.len(), 2);
        assert_eq!(logged[0].header("last-event-id"), None);
        assert_eq!(logged[1].header("last-event-id"), Some("2"));
    });
}

#[test]
fn a_request_id_the_caller_set_is_kept_and_ids_are_off_by_default() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/echo", Behaviour::EchoHeaders)
            .start();
        let with_ids = pool(
            config(Duration::from_secs(5)).request_ids("x-client-request-id", "x-retry-count"),
        );
        let client = with_ids.checkout().unwrap();
        let echoed = client
            .get(&server.url("/echo"))
            .header("x-client-request-id", "mine-1")
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(echoed.contains("x-client-request-id: mine-1\n"), "{echoed}");
        assert!(echoed.contains("x-retry-count: 0\n"), "{echoed}");
        let plain = pool(config(Duration::from_secs(5)));
        let echoed = plain
            .checkout()
            .unwrap()
            .get(&server.url("/echo"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(
            !echoed.contains("x-client-request-id") && !echoed.contains("x-retry-count"),
            "{echoed}"
        );
    });
}
