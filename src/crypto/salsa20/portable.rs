//! The portable path: RustCrypto's `salsa20`, one block at a time (the
//! code the crate used before the vector paths, and the one Miri checks).
//! Its state wipes itself on drop (the crate's `zeroize` feature).

use ::salsa20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use ::salsa20::Salsa20;

use super::{Salsa20Key, BLOCK};

/// XORs `src` with the keystream from byte `skip` of block `counter` on,
/// into `dst` (same length).
pub(super) fn apply(key: &Salsa20Key, counter: u64, skip: usize, src: &[u8], dst: &mut [u8]) {
    let mut cipher = Salsa20::new((&key.key).into(), (&key.nonce).into());
    let position = u128::from(counter) * BLOCK as u128 + skip as u128;
    if position != 0 {
        cipher
            .try_seek(position)
            .expect("salsa20: position past the end of the keystream");
    }
    cipher
        .apply_keystream_b2b(src, dst)
        .expect("salsa20: lengths differ or keystream exhausted");
}
