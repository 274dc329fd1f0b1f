//! Conveniences: checked access, text, owned sources and the environment.

use std::ffi::OsStr;

use zeroize::Zeroizing;

use super::LockedBuffer;
use crate::error::{Error, Result};
use crate::mem::Ref;

impl LockedBuffer {
    /// Read access to the data, or [`Error::Destroyed`] once the buffer has
    /// been destroyed or purged.
    ///
    /// Prefer this to [`bytes`](LockedBuffer::bytes) wherever an empty slice
    /// could pass for data: after a [`purge`](crate::purge), `bytes()` gives
    /// an empty slice, which as an HMAC key or a password would be accepted
    /// silently.
    ///
    /// ```
    /// use memguard::{Error, LockedBuffer};
    ///
    /// let key = LockedBuffer::random(32)?;
    /// assert_eq!(key.try_bytes()?.len(), 32);
    ///
    /// memguard::purge();
    /// assert!(matches!(key.try_bytes(), Err(Error::Destroyed)));
    /// assert!(key.bytes().is_empty()); // what the unchecked form gives
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn try_bytes(&self) -> Result<Ref<'_, [u8]>> {
        if !self.is_alive() {
            return Err(Error::Destroyed);
        }
        self.region.read().ok_or(Error::Destroyed)
    }

    /// The data as text: a guard of `str` over the buffer itself, never a
    /// copy.
    ///
    /// Fails with [`Error::Utf8`] when the data is not valid UTF-8 (the error
    /// says where, never what) and [`Error::Destroyed`] once destroyed.
    ///
    /// ```
    /// let token = memguard::LockedBuffer::from_string(String::from("s3cr3t-token"))?;
    /// let text: memguard::Ref<'_, str> = token.as_str()?;
    /// assert!(text.starts_with("s3cr3t"));
    ///
    /// let mut bad = *b"ok\xff";
    /// let binary = memguard::LockedBuffer::from_bytes(&mut bad)?;
    /// assert!(matches!(binary.as_str(), Err(memguard::Error::Utf8 { valid_up_to: 2 })));
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn as_str(&self) -> Result<Ref<'_, str>> {
        Ref::try_map(self.try_bytes()?, |b| {
            std::str::from_utf8(b).map_err(|e| Error::Utf8 {
                valid_up_to: e.valid_up_to(),
            })
        })
    }

    /// An immutable buffer holding the bytes of `src`, whose heap allocation
    /// (all of its capacity, not just its length) is then wiped and freed.
    ///
    /// The allocation is wiped on failure too. Copies made before `src` got
    /// here (a reallocation while it grew, an earlier clone) are out of
    /// reach: build the `Vec` with its final capacity where you can. An empty
    /// `src` gives [`Error::NullBuffer`].
    ///
    /// ```
    /// let key = memguard::LockedBuffer::from_vec(vec![1, 2, 3])?;
    /// assert!(key.equal_to(&[1, 2, 3]));
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn from_vec(src: Vec<u8>) -> Result<LockedBuffer> {
        let mut src = Zeroizing::new(src);
        LockedBuffer::from_bytes(&mut src)
    }

    /// An immutable buffer holding the bytes of `src`; its heap allocation
    /// is wiped (whole capacity) and freed, as in
    /// [`from_vec`](LockedBuffer::from_vec). Read it back with
    /// [`as_str`](LockedBuffer::as_str).
    ///
    /// ```
    /// let password = memguard::LockedBuffer::from_string("hunter2".to_owned())?;
    /// assert_eq!(&*password.as_str()?, "hunter2");
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn from_string(src: String) -> Result<LockedBuffer> {
        LockedBuffer::from_vec(src.into_bytes())
    }

    /// An immutable buffer holding the value of the environment variable
    /// `name`; the owned copy that reading the variable makes is wiped.
    ///
    /// Fails with [`Error::EnvVar`] when the variable is not set or is empty.
    /// The value is taken as bytes; [`as_str`](LockedBuffer::as_str) checks
    /// that it is UTF-8 where that matters.
    ///
    /// What this cannot wipe: the environment itself. The variable's value
    /// stays in the process's environment block (the copy the kernel placed
    /// at the top of the stack at `exec`, which `/proc/<pid>/environ` shows
    /// to the same user and root, and any copy `setenv` made), and child
    /// processes inherit it. Removing the variable with
    /// [`std::env::remove_var`] keeps it from children and from later
    /// lookups, but not from `/proc/<pid>/environ`, which still shows the
    /// original block. This crate does not remove it for you: `remove_var`
    /// is only sound while no other thread reads the environment (it is an
    /// `unsafe fn` in Rust 2024), so do it yourself first thing in `main`,
    /// before any thread starts. Prefer a file or a pipe for long-lived
    /// secrets.
    ///
    /// ```
    /// # std::env::set_var("MY_API_TOKEN", "tok-123");
    /// let token = memguard::LockedBuffer::from_env("MY_API_TOKEN")?;
    /// assert_eq!(&*token.as_str()?, "tok-123");
    ///
    /// let missing = memguard::LockedBuffer::from_env("MY_UNSET_VARIABLE");
    /// assert!(matches!(missing, Err(memguard::Error::EnvVar { .. })));
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn from_env(name: impl AsRef<OsStr>) -> Result<LockedBuffer> {
        let name = name.as_ref();
        let env_error = |reason| Error::EnvVar {
            name: name.to_string_lossy().into_owned(),
            reason,
        };
        let value = std::env::var_os(name).ok_or_else(|| env_error("is not set"))?;
        let mut value = Zeroizing::new(value.into_encoded_bytes());
        if value.is_empty() {
            return Err(env_error("is empty"));
        }
        LockedBuffer::from_bytes(&mut value)
    }
}
