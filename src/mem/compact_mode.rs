//! [`CompactMode`]: whether small buffers may share locked pages.

use std::sync::atomic::{AtomicU8, Ordering};

/// Where a small [`LockedBuffer`](crate::LockedBuffer) (at most
/// [`COMPACT_MAX_FRACTION`](crate::COMPACT_MAX_FRACTION) of a page) goes:
/// a guarded mapping of its own, or a slot in a *compact* slab shared with
/// other small secrets. Process-wide; set with
/// [`set_compact_mode`](crate::set_compact_mode).
///
/// A compact secret keeps the lock, the exclusion from core dumps and from
/// forked children, the wipes, immutability (frozen secrets live in
/// read-only slabs) and a canary, but gives up the guard pages right
/// against its data: an overflow into the next slot is caught by the
/// canaries (at the latest when either slot is freed, or by
/// [`purge`](crate::purge)), not by a fault at once. See the threat model.
///
/// ```
/// use memguard::{CompactMode, LockedBuffer, Protections};
///
/// let before = memguard::compact_mode();
/// memguard::set_compact_mode(CompactMode::Always);
/// let token = LockedBuffer::new(32)?;
/// assert!(token.protections().contains(Protections::COMPACT));
/// memguard::set_compact_mode(before);
/// # Ok::<(), memguard::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CompactMode {
    /// The default: a small buffer gets a mapping of its own (guard pages
    /// on both sides) while that mapping fits the *own-page budget*, a
    /// quarter of the lock limit (all of it when unlimited, and on Windows,
    /// where memguard grows the working-set quota itself), and the system
    /// grants it; otherwise (the budget is used up, or the system refuses
    /// with [`Error::MemoryLock`](crate::Error::MemoryLock) or
    /// [`Error::OutOfMappings`](crate::Error::OutOfMappings)) it goes to a
    /// compact slot instead of failing. The other three quarters are left
    /// to compact slabs, so that a few hundred one-page buffers cannot use
    /// up the budget that thousands of compact secrets need.
    #[default]
    Automatic,
    /// Every small buffer goes to a compact slot: the smallest, steadiest
    /// footprint (1,000 32-byte secrets lock about 40 KiB).
    Always,
    /// No buffer is ever compact: today's layout, and
    /// [`Error::MemoryLock`](crate::Error::MemoryLock) when a one-page
    /// buffer does not fit the lock limit.
    Never,
}

static MODE: AtomicU8 = AtomicU8::new(0);

impl CompactMode {
    fn code(self) -> u8 {
        match self {
            CompactMode::Automatic => 0,
            CompactMode::Always => 1,
            CompactMode::Never => 2,
        }
    }

    fn from_code(code: u8) -> CompactMode {
        match code {
            1 => CompactMode::Always,
            2 => CompactMode::Never,
            _ => CompactMode::Automatic,
        }
    }
}

/// Sets where small buffers made from now on go (see [`CompactMode`]);
/// buffers that exist keep their layout.
///
/// ```
/// let before = memguard::compact_mode();
/// memguard::set_compact_mode(memguard::CompactMode::Never);
/// let key = memguard::LockedBuffer::new(32)?;
/// assert!(!key.is_compact());
/// memguard::set_compact_mode(before);
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn set_compact_mode(mode: CompactMode) {
    MODE.store(mode.code(), Ordering::Relaxed);
}

/// The current [`CompactMode`] ([`CompactMode::Automatic`] unless set).
pub fn compact_mode() -> CompactMode {
    CompactMode::from_code(MODE.load(Ordering::Relaxed))
}
