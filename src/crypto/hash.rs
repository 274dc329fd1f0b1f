//! BLAKE2b-256, written straight into the caller's (guarded) memory.

use blake2::digest::Digest;
use blake2::Blake2b256;

/// Writes BLAKE2b-256 of `data` into `out`.
///
/// The digest goes directly to `out`, so when `out` is in guarded memory no
/// copy of it is left on the stack.
pub(crate) fn blake2b256_into(data: &[u8], out: &mut [u8; 32]) {
    let mut hasher = Blake2b256::new();
    Digest::update(&mut hasher, data);
    Digest::finalize_into(hasher, out.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_for_the_empty_string() {
        let mut out = [0u8; 32];
        blake2b256_into(b"", &mut out);
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
        );
    }

    #[test]
    fn known_answer_for_abc() {
        let mut out = [0u8; 32];
        blake2b256_into(b"abc", &mut out);
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"
        );
    }
}
