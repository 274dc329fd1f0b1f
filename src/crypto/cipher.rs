//! XSalsa20-Poly1305 (NaCl `crypto_secretbox`), built from the crate's
//! Salsa20 keystream ([`salsa20`](super::salsa20): several blocks at a time
//! with AVX2/SSE2/NEON where the CPU has them), RustCrypto's HSalsa20 for
//! the subkey, and the Poly1305 of [`mac`](super::mac) (four blocks at a
//! time with AVX2 on long messages), so that encryption
//! can read from one buffer and write to another: plaintext in guarded
//! memory, ciphertext in ordinary memory, and no copy of the plaintext
//! anywhere else.
//!
//! The construction: the XSalsa20 keystream for (key, nonce), that is
//! Salsa20 under the HSalsa20 subkey of (key, first 16 nonce bytes) with the
//! last 8 nonce bytes; its first 32 bytes are the one-time Poly1305 key; the
//! rest is XORed with the message; the tag is Poly1305 of the ciphertext.
//! Byte for byte what NaCl's and libsodium's `crypto_secretbox_easy` produce
//! (checked against the `crypto_secretbox` crate and against libsodium
//! itself in the tests).

use ::salsa20::cipher::consts::U10;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::mac::poly1305_tag;
use super::poly1305_64::Mac;
use super::salsa20::{self as keystream, Path, Salsa20Key, BLOCK};

/// Bytes in a key.
pub(crate) const KEY_LEN: usize = 32;
/// Bytes in a nonce.
pub(crate) const NONCE_LEN: usize = 24;
/// Bytes in an authentication tag.
pub(crate) const TAG_LEN: usize = 16;

/// The first piece [`MessageCipher::seal`] encrypts then authenticates:
/// block 0's 32 bytes, then 4096 (eight AVX2 steps, sixteen SSE2/NEON
/// steps, from keystream byte 64). A multiple of 16 (Poly1305's block).
const FIRST_PIECE: usize = KEY_LEN + 4096;
/// The pieces after it.
const PIECE: usize = 4096;

/// A cipher keyed for one message: the Salsa20 subkey and nonce, the first
/// keystream block (the one-time Poly1305 key, then the keystream for the
/// first 32 bytes of the message), and the path that computes the rest.
/// All of it is wiped on drop ([`Salsa20Key`]'s drop, and [`Zeroizing`]);
/// the one-time key is useless for any other message anyway.
pub(crate) struct MessageCipher {
    key: Salsa20Key,
    first: Zeroizing<[u8; BLOCK]>,
    path: Path,
}

impl MessageCipher {
    /// Keys the cipher for one message under `key` and `nonce`.
    ///
    /// Never inlined: its stack frame (keystream blocks, the one-time
    /// Poly1305 key, partial blocks) must lie below its caller's, where the
    /// caller's [`scrub_stack`](crate::mem::scrub_stack) overwrites it; an
    /// inlined frame would be the caller's own, which no scrub reaches.
    #[inline(never)]
    pub(crate) fn new(key: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN]) -> MessageCipher {
        MessageCipher::with_path(key, nonce, keystream::best())
    }

    /// [`new`](MessageCipher::new) on a given keystream path (the tests
    /// force each one).
    pub(crate) fn with_path(
        key: &[u8; KEY_LEN],
        nonce: &[u8; NONCE_LEN],
        path: Path,
    ) -> MessageCipher {
        let mut head = [0u8; 16];
        head.copy_from_slice(&nonce[..16]);
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&nonce[16..]);
        let mut subkey: [u8; 32] = ::salsa20::hsalsa::<U10>(key.into(), (&head).into()).into();
        let key = Salsa20Key::new(&subkey, &tail);
        subkey.zeroize();
        // Block 0, computed once: its first half is the Poly1305 key, its
        // second half the keystream for the first 32 bytes of the message.
        let mut first = Zeroizing::new([0u8; BLOCK]);
        keystream::apply(Path::Portable, &key, 0, &[0u8; BLOCK], &mut first[..]);
        MessageCipher { key, first, path }
    }

    /// The one-time Poly1305 key.
    fn mac_key(&self) -> &[u8; KEY_LEN] {
        self.first[..KEY_LEN]
            .try_into()
            .expect("a block holds the key")
    }

    /// XORs `src` with the keystream from message byte `offset` on, into
    /// `dst` (same length).
    fn apply(&self, offset: usize, src: &[u8], dst: &mut [u8]) {
        // Message byte i is keystream byte 32 + i; those below 64 are in
        // the block computed by `new`.
        let n = KEY_LEN.saturating_sub(offset).min(src.len());
        for i in 0..n {
            dst[i] = src[i] ^ self.first[KEY_LEN + offset + i];
        }
        let position = (KEY_LEN as u64)
            .checked_add((offset + n) as u64)
            .expect("offset within the keystream");
        keystream::apply(self.path, &self.key, position, &src[n..], &mut dst[n..]);
    }

    /// Encrypts `plaintext` into `ciphertext` and returns the tag.
    ///
    /// # Panics
    /// When the lengths differ: a bug in the caller, never a data error.
    ///
    /// Never inlined: its stack frame (keystream blocks, the one-time
    /// Poly1305 key, partial blocks) must lie below its caller's, where the
    /// caller's [`scrub_stack`](crate::mem::scrub_stack) overwrites it; an
    /// inlined frame would be the caller's own, which no scrub reaches.
    #[inline(never)]
    pub(crate) fn seal(self, plaintext: &[u8], ciphertext: &mut [u8]) -> [u8; TAG_LEN] {
        assert_eq!(
            plaintext.len(),
            ciphertext.len(),
            "seal: plaintext and ciphertext lengths differ"
        );
        // Buffer to buffer: the plaintext is read where it is and never
        // copied into `ciphertext` (which is ordinary memory). In pieces
        // (each authenticated right after it is written, while it is still
        // in the cache) that end where a vector step of the keystream ends:
        // the first covers keystream bytes 32 to 4160, the next 4096 each.
        let mut mac = Mac::new(self.mac_key());
        let mut offset = 0;
        let mut piece = FIRST_PIECE;
        while plaintext.len() - offset > piece {
            let (src, dst) = (
                &plaintext[offset..offset + piece],
                &mut ciphertext[offset..offset + piece],
            );
            self.apply(offset, src, dst);
            mac.update(dst);
            offset += piece;
            piece = PIECE;
        }
        self.apply(offset, &plaintext[offset..], &mut ciphertext[offset..]);
        mac.finish(&ciphertext[offset..])
    }

    /// The tag of `ciphertext`, without encrypting anything.
    pub(crate) fn tag(self, ciphertext: &[u8]) -> [u8; TAG_LEN] {
        poly1305_tag(self.mac_key(), ciphertext)
    }

    /// Checks the tag over `ciphertext` in constant time, and only if it
    /// matches decrypts into `plaintext` (same length). On a mismatch
    /// `plaintext` is not touched.
    #[cfg(test)]
    pub(crate) fn open(
        self,
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
        plaintext: &mut [u8],
    ) -> Result<(), TagMismatch> {
        if plaintext.len() != ciphertext.len() {
            return Err(TagMismatch);
        }
        self.open_range(ciphertext, tag, 0, plaintext)
    }

    /// Checks the tag over the whole `ciphertext` in constant time, and only
    /// if it matches decrypts `plaintext.len()` bytes starting at `offset`
    /// into `plaintext` (nothing before `offset` is decrypted). On a
    /// mismatch, or a range outside the ciphertext, `plaintext` is not
    /// touched.
    ///
    /// Never inlined: its stack frame (keystream blocks, the one-time
    /// Poly1305 key, partial blocks) must lie below its caller's, where the
    /// caller's [`scrub_stack`](crate::mem::scrub_stack) overwrites it; an
    /// inlined frame would be the caller's own, which no scrub reaches.
    #[inline(never)]
    pub(crate) fn open_range(
        self,
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
        offset: usize,
        plaintext: &mut [u8],
    ) -> Result<(), TagMismatch> {
        let part = offset
            .checked_add(plaintext.len())
            .and_then(|end| ciphertext.get(offset..end))
            .ok_or(TagMismatch)?;
        let expected: [u8; TAG_LEN] = poly1305_tag(self.mac_key(), ciphertext);
        if !bool::from(expected.ct_eq(tag)) {
            return Err(TagMismatch);
        }
        self.apply(offset, part, plaintext);
        Ok(())
    }
}

/// The ciphertext or its tag was altered, or the key is not the one it was
/// sealed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TagMismatch;

#[cfg(test)]
mod tests {
    use super::super::salsa20::available;
    use super::*;
    use crypto_secretbox::aead::{Aead, KeyInit};

    fn reference_seal(key: &[u8; 32], nonce: &[u8; 24], msg: &[u8]) -> Vec<u8> {
        let cipher = crypto_secretbox::XSalsa20Poly1305::new(key.into());
        cipher.encrypt(nonce.into(), msg).unwrap()
    }

    const STACK_KEY: [u8; 32] = [0x42; 32];
    const STACK_NONCE: [u8; 24] = [0x24; 24];

    /// Seals `len` zero bytes on `path`, scrubbing the stack after or not.
    #[inline(never)]
    fn seal_zeros(path: super::super::salsa20::Path, len: usize, scrub: bool) {
        let zeros = vec![0u8; len];
        let mut sealed = vec![0u8; len];
        let _tag =
            MessageCipher::with_path(&STACK_KEY, &STACK_NONCE, path).seal(&zeros, &mut sealed);
        if scrub {
            crate::mem::scrub_stack();
        }
    }

    /// What a sealing of `len` bytes under the test key computes that must
    /// not be left behind: the XSalsa20 subkey, and the keystream (the
    /// Poly1305 key, then the keystream of the message).
    fn stack_secrets(len: usize) -> Vec<u8> {
        use ::salsa20::cipher::{KeyIvInit, StreamCipher};
        let mut head = [0u8; 16];
        head.copy_from_slice(&STACK_NONCE[..16]);
        let subkey = ::salsa20::hsalsa::<U10>((&STACK_KEY).into(), (&head).into());
        let mut secrets = subkey.to_vec();
        let mut keystream = vec![0u8; 32 + len];
        ::salsa20::XSalsa20::new((&STACK_KEY).into(), (&STACK_NONCE).into())
            .apply_keystream(&mut keystream);
        secrets.extend_from_slice(&keystream);
        secrets
    }

    /// How many of the 16-byte windows of `secrets`, at 16-byte steps, are
    /// in `stack`.
    fn windows_in(secrets: &[u8], stack: &[u8]) -> usize {
        let wanted: std::collections::HashSet<&[u8]> = secrets.chunks_exact(16).collect();
        let found: std::collections::HashSet<&[u8]> =
            stack.windows(16).filter(|w| wanted.contains(w)).collect();
        found.len()
    }

    /// The stack scrub after a cipher call reaches the cipher's frames
    /// (its entry points are never inlined into the caller's frame, and
    /// the scrub is deep enough): nothing of the subkey or keystream is
    /// left on the stack after it. The control: without the scrub, some is
    /// (in a debug build).
    #[test]
    fn the_stack_scrub_wipes_what_the_cipher_left_on_the_stack() {
        use crate::mem::sys::testing;
        if !testing::CAN_READ_STACK {
            return;
        }
        let mut stack = vec![0u8; 96 * 1024];
        let mut left_total = 0;
        for path in available() {
            for len in [64, 1000, 4103] {
                let secrets = stack_secrets(len);
                seal_zeros(path, len, false);
                testing::stack_below(&mut stack);
                let left = windows_in(&secrets, &stack);
                seal_zeros(path, len, true);
                testing::stack_below(&mut stack);
                let after_scrub = windows_in(&secrets, &stack);
                eprintln!("{path:?}, {len} B: {left} windows of the subkey and keystream left without the scrub, {after_scrub} after it");
                assert_eq!(after_scrub, 0, "{path:?}, {len} B: the scrub missed some");
                left_total += left;
            }
        }
        // The control: without the scrub the cipher leaves something, in a
        // debug build (optimised, it keeps these in registers or in its
        // output: nothing was found there without the scrub either).
        if cfg!(debug_assertions) {
            assert!(
                left_total > 0,
                "the control: without the scrub, something is left"
            );
        }
    }

    #[test]
    fn matches_the_reference_secretbox_byte_for_byte_on_every_path() {
        let key = [0x42u8; 32];
        let nonce = [0x24u8; 24];
        // Both sides of where the MAC used to switch implementations (3 KiB),
        // and of the vector paths' steps (256 and 512 bytes, after the 32
        // bytes block 0 covers).
        let short = [0, 1, 31, 32, 33, 63, 64, 65, 287, 288, 289, 544, 545, 1000];
        let long = [3072, 3073, 4103, 70_001];
        for path in available() {
            for len in short.into_iter().chain(long) {
                let msg: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut ct = vec![0u8; len];
                let tag = MessageCipher::with_path(&key, &nonce, path).seal(&msg, &mut ct);
                let reference = reference_seal(&key, &nonce, &msg);
                assert_eq!(&reference[..16], &tag, "{path:?}: tag, len {len}");
                assert_eq!(&reference[16..], &ct[..], "{path:?}: ciphertext, len {len}");
                assert_eq!(MessageCipher::with_path(&key, &nonce, path).tag(&ct), tag);

                let mut back = vec![0u8; len];
                MessageCipher::with_path(&key, &nonce, path)
                    .open(&ct, &tag, &mut back)
                    .unwrap();
                assert_eq!(back, msg, "{path:?}: len {len}");
            }
        }
    }

    #[test]
    fn nacl_secretbox_vector_whole() {
        // NaCl's tests/secretbox.c and secretbox.out (also libsodium's
        // test/default/secretbox.c): the 131-byte message, its tag and
        // ciphertext.
        let key: [u8; 32] = [
            0x1b, 0x27, 0x55, 0x64, 0x73, 0xe9, 0x85, 0xd4, 0x62, 0xcd, 0x51, 0x19, 0x7a, 0x9a,
            0x46, 0xc7, 0x60, 0x09, 0x54, 0x9e, 0xac, 0x64, 0x74, 0xf2, 0x06, 0xc4, 0xee, 0x08,
            0x44, 0xf6, 0x83, 0x89,
        ];
        let nonce: [u8; 24] = [
            0x69, 0x69, 0x6e, 0xe9, 0x55, 0xb6, 0x2b, 0x73, 0xcd, 0x62, 0xbd, 0xa8, 0x75, 0xfc,
            0x73, 0xd6, 0x82, 0x19, 0xe0, 0x03, 0x6b, 0x7a, 0x0b, 0x37,
        ];
        let msg: [u8; 131] = [
            0xbe, 0x07, 0x5f, 0xc5, 0x3c, 0x81, 0xf2, 0xd5, 0xcf, 0x14, 0x13, 0x16, 0xeb, 0xeb,
            0x0c, 0x7b, 0x52, 0x28, 0xc5, 0x2a, 0x4c, 0x62, 0xcb, 0xd4, 0x4b, 0x66, 0x84, 0x9b,
            0x64, 0x24, 0x4f, 0xfc, 0xe5, 0xec, 0xba, 0xaf, 0x33, 0xbd, 0x75, 0x1a, 0x1a, 0xc7,
            0x28, 0xd4, 0x5e, 0x6c, 0x61, 0x29, 0x6c, 0xdc, 0x3c, 0x01, 0x23, 0x35, 0x61, 0xf4,
            0x1d, 0xb6, 0x6c, 0xce, 0x31, 0x4a, 0xdb, 0x31, 0x0e, 0x3b, 0xe8, 0x25, 0x0c, 0x46,
            0xf0, 0x6d, 0xce, 0xea, 0x3a, 0x7f, 0xa1, 0x34, 0x80, 0x57, 0xe2, 0xf6, 0x55, 0x6a,
            0xd6, 0xb1, 0x31, 0x8a, 0x02, 0x4a, 0x83, 0x8f, 0x21, 0xaf, 0x1f, 0xde, 0x04, 0x89,
            0x77, 0xeb, 0x48, 0xf5, 0x9f, 0xfd, 0x49, 0x24, 0xca, 0x1c, 0x60, 0x90, 0x2e, 0x52,
            0xf0, 0xa0, 0x89, 0xbc, 0x76, 0x89, 0x70, 0x40, 0xe0, 0x82, 0xf9, 0x37, 0x76, 0x38,
            0x48, 0x64, 0x5e, 0x07, 0x05,
        ];
        let expected: [u8; 147] = [
            0xf3, 0xff, 0xc7, 0x70, 0x3f, 0x94, 0x00, 0xe5, 0x2a, 0x7d, 0xfb, 0x4b, 0x3d, 0x33,
            0x05, 0xd9, 0x8e, 0x99, 0x3b, 0x9f, 0x48, 0x68, 0x12, 0x73, 0xc2, 0x96, 0x50, 0xba,
            0x32, 0xfc, 0x76, 0xce, 0x48, 0x33, 0x2e, 0xa7, 0x16, 0x4d, 0x96, 0xa4, 0x47, 0x6f,
            0xb8, 0xc5, 0x31, 0xa1, 0x18, 0x6a, 0xc0, 0xdf, 0xc1, 0x7c, 0x98, 0xdc, 0xe8, 0x7b,
            0x4d, 0xa7, 0xf0, 0x11, 0xec, 0x48, 0xc9, 0x72, 0x71, 0xd2, 0xc2, 0x0f, 0x9b, 0x92,
            0x8f, 0xe2, 0x27, 0x0d, 0x6f, 0xb8, 0x63, 0xd5, 0x17, 0x38, 0xb4, 0x8e, 0xee, 0xe3,
            0x14, 0xa7, 0xcc, 0x8a, 0xb9, 0x32, 0x16, 0x45, 0x48, 0xe5, 0x26, 0xae, 0x90, 0x22,
            0x43, 0x68, 0x51, 0x7a, 0xcf, 0xea, 0xbd, 0x6b, 0xb3, 0x73, 0x2b, 0xc0, 0xe9, 0xda,
            0x99, 0x83, 0x2b, 0x61, 0xca, 0x01, 0xb6, 0xde, 0x56, 0x24, 0x4a, 0x9e, 0x88, 0xd5,
            0xf9, 0xb3, 0x79, 0x73, 0xf6, 0x22, 0xa4, 0x3d, 0x14, 0xa6, 0x59, 0x9b, 0x1f, 0x65,
            0x4c, 0xb4, 0x5a, 0x74, 0xe3, 0x55, 0xa5,
        ];
        assert_eq!(
            reference_seal(&key, &nonce, &msg),
            expected,
            "the vector itself"
        );
        for path in available() {
            let mut ct = [0u8; 131];
            let tag = MessageCipher::with_path(&key, &nonce, path).seal(&msg, &mut ct);
            assert_eq!(tag, expected[..16], "{path:?}");
            assert_eq!(ct, expected[16..], "{path:?}");
        }
    }

    #[test]
    fn nacl_test_vector() {
        // The secretbox vector from NaCl's tests (tests/secretbox.c): the
        // first bytes of its ciphertext.
        let key: [u8; 32] = [
            0x1b, 0x27, 0x55, 0x64, 0x73, 0xe9, 0x85, 0xd4, 0x62, 0xcd, 0x51, 0x19, 0x7a, 0x9a,
            0x46, 0xc7, 0x60, 0x09, 0x54, 0x9e, 0xac, 0x64, 0x74, 0xf2, 0x06, 0xc4, 0xee, 0x08,
            0x44, 0xf6, 0x83, 0x89,
        ];
        let nonce: [u8; 24] = [
            0x69, 0x69, 0x6e, 0xe9, 0x55, 0xb6, 0x2b, 0x73, 0xcd, 0x62, 0xbd, 0xa8, 0x75, 0xfc,
            0x73, 0xd6, 0x82, 0x19, 0xe0, 0x03, 0x6b, 0x7a, 0x0b, 0x37,
        ];
        let msg: [u8; 16] = [
            0xbe, 0x07, 0x5f, 0xc5, 0x3c, 0x81, 0xf2, 0xd5, 0xcf, 0x14, 0x13, 0x16, 0xeb, 0xeb,
            0x0c, 0x7b,
        ];
        let mut ct = [0u8; 16];
        // The tag covers NaCl's whole 131-byte message, so only the
        // keystream part is compared for this 16-byte prefix.
        MessageCipher::new(&key, &nonce).seal(&msg, &mut ct);
        assert_eq!(
            ct,
            [
                0x8e, 0x99, 0x3b, 0x9f, 0x48, 0x68, 0x12, 0x73, 0xc2, 0x96, 0x50, 0xba, 0x32, 0xfc,
                0x76, 0xce
            ]
        );
    }

    #[test]
    fn a_range_decrypts_to_the_same_bytes_as_the_whole() {
        let key = [3u8; 32];
        let nonce = [4u8; 24];
        let msg: Vec<u8> = (0..1000).map(|i| (i * 13) as u8).collect();
        let mut ct = vec![0u8; 1000];
        let tag = MessageCipher::new(&key, &nonce).seal(&msg, &mut ct);
        let ranges = [
            (0, 1000),
            (1, 5),
            (31, 2),
            (32, 600),
            (63, 70),
            (64, 64),
            (100, 900),
            (999, 1),
            (500, 0),
        ];
        for path in available() {
            for (offset, len) in ranges {
                let mut out = vec![0u8; len];
                MessageCipher::with_path(&key, &nonce, path)
                    .open_range(&ct, &tag, offset, &mut out)
                    .unwrap();
                assert_eq!(out, &msg[offset..offset + len], "{path:?}: {offset}+{len}");
            }
        }
        let mut out = [0u8; 2];
        assert!(MessageCipher::new(&key, &nonce)
            .open_range(&ct, &tag, 999, &mut out)
            .is_err());
        assert!(MessageCipher::new(&key, &nonce)
            .open_range(&ct, &tag, usize::MAX, &mut out)
            .is_err());
    }

    #[test]
    fn any_altered_byte_fails_and_leaves_the_output_alone() {
        let key = [1u8; 32];
        let nonce = [2u8; 24];
        let msg = b"attack at dawn, bring snacks";
        let mut ct = [0u8; 28];
        let tag = MessageCipher::new(&key, &nonce).seal(msg, &mut ct);
        for i in 0..ct.len() {
            let mut bad = ct;
            bad[i] ^= 0x80;
            let mut out = [0xEEu8; 28];
            let r = MessageCipher::new(&key, &nonce).open(&bad, &tag, &mut out);
            assert_eq!(r, Err(TagMismatch));
            assert_eq!(out, [0xEEu8; 28]);
        }
        let mut bad_tag = tag;
        bad_tag[0] ^= 1;
        let mut out = [0u8; 28];
        assert!(MessageCipher::new(&key, &nonce)
            .open(&ct, &bad_tag, &mut out)
            .is_err());
        let other_key = [9u8; 32];
        assert!(MessageCipher::new(&other_key, &nonce)
            .open(&ct, &tag, &mut out)
            .is_err());
    }
}
