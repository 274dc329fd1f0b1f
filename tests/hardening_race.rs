// Only on Linux: the dumpable flag.
#![cfg(target_os = "linux")]

//! Hardening is applied before any buffer exists and before
//! `is_process_hardened()` says so, even when threads race to the first
//! allocation. Each round runs in a fresh child process, because hardening
//! happens once per process.

mod support;

use std::sync::{Arc, Barrier};

use rustix::process::{dumpable_behavior, getrlimit, DumpableBehavior, Resource};

const TEST: &str = "threads_racing_to_first_use_never_see_an_unhardened_process";
const ROUNDS: usize = 40;

fn actually_hardened() -> bool {
    getrlimit(Resource::Core).current == Some(0)
        && matches!(dumpable_behavior(), Ok(DumpableBehavior::NotDumpable))
}

fn play_child() {
    let barrier = Arc::new(Barrier::new(3));
    let watcher = {
        let b = Arc::clone(&barrier);
        std::thread::spawn(move || {
            b.wait();
            while !memguard::is_process_hardened() {
                std::hint::spin_loop();
            }
            actually_hardened()
        })
    };
    let second = {
        let b = Arc::clone(&barrier);
        std::thread::spawn(move || {
            b.wait();
            let buf = memguard::LockedBuffer::new(32).expect("allocate");
            let ok = actually_hardened();
            drop(buf);
            ok
        })
    };
    barrier.wait();
    let first = memguard::LockedBuffer::new(32).expect("allocate");
    let first_ok = actually_hardened();
    drop(first);
    let watcher_ok = watcher.join().expect("watcher");
    let second_ok = second.join().expect("second");
    if first_ok && watcher_ok && second_ok {
        println!("HARDENED-IN-TIME");
    } else {
        println!("RACE first={first_ok} watcher={watcher_ok} second={second_ok}");
    }
}

#[test]
fn threads_racing_to_first_use_never_see_an_unhardened_process() {
    if let Some(scenario) = support::child_scenario() {
        if scenario == "race" {
            play_child();
        }
        return;
    }
    for round in 0..ROUNDS {
        let out = support::run_child(TEST, "race");
        let text = support::stdout(&out);
        assert!(
            out.status.success() && text.contains("HARDENED-IN-TIME"),
            "round {round}: {}",
            support::describe(&out)
        );
    }
}
