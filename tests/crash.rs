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
// The other tests need no tracer: the child's exit status shows that the
// handler re-raises the same signal, and a handler installed before
// memguard's is chained (and finds the buffers already wiped).

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
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
}

/// The child's part of a traced test: put a secret in guarded memory, wipe
/// every other copy, then fault.
///
/// With `leak`, a copy of the secret is also kept in ordinary heap memory,
/// which no crash handler can know about (the scanner's negative control).
fn secret_then_fault(fault: Fault, leak: bool) -> ! {
    // Before anything else of the crate: keeps the process dumpable, so the
    // parent may read /proc/<pid>/mem as the same user, root or not. (The
    // parent turned core files off before exec.)
    memguard::disable_process_hardening().expect("hardening not applied yet");
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
    deadline: Instant,
    reaped: bool,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    log: Vec<String>,
}

impl Traced {
    /// Spawns `scenario` of `test` as a tracee (stopped after exec).
    fn spawn(test: &str, scenario: &str, seed: u64) -> Traced {
        let exe = std::env::current_exe().expect("current test binary");
        let mut cmd = Command::new(exe);
        cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(support::CHILD_ENV, format!("{test}/{scenario}"))
            .env(SEED_ENV, seed.to_string())
            .env("RUST_BACKTRACE", "0")
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
            deadline: Instant::now() + CHILD_TIMEOUT,
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
    /// forgotten.
    fn next(&mut self) -> Stop {
        loop {
            if Instant::now() > self.deadline {
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

/// What one scan of the child's memory found.
#[derive(Default)]
struct Scan {
    mappings: usize,
    bytes: usize,
    unreadable_pages: usize,
    /// For each 16-byte window of the secret, whether it was seen.
    windows_seen: Vec<bool>,
    /// Addresses where the whole secret was seen.
    whole: Vec<usize>,
    /// Window hits per mapping.
    hits: std::collections::BTreeMap<String, usize>,
    hit_count: usize,
}

impl Scan {
    fn windows_found(&self) -> usize {
        self.windows_seen.iter().filter(|&&s| s).count()
    }

    fn summary(&self) -> String {
        let mut s = format!(
            "{} mappings, {} bytes scanned, {} unreadable pages; {} of {} windows seen, {} hits, \
             whole secret at {:x?}",
            self.mappings,
            self.bytes,
            self.unreadable_pages,
            self.windows_found(),
            self.windows_seen.len(),
            self.hit_count,
            self.whole
        );
        for (map, n) in &self.hits {
            s.push_str(&format!("\n  {n} window hits in {map}"));
        }
        s
    }
}

/// Reads the readable mappings of `pid` that can hold data written at run
/// time (anonymous, stack, heap, and writable file mappings; the read-only
/// parts of files and the kernel's [vvar]/[vdso]/[vsyscall] are skipped)
/// and looks for every 16-byte window of `secret`.
fn scan(pid: libc::pid_t, secret: &[u8]) -> Scan {
    let windows: Vec<&[u8]> = secret.windows(WINDOW).collect();
    let mut prefix = vec![false; 1 << 16];
    for w in &windows {
        prefix[usize::from(w[0]) << 8 | usize::from(w[1])] = true;
    }
    let mut found = Scan {
        windows_seen: vec![false; windows.len()],
        ..Scan::default()
    };
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read the maps");
    let mem = File::open(format!("/proc/{pid}/mem")).expect("open the child's memory");
    let page = 4096;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or("");
        let (start, end) = range.split_once('-').expect("a range");
        let start = usize::from_str_radix(start, 16).expect("hex start");
        let end = usize::from_str_radix(end, 16).expect("hex end");
        let (readable, writable) = (perms.starts_with('r'), perms.as_bytes()[1] == b'w');
        let kernel = matches!(path, "[vvar]" | "[vvar_vclock]" | "[vdso]" | "[vsyscall]");
        let file_text = path.starts_with('/') && !writable;
        if !readable || kernel || file_text || end - start > 1 << 30 {
            continue;
        }
        let mut buf = vec![0u8; end - start];
        if mem.read_exact_at(&mut buf, start as u64).is_err() {
            // Page by page; what cannot be read stays zero.
            buf.fill(0);
            for (i, chunk) in buf.chunks_mut(page).enumerate() {
                if mem.read_exact_at(chunk, (start + i * page) as u64).is_err() {
                    chunk.fill(0);
                    found.unreadable_pages += 1;
                }
            }
        }
        found.mappings += 1;
        found.bytes += buf.len();
        if buf.len() < WINDOW {
            continue;
        }
        for i in 0..=buf.len() - WINDOW {
            if !prefix[usize::from(buf[i]) << 8 | usize::from(buf[i + 1])] {
                continue;
            }
            for (w, window) in windows.iter().enumerate() {
                if &buf[i..i + WINDOW] == *window {
                    found.windows_seen[w] = true;
                    found.hit_count += 1;
                    *found
                        .hits
                        .entry(format!("{range} {perms} {path}"))
                        .or_default() += 1;
                    if w == 0 && buf.get(i..i + secret.len()) == Some(secret) {
                        found.whole.push(start + i);
                    }
                }
            }
        }
    }
    found
}

/// The whole traced run (see the comment at the top of the file): returns
/// the scans at the fault and at the re-raised signal, after checking the
/// positive control, that both stops are the expected ones and that the
/// child then dies of SIGSEGV.
fn traced_crash(test: &str, scenario: &str) -> (Scan, Scan) {
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
    let announced = child.stdout_line(FAULT_LINE);
    if info.si_code != SEGV_ACCERR || announced != format!("{FAULT_LINE}{addr:#x}") {
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
    if before.windows_found() != before.windows_seen.len() || before.whole.len() < 2 {
        child.fail(&format!(
            "positive control failed: before the handler ran the whole secret should be in \
             the child at least twice (the LockedBuffer and the opened Enclave)\n{}",
            before.summary()
        ));
    }

    // 3. Let the handler run: it wipes, then re-raises SIGSEGV.
    child.cont(tid, SIGSEGV);
    let again = child.until_signal(SIGSEGV, "the re-raised signal");
    let info = child.siginfo(again);
    if again != tid || info.si_code != libc::SI_TKILL {
        child.fail(&format!(
            "second SIGSEGV is not the handler's raise(): thread {again} (fault on {tid}), \
             si_code {}",
            info.si_code
        ));
    }
    let after = scan(pid, &secret);
    eprintln!(
        "{test} [{scenario}]: scan at the re-raise: {}",
        after.summary()
    );
    if after.bytes < before.bytes / 2 {
        child.fail("the second scan read much less memory than the first");
    }

    // 4. Deliver it: the process dies of SIGSEGV.
    child.cont(tid, SIGSEGV);
    loop {
        match child.next() {
            Stop::Died { status } => {
                if !(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == SIGSEGV) {
                    child.fail(&format!(
                        "expected death by SIGSEGV, got status {status:#x}"
                    ));
                }
                break;
            }
            Stop::Signal { tid, sig } => child.cont(tid, sig),
        }
    }
    let out = child.output();
    assert!(!out.contains(SURVIVED), "{out}");
    (before, after)
}

/// Asserts that no 16-byte piece of the secret was left.
fn assert_wiped(after: &Scan) {
    assert_eq!(
        after.hit_count,
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
            assert!(before.whole.len() >= 3, "{}", before.summary());
            assert_eq!(
                after.whole.len(),
                1,
                "exactly the leaked heap copy should be left\n{}",
                after.summary()
            );
            assert_eq!(
                after.hit_count,
                SECRET_LEN - WINDOW + 1,
                "{}",
                after.summary()
            );
            assert!(
                before
                    .whole
                    .iter()
                    .filter(|a| !after.whole.contains(a))
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

/// The data pointer and length of the buffer the chained handler checks.
static WATCHED: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static WATCHED_LEN: AtomicUsize = AtomicUsize::new(0);

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
    // pages are mapped readable (the crash handler made them writable).
    !ptr.is_null() && (0..len).all(|i| unsafe { ptr.add(i).read_volatile() } == 0)
}

extern "C" fn earlier_siginfo_handler(
    _sig: libc::c_int,
    _info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    raw_stderr(b"EARLIER SIGSEGV HANDLER RAN\n");
    if watched_is_wiped() {
        raw_stderr(b"earlier handler saw the buffer wiped\n");
    } else {
        raw_stderr(b"earlier handler saw the buffer NOT wiped\n");
    }
}

extern "C" fn earlier_plain_handler(_sig: libc::c_int) {
    raw_stderr(b"EARLIER SIGBUS HANDLER RAN\n");
    if watched_is_wiped() {
        raw_stderr(b"earlier handler saw the buffer wiped\n");
    } else {
        raw_stderr(b"earlier handler saw the buffer NOT wiped\n");
    }
}

/// Installs `handler` for `signal`, the SA_SIGINFO way or the plain way.
fn install_earlier(signal: i32, handler: usize, siginfo: bool) {
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

#[test]
fn a_handler_installed_earlier_is_chained_after_the_wipe() {
    const TEST: &str = "a_handler_installed_earlier_is_chained_after_the_wipe";
    match role(TEST) {
        Role::Parent => {
            let out = run(TEST, "segv_siginfo");
            let err = support::stderr(&out);
            assert!(
                err.contains("EARLIER SIGSEGV HANDLER RAN"),
                "the earlier SIGSEGV handler was not chained\n{}",
                support::describe(&out)
            );
            assert!(
                err.contains("earlier handler saw the buffer wiped"),
                "the buffers should be wiped before the earlier handler runs\n{}",
                support::describe(&out)
            );
            assert_killed_by(&out, SIGSEGV, "writing past the end", "chained SIGSEGV");

            let out = run(TEST, "bus_plain");
            let err = support::stderr(&out);
            assert!(
                err.contains("EARLIER SIGBUS HANDLER RAN")
                    && err.contains("earlier handler saw the buffer wiped"),
                "the earlier (non-SA_SIGINFO) SIGBUS handler was not chained after the wipe\n{}",
                support::describe(&out)
            );
            assert_killed_by(&out, SIGBUS, "raising SIGBUS", "chained SIGBUS");
        }
        Role::Child(scenario) => {
            assert!(
                !memguard::crash_handler_installed(),
                "no allocation may happen before the earlier handler goes in"
            );
            let bus = scenario == "bus_plain";
            if bus {
                install_earlier(
                    SIGBUS,
                    earlier_plain_handler as extern "C" fn(_) as usize,
                    false,
                );
            } else {
                install_earlier(
                    SIGSEGV,
                    earlier_siginfo_handler as extern "C" fn(_, _, _) as usize,
                    true,
                );
            }
            let mut secret = LockedBuffer::new(48).expect("allocate");
            secret.copy(&[0xa5; 48]).expect("fill");
            {
                let data = secret.bytes();
                WATCHED_LEN.store(data.len(), Ordering::Release);
                WATCHED.store(data.as_ptr() as *mut u8, Ordering::Release);
            }
            assert!(!watched_is_wiped());
            assert!(memguard::crash_handler_installed());
            let mut victim = LockedBuffer::new(32).expect("allocate");
            if bus {
                mark("raising SIGBUS");
                // SAFETY: raise is always safe to call.
                unsafe { libc::raise(SIGBUS) };
            } else {
                let ptr = victim.bytes_mut().expect("mutable").as_mut_ptr();
                mark("writing past the end");
                // SAFETY: deliberately not: the trailing guard page.
                unsafe { ptr.add(32).write_volatile(1) };
            }
            std::hint::black_box((&secret, &victim));
            survived(&scenario)
        }
        Role::Bystander => {}
    }
}
