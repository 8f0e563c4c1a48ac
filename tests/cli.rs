//! The `sentinel` binary, run as a child process against the loopback test server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
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
    support::scenario(|| {
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
        // The summary is a table per host and the URL tally, on stderr only.
        let host = server.addr().to_string();
        let row = run.stderr.lines().find(|l| l.starts_with(&host)).unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cols[1..3], ["40", "100.00%"], "{}", run.stderr);
        assert!(run
            .stderr
            .contains("40 urls: 40 ok, 0 with status >= 400, 0 with an error"));
    });
}

#[test]
fn bad_lines_are_reported_per_line_and_the_run_goes_on() {
    support::scenario(|| {
        let server = TestServer::start_default();
        let input = format!(
            "{ok}\nnot a url\n\n# a comment\nftp://example.com/file\n  {ok}  \nhttp://user:secret@[::1\n{ok}\n",
            ok = server.url("/")
        );

        let run = run(&[], &input);

        // The first failure in input order decides: line 2, a malformed URL (curl's 3).
        assert_eq!(run.code(), 3, "a bad line fails the run: {}", run.stderr);
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
    });
}

#[test]
fn network_failures_exit_with_curls_code_and_statuses_only_under_fail() {
    support::scenario(|| {
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

        assert_eq!(run.code(), 7, "curl's code for a refused connect");
        let records = run.records();
        assert_eq!(records[0]["status"], 200);
        assert_eq!(records[1]["exit"], 0, "a 404 is a response, as in curl");
        assert_eq!(records[2]["exit"], 7);
        assert_eq!(records[1]["status"], 404);
        assert_eq!(records[1]["error"], Value::Null, "a status is a response");
        assert_eq!(records[2]["status"], Value::Null);
        assert_eq!(records[2]["error"], "connect");
        assert!(
            run.stderr
                .contains("3 urls: 1 ok, 1 with status >= 400, 1 with an error"),
            "{}",
            run.stderr
        );

        let all_ok = run_ok(&[server.url("/a"), server.url("/b")]);
        assert_eq!(all_ok.code(), 0);
        let failing = self::run(&["-q", "--fail"], &lines(&urls[..2]));
        assert_eq!(failing.code(), 22, "--fail: a 404 fails with curl's 22");
        assert_eq!(failing.records()[1]["error"], "http_error");
    });
}

fn run_ok(urls: &[String]) -> Run {
    run(&["-q"], &lines(urls))
}

#[test]
fn retries_sets_the_attempts_per_url() {
    support::scenario(|| {
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
        assert_eq!(
            run1.code(),
            0,
            "a 503 is a response; only --fail makes it a failure"
        );
        let r = &run1.records()[0];
        assert_eq!(
            (r["status"].clone(), r["attempts"].clone()),
            (503.into(), 1.into())
        );
        assert_eq!(server.request_count(), 1);
    });
}

#[test]
fn deadline_ms_bounds_each_url() {
    support::scenario(|| {
        let server = TestServer::builder()
            .route("/stall", Behaviour::Stall)
            .fallback(Behaviour::Respond(Reply::text(200, "ok")))
            .start();
        let urls = [server.url("/stall"), server.url("/")];

        let run = run(&["--deadline-ms", "300"], &lines(&urls));

        assert_eq!(run.code(), 28, "curl's code for a timeout");
        let records = run.records();
        assert_eq!(records[0]["error"], "timeout");
        assert!(records[0]["ms"].as_u64().unwrap() < 5_000, "{}", records[0]);
        assert_eq!(records[1]["status"], 200);
    });
}

#[test]
fn no_breaker_keeps_calling_a_failing_host() {
    support::scenario(|| {
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
        assert_eq!(
            guarded.code(),
            7,
            "an open breaker is a host that cannot be reached"
        );

        let server = failing();
        let urls: Vec<String> = (0..30).map(|i| server.url(&format!("/{i}"))).collect();
        let mut args = args.to_vec();
        args.push("--no-breaker");
        let unguarded = run(&args, &lines(&urls));
        assert!(unguarded.records().iter().all(|r| r["status"] == 500));
        assert_eq!(server.request_count(), 30);
        assert_eq!(unguarded.code(), 0, "500s are responses without --fail");
    });
}

#[test]
fn input_reads_a_file_and_a_missing_file_is_a_read_error() {
    support::scenario(|| {
        let server = TestServer::start_default();
        let dir = env!("CARGO_TARGET_TMPDIR");
        let path = format!("{dir}/sentinel-cli-input-{}.txt", std::process::id());
        std::fs::write(&path, lines(&[server.url("/x"), server.url("/y")])).unwrap();

        let from_file = run(&["--input", &path, "-q"], "");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(from_file.code(), 0, "{}", from_file.stderr);
        assert_eq!(from_file.records().len(), 2);
        assert_eq!(from_file.stderr, "", "--quiet prints nothing on stderr");

        let dash = run(&["--input", "-", "-q"], &lines(&[server.url("/z")]));
        assert_eq!(dash.records().len(), 1);

        let missing = run(&["--input", "/nonexistent/urls.txt"], "");
        assert_eq!(missing.code(), 26, "curl's read error");
        assert_eq!(missing.stdout, "");
        assert!(missing.stderr.contains("cannot open /nonexistent/urls.txt"));
    });
}

#[test]
fn help_explains_every_flag_and_bad_usage_exits_with_two() {
    support::scenario(|| {
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
    });
}

#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    support::scenario(|| {
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
    });
}

#[test]
fn version_prints_the_crate_version() {
    support::scenario(|| {
        let v = run(&["-V"], "");
        assert_eq!(v.code(), 0);
        assert_eq!(
            v.stdout.trim(),
            format!("sentinel {}", env!("CARGO_PKG_VERSION"))
        );
    });
}

// ---- curl's shape: one URL, flags, exit codes, each checked against curl where installed ----

/// curl, when installed: `None` (and the comparison is skipped, not the check) otherwise.
fn curl(args: &[&str]) -> Option<Run> {
    static PRESENT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let present = *PRESENT.get_or_init(|| {
        Command::new("curl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !present {
        eprintln!("curl not installed: comparison skipped");
        return None;
    }
    let mut cmd = Command::new("curl");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY");
    Some(collect(cmd.spawn().unwrap(), String::new()))
}

fn collect(mut child: Child, input: String) -> Run {
    let stdin = child.stdin.take();
    let writer = thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(input.as_bytes());
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut s = Vec::new();
        stdout.read_to_end(&mut s).unwrap();
        String::from_utf8_lossy(&s).into_owned()
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
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

/// Runs sentinel with `args`, then curl with the same `args` where it is installed; asserts
/// sentinel's exit code is `code`, and curl's too.
fn like_curl(args: &[&str], code: i32) -> (Run, Option<Run>) {
    let ours = run(args, "");
    assert_eq!(ours.code(), code, "sentinel {args:?}: {}", ours.stderr);
    let theirs = curl(args);
    if let Some(c) = &theirs {
        assert_eq!(c.code(), code, "curl {args:?}: {}", c.stderr);
    }
    (ours, theirs)
}

fn refused_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/")
}

fn temp(name: &str) -> String {
    format!(
        "{}/sentinel-cli-{}-{name}",
        env!("CARGO_TARGET_TMPDIR"),
        std::process::id()
    )
}

#[test]
fn one_url_writes_its_body_to_stdout_as_curl_does() {
    support::scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(200, "{\"a\":1}\n")))
            .start();
        let url = server.url("/data.json");
        let (ours, theirs) = like_curl(&["-s", &url], 0);
        assert_eq!(ours.stdout, "{\"a\":1}\n", "the body and nothing else");
        assert_eq!(ours.stderr, "", "no statistics for one URL by default");
        if let Some(c) = theirs {
            assert_eq!(ours.stdout, c.stdout);
        }
        // --json-lines keeps the JSON line for one URL.
        let lines = run(&["--json-lines", "-q", &url], "");
        assert_eq!(lines.records()[0]["bytes"], 8);
    });
}

#[test]
fn method_headers_and_form_data_reach_the_wire_as_curl_sends_them() {
    support::scenario(|| {
        let server = TestServer::start_default();
        let url = server.url("/form");
        let args = [
            "-s",
            "-X",
            "PUT",
            "-H",
            "X-Trace: on",
            "-d",
            "a=1",
            "-d",
            "b=2",
            &url,
        ];
        like_curl(&args, 0);
        let sent = server.requests();
        let n = sent.len();
        assert!(n == 1 || n == 2, "{n}");
        for r in &sent {
            assert_eq!(r.method, "PUT");
            assert_eq!(r.body, b"a=1&b=2");
            assert_eq!(r.header("x-trace"), Some("on"));
            assert_eq!(
                r.header("content-type"),
                Some("application/x-www-form-urlencoded")
            );
        }
        // -H with an empty value removes a header sentinel would add; -d alone means POST.
        let server = TestServer::start_default();
        let args = ["-s", "-H", "Content-Type:", "-d", "x", &server.url("/")];
        like_curl(&args, 0);
        for r in server.requests() {
            assert_eq!(
                (r.method.as_str(), r.header("content-type")),
                ("POST", None)
            );
        }
    });
}

#[test]
fn data_binary_from_a_file_and_json_bodies_are_sent_byte_for_byte() {
    support::scenario(|| {
        let path = temp("body.bin");
        std::fs::write(&path, b"line1\r\nline2\n\tend").unwrap();
        let at = format!("@{path}");
        let server = TestServer::start_default();
        like_curl(&["-s", "--data-binary", &at, &server.url("/bin")], 0);
        like_curl(&["-s", "-d", &at, &server.url("/ascii")], 0);
        like_curl(&["-s", "--json", "{\"qty\":1}", &server.url("/json")], 0);
        std::fs::remove_file(&path).unwrap();
        for r in server.requests() {
            let (body, ct): (&[u8], _) = match r.path.as_str() {
                "/bin" => (
                    b"line1\r\nline2\n\tend",
                    "application/x-www-form-urlencoded",
                ),
                "/ascii" => (b"line1line2\tend", "application/x-www-form-urlencoded"),
                _ => (b"{\"qty\":1}", "application/json"),
            };
            assert_eq!(r.body, body, "{}", r.path);
            assert_eq!(r.header("content-type"), Some(ct), "{}", r.path);
            if r.path == "/json" {
                assert_eq!(r.header("accept"), Some("application/json"));
            }
        }
        assert_eq!(
            server.requests_to("/json"),
            1 + usize::from(curl(&["--version"]).is_some())
        );
    });
}

#[test]
fn a_data_file_that_cannot_be_read_is_exit_26_and_nothing_is_sent() {
    support::scenario(|| {
        let server = TestServer::start_default();
        let ours = run(&["-d", "@/nonexistent/body", &server.url("/")], "");
        assert_eq!(ours.code(), 26, "{}", ours.stderr);
        assert!(ours.stderr.contains("/nonexistent/body"), "{}", ours.stderr);
        assert_eq!(server.request_count(), 0);
        // curl 7.88 only warns and sends an empty POST: sentinel fails instead, as curl 8
        // does for a missing --data file's read error; so no exit code comparison here.
    });
}

#[test]
fn user_and_bearer_credentials_are_sent_and_never_printed() {
    support::scenario(|| {
        let server = TestServer::start_default();
        like_curl(&["-s", "-u", "alice:s3cret", &server.url("/basic")], 0);
        like_curl(
            &["-s", "--oauth2-bearer", "t0ken", &server.url("/bearer")],
            0,
        );
        for r in server.requests() {
            let want = match r.path.as_str() {
                "/basic" => "Basic YWxpY2U6czNjcmV0",
                _ => "Bearer t0ken",
            };
            assert_eq!(r.header("authorization"), Some(want));
        }
        let many = run(
            &[
                "-u",
                "alice:s3cret",
                &server.url("/a"),
                "http://bob:hunter2@127.0.0.1:1/",
            ],
            "",
        );
        let all = format!("{}{}", many.stdout, many.stderr);
        assert!(!all.contains("s3cret") && !all.contains("hunter2"), "{all}");
        assert!(!all.contains("YWxpY2U6czNjcmV0"), "{all}");
    });
}

#[test]
fn output_writes_one_file_and_output_dir_names_many_after_their_urls() {
    support::scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(200, "payload")))
            .start();
        let file = temp("one.out");
        let (ours, theirs) = like_curl(&["-s", "-o", &file, &server.url("/x")], 0);
        assert_eq!(ours.stdout, "");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "payload");
        if let Some(c) = theirs {
            assert_eq!(c.stdout, "");
        }
        std::fs::remove_file(&file).unwrap();

        let dir = temp("dir");
        std::fs::create_dir_all(&dir).unwrap();
        let urls = [
            server.url("/a/index.html"),
            server.url("/b/index.html"),
            server.url("/c.txt?v=1"),
            server.url("/"),
        ];
        let many = run(&["-q", "--output-dir", &dir], &lines(&urls));
        let records = many.records();
        let files: Vec<Value> = records.iter().map(|r| r["file"].clone()).collect();
        assert_eq!(files[0], format!("{dir}/index.html"));
        assert_eq!(
            files[1],
            format!("{dir}/index.html.2"),
            "never two writers on one file"
        );
        assert_eq!(files[2], format!("{dir}/c.txt"));
        assert_eq!(
            (records[3]["exit"].clone(), files[3].clone()),
            (23.into(), Value::Null)
        );
        for f in &files[..3] {
            assert_eq!(
                std::fs::read_to_string(f.as_str().unwrap()).unwrap(),
                "payload"
            );
        }
        assert_eq!(many.code(), 23, "-O needs a file name: curl's write error");
        let curls = usize::from(curl(&["--version"]).is_some());
        assert_eq!(
            server.request_count(),
            1 + curls + 3,
            "-o, curl's -o, 3 of the 4 URLs"
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let unwritable = like_curl(&["-s", "-o", "/nonexistent/dir/f", &server.url("/")], 23);
        drop(unwritable);
    });
}

#[test]
fn dump_header_head_and_include_write_the_response_head() {
    support::scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(
                Reply::text(200, "body!").header("X-Served-By", "test"),
            ))
            .start();
        let url = server.url("/");
        let heads = temp("heads.txt");
        let (ours, theirs) = like_curl(&["-s", "-D", &heads, &url], 0);
        assert_eq!(ours.stdout, "body!");
        let dumped = std::fs::read_to_string(&heads).unwrap();
        assert!(dumped.starts_with("HTTP/1.1 200 OK\r\n"), "{dumped}");
        assert!(
            dumped.to_lowercase().contains("x-served-by: test\r\n"),
            "{dumped}"
        );
        assert!(dumped.ends_with("\r\n\r\n"));
        if let Some(c) = theirs {
            assert_eq!(c.stdout, ours.stdout);
        }
        let (head, theirs) = like_curl(&["-s", "-I", &url], 0);
        assert!(head.stdout.starts_with("HTTP/1.1 200"), "{}", head.stdout);
        assert!(!head.stdout.contains("body!"));
        if let Some(c) = theirs {
            assert_eq!(c.stdout.lines().next(), head.stdout.lines().next());
        }
        assert_eq!(server.requests().last().unwrap().method, "HEAD");
        let (inc, _) = like_curl(&["-s", "-i", &url], 0);
        assert!(inc.stdout.starts_with("HTTP/1.1 200") && inc.stdout.ends_with("\r\n\r\nbody!"));

        // Many URLs: every head into the one file, in input order.
        let many = run(
            &["-q", "-D", &heads, &server.url("/1"), &server.url("/2")],
            "",
        );
        assert_eq!(many.records().len(), 2);
        let dumped = std::fs::read_to_string(&heads).unwrap();
        assert_eq!(dumped.matches("HTTP/1.1 200 OK").count(), 2);
        std::fs::remove_file(&heads).unwrap();
    });
}

#[test]
fn redirects_are_followed_within_max_redirs_and_47_beyond() {
    support::scenario(|| {
        let server = TestServer::builder()
            .route(
                "/r1",
                Behaviour::Redirect {
                    status: 302,
                    location: "/r2".into(),
                },
            )
            .route(
                "/r2",
                Behaviour::Redirect {
                    status: 302,
                    location: "/end".into(),
                },
            )
            .route(
                "/loop",
                Behaviour::Redirect {
                    status: 302,
                    location: "/loop".into(),
                },
            )
            .fallback(Behaviour::Respond(Reply::text(200, "end")))
            .start();
        let w = "%{http_code} %{num_redirects} %{url_effective}";
        let (ours, theirs) = like_curl(&["-sL", "-w", w, "-o", "/dev/null", &server.url("/r1")], 0);
        assert_eq!(ours.stdout, format!("200 2 {}", server.url("/end")));
        if let Some(c) = theirs {
            assert_eq!(ours.stdout, c.stdout);
        }
        like_curl(&["-sL", "--max-redirs", "1", &server.url("/r1")], 47);
        like_curl(&["-sL", "--max-redirs", "0", &server.url("/r1")], 47);
        let start = Instant::now();
        like_curl(&["-sL", "--max-redirs", "5", &server.url("/loop")], 47);
        assert!(start.elapsed() < Duration::from_secs(10));
        // No -L: sentinel still follows (the library's rule), curl would not.
        let plain = run(&["-s", &server.url("/r1")], "");
        assert_eq!((plain.code(), plain.stdout.as_str()), (0, "end"));
    });
}

#[test]
fn max_time_and_connect_timeout_bound_a_silent_server_with_exit_28() {
    support::scenario(|| {
        let server = TestServer::builder().fallback(Behaviour::Stall).start();
        let start = Instant::now();
        let args = [
            "-s",
            "-m",
            "0.5",
            "--connect-timeout",
            "2",
            &server.url("/"),
        ];
        let ours = run(&args, "");
        let took = start.elapsed();
        assert_eq!(ours.code(), 28, "{}", ours.stderr);
        assert!(took >= Duration::from_millis(450), "{took:?}");
        assert!(
            took < Duration::from_secs(5),
            "returns at the deadline: {took:?}"
        );
        if let Some(c) = curl(&args) {
            assert_eq!(c.code(), 28);
        }
        server.shutdown();
    });
}

#[test]
fn retry_maps_to_the_attempts_and_num_retries_counts_them() {
    support::scenario(|| {
        let flaky = || {
            TestServer::builder()
                .fallback(Behaviour::Sequence(vec![
                    Behaviour::Respond(Reply::text(503, "busy")),
                    Behaviour::Respond(Reply::text(503, "busy")),
                    Behaviour::Respond(Reply::text(200, "done")),
                ]))
                .start()
        };
        let server = flaky();
        let w = "%{http_code} %{num_retries}";
        let ok = run(
            &[
                "-s",
                "--retry",
                "2",
                "-w",
                w,
                "-o",
                "/dev/null",
                &server.url("/"),
            ],
            "",
        );
        assert_eq!((ok.code(), ok.stdout.as_str()), (0, "200 2"));
        assert_eq!(server.request_count(), 3);
        let server = flaky();
        let once = run(
            &[
                "-s",
                "--retry",
                "0",
                "-w",
                w,
                "-o",
                "/dev/null",
                &server.url("/"),
            ],
            "",
        );
        assert_eq!((once.code(), once.stdout.as_str()), (0, "503 0"));
        let server = flaky();
        let failed = run(&["-sf", "--retry", "0", &server.url("/")], "");
        assert_eq!((failed.code(), failed.stdout.as_str()), (22, ""));
        assert_eq!(server.request_count(), 1);
        // curl backs off for 1 s, then 2 s, between its retries: not compared here.
    });
}

#[test]
fn a_retry_after_beyond_the_deadline_keeps_the_servers_status() {
    support::scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(
                Reply::text(503, "later").header("Retry-After", "120"),
            ))
            .start();
        let run_ = run(&["-q", &server.url("/a"), &server.url("/b")], "");
        assert_eq!(run_.code(), 0, "a 503 is a response without --fail");
        for r in run_.records() {
            assert_eq!(r["status"], 503, "{r}");
            assert_eq!(r["error"], "retry_after_too_long");
        }
        let failing = run(&["-q", "--fail", &server.url("/a"), &server.url("/b")], "");
        assert_eq!(failing.code(), 22);
    });
}

#[test]
fn max_filesize_stops_a_large_body_with_exit_63() {
    support::scenario(|| {
        let big = "x".repeat(4096);
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(200, &big)))
            .start();
        like_curl(
            &[
                "-s",
                "--max-filesize",
                "1k",
                "-o",
                "/dev/null",
                &server.url("/"),
            ],
            63,
        );
        let (ok, _) = like_curl(&["-s", "--max-filesize", "4k", &server.url("/")], 0);
        assert_eq!(ok.stdout.len(), 4096);
    });
}

#[test]
fn silent_show_error_and_fail_with_body_print_as_curl_does() {
    support::scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(404, "missing")))
            .start();
        let refused = refused_port();
        let (quiet, theirs) = like_curl(&["-s", "--retry", "0", &refused], 7);
        assert_eq!(quiet.stderr, "");
        if let Some(c) = theirs {
            assert_eq!(c.stderr, "");
        }
        let (shown, _) = like_curl(&["-sS", "--retry", "0", &refused], 7);
        assert!(
            shown.stderr.starts_with("sentinel: (7) connection refused"),
            "{}",
            shown.stderr
        );
        let (plain, theirs) = like_curl(&["-s", &server.url("/")], 0);
        assert_eq!(plain.stdout, "missing");
        let (failed, _) = like_curl(&["-sf", &server.url("/")], 22);
        assert_eq!(failed.stdout, "");
        let (with_body, c) = like_curl(&["-s", "--fail-with-body", &server.url("/")], 22);
        assert_eq!(with_body.stdout, "missing");
        if let (Some(a), Some(b)) = (theirs, c) {
            assert_eq!(
                (a.stdout.as_str(), b.stdout.as_str()),
                ("missing", "missing")
            );
        }
    });
}

#[test]
fn write_out_variables_match_curls() {
    support::scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(201, "twelve bytes")))
            .start();
        let url = server.url("/w");
        let w = "%{http_code}|%{response_code}|%{size_download}|%{num_redirects}|\
                 %{url_effective}|%{remote_ip}|%{content_type}|%{method}|%{exitcode}|%%\\n";
        let (ours, theirs) = like_curl(&["-s", "-o", "/dev/null", "-w", w, &url], 0);
        let want = format!("201|201|12|0|{url}|127.0.0.1|text/plain; charset=utf-8|GET|0|%\n");
        assert_eq!(ours.stdout, want);
        if let Some(c) = theirs {
            assert_eq!(ours.stdout, c.stdout);
        }
        let (json, theirs) = like_curl(&["-s", "-o", "/dev/null", "-w", "%{json}", &url], 0);
        let v: Value = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(v["http_code"], 201);
        assert_eq!(v["num_retries"], 0);
        assert!(v["time_total"].as_f64().unwrap() > 0.0);
        if let Some(c) = theirs {
            let c: Value = serde_json::from_str(&c.stdout).unwrap();
            for key in [
                "http_code",
                "size_download",
                "num_redirects",
                "url_effective",
                "remote_ip",
                "exitcode",
            ] {
                assert_eq!(v[key], c[key], "{key}");
            }
        }
        let t = run(&["-s", "-o", "/dev/null", "-w", "%{time_total}", &url], "");
        let secs: f64 = t.stdout.parse().unwrap();
        assert!(secs > 0.0 && secs < 5.0 && t.stdout.split('.').nth(1).unwrap().len() == 6);
        // For many URLs, -w replaces the JSON line.
        let many = run(&["-q", "-w", "%{http_code} %{url}\\n", &url, &url], "");
        assert_eq!(many.stdout, format!("201 {url}\n201 {url}\n"));
    });
}

#[test]
fn network_failures_give_curls_exit_codes() {
    support::scenario(|| {
        let server = TestServer::builder()
            .route("/empty", Behaviour::CloseWithoutResponse)
            .route("/reset", Behaviour::ResetBeforeResponse)
            .route(
                "/short",
                Behaviour::Truncate {
                    reply: Reply::text(200, "0123456789"),
                    send: 4,
                },
            )
            .start();
        let r0 = ["-s", "--retry", "0"];
        let with = |extra: &str| -> Vec<String> {
            r0.iter()
                .map(|s| s.to_string())
                .chain([extra.to_owned()])
                .collect()
        };
        for (url, code) in [
            (server.url("/empty"), 52),
            (server.url("/reset"), 56),
            (server.url("/short"), 18),
            (refused_port(), 7),
            ("http://no-such-host.invalid/".to_owned(), 6),
            ("http://exa mple.test/".to_owned(), 3),
        ] {
            let args = with(&url);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            like_curl(&args, code);
        }
        // A scheme other than http(s) is curl's "unsupported protocol".
        let gopher = run(&["-s", "gopher2://127.0.0.1:1/"], "");
        assert_eq!(gopher.code(), 1);
    });
}

#[test]
fn insecure_is_refused_with_the_way_to_trust_a_private_ca() {
    support::scenario(|| {
        let server = TestServer::start_default();
        let refused = run(&["-k", &server.url("/")], "");
        assert_eq!(refused.code(), 2);
        assert!(refused.stderr.contains("--cacert"), "{}", refused.stderr);
        let cluster = run(&["-skL", &server.url("/")], "");
        assert_eq!(cluster.code(), 2);
        assert_eq!(server.request_count(), 0, "nothing sent");
    });
}

#[test]
fn resolve_sends_an_http_url_to_the_given_address_with_its_host() {
    support::scenario(|| {
        let server = TestServer::start_default();
        let port = server.addr().port();
        let entry = format!("example.test:{port}:127.0.0.1");
        let url = format!("http://example.test:{port}/named");
        like_curl(&["-s", "--resolve", &entry, &url], 0);
        for r in server.requests() {
            assert_eq!(
                r.header("host"),
                Some(format!("example.test:{port}").as_str())
            );
            assert_eq!(r.path, "/named");
        }
        // The first of several addresses refuses (nothing listens on 127.0.0.2): the next
        // answers, and %{remote_ip} names it.
        let two = format!("example.test:{port}:127.0.0.2,127.0.0.1");
        let (ours, _) = like_curl(
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{remote_ip}",
                "--resolve",
                &two,
                &url,
            ],
            0,
        );
        assert_eq!(ours.stdout, "127.0.0.1");
    });
}

#[test]
fn resolve_applies_to_https_and_the_certificate_is_checked_against_the_name() {
    support::scenario(|| {
        let curls = usize::from(curl(&["--version"]).is_some());
        // The certificate names 127.0.0.1 only: reached as example.test it does not match.
        let (addr, pem, server) = tls_server(2 * (1 + curls));
        let port = addr.port();
        let ca = temp("resolve-ca.pem");
        std::fs::write(&ca, &pem).unwrap();
        let entry = format!("example.test:{port}:127.0.0.1");
        let named = format!("https://example.test:{port}/");
        let (ours, _) = like_curl(&["-s", "--cacert", &ca, "--resolve", &entry, &named], 60);
        assert!(ours.stdout.is_empty());
        // The same server by its address: trusted.
        let literal = format!("https://127.0.0.1:{port}/");
        let (ours, _) = like_curl(&["-s", "--cacert", &ca, "--resolve", &entry, &literal], 0);
        assert_eq!(ours.stdout, "secure");
        server.join().unwrap();
        std::fs::remove_file(&ca).unwrap();
    });
}

/// A forward proxy on loopback that answers every request itself: a `CONNECT` gets "200
/// established" and then the answer inside the tunnel, an absolute-form request the answer
/// directly. Serves `connections` connections, then closes; logs each one's first request line.
type Proxy = (SocketAddr, thread::JoinHandle<Vec<String>>);

fn proxy(connections: usize) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let mut seen = Vec::new();
        for mut tcp in listener.incoming().flatten().take(connections) {
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let head = read_head(&mut tcp);
            let first = head.lines().next().unwrap_or_default().to_owned();
            seen.push(first.clone());
            if first.starts_with("CONNECT ") {
                let _ = tcp.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                read_head(&mut tcp);
            }
            let _ = tcp.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\nvia proxy",
            );
        }
        seen
    });
    (addr, server)
}

fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match tcp.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn proxy_carries_the_request_and_nothing_goes_around_it() {
    support::scenario(|| {
        let (addr, server) = proxy(1 + usize::from(curl(&["--version"]).is_some()));
        // The target's name never resolves: only the proxy can answer for it.
        let target = "http://target.invalid/through";
        let hostport = addr.to_string();
        let (ours, theirs) = like_curl(&["-s", "--retry", "0", "-x", &hostport, target], 0);
        assert_eq!(ours.stdout, "via proxy");
        if let Some(c) = theirs {
            assert_eq!(c.stdout, ours.stdout);
        }
        let log = server.join().unwrap();
        // Both forward an http target in absolute form (RFC 9112 section 3.2.2), never a
        // CONNECT tunnel: sentinel's request line is curl's.
        assert_eq!(log[0], format!("GET {target} HTTP/1.1"), "{log:?}");
        if log.len() > 1 {
            assert_eq!(log[1], log[0], "{log:?}");
        }
    });
}

#[test]
fn many_urls_exit_with_the_first_failures_code_and_each_line_carries_its_own() {
    support::scenario(|| {
        let server = TestServer::builder()
            .route("/missing", Behaviour::Respond(Reply::text(404, "no")))
            .fallback(Behaviour::Respond(Reply::text(200, "yes")))
            .start();
        let urls = [
            server.url("/"),
            server.url("/missing"),
            "http://no-such-host.invalid/".to_owned(),
            refused_port(),
        ];
        // Positional URLs come first, then the input.
        let run_ = run(
            &[
                "-q", "--retry", "0", "--fail", &urls[0], &urls[1], "--input", "-",
            ],
            &lines(&urls[2..]),
        );
        let exits: Vec<u64> = run_
            .records()
            .iter()
            .map(|r| r["exit"].as_u64().unwrap())
            .collect();
        assert_eq!(exits, [0, 22, 6, 7]);
        assert_eq!(run_.code(), 22);
    });
}

#[test]
fn stats_json_and_table_count_urls_and_show_no_reuse_for_a_host_never_reached() {
    support::scenario(|| {
        let server = TestServer::start_default();
        let refused = refused_port();
        let urls = [
            server.url("/a"),
            server.url("/b"),
            "not a url".to_owned(),
            refused.clone(),
        ];
        let json = run(
            &["--retry", "0", "--workers", "1", "--stats=json"],
            &lines(&urls),
        );
        let stats: Value = serde_json::from_str(json.stderr.trim()).unwrap();
        assert_eq!(
            (stats["urls"].clone(), stats["ok"].clone()),
            (4.into(), 2.into())
        );
        assert_eq!(
            (stats["errors"].clone(), stats["not_sent"].clone()),
            (2.into(), 1.into())
        );
        assert_eq!(stats["calls"], 4, "the URL never sent is a call too");
        assert_eq!(stats["attempts"], 3, "with no attempt");
        let hosts = stats["hosts"].as_array().unwrap();
        let never = hosts
            .iter()
            .find(|h| refused.contains(h["host"].as_str().unwrap()))
            .unwrap();
        assert_eq!(
            never["reuse"],
            Value::Null,
            "no connection, no reuse: {never}"
        );
        let ok = hosts
            .iter()
            .find(|h| h["host"] == server.addr().to_string())
            .unwrap();
        assert_eq!(
            ok["reuse"], 0.5,
            "the second of two requests reused the connection"
        );

        let table = run(&["--retry", "0", "--stats", "table"], &lines(&urls));
        let host = refused.trim_start_matches("http://").trim_end_matches('/');
        let row = table.stderr.lines().find(|l| l.starts_with(host)).unwrap();
        assert_eq!(row.split_whitespace().nth(9), Some("-"), "{row}");
        assert!(table
            .stderr
            .contains("(1 never sent: calls with no attempt)"));
        let none = run(&["--stats=none"], &lines(&urls[..1]));
        assert_eq!(none.stderr, "");
    });
}

#[test]
fn the_progress_line_never_shows_more_running_than_workers() {
    support::scenario(|| {
        let server = TestServer::builder()
            .fallback(Behaviour::Delay {
                reply: Reply::text(200, "ok"),
                delay: Duration::from_millis(150),
            })
            .start();
        let urls: Vec<String> = (0..6).map(|i| server.url(&format!("/{i}"))).collect();
        let run_ = run(&["-w", "2", "--progress", "--stats=none"], &lines(&urls));
        let drawn: Vec<&str> = run_
            .stderr
            .split('\r')
            .filter(|l| l.contains("fetched"))
            .collect();
        assert!(!drawn.is_empty(), "{:?}", run_.stderr);
        for line in &drawn {
            let n = |word: &str| -> usize {
                let before = line.split(word).next().unwrap();
                before
                    .split_whitespace()
                    .last()
                    .unwrap()
                    .trim_end_matches(',')
                    .parse()
                    .unwrap()
            };
            assert!(n(" running") <= 2, "{line}");
        }
        assert!(
            drawn
                .last()
                .unwrap()
                .contains("6 of 6 fetched, 0 running, 0 queued"),
            "{drawn:?}"
        );
    });
}

#[test]
fn one_url_into_a_closed_pipe_is_curls_write_error() {
    support::scenario(|| {
        let big = "y".repeat(4 << 20);
        let server = TestServer::builder()
            .fallback(Behaviour::Respond(Reply::text(200, &big)))
            .start();
        let mut child = sentinel(&["-s", &server.url("/")]).spawn().unwrap();
        drop(child.stdin.take());
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 1024];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout); // like `| head -c 1024`
        let status = wait_bounded(&mut child);
        assert_eq!(status.code(), Some(23));
    });
}

/// A TLS server on loopback with a certificate for 127.0.0.1 from a private CA made now;
/// serves `connections` connections with 200 "secure", then closes. Returns the CA's PEM.
fn tls_server(connections: usize) -> (SocketAddr, String, thread::JoinHandle<()>) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa,
        KeyPair, SanType,
    };
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL (curl) takes a leaf named like its issuer for self-signed.
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "sentinel test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        for tcp in listener.incoming().flatten().take(connections) {
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut buf = [0u8; 4096];
            // A client that rejects the certificate ends the handshake: read fails, move on.
            if !matches!(tls.read(&mut buf), Ok(n) if n > 0) {
                continue;
            }
            let _ = tls.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecure",
            );
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (addr, ca.pem(), server)
}

#[test]
fn cacert_trusts_a_private_ca_and_an_untrusted_certificate_is_60() {
    support::scenario(|| {
        let curls = usize::from(curl(&["--version"]).is_some());
        // curl connects before it reads --cacert: one more connection for its 77.
        let (addr, pem, server) = tls_server(2 * (1 + curls) + curls);
        let url = format!("https://127.0.0.1:{}/", addr.port());
        let ca = temp("ca.pem");
        std::fs::write(&ca, &pem).unwrap();
        like_curl(&["-s", &url], 60);
        let (ours, theirs) = like_curl(&["-s", "--cacert", &ca, &url], 0);
        assert_eq!(ours.stdout, "secure");
        if let Some(c) = theirs {
            assert_eq!(c.stdout, "secure");
        }
        like_curl(&["-s", "--cacert", "/nonexistent/ca.pem", &url], 77);
        server.join().unwrap();
        std::fs::remove_file(&ca).unwrap();
    });
}

#[test]
fn a_tls_handshake_the_server_refuses_is_35() {
    support::scenario(|| {
        let curls = usize::from(curl(&["--version"]).is_some());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            for mut tcp in listener.incoming().flatten().take(1 + curls) {
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut hello = [0u8; 1024];
                let _ = tcp.read(&mut hello);
                // A fatal handshake_failure alert (RFC 8446 section 6): no common parameters.
                let _ = tcp.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
            }
        });
        like_curl(
            &["-s", "--retry", "0", &format!("https://127.0.0.1:{port}/")],
            35,
        );
        server.join().unwrap();
    });
}
