//! Cost of sealing and opening an [`Enclave`] next to the raw cipher it is
//! built on, measured in the same run so that the ratios mean something.
//!
//! - `seal_open_32/*`, 32-byte secrets:
//!   - `raw_seal_plus_open`: `crypto_secretbox::XSalsa20Poly1305` (RustCrypto,
//!     the same `salsa20`/`poly1305` code the crate uses), keyed once outside
//!     the loop; per iteration a 32-byte stack buffer is refilled, then
//!     `encrypt_in_place_detached` + `decrypt_in_place_detached` with a fixed
//!     nonce. (The in-place detached calls were slightly faster than
//!     `encrypt` / `decrypt` with a `Vec`, which allocate: 1.76 against
//!     1.82 us of CPU time.)
//!   - `libsodium_seal_plus_open`: libsodium's `crypto_secretbox_easy` +
//!     `crypto_secretbox_open_easy` (the system library, loaded at run time
//!     through `memguard_testkit::sodium`), fixed key and nonce, the source
//!     refilled first (`benchops::sodium_seal_open`, which `memguard bench`
//!     shares): the baseline of issue 13.
//!   - `enclave_new_plus_open_into`: `Enclave::new` + `open_into` a kept
//!     buffer; target <= 1.2x `libsodium_seal_plus_open`.
//!   - `breakdown_*`: its parts: `cipher_seal_plus_open` (the crate's
//!     `MessageCipher`, compiled in from `src/crypto/`, seal + open),
//!     `nonce_getrandom_24` (the OS nonce each seal drew before the counter
//!     nonce),
//!     `stack_scrub_4k` (what `scrub_stack` does after each seal and open);
//!     from `seal_open_32_parts`: `key_derivation` (the session key derived
//!     from its halves, once per seal and per open) and `nonce_counter_24`
//!     (what the counter nonce of `src/crypto/nonce.rs` does per seal).
//!   - `enclave_new`: refill a 32-byte array, `Enclave::new`, drop the enclave.
//!   - `enclave_open_into`: `open_into` a pre-made mutable 32-byte
//!     `LockedBuffer`.
//!   - `enclave_open`: `open` (a new, frozen `LockedBuffer`) and its drop.
//!   - `locked_buffer_lifecycle`: `LockedBuffer::new(32)` + drop, the floor
//!     under `enclave_open`. Both reuse a spare mapping, as they do by
//!     default.
//!   - `locked_buffer_lifecycle_frozen`: `new(32)`, `freeze`, drop: what
//!     `open` does besides decrypting. Its distance from
//!     `locked_buffer_lifecycle` is the cost of the two `mprotect` calls
//!     (read-only for the caller, writable again for the wipe) that a frozen
//!     buffer pays and a plain lifecycle does not.
//!   - `enclave_open_no_spares`, `locked_buffer_lifecycle_no_spares`: the
//!     same two with spares off (`set_spare_limit(0)`), a new mapping each
//!     time.
//!
//!   - `enclave_open_compact`: `open` + drop with `CompactMode::Always` (a
//!     writable slot, then a frozen one), against `enclave_open` (a
//!     one-page buffer from a spare, `CompactMode::Never`); target: compact
//!     no slower.
//!
//!   Targets: `enclave_new <= raw_seal_plus_open`,
//!   `enclave_open_into <= raw_seal_plus_open`, and
//!   `enclave_open <= locked_buffer_lifecycle + 3 us`.
//!
//! - `seal_open_throughput/{raw,enclave,enclave_open}/{1 KiB,64 KiB,1 MiB,16 MiB}`:
//!   one seal plus one open of `n` bytes. Every variant first refills its
//!   source from a template with one `memcpy`, so the refill costs the same
//!   everywhere.
//!   - `raw`: in-place detached encrypt + decrypt on a `Vec`.
//!   - `enclave`: `Enclave::new` + `open_into` a pre-made `LockedBuffer`.
//!   - `enclave_open`: `Enclave::new` + `open` (maps a new buffer each time).
//!   - `libsodium`: `crypto_secretbox_easy` + `open_easy` on preallocated
//!     buffers; targets (issue 13): `enclave` <= 1.0x its time at 4 KiB and
//!     1 MiB.
//!   - `cipher`: the crate's `MessageCipher` alone, seal + open, on
//!     preallocated buffers.
//!
//!   Target: at 1 MiB, `enclave` throughput >= 0.95x `raw`.
//!
//! - `poly1305/{scalar64,libsodium,rustcrypto,orion}/{32 B .. 1 MiB}`: the
//!   crate's Poly1305 (`src/crypto/poly1305_64.rs`, radix 2^64) beside
//!   libsodium's `crypto_onetimeauth` and the two crates it used before
//!   (`orion` up to 3 KiB, RustCrypto's AVX2 code above), one tag each on
//!   the same key and bytes.
//!
//! - `components/{salsa20_<path>,salsa20_libsodium,poly1305_scalar64,poly1305_memguard,poly1305_libsodium}/{4 KiB,1 MiB}`:
//!   the Salsa20 keystream on every path this CPU has
//!   (`src/crypto/salsa20/`) beside libsodium's
//!   `crypto_stream_salsa20_xor_ic`, and the crate's Poly1305 beside
//!   `crypto_onetimeauth`.
//!
//! The session key's background rekeying is left at its default (every
//! 500 ms), as users get it: a rekey takes the coffer lock for a moment and
//! can land inside a sample.
//!
//! Criterion measures wall-clock time: on a machine shared with other jobs
//! the absolute figures, and even the ratios, can move by tens of percent
//! from run to run. Compare variants only within one run, and prefer a quiet
//! machine.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use memguard::LockedBuffer;

/// The operations and their raw floors, shared with `memguard bench`
/// (`cli/src/benchops.rs`, `cli/src/floors.rs`).
#[allow(dead_code)]
#[path = "../cli/src/benchops.rs"]
mod benchops;
/// A row of a group: one operation, timed as `memguard bench` times it.
#[allow(dead_code)]
#[path = "support/ops.rs"]
mod ops;

use benchops::floors::{KEY, NONCE};
use benchops::{template, Body, Spares};
use ops::{bench_rows, op};

/// libsodium, the baseline: loaded at run time by the workspace's test
/// tooling (`testkit/src/sodium.rs`), shared with the crate's tests.
use memguard_testkit::sodium;

// The crate's own cipher, compiled in from its source (it is internal), for
// the breakdown of a 32-byte seal: the same code `Enclave` runs.
#[allow(dead_code, unused_imports)]
#[path = "../src/crypto/cipher.rs"]
mod cipher;
#[allow(dead_code, unused_imports)]
#[path = "../src/crypto/mac.rs"]
mod mac;
#[allow(dead_code)]
#[path = "../src/crypto/poly1305_64.rs"]
mod poly1305_64;
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[allow(dead_code)]
#[path = "../src/crypto/poly1305_avx2.rs"]
mod poly1305_avx2;
#[allow(dead_code, unused_imports)]
#[path = "../src/crypto/salsa20/mod.rs"]
mod salsa20;
// `cargo clippy --all-targets` builds this file with cfg(test), and with it
// the cipher's and keystream's test modules (the libsodium comparison loads
// the library through `memguard_testkit::sodium`, a dev-dependency here
// too). The stack-scrub test reads the stack through
// `crate::mem::sys::testing`: here, the platform layer's stand-in that reads
// no stack (the test returns).
#[cfg(test)]
#[allow(dead_code)]
#[path = "../src/mem/sys/nofork_testing.rs"]
mod nofork_testing;
#[cfg(test)]
mod mem {
    pub(crate) mod sys {
        // Named only inside a #[test] function, which `cargo bench` (cfg(test)
        // without the test harness) leaves out.
        #[allow(unused_imports)]
        pub(crate) use crate::nofork_testing as testing;
    }
    pub(crate) use crate::wipe::scrub_stack;
}
#[cfg(test)]
#[allow(dead_code, unused_imports)]
#[path = "../src/mem/wipe.rs"]
mod wipe;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const SIZES: [usize; 4] = [KIB, 4 * KIB, 64 * KIB, MIB];
const HUGE: usize = 16 * MIB;

fn seal_open_32(c: &mut Criterion) {
    let mut g = c.benchmark_group("seal_open_32");
    let tmpl: [u8; 32] = template(32).try_into().expect("32 bytes");
    // Loaded (or the bench stopped) before any row is measured.
    sodium::required();
    let rows = vec![
        ("raw_seal_plus_open", op(|| benchops::raw_seal_open(32))),
        (
            "libsodium_seal_plus_open",
            op(|| benchops::sodium_seal_open(32)),
        ),
        // Enclave::new + open_into, the pair the target compares with
        // `libsodium_seal_plus_open`.
        (
            "enclave_new_plus_open_into",
            op(|| benchops::enclave_new_open_into(32, None)),
        ),
        // The breakdown of it: the crate's cipher alone (HSalsa20, block 0,
        // Poly1305, both ways: what libsodium's two calls do), the 24-byte
        // nonce from the OS, and a 4 KiB stack scrub like `scrub_stack` (one
        // per seal and per open). What is left of `enclave_new_plus_open_into`
        // is the session key's derivation (twice) and the bookkeeping.
        (
            "breakdown_cipher_seal_plus_open",
            op(move || {
                Ok(Body::new(move || {
                    let m = black_box(tmpl);
                    let mut c = [0u8; 32];
                    let tag = cipher::MessageCipher::new(&KEY, &NONCE).seal(&m, &mut c);
                    let mut back = [0u8; 32];
                    cipher::MessageCipher::new(&KEY, &NONCE)
                        .open_range(black_box(&c), &tag, 0, &mut back)
                        .map_err(|e| format!("open: {e:?}"))?;
                    black_box(back);
                    Ok(())
                }))
            }),
        ),
        (
            "breakdown_nonce_getrandom_24",
            op(|| {
                Ok(Body::new(|| {
                    let mut n = [0u8; 24];
                    getrandom::fill(&mut n).map_err(|e| format!("getrandom: {e}"))?;
                    black_box(n);
                    Ok(())
                }))
            }),
        ),
        (
            "breakdown_stack_scrub_4k",
            op(|| {
                Ok(Body::new(|| {
                    scrub_like();
                    Ok(())
                }))
            }),
        ),
        // The scrub before issue 13: `zeroize::zeroize_stack`, one 4 KiB
        // `memset` (glibc's `rep stosb` from 2 KiB up).
        (
            "breakdown_stack_scrub_4k_one_memset",
            op(|| {
                Ok(Body::new(|| {
                    zeroize::zeroize_stack::<4096>();
                    Ok(())
                }))
            }),
        ),
        ("enclave_new", op(|| benchops::enclave_new(32))),
        ("enclave_open_into", op(|| benchops::enclave_open_into(32))),
        (
            "enclave_open",
            op(|| benchops::enclave_open(32, Spares::Default)),
        ),
        (
            "enclave_open_compact",
            op(|| benchops::enclave_open_compact(32)),
        ),
        (
            "locked_buffer_lifecycle",
            op(|| benchops::new_drop(32, Spares::Default)),
        ),
        // The lifecycle `open` goes through minus the decryption: made,
        // frozen, dropped (melted back to writable for the wipe). Its
        // distance from `locked_buffer_lifecycle` is the freeze + melt pair
        // alone.
        (
            "locked_buffer_lifecycle_frozen",
            op(|| benchops::new_freeze_drop(32, Spares::Default)),
        ),
        // The same two with spare mappings off: a new mapping every time.
        (
            "enclave_open_no_spares",
            op(|| benchops::enclave_open(32, Spares::Off)),
        ),
        (
            "locked_buffer_lifecycle_no_spares",
            op(|| benchops::new_drop(32, Spares::Off)),
        ),
    ];
    bench_rows(&mut g, None, rows);
    g.finish();
}

/// More of the 32-byte breakdown (issue 13), beside the rows of
/// `seal_open_32`: the session key's derivation (`coffer::with_key`:
/// BLAKE3 of the right half, XORed with the left; beside it the same with
/// BLAKE2b-256, the hash it used before, for the measured reason in
/// `src/crypto/hash.rs`), and what the
/// counter nonce of `src/crypto/nonce.rs` does per seal (a fork-generation
/// check, one `fetch_add`, the prefix copied), written out here because the
/// module is internal.
fn seal_open_32_parts(c: &mut Criterion) {
    use blake2::digest::Digest;
    use std::sync::atomic::{AtomicU64, Ordering};
    let mut g = c.benchmark_group("seal_open_32");
    /// Left XOR hash(right) into a scratch array, then the wipe.
    fn derive(left: &[u8; 32], right: &[u8; 32], hash: impl Fn(&[u8; 32], &mut [u8; 32])) {
        let mut scratch = [0u8; 32];
        hash(black_box(right), &mut scratch);
        for (s, l) in scratch.iter_mut().zip(black_box(left)) {
            *s ^= l;
        }
        black_box(&scratch);
        memguard::wipe_bytes(&mut scratch);
    }
    let (left, right) = ([0x11u8; 32], [0x22u8; 32]);
    g.bench_function("breakdown_key_derivation", |b| {
        b.iter(|| {
            derive(&left, &right, |r, out| {
                out.copy_from_slice(blake3::hash(r).as_bytes())
            })
        })
    });
    g.bench_function("breakdown_key_derivation_blake2b", |b| {
        b.iter(|| {
            derive(&left, &right, |r, out| {
                let mut h = blake2::Blake2b256::new();
                Digest::update(&mut h, r);
                Digest::finalize_into(h, out.into());
            })
        })
    });
    static GENERATION: AtomicU64 = AtomicU64::new(0);
    static SEEDED: AtomicU64 = AtomicU64::new(1);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PREFIX: [AtomicU64; 2] = [AtomicU64::new(7), AtomicU64::new(9)];
    g.bench_function("breakdown_nonce_counter_24", |b| {
        b.iter(|| {
            let mut n = [0u8; 24];
            let g = GENERATION.load(Ordering::Acquire).wrapping_add(1);
            assert_eq!(SEEDED.load(Ordering::Acquire), g);
            let count = COUNTER.fetch_add(1, Ordering::Relaxed);
            n[..8].copy_from_slice(&count.to_le_bytes());
            for (bytes, w) in n[8..].chunks_exact_mut(8).zip(&PREFIX) {
                bytes.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
            }
            black_box(n);
        })
    });
    g.finish();
}

/// What `scrub_stack` (src/mem/wipe.rs) does: 4 KiB of stack zeroed in
/// 1 KiB pieces, each behind a barrier the compiler cannot see through.
#[inline(never)]
fn scrub_like() {
    const ZERO: [std::mem::MaybeUninit<u8>; 1024] = [std::mem::MaybeUninit::new(0); 1024];
    let mut area = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    for piece in area.chunks_exact_mut(1024) {
        piece.copy_from_slice(&ZERO);
        zeroize::optimization_barrier(piece);
    }
}

/// `n` bytes as a label: "32 B", "4 KiB", "1 MiB".
fn size_label(n: usize) -> String {
    if n >= MIB {
        format!("{} MiB", n / MIB)
    } else if n >= KIB {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} B")
    }
}

/// Every variant of one size, in group `g`. Every variant first refills its
/// source from the template with one `memcpy`, so the refill costs the
/// same everywhere.
fn throughput_for(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    n: usize,
) {
    let label = size_label(n);
    // The guarded destination first: if it cannot be locked (a small
    // RLIMIT_MEMLOCK without CAP_IPC_LOCK), skip the size.
    let dst = match LockedBuffer::new(n) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("seal_open_throughput/{label}: skipped, LockedBuffer::new({n}): {e}");
            return;
        }
    };
    g.throughput(Throughput::Bytes(n as u64));
    let tmpl = template(n);
    sodium::required();
    let rows = vec![
        ("raw", op(move || benchops::raw_seal_open(n))),
        ("libsodium", op(move || benchops::sodium_seal_open(n))),
        // The crate's cipher alone (what `Enclave` runs, without the session
        // key, the nonce, the allocation and the scrubs), on the same
        // buffers.
        (
            "cipher",
            op(move || {
                let (mut src, mut c, mut back) = (vec![0u8; n], vec![0u8; n], vec![0u8; n]);
                Ok(Body::new(move || {
                    src.copy_from_slice(&tmpl);
                    let tag =
                        cipher::MessageCipher::new(&KEY, &NONCE).seal(black_box(&src), &mut c);
                    cipher::MessageCipher::new(&KEY, &NONCE)
                        .open_range(black_box(&c), &tag, 0, &mut back)
                        .map_err(|e| format!("open: {e:?}"))
                }))
            }),
        ),
        // Its body holds `dst`, dropped before the next row runs: `open`
        // locks a second buffer of `n` bytes.
        (
            "enclave",
            op(move || benchops::enclave_new_open_into(n, Some(dst))),
        ),
        ("enclave_open", op(move || benchops::enclave_new_open(n))),
    ];
    bench_rows(g, Some(&label), rows);
}

fn seal_open_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("seal_open_throughput");
    for n in SIZES {
        throughput_for(&mut g, n);
    }
    g.sample_size(10);
    throughput_for(&mut g, HUGE);
    g.finish();
}

/// The crate's Poly1305 beside libsodium's and the two crates it used
/// before, on the same key and bytes.
fn poly1305(c: &mut Criterion) {
    use poly1305::universal_hash::KeyInit as _;
    let libsodium = sodium::required();
    let mut g = c.benchmark_group("poly1305");
    let key = [0x5au8; 32];
    for n in [
        32,
        256,
        512,
        768,
        KIB,
        2 * KIB,
        4 * KIB,
        16 * KIB,
        64 * KIB,
        MIB,
    ] {
        let data = template(n);
        let label = size_label(n);
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(BenchmarkId::new("rustcrypto", &label), &n, |b, _| {
            b.iter(|| {
                let mac = poly1305::Poly1305::new(black_box(&key).into());
                black_box(mac.compute_unpadded(black_box(&data)))
            })
        });
        g.bench_with_input(BenchmarkId::new("scalar64", &label), &n, |b, _| {
            b.iter(|| black_box(poly1305_64::Mac::scalar(black_box(&key)).finish(black_box(&data))))
        });
        // The crate's choice: the AVX2 code from 768 bytes on, where the
        // CPU has it.
        g.bench_with_input(BenchmarkId::new("memguard", &label), &n, |b, _| {
            b.iter(|| black_box(poly1305_64::tag(black_box(&key), black_box(&data))))
        });
        g.bench_with_input(BenchmarkId::new("libsodium", &label), &n, |b, _| {
            b.iter(|| black_box(libsodium.onetimeauth(black_box(&data), black_box(&key))))
        });
        g.bench_with_input(BenchmarkId::new("orion", &label), &n, |b, _| {
            b.iter(|| {
                use orion::hazardous::mac::poly1305 as op;
                let one_time = op::OneTimeKey::from_slice(black_box(&key)).expect("32 bytes");
                black_box(op::Poly1305::poly1305(&one_time, black_box(&data)).expect("tag"))
            })
        });
    }
    g.finish();
}

/// The two halves of the cipher beside libsodium's: the Salsa20 keystream
/// (each path the CPU has, against `crypto_stream_salsa20_xor_ic`) and
/// Poly1305 (the radix-2^64 code alone, and the crate's choice by length,
/// against `crypto_onetimeauth`).
fn components(c: &mut Criterion) {
    let libsodium = sodium::required();
    let mut g = c.benchmark_group("components");
    let key = salsa20::Salsa20Key::new(&KEY, &[7; 8]);
    for n in [4 * KIB, MIB] {
        let label = size_label(n);
        let src = template(n);
        let mut dst = vec![0u8; n];
        g.throughput(Throughput::Bytes(n as u64));
        for path in salsa20::available() {
            let name = format!("salsa20_{path:?}").to_lowercase();
            g.bench_with_input(BenchmarkId::new(name, &label), &n, |b, _| {
                b.iter(|| salsa20::apply(path, &key, 64, black_box(&src), &mut dst))
            });
        }
        g.bench_with_input(BenchmarkId::new("salsa20_libsodium", &label), &n, |b, _| {
            b.iter(|| libsodium.stream_salsa20_xor_ic(&mut dst, black_box(&src), &[7; 8], 1, &KEY))
        });
        g.bench_with_input(BenchmarkId::new("poly1305_scalar64", &label), &n, |b, _| {
            b.iter(|| black_box(poly1305_64::Mac::scalar(&KEY).finish(black_box(&src))))
        });
        g.bench_with_input(BenchmarkId::new("poly1305_memguard", &label), &n, |b, _| {
            b.iter(|| black_box(mac::poly1305_tag(&KEY, black_box(&src))))
        });
        g.bench_with_input(
            BenchmarkId::new("poly1305_libsodium", &label),
            &n,
            |b, _| b.iter(|| black_box(libsodium.onetimeauth(black_box(&src), &KEY))),
        );
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = seal_open_32, seal_open_32_parts, seal_open_throughput, poly1305, components
}
criterion_main!(benches);
