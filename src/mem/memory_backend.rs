//! [`MemoryBackend`]: where the pages of every buffer come from, and the
//! functions to choose and query it.

use std::fmt;

use super::sys::backend;
use crate::error::Result;

/// Where the data pages of every buffer come from, decided once per
/// process (see [`set_memory_backend`] and [`memory_backend`]).
///
/// ```
/// use memguard::{LockedBuffer, MemoryBackend, Protections};
///
/// let key = LockedBuffer::random(32)?;
/// let secret = memguard::memory_backend() == MemoryBackend::SecretMemory;
/// assert_eq!(key.protections().contains(Protections::SECRET_MEMORY), secret);
/// println!("{}: {}", memguard::memory_backend(), memguard::memory_backend_reason());
/// # Ok::<(), memguard::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryBackend {
    /// Secret memory: Linux `memfd_secret` (5.14 and later; on by default
    /// since 6.5). The pages are taken out of the kernel's direct map: no
    /// other process, root included, can read them through
    /// `/proc/<pid>/mem`, `process_vm_readv` or `ptrace`, and they are
    /// locked by the kernel. A forked child does not get them
    /// (`MADV_DONTFORK`). While any exists, the system refuses to
    /// hibernate (a hibernation image is a copy of RAM on disk). Every
    /// buffer then has [`Protections::SECRET_MEMORY`](crate::Protections::SECRET_MEMORY).
    SecretMemory,
    /// Private anonymous mappings, locked with `mlock` (`VirtualLock` on
    /// Windows): what every system has.
    Anonymous,
}

impl MemoryBackend {
    /// The backend's name: `"secret memory"` or `"anonymous memory"`.
    pub const fn name(self) -> &'static str {
        match self {
            MemoryBackend::SecretMemory => "secret memory",
            MemoryBackend::Anonymous => "anonymous memory",
        }
    }
}

impl fmt::Display for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Chooses where the pages of every buffer come from, for the rest of the
/// process; call it before any other function of this crate.
///
/// Without this call, the first allocation decides: secret memory where the
/// system gives it, anonymous memory otherwise, unless the environment
/// variable `MEMGUARD_MEMORY_BACKEND` says otherwise (`anonymous`, `secret`
/// or `auto`, for operators). A choice made here takes precedence over the
/// environment variable.
///
/// Errors:
/// - [`Error::MemoryBackendAlreadyChosen`](crate::Error::MemoryBackendAlreadyChosen)
///   when the backend was already decided (a buffer was allocated, or
///   [`memory_backend`] was asked, or this was called before);
/// - [`Error::SecretMemoryUnavailable`](crate::Error::SecretMemoryUnavailable)
///   when [`MemoryBackend::SecretMemory`] is asked for and the system
///   cannot give it: the anonymous backend is in effect then, and the
///   error says why.
///
/// ```
/// use memguard::{Error, MemoryBackend};
///
/// // At the very top of main(), before any other memguard call:
/// match memguard::set_memory_backend(MemoryBackend::SecretMemory) {
///     Ok(()) => assert_eq!(memguard::memory_backend(), MemoryBackend::SecretMemory),
///     Err(Error::SecretMemoryUnavailable { reason }) => println!("no secret memory: {reason}"),
///     Err(Error::MemoryBackendAlreadyChosen { current }) => println!("too late: {current}"),
///     Err(e) => panic!("{e}"),
/// }
/// ```
pub fn set_memory_backend(backend: MemoryBackend) -> Result<()> {
    backend::request(backend)
}

/// The backend every buffer's pages come from. Asking decides it, if no
/// allocation did yet (see [`set_memory_backend`]).
///
/// ```
/// let backend = memguard::memory_backend();
/// println!("buffers live in {backend}");
/// ```
pub fn memory_backend() -> MemoryBackend {
    backend::decision().backend
}

/// Why [`memory_backend`] is what it is, in a sentence: who chose it, or
/// why secret memory is not available (for example "the kernel has no
/// memfd_secret ..."). Asking decides the backend, if nothing did yet.
///
/// ```
/// assert!(!memguard::memory_backend_reason().is_empty());
/// ```
pub fn memory_backend_reason() -> &'static str {
    &backend::decision().reason
}
