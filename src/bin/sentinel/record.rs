//! What one URL came to: the JSON line, the `-w` variables and the exit code all read from it.

use std::time::Duration;

use serde::ser::{Serialize, SerializeStruct, Serializer};

/// One URL's outcome.
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// The input line (1-based; skipped lines count), or the URL's position on the command line.
    pub(crate) line: usize,
    /// The URL as given, credentials redacted.
    pub(crate) url: String,
    pub(crate) method: String,
    /// The final status, also when the call failed after a response (`Retry-After` too long,
    /// a body cut short, `--fail`).
    pub(crate) status: Option<u16>,
    pub(crate) bytes: u64,
    pub(crate) attempts: u32,
    pub(crate) redirects: u32,
    pub(crate) elapsed: Duration,
    /// The URL that answered last, credentials redacted.
    pub(crate) effective: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) remote_ip: Option<String>,
    /// The response head as `-D` writes it, when `-D` was given.
    pub(crate) head: Option<String>,
    /// The file the body was saved to.
    pub(crate) file: Option<String>,
    pub(crate) error: Option<Failure>,
    /// The curl exit code for this URL alone.
    pub(crate) exit: u8,
}

/// Why a URL failed: the error class (the library's names, plus `http_error`, `write` and
/// `read` for sentinel's own) and a message without secrets.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) class: &'static str,
    pub(crate) message: String,
}

impl Record {
    /// Retries the call made: attempts beyond the first at each hop of the redirect chain.
    pub(crate) fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1 + self.redirects)
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut r = s.serialize_struct("Record", 13)?;
        r.serialize_field("line", &self.line)?;
        r.serialize_field("url", &self.url)?;
        r.serialize_field("status", &self.status)?;
        r.serialize_field("bytes", &self.bytes)?;
        r.serialize_field("attempts", &self.attempts)?;
        r.serialize_field("retries", &self.retries())?;
        r.serialize_field("redirects", &self.redirects)?;
        r.serialize_field("ms", &(self.elapsed.as_millis() as u64))?;
        r.serialize_field("exit", &self.exit)?;
        r.serialize_field("error", &self.error.as_ref().map(|e| e.class))?;
        r.serialize_field("message", &self.error.as_ref().map(|e| &e.message))?;
        if let Some(file) = &self.file {
            r.serialize_field("file", file)?;
        } else {
            r.skip_field("file")?;
        }
        match (&self.effective, self.redirects) {
            (Some(url), 1..) => r.serialize_field("url_effective", url)?,
            _ => r.skip_field("url_effective")?,
        }
        r.end()
    }
}
