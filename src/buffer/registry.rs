//! The registry of live buffers, so that `purge` can reach every one.
//!
//! A slab of `Arc<Region>` behind a mutex. The lock is held only for slab
//! bookkeeping, never while wiping, unmapping or calling anything that could
//! panic or block, so no caller can deadlock on it.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use crate::mem::{self, CanaryCorruption, ForkLock, Held, Region};

struct Slab {
    slots: Vec<Option<Arc<Region>>>,
    free: Vec<usize>,
    live: usize,
}

static REGISTRY: Mutex<Slab> = Mutex::new(Slab {
    slots: Vec::new(),
    free: Vec::new(),
    live: 0,
});
static HOOK: Once = Once::new();
/// The fork generation whose inherited regions were last cleared out.
static SETTLED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static HELD: Held<Slab> = const { Cell::new(None) };
}

fn slab() -> MutexGuard<'static, Slab> {
    if SETTLED.load(Ordering::Acquire) != mem::fork_generation() {
        settle_fork();
    }
    lock()
}

fn lock() -> MutexGuard<'static, Slab> {
    HOOK.call_once(|| {
        mem::set_wipe_all(destroy_all);
        mem::hold_across_fork(
            ForkLock::Registry,
            || mem::take_into(&HELD, &REGISTRY),
            || mem::give_back_from(&HELD),
        );
    });
    // Nothing panics while the lock is held, but never let a poisoned lock
    // stop a purge.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// The first use in a forked child: what the parent registered is dead
/// here. It leaves the registry and the count, and is released (unmapped
/// without a look at its zero-filled pages, or left alone where its pages
/// were not copied) now, or when the last guard on it is given back.
fn settle_fork() {
    let inherited: Vec<Arc<Region>> = {
        let mut s = lock();
        SETTLED.store(mem::fork_generation(), Ordering::Release);
        let mut taken = Vec::new();
        for slot in 0..s.slots.len() {
            if s.slots[slot].as_ref().is_some_and(|r| r.is_inherited()) {
                taken.extend(s.slots[slot].take());
                s.free.push(slot);
                s.live -= 1;
            }
        }
        taken
    };
    for region in inherited {
        // An inherited region never reports a corrupted canary.
        let _ = region.destroy_collecting();
    }
}

/// Adds a region; returns its slot for [`unregister`].
pub(crate) fn register(region: Arc<Region>) -> usize {
    let mut s = slab();
    s.live += 1;
    match s.free.pop() {
        Some(slot) => {
            s.slots[slot] = Some(region);
            slot
        }
        None => {
            s.slots.push(Some(region));
            s.slots.len() - 1
        }
    }
}

/// Removes a region, if `slot` still holds that region (a purge may have
/// emptied the slab and the slot may hold another region since).
pub(crate) fn unregister(slot: usize, region: &Arc<Region>) {
    let removed = {
        let mut s = slab();
        let same = matches!(s.slots.get(slot), Some(Some(r)) if Arc::ptr_eq(r, region));
        if same {
            s.live -= 1;
            s.free.push(slot);
            s.slots[slot].take()
        } else {
            None
        }
    };
    // The Arc is dropped here, outside the lock.
    drop(removed);
}

/// The number of live buffers.
pub(crate) fn live() -> usize {
    slab().live
}

/// Destroys every registered buffer (borrowed ones when their last guard is
/// dropped) and returns the canaries found corrupted, after all are wiped.
pub(crate) fn destroy_all() -> Vec<CanaryCorruption> {
    let taken = {
        let mut s = slab();
        s.live = 0;
        s.free.clear();
        std::mem::take(&mut s.slots)
    };
    let mut corrupted = Vec::new();
    for region in taken.iter().flatten() {
        corrupted.extend(region.destroy_collecting());
    }
    corrupted
}
