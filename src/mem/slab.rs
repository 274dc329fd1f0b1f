//! Compact slabs: small secrets sharing locked pages.
//!
//! # Why
//!
//! A buffer of its own costs at least one locked page and three mappings
//! (guard, data, guard). Under a 64 KiB `RLIMIT_MEMLOCK` that is 16 secrets;
//! with `vm.max_map_count` 65530 about 32,000. Collectors that hold
//! thousands of credentials (Telegraf, via Go memguard #148) run out. A
//! compact secret takes a slot of a shared page instead.
//!
//! # Where a buffer goes (`Region::new`)
//!
//! - More than [`max_len`] bytes (`page / COMPACT_MAX_FRACTION`: 256 bytes
//!   with 4 KiB pages): always a mapping of its own.
//! - [`CompactMode::Never`](crate::CompactMode::Never): always its own,
//!   exactly as before (including `Error::MemoryLock` at the limit).
//! - [`CompactMode::Always`](crate::CompactMode::Always): a compact slot.
//! - [`CompactMode::Automatic`](crate::CompactMode::Automatic) (default):
//!   its own mapping (a spare if one is parked) while the data pages of all
//!   own mappings, this one included, stay within the *own-page budget* (a
//!   quarter of the lock limit; unlimited when the limit is) and the system
//!   grants it; a compact slot when the budget is used up or the system
//!   refuses the mapping with `MemoryLock` or `OutOfMappings`. The three
//!   quarters left are what compact slabs can lock. When the slab cannot get
//!   a page either, the caller gets the slab's `MemoryLock` (or
//!   `OutOfMappings`): the same error as before, one page requested.
//!
//! # Slab layout
//!
//! Every slab is one mapping made through the platform layer
//! (`Pages::allocate`, `protect`, `lock`, `advise`, `free`: whatever backend
//! the platform layer uses applies to slabs too), one data page between two
//! guard pages:
//!
//! ```text
//! [guard][C|slot 0|C|slot 1|C| ... |C|slot n-1|C| tail ][guard]
//! ```
//!
//! - Slots of one slab all have the same size class (16, 32, 64, ...
//!   [`max_len`] bytes, the buffer length rounded up to a power of two) and
//!   one access class: writable slabs and frozen (read-only) slabs are never
//!   mixed, so a frozen secret faults on write like a frozen buffer of its
//!   own.
//! - `C` is an 8-byte canary: before and after each slot (a slot's trailing
//!   canary is the next slot's leading one). Byte `o` of the page holds byte
//!   `o` of the process's random canary pattern, so the whole page starts out
//!   as canary; a free slot is all canary too. A secret's data is
//!   right-aligned in its slot, against the trailing canary (a one-byte
//!   overflow lands in it), and the slack before it stays canary.
//! - Freeing a slot checks, in constant time, the canary before it, its
//!   slack and the canary after it; then wipes the data and writes the
//!   canary back. A damaged canary is reported and the process aborts after
//!   every other buffer is wiped, as for buffers of their own. `purge`
//!   frees every slot this way and then checks every canary of every slab
//!   left (slots whose destruction waits for a guard).
//! - A slab's data page is locked, kept out of core dumps and out of forked
//!   children (`Pages::advise`), and in the crash table (wiped before a
//!   crash). A slab whose slots are all free is unmapped, except that one
//!   empty slab per class is kept while the spare limit is not zero; purge
//!   unmaps all empty slabs.
//! - `freeze` moves a compact secret into a slot of a frozen slab of its
//!   size class; the old slot is freed (checked and wiped). `melt` moves it
//!   back. A freeze or melt costs a slot copy and a canary check, and can
//!   fail with `MemoryLock` when a new slab is needed. `Enclave::open`
//!   (decrypt into a writable slot, freeze) holds no writable slot once it
//!   returns.
//!
//! # The alias of a frozen slab
//!
//! Where the platform layer can alias memory (`Pages::allocate_aliased`:
//! Linux), a frozen slab's data page is mapped twice: the read-only view
//! between the guard pages, which is the only one slots and secrets point
//! into, and a writable view elsewhere (the *alias*, `Slab::writer`),
//! through which a slot is filled on freeze and wiped on free. So a frozen
//! secret costs no system call at all: not the two `mprotect` pairs (page
//! writable for the copy, read-only again; the same around the wipe) that
//! a slab without an alias pays under the slab lock. The alias is never
//! handed out (no `Slot`, region or `CanaryCorruption` holds its address);
//! both views are out of core dumps and absent in forked children.
//!
//! With secret memory the alias is a second mapping of the same piece of
//! the secret file, and the kernel counts every such mapping against
//! `RLIMIT_MEMLOCK`: a frozen slab then costs two pages of lock budget.
//! When the budget runs out (a new slab refused with `MemoryLock`), every
//! alias that costs budget is dropped and no more are made
//! (`Slabs::no_alias`); the mapping is tried again, and from then on frozen
//! slabs pay the `mprotect` pairs. So the number of secrets that fit under
//! a limit is what it was without aliases, and below the limit frozen
//! secrets are as cheap as writable ones. With anonymous memory the frozen
//! slabs come from `memfd_create` pages: locked once, through the
//! read-only view (the alias costs no budget), and absent in forked
//! children (`MADV_WIPEONFORK` does not apply to shared mappings).
//!
//! # Borrows and purge
//!
//! A compact secret is a `Region` like any other: the same `BorrowState`
//! word, the same registry entry, the same deferred destruction (a borrowed
//! secret is freed when its last guard drops; nothing waits). Its slot
//! changes only under the exclusive borrow (freeze, melt), and a guard reads
//! the slot address after taking its borrow, so no guard ever sees a slot
//! that moves or is freed under it. The slot state itself (free or taken,
//! which region) is changed only under the slab lock, which is never held
//! while a guard is taken or dropped; see `slab_loom.rs` for a model of the
//! slot state under loom.
//!
//! # Locking
//!
//! One process-wide mutex guards every slab (the free lists, the slot
//! state, the protection changes of frozen pages). It is held for the
//! bookkeeping, a 32-byte copy or wipe and, for frozen slabs without an
//! alias, two `mprotect` calls; never while a guard is taken or dropped, so readers of
//! compact secrets never contend on it (they touch only their region's
//! `BorrowState`). Allocation and free from many threads do serialise on it:
//! `benches/locked_buffer.rs` `compact/open_1000_x8` measures 8 threads
//! against one-page buffers (which take no such lock but make system
//! calls); per-thread or per-class slab lists were not tried.
//!
//! # The opt-in wait
//!
//! When even a new slab cannot be locked, the caller gets the error;
//! `Enclave::open_timeout` and `LockedBuffer::new_timeout` wait for a free
//! instead (see `lock_wait`).
//!
//! # Fork
//!
//! Slab pages are zero-filled (or absent: secret memory, and aliased frozen
//! slabs with both their views) in a forked child and not locked there. The first slab operation in a child forgets every inherited slab
//! (unmapping it where it was zero-filled) and starts anew; inherited
//! compact regions are released without touching their slot, like inherited
//! regions of their own. The slab lock is held across `fork`.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use super::corruption::CanaryCorruption;
use super::protections::Protections;
use super::sys::{Access, Aliased, Os, Pages};
use super::{canary, crash_table, fork, spares, wipe};
use crate::error::{Error, Result};

/// Bytes of canary before each slot (and after the last).
pub(crate) const CANARY: usize = 8;
/// The smallest slot.
const MIN_SLOT: usize = 16;
/// Size classes: 16, 32, ... up to [`max_len`] (at most this many).
const CLASSES: usize = 12;

/// A compact buffer is at most `page / COMPACT_MAX_FRACTION` bytes.
pub const COMPACT_MAX_FRACTION: usize = 16;

/// The longest buffer that may be compact with pages of `page` bytes.
pub(crate) fn max_len(page: usize) -> usize {
    (page / COMPACT_MAX_FRACTION).max(MIN_SLOT)
}

/// Where a compact secret is: its slab, its slot there, the slot's first
/// byte (after the leading canary) and the slot's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) slab: usize,
    pub(crate) index: usize,
    pub(crate) start: NonNull<u8>,
    pub(crate) size: usize,
}

/// What a compact secret in `slot` gets: what the system gave its slab,
/// without the guard pages right against the data (the slab has them, the
/// slot does not), with the canaries, [`Protections::COMPACT`], and the wipe
/// before a crash when the slab is in the crash table and the hook is in.
pub(crate) fn protections_of(slot: Slot) -> Protections {
    let slabs = lock();
    match slabs.all.get(slot.slab) {
        Some(Some(s)) => {
            let mut p = s.mapping.without(Protections::GUARD_PAGES)
                | Protections::CANARY
                | Protections::COMPACT;
            if s.crash_slot.is_some() && super::crash_handler::installed() {
                p |= Protections::WIPE_BEFORE_CRASH;
            }
            p
        }
        _ => Protections::empty(),
    }
}

/// The writable second view of a frozen slab's data page
/// (`Pages::allocate_aliased`): slots are filled and wiped through it, so
/// the view the secrets are read through stays read-only with no
/// `mprotect` pair per fill and wipe. Never handed out: no `Slot`, no
/// region and no error value holds its address.
#[derive(Clone, Copy)]
struct Alias {
    page: NonNull<u8>,
}

struct Slab {
    base: NonNull<u8>,
    data: NonNull<u8>,
    /// Frozen slabs where the system can alias memory: the writable view,
    /// until it is dropped to give its lock budget back.
    alias: Option<Alias>,
    /// Made by `Pages::allocate_aliased` (freed by `free_aliased`, with or
    /// without its alias).
    aliased: bool,
    size: usize,
    frozen: bool,
    free: Vec<usize>,
    slots: usize,
    mapping: Protections,
    crash_slot: Option<usize>,
}

impl Slab {
    fn stride(&self) -> usize {
        self.size + CANARY
    }

    fn slot_start(&self, index: usize) -> NonNull<u8> {
        // SAFETY: CANARY + index * stride + size + CANARY <= page for every
        // index below `slots`, so the offset is inside the data page.
        unsafe { self.data.add(CANARY + index * self.stride()) }
    }

    fn offset_of(&self, index: usize) -> usize {
        CANARY + index * self.stride()
    }

    /// The view of the data page that is written: the alias where there
    /// is one, else the data page itself (which a frozen slab must make
    /// writable first).
    fn writer(&self) -> NonNull<u8> {
        self.alias.map_or(self.data, |a| a.page)
    }
}

struct Slabs {
    all: Vec<Option<Slab>>,
    unused: Vec<usize>,
    /// Per access class (writable, frozen) and size class: slabs with a
    /// free slot.
    partial: [[Vec<usize>; CLASSES]; 2],
    /// Empty slabs kept.
    kept: usize,
    forks: u64,
    /// Slots taken.
    used: usize,
    /// Set when the lock budget ran out while aliases held some of it:
    /// from then on frozen slabs are made without one (capacity before
    /// speed at the limit).
    no_alias: bool,
}

// SAFETY: the raw pointers name slab mappings reachable only through the
// SLABS list, under its mutex.
unsafe impl Send for Slabs {}

static SLABS: Mutex<Slabs> = Mutex::new(Slabs {
    all: Vec::new(),
    unused: Vec::new(),
    partial: [const { [const { Vec::new() }; CLASSES] }; 2],
    kept: 0,
    forks: 0,
    used: 0,
    no_alias: false,
});

thread_local! {
    static HELD: fork::Held<Slabs> = const { Cell::new(None) };
}

fn lock() -> MutexGuard<'static, Slabs> {
    static FORK_SAFE: Once = Once::new();
    FORK_SAFE.call_once(|| {
        fork::hold_across_fork(
            fork::ForkLock::Slabs,
            || fork::take_into(&HELD, &SLABS),
            || fork::give_back_from(&HELD),
        );
    });
    let mut slabs = SLABS.lock().unwrap_or_else(PoisonError::into_inner);
    if slabs.forks != fork::generation() {
        slabs.forget_inherited();
    }
    slabs
}

/// The size class of a `len`-byte buffer: its slot size and class number.
fn class_of(len: usize) -> (usize, usize) {
    let size = len.next_power_of_two().max(MIN_SLOT);
    (size, (size / MIN_SLOT).trailing_zeros() as usize)
}

/// The canary pattern for this page size.
fn pattern() -> Result<&'static [u8]> {
    canary::pattern(Os::page_size())
}

/// Takes a writable slot for `len` bytes (at most [`max_len`]): the data
/// (the last `len` bytes of the slot) zero-filled, the slack canary.
pub(crate) fn allocate(len: usize) -> Result<Slot> {
    debug_assert!(len > 0 && len <= max_len(Os::page_size()));
    let pattern = pattern()?;
    let mut slabs = lock();
    let slot = slabs.take(len, false, pattern)?;
    // SAFETY: a slot of a writable slab that was free a moment ago; nothing
    // else refers to it, and the slab lock is held.
    let data = unsafe { data_of(slot, len) };
    wipe::wipe_bytes(data);
    Ok(slot)
}

/// Moves the `len`-byte secret in `from` into a slot of the other access
/// class (`frozen`: a read-only slab), and frees `from`. The caller holds
/// the exclusive borrow of the secret. On error nothing has changed; a
/// damaged canary around `from` is returned as the second element.
pub(crate) fn move_to(
    from: Slot,
    len: usize,
    frozen: bool,
) -> Result<(Slot, Option<CanaryCorruption>)> {
    let pattern = pattern()?;
    let mut slabs = lock();
    let to = slabs.take(len, frozen, pattern)?;
    let page = Os::page_size();
    let Some(slab) = slabs.all[to.slab].as_ref() else {
        unreachable!("a slot just taken is in a mapped slab")
    };
    let (data, writer) = (slab.data, slab.writer());
    // A frozen slab without an alias is made writable for the copy.
    let window = frozen && slab.alias.is_none();
    if window {
        // SAFETY: our slab's data page; we hold the slab lock, and the slots
        // of a frozen slab are only read by others, so making it writable
        // for a moment takes nothing away from them.
        if let Err(e) = unsafe { Os::protect(data, page, Access::ReadWrite) } {
            // Nothing was written to `to`: it is canary, and goes back.
            let _ = slabs.give_back(to, len, pattern);
            return Err(e);
        }
    }
    let at = to.start.as_ptr() as usize - data.as_ptr() as usize + to.size - len;
    // SAFETY: `from` holds the secret (exclusive borrow held by the
    // caller); `to` was free and is ours; both are `len` bytes at the end of
    // slots of the same size class, in pages that are readable. `to` is
    // written through the slab's writable view: its alias, or the data page
    // made writable above; `at + len` is within the page.
    unsafe {
        std::ptr::copy_nonoverlapping(data_of(from, len).as_ptr(), writer.as_ptr().add(at), len);
    }
    if window {
        // SAFETY: as above; back to read-only.
        unsafe { Os::protect(data, page, Access::ReadOnly) }?;
    }
    let damaged = slabs.give_back(from, len, pattern).err();
    Ok((to, damaged))
}

/// Frees a slot holding `len` bytes: checks its canaries (constant time),
/// wipes it and writes the canary back. A damaged canary is returned (the
/// slot is freed either way).
pub(crate) fn free(slot: Slot, len: usize) -> std::result::Result<(), CanaryCorruption> {
    let Ok(pattern) = pattern() else {
        // The pattern exists: every slot was made with it.
        return Ok(());
    };
    lock().give_back(slot, len, pattern)
}

/// Rewrites the slack of a slot after its data shrank from `old_len` to
/// `new_len` bytes and was moved to the end of the slot: canary again.
/// The caller holds the exclusive borrow; the slot is writable.
pub(crate) fn refill_slack(slot: Slot, new_len: usize) {
    let Ok(pattern) = pattern() else { return };
    let slabs = lock();
    let Some(Some(slab)) = slabs.all.get(slot.slab) else {
        return;
    };
    let off = slab.offset_of(slot.index);
    let slack = slot.size - new_len;
    // SAFETY: the slack of our slot, writable (the caller checked it is not
    // frozen) and reached by nobody else: the exclusive borrow is held.
    let bytes = unsafe { std::slice::from_raw_parts_mut(slot.start.as_ptr(), slack) };
    bytes.copy_from_slice(&pattern[off..off + slack]);
}

/// Unmaps every empty slab and checks the canaries of every slab left;
/// part of a purge. Returns the damage found.
pub(crate) fn purge() -> Vec<CanaryCorruption> {
    let Ok(pattern) = pattern() else {
        return Vec::new();
    };
    let mut slabs = lock();
    let ids: Vec<usize> = (0..slabs.all.len()).collect();
    let mut damaged = Vec::new();
    for id in ids {
        let empty = match &slabs.all[id] {
            Some(s) => s.free.len() == s.slots,
            None => continue,
        };
        if empty {
            slabs.release(id);
        } else if let Some(Some(s)) = slabs.all.get(id) {
            damaged.extend(check_gaps(s, pattern));
        }
    }
    slabs.kept = 0;
    damaged
}

/// Slabs mapped now and slots taken now (for tests and `memguard doctor`).
pub(crate) fn usage() -> (usize, usize) {
    let slabs = lock();
    let mapped = slabs.all.iter().flatten().count();
    (mapped, slabs.used)
}

/// How many `len`-byte compact secrets one slab page holds.
pub(crate) fn slots_per_page(len: usize, page: usize) -> usize {
    let (size, _) = class_of(len);
    (page - CANARY) / (size + CANARY)
}

/// The canaries between the slots of `s` (not the slack of taken slots,
/// whose length only their regions know): every gap checked in constant
/// time.
fn check_gaps(s: &Slab, pattern: &[u8]) -> Option<CanaryCorruption> {
    let page = pattern.len();
    // SAFETY: our slab's data page, readable (writable or read-only) and
    // mapped while the slab lock is held; we only read it.
    let all = unsafe { std::slice::from_raw_parts(s.data.as_ptr(), page) };
    let mut ok = true;
    let mut bad = 0;
    for i in 0..=s.slots {
        let at = i * s.stride();
        let gap = &all[at..at + CANARY];
        let good = canary::intact(gap, &pattern[at..at + CANARY]);
        ok &= good;
        bad += canary::damaged(gap, &pattern[at..at + CANARY]);
    }
    if ok {
        None
    } else {
        Some(CanaryCorruption {
            address: s.data.as_ptr() as usize,
            len: s.size,
            slack: (s.slots + 1) * CANARY,
            damaged: bad,
        })
    }
}

/// A new slab's mapping: its base, its data page, its alias if it has one,
/// and what the system gave it.
type SetUp = (NonNull<u8>, NonNull<u8>, Option<Alias>, Protections);

/// A new slab's mapping as before aliases: `total` bytes, the data page
/// writable, locked, advised, every byte canary, read-only if `frozen`.
/// Returns the base, the data page, no alias, and what the system gave.
fn set_up(total: usize, page: usize, frozen: bool, pattern: &[u8]) -> Result<SetUp> {
    let base = Os::allocate(total)?;
    // SAFETY: one page into the mapping we just made (three pages long).
    let data = unsafe { base.add(page) };
    // SAFETY: the data page of our new mapping; no reference to it yet.
    let set_up = unsafe {
        Os::protect(data, page, Access::ReadWrite).and_then(|()| {
            let locked = Os::lock(data, page)?;
            Ok(Os::BASELINE | locked | Os::advise(data, page)?)
        })
    };
    let mapping = match set_up {
        Ok(m) => m,
        Err(e) => {
            // SAFETY: exactly the mapping allocate() returned, never shared.
            unsafe { Os::free(base, total) };
            return Err(e);
        }
    };
    // SAFETY: the data page, writable, ours alone.
    let bytes = unsafe { std::slice::from_raw_parts_mut(data.as_ptr(), page) };
    canary::write(bytes, pattern);
    if frozen {
        // SAFETY: as above; nothing refers to the page.
        if let Err(e) = unsafe { Os::protect(data, page, Access::ReadOnly) } {
            // SAFETY: exactly the mapping allocate() returned, never shared.
            unsafe { Os::free(base, total) };
            return Err(e);
        }
    }
    Ok((base, data, None, mapping))
}

/// A new frozen slab's aliased mapping: every byte canary (written through
/// the alias), the data page read-only and locked. As [`set_up`] returns.
fn set_up_aliased(a: Aliased, page: usize, pattern: &[u8]) -> Result<SetUp> {
    // SAFETY: one page into the mapping just made (three pages long).
    let data = unsafe { a.base.add(page) };
    // SAFETY: the alias of our new mapping: one page, writable, ours alone.
    let bytes = unsafe { std::slice::from_raw_parts_mut(a.alias.as_ptr(), page) };
    canary::write(bytes, pattern);
    // SAFETY: the data page of our new mapping; no reference to it.
    let set_up = unsafe {
        Os::protect(data, page, Access::ReadOnly)
            .and_then(|()| Os::lock(data, page))
            .map(|locked| Os::BASELINE | locked | a.advised)
    };
    match set_up {
        Ok(mapping) => Ok((a.base, data, Some(Alias { page: a.alias }), mapping)),
        Err(e) => {
            // SAFETY: exactly the mapping allocate_aliased() returned, never
            // shared.
            unsafe { Os::free_aliased(a.base, 3 * page) };
            Err(e)
        }
    }
}

/// The last `len` bytes of `slot`, as a slice.
///
/// # Safety
/// The slot must be taken and mapped, no other reference to its data may
/// be in use, and it must be writable if the slice is written.
#[allow(clippy::mut_from_ref)]
unsafe fn data_of<'a>(slot: Slot, len: usize) -> &'a mut [u8] {
    // SAFETY: as the caller guarantees; size - len is within the slot.
    unsafe { std::slice::from_raw_parts_mut(slot.start.as_ptr().add(slot.size - len), len) }
}

impl Slabs {
    /// A free slot of the class for `len` in a `frozen` (or writable) slab,
    /// mapping a new slab when none has room.
    fn take(&mut self, len: usize, frozen: bool, pattern: &[u8]) -> Result<Slot> {
        let (size, class) = class_of(len);
        let list = usize::from(frozen);
        let id = match self.partial[list][class].last() {
            Some(&id) => id,
            None => {
                let id = self.map(size, frozen, pattern)?;
                self.partial[list][class].push(id);
                id
            }
        };
        let Some(slab) = self.all[id].as_mut() else {
            unreachable!("a listed slab is mapped")
        };
        let was_empty = slab.free.len() == slab.slots;
        let Some(index) = slab.free.pop() else {
            unreachable!("a listed slab has a free slot")
        };
        if slab.free.is_empty() {
            self.partial[list][class].pop();
        }
        if was_empty && self.kept > 0 {
            self.kept -= 1;
        }
        self.used += 1;
        Ok(Slot {
            slab: id,
            index,
            start: slab.slot_start(index),
            size,
        })
    }

    /// Maps, locks and advises a new slab; every byte of it canary. When
    /// the lock budget runs out while aliases of frozen slabs hold some of
    /// it, they are dropped (those slabs go back to an `mprotect` pair per
    /// fill and wipe) and the mapping is tried once more.
    fn map(&mut self, size: usize, frozen: bool, pattern: &[u8]) -> Result<usize> {
        match self.map_once(size, frozen, pattern) {
            Err(Error::MemoryLock { .. }) if self.drop_locked_aliases() => {
                self.map_once(size, frozen, pattern)
            }
            other => other,
        }
    }

    /// Drops every alias that costs lock budget, and makes no more; whether
    /// that can win budget back (only the first time, where aliases cost
    /// lock budget at all).
    fn drop_locked_aliases(&mut self) -> bool {
        if self.no_alias || !Os::alias_costs_lock() {
            return false;
        }
        self.no_alias = true;
        let page = Os::page_size();
        for slab in self.all.iter_mut().flatten() {
            if slab.alias.take().is_some() {
                // SAFETY: the slab's whole mapping, from allocate_aliased;
                // with its alias gone from the slab, nothing reaches that
                // view any more (the slab lock is held).
                unsafe { Os::drop_alias(slab.base, 3 * page) };
            }
        }
        true
    }

    fn map_once(&mut self, size: usize, frozen: bool, pattern: &[u8]) -> Result<usize> {
        let page = Os::page_size();
        let total = 3 * page;
        let aliased = if frozen && !self.no_alias {
            Os::allocate_aliased(total)?
        } else {
            None
        };
        let (base, data, alias, mapping) = match aliased {
            Some(a) => set_up_aliased(a, page, pattern)?,
            None => set_up(total, page, frozen, pattern)?,
        };
        let stride = size + CANARY;
        let slots = (page - CANARY) / stride;
        let slab = Slab {
            base,
            data,
            alias,
            aliased: alias.is_some(),
            size,
            frozen,
            free: (0..slots).rev().collect(),
            slots,
            mapping,
            crash_slot: crash_table::add(data, page),
        };
        let id = match self.unused.pop() {
            Some(id) => {
                self.all[id] = Some(slab);
                id
            }
            None => {
                self.all.push(Some(slab));
                self.all.len() - 1
            }
        };
        self.kept += 1; // empty until its first slot is taken
        Ok(id)
    }

    /// Frees `slot` (checks, wipes, canary back); an empty slab is
    /// unmapped unless kept.
    fn give_back(
        &mut self,
        slot: Slot,
        len: usize,
        pattern: &[u8],
    ) -> std::result::Result<(), CanaryCorruption> {
        let page = Os::page_size();
        let Some(Some(slab)) = self.all.get_mut(slot.slab) else {
            return Ok(());
        };
        let frozen = slab.frozen;
        let (data, writer) = (slab.data, slab.writer());
        // A frozen slab without an alias is made writable for the wipe.
        let window = frozen && slab.alias.is_none();
        // SAFETY: our slab's data page; the slab lock is held and the slot's
        // owner has given it up (destruction claimed, or a move under the
        // exclusive borrow): readers of other slots only read.
        let writable = !window || unsafe { Os::protect(data, page, Access::ReadWrite) }.is_ok();
        let off = slab.offset_of(slot.index);
        let (lo, hi) = (off - CANARY, off + slot.size + CANARY);
        let checked = {
            // SAFETY: as above: the writable view (alias or data page, the
            // same memory) is mapped, readable, and writable when
            // `writable`; nothing else writes it now.
            let all = unsafe { std::slice::from_raw_parts_mut(writer.as_ptr(), page) };
            let data_at = off + slot.size - len;
            let before = &all[lo..data_at];
            let after = &all[off + slot.size..hi];
            let intact = canary::intact(before, &pattern[lo..data_at])
                & canary::intact(after, &pattern[off + slot.size..hi]);
            let checked = if super::wiped_before_exit() || intact {
                Ok(())
            } else {
                Err(CanaryCorruption {
                    address: data.as_ptr() as usize + data_at,
                    len,
                    slack: data_at - lo + CANARY,
                    damaged: canary::damaged(before, &pattern[lo..data_at])
                        + canary::damaged(after, &pattern[off + slot.size..hi]),
                })
            };
            if writable {
                wipe::wipe_bytes(&mut all[data_at..off + slot.size]);
                all[lo..hi].copy_from_slice(&pattern[lo..hi]);
            }
            checked
        };
        if window && writable {
            // SAFETY: as above; back to read-only. Should it fail, the page
            // stays writable: it holds only frozen secrets' copies, which
            // their own regions still treat as read-only.
            let _ = unsafe { Os::protect(data, page, Access::ReadOnly) };
        }
        let was_full = slab.free.is_empty();
        slab.free.push(slot.index);
        let empty = slab.free.len() == slab.slots;
        let class = class_of(slab.size).1;
        let list = usize::from(frozen);
        self.used -= 1;
        if was_full {
            self.partial[list][class].push(slot.slab);
        }
        if empty {
            if self.kept < CLASSES && spares::limit() > 0 {
                self.kept += 1;
            } else {
                self.release(slot.slab);
            }
        }
        checked
    }

    /// Unmaps slab `id` (its slots are all free).
    fn release(&mut self, id: usize) {
        let Some(slab) = self.all[id].take() else {
            return;
        };
        for list in self.partial.iter_mut().flatten() {
            list.retain(|&x| x != id);
        }
        self.unused.push(id);
        if let Some(c) = slab.crash_slot {
            crash_table::remove(c);
        }
        // SAFETY: our three-page mapping (its alias with it), every slot
        // free (wiped, canary only); removed from every list and from the
        // crash table, so nothing reaches it any more.
        unsafe {
            if slab.aliased {
                Os::free_aliased(slab.base, 3 * Os::page_size());
            } else {
                Os::free(slab.base, 3 * Os::page_size());
            }
        }
        super::lock_wait::notify();
    }

    /// In a forked child: every slab of the parent is dead here (zeros or
    /// absent, unlocked); forget them all.
    fn forget_inherited(&mut self) {
        for slab in std::mem::take(&mut self.all).into_iter().flatten() {
            if let Some(c) = slab.crash_slot {
                crash_table::remove(c);
            }
            if slab.mapping.contains(Protections::ZEROED_IN_FORKS) {
                // SAFETY: the child's zero-filled copy of our mapping, whole;
                // the regions that had slots in it are inherited and never
                // touch it.
                unsafe { Os::free(slab.base, 3 * Os::page_size()) };
            }
        }
        self.unused.clear();
        for list in self.partial.iter_mut().flatten() {
            list.clear();
        }
        self.kept = 0;
        self.used = 0;
        self.forks = fork::generation();
    }
}

// The slot state under every interleaving, with loom (scripts/loom.sh).
#[cfg(all(test, loom))]
#[path = "slab_loom.rs"]
mod loom_model;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_to_powers_of_two() {
        assert_eq!(class_of(1), (16, 0));
        assert_eq!(class_of(16), (16, 0));
        assert_eq!(class_of(17), (32, 1));
        assert_eq!(class_of(32), (32, 1));
        assert_eq!(class_of(256), (256, 4));
        assert!(class_of(max_len(1 << 16)).1 < CLASSES);
        assert_eq!(slots_per_page(32, 4096), 102);
        assert_eq!(max_len(4096), 256);
    }

    #[test]
    fn slots_are_distinct_zeroed_and_surrounded_by_canary() {
        let page = Os::page_size();
        let pattern = pattern().unwrap();
        let slots: Vec<Slot> = (0..300).map(|_| allocate(32).unwrap()).collect();
        for (i, a) in slots.iter().enumerate() {
            for b in &slots[i + 1..] {
                assert_ne!(a.start, b.start);
            }
            // SAFETY: our slot, not shared.
            let data = unsafe { data_of(*a, 32) };
            assert!(data.iter().all(|&b| b == 0));
            data.fill(0xAB);
            let off = a.start.as_ptr() as usize % page;
            // SAFETY: the canary just before the slot, in its mapped page.
            let c = unsafe { std::slice::from_raw_parts(a.start.as_ptr().sub(CANARY), CANARY) };
            assert_eq!(c, &pattern[off - CANARY..off]);
        }
        for s in slots {
            free(s, 32).unwrap();
        }
    }

    #[test]
    fn freeze_and_melt_move_the_secret_between_slab_classes() {
        let a = allocate(24).unwrap();
        // SAFETY: our writable slot, not shared.
        unsafe { data_of(a, 24) }.fill(0x3C);
        let (frozen, damaged) = move_to(a, 24, true).unwrap();
        assert!(damaged.is_none());
        assert_ne!(
            frozen.slab, a.slab,
            "frozen secrets live in slabs of their own"
        );
        // SAFETY: our slot, read only (the page is read-only).
        assert!(unsafe { data_of(frozen, 24) }.iter().all(|&b| b == 0x3C));
        let (back, damaged) = move_to(frozen, 24, false).unwrap();
        assert!(damaged.is_none());
        // SAFETY: our writable slot again.
        let data = unsafe { data_of(back, 24) };
        assert!(data.iter().all(|&b| b == 0x3C));
        data.fill(1);
        free(back, 24).unwrap();
    }

    #[test]
    fn a_one_byte_overflow_is_found_on_free() {
        let a = allocate(20).unwrap();
        // SAFETY: one byte past the slot: the canary after it, in our page.
        unsafe { *a.start.as_ptr().add(a.size) ^= 0x5A };
        let err = free(a, 20).unwrap_err();
        assert_eq!(err.damaged, 1);
        assert_eq!(err.len, 20);
    }
}
