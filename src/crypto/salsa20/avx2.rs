//! AVX2: eight Salsa20 blocks at a time, one block per 32-bit lane.

use core::arch::x86_64::*;

use super::{counter_words, double_rounds, quarter_rounds, BLOCK};

/// Bytes per step: eight blocks.
pub(super) const STEP: usize = 8 * BLOCK;

macro_rules! rotl {
    ($v:expr, $r:literal) => {{
        let v = $v;
        _mm256_or_si256(
            _mm256_slli_epi32::<$r>(v),
            _mm256_srli_epi32::<{ 32 - $r }>(v),
        )
    }};
}

/// One step of a quarter round: `x[t] ^= (x[p] + x[q]) <<< r`.
macro_rules! step {
    ($x:ident, $t:literal, $p:literal, $q:literal, $r:literal) => {
        $x[$t] = _mm256_xor_si256($x[$t], rotl!(_mm256_add_epi32($x[$p], $x[$q]), $r));
    };
}

/// XORs `src` with the keystream from block `counter` on, into `dst`, eight
/// blocks per step. `src` and `dst` have the same length, a multiple of
/// [`STEP`] (anything past the last whole step is left alone). Clears every
/// vector register before returning, so no keystream is left in them.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn xor_steps(state: &[u32; 16], counter: u64, src: &[u8], dst: &mut [u8]) {
    let mut counter = counter;
    for (src, dst) in src.chunks_exact(STEP).zip(dst.chunks_exact_mut(STEP)) {
        let (lo, hi) = counter_words::<8>(counter);
        let mut x: [__m256i; 16] = core::array::from_fn(|i| _mm256_set1_epi32(state[i] as i32));
        // SAFETY: `lo` and `hi` are 32 bytes each; loadu has no alignment
        // requirement.
        x[8] = unsafe { _mm256_loadu_si256(lo.as_ptr().cast()) };
        // SAFETY: as for `lo`.
        x[9] = unsafe { _mm256_loadu_si256(hi.as_ptr().cast()) };
        let input = x;
        double_rounds!(x, step, 2);
        for (w, i) in x.iter_mut().zip(input) {
            *w = _mm256_add_epi32(*w, i);
        }
        // Transpose: within each 128-bit half, each group of four words
        // becomes four blocks (blocks 0-3 in the low halves, 4-7 in the
        // high ones); then the halves of words 0-3 and 4-7 (and 8-11 and
        // 12-15) of one block are joined into 32 bytes.
        let group = |g: usize| {
            let t0 = _mm256_unpacklo_epi32(x[4 * g], x[4 * g + 1]);
            let t1 = _mm256_unpacklo_epi32(x[4 * g + 2], x[4 * g + 3]);
            let t2 = _mm256_unpackhi_epi32(x[4 * g], x[4 * g + 1]);
            let t3 = _mm256_unpackhi_epi32(x[4 * g + 2], x[4 * g + 3]);
            [
                _mm256_unpacklo_epi64(t0, t1),
                _mm256_unpackhi_epi64(t0, t1),
                _mm256_unpacklo_epi64(t2, t3),
                _mm256_unpackhi_epi64(t2, t3),
            ]
        };
        for half in 0..2 {
            let first = group(2 * half);
            let second = group(2 * half + 1);
            for b in 0..4 {
                let low = _mm256_permute2x128_si256::<0x20>(first[b], second[b]);
                let high = _mm256_permute2x128_si256::<0x31>(first[b], second[b]);
                for (block, ks) in [(b, low), (b + 4, high)] {
                    let at = block * BLOCK + half * 32;
                    let s = &src[at..at + 32];
                    let d = &mut dst[at..at + 32];
                    // SAFETY: `s` is 32 bytes (indexing checked its
                    // bounds); loadu has no alignment requirement.
                    let v = unsafe { _mm256_loadu_si256(s.as_ptr().cast()) };
                    let out = _mm256_xor_si256(v, ks);
                    // SAFETY: `d` is 32 bytes (indexing checked its
                    // bounds); storeu has no alignment requirement.
                    unsafe { _mm256_storeu_si256(d.as_mut_ptr().cast(), out) };
                }
            }
        }
        counter = counter.wrapping_add(8);
    }
    _mm256_zeroall();
}
