//! Integration tests for the session-wide operations: `purge` (alone, with
//! guards held, and racing readers, sealers and openers on other threads),
//! `live_buffers`, the rekeying thread's lifetime, `RLIMIT_MEMLOCK`
//! exhaustion, `safe_exit` and `safe_panic`.
//!
//! `purge()` is process-wide, so every in-process test takes `SERIAL` first;
//! the rest run their body in a child process (the test binary re-run for
//! one test, see `support::run_child_timeout`).

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use memguard::{live_buffers, purge, Enclave, Error, LockedBuffer, Ref};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A recognisable, never-zero pattern that differs with `seed`.
fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i.wrapping_mul(31) + seed.wrapping_mul(17) + i / 251) % 255) as u8 + 1)
        .collect()
}

fn zeros(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == 0).count()
}

/// Joins every thread, failing the test if any is still running after
/// `limit` (a deadlock or livelock) and re-raising any thread's panic.
fn join_all<T>(handles: Vec<JoinHandle<T>>, limit: Duration, what: &str) -> Vec<T> {
    let deadline = Instant::now() + limit;
    while !handles.iter().all(JoinHandle::is_finished) {
        let running = handles.iter().filter(|h| !h.is_finished()).count();
        assert!(
            Instant::now() < deadline,
            "{what}: {running} thread(s) still running after {limit:?}: deadlock?"
        );
        thread::sleep(Duration::from_millis(1));
    }
    handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        .collect()
}

/// Runs `f` on a new thread and waits up to `limit` for it: a hang fails the
/// test instead of hanging it, and a panic in `f` is re-raised here.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let out = f();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(limit) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        Err(RecvTimeoutError::Timeout) => {
            panic!("{what}: did not finish within {limit:?} (deadlock?)")
        }
    }
}

// ---------------------------------------------------------------------------
// purge and live_buffers
// ---------------------------------------------------------------------------

#[test]
fn purge_destroys_every_live_buffer_and_leaves_none() {
    let _serial = serial();
    let sealed = Enclave::new(&mut pattern(40, 1)).unwrap();
    let mut fresh = LockedBuffer::new(16).unwrap();
    let mut random = LockedBuffer::random(32).unwrap();
    let from_bytes = LockedBuffer::from_bytes(&mut pattern(100, 2)).unwrap();
    let mut opened = sealed.open().unwrap();
    let mut written = LockedBuffer::new(5000).unwrap();
    written.copy(&pattern(5000, 3)).unwrap();
    let mut dst = LockedBuffer::new(40).unwrap();
    sealed.open_into(&mut dst).unwrap();
    assert!(
        live_buffers() >= 6,
        "six buffers (and the session key) are live, live_buffers() = {}",
        live_buffers()
    );

    purge();
    assert_eq!(
        live_buffers(),
        0,
        "nothing is borrowed, so purge leaves nothing"
    );

    let originals = [
        (&fresh, vec![0u8; 16]),
        (&random, Vec::new()),
        (&from_bytes, pattern(100, 2)),
        (&opened, pattern(40, 1)),
        (&written, pattern(5000, 3)),
        (&dst, pattern(40, 1)),
    ];
    for (i, (buf, content)) in originals.iter().enumerate() {
        assert!(!buf.is_alive(), "buffer {i} survived purge");
        assert_eq!(buf.len(), 0, "buffer {i}");
        assert!(buf.is_empty(), "buffer {i}");
        assert!(!buf.is_mutable(), "buffer {i}");
        assert!(
            buf.bytes().is_empty(),
            "buffer {i}: purged buffer still readable"
        );
        if !content.is_empty() {
            assert!(
                !buf.equal_to(content),
                "buffer {i} still equals its content"
            );
        }
        assert!(format!("{buf:?}").contains("alive: false"), "{buf:?}");
    }
    for (i, buf) in [&mut fresh, &mut random, &mut opened, &mut written, &mut dst]
        .into_iter()
        .enumerate()
    {
        assert!(
            matches!(buf.bytes_mut(), Err(Error::Destroyed)),
            "buffer {i}"
        );
        assert!(matches!(buf.freeze(), Err(Error::Destroyed)), "buffer {i}");
        assert!(matches!(buf.melt(), Err(Error::Destroyed)), "buffer {i}");
        assert!(
            matches!(buf.copy(b"x"), Err(Error::Destroyed)),
            "buffer {i}"
        );
        assert!(matches!(buf.wipe(), Err(Error::Destroyed)), "buffer {i}");
    }
    assert!(matches!(sealed.open(), Err(Error::DecryptionFailed)));
    assert_eq!(live_buffers(), 0);

    // Buffers made after the purge may reuse the registry's slots; dropping
    // the purged ones must not unregister them.
    let new_a = LockedBuffer::new(8).unwrap();
    let new_b = LockedBuffer::new(8).unwrap();
    assert_eq!(live_buffers(), 2);
    drop((fresh, random, from_bytes, opened, written, dst));
    assert_eq!(
        live_buffers(),
        2,
        "dropping purged buffers changed the count"
    );
    assert!(new_a.is_alive() && new_b.is_alive());
    drop(new_a);
    assert_eq!(live_buffers(), 1);
    drop(new_b);
    assert_eq!(live_buffers(), 0);

    // Purging with nothing to purge is fine, and so is purging twice.
    purge();
    purge();
    assert_eq!(live_buffers(), 0);
}

#[test]
fn purge_while_holding_guards_on_the_same_thread_returns_and_defers_destruction() {
    let _serial = serial();
    within(
        Duration::from_secs(10),
        "purge with guards held on the calling thread",
        || {
            let secret = pattern(6000, 4);
            let sealed = Enclave::new(&mut secret.clone()).unwrap();
            let buf = sealed.open().unwrap();
            let guard = buf.bytes();
            let part = Ref::map(buf.bytes(), |b| &b[100..200]);
            let mut writable = LockedBuffer::new(3000).unwrap();
            writable.copy(&pattern(3000, 5)).unwrap();
            let other = LockedBuffer::from_bytes(&mut pattern(10, 6)).unwrap();

            {
                let mut w = writable.bytes_mut().unwrap();
                purge();
                // The exclusive guard still writes and reads: its memory is
                // neither wiped nor unmapped nor made read-only.
                w.fill(0xAB);
                assert!(w.iter().all(|&b| b == 0xAB), "write guard after purge");
            }
            assert!(!writable.is_alive());
            assert!(writable.bytes().is_empty());

            // Still borrowed: the shared guards read the whole secret.
            assert!(
                guard[..] == secret[..],
                "guard after purge: {} zeros",
                zeros(&guard)
            );
            assert!(part[..] == secret[100..200]);
            // But the buffer is dead and hands out no new guard.
            assert!(!buf.is_alive());
            assert_eq!(buf.len(), 0);
            assert!(
                buf.bytes().is_empty(),
                "a purged buffer handed out a new guard"
            );
            assert!(!other.is_alive(), "an unborrowed buffer must die at once");
            assert_eq!(live_buffers(), 0);
            assert!(matches!(sealed.open(), Err(Error::DecryptionFailed)));

            // A second purge with the guards still held returns too.
            purge();
            assert!(guard[..] == secret[..], "guard after a second purge");
            drop(guard);
            assert!(
                part[..] == secret[100..200],
                "mapped guard outlives the other"
            );
            drop(part);

            assert!(!buf.is_alive());
            assert!(buf.bytes().is_empty());
            assert!(!buf.equal_to(&secret));
            assert_eq!(live_buffers(), 0);
        },
    );
}

#[test]
fn purge_on_another_thread_does_not_wait_for_a_held_guard() {
    let _serial = serial();
    let secret = pattern(9000, 7);
    let buf = LockedBuffer::from_bytes(&mut secret.clone()).unwrap();
    let guard = buf.bytes();
    within(Duration::from_secs(10), "purge on another thread", purge);
    assert!(!buf.is_alive());
    assert!(
        guard[..] == secret[..],
        "guard after purge: {} zeros",
        zeros(&guard)
    );
    drop(guard);
    assert!(buf.bytes().is_empty());
    assert_eq!(live_buffers(), 0);
}

// ---------------------------------------------------------------------------
// purge racing other threads
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct ReaderStats {
    whole: usize,
    empty: usize,
    destroyed: usize,
    decryption_failed: usize,
}

/// Fails unless `seen` is the whole secret or nothing.
fn check_whole_or_empty(seen: &[u8], secret: &[u8], what: &str) {
    assert!(
        seen.is_empty() || seen == secret,
        "{what}: torn or wiped read: {} of {} bytes, {} zeros, first difference at {:?}",
        seen.len(),
        secret.len(),
        zeros(seen),
        seen.iter().zip(secret).position(|(a, b)| a != b)
    );
}

/// Opens `sealed` over and over (open and open_into), checking every read,
/// until the key is purged. Returns the last opened buffer too.
fn reader(
    sealed: &Enclave,
    secret: &[u8],
    ready: &AtomicUsize,
) -> (ReaderStats, Option<LockedBuffer>) {
    const MAX_ITERATIONS: usize = 200_000;
    let mut stats = ReaderStats::default();
    let mut held: Option<LockedBuffer> = None;
    let mut dst = LockedBuffer::new(secret.len()).unwrap();
    let mut announced = false;
    for _ in 0..MAX_ITERATIONS {
        if let Some(h) = &held {
            check_whole_or_empty(&h.bytes(), secret, "held buffer");
        }
        match sealed.open() {
            Ok(buf) => {
                assert!(
                    !buf.is_mutable(),
                    "an opened buffer must be frozen (or dead)"
                );
                let seen = buf.bytes();
                check_whole_or_empty(&seen, secret, "open()");
                if seen.is_empty() {
                    stats.empty += 1;
                } else {
                    stats.whole += 1;
                }
                drop(seen);
                held = Some(buf);
            }
            Err(Error::DecryptionFailed) => {
                stats.decryption_failed += 1;
                break;
            }
            Err(Error::Destroyed) => stats.destroyed += 1,
            Err(e) => panic!("open(): unexpected error {e:?}"),
        }
        if !dst.is_alive() {
            dst = LockedBuffer::new(secret.len()).unwrap();
        }
        match sealed.open_into(&mut dst) {
            Ok(()) => {
                let seen = dst.bytes();
                check_whole_or_empty(&seen, secret, "open_into()");
                if seen.is_empty() {
                    stats.empty += 1;
                } else {
                    stats.whole += 1;
                }
            }
            Err(Error::DecryptionFailed) => {
                // dst holds what it held before: zeros, the secret, or
                // nothing if it was purged meanwhile.
                let seen = dst.bytes();
                assert!(
                    seen.is_empty() || seen[..] == secret[..] || zeros(&seen) == seen.len(),
                    "open_into failed but changed the destination"
                );
                stats.decryption_failed += 1;
                break;
            }
            Err(Error::Destroyed) => stats.destroyed += 1,
            Err(e) => panic!("open_into(): unexpected error {e:?}"),
        }
        if stats.whole > 0 && !announced {
            ready.fetch_add(1, Ordering::SeqCst);
            announced = true;
        }
    }
    if stats.decryption_failed > 0 {
        // The key is gone for good: every later open fails the same way.
        for _ in 0..10 {
            match sealed.open() {
                Err(Error::DecryptionFailed) => {}
                other => panic!("open after the key was purged: {other:?}"),
            }
        }
    }
    if !announced {
        ready.fetch_add(1, Ordering::SeqCst);
    }
    (stats, held)
}

#[test]
fn readers_racing_purge_see_the_whole_secret_or_nothing() {
    let _serial = serial();
    const READERS: usize = 4;
    const ROUNDS: usize = 10;
    let mut totals = ReaderStats::default();
    for round in 0..ROUNDS {
        // Two pages and a bit, so that a partial wipe would show.
        let secret = Arc::new(pattern(2 * 4096 + 123, round));
        let sealed = Arc::new(Enclave::new(&mut secret.to_vec()).unwrap());
        let ready = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..READERS)
            .map(|_| {
                let (sealed, secret, ready) =
                    (Arc::clone(&sealed), Arc::clone(&secret), Arc::clone(&ready));
                thread::spawn(move || reader(&sealed, &secret, &ready))
            })
            .collect();
        // Purge once every reader has read the secret at least once.
        let deadline = Instant::now() + Duration::from_secs(30);
        while ready.load(Ordering::SeqCst) < READERS && Instant::now() < deadline {
            thread::yield_now();
        }
        within(Duration::from_secs(10), "purge racing readers", purge);
        let results = join_all(handles, Duration::from_secs(60), "readers");
        for (t, (stats, held)) in results.into_iter().enumerate() {
            assert!(
                stats.whole > 0,
                "round {round} reader {t} never read the secret: {stats:?}"
            );
            assert_eq!(
                stats.decryption_failed, 1,
                "round {round} reader {t} never saw the purged key refuse to open: {stats:?}"
            );
            if let Some(h) = held {
                assert!(
                    !h.is_alive(),
                    "round {round} reader {t}: opened buffer survived purge"
                );
            }
            totals.whole += stats.whole;
            totals.empty += stats.empty;
            totals.destroyed += stats.destroyed;
            totals.decryption_failed += stats.decryption_failed;
        }
    }
    println!("readers racing purge, {ROUNDS} rounds x {READERS} readers: {totals:?}");
}

#[derive(Debug, Default, Clone, Copy)]
struct WorkerStats {
    /// Opened (or opened into) and read back the exact plaintext.
    successes: usize,
    /// Opened, but the buffer was purged before it could be read: empty.
    empty: usize,
    /// `Err(DecryptionFailed)`: the key was purged between seal and open.
    decryption_failed: usize,
    /// `Err(Destroyed)` from open/open_into/from_bytes/seal of a buffer.
    destroyed: usize,
    /// `Err(Destroyed)` from `Enclave::new`/`Enclave::random` (the new
    /// session key was purged while it was being made or used).
    seal_destroyed: usize,
}

impl WorkerStats {
    fn add(&mut self, o: WorkerStats) {
        self.successes += o.successes;
        self.empty += o.empty;
        self.decryption_failed += o.decryption_failed;
        self.destroyed += o.destroyed;
        self.seal_destroyed += o.seal_destroyed;
    }
}

/// Records a read of an opened buffer: the exact plaintext, or nothing.
fn record_read(stats: &mut WorkerStats, seen: &[u8], expected: &[u8], what: &str) {
    if seen.is_empty() {
        stats.empty += 1;
    } else {
        assert!(
            seen == expected,
            "{what}: WRONG PLAINTEXT ({} bytes, expected {}, {} zeros)",
            seen.len(),
            expected.len(),
            zeros(seen)
        );
        stats.successes += 1;
    }
}

/// Seals a secret with `Enclave::new`, or records a purge-induced failure.
fn seal_or_record(stats: &mut WorkerStats, secret: &[u8], what: &str) -> Option<Enclave> {
    let mut src = secret.to_vec();
    match Enclave::new(&mut src) {
        Ok(e) => {
            assert_eq!(zeros(&src), src.len(), "{what}: source not wiped");
            Some(e)
        }
        Err(Error::Destroyed) => {
            assert!(src == secret, "{what}: a failed seal changed its source");
            stats.seal_destroyed += 1;
            None
        }
        Err(e) => panic!("{what}: Enclave::new: unexpected error {e:?}"),
    }
}

fn worker(id: usize, stop: &AtomicBool) -> WorkerStats {
    const MIN_ITERATIONS: usize = 50;
    const MAX_ITERATIONS: usize = 200_000;
    let mut stats = WorkerStats::default();
    let dst_len = 64 + id * 37;
    let mut dst = LockedBuffer::new(dst_len).unwrap();
    let mut dst_content = vec![0u8; dst_len];
    for i in 0..MAX_ITERATIONS {
        if i >= MIN_ITERATIONS && stop.load(Ordering::SeqCst) {
            break;
        }
        let seed = id * 1_000_003 + i;
        let what = format!("worker {id} iteration {i}");
        match i % 4 {
            // Enclave::new, then open.
            0 => {
                let secret = pattern(1 + (seed % 300), seed);
                if let Some(sealed) = seal_or_record(&mut stats, &secret, &what) {
                    match sealed.open() {
                        Ok(buf) => record_read(&mut stats, &buf.bytes(), &secret, &what),
                        Err(Error::DecryptionFailed) => stats.decryption_failed += 1,
                        Err(Error::Destroyed) => stats.destroyed += 1,
                        Err(e) => panic!("{what}: open: unexpected error {e:?}"),
                    }
                }
            }
            // Enclave::new, then open_into a long-lived destination.
            1 => {
                let secret = pattern(dst_len, seed);
                if !dst.is_alive() {
                    dst = LockedBuffer::new(dst_len).unwrap();
                    dst_content = vec![0u8; dst_len];
                }
                if let Some(sealed) = seal_or_record(&mut stats, &secret, &what) {
                    match sealed.open_into(&mut dst) {
                        Ok(()) => {
                            record_read(&mut stats, &dst.bytes(), &secret, &what);
                            dst_content = secret;
                        }
                        Err(Error::DecryptionFailed) => {
                            let seen = dst.bytes();
                            assert!(
                                seen.is_empty() || seen[..] == dst_content[..],
                                "{what}: failed open_into changed the destination"
                            );
                            stats.decryption_failed += 1;
                        }
                        Err(Error::Destroyed) => stats.destroyed += 1,
                        Err(e) => panic!("{what}: open_into: unexpected error {e:?}"),
                    }
                }
            }
            // LockedBuffer::from_bytes, seal, open.
            2 => {
                let secret = pattern(1 + (seed % 5000), seed);
                let mut src = secret.clone();
                let buf = match LockedBuffer::from_bytes(&mut src) {
                    Ok(b) => b,
                    Err(Error::Destroyed) => {
                        stats.destroyed += 1;
                        continue;
                    }
                    Err(e) => panic!("{what}: from_bytes: unexpected error {e:?}"),
                };
                let sealed = match buf.seal() {
                    Ok(s) => s,
                    Err(Error::Destroyed) => {
                        stats.destroyed += 1;
                        continue;
                    }
                    Err(e) => panic!("{what}: seal: unexpected error {e:?}"),
                };
                match sealed.open() {
                    Ok(buf) => record_read(&mut stats, &buf.bytes(), &secret, &what),
                    Err(Error::DecryptionFailed) => stats.decryption_failed += 1,
                    Err(Error::Destroyed) => stats.destroyed += 1,
                    Err(e) => panic!("{what}: open: unexpected error {e:?}"),
                }
            }
            // Enclave::random, opened twice: both opens agree.
            _ => {
                let sealed = match Enclave::random(48) {
                    Ok(s) => s,
                    Err(Error::Destroyed) => {
                        stats.seal_destroyed += 1;
                        continue;
                    }
                    Err(e) => panic!("{what}: random: unexpected error {e:?}"),
                };
                match (sealed.open(), sealed.open()) {
                    (Ok(a), Ok(b)) => {
                        let (a, b) = (a.bytes(), b.bytes());
                        if !a.is_empty() && !b.is_empty() {
                            assert!(
                                a[..] == b[..],
                                "{what}: two opens of one random enclave differ"
                            );
                            stats.successes += 1;
                        } else {
                            stats.empty += 1;
                        }
                    }
                    (a, b) => {
                        for r in [a, b] {
                            match r {
                                Ok(_) => {}
                                Err(Error::DecryptionFailed) => stats.decryption_failed += 1,
                                Err(Error::Destroyed) => stats.destroyed += 1,
                                Err(e) => panic!("{what}: open random: unexpected error {e:?}"),
                            }
                        }
                    }
                }
            }
        }
    }
    stats
}

#[test]
fn eight_threads_seal_and_open_while_another_purges_repeatedly() {
    let _serial = serial();
    const WORKERS: usize = 8;
    const PURGES: usize = 50;
    let stop = Arc::new(AtomicBool::new(false));
    let purges_done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for id in 0..WORKERS {
        let stop = Arc::clone(&stop);
        handles.push(thread::spawn(move || worker(id, &stop)));
    }
    let purger = {
        let (stop, purges_done) = (Arc::clone(&stop), Arc::clone(&purges_done));
        thread::spawn(move || {
            for _ in 0..PURGES {
                thread::sleep(Duration::from_millis(2));
                purge();
                purges_done.fetch_add(1, Ordering::SeqCst);
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    let results = join_all(handles, Duration::from_secs(120), "sealing/opening workers");
    join_all(vec![purger], Duration::from_secs(10), "purger");
    assert_eq!(purges_done.load(Ordering::SeqCst), PURGES);

    let mut total = WorkerStats::default();
    for (id, stats) in results.iter().enumerate() {
        println!("worker {id}: {stats:?}");
        total.add(*stats);
    }
    println!("all workers, {PURGES} purges: {total:?}");
    assert!(total.successes > 0, "no operation succeeded: {total:?}");
    // Nothing is borrowed any more: one more purge leaves nothing behind.
    purge();
    assert_eq!(live_buffers(), 0);
}

/// `Enclave::new` documents no `Error::Destroyed`, so a concurrent `purge()`
/// must never make it fail that way. (It once did: purge took the key out,
/// then destroyed every buffer, so a key made by another thread in between
/// was destroyed under it. Purge now holds the coffer lock throughout.)
#[test]
fn enclave_new_never_fails_with_destroyed_during_a_concurrent_purge() {
    let _serial = serial();
    let stop = Arc::new(AtomicBool::new(false));
    let purger = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                purge();
            }
        })
    };
    let mut outcome = Ok(0);
    for i in 0..50_000 {
        let mut src = [7u8; 8];
        match Enclave::new(&mut src) {
            Ok(_) => {}
            Err(e) => {
                outcome = Err((i, e));
                break;
            }
        }
        outcome = Ok(i + 1);
    }
    stop.store(true, Ordering::SeqCst);
    join_all(vec![purger], Duration::from_secs(10), "purger");
    match outcome {
        Ok(n) => println!("{n} seals, none failed"),
        Err((i, e)) => panic!("Enclave::new failed at iteration {i} with {e:?}: {e}"),
    }
}

/// The rekeying thread and RLIMIT_MEMLOCK: read from `/proc` and set with
/// Linux calls.
#[cfg(target_os = "linux")]
mod linux_only {
    use super::*;
    use memguard::set_rekey_interval;

    // ---------------------------------------------------------------------------
    // The rekeying thread
    // ---------------------------------------------------------------------------

    /// The number of threads of this process named `memguard-rekey`.
    fn rekey_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("read /proc/self/task")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim_end() == "memguard-rekey")
            .count()
    }

    /// Waits (up to a generous bound that only catches hangs) for `cond`.
    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "gave up waiting for: {what}");
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn child_rekey_thread_lifetime() {
        assert_eq!(
            rekey_threads(),
            0,
            "no session key yet, so no rekeying thread"
        );
        let msg = pattern(50, 8);
        let sealed = Enclave::new(&mut msg.clone()).unwrap();
        wait_for("one rekeying thread after the first seal", || {
            rekey_threads() == 1
        });

        purge();
        wait_for("the rekeying thread to end after purge", || {
            rekey_threads() == 0
        });

        // Many keys in a row: old threads end, they do not pile up.
        for _ in 0..20 {
            Enclave::random(8).unwrap();
            purge();
        }
        wait_for("no rekeying thread after 20 purges", || {
            rekey_threads() == 0
        });
        let sealed2 = Enclave::new(&mut msg.clone()).unwrap();
        wait_for("exactly one rekeying thread", || rekey_threads() == 1);
        assert!(matches!(sealed.open(), Err(Error::DecryptionFailed)));

        // With rekeying off the thread parks without a timeout; purge must still
        // wake and end it.
        set_rekey_interval(None);
        thread::sleep(Duration::from_millis(20));
        assert!(sealed2.open().unwrap().equal_to(&msg));
        purge();
        wait_for("the parked rekeying thread to end after purge", || {
            rekey_threads() == 0
        });

        // A key made while rekeying is off, then rekeying turned back on fast.
        let sealed3 = Enclave::new(&mut msg.clone()).unwrap();
        wait_for("one rekeying thread with rekeying off", || {
            rekey_threads() == 1
        });
        set_rekey_interval(Some(Duration::from_millis(2)));
        thread::sleep(Duration::from_millis(50));
        assert!(sealed3.open().unwrap().equal_to(&msg), "after fast rekeys");
        assert_eq!(rekey_threads(), 1);
        set_rekey_interval(Some(Duration::from_millis(500)));
        assert!(sealed3.open().unwrap().equal_to(&msg));
        purge();
        wait_for("no rekeying thread at the end", || rekey_threads() == 0);
        println!("REKEY THREAD OK");
    }

    #[test]
    fn rekeying_thread_starts_with_the_key_and_ends_on_purge() {
        if support::child_scenario().as_deref() == Some("rekey-thread") {
            child_rekey_thread_lifetime();
            return;
        }
        let out = support::run_child_timeout(
            "linux_only::rekeying_thread_starts_with_the_key_and_ends_on_purge",
            "rekey-thread",
            Duration::from_secs(30),
        );
        expect_clean_exit(&out, 0, "REKEY THREAD OK");
    }

    // ---------------------------------------------------------------------------
    // RLIMIT_MEMLOCK
    // ---------------------------------------------------------------------------

    /// Checks that a child exited with `code`, printed `marker` and did not
    /// panic.
    fn expect_clean_exit(out: &std::process::Output, code: i32, marker: &str) {
        let text = format!("{}{}", support::stdout(out), support::stderr(out));
        assert_eq!(out.status.code(), Some(code), "{}", support::describe(out));
        assert!(
            text.contains(marker),
            "missing {marker:?}: {}",
            support::describe(out)
        );
        assert!(!text.contains("panicked"), "{}", support::describe(out));
    }

    /// Lowers `RLIMIT_MEMLOCK` and drops `CAP_IPC_LOCK` from this thread (root
    /// ignores the limit otherwise); all allocation must stay on this thread.
    fn limit_locked_memory(bytes: u64) {
        support::set_memlock_limit(bytes);
        support::drop_capabilities();
    }

    fn expect_memlock_error(r: Result<impl std::fmt::Debug, Error>, limit: u64, what: &str) {
        match r {
            Err(e @ Error::MemoryLock { .. }) => {
                let text = e.to_string();
                assert!(text.contains("RLIMIT_MEMLOCK"), "{what}: {text}");
                match e {
                    Error::MemoryLock {
                        limit: l,
                        requested,
                        ..
                    } => {
                        assert_eq!(l, Some(limit), "{what}: {text}");
                        assert!(requested > 0, "{what}: {text}");
                    }
                    _ => unreachable!(),
                }
            }
            other => panic!("{what}: expected Err(MemoryLock), got {other:?}"),
        }
    }

    fn child_memlock_zero() {
        limit_locked_memory(0);
        let secret = pattern(32, 9);
        let mut src = secret.clone();
        expect_memlock_error(Enclave::new(&mut src), 0, "Enclave::new");
        assert_eq!(
            src, secret,
            "a failed Enclave::new must leave its source alone"
        );
        expect_memlock_error(Enclave::random(32), 0, "Enclave::random");
        expect_memlock_error(LockedBuffer::new(1), 0, "LockedBuffer::new");
        expect_memlock_error(
            LockedBuffer::from_bytes(&mut src),
            0,
            "LockedBuffer::from_bytes",
        );
        assert_eq!(src, secret);
        // Trying again fails the same way: no half-made session key is left.
        expect_memlock_error(Enclave::new(&mut src), 0, "Enclave::new again");
        assert_eq!(live_buffers(), 0);
        purge();
        expect_memlock_error(Enclave::random(8), 0, "Enclave::random after purge");
        println!("MEMLOCK 0 OK");
    }

    fn child_memlock_limited(limit: u64) {
        // One page per buffer until the limit: buffers of their own (past
        // it, compact secrets would go on; tests/compact.rs covers them).
        memguard::set_compact_mode(memguard::CompactMode::Never);
        limit_locked_memory(limit);
        let msg = pattern(32, 10);
        let sealed = Enclave::new(&mut msg.clone()).expect("first seal under the limit");
        let first = sealed.open().expect("first open under the limit");
        assert!(first.equal_to(&msg));
        let pages = limit / first.page_size() as u64;

        // Keep opening, holding every buffer, until locked memory runs out.
        let mut held = vec![first];
        let err = loop {
            assert!(held.len() < 100_000, "the limit never bit");
            let before = live_buffers();
            match sealed.open() {
                Ok(buf) => {
                    assert!(buf.equal_to(&msg));
                    held.push(buf);
                }
                Err(e) => {
                    assert_eq!(live_buffers(), before, "a failed open left a buffer");
                    break e;
                }
            }
        };
        expect_memlock_error(Err::<(), _>(err), limit, "open past the limit");
        // One page for the session key, one per small buffer: guard pages are
        // not locked.
        assert_eq!(
            held.len() as u64,
            pages - 1,
            "{} opened buffers fit in {pages} lockable pages",
            held.len()
        );
        expect_memlock_error(
            LockedBuffer::new(1),
            limit,
            "LockedBuffer::new at the limit",
        );
        // Sealing needs no locked memory once the key exists.
        let sealed_at_limit = Enclave::new(&mut msg.clone()).expect("seal at the limit");

        // Destroying one buffer gives its page back.
        held.pop();
        held.push(sealed_at_limit.open().expect("open after freeing a page"));
        expect_memlock_error(sealed.open(), limit, "open past the limit again");

        purge();
        assert_eq!(live_buffers(), 0);
        assert!(held.iter().all(|b| !b.is_alive()));
        // Old enclaves now fail for the right reason.
        assert!(matches!(sealed.open(), Err(Error::DecryptionFailed)));
        let fresh = Enclave::new(&mut msg.clone()).expect("seal after purge");
        let opened = fresh.open().expect("open after purge");
        assert!(opened.equal_to(&msg));
        // The whole budget is back: the new key and `opened` use two pages.
        let mut more = Vec::new();
        while let Ok(b) = fresh.open() {
            more.push(b);
            assert!(more.len() < 100_000, "the limit never bit after purge");
        }
        assert_eq!(more.len() as u64, pages - 2, "buffers that fit after purge");
        println!("MEMLOCK {limit} OK: {} buffers fit", held.len());
    }

    fn memlock_parent(test: &str, scenario: &str, marker: &str) {
        let out = support::run_child_timeout(test, scenario, Duration::from_secs(30));
        print!("{}", support::stdout(&out));
        expect_clean_exit(&out, 0, marker);
    }

    #[test]
    fn memlock_limit_zero_fails_cleanly() {
        if support::child_scenario().as_deref() == Some("memlock-0") {
            child_memlock_zero();
            return;
        }
        memlock_parent(
            "linux_only::memlock_limit_zero_fails_cleanly",
            "memlock-0",
            "MEMLOCK 0 OK",
        );
    }

    #[test]
    fn memlock_limit_16k_runs_out_and_purge_recovers() {
        if support::child_scenario().as_deref() == Some("memlock-16k") {
            child_memlock_limited(16 << 10);
            return;
        }
        memlock_parent(
            "linux_only::memlock_limit_16k_runs_out_and_purge_recovers",
            "memlock-16k",
            "MEMLOCK 16384 OK",
        );
    }

    #[test]
    fn memlock_limit_64k_runs_out_and_purge_recovers() {
        if support::child_scenario().as_deref() == Some("memlock-64k") {
            child_memlock_limited(64 << 10);
            return;
        }
        memlock_parent(
            "linux_only::memlock_limit_64k_runs_out_and_purge_recovers",
            "memlock-64k",
            "MEMLOCK 65536 OK",
        );
    }
}

// ---------------------------------------------------------------------------
// safe_exit and safe_panic
// ---------------------------------------------------------------------------

static EXIT_BUFFER: OnceLock<LockedBuffer> = OnceLock::new();
static EXIT_ENCLAVE: OnceLock<Enclave> = OnceLock::new();

/// What became of the buffer and the enclave kept in the statics above.
fn describe_statics() -> String {
    let alive = EXIT_BUFFER.get().map(LockedBuffer::is_alive);
    let enclave = EXIT_ENCLAVE.get().map(|e| match e.open() {
        Ok(_) => "opens".to_string(),
        Err(Error::DecryptionFailed) => "decryption-failed".to_string(),
        Err(e) => format!("{e:?}"),
    });
    format!(
        "buffer_alive={alive:?} enclave={enclave:?} live_buffers={}",
        live_buffers()
    )
}

#[cfg(unix)]
extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

/// Runs inside `exit()`, after `safe_exit` purged: reports on stderr.
#[cfg(unix)]
extern "C" fn report_at_exit() {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "AT EXIT: {}", describe_statics());
}

fn fill_statics() {
    let buf = LockedBuffer::from_bytes(&mut pattern(64, 11)).unwrap();
    let enclave = Enclave::new(&mut pattern(64, 12)).unwrap();
    assert!(EXIT_BUFFER.set(buf).is_ok() && EXIT_ENCLAVE.set(enclave).is_ok());
}

#[test]
// The check runs in a C `atexit` handler, which Rust's exit on Windows
// (`ExitProcess`) does not run.
#[cfg(unix)]
fn safe_exit_purges_and_exits_with_the_code() {
    if support::child_scenario().as_deref() == Some("safe-exit") {
        fill_statics();
        let opened = EXIT_ENCLAVE.get().unwrap().open().unwrap();
        assert!(opened.is_alive());
        eprintln!("BEFORE EXIT: {}", describe_statics());
        // SAFETY: registers a plain function with no captured state.
        let registered = unsafe { atexit(report_at_exit) };
        assert_eq!(registered, 0, "atexit failed");
        memguard::safe_exit(42);
    }
    let out = support::run_child_timeout(
        "safe_exit_purges_and_exits_with_the_code",
        "safe-exit",
        Duration::from_secs(30),
    );
    let err = support::stderr(&out);
    assert_eq!(out.status.code(), Some(42), "{}", support::describe(&out));
    assert!(
        err.contains("BEFORE EXIT: buffer_alive=Some(true) enclave=Some(\"opens\")"),
        "{}",
        support::describe(&out)
    );
    let before: usize = err
        .lines()
        .find_map(|l| {
            l.strip_prefix("BEFORE EXIT: ")?
                .split("live_buffers=")
                .nth(1)?
                .parse()
                .ok()
        })
        .expect("live_buffers before exit");
    assert!(before >= 3, "buffer, opened buffer and key: {before}");
    assert!(
        err.contains(
            "AT EXIT: buffer_alive=Some(false) enclave=Some(\"decryption-failed\") live_buffers=0"
        ),
        "safe_exit must purge before exiting:\n{}",
        support::describe(&out)
    );
    assert!(!err.contains("panicked"), "{}", support::describe(&out));
}

#[test]
fn safe_panic_purges_then_panics_with_the_message() {
    if support::child_scenario().as_deref() == Some("safe-panic") {
        fill_statics();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The hook runs as the panic starts: the purge must be done.
            eprintln!("PANIC HOOK: {}", describe_statics());
            previous(info);
        }));
        eprintln!("BEFORE PANIC: {}", describe_statics());
        memguard::safe_panic("boom 1234");
    }
    let out = support::run_child_timeout(
        "safe_panic_purges_then_panics_with_the_message",
        "safe-panic",
        Duration::from_secs(30),
    );
    let err = support::stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(101),
        "the test harness reports a panic with 101: {}",
        support::describe(&out)
    );
    assert!(err.contains("boom 1234"), "{}", support::describe(&out));
    assert!(
        err.contains("BEFORE PANIC: buffer_alive=Some(true) enclave=Some(\"opens\")"),
        "{}",
        support::describe(&out)
    );
    assert!(
        err.contains(
            "PANIC HOOK: buffer_alive=Some(false) enclave=Some(\"decryption-failed\") live_buffers=0"
        ),
        "safe_panic must purge before panicking:\n{}",
        support::describe(&out)
    );
}

#[test]
fn safe_panic_can_be_caught_and_has_purged() {
    let _serial = serial();
    let buf = LockedBuffer::from_bytes(&mut pattern(20, 13)).unwrap();
    let sealed = Enclave::new(&mut pattern(20, 14)).unwrap();
    let caught = std::panic::catch_unwind(|| memguard::safe_panic(format_args!("caught {}", 5678)));
    let payload = caught.expect_err("safe_panic returned");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert_eq!(message, "caught 5678");
    assert!(!buf.is_alive());
    assert!(matches!(sealed.open(), Err(Error::DecryptionFailed)));
    assert_eq!(live_buffers(), 0);
}
