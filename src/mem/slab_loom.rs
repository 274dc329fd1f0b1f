//! A model check of a compact secret's slot state under loom: readers, a
//! freeze (which moves the secret to another slot), and a purge, under
//! every interleaving, so that a guard reading a slot that was freed (wiped
//! and handed back to the slab) or moved away, or a slot freed twice or
//! never, fails the test.
//!
//! Built only with `RUSTFLAGS="--cfg loom"` (scripts/loom.sh; the test
//! names contain `loom_model`). As in `borrow_loom.rs`, the pages are a
//! loom `UnsafeCell` per slot; the slab's free list sits behind a loom
//! `Mutex` as `slab::Slabs` does behind its own; the region's slot number is
//! a loom atomic, as `region::Place`, written only under the exclusive
//! borrow and read only under a borrow. The calls on [`BorrowState`] are the
//! ones `Region::read`, `Region::set_frozen` (compact), `Region::destroy`
//! and a purge make.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use super::super::borrow::BorrowState;

const SECRET: [u8; 4] = [0xC3; 4];
const CANARY: [u8; 4] = [0xEE; 4];

/// One slot of a slab: free (canary) or held by the region.
struct SlotCell {
    taken: bool,
    bytes: [u8; 4],
}

/// A slab of two slots, one region holding one of them.
struct Model {
    slots: [UnsafeCell<SlotCell>; 2],
    /// The slab's free list (its lock is `slab::SLABS`).
    free: Mutex<Vec<usize>>,
    /// The region's slot (`region::Place`).
    place: AtomicUsize,
    state: BorrowState,
    frees: AtomicUsize,
    moves: AtomicUsize,
}

impl Model {
    fn new() -> Arc<Model> {
        Arc::new(Model {
            slots: [
                UnsafeCell::new(SlotCell {
                    taken: true,
                    bytes: SECRET,
                }),
                UnsafeCell::new(SlotCell {
                    taken: false,
                    bytes: CANARY,
                }),
            ],
            free: Mutex::new(vec![1]),
            place: AtomicUsize::new(0),
            state: BorrowState::new(),
            frees: AtomicUsize::new(0),
            moves: AtomicUsize::new(0),
        })
    }

    /// `slab::free`: under the slab lock, wipe the slot and hand it back.
    fn free_slot(&self, index: usize) {
        let mut free = self.free.lock().unwrap();
        self.slots[index].with_mut(|s| {
            // SAFETY: loom checks that no access overlaps this one.
            let s = unsafe { &mut *s };
            assert!(s.taken, "a slot freed twice");
            s.taken = false;
            s.bytes = CANARY;
        });
        free.push(index);
        self.frees.fetch_add(1, Ordering::Relaxed);
    }

    /// `Region::wipe_and_unmap` for a compact region.
    fn destroy_now(&self) {
        self.free_slot(self.place.load(Ordering::Acquire));
    }

    /// A reader: `Region::read`, `data_ptr` (the place), the read, the drop.
    fn read(&self) {
        if self.state.read().is_err() {
            return;
        }
        let index = self.place.load(Ordering::Acquire);
        self.slots[index].with(|s| {
            // SAFETY: loom checks that no write overlaps this read.
            let s = unsafe { &*s };
            assert!(s.taken, "a guard read a free slot");
            assert_eq!(s.bytes, SECRET, "a guard read a wiped slot");
        });
        if self.state.release_read() {
            self.destroy_now();
        }
    }

    /// `Region::set_frozen` for a compact region: under the exclusive
    /// borrow, take a slot of the other class, copy, move the place, free
    /// the old slot (`slab::move_to`).
    fn freeze(&self) {
        if self.state.write().is_err() {
            return;
        }
        let from = self.place.load(Ordering::Acquire);
        {
            let mut free = self.free.lock().unwrap();
            let to = free.pop().expect("a free slot");
            let bytes = self.slots[from].with(|s| {
                // SAFETY: loom checks the accesses.
                unsafe { (*s).bytes }
            });
            self.slots[to].with_mut(|s| {
                // SAFETY: loom checks the accesses.
                let s = unsafe { &mut *s };
                assert!(!s.taken, "took a taken slot");
                s.taken = true;
                s.bytes = bytes;
            });
            drop(free);
            self.place.store(to, Ordering::Release);
            self.moves.fetch_add(1, Ordering::Relaxed);
        }
        self.free_slot(from);
        if self.state.release_write() {
            self.destroy_now();
        }
    }

    /// A purge (or drop): request destruction.
    fn destroy(&self) {
        if self.state.request_destroy() {
            self.destroy_now();
        }
    }

    fn assert_freed_once(&self) {
        // One free for the destruction, plus one per move.
        assert_eq!(
            self.frees.load(Ordering::Relaxed),
            1 + self.moves.load(Ordering::Relaxed),
            "slot frees"
        );
        let free = self.free.lock().unwrap();
        assert_eq!(free.len(), 2, "both slots free at the end");
        for s in &self.slots {
            s.with(|s| {
                // SAFETY: every thread has joined.
                let s = unsafe { &*s };
                assert!(!s.taken && s.bytes == CANARY);
            });
        }
    }
}

#[test]
fn slab_loom_model_reader_freeze_and_purge() {
    loom::model(|| {
        let m = Model::new();
        let (a, b) = (Arc::clone(&m), Arc::clone(&m));
        let r = thread::spawn(move || a.read());
        let f = thread::spawn(move || b.freeze());
        m.destroy();
        r.join().unwrap();
        f.join().unwrap();
        m.assert_freed_once();
    });
}

#[test]
fn slab_loom_model_two_readers_and_purge() {
    loom::model(|| {
        let m = Model::new();
        let (a, b) = (Arc::clone(&m), Arc::clone(&m));
        let r1 = thread::spawn(move || a.read());
        let r2 = thread::spawn(move || b.read());
        m.destroy();
        r1.join().unwrap();
        r2.join().unwrap();
        m.assert_freed_once();
    });
}
