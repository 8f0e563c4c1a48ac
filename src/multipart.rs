//! `multipart/form-data` bodies (RFC 7578): a [`Form`] of text fields, in-memory parts and
//! files streamed from disk, sent with
//! [`RequestBuilder::multipart`](crate::RequestBuilder::multipart).
//!
//! A form of only text and bytes parts is encoded up front and kept, so the request can be
//! retried and re-sent on a 307/308 like any kept body. A form with a file or reader part is
//! streamed: sent once, never retried or replayed (as [`body_reader`](crate::RequestBuilder::body_reader)),
//! with a `Content-Length` when every part's length is known (files: their size when the
//! part was made).
//!
//! Field names and file names are escaped as browsers do (the WHATWG HTML rule): `"` as
//! `%22`, CR as `%0D` and LF as `%0A`, so no value can end the `Content-Disposition` header
//! or start another one.
//!
//! # Examples
//!
//! ```no_run
//! use http_sentinel::multipart::{Form, Part};
//! use http_sentinel::{ClientPool, PoolConfig};
//!
//! let pool = ClientPool::new(PoolConfig::default())?;
//! let client = pool.checkout()?;
//! let form = Form::new()
//!     .text("title", "Quarterly report")
//!     .part("thumbnail", Part::bytes(vec![0x89, b'P', b'N', b'G']).file_name("t.png").mime_str("image/png")?)
//!     .part("report", Part::file("report.pdf")?);
//! let response = client.post("http://127.0.0.1:8080/upload").multipart(form).send()?;
//! # let _ = response;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;

use crate::error::Error;
use crate::request_id::new_request_id;

/// A `multipart/form-data` body: named parts in the order added, between random boundaries.
///
/// `Debug` shows the parts' names, file names, content types and sizes, never their contents
/// (a form may carry a password).
///
/// # Examples
///
/// ```
/// use http_sentinel::multipart::Form;
///
/// let form = Form::new().text("user", "alice").text("password", "hunter2");
/// assert!(form.boundary().len() >= 32);
/// assert!(!format!("{form:?}").contains("hunter2"));
/// ```
pub struct Form {
    boundary: String,
    parts: Vec<(String, Part)>,
}

/// One part of a [`Form`]: its contents, and optionally a file name and a content type.
pub struct Part {
    body: PartBody,
    file_name: Option<String>,
    mime: Option<String>,
}

enum PartBody {
    Bytes(Vec<u8>),
    Reader {
        reader: Box<dyn Read + Send + 'static>,
        len: Option<u64>,
    },
}

impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<_> = self.parts.iter().map(|(n, p)| (n.as_str(), p)).collect();
        f.debug_struct("Form")
            .field("boundary", &self.boundary)
            .field("parts", &parts)
            .finish()
    }
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, len) = match &self.body {
            PartBody::Bytes(b) => ("bytes", Some(b.len() as u64)),
            PartBody::Reader { len, .. } => ("stream", *len),
        };
        f.debug_struct("Part")
            .field("kind", &kind)
            .field("len", &len)
            .field("file_name", &self.file_name)
            .field("mime", &self.mime)
            .finish()
    }
}

impl Default for Form {
    fn default() -> Self {
        Form::new()
    }
}

impl Form {
    /// An empty form with a fresh random boundary.
    pub fn new() -> Form {
        Form {
            boundary: format!("sentinel-{}", new_request_id().replace('-', "")),
            parts: Vec::new(),
        }
    }

    /// The boundary between the parts (in the `Content-Type` the request is sent with).
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// Adds a text field.
    pub fn text(self, name: impl Into<String>, value: impl Into<String>) -> Form {
        self.part(name, Part::text(value))
    }

    /// Adds a part.
    pub fn part(mut self, name: impl Into<String>, part: Part) -> Form {
        self.parts.push((name.into(), part));
        self
    }

    /// Adds the file at `path`, streamed from disk, as [`Part::file`] makes it.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened, or is not a regular file.
    pub fn file(self, name: impl Into<String>, path: impl AsRef<Path>) -> io::Result<Form> {
        Ok(self.part(name, Part::file(path)?))
    }

    /// Whether every part is in memory, so that the encoded body can be kept and re-sent.
    pub fn is_repeatable(&self) -> bool {
        self.parts
            .iter()
            .all(|(_, p)| matches!(p.body, PartBody::Bytes(_)))
    }

    /// The `Content-Type` of the encoded form.
    pub(crate) fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The encoded body: all of it in memory when every part is, else a reader over the
    /// parts with the total length when every part's length is known.
    pub(crate) fn encode(self) -> Encoded {
        let mut segments: Vec<Segment> = Vec::with_capacity(self.parts.len() * 2 + 1);
        let mut head = Vec::new();
        for (name, part) in self.parts {
            head.extend_from_slice(b"--");
            head.extend_from_slice(self.boundary.as_bytes());
            head.extend_from_slice(b"\r\n");
            part_headers(&mut head, &name, &part);
            match part.body {
                PartBody::Bytes(b) => head.extend_from_slice(&b),
                PartBody::Reader { reader, len } => {
                    segments.push(Segment::Bytes(std::mem::take(&mut head)));
                    segments.push(Segment::Reader { reader, len });
                }
            }
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"--");
        head.extend_from_slice(self.boundary.as_bytes());
        head.extend_from_slice(b"--\r\n");
        if segments.is_empty() {
            return Encoded::Bytes(head);
        }
        segments.push(Segment::Bytes(head));
        let len = segments.iter().try_fold(0u64, |sum, s| match s {
            Segment::Bytes(b) => Some(sum + b.len() as u64),
            Segment::Reader { len, .. } => len.map(|n| sum + n),
        });
        let reader = FormReader {
            segments: segments.into_iter().map(Segment::into_reader).collect(),
        };
        Encoded::Stream(Box::new(reader), len)
    }
}

/// An encoded form, for the request builder.
pub(crate) enum Encoded {
    Bytes(Vec<u8>),
    Stream(Box<dyn Read + Send + 'static>, Option<u64>),
}

enum Segment {
    Bytes(Vec<u8>),
    Reader {
        reader: Box<dyn Read + Send + 'static>,
        len: Option<u64>,
    },
}

impl Segment {
    fn into_reader(self) -> Box<dyn Read + Send + 'static> {
        match self {
            Segment::Bytes(b) => Box::new(Cursor::new(b)),
            Segment::Reader {
                reader,
                len: Some(len),
            } => Box::new(Exact { reader, left: len }),
            Segment::Reader { reader, len: None } => reader,
        }
    }
}

/// The parts' readers one after the other.
struct FormReader {
    segments: std::collections::VecDeque<Box<dyn Read + Send + 'static>>,
}

impl Read for FormReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(first) = self.segments.front_mut() {
            let n = first.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.segments.pop_front();
        }
        Ok(0)
    }
}

/// A part of a declared length: exactly that many bytes, or an error. The length went into
/// `Content-Length`, so a file that shrank since must fail the request rather than leave the
/// server waiting for bytes that never come; one that grew is sent as it was.
struct Exact {
    reader: Box<dyn Read + Send + 'static>,
    left: u64,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.reader.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a multipart part ended before its length (the file shrank?)",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A part's `Content-Disposition` and `Content-Type` lines and the blank line after them.
fn part_headers(out: &mut Vec<u8>, name: &str, part: &Part) {
    out.extend_from_slice(b"Content-Disposition: form-data; name=\"");
    escape_into(out, name);
    out.push(b'"');
    if let Some(file_name) = &part.file_name {
        out.extend_from_slice(b"; filename=\"");
        escape_into(out, file_name);
        out.push(b'"');
    }
    out.extend_from_slice(b"\r\n");
    if let Some(mime) = &part.mime {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(mime.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The WHATWG HTML escape for names and file names in `multipart/form-data`: LF as `%0A`,
/// CR as `%0D`, `"` as `%22`; everything else as it is (UTF-8).
fn escape_into(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'\n' => out.extend_from_slice(b"%0A"),
            b'\r' => out.extend_from_slice(b"%0D"),
            b'"' => out.extend_from_slice(b"%22"),
            b => out.push(b),
        }
    }
}

impl Part {
    fn new(body: PartBody) -> Part {
        Part {
            body,
            file_name: None,
            mime: None,
        }
    }

    /// A text part (no content type, as browsers send a text field).
    pub fn text(value: impl Into<String>) -> Part {
        Part::new(PartBody::Bytes(value.into().into_bytes()))
    }

    /// An in-memory part. Give it a [`file_name`](Self::file_name) and a
    /// [`mime_str`](Self::mime_str) to send it as an upload.
    pub fn bytes(value: impl Into<Vec<u8>>) -> Part {
        Part::new(PartBody::Bytes(value.into()))
    }

    /// The file at `path`, streamed from disk when the request is sent (a form with a file is
    /// sent once, never retried). Its file name is the path's last component; its content
    /// type is guessed from the extension (`application/octet-stream` when unknown); its
    /// length, for `Content-Length`, is the file's size now.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened, or is not a regular file.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use http_sentinel::multipart::Part;
    ///
    /// let part = Part::file("photos/cat.jpg")?.file_name("cat.jpg");
    /// # let _ = part;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn file(path: impl AsRef<Path>) -> io::Result<Part> {
        let path = path.as_ref();
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let mut part = Part::reader_with_length(file, meta.len());
        part.file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        part.mime = Some(guess_mime(path).to_owned());
        Ok(part)
    }

    /// A part streamed from `reader` of unknown length: the form is sent chunked, once.
    pub fn reader(reader: impl Read + Send + 'static) -> Part {
        Part::new(PartBody::Reader {
            reader: Box::new(reader),
            len: None,
        })
    }

    /// A part streamed from `reader`, which must yield exactly `len` bytes (the form then
    /// has a `Content-Length`; a reader that ends early fails the request). Sent once.
    pub fn reader_with_length(reader: impl Read + Send + 'static, len: u64) -> Part {
        Part::new(PartBody::Reader {
            reader: Box::new(reader),
            len: Some(len),
        })
    }

    /// Sets the file name sent in `Content-Disposition`.
    pub fn file_name(mut self, name: impl Into<String>) -> Part {
        self.file_name = Some(name.into());
        self
    }

    /// Sets the part's `Content-Type`, e.g. `image/png` or `text/csv; charset=utf-8`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) when `mime` is not
    /// `type/subtype` followed by optional parameters, or holds a control character.
    ///
    /// # Examples
    ///
    /// ```
    /// use http_sentinel::multipart::Part;
    ///
    /// assert!(Part::bytes("a,b").mime_str("text/csv").is_ok());
    /// assert!(Part::bytes("a,b").mime_str("text/csv\r\nX-Evil: 1").unwrap_err().is_invalid_request());
    /// ```
    pub fn mime_str(mut self, mime: &str) -> Result<Part, Error> {
        if !valid_mime(mime) {
            return Err(Error::invalid("multipart: invalid content type for a part"));
        }
        self.mime = Some(mime.to_owned());
        Ok(self)
    }
}

/// `type/subtype[; params]` in visible ASCII (and spaces, tabs) only.
fn valid_mime(mime: &str) -> bool {
    let essence = mime.split(';').next().unwrap_or("").trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-*'".contains(&b))
    };
    let shape = matches!(essence.split_once('/'), Some((t, s)) if token(t) && token(s));
    shape
        && mime
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// The content type of a file by its extension: the common upload types, else
/// `application/octet-stream`.
fn guess_mime(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("txt" | "log") => "text/plain",
        Some("html" | "htm") => "text/html",
        Some("css") => "text/css",
        Some("csv") => "text/csv",
        Some("md") => "text/markdown",
        Some("js" | "mjs") => "text/javascript",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("gz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("svg") => "image/svg+xml",
        Some("mp3") => "audio/mpeg",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(form: Form) -> Vec<u8> {
        match form.encode() {
            Encoded::Bytes(b) => b,
            Encoded::Stream(mut r, len) => {
                let mut out = Vec::new();
                r.read_to_end(&mut out).unwrap();
                if let Some(len) = len {
                    assert_eq!(out.len() as u64, len);
                }
                out
            }
        }
    }

    #[test]
    fn a_text_and_bytes_form_is_encoded_exactly() {
        let mut form = Form::new().text("a", "1").part(
            "f",
            Part::bytes(&b"\x00\xff"[..])
                .file_name("x.bin")
                .mime_str("application/octet-stream")
                .unwrap(),
        );
        form.boundary = "B".into();
        assert!(form.is_repeatable());
        let expected: &[u8] = b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
            --B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\n\
            Content-Type: application/octet-stream\r\n\r\n\x00\xff\r\n--B--\r\n";
        assert_eq!(bytes_of(form), expected);
    }

    #[test]
    fn names_are_escaped_as_browsers_do() {
        let mut form = Form::new().part(
            "a\"b\r\nc",
            Part::text("v").file_name("evil\".txt\r\nX-Injected: 1"),
        );
        form.boundary = "B".into();
        let body = String::from_utf8(bytes_of(form)).unwrap();
        assert!(
            body.contains("name=\"a%22b%0D%0Ac\"; filename=\"evil%22.txt%0D%0AX-Injected: 1\"\r\n")
        );
        assert!(!body.contains("\r\nX-Injected"));
    }

    #[test]
    fn streamed_parts_chain_with_the_total_length_when_known() {
        let mut form = Form::new()
            .text("a", "1")
            .part("r", Part::reader_with_length(&b"xyz"[..], 3));
        form.boundary = "B".into();
        assert!(!form.is_repeatable());
        let body = bytes_of(form);
        assert!(body.ends_with(b"\r\n\r\nxyz\r\n--B--\r\n"));
        let unknown = Form::new().part("r", Part::reader(&b"xyz"[..]));
        assert!(matches!(unknown.encode(), Encoded::Stream(_, None)));
    }

    #[test]
    fn a_reader_shorter_than_its_length_fails() {
        let form = Form::new().part("r", Part::reader_with_length(&b"xy"[..], 3));
        let Encoded::Stream(mut r, Some(_)) = form.encode() else {
            panic!("not streamed with a length");
        };
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn mime_types_are_checked_and_guessed() {
        assert!(valid_mime("text/plain; charset=utf-8"));
        assert!(valid_mime("application/vnd.api+json"));
        for bad in [
            "",
            "text",
            "/plain",
            "text/",
            "te xt/plain",
            "text/plain\n",
            "a/b\u{e9}",
        ] {
            assert!(!valid_mime(bad), "{bad:?}");
        }
        assert_eq!(guess_mime(Path::new("a/B.PNG")), "image/png");
        assert_eq!(guess_mime(Path::new("a/b")), "application/octet-stream");
    }

    #[test]
    fn boundaries_differ() {
        assert_ne!(Form::new().boundary(), Form::new().boundary());
    }
}
