//! A table of the data pages of every live region that a signal handler can
//! walk: no locks, no allocation, only atomics and system calls.
//!
//! Slots live in fixed segments of [`SEGMENT`] entries that are allocated
//! on demand (outside signal context) and never freed, so a handler can read
//! any published segment at any time. A slot holds the address and length
//! of one region's data pages, or zero when free.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use super::backend::{Access, Pages};
use super::{fork, Os};

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
    slot.addr.store(addr.as_ptr() as usize, Ordering::Release);
    Some(index)
}

/// Forgets a slot; call before the pages are unmapped.
pub(crate) fn remove(index: usize) {
    segment(index)[index % SEGMENT]
        .addr
        .store(0, Ordering::Release);
    free_list().0.push(index);
}

/// Clears every slot without freeing it, for a forked child: the regions it
/// inherited hold zeros or are gone, and a crash in the child must not write
/// to them. Their owners still [`remove`] the slots later. Only atomic
/// stores: safe right after `fork`.
pub(crate) fn forget_all() {
    for cell in &SEGMENTS {
        let seg = cell.load(Ordering::Acquire);
        if seg.is_null() {
            break;
        }
        // SAFETY: published segments are never freed.
        for slot in unsafe { &*seg } {
            slot.addr.store(0, Ordering::Release);
        }
    }
}

/// Wipes the data pages of every live region: made writable, then zeroed.
///
/// Async-signal-safe: atomics, `mprotect` and plain stores only. Meant for
/// a crash handler, when the process is about to die: a buffer being read
/// on another thread at that moment sees zeros.
pub(crate) fn wipe_all() {
    for cell in &SEGMENTS {
        let seg = cell.load(Ordering::Acquire);
        if seg.is_null() {
            // Segments are published in order.
            break;
        }
        // SAFETY: published segments are never freed.
        let seg = unsafe { &*seg };
        for slot in seg {
            let addr = slot.addr.load(Ordering::Acquire);
            let len = slot.len.load(Ordering::Relaxed);
            if let Some(ptr) = NonNull::new(addr as *mut u8) {
                // SAFETY: the slot was published for a mapping of `len`
                // bytes that is unmapped only after the slot is cleared. If
                // another thread unmaps it right now, the store faults and
                // the kernel ends the process, which is dying anyway.
                unsafe {
                    let _ = Os::protect(ptr, len, Access::ReadWrite);
                    std::ptr::write_bytes(ptr.as_ptr(), 0, len);
                }
            }
        }
    }
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
