//! Connection buffers that start small and grow on demand.

use ureq::unversioned::transport::Buffers;

use super::conns::BufferSizes;
use super::framing::HeadScanner;

/// Connection buffers that start small and grow on demand: an idle connection holds a few KiB
/// instead of ureq's 2 x 128 KiB, while a response header up to the configured maximum still
/// fits. A header that would need more fails as `LargeResponseHeader` rather than a bare EOF.
#[derive(Debug)]
pub(crate) struct GrowBuffers {
    sizes: BufferSizes,
    input: Vec<u8>,
    // input[start..end] is filled and not yet consumed.
    start: usize,
    end: usize,
    output: Vec<u8>,
    progress: bool,
    // The response heads arriving in this buffer, checked before ureq parses them (`None`
    // for the TCP buffers under TLS, which hold ciphertext).
    scanner: Option<HeadScanner>,
    // Where in `input` a final response head that ureq has not consumed yet ends: see
    // `can_use_input`.
    head_end: Option<usize>,
}

impl GrowBuffers {
    /// Buffers whose input is plaintext HTTP (`scan`: its response heads are checked) or
    /// the ciphertext under a TLS layer (not).
    pub(crate) fn new(sizes: BufferSizes, scan: bool) -> GrowBuffers {
        GrowBuffers {
            sizes,
            input: Vec::new(),
            start: 0,
            end: 0,
            output: Vec::new(),
            progress: false,
            scanner: scan.then(|| HeadScanner::new(sizes.max_input)),
            head_end: None,
        }
    }

    /// Records `amount` bytes read into the free space, and checks any response head in them.
    ///
    /// # Errors
    ///
    /// The response is refused (see `framing`); the error goes up through ureq unchanged.
    pub(super) fn appended(&mut self, amount: usize) -> Result<(), ureq::Error> {
        let from = self.end;
        self.input_appended(amount);
        let Some(scanner) = &mut self.scanner else {
            return Ok(());
        };
        match scanner.scan(&self.input[from..self.end]) {
            Ok(Some(at)) => self.head_end = Some(from + at),
            Ok(None) => {}
            Err(refused) => return Err(ureq::Error::Other(Box::new(refused))),
        }
        Ok(())
    }

    /// A request is about to be written: what arrives next is its response.
    pub(super) fn request_sent(&mut self) {
        if let Some(s) = &mut self.scanner {
            s.request_sent();
        }
    }

    /// False once the connection served a response after which it must be closed.
    pub(super) fn reusable(&self) -> bool {
        self.scanner.as_ref().is_none_or(HeadScanner::reusable)
    }

    /// Whether the input now arriving is a body that only the end of the connection ends.
    pub(super) fn in_close_delimited_body(&self) -> bool {
        self.scanner
            .as_ref()
            .is_some_and(HeadScanner::in_close_delimited_body)
    }

    /// Free space to read into, growing (up to the limit) when there is none.
    pub(super) fn append_buf(&mut self) -> Result<&mut [u8], ureq::Error> {
        if self.end == self.input.len() {
            if self.start > 0 {
                self.input.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.head_end = self.head_end.and_then(|e| e.checked_sub(self.start));
                self.start = 0;
            } else if self.input.len() >= self.sizes.max_input {
                return Err(ureq::Error::LargeResponseHeader(
                    self.input.len(),
                    self.sizes.max_input,
                ));
            }
        }
        if self.end == self.input.len() {
            let grown = (self.input.len() * 2)
                .clamp(self.sizes.input, self.sizes.max_input.max(self.sizes.input));
            self.input.resize(grown, 0);
        }
        Ok(&mut self.input[self.end..])
    }
}

impl Buffers for GrowBuffers {
    fn output(&mut self) -> &mut [u8] {
        if self.output.is_empty() {
            self.output = vec![0; self.sizes.output];
        }
        &mut self.output
    }

    fn input(&self) -> &[u8] {
        &self.input[self.start..self.end]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        match self.append_buf() {
            Ok(_) => &mut self.input[self.end..],
            // ureq treats an empty buffer as "cannot read more"; the transports call
            // `append_buf` themselves and report the typed error.
            Err(_) => &mut [],
        }
    }

    fn input_appended(&mut self, amount: usize) {
        self.end = (self.end + amount).min(self.input.len());
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.start = (self.start + amount).min(self.end);
        // The hint is used once: consumed past, or looked at without progress, it is gone.
        if amount == 0 || self.head_end.is_some_and(|e| e <= self.start) {
            self.head_end = None;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.head_end = None;
            // Give back what one large header needed once it has been read.
            if self.input.len() > self.sizes.input {
                self.input = vec![0; self.sizes.input];
            }
        }
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        // ureq reads a request body through the free input space; make sure there is some.
        const MIN_TMP: usize = 4 * 1024;
        if self.input.len() - self.end < MIN_TMP {
            self.input.resize(self.end + MIN_TMP, 0);
        }
        if self.output.is_empty() {
            self.output = vec![0; self.sizes.output];
        }
        (&mut self.input[self.end..], &mut self.output)
    }

    fn can_use_input(&self) -> bool {
        // ureq reads more before parsing again unless the last parse made progress. When it
        // waited for `100 Continue` and a final response came instead (RFC 9110 §10.1.1: a
        // server may answer at once, e.g. 417), ureq-proto leaves that response unconsumed
        // and ureq would block for bytes that never come while the whole head is already
        // here. A complete final head not consumed yet is usable input.
        self.end > self.start && (self.progress || self.head_end.is_some_and(|e| e > self.start))
    }
}
