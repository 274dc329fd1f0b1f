//! [`Lease`]: a shared borrow that a buffer's owner keeps across many small
//! reads, and that a purge can take back.
//!
//! A [`Ref`](super::Ref) costs two atomic read-modify-writes (the borrow
//! and its release, 17.5 ns together on the development machine). A stream
//! read one byte at a time pays them for every byte. A lease pays them once:
//! the owner takes one shared borrow and keeps it, and each read under the
//! lease costs two plain stores and one load.
//!
//! What makes that safe is the revoke. A purge (or a destroy) that finds a
//! region leased does not defer to the lease, as it would to a guard: it
//! takes the lease back, waits for a read in progress to finish (a bounded
//! copy of a few bytes, never user code), and goes on to wipe and unmap.
//! The reader announces itself in `active` and then checks `state`; the
//! revoker changes `state` and then checks `active`. Each needs a full
//! fence between its store and its load (a store-buffering pair), and the
//! lease makes the reader's side free: the revoker calls the platform's
//! process-wide barrier (`membarrier` on Linux, `FlushProcessWriteBuffers`
//! on Windows), which runs a full fence on every thread of the process, and
//! the reader needs only a compiler fence. Where there is no such barrier
//! (other systems, Miri, loom) both sides take a full fence, which is still
//! cheaper than a borrow.
//!
//! Only the buffer's owner reads under its lease, through `&mut`, so there
//! is one reader at a time, and `active` is a flag rather than a count.
//! When the barrier fails after all (a seccomp filter added later, say),
//! the revoker leaves the borrow to the owner, as it would a guard's: the
//! region is destroyed when the owner lets the lease go.
//!
//! A lease is held only while it is entered in the roster of
//! `lease_roster`, whose fork hook makes every lease a forked child
//! inherits [`INHERITED`]: nobody reads under it there, and the first of
//! owner and destroyer to take it back releases its borrow. So a read
//! under a lease needs no look at the fork generation.

#[cfg(all(test, loom))]
use loom::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize, Ordering};
#[cfg(not(all(test, loom)))]
use std::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize, Ordering};

use std::sync::atomic::compiler_fence;

use super::lease_roster as roster;

/// No lease.
const FREE: u8 = 0;
/// Held; the revoker will use the process-wide barrier.
const HELD_BARRIER: u8 = 1;
/// Held; both sides use a full fence.
const HELD_FENCED: u8 = 2;
/// A revoker is at work: the owner waits for it to finish.
const REVOKING: u8 = 3;
/// Revoked; the revoker released the lease's borrow.
const REVOKED: u8 = 4;
/// Revoked, but the barrier failed: the owner releases the borrow.
const ABANDONED: u8 = 5;
/// Held or being revoked in the parent, seen in a forked child (set by the
/// child's fork hook, see `lease_roster`): nobody reads under it here, and
/// whoever takes it back first (owner or destroyer) releases the borrow.
const INHERITED: u8 = 6;

/// [`Lease::slot`] when the lease is not in the roster.
const NO_SLOT: usize = usize::MAX;

/// The lease state of one region.
#[derive(Debug)]
pub(crate) struct Lease {
    state: AtomicU8,
    /// Whether the owner is reading under the lease now.
    active: AtomicBool,
    /// Its slot in the roster (`lease_roster`) while held, else
    /// [`NO_SLOT`]: a lease is held only while entered there.
    slot: AtomicUsize,
}

impl Lease {
    /// No lease.
    #[cfg(not(all(test, loom)))]
    pub(crate) const fn new() -> Lease {
        Lease {
            state: AtomicU8::new(FREE),
            active: AtomicBool::new(false),
            slot: AtomicUsize::new(NO_SLOT),
        }
    }

    /// No lease (loom's atomics cannot be made in a `const fn`).
    #[cfg(all(test, loom))]
    pub(crate) fn new() -> Lease {
        Lease {
            state: AtomicU8::new(FREE),
            active: AtomicBool::new(false),
            slot: AtomicUsize::new(NO_SLOT),
        }
    }

    /// Whether a lease is held and not revoked.
    #[inline]
    pub(crate) fn is_held(&self) -> bool {
        matches!(
            self.state.load(Ordering::Relaxed),
            HELD_BARRIER | HELD_FENCED
        )
    }

    /// Makes the lease held, for an owner that has just taken the shared
    /// borrow it stands for; `barrier` says whether the process-wide
    /// barrier is ready in this process. False when a lease was held or
    /// revoked before, or when the roster is full (the caller then gives
    /// its borrow back).
    pub(crate) fn hold(&self, barrier: bool) -> bool {
        // Entered first: from the moment it is held, a fork ends it in the
        // child.
        let Some(slot) = roster::enter(self) else {
            return false;
        };
        self.slot.store(slot, Ordering::Relaxed);
        let held = if barrier { HELD_BARRIER } else { HELD_FENCED };
        let taken = self
            .state
            .compare_exchange(FREE, held, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if !taken {
            self.leave_roster();
        }
        taken
    }

    /// Takes the lease out of the roster, once it is no longer held.
    fn leave_roster(&self) {
        let slot = self.slot.swap(NO_SLOT, Ordering::AcqRel);
        if slot != NO_SLOT {
            roster::leave(slot, self);
        }
    }

    /// In a forked child, from its fork hook (nothing else runs yet): a
    /// lease held, or being revoked, in the parent becomes [`INHERITED`].
    /// Its reads fail from now on, without a look at the fork generation;
    /// the borrow it stands for is released by whoever takes it back
    /// first. A lease the parent's owner or revoker had already let go
    /// keeps its state (the borrow was released, or is the owner's).
    /// Atomics only: async-signal-safe.
    pub(crate) fn end_in_child(&self) {
        let state = self.state.load(Ordering::Relaxed);
        if matches!(state, HELD_BARRIER | HELD_FENCED | REVOKING) {
            self.state.store(INHERITED, Ordering::Relaxed);
        }
        // The reader that may have been active is a thread of the parent.
        self.active.store(false, Ordering::Relaxed);
        // `slot` stays: the roster's own entry is gone, and leaving it
        // again later changes nothing (see `lease_roster::leave`).
    }

    /// Runs `read` under the lease: `None`, without running it, when no
    /// lease is held or it is being revoked. Only the owner calls this, one
    /// call at a time, and `read` must be short and must not block (a
    /// revoker waits for it).
    #[inline]
    pub(crate) fn read<R>(&self, read: impl FnOnce() -> R) -> Option<R> {
        // Announce first, then look (the revoker changes `state`, then
        // looks at `active`). Announcing before knowing whether a lease is
        // held costs nothing: a revoker already at work waits for the flag
        // to fall again, a moment later.
        self.active.store(true, Ordering::Relaxed);
        // The revoker's barrier stands in for the hardware fence here.
        compiler_fence(Ordering::SeqCst);
        // Acquire keeps the reads in `read` after this check.
        let state = self.state.load(Ordering::Acquire);
        // The common case first (laid out to fall through); the others are
        // out of line.
        if state == HELD_BARRIER || self.held_after_all(state) {
            let out = read();
            // Release: the revoker that sees `false` sees the reads finished.
            self.active.store(false, Ordering::Release);
            return Some(out);
        }
        None
    }

    /// [`Lease::read`] on any state but [`HELD_BARRIER`]: a lease held
    /// without the barrier is still held after a fence of the reader's own
    /// between the announcement and the look that counts; any other state
    /// ends the announcement.
    #[cold]
    #[inline(never)]
    fn held_after_all(&self, state: u8) -> bool {
        let held = state == HELD_FENCED && {
            fence(Ordering::SeqCst);
            self.state.load(Ordering::Acquire) == HELD_FENCED
        };
        if !held {
            // Release, as after a read: a revoker that sees this `false`
            // must also see the earlier reads finished (a plain store
            // starts no release sequence of the earlier `false`; loom
            // finds the race with `Relaxed` here).
            self.active.store(false, Ordering::Release);
        }
        held
    }

    /// Takes the lease back from its owner, on any thread but the owner's
    /// while it reads. `barrier` runs the process-wide barrier and says
    /// whether it did. True when the caller now owns the lease's borrow and
    /// must release it: no read is in progress and none will start. False
    /// when no lease was held, or when the borrow stays with the owner (the
    /// barrier failed).
    pub(crate) fn revoke(&self, barrier: impl FnOnce() -> bool) -> bool {
        let held = self.state.load(Ordering::Relaxed);
        if held == INHERITED {
            // No reader in this process: taken back at once.
            return self.take_inherited();
        }
        if held != HELD_BARRIER && held != HELD_FENCED {
            return false;
        }
        if self
            .state
            .compare_exchange(held, REVOKING, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            // The owner let it go, or another revoker took it, meanwhile.
            return false;
        }
        let fenced = if held == HELD_BARRIER {
            barrier()
        } else {
            fence(Ordering::SeqCst);
            true
        };
        if !fenced {
            self.state.store(ABANDONED, Ordering::Release);
            self.leave_roster();
            return false;
        }
        while self.active.load(Ordering::Acquire) {
            // A read in progress: a copy of at most a chunk, soon done.
            spin();
        }
        self.state.store(REVOKED, Ordering::Release);
        self.leave_roster();
        true
    }

    /// Takes back an [`INHERITED`] lease; true for the one caller that
    /// does (it releases the borrow).
    fn take_inherited(&self) -> bool {
        self.state
            .compare_exchange(INHERITED, REVOKED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Takes the lease back when no read can be in progress: the owner's
    /// own call, or a region nobody can read (inherited through `fork`).
    /// True when the caller must release the lease's borrow.
    pub(crate) fn release(&self) -> bool {
        loop {
            match self.state.load(Ordering::Acquire) {
                held @ (HELD_BARRIER | HELD_FENCED) => {
                    if self
                        .state
                        .compare_exchange(held, FREE, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        self.leave_roster();
                        return true;
                    }
                }
                REVOKING => spin(),
                INHERITED => {
                    if self.take_inherited() {
                        return true;
                    }
                }
                ABANDONED => {
                    if self
                        .state
                        .compare_exchange(ABANDONED, REVOKED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return true;
                    }
                }
                _ => return false,
            }
        }
    }
}

/// Out of the roster before the memory goes: a pointer left there would
/// dangle in a child forked later.
impl Drop for Lease {
    fn drop(&mut self) {
        self.leave_roster();
    }
}

/// Waits a moment for another thread.
fn spin() {
    #[cfg(all(test, loom))]
    loom::thread::yield_now();
    #[cfg(not(all(test, loom)))]
    std::thread::yield_now();
}

// Every interleaving of the owner's reads, its release and a revoke, under
// loom.
#[cfg(all(test, loom))]
#[path = "lease_loom.rs"]
mod loom_model;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn reads_run_only_while_held() {
        let lease = Lease::new();
        assert_eq!(lease.read(|| 1), None);
        assert!(lease.hold(false));
        assert!(!lease.hold(false), "one lease at a time");
        assert_eq!(lease.read(|| 2), Some(2));
        assert!(lease.release());
        assert_eq!(lease.read(|| 3), None);
        assert!(!lease.release(), "released once");
    }

    #[test]
    fn a_revoke_ends_reads_and_hands_over_the_borrow() {
        for barrier in [false, true] {
            let lease = Lease::new();
            assert!(lease.hold(barrier));
            assert!(lease.revoke(|| true));
            assert_eq!(lease.read(|| ()), None);
            assert!(!lease.release(), "the revoker released the borrow");
            assert!(!lease.revoke(|| true), "revoked once");
            assert!(!lease.hold(barrier), "a revoked region is not leased again");
        }
    }

    #[test]
    fn a_failed_barrier_leaves_the_borrow_to_the_owner() {
        let lease = Lease::new();
        assert!(lease.hold(true));
        assert!(!lease.revoke(|| false));
        assert_eq!(lease.read(|| ()), None, "no read after a revoke");
        assert!(lease.release(), "the owner releases the borrow");
        assert!(!lease.release());
    }

    #[test]
    fn a_fenced_lease_never_calls_the_barrier() {
        let lease = Lease::new();
        assert!(lease.hold(false));
        assert!(lease.revoke(|| panic!("the barrier is not used")));
    }

    #[test]
    fn a_lease_is_held_only_while_in_the_roster() {
        let lease = Lease::new();
        assert!(lease.hold(true));
        let slot = lease.slot.load(Ordering::Relaxed);
        assert!(roster::holds(slot, &lease));
        assert!(lease.release());
        assert!(!roster::holds(slot, &lease), "left when released");
        assert!(lease.hold(false));
        let slot = lease.slot.load(Ordering::Relaxed);
        assert!(roster::holds(slot, &lease));
        assert!(lease.revoke(|| true));
        assert!(!roster::holds(slot, &lease), "left when revoked");
        let abandoned = Lease::new();
        assert!(abandoned.hold(true));
        let slot = abandoned.slot.load(Ordering::Relaxed);
        assert!(!abandoned.revoke(|| false));
        assert!(!roster::holds(slot, &abandoned), "left when abandoned");
        assert!(abandoned.release());
        // A full roster: no lease, and nothing held.
        let refused = Lease::new();
        roster::FULL.with(|f| f.set(true));
        let held = refused.hold(true);
        roster::FULL.with(|f| f.set(false));
        assert!(!held, "no slot, no lease");
        assert_eq!(refused.read(|| ()), None);
        assert!(!refused.release(), "nothing to release");
        assert!(refused.hold(true), "a slot again");
        assert!(refused.release());
    }

    #[test]
    fn a_dropped_lease_leaves_the_roster() {
        let lease = Box::new(Lease::new());
        assert!(lease.hold(true));
        let slot = lease.slot.load(Ordering::Relaxed);
        let address = std::ptr::from_ref::<Lease>(&lease) as usize;
        assert_eq!(roster::occupant(slot), address);
        drop(lease);
        // Another test's lease may take the slot meanwhile (a region's,
        // never at this address), never this one.
        assert_ne!(roster::occupant(slot), address, "a dangling entry");
    }

    #[test]
    fn an_inherited_lease_is_read_by_nobody_and_taken_back_once() {
        // What the child's fork hook does to a lease held (either kind) or
        // being revoked in the parent: the owner or the destroyer, whoever
        // comes first, takes it back and releases the borrow; the other
        // finds nothing to do. No barrier is run and nobody waits.
        for state in [HELD_BARRIER, HELD_FENCED, REVOKING] {
            for owner_first in [true, false] {
                let lease = Lease::new();
                assert!(lease.hold(true));
                lease.state.store(state, Ordering::Relaxed);
                lease.active.store(true, Ordering::Relaxed);
                lease.end_in_child();
                assert!(!lease.is_held());
                assert_eq!(lease.read(|| ()), None, "{state}");
                let no_barrier = || panic!("no barrier for an inherited lease");
                if owner_first {
                    assert!(lease.release(), "{state}");
                    assert!(!lease.revoke(no_barrier), "{state}");
                } else {
                    assert!(lease.revoke(no_barrier), "{state}");
                    assert!(!lease.release(), "{state}");
                }
                assert!(!lease.hold(true), "not leased again");
            }
        }
        // A lease let go in the parent before the fork keeps its state:
        // its borrow was released there (or is still the owner's).
        let lease = Lease::new();
        assert!(lease.hold(true));
        assert!(lease.revoke(|| true));
        lease.end_in_child();
        assert!(
            !lease.release() && !lease.revoke(|| true),
            "released once, in the parent"
        );
        let lease = Lease::new();
        assert!(lease.hold(true));
        assert!(!lease.revoke(|| false));
        lease.end_in_child();
        assert!(
            lease.release(),
            "an abandoned lease is still the owner's to release"
        );
        let lease = Lease::new();
        lease.end_in_child();
        assert!(lease.hold(true), "a free lease stays free");
        assert!(lease.release());
    }

    #[test]
    fn a_revoke_waits_for_the_read_in_progress() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        // A reader that reads a value the revoker then "wipes": no read
        // may run after the revoke returned.
        let lease = Arc::new(Lease::new());
        let wiped = Arc::new(AtomicUsize::new(0));
        assert!(lease.hold(false));
        let reading = Arc::new(std::sync::Barrier::new(2));
        let reader = {
            let (lease, wiped) = (Arc::clone(&lease), Arc::clone(&wiped));
            let reading = Arc::clone(&reading);
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while let Some(seen) = lease.read(|| wiped.load(Ordering::Relaxed)) {
                    assert_eq!(seen, 0, "read after the wipe");
                    reads += 1;
                    if reads == 1 {
                        reading.wait();
                    }
                }
                reads
            })
        };
        reading.wait();
        assert!(lease.revoke(|| true));
        wiped.store(1, Ordering::Relaxed);
        let reads = reader.join().expect("the reader saw no wiped value");
        assert!(reads > 0, "the reader never read under the lease");
    }
}
