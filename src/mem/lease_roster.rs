//! The roster of held leases, so that a forked child can end every one it
//! inherited before any of its own code runs.
//!
//! A forked child gets a copy of every [`Lease`] its parent held, but not
//! the data pages they stand for: those come zero-filled
//! (`MADV_WIPEONFORK`) or not at all (`MADV_DONTFORK`, secret memory). A
//! read under an inherited lease would return zeros, or fault. A leased
//! read could check the fork generation each time, but that check was the
//! largest single cost left on the 1-byte read path of a `Stream` (three
//! of its twelve loads; `stream_small_reads/read_buf_1` went from about
//! 3.1x to about 2.8x `read_to_end` without it, BENCHMARKS.md). So a lease
//! is held only while it is entered here, and the child's fork hook
//! ([`end_all_in_child`], called first thing by `fork::in_child`) ends
//! every lease entered.
//!
//! The roster is a fixed array of pointers, changed by compare-and-swap
//! alone: the hook runs in a child, where a lock may be held by a thread
//! that does not exist there. When every slot is taken, no more leases are
//! given (the owner reads through a guard each time instead: slower, never
//! wrong). A lease is held for one opened stream chunk at a time, so a
//! process needs as many slots as streams it reads in small pieces at once.

use std::sync::atomic::{AtomicPtr, Ordering};

use super::lease::Lease;

/// Slots in the roster: leases that can be held at once.
pub(crate) const SLOTS: usize = 256;

/// The process's roster.
static ROSTER: Roster<SLOTS> = Roster::new();

/// Enters `lease`; its slot, or `None` when every slot is taken.
///
/// The caller must leave (see [`leave`]) before `lease` is dropped or
/// moved: [`Lease`] does in its `Drop`, and a lease is entered only through
/// `&self` on a lease inside an `Arc`'d region, which never moves.
pub(crate) fn enter(lease: &Lease) -> Option<usize> {
    #[cfg(test)]
    if FULL.with(std::cell::Cell::get) {
        return None;
    }
    // The loom models check the lease protocol among threads; the roster
    // only matters to a forked child, where one thread runs. Their leases
    // (thousands of executions, some never dropped) stay out of it.
    #[cfg(all(test, loom))]
    {
        let _ = lease;
        Some(usize::MAX)
    }
    #[cfg(not(all(test, loom)))]
    ROSTER.enter(lease)
}

/// Takes `lease` out of `slot` (nothing if it is not there).
pub(crate) fn leave(slot: usize, lease: &Lease) {
    ROSTER.leave(slot, lease);
}

/// In a forked child, before any other code runs there: ends every lease
/// the parent held (see [`Lease::end_in_child`]) and empties the roster.
/// Atomics only: async-signal-safe, as code run in a child after `fork`
/// must be.
pub(crate) fn end_all_in_child() {
    ROSTER.end_all_in_child();
}

/// A fixed number of slots, each empty (null) or holding a lease.
pub(crate) struct Roster<const N: usize> {
    slots: [AtomicPtr<Lease>; N],
}

impl<const N: usize> Roster<N> {
    /// Every slot empty.
    pub(crate) const fn new() -> Roster<N> {
        Roster {
            slots: [const { AtomicPtr::new(std::ptr::null_mut()) }; N],
        }
    }

    fn enter(&self, lease: &Lease) -> Option<usize> {
        let me = std::ptr::from_ref(lease).cast_mut();
        self.slots.iter().position(|slot| {
            slot.load(Ordering::Relaxed).is_null()
                && slot
                    .compare_exchange(
                        std::ptr::null_mut(),
                        me,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
        })
    }

    fn leave(&self, slot: usize, lease: &Lease) {
        let me = std::ptr::from_ref(lease).cast_mut();
        if let Some(entry) = self.slots.get(slot) {
            let _ = entry.compare_exchange(
                me,
                std::ptr::null_mut(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    fn end_all_in_child(&self) {
        for slot in &self.slots {
            let entered = slot.swap(std::ptr::null_mut(), Ordering::AcqRel);
            if !entered.is_null() {
                // SAFETY: a lease leaves the roster before it is dropped
                // (its `Drop`) and is never moved while entered (see
                // `enter`), so a pointer still here at the fork points to a
                // live lease in this copy of the parent's memory. The thread
                // that was dropping it at that moment, if any, does not
                // exist in the child.
                unsafe { &*entered }.end_in_child();
            }
        }
    }

    /// Whether `slot` holds `lease`.
    #[cfg(test)]
    fn holds(&self, slot: usize, lease: &Lease) -> bool {
        self.slots
            .get(slot)
            .is_some_and(|s| std::ptr::eq(s.load(Ordering::Relaxed), lease))
    }
}

#[cfg(test)]
thread_local! {
    /// Makes the roster look full to this thread's leases (tests of what
    /// happens then, without taking every slot from the other tests).
    pub(crate) static FULL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The address of the lease in the process's roster's `slot` (0: none).
#[cfg(test)]
pub(crate) fn occupant(slot: usize) -> usize {
    ROSTER.slots[slot].load(Ordering::Relaxed) as usize
}

/// Whether the process's roster holds `lease` in `slot`.
#[cfg(test)]
pub(crate) fn holds(slot: usize, lease: &Lease) -> bool {
    ROSTER.holds(slot, lease)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_full_roster_gives_no_slot_and_a_freed_slot_is_given_again() {
        let roster = Roster::<2>::new();
        let (a, b, c) = (Lease::new(), Lease::new(), Lease::new());
        assert_eq!(roster.enter(&a), Some(0));
        assert_eq!(roster.enter(&b), Some(1));
        assert_eq!(roster.enter(&c), None, "full");
        roster.leave(0, &b);
        assert!(roster.holds(0, &a), "a slot is left only by its own lease");
        roster.leave(0, &a);
        assert_eq!(roster.enter(&c), Some(0));
        assert!(roster.holds(0, &c) && roster.holds(1, &b));
    }

    #[test]
    fn the_child_hook_ends_every_entered_lease_and_empties_the_roster() {
        let roster = Roster::<4>::new();
        let leases = [Lease::new(), Lease::new(), Lease::new()];
        for lease in &leases {
            // Held (through the process's roster too), and entered here.
            assert!(lease.hold(true));
            assert!(lease.read(|| ()).is_some());
            assert!(roster.enter(lease).is_some());
        }
        roster.end_all_in_child();
        for (slot, lease) in leases.iter().enumerate() {
            assert!(!roster.holds(slot, lease), "emptied");
            assert_eq!(lease.read(|| ()), None, "no read under an inherited lease");
            assert!(
                lease.release(),
                "its borrow is released by who takes it back"
            );
        }
    }
}
