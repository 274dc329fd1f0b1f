//! Poly1305, the MAC of the cipher: the crate's own radix-2^64 code
//! ([`poly1305_64`](super::poly1305_64)) at every length, which hands the
//! bulk of inputs from 768 bytes on to its AVX2 code
//! ([`poly1305_avx2`](super::poly1305_avx2)) where the CPU has AVX2.
//!
//! Until issue 13's second part the crate switched by length between
//! `orion`'s Poly1305 (up to 3 KiB; 26-bit limbs, no setup) and RustCrypto's
//! `poly1305` (longer; AVX2, about 0.7 µs of setup). The radix-2^64 code
//! measured faster than both at every length from 32 B to 1 MiB, and faster
//! than libsodium's `crypto_onetimeauth` from 32 B to 64 KiB, in the same
//! run (`poly1305` group of `benches/enclave.rs`; BENCHMARKS.md). Both
//! crates stay as the references the tests compare it with.

use super::cipher::{KEY_LEN, TAG_LEN};
use super::poly1305_64;

/// The Poly1305 tag of `data` under the one-time key `key`, unpadded (as
/// `crypto_secretbox` uses it).
pub(crate) fn poly1305_tag(key: &[u8; KEY_LEN], data: &[u8]) -> [u8; TAG_LEN] {
    poly1305_64::tag(key, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poly1305::universal_hash::KeyInit;

    #[test]
    fn the_tag_is_rustcrypto_poly1305() {
        for len in [0, 1, 16, 17, 1000, 3 * 1024 + 1, 70_001] {
            let key: [u8; KEY_LEN] = std::array::from_fn(|i| (i as u8).wrapping_mul(29));
            let m: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7)).collect();
            let reference: [u8; TAG_LEN] = poly1305::Poly1305::new((&key).into())
                .compute_unpadded(&m)
                .into();
            assert_eq!(poly1305_tag(&key, &m), reference, "length {len}");
        }
    }
}
