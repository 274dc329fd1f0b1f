// Only on Linux: /proc/self/maps and signals.
#![cfg(target_os = "linux")]

//! "No access between uses": a sealed buffer's data pages are inaccessible
//! while no guard is held. Each test runs in a child of its own (a fault
//! must kill the child, which the parent asserts).

mod support;

use support::data_perms;
use support::procfs::perms;
use support::{
    assert_killed_by, describe, mark, passes_in_children, role, run, stdout, survived, Role,
};

use memguard::LockedBuffer;

const SIGSEGV: i32 = 11;

fn sealed_secret() -> LockedBuffer {
    let buf = LockedBuffer::from_bytes(&mut [0x5C; 32]).expect("allocate");
    buf.set_no_access_between_uses(true).expect("seal");
    assert!(buf.is_sealed_between_uses());
    buf
}

#[test]
fn a_raw_read_without_a_guard_dies_of_sigsegv() {
    const TEST: &str = "a_raw_read_without_a_guard_dies_of_sigsegv";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(_) => {
            let buf = sealed_secret();
            let ptr = buf.bytes().as_ptr();
            // The guard is gone: the pages are sealed again.
            mark("READING");
            // SAFETY (test): the page is mapped (sealed); the read must fault.
            let byte = unsafe { std::ptr::read_volatile(ptr) };
            survived(&format!(
                "read {byte:#x} through a raw pointer with no guard held"
            ));
        }
        Role::Parent => {
            let out = run(TEST, "main");
            assert_killed_by(&out, SIGSEGV, "READING", TEST);
        }
    }
}

#[test]
fn a_raw_read_with_a_guard_held_reads_the_secret() {
    const TEST: &str = "a_raw_read_with_a_guard_held_reads_the_secret";
    passes_in_children(TEST, &["main"], "GUARD-OK", |_| {
        let buf = sealed_secret();
        let page = {
            let guard = buf.bytes();
            let ptr = guard.as_ptr();
            // SAFETY (test): the guard holds the pages open.
            let byte = unsafe { std::ptr::read_volatile(ptr) };
            assert_eq!(byte, 0x5C);
            let page = ptr as usize & !(rustix::param::page_size() - 1);
            assert_eq!(perms(page).as_deref(), Some(&*data_perms("r--")));
            page
        };
        assert_eq!(perms(page).as_deref(), Some(&*data_perms("---")));
        {
            let mut buf = buf;
            buf.melt().expect("melt");
            let mut w = buf.bytes_mut().expect("writable");
            assert_eq!(perms(page).as_deref(), Some(&*data_perms("rw-")));
            w[0] = 7;
            drop(w);
            assert_eq!(perms(page).as_deref(), Some(&*data_perms("---")));
            buf.freeze().expect("freeze");
            assert_eq!(perms(page).as_deref(), Some(&*data_perms("---")));
            assert_eq!(buf.bytes()[0], 7);
            // Turned off: readable as frozen, without a guard.
            buf.set_no_access_between_uses(false).expect("unseal");
            assert_eq!(perms(page).as_deref(), Some(&*data_perms("r--")));
        }
        mark("GUARD-OK");
    });
}

#[test]
fn concurrent_guards_share_one_opening() {
    const TEST: &str = "concurrent_guards_share_one_opening";
    passes_in_children(TEST, &["main"], "SHARED-OK", |_| {
        let buf = sealed_secret();
        // Every guard reads through a raw pointer: a guard that saw its
        // pages sealed under it by another thread's drop would kill the
        // child.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..5000 {
                        let guard = buf.bytes();
                        // SAFETY (test): the guard holds the pages open.
                        let byte = unsafe { std::ptr::read_volatile(guard.as_ptr()) };
                        assert_eq!(byte, 0x5C);
                    }
                });
            }
        });
        let page = buf.bytes().as_ptr() as usize & !(rustix::param::page_size() - 1);
        assert_eq!(perms(page).as_deref(), Some(&*data_perms("---")));
        mark("SHARED-OK");
    });
}

#[test]
fn the_process_default_applies_and_purge_and_a_guard_page_hit_work_when_sealed() {
    const TEST: &str =
        "the_process_default_applies_and_purge_and_a_guard_page_hit_work_when_sealed";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => {
            memguard::set_no_access_between_uses(true);
            let buf = LockedBuffer::from_bytes(&mut [0x11; 64]).expect("allocate");
            assert!(buf.is_sealed_between_uses());
            let other = LockedBuffer::new(16).expect("allocate");
            assert!(other.is_sealed_between_uses());
            match scenario.as_str() {
                "purge" => {
                    memguard::purge();
                    assert!(!buf.is_alive() && !other.is_alive());
                    mark("PURGED");
                }
                "crash" => {
                    // A write past the end of `other` hits its guard page:
                    // the crash handler wipes every buffer, sealed ones
                    // included, then the child dies of SIGSEGV.
                    let end = {
                        let g = other.bytes();
                        g.as_ptr() as usize + g.len()
                    };
                    mark("CRASHING");
                    // SAFETY (test): the trailing guard page; this must fault.
                    unsafe { std::ptr::write_volatile(end as *mut u8, 1) };
                    survived("wrote past the end");
                }
                other => panic!("unknown scenario {other}"),
            }
        }
        Role::Parent => {
            let out =
                support::run_child_timeout(TEST, &format!("{TEST}/purge"), support::CHILD_TIMEOUT);
            assert!(
                out.status.success() && stdout(&out).contains("PURGED"),
                "{}",
                describe(&out)
            );
            let out =
                support::run_child_timeout(TEST, &format!("{TEST}/crash"), support::CHILD_TIMEOUT);
            assert_killed_by(&out, SIGSEGV, "CRASHING", TEST);
        }
    }
}
