//! Gzip streams of zeros written by hand (no compression crate needed): a decompression bomb
//! of any size `1 + 258 * k`, 13 bits per 258 inflated bytes.

/// A gzip member inflating to `len` zero bytes (`len` = 1 + 258 × k): a literal zero, then
/// k copies of "repeat the last 258 bytes at distance 1", in one fixed-Huffman block, so the
/// compressed size is about len / 159.
pub fn gzip_of_zeros(len: usize) -> Vec<u8> {
    gzip_zeros(len, true)
}

/// As [`gzip_of_zeros`], with a zero CRC in the trailer: for bombs too large to checksum in a
/// debug build, whose reader is meant to stop at a limit long before the trailer.
pub fn gzip_bomb(len: usize) -> Vec<u8> {
    gzip_zeros(len, false)
}

fn gzip_zeros(len: usize, crc: bool) -> Vec<u8> {
    assert_eq!((len - 1) % 258, 0);
    let mut bits = BitWriter::default();
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // BTYPE = fixed Huffman
    bits.code(0x30, 8); // literal 0
    for _ in 0..(len - 1) / 258 {
        bits.code(0xC5, 8); // length symbol 285: 258 bytes, no extra bits
        bits.code(0, 5); // distance symbol 0: distance 1
    }
    bits.code(0, 7); // end of block
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend(bits.finish());
    out.extend(if crc { crc32_of_zeros(len) } else { 0 }.to_le_bytes());
    out.extend((len as u32).to_le_bytes());
    out
}

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl BitWriter {
    /// Appends the `count` low bits of `value`, least significant first (DEFLATE's order for
    /// header fields and extra bits).
    fn put(&mut self, value: u32, count: u32) {
        for i in 0..count {
            self.acc |= ((value >> i) & 1) << self.n;
            self.n += 1;
            if self.n == 8 {
                self.out.push(self.acc as u8);
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    /// Appends a Huffman code, most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        for i in (0..len).rev() {
            self.put((code >> i) & 1, 1);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

fn crc32_of_zeros(len: usize) -> u32 {
    let table: Vec<u32> = (0..256u32)
        .map(|mut c| {
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            c
        })
        .collect();
    let mut crc = !0u32;
    for _ in 0..len {
        crc = table[(crc & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}
