//! A dudect-style timing check of memguard's constant-time operations.
//!
//! Method (Reparaz, Balasch, Verbauwhede, "Dude, is my code constant
//! time?", 2017):
//!
//! - Two input classes. For the compares, class A is an input equal to the
//!   secret and class B one that differs in its first byte. For the copies,
//!   class A is an all-zero source and class B a random one, same length.
//! - Every input of a batch is prepared before any call of that batch is
//!   timed; the class of each measurement is a fair coin from a seeded
//!   xorshift, so the two classes are interleaved at random and any drift in
//!   the machine (other jobs, frequency changes) falls on both alike.
//! - Each call is timed on its own with `lfence; rdtsc; lfence` on both sides
//!   (time-stamp counter ticks).
//! - Welch's t-test between the two classes' timings, over all measurements
//!   and over those below each of dudect's 100 percentile thresholds
//!   (cropping removes the long upper tail of interrupts and preemption);
//!   the figure kept for a run is the largest |t| over these tests.
//! - Everything is repeated `--reps` times independently (fresh secret,
//!   fresh coins, fresh timings); the verdict uses the median over the
//!   repetitions of that largest |t|.
//!
//! Verdict: every memguard operation must have a median max |t| below 10,
//! and every positive control (a deliberately leaky implementation timed by
//! the same harness) above 50, so the check fails both when memguard leaks
//! and when the harness has lost the power to see a leak. The exit status
//! is 0 on pass, 1 on fail, 2 on a usage or setup error.

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!(
    "memguard-dudect times calls with rdtsc and pins with sched_setaffinity: Linux x86_64 only"
);

use std::arch::x86_64::{_mm_lfence, _rdtsc};
use std::fmt;
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use memguard::LockedBuffer;

/// A memguard operation passes when its median max |t| is below this.
const CRATE_MAX_T: f64 = 10.0;
/// A positive control passes (the harness can see a leak) above this.
const CONTROL_MIN_T: f64 = 50.0;
/// dudect's number of cropping thresholds.
const PERCENTILES: usize = 100;
/// A cropped test counts only with at least this many samples in each class.
const MIN_CLASS_SAMPLES: u64 = 1000;
/// Inputs prepared per batch, in bytes (about half of this machine class's
/// L2, so a prepared batch is still in cache when it is timed).
const BATCH_BYTES: usize = 1 << 20;
/// Buffer sizes tested.
const SIZES: [usize; 2] = [32, 1024];

/// What is timed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `LockedBuffer::equal_to`, class A equal, class B first byte differs.
    EqualTo,
    /// Positive control: an early-exit byte compare, same classes.
    NaiveEqual,
    /// `LockedBuffer::copy`, class A all-zero source, class B random.
    Copy,
    /// Positive control: a copy that skips zero bytes, same classes.
    NaiveCopySkipZero,
}

const TARGETS: [Target; 4] = [
    Target::EqualTo,
    Target::NaiveEqual,
    Target::Copy,
    Target::NaiveCopySkipZero,
];

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::EqualTo => "LockedBuffer::equal_to",
            Target::NaiveEqual => "naive early-exit compare",
            Target::Copy => "LockedBuffer::copy",
            Target::NaiveCopySkipZero => "naive copy skipping zeros",
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Target::NaiveEqual | Target::NaiveCopySkipZero)
    }

    fn classes(self) -> &'static str {
        match self {
            Target::EqualTo | Target::NaiveEqual => "A=equal B=first byte differs",
            Target::Copy | Target::NaiveCopySkipZero => "A=all-zero B=random",
        }
    }

    fn passes(self, t: f64) -> bool {
        if self.is_control() {
            t > CONTROL_MIN_T
        } else {
            t < CRATE_MAX_T
        }
    }
}

/// xorshift64: a fast, seeded, reproducible source of coins and bytes.
/// (Nothing here needs unpredictability: it only has to be independent of
/// the machine's timing.)
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that nearby seeds give unrelated streams
        // and the state is never zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        XorShift(z | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// 0 or 1, from the top bit.
    fn coin(&mut self) -> u8 {
        (self.next_u64() >> 63) as u8
    }
}

/// The time-stamp counter, fenced so that neither earlier nor later
/// instructions are reordered across the read.
#[inline(always)]
fn ticks() -> u64 {
    // SAFETY: lfence (SSE2) and rdtsc are part of every x86_64 CPU; neither
    // touches memory.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

/// The positive control for `equal_to`: a plain byte loop that returns at
/// the first difference. `black_box` on each byte keeps the compiler from
/// turning the loop into a branch-free or vectorised compare.
#[inline(never)]
fn naive_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    for i in 0..a.len() {
        if black_box(a[i]) != black_box(b[i]) {
            return false;
        }
    }
    true
}

/// The positive control for `copy`: copies only the non-zero bytes, so an
/// all-zero source does no stores at all. `black_box` on each byte keeps
/// the branch (the compiler would otherwise make it a blend or a plain copy).
#[inline(never)]
fn naive_copy_skip_zero(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        let byte = black_box(*s);
        if byte != 0 {
            *d = byte;
        }
    }
}

/// Times `op` once per prepared input, in order.
#[inline(always)]
fn time_each(n: usize, arena: &[u8], times: &mut [u64], mut op: impl FnMut(&[u8])) {
    for (i, t) in times.iter_mut().enumerate() {
        let input = black_box(&arena[i * n..(i + 1) * n]);
        let start = ticks();
        op(input);
        let end = ticks();
        *t = end.wrapping_sub(start);
    }
}

/// The raw measurements of one target at one size in one repetition.
struct Samples {
    times: Vec<u64>,
    classes: Vec<u8>,
}

/// Runs `samples` timed calls of `target` on `n`-byte buffers (plus one
/// warm-up batch that is thrown away).
fn collect(
    target: Target,
    n: usize,
    samples: usize,
    rng: &mut XorShift,
) -> Result<Samples, String> {
    let err = |what: &str, e: memguard::Error| format!("{}: {what}: {e}", target.name());
    let secret = LockedBuffer::random(n).map_err(|e| err("LockedBuffer::random", e))?;
    let reference: Vec<u8> = secret.bytes().to_vec();
    let mut dst = LockedBuffer::new(n).map_err(|e| err("LockedBuffer::new", e))?;
    let mut naive_dst = vec![0u8; n];

    let batch = (BATCH_BYTES / n).clamp(1024, 1 << 16);
    let mut arena = vec![0u8; batch * n];
    let mut batch_classes = vec![0u8; batch];
    let mut batch_times = vec![0u64; batch];
    let mut out = Samples {
        times: Vec::with_capacity(samples),
        classes: Vec::with_capacity(samples),
    };

    let mut warm_up = true;
    while out.times.len() < samples {
        // 1. Prepare every input of the batch; nothing is timed here. Both
        //    classes go through the same instructions and the same stores,
        //    only the values differ (a mask of all zeros or all ones): how an
        //    input was written decides where and in what state its cache
        //    lines are. (Filling class A with `fill(0)`, a memset, and class
        //    B with 8-byte stores gave plain `copy_from_slice` a |t| of 10
        //    to 20 at 1024 bytes on an AMD EPYC: an artefact of the harness.)
        for (i, class) in batch_classes.iter_mut().enumerate() {
            *class = rng.coin();
            let mask = 0u64.wrapping_sub(u64::from(*class)); // A: 0, B: !0
            let slot = &mut arena[i * n..(i + 1) * n];
            match target {
                Target::EqualTo | Target::NaiveEqual => {
                    slot.copy_from_slice(&reference);
                    // B: a random byte different from the secret's first.
                    let delta = 1 + (rng.next_u64() % 255) as u8;
                    slot[0] ^= delta & mask as u8;
                }
                Target::Copy | Target::NaiveCopySkipZero => {
                    for chunk in slot.chunks_mut(8) {
                        let word = (rng.next_u64() & mask).to_le_bytes();
                        chunk.copy_from_slice(&word[..chunk.len()]);
                    }
                }
            }
        }

        // 2. Time each call of the batch on its own.
        match target {
            Target::EqualTo => time_each(n, &arena, &mut batch_times, |x| {
                black_box(secret.equal_to(x));
            }),
            Target::NaiveEqual => time_each(n, &arena, &mut batch_times, |x| {
                black_box(naive_equal(&reference, x));
            }),
            Target::Copy => time_each(n, &arena, &mut batch_times, |x| {
                let _ = black_box(dst.copy(x));
            }),
            Target::NaiveCopySkipZero => time_each(n, &arena, &mut batch_times, |x| {
                naive_copy_skip_zero(&mut naive_dst, x);
                black_box(&mut naive_dst);
            }),
        }

        // 3. Check, untimed, that the operation did its job on the last input.
        let last = &arena[(batch - 1) * n..];
        let ok = match target {
            Target::EqualTo => secret.equal_to(last) == (batch_classes[batch - 1] == 0),
            Target::NaiveEqual => naive_equal(&reference, last) == (batch_classes[batch - 1] == 0),
            Target::Copy => dst.equal_to(last),
            // Zero bytes are skipped, so only the non-zero ones must match.
            Target::NaiveCopySkipZero => naive_dst.iter().zip(last).all(|(d, s)| *s == 0 || d == s),
        };
        if !ok {
            return Err(format!("{}: wrong result (n = {n})", target.name()));
        }

        if warm_up {
            warm_up = false;
            continue;
        }
        let take = batch.min(samples - out.times.len());
        out.times.extend_from_slice(&batch_times[..take]);
        out.classes.extend_from_slice(&batch_classes[..take]);
    }
    Ok(out)
}

/// Welford's running mean and variance for the two classes.
#[derive(Clone, Copy, Default)]
struct Welch {
    n: [u64; 2],
    mean: [f64; 2],
    m2: [f64; 2],
}

impl Welch {
    fn push(&mut self, class: u8, x: f64) {
        let c = usize::from(class);
        self.n[c] += 1;
        let delta = x - self.mean[c];
        self.mean[c] += delta / self.n[c] as f64;
        self.m2[c] += delta * (x - self.mean[c]);
    }

    fn enough(&self) -> bool {
        self.n[0] >= MIN_CLASS_SAMPLES && self.n[1] >= MIN_CLASS_SAMPLES
    }

    /// Welch's t statistic (class A minus class B).
    fn t(&self) -> f64 {
        let var = |c: usize| self.m2[c] / (self.n[c] - 1) as f64;
        let se = (var(0) / self.n[0] as f64 + var(1) / self.n[1] as f64).sqrt();
        if se == 0.0 {
            // Identical constant timings in both classes: no evidence.
            if self.mean[0] == self.mean[1] {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (self.mean[0] - self.mean[1]) / se
        }
    }
}

/// The statistics of one repetition of one target at one size.
struct Analysis {
    full: Welch,
    /// Median time of each class.
    median: [u64; 2],
    t_full: f64,
    /// The t of largest magnitude over the uncropped test and every cropped
    /// one (signed: negative when class A is faster).
    max_t: f64,
    /// Which test gave it: `None` for uncropped, else the percentile kept.
    max_at: Option<f64>,
}

/// dudect's cropping thresholds: 1 - 0.5^(10 (k + 1) / 100), k = 0..100,
/// from 6.7 % up to 99.9 % of the measurements.
fn percentile(k: usize) -> f64 {
    1.0 - 0.5f64.powf(10.0 * (k + 1) as f64 / PERCENTILES as f64)
}

fn analyse(s: &Samples) -> Analysis {
    // Sorted by time, every cropped set "time < threshold" is a prefix, so
    // one pass of Welford accumulators gives all 101 tests.
    let mut order: Vec<(u64, u8)> = s
        .times
        .iter()
        .copied()
        .zip(s.classes.iter().copied())
        .collect();
    order.sort_unstable();
    let len = order.len();
    let thresholds: Vec<(f64, u64)> = (0..PERCENTILES)
        .map(|k| {
            let p = percentile(k);
            let idx = ((p * len as f64) as usize).min(len - 1);
            (p, order[idx].0)
        })
        .collect();

    let class_median = |c: u8| {
        let mut in_class = order.iter().filter(|o| o.1 == c).map(|o| o.0);
        let count = in_class.clone().count();
        in_class.nth(count / 2).unwrap_or(0)
    };
    let median = [class_median(0), class_median(1)];

    let mut acc = Welch::default();
    let mut best: (f64, Option<f64>) = (0.0, None);
    let mut next = 0;
    for &(time, class) in &order {
        // Snapshot every threshold this time reaches: the prefix so far is
        // exactly the measurements strictly below it.
        while next < thresholds.len() && time >= thresholds[next].1 {
            if acc.enough() {
                let t = acc.t();
                if t.abs() > best.0.abs() {
                    best = (t, Some(thresholds[next].0));
                }
            }
            next += 1;
        }
        acc.push(class, time as f64);
    }
    // Thresholds never reached (ties at the top) crop nothing.
    let t_full = if acc.enough() { acc.t() } else { 0.0 };
    if t_full.abs() >= best.0.abs() {
        best = (t_full, None);
    }
    Analysis {
        full: acc,
        median,
        t_full,
        max_t: best.0,
        max_at: best.1,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Pins the process to the CPU it is running on, unless something (taskset)
/// already restricted it to one. Returns a description for the report.
fn pin_to_one_cpu() -> String {
    // SAFETY: cpu_set_t is plain data; the calls only read or write the set
    // passed by pointer with its correct size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut set) != 0 {
            return format!(
                "not pinned (sched_getaffinity: {})",
                std::io::Error::last_os_error()
            );
        }
        let allowed = libc::CPU_COUNT(&set);
        let cpu = libc::sched_getcpu();
        if allowed == 1 {
            return format!("pinned to CPU {cpu} (by the caller)");
        }
        if cpu < 0 {
            return "not pinned (sched_getcpu failed)".to_string();
        }
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu as usize, &mut set);
        if libc::sched_setaffinity(0, size, &set) != 0 {
            return format!(
                "not pinned (sched_setaffinity: {})",
                std::io::Error::last_os_error()
            );
        }
        format!("pinned to CPU {cpu} (sched_setaffinity)")
    }
}

struct Options {
    samples: usize,
    reps: usize,
    seed: u64,
    pin: bool,
}

const USAGE: &str = "usage: memguard-dudect [--samples N] [--reps R] [--seed S] [--no-pin]
  --samples N  timed calls per target, size and repetition (default 1000000)
  --reps R     independent repetitions; the verdict is on the median (default 5)
  --seed S     seed of the class coins and random inputs (default 1)
  --no-pin     do not pin the process to one CPU";

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        samples: 1_000_000,
        reps: 5,
        seed: 1,
        pin: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--samples" => {
                o.samples = value("--samples")?
                    .parse()
                    .map_err(|e| format!("--samples: {e}"))?;
            }
            "--reps" => {
                o.reps = value("--reps")?
                    .parse()
                    .map_err(|e| format!("--reps: {e}"))?;
            }
            "--seed" => {
                o.seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?;
            }
            "--no-pin" => o.pin = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.samples < 4 * MIN_CLASS_SAMPLES as usize {
        return Err(format!(
            "--samples must be at least {}",
            4 * MIN_CLASS_SAMPLES
        ));
    }
    if o.reps == 0 {
        return Err("--reps must be at least 1".to_string());
    }
    Ok(o)
}

/// One line of the per-repetition table.
struct Row<'a> {
    target: Target,
    n: usize,
    a: &'a Analysis,
}

impl fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = match self.a.max_at {
            None => "all".to_string(),
            Some(p) => format!("<p{:.1}", p * 100.0),
        };
        write!(
            f,
            "  {:<26} {:>5} {:>7} {:>7} {:>6} {:>6} {:>8.1} {:>8.1} {:>8.2} {:>9.2} {:>8}",
            self.target.name(),
            self.n,
            self.a.full.n[0],
            self.a.full.n[1],
            self.a.median[0],
            self.a.median[1],
            self.a.full.mean[0],
            self.a.full.mean[1],
            self.a.t_full,
            self.a.max_t,
            at
        )
    }
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("memguard-dudect: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let pinned = if opts.pin {
        pin_to_one_cpu()
    } else {
        "not pinned (--no-pin)".to_string()
    };
    println!("memguard dudect timing check");
    println!(
        "  {} samples per target, size and repetition; {} repetitions; seed {}; {}",
        opts.samples, opts.reps, opts.seed, pinned
    );
    println!("  times in TSC ticks (lfence; rdtsc; lfence around each call); t = Welch t, class A minus class B");

    let cases: Vec<(Target, usize)> = SIZES
        .iter()
        .flat_map(|&n| TARGETS.iter().map(move |&t| (t, n)))
        .collect();
    // per case: the max |t| of every repetition
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut rng = XorShift::new(opts.seed);

    for rep in 0..opts.reps {
        println!();
        println!(
            "repetition {}/{}\n  {:<26} {:>5} {:>7} {:>7} {:>6} {:>6} {:>8} {:>8} {:>8} {:>9} {:>8}",
            rep + 1,
            opts.reps,
            "target",
            "bytes",
            "n A",
            "n B",
            "med A",
            "med B",
            "mean A",
            "mean B",
            "t (all)",
            "max t",
            "at"
        );
        // Rotate the order of the cases between repetitions, so that no
        // case always runs first (cold) or last.
        for k in 0..cases.len() {
            let i = (k + rep) % cases.len();
            let (target, n) = cases[i];
            let samples = match collect(target, n, opts.samples, &mut rng) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("memguard-dudect: {e}");
                    return ExitCode::from(2);
                }
            };
            let a = analyse(&samples);
            println!("{}", Row { target, n, a: &a });
            results[i].push(a.max_t.abs());
        }
    }

    println!();
    println!(
        "summary: median over {} repetitions of max |t| (over the uncropped test and {} cropped ones)",
        opts.reps, PERCENTILES
    );
    println!(
        "  {:<26} {:>5}  {:<28} {:>9}  {:<12} {:<6} per repetition",
        "target", "bytes", "classes", "median", "required", "result"
    );
    let mut all_pass = true;
    for (i, &(target, n)) in cases.iter().enumerate() {
        let per_rep: Vec<String> = results[i].iter().map(|t| format!("{t:.1}")).collect();
        let med = median(&mut results[i].clone());
        let pass = target.passes(med);
        all_pass &= pass;
        let required = if target.is_control() {
            format!("> {CONTROL_MIN_T} (ctl)")
        } else {
            format!("< {CRATE_MAX_T}")
        };
        println!(
            "  {:<26} {:>5}  {:<28} {:>9.2}  {:<12} {:<6} {}",
            target.name(),
            n,
            target.classes(),
            med,
            required,
            if pass { "ok" } else { "FAIL" },
            per_rep.join(" ")
        );
    }
    println!();
    println!(
        "{} in {:.1} s",
        if all_pass {
            "PASS: no timing dependence on the class in memguard; both controls detected"
        } else {
            "FAIL: see the rows marked FAIL above"
        },
        started.elapsed().as_secs_f64()
    );
    if all_pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
