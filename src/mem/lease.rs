//! [`Lease`]: a shared borrow that a buffer's owner keeps across many small
//! reads, and that a purge can take back.
//!
//! A [`Ref`](super::Ref) costs two atomic read-modify-writes (the borrow
//! and its release, 17.5 ns together on the development machine). A stream
//! read one byte at a time pays them for every byte. A lease pays them once:
//! the owner takes one shared borrow and keeps it, and each read under the
//! lease costs two plain stores and two loads.
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

#[cfg(all(test, loom))]
use loom::sync::atomic::{fence, AtomicBool, AtomicU8, Ordering};
#[cfg(not(all(test, loom)))]
use std::sync::atomic::{fence, AtomicBool, AtomicU8, Ordering};

use std::sync::atomic::compiler_fence;

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

/// The lease state of one region.
#[derive(Debug)]
pub(crate) struct Lease {
    state: AtomicU8,
    /// Whether the owner is reading under the lease now.
    active: AtomicBool,
}

impl Lease {
    /// No lease.
    #[cfg(not(all(test, loom)))]
    pub(crate) const fn new() -> Lease {
        Lease {
            state: AtomicU8::new(FREE),
            active: AtomicBool::new(false),
        }
    }

    /// No lease (loom's atomics cannot be made in a `const fn`).
    #[cfg(all(test, loom))]
    pub(crate) fn new() -> Lease {
        Lease {
            state: AtomicU8::new(FREE),
            active: AtomicBool::new(false),
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
    /// revoked before (the caller then gives its borrow back).
    pub(crate) fn hold(&self, barrier: bool) -> bool {
        let held = if barrier { HELD_BARRIER } else { HELD_FENCED };
        self.state
            .compare_exchange(FREE, held, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Runs `read` under the lease: `None`, without running it, when no
    /// lease is held or it is being revoked. Only the owner calls this, one
    /// call at a time, and `read` must be short and must not block (a
    /// revoker waits for it).
    #[inline]
    pub(crate) fn read<R>(&self, read: impl FnOnce() -> R) -> Option<R> {
        let held = self.state.load(Ordering::Relaxed);
        if held != HELD_BARRIER && held != HELD_FENCED {
            return None;
        }
        self.active.store(true, Ordering::Relaxed);
        if held == HELD_BARRIER {
            // The revoker's barrier stands in for the hardware fence here.
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
        // Acquire keeps the reads in `read` after this check.
        if self.state.load(Ordering::Acquire) != held {
            self.active.store(false, Ordering::Relaxed);
            return None;
        }
        let out = read();
        // Release: the revoker that sees `false` sees the reads finished.
        self.active.store(false, Ordering::Release);
        Some(out)
    }

    /// Takes the lease back from its owner, on any thread but the owner's
    /// while it reads. `barrier` runs the process-wide barrier and says
    /// whether it did. True when the caller now owns the lease's borrow and
    /// must release it: no read is in progress and none will start. False
    /// when no lease was held, or when the borrow stays with the owner (the
    /// barrier failed).
    pub(crate) fn revoke(&self, barrier: impl FnOnce() -> bool) -> bool {
        let held = self.state.load(Ordering::Relaxed);
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
            return false;
        }
        while self.active.load(Ordering::Acquire) {
            // A read in progress: a copy of at most a chunk, soon done.
            spin();
        }
        self.state.store(REVOKED, Ordering::Release);
        true
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
                        return true;
                    }
                }
                REVOKING => spin(),
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
