//! The Salsa20 keystream (20 rounds, 64-bit block counter), several blocks
//! at a time where the CPU allows it.
//!
//! Paths, chosen once per process by run-time CPU feature detection and
//! cached ([`best`]):
//!
//! - x86_64: AVX2 with AVX-512VL's rotate where the CPU has both
//!   ([`avx2::xor_steps_vl`], 8 blocks per step; built with Rust 1.89 or
//!   later, the `memguard_avx512` cfg of `build.rs`), else AVX2
//!   ([`avx2`], 8 blocks per step), else SSE2 ([`sse2`], 4 blocks; every
//!   x86_64 CPU has it);
//! - aarch64: NEON ([`neon`], 4 blocks; every aarch64 CPU has it);
//! - anywhere else, and always under Miri (which cannot run intrinsics):
//!   [`portable`], RustCrypto's `salsa20`, one block at a time.
//!
//! The vector paths hold the 16 state words of N blocks in 16 vectors (one
//! lane per block), run the 20 rounds on all lanes at once, then transpose
//! back to N consecutive 64-byte blocks and XOR them with the input. That is
//! the layout libsodium's SSE2/AVX2 Salsa20 uses. They are the crate's only
//! `unsafe` outside the memory layer: `#[target_feature]` functions and the
//! intrinsics they call, each behind a check that the CPU has the feature,
//! and one `asm!` block that zeroes the AVX-512 registers no intrinsic
//! clears.
//!
//! Everything here is tested against RustCrypto's `salsa20`/`xsalsa20` on
//! every path the machine has (tests below, `tests/libsodium.rs` against
//! libsodium, and the `keystream` fuzz target).
//!
//! Wiping: [`Salsa20Key`] (the key and nonce words) is zeroized on drop, so
//! are the stack buffers used for a partial block. The vector paths leave
//! their last keystream in registers and spilled in their stack frames; the
//! AVX2 and AVX-512VL paths clear every vector register they use before
//! they return, and the callers in `enclave.rs` scrub the stack below them
//! after each cipher operation.

use zeroize::{Zeroize, Zeroizing};

mod portable;

#[cfg(all(target_arch = "x86_64", not(miri)))]
mod avx2;
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod sse2;

#[cfg(all(target_arch = "aarch64", target_endian = "little", not(miri)))]
mod neon;

/// Bytes in a Salsa20 block.
pub(crate) const BLOCK: usize = 64;

/// The four constant words ("expand 32-byte k").
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// The rounds shared by the vector paths: 10 double rounds over a state held
/// as 16 vectors `$x[0..16]`, with `$step!(x, t, p, q, r)` the backend's
/// `x[t] ^= (x[p] + x[q]) <<< r`.
///
/// The four quarter rounds of a round are independent, and are written
/// interleaved (`quarter_rounds!`, which each backend imports beside this
/// macro): the first step of each, then the second, and so on, so that
/// independent additions and rotations are always at hand. `4` interleaves
/// all four; `2` two pairs, one after the other, for AVX2, where 16 state
/// vectors and four temporaries do not fit in 16 registers. Measured on the
/// development machine (AMD EPYC, Zen 3), 1 MiB of keystream, libsodium
/// 409-434 us in the same runs: AVX2 written one quarter round after
/// another (each a chain of four dependent steps) 621 us, four interleaved
/// 449-460 us, pairs 413-425 us; SSE2 876-900 us one after another or four
/// interleaved, 849-997 us in pairs (BENCHMARKS.md, session 9).
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri)))]
macro_rules! double_rounds {
    ($x:ident, $step:ident, 4) => {
        for _ in 0..10 {
            // Column round.
            quarter_rounds!(
                $x,
                $step,
                (0, 4, 8, 12),
                (5, 9, 13, 1),
                (10, 14, 2, 6),
                (15, 3, 7, 11)
            );
            // Row round.
            quarter_rounds!(
                $x,
                $step,
                (0, 1, 2, 3),
                (5, 6, 7, 4),
                (10, 11, 8, 9),
                (15, 12, 13, 14)
            );
        }
    };
    ($x:ident, $step:ident, 2) => {
        for _ in 0..10 {
            // Column round.
            quarter_rounds!($x, $step, (0, 4, 8, 12), (5, 9, 13, 1));
            quarter_rounds!($x, $step, (10, 14, 2, 6), (15, 3, 7, 11));
            // Row round.
            quarter_rounds!($x, $step, (0, 1, 2, 3), (5, 6, 7, 4));
            quarter_rounds!($x, $step, (10, 11, 8, 9), (15, 12, 13, 14));
        }
    };
}

/// Quarter rounds `(a, b, c, d)`, interleaved step by step: `b ^= (a + d)
/// <<< 7; c ^= (b + a) <<< 9; d ^= (c + b) <<< 13; a ^= (d + c) <<< 18`.
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri)))]
macro_rules! quarter_rounds {
    ($x:ident, $step:ident, $(($a:literal, $b:literal, $c:literal, $d:literal)),+) => {
        $($step!($x, $b, $a, $d, 7);)+
        $($step!($x, $c, $b, $a, 9);)+
        $($step!($x, $d, $c, $b, 13);)+
        $($step!($x, $a, $d, $c, 18);)+
    };
}
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri)))]
use quarter_rounds;

#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri)))]
use double_rounds;

/// A Salsa20 key and nonce: everything of the initial state but the block
/// counter. Wiped on drop.
#[derive(Clone)]
pub(crate) struct Salsa20Key {
    key: [u8; 32],
    nonce: [u8; 8],
}

impl Salsa20Key {
    pub(crate) fn new(key: &[u8; 32], nonce: &[u8; 8]) -> Salsa20Key {
        Salsa20Key {
            key: *key,
            nonce: *nonce,
        }
    }

    /// The 16-word initial state with the counter words (8 and 9) zero.
    /// The caller wipes it.
    fn state(&self) -> Zeroizing<[u32; 16]> {
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut s = Zeroizing::new([0u32; 16]);
        s[0] = SIGMA[0];
        for i in 0..4 {
            s[1 + i] = word(&self.key[4 * i..]);
            s[11 + i] = word(&self.key[16 + 4 * i..]);
        }
        s[5] = SIGMA[1];
        s[6] = word(&self.nonce[..4]);
        s[7] = word(&self.nonce[4..]);
        s[10] = SIGMA[2];
        s[15] = SIGMA[3];
        s
    }
}

impl Drop for Salsa20Key {
    fn drop(&mut self) {
        self.key.zeroize();
        self.nonce.zeroize();
    }
}

/// One way of computing the keystream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// RustCrypto's `salsa20`, one block at a time.
    Portable,
    /// SSE2, 4 blocks at a time.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    Sse2,
    /// AVX2, 8 blocks at a time.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    Avx2,
    /// AVX2 with AVX-512VL's rotate, 8 blocks at a time.
    #[cfg(all(target_arch = "x86_64", memguard_avx512, not(miri)))]
    Avx512Vl,
    /// NEON, 4 blocks at a time.
    #[cfg(all(target_arch = "aarch64", target_endian = "little", not(miri)))]
    Neon,
}

impl Path {
    /// Bytes one step of this path computes (a whole number of blocks).
    fn step(self) -> usize {
        match self {
            Path::Portable => BLOCK,
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Path::Sse2 => sse2::STEP,
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Path::Avx2 => avx2::STEP,
            #[cfg(all(target_arch = "x86_64", memguard_avx512, not(miri)))]
            Path::Avx512Vl => avx2::STEP,
            #[cfg(all(target_arch = "aarch64", target_endian = "little", not(miri)))]
            Path::Neon => neon::STEP,
        }
    }
}

/// Every path this CPU can run, the portable one first. For the tests,
/// which check each one.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn available() -> Vec<Path> {
    #[allow(unused_mut)]
    let mut paths = vec![Path::Portable];
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        // SSE2 is part of the x86_64 baseline.
        paths.push(Path::Sse2);
        if std::is_x86_feature_detected!("avx2") {
            paths.push(Path::Avx2);
            #[cfg(memguard_avx512)]
            if has_avx512vl() {
                paths.push(Path::Avx512Vl);
            }
        }
    }
    #[cfg(all(target_arch = "aarch64", target_endian = "little", not(miri)))]
    if std::arch::is_aarch64_feature_detected!("neon") {
        paths.push(Path::Neon);
    }
    paths
}

/// The fastest path this CPU can run, detected once and cached.
pub(crate) fn best() -> Path {
    static BEST: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| available().pop().unwrap_or(Path::Portable))
}

/// XORs `src` with the keystream of `key` starting `position` bytes into it,
/// into `dst`.
///
/// A byte position (at most 2^64 - 1) names a block below 2^58, and a
/// slice holds fewer than 2^58 blocks, so the 64-bit block counter never
/// wraps (the vector paths' lanes add to it with wrapping arithmetic).
///
/// # Panics
/// When `src` and `dst` differ in length.
pub(crate) fn apply(path: Path, key: &Salsa20Key, position: u64, src: &[u8], dst: &mut [u8]) {
    assert_eq!(src.len(), dst.len(), "salsa20: lengths differ");
    if src.is_empty() {
        return;
    }
    let mut counter = position / BLOCK as u64;
    let skip = (position % BLOCK as u64) as usize;
    let (mut src, mut dst) = (src, dst);

    if path == Path::Portable {
        return portable::apply(key, counter, skip, src, dst);
    }

    // A partial first block.
    if skip != 0 {
        let n = (BLOCK - skip).min(src.len());
        let mut block = Zeroizing::new([0u8; BLOCK]);
        portable::apply(key, counter, 0, &[0u8; BLOCK], &mut block[..]);
        for i in 0..n {
            dst[i] = src[i] ^ block[skip + i];
        }
        counter = next(counter, 1);
        src = &src[n..];
        dst = &mut dst[n..];
    }

    // Whole steps.
    let step = path.step();
    let whole = src.len() - src.len() % step;
    if whole > 0 {
        let state = key.state();
        xor_steps(path, &state, counter, &src[..whole], &mut dst[..whole]);
        counter = next(counter, (whole / BLOCK) as u64);
        src = &src[whole..];
        dst = &mut dst[whole..];
    }

    // What is left: one step of keystream from the narrowest vector path
    // that covers it, into a buffer that is wiped afterwards (only the
    // bytes written: `Zeroizing` would wipe all 512 one byte at a time).
    if !src.is_empty() {
        static ZEROS: [u8; 8 * BLOCK] = [0; 8 * BLOCK];
        let tail = tail_path(path, src.len());
        let len = tail.step();
        let mut stream = [0u8; 8 * BLOCK];
        let state = key.state();
        xor_steps(tail, &state, counter, &ZEROS[..len], &mut stream[..len]);
        for ((d, s), k) in dst.iter_mut().zip(src).zip(&stream[..len]) {
            *d = s ^ k;
        }
        stream[..len].zeroize();
    }
}

/// `counter + blocks` (cannot overflow: see [`apply`]).
fn next(counter: u64, blocks: u64) -> u64 {
    counter
        .checked_add(blocks)
        .expect("salsa20: block counter overflow")
}

/// The path for a tail of `n` bytes (less than one step of `path`).
fn tail_path(path: Path, n: usize) -> Path {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if path.step() > sse2::STEP && n <= sse2::STEP {
        return Path::Sse2;
    }
    let _ = n;
    path
}

/// XORs whole steps of `path` (`src.len()` a multiple of its step).
fn xor_steps(path: Path, state: &[u32; 16], counter: u64, src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(src.len(), dst.len());
    debug_assert_eq!(src.len() % path.step(), 0);
    match path {
        Path::Portable => {
            let key = key_of_state(state);
            portable::apply(&key, counter, 0, src, dst);
        }
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        // SAFETY: `Path::Sse2` is only ever chosen on x86_64, where SSE2 is
        // part of the baseline every CPU has.
        Path::Sse2 => unsafe { sse2::xor_steps(state, counter, src, dst) },
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        Path::Avx2 => {
            // The paths come from `available()`, which offers AVX2 only when
            // the CPU has it; checked again here (a cached load) so that no
            // caller can get this wrong.
            assert!(std::is_x86_feature_detected!("avx2"));
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { avx2::xor_steps(state, counter, src, dst) }
        }
        #[cfg(all(target_arch = "x86_64", memguard_avx512, not(miri)))]
        Path::Avx512Vl => {
            // As for AVX2: offered by `available()` only when the CPU has
            // the features, and checked again here.
            assert!(std::is_x86_feature_detected!("avx2") && has_avx512vl());
            // SAFETY: the CPU has AVX2, AVX-512F and AVX-512VL (checked
            // just above).
            unsafe { avx2::xor_steps_vl(state, counter, src, dst) }
        }
        #[cfg(all(target_arch = "aarch64", target_endian = "little", not(miri)))]
        Path::Neon => {
            assert!(std::arch::is_aarch64_feature_detected!("neon"));
            // SAFETY: the CPU has NEON (checked just above).
            unsafe { neon::xor_steps(state, counter, src, dst) }
        }
    }
}

/// Whether the CPU has AVX-512F and AVX-512VL (and the OS saves the
/// AVX-512 registers, which the detection also checks).
#[cfg(all(target_arch = "x86_64", memguard_avx512, not(miri)))]
fn has_avx512vl() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl")
}

/// The key and nonce back out of a state (for the portable path handed a
/// state).
fn key_of_state(state: &[u32; 16]) -> Salsa20Key {
    let mut key = [0u8; 32];
    for i in 0..4 {
        key[4 * i..4 * i + 4].copy_from_slice(&state[1 + i].to_le_bytes());
        key[16 + 4 * i..20 + 4 * i].copy_from_slice(&state[11 + i].to_le_bytes());
    }
    let mut nonce = [0u8; 8];
    nonce[..4].copy_from_slice(&state[6].to_le_bytes());
    nonce[4..].copy_from_slice(&state[7].to_le_bytes());
    let k = Salsa20Key::new(&key, &nonce);
    key.zeroize();
    k
}

/// The low and high words of `counter + i` for each of `N` lanes.
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri)))]
#[inline(always)]
fn counter_words<const N: usize>(counter: u64) -> ([u32; N], [u32; N]) {
    let c = |i: usize| counter.wrapping_add(i as u64);
    (
        std::array::from_fn(|i| c(i) as u32),
        std::array::from_fn(|i| (c(i) >> 32) as u32),
    )
}

#[cfg(test)]
mod libsodium_tests;
#[cfg(test)]
pub(super) mod tests;
