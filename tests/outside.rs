// Only on Linux: /proc, ptrace, rlimits, signals.
#![cfg(target_os = "linux")]

//! The crate's promises checked from outside the process that keeps the
//! secret: by a parent reading the child's memory, by the kernel's core-dump
//! machinery, by a hostile resource limit, and by another process of the
//! same user.
//!
//! Every test re-runs this test binary as a child (the scenario is named in
//! `MEMGUARD_TEST_CHILD` as `<test>/<scenario>`) and judges it from the
//! parent. Every child is killed if it has not finished within
//! [`CHILD_TIMEOUT`], and every wait in the parent is bounded by that.
//!
//! 1. `no_plaintext_left_behind_*`: the parent pipes a random secret into a
//!    child, which reads it straight into a `LockedBuffer`, seals it, opens
//!    it, destroys it, purges and calls `safe_exit`. At every stage the
//!    parent scans `/proc/<pid>/mem` for every 16-byte window of the secret.
//! 2. `a_crash_writes_no_core_file`: a child that allowed itself core dumps
//!    uses the crate and crashes; no core appears.
//! 3. `memlock_exhaustion_*`, `map_count_exhaustion_*`: allocation until the
//!    kernel refuses gives an error (never a panic or a hang), and a purge
//!    gives everything back.
//! 4. `a_same_user_process_cannot_read_a_hardened_one`: ptrace,
//!    `/proc/<pid>/mem` and `process_vm_readv` from another process of the
//!    same (unprivileged) uid.
//!
//! `readme_quick_start_leaves_no_plaintext_behind` checks the README's way
//! of reading a password (a line from an unbuffered standard input).

mod support;

#[path = "support/scan.rs"]
mod scan;

use support::procfs::{locked_bytes, status_field};
use support::{control_copy, mark, role, Ended, Live, NotSeen, Role, CONTROL_XOR};

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memguard::{Enclave, Error, LockedBuffer};

/// How long any child may live before it is killed and the test fails.
/// Generous: under AddressSanitizer every scan reads about 360 MB of shadow
/// mappings, and on a loaded 2-core machine a child was seen to need more
/// than 25 s to reach its last stage (14 s when quiet).
const CHILD_TIMEOUT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------
// Parent/child plumbing
// ---------------------------------------------------------------------------

/// The first line of `text` that starts with `prefix`, from `prefix` on.
/// libtest prints `test <name> ... ` without a newline before the test
/// runs, so the child's first line follows that on the same line.
fn marked_line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        if l.starts_with(prefix) {
            Some(l)
        } else if l.starts_with("test ") {
            l.find(&format!(" ... {prefix}")).map(|i| &l[i + 5..])
        } else {
            None
        }
    })
}

/// Every line of `text` marked with `prefix` (see [`marked_line`]).
fn marked_lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| marked_line(l, prefix))
        .collect()
}

/// A child that has finished: how it ended and what it printed.
struct Finished {
    what: String,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Finished {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "{}: status {:?} (signal {:?}, core dumped {})\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.status.code(),
            self.status.signal(),
            self.status.core_dumped(),
            self.stdout(),
            String::from_utf8_lossy(&self.stderr)
        )
    }

    /// The rest of the first stdout line that starts with `key`.
    fn field(&self, key: &str) -> String {
        let text = self.stdout();
        match marked_line(&text, key).and_then(|l| l.strip_prefix(key)) {
            Some(rest) => rest.trim().to_owned(),
            None => panic!("no line starting with {key:?}\n{}", self.describe()),
        }
    }

    /// Asserts that the child ran exactly its one test and passed it.
    fn assert_passed(&self, marker: &str) {
        let out = self.stdout();
        assert!(
            out.contains("running 1 test"),
            "the child did not run exactly one test (test name wrong?)\n{}",
            self.describe()
        );
        assert!(
            self.status.success() && out.contains(marker),
            "expected a clean exit after {marker:?}\n{}",
            self.describe()
        );
    }
}

/// A running child of this test binary ([`Live`]: pipes read on threads,
/// a deadline, killed when dropped), named for the messages of the test it
/// fails when it misbehaves.
struct Spawned {
    what: String,
    live: Live,
}

impl Spawned {
    /// The command that re-runs this binary for `scenario` of `test`.
    fn command(test: &str, scenario: &str, env: &[(&str, String)]) -> Command {
        let mut cmd = support::child_command(test, &format!("{test}/{scenario}"));
        // --include-ignored: the child must run its test even when the
        // test is #[ignore]d (and run by hand with --ignored).
        cmd.arg("--include-ignored")
            // These tests look for copies of the secret outside guarded
            // memory and for what the process hardening stops, with the
            // guarded copy itself as the positive control: the scanner must
            // be able to read it. Secret memory (memfd_secret) cannot be
            // read from outside at all, which tests/root_proof.rs proves;
            // here the buffers live in anonymous memory.
            .env("MEMGUARD_MEMORY_BACKEND", "anonymous");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    fn spawn(test: &str, scenario: &str, env: &[(&str, String)]) -> Spawned {
        Spawned::start(
            format!("{test} [{scenario}]"),
            Spawned::command(test, scenario, env),
        )
    }

    fn start(what: String, mut cmd: Command) -> Spawned {
        let live = Live::start(&mut cmd, CHILD_TIMEOUT).expect("spawn the child test process");
        Spawned { what, live }
    }

    fn pid(&self) -> i32 {
        self.live.id() as i32
    }

    /// Writes `bytes` to the child's stdin.
    fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.live.send(bytes) {
            self.fail(&format!("writing to the child's stdin: {e}"));
        }
    }

    /// Waits (until the deadline) for a stdout line that starts with
    /// `prefix`, and returns it.
    fn wait_line(&mut self, prefix: &str) -> String {
        match self
            .live
            .wait_for(|text| marked_line(text, prefix).map(str::to_owned))
        {
            Ok(line) => line,
            Err(NotSeen::Ended(status)) => self.fail(&format!(
                "the child ended ({status}) before printing {prefix:?}"
            )),
            Err(NotSeen::TimedOut) => {
                self.fail(&format!("no line {prefix:?} within {CHILD_TIMEOUT:?}"))
            }
            Err(NotSeen::Wait(e)) => self.fail(&format!("waiting for the child: {e}")),
        }
    }

    /// Closes stdin and waits (until the deadline) for the child to end.
    fn finish(mut self) -> Finished {
        let ended = self.live.finish();
        match ended.status {
            Ok(Some(status)) => Finished {
                what: self.what,
                status,
                stdout: ended.stdout,
                stderr: ended.stderr,
            },
            Ok(None) => failed(
                &self.what,
                &format!("still running after {CHILD_TIMEOUT:?}"),
                &ended,
            ),
            Err(ref e) => failed(&self.what, &format!("waiting for the child: {e}"), &ended),
        }
    }

    /// Kills the child and fails the test with everything it printed.
    fn fail(&mut self, msg: &str) -> ! {
        let ended = self.live.finish_by(Instant::now());
        failed(&self.what, msg, &ended)
    }
}

/// Fails the test about child `what` with everything it printed.
fn failed(what: &str, msg: &str, ended: &Ended) -> ! {
    panic!(
        "{what}: {msg}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&ended.stdout),
        String::from_utf8_lossy(&ended.stderr)
    );
}

/// Runs `scenario` of `test` to its end with nothing on stdin.
fn run(test: &str, scenario: &str, env: &[(&str, String)]) -> Finished {
    Spawned::spawn(test, scenario, env).finish()
}

/// A path nobody else uses, under the temporary directory.
fn fresh_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "memguard-outside-{tag}-{}-{n}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir(&dir).expect("create a fresh temporary directory");
    dir
}

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// `prctl(PR_GET_DUMPABLE)`.
fn dumpable() -> i32 {
    // SAFETY: PR_GET_DUMPABLE takes no further arguments.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }
}

/// `RLIMIT_CORE` as (soft, hard), `u64::MAX` for unlimited.
fn core_limit() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) };
    assert_eq!(r, 0, "getrlimit(RLIMIT_CORE)");
    (lim.rlim_cur, lim.rlim_max)
}

/// Whether the calling thread has `CAP_IPC_LOCK` in its effective set.
fn has_cap_ipc_lock() -> bool {
    // /proc/thread-self: the capability sets are per thread.
    let status = std::fs::read_to_string("/proc/thread-self/status").expect("read thread status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff");
    // CAP_IPC_LOCK is capability 14.
    eff & (1 << 14) != 0
}

fn page_size() -> usize {
    rustix::param::page_size()
}

// ---------------------------------------------------------------------------
// 1. No plaintext left behind
// ---------------------------------------------------------------------------

/// The stages the child stops at, in order.
const STAGES: [&str; 5] = ["sealed", "opened", "destroyed", "purged", "exit"];

/// Random bytes from the kernel, for the parent's secret; no newline in
/// it, so that a line reader reads all of it.
fn random_secret(len: usize) -> Vec<u8> {
    let mut secret = vec![0u8; len];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .expect("read /dev/urandom");
    for b in &mut secret {
        if *b == b'\n' {
            *b ^= 0x80;
        }
    }
    secret
}

/// How the child reads the secret from its stdin.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    /// `LockedBuffer::from_reader` on an unbuffered `File` made from a dup
    /// of fd 0: read(2) straight into guarded memory.
    Unbuffered,
    /// `LockedBuffer::from_reader_until(&stdin, b'\n')` on the same
    /// unbuffered dup of fd 0, as in the README's quick start. The secret is
    /// followed by a newline.
    Line,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Unbuffered => "unbuffered",
            Source::Line => "line",
        }
    }

    /// `<source>-<len>`, the child's scenario.
    fn scenario(self, len: usize) -> String {
        format!("{}-{len}", self.name())
    }

    fn parse(scenario: &str) -> (Source, usize) {
        let (name, len) = scenario.rsplit_once('-').expect("<source>-<len>");
        let source = [Source::Unbuffered, Source::Line]
            .into_iter()
            .find(|s| s.name() == name)
            .expect("a known source");
        (source, len.parse().expect("a length"))
    }
}

/// Waits for the parent's go-ahead: one byte on `input`.
fn child_stage(name: &str, input: &mut File) {
    mark(&format!("STAGE {name}"));
    let mut go = [0u8; 1];
    input
        .read_exact(&mut go)
        .unwrap_or_else(|e| panic!("waiting for the parent after stage {name}: {e}"));
}

/// Runs inside `exit()`, called by `safe_exit` after its purge: the last
/// moment at which the parent can look at the process. Only write(2) and
/// read(2).
extern "C" fn stage_exit() {
    let line = b"STAGE exit\n";
    let mut go = 0u8;
    // SAFETY: plain system calls on live buffers; fd 1 and 0 are the pipes
    // from and to the parent.
    unsafe {
        libc::write(1, line.as_ptr().cast(), line.len());
        libc::read(0, (&mut go as *mut u8).cast(), 1);
    }
}

/// The child's stdin as an unbuffered `File`. std's Stdin is buffered:
/// reading the secret through it would leave a copy in its heap buffer. A
/// dup of fd 0 as a File reads with read(2) straight into the destination.
fn unbuffered_stdin() -> File {
    File::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .expect("dup fd 0"),
    )
}

/// The child: secret in from the pipe, through every stage, out through
/// `safe_exit`.
fn plaintext_child(scenario: &str) -> ! {
    let (source, len) = Source::parse(scenario);
    // SAFETY: registers a function that lives as long as the program.
    assert_eq!(unsafe { libc::atexit(stage_exit) }, 0, "atexit");
    let mut input = unbuffered_stdin();
    let mut buf = match source {
        Source::Unbuffered => LockedBuffer::from_reader(&mut input, len),
        Source::Line => LockedBuffer::from_reader_until(&mut input, b'\n'),
    }
    .expect("read the secret");
    assert_eq!(buf.len(), len, "the secret's length");

    let control = control_copy(&mut buf);

    let sealed = buf.seal().expect("seal");
    child_stage("sealed", &mut input);
    let opened = sealed.open().expect("open");
    assert_eq!(opened.len(), len);
    child_stage("opened", &mut input);
    opened.destroy();
    child_stage("destroyed", &mut input);
    memguard::purge();
    assert_eq!(memguard::live_buffers(), 0, "live buffers after purge");
    child_stage("purged", &mut input);
    std::hint::black_box((&control, &sealed));
    // Never returns; `control` is never freed, so it must still be found
    // at the last stage (run by the atexit handler).
    memguard::safe_exit(0)
}

/// What the parent scans the child for: the secret, and the positive
/// control (the secret XOR [`CONTROL_XOR`], kept by the child in an ordinary
/// Vec), which every scan must find for the scan to be trusted.
fn secret_and_control<'a>(secret: &'a [u8], control: &'a [u8]) -> [scan::Needle<'a>; 2] {
    [
        scan::Needle {
            name: "secret",
            bytes: secret,
        },
        scan::Needle {
            name: "control (secret ^ 0x5a, in an ordinary Vec)",
            bytes: control,
        },
    ]
}

/// The parent: feeds the secret, scans at every stage.
fn plaintext_parent(test: &str, source: Source, len: usize) {
    let secret = random_secret(len);
    let control: Vec<u8> = secret.iter().map(|b| b ^ CONTROL_XOR).collect();
    let forms = scan::printed_forms(&secret);

    let scenario = source.scenario(len);
    let cmd = Spawned::command(test, &scenario, &[]);
    // The secret goes only through the pipe: not in the arguments, not in
    // the environment.
    let given: Vec<u8> = cmd
        .get_args()
        .chain(
            cmd.get_envs()
                .flat_map(|(k, v)| [Some(k), v].into_iter().flatten()),
        )
        .flat_map(|s| s.as_encoded_bytes().iter().copied().chain([0]))
        .collect();
    assert!(!scan::contains_any(&given, &forms), "secret in args/env");
    let mut child = Spawned::start(format!("{test} [{scenario}]"), cmd);
    let pid = child.pid();
    child.send(&secret);
    if source == Source::Line {
        child.send(b"\n");
    }

    let needles = secret_and_control(&secret, &control);
    let mut report = Vec::new();
    for stage in STAGES {
        child.wait_line(&format!("STAGE {stage}"));
        let s = match scan::scan(pid, &needles) {
            Ok(s) => s,
            Err(why) => child.fail(&format!("stage {stage}: {why}")),
        };
        if stage == "sealed" {
            // What the kernel shows of the command line and environment.
            for file in ["cmdline", "environ"] {
                let bytes = std::fs::read(format!("/proc/{pid}/{file}"))
                    .unwrap_or_else(|e| child.fail(&format!("read /proc/{pid}/{file}: {e}")));
                if scan::contains_any(&bytes, &forms) {
                    child.fail(&format!("the secret is in /proc/{pid}/{file}"));
                }
            }
        }
        let (found, ctl) = (&s.found[0], &s.found[1]);
        let line = format!(
            "stage {stage}: {} bytes in {} mappings; secret: {} window hits; control: {} whole",
            s.bytes,
            s.mappings,
            found.hits.len(),
            ctl.whole.len()
        );
        eprintln!("{test} [{scenario}] {line}");
        report.push(line);
        if ctl.whole.is_empty() || ctl.windows_found() != ctl.windows_seen.len() {
            child.fail(&format!(
                "stage {stage}: positive control failed: the transformed copy in an ordinary \
                 Vec was not found, so the scan cannot be trusted\n{}",
                s.summary()
            ));
        }
        if stage == "opened" {
            // The opened buffer must be there (the scan does read guarded
            // memory) and only there.
            if found.whole.is_empty() || found.windows_found() != found.windows_seen.len() {
                child.fail(&format!(
                    "stage opened: the opened secret was not found whole in the child\n{}",
                    s.summary()
                ));
            }
            let smaps = scan::read_smaps(pid)
                .unwrap_or_else(|e| child.fail(&format!("read /proc/{pid}/smaps: {e}")));
            let bad: Vec<String> = found
                .hits
                .iter()
                .filter_map(|&(addr, off)| match scan::mapping_of(&smaps, addr) {
                    Some(m) if m.has_flag("lo") && m.has_flag("dd") => None,
                    Some(m) => Some(format!(
                        "window {off} at {addr:#x} in {} (not locked+undumpable)",
                        m.describe()
                    )),
                    None => Some(format!("window {off} at {addr:#x} in no mapping")),
                })
                .collect();
            if !bad.is_empty() {
                child.fail(&format!(
                    "stage opened: the secret is outside locked, undumpable memory:\n  {}\n{}",
                    bad.join("\n  "),
                    s.summary()
                ));
            }
        } else if !found.is_empty() {
            child.fail(&format!(
                "stage {stage}: {} windows of the secret left in the child's memory\n{}",
                found.hits.len(),
                s.summary()
            ));
        }
        child.send(b"c");
    }
    let out = child.finish();
    assert!(
        out.status.success(),
        "safe_exit(0) should exit 0\n{}",
        out.describe()
    );
    assert!(
        out.stdout().contains("STAGE exit"),
        "the atexit stage never ran\n{}",
        out.describe()
    );
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !scan::contains_any(bytes, &forms),
            "the child printed the secret (raw, hex or as a byte list) on {name}"
        );
    }
    eprintln!("{test} [{scenario}] passed:\n  {}", report.join("\n  "));
}

/// The body of every test below: as the parent, runs the stages in
/// children and scans them; as one of those children, plays a stage.
fn no_plaintext_left_behind(test: &str, source: Source, len: usize) {
    match role(test) {
        Role::Parent => plaintext_parent(test, source, len),
        Role::Child(scenario) => plaintext_child(&scenario),
        Role::Bystander => {}
    }
}

/// The test: a 64-byte secret. It fits in the part of the first
/// XSalsa20 block that is left after the Poly1305 key, and the block after
/// it, so the cipher handles it byte by byte.
#[test]
fn no_plaintext_left_behind_at_any_stage() {
    no_plaintext_left_behind(
        "no_plaintext_left_behind_at_any_stage",
        Source::Unbuffered,
        64,
    );
}

/// The same with a secret long enough for whole 64-byte XSalsa20 blocks
/// (the cipher's block path rather than its byte path), an odd length so
/// that the last block is partial.
#[test]
fn no_plaintext_left_behind_for_a_multi_block_secret() {
    no_plaintext_left_behind(
        "no_plaintext_left_behind_for_a_multi_block_secret",
        Source::Unbuffered,
        1000,
    );
}

/// The README's quick start reads a password line with
/// `LockedBuffer::from_reader_until(&stdin, b'\n')`, where `stdin` is an
/// unbuffered `File` on a dup of fd 0. (Through `std::io::stdin().lock()`,
/// a `BufReader`, the line would be left in an unwiped 8 KiB heap buffer:
/// this test found that in an earlier README.)
#[test]
fn readme_quick_start_leaves_no_plaintext_behind() {
    no_plaintext_left_behind(
        "readme_quick_start_leaves_no_plaintext_behind",
        Source::Line,
        64,
    );
}

// ---------------------------------------------------------------------------
// 1b. Exit paths wipe buffers that are still borrowed
// ---------------------------------------------------------------------------

/// How the child leaves with its secret still borrowed.
const EXIT_SCENARIOS: [(&str, i32); 3] = [
    // A `Ref` alive on the calling thread when `safe_exit` runs.
    ("guard", 0),
    // A guard leaked with `std::mem::forget`, then a plain purge, then
    // `safe_exit`.
    ("forgotten", 0),
    // A guard held on another thread when a signal `catch_signal` caught
    // arrives (the normal case: the key is in use).
    ("signal", 1),
];

/// The child: the secret read into a buffer, borrowed, and then the exit.
fn borrowed_exit_child(scenario: &str) -> ! {
    // SAFETY: registers a function that lives as long as the program.
    assert_eq!(unsafe { libc::atexit(stage_exit) }, 0, "atexit");
    let mut input = unbuffered_stdin();
    let mut buf = LockedBuffer::from_reader(&mut input, 64).expect("read the secret");
    let control = control_copy(&mut buf);
    let buf: &'static LockedBuffer = Box::leak(Box::new(buf));
    match scenario {
        "guard" => {
            let guard = buf.bytes();
            child_stage("borrowed", &mut input);
            std::hint::black_box((&guard, &control));
            memguard::safe_exit(0)
        }
        "forgotten" => {
            std::mem::forget(buf.bytes());
            memguard::purge();
            assert!(!buf.is_alive());
            child_stage("borrowed", &mut input);
            std::hint::black_box(&control);
            memguard::safe_exit(0)
        }
        "signal" => {
            memguard::catch_signal(|_| {}, &[libc::SIGTERM]).expect("catch SIGTERM");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let guard = buf.bytes();
                tx.send(()).expect("tell the main thread");
                loop {
                    std::hint::black_box(&guard);
                    std::thread::park();
                }
            });
            rx.recv().expect("the reader holds its guard");
            child_stage("borrowed", &mut input);
            std::hint::black_box(&control);
            // SAFETY: raise is always safe to call.
            unsafe { libc::raise(libc::SIGTERM) };
            loop {
                std::thread::park();
            }
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// The parent: the secret is in the child while borrowed (the positive
/// control that the scan reaches guarded memory), and gone at the last
/// moment of its exit.
fn borrowed_exit_parent(test: &str, scenario: &str, code: i32) {
    let secret = random_secret(64);
    let control: Vec<u8> = secret.iter().map(|b| b ^ CONTROL_XOR).collect();
    let mut child = Spawned::spawn(test, scenario, &[]);
    let pid = child.pid();
    child.send(&secret);
    let needles = secret_and_control(&secret, &control);
    for stage in ["borrowed", "exit"] {
        child.wait_line(&format!("STAGE {stage}"));
        let s = scan::scan(pid, &needles)
            .unwrap_or_else(|why| child.fail(&format!("stage {stage}: {why}")));
        let (found, ctl) = (&s.found[0], &s.found[1]);
        if ctl.whole.is_empty() {
            child.fail(&format!(
                "stage {stage}: positive control failed: the copy in an ordinary Vec was not \
                 found, so the scan cannot be trusted\n{}",
                s.summary()
            ));
        }
        match stage {
            "borrowed" if found.whole.is_empty() => child.fail(&format!(
                "stage borrowed: the borrowed secret was not found in the child\n{}",
                s.summary()
            )),
            "exit" if !found.is_empty() => child.fail(&format!(
                "stage exit ({scenario}): {} windows of the borrowed secret are still in the \
                 child's memory as it exits\n{}",
                found.hits.len(),
                s.summary()
            )),
            _ => {}
        }
        child.send(b"c");
    }
    let out = child.finish();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{scenario}: the exit code\n{}",
        out.describe()
    );
}

#[test]
fn exit_paths_wipe_buffers_that_are_still_borrowed() {
    const TEST: &str = "exit_paths_wipe_buffers_that_are_still_borrowed";
    match role(TEST) {
        Role::Parent => {
            for (scenario, code) in EXIT_SCENARIOS {
                borrowed_exit_parent(TEST, scenario, code);
            }
        }
        Role::Child(scenario) => borrowed_exit_child(&scenario),
        Role::Bystander => {}
    }
}

// ---------------------------------------------------------------------------
// 2. Core dumps
// ---------------------------------------------------------------------------

const CORE_DIR_ENV: &str = "MEMGUARD_OUTSIDE_CORE_DIR";

/// The child: allow core dumps, move into the fresh directory, use the
/// crate, report, crash.
fn core_child(scenario: &str) -> ! {
    let dir = std::env::var(CORE_DIR_ENV).expect("core directory in the environment");
    let (_, hard) = core_limit();
    // Soft up to the hard limit; a hard limit of 0 is raised (we are root
    // then, or the test says why below).
    let want = if hard == 0 { 64 << 20 } else { hard };
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: want.max(hard),
    };
    // SAFETY: setrlimit reads the struct we own.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &raised) };
    mark(&format!("SETRLIMIT {r}"));
    std::env::set_current_dir(&dir).expect("chdir to the core directory");
    let (soft, hard) = core_limit();
    mark(&format!("CORE-BEFORE {soft} {hard}"));
    mark(&format!("DUMPABLE-BEFORE {}", dumpable()));
    if scenario == "control" {
        memguard::disable_process_hardening().expect("nothing allocated yet");
    }
    let mut buf = LockedBuffer::new(32).expect("allocate");
    buf.copy(&[0xa5; 32]).expect("fill");
    let (soft, hard) = core_limit();
    mark(&format!("CORE-AFTER {soft} {hard}"));
    mark(&format!("DUMPABLE-AFTER {}", dumpable()));
    mark(&format!("HARDENED {}", memguard::is_process_hardened()));
    mark(&format!("PID {}", std::process::id()));
    match scenario {
        "abort" | "control" => {
            mark("CRASHING abort");
            // SAFETY: deliberately ends the process with SIGABRT.
            unsafe { libc::abort() }
        }
        "guard-page" => {
            let ptr = buf.bytes_mut().expect("mutable").as_mut_ptr();
            mark("CRASHING guard-page");
            // SAFETY: deliberately not: one byte past the end of the data,
            // the first byte of the trailing guard page.
            unsafe { ptr.add(32).write_volatile(1) };
        }
        other => panic!("unknown scenario {other}"),
    }
    std::hint::black_box(&buf);
    mark("SURVIVED");
    std::process::exit(3)
}

/// The files a crash left in `dir`.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list the core directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn parse_pair(s: &str) -> (u64, u64) {
    let mut it = s
        .split_whitespace()
        .map(|v| v.parse::<u64>().expect("number"));
    (it.next().expect("soft"), it.next().expect("hard"))
}

/// Why no core is written, whatever `core_pattern` says: the kernel's
/// `do_coredump()` gives up at once when the process's dumpable flag is 0
/// (`if (!__get_dumpable(mm_flags)) goto fail`), before it even looks at the
/// pattern. A pattern that is a pipe to a collector ignores `RLIMIT_CORE`
/// (only a limit of exactly 1 stops it), so the dumpable flag is what
/// matters there; `RLIMIT_CORE` 0 stops file dumps on its own.
/// `fs.suid_dumpable` does not undo `PR_SET_DUMPABLE 0`: it only sets the
/// flag of a process that *changes its credentials* (setuid, setgid, ...)
/// or execs a set-id program. So a process that drops privileges after its
/// first allocation on a machine with `suid_dumpable` 1 or 2 becomes
/// dumpable again (2: dumps to a pipe or an absolute path, owned by root,
/// even with RLIMIT_CORE 0 for a pipe): the crate's hardening is one-shot.
#[test]
fn a_crash_writes_no_core_file() {
    const TEST: &str = "a_crash_writes_no_core_file";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => core_child(&scenario),
        Role::Parent => {
            let pattern = read_sysctl("/proc/sys/kernel/core_pattern").unwrap_or_default();
            let suid = read_sysctl("/proc/sys/fs/suid_dumpable").unwrap_or_default();
            let uses_pid = read_sysctl("/proc/sys/kernel/core_uses_pid").unwrap_or_default();
            let context = format!(
                "core_pattern {pattern:?}, fs.suid_dumpable {suid}, core_uses_pid {uses_pid}"
            );
            eprintln!("{TEST}: {context}");
            for (scenario, signal) in [("abort", libc::SIGABRT), ("guard-page", libc::SIGSEGV)] {
                let dir = fresh_dir("core");
                let out = run(TEST, scenario, &[(CORE_DIR_ENV, dir.display().to_string())]);
                let files = files_in(&dir);
                let _ = std::fs::remove_dir_all(&dir);
                let what = format!("{scenario}; {context}; files in the directory {files:?}");
                assert!(
                    out.stdout().contains(&format!("CRASHING {scenario}")),
                    "{what}\n{}",
                    out.describe()
                );
                assert_eq!(
                    out.status.signal(),
                    Some(signal),
                    "{what}\n{}",
                    out.describe()
                );
                let (soft_before, hard_before) = parse_pair(&out.field("CORE-BEFORE"));
                assert!(
                    soft_before > 0 && soft_before == hard_before,
                    "the child could not allow itself core dumps first, so the test proves \
                     nothing: RLIMIT_CORE {soft_before}/{hard_before}\n{what}\n{}",
                    out.describe()
                );
                assert_eq!(out.field("DUMPABLE-BEFORE"), "1", "{what}");
                assert_eq!(
                    parse_pair(&out.field("CORE-AFTER")),
                    (0, 0),
                    "RLIMIT_CORE (soft, hard) after the first allocation\n{what}\n{}",
                    out.describe()
                );
                assert_eq!(
                    out.field("DUMPABLE-AFTER"),
                    "0",
                    "PR_GET_DUMPABLE after the first allocation\n{what}\n{}",
                    out.describe()
                );
                assert_eq!(out.field("HARDENED"), "true", "{what}");
                let pid = out.field("PID");
                assert!(
                    !files
                        .iter()
                        .any(|f| f == "core" || *f == format!("core.{pid}")),
                    "a core file (core or core.{pid}) was written\n{what}"
                );
                assert!(files.is_empty(), "the crash left files behind\n{what}");
                assert!(
                    !out.status.core_dumped(),
                    "the kernel reports a core dump (WCOREDUMP) for the child\n{what}\n{}",
                    out.describe()
                );
                eprintln!(
                    "{TEST}: {scenario}: killed by signal {signal}, RLIMIT_CORE \
                     {soft_before} -> 0/0, dumpable 1 -> 0, no core"
                );
            }

            // The control: without the hardening the same crash does write
            // a core into the directory, so the empty directory above is the
            // crate's doing, not the machine's.
            let plain_name = !pattern.starts_with('|') && !pattern.contains('/');
            if !plain_name {
                eprintln!(
                    "{TEST}: control not run: core_pattern {pattern:?} does not write into the \
                     crashing process's directory (a pipe or an absolute path); the checks \
                     above (limit 0, not dumpable, no WCOREDUMP) stand on their own"
                );
                return;
            }
            let dir = fresh_dir("core-control");
            let out = run(
                TEST,
                "control",
                &[(CORE_DIR_ENV, dir.display().to_string())],
            );
            let files = files_in(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            assert_eq!(out.field("DUMPABLE-AFTER"), "1", "{}", out.describe());
            assert_eq!(
                out.status.signal(),
                Some(libc::SIGABRT),
                "{}",
                out.describe()
            );
            assert!(
                !files.is_empty(),
                "control: a crash without the hardening wrote no core either ({context}), so \
                 the test above cannot tell the crate's effect from the machine's\n{}",
                out.describe()
            );
            eprintln!(
                "{TEST}: control (hardening disabled): core written ({files:?}), WCOREDUMP {}",
                out.status.core_dumped()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Hostile limits
// ---------------------------------------------------------------------------

const MEMLOCK_LIMIT: usize = 256 * 1024;

/// Asserts `e` is the memory-lock error for one page under our limit.
fn expect_memlock(e: &Error, what: &str) {
    let page = page_size();
    match e {
        Error::MemoryLock {
            requested, limit, ..
        } if *requested == page && *limit == Some(MEMLOCK_LIMIT as u64) => {
            let text = e.to_string();
            assert!(
                text.contains("RLIMIT_MEMLOCK") && text.contains("256 KiB"),
                "{what}: the message should name the limit: {text}"
            );
        }
        other => panic!("{what}: expected Error::MemoryLock for one page, got {other:?}: {other}"),
    }
}

/// One round: buffers until refused, an enclave key refused, opens until
/// refused, purge, and everything back.
fn memlock_round(round: usize, start: usize) -> usize {
    let page = page_size();
    let bound = MEMLOCK_LIMIT / page + 8;
    let mut held = Vec::with_capacity(bound);
    let refused = loop {
        assert!(held.len() < bound, "{bound} buffers under a 256 KiB limit");
        match LockedBuffer::new(32) {
            Ok(b) => held.push(b),
            Err(e) => break e,
        }
    };
    let fit = held.len();
    expect_memlock(&refused, "LockedBuffer::new at the limit");
    assert_eq!(
        fit,
        (MEMLOCK_LIMIT - start) / page,
        "32-byte buffers that fit"
    );
    // The session key needs a page too: no enclave can be made now.
    match Enclave::random(32) {
        Err(e) => expect_memlock(&e, "Enclave::random (a new session key) at the limit"),
        Ok(_) => panic!("an enclave was sealed with no lockable memory left"),
    }
    // Make room; the key takes one page, opens take the rest.
    held.truncate(fit / 2);
    let freed = fit - fit / 2;
    let sealed = Enclave::random(32).expect("seal after freeing memory");
    let mut opened = Vec::with_capacity(bound);
    let refused = loop {
        assert!(opened.len() < bound, "{bound} opens under a 256 KiB limit");
        match sealed.open() {
            Ok(b) => opened.push(b),
            Err(e) => break e,
        }
    };
    expect_memlock(&refused, "Enclave::open at the limit");
    assert_eq!(
        opened.len(),
        freed - 1,
        "opens that fit (the key takes a page)"
    );
    let live = memguard::live_buffers();
    assert_eq!(
        live,
        held.len() + opened.len() + 1,
        "live buffers (key included)"
    );
    assert_eq!(locked_bytes(), start + live * page, "VmLck at the limit");

    memguard::purge();
    assert_eq!(memguard::live_buffers(), 0, "live buffers after purge");
    assert!(held.iter().chain(&opened).all(|b| !b.is_alive()));
    assert_eq!(locked_bytes(), start, "VmLck after purge");
    assert!(
        matches!(sealed.open(), Err(Error::DecryptionFailed)),
        "an enclave sealed before the purge must not open"
    );
    let again = LockedBuffer::new(32).expect("allocate after purge");
    assert!(again.is_alive());
    drop(again);
    mark(&format!(
        "ROUND {round}: {fit} buffers, then MemoryLock; new session key refused; {} opens \
         after freeing {freed}; purge: VmLck back to {start} bytes",
        opened.len()
    ));
    fit
}

#[test]
fn memlock_exhaustion_fails_cleanly_and_purge_gives_everything_back() {
    const TEST: &str = "memlock_exhaustion_fails_cleanly_and_purge_gives_everything_back";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(_) => {
            // The limit of buffers of their own: with compact secrets
            // (CompactMode::Automatic, the default) small buffers would go
            // on into shared slabs; tests/compact.rs covers that.
            memguard::set_compact_mode(memguard::CompactMode::Never);
            // The limit is per process; CAP_IPC_LOCK (which lifts it) is per
            // thread: drop it on this one, which does all the allocating.
            support::set_memlock_limit(MEMLOCK_LIMIT as u64);
            support::drop_capabilities();
            assert!(!has_cap_ipc_lock());
            let start = locked_bytes();
            let first = memlock_round(1, start);
            let second = memlock_round(2, start);
            assert_eq!(first, second, "the second round after purge fits as many");
            mark(&format!("MEMLOCK-OK {first} buffers per round"));
        }
        Role::Parent => {
            let out = run(TEST, "256k", &[]);
            out.assert_passed("MEMLOCK-OK");
            for line in marked_lines(&out.stdout(), "ROUND") {
                eprintln!("{TEST}: {line}");
            }
        }
    }
}

/// Number of mappings of this process.
fn map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .count()
}

/// The child: as many buffers as the kernel gives, with `CAP_IPC_LOCK`
/// (so no memlock limit), bounded in count and time.
fn map_count_child() {
    const TIME: Duration = Duration::from_secs(15);
    let max_maps: usize = read_sysctl("/proc/sys/vm/max_map_count")
        .and_then(|v| v.parse().ok())
        .expect("vm.max_map_count");
    let unlimited = has_cap_ipc_lock();
    mark(&format!(
        "MAX_MAP_COUNT {max_maps}, CAP_IPC_LOCK {unlimited}, VmLck {}",
        status_field("VmLck")
    ));
    // Each buffer needs at least one mapping of its own (its data pages),
    // so more than max_map_count buffers cannot fit. Past ~256k buffers
    // (1 GiB locked) the test stops short instead.
    let bound = (max_maps + 16).min(262_144);
    // Our own bookkeeping first, so that it does not count as the crate's.
    let mut held: Vec<LockedBuffer> = Vec::with_capacity(bound);
    let start_locked = locked_bytes();
    let start_maps = map_count();
    let began = Instant::now();
    let refused = loop {
        if held.len() >= bound || began.elapsed() > TIME {
            break None;
        }
        match LockedBuffer::new(32) {
            Ok(b) => held.push(b),
            Err(e) => break Some(e),
        }
    };
    let took = began.elapsed();
    let maps_then = map_count();
    let n = held.len();
    let Some(refused) = refused else {
        panic!(
            "no error after {n} buffers in {took:?} ({maps_then} maps, max_map_count \
             {max_maps}): the kernel never refused"
        );
    };
    let which = if unlimited {
        "vm.max_map_count"
    } else {
        "RLIMIT_MEMLOCK (no CAP_IPC_LOCK: the memlock limit comes before vm.max_map_count)"
    };
    mark(&format!(
        "REFUSED by {which} after {n} buffers in {took:.2?}: {maps_then} maps (max_map_count \
         {max_maps}, {start_maps} before), VmLck {} -> {} bytes; error: {refused} ({refused:?})",
        start_locked,
        locked_bytes()
    ));
    let enomem = |source: &std::io::Error| source.raw_os_error() == Some(libc::ENOMEM);
    match &refused {
        Error::OutOfMappings {
            operation,
            max_map_count,
            source,
        } => {
            assert!(
                ["mmap", "mprotect"].contains(operation) && enomem(source),
                "expected mmap/mprotect ENOMEM at the map count limit, got {refused:?}"
            );
            assert_eq!(*max_map_count, Some(max_maps as u64), "{refused:?}");
            let text = refused.to_string();
            assert!(
                text.contains("vm.max_map_count") && text.contains(&max_maps.to_string()),
                "the message names the limit and its value: {text}"
            );
        }
        Error::MemoryLock { source, .. } => {
            assert!(enomem(source) || !unlimited, "{refused:?}");
        }
        other => panic!("unexpected error at the limit: {other:?}: {other}"),
    }
    // Again at the limit: the same clean refusal, no panic.
    let again = LockedBuffer::new(32);
    assert!(
        matches!(
            again,
            Err(Error::OutOfMappings { .. } | Error::MemoryLock { .. })
        ),
        "a second try at the limit: {again:?}"
    );
    // A session key cannot be made either, cleanly.
    let key = Enclave::random(32);
    assert!(
        matches!(
            key,
            Err(Error::OutOfMappings { .. } | Error::MemoryLock { .. })
        ),
        "an enclave at the limit: {key:?}"
    );

    let purge_began = Instant::now();
    memguard::purge();
    let purge_took = purge_began.elapsed();
    assert_eq!(memguard::live_buffers(), 0, "live buffers after purge");
    assert!(held.iter().all(|b| !b.is_alive()));
    let locked_after = locked_bytes();
    let maps_after = map_count();
    mark(&format!(
        "PURGED in {purge_took:.2?}: VmLck {locked_after} bytes (start {start_locked}), {maps_after} \
         maps (start {start_maps})"
    ));
    assert_eq!(locked_after, start_locked, "VmLck after purge");
    // Every buffer's mappings are gone: a leak would leave thousands. A few
    // may be the allocator's (the crash table's segments, say).
    assert!(
        maps_after <= start_maps + 8,
        "{maps_after} mappings after purge, {start_maps} before the first buffer"
    );
    let one = LockedBuffer::new(32).expect("allocate after purge");
    assert!(one.is_alive());
    let opened = Enclave::random(32)
        .and_then(|e| e.open())
        .expect("seal and open after purge");
    assert_eq!(opened.len(), 32);
    mark(&format!("MAPCOUNT-OK {n}"));
}

#[test]
fn map_count_exhaustion_fails_cleanly_and_purge_gives_everything_back() {
    const TEST: &str = "map_count_exhaustion_fails_cleanly_and_purge_gives_everything_back";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(_) => {
            // The limit of buffers of their own (see memlock_exhaustion_*).
            memguard::set_compact_mode(memguard::CompactMode::Never);
            map_count_child()
        }
        Role::Parent => {
            let out = run(TEST, "max_map_count", &[]);
            out.assert_passed("MAPCOUNT-OK");
            let text = out.stdout();
            for prefix in ["MAX_MAP_COUNT", "REFUSED", "PURGED"] {
                for line in marked_lines(&text, prefix) {
                    eprintln!("{TEST}: {line}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 4. Another process of the same user
// ---------------------------------------------------------------------------

/// The unprivileged uid and gid (nobody/nogroup) the children switch to
/// when the tests run as root.
const NOBODY: u32 = 65534;
const VICTIM_ENV: &str = "MEMGUARD_OUTSIDE_VICTIM";
/// What the victim keeps in its buffer: not a secret, a marker the attacker
/// can recognise.
const MARKER: &[u8; 16] = b"victim's marker!";

/// Drops root for uid/gid [`NOBODY`] in the whole process (glibc applies
/// set*id calls to every thread).
fn become_nobody() {
    // SAFETY: plain system calls through glibc's wrappers, which change the
    // credentials of every thread of the process.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setresgid(NOBODY, NOBODY, NOBODY), 0, "setresgid");
        assert_eq!(libc::setresuid(NOBODY, NOBODY, NOBODY), 0, "setresuid");
    }
}

/// Yama's ptrace_scope, `None` without Yama.
fn ptrace_scope() -> Option<u32> {
    read_sysctl("/proc/sys/kernel/yama/ptrace_scope").and_then(|v| v.parse().ok())
}

fn victim_child(scenario: &str) -> ! {
    if euid() == 0 {
        become_nobody();
        // Changing uid resets the dumpable flag to fs.suid_dumpable (0 by
        // default): that alone would keep the attacker out, and the test
        // would prove nothing about the crate. A process started as that
        // user is dumpable; make this one so too.
        // SAFETY: PR_SET_DUMPABLE with 1 is always allowed.
        let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
        assert_eq!(r, 0, "PR_SET_DUMPABLE 1");
    }
    mark(&format!("DUMPABLE-BEFORE {}", dumpable()));
    if scenario == "control" {
        memguard::disable_process_hardening().expect("nothing allocated yet");
    }
    let mut buf = LockedBuffer::new(MARKER.len()).expect("allocate");
    buf.copy(MARKER).expect("fill");
    let addr = buf.bytes().as_ptr() as usize;
    mark(&format!("DUMPABLE-AFTER {}", dumpable()));
    mark(&format!(
        "VICTIM {} {addr:#x} {}",
        std::process::id(),
        euid()
    ));
    // Until the parent says the attacker is done.
    let mut input = File::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .expect("dup fd 0"),
    );
    let mut go = [0u8; 1];
    let _ = input.read(&mut go);
    std::hint::black_box(&buf);
    mark("VICTIM-DONE");
    std::process::exit(0)
}

/// An errno as `ok` or its name.
fn outcome(r: Result<(), std::io::Error>) -> String {
    match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => match e.raw_os_error() {
            Some(libc::EPERM) => "EPERM".to_owned(),
            Some(libc::EACCES) => "EACCES".to_owned(),
            Some(libc::ESRCH) => "ESRCH".to_owned(),
            _ => format!("{e}"),
        },
    }
}

fn last_error<T>() -> Result<T, std::io::Error> {
    Err(std::io::Error::last_os_error())
}

/// The attacker: everything an unprivileged process of the same user may
/// try against the victim.
fn attacker_child() {
    let target = std::env::var(VICTIM_ENV).expect("victim in the environment");
    let (pid, addr) = target.split_once(' ').expect("`pid addr`");
    let pid: libc::pid_t = pid.parse().expect("pid");
    let addr = usize::from_str_radix(addr.trim_start_matches("0x"), 16).expect("address");
    if euid() == 0 {
        become_nobody();
    }
    mark(&format!("ATTACKER uid {}", euid()));

    // 1. ptrace(PTRACE_ATTACH).
    // SAFETY: PTRACE_ATTACH takes no address or data.
    let attach = if unsafe {
        libc::ptrace(
            libc::PTRACE_ATTACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    } == 0
    {
        // Attached: wait (bounded) for the stop, then let go.
        let until = Instant::now() + Duration::from_secs(5);
        let mut status = 0;
        // SAFETY: waits for our tracee by its pid, without blocking.
        while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) } == 0
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        // SAFETY: detaching our tracee, delivering no signal.
        unsafe {
            libc::ptrace(
                libc::PTRACE_DETACH,
                pid,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
        Ok(())
    } else {
        last_error()
    };
    mark(&format!("ATTACH {}", outcome(attach)));

    // 2. open + pread of /proc/<pid>/mem.
    let mut seen = [0u8; 16];
    let mem = match File::open(format!("/proc/{pid}/mem")) {
        Ok(f) => {
            use std::os::unix::fs::FileExt;
            f.read_exact_at(&mut seen, addr as u64)
                .map(|()| seen == *MARKER)
        }
        Err(e) => Err(e),
    };
    match mem {
        Ok(matched) => mark(&format!("MEM ok, marker read: {matched}")),
        Err(e) => mark(&format!("MEM {}", outcome(Err(e)))),
    }

    // 3. process_vm_readv.
    let mut got = [0u8; 16];
    let local = libc::iovec {
        iov_base: got.as_mut_ptr().cast(),
        iov_len: got.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: got.len(),
    };
    // SAFETY: one local iovec over our own array, one remote one.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n == got.len() as isize {
        mark(&format!("VMREAD ok, marker read: {}", got == *MARKER));
    } else {
        mark(&format!("VMREAD {}", outcome(last_error())));
    }
    mark("ATTACK-DONE");
}

/// Runs a victim (`hardened` or `control`) and an attacker against it,
/// checks that both finished their script, and returns both with a
/// description of the run (`setting` first) for assertion messages.
fn attack(test: &str, victim_kind: &str, setting: &str) -> (Finished, Finished, String) {
    let mut victim = Spawned::spawn(test, victim_kind, &[]);
    let line = victim.wait_line("VICTIM ");
    let mut fields = line.split_whitespace().skip(1);
    let (pid, addr) = (fields.next().unwrap(), fields.next().unwrap());
    let attacker = run(test, "attacker", &[(VICTIM_ENV, format!("{pid} {addr}"))]);
    victim.send(b"x");
    let victim = victim.finish();
    let context = format!("{setting}\n{}\n{}", victim.describe(), attacker.describe());
    victim.assert_passed("VICTIM-DONE");
    attacker.assert_passed("ATTACK-DONE");
    (victim, attacker, context)
}

#[test]
fn a_same_user_process_cannot_read_a_hardened_one() {
    const TEST: &str = "a_same_user_process_cannot_read_a_hardened_one";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) if scenario == "attacker" => attacker_child(),
        Role::Child(scenario) => victim_child(&scenario),
        Role::Parent => {
            let root = euid() == 0;
            let scope = ptrace_scope();
            let yama = match scope {
                None => "no Yama LSM (same-uid ptrace allowed by default)".to_owned(),
                Some(s) => format!("Yama ptrace_scope {s}"),
            };
            let who = if root {
                format!("both children switch from root to uid/gid {NOBODY}")
            } else {
                format!(
                    "not root: the children cannot switch uid, so the cross-uid part (root \
                     parent, unprivileged children) is not run; victim and attacker both run \
                     as this user (uid {})",
                    euid()
                )
            };
            eprintln!("{TEST}: {who}; {yama}");

            let (victim, attacker, context) = attack(TEST, "hardened", &format!("{who}; {yama}"));
            assert_eq!(victim.field("DUMPABLE-BEFORE"), "1", "{context}");
            assert_eq!(
                victim.field("DUMPABLE-AFTER"),
                "0",
                "the victim must be non-dumpable after its first allocation\n{context}"
            );
            let expected_uid = if root { NOBODY } else { euid() };
            assert_eq!(
                attacker.field("ATTACKER uid"),
                expected_uid.to_string(),
                "{context}"
            );
            assert_eq!(
                attacker.field("ATTACH"),
                "EPERM",
                "ptrace attach\n{context}"
            );
            let mem = attacker.field("MEM");
            assert!(
                mem == "EACCES" || mem == "EPERM",
                "/proc/<pid>/mem must not open: {mem}\n{context}"
            );
            assert_eq!(
                attacker.field("VMREAD"),
                "EPERM",
                "process_vm_readv\n{context}"
            );
            eprintln!(
                "{TEST}: hardened victim: attach EPERM, /proc/<pid>/mem {mem}, \
                 process_vm_readv EPERM"
            );

            // The control: the same victim without the hardening is open to
            // the same attacker, so the refusals above are the crate's doing.
            if scope.unwrap_or(0) >= 1 {
                eprintln!(
                    "{TEST}: control not meaningful and not run: {yama} already keeps a \
                     non-ancestor of the same uid out of any process, hardened or not; only \
                     the hardened case is asserted (and the victim's dumpable flag)"
                );
                return;
            }
            let (victim, attacker, context) = attack(TEST, "control", &format!("{who}; {yama}"));
            assert_eq!(victim.field("DUMPABLE-AFTER"), "1", "{context}");
            assert_eq!(attacker.field("ATTACH"), "ok", "control attach\n{context}");
            assert_eq!(
                attacker.field("MEM"),
                "ok, marker read: true",
                "control /proc/<pid>/mem\n{context}"
            );
            assert_eq!(
                attacker.field("VMREAD"),
                "ok, marker read: true",
                "control process_vm_readv\n{context}"
            );
            eprintln!(
                "{TEST}: control (hardening disabled): attach, /proc/<pid>/mem and \
                 process_vm_readv all read the victim's buffer"
            );
        }
    }
}
