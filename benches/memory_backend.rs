//! Cost of the memory backends, measured in the same run: secret memory
//! (`memfd_secret`, the default where the kernel has it) against anonymous
//! memory.
//!
//! The backend is chosen once per process, so this benchmark runs in two:
//! it measures the backend its process got, then (in the first process
//! only) runs itself again with `MEMGUARD_MEMORY_BACKEND=anonymous` and the
//! same arguments, for the anonymous half. Criterion reports both under one
//! group, side by side:
//!
//! - `backend/lifecycle/{secret_memory,anonymous}/32`: `LockedBuffer::new(32)`
//!   plus drop as it runs by default (a spare mapping is reused). Target:
//!   secret memory within 1.2x of anonymous.
//! - `backend/fresh/{secret_memory,anonymous}/32`: the same with spares off,
//!   a fresh mapping every time (secret memory: a piece of the shared arena
//!   file mapped over a reservation). Target: within 1.5x.
//! - `backend/fresh/{secret_memory,anonymous}/65536`: a 64 KiB buffer,
//!   fresh every time (the pages are touched, so secret memory pays its
//!   page faults, where `mlock` populates anonymous memory at once).
//! - `backend/borrow/{open,sealed}_<backend>`: one read guard of a 32-byte
//!   buffer taken and dropped, reading the first byte, without and with "no
//!   access between uses" (the sealed one pays two `mprotect`s per borrow).
//!
//! Without secret memory on the machine, the first process is anonymous too
//! and the second half is skipped; it says so.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use memguard::{LockedBuffer, MemoryBackend};

/// Set in the second process.
const CHILD: &str = "MEMGUARD_BENCH_BACKEND_CHILD";

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(50)
}

fn backend(c: &mut Criterion, name: &str) {
    let mut group = c.benchmark_group("backend/lifecycle");
    group.bench_with_input(BenchmarkId::new(name, 32), &32, |b, &n| {
        b.iter(|| drop(black_box(LockedBuffer::new(black_box(n)).expect("new"))));
    });
    group.finish();
    let mut group = c.benchmark_group("backend/fresh");
    for n in [32usize, 65536] {
        group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
            let spares = memguard::spare_limit();
            memguard::set_spare_limit(0);
            b.iter(|| {
                let mut buf = LockedBuffer::new(black_box(n)).expect("new");
                // Touch every page, as a real secret would.
                buf.bytes_mut().expect("writable").fill(1);
                drop(black_box(buf));
            });
            memguard::set_spare_limit(spares);
        });
    }
    group.finish();
    let mut group = c.benchmark_group("backend/borrow");
    for sealed in [false, true] {
        let label = format!("{}_{name}", if sealed { "sealed" } else { "open" });
        group.bench_function(label, |b| {
            let buf = LockedBuffer::random(32).expect("new");
            buf.set_no_access_between_uses(sealed).expect("seal");
            b.iter(|| black_box(buf.bytes()[0]));
        });
    }
    group.finish();
}

fn main() {
    let mut c = config().configure_from_args();
    let here = memguard::memory_backend();
    let name = match here {
        MemoryBackend::SecretMemory => "secret_memory",
        MemoryBackend::Anonymous => "anonymous",
    };
    backend(&mut c, name);
    c.final_summary();
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    if here != MemoryBackend::SecretMemory {
        eprintln!(
            "no secret memory here ({}); only the anonymous backend was measured",
            memguard::memory_backend_reason()
        );
        return;
    }
    let exe = std::env::current_exe().expect("this benchmark's binary");
    let status = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MEMGUARD_MEMORY_BACKEND", "anonymous")
        .env(CHILD, "1")
        .status()
        .expect("run the anonymous half");
    assert!(status.success(), "the anonymous half failed: {status}");
}
