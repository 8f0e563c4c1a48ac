//! Content codings: what the client asks for (`Accept-Encoding`), and the one it decodes
//! itself. ureq undoes `gzip` (always on) and `br` (feature `brotli`) inside its body reader,
//! with its limit counting decoded bytes; `zstd` (feature `zstd`, RFC 9659) is decoded here by
//! `ruzstd`, on top of ureq's reader, under the same body limit counted on decoded bytes.

use std::io::{self, Read};

use ureq::http::header::CONTENT_ENCODING;
use ureq::http::HeaderMap;

/// The `Accept-Encoding` every request sends unless it sets its own: the codings this build
/// decodes, in ureq's order with `zstd` last.
pub(crate) const ACCEPT_ENCODING: &str = match (cfg!(feature = "brotli"), cfg!(feature = "zstd")) {
    (false, false) => "gzip",
    (true, false) => "gzip, br",
    (false, true) => "gzip, zstd",
    (true, true) => "gzip, br, zstd",
};

/// A body reader with the codings ureq leaves in place undone.
pub(crate) enum Decoded<R: Read> {
    /// Nothing left to decode (no coding, or one ureq has undone).
    Plain(R),
    #[cfg(feature = "zstd")]
    Zstd(Box<zstd::ZstdReader<R>>),
}

impl<R: Read> Decoded<R> {
    /// Whether this reader decodes a coding itself (the declared length is then the coded
    /// one).
    pub(crate) fn decodes(&self) -> bool {
        !matches!(self, Decoded::Plain(_))
    }

    /// `reader` (ureq's body reader of a response with these `headers`), decoded within
    /// `limit` decoded bytes.
    #[cfg_attr(not(feature = "zstd"), allow(unused_variables))]
    pub(crate) fn new(reader: R, headers: &HeaderMap, limit: u64) -> Decoded<R> {
        #[cfg(feature = "zstd")]
        if is_zstd(headers) {
            return Decoded::Zstd(Box::new(zstd::ZstdReader::new(reader, limit)));
        }
        Decoded::Plain(reader)
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Plain(r) => r.read(buf),
            #[cfg(feature = "zstd")]
            Decoded::Zstd(r) => r.read(buf),
        }
    }
}

/// Whether the response's one content coding is `zstd` (a longer chain never gets this far:
/// `transport/framing.rs` refuses it).
#[cfg_attr(not(feature = "zstd"), allow(dead_code))]
fn is_zstd(headers: &HeaderMap) -> bool {
    headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|c| c.eq_ignore_ascii_case("zstd"))
}

#[cfg(feature = "zstd")]
mod zstd {
    use std::io::{self, Read};

    use ruzstd::decoding::{FrameDecoder, StreamingDecoder};

    /// Decodes a zstd body: one frame or several in a row (RFC 8878 §3.1), each started on
    /// the first read that needs it, so a slow or failing network read surfaces from `read`
    /// as the body's own error. ruzstd refuses frames whose window is over 100 MiB; the
    /// window's buffer is only touched as far as decoded bytes fill it, and those stop at the
    /// limit.
    pub(crate) struct ZstdReader<R: Read> {
        state: State<R>,
        limit: u64,
        decoded: u64,
    }

    enum State<R: Read> {
        /// Before a frame: its header is read on the next read.
        Between(Source<R>, Option<FrameDecoder>),
        Frame(StreamingDecoder<Source<R>, FrameDecoder>),
        /// Ended, or failed (every later read fails the same way: a decoder cannot resume).
        Done(Option<io::ErrorKind>),
    }

    impl<R: Read> ZstdReader<R> {
        pub(crate) fn new(reader: R, limit: u64) -> Self {
            let source = Source {
                inner: reader,
                held: None,
                failed: None,
            };
            ZstdReader {
                state: State::Between(source, None),
                limit,
                decoded: 0,
            }
        }

        /// Decodes into `buf`; `Ok(0)` at the end of the last frame.
        fn decode(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            loop {
                match std::mem::replace(&mut self.state, State::Done(None)) {
                    State::Done(None) => return Ok(0),
                    State::Done(Some(kind)) => {
                        self.state = State::Done(Some(kind));
                        return Err(kind.into());
                    }
                    State::Between(mut source, decoder) => {
                        if source.at_end()? {
                            return Ok(0);
                        }
                        let frame = match decoder {
                            Some(d) => StreamingDecoder::new_with_decoder(source, d),
                            None => StreamingDecoder::new(source),
                        };
                        self.state = State::Frame(frame.map_err(corrupt)?);
                    }
                    State::Frame(mut frame) => match frame.read(buf) {
                        Ok(0) => {
                            let (source, decoder) = frame.into_parts();
                            self.state = State::Between(source, Some(decoder));
                        }
                        Ok(n) => {
                            self.state = State::Frame(frame);
                            return Ok(n);
                        }
                        // The network's own error (a timeout, a truncated body) as it was,
                        // not as ruzstd wrapped it; anything else is the frame's fault.
                        Err(e) => {
                            let network = frame.get_mut().failed.take();
                            return Err(network
                                .unwrap_or_else(|| ureq::Error::Decompress("zstd", e).into_io()));
                        }
                    },
                }
            }
        }
    }

    impl<R: Read> Read for ZstdReader<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // Room for one byte past the limit: the byte that proves the body is over it.
            let room = self.limit.saturating_sub(self.decoded).saturating_add(1);
            let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            let n = self.decode(&mut buf[..want]).inspect_err(|e| {
                if !matches!(self.state, State::Done(Some(_))) {
                    self.state = State::Done(Some(e.kind()));
                }
            })?;
            self.decoded += n as u64;
            if self.decoded > self.limit {
                self.state = State::Done(Some(io::ErrorKind::Other));
                return Err(ureq::Error::BodyExceedsLimit(self.limit).into_io());
            }
            Ok(n)
        }
    }

    fn corrupt(e: ruzstd::decoding::errors::FrameDecoderError) -> io::Error {
        ureq::Error::Decompress("zstd", io::Error::new(io::ErrorKind::InvalidData, e)).into_io()
    }

    /// ureq's body reader as ruzstd's input: one byte can be held back (to tell the end of
    /// the body from the start of another frame), and the reader's own error is kept for
    /// the caller, since ruzstd reports it wrapped in its own.
    struct Source<R> {
        inner: R,
        held: Option<u8>,
        failed: Option<io::Error>,
    }

    impl<R: Read> Source<R> {
        /// Whether the body has ended; a byte read to find out is held for the next read.
        fn at_end(&mut self) -> io::Result<bool> {
            if self.held.is_some() {
                return Ok(false);
            }
            let mut one = [0u8];
            loop {
                match self.inner.read(&mut one) {
                    Ok(0) => return Ok(true),
                    Ok(_) => {
                        self.held = Some(one[0]);
                        return Ok(false);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }

    impl<R: Read> Read for Source<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if buf.is_empty() {
                return Ok(0);
            }
            if let Some(b) = self.held.take() {
                buf[0] = b;
                return Ok(1);
            }
            self.inner.read(buf).map_err(|e| {
                let kind = e.kind();
                self.failed = Some(e);
                io::Error::from(kind)
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A zstd frame of `blocks` RLE blocks of 128 KiB zeros each (RFC 8878 §3.1.1.2).
        pub(crate) fn zeros(blocks: usize) -> Vec<u8> {
            let mut out = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38];
            for i in 0..blocks {
                let last = u32::from(i + 1 == blocks);
                let header = last | (1 << 1) | (128 * 1024) << 3;
                out.extend(&header.to_le_bytes()[..3]);
                out.push(0);
            }
            out
        }

        fn read_all(body: &[u8], limit: u64) -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            ZstdReader::new(body, limit).read_to_end(&mut out)?;
            Ok(out)
        }

        #[test]
        fn frames_in_a_row_decode_and_an_empty_body_is_empty() {
            let mut two = zeros(2);
            two.extend(zeros(1));
            assert_eq!(read_all(&two, u64::MAX).unwrap(), vec![0; 3 * 128 * 1024]);
            assert!(read_all(&[], 10).unwrap().is_empty());
        }

        #[test]
        fn the_limit_counts_decoded_bytes() {
            let frame = zeros(8);
            assert!(frame.len() < 64);
            assert_eq!(read_all(&frame, 1024 * 1024).unwrap().len(), 1024 * 1024);
            let err = read_all(&frame, 1024 * 1024 - 1).unwrap_err();
            assert!(matches!(
                ureq::Error::from(err),
                ureq::Error::BodyExceedsLimit(l) if l == 1024 * 1024 - 1
            ));
        }

        #[test]
        fn garbage_and_truncation_are_errors_and_stay_errors() {
            let err = read_all(b"not zstd at all", u64::MAX).unwrap_err();
            assert!(matches!(
                ureq::Error::from(err),
                ureq::Error::Decompress("zstd", _)
            ));
            let frame = zeros(2);
            assert!(read_all(&frame[..frame.len() - 2], u64::MAX).is_err());
            let mut r = ZstdReader::new(&b"garbage!"[..], 10);
            let mut buf = [0u8; 8];
            assert!(r.read(&mut buf).is_err());
            assert!(
                r.read(&mut buf).is_err(),
                "a failed decoder does not resume"
            );
        }
    }
}
