//! The vectorised Salsa20 keystream paths (AVX-512VL, AVX2, SSE2 on
//! x86_64; NEON on aarch64) against the portable one (RustCrypto's `salsa20`), on
//! fuzz-chosen keys, nonces, byte positions and lengths: every path must
//! give exactly the portable bytes.
//!
//! The crate's keystream module is internal, so it is compiled in here from
//! its source (the same file the crate builds).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/crypto/salsa20/mod.rs"]
mod salsa20;

use salsa20::{apply, available, Path, Salsa20Key};

const MAX_LEN: usize = 16 * 1024;

#[derive(Arbitrary, Debug)]
struct Input {
    key: [u8; 32],
    nonce: [u8; 8],
    /// Byte position in the keystream: its low bits pick the offset into a
    /// block and the counter modulo a step; `high` moves it far out (the
    /// counter's high word).
    position: u16,
    high: u32,
    data: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let data = &input.data[..input.data.len().min(MAX_LEN)];
    let position = (u64::from(input.high) << 26) | u64::from(input.position);
    let key = Salsa20Key::new(&input.key, &input.nonce);
    let mut expected = vec![0u8; data.len()];
    apply(Path::Portable, &key, position, data, &mut expected);
    for path in available() {
        let mut out = vec![0x5Au8; data.len()];
        apply(path, &key, position, data, &mut out);
        assert!(out == expected, "{path:?} differs at position {position}, length {}", data.len());
    }
});
