//! A model check of the lease protocol: loom runs each scenario under every
//! interleaving (and every outcome the memory orderings allow) of an owner
//! reading under its lease and a purge revoking it, with the region's bytes
//! in a loom `UnsafeCell`. A read that is not ordered before the revoker's
//! wipe is a data race loom reports; a borrow released twice or never fails
//! the count.
//!
//! Loom has no process-wide barrier, so the models hold the lease in its
//! fenced mode (a full fence on both sides); the barrier mode differs only
//! in replacing the reader's fence with the revoker's barrier, which the
//! platform guarantees to be at least as strong.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::Lease;

/// A leased region: the lease and the bytes it guards.
struct Model {
    lease: Lease,
    bytes: UnsafeCell<[u8; 2]>,
    /// How many parties released the lease's borrow.
    releases: AtomicUsize,
}

const LIVE: [u8; 2] = [0xA5; 2];

impl Model {
    fn leased() -> Arc<Model> {
        Model::leased_with(false)
    }

    /// Leased, in barrier mode when `barrier`.
    fn leased_with(barrier: bool) -> Arc<Model> {
        let model = Model {
            lease: Lease::new(),
            bytes: UnsafeCell::new(LIVE),
            releases: AtomicUsize::new(0),
        };
        assert!(model.lease.hold(barrier));
        Arc::new(model)
    }

    /// The owner's read: `None` once revoked, else the bytes, never wiped.
    fn read(&self) -> Option<[u8; 2]> {
        // SAFETY: in the model, loom checks that no write races this read.
        let bytes = self.lease.read(|| self.bytes.with(|b| unsafe { *b }))?;
        assert_eq!(bytes, LIVE, "a read under the lease saw wiped bytes");
        Some(bytes)
    }

    /// A purge: revoke, then wipe when the borrow is ours.
    fn purge(&self) {
        if self.lease.revoke(|| true) {
            self.releases.fetch_add(1, Ordering::Relaxed);
            // SAFETY: in the model, loom checks that no read races this write.
            self.bytes.with_mut(|b| unsafe { *b = [0; 2] });
        }
    }

    /// The owner lets the lease go.
    fn release(&self) {
        if self.lease.release() {
            self.releases.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn loom_model_lease_reads_never_see_a_wipe() {
    loom::model(|| {
        let model = Model::leased();
        let owner = {
            let model = Arc::clone(&model);
            thread::spawn(move || {
                let first = model.read();
                let second = model.read();
                // Once refused, always refused.
                assert!(!(first.is_none() && second.is_some()));
                model.release();
            })
        };
        model.purge();
        owner.join().unwrap();
        assert_eq!(model.releases.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn loom_model_lease_two_revokers_release_once() {
    loom::model(|| {
        let model = Model::leased();
        let other = {
            let model = Arc::clone(&model);
            thread::spawn(move || model.purge())
        };
        model.purge();
        other.join().unwrap();
        model.release();
        assert_eq!(model.releases.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn loom_model_lease_failed_barrier_leaves_the_borrow_to_the_owner() {
    loom::model(|| {
        // Barrier mode, with a barrier that fails: the revoker never wipes,
        // so the reader's missing fence does not matter here.
        let model = Model::leased_with(true);
        let owner = {
            let model = Arc::clone(&model);
            thread::spawn(move || {
                let _ = model.read();
                model.release();
            })
        };
        // A revoke whose barrier fails hands nothing over.
        assert!(!model.lease.revoke(|| false));
        owner.join().unwrap();
        assert_eq!(model.releases.load(Ordering::Relaxed), 1);
    });
}

/// The whole of `Region::lease`, `read_leased`, `end_lease` and `destroy`
/// (request, then revoke after a fence), on a real [`BorrowState`]: the
/// owner takes its lease while a destroy runs. Exactly one party destroys,
/// and no read sees the wipe. (The fence pair between `lease` and
/// `destroy` decides only how soon the wipe comes: without it the owner may
/// hold a lease on a region whose destruction is pending, which is safe, and
/// the wipe waits for `end_lease`; this model cannot tell the difference.)
#[test]
fn loom_model_lease_taken_while_a_destroy_runs() {
    use super::super::borrow::BorrowState;
    use loom::sync::atomic::fence;

    struct Region {
        state: BorrowState,
        lease: Lease,
        bytes: UnsafeCell<[u8; 2]>,
        destroyers: AtomicUsize,
    }

    impl Region {
        fn wipe(&self) {
            self.destroyers.fetch_add(1, Ordering::Relaxed);
            // SAFETY: in the model, loom checks that no read races this write.
            self.bytes.with_mut(|b| unsafe { *b = [0; 2] });
        }
        fn end_lease(&self) {
            if self.lease.release() && self.state.release_read() {
                self.wipe();
            }
        }
        fn lease(&self) -> bool {
            if self.state.read().is_err() {
                return false;
            }
            assert!(self.lease.hold(false));
            fence(Ordering::SeqCst);
            if self.state.is_gone() {
                self.end_lease();
                return false;
            }
            true
        }
        fn destroy(&self) {
            if self.state.request_destroy() {
                self.wipe();
                return;
            }
            fence(Ordering::SeqCst);
            if self.lease.revoke(|| true) && self.state.release_read() {
                self.wipe();
            }
        }
    }

    loom::model(|| {
        let region = Arc::new(Region {
            state: BorrowState::new(),
            lease: Lease::new(),
            bytes: UnsafeCell::new(LIVE),
            destroyers: AtomicUsize::new(0),
        });
        let owner = {
            let region = Arc::clone(&region);
            thread::spawn(move || {
                if region.lease() {
                    // SAFETY: in the model, loom checks that no write races this.
                    if let Some(bytes) = region.lease.read(|| region.bytes.with(|b| unsafe { *b }))
                    {
                        assert_eq!(bytes, LIVE, "a read under the lease saw wiped bytes");
                    }
                    region.end_lease();
                }
            })
        };
        region.destroy();
        owner.join().unwrap();
        assert_eq!(region.destroyers.load(Ordering::Relaxed), 1);
    });
}
