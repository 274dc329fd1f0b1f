//! Wiping memory in a way the compiler cannot remove.

use std::mem::MaybeUninit;

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

/// Bytes of stack [`scrub_stack`] overwrites: more than a seal or an open
/// uses below its caller, key derivation and cipher together, as
/// `enclave.rs`'s `the_scrub_reaches_deeper_than_a_seal_or_an_open_goes`
/// measures it: about 2.4 KiB optimised, up to 33 KiB in a debug build
/// (unoptimised AVX2 code gives every vector temporary its own stack slot).
/// crypto::cipher's stack-scrub test checks that nothing of the subkey or
/// keystream is left after it.
pub(crate) const SCRUB: usize = if cfg!(debug_assertions) {
    64 * 1024
} else {
    4096
};

/// Overwrites the stack just below the caller's frame with zeros.
///
/// Called right after a cipher operation returns: the cipher's own frames
/// (keystream blocks, a partial block of plaintext) and the session key's
/// derivation (a copy of a half inside the hash) lay in the stack space
/// this function's frame now occupies, and nothing else wipes them. The
/// cipher's entry points are `#[inline(never)]` for that reason (see
/// `crypto::cipher`); tests/outside.rs's `no_plaintext_left_behind_*` scan
/// a child's whole memory, stacks included, after it sealed and opened.
///
/// Written here rather than taken from `zeroize::zeroize_stack`, which
/// fills its array with one `memset` of the whole size: glibc's `memset`
/// switches to `rep stosb` from 2 KiB up, and on the development machine
/// (AMD EPYC) that made a 4 KiB scrub cost 107-130 ns, against 46-50 ns
/// for the same 4 KiB written in 1 KiB pieces, each below the switch (and
/// 23-25 ns for `zeroize_stack::<2048>`). It runs twice per 32-byte seal
/// and open, so the difference was a tenth of that whole operation
/// (BENCHMARKS.md, issue 13).
#[inline(never)]
pub(crate) fn scrub_stack() {
    // Checked out here, not in `scrub`: a call made from inside `scrub`'s
    // large frame would write below it.
    #[cfg(test)]
    if SKIP_SCRUB.with(|skip| skip.get()) {
        return;
    }
    scrub();
}

/// [`scrub_stack`]'s fill, in a frame of its own.
#[inline(never)]
fn scrub() {
    let mut stack = [MaybeUninit::<u8>::uninit(); SCRUB];
    for piece in stack.chunks_exact_mut(SCRUB_PIECE) {
        // A copy (a `memcpy` even in a debug build, where a loop over the
        // bytes would make every seal 64 KiB of slow stores), which the
        // optimiser turns into a `memset` of the piece.
        piece.copy_from_slice(&ZERO_PIECE);
        // The stores must happen: the barrier is an empty assembly block
        // that the compiler must assume reads the piece. One per piece, so
        // the pieces are not merged into one large fill.
        zeroize::optimization_barrier(piece);
    }
}

/// The pieces [`scrub_stack`] writes, each with a fill of its own.
const SCRUB_PIECE: usize = 1024;

/// What each piece is overwritten with.
const ZERO_PIECE: [MaybeUninit<u8>; SCRUB_PIECE] = [MaybeUninit::new(0); SCRUB_PIECE];

// Whole pieces: `chunks_exact_mut` leaves no remainder unscrubbed.
const _: () = assert!(SCRUB.is_multiple_of(SCRUB_PIECE));

#[cfg(test)]
thread_local! {
    /// Set by tests that measure how deep an operation's frames go, which
    /// the scrub's zeros would hide.
    pub(crate) static SKIP_SCRUB: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
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
