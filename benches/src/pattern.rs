//! The bytes the benchmark writes: a pattern computed from (stream, offset), so any block read
//! back anywhere can be checked without keeping a copy. A stream is a file (or a writer's
//! region), and for overwrites a version: each rewrite of a block gets a stream of its own.

/// Fill `buf`, which sits at byte `offset` (a multiple of 8) of stream `stream`.
pub fn fill(buf: &mut [u8], stream: u64, offset: u64) {
    debug_assert_eq!(offset % 8, 0);
    let base = offset / 8;
    for (i, w) in buf.chunks_mut(8).enumerate() {
        let v = word(stream, base + i as u64).to_le_bytes();
        w.copy_from_slice(&v[..w.len()]);
    }
}

/// The first byte offset in `buf` (at `offset` of `stream`) that differs from the pattern.
pub fn first_mismatch(buf: &[u8], stream: u64, offset: u64) -> Option<u64> {
    let base = offset / 8;
    for (i, w) in buf.chunks(8).enumerate() {
        let v = word(stream, base + i as u64).to_le_bytes();
        if w != &v[..w.len()] {
            let at = w
                .iter()
                .zip(v.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Some(offset + (i * 8 + at) as u64);
        }
    }
    None
}

/// splitmix64 of the stream and word index.
fn word(stream: u64, index: u64) -> u64 {
    let mut z =
        (stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_buffer_checks_and_a_changed_byte_is_found() {
        let mut b = vec![0u8; 4096];
        fill(&mut b, 3, 8192);
        assert_eq!(first_mismatch(&b, 3, 8192), None);
        assert!(first_mismatch(&b, 4, 8192).is_some());
        assert!(first_mismatch(&b, 3, 0).is_some());
        b[1000] ^= 1;
        assert_eq!(first_mismatch(&b, 3, 8192), Some(8192 + 1000));
        // A piece of a stream matches the same bytes of the whole.
        let mut whole = vec![0u8; 16384];
        fill(&mut whole, 9, 0);
        assert_eq!(first_mismatch(&whole[8192..12288], 9, 8192), None);
    }
}
