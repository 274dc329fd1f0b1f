//! BLAKE3, the session key's derivation hash, its output copied into the
//! caller's (guarded) memory and wiped where it was made.
//!
//! Why BLAKE3 (it was BLAKE2b-256, as in Go memguard): the key is derived
//! twice for every seal and open, and for a 32-byte secret the derivation
//! was a third of the whole `Enclave::new` + `open_into`. Measured on the
//! development machine (AMD EPYC, Zen 3), the derivation of one key
//! (`breakdown_key_derivation*` in `benches/enclave.rs`, BENCHMARKS.md,
//! session 9): 0.198 us with BLAKE2b-256 (`blake2` 0.11), 0.097 us with
//! `blake3`; hashing 32 bytes in a throwaway loop, `blake2b_simd` took
//! 157 ns and HSalsa20 (RustCrypto) 101 ns, against `blake3`'s 83 ns. What
//! the derivation needs of the hash, both give: an output that cannot be
//! computed without every bit of the input, so that a half read back from
//! decayed memory with a few wrong bits is useless. The key is made per
//! process and never stored, so nothing depends on which hash made it.

use zeroize::Zeroize;

/// Writes BLAKE3 of `data` (32 bytes of output) into `out`.
///
/// The digest's own copy is zeroized before this returns. The hash's
/// working state lies in the frames of the calls below this one, which the
/// callers' stack scrub overwrites (see `enclave.rs`).
pub(crate) fn hash_into(data: &[u8], out: &mut [u8; 32]) {
    let mut digest = blake3::hash(data);
    out.copy_from_slice(digest.as_bytes());
    digest.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(out: &[u8]) -> String {
        out.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The BLAKE3 paper's test vectors (`test_vectors.json`, input length 0
    /// and 1), first 32 bytes of output.
    #[test]
    fn known_answer_for_the_empty_string() {
        let mut out = [0u8; 32];
        hash_into(b"", &mut out);
        assert_eq!(
            hex(&out),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn known_answer_for_one_zero_byte() {
        let mut out = [0u8; 32];
        hash_into(&[0], &mut out);
        assert_eq!(
            hex(&out),
            "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"
        );
    }

    #[test]
    fn agrees_with_the_one_shot_hash_for_a_half() {
        let half: Vec<u8> = (0u8..32).collect();
        let mut out = [0u8; 32];
        hash_into(&half, &mut out);
        assert_eq!(&out, blake3::hash(&half).as_bytes());
    }
}
