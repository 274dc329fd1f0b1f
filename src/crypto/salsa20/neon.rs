//! NEON (aarch64): four Salsa20 blocks at a time, one block per 32-bit
//! lane. Compile-checked for aarch64; run it under qemu-user for the tests.

use core::arch::aarch64::*;

use super::{counter_words, double_rounds, quarter_rounds, BLOCK};

/// Bytes per step: four blocks.
pub(super) const STEP: usize = 4 * BLOCK;

macro_rules! rotl {
    ($v:expr, $r:literal) => {{
        let v = $v;
        vorrq_u32(vshlq_n_u32::<$r>(v), vshrq_n_u32::<{ 32 - $r }>(v))
    }};
}

/// One step of a quarter round: `x[t] ^= (x[p] + x[q]) <<< r`.
macro_rules! step {
    ($x:ident, $t:literal, $p:literal, $q:literal, $r:literal) => {
        $x[$t] = veorq_u32($x[$t], rotl!(vaddq_u32($x[$p], $x[$q]), $r));
    };
}

/// XORs `src` with the keystream from block `counter` on, into `dst`, four
/// blocks per step. `src` and `dst` have the same length, a multiple of
/// [`STEP`] (anything past the last whole step is left alone).
///
/// # Safety
/// The CPU must have NEON (every aarch64 CPU does).
#[target_feature(enable = "neon")]
pub(super) unsafe fn xor_steps(state: &[u32; 16], counter: u64, src: &[u8], dst: &mut [u8]) {
    let mut counter = counter;
    for (src, dst) in src.chunks_exact(STEP).zip(dst.chunks_exact_mut(STEP)) {
        let (lo, hi) = counter_words::<4>(counter);
        let mut x: [uint32x4_t; 16] = core::array::from_fn(|i| vdupq_n_u32(state[i]));
        // SAFETY: `lo` and `hi` are four `u32` each.
        x[8] = unsafe { vld1q_u32(lo.as_ptr()) };
        // SAFETY: as for `lo`.
        x[9] = unsafe { vld1q_u32(hi.as_ptr()) };
        let input = x;
        double_rounds!(x, step, 4);
        for (w, i) in x.iter_mut().zip(input) {
            *w = vaddq_u32(*w, i);
        }
        // Transpose each group of four words back into four blocks.
        for g in 0..4 {
            let ab = vtrnq_u32(x[4 * g], x[4 * g + 1]);
            let cd = vtrnq_u32(x[4 * g + 2], x[4 * g + 3]);
            let blocks = [
                vcombine_u32(vget_low_u32(ab.0), vget_low_u32(cd.0)),
                vcombine_u32(vget_low_u32(ab.1), vget_low_u32(cd.1)),
                vcombine_u32(vget_high_u32(ab.0), vget_high_u32(cd.0)),
                vcombine_u32(vget_high_u32(ab.1), vget_high_u32(cd.1)),
            ];
            for (b, ks) in blocks.into_iter().enumerate() {
                let at = b * BLOCK + g * 16;
                let s = &src[at..at + 16];
                let d = &mut dst[at..at + 16];
                // SAFETY: `s` is 16 bytes (indexing checked its bounds);
                // vld1q needs no alignment for bytes.
                let v = unsafe { vld1q_u8(s.as_ptr()) };
                let out = veorq_u8(v, vreinterpretq_u8_u32(ks));
                // SAFETY: `d` is 16 bytes (indexing checked its bounds);
                // vst1q needs no alignment for bytes.
                unsafe { vst1q_u8(d.as_mut_ptr(), out) };
            }
        }
        counter = counter.wrapping_add(4);
    }
}
