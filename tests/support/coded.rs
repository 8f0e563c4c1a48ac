//! Brotli and zstd bodies of zeros, small on the wire and large decoded: decompression bombs
//! for the `brotli` and `zstd` features, without an encoder in the dev-dependencies.

/// Decoded size of [`BROTLI_8_MIB_OF_ZEROS`].
pub const BROTLI_ZEROS_LEN: usize = 8 * 1024 * 1024;

/// 8 MiB of zeros as brotli (quality 11, 16 MiB window) writes them: 14 bytes.
pub const BROTLI_8_MIB_OF_ZEROS: [u8; 14] = [
    0x9f, 0xff, 0xff, 0x7f, 0xf8, 0x27, 0x00, 0xe2, 0xb1, 0x40, 0x20, 0xf7, 0xfe, 0x0f,
];

/// One zstd frame (RFC 8878 §3.1.1) of `blocks` RLE blocks, each 128 KiB of zeros in 4 bytes:
/// no content size, no checksum, a 128 KiB window.
pub fn zstd_of_zeros(blocks: usize) -> Vec<u8> {
    let mut out = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38];
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        // Last_Block (1 bit), Block_Type 1 = RLE (2 bits), Block_Size (21 bits).
        let header = last | (1 << 1) | ((128 * 1024) << 3);
        out.extend(&header.to_le_bytes()[..3]);
        out.push(0);
    }
    out
}

/// The decoded size of [`zstd_of_zeros`]`(blocks)`.
pub const fn zstd_zeros_len(blocks: usize) -> usize {
    blocks * 128 * 1024
}
