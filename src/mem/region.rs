//! [`Region`]: one guarded, locked mapping holding one buffer's bytes.

use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use super::borrow::{BorrowState, Refused};
use super::compact_mode::{compact_mode, CompactMode};
use super::corruption::{self, CanaryCorruption};
use super::layout::Layout;
use super::lease::Lease;
use super::protections::Protections;
use super::reference::Ref;
use super::reference_mut::RefMut;
use super::seal::{self, Seal};
use super::slab::{self, Slot};
use super::sys::{Access, Os, Pages, Process};
use super::{canary, crash_handler, crash_table, fork, harden, spares, wipe};
use crate::error::{Error, Result};

/// A guarded mapping: `[guard][canary | data][guard]`, the data pages locked,
/// kept out of core dumps and forked children (as far as the system can:
/// see [`Region::protections`]).
///
/// Every access to the bytes goes through a [`Ref`] or [`RefMut`], counted in
/// a [`BorrowState`]; destruction waits for the last of them without anyone
/// blocking, so no safe code can see the memory wiped or unmapped.
pub(crate) struct Region {
    base: NonNull<u8>,
    layout: Layout,
    canary: &'static [u8],
    len: AtomicUsize,
    state: BorrowState,
    /// The owner's lease: a shared borrow kept across reads (see `lease`).
    lease: Lease,
    /// Where the data starts, and its length, as they were when the lease
    /// was taken: read under the lease only, so that a leased read finds
    /// its bytes with one load (no layout arithmetic, no slot lookup).
    /// Written by the owner before the lease is held; neither changes while
    /// it is (a compact slot moves only under the exclusive borrow).
    leased_data: AtomicPtr<u8>,
    leased_len: AtomicUsize,
    frozen: AtomicBool,
    /// "No access between uses": the data pages sealed while no guard is held.
    seal: Seal,
    /// What the platform layer gave the mapping.
    mapping: Protections,
    /// This region's slot in the crash table, if it got one.
    crash_slot: Option<usize>,
    /// The purge count when it was made (see `spares::park`).
    epoch: u64,
    /// The fork generation of the process that made it: in a forked child
    /// the region is inherited, and dead (see [`Region::is_inherited`]).
    forks: u64,
    /// For a compact region (a slot in a shared slab, see `slab`): where
    /// its slot is. Changed only under the exclusive borrow. `None` for a
    /// region with a mapping of its own (`base` and `layout` then describe
    /// it; for a compact region they are unused).
    compact: Option<Place>,
}

/// A compact region's slot, in atomics: it is written only under the
/// exclusive borrow and read only under a borrow, whose acquire and release
/// order these accesses.
struct Place {
    slab: AtomicUsize,
    index: AtomicUsize,
    start: AtomicPtr<u8>,
    size: usize,
}

impl Place {
    fn new(slot: Slot) -> Place {
        Place {
            slab: AtomicUsize::new(slot.slab),
            index: AtomicUsize::new(slot.index),
            start: AtomicPtr::new(slot.start.as_ptr()),
            size: slot.size,
        }
    }

    fn get(&self) -> Slot {
        let start = self.start.load(Ordering::Acquire);
        Slot {
            slab: self.slab.load(Ordering::Acquire),
            index: self.index.load(Ordering::Acquire),
            // A Place is made from a Slot, whose start is never null.
            start: NonNull::new(start).unwrap_or(NonNull::dangling()),
            size: self.size,
        }
    }

    fn set(&self, slot: Slot) {
        self.slab.store(slot.slab, Ordering::Release);
        self.index.store(slot.index, Ordering::Release);
        self.start.store(slot.start.as_ptr(), Ordering::Release);
    }
}

/// Bytes of own mappings' data pages locked now (spares included), for the
/// own-page budget of [`CompactMode::Automatic`].
static OWN_LOCKED: AtomicUsize = AtomicUsize::new(0);

/// Counts an own mapping of `data_pages` bytes made (`true`) or released.
pub(crate) fn count_own(data_pages: usize, made: bool) {
    if made {
        OWN_LOCKED.fetch_add(data_pages, Ordering::Relaxed);
    } else {
        let _ = OWN_LOCKED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(data_pages))
        });
    }
}

/// Whether one more own page fits the own-page budget: a quarter of the
/// lock limit, or no bound when the limit is unlimited or one memguard
/// grows itself (Windows).
fn own_page_fits(page: usize) -> bool {
    if !Os::FIXED_LOCK_LIMIT {
        return true;
    }
    match Os::lock_limit() {
        None => true,
        Some(limit) => OWN_LOCKED.load(Ordering::Relaxed) + page <= limit / OWN_SHARE,
    }
}

/// The own-page budget is `lock limit / OWN_SHARE`.
pub(crate) const OWN_SHARE: usize = 4;

// SAFETY: the mapping belongs to this Region alone, and every access to its
// bytes from safe code goes through Ref/RefMut, whose creation and release
// are synchronised by the atomic BorrowState; `len` and `frozen` are atomics
// changed only under the exclusive borrow.
unsafe impl Send for Region {}
// SAFETY: as for Send: shared access hands out only counted Ref guards.
unsafe impl Sync for Region {}

impl Region {
    /// Maps a writable, zero-filled region for `len` bytes.
    ///
    /// A region reuses a spare mapping of as many data pages when there is
    /// one. When a new mapping cannot be locked, the spares are unmapped
    /// (they hold locked pages) and it is tried once more.
    pub(crate) fn new(len: usize) -> Result<Region> {
        let page = Os::page_size();
        let layout = Layout::new(len, page)?;
        harden::ensure();
        crash_handler::install();
        fork::install();
        let canary = canary::pattern(page)?;
        let small = len <= slab::max_len(page);
        // With "no access between uses" the process default, a buffer must
        // have pages of its own to be sealed: the automatic fallback to
        // shared pages is off then (an explicit CompactMode::Always wins,
        // and its buffers are not sealed).
        let mode = match compact_mode() {
            CompactMode::Automatic if seal::default() => CompactMode::Never,
            mode => mode,
        };
        match (mode, small) {
            (CompactMode::Always, true) => Region::new_compact(len, layout, canary),
            (CompactMode::Automatic, true) => {
                let spare = spares::take(page, layout.data_pages);
                if spare.is_none() && !own_page_fits(page) {
                    return Region::new_compact(len, layout, canary);
                }
                match Region::new_own(len, layout, canary, spare) {
                    Err(Error::MemoryLock { .. } | Error::OutOfMappings { .. }) => {
                        Region::new_compact(len, layout, canary)
                    }
                    other => other,
                }
            }
            _ => {
                let spare = spares::take(page, layout.data_pages);
                Region::new_own(len, layout, canary, spare)
            }
        }
    }

    /// A compact region: a slot in a shared slab (see `slab`).
    fn new_compact(len: usize, layout: Layout, canary: &'static [u8]) -> Result<Region> {
        let slot = slab::allocate(len)?;
        Ok(Region {
            base: slot.start,
            layout,
            canary,
            len: AtomicUsize::new(len),
            state: BorrowState::new(),
            lease: Lease::new(),
            leased_data: AtomicPtr::new(std::ptr::null_mut()),
            leased_len: AtomicUsize::new(0),
            frozen: AtomicBool::new(false),
            seal: Seal::new(),
            mapping: slab::protections_of(slot),
            crash_slot: None,
            epoch: spares::epoch(),
            forks: fork::generation(),
            compact: Some(Place::new(slot)),
        })
    }

    /// A region with a mapping of its own: `spare`, or a new one.
    fn new_own(
        len: usize,
        layout: Layout,
        canary: &'static [u8],
        spare: Option<(NonNull<u8>, Protections)>,
    ) -> Result<Region> {
        let (base, mapping) = match spare {
            Some(spare) => spare,
            None => match Region::map(layout) {
                Err(Error::MemoryLock { .. }) if spares::drain() > 0 => Region::map(layout)?,
                other => other?,
            },
        };
        let data = Region::data_pages_of(base, layout);
        let n = layout.data_pages;
        let region = Region {
            base,
            layout,
            canary,
            len: AtomicUsize::new(len),
            state: BorrowState::new(),
            lease: Lease::new(),
            leased_data: AtomicPtr::new(std::ptr::null_mut()),
            leased_len: AtomicUsize::new(0),
            frozen: AtomicBool::new(false),
            seal: Seal::new(),
            mapping,
            crash_slot: crash_table::add(data, n),
            epoch: spares::epoch(),
            forks: fork::generation(),
            compact: None,
        };
        let slack = layout.slack(len);
        if slack > 0 {
            // SAFETY: the slack is the start of the writable data pages; the
            // region is not shared yet, so this is the only reference.
            let bytes = unsafe { std::slice::from_raw_parts_mut(data.as_ptr(), slack) };
            canary::write(bytes, canary);
        }
        if seal::default() {
            // SAFETY: our data pages; the region is not shared yet, so no
            // guard exists.
            unsafe { region.seal.set(true, data, n, Access::ReadWrite) }?;
        }
        Ok(region)
    }

    /// A new mapping for `layout`: guard pages inaccessible, the data pages
    /// writable, locked and advised; what the system gave it.
    fn map(layout: Layout) -> Result<(NonNull<u8>, Protections)> {
        let base = Os::allocate(layout.total())?;
        let data = Region::data_pages_of(base, layout);
        let n = layout.data_pages;
        // SAFETY: the range is inside the mapping we just made; no reference
        // to it exists yet.
        let set_up = unsafe {
            Os::protect(data, n, Access::ReadWrite).and_then(|()| {
                let locked = Os::lock(data, n)?;
                Ok(Os::BASELINE | locked | Os::advise(data, n)?)
            })
        };
        match set_up {
            Ok(mapping) => {
                count_own(n, true);
                Ok((base, mapping))
            }
            Err(e) => {
                // SAFETY: exactly the mapping allocate() returned, never shared.
                unsafe { Os::free(base, layout.total()) };
                Err(e)
            }
        }
    }

    /// The length of the data in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// The page size the region was made with.
    pub(crate) fn page_size(&self) -> usize {
        self.layout.page
    }

    /// Whether this region is a slot in a shared slab.
    pub(crate) fn is_compact(&self) -> bool {
        self.compact.is_some()
    }

    /// Whether the data pages are read-only.
    pub(crate) fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }

    /// Whether the region is neither destroyed nor about to be, nor
    /// inherited through `fork`.
    pub(crate) fn is_alive(&self) -> bool {
        !self.state.is_gone() && !self.is_inherited()
    }

    /// Whether this process is a forked child of the one that made the
    /// region. Such a region is dead here: its data pages were zero-filled
    /// or not copied at all (see [`Protections::hidden_from_forks`]), and
    /// they are not locked. It hands out no borrows, and destroying it releases
    /// what this process got of its mapping without reading or writing it.
    #[inline]
    pub(crate) fn is_inherited(&self) -> bool {
        self.forks != fork::generation()
    }

    /// What this region got: what the system gave its mapping, the canary
    /// when there is slack before the data, the wipe before a crash when
    /// the fault hook is in place and the region is in its table.
    pub(crate) fn protections(&self) -> Protections {
        if let Some(place) = &self.compact {
            // A compact secret's slab changes with freeze and melt, and a
            // frozen slab may differ from a writable one (an aliased
            // frozen slab is left out of forked children, a writable one
            // zero-filled there): ask the slab it is in now. An inherited
            // region keeps what it had (its slab is not this process's).
            if self.is_inherited() {
                return self.mapping;
            }
            return slab::protections_of(place.get());
        }
        let mut p = self.mapping;
        if self.layout.slack(self.len()) > 0 {
            p |= Protections::CANARY;
        }
        if self.crash_slot.is_some() && crash_handler::installed() {
            p |= Protections::WIPE_BEFORE_CRASH;
        }
        p
    }

    /// Borrows the data for reading; `None` once destruction is requested.
    pub(crate) fn read(&self) -> Option<Ref<'_, [u8]>> {
        if self.is_inherited() {
            return None;
        }
        self.state.read().ok()?;
        // SAFETY: our data pages, for a counted reader (readers only read).
        if unsafe {
            self.seal
                .begin(self.data_pages(), self.layout.data_pages, Access::ReadOnly)
        }
        .is_err()
        {
            if self.state.release_read() {
                self.finish_destroy();
            }
            return None;
        }
        let len = self.len();
        let ptr = NonNull::slice_from_raw_parts(self.data_ptr(len), len);
        Some(Ref::new(ptr, self))
    }

    /// Borrows the data for writing.
    ///
    /// Fails with [`Error::Destroyed`] once destruction is requested,
    /// [`Error::Immutable`] when frozen, [`Error::Busy`] while borrowed.
    pub(crate) fn write(&self) -> Result<RefMut<'_, [u8]>> {
        self.begin_write()?;
        if self.is_frozen() {
            self.end_write();
            return Err(Error::Immutable);
        }
        let len = self.len();
        let ptr = NonNull::slice_from_raw_parts(self.data_ptr(len), len);
        Ok(RefMut::new(ptr, self))
    }

    /// Makes the data pages read-only (`true`) or writable (`false`).
    pub(crate) fn set_frozen(&self, frozen: bool) -> Result<()> {
        self.begin_write()?;
        let mut result = Ok(());
        if let Some(place) = self.compact.as_ref().filter(|_| self.is_frozen() != frozen) {
            match slab::move_to(place.get(), self.len(), frozen) {
                Ok((to, damaged)) => {
                    place.set(to);
                    self.frozen.store(frozen, Ordering::Release);
                    if let Some(c) = damaged {
                        self.end_write();
                        corruption::fatal(c);
                    }
                }
                Err(e) => result = Err(e),
            }
        } else if self.is_frozen() != frozen {
            let access = if frozen {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            };
            // SAFETY: the data pages are inside our mapping, and we hold the
            // exclusive borrow, so no RefMut exists that could write to pages
            // made read-only.
            result = unsafe { Os::protect(self.data_pages(), self.layout.data_pages, access) };
            if result.is_ok() {
                self.frozen.store(frozen, Ordering::Release);
            }
        }
        self.end_write();
        result
    }

    /// Shortens the data to its first `new_len` bytes, moving them right so
    /// they end at the trailing guard page, and fills the freed space with
    /// canary. Used by constructors that read an unknown amount.
    pub(crate) fn shrink_to_prefix(&self, new_len: usize) -> Result<()> {
        if let Some(place) = &self.compact {
            return self.shrink_compact(place, new_len);
        }
        let mut all = self.write_all_pages()?;
        let old_len = self.len();
        if new_len == 0 || new_len > old_len {
            drop(all);
            return Err(Error::OutOfRange {
                offset: 0,
                len: new_len,
                size: old_len,
            });
        }
        let old_start = self.layout.slack(old_len);
        let new_start = self.layout.slack(new_len);
        all.copy_within(old_start..old_start + new_len, new_start);
        canary::write(&mut all[..new_start], self.canary);
        self.len.store(new_len, Ordering::Release);
        Ok(())
    }

    /// [`Region::shrink_to_prefix`] for a compact region: the data moves to
    /// the end of its slot, the slack becomes canary again.
    fn shrink_compact(&self, place: &Place, new_len: usize) -> Result<()> {
        let mut data = self.write()?;
        let old_len = data.len();
        if new_len == 0 || new_len > old_len {
            drop(data);
            return Err(Error::OutOfRange {
                offset: 0,
                len: new_len,
                size: old_len,
            });
        }
        data.copy_within(0..new_len, old_len - new_len);
        drop(data);
        // The exclusive borrow again, for the slack before the data.
        self.begin_write()?;
        slab::refill_slack(place.get(), new_len);
        self.len.store(new_len, Ordering::Release);
        self.end_write();
        Ok(())
    }

    /// Requests destruction. Done at once when nothing is borrowed, else when
    /// the last borrow is released. A corrupted canary aborts the process
    /// after every other buffer is wiped.
    pub(crate) fn destroy(&self) {
        if self.state.request_destroy() || self.revoke_lease_after_request() {
            self.finish_destroy();
        }
    }

    /// As [`Region::destroy`], but a corrupted canary is returned rather than
    /// acted on, so that a purge can wipe everything else first.
    pub(crate) fn destroy_collecting(&self) -> Option<CanaryCorruption> {
        if self.state.request_destroy() || self.revoke_lease_after_request() {
            let result = self.wipe_and_unmap().err();
            super::lock_wait::notify();
            result
        } else {
            None
        }
    }

    /// Starts or keeps the owner's lease (see `lease`): a shared borrow kept
    /// across [`Region::read_leased`] calls until [`Region::end_lease`], or
    /// until a purge or destroy takes it back. Whether a lease is held.
    /// None is given for a region sealed between uses (its pages must close
    /// after each use), or one that is destroyed or inherited.
    pub(crate) fn lease(&self) -> bool {
        if self.lease.is_held() {
            return true;
        }
        if self.is_inherited() || self.seal.is_on() || self.state.read().is_err() {
            return false;
        }
        let len = self.len();
        self.leased_len.store(len, Ordering::Relaxed);
        self.leased_data
            .store(self.data_ptr(len).as_ptr(), Ordering::Relaxed);
        if self.lease.hold(lease_barrier_ready()) {
            // A destroy that requested destruction before this lease was
            // held may have found no lease to revoke: look, after a fence
            // that pairs with the one in revoke_lease_after_request (at
            // least one side sees the other), and let the lease go.
            fence(Ordering::SeqCst);
            if self.state.is_gone() {
                self.end_lease();
                return false;
            }
            return true;
        }
        // Revoked before: the region is being destroyed.
        if self.state.release_read() {
            self.finish_destroy();
        }
        false
    }

    /// Copies the data from `offset` into `dst` under the owner's lease;
    /// false, copying nothing, when no lease is held (or it was revoked)
    /// or the range is out of bounds. Only the owner calls it, through
    /// `&mut` on the buffer, so there is one such read at a time.
    ///
    /// No look at the fork generation: in a forked child, the fork hook
    /// ended every lease before any other code ran (see `lease_roster`),
    /// so a lease held here is this process's own.
    #[inline]
    pub(crate) fn read_leased(&self, offset: usize, dst: &mut [u8]) -> bool {
        // Looked at before the lease: only the owner (this thread) writes
        // it, before it holds the lease, so it describes the lease this
        // read finds held, if any.
        let len = self.leased_len.load(Ordering::Relaxed);
        let in_bounds = offset.checked_add(dst.len()).is_some_and(|end| end <= len);
        in_bounds
            && self
                .lease
                .read(|| {
                    // SAFETY: the lease holds a shared borrow, so the data
                    // pages are mapped, readable (never sealed: see lease())
                    // and free of writers; a revoker waits for this read to
                    // finish before it wipes. It was taken in this process,
                    // not inherited through fork (a child's fork hook ends
                    // inherited leases before any read), so the pages are this
                    // process's own. `leased_data` and `leased_len` describe
                    // the data as it is while the lease is held (set before it
                    // was), and offset..offset + dst.len() is inside it.
                    let src = unsafe { self.leased_data.load(Ordering::Relaxed).add(offset) };
                    match dst {
                        // SAFETY: as above; one byte, without a call to memcpy.
                        [byte] => *byte = unsafe { src.read() },
                        // SAFETY: as above; `dst` is ordinary memory that
                        // cannot overlap a guarded mapping.
                        _ => unsafe { copy_out(src, dst) },
                    }
                })
                .is_some()
    }

    /// Ends the owner's lease, releasing its borrow (which may carry out a
    /// destruction requested meanwhile). The owner's call: no read under
    /// the lease is in progress.
    pub(crate) fn end_lease(&self) {
        if self.lease.release() {
            self.end_read();
        }
    }

    /// After a destroy request that was deferred to the borrows: takes the
    /// owner's lease back, if one is held, and releases its borrow; true
    /// when that was the last borrow and the caller must now destroy. In a
    /// forked child nobody reads an inherited region, so no barrier is
    /// needed there.
    fn revoke_lease_after_request(&self) -> bool {
        // Pairs with the fence in lease(): see there.
        fence(Ordering::SeqCst);
        let revoked = if self.is_inherited() {
            self.lease.release()
        } else {
            self.lease.revoke(Os::barrier)
        };
        revoked && self.state.release_read()
    }

    /// Whether the region is destroyed: wiped and unmapped, not just
    /// marked for it.
    #[cfg(test)]
    pub(crate) fn is_destroyed(&self) -> bool {
        self.state.is_destroyed()
    }

    /// Releases a shared borrow taken by [`Region::read`].
    pub(super) fn end_read(&self) {
        // SAFETY: our data pages; this reader's guard is gone.
        unsafe { self.seal.end(self.data_pages(), self.layout.data_pages) };
        if self.state.release_read() {
            self.finish_destroy();
        }
    }

    /// Releases the exclusive borrow.
    pub(super) fn end_write(&self) {
        // SAFETY: our data pages; the exclusive borrow's use of them is over.
        unsafe { self.seal.end(self.data_pages(), self.layout.data_pages) };
        if self.state.release_write() {
            self.finish_destroy();
        }
    }

    /// Takes the exclusive borrow, without opening sealed pages: fails with
    /// [`Error::Destroyed`] in a forked child or once destruction is
    /// requested, [`Error::Busy`] while borrowed.
    fn claim_write(&self) -> Result<()> {
        if self.is_inherited() {
            return Err(Error::Destroyed);
        }
        self.state.write().map_err(|r| match r {
            Refused::Gone => Error::Destroyed,
            Refused::Busy => Error::Busy,
        })
    }

    /// The access the data pages have when open: read-only when frozen.
    fn open_access(&self) -> Access {
        if self.is_frozen() {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        }
    }

    fn begin_write(&self) -> Result<()> {
        self.claim_write()?;
        // SAFETY: our data pages, under the exclusive borrow.
        let opened = unsafe {
            self.seal.begin(
                self.data_pages(),
                self.layout.data_pages,
                self.open_access(),
            )
        };
        if let Err(e) = opened {
            if self.state.release_write() {
                self.finish_destroy();
            }
            return Err(e);
        }
        Ok(())
    }

    /// Whether the data pages are sealed (`PROT_NONE`) while no guard is
    /// held.
    pub(crate) fn is_sealed_between_uses(&self) -> bool {
        self.seal.is_on()
    }

    /// Turns "no access between uses" on or off. Fails with
    /// [`Error::Destroyed`] once destruction is requested, [`Error::Busy`]
    /// while borrowed.
    pub(crate) fn set_sealed_between_uses(&self, on: bool) -> Result<()> {
        if self.is_inherited() {
            return Err(Error::Destroyed);
        }
        if self.compact.is_some() {
            // Never sealed: its pages are shared with other secrets.
            return if on {
                Err(Error::CompactBuffer)
            } else {
                Ok(())
            };
        }
        self.claim_write()?;
        // SAFETY: our data pages; we hold the exclusive borrow without a
        // guard, so no reference to them exists.
        let result = unsafe {
            self.seal.set(
                on,
                self.data_pages(),
                self.layout.data_pages,
                self.open_access(),
            )
        };
        if self.state.release_write() {
            self.finish_destroy();
        }
        result
    }

    /// A writable view of all the data pages, canary included.
    fn write_all_pages(&self) -> Result<RefMut<'_, [u8]>> {
        self.begin_write()?;
        if self.is_frozen() {
            self.end_write();
            return Err(Error::Immutable);
        }
        let ptr = NonNull::slice_from_raw_parts(self.data_pages(), self.layout.data_pages);
        Ok(RefMut::new(ptr, self))
    }

    fn finish_destroy(&self) {
        let result = self.wipe_and_unmap();
        super::lock_wait::notify();
        if let Err(corrupted) = result {
            corruption::fatal(corrupted);
        }
    }

    /// Wipes the data, checks the canary, then unmaps the mapping or, for an
    /// intact region, wipes the canary too and parks it as a spare (sealed
    /// off with `PROT_NONE`) when the spares have room for its pages.
    /// Called exactly once, by whoever won the right to destroy in the
    /// BorrowState.
    fn wipe_and_unmap(&self) -> std::result::Result<(), CanaryCorruption> {
        if self.is_inherited() {
            self.release_inherited();
            return Ok(());
        }
        let len = self.len();
        if let Some(place) = &self.compact {
            return slab::free(place.get(), len);
        }
        let pages = self.data_pages();
        let size = self.layout.data_pages;
        let writable = (!self.is_frozen() && !self.seal.is_on())
            // SAFETY: our data pages; destruction has been claimed, so no
            // borrow exists and none can be taken any more.
            || unsafe { Os::protect(pages, size, Access::ReadWrite) }.is_ok();
        let slack = self.layout.slack(len);
        let checked = if writable {
            // SAFETY: the pages are mapped and writable; having claimed
            // destruction we hold the only access to them.
            let all = unsafe { std::slice::from_raw_parts_mut(pages.as_ptr(), size) };
            let (canary_bytes, data) = all.split_at_mut(slack);
            wipe::wipe_bytes(data);
            let checked = self.check_canary(canary_bytes);
            if checked.is_ok() {
                // Not secret, but a spare must come back zero-filled.
                wipe::wipe_bytes(canary_bytes);
            }
            checked
        } else {
            // SAFETY: the pages are mapped and readable; no one else uses them.
            let all = unsafe { std::slice::from_raw_parts(pages.as_ptr(), size) };
            self.check_canary(&all[..slack])
        };
        if let Some(slot) = self.crash_slot {
            crash_table::remove(slot);
        }
        let page = self.layout.page;
        // SAFETY: our mapping (data pages between two guards), wiped whole
        // (the canary is checked intact, and zeroed, only when the pages are
        // writable); nothing can reach it any more because the BorrowState
        // says destroyed, and the crash handler no longer lists it.
        let parked = writable
            && checked.is_ok()
            && unsafe { spares::park(self.base, page, size, self.mapping, self.epoch) };
        if !parked {
            // SAFETY: exactly the mapping made in new(), unreachable as above.
            unsafe { Os::free(self.base, self.layout.total()) };
            count_own(size, false);
        }
        checked
    }

    /// Releases a region inherited through `fork` without touching its data
    /// pages. With [`Protections::ZEROED_IN_FORKS`] the whole mapping is
    /// this process's (zero-filled, unlocked) and is unmapped. Otherwise the
    /// data pages were never copied and something else may be mapped there
    /// now: nothing is unmapped (the two guard pages left hold no memory).
    fn release_inherited(&self) {
        if self.compact.is_some() {
            // The slab it was in is the parent's: the slab layer forgets it.
            return;
        }
        if let Some(slot) = self.crash_slot {
            crash_table::remove(slot);
        }
        if self.mapping.contains(Protections::ZEROED_IN_FORKS) {
            // SAFETY: the inherited copy of the mapping made in new(), whole;
            // no borrow exists (destruction was claimed) and nothing else in
            // this process knows of it.
            unsafe { Os::free(self.base, self.layout.total()) };
        }
        count_own(self.layout.data_pages, false);
    }

    /// Whether the canary in `slack` is intact; the corruption otherwise.
    /// After the exit wipe (see `mem::wipe_before_exit`) every canary is
    /// zero and none is checked.
    fn check_canary(&self, slack: &[u8]) -> std::result::Result<(), CanaryCorruption> {
        if super::wiped_before_exit() || canary::intact(slack, self.canary) {
            return Ok(());
        }
        let len = self.len();
        Err(CanaryCorruption {
            address: self.base.as_ptr() as usize + self.layout.data_offset(len),
            len,
            slack: slack.len(),
            damaged: canary::damaged(slack, self.canary),
        })
    }

    fn data_pages(&self) -> NonNull<u8> {
        Region::data_pages_of(self.base, self.layout)
    }

    fn data_pages_of(base: NonNull<u8>, layout: Layout) -> NonNull<u8> {
        // SAFETY: the offset is inside the mapping of layout.total() bytes
        // that starts at base.
        unsafe { base.add(layout.data_pages_offset()) }
    }

    #[inline]
    fn data_ptr(&self, len: usize) -> NonNull<u8> {
        if let Some(place) = &self.compact {
            let slot = place.get();
            // SAFETY: the last `len` bytes of the slot (len <= slot size),
            // inside the slab's data page.
            return unsafe { slot.start.add(slot.size - len) };
        }
        // SAFETY: data_offset(len) + len ends at the trailing guard page, so
        // the offset is inside the mapping.
        unsafe { self.base.add(self.layout.data_offset(len)) }
    }
}

/// The copy of a leased read longer than a byte, out of line (a call
/// costs such a read little beside its copy), so that the 1-byte read
/// jumps over no call: one taken branch less on that path
/// (`stream_small_reads/read_buf_1`, BENCHMARKS.md).
///
/// # Safety
/// `src..src + dst.len()` must be readable, and not overlap `dst`.
#[inline(never)]
unsafe fn copy_out(src: *const u8, dst: &mut [u8]) {
    // SAFETY: the caller's guarantee.
    unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
}

impl Drop for Region {
    fn drop(&mut self) {
        // Normally the owner destroyed it already; this is the backstop.
        let last = self.lease.release() && self.state.release_read();
        if last || self.state.request_destroy() {
            if let Err(c) = self.wipe_and_unmap() {
                corruption::fatal(c);
            }
        }
    }
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("len", &self.len())
            .field("frozen", &self.is_frozen())
            .field("alive", &self.is_alive())
            .finish_non_exhaustive()
    }
}

/// Whether the platform's process-wide barrier is ready in this process
/// (readied once per process, and again after `fork`); leases taken without
/// it use a full fence on both sides.
fn lease_barrier_ready() -> bool {
    use std::sync::atomic::AtomicU64;
    /// The fork generation, plus one, in which the barrier was readied
    /// (positive) or refused (bitwise negated); 0 before the first try.
    static READY: AtomicU64 = AtomicU64::new(0);
    let generation = fork::generation().wrapping_add(1);
    let seen = READY.load(Ordering::Acquire);
    if seen == generation {
        return true;
    }
    if seen == !generation {
        return false;
    }
    let ready = Os::prepare_barrier();
    READY.store(
        if ready { generation } else { !generation },
        Ordering::Release,
    );
    ready
}
