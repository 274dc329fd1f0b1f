// Only on Linux: fork, /proc/self/maps.
#![cfg(target_os = "linux")]

//! A process that forks (to daemonize, say) and goes on using memguard in
//! the child: what the child gets, checked from the parent.
//!
//! Each test re-runs this binary as a child (see `support::run`), which
//! sets up memguard, forks, and judges its forked child by what that child
//! writes to a pipe and how it ends. The attacker's side of each point of
//! issue 11 is kept: the child must not seal under a key anyone can compute,
//! must not abort on what it inherited, must die of the signals memguard
//! catches, must not hang on a lock, and must not write where an inherited
//! buffer's pages were.

mod support;

#[path = "support/forked.rs"]
mod forked;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use forked::{fork, opens_under, tell, thread_names, zero_halves_key, Ended, Forked};
use memguard::{Enclave, Error, LockedBuffer};
use support::procfs::is_mapped;
use support::{mark, role, run, Role};

/// How long a forked child may take.
const FORKED_TIMEOUT: Duration = Duration::from_secs(10);

/// Asserts the child ran its scenario and exited 0; prints what it said.
fn assert_child_passed(test: &str, scenario: &str) {
    let out = run(test, scenario);
    assert!(
        out.status.success() && support::stdout(&out).contains("PASSED"),
        "{test} [{scenario}]\n{}",
        support::describe(&out)
    );
}

/// In a child scenario: asserts how a forked child ended.
fn expect(what: &str, child: &Forked, ended: Ended) {
    let got = child.wait(FORKED_TIMEOUT);
    assert_eq!(got, ended, "{what}: the forked child ended as {got:?}");
}

// ---------------------------------------------------------------------------
// 1. A forked child never seals under a known key
// ---------------------------------------------------------------------------

#[test]
fn a_forked_child_never_seals_under_a_known_key() {
    const TEST: &str = "a_forked_child_never_seals_under_a_known_key";
    match role(TEST) {
        Role::Parent => assert_child_passed(TEST, "seal"),
        Role::Child(_) => {
            // The parent has a session key and an enclave under it.
            let parent_secret = Enclave::new(&mut b"the parent's secret".to_vec()).unwrap();
            let mut sealed_in_children = Vec::new();
            for _ in 0..2 {
                let mut child = fork(|to_parent| {
                    // The parent's enclaves are sealed under a key the child
                    // does not have.
                    if !matches!(parent_secret.open(), Err(Error::DecryptionFailed)) {
                        return 10;
                    }
                    let Ok(mine) = Enclave::new(&mut b"sealed in the child".to_vec()) else {
                        return 11;
                    };
                    match mine.open() {
                        Ok(b) if b.equal_to(b"sealed in the child") => {}
                        _ => return 12,
                    }
                    // The child's key is re-split by a thread of its own (it
                    // names itself once it runs).
                    let rekeying = (0..1000).any(|_| {
                        let found = thread_names().iter().any(|n| n == "memguard-rekey");
                        if !found {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        found
                    });
                    tell(&mut *to_parent, mine.sealed_bytes());
                    if !rekeying {
                        return 13;
                    }
                    0
                });
                let sealed = child.read_all();
                // The attacker: the key a zero-filled coffer would give.
                assert!(sealed.len() > 40, "the child sent its enclave");
                assert!(
                    !opens_under(&zero_halves_key(), &sealed),
                    "a forked child sealed under 0 XOR BLAKE3(0^32), a key anyone can compute"
                );
                expect("sealing child", &child, Ended::Exited(0));
                sealed_in_children.push(sealed);
            }
            assert_ne!(sealed_in_children[0], sealed_in_children[1]);
            // The parent is unaffected.
            assert!(parent_secret
                .open()
                .unwrap()
                .equal_to(b"the parent's secret"));
            mark("PASSED");
        }
        Role::Bystander => {}
    }
}

// ---------------------------------------------------------------------------
// 2. A child can drop what it inherited, purge and exit
// ---------------------------------------------------------------------------

#[test]
fn a_forked_child_drops_inherited_buffers_purges_and_exits() {
    const TEST: &str = "a_forked_child_drops_inherited_buffers_purges_and_exits";
    match role(TEST) {
        Role::Parent => {
            for scenario in ["drop", "purge", "safe_exit"] {
                assert_child_passed(TEST, scenario);
            }
        }
        Role::Child(scenario) => {
            let frozen = LockedBuffer::random(32).unwrap();
            let mut mutable = LockedBuffer::new(5000).unwrap();
            mutable.copy(b"inherited").unwrap();
            let sealed = Enclave::random(32).unwrap();
            let address = frozen.bytes().as_ptr() as usize;
            let live = memguard::live_buffers();
            assert!(live >= 3, "frozen, mutable and the session key");
            let child = fork(|_| {
                // Dead in the child: no borrow, no length, not counted.
                if frozen.is_alive() || !frozen.bytes().is_empty() || !frozen.is_empty() {
                    return 20;
                }
                if !matches!(mutable.bytes_mut(), Err(Error::Destroyed)) {
                    return 21;
                }
                if memguard::live_buffers() != 0 {
                    return 22;
                }
                match scenario.as_str() {
                    "drop" => {
                        drop(frozen);
                        drop(mutable);
                        // The zero-filled copy of the mapping is released.
                        if is_mapped(address) {
                            return 23;
                        }
                    }
                    "purge" => {
                        memguard::purge();
                        if is_mapped(address) {
                            return 24;
                        }
                    }
                    "safe_exit" => memguard::safe_exit(0),
                    _ => return 99,
                }
                // The child goes on using memguard.
                let Ok(fresh) = Enclave::new(&mut b"made in the child".to_vec()) else {
                    return 25;
                };
                match fresh.open() {
                    Ok(b) if b.equal_to(b"made in the child") => {}
                    _ => return 26,
                }
                if sealed.open().is_ok() {
                    return 27;
                }
                memguard::safe_exit(0)
            });
            expect(&scenario, &child, Ended::Exited(0));
            mark("PASSED");
        }
        Role::Bystander => {}
    }
}

// ---------------------------------------------------------------------------
// 3. Signals memguard catches terminate a forked child
// ---------------------------------------------------------------------------

#[test]
fn caught_signals_still_terminate_a_forked_child() {
    const TEST: &str = "caught_signals_still_terminate_a_forked_child";
    match role(TEST) {
        Role::Parent => {
            for scenario in ["SIGTERM", "SIGINT", "own_handler"] {
                assert_child_passed(TEST, scenario);
            }
        }
        Role::Child(scenario) => {
            memguard::catch_signal(|_| {}, &[libc::SIGTERM, libc::SIGINT]).unwrap();
            let key = LockedBuffer::random(32).unwrap();
            let own_handler = scenario == "own_handler";
            let signal = if scenario == "SIGINT" {
                libc::SIGINT
            } else {
                libc::SIGTERM
            };
            let mut child = fork(|to_parent| {
                if own_handler {
                    let tell_parent = to_parent.try_clone().unwrap();
                    memguard::catch_signal(
                        move |_| tell(&mut &tell_parent, b"h"),
                        &[libc::SIGTERM],
                    )
                    .unwrap();
                }
                let _mine = LockedBuffer::random(32);
                tell(to_parent, b"r");
                std::thread::sleep(FORKED_TIMEOUT);
                3
            });
            assert_eq!(child.wait_byte(FORKED_TIMEOUT), Some(b'r'));
            child.signal(signal);
            if own_handler {
                assert_eq!(
                    child.wait_byte(FORKED_TIMEOUT),
                    Some(b'h'),
                    "the child's own handler ran"
                );
            }
            expect(&scenario, &child, Ended::Exited(1));
            // The parent still has its key and its listener.
            assert_eq!(key.len(), 32);
            mark("PASSED");
        }
        Role::Bystander => {}
    }
}

// ---------------------------------------------------------------------------
// 4. No lock is left held in a child
// ---------------------------------------------------------------------------

/// Threads that keep memguard's locks busy: sealing and opening (the
/// session key's lock), allocating and dropping (the registry, the crash
/// table, the spares), rekeying every millisecond, and (with `purging`)
/// purging now and then.
fn busy_threads(stop: &Arc<AtomicBool>, purging: bool) -> Vec<std::thread::JoinHandle<()>> {
    memguard::set_rekey_interval(Some(Duration::from_millis(1)));
    let mut threads = Vec::new();
    for i in 0..3 {
        let stop = Arc::clone(stop);
        threads.push(std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                if let Ok(e) = Enclave::random(32) {
                    let _ = e.open();
                }
                drop(LockedBuffer::new(64 + i));
                if purging && i == 0 && round.is_multiple_of(200) {
                    memguard::purge();
                }
            }
        }));
    }
    threads
}

#[test]
fn fork_never_leaves_a_lock_held_in_the_child() {
    const TEST: &str = "fork_never_leaves_a_lock_held_in_the_child";
    match role(TEST) {
        Role::Parent => assert_child_passed(TEST, "forks"),
        Role::Child(_) => {
            let stop = Arc::new(AtomicBool::new(false));
            let threads = busy_threads(&stop, false);
            for i in 0..500 {
                let child = fork(|_| {
                    // Every lock memguard has: the session key, the
                    // registry, the crash table, the spares.
                    let Ok(e) = Enclave::random(32) else {
                        return 40;
                    };
                    if e.open().is_err() {
                        return 41;
                    }
                    memguard::set_spare_limit(0);
                    memguard::purge();
                    0
                });
                let ended = child.wait(FORKED_TIMEOUT);
                assert_eq!(ended, Ended::Exited(0), "forked child {i}");
            }
            stop.store(true, Ordering::Relaxed);
            for t in threads {
                t.join().unwrap();
            }
            mark("PASSED");
        }
        Role::Bystander => {}
    }
}

// ---------------------------------------------------------------------------
// 5. MADV_DONTFORK: the child's inherited buffer has no data page
// ---------------------------------------------------------------------------

#[test]
fn without_wipe_on_fork_a_child_never_touches_what_is_mapped_there_now() {
    const TEST: &str = "without_wipe_on_fork_a_child_never_touches_what_is_mapped_there_now";
    match role(TEST) {
        Role::Parent => assert_child_passed(TEST, "dontfork"),
        Role::Child(_) => {
            memguard::simulate_kernel_without_wipe_on_fork();
            let mut buf = LockedBuffer::new(32).unwrap();
            buf.copy(&[0xa5; 32]).unwrap();
            assert!(!buf.wipes_on_fork(), "the simulated old kernel");
            // The session key's buffer too.
            let sealed = Enclave::random(32).unwrap();
            let page = rustix::param::page_size();
            let data_page = buf.bytes().as_ptr() as usize & !(page - 1);
            let child = fork(|_| {
                if is_mapped(data_page) {
                    // MADV_DONTFORK: the child has no such page.
                    return 50;
                }
                // Something of the child's own now lives at that address.
                // SAFETY (test): a fresh mapping at an address where nothing
                // is mapped (MAP_FIXED_NOREPLACE refuses otherwise).
                let mine = unsafe {
                    libc::mmap(
                        data_page as *mut libc::c_void,
                        page,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                        -1,
                        0,
                    )
                };
                if mine as usize != data_page {
                    return 51;
                }
                // SAFETY: our own page, just mapped.
                let bytes = unsafe { std::slice::from_raw_parts_mut(mine.cast::<u8>(), page) };
                bytes.fill(0x77);
                drop(buf);
                if sealed.open().is_ok() {
                    return 52;
                }
                if Enclave::random(32).and_then(|e| e.open()).is_err() {
                    return 53;
                }
                memguard::purge();
                if !is_mapped(data_page) {
                    return 54;
                }
                if bytes.iter().any(|&b| b != 0x77) {
                    return 55;
                }
                0
            });
            expect("dontfork child", &child, Ended::Exited(0));
            mark("PASSED");
        }
        Role::Bystander => {}
    }
}

// ---------------------------------------------------------------------------
// A stream read in small pieces when the process forks
// ---------------------------------------------------------------------------

/// A 1-byte read of a stream reads its opened front chunk under a lease,
/// with no look at the fork generation: the child's fork hook ends every
/// inherited lease first (`mem::lease_roster`). Were it not so, the child
/// would read zeros (`MADV_WIPEONFORK`) or die of SIGSEGV (no page there,
/// `MADV_DONTFORK`) where the parent's chunk was.
#[test]
fn a_stream_read_in_small_pieces_fails_cleanly_in_a_forked_child() {
    const TEST: &str = "a_stream_read_in_small_pieces_fails_cleanly_in_a_forked_child";
    match role(TEST) {
        Role::Parent => {
            for scenario in ["wipeonfork", "dontfork"] {
                assert_child_passed(TEST, scenario);
            }
        }
        Role::Child(scenario) => {
            use std::io::{ErrorKind, Read, Write};
            if scenario == "dontfork" {
                memguard::simulate_kernel_without_wipe_on_fork();
            }
            let data: Vec<u8> = (1..=192u8).collect();
            let mut s = memguard::Stream::with_chunk_size(64);
            s.write_all(&data).unwrap();
            let mut one = [0u8; 1];
            // The front chunk is opened into guarded memory and leased.
            for expected in [1, 2] {
                s.read_exact(&mut one).unwrap();
                assert_eq!(one, [expected]);
            }
            let child = fork(|_| {
                // The front chunk's pages are zeros or gone here; the rest
                // was sealed under the parent's key: every read fails or
                // finds the stream empty, none returns a byte.
                let mut failed = 0;
                loop {
                    match s.read(&mut one) {
                        Ok(0) => break,
                        Ok(_) => return 60,
                        Err(e) if e.kind() == ErrorKind::InvalidData => failed += 1,
                        Err(_) => return 61,
                    }
                    if failed > 3 {
                        return 62;
                    }
                }
                if failed == 0 {
                    return 63;
                }
                // The child's own data, read in small pieces (under a lease
                // of the child's).
                s.write_all(b"the child's own").unwrap();
                let mut back = Vec::new();
                loop {
                    match s.read(&mut one) {
                        Ok(0) => break,
                        Ok(_) => back.push(one[0]),
                        Err(_) => return 64,
                    }
                }
                if back != b"the child's own" {
                    return 65;
                }
                // A return, not safe_exit: under scripts/asan.sh an exit
                // runs LeakSanitizer, which counts the allocations of the
                // parent's threads (absent in a forked child) as leaks.
                0
            });
            expect(&scenario, &child, Ended::Exited(0));
            // The parent reads on where it was.
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, data[2..]);
            mark("PASSED");
        }
        Role::Bystander => {}
    }
}

// ---------------------------------------------------------------------------
// The soak: fork, exec and signals while threads seal, open and purge
// ---------------------------------------------------------------------------

#[test]
fn soak_fork_exec_and_signals_under_load() {
    const TEST: &str = "soak_fork_exec_and_signals_under_load";
    match role(TEST) {
        Role::Parent => assert_child_passed(TEST, "soak"),
        Role::Child(_) => {
            memguard::catch_signal(|_| {}, &[libc::SIGTERM]).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let threads = busy_threads(&stop, true);
            let known = zero_halves_key();
            for i in 0..600 {
                match i % 3 {
                    // Seal, open, exit; the enclave comes back to be attacked.
                    0 => {
                        let mut child = fork(|to_parent| {
                            let Ok(e) = Enclave::new(&mut b"sealed in a child".to_vec()) else {
                                return 60;
                            };
                            match e.open() {
                                Ok(b) if b.equal_to(b"sealed in a child") => {}
                                _ => return 61,
                            }
                            tell(to_parent, e.sealed_bytes());
                            0
                        });
                        let sealed = child.read_all();
                        expect(&format!("child {i}"), &child, Ended::Exited(0));
                        assert!(!opens_under(&known, &sealed), "child {i}: known key");
                    }
                    // exec at once, as a daemon that starts another program.
                    1 => {
                        let child = fork(|_| {
                            let err = std::os::unix::process::CommandExt::exec(
                                &mut std::process::Command::new("true"),
                            );
                            drop(err);
                            62
                        });
                        expect(&format!("child {i} (exec)"), &child, Ended::Exited(0));
                    }
                    // Terminated by a caught signal while it uses memguard.
                    _ => {
                        let mut child = fork(|to_parent| {
                            let _b = LockedBuffer::random(32);
                            tell(to_parent, b"r");
                            std::thread::sleep(FORKED_TIMEOUT);
                            3
                        });
                        assert_eq!(child.wait_byte(FORKED_TIMEOUT), Some(b'r'), "child {i}");
                        child.signal(libc::SIGTERM);
                        expect(&format!("child {i} (SIGTERM)"), &child, Ended::Exited(1));
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            for t in threads {
                t.join().unwrap();
            }
            // The parent goes on sealing and opening.
            assert!(Enclave::random(8).and_then(|e| e.open()).is_ok());
            mark("PASSED");
        }
        Role::Bystander => {}
    }
}

// ---------------------------------------------------------------------------
// 6. A forked child draws a nonce prefix of its own
// ---------------------------------------------------------------------------

/// Nonces are a per-process counter followed by a random prefix
/// (src/crypto/nonce.rs). A forked child inherits the counter, so it must
/// draw its own prefix before its first seal: no nonce of a child equals one
/// of its parent or of a sibling, even where the counters meet.
#[test]
fn a_forked_child_draws_its_own_nonce_prefix() {
    const TEST: &str = "a_forked_child_draws_its_own_nonce_prefix";
    match role(TEST) {
        Role::Parent => assert_child_passed(TEST, "nonce"),
        Role::Child(_) => {
            let nonce = |e: &Enclave| e.sealed_bytes()[..24].to_vec();
            let counter = |n: &[u8]| u64::from_le_bytes(n[..8].try_into().unwrap());
            let parent_nonce = nonce(&Enclave::new(&mut b"in the parent".to_vec()).unwrap());
            let mut from_children = Vec::new();
            for _ in 0..2 {
                let mut child = fork(|to_parent| {
                    let Ok(first) = Enclave::new(&mut b"in the child".to_vec()) else {
                        return 30;
                    };
                    let Ok(second) = Enclave::new(&mut b"in the child".to_vec()) else {
                        return 31;
                    };
                    let mut both = nonce(&first);
                    both.extend_from_slice(&nonce(&second));
                    tell(&mut *to_parent, &both);
                    0
                });
                let both = child.read_all();
                expect("sealing child", &child, Ended::Exited(0));
                assert_eq!(both.len(), 48, "the child sent two nonces");
                from_children.push((both[..24].to_vec(), both[24..].to_vec()));
            }
            let after = nonce(&Enclave::new(&mut b"in the parent".to_vec()).unwrap());
            for (first, second) in &from_children {
                // The child continues the counter it inherited (so the
                // counters of parent and children meet) ...
                assert_eq!(counter(first), counter(&parent_nonce) + 1);
                assert_eq!(counter(second), counter(first) + 1);
                // ... under a prefix of its own, the same for its seals.
                assert_eq!(first[8..], second[8..]);
                assert_ne!(
                    first[8..],
                    parent_nonce[8..],
                    "the child kept the parent's prefix"
                );
                assert_ne!(first, &after, "a child's nonce repeated in the parent");
            }
            assert_ne!(
                from_children[0].0[8..],
                from_children[1].0[8..],
                "siblings share a prefix"
            );
            // The parent's prefix is unchanged, its counter goes on.
            assert_eq!(after[8..], parent_nonce[8..]);
            assert_eq!(counter(&after), counter(&parent_nonce) + 1);
            mark("PASSED");
        }
        Role::Bystander => {}
    }
}
