//! The opt-in bounded wait for locked memory: a caller that would rather
//! queue than fail (`Enclave::open_timeout`, `LockedBuffer::new_timeout`)
//! retries when a buffer is destroyed, up to a deadline.
//!
//! Every destruction that can give lock budget or a mapping back (a region
//! wiped and unmapped or parked, a compact slot freed, a spare or an empty
//! slab unmapped) bumps a generation counter and, only when someone waits,
//! wakes the waiters on a `Condvar`. A waiter reads the generation before
//! its attempt and sleeps until it changes or the deadline passes: no busy
//! loop, no free missed between the failed attempt and the sleep.
//!
//! No memguard lock is held while waiting, so a waiter never blocks a
//! destruction, a purge or a guard on another thread. A thread that itself
//! holds the secrets that use up the budget waits for nothing: nobody else
//! will free them, and it gets the error at the deadline (never a
//! deadlock, but the whole timeout spent).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

static GENERATION: AtomicU64 = AtomicU64::new(0);
static WAITERS: AtomicUsize = AtomicUsize::new(0);
static LOCK: Mutex<()> = Mutex::new(());
static FREED: Condvar = Condvar::new();

thread_local! {
    /// Notifications this thread made: a failed attempt may destroy what
    /// it had made (half an `Enclave::open`), which frees nothing for it.
    static MINE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Something was destroyed that may give lock budget or a mapping back.
pub(crate) fn notify() {
    let _ = MINE.try_with(|m| m.set(m.get() + 1));
    GENERATION.fetch_add(1, Ordering::SeqCst);
    if WAITERS.load(Ordering::SeqCst) > 0 {
        let _guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        FREED.notify_all();
    }
}

/// Runs `attempt` until it succeeds, fails with something other than
/// [`Error::MemoryLock`] or [`Error::OutOfMappings`], or `timeout` passes
/// (then its last error is returned). Between attempts it sleeps until a
/// buffer is destroyed.
pub(crate) fn retry<T>(timeout: Duration, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now().checked_add(timeout);
    WAITERS.fetch_add(1, Ordering::SeqCst);
    let result = loop {
        let before = mine();
        let seen = GENERATION.load(Ordering::SeqCst);
        match attempt() {
            Err(e @ (Error::MemoryLock { .. } | Error::OutOfMappings { .. })) => {
                // What the attempt itself destroyed is not a free to wait for.
                let seen = seen + (mine() - before);
                if !wait_for_change(seen, deadline) {
                    break Err(e);
                }
            }
            other => break other,
        }
    };
    WAITERS.fetch_sub(1, Ordering::SeqCst);
    result
}

fn mine() -> u64 {
    MINE.try_with(std::cell::Cell::get).unwrap_or(0)
}

/// Sleeps until the generation is past `seen`; `false` when the
/// deadline (`None`: too far to represent, so never) came first.
fn wait_for_change(seen: u64, deadline: Option<Instant>) -> bool {
    let mut guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    while GENERATION.load(Ordering::SeqCst) <= seen {
        let left = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => return false,
            },
            None => Duration::from_secs(3600),
        };
        guard = FREED
            .wait_timeout(guard, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    true
}
