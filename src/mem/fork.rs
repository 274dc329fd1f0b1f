//! What `fork` does to memguard's state, and the hooks that keep a forked
//! child safe.
//!
//! A forked child gets a copy of the parent's memory with one thread (the one
//! that called `fork`), no locks on its pages (`mlock` is not inherited), and
//! the data pages of every buffer zero-filled (`MADV_WIPEONFORK`) or absent
//! (`MADV_DONTFORK`). Left alone, that child would see buffers that claim to
//! be alive but hold zeros, a session key of zeros (a key anyone can compute),
//! locks held forever by threads that do not exist in it, and no thread to
//! listen for signals. So:
//!
//! - **A fork generation.** [`generation`] counts the forks between the
//!   process that first used memguard and this one; each child counts one
//!   more than its parent. A region, a session key or a spare made under
//!   another generation is *inherited*: dead in this process, released
//!   without being read or written (see `Region`).
//! - **No lock held across `fork`.** Before `fork`, the forking thread takes
//!   every lock registered with [`hold_across_fork`], in the order of
//!   [`ForkLock`]; after it, parent and child release them. A lock that
//!   another thread held at the moment of `fork` therefore cannot be left
//!   locked in the child.
//! - **Signals in a child.** [`terminate_children_on`] registers, in signal
//!   context, a wipe-and-exit for the signals memguard catches: in a child
//!   (where the listening thread of [`catch_signal`](crate::catch_signal)
//!   does not exist) such a signal wipes every buffer and exits with code 1.
//!
//! The hooks are installed by the platform layer on the first allocation
//! (`pthread_atfork` on Unix). A process that calls the raw `fork` system
//! call (not the C library's `fork`) bypasses them; see the threat model.
//! Where there is no `fork` (Windows), nothing is hooked and the generation
//! stays 0.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::LocalKey;

use super::crash_table;
use super::lease_roster;
use super::sys::{Os, Process};

/// Forks between the first process that used memguard and this one.
static FORKS: AtomicU64 = AtomicU64::new(0);
/// Whether the fork hooks are in place.
static HOOKS: OnceLock<bool> = OnceLock::new();

/// The fork generation of this process: 0 in the process that first used
/// memguard, one more in each forked child than in its parent.
#[inline]
pub(crate) fn generation() -> u64 {
    FORKS.load(Ordering::Acquire)
}

/// Installs the fork hooks once; whether they are in place. Without them
/// a child cannot tell it is one, so the caller must not rely on
/// [`generation`] (the spare list, for one, keeps nothing then).
pub(crate) fn install() -> bool {
    *HOOKS.get_or_init(install_hooks)
}

/// The process-wide locks that are held across `fork`, in the order they
/// are taken before it (and released in reverse after it). A thread holding
/// one of them may take only locks later in this list: a higher layer calls
/// into lower ones while holding its lock, never the other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ForkLock {
    /// `catch_signal`'s current handler.
    Signals,
    /// The session key (the coffer); its holder allocates a buffer and
    /// starts the rekeying thread.
    Coffer,
    /// The rekeying thread's handle.
    Rekeyer,
    /// The registry of live buffers.
    Registry,
    /// The spare mappings.
    Spares,
    /// The compact slabs (their holder adds to the crash table).
    Slabs,
    /// The crash table's free list.
    CrashTable,
}

const LOCKS: usize = 7;

/// What the hooks call for one [`ForkLock`]: take it (before fork), give it
/// back (after, in parent and child).
#[derive(Clone, Copy)]
struct Hook {
    take: fn(),
    give_back: fn(),
}

static REGISTERED: [OnceLock<Hook>; LOCKS] = [const { OnceLock::new() }; LOCKS];

/// A lock's guard kept by the forking thread from before `fork` until after.
pub(crate) type Held<T> = Cell<Option<MutexGuard<'static, T>>>;

/// Registers a lock to be held across `fork` (once per lock; later calls do
/// nothing). `take` and `give_back` are usually [`take_into`] and
/// [`give_back_from`] on the lock and a thread-local [`Held`].
pub(crate) fn hold_across_fork(lock: ForkLock, take: fn(), give_back: fn()) {
    let _ = REGISTERED[lock as usize].set(Hook { take, give_back });
    install();
}

/// Locks `mutex` and keeps the guard in `held` (this thread's).
pub(crate) fn take_into<T>(held: &'static LocalKey<Held<T>>, mutex: &'static Mutex<T>) {
    let guard = mutex.lock().unwrap_or_else(PoisonError::into_inner);
    // A thread whose thread-locals are already gone (a fork from a
    // thread-local destructor) cannot keep it: the guard is dropped at once.
    let _ = held.try_with(move |h| h.set(Some(guard)));
}

/// Unlocks what [`take_into`] kept in `held`, if anything (a lock registered
/// while a fork was under way was not taken).
pub(crate) fn give_back_from<T>(held: &'static LocalKey<Held<T>>) {
    let _ = held.try_with(|h| drop(h.take()));
}

fn before_fork() {
    for hook in REGISTERED.iter().filter_map(OnceLock::get) {
        (hook.take)();
    }
}

fn after_fork() {
    for hook in REGISTERED.iter().rev().filter_map(OnceLock::get) {
        (hook.give_back)();
    }
}

/// In the child, before anything else: a new generation, no lease left
/// to read under (a leased read does not look at the generation), and no
/// inherited region left in the crash table (their pages are zeros or gone:
/// a crash must not write to them, nor a read under a lease read them).
fn in_child() {
    FORKS.fetch_add(1, Ordering::AcqRel);
    lease_roster::end_all_in_child();
    crash_table::forget_all();
    after_fork();
}

/// The generation of the process whose `catch_signal` listener is running.
static LISTENING: AtomicU64 = AtomicU64::new(0);
/// For each signal number, whether memguard catches it now.
static CAUGHT: [AtomicBool; 65] = [const { AtomicBool::new(false) }; 65];
/// For each signal number, whether the child action is registered.
static REGISTERED_SIGNALS: [AtomicBool; 65] = [const { AtomicBool::new(false) }; 65];

/// Makes `signals` terminate a forked child the way they terminate this
/// process (every buffer wiped, exit code 1), while no listener runs there,
/// and releases every other signal from that duty. Called by `catch_signal`
/// with the signals it now catches, in the process whose listening thread
/// handles them.
pub(crate) fn terminate_children_on(signals: &[i32]) -> crate::error::Result<()> {
    LISTENING.store(generation(), Ordering::Release);
    for &signal in signals {
        let Some(i) = index(signal) else { continue };
        if !REGISTERED_SIGNALS[i].swap(true, Ordering::AcqRel) {
            if let Err(e) = register_child_exit(signal) {
                REGISTERED_SIGNALS[i].store(false, Ordering::Release);
                return Err(e);
            }
        }
    }
    for (i, caught) in CAUGHT.iter().enumerate() {
        let now = signals.iter().any(|&s| index(s) == Some(i));
        caught.store(now, Ordering::Release);
    }
    Ok(())
}

fn index(signal: i32) -> Option<usize> {
    usize::try_from(signal).ok().filter(|&i| i < CAUGHT.len())
}

/// Runs in signal context, after the listener's own actions for `signal`:
/// in a child without a listener, wipes and exits.
fn child_exit(signal: i32) {
    let caught = index(signal).is_some_and(|i| CAUGHT[i].load(Ordering::Acquire));
    if caught && LISTENING.load(Ordering::Acquire) != generation() {
        crash_table::wipe_all();
        Os::exit_now(1);
    }
}

/// The action only loads atomics, wipes through the crash table (atomics,
/// `Pages::protect_raw` and plain stores: async-signal-safe) and exits at
/// once, so it may run in signal context.
fn register_child_exit(signal: i32) -> crate::error::Result<()> {
    Os::on_signal_in_child(signal, child_exit)
}

/// `before_fork` takes locks; `after_fork` releases them (an atomic swap,
/// and a futex wake when another thread waits) and, in the child, updates
/// atomics: all async-signal-safe, as code run in a child after fork must
/// be.
fn install_hooks() -> bool {
    Os::install_fork_hooks(before_fork, after_fork, in_child)
}

#[cfg(test)]
mod tests {
    use super::*;

    static DEMO: Mutex<u32> = Mutex::new(0);
    thread_local! {
        static DEMO_HELD: Held<u32> = const { Cell::new(None) };
    }

    #[test]
    fn a_held_lock_is_given_back_once() {
        take_into(&DEMO_HELD, &DEMO);
        assert!(DEMO.try_lock().is_err(), "held");
        give_back_from(&DEMO_HELD);
        assert!(DEMO.try_lock().is_ok(), "given back");
        // A second give-back (a lock registered mid-fork) does nothing.
        give_back_from(&DEMO_HELD);
        assert!(DEMO.try_lock().is_ok());
    }

    #[test]
    fn the_generation_is_stable_without_fork() {
        assert!(install());
        let g = generation();
        before_fork();
        after_fork();
        assert_eq!(generation(), g);
    }
}
