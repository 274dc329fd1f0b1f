//! The platform layer: every call into the operating system, and every
//! `cfg` on the operating system, lives in this folder.
//!
//! Above it, the crate knows the operating system only through the traits
//! below, implemented by one type, [`Os`], picked at compile time (static
//! dispatch: no indirection on the hot paths). A new platform is a new file
//! here that implements them, and one line in the `cfg` block at the end.
//!
//! - [`Pages`]: whole-page memory (map, protect, lock, advise, unmap).
//! - [`Process`]: the process around the pages: hardening, the lock limit
//!   and the advice when it is hit, the fault hook (wipe before a crash),
//!   the fork hooks.
//! - [`Termination`]: the requests to terminate that
//!   [`catch_signal`](crate::catch_signal) listens for (signals on Unix,
//!   console control events on Windows).
//! - [`Terminal`]: the controlling terminal with echo off, for
//!   [`read_password`](crate::LockedBuffer::read_password).
//!
//! Files: `unix/` (what Linux, macOS and the BSDs share: `mmap`,
//! `mprotect`, `mlock`, `sigaction`, `sigaltstack`, `pthread_atfork`,
//! `RLIMIT_CORE`, `termios`, `signal-hook`), one file per Unix system for
//! what differs (`linux.rs`, `macos.rs`, `freebsd.rs`, `openbsd.rs`),
//! `windows.rs`, and `miri.rs` (a stand-in for the Miri interpreter).

use std::fmt;
use std::fs::File;
use std::io;
use std::ptr::NonNull;

use super::protections::Protections;

pub(crate) mod backend;
use crate::error::Result;
use crate::signals::Signal;

/// Page protection for [`Pages::protect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Every access faults, as on a guard page.
    None,
    /// Reads succeed, writes fault.
    ReadOnly,
    /// Reads and writes succeed.
    ReadWrite,
}

/// Page-level memory operations of one operating system.
///
/// All addresses and lengths passed in are page-aligned and lie inside a
/// mapping returned by [`Pages::allocate`] that has not been freed.
pub(crate) trait Pages {
    /// What every mapping gets by construction (the guard pages, where
    /// pages can really be made inaccessible).
    const BASELINE: Protections;

    /// Whether making pages [`Access::None`] unlocks them (Windows: memory
    /// set to `PAGE_NOACCESS` loses its `VirtualLock`), so that pages made
    /// accessible again must be locked again.
    const NO_ACCESS_UNLOCKS: bool;

    /// Whether [`Pages::lock_limit`] is a fixed budget that the process
    /// cannot grow itself (Unix `RLIMIT_MEMLOCK`), so that small buffers
    /// are better kept within a share of it (see `slab`); `false` where
    /// memguard raises the limit itself when it is reached (the Windows
    /// working-set quota).
    const FIXED_LOCK_LIMIT: bool;

    /// The page size, read from the system at run time.
    fn page_size() -> usize;

    /// The most bytes this process may lock; `None` when unlimited.
    fn lock_limit() -> Option<usize>;

    /// Whether this system can give secret memory (see
    /// [`backend`]): `Ok` with how, or `Err` with why not, in words for
    /// `memguard doctor`. Called once, when the backend is decided.
    fn probe_secret_memory() -> std::result::Result<String, String>;

    /// Maps `len` bytes of fresh, zeroed memory with [`Access::None`],
    /// private to this process (not inherited by a forked child when it
    /// is secret memory: see [`backend`]).
    ///
    /// The first and the last page of a mapping of three pages or more are
    /// its guard pages and must never be made accessible: with secret
    /// memory they are a plain reservation, and only the pages between them
    /// come from the secret file (and count against the lock limit).
    fn allocate(len: usize) -> Result<NonNull<u8>>;

    /// Changes the protection of `len` bytes at `ptr`.
    ///
    /// # Safety
    /// The range must be inside a live mapping from [`Pages::allocate`], and
    /// no reference to it may be used in a way the new protection forbids.
    unsafe fn protect(ptr: NonNull<u8>, len: usize, access: Access) -> Result<()>;

    /// As [`Pages::protect`], for a fault handler: one system call and
    /// nothing else (no allocation, no file access, no lock, no error
    /// value built), so it may run where [`Process::install_fault_hook`]
    /// says. Returns whether the protection was changed; a range that is no
    /// longer mapped gives `false`.
    ///
    /// # Safety
    /// The range must not be memory of anyone else that the new protection
    /// would expose (it may be unmapped: that is reported, not harmful);
    /// no reference to it may be used in a way the new protection forbids.
    unsafe fn protect_raw(ptr: NonNull<u8>, len: usize, access: Access) -> bool;

    /// Locks `len` bytes at `ptr` into RAM (no swapping). Returns
    /// [`Protections::LOCKED`] when the system locked them (empty where
    /// there is nothing to lock). A refusal for lack of quota is
    /// [`Error::MemoryLock`](crate::Error::MemoryLock).
    ///
    /// # Safety
    /// The range must be inside a live mapping from [`Pages::allocate`],
    /// accessible (not [`Access::None`]).
    unsafe fn lock(ptr: NonNull<u8>, len: usize) -> Result<Protections>;

    /// Keeps `len` bytes at `ptr` out of core dumps and out of forked
    /// children, as far as the system can; returns what it did
    /// ([`Protections::OUT_OF_DUMPS`], [`Protections::ZEROED_IN_FORKS`] or
    /// [`Protections::ABSENT_IN_FORKS`]).
    ///
    /// # Safety
    /// The range must be inside a live mapping from [`Pages::allocate`].
    unsafe fn advise(ptr: NonNull<u8>, len: usize) -> Result<Protections>;

    /// Maps like [`Pages::allocate`] (`len` is three pages or more), plus a
    /// second view of the same data pages (all but the first and the last
    /// page), read-write, without guard pages: the *alias*, through which
    /// the data may be written while the first view stays read-only.
    /// `Ok(None)` where this system cannot alias memory (then the caller
    /// changes the first view's protection instead).
    ///
    /// Both views are kept out of core dumps and out of forked children
    /// here (see [`Aliased::advised`]): [`Pages::advise`] must not be
    /// called on them. [`Pages::lock`] on the first view locks the pages;
    /// [`Pages::alias_costs_lock`] says whether the alias counts against
    /// the lock limit as well. The alias must never be handed out: it
    /// defeats the read-only view.
    fn allocate_aliased(len: usize) -> Result<Option<Aliased>> {
        let _ = len;
        Ok(None)
    }

    /// Whether the alias of [`Pages::allocate_aliased`] counts against the
    /// lock limit once more (secret memory, where every mapping is locked
    /// and counted); `false` where the pages are counted once, in the
    /// first view, or nothing is aliased.
    fn alias_costs_lock() -> bool {
        false
    }

    /// Unmaps a mapping from [`Pages::allocate_aliased`], its alias with
    /// it.
    ///
    /// # Safety
    /// `ptr` and `len` must be exactly a mapping from
    /// [`Pages::allocate_aliased`] (its `base`), and nothing may use either
    /// view afterwards.
    unsafe fn free_aliased(ptr: NonNull<u8>, len: usize) {
        // SAFETY: the caller's contract; where nothing is aliased, this is
        // never called.
        unsafe { Self::free(ptr, len) }
    }

    /// Unmaps only the alias of a mapping from [`Pages::allocate_aliased`]
    /// (its lock cost goes with it where [`Pages::alias_costs_lock`]); the
    /// first view stays, and is freed with [`Pages::free_aliased`].
    ///
    /// # Safety
    /// `ptr` and `len` must be exactly a live mapping from
    /// [`Pages::allocate_aliased`], and nothing may use its alias
    /// afterwards.
    unsafe fn drop_alias(ptr: NonNull<u8>, len: usize) {
        let _ = (ptr, len);
    }

    /// Unmaps `len` bytes at `ptr`; locks, and what [`Pages::advise`]
    /// registered for the data pages (which start one page in, after the
    /// leading guard page), are released with it.
    ///
    /// # Safety
    /// `ptr` and `len` must be exactly a mapping from [`Pages::allocate`],
    /// and nothing may use it afterwards.
    unsafe fn free(ptr: NonNull<u8>, len: usize);
}

/// A mapping with a second, writable view of its data pages (see
/// [`Pages::allocate_aliased`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Aliased {
    /// The mapping, as [`Pages::allocate`] returns it (guard pages first
    /// and last, [`Access::None`]).
    pub(crate) base: NonNull<u8>,
    /// The writable view of the data pages (`len` less two pages).
    pub(crate) alias: NonNull<u8>,
    /// What was done for both views: out of core dumps and out of forked
    /// children (what [`Pages::advise`] gives, for these views).
    pub(crate) advised: Protections,
}

/// What the process-wide hardening did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hardened {
    /// Whether every step this system has succeeded.
    pub(crate) complete: bool,
}

/// The earlier handler's disposition for a fault or signal, as the fault
/// hook found it (see [`Fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(any(windows, miri), allow(dead_code))] // Windows hands every fault on; Miri has none.
pub(crate) enum Disposition {
    /// The default action: the process dies.
    Default,
    /// The signal is ignored (a fault cannot be: it recurs).
    Ignore,
    /// A handler function (or, on Windows, the rest of the exception
    /// handler chain) decides.
    Handler,
}

/// One fault (or fatal signal), as the backend's hook presents it to the
/// decision logic in `crash_handler`.
///
/// The methods run inside the fault hook: see
/// [`Process::install_fault_hook`] for what they may do.
pub(crate) trait Fault {
    /// The faulting address, for a fault raised by an instruction; `None`
    /// for a signal another process or thread sent.
    fn address(&self) -> Option<usize>;
    /// Whether a fault at `addr` is a stack overflow (within a page of the
    /// stack pointer); `false` where the context cannot tell.
    fn is_stack_overflow(&self, addr: usize, page: usize) -> bool;
    /// What was installed before memguard's hook.
    fn earlier(&self) -> Disposition;
    /// Hands the fault to the earlier handler (only when [`Fault::earlier`]
    /// is [`Disposition::Handler`]); what the disposition is afterwards.
    fn call_earlier(&mut self) -> Disposition;
    /// Makes the process die of this fault once the hook returns (Unix:
    /// default action back, signal raised again; Windows: the search for a
    /// handler goes on, to the system's crash handling).
    fn die(&mut self);
}

/// The process around the pages.
pub(crate) trait Process {
    /// Whether there is a process to harden and hook at all (not under
    /// Miri).
    const REAL: bool;

    /// Applies the process-wide hardening, once: core dumps off, and other
    /// processes of the same user kept from attaching a debugger or reading
    /// memory, as far as this system lets an unprivileged process do so.
    fn harden() -> Hardened;

    /// Writes what to do after a lock refusal: which limit was hit (`limit`,
    /// in bytes, `None` if unlimited), and how to raise it.
    fn lock_advice(f: &mut fmt::Formatter<'_>, limit: Option<u64>) -> fmt::Result;

    /// Writes what to do when the system refused a new mapping: the limit
    /// on mappings (`max_map_count`, if known) and how to raise it.
    fn mapping_advice(f: &mut fmt::Formatter<'_>, max_map_count: Option<u64>) -> fmt::Result;

    /// Installs the fault hook, once per process, which hands every memory
    /// fault to `crash_handler::on_fault`; whether it is in place.
    ///
    /// What may run inside the hook, and so inside `on_fault`, the
    /// [`Fault`] methods and [`Pages::protect_raw`]: no allocation, no lock
    /// (not even a spin on one another thread may hold), no file access, no
    /// panic, no error value built. On Unix only async-signal-safe calls
    /// (`mprotect`, `sigaction`, `pthread_sigmask`, `raise`), atomics and
    /// plain stores; it runs on the alternate signal stack. On Windows only
    /// what a vectored exception handler may do: the same, with
    /// `VirtualProtect` in place of `mprotect`, on the faulting thread's
    /// (possibly almost exhausted) stack.
    fn install_fault_hook() -> bool;

    /// Installs `prepare` (before `fork`, in the forking thread), `parent`
    /// and `child` (after it); whether they are in place. Where there is no
    /// `fork` (Windows), there is nothing to hook: `true`, and the fork
    /// generation stays 0. The hooks run where only async-signal-safe code
    /// may (the child of a multi-threaded process).
    fn install_fork_hooks(prepare: fn(), parent: fn(), child: fn()) -> bool;

    /// Makes `signal` (a number from [`Termination`]) run `action` right in
    /// signal context, in this process and in forked children, after the
    /// listener's own handling. `action` must be async-signal-safe.
    /// Nothing to do where there is no `fork`.
    fn on_signal_in_child(signal: i32, action: fn(i32)) -> Result<()>;

    /// Ends the process at once with `code`: no destructors, no exit
    /// handlers; safe in signal context and in a forked child.
    fn exit_now(code: i32) -> !;

    /// Readies [`Process::barrier`] for this process; whether it is
    /// available. Called once per process, and again in a forked child
    /// (Linux forgets the registration across `fork`).
    fn prepare_barrier() -> bool;

    /// The heavy side of an asymmetric fence: returns once every thread of
    /// the process has executed a full memory barrier (threads running now
    /// are interrupted to do so; the others pass one when they are next
    /// scheduled). A reader that pairs it with a compiler fence alone is
    /// ordered as if it had a full fence. Whether it was done; only after
    /// [`Process::prepare_barrier`] said yes in this process.
    fn barrier() -> bool;
}

/// The requests to terminate that `catch_signal` listens for.
pub(crate) trait Termination {
    /// A running listener.
    type Listener: Send + 'static;

    /// The requests caught when `catch_signal` is given an empty list.
    const TERMINATING: &'static [i32];

    /// Whether `signal` cannot or must not be caught this way (it is not a
    /// request to terminate, or a fault, which the crash handler deals
    /// with).
    fn refused(signal: i32) -> bool;

    /// The number this system uses for `signal`.
    fn number(signal: Signal) -> i32;

    /// The portable name of `number`, if it has one.
    fn signal(number: i32) -> Option<Signal>;

    /// Starts listening for `signals` on a thread of its own, which calls
    /// `on_signal` (on that ordinary thread, not in signal context) with
    /// the first one that arrives.
    fn listen(signals: &[i32], on_signal: fn(i32)) -> Result<Self::Listener>;

    /// Stops a listener; its signals are no longer caught by it.
    fn close(listener: Self::Listener);

    /// Marks `caught` as caught, and every other request this process ever
    /// caught as back to its default action (a caught signal that is no
    /// longer wanted must end the process again, not be ignored).
    fn claim(caught: &[i32]) -> Result<()>;
}

/// The controlling terminal, for reading a password.
pub(crate) trait Terminal {
    /// The terminal's settings before echo was switched off.
    type Saved;

    /// Opens the controlling terminal: what to read from and what to write
    /// the prompt to. Fails when the process has none.
    fn open() -> io::Result<(File, File)>;

    /// Switches echo off on `input` (the newline may still be echoed, so
    /// the cursor moves on); returns what to restore.
    fn echo_off(input: &File) -> io::Result<Self::Saved>;

    /// Puts back what [`Terminal::echo_off`] saved.
    fn restore(input: &File, saved: &Self::Saved);
}

// The one place that picks the backend.
#[cfg(miri)]
mod miri;
#[cfg(all(unix, not(miri)))]
mod unix;
// Miri runs as a Unix process of the host: signals and the terminal are
// the real ones (its tests do not use them), the rest is simulated.
#[cfg(miri)]
#[path = "unix/signals.rs"]
mod unix_signals;
#[cfg(miri)]
#[path = "unix/terminal.rs"]
mod unix_terminal;

#[cfg(all(target_os = "linux", not(miri)))]
mod linux;
#[cfg(all(target_os = "linux", not(miri)))]
mod linux_secretmem;
#[cfg(all(target_os = "linux", not(miri)))]
use linux as os;

#[cfg(all(target_os = "macos", not(miri)))]
mod macos;
#[cfg(all(target_os = "macos", not(miri)))]
use macos as os;

#[cfg(all(target_os = "freebsd", not(miri)))]
mod freebsd;
#[cfg(all(target_os = "freebsd", not(miri)))]
use freebsd as os;

#[cfg(all(target_os = "openbsd", not(miri)))]
mod openbsd;
#[cfg(all(target_os = "openbsd", not(miri)))]
use openbsd as os;

#[cfg(all(windows, not(miri)))]
mod windows;
// The Windows lock decision, pure, so that every system tests it.
#[cfg_attr(not(all(windows, not(miri))), allow(dead_code))]
mod quota;

/// The backend of this build: [`Pages`] and [`Process`].
#[cfg(all(unix, not(miri)))]
pub(crate) type Os = unix::Unix;
/// The backend of this build: [`Termination`].
#[cfg(all(unix, not(miri)))]
pub(crate) type OsSignals = unix::signals::Signals;
/// The backend of this build: [`Terminal`].
#[cfg(all(unix, not(miri)))]
pub(crate) type OsTerminal = unix::terminal::Tty;

/// The backend of this build: [`Pages`] and [`Process`].
#[cfg(all(windows, not(miri)))]
pub(crate) type Os = windows::Windows;
/// The backend of this build: [`Termination`].
#[cfg(all(windows, not(miri)))]
pub(crate) type OsSignals = windows::Windows;
/// The backend of this build: [`Terminal`].
#[cfg(all(windows, not(miri)))]
pub(crate) type OsTerminal = windows::Windows;

/// The backend of this build: [`Pages`] and [`Process`].
#[cfg(miri)]
pub(crate) type Os = miri::Simulated;
/// The backend of this build: [`Termination`].
#[cfg(miri)]
pub(crate) type OsSignals = unix_signals::Signals;
/// The backend of this build: [`Terminal`].
#[cfg(miri)]
pub(crate) type OsTerminal = unix_terminal::Tty;

#[cfg(not(any(
    miri,
    target_os = "linux",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "openbsd",
    windows
)))]
compile_error!(
    "memguard has no platform backend for this operating system; a new one implements the \
     traits of src/mem/sys/mod.rs in a file of its own"
);

/// Test helpers that need the system (a forked child, raw mappings).
#[cfg(all(test, unix, not(miri)))]
pub(crate) use unix::testing;
/// Test helpers where there is no fork.
#[cfg(all(test, any(windows, miri)))]
#[path = "nofork_testing.rs"]
pub(crate) mod testing;

/// For tests of the fork fallback: behave from now on as a system that
/// cannot zero pages in forked children (Linux before 4.14), where that
/// means something.
pub(crate) fn simulate_no_wipe_on_fork() {
    #[cfg(all(target_os = "linux", not(miri)))]
    linux::simulate_no_wipe_on_fork();
}
