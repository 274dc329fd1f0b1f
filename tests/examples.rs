// Only on Linux: pseudo-terminals through Linux calls.
#![cfg(target_os = "linux")]

//! Runs the examples (built by `cargo test` beside the test binaries) and
//! checks what they print.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::describe;

mod support;

/// The path of a built example, next to this test binary.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile> directory");
    let path = profile_dir.join("examples").join(name);
    check_built(name, &path);
    path
}

/// Fails with a clear message when the example binary is missing or older
/// than its sources. A plain `cargo test` builds the examples first, but
/// `cargo test --test examples` does not: run `cargo build --examples` then.
fn check_built(name: &str, path: &std::path::Path) {
    let hint = "run `cargo build --examples` (or a plain `cargo test`) first: \
                `cargo test --test examples` does not build the examples";
    let built = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("example binary {}: {e}; {hint}", path.display()));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![
        root.join("examples").join(format!("{name}.rs")),
        root.join("Cargo.toml"),
    ];
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                sources.push(p);
            }
        }
    }
    for source in sources {
        if let Ok(changed) = std::fs::metadata(&source).and_then(|m| m.modified()) {
            assert!(
                changed <= built,
                "example binary {} is older than {}; {hint}",
                path.display(),
                source.display()
            );
        }
    }
}

#[test]
fn protections_example_reports_every_protection_held() {
    let path = example("protections");
    let out = Command::new(&path)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "data ends at page end     yes",
        "frozen (read-only)        yes",
        "lo: locked in RAM",
        "wiped                     yes",
        "purged                    yes",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let locked = text
        .lines()
        .find(|l| l.contains("lo: locked"))
        .unwrap_or("");
    assert!(locked.ends_with("yes"), "{text}");
}

/// How long any example may run before the test kills it and fails.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the example `name` with `input` on its standard input (then closed)
/// and returns what it printed and how it ended. An example still running
/// after [`TIMEOUT`] is killed and the test fails.
fn run_example(name: &str, input: &[u8]) -> Output {
    let path = example(name);
    let mut child = Command::new(&path)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    // Feed and drain on threads, so that no pipe can fill up and block.
    let feeder = std::thread::spawn(move || {
        // The example may exit without reading everything: ignore EPIPE.
        let _ = stdin.write_all(&input);
    });
    let out = support::wait_with_timeout(child, TIMEOUT, &format!("example {name}"));
    let _ = feeder.join();
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn socketkey_example_receives_the_key_over_loopback() {
    let out = run_example("socketkey", b"");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout.lines().any(|l| l == "keys match: true"),
        "{}",
        describe(&out)
    );
    assert!(stdout.contains("listening on 127.0.0.1:"), "{stdout}");
    assert!(
        stdout.contains("received 32 bytes from 127.0.0.1:"),
        "{stdout}"
    );
    // Debug of the enclave shows only its length.
    assert!(
        stdout.contains("sealed into Enclave { len: 32, .. }"),
        "{stdout}"
    );
    assert!(out.stderr.is_empty(), "{}", describe(&out));
}

#[test]
fn casting_example_passes_every_check() {
    let out = run_example("casting", b"");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stdout.ends_with("all checks passed\n"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    for line in [
        "u64_slice_mut: 8 words written: ok",
        "u32_slice: 16 words, the same bytes as the u64 words: ok",
        "byte_array32: the key as [u8; 32]: ok",
        "as_pod: SessionKeys (80 bytes, align 8) over guarded memory: ok",
        "as_pod: fields are the buffer's bytes: ok",
        "a failed view releases its borrow: ok",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
    // Views that do not fit: Error::Layout, with whatever reason it gives.
    for view in [
        "u64 view of 12 bytes",
        "u32 view of 7 bytes",
        "SessionKeys over 72 bytes",
    ] {
        let prefix = format!("{view} is Error::Layout (");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&prefix) && l.ends_with("): ok")),
            "missing {prefix:?}...\"): ok\" in:\n{stdout}"
        );
    }
}

#[test]
fn stdin_example_reads_a_piped_line_and_prints_only_its_length() {
    let out = run_example("stdin", b"correct horse\n");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stdout.contains("read 13 bytes"), "{}", describe(&out));
    assert_eq!(stdout, "read 13 bytes, sealed\n");
    // A pipe is not a terminal: no prompt, nothing on stderr.
    assert!(stderr.is_empty(), "{}", describe(&out));
    for secret in ["correct", "horse"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
}

#[test]
fn stdin_example_stops_at_the_first_newline() {
    let out = run_example("stdin", b"hunter2\nsecond line\n");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(text(&out.stdout), "read 7 bytes, sealed\n");
    let out = run_example("stdin", b"no newline at the end");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(text(&out.stdout), "read 21 bytes, sealed\n");
}

#[test]
fn stdin_example_fails_cleanly_on_empty_input() {
    for input in [&b""[..], b"\n"] {
        let out = run_example("stdin", input);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(out.stdout.is_empty(), "{}", describe(&out));
        assert_eq!(
            stderr,
            "error: no input: expected a line on standard input\n",
            "{}",
            describe(&out)
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A new pseudo-terminal: (master, slave), neither of them this process's
/// controlling terminal.
fn open_pty() -> (OwnedFd, std::fs::File) {
    // SAFETY: plain libc calls on a descriptor this function owns; ptsname_r
    // writes a NUL-terminated name into the buffer it is given.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(
            master >= 0,
            "posix_openpt: {}",
            std::io::Error::last_os_error()
        );
        let master = OwnedFd::from_raw_fd(master);
        assert_eq!(libc::grantpt(master.as_raw_fd()), 0, "grantpt");
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0, "unlockpt");
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(
            libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()),
            0,
            "ptsname_r"
        );
        let path = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_str()
            .expect("pty name")
            .to_owned();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
        (master, slave)
    }
}

/// Reads from `fd` into `into` until `done(into)` holds, the other end is
/// closed (returns true), or `deadline` passes (returns false).
fn read_until(
    fd: &impl AsRawFd,
    into: &mut Vec<u8>,
    deadline: Instant,
    done: impl Fn(&[u8]) -> bool,
) -> bool {
    while !done(into) {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, left.as_millis().min(60_000) as i32) };
        if ready == 0 {
            return false;
        }
        if ready < 0 {
            continue; // EINTR
        }
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a local buffer of the given length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return true; // end of file, or EIO on a pty with no slave open
        }
        into.extend_from_slice(&buf[..n as usize]);
    }
    true
}

/// Whether the terminal on `fd` has ECHO set.
fn echo_on(fd: &impl AsRawFd) -> bool {
    // SAFETY: termios is plain data; tcgetattr fills it in.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and termios.
    assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
    t.c_lflag & libc::ECHO != 0
}

#[test]
fn stdin_example_does_not_echo_on_a_terminal_and_restores_echo() {
    let (master, slave) = open_pty();
    let mut master = std::fs::File::from(master);
    let deadline = Instant::now() + TIMEOUT;

    // Control: the terminal echoes by default, so the check below means
    // something. Then throw the control input away.
    assert!(echo_on(&slave));
    master.write_all(b"probe\n").unwrap();
    let mut echoed = Vec::new();
    assert!(read_until(&master, &mut echoed, deadline, |b| b
        .windows(5)
        .any(|w| w == b"probe")));
    // SAFETY: a valid terminal descriptor.
    assert_eq!(
        unsafe { libc::tcflush(slave.as_raw_fd(), libc::TCIOFLUSH) },
        0
    );

    let path = example("stdin");
    let mut child = Command::new(&path)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
    let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut stderr = Vec::new();
    let prompted = read_until(&err, &mut stderr, deadline, |b| {
        b.ends_with(b"secret (not echoed): ")
    });
    if !prompted || !stderr.ends_with(b"secret (not echoed): ") {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no prompt from the example; stderr: {}", text(&stderr));
    }
    // Echo is off now, while the example waits for the line.
    assert!(!echo_on(&slave), "echo still on while reading");
    master.write_all(b"correct horse\n").unwrap();

    let mut stdout = Vec::new();
    let finished = read_until(&out, &mut stdout, deadline, |_| false)
        && read_until(&err, &mut stderr, deadline, |_| false);
    if !finished {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    assert!(finished, "example did not finish");
    let (stdout, stderr) = (text(&stdout), text(&stderr));
    assert!(status.success(), "{status:?}\n{stdout}\n{stderr}");
    assert_eq!(stdout, "read 13 bytes, sealed\n");
    assert_eq!(stderr, "secret (not echoed): \n");

    // Nothing came back from the terminal: the line was not echoed.
    let mut echoed = Vec::new();
    read_until(
        &master,
        &mut echoed,
        Instant::now() + Duration::from_millis(300),
        |_| false,
    );
    let echoed = text(&echoed);
    assert!(
        !echoed.contains("correct") && !echoed.contains("horse"),
        "echoed: {echoed:?}"
    );
    // And echo is back on.
    assert!(echo_on(&slave), "echo not restored");
}

/// Without a controlling terminal (`setsid` starts a new session without
/// one) the password example fails at once, and `main` returning
/// `memguard::Error` prints the variant with its advice.
#[test]
fn password_example_without_a_terminal_says_what_to_do() {
    let path = example("password");
    let child = Command::new("setsid")
        .arg("-w")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run setsid {}: {e}", path.display()));
    let out = support::wait_with_timeout(child, TIMEOUT, "example password");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with("Error: NoTerminal {"), "{stderr}");
    assert!(
        stderr.contains("no terminal to read the secret from"),
        "{stderr}"
    );
    assert!(stderr.contains("pass it another way"), "{stderr}");
}

#[test]
fn stream_example_round_trips_8_mib() {
    let out = run_example("stream", b"");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout.ends_with("stream round trip ok: 8388608 bytes\n"),
        "{}",
        describe(&out)
    );
    assert!(stdout.contains("wrote 8388608 bytes in "), "{stdout}");
    assert!(stdout.contains("reads of up to 10000 bytes"), "{stdout}");
    assert_eq!(stdout.matches("next_chunk: ").count(), 2, "{stdout}");
    assert!(stdout.contains("(frozen: true)"), "{stdout}");
    assert!(stdout.contains("drain: "), "{stdout}");
}
