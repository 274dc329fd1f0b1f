//! AVX2: eight Salsa20 blocks at a time, one block per 32-bit lane; and the
//! same eight-lane code with AVX-512VL's rotate on CPUs that have it.
//!
//! Both functions are one body ([`xor_steps_body`]), differing in how a
//! lane is rotated and in how many quarter rounds are interleaved:
//!
//! - [`xor_steps`] (AVX2): a rotation is two shifts and an OR, and the
//!   quarter rounds go in pairs (16 state vectors and four temporaries do
//!   not fit in AVX2's 16 registers);
//! - [`xor_steps_vl`] (AVX2 with AVX-512F/VL, still 256-bit vectors): a
//!   rotation is one `vprold`, and all four quarter rounds interleave, in
//!   the 32 registers AVX-512 gives. A step of a quarter round is three
//!   instructions instead of five.

use core::arch::x86_64::*;

use super::{counter_words, double_rounds, quarter_rounds, BLOCK};

/// Bytes per step: eight blocks.
pub(super) const STEP: usize = 8 * BLOCK;

/// `v <<< r` on each lane, AVX2: two shifts and an OR.
macro_rules! rotl_avx2 {
    ($v:expr, $r:literal) => {{
        let v = $v;
        _mm256_or_si256(
            _mm256_slli_epi32::<$r>(v),
            _mm256_srli_epi32::<{ 32 - $r }>(v),
        )
    }};
}

/// `v <<< r` on each lane, AVX-512VL: one `vprold`.
#[cfg(memguard_avx512)]
macro_rules! rotl_vl {
    ($v:expr, $r:literal) => {
        _mm256_rol_epi32::<$r>($v)
    };
}

/// The whole of an eight-lane `xor_steps`, with `$rotl` the rotation and
/// `$interleave` the quarter rounds interleaved (see `double_rounds!`).
macro_rules! xor_steps_body {
    ($rotl:ident, $interleave:tt, $state:ident, $counter:ident, $src:ident, $dst:ident) => {{
        // One step of a quarter round: `x[t] ^= (x[p] + x[q]) <<< r`.
        macro_rules! step {
            ($x:ident, $t:literal, $p:literal, $q:literal, $r:literal) => {
                $x[$t] = _mm256_xor_si256($x[$t], $rotl!(_mm256_add_epi32($x[$p], $x[$q]), $r));
            };
        }
        let mut counter = $counter;
        for (src, dst) in $src.chunks_exact(STEP).zip($dst.chunks_exact_mut(STEP)) {
            let (lo, hi) = counter_words::<8>(counter);
            let mut x: [__m256i; 16] =
                core::array::from_fn(|i| _mm256_set1_epi32($state[i] as i32));
            // SAFETY: `lo` and `hi` are 32 bytes each; loadu has no
            // alignment requirement.
            x[8] = unsafe { _mm256_loadu_si256(lo.as_ptr().cast()) };
            // SAFETY: as for `lo`.
            x[9] = unsafe { _mm256_loadu_si256(hi.as_ptr().cast()) };
            let input = x;
            double_rounds!(x, step, $interleave);
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
    }};
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
    xor_steps_body!(rotl_avx2, 2, state, counter, src, dst);
    _mm256_zeroall();
}

/// [`xor_steps`] with AVX-512VL's rotate and all four quarter rounds
/// interleaved. Clears the vector registers it can name before returning
/// (`vzeroall` reaches `ymm0`-`ymm15`; the state it keeps in `ymm16`-`ymm31`
/// is overwritten with zeros explicitly).
///
/// # Safety
/// The CPU must have AVX2, AVX-512F and AVX-512VL.
#[cfg(memguard_avx512)]
// Built only by Rust 1.89 or later (the `memguard_avx512` cfg of build.rs),
// whatever the crate's rust-version.
#[clippy::msrv = "1.89"]
#[target_feature(enable = "avx2,avx512f,avx512vl")]
pub(super) unsafe fn xor_steps_vl(state: &[u32; 16], counter: u64, src: &[u8], dst: &mut [u8]) {
    xor_steps_body!(rotl_vl, 4, state, counter, src, dst);
    clear_upper_registers();
    _mm256_zeroall();
}

/// One `asm!` block with an instruction for each of `zmm16`-`zmm31`, in
/// that order: `$insn!(n, offset)` is the instruction for `zmm<n>` (a
/// string; `offset`, 64 times `n - 16`, is where its 64 bytes go in a
/// memory operand, for instructions that have one). The operands follow.
/// With `clobbered`, the sixteen registers are declared written, so that
/// the compiler keeps nothing in them across the block. The one list of
/// these registers: [`clear_upper_registers`] and the tests' helpers that
/// fill and read them use it.
#[cfg(memguard_avx512)]
macro_rules! each_upper_zmm {
    (clobbered $insn:ident; $($operands:tt)*) => {
        each_upper_zmm!($insn; $($operands)*,
            out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
            out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _,
            out("zmm24") _, out("zmm25") _, out("zmm26") _, out("zmm27") _,
            out("zmm28") _, out("zmm29") _, out("zmm30") _, out("zmm31") _)
    };
    ($insn:ident; $($operands:tt)*) => {
        core::arch::asm!(
            $insn!(16, 0), $insn!(17, 64), $insn!(18, 128), $insn!(19, 192),
            $insn!(20, 256), $insn!(21, 320), $insn!(22, 384), $insn!(23, 448),
            $insn!(24, 512), $insn!(25, 576), $insn!(26, 640), $insn!(27, 704),
            $insn!(28, 768), $insn!(29, 832), $insn!(30, 896), $insn!(31, 960),
            $($operands)*
        )
    };
}
#[cfg(all(test, memguard_avx512))]
pub(super) use each_upper_zmm;

/// `vpxord xmm<n>, xmm<n>, xmm<n>`: zeroes all of `zmm<n>` (a VEX/EVEX write
/// to the low part clears the rest).
#[cfg(memguard_avx512)]
macro_rules! zero_zmm {
    ($n:literal, $offset:literal) => {
        concat!("vpxord xmm", $n, ", xmm", $n, ", xmm", $n)
    };
}

/// Zeroes `zmm16`-`zmm31`, which `vzeroall` does not reach and where
/// [`xor_steps_vl`] may have left keystream.
#[cfg(memguard_avx512)]
#[clippy::msrv = "1.89"]
#[target_feature(enable = "avx512f")]
fn clear_upper_registers() {
    // SAFETY: the instructions only write the registers named as outputs
    // (declared clobbered, so the compiler keeps nothing there); no memory,
    // stack or flags are touched. The CPU has AVX-512F (this function's
    // target feature, which its only caller also requires).
    unsafe { each_upper_zmm!(clobbered zero_zmm; options(nomem, nostack, preserves_flags)) }
}
