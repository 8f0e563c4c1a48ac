//! Downloads and redirects per request: a request's own body limit (tighter and looser than
//! the pool's), `no_body_limit` for `into_reader`, the body idle timeout that replaces the
//! pool's deadline for the body, a 200 MiB download measured in a child process, a body that
//! stalls, `content_length`, `redirect_history` and the per-request redirect limit.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use http_sentinel::error::TimeoutPhase;
use http_sentinel::{ClientPool, Error, ErrorKind, PoolConfig, RetryPolicy};
use support::server::{bulk_byte, Behaviour, ChunkFault, Reply, StreamStep, TestServer};
use support::{config, pool, scenario};

/// Reads `reader` to its end, checking every byte against the `Bulk` pattern; returns how
/// many bytes came, or the crate's error inside the io::Error.
fn read_bulk(reader: &mut impl Read) -> Result<u64, (u64, Error)> {
    let pattern: Vec<u8> = (0..(251 + 64 * 1024) as u64).map(bulk_byte).collect();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => {
                let at = (got % 251) as usize;
                assert!(buf[..n] == pattern[at..at + n], "wrong bytes at {got}");
                got += n as u64;
            }
            Err(e) => return Err((got, crate_error(e))),
        }
    }
}

fn crate_error(e: std::io::Error) -> Error {
    match e.into_inner().map(|i| i.downcast::<Error>()) {
        Some(Ok(e)) => *e,
        other => panic!("not the crate's error: {other:?}"),
    }
}

fn bulk(length: u64, stall_after: Option<u64>) -> Behaviour {
    Behaviour::Bulk {
        length,
        stall_after,
    }
}

/// Set in the child process that the 200 MiB test starts: the URL to download, served by
/// the parent so that the child's peak resident set is the client's alone.
const DOWNLOAD_URL: &str = "SENTINEL_TEST_DOWNLOAD_URL";
const DOWNLOAD_LEN: u64 = 200 * 1024 * 1024;
const PEAK_LIMIT: u64 = 16 * 1024 * 1024;

#[test]
fn a_200_mib_download_through_into_reader_peaks_under_16_mib_in_a_child_process() {
    if let Some(url) = std::env::var_os(DOWNLOAD_URL) {
        return download(url.to_str().unwrap());
    }
    // Inside the scenario: reading /proc/self/status opens a file, which another test's
    // descriptor count would see if it ran outside the scenarios' lock.
    scenario(|| {
        if peak_rss().is_none() {
            eprintln!("no /proc/self/status here: peak memory cannot be measured, test skipped");
            return;
        }
        let server = TestServer::builder()
            .route("/big", bulk(DOWNLOAD_LEN, None))
            .start();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_200_mib_download_through_into_reader_peaks_under_16_mib_in_a_child_process",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(DOWNLOAD_URL, server.url("/big"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let field = |name: &str| -> u64 {
            stdout
                .lines()
                .find_map(|l| l.split_once(name))
                .and_then(|(_, v)| v.split_whitespace().next()?.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {stdout}"))
        };
        let (peak, got) = (field("peak rss bytes: "), field("body bytes: "));
        eprintln!(
            "child: {got} body bytes in {} ms, peak RSS {:.2} MiB",
            field("elapsed ms: "),
            peak as f64 / (1024.0 * 1024.0)
        );
        assert_eq!(got, DOWNLOAD_LEN);
        assert!(peak < PEAK_LIMIT, "peak RSS {peak} bytes");
        assert_eq!(server.request_count(), 1);
    });
}

/// The child's half: 200 MiB through `into_reader` on a pool whose body limit is the
/// default 10 MiB and whose deadline is 1 s, with `no_body_limit` and a 5 s idle timeout;
/// prints the peak resident set of the whole process.
fn download(url: &str) {
    let pool = ClientPool::new(
        PoolConfig::builder()
            .deadline(Duration::from_secs(1))
            .retry(RetryPolicy::none())
            .build(),
    )
    .unwrap();
    let client = pool.checkout().unwrap();
    let started = Instant::now();
    let response = client
        .get(url)
        .no_body_limit()
        .body_idle_timeout(Duration::from_secs(5))
        .send()
        .unwrap();
    assert_eq!(response.content_length(), Some(DOWNLOAD_LEN));
    let got = read_bulk(&mut response.into_reader()).unwrap_or_else(|(_, e)| panic!("{e:?}"));
    println!("body bytes: {got}");
    println!("elapsed ms: {}", started.elapsed().as_millis());
    println!("peak rss bytes: {}", peak_rss().unwrap());
}

/// The peak resident set of this process (`VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn a_body_that_stalls_fails_within_the_idle_timeout_with_every_byte_before_it() {
    scenario(|| {
        const SENT: u64 = 256 * 1024;
        let idle = Duration::from_millis(600);
        let server = TestServer::builder()
            .route("/stall", bulk(4 * SENT, Some(SENT)))
            .start();
        let pool = pool(config(Duration::from_secs(30)));
        let client = pool.checkout().unwrap();
        // Through into_reader: the stall is measured from the last byte that came.
        let response = client
            .get(&server.url("/stall"))
            .no_body_limit()
            .body_idle_timeout(idle)
            .send()
            .unwrap();
        let mut reader = Progress::new(response.into_reader());
        let (got, err) = read_bulk(&mut reader).unwrap_err();
        let stalled_for = reader.last.elapsed();
        assert_eq!(got, SENT);
        assert_eq!(
            err.kind(),
            &ErrorKind::Timeout(TimeoutPhase::Idle),
            "{err:?}"
        );
        assert!(err.is_timeout());
        assert_eq!(err.host(), Some(server.addr().to_string().as_str()));
        assert!(
            stalled_for >= idle - Duration::from_millis(50)
                && stalled_for < idle + Duration::from_millis(500),
            "failed {stalled_for:?} after the last byte"
        );
        // Through bytes(): the same error, with the call's attempts.
        let started = Instant::now();
        let err = client
            .get(&server.url("/stall"))
            .body_limit(8 * SENT)
            .body_idle_timeout(idle)
            .send()
            .unwrap()
            .bytes()
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Timeout(TimeoutPhase::Idle),
            "{err:?}"
        );
        assert_eq!(err.attempts(), 1);
        assert!(started.elapsed() < idle + Duration::from_millis(500));
        // Never replayed: the head had come.
        assert_eq!(server.request_count(), 2);
        // The client goes on: a whole body next.
        let server = TestServer::builder().route("/ok", bulk(1000, None)).start();
        let body = client.get(&server.url("/ok")).send().unwrap().bytes();
        assert_eq!(body.unwrap().len(), 1000);
    });
}

/// A reader that notes when its last read that made progress returned.
struct Progress<R> {
    inner: R,
    last: Instant,
}

impl<R> Progress<R> {
    fn new(inner: R) -> Self {
        Progress {
            inner,
            last: Instant::now(),
        }
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.last = Instant::now();
        }
        Ok(n)
    }
}

/// A 4000-byte body in four parts 300 ms apart: 900 ms of body after the head.
fn slow_body() -> Behaviour {
    let part = |i: u64| StreamStep::Write((i * 1000..(i + 1) * 1000).map(bulk_byte).collect());
    let pause = || StreamStep::Pause(Duration::from_millis(300));
    Behaviour::Stream(vec![
        StreamStep::Write(b"HTTP/1.1 200 OK\r\ncontent-length: 4000\r\n\r\n".to_vec()),
        part(0),
        pause(),
        part(1),
        pause(),
        part(2),
        pause(),
        part(3),
    ])
}

#[test]
fn the_body_idle_timeout_replaces_the_pools_deadline_for_the_body_only() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/slow", slow_body())
            .route("/silent", Behaviour::Stall)
            .start();
        // The pool's deadline (400 ms) and the idle timeout (500 ms) are shorter than the
        // body (900 ms), but longer than each of its pauses (300 ms).
        let pool = pool(config(Duration::from_millis(400)).retry(RetryPolicy::none()));
        let client = pool.checkout().unwrap();
        let get = || client.get(&server.url("/slow"));
        // Without an idle timeout the deadline covers the body: it fails.
        let err = get().send().unwrap().bytes().unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Timeout(TimeoutPhase::Body),
            "{err:?}"
        );
        // With one, the stalls are what count: the whole body, by both readers.
        let idle = Duration::from_millis(500);
        let body = get()
            .body_idle_timeout(idle)
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(body.len(), 4000);
        let response = get().body_idle_timeout(idle).send().unwrap();
        assert_eq!(read_bulk(&mut response.into_reader()).unwrap(), 4000);
        // A timeout set on the request itself still bounds the whole body.
        let err = get()
            .timeout(Duration::from_millis(600))
            .body_idle_timeout(idle)
            .send()
            .unwrap()
            .bytes()
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert_ne!(err.kind(), &ErrorKind::Timeout(TimeoutPhase::Idle));
        // The head is still the deadline's: a server that never answers fails within it.
        let started = Instant::now();
        let err = client
            .get(&server.url("/silent"))
            .body_idle_timeout(Duration::from_secs(10))
            .send()
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(started.elapsed() < Duration::from_millis(400 + 500));
    });
}

#[test]
fn a_request_body_limit_is_tighter_or_looser_than_the_pools() {
    scenario(|| {
        let body = |n: u64| (0..n).map(bulk_byte).collect::<Vec<u8>>();
        let server = TestServer::builder()
            .route(
                "/2000",
                Behaviour::Respond(Reply::new(200).body(body(2000))),
            )
            .route("/500", Behaviour::Respond(Reply::new(200).body(body(500))))
            .route(
                "/chunked",
                Behaviour::Chunked {
                    reply: Reply::new(200).body(body(2000)),
                    bad: ChunkFault::None,
                },
            )
            .start();
        let pool = pool(config(Duration::from_secs(5)).body_limit(1000));
        let client = pool.checkout().unwrap();
        let get = |path: &str| client.get(&server.url(path));
        let too_large = |e: Error, limit: u64| {
            assert_eq!(e.kind(), &ErrorKind::BodyTooLarge(limit), "{e:?}");
        };
        // The pool's limit.
        too_large(get("/2000").send().unwrap().bytes().unwrap_err(), 1000);
        assert_eq!(get("/500").send().unwrap().bytes().unwrap().len(), 500);
        // Looser: by bytes() and into_reader, declared or chunked.
        let looser = || get("/2000").body_limit(5000);
        assert_eq!(looser().send().unwrap().bytes().unwrap().len(), 2000);
        let reader = &mut looser().send().unwrap().into_reader();
        assert_eq!(read_bulk(reader).unwrap(), 2000);
        let chunked = get("/chunked").body_limit(5000).send().unwrap();
        assert_eq!(chunked.bytes().unwrap().len(), 2000);
        // Tighter: refused at once when declared, stopped at the limit when not.
        too_large(
            get("/500")
                .body_limit(100)
                .send()
                .unwrap()
                .bytes()
                .unwrap_err(),
            100,
        );
        let reader = &mut get("/500").body_limit(100).send().unwrap().into_reader();
        let (got, e) = read_bulk(reader).unwrap_err();
        assert_eq!(got, 0);
        too_large(e, 100);
        let reader = &mut get("/chunked")
            .body_limit(100)
            .send()
            .unwrap()
            .into_reader();
        let (got, e) = read_bulk(reader).unwrap_err();
        assert!(got <= 100, "{got}");
        too_large(e, 100);
        // no_body_limit: into_reader takes any length; bytes() keeps the limit.
        let reader = &mut get("/2000").no_body_limit().send().unwrap().into_reader();
        assert_eq!(read_bulk(reader).unwrap(), 2000);
        let reader = &mut get("/chunked")
            .no_body_limit()
            .send()
            .unwrap()
            .into_reader();
        assert_eq!(read_bulk(reader).unwrap(), 2000);
        let unlimited = get("/2000").no_body_limit().send().unwrap();
        too_large(unlimited.bytes().unwrap_err(), 1000);
        let tighter = get("/500").body_limit(100).no_body_limit().send().unwrap();
        too_large(tighter.bytes().unwrap_err(), 100);
        // The last of body_limit and no_body_limit wins for into_reader.
        let last = get("/2000")
            .no_body_limit()
            .body_limit(1500)
            .send()
            .unwrap();
        too_large(read_bulk(&mut last.into_reader()).unwrap_err().1, 1500);
    });
}

#[test]
fn content_length_is_the_declared_length_or_none() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/plain", Behaviour::Respond(Reply::text(200, "hello")))
            .route(
                "/chunked",
                Behaviour::Chunked {
                    reply: Reply::text(200, "hello"),
                    bad: ChunkFault::None,
                },
            )
            .route(
                "/gzip",
                Behaviour::Respond(
                    Reply::new(200)
                        .header("content-encoding", "gzip")
                        .body(support::gzip::gzip_of_zeros(1 + 258 * 39)),
                ),
            )
            .route("/none", Behaviour::Respond(Reply::new(204)))
            .start();
        let pool = pool(config(Duration::from_secs(5)));
        let client = pool.checkout().unwrap();
        let length = |method: &str, path: &str| {
            let response = client.request(method, &server.url(path)).send().unwrap();
            let length = response.content_length();
            response.bytes().unwrap();
            length
        };
        assert_eq!(length("GET", "/plain"), Some(5));
        assert_eq!(length("GET", "/chunked"), None);
        // Decompressed: the declared length is not what is read.
        assert_eq!(length("GET", "/gzip"), None);
        assert_eq!(length("GET", "/none"), None);
        assert_eq!(length("HEAD", "/plain"), None);
    });
}

#[test]
fn redirect_history_lists_each_hop_with_passwords_and_sensitive_queries_redacted() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/a", redirect(302, "/b?token=t0ps3cret&page=2"))
            .route("/b", redirect(307, "/c"))
            .route("/c", Behaviour::Respond(Reply::text(200, "done")))
            .start();
        let pool = pool(config(Duration::from_secs(5)));
        let client = pool.checkout().unwrap();
        let start = server
            .url("/a?api_key=k3y&x=1")
            .replace("http://", "http://user:pa55w0rd@");
        let response = client
            .get(&start)
            .sensitive_query("api_key")
            .sensitive_query("token")
            .send()
            .unwrap();
        let history = response.redirect_history();
        let seen: Vec<(u16, String)> = history
            .iter()
            .map(|h| (h.status().as_u16(), h.url().to_string()))
            .collect();
        let base = server.url("");
        assert_eq!(
            seen,
            [
                (302, format!("{base}a?api_key=***&x=1")),
                (307, format!("{base}b?token=***&page=2")),
            ]
        );
        assert_eq!(response.url().to_string(), format!("{base}c"));
        assert_eq!(response.redirects(), 2);
        let debug = format!("{history:?} {response:?}");
        for secret in ["pa55w0rd", "k3y", "t0ps3cret", "user"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        // No redirect, no history.
        let direct = client.get(&server.url("/c")).send().unwrap();
        assert!(direct.redirect_history().is_empty());
    });
}

fn redirect(status: u16, location: &str) -> Behaviour {
    Behaviour::Redirect {
        status,
        location: location.into(),
    }
}

#[test]
fn no_redirects_returns_the_3xx_and_redirects_n_overrides_the_pools_limit() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/a", redirect(302, "/b"))
            .route("/b", redirect(301, "/c"))
            .route("/c", Behaviour::Respond(Reply::text(200, "done")))
            .start();
        let pool = pool(config(Duration::from_secs(5)));
        let client = pool.checkout().unwrap();
        let url = server.url("/a");
        // The pool follows (10 hops); the request says not to.
        let response = client.get(&url).no_redirects().send().unwrap();
        assert_eq!(response.status().as_u16(), 302);
        assert_eq!(response.header("location"), Some("/b"));
        assert!(response.redirect_history().is_empty());
        assert_eq!(response.redirects(), 0);
        assert_eq!(response.text().unwrap(), "");
        assert_eq!(server.request_count(), 1);
        // A limit below the chain's length is an error, not retried.
        let err = client.get(&url).redirects(1).send().unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::TooManyRedirects(1), "{err:?}");
        assert_eq!(server.request_count(), 3);
        let followed = client.get(&url).redirects(2).send().unwrap();
        assert_eq!(followed.status().as_u16(), 200);
        // A pool that follows none, and a request that follows them.
        let strict = support::pool(config(Duration::from_secs(5)).max_redirects(0));
        let strict = strict.checkout().unwrap();
        assert_eq!(strict.get(&url).send().unwrap().status().as_u16(), 302);
        let followed = strict.get(&url).redirects(5).send().unwrap();
        assert_eq!(followed.status().as_u16(), 200);
        assert_eq!(followed.redirect_history().len(), 2);
    });
}

#[test]
fn a_body_read_to_its_end_hands_its_connection_back_to_the_calls_deadline() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/body", bulk(1000, None))
            .route(
                "/events",
                Behaviour::RawKeepAlive(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                      content-length: 13\r\n\r\ndata: hello\n\n"
                        .to_vec(),
                ),
            )
            .route(
                "/late",
                Behaviour::Delay {
                    reply: Reply::text(200, "late"),
                    delay: Duration::from_millis(600),
                },
            )
            .start();
        let pool = pool(config(Duration::from_secs(5)).retry(RetryPolicy::none()));
        let client = pool.checkout().unwrap();
        let response = client
            .get(&server.url("/body"))
            .body_idle_timeout(Duration::from_millis(200))
            .send()
            .unwrap();
        let mut reader = response.into_reader();
        assert_eq!(read_bulk(&mut reader).unwrap(), 1000);
        // The reader is still alive; the next call reuses its connection and waits 600 ms
        // for its head, well past the finished body's idle timeout, within its own deadline.
        let late = client.get(&server.url("/late")).send().unwrap();
        assert!(late.connection_reused());
        assert_eq!(late.text().unwrap(), "late");
        drop(reader);
        // The same for an event stream that ended, under the idle timeout it shares.
        let response = client.get(&server.url("/events")).send().unwrap();
        let mut events = response.events().idle_timeout(Duration::from_millis(200));
        assert_eq!(events.next().unwrap().unwrap().data, "hello");
        assert!(events.next().is_none());
        let late = client.get(&server.url("/late")).send().unwrap();
        assert!(late.connection_reused());
        assert_eq!(late.text().unwrap(), "late");
        drop(events);
    });
}
