//! Wiping memory in a way the compiler cannot remove.

/// Overwrites `buf` with zeros, in a way the optimiser cannot elide.
///
/// The zeros are written with an ordinary (vectorised) fill, then the
/// buffer is handed to [`zeroize::optimization_barrier`], an empty
/// inline-assembly block that the compiler must assume reads the memory.
/// The stores therefore have to happen, even when `buf` is never read
/// again: the technique of glibc's `explicit_bzero`, at `memset` speed
/// (zeroize's own `Zeroize for [u8]` writes byte by byte, volatile).
///
/// ```
/// let mut password = *b"hunter2";
/// memguard::wipe_bytes(&mut password);
/// assert_eq!(password, [0u8; 7]);
/// ```
pub fn wipe_bytes(buf: &mut [u8]) {
    buf.fill(0);
    zeroize::optimization_barrier(buf);
}

/// Bytes of stack [`scrub_stack`] overwrites: more than the cipher's
/// deepest call uses, as crypto::cipher's stack-scrub test measures it:
/// under 4 KiB optimised (where it left nothing on the stack at all), up
/// to 28 KiB in a debug build (unoptimised AVX2 code gives every vector
/// temporary its own stack slot).
const SCRUB: usize = if cfg!(debug_assertions) {
    64 * 1024
} else {
    4096
};

/// Overwrites the stack just below the caller's frame with zeros.
///
/// Called right after a cipher operation returns: the cipher's own frames
/// (keystream blocks, a partial block of plaintext) lay in the stack space
/// this function's frame now occupies, and nothing else wipes them. The
/// cipher's entry points are `#[inline(never)]` for that reason (see
/// `crypto::cipher`); tests/outside.rs's `no_plaintext_left_behind_*` scan
/// a child's whole memory, stacks included, after it sealed and opened.
pub(crate) fn scrub_stack() {
    zeroize::zeroize_stack::<SCRUB>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipes_every_byte() {
        for len in [0usize, 1, 7, 64, 4097] {
            let mut v: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
            wipe_bytes(&mut v);
            assert!(v.iter().all(|&b| b == 0), "len {len}");
        }
    }
}
