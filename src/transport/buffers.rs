//! Connection buffers that start small and grow on demand.

use ureq::unversioned::transport::Buffers;

use super::conns::BufferSizes;

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
}

impl GrowBuffers {
    pub(crate) fn new(sizes: BufferSizes) -> GrowBuffers {
        GrowBuffers {
            sizes,
            input: Vec::new(),
            start: 0,
            end: 0,
            output: Vec::new(),
            progress: false,
        }
    }

    /// Free space to read into, growing (up to the limit) when there is none.
    pub(super) fn append_buf(&mut self) -> Result<&mut [u8], ureq::Error> {
        if self.end == self.input.len() {
            if self.start > 0 {
                self.input.copy_within(self.start..self.end, 0);
                self.end -= self.start;
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
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
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
        self.end > self.start && self.progress
    }
}
