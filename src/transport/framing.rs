//! The response heads a connection receives, checked before ureq acts on them.
//!
//! ureq-proto 0.7 trusts framing it should not: it treats any `chunked` token anywhere in
//! `Transfer-Encoding` as chunked and then ignores `Content-Length`, it consumes any number of
//! 1xx responses, and ureq decodes at most one `gzip` layer of `Content-Encoding`, handing the
//! rest back still encoded. The transport sees every plaintext byte before ureq does, so a
//! small scanner here reads each response head (only the head: the body is not parsed) and
//! refuses what the client must not trust, or marks the connection as not reusable.

use std::ops::ControlFlow;

use crate::error::{ErrorKind, Refused};

/// Interim (1xx) responses accepted before one final response: Go's net/http
/// (`max1xxResponses`) allows 5, and so do we.
pub(crate) const MAX_INTERIM: u32 = 5;

/// Content codings the client decodes: one layer (gzip, and br or zstd with their features,
/// `decode.rs`); more would come back to the caller still encoded, so a longer chain is refused
/// (curl refuses chains over 5, CVE-2022-32206; we cannot decode even 2).
pub(crate) const MAX_CONTENT_CODINGS: usize = 1;

/// What the scanner is looking at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The head of a response (interim or final) is arriving.
    Head,
    /// The final head was read; what follows is its body, until the next request is sent.
    Body { close_delimited: bool },
    /// Not checking: the head did not parse or is larger than the header limit, and ureq
    /// reports that itself.
    Off,
}

/// Watches the response heads of one connection.
#[derive(Debug)]
pub(crate) struct HeadScanner {
    state: State,
    /// The head received so far (at most the header limit).
    head: Vec<u8>,
    max_head: usize,
    /// Interim responses before the current final one.
    interim: u32,
    /// Set once the connection served a response that must not be followed by another.
    no_reuse: bool,
}

/// The facts of one response head that the rules need.
#[derive(Debug, Default)]
struct Head {
    http10: bool,
    status: u16,
    transfer_codings: Vec<String>,
    /// A `Transfer-Encoding` header was present (even an empty one).
    has_transfer_encoding: bool,
    has_content_length: bool,
    content_codings: Vec<String>,
}

impl HeadScanner {
    pub(crate) fn new(max_head: usize) -> HeadScanner {
        HeadScanner {
            state: State::Body {
                close_delimited: false,
            },
            head: Vec::new(),
            max_head,
            interim: 0,
            no_reuse: false,
        }
    }

    /// A request is going out: the next bytes received start a response. While a head is
    /// still awaited (a `100 Continue` was read and the body is being sent) nothing changes.
    pub(crate) fn request_sent(&mut self) {
        if self.state != State::Head {
            self.state = State::Head;
            self.head.clear();
            self.interim = 0;
        }
    }

    /// Whether the connection may serve another request.
    pub(crate) fn reusable(&self) -> bool {
        !self.no_reuse
    }

    /// Whether the bytes now arriving are a body that only the end of the connection ends.
    pub(crate) fn in_close_delimited_body(&self) -> bool {
        self.state
            == State::Body {
                close_delimited: true,
            }
    }

    /// Looks at bytes just received. Returns where in `bytes` a final response head ended,
    /// when one did, or why the response is refused.
    pub(crate) fn scan(&mut self, mut bytes: &[u8]) -> Result<Option<usize>, Refused> {
        let total = bytes.len();
        while self.state == State::Head && !bytes.is_empty() {
            if self.head.is_empty() {
                // httparse skips empty lines before a status line; so must we, or the two
                // would disagree about where the head ends.
                let skip = bytes.iter().take_while(|b| matches!(b, b'\r' | b'\n'));
                bytes = &bytes[skip.count()..];
                if bytes.is_empty() {
                    break;
                }
            }
            if self.head.is_empty() {
                // The usual case: the whole head arrived in one read. It is judged where it
                // lies, not copied first.
                let limit = bytes.len().min(self.max_head.saturating_add(1));
                if let Some((end, head)) = parse_through(&bytes[..limit]) {
                    let flow = self.judge(head)?;
                    bytes = &bytes[end..];
                    if let ControlFlow::Break(()) = flow {
                        return Ok(Some(total - bytes.len()));
                    }
                    continue;
                }
            }
            let searched = self.head.len().saturating_sub(2);
            let room = self.max_head.saturating_sub(self.head.len());
            let take = bytes.len().min(room.saturating_add(1));
            self.head.extend_from_slice(&bytes[..take]);
            let Some(end) = head_end(&self.head, searched) else {
                if self.head.len() > self.max_head {
                    self.state = State::Off;
                }
                return Ok(None);
            };
            let used = take - (self.head.len() - end);
            bytes = &bytes[used..];
            self.head.truncate(end);
            let head = parse_through(&self.head).and_then(|(_, head)| head);
            self.head.clear();
            let flow = self.judge(head);
            if let ControlFlow::Break(()) = flow? {
                return Ok(Some(total - bytes.len()));
            }
        }
        Ok(None)
    }

    /// Applies the rules to the head just completed: `Continue` for an interim response (the
    /// next head follows), `Break` for the final one.
    fn judge(&mut self, head: Option<Head>) -> Result<ControlFlow<()>, Refused> {
        let Some(head) = head else {
            self.state = State::Off;
            return Ok(ControlFlow::Break(()));
        };
        // 101 ends the HTTP exchange; ureq handles it as final.
        if (100..200).contains(&head.status) && head.status != 101 {
            self.interim += 1;
            if self.interim > MAX_INTERIM {
                return Err(refused_protocol(format!(
                    "more than {MAX_INTERIM} interim (1xx) responses before the final one"
                )));
            }
            return Ok(ControlFlow::Continue(()));
        }
        check_transfer_encoding(&head)?;
        check_content_encoding(&head)?;
        // RFC 9112 §6.3: with both headers the message is framed by Transfer-Encoding, and
        // "the connection MUST be closed after the message is processed" (the two may be an
        // attempt at request smuggling or response splitting); HTTP/1.0 with TE likewise.
        if head.has_transfer_encoding && (head.has_content_length || head.http10) {
            self.no_reuse = true;
        }
        let no_body = matches!(head.status, 204 | 304);
        self.state = State::Body {
            close_delimited: !no_body && !head.has_transfer_encoding && !head.has_content_length,
        };
        Ok(ControlFlow::Break(()))
    }
}

/// RFC 9112 §6.1 and §6.3 for a response's `Transfer-Encoding`.
fn check_transfer_encoding(head: &Head) -> Result<(), Refused> {
    if !head.has_transfer_encoding || head.http10 {
        // ureq ignores Transfer-Encoding in an HTTP/1.0 response and frames it by
        // Content-Length or the close, as RFC 9112 §6.1 asks ("MUST treat the message as if
        // the framing is faulty"); the connection is not reused (see `judge`).
        return Ok(());
    }
    let codings = &head.transfer_codings;
    // §6.3: if chunked is not the final coding of a response, only the close ends the body.
    // ureq would decode it as chunked anyway; refusing is the safe reading.
    if codings.last().is_none_or(|c| c != "chunked") {
        return Err(refused_protocol(format!(
            "transfer-encoding whose last coding is not chunked ({})",
            list(codings)
        )));
    }
    // §6.1: "A sender MUST NOT apply the chunked transfer coding more than once".
    if codings[..codings.len() - 1].iter().any(|c| c == "chunked") {
        return Err(refused_protocol(format!(
            "transfer-encoding applies chunked more than once ({})",
            list(codings)
        )));
    }
    // ureq removes the chunked framing only: any coding before it would reach the caller
    // still applied.
    if codings.len() > 1 {
        return Err(Refused::new(
            ErrorKind::Decode(format!(
                "transfer-encoding chain of {} codings ({}); the client removes only chunked",
                codings.len(),
                list(codings)
            )),
            "transfer coding not supported",
        ));
    }
    Ok(())
}

/// A `Content-Encoding` the client cannot undo fully is refused rather than handed back still
/// encoded as a success (curl: "Reject response due to more than 5 content encodings").
fn check_content_encoding(head: &Head) -> Result<(), Refused> {
    let codings = &head.content_codings;
    if codings.len() <= MAX_CONTENT_CODINGS {
        return Ok(());
    }
    Err(Refused::new(
        ErrorKind::Decode(format!(
            "content-encoding chain of {} codings ({}); the client decodes at most {}",
            codings.len(),
            list(codings),
            MAX_CONTENT_CODINGS
        )),
        "content coding chain too long",
    ))
}

fn refused_protocol(why: String) -> Refused {
    Refused::new(ErrorKind::Protocol, why)
}

/// The first few codings of a chain, for an error message of bounded length.
fn list(codings: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s: String = codings
        .iter()
        .take(SHOWN)
        .map(|c| c.chars().take(32).collect::<String>())
        .collect::<Vec<_>>()
        .join(", ");
    if codings.len() > SHOWN {
        s.push_str(", ...");
    }
    s
}

/// The end of a head in `buf` (just past its empty line), searching from `from`: a line feed
/// followed by an empty line, as httparse accepts it (`\n\n` or `\n\r\n`).
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf.get(from..)?).find_map(|i| {
        let i = from + i;
        match buf.get(i + 1..) {
            Some([b'\n', ..]) => Some(i + 2),
            Some([b'\r', b'\n', ..]) => Some(i + 3),
            _ => None,
        }
    })
}

/// Reads a head from the start of `buf` up to its empty line, in one pass: where it ends
/// (just past the empty line), and the status line and framing headers (`None` when the
/// status line is not HTTP/1.x with a three-digit status: ureq then fails the response
/// itself). `None` while the empty line has not arrived. Like httparse, a bare LF ends a line
/// as CRLF does.
fn parse_through(buf: &[u8]) -> Option<(usize, Option<Head>)> {
    let mut start = 0;
    // `None` until the status line is read, then what it said.
    let mut head: Option<Option<Head>> = None;
    for nl in memchr::memchr_iter(b'\n', buf) {
        let line = &buf[start..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        start = nl + 1;
        let Some(parsed) = &mut head else {
            head = Some(status(line));
            continue;
        };
        if line.is_empty() {
            let mut parsed = parsed.take();
            if let Some(p) = &mut parsed {
                // `identity` is no coding at all (RFC 9110 §8.4.1 keeps it out of
                // Content-Encoding; some servers send it anyway).
                p.content_codings.retain(|c| c != "identity");
            }
            return Some((nl + 1, parsed));
        }
        // Only the framing headers matter: a line that cannot start one is not searched.
        let Some(parsed) = parsed else { continue };
        if !matches!(line.first(), Some(b't' | b'T' | b'c' | b'C')) {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            parsed.has_transfer_encoding = true;
            push_codings(&mut parsed.transfer_codings, value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            parsed.has_content_length = true;
        } else if name.eq_ignore_ascii_case(b"content-encoding") {
            push_codings(&mut parsed.content_codings, value);
        }
    }
    None
}

/// A head's status line: HTTP/1.x and a three-digit status, or `None`.
fn status(line: &[u8]) -> Option<Head> {
    let http10 = match line.get(..8)? {
        b"HTTP/1.0" => true,
        b"HTTP/1.1" => false,
        _ => return None,
    };
    let code = line.get(9..12)?;
    if line.get(8) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(Head {
        http10,
        status: code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')),
        ..Head::default()
    })
}

/// The comma-separated codings of one header line, lowercased, parameters dropped. A hostile
/// server's list is bounded by the header limit.
fn push_codings(into: &mut Vec<String>, value: &[u8]) {
    for item in value.split(|&b| b == b',') {
        let item = item.split(|&b| b == b';').next().unwrap_or_default();
        let item = String::from_utf8_lossy(item).trim().to_ascii_lowercase();
        if !item.is_empty() {
            into.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner() -> HeadScanner {
        let mut s = HeadScanner::new(64 * 1024);
        s.request_sent();
        s
    }

    fn kind(r: Result<Option<usize>, Refused>) -> ErrorKind {
        r.unwrap_err().kind.clone()
    }

    #[test]
    fn a_plain_head_ends_where_its_empty_line_does_whatever_the_reads() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        for split in 1..wire.len() {
            let mut s = scanner();
            let first = s.scan(&wire[..split]).unwrap();
            let second = s.scan(&wire[split..]).unwrap();
            let end = first.or(second.map(|e| e + split));
            assert_eq!(end, Some(wire.len() - 2), "split at {split}");
            assert!(s.reusable() && !s.in_close_delimited_body());
        }
    }

    #[test]
    fn interim_responses_are_counted_up_to_the_cap() {
        let mut s = scanner();
        let five = "HTTP/1.1 100 Continue\r\n\r\n".repeat(5);
        assert_eq!(s.scan(five.as_bytes()).unwrap(), None);
        assert_eq!(
            kind(s.scan(b"HTTP/1.1 102 Processing\n\n")),
            ErrorKind::Protocol
        );
        // The count is per response.
        let mut s = scanner();
        let ok = format!("{five}HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(s.scan(ok.as_bytes()).unwrap(), Some(ok.len()));
        s.request_sent();
        assert_eq!(s.scan(five.as_bytes()).unwrap(), None);
    }

    #[test]
    fn transfer_encoding_rules() {
        let te = |v: &str, extra: &str| {
            let mut s = scanner();
            let head = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {v}\r\n{extra}\r\n");
            (s.scan(head.as_bytes()), s.reusable())
        };
        assert!(matches!(te("chunked", ""), (Ok(Some(_)), true)));
        assert!(matches!(
            te("Chunked", "Content-Length: 5\r\n"),
            (Ok(Some(_)), false)
        ));
        assert_eq!(kind(te("chunked, gzip", "").0), ErrorKind::Protocol);
        assert_eq!(kind(te("gzip", "").0), ErrorKind::Protocol);
        assert_eq!(kind(te("", "").0), ErrorKind::Protocol);
        assert_eq!(kind(te("chunked, chunked", "").0), ErrorKind::Protocol);
        assert!(
            matches!(kind(te("gzip, chunked", "").0), ErrorKind::Decode(m) if m.contains("2 codings"))
        );
    }

    #[test]
    fn content_coding_chains_longer_than_one_are_refused() {
        let mut s = scanner();
        let ok = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Encoding: identity\r\n\r\n";
        assert!(s.scan(ok).unwrap().is_some());
        let forty = vec!["gzip"; 40].join(", ");
        let mut s = scanner();
        let head = format!("HTTP/1.1 200 OK\r\nContent-Encoding: {forty}\r\n\r\n");
        let e = kind(s.scan(head.as_bytes()));
        assert!(
            matches!(&e, ErrorKind::Decode(m) if m.contains("40 codings")),
            "{e:?}"
        );
        // Split over two header lines counts the same.
        let mut s = scanner();
        let two = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\ncontent-encoding: gzip\r\n\r\n";
        assert!(matches!(kind(s.scan(two)), ErrorKind::Decode(m) if m.contains("2 codings")));
    }

    #[test]
    fn close_delimited_bodies_are_recognised() {
        let mut s = scanner();
        s.scan(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody").unwrap();
        assert!(s.in_close_delimited_body());
        let mut s = scanner();
        s.scan(b"HTTP/1.1 304 Not Modified\r\n\r\n").unwrap();
        assert!(!s.in_close_delimited_body());
    }

    #[test]
    fn garbage_and_oversized_heads_are_left_to_ureq() {
        let mut s = scanner();
        assert_eq!(
            s.scan(b"garbage\r\n\r\nHTTP/1.1 100 x\r\n\r\n").unwrap(),
            Some(11)
        );
        let mut s = HeadScanner::new(16);
        s.request_sent();
        assert_eq!(s.scan(&[b'a'; 100]).unwrap(), None);
        assert_eq!(s.scan(b"\r\n\r\n").unwrap(), None);
    }
}
