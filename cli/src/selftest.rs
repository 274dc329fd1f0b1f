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
//! The tests every OS has are here; those of one OS (smaps, the scan
//! target, fork) are in its [`crate::platform`] module.
//!
//! Nothing here is meant to be run by hand, though it is harmless to.

use std::io::Write;
use std::process::ExitCode;

use clap::ValueEnum;
use memguard::{Enclave, Error, LockedBuffer};
use serde_json::{json, Value};

use crate::platform;

/// Printed before the fatal action.
pub const ARMED: &str = "ARMED";
/// Printed after the in-child control (the same kind of access, allowed)
/// went through.
pub const CONTROL_OK: &str = "CONTROL-OK";
/// Printed by a child that lived through an action that should have killed
/// it.
pub const SURVIVED: &str = "SURVIVED";
/// Exit code of a child that survived the fatal action.
pub const SURVIVED_EXIT: u8 = 3;

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
        Test::SealOpen => seal_open(),
        Test::Smaps | Test::WipeOnFork | Test::ScanTarget => platform::selftest(test)
            .unwrap_or_else(|| Err(format!("no {test:?} self-test on {}", platform::OS))),
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
pub fn mark(line: &str) {
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
pub fn err(what: &str) -> impl Fn(Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A mutable buffer of `len` bytes filled with `fill`, and its data pointer.
pub fn filled(len: usize, fill: u8) -> Result<(LockedBuffer, *mut u8), String> {
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

/// Self-test `hardening`: the hardening state before and after the first allocation.
fn hardening() -> Result<Value, String> {
    // What the OS reports (the core limit, the dumpable flag, the error
    // mode, ...), and what memguard says.
    let state = || {
        let mut v = platform::process_state();
        v["hardened"] = json!(memguard::is_process_hardened());
        v["crash_handler"] = json!(memguard::crash_handler_installed());
        v
    };
    let before = state();
    let buf = LockedBuffer::new(32).map_err(err("LockedBuffer::new"))?;
    let after = state();
    drop(buf);
    Ok(json!({ "before": before, "after": after }))
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
