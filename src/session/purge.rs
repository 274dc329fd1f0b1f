//! [`purge`]: destroy every live buffer.

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
    // First, so that the buffers destroyed below are unmapped, not parked.
    mem::drain_spares();
    let mut corrupted = coffer::destroy_then(registry::destroy_all);
    corrupted.extend(mem::purge_compact());
    if !corrupted.is_empty() {
        mem::report_and_abort(&corrupted);
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
