// Only on Unix: Unix signals.
#![cfg(unix)]

mod support;

use support::{mark, role, run, Role};

// `catch_signal` and `catch_interrupt`, each played in a child process (the
// test binary re-run for one test, see `support::run_child_timeout`) that
// sends itself a signal with raise(). The parent judges how the child
// ended: the exit code (1 after a caught signal), the signal that killed
// it, and what it printed.
//
// Every child registers an atexit() hook that prints how many buffers are
// still alive when the process exits: after a caught signal that must be 0
// (the purge happened before exit). A child that should have been ended by
// a signal waits for it in a bounded loop, then prints `NOT CAUGHT` and
// exits with code 3.

use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use memguard::{Error, LockedBuffer};

const SIGHUP: i32 = libc::SIGHUP;
const SIGINT: i32 = libc::SIGINT;
const SIGQUIT: i32 = libc::SIGQUIT;
const SIGILL: i32 = libc::SIGILL;
const SIGBUS: i32 = libc::SIGBUS;
const SIGFPE: i32 = libc::SIGFPE;
const SIGKILL: i32 = libc::SIGKILL;
const SIGUSR1: i32 = libc::SIGUSR1;
const SIGSEGV: i32 = libc::SIGSEGV;
const SIGUSR2: i32 = libc::SIGUSR2;
const SIGALRM: i32 = libc::SIGALRM;
const SIGTERM: i32 = libc::SIGTERM;
const SIGCHLD: i32 = libc::SIGCHLD;
const SIGSTOP: i32 = libc::SIGSTOP;
const SIGWINCH: i32 = libc::SIGWINCH;

/// How long a child waits for a signal that should end it.
const WAIT_FOR_EXIT: Duration = Duration::from_secs(10);

const NOT_CAUGHT: &str = "NOT CAUGHT";
const AT_EXIT: &str = "live buffers at exit: ";

// ---------------------------------------------------------------------------
// Parent/child plumbing
// ---------------------------------------------------------------------------

extern "C" fn report_live_buffers_at_exit() {
    mark(&format!("{AT_EXIT}{}", memguard::live_buffers()));
}

/// The start of every child: the atexit report, and one live buffer holding
/// a secret (returned, to be kept alive).
fn child_setup() -> LockedBuffer {
    // SAFETY: registers a plain function.
    assert_eq!(unsafe { libc::atexit(report_live_buffers_at_exit) }, 0);
    let mut buf = LockedBuffer::new(32).expect("allocate");
    buf.copy(&[0xa5; 32]).expect("fill");
    assert_eq!(memguard::live_buffers(), 1);
    buf
}

/// Sends `signal` to the calling thread.
fn raise(signal: i32) {
    mark(&format!("raising signal {signal}"));
    // SAFETY: raise has no memory-safety preconditions.
    assert_eq!(unsafe { libc::raise(signal) }, 0);
}

/// Waits for the process to be ended by what was just raised; if it is
/// not, says so and exits with code 3.
fn wait_to_be_ended(buf: &LockedBuffer) -> ! {
    let step = Duration::from_millis(10);
    for _ in 0..WAIT_FOR_EXIT.as_millis() / step.as_millis() {
        std::thread::sleep(step);
    }
    mark(&format!("{NOT_CAUGHT} (buffer alive: {})", buf.is_alive()));
    std::process::exit(3)
}

/// A handler that says it ran.
fn say(name: &'static str) -> impl Fn(i32) + Send + Sync + 'static {
    move |signal| {
        mark(&format!(
            "{name} ran for signal {signal}; live buffers: {}",
            memguard::live_buffers()
        ))
    }
}

/// Asserts the child exited with code 1 after a caught signal, having run
/// `handler_line` (if any) and purged every buffer before exiting.
fn assert_caught(out: &Output, handler_line: Option<&str>, what: &str) {
    let stdout = support::stdout(out);
    assert_eq!(
        (out.status.code(), support::killed_by(out)),
        (Some(1), None),
        "{what}: expected exit code 1 (caught, purged, exited)\n{}",
        support::describe(out)
    );
    assert!(
        !stdout.contains(NOT_CAUGHT),
        "{what}\n{}",
        support::describe(out)
    );
    if let Some(line) = handler_line {
        assert!(
            stdout.contains(line),
            "{what}: the handler did not run (expected {line:?})\n{}",
            support::describe(out)
        );
    }
    assert!(
        stdout.contains(&format!("{AT_EXIT}0")),
        "{what}: every buffer should be purged before the exit\n{}",
        support::describe(out)
    );
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn catch_interrupt_purges_and_exits_with_code_1_on_sigint() {
    const TEST: &str = "catch_interrupt_purges_and_exits_with_code_1_on_sigint";
    match role(TEST) {
        Role::Parent => {
            let out = run(TEST, "interrupt");
            assert_caught(&out, None, "catch_interrupt + SIGINT");
            let out = run(TEST, "handler");
            // The handler runs before the purge: it still sees the buffer.
            assert_caught(
                &out,
                Some(&format!("handler ran for signal {SIGINT}; live buffers: 1")),
                "catch_signal(h, [SIGINT]) + SIGINT",
            );
        }
        Role::Child(scenario) => {
            match scenario.as_str() {
                "interrupt" => memguard::catch_interrupt().expect("catch_interrupt"),
                "handler" => memguard::catch_signal(say("handler"), &[SIGINT]).expect("catch"),
                other => panic!("unknown scenario {other}"),
            }
            let buf = child_setup();
            raise(SIGINT);
            wait_to_be_ended(&buf)
        }
        Role::Bystander => {}
    }
}

#[test]
fn a_later_call_replaces_the_handler() {
    const TEST: &str = "a_later_call_replaces_the_handler";
    match role(TEST) {
        Role::Parent => {
            let out = run(TEST, "second_signal");
            assert_caught(
                &out,
                Some(&format!("h2 ran for signal {SIGUSR2}")),
                "SIGUSR2 after catch_signal(h1, [SIGUSR1]); catch_signal(h2, [SIGUSR2])",
            );
            assert!(
                !support::stdout(&out).contains("h1 ran"),
                "the replaced handler ran\n{}",
                support::describe(&out)
            );
            // The same signal in both calls: only the later handler runs.
            let out = run(TEST, "same_signal");
            assert_caught(
                &out,
                Some(&format!("h2 ran for signal {SIGUSR2}")),
                "SIGUSR2 after catch_signal(h1, [SIGUSR2]); catch_signal(h2, [SIGUSR2])",
            );
            assert!(
                !support::stdout(&out).contains("h1 ran"),
                "the replaced handler ran\n{}",
                support::describe(&out)
            );
        }
        Role::Child(scenario) => replaced_child(&scenario),
        Role::Bystander => {}
    }
}

/// catch_signal(h1, [SIGUSR1]), then catch_signal(h2, [SIGUSR2]), then
/// raise SIGUSR1 (scenario `first_signal`) or SIGUSR2 (`second_signal`);
/// or h1 also on SIGUSR2 and raise SIGUSR2 (`same_signal`).
fn replaced_child(scenario: &str) -> ! {
    let first = if scenario == "same_signal" {
        SIGUSR2
    } else {
        SIGUSR1
    };
    memguard::catch_signal(say("h1"), &[first]).expect("first catch_signal");
    memguard::catch_signal(say("h2"), &[SIGUSR2]).expect("second catch_signal");
    let buf = child_setup();
    match scenario {
        "first_signal" => raise(SIGUSR1),
        "second_signal" | "same_signal" => raise(SIGUSR2),
        other => panic!("unknown scenario {other}"),
    }
    wait_to_be_ended(&buf)
}

/// A signal of the replaced call is no longer caught by memguard: it gets
/// its default action again (SIGUSR1 kills the process). It was once left
/// ignored: closing signal-hook's `Signals` unregisters the action but keeps
/// the OS-level handler, which then did nothing.
#[test]
fn a_later_call_gives_the_earlier_signals_their_default_action_back() {
    // The child is played by the test above.
    let out = run("a_later_call_replaces_the_handler", "first_signal");
    let stdout = support::stdout(&out);
    assert!(
        !stdout.contains("h1 ran") && !stdout.contains("h2 ran"),
        "SIGUSR1 was caught by memguard after the replacement\n{}",
        support::describe(&out)
    );
    assert_eq!(
        support::killed_by(&out),
        Some(SIGUSR1),
        "SIGUSR1 should have its default action (terminate) again\n{}",
        support::describe(&out)
    );
}

#[test]
fn an_empty_list_means_the_terminating_signals() {
    const TEST: &str = "an_empty_list_means_the_terminating_signals";
    match role(TEST) {
        Role::Parent => {
            assert_eq!(
                memguard::TERMINATING_SIGNALS,
                &[SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM]
            );
            for &signal in memguard::TERMINATING_SIGNALS {
                let out = run(TEST, &signal.to_string());
                assert_caught(
                    &out,
                    Some(&format!("handler ran for signal {signal};")),
                    &format!("catch_signal(h, []) + signal {signal}"),
                );
            }
            let out = run(TEST, "ignored");
            assert_eq!(
                out.status.code(),
                Some(0),
                "SIGCHLD and SIGWINCH should leave the process running\n{}",
                support::describe(&out)
            );
            let stdout = support::stdout(&out);
            assert!(
                stdout.contains("still running") && !stdout.contains("handler ran"),
                "{}",
                support::describe(&out)
            );
        }
        Role::Child(scenario) => {
            memguard::catch_signal(say("handler"), &[]).expect("catch_signal");
            let buf = child_setup();
            if scenario == "ignored" {
                raise(SIGCHLD);
                raise(SIGWINCH);
                std::thread::sleep(Duration::from_millis(300));
                assert!(buf.is_alive());
                mark("still running");
                // Ends the test normally: exit code 0.
                return;
            }
            raise(scenario.parse().expect("a signal number"));
            wait_to_be_ended(&buf)
        }
        Role::Bystander => {}
    }
}

#[test]
fn refused_signals_give_uncatchable_signal() {
    // In process: a refused call registers nothing, so no signal is sent.
    for signal in [SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE] {
        match memguard::catch_signal(|_| {}, &[signal]) {
            Err(Error::UncatchableSignal { signal: s }) => assert_eq!(s, signal),
            other => panic!("signal {signal}: expected UncatchableSignal, got {other:?}"),
        }
        // Also when mixed with catchable ones.
        match memguard::catch_signal(|_| {}, &[SIGTERM, signal, SIGINT]) {
            Err(Error::UncatchableSignal { signal: s }) => assert_eq!(s, signal),
            other => {
                panic!("[SIGTERM, {signal}, SIGINT]: expected UncatchableSignal, got {other:?}")
            }
        }
    }
}

static OWN_HANDLER_RAN: AtomicBool = AtomicBool::new(false);

extern "C" fn own_handler(_signal: libc::c_int) {
    OWN_HANDLER_RAN.store(true, Ordering::SeqCst);
}

/// The handler currently installed for `signal`.
fn installed_handler(signal: i32) -> usize {
    // SAFETY: sigaction with a null new action only reads.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

#[test]
fn handlers_for_other_signals_are_left_alone() {
    const TEST: &str = "handlers_for_other_signals_are_left_alone";
    match role(TEST) {
        Role::Parent => {
            let out = run(TEST, "own_usr2");
            assert_eq!(
                out.status.code(),
                Some(0),
                "the child's own SIGUSR2 handler should run and the child go on\n{}",
                support::describe(&out)
            );
            let stdout = support::stdout(&out);
            assert!(
                stdout.contains("own handler ran: true; still running")
                    && !stdout.contains("handler ran for"),
                "{}",
                support::describe(&out)
            );
        }
        Role::Child(_) => {
            let own = own_handler as extern "C" fn(_) as usize;
            // SAFETY: installs an async-signal-safe handler (one atomic store).
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = own;
                libc::sigemptyset(&mut act.sa_mask);
                assert_eq!(libc::sigaction(SIGUSR2, &act, std::ptr::null_mut()), 0);
            }
            memguard::catch_signal(say("handler"), &[SIGTERM]).expect("catch_signal");
            let buf = child_setup();
            assert_eq!(
                installed_handler(SIGUSR2),
                own,
                "SIGUSR2's handler was replaced"
            );
            raise(SIGUSR2);
            // raise() to the calling thread runs the handler before returning.
            let ran = OWN_HANDLER_RAN.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
            assert!(buf.is_alive());
            mark(&format!("own handler ran: {ran}; still running"));
        }
        Role::Bystander => {}
    }
}

#[test]
fn a_panicking_handler_still_purges_and_exits_with_code_1() {
    const TEST: &str = "a_panicking_handler_still_purges_and_exits_with_code_1";
    match role(TEST) {
        Role::Parent => {
            let out = run(TEST, "panic");
            assert_caught(&out, None, "panicking handler + SIGTERM");
            assert!(
                support::stderr(&out).contains("handler panic"),
                "the handler should have run (and panicked)\n{}",
                support::describe(&out)
            );
        }
        Role::Child(_) => {
            memguard::catch_signal(|_| panic!("handler panic"), &[SIGTERM]).expect("catch");
            let buf = child_setup();
            raise(SIGTERM);
            wait_to_be_ended(&buf)
        }
        Role::Bystander => {}
    }
}
