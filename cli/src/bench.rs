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

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::benchops::{self as ops, Body, Calls, Spares, WallClock};
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

/// One operation: memguard's side and its raw floor.
struct Case {
    memguard: Body,
    floor: Body,
}

/// Builds one side of a case, given the page size.
type Build = Box<dyn Fn(usize) -> Result<Body, String>>;

/// What an operation is, before it is built: one row of the table.
struct Spec {
    id: String,
    name: String,
    floor_text: &'static str,
    bytes: Option<u64>,
    /// Pages locked at once at the most: `locks.0` plus two buffers of
    /// `locks.1` bytes (the operation's and its floor's), for the
    /// `RLIMIT_MEMLOCK` check.
    locks: (u64, usize),
    /// Its share of the time budget, relative to the others' (1.0).
    weight: f64,
    /// Its baseline is libsodium's (skipped where libsodium is missing).
    libsodium: bool,
    memguard: Build,
    floor: Build,
}

impl Spec {
    /// A row of weight 1 that locks a few pages.
    fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        floor_text: &'static str,
        memguard: impl Fn(usize) -> Result<Body, String> + 'static,
        floor: impl Fn(usize) -> Result<Body, String> + 'static,
    ) -> Spec {
        Spec {
            id: id.into(),
            name: name.into(),
            floor_text,
            bytes: None,
            locks: (4, 0),
            weight: 1.0,
            libsodium: false,
            memguard: Box::new(memguard),
            floor: Box::new(floor),
        }
    }

    /// The same, `bytes` per iteration.
    fn bytes(mut self, bytes: usize) -> Spec {
        self.bytes = Some(bytes as u64);
        self
    }

    /// The same, locking two buffers of `n` bytes and two guard pages.
    fn locks_two(mut self, n: usize) -> Spec {
        self.locks = (2, n);
        self
    }

    /// The same, compared with libsodium rather than a raw floor.
    fn against_libsodium(mut self) -> Spec {
        self.libsodium = true;
        self
    }
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

/// Every operation, in the order they are run (the purges last). Each row
/// pairs two operations of `benchops`: adding a row is one `v.push`.
fn specs() -> Vec<Spec> {
    let chunk = memguard::DEFAULT_CHUNK_SIZE;
    let mut v = Vec::new();
    let lifecycle_floor = "mmap, 2 guard mprotects, mlock, madvise DONTDUMP + WIPEONFORK, \
                           wipe, munlock, munmap";
    v.push(Spec::new(
        "lifecycle_spare/32",
        "LockedBuffer new+drop 32 B (spare reused)",
        "a kept guarded mapping: mprotect read-write, wipe, mprotect PROT_NONE",
        |_| ops::new_drop(32, Spares::Default),
        |page| ops::raw_spare_cycle(32, page),
    ));
    for n in [32, 4 * KIB, MIB] {
        let row = Spec::new(
            format!("lifecycle/{n}"),
            format!("LockedBuffer new+drop {} (spares off)", size_label(n)),
            lifecycle_floor,
            move |_| ops::new_drop(n, Spares::Off),
            move |page| ops::raw_new_drop(n, page, Calls::Full),
        )
        .locks_two(n);
        v.push(if n >= MIB { row.bytes(n) } else { row });
    }
    v.push(
        Spec::new(
            "lifecycle_min/32",
            "LockedBuffer new+drop 32 B (spares off, vs fewest calls)",
            "the fewest calls for the same protections: mmap PROT_NONE, mprotect data, \
             mlock, madvise DONTDUMP + WIPEONFORK, wipe, munmap",
            |_| ops::new_drop(32, Spares::Off),
            |page| ops::raw_new_drop(32, page, Calls::Min),
        )
        .locks_two(32),
    );
    v.push(Spec::new(
        "freeze_melt",
        "freeze + melt",
        "2 mprotects",
        |_| ops::freeze_melt(),
        ops::raw_freeze_melt,
    ));
    for n in [32, KIB, 64 * KIB, MIB] {
        // `<id>/<n>`, "<what> <size>", `n` bytes per iteration.
        let sized =
            |id: &str, what: &str, floor_text: &'static str, memguard: Build, floor: Build| {
                let name = format!("{what} {}", size_label(n));
                Spec::new(format!("{id}/{n}"), name, floor_text, memguard, floor).bytes(n)
            };
        v.push(sized(
            "enclave_new",
            "Enclave::new",
            "XSalsa20Poly1305 encrypt in place",
            Box::new(move |_| ops::enclave_new(n)),
            Box::new(move |_| ops::raw_seal(n)),
        ));
        v.push(
            sized(
                "enclave_open",
                "Enclave::open",
                "copy + XSalsa20Poly1305 decrypt in place, then read-only, back to \
                 read-write and wipe (2 mprotects); up to a page in a kept guarded mapping \
                 (2 more mprotects: read-write first, PROT_NONE last), larger inside the \
                 lifecycle floor",
                Box::new(move |_| ops::enclave_open(n, Spares::Default)),
                Box::new(move |page| ops::raw_open(n, page)),
            )
            .locks_two(n),
        );
        v.push(
            sized(
                "enclave_open_into",
                "Enclave::open_into",
                "copy + XSalsa20Poly1305 decrypt in place",
                Box::new(move |_| ops::enclave_open_into(n)),
                Box::new(move |_| ops::raw_open_into(n)),
            )
            .locks_two(n),
        );
    }
    v.push(
        Spec::new(
            "stream_write/1048576",
            "Stream write 1 MiB (16 KiB)",
            "seal 64 chunks of 16 KiB, each into a new Vec",
            move |_| ops::stream_write(MIB, chunk),
            move |_| ops::raw_seal_chunks(MIB, chunk, ops::Nonces::Counter),
        )
        .bytes(MIB),
    );
    v.push(
        Spec::new(
            "stream_read/1048576",
            "Stream read 1 MiB (16 KiB)",
            "copy + open 64 chunks of 16 KiB",
            move |_| ops::stream_read(MIB, chunk, ops::Reader::Owned),
            move |_| ops::raw_open_chunks(MIB, chunk),
        )
        .bytes(MIB),
    );
    // The cipher beside libsodium's `crypto_secretbox` (issue 13): not a
    // floor (libsodium does not lock, guard or wipe anything), the speed
    // the cipher is held to.
    let sodium_pair = "libsodium crypto_secretbox_easy + crypto_secretbox_open_easy \
                       (the system's, loaded at run time), buffers made once";
    for n in [32, 4 * KIB, MIB] {
        let row = Spec::new(
            format!("libsodium_seal_open/{n}"),
            format!("Enclave::new + open_into {}, vs libsodium", size_label(n)),
            sodium_pair,
            move |_| ops::enclave_new_open_into(n, None),
            move |_| ops::sodium_seal_open(n),
        )
        .locks_two(n)
        .against_libsodium();
        v.push(if n >= KIB { row.bytes(n) } else { row });
    }
    v.push(
        Spec::new(
            "libsodium_stream_write/1048576",
            "Stream write 1 MiB (16 KiB), vs libsodium",
            "libsodium crypto_secretbox_easy of 64 chunks of 16 KiB, each into a new Vec",
            move |_| ops::stream_write(MIB, chunk),
            move |_| ops::sodium_seal_chunks(MIB, chunk),
        )
        .bytes(MIB)
        .against_libsodium(),
    );
    v.push(
        Spec::new(
            "libsodium_stream_read/1048576",
            "Stream read 1 MiB (16 KiB), vs libsodium",
            "libsodium crypto_secretbox_open_easy of 64 chunks of 16 KiB into one buffer",
            move |_| ops::stream_read(MIB, chunk, ops::Reader::Owned),
            move |_| ops::sodium_open_chunks(MIB, chunk),
        )
        .bytes(MIB)
        .against_libsodium(),
    );
    for n in [1, 100, 10_000] {
        let mut row = Spec::new(
            format!("purge/{n}"),
            format!("purge, {n} live buffer{}", if n == 1 { "" } else { "s" }),
            "wipe, munlock, munmap of as many raw guarded mappings",
            move |_| ops::purge(n),
            move |page| ops::raw_purge(n, page, Calls::Full),
        );
        row.locks = (n as u64 + 2, 0);
        // The purge of 10,000 buffers spends most of its time making them,
        // so it gets a larger share.
        if n >= 1000 {
            row.weight = 3.0;
        }
        v.push(row);
    }
    v
}

/// Builds the two sides of `spec`.
fn build(spec: &Spec) -> Result<Case, String> {
    let page = crate::platform::page_size();
    Ok(Case {
        memguard: (spec.memguard)(page)?,
        floor: (spec.floor)(page)?,
    })
}

/// Why `spec` cannot run under this process's limit on locked memory
/// (`RLIMIT_MEMLOCK`, the working-set quota), if so.
fn memlock_shortfall(spec: &Spec) -> Option<String> {
    let page = crate::platform::page_size() as u64;
    let (fixed, n) = spec.locks;
    let pages = fixed + (n as u64).div_ceil(page) * 2;
    crate::platform::lock_shortfall(pages * page)
}

/// Why `spec` is not measured here, if so: its baseline, libsodium, is not
/// `loaded`, or the lock limit is too small for it.
fn skip_reason(spec: &Spec, loaded: bool) -> Option<String> {
    if spec.libsodium && !loaded {
        return Some(
            "skipped: libsodium not found, the baseline of this row (Debian: apt-get install \
             libsodium23)"
                .to_string(),
        );
    }
    memlock_shortfall(spec).map(|why| format!("skipped: {why}"))
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
fn calibrate(f: &mut Body, target: Duration, limit: Instant) -> Result<(u64, f64), String> {
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        f.time(iters, &WallClock)?;
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
        a.push(per_iter(case.memguard.time(ka, &WallClock)?, ka));
        b.push(per_iter(case.floor.time(kb, &WallClock)?, kb));
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
    let weight = |s: &Spec| s.weight;
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
        // libsodium is loaded only for the rows that need it.
        let loaded = spec.libsodium && memguard_testkit::sodium::load().is_some();
        let outcome = match skip_reason(spec, loaded) {
            Some(why) => Err(why),
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
                floor: spec.floor_text,
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
                floor: spec.floor_text,
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
        assert_eq!(n, 1 + 3 + 1 + 1 + 12 + 2 + 5 + 3);
        assert!(ids.contains(&"lifecycle_spare/32"));
        assert!(ids.contains(&"libsodium_seal_open/1048576"));
    }

    /// The rows compared with libsodium are skipped, with a note saying
    /// what to install, where it is missing; the others are not.
    #[test]
    fn libsodium_rows_are_skipped_without_libsodium() {
        let specs = specs();
        let sodium: Vec<&Spec> = specs.iter().filter(|s| s.libsodium).collect();
        assert_eq!(sodium.len(), 5);
        for spec in &sodium {
            assert!(spec.id.starts_with("libsodium_"), "{}", spec.id);
            let why = skip_reason(spec, false).expect("skipped without libsodium");
            assert!(
                why.contains("libsodium not found") && why.contains("apt-get"),
                "{why}"
            );
            let with = skip_reason(spec, true);
            assert!(
                !with.is_some_and(|w| w.contains("libsodium")),
                "{}",
                spec.id
            );
        }
        let freeze = specs.iter().find(|s| s.id == "freeze_melt").expect("a row");
        assert!(!skip_reason(freeze, false).is_some_and(|w| w.contains("libsodium")));
    }

    /// Every row of the table, both sides, and every operation only the
    /// criterion benchmarks use, built and timed for two iterations: each
    /// gives its bytes back and fails on nothing. One test, so that the
    /// purges (which destroy every buffer of the process) run alone.
    #[test]
    fn every_operation_builds_and_runs() {
        let run = |what: &str, body: Result<Body, String>| {
            let mut body = body.unwrap_or_else(|e| panic!("{what}: build: {e}"));
            let t = body
                .time(2, &WallClock)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(t > Duration::ZERO, "{what}: no time measured");
        };
        let page = crate::platform::page_size();
        let chunk = memguard::DEFAULT_CHUNK_SIZE;
        run("new_freeze_drop", ops::new_freeze_drop(32, Spares::Off));
        run("enclave_open_compact", ops::enclave_open_compact(32));
        run(
            "enclave_new_open_into",
            ops::enclave_new_open_into(KIB, None),
        );
        run("enclave_new_open", ops::enclave_new_open(KIB));
        run("raw_seal_open", ops::raw_seal_open(KIB));
        run("raw_new_drop min", ops::raw_new_drop(KIB, page, Calls::Min));
        run("raw_purge min", ops::raw_purge(10, page, Calls::Min));
        run(
            "raw_seal_chunks random",
            ops::raw_seal_chunks(MIB, chunk, ops::Nonces::Random),
        );
        run(
            "stream_read shared",
            ops::stream_read(MIB, chunk / 2, ops::Reader::Shared),
        );
        // The table's own rows, the purges last; those compared with
        // libsodium where it is found (or required: `.ci/run`).
        let sodium = memguard_testkit::sodium::get().is_some();
        for spec in specs() {
            if spec.libsodium && !sodium {
                continue;
            }
            let page = crate::platform::page_size();
            run(&format!("{} (memguard)", spec.id), (spec.memguard)(page));
            run(&format!("{} (floor)", spec.id), (spec.floor)(page));
        }
        let spares = memguard::spare_limit();
        run("new_drop, spares off", ops::new_drop(32, Spares::Off));
        assert_eq!(
            memguard::spare_limit(),
            spares,
            "the spare limit is put back"
        );
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
