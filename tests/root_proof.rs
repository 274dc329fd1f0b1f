// Only on Linux: memfd_secret, /proc, ptrace.
#![cfg(target_os = "linux")]

//! Secret memory (`memfd_secret`) is out of reach of root, proven from
//! outside, and the same attacks succeed against anonymous memory.
//!
//! A child (this test binary re-run, process hardening off so that only
//! the backend stands in the way) reads a random secret from its standard
//! input straight into a `LockedBuffer`, keeps a control copy (the secret
//! XOR 0x5A) in an ordinary `Vec` on its heap, and prints both addresses.
//! The parent, as root (these tests run as root; they are skipped with a
//! note otherwise), then:
//!
//! 1. reads `/proc/<child>/mem` at the buffer's address;
//! 2. calls `process_vm_readv` at it;
//! 3. attaches with `ptrace` and peeks at it (`PTRACE_PEEKDATA`);
//! 4. scans every readable mapping of the child for every 16-byte window
//!    of the secret and of the control.
//!
//! With secret memory each of 1-3 fails and the scan sees no window of the
//! secret while it sees the control whole in the heap (so the scanner did
//! read the child). With anonymous memory every one of them finds the
//! secret: the difference is the backend. At the end the child checks
//! that its buffer still holds the secret.

mod support;

#[path = "support/scan.rs"]
mod scan;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use memguard::{LockedBuffer, MemoryBackend, Protections};
use support::{describe, role, Role};

const SECRET_LEN: usize = 64;
const CONTROL_XOR: u8 = 0x5A;
const TIMEOUT: Duration = Duration::from_secs(60);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The child: hold the secret and a control copy until standard input
/// closes.
fn hold_secret(backend: MemoryBackend) {
    memguard::disable_process_hardening().expect("hardening off before first use");
    memguard::set_memory_backend(backend).expect("backend available");
    // Unbuffered: straight from the pipe into guarded memory (std's stdin
    // would leave a copy in its buffer on the heap).
    let mut stdin = std::fs::File::from(
        std::os::fd::AsFd::as_fd(&std::io::stdin())
            .try_clone_to_owned()
            .expect("stdin"),
    );
    let buf = LockedBuffer::from_reader(&mut stdin, SECRET_LEN).expect("read the secret");
    let secret_memory = buf.protections().contains(Protections::SECRET_MEMORY);
    assert_eq!(secret_memory, backend == MemoryBackend::SecretMemory);
    let control: Vec<u8> = buf.bytes().iter().map(|b| b ^ CONTROL_XOR).collect();
    let addr = buf.bytes().as_ptr() as usize;
    support::mark(&format!(
        "READY {addr:x} {:x} {}",
        control.as_ptr() as usize,
        buf.protections()
    ));
    // Wait for the parent to finish (it closes our standard input).
    let mut rest = Vec::new();
    let _ = stdin.read_to_end(&mut rest);
    let intact = buf
        .bytes()
        .iter()
        .zip(&control)
        .all(|(b, c)| b ^ CONTROL_XOR == *c);
    assert!(intact, "the secret changed while the parent looked at it");
    support::mark("INTACT");
}

/// What the parent got by each way of reading the child's buffer.
struct Attempts {
    proc_mem: std::io::Result<Vec<u8>>,
    vm_readv: std::io::Result<Vec<u8>>,
    peek: std::io::Result<u64>,
    scan: scan::Scan,
    protections: String,
}

/// Runs the child for `scenario` of `test`, tries every way of reading its
/// secret, and checks the child ends well.
fn attack(test: &str, scenario: &str) -> (Vec<u8>, Attempts) {
    let mut secret = vec![0u8; SECRET_LEN];
    memguard::scramble_bytes(&mut secret).expect("random secret");
    let exe = std::env::current_exe().expect("current test binary");
    let mut child: Child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(support::CHILD_ENV, format!("{test}/{scenario}"))
        .env("RUST_BACKTRACE", "0")
        .env_remove("MEMGUARD_MEMORY_BACKEND")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&secret).expect("hand the secret over");
    stdin.flush().expect("flush");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The harness prints "test <name> ... " without a newline first.
            if let Some(at) = line.find("READY ") {
                let _ = tx.send(line[at..].to_owned());
            }
            all.push(line);
        }
        all
    });
    let ready = match rx.recv_timeout(TIMEOUT) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reap");
            panic!(
                "{test} [{scenario}]: the child never got ready\n{}\n{}",
                describe(&out),
                reader.join().unwrap_or_default().join("\n")
            );
        }
    };
    let mut fields = ready.split_whitespace().skip(1);
    let addr = usize::from_str_radix(fields.next().expect("address"), 16).expect("hex");
    let _control_addr = usize::from_str_radix(fields.next().expect("control"), 16).expect("hex");
    let protections = fields.collect::<Vec<_>>().join(" ");

    let proc_mem = std::fs::File::open(format!("/proc/{pid}/mem")).and_then(|f| {
        let mut got = vec![0u8; SECRET_LEN];
        let n = f.read_at(&mut got, addr as u64)?;
        got.truncate(n);
        Ok(got)
    });
    let vm_readv = vm_readv(pid, addr);
    let peek = peek(pid, addr);
    let control: Vec<u8> = secret.iter().map(|b| b ^ CONTROL_XOR).collect();
    let needles = [
        scan::Needle {
            name: "secret",
            bytes: &secret,
        },
        scan::Needle {
            name: "control (secret ^ 0x5a, in an ordinary Vec)",
            bytes: &control,
        },
    ];
    let scan = scan::scan(pid, &needles).unwrap_or_else(|e| panic!("scan: {e}"));

    drop(stdin);
    let status = wait_timeout(&mut child);
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let lines = reader.join().unwrap_or_default();
    assert!(
        status.success() && lines.iter().any(|l| l.ends_with("INTACT")),
        "{test} [{scenario}]: the child did not end well: {status:?}\n{}\n{stderr}",
        lines.join("\n")
    );
    (
        secret,
        Attempts {
            proc_mem,
            vm_readv,
            peek,
            scan,
            protections,
        },
    )
}

fn wait_timeout(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the child did not end within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn vm_readv(pid: i32, addr: usize) -> std::io::Result<Vec<u8>> {
    let mut got = vec![0u8; SECRET_LEN];
    let local = libc::iovec {
        iov_base: got.as_mut_ptr().cast(),
        iov_len: got.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: SECRET_LEN,
    };
    // SAFETY: one local iovec over our own buffer; the remote one is only
    // read by the kernel, from the other process.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    got.truncate(n as usize);
    Ok(got)
}

/// Attaches to `pid`, peeks one word at `addr`, detaches.
fn peek(pid: i32, addr: usize) -> std::io::Result<u64> {
    // SAFETY (all ptrace calls): requests on a child of ours, with no
    // pointer into our memory but the status word.
    unsafe {
        if libc::ptrace(libc::PTRACE_ATTACH, pid, 0usize, 0usize) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, libc::__WALL);
        // PEEKDATA returns the word; errors are told by errno.
        *libc::__errno_location() = 0;
        let word = libc::ptrace(libc::PTRACE_PEEKDATA, pid, addr, 0usize);
        let err = std::io::Error::last_os_error();
        let failed = word == -1 && err.raw_os_error() != Some(0);
        libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize);
        if failed {
            Err(err)
        } else {
            Ok(word as u64)
        }
    }
}

fn context(a: &Attempts) -> String {
    format!(
        "protections in the child: {}\n/proc/pid/mem: {:?}\nprocess_vm_readv: {:?}\nPTRACE_PEEKDATA: \
         {:?}\nscan: {}",
        a.protections,
        a.proc_mem.as_ref().map(|v| scan::hex(v)),
        a.vm_readv.as_ref().map(|v| scan::hex(v)),
        a.peek,
        a.scan.summary()
    )
}

#[test]
fn secret_memory_is_out_of_reach_of_root() {
    const TEST: &str = "secret_memory_is_out_of_reach_of_root";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(_) => hold_secret(MemoryBackend::SecretMemory),
        Role::Parent => {
            if !is_root() {
                eprintln!("{TEST}: skipped, the attacks need root");
                return;
            }
            if memguard::memory_backend() != MemoryBackend::SecretMemory {
                eprintln!(
                    "{TEST}: no secret memory on this system ({}); nothing to prove",
                    memguard::memory_backend_reason()
                );
                assert!(
                    std::env::var("MEMGUARD_REQUIRE_SECRET_MEMORY").is_err(),
                    "MEMGUARD_REQUIRE_SECRET_MEMORY is set but this system has no secret memory"
                );
                return;
            }
            let (secret, a) = attack(TEST, "hold");
            let ctx = context(&a);
            eprintln!("{TEST}:\n{ctx}");
            assert!(a.protections.contains("SECRET_MEMORY"), "{ctx}");
            match &a.proc_mem {
                Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{ctx}"),
                Ok(bytes) => assert!(
                    !bytes.windows(8).any(|w| secret.windows(8).any(|s| s == w)),
                    "/proc/pid/mem returned bytes of the secret\n{ctx}"
                ),
            }
            assert!(a.vm_readv.is_err(), "process_vm_readv read it\n{ctx}");
            assert!(a.peek.is_err(), "PTRACE_PEEKDATA read it\n{ctx}");
            let (found_secret, found_control) = (&a.scan.found[0], &a.scan.found[1]);
            assert!(
                found_secret.is_empty(),
                "the scan saw the secret in the child\n{ctx}"
            );
            assert!(
                !found_control.whole.is_empty(),
                "positive control failed: the scan did not find the heap copy\n{ctx}"
            );
            assert!(
                a.scan.unreadable_pages > 0,
                "the secret page should be unreadable to the scan\n{ctx}"
            );
        }
    }
}

#[test]
fn anonymous_memory_is_read_by_root_the_same_way() {
    const TEST: &str = "anonymous_memory_is_read_by_root_the_same_way";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(_) => hold_secret(MemoryBackend::Anonymous),
        Role::Parent => {
            if !is_root() {
                eprintln!("{TEST}: skipped, the attacks need root");
                return;
            }
            let (secret, a) = attack(TEST, "hold");
            let ctx = context(&a);
            eprintln!("{TEST}:\n{ctx}");
            assert!(!a.protections.contains("SECRET_MEMORY"), "{ctx}");
            assert_eq!(a.proc_mem.as_deref().ok(), Some(&secret[..]), "{ctx}");
            assert_eq!(a.vm_readv.as_deref().ok(), Some(&secret[..]), "{ctx}");
            let first = u64::from_ne_bytes(secret[..8].try_into().expect("8 bytes"));
            assert_eq!(a.peek.as_ref().ok(), Some(&first), "{ctx}");
            assert!(
                !a.scan.found[0].whole.is_empty() && !a.scan.found[1].whole.is_empty(),
                "the scan should find both the secret and the control\n{ctx}"
            );
        }
    }
}
