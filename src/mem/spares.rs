//! Spare mappings: the guarded mappings of destroyed one-page buffers,
//! wiped, sealed off and still locked, kept for the next one-page buffer.
//!
//! A fresh guarded mapping costs a map, an `mprotect`, an `mlock`, two
//! `madvise` calls, an unmap and a page fault; most of that is the kernel
//! setting up and tearing down the mapping and its page. A spare costs one
//! `mprotect` to take and one to put back. Secrets are mostly small (keys,
//! tokens, passwords) and short-lived (open, use, drop), so this is the
//! common case.
//!
//! What a spare is, between two buffers:
//! - its data page is wiped (all of it, canary included) before it is
//!   parked, exactly as before an unmap;
//! - its data page is inaccessible (`PROT_NONE`), like the guard pages
//!   either side, so a stale pointer into a destroyed buffer still faults;
//! - it stays locked (on Windows, where an inaccessible page loses its
//!   lock, it is locked again when taken), out of core dumps and out of
//!   forked children, so it counts against the lock limit. That is why the
//!   number kept is small: by default at most [`DEFAULT_LIMIT`], and at
//!   most a sixteenth of the lock limit. When a new mapping cannot be locked, the spares are unmapped
//!   and the mapping is tried again; [`purge`](crate::purge) unmaps them too.
//!
//! A forked child does not inherit locks, so spares made before a fork are
//! never handed out after it (see `fork::generation`).

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock, PoisonError, TryLockError};

use super::fork;
use super::layout::Layout;
use super::protections::Protections;
use super::sys::{Access, Os, Pages};

/// How many spares are kept unless [`set_limit`] says otherwise.
pub(crate) const DEFAULT_LIMIT: usize = 8;

/// `LIMIT` before anyone set it.
const UNSET: usize = usize::MAX;

/// A parked mapping: three pages, the middle one the data page.
struct Spare {
    base: NonNull<u8>,
    /// What the system gave the mapping.
    mapping: Protections,
    /// The fork generation it was parked in.
    forks: u64,
}

// SAFETY: a Spare is an address and two plain values; the mapping it names is
// reachable only through the SPARES list, under its mutex.
unsafe impl Send for Spare {}

static SPARES: Mutex<Vec<Spare>> = Mutex::new(Vec::new());
/// The most spares kept, as set by [`set_limit`]; `UNSET` for the default.
static LIMIT: AtomicUsize = AtomicUsize::new(UNSET);
/// Purges so far: a region made before the latest purge is not parked, so
/// that after a purge every buffer of the time ends up unmapped, also one
/// whose destruction waited for a guard.
static PURGES: AtomicU64 = AtomicU64::new(0);
/// The default limit: [`DEFAULT_LIMIT`], or less under a small lock limit.
static DEFAULT: OnceLock<usize> = OnceLock::new();

thread_local! {
    static HELD: fork::Held<Vec<Spare>> = const { Cell::new(None) };
}

fn all() -> MutexGuard<'static, Vec<Spare>> {
    fork_hook();
    SPARES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The list, or `None` when another thread has it (spares are a shortcut:
/// nobody waits for them).
fn try_all() -> Option<MutexGuard<'static, Vec<Spare>>> {
    fork_hook();
    match SPARES.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// The most spares kept now.
pub(crate) fn limit() -> usize {
    match LIMIT.load(Ordering::Relaxed) {
        UNSET => *DEFAULT.get_or_init(|| {
            let page = Os::page_size();
            match Os::lock_limit() {
                None => DEFAULT_LIMIT,
                Some(bytes) => DEFAULT_LIMIT.min(bytes / (16 * page)),
            }
        }),
        n => n,
    }
}

/// Sets the most spares kept and unmaps any beyond it.
pub(crate) fn set_limit(max: usize) {
    let max = max.min(UNSET - 1);
    LIMIT.store(max, Ordering::Relaxed);
    let extra: Vec<Spare> = {
        let mut list = all();
        let keep = list.len().min(max);
        list.split_off(keep)
    };
    for spare in extra {
        release(spare);
    }
}

/// The number of spares parked now.
pub(crate) fn count() -> usize {
    all().len()
}

/// Takes a spare for a one-page buffer: its data page made writable and
/// zero-filled, everything else as [`Region`](super::Region) sets it up.
/// `None` when there is none (or the list is busy).
///
/// Where making a page inaccessible unlocks it (Windows: `PAGE_NOACCESS`
/// drops the `VirtualLock`), the data page is locked again here, after it
/// is made writable; a spare that cannot be locked is unmapped instead.
pub(crate) fn take(page: usize) -> Option<(NonNull<u8>, Protections)> {
    let forks = fork::generation();
    loop {
        let spare = try_all()?.pop()?;
        if spare.forks != forks {
            // Parked before a fork: not locked in this process.
            release(spare);
            continue;
        }
        let data = data_page(spare.base, page);
        // SAFETY: the data page of a mapping we parked and nobody else can
        // reach; no reference into it exists.
        if unsafe { Os::protect(data, page, Access::ReadWrite) }.is_err() {
            release(spare);
            continue;
        }
        // SAFETY: as above; the page is accessible now. A constant: no call
        // at all where locks survive.
        if Os::NO_ACCESS_UNLOCKS && unsafe { Os::lock(data, page) }.is_err() {
            release(spare);
            return None;
        }
        return Some((spare.base, spare.mapping));
    }
}

/// Offers the mapping of a destroyed one-page buffer, whose data page the
/// caller has wiped, made at purge count `epoch`. Returns `false` when it is
/// not kept: the caller unmaps it.
///
/// # Safety
/// `base` must be a three-page mapping from [`Pages::allocate`] set up by
/// `Region` (data page locked and advised), wiped, that nothing can reach.
pub(crate) unsafe fn park(
    base: NonNull<u8>,
    page: usize,
    mapping: Protections,
    epoch: u64,
) -> bool {
    let max = limit();
    if max == 0 || epoch != PURGES.load(Ordering::Acquire) || !fork_hook() {
        return false;
    }
    let Some(mut list) = try_all() else {
        return false;
    };
    if list.len() >= max {
        return false;
    }
    // SAFETY: the caller hands over the mapping; nothing references it.
    if unsafe { Os::protect(data_page(base, page), page, Access::None) }.is_err() {
        return false;
    }
    list.push(Spare {
        base,
        mapping,
        forks: fork::generation(),
    });
    true
}

/// The current purge count, to pass to [`park`] later.
pub(crate) fn epoch() -> u64 {
    PURGES.load(Ordering::Acquire)
}

/// Unmaps every spare, and refuses to park any region made before now;
/// part of a purge.
pub(crate) fn purge() {
    PURGES.fetch_add(1, Ordering::AcqRel);
    drain();
}

/// Unmaps every spare; returns how many there were.
pub(crate) fn drain() -> usize {
    let spares = std::mem::take(&mut *all());
    let n = spares.len();
    for spare in spares {
        release(spare);
    }
    n
}

/// Unmaps a spare, or forgets it when a fork left this process without it.
fn release(spare: Spare) {
    let inherited = spare.forks != fork::generation();
    super::region::count_own(Os::page_size(), false);
    super::lock_wait::notify();
    if inherited && !spare.mapping.contains(Protections::ZEROED_IN_FORKS) {
        // The mapping did not come with the fork; something else may live at
        // that address now.
        return;
    }
    // SAFETY: a whole mapping from Pages::allocate that only the list knew.
    unsafe { Os::free(spare.base, geometry(Os::page_size()).total()) };
}

/// The layout of every spare: one data page between the guards.
fn geometry(page: usize) -> Layout {
    Layout {
        page,
        data_pages: page,
    }
}

fn data_page(base: NonNull<u8>, page: usize) -> NonNull<u8> {
    // SAFETY: the data pages' offset lies inside the spare's mapping.
    unsafe { base.add(geometry(page).data_pages_offset()) }
}

/// Installs the fork hooks once (spares are kept only when a child can tell
/// it is one), with the spare list held across `fork`; whether they are in
/// place.
fn fork_hook() -> bool {
    static FORK_SAFE: Once = Once::new();
    FORK_SAFE.call_once(|| {
        fork::hold_across_fork(
            fork::ForkLock::Spares,
            || fork::take_into(&HELD, &SPARES),
            || fork::give_back_from(&HELD),
        );
    });
    fork::install()
}
