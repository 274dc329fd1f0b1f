//! [`LockedBuffer`]: a fixed-size buffer in guarded, locked memory.

use std::fmt;
use std::io::Cursor;
use std::sync::Arc;

use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroize;

use super::registry;
use crate::crypto::{ct, scramble_bytes};
use crate::error::{Error, Result};
use crate::mem::{wipe_bytes, Ref, RefMut, Region};

/// A fixed-size buffer for secrets, in memory of its own.
///
/// Each buffer is a separate mapping, made without the global allocator:
///
/// ```text
/// [guard page][canary ... | data][guard page]
/// ```
///
/// - The guard pages can be neither read nor written: running off either end
///   of the data faults at once. The data ends exactly where the trailing
///   guard page begins, so even a one-byte overflow faults.
/// - The slack before the data holds a random canary, checked in constant
///   time on destroy; if it changed, the process wipes every buffer and
///   aborts with a message naming the canary.
/// - The data pages are locked in RAM (never swapped), left out of core
///   dumps, and zero-filled in forked children (`MADV_WIPEONFORK`, or absent
///   from them where the kernel lacks it).
/// - [`freeze`](LockedBuffer::freeze) makes the data read-only with
///   `mprotect`: a write through any pointer faults.
/// - Dropping or [`destroy`](LockedBuffer::destroy)ing the buffer wipes the
///   data, checks the canary and unmaps the memory; the old address faults.
///   A one-page mapping may instead be kept, wiped whole and `PROT_NONE`
///   (so the old address still faults), for the next one-page buffer; see
///   [`set_spare_limit`](crate::set_spare_limit).
///
/// A small buffer (up to 1/16 of a page) may instead be *compact*: a slot in
/// a locked page shared with other small secrets, between canaries rather
/// than guard pages, when the lock budget would not allow a page of its own
/// or the application asked for it; see [`CompactMode`](crate::CompactMode)
/// and [`is_compact`](LockedBuffer::is_compact).
///
/// The data is reached through guards: [`bytes`](LockedBuffer::bytes) gives a
/// [`Ref`], [`bytes_mut`](LockedBuffer::bytes_mut) a [`RefMut`]. A
/// [`purge`](crate::purge) on another thread never frees memory a guard can
/// still read: a borrowed buffer is destroyed when its last guard is dropped,
/// and nobody ever waits.
///
/// `Debug` shows the length and state, never the contents.
///
/// ```
/// use memguard::LockedBuffer;
///
/// let mut key = LockedBuffer::new(32)?;
/// key.copy(&[7u8; 32])?;
/// key.freeze()?;
/// assert!(key.equal_to(&[7u8; 32]));
/// assert!(matches!(key.wipe(), Err(memguard::Error::Immutable)));
/// key.destroy();
/// # Ok::<(), memguard::Error>(())
/// ```
pub struct LockedBuffer {
    pub(super) region: Arc<Region>,
    slot: usize,
}

impl LockedBuffer {
    /// A mutable buffer of `size` bytes, filled with zeros.
    ///
    /// Fails with [`Error::NullBuffer`] for a size of zero,
    /// [`Error::MemoryLock`] when the process's `RLIMIT_MEMLOCK` is used up,
    /// [`Error::TooLarge`] for sizes that cannot be mapped.
    ///
    /// ```
    /// let buf = memguard::LockedBuffer::new(64)?;
    /// assert_eq!(buf.len(), 64);
    /// assert!(buf.is_mutable());
    /// assert!(buf.bytes().iter().all(|&b| b == 0));
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn new(size: usize) -> Result<LockedBuffer> {
        let region = Arc::new(Region::new(size)?);
        let slot = registry::register(Arc::clone(&region));
        Ok(LockedBuffer { region, slot })
    }

    /// As [`new`](LockedBuffer::new), but when locked memory or mappings
    /// run out it waits up to `timeout` for another buffer to be destroyed
    /// and tries again; see [`Enclave::open_timeout`](crate::Enclave::open_timeout)
    /// for how it waits and what happens when the waiting thread holds the
    /// buffers itself.
    ///
    /// ```
    /// let buf = memguard::LockedBuffer::new_timeout(32, std::time::Duration::ZERO)?;
    /// assert_eq!(buf.len(), 32);
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn new_timeout(size: usize, timeout: std::time::Duration) -> Result<LockedBuffer> {
        crate::mem::retry_on_lock_limit(timeout, || LockedBuffer::new(size))
    }

    /// An immutable buffer of `size` bytes from the operating system's CSPRNG.
    ///
    /// ```
    /// let key = memguard::LockedBuffer::random(32)?;
    /// assert!(!key.is_mutable());
    /// assert!(!key.equal_to(&[0u8; 32]));
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn random(size: usize) -> Result<LockedBuffer> {
        let mut buf = LockedBuffer::new(size)?;
        buf.scramble()?;
        buf.freeze()?;
        Ok(buf)
    }

    /// An immutable buffer holding a copy of `src`; `src` is then wiped.
    ///
    /// On failure `src` is left as it was. An empty `src` gives
    /// [`Error::NullBuffer`].
    ///
    /// ```
    /// let mut password = *b"correct horse";
    /// let buf = memguard::LockedBuffer::from_bytes(&mut password)?;
    /// assert!(buf.equal_to(b"correct horse"));
    /// assert_eq!(password, [0u8; 13]);
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn from_bytes(src: &mut [u8]) -> Result<LockedBuffer> {
        let mut buf = LockedBuffer::new(src.len())?;
        buf.copy(src)?;
        buf.freeze()?;
        wipe_bytes(src);
        Ok(buf)
    }

    /// The length of the data in bytes; 0 once destroyed.
    pub fn len(&self) -> usize {
        if self.region.is_alive() {
            self.region.len()
        } else {
            0
        }
    }

    /// Whether [`len`](LockedBuffer::len) is 0, which happens only once the
    /// buffer is destroyed (a live buffer holds at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the buffer has been neither destroyed nor purged.
    pub fn is_alive(&self) -> bool {
        self.region.is_alive()
    }

    /// Whether the buffer is alive and writable (not frozen).
    pub fn is_mutable(&self) -> bool {
        self.region.is_alive() && !self.region.is_frozen()
    }

    /// Read access to the data; an empty slice once the buffer is destroyed.
    ///
    /// Where an empty slice could pass for data (a key, a password), use
    /// [`try_bytes`](LockedBuffer::try_bytes), which gives
    /// [`Error::Destroyed`] instead; [`as_str`](LockedBuffer::as_str) for
    /// text.
    ///
    /// Destruction (by [`purge`](crate::purge), say) is put off while the
    /// guard lives, so the slice never changes under it.
    ///
    /// ```
    /// let mut src = *b"abc";
    /// let buf = memguard::LockedBuffer::from_bytes(&mut src)?;
    /// assert_eq!(&*buf.bytes(), b"abc");
    /// buf.destroy();
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn bytes(&self) -> Ref<'_, [u8]> {
        self.region.read().unwrap_or_else(Ref::empty)
    }

    /// Write access to the data.
    ///
    /// Fails with [`Error::Immutable`] when frozen and [`Error::Destroyed`]
    /// once destroyed or purged.
    pub fn bytes_mut(&mut self) -> Result<RefMut<'_, [u8]>> {
        self.region.write()
    }

    /// Makes the data read-only: any write to it, through any pointer, faults.
    ///
    /// Freezing a frozen buffer does nothing. Fails with
    /// [`Error::Destroyed`] once destroyed.
    pub fn freeze(&mut self) -> Result<()> {
        self.region.set_frozen(true)
    }

    /// Keeps the data pages inaccessible (`PROT_NONE`) whenever no guard of
    /// this buffer is held (`on`), or not; see
    /// [`set_no_access_between_uses`](crate::set_no_access_between_uses)
    /// for the process-wide default. Fails with [`Error::Busy`] while
    /// borrowed, [`Error::Destroyed`] once destroyed, and
    /// [`Error::CompactBuffer`] when turned on for a compact buffer (see
    /// [`is_compact`](Self::is_compact)), whose pages other secrets share.
    ///
    /// ```
    /// let key = memguard::LockedBuffer::random(32)?;
    /// key.set_no_access_between_uses(true)?;
    /// assert!(key.is_sealed_between_uses());
    /// let first = key.bytes()[0]; // the guard opens the pages, its drop seals them
    /// # let _ = first;
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn set_no_access_between_uses(&self, on: bool) -> Result<()> {
        self.region.set_sealed_between_uses(on)
    }

    /// Whether the data pages are inaccessible while no guard is held (see
    /// [`LockedBuffer::set_no_access_between_uses`]).
    pub fn is_sealed_between_uses(&self) -> bool {
        self.region.is_sealed_between_uses()
    }

    /// Makes the data writable again. Melting a mutable buffer does nothing.
    /// Fails with [`Error::Destroyed`] once destroyed.
    ///
    /// ```
    /// let mut key = memguard::LockedBuffer::random(16)?;
    /// assert!(!key.is_mutable());
    /// key.melt()?;
    /// key.wipe()?;
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn melt(&mut self) -> Result<()> {
        self.region.set_frozen(false)
    }

    /// Copies `src` to the start of the buffer.
    ///
    /// The copy is a plain `memcpy`: its time depends on the length (and
    /// alignment), not on the bytes copied as far as any known `memcpy`
    /// goes, but it is not a constant-time primitive and promises nothing
    /// more; `scripts/timing.sh` watches it for data-dependent timing.
    ///
    /// `src` may be shorter than the buffer; if it is longer, nothing is
    /// written and [`Error::OutOfRange`] is returned.
    pub fn copy(&mut self, src: &[u8]) -> Result<()> {
        self.copy_at(0, src)
    }

    /// Copies `src` into the buffer at `offset`, with a plain `memcpy`
    /// (timing that depends on the length, not a constant-time primitive:
    /// see [`LockedBuffer::copy`]).
    ///
    /// If `src` does not fit there, nothing is written and
    /// [`Error::OutOfRange`] is returned.
    ///
    /// ```
    /// let mut buf = memguard::LockedBuffer::new(4)?;
    /// buf.copy_at(2, b"hi")?;
    /// assert!(buf.equal_to(b"\0\0hi"));
    /// assert!(buf.copy_at(3, b"hi").is_err());
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn copy_at(&mut self, offset: usize, src: &[u8]) -> Result<()> {
        let mut data = self.bytes_mut()?;
        let range = checked_range(offset, src.len(), data.len())?;
        ct::copy(&mut data[range], src);
        Ok(())
    }

    /// Copies `src` to the start of the buffer, then wipes `src`.
    ///
    /// On failure nothing is written and `src` is left as it was.
    pub fn move_from(&mut self, src: &mut [u8]) -> Result<()> {
        self.move_at(0, src)
    }

    /// Copies `src` into the buffer at `offset`, then wipes `src`.
    ///
    /// On failure nothing is written and `src` is left as it was.
    ///
    /// ```
    /// let mut buf = memguard::LockedBuffer::new(4)?;
    /// let mut pin = *b"1234";
    /// buf.move_at(0, &mut pin)?;
    /// assert_eq!(pin, [0u8; 4]);
    /// assert!(buf.equal_to(b"1234"));
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn move_at(&mut self, offset: usize, src: &mut [u8]) -> Result<()> {
        self.copy_at(offset, src)?;
        wipe_bytes(src);
        Ok(())
    }

    /// Whether the buffer holds exactly `other`, compared in constant time.
    ///
    /// False on a length mismatch and for a destroyed buffer.
    pub fn equal_to(&self, other: &[u8]) -> bool {
        let data = self.bytes();
        self.region.is_alive() && bool::from(ct::eq(&data, other))
    }

    /// Overwrites the data with random bytes from the operating system.
    /// Fails with [`Error::Immutable`] when frozen.
    pub fn scramble(&mut self) -> Result<()> {
        scramble_bytes(&mut self.bytes_mut()?)
    }

    /// Overwrites the data with zeros. Fails with [`Error::Immutable`] when
    /// frozen (see the [`Zeroize`] impl for a wipe that ignores freezing).
    pub fn wipe(&mut self) -> Result<()> {
        wipe_bytes(&mut self.bytes_mut()?);
        Ok(())
    }

    /// Wipes the data, checks the canary and unmaps the memory (or keeps a
    /// mapping, wiped and `PROT_NONE`, as a spare: see
    /// [`set_spare_limit`](crate::set_spare_limit)). The same happens on
    /// drop; this spells it out.
    pub fn destroy(self) {
        drop(self);
    }

    /// A reader over the data (`Read`, `BufRead`, `Seek`), holding a shared
    /// borrow for as long as it lives. Empty once destroyed.
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let mut src = *b"token";
    /// let buf = memguard::LockedBuffer::from_bytes(&mut src)?;
    /// let mut first = [0u8; 3];
    /// buf.reader().read_exact(&mut first).unwrap();
    /// assert_eq!(&first, b"tok");
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn reader(&self) -> Cursor<Ref<'_, [u8]>> {
        Cursor::new(self.bytes())
    }

    /// The page size this buffer was mapped with.
    pub fn page_size(&self) -> usize {
        self.region.page_size()
    }

    /// What this operating system gave this buffer: guard pages, a lock
    /// into RAM, exclusion from core dumps, what forked children get, the
    /// canary, the wipe before a crash. See [`Protections`](crate::Protections)
    /// for what each system gives.
    ///
    /// ```
    /// use memguard::{LockedBuffer, Protections};
    ///
    /// let buf = LockedBuffer::new(32)?;
    /// let got = buf.protections();
    /// assert!(got.contains(Protections::CANARY)); // 32 bytes leave slack
    /// println!("{got}");
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn protections(&self) -> crate::Protections {
        self.region.protections()
    }

    /// Whether this buffer is compact: a slot in a page shared with other
    /// small secrets, with canaries instead of guard pages right against
    /// it (see [`CompactMode`](crate::CompactMode)); the same as
    /// `protections().contains(Protections::COMPACT)`.
    ///
    /// ```
    /// let key = memguard::LockedBuffer::new(32)?;
    /// // With the lock budget free, a small buffer gets pages of its own.
    /// # if memguard::compact_mode() == memguard::CompactMode::Automatic {
    /// assert!(!key.is_compact());
    /// # }
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn is_compact(&self) -> bool {
        self.region.is_compact()
    }

    /// Whether forked children see the data as zeros: `true` with
    /// [`Protections::ZEROED_IN_FORKS`](crate::Protections::ZEROED_IN_FORKS)
    /// (Linux `MADV_WIPEONFORK`, FreeBSD and OpenBSD `minherit`), `false`
    /// when they do not get the pages at all (Linux before 4.14, macOS) or
    /// there is no `fork` (Windows). Kept for existing callers;
    /// [`protections`](LockedBuffer::protections) says more.
    pub fn wipes_on_fork(&self) -> bool {
        self.protections()
            .contains(crate::Protections::ZEROED_IN_FORKS)
    }
}

/// `offset..offset + len` if it fits in `size`.
pub(super) fn checked_range(
    offset: usize,
    len: usize,
    size: usize,
) -> Result<std::ops::Range<usize>> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(offset..end),
        _ => Err(Error::OutOfRange { offset, len, size }),
    }
}

impl LockedBuffer {
    /// Copies `dst.len()` bytes from `offset` into `dst`, for an owner that
    /// reads the same buffer many times in small pieces (a stream's opened
    /// chunk). The first call takes a lease, a shared borrow the buffer
    /// keeps until it is dropped or a purge takes it back; every call then
    /// costs a few plain loads and stores instead of a guard's two atomic
    /// read-modify-writes (see `mem::lease`). While leased, the buffer
    /// cannot be written, frozen or melted (`Error::Busy`).
    ///
    /// False, copying nothing, when the buffer is destroyed, out of range,
    /// sealed between uses, or the lease was taken back: the caller then
    /// reads through [`LockedBuffer::bytes`], which says why.
    #[inline]
    pub(crate) fn read_leased(&mut self, offset: usize, dst: &mut [u8]) -> bool {
        self.region.read_leased(offset, dst)
            || (self.region.lease() && self.region.read_leased(offset, dst))
    }

    /// The buffer's region, for tests that tell buffers apart (holding it
    /// keeps the allocation, so its address is not reused meanwhile).
    #[cfg(test)]
    pub(crate) fn region_for_tests(&self) -> Arc<Region> {
        Arc::clone(&self.region)
    }

    /// Ends a lease taken by [`LockedBuffer::read_leased`], so that the
    /// buffer can be written again; nothing when there is none.
    pub(crate) fn end_lease(&mut self) {
        self.region.end_lease();
    }
}

impl Drop for LockedBuffer {
    fn drop(&mut self) {
        // The owner's lease first: no barrier is needed to end it here.
        self.region.end_lease();
        registry::unregister(self.slot, &self.region);
        self.region.destroy();
    }
}

impl fmt::Debug for LockedBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedBuffer")
            .field("len", &self.len())
            .field("alive", &self.is_alive())
            .field("mutable", &self.is_mutable())
            .finish_non_exhaustive()
    }
}

/// Wipes the data even when the buffer is frozen (it is melted for the wipe
/// and frozen again). Does nothing once destroyed.
impl Zeroize for LockedBuffer {
    fn zeroize(&mut self) {
        let frozen = self.region.is_frozen();
        if frozen && self.melt().is_err() {
            return;
        }
        let _ = self.wipe();
        if frozen {
            let _ = self.freeze();
        }
    }
}

/// Compares two buffers' contents in constant time. Buffers of different
/// lengths, and destroyed buffers, are unequal.
impl ConstantTimeEq for LockedBuffer {
    fn ct_eq(&self, other: &LockedBuffer) -> Choice {
        let (a, b) = (self.bytes(), other.bytes());
        let alive = Choice::from(u8::from(self.is_alive() && other.is_alive()));
        alive & ct::eq(&a, &b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a purge does to one buffer (`registry::destroy_all`).
    fn purge_one(region: &Region) {
        assert!(region.destroy_collecting().is_none());
    }

    #[test]
    fn reads_under_a_lease_see_the_data() {
        let mut buf = LockedBuffer::from_bytes(&mut b"leased bytes".to_vec()).unwrap();
        let mut one = [0u8; 1];
        assert!(buf.read_leased(7, &mut one));
        assert_eq!(&one, b"b");
        let mut five = [0u8; 5];
        assert!(buf.read_leased(7, &mut five));
        assert_eq!(&five, b"bytes");
        assert!(!buf.read_leased(8, &mut five), "out of range");
        assert!(!buf.read_leased(usize::MAX, &mut one), "out of range");
        // Leased: no writer meanwhile.
        assert!(matches!(buf.bytes_mut(), Err(Error::Busy)));
    }

    #[test]
    fn with_the_lease_roster_full_no_lease_is_taken_and_no_borrow_kept() {
        let mut buf = LockedBuffer::from_bytes(&mut b"leased bytes".to_vec()).unwrap();
        let mut one = [0u8; 1];
        crate::mem::LEASE_ROSTER_FULL.with(|f| f.set(true));
        let leased = buf.read_leased(7, &mut one);
        crate::mem::LEASE_ROSTER_FULL.with(|f| f.set(false));
        assert!(!leased, "no slot, no lease");
        assert_eq!(one, [0], "nothing copied");
        // The borrow taken for the lease was given back: a writer gets in.
        buf.melt().unwrap();
        buf.bytes_mut().unwrap()[0] = b'L';
        assert!(buf.read_leased(0, &mut one), "a slot again");
        assert_eq!(&one, b"L");
    }

    #[test]
    fn a_purge_destroys_a_leased_buffer_at_once() {
        let mut buf = LockedBuffer::random(64).unwrap();
        let mut one = [0u8; 1];
        assert!(buf.read_leased(0, &mut one));
        purge_one(&buf.region);
        assert!(
            buf.region.is_destroyed(),
            "wiped and unmapped, not deferred"
        );
        assert!(!buf.read_leased(0, &mut one));
        assert!(!buf.region.lease(), "no new lease once destroyed");
    }

    #[test]
    fn a_purge_defers_to_a_guard_but_not_to_a_lease() {
        // The control: a guard does defer the destruction.
        let buf = LockedBuffer::random(64).unwrap();
        let guard = buf.bytes();
        purge_one(&buf.region);
        assert!(!buf.region.is_destroyed());
        drop(guard);
        assert!(buf.region.is_destroyed());
    }

    #[test]
    fn the_owner_ends_its_lease_on_drop() {
        let mut buf = LockedBuffer::random(64).unwrap();
        let mut one = [0u8; 1];
        assert!(buf.read_leased(0, &mut one));
        let region = Arc::clone(&buf.region);
        drop(buf);
        assert!(region.is_destroyed());
    }

    #[test]
    fn a_purge_on_another_thread_never_tears_a_leased_read() {
        const PATTERN: u8 = 0x5A;
        // A revoke that does not wait for the read in progress tears one
        // (a wiped byte, or a fault) in a few of these.
        let rounds = if cfg!(miri) { 2 } else { 200 };
        for _ in 0..rounds {
            let mut buf = LockedBuffer::new(4096).unwrap();
            buf.bytes_mut().unwrap().fill(PATTERN);
            let region = Arc::clone(&buf.region);
            let leased = Arc::new(std::sync::Barrier::new(2));
            let reader = {
                let leased = Arc::clone(&leased);
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    let mut chunk = [0u8; 64];
                    let mut offset = 0;
                    while buf.read_leased(offset, &mut chunk) {
                        assert!(chunk.iter().all(|&b| b == PATTERN), "read a wiped byte");
                        offset = (offset + 64) % 4096;
                        reads += 1;
                        if reads == 1 {
                            leased.wait();
                        }
                    }
                    reads
                })
            };
            // Purge while the reader holds its lease and keeps reading.
            leased.wait();
            purge_one(&region);
            assert!(region.is_destroyed(), "the purge waited for no one");
            let reads = reader.join().expect("no read saw the wipe");
            assert!(reads > 0);
        }
    }
}
