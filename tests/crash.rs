// Only on Linux: ptrace, /proc/<pid>/mem, Linux signal details.
#![cfg(target_os = "linux")]

#[path = "support/scan.rs"]
mod scan;
mod support;

use support::{assert_killed_by, mark, role, run, survived, Role, CHILD_TIMEOUT, SURVIVED};

// Wipe before crash, checked from outside the crashing process.
//
// The two `traced_*` tests re-run this test binary as a child that the test
// traces with ptrace (`PTRACE_TRACEME` before exec). The child puts a secret
// in guarded memory (a `LockedBuffer`, and an `Enclave` that it opens again)
// and then faults. The parent stops it at the fault, before any handler ran,
// and scans its memory through `/proc/<pid>/mem`: the secret is there (the
// positive control: the scanner works and the secret is in the child). It
// lets the crash handler run, stops the child again at the signal the
// handler re-raises, and scans again: no 16-byte piece of the secret is left
// anywhere in the child's memory. Then the child must die of that signal.
//
// libtest runs a test on a thread of its own even with `--test-threads=1`,
// so the fault happens on a thread other than the one `PTRACE_TRACEME`
// makes a tracee. The parent therefore sets `PTRACE_O_TRACECLONE` at the
// first stop (after exec), so that every thread of the child is traced, and
// waits for each thread by its id (never `waitpid(-1)`, which could reap a
// child of another test running in parallel).
//
// The same tracer checks a fault outside memguard's pages that the earlier
// handler declines, and a stack overflow (the second stop is then std's
// SIGABRT, as its reporter aborts).
//
// The other tests need no tracer: the child's exit status shows that the
// handler re-raises the same signal, and handlers installed before
// memguard's report on stderr whether they ran and whether the buffers were
// wiped by then (after the wipe for a fault in memguard's pages, before it
// for anything else), or recover from faults of their own.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memguard::{Enclave, LockedBuffer};

const SIGBUS: i32 = libc::SIGBUS;
const SIGSEGV: i32 = libc::SIGSEGV;
/// `si_code` of a fault on a mapped page without the needed permission.
const SEGV_ACCERR: i32 = 2;

/// The secret's length, and the length of the pieces looked for.
const SECRET_LEN: usize = 64;
const WINDOW: usize = 16;

/// Where the parent puts the seed the child derives its secret from.
const SEED_ENV: &str = "MEMGUARD_CRASH_SEED";
/// Printed by the child just before the faulting write, with the address.
const FAULT_LINE: &str = "fault address ";
// ---------------------------------------------------------------------------
// Parent/child plumbing
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// The secret
// ---------------------------------------------------------------------------

/// Fills `out` with bytes derived from `seed` (xorshift64), in place, so
/// that no copy is made by returning an array. No byte is zero, so that the
/// scanner's two-byte prefilter is not hit on every zeroed page.
fn fill_secret(seed: u64, out: &mut [u8]) {
    let mut x = seed | 1;
    for b in out.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = (x >> 24) as u8;
        *b = if v == 0 { 0x5a } else { v };
    }
}

/// A seed that differs between runs and between the tests of one run.
fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed =
        nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    seed.max(1)
}

// ---------------------------------------------------------------------------
// The traced child
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// A write one byte past the end of a mutable buffer: its trailing guard
    /// page.
    PastTheEnd,
    /// A write to a frozen (read-only) buffer.
    Frozen,
    /// A write to a `PROT_NONE` page of the child's own, not memguard's.
    Foreign,
    /// A thread that recurses until it overflows its stack.
    StackOverflow,
}

/// Who handled SIGSEGV before memguard, in a traced child.
#[derive(Clone, Copy, Debug)]
enum Earlier {
    /// Rust std's stack-overflow reporter, which every Rust program has: for
    /// any other fault it restores the default action and returns.
    Std,
    /// [`declining_handler`]: notes that it ran and whether the watched
    /// buffer was wiped by then, restores the default action and returns.
    Declining,
    /// No handler at all (`SIG_DFL`).
    None,
}

/// Recurses with a kilobyte of stack per call until the stack runs out.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth as u8; 1024]);
    let below = recurse(std::hint::black_box(depth + 1));
    below + u64::from(frame[(depth % 1024) as usize])
}

/// The child's part of a traced test: put a secret in guarded memory, wipe
/// every other copy, then fault.
///
/// With `leak`, a copy of the secret is also kept in ordinary heap memory,
/// which no crash handler can know about (the scanner's negative control).
fn secret_then_fault(fault: Fault, leak: bool) -> ! {
    secret_then_fault_after(fault, leak, Earlier::Std)
}

/// As [`secret_then_fault`], with `earlier` as the SIGSEGV handler in place
/// when memguard installs its own.
fn secret_then_fault_after(fault: Fault, leak: bool, earlier: Earlier) -> ! {
    // Before anything else of the crate: keeps the process dumpable, so the
    // parent may read /proc/<pid>/mem as the same user, root or not. (The
    // parent turned core files off before exec.)
    memguard::disable_process_hardening().expect("hardening not applied yet");
    assert!(!memguard::crash_handler_installed());
    match earlier {
        Earlier::Std => {}
        Earlier::Declining => install_earlier(
            SIGSEGV,
            declining_handler as extern "C" fn(_, _, _) as usize,
            true,
        ),
        // SAFETY: sets the default action; no handler is involved.
        Earlier::None => unsafe {
            assert_ne!(libc::signal(SIGSEGV, libc::SIG_DFL), libc::SIG_ERR);
        },
    }
    let seed: u64 = std::env::var(SEED_ENV)
        .expect("seed in the environment")
        .parse()
        .expect("a numeric seed");

    let mut secret = [0u8; SECRET_LEN];
    fill_secret(seed, &mut secret);
    let leaked: Option<Box<[u8]>> = leak.then(|| Box::from(&secret[..]));
    let mut held = LockedBuffer::new(SECRET_LEN).expect("allocate the secret's buffer");
    held.copy(&secret).expect("copy the secret in");
    // Seals a copy and wipes `secret`; the first enclave operation also
    // makes the session key and starts its (traced) rekeying thread, left
    // at its default interval.
    let sealed = Enclave::new(&mut secret).expect("seal the secret");
    memguard::wipe_bytes(&mut secret);
    assert!(secret.iter().all(|&b| b == 0));
    let opened = sealed.open().expect("open the enclave");
    assert!(opened.equal_to(&held.bytes()), "enclave round trip");
    watch(&held.bytes());
    mark("secret in place: a LockedBuffer and an opened Enclave");

    match fault {
        Fault::PastTheEnd => {
            let mut victim = LockedBuffer::new(32).expect("allocate the victim");
            let ptr = victim.bytes_mut().expect("mutable").as_mut_ptr();
            // SAFETY: deliberately not: one byte past the end of the data,
            // which is the first byte of the trailing guard page.
            let target = unsafe { ptr.add(32) };
            mark(&format!("{FAULT_LINE}{:#x}", target as usize));
            unsafe { target.write_volatile(0x5a) };
            std::hint::black_box(&victim);
        }
        Fault::Frozen => {
            let victim = LockedBuffer::random(32).expect("allocate the victim");
            assert!(!victim.is_mutable());
            let target = victim.bytes().as_ptr() as *mut u8;
            mark(&format!("{FAULT_LINE}{:#x}", target as usize));
            // SAFETY: deliberately not: a write to read-only pages.
            unsafe { target.write_volatile(0x5a) };
            std::hint::black_box(&victim);
        }
        Fault::Foreign => {
            let target = own_page(libc::PROT_NONE);
            mark(&format!("{FAULT_LINE}{:#x}", target as usize));
            // SAFETY: deliberately not: a write to a PROT_NONE page.
            unsafe { target.write_volatile(0x5a) };
        }
        Fault::StackOverflow => {
            mark("overflowing a thread's stack");
            let deep = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(|| recurse(0))
                .expect("spawn the recursing thread");
            let _ = deep.join();
        }
    }
    std::hint::black_box((&held, &sealed, &opened, &leaked));
    survived(&format!("{fault:?}"))
}

// ---------------------------------------------------------------------------
// The tracer
// ---------------------------------------------------------------------------

fn ptrace(request: libc::c_uint, tid: libc::pid_t, data: usize) -> std::io::Result<()> {
    // SAFETY: requests that take no address and an integer (or a pointer
    // to a live local the caller owns) as data.
    let r = unsafe {
        libc::ptrace(
            request,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            data as *mut libc::c_void,
        )
    };
    if r == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A stop the test has to decide about.
#[derive(Debug)]
enum Stop {
    /// Thread `tid` is in signal-delivery-stop for `sig`.
    Signal { tid: libc::pid_t, sig: i32 },
    /// The whole child is gone; its leader's wait status.
    Died { status: i32 },
}

/// A traced child: its threads, its output, and what happened so far.
struct Traced {
    what: String,
    pid: libc::pid_t,
    tids: BTreeSet<libc::pid_t>,
    reaped: bool,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    log: Vec<String>,
}

impl Traced {
    /// Spawns `scenario` of `test` as a tracee (stopped after exec).
    fn spawn(test: &str, scenario: &str, seed: u64) -> Traced {
        let mut cmd = support::child_command(test, &format!("{test}/{scenario}"));
        cmd.env(SEED_ENV, seed.to_string())
            // The tracer reads the secret out of the child's memory to see
            // it wiped; secret memory (memfd_secret) cannot be read from
            // outside at all (tests/root_proof.rs), so the tracee keeps its
            // buffers in anonymous memory. The wipe itself is the same code
            // on both backends.
            .env("MEMGUARD_MEMORY_BACKEND", "anonymous")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec only async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(|| {
                // The child keeps its process dumpable (so that it can be
                // read); no core file, then, either.
                let no_core = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                ptrace(libc::PTRACE_TRACEME, 0, 0)
            });
        }
        let mut child = cmd.spawn().expect("spawn the traced child");
        let pid = child.id() as libc::pid_t;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            support::copy_on_thread(child.stdout.take().expect("piped"), Arc::clone(&stdout)),
            support::copy_on_thread(child.stderr.take().expect("piped"), Arc::clone(&stderr)),
        ];
        // `child` is reaped by waitpid below, never by Child::wait.
        drop(child);
        Traced {
            what: format!("{test} [{scenario}]"),
            pid,
            tids: BTreeSet::from([pid]),
            reaped: false,
            stdout,
            stderr,
            readers,
            log: Vec::new(),
        }
    }

    fn output(&self) -> String {
        format!(
            "--- events\n{}\n--- stdout\n{}\n--- stderr\n{}",
            self.log.join("\n"),
            String::from_utf8_lossy(&self.stdout.lock().unwrap()),
            String::from_utf8_lossy(&self.stderr.lock().unwrap())
        )
    }

    /// Kills and reaps the child, then fails the test with everything the
    /// child printed.
    fn fail(&mut self, msg: &str) -> ! {
        self.kill();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        panic!("{}: {msg}\n{}", self.what, self.output());
    }

    fn cont(&mut self, tid: libc::pid_t, sig: i32) {
        if let Err(e) = ptrace(libc::PTRACE_CONT, tid, sig as usize) {
            // A thread may vanish when the process dies meanwhile.
            self.log.push(format!("PTRACE_CONT {tid} with {sig}: {e}"));
        }
    }

    fn siginfo(&mut self, tid: libc::pid_t) -> libc::siginfo_t {
        // SAFETY: siginfo_t is plain data; all zeros is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        if let Err(e) = ptrace(
            libc::PTRACE_GETSIGINFO,
            tid,
            &mut info as *mut libc::siginfo_t as usize,
        ) {
            self.fail(&format!("PTRACE_GETSIGINFO on {tid}: {e}"));
        }
        info
    }

    /// Adds the threads listed in /proc (a new thread may stop before its
    /// creator's clone event is seen).
    fn refresh_threads(&mut self) {
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) {
            for entry in dir.flatten() {
                if let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                    self.tids.insert(tid);
                }
            }
        }
    }

    /// The next stop that needs a decision. Clone events and the initial
    /// SIGSTOP of new threads are dealt with here; threads that end are
    /// forgotten. The child gets [`CHILD_TIMEOUT`] from this call to reach
    /// it: the time the parent spends scanning the stopped child does not
    /// count (under AddressSanitizer a scan reads some 350 MB of shadow
    /// mappings, which can take longer than the whole timeout).
    fn next(&mut self) -> Stop {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            if Instant::now() > deadline {
                self.fail(&format!("no decisive stop within {CHILD_TIMEOUT:?}"));
            }
            self.refresh_threads();
            let mut progressed = false;
            for tid in self.tids.clone() {
                let mut status = 0;
                // SAFETY: waits for one of our tracees by its id.
                let r = unsafe { libc::waitpid(tid, &mut status, libc::WNOHANG | libc::__WALL) };
                if r == 0 {
                    continue;
                }
                if r < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() == Some(libc::ECHILD) {
                        if tid == self.pid {
                            self.reaped = true;
                            self.fail("the child's leader vanished (ECHILD)");
                        }
                        self.tids.remove(&tid);
                    }
                    continue;
                }
                progressed = true;
                if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                    self.tids.remove(&tid);
                    self.log
                        .push(format!("thread {tid} ended, status {status:#x}"));
                    if tid == self.pid {
                        self.reaped = true;
                        return Stop::Died { status };
                    }
                    continue;
                }
                if !libc::WIFSTOPPED(status) {
                    continue;
                }
                let sig = libc::WSTOPSIG(status);
                let event = status >> 16;
                if event == libc::PTRACE_EVENT_CLONE {
                    let mut new_tid: libc::c_ulong = 0;
                    let _ = ptrace(
                        libc::PTRACE_GETEVENTMSG,
                        tid,
                        &mut new_tid as *mut libc::c_ulong as usize,
                    );
                    self.log.push(format!("thread {tid} cloned {new_tid}"));
                    self.tids.insert(new_tid as libc::pid_t);
                    self.cont(tid, 0);
                } else if event != 0 {
                    self.log.push(format!("thread {tid}: ptrace event {event}"));
                    self.cont(tid, 0);
                } else if sig == libc::SIGSTOP {
                    // A new thread's first stop; never a real SIGSTOP here.
                    self.log.push(format!("thread {tid}: SIGSTOP (new thread)"));
                    self.cont(tid, 0);
                } else {
                    self.log
                        .push(format!("thread {tid}: stopped by signal {sig}"));
                    return Stop::Signal { tid, sig };
                }
            }
            if !progressed {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Waits for a signal-delivery-stop for `wanted`, passing every other
    /// signal on to the child.
    fn until_signal(&mut self, wanted: i32, what: &str) -> libc::pid_t {
        loop {
            match self.next() {
                Stop::Signal { tid, sig } if sig == wanted => return tid,
                Stop::Signal { tid, sig } => self.cont(tid, sig),
                Stop::Died { status } => self.fail(&format!(
                    "the child ended (status {status:#x}) before {what}"
                )),
            }
        }
    }

    /// Waits up to 5 s for a line of stdout that starts with `prefix`.
    fn stdout_line(&mut self, prefix: &str) -> String {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let text = String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned();
            if let Some(line) = text.lines().find(|l| l.starts_with(prefix)) {
                return line.to_owned();
            }
            if Instant::now() > until {
                self.fail(&format!("no line starting with {prefix:?} on stdout"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn kill(&mut self) {
        if self.reaped {
            return;
        }
        // SAFETY: our own child, not yet reaped, so the pid is still ours.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let until = Instant::now() + Duration::from_secs(5);
        while !self.reaped && Instant::now() < until {
            self.refresh_threads();
            for tid in self.tids.clone() {
                let mut status = 0;
                // SAFETY: as in next().
                let r = unsafe { libc::waitpid(tid, &mut status, libc::WNOHANG | libc::__WALL) };
                let ended = r == tid && (libc::WIFEXITED(status) || libc::WIFSIGNALED(status));
                if ended || r < 0 {
                    self.tids.remove(&tid);
                    if tid == self.pid {
                        self.reaped = true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// The memory scanner
// ---------------------------------------------------------------------------

/// One scan of the child's memory for the secret (the workspace's scanner,
/// `memguard-testkit`'s `scan`), of the mappings that can hold data written
/// at run time: anonymous, stack, heap, and writable file mappings; the
/// read-only parts of files and the kernel's [vvar]/[vdso]/[vsyscall] are
/// skipped.
struct Scan(scan::Scan);

impl Scan {
    /// What was found of the secret.
    fn found(&self) -> &scan::Found {
        &self.0.found[0]
    }

    fn windows_found(&self) -> usize {
        self.found().windows_found()
    }

    fn windows(&self) -> usize {
        self.found().windows_seen.len()
    }

    fn whole(&self) -> &[usize] {
        &self.found().whole
    }

    fn hit_count(&self) -> usize {
        self.found().hits.len()
    }

    fn summary(&self) -> String {
        self.0.summary()
    }
}

/// Scans the data mappings of `pid` for every 16-byte window of `secret`.
fn scan(pid: libc::pid_t, secret: &[u8]) -> Scan {
    let needles = [scan::Needle {
        name: "secret",
        bytes: secret,
    }];
    Scan(
        scan::scan_mappings(pid, &needles, scan::Mappings::Data)
            .unwrap_or_else(|e| panic!("scan the child's memory: {e}")),
    )
}

/// The whole traced run (see the comment at the top of the file): returns
/// the scans at the fault and at the re-raised signal, after checking the
/// positive control, that both stops are the expected ones and that the
/// child then dies of SIGSEGV.
fn traced_crash(test: &str, scenario: &str) -> (Scan, Scan) {
    let (before, after, _) = traced_run(test, scenario, SIGSEGV);
    (before, after)
}

/// As [`traced_crash`], for a fault that ends in `ending`: SIGSEGV when
/// memguard's handler re-raises it (the fault is then the one the child
/// announced), SIGABRT when std's stack-overflow reporter aborts (any
/// SIGSEGV with `SEGV_ACCERR` then). The child must die of `ending`, raised
/// on the faulting thread; also returns everything it printed.
fn traced_run(test: &str, scenario: &str, ending: i32) -> (Scan, Scan, String) {
    let seed = fresh_seed();
    let mut secret = [0u8; SECRET_LEN];
    fill_secret(seed, &mut secret);
    let mut child = Traced::spawn(test, scenario, seed);
    let pid = child.pid;

    // 1. Stopped by the SIGTRAP of exec: trace every thread from now on.
    match child.next() {
        Stop::Signal {
            tid,
            sig: libc::SIGTRAP,
        } if tid == pid => {}
        other => child.fail(&format!("expected the exec SIGTRAP first, got {other:?}")),
    }
    let options = libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_EXITKILL;
    if let Err(e) = ptrace(libc::PTRACE_SETOPTIONS, pid, options as usize) {
        child.fail(&format!("PTRACE_SETOPTIONS: {e}"));
    }
    child.cont(pid, 0);

    // 2. The fault, delivered but not yet handled.
    let tid = child.until_signal(SIGSEGV, "the fault");
    let info = child.siginfo(tid);
    // SAFETY: a SIGSEGV siginfo carries si_addr.
    let addr = unsafe { info.si_addr() } as usize;
    // A stack overflow's address is not known in advance: nothing announced.
    let announced = if ending == SIGSEGV {
        Some(child.stdout_line(FAULT_LINE))
    } else {
        None
    };
    let expected = format!("{FAULT_LINE}{addr:#x}");
    if info.si_code != SEGV_ACCERR || announced.as_ref().is_some_and(|a| *a != expected) {
        child.fail(&format!(
            "first SIGSEGV is not the planned fault: si_code {} at {addr:#x}, child said {announced:?}",
            info.si_code
        ));
    }
    let before = scan(pid, &secret);
    eprintln!(
        "{test} [{scenario}]: fault at {addr:#x} on thread {tid} (leader {pid}); scan at the \
         fault: {}",
        before.summary()
    );
    if before.windows_found() != before.windows() || before.whole().len() < 2 {
        child.fail(&format!(
            "positive control failed: before the handler ran the whole secret should be in \
             the child at least twice (the LockedBuffer and the opened Enclave)\n{}",
            before.summary()
        ));
    }

    // 3. Let the handler run: it wipes, then re-raises SIGSEGV (or std's
    // handler aborts).
    child.cont(tid, SIGSEGV);
    let again = child.until_signal(ending, "the re-raised signal");
    let info = child.siginfo(again);
    if again != tid || info.si_code != libc::SI_TKILL {
        child.fail(&format!(
            "signal {ending} is not raised by the faulting thread: thread {again} (fault on \
             {tid}), si_code {}",
            info.si_code
        ));
    }
    let after = scan(pid, &secret);
    eprintln!(
        "{test} [{scenario}]: scan at signal {ending}: {}",
        after.summary()
    );
    if after.0.bytes < before.0.bytes / 2 {
        child.fail("the second scan read much less memory than the first");
    }

    // 4. Deliver it: the process dies of it.
    child.cont(tid, ending);
    loop {
        match child.next() {
            Stop::Died { status } => {
                if !(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == ending) {
                    child.fail(&format!(
                        "expected death by signal {ending}, got status {status:#x}"
                    ));
                }
                break;
            }
            Stop::Signal { tid, sig } => child.cont(tid, sig),
        }
    }
    // The child is gone, so its pipes are closed: read them to the end.
    for reader in child.readers.drain(..) {
        let _ = reader.join();
    }
    let out = child.output();
    assert!(!out.contains(SURVIVED), "{out}");
    (before, after, out)
}

/// Asserts that no 16-byte piece of the secret was left.
fn assert_wiped(after: &Scan) {
    assert_eq!(
        after.hit_count(),
        0,
        "the secret survived the crash handler\n{}",
        after.summary()
    );
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn traced_write_past_the_end_wipes_the_secret_before_dying() {
    const TEST: &str = "traced_write_past_the_end_wipes_the_secret_before_dying";
    match role(TEST) {
        Role::Parent => assert_wiped(&traced_crash(TEST, "fault").1),
        Role::Child(_) => secret_then_fault(Fault::PastTheEnd, false),
        Role::Bystander => {}
    }
}

#[test]
fn traced_write_to_a_frozen_buffer_wipes_the_secret_before_dying() {
    const TEST: &str = "traced_write_to_a_frozen_buffer_wipes_the_secret_before_dying";
    match role(TEST) {
        Role::Parent => assert_wiped(&traced_crash(TEST, "fault").1),
        Role::Child(_) => secret_then_fault(Fault::Frozen, false),
        Role::Bystander => {}
    }
}

/// The negative control of the scanner: a copy the child leaves in ordinary
/// heap memory is found after the crash handler ran, while the guarded
/// copies are gone. So an empty second scan in the tests above means the
/// memory was read and held no secret, not that nothing could be read.
#[test]
fn traced_scanner_finds_a_copy_left_outside_guarded_memory() {
    const TEST: &str = "traced_scanner_finds_a_copy_left_outside_guarded_memory";
    match role(TEST) {
        Role::Parent => {
            let (before, after) = traced_crash(TEST, "leak");
            assert!(before.whole().len() >= 3, "{}", before.summary());
            assert_eq!(
                after.whole().len(),
                1,
                "exactly the leaked heap copy should be left\n{}",
                after.summary()
            );
            assert_eq!(
                after.hit_count(),
                SECRET_LEN - WINDOW + 1,
                "{}",
                after.summary()
            );
            assert!(
                before
                    .whole()
                    .iter()
                    .filter(|a| !after.whole().contains(a))
                    .count()
                    >= 2,
                "the guarded copies should be gone\nbefore: {}\nafter: {}",
                before.summary(),
                after.summary()
            );
        }
        Role::Child(_) => secret_then_fault(Fault::PastTheEnd, true),
        Role::Bystander => {}
    }
}

#[test]
fn the_crash_handler_re_raises_the_same_signal() {
    const TEST: &str = "the_crash_handler_re_raises_the_same_signal";
    match role(TEST) {
        Role::Parent => {
            let out = run(TEST, "write_past_end");
            assert!(
                support::stdout(&out).contains("installed: before false, after true"),
                "crash_handler_installed() should turn true on the first allocation\n{}",
                support::describe(&out)
            );
            assert_killed_by(&out, SIGSEGV, "writing past the end", "write past the end");
            let out = run(TEST, "raise_sigbus");
            assert_killed_by(&out, SIGBUS, "raising SIGBUS", "raise(SIGBUS)");
            let out = run(TEST, "raise_sigsegv");
            assert_killed_by(&out, SIGSEGV, "raising SIGSEGV", "raise(SIGSEGV)");
        }
        Role::Child(scenario) => {
            let before = memguard::crash_handler_installed();
            let mut buf = LockedBuffer::new(32).expect("allocate");
            buf.copy(&[0xa5; 32]).expect("fill");
            let after = memguard::crash_handler_installed();
            mark(&format!("installed: before {before}, after {after}"));
            match scenario.as_str() {
                "write_past_end" => {
                    let ptr = buf.bytes_mut().expect("mutable").as_mut_ptr();
                    mark("writing past the end");
                    // SAFETY: deliberately not: the trailing guard page.
                    unsafe { ptr.add(32).write_volatile(1) };
                }
                "raise_sigbus" => {
                    mark("raising SIGBUS");
                    // SAFETY: raise is always safe to call.
                    unsafe { libc::raise(SIGBUS) };
                }
                "raise_sigsegv" => {
                    mark("raising SIGSEGV");
                    // SAFETY: as above.
                    unsafe { libc::raise(SIGSEGV) };
                }
                other => panic!("unknown scenario {other}"),
            }
            std::hint::black_box(&buf);
            survived(&scenario)
        }
        Role::Bystander => {}
    }
}

// ---------------------------------------------------------------------------
// Earlier handlers: installed before memguard's, so memguard chains to them
// ---------------------------------------------------------------------------

/// The data pointer and length of the buffer the earlier handlers check.
static WATCHED: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static WATCHED_LEN: AtomicUsize = AtomicUsize::new(0);
/// The page size, for the handlers.
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
/// The page a plain (non-`SA_SIGINFO`) recovering handler makes accessible.
static RECOVER_PAGE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
/// The memfd a SIGBUS-recovering handler grows.
static RECOVER_FD: AtomicUsize = AtomicUsize::new(0);
/// Faults the recovering handlers handled.
static RECOVERED: AtomicUsize = AtomicUsize::new(0);

/// Faults each recovering scenario takes.
const ROUNDS: usize = 5;

/// Makes `data` (a buffer's bytes, which must outlive the handlers' use)
/// the buffer the earlier handlers look at.
fn watch(data: &[u8]) {
    WATCHED_LEN.store(data.len(), Ordering::Release);
    WATCHED.store(data.as_ptr() as *mut u8, Ordering::Release);
    assert!(!watched_is_wiped());
}

/// Writes `bytes` to stderr with write(2) (async-signal-safe).
fn raw_stderr(bytes: &[u8]) {
    // SAFETY: writes from a live slice.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

/// Whether the watched buffer is all zeros; only atomics and plain reads.
fn watched_is_wiped() -> bool {
    let ptr = WATCHED.load(Ordering::Acquire);
    let len = WATCHED_LEN.load(Ordering::Acquire);
    // SAFETY: the buffer is alive (the faulting code holds it) and its data
    // pages are mapped readable (a frozen buffer's stay readable; a wiped
    // one's are made writable).
    !ptr.is_null() && (0..len).all(|i| unsafe { ptr.add(i).read_volatile() } == 0)
}

/// Says on stderr whether the watched buffer is wiped at this point.
fn report_watched() {
    if watched_is_wiped() {
        raw_stderr(b"earlier handler saw the buffer wiped\n");
    } else {
        raw_stderr(b"earlier handler saw the buffer NOT wiped\n");
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf is always safe to call.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).expect("a page size")
}

/// A fresh page of the child's own (not memguard's), with protection `prot`.
fn own_page(prot: i32) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping; it overlaps nothing.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page_size(),
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED, "mmap");
    page.cast()
}

/// Restores the default action for `sig` (async-signal-safe).
fn restore_default(sig: libc::c_int) {
    // SAFETY: sigaction with an initialised struct.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(sig, &act, std::ptr::null_mut());
    }
}

/// Reports and returns, handling nothing.
extern "C" fn earlier_siginfo_handler(
    _sig: libc::c_int,
    _info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    raw_stderr(b"EARLIER SIGINFO HANDLER RAN\n");
    report_watched();
}

/// Reports and returns, handling nothing.
extern "C" fn earlier_plain_handler(_sig: libc::c_int) {
    raw_stderr(b"EARLIER PLAIN HANDLER RAN\n");
    report_watched();
}

/// Reports, then declines the signal as std's handler does: restores the
/// default action and returns.
extern "C" fn declining_handler(
    sig: libc::c_int,
    _info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    raw_stderr(b"DECLINING HANDLER RAN\n");
    report_watched();
    restore_default(sig);
}

/// As [`declining_handler`], installed without `SA_SIGINFO`.
extern "C" fn declining_plain_handler(sig: libc::c_int) {
    raw_stderr(b"DECLINING HANDLER RAN\n");
    report_watched();
    restore_default(sig);
}

/// Recovers from a fault by making the faulting page readable and
/// writable, as a runtime with guard pages does.
extern "C" fn recovering_handler(
    _sig: libc::c_int,
    info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    // SAFETY: a fault's siginfo carries si_addr; the page holding it is
    // made accessible, which is the point of this handler.
    unsafe {
        let addr = (*info).si_addr() as usize & !(page - 1);
        libc::mprotect(
            addr as *mut libc::c_void,
            page,
            libc::PROT_READ | libc::PROT_WRITE,
        );
    }
    RECOVERED.fetch_add(1, Ordering::SeqCst);
    raw_stderr(b"RECOVERING HANDLER RAN\n");
    report_watched();
}

/// As [`recovering_handler`], installed without `SA_SIGINFO`: makes
/// [`RECOVER_PAGE`] accessible.
extern "C" fn recovering_plain_handler(_sig: libc::c_int) {
    // SAFETY: our own page, made accessible.
    unsafe {
        libc::mprotect(
            RECOVER_PAGE.load(Ordering::Acquire).cast(),
            PAGE_SIZE.load(Ordering::Relaxed),
            libc::PROT_READ | libc::PROT_WRITE,
        );
    }
    RECOVERED.fetch_add(1, Ordering::SeqCst);
}

/// Recovers from a SIGBUS on a shared mapping of an empty memfd by growing
/// the file to a page, which backs the faulting page.
extern "C" fn recovering_bus_handler(
    _sig: libc::c_int,
    _info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    let fd = RECOVER_FD.load(Ordering::Acquire) as libc::c_int;
    let page = PAGE_SIZE.load(Ordering::Relaxed) as libc::off_t;
    // SAFETY: ftruncate is async-signal-safe; the file is ours.
    unsafe { libc::ftruncate(fd, page) };
    RECOVERED.fetch_add(1, Ordering::SeqCst);
}

/// Installs `handler` for `signal`, the SA_SIGINFO way or the plain way.
fn install_earlier(signal: i32, handler: usize, siginfo: bool) {
    PAGE_SIZE.store(page_size(), Ordering::Relaxed);
    // SAFETY: sigaction with initialised structs; the handlers are
    // async-signal-safe.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler;
        act.sa_flags = if siginfo { libc::SA_SIGINFO } else { 0 };
        libc::sigemptyset(&mut act.sa_mask);
        assert_eq!(libc::sigaction(signal, &act, std::ptr::null_mut()), 0);
    }
}

/// A buffer holding 0xa5 × 48, allocated after the earlier handler went in
/// (memguard's handler then goes in over it), and watched.
fn watched_secret() -> LockedBuffer {
    assert!(
        !memguard::crash_handler_installed(),
        "no allocation may happen before the earlier handler goes in"
    );
    let mut secret = LockedBuffer::new(48).expect("allocate");
    secret.copy(&[0xa5; 48]).expect("fill");
    watch(&secret.bytes());
    assert!(memguard::crash_handler_installed());
    secret
}

/// Writes one byte past the end of a fresh buffer: its trailing guard page.
fn write_past_the_end() {
    let mut victim = LockedBuffer::new(32).expect("allocate");
    let ptr = victim.bytes_mut().expect("mutable").as_mut_ptr();
    mark("writing past the end");
    // SAFETY: deliberately not: the trailing guard page.
    unsafe { ptr.add(32).write_volatile(1) };
    std::hint::black_box(&victim);
}

/// A fault in memguard's own pages is fatal by design: every buffer is
/// wiped, then the earlier handler runs (it sees the buffers wiped), and
/// whatever it does, returning without handling, or even making the guard
/// page accessible as a recovering runtime would, the process then dies of
/// the signal.
#[test]
fn an_earlier_handler_runs_after_the_wipe_on_a_fault_in_memguards_pages() {
    const TEST: &str = "an_earlier_handler_runs_after_the_wipe_on_a_fault_in_memguards_pages";
    match role(TEST) {
        Role::Parent => {
            for (scenario, ran) in [
                ("siginfo", "EARLIER SIGINFO HANDLER RAN"),
                ("plain", "EARLIER PLAIN HANDLER RAN"),
                ("recovering", "RECOVERING HANDLER RAN"),
            ] {
                let out = run(TEST, scenario);
                let err = support::stderr(&out);
                assert!(
                    err.contains(ran),
                    "{scenario}: the earlier handler was not chained\n{}",
                    support::describe(&out)
                );
                assert!(
                    err.contains("earlier handler saw the buffer wiped")
                        && !err.contains("NOT wiped"),
                    "{scenario}: the buffers should be wiped before the earlier handler runs\n{}",
                    support::describe(&out)
                );
                assert_killed_by(&out, SIGSEGV, "writing past the end", scenario);
            }
        }
        Role::Child(scenario) => {
            match scenario.as_str() {
                "siginfo" => install_earlier(
                    SIGSEGV,
                    earlier_siginfo_handler as extern "C" fn(_, _, _) as usize,
                    true,
                ),
                "plain" => install_earlier(
                    SIGSEGV,
                    earlier_plain_handler as extern "C" fn(_) as usize,
                    false,
                ),
                "recovering" => install_earlier(
                    SIGSEGV,
                    recovering_handler as extern "C" fn(_, _, _) as usize,
                    true,
                ),
                other => panic!("unknown scenario {other}"),
            }
            let secret = watched_secret();
            write_past_the_end();
            std::hint::black_box(&secret);
            survived(&scenario)
        }
        Role::Bystander => {}
    }
}

/// A signal that is not a fault in memguard's pages is the earlier
/// handler's to decide, and it decides first, before anything is wiped: a
/// handler that restores the default action (as std's does) declines it,
/// and the process dies of it; one that returns with memguard's handler
/// still installed has handled it, and the process goes on with its
/// buffers intact. A signal that was ignored before memguard stays ignored.
/// (That a declined signal is wiped before the death is checked from
/// outside by `traced_foreign_fault_wipes_the_secret_before_dying`.)
#[test]
fn an_earlier_handler_decides_first_about_other_signals() {
    const TEST: &str = "an_earlier_handler_decides_first_about_other_signals";
    match role(TEST) {
        Role::Parent => {
            let out = run(TEST, "bus_declined");
            let err = support::stderr(&out);
            assert!(
                err.contains("DECLINING HANDLER RAN")
                    && err.contains("earlier handler saw the buffer NOT wiped"),
                "the earlier SIGBUS handler should run before any wipe\n{}",
                support::describe(&out)
            );
            assert_killed_by(&out, SIGBUS, "raising SIGBUS", "declined SIGBUS");

            for scenario in ["bus_handled", "segv_handled", "segv_ignored"] {
                let out = run(TEST, scenario);
                let text = support::stdout(&out);
                assert!(
                    out.status.code() == Some(0) && text.contains("secret intact"),
                    "{scenario}: the process should go on, its buffer intact\n{}",
                    support::describe(&out)
                );
                if scenario != "segv_ignored" {
                    assert!(
                        support::stderr(&out).contains("earlier handler saw the buffer NOT wiped"),
                        "{scenario}: the earlier handler should have run\n{}",
                        support::describe(&out)
                    );
                }
            }
        }
        Role::Child(scenario) => {
            let signal = if scenario.starts_with("bus") {
                SIGBUS
            } else {
                SIGSEGV
            };
            match scenario.as_str() {
                "bus_declined" => install_earlier(
                    SIGBUS,
                    declining_plain_handler as extern "C" fn(_) as usize,
                    false,
                ),
                "bus_handled" => install_earlier(
                    SIGBUS,
                    earlier_plain_handler as extern "C" fn(_) as usize,
                    false,
                ),
                "segv_handled" => install_earlier(
                    SIGSEGV,
                    earlier_siginfo_handler as extern "C" fn(_, _, _) as usize,
                    true,
                ),
                // SAFETY: sets SIG_IGN; no handler is involved.
                "segv_ignored" => unsafe {
                    assert_ne!(libc::signal(SIGSEGV, libc::SIG_IGN), libc::SIG_ERR);
                },
                other => panic!("unknown scenario {other}"),
            }
            let secret = watched_secret();
            mark(if signal == SIGBUS {
                "raising SIGBUS"
            } else {
                "raising SIGSEGV"
            });
            // SAFETY: raise is always safe to call.
            unsafe { libc::raise(signal) };
            assert!(
                secret.bytes().iter().all(|&b| b == 0xa5),
                "the secret was wiped"
            );
            mark("went on, secret intact");
        }
        Role::Bystander => {}
    }
}

/// Issue 11, point 7: a handler installed before memguard that recovers
/// from faults (on its own `PROT_NONE` page, or on a shared mapping past
/// the end of its file) keeps the process running, fault after fault, and
/// memguard's buffers intact. The old handler wiped, chained, then killed
/// the process at the first fault.
#[test]
fn an_earlier_handler_that_recovers_from_faults_keeps_the_process_and_the_secret() {
    const TEST: &str =
        "an_earlier_handler_that_recovers_from_faults_keeps_the_process_and_the_secret";
    match role(TEST) {
        Role::Parent => {
            for scenario in ["segv_siginfo", "segv_plain", "bus_siginfo"] {
                let out = run(TEST, scenario);
                assert!(
                    out.status.code() == Some(0)
                        && support::stdout(&out)
                            .contains(&format!("recovered {ROUNDS} faults, secret intact")),
                    "{scenario}: the process should survive every fault with its secret\n{}",
                    support::describe(&out)
                );
            }
        }
        Role::Child(scenario) => {
            let page = page_size();
            let target = match scenario.as_str() {
                "segv_siginfo" | "segv_plain" => {
                    let target = own_page(libc::PROT_NONE);
                    RECOVER_PAGE.store(target, Ordering::Release);
                    if scenario == "segv_siginfo" {
                        install_earlier(
                            SIGSEGV,
                            recovering_handler as extern "C" fn(_, _, _) as usize,
                            true,
                        );
                    } else {
                        install_earlier(
                            SIGSEGV,
                            recovering_plain_handler as extern "C" fn(_) as usize,
                            false,
                        );
                    }
                    target
                }
                "bus_siginfo" => {
                    // SAFETY: memfd_create with a NUL-terminated name; the
                    // mapping is fresh and shared with the empty file.
                    let target = unsafe {
                        let fd = libc::memfd_create(c"recover".as_ptr(), 0);
                        assert!(fd >= 0, "memfd_create");
                        RECOVER_FD.store(fd as usize, Ordering::Release);
                        libc::mmap(
                            std::ptr::null_mut(),
                            page,
                            libc::PROT_READ | libc::PROT_WRITE,
                            libc::MAP_SHARED,
                            fd,
                            0,
                        )
                    };
                    assert_ne!(target, libc::MAP_FAILED, "mmap the memfd");
                    install_earlier(
                        SIGBUS,
                        recovering_bus_handler as extern "C" fn(_, _, _) as usize,
                        true,
                    );
                    target.cast()
                }
                other => panic!("unknown scenario {other}"),
            };
            let secret = watched_secret();
            for round in 0..ROUNDS {
                // Take the page away again: protection, or the file's length.
                // SAFETY: our own page and file.
                unsafe {
                    if scenario == "bus_siginfo" {
                        let fd = RECOVER_FD.load(Ordering::Acquire) as libc::c_int;
                        assert_eq!(libc::ftruncate(fd, 0), 0);
                    } else {
                        assert_eq!(libc::mprotect(target.cast(), page, libc::PROT_NONE), 0);
                    }
                }
                let value = round as u8 + 1;
                // SAFETY: faults, the earlier handler makes the page usable,
                // and the write is done again.
                unsafe { target.write_volatile(value) };
                // SAFETY: as above; now readable.
                assert_eq!(unsafe { target.read_volatile() }, value);
                assert_eq!(RECOVERED.load(Ordering::SeqCst), round + 1);
            }
            assert!(
                secret.bytes().iter().all(|&b| b == 0xa5),
                "the secret was wiped"
            );
            mark(&format!("recovered {ROUNDS} faults, secret intact"));
        }
        Role::Bystander => {}
    }
}

/// A fault outside memguard's pages that the earlier handler declines is
/// fatal: the secret is wiped (checked from outside, as in the traced tests
/// above) and the process dies of SIGSEGV, whether the earlier handler is
/// std's, a C-style one that restores the default action (it runs first,
/// and sees the buffer not yet wiped), or there is none.
#[test]
fn traced_foreign_fault_wipes_the_secret_before_dying() {
    const TEST: &str = "traced_foreign_fault_wipes_the_secret_before_dying";
    match role(TEST) {
        Role::Parent => {
            for scenario in ["std", "declining", "none"] {
                let (_, after, out) = traced_run(TEST, scenario, SIGSEGV);
                assert_wiped(&after);
                if scenario == "declining" {
                    assert!(
                        out.contains("DECLINING HANDLER RAN")
                            && out.contains("earlier handler saw the buffer NOT wiped"),
                        "the earlier handler should run first\n{out}"
                    );
                }
            }
        }
        Role::Child(scenario) => {
            let earlier = match scenario.as_str() {
                "std" => Earlier::Std,
                "declining" => Earlier::Declining,
                "none" => Earlier::None,
                other => panic!("unknown scenario {other}"),
            };
            secret_then_fault_after(Fault::Foreign, false, earlier)
        }
        Role::Bystander => {}
    }
}

/// A stack overflow is wiped before std's handler reports it and aborts
/// (it never returns, so a wipe after it would never run): the parent
/// scans the child at the overflow and at std's SIGABRT.
#[test]
fn traced_stack_overflow_wipes_the_secret_before_std_aborts() {
    const TEST: &str = "traced_stack_overflow_wipes_the_secret_before_std_aborts";
    match role(TEST) {
        Role::Parent => {
            let (_, after, out) = traced_run(TEST, "overflow", libc::SIGABRT);
            assert_wiped(&after);
            assert!(
                out.contains("has overflowed its stack"),
                "std's handler should have reported the overflow\n{out}"
            );
        }
        Role::Child(_) => secret_then_fault(Fault::StackOverflow, false),
        Role::Bystander => {}
    }
}
