//! The cipher against libsodium itself, loaded at run time by the
//! workspace's test tooling ([`memguard_testkit::sodium`]: `dlopen` of
//! Debian's `libsodium23`, which `libsodium-dev` pulls in), so that the
//! crate's tests build and link without it. Where the tooling loads no
//! libraries (Windows, Miri) libsodium is never found.
//!
//! Without libsodium these tests pass with a note on stderr, unless
//! `MEMGUARD_REQUIRE_LIBSODIUM=1` (set by `.ci/run`), when they fail.
//!
//! - `crypto_secretbox_easy` on random keys, nonces and messages against
//!   [`MessageCipher`] on every keystream path, byte for byte;
//! - `crypto_onetimeauth` against the crate's Poly1305
//!   ([`poly1305_64`](super::super::poly1305_64)) on random keys and
//!   messages, every length to 1100 and random ones to 1 MiB;
//! - `crypto_stream_salsa20_xor_ic` (Salsa20 from any block counter)
//!   against [`apply`] on every path, at random counters and lengths.

use memguard_testkit::sodium;

use super::super::cipher::MessageCipher;
use super::super::poly1305_64;
use super::tests::Rng;
use super::{apply, available, Salsa20Key};

#[test]
fn secretbox_matches_libsodium_on_random_keys_nonces_and_messages() {
    let Some(libsodium) = sodium::get() else {
        return;
    };
    let (mut rng, seed) = Rng::seeded();
    let mut lens: Vec<usize> = (0..=600).collect();
    lens.extend([1000, 3072, 3073, 4096, 4097, 16 * 1024, 100_000]);
    for _ in 0..8 {
        lens.push(rng.below(1 << 20) as usize);
    }
    for path in available() {
        for &len in &lens {
            let key = rng.bytes::<32>();
            let nonce = rng.bytes::<24>();
            let msg = rng.vec(len);
            let mut expected = vec![0u8; len + 16];
            libsodium.secretbox_easy(&mut expected, &msg, &nonce, &key);
            let mut ct = vec![0u8; len];
            let tag = MessageCipher::with_path(&key, &nonce, path).seal(&msg, &mut ct);
            assert_eq!(tag, expected[..16], "{path:?}: tag, len {len}, seed {seed}");
            assert!(
                ct == expected[16..],
                "{path:?}: ciphertext, len {len}, seed {seed}"
            );
        }
    }
}

#[test]
fn salsa20_matches_libsodium_from_any_block_counter() {
    let Some(libsodium) = sodium::get() else {
        return;
    };
    let (mut rng, seed) = Rng::seeded();
    let mut counters: Vec<u64> = (0..9).collect();
    counters.extend([(1 << 32) - 9, (1 << 32) - 1, 1 << 32, u64::MAX / 64]);
    for _ in 0..6 {
        counters.push(rng.below(u64::MAX / 64));
    }
    for path in available() {
        for &counter in &counters {
            for len in [1, 64, 100, 256, 511, 512, 513, 4096 + 17] {
                let key = rng.bytes::<32>();
                let nonce = rng.bytes::<8>();
                let msg = rng.vec(len);
                let mut expected = vec![0u8; len];
                libsodium.stream_salsa20_xor_ic(&mut expected, &msg, &nonce, counter, &key);
                let mut out = vec![0u8; len];
                apply(
                    path,
                    &Salsa20Key::new(&key, &nonce),
                    counter * 64,
                    &msg,
                    &mut out,
                );
                assert!(
                    out == expected,
                    "{path:?}: counter {counter}, len {len}, seed {seed}"
                );
            }
        }
    }
}

#[test]
fn poly1305_matches_libsodium_on_random_keys_and_messages() {
    let Some(libsodium) = sodium::get() else {
        return;
    };
    let (mut rng, seed) = Rng::seeded();
    let mut lens: Vec<usize> = (0..=1100).collect();
    for _ in 0..16 {
        lens.push(rng.below(1 << 20) as usize);
    }
    for len in lens {
        let key = rng.bytes::<32>();
        let msg = rng.vec(len);
        assert_eq!(
            poly1305_64::tag(&key, &msg),
            libsodium.onetimeauth(&msg, &key),
            "len {len}, seed {seed}"
        );
    }
}
