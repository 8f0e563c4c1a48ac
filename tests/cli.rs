//! The `sentinel` binary, run as a child process against the loopback test server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::server::{Behaviour, Reply, TestServer};

/// Longest a run may take before the test kills it and fails.
const RUN_LIMIT: Duration = Duration::from_secs(60);

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn code(&self) -> i32 {
        self.status.code().expect("exited, not killed")
    }

    /// Every stdout line, parsed; fails the test on anything that is not a JSON object.
    fn records(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l:?}"));
                assert!(v.is_object(), "{l}");
                v
            })
            .collect()
    }
}

fn sentinel(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sentinel"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The library's environment overrides must not leak in from the test's environment.
        .env_remove("SENTINEL_DEADLINE_MS")
        .env_remove("SENTINEL_MAX_CLIENTS");
    cmd
}

/// Waits for `child` to exit, killing it (and failing) after `RUN_LIMIT`.
fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + RUN_LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("sentinel did not finish within {RUN_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn run(args: &[&str], input: &str) -> Run {
    let mut child = sentinel(args).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let status = wait_bounded(&mut child);
    writer.join().unwrap();
    Run {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn lines(urls: &[String]) -> String {
    urls.iter().map(|u| format!("{u}\n")).collect()
}

#[test]
fn json_lines_come_out_in_input_order_even_when_early_urls_are_slow() {
    let server = TestServer::builder()
        .route(
            "/slow",
            Behaviour::Delay {
                reply: Reply::text(200, "slow"),
                delay: Duration::from_millis(300),
            },
        )
        .fallback(Behaviour::Respond(Reply::text(200, "fast!")))
        .start();
    let urls: Vec<String> = (0..40)
        .map(|i| match i {
            0 | 17 => server.url("/slow"),
            _ => server.url(&format!("/fast/{i}")),
        })
        .collect();

    let run = run(&["--workers", "4"], &lines(&urls));

    assert_eq!(run.code(), 0, "stderr: {}", run.stderr);
    let records = run.records();
    assert_eq!(records.len(), urls.len());
    for (i, (r, url)) in records.iter().zip(&urls).enumerate() {
        assert_eq!(r["line"], i + 1);
        assert_eq!(r["url"], url.as_str());
        assert_eq!(r["status"], 200);
        assert_eq!(r["attempts"], 1);
        assert_eq!(r["error"], Value::Null);
        let body = if url.ends_with("/slow") { 4 } else { 5 };
        assert_eq!(r["bytes"], body);
        assert!(r["ms"].is_u64());
    }
    // The summary is the pool's Stats table, on stderr only.
    assert!(run.stderr.contains("calls 40"), "{}", run.stderr);
    assert!(run.stderr.contains("pool: clients"), "{}", run.stderr);
    assert!(run.stderr.contains("40 urls, 40 ok, 0 failed"));
}

#[test]
fn bad_lines_are_reported_per_line_and_the_run_goes_on() {
    let server = TestServer::start_default();
    let input = format!(
        "{ok}\nnot a url\n\n# a comment\nftp://example.com/file\n  {ok}  \nhttp://user:secret@[::1\n{ok}\n",
        ok = server.url("/")
    );

    let run = run(&[], &input);

    assert_eq!(run.code(), 1, "a bad line fails the run: {}", run.stderr);
    let records = run.records();
    let summary: Vec<(u64, Value, Value)> = records
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["status"].clone(),
                r["error"].clone(),
            )
        })
        .collect();
    let ok = (Value::from(200), Value::Null);
    let bad = (Value::Null, Value::from("invalid_request"));
    let expected = [
        (1, ok.clone()),
        (2, bad.clone()),
        (5, bad.clone()),
        (6, ok.clone()),
        (7, bad),
        (8, ok),
    ];
    let expected: Vec<(u64, Value, Value)> =
        expected.into_iter().map(|(l, (s, e))| (l, s, e)).collect();
    assert_eq!(summary, expected);
    for r in &records {
        if r["error"].is_string() {
            assert_eq!(r["attempts"], 0, "rejected before sending: {r}");
            assert!(r["message"]
                .as_str()
                .unwrap()
                .starts_with("invalid request"));
        }
    }
    assert!(!run.stdout.contains("secret"), "credentials are redacted");
    assert_eq!(server.request_count(), 3);
}

#[test]
fn error_statuses_and_network_failures_exit_with_one() {
    let server = TestServer::builder()
        .route("/missing", Behaviour::Respond(Reply::text(404, "no")))
        .fallback(Behaviour::Respond(Reply::text(200, "yes")))
        .start();
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("http://127.0.0.1:{port}/")
    };
    let urls = [server.url("/"), server.url("/missing"), refused];

    let run = run(&["--retries", "1"], &lines(&urls));

    assert_eq!(run.code(), 1);
    let records = run.records();
    assert_eq!(records[0]["status"], 200);
    assert_eq!(records[1]["status"], 404);
    assert_eq!(records[1]["error"], Value::Null, "a status is a response");
    assert_eq!(records[2]["status"], Value::Null);
    assert_eq!(records[2]["error"], "connect");
    assert!(
        run.stderr.contains("3 urls, 1 ok, 2 failed"),
        "{}",
        run.stderr
    );

    let all_ok = run_ok(&[server.url("/a"), server.url("/b")]);
    assert_eq!(all_ok.code(), 0);
}

fn run_ok(urls: &[String]) -> Run {
    run(&["-q"], &lines(urls))
}

#[test]
fn retries_sets_the_attempts_per_url() {
    let flaky = || {
        TestServer::builder()
            .route(
                "/flaky",
                Behaviour::Sequence(vec![
                    Behaviour::Respond(Reply::text(503, "busy")),
                    Behaviour::Respond(Reply::text(503, "busy")),
                    Behaviour::Respond(Reply::text(200, "done")),
                ]),
            )
            .start()
    };

    let server = flaky();
    let run3 = run(
        &["--retries", "3", "--no-breaker"],
        &lines(&[server.url("/flaky")]),
    );
    assert_eq!(run3.code(), 0, "{}", run3.stderr);
    let r = &run3.records()[0];
    assert_eq!(
        (r["status"].clone(), r["attempts"].clone()),
        (200.into(), 3.into())
    );

    let server = flaky();
    let run1 = run(&["--retries=1"], &lines(&[server.url("/flaky")]));
    assert_eq!(run1.code(), 1);
    let r = &run1.records()[0];
    assert_eq!(
        (r["status"].clone(), r["attempts"].clone()),
        (503.into(), 1.into())
    );
    assert_eq!(server.request_count(), 1);
}

#[test]
fn deadline_ms_bounds_each_url() {
    let server = TestServer::builder()
        .route("/stall", Behaviour::Stall)
        .fallback(Behaviour::Respond(Reply::text(200, "ok")))
        .start();
    let urls = [server.url("/stall"), server.url("/")];

    let run = run(&["--deadline-ms", "300"], &lines(&urls));

    assert_eq!(run.code(), 1);
    let records = run.records();
    assert_eq!(records[0]["error"], "timeout");
    assert!(records[0]["ms"].as_u64().unwrap() < 5_000, "{}", records[0]);
    assert_eq!(records[1]["status"], 200);
}

#[test]
fn no_breaker_keeps_calling_a_failing_host() {
    let failing = || {
        TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(500, "down")))
            .start()
    };
    // One worker sends the URLs in order, so the breaker sees exactly this sequence.
    let args = ["--workers", "1", "--retries", "1"];

    let server = failing();
    let urls: Vec<String> = (0..30).map(|i| server.url(&format!("/{i}"))).collect();
    let guarded = run(&args, &lines(&urls));
    let open = guarded
        .records()
        .iter()
        .filter(|r| r["error"] == "circuit_open")
        .count();
    assert!(open > 0, "the default breaker opens: {}", guarded.stdout);
    assert_eq!(server.request_count(), 30 - open);

    let server = failing();
    let urls: Vec<String> = (0..30).map(|i| server.url(&format!("/{i}"))).collect();
    let mut args = args.to_vec();
    args.push("--no-breaker");
    let unguarded = run(&args, &lines(&urls));
    assert!(unguarded.records().iter().all(|r| r["status"] == 500));
    assert_eq!(server.request_count(), 30);
    assert_eq!(unguarded.code(), 1);
}

#[test]
fn input_reads_a_file_and_a_missing_file_is_a_usage_error() {
    let server = TestServer::start_default();
    let dir = env!("CARGO_TARGET_TMPDIR");
    let path = format!("{dir}/sentinel-cli-input-{}.txt", std::process::id());
    std::fs::write(&path, lines(&[server.url("/x"), server.url("/y")])).unwrap();

    let from_file = run(&["--input", &path, "-q"], "");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(from_file.code(), 0, "{}", from_file.stderr);
    assert_eq!(from_file.records().len(), 2);
    assert_eq!(from_file.stderr, "", "--quiet prints nothing on stderr");

    let dash = run(&["-i", "-", "-q"], &lines(&[server.url("/z")]));
    assert_eq!(dash.records().len(), 1);

    let missing = run(&["--input", "/nonexistent/urls.txt"], "");
    assert_eq!(missing.code(), 2);
    assert_eq!(missing.stdout, "");
    assert!(missing.stderr.contains("cannot open /nonexistent/urls.txt"));
}

#[test]
fn help_explains_every_flag_and_bad_usage_exits_with_two() {
    let help = run(&["--help"], "");
    assert_eq!(help.code(), 0);
    for flag in [
        "--workers",
        "--input",
        "--retries",
        "--deadline-ms",
        "--connect-timeout-ms",
        "--no-breaker",
        "--no-progress",
        "--quiet",
        "--help",
        "--version",
        "EXIT STATUS",
    ] {
        assert!(help.stdout.contains(flag), "--help mentions {flag}");
    }

    for args in [
        &["--bogus"][..],
        &["--workers", "0"],
        &["--workers"],
        &["--retries", "x"],
        &["--no-breaker=yes"],
        &["urls.txt"],
    ] {
        let bad = run(args, "");
        assert_eq!(bad.code(), 2, "{args:?}");
        assert_eq!(bad.stdout, "", "{args:?}: nothing on stdout");
        assert!(
            bad.stderr.contains("sentinel --help"),
            "{args:?}: {}",
            bad.stderr
        );
    }
}

#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    let server = TestServer::start_default();
    // Far more output than a pipe buffers, so the run must hit the closed pipe.
    let urls: Vec<String> = (0..3000).map(|i| server.url(&format!("/{i}"))).collect();
    let mut child = sentinel(&["--workers", "4"]).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = lines(&urls);
    let writer = thread::spawn(move || {
        // Fails with a broken pipe once sentinel has exited: expected.
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut stderr = child.stderr.take().unwrap();
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["line"], 1);
    drop(stdout); // like `head -n 1`

    let status = wait_bounded(&mut child);
    writer.join().unwrap();
    let stderr = err.join().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

#[test]
fn version_prints_the_crate_version() {
    let v = run(&["-V"], "");
    assert_eq!(v.code(), 0);
    assert_eq!(
        v.stdout.trim(),
        format!("sentinel {}", env!("CARGO_PKG_VERSION"))
    );
}
