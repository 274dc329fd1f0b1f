//! What Linux, macOS, FreeBSD and OpenBSD share: `mprotect`, `mlock`,
//! `munmap`, `RLIMIT_MEMLOCK` and `RLIMIT_CORE`, the SIGSEGV/SIGBUS hook
//! (`fault.rs`), `pthread_atfork`, termination signals (`signals.rs`) and
//! the terminal (`terminal.rs`). What differs (how a mapping is made and
//! advised, the extra hardening, the signal context) comes from the
//! system's own file, `super::os`.

mod fault;
pub(crate) mod signals;
pub(crate) mod terminal;
#[cfg(test)]
pub(crate) mod testing;

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::sync::OnceLock;

use rustix::io::Errno;
use rustix::mm::{self, MprotectFlags};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

#[cfg(target_os = "linux")]
use super::linux_secretmem as secret;
use super::os;
#[cfg(not(target_os = "linux"))]
#[path = "no_secret.rs"]
mod secret;
use super::backend;
use super::{Access, Aliased, Hardened, Pages, Process};
use crate::error::{Error, Result};
use crate::mem::protections::Protections;

/// The Unix backend; `super::os` fills in what each system does its own way.
pub(crate) struct Unix;

/// The bare `mprotect` system call, shared by [`Pages::protect`] and the
/// async-signal-safe [`Pages::protect_raw`]: rustix issues it directly (or
/// through libc's `mprotect`, itself async-signal-safe), with no allocation
/// and no lock.
///
/// # Safety
/// As for [`Pages::protect_raw`].
unsafe fn mprotect(ptr: NonNull<u8>, len: usize, access: Access) -> std::result::Result<(), Errno> {
    let flags = match access {
        Access::None => MprotectFlags::empty(),
        Access::ReadOnly => MprotectFlags::READ,
        Access::ReadWrite => MprotectFlags::READ | MprotectFlags::WRITE,
    };
    // SAFETY: the caller guarantees the range is ours (or unmapped) and that
    // no reference is used against the new protection.
    unsafe { mm::mprotect(ptr.as_ptr().cast::<c_void>(), len, flags) }
}

/// ENOMEM from mmap or mprotect (which splits mappings) most often means
/// the system's limit on mappings; say so, with the number where the
/// system has one.
pub(super) fn map_error(operation: &'static str, e: Errno) -> Error {
    if e != Errno::NOMEM {
        return Error::os(operation, e.into());
    }
    Error::OutOfMappings {
        operation,
        max_map_count: os::max_map_count(),
        source: e.into(),
    }
}

/// A fresh private anonymous `PROT_NONE` mapping through libc's `mmap`,
/// with the system's `extra` flags (for the systems whose flags rustix
/// does not name).
#[allow(dead_code)]
pub(super) fn map_with(len: usize, extra: libc::c_int) -> Result<*mut c_void> {
    // SAFETY: a null hint lets the kernel pick an address that overlaps
    // nothing; the new mapping is private, anonymous and PROT_NONE, so no
    // existing memory or reference is affected.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANON | extra,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(map_error(
            "mmap",
            Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::NOMEM),
        ));
    }
    Ok(ptr)
}

/// The last `errno`, as an [`Error::Os`] for `operation`.
#[allow(dead_code)]
pub(super) fn last_error(operation: &'static str) -> Error {
    Error::os(operation, std::io::Error::last_os_error())
}

/// The soft `RLIMIT_MEMLOCK` in bytes; `None` when unlimited.
pub(super) fn memlock_limit() -> Option<u64> {
    getrlimit(Resource::Memlock).current
}

impl Pages for Unix {
    const BASELINE: Protections = Protections::GUARD_PAGES;
    const NO_ACCESS_UNLOCKS: bool = false;
    const FIXED_LOCK_LIMIT: bool = true;

    fn page_size() -> usize {
        rustix::param::page_size()
    }

    fn lock_limit() -> Option<usize> {
        memlock_limit().map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn probe_secret_memory() -> std::result::Result<String, String> {
        secret::probe()
    }

    fn allocate(len: usize) -> Result<NonNull<u8>> {
        let ptr = if backend::secret() {
            secret::allocate(len, Self::page_size())?
        } else {
            os::map(len)?
        };
        NonNull::new(ptr.cast::<u8>()).ok_or(Error::Os {
            operation: "mmap",
            source: std::io::Error::other("the kernel returned a null mapping"),
        })
    }

    unsafe fn protect(ptr: NonNull<u8>, len: usize, access: Access) -> Result<()> {
        // SAFETY: the caller guarantees the range lies in one of our mappings
        // and that no reference is used against the new protection.
        unsafe { mprotect(ptr, len, access) }.map_err(|e| map_error("mprotect", e))
    }

    unsafe fn protect_raw(ptr: NonNull<u8>, len: usize, access: Access) -> bool {
        // SAFETY: the caller guarantees the range is not someone else's
        // memory and that no reference is used against the new protection.
        // The error is only looked at, not mapped (map_error allocates and
        // may read a file, which a signal handler must not).
        unsafe { mprotect(ptr, len, access) }.is_ok()
    }

    unsafe fn lock(ptr: NonNull<u8>, len: usize) -> Result<Protections> {
        if backend::secret() {
            // Every mapping is secret memory, which the kernel keeps locked
            // (VM_LOCKED, counted against RLIMIT_MEMLOCK when it was
            // mapped); mlock refuses such pages.
            return Ok(Protections::LOCKED);
        }
        // SAFETY: the caller guarantees the range lies in one of our mappings;
        // mlock changes no contents.
        unsafe { mm::mlock(ptr.as_ptr().cast::<c_void>(), len) }
            .map(|()| Protections::LOCKED)
            .map_err(|e| match e {
                Errno::NOMEM | Errno::AGAIN | Errno::PERM => Error::MemoryLock {
                    requested: len,
                    limit: memlock_limit(),
                    source: e.into(),
                },
                other => Error::os("mlock", other.into()),
            })
    }

    unsafe fn advise(ptr: NonNull<u8>, len: usize) -> Result<Protections> {
        if backend::secret() {
            // Secret memory: VM_DONTDUMP set by the kernel, MADV_DONTFORK by
            // secret::allocate (MADV_WIPEONFORK is refused on shared
            // mappings).
            return Ok(Protections::OUT_OF_DUMPS
                | Protections::ABSENT_IN_FORKS
                | Protections::SECRET_MEMORY);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { os::advise(ptr, len) }
    }

    fn allocate_aliased(len: usize) -> Result<Option<Aliased>> {
        let secret = backend::secret();
        let Some((base, alias)) = secret::allocate_aliased(secret, len, Self::page_size())? else {
            return Ok(None);
        };
        let (Some(base), Some(alias)) = (
            NonNull::new(base.cast::<u8>()),
            NonNull::new(alias.cast::<u8>()),
        ) else {
            return Err(Error::Os {
                operation: "mmap",
                source: std::io::Error::other("the kernel returned a null mapping"),
            });
        };
        let mut advised = Protections::OUT_OF_DUMPS | Protections::ABSENT_IN_FORKS;
        if secret {
            advised |= Protections::SECRET_MEMORY;
        }
        Ok(Some(Aliased {
            base,
            alias,
            advised,
        }))
    }

    fn alias_costs_lock() -> bool {
        // Every mapping of a secret file is VM_LOCKED and counted; an
        // ordinary file's pages are locked through the first view.
        backend::secret()
    }

    unsafe fn free_aliased(ptr: NonNull<u8>, len: usize) {
        // SAFETY: the caller's contract, passed on.
        unsafe { secret::free_aliased(backend::secret(), ptr, len, Self::page_size()) };
    }

    unsafe fn drop_alias(ptr: NonNull<u8>, len: usize) {
        // SAFETY: the caller's contract, passed on.
        unsafe { secret::drop_alias(backend::secret(), ptr, len, Self::page_size()) };
    }

    unsafe fn free(ptr: NonNull<u8>, len: usize) {
        // SAFETY: the caller's contract, passed on.
        if backend::secret() && unsafe { secret::free(ptr, len, Self::page_size()) } {
            return;
        }
        // SAFETY: the caller guarantees this is exactly one of our mappings
        // and that nothing uses it any more. munmap also drops the mlock, so
        // a separate munlock would be a wasted system call. It can only fail
        // for arguments we never pass, and nothing could be done about it in
        // a destructor anyway.
        let _ = unsafe { mm::munmap(ptr.as_ptr().cast::<c_void>(), len) };
    }
}

/// `prepare`, `parent` and `child`, as given to
/// [`Process::install_fork_hooks`].
type ForkHooks = (fn(), fn(), fn());

/// The fork hooks, for the `extern "C"` trampolines `pthread_atfork` takes.
static FORK_HOOKS: OnceLock<ForkHooks> = OnceLock::new();

extern "C" fn fork_prepare() {
    if let Some((prepare, _, _)) = FORK_HOOKS.get() {
        prepare();
    }
}

extern "C" fn fork_parent() {
    if let Some((_, parent, _)) = FORK_HOOKS.get() {
        parent();
    }
}

extern "C" fn fork_child() {
    if let Some((_, _, child)) = FORK_HOOKS.get() {
        child();
    }
}

impl Process for Unix {
    const REAL: bool = true;

    fn harden() -> Hardened {
        let no_core = Rlimit {
            current: Some(0),
            maximum: Some(0),
        };
        let core_off = setrlimit(Resource::Core, no_core).is_ok();
        let attach_blocked = os::harden();
        Hardened {
            complete: core_off && attach_blocked,
        }
    }

    fn lock_advice(f: &mut fmt::Formatter<'_>, limit: Option<u64>) -> fmt::Result {
        let privilege = os::LOCK_PRIVILEGE;
        match limit {
            Some(0) => write!(
                f,
                "RLIMIT_MEMLOCK is 0 bytes, so no memory can be locked; raise it with \
                 `ulimit -l` (or LimitMEMLOCK= in a systemd unit, --ulimit memlock= for a \
                 container){privilege}"
            ),
            Some(limit) => write!(
                f,
                "RLIMIT_MEMLOCK is {} and locked memory is used up; destroy buffers you no longer \
                 need, raise the limit with `ulimit -l` (or LimitMEMLOCK= in a systemd unit, \
                 --ulimit memlock= for a container){privilege}",
                crate::error::Size(limit)
            ),
            None => write!(
                f,
                "RLIMIT_MEMLOCK is unlimited, so the kernel is out of lockable memory; destroy \
                 buffers you no longer need"
            ),
        }
    }

    fn mapping_advice(f: &mut fmt::Formatter<'_>, max_map_count: Option<u64>) -> fmt::Result {
        os::mapping_advice(f, max_map_count)
    }

    fn install_fault_hook() -> bool {
        fault::install()
    }

    fn install_fork_hooks(prepare: fn(), parent: fn(), child: fn()) -> bool {
        // The secret-memory pool's hooks first, so that its lock is taken
        // after every other lock before fork (see secret::install_fork_hooks).
        secret::install_fork_hooks();
        if FORK_HOOKS.set((prepare, parent, child)).is_err() {
            // Installed before (the caller installs once).
            return true;
        }
        // SAFETY: registers three functions that live as long as the
        // program. They call the hooks the caller gave, which promise to be
        // async-signal-safe, as code run in a child after fork must be.
        unsafe {
            libc::pthread_atfork(
                Some(fork_prepare as unsafe extern "C" fn()),
                Some(fork_parent as unsafe extern "C" fn()),
                Some(fork_child as unsafe extern "C" fn()),
            ) == 0
        }
    }

    fn on_signal_in_child(signal: i32, action: fn(i32)) -> Result<()> {
        // SAFETY: the caller promises that `action` is async-signal-safe, so
        // it may run in signal context.
        unsafe { signal_hook::low_level::register(signal, move || action(signal)) }
            .map(drop)
            .map_err(|source| Error::Os {
                operation: "sigaction",
                source,
            })
    }

    fn exit_now(code: i32) -> ! {
        // SAFETY: _exit is async-signal-safe; it ends the process at once,
        // with no destructor or atexit handler.
        unsafe { libc::_exit(code) }
    }

    fn prepare_barrier() -> bool {
        os::prepare_barrier()
    }

    fn barrier() -> bool {
        os::barrier()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Advice(Option<u64>);

    impl fmt::Display for Advice {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            Unix::lock_advice(f, self.0)
        }
    }

    #[test]
    fn lock_advice_names_the_limit_and_the_fix() {
        let text = Advice(Some(65536)).to_string();
        assert!(text.contains("RLIMIT_MEMLOCK is 64 KiB"), "{text}");
        assert!(text.contains("ulimit -l"), "{text}");
        assert!(text.contains(os::LOCK_PRIVILEGE), "{text}");
        let text = Advice(Some(0)).to_string();
        assert!(text.contains("no memory can be locked"), "{text}");
        let text = Advice(None).to_string();
        assert!(text.contains("unlimited"), "{text}");
    }
}
