//! The child side of `memguard doctor`'s self-tests.
//!
//! `memguard doctor` re-runs its own executable as
//! `memguard selftest <test>` (a hidden subcommand) for every test that may
//! crash or that must be observed from outside. The child prints
//! `MARK <name>` lines as it goes, flushed at once, so that a death before
//! the action under test is not mistaken for the protection working, and
//! ends with one `RESULT <json>` line when it lives to tell. A child that
//! survives an action that should have killed it prints `MARK SURVIVED`
//! and exits with code 3.
//!
//! Nothing here is meant to be run by hand, though it is harmless to.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::ValueEnum;
use memguard::{Enclave, Error, LockedBuffer};
use serde_json::{json, Value};

/// Printed before the fatal action.
pub const ARMED: &str = "ARMED";
/// Printed after the in-child control (the same kind of access, allowed)
/// went through.
pub const CONTROL_OK: &str = "CONTROL-OK";
/// Printed by a child that lived through an action that should have killed
/// it.
pub const SURVIVED: &str = "SURVIVED";
/// Printed by the scan target once it holds the sealed secret.
pub const READY: &str = "READY";
/// Exit code of a child that survived the fatal action.
pub const SURVIVED_EXIT: u8 = 3;
/// The byte the scan target XORs its control copy with.
pub const CONTROL_XOR: u8 = 0x5A;
/// Length of the secret the scan target seals.
pub const SCAN_SECRET_LEN: usize = 64;

/// The self-tests a child can play.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Test {
    /// Write one byte past the end of a 32-byte buffer (expect SIGSEGV).
    GuardOverflow,
    /// Write one byte below the first data page (expect SIGSEGV).
    GuardUnderflow,
    /// Write to a frozen buffer through a raw pointer (expect SIGSEGV).
    FrozenWrite,
    /// Report the core limit, dumpable flag and crash handler before and
    /// after the first allocation.
    Hardening,
    /// Report the smaps permissions and VmFlags of two buffers and their
    /// guard pages.
    Smaps,
    /// Fork and report what the forked child sees of a buffer.
    WipeOnFork,
    /// Seal, open, tamper, purge: report each step.
    SealOpen,
    /// Read a secret from stdin, seal it, print READY and wait for EOF.
    ScanTarget,
}

/// Plays `test`; `unhardened` calls `memguard::disable_process_hardening`
/// first (used by the scan target when the parent cannot read a
/// non-dumpable process).
pub fn run(test: Test, unhardened: bool) -> ExitCode {
    if unhardened {
        if let Err(e) = memguard::disable_process_hardening() {
            return fail(&format!("disable_process_hardening: {e}"));
        }
    }
    let outcome = match test {
        Test::GuardOverflow => guard_overflow(),
        Test::GuardUnderflow => guard_underflow(),
        Test::FrozenWrite => frozen_write(),
        Test::Hardening => hardening(),
        Test::Smaps => smaps(),
        Test::WipeOnFork => wipe_on_fork(),
        Test::SealOpen => seal_open(),
        Test::ScanTarget => scan_target(),
    };
    match outcome {
        Ok(value) => {
            mark(&format!("RESULT {value}"));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Reports an error on stderr and exits with code 2.
fn fail(message: &str) -> ExitCode {
    eprintln!("selftest error: {message}");
    ExitCode::from(2)
}

/// Prints `MARK`-style output and makes sure it has left the process
/// before whatever comes next (which may kill it).
fn mark(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Called right after an action that should have killed the process.
fn survived(action: &str) -> Result<Value, String> {
    mark(&format!("MARK {SURVIVED}: {action}"));
    std::process::exit(i32::from(SURVIVED_EXIT))
}

/// Turns a memguard error into the text of a failed self-test.
fn err(what: &str) -> impl Fn(Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A mutable buffer of `len` bytes filled with `fill`, and its data pointer.
fn filled(len: usize, fill: u8) -> Result<(LockedBuffer, *mut u8), String> {
    let mut buf = LockedBuffer::new(len).map_err(err("LockedBuffer::new"))?;
    let ptr = {
        let mut data = buf.bytes_mut().map_err(err("bytes_mut"))?;
        data.fill(fill);
        data.as_mut_ptr()
    };
    Ok((buf, ptr))
}

/// Self-test `guard-overflow`: never returns normally when the guard holds.
fn guard_overflow() -> Result<Value, String> {
    const LEN: usize = 32;
    let (buf, ptr) = filled(LEN, 0x11)?;
    // Control: the last byte of the data is writable.
    // SAFETY: the last byte of the live, mutable buffer's data.
    unsafe { ptr.add(LEN - 1).write_volatile(0x42) };
    if buf.bytes()[LEN - 1] != 0x42 {
        return Err("the control write to the last byte did not land".into());
    }
    mark(&format!("MARK {CONTROL_OK}"));
    mark(&format!("MARK {ARMED}"));
    // SAFETY: none; deliberately one byte past the end of the data, on the
    // trailing guard page: this must kill the process with SIGSEGV.
    unsafe { ptr.add(LEN).write_volatile(0x42) };
    drop(buf);
    survived("a write one byte past the end")
}

/// Self-test `guard-underflow`: never returns normally when the guard holds.
fn guard_underflow() -> Result<Value, String> {
    const LEN: usize = 32;
    let (buf, ptr) = filled(LEN, 0x22)?;
    let page = buf.page_size();
    let slack = LEN.div_ceil(page) * page - LEN;
    // Control: the first byte of the first data page (a canary byte) is
    // writable; it is put back so that the canary stays intact.
    // SAFETY: inside the buffer's data pages.
    unsafe {
        let first = ptr.sub(slack);
        let old = first.read_volatile();
        first.write_volatile(!old);
        let back = first.read_volatile();
        first.write_volatile(old);
        if back != !old {
            return Err("the control write to the first data page did not land".into());
        }
    }
    mark(&format!("MARK {CONTROL_OK}"));
    mark(&format!("MARK {ARMED}"));
    // SAFETY: none; deliberately one byte below the first data page, on
    // the leading guard page: this must kill the process with SIGSEGV.
    unsafe { ptr.sub(slack + 1).write_volatile(0x42) };
    drop(buf);
    survived("a write one byte below the data pages")
}

/// Self-test `frozen-write`: never returns normally when freezing holds.
fn frozen_write() -> Result<Value, String> {
    let mut buf = LockedBuffer::random(32).map_err(err("LockedBuffer::random"))?;
    if buf.is_mutable() {
        return Err("LockedBuffer::random gave a mutable buffer".into());
    }
    // Control: the same write, melted.
    buf.melt().map_err(err("melt"))?;
    let ptr = buf.bytes().as_ptr().cast_mut();
    // SAFETY: the first byte of the live buffer's data, writable now.
    let first = unsafe { ptr.read_volatile() };
    // SAFETY: as above.
    unsafe { ptr.write_volatile(!first) };
    if buf.bytes()[0] != !first {
        return Err("the control write to the melted buffer did not land".into());
    }
    buf.freeze().map_err(err("freeze"))?;
    mark(&format!("MARK {CONTROL_OK}"));
    mark(&format!("MARK {ARMED}"));
    // SAFETY: none; deliberately a write to read-only pages: this must kill
    // the process with SIGSEGV.
    unsafe { ptr.write_volatile(first) };
    drop(buf);
    survived("a write to a frozen buffer")
}

/// The soft and hard RLIMIT_CORE, `null` meaning unlimited.
fn core_limit() -> Value {
    let l = rustix::process::getrlimit(rustix::process::Resource::Core);
    json!({ "soft": l.current, "hard": l.maximum })
}

/// `PR_GET_DUMPABLE`: 0, 1 or 2, or the error.
fn dumpable() -> Value {
    use rustix::process::DumpableBehavior;
    match rustix::process::dumpable_behavior() {
        Ok(DumpableBehavior::NotDumpable) => json!(0),
        Ok(DumpableBehavior::Dumpable) => json!(1),
        Ok(DumpableBehavior::DumpableReadableOnlyByRoot) => json!(2),
        Err(e) => json!(format!("error: {e}")),
    }
}

/// Self-test `hardening`: the hardening state before and after the first allocation.
fn hardening() -> Result<Value, String> {
    let before = json!({
        "core": core_limit(),
        "dumpable": dumpable(),
        "hardened": memguard::is_process_hardened(),
        "crash_handler": memguard::crash_handler_installed(),
    });
    let buf = LockedBuffer::new(32).map_err(err("LockedBuffer::new"))?;
    let after = json!({
        "core": core_limit(),
        "dumpable": dumpable(),
        "hardened": memguard::is_process_hardened(),
        "crash_handler": memguard::crash_handler_installed(),
    });
    drop(buf);
    Ok(json!({ "before": before, "after": after }))
}

/// One entry of `/proc/self/smaps`: its range, permissions and VmFlags.
#[derive(Debug)]
struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    flags: Vec<String>,
}

/// This process's `/proc/self/smaps`, parsed.
fn read_smaps() -> Result<Vec<Mapping>, String> {
    let text = std::fs::read_to_string("/proc/self/smaps")
        .map_err(|e| format!("read /proc/self/smaps: {e}"))?;
    let mut maps: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some(m) = parse_header(line) {
            maps.push(m);
        } else if let (Some(flags), Some(last)) = (line.strip_prefix("VmFlags:"), maps.last_mut()) {
            last.flags = flags.split_whitespace().map(str::to_owned).collect();
        }
    }
    Ok(maps)
}

/// Parses `start-end perms offset dev inode [name]`.
fn parse_header(line: &str) -> Option<Mapping> {
    let mut parts = line.split_whitespace();
    let (start, end) = parts.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = parts.next()?;
    if perms.len() != 4 || start >= end {
        return None;
    }
    Some(Mapping {
        start,
        end,
        perms: perms.to_owned(),
        flags: Vec::new(),
    })
}

/// The permissions (and flags) of the mapping that holds `address`.
fn mapping_at(maps: &[Mapping], address: usize) -> Value {
    match maps.iter().find(|m| (m.start..m.end).contains(&address)) {
        Some(m) => json!({ "perms": m.perms, "flags": m.flags }),
        None => json!({ "perms": "unmapped", "flags": [] }),
    }
}

/// What smaps says about `buf`'s data pages and the pages on either side.
fn placement(buf: &LockedBuffer) -> Result<Value, String> {
    let len = buf.len();
    let page = buf.page_size();
    let data = buf.bytes().as_ptr() as usize;
    let first_page = data + len - len.div_ceil(page) * page;
    let end = data + len;
    let maps = read_smaps()?;
    Ok(json!({
        "len": len,
        "data_ends_at_page_end": end.is_multiple_of(page),
        "data": mapping_at(&maps, first_page),
        "leading": mapping_at(&maps, first_page - 1),
        "trailing": mapping_at(&maps, end),
        "wipes_on_fork": buf.wipes_on_fork(),
    }))
}

/// Self-test `smaps`: placement records of a small and a multi-page buffer, mutable and frozen.
fn smaps() -> Result<Value, String> {
    let mut out = Vec::new();
    for len in [32, 3 * 4096 + 5] {
        let mut buf = LockedBuffer::new(len).map_err(err("LockedBuffer::new"))?;
        let mutable = placement(&buf)?;
        buf.freeze().map_err(err("freeze"))?;
        let frozen = placement(&buf)?;
        out.push(json!({ "mutable": mutable, "frozen": frozen }));
    }
    Ok(Value::Array(out))
}

/// Forks; the forked child reads `len` bytes at `ptr` and reports through
/// its exit code: 0 all zeros, 1 all `fill`, 2 anything else. Returns
/// "zeros", "data", "mixed" or "signal N".
fn fork_and_probe(ptr: *const u8, len: usize, fill: u8) -> Result<String, String> {
    let _ = std::io::stdout().flush();
    // SAFETY: this process has a single thread (the self-test spawns none),
    // and the forked child only reads memory and calls _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let (mut zeros, mut same) = (0, 0);
        for i in 0..len {
            // SAFETY: `ptr..ptr+len` is mapped in the parent; if the child
            // does not have it the read faults, which the parent sees.
            match unsafe { ptr.add(i).read_volatile() } {
                0 => zeros += 1,
                b if b == fill => same += 1,
                _ => {}
            }
        }
        let code = if zeros == len {
            0
        } else if same == len {
            1
        } else {
            2
        };
        // SAFETY: ends the forked child at once, running nothing of the
        // parent's (atexit handlers, destructors, stdio flushes).
        unsafe { libc::_exit(code) }
    }
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked; `status` is a valid int.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
    }
    Ok(if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => "zeros".into(),
            1 => "data".into(),
            _ => "mixed".into(),
        }
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status}")
    })
}

/// Self-test `wipe-on-fork`: what forked children see of a buffer and of a heap copy.
fn wipe_on_fork() -> Result<Value, String> {
    const FILL: u8 = 0xAA;
    let (buf, ptr) = filled(64, FILL)?;
    let heap = Box::new([FILL; 64]);
    let buffer_seen = fork_and_probe(ptr, buf.len(), FILL)?;
    // Control: ordinary memory is copied into the forked child, so the
    // probe really reads the parent's bytes.
    let heap_seen = fork_and_probe(heap.as_ptr(), heap.len(), FILL)?;
    let intact = buf.bytes().iter().all(|&b| b == FILL);
    Ok(json!({
        "buffer": buffer_seen,
        "heap": heap_seen,
        "wipes_on_fork": buf.wipes_on_fork(),
        "parent_copy_intact": intact,
    }))
}

/// Whether any 16-byte window of `secret` occurs in `haystack`.
fn contains_window(haystack: &[u8], secret: &[u8]) -> bool {
    secret
        .windows(16)
        .any(|w| haystack.windows(16).any(|h| h == w))
}

/// Self-test `seal-open`: each step of a seal/open round trip, with tampering and purge.
fn seal_open() -> Result<Value, String> {
    let mut steps: Vec<Value> = Vec::new();
    let mut step = |name: &str, ok: bool, detail: String| {
        steps.push(json!({ "step": name, "ok": ok, "detail": detail }));
    };

    let mut secret = [0u8; 64];
    memguard::scramble_bytes(&mut secret).map_err(err("scramble_bytes"))?;
    let expected = secret;
    let sealed = Enclave::new(&mut secret).map_err(err("Enclave::new"))?;
    step(
        "source wiped",
        secret.iter().all(|&b| b == 0),
        "Enclave::new wipes its source".into(),
    );
    step(
        "ciphertext hides the secret",
        !contains_window(sealed.sealed_bytes(), &expected),
        format!("{} sealed bytes", sealed.sealed_bytes().len()),
    );
    match sealed.open() {
        Ok(opened) => step(
            "open",
            opened.equal_to(&expected) && !opened.is_mutable(),
            "open gives a frozen buffer holding the secret".into(),
        ),
        Err(e) => step("open", false, e.to_string()),
    }
    let mut dst = LockedBuffer::new(expected.len()).map_err(err("LockedBuffer::new"))?;
    match sealed.open_into(&mut dst) {
        Ok(()) => step(
            "open_into",
            dst.equal_to(&expected),
            "open_into fills a buffer with the secret".into(),
        ),
        Err(e) => step("open_into", false, e.to_string()),
    }
    let mut tampered = sealed.clone();
    let last = tampered.sealed_bytes().len() - 1;
    tampered.sealed_bytes_mut()[last] ^= 1;
    let refused = matches!(tampered.open(), Err(Error::DecryptionFailed));
    step(
        "tampering detected",
        refused,
        "one flipped ciphertext bit gives DecryptionFailed".into(),
    );
    let random = Enclave::random(32).and_then(|e| e.open());
    step(
        "Enclave::random",
        random.as_ref().is_ok_and(|b| b.len() == 32),
        match &random {
            Ok(_) => "a random 32-byte enclave opens".into(),
            Err(e) => e.to_string(),
        },
    );
    drop(random);
    memguard::purge();
    step(
        "purge makes enclaves undecryptable",
        matches!(sealed.open(), Err(Error::DecryptionFailed)),
        "open after purge gives DecryptionFailed".into(),
    );
    let mut again = *b"after the purge";
    let fresh = Enclave::new(&mut again).and_then(|e| e.open());
    step(
        "new key after purge",
        fresh.as_ref().is_ok_and(|b| b.equal_to(b"after the purge")),
        "an enclave sealed after the purge opens".into(),
    );
    drop(fresh);
    drop(dst);
    Ok(Value::Array(steps))
}

/// Unbuffered reads from file descriptor 0 (std's `Stdin` keeps a copy of
/// what it reads in its buffer, which the scan would rightly find).
struct RawStdin;

impl Read for RawStdin {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Ok(rustix::io::read(rustix::stdio::stdin(), buf)?)
    }
}

/// Self-test `scan-target`: holds a sealed secret (and a transformed control
/// copy) until stdin ends.
fn scan_target() -> Result<Value, String> {
    // The secret goes from the pipe straight into guarded memory.
    let plain = LockedBuffer::from_reader(RawStdin, SCAN_SECRET_LEN)
        .map_err(err("LockedBuffer::from_reader(stdin)"))?;
    // The positive control: a transformed copy in ordinary heap memory,
    // which the parent's scan must find.
    let control: Vec<u8> = plain.bytes().iter().map(|b| b ^ CONTROL_XOR).collect();
    // Seal (this destroys, so wipes and unmaps, the plaintext buffer).
    let sealed = plain.seal().map_err(err("seal"))?;
    // Open once and close again, so that opening leaves nothing behind
    // either.
    {
        let opened = sealed.open().map_err(err("open"))?;
        let same = opened
            .bytes()
            .iter()
            .zip(&control)
            .all(|(p, c)| p ^ CONTROL_XOR == *c);
        if !same {
            return Err("the opened enclave differs from the secret".into());
        }
    }
    mark(&format!(
        "{READY} pid={} hardened={}",
        std::process::id(),
        memguard::is_process_hardened()
    ));
    // Hold the enclave and the control until the parent closes our stdin.
    let mut byte = [0u8; 1];
    while matches!(RawStdin.read(&mut byte), Ok(n) if n > 0) {}
    std::hint::black_box(&control);
    std::hint::black_box(&sealed);
    Ok(json!({ "held": sealed.len() }))
}
