//! Every path against RustCrypto's `salsa20` (the reference), and the
//! published vectors.

use ::salsa20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

use super::*;

/// A small deterministic generator (xorshift64*), seeded per test so that a
/// failure can be replayed; the seed is in the assertion message.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn seeded() -> (Rng, u64) {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("getrandom");
        let seed = u64::from_le_bytes(b) | 1;
        (Rng(seed), seed)
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(super) fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.next() as u8)
    }
    pub(super) fn vec(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// RustCrypto's keystream XORed onto `src`, from byte `position` on.
fn reference(key: &[u8; 32], nonce: &[u8; 8], position: u128, src: &[u8]) -> Vec<u8> {
    let mut c = ::salsa20::Salsa20::new(key.into(), nonce.into());
    c.seek(position);
    let mut out = src.to_vec();
    c.apply_keystream(&mut out);
    out
}

/// Checks `apply` on `path` against the reference for one case.
fn check(path: Path, key: &[u8; 32], nonce: &[u8; 8], position: u64, src: &[u8], what: &str) {
    let mut out = vec![0xA5u8; src.len()];
    apply(path, &Salsa20Key::new(key, nonce), position, src, &mut out);
    let expected = reference(key, nonce, u128::from(position), src);
    if out != expected {
        let first = out.iter().zip(&expected).position(|(a, b)| a != b);
        panic!(
            "{path:?}: {what}: position {position}, length {}: first difference at byte {first:?}",
            src.len()
        );
    }
}

#[test]
fn every_path_is_tested_here() {
    let paths = available();
    assert_eq!(paths[0], Path::Portable);
    assert_eq!(best(), *paths.last().unwrap());
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    assert!(paths.contains(&Path::Sse2));
    // Where the CPU has AVX-512VL, its path is here too (and so is tested
    // by every test below).
    #[cfg(all(target_arch = "x86_64", memguard_avx512, not(miri)))]
    assert_eq!(
        paths.contains(&Path::Avx512Vl),
        std::is_x86_feature_detected!("avx2") && has_avx512vl()
    );
    // Miri cannot run intrinsics: only the portable path exists there.
    #[cfg(miri)]
    assert_eq!(paths, [Path::Portable]);
    eprintln!(
        "salsa20 paths on this machine: {paths:?}; best {:?}",
        best()
    );
}

#[test]
fn every_length_up_to_2048_on_every_path() {
    let (mut rng, seed) = Rng::seeded();
    let key = rng.bytes::<32>();
    let nonce = rng.bytes::<8>();
    let src = rng.vec(2048);
    for path in available() {
        for len in 0..=2048 {
            // Block aligned, the position `seal` uses (64: after block 0),
            // and an unaligned one.
            for position in [0, 64, 32 + 7 * 64 + 5] {
                check(
                    path,
                    &key,
                    &nonce,
                    position,
                    &src[..len],
                    &format!("seed {seed}"),
                );
            }
        }
    }
}

#[test]
fn lengths_around_every_64_256_and_512_byte_boundary() {
    let (mut rng, seed) = Rng::seeded();
    let key = rng.bytes::<32>();
    let nonce = rng.bytes::<8>();
    let src = rng.vec(4 * 1024 + 3);
    let mut lens: Vec<usize> = Vec::new();
    for unit in [64, 256, 512] {
        for k in 1..=(4 * 1024 / unit) {
            for d in [-2i64, -1, 0, 1, 2] {
                lens.push((k as i64 * unit as i64 + d) as usize);
            }
        }
    }
    lens.sort_unstable();
    lens.dedup();
    for path in available() {
        for &len in &lens {
            // Offsets into a block at both ends and the middle, so that
            // the partial first block and the tail fall at different places
            // relative to a step (every offset: the next test).
            for skip in [0, 1, 2, 31, 32, 33, 62, 63] {
                let position = 3 * 64 + skip;
                check(
                    path,
                    &key,
                    &nonce,
                    position,
                    &src[..len],
                    &format!("seed {seed}"),
                );
            }
        }
    }
}

#[test]
fn every_offset_into_a_block() {
    let (mut rng, seed) = Rng::seeded();
    let key = rng.bytes::<32>();
    let nonce = rng.bytes::<8>();
    let src = rng.vec(1100);
    for path in available() {
        for skip in 0..64u64 {
            for len in [1, 2, 63, 64, 65, 255, 256, 257, 511, 512, 513, 1100] {
                let position = 5 * 64 + skip;
                check(
                    path,
                    &key,
                    &nonce,
                    position,
                    &src[..len],
                    &format!("seed {seed}"),
                );
            }
        }
    }
}

#[test]
fn random_lengths_up_to_1_mib_at_random_positions() {
    let (mut rng, seed) = Rng::seeded();
    let src = rng.vec(1 << 20);
    for path in available() {
        for _ in 0..12 {
            let key = rng.bytes::<32>();
            let nonce = rng.bytes::<8>();
            let len = rng.below((1 << 20) + 1) as usize;
            // Any position a `usize` offset (below 2^63) can reach.
            let position = match rng.below(3) {
                0 => rng.below(1 << 16),
                1 => rng.below(1 << 40),
                _ => rng.below(1 << 63),
            };
            check(
                path,
                &key,
                &nonce,
                position,
                &src[..len],
                &format!("seed {seed}"),
            );
        }
    }
}

#[test]
fn every_starting_block_counter_mod_8_and_across_the_32_bit_carry() {
    // The vector paths put counters c..c+N-1 in their lanes, with the high
    // word carried separately: start at every residue modulo 8, and at
    // every block from 2^32 - 17 to 2^32 + 1 so that the carry into the
    // high word lands in every lane of a step; also near the largest
    // counter a byte position can name.
    let (mut rng, seed) = Rng::seeded();
    let key = rng.bytes::<32>();
    let nonce = rng.bytes::<8>();
    let src = rng.vec(3 * 512 + 100);
    let mut counters: Vec<u64> = (0..=17).collect();
    counters.extend(((1u64 << 32) - 17)..=((1 << 32) + 1));
    counters.extend([(1 << 33) - 5, (u64::MAX / 64) - 40]);
    for path in available() {
        for &c in &counters {
            for len in [64, 256, 512, 513, src.len()] {
                let position = c * 64;
                check(
                    path,
                    &key,
                    &nonce,
                    position,
                    &src[..len],
                    &format!("seed {seed}"),
                );
                check(
                    path,
                    &key,
                    &nonce,
                    position + 17,
                    &src[..len],
                    &format!("seed {seed}"),
                );
            }
        }
    }
}

#[test]
fn estream_and_nacl_vectors_on_every_path() {
    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }
    // eSTREAM Salsa20/20, 256-bit key, set 1 vector 0 (key 80 00..00,
    // IV 0): stream[0..63].
    let mut key1 = [0u8; 32];
    key1[0] = 0x80;
    let set1_v0 = hex(
        "e3be8fdd8beca2e3ea8ef9475b29a6e7 003951e1097a5c38d23b7a5fad9f6844
         b22c97559e2723c7cbbd3fe4fc8d9a07 44652a83e72a9c461876af4d7ef1a117",
    );
    // Set 2 style (key 0, IV 80 00..00) and a high IV word.
    let mut iv1 = [0u8; 8];
    iv1[0] = 0x80;
    let key0_iv1 = hex(
        "2aba3dc45b4947007b14c851cd694456 b303ad59a465662803006705673d6c3e
         29f1d3510dfc0405463c03414e0e07e3 59f1f1816c68b2434a19d3eee0464873",
    );
    let mut ivhi = [0u8; 8];
    ivhi[7] = 1;
    let key0_ivhi = hex(
        "b47f96aa96786135297a3c4ec56a613d 0b80095324ff43239d684c57ffe42e1c
         44f3cc011613db6cdc880999a1e65aed 1287fcb11c839c37120765afa73e5075",
    );
    // Key 01..20, IV 0301040105090206: the first 256 bytes (one SSE2 or
    // NEON step).
    let key_long: [u8; 32] = std::array::from_fn(|i| i as u8 + 1);
    let iv_long = [3u8, 1, 4, 1, 5, 9, 2, 6];
    let long = hex(
        "6ebcbdbf76fccc64ab05542bee8a67cb c28fa2e141fbefbb3a2f9b221909c8d7
         d4295258cb539770dd24d7ac3443769f fa27a50e60644264dc8b6b612683372e
         085d0a12bf240b189ce2b78289862b56 fdc9fcffc33bef9325a2e81b98fb3fb9
         aa04cf434615ceffeb985c1cb08d8440 e90b1d56ddeaea16d9e15affff1f698c
         483c7a466af1fe062574adfd2b06a62b 4d98440719ea776385c470349a7ed696
         9583463ed5d26b8fefccb205da0f5bfa 98c77812fe756b09eacc282aa42f4baf
         a79633189046e2b20f35b3e0e54aa3b9 29e23c0f47dc7bcd4f928b2a9764be7d
         4b8a50f980a50b35ad8087375e0c556e cbe6a7161e8653ce9391e1e6710ed4f1",
    );
    let cases: [(&[u8; 32], &[u8; 8], &[u8]); 4] = [
        (&key1, &[0; 8], &set1_v0),
        (&[0; 32], &iv1, &key0_iv1),
        (&[0; 32], &ivhi, &key0_ivhi),
        (&key_long, &iv_long, &long),
    ];
    for path in available() {
        for (i, (key, iv, expected)) in cases.iter().enumerate() {
            // Inside a whole step too: a 512-byte keystream, of which the
            // vector is the start.
            for len in [expected.len(), 512] {
                let mut out = vec![0u8; len];
                apply(
                    path,
                    &Salsa20Key::new(key, iv),
                    0,
                    &vec![0u8; len],
                    &mut out,
                );
                assert_eq!(
                    &out[..expected.len()],
                    &expected[..],
                    "{path:?}, vector {i}"
                );
            }
        }
    }
}

/// `zmm16`-`zmm31`: set to `fill` (every byte), or read out.
#[cfg(all(target_arch = "x86_64", memguard_avx512, not(miri)))]
mod upper_registers {
    use super::super::avx2::each_upper_zmm;

    /// `vmovdqu64 zmm<n>, [p]`: the 64 bytes at `p` into `zmm<n>`.
    macro_rules! load_zmm {
        ($n:literal, $offset:literal) => {
            concat!("vmovdqu64 zmm", $n, ", [{p}]")
        };
    }

    /// `vmovdqu64 [p + offset], zmm<n>`: `zmm<n>` into its 64 bytes at `p`.
    macro_rules! store_zmm {
        ($n:literal, $offset:literal) => {
            concat!("vmovdqu64 [{p} + ", $offset, "], zmm", $n)
        };
    }

    /// Sets every byte of `zmm16`-`zmm31` to `fill`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[clippy::msrv = "1.89"]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fill(fill: u8) {
        let v = [fill; 64];
        // SAFETY: reads 64 bytes from `v` (64 bytes long) into the registers
        // named, declared clobbered; the CPU has AVX-512F (the caller's
        // promise).
        unsafe {
            each_upper_zmm!(clobbered load_zmm;
                p = in(reg) v.as_ptr(), options(nostack, readonly, preserves_flags))
        }
    }

    /// The contents of `zmm16`-`zmm31`, 64 bytes each.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[clippy::msrv = "1.89"]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn read() -> [u8; 16 * 64] {
        let mut out = [0u8; 16 * 64];
        // SAFETY: writes 16 x 64 bytes into `out` (that long); reads the
        // registers only; the CPU has AVX-512F (the caller's promise).
        unsafe {
            each_upper_zmm!(store_zmm; p = in(reg) out.as_mut_ptr(), options(nostack, preserves_flags))
        }
        out
    }
}

/// The AVX-512VL path keeps state in `zmm16`-`zmm31`, which `vzeroall`
/// does not clear: it zeroes them itself. Set to a pattern first, so that
/// registers the path did not touch count as well as ones it left
/// keystream in. (Code built without AVX-512 never uses these registers,
/// so nothing between the calls here changes them.)
#[cfg(all(target_arch = "x86_64", memguard_avx512, not(miri)))]
#[test]
fn the_avx512vl_path_leaves_zmm16_to_zmm31_zeroed() {
    if !available().contains(&Path::Avx512Vl) {
        eprintln!("this CPU has no AVX-512VL: the path does not exist here");
        return;
    }
    let (mut rng, seed) = Rng::seeded();
    let key = Salsa20Key::new(&rng.bytes::<32>(), &rng.bytes::<8>());
    let state = key.state();
    let src = rng.vec(4 * avx2::STEP);
    let mut dst = vec![0u8; src.len()];
    // SAFETY: `available()` offers the path only on a CPU with AVX2,
    // AVX-512F and AVX-512VL.
    unsafe { upper_registers::fill(0xA5) };
    // SAFETY: as above.
    unsafe { avx2::xor_steps_vl(&state, 0, &src, &mut dst) };
    // SAFETY: as above.
    let after = unsafe { upper_registers::read() };
    let left = after.iter().filter(|&&b| b != 0).count();
    assert_eq!(left, 0, "seed {seed}: {left} nonzero bytes in zmm16-zmm31");
    // The path did run (and matches the reference).
    check(
        Path::Avx512Vl,
        &rng.bytes(),
        &rng.bytes(),
        0,
        &src,
        "after the register check",
    );
}
