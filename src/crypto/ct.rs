//! Constant-time comparison and copy.
//!
//! "Constant time" here means the time taken depends on the lengths of the
//! inputs only, never on their contents: no branch and no memory access
//! depends on a secret byte. Lengths are not secret.

use subtle::Choice;

/// Whether `a` and `b` hold the same bytes, in time that depends only on
/// their lengths. Slices of different lengths are unequal (at once: lengths
/// are not secret).
pub(crate) fn eq(a: &[u8], b: &[u8]) -> Choice {
    if a.len() != b.len() {
        return Choice::from(0);
    }
    // OR of all XORs: zero exactly when every byte matches. The fold visits
    // every byte with no early exit; black_box keeps the compiler from
    // reasoning about the value afterwards.
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    let diff = u16::from(std::hint::black_box(diff));
    // 0 -> 0xffff -> bit 8 set; 1..=255 -> 0..=254 -> bit 8 clear.
    Choice::from(((diff.wrapping_sub(1) >> 8) & 1) as u8)
}

/// Copies `src` into `dst` (same length), in time that depends only on the
/// length: a plain `memcpy`, whose speed depends on length and alignment
/// but never on the bytes copied.
pub(crate) fn copy(dst: &mut [u8], src: &[u8]) {
    dst.copy_from_slice(src);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq_bool(a: &[u8], b: &[u8]) -> bool {
        eq(a, b).into()
    }

    #[test]
    fn equal_and_unequal() {
        assert!(eq_bool(b"", b""));
        assert!(eq_bool(b"abc", b"abc"));
        assert!(!eq_bool(b"abc", b"abd"));
        assert!(!eq_bool(b"abc", b"ab"));
        assert!(!eq_bool(b"", b"a"));
    }

    #[test]
    fn every_single_bit_difference_is_seen() {
        let a = vec![0x5au8; 300];
        for i in 0..a.len() {
            for bit in 0..8 {
                let mut b = a.clone();
                b[i] ^= 1 << bit;
                assert!(!eq_bool(&a, &b), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn copy_copies() {
        let mut d = [0u8; 5];
        copy(&mut d, b"hello");
        assert_eq!(&d, b"hello");
    }
}
