//! The outermost transport of every connection: puts the real secrets into each request head
//! just before it reaches the socket, and takes `Set-Cookie` values and `Location` secrets
//! out of each response head before ureq parses (and at `trace` hex-dumps) it. The vault of
//! placeholders is `secrets.rs`.
//!
//! It wraps whatever the connector chain produced (plain TCP, TLS, a proxy tunnel, the fuzz
//! targets' scripted peer), so it always sees the plaintext HTTP of the exchange and never the
//! TLS records or a proxy's `CONNECT`. Per connection it keeps a small state machine: a new
//! exchange (the engine bumps its number once per attempt) starts with a request head, which
//! is held until its blank line is complete (ureq writes a head line by line when its output
//! buffer is small, so a placeholder is only ever substituted in a complete head, never in
//! body bytes); then response heads are rewritten as they complete, up to the final one
//! (after any 1xx), and body bytes are never touched. A request without secrets is passed
//! through untouched at the cost of one flag read.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

use crate::metrics::otel::ConnGauge;
use crate::url::sensitive_query_values;

use super::conns::{is_proxy_leg, Connections};
use super::secrets::{find, Received};

/// Wraps every connection its inner connector opens in a [`HeadFilter`].
#[derive(Debug)]
pub(crate) struct SwapConnector<C> {
    pub(super) inner: C,
    pub(super) conns: Arc<Connections>,
    /// The proxy's URI, if any: the proxy leg of a connection is carried inside the
    /// target's connection, whose filter already handles the heads; filtering it again
    /// would keep the blanked `Set-Cookie` values as the real ones.
    pub(super) proxy: Option<ureq::http::Uri>,
}

impl<C: Connector> Connector for SwapConnector<C> {
    type Out = HeadFilter<C::Out>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(self
            .inner
            .connect(details, chained)?
            .map(|inner| HeadFilter {
                inner,
                active: !is_proxy_leg(self.proxy.as_ref(), details),
                conns: self.conns.clone(),
                exchange: None,
                held: None,
                response_pending: false,
                gauge: if is_proxy_leg(self.proxy.as_ref(), details) {
                    None
                } else {
                    self.conns.gauge(details.uri)
                },
            }))
    }
}

#[derive(Debug)]
pub(crate) struct HeadFilter<T> {
    inner: T,
    /// False on a proxy leg: bytes pass untouched.
    active: bool,
    conns: Arc<Connections>,
    /// The exchange whose request this connection is carrying.
    exchange: Option<u64>,
    /// The request head written so far, while it holds placeholders and is not complete.
    held: Option<Vec<u8>>,
    /// The final response head of the exchange has not been seen yet.
    response_pending: bool,
    /// This connection in OpenTelemetry's `http.client.open_connections`, when counted.
    gauge: Option<ConnGauge>,
}

impl<T: Transport> HeadFilter<T> {
    /// Writes `bytes` through the inner transport's output buffer.
    fn send(&mut self, mut bytes: &[u8], timeout: NextTimeout) -> Result<(), ureq::Error> {
        while !bytes.is_empty() {
            let out = self.inner.buffers().output();
            let n = out.len().min(bytes.len());
            if n == 0 {
                return Err(ureq::Error::Io(io::ErrorKind::WriteZero.into()));
            }
            out[..n].copy_from_slice(&bytes[..n]);
            self.inner.transmit_output(n, timeout)?;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Blanks what must not reach ureq in the response heads now complete in the input.
    fn hide_in_response(&mut self) -> Result<(), ureq::Error> {
        let names = self.conns.secrets().query_names();
        let input = self.inner.buffers().input();
        let mut blank = Vec::new();
        let mut at = 0;
        let mut received = None;
        while let Some((len, secret)) = head_extent(&input[at..]) {
            let head = &input[at..at + len];
            let mut found = Received::default();
            if secret {
                scan_head(head, &names, &mut found, &mut |r| {
                    blank.push(at + r.start..at + r.end)
                });
            }
            at += len;
            if !is_informational(head) {
                self.response_pending = false;
                received = Some(found);
                break;
            }
        }
        if !blank.is_empty() {
            let mut copy = input.to_vec();
            for r in blank {
                copy[r].fill(b'*');
            }
            refill(self.inner.buffers(), &copy)?;
        }
        if let Some(found) = received {
            if !found.set_cookie.is_empty() || found.location.is_some() {
                self.conns.secrets().keep_received(found);
            }
        }
        Ok(())
    }
}

impl<T: Transport> Transport for HeadFilter<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if let Some(g) = &mut self.gauge {
            g.active();
        }
        if !self.active {
            return self.inner.transmit_output(amount, timeout);
        }
        let secrets = self.conns.secrets();
        let exchange = secrets.exchange();
        if self.exchange != Some(exchange) {
            self.exchange = Some(exchange);
            self.response_pending = true;
            self.held = secrets.armed().then(Vec::new);
        }
        let Some(held) = &mut self.held else {
            return self.inner.transmit_output(amount, timeout);
        };
        let from = held.len().saturating_sub(3);
        held.extend_from_slice(&self.inner.buffers().output()[..amount]);
        let Some(end) = find(&held[from..], b"\r\n\r\n").map(|i| from + i + 4) else {
            // ureq writes the rest of the head next; it is sent once complete.
            return Ok(());
        };
        let mut head = self.held.take().unwrap_or_default();
        let body = head.split_off(end);
        let head = self.conns.secrets().reveal(&head);
        self.send(&head, timeout)?;
        self.send(&body, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let progress = self.inner.await_input(timeout)?;
        if self.response_pending {
            if progress {
                self.conns.clock().first_byte();
            }
            self.hide_in_response()?;
        }
        Ok(progress)
    }

    fn is_open(&mut self) -> bool {
        // ureq asks when the connection goes back to its pool and when it is taken out.
        if let Some(g) = &mut self.gauge {
            g.idle();
        }
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// Replaces the unconsumed input with `bytes` (as long as it): `Buffers` lends the filled
/// input only for reading, so it is consumed and appended again.
fn refill(buffers: &mut dyn Buffers, bytes: &[u8]) -> Result<(), ureq::Error> {
    buffers.input_consume(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let free = buffers.input_append_buf();
        let n = free.len().min(rest.len());
        if n == 0 {
            return Err(ureq::Error::LargeResponseHeader(bytes.len(), bytes.len()));
        }
        free[..n].copy_from_slice(&rest[..n]);
        buffers.input_appended(n);
        rest = &rest[n..];
    }
    Ok(())
}

/// The length of the complete response head at the start of `input` (leading blank lines
/// included, which the head parser skips), or `None` while it is incomplete. Like the parser
/// (httparse), a bare LF ends a line as CRLF does. With it, whether a line of the head may be
/// a `Set-Cookie` or a `Location` (its first letters say so): a head without one needs no
/// [`scan_head`], so the usual head is read once, not twice.
fn head_extent(input: &[u8]) -> Option<(usize, bool)> {
    let start = input.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let mut secret = false;
    memchr::memchr_iter(b'\n', &input[start..]).find_map(|i| {
        let next = start + i + 1;
        match input.get(next..) {
            Some([b'\n', ..]) => Some((next + 1, secret)),
            Some([b'\r', b'\n', ..]) => Some((next + 2, secret)),
            Some(line) => {
                secret |= matches!(
                    line,
                    [b's' | b'S', b'e' | b'E', b't' | b'T', ..] | [b'l' | b'L', b'o' | b'O', ..]
                );
                None
            }
            None => None,
        }
    })
}

/// A 1xx head, after which the final response head follows.
fn is_informational(head: &[u8]) -> bool {
    let start = head.iter().position(|&b| b != b'\r' && b != b'\n');
    let line = &head[start.unwrap_or(head.len())..];
    let status = line.iter().position(|&b| b == b' ').map(|i| &line[i + 1..]);
    matches!(status, Some([b'1', ..]))
}

/// Finds the secrets in one response head: each `Set-Cookie` value, and the userinfo and
/// sensitive query values of `Location`. Reports their ranges to `blank` and keeps the real
/// values in `found`.
fn scan_head(
    head: &[u8],
    names: &[String],
    found: &mut Received,
    blank: &mut dyn FnMut(Range<usize>),
) {
    let mut line_start = 0;
    for end in memchr::memchr_iter(b'\n', head).chain(std::iter::once(head.len())) {
        let line = &head[line_start..end];
        let this_start = line_start;
        line_start = end + 1;
        // Only `Set-Cookie` and `Location` are rewritten: other lines are not searched.
        if !matches!(line.first(), Some(b's' | b'S' | b'l' | b'L')) {
            continue;
        }
        let line_start = this_start;
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = &line[..colon];
        let value = trim(line, colon + 1);
        if value.is_empty() {
            continue;
        }
        let shift = |r: Range<usize>| line_start + r.start..line_start + r.end;
        if name.eq_ignore_ascii_case(b"set-cookie") {
            found.set_cookie.push(line[value.clone()].to_vec());
            blank(shift(value));
        } else if name.eq_ignore_ascii_case(b"location") && found.location.is_none() {
            let hidden = location_secrets(&line[value.clone()], names);
            if !hidden.is_empty() {
                for r in hidden {
                    blank(shift(value.start + r.start..value.start + r.end));
                }
                found.location = Some(line[value].to_vec());
            }
        }
    }
}

/// The range of `line[from..]` without surrounding spaces, tabs and the CR.
fn trim(line: &[u8], from: usize) -> Range<usize> {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r');
    let start = line[from..]
        .iter()
        .position(|b| !ws(b))
        .map_or(line.len(), |i| from + i);
    let end = line[start..]
        .iter()
        .rposition(|b| !ws(b))
        .map_or(start, |i| start + i + 1);
    start..end
}

/// The ranges of a `Location` value that hold a secret: its userinfo, and the values of the
/// query parameters named in `names`.
fn location_secrets(location: &[u8], names: &[String]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let authority_start = match find(location, b"//") {
        Some(i)
            if location[..i]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b':') =>
        {
            i + 2
        }
        _ => location.len(),
    };
    let rest = &location[authority_start..];
    let authority_len = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    if let Some(at) = rest[..authority_len].iter().rposition(|&b| b == b'@') {
        out.push(authority_start..authority_start + at);
    }
    let Some(q) = location.iter().position(|&b| b == b'?') else {
        return out;
    };
    let end = location[q..]
        .iter()
        .position(|&b| b == b'#')
        .map_or(location.len(), |i| q + i);
    if let Ok(query) = std::str::from_utf8(&location[q + 1..end]) {
        let shift = q + 1;
        out.extend(
            sensitive_query_values(query, names)
                .into_iter()
                .map(|r| shift + r.start..shift + r.end),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_len(input: &[u8]) -> Option<usize> {
        head_extent(input).map(|(len, _)| len)
    }

    #[test]
    fn heads_end_at_the_first_blank_line_after_leading_blank_lines() {
        assert_eq!(head_len(b"HTTP/1.1 200 OK\r\na: b\r\n\r\nbody"), Some(25));
        assert_eq!(head_len(b"HTTP/1.1 200 OK\na: b\n\nbody"), Some(22));
        assert_eq!(head_len(b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"), Some(23));
        assert_eq!(head_len(b"HTTP/1.1 200 OK\r\na: b\r\n"), None);
        assert_eq!(head_len(b"\r\n"), None);
        // Only a line that may be a Set-Cookie or a Location asks for the scan.
        assert_eq!(
            head_extent(b"HTTP/1.1 200 OK\r\nServer: x\r\nLink: y\r\n\r\n"),
            Some((39, false))
        );
        assert_eq!(
            head_extent(b"HTTP/1.1 200 OK\r\nSET-COOKIE: a=b\r\n\r\n"),
            Some((36, true))
        );
        assert_eq!(
            head_extent(b"HTTP/1.1 302 Found\nlocation: /x\n\n"),
            Some((33, true))
        );
        assert!(is_informational(b"HTTP/1.1 100 Continue\r\n\r\n"));
        assert!(!is_informational(b"HTTP/1.1 200 OK\r\n\r\n"));
        assert!(!is_informational(b"garbage"));
    }

    #[test]
    fn set_cookie_values_and_location_secrets_are_found() {
        let head = b"HTTP/1.1 302 Found\r\nSet-Cookie:  sid=abc; HttpOnly \r\nset-cookie: b=2\r\nLocation: http://u:pw@h.test/n?api_key=k1&x=2\r\nX-Other: v\r\n\r\n";
        let mut found = Received::default();
        let mut ranges = Vec::new();
        scan_head(head, &["api_key".into()], &mut found, &mut |r| {
            ranges.push(r)
        });
        let shown: Vec<&[u8]> = ranges.iter().map(|r| &head[r.clone()]).collect();
        assert_eq!(shown, [&b"sid=abc; HttpOnly"[..], b"b=2", b"u:pw", b"k1"]);
        assert_eq!(
            found.set_cookie,
            [b"sid=abc; HttpOnly".to_vec(), b"b=2".to_vec()]
        );
        assert_eq!(
            found.location.as_deref(),
            Some(&b"http://u:pw@h.test/n?api_key=k1&x=2"[..])
        );
        // A Location without secrets is left alone and not recorded.
        let mut found = Received::default();
        scan_head(
            b"HTTP/1.1 301 x\r\nLocation: /a@b?c=d\r\n\r\n",
            &[],
            &mut found,
            &mut |_| panic!("nothing to blank"),
        );
        assert!(found.location.is_none());
        assert_eq!(location_secrets(b"//u@h.test/", &[]), vec![(2..3)]);
    }
}
