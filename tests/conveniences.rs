//! The conveniences an application reaches for: checked access (`try_bytes`),
//! text (`as_str`), owned sources (`from_vec`, `from_string`), the
//! environment (`from_env`), and, with their features, `serde` and `secrecy`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use memguard::{Error, LockedBuffer};

/// `purge` reaches every buffer of the process, and the environment is
/// process-wide: the tests of this file run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Heap allocations of exactly this many bytes are checked when freed.
const WATCHED: usize = 4093;
/// How many watched allocations were freed, and how many of them held only
/// zeros at that moment.
static FREED: AtomicUsize = AtomicUsize::new(0);
static FREED_ZEROED: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, which looks at watched allocations as they are
/// freed: were they wiped first?
struct Watching;

// SAFETY: every call is passed on to `System` unchanged; `dealloc` only reads
// the allocation it is handed, before freeing it, within its layout.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() == WATCHED {
            // SAFETY: `ptr` is a live allocation of `layout.size()` bytes
            // that we are asked to free; every byte of it was written (the
            // tests fill their whole capacity before handing it over).
            let bytes = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if bytes.iter().all(|&b| b == 0) {
                FREED_ZEROED.fetch_add(1, Ordering::SeqCst);
            }
            FREED.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// A `Vec` of capacity `WATCHED` holding `content`, its spare capacity full
/// of 0xAA: a wipe of the length alone would leave those.
fn watched_vec(content: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(WATCHED);
    v.resize(WATCHED, 0xAA);
    v[..content.len()].copy_from_slice(content);
    v.truncate(content.len());
    assert_eq!(v.capacity(), WATCHED);
    v
}

/// Runs `f` and returns (watched frees, of which wiped) during it.
fn watch_frees(f: impl FnOnce()) -> (usize, usize) {
    let (freed, zeroed) = (
        FREED.load(Ordering::SeqCst),
        FREED_ZEROED.load(Ordering::SeqCst),
    );
    f();
    (
        FREED.load(Ordering::SeqCst) - freed,
        FREED_ZEROED.load(Ordering::SeqCst) - zeroed,
    )
}

#[test]
fn try_bytes_is_an_error_after_purge_where_bytes_is_empty() {
    let _serial = serial();
    let key = LockedBuffer::random(32).unwrap();
    assert_eq!(key.try_bytes().unwrap().len(), 32);
    memguard::purge();
    assert!(matches!(key.try_bytes(), Err(Error::Destroyed)));
    assert!(key.bytes().is_empty());
    assert!(matches!(key.as_str(), Err(Error::Destroyed)));
}

#[test]
fn as_str_is_a_view_of_the_guarded_bytes_not_a_copy() {
    let _serial = serial();
    let buf = LockedBuffer::from_string("pässwörd".to_owned()).unwrap();
    let text = buf.as_str().unwrap();
    assert_eq!(&*text, "pässwörd");
    assert_eq!(text.as_ptr(), buf.try_bytes().unwrap().as_ptr());
    // A read guard: the buffer stays readable alongside.
    assert!(buf.equal_to("pässwörd".as_bytes()));
}

#[test]
fn as_str_rejects_invalid_utf8_saying_where_but_not_what() {
    let _serial = serial();
    let mut src = *b"abc\xC3\x28secret";
    let buf = LockedBuffer::from_bytes(&mut src).unwrap();
    let e = buf.as_str().unwrap_err();
    assert!(matches!(e, Error::Utf8 { valid_up_to: 3 }), "{e:?}");
    let debug = format!("{e:?}");
    assert!(debug.contains("try_bytes()"), "{debug}");
    assert!(!debug.contains("secret"), "{debug}");
    // The buffer is untouched and still usable as bytes.
    assert_eq!(buf.try_bytes().unwrap().len(), 11);
}

#[test]
fn from_vec_wipes_the_whole_allocation_spare_capacity_included() {
    let _serial = serial();
    let (freed, zeroed) = watch_frees(|| {
        let buf = LockedBuffer::from_vec(watched_vec(b"api-key-123")).unwrap();
        assert!(buf.equal_to(b"api-key-123"));
        assert!(!buf.is_mutable());
    });
    assert_eq!((freed, zeroed), (1, 1));
}

#[test]
fn from_string_wipes_the_whole_allocation() {
    let _serial = serial();
    let (freed, zeroed) = watch_frees(|| {
        let s = String::from_utf8(watched_vec(b"hunter2")).unwrap();
        let buf = LockedBuffer::from_string(s).unwrap();
        assert_eq!(&*buf.as_str().unwrap(), "hunter2");
    });
    assert_eq!((freed, zeroed), (1, 1));
}

#[test]
fn from_vec_wipes_on_failure_too() {
    let _serial = serial();
    let (freed, zeroed) = watch_frees(|| {
        // Empty, but the allocation still held bytes in its spare capacity.
        let e = LockedBuffer::from_vec(watched_vec(b"")).unwrap_err();
        assert!(matches!(e, Error::NullBuffer), "{e:?}");
    });
    assert_eq!((freed, zeroed), (1, 1));
    // A control: an ordinary drop of a watched Vec is seen unwiped.
    let (freed, zeroed) = watch_frees(|| drop(watched_vec(b"x")));
    assert_eq!((freed, zeroed), (1, 0));
}

#[test]
fn from_env_reads_the_value_and_names_what_is_wrong() {
    let _serial = serial();
    let name = "MEMGUARD_TEST_FROM_ENV_TOKEN";
    std::env::set_var(name, "tok-from-env");
    let token = LockedBuffer::from_env(name).unwrap();
    assert_eq!(&*token.as_str().unwrap(), "tok-from-env");
    assert!(!token.is_mutable());

    std::env::set_var(name, "");
    let e = LockedBuffer::from_env(name).unwrap_err();
    assert!(
        matches!(
            e,
            Error::EnvVar {
                reason: "is empty",
                ..
            }
        ),
        "{e:?}"
    );
    std::env::remove_var(name);
    let e = LockedBuffer::from_env(name).unwrap_err();
    assert!(
        matches!(
            e,
            Error::EnvVar {
                reason: "is not set",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("environment variable MEMGUARD_TEST_FROM_ENV_TOKEN is not set"),
        "{e}"
    );
}

#[test]
#[cfg(unix)] // environment variables are bytes on Unix, UTF-16 on Windows
fn from_env_takes_bytes_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let _serial = serial();
    let name = "MEMGUARD_TEST_FROM_ENV_BINARY";
    std::env::set_var(name, std::ffi::OsStr::from_bytes(b"k\xffey"));
    let key = LockedBuffer::from_env(name).unwrap();
    std::env::remove_var(name);
    assert!(key.equal_to(b"k\xffey"));
    assert!(matches!(key.as_str(), Err(Error::Utf8 { valid_up_to: 1 })));
}

#[cfg(feature = "serde")]
mod serde_feature {
    use super::*;
    use memguard::Enclave;

    #[derive(serde::Deserialize)]
    struct Config {
        name: String,
        token: LockedBuffer,
        key: LockedBuffer,
        sealed: Enclave,
    }

    #[test]
    fn deserializes_strings_and_byte_sequences_into_guarded_memory() {
        let _serial = serial();
        let config: Config = serde_json::from_str(
            r#"{"name": "svc", "token": "tok-1", "key": [0, 1, 255], "sealed": "pw"}"#,
        )
        .unwrap();
        assert_eq!(config.name, "svc");
        assert_eq!(&*config.token.as_str().unwrap(), "tok-1");
        assert!(!config.token.is_mutable());
        assert!(config.key.equal_to(&[0, 1, 255]));
        assert!(config.sealed.open().unwrap().equal_to(b"pw"));
    }

    #[test]
    fn escaped_strings_and_long_sequences() {
        let _serial = serial();
        let buf: LockedBuffer = serde_json::from_str(r#""a\"b\\c\u00e9""#).unwrap();
        assert_eq!(&*buf.as_str().unwrap(), "a\"b\\cé");
        let long: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let json = serde_json::to_string(&long).unwrap();
        let buf: LockedBuffer = serde_json::from_str(&json).unwrap();
        assert!(buf.equal_to(&long));
    }

    #[test]
    fn owned_strings_from_the_deserializer_are_wiped() {
        let _serial = serial();
        // serde_json hands over an owned String when reading from a Value.
        let s = String::from_utf8(watched_vec(b"owned-secret")).unwrap();
        let value = serde_json::Value::String(s);
        let (freed, zeroed) = watch_frees(|| {
            let buf: LockedBuffer = serde_json::from_value(value).unwrap();
            assert!(buf.equal_to(b"owned-secret"));
        });
        assert_eq!((freed, zeroed), (1, 1));
    }

    #[test]
    fn deserializes_from_a_toml_config() {
        #[derive(serde::Deserialize)]
        struct Database {
            user: String,
            password: Enclave,
        }
        #[derive(serde::Deserialize)]
        struct TomlConfig {
            api_token: LockedBuffer,
            database: Database,
        }
        let _serial = serial();
        let config: TomlConfig = toml::from_str(
            "api_token = \"tok-toml\"\n\n[database]\nuser = \"svc\"\npassword = \"pw\\tx\"\n",
        )
        .unwrap();
        assert_eq!(&*config.api_token.as_str().unwrap(), "tok-toml");
        assert_eq!(config.database.user, "svc");
        assert!(config.database.password.open().unwrap().equal_to(b"pw\tx"));
    }

    #[test]
    fn empty_and_wrong_values_are_clear_errors() {
        let _serial = serial();
        let e = serde_json::from_str::<LockedBuffer>(r#""""#).unwrap_err();
        assert!(e.to_string().contains("null buffer"), "{e}");
        let e = serde_json::from_str::<LockedBuffer>("[]").unwrap_err();
        assert!(e.to_string().contains("null buffer"), "{e}");
        let e = serde_json::from_str::<LockedBuffer>("42").unwrap_err();
        assert!(e.to_string().contains("a non-empty string"), "{e}");
        let e = serde_json::from_str::<LockedBuffer>("[1, 256]").unwrap_err();
        assert!(e.to_string().contains("256"), "{e}");
    }
}

#[cfg(feature = "secrecy")]
mod secrecy_feature {
    use super::*;
    use secrecy::ExposeSecret;

    fn takes_secret_str(s: &impl ExposeSecret<str>) -> usize {
        s.expose_secret().len()
    }

    fn takes_secret_bytes(s: &impl ExposeSecret<[u8]>) -> u8 {
        s.expose_secret()[0]
    }

    #[test]
    fn read_guards_expose_their_secret() {
        let _serial = serial();
        let buf = LockedBuffer::from_string("tok-42".to_owned()).unwrap();
        assert_eq!(takes_secret_str(&buf.as_str().unwrap()), 6);
        assert_eq!(takes_secret_bytes(&buf.try_bytes().unwrap()), b't');
    }
}
