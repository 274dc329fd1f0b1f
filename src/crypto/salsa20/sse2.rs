//! SSE2: four Salsa20 blocks at a time, one block per 32-bit lane.

use core::arch::x86_64::*;

use super::{counter_words, double_rounds, quarter_rounds, BLOCK};

/// Bytes per step: four blocks.
pub(super) const STEP: usize = 4 * BLOCK;

macro_rules! rotl {
    ($v:expr, $r:literal) => {{
        let v = $v;
        _mm_or_si128(_mm_slli_epi32::<$r>(v), _mm_srli_epi32::<{ 32 - $r }>(v))
    }};
}

/// One step of a quarter round: `x[t] ^= (x[p] + x[q]) <<< r`.
macro_rules! step {
    ($x:ident, $t:literal, $p:literal, $q:literal, $r:literal) => {
        $x[$t] = _mm_xor_si128($x[$t], rotl!(_mm_add_epi32($x[$p], $x[$q]), $r));
    };
}

/// XORs `src` with the keystream from block `counter` on, into `dst`, four
/// blocks per step. `src` and `dst` have the same length, a multiple of
/// [`STEP`] (anything past the last whole step is left alone).
///
/// # Safety
/// The CPU must have SSE2 (every x86_64 CPU does).
#[target_feature(enable = "sse2")]
pub(super) unsafe fn xor_steps(state: &[u32; 16], counter: u64, src: &[u8], dst: &mut [u8]) {
    let mut counter = counter;
    for (src, dst) in src.chunks_exact(STEP).zip(dst.chunks_exact_mut(STEP)) {
        let (lo, hi) = counter_words::<4>(counter);
        let mut x: [__m128i; 16] = core::array::from_fn(|i| _mm_set1_epi32(state[i] as i32));
        // SAFETY: `lo` and `hi` are 16 bytes each; loadu has no alignment
        // requirement.
        x[8] = unsafe { _mm_loadu_si128(lo.as_ptr().cast()) };
        // SAFETY: as for `lo`.
        x[9] = unsafe { _mm_loadu_si128(hi.as_ptr().cast()) };
        let input = x;
        double_rounds!(x, step, 4);
        for (w, i) in x.iter_mut().zip(input) {
            *w = _mm_add_epi32(*w, i);
        }
        // Transpose each group of four words back into four blocks.
        for g in 0..4 {
            let t0 = _mm_unpacklo_epi32(x[4 * g], x[4 * g + 1]);
            let t1 = _mm_unpacklo_epi32(x[4 * g + 2], x[4 * g + 3]);
            let t2 = _mm_unpackhi_epi32(x[4 * g], x[4 * g + 1]);
            let t3 = _mm_unpackhi_epi32(x[4 * g + 2], x[4 * g + 3]);
            let blocks = [
                _mm_unpacklo_epi64(t0, t1),
                _mm_unpackhi_epi64(t0, t1),
                _mm_unpacklo_epi64(t2, t3),
                _mm_unpackhi_epi64(t2, t3),
            ];
            for (b, ks) in blocks.into_iter().enumerate() {
                let at = b * BLOCK + g * 16;
                let s = &src[at..at + 16];
                let d = &mut dst[at..at + 16];
                // SAFETY: `s` is 16 bytes (indexing checked its bounds);
                // loadu has no alignment requirement.
                let v = unsafe { _mm_loadu_si128(s.as_ptr().cast()) };
                let out = _mm_xor_si128(v, ks);
                // SAFETY: `d` is 16 bytes (indexing checked its bounds);
                // storeu has no alignment requirement.
                unsafe { _mm_storeu_si128(d.as_mut_ptr().cast(), out) };
            }
        }
        counter = counter.wrapping_add(4);
    }
}
