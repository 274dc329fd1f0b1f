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
//!   library, linked into the benchmarks only; opening writes into one
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
//! `floor_1b_lock_copy` locks and copies from ordinary memory.
//!
//! Target (from the issue): `stream_write_*` and `stream_read_16k_buf`
//! (and `_64k_buf`) each at least 0.8x the throughput of `raw_seal_16k_chunks`
//! and `raw_open_16k_chunks` respectively.
//!
//! The setups use `BatchSize::PerIteration`, so only one 1 MiB stream is
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
use criterion::{BatchSize, Criterion, Throughput};
use crypto_secretbox::aead::{Aead, AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};
use memguard::{Stream, DEFAULT_CHUNK_SIZE};

const KEY: [u8; 32] = [0x42; 32];

/// libsodium, the baseline (`benches/support/sodium.rs`; this bench uses
/// the secretbox part).
#[allow(dead_code)]
#[path = "support/sodium.rs"]
mod sodium;

const CHUNK: usize = DEFAULT_CHUNK_SIZE;
const TOTAL: usize = 1 << 20;
const CHUNKS: usize = TOTAL / CHUNK;

fn template(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 + 1).collect()
}

/// The next nonce of a 64-bit counter (little endian in the first 8 bytes).
fn counter_nonce(counter: &mut u64) -> Nonce {
    *counter += 1;
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(&counter.to_le_bytes());
    Nonce::from(n)
}

fn random_nonce() -> Nonce {
    let mut n = [0u8; 24];
    getrandom::fill(&mut n).expect("getrandom");
    Nonce::from(n)
}

/// Seals `src` in 16 KiB chunks, one new `Vec` each.
#[inline(always)]
fn raw_seal_chunks(
    cipher: &XSalsa20Poly1305,
    src: &[u8],
    mut nonce: impl FnMut() -> Nonce,
) -> Vec<(Nonce, Vec<u8>)> {
    let mut out = Vec::with_capacity(CHUNKS);
    for part in src.chunks(CHUNK) {
        let n = nonce();
        let sealed = cipher.encrypt(&n, part).expect("encrypt");
        out.push((n, sealed));
    }
    out
}

/// Reads `s` to the end through `buf`; returns the number of bytes read.
#[inline(always)]
fn read_to_end(mut s: impl Read, buf: &mut [u8]) -> usize {
    let mut total = 0;
    loop {
        let n = s.read(buf).expect("read");
        if n == 0 {
            return total;
        }
        black_box(&buf[..n]);
        total += n;
    }
}

fn filled_stream(src: &[u8]) -> Stream {
    let mut s = Stream::new();
    s.write_all(src).expect("write_all");
    s
}

fn stream<M: Measurement>(c: &mut Criterion<M>) {
    let src = template(TOTAL);
    let cipher = XSalsa20Poly1305::new(&KEY.into());

    // Check once, outside the timing, that both sides give the bytes back.
    {
        let mut counter = 0;
        let sealed = raw_seal_chunks(&cipher, &src, || counter_nonce(&mut counter));
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

    let mut counter = 0u64;
    g.bench_function("raw_seal_16k_chunks", |b| {
        b.iter_batched(
            || (),
            |()| raw_seal_chunks(&cipher, black_box(&src), || counter_nonce(&mut counter)),
            BatchSize::PerIteration,
        )
    });

    g.bench_function("raw_seal_16k_chunks_getrandom", |b| {
        b.iter_batched(
            || (),
            |()| raw_seal_chunks(&cipher, black_box(&src), random_nonce),
            BatchSize::PerIteration,
        )
    });

    // 64 detached chunks, sealed once.
    let sealed: Vec<(Nonce, Tag, Vec<u8>)> = src
        .chunks(CHUNK)
        .map(|part| {
            let n = counter_nonce(&mut counter);
            let mut ct = part.to_vec();
            let tag = cipher
                .encrypt_in_place_detached(&n, b"", &mut ct)
                .expect("encrypt");
            (n, tag, ct)
        })
        .collect();
    g.bench_function("raw_open_16k_chunks", |b| {
        let mut out = vec![0u8; CHUNK];
        b.iter(|| {
            for (n, tag, ct) in black_box(&sealed) {
                let out = &mut out[..ct.len()];
                out.copy_from_slice(ct);
                cipher
                    .decrypt_in_place_detached(n, b"", out, tag)
                    .expect("decrypt");
                black_box(&out);
            }
        });
        assert_eq!(out, src[TOTAL - CHUNK..]);
    });

    // libsodium, the baseline: per chunk a counter nonce and
    // `crypto_secretbox_easy` into a new `Vec` (as `raw_seal_16k_chunks`);
    // opening, `crypto_secretbox_open_easy` into one reused buffer.
    sodium::init();
    g.bench_function("libsodium_seal_16k_chunks", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut out = Vec::with_capacity(CHUNKS);
                for part in black_box(&src).chunks(CHUNK) {
                    let n = counter_nonce(&mut counter);
                    let mut c = vec![0u8; part.len() + 16];
                    sodium::seal(&mut c, part, n.as_ref(), &KEY);
                    out.push((n, c));
                }
                out
            },
            BatchSize::PerIteration,
        )
    });
    let sodium_sealed: Vec<([u8; 24], Vec<u8>)> = src
        .chunks(CHUNK)
        .map(|part| {
            let n: [u8; 24] = counter_nonce(&mut counter).into();
            let mut c = vec![0u8; part.len() + 16];
            sodium::seal(&mut c, part, &n, &KEY);
            (n, c)
        })
        .collect();
    g.bench_function("libsodium_open_16k_chunks", |b| {
        let mut out = vec![0u8; CHUNK];
        b.iter(|| {
            for (n, c) in black_box(&sodium_sealed) {
                let out = &mut out[..c.len() - 16];
                sodium::open(out, c, n, &KEY);
                black_box(&out);
            }
        });
        assert_eq!(out, src[TOTAL - CHUNK..]);
    });

    g.bench_function("stream_write_16k_pieces", |b| {
        b.iter_batched(
            Stream::new,
            |mut s| {
                for piece in black_box(&src).chunks(CHUNK) {
                    s.write_all(piece).expect("write_all");
                }
                s
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("stream_write_1m_once", |b| {
        b.iter_batched(
            Stream::new,
            |mut s| {
                s.write_all(black_box(&src)).expect("write_all");
                s
            },
            BatchSize::PerIteration,
        )
    });

    for (name, buf_len) in [
        ("stream_read_16k_buf", CHUNK),
        ("stream_read_8k_buf", CHUNK / 2),
        ("stream_read_64k_buf", 4 * CHUNK),
    ] {
        g.bench_function(name, |b| {
            let mut buf = vec![0u8; buf_len];
            b.iter_batched(
                || filled_stream(&src),
                |s| {
                    let n = read_to_end(&s, &mut buf);
                    assert_eq!(n, TOTAL);
                    s
                },
                BatchSize::PerIteration,
            )
        });
    }

    g.finish();
}

/// The stream read in `stream_small_reads`: 256 KiB, 16 chunks.
const SMALL_TOTAL: usize = 256 * 1024;

fn stream_small_reads<M: Measurement>(c: &mut Criterion<M>) {
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
    for buf_len in sizes {
        g.bench_function(format!("read_buf_{buf_len}"), |b| {
            let mut buf = vec![0u8; buf_len];
            b.iter_batched(
                || filled_stream(&src),
                |mut s| {
                    let n = read_to_end(&mut s, &mut buf);
                    assert_eq!(n, SMALL_TOTAL);
                    s
                },
                BatchSize::PerIteration,
            )
        });
    }
    // Through `&Stream`, as threads that share a stream read: each read
    // locks the stream's mutex.
    g.bench_function("read_buf_1_shared", |b| {
        let mut buf = [0u8; 1];
        b.iter_batched(
            || filled_stream(&src),
            |s| {
                let n = read_to_end(&s, &mut buf);
                assert_eq!(n, SMALL_TOTAL);
                s
            },
            BatchSize::PerIteration,
        )
    });
    // The floor of a 1-byte read: per byte, lock a mutex, borrow a guarded
    // buffer (a `Ref`), copy the byte, release both. What `Stream::read`
    // does on top: the `Read` call, finding the front chunk, the length
    // bookkeeping.
    let opened = {
        let mut copy = src.clone();
        memguard::LockedBuffer::from_bytes(&mut copy).expect("LockedBuffer")
    };
    g.bench_function("floor_1b_lock_borrow_copy", |b| {
        let at = std::sync::Mutex::new(0usize);
        let mut byte = [0u8; 1];
        b.iter(|| {
            for _ in 0..SMALL_TOTAL {
                let mut at = at.lock().expect("lock");
                let bytes = opened.bytes();
                byte.copy_from_slice(&bytes[*at..*at + 1]);
                *at = (*at + 1) % SMALL_TOTAL;
                black_box(&byte);
            }
        })
    });
    g.bench_function("floor_1b_borrow_copy", |b| {
        let mut at = 0usize;
        let mut byte = [0u8; 1];
        b.iter(|| {
            for _ in 0..SMALL_TOTAL {
                let bytes = opened.bytes();
                byte.copy_from_slice(&bytes[at..at + 1]);
                at = (at + 1) % SMALL_TOTAL;
                black_box(&byte);
            }
        })
    });
    g.bench_function("floor_1b_lock_copy", |b| {
        let at = std::sync::Mutex::new(0usize);
        let mut byte = [0u8; 1];
        b.iter(|| {
            for _ in 0..SMALL_TOTAL {
                let mut at = at.lock().expect("lock");
                byte.copy_from_slice(&src[*at..*at + 1]);
                *at = (*at + 1) % SMALL_TOTAL;
                black_box(&byte);
            }
        })
    });
    g.bench_function("read_to_end", |b| {
        let mut out = Vec::with_capacity(SMALL_TOTAL);
        b.iter_batched(
            || filled_stream(&src),
            |s| {
                out.clear();
                let n = (&s).read_to_end(&mut out).expect("read_to_end");
                assert_eq!(n, SMALL_TOTAL);
                black_box(&out);
                s
            },
            BatchSize::PerIteration,
        )
    });
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
