// Only on Linux: /proc/self/maps, rlimits.
#![cfg(target_os = "linux")]

mod support;

use support::data_perms;
use support::procfs::{locked_bytes, perms};
use support::{
    assert_killed_by, mark, passes_in_children, role, run, set_memlock_limit, survived, Role,
};

// Spare mappings: the wiped, sealed-off mappings of destroyed
// buffers that memguard keeps for reuse (`memguard::set_spare_limit`).
//
// Spares are process-wide, so every test plays its scenario in a child
// process of its own (see `tests/support`, the workspace's testkit) and the
// parent checks that the child got to its final marker and exited 0.

use memguard::{Enclave, Error, LockedBuffer};

const SIGSEGV: i32 = 11;

fn page() -> usize {
    rustix::param::page_size()
}

/// The page that holds the start of `buf`'s data.
fn data_page(buf: &LockedBuffer) -> usize {
    buf.bytes().as_ptr() as usize & !(page() - 1)
}

fn filled(len: usize, byte: u8) -> LockedBuffer {
    let mut buf = LockedBuffer::new(len).expect("LockedBuffer::new");
    buf.bytes_mut().expect("mutable").fill(byte);
    buf
}

#[test]
fn a_destroyed_one_page_buffer_is_wiped_sealed_off_and_reused() {
    const TEST: &str = "a_destroyed_one_page_buffer_is_wiped_sealed_off_and_reused";
    passes_in_children(TEST, &["main"], "REUSED-WIPED", |_| {
        memguard::set_spare_limit(4);
        let buf = filled(32, 0xA5);
        let addr = data_page(&buf);
        assert_eq!(perms(addr).as_deref(), Some(&*data_perms("rw-")));
        drop(buf);
        assert_eq!(memguard::spare_mappings(), 1, "the mapping is kept");
        assert_eq!(
            perms(addr).as_deref(),
            Some(&*data_perms("---")),
            "a spare's data page is PROT_NONE"
        );
        // The next one-page buffer, of another size, gets the same page,
        // zero-filled: the old secret and the old canary are gone.
        let again = LockedBuffer::new(100).expect("LockedBuffer::new");
        assert_eq!(data_page(&again), addr, "the spare is reused");
        assert_eq!(memguard::spare_mappings(), 0);
        assert!(again.bytes().iter().all(|&b| b == 0), "reused, not wiped");
        assert_eq!(again.bytes().len(), 100);
        // Destroying it checks the canary written for the new size.
        again.destroy();
        // A buffer whose pages the limit has no room for is unmapped: the
        // limit counts data pages (4 here, one of them parked).
        let big = filled(3 * page() + 1, 0x5A);
        let big_addr = data_page(&big);
        drop(big);
        assert_eq!(perms(big_addr), None, "a four-page buffer is unmapped");
        assert_eq!(memguard::spare_mappings(), 1);
        mark("REUSED-WIPED");
    });
}

#[test]
fn a_destroyed_four_page_buffer_is_wiped_sealed_off_and_reused_at_its_size() {
    const TEST: &str = "a_destroyed_four_page_buffer_is_wiped_sealed_off_and_reused_at_its_size";
    passes_in_children(TEST, &["main"], "MULTI-PAGE-REUSED", |_| {
        // A stream's opened chunk: 16 KiB, four data pages on 4 KiB pages.
        memguard::set_spare_limit(8);
        let size = 4 * page();
        let buf = filled(size, 0xC3);
        let first = data_page(&buf);
        let last = first + 3 * page();
        drop(buf);
        assert_eq!(memguard::spare_mappings(), 1, "the mapping is kept");
        for addr in [first, last] {
            assert_eq!(
                perms(addr).as_deref(),
                Some(&*data_perms("---")),
                "every data page of a spare is PROT_NONE"
            );
        }
        // A one-page buffer does not take it.
        let small = LockedBuffer::new(32).expect("LockedBuffer::new");
        assert_ne!(data_page(&small), first);
        assert_eq!(memguard::spare_mappings(), 1);
        // A buffer of four pages does, zero-filled, every page writable.
        let mut again = LockedBuffer::new(size - 100).expect("LockedBuffer::new");
        assert_eq!(memguard::spare_mappings(), 0);
        let start = again.bytes().as_ptr() as usize;
        assert!(
            (first..first + page()).contains(&start),
            "the spare is reused"
        );
        assert!(again.bytes().iter().all(|&b| b == 0), "reused, not wiped");
        again.bytes_mut().expect("mutable").fill(0x3C);
        assert_eq!(perms(last).as_deref(), Some(&*data_perms("rw-")));
        // Destroying it checks the canary written for the new size.
        again.destroy();
        drop(small);
        // Parked now: 4 + 1 pages. Three buffers of four pages: the first
        // takes the four-page spare. Dropped, it is parked again (1 + 4
        // pages); the other two find no room under the limit of 8 pages.
        let bufs: Vec<_> = (0..3).map(|i| filled(size, i)).collect();
        let addrs: Vec<_> = bufs.iter().map(data_page).collect();
        assert_eq!(addrs[0], first);
        drop(bufs);
        assert_eq!(memguard::spare_mappings(), 2);
        let kept: Vec<_> = addrs.iter().map(|&a| perms(a).is_some()).collect();
        assert_eq!(kept, [true, false, false], "the limit counts pages");
        mark("MULTI-PAGE-REUSED");
    });
}

#[test]
fn a_frozen_buffer_from_open_is_wiped_before_it_is_kept() {
    const TEST: &str = "a_frozen_buffer_from_open_is_wiped_before_it_is_kept";
    passes_in_children(TEST, &["main"], "OPENED-WIPED", |_| {
        memguard::set_spare_limit(4);
        let mut secret = [0x77u8; 48];
        let sealed = Enclave::new(&mut secret).expect("seal");
        let opened = sealed.open().expect("open");
        assert!(!opened.is_mutable());
        let addr = data_page(&opened);
        assert_eq!(perms(addr).as_deref(), Some(&*data_perms("r--")));
        drop(opened);
        assert_eq!(perms(addr).as_deref(), Some(&*data_perms("---")));
        let again = LockedBuffer::new(48).expect("LockedBuffer::new");
        assert_eq!(data_page(&again), addr);
        assert!(again.bytes().iter().all(|&b| b == 0));
        mark("OPENED-WIPED");
    });
}

#[test]
fn a_stale_pointer_into_a_spare_faults() {
    const TEST: &str = "a_stale_pointer_into_a_spare_faults";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(_) => {
            memguard::set_spare_limit(4);
            let buf = filled(32, 0x5A);
            let ptr = buf.bytes().as_ptr();
            drop(buf);
            assert_eq!(memguard::spare_mappings(), 1);
            mark("PARKED, then read");
            // SAFETY (test): deliberately a read of a destroyed buffer.
            let after = unsafe { ptr.read_volatile() };
            survived(&format!("read of a spare gave {after:#04x}"));
        }
        Role::Parent => {
            let out = run(TEST, "main");
            assert_killed_by(&out, SIGSEGV, "PARKED, then read", "read of a spare");
        }
    }
}

#[test]
fn spares_are_bounded_and_purge_unmaps_them() {
    const TEST: &str = "spares_are_bounded_and_purge_unmaps_them";
    passes_in_children(TEST, &["main"], "BOUNDED-PURGED", |_| {
        // Under 1 MiB a sixteenth is 16 pages, so the default of 8 holds.
        set_memlock_limit(1 << 20);
        let start = locked_bytes();
        let bufs: Vec<_> = (0..12).map(|i| filled(64, i)).collect();
        assert_eq!(locked_bytes(), start + 12 * page());
        let addrs: Vec<_> = bufs.iter().map(data_page).collect();
        drop(bufs);
        assert_eq!(memguard::spare_mappings(), 8, "at most 8 kept");
        assert_eq!(locked_bytes(), start + 8 * page(), "spares stay locked");
        let kept = addrs.iter().filter(|&&a| perms(a).is_some()).count();
        assert_eq!(kept, 8, "the other 4 are unmapped");
        memguard::purge();
        assert_eq!(memguard::spare_mappings(), 0);
        assert_eq!(locked_bytes(), start, "purge unlocks the spares");
        assert!(addrs.iter().all(|&a| perms(a).is_none()), "purge unmaps");
        mark("BOUNDED-PURGED");
    });
}

#[test]
fn a_buffer_destroyed_after_a_purge_is_unmapped_not_kept() {
    const TEST: &str = "a_buffer_destroyed_after_a_purge_is_unmapped_not_kept";
    passes_in_children(TEST, &["main"], "DEFERRED-UNMAPPED", |_| {
        memguard::set_spare_limit(4);
        let buf = filled(32, 1);
        let addr = data_page(&buf);
        let guard = buf.bytes();
        memguard::purge();
        assert_eq!(
            perms(addr).as_deref(),
            Some(&*data_perms("rw-")),
            "a guard holds it"
        );
        drop(guard);
        assert_eq!(perms(addr), None, "unmapped when the guard goes");
        assert_eq!(memguard::spare_mappings(), 0);
        mark("DEFERRED-UNMAPPED");
    });
}

#[test]
fn the_default_limit_follows_the_lock_limit() {
    const TEST: &str = "the_default_limit_follows_the_lock_limit";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => {
            let (limit, expected) = match scenario.as_str() {
                "64k" => (64 << 10, 1),
                "32k" => (32 << 10, 0),
                other => panic!("unknown scenario {other}"),
            };
            set_memlock_limit(limit);
            let bufs: Vec<_> = (0..3).map(|i| filled(16, i)).collect();
            drop(bufs);
            assert_eq!(memguard::spare_mappings(), expected);
            mark(&format!("LIMIT {limit}: {expected} KEPT"));
        }
        Role::Parent => {
            for (scenario, marker) in [
                ("64k", "LIMIT 65536: 1 KEPT"),
                ("32k", "LIMIT 32768: 0 KEPT"),
            ] {
                let out = run(TEST, scenario);
                assert!(
                    out.status.success() && support::stdout(&out).contains(marker),
                    "{scenario}\n{}",
                    support::describe(&out)
                );
            }
        }
    }
}

#[test]
fn setting_the_limit_to_zero_unmaps_the_spares() {
    const TEST: &str = "setting_the_limit_to_zero_unmaps_the_spares";
    passes_in_children(TEST, &["main"], "ZERO-UNMAPPED", |_| {
        memguard::set_spare_limit(4);
        let start = locked_bytes();
        let buf = filled(32, 9);
        let addr = data_page(&buf);
        drop(buf);
        assert_eq!(locked_bytes(), start + page());
        memguard::set_spare_limit(0);
        assert_eq!(memguard::spare_mappings(), 0);
        assert_eq!(perms(addr), None);
        assert_eq!(locked_bytes(), start);
        let buf = filled(32, 9);
        let addr = data_page(&buf);
        drop(buf);
        assert_eq!(perms(addr), None, "with 0, a destroyed buffer is unmapped");
        mark("ZERO-UNMAPPED");
    });
}

#[test]
fn spares_give_way_when_the_lock_limit_is_reached() {
    const TEST: &str = "spares_give_way_when_the_lock_limit_is_reached";
    passes_in_children(TEST, &["main"], "SPARES-GAVE-WAY", |_| {
        // One-page buffers until the limit (compact secrets would go on
        // past it: tests/compact.rs).
        memguard::set_compact_mode(memguard::CompactMode::Never);
        // Root (CAP_IPC_LOCK) may lock past any limit.
        support::drop_capabilities();
        set_memlock_limit(256 << 10);
        memguard::set_spare_limit(4);
        let mut held = Vec::new();
        let refused = loop {
            assert!(held.len() <= 64, "64 pages under a 256 KiB limit");
            match LockedBuffer::new(32) {
                Ok(b) => held.push(b),
                Err(e) => break e,
            }
        };
        assert!(matches!(refused, Error::MemoryLock { .. }), "{refused:?}");
        held.truncate(held.len() - 4);
        assert_eq!(memguard::spare_mappings(), 4);
        // Two pages: not a spare's size. Locking it fails until the
        // spares are unmapped, which memguard does by itself.
        let big = LockedBuffer::new(2 * page()).expect("new after the spares give way");
        assert_eq!(memguard::spare_mappings(), 0);
        assert!(big.is_alive());
        mark("SPARES-GAVE-WAY");
    });
}

#[test]
fn a_forked_child_does_not_take_its_parents_spares() {
    const TEST: &str = "a_forked_child_does_not_take_its_parents_spares";
    passes_in_children(TEST, &["main"], "FORK-CHECKED", |_| {
        memguard::set_spare_limit(4);
        let buf = filled(32, 3);
        let addr = data_page(&buf);
        drop(buf);
        assert_eq!(memguard::spare_mappings(), 1);
        // SAFETY (test): the forked child only allocates, reads /proc and
        // leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // Locks are not inherited: the parent's spare is not locked
            // here and must not be handed out.
            let fresh = LockedBuffer::new(32);
            // (The address may well be the same: the spare is unmapped
            // and the kernel hands the range out again.)
            let code = if fresh.is_err() {
                1
            } else if memguard::spare_mappings() != 0 {
                2
            } else if locked_bytes() != page() {
                3
            } else {
                0
            };
            // SAFETY (test): leave the forked child at once.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY (test): waits for the child just forked.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the forked child: exit {} (1: no buffer, 2: the parent's spare kept, 3: VmLck not one \
             page: the spare was handed out unlocked)",
            libc::WEXITSTATUS(status)
        );
        // The parent still has it.
        assert_eq!(memguard::spare_mappings(), 1);
        let again = LockedBuffer::new(32).expect("LockedBuffer::new");
        assert_eq!(data_page(&again), addr);
        mark("FORK-CHECKED");
    });
}
