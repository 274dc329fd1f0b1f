//! Poly1305 in plain 64-bit code: the accumulator in radix 2^64 (two full
//! words and a small third), one 64 x 64 -> 128-bit multiply per pair of
//! words. The design of OpenSSL's `poly1305.c` (its `POLY1305_64` variant)
//! and of poly1305-donna-64, written in safe Rust: no `unsafe`, no
//! intrinsics, so it runs the same everywhere, Miri included.
//!
//! Per 16-byte block it makes four multiplies, against the 25 of the 26-bit
//! limb code that `orion` uses; on the development machine it ran faster
//! than both `orion` and RustCrypto's AVX2 `poly1305` at every length the
//! crate seals (`poly1305` group of `benches/enclave.rs`). Nothing branches
//! on or indexes by secret data: carries are taken from 128-bit sums, the
//! final comparison with the modulus is a mask.
//!
//! From 768 bytes of whole blocks on, where the CPU has AVX2, [`Mac`] hands
//! all but the last few blocks to [`poly1305_avx2`](super::poly1305_avx2)
//! (four blocks at a time) and carries on from the accumulator it returns:
//! at 1 MiB it took 142 us against this code's 237 us and libsodium's
//! 219 us, at 768 bytes 157 ns against 177 ns; below that its setup costs
//! more than it saves (one run of the `poly1305` group of
//! `benches/enclave.rs`).
//!
//! Tested against RustCrypto's `poly1305` and `orion` (every length up to
//! 2048, around every 16/64/256-byte boundary, random lengths to 1 MiB,
//! extreme keys), the RFC 8439 vectors, libsodium's `crypto_onetimeauth`,
//! and the `poly1305` fuzz target; the AVX2 code, where the CPU has it,
//! also against this code alone ([`Mac::scalar`]) in each.

use zeroize::Zeroize;

#[cfg(all(target_arch = "x86_64", not(miri)))]
use super::poly1305_avx2::{Powers, STEP};

/// Bytes in a Poly1305 block.
const BLOCK: usize = 16;

/// From this many bytes of whole blocks on, [`Mac`] hands them (all but
/// fewer than 64) to the AVX2 code, where the CPU has AVX2. Below it the
/// setup (`r^2` to `r^4`, the lanes summed at the end) costs more than the
/// vector code saves (`poly1305` group of `benches/enclave.rs`).
#[cfg(all(target_arch = "x86_64", not(miri)))]
const VECTOR_MIN: usize = 768;

/// The state of one Poly1305 computation: the clamped key half `r`, with
/// `s1 = r1 + r1 / 4` (`5 * r1 / 4`, exact because clamping clears the low
/// two bits of `r1`), and the accumulator `h = h2 * 2^128 + h1 * 2^64 + h0`,
/// kept below a small multiple of 2^130. Wiped on drop.
struct State {
    r0: u64,
    r1: u64,
    s1: u64,
    h0: u64,
    h1: u64,
    h2: u64,
}

impl Drop for State {
    fn drop(&mut self) {
        self.r0.zeroize();
        self.r1.zeroize();
        self.s1.zeroize();
        self.h0.zeroize();
        self.h1.zeroize();
        self.h2.zeroize();
    }
}

/// The little-endian word at `bytes[at..at + 8]`.
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

impl State {
    fn new(key: &[u8; 32]) -> State {
        let r0 = word(key, 0) & 0x0fff_fffc_0fff_ffff;
        let r1 = word(key, 8) & 0x0fff_fffc_0fff_fffc;
        State {
            r0,
            r1,
            s1: r1 + (r1 >> 2),
            h0: 0,
            h1: 0,
            h2: 0,
        }
    }

    /// Absorbs whole 16-byte blocks of `data` (its length a multiple of
    /// 16), each with `pad` (1, or 0 for a last block padded by hand) as
    /// its 129th bit.
    #[inline(always)]
    fn blocks(&mut self, data: &[u8], pad: u64) {
        let (r0, r1, s1) = (self.r0, self.r1, self.s1);
        let (mut h0, mut h1, mut h2) = (self.h0, self.h1, self.h2);
        for block in data.chunks_exact(BLOCK) {
            // h += m
            let t0 = u128::from(h0) + u128::from(word(block, 0));
            let t1 = u128::from(h1) + (t0 >> 64) + u128::from(word(block, 8));
            h0 = t0 as u64;
            h1 = t1 as u64;
            h2 = h2 + (t1 >> 64) as u64 + pad;

            // h *= r, partly reduced: 2^130 = 5 (mod p), so the products
            // that reach 2^128 and above come back multiplied by 5/4
            // (`s1`).
            let d0 = u128::from(h0) * u128::from(r0) + u128::from(h1) * u128::from(s1);
            let d1 = u128::from(h0) * u128::from(r1)
                + u128::from(h1) * u128::from(r0)
                + u128::from(h2 * s1);
            let d2 = h2 * r0;

            let d1 = d1 + (d0 >> 64);
            h0 = d0 as u64;
            h1 = d1 as u64;
            h2 = d2 + (d1 >> 64) as u64;

            // Bits 130 and up, times 5, back into the bottom.
            let c = (h2 >> 2) + (h2 & !3);
            h2 &= 3;
            let t0 = u128::from(h0) + u128::from(c);
            let t1 = u128::from(h1) + (t0 >> 64);
            h0 = t0 as u64;
            h1 = t1 as u64;
            h2 += (t1 >> 64) as u64;
        }
        self.h0 = h0;
        self.h1 = h1;
        self.h2 = h2;
    }

    /// `(h mod p + s) mod 2^128`, with `s` the key's second half.
    fn finish(&self, key: &[u8; 32]) -> [u8; 16] {
        // g = h + 5 - 2^130: if that does not go negative (bit 130 of
        // h + 5 set), h >= p and g is h mod p.
        let t0 = u128::from(self.h0) + 5;
        let t1 = u128::from(self.h1) + (t0 >> 64);
        let g2 = self.h2 + (t1 >> 64) as u64;
        let mask = 0u64.wrapping_sub(g2 >> 2);
        let h0 = (t0 as u64 & mask) | (self.h0 & !mask);
        let h1 = (t1 as u64 & mask) | (self.h1 & !mask);

        let t0 = u128::from(h0) + u128::from(word(key, 16));
        let t1 = u128::from(h1) + (t0 >> 64) + u128::from(word(key, 24));
        let mut tag = [0u8; 16];
        tag[..8].copy_from_slice(&(t0 as u64).to_le_bytes());
        tag[8..].copy_from_slice(&(t1 as u64).to_le_bytes());
        tag
    }
}

/// The Poly1305 tag of `data` under the one-time key `key`, unpadded (as
/// `crypto_secretbox` uses it).
pub(crate) fn tag(key: &[u8; 32], data: &[u8]) -> [u8; 16] {
    let mut mac = Mac::new(key);
    mac.finish(data)
}

/// Poly1305 fed in pieces: whole blocks with [`update`](Mac::update), then
/// the rest with [`finish`](Mac::finish). For the cipher, which
/// authenticates each piece of ciphertext right after writing it, while it
/// is still in the cache. Wiped on drop.
pub(crate) struct Mac<'k> {
    state: State,
    key: &'k [u8; 32],
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    vector: Vector,
}

/// Whether [`Mac`] uses the AVX2 code, and its powers of `r` once computed
/// (on the first long enough input).
#[cfg(all(target_arch = "x86_64", not(miri)))]
enum Vector {
    /// Where the CPU has AVX2; not yet needed.
    Allowed,
    /// Never: no AVX2, or the radix-2^64 code forced (tests).
    Off,
    /// In use.
    Ready(Powers),
}

impl<'k> Mac<'k> {
    pub(crate) fn new(key: &'k [u8; 32]) -> Mac<'k> {
        Mac {
            state: State::new(key),
            key,
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            vector: Vector::Allowed,
        }
    }

    /// A [`Mac`] that never uses the vector code: the reference the tests
    /// and the fuzz target compare it with.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn scalar(key: &'k [u8; 32]) -> Mac<'k> {
        #[cfg_attr(not(all(target_arch = "x86_64", not(miri))), allow(unused_mut))]
        let mut mac = Mac::new(key);
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            mac.vector = Vector::Off;
        }
        mac
    }

    /// Absorbs whole blocks (the length a multiple of 16), the bulk of a
    /// long input by the AVX2 code where it runs.
    fn blocks(&mut self, data: &[u8]) {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        let data = self.vector_blocks(data);
        self.state.blocks(data, 1);
    }

    /// Absorbs all whole 64-byte steps of `data` with the AVX2 code, if
    /// `data` is long enough and the code runs here; returns the rest.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    fn vector_blocks<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        if data.len() < VECTOR_MIN {
            return data;
        }
        if let Vector::Allowed = self.vector {
            self.vector = match Powers::new(self.state.r0, self.state.r1) {
                Some(powers) => Vector::Ready(powers),
                None => Vector::Off,
            };
        }
        let Vector::Ready(powers) = &self.vector else {
            return data;
        };
        let (bulk, rest) = data.split_at(data.len() - data.len() % STEP);
        let mut h = [self.state.h0, self.state.h1, self.state.h2];
        powers.absorb(&mut h, bulk);
        [self.state.h0, self.state.h1, self.state.h2] = h;
        h.zeroize();
        rest
    }

    /// Absorbs `blocks`, whose length must be a multiple of 16.
    ///
    /// # Panics
    /// When it is not: a bug in the caller.
    pub(crate) fn update(&mut self, blocks: &[u8]) {
        assert_eq!(blocks.len() % BLOCK, 0, "poly1305: a partial block");
        self.blocks(blocks);
    }

    /// Absorbs `data` (any length) and returns the tag.
    pub(crate) fn finish(&mut self, data: &[u8]) -> [u8; 16] {
        let whole = data.len() - data.len() % BLOCK;
        self.blocks(&data[..whole]);
        let rest = &data[whole..];
        if !rest.is_empty() {
            // The last partial block: its bytes, a 1, then zeros (its 129th
            // bit stays 0).
            let mut last = [0u8; BLOCK];
            last[..rest.len()].copy_from_slice(rest);
            last[rest.len()] = 1;
            self.state.blocks(&last, 0);
            last.zeroize();
        }
        self.state.finish(self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orion::hazardous::mac::poly1305 as orion_poly1305;
    use poly1305::universal_hash::KeyInit;

    fn rustcrypto(key: &[u8; 32], data: &[u8]) -> [u8; 16] {
        poly1305::Poly1305::new(key.into())
            .compute_unpadded(data)
            .into()
    }

    fn orion(key: &[u8; 32], data: &[u8]) -> [u8; 16] {
        let k = orion_poly1305::OneTimeKey::from_slice(key).unwrap();
        let t = orion_poly1305::Poly1305::poly1305(&k, data).unwrap();
        t.unprotected_as_bytes().try_into().unwrap()
    }

    /// xorshift64*: reproducible bytes and lengths. A copy of the crypto
    /// layer's test generator (`salsa20::tests::Rng`): this file is also
    /// compiled into `benches/enclave.rs`, where that module does not exist.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
        fn key(&mut self) -> [u8; 32] {
            self.bytes(32).try_into().unwrap()
        }
    }

    fn check(key: &[u8; 32], data: &[u8]) {
        let ours = tag(key, data);
        // The radix-2^64 code alone (`tag` hands long inputs to the AVX2
        // code where the CPU has it).
        assert_eq!(
            ours,
            Mac::scalar(key).finish(data),
            "radix-2^64 code, length {}",
            data.len()
        );
        // RustCrypto's detects AVX2 with `cpuid`, which Miri cannot run:
        // under Miri, `orion` (plain Rust) is the reference.
        if !cfg!(miri) {
            assert_eq!(
                ours,
                rustcrypto(key, data),
                "RustCrypto, length {}",
                data.len()
            );
        }
        assert_eq!(ours, orion(key, data), "orion, length {}", data.len());
    }

    #[test]
    fn agrees_with_rustcrypto_and_orion_at_every_length_to_2048() {
        let mut rng = Rng(0x1305);
        let data = rng.bytes(2048);
        let lengths = if cfg!(miri) { 0..=80 } else { 0..=2048 };
        for len in lengths {
            check(&rng.key(), &data[..len]);
        }
    }

    #[test]
    fn agrees_around_every_16_64_and_256_byte_boundary() {
        let mut rng = Rng(0xb0a7);
        let top = if cfg!(miri) { 300 } else { 70_000 };
        let data = rng.bytes(top + 20);
        let mut lengths = std::collections::BTreeSet::new();
        for step in [16, 64, 256] {
            let mut at = step;
            while at <= top {
                // Every 16 to 2048; past that every 256 and 4096.
                if step > 16 || at <= 2048 || at % 4096 == 0 {
                    for d in [-1i64, 0, 1] {
                        lengths.insert((at as i64 + d) as usize);
                    }
                }
                at += step;
            }
        }
        for len in lengths {
            check(&rng.key(), &data[..len]);
        }
    }

    #[test]
    fn agrees_at_random_lengths_up_to_1_mib() {
        let mut rng = Rng(0x5eed);
        let (rounds, top) = if cfg!(miri) { (3, 2000) } else { (40, 1 << 20) };
        let data = rng.bytes(top);
        for _ in 0..rounds {
            let len = (rng.next() % (top as u64 + 1)) as usize;
            check(&rng.key(), &data[..len]);
        }
    }

    #[test]
    fn fed_in_pieces_gives_the_same_tag() {
        let mut rng = Rng(0x91ece);
        let data = rng.bytes(5000);
        let key = rng.key();
        for split in [0, 16, 32, 752, 768, 784, 832, 4128, 4992] {
            for len in [split, split + 1, split + 15, split + 16, 5000].map(|l| l.min(5000)) {
                let mut mac = Mac::new(&key);
                mac.update(&data[..split]);
                assert_eq!(mac.finish(&data[split..len]), tag(&key, &data[..len]));
            }
        }
    }

    #[test]
    fn agrees_on_extreme_keys_and_bytes() {
        // All-ones keys and messages drive every word to its largest value:
        // where carry handling goes wrong, if anywhere.
        let mut rng = Rng(7);
        for k in [[0u8; 32], [0xff; 32], rng.key()] {
            for len in [0, 1, 15, 16, 17, 31, 32, 33, 64, 1000, 4096, 65_536 + 48] {
                check(&k, &vec![0xffu8; len]);
                check(&k, &vec![0u8; len]);
            }
        }
    }

    /// The vector code is what long inputs get on a CPU with AVX2, so the
    /// comparisons above test it there.
    #[test]
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    fn long_inputs_take_the_avx2_code_where_the_cpu_has_it() {
        let key = [0x42u8; 32];
        let mut mac = Mac::new(&key);
        mac.update(&[7u8; VECTOR_MIN]);
        let used = matches!(mac.vector, Vector::Ready(_));
        assert_eq!(used, std::is_x86_feature_detected!("avx2"));
        let mut short = Mac::new(&key);
        short.update(&[7u8; VECTOR_MIN - BLOCK]);
        assert!(matches!(short.vector, Vector::Allowed));
        let mut forced = Mac::scalar(&key);
        forced.update(&[7u8; 4096]);
        assert!(matches!(forced.vector, Vector::Off));
    }

    #[test]
    fn rfc_8439_vectors() {
        // Section 2.5.2.
        let k: [u8; 32] = [
            0x85, 0xd6, 0xbe, 0x78, 0x57, 0x55, 0x6d, 0x33, 0x7f, 0x44, 0x52, 0xfe, 0x42, 0xd5,
            0x06, 0xa8, 0x01, 0x03, 0x80, 0x8a, 0xfb, 0x0d, 0xb2, 0xfd, 0x4a, 0xbf, 0xf6, 0xaf,
            0x41, 0x49, 0xf5, 0x1b,
        ];
        assert_eq!(
            tag(&k, b"Cryptographic Forum Research Group"),
            [
                0xa8, 0x06, 0x1d, 0xc1, 0x30, 0x51, 0x36, 0xc6, 0xc2, 0x2b, 0x8b, 0xaf, 0x0c, 0x01,
                0x27, 0xa9
            ]
        );
        // Appendix A.3, vectors 5, 6, 7 and 10: h reaching p and beyond,
        // where the final reduction matters.
        let mut r2 = [0u8; 32];
        r2[0] = 2;
        let ones = [0xffu8; 16];
        assert_eq!(tag(&r2, &ones), {
            let mut t = [0u8; 16];
            t[0] = 3;
            t
        });
        let mut s_ones = [0u8; 32];
        s_ones[0] = 2;
        s_ones[16..].copy_from_slice(&ones);
        let mut two = [0u8; 16];
        two[0] = 2;
        let mut three = [0u8; 16];
        three[0] = 3;
        assert_eq!(tag(&s_ones, &two), three);
        let mut r1 = [0u8; 32];
        r1[0] = 1;
        let mut m7 = [0xffu8; 48];
        m7[16] = 0xf0;
        m7[32..].copy_from_slice(&[0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut t7 = [0u8; 16];
        t7[0] = 5;
        assert_eq!(tag(&r1, &m7), t7);
        let mut r5_key = [0u8; 32];
        r5_key[0] = 1;
        r5_key[8] = 4;
        // Vector 10: r = 1 + 4 * 2^64, s = 0.
        let m = [
            0xe3, 0x35, 0x94, 0xd7, 0x50, 0x5e, 0x43, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, 0x33, 0x94,
            0xd7, 0x50, 0x5e, 0x43, 0x79, 0xcd, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut t10 = [0u8; 16];
        t10[0] = 0x14;
        t10[8] = 0x55;
        assert_eq!(tag(&r5_key, &m), t10);
        check(&r5_key, &m);
        check(&r1, &m7);
    }
}
