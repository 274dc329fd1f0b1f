//! A non-blocking reader/writer state with deferred destruction, in one
//! atomic word.
//!
//! Readers and a writer exclude each other as in a `RwLock`, but nobody ever
//! waits: a borrow that cannot be had fails at once. Destruction is
//! *requested*; it is carried out by whoever brings the borrow count to zero
//! with a request pending (the requester itself when nothing is borrowed).
//! Exactly one party wins the right to destroy.

// In the unit tests built with `--cfg loom` the word is loom's, so that
// scripts/loom.sh can check every interleaving of the protocol (see
// borrow_loom.rs). loom is a dev-dependency: other builds with that cfg keep
// std's atomics and still compile.
#[cfg(all(test, loom))]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(all(test, loom)))]
use std::sync::atomic::{AtomicU64, Ordering};

const READERS: u64 = (1 << 60) - 1;
const WRITER: u64 = 1 << 60;
const REQUESTED: u64 = 1 << 61;
const DESTROYED: u64 = 1 << 62;

/// Why a borrow was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Destroyed, or destruction is pending.
    Gone,
    /// Borrowed in a way that conflicts.
    Busy,
}

/// The borrow and destruction state of one region.
#[derive(Debug, Default)]
pub(crate) struct BorrowState(AtomicU64);

impl BorrowState {
    /// A state with no borrows and no destruction pending.
    #[cfg(not(all(test, loom)))]
    pub(crate) const fn new() -> BorrowState {
        BorrowState(AtomicU64::new(0))
    }

    /// A state with no borrows and no destruction pending (loom's atomics
    /// cannot be made in a `const fn`).
    #[cfg(all(test, loom))]
    pub(crate) fn new() -> BorrowState {
        BorrowState(AtomicU64::new(0))
    }

    /// Takes a shared borrow.
    pub(crate) fn read(&self) -> Result<(), Refused> {
        let mut s = self.0.load(Ordering::Relaxed);
        loop {
            if s & (REQUESTED | DESTROYED) != 0 {
                return Err(Refused::Gone);
            }
            if s & WRITER != 0 || s & READERS == READERS {
                return Err(Refused::Busy);
            }
            match self
                .0
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => s = now,
            }
        }
    }

    /// Takes the exclusive borrow.
    pub(crate) fn write(&self) -> Result<(), Refused> {
        match self
            .0
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(()),
            Err(s) if s & (REQUESTED | DESTROYED) != 0 => Err(Refused::Gone),
            Err(_) => Err(Refused::Busy),
        }
    }

    /// Gives back a shared borrow. Returns true when the caller must now
    /// destroy the region.
    #[must_use]
    pub(crate) fn release_read(&self) -> bool {
        let before = self.0.fetch_sub(1, Ordering::AcqRel);
        before - 1 == REQUESTED && self.claim()
    }

    /// Gives back the exclusive borrow. Returns true when the caller must now
    /// destroy the region.
    #[must_use]
    pub(crate) fn release_write(&self) -> bool {
        let before = self.0.fetch_and(!WRITER, Ordering::AcqRel);
        before & !WRITER == REQUESTED && self.claim()
    }

    /// Asks for destruction. Returns true when the caller must destroy now;
    /// false when it is already done, already claimed by someone else, or
    /// deferred to the last borrow's release.
    #[must_use]
    pub(crate) fn request_destroy(&self) -> bool {
        let before = self.0.fetch_or(REQUESTED, Ordering::AcqRel);
        before & (REQUESTED | DESTROYED | WRITER | READERS) == 0 && self.claim()
    }

    /// Whether destruction has been requested or done.
    pub(crate) fn is_gone(&self) -> bool {
        self.0.load(Ordering::Acquire) & (REQUESTED | DESTROYED) != 0
    }

    /// Whether the region has actually been destroyed.
    #[cfg(test)]
    pub(crate) fn is_destroyed(&self) -> bool {
        self.0.load(Ordering::Acquire) & DESTROYED != 0
    }

    fn claim(&self) -> bool {
        self.0
            .compare_exchange(
                REQUESTED,
                REQUESTED | DESTROYED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}

// Every interleaving of readers, a writer, destroy and purge, under loom.
#[cfg(all(test, loom))]
#[path = "borrow_loom.rs"]
mod loom_model;

// Real threads: not under loom, whose atomics work only inside a model.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn readers_share_and_writer_excludes() {
        let s = BorrowState::new();
        s.read().unwrap();
        s.read().unwrap();
        assert_eq!(s.write(), Err(Refused::Busy));
        assert!(!s.release_read());
        assert!(!s.release_read());
        s.write().unwrap();
        assert_eq!(s.read(), Err(Refused::Busy));
        assert_eq!(s.write(), Err(Refused::Busy));
        assert!(!s.release_write());
    }

    #[test]
    fn unborrowed_request_destroys_at_once_and_only_once() {
        let s = BorrowState::new();
        assert!(s.request_destroy());
        assert!(s.is_destroyed());
        assert!(!s.request_destroy());
        assert_eq!(s.read(), Err(Refused::Gone));
        assert_eq!(s.write(), Err(Refused::Gone));
    }

    #[test]
    fn borrowed_request_is_deferred_to_the_last_release() {
        let s = BorrowState::new();
        s.read().unwrap();
        s.read().unwrap();
        assert!(!s.request_destroy());
        assert!(s.is_gone() && !s.is_destroyed());
        assert_eq!(s.read(), Err(Refused::Gone));
        assert!(!s.release_read());
        assert!(s.release_read());
        assert!(s.is_destroyed());
    }

    #[test]
    fn writer_release_destroys_when_requested() {
        let s = BorrowState::new();
        s.write().unwrap();
        assert!(!s.request_destroy());
        assert!(!s.request_destroy());
        assert!(s.release_write());
        assert!(!s.request_destroy());
    }

    #[test]
    fn racing_threads_elect_exactly_one_destroyer() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        for _ in 0..200 {
            let s = Arc::new(BorrowState::new());
            let winners = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..4)
                .map(|i| {
                    let s = Arc::clone(&s);
                    let w = Arc::clone(&winners);
                    std::thread::spawn(move || {
                        for _ in 0..50 {
                            if s.read().is_ok() && s.release_read() {
                                w.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        if i == 3 && s.request_destroy() {
                            w.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(winners.load(Ordering::SeqCst), 1);
            assert!(s.is_destroyed());
        }
    }
}
