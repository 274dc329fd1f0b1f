//! A model check of the borrow/destroy/purge protocol: loom runs each
//! scenario below under every interleaving of its threads (and every
//! outcome the memory orderings allow; the five-thread one only with at
//! most two preemptions), so that a guard seeing wiped or
//! unmapped memory, a reader overlapping the writer or the destroyer, or a
//! region destroyed twice or never, fails the test.
//!
//! Built only with `RUSTFLAGS="--cfg loom"` (scripts/loom.sh), where
//! [`BorrowState`] sits on loom's `AtomicU64`.
//!
//! [`Region`] itself maps pages with system calls loom cannot model, so
//! [`Model`] stands in for it: the same calls on the same [`BorrowState`],
//! in the same order, as `Region::read`/`write`/`destroy`/
//! `destroy_collecting`/`end_read`/`end_write` and `registry::destroy_all`
//! (a purge), with the mapping replaced by a loom `UnsafeCell` holding the
//! bytes and whether they are live, wiped or unmapped. Loom tracks every
//! access to that cell: one that is not ordered after a conflicting access
//! by another thread (through the acquire/release edges of the state word)
//! is reported, so the model also proves that the writer excludes the
//! readers and that the destroyer comes after every guard.
//!
//! [`Region`]: super::super::region::Region

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::{BorrowState, Refused};

/// The bytes as made.
const MADE: [u8; 4] = [0xA5; 4];
/// The bytes as the writer leaves them.
const WRITTEN: [u8; 4] = [0x5A; 4];

/// What became of the mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mapping {
    Live,
    Wiped,
    Unmapped,
}

/// The region's memory.
struct Memory {
    mapping: Mapping,
    bytes: [u8; 4],
}

/// Stands in for `Region`: a [`BorrowState`] guarding [`Memory`].
struct Model {
    state: BorrowState,
    memory: UnsafeCell<Memory>,
    /// How many parties destroyed the region.
    destroyers: AtomicUsize,
}

/// As `Ref`: a counted shared borrow, released on drop.
struct Ref<'a>(&'a Model);

/// As `RefMut`: the exclusive borrow, released on drop.
struct RefMut<'a>(&'a Model);

impl Model {
    fn new() -> Arc<Model> {
        Arc::new(Model {
            state: BorrowState::new(),
            memory: UnsafeCell::new(Memory {
                mapping: Mapping::Live,
                bytes: MADE,
            }),
            destroyers: AtomicUsize::new(0),
        })
    }

    /// As `Region::read`.
    fn read(&self) -> Result<Ref<'_>, Refused> {
        self.state.read()?;
        Ok(Ref(self))
    }

    /// As `Region::write` (`begin_write`).
    fn write(&self) -> Result<RefMut<'_>, Refused> {
        self.state.write()?;
        Ok(RefMut(self))
    }

    /// As `Region::destroy` (and `Drop for Region`).
    fn destroy(&self) {
        if self.state.request_destroy() {
            self.wipe_and_unmap();
        }
    }

    /// As `Region::destroy_collecting`, which a purge calls on every
    /// registered region.
    fn destroy_collecting(&self) {
        if self.state.request_destroy() {
            self.wipe_and_unmap();
        }
    }

    /// As `Region::end_read`.
    fn end_read(&self) {
        if self.state.release_read() {
            self.wipe_and_unmap();
        }
    }

    /// As `Region::end_write`.
    fn end_write(&self) {
        if self.state.release_write() {
            self.wipe_and_unmap();
        }
    }

    /// As `Region::wipe_and_unmap`: wipes the bytes, then unmaps them.
    fn wipe_and_unmap(&self) {
        self.destroyers.fetch_add(1, Ordering::Relaxed);
        self.memory.with_mut(|m| {
            // SAFETY: the pointer is the cell's, valid during the closure;
            // that no other access overlaps this one is what loom checks
            // (it fails the model on any unordered conflicting access).
            let m = unsafe { &mut *m };
            assert_eq!(m.mapping, Mapping::Live, "destroyed twice");
            m.bytes = [0; 4];
            m.mapping = Mapping::Wiped;
        });
        self.memory.with_mut(|m| {
            // SAFETY: as above.
            unsafe { (*m).mapping = Mapping::Unmapped };
        });
    }

    /// After every thread has joined: exactly one party destroyed the
    /// region, and the state and the memory say so.
    fn assert_destroyed_once(&self) {
        assert_eq!(self.destroyers.load(Ordering::Relaxed), 1, "destroyers");
        assert!(self.state.is_destroyed());
        self.memory.with(|m| {
            // SAFETY: as in wipe_and_unmap; the other threads have joined.
            let m = unsafe { &*m };
            assert_eq!(m.mapping, Mapping::Unmapped);
            assert_eq!(m.bytes, [0; 4]);
        });
        assert_eq!(self.state.read().err(), Some(Refused::Gone));
        assert_eq!(self.state.write().err(), Some(Refused::Gone));
        assert!(!self.state.request_destroy());
    }
}

impl Ref<'_> {
    /// Reads the bytes, which must be live and whole.
    fn bytes(&self) -> [u8; 4] {
        self.0.memory.with(|m| {
            // SAFETY: as in Model::wipe_and_unmap: loom fails the model if a
            // write (the writer's or the destroyer's) overlaps this read.
            let m = unsafe { &*m };
            assert_eq!(m.mapping, Mapping::Live, "a reader saw the memory");
            assert!(m.bytes == MADE || m.bytes == WRITTEN, "{:?}", m.bytes);
            m.bytes
        })
    }
}

impl Drop for Ref<'_> {
    fn drop(&mut self) {
        self.0.end_read();
    }
}

impl RefMut<'_> {
    /// Checks that the bytes are live, then overwrites them.
    fn fill(&mut self, with: [u8; 4]) {
        self.0.memory.with_mut(|m| {
            // SAFETY: as in Model::wipe_and_unmap: loom fails the model if
            // any other access overlaps this one.
            let m = unsafe { &mut *m };
            assert_eq!(m.mapping, Mapping::Live, "the writer saw the memory");
            m.bytes = with;
        });
    }
}

impl Drop for RefMut<'_> {
    fn drop(&mut self) {
        self.0.end_write();
    }
}

/// A reader: borrows if it can, reads, releases (destroying the region if
/// it is the last borrow with destruction pending).
fn reader(m: &Model) {
    if let Ok(r) = m.read() {
        r.bytes();
    }
}

/// The writer: borrows exclusively if it can, writes, releases.
fn writer(m: &Model) {
    if let Ok(mut w) = m.write() {
        w.fill(WRITTEN);
    }
}

/// A purge, as `registry::destroy_all`: `destroy_collecting` on every
/// registered region.
fn purge(regions: &[&Model]) {
    for r in regions {
        r.destroy_collecting();
    }
}

/// Runs `f` under every interleaving (no preemption bound, unless
/// `LOOM_MAX_PREEMPTIONS` sets one) and prints how many loom explored.
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    check(name, loom::model::Builder::new(), f);
}

/// As [`model`], but only the interleavings with at most `bound` thread
/// preemptions, for models too large to check exhaustively.
fn bounded_model(name: &str, bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    check(name, builder, f);
}

fn check(name: &str, builder: loom::model::Builder, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Outside the model: a plain counter of the executions.
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&runs);
    builder.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let runs = runs.load(Ordering::Relaxed);
    println!("loom model {name}: {runs} interleavings");
}

/// Spawns `f` on a loom thread with its own handle on the model.
fn spawn(m: &Arc<Model>, f: impl FnOnce(&Model) + Send + 'static) -> thread::JoinHandle<()> {
    let m = Arc::clone(m);
    thread::spawn(move || f(&m))
}

#[test]
fn two_readers_and_destroy() {
    model("two_readers_and_destroy", || {
        let m = Model::new();
        let a = spawn(&m, reader);
        let b = spawn(&m, reader);
        m.destroy();
        a.join().unwrap();
        b.join().unwrap();
        m.assert_destroyed_once();
    });
}

#[test]
fn reader_writer_and_destroy() {
    model("reader_writer_and_destroy", || {
        let m = Model::new();
        let r = spawn(&m, reader);
        let w = spawn(&m, writer);
        m.destroy();
        r.join().unwrap();
        w.join().unwrap();
        m.assert_destroyed_once();
    });
}

#[test]
fn reader_destroy_and_purge() {
    model("reader_destroy_and_purge", || {
        let m = Model::new();
        let r = spawn(&m, reader);
        let d = spawn(&m, Model::destroy);
        purge(&[&m]);
        r.join().unwrap();
        d.join().unwrap();
        m.assert_destroyed_once();
    });
}

/// One thread holds two guards at once (the second may be refused once the
/// purge has started) and drops them in either order.
fn nested_reads_and_purge(first_out_first: bool) {
    let m = Model::new();
    let t = spawn(&m, move |m| {
        let Ok(outer) = m.read() else { return };
        outer.bytes();
        match m.read() {
            Ok(inner) => {
                inner.bytes();
                if first_out_first {
                    drop(outer);
                    inner.bytes();
                    drop(inner);
                } else {
                    drop(inner);
                    outer.bytes();
                    drop(outer);
                }
            }
            Err(refused) => {
                assert_eq!(refused, Refused::Gone);
                outer.bytes();
            }
        }
    });
    purge(&[&m]);
    t.join().unwrap();
    m.assert_destroyed_once();
}

#[test]
fn nested_reads_and_purge_outer_released_first() {
    model("nested_reads_and_purge_outer_released_first", || {
        nested_reads_and_purge(true)
    });
}

#[test]
fn nested_reads_and_purge_inner_released_first() {
    model("nested_reads_and_purge_inner_released_first", || {
        nested_reads_and_purge(false)
    });
}

#[test]
fn writer_purge_and_reader_on_three_threads() {
    model("writer_purge_and_reader_on_three_threads", || {
        let m = Model::new();
        let w = spawn(&m, writer);
        let p = spawn(&m, |m| purge(&[m]));
        let r = spawn(&m, reader);
        w.join().unwrap();
        p.join().unwrap();
        r.join().unwrap();
        m.assert_destroyed_once();
    });
}

/// Every role at once on five threads (loom's most): two readers, the
/// writer, a destroy and a purge. Exhaustive would take hours; with at most
/// two preemptions it is 54,000 interleavings, about 7 s (three: 714,000,
/// about 100 s).
#[test]
fn two_readers_writer_destroy_and_purge_on_five_threads() {
    bounded_model(
        "two_readers_writer_destroy_and_purge_on_five_threads (preemption bound 2)",
        2,
        || {
            let m = Model::new();
            let r1 = spawn(&m, reader);
            let r2 = spawn(&m, reader);
            let w = spawn(&m, writer);
            let d = spawn(&m, Model::destroy);
            purge(&[&m]);
            for t in [r1, r2, w, d] {
                t.join().unwrap();
            }
            m.assert_destroyed_once();
        },
    );
}

/// A purge over two regions while one thread holds a guard on the first
/// and borrows the second: each region is destroyed once, by the purge or
/// by the guard's release.
#[test]
fn purge_of_two_regions_while_a_reader_holds_both() {
    model("purge_of_two_regions_while_a_reader_holds_both", || {
        let a = Model::new();
        let b = Model::new();
        let t = {
            let (a, b) = (Arc::clone(&a), Arc::clone(&b));
            thread::spawn(move || {
                let Ok(ra) = a.read() else { return };
                if let Ok(rb) = b.read() {
                    rb.bytes();
                }
                ra.bytes();
            })
        };
        purge(&[&a, &b]);
        t.join().unwrap();
        a.assert_destroyed_once();
        b.assert_destroyed_once();
    });
}

/// Once destruction is requested, every new borrow is refused as Gone, even
/// while an older guard keeps the memory alive; that guard's release then
/// destroys.
#[test]
fn borrows_after_the_request_are_refused() {
    model("borrows_after_the_request_are_refused", || {
        let m = Model::new();
        let requested = Arc::new(AtomicBool::new(false));
        let t = {
            let (m, requested) = (Arc::clone(&m), Arc::clone(&requested));
            thread::spawn(move || {
                let Ok(held) = m.read() else {
                    // Refused: the request came first.
                    assert!(m.state.is_gone());
                    return;
                };
                if requested.load(Ordering::Acquire) {
                    assert_eq!(m.read().err(), Some(Refused::Gone));
                    assert_eq!(m.write().err(), Some(Refused::Gone));
                    assert!(m.state.is_gone() && !m.state.is_destroyed());
                }
                held.bytes();
            })
        };
        m.destroy();
        requested.store(true, Ordering::Release);
        assert_eq!(m.read().err(), Some(Refused::Gone));
        assert_eq!(m.write().err(), Some(Refused::Gone));
        t.join().unwrap();
        m.assert_destroyed_once();
    });
}
