//! libsodium, the reference the crate's cipher is tested against (its unit
//! tests, `src/crypto/salsa20/libsodium_tests.rs`) and the baseline its
//! benchmarks measure against (`benches/enclave.rs`, `benches/stream.rs`).
//!
//! Loaded at run time with `dlopen` (Debian's `libsodium23`, which
//! `libsodium-dev` pulls in), so that nothing links libsodium at build time:
//! the workspace builds without it. Where nothing is loaded (Windows, Miri)
//! libsodium is never found.
//!
//! [`get`] gives `None` when libsodium is missing, so that a comparison can
//! pass with a note, unless `MEMGUARD_REQUIRE_LIBSODIUM=1` (set by
//! `.ci/run`): then it panics, so a missing library fails the tests rather
//! than skipping them. [`required`] panics whenever it is missing (the
//! benchmarks have no baseline without it).
//!
//! The wrappers take sizes as types (`[u8; 24]` nonces, `[u8; 32]` keys)
//! and check the lengths of the buffers, so that no call can make
//! libsodium read or write out of bounds.

use std::ffi::{c_int, c_uchar, c_ulonglong, OsStr};
use std::sync::OnceLock;

/// The environment variable that makes a missing libsodium a failure.
pub const REQUIRE_ENV: &str = "MEMGUARD_REQUIRE_LIBSODIUM";

/// The length of a `crypto_secretbox` tag, which `crypto_secretbox_easy`
/// writes before the ciphertext, and of a `crypto_onetimeauth` tag.
pub const TAG_LEN: usize = 16;

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

/// The libsodium functions the tests and benchmarks call, resolved from the
/// loaded library (initialised: `sodium_init` has run).
pub struct Sodium {
    secretbox_easy: SecretboxEasy,
    secretbox_open_easy: SecretboxEasy,
    stream_salsa20_xor_ic: StreamXorIc,
    onetimeauth: OneTimeAuth,
}

impl Sodium {
    /// `crypto_secretbox_easy`: seals `m` under `key` and `nonce` into `c`,
    /// which is `m.len() + 16` bytes: the tag, then the ciphertext.
    ///
    /// # Panics
    /// When `c` has another length, or libsodium reports a failure.
    #[inline]
    pub fn secretbox_easy(&self, c: &mut [u8], m: &[u8], nonce: &[u8; 24], key: &[u8; 32]) {
        assert_eq!(c.len(), m.len() + TAG_LEN, "secretbox_easy: output length");
        // SAFETY: `c` has room for the message and the 16-byte tag; `m` is
        // `m.len()` readable bytes; the nonce and key are 24 and 32 bytes, as
        // sodium/crypto_secretbox.h requires. The pointer was resolved from
        // libsodium under this name and has this C signature.
        let r = unsafe {
            (self.secretbox_easy)(
                c.as_mut_ptr(),
                m.as_ptr(),
                m.len() as c_ulonglong,
                nonce.as_ptr(),
                key.as_ptr(),
            )
        };
        assert_eq!(r, 0, "crypto_secretbox_easy failed");
    }

    /// `crypto_secretbox_open_easy`: opens `c` (tag, then ciphertext) into
    /// `m`, which is `c.len() - 16` bytes. `false` when the tag does not
    /// match (a forgery, or the wrong key or nonce); `m` is then not to be
    /// used.
    ///
    /// # Panics
    /// When `m` has another length (or `c` is shorter than a tag).
    #[inline]
    #[must_use]
    pub fn secretbox_open_easy(
        &self,
        m: &mut [u8],
        c: &[u8],
        nonce: &[u8; 24],
        key: &[u8; 32],
    ) -> bool {
        assert_eq!(
            m.len() + TAG_LEN,
            c.len(),
            "secretbox_open_easy: output length"
        );
        // SAFETY: `m` has room for the plaintext (`c.len() - 16` bytes), `c`
        // is `c.len()` readable bytes; nonce and key are 24 and 32 bytes
        // (sodium/crypto_secretbox.h); the pointer was resolved from
        // libsodium under this name and has this C signature.
        let r = unsafe {
            (self.secretbox_open_easy)(
                m.as_mut_ptr(),
                c.as_ptr(),
                c.len() as c_ulonglong,
                nonce.as_ptr(),
                key.as_ptr(),
            )
        };
        r == 0
    }

    /// `crypto_stream_salsa20_xor_ic`: `m` XORed into `c` with the Salsa20
    /// keystream of (`key`, `nonce`) from 64-byte block `ic` on.
    ///
    /// # Panics
    /// When `c` and `m` differ in length, or libsodium reports a failure.
    #[inline]
    pub fn stream_salsa20_xor_ic(
        &self,
        c: &mut [u8],
        m: &[u8],
        nonce: &[u8; 8],
        ic: u64,
        key: &[u8; 32],
    ) {
        assert_eq!(c.len(), m.len(), "stream_salsa20_xor_ic: output length");
        // SAFETY: `c` is as long as `m`; nonce and key are 8 and 32 bytes
        // (sodium/crypto_stream_salsa20.h); the pointer was resolved from
        // libsodium under this name and has this C signature.
        let r = unsafe {
            (self.stream_salsa20_xor_ic)(
                c.as_mut_ptr(),
                m.as_ptr(),
                m.len() as c_ulonglong,
                nonce.as_ptr(),
                ic,
                key.as_ptr(),
            )
        };
        assert_eq!(r, 0, "crypto_stream_salsa20_xor_ic failed");
    }

    /// `crypto_onetimeauth` (Poly1305): the tag of `m` under the one-time
    /// key `key`.
    ///
    /// # Panics
    /// When libsodium reports a failure.
    #[inline]
    pub fn onetimeauth(&self, m: &[u8], key: &[u8; 32]) -> [u8; TAG_LEN] {
        let mut out = [0u8; TAG_LEN];
        // SAFETY: a 16-byte output, `m.len()` readable bytes and a 32-byte
        // key (sodium/crypto_onetimeauth_poly1305.h); the pointer was
        // resolved from libsodium under this name and has this C signature.
        let r = unsafe {
            (self.onetimeauth)(
                out.as_mut_ptr(),
                m.as_ptr(),
                m.len() as c_ulonglong,
                key.as_ptr(),
            )
        };
        assert_eq!(r, 0, "crypto_onetimeauth failed");
        out
    }
}

/// Whether the value of [`REQUIRE_ENV`] makes libsodium required: only
/// exactly `1`.
pub fn is_required(value: Option<&OsStr>) -> bool {
    value == Some(OsStr::new("1"))
}

/// libsodium, loaded once; `None` when it cannot be loaded.
pub fn load() -> Option<&'static Sodium> {
    static SODIUM: OnceLock<Option<Sodium>> = OnceLock::new();
    SODIUM.get_or_init(open).as_ref()
}

/// libsodium for a comparison test: `None` (with a note on stderr) when it
/// is missing, and a panic instead when [`REQUIRE_ENV`] is `1`.
pub fn get() -> Option<&'static Sodium> {
    let loaded = load();
    if loaded.is_none() {
        assert!(
            !is_required(std::env::var_os(REQUIRE_ENV).as_deref()),
            "{REQUIRE_ENV}=1 but libsodium cannot be loaded (apt-get install libsodium-dev)"
        );
        eprintln!("libsodium not found: skipped ({REQUIRE_ENV}=1 makes this fail)");
    }
    loaded
}

/// libsodium for a benchmark, whose baseline it is.
///
/// # Panics
/// When it cannot be loaded.
pub fn required() -> &'static Sodium {
    load().expect("libsodium cannot be loaded (apt-get install libsodium-dev)")
}

/// The names tried, in order.
#[cfg(all(unix, not(miri)))]
const NAMES: &[&std::ffi::CStr] = &[
    c"libsodium.so.23",
    c"libsodium.so",
    c"libsodium.23.dylib",
    c"libsodium.dylib",
];

/// Opens libsodium, resolves the functions and runs `sodium_init`.
#[cfg(all(unix, not(miri)))]
fn open() -> Option<Sodium> {
    use std::ffi::{c_void, CStr};

    let handle = NAMES
        .iter()
        // SAFETY: dlopen of a NUL-terminated name; libsodium's initialisers
        // have no preconditions. The handle is never closed, so the
        // functions resolved from it stay valid for the process's life.
        .map(|n| unsafe { libc::dlopen(n.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) })
        .find(|h| !h.is_null())?;
    let sym = |name: &CStr| -> *mut c_void {
        // SAFETY: `handle` is a live handle (never closed); `name` is
        // NUL-terminated.
        let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
        assert!(!p.is_null(), "libsodium lacks {name:?}");
        p
    };
    // SAFETY: the symbol is libsodium's `int sodium_init(void)`.
    let init = unsafe {
        std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> c_int>(sym(c"sodium_init"))
    };
    // SAFETY: sodium_init takes nothing and returns 0, or 1 when already
    // initialised (-1 on failure).
    assert!(unsafe { init() } >= 0, "sodium_init failed");
    // SAFETY: the symbol is libsodium's function of that name, with the C
    // signature of the type it is given (the headers of libsodium 1.0.x).
    let secretbox_easy =
        unsafe { std::mem::transmute::<*mut c_void, SecretboxEasy>(sym(c"crypto_secretbox_easy")) };
    // SAFETY: as above; `open_easy` has `easy`'s signature.
    let secretbox_open_easy = unsafe {
        std::mem::transmute::<*mut c_void, SecretboxEasy>(sym(c"crypto_secretbox_open_easy"))
    };
    // SAFETY: as above.
    let stream_salsa20_xor_ic = unsafe {
        std::mem::transmute::<*mut c_void, StreamXorIc>(sym(c"crypto_stream_salsa20_xor_ic"))
    };
    // SAFETY: as above.
    let onetimeauth =
        unsafe { std::mem::transmute::<*mut c_void, OneTimeAuth>(sym(c"crypto_onetimeauth")) };
    Some(Sodium {
        secretbox_easy,
        secretbox_open_easy,
        stream_salsa20_xor_ic,
        onetimeauth,
    })
}

/// No library loading here (Windows, Miri): libsodium is never found.
#[cfg(not(all(unix, not(miri))))]
fn open() -> Option<Sodium> {
    None
}
