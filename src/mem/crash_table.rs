//! A table of the data pages of every live region that a signal handler can
//! walk: no locks, no allocation, only atomics and system calls.
//!
//! Slots live in fixed segments of [`SEGMENT`] entries that are allocated
//! on demand (outside signal context) and never freed, so a handler can read
//! any published segment at any time. A slot holds the address and length
//! of one region's data pages, or zero when free.
//!
//! # Wiping while other threads unmap
//!
//! [`wipe_all`] may run (in a crash handler, or on an exit path) while
//! another thread destroys a buffer: the handler could read a slot, and the
//! other thread unmap (or park as a `PROT_NONE` spare) the pages before the
//! handler writes to them. The write would then fault inside the handler,
//! the kernel would kill the process, and every buffer after that slot
//! would be left unwiped. Two things prevent it:
//!
//! - a Dekker-style handshake on two sequentially consistent atomics. A
//!   wipe first increments [`WIPERS`], then reads the slots, and decrements
//!   it when done. [`remove`] first clears the slot, then waits until
//!   [`WIPERS`] is zero, and only then returns, after which the caller may
//!   unmap. All four accesses are `SeqCst`, so they fall in one total
//!   order: if the wipe read the slot's address before it was cleared, its
//!   increment came before the clear, hence before `remove`'s read of the
//!   counter, which therefore sees the wipe in progress and waits for it to
//!   end. If the clear came first, the wipe reads zero and skips the slot.
//!   Either way no slot a wipe has read is unmapped before that wipe is
//!   over. A wipe never waits for anything, so the wait in `remove` is
//!   bounded by one pass over the table (`remove` is never called from a
//!   signal handler: it takes a mutex anyway);
//! - a protection change that fails (the range is not mapped, or the kernel
//!   refuses) is not followed by a write: [`Pages::protect_raw`] reports it
//!   without building an error (no allocation, no file read), and the wipe
//!   goes on with the next slot. So one bad slot cannot stop the others.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use super::fork;
use super::sys::{Access, Os, Pages};

const SEGMENT: usize = 1024;
const MAX_SEGMENTS: usize = 4096;

struct Slot {
    addr: AtomicUsize,
    len: AtomicUsize,
}

type Segment = [Slot; SEGMENT];

static SEGMENTS: [AtomicPtr<Segment>; MAX_SEGMENTS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_SEGMENTS];
/// Free slot numbers, and the next never-used one.
static FREE: Mutex<(Vec<usize>, usize)> = Mutex::new((Vec::new(), 0));
/// Wipes in progress (see the module docs): [`remove`] does not return while
/// this is not zero.
static WIPERS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static FREE_HELD: fork::Held<(Vec<usize>, usize)> = const { Cell::new(None) };
}

fn free_list() -> MutexGuard<'static, (Vec<usize>, usize)> {
    FREE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn segment(index: usize) -> &'static Segment {
    let cell = &SEGMENTS[index / SEGMENT];
    let existing = cell.load(Ordering::Acquire);
    if !existing.is_null() {
        // SAFETY: published segments are leaked boxes, never freed.
        return unsafe { &*existing };
    }
    let fresh: &'static mut Segment = Box::leak(Box::new(
        [const {
            Slot {
                addr: AtomicUsize::new(0),
                len: AtomicUsize::new(0),
            }
        }; SEGMENT],
    ));
    match cell.compare_exchange(
        std::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => fresh,
        Err(theirs) => {
            // SAFETY: `fresh` was never published (the exchange failed), so
            // this thread holds its only pointer; it came from Box::leak.
            drop(unsafe { Box::from_raw(fresh as *mut Segment) });
            // SAFETY: another thread published its segment first; published
            // segments are leaked boxes, never freed.
            unsafe { &*theirs }
        }
    }
}

/// Every slot of every published segment; atomics only, no allocation.
///
/// Segments need not be published in order (two threads may be handed
/// slots in different segments and publish them in either order), so every
/// cell is looked at: a few thousand loads.
fn all_slots() -> impl Iterator<Item = &'static Slot> {
    SEGMENTS.iter().flat_map(|cell| {
        let seg = cell.load(Ordering::Acquire);
        // SAFETY: published segments are leaked boxes, never freed; null
        // (not published) gives no slots.
        let seg: Option<&'static Segment> = unsafe { seg.as_ref() };
        seg.into_iter().flatten()
    })
}

/// Records the data pages `addr..addr + len`; returns the slot to release,
/// or `None` when the table is full (the region then is not wiped on a
/// crash, but works otherwise).
pub(crate) fn add(addr: NonNull<u8>, len: usize) -> Option<usize> {
    static FORK_SAFE: Once = Once::new();
    FORK_SAFE.call_once(|| {
        fork::hold_across_fork(
            fork::ForkLock::CrashTable,
            || fork::take_into(&FREE_HELD, &FREE),
            || fork::give_back_from(&FREE_HELD),
        );
    });
    let index = {
        let mut free = free_list();
        match free.0.pop() {
            Some(i) => i,
            None if free.1 < SEGMENT * MAX_SEGMENTS => {
                free.1 += 1;
                free.1 - 1
            }
            None => return None,
        }
    };
    let slot = &segment(index)[index % SEGMENT];
    slot.len.store(len, Ordering::Relaxed);
    // Publishes `len` with it (SeqCst includes Release).
    slot.addr.store(addr.as_ptr() as usize, Ordering::SeqCst);
    Some(index)
}

/// Forgets a slot; call before the pages are unmapped or parked.
///
/// Does not return while a wipe that may have read the slot is running (see
/// the module docs), so that the pages are never taken away under it. Not
/// for signal handlers.
pub(crate) fn remove(index: usize) {
    segment(index)[index % SEGMENT]
        .addr
        .store(0, Ordering::SeqCst);
    while WIPERS.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
    free_list().0.push(index);
}

/// Forgets the pages of every slot, in a forked child right after `fork`.
///
/// The child inherits the table, but not the parent's secrets: the pages of
/// inherited regions are zero-filled (`MADV_WIPEONFORK`) or not mapped at
/// all (`MADV_DONTFORK`), so there is nothing of theirs to wipe, and
/// touching them would be wrong. Clears every slot's address without
/// putting the slot on the free list; a later [`remove`] of such a slot
/// still frees it. Also forgets any wipe in progress: it ran on a thread of
/// the parent that the child does not have, and would make [`remove`] wait
/// forever.
///
/// Async-signal-safe (atomic stores only: no lock, no allocation), as code
/// that runs between `fork` and anything else must be. Meant for the
/// child's only thread, before it starts others.
pub(crate) fn forget_all() {
    for slot in all_slots() {
        slot.addr.store(0, Ordering::SeqCst);
    }
    WIPERS.store(0, Ordering::SeqCst);
}

/// Whether `addr` lies in memory of a live region: its data pages, or the
/// guard page (of `page` bytes) just before or just after them.
///
/// Async-signal-safe: atomic loads only. The answer may be stale by the time
/// it is used (a region may be made or destroyed meanwhile on another
/// thread); the crash handler uses it only to decide who owns a fault.
pub(crate) fn covers(addr: usize, page: usize) -> bool {
    all_slots().any(|slot| {
        let start = slot.addr.load(Ordering::Acquire);
        let len = slot.len.load(Ordering::Relaxed);
        start != 0
            && addr.wrapping_sub(start.wrapping_sub(page))
                < len.saturating_add(page.saturating_mul(2))
    })
}

/// Wipes the data pages of every live region: made writable, then zeroed.
///
/// Async-signal-safe: atomics, `mprotect` through [`Pages::protect_raw`] and
/// plain stores only; no allocation, no lock, no file access. A slot whose
/// pages cannot be made writable (not mapped any more, say) is skipped, and
/// the others are still wiped.
///
/// Meant for a crash handler, when the process is about to die, and for
/// exit paths: a buffer being read on another thread at that moment sees
/// zeros, and frozen buffers are left writable. A region whose destruction
/// starts meanwhile waits in [`remove`] until the wipe is over.
pub(crate) fn wipe_all() {
    WIPERS.fetch_add(1, Ordering::SeqCst);
    for slot in all_slots() {
        let addr = slot.addr.load(Ordering::SeqCst);
        let len = slot.len.load(Ordering::Relaxed);
        let Some(ptr) = NonNull::new(addr as *mut u8) else {
            continue;
        };
        // SAFETY: the slot was published for data pages of `len` bytes of a
        // live region, which stay mapped, and are not parked, until this
        // wipe ends (the handshake in the module docs). Only if the change
        // succeeded are the pages written.
        unsafe {
            if Os::protect_raw(ptr, len, Access::ReadWrite) {
                std::ptr::write_bytes(ptr.as_ptr(), 0, len);
            }
        }
    }
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
    WIPERS.fetch_sub(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// Counts allocations made while [`ARMED`], in the lib's test build
    /// only: one relaxed load per allocation otherwise.
    struct Counting;

    static ARMED: AtomicBool = AtomicBool::new(false);
    static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

    fn count() {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }

    // SAFETY: every call is passed on unchanged to the system allocator,
    // which upholds the GlobalAlloc contract; counting has no effect on it.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count();
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count();
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count();
            // SAFETY: the caller's contract, passed on.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract, passed on.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    use crate::mem::sys::testing::{in_child, mapped, unmap, CAN_FORK};

    /// Whether the page at `ptr` holds only `byte`.
    fn page_is(ptr: NonNull<u8>, byte: u8) -> bool {
        // SAFETY: callers pass a mapped, readable page.
        let page = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), Os::page_size()) };
        page.iter().all(|&b| b == byte)
    }

    #[test]
    fn a_slot_is_published_then_cleared() {
        let mut page = [0u8; 64];
        let addr = NonNull::from(&mut page).cast::<u8>();
        let i = add(addr, 64).unwrap();
        let slot = &segment(i)[i % SEGMENT];
        assert_eq!(slot.addr.load(Ordering::Acquire), addr.as_ptr() as usize);
        assert_eq!(slot.len.load(Ordering::Acquire), 64);
        remove(i);
        // Another test may take the slot again at once, but never for this
        // address: it is a local array of this test.
        assert_ne!(slot.addr.load(Ordering::Acquire), addr.as_ptr() as usize);
    }

    /// Issue 11, point 8: a slot whose pages are gone (unmapped by another
    /// thread, in real life) must not stop the wipe, nor make it allocate.
    /// The old code wrote to the unmapped page after a failed `mprotect`
    /// (whose error path read a file into a `String`), and the child died of
    /// SIGSEGV there.
    #[test]
    fn wipe_all_skips_an_unmapped_slot_wipes_the_others_and_allocates_nothing() {
        if !CAN_FORK {
            return;
        }
        let page = Os::page_size();
        let base = mapped(3);
        // SAFETY: the three pages lie in the mapping just made.
        let pages: Vec<NonNull<u8>> = (0..3).map(|k| unsafe { base.add(k * page) }).collect();
        let slots: Vec<usize> = pages
            .iter()
            .map(|&p| add(p, page).expect("a free slot"))
            .collect();
        // The unmapped page gets the lowest slot, so the wipe meets it
        // before the other two.
        let hole = (0..3).min_by_key(|&k| slots[k]).expect("three slots");
        let code = in_child(|| {
            // The fork hook made the child forget every slot (what it
            // inherits is not its own); these three are published again.
            for (&s, &p) in slots.iter().zip(&pages) {
                segment(s)[s % SEGMENT]
                    .addr
                    .store(p.as_ptr() as usize, Ordering::SeqCst);
            }
            // One page of our mapping; nothing else in this (single
            // threaded) child uses it or maps anything meanwhile.
            unmap(pages[hole], 1);
            ALLOCATIONS.store(0, Ordering::SeqCst);
            ARMED.store(true, Ordering::SeqCst);
            wipe_all();
            ARMED.store(false, Ordering::SeqCst);
            let during = ALLOCATIONS.load(Ordering::SeqCst);
            // Positive control: the counter sees an allocation.
            ARMED.store(true, Ordering::SeqCst);
            drop(std::hint::black_box(Box::new(7u64)));
            ARMED.store(false, Ordering::SeqCst);
            let control = ALLOCATIONS.load(Ordering::SeqCst) - during;
            let wiped = (0..3).filter(|&k| k != hole).all(|k| page_is(pages[k], 0));
            match (wiped, during, control) {
                (_, _, 0) => 3,
                (_, 1.., _) => 2,
                (false, _, _) => 1,
                (true, 0, _) => 0,
            }
        });
        for &s in &slots {
            remove(s);
        }
        assert!(page_is(pages[0], 0xa5), "the wipe ran in the parent");
        unmap(base, 3);
        assert_eq!(
            code, 0,
            "child: 1 = a mapped page was not wiped, 2 = wipe_all allocated, 3 = the \
             allocation counter saw nothing, 128+n = killed by signal n"
        );
    }

    /// A slot in a segment published before the ones below it is wiped too
    /// (the old loop stopped at the first unpublished segment).
    #[test]
    fn wipe_all_reaches_a_segment_published_out_of_order() {
        if !CAN_FORK {
            return;
        }
        let page = mapped(1);
        let code = in_child(|| {
            if !SEGMENTS[MAX_SEGMENTS - 2].load(Ordering::SeqCst).is_null() {
                return 2;
            }
            let index = (MAX_SEGMENTS - 1) * SEGMENT + 5;
            let slot = &segment(index)[index % SEGMENT];
            slot.len.store(Os::page_size(), Ordering::SeqCst);
            slot.addr.store(page.as_ptr() as usize, Ordering::SeqCst);
            wipe_all();
            if page_is(page, 0) {
                0
            } else {
                1
            }
        });
        unmap(page, 1);
        assert_eq!(
            code, 0,
            "child: 1 = not wiped, 2 = the segment before was published"
        );
    }

    /// The handshake of the module docs: `remove` does not return while a
    /// wipe is in progress, and does once it is over.
    #[test]
    fn remove_waits_for_a_wipe_in_progress() {
        let mut bytes = [0u8; 64];
        let i = add(NonNull::from(&mut bytes).cast::<u8>(), 64).expect("a free slot");
        // As a wipe does first. Other tests' removes wait meanwhile too.
        WIPERS.fetch_add(1, Ordering::SeqCst);
        let remover = std::thread::spawn(move || remove(i));
        std::thread::sleep(Duration::from_millis(200));
        let waited = !remover.is_finished();
        WIPERS.fetch_sub(1, Ordering::SeqCst);
        remover.join().expect("remove panicked");
        assert!(waited, "remove returned during a wipe");
        std::hint::black_box(&bytes);
    }

    /// `forget_all` (for a forked child) clears every slot without freeing
    /// it, forgets a wipe the parent had in progress, and a later `remove`
    /// still frees the slot.
    #[test]
    fn forget_all_clears_every_slot_and_remove_still_frees_it() {
        if !CAN_FORK {
            return;
        }
        let page = mapped(1);
        // add() also registers the free list to be held across fork, so
        // the child never finds it taken by another test's thread.
        let i = add(page, Os::page_size()).expect("a free slot");
        let code = in_child(move || {
            // A wipe on a thread of the parent, at the fork.
            WIPERS.fetch_add(1, Ordering::SeqCst);
            forget_all();
            if all_slots().any(|s| s.addr.load(Ordering::SeqCst) != 0) {
                return 1;
            }
            if WIPERS.load(Ordering::SeqCst) != 0 {
                return 2;
            }
            wipe_all();
            if !page_is(page, 0xa5) {
                return 3;
            }
            // Would wait forever on the parent's wipe (SIGALRM then).
            remove(i);
            if FREE.lock().unwrap_or_else(|p| p.into_inner()).0.last() != Some(&i) {
                return 4;
            }
            match add(page, Os::page_size()) {
                Some(j) if j == i && segment(i)[i % SEGMENT].addr.load(Ordering::SeqCst) != 0 => 0,
                _ => 5,
            }
        });
        remove(i);
        unmap(page, 1);
        assert_eq!(
            code, 0,
            "child: 1 = a slot kept its address, 2 = the wipe count was kept, 3 = a forgotten \
             slot was wiped, 4 = remove did not free the slot, 5 = the slot was not reused, \
             128+n = killed by signal n"
        );
    }

    /// `covers` answers for the data pages and the guard page either side,
    /// and for nothing further. In a child where only this slot is left, as
    /// another test's region may lie right next to the mapping.
    #[test]
    fn covers_the_data_pages_and_their_guard_pages() {
        if !CAN_FORK {
            return;
        }
        let page = Os::page_size();
        let base = mapped(4);
        // SAFETY: inside the four-page mapping just made.
        let data = unsafe { base.add(page) };
        let i = add(data, 2 * page).expect("a free slot");
        let at = |offset: usize| base.as_ptr() as usize + offset;
        let code = in_child(|| {
            forget_all();
            let slot = &segment(i)[i % SEGMENT];
            slot.addr.store(data.as_ptr() as usize, Ordering::SeqCst);
            let inside = [at(0), at(page), at(3 * page - 1), at(4 * page - 1)];
            let outside = [at(0) - 1, at(4 * page), 0, usize::MAX];
            if !inside.iter().all(|&a| covers(a, page)) {
                return 1;
            }
            if outside.iter().any(|&a| covers(a, page)) {
                return 2;
            }
            slot.addr.store(0, Ordering::SeqCst);
            if inside.iter().any(|&a| covers(a, page)) {
                return 3;
            }
            0
        });
        remove(i);
        unmap(base, 4);
        assert_eq!(
            code, 0,
            "child: 1 = an address inside not covered, 2 = one outside covered, 3 = a \
             cleared slot still covers"
        );
    }
}
