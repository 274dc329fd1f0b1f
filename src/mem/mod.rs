//! The memory layer: guarded page mappings, their protection, locking and
//! advice, the canary, wiping, and the borrow guards, above the platform
//! layer (`sys`), which holds every call into the operating system. This
//! module (the platform layer and the crash handler in it) and the
//! vectorised cipher are the only places with `unsafe` code.

mod borrow;
mod canary;
mod compact_mode;
mod corruption;
mod crash_handler;
mod crash_table;
mod fork;
mod harden;
mod layout;
mod lease;
mod lease_roster;
mod lock_wait;
mod memory_backend;
mod protections;
mod reference;
mod reference_mut;
mod region;
mod seal;
mod slab;
mod spares;
pub(crate) mod sys;
mod wipe;

use std::sync::atomic::{AtomicBool, Ordering};

use sys::Os;

pub use compact_mode::{compact_mode, set_compact_mode, CompactMode};
pub(crate) use corruption::{report_and_abort, set_wipe_all, CanaryCorruption};
pub use harden::{disable_process_hardening, is_process_hardened};
#[cfg(test)]
pub(crate) use lease_roster::FULL as LEASE_ROSTER_FULL;
pub(crate) use lock_wait::retry as retry_on_lock_limit;
pub use memory_backend::{
    memory_backend, memory_backend_reason, set_memory_backend, MemoryBackend,
};
pub use protections::Protections;
pub use reference::Ref;
pub use reference_mut::RefMut;
pub(crate) use region::Region;
pub use slab::COMPACT_MAX_FRACTION;
pub(crate) use wipe::scrub_stack;
pub use wipe::wipe_bytes;
#[cfg(test)]
pub(crate) use wipe::{SCRUB, SKIP_SCRUB};

/// Whether the wipe-before-crash hook is in place (a SIGSEGV/SIGBUS
/// handler on Unix, a vectored exception handler on Windows). It is
/// installed on the first allocation.
///
/// ```
/// let _key = memguard::LockedBuffer::new(32)?;
/// assert!(memguard::crash_handler_installed());
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn crash_handler_installed() -> bool {
    crash_handler::installed()
}

/// Sets how many data pages memguard keeps in spare mappings, and unmaps
/// the spares beyond that; `0` turns reuse off, so that every destroyed
/// buffer is unmapped at once.
///
/// When a buffer is destroyed, its data pages are wiped, made inaccessible
/// (`PROT_NONE`, so a stale pointer still faults) and kept, guard pages,
/// lock and advice included, for the next buffer of as many data pages.
/// Taking it costs one `mprotect` instead of a new mapping, which makes
/// short-lived buffers (such as the ones
/// [`Enclave::open`](crate::Enclave::open) returns, or a stream's opened
/// chunk) several times cheaper. The limit counts data pages: a spare of
/// one page (a buffer of up to 4096 bytes on most systems) counts one, a
/// spare of four pages four. Spares stay locked and count against
/// `RLIMIT_MEMLOCK`: by default at most 8 pages are kept, and never more
/// than a sixteenth of the lock limit (one page under a 64 KiB limit, none
/// under less). When a new buffer cannot be
/// locked they are unmapped and the buffer is tried again, and
/// [`purge`](crate::purge) unmaps them all.
///
/// ```
/// memguard::set_spare_limit(0);
/// drop(memguard::LockedBuffer::new(32)?);
/// assert_eq!(memguard::spare_mappings(), 0);
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn set_spare_limit(max: usize) {
    spares::set_limit(max);
}

/// The most data pages kept in spare mappings: the value given to
/// [`set_spare_limit`], or the default worked out from the lock limit.
///
/// ```
/// let before = memguard::spare_limit();
/// memguard::set_spare_limit(2);
/// assert_eq!(memguard::spare_limit(), 2);
/// memguard::set_spare_limit(before);
/// ```
pub fn spare_limit() -> usize {
    spares::limit()
}

/// Makes buffers created from now on keep their data pages inaccessible
/// (`PROT_NONE`) whenever no guard is held ("no access between uses";
/// `false` turns it off for later buffers). The first guard
/// ([`bytes`](crate::LockedBuffer::bytes), [`bytes_mut`](crate::LockedBuffer::bytes_mut),
/// ...) makes them readable or writable, the last guard to go seals them
/// again, so a stray read through a dangling pointer or a debugger's peek
/// between uses faults. Costs two `mprotect`s per use (see
/// `BENCHMARKS.md`); one buffer can opt in or out with
/// [`LockedBuffer::set_no_access_between_uses`](crate::LockedBuffer::set_no_access_between_uses).
///
/// Sealing needs pages of the buffer's own: while it is on, small buffers
/// do not fall back to shared pages ([`CompactMode::Automatic`] acts as
/// [`CompactMode::Never`]); under [`CompactMode::Always`] they stay compact
/// and unsealed.
///
/// ```
/// memguard::set_no_access_between_uses(true);
/// let key = memguard::LockedBuffer::random(32)?;
/// assert!(key.is_sealed_between_uses());
/// assert_eq!(key.bytes().len(), 32); // readable while the guard lives
/// memguard::set_no_access_between_uses(false);
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn set_no_access_between_uses(on: bool) {
    seal::set_default(on);
}

/// Makes buffers created from now on keep their data pages out of forked
/// children with `MADV_DONTFORK` (children do not get the pages at all), as
/// on Linux kernels before 4.14, which lack `MADV_WIPEONFORK`. For tests of
/// that path on a current kernel; not part of the API.
#[doc(hidden)]
pub fn simulate_kernel_without_wipe_on_fork() {
    sys::simulate_no_wipe_on_fork();
}

/// The number of spare mappings kept now (see [`set_spare_limit`]).
pub fn spare_mappings() -> usize {
    spares::count()
}

/// Unmaps every spare mapping, and keeps buffers that exist now from
/// becoming spares; part of a purge.
pub(crate) fn drain_spares() {
    spares::purge();
}

/// Unmaps every empty compact slab and checks the canaries of the slabs
/// left (slots whose destruction waits for a guard); the damage found.
/// Part of a purge, after every buffer is destroyed.
pub(crate) fn purge_compact() -> Vec<CanaryCorruption> {
    slab::purge()
}

/// Compact slabs mapped now, and compact secrets held in them.
///
/// ```
/// memguard::set_compact_mode(memguard::CompactMode::Always);
/// let token = memguard::LockedBuffer::new(32)?;
/// let (slabs, secrets) = memguard::compact_usage();
/// assert!(slabs >= 1 && secrets >= 1);
/// drop(token);
/// assert_eq!(memguard::compact_usage().1, secrets - 1);
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn compact_usage() -> (usize, usize) {
    slab::usage()
}

/// How many `len`-byte compact secrets fit in one page of `page` bytes
/// (0 when `len` is too long to be compact); for capacity planning, as in
/// `memguard doctor`.
///
/// ```
/// assert_eq!(memguard::compact_slots_per_page(32, 4096), 102);
/// assert_eq!(memguard::compact_slots_per_page(4000, 4096), 0);
/// ```
pub fn compact_slots_per_page(len: usize, page: usize) -> usize {
    if len == 0 || len > slab::max_len(page) {
        0
    } else {
        slab::slots_per_page(len, page)
    }
}

/// Set once [`wipe_before_exit`] has run.
static WIPED_BEFORE_EXIT: AtomicBool = AtomicBool::new(false);

/// Wipes the data pages of every buffer that still has them, borrowed or
/// not, for an exit path (after a purge, right before the process ends):
/// a buffer whose destruction waits for a guard, even a guard leaked with
/// `std::mem::forget`, is wiped too. Nothing may read buffers afterwards (a
/// guard still held sees zeros), and canaries are no longer checked.
pub(crate) fn wipe_before_exit() {
    WIPED_BEFORE_EXIT.store(true, Ordering::SeqCst);
    crash_table::wipe_all();
}

/// Whether [`wipe_before_exit`] has run.
pub(crate) fn wiped_before_exit() -> bool {
    WIPED_BEFORE_EXIT.load(Ordering::Acquire)
}

pub(crate) use fork::{
    give_back_from, hold_across_fork, take_into, terminate_children_on, ForkLock, Held,
};

/// The fork generation of this process (0 in the process that first used
/// memguard, one more in each forked child); see `fork`.
pub(crate) fn fork_generation() -> u64 {
    fork::generation()
}

/// Whether the fork hooks are in place (installing them on the first call):
/// without them [`fork_generation`] cannot tell a child from its parent.
pub(crate) fn fork_hooks_installed() -> bool {
    fork::install()
}

/// The system's page size.
pub(crate) fn page_size() -> usize {
    use sys::Pages;
    Os::page_size()
}
