//! The crate's Poly1305 (`src/crypto/poly1305_64.rs`, radix 2^64, handing
//! inputs from 768 bytes on to `src/crypto/poly1305_avx2.rs` where the CPU
//! has AVX2) against RustCrypto's `poly1305` and against the radix-2^64
//! code alone, on fuzz-chosen keys and messages: the tags must be equal.
//!
//! The crate's modules are internal, so they are compiled in here from their
//! source (the same files the crate builds).

#![no_main]

use libfuzzer_sys::fuzz_target;
use poly1305::universal_hash::KeyInit;

#[allow(dead_code)]
#[path = "../../src/crypto/poly1305_64.rs"]
mod poly1305_64;
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[allow(dead_code)]
#[path = "../../src/crypto/poly1305_avx2.rs"]
mod poly1305_avx2;

fuzz_target!(|input: &[u8]| {
    if input.len() < 32 {
        return;
    }
    let (key, message) = input.split_at(32);
    let key: [u8; 32] = key.try_into().expect("32 bytes");
    let reference: [u8; 16] = poly1305::Poly1305::new((&key).into())
        .compute_unpadded(message)
        .into();
    let ours = poly1305_64::tag(&key, message);
    assert_eq!(ours, reference, "length {}", message.len());
    let scalar = poly1305_64::Mac::scalar(&key).finish(message);
    assert_eq!(ours, scalar, "radix-2^64 code alone, length {}", message.len());
});
