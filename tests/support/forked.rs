//! Forking from inside a test's child process (`memguard-testkit`'s `fork`),
//! and what a forked child's sealed output is checked against.

pub use memguard_testkit::fork::*;

/// The key every forked child sealed under before issue 11: the coffer's
/// halves zero-filled by `MADV_WIPEONFORK`, so `0 XOR H(0^32)`, with `H`
/// the derivation's hash (BLAKE3 since issue 13, BLAKE2b-256 before).
pub fn zero_halves_key() -> [u8; 32] {
    *blake3::hash(&[0u8; 32]).as_bytes()
}

/// Whether `sealed` (`nonce || tag || ciphertext`, an enclave's sealed
/// form) opens under `key`, as an attacker who knows the key would try.
pub fn opens_under(key: &[u8; 32], sealed: &[u8]) -> bool {
    use crypto_secretbox::aead::{Aead, KeyInit};
    if sealed.len() < 40 {
        return false;
    }
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(key.into());
    cipher.decrypt(sealed[..24].into(), &sealed[24..]).is_ok()
}
