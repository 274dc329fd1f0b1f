//! Cost of `LockedBuffer` next to the raw system calls that give the same
//! protections, measured in the same run so that the ratios mean something.
//!
//! - `lifecycle/memguard/{32,4096,1048576}`: `LockedBuffer::new(n)` plus
//!   drop as it runs by default: buffers of up to a page reuse a spare
//!   mapping (`memguard::set_spare_limit`), against `lifecycle/raw_spare`,
//!   the same reuse with raw calls (mprotect read-write, wipe, mprotect
//!   `PROT_NONE`).
//! - `lifecycle/memguard_no_spares/*`: the same with spares off, a new
//!   mapping every time, against `lifecycle/raw_floor`: mmap, two guard mprotects, mlock, two madvises, a
//!   wipe of the `n` bytes, munlock and munmap written out with `rustix`.
//! - `lifecycle/raw_min/*`: the fewest system calls that give the same
//!   protections, which is what `LockedBuffer` makes: mmap `PROT_NONE`, one
//!   mprotect of the data pages, mlock, two madvises, wipe, munmap (which
//!   also unlocks). The honest lower bound.
//! - `lifecycle/memsec/*`: the `memsec` crate's `malloc_sized` + `free`
//!   (libsodium's design: guard pages, canary, mlock; no madvise), a peer.
//! - `purge/{memguard,raw_floor}/{1,100,10000}`: `purge()` with that many
//!   live 32-byte buffers, against wiping and unmapping as many raw mappings.
//! - `freeze_melt/{memguard,raw_floor}`: `freeze` + `melt` of a 32-byte
//!   buffer, against two mprotects of one guarded, locked page.
//! - `access/*`: the guards of a 32-byte buffer, against reading a `Vec`.
//! - `compact/new_drop/{own_spares,compact}`: `LockedBuffer::new(32)` + drop
//!   as a one-page buffer reusing a spare (`CompactMode::Never`, the
//!   baseline) and as a compact slot (`CompactMode::Always`); target:
//!   compact no slower.
//! - `compact/new_freeze_drop/{own_spares,compact}`: the same with a
//!   `freeze` (what `Enclave::open` does besides decrypting).
//! - `compact/open_1000_x8/{own,compact}`: 8 threads each make 125 32-byte
//!   buffers, all 1,000 open at once, then drop them; throughput in
//!   buffers. The memory locked with the 1,000 open (`VmLck`) is printed on
//!   stderr once per layout.
//!
//! The goal: `lifecycle/memguard_no_spares/32` within 1.05x of
//! `lifecycle/raw_floor/32` (the floor).

#[cfg(target_os = "linux")] // the floors are Linux system calls
use std::hint::black_box;
#[cfg(target_os = "linux")]
use std::time::Duration;

#[cfg(target_os = "linux")]
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
#[cfg(target_os = "linux")]
use memguard::LockedBuffer;

#[cfg(target_os = "linux")]
const SIZES: [usize; 3] = [32, 4096, 1 << 20];

/// The operations and their raw floors, shared with `memguard bench` so
/// both measure the same (`cli/src/benchops.rs`, `cli/src/floors.rs`).
#[cfg(target_os = "linux")]
#[path = "../cli/src/benchops.rs"]
#[allow(dead_code)]
mod benchops;
/// A row of a group: one operation, timed as `memguard bench` times it.
#[cfg(target_os = "linux")]
#[path = "support/ops.rs"]
#[allow(dead_code)]
mod ops;

#[cfg(target_os = "linux")]
use benchops::{Calls, Spares};
#[cfg(target_os = "linux")]
use ops::{bench_rows, op};

#[cfg(target_os = "linux")]
fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(50)
}

#[cfg(target_os = "linux")]
fn lifecycle(c: &mut Criterion) {
    let page = rustix::param::page_size();
    let mut group = c.benchmark_group("lifecycle");
    for n in SIZES {
        if n >= 1 << 20 {
            group.throughput(Throughput::Bytes(n as u64));
        }
        let mut rows = vec![(
            "memguard",
            op(move || benchops::new_drop(n, Spares::Default)),
        )];
        if n <= page {
            rows.push(("raw_spare", op(move || benchops::raw_spare_cycle(n, page))));
        }
        rows.extend([
            (
                "memguard_no_spares",
                op(move || benchops::new_drop(n, Spares::Off)),
            ),
            (
                "raw_floor",
                op(move || benchops::raw_new_drop(n, page, Calls::Full)),
            ),
            (
                "raw_min",
                op(move || benchops::raw_new_drop(n, page, Calls::Min)),
            ),
        ]);
        bench_rows(&mut group, Some(&n.to_string()), rows);
        // A peer, not in `memguard bench` (memsec is a dev-dependency).
        group.bench_with_input(BenchmarkId::new("memsec", n), &n, |b, &n| {
            b.iter(|| {
                // SAFETY: memsec's allocation is freed exactly once, right
                // away, and not used in between.
                unsafe {
                    let p = memsec::malloc_sized(black_box(n)).expect("memsec::malloc_sized");
                    memsec::free(black_box(p));
                }
            });
        });
    }
    group.finish();
}

#[cfg(target_os = "linux")]
fn purge(c: &mut Criterion) {
    let page = rustix::param::page_size();
    let mut group = c.benchmark_group("purge");
    for count in [1usize, 100, 10_000] {
        if count >= 10_000 {
            group.sample_size(10);
        }
        let rows = vec![
            ("memguard", op(move || benchops::purge(count))),
            (
                "raw_floor",
                op(move || benchops::raw_purge(count, page, Calls::Min)),
            ),
        ];
        bench_rows(&mut group, Some(&count.to_string()), rows);
    }
    group.finish();
}

#[cfg(target_os = "linux")]
fn freeze_melt(c: &mut Criterion) {
    let page = rustix::param::page_size();
    let mut group = c.benchmark_group("freeze_melt");
    let rows = vec![
        ("memguard", op(benchops::freeze_melt)),
        ("raw_floor", op(move || benchops::raw_freeze_melt(page))),
    ];
    bench_rows(&mut group, None, rows);
    group.finish();
}

#[cfg(target_os = "linux")]
fn access(c: &mut Criterion) {
    let mut group = c.benchmark_group("access");
    let mut buf = LockedBuffer::new(32).expect("new");
    buf.copy(&[7u8; 32]).expect("copy");
    let other = [7u8; 32];
    let vec = vec![7u8; 32];

    group.bench_function("bytes_read", |b| {
        b.iter(|| {
            let data = buf.bytes();
            black_box(data[black_box(0)])
        });
    });
    group.bench_function("bytes_mut_write", |b| {
        b.iter(|| {
            let mut data = buf.bytes_mut().expect("bytes_mut");
            data[black_box(0)] = black_box(7);
        });
    });
    group.bench_function("equal_to_32", |b| {
        b.iter(|| buf.equal_to(black_box(&other)));
    });
    group.bench_function("vec_read_floor", |b| {
        b.iter(|| black_box(black_box(&vec)[black_box(0)]));
    });
    group.finish();
}

/// Runs `body` with `mode` set, then puts the old mode back.
#[cfg(target_os = "linux")]
fn with_mode<T>(mode: memguard::CompactMode, body: impl FnOnce() -> T) -> T {
    let before = memguard::compact_mode();
    memguard::set_compact_mode(mode);
    let out = body();
    memguard::set_compact_mode(before);
    out
}

/// `VmLck` of this process, in bytes.
#[cfg(target_os = "linux")]
fn locked_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |k| k * 1024)
}

#[cfg(target_os = "linux")]
fn compact(c: &mut Criterion) {
    use memguard::CompactMode;
    let mut group = c.benchmark_group("compact");
    let layouts = [
        ("own_spares", CompactMode::Never),
        ("compact", CompactMode::Always),
    ];
    for (name, mode) in layouts {
        group.bench_function(BenchmarkId::new("new_drop", name), |b| {
            with_mode(mode, || {
                b.iter(|| drop(black_box(LockedBuffer::new(black_box(32)).expect("new"))));
            });
        });
    }
    for (name, mode) in layouts {
        group.bench_function(BenchmarkId::new("new_freeze_drop", name), |b| {
            with_mode(mode, || {
                b.iter(|| {
                    let mut buf = LockedBuffer::new(black_box(32)).expect("new");
                    buf.freeze().expect("freeze");
                    drop(black_box(buf));
                });
            });
        });
    }
    group.throughput(Throughput::Elements(1000));
    group.sample_size(20);
    for (name, mode) in [
        ("own", CompactMode::Never),
        ("compact", CompactMode::Always),
    ] {
        let mut reported = false;
        group.bench_function(BenchmarkId::new("open_1000_x8", name), |b| {
            with_mode(mode, || {
                b.iter(|| {
                    let barrier = std::sync::Barrier::new(8);
                    let locked = std::sync::atomic::AtomicUsize::new(0);
                    std::thread::scope(|s| {
                        for _ in 0..8 {
                            s.spawn(|| {
                                let held: Vec<LockedBuffer> = (0..125)
                                    .map(|_| LockedBuffer::new(32).expect("new"))
                                    .collect();
                                if barrier.wait().is_leader() {
                                    locked.store(
                                        locked_bytes(),
                                        std::sync::atomic::Ordering::Relaxed,
                                    );
                                }
                                barrier.wait();
                                drop(black_box(held));
                            });
                        }
                    });
                    if !reported {
                        reported = true;
                        eprintln!(
                            "compact/open_1000_x8/{name}: VmLck with 1,000 open: {} KiB",
                            locked.load(std::sync::atomic::Ordering::Relaxed) / 1024
                        );
                    }
                });
            });
        });
    }
    group.finish();
}

#[cfg(target_os = "linux")]
criterion_group! {
    name = benches;
    config = config();
    targets = lifecycle, freeze_melt, access, purge, compact
}
#[cfg(target_os = "linux")]
criterion_main!(benches);

/// The floors are Linux system calls: nothing to measure elsewhere.
#[cfg(not(target_os = "linux"))]
fn main() {}
