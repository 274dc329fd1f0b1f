//! Poly1305, from whichever of two implementations is faster for the
//! message's length.
//!
//! - Up to [`SHORT_MAX`] bytes: `orion`'s Poly1305, plain 64-bit code over
//!   fiat-crypto's formally verified field arithmetic. It has almost no
//!   setup: 50 ns for 32 bytes on the development machine.
//! - Longer: RustCrypto's `poly1305`, which detects AVX2 at run time. Its
//!   AVX2 state costs about 0.7 µs to set up (718 ns for 32 bytes), then
//!   runs about twice as fast as `orion` (17.7 against 33.9 µs for 64 KiB).
//!
//! Both compute the same function. Tests in this file check that they agree
//! byte for byte, and the cipher's tests check both against NaCl's
//! `crypto_secretbox`. Neither implementation branches on or indexes by
//! secret data. The crossover was measured by the `poly1305` group in
//! `benches/enclave.rs`.

use orion::hazardous::mac::poly1305 as orion_poly1305;
use poly1305::universal_hash::KeyInit;
use poly1305::Poly1305;

use super::cipher::{KEY_LEN, TAG_LEN};

/// The longest message handed to `orion`'s implementation; longer ones go
/// to RustCrypto's `poly1305`. The two cross near 4 KiB on the development
/// machine (2.05 against 2.15 µs at 4 KiB); 3 KiB stays clear of that.
pub(crate) const SHORT_MAX: usize = 3 * 1024;

/// The Poly1305 tag of `data` under the one-time key `key`, unpadded (as
/// `crypto_secretbox` uses it).
pub(crate) fn poly1305_tag(key: &[u8; KEY_LEN], data: &[u8]) -> [u8; TAG_LEN] {
    if data.len() <= SHORT_MAX {
        short_tag(key, data)
    } else {
        long_tag(key, data)
    }
}

/// `orion`'s Poly1305. Its key type and its state wipe themselves on drop
/// (`orion`'s `zeroize` feature).
fn short_tag(key: &[u8; KEY_LEN], data: &[u8]) -> [u8; TAG_LEN] {
    // Neither call can fail: the key is exactly 32 bytes, and a one-shot
    // MAC is finalized once. Should `orion` ever report an error anyway,
    // the other implementation gives the same tag.
    let Ok(one_time) = orion_poly1305::OneTimeKey::from_slice(key) else {
        return long_tag(key, data);
    };
    let Ok(tag) = orion_poly1305::Poly1305::poly1305(&one_time, data) else {
        return long_tag(key, data);
    };
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.unprotected_as_bytes());
    out
}

/// RustCrypto's Poly1305 (AVX2 when the CPU has it). Its state is wiped on
/// drop (the crate's `zeroize` feature).
fn long_tag(key: &[u8; KEY_LEN], data: &[u8]) -> [u8; TAG_LEN] {
    Poly1305::new(key.into()).compute_unpadded(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> [u8; KEY_LEN] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(seed))
    }

    fn message(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn both_implementations_agree_at_every_length_up_to_600() {
        for len in 0..=600 {
            let k = key(len as u8);
            let m = message(len, 3);
            assert_eq!(short_tag(&k, &m), long_tag(&k, &m), "length {len}");
        }
    }

    #[test]
    fn both_implementations_agree_around_the_switch() {
        for len in SHORT_MAX - 17..=SHORT_MAX + 17 {
            let k = key(11);
            let m = message(len, 5);
            assert_eq!(short_tag(&k, &m), long_tag(&k, &m), "length {len}");
            assert_eq!(poly1305_tag(&k, &m), long_tag(&k, &m), "length {len}");
        }
    }

    #[test]
    fn both_implementations_agree_on_extreme_keys_and_bytes() {
        // All-ones keys and messages drive every limb to its largest value:
        // where carry handling goes wrong, if anywhere.
        for k in [[0u8; KEY_LEN], [0xff; KEY_LEN], key(0)] {
            for len in [1, 15, 16, 17, 64, 1000, SHORT_MAX] {
                let m = vec![0xffu8; len];
                assert_eq!(short_tag(&k, &m), long_tag(&k, &m), "length {len}");
            }
        }
    }

    #[test]
    fn rfc_8439_test_vector() {
        // RFC 8439, section 2.5.2.
        let k: [u8; 32] = [
            0x85, 0xd6, 0xbe, 0x78, 0x57, 0x55, 0x6d, 0x33, 0x7f, 0x44, 0x52, 0xfe, 0x42, 0xd5,
            0x06, 0xa8, 0x01, 0x03, 0x80, 0x8a, 0xfb, 0x0d, 0xb2, 0xfd, 0x4a, 0xbf, 0xf6, 0xaf,
            0x41, 0x49, 0xf5, 0x1b,
        ];
        let msg = b"Cryptographic Forum Research Group";
        let expected: [u8; 16] = [
            0xa8, 0x06, 0x1d, 0xc1, 0x30, 0x51, 0x36, 0xc6, 0xc2, 0x2b, 0x8b, 0xaf, 0x0c, 0x01,
            0x27, 0xa9,
        ];
        assert_eq!(short_tag(&k, msg), expected);
        assert_eq!(long_tag(&k, msg), expected);
        assert_eq!(poly1305_tag(&k, msg), expected);
    }
}
