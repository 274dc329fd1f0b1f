//! The cipher against libsodium itself, loaded at run time through the
//! platform layer's test helper (`dlopen` of Debian's `libsodium23`, which
//! `libsodium-dev` pulls in), so that the crate's tests build and link
//! without it. Where the platform layer loads no libraries (Windows, Miri)
//! libsodium is never found.
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

use std::ffi::{c_int, c_uchar, c_ulonglong, c_void, CStr};
use std::ptr::NonNull;
use std::sync::OnceLock;

use super::super::cipher::MessageCipher;
use super::super::poly1305_64;
use super::tests::Rng;
use super::{apply, available, Salsa20Key};
use crate::mem::sys::testing::load_library;

type SecretboxEasy = unsafe extern "C" fn(
    c: *mut c_uchar,
    m: *const c_uchar,
    mlen: c_ulonglong,
    n: *const c_uchar,
    k: *const c_uchar,
) -> c_int;

type StreamXorIc = unsafe extern "C" fn(
    c: *mut c_uchar,
    m: *const c_uchar,
    mlen: c_ulonglong,
    n: *const c_uchar,
    ic: u64,
    k: *const c_uchar,
) -> c_int;

type OneTimeAuth = unsafe extern "C" fn(
    out: *mut c_uchar,
    m: *const c_uchar,
    mlen: c_ulonglong,
    k: *const c_uchar,
) -> c_int;

struct Sodium {
    secretbox_easy: SecretboxEasy,
    salsa20_xor_ic: StreamXorIc,
    onetimeauth: OneTimeAuth,
}

impl Sodium {
    /// `crypto_secretbox_easy(key, nonce, msg)`: tag || ciphertext.
    fn secretbox(&self, key: &[u8; 32], nonce: &[u8; 24], msg: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; msg.len() + 16];
        // SAFETY: `out` has room for the message and the 16-byte tag, the
        // nonce and key are 24 and 32 bytes, as libsodium's documentation
        // requires; the function pointer was resolved from libsodium under
        // this name and has this C signature (sodium/crypto_secretbox.h).
        let r = unsafe {
            (self.secretbox_easy)(
                out.as_mut_ptr(),
                msg.as_ptr(),
                msg.len() as c_ulonglong,
                nonce.as_ptr(),
                key.as_ptr(),
            )
        };
        assert_eq!(r, 0, "crypto_secretbox_easy failed");
        out
    }

    /// `crypto_onetimeauth` (Poly1305): the tag of `msg` under `key`.
    fn poly1305(&self, key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: a 16-byte output and a 32-byte key
        // (sodium/crypto_onetimeauth_poly1305.h); the pointer was resolved
        // from libsodium under this name.
        let r = unsafe {
            (self.onetimeauth)(
                out.as_mut_ptr(),
                msg.as_ptr(),
                msg.len() as c_ulonglong,
                key.as_ptr(),
            )
        };
        assert_eq!(r, 0, "crypto_onetimeauth failed");
        out
    }

    /// `crypto_stream_salsa20_xor_ic`: `msg` XORed with the Salsa20
    /// keystream from block `counter` on.
    fn salsa20_xor(&self, key: &[u8; 32], nonce: &[u8; 8], counter: u64, msg: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; msg.len()];
        // SAFETY: `out` is as long as the message, the nonce and key are 8
        // and 32 bytes (sodium/crypto_stream_salsa20.h); the pointer was
        // resolved from libsodium under this name.
        let r = unsafe {
            (self.salsa20_xor_ic)(
                out.as_mut_ptr(),
                msg.as_ptr(),
                msg.len() as c_ulonglong,
                nonce.as_ptr(),
                counter,
                key.as_ptr(),
            )
        };
        assert_eq!(r, 0, "crypto_stream_salsa20_xor_ic failed");
        out
    }
}

/// libsodium, loaded once; `None` when it is not installed (and not
/// required).
fn sodium() -> Option<&'static Sodium> {
    static SODIUM: OnceLock<Option<Sodium>> = OnceLock::new();
    let loaded = SODIUM.get_or_init(|| {
        let lib = load_library(&[c"libsodium.so.23", c"libsodium.so"])?;
        let sym = |name: &CStr| -> *mut c_void {
            lib.symbol(name)
                .map(NonNull::as_ptr)
                .unwrap_or_else(|| panic!("libsodium lacks {name:?}"))
        };
        // SAFETY: `sodium_init` is libsodium's `int sodium_init(void)`.
        let init: unsafe extern "C" fn() -> c_int =
            unsafe { std::mem::transmute(sym(c"sodium_init")) };
        // SAFETY: sodium_init takes nothing and returns 0, or 1 when already
        // initialised.
        assert!(unsafe { init() } >= 0, "sodium_init failed");
        // SAFETY: the symbol is libsodium's function with this C signature
        // (the headers of libsodium 1.0.x).
        let secretbox_easy = unsafe {
            std::mem::transmute::<*mut c_void, SecretboxEasy>(sym(c"crypto_secretbox_easy"))
        };
        // SAFETY: as above.
        let salsa20_xor_ic = unsafe {
            std::mem::transmute::<*mut c_void, StreamXorIc>(sym(c"crypto_stream_salsa20_xor_ic"))
        };
        // SAFETY: as above.
        let onetimeauth =
            unsafe { std::mem::transmute::<*mut c_void, OneTimeAuth>(sym(c"crypto_onetimeauth")) };
        Some(Sodium {
            secretbox_easy,
            salsa20_xor_ic,
            onetimeauth,
        })
    });
    if loaded.is_none() {
        assert!(
            std::env::var_os("MEMGUARD_REQUIRE_LIBSODIUM").as_deref() != Some("1".as_ref()),
            "MEMGUARD_REQUIRE_LIBSODIUM=1 but libsodium.so.23 cannot be loaded \
             (apt-get install libsodium-dev)"
        );
        eprintln!("libsodium not found: skipped (MEMGUARD_REQUIRE_LIBSODIUM=1 makes this fail)");
    }
    loaded.as_ref()
}

#[test]
fn secretbox_matches_libsodium_on_random_keys_nonces_and_messages() {
    let Some(sodium) = sodium() else { return };
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
            let expected = sodium.secretbox(&key, &nonce, &msg);
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
    let Some(sodium) = sodium() else { return };
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
                let expected = sodium.salsa20_xor(&key, &nonce, counter, &msg);
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
    let Some(sodium) = sodium() else { return };
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
            sodium.poly1305(&key, &msg),
            "len {len}, seed {seed}"
        );
    }
}
