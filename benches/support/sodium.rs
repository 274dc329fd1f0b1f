//! libsodium (Debian `libsodium-dev`), the baseline the cipher benches
//! measure against: linked only into the benchmarks, shared by
//! `benches/enclave.rs` and `benches/stream.rs` through `#[path]`.
//! `crypto_secretbox_easy` writes `tag || ciphertext`.

use std::ffi::{c_int, c_uchar, c_ulonglong};

#[link(name = "sodium")]
extern "C" {
    fn sodium_init() -> c_int;
    fn crypto_secretbox_easy(
        c: *mut c_uchar,
        m: *const c_uchar,
        mlen: c_ulonglong,
        n: *const c_uchar,
        k: *const c_uchar,
    ) -> c_int;
    fn crypto_secretbox_open_easy(
        m: *mut c_uchar,
        c: *const c_uchar,
        clen: c_ulonglong,
        n: *const c_uchar,
        k: *const c_uchar,
    ) -> c_int;

    fn crypto_stream_salsa20_xor_ic(
        c: *mut c_uchar,
        m: *const c_uchar,
        mlen: c_ulonglong,
        n: *const c_uchar,
        ic: u64,
        k: *const c_uchar,
    ) -> c_int;
    fn crypto_onetimeauth(
        out: *mut c_uchar,
        m: *const c_uchar,
        mlen: c_ulonglong,
        k: *const c_uchar,
    ) -> c_int;
}

/// Salsa20 from block 1 of (key, nonce): `m` XORed into `c`.
#[inline(always)]
pub fn salsa20_xor(c: &mut [u8], m: &[u8], nonce: &[u8; 8], key: &[u8; 32]) {
    assert_eq!(c.len(), m.len());
    // SAFETY: `c` and `m` have the same length; nonce and key have the
    // sizes libsodium reads.
    let r = unsafe {
        crypto_stream_salsa20_xor_ic(
            c.as_mut_ptr(),
            m.as_ptr(),
            m.len() as c_ulonglong,
            nonce.as_ptr(),
            1,
            key.as_ptr(),
        )
    };
    assert_eq!(r, 0);
}

/// Poly1305 of `m` under the one-time key `key`.
#[inline(always)]
pub fn poly1305(m: &[u8], key: &[u8; 32]) -> [u8; 16] {
    let mut out = [0u8; 16];
    // SAFETY: a 16-byte output and a 32-byte key, as libsodium requires.
    let r = unsafe {
        crypto_onetimeauth(
            out.as_mut_ptr(),
            m.as_ptr(),
            m.len() as c_ulonglong,
            key.as_ptr(),
        )
    };
    assert_eq!(r, 0);
    out
}

pub fn init() {
    // SAFETY: no preconditions; returns 1 when already initialised.
    assert!(unsafe { sodium_init() } >= 0, "sodium_init");
}

/// Seals `m` into `c` (`m.len() + 16` bytes).
#[inline(always)]
pub fn seal(c: &mut [u8], m: &[u8], nonce: &[u8; 24], key: &[u8; 32]) {
    assert_eq!(c.len(), m.len() + 16);
    // SAFETY: `c` has room for the message and the tag; nonce and key
    // have the sizes libsodium reads.
    let r = unsafe {
        crypto_secretbox_easy(
            c.as_mut_ptr(),
            m.as_ptr(),
            m.len() as c_ulonglong,
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    assert_eq!(r, 0);
}

/// Opens `c` into `m` (`c.len() - 16` bytes).
#[inline(always)]
pub fn open(m: &mut [u8], c: &[u8], nonce: &[u8; 24], key: &[u8; 32]) {
    assert_eq!(m.len() + 16, c.len());
    // SAFETY: as in `seal`; `m` has room for the plaintext.
    let r = unsafe {
        crypto_secretbox_open_easy(
            m.as_mut_ptr(),
            c.as_ptr(),
            c.len() as c_ulonglong,
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    assert_eq!(r, 0, "crypto_secretbox_open_easy: forged");
}
