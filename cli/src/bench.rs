//! `memguard bench`: what memguard's operations cost next to the raw
//! system calls and cipher that give the same protections, measured in the
//! same run.
//!
//! The harness is small and of its own (no criterion): for each operation,
//! both sides are warmed up and calibrated, then timed in batches that
//! alternate (memguard, floor, memguard, floor, ...) so that drift in the
//! machine's speed hits both alike; each side's figure is the median time
//! per iteration over its batches. Set-up and tear-down that are not part
//! of the operation (filling a stream before reading it, making the
//! buffers a purge destroys) are left out of the timing. The default budget
//! is about 30 s; `--quick` is about 5 s.
//!
//! Every operation is built just before it is measured and dropped right
//! after, so that the purge operations (which destroy every buffer and the
//! session key) cannot disturb the others.

use std::hint::black_box;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use memguard::{Enclave, LockedBuffer, Stream, DEFAULT_CHUNK_SIZE};
use serde::Serialize;

use crate::floors::{self, RawCipher, RawGuarded, RawSpare};
use crate::ui::{pad, pad_left, print_report, Paint, Progress, Style};

/// Options of `memguard bench`.
#[derive(Clone, Debug)]
pub struct Options {
    /// The whole run's time budget.
    pub budget: Duration,
    /// Only operations whose id contains one of these.
    pub only: Vec<String>,
    /// Print JSON instead of a table.
    pub json: bool,
}

/// A measurement: run the operation `iters` times and return the time the
/// timed part took.
type Timed = Box<dyn FnMut(u64) -> Result<Duration, String>>;

/// One operation: memguard's side and its raw floor.
struct Case {
    memguard: Timed,
    floor: Timed,
}

/// What an operation is, before it is built.
#[derive(Clone, Debug)]
struct Spec {
    id: String,
    name: String,
    floor: &'static str,
    bytes: Option<u64>,
    kind: SpecKind,
}

#[derive(Clone, Copy, Debug)]
enum SpecKind {
    /// `new(n)` + drop with spare mappings off (a new mapping every time),
    /// against the issue's floor (`minimal == false`) or the fewest calls
    /// for the same protections (`minimal == true`).
    Lifecycle {
        n: usize,
        minimal: bool,
    },
    /// `new(32)` + drop as it runs by default, reusing a spare mapping,
    /// against the same reuse with raw calls.
    LifecycleSpare,
    FreezeMelt,
    EnclaveNew(usize),
    EnclaveOpen(usize),
    EnclaveOpenInto(usize),
    StreamWrite,
    StreamRead,
    Purge(usize),
}

/// One row of the results, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// A short stable id, such as `lifecycle/32` or `purge/10000`.
    pub id: String,
    /// The operation in words.
    pub operation: String,
    /// What the raw floor does.
    pub floor: &'static str,
    /// Bytes processed per iteration, for throughput; `None` when the
    /// operation is not about bytes.
    pub bytes: Option<u64>,
    /// Median nanoseconds per iteration, memguard's side.
    pub memguard_ns: Option<f64>,
    /// Median nanoseconds per iteration, the raw floor.
    pub floor_ns: Option<f64>,
    /// `memguard_ns / floor_ns`.
    pub ratio: Option<f64>,
    /// Batches timed on each side.
    pub samples: usize,
    /// Why the operation was not measured, when it was not: `skipped: ...`
    /// when this machine cannot run it (too small an `RLIMIT_MEMLOCK`),
    /// `error: ...` when it failed.
    pub skipped: Option<String>,
}

/// The whole run, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Report {
    memguard_version: &'static str,
    budget_seconds: f64,
    elapsed_seconds: f64,
    operations: Vec<Row>,
}

/// Bytes in a KiB.
const KIB: usize = 1 << 10;
/// Bytes in a MiB.
const MIB: usize = 1 << 20;

/// A size as the table shows it: `32 B`, `64 KiB`, `1 MiB`.
fn size_label(n: usize) -> String {
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} B")
    }
}

/// Every operation, in the order they are run (the purges last).
fn specs() -> Vec<Spec> {
    let mut v = Vec::new();
    let lifecycle_floor = "mmap, 2 guard mprotects, mlock, madvise DONTDUMP + WIPEONFORK, \
                           wipe, munlock, munmap";
    v.push(Spec {
        id: "lifecycle_spare/32".into(),
        name: "LockedBuffer new+drop 32 B (spare reused)".into(),
        floor: "a kept guarded mapping: mprotect read-write, wipe, mprotect PROT_NONE",
        bytes: None,
        kind: SpecKind::LifecycleSpare,
    });
    for n in [32, 4 * KIB, MIB] {
        v.push(Spec {
            id: format!("lifecycle/{n}"),
            name: format!("LockedBuffer new+drop {} (spares off)", size_label(n)),
            floor: lifecycle_floor,
            bytes: (n >= MIB).then_some(n as u64),
            kind: SpecKind::Lifecycle { n, minimal: false },
        });
    }
    v.push(Spec {
        id: "lifecycle_min/32".into(),
        name: "LockedBuffer new+drop 32 B (spares off, vs fewest calls)".into(),
        floor: "the fewest calls for the same protections: mmap PROT_NONE, mprotect data, \
                mlock, madvise DONTDUMP + WIPEONFORK, wipe, munmap",
        bytes: None,
        kind: SpecKind::Lifecycle {
            n: 32,
            minimal: true,
        },
    });
    v.push(Spec {
        id: "freeze_melt".into(),
        name: "freeze + melt".into(),
        floor: "2 mprotects",
        bytes: None,
        kind: SpecKind::FreezeMelt,
    });
    for n in [32, KIB, 64 * KIB, MIB] {
        let bytes = Some(n as u64);
        v.push(Spec {
            id: format!("enclave_new/{n}"),
            name: format!("Enclave::new {}", size_label(n)),
            floor: "XSalsa20Poly1305 encrypt in place",
            bytes,
            kind: SpecKind::EnclaveNew(n),
        });
        v.push(Spec {
            id: format!("enclave_open/{n}"),
            name: format!("Enclave::open {}", size_label(n)),
            floor: "copy + XSalsa20Poly1305 decrypt in place, then read-only, back to \
                    read-write and wipe (2 mprotects); up to a page in a kept guarded mapping \
                    (2 more mprotects: read-write first, PROT_NONE last), larger inside the \
                    lifecycle floor",
            bytes,
            kind: SpecKind::EnclaveOpen(n),
        });
        v.push(Spec {
            id: format!("enclave_open_into/{n}"),
            name: format!("Enclave::open_into {}", size_label(n)),
            floor: "copy + XSalsa20Poly1305 decrypt in place",
            bytes,
            kind: SpecKind::EnclaveOpenInto(n),
        });
    }
    v.push(Spec {
        id: "stream_write/1048576".into(),
        name: "Stream write 1 MiB (16 KiB)".into(),
        floor: "seal 64 chunks of 16 KiB, each into a new Vec",
        bytes: Some(MIB as u64),
        kind: SpecKind::StreamWrite,
    });
    v.push(Spec {
        id: "stream_read/1048576".into(),
        name: "Stream read 1 MiB (16 KiB)".into(),
        floor: "copy + open 64 chunks of 16 KiB",
        bytes: Some(MIB as u64),
        kind: SpecKind::StreamRead,
    });
    for n in [1, 100, 10_000] {
        v.push(Spec {
            id: format!("purge/{n}"),
            name: format!("purge, {n} live buffer{}", if n == 1 { "" } else { "s" }),
            floor: "wipe, munlock, munmap of as many raw guarded mappings",
            bytes: None,
            kind: SpecKind::Purge(n),
        });
    }
    v
}

/// Turns a memguard error into the text of a failed measurement.
fn mg(what: &'static str) -> impl Fn(memguard::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// The bytes a source is refilled from: `1..=251` repeating.
fn template(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 + 1).collect()
}

/// Times `iters` runs of `f`, whole.
fn timed(iters: u64, mut f: impl FnMut() -> Result<(), String>) -> Result<Duration, String> {
    let start = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    Ok(start.elapsed())
}

/// A floor that runs `step` on a raw mapping made once. When a step fails
/// the mapping is released with `release` and every later call fails.
fn raw_floor<R: 'static>(
    raw: R,
    mut step: impl FnMut(&mut R) -> std::io::Result<()> + 'static,
    release: impl Fn(R) + 'static,
) -> Timed {
    let mut raw = Some(raw);
    Box::new(move |iters| {
        let r = raw.as_mut().ok_or("the raw mapping is gone")?;
        let t = timed(iters, || step(r).map_err(|e| e.to_string()));
        if t.is_err() {
            if let Some(r) = raw.take() {
                release(r);
            }
        }
        t
    })
}

/// Builds the two sides of `spec`.
fn build(spec: &Spec) -> Result<Case, String> {
    let page = crate::platform::page_size();
    Ok(match spec.kind {
        SpecKind::Lifecycle { n, minimal } => Case {
            memguard: Box::new(move |iters| {
                let spares = memguard::spare_limit();
                memguard::set_spare_limit(0);
                let t = timed(iters, || {
                    let b = LockedBuffer::new(black_box(n)).map_err(mg("LockedBuffer::new"))?;
                    drop(black_box(b));
                    Ok(())
                });
                memguard::set_spare_limit(spares);
                t
            }),
            floor: Box::new(move |iters| {
                timed(iters, || {
                    if minimal {
                        let g =
                            RawGuarded::new_min(black_box(n), page).map_err(|e| e.to_string())?;
                        black_box(g).destroy_min(n);
                    } else {
                        let g = RawGuarded::new(black_box(n), page).map_err(|e| e.to_string())?;
                        black_box(g).destroy(n);
                    }
                    Ok(())
                })
            }),
        },
        SpecKind::LifecycleSpare => {
            let raw = RawSpare::new(page).map_err(|e| e.to_string())?;
            Case {
                memguard: Box::new(move |iters| {
                    timed(iters, || {
                        let b =
                            LockedBuffer::new(black_box(32)).map_err(mg("LockedBuffer::new"))?;
                        drop(black_box(b));
                        Ok(())
                    })
                }),
                floor: raw_floor(raw, |r| r.cycle(32), RawSpare::destroy),
            }
        }
        SpecKind::FreezeMelt => {
            let mut buf = LockedBuffer::new(32).map_err(mg("LockedBuffer::new"))?;
            let raw = RawGuarded::new(32, page).map_err(|e| e.to_string())?;
            Case {
                memguard: Box::new(move |iters| {
                    timed(iters, || {
                        buf.freeze().map_err(mg("freeze"))?;
                        buf.melt().map_err(mg("melt"))
                    })
                }),
                floor: raw_floor(raw, RawGuarded::freeze_melt, |r| r.destroy(32)),
            }
        }
        SpecKind::EnclaveNew(n) => {
            let tmpl = template(n);
            let tmpl2 = tmpl.clone();
            let mut src = vec![0u8; n];
            let mut buf = vec![0u8; n];
            let cipher = RawCipher::new();
            Case {
                memguard: Box::new(move |iters| {
                    timed(iters, || {
                        src.copy_from_slice(&tmpl);
                        let e = Enclave::new(black_box(&mut src)).map_err(mg("Enclave::new"))?;
                        drop(black_box(e));
                        Ok(())
                    })
                }),
                floor: Box::new(move |iters| {
                    timed(iters, || {
                        buf.copy_from_slice(&tmpl2);
                        black_box(cipher.seal(black_box(&mut buf)));
                        Ok(())
                    })
                }),
            }
        }
        SpecKind::EnclaveOpen(n) | SpecKind::EnclaveOpenInto(n) => {
            let tmpl = template(n);
            let sealed = Enclave::new(&mut tmpl.clone()).map_err(mg("Enclave::new"))?;
            let cipher = RawCipher::new();
            let mut ct = tmpl.clone();
            let tag = cipher.seal(&mut ct);
            if matches!(spec.kind, SpecKind::EnclaveOpen(_)) {
                return Ok(Case {
                    memguard: Box::new(move |iters| {
                        timed(iters, || {
                            let b = sealed.open().map_err(mg("Enclave::open"))?;
                            drop(black_box(b));
                            Ok(())
                        })
                    }),
                    floor: if n <= page {
                        let spare = RawSpare::new(page).map_err(|e| e.to_string())?;
                        raw_floor(
                            spare,
                            move |r| r.open(&cipher, black_box(&ct), &tag),
                            RawSpare::destroy,
                        )
                    } else {
                        Box::new(move |iters| {
                            timed(iters, || {
                                floors::guarded_open(&cipher, black_box(&ct), &tag, page)
                                    .map_err(|e| e.to_string())
                            })
                        })
                    },
                });
            }
            let mut buf = vec![0u8; n];
            let floor: Timed = Box::new(move |iters| {
                timed(iters, || {
                    cipher
                        .open_copy(black_box(&mut buf), &ct, &tag)
                        .map_err(|e| e.to_string())
                })
            });
            let memguard: Timed = {
                let mut dst = LockedBuffer::new(n).map_err(mg("LockedBuffer::new"))?;
                Box::new(move |iters| {
                    timed(iters, || {
                        sealed
                            .open_into(black_box(&mut dst))
                            .map_err(mg("Enclave::open_into"))
                    })
                })
            };
            Case { memguard, floor }
        }
        SpecKind::StreamWrite => {
            let src = template(MIB);
            let src2 = src.clone();
            let cipher = floors::chunk_cipher();
            let mut counter = 0u64;
            Case {
                memguard: Box::new(move |iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut s = Stream::new();
                        let start = Instant::now();
                        for piece in black_box(&src).chunks(DEFAULT_CHUNK_SIZE) {
                            s.write_all(piece)
                                .map_err(|e| format!("Stream write: {e}"))?;
                        }
                        total += start.elapsed();
                        drop(black_box(s));
                    }
                    Ok(total)
                }),
                floor: Box::new(move |iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let sealed = floors::seal_chunks(
                            &cipher,
                            black_box(&src2),
                            DEFAULT_CHUNK_SIZE,
                            &mut counter,
                        );
                        total += start.elapsed();
                        drop(black_box(sealed));
                    }
                    Ok(total)
                }),
            }
        }
        SpecKind::StreamRead => {
            let src = template(MIB);
            let cipher = floors::chunk_cipher();
            let mut counter = 0u64;
            let sealed =
                floors::seal_detached_chunks(&cipher, &src, DEFAULT_CHUNK_SIZE, &mut counter);
            let mut out = vec![0u8; DEFAULT_CHUNK_SIZE];
            let mut buf = vec![0u8; DEFAULT_CHUNK_SIZE];
            Case {
                memguard: Box::new(move |iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut s = Stream::new();
                        s.write_all(&src)
                            .map_err(|e| format!("Stream write: {e}"))?;
                        let start = Instant::now();
                        let mut read = 0;
                        loop {
                            let n = s.read(&mut buf).map_err(|e| format!("Stream read: {e}"))?;
                            if n == 0 {
                                break;
                            }
                            black_box(&buf[..n]);
                            read += n;
                        }
                        total += start.elapsed();
                        if read != MIB {
                            return Err(format!("read {read} bytes back instead of {MIB}"));
                        }
                    }
                    Ok(total)
                }),
                floor: Box::new(move |iters| {
                    timed(iters, || {
                        match floors::open_chunks(&cipher, black_box(&sealed), &mut out) {
                            Some(MIB) => Ok(()),
                            _ => Err("the raw cipher refused its own chunks".into()),
                        }
                    })
                }),
            }
        }
        SpecKind::Purge(count) => Case {
            memguard: Box::new(move |iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let held = (0..count)
                        .map(|_| LockedBuffer::new(32))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(mg("LockedBuffer::new"))?;
                    let start = Instant::now();
                    memguard::purge();
                    total += start.elapsed();
                    drop(black_box(held));
                }
                Ok(total)
            }),
            floor: Box::new(move |iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut held = Vec::with_capacity(count);
                    for _ in 0..count {
                        match RawGuarded::new(32, page) {
                            Ok(g) => held.push(g),
                            Err(e) => {
                                held.into_iter().for_each(|g| g.destroy(32));
                                return Err(e.to_string());
                            }
                        }
                    }
                    let start = Instant::now();
                    for g in held {
                        g.destroy(32);
                    }
                    total += start.elapsed();
                }
                Ok(total)
            }),
        },
    })
}

/// Why `spec` cannot run under this process's limit on locked memory
/// (`RLIMIT_MEMLOCK`, the working-set quota), if so.
fn memlock_shortfall(spec: &Spec) -> Option<String> {
    let page = crate::platform::page_size() as u64;
    let pages = match spec.kind {
        SpecKind::LifecycleSpare => 4,
        SpecKind::Lifecycle { n, .. } | SpecKind::EnclaveOpen(n) | SpecKind::EnclaveOpenInto(n) => {
            (n as u64).div_ceil(page) * 2 + 2
        }
        SpecKind::Purge(count) => count as u64 + 2,
        _ => 4,
    };
    crate::platform::lock_shortfall(pages * page)
}

/// Nanoseconds per iteration of `iters` iterations taking `d`.
fn per_iter(d: Duration, iters: u64) -> f64 {
    d.as_nanos() as f64 / iters.max(1) as f64
}

/// The median of `values` (sorted in place); `values` must not be empty.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Calls `f(iters)` with doubling `iters` until one call takes at least
/// `target` of wall time (or `limit` passes); returns the last `iters` and
/// its wall time per iteration. This also warms the operation up.
fn calibrate(f: &mut Timed, target: Duration, limit: Instant) -> Result<(u64, f64), String> {
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        f(iters)?;
        let wall = start.elapsed();
        if wall >= target || Instant::now() >= limit || iters >= 1 << 30 {
            return Ok((iters, per_iter(wall, iters)));
        }
        let grow = if wall.is_zero() {
            16.0
        } else {
            (target.as_secs_f64() / wall.as_secs_f64() * 1.2).clamp(2.0, 16.0)
        };
        iters = ((iters as f64) * grow).ceil() as u64;
    }
}

/// Minimum and maximum number of timed batches per side.
const MIN_SAMPLES: usize = 3;
const MAX_SAMPLES: usize = 40;
/// The number of batches per side aimed for.
const TARGET_SAMPLES: usize = 15;

/// Measures one operation within about `budget`; `tick` is told the
/// fraction of this operation done.
fn measure(
    case: &mut Case,
    budget: Duration,
    mut tick: impl FnMut(f64),
) -> Result<(f64, f64, usize), String> {
    let start = Instant::now();
    let warm = budget.mul_f64(0.2);
    let warm_end = start + warm;
    let (_, wall_a) = calibrate(&mut case.memguard, warm / 4, warm_end)?;
    let (_, wall_b) = calibrate(&mut case.floor, warm / 4, warm_end)?;
    tick(0.2);
    let end = start + budget;
    let left = end.saturating_duration_since(Instant::now());
    let batch = left.as_secs_f64() / (2 * TARGET_SAMPLES) as f64;
    let iters_for = |wall: f64| ((batch * 1e9 / wall.max(1.0)).floor() as u64).max(1);
    let (ka, kb) = (iters_for(wall_a), iters_for(wall_b));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    while a.len() < MAX_SAMPLES && (a.len() < MIN_SAMPLES || Instant::now() < end) {
        a.push(per_iter((case.memguard)(ka)?, ka));
        b.push(per_iter((case.floor)(kb)?, kb));
        let by_time = 1.0
            - end.saturating_duration_since(Instant::now()).as_secs_f64() / budget.as_secs_f64();
        tick(by_time.max(a.len() as f64 / MAX_SAMPLES as f64).min(1.0));
    }
    let samples = a.len();
    Ok((median(&mut a), median(&mut b), samples))
}

/// Whether `--only` item `pattern` selects operation `id`: an item with a
/// `/` names one operation exactly (`purge/1`); one without names the
/// groups that start with it (`lifecycle`, `enclave`, `enclave_open`).
fn selects(pattern: &str, id: &str) -> bool {
    if pattern.contains('/') {
        id == pattern
    } else {
        id.split('/').next().is_some_and(|g| g.starts_with(pattern))
    }
}

/// Runs the benchmarks and prints the table (or JSON).
pub fn run(opts: &Options) -> ExitCode {
    let all = specs();
    let chosen: Vec<Spec> = all
        .into_iter()
        .filter(|s| opts.only.is_empty() || opts.only.iter().any(|o| selects(o, &s.id)))
        .collect();
    if chosen.is_empty() {
        eprintln!(
            "memguard bench: no operation matches --only {}; ids are: {}",
            opts.only.join(","),
            specs()
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::from(2);
    }
    // The purge of 10,000 buffers spends most of its time making them, so
    // it gets a larger share.
    let weight = |s: &Spec| match s.kind {
        SpecKind::Purge(n) if n >= 1000 => 3.0,
        _ => 1.0,
    };
    let total_weight: f64 = chosen.iter().map(weight).sum();
    let started = Instant::now();
    let mut progress = Progress::new(opts.json);
    let mut rows = Vec::new();
    let count = chosen.len();
    let mut done_weight = 0.0;
    let mut errors = 0;
    for (i, spec) in chosen.iter().enumerate() {
        let share = weight(spec) / total_weight;
        let budget = opts.budget.mul_f64(share);
        progress.note(&format!("[{}/{count}] {}", i + 1, spec.name));
        let base = done_weight / total_weight;
        progress.bar(base, &spec.name);
        let outcome = match memlock_shortfall(spec) {
            Some(why) => Err(format!("skipped: {why}")),
            None => build(spec)
                .and_then(|mut case| {
                    measure(&mut case, budget, |f| {
                        progress.bar(base + f * share, &spec.name);
                    })
                })
                .map_err(|e| {
                    errors += 1;
                    format!("error: {e}")
                }),
        };
        done_weight += weight(spec);
        let row = match outcome {
            Ok((m, f, samples)) => Row {
                id: spec.id.clone(),
                operation: spec.name.clone(),
                floor: spec.floor,
                bytes: spec.bytes,
                memguard_ns: Some(m),
                floor_ns: Some(f),
                ratio: Some(m / f),
                samples,
                skipped: None,
            },
            Err(why) => Row {
                id: spec.id.clone(),
                operation: spec.name.clone(),
                floor: spec.floor,
                bytes: spec.bytes,
                memguard_ns: None,
                floor_ns: None,
                ratio: None,
                samples: 0,
                skipped: Some(why),
            },
        };
        rows.push(row);
    }
    progress.finish();
    let report = Report {
        memguard_version: env!("CARGO_PKG_VERSION"),
        budget_seconds: opts.budget.as_secs_f64(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
        operations: rows,
    };
    print_report(&report, opts.json, render);
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A time per iteration in the unit that reads best.
fn time_text(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// A time, with the throughput when the operation is about bytes.
fn cell(ns: Option<f64>, bytes: Option<u64>) -> String {
    match (ns, bytes) {
        (Some(ns), Some(b)) if ns > 0.0 && b >= 1024 => {
            format!("{} {:>6.2} GB/s", time_text(ns), b as f64 / ns)
        }
        (Some(ns), _) => time_text(ns),
        (None, _) => "-".into(),
    }
}

/// The table.
fn render(report: &Report, style: Style) -> String {
    let rows = &report.operations;
    let headers = ["OPERATION", "MEMGUARD", "RAW FLOOR", "RATIO"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.operation.clone(),
                cell(r.memguard_ns, r.bytes),
                cell(r.floor_ns, r.bytes),
                r.ratio.map_or("-".into(), |x| format!("{x:.2}x")),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for c in &cells {
        for (w, text) in widths.iter_mut().zip(c) {
            *w = (*w).max(text.chars().count());
        }
    }
    let mut s = String::new();
    s.push_str(&style.paint(
        Paint::Bold,
        &format!(
            "memguard bench: memguard {}, each operation next to its raw floor, median time per \
             operation",
            report.memguard_version
        ),
    ));
    s.push_str("\n\n");
    s.push_str(&style.paint(
        Paint::Bold,
        &format!(
            "{}  {}  {}  {}",
            pad(headers[0], widths[0]),
            pad_left(headers[1], widths[1]),
            pad_left(headers[2], widths[2]),
            pad_left(headers[3], widths[3])
        ),
    ));
    s.push('\n');
    for (r, c) in rows.iter().zip(&cells) {
        let ratio = pad_left(&c[3], widths[3]);
        let ratio = match r.ratio {
            Some(x) if x <= 1.10 => style.paint(Paint::Green, &ratio),
            Some(x) if x <= 2.0 => ratio,
            Some(_) => style.paint(Paint::Yellow, &ratio),
            None => ratio,
        };
        s.push_str(&format!(
            "{}  {}  {}  {ratio}\n",
            pad(&c[0], widths[0]),
            pad_left(&c[1], widths[1]),
            pad_left(&c[2], widths[2]),
        ));
        if let Some(why) = &r.skipped {
            s.push_str(&style.paint(Paint::Yellow, &format!("    {why}")));
            s.push('\n');
        }
    }
    s.push('\n');
    s.push_str(&style.paint(Paint::Dim, "raw floors:"));
    s.push('\n');
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        let group = r.id.split('/').next().unwrap_or(&r.id);
        if !seen.iter().any(|(g, _)| *g == group) {
            seen.push((group, r.floor));
        }
    }
    for (group, floor) in seen {
        s.push_str(&style.paint(Paint::Dim, &format!("  {group}: {floor}")));
        s.push('\n');
    }
    s.push_str(&style.paint(
        Paint::Dim,
        &format!(
            "{} operations in {:.1} s (budget {:.0} s); ratios move with the machine's load, \
             compare them within one run",
            rows.len(),
            report.elapsed_seconds,
            report.budget_seconds
        ),
    ));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_cover_the_issue() {
        let specs = specs();
        let mut ids: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n);
        assert_eq!(n, 1 + 3 + 1 + 1 + 12 + 2 + 3);
        assert!(ids.contains(&"lifecycle_spare/32"));
    }

    #[test]
    fn only_selects_groups_by_prefix_and_operations_exactly() {
        assert!(selects("purge/1", "purge/1"));
        assert!(!selects("purge/1", "purge/100"));
        assert!(selects("purge", "purge/10000"));
        assert!(selects("enclave", "enclave_open_into/32"));
        assert!(selects("enclave_open", "enclave_open/32"));
        assert!(!selects("open", "enclave_open/32"));
        assert!(selects("freeze_melt", "freeze_melt"));
    }

    #[test]
    fn median_and_units() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(time_text(1500.0), "1.50 µs");
        assert_eq!(time_text(2.5e6), "2.50 ms");
        assert_eq!(size_label(65536), "64 KiB");
        assert_eq!(size_label(32), "32 B");
    }
}
