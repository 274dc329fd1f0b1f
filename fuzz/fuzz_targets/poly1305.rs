//! The crate's Poly1305 (`src/crypto/poly1305_64.rs`, radix 2^64) against
//! RustCrypto's `poly1305` on fuzz-chosen keys and messages: the tags must
//! be equal.
//!
//! The crate's module is internal, so it is compiled in here from its
//! source (the same file the crate builds).

#![no_main]

use libfuzzer_sys::fuzz_target;
use poly1305::universal_hash::KeyInit;

#[allow(dead_code)]
#[path = "../../src/crypto/poly1305_64.rs"]
mod poly1305_64;

fuzz_target!(|input: &[u8]| {
    if input.len() < 32 {
        return;
    }
    let (key, message) = input.split_at(32);
    let key: [u8; 32] = key.try_into().expect("32 bytes");
    let reference: [u8; 16] = poly1305::Poly1305::new((&key).into())
        .compute_unpadded(message)
        .into();
    assert_eq!(poly1305_64::tag(&key, message), reference, "length {}", message.len());
});
