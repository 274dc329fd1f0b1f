//! The concurrency contract: `purge` may run on any thread at any time, never
//! waits for a guard, never deadlocks, and never frees or wipes memory a live
//! guard can still read; a borrowed buffer is destroyed when its last guard
//! is dropped.
//!
//! `purge` is process-wide, so every test here takes [`SERIAL`] first: no two
//! tests of this file ever run at the same time. Bodies that could deadlock
//! run on a thread joined with a timeout, so a deadlock fails the test
//! instead of hanging it.

use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use memguard::{Error, LockedBuffer, Ref};
#[cfg(target_os = "linux")]
use support::procfs::{is_mapped, locked_bytes, mapping_of, read_smaps};

mod support;

static SERIAL: Mutex<()> = Mutex::new(());

/// Set (to any value) in the environment of a re-run of this file in which
/// every buffer is compact (see `every_test_here_passes_with_compact_secrets`).
const COMPACT_ENV: &str = "MEMGUARD_TEST_COMPACT";

/// Every test here takes this first; in the compact re-run it also makes
/// every small buffer compact.
fn serial() -> MutexGuard<'static, ()> {
    if std::env::var_os(COMPACT_ENV).is_some() {
        memguard::set_compact_mode(memguard::CompactMode::Always);
    }
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The contract holds for compact secrets too: this file's other tests,
/// re-run in a child with every small buffer compact, all pass (and at
/// least one buffer there was compact: see `compact_run_makes_compact_buffers`).
#[test]
fn every_test_here_passes_with_compact_secrets() {
    if std::env::var_os(COMPACT_ENV).is_some() {
        return; // the re-run itself
    }
    const ME: &str = "every_test_here_passes_with_compact_secrets";
    let exe = std::env::current_exe().expect("this test binary");
    // How many there are on this system (some are Unix-only).
    let listed = std::process::Command::new(&exe)
        .args(["--list", "--skip", ME])
        .output()
        .expect("list this test binary's tests");
    let tests = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|l| l.ends_with(": test"))
        .count();
    assert!(
        tests >= 10,
        "too few tests listed:\n{}",
        String::from_utf8_lossy(&listed.stdout)
    );
    let out = std::process::Command::new(exe)
        .args(["--skip", ME, "--test-threads=2"])
        .env(COMPACT_ENV, "1")
        .output()
        .expect("re-run this test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the concurrency tests with compact secrets:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("test result: ok. {tests} passed")),
        "expected all {tests} other tests to run and pass:\n{stdout}"
    );
}

#[test]
fn compact_run_makes_compact_buffers() {
    let _serial = serial();
    let buf = LockedBuffer::new(32).unwrap();
    let expected = std::env::var_os(COMPACT_ENV).is_some();
    assert_eq!(buf.is_compact(), expected, "{:?}", buf.protections());
}

/// Runs `body` on a fresh thread and waits at most `secs` seconds for it. A
/// panic in `body` is passed on; a timeout fails the test (a deadlock).
fn with_timeout<F>(what: &str, secs: u64, body: F)
where
    F: FnOnce() + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name(what.to_string())
        .spawn(move || {
            body();
            let _ = tx.send(());
        })
        .expect("spawn test body");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => handle.join().expect("test body"),
        Err(RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
            unreachable!("the body ended without reporting and without panicking");
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!("{what}: did not finish within {secs} s (deadlock or hang)")
        }
    }
}

/// A deterministic, never-all-zero byte pattern.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

/// A random secret from the OS, kept in ordinary memory for comparison.
fn random_secret(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    memguard::scramble_bytes(&mut v).unwrap();
    assert!(v.iter().any(|&b| b != 0));
    v
}

/// Checks that a view is the whole of `expected` or empty, never partial,
/// zeroed or altered.
fn check_view(view: &[u8], expected: &[u8], context: &str) {
    if view.is_empty() {
        return;
    }
    if view != expected {
        let zeros = view.iter().filter(|&&b| b == 0).count();
        let same = view.iter().zip(expected).filter(|(a, b)| a == b).count();
        panic!(
            "{context}: a view of {} bytes (expected {}) with {zeros} zero bytes and {same} \
             matching bytes: neither the whole secret nor empty",
            view.len(),
            expected.len()
        );
    }
}

// ---------------------------------------------------------------------------
// (1) purge while the same thread holds a guard
// ---------------------------------------------------------------------------

#[test]
#[cfg(target_os = "linux")] // reads /proc/self/maps
fn purge_while_same_thread_holds_bytes_guard() {
    let _serial = serial();
    with_timeout("purge with a bytes() guard held", 10, || {
        let secret = random_secret(4096);
        let buf = LockedBuffer::from_bytes(&mut secret.clone()).unwrap();
        let guard = buf.bytes();
        let addr = guard.as_ptr() as usize;
        memguard::purge();
        assert!(!buf.is_alive(), "is_alive() after purge");
        assert_eq!(buf.len(), 0);
        assert!(buf.is_empty());
        assert!(!buf.is_mutable());
        // No new guards once destruction is requested...
        assert!(buf.bytes().is_empty());
        assert!(!buf.equal_to(&secret));
        // ...but the one held still reads the whole secret, still mapped.
        assert_eq!(&*guard, &secret[..]);
        assert!(is_mapped(addr));
        assert_eq!(&*guard, &secret[..]);
        drop(guard);
        assert!(buf.bytes().is_empty());
        assert!(!buf.is_alive());
        assert!(
            !is_mapped(addr),
            "the data is still mapped after the last guard"
        );
    });
}

#[test]
#[cfg(target_os = "linux")] // reads /proc/self/maps
fn purge_while_same_thread_holds_bytes_mut_guard() {
    let _serial = serial();
    with_timeout("purge with a bytes_mut() guard held", 10, || {
        let secret = random_secret(4096);
        let mut buf = LockedBuffer::new(secret.len()).unwrap();
        buf.copy(&secret).unwrap();
        let mut guard = buf.bytes_mut().unwrap();
        let addr = guard.as_ptr() as usize;
        memguard::purge();
        assert_eq!(&*guard, &secret[..]);
        // Writing through the guard after the purge still works.
        guard[..5].copy_from_slice(b"hello");
        guard[4095] = 0xab;
        assert_eq!(&guard[..5], b"hello");
        assert_eq!(&guard[5..4095], &secret[5..4095]);
        assert_eq!(guard[4095], 0xab);
        assert!(is_mapped(addr));
        drop(guard);
        assert!(!buf.is_alive());
        assert!(buf.bytes().is_empty());
        assert!(matches!(buf.bytes_mut(), Err(Error::Destroyed)));
        assert!(matches!(buf.freeze(), Err(Error::Destroyed)));
        assert!(!is_mapped(addr));
    });
}

#[test]
fn purge_while_a_mapped_view_is_held() {
    let _serial = serial();
    with_timeout("purge with typed views held", 10, || {
        let secret = random_secret(64);
        let mut buf = LockedBuffer::from_bytes(&mut secret.clone()).unwrap();
        {
            let tail = Ref::map(buf.bytes(), |b| &b[32..]);
            let words = buf.u64_slice().unwrap();
            memguard::purge();
            assert_eq!(&*tail, &secret[32..]);
            assert_eq!(words.len(), 8);
            assert_eq!(words[0].to_ne_bytes(), secret[..8]);
            assert!(matches!(buf.byte_array8(), Err(Error::Destroyed)));
        }
        assert!(!buf.is_alive());
        assert!(matches!(buf.melt(), Err(Error::Destroyed)));
    });
}

// ---------------------------------------------------------------------------
// (2) purge while a reader is alive
// ---------------------------------------------------------------------------

#[test]
fn purge_while_reader_is_alive() {
    let _serial = serial();
    with_timeout("purge with a reader alive", 10, || {
        let secret = random_secret(10_000);
        let buf = LockedBuffer::from_bytes(&mut secret.clone()).unwrap();
        let mut reader = buf.reader();
        let mut head = [0u8; 100];
        reader.read_exact(&mut head).unwrap();
        memguard::purge();
        assert!(!buf.is_alive());
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(&head[..], &secret[..100]);
        assert_eq!(rest, &secret[100..]);
        // Seeking back and reading again still sees the whole secret.
        reader.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all, secret);
        // A reader made after the purge is empty.
        let mut late = Vec::new();
        buf.reader().read_to_end(&mut late).unwrap();
        assert!(late.is_empty());
        drop(reader);
        assert!(buf.bytes().is_empty());
    });
}

// ---------------------------------------------------------------------------
// (3) readers on other threads see the whole secret or nothing
// ---------------------------------------------------------------------------

#[test]
fn readers_see_whole_secret_or_nothing_during_purge() {
    let _serial = serial();
    with_timeout("readers during purge", 60, || {
        const ROUNDS: usize = 300;
        const READERS: usize = 4;
        const MAX_VIEWS: usize = 20_000;
        let secret = random_secret(4096);
        let full_views = AtomicUsize::new(0);
        let empty_views = AtomicUsize::new(0);
        for round in 0..ROUNDS {
            let buf = LockedBuffer::from_bytes(&mut secret.clone()).unwrap();
            let barrier = Barrier::new(READERS + 1);
            thread::scope(|s| {
                for r in 0..READERS {
                    let (buf, secret, barrier) = (&buf, &secret, &barrier);
                    let (full_views, empty_views) = (&full_views, &empty_views);
                    s.spawn(move || {
                        // Before the purge: always the whole secret.
                        assert_eq!(&*buf.bytes(), &secret[..], "round {round} reader {r}");
                        barrier.wait();
                        for i in 0..MAX_VIEWS {
                            let view = buf.bytes();
                            let context = format!("round {round} reader {r} view {i}");
                            check_view(&view, secret, &context);
                            if view.is_empty() {
                                empty_views.fetch_add(1, Ordering::Relaxed);
                                assert!(!buf.is_alive(), "{context}: empty view of a live buffer");
                                break;
                            }
                            full_views.fetch_add(1, Ordering::Relaxed);
                            // Hold the view a little and look again: a purge
                            // meanwhile must not wipe or unmap it.
                            for _ in 0..(i % 64) {
                                std::hint::spin_loop();
                            }
                            check_view(&view, secret, &context);
                            assert_eq!(view.len(), secret.len(), "{context}");
                        }
                    });
                }
                barrier.wait();
                for _ in 0..(round % 40) * 50 {
                    std::hint::spin_loop();
                }
                memguard::purge();
                assert!(!buf.is_alive());
            });
            assert!(buf.bytes().is_empty());
            assert!(!buf.is_alive());
        }
        eprintln!(
            "readers: {} full views, {} empty views over {ROUNDS} rounds",
            full_views.load(Ordering::Relaxed),
            empty_views.load(Ordering::Relaxed)
        );
    });
}

// ---------------------------------------------------------------------------
// (4) stress: many threads using buffers while another purges
// ---------------------------------------------------------------------------

/// `Ok` and `Destroyed` are fine under a concurrent purge; anything else
/// (`Busy` included: each buffer here has a single owner) is a failure.
fn ok_or_destroyed<T: std::fmt::Debug>(r: memguard::Result<T>, context: &str) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(Error::Destroyed) => None,
        Err(e) => panic!("{context}: unexpected error {e:?}"),
    }
}

/// The buffer holds `expected` or, once destroyed, nothing.
fn check_buffer(buf: &LockedBuffer, expected: &[u8], context: &str) {
    let view = buf.bytes();
    check_view(&view, expected, context);
    if view.is_empty() {
        assert!(!buf.is_alive(), "{context}: empty view of a live buffer");
    }
    drop(view);
    assert!(
        buf.equal_to(expected) || !buf.is_alive(),
        "{context}: equal_to false for a live buffer"
    );
}

fn worker(id: u64, iterations: usize) {
    let mut rng = id.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    for it in 0..iterations {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let len = match rng % 8 {
            0 => 4096 + (rng >> 8) as usize % 5000,
            _ => 1 + (rng >> 8) as usize % 300,
        };
        let context = format!("worker {id} iteration {it} len {len}");
        let mut expected = pattern(len, rng);

        let mut buf = match LockedBuffer::new(len) {
            Ok(b) => b,
            Err(e) => panic!("{context}: new: {e:?}"),
        };
        match ok_or_destroyed(buf.copy(&expected), &context) {
            Some(()) => check_buffer(&buf, &expected, &context),
            None => assert!(buf.bytes().is_empty(), "{context}: copy said Destroyed"),
        }
        let frozen = ok_or_destroyed(buf.freeze(), &context).is_some();
        check_buffer(&buf, &expected, &context);
        match buf.copy(b"x") {
            Err(Error::Immutable) if frozen => {}
            Err(Error::Destroyed) => {}
            other => panic!("{context}: copy into a frozen buffer gave {other:?}"),
        }
        check_buffer(&buf, &expected, &context);
        ok_or_destroyed(buf.melt(), &context);
        if let Some(mut g) = ok_or_destroyed(buf.bytes_mut(), &context) {
            check_view(&g, &expected, &context);
            assert_eq!(g.len(), expected.len(), "{context}: bytes_mut length");
            g[0] ^= 0x5a;
            expected[0] ^= 0x5a;
            let last = g.len() - 1;
            g[last] = g[last].wrapping_add(1);
            expected[last] = expected[last].wrapping_add(1);
        }
        check_buffer(&buf, &expected, &context);
        if let Some(first) = ok_or_destroyed(buf.byte_array::<1>(), &context) {
            assert_eq!(first[0], expected[0], "{context}: byte_array");
        }
        if let Some(mut one) = ok_or_destroyed(buf.byte_array_mut::<1>(), &context) {
            one[0] = 0x11;
            expected[0] = 0x11;
        }
        check_buffer(&buf, &expected, &context);
        let mut src = expected.clone();
        let pos = src.len() / 2;
        if ok_or_destroyed(buf.move_from(&mut src), &context).is_some() {
            assert!(src.iter().all(|&b| b == 0), "{context}: move_from kept src");
        } else {
            assert_eq!(src, expected, "{context}: failed move_from changed src");
        }
        check_buffer(&buf, &expected, &context);
        ok_or_destroyed(buf.copy_at(pos, &expected[pos..pos + 1]), &context);
        check_buffer(&buf, &expected, &context);

        // Constructors racing with purge.
        let mut src = expected.clone();
        match LockedBuffer::from_bytes(&mut src) {
            Ok(b) => {
                assert!(
                    src.iter().all(|&x| x == 0),
                    "{context}: from_bytes kept src"
                );
                check_buffer(&b, &expected, &context);
            }
            Err(Error::Destroyed) => assert_eq!(src, expected, "{context}: from_bytes"),
            Err(e) => panic!("{context}: from_bytes: {e:?}"),
        }
        if let Some(b) = ok_or_destroyed(LockedBuffer::from_reader(&expected[..], len), &context) {
            check_buffer(&b, &expected, &context);
        }
        if let Some(b) = ok_or_destroyed(LockedBuffer::random(32), &context) {
            let v = b.bytes();
            assert!(v.is_empty() || v.len() == 32, "{context}: random");
        }
        if it % 2 == 0 {
            buf.destroy();
        } else {
            drop(buf);
        }
    }
}

#[test]
fn stress_workers_with_concurrent_purges() {
    let _serial = serial();
    let start = memguard::live_buffers();
    with_timeout("stress", 60, || {
        const WORKERS: u64 = 8;
        const ITERATIONS: usize = 150;
        const MAX_PURGES: usize = 200_000;
        let done = AtomicBool::new(false);
        let purges = AtomicUsize::new(0);
        thread::scope(|s| {
            let purger = s.spawn(|| {
                while !done.load(Ordering::Acquire) && purges.load(Ordering::Relaxed) < MAX_PURGES {
                    memguard::purge();
                    purges.fetch_add(1, Ordering::Relaxed);
                    if purges.load(Ordering::Relaxed).is_multiple_of(4) {
                        thread::sleep(Duration::from_micros(50));
                    } else {
                        thread::yield_now();
                    }
                }
            });
            let workers: Vec<_> = (0..WORKERS)
                .map(|id| s.spawn(move || worker(id, ITERATIONS)))
                .collect();
            let mut failed = None;
            for w in workers {
                if let Err(p) = w.join() {
                    failed.get_or_insert(p);
                }
            }
            done.store(true, Ordering::Release);
            purger.join().expect("purger");
            if let Some(p) = failed {
                std::panic::resume_unwind(p);
            }
        });
        eprintln!("stress: {} purges", purges.load(Ordering::Relaxed));
    });
    // Every buffer is dropped and the purges emptied the registry.
    assert_eq!(memguard::live_buffers(), 0, "started at {start}");
}

/// BUG (src/buffer/readers.rs, `LockedBuffer::grown`): when the buffer of
/// `from_entire_reader` or `from_reader_until` fills up, `grown` reads
/// `self.len()`, allocates a buffer twice that size and then copies
/// `&self.bytes()[..filled]`. A purge on another thread between those steps
/// (the allocation in between makes several system calls, so the window is
/// wide) leaves `self.bytes()` empty and the slice index panics ("range end
/// index 4096 out of range for slice of length 0") instead of returning
/// `Err(Destroyed)`. If the purge lands just before `self.len()`, the new
/// size is 0 and the constructor returns `Err(NullBuffer)` for a source
/// that had data; likewise when a purge destroys the first buffer before the
/// `filled == buf.len()` check, since a destroyed buffer's len() is 0.
///
/// Inputs of one page + 1 byte are used so that exactly one growth happens
/// per read.
#[test]
fn purge_during_reading_constructor_growth_is_an_error_not_a_panic() {
    let _serial = serial();
    with_timeout("purge during reader growth", 60, || {
        const CALLS: usize = 3_000;
        let page = LockedBuffer::new(1).expect("a buffer").page_size();
        let data: Vec<u8> = pattern(page + 1, 99)
            .into_iter()
            .map(|b| if b == b'\n' { b'.' } else { b })
            .collect();
        let mut line = data.clone();
        line.push(b'\n');
        let done = AtomicBool::new(false);
        let started = Barrier::new(2);
        let outcomes = Mutex::new(Vec::<String>::new());
        let (mut ok, mut destroyed) = (0usize, 0usize);
        thread::scope(|s| {
            s.spawn(|| {
                started.wait();
                // Purge at varying intervals (0 to 60 us, busy-waited), so
                // that some purges land in each step of the constructors.
                let mut pause = 0u64;
                while !done.load(Ordering::Acquire) {
                    memguard::purge();
                    pause = (pause + 7) % 61;
                    let until = std::time::Instant::now() + Duration::from_micros(pause);
                    while std::time::Instant::now() < until {
                        std::hint::spin_loop();
                    }
                }
            });
            started.wait();
            for i in 0..CALLS {
                let until = i % 2 == 1;
                let result = std::panic::catch_unwind(|| {
                    if until {
                        LockedBuffer::from_reader_until(&line[..], b'\n')
                    } else {
                        LockedBuffer::from_entire_reader(&data[..])
                    }
                });
                let name = if until {
                    "from_reader_until"
                } else {
                    "from_entire_reader"
                };
                match result {
                    Ok(Ok(buf)) => {
                        check_buffer(&buf, &data, name);
                        ok += 1;
                    }
                    Ok(Err(Error::Destroyed)) => destroyed += 1,
                    Ok(Err(e)) => outcomes
                        .lock()
                        .unwrap()
                        .push(format!("call {i}: {name} returned {e:?}")),
                    Err(p) => {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        outcomes
                            .lock()
                            .unwrap()
                            .push(format!("call {i}: {name} panicked: {msg}"));
                    }
                }
                // Stop once both kinds of wrong outcome have shown up.
                let wrong = outcomes.lock().unwrap();
                let seen = |n: &str| wrong.iter().any(|o| o.contains(n));
                if seen("panicked") && seen("NullBuffer") {
                    break;
                }
            }
            done.store(true, Ordering::Release);
        });
        let outcomes = outcomes.into_inner().unwrap();
        assert!(
            outcomes.is_empty(),
            "{ok} ok, {destroyed} Destroyed, and wrong outcomes:\n{}",
            outcomes.join("\n")
        );
    });
}

// ---------------------------------------------------------------------------
// (5) live_buffers
// ---------------------------------------------------------------------------

#[test]
fn live_buffers_returns_to_start_after_drop() {
    let _serial = serial();
    let start = memguard::live_buffers();
    let bufs: Vec<LockedBuffer> = (1..=20).map(|n| LockedBuffer::new(n).unwrap()).collect();
    assert_eq!(memguard::live_buffers(), start + 20);
    let mut src = *b"abc";
    let frozen = LockedBuffer::from_bytes(&mut src).unwrap();
    let random = LockedBuffer::random(8).unwrap();
    let read = LockedBuffer::from_entire_reader(&b"data"[..]).unwrap();
    assert_eq!(memguard::live_buffers(), start + 23);
    drop(frozen);
    random.destroy();
    drop(read);
    assert_eq!(memguard::live_buffers(), start + 20);
    // Failed constructors leave nothing behind.
    assert!(LockedBuffer::new(0).is_err());
    assert!(LockedBuffer::new(usize::MAX).is_err());
    assert!(LockedBuffer::from_reader(&b"ab"[..], 3).is_err());
    assert!(LockedBuffer::from_entire_reader(&b""[..]).is_err());
    assert!(LockedBuffer::from_reader_until(&b"\n"[..], b'\n').is_err());
    assert_eq!(memguard::live_buffers(), start + 20);
    // Dropped on other threads.
    thread::scope(|s| {
        let mut bufs = bufs;
        while !bufs.is_empty() {
            let part: Vec<_> = bufs.drain(..5.min(bufs.len())).collect();
            s.spawn(move || drop(part));
        }
    });
    assert_eq!(memguard::live_buffers(), start);
}

#[test]
fn live_buffers_after_purge_with_outstanding_guards() {
    let _serial = serial();
    let start = memguard::live_buffers();
    let secret = random_secret(32);
    let a = LockedBuffer::from_bytes(&mut secret.clone()).unwrap();
    let mut b = LockedBuffer::new(32).unwrap();
    let c = LockedBuffer::random(32).unwrap();
    assert_eq!(memguard::live_buffers(), start + 3);
    let ga = a.bytes();
    let mut gb = b.bytes_mut().unwrap();
    memguard::purge();
    // src/buffer/registry.rs: destroy_all empties the registry at once, so
    // buffers with guards outstanding no longer count as live.
    assert_eq!(memguard::live_buffers(), 0);
    assert_eq!(&*ga, &secret[..]);
    gb.fill(1);
    drop(ga);
    drop(gb);
    assert_eq!(memguard::live_buffers(), 0);
    // Buffers made after the purge are counted, and dropping the purged ones
    // (whose slots may now hold new buffers) does not disturb the count.
    let d = LockedBuffer::new(8).unwrap();
    let e = LockedBuffer::new(8).unwrap();
    let f = LockedBuffer::new(8).unwrap();
    assert_eq!(memguard::live_buffers(), 3);
    drop(a);
    drop(b);
    drop(c);
    assert_eq!(memguard::live_buffers(), 3);
    assert!(d.is_alive() && e.is_alive() && f.is_alive());
    drop(e);
    assert_eq!(memguard::live_buffers(), 2);
    let g = LockedBuffer::new(8).unwrap();
    assert_eq!(memguard::live_buffers(), 3);
    drop((d, f, g));
    assert_eq!(memguard::live_buffers(), 0);
}

#[test]
fn buffers_made_after_a_purge_are_untouched_until_the_next() {
    let _serial = serial();
    let old = LockedBuffer::random(16).unwrap();
    memguard::purge();
    memguard::purge();
    assert!(!old.is_alive());
    let secret = random_secret(16);
    let mut new = LockedBuffer::from_bytes(&mut secret.clone()).unwrap();
    assert!(new.is_alive());
    assert!(new.equal_to(&secret));
    new.melt().unwrap();
    new.wipe().unwrap();
    drop(old);
    assert!(new.is_alive());
    memguard::purge();
    assert!(!new.is_alive());
    assert_eq!(memguard::live_buffers(), 0);
}

// ---------------------------------------------------------------------------
// (6) guards dropped on another thread than the purging one
// ---------------------------------------------------------------------------

#[test]
#[cfg(target_os = "linux")] // reads /proc/self/maps
fn ref_dropped_on_another_thread_destroys_the_buffer_then() {
    let _serial = serial();
    with_timeout("guard dropped on another thread", 10, || {
        const LEN: usize = 256 * 1024;
        let secret = random_secret(LEN);
        let buf = LockedBuffer::from_bytes(&mut secret.clone()).unwrap();
        let guard = buf.bytes();
        let addr = guard.as_ptr() as usize;
        let locked_before = locked_bytes();
        memguard::purge();
        assert!(!buf.is_alive());
        assert!(is_mapped(addr), "unmapped while a guard is alive");
        // The buffer's own mapping, not the process's VmLck: the purge also
        // released other locked pages (the session key's, an emptied
        // compact slab), so the total may fall while this buffer stays locked.
        let smaps = read_smaps("self").expect("/proc/self/smaps");
        let mapping = mapping_of(&smaps, addr).expect("the buffer's mapping");
        assert!(
            mapping.has_flag("lo"),
            "unlocked while a guard is alive: {}",
            mapping.describe()
        );
        thread::scope(|s| {
            s.spawn(move || {
                assert_eq!(&*guard, &secret[..]);
                drop(guard);
                assert!(!is_mapped(addr), "still mapped after the last guard");
            })
            .join()
            .expect("guard thread");
        });
        assert!(!is_mapped(addr));
        let locked_after = locked_bytes();
        assert!(
            locked_after + LEN <= locked_before,
            "VmLck {locked_before} -> {locked_after} bytes"
        );
        assert!(buf.bytes().is_empty());
    });
}

#[test]
fn purge_on_another_thread_never_waits_for_a_held_guard() {
    let _serial = serial();
    with_timeout("purge on another thread with a guard held here", 10, || {
        let secret = random_secret(4096);
        let buf = LockedBuffer::from_bytes(&mut secret.clone()).unwrap();
        let guard = buf.bytes();
        let addr = guard.as_ptr() as usize;
        let (tx, rx) = mpsc::channel();
        let purger = thread::spawn(move || {
            memguard::purge();
            tx.send(()).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("purge waited for a guard held on another thread");
        purger.join().unwrap();
        assert!(!buf.is_alive());
        assert_eq!(&*guard, &secret[..]);
        #[cfg(target_os = "linux")]
        assert!(is_mapped(addr));
        drop(guard);
        #[cfg(target_os = "linux")]
        assert!(!is_mapped(addr));
        let _ = addr;
    });
}

#[test]
fn ref_mut_held_on_another_thread_during_purge() {
    let _serial = serial();
    with_timeout("RefMut on another thread during purge", 10, || {
        let mut buf = LockedBuffer::new(4096).unwrap();
        let held = Barrier::new(2);
        let purged = Barrier::new(2);
        thread::scope(|s| {
            let (held, purged) = (&held, &purged);
            let buf = &mut buf;
            s.spawn(move || {
                let mut g = buf.bytes_mut().unwrap();
                g.fill(0x42);
                held.wait();
                purged.wait();
                g[0] = 0x43;
                assert!(g[1..].iter().all(|&b| b == 0x42));
                assert_eq!(g[0], 0x43);
            });
            held.wait();
            memguard::purge();
            purged.wait();
        });
        assert!(!buf.is_alive());
        assert!(matches!(buf.bytes_mut(), Err(Error::Destroyed)));
    });
}

// ---------------------------------------------------------------------------
// (7) purge of many buffers
// ---------------------------------------------------------------------------

#[test]
fn purge_ten_thousand_buffers() {
    let _serial = serial();
    let start = memguard::live_buffers();
    with_timeout("purge 10 000 buffers", 60, move || {
        const WANTED: usize = 10_000;
        let mut bufs = Vec::with_capacity(WANTED);
        let mut stopped = None;
        for i in 0..WANTED {
            match LockedBuffer::new(32) {
                Ok(mut b) => {
                    b.copy(&(i as u64).to_ne_bytes()).unwrap();
                    bufs.push(b);
                }
                Err(e @ Error::MemoryLock { .. }) => {
                    stopped = Some(format!("stopped at {i}: {e}"));
                    break;
                }
                Err(e) => panic!("buffer {i}: {e:?}"),
            }
        }
        if let Some(why) = &stopped {
            eprintln!("{why}");
        }
        assert!(
            bufs.len() >= 1_000,
            "only {} buffers: {stopped:?}",
            bufs.len()
        );
        assert_eq!(memguard::live_buffers(), start + bufs.len());
        let keep_reading = bufs[bufs.len() / 2].bytes();
        let expected = ((bufs.len() / 2) as u64).to_ne_bytes();
        memguard::purge();
        assert_eq!(memguard::live_buffers(), 0);
        assert_eq!(&keep_reading[..8], &expected);
        for (i, b) in bufs.iter().enumerate() {
            assert!(!b.is_alive(), "buffer {i} survived the purge");
            assert!(b.bytes().is_empty(), "buffer {i}");
        }
        drop(keep_reading);
        drop(bufs);
        assert_eq!(memguard::live_buffers(), 0);
    });
}
