//! One URL, start to end: send, judge the response as curl would (`--fail`, `--max-redirs 0`),
//! then stream the body to its target, telling read failures (the server's) from write failures
//! (ours).

use std::io::{self, Read, Write};
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Instant;

use http_sentinel::{redact_url, Client, Error, ErrorKind, Response};

use crate::args::Fail;
use crate::exit;
use crate::output::{head_text, Target};
use crate::record::{Failure, Record};
use crate::spec::Spec;

/// What every fetch of a run shares.
pub(crate) struct Ctx {
    pub(crate) spec: Spec,
    pub(crate) fail: Fail,
    /// `--max-redirs 0`: a redirect is an error (47), as curl's `-L --max-redirs 0`.
    pub(crate) no_redirects: bool,
    /// Keep the response head in the record (for `-D`).
    pub(crate) keep_head: bool,
    /// Look up `%{remote_ip}` (for `-w`).
    pub(crate) want_ip: bool,
}

/// Fetches `url` (input line `line`) and writes its body to `target`.
pub(crate) fn fetch(client: &Client, ctx: &Ctx, line: usize, url: &str, target: Target) -> Record {
    let started = Instant::now();
    let mut rec = Record {
        line,
        url: redact_url(url),
        method: ctx.spec.method.clone(),
        ..Record::default()
    };
    if let Some(response) = send(client, ctx, url, &mut rec) {
        receive(response, &target, &mut rec);
    }
    rec.elapsed = started.elapsed();
    rec
}

/// Sends the request; `None` when there is no body to read (the record says why).
fn send(client: &Client, ctx: &Ctx, url: &str, rec: &mut Record) -> Option<Response> {
    // curl guesses http:// for a URL without a scheme ("example.com/x").
    let full = match url.contains("://") {
        true => url.to_owned(),
        false => format!("http://{url}"),
    };
    let response = match ctx.spec.prepare(client, &full).send() {
        Ok(r) => r,
        Err(e) => {
            failed_call(ctx, &full, &e, rec);
            return None;
        }
    };
    rec.status = Some(response.status().as_u16());
    rec.attempts = response.attempts();
    rec.redirects = response.redirects();
    rec.effective = Some(redact_url(&response.url().to_string()));
    rec.content_type = response.header("content-type").map(str::to_owned);
    if ctx.want_ip {
        rec.remote_ip = response
            .remote_addr()
            .map(|a| a.ip())
            .or_else(|| peer_guess(&response))
            .map(|a| a.to_string());
    }
    if ctx.keep_head {
        rec.head = Some(head_text(&response));
    }
    judge(ctx, response, rec)
}

/// curl's verdicts on a response: a redirect under `--max-redirs 0`, a status over 399 under
/// `--fail`.
fn judge(ctx: &Ctx, response: Response, rec: &mut Record) -> Option<Response> {
    let status = response.status();
    if ctx.no_redirects && status.is_redirection() && response.header("location").is_some() {
        let msg = "maximum (0) redirects followed".to_owned();
        fail(rec, "too_many_redirects", exit::TOO_MANY_REDIRECTS, msg);
        return None;
    }
    if status.as_u16() >= 400 && ctx.fail != Fail::No {
        let msg = format!("the requested URL returned error: {}", status.as_u16());
        fail(rec, "http_error", exit::HTTP_ERROR, msg);
        if ctx.fail == Fail::Quiet {
            return None;
        }
    }
    Some(response)
}

/// Fills the record of a call that ended in an error.
fn failed_call(ctx: &Ctx, url: &str, e: &Error, rec: &mut Record) {
    rec.attempts = e.attempts();
    rec.redirects = e.redirects();
    // The server answered (Retry-After beyond what the call allows): keep its status.
    rec.status = e.status().map(|s| s.as_u16());
    let code = match e.kind() {
        // A final status is a failure only under --fail, as in curl.
        ErrorKind::RetryAfterTooLong { .. } if ctx.fail == Fail::No => exit::OK,
        ErrorKind::InvalidRequest(_) if !is_http(url) => exit::OTHER,
        _ => exit::for_error(e, false),
    };
    fail(rec, e.class().as_str(), code, e.to_string());
}

/// curl's "unsupported protocol" (1) is for a scheme other than http(s).
fn is_http(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
}

fn fail(rec: &mut Record, class: &'static str, code: u8, message: String) {
    rec.exit = code;
    rec.error = Some(Failure { class, message });
}

/// Streams the body to `target`.
fn receive(response: Response, target: &Target, rec: &mut Record) {
    let head = match target {
        Target::Stdout { head: true } => Some(head_text(&response)),
        _ => None,
    };
    let mut out = match target.open() {
        Ok(out) => out,
        Err(e) => return write_failed(rec, target, &e),
    };
    if let Target::File(path) = target {
        rec.file = Some(path.display().to_string());
    }
    if let Some(head) = head {
        if let Err(e) = out.write_all(head.as_bytes()) {
            return write_failed(rec, target, &e);
        }
    }
    let mut body = response.into_reader();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return read_failed(rec, &e),
        };
        rec.bytes += n as u64;
        if let Err(e) = out.write_all(&buf[..n]) {
            return write_failed(rec, target, &e);
        }
    }
    if let Err(e) = out.flush() {
        write_failed(rec, target, &e);
    }
}

fn read_failed(rec: &mut Record, e: &io::Error) {
    match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        Some(ours) => fail(
            rec,
            ours.class().as_str(),
            exit::for_error(ours, true),
            ours.to_string(),
        ),
        None => fail(rec, "io", exit::PARTIAL, format!("reading body: {e}")),
    }
}

fn write_failed(rec: &mut Record, target: &Target, e: &io::Error) {
    let what = match target {
        Target::File(path) => format!("writing {}: {e}", path.display()),
        _ => format!("writing output: {e}"),
    };
    fail(rec, "write", exit::WRITE, what);
}

/// Where the response does not name its peer (through a SOCKS proxy): the URL's IP, else the
/// first address its host name resolves to, the one the connector tries first.
fn peer_guess(response: &Response) -> Option<IpAddr> {
    let url = response.url();
    let host = url.host()?.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    let port = url.port_u16().unwrap_or(match url.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    (host, port).to_socket_addrs().ok()?.next().map(|a| a.ip())
}
