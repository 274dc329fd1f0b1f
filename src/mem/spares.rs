//! Spare mappings: the guarded mappings of destroyed buffers, wiped,
//! sealed off and still locked, kept for the next buffer of as many data
//! pages.
//!
//! A fresh guarded mapping costs a map, an `mprotect`, an `mlock`, two
//! `madvise` calls, an unmap and a page fault; most of that is the kernel
//! setting up and tearing down the mapping and its page. A spare costs one
//! `mprotect` to take and one to put back. Secrets are mostly small (keys,
//! tokens, passwords) and short-lived (open, use, drop), so this is the
//! common case. Larger ones are kept too, within the same budget: a
//! stream's opened chunk (16 KiB, four data pages) cost 21 us to map and
//! unmap against under 2 us for a spare, an eighth of reading a 256 KiB
//! stream to the end (`stream_small_reads`, BENCHMARKS.md).
//!
//! What a spare is, between two buffers:
//! - its data pages are wiped (all of them, canary included) before it is
//!   parked, exactly as before an unmap;
//! - its data pages are inaccessible (`PROT_NONE`), like the guard pages
//!   either side, so a stale pointer into a destroyed buffer still faults;
//! - it stays locked (on Windows, where an inaccessible page loses its
//!   lock, it is locked again when taken), out of core dumps and out of
//!   forked children, so it counts against the lock limit. That is why the
//!   data pages kept are few: by default at most [`DEFAULT_LIMIT`] pages in
//!   all spares together, and at most a sixteenth of the lock limit. When
//!   a new mapping cannot be locked, the spares are unmapped and the
//!   mapping is tried again; [`purge`](crate::purge) unmaps them too.
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

/// How many data pages spares may hold together unless [`set_limit`] says
/// otherwise (a spare of `n` data pages counts `n`).
pub(crate) const DEFAULT_LIMIT: usize = 8;

/// `LIMIT` before anyone set it.
const UNSET: usize = usize::MAX;

/// A parked mapping: its data pages between two guard pages.
struct Spare {
    base: NonNull<u8>,
    /// What the system gave the mapping.
    mapping: Protections,
    /// The fork generation it was parked in.
    forks: u64,
    /// The bytes of its data pages (a whole number of pages).
    data: usize,
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

/// The most data pages kept in spares now.
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

/// Sets the most data pages kept in spares and unmaps the spares beyond
/// it (the most recently parked go first).
pub(crate) fn set_limit(max: usize) {
    let max = max.min(UNSET - 1);
    LIMIT.store(max, Ordering::Relaxed);
    let page = Os::page_size();
    let mut extra = Vec::new();
    {
        let mut list = all();
        while pages(&list, page) > max {
            extra.extend(list.pop());
        }
    }
    for spare in extra {
        release(spare);
    }
}

/// The data pages the spares in `list` hold together.
fn pages(list: &[Spare], page: usize) -> usize {
    list.iter().map(|s| s.data / page).sum()
}

/// The number of spares parked now.
pub(crate) fn count() -> usize {
    all().len()
}

/// Takes a spare for a buffer of `data` bytes of data pages: its data
/// pages made writable and zero-filled, everything else as
/// [`Region`](super::Region) sets it up. `None` when there is none of that
/// size (or the list is busy).
///
/// Where making a page inaccessible unlocks it (Windows: `PAGE_NOACCESS`
/// drops the `VirtualLock`), the data pages are locked again here, after
/// they are made writable; a spare that cannot be locked is unmapped
/// instead.
pub(crate) fn take(page: usize, data: usize) -> Option<(NonNull<u8>, Protections)> {
    let forks = fork::generation();
    loop {
        let spare = {
            let mut list = try_all()?;
            // The most recently parked of that size.
            let at = list.iter().rposition(|s| s.data == data)?;
            list.remove(at)
        };
        if spare.forks != forks {
            // Parked before a fork: not locked in this process.
            release(spare);
            continue;
        }
        let pages = data_pages(spare.base, page);
        // SAFETY: the data pages of a mapping we parked and nobody else can
        // reach; no reference into them exists.
        if unsafe { Os::protect(pages, data, Access::ReadWrite) }.is_err() {
            release(spare);
            continue;
        }
        // SAFETY: as above; the pages are accessible now. A constant: no
        // call at all where locks survive.
        if Os::NO_ACCESS_UNLOCKS && unsafe { Os::lock(pages, data) }.is_err() {
            release(spare);
            return None;
        }
        return Some((spare.base, spare.mapping));
    }
}

/// Offers the mapping of a destroyed buffer with `data` bytes of data
/// pages, which the caller has wiped, made at purge count `epoch`. Returns
/// `false` when it is not kept (the limit has no room for its pages): the
/// caller unmaps it.
///
/// # Safety
/// `base` must be a mapping from [`Pages::allocate`] of `data` bytes of
/// data pages between two guard pages, set up by `Region` (data pages
/// locked and advised), wiped, that nothing can reach.
pub(crate) unsafe fn park(
    base: NonNull<u8>,
    page: usize,
    data: usize,
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
    if pages(&list, page) + data / page > max {
        return false;
    }
    // SAFETY: the caller hands over the mapping; nothing references it.
    if unsafe { Os::protect(data_pages(base, page), data, Access::None) }.is_err() {
        return false;
    }
    list.push(Spare {
        base,
        mapping,
        forks: fork::generation(),
        data,
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
    let page = Os::page_size();
    super::region::count_own(spare.data, false);
    super::lock_wait::notify();
    if inherited && !spare.mapping.contains(Protections::ZEROED_IN_FORKS) {
        // The mapping did not come with the fork; something else may live at
        // that address now.
        return;
    }
    // SAFETY: a whole mapping from Pages::allocate that only the list knew.
    unsafe { Os::free(spare.base, geometry(page, spare.data).total()) };
}

/// The layout of a spare: `data` bytes of data pages between the guards.
fn geometry(page: usize, data: usize) -> Layout {
    Layout {
        page,
        data_pages: data,
    }
}

/// Where a spare's data pages start (after the leading guard page, the same
/// offset whatever their number).
fn data_pages(base: NonNull<u8>, page: usize) -> NonNull<u8> {
    // SAFETY: the data pages' offset lies inside the spare's mapping.
    unsafe { base.add(geometry(page, page).data_pages_offset()) }
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
