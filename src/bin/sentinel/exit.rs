//! Exit codes: curl's numbers (its man page, "EXIT CODES") for the same failures, so a script
//! written against curl branches the same way.

use http_sentinel::error::TlsFailure;
use http_sentinel::{Error, ErrorKind};

pub(crate) const OK: u8 = 0;
/// A failure with no closer curl code (a worker that panicked, a job never started).
pub(crate) const OTHER: u8 = 1;
/// curl's CURLE_FAILED_INIT; sentinel uses it for bad usage, as its `--help` always said.
pub(crate) const USAGE: u8 = 2;
pub(crate) const BAD_URL: u8 = 3;
pub(crate) const PROXY: u8 = 5;
pub(crate) const RESOLVE: u8 = 6;
pub(crate) const CONNECT: u8 = 7;
pub(crate) const WEIRD_REPLY: u8 = 8;
pub(crate) const PARTIAL: u8 = 18;
pub(crate) const HTTP_ERROR: u8 = 22;
pub(crate) const WRITE: u8 = 23;
pub(crate) const READ: u8 = 26;
pub(crate) const TIMEOUT: u8 = 28;
pub(crate) const TLS_HANDSHAKE: u8 = 35;
pub(crate) const TOO_MANY_REDIRECTS: u8 = 47;
pub(crate) const GOT_NOTHING: u8 = 52;
pub(crate) const RECV: u8 = 56;
pub(crate) const PEER_VERIFICATION: u8 = 60;
pub(crate) const FILESIZE: u8 = 63;
pub(crate) const CACERT: u8 = 77;

/// The curl exit code for a failed call. `got_response` tells a connection lost before the
/// response head (curl: 52 "empty reply", 56 "recv failure") from one lost in the body (18
/// "partial file").
pub(crate) fn for_error(e: &Error, got_response: bool) -> u8 {
    match e.kind() {
        ErrorKind::InvalidRequest(_) => BAD_URL,
        ErrorKind::InvalidConfig(_) => USAGE,
        ErrorKind::Dns => RESOLVE,
        // An open breaker refused to connect: to a script, the host could not be reached.
        ErrorKind::Connect(_) | ErrorKind::CircuitOpen { .. } => CONNECT,
        // curl: 35 when the handshake fails, 60 when the peer's certificate does not verify.
        ErrorKind::Tls(TlsFailure::Handshake) => TLS_HANDSHAKE,
        ErrorKind::Tls(_) => PEER_VERIFICATION,
        // No slot of the host's concurrency limit before the deadline: the call timed out.
        ErrorKind::Timeout(_) | ErrorKind::PoolTimeout(_) | ErrorKind::Overloaded { .. } => TIMEOUT,
        ErrorKind::Protocol => WEIRD_REPLY,
        ErrorKind::Io { .. } if got_response => PARTIAL,
        ErrorKind::Io { kind, .. } if is_eof(*kind) => GOT_NOTHING,
        ErrorKind::Io { .. } | ErrorKind::HeaderTooLarge(_) => RECV,
        ErrorKind::BodyTooLarge(_) => FILESIZE,
        ErrorKind::Status(_) | ErrorKind::RetryAfterTooLong { .. } => HTTP_ERROR,
        ErrorKind::TooManyRedirects(_) => TOO_MANY_REDIRECTS,
        // curl's "unsupported protocol": a redirect to a scheme it will not follow.
        ErrorKind::RedirectRefused(_) => OTHER,
        _ => OTHER,
    }
}

fn is_eof(kind: std::io::ErrorKind) -> bool {
    matches!(
        kind,
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionAborted
    )
}
