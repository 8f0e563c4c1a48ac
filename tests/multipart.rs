//! `multipart/form-data` bodies: what the loopback test server receives is parsed back part by
//! part (boundary, names, file names, content types, exact bytes); a form of text and bytes
//! is retried on a 503, a form streaming a file from disk is sent once.

use std::path::PathBuf;
use std::time::Duration;

use http_sentinel::multipart::{Form, Part};
use http_sentinel::ErrorKind;

mod support;

use support::scenario;
use support::server::{Behaviour, LoggedRequest, Reply, TestServer};

/// One part as parsed back from the wire.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    disposition: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits a `multipart/form-data` body by the boundary of its `Content-Type` (RFC 7578),
/// strictly: the body must start with the first delimiter and end with the close delimiter.
fn parse(request: &LoggedRequest) -> Vec<Parsed> {
    let content_type = request.header("content-type").expect("content-type");
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    let delimiter = format!("--{boundary}");
    let mut rest = request
        .body
        .strip_prefix(delimiter.as_bytes())
        .expect("starts with the delimiter");
    let separator = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    loop {
        if rest == b"--\r\n" {
            return parts;
        }
        rest = rest.strip_prefix(b"\r\n").expect("CRLF after a delimiter");
        let head_end = find(rest, b"\r\n\r\n").expect("end of the part's headers");
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let mut disposition = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let (name, value) = line.split_once(": ").unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-disposition" => disposition = Some(value.to_owned()),
                "content-type" => content_type = Some(value.to_owned()),
                other => panic!("unexpected part header {other}"),
            }
        }
        let body_start = head_end + 4;
        let body_len = find(&rest[body_start..], separator.as_bytes()).expect("next delimiter");
        parts.push(Parsed {
            disposition: disposition.expect("content-disposition"),
            content_type,
            body: rest[body_start..body_start + body_len].to_vec(),
        });
        rest = &rest[body_start + body_len + separator.len()..];
    }
}

/// A file under the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        let dir = std::env::temp_dir().join(format!("sentinel-multipart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = self.0.parent().map(std::fs::remove_dir);
    }
}

fn only(server: &TestServer, path: &str) -> LoggedRequest {
    let mut all: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect();
    assert_eq!(all.len(), 1, "{path}: {} requests", all.len());
    all.remove(0)
}

/// Bytes that look like a boundary, CRLFs and every byte value, to show nothing is mangled.
fn awkward_bytes() -> Vec<u8> {
    let mut b = b"--not-the-boundary\r\n\r\n".to_vec();
    b.extend(0..=255u8);
    b
}

#[test]
fn a_multipart_body_parses_back_exactly() {
    scenario(|| {
        let server = TestServer::builder()
            .route("/upload", Behaviour::Echo)
            .start();
        let pool = support::pool(support::config(Duration::from_secs(5)));
        let client = pool.checkout().unwrap();
        let file_bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let file = TempFile::new("report.csv", &file_bytes);
        let form = Form::new()
            .text("title", "Q3 ünïcode")
            .part(
                "thumb",
                Part::bytes(awkward_bytes())
                    .file_name("t.png")
                    .mime_str("image/png")
                    .unwrap(),
            )
            .part("report", Part::file(&file.0).unwrap())
            .part("na\"me\r\n", Part::text("v").file_name("a\"b\r\nc.txt"));
        let response = client
            .post(server.url("/upload").as_str())
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        drop(response);
        let sent = only(&server, "/upload");
        assert_eq!(
            sent.header("content-length"),
            Some(sent.body.len().to_string().as_str()),
            "a form of known lengths is sent with Content-Length"
        );
        assert_eq!(sent.header("transfer-encoding"), None);
        let parts = parse(&sent);
        let expected = [
            Parsed {
                disposition: "form-data; name=\"title\"".into(),
                content_type: None,
                body: "Q3 ünïcode".into(),
            },
            Parsed {
                disposition: "form-data; name=\"thumb\"; filename=\"t.png\"".into(),
                content_type: Some("image/png".into()),
                body: awkward_bytes(),
            },
            Parsed {
                disposition: "form-data; name=\"report\"; filename=\"report.csv\"".into(),
                content_type: Some("text/csv".into()),
                body: file_bytes,
            },
            Parsed {
                disposition: "form-data; name=\"na%22me%0D%0A\"; filename=\"a%22b%0D%0Ac.txt\""
                    .into(),
                content_type: None,
                body: b"v".to_vec(),
            },
        ];
        assert_eq!(parts.len(), expected.len());
        for (got, want) in parts.iter().zip(&expected) {
            assert_eq!(got, want);
        }
    });
}

fn flaky_server() -> TestServer {
    TestServer::builder()
        .route(
            "/put",
            Behaviour::Sequence(vec![
                Behaviour::Respond(Reply::text(503, "busy")),
                Behaviour::Respond(Reply::text(200, "stored")),
            ]),
        )
        .start()
}

#[test]
fn a_bytes_form_is_retried_on_503_with_the_same_body() {
    scenario(|| {
        let server = flaky_server();
        let pool = support::pool(support::config(Duration::from_secs(5)));
        let client = pool.checkout().unwrap();
        let form = Form::new()
            .text("a", "1")
            .part("b", Part::bytes(vec![1, 2, 3]).file_name("b.bin"));
        assert!(form.is_repeatable());
        let response = client
            .put(server.url("/put").as_str())
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.attempts(), 2);
        drop(response);
        let sent = server.requests();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].body, sent[1].body);
        assert_eq!(
            sent[0].header("content-type"),
            sent[1].header("content-type")
        );
        assert_eq!(parse(&sent[1]).len(), 2);
    });
}

#[test]
fn a_streamed_file_form_is_not_retried_on_503() {
    scenario(|| {
        let server = flaky_server();
        let pool = support::pool(support::config(Duration::from_secs(5)));
        let client = pool.checkout().unwrap();
        let file = TempFile::new("upload.bin", b"file contents");
        let form = Form::new().text("a", "1").file("f", &file.0).unwrap();
        assert!(!form.is_repeatable());
        let response = client
            .put(server.url("/put").as_str())
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.attempts(), 1);
        drop(response);
        let sent = only(&server, "/put");
        let parts = parse(&sent);
        assert_eq!(parts[1].body, b"file contents");
        assert_eq!(
            parts[1].content_type.as_deref(),
            Some("application/octet-stream")
        );
    });
}

#[test]
fn a_streamed_form_is_not_re_sent_on_a_307_and_a_bad_part_type_is_refused() {
    scenario(|| {
        let server = TestServer::builder()
            .route(
                "/moved",
                Behaviour::Redirect {
                    status: 307,
                    location: "/upload".into(),
                },
            )
            .route("/upload", Behaviour::Echo)
            .start();
        let pool = support::pool(support::config(Duration::from_secs(5)));
        let client = pool.checkout().unwrap();
        let file = TempFile::new("again.bin", b"xyz");
        let form = Form::new().file("f", &file.0).unwrap();
        let err = client
            .post(server.url("/moved").as_str())
            .multipart(form)
            .send()
            .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::RedirectRefused(_)),
            "{err:?}"
        );
        assert_eq!(server.requests_to("/upload"), 0);
        let err = Part::bytes("x")
            .mime_str("text/plain\r\nX-Injected: 1")
            .unwrap_err();
        assert!(err.is_invalid_request());
        let dir = std::env::temp_dir();
        assert_eq!(
            Part::file(&dir).unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
    });
}
