// Only on Windows (run under wine here): the crash wipe through the
// vectored exception handler, and what Windows gives a buffer.
#![cfg(windows)]

//! Each scenario runs in a child (this test binary, run again): a write past
//! the end of a buffer or into a frozen one must end the child with
//! `STATUS_ACCESS_VIOLATION` (0xC0000005), and a vectored exception handler
//! the child adds after memguard's (so it runs after memguard's, before any
//! structured handler) must find the secret already wiped.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use memguard::{LockedBuffer, Protections};
use support::{describe, mark, role, run, stdout, Role, STATUS_ACCESS_VIOLATION};
use windows_sys::Win32::System::Diagnostics::Debug::{
    AddVectoredExceptionHandler, EXCEPTION_CONTINUE_SEARCH, EXCEPTION_POINTERS,
};

const SECRET: &[u8; 16] = b"windows-secret!!";

/// Where the secret lives in the child, for the checking handler.
static DATA: AtomicUsize = AtomicUsize::new(0);

/// Runs after memguard's handler: is the secret still there?
unsafe extern "system" fn check_wiped(_info: *mut EXCEPTION_POINTERS) -> i32 {
    let data = DATA.load(Ordering::SeqCst) as *const u8;
    if !data.is_null() {
        // SAFETY: the buffer's data, made readable and writable by the wipe
        // (or still readable: a frozen buffer).
        let seen = unsafe { std::slice::from_raw_parts(data, SECRET.len()) };
        let verdict: &[u8] = if seen.iter().all(|&b| b == 0) {
            b"WIPED-AT-FAULT\n"
        } else if seen == SECRET {
            b"SECRET-AT-FAULT\n"
        } else {
            b"OTHER-AT-FAULT\n"
        };
        let _ = std::io::stdout().write_all(verdict);
        let _ = std::io::stdout().flush();
    }
    EXCEPTION_CONTINUE_SEARCH
}

fn child(scenario: &str) {
    let mut buf = LockedBuffer::new(SECRET.len()).expect("a buffer");
    buf.bytes_mut().expect("writable").copy_from_slice(SECRET);
    let data = buf.bytes().as_ptr() as usize;
    DATA.store(data, Ordering::SeqCst);
    // SAFETY: a handler that lives as long as the process; 0 puts it last,
    // after memguard's.
    unsafe { AddVectoredExceptionHandler(0, Some(check_wiped)) };
    mark(&format!("PROTECTIONS {}", buf.protections()));
    let target = match scenario {
        "past-end" => data + SECRET.len(),
        "frozen" => {
            buf.freeze().expect("freeze");
            data
        }
        other => panic!("unknown scenario {other}"),
    };
    mark("WRITING");
    // SAFETY: none: this write is meant to fault (the trailing guard page,
    // or a read-only page).
    unsafe { (target as *mut u8).write_volatile(1) };
    mark("SURVIVED");
    std::process::exit(3);
}

fn check(test: &str, scenario: &str) {
    let out = run(test, scenario);
    let text = stdout(&out);
    assert!(text.contains("WRITING"), "{}", describe(&out));
    assert!(!text.contains("SURVIVED"), "{}", describe(&out));
    assert_eq!(
        out.status.code().map(|c| c as u32),
        Some(STATUS_ACCESS_VIOLATION),
        "expected STATUS_ACCESS_VIOLATION\n{}",
        describe(&out)
    );
    assert!(
        text.contains("WIPED-AT-FAULT"),
        "the secret was not wiped before the later handler ran\n{}",
        describe(&out)
    );
}

#[test]
fn a_write_past_the_end_wipes_and_dies_of_an_access_violation() {
    const TEST: &str = "a_write_past_the_end_wipes_and_dies_of_an_access_violation";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => child(&scenario),
        Role::Parent => check(TEST, "past-end"),
    }
}

#[test]
fn a_write_to_a_frozen_buffer_wipes_and_dies_of_an_access_violation() {
    const TEST: &str = "a_write_to_a_frozen_buffer_wipes_and_dies_of_an_access_violation";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => child(&scenario),
        Role::Parent => check(TEST, "frozen"),
    }
}

#[test]
fn windows_gives_guard_pages_a_lock_and_no_fork() {
    let buf = LockedBuffer::new(32).expect("a buffer");
    let got = buf.protections();
    assert!(
        got.contains(Protections::GUARD_PAGES | Protections::LOCKED | Protections::CANARY),
        "{got}"
    );
    assert!(got.contains(Protections::WIPE_BEFORE_CRASH), "{got}");
    assert!(!got.hidden_from_forks(), "{got}");
    assert!(memguard::crash_handler_installed());
}

#[test]
fn many_buffers_lock_beyond_the_default_working_set_quota() {
    // The default minimum working set lets a process lock a few hundred
    // KiB; memguard grows the quota. (Under wine, locks always succeed.)
    let page = LockedBuffer::new(1).expect("a buffer").page_size();
    let held: Vec<LockedBuffer> = (0..256)
        .map(|i| LockedBuffer::new(page).unwrap_or_else(|e| panic!("buffer {i}: {e}")))
        .collect();
    assert!(held
        .iter()
        .all(|b| b.protections().contains(Protections::LOCKED)));
}

#[test]
fn portable_signals_are_caught() {
    memguard::catch_signals(|_| {}, &[memguard::Signal::Interrupt]).expect("catch");
    memguard::catch_interrupt().expect("catch Ctrl-C");
    assert!(memguard::catch_signal(|_| {}, &[9]).is_err());
}
