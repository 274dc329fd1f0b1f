//! Throughput of [`Stream`] next to the raw cipher it is built on, on the
//! same 16 KiB chunks, measured in the same run so that the ratios mean
//! something. Every benchmark moves 1 MiB per iteration
//! (`Throughput::Bytes(1 MiB)`), as 64 chunks of 16 KiB
//! ([`DEFAULT_CHUNK_SIZE`]).
//!
//! Group `stream`:
//!
//! - `raw_seal_16k_chunks`: `crypto_secretbox::XSalsa20Poly1305` (RustCrypto,
//!   the same `salsa20`/`poly1305` code the crate uses), keyed once outside
//!   the loop. Per chunk: a fresh nonce from a counter (no `getrandom`), and
//!   `encrypt` into a new `Vec` (as the stream allocates one `Box` per
//!   chunk). The 64 `Vec`s are kept and dropped outside the timing, like the
//!   stream's chunks.
//! - `raw_seal_16k_chunks_getrandom`: the same, but each nonce is drawn with
//!   `getrandom::fill`, as `Stream` (through `Enclave`) does per chunk.
//! - `raw_open_16k_chunks`: open 64 chunks sealed beforehand: per chunk the
//!   ciphertext is copied into one reused 16 KiB buffer and opened there with
//!   `decrypt_in_place_detached` (the copy is about 1 us per chunk; the
//!   stream decrypts buffer to buffer and copies nothing).
//! - `libsodium_seal_16k_chunks`, `libsodium_open_16k_chunks`: the same
//!   two with libsodium's `crypto_secretbox_easy` / `open_easy` (the system
//!   library, loaded at run time through `memguard_testkit::sodium`; opening writes into one
//!   reused buffer, no copy). Targets (issue 13): `stream_write_16k_pieces`
//!   and `stream_read_16k_buf` at or above their throughput.
//! - `stream_write_16k_pieces`: a fresh `Stream::new()` (made in the setup,
//!   not timed), then `write_all` of a 1 MiB source in 16 KiB pieces (what
//!   `io::copy` with a large buffer does). The full stream is returned from
//!   the routine, so its chunks are freed outside the timing.
//! - `stream_write_1m_once`: the same, with the whole 1 MiB in one
//!   `write_all`.
//! - `stream_read_16k_buf`: a stream filled with 1 MiB in the setup (not
//!   timed), read into a 16 KiB buffer until `Ok(0)`: one chunk per `read`.
//!   Freeing each chunk once read is timed (it is part of reading).
//! - `stream_read_8k_buf`: the same with an 8 KiB buffer: each chunk is read
//!   in two halves and authenticated (Poly1305 over all 16 KiB) for each, so
//!   this one is expected to be slower; it is not part of the target.
//! - `stream_read_64k_buf`: the same with a 64 KiB buffer: four chunks per
//!   `read`.
//!
//! Group `stream_small_reads` (`Throughput::Bytes(256 KiB)`): a 256 KiB
//! stream of 16 KiB chunks, filled in the setup (not timed), read to the end
//! with read buffers of 1, 16, 64, 1024, 4096, 8192 and 16384 bytes
//! through `&mut Stream` (`read_buf_<n>`: an owned stream, whose `read`
//! takes no lock), with a 1-byte buffer through `&Stream`
//! (`read_buf_1_shared`: as threads sharing a stream read, locking its
//! mutex per read), and with `io::Read::read_to_end` into a `Vec` whose
//! capacity is kept from one iteration to the next (`read_to_end`: Stream's
//! own, which reserves the queued length and decrypts every chunk straight
//! into the `Vec` under one lock). Target
//! (issue 11, point 10): every buffer size within 3x of `read_to_end` per
//! byte. Beside them, the floors of a 1-byte read, 256 Ki times:
//! `floor_1b_borrow_copy` borrows a 256 KiB `LockedBuffer` (`bytes()`),
//! copies one byte and releases the borrow, per byte (what a read through
//! `&mut Stream` cannot do without: the borrow is what keeps a `purge` on
//! another thread from freeing the buffer under the copy);
//! `floor_1b_lock_borrow_copy` also locks a mutex (the `&Stream` floor);
//! `floor_1b_lock_copy` locks and copies from ordinary memory;
//! `floor_1b_std_cursor` reads a `std::io::Cursor<Vec<u8>>` of the same
//! length one byte at a time (any `io::Read` at its cheapest).
//!
//! Target (from the issue): `stream_write_*` and `stream_read_16k_buf`
//! (and `_64k_buf`) each at least 0.8x the throughput of `raw_seal_16k_chunks`
//! and `raw_open_16k_chunks` respectively.
//!
//! The set-ups run before each iteration, untimed (as with criterion's
//! `BatchSize::PerIteration`; `Body::per_run` in `cli/src/benchops.rs`), so only one 1 MiB stream is
//! alive at a time, and the one a read consumes was written just before it.
//! The session key's background rekeying is left at its default (every
//! 500 ms), as users get it.
//!
//! Time is wall-clock time, as criterion measures by default. On a busy
//! machine (more runnable threads than cores), benchmarks run one after the
//! other see different amounts of preemption and the ratios swing widely;
//! `MEMGUARD_BENCH_CPU_TIME=1 cargo bench --bench stream` measures the
//! benchmark thread's CPU time instead (`CLOCK_THREAD_CPUTIME_ID`: user plus
//! kernel time, page faults included, time spent preempted excluded). The
//! figures are still shown in seconds and bytes per second. Criterion keeps
//! one baseline per benchmark name, so a CPU-time run is compared with the
//! previous run whichever clock that used.

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput};
use memguard::{Stream, DEFAULT_CHUNK_SIZE};

/// The operations and their raw floors, shared with `memguard bench`
/// (`cli/src/benchops.rs`, `cli/src/floors.rs`).
#[allow(dead_code)]
#[path = "../cli/src/benchops.rs"]
mod benchops;
/// A row of a group: one operation, timed as `memguard bench` times it.
#[allow(dead_code)]
#[path = "support/ops.rs"]
mod ops;

use benchops::floors;
use benchops::{template, Body, Nonces, Reader, Slot};
use ops::{bench_rows, op, Timer};

/// libsodium, the baseline (its secretbox): loaded at run time by the
/// workspace's test tooling (`testkit/src/sodium.rs`).
use memguard_testkit::sodium;

const CHUNK: usize = DEFAULT_CHUNK_SIZE;
const TOTAL: usize = 1 << 20;
const CHUNKS: usize = TOTAL / CHUNK;

fn filled_stream(src: &[u8]) -> Stream {
    let mut s = Stream::new();
    s.write_all(src).expect("write_all");
    s
}

fn stream<M: Timer>(c: &mut Criterion<M>) {
    let src = template(TOTAL);
    let cipher = floors::chunk_cipher();

    // Check once, outside the timing, that both sides give the bytes back.
    {
        use crypto_secretbox::aead::Aead;
        let mut counter = 0;
        let sealed =
            floors::seal_chunks(&cipher, &src, CHUNK, || floors::counter_nonce(&mut counter));
        let back: Vec<u8> = sealed
            .iter()
            .flat_map(|(n, ct)| cipher.decrypt(n, ct.as_slice()).expect("decrypt"))
            .collect();
        assert_eq!(back, src);
        for buf_len in [CHUNK / 2, CHUNK, 4 * CHUNK] {
            let s = filled_stream(&src);
            assert_eq!(s.chunk_count(), CHUNKS);
            let mut out = Vec::with_capacity(TOTAL);
            let mut buf = vec![0u8; buf_len];
            let mut r = &s;
            loop {
                let n = r.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, src, "read buffer {buf_len}");
        }
    }

    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    // Loaded (or the bench stopped) before any row is measured.
    sodium::required();
    let rows = vec![
        (
            "raw_seal_16k_chunks",
            op(|| benchops::raw_seal_chunks(TOTAL, CHUNK, Nonces::Counter)),
        ),
        (
            "raw_seal_16k_chunks_getrandom",
            op(|| benchops::raw_seal_chunks(TOTAL, CHUNK, Nonces::Random)),
        ),
        (
            "raw_open_16k_chunks",
            op(|| benchops::raw_open_chunks(TOTAL, CHUNK)),
        ),
        // libsodium, the baseline: per chunk a counter nonce and
        // `crypto_secretbox_easy` into a new `Vec` (as `raw_seal_16k_chunks`,
        // dropped after the run); opening, `crypto_secretbox_open_easy`
        // into one reused buffer.
        (
            "libsodium_seal_16k_chunks",
            op(|| benchops::sodium_seal_chunks(TOTAL, CHUNK)),
        ),
        (
            "libsodium_open_16k_chunks",
            op(|| benchops::sodium_open_chunks(TOTAL, CHUNK)),
        ),
        (
            "stream_write_16k_pieces",
            op(|| benchops::stream_write(TOTAL, CHUNK)),
        ),
        (
            "stream_write_1m_once",
            op(|| benchops::stream_write(TOTAL, TOTAL)),
        ),
        (
            "stream_read_16k_buf",
            op(|| benchops::stream_read(TOTAL, CHUNK, Reader::Shared)),
        ),
        (
            "stream_read_8k_buf",
            op(|| benchops::stream_read(TOTAL, CHUNK / 2, Reader::Shared)),
        ),
        (
            "stream_read_64k_buf",
            op(|| benchops::stream_read(TOTAL, 4 * CHUNK, Reader::Shared)),
        ),
    ];
    bench_rows(&mut g, None, rows);
    g.finish();
}

/// The stream read in `stream_small_reads`: 256 KiB, 16 chunks.
const SMALL_TOTAL: usize = 256 * 1024;

fn stream_small_reads<M: Timer>(c: &mut Criterion<M>) {
    let src = template(SMALL_TOTAL);
    let sizes = [1usize, 16, 64, 1024, 4096, 8192, 16384];

    // Check once, outside the timing, that every way gives the bytes back.
    fn read_back(mut r: impl Read, buf_len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(SMALL_TOTAL);
        let mut buf = vec![0u8; buf_len];
        loop {
            let n = r.read(&mut buf).expect("read");
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }
    for buf_len in sizes {
        let mut s = filled_stream(&src);
        assert_eq!(read_back(&mut s, buf_len), src, "read buffer {buf_len}");
        let s = filled_stream(&src);
        assert_eq!(read_back(&s, buf_len), src, "shared, read buffer {buf_len}");
    }
    let mut all = Vec::new();
    (&filled_stream(&src))
        .read_to_end(&mut all)
        .expect("read_to_end");
    assert_eq!(all, src);

    let mut g = c.benchmark_group("stream_small_reads");
    g.throughput(Throughput::Bytes(SMALL_TOTAL as u64));
    let names: Vec<String> = sizes.iter().map(|n| format!("read_buf_{n}")).collect();
    let mut rows: Vec<(&str, ops::Build)> = sizes
        .iter()
        .zip(&names)
        .map(|(&n, name)| {
            let row = op(move || benchops::stream_read(SMALL_TOTAL, n, Reader::Owned));
            (name.as_str(), row)
        })
        .collect();
    // The floor of a 1-byte read: per byte, lock a mutex, borrow a guarded
    // buffer (a `Ref`), copy the byte, release both. What `Stream::read`
    // does on top: the `Read` call, finding the front chunk, the length
    // bookkeeping.
    let opened = {
        let mut copy = src.clone();
        std::rc::Rc::new(memguard::LockedBuffer::from_bytes(&mut copy).expect("LockedBuffer"))
    };
    let opened2 = std::rc::Rc::clone(&opened);
    rows.extend([
        // Through `&Stream`, as threads that share a stream read: each read
        // locks the stream's mutex.
        (
            "read_buf_1_shared",
            op(|| benchops::stream_read(SMALL_TOTAL, 1, Reader::Shared)),
        ),
        (
            "floor_1b_lock_borrow_copy",
            op(move || {
                let at = std::sync::Mutex::new(0usize);
                let mut byte = [0u8; 1];
                Ok(Body::new(move || {
                    for _ in 0..SMALL_TOTAL {
                        let mut at = at.lock().map_err(|_| "poisoned")?;
                        let bytes = opened.bytes();
                        byte.copy_from_slice(&bytes[*at..*at + 1]);
                        *at = (*at + 1) % SMALL_TOTAL;
                        black_box(&byte);
                    }
                    Ok(())
                }))
            }),
        ),
        (
            "floor_1b_borrow_copy",
            op(move || {
                let mut at = 0usize;
                let mut byte = [0u8; 1];
                Ok(Body::new(move || {
                    for _ in 0..SMALL_TOTAL {
                        let bytes = opened2.bytes();
                        byte.copy_from_slice(&bytes[at..at + 1]);
                        at = (at + 1) % SMALL_TOTAL;
                        black_box(&byte);
                    }
                    Ok(())
                }))
            }),
        ),
        (
            "floor_1b_lock_copy",
            op({
                let src = src.clone();
                move || {
                    let at = std::sync::Mutex::new(0usize);
                    let mut byte = [0u8; 1];
                    Ok(Body::new(move || {
                        for _ in 0..SMALL_TOTAL {
                            let mut at = at.lock().map_err(|_| "poisoned")?;
                            byte.copy_from_slice(&src[*at..*at + 1]);
                            *at = (*at + 1) % SMALL_TOTAL;
                            black_box(&byte);
                        }
                        Ok(())
                    }))
                }
            }),
        ),
        // Any `io::Read` in 1-byte reads, at its cheapest: std's `Cursor`
        // over a plain `Vec` (no secret, no guard, no lock).
        (
            "floor_1b_std_cursor",
            op(|| benchops::std_cursor_read(SMALL_TOTAL, 1)),
        ),
        // Stream's own `read_to_end`, into a `Vec` whose capacity is kept
        // from one run to the next.
        (
            "read_to_end",
            op(move || {
                let filled = Slot::<Stream>::new();
                let made = filled.clone();
                let read = Slot::<Stream>::new();
                let done = read.clone();
                let mut out = Vec::with_capacity(SMALL_TOTAL);
                Ok(Body::per_run(
                    move || {
                        made.put(filled_stream(&src));
                        Ok(())
                    },
                    move || {
                        let s = filled.take()?;
                        out.clear();
                        let n = (&s).read_to_end(&mut out).map_err(|e| e.to_string())?;
                        black_box(&out);
                        done.put(s);
                        if n == SMALL_TOTAL {
                            Ok(())
                        } else {
                            Err(format!("read_to_end gave {n} bytes"))
                        }
                    },
                    move || drop(black_box(read.take())),
                ))
            }),
        ),
    ]);
    bench_rows(&mut g, None, rows);
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
}

/// The calling thread's CPU time, in nanoseconds.
struct ThreadCpuTime;

impl ThreadCpuTime {
    /// Wall time elsewhere (the benches are measured on Linux).
    #[cfg(not(unix))]
    fn now() -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }

    #[cfg(unix)]
    fn now() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
}

impl benchops::Clock for ThreadCpuTime {
    type Mark = u64;

    fn start(&self) -> u64 {
        ThreadCpuTime::now()
    }

    fn elapsed(&self, mark: u64) -> Duration {
        Duration::from_nanos(ThreadCpuTime::now().saturating_sub(mark))
    }
}

impl Timer for ThreadCpuTime {
    fn time(body: &mut Body, iters: u64) -> u64 {
        let t = body
            .time(iters, &ThreadCpuTime)
            .unwrap_or_else(|e| panic!("{e}"));
        t.as_nanos() as u64
    }
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        ThreadCpuTime::now()
    }

    fn end(&self, start: u64) -> u64 {
        ThreadCpuTime::now().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, like wall time: reuse its formatting.
        WallTime.formatter()
    }
}

fn main() {
    if std::env::var_os("MEMGUARD_BENCH_CPU_TIME").is_some_and(|v| v != "0") {
        let mut c = config()
            .with_measurement(ThreadCpuTime)
            .configure_from_args();
        stream(&mut c);
        stream_small_reads(&mut c);
        c.final_summary();
    } else {
        let mut c = config().configure_from_args();
        stream(&mut c);
        stream_small_reads(&mut c);
        c.final_summary();
    }
}
