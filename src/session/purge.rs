//! [`purge`]: destroy every live buffer. The whole sequence is here, in
//! order; each step calls one function of the layer that owns the state.
//!
//! 1. **Spares** (`mem::drain_spares`): unmapped first, and the spare
//!    epoch advanced, so that the buffers destroyed in step 3 are unmapped
//!    rather than parked for reuse (a spare would keep their locked pages).
//!    Takes and releases the spares' lock alone.
//! 2. **The session key** (`coffer::destroy_then`): under the coffer's
//!    lock, the key's halves are destroyed; the lock stays held through
//!    step 3, so that a key made meanwhile by another thread's
//!    `Enclave::new` is not destroyed with the old buffers: that thread
//!    waits for the lock, then makes a fresh key whose buffer is registered
//!    after the sweep. The rekeying thread is woken, to stop, after the lock
//!    is released.
//! 3. **Every registered buffer** (`registry::destroy_all`), still under
//!    the coffer's lock; lock order coffer, then registry (the order
//!    `Coffer::new` takes them in, when it registers the key's buffer). The
//!    registry is emptied under its lock, then each buffer is destroyed
//!    outside it: wiped and unmapped at once, or, when a guard is alive,
//!    marked so that the last guard's drop does it (nothing waits, so a
//!    thread that purges while holding a guard cannot deadlock). A
//!    `LockedBuffer::new` on another thread registers either before the
//!    sweep (and is destroyed with the rest) or after it (and is kept).
//!    Compact buffers free their slots here, each slot's canaries checked.
//! 4. **Compact slabs** (`mem::purge_compact`), after step 3 freed their
//!    slots and outside the coffer's lock (the slab lock alone): slabs left
//!    empty are unmapped; the canaries of the slots still taken (their
//!    destruction waits for a guard, or they were made after the sweep) are
//!    checked.
//! 5. **Damage**: a corrupted canary found in steps 3 or 4 is reported and
//!    the process aborts, only now, once everything else is wiped.

use crate::buffer::registry;
use crate::{coffer, mem};

/// Destroys the session key and every live [`LockedBuffer`](crate::LockedBuffer)
/// in the process.
///
/// Every existing [`Enclave`](crate::Enclave) becomes undecryptable (opening
/// it gives [`Error::DecryptionFailed`](crate::Error::DecryptionFailed));
/// enclaves sealed afterwards use a fresh key and work as usual.
///
/// Each buffer is wiped and unmapped, and so are the spare mappings kept
/// for reuse (see [`set_spare_limit`](crate::set_spare_limit)). A buffer that is borrowed at the time
/// (a [`Ref`](crate::Ref) or [`RefMut`](crate::RefMut) is alive, on any
/// thread) stops handing out new guards at once and is wiped and unmapped
/// when its last guard is dropped: `purge` never waits for a guard, never
/// deadlocks (even when the calling thread holds one), and never frees memory
/// a guard can still read. Buffers created after `purge` starts are not
/// touched.
///
/// A guard that is never dropped (leaked with [`std::mem::forget`], or held
/// in an `Rc` cycle) keeps its buffer readable until the process ends:
/// `purge` only marks it, and [`live_buffers`] no longer counts it.
/// [`safe_exit`](crate::safe_exit) and the exits of
/// [`catch_signal`](crate::catch_signal) wipe such buffers in place before
/// the process ends.
///
/// If a buffer's canary turns out to be overwritten, every other buffer is
/// still wiped first; then the damage is reported on stderr and the process
/// aborts.
///
/// ```
/// let key = memguard::LockedBuffer::random(32)?;
/// memguard::purge();
/// assert!(!key.is_alive());
/// assert!(key.bytes().is_empty());
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn purge() {
    // The steps, and why in this order: see the module's documentation.
    mem::drain_spares(); // 1
    let mut corrupted = coffer::destroy_then(registry::destroy_all); // 2, 3
    corrupted.extend(mem::purge_compact()); // 4
    if !corrupted.is_empty() {
        mem::report_and_abort(&corrupted); // 5
    }
}

/// The number of live [`LockedBuffer`](crate::LockedBuffer)s in the process.
///
/// A buffer leaves the count when it is destroyed, and every buffer leaves
/// it the moment [`purge`] runs, even one whose destruction waits for a guard
/// to be dropped. The session key's buffer counts while it exists.
///
/// Useful to check that nothing leaks:
///
/// ```
/// let before = memguard::live_buffers();
/// let buf = memguard::LockedBuffer::new(8)?;
/// assert!(memguard::live_buffers() >= 1);
/// drop(buf);
/// # let _ = before;
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn live_buffers() -> usize {
    registry::live()
}
