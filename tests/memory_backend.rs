// Only on Linux: memfd_secret, /proc, fork.
#![cfg(target_os = "linux")]

//! The memory backend: chosen once per process (by the application, the
//! environment variable `MEMGUARD_MEMORY_BACKEND`, or the system), shown
//! in `Protections`, kept out of forked children, one secret file shared
//! by many buffers, and held to the lock limit.
//!
//! Every test runs in a child of its own (the choice is per process). The
//! tests of secret memory say so and pass without checking anything on a
//! system without it (the reason is printed), unless
//! `MEMGUARD_REQUIRE_SECRET_MEMORY` is set, as CI sets it on this machine.

mod support;

#[path = "support/forked.rs"]
#[allow(dead_code)]
mod forked;

use std::time::Duration;

use forked::{fork, tell, Ended};
use memguard::{Error, LockedBuffer, MemoryBackend, Protections};
use support::procfs::perms;
use support::{
    describe, mark, passes_in_children, role, run_child_with, run_passing, stdout, Role,
};

const ENV: &str = "MEMGUARD_MEMORY_BACKEND";

/// Whether this system gives secret memory; fails when it must and does not.
fn secret_memory_here() -> bool {
    let here = memguard::memory_backend() == MemoryBackend::SecretMemory;
    if !here {
        eprintln!("no secret memory: {}", memguard::memory_backend_reason());
        assert!(
            std::env::var("MEMGUARD_REQUIRE_SECRET_MEMORY").is_err(),
            "MEMGUARD_REQUIRE_SECRET_MEMORY is set but: {}",
            memguard::memory_backend_reason()
        );
    }
    here
}

/// This process's descriptors that are secret-memory files.
fn secret_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("/secretmem"))
        .count()
}

#[test]
fn the_default_is_secret_memory_where_the_system_has_it() {
    const TEST: &str = "the_default_is_secret_memory_where_the_system_has_it";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(_) => {
            let buf = LockedBuffer::new(32).expect("allocate");
            let secret = memguard::memory_backend() == MemoryBackend::SecretMemory;
            assert_eq!(
                buf.protections().contains(Protections::SECRET_MEMORY),
                secret
            );
            mark(&format!(
                "BACKEND {} | {}",
                memguard::memory_backend(),
                memguard::memory_backend_reason()
            ));
            if secret {
                assert!(memguard::memory_backend_reason().contains("memfd_secret works"));
                let data = buf.bytes().as_ptr() as usize;
                assert_eq!(perms(data).as_deref(), Some("rw-s"));
            }
            assert!(matches!(
                memguard::set_memory_backend(MemoryBackend::Anonymous),
                Err(Error::MemoryBackendAlreadyChosen { .. })
            ));
            mark("DEFAULT-OK");
        }
        Role::Parent => {
            let out = support::run_child_with(TEST, &format!("{TEST}/main"), &[(ENV, "")]);
            assert!(
                out.status.success() && stdout(&out).contains("DEFAULT-OK"),
                "{}",
                describe(&out)
            );
            if std::env::var("MEMGUARD_REQUIRE_SECRET_MEMORY").is_ok() {
                assert!(
                    stdout(&out).contains("BACKEND secret memory"),
                    "{}",
                    describe(&out)
                );
            }
        }
    }
}

#[test]
fn the_environment_variable_and_the_application_choose() {
    const TEST: &str = "the_environment_variable_and_the_application_choose";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => {
            match scenario.as_str() {
                "env-anonymous" => {
                    assert_eq!(memguard::memory_backend(), MemoryBackend::Anonymous);
                    assert!(memguard::memory_backend_reason().contains(ENV));
                }
                "app-over-env" => {
                    // The application's choice wins over the variable.
                    memguard::set_memory_backend(MemoryBackend::Anonymous).expect("choose");
                    assert_eq!(memguard::memory_backend(), MemoryBackend::Anonymous);
                    assert!(memguard::memory_backend_reason().contains("application"));
                }
                "unknown-value" => {
                    assert!(memguard::memory_backend_reason().contains("ignored"));
                }
                other => panic!("unknown scenario {other}"),
            }
            let buf = LockedBuffer::new(32).expect("allocate");
            let secret = memguard::memory_backend() == MemoryBackend::SecretMemory;
            assert_eq!(
                buf.protections().contains(Protections::SECRET_MEMORY),
                secret
            );
            assert!(buf.protections().contains(Protections::LOCKED));
            if !secret {
                assert!(buf.protections().contains(Protections::ZEROED_IN_FORKS));
                let data = buf.bytes().as_ptr() as usize;
                assert_eq!(perms(data).as_deref(), Some("rw-p"));
            }
            mark("CHOICE-OK");
        }
        Role::Parent => {
            for (scenario, value) in [
                ("env-anonymous", "anonymous"),
                ("app-over-env", "secret"),
                ("unknown-value", "bogus"),
            ] {
                let out = run_child_with(TEST, &format!("{TEST}/{scenario}"), &[(ENV, value)]);
                assert!(
                    out.status.success() && stdout(&out).contains("CHOICE-OK"),
                    "{scenario}\n{}",
                    describe(&out)
                );
            }
        }
    }
}

#[test]
fn a_forked_child_neither_sees_nor_changes_secret_memory() {
    const TEST: &str = "a_forked_child_neither_sees_nor_changes_secret_memory";
    passes_in_children(TEST, &["main"], "FORK-OK", |_| {
        if !secret_memory_here() {
            mark("FORK-OK (no secret memory)");
            return;
        }
        let buf = LockedBuffer::from_bytes(&mut [0xA5; 48]).expect("allocate");
        assert!(buf.protections().contains(Protections::ABSENT_IN_FORKS));
        let data = buf.bytes().as_ptr() as usize;
        assert_eq!(secret_fds(), 1, "one arena file");
        let mut child = fork(|to_parent| {
            // The data pages did not come along, and the arena files
            // were closed by the fork hook: nothing can map them again.
            let absent = perms(data).is_none();
            let fds = secret_fds();
            // A buffer made here gets secret memory of its own.
            let own = LockedBuffer::from_bytes(&mut [0x3C; 16]).expect("allocate in child");
            let own_secret = own.protections().contains(Protections::SECRET_MEMORY);
            let own_ok = own.bytes().iter().all(|&b| b == 0x3C);
            // The inherited buffer is dead here.
            let dead = !buf.is_alive();
            tell(
                to_parent,
                format!("absent={absent} fds={fds} own={own_secret},{own_ok} dead={dead}")
                    .as_bytes(),
            );
            0
        });
        let said = String::from_utf8(child.read_all()).expect("text");
        assert_eq!(
            child.wait(Duration::from_secs(20)),
            Ended::Exited(0),
            "{said}"
        );
        assert_eq!(said, "absent=true fds=0 own=true,true dead=true");
        assert!(
            buf.bytes().iter().all(|&b| b == 0xA5),
            "parent's bytes changed"
        );
        // Still the parent's shared mapping of the secret file.
        assert!(
            perms(data).is_some_and(|p| p.ends_with('s')),
            "{:?}",
            perms(data)
        );
        mark("FORK-OK");
    });
}

#[test]
fn many_buffers_share_one_secret_file() {
    const TEST: &str = "many_buffers_share_one_secret_file";
    passes_in_children(TEST, &["main"], "SHARED-OK", |_| {
        if !secret_memory_here() {
            mark("SHARED-OK (no secret memory)");
            return;
        }
        memguard::set_spare_limit(0);
        let mut bufs: Vec<LockedBuffer> = (0..64)
            .map(|i| LockedBuffer::from_bytes(&mut [i as u8; 100]).expect("allocate"))
            .collect();
        bufs.push(LockedBuffer::new(3 * 4096 + 5).expect("allocate"));
        assert_eq!(secret_fds(), 1, "64 small buffers and one larger: one file");
        // Freed pieces are reused, zero-filled.
        for b in bufs.drain(..32) {
            b.destroy();
        }
        let again: Vec<LockedBuffer> = (0..32)
            .map(|_| LockedBuffer::new(4096).expect("allocate"))
            .collect();
        assert!(again.iter().all(|b| b.bytes().iter().all(|&x| x == 0)));
        assert_eq!(secret_fds(), 1, "reused, not a new file");
        for (i, b) in bufs.iter().take(31).enumerate() {
            assert!(b.bytes().iter().all(|&x| x == (i + 32) as u8));
        }
        // A buffer larger than a quarter of an arena gets its own file,
        // closed with it.
        let big = LockedBuffer::new(512 * 1024).expect("allocate");
        assert!(big.protections().contains(Protections::SECRET_MEMORY));
        assert_eq!(secret_fds(), 2);
        big.destroy();
        assert_eq!(secret_fds(), 1);
        mark("SHARED-OK");
    });
}

#[test]
fn secret_memory_counts_against_the_lock_limit() {
    const TEST: &str = "secret_memory_counts_against_the_lock_limit";
    const LIMIT: usize = 64 * 1024;
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(_) => {
            if !secret_memory_here() {
                mark("LIMIT-OK (no secret memory)");
                return;
            }
            support::set_memlock_limit(LIMIT as u64);
            support::drop_capabilities();
            memguard::set_spare_limit(0);
            // Pages of its own for every buffer: compact secrets would share
            // them and go on past one buffer per page.
            memguard::set_compact_mode(memguard::CompactMode::Never);
            let mut held = Vec::new();
            let err = loop {
                match LockedBuffer::new(32) {
                    Ok(b) => held.push(b),
                    Err(e) => break e,
                }
                assert!(
                    held.len() <= LIMIT / 4096,
                    "more buffers than the limit allows"
                );
            };
            match &err {
                Error::MemoryLock { limit, .. } => assert_eq!(*limit, Some(LIMIT as u64)),
                other => panic!("expected MemoryLock, got {other:?}"),
            }
            assert!(err.to_string().contains("RLIMIT_MEMLOCK"), "{err}");
            assert!(!held.is_empty());
            assert!(support::procfs::locked_bytes() <= LIMIT);
            held.clear();
            LockedBuffer::new(32).expect("room again once buffers are gone");
            mark("LIMIT-OK");
        }
        Role::Parent => run_passing(TEST, "main", "LIMIT-OK"),
    }
}
